//! Parking readers that ran out of events, and waking them from the writer.
//!
//! The writer pays one `SeqCst` fence and one load per event; it takes the mutex only
//! when some reader parked since its last wake-up, and then wakes them all at once and
//! resets the count, so a stream of events costs one wake-up per parking, not one per
//! event. The protocol is the classic store-buffer (Dekker) handshake: a parking reader
//! counts itself in, fences, and re-checks its slot; the writer publishes, fences, and
//! reads the count. With both fences `SeqCst`, at least one side sees the other's store,
//! so a reader never sleeps through an event.

use std::sync::PoisonError;
use std::time::Instant;

use crate::sync::{AtomicU32, Condvar, Mutex, Ordering, fence};

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
        // SeqCst fence: orders the publication before the count load (the writer's half
        // of the store-buffer handshake; the reader's fence in `park` is the other).
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fence above.
        if self.count.load(Ordering::Relaxed) != 0 {
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
        // Relaxed: the fence below orders it before the re-check.
        self.count.fetch_add(1, Ordering::Relaxed);
        // SeqCst fence: the reader's half of the handshake: either `ready()` sees the
        // writer's publication, or the writer's count load sees this increment.
        fence(Ordering::SeqCst);
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
