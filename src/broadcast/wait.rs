//! Parking readers that ran out of events, and waking them from the writer.
//!
//! The writer pays one read-modify-write of the parked-reader count per event (on a line
//! no reader touches unless it parks); it takes the mutex only when some reader parked
//! since its last wake-up, and then wakes them all at once and resets the count, so a
//! stream of events costs one wake-up per parking, not one per event.
//!
//! The handshake: a parking reader adds itself to the count with an AcqRel RMW and then
//! re-checks its slot; the writer publishes and then reads the count with an AcqRel RMW
//! (`fetch_add(0)`). RMWs of one location are totally ordered and each reads the latest
//! value. If the writer's RMW comes later, it reads the reader's increment and wakes it.
//! If it comes first, the reader's RMW reads from it (through the release sequence), so
//! the writer's publication happens-before the reader's re-check, which sees the event
//! and does not sleep. No `SeqCst` is needed, and loom checks the argument directly.

use std::sync::PoisonError;
use std::time::Instant;

use crate::sync::{AtomicU32, Condvar, Mutex, Ordering};

/// The parked-reader count and what they sleep on.
pub(super) struct Waiters {
    /// Readers parked since the last wake-up. Written only under `wakeups`' lock.
    count: AtomicU32,
    /// How many wake-ups there have been: a parked reader tells a wake-up (which reset
    /// `count` for it) from a timeout or a spurious return (after which it takes its own
    /// count back).
    wakeups: Mutex<u64>,
    wake: Condvar,
}

impl Waiters {
    pub(super) fn new() -> Self {
        Self {
            count: AtomicU32::new(0),
            wakeups: Mutex::new(0),
            wake: Condvar::new(),
        }
    }

    /// Wakes every parked reader, if any. Called by the writer after each publication.
    #[inline]
    pub(super) fn notify(&self) {
        // AcqRel RMW: the writer's half of the handshake (module docs). Release hands the
        // publication to a reader whose increment comes later in the count's order.
        if self.count.fetch_add(0, Ordering::AcqRel) != 0 {
            self.notify_all();
        }
    }

    /// Wakes every parked reader unconditionally (also when the writer goes away).
    #[cold]
    pub(super) fn notify_all(&self) {
        // Taking the lock waits out any reader between its re-check and its sleep, so
        // the wake-up cannot fall into that gap.
        let mut wakeups = self.wakeups.lock().unwrap_or_else(PoisonError::into_inner);
        *wakeups += 1;
        // Relaxed: written under the lock, which orders it for the next parking reader.
        self.count.store(0, Ordering::Relaxed);
        self.wake.notify_all();
    }

    /// Sleeps until woken, `deadline` passes, or `ready()` holds. `ready` must read the
    /// state the writer publishes before calling [`notify`](Self::notify) (the reader's
    /// slot, the closed flag).
    ///
    /// Returns early (spuriously) at times; the caller loops.
    pub(super) fn park(&self, deadline: Option<Instant>, ready: impl Fn() -> bool) {
        let mut guard = self.wakeups.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = *guard;
        // AcqRel RMW: the reader's half of the handshake (module docs): either the
        // writer's later RMW reads this increment, or this Acquire reads from the
        // writer's earlier Release RMW and `ready()` below sees its publication.
        self.count.fetch_add(1, Ordering::AcqRel);
        if !ready() {
            guard = match deadline {
                None => self
                    .wake
                    .wait(guard)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        guard
                    } else {
                        let woken = self.wake.wait_timeout(guard, left);
                        woken.unwrap_or_else(PoisonError::into_inner).0
                    }
                }
            };
        }
        if *guard == seen {
            // No wake-up reset the count since this reader added itself: take it back.
            // Relaxed: under the lock, like every other write of the count.
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
