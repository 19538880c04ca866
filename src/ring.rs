//! [`RingBuffer`]: a const-generic pool of `CAPACITY` cache-line-aligned slots of
//! `SIZE` bytes, for any [`bytemuck::Pod`] value that fits a slot.

use core::fmt;

use crate::error::{PoolFull, TokenError};
use crate::pool::{CACHE_LINE, MAX_SLOTS, PoolOwner};
use crate::ptr::RingPtr;
use crate::stats::PoolStats;
use crate::token::TAG_RING;

/// A fixed pool of `CAPACITY` slots of `SIZE` bytes each, handing out [`RingPtr<T>`]s.
///
/// The storage is one zeroed heap block (slots start on 64-byte boundaries), built in
/// place: `RingBuffer::<16384, 1000>::new()` never puts its 16 MB on the stack. A slot is
/// handed out again only after its last handle dropped; when every slot is live,
/// [`alloc`](Self::alloc) refuses and hands the value back. Despite the name (kept from
/// the library this one replaces) it never wraps onto a live slot: freed slots are reused
/// most-recently-freed first, through a lock-free free list.
///
/// Handles keep the storage alive, so dropping the `RingBuffer` while handles exist is
/// safe: the memory is freed when the last handle drops.
///
/// ```
/// use slotring::{RingBuffer, RingPtr};
/// let pool = RingBuffer::<64, 8>::new();
/// let p: RingPtr<[u64; 4]> = pool.alloc([1, 2, 3, 4])?;
/// assert_eq!(*p, [1, 2, 3, 4]);
/// let held: Vec<_> = (0..7).map(|i| pool.alloc([i; 4]).unwrap()).collect();
/// let full = pool.alloc([9; 4]).unwrap_err();          // the 9th live value is refused
/// assert_eq!(full.into_inner(), [9; 4]);              // and handed back
/// drop(held);
/// assert_eq!(pool.stats().in_use, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A value that does not fit a slot is a compile-time error:
///
/// ```compile_fail
/// let pool = slotring::RingBuffer::<8, 4>::new();
/// let _ = pool.alloc([0u64; 2]); // 16 bytes do not fit an 8-byte slot
/// ```
pub struct RingBuffer<const SIZE: usize, const CAPACITY: usize> {
    pool: PoolOwner,
}

impl<const SIZE: usize, const CAPACITY: usize> RingBuffer<SIZE, CAPACITY> {
    /// The number of slots.
    pub const CAPACITY: usize = CAPACITY;
    /// The bytes each slot holds.
    pub const SLOT_SIZE: usize = SIZE;

    /// Allocates the pool (zeroed, on the heap, in place).
    ///
    /// A `CAPACITY` above 16,777,215 slots, or a pool larger than the address space,
    /// is a compile-time error.
    #[must_use]
    pub fn new() -> Self {
        const {
            assert!(
                CAPACITY <= MAX_SLOTS,
                "RingBuffer CAPACITY exceeds 2^24 - 1 slots"
            );
            assert!(
                SIZE.next_multiple_of(CACHE_LINE) as u128 * CAPACITY as u128
                    <= isize::MAX as u128 - CACHE_LINE as u128,
                "RingBuffer is larger than the address space"
            );
        };
        let pool = match PoolOwner::new(SIZE, CAPACITY, TAG_RING, None) {
            Ok(pool) => pool,
            // Unreachable: both conditions are checked at compile time above.
            Err(err) => panic!("{err}"),
        };
        Self { pool }
    }

    /// Moves `value` into a free slot, or hands it back in [`PoolFull`] if every slot is
    /// live. `T` must fit a slot and need at most 64-byte alignment (checked at compile
    /// time).
    #[inline]
    pub fn alloc<T: bytemuck::Pod>(&self, value: T) -> Result<RingPtr<T>, PoolFull<T>> {
        const { assert_fits::<T>(SIZE) };
        match self.pool.store_value(value) {
            // SAFETY: `store_value` activated the slot with one strong reference, which
            // the new handle owns, and wrote a `T` into it.
            Ok(slot) => Ok(unsafe { RingPtr::from_slot(slot) }),
            Err(value) => {
                self.pool.note_failure();
                Err(PoolFull(value))
            }
        }
    }

    /// Turns a token from [`RingPtr::into_raw`] back into a handle. Stale tokens (their
    /// slot was released), tokens already taken back, and tokens of other pools are
    /// refused (a token of another pool is accepted with probability at most 2^-32). The slot's bytes are read as `T`; any `Pod` type that fits is valid, so a
    /// token taken back as another type yields that type's view of the same bytes.
    ///
    /// ```
    /// use slotring::{RingBuffer, RingPtr, TokenError};
    /// let pool = RingBuffer::<64, 4>::new();
    /// let token = RingPtr::into_raw(pool.alloc(42u32)?).unwrap();
    /// assert_eq!(*pool.from_raw::<u32>(token)?, 42);
    /// assert_eq!(pool.from_raw::<u32>(token).unwrap_err(), TokenError::Released);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_raw<T: bytemuck::Pod>(&self, token: u64) -> Result<RingPtr<T>, TokenError> {
        const { assert_fits::<T>(SIZE) };
        let slot = self.pool.take_token(token)?;
        // SAFETY: `take_token` transferred a parked strong reference to us; the slot's
        // payload holds `SIZE` initialised bytes (zeroed at creation, then written only
        // with `Pod` values), and every bit pattern is a valid `T`.
        Ok(unsafe { RingPtr::from_slot(slot) })
    }

    /// A new handle to the value a token names, leaving the token's own parked hold in
    /// place (see [`EventAllocator::clone_raw`](crate::EventAllocator::clone_raw)).
    pub fn clone_raw<T: bytemuck::Pod>(&self, token: u64) -> Result<RingPtr<T>, TokenError> {
        const { assert_fits::<T>(SIZE) };
        let slot = self.pool.clone_token(token)?;
        // SAFETY: `clone_token` added a strong reference for us; the payload holds
        // `SIZE` initialised bytes and every bit pattern is a valid `T` (as in
        // `from_raw`).
        Ok(unsafe { RingPtr::from_slot(slot) })
    }

    /// A statistics snapshot.
    #[must_use]
    pub fn stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// The number of slots.
    #[inline]
    #[must_use]
    pub const fn capacity(&self) -> usize {
        CAPACITY
    }
}

/// Compile-time check that `T` fits a slot of `size` bytes.
const fn assert_fits<T>(size: usize) {
    assert!(
        size_of::<T>() <= size,
        "the value does not fit a slot of this pool"
    );
    assert!(
        align_of::<T>() <= CACHE_LINE,
        "the value needs more than cache-line alignment"
    );
}

impl<const SIZE: usize, const CAPACITY: usize> Default for RingBuffer<SIZE, CAPACITY> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const SIZE: usize, const CAPACITY: usize> fmt::Debug for RingBuffer<SIZE, CAPACITY> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingBuffer")
            .field("slot_size", &SIZE)
            .field("capacity", &CAPACITY)
            .field("stats", &self.stats())
            .finish()
    }
}
