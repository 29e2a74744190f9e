//! Many resources and grants read and written a statement at a time inside a changelog
//! transaction ([`BulkResourceTx`]), for imports and groups of writes, with the memberships,
//! users, workspaces and groups their rules ask about; new rows go in by `copy_in.rs`. The
//! macro is expanded in `tx.rs` for each pool's transaction type, with the rows a statement
//! takes on that database (SQLite binds at most 999 parameters a statement, PostgreSQL 65535).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{GrantRow, ResourceRow, StoreResult};
use crate::model::change::ResourceState;
use crate::model::{GroupId, UserId, WorkspaceId, WorkspaceRole};

/// A resource to insert: its new row id, state and parent's row id.
pub struct NewResource<'a> {
    /// The row id to give it.
    pub id: Uuid,
    /// Its state.
    pub state: &'a ResourceState,
    /// Its parent's row id.
    pub parent: Option<Uuid>,
}

/// Resources and grants by the thousand, inside a transaction.
#[async_trait]
pub trait BulkResourceTx: Send {
    /// The resources of `service` among `keys` (type, id), with their parents' row ids; absent
    /// keys are left out.
    async fn resources_by_keys(
        &mut self,
        service: &str,
        keys: &[(&str, &str)],
    ) -> StoreResult<Vec<(ResourceRow, Option<Uuid>)>>;
    /// Inserts resources that do not exist yet, created and updated at `now`.
    async fn insert_resources(
        &mut self,
        rows: &[NewResource<'_>],
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Inserts grants that do not exist yet (resource row id, grant).
    async fn insert_grants(&mut self, grants: &[(Uuid, GrantRow)]) -> StoreResult<()>;
    /// The grants on these resources (by row id), each with its resource's row id.
    async fn grants_on(&mut self, resources: &[Uuid]) -> StoreResult<Vec<(Uuid, GrantRow)>>;
    /// Creates or replaces each grantee's grant on a resource (by row id).
    async fn put_grants(&mut self, grants: &[(Uuid, GrantRow)]) -> StoreResult<()>;
    /// Every membership of these users: (workspace, user, role).
    async fn memberships_of(
        &mut self,
        users: &[UserId],
    ) -> StoreResult<Vec<(WorkspaceId, UserId, WorkspaceRole)>>;
    /// Those of these users that exist.
    async fn users_among(&mut self, users: &[UserId]) -> StoreResult<Vec<UserId>>;
    /// Those of these workspaces that exist.
    async fn workspaces_among(&mut self, ids: &[WorkspaceId]) -> StoreResult<Vec<WorkspaceId>>;
    /// Those of these groups that exist, each with its workspace.
    async fn groups_among(&mut self, ids: &[GroupId]) -> StoreResult<Vec<(GroupId, WorkspaceId)>>;
}

/// The rows of `SELECT <columns> FROM <table> WHERE <column> IN (ids)`, `chunk` ids a
/// statement (expanded where `err` is in scope).
macro_rules! select_in {
    ($tx:expr, $db:ty, $row:ty, $sql:literal, $ids:expr, $chunk:expr, $what:literal) => {{
        let mut found: Vec<$row> = Vec::new();
        for chunk in $ids.chunks($chunk) {
            let mut select = sqlx::QueryBuilder::<$db>::new($sql);
            let mut binds = select.separated(", ");
            for id in chunk {
                binds.push_bind(*id);
            }
            select.push(")");
            found.extend(
                select
                    .build_query_as::<$row>()
                    .fetch_all(&mut *$tx)
                    .await
                    .map_err(err($what))?,
            );
        }
        Ok(found)
    }};
}

pub(super) use select_in;

/// The select of a resource with its parent's key, before the key condition.
pub(super) const RESOURCES_BY_KEY: &str = "SELECT r.id, r.service_name, r.resource_type, \
    r.resource_id, r.workspace_id, r.owner_id, r.visibility, r.parent_id, r.created_at, \
    r.updated_at, p.resource_type AS parent_type, p.resource_id AS parent_key \
    FROM resources r LEFT JOIN resources p ON p.id = r.parent_id WHERE r.service_name = ";

/// Implements `BulkResourceTx` for `Tx<$db>`, `$rows` rows of 10 parameters a statement
/// (expanded where `Tx` and `err` are in scope).
macro_rules! impl_bulk_tx {
    ($db:ty, $rows:expr) => {
        #[async_trait]
        impl super::bulk_tx::BulkResourceTx for Tx<$db> {
            async fn resources_by_keys(
                &mut self,
                service: &str,
                keys: &[(&str, &str)],
            ) -> StoreResult<Vec<(ResourceRow, Option<Uuid>)>> {
                super::copy_in::CopyIn::resources_by_keys(self, service, keys).await
            }

            async fn insert_resources(
                &mut self,
                rows: &[super::bulk_tx::NewResource<'_>],
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                super::copy_in::CopyIn::copy_resources(self, rows, now).await
            }

            async fn insert_grants(&mut self, grants: &[(Uuid, GrantRow)]) -> StoreResult<()> {
                super::copy_in::CopyIn::copy_grants(self, grants).await
            }

            async fn grants_on(
                &mut self,
                resources: &[Uuid],
            ) -> StoreResult<Vec<(Uuid, GrantRow)>> {
                let mut found = Vec::new();
                for chunk in resources.chunks($rows * 9) {
                    let mut select = sqlx::QueryBuilder::<$db>::new(
                        "SELECT resource_id, grantee_type, grantee_id, permission, expires_at, \
                         granted_by, created_at FROM grants WHERE resource_id IN (",
                    );
                    let mut ids = select.separated(", ");
                    for id in chunk {
                        ids.push_bind(*id);
                    }
                    select.push(")");
                    for row in select
                        .build()
                        .fetch_all(&mut *self.0)
                        .await
                        .map_err(err("grant"))?
                    {
                        let resource: Uuid = sqlx::Row::try_get(&row, "resource_id")
                            .map_err(err("grant"))?;
                        found.push((resource, grant_from_row(&row)?));
                    }
                }
                Ok(found)
            }

            async fn put_grants(&mut self, grants: &[(Uuid, GrantRow)]) -> StoreResult<()> {
                for chunk in grants.chunks($rows * 10 / 7) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO grants (resource_id, grantee_type, grantee_id, permission, \
                         expires_at, granted_by, created_at) ",
                    );
                    insert.push_values(chunk, |mut row, (resource, grant)| {
                        row.push_bind(*resource)
                            .push_bind(grant.grantee.kind())
                            .push_bind(grant.grantee.id())
                            .push_bind(grant.permission)
                            .push_bind(grant.expires_at)
                            .push_bind(grant.granted_by)
                            .push_bind(grant.created_at);
                    });
                    insert.push(
                        " ON CONFLICT (resource_id, grantee_type, grantee_id) DO UPDATE SET \
                         permission = excluded.permission, expires_at = excluded.expires_at, \
                         granted_by = excluded.granted_by, created_at = excluded.created_at",
                    );
                    insert
                        .build()
                        .execute(&mut *self.0)
                        .await
                        .map_err(err("grant"))?;
                }
                Ok(())
            }

            async fn memberships_of(
                &mut self,
                users: &[UserId],
            ) -> StoreResult<Vec<(WorkspaceId, UserId, WorkspaceRole)>> {
                super::bulk_tx::select_in!(
                    self.0,
                    $db,
                    (WorkspaceId, UserId, WorkspaceRole),
                    "SELECT workspace_id, user_id, role FROM memberships WHERE user_id IN (",
                    users,
                    $rows * 9,
                    "member"
                )
            }

            async fn users_among(&mut self, users: &[UserId]) -> StoreResult<Vec<UserId>> {
                let found: StoreResult<Vec<(UserId,)>> = super::bulk_tx::select_in!(
                    self.0,
                    $db,
                    (UserId,),
                    "SELECT id FROM users WHERE id IN (",
                    users,
                    $rows * 9,
                    "user"
                );
                Ok(found?.into_iter().map(|(id,)| id).collect())
            }

            async fn workspaces_among(
                &mut self,
                ids: &[WorkspaceId],
            ) -> StoreResult<Vec<WorkspaceId>> {
                let found: StoreResult<Vec<(WorkspaceId,)>> = super::bulk_tx::select_in!(
                    self.0,
                    $db,
                    (WorkspaceId,),
                    "SELECT id FROM workspaces WHERE id IN (",
                    ids,
                    $rows * 9,
                    "workspace"
                );
                Ok(found?.into_iter().map(|(id,)| id).collect())
            }

            async fn groups_among(
                &mut self,
                ids: &[GroupId],
            ) -> StoreResult<Vec<(GroupId, WorkspaceId)>> {
                super::bulk_tx::select_in!(
                    self.0,
                    $db,
                    (GroupId, WorkspaceId),
                    "SELECT id, workspace_id FROM groups WHERE id IN (",
                    ids,
                    $rows * 9,
                    "group"
                )
            }
        }
    };
}

pub(super) use impl_bulk_tx;
