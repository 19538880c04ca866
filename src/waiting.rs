//! Waiting for a slot: [`EventAllocator::allocate_timeout`] (blocking, with a timeout)
//! and [`EventAllocator::allocate_async`] (a [`Future`], no runtime needed).
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
            alloc: self,
            payload,
            event_type,
            registration: Registration::default(),
            class: None,
        }
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
    alloc: &'a EventAllocator,
    payload: &'a [u8],
    event_type: u32,
    registration: Registration,
    /// The class, once the first poll found it (registered with its pool from then on).
    class: Option<PoolId>,
}

impl Future for AllocateAsync<'_> {
    type Output = Result<RingPtr<Event>, AllocError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let (alloc, payload, event_type) = (this.alloc, this.payload, this.event_type);
        let class = match this.class {
            Some(class) => class,
            None => {
                let class = class_of(payload)?;
                if alloc.pool(class).capacity() == 0 {
                    alloc.pool(class).note_failure();
                    return Poll::Ready(Err(AllocError::PoolExhausted { pool: class }));
                }
                this.class = Some(class);
                class
            }
        };
        alloc
            .pool(class)
            .poll_slot(&mut this.registration, cx.waker(), || {
                alloc.store(class, payload, event_type)
            })
            .map(Ok)
    }
}

impl Drop for AllocateAsync<'_> {
    fn drop(&mut self) {
        if let Some(class) = self.class {
            self.alloc.pool(class).cancel_wait(&mut self.registration);
        }
    }
}
