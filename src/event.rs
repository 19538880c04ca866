//! Size classes ([`EventSize`], [`PoolId`]) and the fixed-capacity event value
//! [`PooledEvent`], plus the [`Event`] marker that names byte events in handles.

use core::fmt;

use crate::error::AllocError;

/// The size class of an event payload: five pooled "T-shirt" sizes and the heap.
///
/// ```
/// use slotring::EventSize;
/// assert_eq!(EventSize::for_len(0), EventSize::XS);
/// assert_eq!(EventSize::for_len(64), EventSize::XS);
/// assert_eq!(EventSize::for_len(65), EventSize::S);
/// assert_eq!(EventSize::for_len(20_000), EventSize::XXL);
/// assert_eq!(EventSize::M.max_size(), Some(1024));
/// assert_eq!(EventSize::XXL.max_size(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventSize {
    /// Up to 64 bytes.
    XS,
    /// Up to 256 bytes.
    S,
    /// Up to 1 KiB.
    M,
    /// Up to 4 KiB.
    L,
    /// Up to 16 KiB.
    XL,
    /// Larger than 16 KiB: served from the heap, never from a pool.
    XXL,
}

impl EventSize {
    /// The smallest class whose slots hold `len` bytes.
    ///
    /// ```
    /// use slotring::EventSize;
    /// assert_eq!(EventSize::for_len(256), EventSize::S);
    /// assert_eq!(EventSize::for_len(257), EventSize::M);
    /// assert_eq!(EventSize::for_len(16_385), EventSize::XXL);
    /// ```
    #[inline]
    #[must_use]
    pub const fn for_len(len: usize) -> Self {
        match PoolId::for_len(len) {
            Some(pool) => pool.size(),
            None => EventSize::XXL,
        }
    }

    /// The largest payload this class holds, or `None` for the unbounded heap class.
    ///
    /// ```
    /// use slotring::EventSize;
    /// assert_eq!(EventSize::XS.max_size(), Some(64));
    /// assert_eq!(EventSize::XL.max_size(), Some(16_384));
    /// assert_eq!(EventSize::XXL.max_size(), None);
    /// ```
    #[inline]
    #[must_use]
    pub const fn max_size(self) -> Option<usize> {
        match self.pool_id() {
            Some(pool) => Some(pool.max_size()),
            None => None,
        }
    }

    /// The pool that serves this class, or `None` for [`EventSize::XXL`].
    ///
    /// ```
    /// use slotring::{EventSize, PoolId};
    /// assert_eq!(EventSize::L.pool_id(), Some(PoolId::L));
    /// assert_eq!(EventSize::XXL.pool_id(), None); // the heap fallback
    /// ```
    #[inline]
    #[must_use]
    pub const fn pool_id(self) -> Option<PoolId> {
        match self {
            EventSize::XS => Some(PoolId::XS),
            EventSize::S => Some(PoolId::S),
            EventSize::M => Some(PoolId::M),
            EventSize::L => Some(PoolId::L),
            EventSize::XL => Some(PoolId::XL),
            EventSize::XXL => None,
        }
    }
}

impl fmt::Display for EventSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pool_id() {
            Some(pool) => fmt::Display::fmt(&pool, f),
            None => f.write_str("XXL"),
        }
    }
}

/// One of the five pools of an [`EventAllocator`](crate::EventAllocator).
///
/// ```
/// use slotring::PoolId;
/// assert_eq!(PoolId::XS.max_size(), 64);
/// assert_eq!(PoolId::for_len(300), Some(PoolId::M));
/// assert_eq!(PoolId::for_len(20_000), None);
/// assert_eq!(PoolId::S.larger(), Some(PoolId::M));
/// assert_eq!(PoolId::XL.larger(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum PoolId {
    /// 64-byte slots.
    XS = 0,
    /// 256-byte slots.
    S = 1,
    /// 1 KiB slots.
    M = 2,
    /// 4 KiB slots.
    L = 3,
    /// 16 KiB slots.
    XL = 4,
}

impl PoolId {
    /// Every pool, smallest first.
    ///
    /// ```
    /// use slotring::{EventAllocator, PoolId};
    /// let alloc = EventAllocator::new();
    /// for pool in PoolId::ALL {
    ///     assert!(alloc.capacity(pool) > 0);
    /// }
    /// assert!(PoolId::ALL.windows(2).all(|w| w[0].max_size() < w[1].max_size()));
    /// ```
    pub const ALL: [PoolId; 5] = [PoolId::XS, PoolId::S, PoolId::M, PoolId::L, PoolId::XL];

    /// The largest payload any pool holds (16 KiB).
    ///
    /// ```
    /// use slotring::{EventAllocator, PoolId, RingPtr};
    /// let alloc = EventAllocator::new();
    /// let pooled = alloc.allocate(&vec![0; PoolId::MAX_POOLED], 1)?;
    /// let heap = alloc.allocate(&vec![0; PoolId::MAX_POOLED + 1], 1)?;
    /// assert_eq!(RingPtr::pool_id(&pooled), Some(PoolId::XL));
    /// assert_eq!(RingPtr::pool_id(&heap), None);
    /// # Ok::<(), slotring::AllocError>(())
    /// ```
    pub const MAX_POOLED: usize = PoolId::XL.max_size();

    /// The smallest pool whose slots hold `len` bytes, or `None` above 16 KiB.
    ///
    /// ```
    /// use slotring::PoolId;
    /// assert_eq!(PoolId::for_len(0), Some(PoolId::XS));
    /// assert_eq!(PoolId::for_len(4096), Some(PoolId::L));
    /// assert_eq!(PoolId::for_len(4097), Some(PoolId::XL));
    /// assert_eq!(PoolId::for_len(PoolId::MAX_POOLED + 1), None);
    /// ```
    #[inline]
    #[must_use]
    pub const fn for_len(len: usize) -> Option<Self> {
        if len <= 64 {
            Some(PoolId::XS)
        } else if len <= 256 {
            Some(PoolId::S)
        } else if len <= 1024 {
            Some(PoolId::M)
        } else if len <= 4096 {
            Some(PoolId::L)
        } else if len <= 16384 {
            Some(PoolId::XL)
        } else {
            None
        }
    }

    /// The slot size of this pool in bytes.
    ///
    /// ```
    /// use slotring::PoolId;
    /// let sizes = PoolId::ALL.map(PoolId::max_size);
    /// assert_eq!(sizes, [64, 256, 1024, 4096, 16_384]);
    /// ```
    #[inline]
    #[must_use]
    pub const fn max_size(self) -> usize {
        match self {
            PoolId::XS => 64,
            PoolId::S => 256,
            PoolId::M => 1024,
            PoolId::L => 4096,
            PoolId::XL => 16384,
        }
    }

    /// The size class this pool serves.
    ///
    /// ```
    /// use slotring::{EventSize, PoolId};
    /// assert_eq!(PoolId::M.size(), EventSize::M);
    /// assert_eq!(PoolId::M.size().pool_id(), Some(PoolId::M));
    /// ```
    #[inline]
    #[must_use]
    pub const fn size(self) -> EventSize {
        match self {
            PoolId::XS => EventSize::XS,
            PoolId::S => EventSize::S,
            PoolId::M => EventSize::M,
            PoolId::L => EventSize::L,
            PoolId::XL => EventSize::XL,
        }
    }

    /// The next larger pool (where a full pool spills to), or `None` for `XL`.
    ///
    /// ```
    /// use slotring::PoolId;
    /// // The spill chain of an XS request.
    /// let chain: Vec<PoolId> = std::iter::successors(Some(PoolId::XS), |p| p.larger()).collect();
    /// assert_eq!(chain, PoolId::ALL);
    /// ```
    #[inline]
    #[must_use]
    pub const fn larger(self) -> Option<Self> {
        match self {
            PoolId::XS => Some(PoolId::S),
            PoolId::S => Some(PoolId::M),
            PoolId::M => Some(PoolId::L),
            PoolId::L => Some(PoolId::XL),
            PoolId::XL => None,
        }
    }

    /// This pool's position in [`PoolId::ALL`] (0 for `XS` up to 4 for `XL`).
    ///
    /// ```
    /// use slotring::{EventAllocator, PoolId};
    /// let stats = EventAllocator::new().stats();
    /// assert_eq!(stats.pools[PoolId::L.index()], *stats.pool(PoolId::L));
    /// ```
    #[inline]
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The pool at `index` in [`PoolId::ALL`], if any.
    ///
    /// ```
    /// use slotring::PoolId;
    /// for pool in PoolId::ALL {
    ///     assert_eq!(PoolId::from_index(pool.index()), Some(pool));
    /// }
    /// assert_eq!(PoolId::from_index(5), None);
    /// ```
    #[inline]
    #[must_use]
    pub const fn from_index(index: usize) -> Option<Self> {
        match index {
            0 => Some(PoolId::XS),
            1 => Some(PoolId::S),
            2 => Some(PoolId::M),
            3 => Some(PoolId::L),
            4 => Some(PoolId::XL),
            _ => None,
        }
    }
}

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PoolId::XS => "XS",
            PoolId::S => "S",
            PoolId::M => "M",
            PoolId::L => "L",
            PoolId::XL => "XL",
        })
    }
}

/// Names a variable-length byte event inside a [`RingPtr`](crate::RingPtr).
///
/// `RingPtr<Event>` is what [`EventAllocator`](crate::EventAllocator) hands out for every
/// size class (and the heap). It dereferences to the payload bytes (`[u8]`) and has
/// [`payload`](crate::RingPtr::payload) and [`event_type`](crate::RingPtr::event_type).
/// The type itself has no values; it only marks the handle's contents.
#[derive(Debug)]
pub enum Event {}

/// A fixed-capacity event stored by value: up to `N` payload bytes, their length and a
/// type tag. It is [`bytemuck::Pod`], so it can live in typed pools, broadcast rings and
/// shared memory and be copied as plain bytes.
///
/// The length and type are stored as little-endian byte arrays, so the struct has
/// alignment 1 and no padding for any `N` (the library we improve on padded 56 implicit
/// bytes into a "Pod" event). Containers that hold it align their slots to cache lines.
///
/// ```
/// use slotring::PooledEvent;
/// let ev = PooledEvent::<64>::new(b"tick", 3)?;
/// assert_eq!(ev.payload(), b"tick");
/// assert_eq!(ev.event_type(), 3);
/// assert!(PooledEvent::<4>::new(b"too long", 0).is_err());
/// # Ok::<(), slotring::AllocError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct PooledEvent<const N: usize> {
    len: [u8; 4],
    event_type: [u8; 4],
    data: [u8; N],
}

// SAFETY: every field is a byte array, so the struct has alignment 1, no padding bytes
// for any `N` (checked for several `N` by the tests below), and the all-zero pattern is
// a valid value (an empty event of type 0).
unsafe impl<const N: usize> bytemuck::Zeroable for PooledEvent<N> {}
// SAFETY: as above: no padding, every bit pattern valid (`payload()` clamps a length
// field larger than `N`), `Copy + 'static`, `repr(C)`.
unsafe impl<const N: usize> bytemuck::Pod for PooledEvent<N> {}

impl<const N: usize> PooledEvent<N> {
    /// The largest payload this event holds.
    ///
    /// ```
    /// use slotring::PooledEvent;
    /// assert_eq!(PooledEvent::<256>::CAPACITY, 256);
    /// // Eight bytes of length and type, no padding.
    /// assert_eq!(size_of::<PooledEvent<256>>(), 256 + 8);
    /// ```
    pub const CAPACITY: usize = N;

    /// Copies `payload` into a new event, or reports [`AllocError::TooLarge`].
    ///
    /// ```
    /// use slotring::{AllocError, PooledEvent};
    /// let ev = PooledEvent::<16>::new(b"sixteen bytes ok", 2)?;
    /// assert_eq!(ev.len(), 16);
    /// assert_eq!(
    ///     PooledEvent::<16>::new(b"seventeen bytes!!", 2),
    ///     Err(AllocError::TooLarge { len: 17, max: 16 }),
    /// );
    /// # Ok::<(), AllocError>(())
    /// ```
    #[inline]
    pub fn new(payload: &[u8], event_type: u32) -> Result<Self, AllocError> {
        if payload.len() > N {
            return Err(AllocError::TooLarge {
                len: payload.len(),
                max: N,
            });
        }
        let mut ev = Self::empty(event_type);
        ev.data[..payload.len()].copy_from_slice(payload);
        // `payload.len() <= N`, and `N` fits in memory; a u32 length caps N at 4 GiB.
        ev.len = (payload.len() as u32).to_le_bytes();
        Ok(ev)
    }

    /// An event with no payload bytes.
    ///
    /// ```
    /// use slotring::PooledEvent;
    /// const HEARTBEAT: PooledEvent<64> = PooledEvent::empty(9);
    /// assert!(HEARTBEAT.is_empty());
    /// assert_eq!(HEARTBEAT.event_type(), 9);
    /// ```
    #[inline]
    #[must_use]
    pub const fn empty(event_type: u32) -> Self {
        Self {
            len: [0; 4],
            event_type: event_type.to_le_bytes(),
            data: [0; N],
        }
    }

    /// The payload bytes.
    ///
    /// ```
    /// use slotring::PooledEvent;
    /// let ev = PooledEvent::<64>::new(b"abc", 1)?;
    /// assert_eq!(ev.payload(), b"abc"); // only the bytes given, not all 64
    /// # Ok::<(), slotring::AllocError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.data[..self.len()]
    }

    /// The payload bytes, mutably (the length stays as it is).
    ///
    /// ```
    /// use slotring::PooledEvent;
    /// let mut ev = PooledEvent::<64>::new(b"abc", 1)?;
    /// ev.payload_mut().make_ascii_uppercase();
    /// assert_eq!(ev.payload(), b"ABC");
    /// # Ok::<(), slotring::AllocError>(())
    /// ```
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.len();
        &mut self.data[..len]
    }

    /// The payload length in bytes. A length field above `N` (from bytes that were not
    /// made by [`PooledEvent::new`]) reads as `N`.
    ///
    /// ```
    /// use slotring::PooledEvent;
    /// assert_eq!(PooledEvent::<64>::new(b"abc", 1)?.len(), 3);
    /// // Bytes from elsewhere (a file, another process) cannot claim more than N.
    /// let mut raw = [0xFFu8; 4 + 4 + 8];
    /// let ev: PooledEvent<8> = bytemuck::cast(raw);
    /// assert_eq!(ev.len(), 8);
    /// # raw[0] = 0;
    /// # Ok::<(), slotring::AllocError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        (u32::from_le_bytes(self.len) as usize).min(N)
    }

    /// Whether the payload is empty.
    ///
    /// ```
    /// use slotring::PooledEvent;
    /// assert!(PooledEvent::<64>::default().is_empty());
    /// assert!(!PooledEvent::<64>::new(b"x", 0)?.is_empty());
    /// # Ok::<(), slotring::AllocError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The event type tag.
    ///
    /// ```
    /// use slotring::PooledEvent;
    /// assert_eq!(PooledEvent::<64>::new(b"x", 42)?.event_type(), 42);
    /// # Ok::<(), slotring::AllocError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn event_type(&self) -> u32 {
        u32::from_le_bytes(self.event_type)
    }
}

impl<const N: usize> Default for PooledEvent<N> {
    fn default() -> Self {
        Self::empty(0)
    }
}

impl<const N: usize> fmt::Debug for PooledEvent<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledEvent")
            .field("capacity", &N)
            .field("event_type", &self.event_type())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_event_has_no_padding() {
        assert_eq!(size_of::<PooledEvent<0>>(), 8);
        assert_eq!(size_of::<PooledEvent<3>>(), 11);
        assert_eq!(size_of::<PooledEvent<256>>(), 264);
        assert_eq!(align_of::<PooledEvent<256>>(), 1);
    }

    #[test]
    fn size_classes_cover_every_length() {
        for len in [0, 1, 63, 64, 65, 256, 257, 1024, 1025, 4096, 4097, 16384] {
            let pool = PoolId::for_len(len).expect("pooled length");
            assert!(len <= pool.max_size(), "{len} does not fit {pool}");
            if let Some(smaller) = PoolId::from_index(pool.index().wrapping_sub(1)) {
                assert!(len > smaller.max_size(), "{len} should fit {smaller}");
            }
        }
        assert_eq!(PoolId::for_len(16385), None);
        assert_eq!(EventSize::for_len(usize::MAX), EventSize::XXL);
    }

    #[test]
    fn corrupt_length_is_clamped() {
        let mut ev = PooledEvent::<8>::new(b"abc", 1).unwrap();
        bytemuck::bytes_of_mut(&mut ev)[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(ev.len(), 8);
        assert_eq!(ev.payload().len(), 8);
    }
}
