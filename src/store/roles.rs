//! Service actions, custom roles, their actions and assignments. Writes that change who holds
//! an action hold [`WriteLock::Changelog`] and append their [`Change`] with the audit event.

use async_trait::async_trait;
use sqlx::{FromRow, Row};

use crate::model::RoleId;

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{AuditRow, StoreError, StoreResult, WriteLock};
use crate::model::Change;
use crate::model::Revision;
use crate::model::records::RoleRow;
use crate::model::{UserId, WorkspaceId};

/// Service actions and custom roles.
#[async_trait]
pub trait RoleStore: Send + Sync {
    /// Upserts a service's actions: (created, updated, revision).
    async fn register_actions(
        &self,
        service_name: &str,
        actions: &[(String, String)],
        audit: &AuditRow,
    ) -> StoreResult<(i64, i64, Revision)>;
    /// Every action a service registered.
    async fn service_actions(&self, service_name: &str) -> StoreResult<Vec<String>>;
    /// Whether a service app with this service name exists.
    async fn service_exists(&self, service_name: &str) -> StoreResult<bool>;
    /// Creates a custom role with its actions; the revision.
    async fn create_role(&self, role: &RoleRow, audit: &AuditRow) -> StoreResult<Revision>;
    /// One custom role.
    async fn role(&self, id: RoleId) -> StoreResult<Option<RoleRow>>;
    /// Custom roles of a workspace by service, name, id after the cursor.
    async fn list_roles(
        &self,
        workspace_id: WorkspaceId,
        service_name: Option<&str>,
        user_id: Option<UserId>,
        after: Option<(String, String, RoleId)>,
        limit: i64,
    ) -> StoreResult<Vec<RoleRow>>;
    /// Deletes a custom role; the revision, or `None` when it did not exist.
    async fn delete_role(&self, id: RoleId, audit: &AuditRow) -> StoreResult<Option<Revision>>;
    /// Replaces a role's actions; the revision, or `None` when it did not exist.
    async fn set_role_actions(
        &self,
        id: RoleId,
        actions: &[String],
        audit: &AuditRow,
    ) -> StoreResult<Option<Revision>>;
    /// Names of the user's roles of `service_name` in a workspace that hold `action`, sorted.
    async fn roles_holding(
        &self,
        workspace_id: WorkspaceId,
        service_name: &str,
        user_id: UserId,
        action: &str,
    ) -> StoreResult<Vec<String>>;
    /// Actions of `service_name` the user holds in a workspace, sorted, after `after`.
    async fn user_actions(
        &self,
        workspace_id: WorkspaceId,
        service_name: &str,
        user_id: UserId,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<String>>;
}

fn err(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(e, what)
}

macro_rules! role_select {
    ($where:literal) => {
        concat!(
            "SELECT r.id, r.workspace_id, r.service_name, r.name, r.description, r.created_at, \
             r.updated_at, \
             (SELECT COUNT(*) FROM role_assignments ra WHERE ra.role_id = r.id) AS assigned \
             FROM roles r WHERE ",
            $where
        )
    };
}

macro_rules! impl_role_store {
    ($store:ty) => {
        impl $store {
            async fn role_actions(&self, id: RoleId) -> StoreResult<Vec<String>> {
                sqlx::query_scalar::<_, String>(
                    "SELECT action FROM role_actions WHERE role_id = $1 ORDER BY action",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(err("role"))
            }
        }

        #[async_trait]
        impl RoleStore for $store {
            async fn register_actions(
                &self,
                service_name: &str,
                actions: &[(String, String)],
                audit: &AuditRow,
            ) -> StoreResult<(i64, i64, Revision)> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                let now = crate::model::now();
                let (mut created, mut updated) = (0, 0);
                for (action, description) in actions {
                    let existing = sqlx::query_scalar::<_, String>(
                        "SELECT description FROM service_actions \
                         WHERE service_name = $1 AND action = $2",
                    )
                    .bind(service_name)
                    .bind(action)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err("action"))?;
                    match existing {
                        None => {
                            sqlx::query(
                                "INSERT INTO service_actions (service_name, action, description, \
                                 created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
                            )
                            .bind(service_name)
                            .bind(action)
                            .bind(description)
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err(err("action"))?;
                            created += 1;
                        }
                        Some(old) if old != *description => {
                            sqlx::query(
                                "UPDATE service_actions SET description = $3, updated_at = $4 \
                                 WHERE service_name = $1 AND action = $2",
                            )
                            .bind(service_name)
                            .bind(action)
                            .bind(description)
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err(err("action"))?;
                            updated += 1;
                        }
                        Some(_) => {}
                    }
                }
                let revision = if created + updated > 0 {
                    let change = Change::ActionsRegistered {
                        service_name: service_name.to_string(),
                    };
                    let revision = append_change!(tx, change)
                        .await
                        .map_err(err("changelog"))?;
                    insert_audit_query!(audit)
                        .execute(&mut *tx)
                        .await
                        .map_err(err("audit event"))?;
                    revision
                } else {
                    current_revision_query!()
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(err("changelog"))?
                };
                tx.commit().await.map_err(err("action"))?;
                Ok((created, updated, revision))
            }

            async fn service_actions(&self, service_name: &str) -> StoreResult<Vec<String>> {
                sqlx::query_scalar::<_, String>(
                    "SELECT action FROM service_actions WHERE service_name = $1 ORDER BY action",
                )
                .bind(service_name)
                .fetch_all(&self.pool)
                .await
                .map_err(err("action"))
            }

            async fn service_exists(&self, service_name: &str) -> StoreResult<bool> {
                let count = sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM service_apps WHERE service_name = $1",
                )
                .bind(service_name)
                .fetch_one(&self.pool)
                .await
                .map_err(err("service app"))?;
                Ok(count > 0)
            }

            async fn create_role(&self, role: &RoleRow, audit: &AuditRow) -> StoreResult<Revision> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                sqlx::query(
                    "INSERT INTO roles (id, workspace_id, service_name, name, description, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(role.id)
                .bind(role.workspace_id)
                .bind(&role.service_name)
                .bind(&role.name)
                .bind(&role.description)
                .bind(role.created_at)
                .bind(role.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(err("role name"))?;
                for action in &role.actions {
                    sqlx::query("INSERT INTO role_actions (role_id, action) VALUES ($1, $2)")
                        .bind(role.id)
                        .bind(action)
                        .execute(&mut *tx)
                        .await
                        .map_err(err("role action"))?;
                }
                let change = Change::RoleChanged {
                    workspace_id: role.workspace_id,
                    service_name: role.service_name.clone(),
                    role_id: role.id,
                    actions: role.actions.clone(),
                };
                let revision = append_change!(tx, change)
                    .await
                    .map_err(err("changelog"))?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("role"))?;
                Ok(revision)
            }

            async fn role(&self, id: RoleId) -> StoreResult<Option<RoleRow>> {
                let row = sqlx::query(role_select!("r.id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err("role"))?;
                let Some(row) = row else { return Ok(None) };
                let mut role = role_from_row(&row)?;
                role.actions = self.role_actions(id).await?;
                Ok(Some(role))
            }

            async fn list_roles(
                &self,
                workspace_id: WorkspaceId,
                service_name: Option<&str>,
                user_id: Option<UserId>,
                after: Option<(String, String, RoleId)>,
                limit: i64,
            ) -> StoreResult<Vec<RoleRow>> {
                let (service, name, id) = match after {
                    Some((s, n, i)) => (Some(s), Some(n), Some(i)),
                    None => (None, None, None),
                };
                let rows = sqlx::query(role_select!(
                    "r.workspace_id = $1 AND ($2 IS NULL OR r.service_name = $2) \
                     AND ($3 IS NULL OR EXISTS (SELECT 1 FROM role_assignments x \
                     WHERE x.role_id = r.id AND x.user_id = $3)) \
                     AND ($4 IS NULL OR r.service_name > $4 \
                     OR (r.service_name = $4 AND r.name > $5) \
                     OR (r.service_name = $4 AND r.name = $5 AND r.id > $6)) \
                     ORDER BY r.service_name, r.name, r.id LIMIT $7"
                ))
                .bind(workspace_id)
                .bind(service_name)
                .bind(user_id)
                .bind(service)
                .bind(name)
                .bind(id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(err("role"))?;
                let mut roles = Vec::with_capacity(rows.len());
                for row in &rows {
                    let mut role = role_from_row(row)?;
                    role.actions = self.role_actions(role.id.into()).await?;
                    roles.push(role);
                }
                Ok(roles)
            }

            async fn delete_role(&self, id: RoleId, audit: &AuditRow) -> StoreResult<Option<Revision>> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                let row = sqlx::query(
                    "DELETE FROM roles WHERE id = $1 RETURNING workspace_id, service_name",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err("role"))?;
                let Some(row) = row else { return Ok(None) };
                let change = Change::RoleDeleted {
                    workspace_id: row.try_get("workspace_id").map_err(err("role"))?,
                    service_name: row.try_get("service_name").map_err(err("role"))?,
                    role_id: id,
                };
                let revision = append_change!(tx, change)
                    .await
                    .map_err(err("changelog"))?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("role"))?;
                Ok(Some(revision))
            }

            async fn set_role_actions(
                &self,
                id: RoleId,
                actions: &[String],
                audit: &AuditRow,
            ) -> StoreResult<Option<Revision>> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                let row = sqlx::query(
                    "UPDATE roles SET updated_at = $2 WHERE id = $1 \
                     RETURNING workspace_id, service_name",
                )
                .bind(id)
                .bind(crate::model::now())
                .fetch_optional(&mut *tx)
                .await
                .map_err(err("role"))?;
                let Some(row) = row else { return Ok(None) };
                sqlx::query("DELETE FROM role_actions WHERE role_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("role action"))?;
                for action in actions {
                    sqlx::query("INSERT INTO role_actions (role_id, action) VALUES ($1, $2)")
                        .bind(id)
                        .bind(action)
                        .execute(&mut *tx)
                        .await
                        .map_err(err("role action"))?;
                }
                let change = Change::RoleChanged {
                    workspace_id: row.try_get("workspace_id").map_err(err("role"))?,
                    service_name: row.try_get("service_name").map_err(err("role"))?,
                    role_id: id,
                    actions: actions.to_vec(),
                };
                let revision = append_change!(tx, change)
                    .await
                    .map_err(err("changelog"))?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("role"))?;
                Ok(Some(revision))
            }

            async fn roles_holding(
                &self,
                workspace_id: WorkspaceId,
                service_name: &str,
                user_id: UserId,
                action: &str,
            ) -> StoreResult<Vec<String>> {
                sqlx::query_scalar::<_, String>(
                    "SELECT r.name FROM roles r \
                     JOIN role_assignments a ON a.role_id = r.id AND a.user_id = $3 \
                     JOIN role_actions x ON x.role_id = r.id AND x.action = $4 \
                     JOIN memberships m ON m.workspace_id = r.workspace_id AND m.user_id = $3 \
                     WHERE r.workspace_id = $1 AND r.service_name = $2 ORDER BY r.name",
                )
                .bind(workspace_id)
                .bind(service_name)
                .bind(user_id)
                .bind(action)
                .fetch_all(&self.pool)
                .await
                .map_err(err("role"))
            }

            async fn user_actions(
                &self,
                workspace_id: WorkspaceId,
                service_name: &str,
                user_id: UserId,
                after: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<String>> {
                sqlx::query_scalar::<_, String>(
                    "SELECT DISTINCT x.action FROM roles r \
                     JOIN role_assignments a ON a.role_id = r.id AND a.user_id = $3 \
                     JOIN role_actions x ON x.role_id = r.id \
                     JOIN memberships m ON m.workspace_id = r.workspace_id AND m.user_id = $3 \
                     WHERE r.workspace_id = $1 AND r.service_name = $2 \
                     AND ($4 IS NULL OR x.action > $4) ORDER BY x.action LIMIT $5",
                )
                .bind(workspace_id)
                .bind(service_name)
                .bind(user_id)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(err("action"))
            }
        }
    };
}

fn role_from_row<R: Row>(row: &R) -> StoreResult<RoleRow>
where
    RoleRow: for<'r> sqlx::FromRow<'r, R>,
{
    RoleRow::from_row(row).map_err(err("role"))
}

impl_role_store!(SqliteStore);
impl_role_store!(PostgresStore);
