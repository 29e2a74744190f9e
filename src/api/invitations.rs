//! The invitation RPCs of `sentinel.v1.WorkspaceService`: the invitee's list and answers, and
//! the workspace admins' list and withdrawal. Kept beside `workspace.rs`, whose trait methods
//! call these.

use tonic::{Request, Response, Status};

use super::convert::{self, page, page_size, token_cursor, uuid};
use crate::credentials;
use crate::model::Written;
use crate::proto::v1 as pb;
use crate::services::Services;

pub(super) async fn list_mine(
    state: &Services,
    request: Request<pb::ListMyInvitationsRequest>,
) -> Result<Response<pb::ListMyInvitationsResponse>, Status> {
    let caller = credentials::caller(&request)?;
    let r = request.into_inner();
    let limit = page_size(r.page_size)?;
    let after = token_cursor(&r.page_token)?;
    let rows = state
        .workspaces
        .my_invitations(&caller, after, limit + 1)
        .await?;
    let (rows, next_page_token) = page(rows, limit, |p| (p.invitation.created_at, p.invitation.id));
    Ok(Response::new(pb::ListMyInvitationsResponse {
        invitations: rows
            .iter()
            .map(|p| pb::Invitation {
                workspace_name: p.workspace_name.clone(),
                workspace_slug: p.workspace_slug.clone(),
                ..convert::invitation(&p.invitation)
            })
            .collect(),
        next_page_token,
    }))
}

pub(super) async fn accept(
    state: &Services,
    request: Request<pb::AcceptInvitationRequest>,
) -> Result<Response<pb::AcceptInvitationResponse>, Status> {
    let caller = credentials::caller(&request)?;
    let id = uuid("invitation_id", &request.get_ref().invitation_id)?;
    let Written {
        value: member,
        revision,
    } = state.workspaces.accept_invitation(&caller, id).await?;
    Ok(Response::new(pb::AcceptInvitationResponse {
        member: Some(convert::member(&member)),
        consistency_token: revision.token().to_string(),
    }))
}

pub(super) async fn decline(
    state: &Services,
    request: Request<pb::DeclineInvitationRequest>,
) -> Result<Response<pb::DeclineInvitationResponse>, Status> {
    let caller = credentials::caller(&request)?;
    let id = uuid("invitation_id", &request.get_ref().invitation_id)?;
    state.workspaces.decline_invitation(&caller, id).await?;
    Ok(Response::new(pb::DeclineInvitationResponse {}))
}

pub(super) async fn list(
    state: &Services,
    request: Request<pb::ListInvitationsRequest>,
) -> Result<Response<pb::ListInvitationsResponse>, Status> {
    let caller = credentials::caller(&request)?;
    let r = request.into_inner();
    let workspace_id = uuid("workspace_id", &r.workspace_id)?;
    let limit = page_size(r.page_size)?;
    let after = token_cursor(&r.page_token)?;
    let rows = state
        .workspaces
        .workspace_invitations(&caller, workspace_id, after, limit + 1)
        .await?;
    let (rows, next_page_token) = page(rows, limit, |i| (i.created_at, i.id));
    Ok(Response::new(pb::ListInvitationsResponse {
        invitations: rows.iter().map(convert::invitation).collect(),
        next_page_token,
    }))
}

pub(super) async fn cancel(
    state: &Services,
    request: Request<pb::CancelInvitationRequest>,
) -> Result<Response<pb::CancelInvitationResponse>, Status> {
    let caller = credentials::caller(&request)?;
    let id = uuid("invitation_id", &request.get_ref().invitation_id)?;
    state.workspaces.cancel_invitation(&caller, id).await?;
    Ok(Response::new(pb::CancelInvitationResponse {}))
}
