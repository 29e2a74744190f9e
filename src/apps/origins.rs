//! Browser origins allowed to call over gRPC-web.

use std::collections::HashSet;
use std::sync::Arc;

use super::ServiceApps;

/// Origins allowed to call from browsers: the configured ones plus every allowed origin of an
/// active service app (kept current in memory, so the CORS check does no I/O).
#[derive(Clone)]
pub struct AllowedOrigins {
    configured: Arc<HashSet<String>>,
    apps: Arc<ServiceApps>,
}

impl AllowedOrigins {
    /// The configured `origins` plus those of `apps`.
    pub fn new(origins: impl IntoIterator<Item = String>, apps: Arc<ServiceApps>) -> Self {
        Self {
            configured: Arc::new(origins.into_iter().collect()),
            apps,
        }
    }

    /// Whether `origin` is allowed (exact match).
    pub fn contains(&self, origin: &str) -> bool {
        self.configured.contains(origin) || self.apps.origin_allowed(origin)
    }
}
