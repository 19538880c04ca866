//! The FFI layer called from Rust, as a C host would call it: sinks, statuses, tokens,
//! panics caught at the boundary. Every test here shares the process-wide allocator and
//! sink, so they take turns.

use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use slotring::ffi::{self, DeliverError, SinkError, SlotringStatus};
use slotring::{AllocError, Event, EventAllocator, PoolId, RingPtr};
use slotring_ffi::SlotringStats;

/// Small pools, spilling on, no heap fallback: exhaustion and size limits are reachable.
static ALLOCATOR: LazyLock<EventAllocator> = LazyLock::new(|| {
    EventAllocator::builder()
        .capacities([8, 4, 2, 2, 1])
        .heap_fallback(false)
        .build()
        .expect("small allocator")
});

static TURN: Mutex<()> = Mutex::new(());

/// Takes this test's turn with the global state, installed and with no sink.
fn turn() -> MutexGuard<'static, ()> {
    let guard = TURN.lock().unwrap_or_else(PoisonError::into_inner);
    // Only the first call installs; the others find it installed already.
    let _ = ffi::install_allocator(&ALLOCATOR);
    assert!(std::ptr::eq(ffi::allocator(), &*ALLOCATOR));
    ffi::take_sink();
    guard
}

fn call(payload: &[u8], event_type: u32) -> SlotringStatus {
    // SAFETY: `payload` is valid for reads of its length during the call.
    unsafe { ffi::handle_ffi_event(payload.as_ptr(), payload.len(), event_type) }
}

fn in_use() -> usize {
    ALLOCATOR.stats().pools.iter().map(|p| p.in_use).sum()
}

#[test]
fn events_reach_a_crossbeam_sink() {
    let _turn = turn();
    let (tx, rx) = crossbeam_channel::bounded::<RingPtr<Event>>(2);
    assert!(ffi::set_sink(tx).is_none());
    assert_eq!(call(b"one", 1), SlotringStatus::Ok);
    assert_eq!(call(&[9; 300], 2), SlotringStatus::Ok);
    // A bounded channel at capacity refuses without blocking the C host.
    assert_eq!(call(b"three", 3), SlotringStatus::SinkFull);
    let first = rx.recv().unwrap();
    assert_eq!((first.payload(), first.event_type()), (&b"one"[..], 1));
    assert_eq!(RingPtr::pool_id(&first), Some(PoolId::XS));
    let second = rx.recv().unwrap();
    assert_eq!(RingPtr::pool_id(&second), Some(PoolId::M));
    drop((first, second));
    drop(rx);
    assert_eq!(call(b"four", 4), SlotringStatus::SinkClosed);
    assert_eq!(in_use(), 0, "refused events are released, not leaked");
}

#[test]
fn std_channels_and_closures_are_sinks() {
    let _turn = turn();
    let (tx, rx) = std::sync::mpsc::channel::<RingPtr<Event>>();
    ffi::set_sink(tx);
    assert_eq!(call(b"mpsc", 5), SlotringStatus::Ok);
    assert_eq!(rx.recv().unwrap().payload(), b"mpsc");
    let (tx, rx) = std::sync::mpsc::sync_channel::<RingPtr<Event>>(1);
    ffi::set_sink(tx);
    assert_eq!(call(b"a", 1), SlotringStatus::Ok);
    assert_eq!(call(b"b", 1), SlotringStatus::SinkFull);
    drop(rx);
    assert_eq!(call(b"c", 1), SlotringStatus::SinkClosed);
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    ffi::set_sink(move |ev: RingPtr<Event>| -> Result<(), SinkError> {
        log.lock().unwrap().push(ev.event_type());
        Err(SinkError::Full(ev))
    });
    assert_eq!(call(b"x", 42), SlotringStatus::SinkFull);
    assert_eq!(*seen.lock().unwrap(), [42]);
    assert!(ffi::take_sink().is_some());
    assert!(ffi::take_sink().is_none());
    assert_eq!(in_use(), 0);
}

#[test]
fn bad_input_gets_status_codes() {
    let _turn = turn();
    assert_eq!(call(b"no sink", 1), SlotringStatus::NoSink);
    let (tx, rx) = crossbeam_channel::unbounded::<RingPtr<Event>>();
    ffi::set_sink(tx);
    // SAFETY: a null pointer is allowed by the contract (it is what is being tested).
    let null = unsafe { ffi::handle_ffi_event(std::ptr::null(), 4, 1) };
    assert_eq!(null, SlotringStatus::NullPointer);
    // SAFETY: null with length 0 is an empty payload.
    let empty = unsafe { ffi::handle_ffi_event(std::ptr::null(), 0, 1) };
    assert_eq!(empty, SlotringStatus::Ok);
    assert!(rx.recv().unwrap().is_empty());
    // Above every class, heap fallback off: refused before the bytes are read, so a
    // one-byte buffer with a huge length is never touched.
    let byte = [0u8; 1];
    // SAFETY: the length is refused before any read of `byte`.
    let huge = unsafe { ffi::handle_ffi_event(byte.as_ptr(), 1 << 40, 1) };
    assert_eq!(huge, SlotringStatus::TooLarge);
    assert_eq!(
        call(&[0; PoolId::MAX_POOLED + 1], 1),
        SlotringStatus::TooLarge
    );
    // Exhaustion: one XL slot, no fallback.
    let big = vec![7u8; 10_000];
    let mut held = Vec::new();
    loop {
        match call(&big, 2) {
            SlotringStatus::Ok => held.push(rx.recv().unwrap()),
            status => {
                assert_eq!(status, SlotringStatus::PoolExhausted);
                break;
            }
        }
    }
    assert_eq!(held.len(), 1);
    drop(held);
    match ffi::deliver(&big, 2) {
        Ok(()) => drop(rx.recv().unwrap()),
        Err(e) => panic!("the slot came back, yet: {e}"),
    }
    ffi::take_sink();
    assert!(matches!(ffi::deliver(b"x", 1), Err(DeliverError::NoSink)));
    assert_eq!(in_use(), 0);
}

#[test]
fn a_panicking_sink_is_caught_at_the_boundary() {
    let _turn = turn();
    ffi::set_sink(|_: RingPtr<Event>| -> Result<(), SinkError> {
        panic!("a sink bug");
    });
    assert_eq!(call(b"boom", 1), SlotringStatus::Panic);
    assert_eq!(in_use(), 0, "the event unwound and was released");
    // Nothing is poisoned: the next sink works.
    let (tx, rx) = crossbeam_channel::unbounded::<RingPtr<Event>>();
    ffi::set_sink(tx);
    assert_eq!(call(b"fine", 1), SlotringStatus::Ok);
    assert_eq!(rx.recv().unwrap().payload(), b"fine");
}

#[test]
fn c_hosts_hold_events_by_token() {
    let _turn = turn();
    let mut token = 0u64;
    // SAFETY: the payload and out pointer are valid.
    let status = unsafe { slotring_ffi::slotring_event_alloc(b"held".as_ptr(), 4, 3, &mut token) };
    assert_eq!(status, SlotringStatus::Ok);
    let (mut data, mut len, mut ty) = (std::ptr::null(), 0usize, 0u32);
    // SAFETY: the out pointers are valid.
    let status = unsafe { slotring_ffi::slotring_event_data(token, &mut data, &mut len, &mut ty) };
    assert_eq!(status, SlotringStatus::Ok);
    // SAFETY: the token holds the event, so its bytes stay valid and unchanged.
    assert_eq!(unsafe { std::slice::from_raw_parts(data, len) }, b"held");
    assert_eq!(ty, 3);
    let mut twin = 0u64;
    // SAFETY: the out pointer is valid.
    let status = unsafe { slotring_ffi::slotring_event_clone(token, &mut twin) };
    assert_eq!(status, SlotringStatus::Ok);
    assert_eq!(
        slotring_ffi::slotring_event_release(token),
        SlotringStatus::Ok
    );
    // SAFETY: still held by the clone.
    assert_eq!(unsafe { std::slice::from_raw_parts(data, len) }, b"held");
    let (tx, rx) = crossbeam_channel::unbounded::<RingPtr<Event>>();
    assert_eq!(
        slotring_ffi::slotring_event_send(twin),
        SlotringStatus::NoSink
    );
    ffi::set_sink(tx);
    assert_eq!(slotring_ffi::slotring_event_send(twin), SlotringStatus::Ok);
    assert_eq!(
        slotring_ffi::slotring_event_send(twin),
        SlotringStatus::AlreadyReleased
    );
    assert_eq!(
        slotring_ffi::slotring_event_release(token),
        SlotringStatus::AlreadyReleased
    );
    let sent = rx.recv().unwrap();
    assert_eq!(sent.payload(), b"held");
    drop(sent);
    let mut stats = SlotringStats::default();
    // SAFETY: the out pointer is valid.
    let status = unsafe { slotring_ffi::slotring_stats(&mut stats) };
    assert_eq!(status, SlotringStatus::Ok);
    assert_eq!(stats.pools[0].slot_size, 64);
    assert_eq!(stats.pools[0].capacity, 8);
    assert!(stats.pools.iter().all(|p| p.in_use == 0));
    // SAFETY: a null out pointer is refused, not written.
    let status = unsafe { slotring_ffi::slotring_stats(std::ptr::null_mut()) };
    assert_eq!(status, SlotringStatus::NullPointer);
    // Configuration after use is refused, bad flags too.
    // SAFETY: a null capacities pointer selects the defaults.
    let late = unsafe { slotring_ffi::slotring_init(std::ptr::null(), 0) };
    assert_eq!(late, SlotringStatus::AlreadyInitialized);
    // SAFETY: as above.
    let bad_flags = unsafe { slotring_ffi::slotring_init(std::ptr::null(), 1 << 7) };
    assert_eq!(bad_flags, SlotringStatus::InvalidArgument);
    assert!(ffi::install_allocator(&ALLOCATOR).is_err());
}

#[test]
fn status_messages_are_static_c_strings() {
    for code in 0..=14 {
        // SAFETY: the function returns a pointer to a static NUL-terminated string.
        let message =
            unsafe { std::ffi::CStr::from_ptr(slotring_ffi::slotring_status_message(code)) };
        assert_ne!(message.to_str().unwrap(), "unknown status", "code {code}");
    }
    // SAFETY: as above.
    let unknown = unsafe { std::ffi::CStr::from_ptr(slotring_ffi::slotring_status_message(-1)) };
    assert_eq!(unknown.to_str().unwrap(), "unknown status");
}

#[test]
fn deliver_errors_are_std_errors() {
    let e: Box<dyn std::error::Error> =
        Box::new(DeliverError::Alloc(AllocError::TooLarge { len: 1, max: 0 }));
    assert!(e.source().is_some());
    assert!(e.to_string().contains("could not be stored"));
}

#[test]
fn racing_sends_of_one_hold_deliver_it_once() {
    let _turn = turn();
    let (tx, rx) = crossbeam_channel::unbounded::<RingPtr<Event>>();
    ffi::set_sink(tx);
    let rounds = if cfg!(miri) { 20 } else { 2000 };
    for round in 0..rounds {
        let mut token = 0u64;
        // SAFETY: the payload and out pointer are valid.
        let status =
            unsafe { slotring_ffi::slotring_event_alloc(b"once".as_ptr(), 4, 1, &mut token) };
        assert_eq!(status, SlotringStatus::Ok);
        let barrier = std::sync::Barrier::new(2);
        let release_instead = round % 2 == 1;
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| {
                barrier.wait();
                slotring_ffi::slotring_event_send(token)
            });
            let b = s.spawn(|| {
                barrier.wait();
                if release_instead {
                    slotring_ffi::slotring_event_release(token)
                } else {
                    slotring_ffi::slotring_event_send(token)
                }
            });
            (a.join().unwrap(), b.join().unwrap())
        });
        let oks = [a, b].iter().filter(|s| **s == SlotringStatus::Ok).count();
        assert_eq!(oks, 1, "round {round}: {a:?} and {b:?}");
        for status in [a, b] {
            assert!(matches!(
                status,
                SlotringStatus::Ok | SlotringStatus::AlreadyReleased
            ));
        }
        let sends_ok = usize::from(a == SlotringStatus::Ok)
            + usize::from(!release_instead && b == SlotringStatus::Ok);
        let received: Vec<_> = rx.try_iter().collect();
        assert_eq!(
            received.len(),
            sends_ok,
            "round {round}: one delivery per successful send"
        );
    }
    // A failed send gives the hold back to the same token: a full sink refuses, and the
    // token is still held once.
    let (tx, rx) = crossbeam_channel::bounded::<RingPtr<Event>>(0);
    ffi::set_sink(tx);
    for payload in [&b"pooled"[..], &[3u8; 9000][..]] {
        let mut token = 0u64;
        // SAFETY: the payload and out pointer are valid.
        let status = unsafe {
            slotring_ffi::slotring_event_alloc(payload.as_ptr(), payload.len(), 1, &mut token)
        };
        assert_eq!(status, SlotringStatus::Ok);
        assert_eq!(
            slotring_ffi::slotring_event_send(token),
            SlotringStatus::SinkFull
        );
        assert_eq!(
            slotring_ffi::slotring_event_send(token),
            SlotringStatus::SinkFull
        );
        assert_eq!(
            slotring_ffi::slotring_event_release(token),
            SlotringStatus::Ok
        );
        assert_eq!(
            slotring_ffi::slotring_event_release(token),
            SlotringStatus::AlreadyReleased
        );
    }
    drop(rx);
    assert_eq!(in_use(), 0);
}

#[test]
fn a_rust_sink_that_delivers_again_gets_misuse() {
    let _turn = turn();
    let inner = std::sync::Arc::new(Mutex::new(Vec::new()));
    let log = inner.clone();
    ffi::set_sink(move |ev: RingPtr<Event>| -> Result<(), SinkError> {
        let mut log = log.lock().unwrap();
        log.push(call(b"again", 2));
        log.push(match ffi::deliver(b"again", 2) {
            Err(DeliverError::Reentered) => SlotringStatus::Misuse,
            other => panic!("expected Reentered, got {other:?}"),
        });
        // SAFETY: null callback: unregisters (refused here).
        log.push(unsafe { slotring_ffi::slotring_set_sink_callback(None, std::ptr::null_mut()) });
        drop(ev);
        Ok(())
    });
    assert_eq!(call(b"outer", 1), SlotringStatus::Ok);
    assert_eq!(*inner.lock().unwrap(), [SlotringStatus::Misuse; 3]);
    // `set_sink` from inside a sink panics instead of deadlocking (caught at the boundary).
    ffi::set_sink(|ev: RingPtr<Event>| -> Result<(), SinkError> {
        drop(ev);
        drop(ffi::take_sink());
        Ok(())
    });
    assert_eq!(call(b"outer", 1), SlotringStatus::Panic);
    assert!(ffi::take_sink().is_some(), "the sink is still registered");
    assert_eq!(in_use(), 0);
}
