//! Per-provider account rules: whose email claims are trusted enough to link to an existing
//! account (or to make a platform admin), which email domains may sign in, and whether a
//! provider may create new accounts.

use crate::config::{ProviderConfig, ProviderKind};

use super::{LoginError, VerifiedIdentity};

/// What one provider's identities may do to accounts.
#[derive(Debug, Clone)]
pub struct AccountPolicy {
    kind: ProviderKind,
    /// Explicit `trust_email_for_linking`; `None` = the kind's default.
    trust_email: Option<bool>,
    /// Lowercase email domains (and, for Google / Entra, `hd` / `tid` values) allowed.
    allowed_domains: Vec<String>,
    /// Whether a first sign-in may create an account.
    pub allow_signup: bool,
}

impl AccountPolicy {
    /// The rules of a configured provider.
    pub fn from_config(c: &ProviderConfig) -> Self {
        Self {
            kind: c.kind,
            trust_email: c.trust_email_for_linking,
            allowed_domains: c
                .allowed_domains
                .iter()
                .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect(),
            allow_signup: c.allow_signup.unwrap_or(true),
        }
    }

    /// Whether the provider's word on this identity's email is enough to treat it as the owner
    /// of the Sentinel account with that email: by default Google (verified email), Entra ID
    /// only with `xms_edov` (the tenant verified the domain), and GitHub (primary verified
    /// email); any other OIDC issuer only when configured to be trusted.
    pub fn trusts_email(&self, identity: &VerifiedIdentity) -> bool {
        match (self.trust_email, self.kind) {
            (Some(trusted), _) => trusted,
            (None, ProviderKind::Google | ProviderKind::Github) => true,
            (None, ProviderKind::Entra) => identity.domain_verified,
            (None, ProviderKind::Oidc) => false,
        }
    }

    /// Refuses an identity outside `allowed_domains` (when set): the email's domain must be
    /// listed, and a Google `hd` or Entra `tid` claim, when present, too.
    pub fn check_domain(&self, identity: &VerifiedIdentity) -> Result<(), LoginError> {
        if self.allowed_domains.is_empty() {
            return Ok(());
        }
        let domain = identity
            .email
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        let listed = |value: &str| self.allowed_domains.iter().any(|d| d == value);
        let hint_ok = identity
            .organization
            .as_deref()
            .is_none_or(|o| listed(&o.to_ascii_lowercase()));
        if listed(&domain) && hint_ok {
            Ok(())
        } else {
            Err(LoginError::DomainNotAllowed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: ProviderKind) -> ProviderConfig {
        ProviderConfig {
            kind,
            display_name: String::new(),
            client_id: "c".into(),
            client_secret: String::new(),
            client_secret_file: None,
            issuer: None,
            tenant: None,
            scopes: Vec::new(),
            audiences: Vec::new(),
            authorize_url: None,
            token_url: None,
            api_url: None,
            authz_mode: None,
            trust_email_for_linking: None,
            allowed_domains: Vec::new(),
            allow_signup: None,
        }
    }

    fn identity(
        email: &str,
        organization: Option<&str>,
        domain_verified: bool,
    ) -> VerifiedIdentity {
        VerifiedIdentity {
            provider: "p".into(),
            subject: "s".into(),
            email: email.into(),
            name: String::new(),
            avatar_url: String::new(),
            domain_verified,
            organization: organization.map(String::from),
        }
    }

    #[test]
    fn email_trust_follows_the_kind_unless_configured() {
        let ann = identity("ann@example.com", None, false);
        let edov = identity("ann@example.com", None, true);
        assert!(AccountPolicy::from_config(&config(ProviderKind::Google)).trusts_email(&ann));
        assert!(AccountPolicy::from_config(&config(ProviderKind::Github)).trusts_email(&ann));
        let entra = AccountPolicy::from_config(&config(ProviderKind::Entra));
        assert!(!entra.trusts_email(&ann));
        assert!(entra.trusts_email(&edov));
        let oidc = AccountPolicy::from_config(&config(ProviderKind::Oidc));
        assert!(!oidc.trusts_email(&ann));
        let mut trusted = config(ProviderKind::Oidc);
        trusted.trust_email_for_linking = Some(true);
        assert!(AccountPolicy::from_config(&trusted).trusts_email(&ann));
        let mut distrusted = config(ProviderKind::Google);
        distrusted.trust_email_for_linking = Some(false);
        assert!(!AccountPolicy::from_config(&distrusted).trusts_email(&ann));
    }

    #[test]
    fn allowed_domains_check_the_email_and_the_organization() {
        let mut c = config(ProviderKind::Google);
        c.allowed_domains = vec!["@Example.com".into()];
        let policy = AccountPolicy::from_config(&c);
        assert!(
            policy
                .check_domain(&identity("a@example.com", None, false))
                .is_ok()
        );
        assert!(
            policy
                .check_domain(&identity("a@EXAMPLE.com", Some("example.com"), false))
                .is_ok()
        );
        assert!(
            policy
                .check_domain(&identity("a@other.com", None, false))
                .is_err()
        );
        // A personal account with a listed email but another organization claim.
        assert!(
            policy
                .check_domain(&identity("a@example.com", Some("evil.com"), false))
                .is_err()
        );
        let open = AccountPolicy::from_config(&config(ProviderKind::Google));
        assert!(
            open.check_domain(&identity("a@any.com", None, false))
                .is_ok()
        );
    }
}
