//! [`SyncedMemory`]: per-thread segments with barrier-separated write-then-read cycles,
//! for parallel simulations (cellular automata, physics steps, map-reduce rounds).
//!
//! Every cycle, each of `num_threads` workers writes its own segment, all wait for each
//! other, then every worker reads the whole state, in place: a [`GlobalView`] borrows
//! the segments, no `Vec` is copied.
//!
//! ```
//! use slotring::synced::SyncedMemory;
//!
//! let mem = SyncedMemory::<u64>::new(3, 2); // 3 workers, 2 values each
//! std::thread::scope(|s| {
//!     let workers: Vec<_> = (0..3)
//!         .map(|id| {
//!             let mem = &mem;
//!             s.spawn(move || -> Result<u64, slotring::synced::SyncError> {
//!                 let mut local = mem.local_handle(id)?;
//!                 let mut mine = [id as u64, 0];
//!                 for cycle in 0..10 {
//!                     let global = local.write_and_sync_read(&mine)?;
//!                     // Every worker sees every worker's values of this cycle.
//!                     let total: u64 = global.iter().sum();
//!                     assert_eq!(total, (0 + 1 + 2) + 3 * cycle);
//!                     mine[1] = cycle + 1;
//!                 }
//!                 Ok(local.cycle())
//!             })
//!         })
//!         .collect();
//!     for w in workers {
//!         assert_eq!(w.join().unwrap(), Ok(10));
//!     }
//! });
//! ```
//!
//! # The protocol
//!
//! The storage holds **two buffers**; cycle `c` is written into and read from buffer
//! `c % 2`. A cycle has a write phase and a read phase, and the types say which one a
//! handle is in:
//!
//! ```text
//! LocalHandle --write()/write_with()--> Written --wait()--> GlobalView --drop--> LocalHandle
//!                                                          \--write_next_with()--> Written
//! ```
//!
//! Both `Written` and `GlobalView` borrow the [`LocalHandle`] mutably, so a handle has at
//! most one of them and cannot start a write while its view lives.
//!
//! 1. **Write** (cycle `c`): worker `i` writes segment `i` of buffer `c % 2`. Nobody else
//!    writes that segment, ever. Nobody reads it either: the last readers of buffer
//!    `c % 2` were the views of cycle `c - 2`, and each reader `j` dropped its view
//!    before arriving at barrier `c - 1` (its view borrowed the handle it arrives with),
//!    which worker `i` has passed.
//! 2. **Barrier** `c`: each worker arrives once; the last arrival moves the epoch on and
//!    everyone returns. Every write of cycle `c` happens-before every return (Release
//!    arrivals, an Acquire/Release chain through the last arrival, Acquire waits; the
//!    orderings are justified in `barrier.rs`).
//! 3. **Read** (cycle `c`): every worker reads all of buffer `c % 2` through its view.
//!    Writers of cycle `c + 1` use the other buffer, so a worker may even compute its
//!    next segment while it still reads this cycle
//!    ([`GlobalView::write_next_with`]). Nobody writes buffer `c % 2` again before cycle
//!    `c + 2`, which begins only after barrier `c + 1`, which needs this reader's arrival,
//!    which comes after its view is gone.
//!
//! So one barrier per cycle separates writers from readers; the price is twice the
//! memory. The original `SynchedMemory` used one buffer and one barrier, which lets a
//! fast thread overwrite its segment while a slow one still reads it (a data race);
//! one buffer would need a second barrier per cycle.
//!
//! # Leaving and panics
//!
//! All workers take part in every cycle. A [`LocalHandle`] that is dropped (its worker
//! returned early, or panicked and unwound) poisons the memory: workers waiting at the
//! barrier wake with [`SyncError::WorkerLeft`] or [`SyncError::WorkerPanicked`] instead
//! of waiting forever, and so does every later `wait`. [`SyncedMemory::stop`] poisons
//! with [`SyncError::Stopped`] from any thread. A cycle that completed before the poison
//! still returns its view. [`SyncedMemory::reset`] starts over once every handle is gone.
//!
//! # Layout
//!
//! Segment `i` of each buffer is rounded up to a multiple of 128 bytes, so writers never
//! share a cache line (or an adjacent-line prefetch pair). The storage starts zeroed
//! (`T: Pod`, so zero bytes are a valid `T`) and is allocated once; no cycle allocates.

mod barrier;
mod storage;

use core::fmt;

use bytemuck::Pod;

use self::barrier::{Barrier, Cause, MAX_PARTIES};
use self::storage::Storage;
use crate::sync::{AtomicBool, Ordering};

/// Why a [`SyncedMemory`] call failed.
///
/// ```
/// use slotring::synced::{SyncError, SyncedMemory};
/// let mem = SyncedMemory::<u32>::new(2, 4);
/// assert_eq!(mem.local_handle(2).unwrap_err(), SyncError::IdOutOfRange { id: 2, num_threads: 2 });
/// let mut h = mem.local_handle(0)?;
/// assert_eq!(mem.local_handle(0).unwrap_err(), SyncError::IdTaken { id: 0 });
/// assert_eq!(h.write(&[1; 5]).unwrap_err(), SyncError::TooLong { len: 5, max: 4 });
/// # Ok::<(), SyncError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyncError {
    /// A handle was asked for an id that is not below the number of threads.
    IdOutOfRange {
        /// The id asked for.
        id: usize,
        /// The number of threads (segments).
        num_threads: usize,
    },
    /// The handle of this id was already taken (ids are taken once per run; see
    /// [`SyncedMemory::reset`]).
    IdTaken {
        /// The id asked for.
        id: usize,
    },
    /// More values than a segment holds. Nothing was written.
    TooLong {
        /// The number of values passed.
        len: usize,
        /// The segment length.
        max: usize,
    },
    /// The handle of worker `id` was dropped, so no further cycle can complete.
    WorkerLeft {
        /// The worker that left first.
        id: usize,
    },
    /// Worker `id` panicked (its handle was dropped while unwinding).
    WorkerPanicked {
        /// The worker that panicked.
        id: usize,
    },
    /// [`SyncedMemory::stop`] was called.
    Stopped,
    /// The segments do not fit in memory (`num_threads * segment_len` values, twice,
    /// padded), or there are more than 2^31 - 1 threads.
    TooLarge {
        /// The number of threads asked for.
        num_threads: usize,
        /// The segment length asked for.
        segment_len: usize,
    },
}

impl SyncError {
    /// Whether this error poisons the memory for every worker (a worker left or
    /// panicked, or `stop` was called), as opposed to a refused call.
    ///
    /// ```
    /// use slotring::synced::{SyncError, SyncedMemory};
    /// let mem = SyncedMemory::<u8>::new(2, 4);
    /// let _mine = mem.local_handle(0)?;
    /// let taken = mem.local_handle(0).unwrap_err(); // a refused call: nothing poisoned
    /// assert!(!taken.is_poison());
    /// mem.stop();
    /// assert_eq!(mem.poisoned(), Some(SyncError::Stopped));
    /// assert!(SyncError::Stopped.is_poison());
    /// # Ok::<(), SyncError>(())
    /// ```
    #[must_use]
    pub fn is_poison(&self) -> bool {
        matches!(
            self,
            SyncError::WorkerLeft { .. } | SyncError::WorkerPanicked { .. } | SyncError::Stopped
        )
    }
}

impl From<Cause> for SyncError {
    fn from(cause: Cause) -> Self {
        match cause {
            Cause::Left(id) => SyncError::WorkerLeft { id },
            Cause::Panicked(id) => SyncError::WorkerPanicked { id },
            Cause::Stopped => SyncError::Stopped,
        }
    }
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::IdOutOfRange { id, num_threads } => {
                write!(
                    f,
                    "worker id {id} is out of range for {num_threads} threads"
                )
            }
            SyncError::IdTaken { id } => write!(f, "the handle of worker {id} is already taken"),
            SyncError::TooLong { len, max } => {
                write!(f, "{len} values do not fit a segment of {max}")
            }
            SyncError::WorkerLeft { id } => {
                write!(f, "worker {id} left, the cycle cannot complete")
            }
            SyncError::WorkerPanicked { id } => {
                write!(f, "worker {id} panicked, the cycle cannot complete")
            }
            SyncError::Stopped => write!(f, "the synchronized memory was stopped"),
            SyncError::TooLarge {
                num_threads,
                segment_len,
            } => write!(
                f,
                "{num_threads} segments of {segment_len} values do not fit in memory"
            ),
        }
    }
}

impl std::error::Error for SyncError {}

/// Per-thread segments of `T`, written and read in barrier-separated cycles.
///
/// Share it (`&SyncedMemory` in a [`std::thread::scope`], or an `Arc`), take one
/// [`LocalHandle`] per worker with [`local_handle`](Self::local_handle), and run cycles
/// with [`LocalHandle::write_and_sync_read`] (or the separate steps
/// [`write`](LocalHandle::write), [`wait`](Written::wait) and the [`GlobalView`]). See
/// the [module docs](self) for the protocol.
///
/// ```
/// use std::sync::Arc;
/// use slotring::synced::SyncedMemory;
///
/// let mem = Arc::new(SyncedMemory::<f64>::new(2, 3));
/// let workers: Vec<_> = (0..2)
///     .map(|id| {
///         let mem = Arc::clone(&mem);
///         std::thread::spawn(move || {
///             let mut local = mem.local_handle(id).unwrap();
///             let global = local.write_and_sync_read(&[id as f64; 3]).unwrap();
///             global.to_vec() // the copying variant
///         })
///     })
///     .collect();
/// for w in workers {
///     assert_eq!(w.join().unwrap(), [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
/// }
/// ```
pub struct SyncedMemory<T: Pod> {
    barrier: Barrier,
    storage: Storage<T>,
    /// Whether the handle of each id has been taken since creation or the last reset.
    taken: Box<[AtomicBool]>,
    num_threads: usize,
    segment_len: usize,
}

// SAFETY: the storage is owned (freed in `Drop`), so sending the memory sends `T` values:
// `T: Send`.
unsafe impl<T: Pod + Send> Send for SyncedMemory<T> {}
// SAFETY: shared, it hands out `&[T]` to several threads (`T: Sync`) and moves values
// written on one thread to readers on others (`T: Send`); every access to the segments
// follows the protocol in the module docs, so no segment is written while it is read.
unsafe impl<T: Pod + Send + Sync> Sync for SyncedMemory<T> {}

impl<T: Pod> SyncedMemory<T> {
    /// Zeroed memory for `num_threads` workers with `segment_len` values each.
    ///
    /// # Panics
    ///
    /// If the segments do not fit in memory, like `Vec::with_capacity`; use
    /// [`try_new`](Self::try_new) to get an error instead.
    ///
    /// ```
    /// let mem = slotring::synced::SyncedMemory::<[f32; 3]>::new(4, 1000);
    /// assert_eq!((mem.num_threads(), mem.segment_len()), (4, 1000));
    /// ```
    #[must_use]
    pub fn new(num_threads: usize, segment_len: usize) -> Self {
        match Self::try_new(num_threads, segment_len) {
            Ok(mem) => mem,
            Err(err) => panic!("{err}"),
        }
    }

    /// Zeroed memory for `num_threads` workers with `segment_len` values each, or
    /// [`SyncError::TooLarge`].
    ///
    /// ```
    /// use slotring::synced::{SyncError, SyncedMemory};
    /// let err = SyncedMemory::<u64>::try_new(4, usize::MAX / 8).unwrap_err();
    /// assert!(matches!(err, SyncError::TooLarge { .. }));
    /// ```
    pub fn try_new(num_threads: usize, segment_len: usize) -> Result<Self, SyncError> {
        let too_large = SyncError::TooLarge {
            num_threads,
            segment_len,
        };
        if num_threads > MAX_PARTIES {
            return Err(too_large);
        }
        let storage = Storage::new(num_threads, segment_len).ok_or(too_large)?;
        Ok(Self {
            barrier: Barrier::new(num_threads),
            storage,
            taken: (0..num_threads).map(|_| AtomicBool::new(false)).collect(),
            num_threads,
            segment_len,
        })
    }

    /// The number of workers (segments).
    ///
    /// ```
    /// let mem = slotring::synced::SyncedMemory::<f32>::new(4, 16);
    /// assert_eq!((mem.num_threads(), mem.segment_len()), (4, 16));
    /// ```
    #[inline]
    #[must_use]
    pub fn num_threads(&self) -> usize {
        self.num_threads
    }

    /// The number of values in each segment.
    ///
    /// ```
    /// let mem = slotring::synced::SyncedMemory::<f64>::new(2, 100);
    /// assert_eq!(mem.segment_len(), 100);
    /// assert!(mem.segment_stride() >= 100 * size_of::<f64>());
    /// ```
    #[inline]
    #[must_use]
    pub fn segment_len(&self) -> usize {
        self.segment_len
    }

    /// Bytes from the start of one segment to the next (the segment rounded up to a
    /// multiple of 128 bytes).
    ///
    /// ```
    /// let mem = slotring::synced::SyncedMemory::<u8>::new(2, 129);
    /// assert_eq!(mem.segment_stride(), 256);
    /// ```
    #[must_use]
    pub fn segment_stride(&self) -> usize {
        self.storage.stride()
    }

    /// The number of completed cycles, modulo 2^32 (a snapshot).
    ///
    /// ```
    /// use slotring::synced::SyncedMemory;
    /// let mem = SyncedMemory::<u32>::new(1, 3);
    /// let mut handle = mem.local_handle(0)?;
    /// assert_eq!(mem.cycles(), 0);
    /// handle.write_and_sync_read(&[1])?;
    /// handle.write_and_sync_read(&[2])?;
    /// assert_eq!(mem.cycles(), 2);
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    #[must_use]
    pub fn cycles(&self) -> u32 {
        self.barrier.epoch()
    }

    /// The handle of worker `id`: its write access to segment `id` and its place at the
    /// barrier. Each id can be taken once (until [`reset`](Self::reset)).
    ///
    /// Dropping the handle means the worker left: see the [module docs](self#leaving-and-panics).
    ///
    /// # Errors
    ///
    /// [`SyncError::IdOutOfRange`], [`SyncError::IdTaken`], or the poison error if the
    /// memory is poisoned.
    ///
    /// ```
    /// let mem = slotring::synced::SyncedMemory::<u8>::new(1, 4);
    /// let mut only = mem.local_handle(0)?;
    /// // A single worker never waits.
    /// let view = only.write_and_sync_read(b"abcd")?;
    /// assert_eq!(view.segment(0), Some(&b"abcd"[..]));
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    pub fn local_handle(&self, id: usize) -> Result<LocalHandle<'_, T>, SyncError> {
        if id >= self.num_threads {
            return Err(SyncError::IdOutOfRange {
                id,
                num_threads: self.num_threads,
            });
        }
        if let Some(cause) = self.barrier.poisoned() {
            return Err(cause.into());
        }
        // Relaxed: the swap is atomic, so exactly one caller sees `false`; the storage
        // it will write was published to this thread when the memory was shared.
        if self.taken[id].swap(true, Ordering::Relaxed) {
            return Err(SyncError::IdTaken { id });
        }
        Ok(LocalHandle {
            mem: self,
            state: HandleState {
                id,
                cycle: 0,
                filled: [0; 2],
                broken: None,
                reading: None,
            },
        })
    }

    /// Poisons the memory: every worker waiting at the barrier, and every later
    /// [`wait`](Written::wait), returns [`SyncError::Stopped`] (unless another cause
    /// came first). Views of cycles that already completed stay valid.
    ///
    /// ```
    /// let mem = slotring::synced::SyncedMemory::<u8>::new(2, 1);
    /// let mut a = mem.local_handle(0)?;
    /// mem.stop();
    /// assert_eq!(a.write_and_sync_read(&[1]).unwrap_err(), slotring::synced::SyncError::Stopped);
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    pub fn stop(&self) {
        self.barrier.poison(Cause::Stopped);
    }

    /// The poison error, if a worker left or panicked or [`stop`](Self::stop) was
    /// called.
    ///
    /// ```
    /// use slotring::synced::{SyncError, SyncedMemory};
    /// let mem = SyncedMemory::<u8>::new(2, 4);
    /// assert_eq!(mem.poisoned(), None);
    /// drop(mem.local_handle(1)?); // worker 1 left
    /// assert_eq!(mem.poisoned(), Some(SyncError::WorkerLeft { id: 1 }));
    /// # Ok::<(), SyncError>(())
    /// ```
    #[must_use]
    pub fn poisoned(&self) -> Option<SyncError> {
        self.barrier.poisoned().map(SyncError::from)
    }

    /// Starts over: zeroes every segment, clears the poison and frees every id.
    /// `&mut self` proves no handle or view exists (with an `Arc`, use
    /// `Arc::get_mut` after joining the workers).
    ///
    /// ```
    /// let mut mem = slotring::synced::SyncedMemory::<u8>::new(1, 1);
    /// drop(mem.local_handle(0)?); // the worker left: poisoned
    /// assert!(mem.poisoned().is_some());
    /// mem.reset();
    /// let mut again = mem.local_handle(0)?;
    /// assert_eq!(again.write_and_sync_read(&[])?.segment(0), Some(&[0][..]));
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    pub fn reset(&mut self) {
        self.barrier.reset();
        self.storage.zero();
        for taken in &*self.taken {
            // Relaxed: `&mut self`; the next sharing publishes it.
            taken.store(false, Ordering::Relaxed);
        }
    }
}

impl<T: Pod> fmt::Debug for SyncedMemory<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncedMemory")
            .field("num_threads", &self.num_threads)
            .field("segment_len", &self.segment_len)
            .field("segment_stride", &self.storage.stride())
            .field("barrier", &self.barrier)
            .finish()
    }
}

/// What a handle knows about its own progress (shared by its phase types).
#[derive(Debug)]
struct HandleState {
    id: usize,
    /// Cycles this handle completed; cycle `c` uses buffer `c % 2`.
    cycle: u64,
    /// Per buffer, how many leading values of this segment may be non-zero, so a short
    /// write zeroes only what an earlier write left behind.
    filled: [usize; 2],
    /// The error that ended this handle's participation, if any.
    broken: Option<SyncError>,
    /// The buffer this handle's last view read, until its next arrival (for loom's
    /// causality check; always tracked, it costs nothing).
    reading: Option<usize>,
}

impl HandleState {
    fn write_buffer(&self) -> usize {
        (self.cycle & 1) as usize
    }
}

/// Worker `id`'s handle, in its write phase: write this cycle's values, then
/// [`wait`](Written::wait) for everyone else.
///
/// Dropping it means the worker left: other workers get [`SyncError::WorkerLeft`]
/// (or [`SyncError::WorkerPanicked`] if this thread is panicking) instead of waiting
/// forever.
///
/// ```
/// use slotring::synced::SyncedMemory;
/// let mem = SyncedMemory::<u32>::new(1, 3);
/// let mut handle = mem.local_handle(0)?;
/// let written = handle.write(&[1, 2, 3])?;  // write phase
/// let view = written.wait()?;               // read phase: every segment
/// assert_eq!(view.own(), [1, 2, 3]);
/// # Ok::<(), slotring::synced::SyncError>(())
/// ```
#[must_use = "dropping a handle poisons the memory for every other worker"]
pub struct LocalHandle<'m, T: Pod> {
    mem: &'m SyncedMemory<T>,
    state: HandleState,
}

impl<'m, T: Pod> LocalHandle<'m, T> {
    /// This worker's id (its segment's index).
    ///
    /// ```
    /// let mem = slotring::synced::SyncedMemory::<u8>::new(3, 1);
    /// assert_eq!(mem.local_handle(2)?.id(), 2);
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn id(&self) -> usize {
        self.state.id
    }

    /// The number of cycles this worker completed.
    ///
    /// ```
    /// use slotring::synced::SyncedMemory;
    /// let mem = SyncedMemory::<u32>::new(1, 3);
    /// let mut handle = mem.local_handle(0)?;
    /// assert_eq!(handle.cycle(), 0);
    /// handle.write_and_sync_read(&[1])?;
    /// assert_eq!(handle.cycle(), 1);
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn cycle(&self) -> u64 {
        self.state.cycle
    }

    /// The memory this handle belongs to.
    ///
    /// ```
    /// use slotring::synced::SyncedMemory;
    /// let mem = SyncedMemory::<u32>::new(1, 3);
    /// let mut handle = mem.local_handle(0)?;
    /// assert!(std::ptr::eq(handle.memory(), &mem));
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn memory(&self) -> &'m SyncedMemory<T> {
        self.mem
    }

    /// Writes `values` at the start of this worker's segment for the current cycle; the
    /// rest of the segment reads as zeros. Call [`Written::wait`] next.
    ///
    /// Dropping the [`Written`] without waiting keeps the handle in its write phase
    /// (the next write replaces this one).
    ///
    /// # Errors
    ///
    /// [`SyncError::TooLong`] (nothing written) or the error an earlier call on this
    /// handle returned from a poisoned barrier.
    ///
    /// ```
    /// let mem = slotring::synced::SyncedMemory::<i32>::new(1, 3);
    /// let mut h = mem.local_handle(0)?;
    /// let written = h.write(&[7, 8])?;       // write phase
    /// let view = written.wait()?;            // barrier
    /// assert_eq!(view.segment(0), Some(&[7, 8, 0][..]));
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    pub fn write(&mut self, values: &[T]) -> Result<Written<'_, T>, SyncError> {
        if let Some(err) = self.state.broken {
            return Err(err);
        }
        let max = self.mem.segment_len;
        if values.len() > max {
            return Err(SyncError::TooLong {
                len: values.len(),
                max,
            });
        }
        let buffer = self.state.write_buffer();
        // Protocol step 1 (module docs): every reader of this segment (views of
        // cycle - 2) arrived at the barrier this handle passed last, after dropping its
        // view; `&mut self` rules out another reference from this handle.
        // SAFETY: segment `id` of the current write buffer is this handle's alone during
        // its write phase, by the protocol step above.
        let segment = unsafe { self.mem.storage.segment_mut(buffer, self.state.id) };
        segment[..values.len()].copy_from_slice(values);
        let stale = self.state.filled[buffer];
        if stale > values.len() {
            segment[values.len()..stale].fill(T::zeroed());
        }
        self.mem.storage.track_write(buffer, self.state.id);
        self.state.filled[buffer] = values.len();
        Ok(Written {
            mem: self.mem,
            state: &mut self.state,
        })
    }

    /// Lets `fill` write this worker's segment for the current cycle in place (no copy).
    /// The segment holds unspecified earlier values of this worker (zeros in the first
    /// two cycles); `fill` should overwrite what it wants others to read.
    ///
    /// # Errors
    ///
    /// The error an earlier call on this handle returned from a poisoned barrier.
    ///
    /// ```
    /// let mem = slotring::synced::SyncedMemory::<u16>::new(1, 4);
    /// let mut h = mem.local_handle(0)?;
    /// let view = h.write_with(|seg| seg.iter_mut().enumerate().for_each(|(i, v)| *v = i as u16))?
    ///     .wait()?;
    /// assert_eq!(view.to_vec(), [0, 1, 2, 3]);
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    pub fn write_with(&mut self, fill: impl FnOnce(&mut [T])) -> Result<Written<'_, T>, SyncError> {
        if let Some(err) = self.state.broken {
            return Err(err);
        }
        let buffer = self.state.write_buffer();
        // SAFETY: as in `write`: this segment of the current write buffer is this
        // handle's alone during its write phase.
        let segment = unsafe { self.mem.storage.segment_mut(buffer, self.state.id) };
        // Before `fill`, so a panic caught around this call leaves no stale count.
        self.state.filled[buffer] = self.mem.segment_len;
        fill(segment);
        self.mem.storage.track_write(buffer, self.state.id);
        Ok(Written {
            mem: self.mem,
            state: &mut self.state,
        })
    }

    /// One cycle: writes `values` (see [`write`](Self::write)), waits for every worker,
    /// and returns a zero-copy view of all segments as of this cycle, valid until this
    /// handle's next write.
    ///
    /// # Errors
    ///
    /// [`SyncError::TooLong`] (nothing written, the handle stays in its write phase), or
    /// the poison error if a worker left or panicked or the memory was stopped before
    /// this cycle completed (the handle is then spent: every later call fails too).
    ///
    /// ```
    /// let mem = slotring::synced::SyncedMemory::<u8>::new(1, 2);
    /// let mut h = mem.local_handle(0)?;
    /// for round in 0..3u8 {
    ///     let global = h.write_and_sync_read(&[round, round * 2])?;
    ///     assert_eq!(global.segment(0), Some(&[round, round * 2][..]));
    /// }
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    #[inline]
    pub fn write_and_sync_read(&mut self, values: &[T]) -> Result<GlobalView<'_, T>, SyncError> {
        self.write(values)?.wait()
    }

    /// The copying variant of [`write_and_sync_read`](Self::write_and_sync_read): the
    /// whole state as one `Vec` of `num_threads * segment_len` values (segment `i` at
    /// `i * segment_len`), which the handle does not borrow. Allocates every cycle.
    ///
    /// # Errors
    ///
    /// As [`write_and_sync_read`](Self::write_and_sync_read).
    ///
    /// ```
    /// let mem = slotring::synced::SyncedMemory::<u8>::new(1, 2);
    /// let mut h = mem.local_handle(0)?;
    /// let owned: Vec<u8> = h.write_and_sync_read_vec(&[5])?;
    /// assert_eq!(owned, [5, 0]);
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    pub fn write_and_sync_read_vec(&mut self, values: &[T]) -> Result<Vec<T>, SyncError> {
        Ok(self.write_and_sync_read(values)?.to_vec())
    }
}

impl<T: Pod> Drop for LocalHandle<'_, T> {
    fn drop(&mut self) {
        let id = self.state.id;
        let cause = if std::thread::panicking() {
            Cause::Panicked(id)
        } else {
            Cause::Left(id)
        };
        self.mem.barrier.poison(cause);
    }
}

impl<T: Pod> fmt::Debug for LocalHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalHandle")
            .field("id", &self.state.id)
            .field("cycle", &self.state.cycle)
            .field("broken", &self.state.broken)
            .finish_non_exhaustive()
    }
}

/// A handle whose segment is written for this cycle: [`wait`](Self::wait) for the
/// others. Dropping it without waiting returns the handle to its write phase.
///
/// ```
/// use slotring::synced::SyncedMemory;
/// let mem = SyncedMemory::<u32>::new(1, 3);
/// let mut handle = mem.local_handle(0)?;
/// let written = handle.write(&[7])?;
/// drop(written);                              // not waited: still in the write phase
/// let view = handle.write(&[8])?.wait()?;     // the second write wins
/// assert_eq!(view.own(), [8, 0, 0]);
/// # Ok::<(), slotring::synced::SyncError>(())
/// ```
#[must_use = "call wait() to complete the cycle"]
pub struct Written<'h, T: Pod> {
    mem: &'h SyncedMemory<T>,
    state: &'h mut HandleState,
}

impl<'h, T: Pod> Written<'h, T> {
    /// Arrives at the barrier and waits until every worker has written this cycle, then
    /// returns the view of all segments. Spins briefly, then yields, then blocks.
    ///
    /// # Errors
    ///
    /// The poison error ([`SyncError::WorkerLeft`], [`SyncError::WorkerPanicked`],
    /// [`SyncError::Stopped`]) if the memory was poisoned before this cycle completed.
    /// The handle is spent afterwards: its later calls return the same error.
    ///
    /// ```
    /// use std::thread;
    /// use slotring::synced::SyncedMemory;
    /// let mem = SyncedMemory::<u32>::new(2, 2);
    /// thread::scope(|s| -> Result<(), slotring::synced::SyncError> {
    ///     let mut other = mem.local_handle(1)?;
    ///     s.spawn(move || other.write_and_sync_read(&[30, 40]).map(|_| ()));
    ///     let mut handle = mem.local_handle(0)?;
    ///     let view = handle.write(&[10, 20])?.wait()?;
    ///     assert_eq!(view.to_vec(), [10, 20, 30, 40]);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    pub fn wait(self) -> Result<GlobalView<'h, T>, SyncError> {
        let state = self.state;
        if let Some(buffer) = state.reading.take() {
            // This thread's reads of its last view end here, before it arrives.
            for segment in 0..self.mem.num_threads {
                self.mem.storage.track_read(buffer, segment);
            }
        }
        match self.mem.barrier.arrive_and_wait() {
            Ok(()) => {
                let buffer = state.write_buffer();
                state.cycle += 1;
                state.reading = Some(buffer);
                Ok(GlobalView {
                    mem: self.mem,
                    state,
                    buffer,
                })
            }
            Err(cause) => {
                let err = SyncError::from(cause);
                state.broken = Some(err);
                Err(err)
            }
        }
    }
}

impl<T: Pod> fmt::Debug for Written<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Written")
            .field("id", &self.state.id)
            .field("cycle", &self.state.cycle)
            .finish_non_exhaustive()
    }
}

/// Every segment as of one completed cycle, read in place. It borrows the worker's
/// handle, so the worker cannot write (or arrive at the next barrier) while it lives.
///
/// Segment `i` holds worker `i`'s values; as one sequence ([`iter`](Self::iter),
/// [`get`](Self::get), [`to_vec`](Self::to_vec)) the state has
/// `num_threads * segment_len` values, segment `i` starting at `i * segment_len`.
///
/// ```
/// use std::thread;
/// use slotring::synced::SyncedMemory;
/// let mem = SyncedMemory::<u32>::new(2, 2);
/// thread::scope(|s| -> Result<(), slotring::synced::SyncError> {
///     let mut other = mem.local_handle(1)?;
///     s.spawn(move || other.write_and_sync_read(&[30, 40]).map(|_| ()));
///     let mut handle = mem.local_handle(0)?;
///     let view = handle.write(&[10, 20])?.wait()?;
///     assert_eq!(view.segment(1), Some(&[30, 40][..]));
///     assert_eq!(view.get(3), Some(&40));
///     assert_eq!(view.iter().sum::<u32>(), 100);
///     Ok(())
/// })?;
/// # Ok::<(), slotring::synced::SyncError>(())
/// ```
pub struct GlobalView<'h, T: Pod> {
    mem: &'h SyncedMemory<T>,
    state: &'h mut HandleState,
    buffer: usize,
}

impl<'h, T: Pod> GlobalView<'h, T> {
    /// The cycle this view shows (0 for the first).
    ///
    /// ```
    /// use slotring::synced::SyncedMemory;
    /// let mem = SyncedMemory::<u32>::new(1, 3);
    /// let mut handle = mem.local_handle(0)?;
    /// assert_eq!(handle.write_and_sync_read(&[1])?.cycle(), 0);
    /// assert_eq!(handle.write_and_sync_read(&[1])?.cycle(), 1);
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn cycle(&self) -> u64 {
        self.state.cycle - 1
    }

    /// The number of segments (workers).
    ///
    /// ```
    /// use slotring::synced::SyncedMemory;
    /// let mem = SyncedMemory::<u32>::new(1, 3);
    /// let mut handle = mem.local_handle(0)?;
    /// let view = handle.write_and_sync_read(&[])?;
    /// assert_eq!((view.num_segments(), view.segment_len(), view.len()), (1, 3, 3));
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn num_segments(&self) -> usize {
        self.mem.num_threads
    }

    /// The number of values in each segment.
    ///
    /// ```
    /// use slotring::synced::SyncedMemory;
    /// let mem = SyncedMemory::<u32>::new(1, 3);
    /// let mut handle = mem.local_handle(0)?;
    /// assert_eq!(handle.write_and_sync_read(&[])?.segment_len(), 3);
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn segment_len(&self) -> usize {
        self.mem.segment_len
    }

    /// The number of values in all segments.
    ///
    /// ```
    /// use std::thread;
    /// use slotring::synced::SyncedMemory;
    /// let mem = SyncedMemory::<u32>::new(2, 2);
    /// thread::scope(|s| -> Result<(), slotring::synced::SyncError> {
    ///     let mut other = mem.local_handle(1)?;
    ///     s.spawn(move || other.write_and_sync_read(&[30, 40]).map(|_| ()));
    ///     let mut handle = mem.local_handle(0)?;
    ///     let view = handle.write(&[10, 20])?.wait()?;
    ///     assert_eq!(view.len(), 2 * 2);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.mem.num_threads * self.mem.segment_len
    }

    /// Whether there are no values at all.
    ///
    /// ```
    /// use slotring::synced::SyncedMemory;
    /// let mem = SyncedMemory::<u32>::new(1, 3);
    /// let mut handle = mem.local_handle(0)?;
    /// assert!(!handle.write_and_sync_read(&[])?.is_empty());
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Segment `i` (worker `i`'s values), or `None` if `i` is out of range.
    ///
    /// ```
    /// use std::thread;
    /// use slotring::synced::SyncedMemory;
    /// let mem = SyncedMemory::<u32>::new(2, 2);
    /// thread::scope(|s| -> Result<(), slotring::synced::SyncError> {
    ///     let mut other = mem.local_handle(1)?;
    ///     s.spawn(move || other.write_and_sync_read(&[30, 40]).map(|_| ()));
    ///     let mut handle = mem.local_handle(0)?;
    ///     let view = handle.write(&[10, 20])?.wait()?;
    ///     assert_eq!(view.segment(0), Some(&[10, 20][..]));
    ///     assert_eq!(view.segment(2), None);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn segment(&self, i: usize) -> Option<&[T]> {
        if i >= self.mem.num_threads {
            return None;
        }
        // SAFETY: buffer `self.buffer` is in its read phase for this cycle: every write
        // to it happened before the barrier this view came from (protocol step 2), and
        // the next write to it (cycle + 2) happens-after this worker's next arrival,
        // which needs this view (and so the returned borrow of it) to be gone (step 3).
        Some(unsafe { self.mem.storage.segment(self.buffer, i) })
    }

    /// This worker's own segment.
    ///
    /// ```
    /// use slotring::synced::SyncedMemory;
    /// let mem = SyncedMemory::<u32>::new(1, 3);
    /// let mut handle = mem.local_handle(0)?;
    /// assert_eq!(handle.write_and_sync_read(&[5, 6])?.own(), [5, 6, 0]); // zero-padded
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn own(&self) -> &[T] {
        // SAFETY: as in `segment`; `state.id < num_threads`.
        unsafe { self.mem.storage.segment(self.buffer, self.state.id) }
    }

    /// The segments in order.
    ///
    /// ```
    /// use std::thread;
    /// use slotring::synced::SyncedMemory;
    /// let mem = SyncedMemory::<u32>::new(2, 2);
    /// thread::scope(|s| -> Result<(), slotring::synced::SyncError> {
    ///     let mut other = mem.local_handle(1)?;
    ///     s.spawn(move || other.write_and_sync_read(&[30, 40]).map(|_| ()));
    ///     let mut handle = mem.local_handle(0)?;
    ///     let view = handle.write(&[10, 20])?.wait()?;
    ///     let sums: Vec<u32> = view.segments().map(|s| s.iter().sum()).collect();
    ///     assert_eq!(sums, [30, 70]);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    pub fn segments(&self) -> impl ExactSizeIterator<Item = &[T]> + '_ {
        // SAFETY: as in `segment`; `i < num_threads`.
        (0..self.mem.num_threads).map(move |i| unsafe { self.mem.storage.segment(self.buffer, i) })
    }

    /// Every value, segment after segment.
    ///
    /// ```
    /// use std::thread;
    /// use slotring::synced::SyncedMemory;
    /// let mem = SyncedMemory::<u32>::new(2, 2);
    /// thread::scope(|s| -> Result<(), slotring::synced::SyncError> {
    ///     let mut other = mem.local_handle(1)?;
    ///     s.spawn(move || other.write_and_sync_read(&[30, 40]).map(|_| ()));
    ///     let mut handle = mem.local_handle(0)?;
    ///     let view = handle.write(&[10, 20])?.wait()?;
    ///     assert_eq!(view.iter().max(), Some(&40));
    ///     Ok(())
    /// })?;
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.segments().flatten()
    }

    /// Value `index` of the whole state (segment `index / segment_len`), or `None` if out
    /// of range.
    ///
    /// ```
    /// use std::thread;
    /// use slotring::synced::SyncedMemory;
    /// let mem = SyncedMemory::<u32>::new(2, 2);
    /// thread::scope(|s| -> Result<(), slotring::synced::SyncError> {
    ///     let mut other = mem.local_handle(1)?;
    ///     s.spawn(move || other.write_and_sync_read(&[30, 40]).map(|_| ()));
    ///     let mut handle = mem.local_handle(0)?;
    ///     let view = handle.write(&[10, 20])?.wait()?;
    ///     assert_eq!((view.get(1), view.get(2), view.get(4)), (Some(&20), Some(&30), None));
    ///     Ok(())
    /// })?;
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn get(&self, index: usize) -> Option<&T> {
        let len = self.mem.segment_len;
        if len == 0 {
            return None;
        }
        self.segment(index / len)?.get(index % len)
    }

    /// Copies the whole state into `out` (cleared first), reusing its allocation.
    ///
    /// ```
    /// use std::thread;
    /// use slotring::synced::SyncedMemory;
    /// let mem = SyncedMemory::<u32>::new(2, 2);
    /// thread::scope(|s| -> Result<(), slotring::synced::SyncError> {
    ///     let mut other = mem.local_handle(1)?;
    ///     s.spawn(move || other.write_and_sync_read(&[30, 40]).map(|_| ()));
    ///     let mut handle = mem.local_handle(0)?;
    ///     let view = handle.write(&[10, 20])?.wait()?;
    ///     let mut out = vec![99; 1];
    ///     view.copy_to(&mut out);
    ///     assert_eq!(out, [10, 20, 30, 40]);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    pub fn copy_to(&self, out: &mut Vec<T>) {
        out.clear();
        out.reserve(self.len());
        for segment in self.segments() {
            out.extend_from_slice(segment);
        }
    }

    /// The whole state as a new `Vec`.
    ///
    /// ```
    /// use std::thread;
    /// use slotring::synced::SyncedMemory;
    /// let mem = SyncedMemory::<u32>::new(2, 2);
    /// thread::scope(|s| -> Result<(), slotring::synced::SyncError> {
    ///     let mut other = mem.local_handle(1)?;
    ///     s.spawn(move || other.write_and_sync_read(&[30, 40]).map(|_| ()));
    ///     let mut handle = mem.local_handle(0)?;
    ///     let view = handle.write(&[10, 20])?.wait()?;
    ///     assert_eq!(view.to_vec(), [10, 20, 30, 40]);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    #[must_use]
    pub fn to_vec(&self) -> Vec<T> {
        let mut out = Vec::new();
        self.copy_to(&mut out);
        out
    }

    /// Ends the read phase and writes the next cycle's segment in place, with this
    /// cycle's state still readable: `fill` gets this worker's segment of the next cycle
    /// (unspecified earlier values of its own, zeros in the first two cycles) and this
    /// view. The two never overlap (the next cycle uses the other buffer). Call
    /// [`Written::wait`] next.
    ///
    /// ```
    /// // A running sum: each cycle, every worker writes the total of the last one.
    /// let mem = slotring::synced::SyncedMemory::<u64>::new(1, 1);
    /// let mut h = mem.local_handle(0)?;
    /// let mut view = h.write_and_sync_read(&[1])?;
    /// for _ in 0..3 {
    ///     view = view.write_next_with(|mine, prev| mine[0] = prev.iter().sum::<u64>() * 2).wait()?;
    /// }
    /// assert_eq!(view.own(), [8]);
    /// # Ok::<(), slotring::synced::SyncError>(())
    /// ```
    pub fn write_next_with(self, fill: impl FnOnce(&mut [T], &Self)) -> Written<'h, T> {
        let buffer = self.state.write_buffer();
        debug_assert_ne!(buffer, self.buffer);
        // SAFETY: the write phase of the next cycle may begin as soon as the last barrier
        // is passed (protocol step 1), and this segment of the other buffer is never
        // reachable through this view, so `fill`'s two arguments do not overlap.
        let segment = unsafe { self.mem.storage.segment_mut(buffer, self.state.id) };
        // Before `fill`, so a panic caught around this call leaves no stale count.
        self.state.filled[buffer] = self.mem.segment_len;
        fill(segment, &self);
        self.mem.storage.track_write(buffer, self.state.id);
        Written {
            mem: self.mem,
            state: self.state,
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for GlobalView<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalView")
            .field("cycle", &self.cycle())
            .field("segments", &self.segments().collect::<Vec<_>>())
            .finish()
    }
}
