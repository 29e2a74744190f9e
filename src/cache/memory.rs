//! In-process cache for the embedded mode (and the fallback counters of the rate limiter).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{Cache, CacheResult, Subscription, WindowCount};

/// Entries beyond this count trigger a sweep of expired ones on the next write.
const SWEEP_THRESHOLD: usize = 10_000;

#[derive(Default)]
struct State {
    values: HashMap<String, (Vec<u8>, Instant)>,
    counters: HashMap<String, (u64, Instant)>,
    channels: HashMap<String, broadcast::Sender<Vec<u8>>>,
}

impl State {
    fn sweep(&mut self, now: Instant) {
        if self.values.len() > SWEEP_THRESHOLD {
            self.values.retain(|_, (_, expires)| *expires > now);
        }
        if self.counters.len() > SWEEP_THRESHOLD {
            self.counters.retain(|_, (_, expires)| *expires > now);
        }
    }
}

/// A process-local [`Cache`].
#[derive(Default)]
pub struct MemoryCache {
    state: Mutex<State>,
}

impl MemoryCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-update of plain maps; the data
        // is still structurally valid, so keep serving.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

#[async_trait]
impl Cache for MemoryCache {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> CacheResult<()> {
        Ok(())
    }

    async fn get(&self, key: &str) -> CacheResult<Option<Vec<u8>>> {
        let now = Instant::now();
        Ok(self.with_state(|s| match s.values.get(key) {
            Some((value, expires)) if *expires > now => Some(value.clone()),
            _ => None,
        }))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<()> {
        let now = Instant::now();
        self.with_state(|s| {
            s.sweep(now);
            s.values
                .insert(key.to_string(), (value.to_vec(), now + ttl));
        });
        Ok(())
    }

    async fn take(&self, key: &str) -> CacheResult<Option<Vec<u8>>> {
        let now = Instant::now();
        Ok(self.with_state(|s| match s.values.remove(key) {
            Some((value, expires)) if expires > now => Some(value),
            _ => None,
        }))
    }

    async fn delete(&self, key: &str) -> CacheResult<bool> {
        let now = Instant::now();
        Ok(self.with_state(|s| {
            s.values
                .remove(key)
                .is_some_and(|(_, expires)| expires > now)
        }))
    }

    async fn hit(&self, key: &str, window: Duration) -> CacheResult<WindowCount> {
        let now = Instant::now();
        Ok(self.with_state(|s| {
            s.sweep(now);
            let entry = s
                .counters
                .entry(key.to_string())
                .or_insert((0, now + window));
            if entry.1 <= now {
                *entry = (0, now + window);
            }
            entry.0 += 1;
            WindowCount {
                count: entry.0,
                resets_in: entry.1.saturating_duration_since(now),
            }
        }))
    }

    async fn publish(&self, channel: &str, payload: &[u8]) -> CacheResult<()> {
        self.with_state(|s| {
            if let Some(sender) = s.channels.get(channel) {
                // No receiver is not an error: nobody is listening right now.
                let _ = sender.send(payload.to_vec());
            }
        });
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> CacheResult<Subscription> {
        let rx = self.with_state(|s| {
            s.channels
                .entry(channel.to_string())
                .or_insert_with(|| broadcast::channel(1024).0)
                .subscribe()
        });
        Ok(Subscription::new(rx))
    }
}
