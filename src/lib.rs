//! slotring: pre-allocated slot pools with reference-counted handles (work in progress).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod error;
pub mod event;
pub(crate) mod sync;

pub use error::{AllocError, CapacityError, PoolFull, TokenError};
pub use event::{Event, EventSize, PoolId, PooledEvent};
