//! A broadcast ring: one [`Writer`], any number of [`Reader`]s, each reader seeing every
//! event in order (the LMAX Disruptor pattern).
//!
//! ```
//! use slotring::PooledEvent;
//! use slotring::broadcast::{channel, Lagged};
//!
//! let (mut writer, mut reader) = channel::<PooledEvent<256>, 1024>();
//! let mut r2 = reader.clone(); // any number of readers, each at its own pace
//! writer.add(PooledEvent::new(b"tick", 1)?); // never blocks, never allocates
//! writer.add(PooledEvent::new(b"tock", 2)?);
//! let seen: Vec<_> = reader.by_ref().map(|ev| ev.unwrap().event_type()).collect();
//! assert_eq!(seen, [1, 2]); // the iterator drains what is there now
//! assert_eq!(r2.next().unwrap()?.payload(), b"tick");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The model
//!
//! The ring has `CAP` slots (a power of two, checked when the code is compiled to machine
//! code: `cargo build` and `cargo test` refuse another `CAP`, `cargo check` does not; see
//! [`channel`]) and numbers events
//! from 0; event `s` lives in slot `s % CAP`. The writer never waits: [`Writer::add`]
//! overwrites the oldest slot, so a reader that falls more than `CAP` events behind is
//! *lapped*. It then gets one [`Lagged`] item (or error) saying exactly how many events it
//! missed, and carries on from the oldest event the ring still retains, as
//! `tokio::sync::broadcast` readers do: with 10 events in a ring of 4, `Lagged { missed: 6 }`
//! and then event 6. Should the writer overwrite that event while the reader copies it,
//! the read reports the loss as another [`Lagged`]: every event is either received or
//! counted missed, exactly once. A torn event is never returned.
//!
//! ```
//! use slotring::broadcast::{channel, Lagged};
//! let (mut writer, mut reader) = channel::<u64, 4>();
//! for i in 0..10 {
//!     writer.add(i);
//! }
//! assert_eq!(reader.next(), Some(Err(Lagged { missed: 6 })));
//! assert_eq!(reader.by_ref().collect::<Vec<_>>(), [Ok(6), Ok(7), Ok(8), Ok(9)]);
//! ```
//!
//! A reader can also [hold the writer back](Reader::hold_writer): then
//! [`Writer::try_add`] refuses (handing the value back) rather than lap it, while
//! [`Writer::add`] still overwrites. Readers join ([`Writer::subscribe`],
//! [`Reader::clone`]) and leave (drop) at any time. A dropped or leaked reader never
//! blocks [`Writer::add`]; a *leaked* reader that held the writer back keeps
//! [`Writer::try_add`] refusing once the ring is full, since nothing can tell a leaked
//! reader from a slow one.
//!
//! # Batches, in place
//!
//! [`Writer::add_slice`], [`Writer::try_add_slice`] and [`Writer::try_add_with`] (which
//! makes the events straight in their slots) publish many events with one store of the
//! writer's cursor. [`Writer::into_lossless`] gives up [`Writer::add`] for good:
//! the [`LosslessWriter`] never overwrites an event a holding reader has not read, so a
//! holding reader's [`read_batch`](Reader::read_batch) hands out every published event
//! by reference, straight from its slot (no copy, no seqlock re-check), and moves its
//! position once per batch. The reference lives only for the closure call, which
//! returns before the reader's position lets the writer reuse the slot.
//!
//! **Known defect, under investigation:** with two readers that keep releasing and
//! re-taking their holds ([`Reader::release_writer`], [`Reader::hold_writer`]) between
//! in-place batches of a lossless writer, miri reports a data race between a
//! closure's read and the writer's store into the same slot (the test
//! `in_place_batch_races_the_writer_when_holds_are_released_and_retaken` in
//! `tests/review_broadcast.rs`). Until it is fixed, do not release and re-take holds
//! while reading batches in place; readers that hold from the start and never let go
//! are the case the loom models check.
//!
//! ```
//! use std::time::Duration;
//! use slotring::broadcast::{channel, Wait};
//! let (writer, mut reader) = channel::<[u64; 8], 1024>();
//! let mut writer = writer.into_lossless();
//! reader.hold_writer()?;
//! let events: Vec<[u64; 8]> = (0..64).map(|i| [i; 8]).collect();
//! assert_eq!(writer.add_slice(&events, Wait::Yield, Duration::MAX), 64); // one cursor store
//! let mut sum = 0;
//! assert_eq!(reader.read_batch(|event| sum += event[0]), Ok(64)); // read in place
//! assert_eq!(sum, 64 * 63 / 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Reads and waits
//!
//! [`Reader::try_next`] and [`Reader::read_batch`] never wait; the [`Iterator`] drains
//! what is available now, then returns `None` (it can be resumed later).
//! [`Reader::next_wait`] and [`Reader::read_batch_wait`] wait as a [`Wait`] says: spin,
//! yield, or block (spin, yield, then park until the writer publishes or goes away, or
//! the timeout passes; [`Reader::next_blocking`] is the block strategy).
//! [`Reader::recv`] is the async read: a cancel-safe future woken by the writer, on any
//! executor. A [`LosslessWriter`] waits for room as a [`Wait`] says
//! ([`LosslessWriter::add`], [`LosslessWriter::add_slice`]).
//!
//! # How it works
//!
//! Each slot is the payload stored as `AtomicU64` words followed by a sequence word, on
//! whole cache lines, so every access the seqlock makes to shared memory is atomic: a
//! reader copying a slot the writer is overwriting is a race the memory model allows,
//! not undefined behaviour. The writer marks the slot "writing event `s`" (odd), fences,
//! stores the words, and marks it "event `s` complete" (even) with a Release store. A
//! reader loads the word (Acquire), copies the words, fences, and reloads the word: only
//! if it still says "event `s` complete" is the copy returned. A word above the expected
//! one means the writer lapped the reader, and tells it by how much.
//!
//! The writer also publishes its position (one Release store per event or batch). A
//! reader that has caught up polls that cursor rather than the slot being filled, and
//! reads everything below the cursor it last saw without touching the cursor again, so
//! each slot's cache lines travel to a reader once, after the event is complete. The
//! cursor also serves lag reports and [`backpressure_ratio`](Reader::backpressure_ratio).
//!
//! Readers keep their positions to themselves unless they hold the writer back: those
//! publish it after each read (or batch) in their own cache-padded entry (Release), and
//! the writer rescans the entries (Acquire) only when its cached minimum would stop it
//! or a reader started holding. A holding reader reads in place only once a
//! [`LosslessWriter`] has *acknowledged* its hold: the writer stores the registry version
//! it scanned at (Release) after the scan; every later publication respects the scanned
//! entries, and every earlier one is complete below the cursor the reader loads (Acquire)
//! after seeing the acknowledgement, so the reader checks that it is not already lapped
//! (at most `CAP` events behind that cursor) and from then on the writer cannot reach
//! the slots it reads until its entry moves past them.
//!
//! Waiting readers use the crate's waiter list (blocked threads and async tasks): the
//! writer pays a `SeqCst` fence and one load of a "someone waits" flag per publication
//! while nobody waits, and takes the list's lock only when somebody does.

mod error;
mod lossless;
mod recv;
mod registry;
mod slots;
mod strategy;

use core::fmt;
use core::marker::PhantomData;
use std::time::Duration;

use bytemuck::Pod;

pub use error::{Lagged, ReadError, TooManyHolders, TryReadError, WouldLap};
pub use lossless::LosslessWriter;
pub use recv::{Recv, RecvError};
pub use strategy::Wait;

use crate::notify::{AtomicFlag, WaitList};
use crate::sync::{Arc, AtomicBool, AtomicU64, Ordering};
use registry::{MAX_GATING, Padded, Registry};
use slots::{MAX_SEQ, Read, Slots};
use strategy::{Backoff, Step};

/// A reader's [`backpressure_ratio`](Reader::backpressure_ratio) above which it is
/// [under pressure](Reader::is_under_pressure).
pub const PRESSURE_THRESHOLD: f32 = 0.8;
/// The [`backpressure_ratio`](Reader::backpressure_ratio) from which a reader
/// [should throttle](Reader::should_throttle) its writer.
pub const THROTTLE_THRESHOLD: f32 = 0.9;

/// Creates a ring of `CAP` slots of `T` and returns its writer and a first reader, which
/// starts at event 0.
///
/// The slots are built straight on the heap: `channel::<PooledEvent<16384>, 4096>()`
/// (64 MiB) never touches the stack.
///
/// ```
/// let (mut writer, mut reader) = slotring::broadcast::channel::<[u64; 4], 8>();
/// assert_eq!(writer.add([1, 2, 3, 4]), 0); // `add` returns the event's number
/// assert_eq!(reader.try_next(), Ok([1, 2, 3, 4]));
/// ```
///
/// # `CAP` must be a power of two
///
/// Any other `CAP` is a compile error, but only when the call is compiled to machine code
/// (`cargo build`, `cargo test`, `cargo run`): the check is a `const` assertion inside
/// this generic function, which Rust evaluates at monomorphisation. `cargo check`,
/// `cargo clippy` and rust-analyzer stop before that and accept, say, `CAP = 3` without a
/// word. (Stable Rust has no way to bound a const generic by a predicate; a trait
/// implemented for each power of two would fire in `cargo check`, but every function
/// generic over `CAP` that calls `channel` would then have to repeat that bound.) The
/// build then fails with (Rust 1.95's wording):
///
/// ```text
/// error[E0080]: evaluation panicked: a broadcast ring's CAP must be a power of two
/// ```
///
/// ```compile_fail,E0080
/// let (writer, reader) = slotring::broadcast::channel::<u64, 3>(); // 3: not a power of two
/// ```
#[must_use]
pub fn channel<T: Pod, const CAP: usize>() -> (Writer<T, CAP>, Reader<T, CAP>) {
    const {
        assert!(
            CAP.is_power_of_two(),
            "a broadcast ring's CAP must be a power of two"
        );
        assert!(
            (CAP as u128) * (Slots::<T, CAP>::LINES as u128) * 64 <= isize::MAX as u128,
            "a broadcast ring must fit the address space"
        );
    };
    let shared = Arc::new(Shared {
        cursor: Padded(AtomicU64::new(0)),
        slots: Slots::new(),
        registry: Registry::new(),
        acked: Padded(AtomicU64::new(0)),
        readers_waiting: AtomicFlag::new(),
        waiting_readers: WaitList::new(),
        closed: AtomicBool::new(false),
    });
    let reader = Reader::at(shared.clone(), 0);
    let writer = Writer {
        shared,
        next: 0,
        gate: None,
        seen_version: 0,
        lossless: false,
        _values: PhantomData,
    };
    (writer, reader)
}

/// What the writer and readers share.
struct Shared<T, const CAP: usize> {
    /// How many events are published (the next event's number).
    cursor: Padded<AtomicU64>,
    slots: Slots<T, CAP>,
    registry: Registry,
    /// The registry version a [`LosslessWriter`] last scanned the holders at: it never
    /// overwrites an unread event of a reader that joined at this version or before.
    /// Stays 0 while the writer may lap holders ([`Writer::add`]).
    acked: Padded<AtomicU64>,
    /// Raised while some reader waits (blocked or async) in `waiting_readers`.
    readers_waiting: AtomicFlag,
    /// Readers waiting for the writer to publish (or go away).
    waiting_readers: WaitList,
    /// Set once the writer is dropped, after its last publication.
    closed: AtomicBool,
}

impl<T: Pod, const CAP: usize> Shared<T, CAP> {
    /// The writer's published position.
    #[inline]
    fn published(&self) -> u64 {
        // Acquire: pairs with the writer's Release store; everything up to that event is
        // complete in its slot.
        self.cursor.load(Ordering::Acquire)
    }

    /// Whether a reader at `next` has something to read or learn: an event at or past
    /// `next` is published, or the writer is gone. What a waiting reader re-checks.
    #[inline]
    fn has_news(&self, next: u64) -> bool {
        // The writer stores its cursor and the closed flag before it tests the waiting
        // flag. Acquire (closed): pairs with the Release store in the writer's drop.
        self.published() > next || self.closed.load(Ordering::Acquire)
    }

    /// `lag` events behind, as a fraction of the ring (capped at 1.0).
    fn ratio(lag: u64) -> f32 {
        (lag.min(CAP as u64) as f64 / CAP as f64) as f32
    }
}

/// The writing end of a broadcast ring. There is exactly one; dropping it closes the
/// ring (readers get [`TryReadError::Closed`] once they have read everything).
///
/// ```
/// use slotring::broadcast::{channel, TryReadError};
/// let (mut writer, mut reader) = channel::<u32, 4>();
/// writer.add(1);
/// drop(writer);                                   // closes the ring
/// assert!(reader.is_closed());
/// assert_eq!(reader.try_next(), Ok(1));           // what was published is still read
/// assert_eq!(reader.try_next(), Err(TryReadError::Closed));
/// ```
pub struct Writer<T: Pod, const CAP: usize> {
    shared: Arc<Shared<T, CAP>>,
    /// The next event's number.
    next: u64,
    /// The lowest position of a reader holding the writer back, as last scanned.
    gate: Option<u64>,
    /// The registry version the gate was scanned at.
    seen_version: u64,
    /// Whether this is the inside of a [`LosslessWriter`], which publishes
    /// [`Shared::acked`].
    lossless: bool,
    _values: PhantomData<T>,
}

impl<T: Pod, const CAP: usize> Writer<T, CAP> {
    /// The number of slots.
    ///
    /// ```
    /// use slotring::broadcast::{channel, Writer};
    /// let (writer, _reader) = channel::<u64, 16>();
    /// assert_eq!(Writer::<u64, 16>::CAPACITY, 16);
    /// # drop(writer);
    /// ```
    pub const CAPACITY: usize = CAP;

    /// Publishes `value` as the next event and returns its number. Never blocks and never
    /// allocates; overwrites the oldest event if the ring is full, so readers more than
    /// `CAP` events behind are lapped (they get [`Lagged`]).
    ///
    /// ```
    /// let (mut writer, mut reader) = slotring::broadcast::channel::<u32, 2>();
    /// for i in 0..5 {
    ///     writer.add(i);
    /// }
    /// let got: Vec<_> = reader.by_ref().collect();
    /// assert_eq!(got[0], Err(slotring::broadcast::Lagged { missed: 3 }));
    /// assert_eq!(got[1..], [Ok(3), Ok(4)]); // the 2 events the ring retains
    /// ```
    ///
    /// # Panics
    ///
    /// After 2^62 events (over a century at a billion events a second).
    #[inline]
    pub fn add(&mut self, value: T) -> u64 {
        self.publish(core::slice::from_ref(&value))
    }

    /// Publishes `value` unless that would overwrite an event that a reader holding the
    /// writer back ([`Reader::hold_writer`]) has not read yet; then hands it back in
    /// [`WouldLap`]. With no such reader it behaves like [`add`](Self::add).
    ///
    /// The check costs one load of a read-mostly word while the slowest holding reader
    /// is known to be far enough ahead, and a scan of the holders' positions otherwise.
    /// A reader that starts holding while this call runs may be lapped by it (it sees
    /// [`Lagged`] as usual); it is respected from the next call on.
    ///
    /// ```
    /// let (mut writer, mut reader) = slotring::broadcast::channel::<u32, 2>();
    /// reader.hold_writer()?;
    /// writer.try_add(1)?;
    /// writer.try_add(2)?;
    /// let refused = writer.try_add(3).unwrap_err(); // would overwrite event 0 (unread)
    /// assert_eq!(refused.into_inner(), 3);
    /// assert_eq!(reader.try_next(), Ok(1));
    /// writer.try_add(3)?; // event 0 was read: its slot may be reused
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_add(&mut self, value: T) -> Result<u64, WouldLap<T>> {
        match self.room(1) {
            Ok(_) => Ok(self.publish(core::slice::from_ref(&value))),
            Err(slowest) => Err(WouldLap::new(value, slowest)),
        }
    }

    /// Publishes `values` as consecutive events with one store of the writer's cursor
    /// (and one wake-up check) for the whole batch, and returns the number of the first.
    /// Like [`add`](Self::add), never blocks and overwrites the oldest events, so a batch
    /// longer than `CAP` laps even a reader that keeps up.
    ///
    /// ```
    /// let (mut writer, mut reader) = slotring::broadcast::channel::<u32, 8>();
    /// assert_eq!(writer.add_slice(&[10, 11, 12]), 0); // events 0, 1, 2
    /// assert_eq!(writer.add_slice(&[13]), 3);
    /// assert_eq!(reader.by_ref().flatten().collect::<Vec<_>>(), [10, 11, 12, 13]);
    /// ```
    ///
    /// # Panics
    ///
    /// After 2^62 events, as [`add`](Self::add).
    #[inline]
    pub fn add_slice(&mut self, values: &[T]) -> u64 {
        self.publish(values)
    }

    /// Publishes the longest prefix of `values` that overwrites no event a reader holding
    /// the writer back has not read, with one store of the writer's cursor, and returns
    /// how many it published (0: the ring is full for the slowest holder). With no
    /// holding reader it publishes them all, like [`add_slice`](Self::add_slice).
    ///
    /// ```
    /// let (mut writer, mut reader) = slotring::broadcast::channel::<u32, 4>();
    /// reader.hold_writer()?;
    /// assert_eq!(writer.try_add_slice(&[0, 1, 2, 3, 4, 5]), 4); // 4 and 5 would lap
    /// assert_eq!(writer.try_add_slice(&[4, 5]), 0);
    /// assert_eq!(reader.try_next(), Ok(0));
    /// assert_eq!(writer.try_add_slice(&[4, 5]), 1); // one slot was freed
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_add_slice(&mut self, values: &[T]) -> usize {
        if values.is_empty() {
            return 0;
        }
        match self.room(values.len() as u64) {
            // `room` never grants more than it was asked, which is a `usize`.
            Ok(room) => {
                let room = room as usize;
                self.publish(&values[..room]);
                room
            }
            Err(_) => 0,
        }
    }

    /// How many of the next `wanted` events (at least 1) can be published without
    /// overwriting an event a holding reader has not read: `Ok(1..=wanted)`, or
    /// `Err(slowest holder's position)` if not even one.
    ///
    /// Rescans the holders' entries when a reader joined since the last scan (the
    /// registry version moved) or when the cached minimum leaves less room than wanted.
    #[inline]
    fn room(&mut self, wanted: u64) -> Result<u64, u64> {
        let version = self.shared.registry.version();
        if version != self.seen_version || self.room_for(self.gate) < wanted {
            self.gate = self.shared.registry.min_position();
            if self.lossless && version != self.seen_version {
                // Release: pairs with the Acquire load in `Reader::in_place_allowed`.
                // Every publication before this store is complete (its cursor store is
                // earlier in program order), and every later one respects the gate
                // just scanned, which includes every reader that joined at `version`
                // or before (`version`'s Acquire load made their claims visible).
                self.shared.acked.store(version, Ordering::Release);
            }
            self.seen_version = version;
        }
        match (self.room_for(self.gate), self.gate) {
            (0, Some(slowest)) => Err(slowest),
            (room, _) => Ok(room.min(wanted)),
        }
    }

    /// How many events can be published before the next one would overwrite an event a
    /// reader at `gate` has not read (`u64::MAX` without a gate).
    #[inline]
    fn room_for(&self, gate: Option<u64>) -> u64 {
        gate.map_or(u64::MAX, |gate| {
            gate.saturating_add(CAP as u64).saturating_sub(self.next)
        })
    }

    /// Writes `values` as the next events, then publishes them with one cursor store.
    /// Returns the first one's number.
    #[inline]
    fn publish(&mut self, values: &[T]) -> u64 {
        let first = self.next;
        if values.is_empty() {
            return first;
        }
        self.check_room_in_sequence(values.len());
        self.shared.slots.write_all(first, values);
        self.published_up_to(first + values.len() as u64);
        first
    }

    /// Panics if `count` more events would exhaust the sequence numbers.
    #[inline]
    fn check_room_in_sequence(&self, count: usize) {
        // `next <= MAX_SEQ + 1` always (this check keeps it so).
        assert!(
            count as u64 <= MAX_SEQ + 1 - self.next,
            "broadcast ring sequence numbers exhausted"
        );
    }

    /// Publishes every event below `end` (already written in its slot) with one cursor
    /// store, and wakes waiting readers.
    #[inline]
    fn published_up_to(&mut self, end: u64) {
        self.next = end;
        let shared = &*self.shared;
        // Release: pairs with the Acquire in `Shared::published`: a reader that sees the
        // cursor past an event sees it complete in its slot (holding readers read it in
        // place on that basis; the others re-check the slot's own word).
        shared.cursor.store(end, Ordering::Release);
        // The fence protocol of `notify`: a fence and one flag load when nobody waits,
        // after the cursor store that a waiting reader re-checks.
        shared
            .readers_waiting
            .notify_after_fence(&shared.waiting_readers);
    }

    /// Publishes up to `max` events made by `make(event number)` straight into their
    /// slots, as many as fit without overwriting an event a holding reader has not read
    /// (as [`try_add_slice`](Self::try_add_slice), with one cursor store), and returns
    /// how many. Saves copying the events out of a slice first. At most `CAP` events per
    /// call, holders or not (a larger batch would overwrite its own first events before
    /// its one cursor store), so `max = usize::MAX` means "as many as fit".
    ///
    /// If `make` panics, the events it made before are published.
    ///
    /// ```
    /// let (mut writer, mut reader) = slotring::broadcast::channel::<[u64; 2], 4>();
    /// reader.hold_writer()?;
    /// assert_eq!(writer.try_add_with(10, |seq| [seq, seq * seq]), 4); // the ring's room
    /// assert_eq!(reader.try_next(), Ok([0, 0]));
    /// assert_eq!(writer.try_add_with(10, |seq| [seq, seq * seq]), 1);
    /// assert_eq!(reader.by_ref().flatten().last(), Some([4, 16]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_add_with(&mut self, max: usize, mut make: impl FnMut(u64) -> T) -> usize {
        let max = max.min(CAP);
        if max == 0 {
            return 0;
        }
        let Ok(room) = self.room(max as u64) else {
            return 0;
        };
        // `room` never grants more than it was asked, which is a `usize`.
        let count = room as usize;
        self.check_room_in_sequence(count);
        /// Publishes what was written when dropped, also if `make` panics.
        struct Written<'a, T: Pod, const CAP: usize> {
            writer: &'a mut Writer<T, CAP>,
            end: u64,
        }
        impl<T: Pod, const CAP: usize> Drop for Written<'_, T, CAP> {
            fn drop(&mut self) {
                if self.end > self.writer.next {
                    self.writer.published_up_to(self.end);
                }
            }
        }
        let first = self.next;
        let mut written = Written {
            end: first,
            writer: self,
        };
        let slots = &written.writer.shared.slots;
        for seq in first..first + count as u64 {
            slots.write(seq, &make(seq));
            written.end = seq + 1;
        }
        count
    }

    /// A new reader that starts at the next event published (it sees nothing older).
    ///
    /// ```
    /// let (mut writer, _first) = slotring::broadcast::channel::<u8, 4>();
    /// writer.add(1);
    /// let mut late = writer.subscribe();
    /// writer.add(2);
    /// assert_eq!(late.try_next(), Ok(2));
    /// ```
    #[must_use]
    pub fn subscribe(&self) -> Reader<T, CAP> {
        Reader::at(self.shared.clone(), self.next)
    }

    /// How many events have been published (the next event's number).
    ///
    /// ```
    /// let (mut writer, _reader) = slotring::broadcast::channel::<u8, 4>();
    /// assert_eq!(writer.position(), 0);
    /// writer.add(7);
    /// writer.add(8);
    /// assert_eq!(writer.position(), 2); // event numbers 0 and 1 are taken
    /// ```
    #[must_use]
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The position (next event to read) of the slowest reader holding the writer back,
    /// or `None` if no reader does. Scans the holders' entries.
    ///
    /// ```
    /// let (mut writer, mut reader) = slotring::broadcast::channel::<u8, 4>();
    /// assert_eq!(writer.slowest_reader(), None);
    /// reader.hold_writer()?;
    /// writer.add(1);
    /// assert_eq!(writer.slowest_reader(), Some(0));
    /// reader.try_next()?;
    /// assert_eq!(writer.slowest_reader(), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn slowest_reader(&self) -> Option<u64> {
        self.shared.registry.min_position()
    }

    /// How far the slowest reader holding the writer back trails, as a fraction of the
    /// ring: 0.0 when it has read everything (or no reader holds the writer back), 1.0
    /// when one more [`try_add`](Self::try_add) would be refused.
    ///
    /// ```
    /// let (mut writer, mut reader) = slotring::broadcast::channel::<u8, 4>();
    /// writer.add(1);
    /// assert_eq!(writer.backpressure_ratio(), 0.0); // nobody holds the writer back
    /// reader.hold_writer()?;
    /// writer.add(2);
    /// assert_eq!(writer.backpressure_ratio(), 0.5); // 2 of 4 slots unread by a holder
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn backpressure_ratio(&self) -> f32 {
        let lag = self
            .slowest_reader()
            .map_or(0, |slowest| self.next.saturating_sub(slowest));
        Shared::<T, CAP>::ratio(lag)
    }

    /// Whether [`backpressure_ratio`](Self::backpressure_ratio) is above
    /// [`PRESSURE_THRESHOLD`] (0.8).
    ///
    /// ```
    /// let (mut writer, mut reader) = slotring::broadcast::channel::<u8, 8>();
    /// reader.hold_writer()?;
    /// for i in 0..7 {
    ///     writer.add(i);
    /// }
    /// assert!(writer.is_under_pressure()); // 7/8 > 0.8
    /// reader.try_next()?;
    /// assert!(!writer.is_under_pressure()); // 6/8
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn is_under_pressure(&self) -> bool {
        self.backpressure_ratio() > PRESSURE_THRESHOLD
    }

    /// Whether [`backpressure_ratio`](Self::backpressure_ratio) is at least
    /// [`THROTTLE_THRESHOLD`] (0.9).
    ///
    /// ```
    /// let (mut writer, mut reader) = slotring::broadcast::channel::<u8, 4>();
    /// reader.hold_writer()?;
    /// while !writer.should_throttle() {
    ///     writer.try_add(0)?;
    /// }
    /// assert_eq!(writer.backpressure_ratio(), 1.0); // the next try_add would be refused
    /// assert!(writer.try_add(0).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn should_throttle(&self) -> bool {
        self.backpressure_ratio() >= THROTTLE_THRESHOLD
    }
}

impl<T: Pod, const CAP: usize> Drop for Writer<T, CAP> {
    fn drop(&mut self) {
        // Release: pairs with the Acquire load in `Reader::closed`; every publication
        // happens-before a reader's "closed" verdict, so it re-checks its slot after it.
        self.shared.closed.store(true, Ordering::Release);
        self.shared.waiting_readers.wake_all();
    }
}

impl<T: Pod, const CAP: usize> fmt::Debug for Writer<T, CAP> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("capacity", &CAP)
            .field("position", &self.next)
            .finish_non_exhaustive()
    }
}

/// A reading end of a broadcast ring: sees every event from its start position on, in
/// order, exactly once, unless the writer laps it (then it is told how many it missed).
///
/// As an [`Iterator`] it yields `Ok(event)` or `Err(`[`Lagged`]`)` for what is available
/// now and returns `None` when it has caught up; iterating again later continues.
///
/// Cloning makes an independent reader at the same position (it does not inherit
/// [`hold_writer`](Self::hold_writer)).
///
/// ```
/// use slotring::broadcast::channel;
/// let (mut writer, mut a) = channel::<u64, 8>();
/// let mut b = a.clone();                 // same position as `a`
/// writer.add(10);
/// writer.add(20);
/// assert_eq!(a.by_ref().collect::<Vec<_>>(), [Ok(10), Ok(20)]);
/// assert_eq!(b.try_next(), Ok(10));      // each reader at its own pace
/// assert_eq!((a.lag(), b.lag()), (0, 1));
/// ```
pub struct Reader<T: Pod, const CAP: usize> {
    shared: Arc<Shared<T, CAP>>,
    /// The next event to read.
    next: u64,
    /// The writer's position as last loaded: events below it are complete in their
    /// slots (or overwritten), so they are read without polling the writer's cursor.
    published: u64,
    /// The registry entry, while this reader holds the writer back.
    entry: Option<usize>,
    /// The registry version this reader's hold made (meaningful while `entry` is set).
    joined_at: u64,
    /// Whether a [`LosslessWriter`] has seen this reader's hold, so it never overwrites
    /// what this reader has not read: batches are then read in place.
    in_place: bool,
    _values: PhantomData<T>,
}

impl<T: Pod, const CAP: usize> Reader<T, CAP> {
    fn at(shared: Arc<Shared<T, CAP>>, next: u64) -> Self {
        Self {
            shared,
            next,
            published: next,
            entry: None,
            joined_at: 0,
            in_place: false,
            _values: PhantomData,
        }
    }

    /// The next event if it is published, without waiting.
    ///
    /// ```
    /// use slotring::broadcast::{channel, TryReadError};
    /// let (mut writer, mut reader) = channel::<u16, 4>();
    /// assert_eq!(reader.try_next(), Err(TryReadError::Empty));
    /// writer.add(7);
    /// drop(writer);
    /// assert_eq!(reader.try_next(), Ok(7)); // published events outlive the writer
    /// assert_eq!(reader.try_next(), Err(TryReadError::Closed));
    /// ```
    pub fn try_next(&mut self) -> Result<T, TryReadError> {
        match self.read() {
            Some(Ok(value)) => Ok(value),
            Some(Err(Lagged { missed })) => Err(TryReadError::Lagged { missed }),
            None if self.closed() => match self.read() {
                // The writer published this event just before it went away.
                Some(Ok(value)) => Ok(value),
                Some(Err(Lagged { missed })) => Err(TryReadError::Lagged { missed }),
                None => Err(TryReadError::Closed),
            },
            None => Err(TryReadError::Empty),
        }
    }

    /// Calls `f` with every event published and not yet read, in order, by reference,
    /// and returns how many; the reader's position (the one that holds the writer back)
    /// moves once, after the last call.
    ///
    /// A reader that [holds back](Self::hold_writer) a [`LosslessWriter`] reads the
    /// events in place, in the ring's slots, without copying them: that writer cannot
    /// overwrite them until `f` has returned for the whole batch (at most `CAP`
    /// events). Every other reader copies each event out through the seqlock first and
    /// stops a batch early where the writer lapped it; the next call reports the lap.
    /// The reference cannot outlive the call, so it never outlives the guarantee.
    ///
    /// Returns [`TryReadError::Empty`] when nothing new is published, `Lagged` when the
    /// writer lapped this reader before the batch's first event, `Closed` when the
    /// writer is gone and everything was read. If `f` panics, the reader's position
    /// stays where the batch started: its events are read again.
    ///
    /// ```
    /// use slotring::broadcast::{channel, TryReadError};
    /// let (writer, mut reader) = channel::<[u64; 8], 64>();
    /// let mut writer = writer.into_lossless(); // never laps a holding reader
    /// reader.hold_writer()?;
    /// assert_eq!(writer.try_add_slice(&[[1; 8], [2; 8], [3; 8]]), 3);
    /// let mut sum = 0;
    /// assert_eq!(reader.read_batch(|event| sum += event[0]), Ok(3)); // by reference
    /// assert_eq!(sum, 6);
    /// assert_eq!(reader.read_batch(|_| unreachable!()), Err(TryReadError::Empty));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_batch(&mut self, mut f: impl FnMut(&T)) -> Result<usize, TryReadError> {
        match self.batch(&mut f) {
            Some(Ok(count)) => Ok(count),
            Some(Err(Lagged { missed })) => Err(TryReadError::Lagged { missed }),
            None if self.closed() => match self.batch(&mut f) {
                // The writer published these just before it went away.
                Some(Ok(count)) => Ok(count),
                Some(Err(Lagged { missed })) => Err(TryReadError::Lagged { missed }),
                None => Err(TryReadError::Closed),
            },
            None => Err(TryReadError::Empty),
        }
    }

    /// The next event, waiting up to `timeout` for it: spins briefly, then yields, then
    /// parks until the writer publishes or goes away. `Duration::MAX` waits forever.
    ///
    /// ```
    /// use std::time::Duration;
    /// use slotring::broadcast::{channel, ReadError};
    /// let (mut writer, mut reader) = channel::<u64, 8>();
    /// let t = std::thread::spawn(move || {
    ///     writer.add(42);
    /// }); // the writer drops at the end of the thread
    /// assert_eq!(reader.next_blocking(Duration::MAX), Ok(42));
    /// assert_eq!(reader.next_blocking(Duration::MAX), Err(ReadError::Closed));
    /// t.join().unwrap();
    /// ```
    pub fn next_blocking(&mut self, timeout: Duration) -> Result<T, ReadError> {
        self.next_wait(Wait::Block, timeout)
    }

    /// The next event, waiting up to `timeout` for it as `wait` says
    /// ([`Wait::Block`] is [`next_blocking`](Self::next_blocking)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use slotring::broadcast::{channel, ReadError, Wait};
    /// let (mut writer, mut reader) = channel::<u64, 8>();
    /// assert_eq!(reader.next_wait(Wait::Yield, Duration::from_millis(1)), Err(ReadError::Timeout));
    /// writer.add(5);
    /// assert_eq!(reader.next_wait(Wait::Spin, Duration::MAX), Ok(5));
    /// ```
    pub fn next_wait(&mut self, wait: Wait, timeout: Duration) -> Result<T, ReadError> {
        let mut backoff = Backoff::new(wait, timeout);
        loop {
            match self.try_next() {
                Ok(value) => return Ok(value),
                Err(TryReadError::Lagged { missed }) => return Err(ReadError::Lagged { missed }),
                Err(TryReadError::Closed) => return Err(ReadError::Closed),
                Err(TryReadError::Empty) => self.back_off(&mut backoff)?,
            }
        }
    }

    /// [`read_batch`](Self::read_batch), waiting up to `timeout` as `wait` says while
    /// nothing new is published.
    ///
    /// ```
    /// use std::time::Duration;
    /// use slotring::broadcast::{channel, ReadError, Wait};
    /// let (writer, mut reader) = channel::<u32, 16>();
    /// let mut writer = writer.into_lossless();
    /// reader.hold_writer()?;
    /// let t = std::thread::spawn(move || {
    ///     writer.add_slice(&[1, 2, 3], Wait::Block, Duration::MAX);
    /// }); // the writer drops at the end of the thread
    /// let mut got = Vec::new();
    /// while let Ok(_) = reader.read_batch_wait(Wait::Block, Duration::MAX, |e| got.push(*e)) {}
    /// assert_eq!(got, [1, 2, 3]);
    /// assert_eq!(reader.read_batch_wait(Wait::Block, Duration::MAX, |_| {}), Err(ReadError::Closed));
    /// t.join().unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_batch_wait(
        &mut self,
        wait: Wait,
        timeout: Duration,
        mut f: impl FnMut(&T),
    ) -> Result<usize, ReadError> {
        let mut backoff = Backoff::new(wait, timeout);
        loop {
            match self.read_batch(&mut f) {
                Ok(count) => return Ok(count),
                Err(TryReadError::Lagged { missed }) => return Err(ReadError::Lagged { missed }),
                Err(TryReadError::Closed) => return Err(ReadError::Closed),
                Err(TryReadError::Empty) => self.back_off(&mut backoff)?,
            }
        }
    }

    /// One step of a reader's wait: spin, yield or park, or `Timeout`.
    fn back_off(&self, backoff: &mut Backoff) -> Result<(), ReadError> {
        match backoff.step() {
            Step::Again => Ok(()),
            Step::TimedOut => Err(ReadError::Timeout),
            Step::Park(deadline) => {
                let (shared, next) = (&*self.shared, self.next);
                // Returns once the writer published past `next`, went away, or the
                // deadline passed (the caller's next step reports the timeout).
                let _ = shared
                    .waiting_readers
                    .wait(&shared.readers_waiting, deadline, || {
                        shared.has_news(next).then_some(())
                    });
                Ok(())
            }
        }
    }

    /// One read attempt: `None` if the next event is not published yet.
    ///
    /// A caught-up reader polls the writer's cursor, not the slot the writer is filling,
    /// so the slot's cache lines move to the reader once, after the event is complete.
    #[inline]
    fn read(&mut self) -> Option<Result<T, Lagged>> {
        if self.next >= self.published {
            self.published = self.shared.published();
            if self.next >= self.published {
                return None;
            }
        }
        match self.shared.slots.read(self.next) {
            Read::Event(value) => {
                self.advance_to(self.next + 1);
                Some(Ok(value))
            }
            // Not reachable: the cursor (Acquire) showed the event complete. Treated as
            // "nothing yet" all the same.
            Read::NotYet => None,
            Read::Lapped { newer } => {
                // The slot holds (or is being filled with) event `newer >= next + CAP`,
                // so event `newer - CAP` is gone. Resume at the oldest event the ring
                // still retains, as `tokio::sync::broadcast` does: `published - CAP`
                // (events below the cursor are complete, the last CAP of them are in
                // their slots), and never at or behind what this slot proved gone. The
                // writer may be overwriting `published - CAP` right now; then the next
                // read's seqlock sees it and reports the events since as another lag,
                // so received plus missed stays exact.
                self.published = self.shared.published();
                let oldest_retained = self.published.saturating_sub(CAP as u64);
                let resume = oldest_retained.max(newer + 1 - CAP as u64);
                let missed = resume - self.next;
                self.advance_to(resume);
                Some(Err(Lagged { missed }))
            }
        }
    }

    /// One batch attempt: `None` if nothing new is published.
    #[inline]
    fn batch(&mut self, f: &mut impl FnMut(&T)) -> Option<Result<usize, Lagged>> {
        // First: a cursor this reader goes on to use must be loaded after the ack.
        let in_place = self.in_place_allowed();
        // A fresh cursor each batch (one Acquire load a batch, not an event), so a batch
        // holds every event published before the call, not only those below a cursor an
        // earlier single read cached.
        self.published = self.shared.published();
        if self.next >= self.published {
            return None;
        }
        let (start, end) = (self.next, self.published);
        if in_place && end - start <= CAP as u64 {
            for seq in start..end {
                // (1) Event `seq < end` is complete and visible: `end` is a cursor value
                // loaded with Acquire, which the writer stored with Release after
                // writing every event below it. (2) No store to its slot happens before
                // this call returns: the slot is next written for event
                // `seq + CAP >= start + CAP`. Every publication before the writer's ack
                // of this reader's hold is below `end` (the cursor was loaded after the
                // ack, `in_place_allowed`), hence below `start + CAP` (checked above);
                // every publication after the ack stays below `gate + CAP`, where `gate`
                // is a position this reader's entry showed, so `gate <= start`
                // (positions only grow while holding). The entry moves past `start` only
                // in `advance_to` below, after the last call. (The module docs name an
                // open defect against this argument when holds are released and
                // re-taken.)
                // SAFETY: `with_in_place`'s contract, by (1) and (2) above.
                unsafe { self.shared.slots.with_in_place(seq, &mut *f) };
            }
            self.advance_to(end);
            // At most CAP events (checked above), so the count fits `usize`.
            return Some(Ok((end - start) as usize));
        }
        // Copy through the seqlock, event by event, until the cursor or a lap.
        let mut seq = start;
        while seq < end {
            match self.shared.slots.read(seq) {
                Read::Event(value) => {
                    f(&value);
                    seq += 1;
                }
                Read::NotYet | Read::Lapped { .. } => break,
            }
        }
        if seq > start {
            self.advance_to(seq);
            // `usize` count: the caller's closure ran this many times.
            return Some(Ok((seq - start) as usize));
        }
        // Lapped before the first event: the single-event path reports it.
        self.read().map(|read| {
            read.map(|value| {
                f(&value);
                1
            })
        })
    }

    /// Whether batches are read in place: this reader holds the writer back and a
    /// [`LosslessWriter`] has acknowledged it. Once true, stays true until
    /// [`release_writer`](Self::release_writer).
    #[inline]
    fn in_place_allowed(&mut self) -> bool {
        if self.in_place || self.entry.is_none() {
            return self.in_place;
        }
        // Acquire: pairs with the Release store of the ack in `Writer::room`: every
        // publication the writer made before it happens-before the cursor load below.
        if self.shared.acked.load(Ordering::Acquire) >= self.joined_at {
            self.in_place = true;
            // Forget the cursor loaded before the ack: the in-place path trusts only a
            // cursor loaded after it (the lap check in `batch` relies on that).
            self.published = self.next;
        }
        self.in_place
    }

    #[inline]
    fn advance_to(&mut self, next: u64) {
        self.next = next;
        if let Some(entry) = self.entry {
            self.shared.registry.update(entry, next);
        }
    }

    fn closed(&self) -> bool {
        // Acquire: pairs with the Release store in the writer's drop: after seeing it,
        // a re-read of the slot sees the writer's last publication.
        self.shared.closed.load(Ordering::Acquire)
    }

    /// The next event number this reader will read.
    ///
    /// ```
    /// let (mut writer, mut reader) = slotring::broadcast::channel::<u8, 4>();
    /// writer.add(1);
    /// assert_eq!(reader.cursor(), 0);
    /// reader.try_next()?;
    /// assert_eq!(reader.cursor(), 1);
    /// assert_eq!(writer.subscribe().cursor(), 1); // new readers start at the next event
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn cursor(&self) -> u64 {
        self.next
    }

    /// The next event number this reader will read: the former name of
    /// [`cursor`](Self::cursor). On a `&mut Reader` the method call resolves to
    /// [`Iterator::position`] instead (error E0061), hence the new name.
    #[deprecated(note = "use cursor(); position() collides with Iterator::position")]
    #[must_use]
    pub fn position(&self) -> u64 {
        self.cursor()
    }

    /// How many published events this reader has not read yet (more than `CAP` means it
    /// has been lapped and will get [`Lagged`] next).
    ///
    /// ```
    /// let (mut writer, reader) = slotring::broadcast::channel::<u8, 2>();
    /// for i in 0..5 {
    ///     writer.add(i);
    /// }
    /// assert_eq!(reader.lag(), 5); // more than CAP: the next read reports Lagged
    /// ```
    #[must_use]
    pub fn lag(&self) -> u64 {
        self.shared.published().saturating_sub(self.next)
    }

    /// How far this reader trails the writer, as a fraction of the ring: 0.0 when it has
    /// read everything, 1.0 when the next event the writer adds laps it (or it already
    /// has been lapped). Sequence numbers are 64 bits and never wrap, so the ratio is
    /// right at any point in the stream.
    ///
    /// ```
    /// let (mut writer, reader) = slotring::broadcast::channel::<u8, 8>();
    /// for i in 0..6 {
    ///     writer.add(i);
    /// }
    /// assert_eq!(reader.backpressure_ratio(), 0.75);
    /// assert!(!reader.is_under_pressure());
    /// writer.add(6);
    /// assert!(reader.is_under_pressure() && !reader.should_throttle());
    /// writer.add(7);
    /// assert!(reader.should_throttle());
    /// ```
    #[must_use]
    pub fn backpressure_ratio(&self) -> f32 {
        Shared::<T, CAP>::ratio(self.lag())
    }

    /// Whether [`backpressure_ratio`](Self::backpressure_ratio) is above
    /// [`PRESSURE_THRESHOLD`] (0.8).
    ///
    /// ```
    /// let (mut writer, reader) = slotring::broadcast::channel::<u8, 4>();
    /// for i in 0..3 {
    ///     writer.add(i);
    /// }
    /// assert!(!reader.is_under_pressure()); // 3/4 is not above 0.8
    /// writer.add(3);
    /// assert!(reader.is_under_pressure());
    /// ```
    #[must_use]
    pub fn is_under_pressure(&self) -> bool {
        self.backpressure_ratio() > PRESSURE_THRESHOLD
    }

    /// Whether [`backpressure_ratio`](Self::backpressure_ratio) is at least
    /// [`THROTTLE_THRESHOLD`] (0.9).
    ///
    /// ```
    /// let (mut writer, reader) = slotring::broadcast::channel::<u8, 16>();
    /// for i in 0..15 {
    ///     writer.add(i);
    /// }
    /// assert!(reader.should_throttle()); // 15/16 >= 0.9
    /// ```
    #[must_use]
    pub fn should_throttle(&self) -> bool {
        self.backpressure_ratio() >= THROTTLE_THRESHOLD
    }

    /// Makes [`Writer::try_add`] refuse rather than lap this reader, until
    /// [`release_writer`](Self::release_writer) or drop. [`Writer::add`] still overwrites.
    /// Does nothing if this reader already holds the writer back.
    ///
    /// Each read then also publishes this reader's position (one store to its own cache
    /// line). At most 64 readers can hold one writer back at a time.
    ///
    /// A reader leaked with `mem::forget` while holding keeps `try_add` refusing once the
    /// ring is full: nothing can tell it from a slow reader.
    ///
    /// ```
    /// use slotring::broadcast::{channel, TooManyHolders};
    /// let (mut writer, mut reader) = channel::<u8, 2>();
    /// reader.hold_writer()?;
    /// writer.try_add(1)?;
    /// writer.try_add(2)?;
    /// assert_eq!(writer.try_add(3).unwrap_err().slowest(), 0); // refused, not lapped
    /// // At most 64 readers can hold one writer back.
    /// let mut holders: Vec<_> = (0..63).map(|_| reader.clone()).collect();
    /// for r in &mut holders {
    ///     r.hold_writer()?;
    /// }
    /// assert_eq!(reader.clone().hold_writer(), Err(TooManyHolders { max: 64 }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn hold_writer(&mut self) -> Result<(), TooManyHolders> {
        if self.entry.is_none() {
            let (entry, version) = self
                .shared
                .registry
                .join(self.next)
                .ok_or(TooManyHolders { max: MAX_GATING })?;
            self.entry = Some(entry);
            self.joined_at = version;
        }
        Ok(())
    }

    /// Stops holding the writer back (see [`hold_writer`](Self::hold_writer)).
    ///
    /// ```
    /// let (mut writer, mut reader) = slotring::broadcast::channel::<u8, 1>();
    /// reader.hold_writer()?;
    /// writer.try_add(1)?;
    /// assert!(writer.try_add(2).is_err());
    /// reader.release_writer();
    /// assert!(writer.try_add(2).is_ok()); // laps the reader now
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release_writer(&mut self) {
        self.in_place = false;
        if let Some(entry) = self.entry.take() {
            self.shared.registry.leave(entry);
        }
    }

    /// Whether this reader holds the writer back.
    ///
    /// ```
    /// let (_writer, mut reader) = slotring::broadcast::channel::<u8, 4>();
    /// assert!(!reader.holds_writer());
    /// reader.hold_writer()?;
    /// assert!(reader.holds_writer());
    /// assert!(!reader.clone().holds_writer()); // clones do not inherit the hold
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn holds_writer(&self) -> bool {
        self.entry.is_some()
    }

    /// Whether the writer is gone. Events it published before can still be read.
    ///
    /// ```
    /// let (writer, reader) = slotring::broadcast::channel::<u8, 4>();
    /// assert!(!reader.is_closed());
    /// drop(writer);
    /// assert!(reader.is_closed());
    /// ```
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.closed()
    }
}

impl<T: Pod, const CAP: usize> Iterator for Reader<T, CAP> {
    type Item = Result<T, Lagged>;

    /// The next event, a [`Lagged`] report, or `None` when nothing new is published yet
    /// (or the writer is gone and everything was read).
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.read()
    }
}

impl<T: Pod, const CAP: usize> Clone for Reader<T, CAP> {
    fn clone(&self) -> Self {
        Self::at(self.shared.clone(), self.next)
    }
}

impl<T: Pod, const CAP: usize> Drop for Reader<T, CAP> {
    fn drop(&mut self) {
        self.release_writer();
    }
}

impl<T: Pod, const CAP: usize> fmt::Debug for Reader<T, CAP> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("capacity", &CAP)
            .field("cursor", &self.next)
            .field("holds_writer", &self.entry.is_some())
            .finish_non_exhaustive()
    }
}
