//! `sentinel import resources`: streams an import file (JSON lines or CSV, see [`file`])
//! through `PermissionService.ImportResources`. The whole file is checked first, so a malformed
//! line stops the import before anything is written. Then it is sent in streams of up to
//! `checkpoint` items (or 10 s); after each, the line reached is kept in `<file>.import-progress`, and
//! `--resume` starts after it (items sent again change nothing, so resuming from any earlier
//! point is safe too).

pub mod file;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc};

use crate::proto::v1 as pb;
use crate::proto::v1::permission_service_client::PermissionServiceClient;
use file::{Format, Items};

/// What to import and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// The file.
    pub file: PathBuf,
    /// Its format (default: by extension).
    pub format: Option<Format>,
    /// The server's address (`http://host:port`).
    pub server: String,
    /// The service key the items are imported as.
    pub service_key: String,
    /// Items per message (1 to 5000).
    pub batch: usize,
    /// Items per stream, after which progress is kept.
    pub checkpoint: u64,
    /// Start after the line kept by the last run.
    pub resume: bool,
    /// Print progress lines to stderr.
    pub progress: bool,
}

/// What an import did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Items sent by this run.
    pub items: u64,
    /// Lines skipped by `--resume`.
    pub skipped_through: u64,
    /// The server's counts, summed over the run's streams.
    pub counts: pb::ImportResourcesResponse,
    /// How long it took.
    pub elapsed: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.counts;
        let seconds = self.elapsed.as_secs_f64();
        write!(
            f,
            "imported {} items in {seconds:.1} s ({:.0}/s): resources {} created, {} updated, \
             {} unchanged; grants {} set, {} unchanged; consistency token {}",
            self.items,
            self.items as f64 / seconds.max(0.001),
            c.resources_created,
            c.resources_updated,
            c.resources_unchanged,
            c.grants_set,
            c.grants_unchanged,
            c.consistency_token
        )
    }
}

/// The progress kept between runs.
#[derive(Debug, Serialize, Deserialize)]
struct Progress {
    /// The file's size when the progress was kept.
    file_len: u64,
    /// Every item through this line is imported.
    line: u64,
}

/// Where the progress of `file` is kept.
pub fn progress_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".import-progress");
    PathBuf::from(name)
}

fn open(path: &Path, format: Format) -> anyhow::Result<Items<std::io::BufReader<std::fs::File>>> {
    let reader =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(Items::new(
        std::io::BufReader::with_capacity(1 << 20, reader),
        format,
    ))
}

/// Checks every line; the number of items.
fn check(path: &Path, format: Format) -> anyhow::Result<u64> {
    let mut count = 0;
    for item in open(path, format)? {
        if let Err(bad) = item {
            bail!(
                "{}:{}: {} (nothing was imported)",
                path.display(),
                bad.line,
                bad.reason
            );
        }
        count += 1;
    }
    Ok(count)
}

/// A message ready to send.
struct Message {
    request: pb::ImportResourcesRequest,
    last_line: u64,
}

/// Reads the file after line `after` into messages of `batch` items (a thread of its own).
fn produce(path: PathBuf, format: Format, after: u64, batch: usize, out: mpsc::Sender<Message>) {
    let Ok(items) = open(&path, format) else {
        return;
    };
    let mut items_of_message = Vec::with_capacity(batch);
    let mut last_line = 0;
    for item in items {
        // Checked before: a line that fails now (the file changed) ends the stream short.
        let Ok(item) = item else { return };
        if item.line <= after {
            continue;
        }
        last_line = item.line;
        items_of_message.push(item);
        if items_of_message.len() == batch {
            let request = pb::ImportResourcesRequest {
                items: std::mem::replace(&mut items_of_message, Vec::with_capacity(batch)),
            };
            if out.blocking_send(Message { request, last_line }).is_err() {
                return;
            }
        }
    }
    if !items_of_message.is_empty() {
        let request = pb::ImportResourcesRequest {
            items: items_of_message,
        };
        let _ = out.blocking_send(Message { request, last_line });
    }
}

/// Runs an import.
pub async fn run(options: &Options) -> anyhow::Result<Summary> {
    let started = Instant::now();
    if !(1..=5000).contains(&options.batch) {
        bail!("--batch must be 1 to 5000 (it is {})", options.batch);
    }
    let format = options.format.unwrap_or_else(|| Format::of(&options.file));
    let file_len = std::fs::metadata(&options.file)
        .with_context(|| format!("cannot open {}", options.file.display()))?
        .len();
    let progress_file = progress_path(&options.file);
    let after = if options.resume {
        resume_point(&progress_file, file_len)?
    } else {
        0
    };
    let path = options.file.clone();
    let total = tokio::task::spawn_blocking(move || check(&path, format)).await??;
    let channel = tonic::transport::Endpoint::from_shared(options.server.clone())
        .context("--server is not a URL")?
        .connect()
        .await
        .with_context(|| format!("cannot reach {}", options.server))?;
    let key: tonic::metadata::MetadataValue<_> = options
        .service_key
        .parse()
        .context("the service key is not a valid header value")?;
    let mut client = PermissionServiceClient::new(channel)
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(16 << 20);

    let (sender, receiver) = mpsc::channel(4);
    let (path, batch) = (options.file.clone(), options.batch);
    std::thread::spawn(move || produce(path, format, after, batch, sender));
    let receiver = Arc::new(Mutex::new(receiver));
    let sent = Arc::new(AtomicU64::new(0));
    let sent_through = Arc::new(AtomicU64::new(after));
    let mut summary = Summary {
        skipped_through: after,
        ..Summary::default()
    };
    let ticker = options.progress.then(|| {
        let (sent, file) = (sent.clone(), options.file.display().to_string());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let n = sent.load(Ordering::Relaxed);
                let rate = n as f64 / started.elapsed().as_secs_f64();
                eprintln!("sentinel: {file}: {n} of {total} items sent ({rate:.0}/s)");
            }
        })
    });
    let result = loop {
        // A stream starts only with a message to send (an empty one is refused).
        let Some(first) = receiver.lock().await.recv().await else {
            break Ok(());
        };
        let segment = segment(first, &receiver, &sent, &sent_through, options.checkpoint);
        let mut request = tonic::Request::new(segment);
        request.metadata_mut().insert("x-service-key", key.clone());
        let response = match client.import_resources(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => break Err(status),
        };
        add(&mut summary.counts, &response);
        let through = sent_through.load(Ordering::Relaxed);
        keep(&progress_file, file_len, through)?;
        if options.progress {
            eprintln!(
                "sentinel: {}: imported through line {through}",
                options.file.display()
            );
        }
    };
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    summary.items = sent.load(Ordering::Relaxed);
    summary.elapsed = started.elapsed();
    match result {
        Ok(()) => {
            let _ = std::fs::remove_file(&progress_file);
            Ok(summary)
        }
        Err(status) => {
            let kept = resume_point(&progress_file, file_len).unwrap_or(after);
            let resume = if kept > 0 {
                format!(
                    "items through line {kept} are imported; fix the file and run again with --resume"
                )
            } else {
                "fix the file and run again".to_string()
            };
            bail!(
                "{}: {} ({:?}); {resume}",
                options.file.display(),
                status.message(),
                status.code()
            )
        }
    }
}

/// Longest a stream is kept open: well within the server's `request_timeout` (30 s by
/// default), which bounds a client-streaming call as a whole.
const STREAM_TIME: Duration = Duration::from_secs(10);

/// One stream's messages: `first`, then more from the shared queue up to `checkpoint` items
/// or [`STREAM_TIME`].
fn segment(
    first: Message,
    receiver: &Arc<Mutex<mpsc::Receiver<Message>>>,
    sent: &Arc<AtomicU64>,
    sent_through: &Arc<AtomicU64>,
    checkpoint: u64,
) -> impl futures::Stream<Item = pb::ImportResourcesRequest> + Send + 'static {
    let state = (
        Some(first),
        receiver.clone(),
        sent.clone(),
        sent_through.clone(),
        0u64,
    );
    let started = Instant::now();
    futures::stream::unfold(
        state,
        move |(first, receiver, sent, through, count)| async move {
            if count >= checkpoint.max(1) || started.elapsed() >= STREAM_TIME {
                return None;
            }
            let message = match first {
                Some(first) => first,
                None => receiver.lock().await.recv().await?,
            };
            let n = message.request.items.len() as u64;
            sent.fetch_add(n, Ordering::Relaxed);
            through.store(message.last_line, Ordering::Relaxed);
            Some((message.request, (None, receiver, sent, through, count + n)))
        },
    )
    .boxed()
}

fn add(total: &mut pb::ImportResourcesResponse, part: &pb::ImportResourcesResponse) {
    total.resources_created += part.resources_created;
    total.resources_updated += part.resources_updated;
    total.resources_unchanged += part.resources_unchanged;
    total.grants_set += part.grants_set;
    total.grants_unchanged += part.grants_unchanged;
    total.messages += part.messages;
    total.consistency_token = part.consistency_token.clone();
}

/// The line to resume after (0 with no progress kept); refused when the file changed size.
fn resume_point(progress_file: &Path, file_len: u64) -> anyhow::Result<u64> {
    let text = match std::fs::read_to_string(progress_file) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err).context("cannot read the import progress"),
    };
    let progress: Progress = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an import progress file", progress_file.display()))?;
    if progress.file_len != file_len {
        bail!(
            "the file changed since the progress in {} was kept; run without --resume",
            progress_file.display()
        );
    }
    Ok(progress.line)
}

fn keep(progress_file: &Path, file_len: u64, line: u64) -> anyhow::Result<()> {
    let text = serde_json::to_string(&Progress { file_len, line })?;
    std::fs::write(progress_file, text).context("cannot keep the import progress")
}
