//! loom models of the shared-memory slot protocol: the state-word transitions
//! (`src/shm/protocol.rs`), the per-attachment handle counts (`src/shm/local.rs`) and
//! the process-table entry protocol (`src/shm/entry.rs`, with a loom-visible lock table
//! standing in for the kernel's open-file-description locks), included here with loom's atomics behind `crate::sync`, so the models check the code
//! that runs on the mapping. (The mapping itself is raw memory loom cannot see; these
//! files hold every atomic step of the protocol.)
//!
//! A "process" is a mask bit plus its own `LocalCount`; a payload is a loom `UnsafeCell`,
//! so a read that is not ordered before a reuse of the slot is reported.
//!
//! Run: `RUSTFLAGS="--cfg loom -C debug-assertions=on" LOOM_MAX_PREEMPTIONS=2
//! cargo test --release --all-features --test loom_shm`
#![cfg(loom)]

/// The crate's `sync` facade as the included files expect it, with loom's types.
mod sync {
    pub(crate) use loom::hint::spin_loop;
    pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
    pub(crate) use loom::thread::yield_now;

    macro_rules! acquire_fence {
        ($atomic:expr) => {{
            let _ = &$atomic;
            $crate::sync::fence($crate::sync::Ordering::Acquire);
        }};
    }
    pub(crate) use acquire_fence;

    pub(crate) fn abort_on_overflow() -> ! {
        std::process::abort()
    }
}

#[allow(dead_code)]
#[path = "../src/shm/protocol.rs"]
mod protocol;

#[allow(dead_code)]
#[path = "../src/shm/local.rs"]
mod local;

#[allow(dead_code)]
#[path = "../src/shm/entry.rs"]
mod entry;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use loom::thread;

use local::{Acquired, LocalCount};
use protocol::{CLAIMED, abandon_claim, activate, claim, clear_bit, join, mask_of};

const A: u32 = 1 << 0;
const B: u32 = 1 << 1;
const DEAD: u32 = 1 << 2;

/// One slot: its state word, its payload, and how often it was freed.
struct Slot {
    state: AtomicU64,
    payload: UnsafeCell<u64>,
    frees: AtomicU32,
}

impl Slot {
    fn new(state: u64, payload: u64) -> Arc<Self> {
        Arc::new(Self {
            state: AtomicU64::new(state),
            payload: UnsafeCell::new(payload),
            frees: AtomicU32::new(0),
        })
    }

    /// The process whose clear emptied the mask reuses the slot: it writes the payload.
    fn free_and_reuse(&self) {
        self.frees.fetch_add(1, Ordering::Relaxed);
        // SAFETY (model): the freeing process owns the slot; loom reports any holder's
        // read that is not ordered before this write.
        self.payload.with_mut(|p| unsafe { *p = 99 });
    }

    fn read(&self) -> u64 {
        // SAFETY (model): the caller holds the slot.
        self.payload.with(|p| unsafe { *p })
    }

    /// Releases one handle of the process with `bit` and local count `local`.
    fn release(&self, local: &LocalCount, bit: u32) {
        local.release(|| {
            if clear_bit(&self.state, bit) == Some(true) {
                self.free_and_reuse();
            }
        });
    }
}

/// Two threads of process A: one drops A's last handle while the other turns a token of
/// the same life into a handle. Either the upgrade wins (A still holds the slot, with one
/// handle) or the slot is freed once and the upgrade is refused.
#[test]
fn last_local_drop_races_an_upgrade_in_the_same_process() {
    loom::model(|| {
        let slot = Slot::new(protocol::pack(1, A), 7);
        let local = Arc::new(LocalCount::new());
        local.first_of_claim(|| {}).unwrap();
        let (s2, l2) = (slot.clone(), local.clone());
        let upgrader = thread::spawn(move || {
            let got = l2.acquire(|| join(&s2.state, 1, A));
            if got != Acquired::Refused {
                assert_eq!(s2.read(), 7);
            }
            got
        });
        slot.release(&local, A);
        let got = upgrader.join().unwrap();
        let frees = slot.frees.load(Ordering::Relaxed);
        let mask = mask_of(slot.state.load(Ordering::Relaxed));
        match got {
            Acquired::Refused => assert_eq!((frees, mask, local.get()), (1, 0, 0)),
            _ => assert_eq!((frees, mask, local.get()), (0, A, 1)),
        }
    });
}

/// Process A claims a slot, writes it, publishes the token and drops its handle; process
/// B upgrades the token, reads, and drops. The slot is freed exactly once, by whichever
/// process held it last, and B's read never races the reuse.
#[test]
fn a_reader_process_upgrades_while_the_writer_releases() {
    loom::model(|| {
        let slot = Slot::new(0, 0);
        let mailbox = Arc::new(AtomicU64::new(0));
        let (s2, m2) = (slot.clone(), mailbox.clone());
        let reader = thread::spawn(move || {
            let local_b = LocalCount::new();
            // Acquire: pairs with the writer's Release store of the token.
            let token = m2.load(Ordering::Acquire);
            if token == 0 {
                return;
            }
            let generation = token as u32;
            if local_b.acquire(|| join(&s2.state, generation, B)) == Acquired::First {
                assert_eq!(s2.read(), 42, "the payload was not visible to the reader");
                s2.release(&local_b, B);
            }
        });
        let local_a = LocalCount::new();
        // SAFETY (model): the slot is free and ours (popped).
        slot.payload.with_mut(|p| unsafe { *p = 42 });
        let mut generation = 0;
        local_a
            .first_of_claim(|| generation = activate(&slot.state, A))
            .unwrap();
        // Release: the token may travel through any channel.
        mailbox.store(u64::from(generation), Ordering::Release);
        slot.release(&local_a, A);
        reader.join().unwrap();
        assert_eq!(slot.frees.load(Ordering::Relaxed), 1, "freed exactly once");
        assert_eq!(mask_of(slot.state.load(Ordering::Relaxed)), 0);
    });
}

/// Recovery clears a dead process's bit while a live process upgrades a token of the
/// slot: either the upgrade wins and the live process frees the slot when it lets go, or
/// recovery frees it and the upgrade is refused. Never both, never neither.
#[test]
fn recovery_races_a_live_upgrade() {
    loom::model(|| {
        let slot = Slot::new(protocol::pack(5, DEAD), 3);
        let s2 = slot.clone();
        let live = thread::spawn(move || {
            let local_b = LocalCount::new();
            if local_b.acquire(|| join(&s2.state, 5, B)) == Acquired::First {
                assert_eq!(s2.read(), 3);
                s2.release(&local_b, B);
            }
        });
        // The recoverer: the dead process's one bit, cleared with the same RMW.
        if clear_bit(&slot.state, DEAD) == Some(true) {
            slot.free_and_reuse();
        }
        // A second recoverer of the same entry finds nothing to do.
        assert_eq!(clear_bit(&slot.state, DEAD), None);
        live.join().unwrap();
        assert_eq!(slot.frees.load(Ordering::Relaxed), 1, "freed exactly once");
    });
}

/// Two processes drop their last handles at once: exactly one of them frees.
#[test]
fn two_processes_release_at_once() {
    loom::model(|| {
        let slot = Slot::new(protocol::pack(1, A | B), 1);
        let s2 = slot.clone();
        let other = thread::spawn(move || {
            let local_b = LocalCount::new();
            assert_eq!(local_b.acquire(|| true), Acquired::First);
            assert_eq!(s2.read(), 1);
            s2.release(&local_b, B);
        });
        let local_a = LocalCount::new();
        assert_eq!(local_a.acquire(|| true), Acquired::First);
        assert_eq!(slot.read(), 1);
        slot.release(&local_a, A);
        other.join().unwrap();
        assert_eq!(slot.frees.load(Ordering::Relaxed), 1);
    });
}

/// The kernel's entry locks as loom sees them: one holder id per entry. An "open file
/// description" is a `Locks` with its own id; dropping it (or `die`) releases every
/// lock it holds, as the last close does.
struct LockTable {
    holders: [AtomicU64; 2],
}

struct Locks {
    table: Arc<LockTable>,
    id: u64,
}

impl Locks {
    fn new(table: &Arc<LockTable>, id: u64) -> Self {
        Self {
            table: table.clone(),
            id,
        }
    }

    /// The process is gone: the kernel drops its locks.
    fn die(&self) {
        for h in &self.table.holders {
            // Release: the kernel's lock release orders the dead process's accesses
            // before the next taker's (a mutex's unlock).
            let _ = h.compare_exchange(self.id, 0, Ordering::Release, Ordering::Relaxed);
        }
    }
}

impl entry::EntryLocks for Locks {
    fn try_lock(&self, entry: u32) -> std::io::Result<bool> {
        let h = &self.table.holders[entry as usize];
        // Acquire: a mutex's lock, pairing with the Release of the last unlock or death.
        match h.compare_exchange(0, self.id, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => Ok(true),
            Err(holder) => Ok(holder == self.id),
        }
    }

    fn unlock(&self, entry: u32) {
        let h = &self.table.holders[entry as usize];
        // Release: as in `die`.
        let _ = h.compare_exchange(self.id, 0, Ordering::Release, Ordering::Relaxed);
    }
}

const ENTRY0: u32 = 1 << 0;
const LIVE: u32 = 1 << 1;

/// Entry 0 was owned by a process that died holding a slot (with a live process at
/// entry 1). Two recoverers and an attacher race for entry 0; the attacher then takes a
/// hold under entry 0's bit. The dead hold is cleared exactly once, the slot is never
/// freed (the live process holds it), and the attacher's new hold is never cleared.
#[test]
fn two_recoverers_race_an_attacher_for_a_dead_entry() {
    loom::model(|| {
        let table = Arc::new(LockTable {
            holders: [AtomicU64::new(0), AtomicU64::new(1)],
        });
        let owner = Arc::new(AtomicU64::new(7)); // the dead attachment's word
        let slot = Slot::new(protocol::pack(1, ENTRY0 | LIVE), 5);
        let cleared = Arc::new(AtomicU32::new(0));
        let clear = |slot: &Slot, cleared: &AtomicU32| {
            if let Some(last) = clear_bit(&slot.state, ENTRY0) {
                assert!(!last, "the live process's hold was lost");
                cleared.fetch_add(1, Ordering::Relaxed);
            }
        };
        let recoverers: Vec<_> = [10, 11]
            .into_iter()
            .map(|id| {
                let (t, o, s, c) = (table.clone(), owner.clone(), slot.clone(), cleared.clone());
                thread::spawn(move || {
                    let locks = Locks::new(&t, id);
                    entry::recover(&o, &locks, 0, || clear(&s, &c));
                })
            })
            .collect();
        let locks = Locks::new(&table, 20);
        let claimed = entry::claim(&owner, &locks, 0, 9, || clear(&slot, &cleared)).unwrap();
        let joined = claimed.is_some() && join(&slot.state, 1, ENTRY0);
        for r in recoverers {
            r.join().unwrap();
        }
        let mask = mask_of(slot.state.load(Ordering::Relaxed));
        if joined {
            assert_eq!(mask, ENTRY0 | LIVE, "a recoverer cleared the new hold");
            assert_eq!(owner.load(Ordering::Relaxed), 9);
        } else {
            assert_eq!(mask, LIVE);
        }
        assert_eq!(
            cleared.load(Ordering::Relaxed),
            1,
            "the dead hold cleared once"
        );
        assert_eq!(slot.frees.load(Ordering::Relaxed), 0);
        assert_eq!(slot.read(), 5);
    });
}

/// A process takes a hold, then dies, while a recoverer probes its entry. The recoverer
/// either finds it alive (and changes nothing) or, having taken its lock, sees and clears
/// the hold taken just before death; a later recovery finishes in the first case. The
/// slot is freed exactly once, after the dead process's read.
#[test]
fn a_process_dies_while_a_recoverer_probes() {
    loom::model(|| {
        let table = Arc::new(LockTable {
            holders: [AtomicU64::new(1), AtomicU64::new(0)],
        });
        let owner = Arc::new(AtomicU64::new(7));
        let slot = Slot::new(protocol::pack(3, LIVE), 4);
        let (t, s) = (table.clone(), slot.clone());
        let dying = thread::spawn(move || {
            let locks = Locks::new(&t, 1);
            // Refused if the live process already let go (the slot was freed).
            if join(&s.state, 3, ENTRY0) {
                assert_eq!(s.read(), 4);
            }
            locks.die();
        });
        let (t, o, s) = (table.clone(), owner.clone(), slot.clone());
        let recoverer = thread::spawn(move || {
            let locks = Locks::new(&t, 10);
            entry::recover(&o, &locks, 0, || {
                if clear_bit(&s.state, ENTRY0) == Some(true) {
                    s.free_and_reuse();
                }
            })
        });
        // The live process at entry 1 lets go of its hold.
        if clear_bit(&slot.state, LIVE) == Some(true) {
            slot.free_and_reuse();
        }
        dying.join().unwrap();
        let early = recoverer.join().unwrap();
        let locks = Locks::new(&table, 11);
        let late = entry::recover(&owner, &locks, 0, || {
            if clear_bit(&slot.state, ENTRY0) == Some(true) {
                slot.free_and_reuse();
            }
        });
        assert!(early ^ late, "recovered exactly once");
        assert_eq!(owner.load(Ordering::Relaxed), 0);
        assert_eq!(slot.frees.load(Ordering::Relaxed), 1, "freed exactly once");
    });
}

/// A slot handed to two claimers at once (an ABA of the free list) while a third
/// process tries a stale token of its last life: exactly one claim wins, the stale join
/// is refused, and only the winner writes the payload (loom reports a second writer).
#[test]
fn two_claimers_and_a_stale_join_race_for_one_free_slot() {
    loom::model(|| {
        let slot = Slot::new(protocol::pack(4, 0), 0);
        let wins = Arc::new(AtomicU32::new(0));
        let claimers: Vec<_> = [A, B]
            .into_iter()
            .map(|bit| {
                let (s, w) = (slot.clone(), wins.clone());
                thread::spawn(move || {
                    if claim(&s.state, bit) {
                        w.fetch_add(1, Ordering::Relaxed);
                        // SAFETY (model): the claim made the slot ours alone.
                        s.payload.with_mut(|p| unsafe { *p = u64::from(bit) });
                        activate(&s.state, bit);
                    }
                })
            })
            .collect();
        // A token of generation 4 (the slot's last life): never joins the claimed or
        // reused slot.
        assert!(!join(&slot.state, 4, DEAD));
        for c in claimers {
            c.join().unwrap();
        }
        assert_eq!(wins.load(Ordering::Relaxed), 1, "exactly one claimer");
        let state = slot.state.load(Ordering::Relaxed);
        assert_eq!(protocol::generation_of(state), 5);
        assert!(mask_of(state) == A || mask_of(state) == B);
        assert_eq!(u64::from(mask_of(state)), slot.read());
    });
}

/// The last holder frees a slot (clear, then the slot is pushed) while a claimer that
/// popped it early (the ABA) tries to claim: the claim succeeds only after the free,
/// and then the claimer's write is ordered after the holder's read.
#[test]
fn a_claim_races_the_last_release() {
    loom::model(|| {
        let slot = Slot::new(protocol::pack(2, A), 6);
        let s2 = slot.clone();
        let claimer = thread::spawn(move || {
            if claim(&s2.state, B) {
                // SAFETY (model): claimed; loom reports it if the holder's read below
                // is not ordered before this write.
                s2.payload.with_mut(|p| unsafe { *p = 1 });
                activate(&s2.state, B);
                true
            } else {
                false
            }
        });
        assert_eq!(slot.read(), 6);
        let last = clear_bit(&slot.state, A);
        assert_eq!(last, Some(true));
        let claimed = claimer.join().unwrap();
        let mask = mask_of(slot.state.load(Ordering::Relaxed));
        assert_eq!(mask, if claimed { B } else { 0 });
    });
}

/// A process claimed a slot and died before publishing it. Two recoverers of its entry
/// race (one after the other took over from a recoverer that died) while a live claimer
/// that popped the same slot after its return tries to claim it: the slot is given back
/// exactly once, and the live claim succeeds only after that, on a free slot.
#[test]
fn an_abandoned_claim_is_given_back_once() {
    loom::model(|| {
        let slot = Slot::new(protocol::pack(8, CLAIMED | DEAD), 0);
        let given_back = Arc::new(AtomicU32::new(0));
        let recoverers: Vec<_> = (0..2)
            .map(|_| {
                let (s, g) = (slot.clone(), given_back.clone());
                thread::spawn(move || {
                    if abandon_claim(&s.state, DEAD) {
                        g.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let mine = claim(&slot.state, A);
        if mine {
            // SAFETY (model): our claim made the slot ours alone.
            slot.payload.with_mut(|p| unsafe { *p = 1 });
            activate(&slot.state, A);
        }
        for r in recoverers {
            r.join().unwrap();
        }
        assert_eq!(given_back.load(Ordering::Relaxed), 1, "given back once");
        let state = slot.state.load(Ordering::Relaxed);
        if mine {
            assert_eq!(state, protocol::pack(9, A));
        } else {
            assert_eq!(state, protocol::pack(8, 0));
        }
    });
}
