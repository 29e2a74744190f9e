//! `sentinel.v1.WorkspaceService`: workspaces, members and invitations, groups, custom roles.

use tonic::{Request, Response, Status};

use super::convert::{self, optional_uuid, page, page_size, token_cursor, uuid};
use crate::credentials;
use crate::error::Error;
use crate::model::Written;
use crate::proto::v1 as pb;
use crate::proto::v1::workspace_service_server::WorkspaceService;
use crate::services::Services;
use crate::tenancy::{Invitee, Listing, WorkspaceView};

/// Whom an AddMember invites: an email, or a user by id.
impl TryFrom<Option<pb::add_member_request::Invitee>> for Invitee {
    type Error = Error;

    fn try_from(invitee: Option<pb::add_member_request::Invitee>) -> Result<Self, Error> {
        match invitee {
            Some(pb::add_member_request::Invitee::Email(email)) => Ok(Invitee::Email(email)),
            Some(pb::add_member_request::Invitee::UserId(id)) => {
                Ok(Invitee::UserId(uuid("user_id", &id)?))
            }
            None => Err(Error::invalid("email", "email or user_id is required")),
        }
    }
}

/// Handlers of `sentinel.v1.WorkspaceService`.
pub struct WorkspaceApi {
    state: Services,
}

impl WorkspaceApi {
    /// Handlers over the shared application state.
    pub fn new(state: Services) -> Self {
        Self { state }
    }
}

pub(super) fn access(view: &WorkspaceView) -> pb::WorkspaceAccess {
    pb::WorkspaceAccess {
        workspace: Some(convert::workspace(&view.workspace)),
        role: view
            .role
            .map_or(pb::WorkspaceRole::Unspecified, convert::role) as i32,
        joined_at: view.joined_at.map(convert::timestamp),
    }
}

#[tonic::async_trait]
impl WorkspaceService for WorkspaceApi {
    async fn create_workspace(
        &self,
        request: Request<pb::CreateWorkspaceRequest>,
    ) -> Result<Response<pb::CreateWorkspaceResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let workspace = self
            .state
            .workspaces
            .create(&caller, &r.name, &r.slug, &r.description)
            .await?;
        Ok(Response::new(pb::CreateWorkspaceResponse {
            workspace: Some(convert::workspace(&workspace)),
        }))
    }

    async fn get_workspace(
        &self,
        request: Request<pb::GetWorkspaceRequest>,
    ) -> Result<Response<pb::GetWorkspaceResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let id = uuid("id", &request.get_ref().id)?;
        let view = self.state.workspaces.get(&caller, id).await?;
        Ok(Response::new(pb::GetWorkspaceResponse {
            role: view
                .role
                .map_or(pb::WorkspaceRole::Unspecified, convert::role) as i32,
            workspace: Some(convert::workspace(&view.workspace)),
        }))
    }

    async fn list_workspaces(
        &self,
        request: Request<pb::ListWorkspacesRequest>,
    ) -> Result<Response<pb::ListWorkspacesResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let limit = page_size(r.page_size)?;
        let of = if r.all {
            Listing::All
        } else {
            match optional_uuid("user_id", &r.user_id)? {
                Some(user) => Listing::Of(user),
                None => Listing::Mine,
            }
        };
        let query = Some(r.query.trim()).filter(|q| !q.is_empty());
        let views = self
            .state
            .workspaces
            .list(&caller, of, query, token_cursor(&r.page_token)?, limit + 1)
            .await?;
        let (views, next_page_token) =
            page(views, limit, |v| (v.workspace.name.clone(), v.workspace.id));
        Ok(Response::new(pb::ListWorkspacesResponse {
            workspaces: views.iter().map(access).collect(),
            next_page_token,
        }))
    }

    async fn update_workspace(
        &self,
        request: Request<pb::UpdateWorkspaceRequest>,
    ) -> Result<Response<pb::UpdateWorkspaceResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let id = uuid("id", &r.id)?;
        let workspace = self
            .state
            .workspaces
            .update(
                &caller,
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
        let caller = credentials::caller(&request)?;
        let id = uuid("id", &request.get_ref().id)?;
        let revision = self.state.workspaces.delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteWorkspaceResponse {
            consistency_token: revision.token().to_string(),
        }))
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let workspace_id = uuid("workspace_id", &r.workspace_id)?;
        let limit = page_size(r.page_size)?;
        let role = match r.role {
            0 => None,
            value => Some(
                convert::workspace_role(value)
                    .ok_or_else(|| Error::invalid("role", "is not a workspace role"))?,
            ),
        };
        let query = query_text(&r.query)?;
        let rows = self
            .state
            .workspaces
            .list_members(
                &caller,
                workspace_id,
                query,
                role,
                token_cursor(&r.page_token)?,
                limit + 1,
            )
            .await?;
        let (rows, next_page_token) = page(rows, limit, |m| {
            (m.user.name.clone(), m.user.email.clone(), m.user.id)
        });
        Ok(Response::new(pb::ListMembersResponse {
            members: rows.iter().map(convert::member).collect(),
            next_page_token,
        }))
    }

    async fn add_member(
        &self,
        request: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::AddMemberResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let workspace_id = uuid("workspace_id", &r.workspace_id)?;
        let invitee = Invitee::try_from(r.invitee)?;
        let role = convert::workspace_role(r.role)
            .ok_or_else(|| Error::invalid("role", "is required (owner, admin, editor, viewer)"))?;
        let Written {
            value: invitation,
            revision,
        } = self
            .state
            .workspaces
            .add_member(&caller, workspace_id, invitee, role)
            .await?;
        Ok(Response::new(pb::AddMemberResponse {
            member_or_invitation: Some(pb::add_member_response::MemberOrInvitation::Invitation(
                convert::invitation(&invitation),
            )),
            consistency_token: revision.token().to_string(),
        }))
    }

    async fn list_invitations(
        &self,
        request: Request<pb::ListInvitationsRequest>,
    ) -> Result<Response<pb::ListInvitationsResponse>, Status> {
        super::invitations::list(&self.state, request).await
    }

    async fn cancel_invitation(
        &self,
        request: Request<pb::CancelInvitationRequest>,
    ) -> Result<Response<pb::CancelInvitationResponse>, Status> {
        super::invitations::cancel(&self.state, request).await
    }

    async fn list_my_invitations(
        &self,
        request: Request<pb::ListMyInvitationsRequest>,
    ) -> Result<Response<pb::ListMyInvitationsResponse>, Status> {
        super::invitations::list_mine(&self.state, request).await
    }

    async fn accept_invitation(
        &self,
        request: Request<pb::AcceptInvitationRequest>,
    ) -> Result<Response<pb::AcceptInvitationResponse>, Status> {
        super::invitations::accept(&self.state, request).await
    }

    async fn decline_invitation(
        &self,
        request: Request<pb::DeclineInvitationRequest>,
    ) -> Result<Response<pb::DeclineInvitationResponse>, Status> {
        super::invitations::decline(&self.state, request).await
    }

    async fn update_member_role(
        &self,
        request: Request<pb::UpdateMemberRoleRequest>,
    ) -> Result<Response<pb::UpdateMemberRoleResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let workspace_id = uuid("workspace_id", &r.workspace_id)?;
        let user_id = uuid("user_id", &r.user_id)?;
        let role = convert::workspace_role(r.role)
            .ok_or_else(|| Error::invalid("role", "is required (owner, admin, editor, viewer)"))?;
        let Written {
            value: (member, revoked),
            revision,
        } = self
            .state
            .workspaces
            .update_member_role(&caller, workspace_id, user_id, role)
            .await?;
        Ok(Response::new(pb::UpdateMemberRoleResponse {
            member: Some(convert::member(&member)),
            revoked_session_count: i32::try_from(revoked).unwrap_or(i32::MAX),
            consistency_token: revision.token().to_string(),
        }))
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let workspace_id = uuid("workspace_id", &r.workspace_id)?;
        let user_id = uuid("user_id", &r.user_id)?;
        let Written {
            value: revoked,
            revision,
        } = self
            .state
            .workspaces
            .remove_member(&caller, workspace_id, user_id)
            .await?;
        Ok(Response::new(pb::RemoveMemberResponse {
            revoked_session_count: i32::try_from(revoked).unwrap_or(i32::MAX),
            consistency_token: revision.token().to_string(),
        }))
    }

    async fn create_group(
        &self,
        request: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::CreateGroupResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let workspace_id = uuid("workspace_id", &r.workspace_id)?;
        let group = self
            .state
            .workspaces
            .create_group(&caller, workspace_id, &r.name, &r.description)
            .await?;
        Ok(Response::new(pb::CreateGroupResponse {
            group: Some(convert::group(&group)),
        }))
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let workspace_id = uuid("workspace_id", &r.workspace_id)?;
        let member = optional_uuid("user_id", &r.user_id)?;
        let limit = page_size(r.page_size)?;
        let query = query_text(&r.query)?;
        let rows = self
            .state
            .workspaces
            .list_groups(
                &caller,
                workspace_id,
                member,
                query,
                token_cursor(&r.page_token)?,
                limit + 1,
            )
            .await?;
        let (rows, next_page_token) = page(rows, limit, |g| (g.name.clone(), g.id));
        Ok(Response::new(pb::ListGroupsResponse {
            groups: rows.iter().map(convert::group).collect(),
            next_page_token,
        }))
    }

    async fn update_group(
        &self,
        request: Request<pb::UpdateGroupRequest>,
    ) -> Result<Response<pb::UpdateGroupResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let id = uuid("id", &r.id)?;
        let group = self
            .state
            .workspaces
            .update_group(&caller, id, r.name.as_deref(), r.description.as_deref())
            .await?;
        Ok(Response::new(pb::UpdateGroupResponse {
            group: Some(convert::group(&group)),
        }))
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::DeleteGroupResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let id = uuid("id", &request.get_ref().id)?;
        let revision = self.state.workspaces.delete_group(&caller, id).await?;
        Ok(Response::new(pb::DeleteGroupResponse {
            consistency_token: revision.token().to_string(),
        }))
    }

    async fn add_group_member(
        &self,
        request: Request<pb::AddGroupMemberRequest>,
    ) -> Result<Response<pb::AddGroupMemberResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let group_id = uuid("group_id", &r.group_id)?;
        let user_id = uuid("user_id", &r.user_id)?;
        let Written {
            value: added,
            revision,
        } = self
            .state
            .workspaces
            .set_group_member(&caller, group_id, user_id, true)
            .await?;
        Ok(Response::new(pb::AddGroupMemberResponse {
            added,
            consistency_token: revision.token().to_string(),
        }))
    }

    async fn remove_group_member(
        &self,
        request: Request<pb::RemoveGroupMemberRequest>,
    ) -> Result<Response<pb::RemoveGroupMemberResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let group_id = uuid("group_id", &r.group_id)?;
        let user_id = uuid("user_id", &r.user_id)?;
        let Written {
            value: removed,
            revision,
        } = self
            .state
            .workspaces
            .set_group_member(&caller, group_id, user_id, false)
            .await?;
        Ok(Response::new(pb::RemoveGroupMemberResponse {
            removed,
            consistency_token: revision.token().to_string(),
        }))
    }

    async fn list_group_members(
        &self,
        request: Request<pb::ListGroupMembersRequest>,
    ) -> Result<Response<pb::ListGroupMembersResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let group_id = uuid("group_id", &r.group_id)?;
        let limit = page_size(r.page_size)?;
        let rows = self
            .state
            .workspaces
            .list_group_members(&caller, group_id, token_cursor(&r.page_token)?, limit + 1)
            .await?;
        let (rows, next_page_token) = page(rows, limit, |(u, _)| {
            (u.name.clone(), u.email.clone(), u.id)
        });
        Ok(Response::new(pb::ListGroupMembersResponse {
            members: rows
                .iter()
                .map(|(user, added_at)| pb::GroupMember {
                    group_id: group_id.to_string(),
                    user: Some(convert::user_summary(user)),
                    added_at: Some(convert::timestamp(*added_at)),
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn create_role(
        &self,
        request: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::CreateRoleResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let workspace_id = uuid("workspace_id", &r.workspace_id)?;
        let Written { value: role, .. } = self
            .state
            .workspaces
            .create_role(
                &caller,
                workspace_id,
                r.service_name.trim(),
                &r.name,
                &r.description,
                &r.actions,
            )
            .await?;
        Ok(Response::new(pb::CreateRoleResponse {
            role: Some(convert::custom_role(&role)),
        }))
    }

    async fn list_roles(
        &self,
        request: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let workspace_id = uuid("workspace_id", &r.workspace_id)?;
        let user_id = optional_uuid("user_id", &r.user_id)?;
        let limit = page_size(r.page_size)?;
        let service = Some(r.service_name.trim()).filter(|s| !s.is_empty());
        let rows = self
            .state
            .workspaces
            .list_roles(
                &caller,
                workspace_id,
                service,
                user_id,
                token_cursor(&r.page_token)?,
                limit + 1,
            )
            .await?;
        let (rows, next_page_token) = page(rows, limit, |r| {
            (r.service_name.clone(), r.name.clone(), r.id)
        });
        Ok(Response::new(pb::ListRolesResponse {
            roles: rows.iter().map(convert::custom_role).collect(),
            next_page_token,
        }))
    }

    async fn delete_role(
        &self,
        request: Request<pb::DeleteRoleRequest>,
    ) -> Result<Response<pb::DeleteRoleResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let id = uuid("id", &request.get_ref().id)?;
        let revision = self.state.workspaces.delete_role(&caller, id).await?;
        Ok(Response::new(pb::DeleteRoleResponse {
            consistency_token: revision.token().to_string(),
        }))
    }

    async fn set_role_actions(
        &self,
        request: Request<pb::SetRoleActionsRequest>,
    ) -> Result<Response<pb::SetRoleActionsResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let id = uuid("id", &r.id)?;
        let Written {
            value: role,
            revision,
        } = self
            .state
            .workspaces
            .set_role_actions(&caller, id, &r.actions)
            .await?;
        Ok(Response::new(pb::SetRoleActionsResponse {
            role: Some(convert::custom_role(&role)),
            consistency_token: revision.token().to_string(),
        }))
    }

    async fn assign_role(
        &self,
        request: Request<pb::AssignRoleRequest>,
    ) -> Result<Response<pb::AssignRoleResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let id = uuid("id", &r.id)?;
        let user_id = uuid("user_id", &r.user_id)?;
        let Written {
            value: assigned,
            revision,
        } = self
            .state
            .workspaces
            .set_role_assignment(&caller, id, user_id, true)
            .await?;
        Ok(Response::new(pb::AssignRoleResponse {
            assigned,
            consistency_token: revision.token().to_string(),
        }))
    }

    async fn unassign_role(
        &self,
        request: Request<pb::UnassignRoleRequest>,
    ) -> Result<Response<pb::UnassignRoleResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let id = uuid("id", &r.id)?;
        let user_id = uuid("user_id", &r.user_id)?;
        let Written {
            value: removed,
            revision,
        } = self
            .state
            .workspaces
            .set_role_assignment(&caller, id, user_id, false)
            .await?;
        Ok(Response::new(pb::UnassignRoleResponse {
            removed,
            consistency_token: revision.token().to_string(),
        }))
    }
}

/// A search substring: trimmed, at most 200 characters; empty = no filter.
fn query_text(query: &str) -> Result<Option<&str>, Error> {
    let query = query.trim();
    if query.chars().count() > 200 {
        return Err(Error::invalid("query", "at most 200 characters"));
    }
    Ok(Some(query).filter(|q| !q.is_empty()))
}
