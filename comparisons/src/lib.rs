//! Side-by-side benchmarks of `slotring` against the crates users would pick instead
//! (`Box`/`Arc` with crossbeam-channel, the `disruptor` crate, `mmap-sync`, `std`'s
//! `Barrier` + `RwLock`). Everything is in `benches/`; this library is empty.
//!
//! ```sh
//! cargo bench -p slotring-comparisons                     # all of them (criterion)
//! cargo bench -p slotring-comparisons --bench broadcast   # one of them
//! ```
