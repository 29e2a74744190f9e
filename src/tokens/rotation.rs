//! Rotating and retiring signing keys as an operation: the key ring changes, the change is
//! audited, and every replica is told to reload at once (they also reload every 30 s).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::keys::{KeyError, KeyRing, RetireOutcome, SigningAlgorithm, SigningKey};
use crate::audit;
use crate::cache::Cache;
use crate::model::Caller;
use crate::store::AdminStore;

/// Pub/sub channel telling replicas to reload the key ring.
pub const KEYS_CHANNEL: &str = "signing-keys";

/// Rotation and retirement of signing keys.
pub struct KeyRotation {
    keys: Arc<KeyRing>,
    audit: Arc<dyn AdminStore>,
    cache: Arc<dyn Cache>,
}

impl KeyRotation {
    /// Over the key ring; audits to `audit`, announces over `cache`.
    pub fn new(keys: Arc<KeyRing>, audit: Arc<dyn AdminStore>, cache: Arc<dyn Cache>) -> Self {
        Self { keys, audit, cache }
    }

    async fn announce(&self, what: &str) {
        if let Err(err) = self.cache.publish(KEYS_CHANNEL, b"1").await {
            tracing::warn!(error = %err, "{what} not announced; replicas reload within 30 s");
        }
    }

    /// A new `algorithm` key that signs from `publish_delay` on, the replaced keys verifying
    /// for `overlap` more; audited as `actor`. The key and when it starts signing.
    pub async fn rotate(
        &self,
        caller: &Caller,
        algorithm: SigningAlgorithm,
        publish_delay: Duration,
        overlap: Duration,
    ) -> Result<(SigningKey, DateTime<Utc>), KeyError> {
        let (key, activate_at) = self.keys.rotate(algorithm, publish_delay, overlap).await?;
        self.announce("rotation").await;
        let event = audit::event(
            "signing_key.rotated",
            &caller.actor,
            "signing_key",
            &key.kid,
            serde_json::json!({
                "overlap_seconds": overlap.as_secs(),
                "algorithm": algorithm.as_str(),
                "activate_at": activate_at.to_rfc3339(),
            }),
        );
        // The rotation happened: a lost audit row must not turn it into an error.
        if let Err(err) = self.audit.insert_audit(&event).await {
            tracing::warn!(error = %err, "audit of key rotation failed");
        }
        Ok((key, activate_at))
    }

    /// Ends a retired or retiring key at once (see [`KeyRing::retire_now`]), audited as
    /// `actor`.
    pub async fn retire(&self, caller: &Caller, kid: &str) -> Result<RetireOutcome, KeyError> {
        let outcome = self.keys.retire_now(kid).await?;
        if outcome != RetireOutcome::Retired {
            return Ok(outcome);
        }
        let event = audit::event(
            "signing_key.retired",
            &caller.actor,
            "signing_key",
            kid,
            serde_json::json!({}),
        );
        self.audit.insert_audit(&event).await?;
        self.announce("retirement").await;
        Ok(outcome)
    }
}
