//! Test harness: starts the real server in-process on an ephemeral port, on either backend, and
//! hands the test a gRPC channel and an HTTP client.
//!
//! Backends:
//! - `Embedded`: a SQLite file in a temp dir + the in-process cache.
//! - `Clustered`: PostgreSQL (a fresh schema per test, from `SENTINEL_TEST_DATABASE_URL`, default
//!   postgres://postgres@127.0.0.1:5432/test) + Redis (a fresh key prefix per test, from
//!   `SENTINEL_TEST_REDIS_URL`, default redis://127.0.0.1:6379).
//!
//! With `CI=true` an unreachable PostgreSQL or Redis fails the test; elsewhere the clustered
//! variant is skipped with a loud message, and reported as skipped by scripts/test.sh.

#![allow(dead_code)]

pub mod clients;
pub mod contract;
pub mod model;
pub mod oidc;
pub mod process;
pub mod protodoc;
pub mod proxy;
pub mod resources;
pub mod rows;
pub mod wait;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use sentinel::model::AdjustableClock;
use sentinel::{Application, Config};
use sqlx::Connection;
use tonic::transport::Channel;

/// Which storage and cache a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite + in-process cache.
    Embedded,
    /// PostgreSQL + Redis.
    Clustered,
}

/// Defines `mod embedded` and `mod clustered`, each with one `#[tokio::test]` per listed test
/// function, so every scenario runs on both backends.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Embedded).await;
                }
            )*
        }
        mod clustered {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !$crate::common::clustered_available().await {
                        return;
                    }
                    super::$name($crate::common::Backend::Clustered).await;
                }
            )*
        }
    };
}

/// PostgreSQL URL for tests.
pub fn postgres_url() -> String {
    std::env::var("SENTINEL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// Redis URL for tests.
pub fn redis_url() -> String {
    std::env::var("SENTINEL_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether PostgreSQL and Redis answer. Panics under CI when they do not.
pub async fn clustered_available() -> bool {
    let pg = sqlx::PgConnection::connect(&postgres_url()).await;
    let redis = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect(redis_host_port()),
    )
    .await;
    let ok = pg.is_ok() && matches!(redis, Ok(Ok(_)));
    if !ok {
        let message = format!(
            "PostgreSQL ({}) or Redis ({}) unreachable: {:?}",
            postgres_url(),
            redis_url(),
            pg.err()
        );
        assert!(!in_ci(), "{message}; CI requires both");
        eprintln!("SKIPPED clustered variant: {message}");
        record_skip();
    }
    ok
}

/// Notes a skipped test in the file `TEST_SKIPS_FILE` names (scripts/test.sh sets it and
/// reports the skips apart from the passes; libtest counts a skipped test as passed).
fn record_skip() {
    use std::io::Write;
    let Ok(path) = std::env::var("TEST_SKIPS_FILE") else {
        return;
    };
    let name = std::thread::current()
        .name()
        .unwrap_or("an unnamed test")
        .to_string();
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{name}");
    }
}

fn redis_host_port() -> String {
    let url = redis_url();
    let rest = url.split("://").nth(1).unwrap_or("127.0.0.1:6379");
    let host = rest.rsplit('@').next().unwrap_or(rest);
    host.split('/').next().unwrap_or(host).to_string()
}

/// A fresh, empty database for one test: a SQLite file, or a new PostgreSQL schema.
pub struct TestDatabase {
    /// `database_url` for the server.
    pub url: String,
    /// Where embedded state (SQLite file, generated KEK) lives.
    pub data_dir: PathBuf,
    /// Key prefix in Redis (clustered only).
    pub redis_prefix: String,
    /// KEK shared by every instance on this database.
    pub kek: String,
    /// The backend.
    pub backend: Backend,
    _dir: Arc<tempfile::TempDir>,
}

impl TestDatabase {
    /// Creates the database (and for PostgreSQL drops test schemas left by old runs).
    pub async fn create(backend: Backend) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let data_dir = dir.path().to_path_buf();
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let kek = base64::engine::general_purpose::STANDARD.encode(rand_bytes());
        match backend {
            Backend::Embedded => Self {
                url: format!("sqlite://{}", data_dir.join("sentinel.db").display()),
                data_dir,
                redis_prefix: String::new(),
                kek,
                backend,
                _dir: dir,
            },
            Backend::Clustered => {
                let now = chrono::Utc::now().timestamp();
                let schema = format!("sentinel_test_{now}_{}", &unique[..12]);
                let mut conn = sqlx::PgConnection::connect(&postgres_url())
                    .await
                    .expect("PostgreSQL reachable");
                drop_stale_schemas(&mut conn, now).await;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut conn)
                    .await
                    .expect("create schema");
                let base = postgres_url();
                let separator = if base.contains('?') { '&' } else { '?' };
                Self {
                    url: format!("{base}{separator}options=-c%20search_path%3D{schema}"),
                    data_dir,
                    redis_prefix: format!("sentinel_test:{unique}"),
                    kek,
                    backend,
                    _dir: dir,
                }
            }
        }
    }

    /// Runs one statement on the database, for a test that sets up a state no RPC can (a lapsed
    /// row, say).
    pub async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self.backend {
            Backend::Embedded => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
            }
            Backend::Clustered => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
            }
        }
    }

    /// The text column of every row a query returns, for a test that compares stored state.
    pub async fn texts(&self, sql: &str) -> Vec<String> {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self.backend {
            Backend::Embedded => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
            }
            Backend::Clustered => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
            }
        }
    }

    /// A server configuration on this database, listening on an ephemeral port.
    pub fn config(&self) -> Config {
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: self.data_dir.clone(),
            database_url: Some(self.url.clone()),
            log: "warn".into(),
            ..Config::default()
        };
        if self.backend == Backend::Clustered {
            config.redis_url = Some(redis_url());
            config.redis_prefix = self.redis_prefix.clone();
            config.kek = Some(self.kek.clone());
        }
        config
    }
}

fn rand_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(16) {
        chunk.copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    bytes
}

/// Drops schemas of earlier test runs older than an hour (never those of concurrent runs).
async fn drop_stale_schemas(conn: &mut sqlx::PgConnection, now: i64) {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'sentinel_test_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    for (name,) in rows {
        let created: i64 = name
            .split('_')
            .nth(2)
            .and_then(|t| t.parse().ok())
            .unwrap_or(now);
        if now - created > 3600 {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}

/// A running server and clients for it.
pub struct TestApp {
    /// The application (for shutdown and state).
    pub app: Application,
    /// Its address.
    pub addr: SocketAddr,
    /// `http://addr`.
    pub base_url: String,
    /// HTTP client (HTTP/1.1).
    pub http: reqwest::Client,
    /// gRPC channel (HTTP/2).
    pub channel: Channel,
    /// The server's clock (the system's, until a test moves it ahead).
    pub clock: Arc<AdjustableClock>,
}

impl TestApp {
    /// A server on a fresh database of `backend`.
    pub async fn spawn(backend: Backend) -> (TestApp, TestDatabase) {
        let db = TestDatabase::create(backend).await;
        let app = TestApp::start(db.config()).await;
        (app, db)
    }

    /// A server with `config`.
    pub async fn start(config: Config) -> TestApp {
        Self::try_start(config).await.expect("server starts")
    }

    /// A server with `config`, or why it did not start.
    pub async fn try_start(config: Config) -> anyhow::Result<TestApp> {
        // SENTINEL_TEST_LOG=debug shows the servers' logs while debugging a test.
        if let Ok(filter) = std::env::var("SENTINEL_TEST_LOG") {
            sentinel::telemetry::init(&filter, sentinel::config::LogFormat::Text);
        }
        let clock = Arc::new(AdjustableClock::default());
        let app = Application::start_with(config, clock.clone()).await?;
        let addr = app.local_addr();
        let base_url = format!("http://{addr}");
        let channel = Channel::from_shared(base_url.clone())
            .expect("valid uri")
            .connect()
            .await
            .expect("gRPC connects");
        Ok(TestApp {
            app,
            addr,
            base_url,
            http: reqwest::Client::builder()
                .http1_only()
                .build()
                .expect("http client"),
            channel,
            clock,
        })
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Graceful shutdown.
    pub async fn stop(self) {
        self.app.shutdown().await.expect("clean shutdown");
    }
}

/// A user token pair minted through the operator path (creates user, workspace, membership).
pub async fn sign_in(
    app: &TestApp,
    email: &str,
    workspace: &str,
    role: &str,
) -> sentinel::tokens::service::IssuedTokens {
    sentinel::operator::issue_token(
        app.app.state(),
        &sentinel::operator::IssueTokenRequest {
            email: email.into(),
            workspace: workspace.into(),
            role: Some(role.into()),
            create: true,
            admin: false,
        },
    )
    .await
    .expect("token issued")
}

/// A service app's key.
pub async fn service_key(app: &TestApp, service_name: &str) -> String {
    app.app
        .state()
        .apps
        .create(service_name, service_name, &[])
        .await
        .expect("service app")
        .1
}

/// Adds `authorization: Bearer` to a request.
pub fn with_bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header value"),
    );
    request
}

/// Adds `x-service-key` to a request.
pub fn with_service_key<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-service-key", key.parse().expect("header value"));
    request
}

/// Adds both dual-tier credentials: `x-service-key` and `authorization: Bearer`.
pub fn dual<T>(message: T, key: &str, token: &str) -> tonic::Request<T> {
    let mut request = with_bearer(message, token);
    request
        .metadata_mut()
        .insert("x-service-key", key.parse().expect("header value"));
    request
}

/// How many audit events with `action` the database holds.
pub async fn audit_count(db: &TestDatabase, action: &str) -> i64 {
    audit_details(db, action).await.len() as i64
}

/// The `details` of every audit event with `action`, oldest first.
pub async fn audit_details(db: &TestDatabase, action: &str) -> Vec<serde_json::Value> {
    let sql = "SELECT details FROM audit_events WHERE action = $1 ORDER BY occurred_at";
    let rows: Vec<String> = match db.backend {
        Backend::Embedded => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sql)
                .bind(action)
                .fetch_all(&mut conn)
                .await
                .unwrap()
        }
        Backend::Clustered => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sql)
                .bind(action)
                .fetch_all(&mut conn)
                .await
                .unwrap()
        }
    };
    rows.iter()
        .map(|d| serde_json::from_str(d).expect("details are JSON"))
        .collect()
}

/// The failures counted by the aggregated audit rows of `action` (their `details.count`).
pub async fn audit_failure_total(db: &TestDatabase, action: &str) -> i64 {
    audit_details(db, action)
        .await
        .iter()
        .map(|d| d["count"].as_i64().expect("a count"))
        .sum()
}

/// Signs in root@example.com (owner of "ops"), makes them a platform admin, returns the token.
pub async fn platform_admin(app: &TestApp) -> String {
    let issued = sign_in(app, "root@example.com", "ops", "owner").await;
    app.app
        .state()
        .store
        .set_user_flags(issued.user.id, true, true)
        .await
        .unwrap();
    issued.access_token
}

/// The Prometheus exposition of a test server.
pub async fn metrics_text(app: &TestApp) -> String {
    app.http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

/// A migrated store on a fresh database of `backend`, for the conformance suites.
pub async fn fresh_store(
    backend: Backend,
) -> (std::sync::Arc<dyn sentinel::store::Store>, TestDatabase) {
    let db = TestDatabase::create(backend).await;
    let store = sentinel::store::connect(&db.config())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    (store, db)
}

/// Whether `token`'s user may `action` ("view", "edit") the resource `resource_type/id` of the
/// service holding `key`: one Check at the default consistency.
pub async fn allowed(
    app: &TestApp,
    key: &str,
    token: &str,
    resource_type: &str,
    resource_id: &str,
    action: &str,
) -> bool {
    use sentinel::proto::v1::permission_service_client::PermissionServiceClient;
    use sentinel::proto::v1::{CheckRequest, ResourceRef};
    PermissionServiceClient::new(app.channel.clone())
        .check(dual(
            CheckRequest {
                resource: Some(ResourceRef {
                    resource_type: resource_type.into(),
                    resource_id: resource_id.into(),
                }),
                action: action.into(),
                consistency: None,
            },
            key,
            token,
        ))
        .await
        .expect("Check answers")
        .into_inner()
        .allowed
}
