//! Users and their linked identities, as the store returns them.

use chrono::{DateTime, Utc};

use crate::model::UserId;

/// An external identity linked to a user.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct IdentityRow {
    /// Provider id (as configured).
    pub provider: String,
    /// The provider's subject for the user.
    pub subject: String,
    /// Email the provider reported at the last sign-in.
    pub email: String,
    /// When it was linked.
    pub created_at: DateTime<Utc>,
    /// Last sign-in through it.
    pub last_login_at: DateTime<Utc>,
}

/// A user row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRow {
    /// User id.
    pub id: UserId,
    /// Unique, lowercase email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Avatar URL (may be empty).
    pub avatar_url: String,
    /// Deactivated users cannot sign in or refresh.
    pub is_active: bool,
    /// Platform admin.
    pub is_admin: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}
