//! Changelog revisions and the consistency tokens that carry them to callers.
//!
//! Every write that changes who may do what commits at a [`Revision`] of the changelog; the
//! caller gets it back as an opaque [`ConsistencyToken`] and passes it to a later read
//! ("at least as fresh as") to read its own write.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::Invalid;

/// A position in the changelog: 0 before the first write, increasing with every commit.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
    sqlx::Type,
)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct Revision(pub i64);

impl Revision {
    /// Before the first write.
    pub const ZERO: Revision = Revision(0);

    /// The consistency token naming this revision.
    pub fn token(self) -> ConsistencyToken {
        ConsistencyToken(self)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// An opaque token naming a revision (`ct1.` + base64url of the revision): what writes answer
/// and reads accept as "at least as fresh as". Its text is its [`fmt::Display`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsistencyToken(Revision);

const PREFIX: &str = "ct1.";

impl ConsistencyToken {
    /// Parses a token from request field `field`.
    pub fn parse(field: &str, text: &str) -> Result<ConsistencyToken, Invalid> {
        let bad = || Invalid::new(field, "is not a consistency token");
        let body = text.strip_prefix(PREFIX).ok_or_else(bad)?;
        let bytes: [u8; 8] = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| bad())?
            .try_into()
            .map_err(|_| bad())?;
        let revision = i64::from_be_bytes(bytes);
        if revision < 0 {
            return Err(bad());
        }
        Ok(ConsistencyToken(Revision(revision)))
    }

    /// The revision it names.
    pub fn revision(self) -> Revision {
        self.0
    }
}

impl fmt::Display for ConsistencyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0.0.max(0).to_be_bytes();
        write!(f, "{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        for revision in [0, 1, 42, i64::MAX] {
            let token = Revision(revision).token().to_string();
            let parsed = ConsistencyToken::parse("t", &token).unwrap();
            assert_eq!(parsed.revision(), Revision(revision));
        }
        for garbage in ["", "ct1.", "ct1.!!", "12", "ct1.AAAA", "ct1.gAAAAAAAAAA"] {
            let err = ConsistencyToken::parse("start_token", garbage).unwrap_err();
            assert_eq!(err.field, "start_token", "{garbage}");
        }
    }

    #[test]
    fn revisions_order_and_serialise_as_numbers() {
        assert!(Revision(2) > Revision(1) && Revision::ZERO < Revision(1));
        assert_eq!(serde_json::to_string(&Revision(7)).unwrap(), "7");
    }
}
