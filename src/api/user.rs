//! `sentinel.v1.UserService`: the caller's profile, and user administration for platform
//! admins (over [`crate::users::Users`]).

use tonic::{Request, Response, Status};

use super::convert::{self, uuid};
use crate::credentials;
use crate::error::Error;
use crate::proto::v1 as pb;
use crate::proto::v1::user_service_server::UserService;
use crate::services::Services;

/// Handlers of `sentinel.v1.UserService`.
pub struct UserApi {
    state: Services,
}

impl UserApi {
    /// Handlers over the shared application state.
    pub fn new(state: Services) -> Self {
        Self { state }
    }
}

/// Checks an avatar URL: empty (none), or an absolute https URL of at most 2048 characters
/// (an http avatar would be fetched in the clear by every page that shows it).
fn validate_avatar(url: &str) -> Result<&str, Error> {
    let rest = url.strip_prefix("https://");
    let ok = url.is_empty()
        || (url.len() <= 2048
            && rest.is_some_and(|r| {
                !r.is_empty() && !r.chars().any(|c| c.is_whitespace() || c.is_control())
            }));
    if ok {
        Ok(url)
    } else {
        Err(Error::invalid("avatar_url", "must be an https URL"))
    }
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn get_me(
        &self,
        request: Request<pb::GetMeRequest>,
    ) -> Result<Response<pb::GetMeResponse>, Status> {
        let claims = credentials::user(&request)?;
        let id = uuid("sub", &claims.sub)?;
        let profile = self.state.users.profile(id).await?;
        Ok(Response::new(pb::GetMeResponse {
            user: Some(convert::user(&profile.user)),
            identities: profile.identities.iter().map(convert::identity).collect(),
        }))
    }

    async fn update_me(
        &self,
        request: Request<pb::UpdateMeRequest>,
    ) -> Result<Response<pb::UpdateMeResponse>, Status> {
        let claims = credentials::user(&request)?;
        let caller = credentials::caller(&request)?;
        let id = uuid("sub", &claims.sub)?;
        let r = request.into_inner();
        let name = r
            .name
            .as_deref()
            .map(crate::model::DisplayName::parse)
            .transpose()
            .map_err(Error::from)?
            .map(crate::model::DisplayName::into_string);
        let avatar = r.avatar_url.as_deref().map(validate_avatar).transpose()?;
        let user = self
            .state
            .users
            .update_profile(&caller, id, name.as_deref(), avatar)
            .await?;
        Ok(Response::new(pb::UpdateMeResponse {
            user: Some(convert::user(&user)),
        }))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        credentials::admin(&request)?;
        let r = request.into_inner();
        let limit = convert::page_size(r.page_size)?;
        let after: Option<String> = convert::token_cursor(&r.page_token)?;
        let query = Some(r.query.trim()).filter(|q| !q.is_empty());
        if query.is_some_and(|q| q.len() > 200) {
            return Err(Error::invalid("query", "at most 200 characters").into());
        }
        let rows = self
            .state
            .users
            .list(query, r.is_active, r.is_admin, after.as_deref(), limit + 1)
            .await?;
        let (rows, next_page_token) = convert::page(rows, limit, |u| u.email.clone());
        Ok(Response::new(pb::ListUsersResponse {
            users: rows.iter().map(convert::user).collect(),
            next_page_token,
            total_size: 0,
        }))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        credentials::admin(&request)?;
        let id = uuid("id", &request.get_ref().id)?;
        let profile = self.state.users.profile(id).await?;
        Ok(Response::new(pb::GetUserResponse {
            user: Some(convert::user(&profile.user)),
            identities: profile.identities.iter().map(convert::identity).collect(),
        }))
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        credentials::admin(&request)?;
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let id = uuid("id", &r.id)?;
        let name = r
            .name
            .as_deref()
            .map(crate::model::DisplayName::parse)
            .transpose()
            .map_err(Error::from)?
            .map(crate::model::DisplayName::into_string);
        let (user, revoked) = self
            .state
            .users
            .update(&caller, id, name.as_deref(), r.is_active, r.is_admin)
            .await?;
        Ok(Response::new(pb::UpdateUserResponse {
            user: Some(convert::user(&user)),
            revoked_session_count: i32::try_from(revoked).unwrap_or(i32::MAX),
        }))
    }

    async fn revoke_user_tokens(
        &self,
        request: Request<pb::RevokeUserTokensRequest>,
    ) -> Result<Response<pb::RevokeUserTokensResponse>, Status> {
        credentials::admin(&request)?;
        let caller = credentials::caller(&request)?;
        let id = uuid("id", &request.get_ref().id)?;
        let count = self.state.users.revoke_tokens(&caller, id).await?;
        Ok(Response::new(pb::RevokeUserTokensResponse {
            revoked_session_count: i32::try_from(count).unwrap_or(i32::MAX),
        }))
    }
}
