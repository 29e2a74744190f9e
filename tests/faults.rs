//! Faults, with the server binary as a process: `kill -9` during a 32-writer load of single
//! writes and WriteBatches. After a restart every acknowledged write is in the database and in
//! the index (of the restarted server, and of a replica that followed all along), no batch is
//! half there, and the changelog names exactly the resources the database holds. A replica
//! started during a write load converges to the first instance's revision and answers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use common::process::ServerProcess;
use common::wait::{eventually, within};
use common::{Backend, TestApp, TestDatabase, dual, service_key, sign_in, with_service_key};
use sentinel::model::change::Change;
use sentinel::proto::v1::permission_service_client::PermissionServiceClient;
use sentinel::proto::v1::write_operation::Operation;
use sentinel::proto::v1::{
    CheckBulkItem, CheckBulkRequest, Consistency, LookupResourcesRequest, Permission,
    RegisterResourceRequest, ShareRequest, Visibility, WriteBatchRequest, WriteOperation,
    consistency,
};
use tonic::transport::Channel;

both_backends!(
    a_killed_server_loses_no_acknowledged_write,
    a_replica_started_under_load_converges,
);

/// Writes acknowledged before the kill: single resource ids, and batch id prefixes.
#[derive(Default)]
struct Acked {
    singles: Vec<String>,
    batches: Vec<String>,
}

/// Ids in a batch.
const BATCH: usize = 10;

fn registration(id: String, workspace: &str, owner: &str) -> RegisterResourceRequest {
    RegisterResourceRequest {
        resource_type: "doc".into(),
        resource_id: id,
        workspace_id: workspace.into(),
        owner_id: owner.into(),
        visibility: Visibility::Private as i32,
        parent: None,
        upsert: false,
    }
}

/// Every id of type doc `token`'s user may view, fully consistent, through `channel`.
async fn visible(channel: &Channel, key: &str, token: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut page_token = String::new();
    loop {
        let page = PermissionServiceClient::new(channel.clone())
            .lookup_resources(dual(
                LookupResourcesRequest {
                    resource_type: "doc".into(),
                    action: "view".into(),
                    workspace_id: String::new(),
                    page_size: 500,
                    page_token,
                    consistency: Some(Consistency {
                        requirement: Some(consistency::Requirement::FullyConsistent(true)),
                    }),
                },
                key,
                token,
            ))
            .await
            .expect("LookupResources")
            .into_inner();
        ids.extend(page.resource_ids);
        if page.next_page_token.is_empty() {
            return ids;
        }
        page_token = page.next_page_token;
    }
}

async fn a_killed_server_loses_no_acknowledged_write(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    // Fixtures in process; this instance stays up as a replica following the changelog.
    let follower = TestApp::start(db.config()).await;
    let key = service_key(&follower, "docs").await;
    let bob = sign_in(&follower, "bob@example.com", "acme", "viewer").await;
    let workspace = bob.scope.as_ref().unwrap().workspace.id.to_string();
    let owner = bob.user.id.to_string();
    let server = ServerProcess::start(&db).await;
    let acked = Arc::new(Mutex::new(Acked::default()));
    let writers: Vec<_> = (0..32)
        .map(|i| {
            let (channel, key) = (server.channel.clone(), key.clone());
            let (workspace, owner, acked) = (workspace.clone(), owner.clone(), acked.clone());
            tokio::spawn(async move {
                let mut client = PermissionServiceClient::new(channel);
                // Until the server is gone: every fifth call a batch.
                for n in 0.. {
                    if n % 5 == 4 {
                        let prefix = format!("b{i}-{n}-");
                        let operations = (0..BATCH)
                            .map(|k| WriteOperation {
                                operation: Some(Operation::Register(registration(
                                    format!("{prefix}{k}"),
                                    &workspace,
                                    &owner,
                                ))),
                            })
                            .collect();
                        let request = with_service_key(WriteBatchRequest { operations }, &key);
                        if client.write_batch(request).await.is_err() {
                            return;
                        }
                        acked.lock().unwrap().batches.push(prefix);
                    } else {
                        let id = format!("s{i}-{n}");
                        let request =
                            with_service_key(registration(id.clone(), &workspace, &owner), &key);
                        if client.register_resource(request).await.is_err() {
                            return;
                        }
                        acked.lock().unwrap().singles.push(id);
                    }
                }
            })
        })
        .collect();
    eventually("300 acknowledged writes", || {
        let count = acked.lock().unwrap().singles.len();
        async move { count >= 300 }
    })
    .await;
    server.kill();
    within("the writers to see the server gone", async {
        for writer in writers {
            writer.await.unwrap();
        }
    })
    .await;
    let restarted = ServerProcess::start(&db).await;
    let stored: BTreeSet<String> = db
        .texts("SELECT resource_id FROM resources WHERE resource_type = 'doc'")
        .await
        .into_iter()
        .collect();
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        !acked.batches.is_empty(),
        "batches ran beside the single writes"
    );
    eprintln!(
        "acknowledged before the kill: {} single writes, {} batches; stored: {}",
        acked.singles.len(),
        acked.batches.len(),
        stored.len()
    );
    for id in &acked.singles {
        assert!(stored.contains(id), "acknowledged {id} is stored");
    }
    for prefix in &acked.batches {
        for k in 0..BATCH {
            assert!(
                stored.contains(&format!("{prefix}{k}")),
                "batch {prefix} is stored"
            );
        }
    }
    // No batch is half there, acknowledged or not.
    let mut per_batch: BTreeMap<&str, usize> = BTreeMap::new();
    for id in stored.iter().filter(|id| id.starts_with('b')) {
        let prefix = &id[..=id.rfind('-').unwrap()];
        *per_batch.entry(prefix).or_default() += 1;
    }
    assert!(
        per_batch.values().all(|n| *n == BATCH),
        "whole batches only: {per_batch:?}"
    );
    // The changelog names exactly the stored resources: no row without its entry, no entry
    // without its row.
    let mut logged = BTreeSet::new();
    for payload in db
        .texts("SELECT payload FROM changelog WHERE kind IN ('resource_set', 'batch')")
        .await
    {
        let change: Change = serde_json::from_str(&payload).unwrap();
        for part in change.parts() {
            if let Change::ResourceSet { resource, .. } = part {
                logged.insert(resource.resource_id.clone());
            }
        }
    }
    assert_eq!(logged, stored, "the changelog and the resources agree");
    // Both indexes hold what the database holds.
    assert_eq!(
        visible(&restarted.channel, &key, &bob.access_token).await,
        stored
    );
    assert_eq!(
        visible(&follower.channel, &key, &bob.access_token).await,
        stored
    );
    drop(restarted);
    follower.stop().await;
}

/// A replica started while 16 writers register and share converges: once the writes stop, it
/// is at the first instance's revision and answers the same checks and lookups.
async fn a_replica_started_under_load_converges(backend: Backend) {
    let (a, db) = TestApp::spawn(backend).await;
    let key = service_key(&a, "docs").await;
    let ann = sign_in(&a, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&a, "bob@example.com", "acme", "viewer").await;
    let workspace = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let written = Arc::new(Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (0..16)
        .map(|i| {
            let (channel, key, workspace) = (a.channel.clone(), key.clone(), workspace.clone());
            let (bob, written) = (bob.user.id.to_string(), written.clone());
            tokio::spawn(async move {
                let mut client = PermissionServiceClient::new(channel);
                for n in 0..40 {
                    let id = format!("r{i}-{n}");
                    let mut request = registration(id.clone(), &workspace, "");
                    // A third workspace-visible, a third under the previous one, a third
                    // private, half of those shared with bob.
                    match n % 3 {
                        0 => request.visibility = Visibility::Workspace as i32,
                        1 if n > 0 => {
                            request.parent =
                                common::clients::rref("doc", &format!("r{i}-{}", n - 1))
                        }
                        _ => {}
                    }
                    client
                        .register_resource(with_service_key(request, &key))
                        .await
                        .unwrap();
                    if n % 6 == 2 {
                        client
                            .share(with_service_key(
                                ShareRequest {
                                    resource: common::clients::rref("doc", &id),
                                    grantee: common::clients::user_grantee(&bob),
                                    permission: Permission::View as i32,
                                    expires_at: None,
                                },
                                &key,
                            ))
                            .await
                            .unwrap();
                    }
                    written.lock().unwrap().push(id);
                }
            })
        })
        .collect();
    eventually("100 writes before the replica starts", || {
        let count = written.lock().unwrap().len();
        async move { count >= 100 }
    })
    .await;
    let c = TestApp::start(db.config()).await;
    within("the writers", async {
        for writer in writers {
            writer.await.unwrap();
        }
    })
    .await;
    let ids = std::mem::take(&mut *written.lock().unwrap());
    assert_eq!(ids.len(), 16 * 40);
    // The newest revision, as a write answers it: a registration that changes nothing.
    let newest = PermissionServiceClient::new(a.channel.clone())
        .register_resource(with_service_key(
            registration("r0-0".into(), &workspace, ""),
            &key,
        ))
        .await
        .unwrap()
        .into_inner()
        .consistency_token;
    let checks = |app: &TestApp| {
        let items = ids
            .iter()
            .map(|id| CheckBulkItem {
                resource: common::clients::rref("doc", id),
                action: "view".into(),
            })
            .collect::<Vec<_>>();
        let request = dual(
            CheckBulkRequest {
                items,
                consistency: common::clients::fresh(&newest),
            },
            &key,
            &bob.access_token,
        );
        let channel = app.channel.clone();
        async move {
            let reply = PermissionServiceClient::new(channel)
                .check_bulk(request)
                .await
                .unwrap()
                .into_inner();
            let allowed: Vec<bool> = reply.results.iter().map(|r| r.allowed).collect();
            (allowed, reply.consistency_token)
        }
    };
    let (on_a, at_a) = checks(&a).await;
    let (on_c, at_c) = checks(&c).await;
    assert_eq!(on_c, on_a, "the late replica answers the same checks");
    assert!(on_a.iter().any(|allowed| *allowed) && on_a.iter().any(|allowed| !*allowed));
    assert_eq!(at_c, at_a, "both at the same revision");
    assert_eq!(
        visible(&c.channel, &key, &bob.access_token).await,
        visible(&a.channel, &key, &bob.access_token).await
    );
    c.stop().await;
    a.stop().await;
}
