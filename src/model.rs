//! The domain's vocabulary: values parsed once at the edge and compared as types, not strings.

use std::fmt;

/// A role in a workspace, ordered by what it may do: owner > admin > editor > viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkspaceRole {
    /// Reads what the workspace shows its members.
    Viewer,
    /// Also edits what the workspace shows its members.
    Editor,
    /// Also manages members, groups and roles, and may do anything to the workspace's resources.
    Admin,
    /// Also grants the owner role and deletes the workspace.
    Owner,
}

impl WorkspaceRole {
    /// Every role, highest first.
    pub const ALL: [WorkspaceRole; 4] = [
        WorkspaceRole::Owner,
        WorkspaceRole::Admin,
        WorkspaceRole::Editor,
        WorkspaceRole::Viewer,
    ];

    /// The role named `name` (`owner`, `admin`, `editor`, `viewer`).
    pub fn parse(name: &str) -> Option<WorkspaceRole> {
        WorkspaceRole::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Its name, as stored and in tokens (`wrole`).
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceRole::Owner => "owner",
            WorkspaceRole::Admin => "admin",
            WorkspaceRole::Editor => "editor",
            WorkspaceRole::Viewer => "viewer",
        }
    }
}

impl fmt::Display for WorkspaceRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_and_round_trip() {
        use WorkspaceRole::*;
        assert!(Owner > Admin && Admin > Editor && Editor > Viewer);
        for role in WorkspaceRole::ALL {
            assert_eq!(WorkspaceRole::parse(role.as_str()), Some(role));
            assert_eq!(role.to_string(), role.as_str());
        }
        for name in ["", "Owner", "root", "owner "] {
            assert_eq!(WorkspaceRole::parse(name), None, "{name:?}");
        }
        // An unknown role ranks below every role.
        assert!(None < Some(Viewer));
    }
}
