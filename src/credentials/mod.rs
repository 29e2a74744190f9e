//! What handlers know of the caller: the [`Principal`] the credential layer established (see
//! `principal.rs`). The tier was already enforced there; these helpers give handlers the parts
//! they need with the right error when a part is absent.

use std::sync::Arc;

use tonic::Request;

pub mod principal;
pub mod tiers;

use crate::error::Error;
use crate::model::{ServiceAppRow, UserId, WorkspaceId};
use crate::tokens::jwt::AccessClaims;
use crate::tokens::service::INVALID_CREDENTIAL;
pub use principal::Principal;

/// A request header as text (empty when absent or not text).
pub fn header<T>(request: &Request<T>, name: &str) -> String {
    request
        .metadata()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The caller as established by the credential layer.
pub fn principal<T>(request: &Request<T>) -> Result<&Principal, Error> {
    // Absent only if the layer did not run: a wiring bug, never a client error.
    request
        .extensions()
        .get::<Principal>()
        .ok_or(Error::Internal)
}

/// The caller's verified, unrevoked access token (user tier).
pub fn user<T>(request: &Request<T>) -> Result<Arc<AccessClaims>, Error> {
    principal(request)?
        .user
        .clone()
        .ok_or(Error::Unauthenticated(INVALID_CREDENTIAL))
}

/// The calling service app (service tier, or browser origin).
pub fn service<T>(request: &Request<T>) -> Result<Arc<ServiceAppRow>, Error> {
    principal(request)?
        .service
        .clone()
        .ok_or(Error::Unauthenticated(crate::apps::INVALID_KEY))
}

/// The caller's access token, when it belongs to an active platform admin (admin tier).
pub fn admin<T>(request: &Request<T>) -> Result<Arc<AccessClaims>, Error> {
    let principal = principal(request)?;
    let user = principal
        .user
        .clone()
        .ok_or(Error::Unauthenticated(INVALID_CREDENTIAL))?;
    if principal.is_admin {
        Ok(user)
    } else {
        Err(Error::PermissionDenied("platform admin required".into()))
    }
}

/// The caller, for the audit trail.
pub fn actor<T>(request: &Request<T>) -> crate::audit::Actor {
    let principal = request.extensions().get::<Principal>();
    crate::audit::Actor {
        user_id: principal
            .and_then(|p| p.user.as_ref())
            .and_then(|u| u.sub.parse().ok()),
        service: principal
            .and_then(|p| p.service.as_ref())
            .map(|s| s.service_name.clone()),
        client_address: principal
            .and_then(|p| p.client_address)
            .map(|a| a.to_string()),
        request_id: request
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(String::from),
    }
}

/// The signed-in user behind an access token or an authz token of the calling service.
pub fn user_id<T>(request: &Request<T>) -> Result<Option<UserId>, Error> {
    let principal = principal(request)?;
    let sub = match (&principal.user, &principal.authz) {
        (Some(user), _) => &user.sub,
        (None, Some(authz)) => &authz.sub,
        (None, None) => return Ok(None),
    };
    sub.parse()
        .map(Some)
        .map_err(|_| Error::Unauthenticated(INVALID_CREDENTIAL))
}

/// The workspace named in the caller's token (`wid`), if any.
pub fn token_workspace<T>(request: &Request<T>) -> Result<Option<WorkspaceId>, Error> {
    let principal = principal(request)?;
    let wid = match (&principal.user, &principal.authz) {
        (Some(user), _) => user.wid.as_deref(),
        (None, Some(authz)) => Some(authz.wid.as_str()),
        (None, None) => None,
    };
    wid.map(|w| {
        w.parse()
            .map_err(|_| Error::Unauthenticated(INVALID_CREDENTIAL))
    })
    .transpose()
}

/// The workspace of the caller's authz token, when an authz token (not an access token) is
/// the caller's user credential: such a caller acts in that workspace only.
pub fn authz_workspace<T>(request: &Request<T>) -> Result<Option<WorkspaceId>, Error> {
    let principal = principal(request)?;
    match (&principal.user, &principal.authz) {
        (None, Some(authz)) => authz
            .wid
            .parse()
            .map(Some)
            .map_err(|_| Error::Unauthenticated(INVALID_CREDENTIAL)),
        _ => Ok(None),
    }
}

/// The caller of a domain operation: user (if any), service by key (if any), platform-admin
/// standing (resolved once by the layer), audit actor.
pub fn caller<T>(request: &Request<T>) -> Result<crate::model::Caller, Error> {
    let principal = principal(request)?;
    Ok(crate::model::Caller {
        user: user_id(request)?,
        token_workspace: token_workspace(request)?,
        authz_workspace: authz_workspace(request)?,
        service: principal
            .service
            .as_ref()
            .filter(|_| !principal.via_origin)
            .map(|s| s.service_name.clone()),
        platform_admin: principal.is_admin,
        actor: actor(request),
    })
}
