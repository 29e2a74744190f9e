//! `resources`, `grants` and the changelog: the permission engine's durable state, read here.
//! Writes go through a [`super::ChangelogTx`] the domain holds.

use crate::model::Revision;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{StoreError, StoreResult};
use crate::model::change::{Change, GranteeRef, ResourceKey, ResourceState};
use crate::model::records::{GrantRow, ResourceRow};
use crate::model::snapshot::{GrantRecord, ResourceRecord, Snapshot};
use crate::model::{Permission, Visibility, WorkspaceId};

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
    ($store:ty) => {
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
                let rows = sqlx::query(
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
                let e = err("changelog");
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    let payload: String = row.try_get("payload").map_err(&e)?;
                    let change = serde_json::from_str(&payload).map_err(|error| {
                        tracing::error!(%error, "unreadable changelog entry");
                        StoreError::Internal
                    })?;
                    out.push(ChangeRow {
                        revision: row.try_get("revision").map_err(&e)?,
                        change,
                        occurred_at: row.try_get("occurred_at").map_err(&e)?,
                    });
                }
                Ok(out)
            }

            async fn authz_snapshot(&self) -> StoreResult<Snapshot> {
                let e = err("snapshot");
                let revision = current_revision_query!()
                    .fetch_one(&self.pool)
                    .await
                    .map_err(&e)?;
                let mut snapshot = Snapshot {
                    revision,
                    ..Snapshot::default()
                };
                for row in sqlx::query("SELECT workspace_id, user_id, role FROM memberships")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(&e)?
                {
                    snapshot.memberships.push((
                        row.try_get("workspace_id").map_err(&e)?,
                        row.try_get("user_id").map_err(&e)?,
                        row.try_get("role").map_err(&e)?,
                    ));
                }
                for row in sqlx::query(
                    "SELECT g.workspace_id, m.group_id, m.user_id FROM group_members m \
                     JOIN groups g ON g.id = m.group_id",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(&e)?
                {
                    snapshot.group_members.push((
                        row.try_get("workspace_id").map_err(&e)?,
                        row.try_get("group_id").map_err(&e)?,
                        row.try_get("user_id").map_err(&e)?,
                    ));
                }
                // Resources and grants in keyset pages, so no single result set holds them all.
                let mut after = Uuid::nil();
                loop {
                    let rows = sqlx::query(
                        "SELECT id, service_name, resource_type, resource_id, workspace_id, \
                         owner_id, visibility, parent_id FROM resources WHERE id > $1 \
                         ORDER BY id LIMIT 10000",
                    )
                    .bind(after)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(&e)?;
                    for row in &rows {
                        let id: Uuid = row.try_get("id").map_err(&e)?;
                        snapshot.resources.push(ResourceRecord {
                            id,
                            state: ResourceState {
                                service_name: row.try_get("service_name").map_err(&e)?,
                                resource_type: row.try_get("resource_type").map_err(&e)?,
                                resource_id: row.try_get("resource_id").map_err(&e)?,
                                workspace_id: row.try_get("workspace_id").map_err(&e)?,
                                owner_id: row.try_get("owner_id").map_err(&e)?,
                                visibility: row.try_get("visibility").map_err(&e)?,
                                parent: None,
                            },
                            parent_id: row.try_get("parent_id").map_err(&e)?,
                        });
                        after = id;
                    }
                    if rows.len() < 10000 {
                        break;
                    }
                }
                let mut after = (Uuid::nil(), String::new(), Uuid::nil());
                loop {
                    let rows = sqlx::query(
                        "SELECT resource_id, grantee_type, grantee_id, permission, expires_at \
                         FROM grants WHERE resource_id > $1 OR (resource_id = $1 AND \
                         (grantee_type > $2 OR (grantee_type = $2 AND grantee_id > $3))) \
                         ORDER BY resource_id, grantee_type, grantee_id LIMIT 10000",
                    )
                    .bind(after.0)
                    .bind(&after.1)
                    .bind(after.2)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(&e)?;
                    for row in &rows {
                        let resource: Uuid = row.try_get("resource_id").map_err(&e)?;
                        let kind: String = row.try_get("grantee_type").map_err(&e)?;
                        let id: Uuid = row.try_get("grantee_id").map_err(&e)?;
                        snapshot.grants.push(GrantRecord {
                            resource,
                            grantee: grantee(&kind, id),
                            permission: row.try_get("permission").map_err(&e)?,
                            expires_at: row.try_get("expires_at").map_err(&e)?,
                        });
                        after = (resource, kind, id);
                    }
                    if rows.len() < 10000 {
                        break;
                    }
                }
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

pub(super) fn resource_from_row<R: Row>(row: &R) -> StoreResult<(ResourceRow, Option<Uuid>)>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> Uuid: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<Uuid>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> DateTime<Utc>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Visibility: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let e = err("resource");
    let parent_type: Option<String> = row.try_get("parent_type").map_err(&e)?;
    let parent_key: Option<String> = row.try_get("parent_key").map_err(&e)?;
    let parent_id: Option<Uuid> = row.try_get("parent_id").map_err(&e)?;
    Ok((
        ResourceRow {
            id: row.try_get("id").map_err(&e)?,
            state: ResourceState {
                service_name: row.try_get("service_name").map_err(&e)?,
                resource_type: row.try_get("resource_type").map_err(&e)?,
                resource_id: row.try_get("resource_id").map_err(&e)?,
                workspace_id: row.try_get("workspace_id").map_err(&e)?,
                owner_id: row.try_get("owner_id").map_err(&e)?,
                visibility: row.try_get("visibility").map_err(&e)?,
                parent: parent_type.zip(parent_key),
            },
            created_at: row.try_get("created_at").map_err(&e)?,
            updated_at: row.try_get("updated_at").map_err(&e)?,
        },
        parent_id,
    ))
}

pub(super) fn grant_from_row<R: Row>(row: &R) -> StoreResult<GrantRow>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> Uuid: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<Uuid>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> DateTime<Utc>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<DateTime<Utc>>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Permission: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let e = err("grant");
    let kind: String = row.try_get("grantee_type").map_err(&e)?;
    Ok(GrantRow {
        grantee: grantee(&kind, row.try_get("grantee_id").map_err(&e)?),
        permission: row.try_get("permission").map_err(&e)?,
        expires_at: row.try_get("expires_at").map_err(&e)?,
        granted_by: row.try_get("granted_by").map_err(&e)?,
        created_at: row.try_get("created_at").map_err(&e)?,
    })
}

impl_authz_store!(SqliteStore);
impl_authz_store!(PostgresStore);
