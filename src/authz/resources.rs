//! The resources service: registering resources, their owner and visibility, and sharing
//! them. It owns every rule of those writes — the workspace and owner of a resource, parents in
//! the same workspace and without cycles, who may change grants and who may receive them —
//! decided on facts read inside the write's transaction (under the changelog lock), the audit
//! event of every write, and read-your-writes: each write is applied to this process's index
//! before it answers, and its revision is what the caller's consistency token names.

use crate::model::{Permission, Visibility};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::engine::Engine;
use crate::audit;
use crate::error::Error;
use crate::model::Revision;
use crate::model::UserId;
use crate::model::change::{Change, GranteeRef, ResourceKey, ResourceState};
use crate::model::{Caller, WorkspaceRole, Written};
use crate::store::{
    AuthzStore, ChangelogTx, GrantRow, GroupStore, IdentityStore, ResourceRow, Store, WriteTxStore,
};

/// Longest parent chain walked when looking for a cycle.
const MAX_CHAIN: usize = 4096;

/// A change to an existing resource.
#[derive(Debug, Clone)]
enum ResourceUpdate {
    /// New visibility.
    Visibility(Visibility),
    /// New owner (or none).
    Owner(Option<UserId>),
}

fn precondition(reason: &str) -> Error {
    Error::FailedPrecondition(reason.into())
}

/// A new grant.
#[derive(Debug, Clone)]
pub struct NewGrant {
    /// Who receives it.
    pub grantee: GranteeRef,
    /// What it allows.
    pub permission: Permission,
    /// When it lapses (in the future; millisecond precision is kept).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A live grant, with the grantee's name (and a user's email) when asked for.
#[derive(Debug, Clone)]
pub struct GrantView {
    /// The grant.
    pub grant: GrantRow,
    /// The user's or group's name (empty unless enriched).
    pub grantee_name: String,
    /// The user's email (empty unless enriched, or for a group).
    pub grantee_email: String,
}

/// Resources and their grants.
pub struct Resources {
    /// Resource and grant reads.
    authz: Arc<dyn AuthzStore>,
    /// Writes: the changelog transaction the rules are decided in.
    tx: Arc<dyn WriteTxStore>,
    users: Arc<dyn IdentityStore>,
    groups: Arc<dyn GroupStore>,
    engine: Arc<Engine>,
}

fn target(key: &ResourceKey) -> String {
    format!("{}/{}", key.resource_type, key.resource_id)
}

impl Resources {
    /// Over `store`, applying writes to `engine`.
    pub fn new(store: Arc<dyn Store>, engine: Arc<Engine>) -> Self {
        Self {
            authz: store.clone(),
            tx: store.clone(),
            users: store.clone(),
            groups: store,
            engine,
        }
    }

    /// Applies a local write to this process's index and nudges the replicas.
    async fn written<T>(&self, value: T, revision: Revision) -> Result<Written<T>, Error> {
        self.engine.written(revision).await?;
        Ok(Written { value, revision })
    }

    /// The resource, NOT_FOUND when absent.
    async fn existing(&self, key: &ResourceKey) -> Result<ResourceRow, Error> {
        self.authz
            .resource(key)
            .await?
            .ok_or_else(|| Error::NotFound("resource".into()))
    }

    /// Registers a resource (or, with `upsert`, updates the registered one); the row and
    /// whether it was created.
    pub async fn register(
        &self,
        caller: &Caller,
        state: &ResourceState,
        upsert: bool,
    ) -> Result<Written<(ResourceRow, bool)>, Error> {
        if let Some((parent_type, parent_id)) = &state.parent
            && *parent_type == state.resource_type
            && *parent_id == state.resource_id
        {
            return Err(Error::FailedPrecondition(
                "a resource cannot be its own parent".into(),
            ));
        }
        let mut event = audit::event(
            "resource.registered",
            &caller.actor,
            "resource",
            format!("{}/{}", state.resource_type, state.resource_id),
            serde_json::json!({ "upsert": upsert, "visibility": state.visibility }),
        );
        event.workspace_id = Some(state.workspace_id);
        let mut tx = self.tx.begin_changelog().await?;
        let key = ResourceKey {
            service_name: state.service_name.clone(),
            resource_type: state.resource_type.clone(),
            resource_id: state.resource_id.clone(),
        };
        let existing = tx.resource(&key).await?.map(|(row, _)| row);
        if let Some(row) = &existing
            && (!upsert || row.state == *state)
        {
            let revision = tx.revision().await?;
            drop(tx);
            return self.written((row.clone(), false), revision).await;
        }
        if !tx.workspace_exists(state.workspace_id).await? {
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
            && tx.role_of(state.workspace_id, owner).await?.is_none()
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
                if let Some(me) = &existing {
                    // Walk up from the parent: meeting this resource is a cycle.
                    let mut at = Some(parent.id);
                    let mut steps = 0;
                    while let Some(id) = at {
                        if id == me.id || steps > MAX_CHAIN {
                            return Err(precondition("the parent would create a cycle"));
                        }
                        at = tx.parent_of(id).await?;
                        steps += 1;
                    }
                }
                Some(parent.id)
            }
        };
        let created = existing.is_none();
        let row = tx
            .put_resource(existing.map(|row| row.id), state, parent)
            .await?;
        let change = Change::ResourceSet {
            resource: state.clone(),
            created,
        };
        let revision = tx.record(&change, &event).await?;
        tx.commit().await?;
        self.written((row, created), revision).await
    }

    /// Deletes a resource with its grants; `false` (at the current revision) when there is
    /// none and `allow_missing`, NOT_FOUND otherwise.
    pub async fn delete(
        &self,
        caller: &Caller,
        key: &ResourceKey,
        allow_missing: bool,
    ) -> Result<Written<bool>, Error> {
        let event = audit::event(
            "resource.deleted",
            &caller.actor,
            "resource",
            target(key),
            serde_json::json!({}),
        );
        let mut tx = self.tx.begin_changelog().await?;
        let Some((row, _)) = tx.resource(key).await? else {
            if allow_missing {
                let revision = tx.revision().await?;
                drop(tx);
                return Ok(Written {
                    value: false,
                    revision,
                });
            }
            return Err(Error::NotFound("resource".into()));
        };
        tx.delete_resource(row.id).await?;
        let change = Change::ResourceDeleted {
            workspace_id: row.state.workspace_id,
            key: key.clone(),
        };
        let revision = tx.record(&change, &event).await?;
        tx.commit().await?;
        self.written(true, revision).await
    }

    /// Sets a resource's visibility (`private` or `workspace`).
    pub async fn set_visibility(
        &self,
        caller: &Caller,
        key: &ResourceKey,
        visibility: Visibility,
    ) -> Result<Written<ResourceRow>, Error> {
        self.update(
            caller,
            key,
            ResourceUpdate::Visibility(visibility),
            "resource.visibility_set",
            serde_json::json!({ "visibility": visibility }),
        )
        .await
    }

    /// Sets (or, with `None`, clears) a resource's owner; NOT_FOUND for an unknown user.
    pub async fn set_owner(
        &self,
        caller: &Caller,
        key: &ResourceKey,
        owner: Option<UserId>,
    ) -> Result<Written<ResourceRow>, Error> {
        self.update(
            caller,
            key,
            ResourceUpdate::Owner(owner),
            "resource.owner_set",
            serde_json::json!({ "owner_id": owner }),
        )
        .await
    }

    async fn update(
        &self,
        caller: &Caller,
        key: &ResourceKey,
        update: ResourceUpdate,
        action: &str,
        details: serde_json::Value,
    ) -> Result<Written<ResourceRow>, Error> {
        let event = audit::event(action, &caller.actor, "resource", target(key), details);
        let mut tx = self.tx.begin_changelog().await?;
        if let ResourceUpdate::Owner(Some(owner)) = update
            && !tx.user_exists(owner).await?
        {
            return Err(Error::NotFound("user".into()));
        }
        let (row, parent) = tx
            .resource(key)
            .await?
            .ok_or_else(|| Error::NotFound("resource".into()))?;
        let mut state = row.state.clone();
        match &update {
            ResourceUpdate::Visibility(v) => state.visibility = *v,
            ResourceUpdate::Owner(owner) => state.owner_id = *owner,
        }
        if state == row.state {
            let revision = tx.revision().await?;
            drop(tx);
            return self.written(row, revision).await;
        }
        if let ResourceUpdate::Owner(Some(owner)) = update
            && tx.role_of(state.workspace_id, owner).await?.is_none()
        {
            return Err(precondition(
                "owner_id is not a member of the resource's workspace",
            ));
        }
        let row = tx.put_resource(Some(row.id), &state, parent).await?;
        let change = Change::ResourceSet {
            resource: state,
            created: false,
        };
        let revision = tx.record(&change, &event).await?;
        tx.commit().await?;
        self.written(row, revision).await
    }

    /// Grants `grant` on a resource (replacing the grantee's grant of that permission); the
    /// grant and whether anything changed.
    pub async fn share(
        &self,
        caller: &Caller,
        key: &ResourceKey,
        grant: &NewGrant,
    ) -> Result<Written<(GrantRow, bool)>, Error> {
        // By the clock decisions weigh expiries with.
        let now = self.engine.clock.now();
        if grant.expires_at.is_some_and(|at| at <= now) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        let mut tx = self.tx.begin_changelog().await?;
        let (row, _) = tx
            .resource(key)
            .await?
            .ok_or_else(|| Error::NotFound("resource".into()))?;
        let granted_by = may_share(tx.as_mut(), caller, &row).await?;
        let workspace_id = row.state.workspace_id;
        match grant.grantee {
            GranteeRef::User(user) => {
                if !tx.user_exists(user).await? {
                    return Err(Error::NotFound("user".into()));
                }
                if tx.role_of(workspace_id, user).await?.is_none() {
                    return Err(precondition(
                        "the grantee is not a member of the resource's workspace",
                    ));
                }
            }
            GranteeRef::Group(group) => {
                let home = tx
                    .group_workspace(group)
                    .await?
                    .ok_or_else(|| Error::NotFound("group".into()))?;
                if home != workspace_id {
                    return Err(precondition("the group belongs to another workspace"));
                }
            }
        }
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
        let existing = tx.grant(row.id, grant.grantee).await?;
        if let Some(existing) = existing.as_ref()
            && existing.permission == grant.permission
            && existing.expires_at == grant.expires_at
        {
            let revision = tx.revision().await?;
            drop(tx);
            return self.written((existing.clone(), false), revision).await;
        }
        let stored = GrantRow {
            grantee: grant.grantee,
            permission: grant.permission,
            expires_at: grant.expires_at,
            granted_by,
            created_at: crate::model::now(),
        };
        tx.put_grant(row.id, &stored).await?;
        let change = Change::GrantSet {
            workspace_id,
            key: key.clone(),
            grantee: stored.grantee,
            permission: stored.permission,
            expires_at: stored.expires_at,
            created: existing.is_none(),
        };
        let revision = tx.record(&change, &event).await?;
        tx.commit().await?;
        self.written((stored, true), revision).await
    }

    /// Removes the grantee's grants on a resource (of `permission` only, when given); whether
    /// one was removed.
    pub async fn unshare(
        &self,
        caller: &Caller,
        key: &ResourceKey,
        grantee: GranteeRef,
        permission: Option<Permission>,
    ) -> Result<Written<bool>, Error> {
        let mut tx = self.tx.begin_changelog().await?;
        let (row, _) = tx
            .resource(key)
            .await?
            .ok_or_else(|| Error::NotFound("resource".into()))?;
        may_share(tx.as_mut(), caller, &row).await?;
        let mut event = audit::event(
            "resource.unshared",
            &caller.actor,
            "resource",
            target(key),
            serde_json::json!({ "grantee": grantee }),
        );
        event.workspace_id = Some(row.state.workspace_id);
        if !tx.delete_grant(row.id, grantee, permission).await? {
            let revision = tx.revision().await?;
            drop(tx);
            return self.written(false, revision).await;
        }
        let change = Change::GrantRemoved {
            workspace_id: row.state.workspace_id,
            key: key.clone(),
            grantee,
        };
        let revision = tx.record(&change, &event).await?;
        tx.commit().await?;
        self.written(true, revision).await
    }

    /// A resource with its live grants (with grantee names and emails when `enrich`).
    pub async fn get(
        &self,
        key: &ResourceKey,
        enrich: bool,
    ) -> Result<(ResourceRow, Vec<GrantView>), Error> {
        let row = self.existing(key).await?;
        let now = self.engine.clock.now();
        let mut grants = Vec::new();
        for grant in self.authz.grants(row.id).await? {
            if grant.expires_at.is_some_and(|at| at <= now) {
                continue;
            }
            let (mut grantee_name, mut grantee_email) = (String::new(), String::new());
            if enrich {
                match grant.grantee {
                    GranteeRef::User(id) => {
                        if let Some(user) = self.users.user_by_id(id).await? {
                            (grantee_name, grantee_email) = (user.name, user.email);
                        }
                    }
                    GranteeRef::Group(id) => {
                        if let Some(group) = self.groups.group(id).await? {
                            grantee_name = group.name;
                        }
                    }
                }
            }
            grants.push(GrantView {
                grant,
                grantee_name,
                grantee_email,
            });
        }
        Ok((row, grants))
    }
}

/// The sharing rule: a user acting through the service must own the resource or be admin
/// or owner of its workspace, and act in that workspace. Returns who grants.
async fn may_share(
    tx: &mut dyn ChangelogTx,
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
    let role = tx.role_of(row.state.workspace_id, user).await?;
    let allowed = row.state.owner_id == Some(user) || role >= Some(WorkspaceRole::Admin);
    if !allowed {
        return Err(Error::PermissionDenied(
            "only the resource's owner or a workspace admin may change its grants".into(),
        ));
    }
    Ok(Some(user))
}

#[cfg(test)]
mod tests;
