//! `sentinel.v1.AuthService`.

use std::pin::Pin;
use std::time::Duration;

use chrono::DateTime;
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::convert::{self, optional_uuid, timestamp, token_pair, uuid};
use crate::credentials;
use crate::error::Error;
use crate::model::{Caller, RevokeScope};
use crate::proto::v1 as pb;
use crate::proto::v1::auth_service_server::AuthService;
use crate::services::Services;
use crate::streams::StillAllowed;
use crate::tenancy::Listing;
use crate::tokens::jwt::MAX_TOKEN_BYTES;
use crate::tokens::keys::RetireOutcome;
use crate::tokens::keys::SigningAlgorithm;

/// Handlers of `sentinel.v1.AuthService`.
pub struct AuthApi {
    state: Services,
}

impl AuthApi {
    /// Handlers over the shared application state.
    pub fn new(state: Services) -> Self {
        Self { state }
    }
}

type RevocationStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchRevocationsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AuthService for AuthApi {
    type WatchRevocationsStream = RevocationStream;

    async fn list_providers(
        &self,
        request: Request<pb::ListProvidersRequest>,
    ) -> Result<Response<pb::ListProvidersResponse>, Status> {
        convert::page_size(request.get_ref().page_size)?;
        let providers = self
            .state
            .login
            .providers()
            .map(|p| pb::Provider {
                id: p.id.clone(),
                display_name: p.display_name.clone(),
                kind: if p.is_github {
                    pb::ProviderKind::Github
                } else {
                    pb::ProviderKind::Oidc
                } as i32,
                icon_url: String::new(),
            })
            .collect();
        Ok(Response::new(pb::ListProvidersResponse {
            providers,
            next_page_token: String::new(),
        }))
    }

    async fn start_login(
        &self,
        request: Request<pb::StartLoginRequest>,
    ) -> Result<Response<pb::StartLoginResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let started = self
            .state
            .login
            .start(&crate::login::StartRequest {
                provider: &r.provider,
                redirect_uri: &r.redirect_uri,
                code_challenge: &r.code_challenge,
                method: &r.code_challenge_method,
                client_state: &r.state,
                login_hint: &r.login_hint,
                client_address: caller.actor.client_address.as_deref(),
            })
            .await;
        match started {
            Ok((authorization_url, expires)) => Ok(Response::new(pb::StartLoginResponse {
                authorization_url,
                expires_at: Some(timestamp(expires)),
            })),
            Err(err) => {
                self.state
                    .login
                    .audit_failure(&r.provider, &err, &caller)
                    .await;
                Err(Error::from(err).into())
            }
        }
    }

    async fn exchange_code(
        &self,
        request: Request<pb::ExchangeCodeRequest>,
    ) -> Result<Response<pb::ExchangeCodeResponse>, Status> {
        let caller = credentials::caller(&request)?;
        let user_agent = credentials::header(&request, "user-agent");
        let r = request.into_inner();
        if r.code.is_empty() {
            return Err(Error::invalid("code", "is required").into());
        }
        if r.code_verifier.is_empty() {
            return Err(Error::invalid("code_verifier", "is required").into());
        }
        let workspace = optional_uuid("workspace_id", &r.workspace_id)?;
        let (issued, user) = self
            .state
            .login
            .exchange(&r.code, &r.code_verifier, workspace, &user_agent, &caller)
            .await?;
        Ok(Response::new(pb::ExchangeCodeResponse {
            tokens: Some(token_pair(&issued)),
            user: Some(convert::user(&user)),
        }))
    }

    async fn list_my_workspaces(
        &self,
        request: Request<pb::ListMyWorkspacesRequest>,
    ) -> Result<Response<pb::ListMyWorkspacesResponse>, Status> {
        // Public tier: the credential is either a bearer token or the one-time code.
        let bearer = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::to_string);
        let actor = credentials::actor(&request);
        let r = request.into_inner();
        let user = match bearer {
            Some(token) => uuid("sub", &self.state.tokens.authenticate(&token).await?.sub)?,
            None if !r.code.is_empty() => {
                self.state
                    .login
                    .code_user(&r.code, &r.code_verifier)
                    .await?
                    .id
            }
            None => {
                return Err(Error::invalid(
                    "code",
                    "a login code (with its code_verifier) or an access token is required",
                )
                .into());
            }
        };
        let limit = convert::page_size(r.page_size)?;
        let views = self
            .state
            .workspaces
            .list(
                &Caller::identified(user, actor),
                Listing::Mine,
                None,
                convert::token_cursor(&r.page_token)?,
                limit + 1,
            )
            .await?;
        let (views, next_page_token) =
            convert::page(views, limit, |v| (v.workspace.name.clone(), v.workspace.id));
        Ok(Response::new(pb::ListMyWorkspacesResponse {
            workspaces: views.iter().map(super::workspace::access).collect(),
            next_page_token,
        }))
    }

    async fn resolve_idp_token(
        &self,
        request: Request<pb::ResolveIdpTokenRequest>,
    ) -> Result<Response<pb::ResolveIdpTokenResponse>, Status> {
        let service = credentials::service(&request)?;
        let via_origin = credentials::principal(&request)?.via_origin;
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let workspace = optional_uuid("workspace_id", &r.workspace_id)?;
        if via_origin && workspace.is_some() {
            // An origin header is no secret: minting a credential needs the service's key.
            return Err(Error::PermissionDenied(
                "workspace_id: an authz token is issued only to a caller with the service key; \
                 a browser may resolve the identity and its workspaces"
                    .into(),
            )
            .into());
        }
        let resolved = match self
            .state
            .login
            .resolve(&r.provider, &r.idp_token, &caller)
            .await
        {
            Ok(resolved) => resolved,
            Err(err) => {
                self.state
                    .login
                    .audit_failure(&r.provider, &err, &caller)
                    .await;
                return Err(Error::from(err).into());
            }
        };
        let user = resolved.user.clone();
        let Some(workspace) = workspace else {
            let views = self
                .state
                .workspaces
                .list(
                    &Caller::identified(user.id, caller.actor.clone()),
                    Listing::Mine,
                    None,
                    None,
                    500,
                )
                .await?;
            return Ok(Response::new(pb::ResolveIdpTokenResponse {
                resolution: Some(pb::resolve_idp_token_response::Resolution::Identity(
                    pb::ResolvedIdentity {
                        user: Some(convert::user(&user)),
                        workspaces: views.iter().map(super::workspace::access).collect(),
                    },
                )),
            }));
        };
        let minted = self
            .state
            .login
            .authz_token(&resolved, &service.service_name, workspace)
            .await?;
        Ok(Response::new(pb::ResolveIdpTokenResponse {
            resolution: Some(pb::resolve_idp_token_response::Resolution::AuthzToken(
                pb::AuthzToken {
                    token: minted.token,
                    token_type: "Bearer".into(),
                    expires_at: Some(timestamp(minted.expires_at)),
                    service_name: service.service_name.clone(),
                    workspace: Some(pb::WorkspaceAccess {
                        workspace: Some(convert::workspace(&minted.workspace)),
                        role: convert::role(minted.role) as i32,
                        joined_at: None,
                    }),
                    actions: minted.actions,
                    user: Some(convert::user(&user)),
                },
            )),
        }))
    }
    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::RefreshResponse>, Status> {
        // The credential layer's address: the client's, behind a trusted proxy too.
        let client = credentials::actor(&request).client_address;
        let request = request.into_inner();
        if request.refresh_token.is_empty() {
            return Err(Error::invalid("refresh_token", "is required").into());
        }
        let workspace_id = optional_uuid("workspace_id", &request.workspace_id)?;
        let issued = self
            .state
            .tokens
            .refresh(&request.refresh_token, workspace_id, client)
            .await?;
        Ok(Response::new(pb::RefreshResponse {
            tokens: Some(token_pair(&issued)),
        }))
    }

    async fn switch_workspace(
        &self,
        request: Request<pb::SwitchWorkspaceRequest>,
    ) -> Result<Response<pb::SwitchWorkspaceResponse>, Status> {
        let claims = credentials::user(&request)?;
        let workspace_id = uuid("workspace_id", &request.get_ref().workspace_id)?;
        let issued = self
            .state
            .tokens
            .switch_workspace(&claims, workspace_id)
            .await?;
        Ok(Response::new(pb::SwitchWorkspaceResponse {
            tokens: Some(token_pair(&issued)),
        }))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let claims = credentials::user(&request)?;
        let all = request.get_ref().all_sessions;
        let (scope, target_type, target) = if all {
            (
                RevokeScope::User(uuid("sub", &claims.sub)?),
                "user",
                &claims.sub,
            )
        } else {
            (
                RevokeScope::Session(uuid("sid", &claims.sid)?),
                "session",
                &claims.sid,
            )
        };
        let audit = crate::audit::event(
            "session.logout",
            &credentials::actor(&request),
            target_type,
            target,
            serde_json::json!({ "all_sessions": all }),
        );
        let rows = self
            .state
            .tokens
            .revoke(scope, "logout", Some(&audit))
            .await?;
        let count = rows.iter().filter(|r| r.session_id.is_some()).count();
        Ok(Response::new(pb::LogoutResponse {
            revoked_session_count: i32::try_from(count).unwrap_or(i32::MAX),
        }))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let claims = credentials::user(&request)?;
        let caller = credentials::caller(&request)?;
        let request = request.into_inner();
        let user_id = match optional_uuid("user_id", &request.user_id)? {
            Some(id) => id,
            None => uuid("sub", &claims.sub)?,
        };
        let limit = convert::page_size(request.page_size)?;
        let before = convert::token_cursor(&request.page_token)?;
        let rows = self
            .state
            .users
            .sessions(
                &caller,
                user_id,
                request.include_inactive,
                before,
                limit + 1,
            )
            .await?;
        let (rows, next_page_token) = convert::page(rows, limit, |r| (r.created_at, r.id));
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: rows
                .iter()
                .map(|r| convert::session(r, &claims.sid))
                .collect(),
            next_page_token,
        }))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::RevokeSessionResponse>, Status> {
        let claims = credentials::user(&request)?;
        let caller = credentials::caller(&request)?;
        let id = uuid("id", &request.get_ref().id)?;
        let session = self.state.users.revoke_session(&caller, id).await?;
        Ok(Response::new(pb::RevokeSessionResponse {
            session: Some(convert::session(&session, &claims.sid)),
        }))
    }

    async fn introspect(
        &self,
        request: Request<pb::IntrospectRequest>,
    ) -> Result<Response<pb::IntrospectResponse>, Status> {
        let app = credentials::service(&request)?;
        let token = &request.get_ref().token;
        if token.is_empty() {
            return Err(Error::invalid("token", "is required").into());
        }
        if token.len() > 2 * MAX_TOKEN_BYTES {
            return Err(Error::invalid("token", "is longer than 16 KiB").into());
        }
        let at = |secs: i64| DateTime::from_timestamp(secs, 0).map(timestamp);
        // RFC 7662: an inactive token says nothing more, whatever the reason.
        let Ok(claims) = self.state.tokens.authenticate(token).await else {
            // An authz token is active only for the service it was issued to.
            let Ok(authz) = self
                .state
                .tokens
                .authenticate_authz(token, &app.service_name)
            else {
                return Ok(Response::new(pb::IntrospectResponse::default()));
            };
            return Ok(Response::new(pb::IntrospectResponse {
                active: true,
                typ: authz.typ,
                iss: authz.iss,
                sub: authz.sub,
                aud: authz.aud,
                exp: at(authz.exp),
                iat: at(authz.iat),
                nbf: at(authz.nbf),
                jti: authz.jti,
                wid: authz.wid,
                wslug: authz.wslug,
                wrole: convert::role(authz.wrole) as i32,
                svc: authz.svc,
                idp_sub: authz.idp_sub,
                actions: authz.actions,
                actions_truncated: authz.actions_truncated,
                ..pb::IntrospectResponse::default()
            }));
        };
        Ok(Response::new(pb::IntrospectResponse {
            active: true,
            typ: claims.typ.clone(),
            iss: claims.iss.clone(),
            sub: claims.sub.clone(),
            aud: claims.aud.clone(),
            exp: at(claims.exp),
            iat: at(claims.iat),
            nbf: at(claims.nbf),
            jti: claims.jti.clone(),
            sid: claims.sid.clone(),
            email: claims.email.clone(),
            name: claims.name.clone(),
            wid: claims.wid.clone().unwrap_or_default(),
            wslug: claims.wslug.clone().unwrap_or_default(),
            wrole: claims
                .wrole
                .map_or(pb::WorkspaceRole::Unspecified, convert::role) as i32,
            groups: claims.groups.clone(),
            groups_truncated: claims.groups_truncated,
            auth_time: at(claims.auth_time),
            amr: claims.amr.clone(),
            ..pb::IntrospectResponse::default()
        }))
    }

    async fn watch_revocations(
        &self,
        request: Request<pb::WatchRevocationsRequest>,
    ) -> Result<Response<RevocationStream>, Status> {
        let app = credentials::service(&request)?;
        let key = credentials::header(&request, "x-service-key");
        let since = request.get_ref().since_revision;
        // The stream ends within a second of its key being rotated out, deactivated or deleted.
        let apps = self.state.apps.clone();
        let still_allowed: StillAllowed = Box::new(move || {
            let (apps, key) = (apps.clone(), key.clone());
            Box::pin(async move { apps.authenticate(&key).await.map(|_| ()) })
        });
        let batches = self
            .state
            .tokens
            .watch_revocations(since, still_allowed)
            .await?;
        let slot = self.state.streams.acquire(app.id)?;
        let stream = batches.map(move |batch| {
            let _open = &slot; // the slot is held as long as the stream is
            batch
                .map(|b| pb::WatchRevocationsResponse {
                    revocations: b.revocations.iter().map(convert::revocation).collect(),
                    revision: b.revision,
                    caught_up: b.caught_up,
                    reset: b.reset,
                })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn retire_signing_key(
        &self,
        request: Request<pb::RetireSigningKeyRequest>,
    ) -> Result<Response<pb::RetireSigningKeyResponse>, Status> {
        credentials::admin(&request)?;
        let caller = credentials::caller(&request)?;
        let kid = request.into_inner().kid;
        if kid.is_empty() || kid.len() > 128 {
            return Err(Error::invalid("kid", "is required (at most 128 characters)").into());
        }
        let outcome = self
            .state
            .key_rotation
            .retire(&caller, &kid)
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "key retirement failed");
                Error::Internal
            })?;
        match outcome {
            RetireOutcome::Unknown => return Err(Error::NotFound("signing key".into()).into()),
            RetireOutcome::InUse => {
                return Err(Error::FailedPrecondition(
                    "kid: the key is active or pending; rotate with immediate=true first".into(),
                )
                .into());
            }
            RetireOutcome::Retired => {}
        }
        Ok(Response::new(pb::RetireSigningKeyResponse {
            kid,
            retired_at: Some(timestamp(crate::model::now())),
        }))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSigningKeyResponse>, Status> {
        credentials::admin(&request)?;
        let caller = credentials::caller(&request)?;
        let request = request.into_inner();
        let algorithm = if request.algorithm.is_empty() {
            self.state.keys.default_algorithm()
        } else {
            SigningAlgorithm::parse(&request.algorithm)
                .ok_or_else(|| Error::invalid("algorithm", "must be RS256, ES256 or EdDSA"))?
        };
        let overlap = match request.overlap {
            None => Duration::from_secs(3600),
            Some(d) if d.seconds >= 0 && d.nanos >= 0 => {
                Duration::new(d.seconds as u64, d.nanos as u32)
            }
            Some(_) => return Err(Error::invalid("overlap", "must not be negative").into()),
        };
        self.state.tokens.validate_overlap(overlap)?;
        let delay = if request.immediate {
            Duration::ZERO
        } else {
            self.state.config.key_publish_delay
        };
        let (key, activate_at) = self
            .state
            .key_rotation
            .rotate(&caller, algorithm, delay, overlap)
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "key rotation failed");
                Error::Internal
            })?;
        let previous_keys = self
            .state
            .keys
            .retiring()
            .into_iter()
            .map(|(kid, algorithm, at)| pb::RetiringKey {
                kid,
                algorithm,
                retires_at: DateTime::from_timestamp(at, 0).map(timestamp),
            })
            .collect();
        Ok(Response::new(pb::RotateSigningKeyResponse {
            kid: key.kid,
            algorithm: algorithm.as_str().into(),
            activated_at: Some(timestamp(activate_at)),
            previous_keys,
        }))
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        let keys = self
            .state
            .keys
            .jwks()
            .keys
            .into_iter()
            .map(|k| pb::Jwk {
                kty: k.kty,
                kid: k.kid,
                r#use: k.use_,
                alg: k.alg,
                n: k.n.unwrap_or_default(),
                e: k.e.unwrap_or_default(),
                crv: k.crv.unwrap_or_default(),
                x: k.x.unwrap_or_default(),
                y: k.y.unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::GetJwksResponse { keys }))
    }
}
