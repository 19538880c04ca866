//! Writing an event in place: reserve a slot, write into it, publish it.
//!
//! [`EventAllocator::allocate`] copies bytes the caller already has. A program that
//! reads events from a socket, a file or a serializer would first fill a buffer of its
//! own and then pay a second copy; instead it can reserve a slot and read straight into
//! it:
//!
//! ```no_run
//! # use std::io::Read;
//! # fn demo(mut socket: std::net::TcpStream, len: usize) -> std::io::Result<()> {
//! # let alloc = slotring::EventAllocator::new();
//! let ev = alloc.allocate_with(len, 7, |buf| socket.read_exact(buf))?;
//! # Ok(()) }
//! ```
//!
//! For a read of unknown length, [`EventAllocator::reserve`] hands out an
//! [`EventBuilder`] with room for up to a given number of bytes. It implements
//! [`std::io::Write`] (and, with the `bytes` feature, `bytes::BufMut`), reads from any
//! [`Read`] into its free room ([`EventBuilder::read_from`]), can be truncated, and
//! [`freeze`](EventBuilder::freeze)s into a [`RingPtr<Event>`]. Dropping it unfinished
//! returns the slot to its pool (waking a waiter, if any).
//!
//! The slot is the caller's alone between the reservation and `freeze`, exactly as in
//! `allocate` between its claim and its publication: no handle, weak handle or token can
//! reach it (the slot is free in its old life, whose references are all refused), and
//! `freeze` publishes the bytes and length with the same one Release store.
//!
//! With the `bytes` feature, a finished event also converts into [`bytes::Bytes`]
//! without a copy (`Bytes::from_owner` keeps the slot until the last `Bytes` is gone),
//! which is what async networking code sends.

use core::borrow::Borrow;
use core::fmt;
use core::ptr::NonNull;
use std::io::{self, Read, Write};

use crate::allocator::EventAllocator;
use crate::error::AllocError;
use crate::event::{Event, PoolId};
use crate::pool::Pool;
use crate::ptr::RingPtr;
use crate::slot::SlotHeader;

impl EventAllocator {
    /// Reserves a slot with room for at least `capacity` bytes, to be written in place
    /// and published with [`EventBuilder::freeze`].
    ///
    /// Takes the smallest class that fits and, when it is full and spilling is on, the
    /// next larger class with a free slot (counted as a spill). Payloads over 16 KiB and
    /// the heap are not served in place: [`AllocError::TooLarge`]. A full class without
    /// spilling is [`AllocError::PoolExhausted`].
    ///
    /// ```
    /// use std::io::Write;
    /// use slotring::{EventAllocator, PoolId, RingPtr};
    /// let alloc = EventAllocator::new();
    /// let mut builder = alloc.reserve(100, 3)?;
    /// assert_eq!(builder.capacity(), 256); // the S class
    /// write!(builder, "order {} filled at {}", 42, 101.5)?;
    /// builder.truncate(8);
    /// let ev = builder.freeze();
    /// assert_eq!(ev.payload(), b"order 42");
    /// assert_eq!((ev.event_type(), RingPtr::pool_id(&ev)), (3, Some(PoolId::S)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reserve(&self, capacity: usize, event_type: u32) -> Result<EventBuilder, AllocError> {
        let Some(class) = PoolId::for_len(capacity) else {
            return Err(AllocError::TooLarge {
                len: capacity,
                max: PoolId::MAX_POOLED,
            });
        };
        if let Some(builder) = self.reserve_slot(class, event_type) {
            return Ok(builder);
        }
        if self.spill_enabled() {
            let mut larger = class.larger();
            while let Some(pool) = larger {
                if let Some(builder) = self.reserve_slot(pool, event_type) {
                    self.pool(class).note_spill();
                    return Ok(builder);
                }
                larger = pool.larger();
            }
        }
        self.pool(class).note_failure();
        Err(AllocError::PoolExhausted { pool: class })
    }

    /// Reserves a slot of exactly the given class (no spilling): its whole slot size is
    /// the builder's capacity.
    ///
    /// ```
    /// use slotring::{EventAllocator, PoolId};
    /// let alloc = EventAllocator::new();
    /// let builder = alloc.reserve_in(PoolId::L, 0)?;
    /// assert_eq!(builder.capacity(), 4096);
    /// drop(builder); // unfinished: the slot goes back
    /// assert_eq!(alloc.stats().pool(PoolId::L).in_use, 0);
    /// # Ok::<(), slotring::AllocError>(())
    /// ```
    pub fn reserve_in(&self, pool: PoolId, event_type: u32) -> Result<EventBuilder, AllocError> {
        self.reserve_slot(pool, event_type).ok_or_else(|| {
            self.pool(pool).note_failure();
            AllocError::PoolExhausted { pool }
        })
    }

    /// Reserves a slot for exactly `len` bytes, lets `fill` write them, and publishes the
    /// event; if `fill` fails (or panics), the slot goes back and the error is returned.
    ///
    /// `fill` sees the slot's `len` bytes as they were left by the slot's previous event
    /// (they are not zeroed): it must write all of them. Reservation errors
    /// ([`AllocError`], as for [`reserve`](Self::reserve)) come back through `E`'s
    /// `From<AllocError>`, which `std::io::Error` implements, so a socket or file read
    /// is one line:
    ///
    /// ```
    /// use std::io::Read;
    /// let alloc = slotring::EventAllocator::new();
    /// let mut file = std::io::Cursor::new(b"length-prefixed frame".to_vec()); // or a File, a TcpStream
    /// let ev = alloc.allocate_with(6, 1, |buf| file.read_exact(buf))?;
    /// assert_eq!(ev.payload(), b"length");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// With an infallible fill, name `AllocError` as the error type:
    ///
    /// ```
    /// let alloc = slotring::EventAllocator::new();
    /// let ev = alloc.allocate_with(4, 0, |buf| {
    ///     buf.copy_from_slice(&7u32.to_le_bytes());
    ///     Ok::<(), slotring::AllocError>(())
    /// })?;
    /// assert_eq!(ev.payload(), [7, 0, 0, 0]);
    /// # Ok::<(), slotring::AllocError>(())
    /// ```
    pub fn allocate_with<E: From<AllocError>>(
        &self,
        len: usize,
        event_type: u32,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<RingPtr<Event>, E> {
        let mut builder = self.reserve(len, event_type)?;
        fill(&mut builder.room()[..len])?;
        builder.len = len;
        Ok(builder.freeze())
    }

    pub(crate) fn reserve_slot(&self, pool: PoolId, event_type: u32) -> Option<EventBuilder> {
        let pool = self.pool(pool);
        let slot = pool.claim_for_write()?;
        Some(EventBuilder {
            slot,
            len: 0,
            capacity: pool.slot_size(),
            event_type,
        })
    }
}

/// A reserved slot being written in place ([`EventAllocator::reserve`]); publish it with
/// [`freeze`](Self::freeze). Dropping it unfinished returns the slot to its pool.
///
/// Its written part is [`len`](Self::len) bytes (starting at 0), within
/// [`capacity`](Self::capacity) (the slot size). It implements [`Write`] (appending;
/// a write that finds no room writes 0 bytes, so `write_all` fails with
/// [`io::ErrorKind::WriteZero`]) and, with the `bytes` feature, `bytes::BufMut`.
///
/// ```
/// use std::io::Read;
/// let alloc = slotring::EventAllocator::new();
/// let mut socket = std::io::Cursor::new(vec![9u8; 3000]); // a TcpStream, a File...
/// let mut builder = alloc.reserve(4096, 2)?;
/// while builder.read_from(&mut socket)? > 0 {} // straight into the slot, no buffer
/// let ev = builder.freeze();
/// assert_eq!(ev.len(), 3000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EventBuilder {
    /// A slot claimed from its pool and not yet activated: free, unreturned, ours alone.
    slot: NonNull<SlotHeader>,
    len: usize,
    capacity: usize,
    event_type: u32,
}

// SAFETY: the builder owns its claimed slot exclusively (no other thread can reach the
// slot's payload before `freeze` publishes it), and finishing or returning it from
// another thread is what a `RingPtr` drop on another thread does.
unsafe impl Send for EventBuilder {}
// SAFETY: `&EventBuilder` only reads the written bytes and plain fields; every write
// needs `&mut`.
unsafe impl Sync for EventBuilder {}

impl EventBuilder {
    fn header(&self) -> &SlotHeader {
        // SAFETY: the claimed, unreturned slot keeps its pool, and so the header array,
        // allocated (`pool.rs`, lifecycle).
        unsafe { self.slot.as_ref() }
    }

    /// The whole slot as bytes: the written part, then the free room (holding whatever
    /// the slot's previous event left there).
    fn room(&mut self) -> &mut [u8] {
        let data = self.header().data_for_write();
        // SAFETY: the slot is claimed and not yet published, so this builder is the only
        // one that can reach its payload (`&mut self` makes the borrow unique); the
        // payload holds `capacity` (the slot size) initialised bytes: the pool's block
        // was zeroed when allocated and only ever written with bytes since.
        unsafe { core::slice::from_raw_parts_mut(data.as_ptr(), self.capacity) }
    }

    /// The bytes written so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is written yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most bytes this event can hold (its slot's size).
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The event type [`freeze`](Self::freeze) will give the event.
    #[must_use]
    pub fn event_type(&self) -> u32 {
        self.event_type
    }

    /// Changes the event type (to one decided by the bytes read, say).
    pub fn set_event_type(&mut self, event_type: u32) {
        self.event_type = event_type;
    }

    /// Shortens the written part to `len` bytes; no effect if it is not longer.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The written bytes.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        let data = self.header().data();
        // SAFETY: as in `room`; `&self` excludes every `&mut` borrow of the payload, and
        // `len <= capacity`.
        unsafe { core::slice::from_raw_parts(data.as_ptr(), self.len) }
    }

    /// The written bytes, to change in place.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.room()[..len]
    }

    /// The free room after the written part (bytes left by the slot's previous event, not
    /// zeroed); mark what you wrote there with [`commit`](Self::commit).
    pub fn spare_capacity_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.room()[len..]
    }

    /// Adds `n` bytes of the free room (written through
    /// [`spare_capacity_mut`](Self::spare_capacity_mut)) to the written part. Refused,
    /// changing nothing, when `n` exceeds the free room.
    pub fn commit(&mut self, n: usize) -> Result<(), AllocError> {
        match self.len.checked_add(n) {
            Some(len) if len <= self.capacity => {
                self.len = len;
                Ok(())
            }
            _ => Err(AllocError::TooLarge {
                len: self.len.saturating_add(n),
                max: self.capacity,
            }),
        }
    }

    /// One `read` from `reader` straight into the free room; returns the bytes read (0
    /// at the end of the input, or when the builder is full).
    pub fn read_from(&mut self, reader: &mut impl Read) -> io::Result<usize> {
        if self.len == self.capacity {
            return Ok(0);
        }
        let n = reader.read(self.spare_capacity_mut())?;
        // A reader that claims more than it was given is broken; do not trust it.
        let n = n.min(self.capacity - self.len);
        self.len += n;
        Ok(n)
    }

    /// Reads exactly `n` more bytes from `reader` straight into the free room. Fails
    /// with [`io::ErrorKind::WriteZero`] (reading nothing) when they do not fit, and as
    /// [`Read::read_exact`] does otherwise (the written part is unchanged then).
    pub fn read_exact_from(&mut self, reader: &mut impl Read, n: usize) -> io::Result<()> {
        if n > self.capacity - self.len {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the event's slot has no room for that many bytes",
            ));
        }
        reader.read_exact(&mut self.spare_capacity_mut()[..n])?;
        self.len += n;
        Ok(())
    }

    /// Publishes the written bytes as an event and returns its handle.
    pub fn freeze(self) -> RingPtr<Event> {
        let this = core::mem::ManuallyDrop::new(self);
        // `len <= capacity`, the slot size of a pool, which fits a `u32` (16 KiB at most).
        this.header().activate(this.len as u32, this.event_type);
        // SAFETY: `activate` made the claimed slot live with one strong reference, for
        // the new handle, and recorded the `len` bytes written; the builder is not
        // dropped (ManuallyDrop), so the slot is not also returned.
        unsafe { RingPtr::from_slot(this.slot) }
    }
}

impl Drop for EventBuilder {
    fn drop(&mut self) {
        let header = self.header();
        let (pool, index) = (header.pool(), header.index());
        // SAFETY: the slot was claimed with `claim_for_write` and never activated, so it
        // is free, unreturned and ours alone; it is not touched again.
        unsafe { Pool::release_slot(pool, index) };
    }
}

impl fmt::Debug for EventBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBuilder")
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .field("event_type", &self.event_type)
            .finish_non_exhaustive()
    }
}

impl Write for EventBuilder {
    /// Appends as much of `buf` as fits (0 bytes when full).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.capacity - self.len);
        let start = self.len;
        self.room()[start..start + n].copy_from_slice(&buf[..n]);
        self.len += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Lets maps and sets keyed by `RingPtr<Event>` be looked up by a byte slice (`Eq` and
/// `Hash` of `RingPtr<Event>` are those of its payload bytes, as `Borrow` requires).
impl Borrow<[u8]> for RingPtr<Event> {
    fn borrow(&self) -> &[u8] {
        self
    }
}

#[cfg(feature = "bytes")]
mod bytes_support {
    use bytes::buf::UninitSlice;
    use bytes::{BufMut, Bytes};

    use super::EventBuilder;
    use crate::event::Event;
    use crate::ptr::RingPtr;

    // SAFETY: `chunk_mut` is the free room after the written part, `remaining_mut` its
    // length, and `advance_mut` moves exactly that boundary (the caller promises the
    // bytes were written; the room is initialised memory anyway).
    unsafe impl BufMut for EventBuilder {
        fn remaining_mut(&self) -> usize {
            self.capacity - self.len
        }

        unsafe fn advance_mut(&mut self, cnt: usize) {
            // `BufMut`'s contract: a count past the room panics rather than corrupt.
            assert!(
                cnt <= self.capacity - self.len,
                "advance_mut past the builder's capacity"
            );
            self.len += cnt;
        }

        fn chunk_mut(&mut self) -> &mut UninitSlice {
            UninitSlice::new(self.spare_capacity_mut())
        }
    }

    /// Hands an event to code that sends `Bytes` without copying it: the `Bytes` (and
    /// all its clones and slices) keep the slot until the last of them is dropped.
    ///
    /// ```
    /// let alloc = slotring::EventAllocator::new();
    /// let ev = alloc.allocate(b"frame", 1)?;
    /// let bytes = bytes::Bytes::from(ev.clone());
    /// assert_eq!(&bytes[..], b"frame");
    /// assert_eq!(bytes.as_ptr(), ev.payload().as_ptr()); // the same memory
    /// # Ok::<(), slotring::AllocError>(())
    /// ```
    impl From<RingPtr<Event>> for Bytes {
        fn from(event: RingPtr<Event>) -> Bytes {
            Bytes::from_owner(event)
        }
    }
}
