//! slotring: pre-allocated slot pools with reference-counted handles (work in progress).
#![deny(unsafe_op_in_unsafe_fn)]

pub(crate) mod sync;
