//! The one place that chooses between `std` and `loom` concurrency primitives.
//!
//! Every atomic, cell, fence, `Arc` and spin hint in the crate comes from here, so the
//! loom models (`RUSTFLAGS="--cfg loom"`) explore exactly the code that ships. Nothing
//! else in the crate names `std::sync::atomic` or `loom`.
//!
//! Not every item is used by every module set or cfg, hence the `allow`s.
#![allow(unused_imports, dead_code)]

#[cfg(loom)]
pub(crate) use loom::{
    hint::spin_loop,
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence},
    },
    thread::yield_now,
};

#[cfg(not(loom))]
pub(crate) use std::{
    hint::spin_loop,
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence},
    },
    thread::yield_now,
};

/// `UnsafeCell` with loom's closure API, so loom can check every access for causality.
///
/// Under `cfg(not(loom))` this is a zero-cost wrapper over `core::cell::UnsafeCell`.
#[cfg(not(loom))]
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T: ?Sized>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    #[inline]
    pub(crate) const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }
}

#[cfg(not(loom))]
impl<T: ?Sized> UnsafeCell<T> {
    /// Runs `f` with a shared raw pointer to the contents.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a mutable raw pointer to the contents.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// Under loom, tracks an allocation so a model reports it if it leaks.
#[cfg(loom)]
pub(crate) use loom::alloc::Track;

/// The Acquire half of a reference-count release, as `std::sync::Arc` writes it.
///
/// Normally an Acquire `fence`. ThreadSanitizer does not model fences and would report a
/// false race, so under `cfg(slotring_tsan)` it is an Acquire load of the same atomic,
/// which orders the same accesses for the price of one load.
macro_rules! acquire_fence {
    ($atomic:expr) => {{
        #[cfg(not(slotring_tsan))]
        $crate::sync::fence($crate::sync::Ordering::Acquire);
        #[cfg(slotring_tsan)]
        let _ = $atomic.load($crate::sync::Ordering::Acquire);
    }};
}
pub(crate) use acquire_fence;

/// Aborts the process: the reaction to a reference count that would overflow.
///
/// Mirrors `Arc`: a count past `MAX` can only come from leaking handles (`mem::forget`)
/// in a loop, and unwinding would let the count wrap and free a live slot.
#[cold]
#[inline(never)]
pub(crate) fn abort_on_overflow() -> ! {
    std::process::abort()
}

/// Sleeps for `duration`; under loom, which has no clock, yields instead.
pub(crate) fn sleep(duration: std::time::Duration) {
    #[cfg(loom)]
    {
        let _ = duration;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    std::thread::sleep(duration);
}
