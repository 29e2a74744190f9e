//! Conversions between domain rows and protobuf messages, and request parsing helpers.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Error;
use crate::model::{SessionRow, WorkspaceRole, WorkspaceRow};
use crate::proto::v1 as pb;
use crate::tokens::service::{IssuedTokens, WorkspaceScope};

/// A protobuf timestamp.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// Parses a required id field into its type (`UserId`, `WorkspaceId`, … or a bare `Uuid`).
pub fn uuid<T: From<Uuid>>(field: &str, value: &str) -> Result<T, Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    Uuid::parse_str(value)
        .map(T::from)
        .map_err(|_| Error::invalid(field, "must be a UUID"))
}

/// Parses an optional id field (empty = absent).
pub fn optional_uuid<T: From<Uuid>>(field: &str, value: &str) -> Result<Option<T>, Error> {
    if value.is_empty() {
        Ok(None)
    } else {
        uuid(field, value).map(Some)
    }
}

/// The message enum of a workspace role.
pub fn role(role: WorkspaceRole) -> pb::WorkspaceRole {
    match role {
        WorkspaceRole::Owner => pb::WorkspaceRole::Owner,
        WorkspaceRole::Admin => pb::WorkspaceRole::Admin,
        WorkspaceRole::Editor => pb::WorkspaceRole::Editor,
        WorkspaceRole::Viewer => pb::WorkspaceRole::Viewer,
    }
}

/// The revocation reason enum of a stored reason.
pub fn revocation_reason(reason: &str) -> pb::RevocationReason {
    match reason {
        "logout" => pb::RevocationReason::Logout,
        "admin" => pb::RevocationReason::Admin,
        "membership_changed" => pb::RevocationReason::MembershipChanged,
        "user_deactivated" => pb::RevocationReason::UserDeactivated,
        "token_reuse" => pb::RevocationReason::TokenReuse,
        "client_app_disabled" => pb::RevocationReason::ClientAppDisabled,
        "workspace_deleted" => pb::RevocationReason::WorkspaceDeleted,
        _ => pb::RevocationReason::Unspecified,
    }
}

/// A workspace message.
pub fn workspace(row: &WorkspaceRow) -> pb::Workspace {
    pb::Workspace {
        id: row.id.to_string(),
        name: row.name.clone(),
        slug: row.slug.clone(),
        description: row.description.clone(),
        created_at: Some(timestamp(row.created_at)),
        updated_at: Some(timestamp(row.updated_at)),
        member_count: 0,
    }
}

fn access(scope: &WorkspaceScope) -> pb::WorkspaceAccess {
    pb::WorkspaceAccess {
        workspace: Some(workspace(&scope.workspace)),
        role: role(scope.role) as i32,
        joined_at: None,
    }
}

/// A token pair message.
pub fn token_pair(issued: &IssuedTokens) -> pb::TokenPair {
    pb::TokenPair {
        access_token: issued.access_token.clone(),
        refresh_token: issued.refresh_token.clone(),
        token_type: "Bearer".into(),
        expires_in: issued.expires_in,
        access_token_expires_at: Some(timestamp(issued.access_expires_at)),
        refresh_token_expires_at: Some(timestamp(issued.session.expires_at)),
        session_id: issued.session.id.to_string(),
        workspace: issued.scope.as_ref().map(access),
    }
}

/// A session message.
pub fn session(row: &SessionRow, current_sid: &str) -> pb::Session {
    pb::Session {
        id: row.id.to_string(),
        user_id: row.user_id.to_string(),
        workspace_id: row.workspace_id.map(|w| w.to_string()).unwrap_or_default(),
        client_app_id: row.client_app_id.map(|c| c.to_string()).unwrap_or_default(),
        provider: row.provider.clone(),
        user_agent: row.user_agent.clone(),
        client_address: row.client_address.clone(),
        created_at: Some(timestamp(row.created_at)),
        last_used_at: Some(timestamp(row.last_used_at)),
        expires_at: Some(timestamp(row.expires_at)),
        revoked_at: row.revoked_at.map(timestamp),
        revoked_reason: row
            .revoked_reason
            .as_deref()
            .map_or(pb::RevocationReason::Unspecified, revocation_reason)
            as i32,
        current: row.id.to_string() == current_sid,
    }
}

/// Largest page any list RPC returns; larger requests are served this many.
pub const MAX_PAGE_SIZE: i32 = 500;

/// Page size from a request: 0 means the default of 50, values above [`MAX_PAGE_SIZE`] are
/// capped to it (common.proto, "Pagination"), a negative value is INVALID_ARGUMENT.
pub fn page_size(requested: i32) -> Result<i64, Error> {
    match requested {
        0 => Ok(50),
        1.. => Ok(i64::from(requested.min(MAX_PAGE_SIZE))),
        _ => Err(Error::invalid("page_size", "must not be negative")),
    }
}

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// A service app message (never the key, only its display prefix).
pub fn service_app(row: &crate::model::ServiceAppRow) -> pb::ServiceApp {
    pb::ServiceApp {
        id: row.id.to_string(),
        name: row.name.clone(),
        service_name: row.service_name.clone(),
        key_prefix: row.key_prefix.clone(),
        allowed_origins: json_list(&row.allowed_origins),
        is_active: row.is_active,
        created_at: Some(timestamp(row.created_at)),
        updated_at: Some(timestamp(row.updated_at)),
        last_used_at: row.last_used_at.map(timestamp),
        key_rotated_at: row.key_rotated_at.map(timestamp),
        previous_key_expires_at: row
            .previous_key_expires_at
            .filter(|at| *at > crate::model::now())
            .map(timestamp),
    }
}

/// A client app message.
pub fn client_app(row: &crate::model::ClientAppRow) -> pb::ClientApp {
    pb::ClientApp {
        id: row.id.to_string(),
        name: row.name.clone(),
        redirect_uris: json_list(&row.redirect_uris),
        services: json_list(&row.services),
        is_active: row.is_active,
        created_at: Some(timestamp(row.created_at)),
        updated_at: Some(timestamp(row.updated_at)),
    }
}

/// A non-negative duration from a request field.
pub fn duration(
    field: &str,
    value: Option<prost_types::Duration>,
) -> Result<Option<std::time::Duration>, Error> {
    match value {
        None => Ok(None),
        Some(d) if d.seconds >= 0 && (0..1_000_000_000).contains(&d.nanos) => Ok(Some(
            std::time::Duration::new(d.seconds as u64, d.nanos as u32),
        )),
        Some(_) => Err(Error::invalid(field, "must be a non-negative duration")),
    }
}

/// A user message.
pub fn user(row: &crate::model::UserRow) -> pb::User {
    pb::User {
        id: row.id.to_string(),
        email: row.email.clone(),
        name: row.name.clone(),
        avatar_url: row.avatar_url.clone(),
        is_active: row.is_active,
        is_admin: row.is_admin,
        created_at: Some(timestamp(row.created_at)),
        updated_at: Some(timestamp(row.updated_at)),
        last_login_at: None,
    }
}

/// A linked identity message.
pub fn identity(row: &crate::model::IdentityRow) -> pb::LinkedIdentity {
    pb::LinkedIdentity {
        provider: row.provider.clone(),
        subject: row.subject.clone(),
        email: row.email.clone(),
        linked_at: Some(timestamp(row.created_at)),
        last_used_at: Some(timestamp(row.last_login_at)),
    }
}

/// An optional timestamp field: unset is `None`; a value outside what a timestamp can hold
/// (before year 1 or after 9999, nanos outside 0..1e9) is INVALID_ARGUMENT naming `field`,
/// never read as unset.
pub fn instant_field(
    field: &str,
    value: Option<prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, Error> {
    let Some(t) = value else { return Ok(None) };
    let nanos = u32::try_from(t.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(|| Error::invalid(field, "nanos must be between 0 and 999999999"))?;
    // RFC 3339 range, as google.protobuf.Timestamp defines it.
    const MIN: i64 = -62_135_596_800;
    const MAX: i64 = 253_402_300_799;
    if !(MIN..=MAX).contains(&t.seconds) {
        return Err(Error::invalid(
            field,
            "must be between 0001-01-01 and 9999-12-31",
        ));
    }
    DateTime::from_timestamp(t.seconds, nanos)
        .map(Some)
        .ok_or_else(|| Error::invalid(field, "is not a valid timestamp"))
}

/// The JSON details of an audit event as a protobuf Struct.
pub fn details(json: &str) -> Option<prost_types::Struct> {
    fn value(v: serde_json::Value) -> prost_types::Value {
        use prost_types::value::Kind;
        let kind = match v {
            serde_json::Value::Null => Kind::NullValue(0),
            serde_json::Value::Bool(b) => Kind::BoolValue(b),
            serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
            serde_json::Value::String(s) => Kind::StringValue(s),
            serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
                values: items.into_iter().map(value).collect(),
            }),
            serde_json::Value::Object(map) => Kind::StructValue(prost_types::Struct {
                fields: map.into_iter().map(|(k, v)| (k, value(v))).collect(),
            }),
        };
        prost_types::Value { kind: Some(kind) }
    }
    match serde_json::from_str(json).ok()? {
        serde_json::Value::Object(map) => Some(prost_types::Struct {
            fields: map.into_iter().map(|(k, v)| (k, value(v))).collect(),
        }),
        _ => None,
    }
}

/// An audit event message.
pub fn audit_event(row: &crate::model::AuditRow) -> pb::AuditEvent {
    let outcome = match row.outcome.as_str() {
        "success" => pb::AuditOutcome::Success,
        "denied" => pb::AuditOutcome::Denied,
        "failure" => pb::AuditOutcome::Failure,
        _ => pb::AuditOutcome::Unspecified,
    };
    pb::AuditEvent {
        id: row.id.to_string(),
        occurred_at: Some(timestamp(row.occurred_at)),
        action: row.action.clone(),
        actor_user_id: row.actor_user_id.map(|u| u.to_string()).unwrap_or_default(),
        actor_service: row.actor_service.clone().unwrap_or_default(),
        target_type: row.target_type.clone().unwrap_or_default(),
        target_id: row.target_id.clone().unwrap_or_default(),
        workspace_id: row.workspace_id.map(|w| w.to_string()).unwrap_or_default(),
        client_address: row.client_address.clone().unwrap_or_default(),
        request_id: row.request_id.clone().unwrap_or_default(),
        outcome: outcome as i32,
        details: details(&row.details),
    }
}

/// The workspace role of a message enum (`None` for unspecified or unknown values).
pub fn workspace_role(value: i32) -> Option<WorkspaceRole> {
    match pb::WorkspaceRole::try_from(value).ok()? {
        pb::WorkspaceRole::Owner => Some(WorkspaceRole::Owner),
        pb::WorkspaceRole::Admin => Some(WorkspaceRole::Admin),
        pb::WorkspaceRole::Editor => Some(WorkspaceRole::Editor),
        pb::WorkspaceRole::Viewer => Some(WorkspaceRole::Viewer),
        pb::WorkspaceRole::Unspecified => None,
    }
}

/// A user's public profile.
pub fn user_summary(row: &crate::model::UserRow) -> pb::UserSummary {
    pb::UserSummary {
        id: row.id.to_string(),
        email: row.email.clone(),
        name: row.name.clone(),
        avatar_url: row.avatar_url.clone(),
    }
}

/// A membership message.
pub fn member(row: &crate::model::MemberRow) -> pb::Member {
    pb::Member {
        workspace_id: row.workspace_id.to_string(),
        user: Some(user_summary(&row.user)),
        role: role(row.role) as i32,
        joined_at: Some(timestamp(row.joined_at)),
        updated_at: Some(timestamp(row.updated_at)),
    }
}

/// An invitation message. An invitation by user id shows the id, never that user's email.
pub fn invitation(row: &crate::model::InvitationRow) -> pb::Invitation {
    pb::Invitation {
        id: row.id.to_string(),
        workspace_id: row.workspace_id.to_string(),
        email: match row.user_id {
            Some(_) => String::new(),
            None => row.email.clone(),
        },
        role: role(row.role) as i32,
        invited_by: row.invited_by.map(|u| u.to_string()).unwrap_or_default(),
        created_at: Some(timestamp(row.created_at)),
        expires_at: Some(timestamp(row.expires_at)),
        user_id: row.user_id.map(|u| u.to_string()).unwrap_or_default(),
        workspace_name: String::new(),
        workspace_slug: String::new(),
    }
}

/// A group message.
pub fn group(row: &crate::model::GroupRow) -> pb::Group {
    pb::Group {
        id: row.id.to_string(),
        workspace_id: row.workspace_id.to_string(),
        name: row.name.clone(),
        description: row.description.clone(),
        member_count: i32::try_from(row.member_count).unwrap_or(i32::MAX),
        created_at: Some(timestamp(row.created_at)),
        updated_at: Some(timestamp(row.updated_at)),
    }
}

/// A custom role message.
pub fn custom_role(row: &crate::model::RoleRow) -> pb::CustomRole {
    pb::CustomRole {
        id: row.id.to_string(),
        workspace_id: row.workspace_id.to_string(),
        service_name: row.service_name.clone(),
        name: row.name.clone(),
        description: row.description.clone(),
        actions: row.actions.clone(),
        assigned_user_count: i32::try_from(row.assigned).unwrap_or(i32::MAX),
        created_at: Some(timestamp(row.created_at)),
        updated_at: Some(timestamp(row.updated_at)),
    }
}

pub use crate::cursor::{decode as token_cursor, page};

/// A revocation log entry message.
pub fn revocation(row: &crate::model::RevocationRow) -> pb::Revocation {
    pb::Revocation {
        session_id: row.session_id.map(|s| s.to_string()).unwrap_or_default(),
        jti: row.jti.clone().unwrap_or_default(),
        // The nil user marks a revocation of every user's tokens of a workspace.
        user_id: if row.user_id.is_nil() {
            String::new()
        } else {
            row.user_id.to_string()
        },
        revoked_at: Some(timestamp(row.revoked_at)),
        reason: revocation_reason(&row.reason) as i32,
        revision: row.revision,
        expires_at: Some(timestamp(row.expires_at)),
        workspace_id: row.workspace_id.map(|w| w.to_string()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_out_of_range_are_refused_not_dropped() {
        let ts = |seconds, nanos| Some(prost_types::Timestamp { seconds, nanos });
        assert_eq!(instant_field("expires_at", None).unwrap(), None);
        assert!(
            instant_field("expires_at", ts(1_700_000_000, 0))
                .unwrap()
                .is_some()
        );
        for bad in [
            ts(i64::MAX, 0),
            ts(i64::MIN, 0),
            ts(0, -1),
            ts(0, 1_000_000_000),
        ] {
            let err = instant_field("expires_at", bad).unwrap_err();
            assert!(err.to_string().starts_with("expires_at: "), "{err}");
        }
    }

    #[test]
    fn page_sizes_default_cap_and_refuse_negatives() {
        assert_eq!(page_size(0).unwrap(), 50);
        assert_eq!(page_size(1).unwrap(), 1);
        assert_eq!(page_size(500).unwrap(), 500);
        assert_eq!(page_size(501).unwrap(), 500);
        assert_eq!(page_size(i32::MAX).unwrap(), 500);
        assert!(matches!(page_size(-1), Err(Error::InvalidArgument { .. })));
        assert!(matches!(
            page_size(i32::MIN),
            Err(Error::InvalidArgument { .. })
        ));
    }
}
