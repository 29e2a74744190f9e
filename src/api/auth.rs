//! `sentinel.v1.AuthService`.

use std::pin::Pin;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use futures::Stream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::convert::{self, optional_uuid, timestamp, token_pair, uuid};
use super::credentials;
use crate::app::AppState;
use crate::error::Error;
use crate::proto::v1 as pb;
use crate::proto::v1::auth_service_server::AuthService;
use crate::store::{RevocationRow, RevokeScope};
use crate::tokens::jwt::MAX_TOKEN_BYTES;
use crate::tokens::keys::RetireOutcome;
use crate::tokens::keys::SigningAlgorithm;

/// Handlers of `sentinel.v1.AuthService`.
pub struct AuthApi {
    state: AppState,
}

impl AuthApi {
    /// Handlers over the shared application state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// The session cursor `created_at|id` as an opaque page token.
    fn page_token(at: DateTime<Utc>, id: Uuid) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{id}", at.to_rfc3339()))
    }

    fn parse_page_token(token: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, Error> {
        if token.is_empty() {
            return Ok(None);
        }
        let bad = || Error::invalid("page_token", "is not a token from a previous page");
        let text = URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(bad)?;
        let (at, id) = text.split_once('|').ok_or_else(bad)?;
        let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?;
        let id = Uuid::parse_str(id).map_err(|_| bad())?;
        Ok(Some((at.with_timezone(&Utc), id)))
    }

    /// Whether the caller may act on `user_id`'s sessions: themself, or a platform admin.
    async fn may_manage(&self, caller: &str, user_id: Uuid) -> Result<(), Error> {
        if caller == user_id.to_string() {
            return Ok(());
        }
        let caller = Uuid::parse_str(caller).map_err(|_| Error::Internal)?;
        let is_admin = self
            .state
            .store
            .user_by_id(caller)
            .await?
            .is_some_and(|u| u.is_admin && u.is_active);
        if is_admin {
            Ok(())
        } else {
            Err(Error::PermissionDenied(
                "only platform admins may manage other users' sessions".into(),
            ))
        }
    }
}

fn revocation(row: &RevocationRow) -> pb::Revocation {
    pb::Revocation {
        session_id: row.session_id.map(|s| s.to_string()).unwrap_or_default(),
        jti: row.jti.clone().unwrap_or_default(),
        // The nil user marks a revocation of every user's tokens of a workspace.
        user_id: if row.user_id.is_nil() {
            String::new()
        } else {
            row.user_id.to_string()
        },
        revoked_at: Some(timestamp(row.revoked_at)),
        reason: convert::revocation_reason(&row.reason) as i32,
        revision: row.revision,
        expires_at: Some(timestamp(row.expires_at)),
        workspace_id: row.workspace_id.map(|w| w.to_string()).unwrap_or_default(),
    }
}

type RevocationStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchRevocationsResponse, Status>> + Send>>;

/// How often an idle revocation watch sends a heartbeat.
const WATCH_HEARTBEAT: Duration = Duration::from_secs(15);

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
        let actor = credentials::actor(&request);
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
                client_address: actor.client_address.as_deref(),
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
                    .audit_failure(&r.provider, &err, &actor)
                    .await;
                Err(Error::from(err).into())
            }
        }
    }

    async fn exchange_code(
        &self,
        request: Request<pb::ExchangeCodeRequest>,
    ) -> Result<Response<pb::ExchangeCodeResponse>, Status> {
        let actor = credentials::actor(&request);
        let user_agent = credentials::header(&request, "user-agent");
        let r = request.into_inner();
        if r.code.is_empty() {
            return Err(Error::invalid("code", "is required").into());
        }
        if r.code_verifier.is_empty() {
            return Err(Error::invalid("code_verifier", "is required").into());
        }
        let workspace = optional_uuid("workspace_id", &r.workspace_id)?;
        let exchanged = self
            .state
            .login
            .exchange(
                &r.code,
                &r.code_verifier,
                workspace,
                &user_agent,
                actor.client_address.as_deref().unwrap_or_default(),
            )
            .await;
        let (issued, user) = match exchanged {
            Ok(done) => done,
            Err(err) => {
                let status = Status::from(err);
                let mut event = crate::audit::event(
                    "login.code_refused",
                    &actor,
                    "login_code",
                    "-",
                    serde_json::json!({ "status": format!("{:?}", status.code()) }),
                );
                event.outcome = "failure".into();
                if let Err(e) = self.state.store.insert_audit(&event).await {
                    tracing::warn!(error = %e, "refused code exchange not audited");
                }
                return Err(status);
            }
        };
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
                Some(user),
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
        let actor = credentials::actor(&request);
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
            .resolve(&r.provider, &r.idp_token, &actor)
            .await
        {
            Ok(resolved) => resolved,
            Err(err) => {
                self.state
                    .login
                    .audit_failure(&r.provider, &err, &actor)
                    .await;
                return Err(Error::from(err).into());
            }
        };
        let user = resolved.user;
        let Some(workspace) = workspace else {
            let views = self
                .state
                .workspaces
                .list(Some(user.id), None, None, 500)
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
        let (role, workspace_row, groups) = self
            .state
            .store
            .workspace_scope(workspace, user.id)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| Error::PermissionDenied("not a member of the workspace".into()))?;
        let actions = self
            .state
            .store
            .user_actions(workspace, &service.service_name, user.id, None, 10_000)
            .await
            .map_err(Error::from)?;
        let scope = crate::tokens::service::WorkspaceScope {
            workspace: workspace_row.clone(),
            role: role.clone(),
            groups,
        };
        let (token, expires) = self.state.tokens.issue_authz(
            &user,
            &resolved.idp_sub,
            &service.service_name,
            &scope,
            actions.clone(),
        )?;
        Ok(Response::new(pb::ResolveIdpTokenResponse {
            resolution: Some(pb::resolve_idp_token_response::Resolution::AuthzToken(
                pb::AuthzToken {
                    token,
                    token_type: "Bearer".into(),
                    expires_at: Some(timestamp(expires)),
                    service_name: service.service_name.clone(),
                    workspace: Some(pb::WorkspaceAccess {
                        workspace: Some(convert::workspace(&workspace_row)),
                        role: convert::role(&role) as i32,
                        joined_at: None,
                    }),
                    actions,
                    user: Some(convert::user(&user)),
                },
            )),
        }))
    }
    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::RefreshResponse>, Status> {
        let client = request.remote_addr().map(|a| a.ip().to_string());
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
        let request = request.into_inner();
        let user_id = match optional_uuid("user_id", &request.user_id)? {
            Some(id) => id,
            None => uuid("sub", &claims.sub)?,
        };
        self.may_manage(&claims.sub, user_id).await?;
        let limit = convert::page_size(request.page_size)?;
        let before = Self::parse_page_token(&request.page_token)?;
        let mut rows = self
            .state
            .store
            .list_sessions(
                user_id,
                request.include_inactive,
                Utc::now(),
                before,
                limit + 1,
            )
            .await
            .map_err(Error::from)?;
        let next_page_token = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last()
                .map(|r| Self::page_token(r.created_at, r.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
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
        let id = uuid("id", &request.get_ref().id)?;
        let not_found = || Error::NotFound("session".into());
        let session = self
            .state
            .store
            .session_by_id(id)
            .await
            .map_err(Error::from)?
            .ok_or_else(not_found)?;
        // Another user's session is reported as missing, not forbidden, to non-admins.
        self.may_manage(&claims.sub, session.user_id)
            .await
            .map_err(|_| not_found())?;
        let reason = if claims.sub == session.user_id.to_string() {
            "logout"
        } else {
            "admin"
        };
        let audit = crate::audit::event(
            "session.revoked",
            &credentials::actor(&request),
            "session",
            id,
            serde_json::json!({ "user_id": session.user_id }),
        );
        self.state
            .tokens
            .revoke(RevokeScope::Session(id), reason, Some(&audit))
            .await?;
        let session = self
            .state
            .store
            .session_by_id(id)
            .await
            .map_err(Error::from)?
            .ok_or_else(not_found)?;
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
                wrole: convert::role(&authz.wrole) as i32,
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
                .as_deref()
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
        if since < 0 {
            return Err(Error::invalid("since_revision", "must not be negative").into());
        }
        let (low, high) = self
            .state
            .store
            .revocation_bounds()
            .await
            .map_err(Error::from)?;
        // A cursor from the future (another cluster, a restored database) or from before the
        // retained log: start over with a full replay and say so.
        let reset = since > high || (since > 0 && since < low - 1);
        let slot = self.state.streams.acquire(app.id)?;
        let watch = RevocationWatch {
            _slot: slot,
            // Subscribed before the replay reads the database, so nothing falls in between.
            feed: self.state.tokens.revocations().subscribe(),
            store: self.state.store.clone(),
            apps: self.state.apps.clone(),
            key,
            cursor: if reset { 0 } else { since },
            reset,
            replaying: true,
            announced: false,
            last_sent: tokio::time::Instant::now(),
            last_key_check: tokio::time::Instant::now(),
            done: false,
        };
        Ok(Response::new(Box::pin(revocation_stream(watch))))
    }

    async fn retire_signing_key(
        &self,
        request: Request<pb::RetireSigningKeyRequest>,
    ) -> Result<Response<pb::RetireSigningKeyResponse>, Status> {
        credentials::admin(&request)?;
        let actor = credentials::actor(&request);
        let kid = request.into_inner().kid;
        if kid.is_empty() || kid.len() > 128 {
            return Err(Error::invalid("kid", "is required (at most 128 characters)").into());
        }
        let outcome = self
            .state
            .retire_signing_key(&actor, &kid)
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
            retired_at: Some(timestamp(Utc::now())),
        }))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSigningKeyResponse>, Status> {
        let claims = credentials::admin(&request)?;
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
            .rotate_signing_key(algorithm, delay, overlap)
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "key rotation failed");
                Error::Internal
            })?;
        let audit = crate::store::AuditRow {
            id: Uuid::new_v4(),
            occurred_at: Utc::now(),
            action: "signing_key.rotated".into(),
            actor_user_id: Uuid::parse_str(&claims.sub).ok(),
            target_type: Some("signing_key".into()),
            target_id: Some(key.kid.clone()),
            outcome: "success".into(),
            details: serde_json::json!({
                "overlap_seconds": overlap.as_secs(),
                "algorithm": algorithm.as_str(),
                "activate_at": activate_at.to_rfc3339(),
            })
            .to_string(),
            ..crate::store::AuditRow::default()
        };
        if let Err(err) = self.state.store.insert_audit(&audit).await {
            tracing::warn!(error = %err, "audit of key rotation failed");
        }
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

/// State of one WatchRevocations stream.
struct RevocationWatch {
    store: std::sync::Arc<dyn crate::store::Store>,
    apps: std::sync::Arc<crate::apps::ServiceApps>,
    /// Live entries from the replica's revocation follower.
    feed: tokio::sync::broadcast::Receiver<std::sync::Arc<[RevocationRow]>>,
    key: String,
    cursor: i64,
    reset: bool,
    /// Reading the database from `cursor` (the initial replay, or after falling behind).
    replaying: bool,
    /// Whether the end of the initial replay was announced (`caught_up`).
    announced: bool,
    last_sent: tokio::time::Instant,
    last_key_check: tokio::time::Instant,
    done: bool,
    /// Held while the stream is open (the per-key stream cap).
    _slot: super::streams::StreamSlot,
}

/// How often a live stream re-checks its service key (deactivation ends the stream).
const WATCH_KEY_CHECK: Duration = Duration::from_secs(1);

/// Replays the log after the cursor (skipping entries that can no longer matter), marks the end
/// of the replay with `caught_up`, then follows the log live with heartbeats. Ends with
/// UNAUTHENTICATED once the caller's key stops being valid.
fn revocation_stream(
    watch: RevocationWatch,
) -> impl Stream<Item = Result<pb::WatchRevocationsResponse, Status>> + Send {
    futures::stream::unfold(watch, |mut w| async move {
        if w.done {
            return None;
        }
        loop {
            if w.last_key_check.elapsed() >= WATCH_KEY_CHECK {
                w.last_key_check = tokio::time::Instant::now();
                if let Err(err) = w.apps.authenticate(&w.key).await {
                    w.done = true;
                    return Some((Err(Status::from(err)), w));
                }
            }
            let rows: Vec<RevocationRow> = if w.replaying {
                // The database, only to catch up: the replay, or after falling behind the feed.
                match w.store.revocations_since(w.cursor, 500).await {
                    Ok(rows) => {
                        w.replaying = rows.len() == 500;
                        rows
                    }
                    Err(err) => {
                        w.done = true;
                        return Some((Err(Status::from(Error::from(err))), w));
                    }
                }
            } else {
                match tokio::time::timeout(WATCH_KEY_CHECK, w.feed.recv()).await {
                    Ok(Ok(batch)) => batch
                        .iter()
                        .filter(|r| r.revision > w.cursor)
                        .cloned()
                        .collect(),
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                        w.replaying = true;
                        continue;
                    }
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return None,
                    Err(_) => Vec::new(),
                }
            };
            let now = Utc::now();
            let end_of_replay = !w.announced && !w.replaying;
            if let Some(last) = rows.last() {
                w.cursor = last.revision;
            }
            let live: Vec<pb::Revocation> = rows
                .iter()
                .filter(|r| r.expires_at > now)
                .map(revocation)
                .collect();
            if !live.is_empty() || end_of_replay || w.last_sent.elapsed() >= WATCH_HEARTBEAT {
                let message = pb::WatchRevocationsResponse {
                    revocations: live,
                    revision: w.cursor,
                    caught_up: end_of_replay,
                    reset: std::mem::take(&mut w.reset),
                };
                w.announced |= end_of_replay;
                w.last_sent = tokio::time::Instant::now();
                return Some((Ok(message), w));
            }
        }
    })
}
