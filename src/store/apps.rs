//! `service_apps` and `client_apps`. Service keys are stored only as SHA-256 hashes. Every
//! change is written with its audit event in one transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{FromRow, Row};
use uuid::Uuid;

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{AuditRow, StoreError, StoreResult};
use crate::model::Revision;
use crate::model::records::{ClientAppRow, ServiceAppRow};

/// A partial update of a service app (`None` keeps the value).
#[derive(Debug, Clone, Default)]
pub struct ServiceAppChange {
    /// New name.
    pub name: Option<String>,
    /// New origins (JSON array).
    pub allowed_origins: Option<String>,
    /// New activity.
    pub is_active: Option<bool>,
}

/// A partial update of a client app (`None` keeps the value).
#[derive(Debug, Clone, Default)]
pub struct ClientAppChange {
    /// New name.
    pub name: Option<String>,
    /// New redirect URIs (JSON array).
    pub redirect_uris: Option<String>,
    /// New services (JSON array).
    pub services: Option<String>,
    /// New activity.
    pub is_active: Option<bool>,
}

/// Service apps and client apps.
#[async_trait]
pub trait AppStore: Send + Sync {
    /// Inserts an app; `Conflict` when the service name exists.
    async fn insert_service_app(&self, app: &ServiceAppRow, audit: &AuditRow) -> StoreResult<()>;
    /// An app by id.
    async fn service_app_by_id(&self, id: Uuid) -> StoreResult<Option<ServiceAppRow>>;
    /// An app by its service name.
    async fn service_app_by_name(&self, service_name: &str) -> StoreResult<Option<ServiceAppRow>>;
    /// Apps ordered by service name, after `after` (keyset), at most `limit`, optionally
    /// filtered by a substring of name or service name.
    async fn list_service_apps(
        &self,
        query: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<ServiceAppRow>>;
    /// Applies `change`; `None` when the app does not exist.
    async fn update_service_app(
        &self,
        id: Uuid,
        change: &ServiceAppChange,
        audit: &AuditRow,
    ) -> StoreResult<Option<ServiceAppRow>>;
    /// Replaces the key; the previous one keeps working until `previous_until`.
    async fn rotate_service_app_key(
        &self,
        id: Uuid,
        key_hash: &[u8],
        key_prefix: &str,
        previous_until: DateTime<Utc>,
        audit: &AuditRow,
    ) -> StoreResult<Option<ServiceAppRow>>;
    /// Deletes an app; says whether it existed.
    /// Deletes a service app with its service's resources, actions and roles: the number of
    /// resources deleted and the changelog revision, or `None` when it did not exist.
    async fn delete_service_app(
        &self,
        id: Uuid,
        audit: &AuditRow,
    ) -> StoreResult<Option<(u64, Revision)>>;
    /// Activates or deactivates an app; `NotFound` when it does not exist.
    async fn set_service_app_active(&self, id: Uuid, active: bool) -> StoreResult<()>;
    /// The app holding the key with `hash` (current key, or previous key inside its grace).
    async fn service_app_by_key_hash(
        &self,
        hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ServiceAppRow>>;
    /// Records last use times (batched by the caller).
    async fn touch_service_apps(&self, uses: &[(Uuid, DateTime<Utc>)]) -> StoreResult<()>;

    /// Inserts a client app.
    async fn insert_client_app(&self, app: &ClientAppRow, audit: &AuditRow) -> StoreResult<()>;
    /// A client app by id.
    async fn client_app_by_id(&self, id: Uuid) -> StoreResult<Option<ClientAppRow>>;
    /// Client apps ordered by id after `after`, at most `limit`, optionally filtered by name.
    async fn list_client_apps(
        &self,
        query: Option<&str>,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<ClientAppRow>>;
    /// Applies `change`; `None` when the app does not exist.
    async fn update_client_app(
        &self,
        id: Uuid,
        change: &ClientAppChange,
        audit: &AuditRow,
    ) -> StoreResult<Option<ClientAppRow>>;
    /// Deletes a client app; says whether it existed.
    async fn delete_client_app(&self, id: Uuid, audit: &AuditRow) -> StoreResult<bool>;
    /// The active client app that lists `redirect_uri` exactly (by index; the oldest id when
    /// several do).
    async fn client_app_for_redirect(&self, redirect_uri: &str) -> StoreResult<Option<Uuid>>;
}

fn err(e: sqlx::Error) -> StoreError {
    StoreError::from_sqlx(e, "service app")
}

fn client_err(e: sqlx::Error) -> StoreError {
    StoreError::from_sqlx(e, "client app")
}

macro_rules! service_app_columns {
    () => {
        "id, name, service_name, key_hash, key_prefix, allowed_origins, is_active, created_at, \
         updated_at, key_rotated_at, previous_key_expires_at, last_used_at"
    };
}
macro_rules! client_app_columns {
    () => {
        "id, name, redirect_uris, services, is_active, created_at, updated_at"
    };
}

fn app_from_row<R: Row>(row: &R) -> StoreResult<ServiceAppRow>
where
    ServiceAppRow: for<'r> sqlx::FromRow<'r, R>,
{
    ServiceAppRow::from_row(row).map_err(err)
}

fn client_from_row<R: Row>(row: &R) -> StoreResult<ClientAppRow>
where
    ClientAppRow: for<'r> sqlx::FromRow<'r, R>,
{
    ClientAppRow::from_row(row).map_err(client_err)
}

/// Replaces the indexed redirect URIs of a client app inside the caller's transaction, from the
/// app's JSON list.
macro_rules! index_redirects {
    ($tx:expr, $id:expr, $uris:expr) => {
        sqlx::query("DELETE FROM client_app_redirects WHERE app_id = $1")
            .bind($id)
            .execute(&mut *$tx)
            .await
            .map_err(client_err)?;
        let uris: Vec<String> = serde_json::from_str($uris).unwrap_or_default();
        for uri in uris.iter().collect::<std::collections::BTreeSet<_>>() {
            sqlx::query("INSERT INTO client_app_redirects (redirect_uri, app_id) VALUES ($1, $2)")
                .bind(uri)
                .bind($id)
                .execute(&mut *$tx)
                .await
                .map_err(client_err)?;
        }
    };
}

macro_rules! impl_app_store {
    ($store:ty) => {
        #[async_trait]
        impl AppStore for $store {
            async fn insert_service_app(
                &self,
                app: &ServiceAppRow,
                audit: &AuditRow,
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(err)?;
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
                .execute(&mut *tx)
                .await
                .map_err(err)?;
                insert_audit_query!(audit).execute(&mut *tx).await.map_err(err)?;
                tx.commit().await.map_err(err)
            }

            async fn service_app_by_id(&self, id: Uuid) -> StoreResult<Option<ServiceAppRow>> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    service_app_columns!(),
                    " FROM service_apps WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
                row.as_ref().map(app_from_row).transpose()
            }

            async fn service_app_by_name(
                &self,
                service_name: &str,
            ) -> StoreResult<Option<ServiceAppRow>> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    service_app_columns!(),
                    " FROM service_apps WHERE service_name = $1"
                ))
                .bind(service_name)
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
                row.as_ref().map(app_from_row).transpose()
            }

            async fn list_service_apps(
                &self,
                query: Option<&str>,
                after: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<ServiceAppRow>> {
                let pattern = query.map(super::contains_pattern);
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    service_app_columns!(),
                    " FROM service_apps WHERE ($1 IS NULL OR service_name > $1) \
                     AND ($2 IS NULL OR LOWER(name) LIKE $2 ESCAPE '\\' \
                     OR service_name LIKE $2 ESCAPE '\\') \
                     ORDER BY service_name LIMIT $3"
                ))
                .bind(after)
                .bind(pattern)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
                rows.iter().map(app_from_row).collect()
            }

            async fn update_service_app(
                &self,
                id: Uuid,
                change: &ServiceAppChange,
                audit: &AuditRow,
            ) -> StoreResult<Option<ServiceAppRow>> {
                let mut tx = self.pool.begin().await.map_err(err)?;
                let row = sqlx::query(concat!(
                    "UPDATE service_apps SET name = COALESCE($2, name), \
                     allowed_origins = COALESCE($3, allowed_origins), \
                     is_active = COALESCE($4, is_active), updated_at = $5 WHERE id = $1 \
                     RETURNING ",
                    service_app_columns!()
                ))
                .bind(id)
                .bind(&change.name)
                .bind(&change.allowed_origins)
                .bind(change.is_active)
                .bind(crate::model::now())
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
                let Some(row) = row else { return Ok(None) };
                let app = app_from_row(&row)?;
                insert_audit_query!(audit).execute(&mut *tx).await.map_err(err)?;
                tx.commit().await.map_err(err)?;
                Ok(Some(app))
            }

            async fn rotate_service_app_key(
                &self,
                id: Uuid,
                key_hash: &[u8],
                key_prefix: &str,
                previous_until: DateTime<Utc>,
                audit: &AuditRow,
            ) -> StoreResult<Option<ServiceAppRow>> {
                let now = crate::model::now();
                let mut tx = self.pool.begin().await.map_err(err)?;
                let row = sqlx::query(concat!(
                    "UPDATE service_apps SET previous_key_hash = key_hash, \
                     previous_key_expires_at = $4, key_hash = $2, key_prefix = $3, \
                     key_rotated_at = $5, updated_at = $5 WHERE id = $1 RETURNING ",
                    service_app_columns!()
                ))
                .bind(id)
                .bind(key_hash)
                .bind(key_prefix)
                .bind(previous_until)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
                let Some(row) = row else { return Ok(None) };
                let app = app_from_row(&row)?;
                insert_audit_query!(audit).execute(&mut *tx).await.map_err(err)?;
                tx.commit().await.map_err(err)?;
                Ok(Some(app))
            }

            async fn delete_service_app(
                &self,
                id: Uuid,
                audit: &AuditRow,
            ) -> StoreResult<Option<(u64, Revision)>> {
                let mut tx = self.begin_write(super::WriteLock::Changelog).await?;
                let service = sqlx::query_scalar::<_, String>(
                    "DELETE FROM service_apps WHERE id = $1 RETURNING service_name",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
                let Some(service_name) = service else {
                    return Ok(None);
                };
                let resources = sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM resources WHERE service_name = $1",
                )
                .bind(&service_name)
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
                // The service's resources (with their grants), actions and custom roles go too.
                for sql in [
                    "UPDATE resources SET parent_id = NULL WHERE service_name = $1",
                    "DELETE FROM resources WHERE service_name = $1",
                    "DELETE FROM service_actions WHERE service_name = $1",
                    "DELETE FROM roles WHERE service_name = $1",
                ] {
                    sqlx::query(sql)
                        .bind(&service_name)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                }
                let change = crate::model::Change::ServiceDeleted { service_name };
                let revision = append_change!(tx, change).await.map_err(err)?;
                insert_audit_query!(audit).execute(&mut *tx).await.map_err(err)?;
                tx.commit().await.map_err(err)?;
                Ok(Some((u64::try_from(resources).unwrap_or(0), revision)))
            }

            async fn set_service_app_active(&self, id: Uuid, active: bool) -> StoreResult<()> {
                let done = sqlx::query(
                    "UPDATE service_apps SET is_active = $2, updated_at = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(active)
                .bind(crate::model::now())
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
                let row = sqlx::query(concat!(
                    "SELECT ",
                    service_app_columns!(),
                    " FROM service_apps WHERE key_hash = $1 \
                     OR (previous_key_hash = $1 AND previous_key_expires_at > $2)"
                ))
                .bind(hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
                row.as_ref().map(app_from_row).transpose()
            }

            async fn touch_service_apps(&self, uses: &[(Uuid, DateTime<Utc>)]) -> StoreResult<()> {
                for (id, at) in uses {
                    sqlx::query(
                        "UPDATE service_apps SET last_used_at = $2 \
                         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
                    )
                    .bind(id)
                    .bind(at)
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                }
                Ok(())
            }

            async fn insert_client_app(
                &self,
                app: &ClientAppRow,
                audit: &AuditRow,
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(client_err)?;
                sqlx::query(concat!(
                    "INSERT INTO client_apps (",
                    client_app_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
                ))
                .bind(app.id)
                .bind(&app.name)
                .bind(&app.redirect_uris)
                .bind(&app.services)
                .bind(app.is_active)
                .bind(app.created_at)
                .bind(app.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(client_err)?;
                index_redirects!(tx, app.id, &app.redirect_uris);
                insert_audit_query!(audit).execute(&mut *tx).await.map_err(client_err)?;
                tx.commit().await.map_err(client_err)
            }

            async fn client_app_by_id(&self, id: Uuid) -> StoreResult<Option<ClientAppRow>> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    client_app_columns!(),
                    " FROM client_apps WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(client_err)?;
                row.as_ref().map(client_from_row).transpose()
            }

            async fn list_client_apps(
                &self,
                query: Option<&str>,
                after: Option<Uuid>,
                limit: i64,
            ) -> StoreResult<Vec<ClientAppRow>> {
                let pattern = query.map(super::contains_pattern);
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    client_app_columns!(),
                    " FROM client_apps WHERE ($1 IS NULL OR id > $1) \
                     AND ($2 IS NULL OR LOWER(name) LIKE $2 ESCAPE '\\') ORDER BY id LIMIT $3"
                ))
                .bind(after)
                .bind(pattern)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(client_err)?;
                rows.iter().map(client_from_row).collect()
            }

            async fn update_client_app(
                &self,
                id: Uuid,
                change: &ClientAppChange,
                audit: &AuditRow,
            ) -> StoreResult<Option<ClientAppRow>> {
                let mut tx = self.pool.begin().await.map_err(client_err)?;
                let row = sqlx::query(concat!(
                    "UPDATE client_apps SET name = COALESCE($2, name), \
                     redirect_uris = COALESCE($3, redirect_uris), \
                     services = COALESCE($4, services), is_active = COALESCE($5, is_active), \
                     updated_at = $6 WHERE id = $1 RETURNING ",
                    client_app_columns!()
                ))
                .bind(id)
                .bind(&change.name)
                .bind(&change.redirect_uris)
                .bind(&change.services)
                .bind(change.is_active)
                .bind(crate::model::now())
                .fetch_optional(&mut *tx)
                .await
                .map_err(client_err)?;
                let Some(row) = row else { return Ok(None) };
                let app = client_from_row(&row)?;
                if change.redirect_uris.is_some() {
                    index_redirects!(tx, app.id, &app.redirect_uris);
                }
                insert_audit_query!(audit).execute(&mut *tx).await.map_err(client_err)?;
                tx.commit().await.map_err(client_err)?;
                Ok(Some(app))
            }

            async fn delete_client_app(&self, id: Uuid, audit: &AuditRow) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await.map_err(client_err)?;
                let done = sqlx::query("DELETE FROM client_apps WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(client_err)?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                insert_audit_query!(audit).execute(&mut *tx).await.map_err(client_err)?;
                tx.commit().await.map_err(client_err)?;
                Ok(true)
            }

            async fn client_app_for_redirect(
                &self,
                redirect_uri: &str,
            ) -> StoreResult<Option<Uuid>> {
                sqlx::query_scalar::<_, Uuid>(
                    "SELECT c.id FROM client_app_redirects r \
                     JOIN client_apps c ON c.id = r.app_id \
                     WHERE r.redirect_uri = $1 AND c.is_active ORDER BY c.id LIMIT 1",
                )
                .bind(redirect_uri)
                .fetch_optional(&self.pool)
                .await
                .map_err(client_err)
            }
        }
    };
}

impl_app_store!(SqliteStore);
impl_app_store!(PostgresStore);
