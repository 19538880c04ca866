//! Tokens for heap-fallback events, which have no slot to name.
//!
//! A pooled event's token names its slot and generation, checked by the slot itself. A
//! heap event (over 16 KiB, or spilled past every class) has no such slot, so C hosts
//! get a token naming an entry of this table instead: `generation << 32 | 0xFF << 24 |
//! entry`. The table holds the entry's handle and the number of holds its token has; a
//! token whose holds are all gone is refused as released, and once its entry is reused
//! (with the next generation) as stale, exactly as for slots. The table is behind a mutex: the heap path allocates
//! anyway, and correctness is simpler to see than a lock-free slab's.

use std::sync::{Mutex, PoisonError};

use crate::error::TokenError;
use crate::event::Event;
use crate::pool::{TAG_HEAP, Token};
use crate::ptr::RingPtr;

/// Most entries: a token addresses an entry with 24 bits.
const MAX_ENTRIES: usize = 1 << 24;

struct Entry {
    generation: u32,
    holds: u32,
    event: Option<RingPtr<Event>>,
}

#[derive(Default)]
struct Slab {
    entries: Vec<Entry>,
    free: Vec<u32>,
}

impl Slab {
    /// The live entry a token names.
    fn entry(&mut self, token: u64) -> Result<&mut Entry, TokenError> {
        let token = Token::decode(token);
        if token.tag != TAG_HEAP {
            return Err(TokenError::Foreign);
        }
        let entry = self
            .entries
            .get_mut(token.index as usize)
            .ok_or(TokenError::Foreign)?;
        if entry.generation != token.generation {
            return Err(TokenError::Stale);
        }
        if entry.holds == 0 {
            return Err(TokenError::Released);
        }
        Ok(entry)
    }
}

/// The table of heap events held by tokens.
pub(super) struct HeapTable(Mutex<Option<Slab>>);

/// The process-wide table (the FFI layer has one allocator, so one table).
pub(super) static HEAP_TABLE: HeapTable = HeapTable(Mutex::new(None));

impl HeapTable {
    fn with<R>(&self, f: impl FnOnce(&mut Slab) -> R) -> R {
        // Every operation leaves the slab consistent before it can panic (it only
        // allocates when pushing), so a poisoned lock's data is still valid.
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(guard.get_or_insert_with(Slab::default))
    }

    /// Whether `token` belongs to this table rather than to a pool.
    pub(super) fn owns(token: u64) -> bool {
        Token::decode(token).tag == TAG_HEAP
    }

    /// Parks `event` under a new token with one hold, or hands it back if the table is
    /// full.
    pub(super) fn insert(&self, event: RingPtr<Event>) -> Result<u64, RingPtr<Event>> {
        self.with(|slab| {
            let index = match slab.free.pop() {
                // A new life for a freed entry: its generation moves on, so tokens of
                // the old life become stale (until then they read as released).
                Some(index) => {
                    let entry = &mut slab.entries[index as usize];
                    entry.generation = entry.generation.wrapping_add(1).max(1);
                    index
                }
                None if slab.entries.len() < MAX_ENTRIES => {
                    slab.entries.push(Entry {
                        generation: 1,
                        holds: 0,
                        event: None,
                    });
                    // `len <= MAX_ENTRIES = 2^24`, so the index fits in 24 bits.
                    (slab.entries.len() - 1) as u32
                }
                None => return Err(event),
            };
            let entry = &mut slab.entries[index as usize];
            entry.holds = 1;
            entry.event = Some(event);
            Ok(Token {
                generation: entry.generation,
                tag: TAG_HEAP,
                index,
            }
            .encode())
        })
    }

    /// A new handle to the event `token` names; the token keeps its holds.
    pub(super) fn get(&self, token: u64) -> Result<RingPtr<Event>, TokenError> {
        self.with(|slab| {
            let entry = slab.entry(token)?;
            Ok(entry.event.clone().expect("a held entry has its event"))
        })
    }

    /// Adds a hold to `token`.
    pub(super) fn retain(&self, token: u64) -> Result<(), TokenError> {
        self.with(|slab| {
            let entry = slab.entry(token)?;
            // More holds than `u32::MAX` can only come from a C loop that never
            // releases; refuse rather than wrap.
            entry.holds = entry.holds.checked_add(1).ok_or(TokenError::Released)?;
            Ok(())
        })
    }

    /// Takes one hold back from `token` and returns a handle for it (the table's own
    /// handle when it was the last hold).
    pub(super) fn take(&self, token: u64) -> Result<RingPtr<Event>, TokenError> {
        self.with(|slab| {
            let entry = slab.entry(token)?;
            entry.holds -= 1;
            if entry.holds > 0 {
                return Ok(entry.event.clone().expect("a held entry has its event"));
            }
            let event = entry.event.take().expect("a held entry has its event");
            let index = Token::decode(token).index;
            slab.free.push(index);
            Ok(event)
        })
    }
}
