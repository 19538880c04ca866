//! Adversarial review of the broadcast ring: one test per finding. The first three
//! failed on the reviewed code and pass since their fixes (a fresh cursor per batch;
//! `try_add_with` capped at `CAP`). The last is an OPEN defect: it passes natively but
//! miri reports a data race with some seeds, so it is ignored under miri until the
//! cause is found (see its comment and the broadcast module docs).
#![cfg(not(loom))]

use std::thread;
use std::time::Duration;

use slotring::broadcast::{TryReadError, Wait, channel};

/// `Reader::read_batch` promises to call `f` "with every event published and not yet
/// read" and return how many. After a `try_next` (or an iterator step) the reader keeps
/// the writer's cursor it loaded then, and `batch` reloads the cursor only once the
/// reader has caught up with that cached value: events published since are left out of
/// the batch. Scenario: events 0, 1 published; `try_next` reads 0 (caches cursor 2);
/// events 2, 3 published; `read_batch` should hand out 1, 2, 3 (Ok(3)); it hands out only
/// event 1 (Ok(1)). The same happens on the in-place path of a lossless holder.
/// Severity: doc mismatch / wrong result (a caller that reads one batch per publication,
/// or sizes work by the count, falls behind; nothing is lost).
#[test]
fn read_batch_stops_at_the_cursor_cached_by_an_earlier_read() {
    let (mut writer, mut reader) = channel::<u64, 8>();
    writer.add_slice(&[0, 1]);
    assert_eq!(reader.try_next(), Ok(0));
    writer.add_slice(&[2, 3]);
    let mut got = Vec::new();
    assert_eq!(reader.read_batch(|e| got.push(*e)), Ok(3));
    assert_eq!(got, [1, 2, 3]);
}

/// Same on the in-place path: a lossless writer's acknowledged holder.
#[test]
fn in_place_read_batch_stops_at_the_cursor_cached_by_an_earlier_read() {
    let (writer, mut reader) = channel::<u64, 8>();
    let mut writer = writer.into_lossless();
    reader.hold_writer().unwrap();
    assert_eq!(writer.try_add_slice(&[0]), 1); // acknowledges the hold
    assert_eq!(reader.read_batch(|_| {}), Ok(1)); // in place from now on
    assert_eq!(writer.try_add_slice(&[1, 2]), 2);
    assert_eq!(reader.try_next(), Ok(1)); // caches cursor 3
    assert_eq!(writer.try_add_slice(&[3, 4]), 2);
    let mut got = Vec::new();
    assert_eq!(reader.read_batch(|e| got.push(*e)), Ok(3));
    assert_eq!(got, [2, 3, 4]);
    assert_eq!(reader.read_batch(|_| {}), Err(TryReadError::Empty));
}

/// `Writer::try_add_with(max, make)` is documented as "publishes up to `max` events ...
/// as many as fit without overwriting an event a holding reader has not read" with no
/// `# Panics` section. With no holding reader every event "fits", `room` grants all of
/// `max`, and `check_room_in_sequence(max)` panics with "broadcast ring sequence numbers
/// exhausted" on event 0 for `max = usize::MAX` (a natural "as many as fit" argument,
/// which works while a reader holds: then at most CAP are made). Expected: no panic on a
/// fresh ring (at most the ring's room, or the documented behaviour); actual: panic.
/// Severity: panic on input / doc mismatch.
#[test]
fn try_add_with_as_many_as_fit_panics_without_a_holder() {
    let (mut writer, mut reader) = channel::<u64, 4>();
    reader.hold_writer().unwrap();
    assert_eq!(writer.try_add_with(usize::MAX, |seq| seq), 4); // fine while holding
    reader.release_writer();
    let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // With nobody holding, stop after a ring's worth to keep the test finite.
        writer.try_add_with(usize::MAX, |seq| {
            assert!(seq < 4 + 64, "made far more than a ring");
            seq
        })
    }));
    assert!(
        made.is_ok(),
        "try_add_with(usize::MAX) panicked on a ring at event {}",
        writer.position()
    );
}

fn v3(seq: u64) -> [u64; 3] {
    [seq, seq ^ 0xdead_beef, seq.wrapping_mul(31)]
}

/// UB (data race, found by miri): a lossless writer publishes with `add_slice` while
/// two readers keep releasing and re-taking their holds and read batches (in place once
/// the writer acknowledged the hold). Miri (Stacked Borrows, strict provenance) reports
/// "Data race detected between (1) non-atomic read on thread `unnamed-..` and (2) atomic
/// store on thread ..": the closure's read of `*e` (the in-place `&T` into the slot)
/// and the writer's `Slots::write` store into that slot (`slots.rs`, the payload store,
/// via `LosslessWriter::add_slice` -> `try_add_slice` -> `publish`) are not ordered:
/// the writer overwrote (or reused) a slot a holding reader's in-place batch borrows,
/// without its store being ordered after the read. Expected: no race (the module docs:
/// the writer "cannot reach the slots it reads until its entry moves past them").
/// Actual under miri: UB report. In a normal run the values still check out (the window
/// is small), so run it under miri:
/// `MIRIFLAGS="-Zmiri-strict-provenance -Zmiri-seed=12" cargo +nightly miri test --all-features --test review_broadcast in_place_batch_races`
/// (seed 12 reproduces it; `-Zmiri-many-seeds=0..16` finds it too). The root cause is not
/// pinned down: the release/re-take of holds (`release_writer`, `hold_writer`, the
/// acknowledgement by registry version) is the part this scenario adds to the passing
/// in-place tests.
#[test]
#[cfg_attr(
    miri,
    ignore = "open defect: miri reports a data race with some seeds (3 of 0..48 on the final tree); see above"
)]
fn in_place_batch_races_the_writer_when_holds_are_released_and_retaken() {
    for round in 0..if cfg!(miri) { 1 } else { 10u64 } {
        let (w, first) = channel::<[u64; 3], 4>();
        let mut w = w.into_lossless();
        let total = if cfg!(miri) { 300 } else { 100_000u64 };
        let hs: Vec<_> = (0..2)
            .map(|m| {
                let mut r = first.clone();
                thread::spawn(move || {
                    let (mut recv, mut missed, mut expect) = (0u64, 0u64, 0u64);
                    let mut x = m * 1000 + round + 3;
                    loop {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        match (x >> 33) % 16 {
                            0 => r.release_writer(),
                            1 | 2 => {
                                let _ = r.hold_writer();
                            }
                            _ => {}
                        }
                        let mut bad = None;
                        let res = r.read_batch(|e| {
                            if *e != v3(expect) && bad.is_none() {
                                bad = Some((*e, expect));
                            }
                            // dawdle a little inside the borrow
                            if expect % 7 == 0 {
                                std::hint::spin_loop();
                            }
                            expect += 1;
                            recv += 1;
                        });
                        assert!(bad.is_none(), "{bad:?}");
                        match res {
                            Ok(_) => {}
                            Err(TryReadError::Lagged { missed: mm }) => {
                                missed += mm;
                                expect += mm;
                            }
                            Err(TryReadError::Empty) => thread::yield_now(),
                            Err(TryReadError::Closed) => return (recv, missed),
                        }
                        assert_eq!(r.cursor(), expect);
                    }
                })
            })
            .collect();
        drop(first);
        let mut seq = 0u64;
        let mut x = round + 11;
        while seq < total {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = ((x >> 33) % 9).min(total - seq);
            let vals: Vec<_> = (seq..seq + n).map(v3).collect();
            let done = w.add_slice(&vals, Wait::Yield, Duration::from_secs(20)) as u64;
            assert_eq!(done, n, "writer stuck");
            seq += n;
        }
        drop(w);
        for h in hs {
            let (r, m) = h.join().unwrap();
            assert_eq!(r + m, total, "recv {r} missed {m}");
        }
    }
}
