//! The index's queries: Check (one resource) and Lookup (every resource of a type), both from
//! the rules of permission.proto.

use std::collections::VecDeque;
use std::sync::Arc;

use uuid::Uuid;

use super::{GROUP_BIT, GrantEntry, Index, Lookup, MAX_DEPTH, Map, NONE, Permission, Slot};
use crate::model::WorkspaceRole;

impl Index {
    /// Whether `grants` hold a live grant for `action` to user `u` or one of `groups`.
    fn granted(
        grants: &[GrantEntry],
        u: u32,
        groups: &[u32],
        action: Permission,
        now: i64,
    ) -> bool {
        grants.iter().any(|g| {
            g.expires > now
                && (g.edit || action == Permission::View)
                && (g.grantee == u
                    || (g.grantee & GROUP_BIT != 0 && groups.contains(&(g.grantee & !GROUP_BIT))))
        })
    }

    /// Rules 2, 4 and 5 for one slot (rule 3 is decided once per query).
    fn direct(
        s: &Slot,
        u: u32,
        role: Option<WorkspaceRole>,
        groups: &[u32],
        action: Permission,
        now: i64,
    ) -> bool {
        s.owner == u
            || (s.visible && (action == Permission::View || role == Some(WorkspaceRole::Editor)))
            || Self::granted(&s.grants, u, groups, action, now)
    }

    /// The Check rules of permission.proto for one (user, resource, action) in workspace `workspace`, at `now` (unix ms).
    #[allow(clippy::too_many_arguments)]
    pub fn check(
        &self,
        service: &str,
        resource_type: &str,
        resource_id: &str,
        user: Uuid,
        workspace: Uuid,
        action: Permission,
        now: i64,
    ) -> bool {
        let Some(mut at) = self.find(service, resource_type, resource_id) else {
            return false; // rule 1: unknown
        };
        let (Some(w), Some(u)) = (self.workspaces.get(&workspace), self.users.get(&user)) else {
            return false;
        };
        let Some(role) = self.roles.get(&(w, u)).copied() else {
            return false; // not a member of the token's workspace
        };
        let groups = self.user_groups.get(&u).map_or(&[][..], Vec::as_slice);
        for _ in 0..MAX_DEPTH {
            let Some(s) = self.slot(at) else {
                return false;
            };
            if s.workspace != w {
                return false; // rule 1: another workspace
            }
            if role >= Some(WorkspaceRole::Admin) || Self::direct(s, u, role, groups, action, now) {
                return true; // rules 2–5
            }
            if s.parent == NONE {
                return false; // rule 7
            }
            at = s.parent; // rule 6
        }
        false
    }

    /// Every resource of (service, type) in `workspace` on which `user` may perform `action`:
    /// exactly the set `check` allows, sorted by id.
    pub fn lookup(
        &self,
        service: &str,
        resource_type: &str,
        user: Uuid,
        workspace: Uuid,
        action: Permission,
        now: i64,
    ) -> Lookup {
        let empty = Lookup::Ids(Vec::new());
        let (Some(w), Some(u)) = (self.workspaces.get(&workspace), self.users.get(&user)) else {
            return empty;
        };
        let Some(role) = self.roles.get(&(w, u)).copied() else {
            return empty;
        };
        if role >= Some(WorkspaceRole::Admin) {
            return Lookup::FullAccess;
        }
        let Some(target) = self.namespace(service, resource_type) else {
            return empty;
        };
        let service_namespaces = &self.namespaces[service];
        let groups = self.user_groups.get(&u).map_or(&[][..], Vec::as_slice);
        // Seeds: everything that can allow directly (rules 2, 4, 5), in this workspace and
        // service; then every descendant that stays in the workspace (rule 6).
        let mut seen: Map<u32, ()> = Map::default();
        let mut queue: VecDeque<u32> = VecDeque::new();
        let seed = |slot: u32, seen: &mut Map<u32, ()>, queue: &mut VecDeque<u32>| {
            if let Some(s) = self.slot(slot)
                && s.workspace == w
                && service_namespaces.values().any(|ns| *ns == s.ns)
                && Self::direct(s, u, role, groups, action, now)
                && seen.insert(slot, ()).is_none()
            {
                queue.push_back(slot);
            }
        };
        for slot in self.by_owner.get(&u).into_iter().flatten() {
            seed(slot, &mut seen, &mut queue);
        }
        let codes = std::iter::once(u).chain(groups.iter().map(|g| g | GROUP_BIT));
        for code in codes {
            for slot in self.by_grantee.get(&code).into_iter().flatten() {
                seed(slot, &mut seen, &mut queue);
            }
        }
        if action == Permission::View || role == Some(WorkspaceRole::Editor) {
            for slot in self.visible.get(&w).into_iter().flatten() {
                seed(slot, &mut seen, &mut queue);
            }
        }
        let mut ids: Vec<Arc<str>> = Vec::new();
        while let Some(slot) = queue.pop_front() {
            let Some(s) = self.slot(slot) else { continue };
            if s.ns == target {
                ids.push(s.id.clone());
            }
            for child in self.children.get(&slot).into_iter().flatten() {
                if self.slot(child).is_some_and(|c| c.workspace == w)
                    && seen.insert(child, ()).is_none()
                {
                    queue.push_back(child);
                }
            }
        }
        ids.sort_unstable();
        Lookup::Ids(ids)
    }
}
