//! The per-slot protocol: one state word (generation | escaped flag | strong count), a
//! raw-hold word for `u64` tokens, and the rules for claiming, sharing and releasing a
//! slot.
//!
//! Nothing outside this module reads or writes a slot's counters directly.
//!
//! # Lifecycle of a slot
//!
//! ```text
//!            claim (pool pop, exclusive)           last strong release
//!  free ───────────────────────────────▶ live ───────────────────────────▶ free
//!  (gen g, strong 0)       (gen g+1, strong 1..)   (gen g+1, strong 0) → free list
//! ```
//!
//! * A slot is *free* when its strong count is 0; only the thread that popped it from the
//!   free list (or took it fresh from the pool) may write its payload, and it publishes
//!   the payload with the Release store in [`SlotHeader::activate`].
//! * The generation changes on every claim, so a weak handle or token from an earlier
//!   life sees a different generation and is refused.
//! * Strong counts follow `Arc`: Relaxed increments from an existing handle, Release
//!   decrements, an Acquire fence after the decrement that reaches zero.
//! * The *escaped flag* is set (for the rest of the slot's life) by the first
//!   downgrade and by the first `into_raw`: from then on a reference can appear without
//!   being cloned from a strong handle (a weak handle upgrades, a token is cloned by
//!   `clone_raw`). A handle that reads `strong == 1` with the flag clear in one Acquire
//!   load is the only reference of any kind, and no other can appear: with the flag
//!   clear, every reference is cloned from an existing strong handle, and the reader
//!   holds the only one. Such a handle releases the slot with a plain store instead of a
//!   read-modify-write ([`SlotState::release_strong`]), and `get_mut` may hand out
//!   `&mut` ([`SlotState::is_unique`]), which makes the common "allocate, pass on, drop"
//!   life free of locked instructions.
//!
//! # Every way a reference is made, and why the flag covers it
//!
//! The plain-store release and `get_mut` rely on a global invariant: *while the escaped
//! flag is clear, no reference appears except by cloning an existing strong handle*.
//! Every API that makes a reference, and why it keeps the invariant (each has a loom
//! model in `tests/loom_core.rs` or `tests/loom_tokens.rs`):
//!
//! | API | how it makes a reference | why the invariant holds |
//! |---|---|---|
//! | `allocate` / `alloc` | [`SlotState::activate`] on a free slot | the slot was free: no other reference of any kind exists |
//! | `RingPtr::clone` | [`SlotState::acquire_strong`] | made from an existing strong handle |
//! | `WeakRingPtr::upgrade` | [`SlotState::try_acquire_strong`] | `downgrade` set the flag first, while holding a strong handle; the CAS requires the flag, so a weak handle whose generation wrapped around into a life that never escaped is refused |
//! | `into_raw` / `from_raw` | [`SlotState::park_raw`] / [`SlotState::take_raw`] | a transfer: the parked hold *is* a strong reference; `into_raw` sets the flag anyway, for `clone_raw` |
//! | `clone_raw` | [`SlotState::has_raw`] then [`SlotState::try_acquire_strong`] | `into_raw` set the flag before parking, and `has_raw` acquires the park, so the flag is in the word before the clone's CAS |
//! | heap-event tokens | a strong reference held by the allocator's token table | clones are made from that held reference, under the table's lock |
//!
//! The flag is conservative: once a weak handle or a token was made, `get_mut` returns
//! `None` and releases take the `fetch_sub` path for the rest of that life, even after the
//! weak handle or token is gone (tracking that exactly would cost every release an extra
//! read-modify-write).

use core::ptr::NonNull;

use crate::pool::Pool;
use crate::sync::{AtomicU32, AtomicU64, Ordering, abort_on_overflow, acquire_fence};

/// The largest strong or raw-hold count before the process aborts (as `Arc` does).
///
/// Half of the 31-bit count field: even if every thread of a process incremented at once
/// past this check, the count could not carry into the escaped flag or the generation.
pub(crate) const MAX_REFCOUNT: u32 = 1 << 30;

/// A packed `generation << 32 | flag << 31 | count` word: the encoding of both the state
/// word (flag = a weak handle or token was made in this life) and the raw-hold word (flag unused),
/// in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Packed(u64);

impl Packed {
    const COUNT_MASK: u64 = 0x7FFF_FFFF;
    const FLAG: u64 = 1 << 31;
    const GEN_SHIFT: u32 = 32;

    #[inline]
    pub(crate) const fn new(generation: u32, count: u32) -> Self {
        Self(((generation as u64) << Self::GEN_SHIFT) | count as u64)
    }

    #[inline]
    pub(crate) const fn generation(self) -> u32 {
        (self.0 >> Self::GEN_SHIFT) as u32
    }

    #[inline]
    pub(crate) const fn count(self) -> u32 {
        (self.0 & Self::COUNT_MASK) as u32
    }

    /// The state word's escaped flag: a weak handle or a token was made in this life.
    #[inline]
    pub(crate) const fn escaped(self) -> bool {
        self.0 & Self::FLAG != 0
    }
}

/// The position-independent part of a slot: its counters and event metadata, all
/// atomics. It holds no pointers, so it works in any memory several threads (or, in
/// shared memory, several processes) map, and it is valid when zeroed (a free slot of
/// generation 0).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct SlotState {
    /// `Packed(generation, strong count)`. Strong count 0 means free.
    state: AtomicU64,
    /// `Packed(generation, raw holds)`: strong counts parked in `u64` tokens by
    /// `into_raw`, taken back (once each) by `from_raw`.
    raw: AtomicU64,
    /// Free-list link: 1 + index of the next free slot, 0 at the end. Owned by the pool.
    pub(crate) next_free: AtomicU32,
    /// Payload length of a byte event. Written by the claiming thread before the Release
    /// store in `activate`, so every handle holder sees it.
    len: AtomicU32,
    /// Event type of a byte event, published like `len`.
    event_type: AtomicU32,
}

/// The bookkeeping of one slot of an in-process pool: its [`SlotState`] plus where its
/// payload and pool are. Headers live in the pool's header array, one cache line per
/// slot, so threads handing different events around never write the same line.
#[repr(C, align(64))]
pub(crate) struct SlotHeader {
    counters: SlotState,
    /// This slot's index in its pool. Immutable.
    index: u32,
    /// The pool that owns this slot. Immutable; the pool outlives every handle.
    pool: NonNull<Pool>,
    /// Start of this slot's payload bytes in the pool's data block. Immutable.
    data: NonNull<u8>,
    /// Lets loom check payload accesses for causality (the bytes themselves are raw
    /// memory loom cannot see).
    #[cfg(loom)]
    payload_access: crate::sync::UnsafeCell<()>,
}

#[cfg(not(loom))]
static_assertions::const_assert_eq!(core::mem::size_of::<SlotHeader>(), 64);
#[cfg(not(loom))]
static_assertions::const_assert_eq!(core::mem::size_of::<SlotState>(), 32);

impl SlotHeader {
    /// A free slot of generation 0.
    pub(crate) fn new(index: u32, pool: NonNull<Pool>, data: NonNull<u8>) -> Self {
        Self {
            counters: SlotState::new(),
            index,
            pool,
            data,
            #[cfg(loom)]
            payload_access: crate::sync::UnsafeCell::new(()),
        }
    }

    /// This slot's index in its pool.
    #[inline]
    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// The pool that owns this slot.
    #[inline]
    pub(crate) fn pool(&self) -> NonNull<Pool> {
        self.pool
    }

    /// The first payload byte. Reading or writing through it is governed by the slot
    /// protocol: only the claiming thread writes, before `activate`; handle holders read.
    #[inline]
    pub(crate) fn data(&self) -> NonNull<u8> {
        self.note_payload_read();
        self.data
    }

    /// Records a payload read for loom's causality checker (no-op otherwise).
    #[inline]
    fn note_payload_read(&self) {
        #[cfg(loom)]
        self.payload_access.with(|_| ());
    }

    /// Records a payload write for loom's causality checker (no-op otherwise).
    #[inline]
    pub(crate) fn data_for_write(&self) -> NonNull<u8> {
        #[cfg(loom)]
        self.payload_access.with_mut(|_| ());
        self.data
    }
}

impl core::ops::Deref for SlotHeader {
    type Target = SlotState;

    #[inline]
    fn deref(&self) -> &SlotState {
        &self.counters
    }
}

impl SlotState {
    /// A free slot of generation 0 (the same as all-zero memory).
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU64::new(0),
            raw: AtomicU64::new(0),
            next_free: AtomicU32::new(0),
            len: AtomicU32::new(0),
            event_type: AtomicU32::new(0),
        }
    }

    /// Payload length of a byte event.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        // Relaxed: written before the Release store in `activate`; every handle holder
        // is ordered after that store (it got its handle from the claimer, from an
        // Acquire upgrade, or from an Acquire token check).
        self.len.load(Ordering::Relaxed) as usize
    }

    /// Event type of a byte event.
    #[inline]
    pub(crate) fn event_type(&self) -> u32 {
        // Relaxed: published like `len`.
        self.event_type.load(Ordering::Relaxed)
    }

    /// Turns a freshly claimed (free, exclusively owned) slot into a live one with one
    /// strong reference, and returns its new generation.
    ///
    /// The caller has popped this slot from the free list (or taken it fresh), so no
    /// handle, weak handle or token of the current generation can reach its payload.
    #[inline]
    pub(crate) fn activate(&self, len: u32, event_type: u32) -> u32 {
        // Relaxed: published by the Release store below.
        self.len.store(len, Ordering::Relaxed);
        self.event_type.store(event_type, Ordering::Relaxed);
        // Relaxed: nobody else writes a free slot's state; our exclusive claim (the
        // Acquire pop in the free list) already ordered us after its last release.
        let previous = Packed(self.state.load(Ordering::Relaxed));
        debug_assert_eq!(previous.count(), 0, "claimed a live slot");
        let generation = previous.generation().wrapping_add(1);
        // A new life: one strong reference, escaped flag clear.
        // Release: publishes the payload, `len` and `event_type` to every thread that
        // later Acquires this word (upgrade, from_raw) or a later RMW of its release
        // sequence (clones and drops are RMWs, so they continue the sequence).
        self.state
            .store(Packed::new(generation, 1).0, Ordering::Release);
        generation
    }

    /// The current generation (stable while the caller holds a strong reference).
    #[inline]
    pub(crate) fn generation(&self) -> u32 {
        // Relaxed: the caller holds a strong reference, so the generation cannot change.
        Packed(self.state.load(Ordering::Relaxed)).generation()
    }

    /// The current strong count.
    #[inline]
    pub(crate) fn strong_count(&self) -> u32 {
        // Relaxed: a snapshot for introspection, like `Arc::strong_count`.
        Packed(self.state.load(Ordering::Relaxed)).count()
    }

    /// The strong count as of now, or 0 if the slot is not in `generation` (statistics).
    #[inline]
    pub(crate) fn snapshot(&self) -> Packed {
        // Relaxed: statistics snapshot; no memory is read on the strength of it.
        Packed(self.state.load(Ordering::Relaxed))
    }

    /// Adds a strong reference on behalf of a caller that already holds one.
    #[inline]
    pub(crate) fn acquire_strong(&self) {
        // Relaxed: the caller's existing reference keeps the slot live, and a new
        // reference made from it needs no ordering of its own (same argument as
        // `Arc::clone`). Visibility of the payload travels with the handle.
        let previous = Packed(self.state.fetch_add(1, Ordering::Relaxed));
        if previous.count() > MAX_REFCOUNT {
            abort_on_overflow();
        }
    }

    /// Drops a strong reference. Returns `true` if it was the last one: the slot is then
    /// free, the caller must return it to the pool, and every access of every former
    /// holder happens-before the caller's return (Release decrements + Acquire fence).
    #[inline]
    pub(crate) fn release_strong(&self) -> bool {
        // Acquire: if this is the last reference, pairs with the Release decrements of
        // every former holder (through the RMW chain on this word), so their reads
        // happen-before the slot's reuse; otherwise only a hint for the fast path.
        let current = Packed(self.state.load(Ordering::Acquire));
        if current.count() == 1 && !current.escaped() {
            // We are the only reference of any kind and none can appear (module docs),
            // so nobody else writes this word until the slot is claimed again.
            // Relaxed: the next claimer is ordered after us by the free list's
            // Release push / Acquire pop (or by being this same thread).
            self.state
                .store(Packed::new(current.generation(), 0).0, Ordering::Relaxed);
            return true;
        }
        // Release: orders this holder's payload reads before the final decrement.
        let previous = Packed(self.state.fetch_sub(1, Ordering::Release));
        debug_assert!(previous.count() > 0, "released a free slot");
        if previous.count() != 1 {
            return false;
        }
        // Acquire: pairs with every other holder's Release decrement, so all their
        // reads happen-before the slot is reused.
        acquire_fence!(self.state);
        true
    }

    /// Adds a strong reference if the slot is still live in `generation` and escaped in
    /// it: the upgrade of a weak handle, or `clone_raw` of a token.
    #[inline]
    pub(crate) fn try_acquire_strong(&self, generation: u32) -> bool {
        // Relaxed: only a comparison value; the successful CAS below is Acquire. A
        // legitimate caller is ordered after the `mark_escaped` of this life (the weak
        // handle or token reached it from the thread that set the flag, or `has_raw`
        // acquired the park), so even this load sees the flag.
        let mut current = Packed(self.state.load(Ordering::Relaxed));
        loop {
            // The escaped flag is part of the check: a weak handle or token of *this* life
            // set it before it existed. One that finds the generation equal but the flag
            // clear slept through exactly 2^32 reuses of the slot (the generation wrapped)
            // and is refused; without this check its reference would appear in a life
            // whose handles take the plain-store release and `get_mut` (found by the
            // adversarial review).
            if current.generation() != generation || current.count() == 0 || !current.escaped() {
                return false;
            }
            if current.count() > MAX_REFCOUNT {
                abort_on_overflow();
            }
            match self.state.compare_exchange_weak(
                current.0,
                current.0 + 1,
                // Acquire: pairs with the Release store in `activate` (through its
                // release sequence), so the payload is visible to the new handle.
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => current = Packed(actual),
            }
        }
    }

    /// Whether the caller's strong reference is the only reference of any kind and no
    /// weak handle or token was made in this life (so no reference can appear).
    #[inline]
    pub(crate) fn is_unique(&self) -> bool {
        // Acquire: pairs with the Release decrements of former holders, so their reads
        // happen-before the caller's writes through the unique reference. One load sees
        // both the count and the escaped flag, so no weak handle or token can slip in
        // between two checks; while the caller holds `&mut` to its handle, no new
        // reference can be made (module docs: with the flag clear, references are only
        // cloned from strong handles, and the caller's is the only one), so the answer
        // stays true.
        let current = Packed(self.state.load(Ordering::Acquire));
        current.count() == 1 && !current.escaped()
    }

    /// Records that a reference may from now on appear without being cloned from a strong
    /// handle: a weak handle or a token exists in this life. The caller holds a strong
    /// reference, and must call this *before* the weak handle or token can be used.
    #[inline]
    pub(crate) fn mark_escaped(&self) {
        // Relaxed for the flag itself: it only has to be in the word's modification order
        // before the caller's own later decrement (coherence guarantees that), and before
        // any reference made through the escape hatch. An upgrade's CAS is ordered after
        // it because the weak handle reached the upgrader from this thread; a token's
        // `clone_raw` because `park_raw` (Release, after this in program order) is
        // acquired by `has_raw` before the clone's CAS.
        self.state.fetch_or(Packed::FLAG, Ordering::Relaxed);
    }

    /// Parks one of the caller's strong references in the raw-hold word, to be taken
    /// back by [`SlotState::take_raw`] with the same generation. The caller must have
    /// called [`mark_escaped`](Self::mark_escaped) first (for `clone_raw`).
    #[inline]
    pub(crate) fn park_raw(&self, generation: u32) {
        // Relaxed: comparison value; the CAS below is Release.
        let mut current = Packed(self.raw.load(Ordering::Relaxed));
        loop {
            // Holds of an older generation are all gone: a parked hold keeps the slot
            // live, so the generation cannot have moved while one existed.
            let next = if current.generation() == generation {
                if current.count() > MAX_REFCOUNT {
                    abort_on_overflow();
                }
                Packed::new(generation, current.count() + 1)
            } else {
                debug_assert_eq!(current.count(), 0, "raw holds survived their slot");
                Packed::new(generation, 1)
            };
            match self.raw.compare_exchange_weak(
                current.0,
                next.0,
                // Release: pairs with the Acquire in `take_raw`.
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => current = Packed(actual),
            }
        }
    }

    /// Whether a strong reference of `generation` is parked (a token of it is unused).
    ///
    /// When `true`, everything the parking thread did before `park_raw` (its payload
    /// writes through `get_mut`, and `mark_escaped`) happens-before the caller's next
    /// steps, so a following [`try_acquire_strong`](Self::try_acquire_strong) is ordered
    /// after the escaped flag.
    #[inline]
    pub(crate) fn has_raw(&self, generation: u32) -> bool {
        // Acquire: pairs with the Release CAS in `park_raw` (the raw word's RMWs form one
        // release sequence), so the parker's payload writes and its `mark_escaped` are
        // visible before the caller clones. A token may travel through a Relaxed atomic,
        // so this is the only edge from the parker to the cloner.
        let current = Packed(self.raw.load(Ordering::Acquire));
        let holds = |p: Packed| p.generation() == generation && p.count() > 0;
        holds(current) || holds(self.raw_latest())
    }

    /// The raw-hold word as of the latest write to it: a read-modify-write, which reads
    /// the last value in the word's modification order where a plain load may read an
    /// older one. A token can reach a thread faster than the park that made it (through
    /// a Relaxed atomic, say); a refusal is only given after this confirms it. Cold: the
    /// success paths never need it.
    #[cold]
    fn raw_latest(&self) -> Packed {
        // Acquire: pairs with the Release in `park_raw`, as the loads it backs up do.
        Packed(self.raw.fetch_add(0, Ordering::Acquire))
    }

    /// Takes back one parked strong reference of `generation`. `false` if there is none:
    /// the token is stale (its slot was released or reused) or was already used.
    #[inline]
    pub(crate) fn take_raw(&self, generation: u32) -> bool {
        // Relaxed: comparison value; the successful CAS is Acquire.
        let mut current = Packed(self.raw.load(Ordering::Relaxed));
        let mut confirmed = false;
        loop {
            if current.generation() != generation || current.count() == 0 {
                if confirmed {
                    return false;
                }
                // The load may predate the park (see `raw_latest`); confirm first.
                current = self.raw_latest();
                confirmed = true;
                continue;
            }
            match self.raw.compare_exchange_weak(
                current.0,
                current.0 - 1,
                // Acquire: pairs with the Release in `park_raw`, whose thread was
                // ordered after `activate`; so the payload is visible to the new handle.
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    // The parked hold is a strong reference, so the slot is live in
                    // this generation.
                    debug_assert_eq!(self.snapshot().generation(), generation);
                    return true;
                }
                Err(actual) => current = Packed(actual),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Packed, SlotState};

    #[test]
    fn packed_round_trips() {
        for (generation, count) in [(0, 0), (1, 1), (u32::MAX, 7), (12345, 0x7FFF_FFFF)] {
            let p = Packed::new(generation, count);
            assert_eq!(p.generation(), generation);
            assert_eq!(p.count(), count);
        }
    }

    /// A weak handle or token whose generation wrapped around (2^32 reuses later) finds
    /// its generation again, in a life with no weak handle or token: refused, because a
    /// reference appearing there would break the plain-store release and `get_mut`.
    #[test]
    fn a_wrapped_generation_is_refused_unless_the_life_escaped() {
        let slot = SlotState::new();
        let generation = slot.activate(1, 0);
        assert!(
            !slot.try_acquire_strong(generation),
            "no weak handle or token was made in this life"
        );
        assert!(slot.is_unique());
        slot.mark_escaped();
        assert!(slot.try_acquire_strong(generation));
        assert_eq!(slot.strong_count(), 2);
        assert!(!slot.is_unique());
    }

    #[test]
    fn count_increment_does_not_touch_generation_or_flag() {
        let p = Packed(Packed::new(9, 41).0 | Packed::FLAG);
        let q = Packed(p.0 + 1);
        assert_eq!((q.generation(), q.count(), q.escaped()), (9, 42, true));
        assert!(!Packed::new(9, 41).escaped());
        assert!(super::MAX_REFCOUNT <= Packed::COUNT_MASK as u32 / 2 + 1);
    }
}
