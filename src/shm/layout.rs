//! The segment's layout: the header format, the arithmetic that places every array, and
//! the validation `open` runs before it trusts a single offset.
//!
//! ```text
//!  offset 0    header (832 B): magic, version, header size, total size, segment id,
//!              class count, process count, process-table offset, 8 class records
//!              (slot size, capacity, metadata offset, payload offset), then 8
//!              reserved 64-byte lines
//!  832         process table: one 64-byte entry per process
//!  ...         per class: slot metadata, one 64-byte line per slot
//!  ...         per class: payloads, `capacity` x `stride` bytes (stride = slot size
//!              rounded up to 64)
//! ```
//!
//! Every offset is a multiple of 64. The layout is a pure function of the class list and
//! the process count, so `open` recomputes it from those few numbers (checked arithmetic,
//! every bound enforced) and compares the stored offsets with the result; nothing else
//! in the header is used.

/// `b"SLOTRING"` as a little-endian `u64`: the first word of every segment, written last.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SLOTRING");
/// The format version this build reads and writes.
pub(crate) const VERSION: u32 = 2;
/// At most this many size classes.
pub(crate) const MAX_CLASSES: usize = 8;
/// At most this many processes attached at once (one bit each in a slot's state word;
/// the word's top mask bit is the claimed marker).
pub(crate) const MAX_PROCESSES: u32 = 31;
/// At most this many slots per class (the index field of a token).
pub(crate) const MAX_CAPACITY: u32 = 1 << INDEX_BITS;
/// The largest slot size.
pub(crate) const MAX_SLOT_SIZE: u32 = 1 << 24;

/// Bits of a token's slot index.
pub(crate) const INDEX_BITS: u32 = 20;
/// Bits of a token's class.
pub(crate) const CLASS_BITS: u32 = 3;
/// Bits of a token's segment tag.
pub(crate) const TAG_BITS: u32 = 32 - INDEX_BITS - CLASS_BITS;

pub(crate) const LINE: usize = 64;

// Header field offsets (bytes). Each field is always accessed with the same width.
pub(crate) const OFF_MAGIC: usize = 0; // u64
pub(crate) const OFF_VERSION: usize = 8; // u32
pub(crate) const OFF_HEADER_SIZE: usize = 12; // u32
pub(crate) const OFF_TOTAL: usize = 16; // u64
pub(crate) const OFF_SEGMENT_ID: usize = 24; // u64
pub(crate) const OFF_CLASS_COUNT: usize = 32; // u32
pub(crate) const OFF_PROCESSES: usize = 36; // u32
pub(crate) const OFF_PROC_TABLE: usize = 40; // u64
pub(crate) const OFF_CLASSES: usize = 64; // MAX_CLASSES records of CLASS_RECORD bytes
pub(crate) const CLASS_RECORD: usize = 32;
// Within a class record.
pub(crate) const REC_SLOT_SIZE: usize = 0; // u32
pub(crate) const REC_CAPACITY: usize = 4; // u32
pub(crate) const REC_META: usize = 8; // u64
pub(crate) const REC_PAYLOAD: usize = 16; // u64
/// Eight reserved 64-byte lines (the free-list heads of format version 1; slots are
/// now claimed in place, with no list).
pub(crate) const OFF_HEADS: usize = OFF_CLASSES + MAX_CLASSES * CLASS_RECORD;
/// Size of the header, reserved lines included.
pub(crate) const HEADER_SIZE: usize = OFF_HEADS + MAX_CLASSES * LINE;

// Slot metadata line.
pub(crate) const META_STATE: usize = 0; // u64: generation << 32 | process mask
pub(crate) const META_LEN: usize = 12; // u32
pub(crate) const META_TYPE: usize = 16; // u32

// Process-table entry.
pub(crate) const PROC_OWNER: usize = 0; // u64; the entry's lock byte is the line's first

const _: () = assert!(HEADER_SIZE % LINE == 0);
const _: () = assert!(OFF_HEADS % LINE == 0);

/// One size class as requested: slot size and number of slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClassSpec {
    pub(crate) slot_size: u32,
    pub(crate) capacity: u32,
}

/// Where one class lives, computed (never read) from validated numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClassLayout {
    pub(crate) slot_size: u32,
    pub(crate) capacity: u32,
    /// Payload bytes per slot: `slot_size` rounded up to 64.
    pub(crate) stride: usize,
    /// Offset of the first slot's metadata line.
    pub(crate) meta: usize,
    /// Offset of the first slot's payload.
    pub(crate) payload: usize,
    /// Global index of this class's first slot.
    pub(crate) first: u32,
}

/// The whole layout of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) classes: Vec<ClassLayout>,
    pub(crate) processes: u32,
    pub(crate) proc_table: usize,
    pub(crate) total: usize,
    pub(crate) slots: u32,
}

/// Why a class list or process count does not describe a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BadLayout(pub(crate) &'static str);

fn align_line(n: usize) -> Option<usize> {
    n.checked_add(LINE - 1).map(|n| n & !(LINE - 1))
}

impl Layout {
    /// Places every array for `classes` and `processes`, with every bound checked.
    pub(crate) fn compute(classes: &[ClassSpec], processes: u32) -> Result<Self, BadLayout> {
        if classes.is_empty() || classes.len() > MAX_CLASSES {
            return Err(BadLayout("between 1 and 8 size classes are supported"));
        }
        if processes == 0 || processes > MAX_PROCESSES {
            return Err(BadLayout("between 1 and 31 processes are supported"));
        }
        let mut previous = 0;
        for c in classes {
            if c.slot_size == 0 || c.slot_size > MAX_SLOT_SIZE {
                return Err(BadLayout("a slot size is 0 or over 16 MiB"));
            }
            if c.slot_size <= previous {
                return Err(BadLayout("slot sizes must increase strictly"));
            }
            previous = c.slot_size;
            if c.capacity == 0 || c.capacity > MAX_CAPACITY {
                return Err(BadLayout("a capacity is 0 or over 2^20 slots"));
            }
        }
        let overflow = BadLayout("the segment size overflows");
        let proc_table = HEADER_SIZE;
        let mut at = proc_table
            .checked_add(processes as usize * LINE)
            .ok_or(overflow)?;
        let mut out = Vec::with_capacity(classes.len());
        let mut first: u32 = 0;
        for c in classes {
            let meta = at;
            at = (c.capacity as usize)
                .checked_mul(LINE)
                .and_then(|n| n.checked_add(at))
                .ok_or(overflow)?;
            out.push(ClassLayout {
                slot_size: c.slot_size,
                capacity: c.capacity,
                stride: align_line(c.slot_size as usize).ok_or(overflow)?,
                meta,
                payload: 0,
                first,
            });
            // At most 8 x 2^20 slots: no overflow of u32.
            first += c.capacity;
        }
        for c in &mut out {
            c.payload = at;
            at = (c.capacity as usize)
                .checked_mul(c.stride)
                .and_then(|n| n.checked_add(at))
                .ok_or(overflow)?;
        }
        if at > isize::MAX as usize || u64::try_from(at).is_err() {
            return Err(overflow);
        }
        Ok(Self {
            classes: out,
            processes,
            proc_table,
            total: at,
            slots: first,
        })
    }
}

/// A token: `generation << 32 | tag << 23 | class << 20 | index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ShmToken {
    pub(crate) generation: u32,
    pub(crate) tag: u32,
    pub(crate) class: u32,
    pub(crate) index: u32,
}

impl ShmToken {
    pub(crate) const TAG_MASK: u32 = (1 << TAG_BITS) - 1;

    pub(crate) fn encode(self) -> u64 {
        (u64::from(self.generation) << 32)
            | (u64::from(self.tag & Self::TAG_MASK) << (INDEX_BITS + CLASS_BITS))
            | (u64::from(self.class & ((1 << CLASS_BITS) - 1)) << INDEX_BITS)
            | u64::from(self.index & ((1 << INDEX_BITS) - 1))
    }

    pub(crate) fn decode(token: u64) -> Self {
        let low = token as u32;
        Self {
            generation: (token >> 32) as u32,
            tag: low >> (INDEX_BITS + CLASS_BITS),
            class: (low >> INDEX_BITS) & ((1 << CLASS_BITS) - 1),
            index: low & ((1 << INDEX_BITS) - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(slot_size: u32, capacity: u32) -> ClassSpec {
        ClassSpec {
            slot_size,
            capacity,
        }
    }

    #[test]
    fn offsets_are_aligned_and_disjoint() {
        let l = Layout::compute(&[spec(48, 3), spec(100, 2)], 4).unwrap();
        assert_eq!(l.proc_table, HEADER_SIZE);
        assert_eq!(l.classes[0].meta, HEADER_SIZE + 4 * 64);
        assert_eq!(l.classes[1].meta, l.classes[0].meta + 3 * 64);
        assert_eq!(l.classes[0].payload, l.classes[1].meta + 2 * 64);
        assert_eq!(l.classes[0].stride, 64);
        assert_eq!(l.classes[1].stride, 128);
        assert_eq!(l.classes[1].payload, l.classes[0].payload + 3 * 64);
        assert_eq!(l.total, l.classes[1].payload + 2 * 128);
        assert_eq!(l.slots, 5);
        for c in &l.classes {
            assert_eq!(c.meta % 64, 0);
            assert_eq!(c.payload % 64, 0);
        }
    }

    #[test]
    fn bad_layouts_are_refused() {
        assert!(Layout::compute(&[], 1).is_err());
        assert!(Layout::compute(&[spec(64, 1)], 0).is_err());
        assert!(Layout::compute(&[spec(64, 1)], 32).is_err());
        assert!(Layout::compute(&[spec(0, 1)], 1).is_err());
        assert!(Layout::compute(&[spec(64, 0)], 1).is_err());
        assert!(Layout::compute(&[spec(64, MAX_CAPACITY + 1)], 1).is_err());
        assert!(Layout::compute(&[spec(64, 1), spec(64, 1)], 1).is_err());
        assert!(Layout::compute(&[spec(MAX_SLOT_SIZE + 1, 1)], 1).is_err());
        assert!(Layout::compute(&[spec(1, 1); 9], 1).is_err());
        // The largest layout still computes without overflow on 64-bit targets.
        let big: Vec<_> = (0..8)
            .map(|i| spec(MAX_SLOT_SIZE - 7 + i, MAX_CAPACITY))
            .collect();
        #[cfg(target_pointer_width = "64")]
        assert!(Layout::compute(&big, 31).is_ok());
        let _ = big;
    }

    #[test]
    fn tokens_round_trip() {
        for t in [
            ShmToken {
                generation: 0,
                tag: 0,
                class: 0,
                index: 0,
            },
            ShmToken {
                generation: u32::MAX,
                tag: ShmToken::TAG_MASK,
                class: 7,
                index: MAX_CAPACITY - 1,
            },
            ShmToken {
                generation: 77,
                tag: 300,
                class: 2,
                index: 12345,
            },
        ] {
            assert_eq!(ShmToken::decode(t.encode()), t);
        }
    }
}
