//! The entries of the authorization changelog.

use super::{Permission, Visibility, WorkspaceRole};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{GroupId, RoleId, UserId, WorkspaceId};

/// A resource's state after a change, as the index and Watch need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceState {
    /// Owning service.
    pub service_name: String,
    /// Type within the service.
    pub resource_type: String,
    /// Id within the type.
    pub resource_id: String,
    /// Workspace.
    pub workspace_id: WorkspaceId,
    /// Owning user, if any.
    pub owner_id: Option<UserId>,
    /// Who sees it beyond owner and grantees.
    pub visibility: Visibility,
    /// Parent (type, id) of the same service, if any.
    pub parent: Option<(String, String)>,
}

/// Who a grant is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum GranteeRef {
    /// A user.
    User(UserId),
    /// A group.
    Group(GroupId),
}

impl GranteeRef {
    /// The stored `grantee_type`.
    pub fn kind(&self) -> &'static str {
        match self {
            GranteeRef::User(_) => "user",
            GranteeRef::Group(_) => "group",
        }
    }

    /// The user or group id.
    pub fn id(&self) -> Uuid {
        match self {
            GranteeRef::User(id) => id.0,
            GranteeRef::Group(id) => id.0,
        }
    }
}

/// A resource key: (service, type, id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResourceKey {
    /// Owning service.
    pub service_name: String,
    /// Type within the service.
    pub resource_type: String,
    /// Id within the type.
    pub resource_id: String,
}

/// One authorization change, as stored in the changelog (`kind` column = the tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A user joined a workspace (`added`) or changed role there.
    MemberSet {
        /// The workspace.
        workspace_id: WorkspaceId,
        /// The member.
        user_id: UserId,
        /// The new role.
        role: WorkspaceRole,
        /// True when the user joined with this change.
        added: bool,
    },
    /// A user left a workspace (and with it its groups and custom roles there).
    MemberRemoved {
        /// The workspace.
        workspace_id: WorkspaceId,
        /// The former member.
        user_id: UserId,
    },
    /// A workspace and everything in it were deleted.
    WorkspaceDeleted {
        /// The workspace.
        workspace_id: WorkspaceId,
    },
    /// A group was deleted with its memberships and grants.
    GroupDeleted {
        /// The group's workspace.
        workspace_id: WorkspaceId,
        /// The group.
        group_id: GroupId,
    },
    /// A user joined a group.
    GroupMemberAdded {
        /// The group's workspace.
        workspace_id: WorkspaceId,
        /// The group.
        group_id: GroupId,
        /// The user.
        user_id: UserId,
    },
    /// A user left a group.
    GroupMemberRemoved {
        /// The group's workspace.
        workspace_id: WorkspaceId,
        /// The group.
        group_id: GroupId,
        /// The user.
        user_id: UserId,
    },
    /// A custom role of a service was created or its actions replaced.
    RoleChanged {
        /// The role's workspace.
        workspace_id: WorkspaceId,
        /// The role's service.
        service_name: String,
        /// The role.
        role_id: RoleId,
        /// Its full set of actions.
        actions: Vec<String>,
    },
    /// A custom role was deleted with its assignments.
    RoleDeleted {
        /// The role's workspace.
        workspace_id: WorkspaceId,
        /// The role's service.
        service_name: String,
        /// The role.
        role_id: RoleId,
    },
    /// A custom role was assigned to (`assigned`) or unassigned from a user.
    RoleAssignment {
        /// The role's workspace.
        workspace_id: WorkspaceId,
        /// The role's service.
        service_name: String,
        /// The role.
        role_id: RoleId,
        /// The user.
        user_id: UserId,
        /// True for an assignment, false for its removal.
        assigned: bool,
    },
    /// A resource was registered (`created`) or its owner, visibility, parent or workspace
    /// changed.
    ResourceSet {
        /// The resource's new state.
        resource: ResourceState,
        /// True when registered by this change.
        created: bool,
    },
    /// A resource was deleted with its grants; its children were detached.
    ResourceDeleted {
        /// The resource's workspace.
        workspace_id: WorkspaceId,
        /// The resource.
        key: ResourceKey,
    },
    /// A grant was created (`created`) or its level or expiry changed.
    GrantSet {
        /// The resource's workspace.
        workspace_id: WorkspaceId,
        /// The resource.
        key: ResourceKey,
        /// The grantee.
        grantee: GranteeRef,
        /// `view` or `edit`.
        permission: Permission,
        /// Expiry, if any.
        expires_at: Option<DateTime<Utc>>,
        /// True when created by this change.
        created: bool,
    },
    /// A grant was removed.
    GrantRemoved {
        /// The resource's workspace.
        workspace_id: WorkspaceId,
        /// The resource.
        key: ResourceKey,
        /// The grantee.
        grantee: GranteeRef,
    },
    /// A service app was deleted with its resources, grants, actions and roles.
    ServiceDeleted {
        /// The service.
        service_name: String,
    },
    /// A service registered or re-described actions.
    ActionsRegistered {
        /// The service.
        service_name: String,
    },
    /// Several resource and grant changes of one service, written atomically at one revision
    /// (WriteBatch), in the order they were applied.
    Batch {
        /// The changes, never nested batches.
        changes: Vec<Change>,
    },
}

impl Change {
    /// The changelog's `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::MemberSet { .. } => "member_set",
            Change::MemberRemoved { .. } => "member_removed",
            Change::WorkspaceDeleted { .. } => "workspace_deleted",
            Change::GroupDeleted { .. } => "group_deleted",
            Change::GroupMemberAdded { .. } => "group_member_added",
            Change::GroupMemberRemoved { .. } => "group_member_removed",
            Change::RoleChanged { .. } => "role_changed",
            Change::RoleDeleted { .. } => "role_deleted",
            Change::RoleAssignment { .. } => "role_assignment",
            Change::ActionsRegistered { .. } => "actions_registered",
            Change::ResourceSet { .. } => "resource_set",
            Change::ResourceDeleted { .. } => "resource_deleted",
            Change::GrantSet { .. } => "grant_set",
            Change::GrantRemoved { .. } => "grant_removed",
            Change::ServiceDeleted { .. } => "service_deleted",
            Change::Batch { .. } => "batch",
        }
    }

    /// The workspace concerned, if any.
    pub fn workspace_id(&self) -> Option<WorkspaceId> {
        match self {
            Change::MemberSet { workspace_id, .. }
            | Change::MemberRemoved { workspace_id, .. }
            | Change::WorkspaceDeleted { workspace_id }
            | Change::GroupDeleted { workspace_id, .. }
            | Change::GroupMemberAdded { workspace_id, .. }
            | Change::GroupMemberRemoved { workspace_id, .. }
            | Change::RoleChanged { workspace_id, .. }
            | Change::RoleDeleted { workspace_id, .. }
            | Change::RoleAssignment { workspace_id, .. }
            | Change::ResourceDeleted { workspace_id, .. }
            | Change::GrantSet { workspace_id, .. }
            | Change::GrantRemoved { workspace_id, .. } => Some(*workspace_id),
            Change::ResourceSet { resource, .. } => Some(resource.workspace_id),
            Change::ActionsRegistered { .. } | Change::ServiceDeleted { .. } => None,
            // One workspace when every change names the same.
            Change::Batch { changes } => {
                let first = changes.first()?.workspace_id()?;
                changes
                    .iter()
                    .all(|c| c.workspace_id() == Some(first))
                    .then_some(first)
            }
        }
    }

    /// The service concerned, for changes that belong to one service.
    pub fn service_name(&self) -> Option<&str> {
        match self {
            Change::RoleChanged { service_name, .. }
            | Change::RoleDeleted { service_name, .. }
            | Change::RoleAssignment { service_name, .. }
            | Change::ActionsRegistered { service_name }
            | Change::ServiceDeleted { service_name } => Some(service_name),
            Change::ResourceSet { resource, .. } => Some(&resource.service_name),
            Change::ResourceDeleted { key, .. }
            | Change::GrantSet { key, .. }
            | Change::GrantRemoved { key, .. } => Some(&key.service_name),
            // A batch belongs to the one service that wrote it.
            Change::Batch { changes } => changes.first().and_then(Change::service_name),
            _ => None,
        }
    }

    /// The changes an entry stands for: a batch's, or the entry itself.
    pub fn parts(&self) -> &[Change] {
        match self {
            Change::Batch { changes } => changes,
            single => std::slice::from_ref(single),
        }
    }

    /// The changelog's `payload` column.
    pub fn payload(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

impl Change {
    /// The resource type of a resource or grant change (a batch has none of its own: see
    /// [`Change::parts`]).
    pub fn resource_type(&self) -> Option<&str> {
        match self {
            Change::ResourceSet { resource, .. } => Some(&resource.resource_type),
            Change::ResourceDeleted { key, .. }
            | Change::GrantSet { key, .. }
            | Change::GrantRemoved { key, .. } => Some(&key.resource_type),
            _ => None,
        }
    }

    /// Whether Watch streams show this change (service registrations and deletions are not
    /// part of the stream).
    pub fn is_watched(&self) -> bool {
        !matches!(
            self,
            Change::ActionsRegistered { .. } | Change::ServiceDeleted { .. }
        )
    }

    /// The workspace of a membership or group change (which belongs to no service): Watch
    /// shows it only to services present in that workspace. (A workspace's deletion is shown
    /// to every service: their resources there go with it.)
    pub fn shared_workspace(&self) -> Option<WorkspaceId> {
        match self {
            Change::MemberSet { workspace_id, .. }
            | Change::MemberRemoved { workspace_id, .. }
            | Change::GroupDeleted { workspace_id, .. }
            | Change::GroupMemberAdded { workspace_id, .. }
            | Change::GroupMemberRemoved { workspace_id, .. } => Some(*workspace_id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_carries_its_kind() {
        let change = Change::MemberSet {
            workspace_id: WorkspaceId::random(),
            user_id: UserId::random(),
            role: WorkspaceRole::Editor,
            added: true,
        };
        let json: serde_json::Value = serde_json::from_str(&change.payload()).unwrap();
        assert_eq!(json["kind"], change.kind());
        let back: Change = serde_json::from_value(json).unwrap();
        assert_eq!(back, change);
    }
}
