//! Audit events: built here, written by the store inside the transaction of the change.

use chrono::Utc;
use uuid::Uuid;

use crate::store::AuditRow;

/// Who did something, for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// Acting user.
    pub user_id: Option<Uuid>,
    /// Acting service.
    pub service: Option<String>,
    /// Client address.
    pub client_address: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
}

impl Actor {
    /// An operator acting through the command line.
    pub fn operator() -> Self {
        Self {
            service: Some("sentinel-cli".into()),
            ..Self::default()
        }
    }
}

/// A successful action on a target.
pub fn event(
    action: &str,
    actor: &Actor,
    target_type: &str,
    target_id: impl ToString,
    details: serde_json::Value,
) -> AuditRow {
    AuditRow {
        id: Uuid::new_v4(),
        occurred_at: Utc::now(),
        action: action.to_string(),
        actor_user_id: actor.user_id,
        actor_service: actor.service.clone(),
        target_type: Some(target_type.to_string()),
        target_id: Some(target_id.to_string()),
        workspace_id: None,
        client_address: actor.client_address.clone(),
        request_id: actor.request_id.clone(),
        outcome: "success".into(),
        details: details.to_string(),
    }
}
