//! The broadcast ring through its public API: ordering, lapping and lag counts, closing,
//! backpressure, blocking reads, readers joining and leaving, and multi-threaded stress
//! (1 writer, 3 readers, 10,000,000 events) with checksums.
#![cfg(not(loom))]

use std::thread;
use std::time::{Duration, Instant};

use slotring::PooledEvent;
use slotring::broadcast::{
    Lagged, ReadError, Reader, RecvError, TooManyHolders, TryReadError, Wait, Writer, channel,
};

/// A 64-byte event: its number, then words derived from it, then a checksum of both.
type Ev = [u64; 8];

fn make(seq: u64) -> Ev {
    let mut ev = [0u64; 8];
    ev[0] = seq;
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for word in &mut ev[1..7] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *word = x;
    }
    ev[7] = checksum(&ev[..7]);
    ev
}

fn checksum(words: &[u64]) -> u64 {
    words.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &w| {
        (h ^ w).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn verify(ev: &Ev) -> u64 {
    assert_eq!(checksum(&ev[..7]), ev[7], "torn or corrupt event {}", ev[0]);
    ev[0]
}

#[test]
fn every_reader_sees_every_event_in_order() {
    let (mut writer, mut a) = channel::<u64, 16>();
    let mut b = a.clone();
    for i in 0..10 {
        assert_eq!(writer.add(i * 3), i);
    }
    let mut c = a.clone();
    let from_a: Vec<_> = a.by_ref().map(Result::unwrap).collect();
    assert_eq!(from_a, (0..10).map(|i| i * 3).collect::<Vec<_>>());
    assert_eq!(a.next(), None, "a caught-up reader yields None");
    writer.add(99);
    assert_eq!(a.next(), Some(Ok(99)), "iteration resumes after new events");
    let from_b: Vec<_> = b.by_ref().map(Result::unwrap).collect();
    assert_eq!(from_b.len(), 11);
    assert_eq!(c.try_next(), Ok(0), "a clone starts where its source was");
    assert_eq!(a.cursor(), 11);
    assert_eq!(c.cursor(), 1);
}

#[test]
fn lapped_reader_is_told_exactly_how_many_it_missed() {
    let (mut writer, mut reader) = channel::<u64, 4>();
    for i in 0..10 {
        writer.add(i);
    }
    assert_eq!(reader.lag(), 10);
    // Events 0..=5 are overwritten; 6..=9 are still there. The reader resumes at the
    // oldest event the ring retains (tokio::sync::broadcast's convention): it skips 6
    // and reads 6, 7, 8, 9.
    assert_eq!(reader.try_next(), Err(TryReadError::Lagged { missed: 6 }));
    assert_eq!(reader.cursor(), 6);
    assert_eq!(
        reader.by_ref().collect::<Vec<_>>(),
        [Ok(6), Ok(7), Ok(8), Ok(9)]
    );
    // Lapped in the middle of reading: a second report, never a stale or torn value.
    for i in 10..20 {
        writer.add(i);
    }
    assert_eq!(reader.next(), Some(Err(Lagged { missed: 6 })));
    assert_eq!(reader.next(), Some(Ok(16)));
}

#[test]
fn tiny_rings_resume_at_the_event_they_still_hold() {
    // CAP 1: the one retained event is the newest; resuming past it would skip it too.
    let (mut writer, mut reader) = channel::<u64, 1>();
    for i in 0..3 {
        writer.add(i);
    }
    assert_eq!(reader.try_next(), Err(TryReadError::Lagged { missed: 2 }));
    assert_eq!(reader.try_next(), Ok(2));
    assert_eq!(reader.try_next(), Err(TryReadError::Empty));
    // CAP 2: both retained events are read, also after the writer is gone.
    let (mut writer, mut reader) = channel::<u64, 2>();
    for i in 0..5 {
        writer.add(i);
    }
    drop(writer);
    assert_eq!(reader.try_next(), Err(TryReadError::Lagged { missed: 3 }));
    assert_eq!(reader.try_next(), Ok(3));
    assert_eq!(reader.try_next(), Ok(4));
    assert_eq!(reader.try_next(), Err(TryReadError::Closed));
}

/// Readers racing a writer that never pauses, on rings of 1 and 2 slots: a read that
/// races the overwrite of the slot it resumed at is reported as another lag, so every
/// event is received or counted missed exactly once, in order, never torn. The newest
/// event is always received (once the writer is gone the ring holds it for good), so
/// `received > 0` cannot fail, whatever the scheduler does.
#[test]
fn readers_racing_a_writer_that_never_pauses_account_for_every_event() {
    let events = if cfg!(miri) { 200 } else { 100_000 };
    let one = stress::<1>(events, 2, false);
    let two = stress::<2>(events, 2, false);
    for (cap, tally) in one.iter().map(|t| (1, t)).chain(two.iter().map(|t| (2, t))) {
        assert_eq!(
            tally.received + tally.missed,
            events,
            "CAP {cap}: {tally:?}"
        );
        assert_eq!(tally.last, Some(events - 1), "CAP {cap}: {tally:?}");
        assert!(tally.received > 0, "CAP {cap}: {tally:?}");
        eprintln!("CAP {cap}: received {} of {events}", tally.received);
    }
}

#[test]
fn cursor_on_a_mut_reader_with_iterator_in_scope() {
    use std::iter::Iterator; // in the prelude anyway: spelled out for the point of the test

    fn read_one<I: Iterator<Item = Result<u32, Lagged>>>(it: &mut I) -> Option<u32> {
        it.next().and_then(Result::ok)
    }
    let (mut writer, mut reader) = channel::<u32, 4>();
    writer.add(5);
    let r: &mut Reader<u32, 4> = &mut reader;
    // `r.position()` here resolves to `Iterator::position` (E0061); `cursor` does not.
    assert_eq!(r.cursor(), 0);
    assert_eq!(read_one(r), Some(5));
    assert_eq!(r.cursor(), 1);
    assert_eq!(r.by_ref().cursor(), 1);
    #[allow(deprecated)]
    let old = reader.position(); // still there on an owned reader, forwarding
    assert_eq!(old, 1);
}

#[test]
fn received_plus_missed_equals_published() {
    let (mut writer, mut reader) = channel::<u64, 8>();
    let (mut received, mut missed, mut last) = (0u64, 0u64, None);
    for round in 0..200u64 {
        for _ in 0..(round % 23) {
            writer.add(writer.position());
        }
        for item in reader.by_ref().take((round % 5) as usize) {
            match item {
                Ok(v) => {
                    assert!(
                        last.is_none_or(|l| v > l),
                        "out of order: {v} after {last:?}"
                    );
                    assert_eq!(v, received + missed, "event number and count disagree");
                    last = Some(v);
                    received += 1;
                }
                Err(Lagged { missed: n }) => missed += n,
            }
        }
    }
    for item in reader.by_ref() {
        match item {
            Ok(_) => received += 1,
            Err(Lagged { missed: n }) => missed += n,
        }
    }
    assert_eq!(received + missed, writer.position());
}

#[test]
fn closed_after_the_last_event_is_read() {
    let (mut writer, mut reader) = channel::<u32, 4>();
    let late = writer.subscribe();
    writer.add(1);
    writer.add(2);
    assert!(!reader.is_closed());
    drop(writer);
    assert!(reader.is_closed());
    assert_eq!(reader.try_next(), Ok(1));
    assert_eq!(reader.next_blocking(Duration::from_secs(5)), Ok(2));
    assert_eq!(reader.try_next(), Err(TryReadError::Closed));
    assert_eq!(reader.next_blocking(Duration::MAX), Err(ReadError::Closed));
    assert_eq!(reader.next(), None);
    let mut late = late;
    assert_eq!(
        late.try_next(),
        Ok(1),
        "subscribed before event 1 was added"
    );
}

#[test]
fn subscribe_sees_only_later_events() {
    let (mut writer, _first) = channel::<u8, 8>();
    writer.add(1);
    writer.add(2);
    let mut late = writer.subscribe();
    assert_eq!(late.try_next(), Err(TryReadError::Empty));
    writer.add(3);
    assert_eq!(late.try_next(), Ok(3));
}

#[test]
fn try_add_refuses_to_lap_a_holding_reader_and_hands_the_value_back() {
    let (mut writer, mut holder) = channel::<[u8; 3], 4>();
    let mut free = holder.clone();
    holder.hold_writer().unwrap();
    assert!(holder.holds_writer() && !free.holds_writer());
    for i in 0..4 {
        assert_eq!(writer.try_add([i; 3]), Ok(u64::from(i)));
    }
    assert_eq!(writer.slowest_reader(), Some(0));
    assert_eq!(writer.backpressure_ratio(), 1.0);
    assert!(writer.should_throttle());
    let refused = writer.try_add([9; 3]).unwrap_err();
    assert_eq!(refused.slowest(), 0);
    assert_eq!(
        refused.into_inner(),
        [9; 3],
        "the refused value comes back whole"
    );
    assert_eq!(writer.position(), 4, "a refused event is not published");
    assert_eq!(holder.try_next(), Ok([0; 3]));
    assert_eq!(writer.try_add([4; 3]), Ok(4));
    assert!(writer.try_add([5; 3]).is_err());
    // `add` ignores holders: the free reader and the holder are both lapped by it.
    writer.add([5; 3]);
    writer.add([6; 3]);
    // Events 0..=6 are published, 3..=6 retained: the holder (at 1) skips 1 and 2.
    assert_eq!(holder.try_next(), Err(TryReadError::Lagged { missed: 2 }));
    assert_eq!(free.try_next(), Err(TryReadError::Lagged { missed: 3 }));
    assert_eq!(
        (holder.try_next(), free.try_next()),
        (Ok([3; 3]), Ok([3; 3]))
    );
    holder.release_writer();
    assert_eq!(writer.slowest_reader(), None);
    for i in 7..20 {
        writer
            .try_add([i; 3])
            .expect("nobody holds the writer back any more");
    }
}

#[test]
fn dropped_and_idle_readers() {
    let (mut writer, reader) = channel::<u64, 2>();
    let mut holder = reader.clone();
    holder.hold_writer().unwrap();
    drop(holder);
    assert_eq!(
        writer.slowest_reader(),
        None,
        "a dropped holder leaves its entry"
    );
    // A plain reader that never reads again (as good as leaked) is invisible to the
    // writer. (Not `mem::forget`: miri would report the leak.)
    let idle = reader;
    for i in 0..10 {
        writer.try_add(i).unwrap();
    }
    let mut idle_holder = writer.subscribe();
    idle_holder.hold_writer().unwrap();
    writer.try_add(10).unwrap();
    writer.try_add(11).unwrap();
    assert!(
        writer.try_add(12).is_err(),
        "an idle holder keeps try_add refusing"
    );
    writer.add(12); // but never `add`
    assert_eq!(writer.position(), 13);
    drop((idle, idle_holder));
    writer.try_add(13).unwrap();
}

#[test]
fn at_most_64_holders() {
    let (_writer, reader) = channel::<u64, 2>();
    let mut holders: Vec<Reader<u64, 2>> = (0..64).map(|_| reader.clone()).collect();
    for h in &mut holders {
        h.hold_writer().unwrap();
        h.hold_writer().unwrap(); // idempotent
    }
    let mut one_more = reader.clone();
    assert_eq!(one_more.hold_writer(), Err(TooManyHolders { max: 64 }));
    holders.pop();
    assert_eq!(one_more.hold_writer(), Ok(()));
}

#[test]
fn ratios_stay_right_after_many_wraps() {
    let (mut writer, mut reader) = channel::<u32, 8>();
    reader.hold_writer().unwrap();
    for round in 0..50u32 {
        for i in 0..6 {
            writer.try_add(round * 8 + i).unwrap();
        }
        assert_eq!(reader.backpressure_ratio(), 0.75, "round {round}");
        assert_eq!(writer.backpressure_ratio(), 0.75, "round {round}");
        assert!(!reader.is_under_pressure() && !writer.is_under_pressure());
        writer.try_add(0).unwrap();
        assert!(reader.is_under_pressure() && !reader.should_throttle());
        writer.try_add(0).unwrap();
        assert!(reader.should_throttle() && writer.should_throttle());
        assert_eq!(reader.by_ref().count(), 8);
        assert_eq!(reader.backpressure_ratio(), 0.0);
        assert_eq!(writer.backpressure_ratio(), 0.0);
    }
    assert_eq!(writer.position(), 400);
}

#[test]
fn next_blocking_times_out_then_wakes_for_a_late_event() {
    let (mut writer, mut reader) = channel::<u64, 8>();
    let start = Instant::now();
    assert_eq!(
        reader.next_blocking(Duration::from_millis(30)),
        Err(ReadError::Timeout)
    );
    assert!(start.elapsed() >= Duration::from_millis(30));
    let t = thread::spawn(move || {
        for i in 0..20 {
            thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 5 }));
            writer.add(i);
        }
    });
    for i in 0..20 {
        // Each wait is long enough that the reader parks before the event comes.
        assert_eq!(reader.next_blocking(Duration::MAX), Ok(i));
    }
    assert_eq!(reader.next_blocking(Duration::MAX), Err(ReadError::Closed));
    t.join().unwrap();
}

#[test]
#[cfg_attr(
    miri,
    ignore = "40,960 atomic words: minutes under miri; the stack is native"
)]
fn a_large_ring_is_built_on_the_heap() {
    // 1024 events of 264 bytes (about 320 KiB of slots) built on a thread with a 64 KiB
    // stack: no stack temporary of the ring's size.
    let t = thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(|| {
            let (mut writer, mut reader) = channel::<PooledEvent<256>, 1024>();
            let ev = PooledEvent::<256>::new(&[0xAB; 200], 7).unwrap();
            for _ in 0..3000 {
                writer.add(ev);
            }
            assert_eq!(
                reader.try_next(),
                Err(TryReadError::Lagged {
                    missed: 3000 - 1024
                })
            );
            let got = reader.try_next().unwrap();
            assert_eq!((got.payload(), got.event_type()), (&[0xAB; 200][..], 7));
        })
        .unwrap();
    t.join().unwrap();
}

#[test]
fn errors_display() {
    assert_eq!(
        Lagged { missed: 3 }.to_string(),
        "reader lagged behind the writer and missed 3 events"
    );
    assert_eq!(TryReadError::Empty.to_string(), "no new event yet");
    assert_eq!(
        ReadError::Lagged { missed: 2 }.to_string(),
        "reader lagged behind the writer and missed 2 events"
    );
    assert!(ReadError::Timeout.to_string().contains("timeout"));
    let (mut writer, mut reader) = channel::<u8, 1>();
    reader.hold_writer().unwrap();
    writer.try_add(0).unwrap();
    let err = writer.try_add(1).unwrap_err();
    assert!(err.to_string().contains("event 0"));
    assert!(format!("{err:?}").starts_with("WouldLap"));
    assert!(format!("{writer:?}").contains("position: 1"));
    assert!(format!("{reader:?}").contains("holds_writer: true"));
    let _: &dyn std::error::Error = &err;
    let _: &dyn std::error::Error = &TooManyHolders { max: 64 };
}

/// What one reader saw: events, lag reports, the sum of event numbers received.
#[derive(Debug, Default)]
struct Tally {
    received: u64,
    missed: u64,
    lag_reports: u64,
    /// The last event number received.
    last: Option<u64>,
}

/// Reads until the writer closes, checking order, gaps and checksums.
fn drain_checked<const CAP: usize>(mut reader: Reader<Ev, CAP>, blocking: bool) -> Tally {
    let mut tally = Tally::default();
    let mut expect = reader.cursor();
    loop {
        let item = if blocking {
            reader.next_blocking(Duration::MAX).map_err(|e| match e {
                ReadError::Lagged { missed } => Some(missed),
                ReadError::Closed => None,
                ReadError::Timeout => unreachable!("no timeout was set"),
            })
        } else {
            match reader.try_next() {
                Err(TryReadError::Empty) => {
                    thread::yield_now();
                    continue;
                }
                other => other.map_err(|e| match e {
                    TryReadError::Lagged { missed } => Some(missed),
                    _ => None,
                }),
            }
        };
        match item {
            Ok(ev) => {
                let seq = verify(&ev);
                assert_eq!(seq, expect, "event out of order or gap not reported");
                expect += 1;
                tally.received += 1;
                tally.last = Some(seq);
            }
            Err(Some(missed)) => {
                assert!(missed > 0, "a lag report of zero events");
                expect += missed;
                tally.missed += missed;
                tally.lag_reports += 1;
            }
            Err(None) => break,
        }
    }
    tally
}

fn stress<const CAP: usize>(events: u64, readers: usize, lossless: bool) -> Vec<Tally> {
    let (mut writer, first): (Writer<Ev, CAP>, _) = channel();
    let mut handles = Vec::new();
    for i in 0..readers {
        let mut reader = first.clone();
        if lossless {
            reader.hold_writer().unwrap();
        }
        handles.push(thread::spawn(move || drain_checked(reader, i % 2 == 0)));
    }
    drop(first);
    for seq in 0..events {
        let mut ev = make(seq);
        if lossless {
            loop {
                match writer.try_add(ev) {
                    Ok(s) => {
                        assert_eq!(s, seq);
                        break;
                    }
                    Err(refused) => {
                        ev = refused.into_inner();
                        thread::yield_now();
                    }
                }
            }
        } else {
            assert_eq!(writer.add(ev), seq);
        }
    }
    drop(writer);
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

const STRESS_EVENTS: u64 = 10_000_000;

#[test]
#[cfg_attr(miri, ignore = "ten million events are far too slow under miri")]
fn stress_one_writer_three_readers_ten_million_events() {
    for tally in stress::<1024>(STRESS_EVENTS, 3, false) {
        assert_eq!(tally.received + tally.missed, STRESS_EVENTS, "{tally:?}");
        assert!(tally.received > 0, "{tally:?}");
    }
}

#[test]
#[cfg_attr(miri, ignore = "a million events are far too slow under miri")]
fn stress_holding_readers_lose_nothing() {
    for tally in stress::<256>(1_000_000, 3, true) {
        assert_eq!(tally.received, 1_000_000, "{tally:?}");
        assert_eq!(tally.lag_reports, 0, "{tally:?}");
    }
}

#[test]
fn stress_small_ring_laps_constantly_and_never_tears() {
    let events = if cfg!(miri) { 300 } else { 300_000 };
    let tallies = stress::<4>(events, 3, false);
    for tally in &tallies {
        assert_eq!(tally.received + tally.missed, events, "{tally:?}");
    }
}

#[test]
fn stress_small_holding_run() {
    let events = if cfg!(miri) { 200 } else { 100_000 };
    for tally in stress::<4>(events, 2, true) {
        assert_eq!(tally.received, events, "{tally:?}");
    }
}

#[test]
fn readers_join_and_leave_mid_stream() {
    let events: u64 = if cfg!(miri) { 300 } else { 200_000 };
    let (mut writer, reader) = channel::<Ev, 64>();
    let joiner = thread::spawn(move || {
        let mut total = 0u64;
        let mut current = reader;
        for round in 0.. {
            // A fresh reader from a clone, sometimes holding the writer back, reads a
            // while, then leaves (dropped) while the writer keeps going.
            let mut next = current.clone();
            if round % 2 == 0 {
                next.hold_writer().unwrap();
            }
            drop(current);
            current = next;
            for _ in 0..50 {
                match current.next_blocking(Duration::MAX) {
                    Ok(ev) => {
                        verify(&ev);
                        total += 1;
                    }
                    Err(ReadError::Lagged { .. }) => {}
                    Err(ReadError::Closed) => return total,
                    Err(ReadError::Timeout) => unreachable!(),
                }
            }
        }
        unreachable!()
    });
    for seq in 0..events {
        let mut ev = make(seq);
        while let Err(refused) = writer.try_add(ev) {
            ev = refused.into_inner();
            thread::yield_now();
        }
    }
    drop(writer);
    assert!(joiner.join().unwrap() > 0);
}

#[test]
fn ends_move_between_threads() {
    fn send<S: Send>() {}
    fn sync<S: Sync>() {}
    send::<Writer<PooledEvent<64>, 8>>();
    send::<Reader<PooledEvent<64>, 8>>();
    sync::<Writer<PooledEvent<64>, 8>>();
    sync::<Reader<PooledEvent<64>, 8>>();
    let (mut writer, mut reader) = channel::<u64, 8>();
    let reader = thread::spawn(move || {
        while reader.try_next() == Err(TryReadError::Empty) {
            thread::yield_now();
        }
        reader
    });
    writer.add(1);
    let mut reader = reader.join().unwrap();
    assert_eq!(reader.cursor(), 1);
    assert_eq!(reader.try_next(), Err(TryReadError::Empty));
}

/// Reads batches until the writer closes, checking order, gaps and checksums; batches
/// are read in place when `reader` holds a lossless writer back.
fn drain_batches<const CAP: usize>(mut reader: Reader<Ev, CAP>, wait: Wait) -> Tally {
    let mut tally = Tally::default();
    let mut expect = reader.cursor();
    loop {
        let read = reader.read_batch_wait(wait, Duration::MAX, |ev| {
            let seq = verify(ev);
            assert_eq!(seq, expect, "event out of order or gap not reported");
            expect += 1;
            tally.received += 1;
            tally.last = Some(seq);
        });
        match read {
            Ok(count) => assert!(count > 0 && count <= CAP, "batch of {count}"),
            Err(ReadError::Lagged { missed }) => {
                assert!(missed > 0, "a lag report of zero events");
                expect += missed;
                tally.missed += missed;
                tally.lag_reports += 1;
            }
            Err(ReadError::Closed) => break,
            Err(ReadError::Timeout) => unreachable!("no timeout was set"),
        }
    }
    tally
}

/// A lossless writer publishing in batches to holding readers reading in place, next to
/// a reader that does not hold it back (copied, lapped): the holders get everything.
fn batch_stress<const CAP: usize>(events: u64, holders: usize, wait: Wait) -> (Vec<Tally>, Tally) {
    let (writer, first) = channel::<Ev, CAP>();
    let mut writer = writer.into_lossless();
    let handles: Vec<_> = (0..holders)
        .map(|_| {
            let mut reader = first.clone();
            reader.hold_writer().unwrap();
            thread::spawn(move || drain_batches(reader, wait))
        })
        .collect();
    let free = first.clone();
    let free = thread::spawn(move || drain_batches(free, Wait::Yield));
    drop(first);
    let mut seq = 0;
    let mut batch = Vec::new();
    while seq < events {
        // Batches of 1 to 37 events, so they straddle the ring's wrap at every offset.
        let len = (seq % 37 + 1).min(events - seq);
        batch.clear();
        batch.extend((seq..seq + len).map(make));
        assert_eq!(writer.position(), seq);
        assert_eq!(writer.add_slice(&batch, wait, Duration::MAX), len as usize);
        seq += len;
    }
    drop(writer);
    let tallies = handles.into_iter().map(|h| h.join().unwrap()).collect();
    (tallies, free.join().unwrap())
}

#[test]
fn batches_read_in_place_lose_nothing() {
    let events = if cfg!(miri) { 300 } else { 1_000_000 };
    for wait in [Wait::Block, Wait::Yield] {
        let (holders, free) = batch_stress::<64>(events, 2, wait);
        for tally in holders {
            assert_eq!(tally.received, events, "{wait:?} {tally:?}");
            assert_eq!(tally.lag_reports, 0, "{wait:?} {tally:?}");
        }
        assert_eq!(free.received + free.missed, events, "{free:?}");
    }
}

#[test]
fn batches_on_a_tiny_ring() {
    let events = if cfg!(miri) { 100 } else { 100_000 };
    let (holders, free) = batch_stress::<2>(events, 1, Wait::Yield);
    assert_eq!(holders[0].received, events, "{:?}", holders[0]);
    assert_eq!(free.received + free.missed, events, "{free:?}");
}

#[test]
fn read_batch_copies_when_the_writer_may_lap() {
    let (mut writer, mut holder) = channel::<u64, 4>();
    holder.hold_writer().unwrap();
    let mut free = holder.clone();
    assert_eq!(writer.add_slice(&[0, 1, 2]), 0);
    let mut got = Vec::new();
    assert_eq!(holder.read_batch(|e| got.push(*e)), Ok(3));
    assert_eq!(
        holder.read_batch(|e| got.push(*e)),
        Err(TryReadError::Empty)
    );
    // `add` laps even a holder on a writer that is not lossless; the copy sees it.
    assert_eq!(writer.add_slice(&[3, 4, 5, 6, 7, 8, 9]), 3);
    assert_eq!(
        holder.read_batch(|e| got.push(*e)),
        Err(TryReadError::Lagged { missed: 3 })
    );
    assert_eq!(holder.read_batch(|e| got.push(*e)), Ok(4));
    assert_eq!(got, [0, 1, 2, 6, 7, 8, 9]);
    assert_eq!(
        free.read_batch(|_| {}),
        Err(TryReadError::Lagged { missed: 6 })
    );
    drop(writer);
    assert_eq!(free.read_batch(|_| {}), Ok(4));
    assert_eq!(free.read_batch(|_| {}), Err(TryReadError::Closed));
}

#[test]
fn a_holder_joining_a_lossless_writer_mid_stream_starts_in_place_safely() {
    let (writer, mut early) = channel::<u64, 4>();
    let mut late = early.clone();
    let mut writer = writer.into_lossless();
    // Nobody holds yet: the lossless writer laps freely.
    assert_eq!(writer.try_add_slice(&[0, 1, 2, 3, 4, 5]), 6);
    early.hold_writer().unwrap(); // at event 0, already overwritten
    late.hold_writer().unwrap();
    // Not acknowledged yet: the first batch is copied, so the lap is seen.
    assert_eq!(
        early.read_batch(|_| {}),
        Err(TryReadError::Lagged { missed: 2 })
    );
    // The writer's next admission acknowledges both holders (and waits for the slowest).
    assert_eq!(
        writer.try_add_slice(&[6, 7]),
        0,
        "event 2 is unread by `early`"
    );
    let mut got = Vec::new();
    assert_eq!(early.read_batch(|e| got.push(*e)), Ok(4));
    assert_eq!(got, [2, 3, 4, 5]);
    assert_eq!(
        late.read_batch(|_| {}),
        Err(TryReadError::Lagged { missed: 2 })
    );
    assert_eq!(late.read_batch(|_| {}), Ok(4));
    assert_eq!(writer.try_add_slice(&[6, 7]), 2);
}

#[test]
fn a_panicking_batch_is_read_again() {
    let (writer, mut reader) = channel::<u32, 8>();
    let mut writer = writer.into_lossless();
    reader.hold_writer().unwrap();
    assert_eq!(writer.try_add_slice(&[1, 2, 3]), 3);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        reader.read_batch(|e| assert_ne!(*e, 2, "the reader's work failed"))
    }));
    assert!(panicked.is_err());
    assert_eq!(reader.cursor(), 0);
    assert_eq!(
        writer.slowest_reader(),
        Some(0),
        "the writer stays held back"
    );
    let mut got = Vec::new();
    assert_eq!(reader.read_batch(|e| got.push(*e)), Ok(3));
    assert_eq!(got, [1, 2, 3]);
}

/// A `Pod` aligned beyond a cache line cannot be read in place; batches copy it.
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Zeroable, bytemuck::Pod)]
#[repr(C, align(128))]
struct Wide([u64; 16]);

#[test]
fn over_aligned_events_are_copied_out() {
    let (writer, mut reader) = channel::<Wide, 4>();
    let mut writer = writer.into_lossless();
    reader.hold_writer().unwrap();
    assert_eq!(writer.try_add_slice(&[Wide([7; 16]), Wide([8; 16])]), 2);
    let mut got = Vec::new();
    assert_eq!(
        reader.read_batch(|e| {
            assert_eq!(e as *const Wide as usize % 128, 0);
            got.push(e.0[15]);
        }),
        Ok(2)
    );
    assert_eq!(got, [7, 8]);
}

#[test]
fn lossless_add_times_out_and_hands_the_value_back() {
    let (writer, mut reader) = channel::<u8, 1>();
    let mut writer = writer.into_lossless();
    reader.hold_writer().unwrap();
    assert_eq!(writer.add(1, Wait::Spin, Duration::MAX), Ok(0));
    for wait in [Wait::Spin, Wait::Yield, Wait::Block] {
        let refused = writer.add(2, wait, Duration::from_millis(2)).unwrap_err();
        assert_eq!((refused.slowest(), refused.into_inner()), (0, 2));
        assert_eq!(writer.add_slice(&[2, 3], wait, Duration::from_millis(2)), 0);
    }
    assert_eq!(reader.try_next(), Ok(1));
    assert_eq!(writer.add_slice(&[2, 3], Wait::Block, Duration::ZERO), 1);
}

#[test]
fn holders_of_a_lossless_writer_read_in_the_slots_themselves() {
    let (writer, mut reader) = channel::<u64, 4>();
    let mut writer = writer.into_lossless();
    reader.hold_writer().unwrap();
    assert_eq!(writer.try_add_slice(&[1, 2, 3]), 3);
    let mut addresses = Vec::new();
    assert_eq!(
        reader.read_batch(|e| addresses.push(e as *const u64 as usize)),
        Ok(3)
    );
    // One 64-byte slot apart, in the ring: no copy was made.
    assert_eq!(addresses[1] - addresses[0], 64);
    assert_eq!(addresses[2] - addresses[1], 64);
}

/// Runs a future to completion on this thread, parking between polls.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        thread::park();
    }
}

#[test]
fn recv_awaits_every_event_then_closed() {
    let events: u64 = if cfg!(miri) { 50 } else { 100_000 };
    let (mut writer, first) = channel::<Ev, 64>();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let mut reader = first.clone();
            thread::spawn(move || {
                block_on(async {
                    let (mut received, mut missed) = (0, 0);
                    let mut expect = 0;
                    loop {
                        match reader.recv().await {
                            Ok(ev) => {
                                assert_eq!(verify(&ev), expect);
                                expect += 1;
                                received += 1;
                            }
                            Err(RecvError::Lagged { missed: m }) => {
                                expect += m;
                                missed += m;
                            }
                            Err(RecvError::Closed) => return (received, missed),
                        }
                    }
                })
            })
        })
        .collect();
    drop(first);
    for seq in 0..events {
        writer.add(make(seq));
        if seq % 64 == 0 {
            thread::yield_now(); // let the readers park now and then
        }
    }
    drop(writer);
    for reader in readers {
        let (received, missed) = reader.join().unwrap();
        assert_eq!(received + missed, events);
    }
}

#[test]
fn a_dropped_recv_loses_nothing() {
    let (mut writer, mut reader) = channel::<u32, 4>();
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    {
        let mut pending = std::pin::pin!(reader.recv());
        assert!(pending.as_mut().poll(&mut cx).is_pending());
    } // dropped while registered
    writer.add(5);
    assert_eq!(block_on(reader.recv()), Ok(5));
    drop(writer);
    assert_eq!(block_on(reader.recv()), Err(RecvError::Closed));
    assert_eq!(
        RecvError::Closed.to_string(),
        "the writer is gone and every event was read"
    );
}

#[test]
fn try_add_with_makes_events_in_their_slots_and_publishes_them_if_make_panics() {
    let (mut writer, mut reader) = channel::<u64, 8>();
    reader.hold_writer().unwrap();
    assert_eq!(writer.try_add_with(0, |_| unreachable!()), 0);
    assert_eq!(writer.try_add_with(3, |seq| seq + 100), 3);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        writer.try_add_with(4, |seq| {
            assert_ne!(seq, 5, "the producer failed");
            seq + 100
        })
    }));
    assert!(panicked.is_err());
    assert_eq!(
        writer.position(),
        5,
        "the two events made before the panic are published"
    );
    assert_eq!(
        writer.try_add_with(100, |seq| seq + 100),
        3,
        "room for 8 - 5"
    );
    let got: Vec<_> = reader.by_ref().flatten().collect();
    assert_eq!(got, (100..108).collect::<Vec<_>>());
}
