//! Conway's Game of Life on a torus, computed by worker threads over a `SyncedMemory`,
//! and checked against a single-threaded run.
//!
//! Each worker owns a band of rows (its segment). Every cycle it computes its band of
//! the next generation straight into its segment of the next cycle
//! (`GlobalView::write_next_with`), reading the neighbours' rows of this generation from
//! the zero-copy view; the barrier makes the new generation visible to all.
//!
//! Run with `cargo run --release --example life -- [size] [generations] [threads]`
//! (defaults: 256 1000 4; `size` must be a multiple of `threads`).

use std::time::Instant;

use slotring::synced::{SyncError, SyncedMemory};

/// The next state of column `c` of `mid`, whose neighbour rows are `up` and `down`.
fn next_cell(up: &[u8], mid: &[u8], down: &[u8], c: usize) -> u8 {
    let n = mid.len();
    let (l, r) = ((c + n - 1) % n, (c + 1) % n);
    let live = up[l] + up[c] + up[r] + mid[l] + mid[r] + down[l] + down[c] + down[r];
    u8::from(live == 3 || (live == 2 && mid[c] == 1))
}

/// Computes rows `first..first + out.len() / n` of the next generation into `out`,
/// reading row `y` of the current one through `row(y)`.
fn step_rows<'a>(row: impl Fn(usize) -> &'a [u8], n: usize, first: usize, out: &mut [u8]) {
    for (i, out_row) in out.chunks_exact_mut(n).enumerate() {
        let y = first + i;
        let (up, mid, down) = (row((y + n - 1) % n), row(y), row((y + 1) % n));
        for (c, cell) in out_row.iter_mut().enumerate() {
            *cell = next_cell(up, mid, down, c);
        }
    }
}

fn start(n: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n * n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            u8::from(x % 4 == 0)
        })
        .collect()
}

fn single_threaded(n: usize, generations: usize) -> Vec<u8> {
    let mut grid = start(n);
    let mut next = vec![0; n * n];
    for _ in 0..generations {
        step_rows(|y| &grid[y * n..(y + 1) * n], n, 0, &mut next);
        std::mem::swap(&mut grid, &mut next);
    }
    grid
}

fn synced(n: usize, generations: usize, threads: usize) -> Result<Vec<u8>, SyncError> {
    let rows = n / threads;
    let mem = SyncedMemory::<u8>::new(threads, rows * n);
    let grid = start(n);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|id| {
                let (mem, grid) = (&mem, &grid);
                s.spawn(move || -> Result<Vec<u8>, SyncError> {
                    let mut local = mem.local_handle(id)?;
                    let band = &grid[id * rows * n..(id + 1) * rows * n];
                    let mut view = local.write_and_sync_read(band)?;
                    for _ in 0..generations {
                        view = view
                            .write_next_with(|mine, now| {
                                // Row y lives in segment y / rows; the neighbour rows of
                                // a band's edges come from the segments above and below.
                                let row = |y: usize| {
                                    let seg = now.segment(y / rows).unwrap_or(&[]);
                                    &seg[(y % rows) * n..][..n]
                                };
                                step_rows(row, n, id * rows, mine);
                            })
                            .wait()?;
                    }
                    Ok(if id == 0 { view.to_vec() } else { Vec::new() })
                })
            })
            .collect();
        let mut result = Vec::new();
        for (id, w) in workers.into_iter().enumerate() {
            let state = w.join().expect("a worker panicked")?;
            if id == 0 {
                result = state;
            }
        }
        Ok(result)
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let n = args.first().copied().unwrap_or(256);
    let generations = args.get(1).copied().unwrap_or(1000);
    let threads = args.get(2).copied().unwrap_or(4);
    if threads == 0 || n % threads != 0 {
        return Err(format!("size {n} is not a multiple of {threads} threads").into());
    }

    let t = Instant::now();
    let expected = single_threaded(n, generations);
    let single = t.elapsed();
    let t = Instant::now();
    let got = synced(n, generations, threads)?;
    let parallel = t.elapsed();

    println!("{n}x{n} torus, {generations} generations");
    println!("single-threaded:              {single:>10.2?}");
    println!("{threads} threads over SyncedMemory: {parallel:>10.2?}");
    println!(
        "live cells at the end: {}",
        got.iter().map(|&c| usize::from(c)).sum::<usize>()
    );
    if got != expected {
        return Err("the threaded run differs from the single-threaded one".into());
    }
    println!("identical to the single-threaded run");
    Ok(())
}
