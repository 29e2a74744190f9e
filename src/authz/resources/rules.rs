//! The rules of every resource and grant write, each decided on facts read inside the write's
//! transaction (under the changelog lock) and written there. A rule answers with what the write
//! did and, when it changed something, the changelog entry and audit event to record: a single
//! RPC records them at once, a WriteBatch after its last operation.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{NewGrant, WriteOp};
use crate::audit;
use crate::error::Error;
use crate::model::change::{Change, GranteeRef, ResourceKey, ResourceState};
use crate::model::{Caller, GroupId, Permission, UserId, Visibility, WorkspaceId, WorkspaceRole};
use crate::store::{AuditRow, GrantRow, ResourceRow, RuleTx, StoreResult};

/// Longest parent chain walked when looking for a cycle.
pub(super) const MAX_CHAIN: i64 = 4096;

/// What a write did, and what to record when it changed something.
pub(super) struct Step<T> {
    /// The write's answer.
    pub value: T,
    /// The changelog entry and audit event, when the write changed anything.
    pub write: Option<(Change, AuditRow)>,
}

impl<T> Step<T> {
    fn unchanged(value: T) -> Self {
        Step { value, write: None }
    }

    fn changed(value: T, change: Change, event: AuditRow) -> Self {
        Step {
            value,
            write: Some((change, event)),
        }
    }
}

/// The memberships, users, workspaces and groups a transaction's rules read, each read once:
/// they cannot change inside it, for only resource and grant writes share a transaction (others
/// take the changelog lock in transactions of their own).
#[derive(Default)]
pub(super) struct Facts {
    pub workspaces: HashMap<WorkspaceId, bool>,
    pub users: HashMap<UserId, bool>,
    pub roles: HashMap<(WorkspaceId, UserId), Option<WorkspaceRole>>,
    pub groups: HashMap<GroupId, Option<WorkspaceId>>,
}

impl Facts {
    pub(super) async fn workspace_exists(
        &mut self,
        tx: &mut dyn RuleTx,
        workspace: WorkspaceId,
    ) -> StoreResult<bool> {
        if let Some(known) = self.workspaces.get(&workspace) {
            return Ok(*known);
        }
        let exists = tx.workspace_exists(workspace).await?;
        self.workspaces.insert(workspace, exists);
        Ok(exists)
    }

    pub(super) async fn user_exists(
        &mut self,
        tx: &mut dyn RuleTx,
        user: UserId,
    ) -> StoreResult<bool> {
        if let Some(known) = self.users.get(&user) {
            return Ok(*known);
        }
        let exists = tx.user_exists(user).await?;
        self.users.insert(user, exists);
        Ok(exists)
    }

    pub(super) async fn role_of(
        &mut self,
        tx: &mut dyn RuleTx,
        workspace: WorkspaceId,
        user: UserId,
    ) -> StoreResult<Option<WorkspaceRole>> {
        if let Some(known) = self.roles.get(&(workspace, user)) {
            return Ok(*known);
        }
        let role = tx.role_of(workspace, user).await?;
        self.roles.insert((workspace, user), role);
        Ok(role)
    }

    pub(super) async fn group_workspace(
        &mut self,
        tx: &mut dyn RuleTx,
        group: GroupId,
    ) -> StoreResult<Option<WorkspaceId>> {
        if let Some(known) = self.groups.get(&group) {
            return Ok(*known);
        }
        let home = tx.group_workspace(group).await?;
        self.groups.insert(group, home);
        Ok(home)
    }
}

/// What an operation of any kind did: the answer of its single RPC.
pub(super) enum Outcome {
    /// A registered or updated resource, and whether the write created it.
    Resource(ResourceRow, bool),
    /// Whether a resource was deleted.
    Deleted(bool),
    /// The grant as stored, and whether the write changed it.
    Grant(GrantRow, bool),
    /// Whether a grant was removed.
    Unshared(bool),
}

/// A change to an existing resource.
#[derive(Debug, Clone, Copy)]
enum ResourceUpdate {
    /// New visibility.
    Visibility(Visibility),
    /// New owner (or none).
    Owner(Option<UserId>),
}

fn precondition(reason: &str) -> Error {
    Error::FailedPrecondition(reason.into())
}

fn target(key: &ResourceKey) -> String {
    format!("{}/{}", key.resource_type, key.resource_id)
}

/// Decides and writes one operation; `now` weighs grant expiries.
pub(super) async fn apply(
    tx: &mut dyn RuleTx,
    facts: &mut Facts,
    caller: &Caller,
    op: &WriteOp,
    now: DateTime<Utc>,
) -> Result<Step<Outcome>, Error> {
    let step = match op {
        WriteOp::Register { state, upsert } => {
            let step = register(tx, facts, caller, state, *upsert).await?;
            let (row, created) = step.value;
            Step {
                value: Outcome::Resource(row, created),
                write: step.write,
            }
        }
        WriteOp::Delete { key, allow_missing } => {
            let step = delete(tx, caller, key, *allow_missing).await?;
            Step {
                value: Outcome::Deleted(step.value),
                write: step.write,
            }
        }
        WriteOp::SetVisibility { key, visibility } => {
            let update = ResourceUpdate::Visibility(*visibility);
            let step = update_resource(tx, facts, caller, key, update).await?;
            Step {
                value: Outcome::Resource(step.value, false),
                write: step.write,
            }
        }
        WriteOp::SetOwner { key, owner } => {
            let step =
                update_resource(tx, facts, caller, key, ResourceUpdate::Owner(*owner)).await?;
            Step {
                value: Outcome::Resource(step.value, false),
                write: step.write,
            }
        }
        WriteOp::Share { key, grant } => {
            let step = share(tx, facts, caller, key, grant, now).await?;
            let (grant, changed) = step.value;
            Step {
                value: Outcome::Grant(grant, changed),
                write: step.write,
            }
        }
        WriteOp::Unshare {
            key,
            grantee,
            permission,
        } => {
            let step = unshare(tx, facts, caller, key, *grantee, *permission).await?;
            Step {
                value: Outcome::Unshared(step.value),
                write: step.write,
            }
        }
    };
    Ok(step)
}

/// Registers a resource (or, with `upsert`, updates the registered one); the row and whether
/// it was created.
async fn register(
    tx: &mut dyn RuleTx,
    facts: &mut Facts,
    caller: &Caller,
    state: &ResourceState,
    upsert: bool,
) -> Result<Step<(ResourceRow, bool)>, Error> {
    if let Some((parent_type, parent_id)) = &state.parent
        && *parent_type == state.resource_type
        && *parent_id == state.resource_id
    {
        return Err(precondition("a resource cannot be its own parent"));
    }
    let key = ResourceKey {
        service_name: state.service_name.clone(),
        resource_type: state.resource_type.clone(),
        resource_id: state.resource_id.clone(),
    };
    let existing = tx.resource(&key).await?.map(|(row, _)| row);
    if let Some(row) = &existing
        && (!upsert || row.state == *state)
    {
        return Ok(Step::unchanged((row.clone(), false)));
    }
    if !facts.workspace_exists(tx, state.workspace_id).await? {
        return Err(Error::NotFound("workspace".into()));
    }
    // Grants name the old workspace's users and groups, and children live in the old
    // workspace: a move would carry access across tenants.
    if let Some(row) = &existing
        && row.state.workspace_id != state.workspace_id
        && tx.attachments(row.id).await? > 0
    {
        return Err(precondition(
            "workspace_id: the resource has grants or children in its workspace; \
             unshare it and move or delete its children before moving it",
        ));
    }
    if let Some(owner) = state.owner_id
        && facts
            .role_of(tx, state.workspace_id, owner)
            .await?
            .is_none()
    {
        return Err(precondition("owner_id is not a member of the workspace"));
    }
    let parent = match &state.parent {
        None => None,
        Some((parent_type, parent_key)) => {
            let parent_key = ResourceKey {
                service_name: state.service_name.clone(),
                resource_type: parent_type.clone(),
                resource_id: parent_key.clone(),
            };
            let (parent, _) = tx
                .resource(&parent_key)
                .await?
                .ok_or_else(|| Error::NotFound("parent resource".into()))?;
            if parent.state.workspace_id != state.workspace_id {
                return Err(precondition("the parent resource is in another workspace"));
            }
            // Up from the parent: meeting this resource is a cycle (one query).
            if let Some(me) = &existing
                && tx.chain_reaches(parent.id, me.id, MAX_CHAIN).await?
            {
                return Err(precondition("the parent would create a cycle"));
            }
            Some(parent.id)
        }
    };
    let created = existing.is_none();
    let row = tx
        .put_resource(existing.map(|row| row.id), state, parent)
        .await?;
    let mut event = audit::event(
        "resource.registered",
        &caller.actor,
        "resource",
        target(&key),
        serde_json::json!({ "upsert": upsert, "visibility": state.visibility }),
    );
    event.workspace_id = Some(state.workspace_id);
    let change = Change::ResourceSet {
        resource: state.clone(),
        created,
    };
    Ok(Step::changed((row, created), change, event))
}

/// Deletes a resource with its grants; `false` when there is none and `allow_missing`,
/// NOT_FOUND otherwise.
async fn delete(
    tx: &mut dyn RuleTx,
    caller: &Caller,
    key: &ResourceKey,
    allow_missing: bool,
) -> Result<Step<bool>, Error> {
    let Some((row, _)) = tx.resource(key).await? else {
        if allow_missing {
            return Ok(Step::unchanged(false));
        }
        return Err(Error::NotFound("resource".into()));
    };
    tx.delete_resource(row.id).await?;
    let event = audit::event(
        "resource.deleted",
        &caller.actor,
        "resource",
        target(key),
        serde_json::json!({}),
    );
    let change = Change::ResourceDeleted {
        workspace_id: row.state.workspace_id,
        key: key.clone(),
    };
    Ok(Step::changed(true, change, event))
}

/// Sets a resource's visibility or owner; NOT_FOUND for an unknown owner.
async fn update_resource(
    tx: &mut dyn RuleTx,
    facts: &mut Facts,
    caller: &Caller,
    key: &ResourceKey,
    update: ResourceUpdate,
) -> Result<Step<ResourceRow>, Error> {
    if let ResourceUpdate::Owner(Some(owner)) = update
        && !facts.user_exists(tx, owner).await?
    {
        return Err(Error::NotFound("user".into()));
    }
    let (row, parent) = tx
        .resource(key)
        .await?
        .ok_or_else(|| Error::NotFound("resource".into()))?;
    let mut state = row.state.clone();
    let (action, details) = match update {
        ResourceUpdate::Visibility(v) => {
            state.visibility = v;
            (
                "resource.visibility_set",
                serde_json::json!({ "visibility": v }),
            )
        }
        ResourceUpdate::Owner(owner) => {
            state.owner_id = owner;
            (
                "resource.owner_set",
                serde_json::json!({ "owner_id": owner }),
            )
        }
    };
    if state == row.state {
        return Ok(Step::unchanged(row));
    }
    if let ResourceUpdate::Owner(Some(owner)) = update
        && facts
            .role_of(tx, state.workspace_id, owner)
            .await?
            .is_none()
    {
        return Err(precondition(
            "owner_id is not a member of the resource's workspace",
        ));
    }
    let row = tx.put_resource(Some(row.id), &state, parent).await?;
    let event = audit::event(action, &caller.actor, "resource", target(key), details);
    let change = Change::ResourceSet {
        resource: state,
        created: false,
    };
    Ok(Step::changed(row, change, event))
}

/// Grants `grant` on a resource (replacing the grantee's grant); the grant and whether
/// anything changed.
async fn share(
    tx: &mut dyn RuleTx,
    facts: &mut Facts,
    caller: &Caller,
    key: &ResourceKey,
    grant: &NewGrant,
    now: DateTime<Utc>,
) -> Result<Step<(GrantRow, bool)>, Error> {
    if grant.expires_at.is_some_and(|at| at <= now) {
        return Err(Error::invalid("expires_at", "must be in the future"));
    }
    let (row, _) = tx
        .resource(key)
        .await?
        .ok_or_else(|| Error::NotFound("resource".into()))?;
    let granted_by = may_share(tx, facts, caller, &row).await?;
    let workspace_id = row.state.workspace_id;
    may_receive(tx, facts, grant.grantee, workspace_id).await?;
    let existing = tx.grant(row.id, grant.grantee).await?;
    if let Some(existing) = existing.as_ref()
        && existing.permission == grant.permission
        && existing.expires_at == grant.expires_at
    {
        return Ok(Step::unchanged((existing.clone(), false)));
    }
    let stored = GrantRow {
        grantee: grant.grantee,
        permission: grant.permission,
        expires_at: grant.expires_at,
        granted_by,
        created_at: crate::model::now(),
    };
    tx.put_grant(row.id, &stored).await?;
    let mut event = audit::event(
        "resource.shared",
        &caller.actor,
        "resource",
        target(key),
        serde_json::json!({
            "grantee": grant.grantee,
            "permission": grant.permission,
            "expires_at": grant.expires_at,
        }),
    );
    event.workspace_id = Some(workspace_id);
    let change = Change::GrantSet {
        workspace_id,
        key: key.clone(),
        grantee: stored.grantee,
        permission: stored.permission,
        expires_at: stored.expires_at,
        created: existing.is_none(),
    };
    Ok(Step::changed((stored, true), change, event))
}

/// Removes the grantee's grant on a resource (of `permission` only, when given); whether one
/// was removed.
async fn unshare(
    tx: &mut dyn RuleTx,
    facts: &mut Facts,
    caller: &Caller,
    key: &ResourceKey,
    grantee: GranteeRef,
    permission: Option<Permission>,
) -> Result<Step<bool>, Error> {
    let (row, _) = tx
        .resource(key)
        .await?
        .ok_or_else(|| Error::NotFound("resource".into()))?;
    may_share(tx, facts, caller, &row).await?;
    if !tx.delete_grant(row.id, grantee, permission).await? {
        return Ok(Step::unchanged(false));
    }
    let mut event = audit::event(
        "resource.unshared",
        &caller.actor,
        "resource",
        target(key),
        serde_json::json!({ "grantee": grantee }),
    );
    event.workspace_id = Some(row.state.workspace_id);
    let change = Change::GrantRemoved {
        workspace_id: row.state.workspace_id,
        key: key.clone(),
        grantee,
    };
    Ok(Step::changed(true, change, event))
}

/// Who may receive a grant on a resource of `workspace_id`: an existing user who is a member,
/// or a group of that workspace.
pub(super) async fn may_receive(
    tx: &mut dyn RuleTx,
    facts: &mut Facts,
    grantee: GranteeRef,
    workspace_id: WorkspaceId,
) -> Result<(), Error> {
    match grantee {
        GranteeRef::User(user) => {
            if !facts.user_exists(tx, user).await? {
                return Err(Error::NotFound("user".into()));
            }
            if facts.role_of(tx, workspace_id, user).await?.is_none() {
                return Err(precondition(
                    "the grantee is not a member of the resource's workspace",
                ));
            }
        }
        GranteeRef::Group(group) => {
            let home = facts
                .group_workspace(tx, group)
                .await?
                .ok_or_else(|| Error::NotFound("group".into()))?;
            if home != workspace_id {
                return Err(precondition("the group belongs to another workspace"));
            }
        }
    }
    Ok(())
}

/// The sharing rule: a user acting through the service must own the resource or be admin
/// or owner of its workspace, and act in that workspace. Returns who grants.
async fn may_share(
    tx: &mut dyn RuleTx,
    facts: &mut Facts,
    caller: &Caller,
    row: &ResourceRow,
) -> Result<Option<UserId>, Error> {
    let Some(user) = caller.user else {
        return Ok(None); // the service itself
    };
    if caller.token_workspace != Some(row.state.workspace_id) {
        // Say what to fix: the user may well be the owner, but acts from another workspace.
        return Err(Error::PermissionDenied(
            "the token's workspace does not match the resource's workspace; use a token \
             scoped to the resource's workspace (Refresh or SwitchWorkspace with its id)"
                .into(),
        ));
    }
    let role = facts.role_of(tx, row.state.workspace_id, user).await?;
    let allowed = row.state.owner_id == Some(user) || role >= Some(WorkspaceRole::Admin);
    if !allowed {
        return Err(Error::PermissionDenied(
            "only the resource's owner or a workspace admin may change its grants".into(),
        ));
    }
    Ok(Some(user))
}
