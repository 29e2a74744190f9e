//! Service apps: API keys (`sk_…`, 256 bits of randomness plus a checksum) stored only hashed,
//! and the lookup every service-tier call goes through.

pub mod client;
mod keys;
mod names;
pub mod origins;

pub use keys::{generate_key, key_hash, well_formed};
pub use names::validate_origins;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::error::Error;
use crate::model::Caller;
use crate::model::{DisplayName, ServiceName, Written};
use crate::store::{AdminStore, AppStore, ServiceAppChange, ServiceAppRow, Store, StoreError};

/// Prefix of every service key.
pub const KEY_PREFIX: &str = "sk_";
/// Characters of a key kept for display.
pub const DISPLAY_PREFIX_LEN: usize = 12;
/// How long a key lookup is remembered (a deactivation takes effect within this time).
const CACHE_TTL: Duration = Duration::from_millis(500);
/// How long a known key keeps authenticating while the database cannot be read (no key can be
/// changed meanwhile); past it, calls fail closed with UNAVAILABLE.
const STALE_WHILE_UNAVAILABLE: Duration = Duration::from_secs(30);
/// The one message for every refused key: it never says whether the key exists.
pub const INVALID_KEY: &str = "invalid service key";

/// A remembered key lookup (also a miss) and when it was made.
/// Remembered key lookups: keys that matched an app, and (bounded, oldest dropped first) keys
/// that matched none, so a flood of unknown keys never pushes out the known ones.
#[derive(Default)]
struct KeyCache {
    found: HashMap<Vec<u8>, (Arc<ServiceAppRow>, Instant)>,
    missing: HashMap<Vec<u8>, Instant>,
    missing_order: std::collections::VecDeque<Vec<u8>>,
}

/// Unknown keys remembered at most.
const MISSING_KEYS: usize = 10_000;

impl KeyCache {
    /// `Some(Some(app))` known, `Some(None)` known to match nothing, `None` not remembered.
    fn get(&self, hash: &[u8]) -> Option<Option<Arc<ServiceAppRow>>> {
        if let Some((app, at)) = self.found.get(hash) {
            return (at.elapsed() < CACHE_TTL).then(|| Some(app.clone()));
        }
        self.missing
            .get(hash)
            .filter(|at| at.elapsed() < CACHE_TTL)
            .map(|_| None)
    }

    /// A key that matched an app within [`STALE_WHILE_UNAVAILABLE`], for when the database
    /// cannot say.
    fn stale(&self, hash: &[u8]) -> Option<Arc<ServiceAppRow>> {
        self.found
            .get(hash)
            .filter(|(_, at)| at.elapsed() < STALE_WHILE_UNAVAILABLE)
            .map(|(app, _)| app.clone())
    }

    fn insert(&mut self, hash: Vec<u8>, app: Option<Arc<ServiceAppRow>>) {
        let now = Instant::now();
        match app {
            Some(app) => {
                self.found.insert(hash, (app, now));
            }
            None => {
                if self.missing.insert(hash.clone(), now).is_none() {
                    self.missing_order.push_back(hash);
                }
                while self.missing.len() > MISSING_KEYS {
                    match self.missing_order.pop_front() {
                        Some(oldest) => {
                            self.missing.remove(&oldest);
                        }
                        None => break,
                    }
                }
            }
        }
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// Service apps and key authentication.
pub struct ServiceApps {
    apps: Arc<dyn AppStore>,
    audit: Arc<dyn AdminStore>,
    /// Deleting an app deletes its resources: applied here before the deletion answers.
    engine: Arc<crate::authz::engine::Engine>,
    cache: RwLock<KeyCache>,
    /// Allowed browser origin → its active app; refreshed by [`ServiceApps::refresh_origins`].
    origins: RwLock<HashMap<String, Arc<ServiceAppRow>>>,
    /// Uses since the last flush, for `last_used_at` without a write per request.
    uses: std::sync::Mutex<HashMap<Uuid, chrono::DateTime<Utc>>>,
    /// Last audit of a use of an inactive app's key, per app.
    inactive_alerts: std::sync::Mutex<HashMap<Uuid, chrono::DateTime<Utc>>>,
}

impl ServiceApps {
    /// Over `store`; deletions are applied to `engine` before they answer.
    pub fn new(store: Arc<dyn Store>, engine: Arc<crate::authz::engine::Engine>) -> Self {
        Self {
            apps: store.clone(),
            audit: store,
            engine,
            cache: RwLock::new(KeyCache::default()),
            origins: RwLock::new(HashMap::new()),
            uses: std::sync::Mutex::new(HashMap::new()),
            inactive_alerts: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Creates an app and returns it with its plaintext key (shown once).
    pub async fn create(
        &self,
        name: &str,
        service_name: &str,
        allowed_origins: &[String],
    ) -> Result<(ServiceAppRow, String), Error> {
        self.create_as(&Caller::operator(), name, service_name, allowed_origins)
            .await
    }

    /// [`ServiceApps::create`], audited as `actor`.
    pub async fn create_as(
        &self,
        caller: &Caller,
        name: &str,
        service_name: &str,
        allowed_origins: &[String],
    ) -> Result<(ServiceAppRow, String), Error> {
        let name = DisplayName::parse(name)?.into_string();
        ServiceName::parse(service_name)?;
        let origins = validate_origins(allowed_origins)?;
        self.refuse_taken_origins(&origins, None).await?;
        let key = generate_key()?;
        let now = crate::model::now();
        let app = ServiceAppRow {
            id: Uuid::new_v4(),
            name,
            service_name: service_name.to_string(),
            key_hash: key_hash(&key),
            key_prefix: key.chars().take(DISPLAY_PREFIX_LEN).collect(),
            allowed_origins: serde_json::to_string(&origins).map_err(|_| Error::Internal)?,
            is_active: true,
            created_at: now,
            updated_at: now,
            key_rotated_at: None,
            previous_key_expires_at: None,
            last_used_at: None,
        };
        let audit = audit::event(
            "service_app.created",
            &caller.actor,
            "service_app",
            app.id,
            serde_json::json!({ "service_name": app.service_name, "key_prefix": app.key_prefix }),
        );
        self.apps
            .insert_service_app(&app, &audit)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => Error::AlreadyExists(format!(
                    "a service app for service_name {service_name} already exists"
                )),
                other => other.into(),
            })?;
        self.refresh_origins_after_change().await;
        Ok((app, key))
    }

    /// Refreshes the origins after a committed change; a failure is only logged (the change is
    /// done, and the once-a-second refresh catches up).
    async fn refresh_origins_after_change(&self) {
        if let Err(err) = self.refresh_origins().await {
            tracing::warn!(error = %err, "origins not refreshed after a change; retrying shortly");
        }
    }

    /// Apps whose name matches `query`, by service name after `after`; at most `limit`.
    pub async fn list(
        &self,
        query: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ServiceAppRow>, Error> {
        Ok(self.apps.list_service_apps(query, after, limit).await?)
    }

    /// One app; NOT_FOUND when absent.
    pub async fn get(&self, id: Uuid) -> Result<ServiceAppRow, Error> {
        self.apps
            .service_app_by_id(id)
            .await?
            .ok_or_else(|| Error::NotFound("service app".into()))
    }

    /// An app by its service name.
    pub async fn by_service_name(&self, service_name: &str) -> Result<ServiceAppRow, Error> {
        // Service names are unique; the substring filter narrows the scan to a few rows.
        self.apps
            .list_service_apps(Some(service_name), None, 500)
            .await?
            .into_iter()
            .find(|app| app.service_name == service_name)
            .ok_or_else(|| Error::NotFound(format!("service app {service_name}")))
    }

    /// Changes name, origins or activity. Deactivation takes effect everywhere within a second.
    pub async fn update(
        &self,
        caller: &Caller,
        id: Uuid,
        name: Option<&str>,
        allowed_origins: Option<&[String]>,
        is_active: Option<bool>,
    ) -> Result<ServiceAppRow, Error> {
        let origins = allowed_origins.map(validate_origins).transpose()?;
        if let Some(origins) = &origins {
            self.refuse_taken_origins(origins, Some(id)).await?;
        }
        let change = ServiceAppChange {
            name: name
                .map(DisplayName::parse)
                .transpose()?
                .map(DisplayName::into_string),
            allowed_origins: origins
                .map(|o| serde_json::to_string(&o).unwrap_or_else(|_| "[]".into())),
            is_active,
        };
        let audit = audit::event(
            "service_app.updated",
            &caller.actor,
            "service_app",
            id,
            serde_json::json!({
                "name": change.name, "allowed_origins": allowed_origins, "is_active": is_active
            }),
        );
        let app = self
            .apps
            .update_service_app(id, &change, &audit)
            .await?
            .ok_or_else(|| Error::NotFound("service app".into()))?;
        self.forget_cached();
        self.refresh_origins_after_change().await;
        Ok(app)
    }

    /// Issues a new key; the key it replaces keeps working for `grace`, then only the new one.
    /// Only one previous key is kept, so a rotation during a grace ends the older key at once:
    /// rotating is always possible, and after a leak of both keys, two rotations (or one with a
    /// zero grace) leave only a key the attacker never saw.
    pub async fn rotate_key(
        &self,
        caller: &Caller,
        id: Uuid,
        grace: std::time::Duration,
    ) -> Result<(ServiceAppRow, String), Error> {
        if grace > std::time::Duration::from_secs(30 * 24 * 3600) {
            return Err(Error::invalid("grace_period", "must be at most 30 days"));
        }
        let key = generate_key()?;
        let prefix: String = key.chars().take(DISPLAY_PREFIX_LEN).collect();
        let until =
            crate::model::now() + chrono::Duration::from_std(grace).map_err(|_| Error::Internal)?;
        let audit = audit::event(
            "service_app.key_rotated",
            &caller.actor,
            "service_app",
            id,
            serde_json::json!({ "key_prefix": prefix, "grace_seconds": grace.as_secs() }),
        );
        let app = self
            .apps
            .rotate_service_app_key(id, &key_hash(&key), &prefix, until, &audit)
            .await?
            .ok_or_else(|| Error::NotFound("service app".into()))?;
        self.forget_cached();
        Ok((app, key))
    }

    /// Deletes an app (its key stops working within a second) with its service's resources,
    /// grants, actions and custom roles. Returns the number of resources deleted and the
    /// changelog revision.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<Written<u64>, Error> {
        let audit = audit::event(
            "service_app.deleted",
            &caller.actor,
            "service_app",
            id,
            serde_json::json!({}),
        );
        let (resources, revision) = self
            .apps
            .delete_service_app(id, &audit)
            .await?
            .ok_or_else(|| Error::NotFound("service app".into()))?;
        self.forget_cached();
        self.refresh_origins_after_change().await;
        self.engine.written(revision).await?;
        Ok(Written {
            value: resources,
            revision,
        })
    }

    /// Drops remembered key lookups (after a change made by this process).
    fn forget_cached(&self) {
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Audits an attempt to use a deactivated app's key, at most once a minute per app (the
    /// caller gets the same UNAUTHENTICATED as for an unknown key).
    async fn audit_inactive_use(&self, app: &ServiceAppRow) {
        let now = crate::model::now();
        {
            let mut last = self
                .inactive_alerts
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last
                .get(&app.id)
                .is_some_and(|at| now - *at < chrono::Duration::minutes(1))
            {
                return;
            }
            last.insert(app.id, now);
        }
        let mut event = audit::event(
            "service_app.key_used_while_inactive",
            &Actor {
                service: Some(app.service_name.clone()),
                ..Actor::default()
            },
            "service_app",
            app.id,
            serde_json::json!({ "key_prefix": app.key_prefix }),
        );
        event.outcome = "denied".into();
        // Written in the background: the refusal must take as long as for an unknown key.
        let audit = self.audit.clone();
        tokio::spawn(async move {
            if let Err(err) = audit.insert_audit(&event).await {
                tracing::warn!(error = %err, "audit of an inactive key use failed");
            }
        });
    }

    /// Records a use of `app` for `last_used_at` (written in batches by [`ServiceApps::flush_uses`]).
    fn record_use(&self, app: Uuid) {
        self.uses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(app, crate::model::now());
    }

    /// Writes the recorded uses (run every few seconds by the server).
    pub async fn flush_uses(&self) -> Result<(), Error> {
        let uses: Vec<_> =
            std::mem::take(&mut *self.uses.lock().unwrap_or_else(|p| p.into_inner()))
                .into_iter()
                .collect();
        if !uses.is_empty() {
            self.apps.touch_service_apps(&uses).await?;
        }
        Ok(())
    }

    /// Every service app, paged through the store.
    async fn all_apps(&self) -> Result<Vec<ServiceAppRow>, Error> {
        let mut all = Vec::new();
        loop {
            let after = all.last().map(|a: &ServiceAppRow| a.service_name.clone());
            let page = self
                .apps
                .list_service_apps(None, after.as_deref(), 1000)
                .await?;
            let full = page.len() == 1000;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// ALREADY_EXISTS when another app (active or not) lists one of `origins`: a browser origin
    /// identifies exactly one service.
    async fn refuse_taken_origins(
        &self,
        origins: &[String],
        except: Option<Uuid>,
    ) -> Result<(), Error> {
        if origins.is_empty() {
            return Ok(());
        }
        for app in self
            .all_apps()
            .await?
            .iter()
            .filter(|a| Some(a.id) != except)
        {
            let theirs: Vec<String> =
                serde_json::from_str(&app.allowed_origins).unwrap_or_default();
            if let Some(origin) = origins.iter().find(|o| theirs.contains(o)) {
                return Err(Error::AlreadyExists(format!(
                    "allowed_origins: {origin} is already an origin of service app {}",
                    app.service_name
                )));
            }
        }
        Ok(())
    }

    /// Re-reads the allowed origins of every active app (run every second by the server).
    pub async fn refresh_origins(&self) -> Result<(), Error> {
        let mut origins = HashMap::new();
        for app in self.all_apps().await? {
            if !app.is_active {
                continue;
            }
            let app_origins: Vec<String> =
                serde_json::from_str(&app.allowed_origins).unwrap_or_default();
            let shared = Arc::new(app);
            for origin in app_origins {
                origins.insert(origin, shared.clone());
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
            .get(&hash);
        let app = match cached {
            Some(app) => app,
            None => {
                let found = self
                    .apps
                    .service_app_by_key_hash(&hash, crate::model::now())
                    .await;
                match found {
                    Ok(app) => {
                        let app = app.map(Arc::new);
                        self.cache
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(hash, app.clone());
                        app
                    }
                    // The database is down: a key known a moment ago still is (not remembered
                    // anew, so the grace ends).
                    Err(StoreError::Unavailable) => {
                        let stale = self
                            .cache
                            .read()
                            .unwrap_or_else(|p| p.into_inner())
                            .stale(&hash);
                        Some(stale.ok_or(Error::Unavailable)?)
                    }
                    Err(err) => return Err(err.into()),
                }
            }
        };
        let app = app.ok_or(Error::Unauthenticated(INVALID_KEY))?;
        if !app.is_active {
            self.audit_inactive_use(&app).await;
            return Err(Error::Unauthenticated(INVALID_KEY));
        }
        self.record_use(app.id);
        Ok(app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u128) -> Arc<ServiceAppRow> {
        let now = crate::model::now();
        Arc::new(ServiceAppRow {
            id: Uuid::from_u128(id),
            name: "n".into(),
            service_name: "s".into(),
            key_hash: Vec::new(),
            key_prefix: String::new(),
            allowed_origins: "[]".into(),
            is_active: true,
            created_at: now,
            updated_at: now,
            key_rotated_at: None,
            previous_key_expires_at: None,
            last_used_at: None,
        })
    }

    #[test]
    fn unknown_keys_never_push_out_known_ones() {
        let mut cache = KeyCache::default();
        cache.insert(b"known".to_vec(), Some(row(1)));
        for i in 0..(MISSING_KEYS * 3) {
            cache.insert(format!("random-{i}").into_bytes(), None);
        }
        assert!(matches!(cache.get(b"known"), Some(Some(_))));
        assert_eq!(cache.missing.len(), MISSING_KEYS);
        assert_eq!(cache.missing_order.len(), MISSING_KEYS);
        assert!(cache.get(b"random-0").is_none(), "oldest unknown dropped");
        assert!(matches!(
            cache.get(format!("random-{}", MISSING_KEYS * 3 - 1).as_bytes()),
            Some(None)
        ));
    }

    #[test]
    fn known_keys_outlive_their_ttl_only_while_the_database_is_down() {
        let mut cache = KeyCache::default();
        let long_ago = Instant::now() - CACHE_TTL * 2;
        let too_long_ago = Instant::now() - STALE_WHILE_UNAVAILABLE * 2;
        cache.found.insert(b"lapsed".to_vec(), (row(1), long_ago));
        cache.found.insert(b"gone".to_vec(), (row(2), too_long_ago));
        cache.insert(b"unknown".to_vec(), None);
        assert!(
            cache.get(b"lapsed").is_none(),
            "not served while the database answers"
        );
        assert_eq!(cache.stale(b"lapsed").map(|a| a.id), Some(row(1).id));
        assert!(cache.stale(b"gone").is_none(), "the grace ends");
        assert!(cache.stale(b"unknown").is_none(), "a miss is never a hit");
    }

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
