//! The permission engine of one process: the in-memory [`Index`] behind a lock, kept current
//! from the changelog. Writes on this process apply their own entry before answering; other
//! replicas are nudged over the cache's pub/sub and poll every 500 ms as a fallback. A read that
//! names a revision newer than the index catches up from the database before answering, so it
//! never answers from state older than that write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use super::index::Index;
use crate::cache::Cache;
use crate::error::Error;
use crate::model::{Clock, Revision};
use crate::store::{AuthzStore, Store, TenancyStore};

/// Pub/sub channel announcing new changelog revisions.
pub const CHANNEL: &str = "authz";
/// Poll interval of the follower (the default read staleness is at most twice this).
const POLL: Duration = Duration::from_millis(500);
/// Changelog entries read per round trip (an import message's entry holds up to 5000 changes,
/// so a page of them stays within a few hundred megabytes).
const BATCH: i64 = 500;

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Whatever the index holds (at most about a second behind).
    MinimizeLatency,
    /// At least this revision.
    AtLeast(Revision),
    /// The latest committed revision.
    Full,
}

/// The engine: index, follower state and revision announcements.
pub struct Engine {
    /// The changelog and the index's source.
    pub(super) authz: Arc<dyn AuthzStore>,
    /// The newest committed revision.
    pub(super) revisions: Arc<dyn TenancyStore>,
    pub(super) cache: Arc<dyn Cache>,
    index: RwLock<Index>,
    catching_up: Mutex<()>,
    applied: watch::Sender<Revision>,
    /// Changelog entries as the index applies them, in revision order: every `Watch` stream of
    /// this replica listens here instead of polling the database.
    feed: tokio::sync::broadcast::Sender<Arc<[crate::store::ChangeRow]>>,
    /// Check answers so far: allowed, denied (CheckBulk counts each item).
    decisions: [AtomicU64; 2],
    /// When the index last read the changelog to its end.
    current_at: std::sync::Mutex<Instant>,
    /// What "now" is when a decision weighs a grant's expiry.
    pub(super) clock: Arc<dyn Clock>,
    /// Times the index was rebuilt because the changelog it followed had been pruned past it:
    /// `Watch` streams that follow the feed re-read the database when it moves.
    pub(super) rebuilds: Arc<AtomicU64>,
}

/// Batches a slow `Watch` may fall behind by before it re-reads the database.
const FEED_CAPACITY: usize = 256;

impl Engine {
    /// Builds the index from the database and catches up with the changelog; decisions weigh
    /// grant expiries against `clock`.
    pub async fn load(
        store: Arc<dyn Store>,
        cache: Arc<dyn Cache>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        let started = std::time::Instant::now();
        let snapshot = store.authz_snapshot().await?;
        let index = Index::load(snapshot);
        let (resources, grants) = index.counts();
        let (applied, _) = watch::channel(index.revision());
        let engine = Self {
            authz: store.clone(),
            revisions: store,
            cache,
            index: RwLock::new(index),
            catching_up: Mutex::new(()),
            applied,
            feed: tokio::sync::broadcast::channel(FEED_CAPACITY).0,
            decisions: [AtomicU64::new(0), AtomicU64::new(0)],
            current_at: std::sync::Mutex::new(Instant::now()),
            clock,
            rebuilds: Arc::new(AtomicU64::new(0)),
        };
        engine.catch_up().await?;
        tracing::info!(
            resources,
            grants,
            revision = engine.revision().0,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "permission index built"
        );
        Ok(engine)
    }

    /// Now, in milliseconds, as decisions see it.
    pub(super) fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// Read access to the index.
    pub fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The revision the index has applied.
    pub fn revision(&self) -> Revision {
        self.read().revision()
    }

    /// Announcements of applied revisions (for Watch streams).
    pub fn revisions(&self) -> watch::Receiver<Revision> {
        self.applied.subscribe()
    }

    /// Changelog entries from now on, as the index applies them; a receiver that lags behind by
    /// more than the feed holds gets `Lagged` and must re-read the database.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<Arc<[crate::store::ChangeRow]>> {
        self.feed.subscribe()
    }

    /// Applies every committed changelog entry the index has not seen.
    pub async fn catch_up(&self) -> Result<(), Error> {
        self.catch_up_to(None).await
    }

    /// Applies committed changelog entries until the index holds `revision` (every one the
    /// index has not seen, when `None`). Callers waiting for revisions that another's catch-up
    /// applied return without reading the changelog again.
    async fn catch_up_to(&self, revision: Option<Revision>) -> Result<(), Error> {
        let _one_at_a_time = self.catching_up.lock().await;
        if revision.is_some_and(|r| self.revision() >= r) {
            return Ok(());
        }
        loop {
            let from = self.revision();
            let rows = self.authz.changes_since(from, None, BATCH).await?;
            if rows.is_empty() {
                break;
            }
            // Revisions can skip a number (a write rolled back after taking it); past a skip,
            // the entries right after `from` may instead have been pruned: then follow on
            // from a fresh snapshot.
            if rows[0].revision.0 != from.0 + 1 && self.authz.changelog_horizon().await? > from {
                self.rebuild().await?;
                continue;
            }
            // The lock is taken per entry: readers wait for one entry (at most one import
            // message), never for a page of them.
            for row in &rows {
                self.write().apply(row.revision, &row.change);
            }
            let last_batch = (rows.len() as i64) < BATCH;
            // No listener is not an error: no Watch is open.
            let _ = self.feed.send(rows.into());
            if last_batch {
                break;
            }
        }
        self.applied.send_replace(self.revision());
        *self.current_at.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        Ok(())
    }

    /// Applies entries this process has just committed, in revision order, without reading
    /// them back when they follow the index's revision directly; otherwise catches up to the
    /// last of them from the changelog.
    pub async fn committed(&self, rows: Vec<crate::store::ChangeRow>) -> Result<(), Error> {
        let Some(last) = rows.last().map(|row| row.revision) else {
            return Ok(());
        };
        {
            let _one_at_a_time = self.catching_up.lock().await;
            let from = self.revision();
            if from >= last {
                return Ok(());
            }
            let follows = (0..)
                .zip(&rows)
                .all(|(i, row)| row.revision.0 == from.0 + 1 + i);
            if follows {
                for row in &rows {
                    self.write().apply(row.revision, &row.change);
                }
                let _ = self.feed.send(rows.into());
                self.applied.send_replace(self.revision());
                *self.current_at.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                return Ok(());
            }
        }
        self.catch_up_to(Some(last)).await
    }

    /// Replaces the index with one built from a fresh snapshot.
    async fn rebuild(&self) -> Result<(), Error> {
        let snapshot = self.authz.authz_snapshot().await?;
        let index = Index::load(snapshot);
        let (from, to) = (self.revision(), index.revision());
        *self.write() = index;
        self.rebuilds.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            from = from.0,
            to = to.0,
            "the changelog was pruned past this replica's index: rebuilt from a snapshot"
        );
        Ok(())
    }

    /// Deletes changelog entries older than `retention` (by the engine's clock). `Watch` from
    /// before them answers FAILED_PRECONDITION; a replica that fell behind them rebuilds.
    pub async fn prune_changelog(&self, retention: Duration) -> Result<u64, Error> {
        let retention = chrono::Duration::from_std(retention).map_err(|_| Error::Internal)?;
        Ok(self
            .authz
            .prune_changelog(self.clock.now() - retention)
            .await?)
    }

    /// Counts answered checks.
    pub(super) fn count_decisions(&self, allowed: u64, denied: u64) {
        self.decisions[0].fetch_add(allowed, Ordering::Relaxed);
        self.decisions[1].fetch_add(denied, Ordering::Relaxed);
    }

    /// Check answers so far: (allowed, denied), CheckBulk items counted one by one.
    pub fn decisions(&self) -> (u64, u64) {
        (
            self.decisions[0].load(Ordering::Relaxed),
            self.decisions[1].load(Ordering::Relaxed),
        )
    }

    /// How long ago the index last read the changelog to its end: about the follow interval
    /// when healthy, growing while the database cannot be read.
    pub fn staleness(&self) -> std::time::Duration {
        self.current_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    /// Waits until the index is at least as fresh as `freshness` asks, reading the changelog
    /// from the database when it is behind.
    pub async fn ensure(&self, freshness: Freshness) -> Result<(), Error> {
        match freshness {
            Freshness::MinimizeLatency => Ok(()),
            Freshness::Full => self.catch_up().await,
            Freshness::AtLeast(revision) => {
                if self.revision() >= revision {
                    return Ok(());
                }
                self.catch_up().await?;
                if self.revision() >= revision {
                    return Ok(());
                }
                // Nothing committed is that new: not a token of this deployment.
                let latest = self.revisions.current_revision().await?;
                if latest < revision {
                    return Err(Error::invalid(
                        "consistency.at_least_as_fresh",
                        "names a revision newer than any write",
                    ));
                }
                self.catch_up().await
            }
        }
    }

    /// After a local write committed at `revision`: apply it here before answering, and nudge
    /// the other replicas.
    pub async fn written(&self, revision: Revision) -> Result<(), Error> {
        self.applied(revision).await?;
        self.nudge().await;
        Ok(())
    }

    /// Waits until this process's index holds `revision` (a committed one), catching up.
    pub async fn applied(&self, revision: Revision) -> Result<(), Error> {
        if self.revision() < revision {
            self.catch_up_to(Some(revision)).await?;
        }
        Ok(())
    }

    /// Tells the other replicas that the changelog grew.
    pub async fn nudge(&self) {
        if let Err(err) = self.cache.publish(CHANNEL, b"1").await {
            tracing::warn!(error = %err, "permission nudge not published; replicas poll");
        }
    }
}

/// Follows the changelog: on nudges from other replicas and every 500 ms.
pub fn follow(engine: Arc<Engine>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    let cache = engine.cache.clone();
    crate::cache::follow(cache, CHANNEL, POLL, stop, move |_| {
        let engine = engine.clone();
        async move {
            if let Err(err) = engine.catch_up().await {
                tracing::debug!(error = %err, "changelog not readable; retrying");
            }
        }
    })
}
