//! Signing keys: generation (RS256, ES256, EdDSA), RFC 7638 key ids, the JWKS document and the
//! in-memory key ring with its rotation schedule.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::jwt::{VerificationKey, Verifier};
use super::kek::Kek;
use crate::model::Clock;
use crate::store::{KeyStatus, KeyStore, NewSigningKey, SigningKeyRow, StoreError};

/// What [`KeyRing::retire_now`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireOutcome {
    /// The key no longer verifies anywhere (after each replica's next reload).
    Retired,
    /// The key is active or pending: rotate it away first.
    InUse,
    /// No key has that kid.
    Unknown,
}

/// Why the key ring could not be loaded or changed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored private key cannot be decrypted: the configured key-encryption key is not the one
    /// that sealed it.
    #[error(
        "signing key {kid} cannot be decrypted: the key-encryption key (SENTINEL_KEK or \
         <data_dir>/kek) differs from the one it was sealed with"
    )]
    WrongKek {
        /// The key that failed.
        kid: String,
    },
    /// Key material in the database is malformed.
    #[error("signing key {kid} is malformed")]
    Malformed {
        /// The key that failed.
        kid: String,
    },
    /// Key generation failed.
    #[error("signing key generation failed")]
    Generation,
    /// No active key exists even after creating one (should not happen).
    #[error("no active signing key")]
    NoActiveKey,
}

pub use crate::model::SigningAlgorithm;

/// A public key in JWK form (RFC 7517).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// Key id: the RFC 7638 thumbprint.
    pub kid: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// JWS algorithm.
    pub alg: String,
    /// RSA modulus, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Curve (`P-256`, `Ed25519`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Curve x coordinate or Ed25519 public key, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Curve y coordinate, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

impl Jwk {
    fn new(kty: &str, alg: SigningAlgorithm) -> Self {
        Self {
            kty: kty.into(),
            kid: String::new(),
            use_: "sig".into(),
            alg: alg.as_str().into(),
            n: None,
            e: None,
            crv: None,
            x: None,
            y: None,
        }
    }

    /// RFC 7638 thumbprint: SHA-256 over the required members in lexical order.
    pub fn thumbprint(&self) -> String {
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        let canonical = match self.kty.as_str() {
            "RSA" => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                s(&self.e),
                s(&self.n)
            ),
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                s(&self.crv),
                s(&self.x),
                s(&self.y)
            ),
            _ => format!(
                r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
                s(&self.crv),
                s(&self.x)
            ),
        };
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
    }
}

/// The JWKS document served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// Every published key: the active one first, then a pending one, then retiring ones.
    pub keys: Vec<Jwk>,
}

/// Parsed private key material.
pub enum KeyMaterial {
    /// RSA key pair.
    Rsa(RsaKeyPair),
    /// ECDSA P-256 key pair.
    Ec(EcdsaKeyPair),
    /// Ed25519 key pair.
    Ed(Ed25519KeyPair),
}

/// A private signing key, parsed once and shared.
#[derive(Clone)]
pub struct SigningKey {
    /// Its key id.
    pub kid: String,
    /// JWS algorithm.
    pub algorithm: SigningAlgorithm,
    material: Arc<KeyMaterial>,
}

/// Signing failed (a broken key or random generator).
#[derive(Debug, thiserror::Error)]
#[error("token signing failed")]
pub struct SignError;

impl SigningKey {
    /// The JWS signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match self.material.as_ref() {
            KeyMaterial::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .map_err(|_| SignError)?;
                Ok(signature)
            }
            KeyMaterial::Ec(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignError),
            KeyMaterial::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

/// Generates a key of `algorithm`, sealed for storage.
pub fn generate(
    algorithm: SigningAlgorithm,
    kek: &Kek,
) -> Result<(NewSigningKey, SigningKey), KeyError> {
    let fail = |_| KeyError::Generation;
    let (mut jwk, pkcs8, material) = match algorithm {
        SigningAlgorithm::RS256 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(fail)?;
            let public = pair.public_key();
            let mut jwk = Jwk::new("RSA", algorithm);
            jwk.n =
                Some(URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()));
            jwk.e =
                Some(URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()));
            let der = pair.as_der().map_err(fail)?.as_ref().to_vec();
            (jwk, der, KeyMaterial::Rsa(pair))
        }
        SigningAlgorithm::ES256 => {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(fail)?;
            // Uncompressed point: 0x04 || x (32) || y (32).
            let point = pair.public_key().as_ref();
            if point.len() != 65 {
                return Err(KeyError::Generation);
            }
            let mut jwk = Jwk::new("EC", algorithm);
            jwk.crv = Some("P-256".into());
            jwk.x = Some(URL_SAFE_NO_PAD.encode(&point[1..33]));
            jwk.y = Some(URL_SAFE_NO_PAD.encode(&point[33..65]));
            let der = pair.to_pkcs8v1().map_err(fail)?.as_ref().to_vec();
            (jwk, der, KeyMaterial::Ec(pair))
        }
        SigningAlgorithm::EdDSA => {
            let pair = Ed25519KeyPair::generate().map_err(fail)?;
            let mut jwk = Jwk::new("OKP", algorithm);
            jwk.crv = Some("Ed25519".into());
            jwk.x = Some(URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()));
            let der = pair.to_pkcs8v1().map_err(fail)?.as_ref().to_vec();
            (jwk, der, KeyMaterial::Ed(pair))
        }
    };
    jwk.kid = jwk.thumbprint();
    let sealed = kek
        .seal(jwk.kid.as_bytes(), &pkcs8)
        .map_err(|_| KeyError::Generation)?;
    let public_jwk = serde_json::to_string(&jwk).map_err(|_| KeyError::Generation)?;
    let new = NewSigningKey {
        kid: jwk.kid.clone(),
        algorithm: algorithm.as_str().into(),
        public_jwk,
        private_key_encrypted: sealed,
        created_at: crate::model::now(),
    };
    let key = SigningKey {
        kid: jwk.kid,
        algorithm,
        material: Arc::new(material),
    };
    Ok((new, key))
}

fn open_key(kek: &Kek, row: &SigningKeyRow) -> Result<SigningKey, KeyError> {
    let malformed = || KeyError::Malformed {
        kid: row.kid.clone(),
    };
    let der = kek
        .open(row.kid.as_bytes(), &row.private_key_encrypted)
        .map_err(|_| KeyError::WrongKek {
            kid: row.kid.clone(),
        })?;
    let algorithm = SigningAlgorithm::parse(&row.algorithm).ok_or_else(malformed)?;
    let material = match algorithm {
        SigningAlgorithm::RS256 => {
            KeyMaterial::Rsa(RsaKeyPair::from_pkcs8(&der).map_err(|_| malformed())?)
        }
        SigningAlgorithm::ES256 => KeyMaterial::Ec(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                .map_err(|_| malformed())?,
        ),
        SigningAlgorithm::EdDSA => {
            KeyMaterial::Ed(Ed25519KeyPair::from_pkcs8(&der).map_err(|_| malformed())?)
        }
    };
    Ok(SigningKey {
        kid: row.kid.clone(),
        algorithm,
        material: Arc::new(material),
    })
}

struct RingState {
    active: SigningKey,
    jwks: Jwks,
    jwks_json: Arc<str>,
    /// Keys with a retirement instant (seconds): they stop verifying then.
    retire: HashMap<String, i64>,
    /// When the pending key starts signing, if one waits.
    next_activation: Option<DateTime<Utc>>,
}

/// The keys this process signs with and publishes, loaded from the store.
pub struct KeyRing {
    store: Arc<dyn KeyStore>,
    kek: Kek,
    algorithm: SigningAlgorithm,
    state: RwLock<Arc<RingState>>,
    verifier: Arc<Verifier>,
    last_reload: Mutex<Option<Instant>>,
    /// Held across a reload's read and publish, so reloads finish in the order they read: one
    /// that read before a change (a retirement) cannot publish after one that read after it.
    reloading: tokio::sync::Mutex<()>,
    /// Signalled after every reload, so the reload task re-plans its next wake-up.
    reloaded: tokio::sync::Notify,
    /// What "now" is for activations, retirements and token lifetimes.
    clock: Arc<dyn Clock>,
}

impl KeyRing {
    /// Loads the key ring, creating the first signing key (of `algorithm`) when the store has
    /// none. Concurrent first starts against one database converge on a single active key.
    /// Activations, retirements and token lifetimes are judged by `clock`.
    pub async fn initialize(
        store: Arc<dyn KeyStore>,
        kek: Kek,
        issuer: String,
        algorithm: SigningAlgorithm,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, KeyError> {
        if store.active_key().await?.is_none() {
            let (new, _) = generate(algorithm, &kek)?;
            if store.insert_key_if_none_active(&new).await? {
                tracing::info!(kid = %new.kid, alg = algorithm.as_str(), "created the first signing key");
            }
        }
        let state = load_state(store.as_ref(), &kek, clock.now()).await?;
        let verifier = Arc::new(Verifier::new(issuer, clock.clone()));
        verifier.set_keys(verification_keys(&state));
        Ok(Self {
            store,
            kek,
            algorithm,
            state: RwLock::new(Arc::new(state)),
            verifier,
            last_reload: Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
            reloaded: tokio::sync::Notify::new(),
            clock,
        })
    }

    /// The verifier of tokens signed by the published keys.
    pub fn verifier(&self) -> Arc<Verifier> {
        self.verifier.clone()
    }

    /// The algorithm new keys get by default.
    pub fn default_algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// Schedules a new key: published at once, signing after `publish_delay` (so verifiers that
    /// cache the JWKS learn it first), while the current key keeps verifying until `overlap`
    /// after the switch. With a zero delay the switch happens now. Returns the new key and when
    /// it signs.
    pub async fn rotate(
        &self,
        algorithm: SigningAlgorithm,
        publish_delay: Duration,
        overlap: Duration,
    ) -> Result<(SigningKey, DateTime<Utc>), KeyError> {
        let to_chrono =
            |d: Duration| chrono::Duration::from_std(d).map_err(|_| KeyError::Generation);
        let activate_at = self.clock.now() + to_chrono(publish_delay)?;
        let retire_at = activate_at + to_chrono(overlap)?;
        let (new, key) = generate(algorithm, &self.kek)?;
        let mut attempts = 0;
        loop {
            match self.store.schedule_key(&new, activate_at, retire_at).await {
                Ok(()) => break,
                // A concurrent rotation committed first: this one replaces its pending key.
                Err(StoreError::Conflict(_)) if attempts < 3 => attempts += 1,
                Err(err) => return Err(err.into()),
            }
        }
        tracing::info!(kid = %key.kid, alg = algorithm.as_str(), %activate_at, "signing key scheduled");
        self.reload().await?;
        Ok((key, activate_at))
    }

    /// Ends a retired or retiring key at once (key compromise): it leaves the JWKS and stops
    /// verifying, its private key material is deleted, and tokens it signed are refused from
    /// the next reload on (this process: now). The active or a pending key cannot be retired:
    /// rotate it away first (`--immediate`).
    pub async fn retire_now(&self, kid: &str) -> Result<RetireOutcome, KeyError> {
        let outcome = match self.store.retire_key_now(kid, self.clock.now()).await? {
            None => RetireOutcome::Unknown,
            Some(KeyStatus::Retired) => RetireOutcome::Retired,
            Some(KeyStatus::Active) | Some(KeyStatus::Pending) => RetireOutcome::InUse,
        };
        if outcome == RetireOutcome::Retired {
            tracing::warn!(%kid, "signing key retired at once");
            self.reload().await?;
        }
        Ok(outcome)
    }

    /// Reloads unless a reload happened within the last second (a flood of tokens with an
    /// unknown `kid` must not become a flood of queries).
    pub async fn reload_if_stale(&self) -> Result<(), KeyError> {
        {
            let mut last = self.last_reload.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        self.reload().await
    }

    /// Re-reads keys from the store, first activating a pending key whose time has come.
    pub async fn reload(&self) -> Result<(), KeyError> {
        let _serial = self.reloading.lock().await;
        let state = load_state(self.store.as_ref(), &self.kek, self.clock.now()).await?;
        let current = self.current();
        if state.jwks != current.jwks || state.retire != current.retire {
            self.verifier.set_keys(verification_keys(&state));
        }
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(state);
        self.reloaded.notify_waiters();
        Ok(())
    }

    /// Completes at the next reload.
    pub async fn reloaded(&self) {
        self.reloaded.notified().await;
    }

    fn current(&self) -> Arc<RingState> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The key new tokens are signed with.
    pub fn active(&self) -> SigningKey {
        self.current().active.clone()
    }

    /// When a pending key starts signing, if one waits.
    pub fn next_activation(&self) -> Option<DateTime<Utc>> {
        self.current().next_activation
    }

    /// How long until a pending key starts signing, if one waits and its time is ahead.
    pub fn until_activation(&self) -> Option<Duration> {
        self.next_activation()
            .and_then(|at| (at - self.clock.now()).to_std().ok())
    }

    /// The published keys.
    pub fn jwks(&self) -> Jwks {
        self.current().jwks.clone()
    }

    /// The published keys as a ready JSON document.
    pub fn jwks_json(&self) -> Arc<str> {
        self.current().jwks_json.clone()
    }

    /// Keys scheduled to stop verifying, with their algorithm and that instant (newest first).
    pub fn retiring(&self) -> Vec<(String, String, i64)> {
        let state = self.current();
        let mut out: Vec<_> = state
            .jwks
            .keys
            .iter()
            .filter_map(|k| {
                state
                    .retire
                    .get(&k.kid)
                    .map(|at| (k.kid.clone(), k.alg.clone(), *at))
            })
            .collect();
        out.sort_by_key(|(_, _, at)| std::cmp::Reverse(*at));
        out
    }
}

fn verification_keys(state: &RingState) -> HashMap<String, VerificationKey> {
    state
        .jwks
        .keys
        .iter()
        .filter_map(|jwk| {
            VerificationKey::from_jwk(jwk, state.retire.get(&jwk.kid).copied())
                .map(|key| (jwk.kid.clone(), key))
        })
        .collect()
}

async fn load_state(
    store: &dyn KeyStore,
    kek: &Kek,
    now: DateTime<Utc>,
) -> Result<RingState, KeyError> {
    store.activate_due_key(now).await?;
    let active_row = store.active_key().await?.ok_or(KeyError::NoActiveKey)?;
    let active = open_key(kek, &active_row)?;
    let mut keys = Vec::new();
    let mut retire = HashMap::new();
    let mut next_activation = None;
    for row in store.published_keys(now).await? {
        let jwk: Jwk = serde_json::from_str(&row.public_jwk).map_err(|_| KeyError::Malformed {
            kid: row.kid.clone(),
        })?;
        if let Some(at) = row.retire_at {
            retire.insert(row.kid.clone(), at.timestamp());
        }
        if row.status == KeyStatus::Pending {
            next_activation = row.activate_at;
        }
        let rank = match row.status {
            KeyStatus::Active => 0,
            KeyStatus::Pending => 1,
            KeyStatus::Retired => 2,
        };
        keys.push((rank, jwk));
    }
    // Stable: within a rank the store's newest-first order stays.
    keys.sort_by_key(|(rank, _)| *rank);
    let jwks = Jwks {
        keys: keys.into_iter().map(|(_, jwk)| jwk).collect(),
    };
    let jwks_json: Arc<str> = serde_json::to_string(&jwks)
        .map_err(|_| KeyError::Malformed {
            kid: active.kid.clone(),
        })?
        .into();
    Ok(RingState {
        active,
        jwks,
        jwks_json,
        retire,
        next_activation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 §3.1.
        let mut jwk = Jwk::new("RSA", SigningAlgorithm::RS256);
        jwk.n = Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into());
        jwk.e = Some("AQAB".into());
        assert_eq!(
            jwk.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn every_algorithm_round_trips_through_the_kek_and_signs() {
        let kek = Kek::from_bytes(&[9u8; 32]);
        for algorithm in [
            SigningAlgorithm::RS256,
            SigningAlgorithm::ES256,
            SigningAlgorithm::EdDSA,
        ] {
            let (new, key) = generate(algorithm, &kek).unwrap();
            let row = SigningKeyRow {
                kid: new.kid.clone(),
                algorithm: new.algorithm.clone(),
                public_jwk: new.public_jwk.clone(),
                private_key_encrypted: new.private_key_encrypted.clone(),
                status: KeyStatus::Active,
                created_at: new.created_at,
                activate_at: None,
                retire_at: None,
            };
            let opened = open_key(&kek, &row).unwrap();
            assert_eq!(opened.kid, key.kid);
            assert!(!opened.sign(b"message").unwrap().is_empty());
            let jwk: Jwk = serde_json::from_str(&new.public_jwk).unwrap();
            assert_eq!(jwk.thumbprint(), new.kid);
            assert_eq!(jwk.alg, algorithm.as_str());
            assert!(matches!(
                open_key(&Kek::from_bytes(&[1u8; 32]), &row),
                Err(KeyError::WrongKek { .. })
            ));
        }
    }
}
