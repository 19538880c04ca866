//! A writer process publishing events to reader processes through a shared-memory
//! segment: each event is copied into the segment once, and only its 8-byte token
//! travels through the readers' pipes; every reader reads the bytes in place.
//!
//! ```sh
//! cargo run --release --features shm --example shm_pubsub            # 100,000 events, 2 readers
//! cargo run --release --features shm --example shm_pubsub -- 20000 3 # events, readers
//! ```
//!
//! The writer (this process) re-runs this binary as `shm_pubsub reader <path> <id>` for
//! each reader. Readers acknowledge each token with one byte; the writer keeps at most
//! 64 events in flight and drops its handle once every reader has acknowledged. Each
//! reader keeps its last 8 events a while longer, so those slots stay alive on the
//! readers' holds alone after the writer let go. At the end the writer checks that every
//! slot of the segment is free again.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use slotring::shm::{ShmAllocator, ShmOptions, ShmPtr};

const WINDOW: usize = 64;
const READER_KEEPS: usize = 8;

fn payload(seq: u64) -> String {
    format!("seq={seq} px={}.{:02}", 100 + seq % 7, seq % 100)
}

fn reader(path: &str, id: &str) -> Result<(), Box<dyn std::error::Error>> {
    let shm = ShmAllocator::open(path)?;
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    let mut kept: VecDeque<ShmPtr> = VecDeque::new();
    let mut token = [0u8; 8];
    let (mut count, mut bytes, mut outlived) = (0u64, 0u64, 0u64);
    while input.read_exact(&mut token).is_ok() {
        let ev = shm.from_token(u64::from_le_bytes(token))?;
        // The event type is the sequence number; the payload must match it.
        let seq = u64::from(ev.event_type());
        if ev.payload() != payload(seq).as_bytes() {
            return Err(format!("reader {id}: event {seq} has the wrong payload").into());
        }
        count += 1;
        bytes += ev.len() as u64;
        kept.push_back(ev);
        if kept.len() > READER_KEEPS {
            let old = kept.pop_front().unwrap();
            // Still intact even if the writer has dropped its handle by now.
            if ShmPtr::process_count(&old) == 1 {
                outlived += 1;
            }
            assert_eq!(
                old.payload(),
                payload(u64::from(old.event_type())).as_bytes()
            );
        }
        output.write_all(&[1])?;
        output.flush()?;
    }
    drop(kept);
    eprintln!(
        "reader {id} (pid {}): {count} events, {bytes} payload bytes read in place, \
         {outlived} events outlived the writer's handle",
        std::process::id()
    );
    Ok(())
}

/// A reader process and the pipes to it.
struct Reader {
    child: Child,
    to: ChildStdin,
    from: ChildStdout,
}

/// Waits until every reader acknowledged the oldest event in flight, then drops the
/// writer's handle to it.
fn retire_oldest(in_flight: &mut VecDeque<ShmPtr>, readers: &mut [Reader]) -> std::io::Result<()> {
    for r in readers.iter_mut() {
        let mut ack = [0u8; 1];
        r.from.read_exact(&mut ack)?;
    }
    in_flight.pop_front();
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("reader") {
        return reader(&args[2], &args[3]);
    }
    let events: u64 = args.get(1).map_or(Ok(100_000), |a| a.parse())?;
    let readers: usize = args.get(2).map_or(Ok(2), |a| a.parse())?;

    let name = format!("slotring-pubsub-{}", std::process::id());
    let shm = ShmAllocator::create(&name, ShmOptions::default().classes(&[(64, 1024)]))?;
    let path = shm.path().expect("a file-backed segment").to_path_buf();
    println!(
        "segment {} ({} bytes, {} slots of 64 B); {readers} reader processes",
        path.display(),
        shm.segment_size(),
        shm.stats().capacity()
    );
    let mut children = Vec::new();
    for id in 0..readers {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["reader", &path.display().to_string(), &id.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let to = child.stdin.take().unwrap();
        let from = child.stdout.take().unwrap();
        children.push(Reader { child, to, from });
    }

    let start = Instant::now();
    let mut in_flight: VecDeque<ShmPtr> = VecDeque::with_capacity(WINDOW);
    for seq in 0..events {
        let ev = shm.allocate(payload(seq).as_bytes(), seq as u32)?;
        let token = ev.to_token().to_le_bytes();
        for r in &mut children {
            r.to.write_all(&token)?;
        }
        in_flight.push_back(ev);
        if in_flight.len() == WINDOW {
            retire_oldest(&mut in_flight, &mut children)?;
        }
    }
    while !in_flight.is_empty() {
        retire_oldest(&mut in_flight, &mut children)?;
    }
    let elapsed = start.elapsed();
    let held_by_readers = shm.stats().in_use();
    for mut r in children {
        drop(r.to); // end of stream: the reader drops its kept events and exits
        if !r.child.wait()?.success() {
            return Err("a reader failed".into());
        }
    }
    let stats = shm.stats();
    println!(
        "{events} events to {readers} readers in {:.2?} ({:.0} ns per event and reader); \
         slots in use: {held_by_readers} held by the readers alone after the writer let go, \
         {} after they exited; attached processes: {}",
        elapsed,
        elapsed.as_nanos() as f64 / (events as f64 * readers as f64),
        stats.in_use(),
        stats.attached
    );
    drop(shm);
    std::fs::remove_file(&path)?;
    if stats.in_use() != 0 || stats.attached != 1 {
        return Err("slots or process entries leaked".into());
    }
    println!("all slots free");
    Ok(())
}
