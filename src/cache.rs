//! Per-thread magazines of free slots (the slab allocators' magazine idea).
//!
//! A thread that releases a slot keeps it in a small magazine of its own instead of
//! pushing it onto the pool's shared free list, and its next allocation from that pool
//! takes it back from there: an allocate/drop pair on one thread then touches no shared
//! cache line and executes no locked instruction. When a magazine is full, half of it
//! goes back to the shared list as one chain, in one CAS.
//!
//! Every thread has [`WAYS`] magazines, each bound to one pool at a time. A bound
//! magazine holds one of the pool's keepalive units, so the pool's storage (and the
//! pointer identity the magazine is keyed on) outlives the binding. Slots in a magazine
//! are free but not yet returned; they go back to the shared list when the magazine is
//! rebound to another pool or its thread exits.
//!
//! # The budget
//!
//! Idle threads must not hoard a pool: a thread pool whose workers each freed a few slots
//! and went to sleep would otherwise keep them all. So a pool has a *budget* of cached
//! slots, an eighth of its capacity for all threads together (`pool::cache_budget`).
//! A magazine takes a share of it (its `limit`: a quarter of the budget, at most
//! [`MAGAZINE`]) with one CAS when it binds, and gives it back when it unbinds; a thread
//! that finds the budget spent does not cache that pool's slots at all (it releases to
//! the shared list). The hot paths (take, keep) touch only the thread's own magazine.
//! Consequences, documented on the pool types:
//!
//! * at most an eighth of a pool's slots are free but invisible to other threads, in all
//!   magazines together, so a pool refuses only when it is exhausted or at most that
//!   many of its free slots are cached elsewhere; a pool with no live slot always serves;
//! * after a pool's owner is dropped, its storage is freed once every thread that cached
//!   its slots has rebound that magazine or exited (releases into a closed pool bypass
//!   the magazines, so no new slots are cached).
//!
//! The magazines are plain thread-local data: no atomics, no sharing. Under loom they
//! are compiled out (the models explore the shared protocol).

use core::cell::RefCell;
use core::ptr::NonNull;

use crate::pool::Pool;

/// Magazines per thread.
pub(crate) const WAYS: usize = 8;
/// Slots per magazine.
pub(crate) const MAGAZINE: usize = 32;
static_assertions::const_assert!(MAGAZINE.is_power_of_two());

struct Magazine {
    /// The bound pool; the magazine owns one of its keepalive units and `limit` of its
    /// cache credits.
    pool: Option<NonNull<Pool>>,
    /// The most slots this magazine may hold: the credits it took from its pool.
    limit: usize,
    len: usize,
    slots: [u32; MAGAZINE],
}

impl Magazine {
    const EMPTY: Magazine = Magazine {
        pool: None,
        limit: 0,
        len: 0,
        slots: [0; MAGAZINE],
    };

    /// Returns every cached slot and the credits to the pool and gives up the keepalive
    /// unit.
    fn unbind(&mut self) {
        if let Some(pool) = self.pool.take() {
            // SAFETY: the magazine's unit keeps the pool alive; the slots are free slots
            // of this pool that only this magazine holds.
            unsafe { Pool::return_slots(pool, &self.slots[..self.len]) };
            self.len = 0;
            // SAFETY: the unit still keeps the pool alive.
            unsafe { pool.as_ref() }.give_cache_credits(self.limit);
            self.limit = 0;
            // SAFETY: we own this unit and drop the pointer with it.
            unsafe { Pool::unkeep(pool) };
        }
    }
}

struct ThreadCache {
    magazines: [Magazine; WAYS],
    next_victim: usize,
}

impl ThreadCache {
    /// Unbinds every magazine (thread exit).
    fn unbind_all(&mut self) {
        for magazine in &mut self.magazines {
            magazine.unbind();
        }
    }
}

thread_local! {
    /// The magazines. The type has no destructor, so the fast paths reach it at a fixed
    /// offset from the thread pointer, with no lazy-registration check.
    static CACHE: RefCell<ThreadCache> = const {
        RefCell::new(ThreadCache {
            magazines: [Magazine::EMPTY; WAYS],
            next_victim: 0,
        })
    };
    /// Its destructor, registered by the first binding of a magazine on this thread,
    /// unbinds them all at thread exit. Once it has run (or while it runs), no magazine
    /// binds any more, so nothing stays cached after the thread is gone.
    static UNBIND_AT_EXIT: UnbindAtExit = const { UnbindAtExit };
}

/// See [`UNBIND_AT_EXIT`].
struct UnbindAtExit;

impl Drop for UnbindAtExit {
    fn drop(&mut self) {
        // `CACHE` has no destructor, so it is still there; it is not borrowed (nothing
        // of this crate runs on this thread while a thread-local destructor does, except
        // other destructors, which borrow it only briefly and never across this one).
        let _ = CACHE.try_with(|cache| {
            if let Ok(mut cache) = cache.try_borrow_mut() {
                cache.unbind_all();
            }
        });
    }
}

impl ThreadCache {
    /// The magazine bound to `pool`, if any (a search of [`WAYS`] pointers, unrolled).
    #[inline(always)]
    fn bound_to(&mut self, pool: *const Pool) -> Option<&mut Magazine> {
        self.magazines
            .iter_mut()
            .find(|m| m.pool.is_some_and(|p| core::ptr::eq(p.as_ptr(), pool)))
    }
}

/// Takes a free slot of the pool at `pool` from this thread's magazines.
///
/// The slot is free and exclusively the caller's, exactly as if popped from the free list
/// (it was released on this thread, so its last holders' accesses happen-before).
///
/// The allocation fast path: `inline(always)` so that it compiles into the caller as a
/// thread-local lookup, a borrow flag, a few pointer compares and one load.
#[inline(always)]
pub(crate) fn take(pool: *const Pool) -> Option<u32> {
    CACHE
        .try_with(|cache| {
            let mut cache = cache.try_borrow_mut().ok()?;
            let magazine = cache.bound_to(pool)?;
            magazine.len = magazine.len.checked_sub(1)?;
            // `len <= MAGAZINE` always, so the mask changes nothing but lets the
            // compiler drop the bounds check.
            Some(magazine.slots[magazine.len % MAGAZINE])
        })
        .ok()
        .flatten()
}

/// Keeps the just-released slot `index` of `pool` if this thread already has a magazine
/// bound to `pool` with room in it: the release fast path (no binding, no flush, no call
/// into the pool). `false` otherwise; the caller then goes through [`keep`].
///
/// Touches only this thread's magazines, so it needs nothing of the pool to be alive; a
/// slot kept here is handed back by the magazine like every other.
#[inline(always)]
pub(crate) fn keep_bound(pool: NonNull<Pool>, index: u32) -> bool {
    CACHE
        .try_with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else {
                return false;
            };
            let Some(magazine) = cache.bound_to(pool.as_ptr()) else {
                return false;
            };
            let len = magazine.len;
            if len >= magazine.limit {
                return false;
            }
            // `len < limit <= MAGAZINE`; the mask only drops the bounds check.
            magazine.slots[len % MAGAZINE] = index;
            magazine.len = len + 1;
            true
        })
        .unwrap_or(false)
}

/// Runs `f` on this thread's magazine bound to `pool`, binding one first (and unbinding
/// its previous pool) if there is none. `false` if the thread's cache is gone (thread
/// exit) or busy (re-entered), or the pool's cache budget is spent; `f` did not run then.
///
/// # Safety
///
/// `pool` must be alive for the whole call (the caller holds something that keeps it
/// so), and must point to the pool with the provenance of its allocation (as slot
/// headers' back pointers do), since a magazine may free it later through this pointer.
#[inline]
unsafe fn with_magazine(pool: NonNull<Pool>, f: impl FnOnce(&mut Magazine)) -> bool {
    CACHE
        .try_with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else {
                return false;
            };
            let way = match cache.magazines.iter().position(|m| m.pool == Some(pool)) {
                Some(way) => way,
                None => {
                    // Bind only if the magazines will be unbound at thread exit: this
                    // registers the destructor on the first binding, and refuses once
                    // it has run.
                    if UNBIND_AT_EXIT.try_with(|_| ()).is_err() {
                        return false;
                    }
                    // SAFETY: alive per the caller.
                    let credits = unsafe { pool.as_ref() }.take_cache_credits();
                    if credits == 0 {
                        return false;
                    }
                    let way = cache
                        .magazines
                        .iter()
                        .position(|m| m.pool.is_none())
                        .unwrap_or(cache.next_victim);
                    cache.next_victim = (way + 1) % WAYS;
                    let magazine = &mut cache.magazines[way];
                    magazine.unbind();
                    // SAFETY: alive per the caller.
                    unsafe { Pool::keep(pool) };
                    magazine.pool = Some(pool);
                    magazine.limit = credits;
                    way
                }
            };
            f(&mut cache.magazines[way]);
            true
        })
        .unwrap_or(false)
}

/// Keeps the just-released slot `index` of `pool` in this thread's magazines. Returns
/// `false` if it could not (the thread is exiting, or re-entered, or the pool's cache
/// budget is spent); the caller then returns the slot to the pool itself.
///
/// # Safety
///
/// `pool` must be alive and point to its allocation as [`with_magazine`] requires, and
/// `index` must be a free slot of it that the caller alone holds and has not returned
/// (so the slot keeps the pool alive during this call).
#[inline]
pub(crate) unsafe fn keep(pool: NonNull<Pool>, index: u32) -> bool {
    let keep_slot = |magazine: &mut Magazine| {
        let limit = magazine.limit;
        debug_assert!((1..=MAGAZINE).contains(&limit));
        if magazine.len >= limit {
            let half = limit / 2;
            // SAFETY: the magazine's unit keeps the pool alive; the slots are free
            // slots of this pool held only by this magazine.
            unsafe { Pool::return_slots(pool, &magazine.slots[half..magazine.len]) };
            magazine.len = half;
        }
        magazine.slots[magazine.len] = index;
        magazine.len += 1;
    };
    // SAFETY: forwarded from the caller.
    unsafe { with_magazine(pool, keep_slot) }
}

/// Puts free slots of `pool` that the caller popped from the shared list in a batch into
/// this thread's magazine (as many as its limit allows; the rest go back to the shared
/// list), so the next allocations on this thread need no CAS. Returns `false` (having
/// stored nothing) if the cache is gone or busy, or the pool's budget is spent.
///
/// # Safety
///
/// As for [`keep`], for every slot in `slots`.
#[inline]
pub(crate) unsafe fn stock(pool: NonNull<Pool>, slots: &[u32]) -> bool {
    let stock_slots = |magazine: &mut Magazine| {
        let room = magazine.limit.saturating_sub(magazine.len);
        let (kept, back) = slots.split_at(slots.len().min(room));
        magazine.slots[magazine.len..magazine.len + kept.len()].copy_from_slice(kept);
        magazine.len += kept.len();
        // SAFETY: alive (the caller's slots are unreturned); these are free slots of
        // this pool held only by the caller, which gives them up here.
        unsafe { Pool::return_slots(pool, back) };
    };
    // SAFETY: forwarded from the caller.
    unsafe { with_magazine(pool, stock_slots) }
}
