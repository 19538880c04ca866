//! A list of waiters: threads blocked with an optional deadline and async tasks
//! (`Future`s with a std [`Waker`], no runtime), woken together when the state they wait
//! for may have changed.
//!
//! The wake side is meant for hot paths: when nobody waits it must cost one test of a
//! "someone waits" flag and nothing else. The flag is not part of this module: the caller
//! provides it through [`WaitFlag`] (raised when the first waiter registers, lowered when
//! the last one leaves, both under the list's lock), so it can live where the wake side
//! already looks. Two protocols make that test safe against a lost wake-up; both are the
//! register-then-recheck handshake.
//!
//! # The handshake
//!
//! A waiter *registers* (under the lock: the count of waiters goes up, the flag is raised
//! for the first one, a task stores its waker, a thread notes the wake-up epoch), then
//! runs a `SeqCst` fence, then *re-checks* the condition (`attempt`) and sleeps only if
//! it still fails. The waker *publishes* (makes the condition true), then tests the
//! flag, and only if it is raised calls [`WaitList::wake_all`], which takes the lock,
//! moves the epoch on, and wakes every registered thread and task. Either the waker's
//! flag test sees the registration, or the waiter's re-check sees the publication:
//!
//! * **Fences** ([`AtomicFlag`]): the waker runs `fence(SeqCst)` between publishing and
//!   a Relaxed load of the flag ([`AtomicFlag::notify_after_fence`]). The two `SeqCst`
//!   fences are totally ordered. If the waiter's comes first, the flag load (after the
//!   waker's fence) must see the raise (before the waiter's fence) or a later value,
//!   and the flag stays raised while this waiter is registered. If the waker's comes
//!   first, the waiter's re-check must see the publication (or a later state).
//! * **A shared read-modify-write** (the pools of an `EventAllocator`): the flag is a bit
//!   of a word that the waker changes with an Acquire (or stronger) read-modify-write
//!   when it publishes, and the raise is a Release (or stronger) read-modify-write of the
//!   same word. RMWs of one word are totally ordered and each reads the latest value: if
//!   the raise comes first, the publishing RMW reads the raised bit (the bit stays set
//!   while anyone is registered, and every RMW of the word keeps it); if the publication
//!   comes first, the raise reads from it, so the publication happens-before the
//!   registration and every re-check after it. Waiters that register while the flag is
//!   already raised come after that raise in the lock's order, so the same holds for
//!   them. The wake side pays nothing at all: it tests a bit of the value its own RMW
//!   already read.
//!
//! The lock then closes the remaining gap: a waiter re-checks *outside* the lock, then
//! takes it again and sleeps only if the epoch has not moved since it registered (or
//! since its last wake-up). A wake-up that happened in between moved the epoch under the
//! same lock, so the waiter sees it and re-checks instead of sleeping. A task re-checks
//! on every poll after storing its current waker under the lock; `wake_all` takes the
//! wakers out under the lock, so a waker stored after that is one whose poll re-checks
//! after the publication.
//!
//! Every waiter is woken on every wake-up (no wake-one): a woken waiter that finds the
//! condition false again (another waiter or a plain caller won) goes back to sleep, and a
//! cancelled waiter cannot swallow a wake-up meant for another. The cost is a thundering
//! herd, paid only while somebody waits.
//!
//! Wakers run outside the lock, in batches, so a waker that polls its task inline (or
//! registers again) cannot deadlock on it; registering a task's waker needs memory for
//! one more entry, and a refused allocation makes that poll wake its own task at once
//! (the task polls again) instead of aborting.

use core::task::{Poll, Waker};
use std::sync::PoisonError;
use std::time::Instant;

use crate::sync::{AtomicBool, Condvar, Mutex, MutexGuard, Ordering, fence};

/// The "someone waits" flag a [`WaitList`] keeps for its caller.
///
/// [`raise`](Self::raise) runs when the number of registered waiters goes from 0 to 1,
/// [`lower`](Self::lower) when it goes back to 0, both under the list's lock (so raises
/// and lowers alternate). The module docs list what each protocol needs of them.
pub(crate) trait WaitFlag {
    /// The first waiter registers.
    fn raise(&self);
    /// The last waiter leaves.
    fn lower(&self);
}

/// A plain flag for the fence protocol (module docs).
#[derive(Debug)]
pub(crate) struct AtomicFlag(AtomicBool);

impl AtomicFlag {
    /// A lowered flag.
    pub(crate) fn new() -> Self {
        Self(AtomicBool::new(false))
    }

    /// The waker's half of the fence protocol: to be called right after publishing.
    /// When nobody waits, it costs the fence and one Relaxed load.
    #[inline]
    pub(crate) fn notify_after_fence(&self, list: &WaitList) {
        // SeqCst: the waker's fence of the handshake (module docs), ordered against the
        // fence every waiter runs between registering and re-checking.
        fence(Ordering::SeqCst);
        // Relaxed: the fences order it (module docs).
        if self.0.load(Ordering::Relaxed) {
            list.wake_all();
        }
    }
}

impl WaitFlag for AtomicFlag {
    fn raise(&self) {
        // Relaxed: the waiter's SeqCst fence after registering orders it (module docs).
        self.0.store(true, Ordering::Relaxed);
    }

    fn lower(&self) {
        // Relaxed: a stale raised flag only costs a waker a needless `wake_all`.
        self.0.store(false, Ordering::Relaxed);
    }
}

/// One task's entry in the list (its waker, taken out by a wake-up).
#[derive(Debug)]
struct Task {
    used: bool,
    waker: Option<Waker>,
}

#[derive(Debug)]
struct State {
    /// Registered waiters, threads and tasks.
    waiters: usize,
    /// Moves on with every wake-up; a sleeping thread waits for it to change.
    epoch: u64,
    /// Entries of registered tasks (unused ones are reused).
    tasks: Vec<Task>,
}

/// Threads and tasks waiting for a condition (module docs).
#[derive(Debug)]
pub(crate) struct WaitList {
    state: Mutex<State>,
    wake: Condvar,
}

/// A task's registration in a [`WaitList`]: kept in the future between polls and given
/// back with [`WaitList::cancel`] when the future completes or is dropped.
#[derive(Debug, Default)]
pub(crate) struct Registration {
    entry: Option<usize>,
}

/// Wakers taken out of the list per batch (they run outside the lock).
const WAKE_BATCH: usize = 16;

impl WaitList {
    /// An empty list.
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                waiters: 0,
                epoch: 0,
                tasks: Vec::new(),
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic under this lock leaves the state consistent (no user code runs there).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enter(state: &mut State, flag: &impl WaitFlag) {
        state.waiters += 1;
        if state.waiters == 1 {
            flag.raise();
        }
    }

    fn leave(state: &mut State, flag: &impl WaitFlag) {
        state.waiters -= 1;
        if state.waiters == 0 {
            flag.lower();
        }
    }

    /// Blocks the calling thread until `attempt` returns `Some` (which is returned) or
    /// `deadline` passes (`None` is returned). `attempt` runs first without
    /// registering, then after each wake-up; the wake side must publish what `attempt`
    /// reads before testing `flag` (module docs).
    ///
    /// `deadline: None` waits for ever. (Under loom a timed wait never times out: loom's
    /// condvar has no clock, so models use `None`.)
    pub(crate) fn wait<T, F: WaitFlag>(
        &self,
        flag: &F,
        deadline: Option<Instant>,
        mut attempt: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        if let Some(value) = attempt() {
            return Some(value);
        }
        /// Leaves the list when the wait ends, also if `attempt` panics (a registration
        /// left behind would keep the flag raised for ever).
        struct Registered<'a, F: WaitFlag> {
            list: &'a WaitList,
            flag: &'a F,
        }
        impl<F: WaitFlag> Drop for Registered<'_, F> {
            fn drop(&mut self) {
                WaitList::leave(&mut self.list.lock(), self.flag);
            }
        }
        let mut state = self.lock();
        Self::enter(&mut state, flag);
        let _registered = Registered { list: self, flag };
        let result = loop {
            let seen = state.epoch;
            drop(state);
            // SeqCst: the waiter's fence of the handshake: registered above, re-checked
            // below (module docs).
            fence(Ordering::SeqCst);
            let value = attempt();
            state = self.lock();
            if value.is_some() {
                break value;
            }
            // Sleep until a wake-up moves the epoch (one that came since `seen` already
            // did: it took this lock after our registration).
            let mut timed_out = false;
            while state.epoch == seen && !timed_out {
                if let Some(deadline) = deadline {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        timed_out = true;
                    } else {
                        state = self
                            .wake
                            .wait_timeout(state, left)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                    continue;
                }
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if timed_out {
                break None;
            }
        };
        // Unlock before `_registered` leaves (it takes the lock again).
        drop(state);
        result
    }

    /// One poll of a task waiting for `attempt` to return `Some`: registers the task
    /// (or refreshes its waker), re-checks, and returns `Ready` with the value (having
    /// cancelled the registration) or `Pending` (staying registered, to be woken). The
    /// owner of `registration` must [`cancel`](Self::cancel) it when it is dropped
    /// while still registered.
    pub(crate) fn poll_wait<T>(
        &self,
        flag: &impl WaitFlag,
        registration: &mut Registration,
        waker: &Waker,
        mut attempt: impl FnMut() -> Option<T>,
    ) -> Poll<T> {
        if registration.entry.is_none() {
            // Not yet registered: the condition may well hold already.
            if let Some(value) = attempt() {
                return Poll::Ready(value);
            }
        }
        {
            let mut state = self.lock();
            match registration.entry {
                Some(entry) => {
                    let task = &mut state.tasks[entry];
                    match &mut task.waker {
                        Some(stored) if stored.will_wake(waker) => {}
                        stored => *stored = Some(waker.clone()),
                    }
                }
                None => {
                    let free = state.tasks.iter().position(|task| !task.used);
                    let entry = match free {
                        Some(entry) => entry,
                        None => {
                            if state.tasks.try_reserve(1).is_err() {
                                // No memory for an entry: poll again soon rather than
                                // abort or sleep unregistered.
                                drop(state);
                                waker.wake_by_ref();
                                return Poll::Pending;
                            }
                            state.tasks.push(Task {
                                used: false,
                                waker: None,
                            });
                            state.tasks.len() - 1
                        }
                    };
                    state.tasks[entry] = Task {
                        used: true,
                        waker: Some(waker.clone()),
                    };
                    Self::enter(&mut state, flag);
                    registration.entry = Some(entry);
                }
            }
        }
        // SeqCst: the waiter's fence of the handshake (module docs).
        fence(Ordering::SeqCst);
        match attempt() {
            Some(value) => {
                self.cancel(flag, registration);
                Poll::Ready(value)
            }
            None => Poll::Pending,
        }
    }

    /// Removes a task's registration, if it has one.
    pub(crate) fn cancel(&self, flag: &impl WaitFlag, registration: &mut Registration) {
        if let Some(entry) = registration.entry.take() {
            let mut state = self.lock();
            state.tasks[entry] = Task {
                used: false,
                waker: None,
            };
            Self::leave(&mut state, flag);
        }
    }

    /// Wakes every registered thread and task. The wake side calls it after publishing,
    /// when the flag says someone waits (module docs).
    ///
    /// A waker that panics has its panic caught and dropped: the other wakers still run,
    /// and the caller (a release, perhaps in a thread-local destructor at thread exit, or
    /// a slot return with a keepalive unit to give back) completes. A waker is the
    /// executor's code; its panic must not leak a slot, lose another task's wake-up or
    /// abort the process here.
    #[cold]
    #[inline(never)]
    pub(crate) fn wake_all(&self) {
        let mut state = self.lock();
        state.epoch = state.epoch.wrapping_add(1);
        self.wake.notify_all();
        let mut next = 0;
        loop {
            let mut batch: [Option<Waker>; WAKE_BATCH] = Default::default();
            let mut taken = 0;
            while next < state.tasks.len() && taken < WAKE_BATCH {
                if let Some(waker) = state.tasks[next].waker.take() {
                    batch[taken] = Some(waker);
                    taken += 1;
                }
                next += 1;
            }
            if taken == 0 {
                return;
            }
            drop(state);
            for waker in batch.into_iter().flatten() {
                // The waker is consumed whether or not it panics; nothing of ours is
                // borrowed across the call, so no state is left half-updated.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
            }
            state = self.lock();
        }
    }

    /// The number of registered waiters (for tests and statistics).
    #[allow(dead_code, reason = "used by tests and future callers")]
    pub(crate) fn waiters(&self) -> usize {
        self.lock().waiters
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;
    use std::time::Duration;

    struct CountWaker(AtomicUsize);
    impl Wake for CountWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_ready_condition_returns_without_registering() {
        let list = WaitList::new();
        let flag = AtomicFlag::new();
        assert_eq!(list.wait(&flag, None, || Some(7)), Some(7));
        assert_eq!(list.waiters(), 0);
    }

    #[test]
    fn a_deadline_ends_the_wait_and_unregisters() {
        let list = WaitList::new();
        let flag = AtomicFlag::new();
        let deadline = Instant::now() + Duration::from_millis(1);
        assert_eq!(list.wait(&flag, Some(deadline), || None::<u8>), None);
        assert_eq!(list.waiters(), 0);
        assert!(
            !flag.0.load(Ordering::Relaxed),
            "the last waiter lowers the flag"
        );
    }

    #[test]
    fn a_panicking_attempt_leaves_the_list() {
        let list = WaitList::new();
        let flag = AtomicFlag::new();
        let mut calls = 0;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            list.wait(&flag, None, || -> Option<()> {
                calls += 1;
                if calls == 2 {
                    panic!("attempt failed");
                }
                None
            })
        }));
        assert!(outcome.is_err());
        assert_eq!(list.waiters(), 0);
        assert!(!flag.0.load(Ordering::Relaxed), "the flag is lowered again");
    }

    #[test]
    #[cfg_attr(miri, ignore = "real threads sleeping on a condvar: slow under miri")]
    fn a_published_condition_wakes_a_blocked_thread() {
        let list = Arc::new(WaitList::new());
        let flag = Arc::new(AtomicFlag::new());
        let ready = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (list, flag, ready) = (list.clone(), flag.clone(), ready.clone());
            std::thread::spawn(move || {
                list.wait(&*flag, None, || ready.load(Ordering::Relaxed).then_some(()))
            })
        };
        while list.waiters() == 0 {
            std::thread::yield_now();
        }
        ready.store(true, Ordering::Relaxed);
        flag.notify_after_fence(&list);
        assert_eq!(waiter.join().unwrap(), Some(()));
        assert_eq!(list.waiters(), 0);
    }

    #[test]
    fn a_task_is_woken_once_per_wake_up_and_cancels_on_ready() {
        let list = WaitList::new();
        let flag = AtomicFlag::new();
        let counter = Arc::new(CountWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut registration = Registration::default();
        let mut ready = false;
        let poll = |ready: bool, registration: &mut Registration| {
            list.poll_wait(&flag, registration, &waker, || ready.then_some(1))
        };
        assert_eq!(poll(ready, &mut registration), Poll::Pending);
        assert!(flag.0.load(Ordering::Relaxed));
        // Nothing published: no wake-up. Published: one.
        flag.notify_after_fence(&WaitList::new());
        assert_eq!(counter.0.load(Ordering::Relaxed), 0);
        ready = true;
        flag.notify_after_fence(&list);
        assert_eq!(counter.0.load(Ordering::Relaxed), 1);
        // A second wake-up finds the waker taken.
        list.wake_all();
        assert_eq!(counter.0.load(Ordering::Relaxed), 1);
        assert_eq!(poll(ready, &mut registration), Poll::Ready(1));
        assert!(registration.entry.is_none());
        assert_eq!(list.waiters(), 0);
        assert!(!flag.0.load(Ordering::Relaxed));
    }

    #[test]
    fn a_cancelled_task_frees_its_entry_for_the_next() {
        let list = WaitList::new();
        let flag = AtomicFlag::new();
        let waker = Waker::from(Arc::new(CountWaker(AtomicUsize::new(0))));
        let mut first = Registration::default();
        assert!(
            list.poll_wait(&flag, &mut first, &waker, || None::<()>)
                .is_pending()
        );
        list.cancel(&flag, &mut first);
        let mut second = Registration::default();
        assert!(
            list.poll_wait(&flag, &mut second, &waker, || None::<()>)
                .is_pending()
        );
        assert_eq!(second.entry, Some(0), "the cancelled entry is reused");
        assert_eq!(list.waiters(), 1);
        list.cancel(&flag, &mut second);
        assert_eq!(list.waiters(), 0);
    }
}
