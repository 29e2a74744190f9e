//! `sentinel.v1.PermissionService`. The RBAC RPCs (service actions, CheckAction,
//! ListUserActions) are served here; the resource RPCs answer UNIMPLEMENTED (generated default
//! stubs) until the permission engine lands.

use tonic::{Request, Response, Status};

use super::convert::{self, page, page_size, token_cursor};
use super::credentials;
use crate::app::AppState;
use crate::authz::consistency;
use crate::error::Error;
use crate::proto::v1 as pb;
use crate::proto::v1::permission_service_server::PermissionService;

/// Handlers of `sentinel.v1.PermissionService`.
pub struct PermissionApi {
    state: AppState,
}

impl PermissionApi {
    /// Handlers over the shared application state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// Validates a read's consistency requirement. RBAC reads are answered from the database,
/// which is always at least as fresh as any token it issued.
fn check_consistency(consistency: Option<&pb::Consistency>) -> Result<(), Error> {
    use pb::consistency::Requirement;
    match consistency.and_then(|c| c.requirement.as_ref()) {
        None => Ok(()),
        Some(Requirement::MinimizeLatency(true) | Requirement::FullyConsistent(true)) => Ok(()),
        Some(Requirement::MinimizeLatency(false)) => Err(Error::invalid(
            "consistency.minimize_latency",
            "must be true when set",
        )),
        Some(Requirement::FullyConsistent(false)) => Err(Error::invalid(
            "consistency.fully_consistent",
            "must be true when set",
        )),
        Some(Requirement::AtLeastAsFresh(token)) => {
            consistency::decode("consistency.at_least_as_fresh", token).map(|_| ())
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
    Ok((user, workspace))
}

#[tonic::async_trait]
impl PermissionService for PermissionApi {
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
            consistency_token: consistency::encode(revision),
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
