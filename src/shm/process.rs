//! Who is attached: this process's id and start time, whether another process is still
//! alive, and a random segment id.

use std::hash::{BuildHasher, Hasher};

use crate::sync::{AtomicU64, Ordering};

/// This process's id.
pub(crate) fn current_pid() -> u32 {
    std::process::id()
}

/// The start time of `pid` in clock ticks since boot, plus one (0 = unknown). Together
/// with the pid it names one process for its whole life: a reused pid has another start
/// time. Read from `/proc` on Linux; unknown elsewhere.
pub(crate) fn start_time(pid: u32) -> u64 {
    stat(pid).map_or(0, |(_, start)| start.saturating_add(1))
}

/// The state letter and start time of `pid` from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(u8, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain anything, so
    // fields are counted from the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // Field 3 is `state`; `starttime` is field 22, the 19th after it.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Whether process `pid` (which had start time `start`, 0 if unknown) still exists.
///
/// Conservative: it answers `true` whenever it cannot prove the process is gone. A
/// zombie (exited, not yet reaped by its parent) and a process whose pid now belongs to
/// a newer process (different start time) are gone.
pub(crate) fn is_alive(pid: u32, start: u64) -> bool {
    // 0 and values past `i32::MAX` name no single process (`kill` would signal a group).
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    // SAFETY: signal 0 sends nothing; `kill` only checks that the process exists and
    // that we may signal it. It has no memory-safety preconditions.
    let rc = unsafe { libc::kill(raw, 0) };
    if rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return false;
    }
    match stat(pid) {
        Some((b'Z' | b'X', _)) => false,
        Some((_, now)) => start == 0 || now.saturating_add(1) == start,
        // No /proc (not Linux, or hidden): `kill` said it exists.
        None => true,
    }
}

/// A random 64-bit id for a new segment (std's randomly keyed hasher, fed the time and
/// the pid, so no extra dependency is needed).
pub(crate) fn random_id() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(current_pid());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

/// A random 64-bit value that differs from call to call (std's randomly keyed hasher,
/// whose keys are random per process and move on with every use, fed a counter). Reads
/// no clock, so it also runs under miri's isolation.
pub(crate) fn nonce() -> u64 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    // Relaxed: only uniqueness within this process matters; no memory is published.
    h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    h.write_u32(current_pid());
    h.finish()
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_pid_zero_is_not() {
        let me = current_pid();
        assert!(is_alive(me, start_time(me)));
        assert!(is_alive(me, 0));
        assert!(!is_alive(0, 0));
        assert!(!is_alive(u32::MAX, 0));
        #[cfg(target_os = "linux")]
        assert!(
            !is_alive(me, start_time(me) + 1),
            "a reused pid must count as gone"
        );
    }

    #[test]
    fn a_reaped_child_is_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!is_alive(pid, 0));
    }
}
