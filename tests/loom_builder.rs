//! Loom models of writing in place (`EventAllocator::reserve` / `EventBuilder`). Run with
//! `RUSTFLAGS="--cfg loom -C debug-assertions=on" LOOM_MAX_PREEMPTIONS=2 cargo test --release --all-features --test loom_builder`.
//!
//! `freeze` is a new way for a reference to appear (it publishes a slot written in
//! place) and dropping an unfinished builder a new way for a slot to go back, so both
//! race here against the reference-making paths of the slot's previous life and against
//! a waiter. Payload accesses are checked for causality through the slot's loom cell.
#![cfg(loom)]

use std::io::Write;
use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use slotring::{EventAllocator, RingPtr};

fn one_slot() -> EventAllocator {
    EventAllocator::builder()
        .capacities([1, 0, 0, 0, 0])
        .spill(false)
        .heap_fallback(false)
        .build()
        .unwrap()
}

/// A token and a weak handle of the slot's previous life race a builder that reserves
/// the freed slot, writes it and freezes it: both must be refused, before and after the
/// freeze, and never read the bytes being written.
#[test]
fn stale_token_and_weak_race_reserve_write_freeze() {
    loom::model(|| {
        let alloc = Arc::new(one_slot());
        let old = alloc.allocate(b"old", 0).unwrap();
        let weak = RingPtr::downgrade(&old);
        let token = RingPtr::into_raw(old.clone()).unwrap();
        drop(alloc.from_raw(token).unwrap());
        drop(old); // the slot is free; `token` and `weak` are of its dead life
        let writer = {
            let alloc = alloc.clone();
            thread::spawn(move || {
                let mut b = alloc.reserve(3, 1).unwrap();
                b.write_all(b"new").unwrap();
                let ev = b.freeze();
                assert_eq!(ev.payload(), b"new");
            })
        };
        assert!(alloc.clone_raw(token).is_err());
        assert!(weak.upgrade().is_none());
        writer.join().unwrap();
    });
}

/// A builder dropped unfinished hands its slot to a blocked waiter: the waiter's write
/// must come after the builder's writes (the loom cell checks it) and it must be woken.
#[test]
fn abandoned_builder_wakes_a_waiter_that_then_writes() {
    loom::model(|| {
        let alloc = Arc::new(one_slot());
        let mut b = alloc.reserve(5, 0).unwrap();
        let builder = thread::spawn(move || {
            b.write_all(b"draft").unwrap();
            drop(b);
        });
        let ev = alloc.allocate_timeout(b"final", 1, Duration::MAX).unwrap();
        assert_eq!(ev.payload(), b"final");
        builder.join().unwrap();
    });
}

/// A frozen event dropped on one thread while another reserves the slot (waiting for
/// it): the reader's last read of the event happens-before the next builder's writes.
#[test]
fn frozen_event_drop_races_the_next_reservation() {
    loom::model(|| {
        let alloc = Arc::new(one_slot());
        let mut b = alloc.reserve(4, 0).unwrap();
        b.write_all(b"once").unwrap();
        let ev = b.freeze();
        let reader = thread::spawn(move || {
            assert_eq!(ev.payload(), b"once");
            drop(ev);
        });
        let next = loom::future::block_on(alloc.allocate_async(b"next", 0)).unwrap();
        assert_eq!(next.payload(), b"next");
        drop(next);
        let mut again = alloc.reserve(1, 0).unwrap();
        again.write_all(b"!").unwrap();
        drop(again);
        reader.join().unwrap();
    });
}
