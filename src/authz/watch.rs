//! Watch: a service's authorization changes as a stream, from a revision on.
//!
//! A stream first replays the changelog from the database (from the start revision, or after
//! falling behind), then follows what this replica's index applies, with a checkpoint when
//! idle. It shows a service its own resources, grants, roles and actions, and the membership
//! and group history of the workspaces the service is present in.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::Stream;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::engine::Engine;
use crate::error::Error;
use crate::model::Revision;
use crate::model::WorkspaceId;
use crate::model::change::Change;
use crate::store::{AuthzStore, ChangeRow};
use crate::streams::{RECHECK, Recheck, StillAllowed};

/// Idle streams get a checkpoint at least this often.
pub const CHECKPOINT: Duration = Duration::from_secs(30);
/// Changelog entries read from the database per round trip while replaying.
const REPLAY_BATCH: i64 = 500;

/// One message of a stream.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// A change, at its revision.
    Change {
        /// Its changelog revision.
        revision: Revision,
        /// When it was committed.
        occurred_at: DateTime<Utc>,
        /// What changed.
        change: Change,
        /// Further changes of the same revision (one WriteBatch) follow this one.
        more_in_revision: bool,
    },
    /// Nothing new up to `revision` (sent when idle).
    Checkpoint {
        /// The revision the stream has reached.
        revision: Revision,
        /// When.
        at: DateTime<Utc>,
    },
}

/// What a stream shows.
pub struct WatchQuery {
    /// The watching service.
    pub service: String,
    /// Resource types shown (empty: all); other changes are not filtered by it.
    pub resource_types: Vec<String>,
    /// Changes after this revision (`None`: from now on).
    pub start: Option<Revision>,
}

struct State {
    store: Arc<dyn AuthzStore>,
    query: WatchQuery,
    recheck: Recheck,
    cursor: Revision,
    pending: VecDeque<WatchEvent>,
    /// Live changelog entries from the replica's index.
    feed: broadcast::Receiver<Arc<[ChangeRow]>>,
    /// Reading the database from `cursor` (from the start, or after falling behind).
    replaying: bool,
    done: bool,
    last_sent: Instant,
    /// Workspaces where the service was found to have resources or roles.
    present_in: HashSet<WorkspaceId>,
    /// The engine's rebuild count, and its value when the stream last read the database.
    rebuilds: Arc<AtomicU64>,
    generation: u64,
}

/// FAILED_PRECONDITION for a stream whose start the changelog no longer holds.
fn pruned(horizon: Revision) -> Error {
    Error::FailedPrecondition(format!(
        "start_token is older than the retained changelog (it starts after revision {}, see \
         changelog_retention): re-read what you follow (GetResource, LookupResources) and watch \
         from now with an empty start_token",
        horizon.0
    ))
}

impl Engine {
    /// A stream of `query.service`'s changes after `query.start`; INVALID_ARGUMENT naming
    /// `start_token` when the start is newer than any write.
    pub async fn watch(
        &self,
        query: WatchQuery,
        still_allowed: StillAllowed,
    ) -> Result<impl Stream<Item = Result<WatchEvent, Error>> + Send + use<>, Error> {
        // Subscribed before the first read of the database, so nothing falls in between.
        let feed = self.changes();
        let latest = self.revisions.current_revision().await?;
        let cursor = match query.start {
            None => latest,
            Some(start) if start > latest => {
                return Err(Error::invalid(
                    "start_token",
                    "names a revision newer than any write",
                ));
            }
            Some(start) => {
                let horizon = self.authz.changelog_horizon().await?;
                if start < horizon {
                    return Err(pruned(horizon));
                }
                start
            }
        };
        let generation = self.rebuilds.load(Ordering::Relaxed);
        let state = State {
            store: self.authz.clone(),
            query,
            recheck: Recheck::new(still_allowed),
            cursor,
            pending: VecDeque::new(),
            feed,
            replaying: true,
            done: false,
            last_sent: Instant::now(),
            present_in: HashSet::new(),
            rebuilds: self.rebuilds.clone(),
            generation,
        };
        Ok(futures::stream::unfold(state, next))
    }
}

/// The stream's next message (`None`: the stream ends).
async fn next(mut w: State) -> Option<(Result<WatchEvent, Error>, State)> {
    if w.done {
        return None;
    }
    loop {
        if let Err(err) = w.recheck.when_due().await {
            w.done = true;
            return Some((Err(err), w));
        }
        if let Some(event) = w.pending.pop_front() {
            w.last_sent = Instant::now();
            return Some((Ok(event), w));
        }
        let mut reached: Option<Revision> = None;
        let rows: Vec<ChangeRow> = if w.replaying {
            match w
                .store
                .changes_since(w.cursor, Some(&w.query.service), REPLAY_BATCH)
                .await
            {
                Ok(rows) => {
                    // Read after the rows: a horizon past the cursor means entries after it
                    // may have been pruned before they were read.
                    match w.store.changelog_horizon().await {
                        Ok(horizon) if horizon > w.cursor => {
                            w.done = true;
                            return Some((Err(pruned(horizon)), w));
                        }
                        Ok(_) => {}
                        Err(err) => {
                            w.done = true;
                            return Some((Err(err.into()), w));
                        }
                    }
                    w.generation = w.rebuilds.load(Ordering::Relaxed);
                    w.replaying = rows.len() as i64 == REPLAY_BATCH;
                    rows
                }
                Err(err) => {
                    w.done = true;
                    return Some((Err(err.into()), w));
                }
            }
        } else {
            // Live: what the replica's index applies, woken at least every recheck.
            match tokio::time::timeout(RECHECK, w.feed.recv()).await {
                // The index was rebuilt past a pruned stretch: read the database instead.
                Ok(Ok(_)) if w.rebuilds.load(Ordering::Relaxed) != w.generation => {
                    w.replaying = true;
                    continue;
                }
                Ok(Ok(batch)) => {
                    // The feed holds every entry in order: once this batch is through, the
                    // stream has seen everything up to its end, its own entries or not (so a
                    // quiet service's checkpoints stay inside the retained changelog).
                    reached = batch.last().map(|r| r.revision);
                    batch
                        .iter()
                        .filter(|r| {
                            r.revision > w.cursor
                                && r.change.service_name().is_none_or(|s| s == w.query.service)
                        })
                        .cloned()
                        .collect()
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    w.replaying = true;
                    continue;
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                Err(_) if w.last_sent.elapsed() < CHECKPOINT => continue,
                Err(_) => {
                    w.last_sent = Instant::now();
                    let event = WatchEvent::Checkpoint {
                        revision: w.cursor,
                        at: crate::model::now(),
                    };
                    return Some((Ok(event), w));
                }
            }
        };
        for row in rows {
            w.cursor = row.revision;
            // Membership and group history only of workspaces this service is in.
            if let Some(workspace) = row.change.shared_workspace()
                && !w.present_in.contains(&workspace)
            {
                match w
                    .store
                    .service_in_workspace(&w.query.service, workspace)
                    .await
                {
                    Ok(true) => {
                        w.present_in.insert(workspace);
                    }
                    Ok(false) => continue,
                    Err(err) => {
                        w.done = true;
                        return Some((Err(err.into()), w));
                    }
                }
            }
            let types = &w.query.resource_types;
            let shown: Vec<&Change> = row
                .change
                .parts()
                .iter()
                .filter(|change| {
                    change.is_watched()
                        && change
                            .resource_type()
                            .is_none_or(|t| types.is_empty() || types.iter().any(|x| x == t))
                })
                .collect();
            let count = shown.len();
            for (i, change) in shown.into_iter().enumerate() {
                w.pending.push_back(WatchEvent::Change {
                    revision: row.revision,
                    occurred_at: row.occurred_at,
                    change: change.clone(),
                    more_in_revision: i + 1 < count,
                });
            }
        }
        if let Some(end) = reached {
            w.cursor = w.cursor.max(end);
        }
    }
}
