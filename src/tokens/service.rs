//! Sessions and tokens: sign-in, refresh rotation with reuse detection, revocation, and the
//! bearer-token check every authenticated call goes through.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::issued::{Issued, TokenKind};
use super::jwt::{AUDIENCE, AccessClaims, AuthzClaims, Verifier};
use super::keys::KeyRing;
use super::revocation::{self, RevocationSet};
use crate::cache::Cache;
use crate::error::Error;
use crate::model::WorkspaceRole;
use crate::model::{Clock, GroupId, SessionId, UserId, WorkspaceId};
use crate::store::{
    AuditRow, Consumed, IdentityStore, RevocationRow, RevocationStore, RevokeScope, SessionRow,
    SessionStore, Store, UserRow, WorkspaceRow, WorkspaceStore,
};

/// Prefix of refresh tokens, so scanners and humans can tell them apart.
pub const REFRESH_PREFIX: &str = "rt_";
pub use super::policy::TokenPolicy;

/// The message of every refused credential: it never says why.
pub const INVALID_CREDENTIAL: &str = "invalid or expired credential";

/// The workspace a token is scoped to.
#[derive(Debug, Clone)]
pub struct WorkspaceScope {
    /// The workspace.
    pub workspace: WorkspaceRow,
    /// The user's role in it.
    pub role: WorkspaceRole,
    /// The user's groups in it.
    pub groups: Vec<GroupId>,
}

/// A freshly issued token pair.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    /// Signed access JWT.
    pub access_token: String,
    /// Opaque refresh token (shown once; stored hashed).
    pub refresh_token: String,
    /// Access-token expiry.
    pub access_expires_at: DateTime<Utc>,
    /// Its lifetime in seconds.
    pub expires_in: i64,
    /// The session.
    pub session: SessionRow,
    /// Workspace scope, if any.
    pub scope: Option<WorkspaceScope>,
    /// The user.
    pub user: UserRow,
}

/// Sign-in details recorded on a new session.
#[derive(Debug, Clone, Default)]
pub struct SignIn {
    /// Identity provider id.
    pub provider: String,
    /// Authentication methods.
    pub amr: Vec<String>,
    /// User-Agent.
    pub user_agent: String,
    /// Client address.
    pub client_address: String,
    /// The client app the user signed in through, if any.
    pub client_app_id: Option<Uuid>,
}

/// Issues, rotates, verifies and revokes tokens.
pub struct TokenService {
    sessions: Arc<dyn SessionStore>,
    workspaces: Arc<dyn WorkspaceStore>,
    users: Arc<dyn IdentityStore>,
    revocation_log: Arc<dyn RevocationStore>,
    cache: Arc<dyn Cache>,
    keys: Arc<KeyRing>,
    verifier: Arc<Verifier>,
    revocations: Arc<RevocationSet>,
    policy: TokenPolicy,
    /// What "now" is for lifetimes, the replay window and revocation horizons.
    clock: Arc<dyn Clock>,
    rng: SystemRandom,
    issued: Issued,
}

fn hash_token(token: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

impl TokenService {
    /// Wires the service; call [`TokenService::catch_up`] before serving.
    pub fn new(
        store: Arc<dyn Store>,
        cache: Arc<dyn Cache>,
        keys: Arc<KeyRing>,
        revocations: Arc<RevocationSet>,
        policy: TokenPolicy,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            verifier: keys.verifier(),
            sessions: store.clone(),
            workspaces: store.clone(),
            users: store.clone(),
            revocation_log: store,
            cache,
            keys,
            revocations,
            policy,
            clock,
            rng: SystemRandom::new(),
            issued: Issued::default(),
        }
    }

    /// Now, by the clock tokens are issued and judged by (what other domain services that weigh
    /// an expiry alongside this one read too).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Tokens issued by this process so far, by kind.
    pub fn issued(&self) -> [(TokenKind, u64); 3] {
        self.issued.counts()
    }

    /// The revocation set (shared with the follower task).
    pub fn revocations(&self) -> Arc<RevocationSet> {
        self.revocations.clone()
    }

    /// The revocation log as a stream after `since` (see [`super::watch`]).
    pub async fn watch_revocations(
        &self,
        since: i64,
        still_allowed: crate::streams::StillAllowed,
    ) -> Result<
        impl futures::Stream<Item = Result<super::watch::RevocationBatch, Error>> + Send + use<>,
        Error,
    > {
        super::watch::watch(
            self.revocation_log.clone(),
            &self.revocations,
            since,
            still_allowed,
        )
        .await
    }

    /// The policy in force.
    pub fn policy(&self) -> &TokenPolicy {
        &self.policy
    }

    fn new_refresh_token(&self) -> Result<String, Error> {
        let mut bytes = [0u8; 32];
        self.rng.fill(&mut bytes).map_err(|_| Error::Internal)?;
        Ok(format!("{REFRESH_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Loads the workspace scope of `user` in `workspace_id` (`None` when not a member).
    pub async fn scope_for(
        &self,
        user_id: UserId,
        workspace_id: WorkspaceId,
    ) -> Result<Option<WorkspaceScope>, Error> {
        Ok(self
            .workspaces
            .workspace_scope(workspace_id, user_id)
            .await?
            .map(|(role, workspace, groups)| WorkspaceScope {
                workspace,
                role,
                groups,
            }))
    }

    fn sign_access(
        &self,
        user: &UserRow,
        session: &SessionRow,
        scope: Option<&WorkspaceScope>,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), Error> {
        let ttl =
            chrono::Duration::from_std(self.policy.access_ttl).map_err(|_| Error::Internal)?;
        let expires = now + ttl;
        // A token minted in the second of a revocation that covers it would be revoked too.
        let iat =
            self.revocations
                .issue_at(user.id, scope.map(|s| s.workspace.id), now.timestamp());
        let claims = AccessClaims {
            iss: self.policy.issuer.clone(),
            sub: user.id.to_string(),
            aud: vec![AUDIENCE.to_string()],
            exp: expires.timestamp(),
            iat,
            nbf: iat,
            jti: Uuid::new_v4().to_string(),
            sid: session.id.to_string(),
            email: user.email.clone(),
            name: user.name.clone(),
            wid: scope.map(|s| s.workspace.id.to_string()),
            wslug: scope.map(|s| s.workspace.slug.clone()),
            wrole: scope.map(|s| s.role),
            groups: scope
                .map(|s| {
                    s.groups
                        .iter()
                        .take(self.policy.max_groups)
                        .map(GroupId::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            groups_truncated: scope.is_some_and(|s| s.groups.len() > self.policy.max_groups),
            auth_time: session.created_at.timestamp(),
            amr: session.amr.split_whitespace().map(String::from).collect(),
            typ: "access".into(),
        };
        let token = super::jwt::sign(&self.keys.active(), &claims).map_err(|err| {
            tracing::error!(error = %err, "signing failed");
            Error::Internal
        })?;
        self.issued.count(TokenKind::Access);
        Ok((token, expires))
    }

    /// Starts a session for `user` (scoped to `workspace_id` when given and a member).
    pub async fn start_session(
        &self,
        user: &UserRow,
        workspace_id: Option<WorkspaceId>,
        sign_in: SignIn,
    ) -> Result<IssuedTokens, Error> {
        if !user.is_active {
            return Err(Error::PermissionDenied("user is deactivated".into()));
        }
        let scope =
            match workspace_id {
                Some(id) => Some(self.scope_for(user.id, id).await?.ok_or_else(|| {
                    Error::PermissionDenied("not a member of the workspace".into())
                })?),
                None => None,
            };
        let now = self.clock.now();
        let refresh_ttl =
            chrono::Duration::from_std(self.policy.refresh_ttl).map_err(|_| Error::Internal)?;
        let session = SessionRow {
            id: SessionId::random(),
            user_id: user.id,
            workspace_id: scope.as_ref().map(|s| s.workspace.id),
            client_app_id: sign_in.client_app_id,
            provider: sign_in.provider,
            amr: sign_in.amr.join(" "),
            user_agent: sign_in.user_agent.chars().take(512).collect(),
            client_address: sign_in.client_address,
            created_at: now,
            last_used_at: now,
            expires_at: now + refresh_ttl,
            revoked_at: None,
            revoked_reason: None,
        };
        let refresh_token = self.new_refresh_token()?;
        self.sessions
            .create_session(&session, &hash_token(&refresh_token))
            .await?;
        self.issued.count(TokenKind::Refresh);
        let (access_token, access_expires_at) =
            self.sign_access(user, &session, scope.as_ref(), now)?;
        Ok(IssuedTokens {
            access_token,
            refresh_token,
            access_expires_at,
            expires_in: self.policy.access_ttl.as_secs() as i64,
            session,
            scope,
            user: user.clone(),
        })
    }

    /// Rotates a refresh token. Replays within the grace succeed; later replays revoke the
    /// whole family and its live access tokens and are audited as `token.reuse_detected`.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        workspace_id: Option<WorkspaceId>,
        client_address: Option<String>,
    ) -> Result<IssuedTokens, Error> {
        if !refresh_token.starts_with(REFRESH_PREFIX) || refresh_token.len() > 128 {
            return Err(Error::Unauthenticated(INVALID_CREDENTIAL));
        }
        let old_hash = hash_token(refresh_token);
        // Read first what decides whether the refresh may happen at all, so a refusal does
        // not consume the token.
        let Some(context) = self.sessions.refresh_context(&old_hash).await? else {
            return Err(Error::Unauthenticated(INVALID_CREDENTIAL));
        };
        let (session, user) = (context.session, context.user);
        let now = self.clock.now();
        if !user.is_active || session.revoked_at.is_some() || session.expires_at <= now {
            return Err(Error::Unauthenticated(INVALID_CREDENTIAL));
        }
        // A replay after the grace goes straight to reuse handling: no answer may depend on
        // the requested workspace first (that would let an old token probe memberships).
        let replay_after_grace = context
            .rotated_at
            .is_some_and(|at| !self.policy.tolerates_replay(at, now));
        let target = workspace_id
            .or(session.workspace_id)
            .filter(|_| !replay_after_grace);
        let scope = match target {
            Some(id) => match self.scope_for(user.id, id).await? {
                Some(scope) => Some(scope),
                None if workspace_id.is_some() => {
                    return Err(Error::PermissionDenied(
                        "workspace_id: not a member of the workspace".into(),
                    ));
                }
                // Membership in the session's workspace ended: continue unscoped.
                None => None,
            },
            None => None,
        };

        let new_token = self.new_refresh_token()?;
        let new_hash = hash_token(&new_token);
        let workspace = scope.as_ref().map(|s| s.workspace.id);
        let session = match self
            .sessions
            .consume_refresh(&old_hash, &new_hash, workspace, now)
            .await?
        {
            Consumed::Rotated(session) => session,
            Consumed::Replayed {
                session_id,
                rotated_at,
                ..
            } if self.policy.tolerates_replay(rotated_at, now) => self
                .sessions
                .continue_session(session_id, &new_hash, workspace, now)
                .await?
                .ok_or(Error::Unauthenticated(INVALID_CREDENTIAL))?,
            Consumed::Replayed {
                session_id,
                user_id,
                workspace_id,
                ..
            } => {
                tracing::warn!(%session_id, %user_id, "refresh token reuse detected; session revoked");
                let audit = AuditRow {
                    id: Uuid::new_v4(),
                    occurred_at: now,
                    action: "token.reuse_detected".into(),
                    actor_user_id: Some(user_id),
                    target_type: Some("session".into()),
                    target_id: Some(session_id.to_string()),
                    workspace_id,
                    client_address,
                    outcome: "failure".into(),
                    details: "{}".into(),
                    ..AuditRow::default()
                };
                self.revoke(
                    RevokeScope::Session(session_id),
                    "token_reuse",
                    Some(&audit),
                )
                .await?;
                return Err(Error::Unauthenticated(INVALID_CREDENTIAL));
            }
            Consumed::Invalid => return Err(Error::Unauthenticated(INVALID_CREDENTIAL)),
        };
        self.issued.count(TokenKind::Refresh);
        let (access_token, access_expires_at) =
            self.sign_access(&user, &session, scope.as_ref(), now)?;
        Ok(IssuedTokens {
            access_token,
            refresh_token: new_token,
            access_expires_at,
            expires_in: self.policy.access_ttl.as_secs() as i64,
            session,
            scope,
            user,
        })
    }

    /// Re-scopes the caller's session to another workspace they belong to and issues an access
    /// token for it. No refresh token: a refresh token (days) is never minted from an access
    /// token (minutes); the session's refresh tokens now refresh into that workspace, and
    /// `Refresh {refresh_token, workspace_id}` re-scopes a chain explicitly.
    pub async fn switch_workspace(
        &self,
        claims: &AccessClaims,
        workspace_id: WorkspaceId,
    ) -> Result<IssuedTokens, Error> {
        let user_id: UserId = claims.sub.parse().map_err(|_| Error::Internal)?;
        let session_id: SessionId = claims.sid.parse().map_err(|_| Error::Internal)?;
        let user = self
            .users
            .user_by_id(user_id)
            .await?
            .filter(|u| u.is_active)
            .ok_or(Error::Unauthenticated(INVALID_CREDENTIAL))?;
        // Not a member and no such workspace look the same.
        let scope = self
            .scope_for(user_id, workspace_id)
            .await?
            .ok_or_else(|| {
                Error::PermissionDenied("workspace_id: not a member of the workspace".into())
            })?;
        let now = self.clock.now();
        let session = self
            .sessions
            .switch_session_workspace(session_id, workspace_id, now)
            .await?
            .ok_or(Error::Unauthenticated(INVALID_CREDENTIAL))?;
        let (access_token, access_expires_at) =
            self.sign_access(&user, &session, Some(&scope), now)?;
        Ok(IssuedTokens {
            access_token,
            refresh_token: String::new(),
            access_expires_at,
            expires_in: self.policy.access_ttl.as_secs() as i64,
            session,
            scope: Some(scope),
            user,
        })
    }

    /// Revokes sessions in `scope`, applies the revocation locally at once and nudges every
    /// other replica. Returns the log entries written.
    pub async fn revoke(
        &self,
        scope: RevokeScope,
        reason: &str,
        audit: Option<&AuditRow>,
    ) -> Result<Vec<RevocationRow>, Error> {
        let now = self.clock.now();
        // Tokens issued up to now live at most the longer of the access and authz lifetimes
        // (+ leeway) longer: the revocation must outlive every one of them.
        let longest = self.policy.access_ttl.max(self.policy.authz_ttl);
        let horizon = now
            + chrono::Duration::from_std(longest).map_err(|_| Error::Internal)?
            + chrono::Duration::seconds(super::jwt::LEEWAY_SECS as i64);
        let rows = self
            .revocation_log
            .revoke_sessions(scope, reason, now, horizon, audit)
            .await?;
        // Enforce ours at once, then read the log in order (other writers' entries may sit
        // between ours; applying ours locally does not move the cursor past them).
        self.revocations.apply_local(&rows);
        if let Err(err) = self
            .revocations
            .catch_up(self.revocation_log.as_ref())
            .await
        {
            tracing::debug!(error = %err, "revocation log not readable; the follower retries");
        }
        if !rows.is_empty()
            && let Err(err) = self.cache.publish(revocation::CHANNEL, b"1").await
        {
            tracing::warn!(error = %err, "revocation nudge not published; replicas poll");
        }
        Ok(rows)
    }

    /// Checks a rotation overlap: at least the access-token lifetime (tokens signed by the old
    /// key must outlive it), at most 30 days.
    pub fn validate_overlap(&self, overlap: Duration) -> Result<(), Error> {
        if overlap < self.policy.access_ttl {
            return Err(Error::invalid(
                "overlap",
                format!(
                    "must be at least the access-token lifetime ({}s)",
                    self.policy.access_ttl.as_secs()
                ),
            ));
        }
        if overlap > Duration::from_secs(30 * 24 * 3600) {
            return Err(Error::invalid("overlap", "must be at most 30 days"));
        }
        Ok(())
    }

    /// Issues an authz token: `user`'s role and `actions` in a workspace, for `service` only.
    pub fn issue_authz(
        &self,
        user: &UserRow,
        idp_sub: &str,
        service: &str,
        scope: &WorkspaceScope,
        mut actions: Vec<String>,
    ) -> Result<(String, DateTime<Utc>), Error> {
        let now = self.clock.now();
        let expires =
            now + chrono::Duration::from_std(self.policy.authz_ttl).map_err(|_| Error::Internal)?;
        actions.sort();
        actions.dedup();
        let iat = self
            .revocations
            .issue_at(user.id, Some(scope.workspace.id), now.timestamp());
        let actions_truncated = actions.len() > self.policy.max_actions;
        actions.truncate(self.policy.max_actions);
        let claims = AuthzClaims {
            iss: self.policy.issuer.clone(),
            sub: user.id.to_string(),
            // Only the service: an authz token is no credential anywhere else.
            aud: vec![service.to_string()],
            exp: expires.timestamp(),
            iat,
            nbf: iat,
            jti: Uuid::new_v4().to_string(),
            idp_sub: idp_sub.to_string(),
            svc: service.to_string(),
            wid: scope.workspace.id.to_string(),
            wslug: scope.workspace.slug.clone(),
            wrole: scope.role,
            actions,
            actions_truncated,
            typ: "authz".into(),
        };
        let token = super::jwt::sign(&self.keys.active(), &claims).map_err(|err| {
            tracing::error!(error = %err, "signing failed");
            Error::Internal
        })?;
        self.issued.count(TokenKind::Authz);
        Ok((token, expires))
    }

    /// Verifies an authz token presented by `service` (its key already checked): signature,
    /// claims, `svc == service`, and user-wide revocations.
    pub fn authenticate_authz(&self, token: &str, service: &str) -> Result<AuthzClaims, Error> {
        let claims = self
            .verifier
            .verify_authz(token, service)
            .map_err(|_| Error::Unauthenticated(INVALID_CREDENTIAL))?;
        let workspace = claims.wid.parse::<WorkspaceId>().ok();
        let revoked = claims.sub.parse::<UserId>().map_or(true, |user| {
            workspace.is_none()
                || self
                    .revocations
                    .is_user_revoked(user, workspace, claims.iat)
        });
        if claims.svc != service || revoked {
            return Err(Error::Unauthenticated(INVALID_CREDENTIAL));
        }
        self.require_current_revocations()?;
        Ok(claims)
    }

    /// Verifies a bearer access token: signature, claims and revocation. A token signed by a
    /// key this process has not loaded yet (rotation on another replica) triggers one reload.
    pub async fn authenticate(&self, token: &str) -> Result<Arc<AccessClaims>, Error> {
        let claims = match self.verifier.verify_access(token) {
            Ok(claims) => claims,
            Err(_) => {
                let unknown_kid =
                    Verifier::kid_of(token).is_some_and(|kid| !self.verifier.knows(&kid));
                if !unknown_kid || self.keys.reload_if_stale().await.is_err() {
                    return Err(Error::Unauthenticated(INVALID_CREDENTIAL));
                }
                self.verifier
                    .verify_access(token)
                    .map_err(|_| Error::Unauthenticated(INVALID_CREDENTIAL))?
            }
        };
        if self.revocations.is_revoked(&claims) {
            return Err(Error::Unauthenticated(INVALID_CREDENTIAL));
        }
        self.require_current_revocations()?;
        Ok(claims)
    }

    /// UNAVAILABLE when this replica's revocation set is older than
    /// `revocation_max_staleness`: fail closed rather than accept a token revoked meanwhile.
    fn require_current_revocations(&self) -> Result<(), Error> {
        if self.revocations.is_current(self.policy.max_staleness) {
            Ok(())
        } else {
            tracing::warn!("revocation log unreadable for too long; refusing tokens");
            Err(Error::Unavailable)
        }
    }
}
