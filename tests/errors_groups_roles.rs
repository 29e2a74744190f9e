//! The documented errors of WorkspaceService's group RPCs (CreateGroup, ListGroups, UpdateGroup,
//! DeleteGroup, AddGroupMember, RemoveGroupMember, ListGroupMembers), each produced by a caller
//! in the documented situation, with a follow-up read showing the refused call changed nothing;
//! and UpdateGroup renaming and re-describing a group. The custom-role RPCs are in
//! tests/errors_roles.rs.

mod common;

use common::clients::{unknown_id, ws};
use common::contract::refused;
use common::{Backend, TestApp, sign_in, with_bearer};
use sentinel::proto::v1::{
    AddGroupMemberRequest, CreateGroupRequest, DeleteGroupRequest, Group, ListGroupMembersRequest,
    ListGroupsRequest, RemoveGroupMemberRequest, UpdateGroupRequest,
};
use tonic::{Code, Status};

both_backends!(
    group_writes_and_reads_refused_as_documented,
    group_membership_refused_as_documented,
);

/// Workspace "acme" with an owner, an editor and a viewer, and "elsewhere", whose owner is no
/// member of acme.
struct Acme {
    app: TestApp,
    _db: common::TestDatabase,
    workspace: String,
    elsewhere: String,
    owner: String,
    editor: String,
    viewer: String,
    viewer_id: String,
    outsider: String,
    outsider_id: String,
}

async fn acme(backend: Backend) -> Acme {
    let (app, db) = TestApp::spawn(backend).await;
    let owner = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let editor = sign_in(&app, "ed@example.com", "acme", "editor").await;
    let viewer = sign_in(&app, "vi@example.com", "acme", "viewer").await;
    let outsider = sign_in(&app, "out@example.com", "elsewhere", "owner").await;
    Acme {
        workspace: owner.scope.as_ref().unwrap().workspace.id.to_string(),
        elsewhere: outsider.scope.as_ref().unwrap().workspace.id.to_string(),
        owner: owner.access_token,
        editor: editor.access_token,
        viewer: viewer.access_token,
        viewer_id: viewer.user.id.to_string(),
        outsider: outsider.access_token,
        outsider_id: outsider.user.id.to_string(),
        app,
        _db: db,
    }
}

impl Acme {
    async fn create(&self, workspace: &str, name: &str, token: &str) -> Result<Group, Status> {
        let request = CreateGroupRequest {
            workspace_id: workspace.into(),
            name: name.into(),
            description: format!("{name} people"),
        };
        ws(&self.app)
            .create_group(with_bearer(request, token))
            .await
            .map(|r| r.into_inner().group.unwrap())
    }

    async fn list(&self, workspace: &str, token: &str) -> Result<Vec<Group>, Status> {
        let request = ListGroupsRequest {
            workspace_id: workspace.into(),
            ..Default::default()
        };
        ws(&self.app)
            .list_groups(with_bearer(request, token))
            .await
            .map(|r| r.into_inner().groups)
    }

    /// The groups of acme as its owner sees them, by name.
    async fn names(&self) -> Vec<String> {
        let groups = self.list(&self.workspace, &self.owner).await.unwrap();
        groups.into_iter().map(|g| g.name).collect()
    }

    async fn group(&self, id: &str) -> Group {
        let groups = self.list(&self.workspace, &self.owner).await.unwrap();
        groups
            .into_iter()
            .find(|g| g.id == id)
            .expect("group listed")
    }

    async fn update(
        &self,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
        token: &str,
    ) -> Result<Group, Status> {
        let request = UpdateGroupRequest {
            id: id.into(),
            name: name.map(String::from),
            description: description.map(String::from),
        };
        ws(&self.app)
            .update_group(with_bearer(request, token))
            .await
            .map(|r| r.into_inner().group.unwrap())
    }

    async fn delete(&self, id: &str, token: &str) -> Result<String, Status> {
        ws(&self.app)
            .delete_group(with_bearer(DeleteGroupRequest { id: id.into() }, token))
            .await
            .map(|r| r.into_inner().consistency_token)
    }

    async fn add(&self, group: &str, user: &str, token: &str) -> Result<bool, Status> {
        let request = AddGroupMemberRequest {
            group_id: group.into(),
            user_id: user.into(),
        };
        ws(&self.app)
            .add_group_member(with_bearer(request, token))
            .await
            .map(|r| r.into_inner().added)
    }

    async fn remove(&self, group: &str, user: &str, token: &str) -> Result<bool, Status> {
        let request = RemoveGroupMemberRequest {
            group_id: group.into(),
            user_id: user.into(),
        };
        ws(&self.app)
            .remove_group_member(with_bearer(request, token))
            .await
            .map(|r| r.into_inner().removed)
    }

    async fn members(&self, group: &str, token: &str) -> Result<Vec<String>, Status> {
        let request = ListGroupMembersRequest {
            group_id: group.into(),
            ..Default::default()
        };
        ws(&self.app)
            .list_group_members(with_bearer(request, token))
            .await
            .map(|r| {
                r.into_inner()
                    .members
                    .into_iter()
                    .map(|m| m.user.unwrap().id)
                    .collect()
            })
    }
}

/// CreateGroup, ListGroups, UpdateGroup and DeleteGroup: NOT_FOUND for an unknown workspace or
/// group and for a caller who is no member of its workspace, PERMISSION_DENIED for an editor and
/// a viewer of the very workspace, ALREADY_EXISTS for a taken name; UpdateGroup changing only
/// the fields it is given.
async fn group_writes_and_reads_refused_as_documented(backend: Backend) {
    let t = acme(backend).await;
    let finance = t.create(&t.workspace, "Finance", &t.owner).await.unwrap();
    let ops = t.create(&t.workspace, "Ops", &t.owner).await.unwrap();
    // The groups as stored (CreateGroup's timestamps may be finer than the store keeps).
    let (finance, ops) = (t.group(&finance.id).await, t.group(&ops.id).await);

    // CreateGroup.
    refused(
        "WorkspaceService/CreateGroup",
        Code::NotFound,
        t.create(&unknown_id(), "Finance", &t.owner).await,
    );
    refused(
        "WorkspaceService/CreateGroup",
        Code::NotFound,
        t.create(&t.workspace, "Outsiders", &t.outsider).await,
    );
    for below_admin in [&t.editor, &t.viewer] {
        let status = refused(
            "WorkspaceService/CreateGroup",
            Code::PermissionDenied,
            t.create(&t.workspace, "Readers", below_admin).await,
        );
        assert!(status.message().contains("admin"), "{}", status.message());
    }
    refused(
        "WorkspaceService/CreateGroup",
        Code::AlreadyExists,
        t.create(&t.workspace, "Finance", &t.owner).await,
    );
    refused(
        "WorkspaceService/CreateGroup",
        Code::AlreadyExists,
        t.create(&t.workspace, "oPS", &t.owner).await,
    );
    assert_eq!(t.names().await, ["Finance", "Ops"], "no group was created");
    // The name is taken only within its workspace.
    t.create(&t.elsewhere, "Finance", &t.outsider)
        .await
        .unwrap();

    // ListGroups: any member of the workspace may list, nobody else.
    assert_eq!(t.list(&t.workspace, &t.viewer).await.unwrap().len(), 2);
    refused(
        "WorkspaceService/ListGroups",
        Code::NotFound,
        t.list(&unknown_id(), &t.owner).await,
    );
    refused(
        "WorkspaceService/ListGroups",
        Code::NotFound,
        t.list(&t.workspace, &t.outsider).await,
    );

    // UpdateGroup.
    refused(
        "WorkspaceService/UpdateGroup",
        Code::NotFound,
        t.update(&unknown_id(), Some("Ghosts"), None, &t.owner)
            .await,
    );
    refused(
        "WorkspaceService/UpdateGroup",
        Code::NotFound,
        t.update(&ops.id, Some("Taken over"), None, &t.outsider)
            .await,
    );
    for below_admin in [&t.editor, &t.viewer] {
        refused(
            "WorkspaceService/UpdateGroup",
            Code::PermissionDenied,
            t.update(&ops.id, Some("Operations"), Some("x"), below_admin)
                .await,
        );
    }
    refused(
        "WorkspaceService/UpdateGroup",
        Code::AlreadyExists,
        t.update(&ops.id, Some("Finance"), None, &t.owner).await,
    );
    refused(
        "WorkspaceService/UpdateGroup",
        Code::AlreadyExists,
        t.update(&ops.id, Some("FINANCE"), Some("changed"), &t.owner)
            .await,
    );
    assert_eq!(
        t.group(&ops.id).await,
        ops,
        "refused updates changed nothing"
    );

    // UpdateGroup renames and re-describes; the rest of the group stays as it was.
    assert!(t.add(&ops.id, &t.viewer_id, &t.owner).await.unwrap());
    let before = t.group(&ops.id).await;
    assert_eq!(before.member_count, 1);
    let renamed = t
        .update(
            &ops.id,
            Some("Operations"),
            Some("Keeps things running"),
            &t.owner,
        )
        .await
        .unwrap();
    let read = t.group(&ops.id).await;
    assert_eq!(read, renamed, "ListGroups shows what UpdateGroup answered");
    assert_eq!(read.name, "Operations");
    assert_eq!(read.description, "Keeps things running");
    assert_eq!(read.id, before.id);
    assert_eq!(read.workspace_id, t.workspace);
    assert_eq!(read.member_count, 1);
    assert_eq!(read.created_at, before.created_at);
    assert!(read.updated_at.unwrap().seconds >= before.updated_at.unwrap().seconds);
    assert_eq!(
        t.names().await,
        ["Finance", "Operations"],
        "ordered by name"
    );
    // A name alone leaves the description; a description alone leaves the name.
    t.update(&ops.id, Some("Ops team"), None, &t.owner)
        .await
        .unwrap();
    let read = t.group(&ops.id).await;
    assert_eq!(
        (read.name.as_str(), read.description.as_str()),
        ("Ops team", "Keeps things running")
    );
    t.update(&ops.id, None, Some(""), &t.owner).await.unwrap();
    let read = t.group(&ops.id).await;
    assert_eq!(
        (read.name.as_str(), read.description.as_str()),
        ("Ops team", "")
    );
    // The old name is free again.
    t.create(&t.workspace, "Ops", &t.owner).await.unwrap();

    // DeleteGroup.
    refused(
        "WorkspaceService/DeleteGroup",
        Code::NotFound,
        t.delete(&unknown_id(), &t.owner).await,
    );
    refused(
        "WorkspaceService/DeleteGroup",
        Code::NotFound,
        t.delete(&finance.id, &t.outsider).await,
    );
    for below_admin in [&t.editor, &t.viewer] {
        refused(
            "WorkspaceService/DeleteGroup",
            Code::PermissionDenied,
            t.delete(&finance.id, below_admin).await,
        );
    }
    assert_eq!(t.group(&finance.id).await, finance, "still there");
    t.delete(&finance.id, &t.owner).await.unwrap();
    refused(
        "WorkspaceService/DeleteGroup",
        Code::NotFound,
        t.delete(&finance.id, &t.owner).await,
    );
    refused(
        "WorkspaceService/UpdateGroup",
        Code::NotFound,
        t.update(&finance.id, Some("Finance again"), None, &t.owner)
            .await,
    );
    assert_eq!(t.names().await, ["Ops", "Ops team"]);
    t.app.stop().await;
}

/// AddGroupMember, RemoveGroupMember and ListGroupMembers: NOT_FOUND for an unknown group, for
/// an unknown user (AddGroupMember) and for a caller who is no member of the group's workspace;
/// PERMISSION_DENIED for an editor and a viewer of the workspace; FAILED_PRECONDITION when the
/// user to add exists but belongs to another workspace only.
async fn group_membership_refused_as_documented(backend: Backend) {
    let t = acme(backend).await;
    let group = t.create(&t.workspace, "Finance", &t.owner).await.unwrap();
    let other = t.create(&t.workspace, "Ops", &t.owner).await.unwrap();

    // AddGroupMember.
    refused(
        "WorkspaceService/AddGroupMember",
        Code::NotFound,
        t.add(&unknown_id(), &t.viewer_id, &t.owner).await,
    );
    let status = refused(
        "WorkspaceService/AddGroupMember",
        Code::NotFound,
        t.add(&group.id, &unknown_id(), &t.owner).await,
    );
    assert!(status.message().contains("user"), "{}", status.message());
    refused(
        "WorkspaceService/AddGroupMember",
        Code::NotFound,
        t.add(&group.id, &t.outsider_id, &t.outsider).await,
    );
    for below_admin in [&t.editor, &t.viewer] {
        refused(
            "WorkspaceService/AddGroupMember",
            Code::PermissionDenied,
            t.add(&group.id, &t.viewer_id, below_admin).await,
        );
    }
    refused(
        "WorkspaceService/AddGroupMember",
        Code::FailedPrecondition,
        t.add(&group.id, &t.outsider_id, &t.owner).await,
    );
    assert!(
        t.members(&group.id, &t.owner).await.unwrap().is_empty(),
        "no refused call added anyone"
    );
    assert_eq!(t.group(&group.id).await.member_count, 0);

    assert!(t.add(&group.id, &t.viewer_id, &t.owner).await.unwrap());

    // RemoveGroupMember.
    refused(
        "WorkspaceService/RemoveGroupMember",
        Code::NotFound,
        t.remove(&unknown_id(), &t.viewer_id, &t.owner).await,
    );
    refused(
        "WorkspaceService/RemoveGroupMember",
        Code::NotFound,
        t.remove(&group.id, &t.viewer_id, &t.outsider).await,
    );
    for below_admin in [&t.editor, &t.viewer] {
        refused(
            "WorkspaceService/RemoveGroupMember",
            Code::PermissionDenied,
            t.remove(&group.id, &t.viewer_id, below_admin).await,
        );
    }
    assert_eq!(
        t.members(&group.id, &t.owner).await.unwrap(),
        std::slice::from_ref(&t.viewer_id),
        "the member stays"
    );

    // ListGroupMembers: any member of the workspace may list, nobody else.
    assert_eq!(t.members(&group.id, &t.viewer).await.unwrap().len(), 1);
    assert!(t.members(&other.id, &t.editor).await.unwrap().is_empty());
    refused(
        "WorkspaceService/ListGroupMembers",
        Code::NotFound,
        t.members(&unknown_id(), &t.owner).await,
    );
    refused(
        "WorkspaceService/ListGroupMembers",
        Code::NotFound,
        t.members(&group.id, &t.outsider).await,
    );

    // A deleted group is unknown to all three.
    t.delete(&group.id, &t.owner).await.unwrap();
    refused(
        "WorkspaceService/AddGroupMember",
        Code::NotFound,
        t.add(&group.id, &t.viewer_id, &t.owner).await,
    );
    refused(
        "WorkspaceService/RemoveGroupMember",
        Code::NotFound,
        t.remove(&group.id, &t.viewer_id, &t.owner).await,
    );
    refused(
        "WorkspaceService/ListGroupMembers",
        Code::NotFound,
        t.members(&group.id, &t.owner).await,
    );
    t.app.stop().await;
}
