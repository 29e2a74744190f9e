//! Sign-in through external identity providers: OIDC issuers (any, with presets for Google and
//! Microsoft Entra ID) and GitHub. Sentinel runs the authorization-code flow with state, nonce
//! and PKCE of its own (kept server-side in the cache), then hands the client app a one-time
//! code bound to the client's PKCE challenge. Accounts are provisioned at first sign-in, linked
//! to an existing user only by a verified email; invitations wait for the user's answer.

mod account;
mod code;
mod error;
mod github;
pub mod oidc;
mod policy;
mod provider;
mod resolve;

pub use error::LoginError;
use provider::Backend;
pub use provider::Provider;
pub use resolve::{MintedAuthz, ResolvedUser};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit;
use crate::cache::Cache;
use crate::config::Config;
use crate::error::Error;
use crate::model::Caller;
use crate::model::UserId;
use crate::store::{
    AdminStore, AppStore, IdentityStore, InvitationStore, RoleStore, Store, WorkspaceStore,
};
use crate::tokens::service::TokenService;

/// What a sign-in start carries (StartLogin, `GET /oauth/{provider}/login`).
#[derive(Debug, Clone, Copy)]
pub struct StartRequest<'a> {
    /// Provider id.
    pub provider: &'a str,
    /// The client app's redirect URI (exact match).
    pub redirect_uri: &'a str,
    /// The client's PKCE challenge.
    pub code_challenge: &'a str,
    /// Must be `S256`.
    pub method: &'a str,
    /// Opaque state handed back to the client app.
    pub client_state: &'a str,
    /// Passed to the provider.
    pub login_hint: &'a str,
    /// The caller's address, for the cap on live login states.
    pub client_address: Option<&'a str>,
}

/// Longest provider token ResolveIdpToken reads (ID tokens are a few KiB).
pub const MAX_IDP_TOKEN_LEN: usize = 16 * 1024;

/// An identity the provider vouched for, with a verified email.
#[derive(Debug, Clone)]
pub struct VerifiedIdentity {
    /// Provider id.
    pub provider: String,
    /// Subject at the provider.
    pub subject: String,
    /// Verified email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Picture URL.
    pub avatar_url: String,
    /// Entra ID's `xms_edov`: the tenant verified the email's domain.
    pub domain_verified: bool,
    /// The organisation claim, if any: Google's `hd` or Entra's `tid`.
    pub organization: Option<String>,
}

/// What the cache keeps between `/login` and `/callback`.
#[derive(Serialize, Deserialize)]
struct LoginState {
    provider: String,
    redirect_uri: String,
    client_app_id: Uuid,
    client_challenge: String,
    client_state: String,
    nonce: String,
    verifier: String,
}

/// What the cache keeps between the callback and ExchangeCode.
#[derive(Serialize, Deserialize)]
struct CodeGrant {
    user_id: UserId,
    provider: String,
    client_challenge: String,
    client_app_id: Uuid,
}

fn random_token() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| Error::Internal)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// `BASE64URL(SHA-256(verifier))`, the S256 PKCE challenge.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref())
}

/// Why a one-time code was refused (one answer for every reason: nothing to probe).
fn refused() -> Error {
    Error::Unauthenticated(
        "the code is unknown, expired or already used, or the verifier does not match",
    )
}

fn code_key(code: &str) -> String {
    format!("login-code:{}", s256(code))
}

/// Checks a PKCE value (challenge or verifier): 43–128 characters of `[A-Za-z0-9-._~]`.
fn valid_pkce(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
}

/// Sends a token-endpoint request and returns one string field of its JSON answer.
async fn token_field(request: reqwest::RequestBuilder, field: &str) -> Result<String, LoginError> {
    let response: serde_json::Value = request
        .send()
        .await
        .map_err(|e| LoginError::provider(format!("token endpoint: {e}")))?
        .json()
        .await
        .map_err(|e| LoginError::provider(format!("token response: {e}")))?;
    response
        .get(field)
        .and_then(|t| t.as_str())
        .map(String::from)
        .ok_or_else(|| LoginError::provider(format!("no {field} in the token response")))
}

/// The login service.
pub struct Login {
    providers: BTreeMap<String, Provider>,
    http: reqwest::Client,
    users: Arc<dyn IdentityStore>,
    workspaces: Arc<dyn WorkspaceStore>,
    invitations: Arc<dyn InvitationStore>,
    roles: Arc<dyn RoleStore>,
    apps: Arc<dyn AppStore>,
    admin: Arc<dyn AdminStore>,
    cache: Arc<dyn Cache>,
    tokens: Arc<TokenService>,
    callback_base: String,
    admin_emails: Vec<String>,
    state_ttl: Duration,
    code_ttl: Duration,
    max_login_states: u32,
    failures: Arc<audit::FailureLog>,
    /// Authenticates login state and one-time codes in the shared cache.
    mac: crate::tokens::kek::CacheMac,
}

impl Login {
    /// Providers from `config`.
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        cache: Arc<dyn Cache>,
        tokens: Arc<TokenService>,
        failures: Arc<audit::FailureLog>,
        mac: crate::tokens::kek::CacheMac,
    ) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                tracing::error!(error = %e, "HTTP client for identity providers");
                Error::Internal
            })?;
        Ok(Self {
            mac,
            failures,
            providers: config
                .providers
                .iter()
                .map(|(id, c)| (id.clone(), Provider::from_config(id, c)))
                .collect(),
            http,
            users: store.clone(),
            workspaces: store.clone(),
            invitations: store.clone(),
            roles: store.clone(),
            apps: store.clone(),
            admin: store,
            cache,
            tokens,
            callback_base: config.effective_issuer().trim_end_matches('/').to_string(),
            admin_emails: config
                .admin_emails
                .iter()
                .map(|e| e.trim().to_ascii_lowercase())
                .collect(),
            state_ttl: config.login_timeout,
            code_ttl: config.login_code_ttl,
            max_login_states: config.rate_limit.login_states_per_address,
        })
    }

    /// The configured providers, by id.
    pub fn providers(&self) -> impl Iterator<Item = &Provider> {
        self.providers.values()
    }

    fn provider(&self, id: &str) -> Result<&Provider, LoginError> {
        self.providers.get(id).ok_or(LoginError::UnknownProvider)
    }

    fn callback_url(&self, provider: &str) -> String {
        format!("{}/oauth/{provider}/callback", self.callback_base)
    }

    /// The active client app owning `redirect_uri` (exact match), among all client apps.
    async fn client_app_for(&self, redirect_uri: &str) -> Result<Uuid, LoginError> {
        self.apps
            .client_app_for_redirect(redirect_uri)
            .await
            .map_err(Error::from)?
            .ok_or(LoginError::RedirectNotAllowed)
    }

    /// Whether the client app a login or code belongs to is still active: deactivating an app
    /// ends its running logins and unredeemed codes at once.
    async fn client_app_active(&self, id: Uuid) -> Result<bool, Error> {
        Ok(self
            .apps
            .client_app_by_id(id)
            .await?
            .is_some_and(|app| app.is_active))
    }

    /// Starts a login: the provider's authorization URL and when the login state lapses.
    pub async fn start(
        &self,
        request: &StartRequest<'_>,
    ) -> Result<(String, chrono::DateTime<Utc>), LoginError> {
        let StartRequest {
            provider,
            redirect_uri,
            code_challenge,
            method,
            client_state,
            login_hint,
            client_address,
        } = *request;
        let p = self.provider(provider)?;
        // Empty means S256, as the contract says.
        if !method.is_empty() && method != "S256" {
            return Err(LoginError::BadRequest(
                "code_challenge_method",
                "must be S256".into(),
            ));
        }
        if !valid_pkce(code_challenge) {
            return Err(LoginError::BadRequest(
                "code_challenge",
                "must be 43-128 characters of [A-Za-z0-9-._~]".into(),
            ));
        }
        if client_state.len() > 512 || login_hint.len() > 320 {
            return Err(LoginError::BadRequest(
                "state",
                "state (512) or login_hint (320 bytes) is too long".into(),
            ));
        }
        let client_app_id = self.client_app_for(redirect_uri).await?;
        self.admit_login_state(client_address).await?;
        let state = random_token()?;
        let login = LoginState {
            provider: provider.to_string(),
            redirect_uri: redirect_uri.to_string(),
            client_app_id,
            client_challenge: code_challenge.to_string(),
            client_state: client_state.to_string(),
            nonce: random_token()?,
            verifier: random_token()?,
        };
        let mut url = match &p.backend {
            Backend::Oidc(issuer) => {
                let discovery = issuer.discovery(&self.http).await?;
                reqwest::Url::parse(&discovery.authorization_endpoint)
                    .map_err(|_| LoginError::provider("bad authorization endpoint".into()))?
            }
            Backend::Github { authorize_url, .. } => reqwest::Url::parse(authorize_url)
                .map_err(|_| LoginError::provider("bad authorization endpoint".into()))?,
        };
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &p.client_id)
                .append_pair("redirect_uri", &self.callback_url(provider))
                .append_pair("scope", &p.scopes)
                .append_pair("state", &state)
                .append_pair("code_challenge", &s256(&login.verifier))
                .append_pair("code_challenge_method", "S256");
            if !p.is_github {
                query.append_pair("nonce", &login.nonce);
            }
            if !login_hint.is_empty() {
                query.append_pair(if p.is_github { "login" } else { "login_hint" }, login_hint);
            }
        }
        let stored = serde_json::to_vec(&login).map_err(|_| Error::Internal)?;
        let key = format!("login-state:{state}");
        self.cache
            .set(&key, &self.mac.protect(&key, &stored), self.state_ttl)
            .await
            .map_err(|_| Error::Unavailable)?;
        let expires = crate::model::now()
            + chrono::Duration::from_std(self.state_ttl).map_err(|_| Error::Internal)?;
        Ok((url.to_string(), expires))
    }

    /// Finishes the provider's side: validates state and the provider's answer, provisions or
    /// links the user, and returns the client app's redirect with a one-time code.
    pub async fn callback(
        &self,
        provider: &str,
        code: &str,
        state: &str,
        caller: &Caller,
    ) -> Result<String, LoginError> {
        let p = self.provider(provider)?;
        if state.is_empty() || state.len() > 128 {
            return Err(LoginError::SessionExpired);
        }
        let key = format!("login-state:{state}");
        let stored = self
            .cache
            .take(&key)
            .await
            .map_err(|_| Error::Unavailable)?
            .ok_or(LoginError::SessionExpired)?;
        // A value not written by a replica (forged in the cache) is no login state.
        let stored = self
            .mac
            .open(&key, &stored)
            .ok_or(LoginError::SessionExpired)?;
        let login: LoginState =
            serde_json::from_slice(stored).map_err(|_| LoginError::SessionExpired)?;
        if !self.client_app_active(login.client_app_id).await? {
            return Err(LoginError::RedirectNotAllowed);
        }
        if login.provider != provider {
            return Err(LoginError::SessionExpired);
        }
        if code.is_empty() {
            return Err(LoginError::provider("no authorization code".into()));
        }
        let identity = match &p.backend {
            Backend::Oidc(issuer) => {
                let discovery = issuer.discovery(&self.http).await?;
                let request = self
                    .http
                    .post(&discovery.token_endpoint)
                    .basic_auth(&p.client_id, Some(&p.client_secret))
                    .form(&[
                        ("grant_type", "authorization_code"),
                        ("code", code),
                        ("redirect_uri", &self.callback_url(provider)),
                        ("code_verifier", &login.verifier),
                    ]);
                let id_token = token_field(request, "id_token").await?;
                let id_token = id_token.as_str();
                issuer
                    .validate(
                        &self.http,
                        provider,
                        id_token,
                        std::slice::from_ref(&p.client_id),
                        Some(&login.nonce),
                        self.tokens.now(),
                    )
                    .await?
            }
            Backend::Github {
                token_url, api_url, ..
            } => {
                let request = self
                    .http
                    .post(token_url)
                    .header("accept", "application/json")
                    .form(&[
                        ("client_id", p.client_id.as_str()),
                        ("client_secret", p.client_secret.as_str()),
                        ("code", code),
                        ("redirect_uri", &self.callback_url(provider)),
                        ("code_verifier", &login.verifier),
                    ]);
                let token = token_field(request, "access_token").await?;
                self.github_identity(provider, api_url, &token).await?
            }
        };
        let user = self.account_for(&identity, &caller.actor).await?;
        let one_time = random_token()?;
        let grant = CodeGrant {
            user_id: user.id,
            provider: provider.to_string(),
            client_challenge: login.client_challenge,
            client_app_id: login.client_app_id,
        };
        let stored = serde_json::to_vec(&grant).map_err(|_| Error::Internal)?;
        let key = code_key(&one_time);
        self.cache
            .set(&key, &self.mac.protect(&key, &stored), self.code_ttl)
            .await
            .map_err(|_| Error::Unavailable)?;
        let mut redirect =
            reqwest::Url::parse(&login.redirect_uri).map_err(|_| LoginError::RedirectNotAllowed)?;
        redirect.query_pairs_mut().append_pair("code", &one_time);
        if !login.client_state.is_empty() {
            redirect
                .query_pairs_mut()
                .append_pair("state", &login.client_state);
        }
        let mut event = audit::event(
            "login.succeeded",
            &caller.actor,
            "user",
            user.id,
            serde_json::json!({ "provider": provider }),
        );
        event.actor_user_id = Some(user.id);
        self.admin.insert_audit(&event).await.map_err(Error::from)?;
        Ok(redirect.to_string())
    }

    /// Refuses a new login state once the client's address (IPv6: its /64) created
    /// `max_login_states` of them within one login timeout, so that unauthenticated callers
    /// cannot fill the cache with states.
    async fn admit_login_state(&self, client_address: Option<&str>) -> Result<(), LoginError> {
        let Some(address) = client_address else {
            return Ok(());
        };
        let bucket = address
            .parse::<std::net::IpAddr>()
            .map(crate::ratelimit::address_bucket)
            .unwrap_or_else(|_| address.to_string());
        let counted = self
            .cache
            .hit(&format!("login-states:{bucket}"), self.state_ttl)
            .await
            .map_err(|_| Error::Unavailable)?;
        if counted.count > u64::from(self.max_login_states) {
            return Err(LoginError::Other(Error::ResourceExhausted {
                retry_after: counted.resets_in,
            }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn pkce_values_are_checked() {
        assert!(valid_pkce(&"a".repeat(43)));
        assert!(!valid_pkce(&"a".repeat(42)));
        assert!(!valid_pkce(&format!("{}+", "a".repeat(43))));
    }
}
