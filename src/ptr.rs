//! Handles: [`RingPtr`] (strong, reference-counted), [`WeakRingPtr`]
//! (generation-checked) and `u64` tokens (`into_raw` / `from_raw`).

use core::fmt;
use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::NonNull;

use crate::event::{Event, PoolId};
use crate::pool::Pool;
use crate::slot::SlotHeader;

/// A shared handle to an event or value in a pool slot.
///
/// Cloning adds one to the slot's reference count (one atomic increment, no
/// allocation); dropping the last handle returns the slot to its pool and moves the
/// slot's generation on, so [`WeakRingPtr`]s and tokens of this life are refused from
/// then on. A handle keeps the pool's storage alive even if the allocator that made it
/// is dropped first.
///
/// * `RingPtr<Event>` (from [`EventAllocator`](crate::EventAllocator)) dereferences to
///   the payload bytes and has [`payload`](RingPtr::payload) and
///   [`event_type`](RingPtr::event_type).
/// * `RingPtr<T>` for a [`bytemuck::Pod`] `T` (from [`RingBuffer`](crate::RingBuffer))
///   dereferences to the `T`.
///
/// Introspection is by associated functions (`RingPtr::strong_count(&p)`), as for `Arc`,
/// so nothing shadows the methods of the target.
///
/// ```
/// use slotring::{EventAllocator, RingPtr};
/// let alloc = EventAllocator::new();
/// let ev = alloc.allocate(b"hello", 7)?;
/// let twin = ev.clone();
/// assert_eq!(RingPtr::strong_count(&ev), 2);
/// assert!(RingPtr::ptr_eq(&ev, &twin));
/// assert_eq!(&twin[..], b"hello");
/// # Ok::<(), slotring::AllocError>(())
/// ```
#[must_use = "dropping the last handle frees the slot"]
pub struct RingPtr<T> {
    slot: NonNull<SlotHeader>,
    _marker: PhantomData<T>,
}

// SAFETY: a `RingPtr<T>` gives `&T` to every holder, on any thread, and the slot's
// counters are atomics; so sending one needs `T: Send + Sync`, like `Arc<T>`.
unsafe impl<T: Send + Sync> Send for RingPtr<T> {}
// SAFETY: `&RingPtr<T>` allows cloning (a new handle on another thread) and `&T`; same
// bounds as `Arc<T>`.
unsafe impl<T: Send + Sync> Sync for RingPtr<T> {}

impl<T> RingPtr<T> {
    /// Wraps a slot that holds one strong reference for this handle.
    ///
    /// # Safety
    ///
    /// `slot` must be a live slot whose strong count includes one reference that the new
    /// handle now owns, and the slot's payload must hold a valid `T` (for `T = Event`:
    /// `len` initialised bytes).
    #[inline]
    pub(crate) unsafe fn from_slot(slot: NonNull<SlotHeader>) -> Self {
        Self {
            slot,
            _marker: PhantomData,
        }
    }

    #[inline]
    fn header(&self) -> &SlotHeader {
        // SAFETY: the handle owns a strong reference, which keeps the slot live and its
        // pool (storage included) allocated.
        unsafe { self.slot.as_ref() }
    }

    /// The number of strong handles (and parked tokens) to this slot.
    ///
    /// ```
    /// use slotring::{EventAllocator, RingPtr};
    /// let alloc = EventAllocator::new();
    /// let ev = alloc.allocate(b"x", 0)?;
    /// let twin = ev.clone();
    /// assert_eq!(RingPtr::strong_count(&ev), 2);
    /// let token = RingPtr::into_raw(twin).unwrap(); // a parked token still counts
    /// assert_eq!(RingPtr::strong_count(&ev), 2);
    /// # drop(alloc.from_raw(token)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn strong_count(this: &Self) -> usize {
        this.header().strong_count() as usize
    }

    /// The slot's generation: it changes every time the slot is reused.
    ///
    /// ```
    /// use slotring::{RingBuffer, RingPtr};
    /// let pool = RingBuffer::<64, 1>::new();
    /// let first = RingPtr::generation(&pool.alloc(1u32)?);
    /// let second = RingPtr::generation(&pool.alloc(2u32)?);
    /// assert_ne!(first, second);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn generation(this: &Self) -> u32 {
        this.header().generation()
    }

    /// Whether two handles point to the same slot.
    ///
    /// ```
    /// use slotring::{EventAllocator, RingPtr};
    /// let alloc = EventAllocator::new();
    /// let a = alloc.allocate(b"same bytes", 0)?;
    /// let b = alloc.allocate(b"same bytes", 0)?;
    /// assert!(a == b && !RingPtr::ptr_eq(&a, &b)); // equal values, two slots
    /// assert!(RingPtr::ptr_eq(&a, &a.clone()));
    /// # Ok::<(), slotring::AllocError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn ptr_eq(this: &Self, other: &Self) -> bool {
        this.slot == other.slot
    }

    /// The allocator pool this slot belongs to; `None` for heap-fallback events and
    /// typed [`RingBuffer`](crate::RingBuffer) pools.
    ///
    /// ```
    /// use slotring::{EventAllocator, PoolId, RingBuffer, RingPtr};
    /// let alloc = EventAllocator::new();
    /// assert_eq!(RingPtr::pool_id(&alloc.allocate(&[0; 100], 0)?), Some(PoolId::S));
    /// assert_eq!(RingPtr::pool_id(&alloc.allocate(&[0; 20_000], 0)?), None); // heap
    /// let typed = RingBuffer::<64, 4>::new();
    /// assert_eq!(RingPtr::pool_id(&typed.alloc(1u64)?), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn pool_id(this: &Self) -> Option<PoolId> {
        // SAFETY: the handle keeps the pool alive.
        unsafe { this.header().pool().as_ref() }.class()
    }

    /// The slot's index in its pool.
    ///
    /// ```
    /// use slotring::{RingBuffer, RingPtr};
    /// let pool = RingBuffer::<64, 4>::new();
    /// let a = pool.alloc(1u64)?;
    /// let b = pool.alloc(2u64)?;
    /// assert_ne!(RingPtr::slot_index(&a), RingPtr::slot_index(&b));
    /// assert!(RingPtr::slot_index(&a) < 4 && RingPtr::slot_index(&b) < 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn slot_index(this: &Self) -> usize {
        this.header().index() as usize
    }

    /// Makes a weak handle that can be upgraded while the slot is in this generation.
    ///
    /// ```
    /// use slotring::{EventAllocator, RingPtr};
    /// let alloc = EventAllocator::new();
    /// let ev = alloc.allocate(b"x", 0)?;
    /// let weak = RingPtr::downgrade(&ev);
    /// assert!(weak.upgrade().is_some());
    /// drop(ev);
    /// assert!(weak.upgrade().is_none());
    /// # Ok::<(), slotring::AllocError>(())
    /// ```
    pub fn downgrade(this: &Self) -> WeakRingPtr<T> {
        let header = this.header();
        header.mark_escaped();
        // SAFETY: our strong reference keeps the pool alive.
        unsafe { Pool::keep(header.pool()) };
        WeakRingPtr {
            slot: this.slot,
            generation: header.generation(),
            _marker: PhantomData,
        }
    }

    /// Turns the handle into a `u64` token (pool, slot, generation) without releasing
    /// its reference: send it through FFI, a pipe or an atomic, and turn it back with
    /// the allocator's or pool's `from_raw`. Each token is taken back at most once; a
    /// token whose slot was released meanwhile is refused, never turned into a handle.
    /// Tokens of one pool are refused by every other pool and allocator (a foreign token
    /// is accepted with probability at most 2^-32: tokens carry a random per-pool key).
    /// No token is 0.
    ///
    /// Every event can become a token, heap-fallback events included: theirs name an
    /// entry of their allocator's token table. `Err` hands the handle back only if that
    /// table cannot grow (2^24 - 1 heap events with unused tokens at once, or no memory
    /// for one more entry).
    ///
    /// Making a token marks the event as reachable from outside its handles, so
    /// [`get_mut`](Self::get_mut) returns `None` for the rest of the event's life.
    ///
    /// A token that is never taken back leaks its slot (like `Arc::into_raw`).
    ///
    /// ```
    /// use slotring::{EventAllocator, RingPtr};
    /// let alloc = EventAllocator::new();
    /// let token = RingPtr::into_raw(alloc.allocate(b"tok", 9)?).unwrap();
    /// let ev = alloc.from_raw(token)?;
    /// assert_eq!(ev.payload(), b"tok");
    /// assert!(alloc.from_raw(token).is_err(), "a token is taken back once");
    ///
    /// let big = alloc.allocate(&vec![7u8; 100_000], 1)?; // on the heap
    /// let token = RingPtr::into_raw(big).unwrap();
    /// assert_eq!(alloc.from_raw(token)?.len(), 100_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_raw(this: Self) -> Result<u64, Self> {
        let header = this.header();
        // SAFETY: the handle keeps the pool alive.
        let pool = unsafe { header.pool().as_ref() };
        // Before the hold becomes visible to `clone_raw` (slot.rs, "Every way a
        // reference is made"). Heap events would not need it (their clones are made
        // under the table's lock), but `get_mut` promises the same for every event.
        header.mark_escaped();
        if let Some(heap) = pool.heap() {
            // The table takes over our strong reference on success.
            return match heap.park(this.slot, pool) {
                Ok(token) => {
                    core::mem::forget(this);
                    Ok(token)
                }
                Err(()) => Err(this),
            };
        }
        let generation = header.generation();
        header.park_raw(generation);
        let token = pool.token(generation, header.index());
        core::mem::forget(this);
        Ok(token)
    }

    /// A mutable reference to the value if this is the only handle of any kind (no
    /// other strong handle, no parked token) and neither a weak handle nor a token was
    /// made for this event. Like `Arc::get_mut`, but more conservative: once a weak
    /// handle or token was made, `get_mut` returns `None` for the rest of the event's
    /// life, even after it is gone (tracking that exactly would cost every release an
    /// extra atomic read-modify-write).
    ///
    /// ```
    /// use slotring::{RingBuffer, RingPtr};
    /// let pool = RingBuffer::<64, 4>::new();
    /// let mut p = pool.alloc([0u8; 4])?;
    /// RingPtr::get_mut(&mut p).unwrap()[0] = 9;
    /// let twin = p.clone();
    /// assert!(RingPtr::get_mut(&mut p).is_none());
    /// drop(twin);
    /// assert_eq!(p[0], 9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn get_mut(this: &mut Self) -> Option<&mut T::Target>
    where
        T: SlotContent,
    {
        if !this.header().is_unique() {
            return None;
        }
        let header = this.header();
        let data = header.data_for_write();
        // SAFETY: `is_unique` proved ours is the only reference of any kind, and no new
        // one can be made while `this` is mutably borrowed; the payload holds a valid
        // value per `T::view` (see `SlotContent`).
        Some(unsafe { T::view_mut(data, header.len()) })
    }
}

impl RingPtr<Event> {
    /// The payload bytes.
    ///
    /// ```
    /// use slotring::EventAllocator;
    /// let alloc = EventAllocator::new();
    /// let ev = alloc.allocate(b"bytes in place", 5)?;
    /// assert_eq!(ev.payload(), b"bytes in place");
    /// assert_eq!(ev.payload(), &ev[..]); // the same as dereferencing
    /// # Ok::<(), slotring::AllocError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        self
    }

    /// The event type given at allocation.
    ///
    /// ```
    /// use slotring::EventAllocator;
    /// let alloc = EventAllocator::new();
    /// assert_eq!(alloc.allocate(b"", 77)?.event_type(), 77);
    /// # Ok::<(), slotring::AllocError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn event_type(&self) -> u32 {
        self.header().event_type()
    }
}

/// What a slot can hold: byte events or `Pod` values. Sealed.
pub trait SlotContent: sealed::Sealed {
    /// What a handle dereferences to.
    type Target: ?Sized;

    /// A shared view of the payload.
    ///
    /// # Safety
    ///
    /// `data` must point to a live slot's payload that holds a valid `Self` (for
    /// `Event`: `len` initialised bytes), with no writer for the returned lifetime.
    #[doc(hidden)]
    unsafe fn view<'a>(data: NonNull<u8>, len: usize) -> &'a Self::Target;

    /// A unique view of the payload.
    ///
    /// # Safety
    ///
    /// As for `view`, and no other reference to the payload may exist for the returned
    /// lifetime.
    #[doc(hidden)]
    unsafe fn view_mut<'a>(data: NonNull<u8>, len: usize) -> &'a mut Self::Target;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::Event {}
    impl<T: bytemuck::Pod> Sealed for T {}
}

impl SlotContent for Event {
    type Target = [u8];

    #[inline]
    unsafe fn view<'a>(data: NonNull<u8>, len: usize) -> &'a [u8] {
        // SAFETY: per the caller, `len` initialised bytes at `data`, no writer.
        unsafe { core::slice::from_raw_parts(data.as_ptr(), len) }
    }

    #[inline]
    unsafe fn view_mut<'a>(data: NonNull<u8>, len: usize) -> &'a mut [u8] {
        // SAFETY: per the caller, `len` initialised bytes at `data`, no other reference.
        unsafe { core::slice::from_raw_parts_mut(data.as_ptr(), len) }
    }
}

impl<T: bytemuck::Pod> SlotContent for T {
    type Target = T;

    #[inline]
    unsafe fn view<'a>(data: NonNull<u8>, _len: usize) -> &'a T {
        // SAFETY: per the caller the payload holds a valid `T`; typed pools only accept
        // `T` with `align_of::<T>() <= 64` and slots start on 64-byte boundaries.
        unsafe { data.cast::<T>().as_ref() }
    }

    #[inline]
    unsafe fn view_mut<'a>(data: NonNull<u8>, _len: usize) -> &'a mut T {
        // SAFETY: as for `view`, and unique per the caller.
        unsafe { data.cast::<T>().as_mut() }
    }
}

impl<T: SlotContent> Deref for RingPtr<T> {
    type Target = T::Target;

    #[inline]
    fn deref(&self) -> &T::Target {
        let header = self.header();
        // SAFETY: our strong reference keeps the slot live; its payload was written
        // before `activate` (which happens-before we got this handle) and is never
        // written while a strong reference exists, except through `get_mut`, which
        // needs `&mut` to the only handle.
        unsafe { T::view(header.data(), header.len()) }
    }
}

impl<T: SlotContent> AsRef<T::Target> for RingPtr<T> {
    fn as_ref(&self) -> &T::Target {
        self
    }
}

impl<T> Clone for RingPtr<T> {
    /// One atomic increment; no allocation.
    #[inline]
    fn clone(&self) -> Self {
        self.header().acquire_strong();
        Self {
            slot: self.slot,
            _marker: PhantomData,
        }
    }
}

impl<T> Drop for RingPtr<T> {
    #[inline(always)]
    fn drop(&mut self) {
        let header = self.header();
        if header.release_strong() {
            // The slot is free but not yet returned, so it keeps the pool (and this
            // header) alive until `release_slot` returns it.
            // SAFETY: `release_strong` returned true for this slot just now.
            unsafe { Pool::release_slot(header.pool(), header.index()) };
        }
    }
}

/// How many payload bytes `RingPtr`'s `Debug` shows before it elides the rest.
const DEBUG_PREFIX: usize = 16;

impl<T: SlotContent> fmt::Debug for RingPtr<T> {
    /// Bounded whatever the payload: pool, slot, generation, strong count, length, event
    /// type (0 for typed values) and at most the first 16 payload bytes, escaped as ASCII
    /// (`"hello\x00"`), with `...` when more follow.
    ///
    /// ```
    /// use slotring::EventAllocator;
    /// let alloc = EventAllocator::new();
    /// let ev = alloc.allocate(&[b'a'; 1000], 7)?;
    /// let text = format!("{ev:?}");
    /// assert!(text.contains("len: 1000") && text.contains("event_type: 7"));
    /// assert!(text.contains(r#"prefix: "aaaaaaaaaaaaaaaa...""#));
    /// assert!(text.len() < 200);
    /// # Ok::<(), slotring::AllocError>(())
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// The escaped prefix, as a `Debug` value that writes without allocating.
        struct Prefix<'a>(&'a [u8], bool);
        impl fmt::Debug for Prefix<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "\"{}{}\"",
                    self.0.escape_ascii(),
                    if self.1 { "..." } else { "" }
                )
            }
        }

        let header = self.header();
        let len = header.len();
        let shown = len.min(DEBUG_PREFIX);
        // SAFETY: our strong reference keeps the slot live and its payload unwritten (as
        // in `deref`); the payload's first `len` bytes are initialised: an event's bytes,
        // or a `bytemuck::Pod` value of `len = size_of::<T>()` bytes, which has no
        // padding. `shown <= len`.
        let prefix = unsafe { core::slice::from_raw_parts(header.data().as_ptr(), shown) };
        f.debug_struct("RingPtr")
            .field("pool", &RingPtr::pool_id(self))
            .field("slot", &RingPtr::slot_index(self))
            .field("generation", &RingPtr::generation(self))
            .field("strong", &RingPtr::strong_count(self))
            .field("len", &len)
            .field("event_type", &header.event_type())
            .field("prefix", &Prefix(prefix, shown < len))
            .finish()
    }
}

impl<T: SlotContent> PartialEq for RingPtr<T>
where
    T::Target: PartialEq,
{
    /// Compares the values, like `Arc`'s `PartialEq`.
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: SlotContent> Eq for RingPtr<T> where T::Target: Eq {}

impl<T: SlotContent> core::hash::Hash for RingPtr<T>
where
    T::Target: core::hash::Hash,
{
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

/// A non-owning handle that upgrades only while its slot is still in the same life.
///
/// A weak handle keeps the pool's storage allocated (so upgrading is always safe to
/// try), but not the slot: once the last [`RingPtr`] drops, the slot returns to its
/// pool, its generation moves on at its next use, and [`upgrade`](Self::upgrade)
/// returns `None` forever.
///
/// ```
/// use slotring::{EventAllocator, RingPtr, WeakRingPtr};
/// let alloc = EventAllocator::new();
/// let ev = alloc.allocate(b"cached", 1)?;
/// let weak: WeakRingPtr<_> = RingPtr::downgrade(&ev);
/// let again = weak.upgrade().expect("ev is alive");
/// drop((ev, again));
/// assert!(weak.upgrade().is_none()); // never resurrects the slot
/// # Ok::<(), slotring::AllocError>(())
/// ```
#[must_use]
pub struct WeakRingPtr<T> {
    slot: NonNull<SlotHeader>,
    generation: u32,
    _marker: PhantomData<T>,
}

// SAFETY: upgrading yields a `RingPtr<T>`, so the same bounds as `RingPtr` apply.
unsafe impl<T: Send + Sync> Send for WeakRingPtr<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for WeakRingPtr<T> {}

impl<T> WeakRingPtr<T> {
    #[inline]
    fn header(&self) -> &SlotHeader {
        // SAFETY: a weak handle holds a keepalive unit of the pool, so the header
        // (which lives in the pool) stays allocated.
        unsafe { self.slot.as_ref() }
    }

    /// A strong handle if the slot is still live in the generation this weak handle was
    /// made in.
    ///
    /// ```
    /// use slotring::{PoolId, EventAllocator, RingPtr};
    /// let alloc = EventAllocator::builder().capacity(PoolId::XS, 1).build()?;
    /// let ev = alloc.try_allocate(b"first life", 1)?;
    /// let weak = RingPtr::downgrade(&ev);
    /// assert_eq!(weak.upgrade().as_deref(), Some(&b"first life"[..]));
    /// drop(ev);
    /// // The only slot is reused for another event: the weak handle does not see it.
    /// let other = alloc.try_allocate(b"second life", 2)?;
    /// assert!(weak.upgrade().is_none());
    /// # drop(other);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn upgrade(&self) -> Option<RingPtr<T>> {
        if self.header().try_acquire_strong(self.generation) {
            // SAFETY: the CAS added a strong reference for the new handle to a slot live
            // in our generation, which holds the `T` it held when we were made.
            Some(unsafe { RingPtr::from_slot(self.slot) })
        } else {
            None
        }
    }

    /// The generation this weak handle belongs to.
    ///
    /// ```
    /// use slotring::{EventAllocator, RingPtr};
    /// let alloc = EventAllocator::new();
    /// let ev = alloc.allocate(b"x", 0)?;
    /// assert_eq!(RingPtr::downgrade(&ev).generation(), RingPtr::generation(&ev));
    /// # Ok::<(), slotring::AllocError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Whether the slot is still live in this handle's generation (a snapshot).
    ///
    /// ```
    /// use slotring::{EventAllocator, RingPtr};
    /// let alloc = EventAllocator::new();
    /// let ev = alloc.allocate(b"x", 0)?;
    /// let weak = RingPtr::downgrade(&ev);
    /// assert!(weak.is_live());
    /// drop(ev);
    /// assert!(!weak.is_live());
    /// # Ok::<(), slotring::AllocError>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn is_live(&self) -> bool {
        let state = self.header().snapshot();
        state.generation() == self.generation && state.count() > 0
    }
}

impl<T> Clone for WeakRingPtr<T> {
    fn clone(&self) -> Self {
        let header = self.header();
        // SAFETY: our own keepalive unit keeps the pool alive.
        unsafe { Pool::keep(header.pool()) };
        Self {
            slot: self.slot,
            generation: self.generation,
            _marker: PhantomData,
        }
    }
}

impl<T> Drop for WeakRingPtr<T> {
    fn drop(&mut self) {
        let pool = self.header().pool();
        // SAFETY: we give up the unit this weak handle took, and touch nothing after.
        unsafe { Pool::unkeep(pool) };
    }
}

impl<T> fmt::Debug for WeakRingPtr<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakRingPtr")
            .field("slot", &self.header().index())
            .field("generation", &self.generation)
            .field("live", &self.is_live())
            .finish()
    }
}
