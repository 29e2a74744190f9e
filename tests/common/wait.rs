//! Waiting without racing. A property that the system makes true "soon" (a revocation reaching
//! another instance, a cache entry expiring) is polled until it holds, with a deadline generous
//! enough that a slow, loaded runner only waits longer; how soon it holds is a figure for the
//! benchmarks, never an assertion. Every stream read has a deadline too, so a regression fails
//! the test instead of hanging CI.

use std::future::Future;
use std::time::Duration;

/// How long a test waits for something that should happen at once or within a configured
/// window. Far above any window a test configures: reaching it means the thing never happens.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `condition` until it answers true; panics naming `what` after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut pause = Duration::from_millis(10);
    loop {
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still not true after {PATIENCE:?}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// The next message of a server stream (`None` when it ended, `Err` when it failed); panics
/// naming `what` when nothing arrives within [`PATIENCE`].
pub async fn next<T>(
    stream: &mut tonic::Streaming<T>,
    what: &str,
) -> Result<Option<T>, tonic::Status> {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing on the stream within {PATIENCE:?}"))
}

/// Awaits `future`, panicking naming `what` when it does not finish within [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: did not finish within {PATIENCE:?}"))
}
