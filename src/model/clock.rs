//! Where the domain reads the time: a [`Clock`] handed to the services that decide by it, so
//! rules about time (refresh-token replay windows, session and token lifetimes, revocation
//! horizons) are exercised by moving a clock rather than by waiting.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};

/// Now, to the microsecond: the precision both databases store, so that a record answered
/// right after it is written equals the same record read back later.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// The current time, as the domain sees it.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock: what every deployment runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        now()
    }
}

/// The system's clock moved ahead by an offset that only grows: time keeps flowing, and
/// [`AdjustableClock::advance`] skips ahead (a test steps past a window without sleeping
/// through it).
#[derive(Debug, Default)]
pub struct AdjustableClock {
    ahead_ms: AtomicI64,
}

impl AdjustableClock {
    /// Moves the clock `by` ahead.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.ahead_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

impl Clock for AdjustableClock {
    fn now(&self) -> DateTime<Utc> {
        now() + chrono::Duration::milliseconds(self.ahead_ms.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adjustable_clock_moves_ahead_and_keeps_flowing() {
        let clock = AdjustableClock::default();
        let start = now();
        assert!(clock.now() >= start);
        clock.advance(Duration::from_secs(3600));
        let ahead = clock.now() - start;
        assert!(ahead >= chrono::Duration::seconds(3600), "{ahead}");
        assert!(ahead < chrono::Duration::seconds(3660), "{ahead}");
        assert!(SystemClock.now() >= start);
    }
}
