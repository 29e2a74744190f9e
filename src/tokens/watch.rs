//! WatchRevocations: the revocation log as a stream, for services that verify tokens
//! themselves. A stream replays the log after the caller's cursor (entries that can no longer
//! matter are left out), marks the end of the replay, then follows what this replica's
//! revocation follower reads, with a heartbeat when idle.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::revocation::RevocationSet;
use crate::error::Error;
use crate::store::{RevocationRow, RevocationStore};
use crate::streams::{RECHECK, Recheck, StillAllowed};

/// An idle stream sends an empty batch at least this often.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Log entries read from the database per round trip while replaying.
const REPLAY_BATCH: i64 = 500;

/// One message of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct RevocationBatch {
    /// Revocations still in force (possibly none: a heartbeat or the end of the replay).
    pub revocations: Vec<RevocationRow>,
    /// The log revision the stream has reached (the caller's next cursor).
    pub revision: i64,
    /// The replay is over: what follows is live.
    pub caught_up: bool,
    /// The caller's cursor was not of this log (from the future, or older than what is kept):
    /// the replay started over from the beginning; drop what was known.
    pub reset: bool,
}

struct State {
    store: Arc<dyn RevocationStore>,
    recheck: Recheck,
    /// Live entries from the replica's revocation follower.
    feed: broadcast::Receiver<Arc<[RevocationRow]>>,
    cursor: i64,
    reset: bool,
    /// Reading the database from `cursor` (the replay, or after falling behind the feed).
    replaying: bool,
    /// Whether the end of the replay was announced.
    announced: bool,
    last_sent: Instant,
    done: bool,
}

/// A stream of the log after `since` (0: all of it); INVALID_ARGUMENT naming `since_revision`
/// when negative.
pub async fn watch(
    store: Arc<dyn RevocationStore>,
    revocations: &RevocationSet,
    since: i64,
    still_allowed: StillAllowed,
) -> Result<impl Stream<Item = Result<RevocationBatch, Error>> + Send + use<>, Error> {
    if since < 0 {
        return Err(Error::invalid("since_revision", "must not be negative"));
    }
    // Subscribed before the replay reads the database, so nothing falls in between.
    let feed = revocations.subscribe();
    let (low, high) = store.revocation_bounds().await?;
    // A cursor from the future (another cluster, a restored database) or from before the
    // retained log: start over with a full replay and say so.
    let reset = since > high || (since > 0 && since < low - 1);
    let state = State {
        store,
        recheck: Recheck::new(still_allowed),
        feed,
        cursor: if reset { 0 } else { since },
        reset,
        replaying: true,
        announced: false,
        last_sent: Instant::now(),
        done: false,
    };
    Ok(futures::stream::unfold(state, next))
}

async fn next(mut w: State) -> Option<(Result<RevocationBatch, Error>, State)> {
    if w.done {
        return None;
    }
    loop {
        if let Err(err) = w.recheck.when_due().await {
            w.done = true;
            return Some((Err(err), w));
        }
        let rows: Vec<RevocationRow> = if w.replaying {
            match w.store.revocations_since(w.cursor, REPLAY_BATCH).await {
                Ok(rows) => {
                    w.replaying = rows.len() as i64 == REPLAY_BATCH;
                    rows
                }
                Err(err) => {
                    w.done = true;
                    return Some((Err(err.into()), w));
                }
            }
        } else {
            match tokio::time::timeout(RECHECK, w.feed.recv()).await {
                Ok(Ok(batch)) => batch
                    .iter()
                    .filter(|r| r.revision > w.cursor)
                    .cloned()
                    .collect(),
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    w.replaying = true;
                    continue;
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                Err(_) => Vec::new(),
            }
        };
        let now = crate::model::now();
        let end_of_replay = !w.announced && !w.replaying;
        if let Some(last) = rows.last() {
            w.cursor = last.revision;
        }
        let live: Vec<RevocationRow> = rows.into_iter().filter(|r| r.expires_at > now).collect();
        if !live.is_empty() || end_of_replay || w.last_sent.elapsed() >= HEARTBEAT {
            let batch = RevocationBatch {
                revocations: live,
                revision: w.cursor,
                caught_up: end_of_replay,
                reset: std::mem::take(&mut w.reset),
            };
            w.announced |= end_of_replay;
            w.last_sent = Instant::now();
            return Some((Ok(batch), w));
        }
    }
}
