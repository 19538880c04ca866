//! Loom models of the core protocols. Run with
//! `RUSTFLAGS="--cfg loom -C debug-assertions=on" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_core`.
//!
//! Each model is small and named after the race it explores. Payload accesses are
//! checked for causality through the slot's loom cell (see `slot.rs`).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use slotring::{EventAllocator, RingBuffer, RingPtr};

/// Three holders drop clones of one handle concurrently; the slot comes back exactly
/// once, and the next writer's write is ordered after every holder's read.
#[test]
fn concurrent_clone_drop_to_zero_then_reuse() {
    loom::model(|| {
        let pool = Arc::new(RingBuffer::<8, 1>::new());
        let p = pool.alloc(7u64).unwrap();
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let mine = p.clone();
                thread::spawn(move || {
                    assert_eq!(*mine, 7);
                    drop(mine);
                })
            })
            .collect();
        assert_eq!(*p, 7);
        drop(p);
        for h in handles {
            h.join().unwrap();
        }
        let q = pool.alloc(8u64).expect("the only slot must be free again");
        assert_eq!(*q, 8);
        assert_eq!(pool.stats().in_use, 1);
    });
}

/// Three threads allocate and release through a two-slot pool whose slots start on the
/// free list: pops and pushes race, and the list never hands one slot to two threads at
/// once (each thread's value survives a yield).
#[test]
fn free_list_push_pop_under_contention() {
    loom::model(|| {
        let pool = Arc::new(RingBuffer::<8, 2>::new());
        drop((pool.alloc(0u64).unwrap(), pool.alloc(0u64).unwrap()));
        let handles: Vec<_> = (1..=3u64)
            .map(|value| {
                let pool = pool.clone();
                thread::spawn(move || {
                    if let Ok(p) = pool.alloc(value) {
                        thread::yield_now();
                        assert_eq!(*p, value, "slot shared by two live handles");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(pool.stats().in_use, 0);
        let a = pool.alloc(1u64).unwrap();
        let b = pool.alloc(2u64).unwrap();
        assert!(pool.alloc(3u64).is_err());
        assert_eq!((*a, *b), (1, 2));
    });
}

/// A weak upgrade races the last drop while a third thread reuses the slot: the upgrade
/// either wins (and sees the old value, keeping the slot) or fails; it never sees the
/// new value.
#[test]
fn upgrade_races_last_drop_and_reuse() {
    loom::model(|| {
        let pool = Arc::new(RingBuffer::<8, 1>::new());
        let p = pool.alloc(1u64).unwrap();
        let weak = RingPtr::downgrade(&p);
        let upgrader = thread::spawn(move || {
            if let Some(q) = weak.upgrade() {
                assert_eq!(*q, 1, "upgraded into a later life of the slot");
            }
        });
        let dropper = thread::spawn(move || drop(p));
        let pool2 = pool.clone();
        let reuser = thread::spawn(move || {
            if let Ok(r) = pool2.alloc(2u64) {
                assert_eq!(*r, 2);
            }
        });
        upgrader.join().unwrap();
        dropper.join().unwrap();
        reuser.join().unwrap();
        assert_eq!(pool.stats().in_use, 0);
    });
}

/// The owner is dropped while other threads drop the last strong and the last weak
/// handles: the storage is freed exactly once, after every access (loom tracks the
/// pool's allocation and reports a leak or a double free).
#[test]
fn owner_drop_races_last_handles() {
    loom::model(|| {
        let alloc = EventAllocator::builder()
            .capacities([2, 0, 0, 0, 0])
            .heap_fallback(false)
            .spill(false)
            .build()
            .unwrap();
        let a = alloc.allocate(b"a", 1).unwrap();
        let b = alloc.allocate(b"b", 2).unwrap();
        let weak = RingPtr::downgrade(&b);
        let t1 = thread::spawn(move || assert_eq!(a.payload(), b"a"));
        let t2 = thread::spawn(move || {
            assert_eq!(b.payload(), b"b");
            drop(b);
            drop(weak);
        });
        drop(alloc);
        t1.join().unwrap();
        t2.join().unwrap();
    });
}

/// Tokens: one thread takes a parked reference back while another releases its own
/// handle; the slot stays live until the token's handle drops, and a second take fails.
#[test]
fn token_take_races_release() {
    loom::model(|| {
        let alloc = Arc::new(
            EventAllocator::builder()
                .capacities([1, 0, 0, 0, 0])
                .heap_fallback(false)
                .spill(false)
                .build()
                .unwrap(),
        );
        let ev = alloc.allocate(b"tok", 3).unwrap();
        let token = RingPtr::into_raw(ev.clone()).unwrap();
        let alloc2 = alloc.clone();
        let taker = thread::spawn(move || {
            let back = alloc2
                .from_raw(token)
                .expect("a parked reference is taken once");
            assert_eq!(back.payload(), b"tok");
            assert!(alloc2.from_raw(token).is_err());
        });
        drop(ev);
        taker.join().unwrap();
        assert_eq!(alloc.stats().total_in_use(), 0);
        assert!(alloc.from_raw(token).is_err());
    });
}
