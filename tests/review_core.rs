//! Adversarial review of the core allocator (magazines, waiting, writing in place): one
//! test per finding, each failing on the reviewed code and passing since its fix (a
//! waker's panic is caught in `WaitList::wake_all`; `cache::flush` clears its busy flag
//! before it returns the slots). Each test explains its scenario.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use slotring::{Event, EventAllocator, PoolId, RingPtr};

/// Counts its wake-ups.
struct CountWaker(AtomicUsize);
impl Wake for CountWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Panics on every wake-up (a buggy executor's waker).
struct PanicWaker;
impl Wake for PanicWaker {
    fn wake(self: Arc<Self>) {
        panic!("review: this waker panics");
    }
}

/// Drops the event it holds when woken (a task's waker whose wake-up releases a slot,
/// e.g. an executor that drops a finished task, and with it the events it owned).
struct DropOnWake(Mutex<Option<RingPtr<Event>>>);
impl Wake for DropOnWake {
    fn wake(self: Arc<Self>) {
        let held = self.0.lock().unwrap().take();
        drop(held);
    }
}

fn fill(alloc: &EventAllocator, payload: &[u8]) -> Vec<RingPtr<Event>> {
    let mut held = Vec::new();
    while let Ok(ev) = alloc.try_allocate(payload, 0) {
        held.push(ev);
    }
    held
}

/// Scenario: two tasks wait for a slot of a full class (`allocate_async`). The first
/// task's waker panics. A slot is released (the release's panic is caught).
///
/// Expected: the second task is woken, by this release or at the latest by the next
/// one (a waker of one task must not cost another task its wake-ups).
///
/// Actual: `WaitList::wake_all` takes both wakers out of the list into a batch; the
/// first `wake()` panics and the rest of the batch is dropped without being woken. The
/// second task's entry now holds no waker, so every later `wake_all` skips it too: it
/// is never woken again (an executor-driven task hangs for ever), although slots are
/// free. Severity: hang (lost wake-up).
#[test]
fn a_panicking_waker_loses_the_wake_ups_of_the_other_tasks() {
    let alloc = EventAllocator::builder()
        .capacity(PoolId::XS, 1)
        .build()
        .unwrap();
    let held = alloc.try_allocate(b"held", 0).unwrap();

    let panicking = Waker::from(Arc::new(PanicWaker));
    let counter = Arc::new(CountWaker(AtomicUsize::new(0)));
    let counting = Waker::from(counter.clone());

    let mut first = Box::pin(alloc.allocate_async(b"one", 0));
    let mut second = Box::pin(alloc.allocate_async(b"two", 0));
    assert!(
        first
            .as_mut()
            .poll(&mut Context::from_waker(&panicking))
            .is_pending()
    );
    assert!(
        second
            .as_mut()
            .poll(&mut Context::from_waker(&counting))
            .is_pending()
    );

    // The release wakes the tasks; the first waker panics.
    let _ = catch_unwind(AssertUnwindSafe(|| drop(held)));
    // Another release of the class, with the first task gone: no panicking waker left.
    drop(first);
    let again = alloc.try_allocate(b"again", 0);
    drop(again);

    assert!(
        counter.0.load(Ordering::SeqCst) > 0,
        "the second task was never woken although its class had free slots"
    );
    // And it would indeed have found a slot.
    assert!(matches!(
        second.as_mut().poll(&mut Context::from_waker(&counting)),
        Poll::Ready(Ok(_))
    ));
}

/// Scenario: thread T caches a slot `a` of the XS pool in its magazine and holds
/// another, `b`. The rest of the pool is taken; a task waits for the class with a waker
/// that panics. T drops `b`: the release sees the waiting hint, flushes T's magazine
/// (`cache::flush`, under the `busy` flag), whose push wakes the task, whose waker
/// panics. The panic is caught; then every event is dropped and T exits.
///
/// Expected: every slot is free again afterwards: 64 allocations succeed (a panicking
/// waker may fail its own task, but must not lose slots of the pool).
///
/// Actual: the panic unwinds out of `flush` before `release_slot_slow` returns the
/// released slot `b` itself, so `b` is neither live nor on any free list: the pool
/// serves only 63 slots for ever. The panic also leaves T's `busy` flag set (so its
/// exit skips the unbinding) and `push_cold`'s extra keepalive unit taken (the pool's
/// storage is never freed). Severity: leak (of a slot, a pool's storage).
#[test]
fn a_panicking_waker_during_a_magazine_flush_leaks_the_released_slot() {
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
            drop(a); // binds T's magazine to the pool, keeps `a` there
            t_tx.send(()).unwrap();
            t_rx.recv().unwrap();
            let _ = catch_unwind(AssertUnwindSafe(|| drop(b)));
            t_tx.send(()).unwrap();
        })
    };
    from_t.recv().unwrap();
    let held = fill(&alloc, b"x");
    assert_eq!(held.len(), CAPACITY - 2);
    let panicking = Waker::from(Arc::new(PanicWaker));
    let mut waiting = Box::pin(alloc.allocate_async(b"w", 0));
    assert!(
        waiting
            .as_mut()
            .poll(&mut Context::from_waker(&panicking))
            .is_pending()
    );
    to_t.send(()).unwrap();
    from_t.recv().unwrap();
    t.join().unwrap();
    drop(waiting);
    drop(held);

    let all = fill(&alloc, b"y");
    assert_eq!(
        all.len(),
        CAPACITY,
        "a slot of the pool was lost (stats: {:?})",
        alloc.stats().pool(PoolId::XS)
    );
}

/// Scenario (re-entrancy): thread T holds slots `a`, `b` of the XS pool in its
/// magazine, and an event `c` of it. The XS pool is otherwise full and two tasks wait
/// for it. T's magazine of the S pool holds a slot too; the S pool is full and a task
/// waits for it with a waker that drops `c` when woken. T drops an S event: its release
/// flushes T's S magazine under the `busy` flag, the push wakes the S task, and its
/// waker, running on T inside that slow path, drops `c`.
///
/// Expected (module docs of `waiting`: "every release of a slot of the pool goes to
/// the shared list instead, and the releasing thread sends its whole magazine of that
/// pool along"; a waiter waits in vain for slots cached before it began "only while
/// that thread neither frees a slot of the class nor exits"): T freed a slot of the
/// class, so its whole XS magazine (`a`, `b`) reaches the shared list with `c`, and
/// both XS tasks get a slot.
///
/// Actual: the release of `c` runs re-entered, `cache::flush` is refused because `busy`
/// is set, so only `c` is pushed; `a` and `b` stay in T's magazine (T lives on), and the
/// second XS task waits although T has freed a slot of the class. Severity: lost
/// wake-up / doc mismatch.
#[test]
fn a_release_inside_a_slow_path_does_not_flush_the_magazine_for_waiters() {
    const CAPACITY: usize = 64;
    let alloc = Arc::new(
        EventAllocator::builder()
            .capacity(PoolId::XS, CAPACITY)
            .capacity(PoolId::S, CAPACITY)
            .build()
            .unwrap(),
    );
    let big = [7u8; 100];
    let (to_t, t_rx) = std::sync::mpsc::channel::<()>();
    let (t_tx, from_t) = std::sync::mpsc::channel::<Option<RingPtr<Event>>>();
    let t = {
        let alloc = alloc.clone();
        std::thread::spawn(move || {
            let a = alloc.try_allocate(b"a", 0).unwrap();
            let b = alloc.try_allocate(b"b", 0).unwrap();
            let c = alloc.try_allocate(b"c", 0).unwrap();
            drop(a);
            drop(b); // T's XS magazine: [a, b] (its limit is 2)
            let s1 = alloc.try_allocate(&big, 0).unwrap();
            let s2 = alloc.try_allocate(&big, 0).unwrap();
            drop(s1); // T's S magazine: [s1]
            t_tx.send(Some(c)).unwrap();
            t_rx.recv().unwrap();
            drop(s2); // flushes [s1] under `busy`, wakes the S task, which drops `c`
            t_tx.send(None).unwrap();
            // Stay alive (the magazine bound) until the main thread has looked.
            t_rx.recv().ok();
        })
    };
    let c = from_t.recv().unwrap().unwrap();
    let held_xs = fill(&alloc, b"x");
    assert_eq!(held_xs.len(), CAPACITY - 3);
    let held_s = {
        let mut held = Vec::new();
        while let Ok(ev) = alloc.try_allocate(&big, 0) {
            held.push(ev);
        }
        held
    };
    assert_eq!(held_s.len(), CAPACITY - 2);

    let noop = Waker::noop();
    let mut xs1 = Box::pin(alloc.allocate_async(b"w1", 0));
    let mut xs2 = Box::pin(alloc.allocate_async(b"w2", 0));
    assert!(
        xs1.as_mut()
            .poll(&mut Context::from_waker(noop))
            .is_pending()
    );
    assert!(
        xs2.as_mut()
            .poll(&mut Context::from_waker(noop))
            .is_pending()
    );
    let dropper = Waker::from(Arc::new(DropOnWake(Mutex::new(Some(c)))));
    let mut s_task = Box::pin(alloc.allocate_async(&big, 0));
    assert!(
        s_task
            .as_mut()
            .poll(&mut Context::from_waker(&dropper))
            .is_pending()
    );

    to_t.send(()).unwrap();
    assert!(from_t.recv().unwrap().is_none());
    // T has now freed `c` (a slot of XS) and the XS tasks should both find a slot...
    let first = xs1.as_mut().poll(&mut Context::from_waker(noop));
    let second = xs2.as_mut().poll(&mut Context::from_waker(noop));
    to_t.send(()).ok();
    t.join().unwrap();
    assert!(matches!(first, Poll::Ready(Ok(_))), "first XS task");
    assert!(
        matches!(second, Poll::Ready(Ok(_))),
        "second XS task still waits although T freed a slot of XS while its magazine \
         held two more"
    );
    drop((held_xs, held_s, s_task));
}

/// Scenario: thread T caches a free slot of the XS pool in its magazine; the rest of
/// the pool is taken and a task waits for the class with a waker that panics (a buggy
/// executor). T exits: its `UNBIND_AT_EXIT` destructor returns the cached slot, whose
/// push wakes the task.
///
/// Expected: at worst the panic is confined (as when an event is dropped normally: the
/// panic unwinds out of the drop and can be caught), the process survives.
///
/// Actual: `wake_all` lets the waker's panic unwind out of the thread-local destructor,
/// and a panic in a thread-local destructor aborts the whole process. (Run in a child
/// process, which this test spawns; the child aborts.) Severity: abort.
#[test]
#[cfg_attr(miri, ignore = "spawns a child process")]
fn a_panicking_waker_aborts_the_process_when_a_thread_exits() {
    const CHILD: &str = "SLOTRING_REVIEW_CORE_CHILD";
    if std::env::var_os(CHILD).is_some() {
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
                drop(a); // cached in T's magazine
                t_tx.send(()).unwrap();
                t_rx.recv().unwrap();
                // T exits: its magazine goes back, waking the panicking task.
            })
        };
        from_t.recv().unwrap();
        let held = fill(&alloc, b"x");
        let panicking = Waker::from(Arc::new(PanicWaker));
        let mut waiting = Box::pin(alloc.allocate_async(b"w", 0));
        assert!(
            waiting
                .as_mut()
                .poll(&mut Context::from_waker(&panicking))
                .is_pending()
        );
        to_t.send(()).unwrap();
        let _ = t.join();
        drop((waiting, held));
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_panicking_waker_aborts_the_process_when_a_thread_exits",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the child process died: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

// Scenarios the review tried that held, kept as regression tests.

/// The control case of `a_release_inside_a_slow_path_...` above: a release of a
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
