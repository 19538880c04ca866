//! Fan-out: one producer copies events into the default `EventAllocator` and sends a
//! clone of every event to three consumer threads over crossbeam channels; each consumer
//! checks the payload and drops its handle, so slots are freed on whichever thread lets
//! go last. Prints throughput and per-pool statistics, and fails (exit code 1) if any
//! slot did not come back.
//!
//! Run: `cargo run --release --example fanout [events]` (default 1,000,000 events).

use std::process::ExitCode;
use std::thread;
use std::time::Instant;

use crossbeam_channel::bounded;
use slotring::{Event, EventAllocator, PoolId, RingPtr};

const CONSUMERS: usize = 3;

fn main() -> ExitCode {
    let events: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 1_000_000,
        Some(Ok(n)) => n,
        Some(Err(err)) => {
            eprintln!("usage: fanout [events]  ({err})");
            return ExitCode::from(2);
        }
    };
    let alloc = EventAllocator::new();
    let sizes = [48usize, 200, 900, 3000, 12_000];
    let started = Instant::now();
    let checked: u64 = thread::scope(|s| {
        let mut senders = Vec::new();
        let mut consumers = Vec::new();
        for _ in 0..CONSUMERS {
            let (tx, rx) = bounded::<RingPtr<Event>>(1024);
            senders.push(tx);
            consumers.push(s.spawn(move || {
                let mut bytes = 0u64;
                for ev in rx {
                    // Every byte of an event equals its type's low byte.
                    let expected = ev.event_type() as u8;
                    assert!(ev.iter().all(|&b| b == expected), "corrupted payload");
                    bytes += ev.len() as u64;
                }
                bytes
            }));
        }
        let mut payload = vec![0u8; 12_000];
        for seq in 0..events {
            // Mostly small events, like a real event stream: 80 % XS, the rest spread.
            let class = if seq % 5 == 0 {
                (seq / 5 % 5) as usize
            } else {
                0
            };
            let len = sizes[class];
            payload[..len].fill(seq as u8);
            let ev = alloc
                .allocate(&payload[..len], seq as u32)
                .expect("allocate spills to the heap rather than fail");
            for tx in &senders[1..] {
                tx.send(ev.clone()).expect("consumer alive");
            }
            senders[0].send(ev).expect("consumer alive");
        }
        drop(senders);
        consumers.into_iter().map(|c| c.join().unwrap()).sum()
    });
    let elapsed = started.elapsed();
    println!(
        "{events} events to {CONSUMERS} consumers in {:.3} s: {:.2} M events/s, {:.1} MB read",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64() / 1e6,
        checked as f64 / 1e6,
    );
    let stats = alloc.stats();
    println!("pool  capacity  in_use  high_water  allocations  spills");
    for pool in PoolId::ALL {
        let p = stats.pool(pool);
        println!(
            "{:<4}  {:>8}  {:>6}  {:>10}  {:>11}  {:>6}",
            pool, p.capacity, p.in_use, p.high_water, p.allocations, p.spills
        );
    }
    println!(
        "heap  {:>8}  {:>6}  {:>10}  {:>11}",
        "-", stats.heap.in_use, "-", stats.heap.allocations
    );
    if stats.total_in_use() == 0 {
        println!("every slot came back");
        ExitCode::SUCCESS
    } else {
        eprintln!("{} events still in use", stats.total_in_use());
        ExitCode::FAILURE
    }
}
