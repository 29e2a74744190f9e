//! Signing keys: generation, RFC 7638 key ids, the JWKS document and the in-memory key ring.

use std::sync::{Arc, RwLock};

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::jwt::{VerificationKey, Verifier};
use super::kek::Kek;
use crate::store::{NewSigningKey, SigningKeyRow, Store, StoreError};

/// Why the key ring could not be loaded.
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

/// A public key in JWK form (RFC 7517).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `RSA`.
    pub kty: String,
    /// Key id: the RFC 7638 thumbprint.
    pub kid: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// JWS algorithm.
    pub alg: String,
    /// RSA modulus, base64url.
    pub n: String,
    /// RSA public exponent, base64url.
    pub e: String,
}

/// The JWKS document served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// Every published key, the active one first.
    pub keys: Vec<Jwk>,
}

/// RFC 7638 thumbprint of an RSA key: SHA-256 over the required members in lexical order.
pub fn rsa_thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
}

/// A private signing key, parsed once and shared.
#[derive(Clone)]
pub struct SigningKey {
    /// Its key id.
    pub kid: String,
    /// JWS algorithm.
    pub algorithm: String,
    /// The parsed key pair.
    pub key_pair: Arc<RsaKeyPair>,
}

/// Generates an RS256 (RSA 2048) key, sealed for storage.
pub fn generate_rs256(kek: &Kek) -> Result<(NewSigningKey, SigningKey), KeyError> {
    let key_pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generation)?;
    let public = key_pair.public_key();
    let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
    let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
    let kid = rsa_thumbprint(&n, &e);
    let jwk = Jwk {
        kty: "RSA".into(),
        kid: kid.clone(),
        use_: "sig".into(),
        alg: "RS256".into(),
        n,
        e,
    };
    let der = key_pair.as_der().map_err(|_| KeyError::Generation)?;
    let sealed = kek
        .seal(kid.as_bytes(), der.as_ref())
        .map_err(|_| KeyError::Generation)?;
    let public_jwk = serde_json::to_string(&jwk).map_err(|_| KeyError::Generation)?;
    let new = NewSigningKey {
        kid: kid.clone(),
        algorithm: "RS256".into(),
        public_jwk,
        private_key_encrypted: sealed,
        created_at: Utc::now(),
    };
    Ok((
        new,
        SigningKey {
            kid,
            algorithm: "RS256".into(),
            key_pair: Arc::new(key_pair),
        },
    ))
}

fn open_key(kek: &Kek, row: &SigningKeyRow) -> Result<SigningKey, KeyError> {
    let der = kek
        .open(row.kid.as_bytes(), &row.private_key_encrypted)
        .map_err(|_| KeyError::WrongKek {
            kid: row.kid.clone(),
        })?;
    let key_pair = RsaKeyPair::from_pkcs8(&der).map_err(|_| KeyError::Malformed {
        kid: row.kid.clone(),
    })?;
    Ok(SigningKey {
        kid: row.kid.clone(),
        algorithm: row.algorithm.clone(),
        key_pair: Arc::new(key_pair),
    })
}

struct RingState {
    active: SigningKey,
    jwks: Jwks,
    jwks_json: Arc<str>,
    /// Retired keys → when they stop verifying.
    retire: std::collections::HashMap<String, i64>,
}

/// The keys this process signs with and publishes, loaded from the store.
pub struct KeyRing {
    store: Arc<dyn Store>,
    kek: Kek,
    state: RwLock<Arc<RingState>>,
    verifier: Arc<Verifier>,
    last_reload: std::sync::Mutex<Option<std::time::Instant>>,
}

impl KeyRing {
    /// Loads the key ring, creating the first signing key when the store has none. Concurrent
    /// first starts against one database converge on a single active key.
    pub async fn initialize(
        store: Arc<dyn Store>,
        kek: Kek,
        issuer: String,
    ) -> Result<Self, KeyError> {
        if store.active_key().await?.is_none() {
            let (new, _) = generate_rs256(&kek)?;
            if store.insert_key_if_none_active(&new).await? {
                tracing::info!(kid = %new.kid, "created the first signing key");
            }
        }
        let state = load_state(store.as_ref(), &kek).await?;
        let verifier = Arc::new(Verifier::new(issuer));
        verifier.set_keys(verification_keys(&state));
        Ok(Self {
            store,
            kek,
            state: RwLock::new(Arc::new(state)),
            verifier,
            last_reload: std::sync::Mutex::new(None),
        })
    }

    /// The verifier of tokens signed by the published keys.
    pub fn verifier(&self) -> Arc<Verifier> {
        self.verifier.clone()
    }

    /// Reloads unless a reload happened within the last second (a flood of tokens with an
    /// unknown `kid` must not become a flood of queries).
    pub async fn reload_if_stale(&self) -> Result<(), KeyError> {
        {
            let mut last = self.last_reload.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(1)) {
                return Ok(());
            }
            *last = Some(std::time::Instant::now());
        }
        self.reload().await
    }

    /// Makes a new key active; the previous one stays published (and verifying) for `overlap`.
    /// Of concurrent rotations each succeeds in turn; one key is active afterwards.
    pub async fn rotate(&self, overlap: std::time::Duration) -> Result<SigningKey, KeyError> {
        let retire_at =
            Utc::now() + chrono::Duration::from_std(overlap).map_err(|_| KeyError::Generation)?;
        let (new, key) = generate_rs256(&self.kek)?;
        let mut attempts = 0;
        loop {
            match self.store.rotate_key(&new, retire_at).await {
                Ok(()) => break,
                // A concurrent rotation committed first: retire its key in turn.
                Err(StoreError::Conflict(_)) if attempts < 3 => attempts += 1,
                Err(err) => return Err(err.into()),
            }
        }
        tracing::info!(kid = %key.kid, ?overlap, "signing key rotated");
        self.reload().await?;
        Ok(key)
    }

    /// Retired keys still published, with the instant each stops verifying.
    pub fn retiring(&self) -> Vec<(String, String, i64)> {
        let state = self.current();
        let mut out: Vec<_> = state
            .retire
            .iter()
            .filter_map(|(kid, at)| {
                state
                    .jwks
                    .keys
                    .iter()
                    .find(|k| &k.kid == kid)
                    .map(|k| (kid.clone(), k.alg.clone(), *at))
            })
            .collect();
        out.sort_by_key(|(_, _, at)| std::cmp::Reverse(*at));
        out
    }

    /// Re-reads keys from the store (after a rotation anywhere in the cluster).
    pub async fn reload(&self) -> Result<(), KeyError> {
        let state = load_state(self.store.as_ref(), &self.kek).await?;
        if state.jwks != self.current().jwks {
            self.verifier.set_keys(verification_keys(&state));
        }
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(state);
        Ok(())
    }

    fn current(&self) -> Arc<RingState> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The key new tokens are signed with.
    pub fn active(&self) -> SigningKey {
        self.current().active.clone()
    }

    /// The published keys.
    pub fn jwks(&self) -> Jwks {
        self.current().jwks.clone()
    }

    /// The published keys as a ready JSON document.
    pub fn jwks_json(&self) -> Arc<str> {
        self.current().jwks_json.clone()
    }
}

fn verification_keys(state: &RingState) -> std::collections::HashMap<String, VerificationKey> {
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

async fn load_state(store: &dyn Store, kek: &Kek) -> Result<RingState, KeyError> {
    let active_row = store.active_key().await?.ok_or(KeyError::NoActiveKey)?;
    let active = open_key(kek, &active_row)?;
    let mut keys = Vec::new();
    let mut retire = std::collections::HashMap::new();
    for row in store.published_keys(Utc::now()).await? {
        if let Some(at) = row.retire_at {
            retire.insert(row.kid.clone(), at.timestamp());
        }
        let jwk: Jwk = serde_json::from_str(&row.public_jwk).map_err(|_| KeyError::Malformed {
            kid: row.kid.clone(),
        })?;
        keys.push(jwk);
    }
    // The active key first: clients that take the first key get the right one.
    keys.sort_by_key(|k| k.kid != active.kid);
    let jwks = Jwks { keys };
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            rsa_thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn generated_key_round_trips_through_the_kek() {
        let kek = Kek::from_bytes(&[9u8; 32]);
        let (new, key) = generate_rs256(&kek).unwrap();
        let row = SigningKeyRow {
            kid: new.kid.clone(),
            algorithm: new.algorithm.clone(),
            public_jwk: new.public_jwk.clone(),
            private_key_encrypted: new.private_key_encrypted.clone(),
            status: crate::store::KeyStatus::Active,
            created_at: new.created_at,
            retire_at: None,
        };
        let opened = open_key(&kek, &row).unwrap();
        assert_eq!(opened.kid, key.kid);
        let jwk: Jwk = serde_json::from_str(&new.public_jwk).unwrap();
        assert_eq!(rsa_thumbprint(&jwk.n, &jwk.e), new.kid);
        assert!(matches!(
            open_key(&Kek::from_bytes(&[1u8; 32]), &row),
            Err(KeyError::WrongKek { .. })
        ));
    }
}
