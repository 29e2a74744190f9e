//! Wiring: config → store → cache → domain → server. What `sentinel serve` runs and what the
//! integration tests start on an ephemeral port.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use crate::apps::ServiceApps;
use crate::apps::origins::AllowedOrigins;
use crate::cache::{self, Cache};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::server;
use crate::services::Services;
use crate::store::{self, Store};
use crate::tokens::kek::Kek;
use crate::tokens::keys::KeyRing;
use crate::tokens::revocation::{self, RevocationSet};
use crate::tokens::rotation::KEYS_CHANNEL;
use crate::tokens::service::{TokenPolicy, TokenService};

/// How often each process re-reads the signing keys (a fallback: rotations are also announced).
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(30);
/// How often counted failures are written to the audit trail (and at shutdown).
const FAILURE_AUDIT_INTERVAL: Duration = Duration::from_secs(60);

/// The wiring: the domain services plus the store and cache they are built over (for the
/// background tasks and operator commands). Dereferences to [`Services`]. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// What handlers are given.
    pub services: Services,
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// Ephemeral shared state.
    pub cache: Arc<dyn Cache>,
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

impl AppState {
    /// Connects to the configured backends, applies migrations (unless disabled) and loads the
    /// signing keys.
    pub async fn initialize(config: Config) -> anyhow::Result<Self> {
        Self::initialize_with(config, Arc::new(crate::model::SystemClock)).await
    }

    /// [`AppState::initialize`], with the key ring, the token service and the permission engine
    /// reading time from `clock`.
    pub async fn initialize_with(
        config: Config,
        clock: Arc<dyn crate::model::Clock>,
    ) -> anyhow::Result<Self> {
        let store = store::connect(&config).await?;
        if config.migrate_on_start {
            store
                .migrate()
                .await
                .context("database migrations failed")?;
        }
        let cache = cache::connect(&config).await?;
        let kek = Kek::from_config(&config)?;
        let cache_mac = kek.cache_mac();
        let keys = Arc::new(
            KeyRing::initialize(
                store.clone(),
                kek,
                config.effective_issuer(),
                config.signing_algorithm,
                clock.clone(),
            )
            .await?,
        );
        let revocations = Arc::new(RevocationSet::default());
        revocations
            .catch_up(store.as_ref())
            .await
            .context("cannot read the revocation log")?;
        let tokens = Arc::new(TokenService::new(
            store.clone(),
            cache.clone(),
            keys.clone(),
            revocations,
            TokenPolicy {
                issuer: config.effective_issuer(),
                access_ttl: config.access_token_ttl,
                authz_ttl: config.authz_token_ttl,
                refresh_ttl: config.refresh_token_ttl,
                reuse_grace: config.refresh_reuse_grace,
                max_groups: config.token_max_groups,
                max_actions: config.token_max_actions,
                max_staleness: config.revocation_max_staleness,
            },
            clock.clone(),
        ));
        let engine = Arc::new(
            crate::authz::engine::Engine::load(store.clone(), cache.clone(), clock.clone())
                .await
                .map_err(|e| anyhow::anyhow!("cannot build the permission index: {e}"))?,
        );
        let mut metrics = Metrics::new(|path| crate::credentials::tiers::tiers_of(path).is_some());
        metrics.observe(engine.clone(), tokens.clone());
        let metrics = Arc::new(metrics);
        let limiter = Arc::new(RateLimiter::new(
            cache.clone(),
            metrics.clone(),
            config.rate_limit.clone(),
        ));
        let apps = Arc::new(ServiceApps::new(store.clone(), engine.clone()));
        apps.refresh_origins()
            .await
            .map_err(|e| anyhow::anyhow!("cannot read service apps: {e}"))?;
        let origins = AllowedOrigins::new(config.cors_origins.iter().cloned(), apps.clone());
        let failures = Arc::new(crate::audit::FailureLog::default());
        let login = Arc::new(
            crate::login::Login::new(
                &config,
                store.clone(),
                cache.clone(),
                tokens.clone(),
                failures.clone(),
                cache_mac,
            )
            .map_err(|e| anyhow::anyhow!("cannot set up sign-in: {e}"))?,
        );
        let services = Services {
            streams: crate::streams::StreamSlots::new(config.max_streams_per_key),
            failures,
            login,
            users: Arc::new(crate::users::Users::new(store.clone(), tokens.clone())),
            key_rotation: Arc::new(crate::tokens::rotation::KeyRotation::new(
                keys.clone(),
                store.clone(),
                cache.clone(),
            )),
            platform: Arc::new(crate::platform::Platform::new(store.clone(), cache.clone())),
            resources: Arc::new(crate::authz::resources::Resources::new(
                store.clone(),
                engine.clone(),
            )),
            engine: engine.clone(),
            config: Arc::new(config),
            keys,
            metrics,
            limiter,
            origins,
            apps,
            client_apps: Arc::new(crate::apps::client::ClientApps::new(
                store.clone(),
                tokens.clone(),
            )),
            workspaces: Arc::new(crate::tenancy::Workspaces::new(
                store.clone(),
                tokens.clone(),
                engine.clone(),
            )),
            tokens,
        };
        Ok(Self {
            services,
            store,
            cache,
        })
    }
}

/// A running server.
pub struct Application {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    state: AppState,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<anyhow::Result<()>>,
    background: Vec<JoinHandle<()>>,
}

impl Application {
    /// Initializes everything, binds the listener and starts serving in the background.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        Self::start_with(config, Arc::new(crate::model::SystemClock)).await
    }

    /// [`Application::start`], with the key ring, the token service and the permission engine
    /// reading time from `clock`.
    pub async fn start_with(
        config: Config,
        clock: Arc<dyn crate::model::Clock>,
    ) -> anyhow::Result<Self> {
        let listen = config.listen_addr()?;
        let state = AppState::initialize_with(config, clock).await?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let local_addr = listener.local_addr()?;
        let (metrics_addr, metrics_server) = match &state.config.metrics_listen {
            Some(address) => {
                let metrics_listener = tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address} (metrics_listen)"))?;
                let addr = metrics_listener.local_addr()?;
                let router = crate::http::metrics_router(state.services.clone());
                let task = tokio::spawn(async move {
                    if let Err(err) = axum::serve(metrics_listener, router).await {
                        tracing::error!(error = %err, "metrics listener failed");
                    }
                });
                (Some(addr), Some(task))
            }
            None => (None, None),
        };

        let (health, health_service) = tonic_health::server::health_reporter();
        let router = server::router(&state.services, health_service)?;
        let (shutdown, mut shutdown_rx) = watch::channel(false);

        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let config = state.config.clone();
        let signal = {
            let mut rx = shutdown_rx.clone();
            async move {
                stopped(&mut rx).await;
                health
                    .set_service_status("", tonic_health::ServingStatus::NotServing)
                    .await;
            }
        };
        let serve = tonic::transport::Server::builder()
            .accept_http1(true)
            .timeout(config.request_timeout)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .max_concurrent_streams(Some(1024))
            .add_routes(tonic::service::Routes::from(router))
            .serve_with_incoming_shutdown(incoming, signal);
        let grace = config.shutdown_grace;
        let server = tokio::spawn(async move {
            tokio::pin!(serve);
            tokio::select! {
                result = &mut serve => return result.context("server failed"),
                () = stopped(&mut shutdown_rx) => {}
            }
            // Draining: in-flight calls finish, new connections are refused.
            match tokio::time::timeout(grace, serve).await {
                Ok(result) => result.context("server failed"),
                Err(_) => {
                    tracing::warn!(
                        ?grace,
                        "shutdown grace elapsed; closing remaining connections"
                    );
                    Ok(())
                }
            }
        });

        let mut background = vec![
            spawn_key_reload(state.clone(), shutdown.subscribe()),
            spawn_janitor(state.clone(), shutdown.subscribe()),
            spawn_failure_audit(state.clone(), shutdown.subscribe()),
            spawn_origin_refresh(state.clone(), shutdown.subscribe()),
            crate::authz::engine::follow(state.engine.clone(), shutdown.subscribe()),
            revocation::follow(
                state.tokens.revocations(),
                state.store.clone(),
                state.cache.clone(),
                shutdown.subscribe(),
            ),
        ];
        // Ended with the other background tasks at shutdown.
        background.extend(metrics_server);
        if let Some(addr) = metrics_addr {
            tracing::info!("metrics on {addr} (/metrics only)");
        }
        tracing::info!(
            "sentinel listening on {local_addr} (gRPC, gRPC-web, HTTP); database: {} ({}); cache: {}",
            state.store.backend(),
            crate::config::redact_url(&state.config.effective_database_url()),
            state.cache.backend(),
        );
        Ok(Self {
            local_addr,
            metrics_addr,
            state,
            shutdown,
            server,
            background,
        })
    }

    /// The bound address (the ephemeral port when `listen` ends in `:0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound address of `metrics_listen`, when set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The shared state (for tests and operator commands).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        signal.await;
        tracing::info!("shutting down: draining in-flight calls");
        self.shutdown().await
    }

    /// Stops accepting, drains in-flight calls (up to `shutdown_grace`) and closes the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        let result = match self.server.await {
            Ok(result) => result,
            Err(join) => Err(anyhow::anyhow!("server task failed: {join}")),
        };
        for task in self.background {
            task.abort();
        }
        // What was counted since the last minute's write.
        self.state.failures.flush(self.state.store.as_ref()).await;
        self.state.store.close().await;
        result
    }
}

/// Re-reads the key ring periodically, and right when a pending key is due to sign.
fn spawn_key_reload(state: AppState, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut announcements = state.cache.subscribe(KEYS_CHANNEL).await.ok();
        loop {
            let until_activation = state
                .keys
                .until_activation()
                .map(|d| d + Duration::from_millis(50));
            let wait = until_activation.map_or(KEY_RELOAD_INTERVAL, |d| d.min(KEY_RELOAD_INTERVAL));
            tokio::select! {
                () = tokio::time::sleep(wait) => {
                    if let Err(err) = state.keys.reload().await {
                        tracing::warn!(error = %err, "signing key reload failed");
                    }
                }
                // A rotation in this process: plan the wake-up for its activation.
                () = state.keys.reloaded() => {}
                // A rotation anywhere in the cluster.
                Some(_) = async {
                    match announcements.as_mut() {
                        Some(sub) => sub.next().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Err(err) = state.keys.reload().await {
                        tracing::warn!(error = %err, "signing key reload failed");
                    }
                }
                () = stopped(&mut stop) => break,
            }
        }
    })
}

/// Keeps the allowed browser origins of service apps current (a change anywhere in the cluster
/// takes effect here within a second), and writes service apps' last use every ten seconds.
fn spawn_origin_refresh(state: AppState, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    if let Err(err) = state.apps.refresh_origins().await {
                        tracing::debug!(error = %err, "service app origins not refreshed");
                    }
                    ticks += 1;
                    if ticks.is_multiple_of(10)
                        && let Err(err) = state.apps.flush_uses().await
                    {
                        tracing::debug!(error = %err, "service app last use not written");
                    }
                }
                () = stopped(&mut stop) => break,
            }
        }
    })
}

/// Every ten minutes: deletes revocation-log entries and refresh tokens that expired over an
/// hour ago, audit events older than `audit_retention` and changelog entries older than
/// `changelog_retention` (any replica may do it; the deletes are idempotent).
fn spawn_janitor(state: AppState, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(600)) => {
                    let before = crate::model::now() - chrono::Duration::hours(1);
                    match state.store.wipe_retired_keys().await {
                        Ok(keys) if keys > 0 => tracing::info!(keys, "deleted retired private keys"),
                        Ok(_) => {}
                        Err(err) => tracing::warn!(error = %err, "retired key wipe failed"),
                    }
                    match state.store.prune(before).await {
                        Ok(rows) if rows > 0 => tracing::info!(rows, "pruned expired token state"),
                        Ok(_) => {}
                        Err(err) => tracing::warn!(error = %err, "pruning failed"),
                    }
                    let retention = chrono::Duration::from_std(state.config.audit_retention)
                        .unwrap_or(chrono::Duration::days(365));
                    match state.store.purge_audit(crate::model::now() - retention).await {
                        Ok(rows) if rows > 0 => tracing::info!(rows, "purged old audit events"),
                        Ok(_) => {}
                        Err(err) => tracing::warn!(error = %err, "audit purge failed"),
                    }
                    match state.engine.prune_changelog(state.config.changelog_retention).await {
                        Ok(rows) if rows > 0 => tracing::info!(rows, "pruned old changelog entries"),
                        Ok(_) => {}
                        Err(err) => tracing::warn!(error = %err, "changelog pruning failed"),
                    }
                }
                () = stopped(&mut stop) => break,
            }
        }
    })
}

/// Once a minute: writes the tallies of refused credentials and failed sign-ins.
fn spawn_failure_audit(state: AppState, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(FAILURE_AUDIT_INTERVAL) => {
                    state.failures.flush(state.store.as_ref()).await;
                }
                () = stopped(&mut stop) => break,
            }
        }
    })
}

/// Completes once shutdown was requested (or the sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
