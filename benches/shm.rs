//! Cross-process hand-off of a 48-byte event, side by side with the alternatives.
//!
//! Run with `cargo bench --features shm --bench shm` (add
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
//! A second group measures the single-process costs of the shared-memory operations
//! next to the in-process `EventAllocator`.

use std::hint::black_box;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use mmap_sync::synchronizer::Synchronizer;
use slotring::EventAllocator;
use slotring::shm::{ShmAllocator, ShmOptions};

const CHILD_ENV: &str = "SLOTRING_SHM_BENCH_CHILD";
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

criterion_group!(benches, handoff, local_ops);

fn main() {
    if let Ok(role) = std::env::var(CHILD_ENV) {
        child(&role);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
