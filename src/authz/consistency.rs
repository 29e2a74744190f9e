//! Consistency tokens: opaque strings encoding a changelog revision.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::Error;

const PREFIX: &str = "ct1.";

/// The token of `revision`.
pub fn encode(revision: i64) -> String {
    format!(
        "{PREFIX}{}",
        URL_SAFE_NO_PAD.encode(revision.max(0).to_be_bytes())
    )
}

/// The revision a token names; INVALID_ARGUMENT naming `field` when it is not a token.
pub fn decode(field: &str, token: &str) -> Result<i64, Error> {
    let bad = || Error::invalid(field, "is not a consistency token");
    let body = token.strip_prefix(PREFIX).ok_or_else(bad)?;
    let bytes: [u8; 8] = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| bad())?
        .try_into()
        .map_err(|_| bad())?;
    let revision = i64::from_be_bytes(bytes);
    if revision < 0 {
        return Err(bad());
    }
    Ok(revision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        for revision in [0, 1, 42, i64::MAX] {
            assert_eq!(decode("t", &encode(revision)).unwrap(), revision);
        }
        for garbage in ["", "ct1.", "ct1.!!", "12", "ct1.AAAA"] {
            assert!(decode("t", garbage).is_err(), "{garbage}");
        }
    }
}
