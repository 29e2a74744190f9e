//! PermissionService.WriteBatch on both backends: operations applied in order at one revision
//! (each seeing the ones before it), read back with the batch's token on another instance,
//! streamed by Watch at that one revision and resumable mid-batch; and every refusal (oversized
//! or empty batch, no kind, a malformed field, an unknown resource, a grant across workspaces,
//! a cycle, a user without sharing rights) naming its operation and writing nothing. Also the
//! single writes committed together (group commit): many at once, each answered alone.

mod common;

use common::clients::{fresh, perms, rref, user_grantee};
use common::contract::refused;
use common::resources::lookup_all;
use common::wait::next;
use common::{Backend, TestApp, allowed, dual, service_key, sign_in, with_service_key};
use sentinel::proto::v1::write_operation::Operation;
use sentinel::proto::v1::{
    self as pb, ChangeOperation, DeleteResourceRequest, GetResourceRequest, Permission,
    RegisterResourceRequest, SetOwnerRequest, SetVisibilityRequest, ShareRequest, UnshareRequest,
    Visibility, WatchRequest, WriteBatchRequest, WriteOperation,
};
use tonic::{Code, Status};

both_backends!(
    a_batch_applies_in_order_at_one_revision,
    a_refused_operation_refuses_the_whole_batch,
    a_thousand_registrations_fit_one_batch,
    concurrent_single_writes_are_answered_each_alone,
);

fn register(t: &str, id: &str, workspace: &str, parent: Option<(&str, &str)>) -> WriteOperation {
    WriteOperation {
        operation: Some(Operation::Register(RegisterResourceRequest {
            resource_type: t.into(),
            resource_id: id.into(),
            workspace_id: workspace.into(),
            owner_id: String::new(),
            visibility: Visibility::Private as i32,
            parent: parent.and_then(|(pt, pid)| rref(pt, pid)),
            upsert: true,
        })),
    }
}

fn share(t: &str, id: &str, user: impl ToString, permission: Permission) -> WriteOperation {
    WriteOperation {
        operation: Some(Operation::Share(ShareRequest {
            resource: rref(t, id),
            grantee: user_grantee(user),
            permission: permission as i32,
            expires_at: None,
        })),
    }
}

fn delete(t: &str, id: &str, allow_missing: bool) -> WriteOperation {
    WriteOperation {
        operation: Some(Operation::Delete(DeleteResourceRequest {
            resource: rref(t, id),
            allow_missing,
        })),
    }
}

async fn batch(
    app: &TestApp,
    request: tonic::Request<WriteBatchRequest>,
) -> Result<pb::WriteBatchResponse, Status> {
    perms(app)
        .write_batch(request)
        .await
        .map(|r| r.into_inner())
}

fn ops(operations: Vec<WriteOperation>) -> WriteBatchRequest {
    WriteBatchRequest { operations }
}

/// The revision a consistency token names.
fn revision(token: &str) -> i64 {
    sentinel::model::ConsistencyToken::parse("token", token)
        .unwrap()
        .revision()
        .0
}

async fn exists(app: &TestApp, key: &str, t: &str, id: &str) -> bool {
    match perms(app)
        .get_resource(with_service_key(
            GetResourceRequest {
                resource: rref(t, id),
                enrich: false,
            },
            key,
        ))
        .await
    {
        Ok(_) => true,
        Err(status) if status.code() == Code::NotFound => false,
        Err(status) => panic!("GetResource: {status:?}"),
    }
}

async fn a_batch_applies_in_order_at_one_revision(backend: Backend) {
    let (a, db) = TestApp::spawn(backend).await;
    let b = TestApp::start(db.config()).await;
    let key = service_key(&a, "docs").await;
    let ann = sign_in(&a, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&a, "bob@example.com", "acme", "viewer").await;
    let w = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let before = batch(
        &a,
        with_service_key(ops(vec![delete("doc", "x", true)]), &key),
    )
    .await
    .unwrap();
    assert!(
        !before.results[0].changed,
        "deleting nothing changes nothing"
    );
    // A folder, a doc under it, bob's grant on the folder, the doc made workspace-visible and
    // handed to ann, a scratch resource removed again: each operation sees the earlier ones.
    let response = batch(
        &a,
        with_service_key(
            ops(vec![
                register("folder", "f", &w, None),
                register("doc", "d", &w, Some(("folder", "f"))),
                share("folder", "f", bob.user.id, Permission::View),
                WriteOperation {
                    operation: Some(Operation::SetVisibility(SetVisibilityRequest {
                        resource: rref("doc", "d"),
                        visibility: Visibility::Workspace as i32,
                    })),
                },
                WriteOperation {
                    operation: Some(Operation::SetOwner(SetOwnerRequest {
                        resource: rref("doc", "d"),
                        owner_id: ann.user.id.to_string(),
                    })),
                },
                register("doc", "scratch", &w, None),
                delete("doc", "scratch", false),
                share("folder", "f", bob.user.id, Permission::View),
                WriteOperation {
                    operation: Some(Operation::Unshare(UnshareRequest {
                        resource: rref("doc", "d"),
                        grantee: user_grantee(bob.user.id),
                        permission: 0,
                    })),
                },
            ]),
            &key,
        ),
    )
    .await
    .unwrap();
    let changed: Vec<(bool, bool)> = response
        .results
        .iter()
        .map(|r| (r.changed, r.created))
        .collect();
    assert_eq!(
        changed,
        [
            (true, true),
            (true, true),
            (true, false),
            (true, false),
            (true, false),
            (true, true),
            (true, false),
            (false, false), // the same grant again
            (false, false), // no grant to remove
        ]
    );
    let token = response.consistency_token.clone();
    assert_eq!(
        revision(&token),
        revision(&before.consistency_token) + 1,
        "one revision for the whole batch"
    );
    // Read-your-writes on the other instance with the batch's token.
    let (_, ids) = lookup_all(
        &b,
        &key,
        &bob.access_token,
        "doc",
        "view",
        10,
        fresh(&token),
    )
    .await;
    assert_eq!(
        ids,
        ["d"],
        "made workspace-visible in the batch; scratch is gone"
    );
    assert!(allowed(&b, &key, &bob.access_token, "folder", "f", "view").await);
    assert!(!exists(&b, &key, "doc", "scratch").await);
    // Watch from before the batch: its changes, in order, all at its revision.
    let watch = |start_token: String| {
        let request = with_service_key(
            WatchRequest {
                start_token,
                resource_types: vec![],
            },
            &key,
        );
        let mut client = perms(&b);
        async move { client.watch(request).await.unwrap().into_inner() }
    };
    let mut stream = watch(before.consistency_token.clone()).await;
    let mut seen = Vec::new();
    while seen.len() < 7 {
        seen.push(next(&mut stream, "the batch").await.unwrap().unwrap());
    }
    let operations: Vec<i32> = seen.iter().map(|m| m.operation).collect();
    use ChangeOperation as Op;
    assert_eq!(
        operations,
        [
            Op::ResourceCreated as i32,
            Op::ResourceCreated as i32,
            Op::GrantCreated as i32,
            Op::ResourceUpdated as i32,
            Op::ResourceUpdated as i32,
            Op::ResourceCreated as i32,
            Op::ResourceDeleted as i32,
        ]
    );
    assert!(seen.iter().all(|m| m.revision == revision(&token)));
    let more: Vec<bool> = seen.iter().map(|m| m.more_in_revision).collect();
    assert_eq!(more, [true, true, true, true, true, true, false]);
    assert_eq!(
        seen[6].consistency_token, token,
        "the last one resumes after the batch"
    );
    // A token from inside the batch resumes before it: the whole batch again.
    let mut resumed = watch(seen[2].consistency_token.clone()).await;
    let first = next(&mut resumed, "the batch again")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.operation, first.revision),
        (Op::ResourceCreated as i32, revision(&token))
    );
    assert_eq!(first.resource, rref("folder", "f"));
    // One audit event per change.
    assert_eq!(common::audit_count(&db, "resource.registered").await, 3);
    assert_eq!(common::audit_count(&db, "resource.shared").await, 1);
    b.stop().await;
    a.stop().await;
}

async fn a_refused_operation_refuses_the_whole_batch(backend: Backend) {
    let (app, db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let carl = sign_in(&app, "carl@example.com", "acme", "viewer").await;
    let zed = sign_in(&app, "zed@example.com", "other", "owner").await;
    let w = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let setup = batch(
        &app,
        with_service_key(
            ops(vec![
                register("folder", "a", &w, None),
                register("folder", "b", &w, Some(("folder", "a"))),
            ]),
            &key,
        ),
    )
    .await
    .unwrap();
    let fresh_one = |n: usize| register("doc", &format!("new{n}"), &w, None);
    let cases: Vec<(Vec<WriteOperation>, &str)> = vec![
        (vec![], "operations: must hold 1 to 1000"),
        (
            (0..1001).map(fresh_one).collect(),
            "operations: must hold 1 to 1000 operations (it holds 1001)",
        ),
        (
            vec![fresh_one(0), WriteOperation { operation: None }],
            "operations[1].operation: is required",
        ),
        (
            vec![fresh_one(0), register("Doc", "x", &w, None)],
            "operations[1].register.resource_type",
        ),
        (
            vec![fresh_one(0), delete("doc", "absent", false)],
            "operations[1]: resource not found",
        ),
        (
            vec![
                fresh_one(0),
                share("doc", "new0", zed.user.id, Permission::View),
            ],
            "operations[1]: the grantee is not a member of the resource's workspace",
        ),
        (
            vec![
                fresh_one(0),
                fresh_one(1),
                register("folder", "a", &w, Some(("folder", "b"))),
            ],
            "operations[2]: the parent would create a cycle",
        ),
    ];
    for (operations, says) in cases {
        let status = refused(
            "PermissionService/WriteBatch",
            Code::InvalidArgument,
            batch(&app, with_service_key(ops(operations), &key)).await,
        );
        assert!(status.message().contains(says), "{says}: {status:?}");
        assert!(
            !exists(&app, &key, "doc", "new0").await,
            "{says}: nothing is written"
        );
    }
    // A viewer acting through the service may not change grants of ann's folder.
    let status = refused(
        "PermissionService/WriteBatch",
        Code::PermissionDenied,
        batch(
            &app,
            dual(
                ops(vec![
                    fresh_one(0),
                    share("folder", "a", carl.user.id, Permission::Edit),
                ]),
                &key,
                &carl.access_token,
            ),
        )
        .await,
    );
    assert!(
        status.message().starts_with("operations[1]: "),
        "{status:?}"
    );
    assert!(!exists(&app, &key, "doc", "new0").await);
    assert!(!allowed(&app, &key, &carl.access_token, "folder", "a", "edit").await);
    // Nothing was committed: the next write is the revision after the set-up.
    let after = batch(&app, with_service_key(ops(vec![fresh_one(9)]), &key))
        .await
        .unwrap();
    assert_eq!(
        revision(&after.consistency_token),
        revision(&setup.consistency_token) + 1
    );
    assert_eq!(common::audit_count(&db, "resource.registered").await, 3);
    app.stop().await;
}

async fn a_thousand_registrations_fit_one_batch(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&app, "bob@example.com", "acme", "viewer").await;
    let w = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let mut operations = vec![register("folder", "root", &w, None)];
    operations.extend(
        (1..=500).map(|n| register("doc", &format!("d{n:04}"), &w, Some(("folder", "root")))),
    );
    operations.extend(
        (1..=499).map(|n| share("doc", &format!("d{n:04}"), bob.user.id, Permission::View)),
    );
    assert_eq!(operations.len(), 1000);
    let response = batch(&app, with_service_key(ops(operations), &key))
        .await
        .unwrap();
    assert!(response.results.iter().all(|r| r.changed));
    let (_, ids) = lookup_all(
        &app,
        &key,
        &bob.access_token,
        "doc",
        "view",
        100,
        fresh(&response.consistency_token),
    )
    .await;
    assert_eq!(ids.len(), 499);
    assert!(!ids.contains(&"d0500".to_string()));
    app.stop().await;
}

/// Concurrent RegisterResource and Share calls, some refused, through one instance: each gets
/// its own answer (a refusal refuses only itself), every token reads its write back on another
/// instance, and no two changes share a revision.
async fn concurrent_single_writes_are_answered_each_alone(backend: Backend) {
    let (a, db) = TestApp::spawn(backend).await;
    let b = TestApp::start(db.config()).await;
    let key = service_key(&a, "docs").await;
    let ann = sign_in(&a, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&a, "bob@example.com", "acme", "viewer").await;
    let zed = sign_in(&a, "zed@example.com", "other", "owner").await;
    let w = ann.scope.as_ref().unwrap().workspace.id;
    let writes = (0..48).map(|n| {
        let (a, key) = (&a, key.clone());
        let (bob, zed) = (bob.user.id, zed.user.id);
        async move {
            let id = format!("c{n:02}");
            let registered = common::resources::register(
                a,
                &key,
                "doc",
                &id,
                w,
                None,
                Visibility::Private,
                None,
            )
            .await
            .map(|r| r.consistency_token);
            // Every third grant goes to someone outside the workspace.
            let grantee = if n % 3 == 0 { zed } else { bob };
            let shared = perms(a)
                .share(with_service_key(
                    ShareRequest {
                        resource: rref("doc", &id),
                        grantee: user_grantee(grantee),
                        permission: Permission::View as i32,
                        expires_at: None,
                    },
                    &key,
                ))
                .await
                .map(|r| r.into_inner().consistency_token);
            (id, registered, shared)
        }
    });
    let results = futures::future::join_all(writes).await;
    let mut revisions = Vec::new();
    for (n, (id, registered, shared)) in results.into_iter().enumerate() {
        let registered = registered.unwrap();
        revisions.push(revision(&registered));
        if n % 3 == 0 {
            let status = shared.unwrap_err();
            assert_eq!(status.code(), Code::FailedPrecondition, "{id}: {status:?}");
            assert!(!allowed(&b, &key, &bob.access_token, "doc", &id, "view").await);
        } else {
            let token = shared.unwrap();
            revisions.push(revision(&token));
            let (_, ids) = lookup_all(
                &b,
                &key,
                &bob.access_token,
                "doc",
                "view",
                100,
                fresh(&token),
            )
            .await;
            assert!(ids.contains(&id), "{id} read back with its token");
        }
    }
    let count = revisions.len();
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(revisions.len(), count, "one revision per change");
    assert_eq!(common::audit_count(&db, "resource.shared").await, 32);
    b.stop().await;
    a.stop().await;
}
