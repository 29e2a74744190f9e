//! Ephemeral shared state: one-time values with a TTL, fixed-window counters and pub/sub nudges.
//!
//! Nothing here is durable: losing it degrades the service (slower fan-out, per-replica rate
//! limits) but never loses data. The in-process implementation serves the embedded mode, Redis
//! the clustered mode; both pass one conformance suite.

mod follow;
pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::config::Config;

pub use follow::follow;

/// Errors of the cache layer; details are logged where they arise.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache server cannot be reached or timed out.
    #[error("cache unavailable")]
    Unavailable,
}

/// Result alias for cache calls.
pub type CacheResult<T> = Result<T, CacheError>;

/// State of a fixed-window counter after one hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    /// Hits in the current window, this one included.
    pub count: u64,
    /// Time until the window resets.
    pub resets_in: Duration,
}

/// Messages published on one channel. Slow readers skip ahead (`Lagged`): publishers send nudges
/// whose truth lives elsewhere, so a missed one is recovered by the reader's own polling.
pub struct Subscription {
    rx: broadcast::Receiver<Vec<u8>>,
}

impl Subscription {
    pub(crate) fn new(rx: broadcast::Receiver<Vec<u8>>) -> Self {
        Self { rx }
    }

    /// The next message; `None` once the cache is gone.
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            match self.rx.recv().await {
                Ok(message) => return Some(message),
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::debug!(skipped, "subscription lagged");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// The ephemeral-state interface.
#[async_trait]
pub trait Cache: Send + Sync {
    /// `memory` or `redis`, for logs.
    fn backend(&self) -> &'static str;
    /// Proves the cache answers.
    async fn ping(&self) -> CacheResult<()>;
    /// Reads a value.
    async fn get(&self, key: &str) -> CacheResult<Option<Vec<u8>>>;
    /// Stores a value that disappears after `ttl`.
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<()>;
    /// Reads and removes a value atomically: of concurrent callers, at most one gets it.
    async fn take(&self, key: &str) -> CacheResult<Option<Vec<u8>>>;
    /// Removes a value; says whether it existed.
    async fn delete(&self, key: &str) -> CacheResult<bool>;
    /// Counts one hit in the fixed window `key` of length `window`.
    async fn hit(&self, key: &str, window: Duration) -> CacheResult<WindowCount>;
    /// Sends `payload` to every current subscriber of `channel`, in every process.
    async fn publish(&self, channel: &str, payload: &[u8]) -> CacheResult<()>;
    /// Starts receiving what is published on `channel` from now on.
    async fn subscribe(&self, channel: &str) -> CacheResult<Subscription>;
}

/// Opens the cache selected by `config`.
pub async fn connect(config: &Config) -> anyhow::Result<Arc<dyn Cache>> {
    Ok(match &config.redis_url {
        Some(url) => Arc::new(redis::RedisCache::connect(url, &config.redis_prefix).await?),
        None => Arc::new(memory::MemoryCache::new()),
    })
}
