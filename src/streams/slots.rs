//! Concurrent server streams (`Watch`, `WatchRevocations`) per service key: each open stream
//! holds a slot until it ends, and a key past its slots is refused, so one client cannot hold
//! an unbounded number of streams (each a task and periodic queries) on a replica.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::error::Error;

/// Open streams per service app, on this replica.
#[derive(Debug)]
pub struct StreamSlots {
    open: Mutex<HashMap<Uuid, u32>>,
    max_per_key: u32,
}

/// One open stream; dropping it (the stream ended or the client went away) frees the slot.
#[derive(Debug)]
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    app: Uuid,
}

impl StreamSlots {
    /// At most `max_per_key` streams per service app at once.
    pub fn new(max_per_key: u32) -> Arc<Self> {
        Arc::new(Self {
            open: Mutex::new(HashMap::new()),
            max_per_key,
        })
    }

    /// A slot for a new stream of `app`, or RESOURCE_EXHAUSTED when it has them all.
    pub fn acquire(self: &Arc<Self>, app: Uuid) -> Result<StreamSlot, Error> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(app).or_insert(0);
        if *count >= self.max_per_key {
            return Err(Error::ResourceExhausted {
                retry_after: std::time::Duration::from_secs(1),
            });
        }
        *count += 1;
        Ok(StreamSlot {
            slots: self.clone(),
            app,
        })
    }

    /// Streams `app` holds open.
    pub fn open_for(&self, app: Uuid) -> u32 {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&app)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.app) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.app);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_key_and_freed_on_drop() {
        let slots = StreamSlots::new(2);
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let first = slots.acquire(a).unwrap();
        let _second = slots.acquire(a).unwrap();
        assert!(matches!(
            slots.acquire(a),
            Err(Error::ResourceExhausted { .. })
        ));
        let _other = slots.acquire(b).unwrap();
        drop(first);
        assert_eq!(slots.open_for(a), 1);
        let _third = slots.acquire(a).unwrap();
        assert_eq!(slots.open_for(a), 2);
    }
}
