//! Criterion benchmark: events per second from one writer to 1, 2 and 4 readers, every
//! reader receiving every event, side by side in one group:
//!
//! * `slotring-copy`: the broadcast ring (1024 slots), one event at a time; readers hold
//!   the writer back, so nothing is lost ([`Writer::try_add`] refused means the writer
//!   yields and retries); readers copy each event out through the seqlock with
//!   `next_wait(Wait::Yield)`.
//! * `slotring-batch`: the same ring with a [`LosslessWriter`] publishing batches of up
//!   to 64 made in their slots (`try_add_with`, one cursor store a batch, yielding while
//!   full) and holding readers
//!   reading whole batches in place, by reference (`read_batch_wait(Wait::Yield)`).
//! * `crossbeam-channel`: one bounded channel (1024) per reader; the writer sends a copy
//!   of each event to every channel; readers `recv()`.
//! * `disruptor`: the `disruptor` crate, single producer, one event handler per reader
//!   running in parallel (ring of 1024); handlers yield when idle, the producer publishes
//!   one event at a time and yields while the ring is full.
//! * `disruptor-batch`: the same, the producer publishing batches of 64
//!   (`try_batch_publish`), as `slotring-batch` does.
//! * `tokio-broadcast`: `tokio::sync::broadcast` (capacity 1024), what async programs use
//!   for one-to-many today. Its sender never waits and laps slow receivers, so the writer
//!   yields while `Sender::len()` (events not yet seen by every receiver) is at capacity:
//!   nothing is lost, as for the others. Readers call `blocking_recv` on plain threads, not
//!   a current-thread runtime each: every contender then has one OS thread per reader
//!   that parks when idle, and the number measures the channel (its lock-protected tail
//!   and waker list), not a runtime's scheduler loop on top of the same parking.
//!
//! Same 64-byte `Pod` event, same number of events per iteration, each reader sums a
//! word of every event. Run with
//! `cargo bench -p slotring-comparisons --bench broadcast -- --warm-up-time 1 --measurement-time 3`.
//! On a 2-core machine 2 and 4 readers oversubscribe the cores: everything that waits
//! yields its time slice.
//!
//! Threads are pinned the same way for every contender when the machine lets the bench
//! pin (set `BENCH_PIN=0` to leave placement to the scheduler): the writer (criterion's
//! thread) on the first core, reader `i` on core `(i + 1) % cores`.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_channel::bounded;
use disruptor::wait_strategies::WaitStrategy;
use disruptor::{ProcessorSettings, Producer, Sequence};
use slotring::broadcast::{LosslessWriter, ReadError, Wait, Writer, channel};
use tokio::sync::broadcast as tokio_broadcast;

/// The event: a sequence number and 56 bytes of payload.
type Event = [u64; 8];
const CAP: usize = 1024;
/// Events per criterion iteration.
const EVENTS: u64 = 100_000;
const READERS: [usize; 3] = [1, 2, 4];
/// Events per batch where a contender publishes in batches.
const BATCH: usize = 64;

/// The cores threads are pinned to (empty: no pinning).
fn cores() -> Vec<core_affinity::CoreId> {
    if std::env::var("BENCH_PIN").is_ok_and(|v| v == "0") {
        return Vec::new();
    }
    match core_affinity::get_core_ids() {
        Some(ids) if ids.len() >= 2 => ids,
        _ => Vec::new(),
    }
}

/// The core reader `i` runs on, if the bench pins.
fn reader_core(i: usize) -> Option<core_affinity::CoreId> {
    let cores = cores();
    (!cores.is_empty()).then(|| cores[(i + 1) % cores.len()])
}

/// Pins the calling thread to reader `i`'s core, if the bench pins.
fn pin_reader(i: usize) {
    if let Some(core) = reader_core(i) {
        core_affinity::set_for_current(core);
    }
}

fn event(seq: u64) -> Event {
    [
        seq,
        seq ^ 1,
        seq ^ 2,
        seq ^ 3,
        seq ^ 4,
        seq ^ 5,
        seq ^ 6,
        seq ^ 7,
    ]
}

fn slotring(events: u64, readers: usize) -> Duration {
    let (mut writer, first): (Writer<Event, CAP>, _) = channel();
    thread::scope(|s| {
        for i in 0..readers {
            let mut reader = first.clone();
            reader.hold_writer().unwrap();
            s.spawn(move || {
                pin_reader(i);
                let mut sum = 0u64;
                loop {
                    match reader.next_wait(Wait::Yield, Duration::MAX) {
                        Ok(ev) => sum = sum.wrapping_add(ev[3]),
                        Err(ReadError::Closed) => break,
                        Err(err) => panic!("lossless run reported {err}"),
                    }
                }
                black_box(sum);
            });
        }
        drop(first);
        let start = Instant::now();
        for seq in 0..events {
            let mut ev = event(seq);
            while let Err(refused) = writer.try_add(ev) {
                ev = refused.into_inner();
                thread::yield_now();
            }
        }
        drop(writer);
        start
    })
    .elapsed()
}

fn slotring_batch(events: u64, readers: usize) -> Duration {
    let (writer, first): (Writer<Event, CAP>, _) = channel();
    let mut writer: LosslessWriter<Event, CAP> = writer.into_lossless();
    thread::scope(|s| {
        for i in 0..readers {
            let mut reader = first.clone();
            reader.hold_writer().unwrap();
            s.spawn(move || {
                pin_reader(i);
                let mut sum = 0u64;
                loop {
                    match reader.read_batch_wait(Wait::Yield, Duration::MAX, |ev| {
                        sum = sum.wrapping_add(ev[3]);
                    }) {
                        Ok(_) => {}
                        Err(ReadError::Closed) => break,
                        Err(err) => panic!("lossless run reported {err}"),
                    }
                }
                black_box(sum);
            });
        }
        drop(first);
        let start = Instant::now();
        let mut seq = 0;
        while seq < events {
            let max = (events - seq).min(BATCH as u64) as usize;
            // Made straight in their slots, as the disruptor's producer closure does.
            match writer.try_add_with(max, event) {
                0 => thread::yield_now(),
                published => seq += published as u64,
            }
        }
        drop(writer);
        start
    })
    .elapsed()
}

fn crossbeam(events: u64, readers: usize) -> Duration {
    thread::scope(|s| {
        let senders: Vec<_> = (0..readers)
            .map(|i| {
                let (tx, rx) = bounded::<Event>(CAP);
                s.spawn(move || {
                    pin_reader(i);
                    let mut sum = 0u64;
                    while let Ok(ev) = rx.recv() {
                        sum = sum.wrapping_add(ev[3]);
                    }
                    black_box(sum);
                });
                tx
            })
            .collect();
        let start = Instant::now();
        for seq in 0..events {
            let ev = event(seq);
            for tx in &senders {
                tx.send(ev).unwrap();
            }
        }
        drop(senders);
        start
    })
    .elapsed()
}

fn tokio(events: u64, readers: usize) -> Duration {
    let (tx, first) = tokio_broadcast::channel::<Event>(CAP);
    thread::scope(|s| {
        for i in 0..readers {
            // Subscribed before the first send, so every reader is owed every event.
            let mut rx = first.resubscribe();
            s.spawn(move || {
                pin_reader(i);
                let mut sum = 0u64;
                loop {
                    match rx.blocking_recv() {
                        Ok(ev) => sum = sum.wrapping_add(ev[3]),
                        Err(tokio_broadcast::error::RecvError::Closed) => break,
                        Err(err) => panic!("lossless run reported {err}"),
                    }
                }
                black_box(sum);
            });
        }
        drop(first);
        let start = Instant::now();
        for seq in 0..events {
            // Lossless: never send while some receiver still owes a full ring.
            while tx.len() >= CAP {
                thread::yield_now();
            }
            tx.send(event(seq)).expect("the readers are alive");
        }
        drop(tx);
        start
    })
    .elapsed()
}

/// The disruptor crate has no yielding wait strategy; this one yields every idle poll,
/// as the other two do after their spin phase.
#[derive(Clone, Copy)]
struct Yield;

impl WaitStrategy for Yield {
    fn wait_for(&self, _sequence: Sequence) {
        thread::yield_now();
    }
}

fn disruptor(events: u64, readers: usize, batched: bool) -> Duration {
    let handler = || {
        let mut sum = 0u64;
        move |ev: &Event, _seq: Sequence, end_of_batch: bool| {
            sum = sum.wrapping_add(ev[3]);
            if end_of_batch {
                black_box(sum);
            }
        }
    };
    let b = disruptor::build_single_producer(CAP, || [0u64; 8], Yield);
    // Each added handler changes the builder's type, so the reader counts are spelled out.
    match readers {
        1 => publish(
            pin(b, 0).handle_events_with(handler()).build(),
            events,
            batched,
        ),
        2 => {
            let b = pin(b, 0).handle_events_with(handler());
            let producer = pin(b, 1).handle_events_with(handler()).build();
            publish(producer, events, batched)
        }
        4 => {
            let b = pin(b, 0).handle_events_with(handler());
            let b = pin(b, 1).handle_events_with(handler());
            let b = pin(b, 2).handle_events_with(handler());
            let producer = pin(b, 3).handle_events_with(handler()).build();
            publish(producer, events, batched)
        }
        _ => unimplemented!("the bench runs 1, 2 or 4 readers"),
    }
}

/// Pins the next handler added to `builder` to reader `i`'s core, if the bench pins.
fn pin<B: ProcessorSettings<Event, Yield>>(builder: B, i: usize) -> B {
    match reader_core(i) {
        Some(core) => builder.pin_at_core(core.id),
        None => builder,
    }
}

/// Publishes `events` events (one at a time, or in batches) and waits until every
/// handler has processed them.
fn publish<P: Producer<Event>>(mut producer: P, events: u64, batched: bool) -> Duration {
    let start = Instant::now();
    let mut seq = 0;
    while seq < events {
        if batched {
            let len = (events - seq).min(BATCH as u64) as usize;
            let first = seq;
            while producer
                .try_batch_publish(len, |batch| {
                    for (i, e) in batch.enumerate() {
                        *e = event(first + i as u64);
                    }
                })
                .is_err()
            {
                thread::yield_now();
            }
            seq += len as u64;
        } else {
            while producer.try_publish(|e| *e = event(seq)).is_err() {
                thread::yield_now();
            }
            seq += 1;
        }
    }
    drop(producer); // waits for every handler to process every event
    start.elapsed()
}

fn fan_out(c: &mut Criterion) {
    // The writer side of every contender runs on criterion's thread: the first core.
    if let Some(&core) = cores().first() {
        core_affinity::set_for_current(core);
    }
    let mut group = c.benchmark_group("broadcast_fan_out");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);
    type Contender = (&'static str, fn(u64, usize) -> Duration);
    let contenders: [Contender; 6] = [
        ("slotring-copy", slotring),
        ("slotring-batch", slotring_batch),
        ("crossbeam-channel", crossbeam),
        ("disruptor", |events, readers| {
            disruptor(events, readers, false)
        }),
        ("disruptor-batch", |events, readers| {
            disruptor(events, readers, true)
        }),
        ("tokio-broadcast", tokio),
    ];
    for readers in READERS {
        for (name, run) in contenders {
            group.bench_with_input(BenchmarkId::new(name, readers), &readers, |b, &r| {
                b.iter_custom(|iters| run(iters * EVENTS, r))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, fan_out);
criterion_main!(benches);
