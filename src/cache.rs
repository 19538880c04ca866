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
//! The magazines are plain thread-local data: no atomics, no sharing. Their fields are
//! `Cell`s, so the fast paths ([`take`], [`keep_bound`]) need no borrow flag: they call
//! nothing, so nothing can run in the middle of them. The slow paths (binding, flushing,
//! stocking, unbinding) call into pools, which may free a pool and so enter the global
//! allocator; they run under a `busy` flag that refuses a second slow path on the same
//! thread, and they take slots out of a magazine (or unbind it) *before* they call out,
//! so a fast path entered from inside one only ever sees a consistent magazine. Under
//! loom they are compiled out (the models explore the shared protocol).

use core::cell::Cell;
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
    pool: Cell<Option<NonNull<Pool>>>,
    /// The most slots this magazine may hold: the credits it took from its pool.
    limit: Cell<usize>,
    /// The free slots it holds are `slots[..len]`; `len <= limit <= MAGAZINE`.
    len: Cell<usize>,
    slots: [Cell<u32>; MAGAZINE],
}

impl Magazine {
    const fn empty() -> Magazine {
        Magazine {
            pool: Cell::new(None),
            limit: Cell::new(0),
            len: Cell::new(0),
            slots: [const { Cell::new(0) }; MAGAZINE],
        }
    }

    /// A copy of `slots[from..to]` (at the front of the array), taken before the
    /// magazine calls out with them.
    fn copy_out(&self, from: usize, to: usize) -> [u32; MAGAZINE] {
        let mut out = [0; MAGAZINE];
        for (out, slot) in out.iter_mut().zip(&self.slots[from..to]) {
            *out = slot.get();
        }
        out
    }

    /// Returns every cached slot and the credits to the pool and gives up the keepalive
    /// unit. The magazine is unbound and empty before anything is called.
    fn unbind(&self) {
        let Some(pool) = self.pool.take() else {
            return;
        };
        let len = self.len.replace(0);
        let limit = self.limit.replace(0);
        let held = self.copy_out(0, len);
        // SAFETY: the magazine's unit keeps the pool alive; the slots are free slots of
        // this pool that only this magazine held (it has let go of them above).
        unsafe { Pool::return_slots(pool, &held[..len]) };
        // SAFETY: the unit still keeps the pool alive.
        unsafe { pool.as_ref() }.give_cache_credits(limit);
        // SAFETY: we own this unit and drop the pointer with it.
        unsafe { Pool::unkeep(pool) };
    }
}

struct ThreadCache {
    magazines: [Magazine; WAYS],
    next_victim: Cell<usize>,
    /// Set while a slow path runs (see the module docs); never cleared once the thread's
    /// exit has unbound the magazines.
    busy: Cell<bool>,
}

thread_local! {
    /// The magazines. The type has no destructor, so the fast paths reach it at a fixed
    /// offset from the thread pointer, with no lazy-registration check.
    static CACHE: ThreadCache = const {
        ThreadCache {
            magazines: [const { Magazine::empty() }; WAYS],
            next_victim: Cell::new(0),
            busy: Cell::new(false),
        }
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
        // `CACHE` has no destructor, so it is still there. `busy` stays set: the thread
        // is exiting, and its later releases go to the shared lists.
        let _ = CACHE.try_with(|cache| {
            if !cache.busy.replace(true) {
                for magazine in &cache.magazines {
                    magazine.unbind();
                }
            }
        });
    }
}

impl ThreadCache {
    /// The magazine bound to `pool`, if any (a search of [`WAYS`] pointers, unrolled).
    #[inline(always)]
    fn bound_to(&self, pool: *const Pool) -> Option<&Magazine> {
        self.magazines.iter().find(|m| {
            m.pool
                .get()
                .is_some_and(|p| core::ptr::eq(p.as_ptr(), pool))
        })
    }

    /// The magazine bound to `pool`, binding one first (and unbinding its previous pool)
    /// if there is none; `None` if the pool's budget is spent or the thread is exiting.
    /// Called with `busy` set.
    ///
    /// # Safety
    ///
    /// As for [`with_magazine`].
    unsafe fn bind(&self, pool: NonNull<Pool>) -> Option<&Magazine> {
        if let Some(magazine) = self.bound_to(pool.as_ptr()) {
            return Some(magazine);
        }
        // Bind only if the magazines will be unbound at thread exit: this registers the
        // destructor on the first binding, and refuses once it has run.
        UNBIND_AT_EXIT.try_with(|_| ()).ok()?;
        // SAFETY: alive per the caller.
        let credits = unsafe { pool.as_ref() }.take_cache_credits();
        if credits == 0 {
            return None;
        }
        let way = self
            .magazines
            .iter()
            .position(|m| m.pool.get().is_none())
            .unwrap_or(self.next_victim.get())
            % WAYS;
        self.next_victim.set((way + 1) % WAYS);
        let magazine = &self.magazines[way];
        // Nothing else binds while `busy` is set, so the way stays free after this.
        magazine.unbind();
        // SAFETY: alive per the caller.
        unsafe { Pool::keep(pool) };
        magazine.limit.set(credits);
        magazine.pool.set(Some(pool));
        Some(magazine)
    }
}

/// Takes a free slot of the pool at `pool` from this thread's magazines.
///
/// The slot is free and exclusively the caller's, exactly as if popped from the free list
/// (it was released on this thread, so its last holders' accesses happen-before).
///
/// The allocation fast path: `inline(always)` so that it compiles into the caller as a
/// thread-local address, a few pointer compares, and a load and a store of the length.
#[inline(always)]
pub(crate) fn take(pool: *const Pool) -> Option<u32> {
    CACHE
        .try_with(|cache| {
            let magazine = cache.bound_to(pool)?;
            let len = magazine.len.get().checked_sub(1)?;
            magazine.len.set(len);
            // `len < MAGAZINE` always, so the mask changes nothing but lets the compiler
            // drop the bounds check.
            Some(magazine.slots[len % MAGAZINE].get())
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
            let Some(magazine) = cache.bound_to(pool.as_ptr()) else {
                return false;
            };
            let len = magazine.len.get();
            if len >= magazine.limit.get() {
                return false;
            }
            // `len < limit <= MAGAZINE`; the mask only drops the bounds check.
            magazine.slots[len % MAGAZINE].set(index);
            magazine.len.set(len + 1);
            true
        })
        .unwrap_or(false)
}

/// Runs `f` on this thread's magazine bound to `pool`, binding one first (and unbinding
/// its previous pool) if there is none. `false` if the thread is exiting, another slow
/// path of this thread is running (re-entered), or the pool's cache budget is spent; `f`
/// did not run then. `f` must update the magazine before it calls into a pool.
///
/// # Safety
///
/// `pool` must be alive for the whole call (the caller holds something that keeps it
/// so), and must point to the pool with the provenance of its allocation (as slot
/// headers' back pointers do), since a magazine may free it later through this pointer.
#[inline]
unsafe fn with_magazine(pool: NonNull<Pool>, f: impl FnOnce(&Magazine)) -> bool {
    CACHE
        .try_with(|cache| {
            if cache.busy.replace(true) {
                return false;
            }
            // SAFETY: forwarded from the caller.
            let magazine = unsafe { cache.bind(pool) };
            let done = magazine.map(f).is_some();
            cache.busy.set(false);
            done
        })
        .unwrap_or(false)
}

/// Keeps the just-released slot `index` of `pool` in this thread's magazines, binding
/// one or flushing half of a full one first. Returns `false` if it could not (the thread
/// is exiting, or re-entered, or the pool's cache budget is spent); the caller then
/// returns the slot to the pool itself.
///
/// # Safety
///
/// `pool` must be alive and point to its allocation as [`with_magazine`] requires, and
/// `index` must be a free slot of it that the caller alone holds and has not returned
/// (so the slot keeps the pool alive during this call).
#[inline]
pub(crate) unsafe fn keep(pool: NonNull<Pool>, index: u32) -> bool {
    let keep_slot = |magazine: &Magazine| {
        let (limit, len) = (magazine.limit.get(), magazine.len.get());
        debug_assert!((1..=MAGAZINE).contains(&limit) && len <= limit);
        if len < limit {
            magazine.slots[len % MAGAZINE].set(index);
            magazine.len.set(len + 1);
            return;
        }
        // Full: the upper half goes back to the shared list, the new slot on top of the
        // lower half. The magazine is updated before the call.
        let half = limit / 2;
        let flushed = magazine.copy_out(half, len);
        magazine.slots[half % MAGAZINE].set(index);
        magazine.len.set(half + 1);
        // SAFETY: the magazine's unit keeps the pool alive; the slots are free slots of
        // this pool that only this magazine held (it has let go of them above).
        unsafe { Pool::return_slots(pool, &flushed[..len - half]) };
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
    let stock_slots = |magazine: &Magazine| {
        let len = magazine.len.get();
        let room = magazine.limit.get().saturating_sub(len);
        let (kept, back) = slots.split_at(slots.len().min(room));
        // `len + kept.len() <= limit <= MAGAZINE`.
        for (slot, &index) in magazine.slots[len..len + kept.len()].iter().zip(kept) {
            slot.set(index);
        }
        magazine.len.set(len + kept.len());
        // SAFETY: alive (the caller's slots are unreturned); these are free slots of
        // this pool held only by the caller, which gives them up here.
        unsafe { Pool::return_slots(pool, back) };
    };
    // SAFETY: forwarded from the caller.
    unsafe { with_magazine(pool, stock_slots) }
}

/// Returns every slot this thread's magazine of `pool` holds to the shared list (a
/// release found someone waiting for a slot of the pool). The magazine stays bound.
///
/// The pool must be alive for the call; the caller holds an unreturned slot of it.
pub(crate) fn flush(pool: NonNull<Pool>) {
    let _ = CACHE.try_with(|cache| {
        // A slow path: refused while another runs on this thread (re-entered), like
        // `with_magazine`, but it never binds.
        if cache.busy.replace(true) {
            return;
        }
        let held = cache.bound_to(pool.as_ptr()).map(|magazine| {
            // The magazine lets go of its slots before the call (which may wake waiters
            // and so run their code).
            let len = magazine.len.replace(0);
            (magazine.copy_out(0, len), len)
        });
        // The magazine is consistent again, and the call below touches no magazine:
        // clear `busy` first, so that a release a woken waiter's code makes on this
        // thread can flush this thread's magazine of its own pool too.
        cache.busy.set(false);
        if let Some((held, len)) = held {
            // SAFETY: the caller's unreturned slot keeps the pool alive; the slots are
            // free slots of this pool that only the magazine held (it let go of them
            // above).
            unsafe { Pool::return_slots(pool, &held[..len]) };
        }
    });
}
