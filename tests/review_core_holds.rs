//! Adversarial review of the core allocator: scenarios tried that held (kept as cheap
//! regression tests).

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use slotring::{Event, EventAllocator, PoolId, RingPtr};

fn fill(alloc: &EventAllocator, payload: &[u8]) -> Vec<RingPtr<Event>> {
    let mut held = Vec::new();
    while let Ok(ev) = alloc.try_allocate(payload, 0) {
        held.push(ev);
    }
    held
}

/// The control case of `review_core::a_release_inside_a_slow_path_...`: a release of a
/// slot made outside any slow path flushes the releasing thread's whole magazine, so two
/// waiting tasks both find a slot.
#[test]
fn a_plain_release_flushes_the_magazine_for_waiters() {
    const CAPACITY: usize = 64;
    let alloc = Arc::new(
        EventAllocator::builder()
            .capacity(PoolId::XS, CAPACITY)
            .build()
            .unwrap(),
    );
    let (to_t, t_rx) = std::sync::mpsc::channel::<()>();
    let (t_tx, from_t) = std::sync::mpsc::channel::<()>();
    let t = {
        let alloc = alloc.clone();
        std::thread::spawn(move || {
            let a = alloc.try_allocate(b"a", 0).unwrap();
            let b = alloc.try_allocate(b"b", 0).unwrap();
            let c = alloc.try_allocate(b"c", 0).unwrap();
            drop(a);
            drop(b);
            t_tx.send(()).unwrap();
            t_rx.recv().unwrap();
            drop(c);
            t_tx.send(()).unwrap();
            t_rx.recv().ok();
        })
    };
    from_t.recv().unwrap();
    let held = fill(&alloc, b"x");
    assert_eq!(held.len(), CAPACITY - 3);
    let noop = Waker::noop();
    let mut w1 = Box::pin(alloc.allocate_async(b"w1", 0));
    let mut w2 = Box::pin(alloc.allocate_async(b"w2", 0));
    let mut w3 = Box::pin(alloc.allocate_async(b"w3", 0));
    assert!(
        w1.as_mut()
            .poll(&mut Context::from_waker(noop))
            .is_pending()
    );
    assert!(
        w2.as_mut()
            .poll(&mut Context::from_waker(noop))
            .is_pending()
    );
    assert!(
        w3.as_mut()
            .poll(&mut Context::from_waker(noop))
            .is_pending()
    );
    to_t.send(()).unwrap();
    from_t.recv().unwrap();
    let polls = [
        w1.as_mut().poll(&mut Context::from_waker(noop)).is_ready(),
        w2.as_mut().poll(&mut Context::from_waker(noop)).is_ready(),
        w3.as_mut().poll(&mut Context::from_waker(noop)).is_ready(),
    ];
    to_t.send(()).ok();
    t.join().unwrap();
    assert_eq!(polls, [true, true, true]);
    drop(held);
}

/// A stale token and a weak handle of a slot's previous life see nothing while the slot
/// is reserved for a builder, nor after it is frozen; an unfinished builder, a panic in
/// `allocate_with`'s closure and a failed fill all give the slot back.
#[test]
fn stale_handles_of_a_reserved_slot_see_nothing() {
    let alloc = EventAllocator::builder()
        .capacity(PoolId::XS, 1)
        .build()
        .unwrap();
    let ev = alloc.try_allocate(b"old", 0).unwrap();
    let weak = RingPtr::downgrade(&ev);
    let token = RingPtr::into_raw(ev.clone()).unwrap();
    assert!(alloc.from_raw(token).is_ok()); // takes the hold back, dropped at once
    drop(ev);
    assert!(weak.upgrade().is_none());

    let mut builder = alloc.reserve_in(PoolId::XS, 9).unwrap();
    std::io::Write::write_all(&mut builder, b"secret").unwrap();
    assert!(weak.upgrade().is_none());
    assert!(alloc.clone_raw(token).is_err());
    assert!(alloc.from_raw(token).is_err());
    let frozen = builder.freeze();
    assert!(weak.upgrade().is_none());
    assert!(alloc.clone_raw(token).is_err());
    assert_eq!(frozen.payload(), b"secret");
    drop(frozen);

    let unfinished = alloc.reserve_in(PoolId::XS, 0).unwrap();
    drop(unfinished);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        alloc.allocate_with(4, 0, |_buf| -> Result<(), slotring::AllocError> {
            panic!("fill panics")
        })
    }));
    assert!(panicked.is_err());
    let failed = alloc.allocate_with(4, 0, |_buf| {
        Err::<(), _>(std::io::Error::other("fill fails"))
    });
    assert!(failed.is_err());
    assert_eq!(alloc.stats().pool(PoolId::XS).in_use, 0);
    assert!(alloc.try_allocate(b"again", 0).is_ok());
}

/// A future polled again after it resolved, many waiters of one slot, and waiters
/// cancelled while registered: every slot comes back and nobody is left registered (a
/// later plain allocation still uses the magazines, i.e. the waiting hint is lowered).
#[test]
fn many_waiters_and_cancelled_futures_leave_nothing_behind() {
    let alloc = EventAllocator::builder()
        .capacity(PoolId::XS, 2)
        .build()
        .unwrap();
    let a = alloc.try_allocate(b"a", 0).unwrap();
    let b = alloc.try_allocate(b"b", 0).unwrap();
    let noop = Waker::noop();
    let mut futures: Vec<_> = (0..20)
        .map(|_| Box::pin(alloc.allocate_async(b"w", 0)))
        .collect();
    for f in &mut futures {
        assert!(f.as_mut().poll(&mut Context::from_waker(noop)).is_pending());
    }
    drop(a);
    let mut ready = Vec::new();
    for f in &mut futures {
        if let Poll::Ready(ev) = f.as_mut().poll(&mut Context::from_waker(noop)) {
            ready.push(ev.unwrap());
        }
    }
    assert_eq!(ready.len(), 1);
    drop(futures);
    drop((ready, b));
    assert_eq!(alloc.stats().pool(PoolId::XS).in_use, 0);
    let both = fill(&alloc, b"z");
    assert_eq!(both.len(), 2);
}
