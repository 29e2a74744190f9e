//! Authz mode: a backend passes the provider's token of its user (an OIDC ID token, a GitHub
//! access token); Sentinel resolves the user and may mint an authz token for the service.

use chrono::{DateTime, Utc};

use super::{Backend, Login, LoginError, MAX_IDP_TOKEN_LEN};
use crate::audit;
use crate::error::Error;
use crate::model::Caller;
use crate::model::WorkspaceId;
use crate::model::WorkspaceRole;
use crate::store::{UserRow, WorkspaceRow};
use crate::tokens::service::WorkspaceScope;

/// The user behind a provider token presented to ResolveIdpToken.
#[derive(Debug, Clone)]
pub struct ResolvedUser {
    /// The Sentinel user (linked or created).
    pub user: UserRow,
    /// `<provider>|<subject at the provider>`, for the authz token's `idp_sub`.
    pub idp_sub: String,
}

/// An authz token minted for a resolved user, with what it carries.
#[derive(Debug, Clone)]
pub struct MintedAuthz {
    /// The signed token.
    pub token: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// The workspace it is scoped to.
    pub workspace: WorkspaceRow,
    /// The user's role there.
    pub role: WorkspaceRole,
    /// The service's actions the user holds there (what the token carries).
    pub actions: Vec<String>,
}

/// Most actions read for one authz token (the token carries at most `token_max_actions`).
const MAX_ACTIONS_READ: i64 = 10_000;

impl Login {
    /// Authz mode: the user behind a provider's ID token (OIDC) or access token (GitHub),
    /// provisioned or linked like a sign-in.
    pub async fn resolve(
        &self,
        provider: &str,
        idp_token: &str,
        caller: &Caller,
    ) -> Result<ResolvedUser, LoginError> {
        let p = self.provider(provider)?;
        if idp_token.is_empty() {
            return Err(LoginError::BadRequest("idp_token", "is required".into()));
        }
        if idp_token.len() > MAX_IDP_TOKEN_LEN {
            return Err(LoginError::BadRequest(
                "idp_token",
                format!("must be at most {MAX_IDP_TOKEN_LEN} bytes"),
            ));
        }
        if !p.authz_mode {
            return Err(LoginError::AuthzModeOff);
        }
        let identity = match &p.backend {
            Backend::Oidc(issuer) => {
                issuer
                    .validate(
                        &self.http,
                        provider,
                        idp_token,
                        &p.audiences,
                        None,
                        self.tokens.now(),
                    )
                    .await?
            }
            Backend::Github { api_url, .. } => {
                // Any GitHub token would name its owner: accept only our OAuth app's.
                self.github_token_is_ours(p, api_url, idp_token).await?;
                self.github_identity(provider, api_url, idp_token).await?
            }
        };
        let idp_sub = format!("{}|{}", identity.provider, identity.subject);
        let user = self.account_for(&identity, &caller.actor).await?;
        Ok(ResolvedUser { user, idp_sub })
    }

    /// Counts a failed login step; failures are written as one audit row per client address
    /// and minute (see [`audit::FailureLog`]).
    pub async fn audit_failure(&self, provider: &str, err: &LoginError, caller: &Caller) {
        self.failures.record(
            &caller.actor,
            &audit::Failure {
                action: "login.failed",
                outcome: "failure",
                target: ("provider", provider),
                reason: err.reason(),
            },
        );
    }

    /// An authz token of `service` for the resolved user in `workspace`; PERMISSION_DENIED
    /// when the user is not a member there.
    pub async fn authz_token(
        &self,
        resolved: &ResolvedUser,
        service: &str,
        workspace: WorkspaceId,
    ) -> Result<MintedAuthz, Error> {
        let user = &resolved.user;
        let (role, workspace_row, groups) = self
            .workspaces
            .workspace_scope(workspace, user.id)
            .await?
            .ok_or_else(|| Error::PermissionDenied("not a member of the workspace".into()))?;
        let actions = self
            .roles
            .user_actions(workspace, service, user.id, None, MAX_ACTIONS_READ)
            .await?;
        let scope = WorkspaceScope {
            workspace: workspace_row.clone(),
            role,
            groups,
        };
        let (token, expires_at) =
            self.tokens
                .issue_authz(user, &resolved.idp_sub, service, &scope, actions.clone())?;
        Ok(MintedAuthz {
            token,
            expires_at,
            workspace: workspace_row,
            role,
            actions,
        })
    }
}
