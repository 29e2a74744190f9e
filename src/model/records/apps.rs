//! Service and client apps, as the store returns them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A service app row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ServiceAppRow {
    /// App id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// The service the app acts for; unique.
    pub service_name: String,
    /// SHA-256 of the current key.
    pub key_hash: Vec<u8>,
    /// First characters of the key, for display.
    pub key_prefix: String,
    /// Browser origins (JSON array).
    pub allowed_origins: String,
    /// Inactive apps are refused.
    pub is_active: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Last key rotation.
    pub key_rotated_at: Option<DateTime<Utc>>,
    /// Until when the previous key still works.
    pub previous_key_expires_at: Option<DateTime<Utc>>,
    /// Last authenticated call (written in batches).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A client app row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClientAppRow {
    /// App id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Exact redirect URIs (JSON array).
    pub redirect_uris: String,
    /// Services whose names join the access tokens' `aud` (JSON array).
    pub services: String,
    /// Inactive apps cannot start sign-ins.
    pub is_active: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}
