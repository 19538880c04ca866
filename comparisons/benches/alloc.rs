//! Criterion benchmarks: slotring next to the alternatives users would pick, in the same
//! group, on the same payloads. Run with `cargo bench -p slotring-comparisons --bench alloc`; HTML reports with
//! plots land in `target/criterion/report/index.html`.
//!
//! The global allocator of this benchmark is mimalloc, so `Box<[u8]>` and `Arc<[u8]>`
//! here are the fastest general-purpose allocation users would pick instead; glibc's
//! `malloc` is measured next to them through `std::alloc::System` (`GlibcBox`).
//!
//! Groups: allocate + read + drop per size class (vs `Box<[u8]>` and `Arc<[u8]>` on
//! mimalloc, a `Box`-like on glibc, and the atomic floor), clone + drop (vs `Arc`), a burst
//! of 1,000 live events, allocation at 0/50/99 % occupancy, cross-thread hand-off and
//! fan-out over crossbeam channels (vs the same alternatives on the same channel), and the
//! typed `RingBuffer::alloc` (vs `Box`).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_channel::bounded;
use slotring::{EventAllocator, PoolId, RingBuffer};
use slotring_comparisons::GlibcBox;

#[global_allocator]
static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SIZES: [usize; 5] = [48, 200, 900, 3072, 12288];

fn alloc_read_drop(c: &mut Criterion) {
    let alloc = EventAllocator::new();
    let mut group = c.benchmark_group("alloc_read_drop");
    for len in SIZES {
        let payload = vec![0x5Au8; len];
        group.bench_with_input(BenchmarkId::new("slotring", len), &payload, |b, p| {
            b.iter(|| {
                let ev = alloc.allocate(black_box(p), 1).unwrap();
                black_box(ev[len / 2])
            })
        });
        group.bench_with_input(
            BenchmarkId::new("Box<[u8]> (mimalloc)", len),
            &payload,
            |b, p| {
                b.iter(|| {
                    let ev: Box<[u8]> = Box::from(black_box(&p[..]));
                    black_box(ev[len / 2])
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("Arc<[u8]> (mimalloc)", len),
            &payload,
            |b, p| {
                b.iter(|| {
                    let ev: Arc<[u8]> = Arc::from(black_box(&p[..]));
                    black_box(ev[len / 2])
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("Box (glibc)", len), &payload, |b, p| {
            b.iter(|| {
                let ev = GlibcBox::new(black_box(&p[..]));
                black_box(ev.get(len / 2))
            })
        });
    }
    let counter = AtomicUsize::new(0);
    group.bench_function("atomic floor: fetch_add + fetch_sub", |b| {
        b.iter(|| {
            black_box(&counter).fetch_add(1, Ordering::AcqRel);
            black_box(&counter).fetch_sub(1, Ordering::AcqRel)
        })
    });
    group.finish();
}

fn clone_drop(c: &mut Criterion) {
    let alloc = EventAllocator::new();
    let ev = alloc.allocate(&[1; 48], 1).unwrap();
    let arc: Arc<[u8]> = Arc::from(&[1u8; 48][..]);
    let mut group = c.benchmark_group("clone_drop");
    group.bench_function("slotring", |b| b.iter(|| drop(black_box(ev.clone()))));
    group.bench_function("Arc<[u8]>", |b| b.iter(|| drop(black_box(arc.clone()))));
    group.finish();
}

fn burst(c: &mut Criterion) {
    let alloc = EventAllocator::new();
    let payload = [3u8; 48];
    let mut group = c.benchmark_group("burst_1000_live");
    group.throughput(Throughput::Elements(1000));
    let mut held = Vec::with_capacity(1000);
    group.bench_function("slotring", |b| {
        b.iter(|| {
            held.extend((0..1000).map(|_| alloc.allocate(&payload, 1).unwrap()));
            held.clear();
        })
    });
    let mut boxes: Vec<Box<[u8]>> = Vec::with_capacity(1000);
    group.bench_function("Box<[u8]> (mimalloc)", |b| {
        b.iter(|| {
            boxes.extend((0..1000).map(|_| Box::from(&payload[..])));
            boxes.clear();
        })
    });
    let mut arcs: Vec<Arc<[u8]>> = Vec::with_capacity(1000);
    group.bench_function("Arc<[u8]> (mimalloc)", |b| {
        b.iter(|| {
            arcs.extend((0..1000).map(|_| Arc::from(&payload[..])));
            arcs.clear();
        })
    });
    group.finish();
}

fn occupancy(c: &mut Criterion) {
    let alloc = EventAllocator::new();
    let capacity = alloc.capacity(PoolId::XS);
    let mut group = c.benchmark_group("occupancy_xs");
    for percent in [0usize, 50, 99] {
        let held: Vec<_> = (0..capacity * percent / 100)
            .map(|_| alloc.try_allocate(&[0; 48], 0).unwrap())
            .collect();
        group.bench_function(BenchmarkId::new("slotring", format!("{percent}%")), |b| {
            b.iter(|| drop(black_box(alloc.try_allocate(&[1; 48], 1).unwrap())))
        });
        drop(held);
    }
    group.finish();
}

/// The two release paths an allocate + drop can take, for comparing builds (the cost of
/// the wait feature when nobody waits: `allocate_timeout` / `allocate_async`): into the
/// thread's magazine (the default pools) and onto the shared free list (a pool too small
/// to have magazines, so every drop pushes and reads the free list's waiting bit). The
/// last line is the same drop while another task waits for a slot of another class (its
/// pool pays, this one must not). Run the group on two commits and compare.
fn release_paths(c: &mut Criterion) {
    let mut group = c.benchmark_group("release_path_allocate_drop");
    let magazines = EventAllocator::new();
    group.bench_function("magazine (default pools)", |b| {
        b.iter(|| {
            drop(black_box(
                magazines.try_allocate(black_box(&[1; 48]), 1).unwrap(),
            ))
        })
    });
    // Under 8 slots a pool has no cache budget: every release goes to the shared list.
    let shared = EventAllocator::builder()
        .capacities([4, 4, 0, 0, 0])
        .build()
        .unwrap();
    group.bench_function("shared free list (4-slot pool)", |b| {
        b.iter(|| {
            drop(black_box(
                shared.try_allocate(black_box(&[1; 48]), 1).unwrap(),
            ))
        })
    });
    let held: Vec<_> = (0..4)
        .map(|_| shared.try_allocate(&[0; 200], 0).unwrap())
        .collect();
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut waiting = Box::pin(shared.allocate_async(&[0; 200], 0));
    assert!(waiting.as_mut().poll(&mut cx).is_pending());
    group.bench_function("shared free list, a task waits on another class", |b| {
        b.iter(|| {
            drop(black_box(
                shared.try_allocate(black_box(&[1; 48]), 1).unwrap(),
            ))
        })
    });
    drop((waiting, held));
    group.finish();
}

/// Time for `iters` events to go from a producer, over a bounded channel, to a consumer
/// that drops them.
fn hand_off<T: Send>(iters: u64, make: impl Fn() -> T) -> Duration {
    let (tx, rx) = bounded::<T>(1024);
    let start = Instant::now();
    thread::scope(|s| {
        s.spawn(move || rx.into_iter().for_each(|ev| drop(black_box(ev))));
        for _ in 0..iters {
            tx.send(make()).unwrap();
        }
        drop(tx);
    });
    start.elapsed()
}

/// Time for `iters` events to be cloned to two consumers that drop them.
fn fan_out<T: Clone + Send>(iters: u64, make: impl Fn() -> T) -> Duration {
    let (tx1, rx1) = bounded::<T>(1024);
    let (tx2, rx2) = bounded::<T>(1024);
    let start = Instant::now();
    thread::scope(|s| {
        s.spawn(move || rx1.into_iter().for_each(|ev| drop(black_box(ev))));
        s.spawn(move || rx2.into_iter().for_each(|ev| drop(black_box(ev))));
        for _ in 0..iters {
            let ev = make();
            tx1.send(ev.clone()).unwrap();
            tx2.send(ev).unwrap();
        }
        drop((tx1, tx2));
    });
    start.elapsed()
}

fn cross_thread(c: &mut Criterion) {
    let alloc = EventAllocator::new();
    let payload = [9u8; 48];
    let mut group = c.benchmark_group("cross_thread_handoff");
    group.throughput(Throughput::Elements(1));
    group.bench_function("slotring", |b| {
        b.iter_custom(|iters| hand_off(iters, || alloc.allocate(&payload, 1).unwrap()))
    });
    group.bench_function("Box<[u8]> (mimalloc)", |b| {
        b.iter_custom(|iters| hand_off(iters, || Box::<[u8]>::from(&payload[..])))
    });
    group.bench_function("Arc<[u8]> (mimalloc)", |b| {
        b.iter_custom(|iters| hand_off(iters, || Arc::<[u8]>::from(&payload[..])))
    });
    group.bench_function("Box (glibc)", |b| {
        b.iter_custom(|iters| hand_off(iters, || GlibcBox::new(&payload)))
    });
    group.finish();

    let mut group = c.benchmark_group("fan_out_2_consumers");
    group.throughput(Throughput::Elements(1));
    group.bench_function("slotring", |b| {
        b.iter_custom(|iters| fan_out(iters, || alloc.allocate(&payload, 1).unwrap()))
    });
    group.bench_function("Arc<[u8]> (mimalloc)", |b| {
        b.iter_custom(|iters| fan_out(iters, || Arc::<[u8]>::from(&payload[..])))
    });
    group.finish();
}

fn typed(c: &mut Criterion) {
    let ring = RingBuffer::<64, 1024>::new();
    let mut group = c.benchmark_group("typed_64_byte_pod");
    group.bench_function("RingBuffer::alloc", |b| {
        b.iter(|| {
            let p = ring.alloc(black_box([7u64; 8])).unwrap();
            black_box(p[3])
        })
    });
    group.bench_function("Box::new (mimalloc)", |b| {
        b.iter(|| {
            let p = Box::new(black_box([7u64; 8]));
            black_box(p[3])
        })
    });
    group.finish();
}

/// The cost of `stats()`, which reads every slot once: linear in the capacity.
fn stats_scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("stats_scan");
    for slots in [1_000usize, 100_000, 1_000_000] {
        let alloc = EventAllocator::builder()
            .capacities([slots, 0, 0, 0, 0])
            .build()
            .unwrap();
        let held: Vec<_> = (0..slots / 2)
            .map(|_| alloc.try_allocate(&[0; 48], 0).unwrap())
            .collect();
        group.bench_function(BenchmarkId::new("EventAllocator::stats", slots), |b| {
            b.iter(|| black_box(alloc.stats()))
        });
        drop(held);
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = alloc_read_drop, clone_drop, burst, occupancy, release_paths, cross_thread, typed, stats_scan
}
criterion_main!(benches);
