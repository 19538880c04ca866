//! The sink: where events from C go, registered by the Rust side.

use core::cell::Cell;
use core::fmt;
use std::sync::{PoisonError, RwLock};

use crate::error::{AllocError, CapacityError};
use crate::event::Event;
use crate::ptr::RingPtr;

/// Receives the events a C host delivers through [`handle_ffi_event`](super::handle_ffi_event).
///
/// Implemented for `crossbeam_channel::Sender`, `std::sync::mpsc::Sender` and
/// `SyncSender` (all without blocking: a full bounded channel refuses the event), and for
/// any `Fn(RingPtr<Event>) -> Result<(), SinkError>` closure. `deliver` runs on the C
/// host's thread, inside its call: keep it short. It runs under the sink registry's read
/// lock, so it must not register or unregister sinks, nor deliver again itself. Such
/// re-entry is detected (a thread-local flag is set while a sink runs) instead of
/// deadlocking: [`deliver`], `handle_ffi_event` and `slotring_event_send` then fail
/// with [`DeliverError::Reentered`] (`SLOTRING_STATUS_MISUSE`), and [`set_sink`] and
/// [`take_sink`] panic.
pub trait EventSink: Send + Sync + 'static {
    /// Takes `event`, or hands it back in the error.
    fn deliver(&self, event: RingPtr<Event>) -> Result<(), SinkError>;
}

/// Why a sink refused an event; the event comes back with it.
pub enum SinkError {
    /// The sink is full right now (a bounded channel at capacity).
    Full(RingPtr<Event>),
    /// The sink will never take events again (every receiver is gone).
    Closed(RingPtr<Event>),
}

impl SinkError {
    /// The refused event.
    pub fn into_event(self) -> RingPtr<Event> {
        match self {
            SinkError::Full(event) | SinkError::Closed(event) => event,
        }
    }
}

impl fmt::Debug for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkError::Full(_) => f.write_str("Full(..)"),
            SinkError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SinkError::Full(_) => "the event sink is full",
            SinkError::Closed(_) => "the event sink is closed",
        })
    }
}

impl std::error::Error for SinkError {}

impl EventSink for crossbeam_channel::Sender<RingPtr<Event>> {
    fn deliver(&self, event: RingPtr<Event>) -> Result<(), SinkError> {
        self.try_send(event).map_err(|e| match e {
            crossbeam_channel::TrySendError::Full(ev) => SinkError::Full(ev),
            crossbeam_channel::TrySendError::Disconnected(ev) => SinkError::Closed(ev),
        })
    }
}

impl EventSink for std::sync::mpsc::Sender<RingPtr<Event>> {
    fn deliver(&self, event: RingPtr<Event>) -> Result<(), SinkError> {
        self.send(event).map_err(|e| SinkError::Closed(e.0))
    }
}

impl EventSink for std::sync::mpsc::SyncSender<RingPtr<Event>> {
    fn deliver(&self, event: RingPtr<Event>) -> Result<(), SinkError> {
        self.try_send(event).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(ev) => SinkError::Full(ev),
            std::sync::mpsc::TrySendError::Disconnected(ev) => SinkError::Closed(ev),
        })
    }
}

impl<F> EventSink for F
where
    F: Fn(RingPtr<Event>) -> Result<(), SinkError> + Send + Sync + 'static,
{
    fn deliver(&self, event: RingPtr<Event>) -> Result<(), SinkError> {
        self(event)
    }
}

/// Why [`deliver`] (or `handle_ffi_event`) did not hand an event to the sink.
#[derive(Debug)]
#[non_exhaustive]
pub enum DeliverError {
    /// No sink is registered; nothing was allocated.
    NoSink,
    /// The bytes could not be stored (too large, or every class full without fallback).
    Alloc(AllocError),
    /// The sink refused the event (which comes back inside).
    Sink(SinkError),
    /// The FFI allocator had not been chosen yet and the default one could not be made
    /// (out of memory); nothing was allocated and nothing was chosen.
    Allocator(CapacityError),
    /// Called from inside a sink on the same thread (see [`EventSink`]); nothing was done.
    Reentered,
}

impl fmt::Display for DeliverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliverError::NoSink => f.write_str("no event sink is registered"),
            DeliverError::Alloc(e) => write!(f, "the event could not be stored: {e}"),
            DeliverError::Sink(e) => write!(f, "the sink refused the event: {e}"),
            DeliverError::Allocator(e) => write!(f, "the FFI allocator could not be made: {e}"),
            DeliverError::Reentered => {
                f.write_str("deliveries from inside a sink are not allowed (re-entry)")
            }
        }
    }
}

impl std::error::Error for DeliverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DeliverError::NoSink | DeliverError::Reentered => None,
            DeliverError::Alloc(e) => Some(e),
            DeliverError::Sink(e) => Some(e),
            DeliverError::Allocator(e) => Some(e),
        }
    }
}

/// The registered sink. Readers (every delivery) take the read lock, so deliveries from
/// many C threads run in parallel; only registering takes the write lock.
static SINK: RwLock<Option<Box<dyn EventSink>>> = RwLock::new(None);

thread_local! {
    /// Set while this thread runs a sink (under the registry's read lock): a call that
    /// would take the lock again from inside the sink is refused instead of deadlocking
    /// (a writer queued between the two read locks blocks the second) or recursing
    /// without bound.
    static IN_SINK: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread is running a sink right now. (A thread whose thread-locals are
/// being destroyed runs no sink.)
#[must_use]
pub fn in_sink() -> bool {
    IN_SINK.try_with(Cell::get).unwrap_or(false)
}

/// Marks this thread as inside a sink until dropped (also when the sink unwinds).
struct SinkScope;

impl SinkScope {
    fn enter() -> Self {
        // Ignored if the thread-local is gone (thread exit): no sink can run again then.
        let _ = IN_SINK.try_with(|flag| flag.set(true));
        SinkScope
    }
}

impl Drop for SinkScope {
    fn drop(&mut self) {
        let _ = IN_SINK.try_with(|flag| flag.set(false));
    }
}

/// Panics when called from inside a sink (registration would deadlock there).
fn refuse_registration_in_sink(what: &str) {
    assert!(
        !in_sink(),
        "slotring::ffi::{what} called from inside an event sink: it would deadlock"
    );
}

/// Registers the sink for events from C, returning the one it replaces.
///
/// # Panics
///
/// When called from inside a sink (which runs under the registry's read lock: waiting
/// for the write lock there would deadlock).
pub fn set_sink(sink: impl EventSink) -> Option<Box<dyn EventSink>> {
    refuse_registration_in_sink("set_sink");
    let mut slot = SINK.write().unwrap_or_else(PoisonError::into_inner);
    slot.replace(Box::new(sink))
}

/// Unregisters the sink and returns it; deliveries fail with `NoSink` from now on.
///
/// # Panics
///
/// When called from inside a sink, as [`set_sink`].
pub fn take_sink() -> Option<Box<dyn EventSink>> {
    refuse_registration_in_sink("take_sink");
    SINK.write().unwrap_or_else(PoisonError::into_inner).take()
}

/// Runs `f` with the registered sink (marking this thread as inside a sink meanwhile),
/// or returns [`DeliverError::NoSink`], or [`DeliverError::Reentered`] when this thread
/// is inside a sink already (`f` is not called then).
///
/// For the `slotring-ffi` package; not a stable API.
#[doc(hidden)]
pub fn with_sink<R>(
    f: impl FnOnce(&dyn EventSink) -> Result<R, DeliverError>,
) -> Result<R, DeliverError> {
    if in_sink() {
        return Err(DeliverError::Reentered);
    }
    // A panicking sink poisons nothing here (it runs under the read lock), and a poisoned
    // lock still holds a valid `Option<Box<..>>`, so poisoning is ignored.
    let guard = SINK.read().unwrap_or_else(PoisonError::into_inner);
    match guard.as_deref() {
        Some(sink) => {
            let _scope = SinkScope::enter();
            f(sink)
        }
        None => Err(DeliverError::NoSink),
    }
}

/// Copies `payload` into the [FFI allocator](super::allocator) and hands the event to
/// the sink: what [`handle_ffi_event`](super::handle_ffi_event) does, as a safe Rust call.
///
/// If no allocator was chosen yet, this makes the default one (and fails with
/// [`DeliverError::Allocator`] if that runs out of memory). Fails with
/// [`DeliverError::Reentered`] when called from inside a sink.
pub fn deliver(payload: &[u8], event_type: u32) -> Result<(), DeliverError> {
    with_sink(|sink| {
        let allocator = super::try_allocator().map_err(DeliverError::Allocator)?;
        let event = allocator
            .allocate(payload, event_type)
            .map_err(DeliverError::Alloc)?;
        sink.deliver(event).map_err(DeliverError::Sink)
    })
}
