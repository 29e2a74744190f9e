//! The checks a configuration must pass before the server starts.

use std::net::SocketAddr;
use std::time::Duration;

use super::{
    Config, ConfigError, DatabaseKind, ProviderKind, decode_kek, invalid, secure_or_loopback,
};

impl Config {
    /// Checks every key; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        match self.database_url.as_deref() {
            None => {}
            Some(url) if url.starts_with("sqlite:") => {}
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {}
            Some(_) => {
                return Err(invalid(
                    "database_url",
                    "must start with postgres://, postgresql:// or sqlite:",
                ));
            }
        }
        if self.database_max_connections == 0 {
            return Err(invalid("database_max_connections", "must be at least 1"));
        }
        if let Some(url) = self.redis_url.as_deref()
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(invalid(
                "redis_url",
                "must start with redis:// or rediss://",
            ));
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(char::is_whitespace) {
            return Err(invalid(
                "redis_prefix",
                "must be non-empty and without spaces",
            ));
        }
        if let Some(kek) = &self.kek {
            decode_kek(kek)?;
        } else if self.database_kind() == DatabaseKind::Postgres {
            return Err(invalid(
                "kek",
                "a key-encryption key (SENTINEL_KEK, base64 of 32 random bytes) is required with \
                 PostgreSQL: replicas must share it to decrypt signing keys",
            ));
        }
        if let Some(issuer) = &self.issuer
            && !secure_or_loopback(issuer)
        {
            return Err(invalid(
                "issuer",
                "must be an https:// URL (http:// only on a loopback host)",
            ));
        }
        for origin in &self.cors_origins {
            if !secure_or_loopback(origin) || origin.ends_with('/') {
                return Err(invalid(
                    "cors_origins",
                    format!("`{origin}` is not an origin like https://app.example.com"),
                ));
            }
        }
        if self.request_timeout.is_zero() {
            return Err(invalid("request_timeout", "must be greater than zero"));
        }
        if self.max_request_bytes < 1024 {
            return Err(invalid("max_request_bytes", "must be at least 1024"));
        }
        if self.rate_limit.enabled {
            for (key, value) in [
                ("rate_limit.per_address", self.rate_limit.per_address),
                ("rate_limit.per_key", self.rate_limit.per_key),
                ("rate_limit.per_user", self.rate_limit.per_user),
                (
                    "rate_limit.sensitive_per_address",
                    self.rate_limit.sensitive_per_address,
                ),
            ] {
                if value == 0 {
                    return Err(invalid(key, "must be at least 1"));
                }
            }
        }
        if self.access_token_ttl < Duration::from_secs(30)
            || self.access_token_ttl > Duration::from_secs(24 * 3600)
        {
            return Err(invalid("access_token_ttl", "must be between 30s and 24h"));
        }
        if self.authz_token_ttl < Duration::from_secs(30)
            || self.authz_token_ttl > Duration::from_secs(3600)
        {
            return Err(invalid("authz_token_ttl", "must be between 30s and 1h"));
        }
        if self.refresh_token_ttl < self.access_token_ttl {
            return Err(invalid(
                "refresh_token_ttl",
                "must be at least access_token_ttl",
            ));
        }
        if self.refresh_reuse_grace > Duration::from_secs(60) {
            return Err(invalid("refresh_reuse_grace", "must be at most 60s"));
        }
        if self.audit_retention < Duration::from_secs(24 * 3600) {
            return Err(invalid("audit_retention", "must be at least 1d"));
        }
        if self.changelog_retention < Duration::from_secs(3600) {
            return Err(invalid("changelog_retention", "must be at least 1h"));
        }
        if self.key_publish_delay > Duration::from_secs(24 * 3600) {
            return Err(invalid("key_publish_delay", "must be at most 24h"));
        }
        if self.rate_limit.window.is_zero() {
            return Err(invalid("rate_limit.window", "must be greater than zero"));
        }
        for (id, provider) in &self.providers {
            let ok_id = !id.is_empty()
                && id.len() <= 40
                && id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok_id {
                return Err(invalid(
                    "providers",
                    "ids must be 1-40 lowercase letters, digits or dashes",
                ));
            }
            if provider.client_id.trim().is_empty() {
                return Err(invalid("providers.client_id", "is required"));
            }
            if provider.kind == ProviderKind::Oidc && provider.issuer.is_none() {
                return Err(invalid("providers.issuer", "is required for kind oidc"));
            }
            for url in [
                &provider.issuer,
                &provider.authorize_url,
                &provider.token_url,
                &provider.api_url,
            ]
            .into_iter()
            .flatten()
            {
                if !secure_or_loopback(url) {
                    return Err(invalid(
                        "providers",
                        "URLs must be https:// (http:// only on a loopback host)",
                    ));
                }
            }
        }
        if !(Duration::from_secs(2)..=Duration::from_secs(3600))
            .contains(&self.revocation_max_staleness)
        {
            return Err(invalid(
                "revocation_max_staleness",
                "must be between 2s and 1h",
            ));
        }
        if let Some(address) = &self.metrics_listen
            && address.parse::<SocketAddr>().is_err()
        {
            return Err(invalid(
                "metrics_listen",
                "must be host:port, e.g. 0.0.0.0:9090",
            ));
        }
        if self.max_streams_per_key == 0 {
            return Err(invalid("max_streams_per_key", "must be at least 1"));
        }
        if !(1..=100).contains(&self.token_max_groups) {
            return Err(invalid("token_max_groups", "must be between 1 and 100"));
        }
        if !(1..=200).contains(&self.token_max_actions) {
            return Err(invalid("token_max_actions", "must be between 1 and 200"));
        }
        if !(Duration::from_secs(60)..=Duration::from_secs(3600)).contains(&self.login_timeout) {
            return Err(invalid("login_timeout", "must be between 1m and 1h"));
        }
        if !(Duration::from_secs(10)..=Duration::from_secs(600)).contains(&self.login_code_ttl) {
            return Err(invalid("login_code_ttl", "must be between 10s and 10m"));
        }
        Ok(())
    }
}
