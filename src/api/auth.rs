//! `sentinel.v1.AuthService`.

use tonic::{Request, Response, Status};

use crate::app::AppState;
use crate::proto::v1::auth_service_server::AuthService;
use crate::proto::v1::{GetJwksRequest, GetJwksResponse, Jwk};

/// Handlers of `sentinel.v1.AuthService`.
pub struct AuthApi {
    state: AppState,
}

impl AuthApi {
    /// Handlers over the shared application state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn get_jwks(
        &self,
        _request: Request<GetJwksRequest>,
    ) -> Result<Response<GetJwksResponse>, Status> {
        let keys = self
            .state
            .keys
            .jwks()
            .keys
            .into_iter()
            .map(|k| Jwk {
                kty: k.kty,
                kid: k.kid,
                r#use: k.use_,
                alg: k.alg,
                n: k.n,
                e: k.e,
                ..Jwk::default()
            })
            .collect();
        Ok(Response::new(GetJwksResponse { keys }))
    }
}
