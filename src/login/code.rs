//! The one-time code a sign-in ends with: redeemed once, with the client's PKCE verifier, for
//! a token pair (ExchangeCode), or read first to list the user's workspaces.

use super::{CodeGrant, Login, code_key, refused, s256, valid_pkce};
use crate::audit;
use crate::error::Error;
use crate::model::Caller;
use crate::model::WorkspaceId;
use crate::store::UserRow;
use crate::tokens::service::{IssuedTokens, SignIn};

impl Login {
    /// The user behind a one-time code, after checking the client's PKCE verifier. Does not
    /// consume the code (see [`Login::consume`]), so a wrong verifier never burns it.
    async fn redeem(&self, code: &str, verifier: &str) -> Result<(CodeGrant, UserRow), Error> {
        if code.is_empty() || code.len() > 128 || !valid_pkce(verifier) {
            return Err(refused());
        }
        let key = code_key(code);
        let stored = self
            .cache
            .get(&key)
            .await
            .map_err(|_| Error::Unavailable)?
            .ok_or_else(refused)?;
        let stored = self.mac.open(&key, &stored).ok_or_else(refused)?;
        let grant: CodeGrant = serde_json::from_slice(stored).map_err(|_| refused())?;
        if s256(verifier) != grant.client_challenge
            || !self.client_app_active(grant.client_app_id).await?
        {
            return Err(refused());
        }
        let user = self
            .users
            .user_by_id(grant.user_id)
            .await?
            .ok_or_else(refused)?;
        if !user.is_active {
            return Err(Error::PermissionDenied("user is deactivated".into()));
        }
        Ok((grant, user))
    }

    /// Uses up a one-time code; the atomic take decides between concurrent exchanges.
    async fn consume(&self, code: &str) -> Result<(), Error> {
        self.cache
            .take(&code_key(code))
            .await
            .map_err(|_| Error::Unavailable)?
            .map(drop)
            .ok_or_else(refused)
    }

    /// ExchangeCode: tokens for the code's user, in `workspace` (which must be theirs), or in
    /// their only workspace, or unscoped.
    pub async fn exchange(
        &self,
        code: &str,
        verifier: &str,
        workspace: Option<WorkspaceId>,
        user_agent: &str,
        caller: &Caller,
    ) -> Result<(IssuedTokens, UserRow), Error> {
        let client_address = caller.actor.client_address.as_deref().unwrap_or_default();
        let exchanged = self
            .exchange_once(code, verifier, workspace, user_agent, client_address)
            .await;
        if let Err(err) = &exchanged {
            let mut event = audit::event(
                "login.code_refused",
                &caller.actor,
                "login_code",
                "-",
                serde_json::json!({ "status": err.code_name() }),
            );
            event.outcome = "failure".into();
            if let Err(e) = self.admin.insert_audit(&event).await {
                tracing::warn!(error = %e, "refused code exchange not audited");
            }
        }
        exchanged
    }

    async fn exchange_once(
        &self,
        code: &str,
        verifier: &str,
        workspace: Option<WorkspaceId>,
        user_agent: &str,
        client_address: &str,
    ) -> Result<(IssuedTokens, UserRow), Error> {
        let (grant, user) = self.redeem(code, verifier).await?;
        let workspace = match workspace {
            Some(w) => {
                if self.workspaces.membership_role(w, user.id).await?.is_none() {
                    return Err(Error::PermissionDenied(
                        "not a member of the requested workspace".into(),
                    ));
                }
                Some(w)
            }
            None => {
                let mine = self
                    .workspaces
                    .list_workspaces(Some(user.id), None, None, 2)
                    .await?;
                (mine.len() == 1).then(|| mine[0].0.id)
            }
        };
        // Consumed only now: a wrong verifier or workspace leaves the code usable.
        self.consume(code).await?;
        let amr = match self.providers.get(&grant.provider) {
            Some(p) if p.is_github => "oauth",
            _ => "oidc",
        };
        let issued = self
            .tokens
            .start_session(
                &user,
                workspace,
                SignIn {
                    provider: grant.provider.clone(),
                    amr: vec![amr.into()],
                    user_agent: user_agent.to_string(),
                    client_address: client_address.to_string(),
                    client_app_id: Some(grant.client_app_id),
                },
            )
            .await?;
        Ok((issued, user))
    }

    /// The user behind a code (ListMyWorkspaces before ExchangeCode); the code stays usable.
    pub async fn code_user(&self, code: &str, verifier: &str) -> Result<UserRow, Error> {
        Ok(self.redeem(code, verifier).await?.1)
    }
}
