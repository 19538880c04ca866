//! The scenario slotring was made for: a C host pushes events into Rust through
//! `handle_ffi_event` (called from an ingest thread here, standing in for the host), the
//! process-wide `static ALLOCATOR` stores them, and the sink fans each event out to three
//! actors over crossbeam-channel, as clones of one handle, never copies:
//!
//! * the **hasher** checks every payload's checksum and folds the payloads into a digest;
//! * the **counter** counts events per type;
//! * the **indexer** keeps the most recent events by sequence number (holding their slots)
//!   and, every `--fold-every` events, folds the batch into one summary event in a new
//!   slot, which it sends on to the main thread.
//!
//! On exit it prints throughput, per-pool statistics, and confirms that every slot came
//! back. Run it with
//!
//! ```text
//! cargo run --release --features ffi --example actors [-- --events N --fold-every K]
//! ```

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::LazyLock;
use std::thread;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, bounded};
use slotring::ffi::{self, SinkError, SlotringStatus};
use slotring::{Event, EventAllocator, PoolId, RingPtr};

/// The process-wide allocator: the FFI layer stores events from C here, and actors
/// allocate their own (fold) events here too.
static ALLOCATOR: LazyLock<EventAllocator> = LazyLock::new(EventAllocator::new);

/// Event type of the indexer's fold summaries.
const FOLD_TYPE: u32 = 0xF01D;
/// Event types the ingest thread produces: `0..TYPES`.
const TYPES: u32 = 16;
/// Events the indexer keeps live.
const INDEX_WINDOW: usize = 256;

struct Options {
    events: u64,
    fold_every: u64,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        events: 1_000_000,
        fold_every: 1_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let text = args.next().ok_or(format!("{name} needs a value"))?;
            text.replace('_', "")
                .parse()
                .map_err(|e| format!("{name} {text}: {e}"))
        };
        match arg.as_str() {
            "--events" => options.events = value("--events")?,
            "--fold-every" => options.fold_every = value("--fold-every")?.max(1),
            "--help" | "-h" => {
                return Err("usage: actors [--events N (1000000)] [--fold-every K (1000)]".into());
            }
            other => return Err(format!("unknown option {other}; try --help")),
        }
    }
    Ok(options)
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A payload of `len >= 16` bytes: sequence number, filler, FNV checksum of the rest.
fn fill_payload(buf: &mut Vec<u8>, seq: u64, len: usize) {
    buf.clear();
    buf.extend_from_slice(&seq.to_le_bytes());
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while buf.len() < len - 8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf.push(x as u8);
    }
    let sum = fnv1a(buf);
    buf.extend_from_slice(&sum.to_le_bytes());
}

/// The sequence number and whether the checksum holds.
fn check_payload(payload: &[u8]) -> (u64, bool) {
    let (body, sum) = payload.split_at(payload.len() - 8);
    let seq = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
    (seq, fnv1a(body).to_le_bytes() == sum)
}

/// Mostly small events, as event streams are: 70 % XS, 20 % S, 8 % M, 2 % L, rare XL.
fn payload_len(seq: u64) -> usize {
    let r = seq.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
    let spread = (r % 48) as usize;
    match r % 1000 {
        0..700 => 16 + spread,
        700..900 => 65 + spread * 4,
        900..980 => 257 + spread * 15,
        980..999 => 1025 + spread * 60,
        _ => 4097 + spread * 200,
    }
}

/// What the indexer folds a batch of events into.
#[derive(Default, Debug, Clone, Copy, PartialEq)]
struct Fold {
    events: u64,
    bytes: u64,
    first: u64,
    last: u64,
}

impl Fold {
    const LEN: usize = 32;
    fn add(&mut self, seq: u64, len: usize) {
        if self.events == 0 {
            self.first = seq;
        }
        self.events += 1;
        self.bytes += len as u64;
        self.last = seq;
    }
    fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0; Self::LEN];
        for (chunk, v) in
            out.chunks_exact_mut(8)
                .zip([self.events, self.bytes, self.first, self.last])
        {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let words: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        match words[..] {
            [events, bytes, first, last] => Some(Fold {
                events,
                bytes,
                first,
                last,
            }),
            _ => None,
        }
    }
}

fn hasher(rx: Receiver<RingPtr<Event>>) -> (u64, u64, u64) {
    let (mut digest, mut bytes, mut corrupt) = (0u64, 0u64, 0u64);
    for ev in rx {
        let (_, ok) = check_payload(ev.payload());
        corrupt += u64::from(!ok);
        digest ^= fnv1a(ev.payload());
        bytes += ev.len() as u64;
    }
    (digest, bytes, corrupt)
}

fn counter(rx: Receiver<RingPtr<Event>>) -> HashMap<u32, u64> {
    let mut per_type = HashMap::new();
    for ev in rx {
        *per_type.entry(ev.event_type()).or_insert(0) += 1;
    }
    per_type
}

fn indexer(rx: Receiver<RingPtr<Event>>, folds: Sender<RingPtr<Event>>, fold_every: u64) {
    let mut index: BTreeMap<u64, RingPtr<Event>> = BTreeMap::new();
    let mut batch = Fold::default();
    let emit = |batch: &mut Fold| {
        if batch.events == 0 {
            return;
        }
        // A new event in a new slot: the fold step of the original design.
        let summary = ALLOCATOR
            .allocate(&batch.encode(), FOLD_TYPE)
            .expect("the heap fallback is on");
        folds.send(summary).expect("main receives folds");
        *batch = Fold::default();
    };
    for ev in rx {
        let (seq, _) = check_payload(ev.payload());
        batch.add(seq, ev.len());
        index.insert(seq, ev);
        if index.len() > INDEX_WINDOW {
            index.pop_first();
        }
        if batch.events == fold_every {
            emit(&mut batch);
        }
    }
    emit(&mut batch);
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    ffi::install_allocator(&ALLOCATOR).expect("installed before any FFI call");

    let (hash_tx, hash_rx) = bounded::<RingPtr<Event>>(1024);
    let (count_tx, count_rx) = bounded::<RingPtr<Event>>(1024);
    let (index_tx, index_rx) = bounded::<RingPtr<Event>>(1024);
    let (fold_tx, fold_rx) = bounded::<RingPtr<Event>>(64);
    // The sink: two clones and the original, one per actor. Blocking sends pass the
    // actors' backpressure on to the host's thread.
    ffi::set_sink(move |ev: RingPtr<Event>| -> Result<(), SinkError> {
        let closed = |e: crossbeam_channel::SendError<RingPtr<Event>>| SinkError::Closed(e.0);
        hash_tx.send(ev.clone()).map_err(closed)?;
        count_tx.send(ev.clone()).map_err(closed)?;
        index_tx.send(ev).map_err(closed)
    });

    let start = Instant::now();
    let hasher = thread::spawn(move || hasher(hash_rx));
    let counter = thread::spawn(move || counter(count_rx));
    let fold_every = options.fold_every;
    let indexer = thread::spawn(move || indexer(index_rx, fold_tx, fold_every));
    let events = options.events;
    let ingest = thread::spawn(move || {
        let mut buf = Vec::with_capacity(16 * 1024);
        let mut failed = 0u64;
        for seq in 0..events {
            fill_payload(&mut buf, seq, payload_len(seq));
            // SAFETY: `buf` is valid for reads of `buf.len()` bytes during the call:
            // exactly what a C host promises.
            let status = unsafe {
                ffi::handle_ffi_event(buf.as_ptr(), buf.len(), (seq % u64::from(TYPES)) as u32)
            };
            failed += u64::from(status != SlotringStatus::Ok);
        }
        // The host is done: unregister the sink, which closes the actors' channels.
        drop(ffi::take_sink());
        failed
    });
    let mut folded = Fold::default();
    let mut fold_events = 0u64;
    for summary in &fold_rx {
        let fold = Fold::decode(summary.payload()).expect("a fold event");
        folded.events += fold.events;
        folded.bytes += fold.bytes;
        fold_events += 1;
        if fold_events == 1 {
            folded.first = fold.first;
        }
        folded.last = fold.last;
        if events <= fold_every || fold_events % 100 == 0 {
            eprint!("\r{} of {events} events folded", folded.events);
        }
    }
    eprintln!();
    let failed = ingest.join().expect("ingest thread");
    let elapsed = start.elapsed();
    let (digest, bytes, corrupt) = hasher.join().expect("hasher");
    let per_type = counter.join().expect("counter");
    indexer.join().expect("indexer");

    let secs = elapsed.as_secs_f64();
    println!(
        "{events} events ({:.1} MB) through handle_ffi_event to 3 actors in {:.2} s: \
         {:.2} M events/s, {:.0} MB/s",
        bytes as f64 / 1e6,
        secs,
        events as f64 / secs / 1e6,
        bytes as f64 / secs / 1e6
    );
    println!("hasher: digest {digest:016x}, {corrupt} corrupted payloads");
    let mut types: Vec<_> = per_type.iter().collect();
    types.sort();
    let counted: u64 = per_type.values().sum();
    println!(
        "counter: {counted} events over {} types ({} of type 0)",
        types.len(),
        per_type.get(&0).copied().unwrap_or(0)
    );
    println!(
        "indexer: {fold_events} fold events covering {} events, seq {}..={}",
        folded.events, folded.first, folded.last
    );
    println!();
    println!("pool  slot size  capacity  high water  allocations  spills  failures  in use");
    let stats = ALLOCATOR.stats();
    for pool in PoolId::ALL {
        let p = stats.pool(pool);
        println!(
            "{:<4}  {:>9}  {:>8}  {:>10}  {:>11}  {:>6}  {:>8}  {:>6}",
            format!("{pool:?}"),
            pool.max_size(),
            p.capacity,
            p.high_water,
            p.allocations,
            p.spills,
            p.failures,
            p.in_use
        );
    }
    println!(
        "heap  {:>9}  {:>8}  {:>10}  {:>11}  {:>6}  {:>8}  {:>6}",
        "-", "-", "-", stats.heap.allocations, "-", "-", stats.heap.in_use
    );

    let mut ok = true;
    let mut check = |cond: bool, what: &str| {
        if !cond {
            eprintln!("FAILED: {what}");
            ok = false;
        }
    };
    check(failed == 0, "every handle_ffi_event call succeeded");
    check(corrupt == 0, "no payload was corrupted");
    check(counted == events, "the counter saw every event");
    check(folded.events == events, "the folds cover every event");
    let all_back = stats.pools.iter().all(|p| p.in_use == 0) && stats.heap.in_use == 0;
    check(all_back, "every slot came back (in_use == 0 everywhere)");
    if ok {
        println!("\nevery slot came back: in_use == 0 in every pool and on the heap");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
