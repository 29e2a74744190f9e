//! The entries of the authorization changelog.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One authorization change, as stored in the changelog (`kind` column = the tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A user joined a workspace or changed role there.
    MemberSet {
        /// The workspace.
        workspace_id: Uuid,
        /// The member.
        user_id: Uuid,
        /// The new role.
        role: String,
    },
    /// A user left a workspace (and with it its groups and custom roles there).
    MemberRemoved {
        /// The workspace.
        workspace_id: Uuid,
        /// The former member.
        user_id: Uuid,
    },
    /// A workspace and everything in it were deleted.
    WorkspaceDeleted {
        /// The workspace.
        workspace_id: Uuid,
    },
    /// A group was deleted with its memberships and grants.
    GroupDeleted {
        /// The group's workspace.
        workspace_id: Uuid,
        /// The group.
        group_id: Uuid,
    },
    /// A user joined a group.
    GroupMemberAdded {
        /// The group's workspace.
        workspace_id: Uuid,
        /// The group.
        group_id: Uuid,
        /// The user.
        user_id: Uuid,
    },
    /// A user left a group.
    GroupMemberRemoved {
        /// The group's workspace.
        workspace_id: Uuid,
        /// The group.
        group_id: Uuid,
        /// The user.
        user_id: Uuid,
    },
    /// A custom role of a service was created, deleted, changed, assigned or unassigned.
    RoleChanged {
        /// The role's workspace.
        workspace_id: Uuid,
        /// The role's service.
        service_name: String,
        /// The role.
        role_id: Uuid,
    },
    /// A service registered or re-described actions.
    ActionsRegistered {
        /// The service.
        service_name: String,
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
            Change::ActionsRegistered { .. } => "actions_registered",
        }
    }

    /// The workspace concerned, if any.
    pub fn workspace_id(&self) -> Option<Uuid> {
        match self {
            Change::MemberSet { workspace_id, .. }
            | Change::MemberRemoved { workspace_id, .. }
            | Change::WorkspaceDeleted { workspace_id }
            | Change::GroupDeleted { workspace_id, .. }
            | Change::GroupMemberAdded { workspace_id, .. }
            | Change::GroupMemberRemoved { workspace_id, .. }
            | Change::RoleChanged { workspace_id, .. } => Some(*workspace_id),
            Change::ActionsRegistered { .. } => None,
        }
    }

    /// The service concerned, for changes that belong to one service.
    pub fn service_name(&self) -> Option<&str> {
        match self {
            Change::RoleChanged { service_name, .. }
            | Change::ActionsRegistered { service_name } => Some(service_name),
            _ => None,
        }
    }

    /// The changelog's `payload` column.
    pub fn payload(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_carries_its_kind() {
        let change = Change::MemberSet {
            workspace_id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            role: "editor".into(),
        };
        let json: serde_json::Value = serde_json::from_str(&change.payload()).unwrap();
        assert_eq!(json["kind"], change.kind());
        let back: Change = serde_json::from_value(json).unwrap();
        assert_eq!(back, change);
    }
}
