//! The `extern "C"` functions and every type C sees. cbindgen reads this file alone to
//! write `include/slotring.h`, so nothing C-facing is defined elsewhere.
//!
//! Each function runs its body under `catch_unwind` (a panic becomes
//! `SLOTRING_STATUS_PANIC`, never an unwind into C), checks every pointer for null and
//! every length against the allocator's limit *before* it forms a slice, and reports bad
//! tokens through the generation checks of the slots (or of the heap table).

use core::ffi::{c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::sink::{DeliverError, EventSink, SinkError, set_sink, take_sink, with_sink};
use crate::allocator::{DEFAULT_CAPACITIES, EventAllocator};
use crate::error::{AllocError, TokenError};
use crate::event::{Event, PoolId};
use crate::ptr::RingPtr;

/// The outcome of every slotring call. `SLOTRING_STATUS_OK` is 0; every other value is
/// an error that left the caller's data and tokens as they were.
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
    /// The token was not made by this library (bad pool tag or slot index).
    ForeignToken = 9,
    /// `slotring_init` came after the allocator was initialised or first used.
    AlreadyInitialized = 10,
    /// An argument is out of range (unknown flags, capacities that cannot be built).
    InvalidArgument = 11,
    /// Rust code panicked; the panic was caught at the boundary.
    Panic = 12,
}

/// Number of pooled size classes (XS 64 B, S 256 B, M 1 KiB, L 4 KiB, XL 16 KiB).
pub const SLOTRING_POOL_COUNT: usize = 5;

/// `slotring_init` flag: refuse payloads that fit no pool instead of using the heap.
pub const SLOTRING_INIT_NO_HEAP_FALLBACK: u32 = 1;

/// `slotring_init` flag: a full class does not spill into the next larger one.
pub const SLOTRING_INIT_NO_SPILL: u32 = 2;

/// Statistics of one pool.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SlotringPoolStats {
    /// Largest payload a slot of this pool holds, in bytes.
    pub slot_size: usize,
    /// Number of slots.
    pub capacity: usize,
    /// Slots live right now.
    pub in_use: usize,
    /// Most slots ever used at once.
    pub high_water: usize,
    /// Events stored in this pool so far.
    pub allocations: u64,
    /// Requests for this class that a larger class or the heap served.
    pub spills: u64,
    /// Requests for this class that failed.
    pub failures: u64,
}

/// Statistics of the allocator behind the FFI calls.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SlotringStats {
    /// One entry per size class, smallest first.
    pub pools: [SlotringPoolStats; SLOTRING_POOL_COUNT],
    /// Heap-fallback events live right now.
    pub heap_in_use: u64,
    /// Heap-fallback events made so far.
    pub heap_allocations: u64,
}

/// A C sink: called with a token that it now owns (it must release it eventually) and
/// the `user_data` given at registration. Returns 0 when it took the token; any other
/// value refuses the event, and the token must then be left untouched.
pub type SlotringSinkFn = Option<unsafe extern "C" fn(token: u64, user_data: *mut c_void) -> i32>;

/// Runs `body`, turning a panic into `Panic` so it never unwinds into C.
fn guard(body: impl FnOnce() -> Result<(), SlotringStatus>) -> SlotringStatus {
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

impl From<AllocError> for SlotringStatus {
    fn from(e: AllocError) -> Self {
        match e {
            AllocError::PoolExhausted { .. } => SlotringStatus::PoolExhausted,
            AllocError::TooLarge { .. } => SlotringStatus::TooLarge,
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
        }
    }
}

/// The bytes a C caller passed, checked before any slice is formed.
///
/// # Safety
///
/// If `data` is not null, it must be valid for reads of `len` bytes (when `len` is at
/// most `max`) for the lifetime `'a`, and not written meanwhile.
unsafe fn c_bytes<'a>(data: *const u8, len: usize, max: usize) -> Result<&'a [u8], SlotringStatus> {
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

/// Writes `value` through an optional out pointer (null: the caller did not ask).
///
/// # Safety
///
/// `out` must be null or valid for a write of `T` (any alignment).
unsafe fn write_out<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-null and valid for writes by the caller's contract; unaligned
        // writes accept pointers into packed C structs.
        unsafe { out.write_unaligned(value) };
    }
}

/// Parks a handle's reference in a token (the slot's own token for pooled events, an
/// entry of the allocator's heap-token table for heap events). Hands the event back if
/// that table cannot grow.
fn park(event: RingPtr<Event>) -> Result<u64, RingPtr<Event>> {
    RingPtr::into_raw(event)
}

/// A new handle to the event `token` names; the token keeps its hold.
fn peek(token: u64) -> Result<RingPtr<Event>, TokenError> {
    super::allocator().clone_raw(token)
}

/// Takes one hold back from `token` as a handle.
fn unpark(token: u64) -> Result<RingPtr<Event>, TokenError> {
    super::allocator().from_raw(token)
}

/// Copies `len` bytes at `data` into a slot of the right size class and delivers the
/// event, tagged with `event_type`, to the sink the Rust side registered.
///
/// Returns `SLOTRING_STATUS_OK` when the sink took the event; `NULL_POINTER` for a null
/// `data` with a non-zero `len`; `TOO_LARGE` for a `len` over the limit; `NO_SINK`,
/// `SINK_FULL` or `SINK_CLOSED` when no sink took it (nothing is kept then);
/// `POOL_EXHAUSTED` when the allocator is configured not to spill or fall back to the
/// heap and the class is full; `PANIC` if Rust code panicked.
///
/// # Safety
///
/// `data` must be null (only with `len == 0`) or valid for reads of `len` bytes for the
/// duration of the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn handle_ffi_event(
    data: *const u8,
    len: usize,
    event_type: u32,
) -> SlotringStatus {
    guard(|| {
        let max = super::allocator().max_payload_len();
        // SAFETY: forwarded from this function's contract.
        let payload = unsafe { c_bytes(data, len, max)? };
        super::sink::deliver(payload, event_type).map_err(SlotringStatus::from)
    })
}

/// Configures the allocator behind every call: `capacities` points to
/// `SLOTRING_POOL_COUNT` slot counts (smallest class first) or is null for the defaults
/// (2000, 1000, 300, 60, 15); `flags` combines `SLOTRING_INIT_NO_HEAP_FALLBACK` and
/// `SLOTRING_INIT_NO_SPILL`.
///
/// Must come before any other call that allocates; afterwards it returns
/// `ALREADY_INITIALIZED` and changes nothing. `INVALID_ARGUMENT` for unknown flags or
/// capacities that cannot be built (more than 2^24 - 1 slots, or too many bytes).
///
/// # Safety
///
/// `capacities` must be null or valid for reads of `SLOTRING_POOL_COUNT` `size_t` values.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slotring_init(capacities: *const usize, flags: u32) -> SlotringStatus {
    guard(|| {
        if flags & !(SLOTRING_INIT_NO_HEAP_FALLBACK | SLOTRING_INIT_NO_SPILL) != 0 {
            return Err(SlotringStatus::InvalidArgument);
        }
        let capacities = if capacities.is_null() {
            DEFAULT_CAPACITIES
        } else {
            // SAFETY: non-null and valid for reads of five `usize`s by the contract;
            // read unaligned so any C array is accepted.
            unsafe {
                capacities
                    .cast::<[usize; SLOTRING_POOL_COUNT]>()
                    .read_unaligned()
            }
        };
        if super::is_installed() {
            return Err(SlotringStatus::AlreadyInitialized);
        }
        let allocator = EventAllocator::builder()
            .capacities(capacities)
            .spill(flags & SLOTRING_INIT_NO_SPILL == 0)
            .heap_fallback(flags & SLOTRING_INIT_NO_HEAP_FALLBACK == 0)
            .build()
            .map_err(|_| SlotringStatus::InvalidArgument)?;
        super::install_owned(allocator).map_err(|_| SlotringStatus::AlreadyInitialized)
    })
}

/// Copies `len` bytes at `data` into a slot and writes a token for the new event to
/// `*out_token`. The token holds one reference: read the event with
/// `slotring_event_data`, share it with `slotring_event_clone`, hand it to the sink with
/// `slotring_event_send`, and let go with `slotring_event_release` (once per hold).
///
/// Errors as for `handle_ffi_event` (without the sink ones); `NULL_POINTER` also for a
/// null `out_token`. On error nothing is allocated and `*out_token` is not written.
///
/// # Safety
///
/// `data` as for `handle_ffi_event`; `out_token` must be valid for a write of a
/// `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slotring_event_alloc(
    data: *const u8,
    len: usize,
    event_type: u32,
    out_token: *mut u64,
) -> SlotringStatus {
    guard(|| {
        if out_token.is_null() {
            return Err(SlotringStatus::NullPointer);
        }
        let allocator = super::allocator();
        // SAFETY: forwarded from this function's contract.
        let payload = unsafe { c_bytes(data, len, allocator.max_payload_len())? };
        let event = allocator.allocate(payload, event_type)?;
        let token = park(event).map_err(|_| SlotringStatus::PoolExhausted)?;
        // SAFETY: `out_token` is non-null and valid for writes by the contract.
        unsafe { write_out(out_token, token) };
        Ok(())
    })
}

/// Reads the event a token names: its data pointer, length and type go to the out
/// pointers that are not null. The data stays valid, unchanged, for as long as the caller
/// holds the token (until its last `slotring_event_release` or `slotring_event_send`).
///
/// Errors: `STALE_TOKEN`, `ALREADY_RELEASED` or `FOREIGN_TOKEN` (nothing is written).
///
/// # Safety
///
/// Each out pointer must be null or valid for a write of its type.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slotring_event_data(
    token: u64,
    out_data: *mut *const u8,
    out_len: *mut usize,
    out_type: *mut u32,
) -> SlotringStatus {
    guard(|| {
        let event = peek(token)?;
        let payload = event.payload();
        // SAFETY: each pointer is null or valid for writes by the contract. The data
        // pointer stays valid after `event` drops because the token's own hold keeps the
        // slot live and unwritten.
        unsafe {
            write_out(out_data, payload.as_ptr());
            write_out(out_len, payload.len());
            write_out(out_type, event.event_type());
        }
        Ok(())
    })
}

/// Adds a hold to the event `token` names and writes the token for it to `*out_token`
/// (the same value for the same event: each hold is released separately).
///
/// Errors: `NULL_POINTER` for a null `out_token`; `STALE_TOKEN`, `ALREADY_RELEASED` or
/// `FOREIGN_TOKEN` for a bad token.
///
/// # Safety
///
/// `out_token` must be valid for a write of a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slotring_event_clone(token: u64, out_token: *mut u64) -> SlotringStatus {
    guard(|| {
        if out_token.is_null() {
            return Err(SlotringStatus::NullPointer);
        }
        let event = peek(token)?;
        // Every event of the allocator has a token; parking a second hold of an event
        // that already has one reuses its token (or its heap-table entry), so this only
        // fails if the heap table cannot grow, which an existing entry never needs.
        let clone = park(event).map_err(|_| SlotringStatus::PoolExhausted)?;
        // SAFETY: `out_token` is non-null and valid for writes by the contract.
        unsafe { write_out(out_token, clone) };
        Ok(())
    })
}

/// Releases one hold of `token`; the slot returns to its pool when the last reference
/// of any kind goes.
///
/// Errors: `ALREADY_RELEASED` when every hold of the token was released already (the
/// slot may still be live for others), `STALE_TOKEN` when its slot was reused since,
/// `FOREIGN_TOKEN` for a token this library did not make.
#[unsafe(no_mangle)]
pub extern "C" fn slotring_event_release(token: u64) -> SlotringStatus {
    guard(|| {
        drop(unpark(token)?);
        Ok(())
    })
}

/// Hands one hold of `token` to the registered sink. On success the caller's hold is
/// gone (as after `slotring_event_release`); on `NO_SINK`, `SINK_FULL` or `SINK_CLOSED`
/// the caller keeps it and may retry.
#[unsafe(no_mangle)]
pub extern "C" fn slotring_event_send(token: u64) -> SlotringStatus {
    guard(|| {
        let event = peek(token)?;
        with_sink(|sink| sink.deliver(event).map_err(DeliverError::Sink))?;
        // The sink took its own reference; now give up the token's.
        drop(unpark(token)?);
        Ok(())
    })
}

/// Writes the allocator's statistics to `*out`.
///
/// Errors: `NULL_POINTER` for a null `out`.
///
/// # Safety
///
/// `out` must be valid for a write of a `SlotringStats`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slotring_stats(out: *mut SlotringStats) -> SlotringStatus {
    guard(|| {
        if out.is_null() {
            return Err(SlotringStatus::NullPointer);
        }
        let stats = super::allocator().stats();
        let mut c = SlotringStats {
            heap_in_use: stats.heap.in_use,
            heap_allocations: stats.heap.allocations,
            ..SlotringStats::default()
        };
        for (c_pool, pool) in c.pools.iter_mut().zip(PoolId::ALL) {
            let p = stats.pool(pool);
            *c_pool = SlotringPoolStats {
                slot_size: pool.max_size(),
                capacity: p.capacity,
                in_use: p.in_use,
                high_water: p.high_water,
                allocations: p.allocations,
                spills: p.spills,
                failures: p.failures,
            };
        }
        // SAFETY: `out` is non-null and valid for writes by the contract.
        unsafe { write_out(out, c) };
        Ok(())
    })
}

/// A sink that calls a C function with the `user_data` given at registration.
struct CallbackSink {
    callback: unsafe extern "C" fn(u64, *mut c_void) -> i32,
    user_data: *mut c_void,
}

// SAFETY: `slotring_set_sink_callback`'s contract makes the C host promise that the
// callback may be called with `user_data` from any thread, concurrently.
unsafe impl Send for CallbackSink {}
// SAFETY: as for `Send`: concurrent calls are allowed by the registration contract.
unsafe impl Sync for CallbackSink {}

impl EventSink for CallbackSink {
    fn deliver(&self, event: RingPtr<Event>) -> Result<(), SinkError> {
        let token = park(event).map_err(SinkError::Full)?;
        // SAFETY: the registration contract: `callback` is a valid function taking a
        // token and `user_data`, callable from any thread.
        let taken = unsafe { (self.callback)(token, self.user_data) } == 0;
        if taken {
            return Ok(());
        }
        // Refused: the token was left alone (the callback's contract), so take our
        // hold back and return the event. A callback that broke the contract and used
        // the token anyway has taken the hold; there is nothing left to return then.
        match unpark(token) {
            Ok(event) => Err(SinkError::Full(event)),
            Err(_) => Ok(()),
        }
    }
}

/// Registers a C function as the sink for `handle_ffi_event` and `slotring_event_send`,
/// replacing any sink (also one registered from Rust); a null `callback` unregisters.
/// The callback gets a token it owns (see `SlotringSinkFn`); a non-zero return refuses
/// the event, and the call that delivered it reports `SINK_FULL`. When this returns, no
/// call of the previous callback is still running. The callback may read, clone and
/// release tokens, but must not call `handle_ffi_event`, `slotring_event_send` or this
/// function (they wait for the sink registry, which the running callback holds).
///
/// # Safety
///
/// `callback` must be null or a function with the `SlotringSinkFn` signature that may be
/// called with `user_data` from any thread, concurrently, until it is replaced or
/// unregistered (and any call in flight has returned).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slotring_set_sink_callback(
    callback: SlotringSinkFn,
    user_data: *mut c_void,
) -> SlotringStatus {
    guard(|| {
        match callback {
            Some(callback) => drop(set_sink(CallbackSink {
                callback,
                user_data,
            })),
            None => drop(take_sink()),
        }
        Ok(())
    })
}

/// A static, NUL-terminated English message for a status code (any `int32_t`; unknown
/// codes get "unknown status").
#[unsafe(no_mangle)]
pub extern "C" fn slotring_status_message(status: i32) -> *const c_char {
    let message = match status {
        0 => c"ok",
        1 => c"a required pointer was null",
        2 => c"the payload is larger than any size class allows",
        3 => c"every slot that could take the event is in use",
        4 => c"no event sink is registered",
        5 => c"the event sink is full",
        6 => c"the event sink is closed",
        7 => c"the token is stale: its slot was reused",
        8 => c"every hold of the token was already released",
        9 => c"the token was not made by this library",
        10 => c"the allocator was already initialised or used",
        11 => c"an argument is out of range",
        12 => c"Rust code panicked; the panic was caught",
        _ => c"unknown status",
    };
    message.as_ptr()
}
