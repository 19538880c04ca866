//! This process's id, and a random segment id.

use std::hash::{BuildHasher, Hasher};

/// This process's id.
pub(crate) fn current_pid() -> u32 {
    std::process::id()
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
