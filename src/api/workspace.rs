//! `sentinel.v1.WorkspaceService`: workspaces. Members, groups and custom roles answer
//! UNIMPLEMENTED until the rest of the tenancy capability lands.

use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::convert::{self, optional_uuid, page_cursor, page_size, page_token, uuid};
use super::credentials;
use crate::app::AppState;
use crate::error::Error;
use crate::proto::v1 as pb;
use crate::proto::v1::workspace_service_server::WorkspaceService;
use crate::tenancy::WorkspaceView;

/// Handlers of `sentinel.v1.WorkspaceService`.
pub struct WorkspaceApi {
    state: AppState,
}

impl WorkspaceApi {
    /// Handlers over the shared application state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    async fn is_admin(&self, user: Uuid) -> Result<bool, Error> {
        Ok(self
            .state
            .store
            .user_by_id(user)
            .await?
            .is_some_and(|u| u.is_admin && u.is_active))
    }
}

fn access(view: &WorkspaceView) -> pb::WorkspaceAccess {
    pb::WorkspaceAccess {
        workspace: Some(convert::workspace(&view.workspace)),
        role: view
            .role
            .as_deref()
            .map_or(pb::WorkspaceRole::Unspecified, convert::role) as i32,
        joined_at: view.joined_at.map(convert::timestamp),
    }
}

fn cursor(token: &str) -> Result<Option<(String, Uuid)>, Error> {
    let Some(text) = page_cursor(token)? else {
        return Ok(None);
    };
    let bad = || Error::invalid("page_token", "is not a token from a previous page");
    let (name, id): (String, String) = serde_json::from_str(&text).map_err(|_| bad())?;
    Ok(Some((name, Uuid::parse_str(&id).map_err(|_| bad())?)))
}

#[tonic::async_trait]
impl WorkspaceService for WorkspaceApi {
    async fn create_workspace(
        &self,
        request: Request<pb::CreateWorkspaceRequest>,
    ) -> Result<Response<pb::CreateWorkspaceResponse>, Status> {
        let claims = credentials::user(&request)?;
        let actor = credentials::actor(&request);
        let user = uuid("sub", &claims.sub)?;
        let r = request.into_inner();
        let workspace = self
            .state
            .workspaces
            .create(&actor, user, &r.name, &r.slug, &r.description)
            .await?;
        Ok(Response::new(pb::CreateWorkspaceResponse {
            workspace: Some(convert::workspace(&workspace)),
        }))
    }

    async fn get_workspace(
        &self,
        request: Request<pb::GetWorkspaceRequest>,
    ) -> Result<Response<pb::GetWorkspaceResponse>, Status> {
        let claims = credentials::user(&request)?;
        let user = uuid("sub", &claims.sub)?;
        let id = uuid("id", &request.get_ref().id)?;
        let view = self.state.workspaces.get(user, id).await?;
        Ok(Response::new(pb::GetWorkspaceResponse {
            role: view
                .role
                .as_deref()
                .map_or(pb::WorkspaceRole::Unspecified, convert::role) as i32,
            workspace: Some(convert::workspace(&view.workspace)),
        }))
    }

    async fn list_workspaces(
        &self,
        request: Request<pb::ListWorkspacesRequest>,
    ) -> Result<Response<pb::ListWorkspacesResponse>, Status> {
        let claims = credentials::user(&request)?;
        let caller = uuid("sub", &claims.sub)?;
        let r = request.into_inner();
        let limit = page_size(r.page_size)?;
        let other = optional_uuid("user_id", &r.user_id)?.filter(|u| *u != caller);
        if (r.all || other.is_some()) && !self.is_admin(caller).await? {
            return Err(Error::PermissionDenied(
                "only platform admins list all or other users' workspaces".into(),
            )
            .into());
        }
        let of = if r.all {
            None
        } else {
            Some(other.unwrap_or(caller))
        };
        let query = Some(r.query.trim()).filter(|q| !q.is_empty());
        let mut views = self
            .state
            .workspaces
            .list(of, query, cursor(&r.page_token)?, limit + 1)
            .await?;
        let next_page_token = if views.len() as i64 > limit {
            views.truncate(limit as usize);
            views
                .last()
                .map(|v| {
                    let key = (v.workspace.name.clone(), v.workspace.id.to_string());
                    page_token(&serde_json::to_string(&key).unwrap_or_default())
                })
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListWorkspacesResponse {
            workspaces: views.iter().map(access).collect(),
            next_page_token,
        }))
    }

    async fn update_workspace(
        &self,
        request: Request<pb::UpdateWorkspaceRequest>,
    ) -> Result<Response<pb::UpdateWorkspaceResponse>, Status> {
        let claims = credentials::user(&request)?;
        let actor = credentials::actor(&request);
        let user = uuid("sub", &claims.sub)?;
        let r = request.into_inner();
        let id = uuid("id", &r.id)?;
        let workspace = self
            .state
            .workspaces
            .update(
                &actor,
                user,
                id,
                r.name.as_deref(),
                r.slug.as_deref(),
                r.description.as_deref(),
            )
            .await?;
        Ok(Response::new(pb::UpdateWorkspaceResponse {
            workspace: Some(convert::workspace(&workspace)),
        }))
    }

    async fn delete_workspace(
        &self,
        request: Request<pb::DeleteWorkspaceRequest>,
    ) -> Result<Response<pb::DeleteWorkspaceResponse>, Status> {
        let claims = credentials::user(&request)?;
        let actor = credentials::actor(&request);
        let user = uuid("sub", &claims.sub)?;
        let id = uuid("id", &request.get_ref().id)?;
        self.state.workspaces.delete(&actor, user, id).await?;
        Ok(Response::new(pb::DeleteWorkspaceResponse {
            consistency_token: String::new(),
        }))
    }
}
