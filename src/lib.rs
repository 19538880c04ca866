//! Pre-allocated, cache-line-aligned slot pools that hand out reference-counted,
//! generation-checked handles to events.
//!
//! # The problem
//!
//! Event-driven programs (actors, CRDT sync, trading, games, IoT) move many small,
//! short-lived byte events between threads. `malloc` per event costs tens of nanoseconds
//! and fragments memory; `Arc<Vec<u8>>` costs two allocations. slotring keeps fixed pools
//! of slots in five "T-shirt" sizes, copies each event into a slot of the right size
//! once, and hands out [`RingPtr`] handles: a clone is one atomic increment, every reader
//! sees the bytes in place, and the slot goes back to its pool when the last handle
//! drops. The memory footprint is fixed and known up front.
//!
//! # The model
//!
//! * **Pools and slots.** An [`EventAllocator`] owns five pools ([`PoolId`]): XS 64 B,
//!   S 256 B, M 1 KiB, L 4 KiB and XL 16 KiB slots (2000, 1000, 300, 60 and 15 of them by
//!   default, about 1.2 MB). Payloads go to the smallest class that fits
//!   ([`EventSize::for_len`]); a full class spills to the next larger one, then to the
//!   heap, which also takes payloads over 16 KiB. [`RingBuffer<SIZE, CAPACITY>`] is a
//!   single const-generic pool for any [`bytemuck::Pod`] value.
//! * **Handles.** [`RingPtr<T>`] is an 8-byte strong handle (like `Arc<T>`):
//!   `RingPtr<Event>` dereferences to the payload bytes, `RingPtr<T>` of a typed pool to
//!   the `T`. [`WeakRingPtr<T>`] upgrades only while the slot is in the same life.
//! * **Generations.** Every slot has a 32-bit generation that moves on each time it is
//!   reused. Weak handles and `u64` tokens ([`RingPtr::into_raw`]) carry the generation
//!   they were made in and are refused once it moved on: a stale handle is detected, never
//!   dereferenced.
//! * **Errors, not panics.** Exhaustion and oversize payloads are typed errors
//!   ([`AllocError`], [`PoolFull`], [`TokenError`]); a failed call leaves the caller's
//!   data with the caller (`RingBuffer::alloc` hands the value back).
//!
//! # Quick start
//!
//! ```
//! use slotring::{Event, EventAllocator, PoolId, RingPtr};
//!
//! let alloc = EventAllocator::new();
//! let ev: RingPtr<Event> = alloc.allocate(b"price=101.5", 7)?;
//! let (tx, rx) = crossbeam_channel::unbounded();
//! for _ in 0..3 {
//!     tx.send(ev.clone())?; // one atomic increment each, no copy of the bytes
//! }
//! drop((tx, ev));
//! let readers: Vec<_> = rx
//!     .into_iter()
//!     .map(|ev| std::thread::spawn(move || assert_eq!(ev.payload(), b"price=101.5")))
//!     .collect();
//! for r in readers {
//!     r.join().unwrap();
//! }
//! assert_eq!(alloc.stats().pool(PoolId::XS).in_use, 0); // the last drop freed the slot
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Typed pools for plain-old-data values:
//!
//! ```
//! use slotring::{RingBuffer, RingPtr};
//!
//! #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
//! #[repr(C)]
//! struct Tick { price: f64, qty: u32, venue: u32 }
//!
//! let pool = RingBuffer::<64, 1024>::new();
//! let tick: RingPtr<Tick> = pool.alloc(Tick { price: 101.5, qty: 3, venue: 1 })?;
//! assert_eq!(tick.qty, 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Modules
//!
//! * [`allocator`]: [`EventAllocator`] and its [builder](EventAllocatorBuilder).
//! * [`ring`]: the typed, const-generic [`RingBuffer`].
//! * [`broadcast`]: one writer, many readers over a ring of sequenced slots (the LMAX
//!   Disruptor pattern); lapped readers are told how many events they missed.
//! * [`ptr`]: [`RingPtr`], [`WeakRingPtr`], tokens.
//! * [`event`]: size classes and the by-value [`PooledEvent`].
//! * [`stats`]: [`PoolStats`], [`AllocatorStats`].
//! * [`builder`]: writing an event in place ([`EventAllocator::reserve`],
//!   [`EventAllocator::allocate_with`], [`EventBuilder`]): read a socket or file straight
//!   into a slot; with the `bytes` feature, events become `bytes::Bytes` without a copy.
//! * [`waiting`]: waiting for a slot of a full class, blocking with a timeout or as a
//!   `Future` ([`EventAllocator::allocate_timeout`], [`EventAllocator::allocate_async`]).
//! * [`error`]: the error types.
//! * [`synced`]: [`SyncedMemory`](synced::SyncedMemory), per-thread segments written and
//!   read in barrier-separated cycles (parallel simulations).
//! * `shm` (cargo feature `shm`, Linux and Android): the same pools in a file mapping shared by
//!   several processes, with `u64` tokens passed between them and recovery of the holds
//!   of processes that died.
//!
//! # How it works
//!
//! Each slot has a 64-byte header holding one state word,
//! `generation << 32 | escaped flag << 31 | strong count`, and a token word; the payload
//! lives in a separate zeroed, cache-line-aligned block. Free slots sit on a lock-free
//! Treiber stack whose head word carries an ABA tag, and each thread keeps a small
//! magazine of slots it freed itself.
//!
//! * **allocate**: take a slot from this thread's magazine (or pop the shared list, or
//!   take a never-used slot), copy the bytes, then one Release store of
//!   `(generation + 1, 1)` publishes payload and length.
//! * **clone**: one Relaxed `fetch_add` (aborting on overflow past 2^30, as `Arc` does).
//! * **drop**: a handle that sees itself as the only reference, with no weak handle or
//!   token ever made in this life (the *escaped* flag), releases with a plain store;
//!   otherwise one Release `fetch_sub`, and the last
//!   one takes an Acquire fence (so every reader's last access happens-before the next
//!   writer's first). The freed slot goes into this thread's magazine; a full magazine
//!   returns half of itself to the shared list as one chain, in one CAS.
//! * **upgrade**, **from_raw** and **clone_raw**: an Acquire compare-exchange that
//!   succeeds only if the generation matches and the slot is still live (for tokens, in
//!   the slot's raw-hold word, which `into_raw` fills with a Release CAS).
//! * **tokens**: `generation XOR pool key | tag | index`, with a random 32-bit key per
//!   pool, so another pool accepts a token with probability at most 2^-32. Heap events
//!   park their holds in an entry of their allocator's token table instead of a slot.
//!
//! So an allocate/drop pair on one thread executes no locked instruction at all, and no
//! hot path allocates, locks or makes a system call; allocation cost does not depend on
//! how full a pool is. Statistics are derived from the slots on demand, so the hot path
//! keeps no shared counters.
//!
//! All magazines together hold at most an eighth of a pool: a magazine takes a share of
//! the pool's budget (a quarter of it, at most 32 slots) when it binds, and a thread that
//! finds the budget spent releases straight to the shared list. So a pool refuses (or
//! spills) only when it is exhausted or at most an eighth of its slots are free in other
//! threads' magazines, and a pool with no live slot always serves, however many idle
//! threads have used it. Cached slots return when a magazine is rebound or its thread
//! exits (joining a thread waits for that; the end of a `thread::scope` does not).
//!
//! # Guarantees
//!
//! * A live slot is never handed out again, and never overwritten: a full pool refuses
//!   (or spills), it never wraps onto live data.
//! * Every cross-thread access is atomic or ordered by an Acquire/Release pair; the
//!   protocols are checked with loom models and the test suite runs under miri (Stacked
//!   and Tree Borrows).
//! * Handles keep their pool's storage alive: dropping an allocator while handles exist
//!   is safe, the memory is freed after the last handle (strong or weak) is gone.
//! * Handles are `Send`/`Sync` exactly when `T: Send + Sync`, like `Arc<T>`.
//! * Generations are 32 bits: a weak handle or token that sleeps through exactly 2^32
//!   reuses of its slot finds its generation again. It is refused unless that later life
//!   also made a weak handle or token; then it is accepted as a counted reference to the
//!   later event (wrong data, never unsound). Counts are 31 bits with an abort at 2^30.
//! * Every event an allocator makes can become a token (heap events included); a token
//!   of another pool or allocator is refused except with probability 2^-32; no token is
//!   0. `clone_raw` racing `from_raw` and the last drop is modelled with loom.
//! * After an allocator is dropped, its storage is freed when the last handle is gone
//!   and every thread that cached its slots has exited or rebound that magazine (a thread
//!   has eight); releases into a dropped allocator's pools bypass the magazines.
//!
//! # What changed from `rusted-ring`
//!
//! The library this one replaces raced on plain memory, overwrote live slots when its
//! ring wrapped, never checked its 16-bit generations, freed live slots after 256 clones
//! (8-bit counts), let safe code forge handles, declared padded structs `Pod`, let handles
//! outlive their allocator, scanned every slot on allocation, and built pools on the
//! stack. Each of those is a test here.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod allocator;
pub mod broadcast;
pub mod builder;
#[cfg(not(loom))]
mod cache;
pub mod error;
pub mod event;
#[cfg(all(feature = "ffi", not(loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "ffi")))]
pub mod ffi;
mod free_list;
mod heap;
#[allow(
    dead_code,
    reason = "the allocator's waits and broadcast reads use it next"
)]
pub(crate) mod notify;
mod pool;
pub mod ptr;
pub mod ring;
// Linux and Android only: liveness rests on open-file-description locks.
#[cfg(all(
    feature = "shm",
    any(target_os = "linux", target_os = "android"),
    not(loom)
))]
#[cfg_attr(
    docsrs,
    doc(cfg(all(feature = "shm", any(target_os = "linux", target_os = "android"))))
)]
pub mod shm;
mod slot;
pub mod stats;
pub(crate) mod sync;
pub mod synced;
mod token;
pub mod waiting;

pub use allocator::{DEFAULT_CAPACITIES, EventAllocator, EventAllocatorBuilder};
pub use builder::EventBuilder;
pub use error::{AllocError, CapacityError, PoolFull, TokenError};
pub use event::{Event, EventSize, PoolId, PooledEvent};
pub use ptr::{RingPtr, SlotContent, WeakRingPtr};
pub use ring::RingBuffer;
pub use stats::{AllocatorStats, HeapStats, PoolStats};
pub use waiting::{AllocateAsync, ReserveAsync};

/// The README's examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
