//! [`EventAllocator`]: five size-class pools, spilling to larger classes and the heap,
//! behind one handle type, [`RingPtr<Event>`].

use core::fmt;

use crate::error::{AllocError, CapacityError, TokenError};
use crate::event::{Event, PoolId};
use crate::heap::HeapShared;
use crate::pool::{Pool, PoolOwner};
use crate::ptr::RingPtr;
use crate::slot::SlotHeader;
use crate::stats::AllocatorStats;
use crate::sync::Arc;
use crate::token::{TAG_HEAP, Token, class_of_tag, class_tag};
use core::ptr::NonNull;

/// Default slots per pool, in [`PoolId::ALL`] order: XS 64 B x 2000, S 256 B x 1000,
/// M 1 KiB x 300, L 4 KiB x 60, XL 16 KiB x 15 (about 1.2 MB of payload in all).
pub const DEFAULT_CAPACITIES: [usize; 5] = [2000, 1000, 300, 60, 15];

/// Copies byte events into pooled slots of the right size class and hands out
/// [`RingPtr<Event>`] handles.
///
/// * [`allocate`](Self::allocate) picks the smallest class that fits; if that pool is
///   full it spills to the next larger class, then to the heap (also used for payloads
///   over 16 KiB), counting every spill. It fails only when spilling or the heap
///   fallback is turned off in the [builder](Self::builder), or when the heap has no
///   memory for the event ([`AllocError::OutOfMemory`]; nothing aborts).
/// * [`try_allocate`](Self::try_allocate) never spills and never uses the heap.
/// * Handles keep their pool's storage alive, so dropping the allocator first is safe.
///
/// ```
/// use slotring::{Event, EventAllocator, PoolId, RingPtr, WeakRingPtr};
/// let alloc = EventAllocator::new();
/// let ev: RingPtr<Event> = alloc.allocate(b"hello", 7)?;
/// assert_eq!(ev.payload(), b"hello");
/// assert_eq!(ev.event_type(), 7);
/// assert_eq!(RingPtr::pool_id(&ev), Some(PoolId::XS));
/// let twin = ev.clone();
/// assert_eq!(RingPtr::strong_count(&ev), 2);
/// let weak: WeakRingPtr<Event> = RingPtr::downgrade(&ev);
/// drop(twin);
/// drop(ev);
/// assert!(weak.upgrade().is_none());
/// assert_eq!(alloc.stats().pool(PoolId::XS).in_use, 0);
/// # Ok::<(), slotring::AllocError>(())
/// ```
///
/// A process-wide allocator for an actor application:
///
/// ```
/// use std::sync::LazyLock;
/// use slotring::EventAllocator;
/// static ALLOC: LazyLock<EventAllocator> = LazyLock::new(EventAllocator::new);
/// let ev = ALLOC.allocate(&[1, 2, 3], 0)?;
/// std::thread::spawn(move || assert_eq!(ev.len(), 3)).join().unwrap();
/// # Ok::<(), slotring::AllocError>(())
/// ```
pub struct EventAllocator {
    pools: [PoolOwner; 5],
    spill: bool,
    heap_fallback: bool,
    heap: Arc<HeapShared>,
}

impl EventAllocator {
    /// An allocator with the [default capacities](DEFAULT_CAPACITIES), spilling and the
    /// heap fallback on.
    #[must_use]
    pub fn new() -> Self {
        match Self::builder().build() {
            Ok(alloc) => alloc,
            // Unreachable: the default capacities are far below every limit.
            Err(err) => panic!("{err}"),
        }
    }

    /// A builder for other capacities and policies.
    ///
    /// ```
    /// use slotring::{AllocError, EventAllocator, PoolId};
    /// let alloc = EventAllocator::builder()
    ///     .capacity(PoolId::XS, 1)
    ///     .spill(false)
    ///     .heap_fallback(false)
    ///     .build()?;
    /// let _held = alloc.allocate(b"a", 0)?;
    /// assert_eq!(
    ///     alloc.allocate(b"b", 0).unwrap_err(),
    ///     AllocError::PoolExhausted { pool: PoolId::XS },
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> EventAllocatorBuilder {
        EventAllocatorBuilder {
            capacities: DEFAULT_CAPACITIES,
            spill: true,
            heap_fallback: true,
        }
    }

    /// Stores a copy of `payload` with `event_type` and returns its handle.
    ///
    /// Uses the smallest class that fits; when that pool is full, the next larger class
    /// with a free slot, then the heap. Payloads over 16 KiB go to the heap. Fails if
    /// spilling or the heap fallback is off (see the [builder](Self::builder)), or with
    /// [`AllocError::OutOfMemory`] if the heap has no memory for the event (never an
    /// abort).
    #[inline]
    pub fn allocate(&self, payload: &[u8], event_type: u32) -> Result<RingPtr<Event>, AllocError> {
        if let Some(ev) = self.store_cached(payload, event_type) {
            return Ok(ev);
        }
        self.allocate_uncached(payload, event_type)
    }

    /// [`allocate`](Self::allocate) past this thread's magazine: the shared free list,
    /// fresh slots, spilling and the heap. Not inlined, so that the fast path compiles
    /// into the caller small.
    #[inline(never)]
    fn allocate_uncached(
        &self,
        payload: &[u8],
        event_type: u32,
    ) -> Result<RingPtr<Event>, AllocError> {
        let Some(class) = PoolId::for_len(payload.len()) else {
            return self.allocate_on_heap(payload, event_type, None);
        };
        if let Some(ev) = self.store(class, payload, event_type) {
            return Ok(ev);
        }
        self.allocate_cold(class, payload, event_type)
    }

    /// The allocation fast path: a slot of the payload's own class from this thread's
    /// magazine, or `None`.
    #[inline(always)]
    fn store_cached(&self, payload: &[u8], event_type: u32) -> Option<RingPtr<Event>> {
        let class = PoolId::for_len(payload.len())?;
        let slot = self.pool(class).store_bytes_cached(payload, event_type)?;
        // SAFETY: `store_bytes_cached` activated the slot with one strong reference for
        // the new handle and wrote `payload.len()` bytes, its recorded length.
        Some(unsafe { RingPtr::from_slot(slot) })
    }

    #[cold]
    fn allocate_cold(
        &self,
        class: PoolId,
        payload: &[u8],
        event_type: u32,
    ) -> Result<RingPtr<Event>, AllocError> {
        if self.spill {
            let mut larger = class.larger();
            while let Some(pool) = larger {
                if let Some(ev) = self.store(pool, payload, event_type) {
                    self.pool(class).note_spill();
                    return Ok(ev);
                }
                larger = pool.larger();
            }
        }
        self.allocate_on_heap(payload, event_type, Some(class))
    }

    #[cold]
    fn allocate_on_heap(
        &self,
        payload: &[u8],
        event_type: u32,
        spilled_from: Option<PoolId>,
    ) -> Result<RingPtr<Event>, AllocError> {
        let too_large = AllocError::TooLarge {
            len: payload.len(),
            max: self.max_payload_len(),
        };
        if !self.heap_fallback {
            return Err(match spilled_from {
                Some(pool) => {
                    self.pool(pool).note_failure();
                    AllocError::PoolExhausted { pool }
                }
                None => too_large,
            });
        }
        if u32::try_from(payload.len()).is_err() {
            return Err(too_large);
        }
        let pool = Pool::create_heap(payload.len(), &self.heap).map_err(|e| match e {
            CapacityError::OutOfMemory { .. } => AllocError::OutOfMemory { len: payload.len() },
            _ => too_large,
        })?;
        // SAFETY: a freshly created pool is alive (we hold its only unit) until its one
        // slot is released.
        let pool_ref = unsafe { pool.as_ref() };
        let Some(slot) = pool_ref.store_bytes(payload, event_type) else {
            // Unreachable (the single slot is fresh and fits `len`); give the unit back
            // so the pool frees itself rather than leak.
            // SAFETY: we own the unit and never touch the pool again.
            unsafe { Pool::unkeep(pool) };
            return Err(too_large);
        };
        self.heap.counters.note_allocation();
        if let Some(pool) = spilled_from {
            self.pool(pool).note_spill();
        }
        // The pool's keepalive unit now belongs to its one slot: freed when the slot is
        // released (the pool was created closed, with its owner share counted).
        // SAFETY: `store_bytes` activated the slot with one strong reference for us and
        // wrote `len` bytes.
        Ok(unsafe { RingPtr::from_slot(slot) })
    }

    /// Stores a copy of `payload` in its own class only: no spilling, no heap.
    ///
    /// Errors: [`AllocError::TooLarge`] over 16 KiB, [`AllocError::PoolExhausted`] when
    /// the class is full. The payload is only borrowed, so the caller keeps it.
    #[inline]
    pub fn try_allocate(
        &self,
        payload: &[u8],
        event_type: u32,
    ) -> Result<RingPtr<Event>, AllocError> {
        if let Some(ev) = self.store_cached(payload, event_type) {
            return Ok(ev);
        }
        let Some(class) = PoolId::for_len(payload.len()) else {
            return Err(AllocError::TooLarge {
                len: payload.len(),
                max: PoolId::MAX_POOLED,
            });
        };
        self.try_allocate_in(class, payload, event_type)
    }

    /// Stores a copy of `payload` in the given pool (which must be large enough): no
    /// spilling, no heap.
    ///
    /// ```
    /// use slotring::{EventAllocator, PoolId, RingPtr};
    /// let alloc = EventAllocator::new();
    /// let ev = alloc.try_allocate_in(PoolId::M, b"room to grow", 1)?;
    /// assert_eq!(RingPtr::pool_id(&ev), Some(PoolId::M));
    /// # Ok::<(), slotring::AllocError>(())
    /// ```
    pub fn try_allocate_in(
        &self,
        pool: PoolId,
        payload: &[u8],
        event_type: u32,
    ) -> Result<RingPtr<Event>, AllocError> {
        if payload.len() > pool.max_size() {
            return Err(AllocError::TooLarge {
                len: payload.len(),
                max: pool.max_size(),
            });
        }
        self.store(pool, payload, event_type).ok_or_else(|| {
            self.pool(pool).note_failure();
            AllocError::PoolExhausted { pool }
        })
    }

    #[inline]
    pub(crate) fn store(
        &self,
        pool: PoolId,
        payload: &[u8],
        event_type: u32,
    ) -> Option<RingPtr<Event>> {
        let slot = self.pool(pool).store_bytes(payload, event_type)?;
        // SAFETY: `store_bytes` activated the slot with one strong reference for the new
        // handle and wrote `payload.len()` bytes, its recorded length.
        Some(unsafe { RingPtr::from_slot(slot) })
    }

    /// Whether a full class spills to larger ones (the builder's setting).
    pub(crate) fn spill_enabled(&self) -> bool {
        self.spill
    }

    #[inline]
    pub(crate) fn pool(&self, pool: PoolId) -> &Pool {
        &self.pools[pool.index()]
    }

    /// Turns a token from [`RingPtr::into_raw`] back into a handle. Stale tokens (their
    /// slot was released), tokens already taken back and tokens this allocator did not
    /// make are refused (a token of another allocator or pool is accepted with
    /// probability at most 2^-32).
    ///
    /// ```
    /// use slotring::{EventAllocator, RingPtr, TokenError};
    /// let alloc = EventAllocator::new();
    /// let token = RingPtr::into_raw(alloc.allocate(b"across FFI", 2)?).unwrap();
    /// let ev = alloc.from_raw(token)?;
    /// assert_eq!(ev.payload(), b"across FFI");
    /// assert_eq!(alloc.from_raw(token).unwrap_err(), TokenError::Released);
    ///
    /// let other = EventAllocator::new();
    /// let foreign = RingPtr::into_raw(other.allocate(b"elsewhere", 2)?).unwrap();
    /// assert!(alloc.from_raw(foreign).is_err());
    /// # drop(other.from_raw(foreign));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_raw(&self, token: u64) -> Result<RingPtr<Event>, TokenError> {
        let slot = self.resolve(token, Pool::take_token, HeapShared::take)?;
        // SAFETY: `take_token` / the heap table transferred the token's parked strong
        // reference to us; the slot is a live byte event of this allocator.
        Ok(unsafe { RingPtr::from_slot(slot) })
    }

    /// A new handle to the event a token names, leaving the token itself usable: the
    /// token's own hold stays parked until [`from_raw`](Self::from_raw) takes it back.
    /// Refused like `from_raw` when the token is stale, used up or foreign.
    ///
    /// ```
    /// use slotring::{EventAllocator, RingPtr};
    /// let alloc = EventAllocator::new();
    /// let token = RingPtr::into_raw(alloc.allocate(b"peek", 1)?).unwrap();
    /// let view = alloc.clone_raw(token)?;
    /// assert_eq!(view.payload(), b"peek");
    /// drop(view);
    /// drop(alloc.from_raw(token)?); // the token's own hold, released
    /// assert!(alloc.clone_raw(token).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clone_raw(&self, token: u64) -> Result<RingPtr<Event>, TokenError> {
        let slot = self.resolve(token, Pool::clone_token, HeapShared::clone)?;
        // SAFETY: `clone_token` / the heap table added a strong reference for us; the
        // slot is a live byte event of this allocator.
        Ok(unsafe { RingPtr::from_slot(slot) })
    }

    /// Sends a token to the pool or heap table its tag names.
    fn resolve(
        &self,
        token: u64,
        in_pool: fn(&Pool, u64) -> Result<NonNull<SlotHeader>, TokenError>,
        on_heap: fn(&HeapShared, u64) -> Result<NonNull<SlotHeader>, TokenError>,
    ) -> Result<NonNull<SlotHeader>, TokenError> {
        let tag = Token::decode(token).tag;
        if tag == TAG_HEAP {
            return on_heap(&self.heap, token);
        }
        let class = class_of_tag(tag).ok_or(TokenError::Foreign)?;
        in_pool(self.pool(class), token)
    }

    /// A statistics snapshot of every pool and the heap fallback.
    ///
    /// It reads every slot's state word once, so its cost grows linearly with the
    /// capacity (the `stats_scan` group of `comparisons/benches/alloc.rs` measures it at
    /// 1,000 to 1,000,000 slots): call it for monitoring, not per event. The hot paths
    /// keep no counter of their own for it. `in_use` and `allocations` are exact when no
    /// thread allocates or drops meanwhile (slots cached in per-thread magazines are free
    /// and counted as such); while threads run, each slot is read at its own moment.
    ///
    /// ```
    /// use slotring::{EventAllocator, PoolId};
    /// let alloc = EventAllocator::new();
    /// let _ev = alloc.allocate(b"counted", 0)?;
    /// let stats = alloc.stats();
    /// assert_eq!(stats.pool(PoolId::XS).in_use, 1);
    /// assert_eq!(stats.total_in_use(), 1);
    /// # Ok::<(), slotring::AllocError>(())
    /// ```
    #[must_use]
    pub fn stats(&self) -> AllocatorStats {
        AllocatorStats {
            pools: PoolId::ALL.map(|pool| self.pool(pool).stats()),
            heap: self.heap.counters.snapshot(),
        }
    }

    /// The number of slots of a pool.
    #[must_use]
    pub fn capacity(&self, pool: PoolId) -> usize {
        self.pool(pool).capacity()
    }

    /// The longest payload [`allocate`](Self::allocate) accepts: `u32::MAX` bytes with
    /// the heap fallback, the largest class ([`PoolId::MAX_POOLED`]) without it.
    #[must_use]
    pub fn max_payload_len(&self) -> usize {
        if self.heap_fallback {
            u32::MAX as usize
        } else {
            PoolId::MAX_POOLED
        }
    }
}

impl Default for EventAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for EventAllocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventAllocator")
            .field("spill", &self.spill)
            .field("heap_fallback", &self.heap_fallback)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Configures an [`EventAllocator`]: capacities per pool, spilling, heap fallback.
#[derive(Clone, Debug)]
#[must_use]
pub struct EventAllocatorBuilder {
    capacities: [usize; 5],
    spill: bool,
    heap_fallback: bool,
}

impl EventAllocatorBuilder {
    /// Sets the number of slots of one pool (0 is allowed: that class always spills).
    pub fn capacity(mut self, pool: PoolId, slots: usize) -> Self {
        self.capacities[pool.index()] = slots;
        self
    }

    /// Sets every pool's number of slots, in [`PoolId::ALL`] order.
    pub fn capacities(mut self, slots: [usize; 5]) -> Self {
        self.capacities = slots;
        self
    }

    /// Whether a full pool spills to the next larger class (default: on). With spilling
    /// off and the heap fallback on, a full class goes straight to the heap.
    pub fn spill(mut self, on: bool) -> Self {
        self.spill = on;
        self
    }

    /// Whether payloads over 16 KiB, and requests no pool could serve, go to the heap
    /// (default: on).
    pub fn heap_fallback(mut self, on: bool) -> Self {
        self.heap_fallback = on;
        self
    }

    /// Allocates the pools (zeroed, on the heap, in place).
    ///
    /// Errors: [`CapacityError::TooManySlots`] over 2^24 - 1 slots,
    /// [`CapacityError::TooManyBytes`] when a pool's size overflows the address space,
    /// [`CapacityError::OutOfMemory`] when the system refuses the memory (checked before
    /// any slot is touched; nothing is allocated then, and nothing aborts).
    ///
    /// ```
    /// use slotring::{CapacityError, EventAllocator, PoolId};
    /// let err = EventAllocator::builder().capacity(PoolId::XL, usize::MAX).build();
    /// assert!(matches!(err, Err(CapacityError::TooManySlots { .. })));
    /// ```
    pub fn build(self) -> Result<EventAllocator, CapacityError> {
        let [xs, s, m, l, xl] = self.capacities;
        let make = |pool: PoolId, slots: usize| {
            PoolOwner::new(pool.max_size(), slots, class_tag(pool), Some(pool))
        };
        Ok(EventAllocator {
            pools: [
                make(PoolId::XS, xs)?,
                make(PoolId::S, s)?,
                make(PoolId::M, m)?,
                make(PoolId::L, l)?,
                make(PoolId::XL, xl)?,
            ],
            spill: self.spill,
            heap_fallback: self.heap_fallback,
            heap: Arc::new(HeapShared::new()),
        })
    }
}
