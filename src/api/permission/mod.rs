//! `sentinel.v1.PermissionService`: resources and grants (written by the resources service,
//! read from the permission engine), Watch, and the RBAC RPCs (service actions, CheckAction,
//! ListUserActions). Parsing and mapping live in `messages.rs`.

mod import;
mod messages;
mod writes;

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::convert::{self, page, page_size, token_cursor};
use crate::authz::check::{CheckItem, Subject};
use crate::authz::lookup::LookupQuery;
use crate::authz::resources::{NewGrant, batch_item_error, check_batch_len};
use crate::authz::watch::WatchQuery;
use crate::credentials;
use crate::error::Error;
use crate::model::{ConsistencyToken, Permission, Read, UserId, WorkspaceId, Written};
use crate::proto::v1 as pb;
use crate::proto::v1::permission_service_server::PermissionService;
use crate::services::Services;
use crate::streams::StillAllowed;
use messages::*;
use writes::{kind_name, register_parts, unshare_parts, write_op};

/// Most items in one CheckBulk call.
const MAX_BULK: usize = 1000;

/// Handlers of `sentinel.v1.PermissionService`.
pub struct PermissionApi {
    state: Services,
}

impl PermissionApi {
    /// Handlers over the shared application state.
    pub fn new(state: Services) -> Self {
        Self { state }
    }
}

/// The user and workspace of a dual-tier RBAC read: the request's workspace, or the token's.
fn user_and_workspace<T>(
    request: &Request<T>,
    workspace_id: &str,
) -> Result<(UserId, WorkspaceId), Error> {
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

/// The user and workspace a Check-like read is about: the token's.
fn reader<T>(request: &Request<T>) -> Result<(UserId, Option<WorkspaceId>), Error> {
    let user = credentials::user_id(request)?.ok_or(Error::Unauthenticated(
        crate::tokens::service::INVALID_CREDENTIAL,
    ))?;
    Ok((user, credentials::token_workspace(request)?))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl PermissionService for PermissionApi {
    type WatchStream = WatchStream;

    async fn register_resource(
        &self,
        request: Request<pb::RegisterResourceRequest>,
    ) -> Result<Response<pb::RegisterResourceResponse>, Status> {
        let service = credentials::service(&request)?;
        let caller = credentials::caller(&request)?;
        let (state, upsert) = register_parts(&service.service_name, request.into_inner())?;
        let written = self
            .state
            .resources
            .register(&caller, &state, upsert)
            .await?;
        let (row, created) = written.value;
        Ok(Response::new(pb::RegisterResourceResponse {
            resource: Some(resource_message(&row, Vec::new())),
            created,
            consistency_token: written.revision.token().to_string(),
        }))
    }

    async fn delete_resource(
        &self,
        request: Request<pb::DeleteResourceRequest>,
    ) -> Result<Response<pb::DeleteResourceResponse>, Status> {
        let service = credentials::service(&request)?;
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let key = key_of(&service.service_name, r.resource.as_ref(), "resource")?;
        let written = self
            .state
            .resources
            .delete(&caller, &key, r.allow_missing)
            .await?;
        Ok(Response::new(pb::DeleteResourceResponse {
            deleted: written.value,
            consistency_token: written.revision.token().to_string(),
        }))
    }

    async fn set_visibility(
        &self,
        request: Request<pb::SetVisibilityRequest>,
    ) -> Result<Response<pb::SetVisibilityResponse>, Status> {
        let service = credentials::service(&request)?;
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let key = key_of(&service.service_name, r.resource.as_ref(), "resource")?;
        let visibility = visibility_of(r.visibility, "visibility", None)?;
        let written = self
            .state
            .resources
            .set_visibility(&caller, &key, visibility)
            .await?;
        Ok(Response::new(pb::SetVisibilityResponse {
            resource: Some(resource_message(&written.value, Vec::new())),
            consistency_token: written.revision.token().to_string(),
        }))
    }

    async fn set_owner(
        &self,
        request: Request<pb::SetOwnerRequest>,
    ) -> Result<Response<pb::SetOwnerResponse>, Status> {
        let service = credentials::service(&request)?;
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let key = key_of(&service.service_name, r.resource.as_ref(), "resource")?;
        let owner = convert::optional_uuid("owner_id", &r.owner_id)?;
        let written = self.state.resources.set_owner(&caller, &key, owner).await?;
        Ok(Response::new(pb::SetOwnerResponse {
            resource: Some(resource_message(&written.value, Vec::new())),
            consistency_token: written.revision.token().to_string(),
        }))
    }

    async fn share(
        &self,
        request: Request<pb::ShareRequest>,
    ) -> Result<Response<pb::ShareResponse>, Status> {
        let service = credentials::service(&request)?;
        let caller = credentials::caller(&request)?;
        let r = request.get_ref();
        let key = key_of(&service.service_name, r.resource.as_ref(), "resource")?;
        let grant = NewGrant::try_from(r)?;
        let written = self.state.resources.share(&caller, &key, &grant).await?;
        let (grant, changed) = written.value;
        Ok(Response::new(pb::ShareResponse {
            grant: Some(grant_message(&grant)),
            changed,
            consistency_token: written.revision.token().to_string(),
        }))
    }

    async fn unshare(
        &self,
        request: Request<pb::UnshareRequest>,
    ) -> Result<Response<pb::UnshareResponse>, Status> {
        let service = credentials::service(&request)?;
        let caller = credentials::caller(&request)?;
        let (key, grantee, permission) = unshare_parts(&service.service_name, request.get_ref())?;
        let written = self
            .state
            .resources
            .unshare(&caller, &key, grantee, permission)
            .await?;
        Ok(Response::new(pb::UnshareResponse {
            removed: written.value,
            consistency_token: written.revision.token().to_string(),
        }))
    }

    async fn write_batch(
        &self,
        request: Request<pb::WriteBatchRequest>,
    ) -> Result<Response<pb::WriteBatchResponse>, Status> {
        let service = credentials::service(&request)?;
        let caller = credentials::caller(&request)?;
        let operations = request.into_inner().operations;
        check_batch_len(operations.len())?;
        let ops = operations
            .into_iter()
            .enumerate()
            .map(|(i, op)| {
                let kind = kind_name(&op);
                write_op(&service.service_name, op).map_err(|err| batch_item_error(i, kind, err))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let written = self.state.resources.write_batch(&caller, ops).await?;
        Ok(Response::new(pb::WriteBatchResponse {
            results: written
                .value
                .iter()
                .map(|result| pb::WriteResult {
                    changed: result.changed,
                    created: result.created,
                })
                .collect(),
            consistency_token: written.revision.token().to_string(),
        }))
    }

    async fn import_resources(
        &self,
        request: Request<tonic::Streaming<pb::ImportResourcesRequest>>,
    ) -> Result<Response<pb::ImportResourcesResponse>, Status> {
        import::import(&self.state, request).await
    }

    async fn get_resource(
        &self,
        request: Request<pb::GetResourceRequest>,
    ) -> Result<Response<pb::GetResourceResponse>, Status> {
        let service = credentials::service(&request)?;
        let r = request.into_inner();
        let key = key_of(&service.service_name, r.resource.as_ref(), "resource")?;
        let (row, grants) = self.state.resources.get(&key, r.enrich).await?;
        let grants = grants
            .iter()
            .map(|view| pb::Grant {
                grantee_name: view.grantee_name.clone(),
                grantee_email: view.grantee_email.clone(),
                ..grant_message(&view.grant)
            })
            .collect();
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
        let item = CheckItem::try_from(&r)?;
        let subject = Subject {
            service: &service.service_name,
            user,
            workspace,
        };
        let decision = self
            .state
            .engine
            .check(&subject, &item, freshness(r.consistency.as_ref())?)
            .await?;
        Ok(Response::new(pb::CheckResponse {
            allowed: decision.allowed,
            consistency_token: decision.revision.token().to_string(),
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
        let freshness = freshness(r.consistency.as_ref())?;
        // Items that do not parse are answered with their error; the others are checked.
        let parsed: Vec<Result<(&pb::ResourceRef, Permission), Error>> = r
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let resource =
                    checked_ref(item.resource.as_ref(), || format!("items[{i}].resource"))?;
                let action = match item.action.as_str() {
                    "view" => Permission::View,
                    "edit" => Permission::Edit,
                    _ => Permission::parse_field(&format!("items[{i}].action"), &item.action)?,
                };
                Ok((resource, action))
            })
            .collect();
        let items: Vec<CheckItem> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .map(|(resource, action)| CheckItem {
                resource_type: &resource.resource_type,
                resource_id: &resource.resource_id,
                action: *action,
            })
            .collect();
        let subject = Subject {
            service: &service.service_name,
            user,
            workspace,
        };
        let decisions = self
            .state
            .engine
            .check_bulk(&subject, &items, freshness)
            .await?;
        let mut allowed = decisions.allowed.into_iter();
        let results = parsed
            .into_iter()
            .map(|p| match p {
                Ok(_) => pb::CheckBulkResult {
                    allowed: allowed.next().unwrap_or(false),
                    error: None,
                },
                Err(err) => pb::CheckBulkResult {
                    allowed: false,
                    error: Some(pb::CheckBulkItemError {
                        code: "INVALID_ARGUMENT".into(),
                        message: err.to_string(),
                    }),
                },
            })
            .collect();
        Ok(Response::new(pb::CheckBulkResponse {
            results,
            consistency_token: decisions.revision.token().to_string(),
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
        let action = Permission::parse_field("action", &r.action)?;
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
        let query = LookupQuery {
            subject: Subject {
                service: &service.service_name,
                user,
                workspace: Some(workspace),
            },
            workspace,
            resource_type: &r.resource_type,
            action,
        };
        let page = self
            .state
            .engine
            .lookup(
                &query,
                &r.page_token,
                limit,
                freshness(r.consistency.as_ref())?,
            )
            .await?;
        Ok(Response::new(pb::LookupResourcesResponse {
            resource_ids: page.ids,
            has_full_access: page.full_access,
            next_page_token: page.next_page_token,
            consistency_token: page.revision.token().to_string(),
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
        let start = match r.start_token.as_str() {
            "" => None,
            token => Some(
                ConsistencyToken::parse("start_token", token)
                    .map_err(Error::from)?
                    .revision(),
            ),
        };
        // Taken once the request is known to be well-formed.
        let slot = self.state.streams.acquire(service.id)?;
        let query = WatchQuery {
            service: service.service_name.clone(),
            resource_types: r.resource_types,
            start,
        };
        // The stream ends within a second of its key being rotated out, deactivated or deleted.
        let apps = self.state.apps.clone();
        let still_allowed: StillAllowed = Box::new(move || {
            let (apps, key) = (apps.clone(), key.clone());
            Box::pin(async move { apps.authenticate(&key).await.map(|_| ()) })
        });
        let events = self.state.engine.watch(query, still_allowed).await?;
        let stream = events.map(move |event| {
            let _open = &slot; // the slot is held as long as the stream is
            event.map(|e| watch_message(&e)).map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
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
        let Written {
            value: (created, updated),
            revision,
        } = self
            .state
            .workspaces
            .register_actions(&caller, &service.service_name, &actions)
            .await?;
        Ok(Response::new(pb::RegisterActionsResponse {
            created_count: i32::try_from(created).unwrap_or(i32::MAX),
            updated_count: i32::try_from(updated).unwrap_or(i32::MAX),
            consistency_token: revision.token().to_string(),
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
        let Read {
            value: roles,
            revision,
        } = self
            .state
            .workspaces
            .check_action(&service.service_name, user, workspace, &r.action)
            .await?;
        Ok(Response::new(pb::CheckActionResponse {
            allowed: !roles.is_empty(),
            roles,
            consistency_token: revision.token().to_string(),
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
        let Read {
            value: actions,
            revision,
        } = self
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
            consistency_token: revision.token().to_string(),
        }))
    }
}
