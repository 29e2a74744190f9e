//! Page tokens: opaque to clients; inside, the cursor of the next page (a keyset key such as
//! `(name, id)` or `(time, id)`, or a snapshot position) as JSON, base64url-encoded. Every paged
//! answer of every edge uses [`encode`], [`decode`] and [`page`], so a token's shape and its
//! errors are the same everywhere.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

const NOT_A_TOKEN: &str = "is not a token from a previous page";

/// The page token around a cursor.
pub fn encode<K: Serialize>(cursor: &K) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(cursor).unwrap_or_default())
}

/// The cursor inside a page token from [`encode`] (empty token = first page); INVALID_ARGUMENT
/// naming `page_token` when it is not one.
pub fn decode<K: DeserializeOwned>(token: &str) -> Result<Option<K>, Error> {
    use base64::Engine;
    if token.is_empty() {
        return Ok(None);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .map(Some)
        .ok_or_else(|| Error::invalid("page_token", NOT_A_TOKEN))
}

/// Cuts a page fetched with `limit + 1` rows to `limit`, with the token of the next page (the
/// key of its last row; empty when this is the last page).
pub fn page<T, K: Serialize>(
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> K,
) -> (Vec<T>, String) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() > limit {
        rows.truncate(limit);
        let token = rows.last().map(|r| encode(&key(r))).unwrap_or_default();
        (rows, token)
    } else {
        (rows, String::new())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

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
        let at = DateTime::parse_from_rfc3339("2026-12-02T03:04:05.678912Z")
            .unwrap()
            .with_timezone(&Utc);
        let id = Uuid::new_v4();
        let token = encode(&(at, id));
        assert_eq!(
            decode::<(DateTime<Utc>, Uuid)>(&token).unwrap(),
            Some((at, id))
        );
        assert!(decode::<(DateTime<Utc>, Uuid)>(&encode(&("yesterday", "x"))).is_err());
    }

    #[test]
    fn a_page_carries_the_key_of_its_last_row() {
        let (rows, token) = page(vec![1, 2, 3], 2, |n| *n);
        assert_eq!(rows, [1, 2]);
        assert_eq!(decode::<i32>(&token).unwrap(), Some(2));
        let (rows, token) = page(vec![1, 2], 2, |n| *n);
        assert_eq!((rows.len(), token.as_str()), (2, ""));
    }

    #[test]
    fn anything_else_names_the_field() {
        let not_json = {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("not json")
        };
        for token in ["%%%", &not_json, &encode(&"a string")] {
            let err = decode::<Key>(token).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("page_token: {NOT_A_TOKEN}"),
                "{token}"
            );
        }
    }
}
