//! PostgreSQL stopped and started again under a running clustered server and 16 writers: while
//! it is down, writes answer UNAVAILABLE (never INTERNAL) and checks keep being answered from
//! the index; once it is back, writes succeed without restarting Sentinel, and every write that
//! was acknowledged is stored.
//!
//! It stops the local PostgreSQL cluster (`pg_ctlcluster`, the one the suite's default URL
//! reaches), so it is a test binary of its own: cargo runs test binaries one after another, and
//! nothing else uses the database meanwhile. Elsewhere than on such a machine it is skipped,
//! except under CI.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::clients::{perms, rref, user_grantee};
use common::resources::register;
use common::wait::eventually;
use common::{Backend, TestApp, allowed, clustered_available, service_key, sign_in};
use common::{postgres_url, with_service_key};
use sentinel::proto::v1::permission_service_client::PermissionServiceClient;
use sentinel::proto::v1::{Permission, RegisterResourceRequest, ShareRequest, Visibility};
use tonic::Code;

/// The local cluster's version directory, when `pg_ctlcluster` manages the default database.
fn local_cluster() -> Option<String> {
    if !postgres_url().contains("127.0.0.1:5432") {
        return None;
    }
    Command::new("pg_ctlcluster").arg("--help").output().ok()?;
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    versions.sort();
    versions.pop()
}

fn pg_ctl(version: &str, action: &str) {
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", version, "main", action])
        .args(if action == "stop" {
            &["-m", "fast"][..]
        } else {
            &[][..]
        })
        .status()
        .expect("pg_ctlcluster runs");
    assert!(status.success(), "pg_ctlcluster {action}: {status}");
}

/// Starts the cluster again however the test ends.
struct Restart(String);

impl Drop for Restart {
    fn drop(&mut self) {
        let _ = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &self.0, "main", "start"])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_out_a_postgres_outage() {
    if !clustered_available().await {
        return;
    }
    let Some(version) = local_cluster() else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "CI runs the PostgreSQL outage test: pg_ctlcluster is required"
        );
        eprintln!(
            "SKIPPED: no pg_ctlcluster-managed PostgreSQL behind {}",
            postgres_url()
        );
        return;
    };
    let (app, db) = TestApp::spawn(Backend::Clustered).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&app, "bob@example.com", "acme", "viewer").await;
    let w = ann.scope.as_ref().unwrap().workspace.id;
    let put = |id: &'static str| {
        let (app, key) = (&app, key.clone());
        async move { register(app, &key, "doc", id, w, None, Visibility::Private, None).await }
    };
    let share = |id: &'static str| {
        let request = with_service_key(
            ShareRequest {
                resource: rref("doc", id),
                grantee: user_grantee(bob.user.id),
                permission: Permission::View as i32,
                expires_at: None,
            },
            &key,
        );
        let mut client = perms(&app);
        async move { client.share(request).await }
    };
    put("before").await.unwrap();
    share("before").await.unwrap();
    assert!(allowed(&app, &key, &bob.access_token, "doc", "before", "view").await);

    // 16 writers keep registering through the outage; every refusal must be UNAVAILABLE.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..16)
        .map(|i| {
            let (app_channel, key, stop) = (app.channel.clone(), key.clone(), stop.clone());
            tokio::spawn(async move {
                let mut client = PermissionServiceClient::new(app_channel);
                let (mut acked, mut refused) = (Vec::new(), Vec::new());
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let id = format!("load{i}-{n}");
                    let request = with_service_key(
                        RegisterResourceRequest {
                            resource_type: "doc".into(),
                            resource_id: id.clone(),
                            workspace_id: w.to_string(),
                            owner_id: String::new(),
                            visibility: Visibility::Private as i32,
                            parent: None,
                            upsert: false,
                        },
                        &key,
                    );
                    match client.register_resource(request).await {
                        Ok(_) => acked.push(id),
                        Err(status) => refused.push(status),
                    }
                }
                (acked, refused)
            })
        })
        .collect();
    let _restart = Restart(version.clone());
    pg_ctl(&version, "stop");
    // Checks are answered from the index meanwhile (first: a write waits for the connect
    // timeout, and past `revocation_max_staleness` the replica refuses tokens by design).
    assert!(allowed(&app, &key, &bob.access_token, "doc", "before", "view").await);
    assert!(!allowed(&app, &key, &bob.access_token, "doc", "during", "view").await);
    let refused = put("during").await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let refused = share("before").await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");

    pg_ctl(&version, "start");
    eventually("writes succeed again without a restart", || async {
        put("after").await.is_ok()
    })
    .await;
    share("after").await.unwrap();
    assert!(allowed(&app, &key, &bob.access_token, "doc", "after", "view").await);
    stop.store(true, Ordering::Relaxed);
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    for writer in writers {
        let (a, r) = writer.await.unwrap();
        acked.extend(a);
        refused.extend(r);
    }
    assert!(!refused.is_empty(), "the load met the outage");
    for status in &refused {
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    let stored: std::collections::BTreeSet<String> = db
        .texts("SELECT resource_id FROM resources WHERE resource_id LIKE 'load%'")
        .await
        .into_iter()
        .collect();
    for id in &acked {
        assert!(stored.contains(id), "acknowledged {id} is stored");
    }
    eprintln!(
        "under the outage: {} writes acknowledged, {} refused UNAVAILABLE",
        acked.len(),
        refused.len()
    );
    app.stop().await;
}
