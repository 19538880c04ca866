//! Creating a segment file that has no name until it is complete, so a `create` killed
//! midway leaves nothing behind.
//!
//! * Where the file system supports it (tmpfs and ext4 do), the file is made with
//!   `O_TMPFILE`: an inode in the directory with no name, freed by the kernel if the
//!   creator dies. It gets its name in one `linkat` once complete (through
//!   `/proc/self/fd`, which needs no privilege).
//! * Elsewhere (or without `/proc`), it is made under a hidden temporary name
//!   `.<name>.<random>.tmp` and moved into place complete.
//!
//! Either way the creator holds an open-file-description lock on byte 0 of the file
//! from its creation until it is published. A temporary name (the fallback's, or the
//! one `replace_existing` links before its `rename`), exactly `.<name>.<16 hex
//! digits>.tmp`, owned by this user, on which no process holds any `fcntl` or `flock`
//! lock, belongs to a creator that is gone: every `create` of `name` sweeps those first.
//! Names of that form in a segment's directory are reserved for slotring.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::liveness::lock_byte;
use super::process::random_id;

/// The byte of a file under construction that its creator keeps locked.
const CREATOR_BYTE: u64 = 0;

/// A segment file under construction.
#[derive(Debug)]
pub(crate) struct NewFile {
    file: File,
    /// The hidden name of the fallback; `None` for an unnamed (`O_TMPFILE`) file.
    named: Option<PathBuf>,
}

/// The hidden temporary name for `name` in `dir`: `.<name>.<16 hex digits>.tmp`, built
/// from the name's bytes (no lossy conversion, so two names never share temporaries).
fn temporary(dir: &Path, name: &OsStr) -> PathBuf {
    let mut file_name = Vec::with_capacity(name.len() + 22);
    file_name.push(b'.');
    file_name.extend_from_slice(name.as_bytes());
    file_name.extend_from_slice(format!(".{:016x}.tmp", random_id()).as_bytes());
    dir.join(OsStr::from_bytes(&file_name))
}

/// Whether `file_name` has exactly the form [`temporary`] gives `name`'s temporaries:
/// `.`, the name's bytes, `.`, 16 lowercase hex digits, `.tmp`. Nothing else is swept.
fn is_temporary_of(file_name: &[u8], name: &OsStr) -> bool {
    let Some(rest) = file_name.strip_prefix(b".") else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(name.as_bytes()) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(b".") else {
        return false;
    };
    let Some(hex) = rest.strip_suffix(b".tmp") else {
        return false;
    };
    hex.len() == 16 && hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether no process holds any lock on `file`: an open-file-description write lock on
/// the whole file (which conflicts with every other process's `fcntl` lock, OFD or
/// POSIX, on any byte: a creator's byte 0, an attachment's entry byte) and a `flock`
/// lock (which `fcntl` locks do not see), both taken without waiting. Both stay held
/// through our descriptor until it closes.
fn unlocked_by_everyone(file: &File) -> bool {
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are a valid value.
    let mut lock: libc::flock = unsafe { core::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    // `l_start` 0 and `l_len` 0: the whole file, however long; `l_pid` 0 as OFD locks
    // require.
    // SAFETY: `F_OFD_SETLK` reads one `flock` through the pointer, valid for the call; the
    // descriptor is borrowed from `file`, open for the whole call.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) } != 0 {
        return false;
    }
    // SAFETY: `flock` on a descriptor borrowed from `file`, open for the call.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Removes the temporary files of `name` in `dir` (exactly the names [`temporary`]
/// makes) that belong to this user and that no process holds a lock on (so their
/// creator is gone and nothing is attached to them). Best effort: errors are ignored.
pub(crate) fn sweep_stale(dir: &Path, name: &OsStr) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        if !is_temporary_of(file_name.as_bytes(), name) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        else {
            continue;
        };
        let Ok(meta) = file.metadata() else {
            continue;
        };
        // SAFETY: `geteuid` has no preconditions and cannot fail.
        let mine = meta.is_file() && meta.uid() == unsafe { libc::geteuid() };
        if mine && unlocked_by_everyone(&file) {
            // The creator is gone and nobody is attached. Remove the name only if it
            // still names the file we checked (the check went through our descriptor).
            let same = std::fs::symlink_metadata(&path)
                .is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino());
            if same {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

impl NewFile {
    /// A new, empty file in `dir` (mode 0600), locked by us until published.
    pub(crate) fn begin(dir: &Path, name: &OsStr) -> io::Result<Self> {
        let unnamed = if Path::new("/proc/self/fd").is_dir() {
            OpenOptions::new()
                .read(true)
                .write(true)
                .mode(0o600)
                .custom_flags(libc::O_TMPFILE)
                .open(dir)
                .ok()
        } else {
            None
        };
        let new = match unnamed {
            Some(file) => Self { file, named: None },
            None => {
                let tmp = temporary(dir, name);
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)?;
                Self {
                    file,
                    named: Some(tmp),
                }
            }
        };
        if let Err(e) = lock_byte(&new.file, CREATOR_BYTE, libc::F_WRLCK) {
            new.abandon();
            return Err(e);
        }
        Ok(new)
    }

    /// The file, to size, fill and map.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Gives the complete file the name `path`: fails with `AlreadyExists` if there is a
    /// file there, unless `replace` (then the old name moves to the new file at once).
    pub(crate) fn publish(&mut self, dir: &Path, path: &Path, replace: bool) -> io::Result<()> {
        let source = match &self.named {
            Some(tmp) => tmp.clone(),
            None if !replace => return self.link_unnamed(path),
            None => {
                // `rename` cannot take a descriptor: name it first, then move it.
                let tmp = temporary(dir, path.file_name().unwrap_or_default());
                self.link_unnamed(&tmp)?;
                self.named = Some(tmp.clone());
                tmp
            }
        };
        if replace {
            std::fs::rename(&source, path)?;
        } else {
            std::fs::hard_link(&source, path)?;
            std::fs::remove_file(&source)?;
        }
        self.named = None;
        Ok(())
    }

    fn link_unnamed(&self, path: &Path) -> io::Result<()> {
        let from = std::ffi::CString::new(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let to = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: both pointers are NUL-terminated strings that live for the call.
        let rc = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The published file, its creator lock released.
    pub(crate) fn finish(self) -> File {
        let _ = lock_byte(&self.file, CREATOR_BYTE, libc::F_UNLCK);
        self.file
    }

    /// Gives up: removes the temporary name, if any (an unnamed file goes with its
    /// descriptor).
    pub(crate) fn abandon(self) {
        if let Some(tmp) = &self.named {
            let _ = std::fs::remove_file(tmp);
        }
    }
}
