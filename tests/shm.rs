//! Shared-memory segments across real processes: a writer here, readers in child
//! processes (this test binary re-run as the ignored `child` test), tokens over pipes.
//! A reader killed with SIGKILL while holding events, then recovery; files that are not
//! (whole, compatible) segments refused.
//!
//! miri cannot spawn processes or map files, so every test here is skipped under miri;
//! the protocol's single-process tests (`src/shm/tests.rs`) run there instead.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use slotring::shm::{ShmAllocator, ShmError, ShmOptions, ShmPtr};

/// Set in a child's environment to the segment path; selects the child role.
const CHILD_ENV: &str = "SLOTRING_SHM_CHILD";

/// A segment file that is removed when the test ends.
struct TempSegment(PathBuf);

impl TempSegment {
    fn new(name: &str) -> Self {
        let dir = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let path = dir.join(format!("slotring-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Self(path)
    }
}

impl Drop for TempSegment {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A reader process and the pipes to it. Commands are lines on its stdin; answers are
/// lines on its stdout from an `@` on (the test harness prints other text there too).
struct Reader {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Reader {
    fn spawn(path: &Path) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the reader process");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut reader = Self {
            child,
            stdin,
            stdout,
        };
        assert_eq!(reader.answer(), "ready", "the reader did not attach");
        reader
    }

    fn answer(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).unwrap();
            assert!(n > 0, "the reader process closed its stdout");
            // The harness may print `test child ... ` on the same line first.
            if let Some(at) = line.find('@') {
                return line[at + 1..].trim_end().to_string();
            }
        }
    }

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        self.answer()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reap (a zombie still counts as alive).
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn exit(mut self) {
        assert_eq!(self.ask("exit"), "bye");
        assert!(self.child.wait().unwrap().success());
    }
}

/// The reader role: attach, then serve commands until `exit`.
///
/// * `take T`: turn token `T` into a handle and keep it; answers `got T <payload>`.
/// * `check T`: re-read a kept handle's payload; answers `got T <payload>`.
/// * `drop T`: drop the kept handle; answers `dropped T`.
/// * `exit`: answers `bye` and returns (dropping every handle).
#[test]
#[ignore = "the child-process half of the cross-process tests, run by them"]
fn child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let shm = ShmAllocator::open(&path).expect("open the segment");
    let mut held: std::collections::HashMap<u64, ShmPtr> = Default::default();
    let mut out = std::io::stdout();
    writeln!(out, "@ready").unwrap();
    out.flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let mut words = line.split_whitespace();
        let command = words.next().unwrap_or("");
        let token: u64 = words.next().map_or(0, |t| t.parse().unwrap());
        let answer = match command {
            "take" => match shm.from_token(token) {
                Ok(ev) => {
                    let text = String::from_utf8_lossy(&ev).into_owned();
                    held.insert(token, ev);
                    format!("got {token} {text}")
                }
                Err(e) => format!("error {e}"),
            },
            "check" => format!("got {token} {}", String::from_utf8_lossy(&held[&token])),
            "drop" => {
                drop(held.remove(&token).expect("drop of a handle not held"));
                format!("dropped {token}")
            }
            "exit" => {
                writeln!(out, "@bye").unwrap();
                out.flush().unwrap();
                return;
            }
            other => format!("error unknown command {other}"),
        };
        writeln!(out, "@{answer}").unwrap();
        out.flush().unwrap();
    }
}

fn small(capacity: usize) -> ShmOptions {
    ShmOptions::default()
        .classes(&[(64, capacity), (256, 4)])
        .max_processes(8)
}

#[test]
#[cfg_attr(miri, ignore = "spawns processes and maps files")]
fn a_writer_and_two_reader_processes_share_events() {
    let seg = TempSegment::new("pubsub");
    let writer = ShmAllocator::create(&seg.0, small(256)).unwrap();
    let mut readers = [Reader::spawn(&seg.0), Reader::spawn(&seg.0)];
    assert_ne!(readers[0].pid(), readers[1].pid());
    assert_eq!(writer.stats().attached, 3);
    let mut tokens = Vec::new();
    for i in 0..200 {
        let text = format!("event-{i}");
        let ev = writer.allocate(text.as_bytes(), i).unwrap();
        let token = ev.to_token();
        for r in &mut readers {
            assert_eq!(
                r.ask(&format!("take {token}")),
                format!("got {token} {text}")
            );
        }
        assert_eq!(ShmPtr::process_count(&ev), 3);
        // The writer's handle goes; the readers' holds keep the slot.
        drop(ev);
        tokens.push((token, text));
    }
    assert_eq!(
        writer.stats().in_use(),
        200,
        "reader holds keep the slots alive"
    );
    for (token, text) in &tokens {
        assert_eq!(
            readers[0].ask(&format!("drop {token}")),
            format!("dropped {token}")
        );
        assert_eq!(
            readers[1].ask(&format!("check {token}")),
            format!("got {token} {text}"),
            "a slot still held by another process was changed"
        );
    }
    assert_eq!(writer.stats().in_use(), 200);
    for (token, _) in &tokens {
        readers[1].ask(&format!("drop {token}"));
    }
    assert_eq!(
        writer.stats().in_use(),
        0,
        "the last drop in any process frees"
    );
    // Tokens of freed slots are refused in every process.
    let [a, b] = readers;
    let mut a = a;
    assert!(a.ask(&format!("take {}", tokens[0].0)).starts_with("error"));
    a.exit();
    b.exit();
    assert_eq!(writer.stats().attached, 1);
}

#[test]
#[cfg_attr(miri, ignore = "spawns processes and maps files")]
fn a_killed_reader_holds_are_recovered() {
    let seg = TempSegment::new("killed");
    let writer = ShmAllocator::create(&seg.0, small(16)).unwrap();
    let mut victim = Reader::spawn(&seg.0);
    let mut survivor = Reader::spawn(&seg.0);
    let mut tokens = Vec::new();
    for i in 0..16 {
        let ev = writer.allocate(format!("ev{i}").as_bytes(), 0).unwrap();
        let token = ev.to_token();
        assert!(victim.ask(&format!("take {token}")).starts_with("got"));
        if i % 2 == 0 {
            assert!(survivor.ask(&format!("take {token}")).starts_with("got"));
        }
        tokens.push(token);
    }
    assert_eq!(
        writer.stats().in_use(),
        16,
        "reader holds keep the slots alive"
    );
    // Small events spill to the 256-byte class; fill it too, so the pool is exhausted.
    let extra: Vec<_> = (0..4).map(|_| writer.allocate(b"x", 0).unwrap()).collect();
    assert!(matches!(
        writer.allocate(b"y", 0),
        Err(ShmError::Exhausted { .. })
    ));
    drop(extra);

    victim.kill();
    let report = writer.recover();
    assert_eq!(report.processes, 1);
    assert_eq!(
        report.holds, 16,
        "every hold of the dead reader is released"
    );
    assert_eq!(report.slots_freed, 8, "slots the survivor holds stay");
    assert_eq!(writer.stats().in_use(), 8);
    for (i, token) in tokens.iter().enumerate().step_by(2) {
        assert_eq!(
            survivor.ask(&format!("check {token}")),
            format!("got {token} ev{i}")
        );
    }
    assert_eq!(writer.recover().processes, 0, "recovery is done once");
    survivor.kill();
    let report = writer.recover();
    assert_eq!((report.processes, report.slots_freed), (1, 8));
    let stats = writer.stats();
    assert_eq!((stats.in_use(), stats.attached), (0, 1));
    // Every slot is back on a free list.
    let all: Vec<_> = (0..stats.capacity())
        .map(|i| writer.allocate(&[i as u8], 0).unwrap())
        .collect();
    assert_eq!(all.len(), 20);
}

#[test]
#[cfg_attr(miri, ignore = "spawns processes and maps files")]
fn the_next_open_recovers() {
    let seg = TempSegment::new("reopen");
    let writer = ShmAllocator::create(&seg.0, small(8)).unwrap();
    let mut victim = Reader::spawn(&seg.0);
    for _ in 0..8 {
        let ev = writer.allocate(b"held", 0).unwrap();
        assert!(
            victim
                .ask(&format!("take {}", ev.to_token()))
                .starts_with("got")
        );
    }
    assert_eq!(writer.stats().in_use(), 8);
    victim.kill();
    let late = ShmAllocator::open(&seg.0).unwrap();
    assert_eq!(
        late.stats().in_use(),
        0,
        "open recovered the dead reader's holds"
    );
    assert_eq!(late.stats().attached, 2);
}

#[test]
#[cfg_attr(miri, ignore = "maps files")]
fn files_that_are_not_whole_segments_are_refused() {
    let seg = TempSegment::new("bad");
    let options = small(4);
    let shm = ShmAllocator::create(&seg.0, options.clone()).unwrap();
    let bytes = std::fs::read(&seg.0).unwrap();
    assert_eq!(bytes.len(), shm.segment_size());
    assert_eq!(&bytes[..8], b"SLOTRING");
    drop(shm);
    assert!(
        matches!(ShmAllocator::create(&seg.0, options.clone()), Err(ShmError::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists),
        "create does not clobber an existing file by default"
    );

    let other = TempSegment::new("bad-copy");
    let try_bytes = |b: &[u8]| {
        std::fs::write(&other.0, b).unwrap();
        ShmAllocator::open(&other.0).unwrap_err()
    };
    assert!(matches!(try_bytes(&[]), ShmError::Truncated { len: 0, .. }));
    assert!(matches!(
        try_bytes(b"SLOTRING"),
        ShmError::Truncated { len: 8, .. }
    ));
    assert!(matches!(
        try_bytes(&vec![0x5A; 8192]),
        ShmError::NotASegment
    ));
    let half = bytes.len() / 2;
    assert!(matches!(
        try_bytes(&bytes[..half]),
        ShmError::Truncated { len, needed } if len == half as u64 && needed == bytes.len() as u64
    ));
    let mut newer = bytes.clone();
    newer[8..12].copy_from_slice(&3u32.to_le_bytes());
    assert!(matches!(
        try_bytes(&newer),
        ShmError::UnsupportedVersion {
            found: 3,
            supported: 2
        }
    ));
    let mut bent = bytes.clone();
    bent[64..68].copy_from_slice(&1000u32.to_le_bytes()); // first slot size > second
    assert!(matches!(try_bytes(&bent), ShmError::Corrupted { .. }));
    let mut grown = bytes.clone();
    grown[68..72].copy_from_slice(&5u32.to_le_bytes()); // one more slot than stored
    assert!(matches!(try_bytes(&grown), ShmError::Corrupted { .. }));
    // The intact copy opens; with the wrong expectations it is refused.
    std::fs::write(&other.0, &bytes).unwrap();
    assert!(ShmAllocator::open_expecting(&other.0, &options).is_ok());
    assert!(matches!(
        ShmAllocator::open_expecting(&other.0, &small(5)),
        Err(ShmError::LayoutMismatch)
    ));
    assert!(matches!(
        ShmAllocator::open(std::env::temp_dir()),
        Err(ShmError::Io(_) | ShmError::NotASegment)
    ));
    assert!(matches!(
        ShmAllocator::open(other.0.with_extension("missing")),
        Err(ShmError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound
    ));
    assert!(matches!(
        ShmAllocator::create(&other.0, ShmOptions::default().max_processes(32)),
        Err(ShmError::InvalidOptions { .. })
    ));
    // replace_existing swaps in a new segment; the old file's tokens are foreign or
    // stale there, never a handle to unrelated bytes of the old layout.
    let fresh = ShmAllocator::create(&other.0, small(4).replace_existing(true)).unwrap();
    assert_eq!(fresh.stats().in_use(), 0);
}

/// A 48-byte payload that checks itself: a sequence number and bytes derived from it.
fn stamped(seq: u64) -> [u8; 48] {
    let mut out = [0u8; 48];
    out[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in out[8..].iter_mut().enumerate() {
        *b = (seq.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8;
    }
    out
}

fn check_stamp(bytes: &[u8]) -> u64 {
    let seq = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    assert_eq!(
        bytes,
        &stamped(seq)[..],
        "a live payload changed under its reader"
    );
    seq
}

/// Threads of two attachments (the same code paths as two processes) race upgrades,
/// clones and drops against the writer's releases and slot reuse on a real mapping: every
/// upgrade either fails as stale or sees an intact payload, and nothing leaks.
#[test]
#[cfg_attr(miri, ignore = "maps files")]
fn upgrades_race_releases_and_reuse() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let seg = TempSegment::new("race");
    let writer = ShmAllocator::create(&seg.0, small(32)).unwrap();
    let reader = ShmAllocator::open(&seg.0).unwrap();
    let board: Vec<AtomicU64> = (0..8).map(|_| AtomicU64::new(0)).collect();
    let stop = AtomicBool::new(false);
    let progress = AtomicU64::new(0);
    let (upgraded, stale) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..3)
            .map(|t| {
                let shm = if t == 0 { &writer } else { &reader };
                let (board, stop, progress) = (&board, &stop, &progress);
                s.spawn(move || {
                    let (mut ok, mut stale) = (0u64, 0u64);
                    let mut kept = Vec::new();
                    let mut i = t;
                    while !stop.load(Ordering::Relaxed) {
                        i = (i + 1) % board.len();
                        let token = board[i].load(Ordering::Acquire);
                        if token == 0 {
                            continue;
                        }
                        match shm.from_token(token) {
                            Ok(ev) => {
                                check_stamp(&ev);
                                let twin = ev.clone();
                                kept.push(twin);
                                if kept.len() > 4 {
                                    check_stamp(&kept.remove(0));
                                }
                                ok += 1;
                                progress.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(ShmError::StaleToken) => stale += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    (ok, stale)
                })
            })
            .collect();
        let mut lanes: Vec<Option<ShmPtr>> = (0..board.len()).map(|_| None).collect();
        // At least 20,000 events, and on until the readers have upgraded 1,000 times (they
        // may start late), for at most 10 s.
        let start = std::time::Instant::now();
        let mut seq = 0u64;
        while seq < 20_000
            || (progress.load(Ordering::Relaxed) < 1000
                && start.elapsed() < std::time::Duration::from_secs(10))
        {
            seq += 1;
            let ev = loop {
                match writer.allocate(&stamped(seq), 0) {
                    Ok(ev) => break ev,
                    Err(ShmError::Exhausted { .. }) => std::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            };
            let lane = (seq % board.len() as u64) as usize;
            board[lane].store(ev.to_token(), Ordering::Release);
            lanes[lane] = Some(ev); // drops the lane's previous event
        }
        stop.store(true, Ordering::Relaxed);
        drop(lanes);
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    });
    assert!(upgraded > 0, "no upgrade succeeded (stale: {stale})");
    assert_eq!(writer.stats().in_use(), 0, "a slot leaked");
    assert_eq!(reader.stats().attached, 2);
}

#[test]
#[cfg(target_os = "linux")]
#[cfg_attr(miri, ignore = "maps files")]
fn create_allocates_the_whole_file() {
    // A sparse file on a full tmpfs would raise SIGBUS on first touch of a payload page;
    // `create` allocates every block up front so that shortage is an error instead.
    use std::os::unix::fs::MetadataExt;
    let seg = TempSegment::new("allocated");
    let shm = ShmAllocator::create(&seg.0, ShmOptions::default().classes(&[(4096, 512)])).unwrap();
    let meta = std::fs::metadata(&seg.0).unwrap();
    assert!(
        meta.blocks() * 512 >= shm.segment_size() as u64,
        "{} bytes allocated of {}",
        meta.blocks() * 512,
        shm.segment_size()
    );
}

/// `replace_existing` makes a new segment at the same path; tokens of the old one must
/// never name an event of the new one, even when their 9-bit segment tags collide (by
/// the birthday bound, a few dozen re-creates give several collisions).
#[test]
#[cfg_attr(miri, ignore = "maps files")]
fn tokens_of_a_replaced_segment_are_refused() {
    use std::collections::HashMap;
    let seg = TempSegment::new("replaced");
    let options = ShmOptions::default()
        .classes(&[(64, 1)])
        .max_processes(1)
        .replace_existing(true);
    let tag = |token: u64| (token >> 23) & 0x1FF;
    let mut old: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut collisions = 0;
    for _ in 0..2000 {
        let shm = ShmAllocator::create(&seg.0, options.clone()).unwrap();
        let ev = shm.allocate(b"new", 1).unwrap();
        let token = ev.to_token();
        for &foreign in old.get(&tag(token)).into_iter().flatten() {
            collisions += 1;
            assert!(
                shm.from_token(foreign).is_err(),
                "a token of a replaced segment named an event of the new one"
            );
        }
        old.entry(tag(token)).or_default().push(token);
        if collisions >= 20 {
            return;
        }
    }
    panic!("only {collisions} tag collisions in 2000 segments");
}

/// A segment another local user could have planted, or can write, is refused unless
/// the caller trusts its group explicitly; a symbolic link at the path is never followed.
#[test]
#[cfg_attr(miri, ignore = "maps files")]
fn open_refuses_files_other_users_could_write() {
    use slotring::shm::ShmOpenOptions;
    use std::os::unix::fs::PermissionsExt;
    let seg = TempSegment::new("trusted");
    drop(ShmAllocator::create(&seg.0, small(4)).unwrap());
    let set_mode = |mode: u32| {
        std::fs::set_permissions(&seg.0, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let untrusted =
        |r: Result<ShmAllocator, ShmError>| matches!(r, Err(ShmError::Untrusted { .. }));
    assert!(ShmAllocator::open(&seg.0).is_ok(), "mode 0600, this user's");
    set_mode(0o666);
    assert!(
        untrusted(ShmAllocator::open(&seg.0)),
        "writable by every user"
    );
    set_mode(0o606);
    assert!(untrusted(ShmAllocator::open(&seg.0)));
    set_mode(0o660);
    assert!(
        untrusted(ShmAllocator::open(&seg.0)),
        "writable by its group"
    );
    // SAFETY: `getegid` has no preconditions.
    let gid = unsafe { libc::getegid() };
    let group = ShmOpenOptions::default().shared_group(gid);
    assert!(ShmAllocator::open_with(&seg.0, &group).is_ok());
    set_mode(0o662);
    assert!(
        untrusted(ShmAllocator::open_with(&seg.0, &group)),
        "a trusted group does not make every user trusted"
    );
    set_mode(0o600);
    let link = TempSegment::new("trusted-link");
    std::os::unix::fs::symlink(&seg.0, &link.0).unwrap();
    assert!(untrusted(ShmAllocator::open(&link.0)), "a symbolic link");
    // Another owner: only root can stage that.
    // SAFETY: `geteuid` has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&seg.0, Some(12345), Some(12345)).unwrap();
        assert!(
            untrusted(ShmAllocator::open(&seg.0)),
            "owned by another user"
        );
        set_mode(0o660);
        let theirs = ShmOpenOptions::default().shared_group(12345);
        assert!(
            ShmAllocator::open_with(&seg.0, &theirs).is_ok(),
            "a shared group"
        );
    }
}
