//! The process-table entry protocol: who may change an entry's owner word and clear its
//! holds, decided by the entry's lock (`liveness.rs`), never by a pid.
//!
//! This file depends only on `crate::sync` and `std::io`, so `tests/loom_shm.rs`
//! includes it with loom's atomics (and a loom-visible lock standing in for the
//! kernel's) and model-checks attach, detach and recovery racing.
//!
//! * The owner word is 0 (free) or non-zero (an attachment owns the entry). It and the
//!   entry's bits in slot state words are changed only by the holder of the entry's
//!   lock: the attachment during its life, then whoever takes the lock after it died.
//! * Taking the lock without waiting proves that nobody alive holds the entry: no live
//!   attachment, no recoverer at work. So a recoverer never clears a live process's bit,
//!   and an entry whose recoverer died (its lock went with it) is recovered again by the
//!   next; clearing holds is idempotent (one RMW per bit).

use std::io;

use crate::sync::{AtomicU64, Ordering};

/// Locks on process-table entries, as seen by one attachment.
pub(crate) trait EntryLocks: Send + Sync {
    /// Takes `entry`'s lock without waiting. `Ok(true)`: taken (nobody else holds it);
    /// `Ok(false)`: another attachment holds it. Taking a lock this attachment already
    /// holds succeeds.
    fn try_lock(&self, entry: u32) -> io::Result<bool>;
    /// Releases `entry`'s lock if this attachment holds it.
    fn unlock(&self, entry: u32);
}

/// Claims `entry` for an attachment whose owner word is `word` (non-zero) if its lock
/// can be taken, clearing a dead former owner's holds first (`clear`, run only then).
/// Returns `None` if the entry is held, else whether a dead owner was reclaimed.
pub(crate) fn claim(
    owner: &AtomicU64,
    locks: &dyn EntryLocks,
    entry: u32,
    word: u64,
    clear: impl FnOnce(),
) -> io::Result<Option<bool>> {
    if !locks.try_lock(entry)? {
        return Ok(None);
    }
    let reclaimed = reclaim(owner, clear);
    // Release: pairs with the Acquire load in `reclaim` of the entry's next lock holder,
    // so our bit changes are visible to whoever recovers or takes the entry after us.
    owner.store(word, Ordering::Release);
    Ok(Some(reclaimed))
}

/// Frees the caller's own `entry` (whose lock `locks` holds) after `clear` released its
/// holds, then unlocks it.
pub(crate) fn release(owner: &AtomicU64, locks: &dyn EntryLocks, entry: u32, clear: impl FnOnce()) {
    clear();
    // Release: as in `claim`.
    owner.store(0, Ordering::Release);
    locks.unlock(entry);
}

/// Recovers `entry` (not the caller's own) if an attachment owns it and is gone: takes
/// the lock, runs `clear`, frees the entry, unlocks. Returns whether it reclaimed.
/// A lock that cannot be taken, or an error asking, counts as alive.
pub(crate) fn recover(
    owner: &AtomicU64,
    locks: &dyn EntryLocks,
    entry: u32,
    clear: impl FnOnce(),
) -> bool {
    // Relaxed: a filter that spares a system call per free entry; `reclaim` rereads the
    // word under the lock.
    if owner.load(Ordering::Relaxed) == 0 {
        return false;
    }
    if !matches!(locks.try_lock(entry), Ok(true)) {
        return false;
    }
    let reclaimed = reclaim(owner, clear);
    locks.unlock(entry);
    reclaimed
}

/// With the entry's lock held: if an (gone) attachment owns it, `clear` its holds and
/// free the entry.
fn reclaim(owner: &AtomicU64, clear: impl FnOnce()) -> bool {
    // Acquire: pairs with the Release stores of the owner word by the entry's earlier
    // lock holders, so their bit changes happen-before ours. (A dead process's accesses
    // reached memory before the kernel released its lock, and our lock system call
    // comes after that release: the kernel's lock orders them, as a mutex would.)
    if owner.load(Ordering::Acquire) == 0 {
        return false;
    }
    clear();
    // Release: as in `claim`.
    owner.store(0, Ordering::Release);
    true
}
