//! The slot state word of a segment, `generation << 32 | process mask`, and every
//! transition of it, as functions over one atomic.
//!
//! This file depends only on `crate::sync`, so `tests/loom_shm.rs` includes it with loom's
//! atomics behind that name and model-checks the same code that runs on the mapping.
//!
//! * A slot is free when its mask is 0. A process takes a free slot by marking it
//!   `CLAIMED | its bit` with a compare-exchange ([`claim`]): one winner, never two.
//!   Only the claimer writes its state then ([`activate`]), with one plain Release
//!   store; if it dies first, recovery of its entry frees the slot ([`abandon_claim`]).
//! * Bit `p` is set while the process at table entry `p` holds the slot: [`join`] sets it
//!   (if the generation matches and the slot is live), [`clear_bit`] clears it, and the
//!   clear that empties the mask frees the slot (claimable at once).
//! * Nobody but process `p` sets bit `p`; recovery clears the bits of dead processes with
//!   the same [`clear_bit`]. Each bit is cleared by exactly one RMW, so a slot is freed
//!   exactly once.

use crate::sync::{AtomicU64, Ordering};

/// `generation << 32 | mask`.
#[inline]
pub(crate) const fn pack(generation: u32, mask: u32) -> u64 {
    ((generation as u64) << 32) | mask as u64
}

/// The generation of a state word.
#[inline]
pub(crate) const fn generation_of(state: u64) -> u32 {
    (state >> 32) as u32
}

/// The process mask of a state word.
#[inline]
pub(crate) const fn mask_of(state: u64) -> u32 {
    state as u32
}

/// The marker of a slot claimed and not yet published: the mask is
/// then `CLAIMED | bit` of the claiming process (entries use bits 0 to 30). `join`
/// refuses it; if the claimer dies before publishing, recovery of its entry finds its
/// bit and returns the slot ([`abandon_claim`]).
pub(crate) const CLAIMED: u32 = 1 << 31;

/// Claims a free slot for the process with mask bit `bit`: `false` if it is not free
/// (its mask is not 0). The winner of this CAS owns the slot; a loser must not touch it.
#[inline]
pub(crate) fn claim(state: &AtomicU64, bit: u32) -> bool {
    // Relaxed: a comparison value; the CAS decides.
    let current = state.load(Ordering::Relaxed);
    if mask_of(current) != 0 {
        return false;
    }
    state
        .compare_exchange(
            current,
            current | u64::from(CLAIMED | bit),
            // Acquire: pairs with the Release clears that freed the slot (this CAS reads
            // from their release sequence), so every access of the slot's last holders
            // happens-before the claimer's payload writes.
            Ordering::Acquire,
            Ordering::Relaxed,
        )
        .is_ok()
}

/// Recovery of the dead process with mask bit `bit`: if it claimed this slot and died
/// before publishing it, makes the slot free again (mask 0, same generation) and returns
/// `true`. Exactly one caller gets `true` per abandoned claim.
#[inline]
pub(crate) fn abandon_claim(state: &AtomicU64, bit: u32) -> bool {
    // Relaxed: a comparison value; the CAS decides.
    let current = state.load(Ordering::Relaxed);
    if mask_of(current) != CLAIMED | bit {
        return false;
    }
    state
        .compare_exchange(
            current,
            pack(generation_of(current), 0),
            // AcqRel: Acquire orders the dead claimer's writes before the slot's reuse
            // (with the entry lock's ordering); Release publishes the free state to the
            // next claimer.
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok()
}

/// Publishes a slot the caller claimed (mask `CLAIMED | bit`, payload written) with one
/// hold by the process with mask bit `bit`; returns its new generation.
#[inline]
pub(crate) fn activate(state: &AtomicU64, bit: u32) -> u32 {
    // Relaxed: nobody else writes the state word of a claimed slot (joins refuse the
    // claimed marker, a second claim fails, recovery abandons only a dead claimer's),
    // and the caller's claim ordered it after the last release.
    let generation = generation_of(state.load(Ordering::Relaxed)).wrapping_add(1);
    // Release: publishes the payload, length and type to every process that Acquires
    // this word (a join) or a later RMW of its release sequence.
    state.store(pack(generation, bit), Ordering::Release);
    generation
}

/// Sets `bit` if the slot is live in `generation`: the first hold of a process.
#[inline]
pub(crate) fn join(state: &AtomicU64, generation: u32, bit: u32) -> bool {
    // Relaxed: a comparison value; the CAS below is Acquire.
    let mut current = state.load(Ordering::Relaxed);
    loop {
        let mask = mask_of(current);
        if generation_of(current) != generation || mask == 0 || mask & CLAIMED != 0 {
            return false;
        }
        match state.compare_exchange_weak(
            current,
            current | u64::from(bit),
            // Acquire: pairs with the Release store in `activate` (through its release
            // sequence), so the payload is visible to the new holder.
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            Ok(_) => return true,
            Err(actual) => current = actual,
        }
    }
}

/// Clears `bit`: `None` if it was not set, `Some(true)` if it was the last bit (the slot
/// is then free), `Some(false)` otherwise.
#[inline]
pub(crate) fn clear_bit(state: &AtomicU64, bit: u32) -> Option<bool> {
    // Release: orders this process's payload reads before the slot can be reused.
    let previous = state.fetch_and(!u64::from(bit), Ordering::Release);
    if mask_of(previous) & bit == 0 {
        return None;
    }
    if mask_of(previous) != bit {
        return Some(false);
    }
    // Acquire: pairs with every other process's Release clear, so all their reads
    // happen-before the slot's reuse.
    crate::sync::acquire_fence!(state);
    Some(true)
}
