//! Embedded backend: one SQLite file in WAL mode.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Store, StoreError, StoreResult};
use crate::config::Config;

/// SQLite implementation of every store trait.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the SQLite file named by `url`.
    pub async fn connect(url: &str, config: &Config) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .context("database_url is not a valid sqlite: URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create data directory {}", parent.display()))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(config.database_max_connections)
            .acquire_timeout(Duration::from_secs(5))
            // The database is in this process: a pooled connection cannot have been cut.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .context("cannot open the SQLite database")?;
        Ok(Self { pool })
    }
}

impl SqliteStore {
    /// A write transaction holding SQLite's write lock from its first statement
    /// (`BEGIN IMMEDIATE`), so a read-then-write inside it cannot fail with a busy snapshot.
    pub(crate) async fn begin_write(
        &self,
        _lock: super::WriteLock,
    ) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| StoreError::from_sqlx(e, "transaction"))
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::from_sqlx(e, "ping"))
    }

    async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "sqlite migration failed");
                StoreError::Internal
            })
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
