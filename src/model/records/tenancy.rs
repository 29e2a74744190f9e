//! Workspaces, memberships, invitations, groups and custom roles, as the store returns them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::WorkspaceRole;
use crate::model::{GroupId, RoleId, UserId, WorkspaceId};

use super::UserRow;

/// A workspace row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WorkspaceRow {
    /// Workspace id.
    pub id: WorkspaceId,
    /// Display name.
    pub name: String,
    /// Unique slug.
    pub slug: String,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A workspace member with their profile.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    /// The member.
    #[sqlx(flatten)]
    pub user: UserRow,
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Workspace role.
    pub role: WorkspaceRole,
    /// When the user joined.
    pub joined_at: DateTime<Utc>,
    /// When the role last changed.
    #[sqlx(rename = "role_updated_at")]
    pub updated_at: DateTime<Utc>,
}

/// A pending invitation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvitationRow {
    /// Invitation id.
    pub id: Uuid,
    /// The workspace to join.
    pub workspace_id: WorkspaceId,
    /// Lowercased email it was made to (for an invitation by user id: that user's email when
    /// it was made, kept so one person has one pending invitation per workspace).
    pub email: String,
    /// The user it was made to, when made by user id.
    pub user_id: Option<UserId>,
    /// Role on joining.
    pub role: WorkspaceRole,
    /// Who invited.
    pub invited_by: Option<UserId>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Lapses.
    pub expires_at: DateTime<Utc>,
}

/// A group with its member count.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GroupRow {
    /// Group id.
    pub id: GroupId,
    /// Its workspace.
    pub workspace_id: WorkspaceId,
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
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoleRow {
    /// Role id.
    pub id: RoleId,
    /// Its workspace.
    pub workspace_id: WorkspaceId,
    /// The service whose actions it holds.
    pub service_name: String,
    /// Name, unique per (workspace, service) regardless of case.
    pub name: String,
    /// Description.
    pub description: String,
    /// Actions, sorted (read separately: not a column).
    #[sqlx(skip)]
    pub actions: Vec<String>,
    /// Number of assigned users.
    pub assigned: i64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last modified.
    pub updated_at: DateTime<Utc>,
}
