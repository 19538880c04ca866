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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HeapStats {
    /// Heap events live right now.
    pub in_use: u64,
    /// Heap events made since the allocator was made.
    pub allocations: u64,
}

/// A snapshot of a whole [`EventAllocator`](crate::EventAllocator).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AllocatorStats {
    /// One entry per pool, in [`PoolId::ALL`] order.
    pub pools: [PoolStats; 5],
    /// The heap fallback.
    pub heap: HeapStats,
}

impl AllocatorStats {
    /// The statistics of one pool.
    #[inline]
    #[must_use]
    pub fn pool(&self, pool: PoolId) -> &PoolStats {
        &self.pools[pool.index()]
    }

    /// Events live right now, pooled and on the heap.
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
