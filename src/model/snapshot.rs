//! What the permission index is built from: every resource, grant, membership and group
//! membership as the store reads them at start.

use super::{Permission, WorkspaceRole};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::change::{GranteeRef, ResourceState};
use super::{GroupId, UserId, WorkspaceId};

/// One resource as loaded from SQL.
#[derive(Debug, Clone)]
pub struct ResourceRecord {
    /// Row id (parents reference it).
    pub id: Uuid,
    /// Its state (the `parent` key is ignored; `parent_id` is used).
    pub state: ResourceState,
    /// Parent row id.
    pub parent_id: Option<Uuid>,
}

/// One grant as loaded from SQL.
#[derive(Debug, Clone)]
pub struct GrantRecord {
    /// The resource's row id.
    pub resource: Uuid,
    /// The grantee.
    pub grantee: GranteeRef,
    /// What it allows.
    pub permission: Permission,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Everything the index is built from.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The changelog revision the snapshot reflects: every change up to it, none after.
    pub revision: super::Revision,
    /// (workspace, user, role).
    pub memberships: Vec<(WorkspaceId, UserId, WorkspaceRole)>,
    /// (workspace, group, user).
    pub group_members: Vec<(WorkspaceId, GroupId, UserId)>,
    /// Resources.
    pub resources: Vec<ResourceRecord>,
    /// Grants.
    pub grants: Vec<GrantRecord>,
}
