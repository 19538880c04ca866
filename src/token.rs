//! The `u64` token format shared by every in-process pool, and the per-pool keys that
//! make one pool's tokens meaningless to another.
//!
//! ```text
//!  63                       32 31        24 23                    0
//! ┌───────────────────────────┬────────────┬───────────────────────┐
//! │ generation XOR pool key   │    tag     │      slot index       │
//! └───────────────────────────┴────────────┴───────────────────────┘
//! ```
//!
//! * The *tag* names the kind of pool: an allocator class ([`class_tag`], never 0), a
//!   typed [`RingBuffer`](crate::RingBuffer) ([`TAG_RING`]) or the heap-event table
//!   ([`TAG_HEAP`]). Tag 0 is never issued, so neither is token 0.
//! * The *key* is a random 32-bit value drawn when the pool is created. A token carries
//!   its slot's generation XOR its pool's key; another pool decodes it with its own key
//!   and gets a generation that is uniformly random with respect to its slot's, so it
//!   accepts a foreign token with probability at most 2^-32 (the generation must match
//!   exactly, and the slot must also have a parked hold).
//! * The *index* is 24 bits: a pool has at most 2^24 - 1 slots.

use std::hash::{BuildHasher, Hasher};

use crate::event::PoolId;

/// Token tag of the typed [`RingBuffer`](crate::RingBuffer) pools.
pub(crate) const TAG_RING: u8 = 0x40;
/// Token tag of heap-fallback events (tokens name an entry of the allocator's table).
pub(crate) const TAG_HEAP: u8 = 0xFF;

/// The token tag of an allocator class: 1 + its index, so no tag (and no token) is 0.
#[inline]
pub(crate) const fn class_tag(pool: PoolId) -> u8 {
    pool.index() as u8 + 1
}

/// The allocator class a token tag names, if any.
#[inline]
pub(crate) fn class_of_tag(tag: u8) -> Option<PoolId> {
    PoolId::from_index(usize::from(tag.checked_sub(1)?))
}

/// A decoded token: the *keyed* generation (generation XOR key), tag and index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) keyed_generation: u32,
    pub(crate) tag: u8,
    pub(crate) index: u32,
}

impl Token {
    const INDEX_MASK: u64 = (1 << 24) - 1;

    /// The token of `generation` of slot `index` in a pool with `tag` and `key`.
    #[inline]
    pub(crate) const fn new(generation: u32, key: u32, tag: u8, index: u32) -> Self {
        Self {
            keyed_generation: generation ^ key,
            tag,
            index,
        }
    }

    /// The generation this token names, read with a pool's `key`.
    #[inline]
    pub(crate) const fn generation(self, key: u32) -> u32 {
        self.keyed_generation ^ key
    }

    #[inline]
    pub(crate) const fn encode(self) -> u64 {
        ((self.keyed_generation as u64) << 32) | ((self.tag as u64) << 24) | self.index as u64
    }

    #[inline]
    pub(crate) const fn decode(token: u64) -> Self {
        Self {
            keyed_generation: (token >> 32) as u32,
            tag: (token >> 24) as u8,
            index: (token & Self::INDEX_MASK) as u32,
        }
    }
}

/// A fresh random 32-bit pool key.
///
/// Drawn from the standard library's SipHash keys, which are seeded from the operating
/// system's randomness once per thread and move on with every `RandomState` made (the
/// source `HashMap` uses against collision attacks), so two pools made one after the
/// other get independent keys. Not cryptographic: it guards against mixing up pools by
/// mistake, not against an attacker who can read the process's memory.
pub(crate) fn random_key() -> u32 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(0);
    let h = hasher.finish();
    (h ^ (h >> 32)) as u32
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips() {
        for (generation, key, tag, index) in [
            (0, 0, 1, 0),
            (u32::MAX, 0xDEAD_BEEF, TAG_HEAP, (1 << 24) - 1),
            (7, 12345, TAG_RING, 12345),
        ] {
            let t = Token::new(generation, key, tag, index);
            let back = Token::decode(t.encode());
            assert_eq!(back, t);
            assert_eq!(back.generation(key), generation);
        }
    }

    #[test]
    fn class_tags_are_never_zero_and_round_trip() {
        for pool in PoolId::ALL {
            assert_ne!(class_tag(pool), 0);
            assert_eq!(class_of_tag(class_tag(pool)), Some(pool));
        }
        assert_eq!(class_of_tag(0), None);
        assert_eq!(class_of_tag(TAG_RING), None);
        assert_eq!(class_of_tag(TAG_HEAP), None);
    }

    #[test]
    fn keys_differ() {
        let keys: std::collections::HashSet<u32> = (0..1000).map(|_| random_key()).collect();
        assert!(keys.len() > 990, "1000 keys, {} distinct", keys.len());
    }
}
