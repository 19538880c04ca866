//! The readers that asked to hold the writer back: a fixed table of published reader
//! positions that [`Writer::try_add`](super::Writer::try_add) consults.
//!
//! Each entry is alone on its cache line and holds [`FREE`] or the next event number its
//! reader will read. A reader claims an entry with a CAS, publishes its position with a
//! Release store after each read, and frees the entry when it stops (or drops). The
//! writer keeps the minimum it last saw and rescans only when that minimum would stop it,
//! or when a reader joined since (`version` moved).

use crate::sync::{AtomicU64, AtomicUsize, Ordering};

/// How many readers can hold the writer back at once (fewer under loom, to keep models
/// small).
pub(super) const MAX_GATING: usize = if cfg!(loom) { 2 } else { 64 };

/// An entry no reader holds.
const FREE: u64 = u64::MAX;

/// Keeps its contents alone on a pair of cache lines (the adjacent-line prefetcher pulls
/// lines in pairs).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(super) struct Padded<T>(pub(super) T);

impl<T> core::ops::Deref for Padded<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// The table of gating readers' positions.
pub(super) struct Registry {
    entries: Box<[Padded<AtomicU64>]>,
    /// One past the highest entry ever claimed: the writer scans no further.
    used: AtomicUsize,
    /// Moves on every claim, so the writer notices a new reader without scanning.
    version: AtomicU64,
}

impl Registry {
    pub(super) fn new() -> Self {
        Self {
            entries: (0..MAX_GATING)
                .map(|_| Padded(AtomicU64::new(FREE)))
                .collect(),
            used: AtomicUsize::new(0),
            version: AtomicU64::new(0),
        }
    }

    /// Claims a free entry showing `position`: its index and the registry version this
    /// claim made (see [`version`](Self::version)), or `None` if all are taken.
    pub(super) fn join(&self, position: u64) -> Option<(usize, u64)> {
        let index = self.entries.iter().position(|entry| {
            // Relaxed: the claim publishes nothing by itself; the Release increment of
            // `version` below does (program order puts this CAS before it).
            entry
                .compare_exchange(FREE, position, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        })?;
        // Release: pairs with the writer's Acquire load in `min_position`, so a writer
        // that reads the new `used` also reads this claim.
        self.used.fetch_max(index + 1, Ordering::Release);
        // Release: pairs with the writer's Acquire load in `version`: a writer that sees
        // the new version rescans and finds this entry.
        let version = self.version.fetch_add(1, Ordering::Release) + 1;
        Some((index, version))
    }

    /// Publishes that the reader of entry `index` will read `position` next.
    #[inline]
    pub(super) fn update(&self, index: usize, position: u64) {
        // Release: pairs with the writer's Acquire load in `min_position`: the reader's
        // copies of every event before `position` happen-before the writer overwrites
        // those slots.
        self.entries[index].store(position, Ordering::Release);
    }

    /// Frees entry `index`.
    pub(super) fn leave(&self, index: usize) {
        // Release: as in `update`, the reader's last copies happen-before any overwrite
        // the writer does because the entry is free.
        self.entries[index].store(FREE, Ordering::Release);
    }

    /// How many claims there have been so far.
    #[inline]
    pub(super) fn version(&self) -> u64 {
        // Acquire: pairs with the Release increment in `join`.
        self.version.load(Ordering::Acquire)
    }

    /// The lowest position among the gating readers, or `None` if there are none.
    pub(super) fn min_position(&self) -> Option<u64> {
        // Acquire: pairs with the Release `fetch_max` in `join`.
        let used = self.used.load(Ordering::Acquire);
        self.entries[..used]
            .iter()
            // Acquire: pairs with the Release stores in `update` and `leave`.
            .map(|entry| entry.load(Ordering::Acquire))
            .filter(|&position| position != FREE)
            .min()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn join_update_leave() {
        let reg = Registry::new();
        assert_eq!(reg.min_position(), None);
        let (a, first) = reg.join(5).unwrap();
        let (b, second) = reg.join(3).unwrap();
        assert_eq!((first, second), (1, 2));
        assert_ne!(a, b);
        assert_eq!(reg.version(), 2);
        assert_eq!(reg.min_position(), Some(3));
        reg.update(b, 9);
        assert_eq!(reg.min_position(), Some(5));
        reg.leave(a);
        assert_eq!(reg.min_position(), Some(9));
        reg.leave(b);
        assert_eq!(reg.min_position(), None);
    }

    #[test]
    fn full_table_refuses() {
        let reg = Registry::new();
        let taken: Vec<_> = (0..MAX_GATING)
            .map(|i| reg.join(i as u64).unwrap().0)
            .collect();
        assert_eq!(reg.join(0), None);
        reg.leave(taken[7]);
        assert_eq!(reg.join(1), Some((taken[7], MAX_GATING as u64 + 1)));
    }
}
