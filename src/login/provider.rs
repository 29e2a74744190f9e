//! A configured identity provider: an OIDC issuer (Google, Entra ID, any issuer) or GitHub.

use super::{oidc, policy};
use crate::config::{ProviderConfig, ProviderKind};

pub(super) enum Backend {
    Oidc(oidc::Issuer),
    Github {
        authorize_url: String,
        token_url: String,
        api_url: String,
    },
}

/// One configured provider.
pub struct Provider {
    /// Id (path segment).
    pub id: String,
    /// Button label.
    pub display_name: String,
    /// `oidc` or `github` (proto kind).
    pub is_github: bool,
    pub(super) client_id: String,
    pub(super) client_secret: String,
    pub(super) scopes: String,
    pub(super) audiences: Vec<String>,
    /// Whether ResolveIdpToken accepts this provider's tokens.
    pub(super) authz_mode: bool,
    /// Linking, domains and sign-up.
    pub(super) policy: policy::AccountPolicy,
    pub(super) backend: Backend,
}

impl Provider {
    pub(super) fn from_config(id: &str, c: &ProviderConfig) -> Self {
        let default_name = match c.kind {
            ProviderKind::Google => "Google",
            ProviderKind::Entra => "Microsoft",
            ProviderKind::Github => "GitHub",
            ProviderKind::Oidc => id,
        };
        let backend = match c.kind {
            ProviderKind::Github => Backend::Github {
                authorize_url: c
                    .authorize_url
                    .clone()
                    .unwrap_or_else(|| "https://github.com/login/oauth/authorize".into()),
                token_url: c
                    .token_url
                    .clone()
                    .unwrap_or_else(|| "https://github.com/login/oauth/access_token".into()),
                api_url: c
                    .api_url
                    .clone()
                    .unwrap_or_else(|| "https://api.github.com".into())
                    .trim_end_matches('/')
                    .to_string(),
            },
            ProviderKind::Google => Backend::Oidc(oidc::Issuer::new(
                c.issuer.as_deref().unwrap_or("https://accounts.google.com"),
            )),
            ProviderKind::Entra => {
                Backend::Oidc(oidc::Issuer::new(&c.issuer.clone().unwrap_or_else(|| {
                    format!(
                        "https://login.microsoftonline.com/{}/v2.0",
                        c.tenant.as_deref().unwrap_or("common")
                    )
                })))
            }
            ProviderKind::Oidc => {
                Backend::Oidc(oidc::Issuer::new(c.issuer.as_deref().unwrap_or("")))
            }
        };
        let scopes = if !c.scopes.is_empty() {
            c.scopes.join(" ")
        } else if c.kind == ProviderKind::Github {
            "read:user user:email".into()
        } else {
            "openid email profile".into()
        };
        let mut audiences = vec![c.client_id.clone()];
        audiences.extend(c.audiences.iter().cloned());
        Self {
            id: id.to_string(),
            display_name: if c.display_name.is_empty() {
                default_name.to_string()
            } else {
                c.display_name.clone()
            },
            is_github: c.kind == ProviderKind::Github,
            authz_mode: c.authz_mode.unwrap_or(c.kind != ProviderKind::Github),
            policy: policy::AccountPolicy::from_config(c),
            client_id: c.client_id.clone(),
            client_secret: c.client_secret.clone(),
            scopes,
            audiences,
            backend,
        }
    }
}
