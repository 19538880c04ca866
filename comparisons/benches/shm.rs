//! Cross-process hand-off of a 48-byte event, side by side with the alternatives.
//!
//! Run with `cargo bench -p slotring-comparisons --bench shm` (add
//! `-- --warm-up-time 1 --measurement-time 3` for a short run). Each iteration is one
//! complete hand-off between this process (A) and a child process (B, this bench binary
//! re-run in a child role), with B's acknowledgement closing the round trip:
//!
//! * `slotring shm`: A allocates the event in a shared segment and writes its 8-byte
//!   token to a pipe; B turns the token into a handle, reads the payload in place,
//!   drops the handle and acknowledges; A drops its handle (the slot is free again).
//! * `mmap-sync`: A writes the same 48 bytes with `Synchronizer::write` and notifies B
//!   over the pipe; B reads them in place with `Synchronizer::read` and acknowledges.
//! * `pipe, 48 B payload`: the bytes themselves go through the pipe.
//! * `pipe, 8 B (floor)`: the notification and acknowledgement alone, the cost every
//!   variant above shares.
//!
//! The pipe's process wake-ups dominate those numbers, so a second group passes the
//! same messages through a shared-memory mailbox that both processes poll (spinning,
//! yielding now and then), with no system call per hand-off:
//!
//! * `slotring shm`: the token goes through the mailbox.
//! * `mmap-sync`: a sequence number goes through the mailbox after `write`.
//! * `copy 48 B through the mailbox (floor)`: the bytes themselves.
//!
//! A second group measures the single-process costs of the shared-memory operations
//! next to the in-process `EventAllocator`.

use std::hint::black_box;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use mmap_sync::synchronizer::Synchronizer;
use slotring::EventAllocator;
use slotring::shm::{ShmAllocator, ShmOptions};

const CHILD_ENV: &str = "SLOTRING_SHM_BENCH_CHILD";

/// Two cache lines shared by A and B: a request (sequence, token, 48 payload bytes) and
/// an acknowledgement (sequence, answer).
struct Mailbox {
    _map: memmap2::MmapRaw,
    base: *mut u8,
}

const REQ_SEQ: usize = 0;
const REQ_TOKEN: usize = 8;
const REQ_BYTES: usize = 16; // 6 words
const ACK_SEQ: usize = 64;
const ACK_ANSWER: usize = 72;

impl Mailbox {
    fn create(path: &std::path::Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap();
        file.set_len(128).unwrap();
        Self::map(&file)
    }

    fn open(path: &str) -> Self {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        Self::map(&file)
    }

    fn map(file: &std::fs::File) -> Self {
        let map = memmap2::MmapOptions::new().len(128).map_raw(file).unwrap();
        let base = map.as_mut_ptr();
        Self { _map: map, base }
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= 128);
        // SAFETY: in bounds of the 128-byte, page-aligned mapping (asserted), which lives
        // as long as `self`; both processes access these words only atomically.
        unsafe { AtomicU64::from_ptr(self.base.add(offset).cast()) }
    }

    /// A's side: sends `seq`, `token` and (optionally) a payload, waits for the answer.
    fn round_trip(&self, seq: u64, token: u64, bytes: Option<&[u8; 48]>) -> u64 {
        // Relaxed: published by the Release store of the sequence below.
        self.word(REQ_TOKEN).store(token, Ordering::Relaxed);
        if let Some(bytes) = bytes {
            for (i, chunk) in bytes.chunks_exact(8).enumerate() {
                let w = u64::from_le_bytes(chunk.try_into().unwrap());
                // Relaxed: published by the Release store of the sequence below.
                self.word(REQ_BYTES + 8 * i).store(w, Ordering::Relaxed);
            }
        }
        // Release: pairs with B's Acquire load of the sequence.
        self.word(REQ_SEQ).store(seq, Ordering::Release);
        // Acquire: pairs with B's Release store of the acknowledgement.
        wait_for(|| self.word(ACK_SEQ).load(Ordering::Acquire) == seq);
        // Relaxed: ordered by the Acquire load above.
        self.word(ACK_ANSWER).load(Ordering::Relaxed)
    }

    /// B's side: waits for the next request; returns its sequence and token.
    fn next(&self, last: u64) -> (u64, u64) {
        let mut seq = 0;
        // Acquire: pairs with A's Release store of the sequence.
        wait_for(|| {
            seq = self.word(REQ_SEQ).load(Ordering::Acquire);
            seq != last
        });
        // Relaxed: ordered by the Acquire load above.
        (seq, self.word(REQ_TOKEN).load(Ordering::Relaxed))
    }

    fn payload(&self) -> [u8; 48] {
        let mut out = [0u8; 48];
        for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
            // Relaxed: ordered by the Acquire load in `next`.
            chunk.copy_from_slice(
                &self
                    .word(REQ_BYTES + 8 * i)
                    .load(Ordering::Relaxed)
                    .to_le_bytes(),
            );
        }
        out
    }

    fn answer(&self, seq: u64, answer: u64) {
        // Relaxed: published by the Release store below.
        self.word(ACK_ANSWER).store(answer, Ordering::Relaxed);
        // Release: pairs with A's Acquire load of the acknowledgement.
        self.word(ACK_SEQ).store(seq, Ordering::Release);
    }
}

/// Spins until `done`, yielding now and then (the machine may have fewer free cores
/// than the two processes need).
fn wait_for(mut done: impl FnMut() -> bool) {
    let mut spins = 0u32;
    while !done() {
        spins += 1;
        if spins % 64 == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// B's side of the mailbox variants; a sequence of `u64::MAX` ends it.
fn mailbox_child(kind: &str, rest: &str) {
    let (mbox, target) = rest.split_once('|').unwrap_or((rest, ""));
    let mbox = Mailbox::open(mbox);
    let shm = (kind == "slotring-spin").then(|| ShmAllocator::open(target).expect("open"));
    let mut sync = (kind == "mmapsync-spin").then(|| Synchronizer::new(target.as_ref()));
    let mut last = 0;
    loop {
        let (seq, token) = mbox.next(last);
        last = seq;
        if seq == u64::MAX {
            mbox.answer(seq, 0);
            return;
        }
        let answer = if let Some(shm) = &shm {
            let ev = shm.from_token(token).expect("live token");
            ev[0] ^ ev[47]
        } else if let Some(sync) = &mut sync {
            // SAFETY: mmap-sync's contract for `read`: the files hold an archived
            // `[u8; 48]`, written only by this bench's writer with that same type.
            let data = unsafe { sync.read::<[u8; 48]>(false) }.expect("read");
            data[0] ^ data[47]
        } else {
            let bytes = mbox.payload();
            bytes[0] ^ bytes[47]
        };
        mbox.answer(seq, u64::from(answer));
    }
}
const PAYLOAD: [u8; 48] = *b"tick:BTC-USD:bid=101.50:ask=101.52:qty=3:v=00001";

fn shm_dir() -> PathBuf {
    if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    }
}

/// The child side: reads 8-byte messages from stdin, answers each with one byte.
fn child(role: &str) {
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    let (kind, path) = role.split_once(':').unwrap_or((role, ""));
    if kind.ends_with("-spin") {
        return mailbox_child(kind, path);
    }
    let mut message = [0u8; 8];
    let mut payload = [0u8; 48];
    match kind {
        "slotring" => {
            let shm = ShmAllocator::open(path).expect("open the segment");
            while input.read_exact(&mut message).is_ok() {
                let ev = shm
                    .from_token(u64::from_le_bytes(message))
                    .expect("live token");
                let check = ev[0] ^ ev[47];
                drop(ev);
                output.write_all(&[check]).unwrap();
                output.flush().unwrap();
            }
        }
        "mmapsync" => {
            let mut sync = Synchronizer::new(path.as_ref());
            while input.read_exact(&mut message).is_ok() {
                // SAFETY: mmap-sync's contract for `read`: the files hold an archived
                // `[u8; 48]`, written only by this bench's writer with that same type.
                let data = unsafe { sync.read::<[u8; 48]>(false) }.expect("read");
                let check = data[0] ^ data[47];
                drop(data);
                output.write_all(&[check]).unwrap();
                output.flush().unwrap();
            }
        }
        "pipe48" => {
            while input.read_exact(&mut payload).is_ok() {
                output.write_all(&[payload[0] ^ payload[47]]).unwrap();
                output.flush().unwrap();
            }
        }
        _ => {
            while input.read_exact(&mut message).is_ok() {
                output.write_all(&[message[0]]).unwrap();
                output.flush().unwrap();
            }
        }
    }
}

/// A child process in one role and the pipes to it.
struct Peer {
    child: Child,
    to: ChildStdin,
    from: ChildStdout,
}

impl Peer {
    fn spawn(role: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the child process");
        let to = child.stdin.take().unwrap();
        let from = child.stdout.take().unwrap();
        Self { child, to, from }
    }

    /// Sends `message`, waits for the one-byte answer.
    fn round_trip(&mut self, message: &[u8]) -> u8 {
        self.to.write_all(message).unwrap();
        let mut answer = [0u8; 1];
        self.from.read_exact(&mut answer).unwrap();
        answer[0]
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn handoff(c: &mut Criterion) {
    let expected = PAYLOAD[0] ^ PAYLOAD[47];
    let mut group = c.benchmark_group("cross_process_handoff_48B");

    let path = shm_dir().join(format!("slotring-bench-{}", std::process::id()));
    let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true))
        .expect("create the segment");
    let mut peer = Peer::spawn(&format!("slotring:{}", path.display()));
    group.bench_function("slotring shm", |b| {
        b.iter(|| {
            let ev = shm.allocate(black_box(&PAYLOAD), 1).unwrap();
            let answer = peer.round_trip(&ev.to_token().to_le_bytes());
            debug_assert_eq!(answer, expected);
            drop(ev);
            answer
        })
    });
    drop(peer);
    assert_eq!(shm.stats().in_use(), 0, "every slot came back");
    drop(shm);
    let _ = std::fs::remove_file(&path);

    let prefix = shm_dir().join(format!("slotring-bench-{}-mmapsync", std::process::id()));
    let mut sync = Synchronizer::new(prefix.as_os_str());
    sync.write(&PAYLOAD, Duration::from_secs(1)).unwrap();
    let mut peer = Peer::spawn(&format!("mmapsync:{}", prefix.display()));
    let mut n = 0u64;
    group.bench_function("mmap-sync", |b| {
        b.iter(|| {
            n += 1;
            sync.write(black_box(&PAYLOAD), Duration::from_secs(1))
                .unwrap();
            let answer = peer.round_trip(&n.to_le_bytes());
            debug_assert_eq!(answer, expected);
            answer
        })
    });
    drop(peer);
    for suffix in ["_data_0", "_data_1", "_state"] {
        let mut file = prefix.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }

    let mut peer = Peer::spawn("pipe48");
    group.bench_function("pipe, 48 B payload", |b| {
        b.iter(|| peer.round_trip(black_box(&PAYLOAD)))
    });
    drop(peer);

    let mut peer = Peer::spawn("ping");
    group.bench_function("pipe, 8 B (floor)", |b| {
        b.iter(|| peer.round_trip(black_box(&[1u8; 8])))
    });
    drop(peer);
    group.finish();
}

fn handoff_mailbox(c: &mut Criterion) {
    let expected = u64::from(PAYLOAD[0] ^ PAYLOAD[47]);
    let mut group = c.benchmark_group("cross_process_handoff_48B_shared_mailbox");
    let pid = std::process::id();
    let mbox_path = shm_dir().join(format!("slotring-bench-mbox-{pid}"));
    let mut seq = 0u64;
    // Starts B in `role`, runs `body` as one benchmark, stops B.
    let mut run = |name: &str, role: String, body: &mut dyn FnMut(&Mailbox, u64) -> u64| {
        let mbox = Mailbox::create(&mbox_path);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, role)
            .spawn()
            .expect("spawn the child process");
        group.bench_function(name, |b| {
            b.iter(|| {
                seq += 1;
                let answer = body(&mbox, seq);
                debug_assert_eq!(answer, expected);
                answer
            })
        });
        mbox.round_trip(u64::MAX, 0, None);
        child.wait().unwrap();
        seq = 0;
    };

    let path = shm_dir().join(format!("slotring-bench-spin-{pid}"));
    let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true)).unwrap();
    run(
        "slotring shm",
        format!("slotring-spin:{}|{}", mbox_path.display(), path.display()),
        &mut |mbox, seq| {
            let ev = shm.allocate(black_box(&PAYLOAD), 1).unwrap();
            mbox.round_trip(seq, ev.to_token(), None)
        },
    );
    assert_eq!(shm.stats().in_use(), 0, "every slot came back");
    drop(shm);
    let _ = std::fs::remove_file(&path);

    let prefix = shm_dir().join(format!("slotring-bench-spin-{pid}-mmapsync"));
    let mut sync = Synchronizer::new(prefix.as_os_str());
    sync.write(&PAYLOAD, Duration::from_secs(1)).unwrap();
    run(
        "mmap-sync",
        format!("mmapsync-spin:{}|{}", mbox_path.display(), prefix.display()),
        &mut |mbox, seq| {
            sync.write(black_box(&PAYLOAD), Duration::from_secs(1))
                .unwrap();
            mbox.round_trip(seq, 0, None)
        },
    );
    for suffix in ["_data_0", "_data_1", "_state"] {
        let mut file = prefix.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }

    run(
        "copy 48 B through the mailbox (floor)",
        format!("copy-spin:{}", mbox_path.display()),
        &mut |mbox, seq| mbox.round_trip(seq, 0, Some(black_box(&PAYLOAD))),
    );
    let _ = std::fs::remove_file(&mbox_path);
    group.finish();
}

fn local_ops(c: &mut Criterion) {
    let mut group = c.benchmark_group("shm_single_process_48B");
    let path = shm_dir().join(format!("slotring-bench-local-{}", std::process::id()));
    let shm = ShmAllocator::create(&path, ShmOptions::default().replace_existing(true)).unwrap();
    let other = ShmAllocator::open(&path).unwrap();
    group.bench_function("shm allocate + read + drop", |b| {
        b.iter(|| {
            let ev = shm.allocate(black_box(&PAYLOAD), 1).unwrap();
            black_box(ev[47])
        })
    });
    let held = shm.allocate(&PAYLOAD, 1).unwrap();
    let token = held.to_token();
    group.bench_function("shm from_token + read + drop (second attachment)", |b| {
        b.iter(|| {
            let ev = other.from_token(black_box(token)).unwrap();
            black_box(ev[47])
        })
    });
    group.bench_function("shm clone + drop", |b| b.iter(|| black_box(held.clone())));
    let alloc = EventAllocator::new();
    group.bench_function("in-process EventAllocator allocate + read + drop", |b| {
        b.iter(|| {
            let ev = alloc.allocate(black_box(&PAYLOAD), 1).unwrap();
            black_box(ev[47])
        })
    });
    group.finish();
    drop((held, other, shm));
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, handoff, handoff_mailbox, local_ops);

fn main() {
    if let Ok(role) = std::env::var(CHILD_ENV) {
        child(&role);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
