//! Clustered backend: PostgreSQL shared by every replica.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{Store, StoreError, StoreResult};
use crate::config::Config;

/// How long a pooled connection may sit idle before it is pinged ahead of use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// PostgreSQL implementation of every store trait.
#[derive(Clone)]
pub struct PostgresStore {
    pub(crate) pool: PgPool,
}

impl PostgresStore {
    /// Builds the pool. Connections are made lazily, so a server that starts while PostgreSQL
    /// is down comes up not-ready instead of crashing; `migrate` and `ping` surface the outage.
    pub async fn connect(url: &str, config: &Config) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .context("database_url is not a valid postgres:// URL")?
            .application_name("sentinel");
        let pool = PgPoolOptions::new()
            .max_connections(config.database_max_connections)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(3))
            .idle_timeout(Duration::from_secs(300))
            // A connection idle for a while may have been cut (a restart, a proxy): it is
            // pinged before use and replaced when dead. One in steady use is not worth a round
            // trip per acquire; should it have died since, its one query fails UNAVAILABLE.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for < IDLE_BEFORE_PING {
                        return Ok(true);
                    }
                    Ok(sqlx::Connection::ping(conn).await.is_ok())
                })
            })
            .connect_lazy_with(options);
        Ok(Self { pool })
    }
}

impl PostgresStore {
    /// A transaction holding the advisory lock `lock` until it ends.
    pub(crate) async fn begin_write(
        &self,
        lock: super::WriteLock,
    ) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool
            .begin_with(begin_sql(lock))
            .await
            .map_err(|e| StoreError::from_sqlx(e, "transaction"))
    }
}

/// BEGIN and the lock in one round trip (a simple query of two statements).
fn begin_sql(lock: super::WriteLock) -> &'static str {
    match lock {
        super::WriteLock::Revocations => "BEGIN; SELECT pg_advisory_xact_lock(6160385)",
        super::WriteLock::SigningKeys => "BEGIN; SELECT pg_advisory_xact_lock(6160386)",
        super::WriteLock::Changelog => "BEGIN; SELECT pg_advisory_xact_lock(6160387)",
        super::WriteLock::PlatformAdmins => "BEGIN; SELECT pg_advisory_xact_lock(6160388)",
    }
}

#[cfg(test)]
#[test]
fn each_lock_begins_with_its_own_number() {
    use super::WriteLock::*;
    for lock in [Revocations, SigningKeys, Changelog, PlatformAdmins] {
        let sql = begin_sql(lock);
        assert_eq!(
            sql,
            format!("BEGIN; SELECT pg_advisory_xact_lock({})", lock as i64)
        );
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::from_sqlx(e, "ping"))
    }

    async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(inner) => {
                    StoreError::from_sqlx(inner, "migration")
                }
                other => {
                    tracing::error!(error = %other, "postgres migration failed");
                    StoreError::Internal
                }
            })
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
