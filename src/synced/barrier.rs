//! The cycle barrier: one atomic word for arrivals, epoch and poison, and a
//! Mutex/Condvar pair for threads that stop spinning.
//!
//! # The state word
//!
//! ```text
//! bit 63 .. 32   epoch: the number of completed cycles (wraps, compared only for change)
//! bit 31         poison: set once, by a leaving or panicking handle or by `stop`
//! bit 30 ..  0   count: arrivals in the current cycle
//! ```
//!
//! An arrival is one `fetch_add(1)`. The arrival that brings the count to `parties` is the
//! last; it moves the epoch on and takes the count back to zero in one more `fetch_add`
//! (never a store, so a concurrent poison bit is never lost). Everyone else waits for
//! the epoch to change: a bounded spin, a few `yield_now`s, then the condition variable.
//!
//! # Orderings
//!
//! * Arrival `fetch_add(1)`, AcqRel. Release publishes the arriving thread's segment
//!   write; Acquire lets the last arrival see every earlier one's (the arrivals of one
//!   cycle are one chain of read-modify-writes, so each is in the release sequence of
//!   the ones before it).
//! * Epoch `fetch_add`, Release: passes everything the last arrival acquired on to the
//!   waiters, whose epoch loads are Acquire.
//! * Sleeper handshake. A waiter that blocks first increments `sleepers` (AcqRel RMW)
//!   and then re-reads the state word, both under the mutex; a waker first moves the
//!   state word and then reads `sleepers` with an RMW (`fetch_add(0)`, AcqRel). RMWs of
//!   one location are totally ordered and each reads the latest value, so either the
//!   waker's RMW comes first (then it is Release, the waiter's increment is Acquire and
//!   reads from it, so the state update happens-before the waiter's re-read, which sees
//!   the new epoch and does not sleep), or the waiter's increment comes first (then the
//!   waker reads a non-zero count, takes the mutex, which the waiter holds until
//!   `Condvar::wait` releases it, and notifies). No wake-up is lost. A plain load on the
//!   waker's side would need SeqCst store-buffering reasoning, which loom does not
//!   model; the RMW is on a line the waker has just written anyway.
//!
//! An epoch is 32 bits and only compared for change: a waiter cannot sleep through 2^32
//! cycles, because no cycle completes without its arrival.

use core::fmt;

use crate::sync::{AtomicU64, AtomicUsize, Condvar, Mutex, Ordering, spin_loop, yield_now};

const COUNT_MASK: u64 = (1 << 31) - 1;
const POISON: u64 = 1 << 31;
const EPOCH_SHIFT: u32 = 32;
const EPOCH_ONE: u64 = 1 << EPOCH_SHIFT;

/// The most parties a barrier supports (the count field's range).
pub(super) const MAX_PARTIES: usize = COUNT_MASK as usize;

/// Spins before yielding, when every party can have a core of its own. Short on
/// purpose: on the 2-core (shared) development machine, 300 or 2000 spins made a
/// 2-thread cycle 3 to 40 times slower than 0 or 16 (the thread being waited for is
/// often off its core, or on the sibling hyperthread the spinner slows down).
const SPINS: u32 = if cfg!(any(loom, miri)) { 0 } else { 16 };
/// `yield_now` calls before blocking on the condition variable. Measured: 8 to 32 gave
/// the fastest cycles for 2 and 4 threads on 2 cores; 64 (with long spins) and 0 to 2
/// were slower.
const YIELDS: u32 = if cfg!(any(loom, miri)) { 0 } else { 16 };

/// Why a barrier was poisoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cause {
    /// The handle of this id was dropped.
    Left(usize),
    /// The handle of this id was dropped while its thread panicked.
    Panicked(usize),
    /// `SyncedMemory::stop` was called.
    Stopped,
}

impl Cause {
    fn encode(self) -> u64 {
        match self {
            Cause::Stopped => 1,
            Cause::Left(id) => 2 | (id as u64) << 2,
            Cause::Panicked(id) => 3 | (id as u64) << 2,
        }
    }

    fn decode(word: u64) -> Option<Cause> {
        let id = (word >> 2) as usize;
        match word & 3 {
            0 => None,
            1 => Some(Cause::Stopped),
            2 => Some(Cause::Left(id)),
            _ => Some(Cause::Panicked(id)),
        }
    }
}

/// A reusable, poisonable barrier for `parties` threads.
#[repr(align(128))]
pub(super) struct Barrier {
    /// `epoch << 32 | poison << 31 | count`; see the module docs.
    state: AtomicU64,
    /// Threads blocked (or about to block) on `cvar`.
    sleepers: AtomicUsize,
    /// The first poison cause, encoded; 0 while not poisoned.
    cause: AtomicU64,
    lock: Mutex<()>,
    cvar: Condvar,
    parties: u64,
    /// Spins before yielding: `SPINS`, or 0 when there are more parties than cores.
    spins: u32,
    /// `yield_now` calls before blocking: `YIELDS`.
    yields: u32,
}

impl Barrier {
    /// A barrier for `parties` (at most [`MAX_PARTIES`]) threads.
    pub(super) fn new(parties: usize) -> Self {
        debug_assert!(parties <= MAX_PARTIES);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            state: AtomicU64::new(0),
            sleepers: AtomicUsize::new(0),
            cause: AtomicU64::new(0),
            lock: Mutex::new(()),
            cvar: Condvar::new(),
            parties: parties as u64,
            // Oversubscribed (or a single core): a spinning waiter only delays the
            // threads it waits for, so go straight to yielding.
            spins: if parties > cores { 0 } else { SPINS },
            yields: YIELDS,
        }
    }

    /// Completed cycles (modulo 2^32).
    pub(super) fn epoch(&self) -> u32 {
        // Relaxed: informational; callers that need the data of a cycle get it through
        // `arrive_and_wait`.
        (self.state.load(Ordering::Relaxed) >> EPOCH_SHIFT) as u32
    }

    /// The poison cause, if the barrier is poisoned.
    pub(super) fn poisoned(&self) -> Option<Cause> {
        // Acquire: pairs with the Release `fetch_or` in `poison`, after which
        // `cause` is set.
        if self.state.load(Ordering::Acquire) & POISON == 0 {
            return None;
        }
        self.cause_after_poison()
    }

    fn cause_after_poison(&self) -> Option<Cause> {
        // Relaxed: the caller saw the poison bit with Acquire, and `cause` was set (by
        // this poisoner or an earlier one, whose value the failed CAS read) before the
        // bit was, so coherence guarantees this load sees it.
        Cause::decode(self.cause.load(Ordering::Relaxed)).or(Some(Cause::Stopped))
    }

    /// Poisons the barrier (the first cause is kept) and wakes every waiter.
    pub(super) fn poison(&self, cause: Cause) {
        // Relaxed: `cause` is published by the Release `fetch_or` below. A failed
        // exchange means an earlier cause is already recorded, which wins.
        let _ =
            self.cause
                .compare_exchange(0, cause.encode(), Ordering::Relaxed, Ordering::Relaxed);
        // Release: publishes `cause` to whoever sees the bit with Acquire.
        self.state.fetch_or(POISON, Ordering::Release);
        self.wake();
    }

    /// Arrives and waits until every party has arrived in this cycle.
    ///
    /// `Ok` means the cycle completed: every party's writes before its arrival
    /// happen-before this return. `Err` means the barrier is (or became) poisoned before
    /// the cycle completed.
    pub(super) fn arrive_and_wait(&self) -> Result<(), Cause> {
        // AcqRel: Release publishes this thread's write; Acquire (for the last arrival)
        // sees every earlier arrival's, see the module docs.
        let old = self.state.fetch_add(1, Ordering::AcqRel);
        if old & POISON != 0 {
            return Err(self.cause_after_poison().unwrap_or(Cause::Stopped));
        }
        let epoch = old >> EPOCH_SHIFT;
        if (old & COUNT_MASK) + 1 == self.parties {
            // The last arrival: no one else can arrive until the epoch moves, so the
            // count is exactly `parties`; take it back to 0 and move the epoch on.
            // Release: passes every arrival's writes (acquired above) on to the
            // waiters' Acquire loads.
            self.state
                .fetch_add(EPOCH_ONE.wrapping_sub(self.parties), Ordering::Release);
            self.wake();
            return Ok(());
        }
        self.wait_for_epoch_change(epoch)
    }

    /// Whether waiting is over, from one view of the state word.
    fn check(&self, word: u64, epoch: u64) -> Option<Result<(), Cause>> {
        if word >> EPOCH_SHIFT != epoch {
            // The cycle completed (even if poison came after: its data is whole).
            Some(Ok(()))
        } else if word & POISON != 0 {
            Some(Err(self.cause_after_poison().unwrap_or(Cause::Stopped)))
        } else {
            None
        }
    }

    #[cold]
    fn wait_for_epoch_change(&self, epoch: u64) -> Result<(), Cause> {
        for _ in 0..self.spins {
            // Acquire: pairs with the last arrival's Release epoch update, or a poison
            // `fetch_or` (later RMWs continue their release sequences).
            if let Some(done) = self.check(self.state.load(Ordering::Acquire), epoch) {
                return done;
            }
            spin_loop();
        }
        for _ in 0..self.yields {
            // Acquire: as above.
            if let Some(done) = self.check(self.state.load(Ordering::Acquire), epoch) {
                return done;
            }
            yield_now();
        }
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // AcqRel: the waiter's half of the sleeper handshake (module docs); Acquire
        // makes a waker's earlier state update visible to the re-read below.
        self.sleepers.fetch_add(1, Ordering::AcqRel);
        let done = loop {
            // Acquire: the re-read of the handshake, and as above.
            if let Some(done) = self.check(self.state.load(Ordering::Acquire), epoch) {
                break done;
            }
            guard = self.cvar.wait(guard).unwrap_or_else(|e| e.into_inner());
        };
        // Relaxed: a stale non-zero count only costs a waker one needless notify.
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
        drop(guard);
        done
    }

    /// Wakes every blocked waiter, if there is one (called after moving the state word).
    fn wake(&self) {
        // AcqRel RMW: the waker's half of the sleeper handshake (module docs); Release
        // hands the state update to a waiter whose increment comes later.
        if self.sleepers.fetch_add(0, Ordering::AcqRel) != 0 {
            // Taking the lock orders this notify after any waiter that is between its
            // re-read and `Condvar::wait`, so the notify cannot fall in between.
            drop(self.lock.lock().unwrap_or_else(|e| e.into_inner()));
            self.cvar.notify_all();
        }
    }

    /// Back to epoch 0, no arrivals, not poisoned. `&mut self`: no thread is waiting.
    pub(super) fn reset(&mut self) {
        // Relaxed: `&mut self` excludes every other access; the next sharing of the
        // barrier (an `Arc` clone, a thread spawn) publishes these stores.
        self.state.store(0, Ordering::Relaxed);
        self.cause.store(0, Ordering::Relaxed);
        self.sleepers.store(0, Ordering::Relaxed);
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Relaxed: a snapshot for display only.
        let word = self.state.load(Ordering::Relaxed);
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("epoch", &(word >> EPOCH_SHIFT))
            .field("arrived", &(word & COUNT_MASK))
            .field("poisoned", &(word & POISON != 0))
            .finish_non_exhaustive()
    }
}
