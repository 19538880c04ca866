//! How a reader waits for an event, or a [`LosslessWriter`](super::LosslessWriter) for
//! room: [`Wait`], and the poll loop that follows it.

use std::time::{Duration, Instant};

use crate::sync::{spin_loop, yield_now};

/// Polls (with a spin hint) before [`Wait::Block`] starts yielding its time slice. Few:
/// on a machine with fewer cores than busy threads, every spin steals time from the
/// writer or another reader (measured: 128 spins ran 2 readers at a third of the
/// throughput of 16 spins and 200 yields on 2 cores).
const SPINS: u32 = if cfg!(loom) { 1 } else { 16 };
/// Polls with a yield in between before [`Wait::Block`] parks. A yield with nothing else
/// to run returns at once, so this is still a poll loop when cores are free.
const YIELDS: u32 = if cfg!(loom) { 1 } else { 200 };

/// What a waiting thread does between two polls.
///
/// ```
/// use std::time::Duration;
/// use slotring::broadcast::{channel, Wait};
/// let (mut writer, mut reader) = channel::<u64, 8>();
/// writer.add(1);
/// assert_eq!(reader.next_wait(Wait::Spin, Duration::MAX), Ok(1)); // a core of its own
/// writer.add(2);
/// assert_eq!(reader.next_wait(Wait::Yield, Duration::MAX), Ok(2)); // shares its core
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Wait {
    /// Polls in a loop with a spin hint: the lowest latency, and a busy core for as long
    /// as it waits. For threads that have a core each.
    Spin,
    /// Yields the time slice after every failed poll: a little slower to react, lets
    /// other threads of the same core run, and still keeps the core busy when nothing
    /// else wants it.
    Yield,
    /// Spins briefly, yields a while, then parks the thread until it is woken: the
    /// choice when waits can be long.
    #[default]
    Block,
}

/// The state of one wait: how many polls so far and when it gives up.
pub(super) struct Backoff {
    wait: Wait,
    polls: u32,
    timeout: Duration,
    /// Read from the clock at the first poll that is not a spin (the fast path never
    /// reads it); `None` inside: no deadline (the timeout does not fit an `Instant`).
    deadline: Option<Option<Instant>>,
}

/// What the waiting thread should do after a failed poll.
pub(super) enum Step {
    /// Poll again (the backoff already spun or yielded).
    Again,
    /// Park until woken or the deadline passes, then poll again.
    Park(Option<Instant>),
    /// The timeout passed.
    TimedOut,
}

impl Backoff {
    pub(super) fn new(wait: Wait, timeout: Duration) -> Self {
        Self {
            wait,
            polls: 0,
            timeout,
            deadline: None,
        }
    }

    /// Called after each failed poll.
    #[inline]
    pub(super) fn step(&mut self) -> Step {
        let spinning = match self.wait {
            Wait::Spin => self.polls < SPINS || self.polls % 64 != 0,
            Wait::Yield => false,
            Wait::Block => self.polls < SPINS,
        };
        if spinning {
            // A spinning wait reads the clock once per 64 polls only.
            self.polls = self.polls.wrapping_add(1);
            spin_loop();
            return Step::Again;
        }
        let timeout = self.timeout;
        let end = *self
            .deadline
            .get_or_insert_with(|| Instant::now().checked_add(timeout));
        if end.is_some_and(|end| Instant::now() >= end) {
            return Step::TimedOut;
        }
        self.polls = self.polls.wrapping_add(1);
        match self.wait {
            Wait::Spin => {
                spin_loop();
                Step::Again
            }
            Wait::Block if self.polls > SPINS + YIELDS => Step::Park(end),
            Wait::Yield | Wait::Block => {
                yield_now();
                Step::Again
            }
        }
    }
}
