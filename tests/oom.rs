//! Out of memory is an error, never an abort: `EventAllocator::builder().build()` and
//! heap-fallback events under an address-space limit (`ulimit -v`) return
//! `CapacityError::OutOfMemory` / `AllocError::OutOfMemory`. Each case runs in a child
//! process (this test binary again, under `sh -c "ulimit -v ..."`), so an abort fails
//! the test instead of killing the suite, whatever the machine's overcommit policy.

use std::process::Command;

use slotring::{AllocError, CapacityError, EventAllocator, PoolId};

/// Set in the child's environment: the case to run.
const CHILD: &str = "SLOTRING_OOM_CHILD";

/// Runs this binary's test `name` in a child limited to `kib` KiB of address space.
fn run_limited(name: &str, kib: u64) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {kib} && exec \"$0\" --exact {name} --test-threads 1 --nocapture"
        ))
        .arg(exe)
        .env(CHILD, name)
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("child ok"),
        "{name} under ulimit -v {kib}: {}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
}

fn is_child(name: &str) -> bool {
    std::env::var(CHILD).as_deref() == Ok(name)
}

#[test]
#[cfg_attr(miri, ignore = "runs child processes")]
fn huge_pools_are_out_of_memory() {
    if !is_child("huge_pools_are_out_of_memory") {
        return run_limited("huge_pools_are_out_of_memory", 2_000_000);
    }
    // 2^24 - 1 XL slots: 256 GiB of slots (and 1 GiB of headers).
    let err = EventAllocator::builder()
        .capacity(PoolId::XL, (1 << 24) - 1)
        .build()
        .unwrap_err();
    assert!(matches!(err, CapacityError::OutOfMemory { .. }), "{err:?}");
    assert!(err.to_string().contains("out of memory"));
    // Nothing leaked or locked: a normal allocator still builds and works.
    let alloc = EventAllocator::new();
    drop(alloc.allocate(b"fine", 1).unwrap());
    println!("child ok");
}

#[test]
#[cfg_attr(miri, ignore = "runs child processes")]
fn a_huge_heap_event_is_out_of_memory() {
    if !is_child("a_huge_heap_event_is_out_of_memory") {
        return run_limited("a_huge_heap_event_is_out_of_memory", 4_500_000);
    }
    let alloc = EventAllocator::new();
    // Lazily zeroed: costs address space, not memory.
    let payload = vec![0u8; 3 << 30];
    let err = alloc.allocate(&payload, 1).unwrap_err();
    assert_eq!(err, AllocError::OutOfMemory { len: 3 << 30 });
    drop(payload);
    assert_eq!(alloc.stats().heap.in_use, 0);
    let ev = alloc.allocate(&[1; 20_000], 2).unwrap();
    assert_eq!(ev.len(), 20_000);
    println!("child ok");
}

#[test]
fn too_many_slots_are_refused_before_allocating() {
    let err = EventAllocator::builder()
        .capacity(PoolId::XS, usize::MAX)
        .build()
        .unwrap_err();
    assert!(matches!(err, CapacityError::TooManySlots { .. }));
}
