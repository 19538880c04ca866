//! The Rust side of the C API (feature `ffi`): the process-wide allocator, the sink that
//! receives events from C, and [`handle_ffi_event`]. The `extern "C"` library itself
//! (`libslotring_ffi.a` / `.so` and the header `slotring.h`) is the workspace package
//! `slotring-ffi`, which builds on this module.
//!
//! A C host (a mobile app, a game engine, a network stack) calls
//! [`handle_ffi_event`] with a pointer and a length; the bytes are copied into a slot of
//! the process-wide [`EventAllocator`] and the new [`RingPtr<Event>`](crate::RingPtr) goes
//! to the [`EventSink`] the Rust side registered with [`set_sink`], for example a
//! `crossbeam_channel::Sender<RingPtr<Event>>`. A host that wants to hold events itself
//! uses the token calls of `slotring-ffi` (`slotring_event_alloc`, `_data`, `_clone`,
//! `_send`, `_release`). Every call returns a [`SlotringStatus`]; none unwinds into C (a
//! panic becomes [`SlotringStatus::Panic`]) and bad input (null pointers, oversized
//! lengths, tokens released twice, stale or forged tokens, calls from inside a sink) is
//! an error code, never undefined behaviour, a deadlock or an abort.
//!
//! A C host links the `slotring-ffi` package's library, not this crate: build it with
//! `cargo build --release -p slotring-ffi` (it turns this feature on) and link
//! `target/release/libslotring_ffi.a` (with `-lpthread -ldl -lm`) or
//! `libslotring_ffi.so`, with the header `slotring-ffi/include/slotring.h`.

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

mod sink;
mod status;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, OnceLock, PoisonError};

pub use sink::{DeliverError, EventSink, SinkError, deliver, in_sink, set_sink, take_sink};
pub use status::SlotringStatus;

#[doc(hidden)]
pub use sink::with_sink;

use crate::allocator::EventAllocator;
use crate::error::CapacityError;

/// The allocator behind every FFI call, chosen once.
static ALLOCATOR: OnceLock<&'static EventAllocator> = OnceLock::new();

/// Serialises the making of the default allocator, so that a failed attempt (out of
/// memory) chooses nothing and two threads never both build one.
static MAKING_DEFAULT: Mutex<()> = Mutex::new(());

/// Makes `allocator` the one behind every FFI call. Call it before the first event;
/// afterwards (or after `slotring_init`) the choice is fixed and this returns
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
///
/// # Panics
///
/// If the default allocator has to be made and its pools cannot be allocated (out of
/// memory); [`deliver`] and the C functions report that as an error instead.
#[must_use]
pub fn allocator() -> &'static EventAllocator {
    match try_allocator() {
        Ok(allocator) => allocator,
        Err(e) => panic!("the default FFI allocator could not be made: {e}"),
    }
}

/// The allocator behind every FFI call, making the default one if none was chosen; if
/// that fails (out of memory), nothing is chosen and a later call may try again (or
/// `slotring_init` may still choose other capacities).
#[doc(hidden)]
pub fn try_allocator() -> Result<&'static EventAllocator, CapacityError> {
    if let Some(allocator) = ALLOCATOR.get() {
        return Ok(allocator);
    }
    let _making = MAKING_DEFAULT
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(allocator) = ALLOCATOR.get() {
        return Ok(allocator);
    }
    let allocator = EventAllocator::builder().build()?;
    match install_owned(allocator) {
        Ok(()) => {}
        // Another thread installed one (not through this path) meanwhile: use it.
        Err(unused) => drop(unused),
    }
    // Set by us or by the racing installer just now.
    ALLOCATOR
        .get()
        .copied()
        .ok_or(CapacityError::OutOfMemory { bytes: 0 })
}

/// The allocator behind every FFI call if one was chosen already; never makes one.
#[doc(hidden)]
#[must_use]
pub fn installed_allocator() -> Option<&'static EventAllocator> {
    ALLOCATOR.get().copied()
}

/// Installs an allocator made for the FFI layer (by `slotring_init`), keeping it for
/// the rest of the process; hands it back if another was chosen first.
#[doc(hidden)]
pub fn install_owned(allocator: EventAllocator) -> Result<(), EventAllocator> {
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

/// Runs `body`, turning a panic into `Panic` so it never unwinds into C.
#[doc(hidden)]
pub fn guard(body: impl FnOnce() -> Result<(), SlotringStatus>) -> SlotringStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => SlotringStatus::Ok,
        Ok(Err(status)) => status,
        Err(payload) => {
            // Dropping the payload runs its destructor, which could panic in turn; such
            // a second payload is leaked rather than let unwind into C.
            if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                core::mem::forget(again);
            }
            SlotringStatus::Panic
        }
    }
}

/// The longest payload the FFI allocator accepts: the chosen allocator's limit, or the
/// default allocator's (with the heap fallback: 4 GiB - 1) before one is chosen.
#[doc(hidden)]
#[must_use]
pub fn max_payload_len() -> usize {
    installed_allocator().map_or(u32::MAX as usize, EventAllocator::max_payload_len)
}

/// The bytes a C caller passed, checked before any slice is formed.
///
/// # Safety
///
/// If `data` is not null, it must be valid for reads of `len` bytes (when `len` is at
/// most `max`) for the lifetime `'a`, and not written meanwhile.
#[doc(hidden)]
pub unsafe fn c_bytes<'a>(
    data: *const u8,
    len: usize,
    max: usize,
) -> Result<&'a [u8], SlotringStatus> {
    if len > max || len > isize::MAX as usize {
        return Err(SlotringStatus::TooLarge);
    }
    if data.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(SlotringStatus::NullPointer)
        };
    }
    // SAFETY: `data` is non-null and, by the caller's contract, valid for reads of `len`
    // bytes, which is at most `isize::MAX`; `u8` needs no alignment.
    Ok(unsafe { core::slice::from_raw_parts(data, len) })
}

/// Copies `len` bytes at `data` into a slot of the right size class and delivers the
/// event, tagged with `event_type`, to the sink the Rust side registered.
///
/// This is the function the C library (`slotring-ffi`) exports as the symbol
/// `handle_ffi_event`; from Rust, [`deliver`] does the same with a slice.
///
/// Returns `Ok` when the sink took the event; `NullPointer` for a null `data` with a
/// non-zero `len`; `TooLarge` for a `len` over the limit; `NoSink`, `SinkFull` or
/// `SinkClosed` when no sink took it (nothing is kept then); `PoolExhausted` when the
/// allocator is configured not to spill or fall back to the heap and the class is full;
/// `OutOfMemory` when the memory for the event (or for the default allocator) could not
/// be had; `Misuse` when called from inside a sink; `Panic` if Rust code panicked.
///
/// # Safety
///
/// `data` must be null (only with `len == 0`) or valid for reads of `len` bytes for the
/// duration of the call.
pub unsafe extern "C" fn handle_ffi_event(
    data: *const u8,
    len: usize,
    event_type: u32,
) -> SlotringStatus {
    guard(|| {
        if in_sink() {
            return Err(SlotringStatus::Misuse);
        }
        // SAFETY: forwarded from this function's contract.
        let payload = unsafe { c_bytes(data, len, max_payload_len())? };
        deliver(payload, event_type).map_err(SlotringStatus::from)
    })
}

/// [`install_allocator`] or `slotring_init` was too late: an allocator is in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AlreadyInstalled;

impl core::fmt::Display for AlreadyInstalled {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the FFI allocator was already chosen (installed, initialised or used)")
    }
}

impl std::error::Error for AlreadyInstalled {}
