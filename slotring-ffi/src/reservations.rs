//! The open reservations of the C API (`slotring_event_reserve` .. `_publish` /
//! `_abandon`): each an [`EventBuilder`] kept in a table and named by a `u64` handle
//! `generation << 32 | (index + 1)`, so a handle used twice (a double publish, a publish
//! after an abandon) or never issued finds no open entry and is refused with a status,
//! instead of touching a slot it no longer owns. Handles are never 0. The generation is
//! drawn at random each time an entry is vacated (never the one before), so the handle
//! of another caller's reservation cannot be computed from a handle one held earlier:
//! a forged handle matches an open reservation with a chance of 1 in 2^32.
//!
//! One mutex guards the table: reserving and publishing are per-event calls of a C host,
//! and the slot protocol itself stays lock-free underneath.

use std::sync::{Mutex, PoisonError};

use slotring::ffi::SlotringStatus;
use slotring::{EventAllocator, EventBuilder};

/// A random 32-bit generation, different from `previous`. `RandomState` keys are
/// random per process and move on per call, so the values cannot be predicted from
/// earlier handles.
fn fresh_generation(previous: u32) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    loop {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(previous);
        let generation = hasher.finish() as u32;
        if generation != previous {
            return generation;
        }
    }
}

struct Entry {
    /// Drawn anew each time the entry is vacated, so older handles no longer match.
    generation: u32,
    builder: Option<EventBuilder>,
}

struct Table {
    entries: Vec<Entry>,
    /// Indices of vacant entries.
    vacant: Vec<u32>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    entries: Vec::new(),
    vacant: Vec::new(),
});

fn lock() -> std::sync::MutexGuard<'static, Table> {
    // Nothing here panics while the lock is held; a poisoned table is still consistent.
    TABLE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reserves a slot of `capacity` bytes at least and records it: the handle, the room's
/// first byte and its size.
pub(crate) fn open(
    allocator: &EventAllocator,
    capacity: usize,
    event_type: u32,
) -> Result<(u64, *mut u8, usize), SlotringStatus> {
    let mut builder = allocator.reserve(capacity, event_type)?;
    let room = builder.capacity();
    let data = builder.spare_capacity_mut().as_mut_ptr();
    let mut table = lock();
    let index = match table.vacant.pop() {
        Some(index) => index,
        None => {
            // Past u32 indices (or without memory for one more entry), refuse; the
            // builder goes back to its pool when it drops here.
            let index = u32::try_from(table.entries.len())
                .ok()
                .filter(|&i| i < u32::MAX)
                .ok_or(SlotringStatus::OutOfMemory)?;
            table
                .entries
                .try_reserve(1)
                .map_err(|_| SlotringStatus::OutOfMemory)?;
            // The vacant list must be able to take every entry back without allocating.
            let entries = table.entries.len() + 1;
            let vacant_len = table.vacant.len();
            table
                .vacant
                .try_reserve(entries - vacant_len)
                .map_err(|_| SlotringStatus::OutOfMemory)?;
            table.entries.push(Entry {
                generation: fresh_generation(0),
                builder: None,
            });
            index
        }
    };
    let entry = &mut table.entries[index as usize];
    entry.builder = Some(builder);
    let handle = (u64::from(entry.generation) << 32) | (u64::from(index) + 1);
    Ok((handle, data, room))
}

/// Closes the reservation `handle` names and hands its builder over, with `len` bytes
/// marked written. Refused, leaving the reservation open and unchanged, when `len`
/// exceeds its capacity (`TooLarge`); `NoReservation` when the handle names no open
/// reservation.
pub(crate) fn take(handle: u64, len: usize) -> Result<EventBuilder, SlotringStatus> {
    let generation = (handle >> 32) as u32;
    let index = (handle & 0xFFFF_FFFF)
        .checked_sub(1)
        .ok_or(SlotringStatus::NoReservation)?;
    let mut table = lock();
    let entry = usize::try_from(index)
        .ok()
        .and_then(|index| table.entries.get_mut(index))
        .filter(|entry| entry.generation == generation)
        .ok_or(SlotringStatus::NoReservation)?;
    let builder = entry
        .builder
        .as_mut()
        .ok_or(SlotringStatus::NoReservation)?;
    if len > builder.capacity() {
        return Err(SlotringStatus::TooLarge);
    }
    let mut builder = entry.builder.take().ok_or(SlotringStatus::NoReservation)?;
    entry.generation = fresh_generation(entry.generation);
    // Never allocates: `open` reserved room for every entry in `vacant`.
    table.vacant.push(index as u32);
    drop(table);
    // `len <= capacity` was checked, and nothing was written-marked before.
    builder.commit(len).map_err(|_| SlotringStatus::TooLarge)?;
    Ok(builder)
}
