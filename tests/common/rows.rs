//! Rows the store conformance suites write: plain values with fresh ids and the current time.

use chrono::Utc;
use sentinel::audit::{Actor, event};
use sentinel::model::{UserId, WorkspaceId};
use sentinel::store::{AuditRow, ServiceAppRow, UserRow, WorkspaceRow};
use uuid::Uuid;

/// An audit event to go with a write.
pub fn audit() -> AuditRow {
    event(
        "test.write",
        &Actor::default(),
        "test",
        "1",
        serde_json::json!({}),
    )
}

/// An active user who is no admin.
pub fn user(name: &str, email: &str) -> UserRow {
    let now = Utc::now();
    UserRow {
        id: UserId::random(),
        email: email.into(),
        name: name.into(),
        avatar_url: String::new(),
        is_active: true,
        is_admin: false,
        created_at: now,
        updated_at: now,
    }
}

/// A workspace.
pub fn workspace(name: &str, slug: &str) -> WorkspaceRow {
    let now = Utc::now();
    WorkspaceRow {
        id: WorkspaceId::random(),
        name: name.into(),
        slug: slug.into(),
        description: String::new(),
        created_at: now,
        updated_at: now,
    }
}

/// An active service app whose key hashes to `key`.
pub fn service_app(name: &str, service: &str, key: &[u8]) -> ServiceAppRow {
    let now = Utc::now();
    ServiceAppRow {
        id: Uuid::new_v4(),
        name: name.into(),
        service_name: service.into(),
        key_hash: key.to_vec(),
        key_prefix: "sk_test".into(),
        allowed_origins: String::new(),
        is_active: true,
        created_at: now,
        updated_at: now,
        key_rotated_at: None,
        previous_key_expires_at: None,
        last_used_at: None,
    }
}
