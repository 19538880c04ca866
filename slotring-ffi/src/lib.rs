//! The C library of [`slotring`]: the `extern "C"` functions and every C type except
//! the status enum (which lives in `slotring::ffi`, shared with the Rust side). cbindgen
//! reads this file and `../src/ffi/status.rs` to write `include/slotring.h`.
//!
//! Build with `cargo build --release -p slotring-ffi`; a C host links
//! `target/release/libslotring_ffi.a` (with `-lpthread -ldl -lm`) or
//! `libslotring_ffi.so`, and includes `slotring-ffi/include/slotring.h`.
//!
//! Each function runs its body under `catch_unwind` (a panic becomes
//! `SLOTRING_STATUS_PANIC`, never an unwind into C), checks every pointer for null and
//! every length against the allocator's limit *before* it forms a slice, and reports bad
//! tokens through the generation checks of the slots (or of the heap table). Allocation
//! failures are `SLOTRING_STATUS_OUT_OF_MEMORY`, never an abort; calls made from inside
//! a sink that would deadlock are `SLOTRING_STATUS_MISUSE`.

use core::cell::Cell;
use core::ffi::{c_char, c_void};

pub use slotring::ffi::SlotringStatus;
use slotring::ffi::{
    DeliverError, EventSink, SinkError, c_bytes, guard, in_sink, installed_allocator,
    max_payload_len, set_sink, take_sink, try_allocator, with_sink,
};
use slotring::{DEFAULT_CAPACITIES, Event, EventAllocator, PoolId, RingPtr};

mod reservations;

/// Major version of the library (and of this header: compare with `slotring_version()`).
pub const SLOTRING_VERSION_MAJOR: u32 = 0;
/// Minor version.
pub const SLOTRING_VERSION_MINOR: u32 = 1;
/// Patch version.
pub const SLOTRING_VERSION_PATCH: u32 = 0;
/// `MAJOR * 1000000 + MINOR * 1000 + PATCH`, what `slotring_version()` returns.
pub const SLOTRING_VERSION_NUMBER: u32 = 1000;

/// The null token: never issued, refused by every call with
/// `SLOTRING_STATUS_FOREIGN_TOKEN`. Use it to initialise token variables.
pub const SLOTRING_TOKEN_NONE: u64 = 0;

/// Number of pooled size classes (XS 64 B, S 256 B, M 1 KiB, L 4 KiB, XL 16 KiB).
pub const SLOTRING_POOL_COUNT: usize = 5;

/// `slotring_init` flag: refuse payloads that fit no pool instead of using the heap.
pub const SLOTRING_INIT_NO_HEAP_FALLBACK: u32 = 1;

/// `slotring_init` flag: a full class does not spill into the next larger one. Without
/// `SLOTRING_INIT_NO_HEAP_FALLBACK` too, a full class goes straight to the heap, so
/// allocations never fail with `POOL_EXHAUSTED` (only with `OUT_OF_MEMORY`).
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

/// A C sink: called with a token that it now owns (it must release or send it
/// eventually) and the `user_data` given at registration. Returns 0 when it took the
/// token; any other value refuses the event, and the token must then be left untouched.
/// It may call `slotring_event_data`, `_clone`, `_release`, `_alloc` and
/// `slotring_stats`; `handle_ffi_event`, `slotring_event_send` and
/// `slotring_set_sink_callback` return `SLOTRING_STATUS_MISUSE` there.
pub type SlotringSinkFn = Option<unsafe extern "C" fn(token: u64, user_data: *mut c_void) -> i32>;

/// The allocator that can have issued `token`: refuses `SLOTRING_TOKEN_NONE`, and every
/// token while no allocator is chosen (none was issued), without choosing one.
fn allocator_of(token: u64) -> Result<&'static EventAllocator, SlotringStatus> {
    if token == SLOTRING_TOKEN_NONE {
        return Err(SlotringStatus::ForeignToken);
    }
    installed_allocator().ok_or(SlotringStatus::ForeignToken)
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

/// Copies `len` bytes at `data` into a slot of the right size class and delivers the
/// event, tagged with `event_type`, to the sink the Rust side registered.
///
/// Returns `SLOTRING_STATUS_OK` when the sink took the event; `NULL_POINTER` for a null
/// `data` with a non-zero `len`; `TOO_LARGE` for a `len` over the limit; `NO_SINK`,
/// `SINK_FULL` or `SINK_CLOSED` when no sink took it (nothing is kept then);
/// `POOL_EXHAUSTED` when the allocator is configured not to spill or fall back to the
/// heap and the class is full; `OUT_OF_MEMORY` when the memory for a heap event (or for
/// the default allocator) could not be had; `MISUSE` from inside a sink callback;
/// `PANIC` if Rust code panicked.
///
/// Thread safety: any thread, concurrently (deliveries run in parallel).
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
    // SAFETY: forwarded from this function's contract.
    unsafe { slotring::ffi::handle_ffi_event(data, len, event_type) }
}

/// Configures the allocator behind every call: `capacities` points to
/// `SLOTRING_POOL_COUNT` slot counts (smallest class first) or is null for the defaults
/// (2000, 1000, 300, 60, 15); `flags` combines `SLOTRING_INIT_NO_HEAP_FALLBACK` and
/// `SLOTRING_INIT_NO_SPILL`.
///
/// Must come before the first call that allocates. Only `slotring_event_alloc` and
/// `handle_ffi_event` (once past their argument checks) make the default allocator and
/// so fix the choice; every other call (stats, token calls, failed argument checks)
/// leaves it open. Afterwards this returns `ALREADY_INITIALIZED` and changes nothing.
/// `INVALID_ARGUMENT` for unknown flags or capacities that cannot be built (more than
/// 2^24 - 1 slots, or more bytes than the address space); `OUT_OF_MEMORY` when the
/// pools' memory cannot be had (nothing is chosen then: a later call may try smaller
/// capacities).
///
/// Thread safety: any thread; of concurrent calls at most one succeeds.
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
        if installed_allocator().is_some() {
            return Err(SlotringStatus::AlreadyInitialized);
        }
        let allocator = EventAllocator::builder()
            .capacities(capacities)
            .spill(flags & SLOTRING_INIT_NO_SPILL == 0)
            .heap_fallback(flags & SLOTRING_INIT_NO_HEAP_FALLBACK == 0)
            .build()?;
        slotring::ffi::install_owned(allocator).map_err(|_| SlotringStatus::AlreadyInitialized)
    })
}

/// Copies `len` bytes at `data` into a slot and writes a token for the new event to
/// `*out_token`. The token holds one reference: read the event with
/// `slotring_event_data`, share it with `slotring_event_clone`, hand it to the sink with
/// `slotring_event_send`, and let go with `slotring_event_release` (once per hold).
///
/// Errors as for `handle_ffi_event` (without the sink ones and `MISUSE`: this may be
/// called from a sink callback); `NULL_POINTER` also for a null `out_token`. On error
/// nothing is allocated and `*out_token` is not written.
///
/// Thread safety: any thread, concurrently.
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
        // SAFETY: forwarded from this function's contract.
        let payload = unsafe { c_bytes(data, len, max_payload_len())? };
        let allocator = try_allocator()?;
        let event = allocator.allocate(payload, event_type)?;
        // Fails only if the heap-token table cannot grow (2^24 - 1 entries, or no
        // memory for one more); the event is released then.
        let token = RingPtr::into_raw(event).map_err(|_| SlotringStatus::PoolExhausted)?;
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
/// Thread safety: any thread, concurrently, also on the same token.
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
        let event = allocator_of(token)?.clone_raw(token)?;
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
/// Thread safety: any thread, concurrently, also on the same token.
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
        let event = allocator_of(token)?.clone_raw(token)?;
        // Every event of the allocator has a token; parking a second hold of an event
        // that already has one reuses its token (or its heap-table entry), so this only
        // fails if the heap table cannot grow, which an existing entry never needs.
        let clone = RingPtr::into_raw(event).map_err(|_| SlotringStatus::PoolExhausted)?;
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
///
/// Thread safety: any thread, concurrently, also on the same token (each call takes a
/// different hold; once they are all gone, `ALREADY_RELEASED`).
#[unsafe(no_mangle)]
pub extern "C" fn slotring_event_release(token: u64) -> SlotringStatus {
    guard(|| {
        drop(allocator_of(token)?.from_raw(token)?);
        Ok(())
    })
}

/// Hands one hold of `token` to the registered sink. The hold is taken first, then
/// delivered: of two calls racing for a token's last hold exactly one delivers it (the
/// other gets `ALREADY_RELEASED`). On success the caller's hold is gone (as after
/// `slotring_event_release`); on `NO_SINK`, `SINK_FULL`, `SINK_CLOSED` or `MISUSE` it is
/// given back to the same token, unchanged, and the caller may retry. (While a send is
/// in flight its hold is out of the token: a concurrent release or read of a token with
/// no other hold sees `ALREADY_RELEASED`.) A C sink callback receives its hold in the
/// same token value, so a racer using that value after the delivery takes the
/// callback's hold: a token counts holds, it does not name their owners. After `PANIC`
/// (a panicking Rust sink) the hold is gone.
///
/// Thread safety: any thread, concurrently; `MISUSE` from inside a sink callback.
#[unsafe(no_mangle)]
pub extern "C" fn slotring_event_send(token: u64) -> SlotringStatus {
    guard(|| {
        if in_sink() {
            return Err(SlotringStatus::Misuse);
        }
        let allocator = allocator_of(token)?;
        // Take the hold first: the token's hold count decides which sender gets it.
        let mut event = Some(allocator.from_raw(token)?);
        let _ = PARKED_HOLD_TAKEN.try_with(|flag| flag.set(false));
        let delivered = with_sink(|sink| match event.take() {
            Some(event) => sink.deliver(event).map_err(DeliverError::Sink),
            None => Ok(()),
        });
        let Err(e) = delivered else {
            return Ok(());
        };
        let status = match &e {
            DeliverError::Sink(SinkError::Full(_)) => SlotringStatus::SinkFull,
            DeliverError::Sink(SinkError::Closed(_)) => SlotringStatus::SinkClosed,
            DeliverError::NoSink => SlotringStatus::NoSink,
            DeliverError::Reentered => SlotringStatus::Misuse,
            // The closure above allocates nothing, so no other error can come back.
            _ => SlotringStatus::InvalidArgument,
        };
        let back = match e {
            DeliverError::Sink(refused) => Some(refused.into_event()),
            _ => event.take(),
        };
        // A refusing C callback whose parked hold a racer took: that racer gives the
        // hold back (or delivers it), so giving ours back too would add one.
        let taken_by_racer = PARKED_HOLD_TAKEN.try_with(|flag| flag.replace(false)) == Ok(true);
        if let Some(back) = back.filter(|_| !taken_by_racer) {
            // Give the hold back. The event is alive (we hold it), so its token is the
            // one it had: a slot's generation, or the heap entry the event keeps while
            // it lives; and parking into an existing entry never allocates.
            match RingPtr::into_raw(back) {
                Ok(again) => debug_assert_eq!(again, token, "a re-parked hold changed token"),
                Err(_) => return Err(SlotringStatus::OutOfMemory),
            }
        }
        Err(status)
    })
}

/// Writes the allocator's statistics to `*out`. Before any allocator is chosen this
/// reports the default configuration with nothing used, and chooses nothing.
///
/// Errors: `NULL_POINTER` for a null `out`.
///
/// Thread safety: any thread, concurrently (a snapshot: counts may move meanwhile).
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
        let mut c = SlotringStats::default();
        match installed_allocator() {
            Some(allocator) => {
                let stats = allocator.stats();
                c.heap_in_use = stats.heap.in_use;
                c.heap_allocations = stats.heap.allocations;
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
            }
            None => {
                for ((c_pool, pool), capacity) in
                    c.pools.iter_mut().zip(PoolId::ALL).zip(DEFAULT_CAPACITIES)
                {
                    c_pool.slot_size = pool.max_size();
                    c_pool.capacity = capacity;
                }
            }
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
        // Kept in case the callback refuses: the hold parked for the callback sits in
        // the event's public token, where a concurrent caller with the same token value
        // may take it (a token counts holds, it names no owner), so taking it back
        // could fail for a reason that is not the callback's.
        let kept = event.clone();
        let token = RingPtr::into_raw(event).map_err(SinkError::Full)?;
        // SAFETY: the registration contract: `callback` is a valid function taking a
        // token and `user_data`, callable from any thread.
        let taken = unsafe { (self.callback)(token, self.user_data) } == 0;
        if taken {
            return Ok(());
        }
        // Refused: take back the hold parked for the callback and return the event.
        // If a racer took that hold (holds are interchangeable), the racer now accounts
        // for it: it gives it back or delivers it. The refused event still comes back,
        // but `slotring_event_send` must then not give the caller's hold back a second
        // time; this flag tells it so.
        let took_back = installed_allocator()
            .is_some_and(|allocator| allocator.from_raw(token).map(drop).is_ok());
        if !took_back {
            let _ = PARKED_HOLD_TAKEN.try_with(|flag| flag.set(true));
        }
        Err(SinkError::Full(kept))
    }
}

thread_local! {
    /// Set by a refused [`CallbackSink`] delivery whose parked hold a racer took (see
    /// `CallbackSink::deliver`); read and cleared by `slotring_event_send` on the same
    /// thread.
    static PARKED_HOLD_TAKEN: Cell<bool> = const { Cell::new(false) };
}

/// Registers a C function as the sink for `handle_ffi_event` and `slotring_event_send`,
/// replacing any sink (also one registered from Rust); a null `callback` unregisters.
/// The callback gets a token it owns (see `SlotringSinkFn`); a non-zero return refuses
/// the event, and the call that delivered it reports `SINK_FULL`. When this returns, no
/// call of the previous callback is still running (so its `user_data` may be freed).
///
/// Thread safety: any thread; it waits for deliveries in flight. From inside a sink
/// callback it returns `MISUSE` and changes nothing (it would wait for itself).
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
        if in_sink() {
            return Err(SlotringStatus::Misuse);
        }
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
///
/// Thread safety: any thread; the string is never freed.
#[unsafe(no_mangle)]
pub extern "C" fn slotring_status_message(status: i32) -> *const c_char {
    SlotringStatus::from_code(status)
        .map_or(c"unknown status", SlotringStatus::message)
        .as_ptr()
}

/// Reserves a slot with room for at least `capacity` bytes, to be written in place
/// through `*out_data` and then published with `slotring_event_publish` (or given back
/// with `slotring_event_abandon`): reading a socket or file straight into a slot, with
/// no buffer and no copy in between.
///
/// Writes the reservation handle to `*out_reservation`, the first byte of the room to
/// `*out_data` and the room's size (the slot size, at least `capacity`) to
/// `*out_capacity` if it is not null. The room holds whatever the slot's previous event
/// left there (it is not zeroed) and stays valid, for this caller alone, until the
/// reservation is published or abandoned. A reservation is never served from the heap.
///
/// Errors: `NULL_POINTER` for a null `out_reservation` or `out_data`; `TOO_LARGE` over
/// 16 KiB; `POOL_EXHAUSTED` when no class that could serve is free (spilling as
/// configured); `OUT_OF_MEMORY` for the default allocator or the table of reservations.
/// Nothing is reserved or written then.
///
/// Thread safety: any thread, concurrently; a reservation may be published or abandoned
/// on another thread than the one that made it.
///
/// # Safety
///
/// The out pointers must be valid for writes of their types (`out_capacity` may be null).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slotring_event_reserve(
    capacity: usize,
    event_type: u32,
    out_reservation: *mut u64,
    out_data: *mut *mut u8,
    out_capacity: *mut usize,
) -> SlotringStatus {
    guard(|| {
        if out_reservation.is_null() || out_data.is_null() {
            return Err(SlotringStatus::NullPointer);
        }
        let (reservation, data, room) = reservations::open(try_allocator()?, capacity, event_type)?;
        // SAFETY: non-null (checked) and valid for writes by the contract.
        unsafe {
            write_out(out_reservation, reservation);
            write_out(out_data, data);
            write_out(out_capacity, room);
        }
        Ok(())
    })
}

/// Publishes the first `len` bytes written into a reservation as an event and writes a
/// token for it to `*out_token` (one hold, as from `slotring_event_alloc`). The
/// reservation is closed: its data pointer must not be used again.
///
/// Errors: `NULL_POINTER` for a null `out_token`; `NO_RESERVATION` when the handle names
/// no open reservation (published or abandoned already, or never issued); `TOO_LARGE`
/// when `len` exceeds the reservation's capacity. On error the reservation (if any)
/// stays open and unchanged, and `*out_token` is not written.
///
/// Thread safety: any thread; of concurrent publishes (or abandons) of one reservation
/// exactly one succeeds, the others get `NO_RESERVATION`.
///
/// # Safety
///
/// `out_token` must be valid for a write of a `uint64_t`. The caller's writes through
/// the data pointer must be finished (this call orders them before every reader).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slotring_event_publish(
    reservation: u64,
    len: usize,
    out_token: *mut u64,
) -> SlotringStatus {
    guard(|| {
        if out_token.is_null() {
            return Err(SlotringStatus::NullPointer);
        }
        let builder = reservations::take(reservation, len)?;
        // Never fails: a reservation is a pooled slot, and pooled events always have a
        // token. (Mapped anyway rather than trusted.)
        let token =
            RingPtr::into_raw(builder.freeze()).map_err(|_| SlotringStatus::PoolExhausted)?;
        // SAFETY: non-null (checked) and valid for writes by the contract.
        unsafe { write_out(out_token, token) };
        Ok(())
    })
}

/// Gives a reservation's slot back without publishing anything. The data pointer must
/// not be used again.
///
/// Errors: `NO_RESERVATION` when the handle names no open reservation.
///
/// Thread safety: any thread; as for `slotring_event_publish`.
#[unsafe(no_mangle)]
pub extern "C" fn slotring_event_abandon(reservation: u64) -> SlotringStatus {
    guard(|| {
        drop(reservations::take(reservation, 0)?);
        Ok(())
    })
}

/// The library's version as `SLOTRING_VERSION_NUMBER` (`MAJOR * 1000000 + MINOR * 1000
/// + PATCH`): a host compares it with the macro of the header it was compiled against.
///
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn slotring_version() -> u32 {
    SLOTRING_VERSION_NUMBER
}

/// The library's version as a static, NUL-terminated string ("MAJOR.MINOR.PATCH").
///
/// Thread safety: any thread; the string is never freed.
#[unsafe(no_mangle)]
pub extern "C" fn slotring_version_string() -> *const c_char {
    VERSION_STRING.as_ptr()
}

/// The package version, NUL-terminated.
const VERSION_STRING: &core::ffi::CStr =
    match core::ffi::CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes())
    {
        Ok(version) => version,
        Err(_) => panic!("the package version contains a NUL byte"),
    };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_constants_match_the_package() {
        let number = |s: &str| s.parse::<u32>().expect("a numeric version part");
        assert_eq!(
            SLOTRING_VERSION_MAJOR,
            number(env!("CARGO_PKG_VERSION_MAJOR"))
        );
        assert_eq!(
            SLOTRING_VERSION_MINOR,
            number(env!("CARGO_PKG_VERSION_MINOR"))
        );
        assert_eq!(
            SLOTRING_VERSION_PATCH,
            number(env!("CARGO_PKG_VERSION_PATCH"))
        );
        assert_eq!(
            SLOTRING_VERSION_NUMBER,
            SLOTRING_VERSION_MAJOR * 1_000_000
                + SLOTRING_VERSION_MINOR * 1000
                + SLOTRING_VERSION_PATCH
        );
        assert_eq!(slotring_version(), SLOTRING_VERSION_NUMBER);
        assert_eq!(VERSION_STRING.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
