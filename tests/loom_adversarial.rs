//! Adversarial loom models of the heap-token path, which makes references without the
//! escaped flag (`HeapShared::park` never calls `mark_escaped`). Run with
//! `RUSTFLAGS="--cfg loom -C debug-assertions=on" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom cargo test --release --test loom_adversarial`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use slotring::{EventAllocator, RingPtr};

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

/// A heap event's last hold taken by `from_raw` and then `get_mut` (which the heap path
/// allows: no escaped flag), racing a `clone_raw` of the same token on another thread.
/// The clone and the `&mut` never overlap (loom's payload cell would report it).
/// // passes: coverage
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
/// when no clone is live, and its plain-store release never loses a count.
/// // passes: coverage
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
