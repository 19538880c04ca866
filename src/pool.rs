//! One pool: the slot storage (headers and payload bytes, allocated zeroed on the heap in
//! place), its free list, its statistics, and the lifecycle that keeps the storage alive
//! until its owner is gone *and* every slot and weak handle has let go of it.
//!
//! The pool is size-erased: the slot size is a runtime value, so the const-generic
//! [`RingBuffer`](crate::RingBuffer), the five pools of an
//! [`EventAllocator`](crate::EventAllocator) and single heap-fallback events all run this
//! one implementation.
//!
//! # Lifecycle
//!
//! A pool is freed when its `keepalive` count reaches zero. That count is one unit for
//! "the owner or any slot still out" plus one per weak handle. The unit is given up when
//! the `returned` counter reaches `capacity + 1`:
//!
//! * the owner, when dropped, closes the free list (taking every free slot) and adds
//!   1 (its own share) + the slots it took + the slots never used;
//! * a slot released after the close finds the free list closed and adds 1.
//!
//! The free list's closed bit lives in the same word as its top, so a released slot is
//! either pushed before the close (and taken and counted by the owner) or refused after
//! it (and counted by its releaser): never both, never neither. Whoever brings `returned`
//! to `capacity + 1` drops the unit; the owner's share makes sure that cannot happen
//! before the owner is done.

use core::alloc::Layout;
use core::ptr::NonNull;

#[cfg(not(loom))]
use crate::cache;
use crate::error::{CapacityError, TokenError};
use crate::event::PoolId;
use crate::free_list::{Closed, FreeList, Refused};
use crate::heap::HeapShared;
use crate::notify::{Registration, WaitFlag, WaitList};
use crate::slot::SlotHeader;
use crate::stats::PoolStats;
use crate::sync::{
    Arc, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, abort_on_overflow, acquire_fence,
};
use crate::token::{TAG_HEAP, Token, random_key};

/// The most slots one pool may have: a token addresses a slot with 24 bits.
pub(crate) const MAX_SLOTS: usize = (1 << 24) - 1;

/// Payload slots start on cache-line boundaries.
pub(crate) const CACHE_LINE: usize = 64;

/// The most free slots of one pool a thread keeps in its magazine (none under loom,
/// whose models explore the shared protocol).
#[cfg(not(loom))]
const MAX_CACHED: usize = cache::MAGAZINE;
#[cfg(loom)]
const MAX_CACHED: usize = 0;

/// Free slots of a pool of `capacity` that all threads' magazines together may hold: an
/// eighth of the pool. A pool with no live slot therefore always has at least 7/8 of its
/// slots on the shared list (or never used), and a pool refuses only when at most this
/// many of its free slots sit in other threads' magazines.
pub(crate) const fn cache_budget(capacity: usize) -> usize {
    if MAX_CACHED == 0 { 0 } else { capacity / 8 }
}

/// The most slots one magazine may take of a pool's budget: a quarter of it (so at least
/// four threads get magazines), at least 1, at most [`MAX_CACHED`].
const fn magazine_quota(budget: usize) -> usize {
    let quarter = budget / 4;
    if budget == 0 {
        0
    } else if quarter == 0 {
        1
    } else if quarter > MAX_CACHED {
        MAX_CACHED
    } else {
        quarter
    }
}

/// A pool's storage and state. Reached through [`PoolOwner`] by its owner and through
/// slot headers' back pointers by handles; freed by whoever releases its last unit.
pub(crate) struct Pool {
    /// The shared free list, alone on its cache line (every thread CASes it).
    free: CachePadded<FreeList>,
    /// Why releases should skip the magazines ([`CLOSED_HINT`], [`WAITING_HINT`]); 0 on
    /// the fast path. A hint that keeps releases off the contended free-list line; the
    /// free list's closed and waiting bits stay the authority.
    skip_cache: AtomicU8,
    /// Index of the next never-used slot (slots are used in order before any is reused).
    fresh: AtomicUsize,
    /// Slots counted back after the close, plus the owner's share (see module docs).
    returned: AtomicUsize,
    /// One unit for the owner-or-slots, one per weak handle.
    keepalive: AtomicUsize,
    /// Requests for this pool's class that a larger class or the heap served.
    spills: AtomicU64,
    /// Requests for this pool's class that failed.
    failures: AtomicU64,
    headers: Box<[SlotHeader]>,
    /// The allocation behind `data` (it may start a little before `data`), if any.
    block: Option<Block>,
    slot_size: usize,
    capacity: usize,
    /// Free slots of this pool one magazine may hold at most (0: no magazines).
    #[cfg_attr(loom, allow(dead_code))]
    magazine_quota: usize,
    /// What is left of the pool's budget of cached slots ([`cache_budget`]): a magazine
    /// takes its share when it binds to the pool and gives it back when it unbinds, so
    /// all magazines together never hold more than the budget.
    #[cfg_attr(loom, allow(dead_code))]
    cache_credits: AtomicUsize,
    tag: u8,
    /// XORed into the generation of every token this pool issues (see `token.rs`).
    key: u32,
    class: Option<PoolId>,
    /// Heap-fallback events count themselves in their allocator's heap statistics, and
    /// park the holds of their tokens in its table.
    heap: Option<Arc<HeapShared>>,
    /// For a heap event: 1 + its entry in the allocator's token table, 0 for none. Read
    /// and written only under that table's lock.
    pub(crate) heap_entry: AtomicU32,
    /// Threads and tasks waiting for a free slot (`allocate_timeout`, `allocate_async`).
    waiters: WaitList,
    /// Lets loom report a pool that is never freed (or freed twice).
    #[cfg(loom)]
    _track: crate::sync::Track<()>,
}

impl core::fmt::Debug for Pool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pool")
            .field("slot_size", &self.slot_size)
            .field("capacity", &self.capacity)
            .field("class", &self.class)
            .finish_non_exhaustive()
    }
}

/// Where a new pool starts: owned (open free list) or an ownerless heap event.
enum Start {
    Owned,
    Ownerless(Arc<HeapShared>),
}

impl Pool {
    /// Builds a pool on the heap in place and returns a pointer holding its one
    /// keepalive unit.
    fn create(
        slot_size: usize,
        capacity: usize,
        tag: u8,
        class: Option<PoolId>,
        start: Start,
    ) -> Result<NonNull<Pool>, CapacityError> {
        if capacity > MAX_SLOTS {
            return Err(CapacityError::TooManySlots {
                requested: capacity,
                max: MAX_SLOTS,
            });
        }
        let too_many_bytes = CapacityError::TooManyBytes {
            requested: capacity,
            slot_size,
        };
        let stride = slot_size
            .checked_next_multiple_of(CACHE_LINE)
            .ok_or(too_many_bytes)?;
        let bytes = stride.checked_mul(capacity).ok_or(too_many_bytes)?;
        let header_bytes = capacity
            .checked_mul(size_of::<SlotHeader>())
            .ok_or(too_many_bytes)?;
        // Everything this pool asks for must be addressable before any of it is
        // requested: no allocation may exceed `isize::MAX` bytes, and the system refuses
        // (rather than this code aborting) whatever it cannot map.
        let total = bytes
            .checked_add(header_bytes)
            .and_then(|total| total.checked_add(CACHE_LINE + size_of::<Pool>()));
        if total.is_none_or(|total| total > isize::MAX as usize) {
            return Err(too_many_bytes);
        }
        // Every allocation is fallible: the headers first (freed by `Vec`'s drop if a
        // later step fails), then the data block, then the pool itself.
        let mut headers: Vec<SlotHeader> = Vec::new();
        headers
            .try_reserve_exact(capacity)
            .map_err(|_| CapacityError::OutOfMemory {
                bytes: header_bytes,
            })?;
        let (data, block) = alloc_zeroed_block(bytes)?;

        let (free, returned, heap, budget) = match start {
            Start::Owned => (FreeList::new(), 0, None, cache_budget(capacity)),
            // No owner will ever close it or add its share: start closed, share counted.
            Start::Ownerless(shared) => (FreeList::new_closed(), 1, Some(shared), 0),
        };
        let skip_cache = AtomicU8::new(if free.is_closed() { CLOSED_HINT } else { 0 });
        let pool = Pool {
            free: CachePadded(free),
            skip_cache,
            fresh: AtomicUsize::new(0),
            returned: AtomicUsize::new(returned),
            keepalive: AtomicUsize::new(1),
            spills: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            headers: Box::new([]),
            block,
            slot_size,
            capacity,
            magazine_quota: magazine_quota(budget),
            cache_credits: AtomicUsize::new(budget),
            tag,
            key: random_key(),
            class,
            heap,
            heap_entry: AtomicU32::new(0),
            waiters: WaitList::new(),
            #[cfg(loom)]
            _track: crate::sync::Track::new(()),
        };
        let pool_layout = Layout::new::<Pool>();
        // SAFETY: `Pool` is not zero-sized (it holds atomics and a cache-padded list).
        let raw = unsafe { std::alloc::alloc(pool_layout) }.cast::<Pool>();
        let Some(this) = NonNull::new(raw) else {
            // Dropping the never-shared pool frees its data block (see `Drop for Pool`).
            drop(pool);
            return Err(CapacityError::OutOfMemory {
                bytes: pool_layout.size(),
            });
        };
        // SAFETY: `raw` is a fresh, non-null allocation with `Pool`'s layout, from the
        // global allocator, so it may later be freed as a `Box<Pool>` (`unkeep`).
        unsafe { raw.write(pool) };
        for i in 0..capacity {
            // SAFETY: `i * stride < bytes`, the size of the block behind `data` (and for
            // a zero-sized block `i * stride == 0`), so the offset stays inside one
            // allocation.
            let slot_data = unsafe { data.add(i * stride) };
            // `i < capacity <= MAX_SLOTS < u32::MAX`. Never reallocates: the capacity
            // was reserved above.
            headers.push(SlotHeader::new(i as u32, this, slot_data));
        }
        // `len == capacity`, the reserved size, so this does not reallocate in practice
        // (an allocator that gave more room than asked would be shrunk, in place).
        let headers = headers.into_boxed_slice();
        // SAFETY: `raw` is the only pointer to the new pool; nothing else can see it yet.
        unsafe { (*raw).headers = headers };
        Ok(this)
    }

    /// A closed, single-slot pool holding one heap-fallback event of `len` bytes.
    pub(crate) fn create_heap(
        len: usize,
        shared: &Arc<HeapShared>,
    ) -> Result<NonNull<Pool>, CapacityError> {
        Self::create(len, 1, TAG_HEAP, None, Start::Ownerless(shared.clone()))
    }

    /// The number of slots.
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The pool class, for pools of an allocator.
    #[inline]
    pub(crate) fn class(&self) -> Option<PoolId> {
        self.class
    }

    /// The allocator state a heap event's pool shares (`None` for slot pools).
    #[inline]
    pub(crate) fn heap(&self) -> Option<&Arc<HeapShared>> {
        self.heap.as_ref()
    }

    /// The token of `generation` of this pool's slot `index`.
    #[inline]
    pub(crate) fn token(&self, generation: u32, index: u32) -> u64 {
        Token::new(generation, self.key, self.tag, index).encode()
    }

    /// Takes up to [`magazine_quota`] slots' worth of this pool's cache budget for a
    /// magazine that binds to it; 0 if none is left (the magazine then stays unbound).
    #[cfg(not(loom))]
    pub(crate) fn take_cache_credits(&self) -> usize {
        if self.magazine_quota == 0 {
            return 0;
        }
        // Relaxed (load and CAS): the credits are a count that publishes no memory; the
        // slots a magazine caches are handed over by the slot protocol, not by this.
        let mut left = self.cache_credits.load(Ordering::Relaxed);
        loop {
            let grant = left.min(self.magazine_quota);
            if grant == 0 {
                return 0;
            }
            match self.cache_credits.compare_exchange_weak(
                left,
                left - grant,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return grant,
                Err(actual) => left = actual,
            }
        }
    }

    /// Gives back the credits a magazine took when it bound to this pool.
    #[cfg(not(loom))]
    pub(crate) fn give_cache_credits(&self, credits: usize) {
        // Relaxed: a count, as in `take_cache_credits`.
        self.cache_credits.fetch_add(credits, Ordering::Relaxed);
    }

    /// Claims a free slot for exclusive initialisation, or `None` if every slot is live.
    ///
    /// Order: this thread's magazine, then the shared free list (taking a batch for the
    /// magazine, so a thread that allocates more than it frees pays one CAS per batch),
    /// then a never-used slot.
    #[inline(always)]
    fn claim(&self) -> Option<&SlotHeader> {
        if let Some(header) = self.claim_cached() {
            return Some(header);
        }
        self.claim_shared()
    }

    /// A free slot of this pool from this thread's magazine, if it holds one: the fast
    /// path of [`claim`](Self::claim), compiled into the caller.
    #[inline(always)]
    fn claim_cached(&self) -> Option<&SlotHeader> {
        #[cfg(loom)]
        {
            None
        }
        #[cfg(not(loom))]
        {
            let index = cache::take(self)?;
            debug_assert!((index as usize) < self.headers.len());
            // SAFETY: a magazine bound to this pool holds only indices of its slots, all
            // below its capacity, the length of `headers`.
            Some(unsafe { self.headers.get_unchecked(index as usize) })
        }
    }

    /// [`claim`](Self::claim) past this thread's magazine: a batch from the shared free
    /// list (the rest of it stocks the magazine), else a never-used slot.
    #[inline(never)]
    fn claim_shared(&self) -> Option<&SlotHeader> {
        let links = |i: u32| &self.headers[i as usize].next_free;
        let mut batch = [0u32; MAX_CACHED / 2 + 1];
        let wanted = (self.magazine_quota / 2 + 1).min(batch.len());
        let taken = self.free.pop_many(links, &mut batch[..wanted]);
        if taken > 0 {
            let header = &self.headers[batch[0] as usize];
            #[cfg(not(loom))]
            if taken > 1 {
                // The header's back pointer has the pool allocation's provenance.
                let pool = header.pool();
                // Not while someone waits: they could not see the extra slots there.
                // Relaxed: a hint (see `release_slot`).
                let waited_for = self.skip_cache.load(Ordering::Relaxed) != 0;
                // SAFETY: the popped slots are free, unreturned and ours, so they keep
                // the pool alive.
                let stocked = !waited_for && unsafe { cache::stock(pool, &batch[1..taken]) };
                if !stocked {
                    // SAFETY: as above; the slots go back unused.
                    unsafe { Pool::return_slots(pool, &batch[1..taken]) };
                }
            }
            return Some(header);
        }
        // Relaxed (both): the counter only hands out distinct indices; a fresh slot
        // has never been seen by another thread, so there is nothing to synchronise.
        if self.fresh.load(Ordering::Relaxed) >= self.capacity {
            return None;
        }
        let index = self.fresh.fetch_add(1, Ordering::Relaxed);
        // Overshoot past `capacity` is bounded by the number of racing threads.
        self.headers.get(index)
    }

    /// Claims a free slot to be written in place (`EventBuilder`): the caller owns it
    /// exclusively, as `store_bytes` does between its claim and `activate`, until it
    /// activates it or gives it back with [`Pool::release_slot`].
    #[inline]
    pub(crate) fn claim_for_write(&self) -> Option<NonNull<SlotHeader>> {
        self.claim().map(NonNull::from)
    }

    /// The payload bytes of one slot.
    #[inline]
    pub(crate) fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// [`store_bytes`](Self::store_bytes) from this thread's magazine only: `None` if the
    /// magazine has no slot of this pool (or the payload does not fit), and the caller
    /// then takes [`store_bytes`](Self::store_bytes), which tries the shared list. The
    /// allocation fast path, compiled into the caller.
    #[inline(always)]
    pub(crate) fn store_bytes_cached(
        &self,
        payload: &[u8],
        event_type: u32,
    ) -> Option<NonNull<SlotHeader>> {
        if payload.len() > self.slot_size {
            return None;
        }
        let len = u32::try_from(payload.len()).ok()?;
        let header = self.claim_cached()?;
        // SAFETY: as in `store_bytes`: the slot came out of a magazine, so it is free and
        // this thread's alone until `activate`; it holds `slot_size >= len` bytes.
        unsafe { copy_payload(payload, header.data_for_write()) };
        header.activate(len, event_type);
        Some(NonNull::from(header))
    }

    /// Claims a slot and stores `payload` as a byte event. `None` if the pool is full or
    /// the payload does not fit a slot (or its length does not fit a `u32`).
    #[inline]
    pub(crate) fn store_bytes(
        &self,
        payload: &[u8],
        event_type: u32,
    ) -> Option<NonNull<SlotHeader>> {
        let len = u32::try_from(payload.len()).ok()?;
        if payload.len() > self.slot_size {
            return None;
        }
        let header = self.claim()?;
        // SAFETY: the slot was just claimed, so this thread is the only one that can
        // reach its payload until `activate`; the payload holds `slot_size >= len`
        // bytes; `payload` is a separate borrow, so the ranges do not overlap.
        unsafe { copy_payload(payload, header.data_for_write()) };
        header.activate(len, event_type);
        Some(NonNull::from(header))
    }

    /// Claims a slot and moves `value` into it; hands `value` back if the pool is full.
    ///
    /// The caller guarantees (by a compile-time check) that `T` fits a slot and needs at
    /// most cache-line alignment.
    #[inline]
    pub(crate) fn store_value<T: bytemuck::Pod>(&self, value: T) -> Result<NonNull<SlotHeader>, T> {
        debug_assert!(size_of::<T>() <= self.slot_size && align_of::<T>() <= CACHE_LINE);
        if size_of::<T>() > self.slot_size {
            return Err(value);
        }
        let Some(header) = self.claim() else {
            return Err(value);
        };
        // SAFETY: the slot was just claimed (exclusive until `activate`); it holds
        // `slot_size >= size_of::<T>()` bytes starting on a cache-line boundary, and
        // `align_of::<T>() <= CACHE_LINE`, so the write is in bounds and aligned.
        unsafe { header.data_for_write().cast::<T>().as_ptr().write(value) };
        // `size_of::<T>() <= slot_size`, and typed pools are far below 4 GiB slots.
        header.activate(size_of::<T>() as u32, 0);
        Ok(NonNull::from(header))
    }

    /// The header a token of this pool names (any life of it), and the token's
    /// generation read with this pool's key; `Foreign` for another pool's tag or an index
    /// out of range. (A token of another pool with the same tag decodes to a random
    /// generation, which the slot refuses except with probability 2^-32.)
    fn token_header(&self, token: u64) -> Result<(&SlotHeader, u32), TokenError> {
        let token = Token::decode(token);
        if token.tag != self.tag {
            return Err(TokenError::Foreign);
        }
        let header = self
            .headers
            .get(token.index as usize)
            .ok_or(TokenError::Foreign)?;
        Ok((header, token.generation(self.key)))
    }

    /// The header a token names, with the token's parked reference taken back.
    pub(crate) fn take_token(&self, token: u64) -> Result<NonNull<SlotHeader>, TokenError> {
        let (header, generation) = self.token_header(token)?;
        if header.take_raw(generation) {
            Ok(NonNull::from(header))
        } else {
            Err(refusal(header, generation))
        }
    }

    /// The header a token names, with a new strong reference for the caller; the
    /// token's parked reference stays parked.
    pub(crate) fn clone_token(&self, token: u64) -> Result<NonNull<SlotHeader>, TokenError> {
        let (header, generation) = self.token_header(token)?;
        // The two steps are not one atomic action: a concurrent `from_raw` may take the
        // token's last hold between them, and the taker's handle may then be dropped. The
        // clone is still sound: `into_raw` set the slot's escaped flag before parking, and
        // `has_raw` (Acquire) orders that flag before our CAS, so the taker's handle never
        // takes the plain-store release or `get_mut` (slot.rs, "Every way a reference is
        // made"); and the CAS only succeeds on a slot still live in the token's
        // generation. If it wins, the clone linearises before the take.
        if header.has_raw(generation) && header.try_acquire_strong(generation) {
            Ok(NonNull::from(header))
        } else {
            Err(refusal(header, generation))
        }
    }

    /// Counts a request for this class that a larger class or the heap served.
    #[inline]
    pub(crate) fn note_spill(&self) {
        // Relaxed: a statistic.
        self.spills.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request for this class that failed.
    #[inline]
    pub(crate) fn note_failure(&self) {
        // Relaxed: a statistic.
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot of this pool's statistics (reads every slot's state word once).
    pub(crate) fn stats(&self) -> PoolStats {
        let mut in_use = 0;
        let mut allocations = 0u64;
        for header in self.headers.iter() {
            let state = header.snapshot();
            in_use += usize::from(state.count() > 0);
            // Every claim moves the generation on by one.
            allocations += u64::from(state.generation());
        }
        PoolStats {
            capacity: self.capacity,
            in_use,
            // Relaxed (all three): statistics.
            high_water: self.fresh.load(Ordering::Relaxed).min(self.capacity),
            allocations,
            spills: self.spills.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }

    /// Returns a slot whose last strong reference was just released.
    ///
    /// # Safety
    ///
    /// `pool` must be the slot's pool, `index` the slot's index, and the caller must
    /// have just seen [`SlotHeader::release_strong`] return `true` for it, or claimed it
    /// with [`Pool::claim_for_write`] and not activated it (so the slot is free and,
    /// being not yet returned, keeps the pool alive until this call ends).
    /// The pool may be freed by the time this returns.
    ///
    /// Compiled into the caller (a last drop): the fast path needs no saved registers and
    /// the slow one is a tail call.
    #[inline(always)]
    pub(crate) unsafe fn release_slot(pool: NonNull<Pool>, index: u32) {
        #[cfg(not(loom))]
        {
            // SAFETY: the pool is alive: the slot is neither pushed nor counted yet, so
            // `returned` cannot reach `capacity + 1`.
            let skip = unsafe { &(*pool.as_ptr()).skip_cache };
            // The fast path: no hint is set (the pool is open and nobody waits for one of
            // its slots) and a magazine of this thread is bound to the pool and has room
            // (a bound magazine implies a non-zero quota).
            // Relaxed: only a hint. A release that misses a concurrent close parks the
            // slot in a magazine, which holds a keepalive unit of its own and hands the
            // slot back (counted, as the closed free list refuses it) when it flushes; one
            // that misses a new waiter parks it where the waiter cannot see it (the
            // guarantee `EventAllocator::allocate_timeout` states allows for that).
            if skip.load(Ordering::Relaxed) == 0 && cache::keep_bound(pool, index) {
                return;
            }
        }
        // SAFETY: forwarded from the caller.
        unsafe { Pool::release_slot_slow(pool, index) };
    }

    /// [`release_slot`](Self::release_slot) past its fast path: binds a magazine (or
    /// flushes a full one) if the pool has a cache budget and no hint is set; a closed
    /// pool's slots bypass the magazines, so its storage is not held back, and so do slots
    /// of a pool someone waits for (this thread's magazine of it is flushed too), so that
    /// the waiter can have them. Else the slot returns to the shared list.
    ///
    /// # Safety
    ///
    /// As for [`release_slot`](Self::release_slot).
    #[inline(never)]
    unsafe fn release_slot_slow(pool: NonNull<Pool>, index: u32) {
        #[cfg(not(loom))]
        {
            let p = pool.as_ptr();
            // SAFETY: the pool is alive (see `release_slot`). `magazine_quota` is
            // immutable.
            let (quota, skip) = unsafe { ((*p).magazine_quota, &(*p).skip_cache) };
            if quota > 0 {
                // Relaxed: a hint, as in `release_slot`.
                match skip.load(Ordering::Relaxed) {
                    // SAFETY: as above; the slot is free, unreturned and ours alone.
                    0 if unsafe { cache::keep(pool, index) } => return,
                    0 => {}
                    hint => Pool::skip_cache_cold(pool, hint),
                }
            }
        }
        // SAFETY: forwarded from the caller.
        unsafe { Pool::return_slots(pool, &[index]) };
    }

    /// A release that skips the magazines: when someone waits for a slot, this thread's
    /// whole magazine of the pool goes back to the shared list too (the waiter could not
    /// see it otherwise).
    #[cfg(not(loom))]
    #[cold]
    #[inline(never)]
    fn skip_cache_cold(pool: NonNull<Pool>, hint: u8) {
        if hint & WAITING_HINT != 0 && hint & CLOSED_HINT == 0 {
            cache::flush(pool);
        }
    }

    /// Returns free slots to the shared free list as one chain (or, once the owner is
    /// gone, counts them as returned), waking whoever waits for a slot.
    ///
    /// # Safety
    ///
    /// The pool must be alive, `indices` must be free slots of it that the caller alone
    /// holds, and none may have been returned yet. The pool may be freed by the time this
    /// returns, unless the caller holds a keepalive unit.
    pub(crate) unsafe fn return_slots(pool: NonNull<Pool>, indices: &[u32]) {
        let Some((&first, rest)) = indices.split_first() else {
            return;
        };
        let p = pool.as_ptr();
        // SAFETY: the pool is alive: the slots are neither pushed nor counted yet, so
        // `returned` cannot reach `capacity + 1`. Only atomics stay borrowed across the
        // push, after which another thread may free the pool.
        let (free, last_link) = unsafe {
            let headers = &(*p).headers;
            let mut previous = first;
            for &index in rest {
                // Relaxed: the chain is ours; the push's Release CAS publishes the links.
                headers[previous as usize]
                    .next_free
                    .store(index + 1, Ordering::Relaxed);
                previous = index;
            }
            (&*(*p).free, &headers[previous as usize].next_free)
        };
        if let Err(refused) = free.push_chain_unless_waiting(first, last_link) {
            // SAFETY: forwarded; nothing was pushed.
            unsafe { Pool::push_cold(pool, first, last_link, refused, indices.len()) };
        }
    }

    /// The uncommon ends of [`return_slots`](Self::return_slots), out of line: count the
    /// slots back into a closed pool, or push them while someone waits and wake them.
    ///
    /// # Safety
    ///
    /// As for `return_slots`, whose chain (`first` .. `last_link`, `count` slots) was
    /// not pushed for the reason `refused`.
    #[cold]
    #[inline(never)]
    unsafe fn push_cold(
        pool: NonNull<Pool>,
        first: u32,
        last_link: &AtomicU32,
        refused: Refused,
        count: usize,
    ) {
        if refused == Refused::Waiting {
            // Hold a keepalive unit across the push, so that the pool is still there to
            // wake the waiters after it (the push may let the owner free it).
            // SAFETY: the slots are not pushed yet, so the pool is alive.
            unsafe { Pool::keep(pool) };
            // SAFETY: our unit keeps the pool alive from here on.
            let this = unsafe { pool.as_ref() };
            match this.free.push_chain(first, last_link) {
                Ok(true) => this.waiters.wake_all(),
                // The last waiter left meanwhile.
                Ok(false) => {}
                // SAFETY: the pool is alive (our unit) until the slots are counted.
                Err(Closed) => unsafe { Pool::count_returned(pool, count) },
            }
            // SAFETY: the unit taken above, given up once; the pool is not touched after.
            unsafe { Pool::unkeep(pool) };
        } else {
            // The owner is gone; count the slots back ourselves.
            // SAFETY: the pool is alive until the slots are counted.
            unsafe { Pool::count_returned(pool, count) };
        }
    }

    /// Blocks until `attempt` (a claim from this pool) succeeds or `deadline` passes,
    /// woken by every release of a slot to the shared list.
    pub(crate) fn wait_for_slot<T>(
        &self,
        deadline: Option<std::time::Instant>,
        attempt: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        self.waiters.wait(self, deadline, attempt)
    }

    /// One poll of a task waiting for `attempt` (a claim from this pool) to succeed.
    pub(crate) fn poll_slot<T>(
        &self,
        registration: &mut Registration,
        waker: &core::task::Waker,
        attempt: impl FnMut() -> Option<T>,
    ) -> core::task::Poll<T> {
        self.waiters.poll_wait(self, registration, waker, attempt)
    }

    /// Ends a task's wait (its future completed or was dropped).
    pub(crate) fn cancel_wait(&self, registration: &mut Registration) {
        self.waiters.cancel(self, registration);
    }

    /// Adds `count` to `returned`; whoever completes it gives up the owner-or-slots unit.
    ///
    /// # Safety
    ///
    /// The pool must be alive, and `count` must cover slots (or the owner's share) that
    /// the caller alone is returning.
    unsafe fn count_returned(pool: NonNull<Pool>, count: usize) {
        let p = pool.as_ptr();
        // SAFETY: alive per the caller; copy out the capacity before the add, after
        // which the pool may be freed by someone else.
        let (returned, target) = unsafe { (&(*p).returned, (*p).capacity + 1) };
        // AcqRel: every returner's accesses are released into the counter, and the one
        // who completes it acquires them all before it may free the pool.
        if returned.fetch_add(count, Ordering::AcqRel) + count == target {
            // SAFETY: still alive: we have not given up the unit yet.
            if let Some(heap) = unsafe { &(*p).heap } {
                // A heap event is dead once its slot is back, even if weak handles keep
                // its storage a while longer: count it and free its token entry.
                heap.counters.note_free();
                // SAFETY: still alive (we hold the unit), as above.
                heap.vacate(unsafe { &*p });
            }
            // SAFETY: the unit was held by the slots and the owner, all now returned.
            unsafe { Pool::unkeep(pool) };
        }
    }

    /// Takes one more keepalive unit (for a weak handle).
    ///
    /// # Safety
    ///
    /// The caller must already hold something that keeps the pool alive (a strong or
    /// weak handle into it).
    pub(crate) unsafe fn keep(pool: NonNull<Pool>) {
        // SAFETY: alive per the caller.
        let keepalive = unsafe { &(*pool.as_ptr()).keepalive };
        // Relaxed: the caller's own unit keeps the pool alive; as in `Arc::clone`.
        if keepalive.fetch_add(1, Ordering::Relaxed)
            > MAX_SLOTS + crate::slot::MAX_REFCOUNT as usize
        {
            abort_on_overflow();
        }
    }

    /// Gives up one keepalive unit, freeing the pool if it was the last.
    ///
    /// # Safety
    ///
    /// The caller must own the unit it gives up, and must not touch the pool afterwards.
    pub(crate) unsafe fn unkeep(pool: NonNull<Pool>) {
        // SAFETY: the caller's unit keeps the pool alive until the decrement.
        let keepalive = unsafe { &(*pool.as_ptr()).keepalive };
        // Release: orders this unit holder's accesses before the free.
        if keepalive.fetch_sub(1, Ordering::Release) == 1 {
            // Acquire: pairs with every other unit's Release decrement.
            acquire_fence!(keepalive);
            // SAFETY: the last unit is gone: no owner, no live slot, no weak handle can
            // reach the pool any more. It was made by `Box::into_raw` in `create`.
            drop(unsafe { Box::from_raw(pool.as_ptr()) });
        }
    }

    /// Closes the pool on behalf of its owner.
    ///
    /// # Safety
    ///
    /// Called once, by the owner, which never touches the pool again.
    unsafe fn close(pool: NonNull<Pool>) {
        let owned = {
            // SAFETY: the owner's share is not counted yet, so the pool is alive.
            let this = unsafe { pool.as_ref() };
            // Relaxed: a hint for releases (see `release_slot`); the free list's closed
            // bit, set next by an AcqRel swap, is what the protocol relies on.
            this.skip_cache.fetch_or(CLOSED_HINT, Ordering::Relaxed);
            let mut top = this.free.close();
            let mut taken = 0;
            while top != 0 {
                taken += 1;
                // Relaxed: the close's Acquire made every pushed link visible, and the
                // chain is ours alone now.
                top = this.headers[(top - 1) as usize]
                    .next_free
                    .load(Ordering::Relaxed);
            }
            // Relaxed: no allocation can run concurrently with the owner's drop.
            let used = this.fresh.load(Ordering::Relaxed).min(this.capacity);
            1 + taken + (this.capacity - used)
        };
        // SAFETY: the owner returns its share plus the free slots it alone took.
        unsafe { Pool::count_returned(pool, owned) };
    }
}

/// [`Pool::skip_cache`]: the owner closed the pool.
const CLOSED_HINT: u8 = 1;
/// [`Pool::skip_cache`]: someone waits for a slot.
const WAITING_HINT: u8 = 2;

/// The pool's "someone waits" flag: the free list's waiting bit (which the release path
/// reads in its push, the handshake of `notify.rs`), and the hint that sends releases
/// past the magazines while the bit is set.
impl WaitFlag for Pool {
    fn raise(&self) {
        // Relaxed: a hint (see `release_slot`); releases that miss it still push to a
        // magazine, which the wait's guarantee allows for.
        self.skip_cache.fetch_or(WAITING_HINT, Ordering::Relaxed);
        self.free.raise_waiting();
    }

    fn lower(&self) {
        self.free.lower_waiting();
        // Relaxed: a hint, as above.
        self.skip_cache.fetch_and(!WAITING_HINT, Ordering::Relaxed);
    }
}

/// Why a token of `generation` found no hold to take in `header`: the slot moved on to
/// another life (stale), or the token's holds were all taken back in this one.
fn refusal(header: &SlotHeader, generation: u32) -> TokenError {
    // Relaxed load (inside `snapshot`): only a diagnosis; either answer refuses the token.
    if header.snapshot().generation() == generation {
        TokenError::Released
    } else {
        TokenError::Stale
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some((ptr, layout)) = self.block {
            // SAFETY: `block` is the allocation made by `alloc_zeroed_block` with this
            // layout, freed only here; no slot is live (the pool is being freed).
            unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) };
        }
    }
}

/// A heap allocation and the layout it was made with.
type Block = (NonNull<u8>, Layout);

/// Copies `n` bytes, `16 <= n <= 64`, with 16-byte moves: the first 16 and the last 16
/// bytes, and for `n > 32` also the 16 after the first and the 16 before the last (the
/// moves may overlap), as memcpy implementations do for short copies.
///
/// # Safety
///
/// `src` and `dst` must be valid for `n` bytes of reads and writes respectively, not
/// overlapping, and `16 <= n <= 64`.
#[inline(always)]
unsafe fn copy_16_to_64(src: *const u8, dst: *mut u8, n: usize) {
    debug_assert!((16..=64).contains(&n));
    // SAFETY: every range read or written is `16` bytes starting at `0`, `16`, `n - 32`
    // or `n - 16`, all within the first `n >= 16` bytes (the middle two only when
    // `n > 32`), which the caller guarantees valid; the reads all happen before the
    // writes, and unaligned reads and writes of `u128` are allowed.
    unsafe {
        let word = |at: usize| src.add(at).cast::<u128>().read_unaligned();
        let (first, last) = (word(0), word(n - 16));
        if n > 32 {
            let (second, before_last) = (word(16), word(n - 32));
            dst.add(16).cast::<u128>().write_unaligned(second);
            dst.add(n - 32).cast::<u128>().write_unaligned(before_last);
        }
        dst.cast::<u128>().write_unaligned(first);
        dst.add(n - 16).cast::<u128>().write_unaligned(last);
    }
}

/// Copies an event's payload into its slot. Payloads of 16 to 64 bytes (most of the XS
/// class) are copied inline with 16-byte unaligned moves, saving the call into the
/// C library's `memcpy` and its size dispatch; the rest go to `copy_nonoverlapping`.
///
/// # Safety
///
/// `dst` must be valid for `payload.len()` bytes of writes and must not overlap
/// `payload`.
#[inline(always)]
unsafe fn copy_payload(payload: &[u8], dst: NonNull<u8>) {
    let (src, dst, n) = (payload.as_ptr(), dst.as_ptr(), payload.len());
    if (16..=64).contains(&n) {
        // SAFETY: `payload` is valid for `n` bytes of reads, `dst` for `n` bytes of
        // writes (the caller), they do not overlap, and `16 <= n <= 64`.
        unsafe { copy_16_to_64(src, dst, n) }
    } else {
        // SAFETY: as above.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, n) }
    }
}

/// A zeroed, `CACHE_LINE`-aligned block of `bytes` bytes: the start of the data and the
/// allocation to free later (`None` for zero bytes). `TooManyBytes` if the size
/// overflows a layout, `OutOfMemory` if the system refuses it (never an abort).
///
/// Allocated through `alloc_zeroed` with the allocator's natural alignment plus slack,
/// so large pools come from `calloc`'s lazily zeroed pages instead of an explicit
/// memset: untouched slots cost no resident memory. (So on a system that overcommits,
/// a pool larger than the memory there is may be granted, and fail only when its slots
/// are touched; the sizes the system refuses up front come back as `OutOfMemory`.)
fn alloc_zeroed_block(bytes: usize) -> Result<(NonNull<u8>, Option<Block>), CapacityError> {
    #[repr(C, align(64))]
    struct Line([u8; CACHE_LINE]);
    if bytes == 0 {
        return Ok((NonNull::<Line>::dangling().cast(), None));
    }
    let too_many_bytes = CapacityError::TooManyBytes {
        requested: bytes,
        slot_size: 1,
    };
    let size = bytes.checked_add(CACHE_LINE).ok_or(too_many_bytes)?;
    let layout = Layout::from_size_align(size, 16).map_err(|_| too_many_bytes)?;
    // SAFETY: the layout has a non-zero size.
    let raw = unsafe { std::alloc::alloc_zeroed(layout) };
    let block = NonNull::new(raw).ok_or(CapacityError::OutOfMemory { bytes: size })?;
    let offset = block.as_ptr().align_offset(CACHE_LINE);
    debug_assert!(offset < CACHE_LINE);
    // SAFETY: `offset < CACHE_LINE`, and the block has `bytes + CACHE_LINE` bytes, so
    // `data .. data + bytes` stays inside it.
    let data = unsafe { block.add(offset) };
    Ok((data, Some((block, layout))))
}

/// Keeps its contents alone on a cache line.
#[derive(Debug)]
#[repr(align(64))]
struct CachePadded<T>(T);

impl<T> core::ops::Deref for CachePadded<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// The owner's handle to a pool: dereferences to it, closes it on drop.
pub(crate) struct PoolOwner(NonNull<Pool>);

// SAFETY: a `Pool` is shared state made of atomics and immutable fields; the owner only
// calls its thread-safe methods (`claim` through the free list's CAS and `fresh`'s
// fetch_add), and closing on drop is safe from any thread.
unsafe impl Send for PoolOwner {}
// SAFETY: as above: every method reachable through `&PoolOwner` is thread-safe.
unsafe impl Sync for PoolOwner {}

impl PoolOwner {
    /// A new pool of `capacity` slots of `slot_size` bytes.
    pub(crate) fn new(
        slot_size: usize,
        capacity: usize,
        tag: u8,
        class: Option<PoolId>,
    ) -> Result<Self, CapacityError> {
        Pool::create(slot_size, capacity, tag, class, Start::Owned).map(PoolOwner)
    }
}

impl core::ops::Deref for PoolOwner {
    type Target = Pool;

    #[inline]
    fn deref(&self) -> &Pool {
        // SAFETY: the owner's share is counted only in `drop`, so the pool is alive for
        // as long as the owner exists.
        unsafe { self.0.as_ref() }
    }
}

impl core::fmt::Debug for PoolOwner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&**self, f)
    }
}

impl Drop for PoolOwner {
    fn drop(&mut self) {
        // SAFETY: dropped once; the owner is never used again.
        unsafe { Pool::close(self.0) };
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{cache_budget, magazine_quota};

    #[test]
    fn budgets_and_quotas() {
        assert_eq!(cache_budget(7), 0, "pools under 8 slots are never cached");
        assert_eq!(magazine_quota(cache_budget(8)), 1);
        assert_eq!(magazine_quota(cache_budget(64)), 2);
        assert_eq!(magazine_quota(cache_budget(2000)), 32);
        for capacity in [0, 1, 8, 15, 64, 300, 2000, 1 << 20] {
            let budget = cache_budget(capacity);
            assert!(budget * 8 <= capacity);
            assert!(magazine_quota(budget) <= budget);
        }
    }
}
