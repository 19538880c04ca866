//! What an allocator shares with its heap-fallback events: their statistics and the table
//! that gives them tokens.
//!
//! A pooled event's token names its slot, whose raw-hold word counts the holds parked in
//! it. A heap event (over 16 KiB, or spilled past every class) lives in a pool of its own
//! that no token can name, so [`RingPtr::into_raw`](crate::RingPtr::into_raw) parks its
//! holds in an entry of this table instead: the token is
//! `(entry sequence XOR key) << 32 | 0xFF << 24 | entry`. An entry owns the strong
//! references parked in it (one per unused token) and knows how many there are; the
//! event's pool remembers its entry, so every token of one event is the same token, as for
//! slots. The entry stays the event's for as long as the event lives, even while no hold
//! is parked in it (like a slot's generation), so parking a hold again, for example to
//! give back one taken by a send that failed, yields the same token. When the event dies
//! the entry is vacated, and its next use moves its sequence on, so an old token is
//! refused as stale.
//!
//! The table sits behind a mutex: the heap path allocates anyway, and a table whose every
//! reference is made under one lock is easy to see correct. Clones made by `clone_raw`
//! are made from a reference the entry holds, under the lock, so they need no escaped
//! flag (see `slot.rs`).

use core::ptr::NonNull;

use crate::error::TokenError;
use crate::pool::Pool;
use crate::slot::{MAX_REFCOUNT, SlotHeader};
use crate::stats::HeapCounters;
use crate::sync::{Mutex, Ordering, abort_on_overflow};
use crate::token::{TAG_HEAP, Token, random_key};

/// The most entries: a token addresses an entry with 24 bits.
pub(crate) const MAX_ENTRIES: usize = (1 << 24) - 1;

/// Shared by an allocator and its live heap events (each heap pool holds an `Arc`).
#[derive(Debug)]
pub(crate) struct HeapShared {
    pub(crate) counters: HeapCounters,
    key: u32,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    entries: Vec<Entry>,
    /// Indices of vacant entries. Its capacity is kept at least `entries.len()`, so
    /// vacating never allocates.
    vacant: Vec<u32>,
}

#[derive(Debug)]
struct Entry {
    /// Moves on each time the entry is reused.
    sequence: u32,
    /// Strong references parked here (unused tokens); 0 for a vacant entry.
    holds: u32,
    /// The event's slot while `holds > 0`; each hold is one of its strong references.
    slot: Option<NonNull<SlotHeader>>,
}

// SAFETY: an entry's pointer names a slot whose strong references the entry owns; slot
// headers are made of atomics and immutable fields, safe to reach from any thread (as for
// `RingPtr<Event>`, which is `Send`). The table is only reached under its mutex.
unsafe impl Send for Entry {}

impl HeapShared {
    pub(crate) fn new() -> Self {
        Self {
            counters: HeapCounters::default(),
            key: random_key(),
            table: Mutex::new(Table::default()),
        }
    }

    fn lock(&self) -> crate::sync::MutexGuard<'_, Table> {
        // No code that can panic runs under the lock, so a poisoned lock still holds a
        // consistent table.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Parks one strong reference to the heap event in `slot` and returns its token;
    /// `Err` (the reference still the caller's) if the table cannot grow: 2^24 - 1
    /// entries, or no memory for one more.
    pub(crate) fn park(&self, slot: NonNull<SlotHeader>, pool: &Pool) -> Result<u64, ()> {
        let mut table = self.lock();
        let table = &mut *table;
        // Relaxed: the entry index is only read and written under the table's lock.
        let existing = pool.heap_entry.load(Ordering::Relaxed);
        if let Some(index) = existing.checked_sub(1) {
            // The event's own entry (kept while it lives, with or without holds).
            let entry = &mut table.entries[index as usize];
            if entry.holds > MAX_REFCOUNT {
                abort_on_overflow();
            }
            entry.holds += 1;
            entry.slot = Some(slot);
            return Ok(self.token(entry.sequence, index));
        }
        let index = match table.vacant.pop() {
            Some(index) => index,
            None => {
                if table.entries.len() >= MAX_ENTRIES
                    || table.entries.try_reserve(1).is_err()
                    || table.vacant.try_reserve(table.entries.len() + 1).is_err()
                {
                    return Err(());
                }
                table.entries.push(Entry {
                    sequence: 0,
                    holds: 0,
                    slot: None,
                });
                (table.entries.len() - 1) as u32
            }
        };
        let entry = &mut table.entries[index as usize];
        entry.sequence = entry.sequence.wrapping_add(1);
        entry.holds = 1;
        entry.slot = Some(slot);
        pool.heap_entry.store(index + 1, Ordering::Relaxed);
        Ok(self.token(entry.sequence, index))
    }

    fn token(&self, sequence: u32, index: u32) -> u64 {
        Token::new(sequence, self.key, TAG_HEAP, index).encode()
    }

    /// The live entry a heap token names.
    fn entry<'t>(&self, table: &'t mut Table, token: u64) -> Result<&'t mut Entry, TokenError> {
        let token = Token::decode(token);
        if token.tag != TAG_HEAP {
            return Err(TokenError::Foreign);
        }
        let entry = table
            .entries
            .get_mut(token.index as usize)
            .ok_or(TokenError::Foreign)?;
        if entry.sequence != token.generation(self.key) {
            return Err(TokenError::Stale);
        }
        if entry.holds == 0 {
            return Err(TokenError::Released);
        }
        Ok(entry)
    }

    /// Takes one parked hold back: the caller owns the returned strong reference.
    pub(crate) fn take(&self, token: u64) -> Result<NonNull<SlotHeader>, TokenError> {
        let mut table = self.lock();
        let entry = self.entry(&mut table, token)?;
        // An entry with holds always has its slot.
        let slot = entry.slot.ok_or(TokenError::Released)?;
        entry.holds -= 1;
        if entry.holds == 0 {
            // The entry stays the event's (see the module docs) until `vacate`.
            entry.slot = None;
        }
        Ok(slot)
    }

    /// Frees the table entry of a heap event that just died (its slot came back), if it
    /// ever had one. Called once per heap event, by whoever returned its slot.
    pub(crate) fn vacate(&self, pool: &Pool) {
        let mut table = self.lock();
        // Relaxed: the entry index is only read and written under the table's lock.
        let Some(index) = pool.heap_entry.swap(0, Ordering::Relaxed).checked_sub(1) else {
            return;
        };
        let entry = &mut table.entries[index as usize];
        // A parked hold is a strong reference, so a dead event has none.
        debug_assert_eq!(entry.holds, 0);
        entry.holds = 0;
        entry.slot = None;
        // Never allocates: `vacant` has room for every entry.
        table.vacant.push(index);
    }

    /// A new strong reference to the event a heap token names; the token's holds stay.
    pub(crate) fn clone(&self, token: u64) -> Result<NonNull<SlotHeader>, TokenError> {
        let mut table = self.lock();
        let entry = self.entry(&mut table, token)?;
        // An entry with holds always has its slot.
        let slot = entry.slot.ok_or(TokenError::Released)?;
        // SAFETY: the entry owns at least one strong reference, so the slot is live.
        // The clone is made from that reference (a Relaxed increment, as `Arc::clone`),
        // and the lock orders it against every take of the entry's holds.
        unsafe { slot.as_ref() }.acquire_strong();
        Ok(slot)
    }
}
