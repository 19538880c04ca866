//! Which process-table entries belong to a live attachment: one lock per entry, held by
//! the attachment through its own open file description of the segment file.
//!
//! An attachment opens the segment file itself (close-on-exec) and takes an
//! open-file-description lock (`F_OFD_SETLK`, write lock) on one byte per table entry it
//! owns: the first byte of the entry's 64-byte line. The kernel drops such a lock exactly
//! when the last reference to that open file description goes: every descriptor of it
//! closed (close-on-exec closes them at `exec`) and every mapping made through it gone.
//! So the lock lives as long as some process can still use the attachment, and no
//! longer, whatever happens to pids:
//!
//! * a process whose main thread exited while others run keeps its descriptors;
//! * a process in another pid namespace locks the same file (locks belong to the inode);
//! * a forked child shares the description: the lock stays until both are gone, which
//!   is conservative (the child can still read the parent's slots), and the child's
//!   drops are made harmless elsewhere (`fork_epoch`);
//! * `exec` closes the close-on-exec descriptor and unmaps the old program's memory;
//! * a process killed by any signal loses all of its references.
//!
//! A recoverer takes the same lock without waiting: success proves the owner is gone,
//! and, while held, keeps every other recoverer and attacher off that entry, so a
//! recoverer that dies mid-recovery releases the entry for the next one.
//!
//! Two threads of one process share a description's locks (locking a byte twice through
//! one description succeeds twice), so one attachment runs one recovery at a time (a
//! mutex in the attachment).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use super::entry::EntryLocks;
use crate::sync::{AtomicU64, Ordering};

/// Entry locks through one open file description of the segment file (Linux and
/// Android: `F_OFD_SETLK`).
#[derive(Debug)]
pub(crate) struct OfdLocks {
    file: File,
    /// File offset of entry 0's lock byte; entry `e` locks `first + 64 * e`.
    first: u64,
}

impl OfdLocks {
    /// Locks through `file`, which must be this attachment's own open of the segment
    /// (not shared with another attachment), opened read-write and close-on-exec.
    pub(crate) fn new(file: File, proc_table: usize) -> Self {
        Self {
            file,
            first: proc_table as u64,
        }
    }

    fn fcntl(&self, entry: u32, kind: libc::c_int) -> io::Result<bool> {
        let start = self.first + u64::from(entry) * super::layout::LINE as u64;
        lock_byte(&self.file, start, kind)
    }
}

/// Sets (`F_WRLCK`) or clears (`F_UNLCK`) an open-file-description lock on byte
/// `offset` of `file` without waiting: `Ok(false)` if another description holds it.
pub(crate) fn lock_byte(file: &File, offset: u64, kind: libc::c_int) -> io::Result<bool> {
    let start =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are a valid value.
    let mut lock: libc::flock = unsafe { core::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = start;
    lock.l_len = 1;
    // `l_pid` stays 0, as open-file-description locks require.
    // SAFETY: `F_OFD_SETLK` reads one `flock` through the pointer, which is valid for the
    // call; the descriptor is borrowed from `file`, open for the whole call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN | libc::EACCES) => Ok(false),
        _ => Err(err),
    }
}

impl EntryLocks for OfdLocks {
    fn try_lock(&self, entry: u32) -> io::Result<bool> {
        self.fcntl(entry, libc::F_WRLCK)
    }

    fn unlock(&self, entry: u32) {
        // Unlocking a byte we do not hold is a no-op; it cannot fail on a valid
        // descriptor and range, and the lock goes with the descriptor anyway.
        let _ = self.fcntl(entry, libc::F_UNLCK);
    }
}

/// Moves on in every child that `fork` makes (a `pthread_atfork` handler), so an
/// attachment can tell that it was inherited: the value differs from the one recorded
/// when it was made.
static FORK_EPOCH: AtomicU64 = AtomicU64::new(0);

extern "C" fn after_fork_in_child() {
    // Relaxed: the child runs one thread at this point; later loads in the child are
    // ordered after this store by program order.
    FORK_EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// The current fork epoch, with the handler that moves it installed (once per process).
pub(crate) fn fork_epoch() -> u64 {
    #[cfg(not(miri))]
    {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            // SAFETY: registers a handler that only does an atomic add (async-signal-
            // safe, allowed in a child of a multithreaded process); no other handler.
            let rc = unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
            // Only ENOMEM is possible; without the handler a forked child is not told
            // apart, as before this check existed, so the failure is not fatal.
            let _ = rc;
        });
    }
    // Relaxed: see the handler; a thread of this process sees its own process's value.
    FORK_EPOCH.load(Ordering::Relaxed)
}

/// Whether an attachment made at fork epoch `epoch` was inherited through `fork` (one
/// load: cheap enough for every drop). [`inherited_by`] also checks the pid.
#[inline]
pub(crate) fn forked_since(epoch: u64) -> bool {
    // Relaxed: as in `fork_epoch`.
    FORK_EPOCH.load(Ordering::Relaxed) != epoch
}

/// Whether the attachment made at `epoch` by process `pid` is not this process's: the
/// epoch catches every `fork` that runs the handlers, the pid (a system call, so only on
/// slow paths) any other.
pub(crate) fn inherited_by(epoch: u64, pid: u32) -> bool {
    forked_since(epoch) || std::process::id() != pid
}
