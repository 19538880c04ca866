//! Loom models of the `SyncedMemory` cycle protocol. Run with
//! `RUSTFLAGS="--cfg loom -C debug-assertions=on" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_synced`.
//!
//! Segment accesses are checked for causality through per-segment loom cells (see
//! `synced/storage.rs`): a read of a segment that does not happen-after its write, or a
//! write that does not happen-after the last read of the previous use of the buffer,
//! fails the model. Blocking goes through loom's Mutex/Condvar, so a lost wake-up shows
//! as a deadlock.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use slotring::synced::{SyncError, SyncedMemory};

/// Worker `id` of `threads` runs `cycles` cycles, writing `10 * id + cycle`, and checks
/// that every view holds every worker's value of that very cycle.
fn worker(mem: &SyncedMemory<u32>, id: usize, threads: usize, cycles: u32) {
    let mut local = mem.local_handle(id).unwrap();
    for cycle in 0..cycles {
        let view = local
            .write_and_sync_read(&[10 * id as u32 + cycle])
            .unwrap();
        for j in 0..threads {
            assert_eq!(
                view.segment(j),
                Some(&[10 * j as u32 + cycle][..]),
                "worker {id} read a stale or torn segment {j} in cycle {cycle}"
            );
        }
    }
}

/// Three workers (two spawned plus the main thread), two cycles: every worker reads
/// every other worker's value of the current cycle, through the barrier's arrival chain
/// and its spin-then-block wait.
#[test]
fn three_workers_two_cycles_read_each_others_values() {
    loom::model(|| {
        let mem = Arc::new(SyncedMemory::<u32>::new(3, 1));
        let spawned: Vec<_> = (1..3)
            .map(|id| {
                let mem = Arc::clone(&mem);
                thread::spawn(move || worker(&mem, id, 3, 2))
            })
            .collect();
        worker(&mem, 0, 3, 2);
        for t in spawned {
            t.join().unwrap();
        }
    });
}

/// Two workers, three cycles: cycle 2 writes buffer 0 again, so a fast writer of cycle 2
/// races a slow reader of cycle 0 unless the barrier of cycle 1 orders them. The next
/// cycle is written in place while the current view is still read
/// (`write_next_with`).
#[test]
fn buffer_reuse_waits_for_the_readers_of_two_cycles_ago() {
    loom::model(|| {
        let mem = Arc::new(SyncedMemory::<u32>::new(2, 1));
        let run = |mem: &SyncedMemory<u32>, id: usize| {
            let mut local = mem.local_handle(id).unwrap();
            let mut view = local.write_and_sync_read(&[id as u32]).unwrap();
            for cycle in 1..3u32 {
                view = view
                    .write_next_with(|mine, prev| {
                        // Both values of the last cycle, summed, plus own id.
                        mine[0] = prev.iter().sum::<u32>() + id as u32;
                    })
                    .wait()
                    .unwrap();
                let expect = |j: u32| match cycle {
                    1 => 1 + j,     // (0 + 1) + j
                    _ => 2 + 1 + j, // (1 + 2) + j
                };
                assert_eq!(view.to_vec(), [expect(0), expect(1)], "cycle {cycle}");
            }
        };
        let other = {
            let mem = Arc::clone(&mem);
            thread::spawn(move || run(&mem, 1))
        };
        run(&mem, 0);
        other.join().unwrap();
    });
}

/// A worker leaves while the other waits (or is about to): the waiter gets
/// `WorkerLeft`, never a deadlock, whichever comes first.
#[test]
fn leaving_worker_wakes_the_waiter() {
    loom::model(|| {
        let mem = Arc::new(SyncedMemory::<u32>::new(2, 1));
        let leaver = {
            let mem = Arc::clone(&mem);
            thread::spawn(move || drop(mem.local_handle(1).unwrap()))
        };
        let result = match mem.local_handle(0) {
            Ok(mut local) => local.write_and_sync_read(&[0]).map(|v| v.to_vec()),
            Err(err) => Err(err),
        };
        assert_eq!(result, Err(SyncError::WorkerLeft { id: 1 }));
        leaver.join().unwrap();
    });
}
