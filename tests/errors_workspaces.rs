//! The documented errors of WorkspaceService's workspace and membership RPCs, on both backends:
//! CreateWorkspace (taken slug, bad name/slug/description), GetWorkspace and ListMembers
//! (outsiders see an existing workspace exactly like an unknown id), ListWorkspaces (non-admins
//! listing all or another user's), UpdateWorkspace and DeleteWorkspace (outsiders, members
//! below the required role, taken slug), UpdateMemberRole and RemoveMember (non-members,
//! members below admin, non-owners touching an owner, the last owner). Each refusal leaves the
//! workspace and its members as they were.

mod common;

use common::clients::{alike, unknown_id, ws};
use common::contract::refused;
use common::{Backend, TestApp, platform_admin, sign_in, with_bearer};
use sentinel::proto::v1::{
    CreateWorkspaceRequest, DeleteWorkspaceRequest, GetWorkspaceRequest, ListMembersRequest,
    ListWorkspacesRequest, RemoveMemberRequest, UpdateMemberRoleRequest, UpdateWorkspaceRequest,
    Workspace, WorkspaceRole,
    WorkspaceRole::{Admin, Editor, Owner, Viewer},
};
use tonic::{Code, Status};

both_backends!(
    creating_and_reading_refuse_taken_slugs_bad_input_and_outsiders,
    updating_and_deleting_need_the_role_and_a_free_slug,
    role_changes_and_removals_keep_an_owner_and_need_admin,
);

async fn get(app: &TestApp, token: &str, id: &str) -> Result<(Workspace, i32), Status> {
    ws(app)
        .get_workspace(with_bearer(GetWorkspaceRequest { id: id.into() }, token))
        .await
        .map(|r| {
            let r = r.into_inner();
            (r.workspace.unwrap(), r.role)
        })
}

async fn create(
    app: &TestApp,
    token: &str,
    name: &str,
    slug: &str,
    description: &str,
) -> Result<Workspace, Status> {
    ws(app)
        .create_workspace(with_bearer(
            CreateWorkspaceRequest {
                name: name.into(),
                slug: slug.into(),
                description: description.into(),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().workspace.unwrap())
}

/// The caller's workspaces, as slugs.
async fn my_slugs(app: &TestApp, token: &str) -> Vec<String> {
    let mut slugs: Vec<String> = ws(app)
        .list_workspaces(with_bearer(ListWorkspacesRequest::default(), token))
        .await
        .unwrap()
        .into_inner()
        .workspaces
        .into_iter()
        .map(|w| w.workspace.unwrap().slug)
        .collect();
    slugs.sort();
    slugs
}

/// How many workspaces a ListWorkspaces call returns.
async fn listed(
    app: &TestApp,
    token: &str,
    request: ListWorkspacesRequest,
) -> Result<usize, Status> {
    ws(app)
        .list_workspaces(with_bearer(request, token))
        .await
        .map(|r| r.into_inner().workspaces.len())
}

async fn list_members(
    app: &TestApp,
    token: &str,
    workspace_id: &str,
) -> Result<Vec<(String, i32)>, Status> {
    ws(app)
        .list_members(with_bearer(
            ListMembersRequest {
                workspace_id: workspace_id.into(),
                page_size: 500,
                ..Default::default()
            },
            token,
        ))
        .await
        .map(|r| {
            let mut members: Vec<(String, i32)> = r
                .into_inner()
                .members
                .into_iter()
                .map(|m| (m.user.unwrap().email, m.role))
                .collect();
            members.sort();
            members
        })
}

async fn update(
    app: &TestApp,
    token: &str,
    request: UpdateWorkspaceRequest,
) -> Result<Workspace, Status> {
    ws(app)
        .update_workspace(with_bearer(request, token))
        .await
        .map(|r| r.into_inner().workspace.unwrap())
}

async fn delete(app: &TestApp, token: &str, id: &str) -> Result<String, Status> {
    ws(app)
        .delete_workspace(with_bearer(DeleteWorkspaceRequest { id: id.into() }, token))
        .await
        .map(|r| r.into_inner().consistency_token)
}

async fn set_role(
    app: &TestApp,
    token: &str,
    workspace_id: &str,
    user_id: &str,
    role: WorkspaceRole,
) -> Result<i32, Status> {
    ws(app)
        .update_member_role(with_bearer(
            UpdateMemberRoleRequest {
                workspace_id: workspace_id.into(),
                user_id: user_id.into(),
                role: role as i32,
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().member.unwrap().role)
}

async fn remove(
    app: &TestApp,
    token: &str,
    workspace_id: &str,
    user_id: &str,
) -> Result<i32, Status> {
    ws(app)
        .remove_member(with_bearer(
            RemoveMemberRequest {
                workspace_id: workspace_id.into(),
                user_id: user_id.into(),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().revoked_session_count)
}

async fn creating_and_reading_refuse_taken_slugs_bad_input_and_outsiders(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let ann = sign_in(&app, "ann@example.com", "home", "owner").await;
    let bob = sign_in(&app, "bob@example.com", "elsewhere", "owner").await;
    let acme = create(&app, &ann.access_token, "Acme", "acme", "")
        .await
        .unwrap();

    // CreateWorkspace: a taken slug, whoever took it, is ALREADY_EXISTS and creates nothing.
    for slug in ["acme", "elsewhere", "home"] {
        refused(
            "WorkspaceService/CreateWorkspace",
            Code::AlreadyExists,
            create(&app, &bob.access_token, "Bob's copy", slug, "").await,
        );
    }
    assert_eq!(my_slugs(&app, &bob.access_token).await, ["elsewhere"]);
    let (kept, _) = get(&app, &ann.access_token, &acme.id).await.unwrap();
    assert_eq!(kept.name, "Acme", "the taken workspace is untouched");

    // A bad name, slug or description is INVALID_ARGUMENT naming the field.
    let long_name = "n".repeat(201);
    let long_description = "d".repeat(2001);
    for (name, slug, description, field) in [
        ("", "fresh-one", "", "name"),
        ("   ", "fresh-two", "", "name"),
        (long_name.as_str(), "fresh-three", "", "name"),
        ("Bad\u{202e}Name", "fresh-four", "", "name"),
        ("Fresh", "Bad Slug", "", "slug"),
        ("Fresh", "-x", "", "slug"),
        ("Fresh", "x-", "", "slug"),
        ("Fresh", "a", "", "slug"),
        ("Fresh", "fresh_five", "", "slug"),
        (
            "Fresh",
            "fresh-six",
            long_description.as_str(),
            "description",
        ),
    ] {
        let status = refused(
            "WorkspaceService/CreateWorkspace",
            Code::InvalidArgument,
            create(&app, &bob.access_token, name, slug, description).await,
        );
        assert!(
            status.message().contains(field),
            "{field}: {}",
            status.message()
        );
    }
    assert_eq!(
        my_slugs(&app, &bob.access_token).await,
        ["elsewhere"],
        "nothing was created"
    );

    // GetWorkspace and ListMembers: an existing workspace bob is not in answers exactly like an
    // unknown id; ann, a member, reads both.
    let hidden = refused(
        "WorkspaceService/GetWorkspace",
        Code::NotFound,
        get(&app, &bob.access_token, &acme.id).await,
    );
    let missing = refused(
        "WorkspaceService/GetWorkspace",
        Code::NotFound,
        get(&app, &bob.access_token, &unknown_id()).await,
    );
    alike(&hidden, &missing);
    assert_eq!(
        get(&app, &ann.access_token, &acme.id).await.unwrap().1,
        Owner as i32
    );
    let hidden = refused(
        "WorkspaceService/ListMembers",
        Code::NotFound,
        list_members(&app, &bob.access_token, &acme.id).await,
    );
    let missing = refused(
        "WorkspaceService/ListMembers",
        Code::NotFound,
        list_members(&app, &bob.access_token, &unknown_id()).await,
    );
    alike(&hidden, &missing);
    assert_eq!(
        list_members(&app, &ann.access_token, &acme.id)
            .await
            .unwrap(),
        [("ann@example.com".to_string(), Owner as i32)]
    );

    // ListWorkspaces: a non-admin may list only their own workspaces, not all nor another
    // user's; naming themself is their own listing.
    let listing = |all: bool, user_id: String| ListWorkspacesRequest {
        all,
        user_id,
        ..Default::default()
    };
    for request in [
        listing(true, String::new()),
        listing(false, ann.user.id.to_string()),
        listing(true, ann.user.id.to_string()),
        listing(false, unknown_id()),
    ] {
        refused(
            "WorkspaceService/ListWorkspaces",
            Code::PermissionDenied,
            listed(&app, &bob.access_token, request).await,
        );
    }
    let own = listing(false, bob.user.id.to_string());
    assert_eq!(listed(&app, &bob.access_token, own).await.unwrap(), 1);
    // The same requests are a platform admin's to make.
    let root = platform_admin(&app).await;
    let everything = listed(&app, &root, listing(true, String::new())).await;
    assert_eq!(everything.unwrap(), 4, "home, elsewhere, acme, ops");
    let anns = listed(&app, &root, listing(false, ann.user.id.to_string())).await;
    assert_eq!(anns.unwrap(), 2, "home and acme");

    app.stop().await;
}

async fn updating_and_deleting_need_the_role_and_a_free_slug(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let acme = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let adam = sign_in(&app, "adam@example.com", "acme", "admin").await;
    let ed = sign_in(&app, "ed@example.com", "acme", "editor").await;
    let vic = sign_in(&app, "vic@example.com", "acme", "viewer").await;
    let bob = sign_in(&app, "bob@example.com", "elsewhere", "owner").await;
    let elsewhere = bob.scope.as_ref().unwrap().workspace.id.to_string();
    let rename = |id: &str, name: &str| UpdateWorkspaceRequest {
        id: id.into(),
        name: Some(name.into()),
        ..Default::default()
    };

    // UpdateWorkspace: outsiders see NOT_FOUND, the same for acme as for an unknown id.
    let hidden = refused(
        "WorkspaceService/UpdateWorkspace",
        Code::NotFound,
        update(&app, &bob.access_token, rename(&acme, "Taken over")).await,
    );
    let missing = refused(
        "WorkspaceService/UpdateWorkspace",
        Code::NotFound,
        update(&app, &bob.access_token, rename(&unknown_id(), "Taken over")).await,
    );
    alike(&hidden, &missing);
    refused(
        "WorkspaceService/UpdateWorkspace",
        Code::NotFound,
        update(&app, &ann.access_token, rename(&unknown_id(), "Nowhere")).await,
    );
    // Members below admin may not change it, not even its description.
    let quietly = UpdateWorkspaceRequest {
        id: acme.clone(),
        slug: Some("renamed".into()),
        description: Some("mine now".into()),
        ..Default::default()
    };
    for token in [&ed.access_token, &vic.access_token] {
        for request in [rename(&acme, "Renamed"), quietly.clone()] {
            refused(
                "WorkspaceService/UpdateWorkspace",
                Code::PermissionDenied,
                update(&app, token, request).await,
            );
        }
    }
    // A slug another workspace has is ALREADY_EXISTS, for the owner and for an admin, and the
    // other fields of the refused request are not applied either.
    for token in [&ann.access_token, &adam.access_token] {
        let request = UpdateWorkspaceRequest {
            id: acme.clone(),
            name: Some("Half applied".into()),
            slug: Some("elsewhere".into()),
            ..Default::default()
        };
        refused(
            "WorkspaceService/UpdateWorkspace",
            Code::AlreadyExists,
            update(&app, token, request).await,
        );
    }
    let (unchanged, _) = get(&app, &ann.access_token, &acme).await.unwrap();
    assert_eq!(
        (unchanged.name.as_str(), unchanged.slug.as_str()),
        ("acme", "acme")
    );
    assert_eq!(unchanged.description, "");
    let (theirs, _) = get(&app, &bob.access_token, &elsewhere).await.unwrap();
    assert_eq!(
        theirs.name, "elsewhere",
        "the outsider's attempt changed nothing"
    );
    // Keeping its own slug is no conflict; an admin renames it.
    let renamed = update(
        &app,
        &adam.access_token,
        UpdateWorkspaceRequest {
            id: acme.clone(),
            name: Some("Acme Inc".into()),
            slug: Some("acme".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(renamed.name, "Acme Inc");

    // DeleteWorkspace: outsiders see NOT_FOUND, the same for acme as for an unknown id.
    let hidden = refused(
        "WorkspaceService/DeleteWorkspace",
        Code::NotFound,
        delete(&app, &bob.access_token, &acme).await,
    );
    let missing = refused(
        "WorkspaceService/DeleteWorkspace",
        Code::NotFound,
        delete(&app, &bob.access_token, &unknown_id()).await,
    );
    alike(&hidden, &missing);
    // Below owner, an admin included, is PERMISSION_DENIED; the workspace and its members stay.
    for token in [&adam.access_token, &ed.access_token, &vic.access_token] {
        refused(
            "WorkspaceService/DeleteWorkspace",
            Code::PermissionDenied,
            delete(&app, token, &acme).await,
        );
    }
    assert_eq!(
        list_members(&app, &vic.access_token, &acme)
            .await
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        get(&app, &adam.access_token, &acme).await.unwrap().0.name,
        "Acme Inc"
    );
    // The owner deletes it; then it is NOT_FOUND for its former members.
    delete(&app, &ann.access_token, &acme).await.unwrap();
    let root = platform_admin(&app).await;
    refused(
        "WorkspaceService/DeleteWorkspace",
        Code::NotFound,
        delete(&app, &root, &acme).await,
    );

    app.stop().await;
}

async fn role_changes_and_removals_keep_an_owner_and_need_admin(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let acme = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let adam = sign_in(&app, "adam@example.com", "acme", "admin").await;
    let ed = sign_in(&app, "ed@example.com", "acme", "editor").await;
    let vic = sign_in(&app, "vic@example.com", "acme", "viewer").await;
    let bob = sign_in(&app, "bob@example.com", "elsewhere", "owner").await;
    let root = platform_admin(&app).await;
    let [ann_id, adam_id, ed_id, vic_id, bob_id] =
        [&ann, &adam, &ed, &vic, &bob].map(|t| t.user.id.to_string());
    let roster = list_members(&app, &ann.access_token, &acme).await.unwrap();
    let roles: Vec<i32> = roster.iter().map(|(_, role)| *role).collect();
    assert_eq!(
        roles,
        [Admin, Owner, Editor, Viewer].map(|r| r as i32),
        "adam ann ed vic"
    );

    // UpdateMemberRole NOT_FOUND: the user is not a member (an existing user or an unknown id);
    // and an outsider sees acme exactly like an unknown workspace.
    for user in [&bob_id, &unknown_id()] {
        refused(
            "WorkspaceService/UpdateMemberRole",
            Code::NotFound,
            set_role(&app, &ann.access_token, &acme, user, Viewer).await,
        );
    }
    let hidden = refused(
        "WorkspaceService/UpdateMemberRole",
        Code::NotFound,
        set_role(&app, &bob.access_token, &acme, &vic_id, Editor).await,
    );
    let missing = refused(
        "WorkspaceService/UpdateMemberRole",
        Code::NotFound,
        set_role(&app, &bob.access_token, &unknown_id(), &vic_id, Editor).await,
    );
    alike(&hidden, &missing);
    // PERMISSION_DENIED: an editor or a viewer changes any role (their own too); an admin
    // grants or removes the owner role.
    for (token, target, role) in [
        (&ed.access_token, &vic_id, Editor),
        (&ed.access_token, &ed_id, Admin),
        (&vic.access_token, &ed_id, Viewer),
        (&vic.access_token, &vic_id, Editor),
        (&adam.access_token, &ed_id, Owner),
        (&adam.access_token, &adam_id, Owner),
        (&adam.access_token, &ann_id, Admin),
    ] {
        refused(
            "WorkspaceService/UpdateMemberRole",
            Code::PermissionDenied,
            set_role(&app, token, &acme, target, role).await,
        );
    }
    // FAILED_PRECONDITION: the only owner demoted, by herself or by a platform admin.
    for (token, role) in [(&ann.access_token, Admin), (&root, Viewer)] {
        let status = refused(
            "WorkspaceService/UpdateMemberRole",
            Code::FailedPrecondition,
            set_role(&app, token, &acme, &ann_id, role).await,
        );
        assert!(status.message().contains("owner"), "{}", status.message());
    }
    assert_eq!(
        list_members(&app, &ann.access_token, &acme).await.unwrap(),
        roster,
        "no role changed"
    );

    // RemoveMember NOT_FOUND: the user is not a member; an outsider sees acme like an unknown
    // workspace.
    for user in [&bob_id, &unknown_id()] {
        refused(
            "WorkspaceService/RemoveMember",
            Code::NotFound,
            remove(&app, &ann.access_token, &acme, user).await,
        );
    }
    let hidden = refused(
        "WorkspaceService/RemoveMember",
        Code::NotFound,
        remove(&app, &bob.access_token, &acme, &vic_id).await,
    );
    let missing = refused(
        "WorkspaceService/RemoveMember",
        Code::NotFound,
        remove(&app, &bob.access_token, &unknown_id(), &vic_id).await,
    );
    alike(&hidden, &missing);
    // PERMISSION_DENIED: an editor or a viewer removes someone else; an admin removes an owner.
    for (token, target) in [
        (&ed.access_token, &vic_id),
        (&ed.access_token, &adam_id),
        (&vic.access_token, &ed_id),
        (&adam.access_token, &ann_id),
    ] {
        refused(
            "WorkspaceService/RemoveMember",
            Code::PermissionDenied,
            remove(&app, token, &acme, target).await,
        );
    }
    // FAILED_PRECONDITION: the only owner removed, by herself (leaving) or by a platform admin.
    for token in [&ann.access_token, &root] {
        let status = refused(
            "WorkspaceService/RemoveMember",
            Code::FailedPrecondition,
            remove(&app, token, &acme, &ann_id).await,
        );
        assert!(status.message().contains("owner"), "{}", status.message());
    }
    assert_eq!(
        list_members(&app, &vic.access_token, &acme).await.unwrap(),
        roster,
        "nobody was removed"
    );

    // With a second owner, the first may step down and leave.
    set_role(&app, &ann.access_token, &acme, &adam_id, Owner)
        .await
        .unwrap();
    remove(&app, &ann.access_token, &acme, &ann_id)
        .await
        .unwrap();
    let after = list_members(&app, &root, &acme).await.unwrap();
    assert_eq!(
        after,
        [
            ("adam@example.com".to_string(), Owner as i32),
            ("ed@example.com".to_string(), Editor as i32),
            ("vic@example.com".to_string(), Viewer as i32),
        ]
    );

    app.stop().await;
}
