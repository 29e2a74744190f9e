//! The HTTP side of the single port: probes, metrics, JWKS, and the browser steps of sign-in.

mod oauth;

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::Error;
use crate::services::Services;

/// Longest a readiness probe waits for each dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// HTTP routes (merged with the gRPC routes by the server).
pub fn router(state: Services) -> Router {
    // The sign-in steps create login state and call providers: the sensitive per-address limit.
    let sign_in = Router::new()
        .route("/oauth/{provider}/login", get(oauth::login))
        .route("/oauth/{provider}/callback", get(oauth::callback))
        .route_layer(axum::middleware::from_fn_with_state(
            state.limiter.clone(),
            crate::ratelimit::limit_sensitive,
        ));
    let main = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    // With `metrics_listen` set, /metrics is served only there (see `metrics_router`).
    let main = if state.config.metrics_listen.is_none() {
        main.route("/metrics", get(metrics))
    } else {
        main
    };
    main.route("/.well-known/jwks.json", get(jwks))
        .merge(sign_in)
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// `/metrics` alone, for the separate `metrics_listen` address (kept off the public port).
pub fn metrics_router(state: Services) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Headers on every HTTP answer: nothing here is a document to frame, sniff, script or cache
/// (JWKS keeps its own `Cache-Control`). Exported so that every HTTP route can carry them.
pub async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    // A page that needs more (the sign-in pages' own stylesheet, by hash) sets its own.
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'",
        ));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Answer for paths no route matches (instead of a gRPC UNIMPLEMENTED to plain HTTP clients).
pub async fn not_found() -> Response {
    let mut response = Error::NotFound("route".into()).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(state): State<Services>) -> Response {
    let ready = state.platform.readiness(PROBE_TIMEOUT).await;
    let (database_ok, cache_ok) = (ready.database, ready.cache);
    let status = if database_ok && cache_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let body = serde_json::json!({
        "status": if status == StatusCode::OK { "ready" } else { "not ready" },
        "database": word(database_ok),
        "cache": word(cache_ok),
    });
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<Services>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn jwks(State(state): State<Services>) -> Response {
    let max_age = state.config.jwks_max_age.as_secs();
    let cache_control = HeaderValue::from_str(&format!("public, max-age={max_age}"))
        .unwrap_or_else(|_| HeaderValue::from_static("public, max-age=300"));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/jwk-set+json"),
            ),
            (header::CACHE_CONTROL, cache_control),
        ],
        state.keys.jwks_json().to_string(),
    )
        .into_response()
}
