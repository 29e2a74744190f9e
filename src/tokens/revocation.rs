//! The in-memory revocation set every verifier consults, kept current from the SQL revocation
//! log: polled twice a second and nudged through the cache's pub/sub, so a revocation anywhere
//! in the cluster is enforced everywhere within a second even when Redis is down.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use super::jwt::AccessClaims;
use crate::cache::Cache;
use crate::model::{SessionId, UserId, WorkspaceId};
use crate::store::{RevocationRow, RevocationStore};

/// Pub/sub channel that carries "the revocation log grew" nudges.
pub const CHANNEL: &str = "revocations";
/// Fallback polling period.
const POLL: Duration = Duration::from_millis(500);
/// Log entries read per query.
const BATCH: i64 = 1000;

/// (tokens issued at or before this instant are revoked, when the entry can be dropped).
type Horizon = (i64, i64);

fn raise(map_entry: &mut Horizon, revoked_at: i64, expires: i64) {
    *map_entry = (map_entry.0.max(revoked_at), map_entry.1.max(expires));
}

#[derive(Default)]
struct State {
    /// Revoked sessions → when their tokens have all expired.
    sessions: HashMap<SessionId, i64>,
    /// Users → horizon of their tokens everywhere.
    users: HashMap<UserId, Horizon>,
    /// (user, workspace) → horizon of the user's tokens scoped to that workspace (role changes,
    /// removal).
    members: HashMap<(UserId, WorkspaceId), Horizon>,
    /// Workspaces → horizon of every token scoped to them (deletion).
    workspaces: HashMap<WorkspaceId, Horizon>,
    revision: i64,
}

impl State {
    fn insert(&mut self, row: &RevocationRow) {
        let expires = row.expires_at.timestamp();
        let revoked_at = row.revoked_at.timestamp();
        let horizon = (revoked_at, expires);
        match (row.session_id, row.workspace_id) {
            (Some(session), _) => {
                self.sessions.insert(session, expires);
            }
            (None, None) => raise(
                self.users.entry(row.user_id).or_insert(horizon),
                revoked_at,
                expires,
            ),
            (None, Some(workspace)) if row.user_id.is_nil() => raise(
                self.workspaces.entry(workspace).or_insert(horizon),
                revoked_at,
                expires,
            ),
            (None, Some(workspace)) => raise(
                self.members
                    .entry((row.user_id, workspace))
                    .or_insert(horizon),
                revoked_at,
                expires,
            ),
        }
    }

    /// The latest horizon that covers tokens of `user` in `workspace` (user-wide included).
    fn horizon(&self, user: UserId, workspace: Option<WorkspaceId>) -> Option<i64> {
        let user_wide = self.users.get(&user).map(|h| h.0);
        let scoped = workspace.and_then(|w| {
            let member = self.members.get(&(user, w)).map(|h| h.0);
            let all = self.workspaces.get(&w).map(|h| h.0);
            member.max(all)
        });
        user_wide.max(scoped)
    }
}

/// Revoked sessions and users, as of `revision()` of the log.
pub struct RevocationSet {
    state: RwLock<State>,
    /// When the log was last read to its end, in milliseconds since [`epoch`] plus one (0 =
    /// never): an atomic, so the check on every token verification takes no lock.
    caught_up_at: std::sync::atomic::AtomicU64,
    /// New log entries, in revision order, as the process's one follower reads them: every
    /// `WatchRevocations` stream of this replica listens here instead of polling the database.
    feed: tokio::sync::broadcast::Sender<Arc<[RevocationRow]>>,
}

/// The process's reference instant for [`RevocationSet::is_current`].
fn epoch() -> std::time::Instant {
    // An hour before first use where the clock allows, so instants a little in the past still
    // count from it.
    static EPOCH: std::sync::LazyLock<std::time::Instant> = std::sync::LazyLock::new(|| {
        let now = std::time::Instant::now();
        now.checked_sub(std::time::Duration::from_secs(3600))
            .unwrap_or(now)
    });
    *EPOCH
}

fn millis_since_epoch(at: std::time::Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_millis() as u64
}

/// Batches of new entries a slow stream may fall behind by before it re-reads the database.
const FEED_CAPACITY: usize = 256;

impl Default for RevocationSet {
    fn default() -> Self {
        Self {
            state: RwLock::default(),
            caught_up_at: std::sync::atomic::AtomicU64::new(0),
            feed: tokio::sync::broadcast::channel(FEED_CAPACITY).0,
        }
    }
}

impl RevocationSet {
    /// Applies log entries (idempotent; entries at or below the current revision are skipped).
    pub fn apply(&self, rows: &[RevocationRow]) {
        let now = crate::model::now().timestamp();
        let mut fresh = Vec::new();
        {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            for row in rows {
                if row.revision <= state.revision {
                    continue;
                }
                state.revision = row.revision;
                if row.expires_at.timestamp() > now {
                    state.insert(row);
                }
                fresh.push(row.clone());
            }
        }
        if !fresh.is_empty() {
            // No listener is not an error: no stream is open.
            let _ = self.feed.send(fresh.into());
        }
    }

    /// New log entries from now on (see [`RevocationSet::apply`]); a receiver that lags behind
    /// by more than the feed holds gets `Lagged` and must re-read the database.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<[RevocationRow]>> {
        self.feed.subscribe()
    }

    /// Enforces entries this process just wrote, without moving the log cursor: entries of
    /// other writers below them may still be unread.
    pub fn apply_local(&self, rows: &[RevocationRow]) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        for row in rows {
            state.insert(row);
        }
    }

    /// Whether the access token is revoked: its session was, or its user's tokens scoped to
    /// its workspace were (a role change or removal there, the workspace's deletion) at or
    /// after it was issued. (User-wide revocations revoke every session of the user, so the
    /// session check covers them exactly.)
    pub fn is_revoked(&self, claims: &AccessClaims) -> bool {
        let Ok(sid) = claims.sid.parse::<SessionId>() else {
            return true;
        };
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        if state.sessions.contains_key(&sid) {
            return true;
        }
        let Some(workspace) = claims.wid.as_deref() else {
            return false;
        };
        if state.members.is_empty() && state.workspaces.is_empty() {
            return false; // the common case: nothing workspace-scoped is revoked
        }
        let (Ok(workspace), Ok(user)) = (
            workspace.parse::<WorkspaceId>(),
            claims.sub.parse::<UserId>(),
        ) else {
            return true;
        };
        let member = state.members.get(&(user, workspace)).map(|h| h.0);
        let all = state.workspaces.get(&workspace).map(|h| h.0);
        member.max(all).is_some_and(|at| claims.iat <= at)
    }

    /// Whether a token without a session (an authz token) of `user` for `workspace`, issued at
    /// `iat`, falls under a user-wide or workspace revocation.
    pub fn is_user_revoked(&self, user: UserId, workspace: Option<WorkspaceId>, iat: i64) -> bool {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state.horizon(user, workspace).is_some_and(|at| iat <= at)
    }

    /// The earliest `iat` a new token of `user` in `workspace` may carry so that no revocation
    /// known here covers it: `now`, or one second past a revocation made in this very second.
    pub fn issue_at(&self, user: UserId, workspace: Option<WorkspaceId>, now: i64) -> i64 {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        match state.horizon(user, workspace) {
            Some(at) if at >= now => at + 1,
            _ => now,
        }
    }

    /// The last log revision applied.
    pub fn revision(&self) -> i64 {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .revision
    }

    fn purge_expired(&self) {
        let now = crate::model::now().timestamp();
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.sessions.retain(|_, expires| *expires > now);
        state.users.retain(|_, (_, expires)| *expires > now);
        state.members.retain(|_, (_, expires)| *expires > now);
        state.workspaces.retain(|_, (_, expires)| *expires > now);
    }

    /// Reads every log entry after the current revision.
    pub async fn catch_up(
        &self,
        store: &dyn RevocationStore,
    ) -> Result<(), crate::store::StoreError> {
        loop {
            let rows = store.revocations_since(self.revision(), BATCH).await?;
            self.apply(&rows);
            if (rows.len() as i64) < BATCH {
                self.set_caught_up_at(std::time::Instant::now());
                return Ok(());
            }
        }
    }

    /// Whether the set read the log to its end within `max`: a replica that cannot reach the
    /// database stops trusting tokens once revocations may have happened that it cannot see.
    pub fn is_current(&self, max: std::time::Duration) -> bool {
        let at = self.caught_up_at.load(std::sync::atomic::Ordering::Relaxed);
        at != 0
            && millis_since_epoch(std::time::Instant::now()).saturating_sub(at - 1)
                <= max.as_millis() as u64
    }

    fn set_caught_up_at(&self, at: std::time::Instant) {
        self.caught_up_at.store(
            millis_since_epoch(at) + 1,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

/// Follows the log until `stop`: on every nudge and at least every [`POLL`]; every ten
/// minutes, entries past their tokens' expiry leave the set.
pub fn follow(
    set: Arc<RevocationSet>,
    store: Arc<dyn RevocationStore>,
    cache: Arc<dyn Cache>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    crate::cache::follow(cache, CHANNEL, POLL, stop, move |round| {
        let (set, store) = (set.clone(), store.clone());
        async move {
            if let Err(err) = set.catch_up(store.as_ref()).await {
                tracing::debug!(error = %err, "revocation log not readable; retrying");
            }
            if round.is_multiple_of(1200) {
                set.purge_expired();
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(revision: i64) -> RevocationRow {
        let now = crate::model::now();
        RevocationRow {
            revision,
            session_id: Some(SessionId::random()),
            jti: None,
            user_id: UserId::random(),
            reason: "logout".into(),
            revoked_at: now,
            expires_at: now + chrono::Duration::minutes(15),
            workspace_id: None,
        }
    }

    #[test]
    fn new_entries_are_fed_to_streams_once_in_order() {
        let set = RevocationSet::default();
        let mut feed = set.subscribe();
        set.apply(&[row(1), row(2)]);
        // Already applied entries are not fed again.
        set.apply(&[row(2), row(3)]);
        let first = feed.try_recv().unwrap();
        let second = feed.try_recv().unwrap();
        let revisions: Vec<i64> = first
            .iter()
            .chain(second.iter())
            .map(|r| r.revision)
            .collect();
        assert_eq!(revisions, [1, 2, 3]);
        assert!(feed.try_recv().is_err(), "nothing more");
    }

    #[test]
    fn a_set_that_cannot_read_the_log_stops_being_current() {
        let set = RevocationSet::default();
        let max = std::time::Duration::from_secs(30);
        assert!(!set.is_current(max), "never read");
        set.set_caught_up_at(std::time::Instant::now());
        assert!(set.is_current(max));
        if let Some(long_ago) =
            std::time::Instant::now().checked_sub(std::time::Duration::from_secs(31))
        {
            set.set_caught_up_at(long_ago);
            assert!(!set.is_current(max));
        }
    }
}
