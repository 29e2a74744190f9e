//! Service apps: API keys (`sk_…`, 256 bits of randomness plus a checksum) stored only hashed,
//! and the lookup every service-tier call goes through.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use uuid::Uuid;

use crate::error::Error;
use crate::store::{ServiceAppRow, Store};

/// Prefix of every service key.
pub const KEY_PREFIX: &str = "sk_";
/// Characters of a key kept for display.
pub const DISPLAY_PREFIX_LEN: usize = 12;
/// How long a key lookup is remembered (a deactivation takes effect within this time).
const CACHE_TTL: Duration = Duration::from_millis(500);
/// The one message for every refused key: it never says whether the key exists.
pub const INVALID_KEY: &str = "invalid service key";

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

/// Validates a service name: lowercase letters, digits and dashes, 2–63 characters.
pub fn validate_service_name(name: &str) -> Result<(), Error> {
    let ok = (2..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "service_name",
            "must be 2-63 lowercase letters, digits or dashes",
        ))
    }
}

/// A remembered key lookup (also a miss) and when it was made.
type CachedLookup = (Option<Arc<ServiceAppRow>>, Instant);

/// Service apps and key authentication.
pub struct ServiceApps {
    store: Arc<dyn Store>,
    cache: RwLock<HashMap<Vec<u8>, CachedLookup>>,
    /// Allowed browser origin → its active app; refreshed by [`ServiceApps::refresh_origins`].
    origins: RwLock<HashMap<String, Arc<ServiceAppRow>>>,
}

impl ServiceApps {
    /// Over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            cache: RwLock::new(HashMap::new()),
            origins: RwLock::new(HashMap::new()),
        }
    }

    /// Creates an app and returns it with its plaintext key (shown once).
    pub async fn create(
        &self,
        name: &str,
        service_name: &str,
        allowed_origins: &[String],
    ) -> Result<(ServiceAppRow, String), Error> {
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(Error::invalid("name", "must be 1-200 characters"));
        }
        validate_service_name(service_name)?;
        let key = generate_key()?;
        let now = Utc::now();
        let app = ServiceAppRow {
            id: Uuid::new_v4(),
            name: name.to_string(),
            service_name: service_name.to_string(),
            key_hash: key_hash(&key),
            key_prefix: key.chars().take(DISPLAY_PREFIX_LEN).collect(),
            allowed_origins: serde_json::to_string(allowed_origins).map_err(|_| Error::Internal)?,
            is_active: true,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_service_app(&app).await?;
        Ok((app, key))
    }

    /// Re-reads the allowed origins of every active app (run every second by the server).
    pub async fn refresh_origins(&self) -> Result<(), Error> {
        let mut origins = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.list_service_apps(after.as_deref(), 1000).await?;
            for app in &page {
                if !app.is_active {
                    continue;
                }
                let app_origins: Vec<String> =
                    serde_json::from_str(&app.allowed_origins).unwrap_or_default();
                let shared = Arc::new(app.clone());
                for origin in app_origins {
                    origins.insert(origin, shared.clone());
                }
            }
            match page.last() {
                Some(last) if page.len() == 1000 => after = Some(last.service_name.clone()),
                _ => break,
            }
        }
        *self.origins.write().unwrap_or_else(|p| p.into_inner()) = origins;
        Ok(())
    }

    /// The active app that allows browser `origin` (exact match), if any.
    pub async fn app_for_origin(&self, origin: &str) -> Result<Option<Arc<ServiceAppRow>>, Error> {
        Ok(self
            .origins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(origin)
            .cloned())
    }

    /// Whether some active app allows `origin` (for CORS; no I/O).
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.origins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(origin)
    }

    /// The active app behind `key`; one indistinguishable UNAUTHENTICATED otherwise.
    pub async fn authenticate(&self, key: &str) -> Result<Arc<ServiceAppRow>, Error> {
        if !well_formed(key) {
            return Err(Error::Unauthenticated(INVALID_KEY));
        }
        let hash = key_hash(key);
        let cached = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(app, _)| app.clone());
        let app = match cached {
            Some(app) => app,
            None => {
                let app = self
                    .store
                    .service_app_by_key_hash(&hash, Utc::now())
                    .await?
                    .map(Arc::new);
                let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(hash, (app.clone(), Instant::now()));
                app
            }
        };
        app.filter(|a| a.is_active)
            .ok_or(Error::Unauthenticated(INVALID_KEY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_key_is_well_formed() {
        for _ in 0..2000 {
            let key = generate_key().unwrap();
            assert!(well_formed(&key), "{key}");
        }
    }

    #[test]
    fn keys_carry_a_checksum_that_catches_typos() {
        let key = generate_key().unwrap();
        assert!(key.starts_with("sk_"));
        assert!(well_formed(&key));
        let mut typo = key.clone().into_bytes();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        assert!(!well_formed(&String::from_utf8(typo).unwrap()));
        assert!(!well_formed("sk_short_abc"));
        assert_ne!(generate_key().unwrap(), key);
    }
}
