//! Memberships, read here (they are written through a [`super::ChangelogTx`]), and the link
//! write that groups and custom roles share: it holds [`WriteLock::Changelog`] and appends its
//! [`Change`] in the same transaction as the change and its audit event.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::identity::user_from_row;
use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{AuditRow, StoreError, StoreResult, UserRow, WriteLock};
use crate::model::Change;

/// A workspace member with their profile.
#[derive(Debug, Clone)]
pub struct MemberRow {
    /// The member.
    pub user: UserRow,
    /// The workspace.
    pub workspace_id: Uuid,
    /// Workspace role.
    pub role: String,
    /// When the user joined.
    pub joined_at: DateTime<Utc>,
    /// When the role last changed.
    pub updated_at: DateTime<Utc>,
}

/// Outcome of an idempotent link write (group membership, role assignment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkOutcome {
    /// The link changed at this revision.
    Changed(i64),
    /// Nothing to do; the current revision.
    Unchanged(i64),
    /// The user is not a member of the workspace.
    NotWorkspaceMember,
}

/// Memberships of workspaces.
#[async_trait]
pub trait TenancyStore: Send + Sync {
    /// The newest changelog revision.
    async fn current_revision(&self) -> StoreResult<i64>;
    /// One membership with the member's profile.
    async fn member(&self, workspace_id: Uuid, user_id: Uuid) -> StoreResult<Option<MemberRow>>;
    /// Members by name, email, id after the keyset cursor, filtered by a substring of name or
    /// email and by role.
    async fn list_members(
        &self,
        workspace_id: Uuid,
        query: Option<&str>,
        role: Option<&str>,
        after: Option<(String, String, Uuid)>,
        limit: i64,
    ) -> StoreResult<Vec<MemberRow>>;
}

fn err(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(e, what)
}

macro_rules! member_select {
    ($where:literal) => {
        concat!(
            "SELECT u.id, u.email, u.name, u.avatar_url, u.is_active, u.is_admin, u.created_at, \
             u.updated_at, m.workspace_id, m.role, m.created_at AS joined_at, \
             COALESCE(m.updated_at, m.created_at) AS role_updated_at \
             FROM memberships m JOIN users u ON u.id = m.user_id WHERE ",
            $where
        )
    };
}

macro_rules! impl_tenancy_store {
    ($store:ty) => {
        impl $store {
            /// Adds (`add`, with `sql` an INSERT … ON CONFLICT DO NOTHING of `$1, $2, $3 =
            /// now`) or removes (`sql` a DELETE of `$1, $2`) a (thing, user) link; only
            /// workspace members are linked. Appends `change` and `audit` when it changed.
            #[allow(clippy::too_many_arguments)]
            pub(super) async fn write_link(
                &self,
                workspace_id: Uuid,
                sql: &'static str,
                thing: Uuid,
                user_id: Uuid,
                add: bool,
                change: Change,
                audit: &AuditRow,
            ) -> StoreResult<LinkOutcome> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                if add {
                    let member = sqlx::query_scalar::<_, i64>(
                        "SELECT COUNT(*) FROM memberships WHERE workspace_id = $1 AND user_id = $2",
                    )
                    .bind(workspace_id)
                    .bind(user_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err("member"))?;
                    if member == 0 {
                        return Ok(LinkOutcome::NotWorkspaceMember);
                    }
                }
                let mut query = sqlx::query(sql).bind(thing).bind(user_id);
                if add {
                    query = query.bind(Utc::now());
                }
                let changed = query
                    .execute(&mut *tx)
                    .await
                    .map_err(err("link"))?
                    .rows_affected()
                    == 1;
                if !changed {
                    let revision = current_revision_query!()
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(err("changelog"))?;
                    return Ok(LinkOutcome::Unchanged(revision));
                }
                let revision = append_change!(tx, change).await.map_err(err("changelog"))?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("link"))?;
                Ok(LinkOutcome::Changed(revision))
            }
        }

        #[async_trait]
        impl TenancyStore for $store {
            async fn current_revision(&self) -> StoreResult<i64> {
                current_revision_query!()
                    .fetch_one(&self.pool)
                    .await
                    .map_err(err("changelog"))
            }

            async fn member(
                &self,
                workspace_id: Uuid,
                user_id: Uuid,
            ) -> StoreResult<Option<MemberRow>> {
                let row = sqlx::query(member_select!("m.workspace_id = $1 AND m.user_id = $2"))
                    .bind(workspace_id)
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err("member"))?;
                row.map(|r| member_from_row(&r)).transpose()
            }

            async fn list_members(
                &self,
                workspace_id: Uuid,
                query: Option<&str>,
                role: Option<&str>,
                after: Option<(String, String, Uuid)>,
                limit: i64,
            ) -> StoreResult<Vec<MemberRow>> {
                let pattern = query.map(super::contains_pattern);
                let (name, email, id) = match after {
                    Some((n, e, i)) => (Some(n), Some(e), Some(i)),
                    None => (None, None, None),
                };
                let rows = sqlx::query(member_select!(
                    "m.workspace_id = $1 \
                     AND ($2 IS NULL OR LOWER(u.name) LIKE $2 ESCAPE '\\' \
                     OR u.email LIKE $2 ESCAPE '\\') \
                     AND ($3 IS NULL OR m.role = $3) \
                     AND ($4 IS NULL OR u.name > $4 OR (u.name = $4 AND u.email > $5) \
                     OR (u.name = $4 AND u.email = $5 AND u.id > $6)) \
                     ORDER BY u.name, u.email, u.id LIMIT $7"
                ))
                .bind(workspace_id)
                .bind(pattern)
                .bind(role)
                .bind(name)
                .bind(email)
                .bind(id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(err("member"))?;
                rows.iter().map(member_from_row).collect()
            }
        }
    };
}

fn member_from_row<R: Row>(row: &R) -> StoreResult<MemberRow>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> Uuid: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> bool: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> DateTime<Utc>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let e = err("member");
    Ok(MemberRow {
        user: user_from_row(row)?,
        workspace_id: row.try_get("workspace_id").map_err(&e)?,
        role: row.try_get("role").map_err(&e)?,
        joined_at: row.try_get("joined_at").map_err(&e)?,
        updated_at: row.try_get("role_updated_at").map_err(&e)?,
    })
}

impl_tenancy_store!(SqliteStore);
impl_tenancy_store!(PostgresStore);
