//! What the edge (gRPC handlers, the credential layer, HTTP routes) is given: the domain
//! services and the configuration, never the store or the cache. Built once, at start, by the wiring (`app.rs`).

use std::sync::Arc;

/// The domain services handlers call, plus configuration. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// The validated configuration.
    pub config: Arc<crate::config::Config>,
    /// Signing keys and the JWKS.
    pub keys: Arc<crate::tokens::keys::KeyRing>,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Rate limiter.
    pub limiter: Arc<crate::ratelimit::RateLimiter>,
    /// Browser origins allowed for gRPC-web.
    pub origins: crate::apps::origins::AllowedOrigins,
    /// Sessions and tokens.
    pub tokens: Arc<crate::tokens::service::TokenService>,
    /// Service apps and their keys.
    pub apps: Arc<crate::apps::ServiceApps>,
    /// Client apps (browser front ends that sign users in).
    pub client_apps: Arc<crate::apps::client::ClientApps>,
    /// Workspaces.
    pub workspaces: Arc<crate::tenancy::Workspaces>,
    /// The permission engine (in-memory index over the changelog).
    pub engine: Arc<crate::authz::engine::Engine>,
    /// Resources and their grants.
    pub resources: Arc<crate::authz::resources::Resources>,
    /// Users and their profiles.
    pub users: Arc<crate::users::Users>,
    /// Rotation and retirement of signing keys.
    pub key_rotation: Arc<crate::tokens::rotation::KeyRotation>,
    /// Platform administration: CSV import and export, counts, the audit trail.
    pub platform: Arc<crate::platform::Platform>,
    /// Sign-in through identity providers.
    pub login: Arc<crate::login::Login>,
    /// Refused credentials and failed sign-ins, written to the audit trail once a minute.
    pub failures: Arc<crate::audit::FailureLog>,
    /// Open server streams per service key.
    pub streams: Arc<crate::streams::StreamSlots>,
}
