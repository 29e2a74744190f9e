//! Workspaces over the wire, on both backends: create (creator owns), read, list, update,
//! delete, with role rules and existence hidden from outsiders.

mod common;

use common::{
    Backend, TestApp, platform_admin, service_key, sign_in, with_bearer, with_service_key,
};
use sentinel::proto::v1::auth_service_client::AuthServiceClient;
use sentinel::proto::v1::workspace_service_client::WorkspaceServiceClient;
use sentinel::proto::v1::{
    CreateWorkspaceRequest, DeleteWorkspaceRequest, GetWorkspaceRequest, IntrospectRequest,
    ListWorkspacesRequest, UpdateWorkspaceRequest, WorkspaceRole,
};
use tonic::Code;

both_backends!(workspaces_follow_their_role_rules);

/// GetWorkspace of `id` as `token`'s user.
async fn get(app: &TestApp, id: &str, token: &str) -> sentinel::proto::v1::GetWorkspaceResponse {
    WorkspaceServiceClient::new(app.channel.clone())
        .get_workspace(with_bearer(GetWorkspaceRequest { id: id.into() }, token))
        .await
        .unwrap()
        .into_inner()
}

async fn workspaces_follow_their_role_rules(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "home", "owner").await;
    let bob = sign_in(&app, "bob@example.com", "elsewhere", "owner").await;
    let client = || WorkspaceServiceClient::new(app.channel.clone());

    let created = client()
        .create_workspace(with_bearer(
            CreateWorkspaceRequest {
                name: "Acme Research".into(),
                slug: "acme-research".into(),
                description: "R&D".into(),
            },
            &ann.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .workspace
        .unwrap();
    let got = get(&app, &created.id, &ann.access_token).await;
    assert_eq!(got.role, WorkspaceRole::Owner as i32, "the creator owns it");

    // An empty slug is derived from the name, with a numeric suffix while it is taken.
    for expected in ["acme-research-2", "acme-research-3"] {
        let derived = client()
            .create_workspace(with_bearer(
                CreateWorkspaceRequest {
                    name: "Acme Research".into(),
                    slug: String::new(),
                    description: String::new(),
                },
                &bob.access_token,
            ))
            .await
            .unwrap()
            .into_inner()
            .workspace
            .unwrap();
        assert_eq!(derived.slug, expected);
    }

    for (slug, code, field) in [
        ("acme-research", Code::AlreadyExists, ""),
        ("Bad Slug", Code::InvalidArgument, "slug"),
        ("-x", Code::InvalidArgument, "slug"),
    ] {
        let err = client()
            .create_workspace(with_bearer(
                CreateWorkspaceRequest {
                    name: "Another".into(),
                    slug: slug.into(),
                    description: String::new(),
                },
                &bob.access_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{slug}");
        assert!(err.message().starts_with(field), "{}", err.message());
    }

    // Outsiders cannot tell a foreign workspace from a missing one.
    for id in [created.id.clone(), uuid::Uuid::new_v4().to_string()] {
        let err = client()
            .get_workspace(with_bearer(
                GetWorkspaceRequest { id: id.clone() },
                &bob.access_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        assert_eq!(err.message(), "workspace not found");
    }

    // Listing: own workspaces by name, paged; `all` is for platform admins.
    let mut names = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client()
            .list_workspaces(with_bearer(
                ListWorkspacesRequest {
                    page_size: 1,
                    page_token: page_token.clone(),
                    ..ListWorkspacesRequest::default()
                },
                &ann.access_token,
            ))
            .await
            .unwrap()
            .into_inner();
        names.extend(
            page.workspaces
                .iter()
                .map(|w| w.workspace.as_ref().unwrap().name.clone()),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(names, vec!["Acme Research".to_string(), "home".to_string()]);
    let err = client()
        .list_workspaces(with_bearer(
            ListWorkspacesRequest {
                all: true,
                ..ListWorkspacesRequest::default()
            },
            &ann.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let admin = platform_admin(&app).await;
    let all = client()
        .list_workspaces(with_bearer(
            ListWorkspacesRequest {
                all: true,
                ..ListWorkspacesRequest::default()
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        all.workspaces.len(),
        6,
        "home, elsewhere, ops, acme-research, acme-research-2 and -3"
    );

    // Update: admin+ only; the slug stays unique.
    let state = app.app.state();
    let viewer = sign_in(&app, "vic@example.com", "home", "viewer").await;
    let research: sentinel::model::WorkspaceId = created.id.parse().unwrap();
    state
        .store
        .upsert_membership(
            research,
            viewer.user.id,
            sentinel::model::WorkspaceRole::Viewer,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let err = client()
        .update_workspace(with_bearer(
            UpdateWorkspaceRequest {
                id: created.id.clone(),
                name: Some("Renamed".into()),
                ..UpdateWorkspaceRequest::default()
            },
            &viewer.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let kept = get(&app, &created.id, &ann.access_token)
        .await
        .workspace
        .unwrap();
    assert_eq!(
        kept.name, "Acme Research",
        "the refused rename changed nothing"
    );
    let renamed = client()
        .update_workspace(with_bearer(
            UpdateWorkspaceRequest {
                id: created.id.clone(),
                name: Some("Renamed".into()),
                slug: Some("renamed".into()),
                ..UpdateWorkspaceRequest::default()
            },
            &ann.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .workspace
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.slug.as_str()),
        ("Renamed", "renamed")
    );
    assert_eq!(renamed.description, "R&D", "unset fields keep their value");
    let err = client()
        .update_workspace(with_bearer(
            UpdateWorkspaceRequest {
                id: created.id.clone(),
                slug: Some("home".into()),
                ..UpdateWorkspaceRequest::default()
            },
            &ann.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);

    // Delete: owner only; sessions scoped to it end.
    let scoped = sentinel::operator::issue_token(
        state,
        &sentinel::operator::IssueTokenRequest {
            email: "vic@example.com".into(),
            workspace: "renamed".into(),
            role: None,
            create: false,
            admin: false,
        },
    )
    .await
    .unwrap();
    let err = client()
        .delete_workspace(with_bearer(
            DeleteWorkspaceRequest {
                id: created.id.clone(),
            },
            &viewer.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    client()
        .delete_workspace(with_bearer(
            DeleteWorkspaceRequest {
                id: created.id.clone(),
            },
            &ann.access_token,
        ))
        .await
        .unwrap();
    let introspected = AuthServiceClient::new(app.channel.clone())
        .introspect(with_service_key(
            IntrospectRequest {
                token: scoped.access_token,
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !introspected.active,
        "sessions scoped to a deleted workspace end"
    );
    let err = client()
        .get_workspace(with_bearer(
            GetWorkspaceRequest { id: created.id },
            &ann.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    app.stop().await;
}
