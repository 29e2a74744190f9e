//! Clustered mode only: several instances on one PostgreSQL + Redis, and dependency outages.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::proxy::CutProxy;
use common::{Backend, TestApp, TestDatabase};
use sentinel::proto::v1::GetJwksRequest;
use sentinel::proto::v1::auth_service_client::AuthServiceClient;
use sqlx::Connection;

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
    let (status, body) = ready(&app).await;
    assert_eq!(status, 503);
    assert_eq!(body["database"], "unavailable");
    assert_eq!(body["cache"], "ok");
    // Liveness does not depend on the database.
    let live = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(live.status(), 200);

    proxy.restore();
    let mut recovered = false;
    for _ in 0..40 {
        if ready(&app).await.0 == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(recovered, "readyz returns to 200 once PostgreSQL is back");
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
    let outage = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            proxy.cut();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            proxy.restore();
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let workers = chains.into_iter().map(|mut token| {
        let mut client = AuthServiceClient::new(app.channel.clone());
        tokio::spawn(async move {
            let (mut ok, mut unavailable, mut refused) = (0u32, 0u32, 0u32);
            while tokio::time::Instant::now() < deadline {
                let result = client
                    .refresh(RefreshRequest {
                        refresh_token: token.clone(),
                        workspace_id: String::new(),
                    })
                    .await;
                match result {
                    Ok(response) => {
                        token = response.into_inner().tokens.unwrap().refresh_token;
                        ok += 1;
                    }
                    Err(status) if status.code() == tonic::Code::Unauthenticated => refused += 1,
                    Err(status) => {
                        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                        unavailable += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            (token, ok, unavailable, refused)
        })
    });
    let workers: Vec<_> = workers.collect();
    let mut total_unavailable = 0;
    let mut finals = Vec::new();
    for worker in workers {
        let (token, ok, unavailable, refused) = worker.await.unwrap();
        assert_eq!(
            refused, 0,
            "a database outage must never look like token reuse"
        );
        assert!(ok > 2, "refreshes before and after the outage succeed");
        total_unavailable += unavailable;
        finals.push(token);
    }
    outage.await.unwrap();
    assert!(total_unavailable > 0, "the outage was felt");
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
    let mut refused = None;
    for _ in 0..60 {
        match tokens.authenticate(&issued.access_token).await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            Err(err) => {
                refused = Some(err);
                break;
            }
        }
    }
    assert!(
        matches!(refused, Some(sentinel::error::Error::Unavailable)),
        "{refused:?}"
    );

    // Back: the follower catches up and tokens verify again.
    proxy.restore();
    let mut recovered = false;
    for _ in 0..60 {
        if tokens.authenticate(&issued.access_token).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(recovered, "tokens verify again once the log is readable");
    app.stop().await;
}
