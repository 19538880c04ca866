//! How many handles one attachment holds to each slot, and the 0 <-> 1 transitions that
//! set and clear the attachment's bit in the slot's state word.
//!
//! This file depends only on `crate::sync`, so `tests/loom_shm.rs` includes it with loom's
//! atomics and model-checks it together with `protocol.rs`.
//!
//! A count is 0 (no handle, our bit clear), `n > 0` (n handles, our bit set) or
//! [`LOCKED`] while one thread moves it between 0 and 1 and sets or clears the bit in the
//! shared word; other threads of the process wait for that. So the bit is set exactly
//! while the count is positive, seen from outside a transition, and threads of one
//! process never race on the bit.

use crate::sync::{AtomicU32, Ordering, spin_loop, yield_now};

/// A count in the middle of a 0 <-> 1 transition.
pub(crate) const LOCKED: u32 = u32::MAX;

/// The largest count before the process aborts (as `Arc` does).
const MAX_COUNT: u32 = 1 << 30;

/// What [`LocalCount::acquire`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The first handle of this attachment: the `join` closure succeeded.
    First,
    /// Another handle of an attachment that already held the slot (in some generation:
    /// the caller checks it, and releases if it is not the one it wanted).
    More,
    /// `join` refused: the slot is not live in the wanted generation.
    Refused,
}

/// The count was neither 0 nor locked where a free slot was expected: the segment's
/// state contradicts this attachment's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Inconsistent;

/// Waits a moment for another thread of this process to finish a transition.
#[inline]
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        spin_loop();
    } else {
        yield_now();
    }
}

/// One slot's count of handles in one attachment.
#[derive(Debug)]
pub(crate) struct LocalCount(AtomicU32);

impl LocalCount {
    /// No handle.
    pub(crate) fn new() -> Self {
        Self(AtomicU32::new(0))
    }

    /// The count (a snapshot; `LOCKED` mid-transition).
    pub(crate) fn get(&self) -> u32 {
        // Relaxed: introspection, like `Arc::strong_count`.
        self.0.load(Ordering::Relaxed)
    }

    /// The first handle to a slot this process just claimed: `activate` sets our bit.
    pub(crate) fn first_of_claim(&self, activate: impl FnOnce()) -> Result<(), Inconsistent> {
        let mut spins = 0;
        loop {
            // Acquire/Relaxed: a stale `acquire` of this process may hold the count of
            // this free slot locked (it will be refused); we wait for it.
            match self
                .0
                .compare_exchange_weak(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(LOCKED) | Err(0) => backoff(&mut spins),
                Err(_) => return Err(Inconsistent),
            }
        }
        activate();
        // Release: pairs with the Acquire of other threads of this process that get a
        // handle through the count (`acquire`), publishing the activation to them.
        self.0.store(1, Ordering::Release);
        Ok(())
    }

    /// Adds a handle from a token: the first one runs `join` (which sets our bit if the
    /// slot is live in the token's generation).
    pub(crate) fn acquire(&self, join: impl FnOnce() -> bool) -> Acquired {
        let mut spins = 0;
        // Acquire: pairs with the Release store that ended the last transition.
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            if current == LOCKED {
                backoff(&mut spins);
                // Acquire: as above.
                current = self.0.load(Ordering::Acquire);
                continue;
            }
            if current == 0 {
                // Acquire: as above; we own the transition once this succeeds.
                match self
                    .0
                    .compare_exchange_weak(0, LOCKED, Ordering::Acquire, Ordering::Acquire)
                {
                    Ok(_) => {
                        let joined = join();
                        // Release: publishes the (Acquired) payload to threads of this
                        // process that get a handle through the count.
                        self.0.store(u32::from(joined), Ordering::Release);
                        return if joined {
                            Acquired::First
                        } else {
                            Acquired::Refused
                        };
                    }
                    Err(actual) => {
                        current = actual;
                        continue;
                    }
                }
            }
            if current >= MAX_COUNT {
                crate::sync::abort_on_overflow();
            }
            // Acquire: synchronizes with the Release store of the thread that set our
            // bit (later RMWs continue its release sequence), so the payload is visible.
            match self.0.compare_exchange_weak(
                current,
                current + 1,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Acquired::More,
                Err(actual) => current = actual,
            }
        }
    }

    /// Adds a handle made from an existing one (a clone).
    #[inline]
    pub(crate) fn clone_one(&self) {
        // Relaxed: the caller's handle keeps the count positive (so not locked and our
        // bit set); a new handle made from it needs no ordering, as for `Arc::clone`.
        if self.0.fetch_add(1, Ordering::Relaxed) >= MAX_COUNT {
            crate::sync::abort_on_overflow();
        }
    }

    /// Drops a handle. The last one runs `leave` (which clears our bit and frees the slot
    /// if that was the last bit) and returns `true`.
    #[inline]
    pub(crate) fn release(&self, leave: impl FnOnce()) -> bool {
        let mut spins = 0;
        // Relaxed: a comparison value; the CAS below orders.
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            if current == LOCKED {
                // Not reachable while the caller holds a handle (only a count of 0, or
                // the only handle's own, is locked), but waiting is the safe answer.
                backoff(&mut spins);
                // Relaxed: as above.
                current = self.0.load(Ordering::Relaxed);
                continue;
            }
            debug_assert!(current > 0, "released a slot this process does not hold");
            if current > 1 {
                // Release: orders this handle's reads before the process's last release.
                match self.0.compare_exchange_weak(
                    current,
                    current - 1,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return false,
                    Err(actual) => current = actual,
                }
                continue;
            }
            // Acquire: pairs with the Release decrements of this process's other handles,
            // so their reads happen-before `leave` (whose clear is Release).
            match self
                .0
                .compare_exchange_weak(1, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    leave();
                    // Release: ends the transition for waiting threads of this process.
                    self.0.store(0, Ordering::Release);
                    return true;
                }
                Err(actual) => current = actual,
            }
        }
    }
}
