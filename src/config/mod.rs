//! Typed configuration: compiled-in defaults → optional `sentinel.toml` → `SENTINEL_*` environment.
//!
//! Everything is validated once at start; the process refuses to start on an invalid or unsafe
//! configuration and says which key is wrong.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};

/// Durations as configuration text: read with humantime (`15m`, `365d`, `1h 30m`), written in the
/// largest unit that states the value exactly (`365d`, not `11months 30days 3h 50m 24s`).
mod validate;

mod duration_text {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];

    /// `value` in the largest exact unit.
    pub fn format(value: Duration) -> String {
        if value.subsec_nanos() != 0 || value.is_zero() {
            return format!("{}ms", value.as_millis());
        }
        let secs = value.as_secs();
        let (size, unit) = UNITS
            .iter()
            .find(|(size, _)| secs.is_multiple_of(*size))
            .copied()
            .unwrap_or((1, "s"));
        format!("{}{unit}", secs / size)
    }

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        humantime_serde::deserialize(deserializer)
    }
}

/// Whether `url` may be used for credentials and redirects: `https://`, or `http://` to a
/// loopback host (`localhost`, `127.0.0.0/8`, `[::1]`) for development.
pub fn secure_or_loopback(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Name of the optional configuration file looked up in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "sentinel.toml";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Per-client-address rate limiting.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Whether the limiter is on at all.
    pub enabled: bool,
    /// Requests a single client address may make per window.
    pub per_address: u32,
    /// Length of the fixed counting window.
    #[serde(with = "duration_text")]
    pub window: Duration,
    /// Take the client address from the first `x-forwarded-for` entry (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Requests one service key may make per window (across replicas in clustered mode).
    pub per_key: u32,
    /// Requests one user (access token subject) may make per window.
    pub per_user: u32,
    /// Calls of sign-in, token and key-management RPCs one client address may make per window.
    pub sensitive_per_address: u32,
    /// Sign-ins one client address (IPv6: its /64) may start within one `login_timeout`; each
    /// holds a login state in the cache until it completes or times out.
    pub login_states_per_address: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            per_address: 6000,
            window: Duration::from_secs(60),
            trust_forwarded_for: false,
            per_key: 600_000,
            per_user: 6000,
            sensitive_per_address: 300,
            login_states_per_address: 100,
        }
    }
}

/// Kind of an identity provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenID Connect issuer, by discovery (`issuer` required).
    Oidc,
    /// Google (OIDC preset: issuer `https://accounts.google.com`).
    Google,
    /// Microsoft Entra ID (OIDC preset: issuer `https://login.microsoftonline.com/{tenant}/v2.0`).
    Entra,
    /// GitHub OAuth2 and its user API.
    Github,
}

/// One identity provider users sign in through.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// `oidc`, `google`, `entra` or `github`.
    pub kind: ProviderKind,
    /// Name on the sign-in button; default: derived from the kind.
    #[serde(default)]
    pub display_name: String,
    /// OAuth client id registered at the provider.
    pub client_id: String,
    /// OAuth client secret. Prefer `client_secret_file`, which keeps it out of the file.
    #[serde(default)]
    pub client_secret: String,
    /// A file holding the client secret (e.g. a mounted Kubernetes Secret); read at start.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Issuer URL (required for `oidc`; overrides the preset of `google` and `entra`).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Entra tenant id or domain (default `common`).
    #[serde(default)]
    pub tenant: Option<String>,
    /// Scopes requested (default `openid email profile`; GitHub `read:user user:email`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Audiences accepted in ID tokens presented to ResolveIdpToken (client apps that sign users
    /// in with their own client id at this provider); `client_id` is always accepted.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// GitHub: authorization endpoint (default `https://github.com/login/oauth/authorize`).
    #[serde(default)]
    pub authorize_url: Option<String>,
    /// GitHub: token endpoint (default `https://github.com/login/oauth/access_token`).
    #[serde(default)]
    pub token_url: Option<String>,
    /// GitHub: API base (default `https://api.github.com`).
    #[serde(default)]
    pub api_url: Option<String>,
    /// Accept this provider's tokens in AuthService.ResolveIdpToken (authz mode). Default: on for
    /// OIDC providers (their ID tokens name their audience, checked against `audiences`), off
    /// for GitHub, whose access tokens name none: when on, each token is checked with GitHub to
    /// belong to this provider's OAuth app (`client_id`) before it is used.
    #[serde(default)]
    pub authz_mode: Option<bool>,
    /// Link a first sign-in to the existing account with the same email, and let
    /// `admin_emails` promote it. Default: on for Google, for Entra ID when the token carries
    /// `xms_edov` (domain verified by the tenant), and for GitHub (primary verified email); off
    /// for other OIDC issuers, whose email claims anyone running the issuer can set.
    #[serde(default)]
    pub trust_email_for_linking: Option<bool>,
    /// When set, only these email domains may sign in (Google `hd` and Entra `tid` claims, when
    /// present, must be listed too).
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Whether a first sign-in may create an account (default true). When false, only users
    /// that exist (created by an admin, the CLI or an import) can sign in.
    #[serde(default)]
    pub allow_signup: Option<bool>,
}

/// The whole configuration of one `sentinel` process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the single listener serving gRPC, gRPC-web and HTTP (`SENTINEL_LISTEN`).
    pub listen: String,
    /// Directory for embedded-mode state: the SQLite file and the generated key-encryption key.
    pub data_dir: PathBuf,
    /// `postgres://…` for clustered mode, `sqlite://…` to place the SQLite file explicitly.
    /// Unset: `sqlite://<data_dir>/sentinel.db`.
    pub database_url: Option<String>,
    /// Maximum connections in the database pool.
    pub database_max_connections: u32,
    /// `redis://…` or `rediss://…`; unset: the in-process cache.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel, so several deployments can share one Redis.
    pub redis_prefix: String,
    /// Key-encryption key: base64 of 32 random bytes. Required with PostgreSQL; in embedded mode it is
    /// generated into `<data_dir>/kek` when absent.
    pub kek: Option<String>,
    /// `tracing` filter, e.g. `info` or `sentinel=debug,info`.
    pub log: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Public base URL of this deployment: the `iss` claim and the discovery base.
    /// Unset: `http://<listen>`.
    pub issuer: Option<String>,
    /// Apply pending migrations when the server starts (turn off when a migration job runs them).
    pub migrate_on_start: bool,
    /// Origins allowed to make gRPC-web calls from a browser (exact match).
    #[serde(deserialize_with = "string_or_list")]
    pub cors_origins: Vec<String>,
    /// Longest time a request may take to produce its response headers.
    #[serde(with = "duration_text")]
    pub request_timeout: Duration,
    /// Largest accepted request body or gRPC message, in bytes.
    pub max_request_bytes: usize,
    /// A separate `host:port` serving only `/metrics` (then not served on `listen`), so that
    /// scrapes stay off the public port. Unset: `/metrics` on `listen`.
    pub metrics_listen: Option<String>,
    /// Server streams (Watch, WatchRevocations) one service key may hold open on a replica;
    /// more are RESOURCE_EXHAUSTED.
    pub max_streams_per_key: u32,
    /// How long shutdown waits for in-flight calls before closing connections.
    #[serde(with = "duration_text")]
    pub shutdown_grace: Duration,
    /// `Cache-Control: max-age` of the JWKS document.
    #[serde(with = "duration_text")]
    pub jwks_max_age: Duration,
    /// Rate limiting per client address.
    pub rate_limit: RateLimitConfig,
    /// Lifetime of access tokens.
    #[serde(with = "duration_text")]
    pub access_token_ttl: Duration,
    /// Lifetime of authz tokens (ResolveIdpToken).
    #[serde(with = "duration_text")]
    pub authz_token_ttl: Duration,
    /// Lifetime of a session (refresh-token family) from sign-in.
    #[serde(with = "duration_text")]
    pub refresh_token_ttl: Duration,
    /// How long an already-rotated refresh token is still accepted (concurrent tabs, retries).
    #[serde(with = "duration_text")]
    pub refresh_reuse_grace: Duration,
    /// Group ids an access token carries at most; past it the token says `groups_truncated`
    /// (keeps tokens under the 8 KiB every verifier accepts).
    pub token_max_groups: usize,
    /// Actions an authz token carries at most; past it the token says `actions_truncated`.
    pub token_max_actions: usize,
    /// How long a replica may fail to read the revocation log before it refuses tokens
    /// (UNAVAILABLE) instead of trusting a revocation set that may miss revocations.
    #[serde(with = "duration_text")]
    pub revocation_max_staleness: Duration,
    /// How long audit events are kept.
    #[serde(with = "duration_text")]
    pub audit_retention: Duration,
    /// How long authorization changelog entries are kept: how far back `Watch` can resume.
    #[serde(with = "duration_text")]
    pub changelog_retention: Duration,
    /// Algorithm of new signing keys: `RS256`, `ES256` or `EdDSA`.
    pub signing_algorithm: crate::model::SigningAlgorithm,
    /// How long a rotated-in key is published before it signs, so verifiers that cache the
    /// JWKS know it first. Defaults to the JWKS max-age.
    #[serde(with = "duration_text")]
    pub key_publish_delay: Duration,
    /// Identity providers by id (the `{provider}` of `/oauth/{provider}/login`), e.g.
    /// `[providers.google] kind = "google"`.
    pub providers: std::collections::BTreeMap<String, ProviderConfig>,
    /// Emails made platform admins when they sign in (bootstrap); comma-separated in the
    /// environment.
    #[serde(deserialize_with = "string_or_list")]
    pub admin_emails: Vec<String>,
    /// How long a started login waits for the provider's callback.
    #[serde(with = "duration_text")]
    pub login_timeout: Duration,
    /// Lifetime of the one-time code handed to the client app after the callback.
    #[serde(with = "duration_text")]
    pub login_code_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_max_connections: 16,
            redis_url: None,
            redis_prefix: "sentinel".into(),
            kek: None,
            log: "info".into(),
            log_format: LogFormat::Text,
            issuer: None,
            migrate_on_start: true,
            cors_origins: Vec::new(),
            request_timeout: Duration::from_secs(30),
            max_request_bytes: 8 * 1024 * 1024,
            metrics_listen: None,
            max_streams_per_key: 32,
            shutdown_grace: Duration::from_secs(30),
            jwks_max_age: Duration::from_secs(300),
            rate_limit: RateLimitConfig::default(),
            access_token_ttl: Duration::from_secs(15 * 60),
            authz_token_ttl: Duration::from_secs(5 * 60),
            refresh_token_ttl: Duration::from_secs(7 * 24 * 3600),
            refresh_reuse_grace: Duration::from_secs(5),
            token_max_groups: 64,
            token_max_actions: 128,
            revocation_max_staleness: Duration::from_secs(30),
            audit_retention: Duration::from_secs(365 * 24 * 3600),
            changelog_retention: Duration::from_secs(7 * 24 * 3600),
            signing_algorithm: crate::model::SigningAlgorithm::RS256,
            key_publish_delay: Duration::from_secs(300),
            providers: std::collections::BTreeMap::new(),
            admin_emails: Vec::new(),
            login_timeout: Duration::from_secs(600),
            login_code_ttl: Duration::from_secs(60),
        }
    }
}

/// Which database a configuration selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The sources could not be read or parsed.
    #[error("configuration could not be read: {0}")]
    Load(String),
    /// A key holds a value that is not allowed.
    #[error("invalid configuration `{key}`: {reason}")]
    Invalid {
        /// The configuration key (as in `sentinel.toml`).
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl Config {
    /// Loads defaults, then `file` (or `./sentinel.toml` when it exists), then `SENTINEL_*`.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError::Load(format!(
                        "config file {} does not exist",
                        path.display()
                    )));
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE));
            }
            None => {}
        }
        figment = figment.merge(
            Env::prefixed("SENTINEL_")
                .ignore(&[
                    "CONFIG",
                    "TEST_DATABASE_URL",
                    "TEST_REDIS_URL",
                    // The import command's, not the server's.
                    "SERVER",
                    "SERVICE_KEY",
                ])
                .split("__"),
        );
        let mut config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        for provider in config.providers.values_mut() {
            if let Some(path) = &provider.client_secret_file {
                provider.client_secret = std::fs::read_to_string(path)
                    .map_err(|_| {
                        invalid(
                            "providers.client_secret_file",
                            format!("{} cannot be read", path.display()),
                        )
                    })?
                    .trim()
                    .to_string();
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// The listen address as a socket address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen
            .parse()
            .map_err(|_| invalid("listen", format!("`{}` is not an ip:port", self.listen)))
    }

    /// The database URL in effect (the embedded default when unset).
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("sentinel.db").display()),
        }
    }

    /// Which database backend this configuration selects.
    pub fn database_kind(&self) -> DatabaseKind {
        match self.database_url.as_deref() {
            Some(url) if url.starts_with("postgres") => DatabaseKind::Postgres,
            _ => DatabaseKind::Sqlite,
        }
    }

    /// The issuer (`iss`) in effect.
    pub fn effective_issuer(&self) -> String {
        match &self.issuer {
            Some(issuer) => issuer.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.listen),
        }
    }

    /// The configuration as TOML with every secret replaced, for `sentinel config check`.
    pub fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database_url = Some(redact_url(&self.effective_database_url()));
        shown.redis_url = self.redis_url.as_deref().map(redact_url);
        shown.kek = self.kek.as_ref().map(|_| "<redacted>".to_string());
        for provider in shown.providers.values_mut() {
            if !provider.client_secret.is_empty() {
                provider.client_secret = "<redacted>".into();
            }
        }
        shown.issuer = Some(self.effective_issuer());
        toml_string(&shown)
    }
}

fn toml_string(config: &Config) -> String {
    // Figment has no serializer of its own; render through serde_json into simple TOML lines.
    let value = serde_json::to_value(config).unwrap_or_default();
    let mut top = String::new();
    let mut tables = String::new();
    if let serde_json::Value::Object(map) = value {
        for (key, value) in map {
            match value {
                serde_json::Value::Null => top.push_str(&format!("# {key} = (unset)\n")),
                serde_json::Value::Object(inner) => {
                    tables.push_str(&format!("\n[{key}]\n"));
                    for (k, v) in inner {
                        tables.push_str(&format!("{k} = {v}\n"));
                    }
                }
                other => top.push_str(&format!("{key} = {other}\n")),
            }
        }
    }
    top + &tables
}

/// Replaces the password of a URL (`scheme://user:password@host`) with `<redacted>`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}://{}:<redacted>@{}",
            &url[..scheme_end],
            &userinfo[..colon],
            &rest[at + 1..]
        ),
        None => url.to_string(),
    }
}

/// Decodes a base64 key-encryption key and checks it is 32 bytes.
pub fn decode_kek(text: &str) -> Result<[u8; 32], ConfigError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| invalid("kek", "is not valid base64"))?;
    bytes
        .try_into()
        .map_err(|_| invalid("kek", "must decode to exactly 32 bytes"))
}

/// Accepts `["a", "b"]` from a file or `a,b` from the environment.
fn string_or_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Either::deserialize(deserializer)? {
        Either::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        Either::Many(v) => v,
    })
}

#[cfg(test)]
mod tests;
