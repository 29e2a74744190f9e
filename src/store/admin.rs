//! Admin reads and user administration: user search, audit trail queries, dashboard counts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{FromRow, Row};
use uuid::Uuid;

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{AuditRow, StoreError, StoreResult, UserRow};
use crate::model::UserId;
use crate::model::records::AuditFilter;

/// Dashboard counts.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct Stats {
    /// Users.
    pub users: i64,
    /// Active users.
    pub active_users: i64,
    /// Users with a session used in the last 30 days.
    pub recently_active_users: i64,
    /// Platform admins.
    pub admins: i64,
    /// Workspaces.
    pub workspaces: i64,
    /// Groups.
    pub groups: i64,
    /// Service apps.
    pub service_apps: i64,
    /// Client apps.
    pub client_apps: i64,
    /// Live sessions.
    pub active_sessions: i64,
    /// Registered resources (all services).
    pub resources: i64,
    /// Live (unexpired) grants.
    pub grants: i64,
}

/// A platform admin's change to a user: absent fields stay.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserChange<'a> {
    /// New display name.
    pub name: Option<&'a str>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
    /// Grant or take the platform-admin flag.
    pub is_admin: Option<bool>,
    /// Apply the change only if an active platform admin remains afterwards.
    pub keep_an_admin: bool,
}

/// What [`AdminStore::update_user`] did.
#[derive(Debug, Clone)]
pub enum UserUpdate {
    /// Applied; the user as it is now.
    Updated(UserRow),
    /// No such user.
    NotFound,
    /// Not applied: it would have left no active platform admin.
    NoAdminLeft,
}

/// Admin queries.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Users by email after `after`, filtered by a substring of email or name and by flags.
    async fn list_users(
        &self,
        query: Option<&str>,
        is_active: Option<bool>,
        is_admin: Option<bool>,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<UserRow>>;
    /// Changes name and flags of a user, audited in the same transaction.
    async fn update_user(
        &self,
        id: UserId,
        change: &UserChange<'_>,
        audit: &AuditRow,
    ) -> StoreResult<UserUpdate>;
    /// Audit events, newest first, before the keyset cursor.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        before: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> StoreResult<Vec<AuditRow>>;
    /// Records an audit event on its own.
    async fn insert_audit(&self, event: &AuditRow) -> StoreResult<()>;
    /// Deletes audit events older than `before`.
    async fn purge_audit(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// Dashboard counts at `now`.
    async fn stats(&self, now: DateTime<Utc>) -> StoreResult<Stats>;
}

fn err(e: sqlx::Error) -> StoreError {
    StoreError::from_sqlx(e, "admin query")
}

fn audit_from_row<R: Row>(row: &R) -> StoreResult<AuditRow>
where
    AuditRow: for<'r> sqlx::FromRow<'r, R>,
{
    AuditRow::from_row(row).map_err(err)
}

macro_rules! impl_admin_store {
    ($store:ty) => {
        #[async_trait]
        impl AdminStore for $store {
            async fn list_users(
                &self,
                query: Option<&str>,
                is_active: Option<bool>,
                is_admin: Option<bool>,
                after: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<UserRow>> {
                let pattern = query.map(super::contains_pattern);
                let rows = sqlx::query(
                    "SELECT id, email, name, avatar_url, is_active, is_admin, created_at, \
                     updated_at FROM users WHERE ($1 IS NULL OR email > $1) \
                     AND ($2 IS NULL OR email LIKE $2 ESCAPE '\\' OR LOWER(name) LIKE $2 ESCAPE '\\') \
                     AND ($3 IS NULL OR is_active = $3) AND ($4 IS NULL OR is_admin = $4) \
                     ORDER BY email LIMIT $5",
                )
                .bind(after)
                .bind(pattern)
                .bind(is_active)
                .bind(is_admin)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
                rows.iter().map(super::identity::user_from_row).collect()
            }

            async fn update_user(
                &self,
                id: UserId,
                change: &UserChange<'_>,
                audit: &AuditRow,
            ) -> StoreResult<UserUpdate> {
                let mut tx = self.begin_write(super::WriteLock::PlatformAdmins).await?;
                let row = sqlx::query(
                    "UPDATE users SET name = COALESCE($2, name), \
                     is_active = COALESCE($3, is_active), is_admin = COALESCE($4, is_admin), \
                     updated_at = $5 WHERE id = $1 RETURNING id, email, name, avatar_url, \
                     is_active, is_admin, created_at, updated_at",
                )
                .bind(id)
                .bind(change.name)
                .bind(change.is_active)
                .bind(change.is_admin)
                .bind(crate::model::now())
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
                let Some(row) = row else {
                    return Ok(UserUpdate::NotFound);
                };
                let user = super::identity::user_from_row(&row)?;
                if change.keep_an_admin {
                    let admins: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM users WHERE is_admin AND is_active",
                    )
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err)?;
                    if admins == 0 {
                        // Dropping the transaction rolls the update back.
                        return Ok(UserUpdate::NoAdminLeft);
                    }
                }
                insert_audit_query!(audit).execute(&mut *tx).await.map_err(err)?;
                tx.commit().await.map_err(err)?;
                Ok(UserUpdate::Updated(user))
            }

            async fn list_audit(
                &self,
                filter: &AuditFilter,
                before: Option<(DateTime<Utc>, Uuid)>,
                limit: i64,
            ) -> StoreResult<Vec<AuditRow>> {
                let (action_exact, action_prefix) = match filter.action.as_deref() {
                    // A family (`token.`): a prefix, its `_`, `%` and `\` taken literally.
                    Some(a) if a.ends_with('.') => (None, Some(super::prefix_pattern(a))),
                    Some(a) => (Some(a.to_string()), None),
                    None => (None, None),
                };
                let (at, id) = before.unzip();
                let rows = sqlx::query(
                    "SELECT id, occurred_at, action, actor_user_id, actor_service, target_type, \
                     target_id, workspace_id, client_address, request_id, outcome, details \
                     FROM audit_events WHERE ($1 IS NULL OR action = $1) \
                     AND ($2 IS NULL OR action LIKE $2 ESCAPE '\\') AND ($3 IS NULL OR actor_user_id = $3) \
                     AND ($4 IS NULL OR target_id = $4) AND ($5 IS NULL OR workspace_id = $5) \
                     AND ($6 IS NULL OR occurred_at >= $6) AND ($7 IS NULL OR occurred_at < $7) \
                     AND ($8 IS NULL OR outcome = $8) \
                     AND ($9 IS NULL OR occurred_at < $9 OR (occurred_at = $9 AND id < $10)) \
                     ORDER BY occurred_at DESC, id DESC LIMIT $11",
                )
                .bind(action_exact)
                .bind(action_prefix)
                .bind(filter.actor_user_id)
                .bind(&filter.target_id)
                .bind(filter.workspace_id)
                .bind(filter.start)
                .bind(filter.end)
                .bind(&filter.outcome)
                .bind(at)
                .bind(id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
                rows.iter().map(audit_from_row).collect()
            }

            async fn insert_audit(&self, event: &AuditRow) -> StoreResult<()> {
                insert_audit_query!(event)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| StoreError::from_sqlx(e, "audit event"))?;
                Ok(())
            }

            async fn purge_audit(&self, before: DateTime<Utc>) -> StoreResult<u64> {
                let done = sqlx::query("DELETE FROM audit_events WHERE occurred_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(done.rows_affected())
            }

            async fn stats(&self, now: DateTime<Utc>) -> StoreResult<Stats> {
                let month_ago = now - chrono::Duration::days(30);
                let row = sqlx::query_as::<_, Stats>(
                    "SELECT \
                     (SELECT COUNT(*) FROM users) AS users, \
                     (SELECT COUNT(*) FROM users WHERE is_active) AS active_users, \
                     (SELECT COUNT(DISTINCT user_id) FROM sessions WHERE last_used_at > $2) \
                        AS recently_active_users, \
                     (SELECT COUNT(*) FROM users WHERE is_admin) AS admins, \
                     (SELECT COUNT(*) FROM workspaces) AS workspaces, \
                     (SELECT COUNT(*) FROM groups) AS groups, \
                     (SELECT COUNT(*) FROM service_apps) AS service_apps, \
                     (SELECT COUNT(*) FROM client_apps) AS client_apps, \
                     (SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1) \
                        AS active_sessions, \
                     (SELECT COUNT(*) FROM resources) AS resources, \
                     (SELECT COUNT(*) FROM grants WHERE expires_at IS NULL OR expires_at > $1) \
                        AS grants",
                )
                .bind(now)
                .bind(month_ago)
                .fetch_one(&self.pool)
                .await
                .map_err(err)?;
                Ok(row)
            }
        }
    };
}

impl_admin_store!(SqliteStore);
impl_admin_store!(PostgresStore);
