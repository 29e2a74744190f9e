//! Resource helpers shared by the permission tests: register, groups, and a lookup through all
//! its pages.

use sentinel::model::GroupId;
use sentinel::proto::v1::workspace_service_client::WorkspaceServiceClient;
use sentinel::proto::v1::{
    self as pb, AddGroupMemberRequest, Consistency, CreateGroupRequest, LookupResourcesRequest,
    RegisterResourceRequest, Visibility,
};

use super::clients::{perms, rref};
use super::{TestApp, dual, with_bearer, with_service_key};

#[allow(clippy::too_many_arguments)]
pub async fn register(
    app: &TestApp,
    key: &str,
    t: &str,
    id: &str,
    workspace: sentinel::model::WorkspaceId,
    owner: Option<sentinel::model::UserId>,
    visibility: Visibility,
    parent: Option<(&str, &str)>,
) -> Result<pb::RegisterResourceResponse, tonic::Status> {
    perms(app)
        .register_resource(with_service_key(
            RegisterResourceRequest {
                resource_type: t.into(),
                resource_id: id.into(),
                workspace_id: workspace.to_string(),
                owner_id: owner.map(|o| o.to_string()).unwrap_or_default(),
                visibility: visibility as i32,
                parent: parent.and_then(|(pt, pid)| rref(pt, pid)),
                upsert: true,
            },
            key,
        ))
        .await
        .map(|r| r.into_inner())
}

pub async fn create_group(
    app: &TestApp,
    token: &str,
    workspace: sentinel::model::WorkspaceId,
    name: &str,
) -> GroupId {
    let id = WorkspaceServiceClient::new(app.channel.clone())
        .create_group(with_bearer(
            CreateGroupRequest {
                workspace_id: workspace.to_string(),
                name: name.into(),
                description: String::new(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap()
        .id;
    id.parse().unwrap()
}

pub async fn add_to_group(
    app: &TestApp,
    token: &str,
    group: sentinel::model::GroupId,
    user: sentinel::model::UserId,
) -> String {
    WorkspaceServiceClient::new(app.channel.clone())
        .add_group_member(with_bearer(
            AddGroupMemberRequest {
                group_id: group.to_string(),
                user_id: user.to_string(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .consistency_token
}

/// Every id of a lookup, through all pages of `page_size`.
pub async fn lookup_all(
    app: &TestApp,
    key: &str,
    token: &str,
    t: &str,
    action: &str,
    page_size: i32,
    consistency: Option<Consistency>,
) -> (bool, Vec<String>) {
    let mut ids = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = perms(app)
            .lookup_resources(dual(
                LookupResourcesRequest {
                    resource_type: t.into(),
                    action: action.into(),
                    workspace_id: String::new(),
                    page_size,
                    page_token: page_token.clone(),
                    consistency: consistency.clone(),
                },
                key,
                token,
            ))
            .await
            .unwrap()
            .into_inner();
        if page.has_full_access {
            return (true, ids);
        }
        ids.extend(page.resource_ids);
        if page.next_page_token.is_empty() {
            return (false, ids);
        }
        page_token = page.next_page_token;
    }
}
