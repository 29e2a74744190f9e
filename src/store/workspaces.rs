//! `workspaces` and `memberships`: tenants and who belongs to them, with the scope a token
//! carries (role, workspace, groups).

use crate::model::WorkspaceRole;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{FromRow, Row};

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{StoreError, StoreResult, UserRow, WriteLock};
use crate::model::Change;
use crate::model::Revision;
use crate::model::records::WorkspaceRow;
use crate::model::{GroupId, UserId, WorkspaceId};

/// Workspaces and memberships.
#[async_trait]
pub trait WorkspaceStore: Send + Sync {
    /// Inserts a workspace; `Conflict` when the slug exists.
    async fn insert_workspace(&self, workspace: &WorkspaceRow) -> StoreResult<()>;
    /// A workspace by id.
    async fn workspace_by_id(&self, id: WorkspaceId) -> StoreResult<Option<WorkspaceRow>>;
    /// A workspace by slug.
    async fn workspace_by_slug(&self, slug: &str) -> StoreResult<Option<WorkspaceRow>>;
    /// Creates or changes a membership.
    async fn upsert_membership(
        &self,
        workspace_id: WorkspaceId,
        user_id: UserId,
        role: WorkspaceRole,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The user's role in the workspace, if a member.
    async fn membership_role(
        &self,
        workspace_id: WorkspaceId,
        user_id: UserId,
    ) -> StoreResult<Option<WorkspaceRole>>;
    /// Creates a workspace with `owner` as its owner, audited, in one transaction.
    async fn create_workspace(
        &self,
        workspace: &WorkspaceRow,
        owner: UserId,
        audit: &super::AuditRow,
    ) -> StoreResult<()>;
    /// Workspaces ordered by (name, id) after the cursor, filtered by a substring of name or
    /// slug; with `member`, only that user's, with their role and join time.
    async fn list_workspaces(
        &self,
        member: Option<UserId>,
        query: Option<&str>,
        after: Option<(String, WorkspaceId)>,
        limit: i64,
    ) -> StoreResult<Vec<(WorkspaceRow, Option<WorkspaceRole>, Option<DateTime<Utc>>)>>;
    /// Changes name, slug or description; `Conflict` when the slug is taken.
    async fn update_workspace(
        &self,
        id: WorkspaceId,
        name: Option<&str>,
        slug: Option<&str>,
        description: Option<&str>,
        audit: &super::AuditRow,
    ) -> StoreResult<Option<WorkspaceRow>>;
    /// Deletes a workspace and everything in it; says whether it existed.
    async fn delete_workspace(
        &self,
        id: WorkspaceId,
        audit: &super::AuditRow,
    ) -> StoreResult<Option<Revision>>;
    /// Imports one CSV row in one transaction: creates the user unless the email exists, then
    /// adds the membership unless it exists. Returns (user created, membership added).
    async fn import_member(
        &self,
        user: &UserRow,
        membership: Option<(WorkspaceId, WorkspaceRole)>,
    ) -> StoreResult<(bool, bool)>;
    /// Every workspace, by slug.
    async fn all_workspaces(&self) -> StoreResult<Vec<WorkspaceRow>>;
    /// Every membership as (email, name, workspace slug, role, joined), by email then slug.
    async fn all_memberships(
        &self,
    ) -> StoreResult<Vec<(String, String, String, String, DateTime<Utc>)>>;
    /// In one query: the user's role in the workspace, the workspace, and the user's groups in
    /// it (sorted); `None` when not a member.
    async fn workspace_scope(
        &self,
        workspace_id: WorkspaceId,
        user_id: UserId,
    ) -> StoreResult<Option<(WorkspaceRole, WorkspaceRow, Vec<GroupId>)>>;
    /// Ids of the workspace's groups the user belongs to, sorted.
    async fn group_ids(
        &self,
        workspace_id: WorkspaceId,
        user_id: UserId,
    ) -> StoreResult<Vec<GroupId>>;
}

fn err(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(e, what)
}

macro_rules! impl_workspace_store {
    ($store:ty) => {
        #[async_trait]
        impl WorkspaceStore for $store {
            async fn insert_workspace(&self, workspace: &WorkspaceRow) -> StoreResult<()> {
                sqlx::query(concat!(
                    "INSERT INTO workspaces (",
                    workspace_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6)"
                ))
                .bind(workspace.id)
                .bind(&workspace.name)
                .bind(&workspace.slug)
                .bind(&workspace.description)
                .bind(workspace.created_at)
                .bind(workspace.updated_at)
                .execute(&self.pool)
                .await
                .map_err(err("workspace"))?;
                Ok(())
            }

            async fn workspace_by_id(&self, id: WorkspaceId) -> StoreResult<Option<WorkspaceRow>> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    workspace_columns!(),
                    " FROM workspaces WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(err("workspace"))?;
                row.map(|r| workspace_from_row(&r)).transpose()
            }

            async fn workspace_by_slug(&self, slug: &str) -> StoreResult<Option<WorkspaceRow>> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    workspace_columns!(),
                    " FROM workspaces WHERE slug = $1"
                ))
                .bind(slug)
                .fetch_optional(&self.pool)
                .await
                .map_err(err("workspace"))?;
                row.map(|r| workspace_from_row(&r)).transpose()
            }

            async fn upsert_membership(
                &self,
                workspace_id: WorkspaceId,
                user_id: UserId,
                role: WorkspaceRole,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                let before = sqlx::query_scalar::<_, String>(
                    "SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2",
                )
                .bind(workspace_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err("membership"))?;
                sqlx::query(
                    "INSERT INTO memberships (workspace_id, user_id, role, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $4) ON CONFLICT (workspace_id, user_id) \
                     DO UPDATE SET role = excluded.role, updated_at = excluded.updated_at",
                )
                .bind(workspace_id)
                .bind(user_id)
                .bind(role)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(err("membership"))?;
                let change = Change::MemberSet {
                    workspace_id,
                    user_id,
                    role,
                    added: before.is_none(),
                };
                append_change!(tx, change)
                    .await
                    .map_err(err("changelog"))?;
                tx.commit().await.map_err(err("membership"))
            }

            async fn membership_role(
                &self,
                workspace_id: WorkspaceId,
                user_id: UserId,
            ) -> StoreResult<Option<WorkspaceRole>> {
                let row = sqlx::query(
                    "SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2",
                )
                .bind(workspace_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(err("membership"))?;
                row.map(|r| r.try_get::<WorkspaceRole, _>("role").map_err(err("membership")))
                    .transpose()
            }

            async fn create_workspace(
                &self,
                workspace: &WorkspaceRow,
                owner: UserId,
                audit: &super::AuditRow,
            ) -> StoreResult<()> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                sqlx::query(concat!(
                    "INSERT INTO workspaces (",
                    workspace_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6)"
                ))
                .bind(workspace.id)
                .bind(&workspace.name)
                .bind(&workspace.slug)
                .bind(&workspace.description)
                .bind(workspace.created_at)
                .bind(workspace.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(err("workspace slug"))?;
                sqlx::query(
                    "INSERT INTO memberships (workspace_id, user_id, role, created_at, updated_at) \
                     VALUES ($1, $2, 'owner', $3, $3)",
                )
                .bind(workspace.id)
                .bind(owner)
                .bind(workspace.created_at)
                .execute(&mut *tx)
                .await
                .map_err(err("membership"))?;
                let change = Change::MemberSet {
                    workspace_id: workspace.id,
                    user_id: owner,
                    role: WorkspaceRole::Owner,
                    added: true,
                };
                append_change!(tx, change)
                    .await
                    .map_err(err("changelog"))?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("workspace"))
            }

            async fn list_workspaces(
                &self,
                member: Option<UserId>,
                query: Option<&str>,
                after: Option<(String, WorkspaceId)>,
                limit: i64,
            ) -> StoreResult<Vec<(WorkspaceRow, Option<WorkspaceRole>, Option<DateTime<Utc>>)>> {
                let pattern = query.map(super::contains_pattern);
                let (after_name, after_id) = after.unzip();
                let rows = sqlx::query(
                    "SELECT w.id, w.name, w.slug, w.description, w.created_at, w.updated_at, \
                     m.role, m.created_at AS joined_at FROM workspaces w \
                     LEFT JOIN memberships m ON m.workspace_id = w.id AND m.user_id = $1 \
                     WHERE ($1 IS NULL OR m.user_id IS NOT NULL) \
                     AND ($2 IS NULL OR LOWER(w.name) LIKE $2 ESCAPE '\\' \
                     OR w.slug LIKE $2 ESCAPE '\\') \
                     AND ($3 IS NULL OR w.name > $3 OR (w.name = $3 AND w.id > $4)) \
                     ORDER BY w.name, w.id LIMIT $5",
                )
                .bind(member)
                .bind(pattern)
                .bind(after_name)
                .bind(after_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(err("workspace"))?;
                let e = err("workspace");
                rows.iter()
                    .map(|r| {
                        Ok((
                            workspace_from_row(r)?,
                            r.try_get("role").map_err(&e)?,
                            r.try_get("joined_at").map_err(&e)?,
                        ))
                    })
                    .collect()
            }

            async fn update_workspace(
                &self,
                id: WorkspaceId,
                name: Option<&str>,
                slug: Option<&str>,
                description: Option<&str>,
                audit: &super::AuditRow,
            ) -> StoreResult<Option<WorkspaceRow>> {
                let mut tx = self.pool.begin().await.map_err(err("workspace"))?;
                let row = sqlx::query(concat!(
                    "UPDATE workspaces SET name = COALESCE($2, name), slug = COALESCE($3, slug), \
                     description = COALESCE($4, description), updated_at = $5 WHERE id = $1 \
                     RETURNING ",
                    workspace_columns!()
                ))
                .bind(id)
                .bind(name)
                .bind(slug)
                .bind(description)
                .bind(crate::model::now())
                .fetch_optional(&mut *tx)
                .await
                .map_err(err("workspace slug"))?;
                let Some(row) = row else { return Ok(None) };
                let workspace = workspace_from_row(&row)?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("workspace"))?;
                Ok(Some(workspace))
            }

            async fn delete_workspace(
                &self,
                id: WorkspaceId,
                audit: &super::AuditRow,
            ) -> StoreResult<Option<Revision>> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                let done = sqlx::query("DELETE FROM workspaces WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("workspace"))?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                let change = Change::WorkspaceDeleted { workspace_id: id };
                let revision = append_change!(tx, change)
                    .await
                    .map_err(err("changelog"))?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("workspace"))?;
                Ok(Some(revision))
            }

            async fn import_member(
                &self,
                user: &UserRow,
                membership: Option<(WorkspaceId, WorkspaceRole)>,
            ) -> StoreResult<(bool, bool)> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                let created = sqlx::query(concat!(
                    "INSERT INTO users (",
                    user_columns!(),
                    ", email_verified) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, TRUE) \
                     ON CONFLICT (email) DO NOTHING"
                ))
                .bind(user.id)
                .bind(&user.email)
                .bind(&user.name)
                .bind(&user.avatar_url)
                .bind(user.is_active)
                .bind(user.is_admin)
                .bind(user.created_at)
                .bind(user.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(err("user"))?
                .rows_affected()
                    == 1;
                let mut added = false;
                if let Some((workspace_id, role)) = membership {
                    let id: UserId = sqlx::query("SELECT id FROM users WHERE email = $1")
                        .bind(&user.email)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(err("user"))?
                        .try_get("id")
                        .map_err(err("user"))?;
                    added = sqlx::query(
                        "INSERT INTO memberships (workspace_id, user_id, role, created_at, \
                         updated_at) VALUES ($1, $2, $3, $4, $4) \
                         ON CONFLICT (workspace_id, user_id) DO NOTHING",
                    )
                    .bind(workspace_id)
                    .bind(id)
                    .bind(role)
                    .bind(user.created_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("membership"))?
                    .rows_affected()
                        == 1;
                    if added {
                        let change = Change::MemberSet {
                            workspace_id,
                            user_id: id,
                            role,
                            added: true,
                        };
                        append_change!(tx, change)
                            .await
                            .map_err(err("changelog"))?;
                    }
                }
                tx.commit().await.map_err(err("user"))?;
                Ok((created, added))
            }

            async fn all_workspaces(&self) -> StoreResult<Vec<WorkspaceRow>> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    workspace_columns!(),
                    " FROM workspaces ORDER BY slug"
                ))
                .fetch_all(&self.pool)
                .await
                .map_err(err("workspace"))?;
                rows.iter().map(workspace_from_row).collect()
            }

            async fn all_memberships(
                &self,
            ) -> StoreResult<Vec<(String, String, String, String, DateTime<Utc>)>> {
                let rows = sqlx::query(
                    "SELECT u.email, u.name, w.slug, m.role, m.created_at FROM memberships m \
                     JOIN users u ON u.id = m.user_id JOIN workspaces w ON w.id = m.workspace_id \
                     ORDER BY u.email, w.slug",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(err("membership"))?;
                let e = err("membership");
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.try_get("email").map_err(&e)?,
                            r.try_get("name").map_err(&e)?,
                            r.try_get("slug").map_err(&e)?,
                            r.try_get("role").map_err(&e)?,
                            r.try_get("created_at").map_err(&e)?,
                        ))
                    })
                    .collect()
            }

            async fn workspace_scope(
                &self,
                workspace_id: WorkspaceId,
                user_id: UserId,
            ) -> StoreResult<Option<(WorkspaceRole, WorkspaceRow, Vec<GroupId>)>> {
                let rows = sqlx::query(
                    "SELECT m.role, w.id, w.name, w.slug, w.description, w.created_at, \
                     w.updated_at, g.id AS group_id FROM memberships m \
                     JOIN workspaces w ON w.id = m.workspace_id \
                     LEFT JOIN groups g ON g.workspace_id = m.workspace_id AND EXISTS \
                     (SELECT 1 FROM group_members gm WHERE gm.group_id = g.id \
                     AND gm.user_id = m.user_id) \
                     WHERE m.workspace_id = $1 AND m.user_id = $2 ORDER BY g.id",
                )
                .bind(workspace_id)
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err(err("membership"))?;
                let Some(first) = rows.first() else {
                    return Ok(None);
                };
                let role: WorkspaceRole = first.try_get("role").map_err(err("membership"))?;
                let workspace = workspace_from_row(first)?;
                let mut groups = Vec::new();
                for row in &rows {
                    if let Some(id) = row
                        .try_get::<Option<GroupId>, _>("group_id")
                        .map_err(err("group"))?
                    {
                        groups.push(id);
                    }
                }
                Ok(Some((role, workspace, groups)))
            }

            async fn group_ids(&self, workspace_id: WorkspaceId, user_id: UserId) -> StoreResult<Vec<GroupId>> {
                let rows = sqlx::query(
                    "SELECT g.id FROM groups g JOIN group_members m ON m.group_id = g.id \
                     WHERE g.workspace_id = $1 AND m.user_id = $2 ORDER BY g.id",
                )
                .bind(workspace_id)
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err(err("group"))?;
                rows.iter()
                    .map(|r| r.try_get::<GroupId, _>("id").map_err(err("group")))
                    .collect()
            }
        }
    };
}

fn workspace_from_row<R: Row>(row: &R) -> StoreResult<WorkspaceRow>
where
    WorkspaceRow: for<'r> sqlx::FromRow<'r, R>,
{
    WorkspaceRow::from_row(row).map_err(err("workspace"))
}

impl_workspace_store!(SqliteStore);
impl_workspace_store!(PostgresStore);
