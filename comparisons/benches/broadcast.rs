//! Criterion benchmark: events per second from one writer to 1, 2 and 4 readers, every
//! reader receiving every event, side by side in one group:
//!
//! * `slotring`: the broadcast ring (1024 slots); readers hold the writer back, so
//!   nothing is lost ([`Writer::try_add`] refused means the writer yields and retries);
//!   readers use `next_blocking` (spin, yield, park).
//! * `crossbeam-channel`: one bounded channel (1024) per reader; the writer sends a copy
//!   of each event to every channel; readers `recv()`.
//! * `disruptor`: the `disruptor` crate, single producer, one event handler per reader
//!   running in parallel (ring of 1024); handlers yield when idle, the producer yields
//!   while the ring is full.
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

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_channel::bounded;
use disruptor::wait_strategies::WaitStrategy;
use disruptor::{Producer, Sequence};
use slotring::broadcast::{ReadError, Writer, channel};
use tokio::sync::broadcast as tokio_broadcast;

/// The event: a sequence number and 56 bytes of payload.
type Event = [u64; 8];
const CAP: usize = 1024;
/// Events per criterion iteration.
const EVENTS: u64 = 100_000;
const READERS: [usize; 3] = [1, 2, 4];

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
        for _ in 0..readers {
            let mut reader = first.clone();
            reader.hold_writer().unwrap();
            s.spawn(move || {
                let mut sum = 0u64;
                loop {
                    match reader.next_blocking(Duration::MAX) {
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

fn crossbeam(events: u64, readers: usize) -> Duration {
    thread::scope(|s| {
        let senders: Vec<_> = (0..readers)
            .map(|_| {
                let (tx, rx) = bounded::<Event>(CAP);
                s.spawn(move || {
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
        for _ in 0..readers {
            // Subscribed before the first send, so every reader is owed every event.
            let mut rx = first.resubscribe();
            s.spawn(move || {
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

fn disruptor(events: u64, readers: usize) -> Duration {
    let handler = || {
        let mut sum = 0u64;
        move |ev: &Event, _seq: Sequence, end_of_batch: bool| {
            sum = sum.wrapping_add(ev[3]);
            if end_of_batch {
                black_box(sum);
            }
        }
    };
    let builder = disruptor::build_single_producer(CAP, || [0u64; 8], Yield);
    // Each added handler changes the builder's type, so the reader counts are spelled out.
    match readers {
        1 => publish(builder.handle_events_with(handler()).build(), events),
        2 => publish(
            builder
                .handle_events_with(handler())
                .handle_events_with(handler())
                .build(),
            events,
        ),
        4 => publish(
            builder
                .handle_events_with(handler())
                .handle_events_with(handler())
                .handle_events_with(handler())
                .handle_events_with(handler())
                .build(),
            events,
        ),
        _ => unimplemented!("the bench runs 1, 2 or 4 readers"),
    }
}

/// Publishes `events` events and waits until every handler has processed them.
fn publish(mut producer: impl Producer<Event>, events: u64) -> Duration {
    let start = Instant::now();
    for seq in 0..events {
        while producer.try_publish(|e| *e = event(seq)).is_err() {
            thread::yield_now();
        }
    }
    drop(producer); // waits for every handler to process every event
    start.elapsed()
}

fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("broadcast_fan_out");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);
    for readers in READERS {
        group.bench_with_input(BenchmarkId::new("slotring", readers), &readers, |b, &r| {
            b.iter_custom(|iters| slotring(iters * EVENTS, r))
        });
        group.bench_with_input(
            BenchmarkId::new("crossbeam-channel", readers),
            &readers,
            |b, &r| b.iter_custom(|iters| crossbeam(iters * EVENTS, r)),
        );
        group.bench_with_input(BenchmarkId::new("disruptor", readers), &readers, |b, &r| {
            b.iter_custom(|iters| disruptor(iters * EVENTS, r))
        });
        group.bench_with_input(
            BenchmarkId::new("tokio-broadcast", readers),
            &readers,
            |b, &r| b.iter_custom(|iters| tokio(iters * EVENTS, r)),
        );
    }
    group.finish();
}

criterion_group!(benches, fan_out);
criterion_main!(benches);
