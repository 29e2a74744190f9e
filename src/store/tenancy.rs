//! Memberships, read here (they are written through a [`super::ChangelogTx`]), and the link
//! write that groups and custom roles share: it holds [`WriteLock::Changelog`] and appends its
//! [`Change`] in the same transaction as the change and its audit event.

use crate::model::WorkspaceRole;
use async_trait::async_trait;
use sqlx::{FromRow, Row};

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{StoreError, StoreResult};
use crate::model::Revision;
use crate::model::records::MemberRow;
use crate::model::{UserId, WorkspaceId};

/// Memberships of workspaces.
#[async_trait]
pub trait TenancyStore: Send + Sync {
    /// The newest changelog revision.
    async fn current_revision(&self) -> StoreResult<Revision>;
    /// One membership with the member's profile.
    async fn member(
        &self,
        workspace_id: WorkspaceId,
        user_id: UserId,
    ) -> StoreResult<Option<MemberRow>>;
    /// Members by name, email, id after the keyset cursor, filtered by a substring of name or
    /// email and by role.
    async fn list_members(
        &self,
        workspace_id: WorkspaceId,
        query: Option<&str>,
        role: Option<WorkspaceRole>,
        after: Option<(String, String, UserId)>,
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
        #[async_trait]
        impl TenancyStore for $store {
            async fn current_revision(&self) -> StoreResult<Revision> {
                current_revision_query!()
                    .fetch_one(&self.pool)
                    .await
                    .map_err(err("changelog"))
            }

            async fn member(
                &self,
                workspace_id: WorkspaceId,
                user_id: UserId,
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
                workspace_id: WorkspaceId,
                query: Option<&str>,
                role: Option<WorkspaceRole>,
                after: Option<(String, String, UserId)>,
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
    MemberRow: for<'r> sqlx::FromRow<'r, R>,
{
    MemberRow::from_row(row).map_err(err("member"))
}

impl_tenancy_store!(SqliteStore);
impl_tenancy_store!(PostgresStore);
