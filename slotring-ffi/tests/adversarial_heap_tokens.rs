//! Adversarial tests of the C API with heap-fallback events and their tokens (moved here
//! from the core's `tests/adversarial_core.rs` with the C library).

/// Fewer rounds under miri.
const fn rounds(native: usize, miri: usize) -> usize {
    if cfg!(miri) { miri } else { native }
}

/// A payload over 16 KiB: a heap-fallback event.
const BIG: usize = 20_000;

use std::ffi::c_void;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use slotring::ffi::SlotringStatus;
use slotring_ffi::SlotringStats;

/// The Rust-side API (`slotring::ffi`) and the `extern "C"` functions (`slotring_ffi`)
/// under one name, as the tests were written before the C library moved.
mod ffi {
    pub(crate) use slotring::ffi::*;
    pub(crate) use slotring_ffi::{
        slotring_event_alloc, slotring_event_clone, slotring_event_data, slotring_event_release,
        slotring_event_send, slotring_set_sink_callback, slotring_stats,
    };
}
use slotring::{Event, EventAllocator, RingPtr};

static ALLOCATOR: LazyLock<EventAllocator> = LazyLock::new(|| {
    EventAllocator::builder()
        .capacities([8, 4, 2, 2, 1])
        .build()
        .expect("small allocator, heap fallback on")
});
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    let guard = TURN.lock().unwrap_or_else(PoisonError::into_inner);
    let _ = ffi::install_allocator(&ALLOCATOR);
    assert!(std::ptr::eq(ffi::allocator(), &*ALLOCATOR));
    ffi::take_sink();
    guard
}

fn alloc(payload: &[u8], ty: u32) -> u64 {
    let mut token = 0;
    // SAFETY: valid payload and out pointer.
    let status =
        unsafe { ffi::slotring_event_alloc(payload.as_ptr(), payload.len(), ty, &mut token) };
    assert_eq!(status, SlotringStatus::Ok);
    token
}

fn data(token: u64) -> Result<(*const u8, usize, u32), SlotringStatus> {
    let (mut d, mut l, mut t) = (std::ptr::null(), 0usize, 0u32);
    // SAFETY: valid out pointers.
    match unsafe { ffi::slotring_event_data(token, &mut d, &mut l, &mut t) } {
        SlotringStatus::Ok => Ok((d, l, t)),
        e => Err(e),
    }
}

fn clone(token: u64) -> Result<u64, SlotringStatus> {
    let mut out = 0;
    // SAFETY: valid out pointer.
    match unsafe { ffi::slotring_event_clone(token, &mut out) } {
        SlotringStatus::Ok => Ok(out),
        e => Err(e),
    }
}

fn heap_in_use() -> u64 {
    let mut stats = SlotringStats::default();
    // SAFETY: valid out pointer.
    let status = unsafe { ffi::slotring_stats(&mut stats) };
    assert_eq!(status, SlotringStatus::Ok);
    stats.heap_in_use
}

/// Heap events through every token function: data stays valid while a hold exists,
/// clones are the same token, one release per hold, then ALREADY_RELEASED or
/// STALE_TOKEN; stats count the event until the last hold goes.
/// // passes: coverage
#[test]
fn c_heap_events_by_token() {
    let _turn = turn();
    let before = heap_in_use();
    let payload = vec![0x5A; BIG];
    let token = alloc(&payload, 4);
    assert_eq!(heap_in_use(), before + 1);
    let (ptr, len, ty) = data(token).unwrap();
    assert_eq!((len, ty), (BIG, 4));
    let twin = clone(token).unwrap();
    assert_eq!(twin, token);
    assert_eq!(ffi::slotring_event_release(token), SlotringStatus::Ok);
    // SAFETY: one hold remains, so the bytes stay valid.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
    assert!(bytes.iter().all(|&b| b == 0x5A));
    assert_eq!(ffi::slotring_event_release(twin), SlotringStatus::Ok);
    assert_eq!(heap_in_use(), before);
    assert_eq!(
        ffi::slotring_event_release(token),
        SlotringStatus::AlreadyReleased
    );
    assert_eq!(data(token).unwrap_err(), SlotringStatus::AlreadyReleased);
    assert_eq!(clone(token).unwrap_err(), SlotringStatus::AlreadyReleased);
    assert_eq!(
        ffi::slotring_event_send(token),
        SlotringStatus::AlreadyReleased
    );
    // The entry is reused by the next heap event: the old token is now stale.
    let next = alloc(&payload, 5);
    assert_ne!(next, token);
    assert_eq!(
        ffi::slotring_event_release(token),
        SlotringStatus::StaleToken
    );
    assert_eq!(ffi::slotring_event_release(next), SlotringStatus::Ok);
    assert_eq!(heap_in_use(), before);
}

/// A heap token sent to a Rust sink and to a C callback sink that clones and
/// releases inside the callback (allowed) and then refuses or takes the event.
/// // passes: coverage
#[test]
fn c_heap_events_sent_to_sinks() {
    let _turn = turn();
    let before = heap_in_use();
    let (tx, rx) = crossbeam_channel::unbounded::<RingPtr<Event>>();
    ffi::set_sink(tx);
    let token = alloc(&vec![7; BIG], 1);
    assert_eq!(ffi::slotring_event_send(token), SlotringStatus::Ok);
    assert_eq!(
        ffi::slotring_event_release(token),
        SlotringStatus::AlreadyReleased
    );
    let got = rx.recv().unwrap();
    assert_eq!((got.len(), got.event_type()), (BIG, 1));
    // Rust side re-parks the event it got: the same token (the entry stays the event's
    // while it lives).
    let again = RingPtr::into_raw(got).unwrap();
    assert_eq!(again, token);
    assert_eq!(ffi::slotring_event_release(again), SlotringStatus::Ok);
    assert_eq!(heap_in_use(), before);

    unsafe extern "C" fn refuse_after_touching(token: u64, user: *mut c_void) -> i32 {
        let mut out = 0u64;
        // SAFETY: valid out pointer.
        let s = unsafe { ffi::slotring_event_clone(token, &mut out) };
        assert_eq!(s, SlotringStatus::Ok);
        assert_eq!(ffi::slotring_event_release(out), SlotringStatus::Ok);
        // SAFETY: `user` is the counter below.
        unsafe { &*(user as *const std::sync::atomic::AtomicUsize) }
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        1
    }
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    // SAFETY: the callback may run on any thread; `user` is a static.
    let status = unsafe {
        ffi::slotring_set_sink_callback(
            Some(refuse_after_touching),
            &CALLS as *const _ as *mut c_void,
        )
    };
    assert_eq!(status, SlotringStatus::Ok);
    let token = alloc(&vec![8; BIG], 2);
    assert_eq!(ffi::slotring_event_send(token), SlotringStatus::SinkFull);
    assert_eq!(CALLS.load(std::sync::atomic::Ordering::Relaxed), 1);
    // The caller still holds its one hold.
    assert_eq!(data(token).unwrap().1, BIG);
    assert_eq!(ffi::slotring_event_release(token), SlotringStatus::Ok);
    assert_eq!(
        ffi::slotring_event_release(token),
        SlotringStatus::AlreadyReleased
    );
    // SAFETY: unregisters.
    unsafe { ffi::slotring_set_sink_callback(None, std::ptr::null_mut()) };
    assert_eq!(heap_in_use(), before);
}

/// C threads cloning, reading and releasing one heap token at once: the data stays
/// intact while a hold exists, every hold is released exactly once.
/// // passes: coverage
#[test]
fn c_heap_token_shared_by_threads() {
    let _turn = turn();
    let before = heap_in_use();
    let token = alloc(&vec![9; BIG], 3);
    let threads = 4;
    let per = rounds(500, 5);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..per {
                    let mine = clone(token).unwrap();
                    let (ptr, len, _) = data(mine).unwrap();
                    // SAFETY: we hold `mine`.
                    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
                    assert!(bytes.iter().all(|&b| b == 9));
                    assert_eq!(ffi::slotring_event_release(mine), SlotringStatus::Ok);
                }
            });
        }
    });
    assert_eq!(ffi::slotring_event_release(token), SlotringStatus::Ok);
    assert_eq!(
        ffi::slotring_event_release(token),
        SlotringStatus::AlreadyReleased
    );
    assert_eq!(heap_in_use(), before);
}
