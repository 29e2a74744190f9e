//! Page tokens: opaque to clients; inside, the cursor of the next page (a keyset key or a
//! snapshot position) as JSON, base64url-encoded. Every paged answer of every edge uses these,
//! so a token's shape and its errors are the same everywhere.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use uuid::Uuid;

use crate::error::Error;

const NOT_A_TOKEN: &str = "is not a token from a previous page";

/// The page token around a text cursor.
pub fn encode_text(cursor: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cursor)
}

/// The text cursor inside a page token (empty token = first page); INVALID_ARGUMENT naming
/// `page_token` when it is not a token.
pub fn decode_text(token: &str) -> Result<Option<String>, Error> {
    use base64::Engine;
    if token.is_empty() {
        return Ok(None);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map(Some)
        .ok_or_else(|| Error::invalid("page_token", NOT_A_TOKEN))
}

/// The page token of a `(time, id)` keyset (newest-first lists: sessions, audit events).
pub fn encode_time_id(at: DateTime<Utc>, id: Uuid) -> String {
    encode_text(&format!("{}|{id}", at.to_rfc3339()))
}

/// The `(time, id)` keyset inside a page token from [`encode_time_id`].
pub fn decode_time_id(token: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, Error> {
    let Some(text) = decode_text(token)? else {
        return Ok(None);
    };
    let bad = || Error::invalid("page_token", NOT_A_TOKEN);
    let (at, id) = text.split_once('|').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?;
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok(Some((at.with_timezone(&Utc), id)))
}

/// The page token around a serializable cursor.
pub fn encode<K: Serialize>(cursor: &K) -> String {
    encode_text(&serde_json::to_string(cursor).unwrap_or_default())
}

/// The cursor inside a page token from [`encode`] (empty token = first page).
pub fn decode<K: DeserializeOwned>(token: &str) -> Result<Option<K>, Error> {
    let Some(text) = decode_text(token)? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|_| Error::invalid("page_token", NOT_A_TOKEN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Key {
        name: String,
        id: u32,
    }

    #[test]
    fn a_cursor_survives_its_token() {
        let key = Key {
            name: "a/b+c".into(),
            id: 7,
        };
        let token = encode(&key);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(decode::<Key>(&token).unwrap(), Some(key));
        assert_eq!(decode::<Key>("").unwrap(), None);
    }

    #[test]
    fn a_time_and_id_survive_their_token() {
        let at = DateTime::parse_from_rfc3339("2026-12-02T03:04:05.678Z")
            .unwrap()
            .with_timezone(&Utc);
        let id = Uuid::new_v4();
        assert_eq!(
            decode_time_id(&encode_time_id(at, id)).unwrap(),
            Some((at, id))
        );
        for bad in [
            encode_text("no bar"),
            encode_text("yesterday|x"),
            "!".into(),
        ] {
            assert!(decode_time_id(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn anything_else_names_the_field() {
        for token in ["%%%", &encode_text("not json"), &encode(&"a string")] {
            let err = decode::<Key>(token).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("page_token: {NOT_A_TOKEN}"),
                "{token}"
            );
        }
    }
}
