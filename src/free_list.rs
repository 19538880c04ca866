//! A lock-free stack of free slot indices (a Treiber stack over the slots' `next_free`
//! links) whose head word also carries the pool's *closed* bit.
//!
//! # Encoding of the head word
//!
//! ```text
//!  63            34    33     32   31                 0
//! ┌────────────────┬───────┬──────┬────────────────────┐
//! │  tag (30 bits) │waiting│closed│ top (1 + index, 0 = empty)
//! └────────────────┴───────┴──────┴────────────────────┘
//! ```
//!
//! * The tag changes on every successful push and pop, so a pop that read `top = i,
//!   next = j` cannot succeed after `i` was popped, reused and pushed again with another
//!   successor (the ABA problem). A stale pop would need exactly 2^30 other operations
//!   between its load and its CAS.
//! * The waiting bit is set while some thread or task waits for a slot of the pool
//!   (`EventAllocator::allocate_timeout` / `allocate_async`). A push reads it in the
//!   value its CAS replaces, so the release path learns whether to wake anybody without
//!   one more load, and the bit being in the very word both sides read-modify-write is
//!   what makes the wait handshake free of lost wake-ups (`notify.rs`, "A shared
//!   read-modify-write"). Pushes and pops keep it; only the close clears it (a pool is
//!   closed by its owner, which no waiter can outlive).
//! * Reading the `next_free` link of a slot that another thread popped meanwhile is a
//!   race on an *atomic*, so it is defined; its value is discarded when the CAS fails.
//! * The closed bit is set once, by the pool's owner, in the same CAS that takes the
//!   whole list. A release that sees it does not push: it counts its slot as returned
//!   instead. Because both decisions are made on this one word, every free slot is
//!   counted exactly once, by whoever last touched it.

use crate::sync::{AtomicU32, AtomicU64, Ordering};

const TOP_MASK: u64 = 0xFFFF_FFFF;
const CLOSED: u64 = 1 << 32;
const WAITING: u64 = 1 << 33;
const TAG_ONE: u64 = 1 << 34;

#[inline]
const fn top(head: u64) -> u32 {
    (head & TOP_MASK) as u32
}

#[inline]
const fn with_top(head: u64, top: u32) -> u64 {
    // Keep the closed and waiting bits, move the tag on (wrapping past bit 63 drops the
    // carry).
    ((head & !TOP_MASK).wrapping_add(TAG_ONE)) | top as u64
}

/// The free list of one pool. Indices are slot indices; links live in the slots.
///
/// `repr(transparent)`: exactly one atomic word.
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct FreeList {
    head: AtomicU64,
}

/// The list was closed by the pool's owner; the slot was not pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// Why [`FreeList::push_chain_unless_waiting`] did not push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The list is closed (as [`Closed`]).
    Closed,
    /// Someone waits for a slot.
    Waiting,
}

impl FreeList {
    /// An empty, open list.
    pub(crate) fn new() -> Self {
        Self {
            head: AtomicU64::new(0),
        }
    }

    /// An empty list that is closed from the start (a pool with no owner).
    pub(crate) fn new_closed() -> Self {
        Self {
            head: AtomicU64::new(CLOSED),
        }
    }

    /// Pushes a chain of free slots: `first` is the chain's first index, `last_link` the
    /// `next_free` link of its last slot (for a single slot, its own link). The caller
    /// owns every slot of the chain and has already linked them (1 + next index in each
    /// link but the last); the pushing CAS publishes those links. Fails without pushing if
    /// the list is closed.
    ///
    /// Only atomics are borrowed here: after the successful CAS the pool may be freed by
    /// another thread at any moment, and nothing of it is touched again.
    ///
    /// Returns whether the waiting bit was set in the value the push replaced (someone
    /// waits for a slot: the caller should wake them).
    #[inline]
    pub(crate) fn push_chain(&self, first: u32, last_link: &AtomicU32) -> Result<bool, Closed> {
        match self.push::<false>(first, last_link) {
            Ok(waiting) => Ok(waiting),
            Err(_) => Err(Closed),
        }
    }

    /// [`push_chain`](Self::push_chain), except that it does not push at all when the
    /// waiting bit is set (`Err(Refused::Waiting)`): the caller then prepares to wake
    /// the waiters (it takes a keepalive unit of the pool, which the push may let go
    /// otherwise) and pushes with `push_chain`. So the release path's fast case is the
    /// plain push, with the test of the bit folded into the test of the closed bit.
    #[inline]
    pub(crate) fn push_chain_unless_waiting(
        &self,
        first: u32,
        last_link: &AtomicU32,
    ) -> Result<(), Refused> {
        self.push::<true>(first, last_link).map(drop)
    }

    #[inline]
    fn push<const STOP_IF_WAITING: bool>(
        &self,
        first: u32,
        last_link: &AtomicU32,
    ) -> Result<bool, Refused> {
        let stop = if STOP_IF_WAITING {
            CLOSED | WAITING
        } else {
            CLOSED
        };
        // Relaxed: comparison value only; the CAS publishes.
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            if head & stop != 0 {
                return Err(if head & CLOSED != 0 {
                    Refused::Closed
                } else {
                    Refused::Waiting
                });
            }
            // Relaxed: published by the Release CAS below.
            last_link.store(top(head), Ordering::Relaxed);
            match self.head.compare_exchange_weak(
                head,
                with_top(head, first + 1),
                // Release: pairs with the Acquire in `pop` and `close`, so the links and
                // every access of the slots' last holders happen-before their next claim.
                // The waiting bit needs no Acquire here: `raise_waiting` is an RMW of
                // this word, so either it reads this push (then the waiter re-checks
                // after it) or this CAS reads the bit (see `notify.rs`).
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(head & WAITING != 0),
                Err(actual) => head = actual,
            }
        }
    }

    /// Sets the waiting bit (the first waiter of the pool registers).
    pub(crate) fn raise_waiting(&self) {
        // AcqRel RMW: the waiter's half of the handshake. Acquire: if a push came first
        // in this word's order, it happens-before the waiter's re-check (which pops).
        // Release: nothing needs it today; kept so the bit's setting is ordered after
        // the registration for any reader that acquires it.
        self.head.fetch_or(WAITING, Ordering::AcqRel);
    }

    /// Clears the waiting bit (the last waiter left).
    pub(crate) fn lower_waiting(&self) {
        // Relaxed RMW: a push that still sees the bit only wakes nobody; an RMW keeps
        // the release sequences of the pushes intact.
        self.head.fetch_and(!WAITING, Ordering::Relaxed);
    }

    /// Whether the owner has closed the list (a snapshot; only a hint for callers that
    /// fall back to `push`, which decides for certain).
    #[inline]
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn is_closed(&self) -> bool {
        // Relaxed: a hint; `push_chain` rechecks in its CAS.
        self.head.load(Ordering::Relaxed) & CLOSED != 0
    }

    /// Pops up to `out.len()` free indices in one step (at least one unless the list is
    /// empty) and returns how many; `links(i)` is slot `i`'s `next_free`.
    ///
    /// Walking several links before the CAS is safe for the same reason a single pop is:
    /// every change to the list moves the tag, so a successful CAS proves the list was
    /// untouched since the load, and the links of slots on the list are written only
    /// before they are pushed (by the pusher, which owned them).
    #[inline]
    pub(crate) fn pop_many<'a>(
        &self,
        links: impl Fn(u32) -> &'a AtomicU32,
        out: &mut [u32],
    ) -> usize {
        // Acquire: pairs with the Release pushes (all head changes are RMWs, so this
        // load synchronises with every earlier push), making the links valid.
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            let mut next = top(head);
            let mut taken = 0;
            while next != 0 && taken < out.len() {
                out[taken] = next - 1;
                // Relaxed: ordered by the Acquire load/CAS of `head`; a stale value is
                // discarded when the CAS fails.
                next = links(next - 1).load(Ordering::Relaxed);
                taken += 1;
            }
            if taken == 0 {
                return 0;
            }
            match self.head.compare_exchange_weak(
                head,
                with_top(head, next),
                // Acquire: as for the load above, for the slots we now own.
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return taken,
                Err(actual) => head = actual,
            }
        }
    }

    /// Pops one free index; `links(i)` is slot `i`'s `next_free`.
    #[inline]
    #[allow(
        dead_code,
        reason = "for pools without magazines (shared memory) and tests"
    )]
    pub(crate) fn pop<'a>(&self, links: impl Fn(u32) -> &'a AtomicU32) -> Option<u32> {
        let mut out = [0];
        (self.pop_many(links, &mut out) == 1).then_some(out[0])
    }

    /// Closes the list and takes every index on it: returns the former top (1 + index,
    /// 0 for none). The caller owns the whole chain and may walk its links.
    pub(crate) fn close(&self) -> u32 {
        // Acquire: pairs with the Release of every push, so the chain's links are
        // visible. One swap both closes the list and empties it; afterwards every push
        // fails, and nobody pops (only the owner allocates, and the owner is closing).
        let previous = self.head.swap(CLOSED, Ordering::Acquire);
        debug_assert_eq!(previous & CLOSED, 0, "closed twice");
        top(previous)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn links(n: usize) -> Vec<AtomicU32> {
        (0..n).map(|_| AtomicU32::new(0)).collect()
    }

    #[test]
    fn lifo_order_and_empty() {
        let links = links(4);
        let list = FreeList::new();
        for i in 0..4 {
            list.push_chain(i, &links[i as usize]).unwrap();
        }
        let got: Vec<_> = std::iter::from_fn(|| list.pop(|i| &links[i as usize])).collect();
        assert_eq!(got, vec![3, 2, 1, 0]);
        assert_eq!(list.pop(|i| &links[i as usize]), None);
    }

    #[test]
    fn close_takes_the_chain_and_refuses_pushes() {
        let links = links(3);
        let list = FreeList::new();
        list.push_chain(0, &links[0]).unwrap();
        list.push_chain(2, &links[2]).unwrap();
        let mut top = list.close();
        let mut chain = Vec::new();
        while top != 0 {
            chain.push(top - 1);
            top = links[(top - 1) as usize].load(Ordering::Relaxed);
        }
        assert_eq!(chain, vec![2, 0]);
        assert_eq!(list.push_chain(1, &links[1]), Err(Closed));
        assert_eq!(
            list.push_chain_unless_waiting(1, &links[1]),
            Err(Refused::Closed)
        );
        assert_eq!(list.pop(|i| &links[i as usize]), None);
    }

    #[test]
    fn pop_many_takes_from_the_top() {
        let links = links(5);
        let list = FreeList::new();
        for i in 0..5 {
            list.push_chain(i, &links[i as usize]).unwrap();
        }
        let mut out = [0; 3];
        assert_eq!(list.pop_many(|i| &links[i as usize], &mut out), 3);
        assert_eq!(out, [4, 3, 2]);
        let mut out = [0; 8];
        assert_eq!(list.pop_many(|i| &links[i as usize], &mut out), 2);
        assert_eq!(out[..2], [1, 0]);
        assert_eq!(list.pop_many(|i| &links[i as usize], &mut out), 0);
    }

    #[test]
    fn chains_push_in_one_step() {
        let links = links(3);
        let list = FreeList::new();
        // Chain 2 -> 0 -> 1, pushed at once.
        links[2].store(1, Ordering::Relaxed);
        links[0].store(2, Ordering::Relaxed);
        list.push_chain(2, &links[1]).unwrap();
        let got: Vec<_> = std::iter::from_fn(|| list.pop(|i| &links[i as usize])).collect();
        assert_eq!(got, vec![2, 0, 1]);
        assert!(!list.is_closed());
        list.close();
        assert!(list.is_closed());
    }

    #[test]
    fn the_waiting_bit_survives_pushes_and_pops_and_is_reported_by_pushes() {
        let links = links(2);
        let list = FreeList::new();
        assert_eq!(list.push_chain_unless_waiting(0, &links[0]), Ok(()));
        list.raise_waiting();
        assert_eq!(
            list.push_chain_unless_waiting(1, &links[1]),
            Err(Refused::Waiting)
        );
        assert_eq!(list.push_chain(1, &links[1]), Ok(true));
        assert_eq!(list.pop(|i| &links[i as usize]), Some(1));
        assert_ne!(list.head.load(Ordering::Relaxed) & WAITING, 0);
        list.lower_waiting();
        assert_eq!(list.push_chain(1, &links[1]), Ok(false));
        let got: Vec<_> = std::iter::from_fn(|| list.pop(|i| &links[i as usize])).collect();
        assert_eq!(got, vec![1, 0], "the bit never leaks into the top");
    }

    #[test]
    fn tag_moves_on_every_operation() {
        let links = links(1);
        let list = FreeList::new();
        let h0 = list.head.load(Ordering::Relaxed);
        list.push_chain(0, &links[0]).unwrap();
        list.pop(|i| &links[i as usize]).unwrap();
        let h2 = list.head.load(Ordering::Relaxed);
        assert_eq!(top(h0), top(h2));
        assert_ne!(h0, h2, "the tag must differ after push + pop");
    }
}
