//! Tokens: signing keys (encrypted at rest), JWKS, JWT issue and verification, refresh-token
//! families, sessions and revocation.

pub mod issued;
pub mod jwt;
pub mod kek;
pub mod keys;
pub mod policy;
pub mod revocation;
pub mod rotation;
pub mod service;
pub mod watch;
