//! Access-token claims, signing with the key held in memory, and strict verification.

use crate::model::{Clock, WorkspaceRole};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

pub use super::keys::SignError;
use super::keys::{Jwk, SigningKey};

/// Tokens longer than this are rejected before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;
/// The audience every access token carries.
pub const AUDIENCE: &str = "sentinel";
/// Verified tokens remembered at most.
const CACHE_CAPACITY: usize = 100_000;

/// A verified token and the instant its key retires, if it does.
type Verified = (Arc<AccessClaims>, Option<i64>);

/// Claims of an access token (docs/tokens.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// User id.
    pub sub: String,
    /// `sentinel` plus the client app's services.
    pub aud: Vec<String>,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id.
    pub jti: String,
    /// Session id.
    pub sid: String,
    /// User email.
    pub email: String,
    /// User name.
    pub name: String,
    /// Workspace id (absent when unscoped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wid: Option<String>,
    /// Workspace slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wslug: Option<String>,
    /// Role in the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrole: Option<WorkspaceRole>,
    /// Group ids in the workspace (at most `token_max_groups`).
    #[serde(default)]
    pub groups: Vec<String>,
    /// True when the user is in more groups than the token carries: ask Sentinel
    /// (ListGroups, Check) rather than reading `groups` as complete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub groups_truncated: bool,
    /// Sign-in time.
    pub auth_time: i64,
    /// Authentication methods.
    #[serde(default)]
    pub amr: Vec<String>,
    /// Always `access`.
    pub typ: String,
}

/// Claims of an authz token (docs/tokens.md): a user's rights in one workspace for one service,
/// accepted only together with that service's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthzClaims {
    /// Issuer.
    pub iss: String,
    /// Sentinel user id.
    pub sub: String,
    /// The service only.
    pub aud: Vec<String>,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id.
    pub jti: String,
    /// Subject at the identity provider.
    pub idp_sub: String,
    /// The service the token is for.
    pub svc: String,
    /// Workspace id.
    pub wid: String,
    /// Workspace slug.
    pub wslug: String,
    /// Role in the workspace.
    pub wrole: WorkspaceRole,
    /// The service's actions the user holds in the workspace, sorted (at most
    /// `token_max_actions`).
    pub actions: Vec<String>,
    /// True when the user holds more actions than the token carries: ask Sentinel
    /// (CheckAction, ListUserActions) rather than reading `actions` as complete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub actions_truncated: bool,
    /// Always `authz`.
    pub typ: String,
}

/// The validity window a token's claims state: `(nbf, exp)`, in seconds.
pub trait Lifetime {
    /// Not before, expires.
    fn window(&self) -> (i64, i64);
}

impl Lifetime for AccessClaims {
    fn window(&self) -> (i64, i64) {
        (self.nbf, self.exp)
    }
}

impl Lifetime for AuthzClaims {
    fn window(&self) -> (i64, i64) {
        (self.nbf, self.exp)
    }
}

/// Why a token was refused. Callers see one message whatever the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Over [`MAX_TOKEN_BYTES`].
    #[error("token too large")]
    TooLarge,
    /// Not a JWT, bad header, unknown or missing `kid`, algorithm mismatch.
    #[error("malformed token")]
    Malformed,
    /// Signature, issuer, audience, time or type check failed.
    #[error("invalid token")]
    Invalid,
}

/// Signs claims as a compact JWS with a parsed key (no re-parsing per token).
pub fn sign<C: Serialize>(key: &SigningKey, claims: &C) -> Result<String, SignError> {
    let header = serde_json::json!({ "alg": key.algorithm.as_str(), "typ": "JWT", "kid": key.kid });
    let mut message = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).map_err(|_| SignError)?);
    message.push('.');
    message.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).map_err(|_| SignError)?));
    let signature = key.sign(message.as_bytes())?;
    message.push('.');
    message.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(message)
}

/// A public key that verifies tokens with its `kid`.
pub struct VerificationKey {
    algorithm: Algorithm,
    key: DecodingKey,
    /// A retired key stops verifying at this instant (seconds), reload or not.
    not_after: Option<i64>,
}

impl VerificationKey {
    /// From a published JWK; `None` for an unsupported key.
    pub fn from_jwk(jwk: &Jwk, not_after: Option<i64>) -> Option<Self> {
        let (algorithm, key) = match jwk.alg.as_str() {
            "RS256" => (
                Algorithm::RS256,
                DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()?,
            ),
            "ES256" => (
                Algorithm::ES256,
                DecodingKey::from_ec_components(jwk.x.as_deref()?, jwk.y.as_deref()?).ok()?,
            ),
            "EdDSA" => (
                Algorithm::EdDSA,
                DecodingKey::from_ed_components(jwk.x.as_deref()?).ok()?,
            ),
            _ => return None,
        };
        Some(Self {
            algorithm,
            key,
            not_after,
        })
    }
}

type CacheKey = [u8; 32];

/// Verifies access tokens against the published keys; remembers verified tokens by hash, so a
/// repeated token costs a hash and a map lookup instead of a signature check.
pub struct Verifier {
    issuer: String,
    /// What "now" is for `exp` and `nbf` (the clock tokens are issued by).
    clock: Arc<dyn Clock>,
    keys: RwLock<Arc<HashMap<String, VerificationKey>>>,
    cache: RwLock<HashMap<CacheKey, Verified>>,
}

impl Verifier {
    /// A verifier for tokens of `issuer`, judging lifetimes by `clock`.
    pub fn new(issuer: String, clock: Arc<dyn Clock>) -> Self {
        Self {
            issuer,
            clock,
            keys: RwLock::new(Arc::new(HashMap::new())),
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Replaces the verification keys (after a key-ring reload). Cached tokens whose key left
    /// are forgotten.
    pub fn set_keys(&self, keys: HashMap<String, VerificationKey>) {
        let keys = Arc::new(keys);
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Whether a key with `kid` is known.
    pub fn knows(&self, kid: &str) -> bool {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(kid)
    }

    /// The `kid` of a token's header, if it parses.
    pub fn kid_of(token: &str) -> Option<String> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        jsonwebtoken::decode_header(token).ok()?.kid
    }

    /// Verifies signature, algorithm, `kid`, `iss`, `aud`, `exp`, `nbf` and `typ == "access"`.
    /// Revocation is checked by the caller.
    pub fn verify_access(&self, token: &str) -> Result<Arc<AccessClaims>, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::TooLarge);
        }
        let now = self.clock.now().timestamp();
        let hash: CacheKey = digest::digest(&digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .map_err(|_| VerifyError::Malformed)?;
        if let Some((claims, not_after)) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
        {
            let key_live = not_after.is_none_or(|at| now < at);
            if claims.exp + LEEWAY_SECS as i64 > now && key_live {
                return Ok(claims.clone());
            }
            if !key_live {
                return Err(VerifyError::Invalid);
            }
        }
        let (claims, not_after) = self.verify_uncached(token, now)?;
        let claims = Arc::new(claims);
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, (c, _)| c.exp + LEEWAY_SECS as i64 > now);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(hash, (claims.clone(), not_after));
        Ok(claims)
    }

    /// The full check without the cache (what a first sight of a token costs). Returns the
    /// claims and the instant the signing key retires, if it does.
    pub fn verify_uncached(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(AccessClaims, Option<i64>), VerifyError> {
        self.verify_typed::<AccessClaims>(token, now, AUDIENCE, |c| c.typ == "access")
    }

    /// Verifies an authz token (`typ == "authz"`) issued for `service` (its only audience);
    /// never cached: they are short-lived and only accepted together with their service's key.
    pub fn verify_authz(&self, token: &str, service: &str) -> Result<AuthzClaims, VerifyError> {
        let now = self.clock.now().timestamp();
        self.verify_typed::<AuthzClaims>(token, now, service, |c| c.typ == "authz")
            .map(|(claims, _)| claims)
    }

    fn verify_typed<C: serde::de::DeserializeOwned + Lifetime>(
        &self,
        token: &str,
        now: i64,
        audience: &str,
        type_ok: impl Fn(&C) -> bool,
    ) -> Result<(C, Option<i64>), VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::TooLarge);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        let kid = header.kid.ok_or(VerifyError::Malformed)?;
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner()).clone();
        let key = keys.get(&kid).ok_or(VerifyError::Malformed)?;
        // The algorithm is pinned to the key's, never taken from the token.
        if header.alg != key.algorithm {
            return Err(VerifyError::Malformed);
        }
        if key.not_after.is_some_and(|at| now >= at) {
            return Err(VerifyError::Invalid);
        }
        let mut validation = Validation::new(key.algorithm);
        // `exp` and `nbf` are weighed below against `now`, not the library's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<C>(token, &key.key, &validation)
            .map_err(|_| VerifyError::Invalid)?;
        let (not_before, expires) = data.claims.window();
        let leeway = LEEWAY_SECS as i64;
        if !type_ok(&data.claims) || expires + leeway <= now || not_before > now + leeway {
            return Err(VerifyError::Invalid);
        }
        Ok((data.claims, key.not_after))
    }
}
