//! The documented errors of PermissionService's reads, Watch and RBAC RPCs, on both backends:
//! every code the `Errors:` paragraphs of Check, CheckBulk, LookupResources, Watch,
//! RegisterActions and CheckAction list, each under the condition the paragraph names, next to
//! the valid call it is told apart from (Watch from before the retained changelog included). The resource writes are in errors_resources.rs.

mod common;

use common::clients::{fresh, perms, rref};
use common::contract::refused;
use common::{Backend, TestApp, TestDatabase, dual, service_key, sign_in, with_service_key};
use sentinel::proto::v1::{
    self as pb, ActionDefinition, CheckActionRequest, CheckBulkItem, CheckBulkRequest,
    CheckRequest, Consistency, LookupResourcesRequest, RegisterActionsRequest,
    RegisterResourceRequest, ResourceRef, Visibility, WatchRequest,
};
use tonic::{Code, Status};

both_backends!(
    checks_refuse_malformed_questions,
    lookups_refuse_other_workspaces_bad_input_and_lapsed_snapshots,
    watch_refuses_malformed_tokens_and_streams_past_the_cap,
    watch_refuses_a_start_the_changelog_no_longer_keeps,
    actions_refuse_malformed_names_and_oversize_batches,
);

#[track_caller]
fn names(status: &Status, field: &str) {
    assert!(
        status.message().contains(field),
        "{field}: {}",
        status.message()
    );
}

/// Registers workspace-visible docs of `workspace`; the last write's consistency token.
async fn register_docs(app: &TestApp, key: &str, workspace: &str, ids: &[&str]) -> String {
    let mut token = String::new();
    for id in ids {
        token = perms(app)
            .register_resource(with_service_key(
                RegisterResourceRequest {
                    resource_type: "doc".into(),
                    resource_id: (*id).into(),
                    workspace_id: workspace.into(),
                    owner_id: String::new(),
                    visibility: Visibility::Workspace as i32,
                    parent: None,
                    upsert: false,
                },
                key,
            ))
            .await
            .unwrap()
            .into_inner()
            .consistency_token;
    }
    token
}

async fn checks_refuse_malformed_questions(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&app, "bob@example.com", "acme", "viewer").await;
    let acme = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let written = register_docs(&app, &key, &acme, &["a"]).await;
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

    // An action other than "view" or "edit" (they are lowercase).
    for bad in ["delete", "View", "EDIT", ""] {
        let status = refused(
            "PermissionService/Check",
            Code::InvalidArgument,
            check(rref("doc", "a"), bad, None).await,
        );
        names(&status, "action");
    }
    // A malformed resource reference: missing, a bad type, an empty or oversize id.
    let status = refused(
        "PermissionService/Check",
        Code::InvalidArgument,
        check(None, "view", None).await,
    );
    names(&status, "resource");
    let long_id = "x".repeat(257);
    for (resource, field) in [
        (rref("Doc", "a"), "resource.resource_type"),
        (rref("", "a"), "resource.resource_type"),
        (rref("doc", ""), "resource.resource_id"),
        (rref("doc", &long_id), "resource.resource_id"),
        (rref("doc", "x\u{1}y"), "resource.resource_id"),
        (rref("doc", "nul\0"), "resource.resource_id"),
    ] {
        let status = refused(
            "PermissionService/Check",
            Code::InvalidArgument,
            check(resource, "view", None).await,
        );
        names(&status, field);
    }
    // A malformed consistency token.
    for bad in ["not-a-token", "ct1.", "ct1.!!!!", &written[4..]] {
        let status = refused(
            "PermissionService/Check",
            Code::InvalidArgument,
            check(rref("doc", "a"), "view", fresh(bad)).await,
        );
        names(&status, "consistency.at_least_as_fresh");
    }
    // The well-formed question answers, with the write's own token too; an unknown resource is
    // a deny, not an error.
    assert!(
        check(rref("doc", "a"), "view", fresh(&written))
            .await
            .unwrap()
            .allowed
    );
    assert!(!check(rref("doc", "a"), "edit", None).await.unwrap().allowed);
    assert!(
        !check(rref("doc", &"x".repeat(256)), "view", None)
            .await
            .unwrap()
            .allowed
    );

    // CheckBulk: no items, or more than 1000.
    let bulk = |count: usize| {
        let item = CheckBulkItem {
            resource: rref("doc", "a"),
            action: "view".into(),
        };
        let request = dual(
            CheckBulkRequest {
                items: vec![item; count],
                consistency: None,
            },
            &key,
            &bob.access_token,
        );
        let mut client = perms(&app);
        async move { client.check_bulk(request).await.map(|r| r.into_inner()) }
    };
    for count in [0, 1001] {
        let status = refused(
            "PermissionService/CheckBulk",
            Code::InvalidArgument,
            bulk(count).await,
        );
        names(&status, "items");
    }
    for count in [1, 1000] {
        let answered = bulk(count).await.unwrap();
        assert_eq!(answered.results.len(), count);
        assert!(
            answered
                .results
                .iter()
                .all(|r| r.allowed && r.error.is_none())
        );
    }
    app.stop().await;
}

/// Makes every lookup snapshot of the test's server lapse, the state the server finds once a
/// snapshot's lifetime (10 minutes) has passed. The embedded server keeps them in its process,
/// which a restart ends (the returned server is the restarted one, on the same database); in
/// Redis their TTL is cut to a millisecond and run out.
async fn lapse_lookup_snapshots(app: TestApp, db: &TestDatabase) -> TestApp {
    use fred::prelude::{Builder, ClientLike, Config, KeysInterface};
    use fred::types::CustomCommand;
    if db.backend == Backend::Embedded {
        app.stop().await;
        return TestApp::start(db.config()).await;
    }
    let config = Config::from_url(&common::redis_url()).unwrap();
    let redis = Builder::from_config(config).build().unwrap();
    redis.init().await.unwrap();
    let keys: Vec<String> = redis
        .custom(
            CustomCommand::new_static("KEYS", None::<u16>, false),
            vec![format!("{}:lookup:*", db.redis_prefix)],
        )
        .await
        .unwrap();
    assert!(!keys.is_empty(), "the lookup pinned a snapshot in Redis");
    for k in &keys {
        let _: i64 = redis.pexpire(k.as_str(), 1, None).await.unwrap();
    }
    common::wait::eventually("the snapshots run out", || {
        let (redis, keys) = (redis.clone(), keys.clone());
        async move { redis.exists::<i64, _>(keys).await.unwrap() == 0 }
    })
    .await;
    redis.quit().await.unwrap();
    app
}

async fn lookups_refuse_other_workspaces_bad_input_and_lapsed_snapshots(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let mut app = TestApp::start(db.config()).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let zed = sign_in(&app, "zed@example.com", "other", "owner").await;
    // Bob is an editor of both workspaces; his token is acme's.
    sign_in(&app, "bob@example.com", "other", "editor").await;
    let bob = sign_in(&app, "bob@example.com", "acme", "editor").await;
    let acme = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let other = zed.scope.as_ref().unwrap().workspace.id.to_string();
    register_docs(&app, &key, &acme, &["a", "b", "c"]).await;
    register_docs(&app, &key, &other, &["z"]).await;
    let lookup = |app: &TestApp, t: &str, action: &str, workspace: &str, page_token: &str| {
        let request = dual(
            LookupResourcesRequest {
                resource_type: t.into(),
                action: action.into(),
                workspace_id: workspace.into(),
                page_size: 1,
                page_token: page_token.into(),
                consistency: None,
            },
            &key,
            &bob.access_token,
        );
        let mut client = perms(app);
        async move {
            client
                .lookup_resources(request)
                .await
                .map(|r| r.into_inner())
        }
    };

    // PERMISSION_DENIED: a workspace other than the token's, though bob is a member of it.
    let status = refused(
        "PermissionService/LookupResources",
        Code::PermissionDenied,
        lookup(&app, "doc", "view", &other, "").await,
    );
    names(&status, "workspace_id");
    let explicit = lookup(&app, "doc", "view", &acme, "").await.unwrap();
    assert_eq!(explicit.resource_ids, ["a"]);
    // INVALID_ARGUMENT: a bad action; a bad resource type.
    for bad in ["delete", "View", ""] {
        let status = refused(
            "PermissionService/LookupResources",
            Code::InvalidArgument,
            lookup(&app, "doc", bad, "", "").await,
        );
        names(&status, "action");
    }
    for bad in ["Doc", "", "doc-x"] {
        let status = refused(
            "PermissionService/LookupResources",
            Code::InvalidArgument,
            lookup(&app, bad, "view", "", "").await,
        );
        names(&status, "resource_type");
    }

    // FAILED_PRECONDITION: a page token whose snapshot has lapsed.
    let first = lookup(&app, "doc", "view", "", "").await.unwrap();
    assert_eq!(first.resource_ids, ["a"]);
    let second = lookup(&app, "doc", "view", "", &first.next_page_token)
        .await
        .unwrap();
    assert_eq!(second.resource_ids, ["b"]);
    assert!(!second.next_page_token.is_empty());
    app = lapse_lookup_snapshots(app, &db).await;
    let status = refused(
        "PermissionService/LookupResources",
        Code::FailedPrecondition,
        lookup(&app, "doc", "view", "", &second.next_page_token).await,
    );
    names(&status, "first page");
    // Restarting from the first page works.
    let restarted = lookup(&app, "doc", "view", "", "").await.unwrap();
    assert_eq!(restarted.resource_ids, ["a"]);
    let next = lookup(&app, "doc", "view", "", &restarted.next_page_token)
        .await
        .unwrap();
    assert_eq!(next.resource_ids, ["b"]);
    app.stop().await;
}

async fn watch_refuses_malformed_tokens_and_streams_past_the_cap(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let mut config = db.config();
    config.max_streams_per_key = 2;
    let app = TestApp::start(config).await;
    let key = service_key(&app, "docs").await;
    let mail = service_key(&app, "mail").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let acme = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let written = register_docs(&app, &key, &acme, &["a"]).await;
    let watch = |key: &str, start_token: &str| {
        let request = with_service_key(
            WatchRequest {
                start_token: start_token.into(),
                resource_types: vec![],
            },
            key,
        );
        let mut client = perms(&app);
        async move { client.watch(request).await.map(|r| r.into_inner()) }
    };

    // INVALID_ARGUMENT for a malformed start_token.
    for bad in ["garbage", "ct1.", "ct1.!!!!", &written[4..]] {
        let status = refused(
            "PermissionService/Watch",
            Code::InvalidArgument,
            watch(&key, bad).await,
        );
        names(&status, "start_token");
    }
    // RESOURCE_EXHAUSTED once the key holds its two streams; another key still watches.
    let mut held = watch(&key, "").await.unwrap();
    let also_held = watch(&key, "").await.unwrap();
    refused(
        "PermissionService/Watch",
        Code::ResourceExhausted,
        watch(&key, "").await,
    );
    refused(
        "PermissionService/Watch",
        Code::ResourceExhausted,
        watch(&key, &written).await,
    );
    let mut theirs = watch(&mail, "").await.unwrap();
    // The held streams keep streaming: the refusals ended none of them.
    let latest = register_docs(&app, &key, &acme, &["b"]).await;
    let change = common::wait::next(&mut held, "the held stream's change")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.consistency_token, latest);
    assert_eq!(change.resource, rref("doc", "b"));
    register_docs(&app, &mail, &acme, &["m"]).await;
    let change = common::wait::next(&mut theirs, "the other key's change")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.resource, rref("doc", "m"));
    drop((held, also_held, theirs));
    app.stop().await;
}

async fn watch_refuses_a_start_the_changelog_no_longer_keeps(backend: Backend) {
    let (app, db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let acme = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let first = register_docs(&app, &key, &acme, &["a"]).await;
    let second = register_docs(&app, &key, &acme, &["b"]).await;
    let third = register_docs(&app, &key, &acme, &["c"]).await;
    let watch = |start_token: &str| {
        let request = with_service_key(
            WatchRequest {
                start_token: start_token.into(),
                resource_types: vec![],
            },
            &key,
        );
        let mut client = perms(&app);
        async move { client.watch(request).await.map(|r| r.into_inner()) }
    };
    // Kept: a stream from the first write replays the other two.
    let mut kept = watch(&first).await.unwrap();
    let change = common::wait::next(&mut kept, "the second write")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.consistency_token, second);
    drop(kept);

    // The retention passes on the server's clock; the janitor's pruning (run here directly)
    // keeps only the newest entry.
    let retention = db.config().changelog_retention;
    app.clock
        .advance(retention + std::time::Duration::from_secs(60));
    let pruned = app
        .app
        .state()
        .engine
        .prune_changelog(retention)
        .await
        .expect("pruned");
    assert!(pruned >= 2, "{pruned}");

    // FAILED_PRECONDITION for a start before what is kept, saying what to do: the entry after
    // the first write is gone.
    let status = refused(
        "PermissionService/Watch",
        Code::FailedPrecondition,
        watch(&first).await,
    );
    names(&status, "start_token");
    names(&status, "watch from now");
    // From the second write on everything is kept: it streams, and so does "from now".
    let mut from_second = watch(&second).await.unwrap();
    let change = common::wait::next(&mut from_second, "the kept third write")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.consistency_token, third);
    let mut from_now = watch("").await.unwrap();
    let fourth = register_docs(&app, &key, &acme, &["d"]).await;
    for (stream, what) in [
        (&mut from_second, "from the second"),
        (&mut from_now, "from now"),
    ] {
        let change = common::wait::next(stream, what).await.unwrap().unwrap();
        assert_eq!(change.consistency_token, fourth, "{what}");
        assert_eq!(change.resource, rref("doc", "d"));
    }
    // A consistency token that old still reads: every replica is newer than it.
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let answer = perms(&app)
        .check(dual(
            CheckRequest {
                resource: rref("doc", "a"),
                action: "view".into(),
                consistency: fresh(&first),
            },
            &key,
            &ann.access_token,
        ))
        .await
        .expect("an old token still reads")
        .into_inner();
    assert!(answer.allowed);
    drop((from_second, from_now));
    app.stop().await;
}

async fn actions_refuse_malformed_names_and_oversize_batches(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let billing = service_key(&app, "billing").await;
    sign_in(&app, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&app, "bob@example.com", "acme", "editor").await;
    let register = |actions: Vec<(String, String)>| {
        let request = with_service_key(
            RegisterActionsRequest {
                actions: actions
                    .into_iter()
                    .map(|(action, description)| ActionDefinition {
                        action,
                        description,
                    })
                    .collect(),
            },
            &billing,
        );
        let mut client = perms(&app);
        async move {
            client
                .register_actions(request)
                .await
                .map(|r| r.into_inner())
        }
    };
    let action = |name: &str, description: &str| (name.to_string(), description.to_string());
    let first = register(vec![action("invoice.read", "Read invoices")])
        .await
        .unwrap();
    assert_eq!((first.created_count, first.updated_count), (1, 0));

    // Each refused batch also carries a new action and a changed description, neither kept.
    let with_valid = |bad: Vec<(String, String)>| {
        let mut batch = vec![
            action("invoice.approve", "Approve invoices"),
            action("invoice.read", "Changed"),
        ];
        batch.extend(bad);
        batch
    };
    let too_long = format!("a{}", "b".repeat(128));
    for bad in [
        "",
        "Invoice.pay",
        "1invoice",
        "invoice pay",
        "invoice/pay",
        &too_long,
    ] {
        let status = refused(
            "PermissionService/RegisterActions",
            Code::InvalidArgument,
            register(with_valid(vec![action(bad, "")])).await,
        );
        names(&status, "actions.action");
    }
    let status = refused(
        "PermissionService/RegisterActions",
        Code::InvalidArgument,
        register(with_valid(vec![action("invoice.pay", &"d".repeat(2001))])).await,
    );
    names(&status, "actions.description");
    let status = refused(
        "PermissionService/RegisterActions",
        Code::InvalidArgument,
        register(with_valid(vec![action("invoice.approve", "Again")])).await,
    );
    names(&status, "actions.action");
    let too_many: Vec<_> = (0..1001)
        .map(|i| action(&format!("bulk.{i}"), ""))
        .collect();
    for batch in [vec![], too_many] {
        let status = refused(
            "PermissionService/RegisterActions",
            Code::InvalidArgument,
            register(batch).await,
        );
        names(&status, "actions");
    }
    // Nothing of the refused batches was kept: approve is new, read's description unchanged.
    // The limits themselves pass: a 128-character name, a 2000-character description.
    let longest = format!("a{}", "b".repeat(127));
    let kept = register(vec![
        action("invoice.read", "Read invoices"),
        action("invoice.approve", "Approve invoices"),
        action(&longest, &"d".repeat(2000)),
    ])
    .await
    .unwrap();
    assert_eq!((kept.created_count, kept.updated_count), (2, 0));
    let thousand: Vec<_> = (0..1000)
        .map(|i| action(&format!("bulk.{i}"), ""))
        .collect();
    assert_eq!(register(thousand).await.unwrap().created_count, 1000);

    // CheckAction: a malformed action name; a well-formed unregistered one is a plain deny.
    let check = |name: &str| {
        let request = dual(
            CheckActionRequest {
                action: name.into(),
                workspace_id: String::new(),
                consistency: None,
            },
            &billing,
            &bob.access_token,
        );
        let mut client = perms(&app);
        async move { client.check_action(request).await.map(|r| r.into_inner()) }
    };
    for bad in ["", "Invoice.read", "invoice read", "1invoice", &too_long] {
        let status = refused(
            "PermissionService/CheckAction",
            Code::InvalidArgument,
            check(bad).await,
        );
        names(&status, "action");
    }
    for fine in ["invoice.read", "never.registered", longest.as_str()] {
        let answer: pb::CheckActionResponse = check(fine).await.unwrap();
        assert!(!answer.allowed && answer.roles.is_empty(), "{fine}");
    }
    app.stop().await;
}
