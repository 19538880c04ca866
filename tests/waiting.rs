//! Waiting for a slot: `allocate_timeout` and `allocate_async`, and what a waiter can
//! see of slots that sit in other threads' magazines (the guarantee in
//! `src/waiting.rs`). No test asserts a duration: every wait that must succeed has a
//! generous timeout and fails the test only by hanging past it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use slotring::{AllocError, EventAllocator, PoolId};

/// Long enough never to pass in a working build.
const FOREVER: Duration = Duration::from_secs(120);

/// Counts its wake-ups.
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counter() -> (Arc<Counter>, Waker) {
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    (counter, waker)
}

fn xs_only(slots: usize) -> EventAllocator {
    EventAllocator::builder()
        .capacities([slots, 0, 0, 0, 0])
        .spill(false)
        .heap_fallback(false)
        .build()
        .unwrap()
}

#[test]
fn bad_input_is_refused_at_once() {
    let alloc = xs_only(1);
    let big = vec![0u8; PoolId::MAX_POOLED + 1];
    assert!(matches!(
        alloc.allocate_timeout(&big, 0, FOREVER),
        Err(AllocError::TooLarge { .. })
    ));
    // A class of 0 slots can never free one: refused, not waited for.
    assert_eq!(
        alloc.allocate_timeout(&[0; 100], 0, FOREVER).unwrap_err(),
        AllocError::PoolExhausted { pool: PoolId::S }
    );
    let (_, waker) = counter();
    let mut cx = Context::from_waker(&waker);
    let mut too_big = Box::pin(alloc.allocate_async(&big, 0));
    assert!(matches!(
        too_big.as_mut().poll(&mut cx),
        Poll::Ready(Err(AllocError::TooLarge { .. }))
    ));
    let mut empty_class = Box::pin(alloc.allocate_async(&[0; 100], 0));
    assert!(matches!(
        empty_class.as_mut().poll(&mut cx),
        Poll::Ready(Err(AllocError::PoolExhausted { pool: PoolId::S }))
    ));
}

#[test]
fn a_timeout_refuses_and_counts_a_failure() {
    let alloc = xs_only(1);
    let _held = alloc.allocate(b"a", 0).unwrap();
    assert_eq!(
        alloc.allocate_timeout(b"b", 0, Duration::ZERO).unwrap_err(),
        AllocError::PoolExhausted { pool: PoolId::XS }
    );
    assert_eq!(
        alloc
            .allocate_timeout(b"b", 0, Duration::from_millis(1))
            .unwrap_err(),
        AllocError::PoolExhausted { pool: PoolId::XS }
    );
    assert_eq!(alloc.stats().pool(PoolId::XS).failures, 2);
}

#[test]
fn a_blocked_thread_gets_the_slot_another_thread_releases() {
    let alloc = Arc::new(xs_only(1));
    let held = alloc.allocate(b"a", 0).unwrap();
    let waiter = {
        let alloc = alloc.clone();
        std::thread::spawn(move || alloc.allocate_timeout(b"b", 2, FOREVER).map(|ev| ev.len()))
    };
    drop(held);
    assert_eq!(waiter.join().unwrap(), Ok(1));
}

#[test]
fn a_pending_task_is_woken_by_a_release_and_then_served() {
    let alloc = xs_only(1);
    let held = alloc.allocate(b"a", 0).unwrap();
    let (count, waker) = counter();
    let mut cx = Context::from_waker(&waker);
    let mut wait = Box::pin(alloc.allocate_async(b"b", 3));
    assert!(wait.as_mut().poll(&mut cx).is_pending());
    assert!(
        wait.as_mut().poll(&mut cx).is_pending(),
        "a spurious poll stays pending"
    );
    assert_eq!(count.0.load(Ordering::SeqCst), 0);
    drop(held);
    assert_eq!(
        count.0.load(Ordering::SeqCst),
        1,
        "the release wakes the task"
    );
    match wait.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(ev)) => assert_eq!((ev.payload(), ev.event_type()), (&b"b"[..], 3)),
        other => panic!("not served after the wake-up: {other:?}"),
    }
}

#[test]
fn a_dropped_task_is_no_longer_woken() {
    let alloc = xs_only(1);
    let held = alloc.allocate(b"a", 0).unwrap();
    let (count, waker) = counter();
    let mut cx = Context::from_waker(&waker);
    let mut wait = Box::pin(alloc.allocate_async(b"b", 0));
    assert!(wait.as_mut().poll(&mut cx).is_pending());
    drop(wait);
    drop(held);
    assert_eq!(count.0.load(Ordering::SeqCst), 0);
    // And the slot is there for the next caller.
    assert!(alloc.try_allocate(b"c", 0).is_ok());
}

#[test]
fn every_waiting_task_is_woken_and_the_losers_wait_again() {
    let alloc = xs_only(1);
    let held = alloc.allocate(b"a", 0).unwrap();
    let (count, waker) = counter();
    let mut cx = Context::from_waker(&waker);
    let mut first = Box::pin(alloc.allocate_async(b"1", 0));
    let mut second = Box::pin(alloc.allocate_async(b"2", 0));
    assert!(first.as_mut().poll(&mut cx).is_pending());
    assert!(second.as_mut().poll(&mut cx).is_pending());
    drop(held);
    assert_eq!(count.0.load(Ordering::SeqCst), 2);
    let Poll::Ready(Ok(won)) = second.as_mut().poll(&mut cx) else {
        panic!("the first poll after the release must win the slot")
    };
    assert!(
        first.as_mut().poll(&mut cx).is_pending(),
        "the loser waits again"
    );
    drop(won);
    assert_eq!(count.0.load(Ordering::SeqCst), 3, "and is woken again");
    assert!(matches!(first.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
}

/// A pool of 8 slots caches one slot per thread at most (budget 8/8, quota 1). A slot
/// another thread cached before the wait began is out of the waiter's reach, but that
/// thread's next release of the class sends its magazine to the shared list too.
#[test]
#[cfg_attr(
    miri,
    ignore = "thread-local magazines and a helper thread: slow under miri"
)]
fn a_release_while_someone_waits_flushes_the_releasers_magazine() {
    let alloc = Arc::new(xs_only(8));
    let mine: Vec<_> = (0..6).map(|_| alloc.allocate(b"m", 0).unwrap()).collect();
    let (to_other, other_gets) = std::sync::mpsc::channel::<()>();
    let (done, other_did) = std::sync::mpsc::channel::<()>();
    let other = {
        let alloc = alloc.clone();
        std::thread::spawn(move || {
            let a = alloc.allocate(b"o", 0).unwrap();
            let b = alloc.allocate(b"o", 0).unwrap();
            drop(a); // into this thread's magazine: invisible to the others
            done.send(()).unwrap();
            other_gets.recv().unwrap();
            drop(b); // someone waits: b and the cached a both go to the shared list
            done.send(()).unwrap();
            other_gets.recv().unwrap(); // stay alive (magazine bound) until told
        })
    };
    other_did.recv().unwrap();
    let (count, waker) = counter();
    let mut cx = Context::from_waker(&waker);
    let mut wait = Box::pin(alloc.allocate_async(b"w", 0));
    assert!(
        wait.as_mut().poll(&mut cx).is_pending(),
        "the only free slot is in the other thread's magazine"
    );
    to_other.send(()).unwrap();
    other_did.recv().unwrap();
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    let Poll::Ready(Ok(first)) = wait.as_mut().poll(&mut cx) else {
        panic!("woken but not served")
    };
    // The other thread's cached slot came along.
    let second = alloc
        .try_allocate(b"x", 0)
        .expect("the magazine was flushed");
    to_other.send(()).unwrap();
    other.join().unwrap();
    drop((mine, first, second));
}

/// A thread that exits returns the slots its magazine held, waking the waiters.
#[test]
#[cfg_attr(
    miri,
    ignore = "thread-local magazines and a helper thread: slow under miri"
)]
fn a_thread_exit_returns_its_magazine_to_waiters() {
    let alloc = Arc::new(xs_only(8));
    let mine: Vec<_> = (0..7).map(|_| alloc.allocate(b"m", 0).unwrap()).collect();
    let (go, exit) = std::sync::mpsc::channel::<()>();
    let (cached, other_cached) = std::sync::mpsc::channel::<()>();
    let other = {
        let alloc = alloc.clone();
        std::thread::spawn(move || {
            drop(alloc.allocate(b"o", 0).unwrap()); // cached in this thread's magazine
            cached.send(()).unwrap();
            exit.recv().unwrap();
        })
    };
    other_cached.recv().unwrap();
    let (count, waker) = counter();
    let mut cx = Context::from_waker(&waker);
    let mut wait = Box::pin(alloc.allocate_async(b"w", 0));
    assert!(wait.as_mut().poll(&mut cx).is_pending());
    go.send(()).unwrap();
    other.join().unwrap(); // its thread-local destructor has run
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert!(matches!(wait.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
    drop(mine);
}

#[test]
fn reservations_wait_for_a_slot_too() {
    let alloc = xs_only(1);
    assert!(matches!(
        alloc.reserve_timeout(PoolId::MAX_POOLED + 1, 0, FOREVER),
        Err(AllocError::TooLarge { .. })
    ));
    let held = alloc
        .reserve_timeout(1, 0, Duration::ZERO)
        .unwrap()
        .freeze();
    assert_eq!(
        alloc.reserve_timeout(1, 0, Duration::ZERO).unwrap_err(),
        AllocError::PoolExhausted { pool: PoolId::XS }
    );
    assert_eq!(
        alloc.stats().pool(PoolId::XS).failures,
        1,
        "one refusal, one failure"
    );
    let (count, waker) = counter();
    let mut cx = Context::from_waker(&waker);
    let mut wait = Box::pin(alloc.reserve_async(1, 6));
    assert!(wait.as_mut().poll(&mut cx).is_pending());
    drop(held);
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    let Poll::Ready(Ok(builder)) = wait.as_mut().poll(&mut cx) else {
        panic!("woken but not served")
    };
    assert_eq!(builder.event_type(), 6);
    // A waiting reservation is woken when an unfinished builder goes back.
    let mut again = Box::pin(alloc.reserve_async(1, 0));
    assert!(again.as_mut().poll(&mut cx).is_pending());
    drop(builder);
    assert!(matches!(again.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
    let mut too_big = Box::pin(alloc.reserve_async(PoolId::MAX_POOLED + 1, 0));
    assert!(matches!(
        too_big.as_mut().poll(&mut cx),
        Poll::Ready(Err(AllocError::TooLarge { .. }))
    ));
}
