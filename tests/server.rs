//! The foundation over the wire, on both backends: one port serving gRPC, gRPC-web and HTTP;
//! health, reflection, CORS, metrics, rate limits, graceful shutdown, signing keys.

mod common;

use std::time::Duration;

use common::wait::eventually;
use common::{Backend, TestApp, TestDatabase};
use prost::Message;
use sentinel::proto::v1::auth_service_client::AuthServiceClient;
use sentinel::proto::v1::user_service_client::UserServiceClient;
use sentinel::proto::v1::{GetJwksRequest, GetJwksResponse, GetMeRequest};
use tonic::Code;

both_backends!(
    health_over_grpc_and_http,
    reflection_lists_every_service,
    grpc_web_over_http1_returns_the_jwks,
    cors_preflight_allows_only_configured_origins,
    metrics_count_rpcs_by_method_and_code,
    request_ids_are_set_and_propagated,
    oversized_http_bodies_are_refused,
    jwks_survives_a_restart,
    rate_limit_trips_and_resets,
    graceful_shutdown_completes_an_in_flight_call,
);

async fn jwks_over_grpc(app: &TestApp) -> GetJwksResponse {
    AuthServiceClient::new(app.channel.clone())
        .get_jwks(GetJwksRequest {})
        .await
        .expect("GetJwks")
        .into_inner()
}

async fn health_over_grpc_and_http(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check")
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let live = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    assert_eq!(body["cache"], "ok");
    app.stop().await;
}

async fn reflection_lists_every_service(backend: Backend) {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let (app, _db) = TestApp::spawn(backend).await;
    let mut client = ServerReflectionClient::new(app.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = common::wait::next(&mut responses, "the reflection answer")
        .await
        .unwrap()
        .expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in sentinel::api::SERVICE_NAMES {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(names.iter().any(|n| n == "grpc.health.v1.Health"));
    app.stop().await;
}

/// Splits a gRPC-web response body into its message and its trailers.
fn decode_grpc_web(body: &[u8]) -> (Vec<u8>, String) {
    let mut message = Vec::new();
    let mut trailers = String::new();
    let mut rest = body;
    while rest.len() >= 5 {
        let flag = rest[0];
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let frame = &rest[5..5 + len];
        if flag & 0x80 == 0 {
            message.extend_from_slice(frame);
        } else {
            trailers.push_str(&String::from_utf8_lossy(frame));
        }
        rest = &rest[5 + len..];
    }
    (message, trailers)
}

async fn grpc_web_over_http1_returns_the_jwks(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let response = app
        .http
        .post(app.url("/sentinel.v1.AuthService/GetJwks"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    let body = response.bytes().await.unwrap();
    let (message, trailers) = decode_grpc_web(&body);
    assert!(trailers.contains("grpc-status:0"), "trailers: {trailers}");
    let jwks = GetJwksResponse::decode(message.as_slice()).unwrap();
    let http: serde_json::Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(jwks.keys[0].kid, http["keys"][0]["kid"]);
    assert_eq!(jwks.keys[0].n, http["keys"][0]["n"]);
    assert_eq!(jwks.keys[0].alg, "RS256");
    app.stop().await;
}

async fn cors_preflight_allows_only_configured_origins(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let mut config = db.config();
    config.cors_origins = vec!["https://app.example.com".into()];
    let app = TestApp::start(config).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(
                reqwest::Method::OPTIONS,
                app.url("/sentinel.v1.AuthService/GetJwks"),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-grpc-web,authorization",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert!(allowed.status().is_success());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let allow_headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(allow_headers.contains("x-grpc-web"), "{allow_headers}");
    let foreign = preflight("https://evil.example.com").await.unwrap();
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    app.stop().await;
}

async fn metrics_count_rpcs_by_method_and_code(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    jwks_over_grpc(&app).await;
    jwks_over_grpc(&app).await;
    let _ = UserServiceClient::new(app.channel.clone())
        .get_me(GetMeRequest::default())
        .await;
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"sentinel_grpc_requests_total{service="sentinel.v1.AuthService",method="GetJwks",code="OK"} 2"#),
        "{text}"
    );
    assert!(text.contains(
        r#"sentinel_grpc_requests_total{service="sentinel.v1.UserService",method="GetMe",code="UNAUTHENTICATED"} 1"#
    ));
    assert!(text.contains(r#"sentinel_grpc_request_duration_seconds_count{service="sentinel.v1.AuthService",method="GetJwks"} 2"#));
    app.stop().await;
}

async fn request_ids_are_set_and_propagated(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let generated = app.http.get(app.url("/healthz")).send().await.unwrap();
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let given = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-me-42");
    app.stop().await;
}

async fn oversized_http_bodies_are_refused(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let mut config = db.config();
    config.max_request_bytes = 4096;
    let app = TestApp::start(config).await;
    let response = app
        .http
        .post(app.url("/healthz"))
        .body(vec![b'x'; 10_000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // The same limit holds for gRPC messages.
    // With the credential the RPC needs, so that only the size can refuse it.
    let key = common::service_key(&app, "docs").await;
    let mut client = AuthServiceClient::new(app.channel.clone());
    let err = client
        .introspect(common::with_service_key(
            sentinel::proto::v1::IntrospectRequest {
                token: "x".repeat(10_000),
            },
            &key,
        ))
        .await
        .expect_err("over the limit");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().starts_with("request:"), "{}", err.message());
    app.stop().await;
}

async fn jwks_survives_a_restart(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let first = TestApp::start(db.config()).await;
    let before = jwks_over_grpc(&first).await;
    first.stop().await;
    let second = TestApp::start(db.config()).await;
    let after = jwks_over_grpc(&second).await;
    assert_eq!(before.keys.len(), 1);
    assert_eq!(before.keys[0].kid, after.keys[0].kid);
    assert_eq!(before.keys[0].n, after.keys[0].n);
    let http = second
        .http
        .get(second.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert!(
        http.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    second.stop().await;
}

async fn rate_limit_trips_and_resets(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let mut config = db.config();
    config.rate_limit.per_address = 5;
    // Long enough that the requests below fall into one window however slow the run.
    config.rate_limit.window = Duration::from_secs(600);
    let app = TestApp::start(config.clone()).await;
    // In clustered mode a second replica shares the counters through Redis.
    let other = match backend {
        Backend::Clustered => Some(TestApp::start(config).await),
        Backend::Embedded => None,
    };
    let jwks = "/.well-known/jwks.json";
    let mut served = 0;
    for i in 0..5 {
        let target = match (&other, i % 2) {
            (Some(other), 1) => other,
            _ => &app,
        };
        let response = target.http.get(target.url(jwks)).send().await.unwrap();
        if response.status() == 200 {
            served += 1;
        }
    }
    assert_eq!(served, 5, "the first five requests of the window pass");
    let limited = app.http.get(app.url(jwks)).send().await.unwrap();
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=600).contains(&retry_after),
        "retry-after {retry_after}"
    );
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["code"], "RESOURCE_EXHAUSTED");

    let err = AuthServiceClient::new(app.channel.clone())
        .get_jwks(GetJwksRequest {})
        .await
        .expect_err("limited over gRPC too");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.metadata().get("retry-after").is_some());
    if let Some(other) = &other {
        let limited = other.http.get(other.url(jwks)).send().await.unwrap();
        assert_eq!(limited.status(), 429, "the limit holds across replicas");
    }

    // Probes are never limited.
    let probe = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(probe.status(), 200);

    if let Some(other) = other {
        other.stop().await;
    }
    app.stop().await;

    // A window resets: with one request per short window, a refused request is followed by a
    // served one with nothing else changed.
    let db = TestDatabase::create(backend).await;
    let mut config = db.config();
    config.rate_limit.per_address = 1;
    config.rate_limit.window = Duration::from_secs(1);
    let app = TestApp::start(config).await;
    let status = || async { app.http.get(app.url(jwks)).send().await.unwrap().status() };
    eventually("a request over the limit is refused", || async {
        status().await == 429
    })
    .await;
    eventually("the window resets", || async { status().await == 200 }).await;
    app.stop().await;
}

async fn graceful_shutdown_completes_an_in_flight_call(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let url = app.url("/sentinel.v1.AuthService/GetJwks");
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    // Half of the gRPC frame header: the call is open but its request is not complete.
    tx.send(Ok(vec![0u8, 0, 0])).await.unwrap();
    let call = tokio::spawn(
        client
            .post(url)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(body)
            .send(),
    );
    // The server has the call (it counts it in flight; the scrape itself is plain HTTP).
    eventually("the server holds the call", || async {
        common::metrics_text(&app)
            .await
            .contains("sentinel_grpc_requests_in_flight 1")
    })
    .await;
    let addr = app.addr;
    let stopping = tokio::spawn(app.app.shutdown());
    // Shutting down stops accepting at once, and still holds the open call.
    eventually("no new connections while draining", || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(
        !stopping.is_finished(),
        "shutdown waits for the in-flight call"
    );

    tx.send(Ok(vec![0u8, 0])).await.unwrap();
    drop(tx);
    let response = call.await.unwrap().expect("the in-flight call completes");
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    let (message, _) = decode_grpc_web(&body);
    let jwks = GetJwksResponse::decode(message.as_slice()).unwrap();
    assert_eq!(jwks.keys.len(), 1);
    stopping.await.unwrap().expect("clean shutdown");
}
