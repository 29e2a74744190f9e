//! `sentinel.v1.PermissionService`: resources and grants (writes through the store, reads
//! from the in-memory index), Watch, and the RBAC RPCs (service actions, CheckAction,
//! ListUserActions).

use std::pin::Pin;
use std::time::Duration;

use chrono::Utc;
use futures::Stream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::convert::{self, page, page_size, token_cursor};
use super::credentials;
use crate::app::AppState;
use crate::audit;
use crate::authz::change::{Change, GranteeRef, ResourceKey, ResourceState};
use crate::authz::consistency;
use crate::authz::engine::Freshness;
use crate::authz::index::{Action, Lookup};
use crate::error::Error;
use crate::proto::v1 as pb;
use crate::proto::v1::permission_service_server::PermissionService;
use crate::store::{GrantRow, ResourceRow, ResourceUpdate};

/// Most items in one CheckBulk call.
const MAX_BULK: usize = 1000;
/// How long a lookup snapshot (the pages after the first) stays readable.
const LOOKUP_SNAPSHOT_TTL: Duration = Duration::from_secs(600);
/// Idle Watch streams get a checkpoint at least this often.
const WATCH_CHECKPOINT: Duration = Duration::from_secs(30);

/// Handlers of `sentinel.v1.PermissionService`.
pub struct PermissionApi {
    state: AppState,
}

impl PermissionApi {
    /// Whether `user` of `service` may pin one more lookup snapshot now (at most
    /// [`MAX_LIVE_SNAPSHOTS`] within one snapshot lifetime), bounding the cache they fill.
    async fn admit_snapshot(&self, service: &str, user: Uuid) -> Result<bool, Error> {
        let counted = self
            .state
            .cache
            .hit(
                &format!("lookup-snapshots:{service}:{user}"),
                LOOKUP_SNAPSHOT_TTL,
            )
            .await
            .map_err(|_| Error::Unavailable)?;
        Ok(counted.count <= MAX_LIVE_SNAPSHOTS)
    }

    /// Handlers over the shared application state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// Validates a read's consistency requirement. RBAC reads are answered from the database,
/// which is always at least as fresh as any token it issued.
fn check_consistency(consistency: Option<&pb::Consistency>) -> Result<(), Error> {
    freshness(consistency).map(|_| ())
}

/// The freshness a read asks for.
fn freshness(consistency: Option<&pb::Consistency>) -> Result<Freshness, Error> {
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
        Some(Requirement::AtLeastAsFresh(token)) => {
            consistency::decode("consistency.at_least_as_fresh", token).map(Freshness::AtLeast)
        }
    }
}

/// The user and workspace of a dual-tier RBAC read: the request's workspace, or the token's.
fn user_and_workspace<T>(
    request: &Request<T>,
    workspace_id: &str,
) -> Result<(uuid::Uuid, uuid::Uuid), Error> {
    let user = credentials::user_id(request)?.ok_or(Error::Unauthenticated(
        crate::tokens::service::INVALID_CREDENTIAL,
    ))?;
    let workspace = match convert::optional_uuid("workspace_id", workspace_id)? {
        Some(id) => id,
        None => credentials::token_workspace(request)?.ok_or_else(|| {
            Error::invalid(
                "workspace_id",
                "is required when the token names no workspace",
            )
        })?,
    };
    if credentials::authz_workspace(request)?.is_some_and(|w| w != workspace) {
        return Err(Error::PermissionDenied(
            "workspace_id: the authz token is for another workspace".into(),
        ));
    }
    Ok((user, workspace))
}

/// Whether `value` is a resource type: `^[a-z][a-z0-9_]{0,63}$`.
fn is_type(value: &str) -> bool {
    let mut chars = value.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && value.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

const TYPE_RULE: &str = "must match ^[a-z][a-z0-9_]{0,63}$";

/// Checks a resource type.
fn validate_type(field: &str, value: &str) -> Result<(), Error> {
    if is_type(value) {
        Ok(())
    } else {
        Err(Error::invalid(field, TYPE_RULE))
    }
}

/// Checks a resource id: 1 to 256 bytes.
fn validate_id(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() || value.len() > 256 {
        return Err(Error::invalid(field, "must be 1 to 256 bytes"));
    }
    Ok(())
}

/// A validated resource reference. The field name is built only for an error (this runs on
/// every Check).
fn checked_ref(
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
    if reference.resource_id.is_empty() || reference.resource_id.len() > 256 {
        return Err(Error::invalid(
            format!("{}.resource_id", field()),
            "must be 1 to 256 bytes",
        ));
    }
    Ok(reference)
}

/// The key of a referenced resource of `service`.
fn key_of(
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

fn visibility_name(
    value: i32,
    field: &str,
    default: Option<&'static str>,
) -> Result<&'static str, Error> {
    match pb::Visibility::try_from(value) {
        Ok(pb::Visibility::Private) => Ok("private"),
        Ok(pb::Visibility::Workspace) => Ok("workspace"),
        Ok(pb::Visibility::Unspecified) => {
            default.ok_or_else(|| Error::invalid(field, "is required (private or workspace)"))
        }
        Err(_) => Err(Error::invalid(field, "is not a visibility")),
    }
}

fn visibility(name: &str) -> pb::Visibility {
    if name == "private" {
        pb::Visibility::Private
    } else {
        pb::Visibility::Workspace
    }
}

fn permission(name: &str) -> pb::Permission {
    if name == "edit" {
        pb::Permission::Edit
    } else {
        pb::Permission::View
    }
}

fn permission_name(value: i32) -> Option<&'static str> {
    match pb::Permission::try_from(value).ok()? {
        pb::Permission::View => Some("view"),
        pb::Permission::Edit => Some("edit"),
        pb::Permission::Unspecified => None,
    }
}

fn grantee_of(grantee: Option<&pb::Grantee>) -> Result<GranteeRef, Error> {
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

fn grantee_message(grantee: GranteeRef) -> pb::Grantee {
    pb::Grantee {
        grantee: Some(match grantee {
            GranteeRef::User(id) => pb::grantee::Grantee::UserId(id.to_string()),
            GranteeRef::Group(id) => pb::grantee::Grantee::GroupId(id.to_string()),
        }),
    }
}

fn reference(resource_type: &str, resource_id: &str) -> pb::ResourceRef {
    pb::ResourceRef {
        resource_type: resource_type.to_string(),
        resource_id: resource_id.to_string(),
    }
}

fn resource_message(row: &ResourceRow, grants: Vec<pb::Grant>) -> pb::Resource {
    let s = &row.state;
    pb::Resource {
        service_name: s.service_name.clone(),
        resource_type: s.resource_type.clone(),
        resource_id: s.resource_id.clone(),
        workspace_id: s.workspace_id.to_string(),
        owner_id: s.owner_id.map(|o| o.to_string()).unwrap_or_default(),
        visibility: visibility(&s.visibility) as i32,
        parent: s.parent.as_ref().map(|(t, id)| reference(t, id)),
        created_at: Some(convert::timestamp(row.created_at)),
        updated_at: Some(convert::timestamp(row.updated_at)),
        grants,
    }
}

fn grant_message(grant: &GrantRow) -> pb::Grant {
    pb::Grant {
        grantee: Some(grantee_message(grant.grantee)),
        permission: permission(&grant.permission) as i32,
        expires_at: grant.expires_at.map(convert::timestamp),
        granted_by: grant.granted_by.map(|u| u.to_string()).unwrap_or_default(),
        created_at: Some(convert::timestamp(grant.created_at)),
        grantee_name: String::new(),
        grantee_email: String::new(),
    }
}

/// The user and workspace a Check-like read is about: the token's.
fn reader<T>(request: &Request<T>) -> Result<(Uuid, Option<Uuid>), Error> {
    let user = credentials::user_id(request)?.ok_or(Error::Unauthenticated(
        crate::tokens::service::INVALID_CREDENTIAL,
    ))?;
    Ok((user, credentials::token_workspace(request)?))
}

/// A lookup's remaining pages, kept in the cache under a random id.
#[derive(serde::Serialize, serde::Deserialize)]
struct LookupSnapshot {
    /// Who and what it answers (a token is only good for the same question).
    question: String,
    revision: i64,
    ids: Vec<String>,
}

/// The page token of a lookup: the snapshot and the offset of the next page, or (for answers
/// too large to copy, or past the live-snapshot cap) the last id served, to continue after.
#[derive(serde::Serialize, serde::Deserialize)]
struct LookupCursor {
    #[serde(default)]
    snapshot: String,
    #[serde(default)]
    offset: usize,
    /// Keyset mode: continue after this id, at the current revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
    /// Keyset mode: the lookup the token belongs to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    question: String,
}

/// Largest answer copied into a pinned snapshot; larger ones page by keyset.
const MAX_SNAPSHOT_IDS: usize = 100_000;
/// Pinned snapshots one (service, user) may have live at once; more page by keyset.
const MAX_LIVE_SNAPSHOTS: u64 = 16;

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

impl PermissionApi {
    /// Applies a local write to this process's index, nudges the replicas, and encodes the
    /// write's token.
    async fn written(&self, revision: i64) -> Result<String, Error> {
        self.state.engine.written(revision).await?;
        Ok(consistency::encode(revision))
    }

    /// SetVisibility / SetOwner: the update with its audit event; the resource and the token.
    async fn update(
        &self,
        actor: &audit::Actor,
        key: &ResourceKey,
        update: ResourceUpdate,
        action: &str,
        details: serde_json::Value,
    ) -> Result<(pb::Resource, String), Error> {
        let event = audit::event(
            action,
            actor,
            "resource",
            format!("{}/{}", key.resource_type, key.resource_id),
            details,
        );
        let (row, revision) = self
            .state
            .store
            .update_resource(key, &update, &event)
            .await?;
        Ok((
            resource_message(&row, Vec::new()),
            self.written(revision).await?,
        ))
    }

    /// The resource, NOT_FOUND when absent.
    async fn existing(&self, key: &ResourceKey) -> Result<ResourceRow, Error> {
        self.state
            .store
            .resource(key)
            .await?
            .ok_or_else(|| Error::NotFound("resource".into()))
    }

    /// For a dual-tier share: the acting user must own the resource or be admin+ of its
    /// workspace, and act in that workspace.
    async fn may_share<T>(
        &self,
        request: &Request<T>,
        row: &ResourceRow,
    ) -> Result<Option<Uuid>, Error> {
        let Some(user) = credentials::user_id(request)? else {
            return Ok(None); // the service itself
        };
        let workspace = credentials::token_workspace(request)?;
        if workspace != Some(row.state.workspace_id) {
            // Say what to fix: the user may well be the owner, but acts from another workspace.
            return Err(Error::PermissionDenied(
                "the token's workspace does not match the resource's workspace; use a token \
                 scoped to the resource's workspace (Refresh or SwitchWorkspace with its id)"
                    .into(),
            ));
        }
        let role = self
            .state
            .store
            .membership_role(row.state.workspace_id, user)
            .await?;
        let allowed = row.state.owner_id == Some(user)
            || role
                .as_deref()
                .is_some_and(|r| crate::tenancy::rank(r) >= crate::tenancy::rank("admin"));
        if !allowed {
            return Err(Error::PermissionDenied(
                "only the resource's owner or a workspace admin may change its grants".into(),
            ));
        }
        Ok(Some(user))
    }
}

#[tonic::async_trait]
impl PermissionService for PermissionApi {
    type WatchStream = WatchStream;

    async fn register_resource(
        &self,
        request: Request<pb::RegisterResourceRequest>,
    ) -> Result<Response<pb::RegisterResourceResponse>, Status> {
        let service = credentials::service(&request)?;
        let actor = credentials::actor(&request);
        let r = request.into_inner();
        validate_type("resource_type", &r.resource_type)?;
        validate_id("resource_id", &r.resource_id)?;
        let workspace_id = convert::uuid("workspace_id", &r.workspace_id)?;
        let owner_id = convert::optional_uuid("owner_id", &r.owner_id)?;
        let visibility = visibility_name(r.visibility, "visibility", Some("workspace"))?;
        let parent = match &r.parent {
            Some(p) => {
                let key = key_of(&service.service_name, Some(p), "parent")?;
                if key.resource_type == r.resource_type && key.resource_id == r.resource_id {
                    return Err(Error::FailedPrecondition(
                        "a resource cannot be its own parent".into(),
                    )
                    .into());
                }
                Some((key.resource_type, key.resource_id))
            }
            None => None,
        };
        let state = ResourceState {
            service_name: service.service_name.clone(),
            resource_type: r.resource_type.clone(),
            resource_id: r.resource_id.clone(),
            workspace_id,
            owner_id,
            visibility: visibility.to_string(),
            parent,
        };
        let mut event = audit::event(
            "resource.registered",
            &actor,
            "resource",
            format!("{}/{}", r.resource_type, r.resource_id),
            serde_json::json!({ "upsert": r.upsert, "visibility": visibility }),
        );
        event.workspace_id = Some(workspace_id);
        let (row, created, revision) = self
            .state
            .store
            .register_resource(&state, r.upsert, &event)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::RegisterResourceResponse {
            resource: Some(resource_message(&row, Vec::new())),
            created,
            consistency_token: self.written(revision).await?,
        }))
    }

    async fn delete_resource(
        &self,
        request: Request<pb::DeleteResourceRequest>,
    ) -> Result<Response<pb::DeleteResourceResponse>, Status> {
        let service = credentials::service(&request)?;
        let actor = credentials::actor(&request);
        let r = request.into_inner();
        let key = key_of(&service.service_name, r.resource.as_ref(), "resource")?;
        let event = audit::event(
            "resource.deleted",
            &actor,
            "resource",
            format!("{}/{}", key.resource_type, key.resource_id),
            serde_json::json!({}),
        );
        match self
            .state
            .store
            .delete_resource(&key, &event)
            .await
            .map_err(Error::from)?
        {
            Some(revision) => Ok(Response::new(pb::DeleteResourceResponse {
                deleted: true,
                consistency_token: self.written(revision).await?,
            })),
            None if r.allow_missing => Ok(Response::new(pb::DeleteResourceResponse {
                deleted: false,
                consistency_token: consistency::encode(
                    self.state
                        .store
                        .current_revision()
                        .await
                        .map_err(Error::from)?,
                ),
            })),
            None => Err(Error::NotFound("resource".into()).into()),
        }
    }

    async fn set_visibility(
        &self,
        request: Request<pb::SetVisibilityRequest>,
    ) -> Result<Response<pb::SetVisibilityResponse>, Status> {
        let service = credentials::service(&request)?;
        let actor = credentials::actor(&request);
        let r = request.into_inner();
        let key = key_of(&service.service_name, r.resource.as_ref(), "resource")?;
        let visibility = visibility_name(r.visibility, "visibility", None)?;
        let (resource, consistency_token) = self
            .update(
                &actor,
                &key,
                ResourceUpdate::Visibility(visibility.into()),
                "resource.visibility_set",
                serde_json::json!({ "visibility": visibility }),
            )
            .await?;
        Ok(Response::new(pb::SetVisibilityResponse {
            resource: Some(resource),
            consistency_token,
        }))
    }

    async fn set_owner(
        &self,
        request: Request<pb::SetOwnerRequest>,
    ) -> Result<Response<pb::SetOwnerResponse>, Status> {
        let service = credentials::service(&request)?;
        let actor = credentials::actor(&request);
        let r = request.into_inner();
        let key = key_of(&service.service_name, r.resource.as_ref(), "resource")?;
        let owner = convert::optional_uuid("owner_id", &r.owner_id)?;
        if let Some(owner) = owner
            && self
                .state
                .store
                .user_by_id(owner)
                .await
                .map_err(Error::from)?
                .is_none()
        {
            return Err(Error::NotFound("user".into()).into());
        }
        let (resource, consistency_token) = self
            .update(
                &actor,
                &key,
                ResourceUpdate::Owner(owner),
                "resource.owner_set",
                serde_json::json!({ "owner_id": owner }),
            )
            .await?;
        Ok(Response::new(pb::SetOwnerResponse {
            resource: Some(resource),
            consistency_token,
        }))
    }

    async fn share(
        &self,
        request: Request<pb::ShareRequest>,
    ) -> Result<Response<pb::ShareResponse>, Status> {
        let service = credentials::service(&request)?;
        let actor = credentials::actor(&request);
        let r = request.get_ref();
        let key = key_of(&service.service_name, r.resource.as_ref(), "resource")?;
        let grantee = grantee_of(r.grantee.as_ref())?;
        let level = permission_name(r.permission)
            .ok_or_else(|| Error::invalid("permission", "is required (view or edit)"))?;
        let now = Utc::now();
        let expires_at = match convert::instant_field("expires_at", r.expires_at)? {
            Some(at) if at <= now => {
                return Err(Error::invalid("expires_at", "must be in the future").into());
            }
            // Millisecond precision, as the index keeps it.
            Some(at) => chrono::DateTime::from_timestamp_millis(at.timestamp_millis()),
            None => None,
        };
        let row = self.existing(&key).await?;
        let granted_by = self.may_share(&request, &row).await?;
        let mut event = audit::event(
            "resource.shared",
            &actor,
            "resource",
            format!("{}/{}", key.resource_type, key.resource_id),
            serde_json::json!({ "grantee": grantee, "permission": level, "expires_at": expires_at }),
        );
        event.workspace_id = Some(row.state.workspace_id);
        let grant = GrantRow {
            grantee,
            permission: level.to_string(),
            expires_at,
            granted_by,
            created_at: now,
        };
        let (grant, changed, revision) = self
            .state
            .store
            .share(&key, &grant, &event)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::ShareResponse {
            grant: Some(grant_message(&grant)),
            changed,
            consistency_token: self.written(revision).await?,
        }))
    }

    async fn unshare(
        &self,
        request: Request<pb::UnshareRequest>,
    ) -> Result<Response<pb::UnshareResponse>, Status> {
        let service = credentials::service(&request)?;
        let actor = credentials::actor(&request);
        let r = request.get_ref();
        let key = key_of(&service.service_name, r.resource.as_ref(), "resource")?;
        let grantee = grantee_of(r.grantee.as_ref())?;
        let level = match r.permission {
            0 => None,
            value => Some(
                permission_name(value)
                    .ok_or_else(|| Error::invalid("permission", "is not a permission"))?,
            ),
        };
        let row = self.existing(&key).await?;
        self.may_share(&request, &row).await?;
        let mut event = audit::event(
            "resource.unshared",
            &actor,
            "resource",
            format!("{}/{}", key.resource_type, key.resource_id),
            serde_json::json!({ "grantee": grantee }),
        );
        event.workspace_id = Some(row.state.workspace_id);
        let (removed, revision) = self
            .state
            .store
            .unshare(&key, grantee, level, &event)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::UnshareResponse {
            removed,
            consistency_token: self.written(revision).await?,
        }))
    }

    async fn get_resource(
        &self,
        request: Request<pb::GetResourceRequest>,
    ) -> Result<Response<pb::GetResourceResponse>, Status> {
        let service = credentials::service(&request)?;
        let r = request.into_inner();
        let key = key_of(&service.service_name, r.resource.as_ref(), "resource")?;
        let row = self.existing(&key).await?;
        let now = Utc::now();
        let mut grants = Vec::new();
        for grant in self.state.store.grants(row.id).await.map_err(Error::from)? {
            if grant.expires_at.is_some_and(|at| at <= now) {
                continue;
            }
            let mut message = grant_message(&grant);
            if r.enrich {
                match grant.grantee {
                    GranteeRef::User(id) => {
                        if let Some(user) =
                            self.state.store.user_by_id(id).await.map_err(Error::from)?
                        {
                            message.grantee_name = user.name;
                            message.grantee_email = user.email;
                        }
                    }
                    GranteeRef::Group(id) => {
                        if let Some(group) =
                            self.state.store.group(id).await.map_err(Error::from)?
                        {
                            message.grantee_name = group.name;
                        }
                    }
                }
            }
            grants.push(message);
        }
        Ok(Response::new(pb::GetResourceResponse {
            resource: Some(resource_message(&row, grants)),
        }))
    }

    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let service = credentials::service(&request)?;
        let (user, workspace) = reader(&request)?;
        let r = request.into_inner();
        let resource = checked_ref(r.resource.as_ref(), || "resource".into())?;
        let action = Action::parse("action", &r.action)?;
        self.state
            .engine
            .ensure(freshness(r.consistency.as_ref())?)
            .await?;
        let now = Utc::now().timestamp_millis();
        let index = self.state.engine.read();
        let allowed = workspace.is_some_and(|w| {
            index.check(
                &service.service_name,
                &resource.resource_type,
                &resource.resource_id,
                user,
                w,
                action,
                now,
            )
        });
        let revision = index.revision();
        drop(index);
        Ok(Response::new(pb::CheckResponse {
            allowed,
            consistency_token: consistency::encode(revision),
        }))
    }

    async fn check_bulk(
        &self,
        request: Request<pb::CheckBulkRequest>,
    ) -> Result<Response<pb::CheckBulkResponse>, Status> {
        let service = credentials::service(&request)?;
        let (user, workspace) = reader(&request)?;
        let r = request.into_inner();
        if r.items.is_empty() || r.items.len() > MAX_BULK {
            return Err(Error::invalid("items", "must hold 1 to 1000 checks").into());
        }
        self.state
            .engine
            .ensure(freshness(r.consistency.as_ref())?)
            .await?;
        let now = Utc::now().timestamp_millis();
        let index = self.state.engine.read();
        let results = r
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let parsed = checked_ref(item.resource.as_ref(), || format!("items[{i}].resource"))
                    .and_then(|resource| {
                        let action = match item.action.as_str() {
                            "view" => Ok(Action::View),
                            "edit" => Ok(Action::Edit),
                            _ => Action::parse(&format!("items[{i}].action"), &item.action),
                        };
                        action.map(|a| (resource, a))
                    });
                match parsed {
                    Ok((resource, action)) => pb::CheckBulkResult {
                        allowed: workspace.is_some_and(|w| {
                            index.check(
                                &service.service_name,
                                &resource.resource_type,
                                &resource.resource_id,
                                user,
                                w,
                                action,
                                now,
                            )
                        }),
                        error: None,
                    },
                    Err(err) => pb::CheckBulkResult {
                        allowed: false,
                        error: Some(pb::CheckBulkItemError {
                            code: "INVALID_ARGUMENT".into(),
                            message: err.to_string(),
                        }),
                    },
                }
            })
            .collect();
        let revision = index.revision();
        drop(index);
        Ok(Response::new(pb::CheckBulkResponse {
            results,
            consistency_token: consistency::encode(revision),
        }))
    }

    async fn lookup_resources(
        &self,
        request: Request<pb::LookupResourcesRequest>,
    ) -> Result<Response<pb::LookupResourcesResponse>, Status> {
        let service = credentials::service(&request)?;
        let (user, token_workspace) = reader(&request)?;
        let r = request.into_inner();
        validate_type("resource_type", &r.resource_type)?;
        let action = Action::parse("action", &r.action)?;
        let limit = page_size(r.page_size)? as usize;
        let workspace = match convert::optional_uuid("workspace_id", &r.workspace_id)? {
            Some(w) if Some(w) != token_workspace => {
                return Err(Error::PermissionDenied(
                    "workspace_id must be the token's workspace".into(),
                )
                .into());
            }
            Some(w) => w,
            None => token_workspace.ok_or_else(|| {
                Error::invalid(
                    "workspace_id",
                    "is required when the token names no workspace",
                )
            })?,
        };
        let question = format!(
            "{}|{}|{}|{}|{}",
            service.service_name, r.resource_type, r.action, user, workspace
        );
        // Later pages read the snapshot the first page pinned (keyset tokens recompute).
        let cursor = token_cursor::<LookupCursor>(&r.page_token)?;
        let after = match &cursor {
            Some(c) if c.snapshot.is_empty() => {
                if c.question != question || c.after.is_none() {
                    return Err(Error::invalid(
                        "page_token",
                        "belongs to another lookup (same type, action, user and workspace \
                         required)",
                    )
                    .into());
                }
                c.after.clone()
            }
            _ => None,
        };
        if let Some(cursor) = cursor.filter(|c| !c.snapshot.is_empty()) {
            let expired = || {
                Error::FailedPrecondition(
                    "the lookup snapshot expired; restart from the first page".into(),
                )
            };
            let bytes = self
                .state
                .cache
                .get(&format!("lookup:{}", cursor.snapshot))
                .await
                .map_err(|_| Error::Unavailable)?
                .ok_or_else(expired)?;
            let snapshot: LookupSnapshot = serde_json::from_slice(&bytes).map_err(|_| expired())?;
            if snapshot.question != question {
                return Err(Error::invalid(
                    "page_token",
                    "belongs to another lookup (same type, action, user and workspace required)",
                )
                .into());
            }
            if cursor.offset > snapshot.ids.len() {
                return Err(Error::invalid("page_token", "is not a token of this lookup").into());
            }
            let end = cursor.offset.saturating_add(limit).min(snapshot.ids.len());
            let ids = snapshot
                .ids
                .get(cursor.offset..end)
                .unwrap_or_default()
                .to_vec();
            let next_page_token = if end < snapshot.ids.len() {
                convert::cursor_token(&LookupCursor {
                    snapshot: cursor.snapshot,
                    offset: end,
                    after: None,
                    question: String::new(),
                })
            } else {
                String::new()
            };
            return Ok(Response::new(pb::LookupResourcesResponse {
                resource_ids: ids,
                has_full_access: false,
                next_page_token,
                consistency_token: consistency::encode(snapshot.revision),
            }));
        }
        self.state
            .engine
            .ensure(freshness(r.consistency.as_ref())?)
            .await?;
        let now = Utc::now().timestamp_millis();
        let (answer, revision) = {
            let index = self.state.engine.read();
            (
                index.lookup(
                    &service.service_name,
                    &r.resource_type,
                    user,
                    workspace,
                    action,
                    now,
                ),
                index.revision(),
            )
        };
        let ids: Vec<String> = match answer {
            Lookup::FullAccess => {
                return Ok(Response::new(pb::LookupResourcesResponse {
                    resource_ids: Vec::new(),
                    has_full_access: true,
                    next_page_token: String::new(),
                    consistency_token: consistency::encode(revision),
                }));
            }
            Lookup::Ids(ids) => ids.iter().map(|id| id.to_string()).collect(),
        };
        let mut ids = ids;
        if !ids.is_sorted() {
            ids.sort_unstable();
        }
        if let Some(after) = &after {
            let start = ids.partition_point(|id| id <= after);
            ids.drain(..start);
        }
        let keyset = ids.len() > limit
            && (after.is_some()
                || ids.len() > MAX_SNAPSHOT_IDS
                || !self.admit_snapshot(&service.service_name, user).await?);
        let next_page_token = if keyset {
            convert::cursor_token(&LookupCursor {
                snapshot: String::new(),
                offset: 0,
                after: Some(ids[limit - 1].clone()),
                question,
            })
        } else if ids.len() > limit {
            let snapshot = Uuid::new_v4().to_string();
            let stored = serde_json::to_vec(&LookupSnapshot {
                question,
                revision,
                ids: ids.clone(),
            })
            .map_err(|_| Error::Internal)?;
            self.state
                .cache
                .set(&format!("lookup:{snapshot}"), &stored, LOOKUP_SNAPSHOT_TTL)
                .await
                .map_err(|_| Error::Unavailable)?;
            convert::cursor_token(&LookupCursor {
                snapshot,
                offset: limit,
                after: None,
                question: String::new(),
            })
        } else {
            String::new()
        };
        ids.truncate(limit);
        Ok(Response::new(pb::LookupResourcesResponse {
            resource_ids: ids,
            has_full_access: false,
            next_page_token,
            consistency_token: consistency::encode(revision),
        }))
    }

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let service = credentials::service(&request)?;
        let key = credentials::header(&request, "x-service-key");
        let r = request.into_inner();
        for (i, t) in r.resource_types.iter().enumerate() {
            validate_type(&format!("resource_types[{i}]"), t)?;
        }
        let slot = self.state.streams.acquire(service.id)?;
        let latest = self
            .state
            .store
            .current_revision()
            .await
            .map_err(Error::from)?;
        let cursor = if r.start_token.is_empty() {
            latest
        } else {
            let start = consistency::decode("start_token", &r.start_token)?;
            if start > latest {
                return Err(
                    Error::invalid("start_token", "names a revision newer than any write").into(),
                );
            }
            start
        };
        let watch = ChangeWatch {
            state: self.state.clone(),
            service: service.service_name.clone(),
            types: r.resource_types,
            cursor,
            pending: std::collections::VecDeque::new(),
            // Subscribed before the first read of the database, so nothing falls in between.
            feed: self.state.engine.changes(),
            replaying: true,
            done: false,
            key,
            last_key_check: tokio::time::Instant::now(),
            last_sent: tokio::time::Instant::now(),
            _slot: slot,
            present_in: std::collections::HashSet::new(),
        };
        Ok(Response::new(Box::pin(change_stream(watch))))
    }

    async fn register_actions(
        &self,
        request: Request<pb::RegisterActionsRequest>,
    ) -> Result<Response<pb::RegisterActionsResponse>, Status> {
        let service = credentials::service(&request)?;
        let caller = credentials::caller(&request)?;
        let actions: Vec<(String, String)> = request
            .into_inner()
            .actions
            .into_iter()
            .map(|a| (a.action, a.description))
            .collect();
        let (created, updated, revision) = self
            .state
            .workspaces
            .register_actions(&caller, &service.service_name, &actions)
            .await?;
        Ok(Response::new(pb::RegisterActionsResponse {
            created_count: i32::try_from(created).unwrap_or(i32::MAX),
            updated_count: i32::try_from(updated).unwrap_or(i32::MAX),
            consistency_token: self.written(revision).await?,
        }))
    }

    async fn check_action(
        &self,
        request: Request<pb::CheckActionRequest>,
    ) -> Result<Response<pb::CheckActionResponse>, Status> {
        let service = credentials::service(&request)?;
        let (user, workspace) = user_and_workspace(&request, &request.get_ref().workspace_id)?;
        let r = request.into_inner();
        check_consistency(r.consistency.as_ref())?;
        let (roles, revision) = self
            .state
            .workspaces
            .check_action(&service.service_name, user, workspace, &r.action)
            .await?;
        Ok(Response::new(pb::CheckActionResponse {
            allowed: !roles.is_empty(),
            roles,
            consistency_token: consistency::encode(revision),
        }))
    }

    async fn list_user_actions(
        &self,
        request: Request<pb::ListUserActionsRequest>,
    ) -> Result<Response<pb::ListUserActionsResponse>, Status> {
        let service = credentials::service(&request)?;
        let (user, workspace) = user_and_workspace(&request, &request.get_ref().workspace_id)?;
        let r = request.into_inner();
        check_consistency(r.consistency.as_ref())?;
        let limit = page_size(r.page_size)?;
        let after: Option<String> = token_cursor(&r.page_token)?;
        let (actions, revision) = self
            .state
            .workspaces
            .user_actions(
                &service.service_name,
                user,
                workspace,
                after.as_deref(),
                limit + 1,
            )
            .await?;
        let (actions, next_page_token) = page(actions, limit, Clone::clone);
        Ok(Response::new(pb::ListUserActionsResponse {
            actions,
            next_page_token,
            consistency_token: consistency::encode(revision),
        }))
    }
}

/// The state of one Watch stream.
struct ChangeWatch {
    state: AppState,
    service: String,
    types: Vec<String>,
    cursor: i64,
    pending: std::collections::VecDeque<pb::WatchResponse>,
    /// Live changelog entries from the replica's index.
    feed: tokio::sync::broadcast::Receiver<std::sync::Arc<[crate::store::ChangeRow]>>,
    /// Reading the database from `cursor` (from the start token, or after falling behind).
    replaying: bool,
    done: bool,
    /// The caller's key, re-checked every [`WATCH_KEY_CHECK`]: a stream ends within a second
    /// of its key being rotated out, deactivated or deleted.
    key: String,
    last_key_check: tokio::time::Instant,
    last_sent: tokio::time::Instant,
    _slot: super::streams::StreamSlot,
    /// Workspaces where the service was found to have resources or roles.
    present_in: std::collections::HashSet<Uuid>,
}

/// How often an open Watch re-checks its caller's key.
const WATCH_KEY_CHECK: Duration = Duration::from_secs(1);

/// Streams the caller's changes after the cursor, with a checkpoint when idle.
fn change_stream(
    watch: ChangeWatch,
) -> impl Stream<Item = Result<pb::WatchResponse, Status>> + Send {
    futures::stream::unfold(watch, |mut w| async move {
        if w.done {
            return None;
        }
        loop {
            if w.last_key_check.elapsed() >= WATCH_KEY_CHECK {
                w.last_key_check = tokio::time::Instant::now();
                if let Err(err) = w.state.apps.authenticate(&w.key).await {
                    w.done = true;
                    return Some((Err(Status::from(err)), w));
                }
            }
            if let Some(message) = w.pending.pop_front() {
                w.last_sent = tokio::time::Instant::now();
                return Some((Ok(message), w));
            }
            let rows: Vec<crate::store::ChangeRow> = if w.replaying {
                // The database, only to catch up: from the start token, or after falling behind.
                match w
                    .state
                    .store
                    .changes_since(w.cursor, Some(&w.service), 500)
                    .await
                {
                    Ok(rows) => {
                        w.replaying = rows.len() == 500;
                        rows
                    }
                    Err(err) => {
                        w.done = true;
                        return Some((Err(Status::from(Error::from(err))), w));
                    }
                }
            } else {
                // Live: what the replica's index applies, woken at least every key check.
                match tokio::time::timeout(WATCH_KEY_CHECK, w.feed.recv()).await {
                    Ok(Ok(batch)) => batch
                        .iter()
                        .filter(|r| {
                            r.revision > w.cursor
                                && r.change.service_name().is_none_or(|s| s == w.service)
                        })
                        .cloned()
                        .collect(),
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                        w.replaying = true;
                        continue;
                    }
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return None,
                    Err(_) if w.last_sent.elapsed() < WATCH_CHECKPOINT => continue,
                    Err(_) => {
                        w.last_sent = tokio::time::Instant::now();
                        let message = pb::WatchResponse {
                            revision: w.cursor,
                            consistency_token: consistency::encode(w.cursor),
                            operation: pb::ChangeOperation::Checkpoint as i32,
                            occurred_at: Some(convert::timestamp(Utc::now())),
                            ..Default::default()
                        };
                        return Some((Ok(message), w));
                    }
                }
            };
            for row in &rows {
                w.cursor = row.revision;
                // Membership and group history only of workspaces this service is in.
                if let Some(workspace) = row.change.shared_workspace()
                    && !w.present_in.contains(&workspace)
                {
                    match w
                        .state
                        .store
                        .service_in_workspace(&w.service, workspace)
                        .await
                    {
                        Ok(true) => {
                            w.present_in.insert(workspace);
                        }
                        Ok(false) => continue,
                        Err(err) => {
                            w.done = true;
                            return Some((Err(Status::from(Error::from(err))), w));
                        }
                    }
                }
                if let Some(message) =
                    watch_message(row.revision, row.occurred_at, &row.change, &w.types)
                {
                    w.pending.push_back(message);
                }
            }
        }
    })
}

/// The stream message of a changelog entry, or `None` when the entry is not for Watch (or its
/// resource type is filtered out).
fn watch_message(
    revision: i64,
    occurred_at: chrono::DateTime<Utc>,
    change: &Change,
    types: &[String],
) -> Option<pb::WatchResponse> {
    use pb::ChangeOperation as Op;
    let wanted = |t: &str| types.is_empty() || types.iter().any(|x| x == t);
    let mut m = pb::WatchResponse {
        revision,
        consistency_token: consistency::encode(revision),
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
            m.role = convert::role(role) as i32;
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
            if !wanted(&resource.resource_type) {
                return None;
            }
            m.resource = Some(reference(&resource.resource_type, &resource.resource_id));
            m.owner_id = resource.owner_id.map(|o| o.to_string()).unwrap_or_default();
            m.visibility = visibility(&resource.visibility) as i32;
            m.parent = resource.parent.as_ref().map(|(t, id)| reference(t, id));
            if *created {
                Op::ResourceCreated
            } else {
                Op::ResourceUpdated
            }
        }
        Change::ResourceDeleted { key, .. } => {
            if !wanted(&key.resource_type) {
                return None;
            }
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
            if !wanted(&key.resource_type) {
                return None;
            }
            m.resource = Some(reference(&key.resource_type, &key.resource_id));
            m.grantee = Some(grantee_message(*grantee));
            m.permission = permission(level) as i32;
            m.expires_at = expires_at.map(convert::timestamp);
            if *created {
                Op::GrantCreated
            } else {
                Op::GrantUpdated
            }
        }
        Change::GrantRemoved { key, grantee, .. } => {
            if !wanted(&key.resource_type) {
                return None;
            }
            m.resource = Some(reference(&key.resource_type, &key.resource_id));
            m.grantee = Some(grantee_message(*grantee));
            Op::GrantDeleted
        }
        Change::ActionsRegistered { .. } | Change::ServiceDeleted { .. } => return None,
    };
    m.operation = op as i32;
    Some(m)
}
