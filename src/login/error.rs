//! Why a login step failed, and how that failure is answered.

use super::Login;
use crate::error::Error;

impl Login {
    /// The provider answered the callback with `?error=…`: the login state is consumed so it
    /// cannot be replayed, and the provider's words (one line, no control characters, at most
    /// 100 characters) become the failure.
    pub async fn provider_refused(&self, state: &str, error: &str) -> LoginError {
        let _ = self.cache.take(&format!("login-state:{state}")).await;
        LoginError::Provider(
            error
                .chars()
                .take(100)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        )
    }
}

/// Why a login step failed; rendered as a page (browser) or JSON, and audited.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// No provider with that id.
    #[error("unknown identity provider")]
    UnknownProvider,
    /// The redirect URI is not one of an active client app.
    #[error("redirect_uri is not registered for an active client app")]
    RedirectNotAllowed,
    /// A request parameter is malformed: (field, reason).
    #[error("{0} {1}")]
    BadRequest(&'static str, String),
    /// The login state is unknown, used or expired.
    #[error("the sign-in session expired or was already used; start again")]
    SessionExpired,
    /// The provider reported no verified email.
    #[error("the identity provider did not confirm a verified email address")]
    EmailNotVerified,
    /// The user is deactivated.
    #[error("this account is deactivated")]
    Deactivated,
    /// The provider refused or failed.
    #[error("the identity provider refused the sign-in: {0}")]
    Provider(String),
    /// The email's domain (or organisation) is not allowed for this provider.
    #[error("this provider does not sign in accounts of that email domain")]
    DomainNotAllowed,
    /// An account with the identity's email exists and this provider is not trusted to link.
    #[error("an account with this email exists; sign in the way it was created, or ask an admin")]
    AccountExists,
    /// The provider may not create accounts.
    #[error("sign-up through this provider is closed; ask an admin for an account")]
    SignupClosed,
    /// ResolveIdpToken is not enabled for this provider.
    #[error("this provider's tokens are not accepted by ResolveIdpToken (authz_mode is off)")]
    AuthzModeOff,
    /// A presented provider token is invalid.
    #[error("{0}")]
    InvalidToken(String),
    /// Anything else (already logged).
    #[error(transparent)]
    Other(#[from] Error),
}

impl LoginError {
    pub(super) fn provider(why: String) -> Self {
        LoginError::Provider(why)
    }

    pub(super) fn invalid_token(why: String) -> Self {
        LoginError::InvalidToken(why)
    }

    /// A short stable reason for the audit trail.
    pub fn reason(&self) -> &'static str {
        match self {
            LoginError::UnknownProvider => "unknown_provider",
            LoginError::RedirectNotAllowed => "redirect_not_allowed",
            LoginError::BadRequest(..) => "bad_request",
            LoginError::SessionExpired => "session_expired",
            LoginError::EmailNotVerified => "email_not_verified",
            LoginError::Deactivated => "deactivated",
            LoginError::Provider(_) => "provider_error",
            LoginError::AuthzModeOff => "authz_mode_off",
            LoginError::DomainNotAllowed => "domain_not_allowed",
            LoginError::AccountExists => "account_exists",
            LoginError::SignupClosed => "signup_closed",
            LoginError::InvalidToken(_) => "invalid_token",
            LoginError::Other(_) => "internal",
        }
    }
}

impl From<LoginError> for Error {
    fn from(err: LoginError) -> Self {
        match err {
            LoginError::UnknownProvider => Error::NotFound("identity provider".into()),
            LoginError::RedirectNotAllowed => Error::invalid(
                "redirect_uri",
                "does not exactly match a redirect URI of an active client app",
            ),
            LoginError::BadRequest(field, why) => Error::invalid(field, why),
            LoginError::SessionExpired => {
                Error::FailedPrecondition("the login session expired; start again".into())
            }
            // The token proves no usable identity: UNAUTHENTICATED, as ResolveIdpToken documents.
            LoginError::EmailNotVerified => {
                Error::Unauthenticated("the identity provider did not confirm a verified email")
            }
            LoginError::Deactivated => Error::PermissionDenied("user is deactivated".into()),
            LoginError::DomainNotAllowed => {
                Error::PermissionDenied("the email domain is not allowed for this provider".into())
            }
            LoginError::AccountExists => Error::FailedPrecondition(
                "an account with this email exists; this provider may not link to it".into(),
            ),
            LoginError::SignupClosed => {
                Error::PermissionDenied("sign-up through this provider is closed".into())
            }
            LoginError::AuthzModeOff => Error::FailedPrecondition(
                "provider: its tokens are not accepted here (set authz_mode for it)".into(),
            ),
            LoginError::Provider(why) => {
                tracing::warn!(%why, "identity provider failure");
                Error::Unauthenticated("the identity provider refused the sign-in")
            }
            LoginError::InvalidToken(why) => {
                tracing::debug!(%why, "provider token refused");
                Error::Unauthenticated("the identity provider token is not valid")
            }
            LoginError::Other(err) => err,
        }
    }
}
