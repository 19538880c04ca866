//! The ring of sequenced slots and the seqlock protocol over it: the only code that
//! touches a slot's sequence word or payload words.
//!
//! A slot is the payload as `AtomicU64` words on whole cache lines, starting on a line
//! boundary, so it is aligned for any `T` aligned to 64 bytes or less and can be read in
//! place as a `&T` when the writer provably stays away from the slot (see
//! [`Slots::with_in_place`]); a 64-byte event takes exactly one line. Each slot's
//! sequence word lives in a separate array, eight to a line, so it adds no line to the
//! slot. Every access the seqlock makes to shared data is atomic, so a reader copying a
//! slot while the writer overwrites it is not a data race; the sequence word tells the
//! reader afterwards whether the copy can be trusted (H.-J. Boehm, "Can seqlocks get along with
//! programming language memory models?", MSPC 2012, figure 6).
//!
//! Sequence word of a slot, for event number `s` (events count from 0):
//!
//! | value        | meaning                                     |
//! |--------------|---------------------------------------------|
//! | `0`          | never written                               |
//! | `2 * s + 1`  | the writer is copying event `s` in (odd)    |
//! | `2 * s + 2`  | event `s` is complete (even)                |
//!
//! Event `s` lives in slot `s % CAP`, so the word only grows, and a reader that finds a
//! value above the one it wants knows it was lapped, and by which event.

use core::marker::PhantomData;

use bytemuck::Pod;

use crate::sync::{AtomicU64, Ordering, fence};

/// Words per cache line.
const LINE_WORDS: usize = 8;

/// One cache line of atomic words. Slots start on line boundaries, so the writer filling
/// one slot never shares a line with a reader copying its neighbour.
#[repr(C, align(64))]
struct Line([AtomicU64; LINE_WORDS]);

impl Line {
    fn new() -> Self {
        Self(core::array::from_fn(|_| AtomicU64::new(0)))
    }
}

/// The largest event number a ring accepts: `2 * s + 2` must fit the sequence word.
pub(super) const MAX_SEQ: u64 = (u64::MAX - 2) / 2;

/// What [`Slots::read`] found in the slot of the wanted event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Read<T> {
    /// The event, copied out whole.
    Event(T),
    /// The event is not published yet (the slot holds an older one, or none).
    NotYet,
    /// The writer has overwritten the slot with event `newer` (complete or in progress),
    /// so the wanted event is gone; `newer >= wanted + CAP`.
    Lapped {
        /// The event the slot holds or is being filled with.
        newer: u64,
    },
}

/// `CAP` slots of `T`, heap-allocated and zeroed (all slots "never written").
pub(super) struct Slots<T, const CAP: usize> {
    /// The payloads, `LINES` lines a slot.
    lines: Box<[Line]>,
    /// The sequence words, slot `i`'s at word `i % 8` of line `i / 8`.
    seqs: Box<[Line]>,
    _values: PhantomData<fn() -> T>,
}

impl<T: Pod, const CAP: usize> Slots<T, CAP> {
    /// Payload words per slot (the last one zero-padded).
    const WORDS: usize = size_of::<T>().div_ceil(8);
    /// Cache lines per slot: the payload words, rounded up (at least one line, so that
    /// even an empty `T` has a slot).
    pub(super) const LINES: usize = if Self::WORDS == 0 {
        1
    } else {
        Self::WORDS.div_ceil(LINE_WORDS)
    };
    /// Whether a slot's payload is aligned for `T` (slots start on 64-byte boundaries).
    #[cfg_attr(
        loom,
        allow(dead_code, reason = "loom copies: its atomics are not memory")
    )]
    const ALIGNED: bool = align_of::<T>() <= 64;
    /// Index mask: `CAP` is a power of two.
    const MASK: u64 = CAP as u64 - 1;

    /// A ring whose every slot is "never written".
    ///
    /// The lines are built one by one straight into their heap block, so even a large
    /// ring never passes through the stack.
    pub(super) fn new() -> Self {
        let lines = (0..CAP * Self::LINES).map(|_| Line::new()).collect();
        let seqs = (0..CAP.div_ceil(LINE_WORDS)).map(|_| Line::new()).collect();
        Self {
            lines,
            seqs,
            _values: PhantomData,
        }
    }

    /// The lines of the slot that holds event `seq`.
    #[inline(always)]
    fn slot(&self, seq: u64) -> &[Line] {
        // The mask keeps the index below CAP, which fits `usize` (it sized the storage).
        let start = (seq & Self::MASK) as usize * Self::LINES;
        debug_assert!(start + Self::LINES <= self.lines.len());
        // SAFETY: `new` made `CAP * LINES` lines and the index is below CAP, so
        // `start + LINES <= CAP * LINES`: the range is in bounds. (Unchecked: this runs
        // once per event on the writer's and readers' hot paths.)
        unsafe { self.lines.get_unchecked(start..start + Self::LINES) }
    }

    /// The sequence word of the slot that holds event `seq`.
    #[inline(always)]
    fn seq_word(&self, seq: u64) -> &AtomicU64 {
        // The mask keeps the index below CAP, which fits `usize`.
        let index = (seq & Self::MASK) as usize;
        debug_assert!(index / LINE_WORDS < self.seqs.len());
        // SAFETY: `new` made `CAP.div_ceil(8)` lines of sequence words and `index < CAP`,
        // so `index / 8` is in bounds.
        let line = unsafe { self.seqs.get_unchecked(index / LINE_WORDS) };
        &line.0[index % LINE_WORDS]
    }

    /// Payload word `i` (`i < WORDS`) of the slot.
    #[inline(always)]
    fn payload(slot: &[Line], i: usize) -> &AtomicU64 {
        &slot[i / LINE_WORDS].0[i % LINE_WORDS]
    }

    /// Copies `values` in as events `first..` and publishes each in its slot (the
    /// writer's cursor is the caller's business).
    ///
    /// Only the single writer calls this, with `first` past every event written before
    /// and the last event `<= MAX_SEQ`.
    #[inline]
    pub(super) fn write_all(&self, first: u64, values: &[T]) {
        for (seq, value) in (first..).zip(values) {
            self.write(seq, value);
        }
    }

    /// Copies `value` in as event `seq` and publishes it.
    ///
    /// Only the single writer calls this, with strictly increasing `seq <= MAX_SEQ`.
    #[inline(always)]
    pub(super) fn write(&self, seq: u64, value: &T) {
        let slot = self.slot(seq);
        let word = self.seq_word(seq);
        // Relaxed: the odd marker is ordered before the payload stores by the fence below,
        // which is what a reader relies on (its Acquire fence pairs with this one).
        word.store(2 * seq + 1, Ordering::Relaxed);
        // Release fence: a reader whose Relaxed load sees any payload store below also
        // sees (after its Acquire fence) the odd marker, so its re-check fails.
        fence(Ordering::Release);
        let mut chunks = bytemuck::bytes_of(value).chunks_exact(8);
        for (i, chunk) in (&mut chunks).enumerate() {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            // Relaxed: ordered for readers by the fence above and the Release store below.
            Self::payload(slot, i).store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
        }
        let tail = chunks.remainder();
        if !tail.is_empty() {
            let mut bytes = [0u8; 8];
            bytes[..tail.len()].copy_from_slice(tail);
            // Relaxed: as above.
            Self::payload(slot, Self::WORDS - 1)
                .store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
        }
        // Release: pairs with the reader's Acquire load of the even marker, making every
        // payload store above visible to a reader that sees "event `seq` complete".
        word.store(2 * seq + 2, Ordering::Release);
    }

    /// Copies event `seq` out if the slot holds it complete, never a torn value.
    #[inline]
    pub(super) fn read(&self, seq: u64) -> Read<T> {
        let slot = self.slot(seq);
        let word = self.seq_word(seq);
        let want = 2 * seq + 2;
        // Acquire: pairs with the writer's Release store of `want`, so the payload loads
        // below see at least event `seq`'s words.
        let before = word.load(Ordering::Acquire);
        if before < want {
            return Read::NotYet;
        }
        if before > want {
            return Read::Lapped {
                newer: event_of(before),
            };
        }
        let mut out = T::zeroed();
        let mut chunks = bytemuck::bytes_of_mut(&mut out).chunks_exact_mut(8);
        for (i, chunk) in (&mut chunks).enumerate() {
            // Relaxed: whether these values belong to event `seq` is decided by the
            // re-check below, never assumed.
            chunk.copy_from_slice(&Self::payload(slot, i).load(Ordering::Relaxed).to_ne_bytes());
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            // Relaxed: as above.
            let bytes = Self::payload(slot, Self::WORDS - 1)
                .load(Ordering::Relaxed)
                .to_ne_bytes();
            tail.copy_from_slice(&bytes[..tail.len()]);
        }
        // Acquire fence: if any load above read a later event's word, the writer's Release
        // fence (issued after that event's odd marker) synchronizes with this fence, so
        // the load below sees the odd marker or something later: never `want`.
        fence(Ordering::Acquire);
        // Relaxed: ordered after the payload loads by the fence above.
        let after = word.load(Ordering::Relaxed);
        if after == want {
            Read::Event(out)
        } else {
            Read::Lapped {
                newer: event_of(after),
            }
        }
    }

    /// Calls `f` with event `seq` read in place, by reference, without the seqlock's
    /// copy and re-check.
    ///
    /// # Safety
    ///
    /// Event `seq` is complete and visible to this thread (its publication
    /// happens-before this call: the caller loaded the writer's cursor past `seq` with
    /// Acquire), and no store to the slot happens until this call returns (the writer
    /// is held back from the slot; the store that releases it comes after this call).
    #[inline]
    pub(super) unsafe fn with_in_place<R>(&self, seq: u64, f: impl FnOnce(&T) -> R) -> R {
        #[cfg(not(loom))]
        {
            if Self::ALIGNED {
                // The mask keeps the index below CAP; the pointer comes from the whole
                // boxed slice, so it may cover every line of the slot.
                let start = (seq & Self::MASK) as usize * Self::LINES;
                // SAFETY: `start` is in bounds of `lines` (the index is below CAP and
                // the storage holds CAP * LINES lines).
                let line = unsafe { self.lines.as_ptr().add(start) };
                // The slot's payload words start at its first line, which is 64-byte
                // aligned (so aligned for `T`, `ALIGNED`) and holds `size_of::<T>()`
                // bytes the writer stored from a `T` (the slot's `LINES` lines hold its
                // `WORDS` payload words, contiguous). `T: Pod`: any bytes are a valid
                // `T`. The words are atomics (inside `UnsafeCell`), written only through
                // atomic stores that the caller's contract orders before or after `f`.
                // SAFETY: aligned, in bounds, initialised and a valid `T` (above); not a
                // data race: the writer's stores of these words happen-before this call
                // and none happens while `f` runs (the caller's contract).
                let value = unsafe { &*line.cast::<T>() };
                return f(value);
            }
        }
        // Loom (its atomics are not plain memory), or a `T` aligned to more than a cache
        // line: copy the words out without synchronization, which the contract allows.
        // Under loom, `unsync_load` checks the contract: it fails the model if a store
        // to the word is not ordered before it.
        let slot = self.slot(seq);
        // Loom switches threads only at atomic operations and `unsync_load` is none:
        // this Relaxed load (its value unused, it orders nothing) lets the writer run
        // between the caller's last atomic operation and the reads below.
        #[cfg(loom)]
        let _ = self.seq_word(seq).load(Ordering::Relaxed);
        let mut out = T::zeroed();
        let mut chunks = bytemuck::bytes_of_mut(&mut out).chunks_exact_mut(8);
        for (i, chunk) in (&mut chunks).enumerate() {
            chunk.copy_from_slice(&Self::unsync_load(Self::payload(slot, i)).to_ne_bytes());
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            let bytes = Self::unsync_load(Self::payload(slot, Self::WORDS - 1)).to_ne_bytes();
            tail.copy_from_slice(&bytes[..tail.len()]);
        }
        f(&out)
    }

    /// A load of a word that no store races, as the contract of `with_in_place` says.
    #[inline(always)]
    fn unsync_load(word: &AtomicU64) -> u64 {
        #[cfg(loom)]
        {
            // SAFETY: `with_in_place`'s contract: no store to this word races this load
            // (loom checks it).
            unsafe { word.unsync_load() }
        }
        #[cfg(not(loom))]
        {
            // Relaxed: the contract already orders every store to the word before this
            // load; no ordering is needed from the load itself.
            word.load(Ordering::Relaxed)
        }
    }
}

/// The event number a non-zero sequence word belongs to (odd: being written, even: done).
#[inline]
fn event_of(word: u64) -> u64 {
    (word - 1) / 2
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn layout_rounds_to_cache_lines() {
        assert_eq!(size_of::<Line>(), 64);
        assert_eq!(Slots::<u64, 4>::LINES, 1);
        assert_eq!(Slots::<[u64; 7], 4>::LINES, 1);
        assert_eq!(Slots::<[u64; 8], 4>::LINES, 1);
        assert_eq!(Slots::<[u64; 9], 4>::LINES, 2);
        assert_eq!(Slots::<[u8; 264], 4>::LINES, 5);
        assert_eq!(Slots::<(), 4>::LINES, 1);
    }

    #[test]
    fn sequence_words_decode() {
        assert_eq!(event_of(1), 0);
        assert_eq!(event_of(2), 0);
        assert_eq!(event_of(2 * 41 + 1), 41);
        assert_eq!(event_of(2 * 41 + 2), 41);
        assert_eq!(event_of(2 * MAX_SEQ + 2), MAX_SEQ);
    }

    #[test]
    fn read_sees_not_yet_event_and_lap() {
        let slots = Slots::<[u8; 13], 2>::new();
        assert_eq!(slots.read(0), Read::NotYet);
        slots.write(0, &[7; 13]);
        assert_eq!(slots.read(0), Read::Event([7; 13]));
        assert_eq!(slots.read(1), Read::NotYet);
        slots.write(1, &[8; 13]);
        slots.write(2, &[9; 13]); // overwrites event 0
        assert_eq!(slots.read(0), Read::Lapped { newer: 2 });
        assert_eq!(slots.read(1), Read::Event([8; 13]));
        assert_eq!(slots.read(2), Read::Event([9; 13]));
    }

    #[test]
    fn odd_sizes_round_trip() {
        let slots = Slots::<[u8; 3], 1>::new();
        slots.write(0, &[1, 2, 3]);
        assert_eq!(slots.read(0), Read::Event([1, 2, 3]));
        let wide = Slots::<[u128; 3], 4>::new();
        wide.write(0, &[u128::MAX, 5, 1 << 100]);
        assert_eq!(wide.read(0), Read::Event([u128::MAX, 5, 1 << 100]));
        let empty = Slots::<(), 4>::new();
        empty.write(0, &());
        assert_eq!(empty.read(0), Read::Event(()));
    }
}
