//! What broadcast reads and writes report instead of an event.

use core::fmt;

/// The writer lapped this reader: `missed` events were overwritten before it read them.
///
/// The reader has already moved on to the oldest event the ring still retains (the
/// convention of `tokio::sync::broadcast`); the next read continues from there. If the
/// writer overwrites that event before the reader copies it, the read reports the
/// events lost since as another `Lagged`. `missed` is exact: events received plus events
/// reported missed always add up to the events published since the reader's start.
///
/// ```
/// use slotring::broadcast::{channel, Lagged};
/// let (mut writer, mut reader) = channel::<u32, 4>();
/// for i in 0..6 {
///     writer.add(i);
/// }
/// assert_eq!(reader.next(), Some(Err(Lagged { missed: 2 }))); // events 0 and 1
/// assert_eq!(reader.by_ref().flatten().collect::<Vec<_>>(), [2, 3, 4, 5]); // 2 + 4 = 6
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lagged {
    /// How many events this reader skipped.
    pub missed: u64,
}

impl fmt::Display for Lagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reader lagged behind the writer and missed {} events",
            self.missed
        )
    }
}

impl std::error::Error for Lagged {}

/// Why [`Reader::try_next`](super::Reader::try_next) returned no event.
///
/// ```
/// use slotring::broadcast::{channel, TryReadError};
/// let (mut writer, mut reader) = channel::<u8, 2>();
/// assert_eq!(reader.try_next(), Err(TryReadError::Empty));
/// for i in 0..3 {
///     writer.add(i);
/// }
/// assert_eq!(reader.try_next(), Err(TryReadError::Lagged { missed: 1 }));
/// assert_eq!(reader.try_next(), Ok(1)); // the oldest event the ring retains
/// assert_eq!(reader.try_next(), Ok(2));
/// drop(writer);
/// assert_eq!(reader.try_next(), Err(TryReadError::Closed));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TryReadError {
    /// No new event yet; the writer is still there.
    Empty,
    /// The writer lapped this reader (see [`Lagged`]); read again for the next event.
    Lagged {
        /// How many events this reader skipped.
        missed: u64,
    },
    /// The writer is gone and every event it published has been read.
    Closed,
}

impl fmt::Display for TryReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryReadError::Empty => f.write_str("no new event yet"),
            TryReadError::Lagged { missed } => fmt::Display::fmt(&Lagged { missed: *missed }, f),
            TryReadError::Closed => f.write_str("the writer is gone and every event was read"),
        }
    }
}

impl std::error::Error for TryReadError {}

/// Why [`Reader::next_blocking`](super::Reader::next_blocking) returned no event.
///
/// ```
/// use std::time::Duration;
/// use slotring::broadcast::{channel, ReadError};
/// let (writer, mut reader) = channel::<u8, 4>();
/// assert_eq!(reader.next_blocking(Duration::from_millis(1)), Err(ReadError::Timeout));
/// drop(writer);
/// assert_eq!(reader.next_blocking(Duration::from_secs(60)), Err(ReadError::Closed)); // at once
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadError {
    /// No event arrived before the timeout.
    Timeout,
    /// The writer lapped this reader (see [`Lagged`]); read again for the next event.
    Lagged {
        /// How many events this reader skipped.
        missed: u64,
    },
    /// The writer is gone and every event it published has been read.
    Closed,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Timeout => f.write_str("no event arrived before the timeout"),
            ReadError::Lagged { missed } => fmt::Display::fmt(&Lagged { missed: *missed }, f),
            ReadError::Closed => f.write_str("the writer is gone and every event was read"),
        }
    }
}

impl std::error::Error for ReadError {}

/// [`Writer::try_add`](super::Writer::try_add) refused: publishing would overwrite an
/// event that a reader holding the writer back has not read. The value is inside.
///
/// ```
/// let (mut writer, mut reader) = slotring::broadcast::channel::<[u8; 8], 1>();
/// reader.hold_writer()?;
/// writer.try_add(*b"accepted")?;
/// let refused = writer.try_add(*b"refused!").unwrap_err();
/// assert_eq!(refused.slowest(), 0);
/// assert_eq!(&refused.into_inner(), b"refused!");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct WouldLap<T> {
    value: T,
    slowest: u64,
}

impl<T> WouldLap<T> {
    pub(super) fn new(value: T, slowest: u64) -> Self {
        Self { value, slowest }
    }

    /// The position (next event to read) of the slowest reader holding the writer back.
    ///
    /// ```
    /// let (mut writer, mut reader) = slotring::broadcast::channel::<u8, 2>();
    /// reader.hold_writer()?;
    /// writer.try_add(0)?;
    /// reader.try_next()?; // the reader is at event 1 now
    /// writer.try_add(1)?;
    /// writer.try_add(2)?;
    /// assert_eq!(writer.try_add(3).unwrap_err().slowest(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn slowest(&self) -> u64 {
        self.slowest
    }

    /// Hands back the value that was not published.
    ///
    /// ```
    /// let (mut writer, mut reader) = slotring::broadcast::channel::<u64, 1>();
    /// reader.hold_writer()?;
    /// writer.try_add(1)?;
    /// let value = writer.try_add(2).unwrap_err().into_inner();
    /// reader.try_next()?;
    /// writer.try_add(value)?; // retried once the reader caught up
    /// assert_eq!(reader.try_next(), Ok(2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> fmt::Debug for WouldLap<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WouldLap")
            .field("slowest", &self.slowest)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for WouldLap<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "publishing would lap a reader holding the writer back at event {}",
            self.slowest
        )
    }
}

impl<T> std::error::Error for WouldLap<T> {}

/// [`Reader::hold_writer`](super::Reader::hold_writer) found every backpressure entry
/// taken: at most `max` readers can hold the writer back at once.
///
/// ```
/// use slotring::broadcast::{channel, TooManyHolders};
/// let (_writer, reader) = channel::<u8, 4>();
/// let mut readers: Vec<_> = (0..65).map(|_| reader.clone()).collect();
/// let refused: Vec<_> = readers.iter_mut().filter_map(|r| r.hold_writer().err()).collect();
/// assert_eq!(refused, [TooManyHolders { max: 64 }]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TooManyHolders {
    /// How many readers can hold the writer back at once.
    pub max: usize,
}

impl fmt::Display for TooManyHolders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} readers already hold the writer back, the most a ring allows",
            self.max
        )
    }
}

impl std::error::Error for TooManyHolders {}
