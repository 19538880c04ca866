//! Zero heap allocations on the pooled hot paths: allocate, clone, drop, downgrade,
//! upgrade, tokens and typed pools, checked with a counting global allocator.
//!
//! Only allocations made by this test's own thread are counted, so the test harness's
//! threads cannot disturb the count.
#![cfg(not(loom))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use slotring::{EventAllocator, PoolId, RingBuffer, RingPtr};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards every call to `System` unchanged; counting touches only an atomic
// and a const-initialised thread-local (neither allocates).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count<R>(f: impl FnOnce() -> R) -> (R, usize) {
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (r, ALLOCATIONS.load(Ordering::Relaxed))
}

#[test]
fn pooled_paths_never_touch_the_heap() {
    let alloc = EventAllocator::new();
    let ring = RingBuffer::<64, 16>::new();
    let payloads: Vec<Vec<u8>> = PoolId::ALL
        .iter()
        .map(|p| vec![0xA5; p.max_size()])
        .collect();
    let rounds = if cfg!(miri) { 3 } else { 10_000 };

    // The counter itself must see allocations, or the test could never fail.
    let (_, seen) = count(|| Box::new(1u8));
    assert_eq!(seen, 1, "the counting allocator does not count");

    let ((), allocations) = count(|| {
        for round in 0..rounds {
            for payload in &payloads {
                let ev = alloc.allocate(payload, round).unwrap();
                let twin = ev.clone();
                assert_eq!(twin[0], 0xA5);
                let weak = RingPtr::downgrade(&ev);
                let up = weak.upgrade().unwrap();
                let token = RingPtr::into_raw(up).unwrap();
                let back = alloc.from_raw(token).unwrap();
                drop((ev, twin, weak, back));
            }
            let held = alloc.try_allocate(b"try", 1).unwrap();
            let typed = ring.alloc([round as u64; 8]).unwrap();
            let typed_twin = typed.clone();
            drop((held, typed, typed_twin));
        }
    });
    assert_eq!(allocations, 0, "pooled paths allocated on the heap");
    assert_eq!(alloc.stats().total_in_use(), 0);
}
