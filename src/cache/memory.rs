//! In-process cache for the embedded mode (and the fallback counters of the rate limiter).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{Cache, CacheResult, Subscription, WindowCount};

/// Which map an expiry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Value,
    Counter,
}

/// Entries with their expiry, and a min-heap of expiries so that each operation removes what
/// has expired in O(log n) per removed entry instead of scanning every entry.
#[derive(Default)]
struct State {
    values: HashMap<String, (Vec<u8>, Instant)>,
    counters: HashMap<String, (u64, Instant)>,
    /// (expiry, kind, key). An entry whose key was since overwritten with another expiry (or
    /// removed) is stale and skipped when it comes up.
    expiries: BinaryHeap<Reverse<(Instant, Kind, String)>>,
    channels: HashMap<String, broadcast::Sender<Vec<u8>>>,
}

impl State {
    fn schedule(&mut self, at: Instant, kind: Kind, key: &str) {
        self.expiries.push(Reverse((at, kind, key.to_string())));
        // Stale entries (overwritten keys) are bounded: rebuild from the live ones when they
        // outnumber them, which costs O(n) once per n pushes.
        let live = self.values.len() + self.counters.len();
        if self.expiries.len() > 2 * live + 1024 {
            let mut rebuilt = BinaryHeap::with_capacity(live);
            for (key, (_, at)) in &self.values {
                rebuilt.push(Reverse((*at, Kind::Value, key.clone())));
            }
            for (key, (_, at)) in &self.counters {
                rebuilt.push(Reverse((*at, Kind::Counter, key.clone())));
            }
            self.expiries = rebuilt;
        }
    }

    /// Removes every entry that has expired by `now`.
    fn expire(&mut self, now: Instant) {
        while let Some(Reverse((at, _, _))) = self.expiries.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, kind, key))) = self.expiries.pop() else {
                break;
            };
            match kind {
                Kind::Value => {
                    if self.values.get(&key).is_some_and(|(_, e)| *e == at) {
                        self.values.remove(&key);
                    }
                }
                Kind::Counter => {
                    if self.counters.get(&key).is_some_and(|(_, e)| *e == at) {
                        self.counters.remove(&key);
                    }
                }
            }
        }
    }

    /// Live entries (for tests and the bench).
    fn len(&self) -> usize {
        self.values.len() + self.counters.len()
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

    /// Entries not yet removed (expired ones go as operations pass their expiry).
    pub fn len(&self) -> usize {
        self.with_state(|s| s.len())
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
            s.expire(now);
            let at = now + ttl;
            s.values.insert(key.to_string(), (value.to_vec(), at));
            s.schedule(at, Kind::Value, key);
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
            s.expire(now);
            let (count, resets_at, fresh) = match s.counters.get_mut(key) {
                Some(entry) if entry.1 > now => {
                    entry.0 += 1;
                    (entry.0, entry.1, false)
                }
                _ => {
                    let at = now + window;
                    s.counters.insert(key.to_string(), (1, at));
                    (1, at, true)
                }
            };
            if fresh {
                s.schedule(resets_at, Kind::Counter, key);
            }
            WindowCount {
                count,
                resets_in: resets_at.saturating_duration_since(now),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_entries_leave_as_operations_pass_them() {
        let mut state = State::default();
        let now = Instant::now();
        for i in 0..100 {
            let at = now + Duration::from_millis(i);
            state.values.insert(format!("k{i}"), (vec![], at));
            state.schedule(at, Kind::Value, &format!("k{i}"));
        }
        state.expire(now + Duration::from_millis(49));
        assert_eq!(state.len(), 50);
        state.expire(now + Duration::from_secs(1));
        assert_eq!(state.len(), 0);
        assert!(state.expiries.is_empty());
    }

    #[test]
    fn an_overwritten_key_keeps_its_new_expiry() {
        let mut state = State::default();
        let now = Instant::now();
        let early = now + Duration::from_millis(10);
        let late = now + Duration::from_secs(10);
        state.values.insert("k".into(), (vec![1], early));
        state.schedule(early, Kind::Value, "k");
        state.values.insert("k".into(), (vec![2], late));
        state.schedule(late, Kind::Value, "k");
        state.expire(now + Duration::from_secs(1));
        assert_eq!(state.values.get("k").map(|v| v.0.clone()), Some(vec![2]));
    }

    #[test]
    fn stale_expiries_stay_bounded_under_rewrites() {
        let mut state = State::default();
        let now = Instant::now();
        for round in 0..50_000u64 {
            let at = now + Duration::from_secs(3600 + round);
            state.values.insert("hot".into(), (vec![], at));
            state.schedule(at, Kind::Value, "hot");
        }
        assert_eq!(state.len(), 1);
        assert!(
            state.expiries.len() <= 2 * state.len() + 1025,
            "{}",
            state.expiries.len()
        );
    }

    #[tokio::test]
    async fn counters_reset_per_window_and_are_removed_after_it() {
        let cache = MemoryCache::new();
        let first = cache.hit("a", Duration::from_millis(20)).await.unwrap();
        let second = cache.hit("a", Duration::from_millis(20)).await.unwrap();
        assert_eq!((first.count, second.count), (1, 2));
        for i in 0..1000 {
            cache
                .set(&format!("v{i}"), b"x", Duration::from_millis(20))
                .await
                .unwrap();
        }
        assert_eq!(cache.len(), 1001);
        tokio::time::sleep(Duration::from_millis(30)).await;
        // The next write removes everything that expired meanwhile.
        let third = cache.hit("a", Duration::from_secs(60)).await.unwrap();
        assert_eq!(third.count, 1, "a new window");
        assert_eq!(cache.len(), 1);
    }
}
