//! The per-thread magazines of free slots: they speed up same-thread reuse, but must
//! never lose a slot, hoard a pool, or keep freed storage alive forever.
#![cfg(not(loom))]

use std::thread;

use slotring::{EventAllocator, PoolId, RingBuffer};

#[test]
fn a_thread_reuses_its_own_freed_slot() {
    let pool = RingBuffer::<64, 64>::new();
    let first = pool.alloc(1u64).unwrap();
    let index = slotring::RingPtr::slot_index(&first);
    drop(first);
    let second = pool.alloc(2u64).unwrap();
    assert_eq!(slotring::RingPtr::slot_index(&second), index);
    assert_eq!(*second, 2);
}

#[test]
fn magazines_hold_at_most_an_eighth_of_a_pool() {
    let pool = RingBuffer::<64, 64>::new();
    // One thread fills the pool and frees everything: its magazine may keep a few.
    // (Threads are joined explicitly: a join waits for the thread's thread-local
    // destructors, which return its magazines; the end of a scope does not.)
    thread::scope(|s| {
        s.spawn(|| {
            let all: Vec<_> = (0..64u64).map(|i| pool.alloc(i).unwrap()).collect();
            drop(all);
            // While this thread is alive, another must still find most of the pool.
            thread::scope(|s2| {
                s2.spawn(|| {
                    let got: Vec<_> = (0..64u64).map_while(|i| pool.alloc(i).ok()).collect();
                    assert!(
                        got.len() >= 64 - 8,
                        "magazines hoarded {} slots",
                        64 - got.len()
                    );
                })
                .join()
                .unwrap();
            });
        })
        .join()
        .unwrap();
    });
    // Both threads have exited: their magazines went back, the whole pool is free.
    let all: Vec<_> = (0..64u64).map_while(|i| pool.alloc(i).ok()).collect();
    assert_eq!(all.len(), 64, "slots lost in exited threads' magazines");
}

#[test]
fn many_pools_on_one_thread_rebind_magazines_without_losing_slots() {
    let pools: Vec<RingBuffer<8, 16>> = (0..20).map(|_| RingBuffer::new()).collect();
    for round in 0..3u64 {
        for pool in &pools {
            let held: Vec<_> = (0..16)
                .map(|i| pool.alloc(round * 100 + i).unwrap())
                .collect();
            assert!(pool.alloc(0u64).is_err(), "a pool handed out a live slot");
            drop(held);
        }
    }
    for pool in &pools {
        let all: Vec<_> = (0..16u64).map_while(|i| pool.alloc(i).ok()).collect();
        assert_eq!(all.len(), 16);
        assert_eq!(pool.stats().in_use, 16);
    }
}

#[test]
fn allocator_dropped_while_another_thread_caches_its_slots() {
    let alloc = EventAllocator::new();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let held = alloc.allocate(b"outlives the allocator", 1).unwrap();
    thread::scope(|s| {
        let alloc = &alloc;
        let worker = s.spawn(move || {
            // Free a few slots into this thread's magazine, then wait.
            for i in 0..10u8 {
                drop(alloc.allocate(&[i; 100], 0).unwrap());
            }
            done_tx.send(()).unwrap();
            rx.recv().unwrap();
        });
        done_rx.recv().unwrap();
        assert_eq!(alloc.stats().pool(PoolId::S).in_use, 0);
        tx.send(()).unwrap();
        worker.join().unwrap();
    });
    drop(alloc);
    // The handle keeps its pool alive; miri checks the storage of every pool is freed
    // exactly once, after both the magazine's thread exited and this handle dropped.
    assert_eq!(held.payload(), b"outlives the allocator");
    drop(held);
}

#[test]
fn releases_after_the_owner_is_gone_bypass_the_magazine() {
    let alloc = EventAllocator::new();
    let events: Vec<_> = (0..5u8).map(|i| alloc.allocate(&[i], 0).unwrap()).collect();
    drop(alloc);
    for (i, ev) in events.iter().enumerate() {
        assert_eq!(ev.payload(), &[i as u8]);
    }
    drop(events); // returned straight to the closed pool; the last one frees it
}

/// Fewer threads under miri, which runs about a thousand times slower.
const fn scaled(native: usize, miri: usize) -> usize {
    if cfg!(miri) { miri } else { native }
}

/// Runs `workers` threads that each run `work`, then stay alive (idle, like a thread
/// pool's workers) while `check` runs on this thread; then lets them exit.
fn with_idle_workers(workers: usize, work: impl Fn() + Sync, check: impl FnOnce()) {
    let ready = std::sync::Barrier::new(workers + 1);
    let release = std::sync::Barrier::new(workers + 1);
    thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    work();
                    ready.wait();
                    release.wait();
                })
            })
            .collect();
        ready.wait();
        // Let the workers go even if the check fails, or the scope would wait forever.
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
        release.wait();
        for h in handles {
            h.join().unwrap();
        }
        if let Err(panic) = checked {
            std::panic::resume_unwind(panic);
        }
    });
}

/// Issue 11, part 2: eight idle workers that each allocated and dropped once used to
/// keep every slot of an 8-slot pool in their magazines, so `alloc` failed while
/// `in_use == 0`. Now at most an eighth of a pool is cached in all magazines together.
#[test]
fn idle_workers_do_not_hoard_a_small_ring_buffer() {
    let pool = RingBuffer::<64, 8>::new();
    with_idle_workers(
        8,
        || drop(pool.alloc(1u64).unwrap()),
        || {
            assert_eq!(pool.stats().in_use, 0);
            let got: Vec<_> = (0..8u64).map_while(|i| pool.alloc(i).ok()).collect();
            assert!(
                got.len() >= 7,
                "idle magazines hoarded {} of 8",
                8 - got.len()
            );
        },
    );
}

/// The same with workers that each churn through bursts: the magazines together never
/// hold more than capacity / 8 free slots.
#[test]
fn busy_then_idle_workers_hold_at_most_an_eighth_in_total() {
    const CAPACITY: usize = 512;
    let pool = RingBuffer::<64, CAPACITY>::new();
    with_idle_workers(
        scaled(24, 4),
        || {
            for _ in 0..3 {
                let burst: Vec<_> = (0..40u64).map_while(|i| pool.alloc(i).ok()).collect();
                drop(burst);
            }
        },
        || {
            assert_eq!(pool.stats().in_use, 0);
            let got: Vec<_> = (0..CAPACITY as u64)
                .map_while(|i| pool.alloc(i).ok())
                .collect();
            assert!(
                got.len() >= CAPACITY - CAPACITY / 8,
                "magazines hoarded {} of {CAPACITY}",
                CAPACITY - got.len()
            );
        },
    );
}

/// Every class of the default allocator: idle workers that allocated and dropped in
/// that class leave at least 7/8 of it to others (before the budget, 15 idle workers
/// pinned the whole XL class, and every XL event went to the heap).
#[test]
fn idle_workers_do_not_hoard_any_allocator_class() {
    // The default capacities natively; under miri, which copies every byte slowly, the
    // smallest pools with a cache budget in every class.
    let alloc = if cfg!(miri) {
        EventAllocator::builder()
            .capacities([64, 32, 16, 16, 15])
            .build()
            .unwrap()
    } else {
        EventAllocator::new()
    };
    for class in PoolId::ALL {
        let capacity = alloc.capacity(class);
        let len = if cfg!(miri) { 1 } else { class.max_size() };
        let small = vec![1; len];
        with_idle_workers(
            scaled(16, 3),
            || {
                let burst: Vec<_> = (0..64)
                    .map_while(|_| alloc.try_allocate_in(class, &small, 0).ok())
                    .collect();
                drop(burst);
            },
            || {
                assert_eq!(alloc.stats().total_in_use(), 0);
                let payload = vec![2; len];
                let got: Vec<_> = (0..capacity)
                    .map_while(|_| alloc.try_allocate_in(class, &payload, 0).ok())
                    .collect();
                assert!(
                    got.len() >= capacity - capacity / 8,
                    "{class:?}: idle magazines hoarded {} of {capacity}",
                    capacity - got.len()
                );
                drop(got);
                // And with spilling on, an event of this class never goes to the heap.
                let heap_before = alloc.stats().heap.allocations;
                drop(alloc.allocate(&payload, 0).unwrap());
                assert_eq!(alloc.stats().heap.allocations, heap_before, "{class:?}");
            },
        );
    }
}

/// `stats()` reads the slots' own state words, so once nothing runs its `in_use` and
/// `allocations` are exact, however many freed slots sit in magazines of threads alive or
/// gone, and whichever thread allocated or dropped.
#[test]
fn stats_are_exact_when_quiescent() {
    let alloc = EventAllocator::new();
    let per_thread = if cfg!(miri) { 12 } else { 400 };
    let held: Vec<_> = thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut events: Vec<_> = (0..per_thread)
                        .map(|i| alloc.allocate(&[i as u8; 48], 1).unwrap())
                        .collect();
                    // Half dropped here (into this thread's magazine), half handed back.
                    events.truncate(per_thread / 2);
                    events
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let xs = *alloc.stats().pool(PoolId::XS);
    assert_eq!(xs.in_use, per_thread);
    assert_eq!(xs.allocations, 2 * per_thread as u64);
    drop(held);
    let again = alloc.allocate(&[0; 48], 1).unwrap();
    let xs = *alloc.stats().pool(PoolId::XS);
    assert_eq!((xs.in_use, xs.allocations), (1, 2 * per_thread as u64 + 1));
    drop(again);
    assert_eq!(alloc.stats().total_in_use(), 0);
}
