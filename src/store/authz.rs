//! `resources`, `grants` and the changelog: the permission engine's durable state. Every write
//! holds [`WriteLock::Changelog`], checks its rules inside the transaction and appends its
//! [`Change`] with its audit event.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{AuditRow, StoreError, StoreResult, WriteLock};
use crate::authz::change::{Change, GranteeRef, ResourceKey, ResourceState};
use crate::authz::index::{GrantRecord, ResourceRecord, Snapshot};
use crate::error::Error;

/// Longest parent chain walked when looking for a cycle.
const MAX_CHAIN: usize = 4096;

/// A stored resource.
#[derive(Debug, Clone)]
pub struct ResourceRow {
    /// Row id.
    pub id: Uuid,
    /// Its state, with the parent's key.
    pub state: ResourceState,
    /// Registered.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A stored grant.
#[derive(Debug, Clone)]
pub struct GrantRow {
    /// Who.
    pub grantee: GranteeRef,
    /// `view` or `edit`.
    pub permission: String,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// The acting user, if any.
    pub granted_by: Option<Uuid>,
    /// When granted (or last changed).
    pub created_at: DateTime<Utc>,
}

/// A changelog entry.
#[derive(Debug, Clone)]
pub struct ChangeRow {
    /// Revision.
    pub revision: i64,
    /// The change.
    pub change: Change,
    /// Commit time.
    pub occurred_at: DateTime<Utc>,
}

/// A change to an existing resource.
#[derive(Debug, Clone)]
pub enum ResourceUpdate {
    /// New visibility.
    Visibility(String),
    /// New owner (or none).
    Owner(Option<Uuid>),
}

/// Permission-engine storage.
#[async_trait]
pub trait AuthzStore: Send + Sync {
    /// One resource by key.
    async fn resource(&self, key: &ResourceKey) -> StoreResult<Option<ResourceRow>>;
    /// The grants of a resource (by row id), live or expired.
    async fn grants(&self, resource: Uuid) -> StoreResult<Vec<GrantRow>>;
    /// Registers a resource, or returns the existing one (`upsert` replaces its state).
    /// Returns the stored resource, whether it was created, and the revision.
    async fn register_resource(
        &self,
        state: &ResourceState,
        upsert: bool,
        audit: &AuditRow,
    ) -> StoreResult<(ResourceRow, bool, i64)>;
    /// Changes a resource's visibility or owner; the stored resource and the revision.
    async fn update_resource(
        &self,
        key: &ResourceKey,
        update: &ResourceUpdate,
        audit: &AuditRow,
    ) -> StoreResult<(ResourceRow, i64)>;
    /// Deletes a resource with its grants (children are detached); the revision, or `None`.
    async fn delete_resource(
        &self,
        key: &ResourceKey,
        audit: &AuditRow,
    ) -> StoreResult<Option<i64>>;
    /// Creates or replaces a grant; the grant, whether anything changed, and the revision.
    async fn share(
        &self,
        key: &ResourceKey,
        grant: &GrantRow,
        audit: &AuditRow,
    ) -> StoreResult<(GrantRow, bool, i64)>;
    /// Removes a grant (only of `permission`, when given); whether one was removed, and the
    /// revision.
    async fn unshare(
        &self,
        key: &ResourceKey,
        grantee: GranteeRef,
        permission: Option<&str>,
        audit: &AuditRow,
    ) -> StoreResult<(bool, i64)>;
    /// Changelog entries after `after`, in order; with `service`, only that service's and
    /// service-less (membership, group) entries.
    async fn changes_since(
        &self,
        after: i64,
        service: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<ChangeRow>>;
    /// Everything the in-memory index is built from.
    async fn authz_snapshot(&self) -> StoreResult<Snapshot>;
    /// Whether `service` has resources or custom roles in `workspace`.
    async fn service_in_workspace(&self, service: &str, workspace: Uuid) -> StoreResult<bool>;
}

fn err(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(e, what)
}

fn refused(error: Error) -> StoreError {
    StoreError::Refused(Box::new(error))
}

macro_rules! resource_select {
    ($where:literal) => {
        concat!(
            "SELECT r.id, r.service_name, r.resource_type, r.resource_id, r.workspace_id, \
             r.owner_id, r.visibility, r.parent_id, r.created_at, r.updated_at, \
             p.resource_type AS parent_type, p.resource_id AS parent_key \
             FROM resources r LEFT JOIN resources p ON p.id = r.parent_id WHERE ",
            $where
        )
    };
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

            async fn register_resource(
                &self,
                state: &ResourceState,
                upsert: bool,
                audit: &AuditRow,
            ) -> StoreResult<(ResourceRow, bool, i64)> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                let key = ResourceKey {
                    service_name: state.service_name.clone(),
                    resource_type: state.resource_type.clone(),
                    resource_id: state.resource_id.clone(),
                };
                let existing = Self::resource_in(&mut *tx, &key).await?;
                let current = current_revision_query!()
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err("changelog"))?;
                if let Some((row, _)) = &existing
                    && (!upsert || row.state == *state)
                {
                    return Ok((row.clone(), false, current));
                }
                let workspace = sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM workspaces WHERE id = $1",
                )
                .bind(state.workspace_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(err("workspace"))?;
                if workspace == 0 {
                    return Err(refused(Error::NotFound("workspace".into())));
                }
                // Grants name the old workspace's users and groups, and children live in the old
                // workspace: a move would carry access across tenants.
                if let Some((row, _)) = &existing
                    && row.state.workspace_id != state.workspace_id
                {
                    let attached = sqlx::query_scalar::<_, i64>(
                        "SELECT (SELECT COUNT(*) FROM grants WHERE resource_id = $1) + \
                         (SELECT COUNT(*) FROM resources WHERE parent_id = $1)",
                    )
                    .bind(row.id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err("resource"))?;
                    if attached > 0 {
                        return Err(refused(Error::FailedPrecondition(
                            "workspace_id: the resource has grants or children in its workspace; \
                             unshare it and move or delete its children before moving it"
                                .into(),
                        )));
                    }
                }
                if let Some(owner) = state.owner_id {
                    let member = sqlx::query_scalar::<_, i64>(
                        "SELECT COUNT(*) FROM memberships WHERE workspace_id = $1 AND user_id = $2",
                    )
                    .bind(state.workspace_id)
                    .bind(owner)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err("member"))?;
                    if member == 0 {
                        return Err(refused(Error::FailedPrecondition(
                            "owner_id is not a member of the workspace".into(),
                        )));
                    }
                }
                let parent_id = match &state.parent {
                    None => None,
                    Some((parent_type, parent_key)) => {
                        let parent = Self::resource_in(
                            &mut *tx,
                            &ResourceKey {
                                service_name: state.service_name.clone(),
                                resource_type: parent_type.clone(),
                                resource_id: parent_key.clone(),
                            },
                        )
                        .await?
                        .ok_or_else(|| refused(Error::NotFound("parent resource".into())))?
                        .0;
                        if parent.state.workspace_id != state.workspace_id {
                            return Err(refused(Error::FailedPrecondition(
                                "the parent resource is in another workspace".into(),
                            )));
                        }
                        if let Some((me, _)) = &existing {
                            // Walk up from the parent: meeting this resource is a cycle.
                            let mut cursor = Some(parent.id);
                            let mut steps = 0;
                            while let Some(at) = cursor {
                                if at == me.id || steps > MAX_CHAIN {
                                    return Err(refused(Error::FailedPrecondition(
                                        "the parent would create a cycle".into(),
                                    )));
                                }
                                cursor = sqlx::query_scalar::<_, Option<Uuid>>(
                                    "SELECT parent_id FROM resources WHERE id = $1",
                                )
                                .bind(at)
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(err("resource"))?
                                .flatten();
                                steps += 1;
                            }
                        }
                        Some(parent.id)
                    }
                };
                let now = Utc::now();
                let created = existing.is_none();
                match &existing {
                    None => {
                        sqlx::query(
                            "INSERT INTO resources (id, service_name, resource_type, \
                             resource_id, workspace_id, owner_id, visibility, parent_id, \
                             created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
                        )
                        .bind(Uuid::new_v4())
                        .bind(&state.service_name)
                        .bind(&state.resource_type)
                        .bind(&state.resource_id)
                        .bind(state.workspace_id)
                        .bind(state.owner_id)
                        .bind(&state.visibility)
                        .bind(parent_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(err("resource"))?;
                    }
                    Some((row, _)) => {
                        sqlx::query(
                            "UPDATE resources SET workspace_id = $2, owner_id = $3, \
                             visibility = $4, parent_id = $5, updated_at = $6 WHERE id = $1",
                        )
                        .bind(row.id)
                        .bind(state.workspace_id)
                        .bind(state.owner_id)
                        .bind(&state.visibility)
                        .bind(parent_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(err("resource"))?;
                    }
                }
                let change = Change::ResourceSet {
                    resource: state.clone(),
                    created,
                };
                let revision = append_change!(tx, change)
                    .await
                    .map_err(err("changelog"))?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                let (row, _) = Self::resource_in(&mut *tx, &key)
                    .await?
                    .ok_or(StoreError::Internal)?;
                tx.commit().await.map_err(err("resource"))?;
                Ok((row, created, revision))
            }

            async fn update_resource(
                &self,
                key: &ResourceKey,
                update: &ResourceUpdate,
                audit: &AuditRow,
            ) -> StoreResult<(ResourceRow, i64)> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                let (row, _) = Self::resource_in(&mut *tx, key)
                    .await?
                    .ok_or(StoreError::NotFound("resource"))?;
                let mut state = row.state.clone();
                match update {
                    ResourceUpdate::Visibility(v) => state.visibility = v.clone(),
                    ResourceUpdate::Owner(owner) => state.owner_id = *owner,
                }
                if state == row.state {
                    let current = current_revision_query!()
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(err("changelog"))?;
                    return Ok((row, current));
                }
                if let ResourceUpdate::Owner(Some(owner)) = update {
                    let member = sqlx::query_scalar::<_, i64>(
                        "SELECT COUNT(*) FROM memberships WHERE workspace_id = $1 AND user_id = $2",
                    )
                    .bind(state.workspace_id)
                    .bind(owner)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err("member"))?;
                    if member == 0 {
                        return Err(refused(Error::FailedPrecondition(
                            "owner_id is not a member of the resource's workspace".into(),
                        )));
                    }
                }
                sqlx::query(
                    "UPDATE resources SET owner_id = $2, visibility = $3, updated_at = $4 \
                     WHERE id = $1",
                )
                .bind(row.id)
                .bind(state.owner_id)
                .bind(&state.visibility)
                .bind(Utc::now())
                .execute(&mut *tx)
                .await
                .map_err(err("resource"))?;
                let change = Change::ResourceSet {
                    resource: state,
                    created: false,
                };
                let revision = append_change!(tx, change)
                    .await
                    .map_err(err("changelog"))?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                let (row, _) = Self::resource_in(&mut *tx, key)
                    .await?
                    .ok_or(StoreError::Internal)?;
                tx.commit().await.map_err(err("resource"))?;
                Ok((row, revision))
            }

            async fn delete_resource(
                &self,
                key: &ResourceKey,
                audit: &AuditRow,
            ) -> StoreResult<Option<i64>> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                let Some((row, _)) = Self::resource_in(&mut *tx, key).await? else {
                    return Ok(None);
                };
                sqlx::query("UPDATE resources SET parent_id = NULL WHERE parent_id = $1")
                    .bind(row.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("resource"))?;
                sqlx::query("DELETE FROM resources WHERE id = $1")
                    .bind(row.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("resource"))?;
                let change = Change::ResourceDeleted {
                    workspace_id: row.state.workspace_id,
                    key: key.clone(),
                };
                let revision = append_change!(tx, change)
                    .await
                    .map_err(err("changelog"))?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("resource"))?;
                Ok(Some(revision))
            }

            async fn share(
                &self,
                key: &ResourceKey,
                grant: &GrantRow,
                audit: &AuditRow,
            ) -> StoreResult<(GrantRow, bool, i64)> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                let (row, _) = Self::resource_in(&mut *tx, key)
                    .await?
                    .ok_or(StoreError::NotFound("resource"))?;
                let workspace_id = row.state.workspace_id;
                match grant.grantee {
                    GranteeRef::User(user) => {
                        let exists = sqlx::query_scalar::<_, i64>(
                            "SELECT COUNT(*) FROM users WHERE id = $1",
                        )
                        .bind(user)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(err("user"))?;
                        if exists == 0 {
                            return Err(StoreError::NotFound("user"));
                        }
                        let member = sqlx::query_scalar::<_, i64>(
                            "SELECT COUNT(*) FROM memberships \
                             WHERE workspace_id = $1 AND user_id = $2",
                        )
                        .bind(workspace_id)
                        .bind(user)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(err("member"))?;
                        if member == 0 {
                            return Err(refused(Error::FailedPrecondition(
                                "the grantee is not a member of the resource's workspace".into(),
                            )));
                        }
                    }
                    GranteeRef::Group(group) => {
                        let home = sqlx::query_scalar::<_, Uuid>(
                            "SELECT workspace_id FROM groups WHERE id = $1",
                        )
                        .bind(group)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(err("group"))?
                        .ok_or(StoreError::NotFound("group"))?;
                        if home != workspace_id {
                            return Err(refused(Error::FailedPrecondition(
                                "the group belongs to another workspace".into(),
                            )));
                        }
                    }
                }
                let existing = sqlx::query(
                    "SELECT grantee_type, grantee_id, permission, expires_at, granted_by, \
                     created_at FROM grants WHERE resource_id = $1 AND grantee_type = $2 \
                     AND grantee_id = $3",
                )
                .bind(row.id)
                .bind(grant.grantee.kind())
                .bind(grant.grantee.id())
                .fetch_optional(&mut *tx)
                .await
                .map_err(err("grant"))?
                .map(|r| grant_from_row(&r))
                .transpose()?;
                if let Some(existing) = &existing
                    && existing.permission == grant.permission
                    && existing.expires_at == grant.expires_at
                {
                    let current = current_revision_query!()
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(err("changelog"))?;
                    return Ok((existing.clone(), false, current));
                }
                sqlx::query(
                    "INSERT INTO grants (resource_id, grantee_type, grantee_id, permission, \
                     expires_at, granted_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (resource_id, grantee_type, grantee_id) DO UPDATE SET \
                     permission = excluded.permission, expires_at = excluded.expires_at, \
                     granted_by = excluded.granted_by, created_at = excluded.created_at",
                )
                .bind(row.id)
                .bind(grant.grantee.kind())
                .bind(grant.grantee.id())
                .bind(&grant.permission)
                .bind(grant.expires_at)
                .bind(grant.granted_by)
                .bind(grant.created_at)
                .execute(&mut *tx)
                .await
                .map_err(err("grant"))?;
                let change = Change::GrantSet {
                    workspace_id,
                    key: key.clone(),
                    grantee: grant.grantee,
                    permission: grant.permission.clone(),
                    expires_at: grant.expires_at,
                    created: existing.is_none(),
                };
                let revision = append_change!(tx, change)
                    .await
                    .map_err(err("changelog"))?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("grant"))?;
                Ok((grant.clone(), true, revision))
            }

            async fn unshare(
                &self,
                key: &ResourceKey,
                grantee: GranteeRef,
                permission: Option<&str>,
                audit: &AuditRow,
            ) -> StoreResult<(bool, i64)> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                let (row, _) = Self::resource_in(&mut *tx, key)
                    .await?
                    .ok_or(StoreError::NotFound("resource"))?;
                let removed = sqlx::query(
                    "DELETE FROM grants WHERE resource_id = $1 AND grantee_type = $2 \
                     AND grantee_id = $3 AND ($4 IS NULL OR permission = $4)",
                )
                .bind(row.id)
                .bind(grantee.kind())
                .bind(grantee.id())
                .bind(permission)
                .execute(&mut *tx)
                .await
                .map_err(err("grant"))?
                .rows_affected()
                    > 0;
                if !removed {
                    let current = current_revision_query!()
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(err("changelog"))?;
                    return Ok((false, current));
                }
                let change = Change::GrantRemoved {
                    workspace_id: row.state.workspace_id,
                    key: key.clone(),
                    grantee,
                };
                let revision = append_change!(tx, change)
                    .await
                    .map_err(err("changelog"))?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("grant"))?;
                Ok((true, revision))
            }

            async fn service_in_workspace(
                &self,
                service: &str,
                workspace: Uuid,
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
                after: i64,
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
        GranteeRef::Group(id)
    } else {
        GranteeRef::User(id)
    }
}

fn resource_from_row<R: Row>(row: &R) -> StoreResult<(ResourceRow, Option<Uuid>)>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> Uuid: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<Uuid>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> DateTime<Utc>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
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

fn grant_from_row<R: Row>(row: &R) -> StoreResult<GrantRow>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> Uuid: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<Uuid>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> DateTime<Utc>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<DateTime<Utc>>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
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
