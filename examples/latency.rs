//! The latency report: slotring next to the allocators and handles users would pick
//! instead, on the same payloads, in one run. Prints a table (workload, slotring ns/op,
//! the alternative's ns/op, their ratio, and the atomic floor: one uncontended
//! `fetch_add` + `fetch_sub` pair) and writes it as Markdown to `target/latency.md`.
//!
//! Run: `cargo run --release --example latency`, or `-- --help`. The table's header
//! names the build profile, the repetitions, the machine, the date and how long the run
//! took. Every number is the median of several repetitions, with their minimum and
//! maximum; the ratio is slotring's median divided by the alternative's, so below 1.0
//! means slotring is faster. `-- --update-readme` (release builds only) also writes the
//! table into README.md between its `latency-table` markers.

use std::hint::black_box;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Instant, SystemTime};

use crossbeam_channel::bounded;
use slotring::{EventAllocator, PoolId, RingBuffer, RingPtr};

const USAGE: &str = "\
usage: latency [options]

Measures slotring against Box<[u8]>, Arc<[u8]> and the atomic floor, prints a table and
writes it as Markdown.

options:
  --size BYTES        payload size for the clone, burst, occupancy and thread workloads
                      (default 48; at most 16384)
  --iterations N      operations per repetition of each single-thread workload
                      (default 2000000; the thread workloads move N/4 events)
  --repetitions N     repetitions per workload; the median, minimum and maximum
                      are reported (default 5)
  --threads N         consumer threads in the fan-out workload (default 2)
  --out PATH          where to write the Markdown table (default target/latency.md)
  --update-readme     also replace the table between the markers
                      <!-- latency-table:start --> and <!-- latency-table:end --> in
                      README.md (release builds only)
  --readme PATH       the README that --update-readme rewrites (default: the crate's)
  -h, --help          this text
";

struct Options {
    size: usize,
    iterations: u64,
    repetitions: usize,
    threads: usize,
    out: PathBuf,
    update_readme: bool,
    readme: PathBuf,
}

/// The markers around the generated table in README.md (tests/readme.rs reads them too).
const START_MARKER: &str = "<!-- latency-table:start -->";
const END_MARKER: &str = "<!-- latency-table:end -->";

fn parse() -> Result<Option<Options>, String> {
    let mut o = Options {
        size: 48,
        iterations: 2_000_000,
        repetitions: 5,
        threads: 2,
        out: PathBuf::from("target/latency.md"),
        update_readme: false,
        readme: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--size" => o.size = number(&value("--size")?)?,
            "--iterations" => o.iterations = number(&value("--iterations")?)? as u64,
            "--repetitions" => o.repetitions = number(&value("--repetitions")?)?,
            "--threads" => o.threads = number(&value("--threads")?)?,
            "--out" => o.out = PathBuf::from(value("--out")?),
            "--update-readme" => o.update_readme = true,
            "--readme" => o.readme = PathBuf::from(value("--readme")?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.size > PoolId::MAX_POOLED {
        return Err(format!(
            "--size {} is above the largest class (16384)",
            o.size
        ));
    }
    if o.iterations < 100 || o.repetitions == 0 || o.threads == 0 {
        return Err(
            "--iterations must be at least 100, --repetitions and --threads at least 1".into(),
        );
    }
    if o.update_readme && cfg!(debug_assertions) {
        return Err(
            "--update-readme needs a release build: a debug build's numbers are not \
                    representative (run `cargo run --release --example latency -- --update-readme`)"
                .into(),
        );
    }
    Ok(Some(o))
}

fn number(text: &str) -> Result<usize, String> {
    text.replace('_', "")
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))
}

/// Nanoseconds per operation over the repetitions of one workload.
#[derive(Clone, Copy, Default)]
struct Spread {
    min: f64,
    median: f64,
    max: f64,
}

/// Nanoseconds per operation of `run(n)`, which performs `n` operations: median,
/// minimum and maximum over the repetitions.
fn median_ns(o: &Options, n: u64, mut run: impl FnMut(u64)) -> Spread {
    run(n / 10 + 1); // warm-up: pools, magazines, caches
    let mut samples: Vec<f64> = (0..o.repetitions)
        .map(|_| {
            let start = Instant::now();
            run(n);
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    Spread {
        min: samples[0],
        median: samples[samples.len() / 2],
        max: samples[samples.len() - 1],
    }
}

struct Row {
    workload: String,
    ours: Spread,
    alternative: &'static str,
    theirs: Spread,
}

fn alloc_read_drop(o: &Options, alloc: &EventAllocator, len: usize) -> [Spread; 3] {
    let payload = vec![0x5Au8; len];
    // Fewer operations for larger payloads, so each class takes about as long as the
    // smallest (glibc's `Box` of 12 KiB costs microseconds here: the run would take a
    // minute at full count).
    let iterations = (o.iterations * 256 / len.max(256) as u64).max(100);
    let ours = median_ns(o, iterations, |n| {
        for _ in 0..n {
            let ev = alloc.allocate(black_box(&payload), 1).unwrap();
            black_box(ev[len / 2]);
        }
    });
    let boxed = median_ns(o, iterations, |n| {
        for _ in 0..n {
            let b: Box<[u8]> = Box::from(black_box(&payload[..]));
            black_box(b[len / 2]);
        }
    });
    let arc = median_ns(o, iterations, |n| {
        for _ in 0..n {
            let a: Arc<[u8]> = Arc::from(black_box(&payload[..]));
            black_box(a[len / 2]);
        }
    });
    [ours, boxed, arc]
}

/// Events per second through a bounded channel from a producer to a consumer that
/// drops them, reported as ns per event.
fn cross_thread<T: Send + 'static>(o: &Options, make: impl Fn() -> T + Sync) -> Spread {
    median_ns(o, o.iterations / 4, |n| {
        let (tx, rx) = bounded::<T>(1024);
        thread::scope(|s| {
            s.spawn(|| {
                for ev in rx {
                    drop(black_box(ev));
                }
            });
            for _ in 0..n {
                tx.send(make()).unwrap();
            }
            drop(tx);
        });
    })
}

/// One event cloned to `threads` consumers, each of which reads and drops it.
fn fan_out<T: Clone + Send + 'static>(o: &Options, make: impl Fn() -> T + Sync) -> Spread {
    median_ns(o, o.iterations / 4, |n| {
        let channels: Vec<_> = (0..o.threads).map(|_| bounded::<T>(1024)).collect();
        thread::scope(|s| {
            for (_, rx) in &channels {
                let rx = rx.clone();
                s.spawn(move || {
                    for ev in rx {
                        drop(black_box(ev));
                    }
                });
            }
            let senders: Vec<_> = channels.iter().map(|(tx, _)| tx.clone()).collect();
            drop(channels);
            for _ in 0..n {
                let ev = make();
                for tx in &senders {
                    tx.send(ev.clone()).unwrap();
                }
            }
        });
    })
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("latency: {err}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let alloc = EventAllocator::new();
    let mut rows = Vec::new();
    // Rewrite one status line on a terminal; plain lines into pipes and CI logs.
    let terminal = std::io::stderr().is_terminal();
    let progress = |what: &str| {
        if terminal {
            eprint!("\r\x1b[2Kmeasuring {what} ...");
        } else {
            eprintln!("measuring {what} ...");
        }
    };

    progress("the atomic floor");
    let counter = AtomicUsize::new(0);
    let floor = median_ns(&o, o.iterations, |n| {
        for _ in 0..n {
            black_box(&counter).fetch_add(1, Ordering::AcqRel);
            black_box(&counter).fetch_sub(1, Ordering::AcqRel);
        }
    });

    for (pool, len) in [
        (PoolId::XS, 48),
        (PoolId::S, 200),
        (PoolId::M, 900),
        (PoolId::L, 3072),
        (PoolId::XL, 12288),
    ] {
        progress(&format!("allocate + read + drop, {len} B"));
        let [ours, boxed, arc] = alloc_read_drop(&o, &alloc, len);
        let workload = format!("allocate+read+drop {len} B ({pool})");
        rows.push(Row {
            workload: workload.clone(),
            ours,
            alternative: "Box<[u8]>",
            theirs: boxed,
        });
        rows.push(Row {
            workload,
            ours,
            alternative: "Arc<[u8]>",
            theirs: arc,
        });
    }

    progress("clone + drop");
    let payload = vec![7u8; o.size];
    let ev = alloc.allocate(&payload, 1).unwrap();
    let ours = median_ns(&o, o.iterations, |n| {
        for _ in 0..n {
            drop(black_box(ev.clone()));
        }
    });
    let arc: Arc<[u8]> = Arc::from(&payload[..]);
    let theirs = median_ns(&o, o.iterations, |n| {
        for _ in 0..n {
            drop(black_box(arc.clone()));
        }
    });
    drop(ev);
    rows.push(Row {
        workload: "clone + drop".into(),
        ours,
        alternative: "Arc<[u8]>",
        theirs,
    });

    progress("burst of 1,000 live events");
    let mut held = Vec::with_capacity(1000);
    let bursts = (o.iterations / 1000).max(1);
    let ours = median_ns(&o, bursts * 1000, |n| {
        for _ in 0..n / 1000 {
            held.extend((0..1000).map(|_| alloc.allocate(&payload, 1).unwrap()));
            held.clear();
        }
    });
    let mut boxes: Vec<Box<[u8]>> = Vec::with_capacity(1000);
    let theirs = median_ns(&o, bursts * 1000, |n| {
        for _ in 0..n / 1000 {
            boxes.extend((0..1000).map(|_| Box::from(&payload[..])));
            boxes.clear();
        }
    });
    rows.push(Row {
        workload: "burst: 1,000 live, then all dropped".into(),
        ours,
        alternative: "Box<[u8]>",
        theirs,
    });

    let class = PoolId::for_len(o.size).expect("checked in parse");
    let capacity = alloc.capacity(class);
    let mut occupancy = [Spread::default(); 3];
    for (i, percent) in [0usize, 50, 99].into_iter().enumerate() {
        progress(&format!("occupancy {percent} %"));
        let held: Vec<_> = (0..capacity * percent / 100)
            .map(|_| alloc.try_allocate(&payload, 1).unwrap())
            .collect();
        occupancy[i] = median_ns(&o, o.iterations, |n| {
            for _ in 0..n {
                drop(black_box(alloc.try_allocate(&payload, 1).unwrap()));
            }
        });
        drop(held);
    }
    for (percent, ns) in [(50, occupancy[1]), (99, occupancy[2])] {
        rows.push(Row {
            workload: format!("allocate + drop, {class} pool {percent} % full"),
            ours: ns,
            alternative: "same pool 0 % full",
            theirs: occupancy[0],
        });
    }

    progress("cross-thread hand-off");
    let ours = cross_thread(&o, || alloc.allocate(&payload, 1).unwrap());
    let theirs = cross_thread(&o, || Arc::<[u8]>::from(&payload[..]));
    rows.push(Row {
        workload: "cross-thread: allocate, send, drop there".into(),
        ours,
        alternative: "Arc<[u8]>",
        theirs,
    });

    progress("fan-out");
    let ours = fan_out(&o, || alloc.allocate(&payload, 1).unwrap());
    let theirs = fan_out(&o, || Arc::<[u8]>::from(&payload[..]));
    rows.push(Row {
        workload: format!("fan-out to {} consumers", o.threads),
        ours,
        alternative: "Arc<[u8]>",
        theirs,
    });

    progress("typed RingBuffer::alloc");
    let ring = RingBuffer::<64, 1024>::new();
    let ours = median_ns(&o, o.iterations, |n| {
        for i in 0..n {
            let p: RingPtr<[u64; 8]> = ring.alloc(black_box([i; 8])).unwrap();
            black_box(p[3]);
        }
    });
    let theirs = median_ns(&o, o.iterations, |n| {
        for i in 0..n {
            let b = Box::new(black_box([i; 8]));
            black_box(b[3]);
        }
    });
    rows.push(Row {
        workload: "typed pool: 64-byte Pod value".into(),
        ours,
        alternative: "Box<[u64; 8]>",
        theirs,
    });
    if terminal {
        eprint!("\r\x1b[2K");
    }

    let table = render(&o, floor, &rows, &alloc, started.elapsed().as_secs());
    print!("{table}");
    if let Some(dir) = o.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(err) = std::fs::create_dir_all(dir) {
            eprintln!("latency: cannot create {}: {err}", dir.display());
            return ExitCode::FAILURE;
        }
    }
    if let Err(err) = std::fs::write(&o.out, &table) {
        eprintln!("latency: cannot write {}: {err}", o.out.display());
        return ExitCode::FAILURE;
    }
    eprintln!("written to {}", o.out.display());
    if o.update_readme {
        if let Err(err) = update_readme(&o.readme, &table) {
            eprintln!("latency: cannot update {}: {err}", o.readme.display());
            return ExitCode::FAILURE;
        }
        eprintln!("table replaced in {}", o.readme.display());
    }
    if alloc.stats().total_in_use() != 0 {
        eprintln!("latency: events leaked: {:?}", alloc.stats());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Replaces what lies between the markers in the README with `table`.
fn update_readme(path: &std::path::Path, table: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let start = text
        .find(START_MARKER)
        .ok_or(format!("no {START_MARKER} line"))?
        + START_MARKER.len();
    let end = text[start..]
        .find(END_MARKER)
        .ok_or(format!("no {END_MARKER} after {START_MARKER}"))?
        + start;
    let updated = format!("{}\n\n{}\n{}", &text[..start], table, &text[end..]);
    std::fs::write(path, updated).map_err(|e| e.to_string())
}

/// The CPU model from /proc/cpuinfo (Linux; "unknown CPU" elsewhere).
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Today's date and time in UTC, `YYYY-MM-DD HH:MM UTC`, from the system clock.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a civil date (H. Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

fn render(o: &Options, floor: Spread, rows: &[Row], alloc: &EventAllocator, took: u64) -> String {
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let build = if cfg!(debug_assertions) {
        "debug build (not representative)"
    } else {
        "release build"
    };
    let mut out = format!(
        "slotring latency report: {build}; {} runs of {} ops per workload (median, min, max); \
         fewer ops for payloads over 256 B, a quarter across threads; \
         machine: {}, {cores} cores; date: {}; the run took {took} s; payload {} B where not \
         stated\n\n",
        o.repetitions,
        o.iterations,
        cpu_model(),
        utc_now(),
        o.size
    );
    out.push_str(
        "| workload | slotring ns/op | slotring min-max | alternative | alternative ns/op \
         | alternative min-max | ratio | atomic floor ns |\n",
    );
    out.push_str("|---|---:|---:|---|---:|---:|---:|---:|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {:.1} | {:.1}-{:.1} | {} | {:.1} | {:.1}-{:.1} | {:.2} | {:.1} |\n",
            r.workload,
            r.ours.median,
            r.ours.min,
            r.ours.max,
            r.alternative,
            r.theirs.median,
            r.theirs.min,
            r.theirs.max,
            r.ours.median / r.theirs.median,
            floor.median
        ));
    }
    let stats = alloc.stats();
    out.push_str(&format!(
        "\nns/op: median of the runs; min-max: the fastest and slowest run. ratio = slotring / \
         alternative, of the medians (below 1.0: slotring is faster). Atomic floor: one \
         uncontended fetch_add + fetch_sub pair (median; {:.1}-{:.1} over the runs). Events \
         still live at the end: {}.\n",
        floor.min,
        floor.max,
        stats.total_in_use()
    ));
    out
}
