//! The in-memory permission index: resources, grants, group memberships and workspace roles,
//! built from SQL at start and kept current by applying the changelog. `check` and `lookup`
//! implement the Check rules of permission.proto from memory.
//!
//! Layout: users, groups and workspaces are interned to `u32`; resources live in a slot vector
//! addressed per (service, type) namespace by their id, with reverse indexes (owner, grantee,
//! children, workspace-visible) so that a lookup starts from what can allow and walks down to
//! children instead of scanning a workspace, and per-workspace lists of resources, members and
//! groups so that deleting a workspace (or a service) visits only its own. Every reverse index
//! is a [`bag::Bag`]: constant-time insert and remove however large it grows.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::change::{Change, GranteeRef, ResourceKey, ResourceState};
pub use crate::model::snapshot::{GrantRecord, ResourceRecord, Snapshot};
use crate::model::{GroupId, Revision, UserId, Visibility, WorkspaceId, WorkspaceRole};

mod bag;
mod query;

use bag::{Bag, add_to, members, remove_from};

/// Hash maps of the index: foldhash is several times faster than SipHash on these small keys,
/// and the keys (interned ids, resource ids of registered resources) are not attacker-chosen
/// in a way that matters for a per-process, randomly seeded table.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

const NONE: u32 = u32::MAX;
const GROUP_BIT: u32 = 1 << 31;
/// Inheritance chains longer than this answer deny (writes reject cycles; this bounds a walk
/// over state that was never meant to exist).
const MAX_DEPTH: usize = 4096;

/// What a Check asks for and a grant allows (`edit` implies `view`).
pub use crate::model::Permission;

/// A lookup's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Rule 3: the user is workspace admin or owner.
    FullAccess,
    /// The allowed resource ids, sorted.
    Ids(Vec<Arc<str>>),
}

#[derive(Default)]
struct Interner {
    map: Map<Uuid, u32>,
}

impl Interner {
    fn get(&self, id: &Uuid) -> Option<u32> {
        self.map.get(id).copied()
    }

    fn intern(&mut self, id: Uuid) -> u32 {
        let next = self.map.len() as u32;
        *self.map.entry(id).or_insert(next)
    }
}

#[derive(Debug, Clone, Copy)]
struct GrantEntry {
    /// A user index, or a group index with [`GROUP_BIT`].
    grantee: u32,
    edit: bool,
    /// Unix milliseconds; `i64::MAX` = never.
    expires: i64,
}

struct Slot {
    ns: u32,
    id: Arc<str>,
    workspace: u32,
    owner: u32,
    visible: bool,
    parent: u32,
    grants: Vec<GrantEntry>,
}

/// The index. Not synchronized: the engine wraps it in a lock.
#[derive(Default)]
pub struct Index {
    revision: Revision,
    users: Interner,
    groups: Interner,
    workspaces: Interner,
    /// service → type → namespace.
    namespaces: Map<Arc<str>, Map<Arc<str>, u32>>,
    /// Per namespace: resource id → slot.
    ns_keys: Vec<Map<Arc<str>, u32>>,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    children: Map<u32, Bag>,
    by_owner: Map<u32, Bag>,
    by_grantee: Map<u32, Bag>,
    visible: Map<u32, Bag>,
    /// Workspace → its resources (deleting a workspace visits only its own).
    by_workspace: Map<u32, Bag>,
    /// (workspace, user) → role rank.
    roles: Map<(u32, u32), Option<WorkspaceRole>>,
    /// User → groups: few per user, scanned on every check as a slice.
    user_groups: Map<u32, Vec<u32>>,
    group_members: Map<u32, Bag>,
    group_workspace: Map<u32, u32>,
    /// Workspace → its members and its groups (deleting a workspace visits only its own).
    workspace_members: Map<u32, Bag>,
    workspace_groups: Map<u32, Bag>,
    grant_count: usize,
    resource_count: usize,
}

fn list_remove(map: &mut Map<u32, Vec<u32>>, key: u32, value: u32) {
    if let Some(list) = map.get_mut(&key) {
        if let Some(at) = list.iter().position(|v| *v == value) {
            list.swap_remove(at);
        }
        if list.is_empty() {
            map.remove(&key);
        }
    }
}

fn list_add(map: &mut Map<u32, Vec<u32>>, key: u32, value: u32) {
    let list = map.entry(key).or_default();
    if !list.contains(&value) {
        list.push(value);
    }
}

fn millis(at: Option<DateTime<Utc>>) -> i64 {
    at.map_or(i64::MAX, |t| t.timestamp_millis())
}

impl Index {
    /// An empty index at revision 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the index from a snapshot.
    pub fn load(snapshot: Snapshot) -> Self {
        let mut index = Index::new();
        for (workspace, user, role) in &snapshot.memberships {
            let key = (
                index.workspaces.intern(workspace.0),
                index.users.intern(user.0),
            );
            index.roles.insert(key, Some(*role));
            add_to(&mut index.workspace_members, key.0, key.1);
        }
        for (workspace, group, user) in &snapshot.group_members {
            index.join_group(*workspace, *group, *user);
        }
        let mut by_row: Map<Uuid, u32> = Map::default();
        by_row.reserve(snapshot.resources.len());
        for record in &snapshot.resources {
            let mut state = record.state.clone();
            state.parent = None;
            let slot = index.set_resource(&state);
            by_row.insert(record.id, slot);
        }
        for record in &snapshot.resources {
            if let Some(parent) = record.parent_id.and_then(|p| by_row.get(&p).copied()) {
                let slot = by_row[&record.id];
                index.set_parent(slot, parent);
            }
        }
        for grant in &snapshot.grants {
            if let Some(slot) = by_row.get(&grant.resource).copied() {
                index.set_grant(
                    slot,
                    grant.grantee,
                    grant.permission == Permission::Edit,
                    grant.expires_at,
                );
            }
        }
        index.revision = snapshot.revision;
        index
    }

    /// The changelog revision applied last.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// Number of resources and of grants held.
    pub fn counts(&self) -> (usize, usize) {
        (self.resource_count, self.grant_count)
    }

    fn slot(&self, at: u32) -> Option<&Slot> {
        self.slots.get(at as usize).and_then(Option::as_ref)
    }

    fn slot_mut(&mut self, at: u32) -> Option<&mut Slot> {
        self.slots.get_mut(at as usize).and_then(Option::as_mut)
    }

    fn namespace(&self, service: &str, resource_type: &str) -> Option<u32> {
        self.namespaces.get(service)?.get(resource_type).copied()
    }

    fn namespace_or_new(&mut self, service: &str, resource_type: &str) -> u32 {
        if let Some(ns) = self.namespace(service, resource_type) {
            return ns;
        }
        let ns = self.ns_keys.len() as u32;
        let service: Arc<str> = Arc::from(service);
        let resource_type: Arc<str> = Arc::from(resource_type);
        self.ns_keys.push(Map::default());
        self.namespaces
            .entry(service)
            .or_default()
            .insert(resource_type, ns);
        ns
    }

    fn find(&self, service: &str, resource_type: &str, id: &str) -> Option<u32> {
        let ns = self.namespace(service, resource_type)?;
        self.ns_keys[ns as usize].get(id).copied()
    }

    fn find_key(&self, key: &ResourceKey) -> Option<u32> {
        self.find(&key.service_name, &key.resource_type, &key.resource_id)
    }

    fn join_group(&mut self, workspace: WorkspaceId, group: GroupId, user: UserId) {
        let (w, g, u) = (
            self.workspaces.intern(workspace.0),
            self.groups.intern(group.0),
            self.users.intern(user.0),
        );
        if let Some(old) = self.group_workspace.insert(g, w)
            && old != w
        {
            remove_from(&mut self.workspace_groups, old, g);
        }
        add_to(&mut self.workspace_groups, w, g);
        list_add(&mut self.user_groups, u, g);
        add_to(&mut self.group_members, g, u);
    }

    fn set_parent(&mut self, slot: u32, parent: u32) {
        let Some(old) = self.slot(slot).map(|s| s.parent) else {
            return;
        };
        if old == parent {
            return;
        }
        if old != NONE {
            remove_from(&mut self.children, old, slot);
        }
        if parent != NONE {
            add_to(&mut self.children, parent, slot);
        }
        if let Some(s) = self.slot_mut(slot) {
            s.parent = parent;
        }
    }

    /// Creates or updates a resource from its state; returns its slot.
    fn set_resource(&mut self, state: &ResourceState) -> u32 {
        let ns = self.namespace_or_new(&state.service_name, &state.resource_type);
        let workspace = self.workspaces.intern(state.workspace_id.0);
        let owner = state.owner_id.map_or(NONE, |o| self.users.intern(o.0));
        let visible = state.visibility == Visibility::Workspace;
        let mut created = false;
        let slot = match self.ns_keys[ns as usize].get(state.resource_id.as_str()) {
            Some(slot) => *slot,
            None => {
                let id: Arc<str> = Arc::from(state.resource_id.as_str());
                let fresh = Slot {
                    ns,
                    id: id.clone(),
                    workspace,
                    owner: NONE,
                    visible: false,
                    parent: NONE,
                    grants: Vec::new(),
                };
                created = true;
                let slot = match self.free.pop() {
                    Some(at) => {
                        self.slots[at as usize] = Some(fresh);
                        at
                    }
                    None => {
                        self.slots.push(Some(fresh));
                        (self.slots.len() - 1) as u32
                    }
                };
                self.ns_keys[ns as usize].insert(id, slot);
                self.resource_count += 1;
                slot
            }
        };
        let (old_owner, old_visible, old_workspace) = match self.slot(slot) {
            Some(s) => (s.owner, s.visible, s.workspace),
            None => return slot,
        };
        if old_owner != owner {
            if old_owner != NONE {
                remove_from(&mut self.by_owner, old_owner, slot);
            }
            if owner != NONE {
                add_to(&mut self.by_owner, owner, slot);
            }
        }
        if old_visible && (!visible || old_workspace != workspace) {
            remove_from(&mut self.visible, old_workspace, slot);
        }
        if visible && (!old_visible || old_workspace != workspace) {
            add_to(&mut self.visible, workspace, slot);
        }
        if old_workspace != workspace || created {
            remove_from(&mut self.by_workspace, old_workspace, slot);
            add_to(&mut self.by_workspace, workspace, slot);
        }
        if let Some(s) = self.slot_mut(slot) {
            s.owner = owner;
            s.visible = visible;
            s.workspace = workspace;
        }
        let parent = state.parent.as_ref().map_or(NONE, |(t, id)| {
            self.find(&state.service_name, t, id).unwrap_or(NONE)
        });
        self.set_parent(slot, parent);
        slot
    }

    fn remove_resource(&mut self, slot: u32) {
        let Some(s) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        self.ns_keys[s.ns as usize].remove(&*s.id);
        if s.owner != NONE {
            remove_from(&mut self.by_owner, s.owner, slot);
        }
        if s.visible {
            remove_from(&mut self.visible, s.workspace, slot);
        }
        for grant in &s.grants {
            remove_from(&mut self.by_grantee, grant.grantee, slot);
        }
        self.grant_count -= s.grants.len();
        if s.parent != NONE {
            remove_from(&mut self.children, s.parent, slot);
        }
        remove_from(&mut self.by_workspace, s.workspace, slot);
        // Children are detached: they lose inherited access, never gain any.
        for child in self.children.remove(&slot).unwrap_or_default().iter() {
            if let Some(c) = self.slot_mut(child) {
                c.parent = NONE;
            }
        }
        self.resource_count -= 1;
        self.free.push(slot);
    }

    fn grantee_code(&mut self, grantee: GranteeRef) -> u32 {
        match grantee {
            GranteeRef::User(id) => self.users.intern(id.0),
            GranteeRef::Group(id) => self.groups.intern(id.0) | GROUP_BIT,
        }
    }

    fn set_grant(
        &mut self,
        slot: u32,
        grantee: GranteeRef,
        edit: bool,
        expires: Option<DateTime<Utc>>,
    ) {
        let code = self.grantee_code(grantee);
        let entry = GrantEntry {
            grantee: code,
            edit,
            expires: millis(expires),
        };
        let Some(s) = self.slot_mut(slot) else {
            return;
        };
        match s.grants.iter_mut().find(|g| g.grantee == code) {
            Some(existing) => *existing = entry,
            None => {
                s.grants.push(entry);
                self.grant_count += 1;
                add_to(&mut self.by_grantee, code, slot);
            }
        }
    }

    fn remove_grant(&mut self, slot: u32, code: u32) {
        let Some(s) = self.slot_mut(slot) else {
            return;
        };
        let before = s.grants.len();
        s.grants.retain(|g| g.grantee != code);
        if s.grants.len() < before {
            self.grant_count -= 1;
            remove_from(&mut self.by_grantee, code, slot);
        }
    }

    fn remove_group(&mut self, g: u32) {
        for user in self.group_members.remove(&g).unwrap_or_default().iter() {
            list_remove(&mut self.user_groups, user, g);
        }
        let code = g | GROUP_BIT;
        let granted: Vec<u32> = members(&self.by_grantee, &code);
        for slot in granted {
            self.remove_grant(slot, code);
        }
        if let Some(w) = self.group_workspace.remove(&g) {
            remove_from(&mut self.workspace_groups, w, g);
        }
    }

    /// Applies one changelog entry. Entries carry the state after the change (a created
    /// resource starts with no grants and no children), so replaying in order entries that the
    /// index already reflects ends in the same state.
    pub fn apply(&mut self, revision: Revision, change: &Change) {
        for part in change.parts() {
            self.apply_part(part);
        }
        self.revision = self.revision.max(revision);
    }

    fn apply_part(&mut self, change: &Change) {
        match change {
            Change::MemberSet {
                workspace_id,
                user_id,
                role,
                ..
            } => {
                let key = (
                    self.workspaces.intern(workspace_id.0),
                    self.users.intern(user_id.0),
                );
                self.roles.insert(key, Some(*role));
                add_to(&mut self.workspace_members, key.0, key.1);
            }
            Change::MemberRemoved {
                workspace_id,
                user_id,
            } => {
                if let (Some(w), Some(u)) = (
                    self.workspaces.get(&workspace_id.0),
                    self.users.get(&user_id.0),
                ) {
                    self.roles.remove(&(w, u));
                    remove_from(&mut self.workspace_members, w, u);
                    let groups: Vec<u32> = self
                        .user_groups
                        .get(&u)
                        .map(|gs| {
                            gs.iter()
                                .copied()
                                .filter(|g| self.group_workspace.get(g) == Some(&w))
                                .collect()
                        })
                        .unwrap_or_default();
                    for g in groups {
                        list_remove(&mut self.user_groups, u, g);
                        remove_from(&mut self.group_members, g, u);
                    }
                }
            }
            Change::WorkspaceDeleted { workspace_id } => {
                if let Some(w) = self.workspaces.get(&workspace_id.0) {
                    for u in self.workspace_members.remove(&w).unwrap_or_default().iter() {
                        self.roles.remove(&(w, u));
                    }
                    let groups: Vec<u32> = members(&self.workspace_groups, &w);
                    for g in groups {
                        self.remove_group(g);
                    }
                    let doomed: Vec<u32> = members(&self.by_workspace, &w);
                    for slot in doomed {
                        self.remove_resource(slot);
                    }
                }
            }
            Change::GroupDeleted { group_id, .. } => {
                if let Some(g) = self.groups.get(&group_id.0) {
                    self.remove_group(g);
                }
            }
            Change::GroupMemberAdded {
                workspace_id,
                group_id,
                user_id,
            } => self.join_group(*workspace_id, *group_id, *user_id),
            Change::GroupMemberRemoved {
                group_id, user_id, ..
            } => {
                if let (Some(g), Some(u)) =
                    (self.groups.get(&group_id.0), self.users.get(&user_id.0))
                {
                    list_remove(&mut self.user_groups, u, g);
                    remove_from(&mut self.group_members, g, u);
                }
            }
            Change::ResourceSet { resource, created } => {
                // A created resource is new: no grants, no children, whatever a replayed
                // earlier incarnation of its key left here.
                if *created
                    && let Some(slot) = self.find(
                        &resource.service_name,
                        &resource.resource_type,
                        &resource.resource_id,
                    )
                {
                    self.remove_resource(slot);
                }
                self.set_resource(resource);
            }
            Change::ResourceDeleted { key, .. } => {
                if let Some(slot) = self.find_key(key) {
                    self.remove_resource(slot);
                }
            }
            Change::GrantSet {
                key,
                grantee,
                permission,
                expires_at,
                ..
            } => {
                if let Some(slot) = self.find_key(key) {
                    self.set_grant(slot, *grantee, *permission == Permission::Edit, *expires_at);
                }
            }
            Change::GrantRemoved { key, grantee, .. } => {
                if let Some(slot) = self.find_key(key) {
                    let code = self.grantee_code(*grantee);
                    self.remove_grant(slot, code);
                }
            }
            Change::ServiceDeleted { service_name } => {
                let namespaces: Vec<u32> = self
                    .namespaces
                    .get(service_name.as_str())
                    .map(|types| types.values().copied().collect())
                    .unwrap_or_default();
                // Only the service's own resources are visited.
                let doomed: Vec<u32> = namespaces
                    .iter()
                    .flat_map(|ns| self.ns_keys[*ns as usize].values().copied())
                    .collect();
                for slot in doomed {
                    self.remove_resource(slot);
                }
            }
            Change::RoleChanged { .. }
            | Change::RoleDeleted { .. }
            | Change::RoleAssignment { .. }
            | Change::ActionsRegistered { .. } => {}
            // Flattened by `apply` (batches do not nest).
            Change::Batch { .. } => {}
        }
    }
}
