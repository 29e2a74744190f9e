//! Redis going away under two clustered replicas (on a Redis server of the test's own, so the
//! suite's shared one stays up): writes, Check and LookupResources keep working on both, the
//! second replica still follows the first (it polls the changelog) and still learns of a
//! logout; when Redis returns, both pick it up again without a restart.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use common::clients::{fresh, perms, rref, user_grantee};
use common::resources::{lookup_all, register};
use common::wait::eventually;
use common::{Backend, TestApp, TestDatabase, allowed, service_key, sign_in, with_bearer};
use common::{clustered_available, with_service_key};
use sentinel::proto::v1::auth_service_client::AuthServiceClient;
use sentinel::proto::v1::{IntrospectRequest, LogoutRequest, Permission, ShareRequest, Visibility};

/// A `redis-server` of this test's, on a port of its own; killed when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    async fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (installed with the test services)");
        let redis = Self { child, port };
        eventually("the test's Redis accepts connections", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn active(app: &TestApp, key: &str, token: &str) -> bool {
    AuthServiceClient::new(app.channel.clone())
        .introspect(with_service_key(
            IntrospectRequest {
                token: token.into(),
            },
            key,
        ))
        .await
        .expect("Introspect answers")
        .into_inner()
        .active
}

async fn share_with(app: &TestApp, key: &str, id: &str, user: impl ToString) -> String {
    perms(app)
        .share(with_service_key(
            ShareRequest {
                resource: rref("doc", id),
                grantee: user_grantee(user),
                permission: Permission::View as i32,
                expires_at: None,
            },
            key,
        ))
        .await
        .expect("Share answers")
        .into_inner()
        .consistency_token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_outlive_redis_and_pick_it_up_again() {
    if !clustered_available().await {
        return;
    }
    let port = free_port();
    let redis = Redis::start(port).await;
    let db = TestDatabase::create(Backend::Clustered).await;
    let mut config = db.config();
    config.redis_url = Some(redis.url());
    let a = TestApp::start(config.clone()).await;
    let b = TestApp::start(config.clone()).await;
    let key = service_key(&a, "docs").await;
    let ann = sign_in(&a, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&a, "bob@example.com", "acme", "viewer").await;
    let carl = sign_in(&a, "carl@example.com", "acme", "viewer").await;
    let w = ann.scope.as_ref().unwrap().workspace.id;
    let private = |id: &'static str| {
        let (a, key) = (&a, key.clone());
        async move {
            register(a, &key, "doc", id, w, None, Visibility::Private, None)
                .await
                .expect("RegisterResource answers")
        }
    };
    private("before").await;
    share_with(&a, &key, "before", bob.user.id).await;
    assert!(active(&b, &key, &carl.access_token).await);

    redis.kill();
    // Writes, checks and lookups go on, on both replicas.
    private("during").await;
    let token = share_with(&a, &key, "during", bob.user.id).await;
    let (_, ids) = lookup_all(&b, &key, &bob.access_token, "doc", "view", 1, fresh(&token)).await;
    assert_eq!(
        ids,
        ["before", "during"],
        "paged lookups keep their snapshot"
    );
    assert!(allowed(&b, &key, &bob.access_token, "doc", "during", "view").await);
    // Without a token the second replica learns of the write by polling.
    private("polled").await;
    share_with(&a, &key, "polled", bob.user.id).await;
    eventually("the second replica follows without Redis", || {
        allowed(&b, &key, &bob.access_token, "doc", "polled", "view")
    })
    .await;
    // A logout on the first replica reaches the second.
    let started = Instant::now();
    AuthServiceClient::new(a.channel.clone())
        .logout(with_bearer(
            LogoutRequest { all_sessions: true },
            &carl.access_token,
        ))
        .await
        .expect("Logout answers without Redis");
    eventually(
        "the second replica refuses the logged-out token",
        || async { !active(&b, &key, &carl.access_token).await },
    )
    .await;
    eprintln!(
        "logout seen by the second replica after {:?} without Redis",
        started.elapsed()
    );

    // Redis returns on the same address: both replicas use it again, no restart.
    let _redis = Redis::start(port).await;
    for app in [&a, &b] {
        eventually("readyz reports the cache again", || async {
            let body: serde_json::Value = match app.http.get(app.url("/readyz")).send().await {
                Ok(response) => response.json().await.unwrap_or_default(),
                Err(_) => return false,
            };
            body["cache"] == "ok"
        })
        .await;
    }
    private("after").await;
    share_with(&a, &key, "after", bob.user.id).await;
    eventually("the second replica follows again", || {
        allowed(&b, &key, &bob.access_token, "doc", "after", "view")
    })
    .await;
    b.stop().await;
    a.stop().await;
}
