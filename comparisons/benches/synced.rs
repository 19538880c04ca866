//! Criterion benchmark of one write-then-read cycle: every thread writes its segment,
//! all wait, every thread reads (sums) the whole state. `SyncedMemory` next to what
//! std offers for the same job, in the same groups, for 2 and 4 threads.
//!
//! Run with `cargo bench -p slotring-comparisons --bench synced` (add `-- --warm-up-time 1 --measurement-time 3`
//! for a short run). The threads are spawned once per benchmark and driven through
//! `iter_custom`, so thread start-up is not measured: the measuring thread is worker 0,
//! the others wait for a cycle count on a channel and run that many cycles with it.
//!
//! Contenders, per cycle:
//! * `SyncedMemory`: `write_and_sync_read`, then sum the zero-copy view.
//! * `SyncedMemory (copying)`: `write_and_sync_read_vec`, a fresh `Vec` per cycle, as the
//!   original `SynchedMemory` returned.
//! * `std Barrier x2 + RwLock<Vec>`: write under the write lock, `Barrier::wait`, sum
//!   under the read lock, `Barrier::wait` again (without the second barrier a fast
//!   thread's next write lands in a slow thread's read of this cycle).
//! * `std Barrier x1 + RwLock<Vec> (mixes cycles)`: the single-barrier protocol of the
//!   original, with a lock added so it is at least memory-safe; its reads may see a mix
//!   of two cycles, so it does less than the others. Shown as a floor, not a peer.

use std::hint::black_box;
use std::sync::{Arc, Barrier, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_channel::{Receiver, Sender, unbounded};
use slotring::synced::SyncedMemory;

const THREADS: [usize; 2] = [2, 4];
const SEGMENT_LENS: [usize; 2] = [64, 1024];

/// Persistent workers 1..threads; each runs `body(id, rx)`, which loops over the cycle
/// counts it receives.
struct Crew {
    go: Vec<Sender<u64>>,
    workers: Vec<JoinHandle<()>>,
}

impl Crew {
    fn spawn<F>(threads: usize, body: F) -> Self
    where
        F: Fn(usize, Receiver<u64>) + Send + Sync + 'static,
    {
        let body = Arc::new(body);
        let (go, workers) = (1..threads)
            .map(|id| {
                let (tx, rx) = unbounded();
                let body = Arc::clone(&body);
                (tx, thread::spawn(move || body(id, rx)))
            })
            .unzip();
        Self { go, workers }
    }

    /// Starts `iters` cycles on every worker, runs `iters` cycles of `cycle` here, and
    /// returns the time this thread took.
    fn run(&self, iters: u64, mut cycle: impl FnMut()) -> Duration {
        for tx in &self.go {
            tx.send(iters).unwrap();
        }
        let start = Instant::now();
        for _ in 0..iters {
            cycle();
        }
        start.elapsed()
    }

    fn finish(self) {
        drop(self.go);
        for w in self.workers {
            w.join().unwrap();
        }
    }
}

fn sum(values: &[f64]) -> f64 {
    values.iter().sum()
}

fn one_cycle(c: &mut Criterion) {
    for len in SEGMENT_LENS {
        let mut group = c.benchmark_group(format!("cycle/{len} f64 per segment"));
        for threads in THREADS {
            group.throughput(Throughput::Elements(1));

            // SyncedMemory, zero-copy view.
            let mem = Arc::new(SyncedMemory::<f64>::new(threads, len));
            let crew = {
                let mem = Arc::clone(&mem);
                Crew::spawn(threads, move |id, rx| {
                    // Fails only when a benchmark filtered out finishes its crew before
                    // this worker started (another worker's handle already left).
                    let Ok(mut local) = mem.local_handle(id) else {
                        return;
                    };
                    let mut mine = vec![id as f64; len];
                    for iters in rx {
                        for _ in 0..iters {
                            let view = local.write_and_sync_read(&mine).unwrap();
                            mine[0] = black_box(view.segments().map(sum).sum::<f64>()).fract();
                        }
                    }
                })
            };
            let mut local = mem.local_handle(0).unwrap();
            let mut mine = vec![0.0; len];
            group.bench_function(BenchmarkId::new("SyncedMemory", threads), |b| {
                b.iter_custom(|iters| {
                    crew.run(iters, || {
                        let view = local.write_and_sync_read(&mine).unwrap();
                        mine[0] = black_box(view.segments().map(sum).sum::<f64>()).fract();
                    })
                })
            });
            crew.finish();
            drop(local);

            // SyncedMemory, copying variant.
            let mem = Arc::new(SyncedMemory::<f64>::new(threads, len));
            let crew = {
                let mem = Arc::clone(&mem);
                Crew::spawn(threads, move |id, rx| {
                    // Fails only when a benchmark filtered out finishes its crew before
                    // this worker started (another worker's handle already left).
                    let Ok(mut local) = mem.local_handle(id) else {
                        return;
                    };
                    let mut mine = vec![id as f64; len];
                    for iters in rx {
                        for _ in 0..iters {
                            let all = local.write_and_sync_read_vec(&mine).unwrap();
                            mine[0] = black_box(sum(&all)).fract();
                        }
                    }
                })
            };
            let mut local = mem.local_handle(0).unwrap();
            let mut mine = vec![0.0; len];
            group.bench_function(BenchmarkId::new("SyncedMemory (copying)", threads), |b| {
                b.iter_custom(|iters| {
                    crew.run(iters, || {
                        let all = local.write_and_sync_read_vec(&mine).unwrap();
                        mine[0] = black_box(sum(&all)).fract();
                    })
                })
            });
            crew.finish();
            drop(local);

            // std: Barrier + RwLock<Vec>, with and without the second barrier.
            for barriers in [2, 1] {
                let shared =
                    Arc::new((Barrier::new(threads), RwLock::new(vec![0.0; threads * len])));
                let cycle =
                    move |shared: &(Barrier, RwLock<Vec<f64>>), id: usize, mine: &mut [f64]| {
                        let (barrier, data) = shared;
                        data.write().unwrap()[id * len..(id + 1) * len].copy_from_slice(mine);
                        barrier.wait();
                        mine[0] = black_box(sum(&data.read().unwrap())).fract();
                        if barriers == 2 {
                            barrier.wait();
                        }
                    };
                let crew = {
                    let shared = Arc::clone(&shared);
                    Crew::spawn(threads, move |id, rx| {
                        let mut mine = vec![id as f64; len];
                        for iters in rx {
                            for _ in 0..iters {
                                cycle(&shared, id, &mut mine);
                            }
                        }
                    })
                };
                let name = if barriers == 2 {
                    "std Barrier x2 + RwLock<Vec>"
                } else {
                    "std Barrier x1 + RwLock<Vec> (mixes cycles)"
                };
                let mut mine = vec![0.0; len];
                group.bench_function(BenchmarkId::new(name, threads), |b| {
                    b.iter_custom(|iters| crew.run(iters, || cycle(&shared, 0, &mut mine)))
                });
                crew.finish();
            }
        }
        group.finish();
    }
}

criterion_group!(benches, one_cycle);
criterion_main!(benches);
