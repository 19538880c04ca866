//! A TCP fan-out server on tokio: publishers send length-prefixed frames, and every
//! subscriber connection receives every frame. The slotring server reads each frame from
//! its socket straight into a slot (`EventAllocator::reserve_async`, which waits while
//! every slot of the class is in flight, then `read_exact` into the builder's room) and
//! hands the same slot to every subscriber's writer (a `RingPtr`
//! clone each: one atomic increment, no copy). The baseline is the same server on
//! `Vec<u8>` + `Bytes::copy_from_slice`, as async code often writes it. Both run in one
//! go against a bounded load generator on loopback (fixed publishers, subscribers,
//! frames and frame length, and a time limit), and the run prints, for each server,
//! frames per second, payload bytes copied per frame in user space (counted where the
//! servers copy) and heap allocations per frame (a counting global allocator, counting
//! only on the server's runtime threads).
//!
//! Run: `cargo run --release --example tcp_fanout -- [--publishers 2] [--subscribers 4]
//! [--frames 20000] [--frame-len 600] [--seconds 60]` (frames per publisher). Exits 1
//! if a subscriber missed or garbled a frame, a slot did not come back, or the time
//! limit passed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use slotring::{Event, EventAllocator, RingPtr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Counts heap allocations made on threads that set `COUNTING` (the server runtime's).
struct CountingAlloc;

static SERVER_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards every call to the system allocator unchanged; the counter is an
// atomic and the thread-local a `Cell<bool>` with a const initialiser (no allocation).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.try_with(Cell::get).unwrap_or(false) {
            // Relaxed: a statistic, read after the runtime shut down.
            SERVER_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Payload bytes the servers copied in user space (each server adds where it copies).
static COPIED: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Copy, Debug)]
struct Load {
    publishers: usize,
    subscribers: usize,
    /// Frames per publisher.
    frames: usize,
    frame_len: usize,
    seconds: u64,
}

/// The two servers differ only in how a frame is read and shared.
trait Frame: AsRef<[u8]> + Clone + Send + Sync + 'static {
    /// Reads a `len`-byte frame from `socket`.
    fn read(
        socket: &mut TcpStream,
        len: usize,
        alloc: &EventAllocator,
    ) -> impl Future<Output = std::io::Result<Self>> + Send;
}

impl Frame for RingPtr<Event> {
    async fn read(
        socket: &mut TcpStream,
        len: usize,
        alloc: &EventAllocator,
    ) -> std::io::Result<Self> {
        // A slot of the frame's class; when every one is in flight to slow subscribers,
        // the task waits for one to come back (no polling, no copy).
        let mut builder = alloc.reserve_async(len, 1).await?;
        // Straight from the socket into the slot: no buffer, no copy.
        socket
            .read_exact(&mut builder.spare_capacity_mut()[..len])
            .await?;
        builder.commit(len)?;
        Ok(builder.freeze())
    }
}

impl Frame for Bytes {
    async fn read(
        socket: &mut TcpStream,
        len: usize,
        _alloc: &EventAllocator,
    ) -> std::io::Result<Self> {
        let mut buf = vec![0u8; len];
        socket.read_exact(&mut buf).await?;
        // Relaxed: a statistic.
        COPIED.fetch_add(len as u64, Ordering::Relaxed);
        Ok(Bytes::copy_from_slice(&buf))
    }
}

/// The subscribers' queues, replaced (copy on write) when one joins, so a publisher
/// takes a snapshot per frame with one `Arc` clone and no allocation.
type Subscribers<F> = Arc<Mutex<Arc<Vec<mpsc::Sender<F>>>>>;

/// Serves connections: the first byte says `P` (publisher) or `S` (subscriber).
async fn serve<F: Frame>(listener: TcpListener, alloc: Arc<EventAllocator>) {
    let subscribers: Subscribers<F> = Arc::default();
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        socket.set_nodelay(true).ok();
        let subscribers = subscribers.clone();
        let alloc = alloc.clone();
        tokio::spawn(async move {
            let Ok(role) = socket.read_u8().await else {
                return;
            };
            match role {
                b'S' => subscribe(socket, &subscribers).await,
                b'P' => publish::<F>(socket, &subscribers, &alloc).await,
                _ => {}
            }
        });
    }
}

async fn subscribe<F: Frame>(mut socket: TcpStream, subscribers: &Subscribers<F>) {
    let (tx, mut rx) = mpsc::channel::<F>(256);
    {
        let mut list = subscribers.lock().unwrap();
        let mut grown = Vec::clone(&list);
        grown.push(tx);
        *list = Arc::new(grown);
    }
    if socket.write_u8(b'!').await.is_err() {
        return;
    }
    while let Some(frame) = rx.recv().await {
        let bytes = frame.as_ref();
        let header = (bytes.len() as u32).to_le_bytes();
        if socket.write_all(&header).await.is_err() || socket.write_all(bytes).await.is_err() {
            return;
        }
    }
}

async fn publish<F: Frame>(
    mut socket: TcpStream,
    subscribers: &Subscribers<F>,
    alloc: &EventAllocator,
) {
    loop {
        let Ok(len) = socket.read_u32_le().await else {
            return;
        };
        if len == 0 {
            return;
        }
        let Ok(frame) = F::read(&mut socket, len as usize, alloc).await else {
            return;
        };
        let targets = Arc::clone(&subscribers.lock().unwrap());
        for tx in targets.iter() {
            // The same frame to everyone: a handle clone (slotring) or a Bytes clone.
            let _ = tx.send(frame.clone()).await;
        }
    }
}

/// The frame publisher `p` sends as its `i`th: `p` and `i` (little-endian `u32`s), then
/// bytes that depend on both, all checked on arrival.
fn frame(p: usize, i: usize, len: usize) -> impl Iterator<Item = u8> {
    let head = [(p as u32).to_le_bytes(), (i as u32).to_le_bytes()];
    head.into_iter()
        .flatten()
        .chain((8..len).map(move |at| (p * 31 + i * 7 + at) as u8))
}

/// Runs one server against the load; returns (frames/s, copied bytes/frame,
/// allocations/frame), or an error message.
fn run<F: Frame>(name: &str, load: Load) -> Result<(f64, f64, f64), String> {
    let alloc = Arc::new(
        EventAllocator::builder()
            .capacities([2048, 2048, 2048, 8, 8])
            .build()
            .map_err(|e| e.to_string())?,
    );
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(|| COUNTING.with(|c| c.set(true)))
        .build()
        .map_err(|e| e.to_string())?;
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    let addr = std_listener.local_addr().map_err(|e| e.to_string())?;
    {
        let alloc = alloc.clone();
        server.spawn(async move {
            let listener = TcpListener::from_std(std_listener).expect("a tokio listener");
            serve::<F>(listener, alloc).await;
        });
    }
    let total = load.publishers * load.frames;
    let bad = Arc::new(AtomicBool::new(false));
    let copied_before = COPIED.load(Ordering::Relaxed);
    let result = clients.block_on(async {
        // Subscribers first, each registered (acknowledged) before anyone publishes.
        let mut subs = Vec::new();
        for _ in 0..load.subscribers {
            let mut socket = TcpStream::connect(addr).await?;
            socket.set_nodelay(true)?;
            socket.write_u8(b'S').await?;
            socket.read_u8().await?;
            subs.push(socket);
        }
        let allocations_before = SERVER_ALLOCATIONS.load(Ordering::Relaxed);
        let started = Instant::now();
        let readers: Vec<_> = subs
            .into_iter()
            .map(|mut socket| {
                let bad = bad.clone();
                tokio::spawn(async move {
                    let mut next = vec![0usize; load.publishers];
                    let mut buf = vec![0u8; load.frame_len];
                    for _ in 0..total {
                        let len = socket.read_u32_le().await? as usize;
                        if len != load.frame_len {
                            bad.store(true, Ordering::Relaxed);
                            break;
                        }
                        socket.read_exact(&mut buf).await?;
                        // Frames of one publisher arrive in order; publishers interleave.
                        let p = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                        let intact = p < load.publishers
                            && next[p] < load.frames
                            && buf.iter().copied().eq(frame(p, next[p], load.frame_len));
                        match intact {
                            true => next[p] += 1,
                            false => {
                                bad.store(true, Ordering::Relaxed);
                                break;
                            }
                        }
                    }
                    std::io::Result::Ok(())
                })
            })
            .collect();
        let writers: Vec<_> = (0..load.publishers)
            .map(|p| {
                tokio::spawn(async move {
                    let mut socket = TcpStream::connect(addr).await?;
                    socket.set_nodelay(true)?;
                    socket.write_u8(b'P').await?;
                    let mut out = Vec::with_capacity(64 * (4 + load.frame_len));
                    for i in 0..load.frames {
                        out.extend_from_slice(&(load.frame_len as u32).to_le_bytes());
                        out.extend(frame(p, i, load.frame_len));
                        if out.len() >= 64 * (4 + load.frame_len) {
                            socket.write_all(&out).await?;
                            out.clear();
                        }
                    }
                    out.extend_from_slice(&0u32.to_le_bytes());
                    socket.write_all(&out).await?;
                    std::io::Result::Ok(())
                })
            })
            .collect();
        let limit = Duration::from_secs(load.seconds);
        let all = async {
            for w in writers {
                w.await.map_err(std::io::Error::other)??;
            }
            for r in readers {
                r.await.map_err(std::io::Error::other)??;
            }
            std::io::Result::Ok(())
        };
        match tokio::time::timeout(limit, all).await {
            Ok(done) => done?,
            Err(_) => {
                return Err(std::io::Error::other(format!(
                    "time limit of {} s passed",
                    load.seconds
                )));
            }
        }
        let elapsed = started.elapsed();
        let allocations = SERVER_ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
        std::io::Result::Ok((elapsed, allocations))
    });
    server.shutdown_timeout(Duration::from_secs(5));
    drop(clients);
    let (elapsed, allocations) = result.map_err(|e| format!("{name}: {e}"))?;
    if bad.load(Ordering::Relaxed) {
        return Err(format!(
            "{name}: a subscriber got a missing or garbled frame"
        ));
    }
    let leaked = alloc.stats().total_in_use();
    if leaked != 0 {
        return Err(format!("{name}: {leaked} slot(s) did not come back"));
    }
    let frames = total as f64;
    let copied = (COPIED.load(Ordering::Relaxed) - copied_before) as f64;
    Ok((
        frames / elapsed.as_secs_f64(),
        copied / frames,
        allocations as f64 / frames,
    ))
}

fn parse_args() -> Result<Load, String> {
    let mut load = Load {
        publishers: 2,
        subscribers: 4,
        frames: 20_000,
        frame_len: 600,
        seconds: 60,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .parse::<usize>()
            .map_err(|e| format!("{flag}: {e}"))?;
        match flag.as_str() {
            "--publishers" => load.publishers = value.clamp(1, 64),
            "--subscribers" => load.subscribers = value.clamp(1, 256),
            "--frames" => load.frames = value.max(1),
            "--frame-len" => load.frame_len = value.clamp(8, 1024),
            "--seconds" => load.seconds = value.max(1) as u64,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(load)
}

fn main() -> ExitCode {
    let load = match parse_args() {
        Ok(load) => load,
        Err(err) => {
            eprintln!(
                "usage: tcp_fanout [--publishers N] [--subscribers N] [--frames N] \
                 [--frame-len 8..=1024] [--seconds N]  ({err})"
            );
            return ExitCode::from(2);
        }
    };
    println!(
        "{} publishers x {} frames of {} B, {} subscribers (every frame to every subscriber)",
        load.publishers, load.frames, load.frame_len, load.subscribers
    );
    println!(
        "{:<32} {:>12} {:>22} {:>22}",
        "server", "frames/s", "bytes copied/frame", "heap allocs/frame"
    );
    let mut failed = false;
    for (name, outcome) in [
        (
            "slotring (read into the slot)",
            run::<RingPtr<Event>>("slotring", load),
        ),
        (
            "Vec<u8> + Bytes::copy_from_slice",
            run::<Bytes>("Bytes", load),
        ),
    ] {
        match outcome {
            Ok((rate, copied, allocations)) => {
                println!("{name:<32} {rate:>12.0} {copied:>22.1} {allocations:>22.2}")
            }
            Err(err) => {
                eprintln!("{err}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
