//! Clustered mode only: several instances on one PostgreSQL + Redis, and outages of either.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::proxy::CutProxy;
use common::wait::eventually;
use common::{Backend, TestApp, TestDatabase};
use sentinel::proto::v1::GetJwksRequest;
use sentinel::proto::v1::auth_service_client::AuthServiceClient;
use sqlx::Connection;

/// What one refresh worker saw: successes by phase (before, during, after an outage), outage
/// answers, and refusals.
#[derive(Default)]
struct Counts {
    ok: [AtomicUsize; 3],
    unavailable: AtomicUsize,
    refused: AtomicUsize,
}

impl Counts {
    fn ok_in(&self, phase: usize) -> usize {
        self.ok[phase].load(Ordering::SeqCst)
    }

    fn unavailable_seen(&self) -> usize {
        self.unavailable.load(Ordering::SeqCst)
    }
}

/// Replaces host:port of a postgres:// URL.
fn with_address(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (userinfo, hostpath) = match rest.rsplit_once('@') {
        Some((user, hostpath)) => (format!("{user}@"), hostpath),
        None => (String::new(), rest),
    };
    let path = hostpath.find('/').map_or("", |i| &hostpath[i..]);
    format!("{scheme}://{userinfo}{addr}{path}")
}

fn postgres_address() -> SocketAddr {
    let url = common::postgres_url();
    let rest = url.split_once("://").unwrap().1;
    let hostpath = rest.rsplit('@').next().unwrap();
    let host = hostpath.split('/').next().unwrap();
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:5432")
    };
    host.replace("localhost", "127.0.0.1")
        .parse()
        .expect("PostgreSQL host:port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_postgres_reachability() {
    if !common::clustered_available().await {
        return;
    }
    let db = TestDatabase::create(Backend::Clustered).await;
    let proxy = CutProxy::start(postgres_address()).await;
    let mut config = db.config();
    config.database_url = Some(with_address(&db.url, proxy.addr));
    let app = TestApp::start(config).await;
    let ready = |app: &TestApp| {
        let request = app.http.get(app.url("/readyz")).send();
        async move {
            let response = request.await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, body)
        }
    };
    assert_eq!(ready(&app).await.0, 200);

    proxy.cut();
    eventually("readyz reports the cut database", || async {
        ready(&app).await.0 == 503
    })
    .await;
    let (status, body) = ready(&app).await;
    assert_eq!(status, 503);
    assert_eq!(body["database"], "unavailable");
    assert_eq!(body["cache"], "ok");
    // Liveness does not depend on the database.
    let live = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(live.status(), 200);

    proxy.restore();
    eventually("readyz returns to 200 once PostgreSQL is back", || async {
        ready(&app).await.0 == 200
    })
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_start_yields_one_active_key() {
    if !common::clustered_available().await {
        return;
    }
    let db = TestDatabase::create(Backend::Clustered).await;
    let (a, b, c) = tokio::join!(
        TestApp::start(db.config()),
        TestApp::start(db.config()),
        TestApp::start(db.config()),
    );
    let mut kids = Vec::new();
    for app in [&a, &b, &c] {
        let jwks = AuthServiceClient::new(app.channel.clone())
            .get_jwks(GetJwksRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(jwks.keys.len(), 1);
        kids.push(jwks.keys[0].kid.clone());
    }
    assert!(kids.windows(2).all(|w| w[0] == w[1]), "{kids:?}");
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let (active,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM signing_keys WHERE status = 'active'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(active, 1);
    for app in [a, b, c] {
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_kek_refuses_to_start_with_a_clear_message() {
    if !common::clustered_available().await {
        return;
    }
    let db = TestDatabase::create(Backend::Clustered).await;
    TestApp::start(db.config()).await.stop().await;
    let mut config = db.config();
    config.kek = Some(base64_kek(7));
    let err = sentinel::Application::start(config)
        .await
        .err()
        .expect("refused");
    let text = format!("{err:#}");
    assert!(text.contains("key-encryption key"), "{text}");
}

fn base64_kek(byte: u8) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_during_refresh_load_causes_no_false_reuse() {
    use sentinel::proto::v1::RefreshRequest;
    if !common::clustered_available().await {
        return;
    }
    let db = TestDatabase::create(Backend::Clustered).await;
    let proxy = std::sync::Arc::new(CutProxy::start(postgres_address()).await);
    let mut config = db.config();
    config.database_url = Some(with_address(&db.url, proxy.addr));
    // A load test: the per-address limit on token minting would throttle it.
    config.rate_limit.enabled = false;
    let app = TestApp::start(config).await;
    let mut chains = Vec::new();
    for i in 0..8 {
        let issued = common::sign_in(&app, &format!("load{i}@example.com"), "acme", "viewer").await;
        chains.push(issued.refresh_token);
    }
    // Each worker refreshes its chain until told to stop, counting what it saw in each phase
    // (before, during and after the outage); the phases move on signals, not on a timer.
    let phase = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Vec<Arc<Counts>> = chains.iter().map(|_| Arc::default()).collect();
    let workers: Vec<_> = chains
        .into_iter()
        .zip(&counts)
        .map(|(mut token, counts)| {
            let mut client = AuthServiceClient::new(app.channel.clone());
            let (phase, stop, counts) = (phase.clone(), stop.clone(), counts.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let result = client
                        .refresh(RefreshRequest {
                            refresh_token: token.clone(),
                            workspace_id: String::new(),
                        })
                        .await;
                    match result {
                        Ok(response) => {
                            token = response.into_inner().tokens.unwrap().refresh_token;
                            counts.ok[phase.load(Ordering::SeqCst)].fetch_add(1, Ordering::SeqCst);
                        }
                        Err(status) if status.code() == tonic::Code::Unauthenticated => {
                            counts.refused.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(status) => {
                            assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                            counts.unavailable.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                token
            })
        })
        .collect();
    let every = |what: fn(&Counts) -> usize| {
        let counts = counts.clone();
        move || {
            let met = counts.iter().all(|c| what(c) > 0);
            async move { met }
        }
    };
    eventually(
        "every chain refreshes before the outage",
        every(|c| c.ok_in(0)),
    )
    .await;
    proxy.cut();
    phase.store(1, Ordering::SeqCst);
    eventually(
        "every worker feels the outage",
        every(|c| c.unavailable_seen()),
    )
    .await;
    proxy.restore();
    phase.store(2, Ordering::SeqCst);
    eventually(
        "every chain refreshes after the outage",
        every(|c| c.ok_in(2)),
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut finals = Vec::new();
    for worker in workers {
        finals.push(worker.await.unwrap());
    }
    for counts in &counts {
        assert_eq!(
            counts.refused.load(Ordering::SeqCst),
            0,
            "a database outage must never look like token reuse"
        );
    }
    // Every chain still refreshes: no family was revoked.
    let mut client = AuthServiceClient::new(app.channel.clone());
    for token in finals {
        client
            .refresh(RefreshRequest {
                refresh_token: token,
                workspace_id: String::new(),
            })
            .await
            .expect("the family survived the outage");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refused_once_the_revocation_log_is_unreadable_too_long() {
    if !common::clustered_available().await {
        return;
    }
    let db = TestDatabase::create(Backend::Clustered).await;
    let proxy = CutProxy::start(postgres_address()).await;
    let mut config = db.config();
    config.database_url = Some(with_address(&db.url, proxy.addr));
    config.revocation_max_staleness = Duration::from_secs(2);
    let app = TestApp::start(config).await;
    let issued = common::sign_in(&app, "ann@example.com", "acme", "owner").await;
    let tokens = app.app.state().tokens.clone();
    assert!(tokens.authenticate(&issued.access_token).await.is_ok());

    // The database goes away: the replica could miss revocations, so it stops trusting tokens
    // (UNAVAILABLE) once its revocation set is older than the limit, instead of failing open.
    proxy.cut();
    eventually(
        "tokens are refused once the revocation set is too old",
        || async {
            match tokens.authenticate(&issued.access_token).await {
                Ok(_) => false,
                Err(sentinel::error::Error::Unavailable) => true,
                Err(other) => panic!("refused as unavailable, not as {other:?}"),
            }
        },
    )
    .await;

    // Back: the follower catches up and tokens verify again.
    proxy.restore();
    eventually("tokens verify again once the log is readable", || async {
        tokens.authenticate(&issued.access_token).await.is_ok()
    })
    .await;
    app.stop().await;
}

fn redis_address() -> SocketAddr {
    let url = common::redis_url();
    let rest = url.split_once("://").unwrap().1;
    let hostport = rest.rsplit('@').next().unwrap().split('/').next().unwrap();
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:6379")
    };
    hostport
        .replace("localhost", "127.0.0.1")
        .parse()
        .expect("Redis host:port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_degrades_but_never_lets_a_revoked_token_through() {
    use sentinel::proto::v1::permission_service_client::PermissionServiceClient;
    use sentinel::proto::v1::{IntrospectRequest, LogoutRequest, RegisterResourceRequest};
    if !common::clustered_available().await {
        return;
    }
    let db = TestDatabase::create(Backend::Clustered).await;
    let proxy = CutProxy::start(redis_address()).await;
    let mut config = db.config();
    config.redis_url = Some(format!("redis://{}", proxy.addr));
    let a = TestApp::start(config.clone()).await;
    let b = TestApp::start(config).await;
    let key = common::service_key(&a, "docs").await;
    let ann = common::sign_in(&a, "ann@example.com", "acme", "owner").await;
    let bob = common::sign_in(&a, "bob@example.com", "acme", "viewer").await;
    let ready = |app: &TestApp| {
        let request = app.http.get(app.url("/readyz")).send();
        async move {
            let response = request.await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    assert_eq!(ready(&b).await.0, 200);

    proxy.cut();
    eventually("readyz reports the cut cache", || async {
        ready(&b).await.0 == 503
    })
    .await;
    let (_, body) = ready(&b).await;
    assert_eq!(body["cache"], "unavailable");
    assert_eq!(body["database"], "ok");

    // Calls are still served (rate limits fall back to per-process counters).
    let introspect = |app: &TestApp, token: String| {
        let mut client = AuthServiceClient::new(app.channel.clone());
        let request = common::with_service_key(IntrospectRequest { token }, &key);
        async move {
            client
                .introspect(request)
                .await
                .unwrap()
                .into_inner()
                .active
        }
    };
    assert!(introspect(&b, ann.access_token.clone()).await);
    // A logout on one instance still reaches the other (by polling the revocation log).
    AuthServiceClient::new(a.channel.clone())
        .logout(common::with_bearer(
            LogoutRequest::default(),
            &ann.access_token,
        ))
        .await
        .unwrap();
    eventually("the other instance refuses the logged-out token", || {
        let live = introspect(&b, ann.access_token.clone());
        async move { !live.await }
    })
    .await;
    // A permission write on one instance is followed by the other's index.
    let workspace_id = bob.scope.as_ref().unwrap().workspace.id.to_string();
    PermissionServiceClient::new(a.channel.clone())
        .register_resource(common::with_service_key(
            RegisterResourceRequest {
                resource_type: "doc".into(),
                resource_id: "during-outage".into(),
                workspace_id,
                visibility: sentinel::proto::v1::Visibility::Workspace as i32,
                ..Default::default()
            },
            &key,
        ))
        .await
        .unwrap();
    eventually("the other instance follows the changelog", || {
        common::allowed(&b, &key, &bob.access_token, "doc", "during-outage", "view")
    })
    .await;

    proxy.restore();
    eventually("readyz returns to 200 once Redis is back", || async {
        ready(&b).await.0 == 200
    })
    .await;
    a.stop().await;
    b.stop().await;
}
