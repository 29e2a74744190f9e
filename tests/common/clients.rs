//! Clients of a test server and the small request parts many tests build.

use sentinel::proto::v1::admin_service_client::AdminServiceClient;
use sentinel::proto::v1::auth_service_client::AuthServiceClient;
use sentinel::proto::v1::consistency::Requirement;
use sentinel::proto::v1::permission_service_client::PermissionServiceClient;
use sentinel::proto::v1::service_app_service_client::ServiceAppServiceClient;
use sentinel::proto::v1::user_service_client::UserServiceClient;
use sentinel::proto::v1::workspace_service_client::WorkspaceServiceClient;
use sentinel::proto::v1::{Consistency, Grantee, ResourceRef, grantee};
use tonic::Status;
use tonic::transport::Channel;

use super::TestApp;

/// AuthService on `app`.
pub fn auth(app: &TestApp) -> AuthServiceClient<Channel> {
    AuthServiceClient::new(app.channel.clone())
}

/// UserService on `app`.
pub fn users(app: &TestApp) -> UserServiceClient<Channel> {
    UserServiceClient::new(app.channel.clone())
}

/// WorkspaceService on `app`.
pub fn ws(app: &TestApp) -> WorkspaceServiceClient<Channel> {
    WorkspaceServiceClient::new(app.channel.clone())
}

/// PermissionService on `app`.
pub fn perms(app: &TestApp) -> PermissionServiceClient<Channel> {
    PermissionServiceClient::new(app.channel.clone())
}

/// ServiceAppService on `app`.
pub fn apps(app: &TestApp) -> ServiceAppServiceClient<Channel> {
    ServiceAppServiceClient::new(app.channel.clone())
}

/// AdminService on `app`.
pub fn admin(app: &TestApp) -> AdminServiceClient<Channel> {
    AdminServiceClient::new(app.channel.clone())
}

/// A resource reference.
pub fn rref(resource_type: &str, resource_id: &str) -> Option<ResourceRef> {
    Some(ResourceRef {
        resource_type: resource_type.into(),
        resource_id: resource_id.into(),
    })
}

/// "At least as fresh as" a consistency token.
pub fn fresh(token: &str) -> Option<Consistency> {
    Some(Consistency {
        requirement: Some(Requirement::AtLeastAsFresh(token.into())),
    })
}

/// A user as grantee.
pub fn user_grantee(id: impl ToString) -> Option<Grantee> {
    Some(Grantee {
        grantee: Some(grantee::Grantee::UserId(id.to_string())),
    })
}

/// A group as grantee.
pub fn group_grantee(id: impl ToString) -> Option<Grantee> {
    Some(Grantee {
        grantee: Some(grantee::Grantee::GroupId(id.to_string())),
    })
}

/// An id nothing has.
pub fn unknown_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Two refusals a caller must not be able to tell apart: same code, same message (an entity
/// the caller may not see answers like one that does not exist).
pub fn alike(existing: &Status, unknown: &Status) {
    assert_eq!(
        (existing.code(), existing.message()),
        (unknown.code(), unknown.message()),
        "an entity the caller may not see answers like one that does not exist"
    );
}

/// Brings `user` (back) into a workspace the way a person joins: an owner's invitation by user
/// id, accepted with `user_token` (any token of theirs). Returns the acceptance's consistency
/// token.
pub async fn invite_and_accept(
    app: &TestApp,
    owner_token: &str,
    workspace: impl ToString,
    user: impl ToString,
    role: sentinel::proto::v1::WorkspaceRole,
    user_token: &str,
) -> String {
    use sentinel::proto::v1::{
        AcceptInvitationRequest, AddMemberRequest, add_member_request::Invitee,
        add_member_response::MemberOrInvitation,
    };
    let invited = ws(app)
        .add_member(super::with_bearer(
            AddMemberRequest {
                workspace_id: workspace.to_string(),
                invitee: Some(Invitee::UserId(user.to_string())),
                role: role as i32,
            },
            owner_token,
        ))
        .await
        .expect("invitation sent")
        .into_inner();
    let Some(MemberOrInvitation::Invitation(invitation)) = invited.member_or_invitation else {
        panic!("AddMember answers an invitation: {invited:?}");
    };
    ws(app)
        .accept_invitation(super::with_bearer(
            AcceptInvitationRequest {
                invitation_id: invitation.id,
            },
            user_token,
        ))
        .await
        .expect("invitation accepted")
        .into_inner()
        .consistency_token
}
