//! Groups and their members. Membership changes of a group are authorization changes: they
//! hold [`WriteLock::Changelog`] and append their [`Change`] with the audit event.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{FromRow, Row};

use super::identity::user_from_row;
use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{AuditRow, StoreError, StoreResult, UserRow, WriteLock};
use crate::model::Change;
use crate::model::Revision;
use crate::model::records::GroupRow;
use crate::model::{GroupId, UserId, WorkspaceId};

/// Groups of a workspace and their members.
#[async_trait]
pub trait GroupStore: Send + Sync {
    /// Creates a group.
    async fn create_group(&self, group: &GroupRow, audit: &AuditRow) -> StoreResult<()>;
    /// One group.
    async fn group(&self, id: GroupId) -> StoreResult<Option<GroupRow>>;
    /// Groups of a workspace by name, id after the cursor.
    async fn list_groups(
        &self,
        workspace_id: WorkspaceId,
        member: Option<UserId>,
        query: Option<&str>,
        after: Option<(String, GroupId)>,
        limit: i64,
    ) -> StoreResult<Vec<GroupRow>>;
    /// Renames or re-describes a group.
    async fn update_group(
        &self,
        id: GroupId,
        name: Option<&str>,
        description: Option<&str>,
        audit: &AuditRow,
    ) -> StoreResult<Option<GroupRow>>;
    /// Deletes a group; the revision, or `None` when it did not exist.
    async fn delete_group(&self, id: GroupId, audit: &AuditRow) -> StoreResult<Option<Revision>>;
    /// Members of a group by name, email, id after the cursor, with when they were added.
    async fn list_group_members(
        &self,
        group_id: GroupId,
        after: Option<(String, String, UserId)>,
        limit: i64,
    ) -> StoreResult<Vec<(UserRow, DateTime<Utc>)>>;
}

fn err(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(e, what)
}

macro_rules! group_select {
    ($where:literal) => {
        concat!(
            "SELECT g.id, g.workspace_id, g.name, g.description, g.created_at, g.updated_at, \
             (SELECT COUNT(*) FROM group_members gm WHERE gm.group_id = g.id) AS member_count \
             FROM groups g WHERE ",
            $where
        )
    };
}

macro_rules! impl_group_store {
    ($store:ty) => {
        #[async_trait]
        impl GroupStore for $store {
            async fn create_group(&self, group: &GroupRow, audit: &AuditRow) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(err("group"))?;
                sqlx::query(
                    "INSERT INTO groups (id, workspace_id, name, description, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(group.id)
                .bind(group.workspace_id)
                .bind(&group.name)
                .bind(&group.description)
                .bind(group.created_at)
                .bind(group.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(err("group name"))?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("group"))
            }

            async fn group(&self, id: GroupId) -> StoreResult<Option<GroupRow>> {
                let row = sqlx::query(group_select!("g.id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err("group"))?;
                row.map(|r| group_from_row(&r)).transpose()
            }

            async fn list_groups(
                &self,
                workspace_id: WorkspaceId,
                member: Option<UserId>,
                query: Option<&str>,
                after: Option<(String, GroupId)>,
                limit: i64,
            ) -> StoreResult<Vec<GroupRow>> {
                let pattern = query.map(super::contains_pattern);
                let (name, id) = after.unzip();
                let rows = sqlx::query(group_select!(
                    "g.workspace_id = $1 \
                     AND ($2 IS NULL OR EXISTS (SELECT 1 FROM group_members x \
                     WHERE x.group_id = g.id AND x.user_id = $2)) \
                     AND ($3 IS NULL OR LOWER(g.name) LIKE $3 ESCAPE '\\') \
                     AND ($4 IS NULL OR g.name > $4 OR (g.name = $4 AND g.id > $5)) \
                     ORDER BY g.name, g.id LIMIT $6"
                ))
                .bind(workspace_id)
                .bind(member)
                .bind(pattern)
                .bind(name)
                .bind(id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(err("group"))?;
                rows.iter().map(group_from_row).collect()
            }

            async fn update_group(
                &self,
                id: GroupId,
                name: Option<&str>,
                description: Option<&str>,
                audit: &AuditRow,
            ) -> StoreResult<Option<GroupRow>> {
                let mut tx = self.pool.begin().await.map_err(err("group"))?;
                let done = sqlx::query(
                    "UPDATE groups SET name = COALESCE($2, name), \
                     description = COALESCE($3, description), updated_at = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(name)
                .bind(description)
                .bind(crate::model::now())
                .execute(&mut *tx)
                .await
                .map_err(err("group name"))?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("group"))?;
                self.group(id).await
            }

            async fn delete_group(&self, id: GroupId, audit: &AuditRow) -> StoreResult<Option<Revision>> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                let workspace_id = sqlx::query_scalar::<_, WorkspaceId>(
                    "DELETE FROM groups WHERE id = $1 RETURNING workspace_id",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err("group"))?;
                let Some(workspace_id) = workspace_id else {
                    return Ok(None);
                };
                // The group's grants go with it, each reported as removed.
                let grants = sqlx::query(
                    "SELECT r.service_name, r.resource_type, r.resource_id FROM grants g \
                     JOIN resources r ON r.id = g.resource_id \
                     WHERE g.grantee_type = 'group' AND g.grantee_id = $1",
                )
                .bind(id)
                .fetch_all(&mut *tx)
                .await
                .map_err(err("grant"))?;
                for row in &grants {
                    let e = err("grant");
                    let change = Change::GrantRemoved {
                        workspace_id,
                        key: crate::model::change::ResourceKey {
                            service_name: row.try_get("service_name").map_err(&e)?,
                            resource_type: row.try_get("resource_type").map_err(&e)?,
                            resource_id: row.try_get("resource_id").map_err(&e)?,
                        },
                        grantee: crate::model::change::GranteeRef::Group(id),
                    };
                    append_change!(tx, change)
                        .await
                        .map_err(err("changelog"))?;
                }
                sqlx::query("DELETE FROM grants WHERE grantee_type = 'group' AND grantee_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("grant"))?;
                let change = Change::GroupDeleted {
                    workspace_id,
                    group_id: id,
                };
                let revision = append_change!(tx, change)
                    .await
                    .map_err(err("changelog"))?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("group"))?;
                Ok(Some(revision))
            }

            async fn list_group_members(
                &self,
                group_id: GroupId,
                after: Option<(String, String, UserId)>,
                limit: i64,
            ) -> StoreResult<Vec<(UserRow, DateTime<Utc>)>> {
                let (name, email, id) = match after {
                    Some((n, e, i)) => (Some(n), Some(e), Some(i)),
                    None => (None, None, None),
                };
                let rows = sqlx::query(
                    "SELECT u.id, u.email, u.name, u.avatar_url, u.is_active, u.is_admin, \
                     u.created_at, u.updated_at, gm.created_at AS added_at \
                     FROM group_members gm JOIN users u ON u.id = gm.user_id \
                     WHERE gm.group_id = $1 \
                     AND ($2 IS NULL OR u.name > $2 OR (u.name = $2 AND u.email > $3) \
                     OR (u.name = $2 AND u.email = $3 AND u.id > $4)) \
                     ORDER BY u.name, u.email, u.id LIMIT $5",
                )
                .bind(group_id)
                .bind(name)
                .bind(email)
                .bind(id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(err("group member"))?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            user_from_row(r)?,
                            r.try_get("added_at").map_err(err("group member"))?,
                        ))
                    })
                    .collect()
            }
        }
    };
}

fn group_from_row<R: Row>(row: &R) -> StoreResult<GroupRow>
where
    GroupRow: for<'r> sqlx::FromRow<'r, R>,
{
    GroupRow::from_row(row).map_err(err("group"))
}

impl_group_store!(SqliteStore);
impl_group_store!(PostgresStore);
