//! Write transactions the domain holds. [`WriteTxStore::begin_changelog`] opens a transaction
//! under [`WriteLock::Changelog`]; the domain reads the facts its rule needs through it, decides,
//! writes, records the change with its audit event and commits — one place for the rule and no
//! window between the check and the write. Dropping a transaction without committing rolls it
//! back. The store only reads and writes rows here: every rule lives in the domain.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::authz::{grant_from_row, resource_from_row};
use super::bulk_tx::{BulkResourceTx, impl_bulk_tx};
use super::changelog_tx::impl_changelog_tx;
use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{AuditRow, GrantRow, ResourceRow, StoreError, StoreResult, WriteLock};
use crate::model::change::{Change, GranteeRef, ResourceKey, ResourceState};
use crate::model::{GroupId, Permission, Revision, RoleId, UserId, WorkspaceId, WorkspaceRole};

/// Memberships, users, workspaces and groups, read and written inside a transaction.
#[async_trait]
pub trait MembershipTx: Send {
    /// Whether the workspace exists.
    async fn workspace_exists(&mut self, workspace: WorkspaceId) -> StoreResult<bool>;
    /// Whether the user exists.
    async fn user_exists(&mut self, user: UserId) -> StoreResult<bool>;
    /// The user's stored role in the workspace (`None`: not a member).
    async fn role_of(
        &mut self,
        workspace: WorkspaceId,
        user: UserId,
    ) -> StoreResult<Option<WorkspaceRole>>;
    /// How many owners the workspace has.
    async fn owner_count(&mut self, workspace: WorkspaceId) -> StoreResult<i64>;
    /// The workspace a group belongs to (`None`: no such group).
    async fn group_workspace(&mut self, group: GroupId) -> StoreResult<Option<WorkspaceId>>;
    /// Sets a member's role.
    async fn set_member_role(
        &mut self,
        workspace: WorkspaceId,
        user: UserId,
        role: WorkspaceRole,
    ) -> StoreResult<()>;
    /// Removes a member with their group memberships and custom roles in the workspace.
    async fn remove_member(&mut self, workspace: WorkspaceId, user: UserId) -> StoreResult<()>;
    /// Adds a member with a role (the caller has checked they are not one).
    async fn add_member(
        &mut self,
        workspace: WorkspaceId,
        user: UserId,
        role: WorkspaceRole,
    ) -> StoreResult<()>;
    /// Deletes an invitation, returning its workspace and role (`None`: already gone).
    async fn take_invitation(
        &mut self,
        id: Uuid,
    ) -> StoreResult<Option<(WorkspaceId, WorkspaceRole)>>;
    /// Adds (`add`) or removes a user to or from a group; whether anything changed.
    async fn set_group_member(
        &mut self,
        group: GroupId,
        user: UserId,
        add: bool,
    ) -> StoreResult<bool>;
    /// Assigns (`assign`) or unassigns a custom role; whether anything changed.
    async fn set_role_assignment(
        &mut self,
        role: RoleId,
        user: UserId,
        assign: bool,
    ) -> StoreResult<bool>;
}

/// Resources and grants, read and written inside a transaction.
#[async_trait]
pub trait ResourceTx: Send {
    /// One resource by key, with its parent's row id.
    async fn resource(
        &mut self,
        key: &ResourceKey,
    ) -> StoreResult<Option<(ResourceRow, Option<Uuid>)>>;
    /// Whether the parent chain from `from` (by row id, `from` itself included) meets
    /// `target`, or runs `max` steps or more: one query, however long the chain.
    async fn chain_reaches(&mut self, from: Uuid, target: Uuid, max: i64) -> StoreResult<bool>;
    /// How many grants and children a resource (by row id) has.
    async fn attachments(&mut self, resource: Uuid) -> StoreResult<i64>;
    /// Stores a resource: inserts it (`existing` is `None`) or replaces the state of the row
    /// `existing`; the stored row.
    async fn put_resource(
        &mut self,
        existing: Option<Uuid>,
        state: &ResourceState,
        parent: Option<Uuid>,
    ) -> StoreResult<ResourceRow>;
    /// Deletes a resource (by row id) with its grants; its children are detached.
    async fn delete_resource(&mut self, resource: Uuid) -> StoreResult<()>;
    /// The grantee's grant on a resource (by row id), if any.
    async fn grant(&mut self, resource: Uuid, grantee: GranteeRef)
    -> StoreResult<Option<GrantRow>>;
    /// Creates or replaces the grantee's grant on a resource (by row id).
    async fn put_grant(&mut self, resource: Uuid, grant: &GrantRow) -> StoreResult<()>;
    /// Removes the grantee's grant on a resource (only of `permission`, when given); whether
    /// one was removed.
    async fn delete_grant(
        &mut self,
        resource: Uuid,
        grantee: GranteeRef,
        permission: Option<Permission>,
    ) -> StoreResult<bool>;
}

/// What the rules of a resource or grant write read and write: memberships, resources and
/// grants (a changelog transaction, or a view over one that holds its writes back).
pub trait RuleTx: MembershipTx + ResourceTx {}

impl<T: MembershipTx + ResourceTx + ?Sized> RuleTx for T {}

/// A transaction holding the changelog lock: authorization facts, decided and written in one
/// place, committed in revision order.
#[async_trait]
pub trait ChangelogTx: RuleTx + BulkResourceTx {
    /// The newest committed revision (the answer for a write that changed nothing).
    async fn revision(&mut self) -> StoreResult<Revision>;
    /// Appends `change` to the changelog with its audit event; the change's revision.
    async fn record(&mut self, change: &Change, audit: &AuditRow) -> StoreResult<Revision> {
        self.record_all(change, std::slice::from_ref(audit)).await
    }
    /// Appends `change` (one entry, one revision) with the audit events of its parts.
    async fn record_all(&mut self, change: &Change, audits: &[AuditRow]) -> StoreResult<Revision> {
        let revision = self.append(change).await?;
        self.audit(audits).await?;
        Ok(revision)
    }
    /// Appends `change` to the changelog; its revision (the next after every entry committed
    /// or appended before it).
    async fn append(&mut self, change: &Change) -> StoreResult<Revision>;
    /// Appends `changes` in order (many rows a statement), committed at `now`; their
    /// revisions, ascending in that order.
    async fn append_all(
        &mut self,
        changes: &[Change],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Revision>>;
    /// Stores audit events (many rows a statement).
    async fn audit(&mut self, audits: &[AuditRow]) -> StoreResult<()>;
    /// Appends `changes` as [`append_all`](Self::append_all) does and stores `audits` with
    /// them: one statement where the database allows it (PostgreSQL), two otherwise.
    async fn append_audited(
        &mut self,
        changes: &[Change],
        audits: &[AuditRow],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Revision>>;
    /// Commits everything written.
    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

/// Opens write transactions.
#[async_trait]
pub trait WriteTxStore: Send + Sync {
    /// A transaction holding [`WriteLock::Changelog`] until it commits or is dropped.
    async fn begin_changelog(&self) -> StoreResult<Box<dyn ChangelogTx>>;
}

fn err(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(e, what)
}

/// A transaction of one of the pools.
pub(crate) struct Tx<Db: sqlx::Database>(pub(super) sqlx::Transaction<'static, Db>);

/// Runs a link INSERT (binding `$1, $2, $3 = now`) or DELETE (`$1, $2`); whether a row changed.
macro_rules! link {
    ($tx:expr, $sql:expr, $thing:expr, $user:expr, $add:expr, $what:literal) => {{
        let mut query = sqlx::query($sql).bind($thing).bind($user);
        if $add {
            query = query.bind(crate::model::now());
        }
        Ok(query
            .execute(&mut *$tx)
            .await
            .map_err(err($what))?
            .rows_affected()
            == 1)
    }};
}

macro_rules! impl_write_tx {
    ($store:ty, $db:ty, $one_statement:expr) => {
        #[async_trait]
        impl WriteTxStore for $store {
            async fn begin_changelog(&self) -> StoreResult<Box<dyn ChangelogTx>> {
                Ok(Box::new(Tx(self.begin_write(WriteLock::Changelog).await?)))
            }
        }

        #[async_trait]
        impl MembershipTx for Tx<$db> {
            async fn workspace_exists(&mut self, workspace: WorkspaceId) -> StoreResult<bool> {
                sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM workspaces WHERE id = $1)")
                    .bind(workspace)
                    .fetch_one(&mut *self.0)
                    .await
                    .map_err(err("workspace"))
            }

            async fn user_exists(&mut self, user: UserId) -> StoreResult<bool> {
                sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
                    .bind(user)
                    .fetch_one(&mut *self.0)
                    .await
                    .map_err(err("user"))
            }

            async fn role_of(&mut self, workspace: WorkspaceId, user: UserId) -> StoreResult<Option<WorkspaceRole>> {
                sqlx::query_scalar::<_, WorkspaceRole>(
                    "SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2",
                )
                .bind(workspace)
                .bind(user)
                .fetch_optional(&mut *self.0)
                .await
                .map_err(err("member"))
            }

            async fn owner_count(&mut self, workspace: WorkspaceId) -> StoreResult<i64> {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM memberships WHERE workspace_id = $1 AND role = 'owner'",
                )
                .bind(workspace)
                .fetch_one(&mut *self.0)
                .await
                .map_err(err("member"))
            }

            async fn group_workspace(&mut self, group: GroupId) -> StoreResult<Option<WorkspaceId>> {
                sqlx::query_scalar::<_, WorkspaceId>("SELECT workspace_id FROM groups WHERE id = $1")
                    .bind(group)
                    .fetch_optional(&mut *self.0)
                    .await
                    .map_err(err("group"))
            }

            async fn set_member_role(
                &mut self,
                workspace: WorkspaceId,
                user: UserId,
                role: WorkspaceRole,
            ) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE memberships SET role = $3, updated_at = $4 \
                     WHERE workspace_id = $1 AND user_id = $2",
                )
                .bind(workspace)
                .bind(user)
                .bind(role)
                .bind(crate::model::now())
                .execute(&mut *self.0)
                .await
                .map_err(err("member"))?;
                Ok(())
            }

            async fn remove_member(&mut self, workspace: WorkspaceId, user: UserId) -> StoreResult<()> {
                for sql in [
                    "DELETE FROM group_members WHERE user_id = $2 AND group_id IN \
                     (SELECT id FROM groups WHERE workspace_id = $1)",
                    "DELETE FROM role_assignments WHERE user_id = $2 AND role_id IN \
                     (SELECT id FROM roles WHERE workspace_id = $1)",
                    "DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2",
                ] {
                    sqlx::query(sql)
                        .bind(workspace)
                        .bind(user)
                        .execute(&mut *self.0)
                        .await
                        .map_err(err("member"))?;
                }
                Ok(())
            }

            async fn add_member(
                &mut self,
                workspace: WorkspaceId,
                user: UserId,
                role: WorkspaceRole,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO memberships (workspace_id, user_id, role, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $4)",
                )
                .bind(workspace)
                .bind(user)
                .bind(role)
                .bind(crate::model::now())
                .execute(&mut *self.0)
                .await
                .map_err(err("member"))?;
                Ok(())
            }

            async fn take_invitation(&mut self, id: Uuid) -> StoreResult<Option<(WorkspaceId, WorkspaceRole)>> {
                sqlx::query_as::<_, (WorkspaceId, WorkspaceRole)>(
                    "DELETE FROM invitations WHERE id = $1 RETURNING workspace_id, role",
                )
                .bind(id)
                .fetch_optional(&mut *self.0)
                .await
                .map_err(err("invitation"))
            }

            async fn set_group_member(
                &mut self,
                group: GroupId,
                user: UserId,
                add: bool,
            ) -> StoreResult<bool> {
                let sql = if add {
                    "INSERT INTO group_members (group_id, user_id, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (group_id, user_id) DO NOTHING"
                } else {
                    "DELETE FROM group_members WHERE group_id = $1 AND user_id = $2"
                };
                link!(self.0, sql, group, user, add, "group member")
            }

            async fn set_role_assignment(
                &mut self,
                role: RoleId,
                user: UserId,
                assign: bool,
            ) -> StoreResult<bool> {
                let sql = if assign {
                    "INSERT INTO role_assignments (role_id, user_id, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (role_id, user_id) DO NOTHING"
                } else {
                    "DELETE FROM role_assignments WHERE role_id = $1 AND user_id = $2"
                };
                link!(self.0, sql, role, user, assign, "role assignment")
            }
        }

        #[async_trait]
        impl ResourceTx for Tx<$db> {
            async fn resource(
                &mut self,
                key: &ResourceKey,
            ) -> StoreResult<Option<(ResourceRow, Option<Uuid>)>> {
                let row = sqlx::query(resource_select!(
                    "r.service_name = $1 AND r.resource_type = $2 AND r.resource_id = $3"
                ))
                .bind(&key.service_name)
                .bind(&key.resource_type)
                .bind(&key.resource_id)
                .fetch_optional(&mut *self.0)
                .await
                .map_err(err("resource"))?;
                row.map(|r| resource_from_row(&r)).transpose()
            }

            async fn chain_reaches(
                &mut self,
                from: Uuid,
                target: Uuid,
                max: i64,
            ) -> StoreResult<bool> {
                sqlx::query_scalar::<_, bool>(
                    "WITH RECURSIVE up(id, depth) AS ( \
                         SELECT $1, 0 \
                         UNION ALL \
                         SELECT r.parent_id, up.depth + 1 FROM up \
                         JOIN resources r ON r.id = up.id \
                         WHERE r.parent_id IS NOT NULL AND up.depth < $3) \
                     SELECT EXISTS (SELECT 1 FROM up WHERE id = $2 OR depth >= $3)",
                )
                .bind(from)
                .bind(target)
                .bind(max)
                .fetch_one(&mut *self.0)
                .await
                .map_err(err("resource"))
            }

            async fn attachments(&mut self, resource: Uuid) -> StoreResult<i64> {
                sqlx::query_scalar::<_, i64>(
                    "SELECT (SELECT COUNT(*) FROM grants WHERE resource_id = $1) + \
                     (SELECT COUNT(*) FROM resources WHERE parent_id = $1)",
                )
                .bind(resource)
                .fetch_one(&mut *self.0)
                .await
                .map_err(err("resource"))
            }

            async fn put_resource(
                &mut self,
                existing: Option<Uuid>,
                state: &ResourceState,
                parent: Option<Uuid>,
            ) -> StoreResult<ResourceRow> {
                let now = crate::model::now();
                let (id, created_at, updated_at) = match existing {
                    None => sqlx::query_as::<_, (Uuid, DateTime<Utc>, DateTime<Utc>)>(
                        "INSERT INTO resources (id, service_name, resource_type, \
                         resource_id, workspace_id, owner_id, visibility, parent_id, \
                         created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
                         RETURNING id, created_at, updated_at",
                    )
                    .bind(Uuid::now_v7())
                    .bind(&state.service_name)
                    .bind(&state.resource_type)
                    .bind(&state.resource_id)
                    .bind(state.workspace_id)
                    .bind(state.owner_id)
                    .bind(&state.visibility)
                    .bind(parent)
                    .bind(now)
                    .fetch_one(&mut *self.0)
                    .await
                    .map_err(err("resource"))?,
                    Some(id) => sqlx::query_as::<_, (Uuid, DateTime<Utc>, DateTime<Utc>)>(
                        "UPDATE resources SET workspace_id = $2, owner_id = $3, \
                         visibility = $4, parent_id = $5, updated_at = $6 WHERE id = $1 \
                         RETURNING id, created_at, updated_at",
                    )
                    .bind(id)
                    .bind(state.workspace_id)
                    .bind(state.owner_id)
                    .bind(&state.visibility)
                    .bind(parent)
                    .bind(now)
                    .fetch_one(&mut *self.0)
                    .await
                    .map_err(err("resource"))?,
                };
                // The state as written: its parent key is the one the caller resolved.
                Ok(ResourceRow {
                    id,
                    state: state.clone(),
                    created_at,
                    updated_at,
                })
            }

            async fn delete_resource(&mut self, resource: Uuid) -> StoreResult<()> {
                for sql in [
                    "UPDATE resources SET parent_id = NULL WHERE parent_id = $1",
                    "DELETE FROM resources WHERE id = $1",
                ] {
                    sqlx::query(sql)
                        .bind(resource)
                        .execute(&mut *self.0)
                        .await
                        .map_err(err("resource"))?;
                }
                Ok(())
            }

            async fn grant(
                &mut self,
                resource: Uuid,
                grantee: GranteeRef,
            ) -> StoreResult<Option<GrantRow>> {
                sqlx::query(
                    "SELECT grantee_type, grantee_id, permission, expires_at, granted_by, \
                     created_at FROM grants WHERE resource_id = $1 AND grantee_type = $2 \
                     AND grantee_id = $3",
                )
                .bind(resource)
                .bind(grantee.kind())
                .bind(grantee.id())
                .fetch_optional(&mut *self.0)
                .await
                .map_err(err("grant"))?
                .map(|r| grant_from_row(&r))
                .transpose()
            }

            async fn put_grant(&mut self, resource: Uuid, grant: &GrantRow) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO grants (resource_id, grantee_type, grantee_id, permission, \
                     expires_at, granted_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (resource_id, grantee_type, grantee_id) DO UPDATE SET \
                     permission = excluded.permission, expires_at = excluded.expires_at, \
                     granted_by = excluded.granted_by, created_at = excluded.created_at",
                )
                .bind(resource)
                .bind(grant.grantee.kind())
                .bind(grant.grantee.id())
                .bind(&grant.permission)
                .bind(grant.expires_at)
                .bind(grant.granted_by)
                .bind(grant.created_at)
                .execute(&mut *self.0)
                .await
                .map_err(err("grant"))?;
                Ok(())
            }

            async fn delete_grant(
                &mut self,
                resource: Uuid,
                grantee: GranteeRef,
                permission: Option<Permission>,
            ) -> StoreResult<bool> {
                Ok(sqlx::query(
                    "DELETE FROM grants WHERE resource_id = $1 AND grantee_type = $2 \
                     AND grantee_id = $3 AND ($4 IS NULL OR permission = $4)",
                )
                .bind(resource)
                .bind(grantee.kind())
                .bind(grantee.id())
                .bind(permission)
                .execute(&mut *self.0)
                .await
                .map_err(err("grant"))?
                .rows_affected()
                    > 0)
            }
        }

        impl_changelog_tx!($db, $one_statement);
    };
}

impl_write_tx!(SqliteStore, sqlx::Sqlite, false);
impl_write_tx!(PostgresStore, sqlx::Postgres, true);
// Rows of 10 parameters a statement: SQLite binds at most 999, PostgreSQL 65535.
impl_bulk_tx!(sqlx::Sqlite, 99);
impl_bulk_tx!(sqlx::Postgres, 3000);
