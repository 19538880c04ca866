//! Loom models of the broadcast ring. Run with
//! `RUSTFLAGS="--cfg loom -C debug-assertions=on" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom cargo test --release --test loom_broadcast`.
//!
//! Most models have a writer (the main thread) and two readers on a ring of two slots, and
//! the writer adds three events, so it wraps and can lap the readers; one has a single
//! slot and a single reader, so resuming at the retained event races its overwrite. Events are
//! `[seq, seq]`: a torn read would show two different words.
#![cfg(loom)]

use std::time::Duration;

use loom::thread;
use slotring::broadcast::{LosslessWriter, ReadError, Reader, RecvError, TryReadError, channel};

type Ev = [u64; 2];

/// What a reader saw: every event number it received, and the events it was told it
/// missed.
#[derive(Default)]
struct Seen {
    events: Vec<u64>,
    missed: u64,
    expect: u64,
}

impl Seen {
    /// Checks one read: every event whole and in order, lag reports accounting for
    /// exactly the gaps. Returns false once the ring is closed and drained.
    fn record(&mut self, read: Result<Ev, TryReadError>) -> bool {
        match read {
            Ok([a, b]) => {
                assert_eq!(a, b, "torn event: {a} and {b} in one event");
                assert_eq!(a, self.expect, "out of order, or a gap not reported");
                self.events.push(a);
                self.expect += 1;
            }
            Err(TryReadError::Lagged { missed }) => {
                assert!(missed > 0);
                self.missed += missed;
                self.expect += missed;
            }
            Err(TryReadError::Empty) => {}
            Err(TryReadError::Closed) => return false,
        }
        true
    }
}

/// A reader thread: a bounded number of polls racing the writer (loom cannot explore an
/// unbounded polling loop), handing the reader back to finish after the writer is done.
fn poll<const CAP: usize>(mut reader: Reader<Ev, CAP>, polls: usize) -> (Reader<Ev, CAP>, Seen) {
    let mut seen = Seen::default();
    for _ in 0..polls {
        if !seen.record(reader.try_next()) {
            break;
        }
    }
    (reader, seen)
}

/// Reads what is left once the writer is gone.
fn finish<const CAP: usize>((mut reader, mut seen): (Reader<Ev, CAP>, Seen)) -> Seen {
    while seen.record(reader.try_next()) {}
    seen
}

/// Writer laps two polling readers: no torn or reordered event, and
/// received + missed = published for each reader.
#[test]
fn writer_laps_two_readers() {
    loom::model(|| {
        let (mut writer, first) = channel::<Ev, 2>();
        let second = first.clone();
        // Two polls for one reader, one for the other: enough for a read to race the
        // overwrite of its slot, small enough to finish in about a minute.
        let readers: Vec<_> = [(first, 2), (second, 1)]
            .into_iter()
            .map(|(r, polls)| thread::spawn(move || poll(r, polls)))
            .collect();
        for seq in 0..3 {
            writer.add([seq, seq]);
        }
        drop(writer);
        for r in readers {
            let seen = finish(r.join().unwrap());
            assert_eq!(seen.events.len() as u64 + seen.missed, 3);
            assert_eq!(
                seen.events.last(),
                Some(&2),
                "the newest event is never lost"
            );
        }
    });
}

/// One slot, one reader polling twice while the writer adds three events: a lapped
/// reader resumes at the event the slot holds, and a read racing the overwrite of that
/// event is reported as another lag, so received + missed = published exactly, and the
/// newest event is received once the writer is gone.
#[test]
fn single_slot_resume_races_the_overwrite() {
    loom::model(|| {
        let (mut writer, reader) = channel::<Ev, 1>();
        let reader = thread::spawn(move || poll(reader, 2));
        for seq in 0..3 {
            writer.add([seq, seq]);
        }
        drop(writer);
        let seen = finish(reader.join().unwrap());
        assert_eq!(seen.events.len() as u64 + seen.missed, 3);
        assert_eq!(
            seen.events.last(),
            Some(&2),
            "the newest event is never lost"
        );
    });
}

/// A reader holding the writer back is never lapped by `try_add`, while a free reader
/// next to it may be; both see whole events only.
#[test]
fn try_add_respects_a_holding_reader() {
    loom::model(|| {
        let (mut writer, mut holder) = channel::<Ev, 2>();
        holder.hold_writer().unwrap();
        let free = holder.clone();
        let holder = thread::spawn(move || poll(holder, 3));
        let free = thread::spawn(move || poll(free, 2));
        writer.try_add([0, 0]).unwrap();
        writer.try_add([1, 1]).unwrap();
        // Event 2 goes to event 0's slot: refused unless the holder was seen past it.
        let third = writer.try_add([2, 2]);
        let (mut reader, mut held) = holder.join().unwrap();
        if let Err(refused) = third {
            assert_eq!(
                refused.slowest(),
                0,
                "refused although the holder had moved on"
            );
            // Now the holder reads on this thread, so the writer must see it move.
            while held.events.is_empty() {
                held.record(reader.try_next());
            }
            writer.try_add(refused.into_inner()).unwrap();
        }
        drop(writer);
        let held = finish((reader, held));
        assert_eq!(held.events, [0, 1, 2], "a holding reader lost events");
        assert_eq!(held.missed, 0);
        let seen = finish(free.join().unwrap());
        assert_eq!(seen.events.len() as u64 + seen.missed, 3);
    });
}

/// Blocks in `next_blocking` until `accounted` events were received or reported
/// missed (or the ring closed), checking each is whole.
fn block_for(mut reader: Reader<Ev, 2>, accounted: usize) -> Vec<u64> {
    let mut got = Vec::new();
    while got.len() < accounted {
        match reader.next_blocking(Duration::MAX) {
            Ok([a, b]) => {
                assert_eq!(a, b, "torn event");
                got.push(a);
            }
            Err(ReadError::Lagged { missed }) => {
                got.extend(std::iter::repeat_n(u64::MAX, missed as usize))
            }
            Err(ReadError::Closed) => break,
            Err(ReadError::Timeout) => unreachable!("no timeout was set"),
        }
    }
    got
}

/// Two readers block in `next_blocking` (spin, yield, park) while the writer publishes
/// two events. The first must be woken by the events themselves: the writer waits for
/// it before it goes away, so a lost wake-up is a deadlock loom reports. The second
/// blocks until the writer's drop wakes it with `Closed`.
#[test]
fn blocking_readers_are_woken() {
    loom::model(|| {
        let (mut writer, first) = channel::<Ev, 2>();
        let second = first.clone();
        let first = thread::spawn(move || block_for(first, 2));
        let second = thread::spawn(move || block_for(second, usize::MAX));
        writer.add([0, 0]);
        writer.add([1, 1]);
        assert_eq!(first.join().unwrap(), [0, 1], "CAP 2 holds both events");
        drop(writer);
        assert_eq!(second.join().unwrap(), [0, 1]);
    });
}

/// Reads batches on a holding reader until `accounted` events were received or the ring
/// closed, checking each event is whole and in order. Under loom the in-place read loads
/// every word with `unsync_load`, which fails the model if a store to the word is not
/// ordered before it: the writer overwriting a slot a batch still borrows.
fn read_batches<const CAP: usize>(
    mut reader: Reader<Ev, CAP>,
    polls: usize,
) -> (Reader<Ev, CAP>, Vec<u64>) {
    let mut got = Vec::new();
    for _ in 0..polls {
        match reader.read_batch(|&[a, b]| {
            assert_eq!(a, b, "torn event: {a} and {b} in one event");
            got.push(a);
        }) {
            Ok(_) | Err(TryReadError::Empty) => {}
            Err(TryReadError::Lagged { .. }) => panic!("a holding reader was lapped"),
            Err(TryReadError::Closed) => break,
        }
    }
    (reader, got)
}

/// Drains a batch reader once the writer is gone: the events received and the number
/// reported missed.
fn finish_batches<const CAP: usize>(
    (mut reader, mut got): (Reader<Ev, CAP>, Vec<u64>),
) -> (Vec<u64>, u64) {
    let mut missed = 0;
    loop {
        match reader.read_batch(|&[a, b]| {
            assert_eq!(a, b, "torn event");
            got.push(a);
        }) {
            Ok(_) => {}
            Err(TryReadError::Lagged { missed: m }) => missed += m,
            Err(TryReadError::Closed) => return (got, missed),
            Err(TryReadError::Empty) => unreachable!("the writer is gone"),
        }
    }
}

/// Publishes events `seq..events` in batches of up to `BATCH` with `try_add_slice`
/// until the slowest holder leaves no room; returns the next event number.
fn publish_batches<const CAP: usize, const BATCH: u64>(
    writer: &mut LosslessWriter<Ev, CAP>,
    mut seq: u64,
    events: u64,
) -> u64 {
    while seq < events {
        let batch: Vec<Ev> = (seq..events.min(seq + BATCH)).map(|s| [s, s]).collect();
        match writer.try_add_slice(&batch) as u64 {
            0 => break,
            published => seq += published,
        }
    }
    seq
}

/// One batch read on the main thread (after its reader thread was joined), so a writer
/// refused by that holder makes progress. Returns the events reported missed.
fn read_one_batch<const CAP: usize>((reader, got): &mut (Reader<Ev, CAP>, Vec<u64>)) -> u64 {
    match reader.read_batch(|&[a, b]| {
        assert_eq!(a, b, "torn event");
        got.push(a);
    }) {
        Err(TryReadError::Lagged { missed }) => missed,
        _ => 0,
    }
}

/// Two threads: a lossless writer publishes three events in batches into two slots,
/// while a holding reader reads batches in place. The writer must never store into a
/// slot the reader's batch still borrows (loom's `unsync_load` check), and the reader
/// gets every event, in order.
#[test]
fn batch_publish_and_in_place_read() {
    loom::model(|| {
        let (writer, mut reader) = channel::<Ev, 2>();
        reader.hold_writer().unwrap();
        let mut writer = writer.into_lossless();
        let reader = thread::spawn(move || read_batches(reader, 2));
        let mut seq = publish_batches::<2, 2>(&mut writer, 0, 3);
        let mut reader = reader.join().unwrap();
        while seq < 3 {
            assert_eq!(
                read_one_batch(&mut reader),
                0,
                "a holding reader was lapped"
            );
            seq = publish_batches::<2, 2>(&mut writer, seq, 3);
        }
        drop(writer);
        let got = finish_batches(reader);
        assert_eq!(got, (vec![0, 1, 2], 0), "a holding reader lost events");
    });
}

/// Three threads: the lossless writer and two holding readers reading in place, one of
/// them starting to hold while the writer runs, so the writer's acknowledgement of a
/// hold races that reader's first batch. Nobody is lapped once acknowledged, nothing is
/// torn, and no slot a batch borrows is overwritten.
#[test]
fn batch_publish_two_in_place_readers_one_joining_late() {
    // Four events, one a batch: the writer can lap the late reader before it sees the
    // hold, then acknowledge it with the next batch, so the reader's first in-place
    // batch must notice the lap.
    const EVENTS: u64 = 4;
    loom::model(|| {
        let (writer, mut early) = channel::<Ev, 2>();
        early.hold_writer().unwrap();
        let late = early.clone();
        let mut writer = writer.into_lossless();
        let early = thread::spawn(move || read_batches(early, 1));
        let late = thread::spawn(move || {
            let mut late = late;
            late.hold_writer().unwrap();
            // Copies (or is lapped) until the writer acknowledges it, then reads in
            // place; either way what it receives is whole and in order.
            let mut got = Vec::new();
            let mut missed = 0;
            match late.read_batch(|&[a, b]| {
                assert_eq!(a, b, "torn event");
                got.push(a);
            }) {
                Err(TryReadError::Lagged { missed: m }) => missed += m,
                Ok(_) | Err(TryReadError::Empty) => {}
                Err(TryReadError::Closed) => unreachable!("the writer is alive"),
            }
            (late, got, missed)
        });
        let mut seq = publish_batches::<2, 1>(&mut writer, 0, EVENTS);
        let mut early = early.join().unwrap();
        let (late, got, mut missed) = late.join().unwrap();
        let mut late = (late, got);
        while seq < EVENTS {
            assert_eq!(read_one_batch(&mut early), 0, "a holding reader was lapped");
            missed += read_one_batch(&mut late);
            seq = publish_batches::<2, 1>(&mut writer, seq, EVENTS);
        }
        drop(writer);
        assert_eq!(finish_batches(early), ((0..EVENTS).collect(), 0));
        let (got, missed_after) = finish_batches(late);
        assert_eq!(got.len() as u64 + missed + missed_after, EVENTS);
        assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order: {got:?}");
        assert_eq!(
            got.last(),
            Some(&(EVENTS - 1)),
            "the newest event is never lost"
        );
    });
}

/// Two threads: a reader awaits `recv()` (registering its waker, re-checking) while the
/// writer publishes one event; the writer waits for the reader before it goes away, so
/// a lost wake-up leaves the task pending for good, which loom reports as a deadlock.
/// With a second awaiting reader (3 threads), one wake-up must reach both. Then the
/// writer's drop completes a `recv` with `Closed`.
#[test]
fn async_readers_are_woken() {
    for readers in [1, 2] {
        loom::model(move || {
            let (mut writer, first) = channel::<Ev, 2>();
            let awaiting: Vec<_> = (0..readers)
                .map(|_| {
                    let mut reader = first.clone();
                    thread::spawn(move || {
                        let got = loom::future::block_on(reader.recv());
                        (reader, got)
                    })
                })
                .collect();
            drop(first);
            writer.add([7, 7]);
            let mut readers: Vec<_> = awaiting
                .into_iter()
                .map(|reader| {
                    let (reader, got) = reader.join().unwrap();
                    assert_eq!(got, Ok([7, 7]));
                    reader
                })
                .collect();
            let closing = thread::spawn(move || {
                let mut reader = readers.pop().unwrap();
                loom::future::block_on(reader.recv())
            });
            drop(writer);
            assert_eq!(closing.join().unwrap(), Err(RecvError::Closed));
        });
    }
}
