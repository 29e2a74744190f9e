//! The one follower loop: a replica keeps a copy of a database log current by reading it on
//! every nudge published on a channel and at least every poll interval, so a lost nudge (or a
//! cache that is down) costs at most one interval.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Cache, Subscription};

/// Rounds between attempts to subscribe again while the cache refuses.
const RESUBSCRIBE_EVERY: u64 = 20;

/// Runs `round(n)` (n = 1, 2, …) on every nudge on `channel` and at least every `poll`, until
/// `stop` changes. A round that fails logs and waits for the next one; it never ends the loop.
pub fn follow<F, Fut>(
    cache: Arc<dyn Cache>,
    channel: &'static str,
    poll: Duration,
    mut stop: watch::Receiver<bool>,
    mut round: F,
) -> JoinHandle<()>
where
    F: FnMut(u64) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut nudges: Option<Subscription> = cache.subscribe(channel).await.ok();
        let mut tick = tokio::time::interval(poll);
        let mut rounds: u64 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(_) = async {
                    match nudges.as_mut() {
                        Some(sub) => sub.next().await,
                        None => std::future::pending().await,
                    }
                } => {}
                _ = stop.changed() => break,
            }
            rounds += 1;
            round(rounds).await;
            if nudges.is_none() && rounds.is_multiple_of(RESUBSCRIBE_EVERY) {
                nudges = cache.subscribe(channel).await.ok();
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::cache::memory::MemoryCache;

    #[tokio::test(start_paused = true)]
    async fn rounds_run_on_nudges_and_on_the_poll_until_stopped() {
        let cache: Arc<dyn Cache> = Arc::new(MemoryCache::new());
        let (stop, stopped) = watch::channel(false);
        let rounds = Arc::new(AtomicU64::new(0));
        let counted = rounds.clone();
        let task = follow(
            cache.clone(),
            "test",
            Duration::from_secs(3600),
            stopped,
            move |_| {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            },
        );
        // The interval's first tick is immediate.
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(rounds.load(Ordering::SeqCst), 1);
        // A nudge runs a round long before the poll interval.
        cache.publish("test", b"1").await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(rounds.load(Ordering::SeqCst), 2);
        // Without nudges, the poll.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(rounds.load(Ordering::SeqCst), 3);
        stop.send(true).unwrap();
        task.await.unwrap();
    }
}
