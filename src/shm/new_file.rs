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
//! one `replace_existing` links before its `rename`) whose byte-0 lock is free belongs
//! to a creator that is gone: every `create` in the directory sweeps those first.

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

/// The hidden temporary name for `name` in `dir`.
fn temporary(dir: &Path, name: &OsStr) -> PathBuf {
    dir.join(format!(
        ".{}.{:016x}.tmp",
        name.to_string_lossy(),
        random_id()
    ))
}

/// Removes the temporary files of `name` in `dir` whose creator is gone (their byte-0
/// lock is free) and that belong to this user. Best effort: errors are ignored.
pub(crate) fn sweep_stale(dir: &Path, name: &OsStr) {
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let bytes = file_name.as_bytes();
        if !bytes.starts_with(prefix.as_bytes()) || !bytes.ends_with(b".tmp") {
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
        // SAFETY: `geteuid` has no preconditions and cannot fail.
        let mine = file
            .metadata()
            .is_ok_and(|m| m.is_file() && m.uid() == unsafe { libc::geteuid() });
        if mine && matches!(lock_byte(&file, CREATOR_BYTE, libc::F_WRLCK), Ok(true)) {
            // The creator is gone; the name is unique to it, so this is its file.
            let _ = std::fs::remove_file(&path);
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
