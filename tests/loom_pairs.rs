//! Loom models of the reference-making paths without tokens that `loom_core.rs` does not
//! pair: `get_mut` after another holder's drop, `downgrade` racing drops, and three-way
//! races of clone, downgrade/upgrade and the last drop with reuse. Run with
//! `RUSTFLAGS="--cfg loom -C debug-assertions=on" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_pairs`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use slotring::{RingBuffer, RingPtr};

/// Another holder reads and drops its handle while this one asks for `get_mut`: if the
/// answer is yes, the other holder's read happened-before our write (loom's cell checks
/// it), and the value we wrote is what we read back.
#[test]
fn get_mut_after_another_holder_drops() {
    loom::model(|| {
        let pool = RingBuffer::<8, 1>::new();
        let mut mine = pool.alloc(1u64).unwrap();
        let theirs = mine.clone();
        let reader = thread::spawn(move || {
            assert_eq!(*theirs, 1);
            drop(theirs);
        });
        if let Some(value) = RingPtr::get_mut(&mut mine) {
            *value = 2;
            assert_eq!(*mine, 2);
        }
        reader.join().unwrap();
        assert!(
            RingPtr::get_mut(&mut mine).is_some(),
            "unique after the join"
        );
    });
}

/// A downgrade races another holder's drop; then the downgrader drops the last strong
/// handle. The weak handle can no longer upgrade, the slot is freed once and reusable.
#[test]
fn downgrade_races_another_holders_drop() {
    loom::model(|| {
        let pool = Arc::new(RingBuffer::<8, 1>::new());
        let mine = pool.alloc(1u64).unwrap();
        let theirs = mine.clone();
        let dropper = thread::spawn(move || drop(theirs));
        let weak = RingPtr::downgrade(&mine);
        drop(mine);
        dropper.join().unwrap();
        assert!(weak.upgrade().is_none());
        assert_eq!(pool.stats().in_use, 0);
        assert_eq!(*pool.alloc(2u64).unwrap(), 2);
    });
}

/// Three threads: one clones and drops, one downgrades and upgrades, and the main thread
/// drops the original and then reuses the slot. Every live reference reads the first
/// value; the slot is freed exactly once.
#[test]
fn clone_downgrade_upgrade_and_last_drop_with_reuse() {
    loom::model(|| {
        let pool = Arc::new(RingBuffer::<8, 1>::new());
        let original = pool.alloc(1u64).unwrap();
        let for_cloner = original.clone();
        let for_weak = original.clone();
        let cloner = thread::spawn(move || {
            let c = for_cloner.clone();
            drop(for_cloner);
            assert_eq!(*c, 1);
        });
        let upgrader = thread::spawn(move || {
            let weak = RingPtr::downgrade(&for_weak);
            drop(for_weak);
            if let Some(strong) = weak.upgrade() {
                assert_eq!(*strong, 1);
            }
        });
        drop(original);
        cloner.join().unwrap();
        upgrader.join().unwrap();
        assert_eq!(pool.stats().in_use, 0);
        assert_eq!(*pool.alloc(2u64).unwrap(), 2);
    });
}
