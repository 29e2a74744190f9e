//! Key-encryption key: AES-256-GCM sealing of private keys at rest.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;

use crate::config::{Config, decode_kek};

/// Format byte in front of every sealed value, so the scheme can change later.
const VERSION: u8 = 1;

/// Why a value could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum KekError {
    /// The sealed value was made with another key, for another context, or is damaged.
    #[error("sealed value cannot be opened with this key-encryption key")]
    Open,
    /// The system random generator or the cipher failed.
    #[error("encryption failed")]
    Seal,
}

/// The key-encryption key. Its bytes never leave this type.
pub struct Kek {
    key: LessSafeKey,
    rng: SystemRandom,
    cache_mac: CacheMac,
}

/// Authenticates values kept in the shared cache (login state, one-time codes), so that write
/// access to Redis cannot forge them: an HMAC-SHA256 under a key derived from the KEK (so every
/// replica has it), over the cache key and the value.
#[derive(Clone)]
pub struct CacheMac {
    key: aws_lc_rs::hmac::Key,
}

/// Length of the tag in front of a protected value.
const TAG_LEN: usize = 32;

impl CacheMac {
    /// What the tag covers: the cache key (length-prefixed) and the value.
    fn message(cache_key: &str, value: &[u8]) -> Vec<u8> {
        let mut message = Vec::with_capacity(8 + cache_key.len() + value.len());
        message.extend_from_slice(&(cache_key.len() as u64).to_be_bytes());
        message.extend_from_slice(cache_key.as_bytes());
        message.extend_from_slice(value);
        message
    }

    /// `value` with its tag, bound to `cache_key`.
    pub fn protect(&self, cache_key: &str, value: &[u8]) -> Vec<u8> {
        let tag = aws_lc_rs::hmac::sign(&self.key, &Self::message(cache_key, value));
        let mut out = Vec::with_capacity(TAG_LEN + value.len());
        out.extend_from_slice(tag.as_ref());
        out.extend_from_slice(value);
        out
    }

    /// The value inside `stored` when its tag is right for `cache_key` (compared in constant
    /// time); `None` for a forged, moved or damaged value.
    pub fn open<'a>(&self, cache_key: &str, stored: &'a [u8]) -> Option<&'a [u8]> {
        if stored.len() < TAG_LEN {
            return None;
        }
        let (tag, value) = stored.split_at(TAG_LEN);
        aws_lc_rs::hmac::verify(&self.key, &Self::message(cache_key, value), tag)
            .ok()
            .map(|()| value)
    }
}

impl Kek {
    /// Wraps 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        // AES-256 accepts any 32-byte key, so this cannot fail.
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte AES-256 key");
        // A separate key for the cache MAC: HMAC(KEK, label), never the KEK itself.
        let derive = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, bytes);
        let derived = aws_lc_rs::hmac::sign(&derive, b"sentinel/cache-integrity/v1");
        Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
            cache_mac: CacheMac {
                key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, derived.as_ref()),
            },
        }
    }

    /// The MAC for values in the shared cache.
    pub fn cache_mac(&self) -> CacheMac {
        self.cache_mac.clone()
    }

    /// The configured key, or in embedded mode the one kept in `<data_dir>/kek` (created with
    /// mode 0600 on first start).
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        if let Some(text) = &config.kek {
            return Ok(Self::from_bytes(&decode_kek(text)?));
        }
        let path = config.data_dir.join("kek");
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let bytes = decode_kek(&text)
                .with_context(|| format!("{} does not hold a valid key", path.display()))?;
            return Ok(Self::from_bytes(&bytes));
        }
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| anyhow::anyhow!("system random generator failed"))?;
        write_secret_file(
            &path,
            &base64::engine::general_purpose::STANDARD.encode(bytes),
        )?;
        tracing::info!(path = %path.display(), "generated a key-encryption key");
        Ok(Self::from_bytes(&bytes))
    }

    /// Encrypts `plaintext`, binding it to `context` (e.g. the key id) so a sealed value cannot
    /// be moved to another row.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KekError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| KekError::Seal)?;
        let mut buffer = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut buffer,
            )
            .map_err(|_| KekError::Seal)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buffer.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buffer);
        Ok(out)
    }

    /// Decrypts what [`Kek::seal`] produced for the same `context`.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, KekError> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != VERSION {
            return Err(KekError::Open);
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[1..1 + NONCE_LEN])
            .map_err(|_| KekError::Open)?;
        let mut buffer = sealed[1 + NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut buffer)
            .map_err(|_| KekError::Open)?;
        Ok(plain.to_vec())
    }
}

/// Writes a file readable only by its owner, creating its directory.
fn write_secret_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_values_are_bound_to_their_key_and_kek() {
        let mac = Kek::from_bytes(&[7u8; 32]).cache_mac();
        let stored = mac.protect("login-code:abc", b"{\"user\":1}");
        assert_eq!(
            mac.open("login-code:abc", &stored),
            Some(&b"{\"user\":1}"[..])
        );
        // Moved to another key, altered, forged without the KEK, or cut short: refused.
        assert_eq!(mac.open("login-code:abd", &stored), None);
        let mut altered = stored.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(mac.open("login-code:abc", &altered), None);
        let other = Kek::from_bytes(&[8u8; 32]).cache_mac();
        assert_eq!(other.open("login-code:abc", &stored), None);
        assert_eq!(mac.open("login-code:abc", b"{\"user\":1}"), None);
    }

    #[test]
    fn seal_open_round_trip_and_context_binding() {
        let kek = Kek::from_bytes(&[3u8; 32]);
        let sealed = kek.seal(b"kid-1", b"private key bytes").unwrap();
        assert_ne!(&sealed[1 + NONCE_LEN..], b"private key bytes");
        assert_eq!(kek.open(b"kid-1", &sealed).unwrap(), b"private key bytes");
        assert!(kek.open(b"kid-2", &sealed).is_err());
        assert!(Kek::from_bytes(&[4u8; 32]).open(b"kid-1", &sealed).is_err());
        assert!(kek.open(b"kid-1", &sealed[..5]).is_err());
    }

    #[test]
    fn embedded_kek_is_created_once_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let first = Kek::from_config(&config).unwrap();
        let sealed = first.seal(b"x", b"y").unwrap();
        let second = Kek::from_config(&config).unwrap();
        assert_eq!(second.open(b"x", &sealed).unwrap(), b"y");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("kek"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
