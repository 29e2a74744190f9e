//! Group commit: single resource and grant writes of this process, queued while a transaction
//! is in flight, are decided and written together in the next one — each in turn, each with its
//! own changelog entry and revision, its own answer (a refused write refuses only itself) — and
//! committed at once. The rows a group names are read a statement for many before it is
//! decided, and its new resources and grants written a statement for many after
//! (`staged.rs`). A WriteBatch, atomic, gets a transaction of its own, taken in turn from the
//! same queue (so the process's writes never wait on each other for the database's lock).
//! Revisions are still taken under the changelog lock, so they follow commit order across every
//! replica; a write answers after its transaction committed and this process's index applied it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::import::decide_import;
use super::rules::{self, Outcome, Step};
use super::staged::Staged;
use super::{BatchResult, ImportCounts, ImportItem, WriteOp, batch_item_error};
use crate::authz::engine::Engine;
use crate::error::Error;
use crate::model::change::Change;
use crate::model::{Caller, Revision};
use crate::store::{ChangeRow, WriteTxStore};

/// Most writes in one transaction (it holds the changelog lock while they are decided).
const MAX_GROUP: usize = 256;
/// Writes waiting for a transaction before callers wait to queue.
const QUEUE: usize = 4096;
/// Longest a group waits for the writers the last one answered.
const GATHER: Duration = Duration::from_millis(2);

/// A write's answer and the revision its caller's token names.
pub(super) type Answer = Result<(Outcome, Revision), Error>;
/// A batch's answer and its revision.
pub(super) type BatchAnswer = Result<(Vec<BatchResult>, Revision), Error>;
/// An import message's answer and its revision.
pub(super) type ImportAnswer = Result<(ImportCounts, Revision), Error>;

enum Job {
    Single {
        caller: Caller,
        op: WriteOp,
        reply: oneshot::Sender<Answer>,
    },
    Batch {
        caller: Caller,
        ops: Vec<WriteOp>,
        reply: oneshot::Sender<BatchAnswer>,
    },
    Import {
        caller: Caller,
        items: Vec<ImportItem>,
        reply: oneshot::Sender<ImportAnswer>,
    },
}

/// A single write of a group.
struct Single {
    caller: Caller,
    op: WriteOp,
}

/// The queue of this process's resource and grant writes.
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
    callers: Arc<Callers>,
}

/// How many callers wait on the writer, and the most that did at once since the last group
/// began.
#[derive(Default)]
struct Callers {
    waiting: AtomicUsize,
    peak: AtomicUsize,
}

/// A caller waiting on the writer, from queueing to its answer (or giving up).
struct Waiting<'a>(&'a Callers);

impl Callers {
    fn enter(&self) -> Waiting<'_> {
        let now = self.waiting.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        Waiting(self)
    }

    /// The most callers that waited at once since the last call; the count starts again from
    /// those waiting now.
    fn peak(&self) -> usize {
        let now = self.waiting.load(Ordering::Relaxed);
        self.peak.swap(now, Ordering::Relaxed)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Writer {
    /// Starts the writing task over `store`, applying commits to `engine`. It ends once the
    /// writer is dropped and its queue drained.
    pub fn start(store: Arc<dyn WriteTxStore>, engine: Arc<Engine>) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let callers = Arc::new(Callers::default());
        tokio::spawn(run(store, engine, queue, callers.clone()));
        Self { jobs, callers }
    }

    /// Queues one write and waits for its answer.
    pub async fn write(&self, caller: &Caller, op: WriteOp) -> Answer {
        let _waiting = self.callers.enter();
        let (reply, answer) = oneshot::channel();
        let job = Job::Single {
            caller: caller.clone(),
            op,
            reply,
        };
        self.jobs.send(job).await.map_err(|_| Error::Unavailable)?;
        answer.await.map_err(|_| Error::Unavailable)?
    }

    /// Queues a batch (1 to 1000 operations) and waits for its answer.
    pub async fn write_batch(&self, caller: &Caller, ops: Vec<WriteOp>) -> BatchAnswer {
        let _waiting = self.callers.enter();
        let (reply, answer) = oneshot::channel();
        let job = Job::Batch {
            caller: caller.clone(),
            ops,
            reply,
        };
        self.jobs.send(job).await.map_err(|_| Error::Unavailable)?;
        answer.await.map_err(|_| Error::Unavailable)?
    }

    /// Queues an import message and waits for its answer.
    pub async fn import(&self, caller: &Caller, items: Vec<ImportItem>) -> ImportAnswer {
        let _waiting = self.callers.enter();
        let (reply, answer) = oneshot::channel();
        let job = Job::Import {
            caller: caller.clone(),
            items,
            reply,
        };
        self.jobs.send(job).await.map_err(|_| Error::Unavailable)?;
        answer.await.map_err(|_| Error::Unavailable)?
    }
}

async fn run(
    store: Arc<dyn WriteTxStore>,
    engine: Arc<Engine>,
    mut queue: mpsc::Receiver<Job>,
    callers: Arc<Callers>,
) {
    loop {
        let mut jobs = Vec::with_capacity(MAX_GROUP);
        if queue.recv_many(&mut jobs, MAX_GROUP).await == 0 {
            break;
        }
        gather(&mut queue, &mut jobs, callers.peak().min(MAX_GROUP)).await;
        // In a task of its own: a bug that panics fails its group's writes (their callers see
        // UNAVAILABLE), not every write after it.
        let group = tokio::spawn(write_group(store.clone(), engine.clone(), jobs));
        if group.await.is_err() {
            tracing::error!("a group of authorization writes failed unexpectedly");
        }
    }
}

/// Waits a moment (at most [`GATHER`]) for the group to hold `target` writes. Writers that
/// write one after another come back together as their group's answers reach them: without
/// the wait, a transaction would start with the writes queued while the last one ran, and
/// those coming back would wait for the next: two half-size transactions where one would do.
/// A lone writer (`target` 1) never waits.
async fn gather(queue: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>, target: usize) {
    let deadline = tokio::time::Instant::now() + GATHER;
    while jobs.len() < target {
        let room = MAX_GROUP - jobs.len();
        match tokio::time::timeout_at(deadline, queue.recv_many(jobs, room)).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// Decides, commits and answers one group of queued writes.
async fn write_group(store: Arc<dyn WriteTxStore>, engine: Arc<Engine>, jobs: Vec<Job>) {
    let (mut singles, mut replies, mut batches) = (Vec::new(), Vec::new(), Vec::new());
    let mut imports = Vec::new();
    for job in jobs {
        match job {
            Job::Single { caller, op, reply } => {
                singles.push(Single { caller, op });
                replies.push(reply);
            }
            Job::Batch { caller, ops, reply } => batches.push((caller, ops, reply)),
            Job::Import {
                caller,
                items,
                reply,
            } => imports.push((caller, items, reply)),
        }
    }
    let (answers, committed) = if singles.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        decide_group(store.as_ref(), &engine, &singles).await
    };
    let mut batch_answers = Vec::with_capacity(batches.len());
    for (caller, ops, _) in &batches {
        batch_answers.push(decide_batch(store.as_ref(), &engine, caller, ops).await);
    }
    let mut import_answers = Vec::with_capacity(imports.len());
    for (caller, items, _) in &imports {
        let now = engine.clock.now();
        import_answers.push(decide_import(store.as_ref(), now, caller, items).await);
    }
    let newest = answers
        .iter()
        .filter_map(|a| a.as_ref().ok().map(|(_, revision)| *revision))
        .chain(
            batch_answers
                .iter()
                .filter_map(|a| a.as_ref().ok().map(|(_, r)| *r)),
        )
        .chain(
            import_answers
                .iter()
                .filter_map(|a| a.as_ref().ok().map(|(_, r)| *r)),
        )
        .max();
    // Read-your-writes: applied here before anyone hears of it (the single writes' entries
    // as decided, the others read back), then the other replicas are told.
    let applied = engine.committed(committed).await.is_ok()
        && match newest {
            Some(revision) => engine.applied(revision).await.is_ok(),
            None => true,
        };
    if newest.is_some() {
        tokio::spawn(async move { engine.nudge().await });
    }
    // A caller that gave up no longer listens.
    fn checked<T>(answer: Result<T, Error>, applied: bool) -> Result<T, Error> {
        answer.and_then(|a| applied.then_some(a).ok_or(Error::Unavailable))
    }
    for (reply, answer) in replies.into_iter().zip(answers) {
        let _ = reply.send(checked(answer, applied));
    }
    for ((_, _, reply), answer) in batches.into_iter().zip(batch_answers) {
        let _ = reply.send(checked(answer, applied));
    }
    for ((_, _, reply), answer) in imports.into_iter().zip(import_answers) {
        let _ = reply.send(checked(answer, applied));
    }
}

/// The single writes of a group in one transaction; when the database refuses it, each alone,
/// so only what fails fails (when it is unreachable, every write of the group answers
/// UNAVAILABLE at once rather than each waiting out the connect timeout).
async fn decide_group(
    store: &dyn WriteTxStore,
    engine: &Engine,
    singles: &[Single],
) -> (Vec<Answer>, Vec<ChangeRow>) {
    match decide(store, engine, singles).await {
        Ok(decided) => decided,
        Err(Error::Unavailable) => {
            let answers = singles.iter().map(|_| Err(Error::Unavailable)).collect();
            (answers, Vec::new())
        }
        Err(_) if singles.len() > 1 => {
            let (mut answers, mut committed) = (Vec::with_capacity(singles.len()), Vec::new());
            for single in singles {
                match decide(store, engine, std::slice::from_ref(single)).await {
                    Ok((mut one, rows)) => {
                        answers.push(one.remove(0));
                        committed.extend(rows);
                    }
                    Err(err) => answers.push(Err(err)),
                }
            }
            (answers, committed)
        }
        Err(err) => (vec![Err(err)], Vec::new()),
    }
}

/// A batch in a transaction of its own, recorded as one changelog entry at one revision; the
/// first refused operation refuses it (named by its index) and nothing is written.
async fn decide_batch(
    store: &dyn WriteTxStore,
    engine: &Engine,
    caller: &Caller,
    ops: &[WriteOp],
) -> BatchAnswer {
    let now = engine.clock.now();
    let mut tx = store.begin_changelog().await?;
    let all: Vec<&WriteOp> = ops.iter().collect();
    let mut staged = Staged::read(tx.as_mut(), &all).await?;
    let writes: Vec<(&Caller, &WriteOp)> = ops.iter().map(|op| (caller, op)).collect();
    let mut facts = staged.facts(&writes).await?;
    let mut results = Vec::with_capacity(ops.len());
    let (mut changes, mut events) = (Vec::new(), Vec::new());
    for (index, op) in ops.iter().enumerate() {
        let step = rules::apply(&mut staged, &mut facts, caller, op, now)
            .await
            .map_err(|err| batch_item_error(index, op.name(), err))?;
        results.push(BatchResult {
            changed: step.write.is_some(),
            created: matches!(step.value, Outcome::Resource(_, true)),
        });
        if let Some((change, event)) = step.write {
            changes.push(change);
            events.push(event);
        }
    }
    staged.flush().await?;
    let change = match changes.len() {
        0 => return Ok((results, tx.revision().await?)),
        1 => changes.remove(0),
        _ => Change::Batch { changes },
    };
    let revision = tx.record_all(&change, &events).await?;
    tx.commit().await?;
    Ok((results, revision))
}

/// Whether an error came from the database rather than from a rule: the transaction may be
/// unusable after it.
fn from_store(err: &Error) -> bool {
    matches!(
        err,
        Error::Unavailable | Error::Internal | Error::AlreadyExists(_)
    )
}

/// Decides and writes `jobs` in one transaction and commits it: an answer per job and the
/// entries committed, or the database's error when the transaction failed (nothing of it is
/// kept).
async fn decide(
    store: &dyn WriteTxStore,
    engine: &Engine,
    jobs: &[Single],
) -> Result<(Vec<Answer>, Vec<ChangeRow>), Error> {
    /// A decided write whose revision is known once the group's entries are appended.
    enum Decided {
        /// Changed: its entry is `changes[i]`.
        Changed(Outcome, usize),
        /// Changed nothing: it names the newest revision before it (`changes[i - 1]`, or the
        /// committed one when `i` is 0).
        Unchanged(Outcome, usize),
        Refused(Error),
    }
    let now: DateTime<Utc> = engine.clock.now();
    let mut tx = store.begin_changelog().await?;
    let ops: Vec<&WriteOp> = jobs.iter().map(|job| &job.op).collect();
    let mut staged = Staged::read(tx.as_mut(), &ops).await?;
    let writes: Vec<(&Caller, &WriteOp)> = jobs.iter().map(|job| (&job.caller, &job.op)).collect();
    let mut facts = staged.facts(&writes).await?;
    let mut decided = Vec::with_capacity(jobs.len());
    let (mut changes, mut events) = (Vec::new(), Vec::new());
    for job in jobs {
        match rules::apply(&mut staged, &mut facts, &job.caller, &job.op, now).await {
            Ok(Step { value, write: None }) => {
                decided.push(Decided::Unchanged(value, changes.len()))
            }
            Ok(Step {
                value,
                write: Some((change, event)),
            }) => {
                decided.push(Decided::Changed(value, changes.len()));
                changes.push(change);
                events.push(event);
            }
            Err(err) if from_store(&err) => return Err(err),
            Err(refused) => decided.push(Decided::Refused(refused)),
        }
    }
    staged.flush().await?;
    // The entries in decision order, one statement for many: revisions ascend in that order.
    let committed = if decided
        .iter()
        .any(|d| matches!(d, Decided::Unchanged(_, 0)))
    {
        Some(tx.revision().await?)
    } else {
        None
    };
    let at = crate::model::now();
    let revisions = if changes.is_empty() {
        Vec::new()
    } else {
        let revisions = tx.append_audited(&changes, &events, at).await?;
        tx.commit().await?;
        revisions
    };
    let revision_at = |i: usize| revisions.get(i).copied().ok_or(Error::Internal);
    let answers = decided
        .into_iter()
        .map(|d| match d {
            Decided::Changed(value, i) => Ok((value, revision_at(i)?)),
            Decided::Unchanged(value, 0) => Ok((value, committed.ok_or(Error::Internal)?)),
            Decided::Unchanged(value, i) => Ok((value, revision_at(i - 1)?)),
            Decided::Refused(err) => Err(err),
        })
        .collect();
    let rows = changes
        .into_iter()
        .zip(revisions.iter().copied())
        .map(|(change, revision)| ChangeRow {
            revision,
            change,
            occurred_at: at,
        })
        .collect();
    Ok((answers, rows))
}
