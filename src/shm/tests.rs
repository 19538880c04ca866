//! Single-process tests of the segment protocol on heap memory, so they also run under
//! miri (which cannot map files or lock them). Several "processes" are several
//! attachments to one block; entry locks are a table in the block's owner (`FakeLocks`,
//! with the semantics of open-file-description locks), and a process dies when its
//! locks are dropped without detaching.

use std::alloc::{Layout as AllocLayout, alloc_zeroed, dealloc};

use super::layout::*;
use super::segment::Segment;
use super::*;
use crate::sync::{AtomicU32, Ordering};

/// Zeroed, page-aligned heap memory standing in for a mapping.
pub(super) struct HeapBlock {
    ptr: NonNull<u8>,
    layout: AllocLayout,
    /// Who holds each entry's lock (a `FakeLocks` id), as the kernel would know it.
    locks: std::sync::Mutex<Vec<Option<u64>>>,
}

/// Entry locks of one "open file description" of a heap block: like `F_OFD_SETLK`, a
/// lock its holder already has is taken again, and every lock goes when it is dropped
/// (the last close).
pub(super) struct FakeLocks {
    block: Arc<HeapBlock>,
    id: u64,
}

impl FakeLocks {
    pub(super) fn new(block: &Arc<HeapBlock>) -> Self {
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            block: Arc::clone(block),
            // Relaxed: only uniqueness matters.
            id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Vec<Option<u64>>> {
        self.block.locks.lock().unwrap()
    }
}

impl entry::EntryLocks for FakeLocks {
    fn try_lock(&self, entry: u32) -> std::io::Result<bool> {
        let mut table = self.table();
        let slot = &mut table[entry as usize];
        match *slot {
            Some(holder) if holder != self.id => Ok(false),
            _ => {
                *slot = Some(self.id);
                Ok(true)
            }
        }
    }

    fn unlock(&self, entry: u32) {
        let mut table = self.table();
        if table[entry as usize] == Some(self.id) {
            table[entry as usize] = None;
        }
    }
}

impl Drop for FakeLocks {
    fn drop(&mut self) {
        for slot in self.table().iter_mut() {
            if *slot == Some(self.id) {
                *slot = None;
            }
        }
    }
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
        Arc::new(Self {
            ptr,
            layout,
            locks: std::sync::Mutex::new(vec![None; MAX_PROCESSES as usize]),
        })
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

/// Opens the segment in `block` as another process.
fn attach(block: &Arc<HeapBlock>) -> ShmAllocator {
    try_attach(block).unwrap()
}

fn try_attach(block: &Arc<HeapBlock>) -> Result<ShmAllocator, ShmError> {
    // SAFETY: the block outlives the segment: the attachment keeps an `Arc` of it.
    let seg = unsafe { Segment::open(block.ptr, block.layout.size()) }.unwrap();
    let locks = Box::new(FakeLocks::new(block));
    let inner = Inner::attach(seg, Memory::Heap(Arc::clone(block)), locks, None)?;
    Ok(ShmAllocator { inner })
}

/// A view of the segment in `block`, for tests that stage a process by hand.
fn view(block: &HeapBlock) -> Segment {
    // SAFETY: every caller's block outlives the view.
    unsafe { Segment::open(block.ptr, block.layout.size()) }.unwrap()
}

fn open_err(block: &HeapBlock, len: usize) -> ShmError {
    // SAFETY: `len` is at most the block's size; the segment is dropped at once.
    unsafe { Segment::open(block.ptr, len) }.unwrap_err()
}

#[test]
fn allocate_read_clone_drop() {
    let block = create(&[(16, 2), (64, 1)], 4);
    let shm = attach(&block);
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
    let shm = attach(&block);
    let ev = shm.allocate(b"tok", 1).unwrap();
    let token = ev.to_token();
    let again = shm.from_token(token).unwrap();
    assert_eq!(again.payload(), b"tok");
    assert_eq!(ShmPtr::local_count(&ev), 2);
    drop((ev, again));
    assert!(matches!(shm.from_token(token), Err(ShmError::StaleToken)));
    // Reuse of the slot moves the generation on: the old token stays stale. (Both
    // slots of the class are taken now, so one of them is the old token's.)
    let reused = shm.allocate(b"new", 1).unwrap();
    let _other = shm.allocate(b"other", 1).unwrap();
    assert_eq!(shm.stats().classes[0].in_use, 2);
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
    assert!(matches!(
        forge(&|b| b.index ^= 1),
        Err(ShmError::StaleToken)
    ));
    assert_eq!(
        ShmPtr::local_count(&reused),
        1,
        "failed upgrades leave no hold"
    );
}

#[test]
fn a_hold_in_another_process_keeps_the_slot() {
    let block = create(&[(64, 4)], 4);
    let a = attach(&block);
    let b = attach(&block);
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

/// A process attached by hand: its table entry and bit, and its locks (drop them to
/// kill it).
fn staged(block: &Arc<HeapBlock>, seg: &Segment) -> (u32, FakeLocks) {
    let locks = FakeLocks::new(block);
    let (entry, _) = seg.attach(&locks, 4242).unwrap().unwrap();
    (1 << entry, locks)
}

#[test]
fn recovery_frees_exactly_the_dead_holds() {
    let block = create(&[(64, 8)], 4);
    let live = attach(&block);
    let seg = view(&block);
    let (dead_bit, dead) = staged(&block, &seg);
    let mut shared = Vec::new();
    for i in 0..6u8 {
        let ev = live.allocate(&[i; 10], u32::from(i)).unwrap();
        let (generation, _) = seg.snapshot(ev.global);
        assert!(seg.join(ev.global, generation, dead_bit));
        if i % 2 == 0 {
            drop(ev); // now held by the other process only
        } else {
            shared.push(ev);
        }
    }
    assert_eq!(live.stats().in_use(), 6);
    // The other process holds its entry's lock: it is alive, nothing happens.
    assert_eq!(live.recover(), RecoveryReport::default());
    drop(dead); // its last descriptor closes: the lock goes
    let report = live.recover();
    assert_eq!(
        (report.processes, report.holds, report.slots_freed),
        (1, 6, 3)
    );
    assert_eq!(live.stats().in_use(), 3);
    assert_eq!(live.stats().attached, 1, "the dead entry is free again");
    for ev in &shared {
        assert_eq!(ShmPtr::process_count(ev), 1);
        assert_eq!(ev.payload(), &[ev.event_type() as u8; 10]);
    }
    assert_eq!(
        live.recover(),
        RecoveryReport::default(),
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
fn a_full_table_is_an_error() {
    let block = create(&[(64, 1)], 2);
    let a = attach(&block);
    let b = attach(&block);
    assert!(matches!(
        try_attach(&block),
        Err(ShmError::ProcessTableFull { max: 2 })
    ));
    drop(a);
    let c = attach(&block);
    assert_eq!(c.stats().attached, 2);
    drop((b, c));
}

#[test]
fn an_attacher_takes_over_a_dead_entry_with_its_holds() {
    let block = create(&[(64, 2)], 1);
    let seg = view(&block);
    let (dead_bit, dead) = staged(&block, &seg);
    assert!(
        matches!(try_attach(&block), Err(ShmError::ProcessTableFull { .. })),
        "a live entry is never taken"
    );
    // The dead process held a slot alone; the slot was popped by hand for it.
    let global = seg.claim(0, dead_bit, 0).unwrap();
    seg.activate(global, dead_bit, 1, 0);
    drop(dead);
    let shm = attach(&block);
    assert_eq!(
        shm.stats().in_use(),
        0,
        "the dead entry's holds were cleared"
    );
    let both: Vec<_> = (0..2).map(|_| shm.allocate(b"x", 0).unwrap()).collect();
    drop(both);
}

#[test]
fn a_recoverer_that_dies_midway_leaves_the_entry_to_the_next() {
    // A recoverer takes a dead entry's lock and dies before finishing. Its lock goes
    // with it, so the next recovery finds the entry still owned and unlocked, and
    // completes it (under pids, a "recovering" word whose pid was reused stayed stuck).
    let block = create(&[(64, 4)], 4);
    let live = attach(&block);
    let seg = view(&block);
    let (dead_bit, dead) = staged(&block, &seg);
    let tokens: Vec<u64> = (0..4u8)
        .map(|i| {
            let ev = live.allocate(&[i; 4], 0).unwrap();
            assert!(seg.join(ev.global, ShmPtr::generation(&ev), dead_bit));
            ev.to_token()
        })
        .collect();
    drop(dead);
    let entry = dead_bit.trailing_zeros();
    let recoverer = FakeLocks::new(&block);
    assert!(entry::EntryLocks::try_lock(&recoverer, entry).unwrap());
    // The recoverer has the entry: nobody else recovers or attaches there meanwhile.
    assert_eq!(live.recover(), RecoveryReport::default());
    // It frees one hold, then dies.
    let first = live.from_token(tokens[0]).unwrap();
    assert_eq!(
        protocol::clear_bit(seg.state(first.global), dead_bit),
        Some(false)
    );
    drop(first);
    drop(recoverer);
    let report = live.recover();
    assert_eq!(
        (report.processes, report.holds, report.slots_freed),
        (1, 3, 3)
    );
    assert_eq!(live.stats().in_use(), 0);
    assert_eq!(live.stats().attached, 1);
}

#[test]
fn threads_in_two_attachments_exchange_tokens() {
    let block = create(&[(64, 16)], 4);
    let a = attach(&block);
    let b = attach(&block);
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
    check(OFF_VERSION, false, 3, &|e| {
        matches!(
            e,
            ShmError::UnsupportedVersion {
                found: 3,
                supported: 2
            }
        )
    });
    let corrupted = |e: &ShmError| matches!(e, ShmError::Corrupted { .. });
    check(OFF_HEADER_SIZE, false, 64, &corrupted);
    check(OFF_CLASS_COUNT, false, 0, &corrupted);
    check(OFF_CLASS_COUNT, false, 9, &corrupted);
    check(OFF_CLASS_COUNT, false, 1, &corrupted);
    check(OFF_PROCESSES, false, 32, &corrupted);
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
fn a_corrupted_length_is_an_error() {
    let block = create(&[(64, 2)], 2);
    let a = attach(&block);
    let b = attach(&block);
    let ev = a.allocate(b"len", 0).unwrap();
    let meta = HEADER_SIZE + 2 * LINE + ev.global as usize * LINE;
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
    let a = attach(&block);
    let b = attach(&block);
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
    let c = attach(&block);
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
        let live = attach(&block);
        let recoverer = attach(&block);
        let seg = view(&block);
        let (dead_bit, dead) = staged(&block, &seg);
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
        drop(dead);
        let report = recoverer.recover();
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
fn a_claimed_or_live_slot_is_never_claimed_again() {
    // Slots are claimed in place by a compare-exchange from "free" on their state word
    // (there is no list to hand a slot out twice): a slot claimed and not yet
    // published, a live slot, or one whose state was forged non-free is skipped.
    let block = create(&[(64, 3)], 2);
    let shm = attach(&block);
    let seg = view(&block);
    let stalled = seg.claim(0, 1 << 1, 0).unwrap();
    let ev = shm.allocate(b"live", 0).unwrap();
    assert_ne!(ev.global, stalled);
    // Forge the third slot's state: no longer free for anyone.
    let third = (0..3).find(|&g| g != stalled && g != ev.global).unwrap();
    seg.state(third).fetch_or(1 << 5, Ordering::Relaxed);
    for from in 0..3 {
        assert_eq!(
            seg.claim(0, 1, from),
            None,
            "a taken slot was claimed again"
        );
    }
    assert!(matches!(
        shm.allocate(b"x", 0),
        Err(ShmError::Exhausted { .. })
    ));
    assert_eq!(ev.payload(), b"live");
    seg.activate(stalled, 1 << 1, 0, 0);
    assert_eq!(seg.snapshot(stalled).1, 1 << 1);
}

#[test]
fn a_claimer_that_dies_before_publishing_gives_the_slot_back() {
    // A process pops and claims a slot, then dies while copying its payload (before it
    // publishes): recovery of its entry returns the slot to the free list.
    let block = create(&[(64, 2)], 2);
    let live = attach(&block);
    let seg = view(&block);
    let (dead_bit, dead) = staged(&block, &seg);
    let claimed = seg.claim(0, dead_bit, 0).unwrap();
    assert_eq!(live.stats().in_use(), 1);
    assert_eq!(live.recover(), RecoveryReport::default(), "it is alive");
    drop(dead);
    let report = live.recover();
    assert_eq!(
        (report.processes, report.holds, report.slots_freed),
        (1, 0, 1)
    );
    assert_eq!(live.stats().in_use(), 0);
    let both: Vec<_> = (0..2).map(|_| live.allocate(b"x", 0).unwrap()).collect();
    assert!(both.iter().any(|ev| ev.global == claimed));
}
