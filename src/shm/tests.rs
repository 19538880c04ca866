//! Single-process tests of the segment protocol on heap memory, so they also run under
//! miri (which cannot map files). Several "processes" are several attachments to one
//! block with made-up pids; a dead process is one whose pid the liveness check denies.

use std::alloc::{Layout as AllocLayout, alloc_zeroed, dealloc};

use super::layout::*;
use super::segment::Segment;
use super::*;
use crate::sync::{AtomicU32, Ordering};

/// Zeroed, page-aligned heap memory standing in for a mapping.
pub(super) struct HeapBlock {
    ptr: NonNull<u8>,
    layout: AllocLayout,
}

// SAFETY: a block of bytes accessed only atomically or under the slot protocol.
unsafe impl Send for HeapBlock {}
// SAFETY: as for `Send`.
unsafe impl Sync for HeapBlock {}

impl HeapBlock {
    fn new(len: usize) -> Arc<Self> {
        let layout = AllocLayout::from_size_align(len, 4096).unwrap();
        // SAFETY: `len` is non-zero (at least a header) in every caller.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("out of memory");
        Arc::new(Self { ptr, layout })
    }

    fn u32_at(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 4 == 0 && offset + 4 <= self.layout.size());
        // SAFETY: in bounds and aligned (asserted; the block is 4096-aligned), alive as
        // long as `self`, and only ever accessed atomically at this width.
        unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(offset).cast()) }
    }

    fn u64_at(&self, offset: usize) -> &crate::sync::AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.layout.size());
        // SAFETY: as in `u32_at`.
        unsafe { crate::sync::AtomicU64::from_ptr(self.ptr.as_ptr().add(offset).cast()) }
    }
}

impl Drop for HeapBlock {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

fn options(classes: &[(usize, usize)], processes: usize) -> (Vec<ClassSpec>, u32) {
    ShmOptions::default()
        .classes(classes)
        .max_processes(processes)
        .specs()
        .unwrap()
}

/// A fresh segment on the heap, and its block.
fn create(classes: &[(usize, usize)], processes: usize) -> Arc<HeapBlock> {
    let (specs, processes) = options(classes, processes);
    let total = Layout::compute(&specs, processes).unwrap().total;
    let block = HeapBlock::new(total);
    // SAFETY: a zeroed, aligned block of `total` bytes nobody else uses yet; the segment
    // is dropped at once (the block outlives it).
    unsafe { Segment::create(block.ptr, total, &specs, processes, 0xABCD_EF01) }.unwrap();
    block
}

/// Opens the segment in `block` as process `pid`.
fn attach(block: &Arc<HeapBlock>, pid: u32) -> ShmAllocator {
    // SAFETY: the block outlives the segment: the attachment keeps an `Arc` of it.
    let seg = unsafe { Segment::open(block.ptr, block.layout.size()) }.unwrap();
    let inner = Inner::attach(seg, Memory::Heap(Arc::clone(block)), None, pid, 0).unwrap();
    ShmAllocator { inner }
}

fn open_err(block: &HeapBlock, len: usize) -> ShmError {
    // SAFETY: `len` is at most the block's size; the segment is dropped at once.
    unsafe { Segment::open(block.ptr, len) }.unwrap_err()
}

#[test]
fn allocate_read_clone_drop() {
    let block = create(&[(16, 2), (64, 1)], 4);
    let shm = attach(&block, 100);
    let a = shm.allocate(b"hello", 5).unwrap();
    assert_eq!(a.payload(), b"hello");
    assert_eq!(a.event_type(), 5);
    let b = a.clone();
    assert_eq!(ShmPtr::local_count(&a), 2);
    assert_eq!(ShmPtr::process_count(&a), 1);
    assert!(ShmPtr::ptr_eq(&a, &b));
    assert_eq!(shm.stats().in_use(), 1);
    drop(a);
    assert_eq!(shm.stats().in_use(), 1, "a clone keeps the slot live");
    drop(b);
    assert_eq!(shm.stats().in_use(), 0);
    // Spill to the larger class, then exhaustion; the oversize payload is refused.
    let x = shm.allocate(&[1; 16], 0).unwrap();
    let y = shm.allocate(&[2; 10], 0).unwrap();
    let z = shm.allocate(&[3; 3], 0).unwrap();
    assert_eq!(
        shm.stats().classes[1].in_use,
        1,
        "the third small event spilled"
    );
    assert!(matches!(
        shm.allocate(&[4], 0),
        Err(ShmError::Exhausted { len: 1 })
    ));
    assert!(matches!(
        shm.allocate(&[0; 65], 0),
        Err(ShmError::TooLarge { len: 65, max: 64 })
    ));
    assert_eq!(
        (&x[..], &y[..], &z[..]),
        (&[1; 16][..], &[2; 10][..], &[3; 3][..])
    );
}

#[test]
fn tokens_are_checked() {
    let block = create(&[(16, 2), (64, 1)], 4);
    let shm = attach(&block, 100);
    let ev = shm.allocate(b"tok", 1).unwrap();
    let token = ev.to_token();
    let again = shm.from_token(token).unwrap();
    assert_eq!(again.payload(), b"tok");
    assert_eq!(ShmPtr::local_count(&ev), 2);
    drop((ev, again));
    assert!(matches!(shm.from_token(token), Err(ShmError::StaleToken)));
    // Reuse of the slot moves the generation on: the old token stays stale.
    let reused = shm.allocate(b"new", 1).unwrap();
    assert!(matches!(shm.from_token(token), Err(ShmError::StaleToken)));
    let t = ShmToken::decode(reused.to_token());
    let forge = |f: &dyn Fn(&mut ShmToken)| {
        let mut bad = t;
        f(&mut bad);
        shm.from_token(bad.encode())
    };
    assert!(matches!(
        forge(&|b| b.tag ^= 1),
        Err(ShmError::ForeignToken)
    ));
    assert!(matches!(
        forge(&|b| b.class = 5),
        Err(ShmError::ForeignToken)
    ));
    assert!(matches!(
        forge(&|b| b.index = 2),
        Err(ShmError::ForeignToken)
    ));
    assert!(matches!(
        forge(&|b| b.generation += 1),
        Err(ShmError::StaleToken)
    ));
    assert!(matches!(forge(&|b| b.index = 1), Err(ShmError::StaleToken)));
    assert_eq!(
        ShmPtr::local_count(&reused),
        1,
        "failed upgrades leave no hold"
    );
}

#[test]
fn a_hold_in_another_process_keeps_the_slot() {
    let block = create(&[(64, 4)], 4);
    let a = attach(&block, 100);
    let b = attach(&block, 200);
    assert_eq!(a.stats().attached, 2);
    let ev = a.allocate(b"shared", 3).unwrap();
    let seen = b.from_token(ev.to_token()).unwrap();
    let seen2 = seen.clone();
    assert_eq!(ShmPtr::process_count(&ev), 2);
    drop(ev);
    assert_eq!(ShmPtr::process_count(&seen), 1);
    assert_eq!(a.stats().in_use(), 1);
    assert_eq!(seen2.payload(), b"shared");
    assert_eq!(seen2.event_type(), 3);
    drop(seen);
    assert_eq!(a.stats().in_use(), 1);
    drop(seen2);
    assert_eq!(a.stats().in_use(), 0);
    drop(b);
    assert_eq!(
        a.stats().attached,
        1,
        "a dropped attachment frees its entry"
    );
}

#[test]
fn recovery_frees_exactly_the_dead_holds() {
    let block = create(&[(64, 8)], 4);
    let live = attach(&block, 100);
    // SAFETY: the block outlives this second view of the segment.
    let seg = unsafe { Segment::open(block.ptr, block.layout.size()) }.unwrap();
    let dead_pid = 4242;
    let dead = seg.attach(dead_pid, 7).unwrap();
    let dead_bit = 1 << dead;
    let mut shared = Vec::new();
    for i in 0..6u8 {
        let ev = live.allocate(&[i; 10], u32::from(i)).unwrap();
        let (generation, _) = seg.snapshot(ev.global);
        assert!(seg.join(ev.global, generation, dead_bit));
        if i % 2 == 0 {
            drop(ev); // now held by the dead process only
        } else {
            shared.push(ev);
        }
    }
    assert_eq!(live.stats().in_use(), 6);
    // The dead process is alive as far as recovery knows: nothing happens.
    let none = seg.recover(100, &|_, _| true);
    assert_eq!(none, segment::Recovered::default());
    let report = seg.recover(100, &|pid, start| !(pid == dead_pid && start == 7));
    assert_eq!(
        report,
        segment::Recovered {
            processes: 1,
            holds: 6,
            slots_freed: 3
        }
    );
    assert_eq!(live.stats().in_use(), 3);
    assert_eq!(live.stats().attached, 1, "the dead entry is free again");
    for ev in &shared {
        assert_eq!(ShmPtr::process_count(ev), 1);
        assert_eq!(ev.payload(), &[ev.event_type() as u8; 10]);
    }
    assert_eq!(
        seg.recover(100, &|pid, _| pid != dead_pid),
        segment::Recovered::default(),
        "a second recovery finds nothing"
    );
    drop(shared);
    // Every slot comes back: all 8 can be allocated at once.
    let all: Vec<_> = (0..8).map(|_| live.allocate(b"x", 0).unwrap()).collect();
    assert!(live.allocate(b"x", 0).is_err());
    drop(all);
    assert_eq!(live.stats().in_use(), 0);
}

#[test]
#[cfg_attr(miri, ignore = "recovery calls kill(2)")]
fn a_full_table_is_an_error() {
    let block = create(&[(64, 1)], 2);
    let me = process::current_pid();
    let a = attach(&block, me);
    let b = attach(&block, me);
    // SAFETY: the block outlives the segment.
    let seg = unsafe { Segment::open(block.ptr, block.layout.size()) }.unwrap();
    let third = Inner::attach(seg, Memory::Heap(Arc::clone(&block)), None, me, 0);
    assert!(matches!(third, Err(ShmError::ProcessTableFull { max: 2 })));
    drop(a);
    let c = attach(&block, me);
    assert_eq!(c.stats().attached, 2);
    drop((b, c));
}

#[test]
fn threads_in_two_attachments_exchange_tokens() {
    let block = create(&[(64, 16)], 4);
    let a = attach(&block, 100);
    let b = attach(&block, 200);
    let rounds: u32 = if cfg!(miri) { 20 } else { 2000 };
    let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, ShmPtr)>(4);
    let reader = std::thread::spawn(move || {
        let mut n: u32 = 0;
        for (token, keep) in rx {
            let ev = b.from_token(token).unwrap();
            let twin = ev.clone();
            drop(keep);
            assert_eq!(twin.payload(), &n.to_le_bytes());
            n += 1;
        }
        n
    });
    for i in 0..rounds {
        let ev = loop {
            match a.allocate(&i.to_le_bytes(), 0) {
                Ok(ev) => break ev,
                Err(ShmError::Exhausted { .. }) => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        // The sender's handle travels along and is dropped after the upgrade.
        tx.send((ev.to_token(), ev)).unwrap();
    }
    drop(tx);
    assert_eq!(reader.join().unwrap(), rounds);
    assert_eq!(a.stats().in_use(), 0);
}

#[test]
fn headers_are_validated() {
    let block = create(&[(64, 2), (256, 1)], 2);
    let total = block.layout.size();
    assert!(matches!(
        open_err(&block, 100),
        ShmError::Truncated { len: 100, .. }
    ));
    assert!(matches!(
        open_err(&block, total - 1),
        ShmError::Truncated { needed, .. } if needed == total as u64
    ));
    let r = Ordering::Relaxed;
    let check = |offset: usize, wide: bool, bad: u64, expect: &dyn Fn(&ShmError) -> bool| {
        let (old, err) = if wide {
            let w = block.u64_at(offset);
            let old = w.swap(bad, r);
            let err = open_err(&block, total);
            w.store(old, r);
            (old, err)
        } else {
            let w = block.u32_at(offset);
            let old = w.swap(bad as u32, r);
            let err = open_err(&block, total);
            w.store(old, r);
            (u64::from(old), err)
        };
        assert!(expect(&err), "offset {offset}: {err:?} (was {old})");
    };
    check(OFF_MAGIC, true, u64::from_le_bytes(*b"SLOTRINX"), &|e| {
        matches!(e, ShmError::NotASegment)
    });
    check(OFF_VERSION, false, 2, &|e| {
        matches!(
            e,
            ShmError::UnsupportedVersion {
                found: 2,
                supported: 1
            }
        )
    });
    let corrupted = |e: &ShmError| matches!(e, ShmError::Corrupted { .. });
    check(OFF_HEADER_SIZE, false, 64, &corrupted);
    check(OFF_CLASS_COUNT, false, 0, &corrupted);
    check(OFF_CLASS_COUNT, false, 9, &corrupted);
    check(OFF_CLASS_COUNT, false, 1, &corrupted);
    check(OFF_PROCESSES, false, 33, &corrupted);
    check(OFF_PROCESSES, false, 3, &corrupted);
    check(OFF_TOTAL, true, u64::MAX, &corrupted);
    check(OFF_PROC_TABLE, true, 0, &corrupted);
    check(OFF_CLASSES + REC_SLOT_SIZE, false, 300, &corrupted);
    check(
        OFF_CLASSES + REC_CAPACITY,
        false,
        u32::MAX.into(),
        &corrupted,
    );
    check(OFF_CLASSES + REC_META, true, 1 << 40, &corrupted);
    check(
        OFF_CLASSES + CLASS_RECORD + REC_PAYLOAD,
        true,
        0,
        &corrupted,
    );
    // A bigger capacity that is consistent with itself still needs the bytes.
    let cap = block.u32_at(OFF_CLASSES + REC_CAPACITY);
    cap.store(1000, r);
    assert!(corrupted(&open_err(&block, total)));
    cap.store(2, r);
    // Intact again.
    // SAFETY: the block outlives the segment.
    assert!(unsafe { Segment::open(block.ptr, total) }.is_ok());
}

#[test]
fn a_corrupted_free_list_is_an_error() {
    let block = create(&[(64, 3)], 2);
    let shm = attach(&block, 100);
    let meta = HEADER_SIZE + 2 * LINE;
    // Slot 0 is on top; point its link far outside the class.
    block
        .u32_at(meta + META_NEXT)
        .store(1_000_000, Ordering::Relaxed);
    let first = shm.allocate(b"a", 0).unwrap();
    assert!(matches!(
        shm.allocate(b"b", 0),
        Err(ShmError::Corrupted { .. })
    ));
    // A slot on the free list whose state says it is live is refused too.
    drop(first);
    block
        .u64_at(meta + META_STATE)
        .fetch_or(1 << 5, Ordering::Relaxed);
    assert!(matches!(
        shm.allocate(b"c", 0),
        Err(ShmError::Corrupted { .. })
    ));
}

#[test]
fn a_corrupted_length_is_an_error() {
    let block = create(&[(64, 2)], 2);
    let a = attach(&block, 100);
    let b = attach(&block, 200);
    let ev = a.allocate(b"len", 0).unwrap();
    let meta = HEADER_SIZE + 2 * LINE;
    block.u32_at(meta + META_LEN).store(65, Ordering::Relaxed);
    assert!(matches!(
        b.from_token(ev.to_token()),
        Err(ShmError::Corrupted { .. })
    ));
    assert_eq!(
        ShmPtr::process_count(&ev),
        1,
        "the refused upgrade left no hold"
    );
    block.u32_at(meta + META_LEN).store(3, Ordering::Relaxed);
    drop(ev);
    assert_eq!(a.stats().in_use(), 0);
}

#[test]
fn handles_outlive_their_allocator() {
    let block = create(&[(64, 2)], 2);
    let a = attach(&block, 100);
    let b = attach(&block, 200);
    let ev = a.allocate(b"kept", 0).unwrap();
    let seen = b.from_token(ev.to_token()).unwrap();
    drop(a);
    drop(b);
    // Both attachments live on in their handles.
    let twin = ev.clone();
    assert_eq!(ShmPtr::process_count(&seen), 2);
    drop(ev);
    assert_eq!(twin.payload(), b"kept");
    drop(twin);
    assert_eq!(seen.payload(), b"kept");
    drop(seen);
    let c = attach(&block, 300);
    let stats = c.stats();
    assert_eq!(
        (stats.in_use(), stats.attached),
        (0, 1),
        "everything was released"
    );
}

#[test]
fn recovery_races_with_live_upgrades() {
    let rounds = if cfg!(miri) { 3 } else { 200 };
    for _ in 0..rounds {
        let block = create(&[(64, 8)], 4);
        let live = attach(&block, 100);
        // SAFETY: the block outlives this view of the segment.
        let seg = unsafe { Segment::open(block.ptr, block.layout.size()) }.unwrap();
        let dead_pid = 4242;
        let dead_bit = 1 << seg.attach(dead_pid, 0).unwrap();
        let tokens: Vec<u64> = (0..8u8)
            .map(|i| {
                let ev = live.allocate(&[i; 8], 0).unwrap();
                assert!(seg.join(ev.global, ShmPtr::generation(&ev), dead_bit));
                ev.to_token() // the live handle drops: the dead process holds it alone
            })
            .collect();
        let upgrader = {
            let live = live.clone();
            let tokens = tokens.clone();
            std::thread::spawn(move || {
                tokens
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &t)| match live.from_token(t) {
                        Ok(ev) => {
                            assert_eq!(ev.payload(), &[i as u8; 8]);
                            Some(ev)
                        }
                        Err(ShmError::StaleToken) => None,
                        Err(e) => panic!("{e}"),
                    })
                    .collect::<Vec<_>>()
            })
        };
        let report = seg.recover(100, &|pid, _| pid != dead_pid);
        let won = upgrader.join().unwrap();
        assert_eq!(report.holds, 8);
        assert_eq!(
            report.slots_freed as usize + won.len(),
            8,
            "every slot is either freed by recovery or held by an upgrade"
        );
        assert_eq!(live.stats().in_use(), won.len());
        drop(won);
        let all: Vec<_> = (0..8)
            .map(|_| live.allocate(b"again", 0).unwrap())
            .collect();
        drop(all);
        assert_eq!(live.stats().in_use(), 0);
    }
}

#[test]
fn recovery_does_not_take_a_reattached_pid_for_its_dead_predecessor() {
    // A recoverer reads entry 0 as `ATTACHED | pid` of a dead process and checks it.
    // Before its compare-exchange, another recoverer frees the entry and a new process
    // that got the same pid attaches there. The stale recoverer must not take the new
    // attachment for the dead one (the owner word alone named it by pid).
    let block = create(&[(64, 4)], 2);
    // SAFETY: the block outlives this view of the segment.
    let seg = unsafe { Segment::open(block.ptr, block.layout.size()) }.unwrap();
    let pid = 4242;
    assert_eq!(seg.attach(pid, 7), Some(0));
    let newcomer: std::cell::RefCell<Option<(ShmAllocator, ShmPtr)>> = Default::default();
    let report = seg.recover(1, &|p, start| {
        if p == pid && start == 7 && newcomer.borrow().is_none() {
            // The other recoverer, then the new process with the reused pid.
            assert_eq!(seg.recover(2, &|p, _| p != pid).processes, 1);
            // SAFETY: the block outlives the segment (the attachment keeps an `Arc`).
            let view = unsafe { Segment::open(block.ptr, block.layout.size()) }.unwrap();
            let shm = Inner::attach(view, Memory::Heap(Arc::clone(&block)), None, pid, 9)
                .map(|inner| ShmAllocator { inner })
                .unwrap();
            assert_eq!(shm.inner.entry, 0, "the new process reuses the entry");
            let ev = shm.allocate(b"mine", 0).unwrap();
            *newcomer.borrow_mut() = Some((shm, ev));
        }
        // The dead process (start 7) is gone; pid 4242 now has start 9.
        !(p == pid && start == 7)
    });
    let (shm, ev) = newcomer.into_inner().expect("the race was staged");
    let held = ShmPtr::process_count(&ev);
    let attached = shm.stats().attached;
    if held == 0 {
        // Its hold was wrongly cleared; dropping the handle would trip a debug check.
        core::mem::forget(ev);
        core::mem::forget(shm);
    } else {
        assert_eq!(ev.payload(), b"mine");
        drop((ev, shm));
    }
    assert_eq!(held, 1, "the live newcomer's hold was cleared");
    assert_eq!(attached, 1, "the live newcomer's entry was freed");
    assert_eq!(report.processes, 0, "the stale recoverer reclaimed nothing");
}
