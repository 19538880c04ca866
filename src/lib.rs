//! slotring: pre-allocated slot pools with reference-counted handles (work in progress).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod allocator;
pub mod error;
pub mod event;
mod free_list;
mod pool;
pub mod ptr;
pub mod ring;
mod slot;
pub mod stats;
pub(crate) mod sync;

pub use allocator::{DEFAULT_CAPACITIES, EventAllocator, EventAllocatorBuilder};
pub use error::{AllocError, CapacityError, PoolFull, TokenError};
pub use event::{Event, EventSize, PoolId, PooledEvent};
pub use ptr::{RingPtr, SlotContent, WeakRingPtr};
pub use ring::RingBuffer;
pub use stats::{AllocatorStats, HeapStats, PoolStats};
