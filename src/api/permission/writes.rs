//! Resource and grant writes parsed into domain operations, alone or as one of a WriteBatch.

use super::super::convert;
use super::messages::{
    grantee_of, key_of, permission_of, validate_id, validate_type, visibility_of,
};
use crate::authz::resources::{NewGrant, WriteOp};
use crate::error::Error;
use crate::model::change::{GranteeRef, ResourceKey, ResourceState};
use crate::model::{Permission, Visibility};
use crate::proto::v1 as pb;

/// A RegisterResource request: the resource's state and whether to upsert.
pub(super) fn register_parts(
    service: &str,
    r: pb::RegisterResourceRequest,
) -> Result<(ResourceState, bool), Error> {
    validate_type("resource_type", &r.resource_type)?;
    validate_id("resource_id", &r.resource_id)?;
    let workspace_id = convert::uuid("workspace_id", &r.workspace_id)?;
    let owner_id = convert::optional_uuid("owner_id", &r.owner_id)?;
    let visibility = visibility_of(r.visibility, "visibility", Some(Visibility::Workspace))?;
    let parent = match &r.parent {
        Some(p) => {
            let key = key_of(service, Some(p), "parent")?;
            Some((key.resource_type, key.resource_id))
        }
        None => None,
    };
    let state = ResourceState {
        service_name: service.to_string(),
        resource_type: r.resource_type,
        resource_id: r.resource_id,
        workspace_id,
        owner_id,
        visibility,
        parent,
    };
    Ok((state, r.upsert))
}

/// An Unshare request: the resource, whose grant, and of which level if only one.
pub(super) fn unshare_parts(
    service: &str,
    r: &pb::UnshareRequest,
) -> Result<(ResourceKey, GranteeRef, Option<Permission>), Error> {
    let key = key_of(service, r.resource.as_ref(), "resource")?;
    let grantee = grantee_of(r.grantee.as_ref())?;
    let permission = match r.permission {
        0 => None,
        value => Some(
            permission_of(value)
                .ok_or_else(|| Error::invalid("permission", "is not a permission"))?,
        ),
    };
    Ok((key, grantee, permission))
}

/// One operation of a WriteBatch; its errors name fields within the operation (`resource`),
/// for the caller to place (`operations[3].share.resource`).
pub(super) fn write_op(service: &str, op: pb::WriteOperation) -> Result<WriteOp, Error> {
    use pb::write_operation::Operation;
    let Some(op) = op.operation else {
        return Err(Error::invalid(
            "operation",
            "is required: one of register, delete, share, unshare, set_visibility, set_owner",
        ));
    };
    Ok(match op {
        Operation::Register(r) => {
            let (state, upsert) = register_parts(service, r)?;
            WriteOp::Register { state, upsert }
        }
        Operation::Delete(r) => WriteOp::Delete {
            key: key_of(service, r.resource.as_ref(), "resource")?,
            allow_missing: r.allow_missing,
        },
        Operation::Share(r) => WriteOp::Share {
            key: key_of(service, r.resource.as_ref(), "resource")?,
            grant: NewGrant::try_from(&r)?,
        },
        Operation::Unshare(r) => {
            let (key, grantee, permission) = unshare_parts(service, &r)?;
            WriteOp::Unshare {
                key,
                grantee,
                permission,
            }
        }
        Operation::SetVisibility(r) => WriteOp::SetVisibility {
            key: key_of(service, r.resource.as_ref(), "resource")?,
            visibility: visibility_of(r.visibility, "visibility", None)?,
        },
        Operation::SetOwner(r) => WriteOp::SetOwner {
            key: key_of(service, r.resource.as_ref(), "resource")?,
            owner: convert::optional_uuid("owner_id", &r.owner_id)?,
        },
    })
}

/// The operation kind's name in the request (`share`), for naming a field of an unparsed one.
pub(super) fn kind_name(op: &pb::WriteOperation) -> &'static str {
    use pb::write_operation::Operation;
    match &op.operation {
        None => "",
        Some(Operation::Register(_)) => "register",
        Some(Operation::Delete(_)) => "delete",
        Some(Operation::Share(_)) => "share",
        Some(Operation::Unshare(_)) => "unshare",
        Some(Operation::SetVisibility(_)) => "set_visibility",
        Some(Operation::SetOwner(_)) => "set_owner",
    }
}
