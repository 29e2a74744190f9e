//! Tokens: signing keys (encrypted at rest), JWKS; later JWT issue/verify, refresh families,
//! sessions and revocation.

pub mod kek;
pub mod keys;
