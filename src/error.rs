//! Typed errors. Every failed call leaves the caller's data with the caller.

use core::fmt;

use crate::event::PoolId;

/// Why an [`EventAllocator`](crate::EventAllocator) could not store an event.
///
/// The payload was borrowed, never consumed: the caller still has it.
///
/// ```
/// use slotring::{AllocError, EventAllocator};
/// let alloc = EventAllocator::new();
/// let big = vec![0u8; 20_000];
/// assert_eq!(
///     alloc.try_allocate(&big, 1).unwrap_err(),
///     AllocError::TooLarge { len: 20_000, max: 16_384 },
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AllocError {
    /// Every slot of `pool` is live (and spilling or the heap fallback was not allowed).
    PoolExhausted {
        /// The pool that was full.
        pool: PoolId,
    },
    /// The payload is longer than the largest slot that may serve it.
    TooLarge {
        /// The payload length.
        len: usize,
        /// The largest length that could have been served.
        max: usize,
    },
    /// The payload needed a heap-fallback event and the memory for it could not be
    /// obtained. Nothing was allocated.
    OutOfMemory {
        /// The payload length.
        len: usize,
    },
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::PoolExhausted { pool } => {
                write!(f, "every slot of the {pool} pool is in use")
            }
            AllocError::TooLarge { len, max } => {
                write!(f, "payload of {len} bytes exceeds the limit of {max} bytes")
            }
            AllocError::OutOfMemory { len } => {
                write!(f, "out of memory for a heap event of {len} bytes")
            }
        }
    }
}

impl std::error::Error for AllocError {}

/// For code that reads events from I/O ([`EventAllocator::allocate_with`] with a
/// `read_exact`): an exhausted pool is [`std::io::ErrorKind::OutOfMemory`] (as is no
/// memory for a heap event), a payload too large for the allocator
/// [`std::io::ErrorKind::InvalidInput`]; the `AllocError` is the source.
///
/// [`EventAllocator::allocate_with`]: crate::EventAllocator::allocate_with
///
/// ```
/// use slotring::{AllocError, PoolId};
/// let err = std::io::Error::from(AllocError::PoolExhausted { pool: PoolId::XS });
/// assert_eq!(err.kind(), std::io::ErrorKind::OutOfMemory);
/// ```
impl From<AllocError> for std::io::Error {
    fn from(err: AllocError) -> Self {
        let kind = match err {
            AllocError::TooLarge { .. } => std::io::ErrorKind::InvalidInput,
            _ => std::io::ErrorKind::OutOfMemory,
        };
        std::io::Error::new(kind, err)
    }
}

/// A typed pool had no free slot; the value that was to be stored is inside.
///
/// ```
/// use slotring::RingBuffer;
/// let pool = RingBuffer::<8, 1>::new();
/// let _held = pool.alloc(1u64)?;
/// let err = pool.alloc(2u64).unwrap_err();
/// assert_eq!(err.into_inner(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PoolFull<T>(pub T);

impl<T> PoolFull<T> {
    /// Hands back the value that could not be stored.
    ///
    /// ```
    /// use slotring::RingBuffer;
    /// let pool = RingBuffer::<64, 1>::new();
    /// let _held = pool.alloc([1u32; 16])?;
    /// match pool.alloc([2u32; 16]) {
    ///     Ok(_) => unreachable!("the only slot is held"),
    ///     Err(full) => assert_eq!(full.into_inner(), [2; 16]), // nothing was lost
    /// }
    /// # Ok::<(), slotring::PoolFull<[u32; 16]>>(())
    /// ```
    #[inline]
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for PoolFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PoolFull<{}>(..)", core::any::type_name::<T>())
    }
}

impl<T> fmt::Display for PoolFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("every slot of the pool is in use; the value was handed back")
    }
}

impl<T> std::error::Error for PoolFull<T> {}

/// Why a raw `u64` token did not turn back into a handle.
///
/// ```
/// use slotring::{EventAllocator, RingPtr, TokenError};
/// let alloc = EventAllocator::new();
/// let token = RingPtr::into_raw(alloc.allocate(b"parked", 1)?).unwrap();
/// let ev = alloc.from_raw(token)?;                        // takes the hold back once
/// assert_eq!(alloc.from_raw(token).unwrap_err(), TokenError::Released);
/// drop(ev);                                               // the slot is free
/// let _reuse = alloc.allocate(b"new life", 1)?;           // ... and may be reused
/// assert!(alloc.clone_raw(token).is_err());               // Stale or Released, never a handle
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenError {
    /// The token names a pool or slot this allocator does not have.
    Foreign,
    /// The token's slot was released and reused since the token was made.
    Stale,
    /// Every hold the token named was already taken back (`from_raw` or a release
    /// called once too often); its slot may still be live for other handles.
    Released,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenError::Foreign => "the token does not name a slot of this allocator",
            TokenError::Stale => "the token is stale: its slot was released and reused",
            TokenError::Released => {
                "the token was already taken back: each token is released or used once"
            }
        })
    }
}

impl std::error::Error for TokenError {}

/// An [`EventAllocator`](crate::EventAllocator) or pool configuration that cannot be built.
///
/// ```
/// use slotring::{CapacityError, EventAllocator, PoolId};
/// let err = EventAllocator::builder()
///     .capacity(PoolId::XS, usize::MAX)
///     .build()
///     .unwrap_err();
/// assert!(matches!(err, CapacityError::TooManySlots { requested: usize::MAX, .. }));
/// println!("{err}"); // "... slots requested, at most ... supported"
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CapacityError {
    /// More slots than a token can address.
    TooManySlots {
        /// The requested capacity.
        requested: usize,
        /// The largest capacity supported.
        max: usize,
    },
    /// The pool's bytes (slots times slot size) overflow the address space.
    TooManyBytes {
        /// The requested capacity.
        requested: usize,
        /// The slot size.
        slot_size: usize,
    },
    /// The memory for the pool (its slots and their headers) could not be obtained:
    /// the system refused an allocation of `bytes` bytes. Nothing was allocated.
    OutOfMemory {
        /// The size of the allocation that failed.
        bytes: usize,
    },
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapacityError::TooManySlots { requested, max } => {
                write!(f, "{requested} slots requested, at most {max} supported")
            }
            CapacityError::TooManyBytes {
                requested,
                slot_size,
            } => write!(
                f,
                "{requested} slots of {slot_size} bytes do not fit in the address space"
            ),
            CapacityError::OutOfMemory { bytes } => {
                write!(f, "out of memory: an allocation of {bytes} bytes failed")
            }
        }
    }
}

impl std::error::Error for CapacityError {}
