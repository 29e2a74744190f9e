//! The documented errors of PermissionService's resource writes, on both backends: every code
//! the `Errors:` paragraphs of RegisterResource, DeleteResource, SetVisibility, SetOwner,
//! Share, Unshare and GetResource list, each under the condition the paragraph names, and that
//! a refused write leaves the resource, its grants and the checks answered on it unchanged.

mod common;

use common::clients::{group_grantee, perms, rref, user_grantee};
use common::contract::refused;
use common::{Backend, TestApp, dual, service_key, sign_in, with_bearer, with_service_key};
use sentinel::model::{GroupId, UserId, WorkspaceId};
use sentinel::proto::v1::workspace_service_client::WorkspaceServiceClient;
use sentinel::proto::v1::{
    self as pb, CreateGroupRequest, DeleteResourceRequest, GetResourceRequest, Grantee, Permission,
    RegisterResourceRequest, SetOwnerRequest, SetVisibilityRequest, ShareRequest, UnshareRequest,
    Visibility,
};
use sentinel::tokens::service::IssuedTokens;
use tonic::{Code, Status};

both_backends!(
    registration_refusals_leave_the_registry_unchanged,
    visibility_and_owner_refusals_leave_the_resource_unchanged,
    sharing_refusals_leave_the_grants_unchanged,
);

/// A private resource of `workspace`, upserted.
fn resource(t: &str, id: &str, workspace: WorkspaceId) -> RegisterResourceRequest {
    RegisterResourceRequest {
        resource_type: t.into(),
        resource_id: id.into(),
        workspace_id: workspace.to_string(),
        owner_id: String::new(),
        visibility: Visibility::Private as i32,
        parent: None,
        upsert: true,
    }
}

/// `request` with `owner` as its owner.
fn owned(request: RegisterResourceRequest, owner: UserId) -> RegisterResourceRequest {
    RegisterResourceRequest {
        owner_id: owner.to_string(),
        ..request
    }
}

/// `request` with the parent `t/id`.
fn under(request: RegisterResourceRequest, t: &str, id: &str) -> RegisterResourceRequest {
    RegisterResourceRequest {
        parent: rref(t, id),
        ..request
    }
}

/// The people of two workspaces: ann owns acme, bob edits and carl views in it; zed owns
/// other, where ann is a viewer too.
struct People {
    key: String,
    ann: IssuedTokens,
    ann_in_other: IssuedTokens,
    bob: IssuedTokens,
    carl: IssuedTokens,
    zed: IssuedTokens,
    acme: WorkspaceId,
    other: WorkspaceId,
}

async fn people(app: &TestApp) -> People {
    let key = service_key(app, "docs").await;
    let ann = sign_in(app, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(app, "bob@example.com", "acme", "editor").await;
    let carl = sign_in(app, "carl@example.com", "acme", "viewer").await;
    let zed = sign_in(app, "zed@example.com", "other", "owner").await;
    let ann_in_other = sign_in(app, "ann@example.com", "other", "viewer").await;
    let acme = ann.scope.as_ref().unwrap().workspace.id;
    let other = zed.scope.as_ref().unwrap().workspace.id;
    People {
        key,
        ann,
        ann_in_other,
        bob,
        carl,
        zed,
        acme,
        other,
    }
}

async fn register(
    app: &TestApp,
    key: &str,
    request: RegisterResourceRequest,
) -> Result<pb::RegisterResourceResponse, Status> {
    perms(app)
        .register_resource(with_service_key(request, key))
        .await
        .map(|r| r.into_inner())
}

async fn get(app: &TestApp, key: &str, t: &str, id: &str) -> Result<pb::Resource, Status> {
    perms(app)
        .get_resource(with_service_key(
            GetResourceRequest {
                resource: rref(t, id),
                enrich: false,
            },
            key,
        ))
        .await
        .map(|r| r.into_inner().resource.unwrap())
}

async fn create_group(app: &TestApp, owner: &IssuedTokens, name: &str) -> String {
    WorkspaceServiceClient::new(app.channel.clone())
        .create_group(with_bearer(
            CreateGroupRequest {
                workspace_id: owner.scope.as_ref().unwrap().workspace.id.to_string(),
                name: name.into(),
                description: String::new(),
            },
            &owner.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap()
        .id
}

#[track_caller]
fn names(status: &Status, field: &str) {
    assert!(
        status.message().contains(field),
        "{field}: {}",
        status.message()
    );
}

async fn registration_refusals_leave_the_registry_unchanged(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let p = people(&app).await;
    let key = p.key.as_str();
    // acme: folder/root (ann's) holds doc/a; doc/shared has a grant; other: doc/z.
    let root = owned(resource("folder", "root", p.acme), p.ann.user.id);
    register(&app, key, root.clone()).await.unwrap();
    let child = under(resource("doc", "a", p.acme), "folder", "root");
    register(&app, key, child).await.unwrap();
    register(&app, key, resource("doc", "shared", p.acme))
        .await
        .unwrap();
    perms(&app)
        .share(with_service_key(
            ShareRequest {
                resource: rref("doc", "shared"),
                grantee: user_grantee(p.bob.user.id),
                permission: Permission::View as i32,
                expires_at: None,
            },
            key,
        ))
        .await
        .unwrap();
    register(&app, key, resource("doc", "z", p.other))
        .await
        .unwrap();

    // NOT_FOUND: a workspace that does not exist; a parent that is not registered.
    let orphan = under(resource("doc", "new", p.acme), "folder", "missing");
    for (request, field) in [
        (resource("doc", "new", WorkspaceId::random()), "workspace"),
        (orphan, "parent"),
    ] {
        let status = refused(
            "PermissionService/RegisterResource",
            Code::NotFound,
            register(&app, key, request).await,
        );
        names(&status, field);
    }

    // FAILED_PRECONDITION, one rule after the other.
    let zed = p.zed.user.id;
    for (request, field) in [
        // An owner who is no member of the workspace, for a new resource and in an upsert.
        (owned(resource("doc", "new", p.acme), zed), "owner_id"),
        (owned(root.clone(), zed), "owner_id"),
        // A parent in another workspace.
        (
            under(resource("doc", "new", p.acme), "doc", "z"),
            "another workspace",
        ),
        // A parent closing a cycle: root under its own child, and a resource under itself.
        (under(root.clone(), "doc", "a"), "cycle"),
        (under(resource("doc", "a", p.acme), "doc", "a"), "parent"),
        // An upsert moving to another workspace a resource with a grant, or with a child.
        (resource("doc", "shared", p.other), "workspace_id"),
        (resource("folder", "root", p.other), "workspace_id"),
    ] {
        let status = refused(
            "PermissionService/RegisterResource",
            Code::FailedPrecondition,
            register(&app, key, request).await,
        );
        names(&status, field);
    }

    // INVALID_ARGUMENT: resource types outside `^[a-z][a-z0-9_]{0,63}$`, ids outside 1 to 256
    // bytes.
    let long_type = format!("t{}", "x".repeat(64));
    for bad in ["", "Doc", "9doc", "doc-x", "doc x", long_type.as_str()] {
        let status = refused(
            "PermissionService/RegisterResource",
            Code::InvalidArgument,
            register(&app, key, resource(bad, "new", p.acme)).await,
        );
        names(&status, "resource_type");
    }
    // Empty, over 256 bytes, or with a control character (PostgreSQL's text holds no NUL).
    let long_id = "é".repeat(129);
    for bad in ["", long_id.as_str(), "line\nbreak", "bad\0id", "x\u{1}y"] {
        let status = refused(
            "PermissionService/RegisterResource",
            Code::InvalidArgument,
            register(&app, key, resource("doc", bad, p.acme)).await,
        );
        names(&status, "resource_id");
    }

    // Nothing was registered or changed by the refusals.
    let status = refused(
        "PermissionService/GetResource",
        Code::NotFound,
        get(&app, key, "doc", "new").await,
    );
    names(&status, "resource");
    let got = get(&app, key, "folder", "root").await.unwrap();
    assert_eq!(got.workspace_id, p.acme.to_string());
    assert_eq!(got.owner_id, p.ann.user.id.to_string());
    assert_eq!(got.parent, None);
    let a = get(&app, key, "doc", "a").await.unwrap();
    assert_eq!(a.parent, rref("folder", "root"));
    let shared = get(&app, key, "doc", "shared").await.unwrap();
    assert_eq!(shared.workspace_id, p.acme.to_string());
    assert_eq!(shared.grants.len(), 1);
    assert!(common::allowed(&app, key, &p.bob.access_token, "doc", "shared", "view").await);

    // The limits are where the contract puts them: a 64-character type and a 256-byte id pass,
    // and a resource without grants or children moves.
    let longest = RegisterResourceRequest {
        resource_id: "é".repeat(128),
        ..resource(&format!("t{}", "x".repeat(63)), "", p.acme)
    };
    assert!(register(&app, key, longest).await.unwrap().created);
    register(&app, key, resource("doc", "lone", p.acme))
        .await
        .unwrap();
    let moved = register(&app, key, resource("doc", "lone", p.other))
        .await
        .unwrap();
    assert_eq!(moved.resource.unwrap().workspace_id, p.other.to_string());

    // DeleteResource: NOT_FOUND for a resource that does not exist, or that is another
    // service's; allow_missing turns the first into a success that deletes nothing.
    let delete = |key: &str, id: &str, allow_missing: bool| {
        let request = with_service_key(
            DeleteResourceRequest {
                resource: rref("doc", id),
                allow_missing,
            },
            key,
        );
        let mut client = perms(&app);
        async move {
            client
                .delete_resource(request)
                .await
                .map(|r| r.into_inner())
        }
    };
    let status = refused(
        "PermissionService/DeleteResource",
        Code::NotFound,
        delete(key, "missing", false).await,
    );
    names(&status, "resource");
    let quiet = delete(key, "missing", true).await.unwrap();
    assert!(!quiet.deleted);
    assert!(!quiet.consistency_token.is_empty());
    let mail = service_key(&app, "mail").await;
    refused(
        "PermissionService/DeleteResource",
        Code::NotFound,
        delete(&mail, "a", false).await,
    );
    refused(
        "PermissionService/GetResource",
        Code::NotFound,
        get(&app, &mail, "doc", "a").await,
    );
    assert!(!delete(&mail, "a", true).await.unwrap().deleted);
    assert!(get(&app, key, "doc", "a").await.is_ok(), "kept");
    app.stop().await;
}

async fn visibility_and_owner_refusals_leave_the_resource_unchanged(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let p = people(&app).await;
    let key = p.key.as_str();
    let doc = owned(resource("doc", "a", p.acme), p.ann.user.id);
    register(&app, key, doc).await.unwrap();
    let set_visibility = |id: &str, visibility: Visibility| {
        let request = with_service_key(
            SetVisibilityRequest {
                resource: rref("doc", id),
                visibility: visibility as i32,
            },
            key,
        );
        let mut client = perms(&app);
        async move { client.set_visibility(request).await.map(|r| r.into_inner()) }
    };
    let set_owner = |id: &str, owner: String| {
        let request = with_service_key(
            SetOwnerRequest {
                resource: rref("doc", id),
                owner_id: owner,
            },
            key,
        );
        let mut client = perms(&app);
        async move { client.set_owner(request).await.map(|r| r.into_inner()) }
    };

    // SetVisibility: NOT_FOUND for an unknown resource; INVALID_ARGUMENT for unspecified.
    let status = refused(
        "PermissionService/SetVisibility",
        Code::NotFound,
        set_visibility("missing", Visibility::Workspace).await,
    );
    names(&status, "resource");
    let status = refused(
        "PermissionService/SetVisibility",
        Code::InvalidArgument,
        set_visibility("a", Visibility::Unspecified).await,
    );
    names(&status, "visibility");
    // Still private: the editor and the viewer may not see it.
    let got = get(&app, key, "doc", "a").await.unwrap();
    assert_eq!(got.visibility, Visibility::Private as i32);
    for member in [&p.bob, &p.carl] {
        assert!(!common::allowed(&app, key, &member.access_token, "doc", "a", "view").await);
    }
    refused(
        "PermissionService/GetResource",
        Code::NotFound,
        get(&app, key, "doc", "missing").await,
    );

    // SetOwner: NOT_FOUND for an unknown resource and for an unknown user; FAILED_PRECONDITION
    // for a user who exists but is not a member of the resource's workspace.
    let status = refused(
        "PermissionService/SetOwner",
        Code::NotFound,
        set_owner("missing", p.bob.user.id.to_string()).await,
    );
    names(&status, "resource");
    let status = refused(
        "PermissionService/SetOwner",
        Code::NotFound,
        set_owner("a", UserId::random().to_string()).await,
    );
    names(&status, "user");
    let status = refused(
        "PermissionService/SetOwner",
        Code::FailedPrecondition,
        set_owner("a", p.zed.user.id.to_string()).await,
    );
    names(&status, "owner_id");
    let got = get(&app, key, "doc", "a").await.unwrap();
    assert_eq!(got.owner_id, p.ann.user.id.to_string());
    assert_eq!(got.visibility, Visibility::Private as i32);

    // The same calls with valid values succeed: the refusals were about the values.
    let made_public = set_visibility("a", Visibility::Workspace).await.unwrap();
    assert_eq!(
        made_public.resource.unwrap().visibility,
        Visibility::Workspace as i32
    );
    let handed = set_owner("a", p.carl.user.id.to_string()).await.unwrap();
    assert_eq!(
        handed.resource.unwrap().owner_id,
        p.carl.user.id.to_string()
    );
    app.stop().await;
}

async fn sharing_refusals_leave_the_grants_unchanged(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let p = people(&app).await;
    let key = p.key.as_str();
    let team = create_group(&app, &p.ann, "team").await;
    let theirs = create_group(&app, &p.zed, "theirs").await;
    // doc/a is ann's and private; doc/b is bob's; carl holds a view grant on doc/c.
    for (id, owner) in [("a", &p.ann), ("b", &p.bob), ("c", &p.ann)] {
        let doc = owned(resource("doc", id, p.acme), owner.user.id);
        register(&app, key, doc).await.unwrap();
    }
    let share = |token: Option<&str>,
                 id: &str,
                 grantee: Option<Grantee>,
                 permission: Permission,
                 expires_at: Option<prost_types::Timestamp>| {
        let message = ShareRequest {
            resource: rref("doc", id),
            grantee,
            permission: permission as i32,
            expires_at,
        };
        let request = match token {
            Some(token) => dual(message, key, token),
            None => with_service_key(message, key),
        };
        let mut client = perms(&app);
        async move { client.share(request).await.map(|r| r.into_inner()) }
    };
    share(
        None,
        "c",
        user_grantee(p.carl.user.id),
        Permission::View,
        None,
    )
    .await
    .unwrap();

    // NOT_FOUND: the resource, an unknown user, an unknown group.
    let status = refused(
        "PermissionService/Share",
        Code::NotFound,
        share(
            None,
            "missing",
            user_grantee(p.bob.user.id),
            Permission::View,
            None,
        )
        .await,
    );
    names(&status, "resource");
    let status = refused(
        "PermissionService/Share",
        Code::NotFound,
        share(
            None,
            "a",
            user_grantee(UserId::random()),
            Permission::View,
            None,
        )
        .await,
    );
    names(&status, "user");
    let status = refused(
        "PermissionService/Share",
        Code::NotFound,
        share(
            None,
            "a",
            group_grantee(GroupId::random()),
            Permission::View,
            None,
        )
        .await,
    );
    names(&status, "group");
    // PERMISSION_DENIED: an editor and a viewer of the workspace who do not own the resource,
    // and its workspace's owner acting with a token of another workspace.
    for member in [&p.bob, &p.carl, &p.ann_in_other] {
        refused(
            "PermissionService/Share",
            Code::PermissionDenied,
            share(
                Some(&member.access_token),
                "a",
                user_grantee(p.bob.user.id),
                Permission::Edit,
                None,
            )
            .await,
        );
    }
    // FAILED_PRECONDITION: a grantee who is no member of acme; a group of another workspace.
    let status = refused(
        "PermissionService/Share",
        Code::FailedPrecondition,
        share(
            None,
            "a",
            user_grantee(p.zed.user.id),
            Permission::View,
            None,
        )
        .await,
    );
    names(&status, "member");
    let status = refused(
        "PermissionService/Share",
        Code::FailedPrecondition,
        share(None, "a", group_grantee(&theirs), Permission::View, None).await,
    );
    names(&status, "group");
    // INVALID_ARGUMENT: no permission; an expiry in the past.
    let status = refused(
        "PermissionService/Share",
        Code::InvalidArgument,
        share(
            None,
            "a",
            user_grantee(p.bob.user.id),
            Permission::Unspecified,
            None,
        )
        .await,
    );
    names(&status, "permission");
    let past = prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() - 60,
        nanos: 0,
    };
    let status = refused(
        "PermissionService/Share",
        Code::InvalidArgument,
        share(
            None,
            "a",
            user_grantee(p.bob.user.id),
            Permission::View,
            Some(past),
        )
        .await,
    );
    names(&status, "expires_at");
    // doc/a holds no grant; nobody but ann may see it.
    assert!(get(&app, key, "doc", "a").await.unwrap().grants.is_empty());
    for member in [&p.bob, &p.carl] {
        assert!(!common::allowed(&app, key, &member.access_token, "doc", "a", "view").await);
    }
    // The owner of a resource may share it though only an editor, and the workspace owner may.
    share(
        Some(&p.bob.access_token),
        "b",
        group_grantee(&team),
        Permission::View,
        None,
    )
    .await
    .unwrap();
    share(
        Some(&p.ann.access_token),
        "a",
        user_grantee(p.bob.user.id),
        Permission::View,
        None,
    )
    .await
    .unwrap();

    // Unshare: NOT_FOUND for the resource; PERMISSION_DENIED for an editor who does not own
    // it, and for the grantee, a viewer, removing their own grant.
    let unshare = |token: Option<&str>, id: &str, grantee: Option<Grantee>| {
        let message = UnshareRequest {
            resource: rref("doc", id),
            grantee,
            permission: Permission::Unspecified as i32,
        };
        let request = match token {
            Some(token) => dual(message, key, token),
            None => with_service_key(message, key),
        };
        let mut client = perms(&app);
        async move { client.unshare(request).await.map(|r| r.into_inner()) }
    };
    let status = refused(
        "PermissionService/Unshare",
        Code::NotFound,
        unshare(None, "missing", user_grantee(p.carl.user.id)).await,
    );
    names(&status, "resource");
    for member in [&p.bob, &p.carl] {
        refused(
            "PermissionService/Unshare",
            Code::PermissionDenied,
            unshare(
                Some(&member.access_token),
                "c",
                user_grantee(p.carl.user.id),
            )
            .await,
        );
    }
    let c = get(&app, key, "doc", "c").await.unwrap();
    assert_eq!(c.grants.len(), 1);
    assert_eq!(c.grants[0].grantee, user_grantee(p.carl.user.id));
    assert!(common::allowed(&app, key, &p.carl.access_token, "doc", "c", "view").await);
    // The resource's owner may remove it.
    let removed = unshare(Some(&p.ann.access_token), "c", user_grantee(p.carl.user.id))
        .await
        .unwrap();
    assert!(removed.removed);
    app.stop().await;
}
