//! PermissionService requests parsed into domain values, and domain values as messages.

use super::super::convert;
use crate::authz::check::CheckItem;
use crate::authz::engine::Freshness;
use crate::authz::resources::NewGrant;
use crate::authz::watch::WatchEvent;
use crate::error::Error;
use crate::model::change::{Change, GranteeRef, ResourceKey};
use crate::model::{ConsistencyToken, Permission, Revision, Visibility};
use crate::model::{GrantRow, ResourceRow};
use crate::proto::v1 as pb;

/// Validates a read's consistency requirement. RBAC reads are answered from the database,
/// which is always at least as fresh as any token it issued.
pub(super) fn check_consistency(consistency: Option<&pb::Consistency>) -> Result<(), Error> {
    freshness(consistency).map(|_| ())
}

/// The freshness a read asks for.
pub(super) fn freshness(consistency: Option<&pb::Consistency>) -> Result<Freshness, Error> {
    use pb::consistency::Requirement;
    match consistency.and_then(|c| c.requirement.as_ref()) {
        None | Some(Requirement::MinimizeLatency(true)) => Ok(Freshness::MinimizeLatency),
        Some(Requirement::FullyConsistent(true)) => Ok(Freshness::Full),
        Some(Requirement::MinimizeLatency(false)) => Err(Error::invalid(
            "consistency.minimize_latency",
            "must be true when set",
        )),
        Some(Requirement::FullyConsistent(false)) => Err(Error::invalid(
            "consistency.fully_consistent",
            "must be true when set",
        )),
        Some(Requirement::AtLeastAsFresh(token)) => Ok(Freshness::AtLeast(
            ConsistencyToken::parse("consistency.at_least_as_fresh", token)?.revision(),
        )),
    }
}

/// A Check's question: the resource (of the calling service) and the action.
impl<'a> TryFrom<&'a pb::CheckRequest> for CheckItem<'a> {
    type Error = Error;

    fn try_from(r: &'a pb::CheckRequest) -> Result<Self, Error> {
        let resource = checked_ref(r.resource.as_ref(), || "resource".into())?;
        Ok(CheckItem {
            resource_type: &resource.resource_type,
            resource_id: &resource.resource_id,
            action: Permission::parse_field("action", &r.action)?,
        })
    }
}

/// What a Share grants: grantee, permission and an expiry in the future (kept to the
/// millisecond, as the index keeps it).
impl TryFrom<&pb::ShareRequest> for NewGrant {
    type Error = Error;

    fn try_from(r: &pb::ShareRequest) -> Result<Self, Error> {
        let grantee = grantee_of(r.grantee.as_ref())?;
        let permission = permission_of(r.permission)
            .ok_or_else(|| Error::invalid("permission", "is required (view or edit)"))?;
        let expires_at = convert::instant_field("expires_at", r.expires_at)?
            .and_then(|at| chrono::DateTime::from_timestamp_millis(at.timestamp_millis()));
        Ok(NewGrant {
            grantee,
            permission,
            expires_at,
        })
    }
}

/// Whether `value` is a resource type: `^[a-z][a-z0-9_]{0,63}$`.
pub(super) fn is_type(value: &str) -> bool {
    let mut chars = value.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && value.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

const TYPE_RULE: &str = "must match ^[a-z][a-z0-9_]{0,63}$";

/// Checks a resource type.
pub(super) fn validate_type(field: &str, value: &str) -> Result<(), Error> {
    if is_type(value) {
        Ok(())
    } else {
        Err(Error::invalid(field, TYPE_RULE))
    }
}

const ID_RULE: &str = "must be 1 to 256 bytes, without control characters";

/// Whether a resource id is 1 to 256 bytes without control characters (the databases store it
/// as text, and PostgreSQL's text holds no NUL).
fn is_id(value: &str) -> bool {
    !value.is_empty() && value.len() <= 256 && !value.chars().any(char::is_control)
}

/// Checks a resource id.
pub(super) fn validate_id(field: &str, value: &str) -> Result<(), Error> {
    if is_id(value) {
        Ok(())
    } else {
        Err(Error::invalid(field, ID_RULE))
    }
}

/// A validated resource reference. The field name is built only for an error (this runs on
/// every Check).
pub(super) fn checked_ref(
    reference: Option<&pb::ResourceRef>,
    field: impl Fn() -> String,
) -> Result<&pb::ResourceRef, Error> {
    let reference = reference.ok_or_else(|| Error::invalid(field(), "is required"))?;
    if !is_type(&reference.resource_type) {
        return Err(Error::invalid(
            format!("{}.resource_type", field()),
            TYPE_RULE,
        ));
    }
    if !is_id(&reference.resource_id) {
        return Err(Error::invalid(format!("{}.resource_id", field()), ID_RULE));
    }
    Ok(reference)
}

/// The key of a referenced resource of `service`.
pub(super) fn key_of(
    service: &str,
    reference: Option<&pb::ResourceRef>,
    field: &str,
) -> Result<ResourceKey, Error> {
    let reference = checked_ref(reference, || field.to_string())?;
    Ok(ResourceKey {
        service_name: service.to_string(),
        resource_type: reference.resource_type.clone(),
        resource_id: reference.resource_id.clone(),
    })
}

/// The visibility a request names (`default` when unspecified, or INVALID_ARGUMENT naming
/// `field` when there is none).
pub(super) fn visibility_of(
    value: i32,
    field: &str,
    default: Option<Visibility>,
) -> Result<Visibility, Error> {
    match pb::Visibility::try_from(value) {
        Ok(pb::Visibility::Private) => Ok(Visibility::Private),
        Ok(pb::Visibility::Workspace) => Ok(Visibility::Workspace),
        Ok(pb::Visibility::Unspecified) => {
            default.ok_or_else(|| Error::invalid(field, "is required (private or workspace)"))
        }
        Err(_) => Err(Error::invalid(field, "is not a visibility")),
    }
}

/// The message enum of a visibility.
pub(super) fn visibility(visibility: Visibility) -> pb::Visibility {
    match visibility {
        Visibility::Private => pb::Visibility::Private,
        Visibility::Workspace => pb::Visibility::Workspace,
    }
}

/// The message enum of a permission.
pub(super) fn permission(permission: Permission) -> pb::Permission {
    match permission {
        Permission::View => pb::Permission::View,
        Permission::Edit => pb::Permission::Edit,
    }
}

/// The permission a request names (`None` when unspecified or unknown).
pub(super) fn permission_of(value: i32) -> Option<Permission> {
    match pb::Permission::try_from(value).ok()? {
        pb::Permission::View => Some(Permission::View),
        pb::Permission::Edit => Some(Permission::Edit),
        pb::Permission::Unspecified => None,
    }
}

pub(super) fn grantee_of(grantee: Option<&pb::Grantee>) -> Result<GranteeRef, Error> {
    match grantee.and_then(|g| g.grantee.as_ref()) {
        Some(pb::grantee::Grantee::UserId(id)) => {
            Ok(GranteeRef::User(convert::uuid("grantee.user_id", id)?))
        }
        Some(pb::grantee::Grantee::GroupId(id)) => {
            Ok(GranteeRef::Group(convert::uuid("grantee.group_id", id)?))
        }
        None => Err(Error::invalid("grantee", "user_id or group_id is required")),
    }
}

pub(super) fn grantee_message(grantee: GranteeRef) -> pb::Grantee {
    pb::Grantee {
        grantee: Some(match grantee {
            GranteeRef::User(id) => pb::grantee::Grantee::UserId(id.to_string()),
            GranteeRef::Group(id) => pb::grantee::Grantee::GroupId(id.to_string()),
        }),
    }
}

pub(super) fn reference(resource_type: &str, resource_id: &str) -> pb::ResourceRef {
    pb::ResourceRef {
        resource_type: resource_type.to_string(),
        resource_id: resource_id.to_string(),
    }
}

pub(super) fn resource_message(row: &ResourceRow, grants: Vec<pb::Grant>) -> pb::Resource {
    let s = &row.state;
    pb::Resource {
        service_name: s.service_name.clone(),
        resource_type: s.resource_type.clone(),
        resource_id: s.resource_id.clone(),
        workspace_id: s.workspace_id.to_string(),
        owner_id: s.owner_id.map(|o| o.to_string()).unwrap_or_default(),
        visibility: visibility(s.visibility) as i32,
        parent: s.parent.as_ref().map(|(t, id)| reference(t, id)),
        created_at: Some(convert::timestamp(row.created_at)),
        updated_at: Some(convert::timestamp(row.updated_at)),
        grants,
    }
}

pub(super) fn grant_message(grant: &GrantRow) -> pb::Grant {
    pb::Grant {
        grantee: Some(grantee_message(grant.grantee)),
        permission: permission(grant.permission) as i32,
        expires_at: grant.expires_at.map(convert::timestamp),
        granted_by: grant.granted_by.map(|u| u.to_string()).unwrap_or_default(),
        created_at: Some(convert::timestamp(grant.created_at)),
        grantee_name: String::new(),
        grantee_email: String::new(),
    }
}

/// The stream message of a Watch event.
pub(super) fn watch_message(event: &WatchEvent) -> pb::WatchResponse {
    use pb::ChangeOperation as Op;
    let (revision, occurred_at, change, more_in_revision) = match event {
        WatchEvent::Checkpoint { revision, at } => {
            return pb::WatchResponse {
                revision: revision.0,
                consistency_token: revision.token().to_string(),
                operation: Op::Checkpoint as i32,
                occurred_at: Some(convert::timestamp(*at)),
                ..Default::default()
            };
        }
        WatchEvent::Change {
            revision,
            occurred_at,
            change,
            more_in_revision,
        } => (*revision, *occurred_at, change, *more_in_revision),
    };
    // Inside a batch, resuming from the token must deliver the rest of it: the token names
    // the revision before, until the batch's last change.
    let resume_at = if more_in_revision {
        Revision(revision.0 - 1)
    } else {
        revision
    };
    let mut m = pb::WatchResponse {
        revision: revision.0,
        consistency_token: resume_at.token().to_string(),
        more_in_revision,
        occurred_at: Some(convert::timestamp(occurred_at)),
        workspace_id: change
            .workspace_id()
            .map(|w| w.to_string())
            .unwrap_or_default(),
        ..Default::default()
    };
    let op = match change {
        Change::MemberSet {
            user_id,
            role,
            added,
            ..
        } => {
            m.user_id = user_id.to_string();
            m.role = convert::role(*role) as i32;
            if *added {
                Op::MemberAdded
            } else {
                Op::MemberRoleChanged
            }
        }
        Change::MemberRemoved { user_id, .. } => {
            m.user_id = user_id.to_string();
            Op::MemberRemoved
        }
        Change::WorkspaceDeleted { .. } => Op::WorkspaceDeleted,
        Change::GroupDeleted { group_id, .. } => {
            m.group_id = group_id.to_string();
            Op::GroupDeleted
        }
        Change::GroupMemberAdded {
            group_id, user_id, ..
        } => {
            m.group_id = group_id.to_string();
            m.user_id = user_id.to_string();
            Op::GroupMemberAdded
        }
        Change::GroupMemberRemoved {
            group_id, user_id, ..
        } => {
            m.group_id = group_id.to_string();
            m.user_id = user_id.to_string();
            Op::GroupMemberRemoved
        }
        Change::RoleChanged {
            role_id, actions, ..
        } => {
            m.role_id = role_id.to_string();
            m.actions = actions.clone();
            Op::RoleActionsChanged
        }
        Change::RoleDeleted { role_id, .. } => {
            m.role_id = role_id.to_string();
            Op::RoleDeleted
        }
        Change::RoleAssignment {
            role_id,
            user_id,
            assigned,
            ..
        } => {
            m.role_id = role_id.to_string();
            m.user_id = user_id.to_string();
            if *assigned {
                Op::RoleAssigned
            } else {
                Op::RoleUnassigned
            }
        }
        Change::ResourceSet { resource, created } => {
            m.resource = Some(reference(&resource.resource_type, &resource.resource_id));
            m.owner_id = resource.owner_id.map(|o| o.to_string()).unwrap_or_default();
            m.visibility = visibility(resource.visibility) as i32;
            m.parent = resource.parent.as_ref().map(|(t, id)| reference(t, id));
            if *created {
                Op::ResourceCreated
            } else {
                Op::ResourceUpdated
            }
        }
        Change::ResourceDeleted { key, .. } => {
            m.resource = Some(reference(&key.resource_type, &key.resource_id));
            Op::ResourceDeleted
        }
        Change::GrantSet {
            key,
            grantee,
            permission: level,
            expires_at,
            created,
            ..
        } => {
            m.resource = Some(reference(&key.resource_type, &key.resource_id));
            m.grantee = Some(grantee_message(*grantee));
            m.permission = permission(*level) as i32;
            m.expires_at = expires_at.map(convert::timestamp);
            if *created {
                Op::GrantCreated
            } else {
                Op::GrantUpdated
            }
        }
        Change::GrantRemoved { key, grantee, .. } => {
            m.resource = Some(reference(&key.resource_type, &key.resource_id));
            m.grantee = Some(grantee_message(*grantee));
            Op::GrantDeleted
        }
        // Not streamed: the engine leaves them out, or streams a batch's parts one by one.
        Change::ActionsRegistered { .. } | Change::ServiceDeleted { .. } | Change::Batch { .. } => {
            Op::Unspecified
        }
    };
    m.operation = op as i32;
    m
}
