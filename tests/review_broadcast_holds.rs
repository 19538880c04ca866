//! Adversarial review of the broadcast ring (batches, the lossless writer, in-place
//! batches, lag counts, waits): scenarios that the code held, kept as regression tests.
//!
//! The loom model at the end (module `loom_models`) runs with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom cargo test --release --all-features --test review_broadcast_holds`
//! (about 90 s); it fails when the reader keeps the cursor it cached before the ack.

#[cfg(not(loom))]
mod threads {
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

    use slotring::broadcast::{ReadError, Reader, RecvError, TryReadError, Wait, channel};
    /// Runs `f` on a thread and fails (rather than hangs) if it does not finish in time.
    fn within<R: Send + 'static>(secs: u64, f: impl FnOnce() -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(secs))
            .expect("hung (or panicked): no result in time")
    }

    fn value(seq: u64) -> u64 {
        seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x55
    }

    /// A holder that read (and so cached the writer's cursor) before it started holding:
    /// the writer, still lossy, laps it; then it becomes lossless and acknowledges the
    /// hold. The first in-place batch must not trust the cursor cached before the ack
    /// (the slot of event 1 now holds event 5): a lap, then the retained events.
    /// Catches the mutation "keep `published` when `in_place` turns on".
    #[test]
    fn stale_cursor_cached_before_the_ack_is_not_trusted() {
        let (mut writer, mut reader) = channel::<u64, 4>();
        writer.add(value(0));
        writer.add(value(1));
        assert_eq!(reader.try_next(), Ok(value(0))); // caches cursor 2
        reader.hold_writer().unwrap(); // at event 1
        for seq in 2..7 {
            writer.add(value(seq)); // plain `add` laps the holder: slot 1 gets event 5
        }
        let mut writer = writer.into_lossless();
        assert!(writer.try_add(value(7)).is_err(), "event 3 unread: full");
        let mut got = Vec::new();
        assert_eq!(
            reader.read_batch(|e| got.push(*e)),
            Err(TryReadError::Lagged { missed: 2 })
        );
        assert!(
            got.is_empty(),
            "read an overwritten slot as event 1: {got:?}"
        );
        assert_eq!(reader.read_batch(|e| got.push(*e)), Ok(4));
        assert_eq!(got, (3..7).map(value).collect::<Vec<_>>());
    }

    /// Same, with the batch inside the cached window: reader caches cursor 3 at event 1,
    /// holds, the lossy writer publishes 2 more (no lap), becomes lossless; the in-place
    /// batch reads 1..5 exactly.
    #[test]
    fn holder_starting_mid_stream_reads_exactly_once_acked() {
        let (mut writer, mut reader) = channel::<u64, 4>();
        for seq in 0..3 {
            writer.add(value(seq));
        }
        assert_eq!(reader.try_next(), Ok(value(0)));
        reader.hold_writer().unwrap();
        writer.add(value(3));
        writer.add(value(4));
        let mut writer = writer.into_lossless();
        assert_eq!(writer.try_add_slice(&[value(5)]), 0, "event 1 unread");
        let mut got = Vec::new();
        assert_eq!(reader.read_batch(|e| got.push(*e)), Ok(4));
        assert_eq!(got, (1..5).map(value).collect::<Vec<_>>());
        assert_eq!(
            writer.try_add_slice(&[value(5), value(6), value(7), value(8), value(9)]),
            4
        );
    }

    /// Hold released and re-taken while in place: the lossless writer laps the reader in
    /// between; the re-taken hold must not read in place from the stale state.
    #[test]
    fn hold_released_and_retaken_after_a_lap() {
        let (writer, mut reader) = channel::<u64, 4>();
        let mut writer = writer.into_lossless();
        reader.hold_writer().unwrap();
        assert_eq!(writer.try_add_slice(&[value(0), value(1)]), 2);
        let mut got = Vec::new();
        assert_eq!(reader.read_batch(|e| got.push(*e)), Ok(2)); // in place, caches cursor 2
        assert_eq!(writer.try_add_slice(&[value(2)]), 1);
        reader.release_writer();
        let vals: Vec<u64> = (3..11).map(value).collect();
        assert_eq!(writer.try_add_slice(&vals), 8); // laps the released reader
        reader.hold_writer().unwrap(); // at event 2 (overwritten by event 10... slot 2 -> 10)
        // Not acked yet: copies, sees the lap.
        got.clear();
        assert_eq!(
            reader.read_batch(|e| got.push(*e)),
            Err(TryReadError::Lagged { missed: 5 })
        );
        assert_eq!(writer.try_add_slice(&[value(11)]), 0, "event 7 unread");
        assert_eq!(reader.read_batch(|e| got.push(*e)), Ok(4));
        assert_eq!(got, (7..11).map(value).collect::<Vec<_>>());
    }

    /// A tiny deterministic random model of one writer and several readers, checked
    /// against the tokio convention event by event (single thread, so exact).
    #[test]
    fn random_single_thread_model_matches_tokio_convention() {
        const CAP: usize = 4;
        let mut rng = 0x1234_5678_9abc_def1u64;
        let mut next_rand = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        for round in 0..if cfg!(miri) { 3 } else { 300 } {
            let lossless = round % 2 == 1;
            let (mut plain, first) = channel::<u64, CAP>();
            let mut readers: Vec<Reader<u64, CAP>> = vec![first];
            let mut lw = None;
            if lossless {
                lw = Some(plain.into_lossless());
                // Re-make a plain handle is impossible; keep `plain` moved.
                let (p, _r) = channel::<u64, CAP>();
                plain = p;
            }
            let mut w: u64 = 0; // published
            for _step in 0..200 {
                let holders_min = readers
                    .iter()
                    .filter(|r| r.holds_writer())
                    .map(|r| r.cursor())
                    .min();
                let room = holders_min.map_or(u64::MAX, |m| (m + CAP as u64).saturating_sub(w));
                match next_rand(10) {
                    0 if !lossless => {
                        assert_eq!(plain.add(value(w)), w);
                        w += 1;
                    }
                    1 if !lossless => {
                        let n = next_rand(7);
                        let vals: Vec<u64> = (w..w + n).map(value).collect();
                        assert_eq!(plain.add_slice(&vals), w);
                        w += n;
                    }
                    0..=2 => {
                        let n = next_rand(7);
                        let vals: Vec<u64> = (w..w + n).map(value).collect();
                        let got = match &mut lw {
                            Some(lw) => lw.try_add_slice(&vals),
                            None => plain.try_add_slice(&vals),
                        } as u64;
                        assert_eq!(got, n.min(room), "try_add_slice at {w}");
                        w += got;
                    }
                    3 => {
                        let n = next_rand(7) as usize;
                        let got = match &mut lw {
                            Some(lw) => lw.try_add_with(n, value),
                            None => plain.try_add_with(n, value),
                        } as u64;
                        // `try_add_with` makes at most `CAP` events a call.
                        assert_eq!(got, (n as u64).min(room).min(CAP as u64));
                        w += got;
                    }
                    4 => {
                        let i = next_rand(readers.len() as u64) as usize;
                        let r = &mut readers[i];
                        let next = r.cursor();
                        let expect = if w == next {
                            Err(TryReadError::Empty)
                        } else if w - next > CAP as u64 {
                            Err(TryReadError::Lagged {
                                missed: w - CAP as u64 - next,
                            })
                        } else {
                            Ok(value(next))
                        };
                        assert_eq!(r.lag(), w - next);
                        assert_eq!(r.try_next(), expect);
                    }
                    5 | 6 => {
                        let i = next_rand(readers.len() as u64) as usize;
                        let r = &mut readers[i];
                        let next = r.cursor();
                        let mut got = Vec::new();
                        let res = r.read_batch(|e| got.push(*e));
                        if w == next {
                            assert_eq!(res, Err(TryReadError::Empty));
                        } else if w - next > CAP as u64 {
                            assert_eq!(
                                res,
                                Err(TryReadError::Lagged {
                                    missed: w - CAP as u64 - next
                                })
                            );
                        } else {
                            // A batch may stop at the cursor the reader cached (see
                            // review_broadcast.rs); it is a prefix of what is published.
                            let n = res.expect("a batch") as u64;
                            assert!(n >= 1 && n <= w - next);
                            assert_eq!(got, (next..next + n).map(value).collect::<Vec<_>>());
                            assert_eq!(r.cursor(), next + n);
                        }
                    }
                    7 => {
                        let i = next_rand(readers.len() as u64) as usize;
                        if readers[i].holds_writer() {
                            readers[i].release_writer();
                        } else {
                            readers[i].hold_writer().unwrap();
                        }
                    }
                    8 if readers.len() < 4 => {
                        let i = next_rand(readers.len() as u64) as usize;
                        let r = if next_rand(2) == 0 {
                            readers[i].clone()
                        } else {
                            match &lw {
                                Some(lw) => lw.subscribe(),
                                None => plain.subscribe(),
                            }
                        };
                        readers.push(r);
                    }
                    9 if readers.len() > 1 => {
                        let i = next_rand(readers.len() as u64) as usize;
                        readers.swap_remove(i);
                    }
                    _ => {}
                }
            }
        }
    }

    /// `recv()` pending when the writer is dropped from another thread: woken, `Closed`.
    #[test]
    fn recv_pending_when_the_writer_drops_is_woken() {
        within(10, || {
            for _ in 0..if cfg!(miri) { 2 } else { 200 } {
                let (writer, mut reader) = channel::<u64, 4>();
                let t = thread::spawn(move || {
                    thread::yield_now();
                    drop(writer);
                });
                assert_eq!(block_on(reader.recv()), Err(RecvError::Closed));
                t.join().unwrap();
            }
        });
    }

    /// A lossless writer dropped while a holder blocks in `read_batch_wait` / `next_wait`.
    #[test]
    fn blocked_readers_wake_when_a_lossless_writer_drops() {
        within(10, || {
            for wait in [Wait::Block, Wait::Yield, Wait::Spin] {
                let (writer, mut a) = channel::<u64, 4>();
                let mut b = a.clone();
                a.hold_writer().unwrap();
                let mut writer = writer.into_lossless();
                let t = thread::spawn(move || {
                    assert_eq!(
                        writer.add_slice(&[1, 2, 3, 4, 5, 6], Wait::Block, Duration::MAX),
                        6
                    );
                });
                let mut got = Vec::new();
                while a
                    .read_batch_wait(wait, Duration::MAX, |e| got.push(*e))
                    .is_ok()
                {}
                assert_eq!(got, [1, 2, 3, 4, 5, 6]);
                let mut seen = 0;
                loop {
                    match b.next_wait(wait, Duration::MAX) {
                        Ok(_) => seen += 1,
                        Err(ReadError::Lagged { missed }) => seen += missed,
                        Err(ReadError::Closed) => break,
                        Err(e) => panic!("{e:?}"),
                    }
                }
                assert_eq!(seen, 6);
                t.join().unwrap();
            }
        });
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

    /// The lossless writer runs *inside* an in-place batch's closure and publishes all it
    /// can: it must stop short of every slot the batch borrows (the borrowed event keeps its
    /// value, and miri sees no write under the live `&T`). Also with a second holder ahead,
    /// over several laps, and a `T` smaller than a word.
    #[test]
    fn writer_inside_the_in_place_closure_never_touches_the_borrowed_slots() {
        let (writer, mut slow) = channel::<u32, 4>();
        let mut fast = slow.clone();
        let mut writer = writer.into_lossless();
        slow.hold_writer().unwrap();
        fast.hold_writer().unwrap();
        let mut next_value = 0u32;
        let mut expected_slow = 0u32;
        for _round in 0..if cfg!(miri) { 4 } else { 50 } {
            let vals: Vec<u32> = (next_value..next_value + 10).collect();
            next_value += writer.try_add_slice(&vals) as u32;
            let _ = fast.read_batch(|_| {});
            let mut seen = Vec::new();
            let res = slow.read_batch(|e| {
                let before = *e;
                let vals: Vec<u32> = (next_value..next_value + 10).collect();
                next_value += writer.try_add_slice(&vals) as u32;
                let _ = writer.try_add_with(10, |s| s as u32);
                assert_eq!(*e, before, "the writer overwrote a borrowed slot");
                seen.push(*e);
            });
            let n = res.unwrap();
            assert_eq!(
                seen,
                (expected_slow..expected_slow + n as u32).collect::<Vec<_>>()
            );
            expected_slow += n as u32;
            // try_add_with made events numbered by seq; keep the value stream in step
            next_value = writer.position() as u32;
            let _ = fast.read_batch(|_| {});
            // Re-sync: events made by try_add_with carry their sequence number, so values
            // equal positions throughout.
        }
    }

    fn v3(seq: u64) -> [u64; 3] {
        [seq, seq ^ 0xdead_beef, seq.wrapping_mul(31)]
    }

    fn drain<const CAP: usize>(mut r: Reader<[u64; 3], CAP>, mode: u64) -> (u64, u64) {
        let (mut recv, mut missed, mut expect) = (0u64, 0u64, 0u64);
        let mut i = 0u64;
        loop {
            i += 1;
            let use_batch = (i + mode) % 3 != 0;
            if use_batch {
                let mut bad = None;
                let res = r.read_batch(|e| {
                    if *e != v3(expect) && bad.is_none() {
                        bad = Some((*e, expect));
                    }
                    expect += 1;
                    recv += 1;
                });
                assert!(bad.is_none(), "{bad:?}");
                match res {
                    Ok(_) => {}
                    Err(TryReadError::Lagged { missed: m }) => {
                        missed += m;
                        expect += m;
                    }
                    Err(TryReadError::Empty) => thread::yield_now(),
                    Err(TryReadError::Closed) => return (recv, missed),
                }
            } else {
                match r.try_next() {
                    Ok(e) => {
                        assert_eq!(e, v3(expect));
                        expect += 1;
                        recv += 1;
                    }
                    Err(TryReadError::Lagged { missed: m }) => {
                        missed += m;
                        expect += m;
                    }
                    Err(TryReadError::Empty) => thread::yield_now(),
                    Err(TryReadError::Closed) => return (recv, missed),
                }
            }
            assert_eq!(r.cursor(), expect);
        }
    }

    /// Lag counts stay exact (received + missed = published, values in order) with
    /// `add_slice` batches longer than the ring racing readers that mix `read_batch` and
    /// `try_next`.
    #[test]
    fn lag_exact_with_big_batches() {
        for round in 0..if cfg!(miri) { 1 } else { 20u64 } {
            let (mut w, first) = channel::<[u64; 3], 4>();
            let hs: Vec<_> = (0..2)
                .map(|m| {
                    let r = first.clone();
                    thread::spawn(move || drain(r, m + round))
                })
                .collect();
            drop(first);
            let mut seq = 0u64;
            let mut x = round * 7 + 1;
            let total = if cfg!(miri) { 300 } else { 200_000u64 };
            while seq < total {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let n = ((x >> 33) % 13).min(total - seq);
                let vals: Vec<_> = (seq..seq + n).map(v3).collect();
                w.add_slice(&vals);
                seq += n;
            }
            drop(w);
            for h in hs {
                let (r, m) = h.join().unwrap();
                assert_eq!(r + m, total, "recv {r} missed {m}");
            }
        }
    }
}

#[cfg(loom)]
mod loom_models {
    use loom::thread;
    use slotring::broadcast::{Reader, TryReadError, channel};

    type Ev = [u64; 2];

    #[derive(Default, Debug)]
    struct Seen {
        got: Vec<u64>,
        missed: u64,
        expect: u64,
    }

    impl Seen {
        fn batch<const CAP: usize>(&mut self, reader: &mut Reader<Ev, CAP>) -> bool {
            let expect = &mut self.expect;
            let got = &mut self.got;
            match reader.read_batch(|&[a, b]| {
                assert_eq!(a, b, "torn event");
                assert_eq!(a, *expect, "gap or reorder");
                got.push(a);
                *expect += 1;
            }) {
                Ok(_) | Err(TryReadError::Empty) => true,
                Err(TryReadError::Lagged { missed }) => {
                    self.missed += missed;
                    self.expect += missed;
                    true
                }
                Err(TryReadError::Closed) => false,
            }
        }
        fn one<const CAP: usize>(&mut self, reader: &mut Reader<Ev, CAP>) {
            match reader.try_next() {
                Ok([a, b]) => {
                    assert_eq!(a, b, "torn event");
                    assert_eq!(a, self.expect);
                    self.got.push(a);
                    self.expect += 1;
                }
                Err(TryReadError::Lagged { missed }) => {
                    self.missed += missed;
                    self.expect += missed;
                }
                _ => {}
            }
        }
    }

    /// A reader that reads one event (caching the writer's cursor) before it starts holding
    /// a lossless writer that is publishing (so the writer may lap it, then acknowledge its
    /// hold), reads a batch, releases and re-takes the hold, reads again. No torn event, no
    /// write into a borrowed slot (loom's `unsync_load`), received + missed = published.
    #[test]
    fn hold_taken_mid_stream_released_and_retaken() {
        loom::model(|| {
            const EVENTS: u64 = 5;
            let (writer, mut reader) = channel::<Ev, 2>();
            let mut writer = writer.into_lossless();
            assert_eq!(writer.try_add_slice(&[[0, 0], [1, 1]]), 2);
            let t = thread::spawn(move || {
                let mut seen = Seen::default();
                seen.one(&mut reader);
                reader.hold_writer().unwrap();
                seen.batch(&mut reader);
                reader.release_writer();
                reader.hold_writer().unwrap();
                seen.batch(&mut reader);
                (reader, seen)
            });
            let mut seq = 2;
            for _ in 0..2 {
                if seq < EVENTS {
                    let batch: Vec<Ev> = (seq..EVENTS.min(seq + 2)).map(|s| [s, s]).collect();
                    seq += writer.try_add_slice(&batch) as u64;
                }
            }
            let (mut reader, mut seen) = t.join().unwrap();
            while seq < EVENTS {
                seen.batch(&mut reader);
                let batch: Vec<Ev> = (seq..EVENTS.min(seq + 2)).map(|s| [s, s]).collect();
                seq += writer.try_add_slice(&batch) as u64;
            }
            drop(writer);
            while seen.batch(&mut reader) {}
            assert_eq!(seen.got.len() as u64 + seen.missed, EVENTS, "{seen:?}");
        });
    }
}
