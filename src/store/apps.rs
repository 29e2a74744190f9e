//! `service_apps`: backends that call with `x-service-key`. Keys are stored only as hashes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{StoreError, StoreResult};

/// A service app row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAppRow {
    /// App id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// The service the app acts for; unique.
    pub service_name: String,
    /// SHA-256 of the current key.
    pub key_hash: Vec<u8>,
    /// First characters of the key, for display.
    pub key_prefix: String,
    /// Browser origins (JSON array).
    pub allowed_origins: String,
    /// Inactive apps are refused.
    pub is_active: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Service apps.
#[async_trait]
pub trait AppStore: Send + Sync {
    /// Inserts an app; `Conflict` when the service name exists.
    async fn insert_service_app(&self, app: &ServiceAppRow) -> StoreResult<()>;
    /// Apps ordered by service name, after `after` (keyset), at most `limit`.
    async fn list_service_apps(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<ServiceAppRow>>;
    /// Activates or deactivates an app; `NotFound` when it does not exist.
    async fn set_service_app_active(&self, id: Uuid, active: bool) -> StoreResult<()>;
    /// The app holding the key with `hash` (current key, or previous key inside its grace).
    async fn service_app_by_key_hash(
        &self,
        hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ServiceAppRow>>;
}

fn err(e: sqlx::Error) -> StoreError {
    StoreError::from_sqlx(e, "service app")
}

fn app_from_row<R: Row>(row: &R) -> StoreResult<ServiceAppRow>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> Uuid: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Vec<u8>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> bool: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> DateTime<Utc>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(ServiceAppRow {
        id: row.try_get("id").map_err(err)?,
        name: row.try_get("name").map_err(err)?,
        service_name: row.try_get("service_name").map_err(err)?,
        key_hash: row.try_get("key_hash").map_err(err)?,
        key_prefix: row.try_get("key_prefix").map_err(err)?,
        allowed_origins: row.try_get("allowed_origins").map_err(err)?,
        is_active: row.try_get("is_active").map_err(err)?,
        created_at: row.try_get("created_at").map_err(err)?,
        updated_at: row.try_get("updated_at").map_err(err)?,
    })
}

macro_rules! impl_app_store {
    ($store:ty) => {
        #[async_trait]
        impl AppStore for $store {
            async fn insert_service_app(&self, app: &ServiceAppRow) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO service_apps (id, name, service_name, key_hash, key_prefix, \
                     allowed_origins, is_active, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(app.id)
                .bind(&app.name)
                .bind(&app.service_name)
                .bind(&app.key_hash)
                .bind(&app.key_prefix)
                .bind(&app.allowed_origins)
                .bind(app.is_active)
                .bind(app.created_at)
                .bind(app.updated_at)
                .execute(&self.pool)
                .await
                .map_err(err)?;
                Ok(())
            }

            async fn list_service_apps(
                &self,
                after: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<ServiceAppRow>> {
                let rows = sqlx::query(
                    "SELECT id, name, service_name, key_hash, key_prefix, allowed_origins, \
                     is_active, created_at, updated_at FROM service_apps \
                     WHERE ($1 IS NULL OR service_name > $1) ORDER BY service_name LIMIT $2",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
                rows.iter().map(app_from_row).collect()
            }

            async fn set_service_app_active(&self, id: Uuid, active: bool) -> StoreResult<()> {
                let done = sqlx::query(
                    "UPDATE service_apps SET is_active = $2, updated_at = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(active)
                .bind(Utc::now())
                .execute(&self.pool)
                .await
                .map_err(err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("service app"));
                }
                Ok(())
            }

            async fn service_app_by_key_hash(
                &self,
                hash: &[u8],
                now: DateTime<Utc>,
            ) -> StoreResult<Option<ServiceAppRow>> {
                let row = sqlx::query(
                    "SELECT id, name, service_name, key_hash, key_prefix, allowed_origins, \
                     is_active, created_at, updated_at FROM service_apps \
                     WHERE key_hash = $1 OR (previous_key_hash = $1 AND previous_key_expires_at > $2)",
                )
                .bind(hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
                row.as_ref().map(app_from_row).transpose()
            }
        }
    };
}

impl_app_store!(SqliteStore);
impl_app_store!(PostgresStore);
