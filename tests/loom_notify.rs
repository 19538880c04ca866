//! Loom models of the wait/wake handshake of `src/notify.rs` (no lost wake-up). Run with
//! `RUSTFLAGS="--cfg loom -C debug-assertions=on" LOOM_MAX_PREEMPTIONS=2 cargo test --release --all-features --test loom_notify`.
//!
//! The module is crate-private, so this file compiles it (and the `sync` facade it uses)
//! straight from the sources: the models run exactly the code that ships. A lost
//! wake-up shows as a deadlock (every thread blocked), which loom reports.
//!
//! The fence protocol is modelled here on a plain flag; the read-modify-write protocol
//! of the allocator's pools is modelled through the public API (`allocate_timeout`,
//! `allocate_async`) in the second half.
#![cfg(loom)]
#![allow(dead_code, unreachable_pub, unused_imports, unused_macros)]

#[path = "../src/sync.rs"]
mod sync;

#[path = "../src/notify.rs"]
mod notify;

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;
use notify::{AtomicFlag, Registration, WaitList};

/// The fence protocol's shared state: a condition, its list and flag.
struct Cond {
    list: WaitList,
    flag: AtomicFlag,
    /// Events published so far; waiters wait for `target` of them.
    published: AtomicUsize,
}

impl Cond {
    fn new() -> Self {
        Self {
            list: WaitList::new(),
            flag: AtomicFlag::new(),
            published: AtomicUsize::new(0),
        }
    }

    fn publish(&self) {
        // Relaxed: the handshake's fences order it against the waiters' re-checks.
        self.published.fetch_add(1, Ordering::Relaxed);
        self.flag.notify_after_fence(&self.list);
    }

    fn reached(&self, target: usize) -> Option<()> {
        // Relaxed: as in `publish`.
        (self.published.load(Ordering::Relaxed) >= target).then_some(())
    }

    fn wait_blocking(&self, target: usize) {
        assert_eq!(
            self.list.wait(&self.flag, None, || self.reached(target)),
            Some(())
        );
    }

    fn wait_async(&self, target: usize) {
        loom::future::block_on(WaitFor {
            cond: self,
            target,
            registration: Registration::default(),
        });
    }
}

/// A future that completes when `target` events are published.
struct WaitFor<'a> {
    cond: &'a Cond,
    target: usize,
    registration: Registration,
}

impl Future for WaitFor<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let (cond, target) = (this.cond, this.target);
        cond.list
            .poll_wait(&cond.flag, &mut this.registration, cx.waker(), || {
                cond.reached(target)
            })
    }
}

impl Drop for WaitFor<'_> {
    fn drop(&mut self) {
        self.cond
            .list
            .cancel(&self.cond.flag, &mut self.registration);
    }
}

fn spawn_publisher(cond: &Arc<Cond>) -> thread::JoinHandle<()> {
    let cond = cond.clone();
    thread::spawn(move || cond.publish())
}

/// A blocked thread and a publisher: the publisher's flag test and the waiter's
/// re-check race; one of them must see the other.
#[test]
fn blocking_waiter_and_publisher() {
    loom::model(|| {
        let cond = Arc::new(Cond::new());
        let publisher = spawn_publisher(&cond);
        cond.wait_blocking(1);
        publisher.join().unwrap();
        assert_eq!(cond.list.waiters(), 0);
    });
}

/// A task and a publisher: the waker is stored under the lock, the re-check runs after
/// the fence, the publisher takes the waker out under the lock.
#[test]
fn async_waiter_and_publisher() {
    loom::model(|| {
        let cond = Arc::new(Cond::new());
        let publisher = spawn_publisher(&cond);
        cond.wait_async(1);
        publisher.join().unwrap();
        assert_eq!(cond.list.waiters(), 0);
    });
}

/// Two publishers, one blocked waiter that needs both: the waiter wakes, finds one
/// event, sleeps again (the epoch path), and must be woken by the second.
#[test]
fn blocking_waiter_needs_two_publications() {
    loom::model(|| {
        let cond = Arc::new(Cond::new());
        let publishers = [spawn_publisher(&cond), spawn_publisher(&cond)];
        cond.wait_blocking(2);
        for p in publishers {
            p.join().unwrap();
        }
    });
}

/// Two waiters (one blocking, one async) and one publisher: the second waiter registers
/// while the flag is already raised, and the first to leave must not lower it under the
/// other.
#[test]
fn blocking_and_async_waiters_and_one_publisher() {
    loom::model(|| {
        let cond = Arc::new(Cond::new());
        let blocking = {
            let cond = cond.clone();
            thread::spawn(move || cond.wait_blocking(1))
        };
        let publisher = spawn_publisher(&cond);
        cond.wait_async(1);
        blocking.join().unwrap();
        publisher.join().unwrap();
        assert_eq!(cond.list.waiters(), 0);
    });
}

/// A task that gives up (its future is dropped while registered) racing a publisher and
/// a blocked waiter: the cancelled registration must not swallow the wake-up.
#[test]
fn cancelled_task_does_not_swallow_the_wake_up() {
    loom::model(|| {
        let cond = Arc::new(Cond::new());
        let quitter = {
            let cond = cond.clone();
            thread::spawn(move || {
                let waker = futures_noop_waker();
                let mut cx = Context::from_waker(&waker);
                let mut fut = Box::pin(WaitFor {
                    cond: &cond,
                    target: 1,
                    registration: Registration::default(),
                });
                let _ = fut.as_mut().poll(&mut cx);
                drop(fut);
            })
        };
        let publisher = spawn_publisher(&cond);
        cond.wait_blocking(1);
        quitter.join().unwrap();
        publisher.join().unwrap();
        assert_eq!(cond.list.waiters(), 0);
    });
}

/// A waker that does nothing (the quitter never sleeps).
fn futures_noop_waker() -> core::task::Waker {
    use std::task::Wake;
    struct Noop;
    impl Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    core::task::Waker::from(std::sync::Arc::new(Noop))
}

// ---- The allocator's waits: the read-modify-write protocol on the free-list head ----

mod allocator_waits {
    use std::time::Duration;

    use loom::sync::Arc;
    use loom::thread;
    use slotring::{EventAllocator, PoolId};

    /// One XS slot, no spilling, no heap: a second event must wait for the first.
    fn one_slot() -> EventAllocator {
        EventAllocator::builder()
            .capacities([1, 0, 0, 0, 0])
            .spill(false)
            .heap_fallback(false)
            .build()
            .unwrap()
    }

    /// A blocked `allocate_timeout` and the release of the only slot: the release's push
    /// and the waiter's raise of the waiting bit race on the free-list head. The waiter
    /// then drops its event and the allocator while the releaser may still be waking it:
    /// the releaser's keepalive unit must keep the pool (and its wait list) alive.
    #[test]
    fn blocked_allocate_and_release() {
        loom::model(|| {
            let alloc = one_slot();
            let held = alloc.allocate(b"a", 0).unwrap();
            let releaser = thread::spawn(move || drop(held));
            let ev = alloc.allocate_timeout(b"b", 1, Duration::MAX).unwrap();
            assert_eq!(ev.payload(), b"b");
            drop(ev);
            drop(alloc);
            releaser.join().unwrap();
        });
    }

    /// An `allocate_async` task and the release of the only slot.
    #[test]
    fn async_allocate_and_release() {
        loom::model(|| {
            let alloc = Arc::new(one_slot());
            let held = alloc.allocate(b"a", 0).unwrap();
            let releaser = thread::spawn(move || drop(held));
            let ev = loom::future::block_on(alloc.allocate_async(b"b", 1)).unwrap();
            assert_eq!(ev.payload(), b"b");
            releaser.join().unwrap();
        });
    }

    /// Two blocked waiters for one slot, released by a third thread: the first waiter
    /// to get it releases it again, which must wake the second (the second registered
    /// while the waiting bit was already set, or after the first lowered it).
    #[test]
    fn two_waiters_share_one_slot_in_turn() {
        loom::model(|| {
            let alloc = Arc::new(one_slot());
            let held = alloc.allocate(b"a", 0).unwrap();
            let waiter = {
                let alloc = alloc.clone();
                thread::spawn(move || {
                    drop(alloc.allocate_timeout(b"w", 1, Duration::MAX).unwrap());
                })
            };
            let releaser = thread::spawn(move || drop(held));
            drop(alloc.allocate_timeout(b"m", 2, Duration::MAX).unwrap());
            waiter.join().unwrap();
            releaser.join().unwrap();
            assert_eq!(alloc.stats().pool(PoolId::XS).in_use, 0);
        });
    }
}
