//! OpenID Connect against any issuer: discovery, the code exchange, and ID-token validation
//! (signature by the issuer's JWKS — cached, refetched once on an unknown `kid` —, `iss`, `aud`,
//! `exp`, `nonce`). JOSE work is done by `jsonwebtoken`.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

use super::{LoginError, VerifiedIdentity};

/// How long discovery documents and key sets are trusted before a refetch.
const CACHE_FOR: Duration = Duration::from_secs(3600);
/// Smallest interval between two key-set refetches for an unknown `kid`.
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(10);
/// Clock skew tolerated on ID-token times.
pub const LEEWAY_SECS: u64 = 2;

/// The parts of a discovery document Sentinel uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    /// The issuer, as the provider states it.
    pub issuer: String,
    /// Where browsers are sent.
    pub authorization_endpoint: String,
    /// Where codes are exchanged.
    pub token_endpoint: String,
    /// The signing keys.
    pub jwks_uri: String,
}

#[derive(Debug, Deserialize)]
struct IdClaims {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    picture: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    xms_edov: Option<serde_json::Value>,
    /// Google Workspace domain.
    #[serde(default)]
    hd: Option<String>,
    /// Entra tenant id.
    #[serde(default)]
    tid: Option<String>,
}

/// One OIDC issuer with its cached discovery document and keys.
pub struct Issuer {
    issuer: String,
    discovery: RwLock<Option<(Discovery, Instant)>>,
    keys: RwLock<Option<(JwkSet, Instant)>>,
}

impl Issuer {
    /// An issuer at `issuer` (no trailing slash needed).
    pub fn new(issuer: &str) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_string(),
            discovery: RwLock::new(None),
            keys: RwLock::new(None),
        }
    }

    /// The configured issuer URL.
    pub fn url(&self) -> &str {
        &self.issuer
    }

    /// The discovery document (cached for an hour).
    pub async fn discovery(&self, http: &reqwest::Client) -> Result<Discovery, LoginError> {
        if let Some((doc, at)) = self.discovery.read().await.as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return Ok(doc.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let doc: Discovery = http
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| LoginError::provider(format!("discovery failed: {e}")))?
            .json()
            .await
            .map_err(|e| LoginError::provider(format!("discovery document unreadable: {e}")))?;
        // Entra's multi-tenant documents state "{tenantid}" in place of the tenant.
        if doc.issuer.trim_end_matches('/') != self.issuer && !doc.issuer.contains("{tenantid}") {
            return Err(LoginError::provider(
                "the discovery document names another issuer".into(),
            ));
        }
        *self.discovery.write().await = Some((doc.clone(), Instant::now()));
        Ok(doc)
    }

    async fn key_set(&self, http: &reqwest::Client, refetch: bool) -> Result<JwkSet, LoginError> {
        if let Some((set, at)) = self.keys.read().await.as_ref() {
            let fresh = at.elapsed() < CACHE_FOR;
            let too_soon = at.elapsed() < REFETCH_AT_MOST_EVERY;
            if (fresh && !refetch) || too_soon {
                return Ok(set.clone());
            }
        }
        let discovery = self.discovery(http).await?;
        let set: JwkSet = http
            .get(&discovery.jwks_uri)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| LoginError::provider(format!("key set unavailable: {e}")))?
            .json()
            .await
            .map_err(|e| LoginError::provider(format!("key set unreadable: {e}")))?;
        *self.keys.write().await = Some((set.clone(), Instant::now()));
        Ok(set)
    }

    /// Validates an ID token: signature (by `kid`), `iss`, `aud` ∈ `audiences`, `exp` (against
    /// `now`, with [`LEEWAY_SECS`]), and the `nonce` when one is expected; requires a verified
    /// email.
    pub async fn validate(
        &self,
        http: &reqwest::Client,
        provider: &str,
        token: &str,
        audiences: &[String],
        nonce: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<VerifiedIdentity, LoginError> {
        let invalid = |why: &str| LoginError::invalid_token(format!("ID token {why}"));
        if token.len() > 16 * 1024 {
            return Err(invalid("is too large"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("is malformed"))?;
        if !matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        ) {
            return Err(invalid("uses an algorithm that is not accepted"));
        }
        let kid = header.kid.ok_or_else(|| invalid("has no kid"))?;
        let mut set = self.key_set(http, false).await?;
        if set.find(&kid).is_none() {
            set = self.key_set(http, true).await?;
        }
        let jwk = set
            .find(&kid)
            .ok_or_else(|| invalid("is signed by an unknown key"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|_| invalid("key is unusable"))?;
        let discovery = self.discovery(http).await?;
        let mut validation = Validation::new(header.alg);
        // `exp` is weighed below against the domain's clock, not the library's.
        validation.validate_exp = false;
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let templated = discovery.issuer.contains("{tenantid}");
        if !templated {
            validation.set_issuer(&[discovery.issuer.as_str()]);
        } else {
            validation.iss = None;
        }
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => invalid("has expired"),
                jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                    invalid("was issued for another audience")
                }
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                    invalid("was issued by another issuer")
                }
                _ => invalid("is not valid"),
            },
        )?;
        let exp = data.claims.get("exp").and_then(serde_json::Value::as_i64);
        if exp.is_none_or(|exp| exp.saturating_add(LEEWAY_SECS as i64) <= now.timestamp()) {
            return Err(invalid("has expired"));
        }
        if templated {
            let tid = data
                .claims
                .get("tid")
                .and_then(|t| t.as_str())
                .unwrap_or("");
            let expected = discovery.issuer.replace("{tenantid}", tid);
            if data.claims.get("iss").and_then(|i| i.as_str()) != Some(expected.as_str()) {
                return Err(invalid("was issued by another issuer"));
            }
        }
        let claims: IdClaims =
            serde_json::from_value(data.claims).map_err(|_| invalid("has malformed claims"))?;
        if let Some(expected) = nonce
            && claims.nonce.as_deref() != Some(expected)
        {
            return Err(invalid("nonce does not match the login"));
        }
        // Entra ID states no email_verified; its optional claim `xms_edov` (email domain
        // owner verified) is the equivalent, and must be configured on the app registration.
        let truthy = |v: &Option<serde_json::Value>| match v {
            Some(serde_json::Value::Bool(v)) => *v,
            Some(serde_json::Value::String(v)) => v == "true",
            _ => false,
        };
        let verified = truthy(&claims.email_verified) || truthy(&claims.xms_edov);
        let email = claims.email.filter(|e| !e.is_empty());
        match (email, verified) {
            (Some(email), true) => Ok(VerifiedIdentity {
                provider: provider.to_string(),
                subject: claims.sub,
                email,
                name: claims.name.unwrap_or_default(),
                avatar_url: claims.picture.unwrap_or_default(),
                domain_verified: truthy(&claims.xms_edov),
                organization: claims.hd.or(claims.tid).filter(|o| !o.is_empty()),
            }),
            _ => Err(LoginError::EmailNotVerified),
        }
    }
}
