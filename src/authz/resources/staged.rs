//! A changelog transaction as a group of writes sees it: the resources and grants the group
//! names, and the memberships, users, workspaces and groups its rules ask about, are read up
//! front, a statement for many; the rules then decide each write on those
//! rows and on what the writes before it did, and new resources and grants are held back and
//! written a statement for many before the group's changelog entries. A read the rows at hand
//! cannot answer (a cycle check, a move's attachments, a key not read up front) and every
//! delete first write out what is held back, so each rule sees exactly what a transaction
//! written a statement at a time would show it.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::WriteOp;
use super::rules::Facts;
use crate::model::change::{GranteeRef, ResourceKey, ResourceState};
use crate::model::{Caller, GroupId, Permission, RoleId, UserId, WorkspaceId, WorkspaceRole};
use crate::store::{
    ChangelogTx, GrantRow, MembershipTx, NewResource, ResourceRow, ResourceTx, StoreResult,
};

/// A resource row with its parent's row id, as [`ResourceTx::resource`] answers.
type Found = (ResourceRow, Option<Uuid>);

/// The transaction of a group of writes, with its rows read up front and its new rows held
/// back until [`Staged::flush`].
pub(super) struct Staged<'a> {
    tx: &'a mut dyn ChangelogTx,
    /// Resources by key as the transaction holds them (`None`: not registered).
    resources: HashMap<ResourceKey, Option<Found>>,
    /// Grants by (resource row id, grantee) as the transaction holds them (`None`: none).
    grants: HashMap<(Uuid, GranteeRef), Option<GrantRow>>,
    /// Resources (by row id) whose every grant is in `grants`.
    whole: HashSet<Uuid>,
    /// New resources not yet written, in the order they were created: (row id, state, parent).
    inserts: Vec<(Uuid, ResourceState, Option<Uuid>)>,
    /// Where a held-back resource is in `inserts`, by row id.
    inserted: HashMap<Uuid, usize>,
    /// Grants not yet written (created or replaced), one per (resource, grantee).
    put: Vec<(Uuid, GrantRow)>,
    /// Where a held-back grant is in `put`.
    put_at: HashMap<(Uuid, GranteeRef), usize>,
    /// When held-back resources are created.
    now: DateTime<Utc>,
}

fn key_of(state: &ResourceState) -> ResourceKey {
    ResourceKey {
        service_name: state.service_name.clone(),
        resource_type: state.resource_type.clone(),
        resource_id: state.resource_id.clone(),
    }
}

impl<'a> Staged<'a> {
    /// Opens the view over `tx`, reading the resources `ops` name (their parents too) and the
    /// grants of the resources they share: one statement per service and one for the grants.
    pub async fn read(tx: &'a mut dyn ChangelogTx, ops: &[&WriteOp]) -> StoreResult<Self> {
        let mut named: HashMap<&str, HashSet<(&str, &str)>> = HashMap::new();
        let mut shared = HashSet::new();
        for op in ops {
            let key = match op {
                WriteOp::Register { state, .. } => {
                    let keys = named.entry(state.service_name.as_str()).or_default();
                    keys.insert((state.resource_type.as_str(), state.resource_id.as_str()));
                    if let Some((kind, id)) = &state.parent {
                        keys.insert((kind.as_str(), id.as_str()));
                    }
                    continue;
                }
                WriteOp::Share { key, .. } => {
                    shared.insert(key);
                    key
                }
                WriteOp::Delete { key, .. }
                | WriteOp::SetVisibility { key, .. }
                | WriteOp::SetOwner { key, .. }
                | WriteOp::Unshare { key, .. } => key,
            };
            named
                .entry(key.service_name.as_str())
                .or_default()
                .insert((key.resource_type.as_str(), key.resource_id.as_str()));
        }
        let mut resources = HashMap::new();
        for (service, keys) in named {
            let keys: Vec<(&str, &str)> = keys.into_iter().collect();
            for (kind, id) in &keys {
                let key = ResourceKey {
                    service_name: service.to_owned(),
                    resource_type: (*kind).to_owned(),
                    resource_id: (*id).to_owned(),
                };
                resources.insert(key, None);
            }
            for (row, parent) in tx.resources_by_keys(service, &keys).await? {
                resources.insert(key_of(&row.state), Some((row, parent)));
            }
        }
        let ids: Vec<Uuid> = shared
            .into_iter()
            .filter_map(|key| {
                resources
                    .get(key)
                    .and_then(|r| r.as_ref().map(|(r, _)| r.id))
            })
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut grants = HashMap::new();
        if !ids.is_empty() {
            for (resource, grant) in tx.grants_on(&ids).await? {
                grants.insert((resource, grant.grantee), Some(grant));
            }
        }
        Ok(Self {
            tx,
            resources,
            grants,
            whole: ids.into_iter().collect(),
            inserts: Vec::new(),
            inserted: HashMap::new(),
            put: Vec::new(),
            put_at: HashMap::new(),
            now: crate::model::now(),
        })
    }

    /// The memberships, users, workspaces and groups the rules of `writes` will ask about,
    /// read a statement for many (a membership shows its user and workspace exist).
    pub async fn facts(&mut self, writes: &[(&Caller, &WriteOp)]) -> StoreResult<Facts> {
        let mut pairs = HashSet::new();
        let (mut users, mut workspaces, mut groups) =
            (HashSet::new(), HashSet::new(), HashSet::new());
        for (caller, op) in writes {
            let home = |key: &ResourceKey| {
                self.resources
                    .get(key)
                    .and_then(|found| found.as_ref().map(|(row, _)| row.state.workspace_id))
            };
            match op {
                WriteOp::Register { state, .. } => {
                    workspaces.insert(state.workspace_id);
                    if let Some(owner) = state.owner_id {
                        pairs.insert((state.workspace_id, owner));
                    }
                }
                WriteOp::Share { key, grant } => {
                    let Some(workspace) = home(key) else { continue };
                    if let Some(user) = caller.user {
                        pairs.insert((workspace, user));
                    }
                    match grant.grantee {
                        GranteeRef::User(user) => {
                            users.insert(user);
                            pairs.insert((workspace, user));
                        }
                        GranteeRef::Group(group) => {
                            groups.insert(group);
                        }
                    }
                }
                WriteOp::Unshare { key, .. } => {
                    if let (Some(workspace), Some(user)) = (home(key), caller.user) {
                        pairs.insert((workspace, user));
                    }
                }
                WriteOp::SetOwner {
                    key,
                    owner: Some(owner),
                } => {
                    users.insert(*owner);
                    if let Some(workspace) = home(key) {
                        pairs.insert((workspace, *owner));
                    }
                }
                WriteOp::SetOwner { .. }
                | WriteOp::Delete { .. }
                | WriteOp::SetVisibility { .. } => {}
            }
        }
        let mut facts = Facts::default();
        let members: Vec<UserId> = pairs
            .iter()
            .map(|(_, user)| *user)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut held = HashMap::new();
        if !members.is_empty() {
            for (workspace, user, role) in self.tx.memberships_of(&members).await? {
                // A membership's user and workspace exist (foreign keys).
                facts.users.insert(user, true);
                facts.workspaces.insert(workspace, true);
                held.insert((workspace, user), role);
            }
        }
        for pair in pairs {
            facts.roles.insert(pair, held.get(&pair).copied());
        }
        let users: Vec<UserId> = users
            .into_iter()
            .filter(|user| !facts.users.contains_key(user))
            .collect();
        if !users.is_empty() {
            let found: HashSet<UserId> = self.tx.users_among(&users).await?.into_iter().collect();
            for user in users {
                facts.users.insert(user, found.contains(&user));
            }
        }
        let workspaces: Vec<WorkspaceId> = workspaces
            .into_iter()
            .filter(|workspace| !facts.workspaces.contains_key(workspace))
            .collect();
        if !workspaces.is_empty() {
            let found: HashSet<WorkspaceId> = self
                .tx
                .workspaces_among(&workspaces)
                .await?
                .into_iter()
                .collect();
            for workspace in workspaces {
                facts
                    .workspaces
                    .insert(workspace, found.contains(&workspace));
            }
        }
        if !groups.is_empty() {
            let groups: Vec<GroupId> = groups.into_iter().collect();
            let found: HashMap<GroupId, WorkspaceId> =
                self.tx.groups_among(&groups).await?.into_iter().collect();
            for group in groups {
                facts.groups.insert(group, found.get(&group).copied());
            }
        }
        Ok(facts)
    }

    /// Writes what is held back: the new resources in creation order (a parent before its
    /// children), then the grants.
    pub async fn flush(&mut self) -> StoreResult<()> {
        if !self.inserts.is_empty() {
            let rows: Vec<NewResource<'_>> = self
                .inserts
                .iter()
                .map(|(id, state, parent)| NewResource {
                    id: *id,
                    state,
                    parent: *parent,
                })
                .collect();
            self.tx.insert_resources(&rows, self.now).await?;
            self.inserts.clear();
            self.inserted.clear();
        }
        if !self.put.is_empty() {
            self.tx.put_grants(&self.put).await?;
            self.put.clear();
            self.put_at.clear();
        }
        Ok(())
    }

    /// Forgets every row read: after a delete, children and grants changed in the database.
    fn forget(&mut self) {
        self.resources.clear();
        self.grants.clear();
        self.whole.clear();
    }
}

#[async_trait]
impl ResourceTx for Staged<'_> {
    async fn resource(&mut self, key: &ResourceKey) -> StoreResult<Option<Found>> {
        if let Some(known) = self.resources.get(key) {
            return Ok(known.clone());
        }
        self.flush().await?;
        let found = self.tx.resource(key).await?;
        self.resources.insert(key.clone(), found.clone());
        Ok(found)
    }

    async fn chain_reaches(&mut self, from: Uuid, target: Uuid, max: i64) -> StoreResult<bool> {
        self.flush().await?;
        self.tx.chain_reaches(from, target, max).await
    }

    async fn attachments(&mut self, resource: Uuid) -> StoreResult<i64> {
        self.flush().await?;
        self.tx.attachments(resource).await
    }

    async fn put_resource(
        &mut self,
        existing: Option<Uuid>,
        state: &ResourceState,
        parent: Option<Uuid>,
    ) -> StoreResult<ResourceRow> {
        let row = match existing {
            // Created here: held back, as a later write of the group may change it again.
            None => {
                let id = Uuid::now_v7(); // time-ordered: index inserts stay at the right edge
                self.inserted.insert(id, self.inserts.len());
                self.inserts.push((id, state.clone(), parent));
                self.whole.insert(id);
                ResourceRow {
                    id,
                    state: state.clone(),
                    created_at: self.now,
                    updated_at: self.now,
                }
            }
            Some(id) => match self.inserted.get(&id) {
                Some(&at) => {
                    self.inserts[at] = (id, state.clone(), parent);
                    ResourceRow {
                        id,
                        state: state.clone(),
                        created_at: self.now,
                        updated_at: self.now,
                    }
                }
                None => {
                    self.flush().await?;
                    self.tx.put_resource(Some(id), state, parent).await?
                }
            },
        };
        self.resources
            .insert(key_of(state), Some((row.clone(), parent)));
        Ok(row)
    }

    async fn delete_resource(&mut self, resource: Uuid) -> StoreResult<()> {
        self.flush().await?;
        self.tx.delete_resource(resource).await?;
        self.forget();
        Ok(())
    }

    async fn grant(
        &mut self,
        resource: Uuid,
        grantee: GranteeRef,
    ) -> StoreResult<Option<GrantRow>> {
        if let Some(known) = self.grants.get(&(resource, grantee)) {
            return Ok(known.clone());
        }
        if self.whole.contains(&resource) {
            return Ok(None);
        }
        self.flush().await?;
        let found = self.tx.grant(resource, grantee).await?;
        self.grants.insert((resource, grantee), found.clone());
        Ok(found)
    }

    async fn put_grant(&mut self, resource: Uuid, grant: &GrantRow) -> StoreResult<()> {
        let at = (resource, grant.grantee);
        match self.put_at.get(&at) {
            Some(&i) => self.put[i] = (resource, grant.clone()),
            None => {
                self.put_at.insert(at, self.put.len());
                self.put.push((resource, grant.clone()));
            }
        }
        self.grants.insert(at, Some(grant.clone()));
        Ok(())
    }

    async fn delete_grant(
        &mut self,
        resource: Uuid,
        grantee: GranteeRef,
        permission: Option<Permission>,
    ) -> StoreResult<bool> {
        self.flush().await?;
        let removed = self.tx.delete_grant(resource, grantee, permission).await?;
        self.grants.remove(&(resource, grantee));
        self.whole.remove(&resource);
        Ok(removed)
    }
}

#[async_trait]
impl MembershipTx for Staged<'_> {
    async fn workspace_exists(&mut self, workspace: WorkspaceId) -> StoreResult<bool> {
        self.tx.workspace_exists(workspace).await
    }

    async fn user_exists(&mut self, user: UserId) -> StoreResult<bool> {
        self.tx.user_exists(user).await
    }

    async fn role_of(
        &mut self,
        workspace: WorkspaceId,
        user: UserId,
    ) -> StoreResult<Option<WorkspaceRole>> {
        self.tx.role_of(workspace, user).await
    }

    async fn owner_count(&mut self, workspace: WorkspaceId) -> StoreResult<i64> {
        self.tx.owner_count(workspace).await
    }

    async fn group_workspace(&mut self, group: GroupId) -> StoreResult<Option<WorkspaceId>> {
        self.tx.group_workspace(group).await
    }

    async fn set_member_role(
        &mut self,
        workspace: WorkspaceId,
        user: UserId,
        role: WorkspaceRole,
    ) -> StoreResult<()> {
        self.tx.set_member_role(workspace, user, role).await
    }

    async fn remove_member(&mut self, workspace: WorkspaceId, user: UserId) -> StoreResult<()> {
        self.tx.remove_member(workspace, user).await
    }

    async fn add_member(
        &mut self,
        workspace: WorkspaceId,
        user: UserId,
        role: WorkspaceRole,
    ) -> StoreResult<()> {
        self.tx.add_member(workspace, user, role).await
    }

    async fn take_invitation(
        &mut self,
        id: Uuid,
    ) -> StoreResult<Option<(WorkspaceId, WorkspaceRole)>> {
        self.tx.take_invitation(id).await
    }

    async fn set_group_member(
        &mut self,
        group: GroupId,
        user: UserId,
        add: bool,
    ) -> StoreResult<bool> {
        self.tx.set_group_member(group, user, add).await
    }

    async fn set_role_assignment(
        &mut self,
        role: RoleId,
        user: UserId,
        assign: bool,
    ) -> StoreResult<bool> {
        self.tx.set_role_assignment(role, user, assign).await
    }
}
