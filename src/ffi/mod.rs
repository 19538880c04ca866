//! The entry point for C hosts (feature `ffi`): `extern "C"` functions, a process-wide
//! allocator and the sink that receives events from C.
//!
//! A C host (a mobile app, a game engine, a network stack) calls
//! [`handle_ffi_event`] with a pointer and a length; the bytes are copied into a slot of
//! the process-wide [`EventAllocator`] and the new [`RingPtr<Event>`](crate::RingPtr) goes to the
//! [`EventSink`] the Rust side registered with [`set_sink`], for example a
//! `crossbeam_channel::Sender<RingPtr<Event>>`. A host that wants to hold events itself
//! allocates them with [`slotring_event_alloc`] and gets a `u64` token: it reads the
//! bytes in place with [`slotring_event_data`], shares with [`slotring_event_clone`],
//! hands over with [`slotring_event_send`] and lets go with [`slotring_event_release`].
//! Every call returns a [`SlotringStatus`]; none unwinds into C (a panic becomes
//! [`SlotringStatus::Panic`]) and bad input (null pointers, oversized lengths, tokens
//! released twice, stale or forged tokens) is an error code, never undefined behaviour.
//!
//! The header `include/slotring.h` is generated from `src/ffi/c_api.rs` by cbindgen; a
//! test fails when the checked-in copy differs. Build the libraries with
//! `cargo build --release --features ffi` (`libslotring.a`, `libslotring.so`).
//!
//! # The Rust side
//!
//! ```
//! use slotring::{Event, RingPtr, ffi};
//! let (tx, rx) = crossbeam_channel::unbounded::<RingPtr<Event>>();
//! ffi::set_sink(tx);
//! // What a C host does, here from Rust:
//! let bytes = b"from C";
//! // SAFETY: `bytes` is valid for reads of `bytes.len()` bytes.
//! let status = unsafe { ffi::handle_ffi_event(bytes.as_ptr(), bytes.len(), 7) };
//! assert_eq!(status, ffi::SlotringStatus::Ok);
//! let ev = rx.recv()?;
//! assert_eq!((ev.payload(), ev.event_type()), (&b"from C"[..], 7));
//! # ffi::take_sink();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! An application with its own `static` allocator installs it before the first event:
//!
//! ```
//! use std::sync::LazyLock;
//! use slotring::{EventAllocator, ffi};
//! static ALLOCATOR: LazyLock<EventAllocator> = LazyLock::new(EventAllocator::new);
//! // Err if another allocator was installed (or the default made) first.
//! let installed = ffi::install_allocator(&ALLOCATOR);
//! # let _ = installed;
//! ```

mod c_api;
mod sink;

use std::sync::OnceLock;

pub use c_api::{
    SLOTRING_INIT_NO_HEAP_FALLBACK, SLOTRING_INIT_NO_SPILL, SLOTRING_POOL_COUNT, SlotringPoolStats,
    SlotringSinkFn, SlotringStats, SlotringStatus, handle_ffi_event, slotring_event_alloc,
    slotring_event_clone, slotring_event_data, slotring_event_release, slotring_event_send,
    slotring_init, slotring_set_sink_callback, slotring_stats, slotring_status_message,
};
pub use sink::{DeliverError, EventSink, SinkError, deliver, set_sink, take_sink};

use crate::allocator::EventAllocator;

/// The allocator behind every FFI call, chosen once.
static ALLOCATOR: OnceLock<&'static EventAllocator> = OnceLock::new();

/// Makes `allocator` the one behind every FFI call. Call it before the first event;
/// afterwards (or after [`slotring_init`]) the choice is fixed and this returns
/// [`AlreadyInstalled`].
pub fn install_allocator(allocator: &'static EventAllocator) -> Result<(), AlreadyInstalled> {
    let mut installed = false;
    ALLOCATOR.get_or_init(|| {
        installed = true;
        allocator
    });
    if installed {
        Ok(())
    } else {
        Err(AlreadyInstalled)
    }
}

/// The allocator behind every FFI call: the installed one, or (if none was installed
/// before the first use) an [`EventAllocator::new`] made and kept for the process.
#[must_use]
pub fn allocator() -> &'static EventAllocator {
    ALLOCATOR.get_or_init(|| Box::leak(Box::new(EventAllocator::new())))
}

/// Whether the allocator was chosen already.
fn is_installed() -> bool {
    ALLOCATOR.get().is_some()
}

/// Installs an allocator made for the FFI layer (by [`slotring_init`]), keeping it for
/// the rest of the process; hands it back if another was chosen first.
fn install_owned(allocator: EventAllocator) -> Result<(), EventAllocator> {
    let mut candidate = Some(allocator);
    ALLOCATOR.get_or_init(|| match candidate.take() {
        Some(allocator) => Box::leak(Box::new(allocator)),
        // `candidate` is taken only here, and `get_or_init` runs this closure once.
        None => unreachable!("the install closure runs once"),
    });
    match candidate {
        None => Ok(()),
        Some(allocator) => Err(allocator),
    }
}

/// [`install_allocator`] or [`slotring_init`] was too late: an allocator is in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AlreadyInstalled;

impl core::fmt::Display for AlreadyInstalled {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the FFI allocator was already chosen (installed, initialised or used)")
    }
}

impl std::error::Error for AlreadyInstalled {}
