//! The service key format: `sk_<random body>_<checksum>`, stored only as its SHA-256.

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::KEY_PREFIX;
use crate::error::Error;

/// Eight hex digits of SHA-256 over the body: no `_`, so the key splits unambiguously.
fn checksum(body: &str) -> String {
    let sum = digest::digest(&digest::SHA256, body.as_bytes());
    sum.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `key` has the shape and checksum of a service key (rejects typos before any lookup).
pub fn well_formed(key: &str) -> bool {
    let Some(rest) = key.strip_prefix(KEY_PREFIX) else {
        return false;
    };
    let Some((body, sum)) = rest.rsplit_once('_') else {
        return false;
    };
    body.len() == 43 && checksum(body) == sum
}

/// SHA-256 of a key: what the store holds.
pub fn key_hash(key: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, key.as_bytes())
        .as_ref()
        .to_vec()
}

/// A new random key.
pub fn generate_key() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Internal)?;
    let body = URL_SAFE_NO_PAD.encode(bytes);
    Ok(format!("{KEY_PREFIX}{body}_{}", checksum(&body)))
}
