//! Adversarial tests of the core (commit 02b6092): the escaped flag, tokens of every
//! kind (pooled, typed, heap), the per-thread magazines and their budget, and the C API's
//! use of heap tokens. Tests that pass are marked `// passes: coverage`; the others
//! demonstrate a bug (see the comment above each).
#![cfg(not(loom))]

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, LazyLock};
use std::thread;

use slotring::{EventAllocator, RingBuffer, RingPtr, TokenError};

/// Fewer rounds under miri, which runs about a thousand times slower.
const fn rounds(native: usize, miri: usize) -> usize {
    if cfg!(miri) { miri } else { native }
}

/// A heap-fallback payload (over 16 KiB).
const BIG: usize = 20_000;

// ---------------------------------------------------------------------------------------
// 1. The escaped flag and `get_mut`
// ---------------------------------------------------------------------------------------

/// BUG (documented behaviour not kept): `RingPtr::into_raw`'s and `get_mut`'s docs say
/// "Making a token marks the event as reachable from outside its handles, so `get_mut`
/// returns `None` for the rest of the event's life" and "every event can become a token,
/// heap-fallback events included". For a heap event `into_raw` takes the heap-table path
/// (`HeapShared::park`), which never calls `mark_escaped`; so after the token's hold is
/// taken back, `get_mut` hands out `&mut` again. (Not unsound by itself: heap clones are
/// made under the table's lock from a hold the entry owns, and a vacated entry makes
/// none; but the pooled and heap paths disagree, and the doc promise is broken.)
#[test]
fn heap_event_get_mut_stays_none_after_a_token_was_made() {
    let alloc = EventAllocator::new();
    let ev = alloc.allocate(&[1; BIG], 5).unwrap();
    assert_eq!(RingPtr::pool_id(&ev), None, "a heap event");
    let token = RingPtr::into_raw(ev).unwrap();
    let mut back = alloc.from_raw(token).unwrap();
    // The pooled path (same steps) answers None, see tests/allocator.rs.
    assert!(
        RingPtr::get_mut(&mut back).is_none(),
        "documented: once a token was made, get_mut stays None for this life \
         (heap events included)"
    );
}

/// The pooled counterpart of the test above, through a clone of a handle that never
/// became a token itself. // passes: coverage
#[test]
fn pooled_get_mut_stays_none_after_a_token_of_a_clone() {
    let alloc = EventAllocator::new();
    let mut ev = alloc.allocate(b"pooled", 1).unwrap();
    let token = RingPtr::into_raw(ev.clone()).unwrap();
    drop(alloc.from_raw(token).unwrap());
    assert_eq!(RingPtr::strong_count(&ev), 1);
    assert!(RingPtr::get_mut(&mut ev).is_none());
    // A weak handle of a RingBuffer value: the same.
    let pool = RingBuffer::<64, 4>::new();
    let mut p = pool.alloc(7u64).unwrap();
    drop(RingPtr::downgrade(&p));
    assert!(RingPtr::get_mut(&mut p).is_none());
}

/// `get_mut` writers racing `clone_raw` readers on one heap token: a reader's clone and
/// a writer's `&mut` never overlap (the heap table's lock orders them), so a reader never
/// sees a half-written payload. // passes: coverage
#[test]
fn heap_get_mut_never_overlaps_a_heap_clone_raw() {
    let alloc = EventAllocator::new();
    let iterations = rounds(300, 3);
    for _ in 0..iterations {
        let token = RingPtr::into_raw(alloc.allocate(&[0u8; BIG], 1).unwrap()).unwrap();
        let start = Barrier::new(2);
        thread::scope(|s| {
            s.spawn(|| {
                start.wait();
                if let Ok(view) = alloc.clone_raw(token) {
                    let first = view[0];
                    assert!(
                        view.iter().all(|&b| b == first),
                        "a clone saw a payload being written"
                    );
                }
            });
            start.wait();
            let mut mine = alloc.from_raw(token).unwrap();
            if let Some(bytes) = RingPtr::get_mut(&mut mine) {
                for b in bytes.iter_mut() {
                    *b = 0xAB;
                }
            }
        });
    }
    assert_eq!(alloc.stats().heap.in_use, 0);
}

// ---------------------------------------------------------------------------------------
// 2. Heap-event tokens
// ---------------------------------------------------------------------------------------

/// Several `into_raw` of clones of one heap event, one token; taken back once per park
/// and no more; `clone_raw` refused once every hold is taken; `stats().heap` counts the
/// event until the last handle goes. // passes: coverage
#[test]
fn heap_tokens_taken_more_than_parked_and_cloned_after() {
    let alloc = EventAllocator::new();
    let ev = alloc.allocate(&[3; BIG], 2).unwrap();
    let t1 = RingPtr::into_raw(ev.clone()).unwrap();
    let t2 = RingPtr::into_raw(ev.clone()).unwrap();
    assert_eq!(t1, t2);
    assert_eq!(RingPtr::strong_count(&ev), 3);
    let a = alloc.from_raw(t1).unwrap();
    let b = alloc.from_raw(t1).unwrap();
    assert_eq!(alloc.from_raw(t1).unwrap_err(), TokenError::Released);
    assert_eq!(alloc.clone_raw(t1).unwrap_err(), TokenError::Released);
    assert_eq!(alloc.stats().heap.in_use, 1);
    assert_eq!(alloc.stats().heap.allocations, 1);
    // Re-parking a hold of the live event gives the same token again (the entry stays the
    // event's while it lives, as a slot's generation does), good for one more take.
    let t3 = RingPtr::into_raw(a).unwrap();
    assert_eq!(t3, t1);
    let c = alloc.from_raw(t3).unwrap();
    assert_eq!(alloc.from_raw(t1).unwrap_err(), TokenError::Released);
    drop((b, c, ev));
    assert_eq!(alloc.stats().heap.in_use, 0);
    assert_eq!(alloc.from_raw(t3).unwrap_err(), TokenError::Released);
}

/// Entries are reused by other events; a token of a vacated entry is refused even after
/// many reuses, and each event's payload is the one its own token names.
/// // passes: coverage
#[test]
fn heap_entries_reused_by_other_events_refuse_old_tokens() {
    let alloc = EventAllocator::new();
    let mut old = Vec::new();
    for i in 0..rounds(50, 5) {
        let byte = i as u8;
        let token = RingPtr::into_raw(alloc.allocate(&[byte; BIG], i as u32).unwrap()).unwrap();
        for &stale in &old {
            assert!(alloc.from_raw(stale).is_err());
            assert!(alloc.clone_raw(stale).is_err());
        }
        let ev = alloc.from_raw(token).unwrap();
        assert_eq!((ev[0], ev.event_type()), (byte, i as u32));
        old.push(token);
    }
    assert_eq!(alloc.stats().heap.in_use, 0);
}

/// Heap tokens of one allocator are refused by another (both tables have entry 0 with
/// sequence 1; only the keys differ), and so are pooled tokens between allocators and
/// ring buffers of different sizes. // passes: coverage
#[test]
fn tokens_cross_nothing() {
    let a = EventAllocator::new();
    let b = EventAllocator::new();
    let ta = RingPtr::into_raw(a.allocate(&[1; BIG], 0).unwrap()).unwrap();
    let tb = RingPtr::into_raw(b.allocate(&[2; BIG], 0).unwrap()).unwrap();
    assert_ne!(ta, tb, "same entry, same sequence, different keys");
    assert!(a.from_raw(tb).is_err() && b.from_raw(ta).is_err());
    assert!(a.clone_raw(tb).is_err() && b.clone_raw(ta).is_err());
    let r64 = RingBuffer::<64, 8>::new();
    let r128 = RingBuffer::<128, 8>::new();
    let t64 = RingPtr::into_raw(r64.alloc(1u64).unwrap()).unwrap();
    let t128 = RingPtr::into_raw(r128.alloc(2u64).unwrap()).unwrap();
    assert!(r128.from_raw::<u64>(t64).is_err() && r64.from_raw::<u64>(t128).is_err());
    assert!(r128.clone_raw::<u64>(t64).is_err() && r64.clone_raw::<u64>(t128).is_err());
    assert_eq!(a.from_raw(t64).unwrap_err(), TokenError::Foreign);
    assert_eq!(r64.from_raw::<u64>(ta).unwrap_err(), TokenError::Foreign);
    let txs = RingPtr::into_raw(a.allocate(b"x", 0).unwrap()).unwrap();
    assert_eq!(r64.from_raw::<u64>(txs).unwrap_err(), TokenError::Foreign);
    assert!(b.from_raw(txs).is_err());
    // Give everything back to its owner.
    drop((a.from_raw(ta), b.from_raw(tb), a.from_raw(txs)));
    drop((r64.from_raw::<u64>(t64), r128.from_raw::<u64>(t128)));
    assert_eq!(a.stats().total_in_use() + b.stats().total_in_use(), 0);
}

/// Forged tokens: 0, all ones, tag 0, tag 0xFF with every index shape, indices out of
/// range, every class tag with a random generation. All refused, none panics.
/// // passes: coverage
#[test]
fn forged_tokens_are_refused() {
    let alloc = EventAllocator::builder()
        .capacities([8, 8, 8, 8, 8])
        .build()
        .unwrap();
    let _live: Vec<_> = (0..8).map(|i| alloc.allocate(&[i], 0).unwrap()).collect();
    let _heap = RingPtr::into_raw(alloc.allocate(&[0; BIG], 0).unwrap()).unwrap();
    let ring = RingBuffer::<64, 8>::new();
    let _r = ring.alloc(1u8).unwrap();
    let mut forged = vec![0, u64::MAX, 1, 0xFF << 24, (0xFF << 24) | 0xFF_FFFF];
    for tag in [0u64, 1, 2, 3, 4, 5, 6, 0x40, 0xFE, 0xFF] {
        for index in [0u64, 1, 7, 8, 0xFF_FFFF] {
            for generation in [0u64, 1, 2, 0xFFFF_FFFF, 0x1234_5678] {
                forged.push((generation << 32) | (tag << 24) | index);
            }
        }
    }
    for token in forged {
        // A forged token equal to a real one (the heap token) would be accepted; the
        // generation field is random with respect to it.
        if token == _heap {
            continue;
        }
        assert!(alloc.from_raw(token).is_err(), "{token:#x}");
        assert!(alloc.clone_raw(token).is_err(), "{token:#x}");
        assert!(ring.from_raw::<u8>(token).is_err(), "{token:#x}");
        assert!(ring.clone_raw::<u8>(token).is_err(), "{token:#x}");
    }
    drop(alloc.from_raw(_heap).unwrap());
}

/// No token is 0, whatever the class, slot or life. // passes: coverage
#[test]
fn no_token_is_zero() {
    let alloc = EventAllocator::builder()
        .capacities([1, 1, 1, 1, 1])
        .build()
        .unwrap();
    for len in [
        0usize, 64, 65, 256, 257, 1024, 1025, 4096, 4097, 16384, 16385,
    ] {
        for _ in 0..3 {
            let token = RingPtr::into_raw(alloc.allocate(&vec![1; len], 0).unwrap()).unwrap();
            assert_ne!(token, 0);
            drop(alloc.from_raw(token).unwrap());
        }
    }
    let ring = RingBuffer::<0, 1>::new();
    let token = RingPtr::into_raw(ring.alloc(()).unwrap()).unwrap();
    assert_ne!(token, 0);
    drop(ring.from_raw::<()>(token).unwrap());
}

/// A heap token parked while its allocator is dropped: the event stays readable through a
/// clone made before the drop, weak handles of it upgrade until the clone goes.
/// // passes: coverage
#[test]
fn heap_token_and_weak_outlive_the_allocator() {
    let (clone, weak) = {
        let alloc = EventAllocator::new();
        let ev = alloc.allocate(&[4; BIG], 1).unwrap();
        let weak = RingPtr::downgrade(&ev);
        let token = RingPtr::into_raw(ev).unwrap();
        let clone = alloc.clone_raw(token).unwrap();
        // Take the hold back so nothing leaks; the clone and weak outlive `alloc`.
        drop(alloc.from_raw(token).unwrap());
        (clone, weak)
    };
    assert!(clone.iter().all(|&b| b == 4));
    let up = weak.upgrade().unwrap();
    drop((clone, up));
    assert!(weak.upgrade().is_none());
}

// ---------------------------------------------------------------------------------------
// 3. Magazines and their budget
// ---------------------------------------------------------------------------------------

/// A `RingPtr` dropped in a thread-local destructor, on a thread whose magazines were
/// first touched there (the cache's destructor is registered during destruction), and
/// one dropped after the cache's destructor ran: after the thread is joined every slot of
/// the pool is back. // passes: coverage
#[test]
fn ring_ptrs_dropped_in_thread_local_destructors_come_back() {
    struct DropLater(RefCell<Vec<RingPtr<u64>>>);
    impl Drop for DropLater {
        fn drop(&mut self) {
            self.0.borrow_mut().clear();
        }
    }
    thread_local! {
        static EARLY: DropLater = const { DropLater(RefCell::new(Vec::new())) };
        static LATE: DropLater = const { DropLater(RefCell::new(Vec::new())) };
    }
    // Statics (not leaked boxes), so miri's leak check stays quiet.
    static POOLS: LazyLock<[RingBuffer<64, 8>; 3]> =
        LazyLock::new(|| [RingBuffer::new(), RingBuffer::new(), RingBuffer::new()]);
    for order in 0..3 {
        // A fresh pool each time: this thread's own magazine may keep one of the last.
        let pool: &'static RingBuffer<64, 8> = &POOLS[order];
        // Allocated here, so the worker's cache is untouched until it says otherwise.
        let held: Vec<_> = (0..8u64).map(|i| pool.alloc(i).unwrap()).collect();
        thread::spawn(move || {
            match order {
                // Only the destructor touches the cache: registered during destruction.
                0 => EARLY.with(|e| e.0.borrow_mut().extend(held)),
                // Registered before the cache (destroyed after it, on glibc).
                1 => {
                    EARLY.with(|e| e.0.borrow_mut().extend(held));
                    assert!(pool.alloc(9u64).is_err()); // full: touches the cache only
                }
                // Registered after the cache (destroyed before it).
                _ => {
                    assert!(pool.alloc(9u64).is_err());
                    LATE.with(|e| e.0.borrow_mut().extend(held));
                }
            }
        })
        .join()
        .unwrap();
        let all: Vec<_> = (0..8u64).map_while(|i| pool.alloc(i).ok()).collect();
        assert_eq!(all.len(), 8, "order {order}: slots stuck in a dead thread");
    }
}

/// Allocating (and dropping) inside a thread-local destructor that runs after the cache
/// is gone: the popped batch goes back, nothing is lost. // passes: coverage
#[test]
fn allocating_in_a_thread_local_destructor_loses_nothing() {
    // A panic in a thread-local destructor aborts: record, check after the join.
    static GOT: AtomicUsize = AtomicUsize::new(0);
    struct AllocOnDrop(&'static RingBuffer<64, 64>);
    impl Drop for AllocOnDrop {
        fn drop(&mut self) {
            let held: Vec<_> = (0..64u64).map_while(|i| self.0.alloc(i).ok()).collect();
            GOT.store(held.len(), Ordering::Relaxed);
        }
    }
    thread_local! {
        static SLOT: RefCell<Option<AllocOnDrop>> = const { RefCell::new(None) };
    }
    static POOL: LazyLock<RingBuffer<64, 64>> = LazyLock::new(RingBuffer::new);
    let pool: &'static RingBuffer<64, 64> = &POOL;
    thread::spawn(move || {
        // Register this destructor first, then bind the cache (destroyed first).
        SLOT.with(|s| *s.borrow_mut() = Some(AllocOnDrop(pool)));
        let all: Vec<_> = (0..64u64).map(|i| pool.alloc(i).unwrap()).collect();
        drop(all);
    })
    .join()
    .unwrap();
    assert_eq!(
        GOT.load(Ordering::Relaxed),
        64,
        "allocations in the destructor"
    );
    let all: Vec<_> = (0..64u64).map_while(|i| pool.alloc(i).ok()).collect();
    assert_eq!(all.len(), 64);
}

/// Idle workers that rebound their magazines across many pools (more than the 8 ways),
/// then sleep: every pool, once its handles are gone, still serves at least 7/8 of its
/// slots, and pools dropped while cached do not take credits from the others.
/// // passes: coverage
#[test]
fn idle_workers_rebinding_many_pools_leave_every_budget() {
    let pools: Vec<RingBuffer<64, 16>> = (0..12).map(|_| RingBuffer::new()).collect();
    // Pools whose owners go (with the last worker's `Arc`) while magazines cache them.
    let doomed: Arc<Vec<RingBuffer<64, 16>>> =
        Arc::new((0..6).map(|_| RingBuffer::new()).collect());
    let workers = rounds(6, 2);
    let ready = Barrier::new(workers + 1);
    let release = Barrier::new(workers + 1);
    thread::scope(|s| {
        for w in 0..workers {
            let (pools, ready, release) = (&pools, &ready, &release);
            let doomed = Arc::clone(&doomed);
            s.spawn(move || {
                for round in 0..3 {
                    for (i, pool) in pools.iter().chain(doomed.iter()).enumerate() {
                        if (i + w + round) % 2 == 0 {
                            let held: Vec<_> = (0..4u64).map(|v| pool.alloc(v).unwrap()).collect();
                            drop(held);
                        }
                    }
                }
                drop(doomed);
                ready.wait();
                release.wait();
            });
        }
        ready.wait();
        drop(Arc::clone(&doomed));
        for (i, pool) in pools.iter().enumerate() {
            assert_eq!(pool.stats().in_use, 0);
            let got: Vec<_> = (0..16u64).map_while(|v| pool.alloc(v).ok()).collect();
            assert!(got.len() >= 14, "pool {i}: {} of 16", got.len());
        }
        release.wait();
    });
    drop(doomed);
}

/// A pool whose owner is dropped while a thread's magazine holds its slots and credits,
/// on a thread that keeps running and allocating from other pools: the pools that remain
/// lose at most an eighth to it while it lives, nothing once it exits.
/// // passes: coverage
#[test]
fn owner_dropped_while_a_busy_thread_caches_its_slots() {
    let survivor = RingBuffer::<64, 64>::new();
    let (tx, rx) = std::sync::mpsc::channel::<RingBuffer<64, 64>>();
    let done = Barrier::new(2);
    let finish = Barrier::new(2);
    thread::scope(|s| {
        let (survivor, done, finish) = (&survivor, &done, &finish);
        let worker = s.spawn(move || {
            let doomed = rx.recv().unwrap();
            let held: Vec<_> = (0..64u64).map(|i| doomed.alloc(i).unwrap()).collect();
            drop(held); // into this thread's magazine
            drop(doomed); // the owner goes while slots are cached
            for _ in 0..100 {
                let h: Vec<_> = (0..64u64).map(|i| survivor.alloc(i).unwrap()).collect();
                drop(h);
            }
            done.wait();
            finish.wait();
        });
        tx.send(RingBuffer::new()).unwrap();
        done.wait();
        {
            let got: Vec<_> = (0..64u64).map_while(|i| survivor.alloc(i).ok()).collect();
            assert!(
                got.len() >= 56,
                "{} of 64 while the worker lives",
                got.len()
            );
        }
        finish.wait();
        worker.join().unwrap();
        let got: Vec<_> = (0..64u64).map_while(|i| survivor.alloc(i).ok()).collect();
        assert_eq!(got.len(), 64, "the worker exited: nothing cached");
    });
}

// ---------------------------------------------------------------------------------------
// 4. Races
// ---------------------------------------------------------------------------------------

/// Many threads clone_raw, from_raw and re-park one pooled token at once while the owner
/// keeps a handle: counts stay exact (strong == 1 + parked at the end).
/// // passes: coverage
#[test]
fn concurrent_park_take_clone_keep_counts_exact() {
    let alloc = EventAllocator::new();
    let ev = alloc.allocate(b"shared", 3).unwrap();
    let token = RingPtr::into_raw(ev.clone()).unwrap();
    let threads = 4;
    let per = rounds(2000, 20);
    let start = Barrier::new(threads);
    let failures = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                start.wait();
                for _ in 0..per {
                    match alloc.from_raw(token) {
                        Ok(h) => {
                            if let Ok(c) = alloc.clone_raw(token) {
                                assert_eq!(c.payload(), b"shared");
                            }
                            assert_eq!(RingPtr::into_raw(h).unwrap(), token);
                        }
                        Err(TokenError::Released) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("{e:?}"),
                    }
                }
            });
        }
    });
    assert_eq!(
        RingPtr::strong_count(&ev),
        2,
        "one handle + one parked hold"
    );
    drop(alloc.from_raw(token).unwrap());
    assert_eq!(alloc.from_raw(token).unwrap_err(), TokenError::Released);
    drop(ev);
    assert_eq!(alloc.stats().total_in_use(), 0);
}

/// The same on a heap token (the table's lock path). // passes: coverage
#[test]
fn concurrent_heap_park_take_clone_keep_counts_exact() {
    let alloc = EventAllocator::new();
    let ev = alloc.allocate(&[6; BIG], 3).unwrap();
    let token = RingPtr::into_raw(ev.clone()).unwrap();
    let threads = 4;
    let per = rounds(1000, 10);
    let start = Barrier::new(threads);
    let stale = AtomicU64::new(0);
    thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                start.wait();
                for _ in 0..per {
                    if let Ok(h) = alloc.from_raw(token) {
                        if let Ok(c) = alloc.clone_raw(token) {
                            assert_eq!(c.len(), BIG);
                        }
                        // The token has one hold: taking it vacates the entry, so a
                        // re-park may get a new entry (and token); give that one back.
                        let again = RingPtr::into_raw(h).unwrap();
                        if again != token {
                            stale.fetch_add(1, Ordering::Relaxed);
                            drop(alloc.from_raw(again).unwrap());
                        }
                    }
                }
            });
        }
    });
    // With four threads taking the single hold, the entry is vacated and reused: the
    // token may have moved; whatever holds remain under `token` are given back.
    while let Ok(h) = alloc.from_raw(token) {
        drop(h);
    }
    drop(ev);
    eprintln!("{} re-parks got a new token", stale.load(Ordering::Relaxed));
    assert_eq!(alloc.stats().heap.in_use, 0, "a heap event leaked");
}

/// A weak handle upgrading while tokens of the same slot are parked, taken and cloned on
/// other threads, and the slot reused under it. // passes: coverage
#[test]
fn weak_upgrade_races_tokens_and_reuse() {
    let pool = RingBuffer::<64, 1>::new();
    let iterations = rounds(2000, 10);
    let mailbox = AtomicU64::new(0);
    for _ in 0..iterations {
        let p = pool.alloc([1u64; 4]).unwrap();
        let weak = RingPtr::downgrade(&p);
        let token = RingPtr::into_raw(p).unwrap();
        mailbox.store(token, Ordering::Relaxed);
        let start = Barrier::new(3);
        thread::scope(|s| {
            s.spawn(|| {
                start.wait();
                if let Some(u) = weak.upgrade() {
                    assert_eq!(*u, [1; 4]);
                }
            });
            s.spawn(|| {
                start.wait();
                if let Ok(c) = pool.clone_raw::<[u64; 4]>(mailbox.load(Ordering::Relaxed)) {
                    assert_eq!(*c, [1; 4]);
                }
            });
            start.wait();
            drop(pool.from_raw::<[u64; 4]>(token).unwrap());
            // Reuse the slot with other bytes as soon as it is free.
            for _ in 0..4 {
                if let Ok(mut q) = pool.alloc([2u64; 4]) {
                    if let Some(v) = RingPtr::get_mut(&mut q) {
                        *v = [3; 4];
                    }
                    break;
                }
            }
        });
    }
    assert_eq!(pool.stats().in_use, 0);
}

// ---------------------------------------------------------------------------------------
// 5. Generation wrap-around (not run by default: 2^32 reuses of one slot)
// ---------------------------------------------------------------------------------------

/// BUG (theoretical, needs ~2^32 claims of one slot, minutes in release): the generation
/// is 32 bits and wraps silently, so a weak handle (or token) from life `g` upgrades into
/// life `g + 2^32`, whose escaped flag is clear: its owner may hold `&mut` from
/// `get_mut` (aliasing the upgraded `&T`) or release with the plain store while the
/// upgraded handle is live (a use after free of the slot). `Arc` aborts on count
/// overflow; nothing here stops the wrap. Run with
/// `cargo test --release --test adversarial_core -- --ignored generation_wrap`.
#[test]
#[ignore = "2^32 reuses of one slot: minutes, even in release"]
fn generation_wrap_lets_an_old_weak_handle_upgrade() {
    let pool = RingBuffer::<64, 1>::new();
    let first = pool.alloc(1u64).unwrap();
    let weak = RingPtr::downgrade(&first);
    drop(first);
    // 2^32 - 1 more claims bring the generation back to the weak handle's.
    for _ in 0..u32::MAX {
        drop(pool.alloc(0u64).unwrap());
    }
    let mut current = pool.alloc(2u64).unwrap();
    assert!(
        weak.upgrade().is_none(),
        "a weak handle of a dead life upgraded into the slot's life {}",
        RingPtr::generation(&current)
    );
    assert!(RingPtr::get_mut(&mut current).is_some());
}
