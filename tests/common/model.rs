//! A naive reference model of the Check rules of permission.proto, written from the text of the rules: plain maps and a
//! recursive check, no indexes. Tests compare the engine against it.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sentinel::authz::change::{Change, GranteeRef, ResourceKey};
use sentinel::model::{GroupId, UserId, WorkspaceId};

/// A resource in the model.
#[derive(Debug, Clone)]
pub struct Res {
    pub workspace: WorkspaceId,
    pub owner: Option<UserId>,
    pub visibility: String,
    pub parent: Option<(String, String)>,
    pub grants: HashMap<GranteeRef, (String, Option<DateTime<Utc>>)>,
}

/// The whole authorization state.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// (workspace, user) → role.
    pub roles: HashMap<(WorkspaceId, UserId), String>,
    /// group → workspace.
    pub groups: HashMap<GroupId, WorkspaceId>,
    /// (group, user).
    pub group_members: HashSet<(GroupId, UserId)>,
    /// Resources by key.
    pub resources: BTreeMap<(String, String, String), Res>,
}

fn key3(key: &ResourceKey) -> (String, String, String) {
    (
        key.service_name.clone(),
        key.resource_type.clone(),
        key.resource_id.clone(),
    )
}

impl Model {
    /// Applies a change the way the contract describes its effect.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::MemberSet {
                workspace_id,
                user_id,
                role,
                ..
            } => {
                self.roles
                    .insert((*workspace_id, *user_id), role.as_str().to_string());
            }
            Change::MemberRemoved {
                workspace_id,
                user_id,
            } => {
                self.roles.remove(&(*workspace_id, *user_id));
                let groups = &self.groups;
                self.group_members
                    .retain(|(g, u)| !(u == user_id && groups.get(g) == Some(workspace_id)));
            }
            Change::WorkspaceDeleted { workspace_id } => {
                self.roles.retain(|(w, _), _| w != workspace_id);
                let gone: Vec<GroupId> = self
                    .groups
                    .iter()
                    .filter(|(_, w)| *w == workspace_id)
                    .map(|(g, _)| *g)
                    .collect();
                for g in gone {
                    self.drop_group(g);
                }
                let doomed: Vec<_> = self
                    .resources
                    .iter()
                    .filter(|(_, r)| r.workspace == *workspace_id)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in doomed {
                    self.drop_resource(&k);
                }
            }
            Change::GroupDeleted { group_id, .. } => self.drop_group(*group_id),
            Change::GroupMemberAdded {
                workspace_id,
                group_id,
                user_id,
            } => {
                self.groups.insert(*group_id, *workspace_id);
                self.group_members.insert((*group_id, *user_id));
            }
            Change::GroupMemberRemoved {
                group_id, user_id, ..
            } => {
                self.group_members.remove(&(*group_id, *user_id));
            }
            Change::ResourceSet { resource, .. } => {
                let k = (
                    resource.service_name.clone(),
                    resource.resource_type.clone(),
                    resource.resource_id.clone(),
                );
                let grants = self
                    .resources
                    .get(&k)
                    .map(|r| r.grants.clone())
                    .unwrap_or_default();
                self.resources.insert(
                    k,
                    Res {
                        workspace: resource.workspace_id,
                        owner: resource.owner_id,
                        visibility: resource.visibility.as_str().to_string(),
                        parent: resource.parent.clone(),
                        grants,
                    },
                );
            }
            Change::ResourceDeleted { key, .. } => self.drop_resource(&key3(key)),
            Change::GrantSet {
                key,
                grantee,
                permission,
                expires_at,
                ..
            } => {
                if let Some(r) = self.resources.get_mut(&key3(key)) {
                    r.grants
                        .insert(*grantee, (permission.as_str().to_string(), *expires_at));
                }
            }
            Change::GrantRemoved { key, grantee, .. } => {
                if let Some(r) = self.resources.get_mut(&key3(key)) {
                    r.grants.remove(grantee);
                }
            }
            Change::ServiceDeleted { service_name } => {
                let doomed: Vec<_> = self
                    .resources
                    .keys()
                    .filter(|(s, _, _)| s == service_name)
                    .cloned()
                    .collect();
                for k in doomed {
                    self.drop_resource(&k);
                }
            }
            _ => {}
        }
    }

    fn drop_group(&mut self, group: GroupId) {
        self.groups.remove(&group);
        self.group_members.retain(|(g, _)| *g != group);
        for r in self.resources.values_mut() {
            r.grants.remove(&GranteeRef::Group(group));
        }
    }

    /// Deletes a resource; its children lose their parent.
    fn drop_resource(&mut self, k: &(String, String, String)) {
        self.resources.remove(k);
        for ((service, _, _), r) in self.resources.iter_mut() {
            if *service == k.0 && r.parent.as_ref() == Some(&(k.1.clone(), k.2.clone())) {
                r.parent = None;
            }
        }
    }

    /// Whether `node` is `ancestor` or lies below it (following parents).
    pub fn descends(
        &self,
        node: &(String, String, String),
        ancestor: &(String, String, String),
    ) -> bool {
        let mut cursor = Some(node.clone());
        let mut steps = 0;
        while let Some(k) = cursor {
            if k == *ancestor || steps > 10_000 {
                return true;
            }
            cursor = self
                .resources
                .get(&k)
                .and_then(|r| r.parent.clone())
                .map(|(t, id)| (k.0.clone(), t, id));
            steps += 1;
        }
        false
    }

    /// The Check rules of permission.proto, in their order, for user `user` with a token of `workspace`.
    #[allow(clippy::too_many_arguments)]
    pub fn check(
        &self,
        service: &str,
        resource_type: &str,
        resource_id: &str,
        user: UserId,
        workspace: WorkspaceId,
        edit: bool,
        now: DateTime<Utc>,
    ) -> bool {
        let mut visited = HashSet::new();
        self.allowed(
            (service.into(), resource_type.into(), resource_id.into()),
            user,
            workspace,
            edit,
            now,
            &mut visited,
        )
    }

    fn allowed(
        &self,
        k: (String, String, String),
        user: UserId,
        workspace: WorkspaceId,
        edit: bool,
        now: DateTime<Utc>,
        visited: &mut HashSet<(String, String, String)>,
    ) -> bool {
        if !visited.insert(k.clone()) {
            return false; // a cycle allows nothing
        }
        // 1. unknown, or in another workspace
        let Some(r) = self.resources.get(&k) else {
            return false;
        };
        if r.workspace != workspace {
            return false;
        }
        let Some(role) = self.roles.get(&(workspace, user)) else {
            return false; // not a member: no role in the token's workspace
        };
        // 2. owner
        if r.owner == Some(user) {
            return true;
        }
        // 3. admin or owner of the workspace
        if role == "admin" || role == "owner" {
            return true;
        }
        // 4. workspace visibility
        if r.visibility == "workspace" && (!edit || role == "editor") {
            return true;
        }
        // 5. a live grant to the user or one of their groups
        for (grantee, (level, expires)) in &r.grants {
            let live = expires.is_none_or(|e| e > now);
            let enough = level == "edit" || !edit;
            let mine = match grantee {
                GranteeRef::User(u) => *u == user,
                GranteeRef::Group(g) => self.group_members.contains(&(*g, user)),
            };
            if live && enough && mine {
                return true;
            }
        }
        // 6. a parent that allows
        if let Some((t, id)) = &r.parent {
            return self.allowed(
                (k.0.clone(), t.clone(), id.clone()),
                user,
                workspace,
                edit,
                now,
                visited,
            );
        }
        // 7. deny
        false
    }

    /// `None` for full access (rule 3), else the allowed ids of a type, sorted.
    pub fn lookup(
        &self,
        service: &str,
        resource_type: &str,
        user: UserId,
        workspace: WorkspaceId,
        edit: bool,
        now: DateTime<Utc>,
    ) -> Option<Vec<String>> {
        let Some(role) = self.roles.get(&(workspace, user)) else {
            return Some(Vec::new());
        };
        if role == "admin" || role == "owner" {
            return None;
        }
        Some(
            self.resources
                .keys()
                .filter(|(s, t, _)| s == service && t == resource_type)
                .filter(|(s, t, id)| self.check(s, t, id, user, workspace, edit, now))
                .map(|(_, _, id)| id.clone())
                .collect(),
        )
    }
}

/// The seed of a randomised test: `SENTINEL_PROPTEST_SEED` when set (to replay a failure), else
/// a fresh one. The guard prints it when the test fails on any path (an assertion, an
/// `unwrap`, a timeout), so every failure can be replayed.
pub struct Seed(pub u64);

impl Seed {
    /// Picks the seed.
    pub fn pick() -> Self {
        Self(
            std::env::var("SENTINEL_PROPTEST_SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| fastrand::u64(..)),
        )
    }
}

impl Drop for Seed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("replay this failure with SENTINEL_PROPTEST_SEED={}", self.0);
        }
    }
}
