//! [`Reader::recv`]: the next event as a `Future`, woken by the writer.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use bytemuck::Pod;

use super::{Reader, TryReadError};
use crate::notify::Registration;

/// Why [`Reader::recv`] returned no event (as `tokio::sync::broadcast`'s `RecvError`).
///
/// ```
/// use slotring::broadcast::RecvError;
/// let lagged = RecvError::Lagged { missed: 3 };
/// assert_eq!(lagged.to_string(), "reader lagged behind the writer and missed 3 events");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecvError {
    /// The writer lapped this reader (see [`Lagged`](super::Lagged)); receive again for
    /// the next event.
    Lagged {
        /// How many events this reader skipped.
        missed: u64,
    },
    /// The writer is gone and every event it published has been read.
    Closed,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Lagged { missed } => {
                fmt::Display::fmt(&super::Lagged { missed: *missed }, f)
            }
            RecvError::Closed => f.write_str("the writer is gone and every event was read"),
        }
    }
}

impl std::error::Error for RecvError {}

/// The future of [`Reader::recv`]. Cancel-safe: dropping it before it completes loses no
/// event (it reads only in the poll that returns `Ready`).
#[must_use = "futures do nothing unless polled"]
pub struct Recv<'a, T: Pod, const CAP: usize> {
    reader: &'a mut Reader<T, CAP>,
    registration: Registration,
}

impl<T: Pod, const CAP: usize> Reader<T, CAP> {
    /// The next event, as a future that completes when the writer publishes it (or
    /// goes away). Runs on any executor: no runtime, no timer. The writer wakes the task
    /// itself, and pays a fence and one load of a flag per publication while no reader
    /// waits.
    ///
    /// ```
    /// use slotring::broadcast::{channel, RecvError};
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let waker = std::task::Waker::noop();
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
    /// #             return v;
    /// #         }
    /// #         std::thread::yield_now();
    /// #     }
    /// # }
    /// let (mut writer, mut reader) = channel::<u64, 8>();
    /// let t = std::thread::spawn(move || {
    ///     writer.add(42);
    /// }); // the writer drops at the end of the thread
    /// block_on(async {
    ///     assert_eq!(reader.recv().await, Ok(42));
    ///     assert_eq!(reader.recv().await, Err(RecvError::Closed));
    /// });
    /// t.join().unwrap();
    /// ```
    pub fn recv(&mut self) -> Recv<'_, T, CAP> {
        Recv {
            reader: self,
            registration: Registration::default(),
        }
    }
}

impl<T: Pod, const CAP: usize> Future for Recv<'_, T, CAP> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // `Recv` is `Unpin` (a reference and a plain registration).
        let this = self.get_mut();
        loop {
            let shared = &*this.reader.shared;
            let next = this.reader.next;
            let news = shared.waiting_readers.poll_wait(
                &shared.readers_waiting,
                &mut this.registration,
                cx.waker(),
                || shared.has_news(next).then_some(()),
            );
            if news.is_pending() {
                return Poll::Pending;
            }
            // `poll_wait` gave the registration back when it returned `Ready`.
            match this.reader.try_next() {
                Ok(value) => return Poll::Ready(Ok(value)),
                Err(TryReadError::Lagged { missed }) => {
                    return Poll::Ready(Err(RecvError::Lagged { missed }));
                }
                Err(TryReadError::Closed) => return Poll::Ready(Err(RecvError::Closed)),
                // Not reachable (the news was an event or the close); wait again.
                Err(TryReadError::Empty) => {}
            }
        }
    }
}

impl<T: Pod, const CAP: usize> Drop for Recv<'_, T, CAP> {
    fn drop(&mut self) {
        let shared = &*self.reader.shared;
        shared
            .waiting_readers
            .cancel(&shared.readers_waiting, &mut self.registration);
    }
}

impl<T: Pod, const CAP: usize> fmt::Debug for Recv<'_, T, CAP> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv")
            .field("cursor", &self.reader.next)
            .finish_non_exhaustive()
    }
}
