//! Statistics snapshots: per pool ([`PoolStats`]), for the heap fallback
//! ([`HeapStats`]) and for a whole allocator ([`AllocatorStats`]).
//!
//! Taking a snapshot reads every slot's state word once (a few microseconds for the
//! default allocator); the hot paths keep no counters of their own. `in_use` and
//! `allocations` are derived from the slots, `high_water` from the pool's fresh-slot
//! cursor (slots are reused before new ones are touched, so the number of slots ever
//! touched is the highest number ever live at once).

use crate::event::PoolId;
use crate::sync::{AtomicU64, Ordering};

/// A snapshot of one pool.
///
/// ```
/// use slotring::{EventAllocator, PoolId};
/// let alloc = EventAllocator::new();
/// let a = alloc.allocate(b"one", 1)?;
/// let b = alloc.allocate(b"two", 1)?;
/// drop(a);
/// let xs = alloc.stats().pool(PoolId::XS).clone();
/// assert_eq!((xs.capacity, xs.in_use, xs.high_water, xs.allocations), (2000, 1, 2, 2));
/// # drop(b);
/// # Ok::<(), slotring::AllocError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PoolStats {
    /// Number of slots.
    pub capacity: usize,
    /// Slots live right now.
    pub in_use: usize,
    /// The most slots ever live at once.
    pub high_water: usize,
    /// Slots handed out since the pool was made (counts each slot's first 2^32 reuses).
    pub allocations: u64,
    /// Requests for this class that were served by a larger class or the heap because
    /// this pool was full.
    pub spills: u64,
    /// Requests for this class that failed (`try_allocate` on a full pool, or
    /// `allocate` with spilling and the heap fallback turned off).
    pub failures: u64,
}

/// A snapshot of the heap fallback (payloads over 16 KiB, or spills past `XL`).
///
/// ```
/// use slotring::EventAllocator;
/// let alloc = EventAllocator::new();
/// let big = alloc.allocate(&vec![0; 20_000], 1)?; // above 16 KiB: the heap
/// assert_eq!((alloc.stats().heap.in_use, alloc.stats().heap.allocations), (1, 1));
/// drop(big);
/// assert_eq!((alloc.stats().heap.in_use, alloc.stats().heap.allocations), (0, 1));
/// # Ok::<(), slotring::AllocError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HeapStats {
    /// Heap events live right now.
    pub in_use: u64,
    /// Heap events made since the allocator was made.
    pub allocations: u64,
}

/// A snapshot of a whole [`EventAllocator`](crate::EventAllocator).
///
/// ```
/// use slotring::{EventAllocator, PoolId};
/// let alloc = EventAllocator::builder().capacity(PoolId::XS, 1).build()?;
/// let _a = alloc.allocate(b"fits XS", 1)?;
/// let _b = alloc.allocate(b"spills to S", 1)?;     // XS is full
/// let stats = alloc.stats();
/// assert_eq!(stats.pool(PoolId::XS).spills, 1);
/// assert_eq!(stats.pool(PoolId::S).in_use, 1);
/// assert_eq!(stats.total_in_use(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AllocatorStats {
    /// One entry per pool, in [`PoolId::ALL`] order.
    pub pools: [PoolStats; 5],
    /// The heap fallback.
    pub heap: HeapStats,
}

impl AllocatorStats {
    /// The statistics of one pool.
    ///
    /// ```
    /// use slotring::{EventAllocator, PoolId};
    /// let alloc = EventAllocator::new();
    /// let _ev = alloc.allocate(&[0; 300], 1)?;
    /// let m = *alloc.stats().pool(PoolId::M);
    /// assert_eq!((m.in_use, m.capacity), (1, alloc.capacity(PoolId::M)));
    /// # Ok::<(), slotring::AllocError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn pool(&self, pool: PoolId) -> &PoolStats {
        &self.pools[pool.index()]
    }

    /// Events live right now, pooled and on the heap.
    ///
    /// ```
    /// use slotring::EventAllocator;
    /// let alloc = EventAllocator::new();
    /// let held: Vec<_> = [10, 100, 1000, 20_000]
    ///     .map(|len| alloc.allocate(&vec![1; len], 1).unwrap())
    ///     .into();
    /// assert_eq!(alloc.stats().total_in_use(), 4); // three pools and the heap
    /// drop(held);
    /// assert_eq!(alloc.stats().total_in_use(), 0); // nothing leaked
    /// ```
    #[must_use]
    pub fn total_in_use(&self) -> u64 {
        self.pools.iter().map(|p| p.in_use as u64).sum::<u64>() + self.heap.in_use
    }
}

/// Heap-fallback counters, shared by an allocator and its live heap events.
#[derive(Debug, Default)]
pub(crate) struct HeapCounters {
    allocations: AtomicU64,
    frees: AtomicU64,
}

impl HeapCounters {
    pub(crate) fn note_allocation(&self) {
        // Relaxed: statistics.
        self.allocations.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_free(&self) {
        // Relaxed: statistics.
        self.frees.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> HeapStats {
        // Relaxed: statistics. Frees are read first so `in_use` never underflows.
        let frees = self.frees.load(Ordering::Relaxed);
        let allocations = self.allocations.load(Ordering::Relaxed);
        HeapStats {
            in_use: allocations.saturating_sub(frees),
            allocations,
        }
    }
}
