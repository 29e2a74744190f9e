//! Reading credentials from gRPC metadata: `authorization: Bearer <jwt>` and `x-service-key`.

use std::sync::Arc;

use tonic::metadata::MetadataMap;

use crate::app::AppState;
use crate::error::Error;
use crate::store::ServiceAppRow;
use crate::tokens::jwt::AccessClaims;
use crate::tokens::service::INVALID_CREDENTIAL;

/// The bearer token, if the `authorization` header carries one.
pub fn bearer(metadata: &MetadataMap) -> Option<&str> {
    let value = metadata.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The verified, unrevoked access token of the caller (user tier).
pub async fn user(state: &AppState, metadata: &MetadataMap) -> Result<Arc<AccessClaims>, Error> {
    let token = bearer(metadata).ok_or(Error::Unauthenticated(INVALID_CREDENTIAL))?;
    state.tokens.authenticate(token).await
}

/// The calling service app (service tier).
pub async fn service(
    state: &AppState,
    metadata: &MetadataMap,
) -> Result<Arc<ServiceAppRow>, Error> {
    let key = metadata
        .get("x-service-key")
        .and_then(|v| v.to_str().ok())
        .ok_or(Error::Unauthenticated(crate::apps::INVALID_KEY))?;
    state.apps.authenticate(key).await
}

/// The caller's access token, when it belongs to an active platform admin (admin tier).
pub async fn admin(state: &AppState, metadata: &MetadataMap) -> Result<Arc<AccessClaims>, Error> {
    let claims = user(state, metadata).await?;
    let id = uuid::Uuid::parse_str(&claims.sub).map_err(|_| Error::Internal)?;
    let is_admin = state
        .store
        .user_by_id(id)
        .await?
        .is_some_and(|u| u.is_admin && u.is_active);
    if is_admin {
        Ok(claims)
    } else {
        Err(Error::PermissionDenied("platform admin required".into()))
    }
}
