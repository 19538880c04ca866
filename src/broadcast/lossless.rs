//! [`LosslessWriter`]: the writer of a ring that never overwrites an event a holding
//! reader has not read, so those readers can read batches in place.

use core::fmt;
use std::time::Duration;

use bytemuck::Pod;

use super::strategy::{Backoff, Step};
use super::{Reader, Wait, WouldLap, Writer};

/// The longest a [`Wait::Block`] writer sleeps between two looks at the holding readers.
/// Readers never wake the writer (that would cost every holding reader a fence per read);
/// the writer sleeps in doubling steps from [`FIRST_NAP`] up to this instead.
const LONGEST_NAP: Duration = Duration::from_millis(1);
/// The first sleep of a [`Wait::Block`] writer once it stops yielding.
const FIRST_NAP: Duration = Duration::from_micros(20);

/// A broadcast writer that never laps a reader holding it back
/// ([`Reader::hold_writer`]): it has no [`Writer::add`]. Made by
/// [`Writer::into_lossless`].
///
/// In exchange, every holding reader it has seen join reads batches in place, by
/// reference, with no copy and no seqlock re-check ([`Reader::read_batch`]); readers
/// that do not hold it back are still lapped (and told so) as with a [`Writer`].
///
/// ```
/// use std::time::Duration;
/// use slotring::broadcast::{channel, Wait};
/// let (writer, mut reader) = channel::<[u64; 8], 1024>();
/// let mut writer = writer.into_lossless();
/// reader.hold_writer()?;
/// let t = std::thread::spawn(move || {
///     let batch: Vec<[u64; 8]> = (0..100).map(|i| [i; 8]).collect();
///     for _ in 0..50 {
///         // Waits for room (yielding) rather than lap the reader; one cursor store a batch.
///         assert_eq!(writer.add_slice(&batch, Wait::Yield, Duration::MAX), 100);
///     }
/// });
/// let (mut received, mut sum) = (0, 0);
/// while let Ok(n) = reader.read_batch_wait(Wait::Block, Duration::MAX, |e| sum += e[7]) {
///     received += n;
/// }
/// assert_eq!((received, sum), (5000, 50 * 4950));
/// t.join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LosslessWriter<T: Pod, const CAP: usize> {
    inner: Writer<T, CAP>,
}

impl<T: Pod, const CAP: usize> Writer<T, CAP> {
    /// Turns this writer into one that never laps a holding reader, so that holding
    /// readers read in place ([`Reader::read_batch`]). There is no way back.
    ///
    /// ```
    /// let (mut writer, mut reader) = slotring::broadcast::channel::<u8, 2>();
    /// writer.add(1); // may lap anybody
    /// let mut writer = writer.into_lossless();
    /// reader.hold_writer()?;
    /// assert_eq!(writer.try_add_slice(&[2, 3, 4]), 1); // event 0 is unread: 1 more fits
    /// assert_eq!(writer.position(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn into_lossless(mut self) -> LosslessWriter<T, CAP> {
        self.lossless = true;
        // No registry version is `u64::MAX` (it counts joins), so the next admission
        // rescans and acknowledges every reader holding it back.
        self.seen_version = u64::MAX;
        LosslessWriter { inner: self }
    }
}

impl<T: Pod, const CAP: usize> LosslessWriter<T, CAP> {
    /// The number of slots.
    pub const CAPACITY: usize = CAP;

    /// Publishes `value` unless that would overwrite an event a holding reader has not
    /// read; then hands it back. As [`Writer::try_add`].
    ///
    /// ```
    /// let (writer, mut reader) = slotring::broadcast::channel::<u8, 1>();
    /// let mut writer = writer.into_lossless();
    /// reader.hold_writer()?;
    /// assert_eq!(writer.try_add(1)?, 0);
    /// assert_eq!(writer.try_add(2).unwrap_err().into_inner(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_add(&mut self, value: T) -> Result<u64, WouldLap<T>> {
        self.inner.try_add(value)
    }

    /// Publishes the longest prefix of `values` that laps no holding reader, with one
    /// cursor store, and returns its length. As [`Writer::try_add_slice`].
    ///
    /// ```
    /// let (writer, mut reader) = slotring::broadcast::channel::<u8, 2>();
    /// let mut writer = writer.into_lossless();
    /// reader.hold_writer()?;
    /// assert_eq!(writer.try_add_slice(&[1, 2, 3]), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_add_slice(&mut self, values: &[T]) -> usize {
        self.inner.try_add_slice(values)
    }

    /// Publishes up to `max` events made by `make(event number)` straight into their
    /// slots, as many as lap no holding reader, and returns how many. As
    /// [`Writer::try_add_with`].
    ///
    /// ```
    /// let (writer, mut reader) = slotring::broadcast::channel::<u64, 2>();
    /// let mut writer = writer.into_lossless();
    /// reader.hold_writer()?;
    /// assert_eq!(writer.try_add_with(5, |seq| seq * 10), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_add_with(&mut self, max: usize, make: impl FnMut(u64) -> T) -> usize {
        self.inner.try_add_with(max, make)
    }

    /// Publishes `value`, waiting up to `timeout` as `wait` says while it would lap a
    /// holding reader; on timeout hands it back. `Duration::MAX` waits forever (a
    /// holding reader that never reads then stops the writer for good).
    ///
    /// [`Wait::Block`] spins, yields, then sleeps in doubling steps from 20 µs to 1 ms
    /// between looks at the holders: readers never wake the writer, so their reads cost
    /// nothing extra.
    ///
    /// ```
    /// use std::time::Duration;
    /// use slotring::broadcast::{channel, Wait};
    /// let (writer, mut reader) = channel::<u8, 1>();
    /// let mut writer = writer.into_lossless();
    /// reader.hold_writer()?;
    /// assert_eq!(writer.add(1, Wait::Block, Duration::MAX)?, 0);
    /// let refused = writer.add(2, Wait::Yield, Duration::from_millis(1)).unwrap_err();
    /// assert_eq!(refused.slowest(), 0); // the reader has not read event 0
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add(&mut self, value: T, wait: Wait, timeout: Duration) -> Result<u64, WouldLap<T>> {
        let mut value = value;
        let mut backoff = Backoff::new(wait, timeout);
        let mut nap = FIRST_NAP;
        loop {
            match self.inner.try_add(value) {
                Ok(seq) => return Ok(seq),
                Err(refused) => match backoff.step() {
                    Step::TimedOut => return Err(refused),
                    step => {
                        nap = Self::pause(step, nap);
                        value = refused.into_inner();
                    }
                },
            }
        }
    }

    /// Publishes `values` in batches as room frees up (one cursor store per batch),
    /// waiting up to `timeout` in all as `wait` says; returns how many it published
    /// (all of them unless the timeout passed).
    ///
    /// ```
    /// use std::time::Duration;
    /// use slotring::broadcast::{channel, Wait};
    /// let (writer, mut reader) = channel::<u16, 4>();
    /// let mut writer = writer.into_lossless();
    /// reader.hold_writer()?;
    /// let values: Vec<u16> = (0..10).collect();
    /// assert_eq!(writer.add_slice(&values, Wait::Spin, Duration::from_millis(1)), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_slice(&mut self, values: &[T], wait: Wait, timeout: Duration) -> usize {
        let mut done = 0;
        let mut backoff = Backoff::new(wait, timeout);
        let mut nap = FIRST_NAP;
        while done < values.len() {
            let published = self.inner.try_add_slice(&values[done..]);
            if published > 0 {
                done += published;
                continue;
            }
            match backoff.step() {
                Step::TimedOut => break,
                step => nap = Self::pause(step, nap),
            }
        }
        done
    }

    /// Carries out a backoff step for the writer: parking is a nap (readers do not wake
    /// the writer); returns the next nap's length.
    fn pause(step: Step, nap: Duration) -> Duration {
        match step {
            Step::Park(deadline) => {
                let nap = deadline.map_or(nap, |deadline| {
                    nap.min(deadline.saturating_duration_since(std::time::Instant::now()))
                });
                crate::sync::sleep(nap);
                (nap * 2).min(LONGEST_NAP)
            }
            Step::Again | Step::TimedOut => nap,
        }
    }

    /// A new reader that starts at the next event published. As [`Writer::subscribe`].
    #[must_use]
    pub fn subscribe(&self) -> Reader<T, CAP> {
        self.inner.subscribe()
    }

    /// How many events have been published. As [`Writer::position`].
    #[must_use]
    pub fn position(&self) -> u64 {
        self.inner.position()
    }

    /// The slowest holding reader's position. As [`Writer::slowest_reader`].
    #[must_use]
    pub fn slowest_reader(&self) -> Option<u64> {
        self.inner.slowest_reader()
    }

    /// How far the slowest holding reader trails, as a fraction of the ring. As
    /// [`Writer::backpressure_ratio`].
    #[must_use]
    pub fn backpressure_ratio(&self) -> f32 {
        self.inner.backpressure_ratio()
    }
}

impl<T: Pod, const CAP: usize> fmt::Debug for LosslessWriter<T, CAP> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LosslessWriter")
            .field("capacity", &CAP)
            .field("position", &self.inner.next)
            .finish_non_exhaustive()
    }
}
