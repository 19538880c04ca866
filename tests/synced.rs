//! Integration tests of `slotring::synced`: the handle rules, the cycle protocol under
//! real threads (including slow readers and fast writers), poisoning, and a Game of Life
//! run over four threads compared bit for bit with a single-threaded run.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use slotring::synced::{SyncError, SyncedMemory};

/// Fewer cycles under miri, which is slow.
const fn scaled(full: usize, miri: usize) -> usize {
    if cfg!(miri) { miri } else { full }
}

#[test]
fn handle_ids_are_checked_and_taken_once() {
    let mem = SyncedMemory::<u32>::new(3, 4);
    assert_eq!(
        mem.local_handle(3).unwrap_err(),
        SyncError::IdOutOfRange {
            id: 3,
            num_threads: 3
        }
    );
    let h1 = mem.local_handle(1).unwrap();
    assert_eq!(h1.id(), 1);
    assert_eq!(
        mem.local_handle(1).unwrap_err(),
        SyncError::IdTaken { id: 1 }
    );
    let _h0 = mem.local_handle(0).unwrap();
    drop(h1); // worker 1 leaves: poisoned
    assert_eq!(mem.poisoned(), Some(SyncError::WorkerLeft { id: 1 }));
    assert_eq!(
        mem.local_handle(2).unwrap_err(),
        SyncError::WorkerLeft { id: 1 }
    );
}

#[test]
fn too_long_writes_nothing_and_keeps_the_handle_usable() {
    let mem = SyncedMemory::<u8>::new(1, 3);
    let mut h = mem.local_handle(0).unwrap();
    assert_eq!(h.write_and_sync_read(&[9, 9]).unwrap().to_vec(), [9, 9, 0]);
    assert_eq!(
        h.write(&[1, 2, 3, 4]).unwrap_err(),
        SyncError::TooLong { len: 4, max: 3 }
    );
    assert_eq!(h.cycle(), 1, "a refused write must not count as a cycle");
    let view = h.write_and_sync_read(&[1, 2, 3]).unwrap();
    assert_eq!(view.own(), [1, 2, 3]);
    assert_eq!(view.cycle(), 1);
}

#[test]
fn short_writes_read_as_zero_padded_in_both_buffers() {
    let mem = SyncedMemory::<u16>::new(1, 4);
    let mut h = mem.local_handle(0).unwrap();
    for (values, expected) in [
        (&[1, 2, 3, 4][..], [1, 2, 3, 4]),
        (&[5, 6, 7][..], [5, 6, 7, 0]),
        (&[8][..], [8, 0, 0, 0]),
        (&[][..], [0, 0, 0, 0]),
        (&[1, 1][..], [1, 1, 0, 0]),
        (&[2][..], [2, 0, 0, 0]),
    ] {
        let view = h.write_and_sync_read(values).unwrap();
        assert_eq!(view.own(), expected, "after writing {values:?}");
    }
    // write_with marks the whole segment as filled; a short write after it clears it.
    h.write_with(|seg| seg.fill(7)).unwrap().wait().unwrap();
    h.write_and_sync_read(&[3]).unwrap();
    let view = h.write_and_sync_read(&[4]).unwrap();
    assert_eq!(view.own(), [4, 0, 0, 0]);
}

#[test]
fn dropped_written_leaves_the_handle_in_its_write_phase() {
    let mem = SyncedMemory::<u32>::new(1, 2);
    let mut h = mem.local_handle(0).unwrap();
    drop(h.write(&[1, 1]).unwrap()); // never waited
    assert_eq!(h.cycle(), 0);
    let view = h.write(&[2]).unwrap().wait().unwrap();
    assert_eq!(view.to_vec(), [2, 0]);
    assert_eq!(mem.cycles(), 1);
}

#[test]
fn segments_are_padded_to_128_bytes() {
    let mem = SyncedMemory::<u8>::new(4, 3);
    assert_eq!(mem.segment_stride(), 128);
    let big = SyncedMemory::<[u64; 3]>::new(1, 7); // 168 bytes -> 256
    assert_eq!(big.segment_stride(), 256);
    let mut h = big.local_handle(0).unwrap();
    let view = h.write_and_sync_read(&[[1; 3]; 7]).unwrap();
    assert_eq!(
        view.own().as_ptr() as usize % 128,
        0,
        "segments start on 128-byte lines"
    );
    thread::scope(|s| {
        let addrs: Vec<_> = (0..4)
            .map(|id| {
                let mem = &mem;
                s.spawn(move || {
                    let mut h = mem.local_handle(id).unwrap();
                    let view = h.write_and_sync_read(&[id as u8]).unwrap();
                    view.segments()
                        .map(|seg| seg.as_ptr() as usize)
                        .collect::<Vec<_>>()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        for a in &addrs {
            assert_eq!(a, &addrs[0], "every worker sees the same segments");
            for pair in a.windows(2) {
                assert!(
                    pair[1].abs_diff(pair[0]) >= 128,
                    "segments share a line: {a:?}"
                );
                assert_eq!(pair[0] % 128, 0);
            }
        }
    });
}

/// Every worker writes `(id, cycle)` values; every view must show exactly the values of
/// its own cycle from every worker, and keep showing them while the reader dawdles and
/// faster workers move on to write the next cycle.
#[test]
fn views_show_the_current_cycle_and_stay_stable_while_others_write_on() {
    const THREADS: usize = 4;
    const LEN: usize = 33;
    let cycles = scaled(400, 12) as u64;
    let mem = Arc::new(SyncedMemory::<[u64; 2]>::new(THREADS, LEN));
    let workers: Vec<_> = (0..THREADS)
        .map(|id| {
            let mem = Arc::clone(&mem);
            thread::spawn(move || {
                let mut local = mem.local_handle(id).unwrap();
                let mut checksum = 0u64;
                for cycle in 0..cycles {
                    let mine = [[id as u64, cycle]; LEN];
                    let view = local.write_and_sync_read(&mine).unwrap();
                    assert_eq!(view.cycle(), cycle);
                    let check = |when: &str| {
                        for (j, seg) in view.segments().enumerate() {
                            assert!(
                                seg.iter().all(|&v| v == [j as u64, cycle]),
                                "worker {id}, cycle {cycle}, {when}: segment {j} = {seg:?}"
                            );
                        }
                    };
                    check("at first read");
                    if (cycle + id as u64) % 7 == 0 {
                        // Let the others run ahead into the next write phase.
                        thread::sleep(Duration::from_micros(if cfg!(miri) { 1 } else { 200 }));
                    } else {
                        thread::yield_now();
                    }
                    check("after others moved on");
                    checksum += view.iter().map(|v| v[0] + v[1]).sum::<u64>();
                }
                checksum
            })
        })
        .collect();
    let expected: u64 = (0..cycles)
        .map(|c| {
            (0..THREADS as u64)
                .map(|j| (j + c) * LEN as u64)
                .sum::<u64>()
        })
        .sum();
    for w in workers {
        assert_eq!(w.join().unwrap(), expected);
    }
}

/// The low-level steps, and `write_next_with` computing the next segment from the
/// current view in place.
#[test]
fn write_next_with_pipelines_cycles_in_place() {
    const THREADS: usize = 3;
    let cycles = scaled(300, 10);
    let mem = SyncedMemory::<u64>::new(THREADS, 2);
    thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|id| {
                let mem = &mem;
                s.spawn(move || {
                    let mut local = mem.local_handle(id).unwrap();
                    let written = local.write(&[1, id as u64]).unwrap();
                    let mut view = written.wait().unwrap();
                    for _ in 0..cycles {
                        // Next value: sum of everyone's first value, plus own id.
                        view = view
                            .write_next_with(|mine, prev| {
                                let total: u64 = prev.segments().map(|s| s[0]).sum();
                                mine[0] = total % 1_000_003;
                                mine[1] = id as u64;
                            })
                            .wait()
                            .unwrap();
                    }
                    (view.to_vec(), view.cycle())
                })
            })
            .collect();
        let mut expected = 1u64;
        for _ in 0..cycles {
            expected = (expected * THREADS as u64) % 1_000_003;
        }
        for w in workers {
            let (state, cycle) = w.join().unwrap();
            assert_eq!(cycle, cycles as u64);
            assert_eq!(state, [expected, 0, expected, 1, expected, 2]);
        }
    });
}

#[test]
fn a_worker_that_leaves_wakes_the_waiting_ones_with_an_error() {
    let mem = SyncedMemory::<u8>::new(3, 1);
    thread::scope(|s| {
        let waiters: Vec<_> = (0..2)
            .map(|id| {
                let mem = &mem;
                s.spawn(move || {
                    let mut local = mem.local_handle(id).unwrap();
                    let first = local.write_and_sync_read(&[1]).map(|v| v.to_vec());
                    assert_eq!(first, Ok(vec![1, 1, 1]), "the first cycle completes");
                    // Worker 2 is gone now; this must fail, not hang.
                    let err = local.write_and_sync_read(&[2]).unwrap_err();
                    // The handle is spent: later calls fail at once with the same error.
                    assert_eq!(local.write(&[3]).unwrap_err(), err);
                    err
                })
            })
            .collect();
        let leaver = s.spawn(|| {
            let mut local = mem.local_handle(2).unwrap();
            local.write_and_sync_read(&[1]).unwrap();
            thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 20 }));
            // Returns early: the handle drops.
        });
        leaver.join().unwrap();
        for w in waiters {
            assert_eq!(w.join().unwrap(), SyncError::WorkerLeft { id: 2 });
        }
    });
    assert!(mem.poisoned().unwrap().is_poison());
}

#[test]
fn a_panicking_worker_is_reported_as_panicked() {
    let mem = Arc::new(SyncedMemory::<u32>::new(2, 1));
    let waiter = {
        let mem = Arc::clone(&mem);
        thread::spawn(move || {
            // The panic may come before this handle is taken: the same error then.
            let mut local = mem.local_handle(0)?;
            local.write_and_sync_read(&[0]).map(|v| v.to_vec())
        })
    };
    let panicker = {
        let mem = Arc::clone(&mem);
        thread::spawn(move || {
            let _local = mem.local_handle(1).unwrap();
            thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 10 }));
            panic!("worker 1 fails (expected by the test)");
        })
    };
    assert!(panicker.join().is_err());
    assert_eq!(
        waiter.join().unwrap().unwrap_err(),
        SyncError::WorkerPanicked { id: 1 }
    );
}

#[test]
fn stop_wakes_everyone_and_completed_cycles_stay_ok() {
    let mem = SyncedMemory::<u8>::new(3, 1);
    thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|id| {
                let mem = &mem;
                s.spawn(move || {
                    // `stop` may come before this handle is taken: the same error then.
                    let mut local = mem.local_handle(id)?;
                    local.write_and_sync_read(&[id as u8]).map(|v| v.to_vec())
                })
            })
            .collect();
        // Worker 2's handle is held here and never arrives; stop the run instead.
        let _absent = mem.local_handle(2).unwrap();
        while workers.iter().any(|w| !w.is_finished()) && mem.poisoned().is_none() {
            thread::sleep(Duration::from_millis(1));
            mem.stop();
        }
        for w in workers {
            assert_eq!(w.join().unwrap(), Err(SyncError::Stopped));
        }
    });
    assert_eq!(
        mem.poisoned(),
        Some(SyncError::Stopped),
        "the first cause is kept"
    );

    // A cycle that completed before the poison still yields its view.
    let mem = SyncedMemory::<u8>::new(2, 1);
    thread::scope(|s| {
        let a = s.spawn(|| {
            let mut local = mem.local_handle(0).unwrap();
            let view = local.write_and_sync_read(&[5]).unwrap();
            let state = view.to_vec();
            (state, local.write_and_sync_read(&[6]).map(|v| v.to_vec()))
        });
        let b = s.spawn(|| {
            let mut local = mem.local_handle(1).unwrap();
            let state = local.write_and_sync_read(&[7]).unwrap().to_vec();
            mem.stop();
            state
        });
        assert_eq!(b.join().unwrap(), [5, 7]);
        let (state, next) = a.join().unwrap();
        assert_eq!(state, [5, 7]);
        assert_eq!(next, Err(SyncError::Stopped));
    });
}

#[test]
fn reset_starts_over_with_zeroed_segments() {
    let mut mem = Arc::new(SyncedMemory::<u32>::new(2, 2));
    for round in 0..3u32 {
        let workers: Vec<_> = (0..2)
            .map(|id| {
                let mem = Arc::clone(&mem);
                thread::spawn(move || {
                    let mut local = mem.local_handle(id).unwrap();
                    let first = local.write_and_sync_read(&[round + 1]).unwrap().to_vec();
                    local.write_and_sync_read(&[9, 9]).unwrap();
                    first
                })
            })
            .collect();
        for w in workers {
            assert_eq!(w.join().unwrap(), [round + 1, 0, round + 1, 0]);
        }
        assert!(
            mem.poisoned().is_some(),
            "handles dropped at the end of the run"
        );
        Arc::get_mut(&mut mem).expect("workers joined").reset();
        assert_eq!(mem.poisoned(), None);
        assert_eq!(mem.cycles(), 0);
    }
}

#[test]
fn degenerate_shapes() {
    let none = SyncedMemory::<u64>::new(0, 8);
    assert!(matches!(
        none.local_handle(0),
        Err(SyncError::IdOutOfRange { .. })
    ));
    let empty = SyncedMemory::<u64>::new(2, 0);
    assert_eq!(empty.segment_stride(), 0);
    thread::scope(|s| {
        for id in 0..2 {
            let empty = &empty;
            s.spawn(move || {
                let mut h = empty.local_handle(id).unwrap();
                for _ in 0..3 {
                    let view = h.write_and_sync_read(&[]).unwrap();
                    assert!(view.is_empty());
                    assert_eq!(view.get(0), None);
                    assert_eq!(view.segment(1), Some(&[][..]));
                    assert_eq!(view.segment(2), None);
                }
            });
        }
    });
    let zst = SyncedMemory::<()>::new(1, 5);
    let mut h = zst.local_handle(0).unwrap();
    assert_eq!(h.write_and_sync_read(&[(); 3]).unwrap().len(), 5);
    assert!(matches!(
        SyncedMemory::<u8>::try_new(2, usize::MAX),
        Err(SyncError::TooLarge { .. })
    ));
}

#[test]
fn errors_display_and_classify() {
    let cases = [
        (
            SyncError::IdOutOfRange {
                id: 4,
                num_threads: 2,
            },
            "out of range",
            false,
        ),
        (SyncError::IdTaken { id: 1 }, "already taken", false),
        (SyncError::TooLong { len: 9, max: 8 }, "do not fit", false),
        (SyncError::WorkerLeft { id: 3 }, "worker 3 left", true),
        (
            SyncError::WorkerPanicked { id: 0 },
            "worker 0 panicked",
            true,
        ),
        (SyncError::Stopped, "stopped", true),
        (
            SyncError::TooLarge {
                num_threads: 2,
                segment_len: 5,
            },
            "fit in memory",
            false,
        ),
    ];
    for (err, text, poison) in cases {
        assert!(err.to_string().contains(text), "{err}");
        assert_eq!(err.is_poison(), poison, "{err:?}");
        let _: &dyn std::error::Error = &err;
    }
}

// ---- Game of Life ----------------------------------------------------------------------

/// One Game of Life step of cell (r, c) of a `n x n` torus, reading cells through `get`.
fn next_cell(get: impl Fn(usize) -> u8, n: usize, r: usize, c: usize) -> u8 {
    let mut live = 0;
    for dr in [n - 1, 0, 1] {
        for dc in [n - 1, 0, 1] {
            if (dr, dc) != (0, 0) {
                live += get(((r + dr) % n) * n + (c + dc) % n);
            }
        }
    }
    u8::from(live == 3 || (live == 2 && get(r * n + c) == 1))
}

/// A deterministic start: an R-pentomino, a glider and pseudo-random noise.
fn initial_grid(n: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut grid: Vec<u8> = (0..n * n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            u8::from(x % 5 == 0)
        })
        .collect();
    for (r, c) in [
        (1, 2),
        (1, 3),
        (2, 1),
        (2, 2),
        (3, 2),
        (8, 9),
        (9, 10),
        (10, 8),
        (10, 9),
        (10, 10),
    ] {
        grid[(r % n) * n + c % n] = 1;
    }
    grid
}

fn life_single_threaded(n: usize, generations: usize) -> Vec<u8> {
    let mut grid = initial_grid(n);
    let mut next = vec![0; n * n];
    for _ in 0..generations {
        for r in 0..n {
            for c in 0..n {
                next[r * n + c] = next_cell(|i| grid[i], n, r, c);
            }
        }
        std::mem::swap(&mut grid, &mut next);
    }
    grid
}

/// Each of `threads` workers owns `n / threads` rows; cycle 0 publishes the initial
/// grid, every later cycle computes the next generation from the last view, in place.
fn life_synced(n: usize, threads: usize, generations: usize) -> Vec<u8> {
    assert_eq!(n % threads, 0);
    let rows = n / threads;
    let mem = SyncedMemory::<u8>::new(threads, rows * n);
    let start = initial_grid(n);
    thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|id| {
                let (mem, start) = (&mem, &start);
                s.spawn(move || {
                    let mut local = mem.local_handle(id).unwrap();
                    let own = &start[id * rows * n..(id + 1) * rows * n];
                    let mut view = local.write_and_sync_read(own).unwrap();
                    for _ in 0..generations {
                        view = view
                            .write_next_with(|mine, prev| {
                                // Segment length is exactly rows * n, so the global
                                // index of a cell is its index in the whole grid.
                                let get = |i: usize| *prev.get(i).unwrap();
                                for r in 0..rows {
                                    for c in 0..n {
                                        mine[r * n + c] = next_cell(get, n, id * rows + r, c);
                                    }
                                }
                            })
                            .wait()
                            .unwrap();
                    }
                    view.to_vec()
                })
            })
            .collect();
        let results: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        for r in &results[1..] {
            assert_eq!(r, &results[0], "workers disagree on the final grid");
        }
        results.into_iter().next().unwrap()
    })
}

#[test]
fn game_of_life_over_four_threads_matches_single_threaded() {
    let (n, generations) = if cfg!(miri) { (8, 20) } else { (64, 1000) };
    let expected = life_single_threaded(n, generations);
    assert!(expected.contains(&1), "the pattern should not die out");
    assert_eq!(life_synced(n, 4, generations), expected);
}

/// The same with the copying, allocate-per-cycle variant the original offered.
#[test]
fn game_of_life_with_the_copying_variant() {
    let (n, generations) = if cfg!(miri) { (8, 6) } else { (32, 200) };
    let threads = 2;
    let rows = n / threads;
    let mem = SyncedMemory::<u8>::new(threads, rows * n);
    let start = initial_grid(n);
    let results: Vec<Vec<u8>> = thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|id| {
                let (mem, start) = (&mem, &start);
                s.spawn(move || {
                    let mut local = mem.local_handle(id).unwrap();
                    let mut grid = start.clone();
                    let mut mine = vec![0; rows * n];
                    for _ in 0..generations {
                        for r in 0..rows {
                            for c in 0..n {
                                mine[r * n + c] = next_cell(|i| grid[i], n, id * rows + r, c);
                            }
                        }
                        grid = local.write_and_sync_read_vec(&mine).unwrap();
                    }
                    grid
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let expected = life_single_threaded(n, generations);
    for r in results {
        assert_eq!(r, expected);
    }
}
