//! Tail latency of single operations: the distribution (p50, p99, p99.9, max) of one
//! allocate, one clone and one last drop of a 48-byte event, each timed alone with the
//! CPU's time-stamp counter, for slotring and the alternatives users would pick instead
//! (`Box<[u8]>` and `Arc<[u8]>` on mimalloc, this program's global allocator, and a
//! `Box`-like on glibc's `malloc`), in three situations:
//!
//! * **one thread**: nothing else allocates;
//! * **second thread**: another thread allocates and drops from the same pool (for the
//!   alternatives, from the same allocator) all the time;
//! * **99 % occupancy**: 99 % of slotring's XS pool is held live (the alternatives hold
//!   the same number of live allocations).
//!
//! Prints a Markdown table, writes it to `target/tail_latency.md`, and draws the
//! distributions as an SVG (`target/tail_latency.svg`): one panel per situation and
//! operation, latency (log scale) against percentile.
//!
//! Run: `cargo run --release -p slotring-comparisons --example tail_latency`, or
//! `-- --help`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use slotring::{EventAllocator, PoolId};
use slotring_comparisons::GlibcBox;

#[global_allocator]
static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
usage: tail_latency [options]

Times single allocate, clone and last-drop operations of 48-byte events with the CPU's
time-stamp counter: slotring against Box<[u8]> and Arc<[u8]> on mimalloc and a Box on glibc,
on one thread, with a second thread allocating, and at 99 % occupancy.

options:
  --samples N   timed operations per implementation and situation (default 1000000)
  --out PATH    the Markdown table (default target/tail_latency.md)
  --svg PATH    the picture of the distributions (default target/tail_latency.svg)
  -h, --help    this text
";

const PAYLOAD: [u8; 48] = [0x5A; 48];

struct Options {
    samples: u64,
    out: PathBuf,
    svg: PathBuf,
}

fn parse() -> Result<Option<Options>, String> {
    let mut o = Options {
        samples: 1_000_000,
        out: PathBuf::from("target/tail_latency.md"),
        svg: PathBuf::from("target/tail_latency.svg"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--samples" => {
                o.samples = value("--samples")?
                    .replace('_', "")
                    .parse()
                    .map_err(|_| "--samples needs a whole number".to_string())?;
            }
            "--out" => o.out = PathBuf::from(value("--out")?),
            "--svg" => o.svg = PathBuf::from(value("--svg")?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.samples < 100 {
        return Err("--samples must be at least 100".into());
    }
    Ok(Some(o))
}

/// The time-stamp counter, fenced so that the timed operation stays between two reads.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn ticks() -> u64 {
    use std::arch::x86_64::{_mm_lfence, _rdtsc};
    // SAFETY: `lfence` and `rdtsc` are part of x86-64's baseline instruction set.
    unsafe {
        _mm_lfence();
        let t = _rdtsc();
        _mm_lfence();
        t
    }
}

/// Elsewhere: nanoseconds since the first call (coarser, but the same distributions).
#[cfg(not(target_arch = "x86_64"))]
fn ticks() -> u64 {
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Ticks per nanosecond, measured against the monotonic clock over 50 ms.
fn ticks_per_ns() -> f64 {
    let (t0, i0) = (ticks(), Instant::now());
    while i0.elapsed() < Duration::from_millis(50) {
        std::hint::spin_loop();
    }
    let (t1, elapsed) = (ticks(), i0.elapsed());
    (t1 - t0) as f64 / elapsed.as_nanos() as f64
}

/// The smallest step the counter moves by, in ticks (virtual machines may advance the
/// time-stamp counter in coarse steps; every figure is a multiple of it).
fn resolution() -> u64 {
    (0..1000)
        .map(|_| {
            let t0 = ticks();
            loop {
                let t1 = ticks();
                if t1 != t0 {
                    break t1 - t0;
                }
            }
        })
        .min()
        .unwrap_or(1)
}

fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant digits is a valid precision")
}

/// What one implementation's operations cost, one histogram each (in ticks).
struct Distributions {
    allocate: Histogram<u64>,
    clone: Option<Histogram<u64>>,
    last_drop: Histogram<u64>,
}

/// One way to make and share an event.
struct Implementation<T> {
    name: &'static str,
    make: Box<dyn Fn() -> T + Sync>,
    /// `None` for the unshared `Box` types.
    clone: Option<fn(&T) -> T>,
}

/// Times `samples` single operations of `imp`: each sample allocates, clones (if the
/// type can) and drops the clone, then drops the last handle; the allocation, the clone
/// and the last drop are timed on their own.
fn sample<T>(imp: &Implementation<T>, samples: u64) -> Distributions {
    let mut d = Distributions {
        allocate: histogram(),
        clone: imp.clone.map(|_| histogram()),
        last_drop: histogram(),
    };
    for round in 0..samples + samples / 10 {
        let t0 = ticks();
        let event = (imp.make)();
        let t1 = ticks();
        let event = black_box(event);
        let cloned = imp.clone.map(|clone| {
            let t2 = ticks();
            let twin = clone(&event);
            let t3 = ticks();
            drop(black_box(twin));
            t3 - t2
        });
        let t4 = ticks();
        drop(event);
        let t5 = ticks();
        // The first tenth warms up pools, magazines and caches.
        if round >= samples / 10 {
            d.allocate.saturating_record(t1 - t0);
            d.last_drop.saturating_record(t5 - t4);
            if let (Some(h), Some(c)) = (d.clone.as_mut(), cloned) {
                h.saturating_record(c);
            }
        }
    }
    d
}

/// How the measuring thread's surroundings look while it samples.
#[derive(Clone, Copy, PartialEq)]
enum Situation {
    OneThread,
    SecondThread,
    Occupied99,
}

impl Situation {
    const ALL: [Situation; 3] = [
        Situation::OneThread,
        Situation::SecondThread,
        Situation::Occupied99,
    ];

    fn name(self) -> &'static str {
        match self {
            Situation::OneThread => "one thread",
            Situation::SecondThread => "second thread allocating",
            Situation::Occupied99 => "99 % occupancy",
        }
    }
}

/// Samples `imp` in `situation`: with another thread making and dropping events of the
/// same implementation, or with `occupied` of them held live.
fn measure<T: Send + 'static>(
    imp: &Implementation<T>,
    situation: Situation,
    occupied: usize,
    samples: u64,
) -> Distributions {
    match situation {
        Situation::OneThread => sample(imp, samples),
        Situation::SecondThread => {
            let stop = AtomicBool::new(false);
            thread::scope(|s| {
                s.spawn(|| {
                    // Relaxed: a stop request; nothing is published with it.
                    while !stop.load(Ordering::Relaxed) {
                        drop(black_box((imp.make)()));
                    }
                });
                let d = sample(imp, samples);
                // Relaxed: as above.
                stop.store(true, Ordering::Relaxed);
                d
            })
        }
        Situation::Occupied99 => {
            let held: Vec<T> = (0..occupied).map(|_| (imp.make)()).collect();
            let d = sample(imp, samples);
            drop(held);
            d
        }
    }
}

/// One row of the report: a situation, an operation, an implementation, its percentiles
/// in nanoseconds.
struct Row {
    situation: Situation,
    operation: &'static str,
    implementation: &'static str,
    /// p50, p99, p99.9, p99.99 and max, in ns.
    ns: [f64; 5],
}

const QUANTILES: [(f64, &str); 4] = [
    (0.5, "p50"),
    (0.99, "p99"),
    (0.999, "p99.9"),
    (0.9999, "p99.99"),
];

fn rows_of(
    situation: Situation,
    implementation: &'static str,
    d: &Distributions,
    per_ns: f64,
) -> Vec<Row> {
    let percentiles = |h: &Histogram<u64>| {
        let mut ns = [0.0; 5];
        for (i, (q, _)) in QUANTILES.iter().enumerate() {
            ns[i] = h.value_at_quantile(*q) as f64 / per_ns;
        }
        ns[4] = h.max() as f64 / per_ns;
        ns
    };
    let mut rows = vec![Row {
        situation,
        operation: "allocate",
        implementation,
        ns: percentiles(&d.allocate),
    }];
    if let Some(h) = &d.clone {
        rows.push(Row {
            situation,
            operation: "clone",
            implementation,
            ns: percentiles(h),
        });
    }
    rows.push(Row {
        situation,
        operation: "last drop",
        implementation,
        ns: percentiles(&d.last_drop),
    });
    rows
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("tail_latency: {err}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let per_ns = ticks_per_ns();
    let alloc = Arc::new(EventAllocator::new());
    let occupied = alloc.capacity(PoolId::XS) * 99 / 100;

    // The timer's own cost: two reads with nothing between them.
    let mut floor = histogram();
    for _ in 0..o.samples {
        let t0 = ticks();
        floor.saturating_record(ticks() - t0);
    }
    let floor_ns = floor.value_at_quantile(0.5) as f64 / per_ns;
    let resolution_ns = resolution() as f64 / per_ns;

    let mut rows = Vec::new();
    for situation in Situation::ALL {
        eprintln!("measuring: {} ...", situation.name());
        let slotring = Implementation {
            name: "slotring",
            make: Box::new({
                let alloc = Arc::clone(&alloc);
                // `try_allocate`: the XS pool only, so 99 % occupancy means that pool.
                move || {
                    alloc
                        .try_allocate(&PAYLOAD, 1)
                        .expect("the XS pool has room")
                }
            }),
            clone: Some(|ev| ev.clone()),
        };
        let d = measure(&slotring, situation, occupied, o.samples);
        rows.extend(rows_of(situation, slotring.name, &d, per_ns));
        let arc = Implementation {
            name: "Arc<[u8]> (mimalloc)",
            make: Box::new(|| Arc::<[u8]>::from(&PAYLOAD[..])),
            clone: Some(Arc::clone),
        };
        let d = measure(&arc, situation, occupied, o.samples);
        rows.extend(rows_of(situation, arc.name, &d, per_ns));
        let boxed = Implementation {
            name: "Box<[u8]> (mimalloc)",
            make: Box::new(|| Box::<[u8]>::from(&PAYLOAD[..])),
            clone: None,
        };
        let d = measure(&boxed, situation, occupied, o.samples);
        rows.extend(rows_of(situation, boxed.name, &d, per_ns));
        let glibc = Implementation {
            name: "Box (glibc)",
            make: Box::new(|| GlibcBox::new(&PAYLOAD)),
            clone: None,
        };
        let d = measure(&glibc, situation, occupied, o.samples);
        rows.extend(rows_of(situation, glibc.name, &d, per_ns));
    }

    let table = render(
        &o,
        &rows,
        [floor_ns, resolution_ns, per_ns],
        started.elapsed().as_secs(),
    );
    print!("{table}");
    for (path, text) in [(&o.out, table), (&o.svg, svg(&rows))] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Err(err) = std::fs::create_dir_all(dir) {
                eprintln!("tail_latency: cannot create {}: {err}", dir.display());
                return ExitCode::FAILURE;
            }
        }
        if let Err(err) = std::fs::write(path, text) {
            eprintln!("tail_latency: cannot write {}: {err}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("written to {}", path.display());
    }
    if alloc.stats().total_in_use() != 0 {
        eprintln!("tail_latency: events leaked: {:?}", alloc.stats());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `timer`: the timer's cost at p50 and its resolution in ns, and its ticks per ns.
fn render(o: &Options, rows: &[Row], timer: [f64; 3], took: u64) -> String {
    let [floor_ns, resolution_ns, per_ns] = timer;
    let build = if cfg!(debug_assertions) {
        "debug build (not representative)"
    } else {
        "release build"
    };
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let mut out = format!(
        "slotring tail latency: {build}; {} timed operations per implementation and \
         situation, 48-byte payloads; machine: {}, {cores} cores; date: {}; the run took \
         {took} s; time-stamp counter at {per_ns:.3} ticks/ns, moving in steps of \
         {resolution_ns:.1} ns; the timer itself (two reads, nothing between) costs \
         {floor_ns:.1} ns at p50 and is included in every figure\n\n",
        o.samples,
        cpu_model(),
        utc_now(),
    );
    out.push_str("| situation | operation | implementation | p50 ns | p99 ns | p99.9 ns | p99.99 ns | max ns |\n");
    out.push_str("|---|---|---|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} |",
            r.situation.name(),
            r.operation,
            r.implementation,
            r.ns[0],
            r.ns[1],
            r.ns[2],
            r.ns[3],
            r.ns[4]
        );
    }
    out.push_str(
        "\nOne run: percentiles of single operations, each timed alone (so the timer's cost \
         is in each); max is the single worst sample and varies most between runs.\n",
    );
    out
}

/// The distributions as an SVG: a grid of panels (rows: situations; columns: allocate,
/// clone, last drop), each with one line per implementation through p50, p99, p99.9,
/// p99.99 and max, on a logarithmic latency axis.
fn svg(rows: &[Row]) -> String {
    const OPERATIONS: [&str; 3] = ["allocate", "clone", "last drop"];
    const IMPLEMENTATIONS: [(&str, &str); 4] = [
        ("slotring", "#d62728"),
        ("Arc<[u8]> (mimalloc)", "#1f77b4"),
        ("Box<[u8]> (mimalloc)", "#2ca02c"),
        ("Box (glibc)", "#9467bd"),
    ];
    const LABELS: [&str; 5] = ["p50", "p99", "p99.9", "p99.99", "max"];
    let (panel_w, panel_h, left, top, gap) = (300.0, 220.0, 70.0, 70.0, 60.0);
    let width = left + 3.0 * (panel_w + gap);
    let height = top + 3.0 * (panel_h + gap) + 20.0;
    let max_ns = rows
        .iter()
        .map(|r| r.ns[4])
        .fold(10.0_f64, f64::max)
        .max(10.0);
    let decades = max_ns.log10().ceil().max(1.0);
    let y_of = |ns: f64, y0: f64| y0 + panel_h - (ns.max(1.0).log10() / decades) * panel_h;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" \
         fill=\"white\"/>\n<text x=\"{left}\" y=\"20\" font-size=\"14\">Latency of single \
         operations, 48-byte events (ns, log scale) by percentile</text>\n"
    );
    for (i, (name, color)) in IMPLEMENTATIONS.iter().enumerate() {
        let x = left + i as f64 * 190.0;
        let _ = writeln!(
            s,
            "<line x1=\"{x}\" y1=\"40\" x2=\"{}\" y2=\"40\" stroke=\"{color}\" \
             stroke-width=\"3\"/><text x=\"{}\" y=\"44\">{}</text>",
            x + 20.0,
            x + 25.0,
            escape(name)
        );
    }
    for (row, situation) in Situation::ALL.iter().enumerate() {
        for (col, operation) in OPERATIONS.iter().enumerate() {
            let x0 = left + col as f64 * (panel_w + gap);
            let y0 = top + row as f64 * (panel_h + gap);
            let _ = writeln!(
                s,
                "<rect x=\"{x0}\" y=\"{y0}\" width=\"{panel_w}\" height=\"{panel_h}\" \
                 fill=\"none\" stroke=\"#999\"/><text x=\"{x0}\" y=\"{}\">{}: {}</text>",
                y0 - 6.0,
                situation.name(),
                operation
            );
            for d in 0..=decades as i32 {
                let y = y_of(10f64.powi(d), y0);
                let _ = writeln!(
                    s,
                    "<line x1=\"{x0}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#eee\"/>\
                     <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                    x0 + panel_w,
                    x0 - 4.0,
                    y + 4.0,
                    10u64.pow(d as u32)
                );
            }
            let x_of = |i: usize| x0 + 20.0 + i as f64 * (panel_w - 40.0) / 4.0;
            for (i, label) in LABELS.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
                    x_of(i),
                    y0 + panel_h + 14.0
                );
            }
            for (name, color) in IMPLEMENTATIONS {
                let Some(r) = rows.iter().find(|r| {
                    r.situation == *situation
                        && r.operation == *operation
                        && r.implementation == name
                }) else {
                    continue;
                };
                let points: Vec<String> =
                    r.ns.iter()
                        .enumerate()
                        .map(|(i, ns)| format!("{:.1},{:.1}", x_of(i), y_of(*ns, y0)))
                        .collect();
                let _ = writeln!(
                    s,
                    "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" \
                     points=\"{}\"/>",
                    points.join(" ")
                );
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
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

/// Now in UTC, `YYYY-MM-DD HH:MM UTC` (H. Hinnant's `civil_from_days`).
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
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
