//! Market data over a broadcast ring: one writer publishes quotes in bursts (it never
//! waits for anybody), three readers of different speeds consume them. The fast one keeps
//! up, the one doing work per quote may fall behind now and then, the slow one (it naps
//! between batches) is lapped. Each prints what it received and what it was told it
//! missed; the two always add up to what was published, or the example fails (exit 1).
//!
//! Run: `cargo run --release --example broadcast [quotes]` (default 200,000 quotes, in
//! bursts of 100 every millisecond: about two seconds).

use std::hint::black_box;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};
use slotring::broadcast::{ReadError, Reader, channel};

/// One quote: 32 bytes, copied through the ring word by word.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
struct Quote {
    /// The event number the writer gave it (checked against the reader's count).
    seq: u64,
    instrument: u64,
    bid: u64,
    ask: u64,
}

/// Slots in the ring: the slow reader naps long enough for the writer to lap it.
const CAP: usize = 256;
const BURST: u64 = 100;

#[derive(Debug, Default)]
struct Tally {
    received: u64,
    missed: u64,
    lag_reports: u64,
    /// Sum of mid prices, so the work is not optimised away.
    mids: u64,
}

/// Reads until the writer is gone, checking that every quote comes in order and every
/// gap was reported. `work` runs per quote; `nap` after every `BURST` quotes.
fn consume(mut reader: Reader<Quote, CAP>, work: u32, nap: Option<Duration>) -> Tally {
    let mut tally = Tally::default();
    let mut expect = reader.cursor();
    loop {
        match reader.next_blocking(Duration::MAX) {
            Ok(q) => {
                assert_eq!(q.seq, expect, "a quote out of order or a gap not reported");
                expect += 1;
                tally.received += 1;
                let mut mid = (q.bid + q.ask) / 2;
                for _ in 0..work {
                    mid = black_box(mid.rotate_left(7) ^ q.instrument);
                }
                tally.mids = tally.mids.wrapping_add(mid);
                if let Some(nap) = nap {
                    if tally.received % BURST == 0 {
                        thread::sleep(nap);
                    }
                }
            }
            Err(ReadError::Lagged { missed }) => {
                // Resumes at the oldest quote the ring still holds.
                expect += missed;
                tally.missed += missed;
                tally.lag_reports += 1;
            }
            Err(ReadError::Closed) => return tally,
            Err(ReadError::Timeout) => unreachable!("no timeout was set"),
        }
    }
}

fn main() -> ExitCode {
    let quotes: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 200_000,
        Some(Ok(n)) => n,
        Some(Err(err)) => {
            eprintln!("usage: broadcast [quotes]  ({err})");
            return ExitCode::from(2);
        }
    };
    let (mut writer, first) = channel::<Quote, CAP>();
    let readers = [
        ("fast", 0, None),
        ("working", 200, None),
        ("slow", 0, Some(Duration::from_millis(10))),
    ];
    let started = Instant::now();
    let (published, tallies) = thread::scope(|s| {
        let handles: Vec<_> = readers
            .iter()
            .map(|&(name, work, nap)| {
                let reader = first.clone();
                (name, s.spawn(move || consume(reader, work, nap)))
            })
            .collect();
        drop(first);
        for seq in 0..quotes {
            let instrument = seq % 8;
            let bid = 10_000 + (seq * 7919) % 500;
            writer.add(Quote {
                seq,
                instrument,
                bid,
                ask: bid + 2,
            });
            if (seq + 1) % BURST == 0 {
                thread::sleep(Duration::from_millis(1));
            }
        }
        let published = writer.position();
        drop(writer); // readers get `Closed` once they have read what is left
        let tallies: Vec<_> = handles
            .into_iter()
            .map(|(name, h)| (name, h.join().expect("reader panicked")))
            .collect();
        (published, tallies)
    });
    println!(
        "{published} quotes published in {:.2} s, ring of {CAP}",
        started.elapsed().as_secs_f64()
    );
    println!("reader   received    missed  lag reports  received + missed");
    let mut ok = true;
    for (name, t) in &tallies {
        let total = t.received + t.missed;
        ok &= total == published;
        println!(
            "{name:<8} {:>8} {:>9} {:>12} {:>18}{}",
            t.received,
            t.missed,
            t.lag_reports,
            total,
            if total == published { "" } else { "  MISMATCH" }
        );
        black_box(t.mids);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("received + missed differs from published");
        ExitCode::FAILURE
    }
}
