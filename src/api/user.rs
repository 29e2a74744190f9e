//! `sentinel.v1.UserService`. Profile and user administration arrive with the tenancy
//! capability; token revocation is here already.

use chrono::Utc;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::convert::uuid;
use super::credentials;
use crate::app::AppState;
use crate::error::Error;
use crate::proto::v1 as pb;
use crate::proto::v1::user_service_server::UserService;
use crate::store::{AuditRow, RevokeScope};

/// Handlers of `sentinel.v1.UserService`.
pub struct UserApi {
    state: AppState,
}

impl UserApi {
    /// Handlers over the shared application state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn revoke_user_tokens(
        &self,
        request: Request<pb::RevokeUserTokensRequest>,
    ) -> Result<Response<pb::RevokeUserTokensResponse>, Status> {
        let admin = credentials::admin(&request)?;
        let id = uuid("id", &request.get_ref().id)?;
        if self
            .state
            .store
            .user_by_id(id)
            .await
            .map_err(Error::from)?
            .is_none()
        {
            return Err(Error::NotFound("user".into()).into());
        }
        let audit = AuditRow {
            id: Uuid::new_v4(),
            occurred_at: Utc::now(),
            action: "user.tokens_revoked".into(),
            actor_user_id: Uuid::parse_str(&admin.sub).ok(),
            target_type: Some("user".into()),
            target_id: Some(id.to_string()),
            client_address: request.remote_addr().map(|a| a.ip().to_string()),
            outcome: "success".into(),
            details: "{}".into(),
            ..AuditRow::default()
        };
        let rows = self
            .state
            .tokens
            .revoke(RevokeScope::User(id), "admin", Some(&audit))
            .await?;
        let count = rows.iter().filter(|r| r.session_id.is_some()).count();
        Ok(Response::new(pb::RevokeUserTokensResponse {
            revoked_session_count: i32::try_from(count).unwrap_or(i32::MAX),
        }))
    }
}
