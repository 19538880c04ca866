//! Slot pools in shared memory: zero-copy events between processes on one machine.
//!
//! Behind the cargo feature `shm` (Linux and Android only). A [`ShmAllocator`] creates or opens a
//! *segment*, a file (usually on the `/dev/shm` tmpfs) that every attached process maps.
//! Events are copied into its slots once; any process turns a `u64` token into a handle
//! that reads the bytes in place.
//!
//! ```
//! use slotring::shm::{ShmAllocator, ShmOptions};
//! # #[cfg(not(miri))] { // miri: no file system, no mmap
//! # let dir = std::env::temp_dir().join(format!("slotring-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let path = dir.join("module-doc");
//! let writer = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true))?;
//! let ev = writer.allocate(b"tick", 1)?;
//! let token: u64 = ev.to_token(); // send it over a pipe, socket or any channel
//!
//! // In another process (here: a second attachment in this one):
//! let reader = ShmAllocator::open(&path)?;
//! let seen = reader.from_token(token)?;
//! assert_eq!(seen.payload(), b"tick"); // zero-copy read of the mapping
//! drop(ev); // the reader's handle keeps the slot alive
//! assert_eq!(seen.payload(), b"tick");
//! drop(seen);
//! assert_eq!(writer.stats().in_use(), 0);
//! # drop((writer, reader));
//! # std::fs::remove_dir_all(&dir)?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The segment
//!
//! The file starts with a header: the magic `b"SLOTRING"`, a format version, the size
//! classes (slot size and capacity of each), the offsets of every array and the total
//! size. Then come a process table, one 64-byte metadata line per slot (state word,
//! length, type) and the payload arrays, all 64-byte aligned. There are no free lists:
//! a slot is free when its state word says so, a process claims one with a
//! compare-exchange on that word (scanning its class from where the calling thread last
//! claimed), and the release that clears the last hold frees it in the same atomic
//! step. Nothing in the mapping is a pointer: handles store offsets and generations.
//!
//! [`ShmAllocator::open`] validates the header before it uses anything in it: magic,
//! version, the layout recomputed from the class list with checked arithmetic and
//! compared with every stored offset, and the file length (a truncated file is refused
//! before any byte past its end could be touched). Indices read from the mapping later
//! (lengths, token fields) are checked against the validated layout; a
//! corrupted segment yields [`ShmError::Corrupted`], never out-of-bounds access.
//!
//! # Holds and processes
//!
//! Each slot has one state word: `generation << 32 | process mask`. Bit `p` of the mask
//! is set while the process at entry `p` of the process table holds at least one handle
//! to the slot; how many handles it holds is counted in that process's own memory, so a
//! clone or drop inside a process only touches the process-local count. The first handle
//! a process takes sets its bit (one compare-exchange that also checks the generation),
//! the last one it drops clears it, and the clear of the last bit leaves the slot free
//! (claimable at once). So a clone in process B keeps the slot alive after process A
//! dropped its handle.
//!
//! A process that dies holding handles leaves its bits set. [`ShmAllocator::recover`]
//! (which every [`open`](ShmAllocator::open) also runs) finds table entries whose
//! attachment is gone and clears their bits, freeing the slots they held last. A
//! process's share of a slot is one bit, set or cleared in one atomic step, so recovery
//! releases exactly the holds the dead attachment had: never one twice, never one of a
//! live attachment. It is safe to run while other processes work.
//!
//! # Liveness: a lock the kernel ties to the attachment
//!
//! Whether an attachment is alive is not judged by its pid. Each attachment opens the
//! segment file itself (close-on-exec) and holds an open-file-description lock
//! (`F_OFD_SETLK`) on one byte of its process-table entry for its whole life. The
//! kernel releases that lock exactly when the last descriptor of that open file and the
//! last mapping made through it are gone, so:
//!
//! * a process whose main thread exited while other threads run (state `Z` in `/proc`)
//!   keeps its lock, and its holds;
//! * a process in another pid namespace (containers sharing `/dev/shm`) locks the same
//!   file: its pid, which means nothing here, is never consulted;
//! * a process that `exec`s loses the descriptor and the mapping, so its holds are
//!   recovered while the new program runs;
//! * a process killed by any signal loses its lock at once (`recover` needs no `wait`).
//!
//! A recoverer (or an attacher looking for a free entry) takes an entry's lock without
//! waiting: success proves the owner is gone, and holding it keeps every other
//! recoverer and attacher off that entry until it is done. A recoverer that dies midway
//! releases the lock too, and the next recovery redoes the entry (clearing is
//! idempotent). The owner word and an entry's bits are changed only under its lock.
//!
//! **Fork.** A forked child inherits the mapping, the descriptor (so the parent's lock
//! stays held while the child lives: conservative) and copies of the parent's handles.
//! The attachment records the fork epoch (moved on in every child by a
//! `pthread_atfork` handler) and the pid of its maker: in a child, dropping inherited
//! handles and attachments does nothing, and `allocate`, `from_token` and `recover`
//! return [`ShmError::Forked`]. An inherited handle stays readable only while the parent
//! holds the event; open the segment anew in the child (or `exec`). This holds for
//! children made by `fork()` or anything else that runs `pthread_atfork` handlers
//! (`posix_spawn`, `std::process::Command`). A child made by a raw `clone` system call
//! (unsafe code that bypasses the C library) is seen as inherited only by `recover` and
//! by the attachment's drop, which compare pids; its drops of inherited handles release
//! the parent's holds and its `allocate` is not refused, so such a child must
//! `mem::forget` what it inherited, or `exec`.
//!
//! Every atomic step of this protocol (the state-word transitions, the per-process
//! handle counts and the process-table entry protocol) lives in three small files that
//! `tests/loom_shm.rs` model-checks with loom: a last drop racing an upgrade in one
//! process, a reader process upgrading while the writer releases, recovery racing a
//! live upgrade, two processes releasing at once, two claimers racing for one slot,
//! two recoverers racing an attacher for a dead entry, a process dying while a
//! recoverer probes it. The kernel's lock is modelled as a mutex per entry. Real
//! processes (threads exiting, namespaces, `fork`, `exec`, `SIGKILL`) are exercised by
//! `tests/shm_liveness.rs`.
//!
//! # Guarantees, and what they rest on
//!
//! * **Trust model: cooperating processes of users you trust.** [`open`](ShmAllocator::open)
//!   refuses ([`ShmError::Untrusted`]) a symbolic link at the path (`O_NOFOLLOW`), a file
//!   owned by another user, and a file writable by other users or by its group, unless
//!   the caller names that group ([`ShmOpenOptions::shared_group`]). Every process that
//!   maps the segment runs this code. A live slot's payload is immutable from
//!   publication until its last hold is released, which makes the `&[u8]` a handle
//!   hands out sound. A malicious or buggy process with write access to the file can
//!   still change payload bytes under a reader (a data race), truncate the file (later
//!   accesses fault with `SIGBUS`) or forge state words; none of that can be prevented
//!   by a library in the same address range. What this module does guarantee is that
//!   it never follows an offset or index read from the mapping without checking it
//!   against the validated layout, and that a slot is never given to two claimers:
//!   claiming is one compare-exchange from "free" on the slot's state word.
//! * **Crashes leak nothing.** Every step that changes who owns a slot is one atomic
//!   instruction on its state word: a claim sets `CLAIMED | bit` of the claimer, the
//!   publication replaces it with the claimer's bit, and the clear of the last bit frees
//!   the slot. So a process killed at any instruction leaves each slot either free, or
//!   marked with its bit, which the recovery of its entry clears (giving back a slot it
//!   claimed but never published, while it copied the payload for example). Checked by
//!   a storm of `SIGKILL`s against four worker processes (`tests/shm_liveness.rs`).
//! * **Creation.** [`create`](ShmAllocator::create) builds the file without a name
//!   (`O_TMPFILE`) and links it complete, so a `create` killed midway leaves nothing
//!   behind. Where the file system cannot do that, it uses a hidden temporary name
//!   (`.<name>.<16 hex digits>.tmp`, a form reserved for slotring) under a creator lock,
//!   and the next `create` of that name in the directory removes this user's
//!   temporaries of that exact form on which no process holds any lock.
//! * **Tokens are names, not holds.** [`ShmPtr::to_token`] does not transfer anything:
//!   the sender keeps its handle until the receiver has turned the token into its own
//!   handle ([`ShmAllocator::from_token`]), e.g. until it acknowledges. A token whose slot
//!   was released meanwhile is refused ([`ShmError::StaleToken`]), as is a token of
//!   another segment: a 9-bit segment tag catches 511 of 512 of those, and the
//!   generation a token carries is XORed with a random 32-bit key of its segment, so the
//!   rest (a segment replaced at the same path, for example) decode to a random
//!   generation and name a live slot with probability about 2^-32.
//! * **Limits.** Linux and Android only (open-file-description locks). At most 31
//!   processes attached at once (one mask bit each; the 32nd bit marks claimed slots);
//!   up to 8 size classes of up to 2^20 slots and 16 MiB each. Generations are 32 bits,
//!   as in-process.

mod entry;
mod layout;
mod liveness;
mod local;
mod new_file;
mod process;
mod protocol;
mod segment;

use core::fmt;
use core::ops::Deref;
use core::ptr::NonNull;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use self::entry::EntryLocks;
use self::layout::{ClassSpec, HEADER_SIZE, Layout, MAX_PROCESSES, ShmToken};
use self::liveness::OfdLocks;
use self::local::{Acquired, LocalCount};
use self::segment::Segment;
use crate::allocator::DEFAULT_CAPACITIES;
use crate::event::PoolId;
use crate::sync::Arc;

/// Why a shared-memory operation failed.
///
/// ```
/// use slotring::shm::{ShmAllocator, ShmError, ShmOptions};
/// # #[cfg(not(miri))] { // miri: no file system, no mmap
/// # let path = std::env::temp_dir().join(format!("slotring-doc-error-{}", std::process::id()));
/// let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true))?;
/// let too_big = vec![0; shm.max_payload() + 1];
/// assert!(matches!(shm.allocate(&too_big, 1), Err(ShmError::TooLarge { .. })));
/// let ev = shm.allocate(b"x", 1)?;
/// let token = ev.to_token();
/// drop(ev);
/// assert!(matches!(shm.from_token(token), Err(ShmError::StaleToken)));
/// assert!(matches!(ShmAllocator::open(std::env::temp_dir()), Err(ShmError::Io(_))));
/// # drop(shm);
/// # std::fs::remove_file(&path)?;
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ShmError {
    /// Creating, opening or mapping the file failed.
    Io(io::Error),
    /// The file does not start with the slotring magic: not a segment (or not finished).
    NotASegment,
    /// The segment was written by another format version.
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The file is shorter than its header says the segment is.
    Truncated {
        /// The file's length.
        len: u64,
        /// The length needed.
        needed: u64,
    },
    /// The segment's header or state contradicts itself.
    Corrupted {
        /// What was found wrong.
        what: &'static str,
    },
    /// [`ShmAllocator::open_expecting`]: the segment has another layout than expected.
    LayoutMismatch,
    /// The [`ShmOptions`] describe no valid segment.
    InvalidOptions {
        /// What is wrong with them.
        what: &'static str,
    },
    /// The payload is larger than the largest slot.
    TooLarge {
        /// The payload length.
        len: usize,
        /// The largest slot size.
        max: usize,
    },
    /// Every slot that could hold a payload of this length is in use.
    Exhausted {
        /// The payload length.
        len: usize,
    },
    /// Every entry of the process table is taken by a live process.
    ProcessTableFull {
        /// The table's size.
        max: u32,
    },
    /// The token's slot was released (and perhaps reused) since the token was made.
    StaleToken,
    /// The token does not name a slot of this segment.
    ForeignToken,
    /// [`ShmAllocator::open`] refused a file that another local user could have made or
    /// can write: a symbolic link, a file owned by another user, or one writable by
    /// other users or (unless [`ShmOpenOptions::shared_group`] names its group) by its
    /// group.
    Untrusted {
        /// What is wrong with the file.
        reason: &'static str,
    },
    /// The attachment was inherited through `fork`: it belongs to the parent process.
    /// Open the segment anew in the child.
    Forked,
}

impl fmt::Display for ShmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShmError::Io(e) => write!(f, "shared-memory file: {e}"),
            ShmError::NotASegment => f.write_str("the file is not a slotring segment"),
            ShmError::UnsupportedVersion { found, supported } => write!(
                f,
                "segment format version {found} is not supported (this build reads {supported})"
            ),
            ShmError::Truncated { len, needed } => {
                write!(
                    f,
                    "the segment file is truncated: {len} bytes, {needed} needed"
                )
            }
            ShmError::Corrupted { what } => write!(f, "the segment is corrupted: {what}"),
            ShmError::LayoutMismatch => f.write_str(
                "the segment's size classes or process count differ from those expected",
            ),
            ShmError::InvalidOptions { what } => write!(f, "invalid segment options: {what}"),
            ShmError::TooLarge { len, max } => {
                write!(
                    f,
                    "payload of {len} bytes exceeds the largest slot ({max} bytes)"
                )
            }
            ShmError::Exhausted { len } => {
                write!(f, "no free slot can hold a payload of {len} bytes")
            }
            ShmError::ProcessTableFull { max } => {
                write!(
                    f,
                    "all {max} process-table entries are taken by live processes"
                )
            }
            ShmError::StaleToken => {
                f.write_str("the token's slot was released since the token was made")
            }
            ShmError::ForeignToken => f.write_str("the token does not name a slot of this segment"),
            ShmError::Untrusted { reason } => {
                write!(f, "refusing to open the segment file: {reason}")
            }
            ShmError::Forked => {
                f.write_str("the attachment belongs to the parent process (inherited through fork)")
            }
        }
    }
}

impl std::error::Error for ShmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ShmError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ShmError {
    fn from(e: io::Error) -> Self {
        ShmError::Io(e)
    }
}

/// How to build a segment: size classes, process-table size, and whether to replace an
/// existing file.
///
/// The default has the five in-process classes (64 B to 16 KiB, with
/// [`DEFAULT_CAPACITIES`] slots: about 1.2 MB of payload) and room for 31 processes.
///
/// ```
/// use slotring::shm::ShmOptions;
/// let options = ShmOptions::default()
///     .classes(&[(64, 4096), (1024, 256)])
///     .max_processes(8)
///     .replace_existing(true);
/// # let _ = options;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShmOptions {
    classes: Vec<(usize, usize)>,
    processes: usize,
    replace: bool,
    group: Option<u32>,
}

impl Default for ShmOptions {
    fn default() -> Self {
        Self {
            classes: PoolId::ALL
                .iter()
                .zip(DEFAULT_CAPACITIES)
                .map(|(p, n)| (p.max_size(), n))
                .collect(),
            processes: MAX_PROCESSES as usize,
            replace: false,
            group: None,
        }
    }
}

impl ShmOptions {
    /// The size classes as `(slot size in bytes, number of slots)`, slot sizes strictly
    /// increasing: 1 to 8 classes, slots of at most 16 MiB, at most 2^20 slots a class.
    /// A payload goes to the smallest class that fits and has a free slot.
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-classes-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().classes(&[(64, 100), (1024, 10)]).replace_existing(true))?;
    /// assert_eq!(shm.max_payload(), 1024);
    /// assert_eq!(shm.stats().capacity(), 100 + 10);
    /// let small = shm.allocate(&[0; 64], 1)?;  // the 64-byte class
    /// let large = shm.allocate(&[0; 65], 1)?;  // the next class that fits
    /// assert_eq!(shm.stats().classes[0].in_use, 1);
    /// assert_eq!(shm.stats().classes[1].in_use, 1);
    /// # drop((small, large));
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn classes(mut self, classes: &[(usize, usize)]) -> Self {
        self.classes = classes.to_vec();
        self
    }

    /// How many processes may be attached at once (1 to 31; default 31).
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-maxproc-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().classes(&[(64, 4)]).max_processes(2).replace_existing(true))?;
    /// let second = ShmAllocator::open(&path)?; // another attachment
    /// assert!(matches!(
    ///     ShmAllocator::open(&path),
    ///     Err(slotring::shm::ShmError::ProcessTableFull { max: 2 })
    /// ));
    /// # drop(second);
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn max_processes(mut self, processes: usize) -> Self {
        self.processes = processes;
        self
    }

    /// Whether [`ShmAllocator::create`] replaces an existing file at the path (default:
    /// no, it fails with an `AlreadyExists` I/O error). Processes still attached to the
    /// replaced segment keep using it; new ones open the new file.
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmError, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-replace-{}", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let options = ShmOptions::default().classes(&[(64, 4)]);
    /// let first = ShmAllocator::create(&path, options.clone())?;
    /// let again = ShmAllocator::create(&path, options.clone());
    /// assert!(matches!(again, Err(ShmError::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists));
    /// let second = ShmAllocator::create(&path, options.replace_existing(true))?;
    /// # drop((first, second));
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn replace_existing(mut self, replace: bool) -> Self {
        self.replace = replace;
        self
    }

    /// Creates the file for a group of users: group `gid`, mode 0660 (default: mode
    /// 0600, this user only). Processes of other users open it with
    /// [`ShmOpenOptions::shared_group`] naming the same group.
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOpenOptions, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-group-{}", std::process::id()));
    /// // SAFETY: `getegid` has no preconditions.
    /// let gid = unsafe { libc::getegid() };
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().shared_group(gid).replace_existing(true))?;
    /// // Group-writable: a plain open refuses it, an open naming the group accepts it.
    /// assert!(ShmAllocator::open(&path).is_err());
    /// let peer = ShmAllocator::open_with(&path, &ShmOpenOptions::default().shared_group(gid))?;
    /// # drop((peer, shm));
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn shared_group(mut self, gid: u32) -> Self {
        self.group = Some(gid);
        self
    }

    fn specs(&self) -> Result<(Vec<ClassSpec>, u32), ShmError> {
        let too_big = ShmError::InvalidOptions {
            what: "a slot size or capacity does not fit in 32 bits",
        };
        let specs = self
            .classes
            .iter()
            .map(|&(size, capacity)| {
                Ok(ClassSpec {
                    slot_size: u32::try_from(size).map_err(|_| ShmError::InvalidOptions {
                        what: "a slot size does not fit in 32 bits",
                    })?,
                    capacity: u32::try_from(capacity).map_err(|_| ShmError::InvalidOptions {
                        what: "a capacity does not fit in 32 bits",
                    })?,
                })
            })
            .collect::<Result<Vec<_>, ShmError>>()?;
        let processes = u32::try_from(self.processes).map_err(|_| too_big)?;
        Ok((specs, processes))
    }
}

/// Whom [`ShmAllocator::open_with`] trusts besides this user.
///
/// By default a segment file must be owned by the effective user and writable by
/// nobody else (mode 0600 or stricter: no group or other write bit), so another local
/// user cannot plant a segment at the path and rewrite live payloads.
///
/// ```
/// use slotring::shm::ShmOpenOptions;
/// let trusting_staff = ShmOpenOptions::default().shared_group(50);
/// # let _ = trusting_staff;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShmOpenOptions {
    group: Option<u32>,
}

impl ShmOpenOptions {
    /// Also accepts a file of group `gid` (any owner), writable by that group: every
    /// member of the group is trusted like this user. Files writable by other users are
    /// still refused.
    ///
    /// ```
    /// use slotring::shm::ShmOpenOptions;
    /// let options = ShmOpenOptions::default().shared_group(1000);
    /// # let _ = options;
    /// ```
    #[must_use]
    pub fn shared_group(mut self, gid: u32) -> Self {
        self.group = Some(gid);
        self
    }

    /// Refuses a file this user should not trust (see the type's docs).
    fn check(&self, meta: &std::fs::Metadata) -> Result<(), ShmError> {
        use std::os::unix::fs::MetadataExt;
        let untrusted = |reason| Err(ShmError::Untrusted { reason });
        let mode = meta.mode();
        let group_trusted = self.group == Some(meta.gid());
        if mode & 0o002 != 0 {
            return untrusted("the file is writable by every user");
        }
        // SAFETY: `geteuid` has no preconditions and cannot fail.
        if meta.uid() != unsafe { libc::geteuid() } && !group_trusted {
            return untrusted("the file is owned by another user");
        }
        if mode & 0o020 != 0 && !group_trusted {
            return untrusted("the file is writable by its group");
        }
        Ok(())
    }
}

/// What [`ShmAllocator::recover`] reclaimed.
///
/// ```
/// use slotring::shm::{ShmAllocator, ShmOptions};
/// # #[cfg(not(miri))] { // miri: no file system, no mmap
/// # let path = std::env::temp_dir().join(format!("slotring-doc-recovery-{}", std::process::id()));
/// let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true))?;
/// // Nobody died: nothing to reclaim. (tests/shm.rs kills real child processes.)
/// assert_eq!(shm.recover(), slotring::shm::RecoveryReport::default());
/// # drop(shm);
/// # std::fs::remove_file(&path)?;
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Dead processes whose table entries were reclaimed.
    pub processes: u32,
    /// Slot holds (one per dead process and slot) released.
    pub holds: u64,
    /// Slots freed because a dead process held them last (or had claimed them and not
    /// published them yet).
    pub slots_freed: u64,
}

/// Occupancy of one size class of a segment.
///
/// ```
/// use slotring::shm::{ShmAllocator, ShmOptions};
/// # #[cfg(not(miri))] { // miri: no file system, no mmap
/// # let path = std::env::temp_dir().join(format!("slotring-doc-classstats-{}", std::process::id()));
/// let shm = ShmAllocator::create(&path, ShmOptions::default().classes(&[(64, 8)]).replace_existing(true))?;
/// let _ev = shm.allocate(b"x", 1)?;
/// let xs = shm.stats().classes[0];
/// assert_eq!((xs.slot_size, xs.capacity, xs.in_use), (64, 8, 1));
/// # drop(shm);
/// # std::fs::remove_file(&path)?;
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShmClassStats {
    /// Payload bytes per slot.
    pub slot_size: usize,
    /// Number of slots.
    pub capacity: usize,
    /// Slots held by at least one process.
    pub in_use: usize,
}

/// A snapshot of a segment's occupancy ([`ShmAllocator::stats`]).
///
/// ```
/// use slotring::shm::{ShmAllocator, ShmOptions};
/// # #[cfg(not(miri))] { // miri: no file system, no mmap
/// # let path = std::env::temp_dir().join(format!("slotring-doc-stats-{}", std::process::id()));
/// let shm = ShmAllocator::create(&path, ShmOptions::default().classes(&[(64, 8), (256, 4)]).replace_existing(true))?;
/// let _ev = shm.allocate(b"x", 1)?;
/// let stats = shm.stats();
/// assert_eq!(stats.attached, 1);
/// assert_eq!(stats.classes.len(), 2);
/// assert_eq!((stats.in_use(), stats.capacity()), (1, 12));
/// # drop(shm);
/// # std::fs::remove_file(&path)?;
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShmStats {
    /// One entry per size class, smallest first.
    pub classes: Vec<ShmClassStats>,
    /// Process-table entries in use (attached processes, and dead ones not yet
    /// recovered).
    pub attached: u32,
}

impl ShmStats {
    /// Slots in use over all classes.
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-inuse-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true))?;
    /// let held: Vec<_> = (0..3).map(|i| shm.allocate(&[i; 100], 1)).collect::<Result<_, _>>()?;
    /// assert_eq!(shm.stats().in_use(), 3);
    /// drop(held);
    /// assert_eq!(shm.stats().in_use(), 0);
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn in_use(&self) -> usize {
        self.classes.iter().map(|c| c.in_use).sum()
    }

    /// Slots over all classes.
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-capacity-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().classes(&[(64, 5), (128, 7)]).replace_existing(true))?;
    /// assert_eq!(shm.stats().capacity(), 5 + 7);
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.classes.iter().map(|c| c.capacity).sum()
    }
}

thread_local! {
    /// Where this thread's next claim in each class starts scanning (next fit: one past
    /// its last claim), so threads that allocate keep to their own stretch of slots
    /// instead of meeting on one word.
    static SCAN_FROM: [core::cell::Cell<u32>; layout::MAX_CLASSES] =
        const { [const { core::cell::Cell::new(0) }; layout::MAX_CLASSES] };
}

/// The memory a segment lives in; unmapped (or freed) after the attachment is released.
enum Memory {
    Mapped(#[allow(dead_code, reason = "kept only to unmap on drop")] memmap2::MmapRaw),
    #[cfg(test)]
    Heap(#[allow(dead_code, reason = "kept only to free on drop")] Arc<tests::HeapBlock>),
}

/// The attachment behind `this` as a pointer that carries the `Arc`'s provenance (so
/// strong counts can be adjusted through it).
fn attachment_ptr(this: &Arc<Inner>) -> NonNull<Inner> {
    // SAFETY: `Arc::as_ptr` never returns null.
    unsafe { NonNull::new_unchecked(Arc::as_ptr(this).cast_mut()) }
}

/// One attachment of this process to a segment.
struct Inner {
    seg: Segment,
    /// This attachment's process-table entry and its mask bit.
    entry: u32,
    bit: u32,
    /// The id of the process that made the attachment, and the fork epoch then: a
    /// forked child that inherited the attachment sees another epoch (or pid).
    pid: u32,
    epoch: u64,
    /// The segment tag carried in tokens.
    tag: u32,
    /// XORed into the generation a token carries (the segment id's upper half), so a
    /// token of another segment whose tag collides decodes to a random generation.
    key: u32,
    /// Handles this attachment holds, per global slot index.
    local: Box<[LocalCount]>,
    /// The entry locks, through this attachment's own open of the file: its entry's is
    /// held from `attach` to `drop` (its liveness, `liveness.rs`).
    locks: Box<dyn EntryLocks>,
    /// One recovery at a time through `locks` (threads share the description's locks).
    recovering: std::sync::Mutex<()>,
    path: Option<PathBuf>,
    _memory: Memory,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if liveness::inherited_by(self.epoch, self.pid) {
            // A forked child's copy: the entry, its holds and its lock are the parent's.
            return;
        }
        // Every handle is gone (each slot this process holds owns a strong count of us),
        // so no bit of ours is set; `detach` clears any that are anyway, frees the
        // entry and unlocks it.
        self.seg.detach(self.entry, &*self.locks);
    }
}

impl Inner {
    fn attach(
        seg: Segment,
        memory: Memory,
        locks: Box<dyn EntryLocks>,
        path: Option<PathBuf>,
    ) -> Result<Arc<Self>, ShmError> {
        let pid = process::current_pid();
        let epoch = liveness::fork_epoch();
        let Some((entry, _)) = seg.attach(&*locks, pid)? else {
            return Err(ShmError::ProcessTableFull {
                max: seg.layout().processes,
            });
        };
        let local = (0..seg.layout().slots).map(|_| LocalCount::new()).collect();
        let tag = (seg.segment_id() as u32) & ShmToken::TAG_MASK;
        let key = (seg.segment_id() >> 32) as u32;
        Ok(Arc::new(Self {
            seg,
            entry,
            bit: 1 << entry,
            pid,
            epoch,
            tag,
            key,
            local,
            locks,
            recovering: std::sync::Mutex::new(()),
            path,
            _memory: memory,
        }))
    }

    /// Copies `payload` into the claimed slot `global` of `class` and publishes it with
    /// one hold by this attachment.
    fn publish(
        this: &Arc<Self>,
        class: usize,
        global: u32,
        payload: &[u8],
        event_type: u32,
    ) -> Result<ShmPtr, ShmError> {
        let first = this.seg.layout().classes[class].first;
        let data = this.seg.payload(class, global - first);
        // SAFETY: we popped `global`, so it is ours alone until `activate` publishes it
        // (no handle, token holder or recoverer touches a free slot's payload); the
        // caller checked `payload.len() <= slot_size`, and the layout gives each slot
        // `stride >= slot_size` bytes inside the mapping.
        unsafe { core::ptr::copy_nonoverlapping(payload.as_ptr(), data.as_ptr(), payload.len()) };
        let len = payload.len() as u32;
        let mut generation = 0;
        this.local[global as usize]
            .first_of_claim(|| {
                generation = this.seg.activate(global, this.bit, len, event_type);
                // The process's hold on this slot keeps the attachment alive (`ShmPtr`).
                // SAFETY: the pointer comes from `Arc::as_ptr` of a live `Arc`.
                unsafe { Arc::increment_strong_count(Arc::as_ptr(this)) };
            })
            .map_err(|_| ShmError::Corrupted {
                what: "a free slot is counted as held by this process",
            })?;
        Ok(ShmPtr {
            inner: attachment_ptr(this),
            data,
            global,
            generation,
            len,
            class: class as u8,
        })
    }

    /// Takes a hold on `global` if it is live in `generation`.
    fn acquire(this: &Arc<Self>, global: u32, generation: u32) -> bool {
        let acquired = this.local[global as usize].acquire(|| {
            let joined = this.seg.join(global, generation, this.bit);
            if joined {
                // The process's new hold keeps the attachment alive.
                // SAFETY: the pointer comes from `Arc::as_ptr` of a live `Arc`.
                unsafe { Arc::increment_strong_count(Arc::as_ptr(this)) };
            }
            joined
        });
        match acquired {
            Acquired::First => true,
            Acquired::Refused => false,
            // We hold the slot now (under our bit), so its generation is fixed; it may
            // be another life than the token's.
            Acquired::More if this.seg.snapshot(global).0 == generation => true,
            Acquired::More => {
                if this.release(global) {
                    // SAFETY: the process's hold owned one strong count, and the caller's
                    // `Arc` keeps another, so this does not free `this`.
                    unsafe { Arc::decrement_strong_count(Arc::as_ptr(this)) };
                }
                false
            }
        }
    }

    /// Drops one of this attachment's holds on `global`. Returns `true` if it was the
    /// process's last: the caller then owns the strong count that hold kept on the
    /// attachment and must release it (after its last use of `self`).
    fn release(&self, global: u32) -> bool {
        // The clear that empties the mask frees the slot: there is nothing else to do.
        self.local[global as usize].release(|| {
            self.seg.leave(global, self.bit);
        })
    }
}

/// A process's attachment to a shared-memory segment: allocates events into it and
/// turns tokens from other processes into handles.
///
/// Cloning is cheap (one `Arc`); every clone is the same attachment. The attachment's
/// process-table entry is released when the last clone and the last handle are gone.
///
/// ```
/// use slotring::shm::{ShmAllocator, ShmError, ShmOptions};
/// # #[cfg(not(miri))] { // miri: no file system, no mmap
/// # let dir = std::env::temp_dir().join(format!("slotring-doc-alloc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let path = dir.join("seg");
/// let shm = ShmAllocator::create(&path, ShmOptions::default().classes(&[(64, 2)]))?;
/// let a = shm.allocate(b"one", 1)?;
/// let _b = shm.allocate(b"two", 2)?;
/// assert!(matches!(shm.allocate(b"three", 3), Err(ShmError::Exhausted { len: 5 })));
/// let token = a.to_token();
/// drop(a);
/// assert!(matches!(shm.from_token(token), Err(ShmError::StaleToken)));
/// # drop((shm, _b));
/// # std::fs::remove_dir_all(&dir)?;
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ShmAllocator {
    inner: Arc<Inner>,
}

impl fmt::Debug for ShmAllocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmAllocator")
            .field("path", &self.inner.path)
            .field("entry", &self.inner.entry)
            .field("size", &self.inner.seg.layout().total)
            .finish_non_exhaustive()
    }
}

/// A bare name (no directory) means a file in `/dev/shm` (or the temp directory where
/// there is none).
fn resolve(path: &Path) -> PathBuf {
    let bare = path.components().count() == 1
        && matches!(
            path.components().next(),
            Some(std::path::Component::Normal(_))
        );
    if !bare {
        return path.to_path_buf();
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.join(path)
    } else {
        std::env::temp_dir().join(path)
    }
}

/// Allocates the blocks of a fresh segment file, so that a full file system (a tmpfs
/// such as `/dev/shm` is often small in containers) fails `create` with an I/O error
/// instead of raising `SIGBUS` when a process first touches a page of the mapping.
#[cfg(target_os = "linux")]
fn reserve(file: &File, len: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::FileTooLarge))?;
    // SAFETY: `posix_fallocate` takes a descriptor and two integers and touches no
    // memory of ours; the descriptor is borrowed from `file`, open for writing.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        // A file system that cannot preallocate: the file stays sparse, as elsewhere.
        libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Elsewhere the file stays sparse: its pages are allocated when first touched.
#[cfg(not(target_os = "linux"))]
fn reserve(_file: &File, _len: usize) -> io::Result<()> {
    Ok(())
}

fn map(file: &File, len: usize) -> Result<(memmap2::MmapRaw, NonNull<u8>), ShmError> {
    let map = memmap2::MmapOptions::new().len(len).map_raw(file)?;
    let base = NonNull::new(map.as_mut_ptr()).ok_or(ShmError::Corrupted {
        what: "the mapping is at address 0",
    })?;
    Ok((map, base))
}

impl ShmAllocator {
    /// Creates a segment file at `path` (a bare name means `/dev/shm/<name>`) and
    /// attaches to it.
    ///
    /// The file is built without a name (`O_TMPFILE`; elsewhere under a hidden
    /// temporary name) and linked into place complete, so a concurrent
    /// [`open`](Self::open) sees either no file or a whole segment, and a `create`
    /// killed midway leaves nothing behind (module docs, *Creation*). Its blocks are
    /// allocated up front (`posix_fallocate`), so a file system without room for the
    /// whole segment fails here with an I/O error (`StorageFull`) rather than with
    /// `SIGBUS` on a later access. It is created with mode 0600 (this user only; see
    /// [`ShmOptions::shared_group`]) and stays until removed (`std::fs::remove_file`);
    /// processes attached to it keep working after removal.
    ///
    /// # Errors
    ///
    /// [`ShmError::InvalidOptions`], or [`ShmError::Io`] (for example `AlreadyExists`
    /// without [`ShmOptions::replace_existing`]).
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-create-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true))?;
    /// assert_eq!(shm.path(), Some(path.as_path()));
    /// assert!(std::fs::metadata(&path)?.len() >= shm.segment_size() as u64);
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(path: impl AsRef<Path>, options: ShmOptions) -> Result<Self, ShmError> {
        let (specs, processes) = options.specs()?;
        let layout = Layout::compute(&specs, processes)
            .map_err(|layout::BadLayout(what)| ShmError::InvalidOptions { what })?;
        let path = resolve(path.as_ref());
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name().ok_or(ShmError::InvalidOptions {
            what: "the path has no file name",
        })?;
        new_file::sweep_stale(&dir, name);
        let mut new = new_file::NewFile::begin(&dir, name)?;
        let built = (|| {
            let file = new.file();
            if let Some(gid) = options.group {
                std::os::unix::fs::fchown(file, None, Some(gid))?;
                file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o660))?;
            }
            file.set_len(layout.total as u64)?;
            reserve(file, layout.total)?;
            let (map, base) = map(file, layout.total)?;
            // The mapping is of a file we just created and sized (zero-filled,
            // page-aligned, `total` bytes), which nobody else can open yet (no name, or
            // a hidden one); it outlives the segment (both move into one `Inner`, the
            // segment is detached in `Inner::drop` before the mapping field drops).
            // SAFETY: `Segment::create`'s contract: `base` is a fresh, exclusive,
            // zeroed mapping of `total` bytes that outlives the segment (above).
            let seg = unsafe {
                Segment::create(base, layout.total, &specs, processes, process::random_id())
            }?;
            new.publish(&dir, &path, options.replace)?;
            Ok::<_, ShmError>((seg, map))
        })();
        let (seg, map) = match built {
            Ok(v) => v,
            Err(e) => {
                new.abandon();
                return Err(e);
            }
        };
        let file = new.finish();
        let locks = Box::new(OfdLocks::new(file, seg.layout().proc_table));
        let inner = Inner::attach(seg, Memory::Mapped(map), locks, Some(path))?;
        Ok(Self { inner })
    }

    /// Opens and validates the segment at `path` (a bare name means `/dev/shm/<name>`),
    /// attaches to it, and recovers the holds of dead processes
    /// ([`recover`](Self::recover)). Only a file this user owns and nobody else can
    /// write is accepted ([`open_with`](Self::open_with) can trust a group too).
    ///
    /// # Errors
    ///
    /// [`ShmError::Untrusted`] (a symbolic link, a file of another user, or one that
    /// other users or its group can write: see [`ShmOpenOptions`]), [`ShmError::Io`],
    /// [`ShmError::NotASegment`], [`ShmError::UnsupportedVersion`],
    /// [`ShmError::Truncated`], [`ShmError::Corrupted`] (nothing in the file is used
    /// before it is validated), or [`ShmError::ProcessTableFull`].
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-open-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true))?;
    /// let other = ShmAllocator::open(&path)?; // what another process does
    /// let ev = other.allocate(b"from the other side", 3)?;
    /// assert_eq!(shm.from_token(ev.to_token())?.payload(), b"from the other side");
    /// let junk = path.with_extension("junk");
    /// std::fs::write(&junk, b"not a segment")?;
    /// assert!(ShmAllocator::open(&junk).is_err()); // refused before anything is used
    /// # std::fs::remove_file(&junk)?;
    /// # drop((ev, other));
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ShmError> {
        Self::open_with(path, &ShmOpenOptions::default())
    }

    /// [`open`](Self::open), trusting what `options` says besides this user (a shared
    /// group).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOpenOptions, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-openwith-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true))?;
    /// // A file of this user, mode 0600: trusted with or without a shared group.
    /// let again = ShmAllocator::open_with(&path, &ShmOpenOptions::default().shared_group(0))?;
    /// # drop((again, shm));
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_with(path: impl AsRef<Path>, options: &ShmOpenOptions) -> Result<Self, ShmError> {
        let path = resolve(path.as_ref());
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            // A symbolic link at the path is refused, not followed.
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(ShmError::Untrusted {
                    reason: "the path is a symbolic link",
                });
            }
            Err(e) => return Err(e.into()),
        };
        // `fstat` of the descriptor we map: no race with a file swapped at the path.
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(ShmError::NotASegment);
        }
        options.check(&meta)?;
        let len = meta.len();
        if len < HEADER_SIZE as u64 {
            return Err(ShmError::Truncated {
                len,
                needed: HEADER_SIZE as u64,
            });
        }
        let len = usize::try_from(len).map_err(|_| ShmError::Corrupted {
            what: "the file is larger than the address space",
        })?;
        let (map, base) = map(&file, len)?;
        // SAFETY: the mapping covers the file's `len` bytes, is page-aligned and lives as
        // long as the segment (both move into one `Inner`); every process accesses the
        // header and metadata atomically (trust model in the module docs).
        let seg = unsafe { Segment::open(base, len) }?;
        // The descriptor stays open (close-on-exec, as std opens every file) for the
        // attachment's life: its entry lock is its liveness.
        let locks = Box::new(OfdLocks::new(file, seg.layout().proc_table));
        let inner = Inner::attach(seg, Memory::Mapped(map), locks, Some(path))?;
        let shm = Self { inner };
        shm.recover();
        Ok(shm)
    }

    /// Like [`open`](Self::open), but also checks that the segment has the size classes
    /// and process count of `expected` (not its `replace_existing` flag).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), plus [`ShmError::LayoutMismatch`].
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-expect-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().classes(&[(64, 8)]).replace_existing(true))?;
    /// let same = ShmAllocator::open_expecting(&path, &ShmOptions::default().classes(&[(64, 8)]))?;
    /// let other = ShmAllocator::open_expecting(&path, &ShmOptions::default().classes(&[(64, 9)]));
    /// assert!(matches!(other, Err(slotring::shm::ShmError::LayoutMismatch)));
    /// # drop(same);
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_expecting(path: impl AsRef<Path>, expected: &ShmOptions) -> Result<Self, ShmError> {
        let (specs, processes) = expected.specs()?;
        let want = Layout::compute(&specs, processes)
            .map_err(|layout::BadLayout(what)| ShmError::InvalidOptions { what })?;
        let shm = Self::open(path)?;
        if *shm.inner.seg.layout() != want {
            return Err(ShmError::LayoutMismatch);
        }
        Ok(shm)
    }

    /// Copies `payload` into a free slot of the smallest class that fits and has one,
    /// and returns the only handle to it. Finding a slot scans the class from one past
    /// the calling thread's last claim; a class with no free slot costs a scan of all
    /// its state words before the next class (or [`ShmError::Exhausted`]).
    ///
    /// # Errors
    ///
    /// [`ShmError::TooLarge`], [`ShmError::Exhausted`], [`ShmError::Forked`] in a forked
    /// child, or [`ShmError::Corrupted`] if the slot's state contradicts this
    /// attachment's counts.
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-allocate-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true))?;
    /// let ev = shm.allocate(b"copied in once", 4)?;
    /// assert_eq!((ev.payload(), ev.event_type()), (&b"copied in once"[..], 4));
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allocate(&self, payload: &[u8], event_type: u32) -> Result<ShmPtr, ShmError> {
        if liveness::forked_since(self.inner.epoch) {
            return Err(ShmError::Forked);
        }
        let classes = &self.inner.seg.layout().classes;
        let len = payload.len();
        let Some(first) = classes.iter().position(|c| c.slot_size as usize >= len) else {
            return Err(ShmError::TooLarge {
                len,
                max: classes.last().map_or(0, |c| c.slot_size as usize),
            });
        };
        for class in first..classes.len() {
            let from = SCAN_FROM.with(|hints| hints[class].get());
            if let Some(global) = self.inner.seg.claim(class, self.inner.bit, from) {
                let next = global - classes[class].first + 1;
                SCAN_FROM.with(|hints| hints[class].set(next));
                return Inner::publish(&self.inner, class, global, payload, event_type);
            }
        }
        Err(ShmError::Exhausted { len })
    }

    /// Turns a token (from [`ShmPtr::to_token`], in any process attached to this
    /// segment) into a new handle, if the slot it names is still live in the token's
    /// generation.
    ///
    /// # Errors
    ///
    /// [`ShmError::StaleToken`] if the slot was released since, [`ShmError::ForeignToken`]
    /// if the token is not of this segment (a token of another segment whose 9-bit tag
    /// happens to equal this one's, one pair of segments in 512, is refused as
    /// `StaleToken` instead: its 32-bit key does not match), [`ShmError::Corrupted`] if
    /// the slot's length is out of range.
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-fromtoken-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true))?;
    /// let reader = ShmAllocator::open(&path)?;
    /// let ev = shm.allocate(b"hand-off", 1)?;
    /// let theirs = reader.from_token(ev.to_token())?; // a hold of its own
    /// drop(ev);
    /// assert_eq!(theirs.payload(), b"hand-off");
    /// assert!(reader.from_token(u64::MAX).is_err());   // not a slot of this segment
    /// # drop((theirs, reader));
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_token(&self, token: u64) -> Result<ShmPtr, ShmError> {
        let t = ShmToken::decode(token);
        let inner = &self.inner;
        if liveness::forked_since(inner.epoch) {
            return Err(ShmError::Forked);
        }
        let layout = inner.seg.layout();
        if t.tag != inner.tag {
            return Err(ShmError::ForeignToken);
        }
        let class = t.class as usize;
        let Some(c) = layout.classes.get(class) else {
            return Err(ShmError::ForeignToken);
        };
        if t.index >= c.capacity {
            return Err(ShmError::ForeignToken);
        }
        let global = c.first + t.index;
        let generation = t.generation ^ inner.key;
        if !Inner::acquire(inner, global, generation) {
            return Err(ShmError::StaleToken);
        }
        let (len, _) = inner.seg.len_and_type(global);
        if len > c.slot_size {
            if inner.release(global) {
                // SAFETY: the hold owned one strong count; `self` keeps another.
                unsafe { Arc::decrement_strong_count(Arc::as_ptr(inner)) };
            }
            return Err(ShmError::Corrupted {
                what: "a slot's length exceeds its slot size",
            });
        }
        Ok(ShmPtr {
            inner: attachment_ptr(inner),
            data: inner.seg.payload(class, t.index),
            global,
            generation,
            len,
            class: class as u8,
        })
    }

    /// Reclaims the holds of every attached process that no longer exists, returning the
    /// slots they held last (or claimed and never published). Safe to call at any time, from any
    /// process, concurrently with others; [`open`](Self::open) calls it too.
    ///
    /// An attachment counts as gone when its entry's lock can be taken (module docs,
    /// *Liveness*): after its process died (whatever the signal, no `wait` needed),
    /// `exec`ed or dropped it; never while any thread of it runs, whatever its pid
    /// namespace. In a forked child that inherited the attachment this does nothing and
    /// reports nothing (the locks are the parent's).
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-recover-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true))?;
    /// let report = shm.recover(); // safe to call any time, from any attached process
    /// assert_eq!(report.slots_freed, 0);
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recover(&self) -> RecoveryReport {
        let inner = &self.inner;
        if liveness::inherited_by(inner.epoch, inner.pid) {
            // The locks are the parent's: through them every entry would look dead.
            return RecoveryReport::default();
        }
        let _one_at_a_time = inner
            .recovering
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let r = inner.seg.recover(inner.entry, &*inner.locks);
        RecoveryReport {
            processes: r.processes,
            holds: r.holds,
            slots_freed: r.slots_freed,
        }
    }

    /// Occupancy per class (a snapshot; scans every slot's state word).
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-shmstats-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true))?;
    /// let ev = shm.allocate(b"x", 1)?;
    /// assert_eq!(shm.stats().in_use(), 1);
    /// drop(ev);
    /// assert_eq!(shm.stats().in_use(), 0);
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn stats(&self) -> ShmStats {
        let seg = &self.inner.seg;
        ShmStats {
            classes: seg
                .layout()
                .classes
                .iter()
                .zip(seg.in_use())
                .map(|(c, in_use)| ShmClassStats {
                    slot_size: c.slot_size as usize,
                    capacity: c.capacity as usize,
                    in_use: in_use as usize,
                })
                .collect(),
            attached: seg.attached(),
        }
    }

    /// The segment file's path.
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-path-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true))?;
    /// assert_eq!(ShmAllocator::open(&path)?.path(), Some(path.as_path()));
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The largest payload a slot can hold.
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-maxpayload-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().classes(&[(64, 4), (512, 4)]).replace_existing(true))?;
    /// assert_eq!(shm.max_payload(), 512);
    /// assert!(shm.allocate(&[0; 512], 1).is_ok());
    /// assert!(shm.allocate(&[0; 513], 1).is_err());
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn max_payload(&self) -> usize {
        self.inner
            .seg
            .layout()
            .classes
            .last()
            .map_or(0, |c| c.slot_size as usize)
    }

    /// The segment's size in bytes.
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-size-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().classes(&[(64, 4), (512, 4)]).replace_existing(true))?;
    /// // At least the payload arrays; the header and slot metadata come on top.
    /// assert!(shm.segment_size() > 64 * 4 + 512 * 4);
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn segment_size(&self) -> usize {
        self.inner.seg.layout().total
    }
}

/// A handle to an event in a shared-memory segment: the counterpart of
/// [`RingPtr<Event>`](crate::RingPtr) across processes.
///
/// Dereferences to the payload bytes, read in place in the mapping. Cloning counts one
/// more handle in this process; the slot stays live while any handle in any process
/// exists. Pass it to another process as a token ([`to_token`](Self::to_token)).
///
/// ```
/// use slotring::shm::{ShmAllocator, ShmOptions, ShmPtr};
/// # #[cfg(not(miri))] { // miri: no file system, no mmap
/// # let dir = std::env::temp_dir().join(format!("slotring-doc-ptr-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let path = dir.join("seg");
/// let shm = ShmAllocator::create(&path, ShmOptions::default())?;
/// let ev = shm.allocate(b"hello", 7)?;
/// let twin = ev.clone();
/// assert_eq!(ShmPtr::local_count(&ev), 2);
/// assert_eq!(ShmPtr::process_count(&ev), 1);
/// assert_eq!(&twin[..], b"hello");
/// assert_eq!(twin.event_type(), 7);
/// # drop((ev, twin, shm));
/// # std::fs::remove_dir_all(&dir)?;
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping the last handle frees the slot"]
pub struct ShmPtr {
    /// The attachment, kept alive by one strong count that this process's hold on the
    /// slot owns (taken on the process's first handle, released with its last), so
    /// cloning and dropping a handle touch no reference count but the slot's.
    inner: NonNull<Inner>,
    data: NonNull<u8>,
    global: u32,
    generation: u32,
    len: u32,
    class: u8,
}

// A handle's last drop in this process may drop the attachment on any thread, which is
// sound because `Inner` is `Send + Sync`, as for `Arc<Inner>`.
static_assertions::assert_impl_all!(Inner: Send, Sync);
// SAFETY: the handle gives `&[u8]` into bytes that are immutable while any hold exists,
// its counters are atomics, and the attachment it shares is `Send + Sync` (asserted
// above): it may move to any thread, like `Arc<[u8]>`.
unsafe impl Send for ShmPtr {}
// SAFETY: as for `Send`.
unsafe impl Sync for ShmPtr {}

impl ShmPtr {
    #[inline]
    fn inner(&self) -> &Inner {
        // SAFETY: the process's hold on our slot owns a strong count of the attachment
        // (field docs), and our handle keeps that hold.
        unsafe { self.inner.as_ref() }
    }

    /// The payload bytes.
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-payload-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true))?;
    /// let ev = shm.allocate(b"in the mapping", 1)?;
    /// assert_eq!(ev.payload(), b"in the mapping");
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        self
    }

    /// The event type given at allocation.
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-evtype-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true))?;
    /// assert_eq!(shm.allocate(b"", 12)?.event_type(), 12);
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn event_type(&self) -> u32 {
        self.inner().seg.len_and_type(self.global).1
    }

    /// A `u64` naming this event (class, slot, generation and a segment tag) for any
    /// process attached to the segment. It does not carry a hold: keep this handle until
    /// the receiver has called [`ShmAllocator::from_token`] (module docs).
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-totoken-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true))?;
    /// let ev = shm.allocate(b"x", 1)?;
    /// let token = ev.to_token();
    /// assert_eq!(ev.to_token(), token);             // the same while the event lives
    /// assert!(shm.from_token(token)?.payload() == b"x");
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn to_token(&self) -> u64 {
        let first = self.inner().seg.layout().classes[self.class as usize].first;
        ShmToken {
            generation: self.generation ^ self.inner().key,
            tag: self.inner().tag,
            class: u32::from(self.class),
            index: self.global - first,
        }
        .encode()
    }

    /// The slot's generation: it changes every time the slot is reused.
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-generation-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().classes(&[(64, 1)]).replace_existing(true))?;
    /// use slotring::shm::ShmPtr;
    /// let first = ShmPtr::generation(&shm.allocate(b"a", 1)?);
    /// let second = ShmPtr::generation(&shm.allocate(b"b", 1)?); // the same slot, reused
    /// assert_ne!(first, second);
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn generation(this: &Self) -> u32 {
        this.generation
    }

    /// Handles to this event in this process (a snapshot).
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-local-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true))?;
    /// use slotring::shm::ShmPtr;
    /// let ev = shm.allocate(b"x", 1)?;
    /// let twin = ev.clone();
    /// assert_eq!(ShmPtr::local_count(&ev), 2);
    /// drop(twin);
    /// assert_eq!(ShmPtr::local_count(&ev), 1);
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn local_count(this: &Self) -> usize {
        // Relaxed: introspection, like `Arc::strong_count`.
        this.inner().local[this.global as usize].get() as usize
    }

    /// Processes holding this event (a snapshot).
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-proc-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true))?;
    /// use slotring::shm::ShmPtr;
    /// let ev = shm.allocate(b"x", 1)?;
    /// assert_eq!(ShmPtr::process_count(&ev), 1);
    /// let other = ShmAllocator::open(&path)?;        // counts as another process
    /// let theirs = other.from_token(ev.to_token())?;
    /// assert_eq!(ShmPtr::process_count(&ev), 2);
    /// drop((theirs, other));
    /// assert_eq!(ShmPtr::process_count(&ev), 1);
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn process_count(this: &Self) -> usize {
        this.inner().seg.snapshot(this.global).1.count_ones() as usize
    }

    /// Whether two handles name the same slot of the same segment mapping.
    ///
    /// ```
    /// use slotring::shm::{ShmAllocator, ShmOptions};
    /// # #[cfg(not(miri))] { // miri: no file system, no mmap
    /// # let path = std::env::temp_dir().join(format!("slotring-doc-ptreq-{}", std::process::id()));
    /// let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true))?;
    /// use slotring::shm::ShmPtr;
    /// let a = shm.allocate(b"x", 1)?;
    /// let b = shm.allocate(b"x", 1)?;
    /// assert!(ShmPtr::ptr_eq(&a, &a.clone()));
    /// assert!(!ShmPtr::ptr_eq(&a, &b));
    /// # drop(shm);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn ptr_eq(this: &Self, other: &Self) -> bool {
        this.data == other.data
    }
}

impl Clone for ShmPtr {
    #[inline]
    fn clone(&self) -> Self {
        self.inner().local[self.global as usize].clone_one();
        Self {
            inner: self.inner,
            data: self.data,
            global: self.global,
            generation: self.generation,
            len: self.len,
            class: self.class,
        }
    }
}

impl Drop for ShmPtr {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: our hold keeps the attachment alive until this call's end.
        let inner = unsafe { self.inner.as_ref() };
        if liveness::forked_since(inner.epoch) {
            // Inherited through `fork`: the hold is the parent's, not ours to release
            // (and the attachment's count stays, so the child never detaches it).
            return;
        }
        let last = inner.release(self.global);
        if last {
            // SAFETY: the process's hold owned this strong count (see the field docs);
            // the pointer came from `Arc::as_ptr`, and nothing of the attachment is used
            // after this line.
            unsafe { Arc::decrement_strong_count(self.inner.as_ptr()) };
        }
    }
}

impl Deref for ShmPtr {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: `data` points at this slot's payload inside the mapping, `len` is at
        // most the slot size (checked against the validated layout), and our hold keeps
        // the slot live, so by the slot protocol nobody writes these bytes until every
        // hold is gone (trust model: cooperating processes, module docs).
        unsafe { core::slice::from_raw_parts(self.data.as_ptr(), self.len as usize) }
    }
}

impl AsRef<[u8]> for ShmPtr {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for ShmPtr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmPtr")
            .field("slot", &self.global)
            .field("generation", &self.generation)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
