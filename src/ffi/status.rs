//! The status code every C entry point returns, shared by [`handle_ffi_event`] (here) and
//! the `extern "C"` functions of the `slotring-ffi` package. cbindgen reads this file
//! together with `slotring-ffi/src/lib.rs` to write `slotring.h`, so the enum is defined
//! once, here, and nothing else in this file is C-facing.
//!
//! [`handle_ffi_event`]: super::handle_ffi_event

use core::ffi::CStr;

use super::sink::{DeliverError, SinkError};
use crate::error::{AllocError, CapacityError, TokenError};

/// The outcome of every slotring call. `SLOTRING_STATUS_OK` is 0; every other value is
/// an error that left the caller's data and tokens as they were. Codes are never
/// renumbered; new ones are added at the end.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SlotringStatus {
    /// Success.
    Ok = 0,
    /// A required pointer was null (a data pointer may be null only with length 0).
    NullPointer = 1,
    /// The length is above every size class and the heap fallback is off, or above
    /// 4 GiB - 1.
    TooLarge = 2,
    /// Every slot that could take the event is in use (spilling or the heap fallback
    /// is off), or the table of heap-event tokens is full.
    PoolExhausted = 3,
    /// `handle_ffi_event` or `slotring_event_send` was called with no sink registered.
    NoSink = 4,
    /// The sink is full right now; the event was not delivered.
    SinkFull = 5,
    /// The sink is closed for good; the event was not delivered.
    SinkClosed = 6,
    /// The token's slot was released and reused since the token was made.
    StaleToken = 7,
    /// Every hold of the token was already released (a double release).
    AlreadyReleased = 8,
    /// The token was not made by this library (bad pool tag or slot index), is
    /// `SLOTRING_TOKEN_NONE`, or no event was ever allocated.
    ForeignToken = 9,
    /// `slotring_init` came after the allocator was initialised or first used.
    AlreadyInitialized = 10,
    /// An argument is out of range (unknown flags, capacities that cannot be built).
    InvalidArgument = 11,
    /// Rust code panicked; the panic was caught at the boundary.
    Panic = 12,
    /// The memory for the pools or for a heap event could not be obtained (or the
    /// request is larger than the address space); nothing was allocated.
    OutOfMemory = 13,
    /// The call is not allowed where it was made: `handle_ffi_event`,
    /// `slotring_event_send` or `slotring_set_sink_callback` called from inside a sink
    /// (a C callback or a Rust sink) on the same thread. Nothing was done.
    Misuse = 14,
    /// The reservation handle names no open reservation: it was already published or
    /// abandoned (a double publish), or was never issued. Nothing was done.
    NoReservation = 15,
}

impl SlotringStatus {
    /// A static English message for the status (what `slotring_status_message` returns).
    #[must_use]
    pub fn message(self) -> &'static CStr {
        match self {
            SlotringStatus::Ok => c"ok",
            SlotringStatus::NullPointer => c"a required pointer was null",
            SlotringStatus::TooLarge => c"the payload is larger than any size class allows",
            SlotringStatus::PoolExhausted => c"every slot that could take the event is in use",
            SlotringStatus::NoSink => c"no event sink is registered",
            SlotringStatus::SinkFull => c"the event sink is full",
            SlotringStatus::SinkClosed => c"the event sink is closed",
            SlotringStatus::StaleToken => c"the token is stale: its slot was reused",
            SlotringStatus::AlreadyReleased => c"every hold of the token was already released",
            SlotringStatus::ForeignToken => c"the token was not made by this library",
            SlotringStatus::AlreadyInitialized => c"the allocator was already initialised or used",
            SlotringStatus::InvalidArgument => c"an argument is out of range",
            SlotringStatus::Panic => c"Rust code panicked; the panic was caught",
            SlotringStatus::OutOfMemory => c"out of memory: nothing was allocated",
            SlotringStatus::Misuse => {
                c"called from inside a sink callback, where this call is not allowed"
            }
            SlotringStatus::NoReservation => {
                c"no such open reservation: already published, abandoned, or never made"
            }
        }
    }

    /// The status with code `code`, if there is one.
    #[must_use]
    pub fn from_code(code: i32) -> Option<Self> {
        const ALL: [SlotringStatus; 16] = [
            SlotringStatus::Ok,
            SlotringStatus::NullPointer,
            SlotringStatus::TooLarge,
            SlotringStatus::PoolExhausted,
            SlotringStatus::NoSink,
            SlotringStatus::SinkFull,
            SlotringStatus::SinkClosed,
            SlotringStatus::StaleToken,
            SlotringStatus::AlreadyReleased,
            SlotringStatus::ForeignToken,
            SlotringStatus::AlreadyInitialized,
            SlotringStatus::InvalidArgument,
            SlotringStatus::Panic,
            SlotringStatus::OutOfMemory,
            SlotringStatus::Misuse,
            SlotringStatus::NoReservation,
        ];
        let status = *ALL.get(usize::try_from(code).ok()?)?;
        debug_assert_eq!(status as i32, code);
        Some(status)
    }
}

impl From<AllocError> for SlotringStatus {
    fn from(e: AllocError) -> Self {
        match e {
            AllocError::PoolExhausted { .. } => SlotringStatus::PoolExhausted,
            AllocError::TooLarge { .. } => SlotringStatus::TooLarge,
            AllocError::OutOfMemory { .. } => SlotringStatus::OutOfMemory,
        }
    }
}

impl From<CapacityError> for SlotringStatus {
    fn from(e: CapacityError) -> Self {
        match e {
            CapacityError::OutOfMemory { .. } => SlotringStatus::OutOfMemory,
            CapacityError::TooManySlots { .. } | CapacityError::TooManyBytes { .. } => {
                SlotringStatus::InvalidArgument
            }
        }
    }
}

impl From<TokenError> for SlotringStatus {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Foreign => SlotringStatus::ForeignToken,
            TokenError::Stale => SlotringStatus::StaleToken,
            TokenError::Released => SlotringStatus::AlreadyReleased,
        }
    }
}

impl From<SinkError> for SlotringStatus {
    fn from(e: SinkError) -> Self {
        match e {
            SinkError::Full(_) => SlotringStatus::SinkFull,
            SinkError::Closed(_) => SlotringStatus::SinkClosed,
        }
    }
}

impl From<DeliverError> for SlotringStatus {
    fn from(e: DeliverError) -> Self {
        match e {
            DeliverError::NoSink => SlotringStatus::NoSink,
            DeliverError::Alloc(e) => e.into(),
            DeliverError::Sink(e) => e.into(),
            DeliverError::Allocator(e) => e.into(),
            DeliverError::Reentered => SlotringStatus::Misuse,
        }
    }
}
