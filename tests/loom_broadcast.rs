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
use slotring::broadcast::{ReadError, Reader, TryReadError, channel};

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
