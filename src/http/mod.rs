//! The HTTP side of the single port: probes, metrics, JWKS, and the browser steps of sign-in.

mod oauth;

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::AppState;
use crate::error::Error;

/// Longest a readiness probe waits for each dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// HTTP routes (merged with the gRPC routes by the server).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/oauth/{provider}/login", get(oauth::login))
        .route("/oauth/{provider}/callback", get(oauth::callback))
        .with_state(state)
}

/// Answer for paths no route matches (instead of a gRPC UNIMPLEMENTED to plain HTTP clients).
pub async fn not_found() -> Response {
    Error::NotFound("route".into()).into_response()
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    let (database, cache) = tokio::join!(
        tokio::time::timeout(PROBE_TIMEOUT, state.store.ping()),
        tokio::time::timeout(PROBE_TIMEOUT, state.cache.ping()),
    );
    let database_ok = matches!(database, Ok(Ok(())));
    let cache_ok = matches!(cache, Ok(Ok(())));
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

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn jwks(State(state): State<AppState>) -> Response {
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
