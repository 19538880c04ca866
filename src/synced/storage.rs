//! The segments: one zeroed, cache-line-aligned block holding two buffers of
//! `segments` segments each, every segment padded to a multiple of 128 bytes.
//!
//! All raw memory access of `SyncedMemory` is here. The two accessors are `unsafe`: the
//! protocol in `synced/mod.rs` decides when a segment may be read or written.
//!
//! Layout: segment `s` of buffer `b` starts at `(2 * s + b) * stride` bytes, so a
//! thread's two segments are neighbours and no two threads' segments share a 128-byte
//! pair of cache lines (the unit adjacent-line prefetchers fetch).
//!
//! Under `cfg(loom)` every (buffer, segment) also has a loom `UnsafeCell<()>` that stands
//! in for the segment: each real access is announced on it, so loom checks that every
//! read happens-before the next write and every write before the next read.

use core::marker::PhantomData;
use core::ptr::NonNull;
use std::alloc::{self, Layout};

use bytemuck::Pod;

/// Segments are padded to this many bytes (two 64-byte cache lines).
pub(super) const PAD: usize = 128;

pub(super) struct Storage<T> {
    /// Start of the block; aligned to `align`. Dangling when `layout` is `None`.
    base: NonNull<u8>,
    /// The allocation, or `None` when the block has no bytes.
    layout: Option<Layout>,
    /// Bytes from one segment to the next: `segment_len * size_of::<T>()` rounded up to
    /// a multiple of `max(PAD, align_of::<T>())`.
    stride: usize,
    segments: usize,
    segment_len: usize,
    #[cfg(loom)]
    cells: Box<[crate::sync::UnsafeCell<()>]>,
    _values: PhantomData<T>,
}

impl<T: Pod> Storage<T> {
    /// Zeroed storage for two buffers of `segments` segments of `segment_len` values, or
    /// `None` if its size overflows `isize`, or the allocation fails.
    pub(super) fn new(segments: usize, segment_len: usize) -> Option<Self> {
        let align = PAD.max(align_of::<T>());
        let bytes = segment_len.checked_mul(size_of::<T>())?;
        let stride = bytes.checked_next_multiple_of(align)?;
        let total = stride.checked_mul(segments)?.checked_mul(2)?;
        let layout = Layout::from_size_align(total, align).ok()?;
        let (base, layout) = if total == 0 {
            // Every segment is empty or `T` is zero-sized: no byte is ever accessed, and
            // a dangling pointer aligned for `T` makes valid empty or ZST slices.
            (NonNull::<T>::dangling().cast::<u8>(), None)
        } else {
            // SAFETY: `layout` has a non-zero size (checked just above).
            let raw = unsafe { alloc::alloc_zeroed(layout) };
            (NonNull::new(raw)?, Some(layout))
        };
        Some(Self {
            base,
            layout,
            stride,
            segments,
            segment_len,
            #[cfg(loom)]
            cells: (0..segments * 2)
                .map(|_| crate::sync::UnsafeCell::new(()))
                .collect(),
            _values: PhantomData,
        })
    }

    /// The segments' padded size in bytes.
    pub(super) fn stride(&self) -> usize {
        self.stride
    }

    fn start(&self, buffer: usize, segment: usize) -> *mut T {
        debug_assert!(buffer < 2 && segment < self.segments);
        // In bounds of the block (or 0 when stride is 0), by the layout computed in `new`;
        // `wrapping_add` keeps the provenance of `base`.
        self.base
            .as_ptr()
            .wrapping_add((2 * segment + buffer) * self.stride)
            .cast::<T>()
    }

    /// Segment `segment` of buffer `buffer`, for reading.
    ///
    /// # Safety
    ///
    /// `buffer < 2`, `segment < segments`, and for as long as the returned slice lives no
    /// thread writes this segment: every write to it happens-before this call, and the
    /// next write happens-after the slice's last use.
    pub(super) unsafe fn segment(&self, buffer: usize, segment: usize) -> &[T] {
        #[cfg(loom)]
        self.cells[2 * segment + buffer].with(|_| ());
        // SAFETY: `start` is aligned for `T` (the block is aligned to at least
        // `align_of::<T>()` and `stride` is a multiple of it) and points at
        // `segment_len` initialised values (zeroed storage, and `T: Pod` accepts any
        // bytes) inside one allocation; the caller rules out concurrent writes.
        unsafe { core::slice::from_raw_parts(self.start(buffer, segment), self.segment_len) }
    }

    /// Segment `segment` of buffer `buffer`, for writing.
    ///
    /// # Safety
    ///
    /// `buffer < 2`, `segment < segments`, and for as long as the returned slice lives no
    /// other thread reads or writes this segment, and this thread makes no other
    /// reference to it: every earlier access happens-before this call, and the next
    /// access by another thread happens-after the slice's last use.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn segment_mut(&self, buffer: usize, segment: usize) -> &mut [T] {
        #[cfg(loom)]
        self.cells[2 * segment + buffer].with_mut(|_| ());
        // SAFETY: as in `segment` for alignment, bounds and initialisation; the caller
        // guarantees the access is exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.start(buffer, segment), self.segment_len) }
    }

    /// Announces a read of the segment to loom (a no-op otherwise): called when a reader
    /// is done with it, so loom checks the whole interval of the read.
    #[inline]
    pub(super) fn track_read(&self, buffer: usize, segment: usize) {
        #[cfg(loom)]
        self.cells[2 * segment + buffer].with(|_| ());
        #[cfg(not(loom))]
        let _ = (buffer, segment);
    }

    /// Announces a write of the segment to loom (a no-op otherwise): called when a
    /// writer is done with it.
    #[inline]
    pub(super) fn track_write(&self, buffer: usize, segment: usize) {
        #[cfg(loom)]
        self.cells[2 * segment + buffer].with_mut(|_| ());
        #[cfg(not(loom))]
        let _ = (buffer, segment);
    }

    /// Zeroes every segment. `&mut self`: no reference into the block exists.
    pub(super) fn zero(&mut self) {
        if let Some(layout) = self.layout {
            // SAFETY: `base` is the start of an allocation of `layout.size()` bytes, and
            // `&mut self` excludes every other access (handles and views borrow the
            // owning `SyncedMemory`).
            unsafe { self.base.as_ptr().write_bytes(0, layout.size()) };
        }
    }
}

impl<T> Drop for Storage<T> {
    fn drop(&mut self) {
        if let Some(layout) = self.layout {
            // SAFETY: `base` came from `alloc_zeroed(layout)` in `new` and is freed once,
            // here; no handle or view outlives the owning `SyncedMemory`.
            unsafe { alloc::dealloc(self.base.as_ptr(), layout) };
        }
    }
}
