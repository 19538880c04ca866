//! Stress: 4 threads move 1,000,000 events through the default allocator. Two producers
//! allocate events of every size class (and some for the heap), clone each to two
//! consumers over bounded crossbeam channels, and drop their own handle; the consumers
//! verify every payload's embedded checksum and drop theirs on another thread. At the
//! end every pool must be empty again.
#![cfg(not(loom))]

use std::thread;

use crossbeam_channel::bounded;
use slotring::{Event, EventAllocator, PoolId, RingPtr};

const EVENTS: u64 = 1_000_000;
const PRODUCERS: u64 = 2;

/// FNV-1a, 32 bits.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// A payload of a pseudo-random size for event `seq`: body, then its checksum.
fn fill(seq: u64, buf: &mut Vec<u8>) {
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    x ^= x >> 29;
    let len = match x % 100 {
        0..=59 => 8 + x % 57,                 // XS
        60..=84 => 65 + x % 190,              // S
        85..=94 => 257 + x % 760,             // M
        95..=98 => 1025 + x % 3000,           // L
        _ if x % 7 == 0 => 16_385 + x % 4000, // heap
        _ => 4097 + x % 12_000,               // XL
    } as usize;
    buf.clear();
    buf.extend((0..len).map(|i| (seq as usize ^ i.wrapping_mul(31)) as u8));
    let sum = checksum(buf);
    buf.extend_from_slice(&sum.to_le_bytes());
}

fn verify(ev: &RingPtr<Event>) {
    let bytes = ev.payload();
    let (body, sum) = bytes.split_at(bytes.len() - 4);
    assert_eq!(
        checksum(body).to_le_bytes(),
        sum,
        "payload of event type {} corrupted",
        ev.event_type()
    );
}

#[test]
#[cfg_attr(miri, ignore = "a million events is far too slow under miri")]
fn four_threads_a_million_events() {
    let alloc = EventAllocator::new();
    let (to_a, from_a) = bounded::<RingPtr<Event>>(256);
    let (to_b, from_b) = bounded::<RingPtr<Event>>(256);
    thread::scope(|s| {
        for p in 0..PRODUCERS {
            let (to_a, to_b, alloc) = (to_a.clone(), to_b.clone(), &alloc);
            s.spawn(move || {
                let mut buf = Vec::new();
                for seq in (p..EVENTS).step_by(PRODUCERS as usize) {
                    fill(seq, &mut buf);
                    let ev = alloc
                        .allocate(&buf, seq as u32)
                        .expect("allocate never fails");
                    to_a.send(ev.clone()).unwrap();
                    to_b.send(ev).unwrap();
                }
            });
        }
        drop((to_a, to_b));
        for rx in [from_a, from_b] {
            s.spawn(move || {
                let mut seen = 0u64;
                for ev in rx {
                    verify(&ev);
                    seen += 1;
                }
                assert_eq!(seen, EVENTS, "a consumer missed events");
            });
        }
    });
    let stats = alloc.stats();
    for pool in PoolId::ALL {
        assert_eq!(stats.pool(pool).in_use, 0, "{pool} pool leaked slots");
    }
    assert_eq!(stats.heap.in_use, 0, "heap events leaked");
    assert!(stats.pool(PoolId::XS).allocations > 0);
    assert!(
        stats.heap.allocations > 0,
        "the heap fallback was never exercised"
    );
}
