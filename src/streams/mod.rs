//! What the server streams (Watch, WatchRevocations) share: they ask, every [`RECHECK`],
//! whether their caller may still listen, and end with the error when not; each holds one of
//! its key's [`slots`] while open.

use std::time::Duration;

use futures::future::BoxFuture;

use crate::error::Error;

pub mod slots;

pub use slots::{StreamSlot, StreamSlots};

/// How often an open stream asks whether its caller may still listen.
pub const RECHECK: Duration = Duration::from_secs(1);

/// Asked every [`RECHECK`]: whether the caller may still listen (its key may have been rotated
/// out, deactivated or deleted meanwhile). An error ends the stream with that error.
pub type StillAllowed = Box<dyn Fn() -> BoxFuture<'static, Result<(), Error>> + Send + Sync>;

/// A stream's periodic question to [`StillAllowed`].
pub struct Recheck {
    still_allowed: StillAllowed,
    last: tokio::time::Instant,
}

impl Recheck {
    /// Asks `still_allowed` every [`RECHECK`] from now on.
    pub fn new(still_allowed: StillAllowed) -> Self {
        Self {
            still_allowed,
            last: tokio::time::Instant::now(),
        }
    }

    /// Asks when a [`RECHECK`] has passed since the last question; the error ends the stream.
    pub async fn when_due(&mut self) -> Result<(), Error> {
        if self.last.elapsed() < RECHECK {
            return Ok(());
        }
        self.last = tokio::time::Instant::now();
        (self.still_allowed)().await
    }
}
