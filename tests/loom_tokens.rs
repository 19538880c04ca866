//! Loom models of every path that makes or drops a reference through a token, alone and
//! racing the other reference-making paths, at two and three threads. Run with
//! `RUSTFLAGS="--cfg loom -C debug-assertions=on" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_tokens`.
//!
//! The reference-making paths (see `slot.rs`, "Every way a reference is made"):
//! allocate, clone, downgrade/upgrade, into_raw/from_raw/clone_raw, get_mut, last drop
//! and reuse. `loom_core.rs` covers the pairs without tokens; this file every pair with
//! one. Payload reads and writes are checked for causality through the slot's loom cell,
//! and loom's leak tracking reports a pool freed twice or never.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread;
use slotring::{EventAllocator, RingBuffer, RingPtr, TokenError};

/// One XS slot, no spilling, no heap: reuse of that slot is the only way to allocate.
fn one_slot() -> Arc<EventAllocator> {
    Arc::new(
        EventAllocator::builder()
            .capacities([1, 0, 0, 0, 0])
            .heap_fallback(false)
            .spill(false)
            .build()
            .unwrap(),
    )
}

/// Heap events only (every class has 0 slots).
fn heap_only() -> Arc<EventAllocator> {
    Arc::new(
        EventAllocator::builder()
            .capacities([0; 5])
            .spill(false)
            .build()
            .unwrap(),
    )
}

/// The bug of issue 11: `clone_raw` checks the hold, `from_raw` takes the last hold and
/// its handle is dropped, then the clone's CAS lands. Before the escaped flag the taker's
/// drop took the plain-store release over the clone's increment, freeing a slot the
/// cloner still read. Now: the cloner either fails or keeps the event alive, and a reuse
/// after both threads finish finds the slot free exactly once.
#[test]
fn clone_raw_races_from_raw_and_last_drop() {
    loom::model(|| {
        let alloc = one_slot();
        let token = RingPtr::into_raw(alloc.allocate(b"tok", 1).unwrap()).unwrap();
        let a = alloc.clone();
        let cloner = thread::spawn(move || {
            if let Ok(view) = a.clone_raw(token) {
                assert_eq!(view.payload(), b"tok");
            }
        });
        let b = alloc.clone();
        let taker = thread::spawn(move || {
            let owned = b.from_raw(token).expect("the only taker");
            assert_eq!(owned.payload(), b"tok");
        });
        cloner.join().unwrap();
        taker.join().unwrap();
        assert_eq!(alloc.stats().total_in_use(), 0, "freed exactly once");
        let next = alloc.allocate(b"new", 2).expect("the slot is free again");
        assert_eq!(next.payload(), b"new");
    });
}

/// Three threads: a cloner, a taker that drops, and a reuser that allocates the slot
/// again as soon as it is free. The clone never sees the reuser's bytes.
#[test]
fn clone_raw_races_from_raw_and_reuse() {
    loom::model(|| {
        let alloc = one_slot();
        let token = RingPtr::into_raw(alloc.allocate(b"old", 1).unwrap()).unwrap();
        let a = alloc.clone();
        let cloner = thread::spawn(move || {
            if let Ok(view) = a.clone_raw(token) {
                assert_eq!(view.payload(), b"old", "a clone saw a later life");
            }
        });
        let b = alloc.clone();
        let taker = thread::spawn(move || drop(b.from_raw(token).unwrap()));
        let c = alloc.clone();
        let reuser = thread::spawn(move || {
            if let Ok(next) = c.allocate(b"new", 2) {
                assert_eq!(next.payload(), b"new");
            }
        });
        cloner.join().unwrap();
        taker.join().unwrap();
        reuser.join().unwrap();
        assert_eq!(alloc.stats().total_in_use(), 0);
    });
}

/// `get_mut` on the taker's handle while a cloner holds `&`: the taker must not get
/// `&mut` while the clone reads (loom's cell reports a write concurrent with a read; a
/// token was made in this life, so `get_mut` now always says no).
#[test]
fn clone_raw_races_get_mut_after_from_raw() {
    loom::model(|| {
        let pool = Arc::new(RingBuffer::<8, 1>::new());
        let token = RingPtr::into_raw(pool.alloc(5u64).unwrap()).unwrap();
        let a = pool.clone();
        let cloner = thread::spawn(move || {
            if let Ok(view) = a.clone_raw::<u64>(token) {
                assert_eq!(*view, 5);
            }
        });
        let mut owned = pool.from_raw::<u64>(token).unwrap();
        // Before the fix `get_mut` said yes here, and this write raced the clone's read.
        if let Some(value) = RingPtr::get_mut(&mut owned) {
            *value = 6;
        }
        drop(owned);
        cloner.join().unwrap();
        assert_eq!(pool.stats().in_use, 0);
    });
}

/// A writer fills a value through `get_mut`, turns it into a token and stores the token
/// in a Relaxed atomic; this thread reads the token and, if there is one, calls `read`
/// with it, then makes sure the token's hold is taken back once.
fn token_through_relaxed_atomic(read: fn(&RingBuffer<8, 1>, u64)) {
    loom::model(move || {
        let pool = Arc::new(RingBuffer::<8, 1>::new());
        let mailbox = Arc::new(AtomicU64::new(0));
        let (p, m) = (pool.clone(), mailbox.clone());
        let writer = thread::spawn(move || {
            let mut v = p.alloc(0u64).unwrap();
            *RingPtr::get_mut(&mut v).unwrap() = 42;
            m.store(RingPtr::into_raw(v).unwrap(), Ordering::Relaxed);
        });
        let token = mailbox.load(Ordering::Relaxed);
        if token != 0 {
            read(&pool, token);
        }
        writer.join().unwrap();
        if token == 0 {
            drop(
                pool.from_raw::<u64>(mailbox.load(Ordering::Relaxed))
                    .unwrap(),
            );
        }
        assert_eq!(pool.stats().in_use, 0);
    });
}

/// Issue 11 (c): bytes written through `get_mut` before `into_raw` are visible to a
/// thread that clones the token it read through a Relaxed atomic (the token carries no
/// ordering of its own; `has_raw` acquires the park). Before the fix this model also
/// found the token refused as `Stale` (a plain load predating the park).
#[test]
fn token_through_relaxed_atomic_then_clone_raw() {
    token_through_relaxed_atomic(|pool, token| {
        let view = pool.clone_raw::<u64>(token).unwrap();
        assert_eq!(*view, 42);
        drop(view);
        drop(pool.from_raw::<u64>(token).unwrap());
    });
}

/// The same through `from_raw`: the take acquires the park.
#[test]
fn token_through_relaxed_atomic_then_from_raw() {
    token_through_relaxed_atomic(|pool, token| {
        assert_eq!(*pool.from_raw::<u64>(token).unwrap(), 42);
    });
}

/// Two takers of a token with one hold: exactly one wins, the other is told the hold
/// is gone, and the slot is freed once.
#[test]
fn from_raw_races_from_raw() {
    loom::model(|| {
        let alloc = one_slot();
        let token = RingPtr::into_raw(alloc.allocate(b"x", 1).unwrap()).unwrap();
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let a = alloc.clone();
                thread::spawn(move || a.from_raw(token).map(drop))
            })
            .collect();
        let results: Vec<_> = takers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
        assert!(results.contains(&Err(TokenError::Released)));
        assert_eq!(alloc.stats().total_in_use(), 0);
    });
}

/// `into_raw` of a second handle races `clone_raw` and `from_raw` of the first token:
/// holds are counted, never lost, and every reference is given back.
#[test]
fn into_raw_races_clone_raw_and_from_raw() {
    loom::model(|| {
        let alloc = one_slot();
        let ev = alloc.allocate(b"y", 1).unwrap();
        let second = ev.clone();
        let token = RingPtr::into_raw(ev).unwrap();
        let parker = thread::spawn(move || RingPtr::into_raw(second).unwrap());
        let a = alloc.clone();
        let cloner = thread::spawn(move || a.clone_raw(token).map(|v| v.payload().to_vec()));
        let first = alloc.from_raw(token).unwrap();
        drop(first);
        let again = parker.join().unwrap();
        assert_eq!(again, token, "one event, one token");
        if let Ok(bytes) = cloner.join().unwrap() {
            assert_eq!(bytes, b"y");
        }
        drop(alloc.from_raw(token).unwrap());
        assert_eq!(alloc.stats().total_in_use(), 0);
    });
}

/// A weak upgrade, a `clone_raw` and the last `from_raw` + drop, three threads: every
/// successful reference sees the event's bytes, and the slot is freed once.
#[test]
fn upgrade_and_clone_raw_race_last_drop() {
    loom::model(|| {
        let pool = Arc::new(RingBuffer::<8, 1>::new());
        let p = pool.alloc(3u64).unwrap();
        let weak = RingPtr::downgrade(&p);
        let token = RingPtr::into_raw(p).unwrap();
        let upgrader = thread::spawn(move || {
            if let Some(q) = weak.upgrade() {
                assert_eq!(*q, 3);
            }
        });
        let a = pool.clone();
        let cloner = thread::spawn(move || {
            if let Ok(q) = a.clone_raw::<u64>(token) {
                assert_eq!(*q, 3);
            }
        });
        drop(pool.from_raw::<u64>(token).unwrap());
        upgrader.join().unwrap();
        cloner.join().unwrap();
        assert_eq!(pool.stats().in_use, 0);
        assert_eq!(*pool.alloc(4u64).unwrap(), 4);
    });
}

/// A stale token is cloned while its slot is freed and reused: the clone fails or sees
/// the old life, never the new one.
#[test]
fn stale_clone_raw_races_reuse() {
    loom::model(|| {
        let pool = Arc::new(RingBuffer::<8, 1>::new());
        let token = RingPtr::into_raw(pool.alloc(1u64).unwrap()).unwrap();
        drop(pool.from_raw::<u64>(token).unwrap());
        let a = pool.clone();
        let cloner = thread::spawn(move || {
            assert!(
                a.clone_raw::<u64>(token).is_err(),
                "the token's hold is gone"
            );
        });
        let next = pool.alloc(2u64).unwrap();
        assert_eq!(*next, 2);
        cloner.join().unwrap();
    });
}

/// Clones of one handle dropped on two threads while a third clones the token: the
/// count reaches zero once (the clone may win and free the slot itself).
#[test]
fn clone_drop_races_clone_raw() {
    loom::model(|| {
        let alloc = one_slot();
        let ev = alloc.allocate(b"z", 1).unwrap();
        let token = RingPtr::into_raw(ev.clone()).unwrap();
        let a = alloc.clone();
        let cloner = thread::spawn(move || a.clone_raw(token).map(|v| v.payload().to_vec()));
        let dropper = thread::spawn(move || drop(ev));
        drop(alloc.from_raw(token).unwrap());
        dropper.join().unwrap();
        if let Ok(bytes) = cloner.join().unwrap() {
            assert_eq!(bytes, b"z");
        }
        assert_eq!(alloc.stats().total_in_use(), 0);
    });
}

/// Heap events: two threads park holds of one event while a third takes one back: one
/// token, holds counted, the event freed once.
#[test]
fn heap_into_raw_races_from_raw() {
    loom::model(|| {
        let alloc = heap_only();
        let ev = alloc.allocate(b"h", 1).unwrap();
        let second = ev.clone();
        let token = RingPtr::into_raw(ev).unwrap();
        let parker = thread::spawn(move || RingPtr::into_raw(second).unwrap());
        drop(alloc.from_raw(token).unwrap());
        let again = parker.join().unwrap();
        drop(alloc.from_raw(again).unwrap());
        assert_eq!(alloc.stats().total_in_use(), 0);
    });
}

/// Heap events: `clone_raw` races `from_raw` of the last hold through the allocator's
/// token table, and the taker tries `get_mut` (refused since the adversarial review: a
/// token was made). The event is freed once, the clone reads it whole, and the clone and
/// a `&mut` never overlap (loom's payload cell would report it).
#[test]
fn heap_get_mut_after_from_raw_races_heap_clone_raw() {
    loom::model(|| {
        let alloc = heap_only();
        let token = RingPtr::into_raw(alloc.allocate(b"heap", 1).unwrap()).unwrap();
        let a = alloc.clone();
        let cloner = thread::spawn(move || {
            if let Ok(view) = a.clone_raw(token) {
                assert_eq!(view.payload(), b"heap");
            }
        });
        let mut owned = alloc.from_raw(token).unwrap();
        if let Some(bytes) = RingPtr::get_mut(&mut owned) {
            bytes[0] = b'H';
        }
        drop(owned);
        cloner.join().unwrap();
        assert_eq!(alloc.stats().heap.in_use, 0);
    });
}

/// A long-lived handle keeps `get_mut`-ing while another thread takes the heap token's
/// only hold and drops it, and a third clones the token: the handle gets `&mut` only
/// when no clone is live, and its release never loses a count.
#[test]
fn heap_owner_get_mut_races_take_and_clone_of_a_twin_token() {
    loom::model(|| {
        let alloc = heap_only();
        let mut mine = alloc.allocate(b"twin", 2).unwrap();
        let token = RingPtr::into_raw(mine.clone()).unwrap();
        let a = alloc.clone();
        let taker = thread::spawn(move || drop(a.from_raw(token).unwrap()));
        let b = alloc.clone();
        let cloner = thread::spawn(move || {
            if let Ok(view) = b.clone_raw(token) {
                assert_eq!(view.payload()[1..], b"win"[..]);
            }
        });
        if let Some(bytes) = RingPtr::get_mut(&mut mine) {
            bytes[0] = b'T';
        }
        taker.join().unwrap();
        cloner.join().unwrap();
        assert_eq!(RingPtr::strong_count(&mine), 1);
        drop(mine);
        assert_eq!(alloc.stats().heap.in_use, 0);
    });
}
