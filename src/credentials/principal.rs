//! The credential layer: reads `authorization`, `x-service-key` and `origin`, verifies them once,
//! enforces the RPC's tier (see `tiers.rs`) and the per-key and per-user rate limits, and hands
//! handlers a [`Principal`] in the request extensions.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::tiers::{Tier, tiers_of};
use crate::error::Error;
use crate::model::ServiceAppRow;
use crate::ratelimit::error_response;
use crate::services::Services;
use crate::tokens::jwt::{AccessClaims, AuthzClaims};

/// Who is calling, as established by the credential layer.
#[derive(Clone, Default)]
pub struct Principal {
    /// The user's verified, unrevoked access token.
    pub user: Option<Arc<AccessClaims>>,
    /// An authz token of the calling service (dual tier).
    pub authz: Option<Arc<AuthzClaims>>,
    /// The calling service app (by key, or by browser origin).
    pub service: Option<Arc<ServiceAppRow>>,
    /// Whether the service was identified by a browser origin rather than its key.
    pub via_origin: bool,
    /// Whether the user (by access token) is an active platform admin (looked up only for
    /// admin- and user-tier RPCs).
    pub is_admin: bool,
    /// The client's network address.
    pub client_address: Option<IpAddr>,
}

impl Principal {
    /// Records who is calling on the request span: the user, the workspace their token is
    /// scoped to, and the calling service (never a credential).
    fn record_on(&self, span: &tracing::Span) {
        if let Some(user) = &self.user {
            span.record("user", user.sub.as_str());
            if let Some(workspace) = &user.wid {
                span.record("workspace", workspace.as_str());
            }
        }
        if let Some(authz) = &self.authz {
            span.record("user", authz.sub.as_str());
            span.record("workspace", authz.wid.as_str());
        }
        if let Some(service) = &self.service {
            span.record("service", service.service_name.as_str());
        }
    }
}

/// RPCs whose abuse costs the most (token minting, sign-in, key management): they get the
/// stricter per-address limit.
const SENSITIVE: [&str; 8] = [
    "/sentinel.v1.AuthService/RetireSigningKey",
    "/sentinel.v1.AuthService/StartLogin",
    "/sentinel.v1.AuthService/ExchangeCode",
    "/sentinel.v1.AuthService/Refresh",
    "/sentinel.v1.AuthService/ResolveIdpToken",
    "/sentinel.v1.AuthService/RotateSigningKey",
    "/sentinel.v1.ServiceAppService/CreateServiceApp",
    "/sentinel.v1.ServiceAppService/RotateServiceAppKey",
];

const ADMIN_REQUIRED: &str = "platform admin required";
const MALFORMED_AUTHORIZATION: &str = "authorization: must be \"Bearer <token>\"";

/// What a call of an RPC with `tiers` must carry, for the answer to a call that lacks it. It
/// names header names only, never whether a presented credential exists: presented credentials
/// that fail verification get the uniform [`crate::tokens::service::INVALID_CREDENTIAL`].
fn needed_credentials(tiers: &[Tier], headers: &http::HeaderMap) -> String {
    let ways: Vec<&str> = tiers
        .iter()
        .filter_map(|tier| match tier {
            Tier::Public => None,
            Tier::User => Some("authorization: Bearer <user access token>"),
            Tier::Dual => Some(
                "x-service-key and authorization: Bearer <user access token, or authz token of \
                 that service>",
            ),
            Tier::Service => Some("x-service-key"),
            Tier::Browser => Some("an origin allowed for a service app"),
            Tier::Admin => Some("authorization: Bearer <access token of a platform admin>"),
        })
        .collect();
    let mut message = format!("this RPC needs {}", ways.join(", or "));
    if ["x-api-key", "api-key", "x-service_key", "service-key"]
        .iter()
        .any(|name| headers.contains_key(*name))
    {
        message.push_str("; the service key goes in x-service-key");
    }
    message
}

fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Middleware on the gRPC routes.
pub async fn enforce(
    State(state): State<Arc<Services>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let Some(tiers) = tiers_of(&path) else {
        // Health and reflection: not part of the contract's tiers.
        return next.run(request).await;
    };
    let client_address =
        crate::ratelimit::client_address(&request, state.config.rate_limit.trust_forwarded_for);
    match authorize(&state, &path, tiers, request.headers(), client_address).await {
        Ok(principal) => {
            principal.record_on(&tracing::Span::current());
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(error) => {
            // In the request span, with its request id; never the credential itself.
            tracing::debug!(rpc = %path, reason = %error, "call refused by the credential layer");
            let reason = match &error {
                Error::CredentialMissing(_) => Some("missing"),
                Error::Unauthenticated(_) => Some("invalid"),
                Error::PermissionDenied(_) => Some("not_admin"),
                _ => None,
            };
            if let Some(reason) = reason {
                let actor = crate::audit::Actor {
                    client_address: client_address.map(|a| a.to_string()),
                    request_id: request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .map(String::from),
                    ..crate::audit::Actor::default()
                };
                state.failures.record(
                    &actor,
                    &crate::audit::Failure {
                        action: "auth.denied",
                        outcome: "denied",
                        target: ("rpc", &path),
                        reason,
                    },
                );
            }
            error_response(request.headers(), error)
        }
    }
}

async fn authorize(
    state: &Services,
    path: &str,
    tiers: &[Tier],
    headers: &http::HeaderMap,
    client_address: Option<IpAddr>,
) -> Result<Principal, Error> {
    let limits = &state.config.rate_limit;
    if limits.enabled
        && SENSITIVE.contains(&path)
        && let Some(address) = client_address
    {
        state
            .limiter
            .check(
                "sensitive",
                &crate::ratelimit::address_bucket(address),
                limits.sensitive_per_address,
                limits.window,
            )
            .await?;
    }
    let mut principal = Principal {
        client_address,
        ..Principal::default()
    };
    if tiers.contains(&Tier::Public) {
        return Ok(principal);
    }

    // A credential that is present must be valid, whatever else the call carries.
    if let Some(key) = headers.get("x-service-key") {
        let key = key
            .to_str()
            .map_err(|_| Error::Unauthenticated(crate::apps::INVALID_KEY))?;
        principal.service = Some(state.apps.authenticate(key).await?);
    }
    if let Some(token) = bearer(headers) {
        match state.tokens.authenticate(token).await {
            Ok(claims) => principal.user = Some(claims),
            Err(err) => {
                // The only other bearer accepted: an authz token of the calling service.
                let service = principal.service.as_ref().ok_or(err)?;
                let claims = state
                    .tokens
                    .authenticate_authz(token, &service.service_name)?;
                principal.authz = Some(Arc::new(claims));
            }
        }
    } else if headers.contains_key(http::header::AUTHORIZATION) {
        return Err(Error::Unauthenticated(MALFORMED_AUTHORIZATION));
    }
    if tiers.contains(&Tier::Browser)
        && principal.service.is_none()
        && let Some(origin) = headers
            .get(http::header::ORIGIN)
            .and_then(|o| o.to_str().ok())
        && let Some(app) = state.apps.app_for_origin(origin).await?
    {
        principal.service = Some(app);
        principal.via_origin = true;
    }
    // Once per call, where it can matter: admin RPCs, and user RPCs (a platform admin sees
    // every workspace and manages any user's sessions). Never on the dual-only hot path.
    if (tiers.contains(&Tier::Admin) || tiers.contains(&Tier::User))
        && let Some(user) = &principal.user
    {
        let id = user.sub.parse().map_err(|_| Error::Internal)?;
        principal.is_admin = state.users.is_platform_admin(id).await?;
    }

    let has_key = principal.service.is_some() && !principal.via_origin;
    let satisfied = tiers.iter().any(|tier| match tier {
        Tier::Public => true,
        Tier::User => principal.user.is_some(),
        Tier::Dual => has_key && (principal.user.is_some() || principal.authz.is_some()),
        Tier::Service => has_key,
        Tier::Browser => principal.via_origin,
        Tier::Admin => principal.is_admin,
    });
    if !satisfied {
        // Authenticated, but as the wrong kind of caller.
        if tiers == [Tier::Admin] && principal.user.is_some() {
            return Err(Error::PermissionDenied(ADMIN_REQUIRED.into()));
        }
        return Err(Error::CredentialMissing(needed_credentials(tiers, headers)));
    }

    if limits.enabled {
        if let Some(app) = principal.service.as_ref().filter(|_| has_key) {
            state
                .limiter
                .check("key", &app.id.to_string(), limits.per_key, limits.window)
                .await?;
        }
        if let Some(user) = &principal.user {
            state
                .limiter
                .check("user", &user.sub, limits.per_user, limits.window)
                .await?;
        }
    }
    Ok(principal)
}
