//! Token lifetimes and the refresh replay rule.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Lifetimes and policy.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    /// `iss` of every token.
    pub issuer: String,
    /// Access-token lifetime.
    pub access_ttl: Duration,
    /// Authz-token lifetime.
    pub authz_ttl: Duration,
    /// Session lifetime.
    pub refresh_ttl: Duration,
    /// Replay window of a rotated refresh token.
    pub reuse_grace: Duration,
    /// Group ids an access token carries at most (`groups_truncated` says when there are more).
    pub max_groups: usize,
    /// Actions an authz token carries at most (`actions_truncated` says when there are more).
    pub max_actions: usize,
    /// How far behind the revocation log may be before tokens are refused (UNAVAILABLE).
    pub max_staleness: Duration,
}

impl TokenPolicy {
    /// Whether a refresh token rotated at `rotated_at` may be presented again at `now`: a
    /// client retrying a refresh whose answer it lost. Later, the replay is a reuse and ends
    /// the session. A rotation time in the future (clock skew between replicas) is tolerated.
    pub fn tolerates_replay(&self, rotated_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        (now - rotated_at).to_std().unwrap_or_default() <= self.reuse_grace
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(grace_secs: u64) -> TokenPolicy {
        TokenPolicy {
            issuer: "https://sentinel.test".into(),
            access_ttl: Duration::from_secs(900),
            authz_ttl: Duration::from_secs(300),
            refresh_ttl: Duration::from_secs(86_400),
            reuse_grace: Duration::from_secs(grace_secs),
            max_groups: 10,
            max_actions: 10,
            max_staleness: Duration::from_secs(30),
        }
    }

    #[test]
    fn a_replay_is_tolerated_up_to_the_grace_and_is_reuse_after() {
        let rotated = crate::model::now();
        let p = policy(5);
        assert!(p.tolerates_replay(rotated, rotated));
        assert!(p.tolerates_replay(rotated, rotated + chrono::Duration::seconds(5)));
        assert!(!p.tolerates_replay(rotated, rotated + chrono::Duration::milliseconds(5_001)));
        // A rotation stamped ahead of this replica's clock is not reuse.
        assert!(p.tolerates_replay(rotated, rotated - chrono::Duration::seconds(2)));
    }

    #[test]
    fn no_grace_makes_every_replay_a_reuse() {
        let rotated = crate::model::now();
        let p = policy(0);
        assert!(p.tolerates_replay(rotated, rotated));
        assert!(!p.tolerates_replay(rotated, rotated + chrono::Duration::milliseconds(1)));
    }
}
