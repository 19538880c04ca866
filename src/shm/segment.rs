//! The segment protocol over one block of shared memory: header validation, per-slot
//! state words (claimed in place: there are no free lists) and the process table.
//! Everything here works on a base
//! pointer and a length, so the same code runs on a file mapping and, in the unit tests
//! (and under miri), on heap memory.
//!
//! # Slot state word
//!
//! ```text
//!  63                32 31                      0
//! ┌────────────────────┬─────────────────────────┐
//! │ generation (32)    │ process mask (32)       │
//! └────────────────────┴─────────────────────────┘
//! ```
//!
//! Bit `p` of the mask is set while the process attached at table entry `p` holds at
//! least one handle to the slot; how many handles it holds is counted in that process's
//! private memory. A slot is free when its mask is 0. Because a process's whole share is
//! one bit, setting and clearing it is a single atomic step: a process that dies at any
//! point either has its bit set (and recovery clears it) or not, so recovery returns
//! exactly the holds of dead processes, never one twice. The generation moves on when a
//! slot is claimed, as in the in-process pools.
//!
//! # Process table entry
//!
//! `owner` is 0 (free) or `ATTACHED | pid` (the pid only for people reading the file:
//! nothing trusts it). Whether the attachment is alive is not in the mapping at all: it
//! is the entry's lock (`liveness.rs`), held by the attachment for its whole life. The
//! owner word and the entry's holds are changed only by whoever holds that lock: the
//! attachment itself, or a recoverer or attacher that took the lock of a dead one. So
//! the owner word cannot change under a recoverer, and an entry whose recoverer died
//! mid-way is simply recovered again (clearing holds is idempotent).

use core::ptr::NonNull;

use super::ShmError;
use super::entry::{self, EntryLocks};
use super::layout::*;
use super::protocol::{self, generation_of, mask_of};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// The owner word of an attached entry, with the pid in the low half.
const ATTACHED: u64 = 1 << 56;

/// What [`Segment::recover`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Recovered {
    pub(crate) processes: u32,
    pub(crate) holds: u64,
    pub(crate) slots_freed: u64,
}

/// A validated segment: the memory it lives in and its layout, computed from the
/// header's class list and process count.
#[derive(Debug)]
pub(crate) struct Segment {
    base: NonNull<u8>,
    /// Computed from validated numbers; `layout.total` never exceeds the memory's length.
    layout: Layout,
    segment_id: u64,
}

// SAFETY: the segment is a pointer to memory that every process and thread accesses
// only through atomics, or (payload bytes) under the slot protocol that gives one
// writer exclusive access before publication and makes the bytes immutable after.
unsafe impl Send for Segment {}
// SAFETY: as for `Send`: `&Segment` only reaches atomics and protocol-governed bytes.
unsafe impl Sync for Segment {}

impl Segment {
    /// Writes a fresh segment for `classes` into `base` and returns it validated.
    ///
    /// # Safety
    ///
    /// `base` is 64-byte aligned, valid for reads and writes of `len` bytes for the whole
    /// life of the returned segment, zeroed, and accessed by nobody else until this
    /// returns (the caller publishes the segment afterwards).
    pub(crate) unsafe fn create(
        base: NonNull<u8>,
        len: usize,
        classes: &[ClassSpec],
        processes: u32,
        segment_id: u64,
    ) -> Result<Self, ShmError> {
        let layout = Layout::compute(classes, processes)
            .map_err(|BadLayout(what)| ShmError::InvalidOptions { what })?;
        if len < layout.total {
            return Err(ShmError::Truncated {
                len: len as u64,
                needed: layout.total as u64,
            });
        }
        let seg = Self {
            base,
            layout,
            segment_id,
        };
        // Relaxed: nobody else sees this memory until the magic is stored with Release
        // below (and the file is published after that).
        let r = Ordering::Relaxed;
        seg.u32_at(OFF_VERSION).store(VERSION, r);
        seg.u32_at(OFF_HEADER_SIZE).store(HEADER_SIZE as u32, r);
        seg.u64_at(OFF_TOTAL).store(seg.layout.total as u64, r);
        seg.u64_at(OFF_SEGMENT_ID).store(segment_id, r);
        seg.u32_at(OFF_CLASS_COUNT)
            .store(seg.layout.classes.len() as u32, r);
        seg.u32_at(OFF_PROCESSES).store(processes, r);
        seg.u64_at(OFF_PROC_TABLE)
            .store(seg.layout.proc_table as u64, r);
        for (i, c) in seg.layout.classes.iter().enumerate() {
            let rec = OFF_CLASSES + i * CLASS_RECORD;
            seg.u32_at(rec + REC_SLOT_SIZE).store(c.slot_size, r);
            seg.u32_at(rec + REC_CAPACITY).store(c.capacity, r);
            seg.u64_at(rec + REC_META).store(c.meta as u64, r);
            seg.u64_at(rec + REC_PAYLOAD).store(c.payload as u64, r);
        }
        // Every state word is 0 (free) in the zeroed memory.
        // Release: the magic is the last word written; an opener that Acquires it sees
        // the whole header.
        seg.u64_at(OFF_MAGIC).store(MAGIC, Ordering::Release);
        Ok(seg)
    }

    /// Validates the segment at `base` without trusting anything in it.
    ///
    /// # Safety
    ///
    /// `base` is 64-byte aligned and valid for reads and writes of `len` bytes for the
    /// whole life of the returned segment; every other accessor of the memory uses
    /// atomics for the header and metadata (true of every process running this code).
    pub(crate) unsafe fn open(base: NonNull<u8>, len: usize) -> Result<Self, ShmError> {
        let truncated = |needed: usize| ShmError::Truncated {
            len: len as u64,
            needed: needed as u64,
        };
        if len < HEADER_SIZE {
            return Err(truncated(HEADER_SIZE));
        }
        let probe = Self {
            base,
            layout: Layout {
                classes: Vec::new(),
                processes: 0,
                proc_table: 0,
                total: HEADER_SIZE,
                slots: 0,
            },
            segment_id: 0,
        };
        // Acquire: pairs with the Release store of the magic in `create`.
        if probe.u64_at(OFF_MAGIC).load(Ordering::Acquire) != MAGIC {
            return Err(ShmError::NotASegment);
        }
        // Relaxed (all header reads): ordered after the creator's writes by the
        // Acquire load of the magic; the header never changes afterwards.
        let r = Ordering::Relaxed;
        let version = probe.u32_at(OFF_VERSION).load(r);
        if version != VERSION {
            return Err(ShmError::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
        let corrupted = |what| ShmError::Corrupted { what };
        if probe.u32_at(OFF_HEADER_SIZE).load(r) as usize != HEADER_SIZE {
            return Err(corrupted("the header size is wrong for this version"));
        }
        let count = probe.u32_at(OFF_CLASS_COUNT).load(r) as usize;
        if count == 0 || count > MAX_CLASSES {
            return Err(corrupted("the class count is out of range"));
        }
        let specs: Vec<ClassSpec> = (0..count)
            .map(|i| {
                let rec = OFF_CLASSES + i * CLASS_RECORD;
                ClassSpec {
                    slot_size: probe.u32_at(rec + REC_SLOT_SIZE).load(r),
                    capacity: probe.u32_at(rec + REC_CAPACITY).load(r),
                }
            })
            .collect();
        let processes = probe.u32_at(OFF_PROCESSES).load(r);
        let layout =
            Layout::compute(&specs, processes).map_err(|BadLayout(what)| corrupted(what))?;
        let stored_total = probe.u64_at(OFF_TOTAL).load(r);
        if stored_total != layout.total as u64 {
            return Err(corrupted("the total size does not match the layout"));
        }
        if probe.u64_at(OFF_PROC_TABLE).load(r) != layout.proc_table as u64 {
            return Err(corrupted(
                "the process table offset does not match the layout",
            ));
        }
        for (i, c) in layout.classes.iter().enumerate() {
            let rec = OFF_CLASSES + i * CLASS_RECORD;
            if probe.u64_at(rec + REC_META).load(r) != c.meta as u64
                || probe.u64_at(rec + REC_PAYLOAD).load(r) != c.payload as u64
            {
                return Err(corrupted("a class offset does not match the layout"));
            }
        }
        if len < layout.total {
            return Err(truncated(layout.total));
        }
        let segment_id = probe.u64_at(OFF_SEGMENT_ID).load(r);
        Ok(Self {
            base,
            layout,
            segment_id,
        })
    }

    /// The validated layout.
    #[inline]
    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The random id written at creation.
    #[inline]
    pub(crate) fn segment_id(&self) -> u64 {
        self.segment_id
    }

    // ---- raw access (the only unsafe in the protocol) ----

    #[inline]
    fn u32_at(&self, offset: usize) -> &AtomicU32 {
        // `layout.total <= len` in every constructed segment (the probe's `total` is the
        // header size, which `open` checked first).
        assert!(offset % 4 == 0 && offset + 4 <= self.layout.total);
        // SAFETY: in bounds (asserted; `total <= len`) and 4-aligned (64-aligned base,
        // offset a multiple of 4); the memory lives as long as `self` (constructor
        // contract) and every process accesses it only atomically, at this width.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(offset).cast()) }
    }

    #[inline]
    fn u64_at(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.layout.total);
        // SAFETY: as in `u32_at`, with 8-byte alignment.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(offset).cast()) }
    }

    #[inline]
    fn meta(&self, global: u32) -> usize {
        debug_assert!(global < self.layout.slots);
        self.layout.classes[0].meta + global as usize * LINE
    }

    #[inline]
    pub(crate) fn state(&self, global: u32) -> &AtomicU64 {
        self.u64_at(self.meta(global) + META_STATE)
    }

    fn owner(&self, entry: u32) -> &AtomicU64 {
        assert!(entry < self.layout.processes);
        self.u64_at(self.layout.proc_table + entry as usize * LINE + PROC_OWNER)
    }

    /// The first payload byte of slot `index` of `class` (both in range).
    #[inline]
    pub(crate) fn payload(&self, class: usize, index: u32) -> NonNull<u8> {
        let c = &self.layout.classes[class];
        assert!(index < c.capacity);
        let offset = c.payload + index as usize * c.stride;
        // SAFETY: `offset + stride <= total <= len` by the layout arithmetic, so the
        // pointer stays inside the block `base` points to and is not null.
        unsafe { NonNull::new_unchecked(self.base.as_ptr().add(offset)) }
    }

    // ---- slots ----

    /// Claims a free slot of `class` for the process with mask bit `bit`: exclusively
    /// ours until `activate` (or, if we die first, until recovery of our entry frees
    /// it). Scans the class's state words from index `from` (any value; taken modulo
    /// the capacity), claiming the first free one with one compare-exchange. Returns its
    /// global index, `None` if every slot of the class is taken.
    pub(crate) fn claim(&self, class: usize, bit: u32, from: u32) -> Option<u32> {
        let c = self.layout.classes[class];
        let start = from % c.capacity;
        (start..c.capacity)
            .chain(0..start)
            .map(|index| c.first + index)
            .find(|&global| protocol::claim(self.state(global), bit))
    }

    /// Publishes a claimed slot with one hold by the process with mask bit `bit`;
    /// returns its new generation. The caller claimed the slot and wrote its payload.
    pub(crate) fn activate(&self, global: u32, bit: u32, len: u32, event_type: u32) -> u32 {
        let meta = self.meta(global);
        // Relaxed: published by the Release store in `protocol::activate`.
        self.u32_at(meta + META_LEN).store(len, Ordering::Relaxed);
        self.u32_at(meta + META_TYPE)
            .store(event_type, Ordering::Relaxed);
        protocol::activate(self.state(global), bit)
    }

    /// Sets `bit` if the slot is live in `generation`: the first hold of a process.
    pub(crate) fn join(&self, global: u32, generation: u32, bit: u32) -> bool {
        protocol::join(self.state(global), generation, bit)
    }

    /// Clears `bit` (the caller's process held the slot); returns `true` if that was the
    /// last hold: the slot is then free (claimable at once).
    pub(crate) fn leave(&self, global: u32, bit: u32) -> bool {
        let last = protocol::clear_bit(self.state(global), bit);
        debug_assert!(last.is_some(), "left a slot not held");
        last == Some(true)
    }

    /// The generation and mask of a slot (a snapshot).
    #[inline]
    pub(crate) fn snapshot(&self, global: u32) -> (u32, u32) {
        // Relaxed: statistics or a check made while the caller holds the slot.
        let s = self.state(global).load(Ordering::Relaxed);
        (generation_of(s), mask_of(s))
    }

    /// Payload length and event type of a slot the caller holds.
    #[inline]
    pub(crate) fn len_and_type(&self, global: u32) -> (u32, u32) {
        let meta = self.meta(global);
        // Relaxed: written before the Release store in `activate`, which the caller's
        // hold is ordered after (Acquire join, or made by the activating process).
        (
            self.u32_at(meta + META_LEN).load(Ordering::Relaxed),
            self.u32_at(meta + META_TYPE).load(Ordering::Relaxed),
        )
    }

    // ---- processes ----

    /// Claims a process-table entry for `pid`: the first whose lock `locks` can take.
    /// An entry left by a dead attachment (owner word set, lock free) is recovered on
    /// the way. Returns the entry and what was recovered; `None` if every entry's lock
    /// is held.
    pub(crate) fn attach(
        &self,
        locks: &dyn EntryLocks,
        pid: u32,
    ) -> Result<Option<(u32, Recovered)>, ShmError> {
        for entry in 0..self.layout.processes {
            let mut report = Recovered::default();
            let word = ATTACHED | u64::from(pid);
            let claimed = entry::claim(self.owner(entry), locks, entry, word, || {
                report = self.clear_holds(entry);
                report.processes = 1;
            })?;
            if claimed.is_some() {
                return Ok(Some((entry, report)));
            }
        }
        Ok(None)
    }

    /// Releases `entry` after clearing every bit it still holds; the caller holds the
    /// entry's lock through `locks` and gives it up here.
    pub(crate) fn detach(&self, entry: u32, locks: &dyn EntryLocks) -> Recovered {
        let mut report = Recovered::default();
        entry::release(self.owner(entry), locks, entry, || {
            report = self.clear_holds(entry);
        });
        report
    }

    /// Clears the holds of every entry whose attachment is gone (its lock can be taken
    /// through `locks`) and frees the slots they held last. `mine` is the caller's own
    /// entry (whose lock `locks` already holds). Safe to run concurrently with live
    /// processes and other recoverers, but not from two threads through one `locks`
    /// (they would share the locks: the caller serialises).
    pub(crate) fn recover(&self, mine: u32, locks: &dyn EntryLocks) -> Recovered {
        let mut total = Recovered::default();
        for entry in (0..self.layout.processes).filter(|&e| e != mine) {
            entry::recover(self.owner(entry), locks, entry, || {
                let report = self.clear_holds(entry);
                total.processes += 1;
                total.holds += report.holds;
                total.slots_freed += report.slots_freed;
            });
        }
        total
    }

    /// Clears `entry`'s bit in every slot and frees the slots it held last, and those it
    /// claimed but never published. Idempotent: each bit is cleared by exactly one RMW,
    /// and only the RMW that empties a mask (or abandons a claim) frees.
    fn clear_holds(&self, entry: u32) -> Recovered {
        let bit = 1u32 << entry;
        let mut report = Recovered::default();
        for c in &self.layout.classes {
            for global in c.first..c.first + c.capacity {
                // Relaxed: a filter that keeps untouched lines clean; the RMWs decide.
                let mask = mask_of(self.state(global).load(Ordering::Relaxed));
                if mask & bit == 0 {
                    continue;
                }
                if mask & protocol::CLAIMED != 0 {
                    // Claimed by this entry and never published: the claimer died (or
                    // failed) between its claim and its publication.
                    if protocol::abandon_claim(self.state(global), bit) {
                        report.slots_freed += 1;
                    }
                    continue;
                }
                match protocol::clear_bit(self.state(global), bit) {
                    // Another recoverer of the same entry cleared it first.
                    None => {}
                    Some(last) => {
                        report.holds += 1;
                        if last {
                            report.slots_freed += 1;
                        }
                    }
                }
            }
        }
        report
    }

    /// Slots whose mask is non-zero, per class.
    pub(crate) fn in_use(&self) -> Vec<u32> {
        self.layout
            .classes
            .iter()
            .map(|c| {
                (c.first..c.first + c.capacity)
                    .filter(|&g| self.snapshot(g).1 != 0)
                    .count() as u32
            })
            .collect()
    }

    /// Entries currently owned (attached or being recovered).
    pub(crate) fn attached(&self) -> u32 {
        (0..self.layout.processes)
            // Relaxed: statistics.
            .filter(|&e| self.owner(e).load(Ordering::Relaxed) != 0)
            .count() as u32
    }
}
