//! The in-memory revocation set every verifier consults, kept current from the SQL revocation
//! log: polled twice a second and nudged through the cache's pub/sub, so a revocation anywhere
//! in the cluster is enforced everywhere within a second even when Redis is down.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use uuid::Uuid;

use super::jwt::AccessClaims;
use crate::cache::Cache;
use crate::store::{RevocationRow, Store};

/// Pub/sub channel that carries "the revocation log grew" nudges.
pub const CHANNEL: &str = "revocations";
/// Fallback polling period.
const POLL: Duration = Duration::from_millis(500);
/// Log entries read per query.
const BATCH: i64 = 1000;

#[derive(Default)]
struct State {
    /// Revoked sessions → when their tokens have all expired.
    sessions: HashMap<Uuid, i64>,
    /// Users → (tokens issued at or before this instant are revoked, entry expiry).
    users: HashMap<Uuid, (i64, i64)>,
    revision: i64,
}

impl State {
    fn insert(&mut self, row: &RevocationRow) {
        let expires = row.expires_at.timestamp();
        match row.session_id {
            Some(session) => {
                self.sessions.insert(session, expires);
            }
            None => {
                let revoked_at = row.revoked_at.timestamp();
                let entry = self
                    .users
                    .entry(row.user_id)
                    .or_insert((revoked_at, expires));
                *entry = (entry.0.max(revoked_at), entry.1.max(expires));
            }
        }
    }
}

/// Revoked sessions and users, as of `revision()` of the log.
#[derive(Default)]
pub struct RevocationSet {
    state: RwLock<State>,
}

impl RevocationSet {
    /// Applies log entries (idempotent; entries at or below the current revision are skipped).
    pub fn apply(&self, rows: &[RevocationRow]) {
        let now = Utc::now().timestamp();
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        for row in rows {
            if row.revision <= state.revision {
                continue;
            }
            state.revision = row.revision;
            if row.expires_at.timestamp() > now {
                state.insert(row);
            }
        }
    }

    /// Enforces entries this process just wrote, without moving the log cursor: entries of
    /// other writers below them may still be unread.
    pub fn apply_local(&self, rows: &[RevocationRow]) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        for row in rows {
            state.insert(row);
        }
    }

    /// Whether the access token's session was revoked. (Access tokens always carry a session;
    /// user-wide revocations revoke every session of the user, so the session check is exact,
    /// where an `iat` comparison would also catch a sign-in in the same second.)
    pub fn is_revoked(&self, claims: &AccessClaims) -> bool {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        Uuid::parse_str(&claims.sid).map_or(true, |sid| state.sessions.contains_key(&sid))
    }

    /// Whether a token without a session (an authz token) of `user`, issued at `iat`, falls
    /// under a user-wide revocation.
    pub fn is_user_revoked(&self, user: Uuid, iat: i64) -> bool {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state
            .users
            .get(&user)
            .is_some_and(|(revoked_at, _)| iat <= *revoked_at)
    }

    /// The last log revision applied.
    pub fn revision(&self) -> i64 {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .revision
    }

    fn purge_expired(&self) {
        let now = Utc::now().timestamp();
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.sessions.retain(|_, expires| *expires > now);
        state.users.retain(|_, (_, expires)| *expires > now);
    }

    /// Reads every log entry after the current revision.
    pub async fn catch_up(&self, store: &dyn Store) -> Result<(), crate::store::StoreError> {
        loop {
            let rows = store.revocations_since(self.revision(), BATCH).await?;
            self.apply(&rows);
            if (rows.len() as i64) < BATCH {
                return Ok(());
            }
        }
    }
}

/// Follows the log until `stop`: on every nudge and at least every [`POLL`].
pub fn follow(
    set: Arc<RevocationSet>,
    store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut nudges = cache.subscribe(CHANNEL).await.ok();
        let mut tick = tokio::time::interval(POLL);
        let mut rounds: u64 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(_) = async {
                    match nudges.as_mut() {
                        Some(sub) => sub.next().await,
                        None => std::future::pending().await,
                    }
                } => {}
                _ = stop.changed() => break,
            }
            if let Err(err) = set.catch_up(store.as_ref()).await {
                tracing::debug!(error = %err, "revocation log not readable; retrying");
            }
            rounds += 1;
            if rounds.is_multiple_of(1200) {
                set.purge_expired();
            }
            if nudges.is_none() && rounds.is_multiple_of(20) {
                nudges = cache.subscribe(CHANNEL).await.ok();
            }
        }
    })
}
