//! Memberships, invitations, groups, custom roles and service actions. Every write that changes
//! authorization holds [`WriteLock::Changelog`] and appends its [`Change`] in the same
//! transaction as the change and its audit event.

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

/// A group with its member count.
#[derive(Debug, Clone)]
pub struct GroupRow {
    /// Group id.
    pub id: Uuid,
    /// Its workspace.
    pub workspace_id: Uuid,
    /// Name, unique per workspace regardless of case.
    pub name: String,
    /// Description.
    pub description: String,
    /// Number of members.
    pub member_count: i64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last modified.
    pub updated_at: DateTime<Utc>,
}

/// A custom role with its actions and assignment count.
#[derive(Debug, Clone)]
pub struct RoleRow {
    /// Role id.
    pub id: Uuid,
    /// Its workspace.
    pub workspace_id: Uuid,
    /// The service whose actions it holds.
    pub service_name: String,
    /// Name, unique per (workspace, service) regardless of case.
    pub name: String,
    /// Description.
    pub description: String,
    /// Actions, sorted.
    pub actions: Vec<String>,
    /// Number of assigned users.
    pub assigned: i64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last modified.
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

/// Tenancy storage.
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
    /// Creates a group.
    async fn create_group(&self, group: &GroupRow, audit: &AuditRow) -> StoreResult<()>;
    /// One group.
    async fn group(&self, id: Uuid) -> StoreResult<Option<GroupRow>>;
    /// Groups of a workspace by name, id after the cursor.
    async fn list_groups(
        &self,
        workspace_id: Uuid,
        member: Option<Uuid>,
        query: Option<&str>,
        after: Option<(String, Uuid)>,
        limit: i64,
    ) -> StoreResult<Vec<GroupRow>>;
    /// Renames or re-describes a group.
    async fn update_group(
        &self,
        id: Uuid,
        name: Option<&str>,
        description: Option<&str>,
        audit: &AuditRow,
    ) -> StoreResult<Option<GroupRow>>;
    /// Deletes a group; the revision, or `None` when it did not exist.
    async fn delete_group(&self, id: Uuid, audit: &AuditRow) -> StoreResult<Option<i64>>;
    /// Adds (`add`) or removes a user to or from a group of `workspace_id`.
    async fn set_group_member(
        &self,
        workspace_id: Uuid,
        group_id: Uuid,
        user_id: Uuid,
        add: bool,
        audit: &AuditRow,
    ) -> StoreResult<LinkOutcome>;
    /// Members of a group by name, email, id after the cursor, with when they were added.
    async fn list_group_members(
        &self,
        group_id: Uuid,
        after: Option<(String, String, Uuid)>,
        limit: i64,
    ) -> StoreResult<Vec<(UserRow, DateTime<Utc>)>>;
    /// Upserts a service's actions: (created, updated, revision).
    async fn register_actions(
        &self,
        service_name: &str,
        actions: &[(String, String)],
        audit: &AuditRow,
    ) -> StoreResult<(i64, i64, i64)>;
    /// Every action a service registered.
    async fn service_actions(&self, service_name: &str) -> StoreResult<Vec<String>>;
    /// Whether a service app with this service name exists.
    async fn service_exists(&self, service_name: &str) -> StoreResult<bool>;
    /// Creates a custom role with its actions; the revision.
    async fn create_role(&self, role: &RoleRow, audit: &AuditRow) -> StoreResult<i64>;
    /// One custom role.
    async fn role(&self, id: Uuid) -> StoreResult<Option<RoleRow>>;
    /// Custom roles of a workspace by service, name, id after the cursor.
    async fn list_roles(
        &self,
        workspace_id: Uuid,
        service_name: Option<&str>,
        user_id: Option<Uuid>,
        after: Option<(String, String, Uuid)>,
        limit: i64,
    ) -> StoreResult<Vec<RoleRow>>;
    /// Deletes a custom role; the revision, or `None` when it did not exist.
    async fn delete_role(&self, id: Uuid, audit: &AuditRow) -> StoreResult<Option<i64>>;
    /// Replaces a role's actions; the revision, or `None` when it did not exist.
    async fn set_role_actions(
        &self,
        id: Uuid,
        actions: &[String],
        audit: &AuditRow,
    ) -> StoreResult<Option<i64>>;
    /// Assigns (`assign`) or unassigns a role of `workspace_id` to or from a user.
    async fn set_role_assignment(
        &self,
        role: &RoleRow,
        user_id: Uuid,
        assign: bool,
        audit: &AuditRow,
    ) -> StoreResult<LinkOutcome>;
    /// Names of the user's roles of `service_name` in a workspace that hold `action`, sorted.
    async fn roles_holding(
        &self,
        workspace_id: Uuid,
        service_name: &str,
        user_id: Uuid,
        action: &str,
    ) -> StoreResult<Vec<String>>;
    /// Actions of `service_name` the user holds in a workspace, sorted, after `after`.
    async fn user_actions(
        &self,
        workspace_id: Uuid,
        service_name: &str,
        user_id: Uuid,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<String>>;
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

macro_rules! role_select {
    ($where:literal) => {
        concat!(
            "SELECT r.id, r.workspace_id, r.service_name, r.name, r.description, r.created_at, \
             r.updated_at, \
             (SELECT COUNT(*) FROM role_assignments ra WHERE ra.role_id = r.id) AS assigned \
             FROM roles r WHERE ",
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
            async fn write_link(
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
                let revision = append_change!(tx, change)
                    .await
                    .map_err(err("changelog"))?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("link"))?;
                Ok(LinkOutcome::Changed(revision))
            }

            async fn role_actions(&self, id: Uuid) -> StoreResult<Vec<String>> {
                sqlx::query_scalar::<_, String>(
                    "SELECT action FROM role_actions WHERE role_id = $1 ORDER BY action",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(err("role"))
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

            async fn group(&self, id: Uuid) -> StoreResult<Option<GroupRow>> {
                let row = sqlx::query(group_select!("g.id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err("group"))?;
                row.map(|r| group_from_row(&r)).transpose()
            }

            async fn list_groups(
                &self,
                workspace_id: Uuid,
                member: Option<Uuid>,
                query: Option<&str>,
                after: Option<(String, Uuid)>,
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
                id: Uuid,
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
                .bind(Utc::now())
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

            async fn delete_group(&self, id: Uuid, audit: &AuditRow) -> StoreResult<Option<i64>> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                let workspace_id = sqlx::query_scalar::<_, Uuid>(
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

            async fn set_group_member(
                &self,
                workspace_id: Uuid,
                group_id: Uuid,
                user_id: Uuid,
                add: bool,
                audit: &AuditRow,
            ) -> StoreResult<LinkOutcome> {
                let change = if add {
                    Change::GroupMemberAdded {
                        workspace_id,
                        group_id,
                        user_id,
                    }
                } else {
                    Change::GroupMemberRemoved {
                        workspace_id,
                        group_id,
                        user_id,
                    }
                };
                let sql = if add {
                    "INSERT INTO group_members (group_id, user_id, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (group_id, user_id) DO NOTHING"
                } else {
                    "DELETE FROM group_members WHERE group_id = $1 AND user_id = $2"
                };
                self.write_link(workspace_id, sql, group_id, user_id, add, change, audit)
                    .await
            }

            async fn list_group_members(
                &self,
                group_id: Uuid,
                after: Option<(String, String, Uuid)>,
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

            async fn register_actions(
                &self,
                service_name: &str,
                actions: &[(String, String)],
                audit: &AuditRow,
            ) -> StoreResult<(i64, i64, i64)> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                let now = Utc::now();
                let (mut created, mut updated) = (0, 0);
                for (action, description) in actions {
                    let existing = sqlx::query_scalar::<_, String>(
                        "SELECT description FROM service_actions \
                         WHERE service_name = $1 AND action = $2",
                    )
                    .bind(service_name)
                    .bind(action)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err("action"))?;
                    match existing {
                        None => {
                            sqlx::query(
                                "INSERT INTO service_actions (service_name, action, description, \
                                 created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
                            )
                            .bind(service_name)
                            .bind(action)
                            .bind(description)
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err(err("action"))?;
                            created += 1;
                        }
                        Some(old) if old != *description => {
                            sqlx::query(
                                "UPDATE service_actions SET description = $3, updated_at = $4 \
                                 WHERE service_name = $1 AND action = $2",
                            )
                            .bind(service_name)
                            .bind(action)
                            .bind(description)
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err(err("action"))?;
                            updated += 1;
                        }
                        Some(_) => {}
                    }
                }
                let revision = if created + updated > 0 {
                    let change = Change::ActionsRegistered {
                        service_name: service_name.to_string(),
                    };
                    let revision = append_change!(tx, change)
                        .await
                        .map_err(err("changelog"))?;
                    insert_audit_query!(audit)
                        .execute(&mut *tx)
                        .await
                        .map_err(err("audit event"))?;
                    revision
                } else {
                    current_revision_query!()
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(err("changelog"))?
                };
                tx.commit().await.map_err(err("action"))?;
                Ok((created, updated, revision))
            }

            async fn service_actions(&self, service_name: &str) -> StoreResult<Vec<String>> {
                sqlx::query_scalar::<_, String>(
                    "SELECT action FROM service_actions WHERE service_name = $1 ORDER BY action",
                )
                .bind(service_name)
                .fetch_all(&self.pool)
                .await
                .map_err(err("action"))
            }

            async fn service_exists(&self, service_name: &str) -> StoreResult<bool> {
                let count = sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM service_apps WHERE service_name = $1",
                )
                .bind(service_name)
                .fetch_one(&self.pool)
                .await
                .map_err(err("service app"))?;
                Ok(count > 0)
            }

            async fn create_role(&self, role: &RoleRow, audit: &AuditRow) -> StoreResult<i64> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                sqlx::query(
                    "INSERT INTO roles (id, workspace_id, service_name, name, description, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(role.id)
                .bind(role.workspace_id)
                .bind(&role.service_name)
                .bind(&role.name)
                .bind(&role.description)
                .bind(role.created_at)
                .bind(role.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(err("role name"))?;
                for action in &role.actions {
                    sqlx::query("INSERT INTO role_actions (role_id, action) VALUES ($1, $2)")
                        .bind(role.id)
                        .bind(action)
                        .execute(&mut *tx)
                        .await
                        .map_err(err("role action"))?;
                }
                let change = Change::RoleChanged {
                    workspace_id: role.workspace_id,
                    service_name: role.service_name.clone(),
                    role_id: role.id,
                    actions: role.actions.clone(),
                };
                let revision = append_change!(tx, change)
                    .await
                    .map_err(err("changelog"))?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("role"))?;
                Ok(revision)
            }

            async fn role(&self, id: Uuid) -> StoreResult<Option<RoleRow>> {
                let row = sqlx::query(role_select!("r.id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err("role"))?;
                let Some(row) = row else { return Ok(None) };
                let mut role = role_from_row(&row)?;
                role.actions = self.role_actions(id).await?;
                Ok(Some(role))
            }

            async fn list_roles(
                &self,
                workspace_id: Uuid,
                service_name: Option<&str>,
                user_id: Option<Uuid>,
                after: Option<(String, String, Uuid)>,
                limit: i64,
            ) -> StoreResult<Vec<RoleRow>> {
                let (service, name, id) = match after {
                    Some((s, n, i)) => (Some(s), Some(n), Some(i)),
                    None => (None, None, None),
                };
                let rows = sqlx::query(role_select!(
                    "r.workspace_id = $1 AND ($2 IS NULL OR r.service_name = $2) \
                     AND ($3 IS NULL OR EXISTS (SELECT 1 FROM role_assignments x \
                     WHERE x.role_id = r.id AND x.user_id = $3)) \
                     AND ($4 IS NULL OR r.service_name > $4 \
                     OR (r.service_name = $4 AND r.name > $5) \
                     OR (r.service_name = $4 AND r.name = $5 AND r.id > $6)) \
                     ORDER BY r.service_name, r.name, r.id LIMIT $7"
                ))
                .bind(workspace_id)
                .bind(service_name)
                .bind(user_id)
                .bind(service)
                .bind(name)
                .bind(id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(err("role"))?;
                let mut roles = Vec::with_capacity(rows.len());
                for row in &rows {
                    let mut role = role_from_row(row)?;
                    role.actions = self.role_actions(role.id).await?;
                    roles.push(role);
                }
                Ok(roles)
            }

            async fn delete_role(&self, id: Uuid, audit: &AuditRow) -> StoreResult<Option<i64>> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                let row = sqlx::query(
                    "DELETE FROM roles WHERE id = $1 RETURNING workspace_id, service_name",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err("role"))?;
                let Some(row) = row else { return Ok(None) };
                let change = Change::RoleDeleted {
                    workspace_id: row.try_get("workspace_id").map_err(err("role"))?,
                    service_name: row.try_get("service_name").map_err(err("role"))?,
                    role_id: id,
                };
                let revision = append_change!(tx, change)
                    .await
                    .map_err(err("changelog"))?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("role"))?;
                Ok(Some(revision))
            }

            async fn set_role_actions(
                &self,
                id: Uuid,
                actions: &[String],
                audit: &AuditRow,
            ) -> StoreResult<Option<i64>> {
                let mut tx = self.begin_write(WriteLock::Changelog).await?;
                let row = sqlx::query(
                    "UPDATE roles SET updated_at = $2 WHERE id = $1 \
                     RETURNING workspace_id, service_name",
                )
                .bind(id)
                .bind(Utc::now())
                .fetch_optional(&mut *tx)
                .await
                .map_err(err("role"))?;
                let Some(row) = row else { return Ok(None) };
                sqlx::query("DELETE FROM role_actions WHERE role_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("role action"))?;
                for action in actions {
                    sqlx::query("INSERT INTO role_actions (role_id, action) VALUES ($1, $2)")
                        .bind(id)
                        .bind(action)
                        .execute(&mut *tx)
                        .await
                        .map_err(err("role action"))?;
                }
                let change = Change::RoleChanged {
                    workspace_id: row.try_get("workspace_id").map_err(err("role"))?,
                    service_name: row.try_get("service_name").map_err(err("role"))?,
                    role_id: id,
                    actions: actions.to_vec(),
                };
                let revision = append_change!(tx, change)
                    .await
                    .map_err(err("changelog"))?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("role"))?;
                Ok(Some(revision))
            }

            async fn set_role_assignment(
                &self,
                role: &RoleRow,
                user_id: Uuid,
                assign: bool,
                audit: &AuditRow,
            ) -> StoreResult<LinkOutcome> {
                let change = Change::RoleAssignment {
                    workspace_id: role.workspace_id,
                    service_name: role.service_name.clone(),
                    role_id: role.id,
                    user_id,
                    assigned: assign,
                };
                let sql = if assign {
                    "INSERT INTO role_assignments (role_id, user_id, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (role_id, user_id) DO NOTHING"
                } else {
                    "DELETE FROM role_assignments WHERE role_id = $1 AND user_id = $2"
                };
                self.write_link(role.workspace_id, sql, role.id, user_id, assign, change, audit)
                    .await
            }

            async fn roles_holding(
                &self,
                workspace_id: Uuid,
                service_name: &str,
                user_id: Uuid,
                action: &str,
            ) -> StoreResult<Vec<String>> {
                sqlx::query_scalar::<_, String>(
                    "SELECT r.name FROM roles r \
                     JOIN role_assignments a ON a.role_id = r.id AND a.user_id = $3 \
                     JOIN role_actions x ON x.role_id = r.id AND x.action = $4 \
                     JOIN memberships m ON m.workspace_id = r.workspace_id AND m.user_id = $3 \
                     WHERE r.workspace_id = $1 AND r.service_name = $2 ORDER BY r.name",
                )
                .bind(workspace_id)
                .bind(service_name)
                .bind(user_id)
                .bind(action)
                .fetch_all(&self.pool)
                .await
                .map_err(err("role"))
            }

            async fn user_actions(
                &self,
                workspace_id: Uuid,
                service_name: &str,
                user_id: Uuid,
                after: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<String>> {
                sqlx::query_scalar::<_, String>(
                    "SELECT DISTINCT x.action FROM roles r \
                     JOIN role_assignments a ON a.role_id = r.id AND a.user_id = $3 \
                     JOIN role_actions x ON x.role_id = r.id \
                     JOIN memberships m ON m.workspace_id = r.workspace_id AND m.user_id = $3 \
                     WHERE r.workspace_id = $1 AND r.service_name = $2 \
                     AND ($4 IS NULL OR x.action > $4) ORDER BY x.action LIMIT $5",
                )
                .bind(workspace_id)
                .bind(service_name)
                .bind(user_id)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(err("action"))
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

fn group_from_row<R: Row>(row: &R) -> StoreResult<GroupRow>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> Uuid: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> DateTime<Utc>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let e = err("group");
    Ok(GroupRow {
        id: row.try_get("id").map_err(&e)?,
        workspace_id: row.try_get("workspace_id").map_err(&e)?,
        name: row.try_get("name").map_err(&e)?,
        description: row.try_get("description").map_err(&e)?,
        member_count: row.try_get("member_count").map_err(&e)?,
        created_at: row.try_get("created_at").map_err(&e)?,
        updated_at: row.try_get("updated_at").map_err(&e)?,
    })
}

fn role_from_row<R: Row>(row: &R) -> StoreResult<RoleRow>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> Uuid: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> DateTime<Utc>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let e = err("role");
    Ok(RoleRow {
        id: row.try_get("id").map_err(&e)?,
        workspace_id: row.try_get("workspace_id").map_err(&e)?,
        service_name: row.try_get("service_name").map_err(&e)?,
        name: row.try_get("name").map_err(&e)?,
        description: row.try_get("description").map_err(&e)?,
        actions: Vec::new(),
        assigned: row.try_get("assigned").map_err(&e)?,
        created_at: row.try_get("created_at").map_err(&e)?,
        updated_at: row.try_get("updated_at").map_err(&e)?,
    })
}

impl_tenancy_store!(SqliteStore);
impl_tenancy_store!(PostgresStore);
