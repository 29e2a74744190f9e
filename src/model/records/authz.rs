//! Registered resources and their grants, as the store returns them.

use crate::model::Permission;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::UserId;

use crate::model::change::{GranteeRef, ResourceState};

/// A stored resource.
#[derive(Debug, Clone)]
pub struct ResourceRow {
    /// Row id.
    pub id: Uuid,
    /// Its state, with the parent's key.
    pub state: ResourceState,
    /// Registered.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A stored grant.
#[derive(Debug, Clone)]
pub struct GrantRow {
    /// Who.
    pub grantee: GranteeRef,
    /// What it allows.
    pub permission: Permission,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// The acting user, if any.
    pub granted_by: Option<UserId>,
    /// When granted (or last changed).
    pub created_at: DateTime<Utc>,
}
