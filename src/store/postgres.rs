//! Clustered backend: PostgreSQL shared by every replica.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{Store, StoreError, StoreResult};
use crate::config::Config;

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
            .test_before_acquire(true)
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
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| StoreError::from_sqlx(e, "transaction"))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(lock as i64)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "transaction"))?;
        Ok(tx)
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
