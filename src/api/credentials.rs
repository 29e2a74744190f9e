//! What handlers know of the caller: the [`Principal`] the credential layer established (see
//! `principal.rs`). The tier was already enforced there; these helpers give handlers the parts
//! they need with the right error when a part is absent.

use std::sync::Arc;

use tonic::Request;

use super::principal::Principal;
use crate::error::Error;
use crate::store::ServiceAppRow;
use crate::tokens::jwt::AccessClaims;
use crate::tokens::service::INVALID_CREDENTIAL;

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
