//! The documented errors of WorkspaceService's custom-role RPCs (CreateRole, ListRoles,
//! DeleteRole, SetRoleActions, AssignRole, UnassignRole), each produced by a caller in the
//! documented situation (a member below admin of the very workspace, another service's key, an
//! action the role's service never registered, ...), with follow-up reads showing the refused
//! call changed nothing; and DeleteRole removing a role together with the actions it gave.

mod common;

use common::clients::{unknown_id, ws};
use common::contract::refused;
use common::{
    Backend, TestApp, TestDatabase, dual, service_key, sign_in, with_bearer, with_service_key,
};
use sentinel::proto::v1::consistency::Requirement;
use sentinel::proto::v1::permission_service_client::PermissionServiceClient;
use sentinel::proto::v1::{
    ActionDefinition, AssignRoleRequest, CheckActionRequest, Consistency, CreateRoleRequest,
    CustomRole, DeleteRoleRequest, ListRolesRequest, RegisterActionsRequest, SetRoleActionsRequest,
    UnassignRoleRequest,
};
use tonic::{Code, Request, Status};

both_backends!(
    role_creation_and_listing_refused_as_documented,
    role_changes_refused_as_documented_and_deletion_takes_the_actions,
    role_assignment_refused_as_documented,
);

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

/// Workspace "acme" (an owner, an editor, a viewer), "elsewhere" (an owner who is no member of
/// acme), and the services "billing" (actions invoice.read, invoice.approve) and "docs" (action
/// doc.read).
struct Acme {
    app: TestApp,
    _db: TestDatabase,
    workspace: String,
    owner: String,
    editor: String,
    viewer: String,
    viewer_id: String,
    outsider: String,
    outsider_id: String,
    billing: String,
    docs: String,
}

async fn register(app: &TestApp, key: &str, actions: &[String]) {
    let request = RegisterActionsRequest {
        actions: actions
            .iter()
            .map(|a| ActionDefinition {
                action: a.clone(),
                description: String::new(),
            })
            .collect(),
    };
    PermissionServiceClient::new(app.channel.clone())
        .register_actions(with_service_key(request, key))
        .await
        .expect("actions registered");
}

async fn acme(backend: Backend) -> Acme {
    let (app, db) = TestApp::spawn(backend).await;
    let owner = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let editor = sign_in(&app, "ed@example.com", "acme", "editor").await;
    let viewer = sign_in(&app, "vi@example.com", "acme", "viewer").await;
    let outsider = sign_in(&app, "out@example.com", "elsewhere", "owner").await;
    let billing = service_key(&app, "billing").await;
    let docs = service_key(&app, "docs").await;
    register(
        &app,
        &billing,
        &strings(&["invoice.read", "invoice.approve"]),
    )
    .await;
    register(&app, &docs, &strings(&["doc.read"])).await;
    Acme {
        workspace: owner.scope.as_ref().unwrap().workspace.id.to_string(),
        owner: owner.access_token,
        editor: editor.access_token,
        viewer: viewer.access_token,
        viewer_id: viewer.user.id.to_string(),
        outsider: outsider.access_token,
        outsider_id: outsider.user.id.to_string(),
        billing,
        docs,
        app,
        _db: db,
    }
}

/// The credentials of one call.
#[derive(Clone, Copy)]
enum As<'a> {
    /// A user's access token.
    User(&'a str),
    /// A service key alone.
    Service(&'a str),
    /// A service key on behalf of a user: (key, token).
    Dual(&'a str, &'a str),
}

impl As<'_> {
    fn request<T>(self, message: T) -> Request<T> {
        match self {
            As::User(token) => with_bearer(message, token),
            As::Service(key) => with_service_key(message, key),
            As::Dual(key, token) => dual(message, key, token),
        }
    }
}

impl Acme {
    /// Callers PERMISSION_DENIED on billing's roles, each with a word its refusal names: an
    /// editor and a viewer of acme, alone and through billing ("admin"); the docs key, alone and
    /// on behalf of acme's owner ("service").
    fn denied(&self) -> [(As<'_>, &'static str); 6] {
        [
            (As::User(&self.editor), "admin"),
            (As::User(&self.viewer), "admin"),
            (As::Dual(&self.billing, &self.editor), "admin"),
            (As::Dual(&self.billing, &self.viewer), "admin"),
            (As::Service(&self.docs), "service"),
            (As::Dual(&self.docs, &self.owner), "service"),
        ]
    }

    fn role_request(&self, service: &str, name: &str, actions: &[&str]) -> CreateRoleRequest {
        CreateRoleRequest {
            workspace_id: self.workspace.clone(),
            service_name: service.into(),
            name: name.into(),
            description: format!("{name} of {service}"),
            actions: strings(actions),
        }
    }

    async fn create(&self, request: CreateRoleRequest, who: As<'_>) -> Result<CustomRole, Status> {
        ws(&self.app)
            .create_role(who.request(request))
            .await
            .map(|r| r.into_inner().role.unwrap())
    }

    /// A billing role created by the owner.
    async fn billing_role(&self, name: &str, actions: &[&str]) -> CustomRole {
        let request = self.role_request("billing", name, actions);
        self.create(request, As::User(&self.owner)).await.unwrap()
    }

    async fn list(
        &self,
        workspace: &str,
        user: &str,
        who: As<'_>,
    ) -> Result<Vec<CustomRole>, Status> {
        let request = ListRolesRequest {
            workspace_id: workspace.into(),
            user_id: user.into(),
            ..Default::default()
        };
        ws(&self.app)
            .list_roles(who.request(request))
            .await
            .map(|r| r.into_inner().roles)
    }

    /// acme's roles as its owner lists them: (service, name, actions).
    async fn roles(&self) -> Vec<(String, String, Vec<String>)> {
        let roles = self.list(&self.workspace, "", As::User(&self.owner)).await;
        let roles = roles.unwrap().into_iter();
        roles.map(|r| (r.service_name, r.name, r.actions)).collect()
    }

    /// Names of the roles assigned to `user` in acme.
    async fn roles_of(&self, user: &str) -> Vec<String> {
        let roles = self
            .list(&self.workspace, user, As::User(&self.owner))
            .await;
        roles.unwrap().into_iter().map(|r| r.name).collect()
    }

    async fn delete(&self, id: &str, who: As<'_>) -> Result<String, Status> {
        let request = DeleteRoleRequest { id: id.into() };
        ws(&self.app)
            .delete_role(who.request(request))
            .await
            .map(|r| r.into_inner().consistency_token)
    }

    async fn set_actions(
        &self,
        id: &str,
        actions: Vec<String>,
        who: As<'_>,
    ) -> Result<CustomRole, Status> {
        let request = SetRoleActionsRequest {
            id: id.into(),
            actions,
        };
        ws(&self.app)
            .set_role_actions(who.request(request))
            .await
            .map(|r| r.into_inner().role.unwrap())
    }

    async fn assign(&self, id: &str, user: &str, who: As<'_>) -> Result<String, Status> {
        let request = AssignRoleRequest {
            id: id.into(),
            user_id: user.into(),
        };
        ws(&self.app)
            .assign_role(who.request(request))
            .await
            .map(|r| r.into_inner().consistency_token)
    }

    async fn unassign(&self, id: &str, user: &str, who: As<'_>) -> Result<bool, Status> {
        let request = UnassignRoleRequest {
            id: id.into(),
            user_id: user.into(),
        };
        ws(&self.app)
            .unassign_role(who.request(request))
            .await
            .map(|r| r.into_inner().removed)
    }

    /// Whether the viewer holds billing's `action` in acme, at least as fresh as `after`.
    async fn viewer_may(&self, action: &str, after: &str) -> bool {
        let request = CheckActionRequest {
            action: action.into(),
            workspace_id: self.workspace.clone(),
            consistency: Some(Consistency {
                requirement: Some(Requirement::AtLeastAsFresh(after.into())),
            }),
        };
        PermissionServiceClient::new(self.app.channel.clone())
            .check_action(dual(request, &self.billing, &self.viewer))
            .await
            .unwrap()
            .into_inner()
            .allowed
    }
}

/// CreateRole: NOT_FOUND for an unknown workspace and for a caller who is no member of it;
/// PERMISSION_DENIED for an editor and a viewer of the workspace (alone or through the service)
/// and for another service's key; ALREADY_EXISTS for a name taken for (workspace, service);
/// INVALID_ARGUMENT for an action the service did not register. ListRoles: NOT_FOUND for an
/// unknown workspace and a non-member.
async fn role_creation_and_listing_refused_as_documented(backend: Backend) {
    let t = acme(backend).await;
    t.billing_role("Approver", &["invoice.approve"]).await;
    let start = t.roles().await;

    let mut nowhere = t.role_request("billing", "Clerk", &[]);
    nowhere.workspace_id = unknown_id();
    refused(
        "WorkspaceService/CreateRole",
        Code::NotFound,
        t.create(nowhere.clone(), As::User(&t.owner)).await,
    );
    refused(
        "WorkspaceService/CreateRole",
        Code::NotFound,
        t.create(nowhere, As::Service(&t.billing)).await,
    );
    let clerk = t.role_request("billing", "Clerk", &[]);
    refused(
        "WorkspaceService/CreateRole",
        Code::NotFound,
        t.create(clerk.clone(), As::User(&t.outsider)).await,
    );

    for (who, names) in t.denied() {
        let status = refused(
            "WorkspaceService/CreateRole",
            Code::PermissionDenied,
            t.create(clerk.clone(), who).await,
        );
        assert!(status.message().contains(names), "{}", status.message());
    }

    for taken in ["Approver", "APPROVER"] {
        let request = t.role_request("billing", taken, &["invoice.read"]);
        refused(
            "WorkspaceService/CreateRole",
            Code::AlreadyExists,
            t.create(request.clone(), As::User(&t.owner)).await,
        );
        refused(
            "WorkspaceService/CreateRole",
            Code::AlreadyExists,
            t.create(request, As::Service(&t.billing)).await,
        );
    }

    // billing never registered invoice.delete, and doc.read is docs's action.
    for unregistered in [&["invoice.delete"][..], &["invoice.read", "doc.read"][..]] {
        let request = t.role_request("billing", "Clerk", unregistered);
        let status = refused(
            "WorkspaceService/CreateRole",
            Code::InvalidArgument,
            t.create(request.clone(), As::User(&t.owner)).await,
        );
        assert!(status.message().contains("actions"), "{}", status.message());
        refused(
            "WorkspaceService/CreateRole",
            Code::InvalidArgument,
            t.create(request, As::Service(&t.billing)).await,
        );
    }
    assert_eq!(t.roles().await, start, "no refused call created a role");

    // The same requests succeed where the condition does not hold.
    let docs_approver = t.role_request("docs", "Approver", &["doc.read"]);
    t.create(docs_approver, As::Service(&t.docs)).await.unwrap();
    let clerk = t
        .create(clerk, As::Dual(&t.billing, &t.owner))
        .await
        .unwrap();
    assert_eq!(clerk.service_name, "billing");
    assert_eq!(t.roles().await.len(), 3);

    refused(
        "WorkspaceService/ListRoles",
        Code::NotFound,
        t.list(&unknown_id(), "", As::User(&t.owner)).await,
    );
    refused(
        "WorkspaceService/ListRoles",
        Code::NotFound,
        t.list(&unknown_id(), "", As::Service(&t.billing)).await,
    );
    refused(
        "WorkspaceService/ListRoles",
        Code::NotFound,
        t.list(&t.workspace, "", As::User(&t.outsider)).await,
    );
    refused(
        "WorkspaceService/ListRoles",
        Code::NotFound,
        t.list(&t.workspace, "", As::Dual(&t.billing, &t.outsider))
            .await,
    );
    let seen = t.list(&t.workspace, "", As::User(&t.viewer)).await.unwrap();
    assert_eq!(seen.len(), 3, "any member lists the roles");
    t.app.stop().await;
}

/// DeleteRole and SetRoleActions: NOT_FOUND for an unknown role and for a caller who is no
/// member of its workspace; PERMISSION_DENIED for an editor and a viewer of the workspace and
/// for another service's key; SetRoleActions INVALID_ARGUMENT for an action the role's service
/// did not register and for more than 500 actions. DeleteRole of a role assigned to the viewer
/// takes the role out of ListRoles and its actions out of CheckAction.
async fn role_changes_refused_as_documented_and_deletion_takes_the_actions(backend: Backend) {
    let t = acme(backend).await;
    let bulk: Vec<String> = (0..=500).map(|i| format!("invoice.bulk-{i:03}")).collect();
    register(&t.app, &t.billing, &bulk).await;
    let role = t.billing_role("Approver", &["invoice.approve"]).await;
    let start = t.roles().await;
    let read = || strings(&["invoice.read"]);
    refused(
        "WorkspaceService/SetRoleActions",
        Code::NotFound,
        t.set_actions(&unknown_id(), read(), As::User(&t.owner))
            .await,
    );
    refused(
        "WorkspaceService/SetRoleActions",
        Code::NotFound,
        t.set_actions(&role.id, read(), As::User(&t.outsider)).await,
    );
    for (who, names) in t.denied() {
        let status = refused(
            "WorkspaceService/SetRoleActions",
            Code::PermissionDenied,
            t.set_actions(&role.id, read(), who).await,
        );
        assert!(status.message().contains(names), "{}", status.message());
    }
    for unregistered in [&["invoice.delete"][..], &["invoice.read", "doc.read"][..]] {
        let status = refused(
            "WorkspaceService/SetRoleActions",
            Code::InvalidArgument,
            t.set_actions(&role.id, strings(unregistered), As::User(&t.owner))
                .await,
        );
        assert!(status.message().contains("actions"), "{}", status.message());
    }
    // 501 distinct registered actions are too many; 500 of them are not.
    assert_eq!(bulk.len(), 501);
    let status = refused(
        "WorkspaceService/SetRoleActions",
        Code::InvalidArgument,
        t.set_actions(&role.id, bulk.clone(), As::Service(&t.billing))
            .await,
    );
    assert!(status.message().contains("actions"), "{}", status.message());
    assert_eq!(
        t.roles().await,
        start,
        "no refused call changed the actions"
    );
    let full = t
        .set_actions(&role.id, bulk[..500].to_vec(), As::Service(&t.billing))
        .await;
    assert_eq!(full.unwrap().actions.len(), 500);
    t.set_actions(&role.id, strings(&["invoice.approve"]), As::User(&t.owner))
        .await
        .unwrap();

    refused(
        "WorkspaceService/DeleteRole",
        Code::NotFound,
        t.delete(&unknown_id(), As::User(&t.owner)).await,
    );
    refused(
        "WorkspaceService/DeleteRole",
        Code::NotFound,
        t.delete(&unknown_id(), As::Service(&t.billing)).await,
    );
    refused(
        "WorkspaceService/DeleteRole",
        Code::NotFound,
        t.delete(&role.id, As::User(&t.outsider)).await,
    );
    for (who, names) in t.denied() {
        let status = refused(
            "WorkspaceService/DeleteRole",
            Code::PermissionDenied,
            t.delete(&role.id, who).await,
        );
        assert!(status.message().contains(names), "{}", status.message());
    }
    assert_eq!(
        t.roles().await,
        start,
        "the role survived every refused delete"
    );

    // DeleteRole deletes: the viewer loses the role's actions, ListRoles no longer has it.
    let keeper = t.billing_role("Reader", &["invoice.read"]).await;
    t.assign(&keeper.id, &t.viewer_id, As::User(&t.owner))
        .await
        .unwrap();
    let assigned = t
        .assign(&role.id, &t.viewer_id, As::User(&t.owner))
        .await
        .unwrap();
    assert!(t.viewer_may("invoice.approve", &assigned).await);
    assert_eq!(t.roles_of(&t.viewer_id).await, ["Approver", "Reader"]);
    let deleted = t.delete(&role.id, As::User(&t.owner)).await.unwrap();
    assert!(!t.viewer_may("invoice.approve", &deleted).await);
    assert!(
        t.viewer_may("invoice.read", &deleted).await,
        "other roles stay"
    );
    let names: Vec<String> = t
        .roles()
        .await
        .into_iter()
        .map(|(_, name, _)| name)
        .collect();
    assert_eq!(names, ["Reader"]);
    assert_eq!(t.roles_of(&t.viewer_id).await, ["Reader"]);
    // Once deleted, the role is unknown.
    refused(
        "WorkspaceService/DeleteRole",
        Code::NotFound,
        t.delete(&role.id, As::User(&t.owner)).await,
    );
    refused(
        "WorkspaceService/SetRoleActions",
        Code::NotFound,
        t.set_actions(&role.id, read(), As::User(&t.owner)).await,
    );
    // Its name is free again.
    t.billing_role("Approver", &[]).await;
    t.app.stop().await;
}

/// AssignRole and UnassignRole: NOT_FOUND for an unknown role (and an unknown user, for
/// AssignRole) and for a caller who is no member of the role's workspace; PERMISSION_DENIED for
/// an editor and a viewer of the workspace and for another service's key; AssignRole
/// FAILED_PRECONDITION for a user who exists but is no member of the role's workspace.
async fn role_assignment_refused_as_documented(backend: Backend) {
    let t = acme(backend).await;
    let role = t.billing_role("Approver", &["invoice.approve"]).await;
    let owner = As::User(&t.owner);

    refused(
        "WorkspaceService/AssignRole",
        Code::NotFound,
        t.assign(&unknown_id(), &t.viewer_id, owner).await,
    );
    let status = refused(
        "WorkspaceService/AssignRole",
        Code::NotFound,
        t.assign(&role.id, &unknown_id(), owner).await,
    );
    assert!(status.message().contains("user"), "{}", status.message());
    refused(
        "WorkspaceService/AssignRole",
        Code::NotFound,
        t.assign(&role.id, &t.outsider_id, As::User(&t.outsider))
            .await,
    );
    for (who, names) in t.denied() {
        let status = refused(
            "WorkspaceService/AssignRole",
            Code::PermissionDenied,
            t.assign(&role.id, &t.viewer_id, who).await,
        );
        assert!(status.message().contains(names), "{}", status.message());
    }
    refused(
        "WorkspaceService/AssignRole",
        Code::FailedPrecondition,
        t.assign(&role.id, &t.outsider_id, owner).await,
    );
    refused(
        "WorkspaceService/AssignRole",
        Code::FailedPrecondition,
        t.assign(&role.id, &t.outsider_id, As::Service(&t.billing))
            .await,
    );
    assert!(
        t.roles_of(&t.viewer_id).await.is_empty(),
        "nobody was assigned"
    );
    assert!(t.roles_of(&t.outsider_id).await.is_empty());
    let roles = t.list(&t.workspace, "", owner).await.unwrap();
    assert_eq!(roles[0].assigned_user_count, 0);

    let assigned = t
        .assign(&role.id, &t.viewer_id, As::Service(&t.billing))
        .await
        .unwrap();
    assert!(t.viewer_may("invoice.approve", &assigned).await);

    refused(
        "WorkspaceService/UnassignRole",
        Code::NotFound,
        t.unassign(&unknown_id(), &t.viewer_id, owner).await,
    );
    refused(
        "WorkspaceService/UnassignRole",
        Code::NotFound,
        t.unassign(&role.id, &t.viewer_id, As::User(&t.outsider))
            .await,
    );
    for (who, names) in t.denied() {
        let status = refused(
            "WorkspaceService/UnassignRole",
            Code::PermissionDenied,
            t.unassign(&role.id, &t.viewer_id, who).await,
        );
        assert!(status.message().contains(names), "{}", status.message());
    }
    assert_eq!(
        t.roles_of(&t.viewer_id).await,
        ["Approver"],
        "still assigned"
    );
    assert!(t.viewer_may("invoice.approve", &assigned).await);

    // Once the role is deleted, both are NOT_FOUND.
    t.delete(&role.id, owner).await.unwrap();
    refused(
        "WorkspaceService/AssignRole",
        Code::NotFound,
        t.assign(&role.id, &t.viewer_id, owner).await,
    );
    refused(
        "WorkspaceService/UnassignRole",
        Code::NotFound,
        t.unassign(&role.id, &t.viewer_id, owner).await,
    );
    t.app.stop().await;
}
