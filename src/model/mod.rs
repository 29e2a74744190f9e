//! The domain's vocabulary: values parsed once at the edge and compared as types, not strings.

use std::fmt;

mod access;
mod caller;
pub mod change;
mod clock;
mod ids;
mod names;
pub mod records;
mod revision;
pub mod snapshot;

pub use access::{KeyStatus, Permission, Visibility, WorkspaceRole};
pub use caller::{Actor, Caller};
pub use change::Change;
pub use clock::{AdjustableClock, Clock, SystemClock, now};
pub use ids::{GroupId, RoleId, SessionId, UserId, WorkspaceId};
pub use names::{Description, DisplayName, ServiceName, is_control_or_format};
pub use records::{
    AuditFilter, AuditRow, ClientAppRow, GrantRow, GroupRow, IdentityRow, InvitationRow, MemberRow,
    ResourceRow, RevocationRow, RevokeScope, RoleRow, ServiceAppRow, SessionRow, UserRow,
    WorkspaceRow,
};
pub use revision::{ConsistencyToken, Revision};

/// A write's result and the revision it committed at.
#[derive(Debug, Clone, PartialEq)]
pub struct Written<T> {
    /// What the write returns.
    pub value: T,
    /// Its changelog revision (read-your-writes: pass it back as a consistency token).
    pub revision: Revision,
}

/// A read's result and the changelog revision it is at least as fresh as.
#[derive(Debug, Clone, PartialEq)]
pub struct Read<T> {
    /// What the read returns.
    pub value: T,
    /// The revision read before answering (a consistency token for later reads).
    pub revision: Revision,
}

/// JWS algorithm of a signing key, selectable per deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys (the default: every verifier supports it).
    #[default]
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl SigningAlgorithm {
    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::RS256 => "RS256",
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::EdDSA => "EdDSA",
        }
    }

    /// Parses a JWS `alg` name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(SigningAlgorithm::RS256),
            "ES256" => Some(SigningAlgorithm::ES256),
            "EdDSA" => Some(SigningAlgorithm::EdDSA),
            _ => None,
        }
    }
}

/// A value that failed to parse: the field it came from and what is wrong with it. Becomes
/// INVALID_ARGUMENT naming the field at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The request field.
    pub field: String,
    /// What is wrong, phrased to follow the field name.
    pub reason: String,
}

impl Invalid {
    fn new(field: &str, reason: &str) -> Invalid {
        Invalid {
            field: field.to_owned(),
            reason: reason.to_owned(),
        }
    }

    /// The same complaint about another field (a request that names the value differently).
    pub fn at(mut self, field: &str) -> Invalid {
        self.field = field.to_owned();
        self
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.reason)
    }
}

/// A workspace slug: 2-64 lowercase letters, digits or dashes, starting and ending with a letter
/// or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slug(String);

impl Slug {
    /// Checks `text` (field `slug`).
    pub fn parse(text: &str) -> Result<Slug, Invalid> {
        let bytes = text.as_bytes();
        let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let ok = (2..=64).contains(&bytes.len())
            && bytes.first().is_some_and(edge)
            && bytes.last().is_some_and(edge)
            && bytes.iter().all(|b| edge(b) || *b == b'-');
        if ok {
            Ok(Slug(text.to_owned()))
        } else {
            Err(Invalid::new(
                "slug",
                "must be 2-64 lowercase letters, digits or dashes, starting and ending with a letter or digit",
            ))
        }
    }

    /// A slug made of a display name: its ASCII letters and digits lowercased, every other
    /// run of characters one dash, at most 60 characters (room for a numeric suffix);
    /// "workspace" when the name has no ASCII letter or digit.
    pub fn derive(name: &str) -> Slug {
        let mut out = String::new();
        for c in name.chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
            } else if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
            if out.len() >= 60 {
                break;
            }
        }
        let out = out.trim_end_matches('-');
        Slug(match out.len() {
            0 => "workspace".to_owned(),
            1 => format!("{out}-workspace"),
            _ => out.to_owned(),
        })
    }

    /// This slug with `-n` appended (a derived slug that was taken).
    pub fn suffixed(&self, n: u32) -> Slug {
        Slug(format!("{}-{n}", self.0))
    }

    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The slug as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// An email address, trimmed and lowercased: one `@`, a dot in the domain, at most 254 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Checks and normalises `text` (field `email`).
    pub fn parse(text: &str) -> Result<Email, Invalid> {
        let email = text.trim().to_ascii_lowercase();
        let valid = email.len() <= 254
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.contains('@')
            });
        if valid {
            Ok(Email(email))
        } else {
            Err(Invalid::new("email", "is not an email address"))
        }
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normalised address as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_emails_parse_at_the_edge() {
        for good in ["ab", "acme-1", "a1", "0-9", &"a".repeat(64)] {
            assert_eq!(Slug::parse(good).unwrap().as_str(), good);
        }
        for bad in ["a", "-ab", "ab-", "Acme", "a_b", "a b", "", &"a".repeat(65)] {
            assert_eq!(Slug::parse(bad).unwrap_err().field, "slug", "{bad:?}");
        }
        assert_eq!(
            Email::parse(" Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        for bad in ["", "ann", "@example.com", "ann@example", "a@b@c.d"] {
            assert_eq!(Email::parse(bad).unwrap_err().field, "email", "{bad:?}");
        }
        assert_eq!(
            Email::parse("x").unwrap_err().at("user_email").field,
            "user_email"
        );
    }

    #[test]
    fn slugs_derived_from_names_are_valid_slugs() {
        for (name, slug) in [
            ("Acme Research", "acme-research"),
            ("  R&D -- 2026!  ", "r-d-2026"),
            ("Élan Vital", "lan-vital"),
            ("日本", "workspace"),
            ("X", "x-workspace"),
        ] {
            assert_eq!(Slug::derive(name).as_str(), slug, "{name:?}");
        }
        for name in [
            "a".repeat(200),
            "-".repeat(70),
            format!("{}!", "ab-".repeat(40)),
        ] {
            let derived = Slug::derive(&name);
            assert!(Slug::parse(derived.as_str()).is_ok(), "{derived:?}");
            assert!(Slug::parse(derived.suffixed(99).as_str()).is_ok());
        }
    }
}
