//! The browser steps of sign-in: `GET /oauth/{provider}/login` (302 to the provider) and
//! `GET /oauth/{provider}/callback` (302 to the client app with a one-time code). Failures are
//! audited and shown as a friendly page, or as JSON `{code, message}` to API clients.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::audit::Actor;
use crate::login::LoginError;
use crate::model::Caller;
use crate::services::Services;

fn actor(state: &Services, request: &axum::extract::Request) -> Actor {
    Actor {
        request_id: request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        client_address: crate::ratelimit::client_address(
            request,
            state.config.rate_limit.trust_forwarded_for,
        )
        .map(|a| a.to_string()),
        ..Actor::default()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A failure as a page (browsers) or JSON (clients asking for it).
fn failure(headers: &HeaderMap, err: LoginError) -> Response {
    if let LoginError::Provider(why) | LoginError::InvalidToken(why) = &err {
        tracing::warn!(%why, "sign-in refused by or for the identity provider");
    }
    let (status, title) = match &err {
        LoginError::UnknownProvider => (StatusCode::NOT_FOUND, "Unknown sign-in provider"),
        LoginError::RedirectNotAllowed => {
            (StatusCode::BAD_REQUEST, "This application is not allowed")
        }
        LoginError::BadRequest(..) => (StatusCode::BAD_REQUEST, "Invalid sign-in request"),
        LoginError::SessionExpired => (
            StatusCode::PRECONDITION_FAILED,
            "Your sign-in session expired",
        ),
        LoginError::EmailNotVerified => (StatusCode::FORBIDDEN, "Email address not verified"),
        LoginError::Deactivated => (StatusCode::FORBIDDEN, "Account deactivated"),
        LoginError::AuthzModeOff => (StatusCode::BAD_REQUEST, "Invalid sign-in request"),
        LoginError::DomainNotAllowed | LoginError::SignupClosed => {
            (StatusCode::FORBIDDEN, "This account cannot sign in here")
        }
        LoginError::AccountExists => (StatusCode::CONFLICT, "This email already has an account"),
        LoginError::Provider(_) | LoginError::InvalidToken(_) => (
            StatusCode::UNAUTHORIZED,
            "The sign-in provider refused the sign-in",
        ),
        LoginError::Other(crate::error::Error::ResourceExhausted { .. }) => {
            (StatusCode::TOO_MANY_REQUESTS, "Too many sign-in attempts")
        }
        LoginError::Other(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
    };
    let message = match &err {
        LoginError::Provider(_) | LoginError::InvalidToken(_) => {
            "The identity provider did not complete the sign-in. Please try again.".to_string()
        }
        LoginError::Other(e) => e.to_string(),
        other => other.to_string(),
    };
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
    if wants_json {
        return (
            status,
            axum::Json(serde_json::json!({ "code": err.reason(), "message": message })),
        )
            .into_response();
    }
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{PAGE_STYLE}</style></head><body><h1>{title}</h1>\
         <p>{}</p><p>Return to the application and start signing in again.</p></body></html>",
        escape(&message)
    );
    let mut response = (status, Html(page)).into_response();
    if let Ok(policy) = header::HeaderValue::from_str(&page_policy()) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

/// The sign-in pages' only stylesheet, inline and allowed by its hash (no other source).
const PAGE_STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;\
                          padding:0 1rem;color:#222}h1{font-size:1.4rem}p{line-height:1.5}";

/// `default-src 'none'` plus the hash of [`PAGE_STYLE`].
fn page_policy() -> String {
    use base64::Engine;
    static POLICY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, PAGE_STYLE.as_bytes());
        format!(
            "default-src 'none'; style-src 'sha256-{}'; frame-ancestors 'none'",
            base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
        )
    });
    POLICY.clone()
}

/// `GET /oauth/{provider}/login?redirect_uri&code_challenge&code_challenge_method=S256[&state]`.
pub async fn login(
    State(state): State<Services>,
    Path(provider): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    request: axum::extract::Request,
) -> Response {
    let get = |k: &str| query.get(k).map(String::as_str).unwrap_or_default();
    let actor = actor(&state, &request);
    let headers = request.headers();
    let started = state
        .login
        .start(&crate::login::StartRequest {
            provider: &provider,
            redirect_uri: get("redirect_uri"),
            code_challenge: get("code_challenge"),
            method: get("code_challenge_method"),
            client_state: get("state"),
            login_hint: get("login_hint"),
            client_address: actor.client_address.as_deref(),
        })
        .await;
    match started {
        Ok((url, _)) => (StatusCode::FOUND, [(header::LOCATION, url)]).into_response(),
        Err(err) => {
            state
                .login
                .audit_failure(&provider, &err, &Caller::anonymous(actor.clone()))
                .await;
            failure(headers, err)
        }
    }
}

/// `GET /oauth/{provider}/callback?code&state` (or `?error=…` from the provider).
pub async fn callback(
    State(state): State<Services>,
    Path(provider): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    request: axum::extract::Request,
) -> Response {
    let get = |k: &str| query.get(k).map(String::as_str).unwrap_or_default();
    let actor = actor(&state, &request);
    let headers = request.headers();
    let result = if !get("error").is_empty() {
        Err(state
            .login
            .provider_refused(get("state"), get("error"))
            .await)
    } else {
        state
            .login
            .callback(
                &provider,
                get("code"),
                get("state"),
                &Caller::anonymous(actor.clone()),
            )
            .await
    };
    match result {
        Ok(url) => (StatusCode::FOUND, [(header::LOCATION, url)]).into_response(),
        Err(err) => {
            state
                .login
                .audit_failure(&provider, &err, &Caller::anonymous(actor.clone()))
                .await;
            failure(headers, err)
        }
    }
}
