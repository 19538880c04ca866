//! Parking readers that ran out of events, and waking them from the writer.
//!
//! The writer pays one `SeqCst` fence and one load per event; it takes the mutex only
//! when some reader is actually parked. The protocol is the classic store-buffer
//! (Dekker) handshake: a parking reader counts itself in, fences, and re-checks its slot;
//! the writer publishes, fences, and reads the count. With both fences `SeqCst`, at least
//! one side sees the other's store, so a reader never sleeps through an event.

use std::sync::PoisonError;
use std::time::Instant;

use crate::sync::{AtomicU32, Condvar, Mutex, Ordering, fence};

/// The parked-reader count and what they sleep on.
pub(super) struct Waiters {
    count: AtomicU32,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Waiters {
    pub(super) fn new() -> Self {
        Self {
            count: AtomicU32::new(0),
            lock: Mutex::new(()),
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

    /// Wakes every parked reader unconditionally (the writer is gone).
    #[cold]
    pub(super) fn notify_all(&self) {
        // Taking the lock waits out any reader between its re-check and its sleep, so
        // the notification cannot fall into that gap.
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.wake.notify_all();
    }

    /// Sleeps until woken, `deadline` passes, or `ready()` holds. `ready` must read the
    /// state the writer publishes before calling [`notify`](Self::notify) (the reader's
    /// slot, the closed flag).
    ///
    /// Returns early (spuriously) at times; the caller loops.
    pub(super) fn park(&self, deadline: Option<Instant>, ready: impl Fn() -> bool) {
        let guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        // Relaxed: the fence below orders it before the re-check.
        self.count.fetch_add(1, Ordering::Relaxed);
        // SeqCst fence: the reader's half of the handshake: either `ready()` sees the
        // writer's publication, or the writer's count load sees this increment.
        fence(Ordering::SeqCst);
        if !ready() {
            match deadline {
                None => drop(
                    self.wake
                        .wait(guard)
                        .unwrap_or_else(PoisonError::into_inner),
                ),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if !left.is_zero() {
                        let woken = self.wake.wait_timeout(guard, left);
                        drop(woken.unwrap_or_else(PoisonError::into_inner));
                    }
                }
            }
        }
        // Relaxed: the count only gates whether the writer takes the lock; a late
        // decrement costs at most one needless notification.
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}
