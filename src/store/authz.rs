//! `resources`, `grants` and the changelog: the permission engine's durable state, read here.
//! Writes go through a [`super::ChangelogTx`] the domain holds.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{FromRow, Row};
use uuid::Uuid;

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{StoreError, StoreResult};
use crate::model::change::{Change, GranteeRef, ResourceKey, ResourceState};
use crate::model::records::{GrantRow, ResourceRow};
use crate::model::snapshot::{GrantRecord, ResourceRecord, Snapshot};
use crate::model::{Permission, Revision, UserId, Visibility, WorkspaceId};

/// A changelog entry.
#[derive(Debug, Clone)]
pub struct ChangeRow {
    /// Revision.
    pub revision: Revision,
    /// The change.
    pub change: Change,
    /// Commit time.
    pub occurred_at: DateTime<Utc>,
}

/// Permission-engine storage.
#[async_trait]
pub trait AuthzStore: Send + Sync {
    /// One resource by key.
    async fn resource(&self, key: &ResourceKey) -> StoreResult<Option<ResourceRow>>;
    /// The grants of a resource (by row id), live or expired.
    async fn grants(&self, resource: Uuid) -> StoreResult<Vec<GrantRow>>;
    /// Changelog entries after `after`, in order; with `service`, only that service's and
    /// service-less (membership, group) entries.
    async fn changes_since(
        &self,
        after: Revision,
        service: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<ChangeRow>>;
    /// The newest revision whose entry may have been pruned: every entry after it is kept
    /// (0 when nothing was pruned).
    async fn changelog_horizon(&self) -> StoreResult<Revision>;
    /// Deletes the entries that occurred before `before`, always keeping the newest (the
    /// current revision is read from it); returns how many went.
    async fn prune_changelog(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// Everything the in-memory index is built from.
    async fn authz_snapshot(&self) -> StoreResult<Snapshot>;
    /// Whether `service` has resources or custom roles in `workspace`.
    async fn service_in_workspace(
        &self,
        service: &str,
        workspace: WorkspaceId,
    ) -> StoreResult<bool>;
}

fn err(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(e, what)
}

macro_rules! impl_authz_store {
    ($store:ty, $snapshot_isolation:expr) => {
        impl $store {
            async fn resource_in<'c, E>(
                executor: E,
                key: &ResourceKey,
            ) -> StoreResult<Option<(ResourceRow, Option<Uuid>)>>
            where
                E: sqlx::Executor<'c, Database = <Self as StoreDb>::Db>,
            {
                let row = sqlx::query(resource_select!(
                    "r.service_name = $1 AND r.resource_type = $2 AND r.resource_id = $3"
                ))
                .bind(&key.service_name)
                .bind(&key.resource_type)
                .bind(&key.resource_id)
                .fetch_optional(executor)
                .await
                .map_err(err("resource"))?;
                row.map(|r| resource_from_row(&r)).transpose()
            }
        }

        #[async_trait]
        impl AuthzStore for $store {
            async fn resource(&self, key: &ResourceKey) -> StoreResult<Option<ResourceRow>> {
                Ok(Self::resource_in(&self.pool, key).await?.map(|(r, _)| r))
            }

            async fn grants(&self, resource: Uuid) -> StoreResult<Vec<GrantRow>> {
                let rows = sqlx::query(
                    "SELECT grantee_type, grantee_id, permission, expires_at, granted_by, \
                     created_at FROM grants WHERE resource_id = $1 \
                     ORDER BY created_at, grantee_type, grantee_id",
                )
                .bind(resource)
                .fetch_all(&self.pool)
                .await
                .map_err(err("grant"))?;
                rows.iter().map(grant_from_row).collect()
            }

            async fn service_in_workspace(
                &self,
                service: &str,
                workspace: WorkspaceId,
            ) -> StoreResult<bool> {
                let found: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM resources \
                     WHERE service_name = $1 AND workspace_id = $2) \
                     OR EXISTS (SELECT 1 FROM roles WHERE service_name = $1 AND workspace_id = $2)",
                )
                .bind(service)
                .bind(workspace)
                .fetch_one(&self.pool)
                .await
                .map_err(err("resource"))?;
                Ok(found)
            }

            async fn changes_since(
                &self,
                after: Revision,
                service: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<ChangeRow>> {
                let rows = sqlx::query_as::<_, (Revision, String, DateTime<Utc>)>(
                    "SELECT revision, payload, occurred_at FROM changelog WHERE revision > $1 \
                     AND ($2 IS NULL OR service_name IS NULL OR service_name = $2) \
                     ORDER BY revision LIMIT $3",
                )
                .bind(after)
                .bind(service)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(err("changelog"))?;
                rows.into_iter()
                    .map(|(revision, payload, occurred_at)| {
                        let change = serde_json::from_str(&payload).map_err(|error| {
                            tracing::error!(%error, "unreadable changelog entry");
                            StoreError::Internal
                        })?;
                        Ok(ChangeRow {
                            revision,
                            change,
                            occurred_at,
                        })
                    })
                    .collect()
            }

            async fn changelog_horizon(&self) -> StoreResult<Revision> {
                sqlx::query_scalar::<_, Revision>(
                    "SELECT COALESCE(MIN(revision), 1) - 1 FROM changelog",
                )
                .fetch_one(&self.pool)
                .await
                .map_err(err("changelog"))
            }

            async fn prune_changelog(&self, before: DateTime<Utc>) -> StoreResult<u64> {
                // In batches, so no single statement holds a long lock or a huge undo log.
                let mut pruned = 0;
                loop {
                    let deleted = sqlx::query(
                        "DELETE FROM changelog WHERE revision IN (SELECT revision FROM changelog \
                         WHERE occurred_at < $1 \
                         AND revision < (SELECT MAX(revision) FROM changelog) \
                         ORDER BY revision LIMIT 10000)",
                    )
                    .bind(before)
                    .execute(&self.pool)
                    .await
                    .map_err(err("changelog"))?
                    .rows_affected();
                    pruned += deleted;
                    if deleted < 10000 {
                        return Ok(pruned);
                    }
                }
            }

            async fn authz_snapshot(&self) -> StoreResult<Snapshot> {
                let e = err("snapshot");
                // One read-only transaction: every table as of the same instant, the revision
                // included, so the snapshot reflects exactly the changes up to its revision.
                let mut tx = self.pool.begin().await.map_err(&e)?;
                if let Some(isolation) = $snapshot_isolation {
                    sqlx::query(isolation).execute(&mut *tx).await.map_err(&e)?;
                }
                let revision = current_revision_query!()
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(&e)?;
                let mut snapshot = Snapshot {
                    revision,
                    ..Snapshot::default()
                };
                snapshot.memberships = sqlx::query_as(
                    "SELECT workspace_id, user_id, role FROM memberships",
                )
                .fetch_all(&mut *tx)
                .await
                .map_err(&e)?;
                snapshot.group_members = sqlx::query_as(
                    "SELECT g.workspace_id, m.group_id, m.user_id FROM group_members m \
                     JOIN groups g ON g.id = m.group_id",
                )
                .fetch_all(&mut *tx)
                .await
                .map_err(&e)?;
                // Resources and grants in keyset pages, so no single result set holds them all.
                let mut after = Uuid::nil();
                loop {
                    let rows = sqlx::query_as::<_, IndexedResource>(
                        "SELECT id, service_name, resource_type, resource_id, workspace_id, \
                         owner_id, visibility, parent_id FROM resources WHERE id > $1 \
                         ORDER BY id LIMIT 10000",
                    )
                    .bind(after)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(&e)?;
                    let full = rows.len() == 10000;
                    for row in rows {
                        after = row.id;
                        snapshot.resources.push(row.into_record());
                    }
                    if !full {
                        break;
                    }
                }
                let mut after = (Uuid::nil(), String::new(), Uuid::nil());
                loop {
                    let rows = sqlx::query_as::<_, IndexedGrant>(
                        "SELECT resource_id, grantee_type, grantee_id, permission, expires_at \
                         FROM grants WHERE resource_id > $1 OR (resource_id = $1 AND \
                         (grantee_type > $2 OR (grantee_type = $2 AND grantee_id > $3))) \
                         ORDER BY resource_id, grantee_type, grantee_id LIMIT 10000",
                    )
                    .bind(after.0)
                    .bind(&after.1)
                    .bind(after.2)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(&e)?;
                    let full = rows.len() == 10000;
                    for row in rows {
                        snapshot.grants.push(GrantRecord {
                            resource: row.resource_id,
                            grantee: grantee(&row.grantee_type, row.grantee_id),
                            permission: row.permission,
                            expires_at: row.expires_at,
                        });
                        after = (row.resource_id, row.grantee_type, row.grantee_id);
                    }
                    if !full {
                        break;
                    }
                }
                tx.commit().await.map_err(&e)?;
                Ok(snapshot)
            }
        }
    };
}

/// The database type of a store, for executor-generic helpers.
pub(crate) trait StoreDb {
    /// The sqlx database.
    type Db: sqlx::Database;
}

impl StoreDb for SqliteStore {
    type Db = sqlx::Sqlite;
}

impl StoreDb for PostgresStore {
    type Db = sqlx::Postgres;
}

fn grantee(kind: &str, id: Uuid) -> GranteeRef {
    if kind == "group" {
        GranteeRef::Group(id.into())
    } else {
        GranteeRef::User(id.into())
    }
}

/// The columns of a resource with its parent's key ([`resource_select`]).
#[derive(sqlx::FromRow)]
pub(super) struct ResourceColumns {
    #[sqlx(flatten)]
    resource: IndexedResource,
    parent_type: Option<String>,
    parent_key: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A resource as the index loads it.
#[derive(sqlx::FromRow)]
pub(super) struct IndexedResource {
    id: Uuid,
    service_name: String,
    resource_type: String,
    resource_id: String,
    workspace_id: WorkspaceId,
    owner_id: Option<UserId>,
    visibility: Visibility,
    parent_id: Option<Uuid>,
}

impl IndexedResource {
    fn into_record(self) -> ResourceRecord {
        ResourceRecord {
            id: self.id,
            state: ResourceState {
                service_name: self.service_name,
                resource_type: self.resource_type,
                resource_id: self.resource_id,
                workspace_id: self.workspace_id,
                owner_id: self.owner_id,
                visibility: self.visibility,
                parent: None,
            },
            parent_id: self.parent_id,
        }
    }
}

/// A grant as the index loads it.
#[derive(sqlx::FromRow)]
struct IndexedGrant {
    resource_id: Uuid,
    grantee_type: String,
    grantee_id: Uuid,
    permission: Permission,
    expires_at: Option<DateTime<Utc>>,
}

/// The columns of a grant.
#[derive(sqlx::FromRow)]
pub(super) struct GrantColumns {
    grantee_type: String,
    grantee_id: Uuid,
    permission: Permission,
    expires_at: Option<DateTime<Utc>>,
    granted_by: Option<UserId>,
    created_at: DateTime<Utc>,
}

/// A resource row and its parent's row id.
pub(super) fn resource_from_row<R: Row>(row: &R) -> StoreResult<(ResourceRow, Option<Uuid>)>
where
    ResourceColumns: for<'r> sqlx::FromRow<'r, R>,
{
    let c = ResourceColumns::from_row(row).map_err(err("resource"))?;
    let record = c.resource.into_record();
    let mut state = record.state;
    state.parent = c.parent_type.zip(c.parent_key);
    Ok((
        ResourceRow {
            id: record.id,
            state,
            created_at: c.created_at,
            updated_at: c.updated_at,
        },
        record.parent_id,
    ))
}

/// A grant row.
pub(super) fn grant_from_row<R: Row>(row: &R) -> StoreResult<GrantRow>
where
    GrantColumns: for<'r> sqlx::FromRow<'r, R>,
{
    let c = GrantColumns::from_row(row).map_err(err("grant"))?;
    Ok(GrantRow {
        grantee: grantee(&c.grantee_type, c.grantee_id),
        permission: c.permission,
        expires_at: c.expires_at,
        granted_by: c.granted_by,
        created_at: c.created_at,
    })
}

// SQLite: a read transaction sees one snapshot from its first read on.
impl_authz_store!(SqliteStore, None::<&str>);
impl_authz_store!(
    PostgresStore,
    Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
);
