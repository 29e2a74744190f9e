//! How many tokens this process has issued, by kind; the metrics read them on each scrape.

use std::sync::atomic::{AtomicU64, Ordering};

/// A kind of token Sentinel signs or mints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An access token (JWT).
    Access,
    /// A refresh token (opaque; a new session or a rotation).
    Refresh,
    /// An authz token (JWT for one service).
    Authz,
}

impl TokenKind {
    /// Every kind, in the order [`Issued::counts`] reports them.
    pub const ALL: [TokenKind; 3] = [TokenKind::Access, TokenKind::Refresh, TokenKind::Authz];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
            TokenKind::Authz => "authz",
        }
    }
}

/// Counters of issued tokens.
#[derive(Debug, Default)]
pub struct Issued([AtomicU64; 3]);

impl Issued {
    /// Counts one issued token.
    pub fn count(&self, kind: TokenKind) {
        self.0[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Tokens issued so far, by kind.
    pub fn counts(&self) -> [(TokenKind, u64); 3] {
        TokenKind::ALL.map(|kind| (kind, self.0[kind as usize].load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind() {
        let issued = Issued::default();
        issued.count(TokenKind::Access);
        issued.count(TokenKind::Access);
        issued.count(TokenKind::Authz);
        assert_eq!(
            issued.counts(),
            [
                (TokenKind::Access, 2),
                (TokenKind::Refresh, 0),
                (TokenKind::Authz, 1)
            ]
        );
    }
}
