//! What a C host gets per call: `handle_ffi_event` (copy into a slot, hand the handle to
//! the sink) next to what the host's Rust callback would do without slotring (copy into
//! a `Box<[u8]>` and hand that on), for a 48-byte event. Throughput is in calls per
//! second. Run with `cargo bench --features ffi --bench ffi`.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_channel::bounded;
use slotring::ffi::{self, SinkError, SlotringStatus};
use slotring::{Event, RingPtr};

const PAYLOAD: [u8; 48] = [0x5A; 48];

fn call() -> SlotringStatus {
    // SAFETY: `PAYLOAD` is valid for reads of its length.
    unsafe { ffi::handle_ffi_event(black_box(PAYLOAD.as_ptr()), PAYLOAD.len(), 1) }
}

fn handle_ffi_event(c: &mut Criterion) {
    let mut group = c.benchmark_group("ffi_48_byte_event");
    group.throughput(Throughput::Elements(1));

    ffi::set_sink(|ev: RingPtr<Event>| -> Result<(), SinkError> {
        black_box(ev.payload()[0]);
        Ok(())
    });
    group.bench_function("slotring handle_ffi_event -> sink reads, drops", |b| {
        b.iter(|| assert_eq!(call(), SlotringStatus::Ok))
    });
    group.bench_function("Box<[u8]> copy -> reads, drops", |b| {
        b.iter(|| {
            let ev: Box<[u8]> = Box::from(black_box(&PAYLOAD[..]));
            black_box(ev[0])
        })
    });

    group.bench_function(
        "slotring handle_ffi_event -> channel -> consumer thread",
        |b| {
            b.iter_custom(|iters| {
                let (tx, rx) = bounded::<RingPtr<Event>>(4096);
                ffi::set_sink(move |ev: RingPtr<Event>| -> Result<(), SinkError> {
                    tx.send(ev).map_err(|e| SinkError::Closed(e.0))
                });
                let consumer =
                    thread::spawn(move || rx.iter().map(|ev| u64::from(ev[0])).sum::<u64>());
                let start = Instant::now();
                for _ in 0..iters {
                    assert_eq!(call(), SlotringStatus::Ok);
                }
                let elapsed = start.elapsed();
                // Unregistering drops the sender, so the consumer ends.
                drop(ffi::take_sink());
                black_box(consumer.join().expect("consumer"));
                elapsed
            })
        },
    );
    group.bench_function("Box<[u8]> copy -> channel -> consumer thread", |b| {
        b.iter_custom(|iters| {
            let (tx, rx) = bounded::<Box<[u8]>>(4096);
            let consumer = thread::spawn(move || rx.iter().map(|ev| u64::from(ev[0])).sum::<u64>());
            let start = Instant::now();
            for _ in 0..iters {
                tx.send(Box::from(black_box(&PAYLOAD[..])))
                    .expect("consumer alive");
            }
            let elapsed = start.elapsed();
            drop(tx);
            black_box(consumer.join().expect("consumer"));
            elapsed
        })
    });
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
    targets = handle_ffi_event
}
criterion_main!(benches);
