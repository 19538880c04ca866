//! Side-by-side benchmarks of `slotring` against the crates users would pick instead
//! (`Box`/`Arc` with crossbeam-channel, the `disruptor` crate, `mmap-sync`, `std`'s
//! `Barrier` + `RwLock`). Everything is in `benches/` and `examples/`; this library
//! holds only what they share.
//!
//! ```sh
//! cargo bench -p slotring-comparisons                     # all of them (criterion)
//! cargo bench -p slotring-comparisons --bench broadcast   # one of them
//! cargo run --release -p slotring-comparisons --example tail_latency   # percentiles
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::NonNull;

/// A `Box<[u8]>` on glibc's `malloc` (`std::alloc::System`) whatever the global
/// allocator is (mimalloc in the benches and examples here): allocate, copy the payload
/// in, free on drop.
pub struct GlibcBox {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: it owns its bytes alone, like `Box<[u8]>`.
unsafe impl Send for GlibcBox {}

impl GlibcBox {
    /// Allocates with glibc's `malloc` and copies `payload` in.
    #[must_use]
    pub fn new(payload: &[u8]) -> Self {
        let layout = Self::layout(payload.len());
        // SAFETY: the layout has a non-zero size (`layout` rounds 0 up to 1).
        let ptr = NonNull::new(unsafe { System.alloc(layout) }).expect("out of memory");
        // SAFETY: the fresh allocation holds at least `payload.len()` bytes and does not
        // overlap the payload.
        unsafe {
            ptr.as_ptr()
                .copy_from_nonoverlapping(payload.as_ptr(), payload.len())
        };
        Self {
            ptr,
            len: payload.len(),
        }
    }

    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len.max(1), 1).expect("a payload's layout")
    }

    /// The byte at `i` (panics out of range).
    #[must_use]
    pub fn get(&self, i: usize) -> u8 {
        assert!(i < self.len);
        // SAFETY: `i < len`, and the first `len` bytes were initialised in `new`.
        unsafe { *self.ptr.as_ptr().add(i) }
    }
}

impl Drop for GlibcBox {
    fn drop(&mut self) {
        // SAFETY: allocated by `System` with this layout in `new`, freed once.
        unsafe { System.dealloc(self.ptr.as_ptr(), Self::layout(self.len)) };
    }
}
