//! Waiting for a slot: [`EventAllocator::allocate_timeout`] (blocking, with a timeout)
//! and [`EventAllocator::allocate_async`] (a [`Future`], no runtime needed), and the
//! same for writing in place: [`EventAllocator::reserve_timeout`] and
//! [`EventAllocator::reserve_async`].
//!
//! A waiter registers with its class's pool (`notify.rs`), which sets the waiting bit in
//! the pool's free-list head and a hint beside it, and then re-checks; every release of
//! a slot to the shared list reads the bit in the push it makes anyway, and wakes the
//! waiters only when it is set. So a release pays nothing for this feature while nobody
//! waits: no extra load, no fence (the bit rides in the value its CAS already read, and
//! the hint in the byte it already loads for the closed pool).
//!
//! # What a waiter sees
//!
//! Freed slots do not all reach the shared list: a thread keeps some in its own
//! magazine (at most an eighth of a pool, in all magazines together), where no other
//! thread can see them. While someone waits:
//!
//! * every release of a slot of the pool goes to the shared list instead, and the
//!   releasing thread sends its whole magazine of that pool along, then wakes the waiters;
//! * a thread that pops a batch from the shared list keeps none of it in its magazine;
//! * a thread that exits (or rebinds its magazine) returns its slots, waking the waiters.
//!
//! So a waiter wakes for every slot of its class freed after it began waiting, on any
//! thread, and also gets the slots cached by any thread that touches the pool
//! (releasing) or exits. It can wait in vain only for slots that sat in another thread's
//! magazine before it began, or that a release racing its start parked there (the
//! releaser read the hint before it was set), and only while that thread neither frees a
//! slot of the class nor exits: a timeout bounds that, and `allocate_async` callers that
//! need a bound combine it with their runtime's timer. This is the same limit a plain
//! [`try_allocate`](EventAllocator::try_allocate) has (a pool refuses when at most an
//! eighth of its slots sit free in other threads' magazines).

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::allocator::EventAllocator;
use crate::builder::EventBuilder;
use crate::error::AllocError;
use crate::event::{Event, PoolId};
use crate::notify::Registration;
use crate::ptr::RingPtr;

impl EventAllocator {
    /// Stores a copy of `payload` in its own class (no spilling, no heap, like
    /// [`try_allocate`](Self::try_allocate)), waiting up to `timeout` for a slot of the
    /// class to be released when the class is full. The thread sleeps meanwhile (no
    /// spinning).
    ///
    /// Errors: [`AllocError::TooLarge`] over 16 KiB (at once),
    /// [`AllocError::PoolExhausted`] when no slot came free in time (at once for a class
    /// of 0 slots, where none ever can). `Duration::MAX` waits without a limit. What a
    /// waiter can and cannot see is in the [module docs](crate::waiting) (slots cached in
    /// other threads' magazines before the wait began may stay out of reach).
    ///
    /// ```
    /// use std::time::Duration;
    /// use slotring::{AllocError, EventAllocator, PoolId};
    /// let alloc = EventAllocator::builder().capacity(PoolId::XS, 1).build()?;
    /// let first = alloc.allocate_timeout(b"one", 0, Duration::ZERO)?;
    /// // The class is full: wait for the holder on another thread to let go.
    /// let holder = std::thread::spawn(move || drop(first));
    /// let second = alloc.allocate_timeout(b"two", 0, Duration::from_secs(60))?;
    /// assert_eq!(second.payload(), b"two");
    /// holder.join().unwrap();
    /// assert_eq!(
    ///     alloc.allocate_timeout(b"three", 0, Duration::from_millis(1)).unwrap_err(),
    ///     AllocError::PoolExhausted { pool: PoolId::XS },
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allocate_timeout(
        &self,
        payload: &[u8],
        event_type: u32,
        timeout: Duration,
    ) -> Result<RingPtr<Event>, AllocError> {
        let class = class_of(payload)?;
        if let Some(ev) = self.store(class, payload, event_type) {
            return Ok(ev);
        }
        let pool = self.pool(class);
        let refused = || {
            pool.note_failure();
            AllocError::PoolExhausted { pool: class }
        };
        if pool.capacity() == 0 {
            return Err(refused());
        }
        // An unrepresentable deadline (`Duration::MAX`) means no deadline.
        let deadline = Instant::now().checked_add(timeout);
        pool.wait_for_slot(deadline, || self.store(class, payload, event_type))
            .ok_or_else(refused)
    }

    /// Stores a copy of `payload` in its own class (no spilling, no heap), waiting
    /// asynchronously for a slot of the class to be released when the class is full.
    ///
    /// The returned future needs no particular runtime (it stores the task's
    /// [`Waker`](core::task::Waker) and is woken by the release). It resolves to
    /// [`AllocError::TooLarge`] over 16 KiB and to [`AllocError::PoolExhausted`] for a
    /// class of 0 slots; otherwise it waits as long as it takes, so bound it with your
    /// runtime's timeout where a bound matters (see the [module docs](crate::waiting)
    /// for what a waiter can see). Dropping it stops the wait.
    ///
    /// ```
    /// use std::task::{Context, Poll, Waker};
    /// use slotring::{EventAllocator, PoolId};
    /// let alloc = EventAllocator::builder().capacity(PoolId::XS, 1).build()?;
    /// let held = alloc.allocate(b"one", 0)?;
    /// let mut wait = Box::pin(alloc.allocate_async(b"two", 0));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(wait.as_mut().poll(&mut cx).is_pending()); // the class is full
    /// drop(held); // wakes the task
    /// let Poll::Ready(ev) = wait.as_mut().poll(&mut cx) else { panic!("not woken") };
    /// assert_eq!(ev?.payload(), b"two");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allocate_async<'a>(&'a self, payload: &'a [u8], event_type: u32) -> AllocateAsync<'a> {
        AllocateAsync {
            wait: SlotWait::new(self, class_of(payload)),
            payload,
            event_type,
        }
    }
}

impl EventAllocator {
    /// [`reserve`](Self::reserve) in the smallest class that fits `capacity` (no
    /// spilling), waiting up to `timeout` for a slot of the class when it is full: for
    /// reading into a slot when the pool may be busy. Errors as for
    /// [`allocate_timeout`](Self::allocate_timeout).
    ///
    /// ```
    /// use std::io::Write;
    /// use std::time::Duration;
    /// use slotring::{EventAllocator, PoolId};
    /// let alloc = EventAllocator::builder().capacity(PoolId::S, 1).build()?;
    /// let first = alloc.reserve_timeout(100, 0, Duration::ZERO)?.freeze();
    /// let holder = std::thread::spawn(move || drop(first));
    /// let mut second = alloc.reserve_timeout(100, 0, Duration::from_secs(60))?;
    /// second.write_all(b"written once the first was gone")?;
    /// holder.join().unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reserve_timeout(
        &self,
        capacity: usize,
        event_type: u32,
        timeout: Duration,
    ) -> Result<EventBuilder, AllocError> {
        let class = class_of_len(capacity)?;
        let attempt = || self.reserve_slot(class, event_type);
        if let Some(builder) = attempt() {
            return Ok(builder);
        }
        let pool = self.pool(class);
        let refused = || {
            pool.note_failure();
            AllocError::PoolExhausted { pool: class }
        };
        if pool.capacity() == 0 {
            return Err(refused());
        }
        let deadline = Instant::now().checked_add(timeout);
        pool.wait_for_slot(deadline, attempt).ok_or_else(refused)
    }

    /// [`reserve`](Self::reserve) in the smallest class that fits `capacity` (no
    /// spilling), waiting asynchronously for a slot of the class when it is full. As
    /// [`allocate_async`](Self::allocate_async) otherwise.
    ///
    /// ```
    /// use std::task::{Context, Poll, Waker};
    /// use slotring::{EventAllocator, PoolId};
    /// let alloc = EventAllocator::builder().capacity(PoolId::XS, 1).build()?;
    /// let held = alloc.allocate(b"one", 0)?;
    /// let mut wait = Box::pin(alloc.reserve_async(10, 0));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(wait.as_mut().poll(&mut cx).is_pending());
    /// drop(held);
    /// let Poll::Ready(builder) = wait.as_mut().poll(&mut cx) else { panic!("not woken") };
    /// assert_eq!(builder?.capacity(), 64);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reserve_async(&self, capacity: usize, event_type: u32) -> ReserveAsync<'_> {
        ReserveAsync {
            wait: SlotWait::new(self, class_of_len(capacity)),
            event_type,
        }
    }
}

/// The smallest class `len` bytes fit, or `TooLarge`.
fn class_of_len(len: usize) -> Result<PoolId, AllocError> {
    PoolId::for_len(len).ok_or(AllocError::TooLarge {
        len,
        max: PoolId::MAX_POOLED,
    })
}

/// A task's wait for a slot of one class: the part `AllocateAsync` and `ReserveAsync`
/// share.
#[derive(Debug)]
struct SlotWait<'a> {
    alloc: &'a EventAllocator,
    /// The class, or why there is none (reported by the first poll).
    class: Result<PoolId, AllocError>,
    registration: Registration,
}

impl<'a> SlotWait<'a> {
    fn new(alloc: &'a EventAllocator, class: Result<PoolId, AllocError>) -> Self {
        Self {
            alloc,
            class,
            registration: Registration::default(),
        }
    }

    fn poll<T>(
        &mut self,
        cx: &mut Context<'_>,
        attempt: impl FnMut(&'a EventAllocator, PoolId) -> Option<T>,
    ) -> Poll<Result<T, AllocError>> {
        let class = self.class?;
        let pool = self.alloc.pool(class);
        if pool.capacity() == 0 {
            pool.note_failure();
            return Poll::Ready(Err(AllocError::PoolExhausted { pool: class }));
        }
        let alloc = self.alloc;
        let mut attempt = attempt;
        pool.poll_slot(&mut self.registration, cx.waker(), || attempt(alloc, class))
            .map(Ok)
    }
}

impl Drop for SlotWait<'_> {
    fn drop(&mut self) {
        if let Ok(class) = self.class {
            self.alloc.pool(class).cancel_wait(&mut self.registration);
        }
    }
}

/// The future of [`EventAllocator::reserve_async`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct ReserveAsync<'a> {
    wait: SlotWait<'a>,
    event_type: u32,
}

impl Future for ReserveAsync<'_> {
    type Output = Result<EventBuilder, AllocError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let event_type = self.event_type;
        self.wait
            .poll(cx, |alloc, class| alloc.reserve_slot(class, event_type))
    }
}

/// The smallest class `payload` fits, or `TooLarge`.
fn class_of(payload: &[u8]) -> Result<PoolId, AllocError> {
    PoolId::for_len(payload.len()).ok_or(AllocError::TooLarge {
        len: payload.len(),
        max: PoolId::MAX_POOLED,
    })
}

/// The future of [`EventAllocator::allocate_async`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct AllocateAsync<'a> {
    wait: SlotWait<'a>,
    payload: &'a [u8],
    event_type: u32,
}

impl Future for AllocateAsync<'_> {
    type Output = Result<RingPtr<Event>, AllocError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let (payload, event_type) = (this.payload, this.event_type);
        this.wait
            .poll(cx, |alloc, class| alloc.store(class, payload, event_type))
    }
}
