//! The permission engine over the wire, on both backends: consistency across instances, pinned
//! lookup pages under concurrent writes, Watch, cascades, and bad input. The comparison with the
//! reference model under random writes is `tests/permission_model.rs`.

mod common;

use common::clients::{fresh, group_grantee, perms, rref, user_grantee};
use common::resources::{add_to_group, create_group, lookup_all, register};
use std::collections::HashSet;

use chrono::Utc;
use common::wait::{eventually, next};
use common::{
    Backend, TestApp, TestDatabase, dual, service_key, sign_in, with_bearer, with_service_key,
};
use sentinel::model::GroupId;
use sentinel::proto::v1::service_app_service_client::ServiceAppServiceClient;
use sentinel::proto::v1::workspace_service_client::WorkspaceServiceClient;
use sentinel::proto::v1::{
    self as pb, ChangeOperation, CheckBulkItem, CheckBulkRequest, CheckRequest, Consistency,
    DeleteResourceRequest, GetResourceRequest, Grantee, LookupResourcesRequest, Permission,
    ResourceRef, ShareRequest, UnshareRequest, Visibility, WatchRequest, consistency::Requirement,
};
use tonic::Code;

both_backends!(
    a_write_on_one_instance_is_seen_on_another_with_its_token,
    lookup_pages_are_pinned_while_writes_happen,
    bad_input_gets_clear_codes_and_changes_nothing,
    watch_streams_the_services_changes_in_order,
    deleting_a_service_or_workspace_removes_its_resources,
);

async fn a_write_on_one_instance_is_seen_on_another_with_its_token(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let a = TestApp::start(db.config()).await;
    let b = TestApp::start(db.config()).await;
    let key = service_key(&a, "docs").await;
    let ann = sign_in(&a, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&a, "bob@example.com", "acme", "viewer").await;
    let w = ann.scope.as_ref().unwrap().workspace.id;
    for i in 0..15 {
        let id = format!("secret-{i}");
        register(
            &a,
            &key,
            "doc",
            &id,
            w,
            Some(ann.user.id),
            Visibility::Private,
            None,
        )
        .await
        .unwrap();
        let shared = perms(&a)
            .share(with_service_key(
                ShareRequest {
                    resource: rref("doc", &id),
                    grantee: user_grantee(bob.user.id),
                    permission: Permission::View as i32,
                    expires_at: None,
                },
                &key,
            ))
            .await
            .unwrap()
            .into_inner();
        // Immediately, on the other instance, with the write's token.
        let seen = perms(&b)
            .check(dual(
                CheckRequest {
                    resource: rref("doc", &id),
                    action: "view".into(),
                    consistency: fresh(&shared.consistency_token),
                },
                &key,
                &bob.access_token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(seen.allowed, "instance B must see write {i} with its token");
        // And the revocation of the grant, the same way.
        let unshared = perms(&b)
            .unshare(with_service_key(
                UnshareRequest {
                    resource: rref("doc", &id),
                    grantee: user_grantee(bob.user.id),
                    permission: 0,
                },
                &key,
            ))
            .await
            .unwrap()
            .into_inner();
        let gone = perms(&a)
            .check(dual(
                CheckRequest {
                    resource: rref("doc", &id),
                    action: "view".into(),
                    consistency: fresh(&unshared.consistency_token),
                },
                &key,
                &bob.access_token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(!gone.allowed, "instance A must see the unshare {i}");
    }
    // Without a token the other instance converges within the staleness bound.
    register(
        &a,
        &key,
        "doc",
        "late",
        w,
        None,
        Visibility::Workspace,
        None,
    )
    .await
    .unwrap();
    eventually("instance B follows the changelog without a token", || {
        common::allowed(&b, &key, &bob.access_token, "doc", "late", "view")
    })
    .await;
    a.stop().await;
    b.stop().await;
}

async fn lookup_pages_are_pinned_while_writes_happen(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&app, "bob@example.com", "acme", "viewer").await;
    let w = ann.scope.as_ref().unwrap().workspace.id;
    let team = create_group(&app, &ann.access_token, w, "team").await;
    add_to_group(&app, &ann.access_token, team, bob.user.id).await;
    let mut expected = Vec::new();
    for i in 0..60 {
        let id = format!("doc-{i:03}");
        let visibility = if i % 2 == 0 {
            Visibility::Workspace
        } else {
            Visibility::Private
        };
        register(&app, &key, "doc", &id, w, None, visibility, None)
            .await
            .unwrap();
        if i % 2 == 1 {
            perms(&app)
                .share(with_service_key(
                    ShareRequest {
                        resource: rref("doc", &id),
                        grantee: group_grantee(team),
                        permission: Permission::View as i32,
                        expires_at: None,
                    },
                    &key,
                ))
                .await
                .unwrap();
        }
        expected.push(id);
    }
    let mut ids = Vec::new();
    let mut page_token = String::new();
    let mut snapshot_token = None;
    let mut round = 0;
    loop {
        let page = perms(&app)
            .lookup_resources(dual(
                LookupResourcesRequest {
                    resource_type: "doc".into(),
                    action: "view".into(),
                    workspace_id: String::new(),
                    page_size: 7,
                    page_token: page_token.clone(),
                    consistency: Some(Consistency {
                        requirement: Some(Requirement::FullyConsistent(true)),
                    }),
                },
                &key,
                &bob.access_token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.resource_ids.len() <= 7);
        match &snapshot_token {
            None => snapshot_token = Some(page.consistency_token.clone()),
            Some(t) => assert_eq!(t, &page.consistency_token, "every page names the snapshot"),
        }
        ids.extend(page.resource_ids);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
        // Writes between pages: new resources before and after the cursor, deletions of ids
        // already listed and not yet listed.
        round += 1;
        for id in [format!("doc-{round:03}a"), format!("doc-999-{round}")] {
            register(&app, &key, "doc", &id, w, None, Visibility::Workspace, None)
                .await
                .unwrap();
        }
        for victim in [round * 2, 59 - round * 2] {
            perms(&app)
                .delete_resource(with_service_key(
                    DeleteResourceRequest {
                        resource: rref("doc", &format!("doc-{victim:03}")),
                        allow_missing: true,
                    },
                    &key,
                ))
                .await
                .unwrap();
        }
    }
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no id is repeated");
    assert_eq!(
        ids, expected,
        "the pages are exactly the first page's snapshot"
    );

    // A page token answers only the lookup it came from.
    let page = perms(&app)
        .lookup_resources(dual(
            LookupResourcesRequest {
                resource_type: "doc".into(),
                action: "view".into(),
                page_size: 2,
                ..Default::default()
            },
            &key,
            &bob.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    let err = perms(&app)
        .lookup_resources(dual(
            LookupResourcesRequest {
                resource_type: "doc".into(),
                action: "edit".into(),
                page_size: 2,
                page_token: page.next_page_token,
                ..Default::default()
            },
            &key,
            &bob.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("page_token"));
    // Admins and owners: full access, no ids.
    let (full, none) = lookup_all(&app, &key, &ann.access_token, "doc", "edit", 50, None).await;
    assert!(full && none.is_empty());
    app.stop().await;
}

async fn bad_input_gets_clear_codes_and_changes_nothing(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&app, "bob@example.com", "acme", "viewer").await;
    let zed = sign_in(&app, "zed@example.com", "other", "owner").await;
    let w = ann.scope.as_ref().unwrap().workspace.id;
    let other = zed.scope.as_ref().unwrap().workspace.id;
    let foreign_group = create_group(&app, &zed.access_token, other, "theirs").await;
    register(
        &app,
        &key,
        "folder",
        "root",
        w,
        Some(ann.user.id),
        Visibility::Private,
        None,
    )
    .await
    .unwrap();
    register(
        &app,
        &key,
        "doc",
        "a",
        w,
        None,
        Visibility::Private,
        Some(("folder", "root")),
    )
    .await
    .unwrap();
    register(
        &app,
        &key,
        "doc",
        "z",
        other,
        None,
        Visibility::Workspace,
        None,
    )
    .await
    .unwrap();
    let check = |resource: Option<ResourceRef>, action: &str, consistency: Option<Consistency>| {
        let request = dual(
            CheckRequest {
                resource,
                action: action.into(),
                consistency,
            },
            &key,
            &bob.access_token,
        );
        let mut client = perms(&app);
        async move { client.check(request).await.map(|r| r.into_inner()) }
    };
    let expect = |result: Result<_, tonic::Status>, code: Code, field: &str| {
        let err = result.expect_err("an error");
        assert_eq!(err.code(), code, "{err:?}");
        assert!(err.message().contains(field), "{field}: {}", err.message());
    };
    expect(
        check(rref("doc", "a"), "delete", None).await.map(drop),
        Code::InvalidArgument,
        "action",
    );
    expect(
        check(rref("doc", ""), "view", None).await.map(drop),
        Code::InvalidArgument,
        "resource.resource_id",
    );
    expect(
        check(rref("Doc", "a"), "view", None).await.map(drop),
        Code::InvalidArgument,
        "resource.resource_type",
    );
    expect(
        check(None, "view", None).await.map(drop),
        Code::InvalidArgument,
        "resource",
    );
    expect(
        check(rref("doc", "a"), "view", fresh("not-a-token"))
            .await
            .map(drop),
        Code::InvalidArgument,
        "at_least_as_fresh",
    );
    assert!(
        !check(rref("doc", "z"), "view", None).await.unwrap().allowed,
        "other workspace"
    );
    assert!(
        !check(rref("doc", "nope"), "view", None)
            .await
            .unwrap()
            .allowed,
        "unknown"
    );
    // Without the service key: not this tier.
    let err = perms(&app)
        .check(with_bearer(
            CheckRequest {
                resource: rref("doc", "a"),
                action: "view".into(),
                consistency: None,
            },
            &bob.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // Bulk limits, and a bad item failing alone.
    let bulk = |items: Vec<CheckBulkItem>| {
        let request = dual(
            CheckBulkRequest {
                items,
                consistency: None,
            },
            &key,
            &bob.access_token,
        );
        let mut client = perms(&app);
        async move { client.check_bulk(request).await.map(|r| r.into_inner()) }
    };
    let item = |action: &str| CheckBulkItem {
        resource: rref("doc", "a"),
        action: action.into(),
    };
    expect(bulk(vec![]).await.map(drop), Code::InvalidArgument, "items");
    expect(
        bulk(vec![item("view"); 1001]).await.map(drop),
        Code::InvalidArgument,
        "items",
    );
    let mixed = bulk(vec![item("view"), item("nope"), item("view")])
        .await
        .unwrap();
    assert_eq!(mixed.results.len(), 3);
    let bad = mixed.results[1].error.as_ref().expect("item error");
    assert_eq!(bad.code, "INVALID_ARGUMENT");
    assert!(bad.message.contains("items[1].action"), "{}", bad.message);
    assert!(mixed.results[0].error.is_none() && mixed.results[2].error.is_none());
    assert_eq!(
        bulk(vec![item("view"); 1000]).await.unwrap().results.len(),
        1000
    );

    // Registration rules.
    let reg = |t: &'static str,
               id: &'static str,
               ws: sentinel::model::WorkspaceId,
               owner: Option<sentinel::model::UserId>,
               parent: Option<(&'static str, &'static str)>| {
        let app = &app;
        let key = key.clone();
        async move { register(app, &key, t, id, ws, owner, Visibility::Private, parent).await }
    };
    expect(
        reg("Doc", "x", w, None, None).await.map(drop),
        Code::InvalidArgument,
        "resource_type",
    );
    expect(
        reg("doc", "x", w, None, Some(("folder", "missing")))
            .await
            .map(drop),
        Code::NotFound,
        "parent",
    );
    expect(
        reg("doc", "x", w, None, Some(("doc", "z"))).await.map(drop),
        Code::FailedPrecondition,
        "workspace",
    );
    expect(
        reg("doc", "x", w, Some(zed.user.id), None).await.map(drop),
        Code::FailedPrecondition,
        "owner_id",
    );
    expect(
        reg("folder", "root", w, None, Some(("doc", "a")))
            .await
            .map(drop),
        Code::FailedPrecondition,
        "cycle",
    );
    expect(
        reg("doc", "a", w, None, Some(("doc", "a"))).await.map(drop),
        Code::FailedPrecondition,
        "parent",
    );
    expect(
        reg(
            "doc",
            "x",
            sentinel::model::WorkspaceId::random(),
            None,
            None,
        )
        .await
        .map(drop),
        Code::NotFound,
        "workspace",
    );

    // Sharing rules.
    let share = |token: Option<&str>,
                 resource: &str,
                 grantee: Option<Grantee>,
                 permission: Permission,
                 expires: Option<prost_types::Timestamp>| {
        let message = ShareRequest {
            resource: rref("doc", resource),
            grantee,
            permission: permission as i32,
            expires_at: expires,
        };
        let request = match token {
            Some(token) => dual(message, &key, token),
            None => with_service_key(message, &key),
        };
        let mut client = perms(&app);
        async move { client.share(request).await.map(|r| r.into_inner()) }
    };
    expect(
        share(
            None,
            "a",
            group_grantee(foreign_group),
            Permission::View,
            None,
        )
        .await
        .map(drop),
        Code::FailedPrecondition,
        "group",
    );
    expect(
        share(None, "a", user_grantee(zed.user.id), Permission::View, None)
            .await
            .map(drop),
        Code::FailedPrecondition,
        "member",
    );
    expect(
        share(
            None,
            "a",
            group_grantee(GroupId::random()),
            Permission::View,
            None,
        )
        .await
        .map(drop),
        Code::NotFound,
        "group",
    );
    expect(
        share(
            None,
            "missing",
            user_grantee(bob.user.id),
            Permission::View,
            None,
        )
        .await
        .map(drop),
        Code::NotFound,
        "resource",
    );
    expect(
        share(
            None,
            "a",
            user_grantee(bob.user.id),
            Permission::Unspecified,
            None,
        )
        .await
        .map(drop),
        Code::InvalidArgument,
        "permission",
    );
    expect(
        share(None, "a", None, Permission::View, None)
            .await
            .map(drop),
        Code::InvalidArgument,
        "grantee",
    );
    let past = prost_types::Timestamp {
        seconds: Utc::now().timestamp() - 10,
        nanos: 0,
    };
    expect(
        share(
            None,
            "a",
            user_grantee(bob.user.id),
            Permission::View,
            Some(past),
        )
        .await
        .map(drop),
        Code::InvalidArgument,
        "expires_at",
    );
    expect(
        share(
            Some(&bob.access_token),
            "a",
            user_grantee(bob.user.id),
            Permission::Edit,
            None,
        )
        .await
        .map(drop),
        Code::PermissionDenied,
        "owner",
    );
    // The workspace's owner, acting with a token scoped to another workspace, is told that.
    let ann_elsewhere = sign_in(&app, "ann@example.com", "other", "viewer").await;
    expect(
        share(
            Some(&ann_elsewhere.access_token),
            "a",
            user_grantee(bob.user.id),
            Permission::View,
            None,
        )
        .await
        .map(drop),
        Code::PermissionDenied,
        "token's workspace does not match the resource's workspace",
    );
    expect(
        share(
            Some(&zed.access_token),
            "z",
            user_grantee(bob.user.id),
            Permission::View,
            None,
        )
        .await
        .map(drop),
        Code::FailedPrecondition,
        "member",
    );
    assert!(
        !check(rref("doc", "a"), "view", None).await.unwrap().allowed,
        "nothing changed"
    );
    // The workspace owner may share; the same share again changes nothing.
    let first = share(
        Some(&ann.access_token),
        "a",
        user_grantee(bob.user.id),
        Permission::View,
        None,
    )
    .await
    .unwrap();
    assert!(first.changed);
    assert_eq!(first.grant.unwrap().granted_by, ann.user.id.to_string());
    let again = share(
        Some(&ann.access_token),
        "a",
        user_grantee(bob.user.id),
        Permission::View,
        None,
    )
    .await
    .unwrap();
    assert!(!again.changed);
    assert!(
        check(rref("doc", "a"), "view", fresh(&first.consistency_token))
            .await
            .unwrap()
            .allowed
    );
    assert!(!check(rref("doc", "a"), "edit", None).await.unwrap().allowed);

    // Missing things: unshare is a no-op, delete is NOT_FOUND unless allow_missing.
    let removed = perms(&app)
        .unshare(with_service_key(
            UnshareRequest {
                resource: rref("doc", "a"),
                grantee: user_grantee(ann.user.id),
                permission: 0,
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!removed.removed);
    let delete = |allow_missing| {
        let request = with_service_key(
            DeleteResourceRequest {
                resource: rref("doc", "missing"),
                allow_missing,
            },
            &key,
        );
        let mut client = perms(&app);
        async move {
            client
                .delete_resource(request)
                .await
                .map(|r| r.into_inner())
        }
    };
    expect(delete(false).await.map(drop), Code::NotFound, "resource");
    assert!(!delete(true).await.unwrap().deleted);
    // Another service sees none of these resources.
    let mail = service_key(&app, "mail").await;
    let err = perms(&app)
        .get_resource(with_service_key(
            GetResourceRequest {
                resource: rref("doc", "a"),
                enrich: false,
            },
            &mail,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let got = perms(&app)
        .get_resource(with_service_key(
            GetResourceRequest {
                resource: rref("doc", "a"),
                enrich: true,
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner()
        .resource
        .unwrap();
    assert_eq!(got.grants.len(), 1);
    assert_eq!(got.grants[0].grantee_email, "bob@example.com");
    assert_eq!(got.parent, rref("folder", "root"));
    // A lookup in another workspace than the token's.
    let err = perms(&app)
        .lookup_resources(dual(
            LookupResourcesRequest {
                resource_type: "doc".into(),
                action: "view".into(),
                workspace_id: other.to_string(),
                ..Default::default()
            },
            &key,
            &bob.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    app.stop().await;
}

async fn watch_streams_the_services_changes_in_order(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let mail = service_key(&app, "mail").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&app, "bob@example.com", "acme", "viewer").await;
    let w = ann.scope.as_ref().unwrap().workspace.id;
    let mut stream = perms(&app)
        .watch(with_service_key(
            WatchRequest {
                start_token: String::new(),
                resource_types: vec!["doc".into()],
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    register(
        &app,
        &key,
        "doc",
        "a",
        w,
        Some(ann.user.id),
        Visibility::Private,
        None,
    )
    .await
    .unwrap();
    register(
        &app,
        &key,
        "folder",
        "skipped",
        w,
        None,
        Visibility::Private,
        None,
    )
    .await
    .unwrap();
    register(
        &app,
        &mail,
        "doc",
        "theirs",
        w,
        None,
        Visibility::Private,
        None,
    )
    .await
    .unwrap();
    perms(&app)
        .share(with_service_key(
            ShareRequest {
                resource: rref("doc", "a"),
                grantee: user_grantee(bob.user.id),
                permission: Permission::Edit as i32,
                expires_at: None,
            },
            &key,
        ))
        .await
        .unwrap();
    perms(&app)
        .delete_resource(with_service_key(
            DeleteResourceRequest {
                resource: rref("doc", "a"),
                allow_missing: false,
            },
            &key,
        ))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let message = next(&mut stream, "the changes").await.unwrap().unwrap();
        seen.push(message);
    }
    let ops: Vec<i32> = seen.iter().map(|m| m.operation).collect();
    assert_eq!(
        ops,
        [
            ChangeOperation::ResourceCreated as i32,
            ChangeOperation::GrantCreated as i32,
            ChangeOperation::ResourceDeleted as i32
        ]
    );
    assert!(seen.windows(2).all(|p| p[0].revision < p[1].revision));
    assert_eq!(seen[0].owner_id, ann.user.id.to_string());
    assert_eq!(seen[1].permission, Permission::Edit as i32);
    // Resume after the first message: the rest again.
    let mut resumed = perms(&app)
        .watch(with_service_key(
            WatchRequest {
                start_token: seen[0].consistency_token.clone(),
                resource_types: vec!["doc".into()],
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    let resumed = next(&mut resumed, "the resumed changes")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resumed.revision, seen[1].revision);
    let err = perms(&app)
        .watch(with_service_key(
            WatchRequest {
                start_token: "garbage".into(),
                resource_types: vec![],
            },
            &key,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    app.stop().await;
}

async fn deleting_a_service_or_workspace_removes_its_resources(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let admin = common::platform_admin(&app).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&app, "bob@example.com", "acme", "viewer").await;
    let w = ann.scope.as_ref().unwrap().workspace.id;
    for id in ["a", "b", "c"] {
        register(&app, &key, "doc", id, w, None, Visibility::Workspace, None)
            .await
            .unwrap();
    }
    let check = |key: String, id: &'static str, token: Option<String>| {
        let request = dual(
            CheckRequest {
                resource: rref("doc", id),
                action: "view".into(),
                consistency: token.as_deref().map(fresh).unwrap_or_default(),
            },
            &key,
            &bob.access_token,
        );
        let mut client = perms(&app);
        async move { client.check(request).await.map(|r| r.into_inner().allowed) }
    };
    assert!(check(key.clone(), "a", None).await.unwrap());
    let stats =
        sentinel::proto::v1::admin_service_client::AdminServiceClient::new(app.channel.clone())
            .get_stats(with_bearer(pb::GetStatsRequest {}, &admin))
            .await
            .unwrap()
            .into_inner();
    assert_eq!((stats.resource_count, stats.grant_count), (3, 0));
    // Deleting the service app removes its resources.
    let apps = ServiceAppServiceClient::new(app.channel.clone())
        .list_service_apps(with_bearer(pb::ListServiceAppsRequest::default(), &admin))
        .await
        .unwrap()
        .into_inner()
        .apps;
    let docs = apps.iter().find(|a| a.service_name == "docs").unwrap();
    let deleted = ServiceAppServiceClient::new(app.channel.clone())
        .delete_service_app(with_bearer(
            pb::DeleteServiceAppRequest {
                id: docs.id.clone(),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted_resource_count, 3);
    let key = service_key(&app, "docs").await;
    assert!(
        !check(key.clone(), "a", Some(deleted.consistency_token))
            .await
            .unwrap(),
        "a new app of the same name starts empty"
    );
    // Deleting the workspace removes its resources too.
    register(&app, &key, "doc", "d", w, None, Visibility::Workspace, None)
        .await
        .unwrap();
    let gone = WorkspaceServiceClient::new(app.channel.clone())
        .delete_workspace(with_bearer(
            pb::DeleteWorkspaceRequest { id: w.to_string() },
            &ann.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!gone.consistency_token.is_empty());
    let err = perms(&app)
        .get_resource(with_service_key(
            GetResourceRequest {
                resource: rref("doc", "d"),
                enrich: false,
            },
            &key,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    app.stop().await;
}
