//! Behaviour of `EventAllocator`, `RingPtr`, `WeakRingPtr` and tokens through the public
//! API: sizes, spilling, the heap fallback, exhaustion, reuse, statistics, lifetimes.
#![cfg(not(loom))]

use std::cell::Cell;

use slotring::{
    AllocError, Event, EventAllocator, EventSize, PoolId, RingBuffer, RingPtr, TokenError,
    WeakRingPtr,
};
use static_assertions::{assert_impl_all, assert_not_impl_any};

assert_impl_all!(RingPtr<Event>: Send, Sync, Clone, std::fmt::Debug);
assert_impl_all!(WeakRingPtr<Event>: Send, Sync, Clone, std::fmt::Debug);
assert_impl_all!(EventAllocator: Send, Sync, std::fmt::Debug);
assert_impl_all!(RingBuffer<64, 4>: Send, Sync, std::fmt::Debug);
// A handle shared across threads hands out `&T`; `T` must be `Sync` as well as `Send`.
assert_not_impl_any!(RingPtr<Cell<u8>>: Send, Sync);
assert_not_impl_any!(WeakRingPtr<Cell<u8>>: Send, Sync);

fn small(xs: usize, s: usize) -> EventAllocator {
    EventAllocator::builder()
        .capacities([xs, s, 1, 1, 1])
        .build()
        .expect("small allocator")
}

#[test]
fn quick_start_from_the_issue() {
    let alloc = EventAllocator::new();
    let ev: RingPtr<Event> = alloc.allocate(b"hello", 7).unwrap();
    assert_eq!(ev.payload(), b"hello");
    assert_eq!(ev.event_type(), 7);
    assert_eq!(RingPtr::pool_id(&ev), Some(PoolId::XS));
    let twin = ev.clone();
    assert_eq!(RingPtr::strong_count(&ev), 2);
    let weak: WeakRingPtr<Event> = RingPtr::downgrade(&ev);
    drop(twin);
    drop(ev);
    assert!(
        weak.upgrade().is_none(),
        "the last drop must end the slot's life"
    );
    let stats = alloc.stats();
    assert_eq!(stats.pool(PoolId::XS).in_use, 0);
    assert_eq!(stats.pool(PoolId::XS).allocations, 1);
    assert_eq!(EventSize::for_len(65), EventSize::S);
    assert_eq!(PoolId::for_len(20_000), None);
    assert_eq!(PoolId::XS.max_size(), 64);
}

#[test]
fn default_capacities() {
    let alloc = EventAllocator::new();
    let caps: Vec<_> = PoolId::ALL.iter().map(|&p| alloc.capacity(p)).collect();
    assert_eq!(caps, [2000, 1000, 300, 60, 15]);
}

#[test]
fn each_length_lands_in_its_class() {
    let alloc = EventAllocator::new();
    for (len, pool) in [
        (0, Some(PoolId::XS)),
        (64, Some(PoolId::XS)),
        (65, Some(PoolId::S)),
        (256, Some(PoolId::S)),
        (1000, Some(PoolId::M)),
        (4096, Some(PoolId::L)),
        (16384, Some(PoolId::XL)),
        (16385, None),
        (100_000, None),
    ] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        let ev = alloc.allocate(&payload, len as u32).unwrap();
        assert_eq!(RingPtr::pool_id(&ev), pool, "len {len}");
        assert_eq!(ev.payload(), &payload[..], "payload of len {len} corrupted");
        assert_eq!(ev.event_type(), len as u32);
    }
    assert_eq!(alloc.stats().total_in_use(), 0);
    assert_eq!(alloc.stats().heap.allocations, 2);
}

#[test]
fn try_allocate_reports_exhaustion_and_size() {
    let alloc = small(2, 2);
    let a = alloc.try_allocate(b"a", 0).unwrap();
    let b = alloc.try_allocate(b"b", 0).unwrap();
    assert_eq!(
        alloc.try_allocate(b"c", 0).unwrap_err(),
        AllocError::PoolExhausted { pool: PoolId::XS }
    );
    let big = vec![1u8; 16385];
    assert_eq!(
        alloc.try_allocate(&big, 0).unwrap_err(),
        AllocError::TooLarge {
            len: 16385,
            max: 16384
        }
    );
    assert_eq!(
        alloc.try_allocate_in(PoolId::XS, &[0; 65], 0).unwrap_err(),
        AllocError::TooLarge { len: 65, max: 64 }
    );
    assert_eq!(alloc.stats().pool(PoolId::XS).failures, 1);
    drop(a);
    let c = alloc.try_allocate(b"c", 0).expect("a freed slot is reused");
    assert_eq!(c.payload(), b"c");
    assert_eq!(b.payload(), b"b", "reuse must not touch a live slot");
}

#[test]
fn allocate_spills_upward_then_to_the_heap() {
    let alloc = small(1, 1);
    let xs = alloc.allocate(b"1", 0).unwrap();
    let s = alloc.allocate(b"2", 0).unwrap();
    let m = alloc.allocate(b"3", 0).unwrap();
    let l = alloc.allocate(b"4", 0).unwrap();
    let xl = alloc.allocate(b"5", 0).unwrap();
    let heap = alloc.allocate(b"6", 0).unwrap();
    let pools: Vec<_> = [&xs, &s, &m, &l, &xl, &heap]
        .iter()
        .map(|p| RingPtr::pool_id(p))
        .collect();
    assert_eq!(
        pools,
        [
            Some(PoolId::XS),
            Some(PoolId::S),
            Some(PoolId::M),
            Some(PoolId::L),
            Some(PoolId::XL),
            None
        ]
    );
    for (i, p) in [&xs, &s, &m, &l, &xl, &heap].iter().enumerate() {
        assert_eq!(p.payload(), (i + 1).to_string().as_bytes());
    }
    let stats = alloc.stats();
    assert_eq!(stats.pool(PoolId::XS).spills, 5);
    assert_eq!(stats.heap.in_use, 1);
    drop(heap);
    assert_eq!(alloc.stats().heap.in_use, 0);
}

#[test]
fn without_fallbacks_allocate_fails_cleanly() {
    let alloc = EventAllocator::builder()
        .capacities([1, 0, 0, 0, 0])
        .spill(false)
        .heap_fallback(false)
        .build()
        .unwrap();
    let _held = alloc.allocate(b"x", 0).unwrap();
    assert_eq!(
        alloc.allocate(b"y", 0).unwrap_err(),
        AllocError::PoolExhausted { pool: PoolId::XS }
    );
    assert_eq!(
        alloc.allocate(&[0; 70_000], 0).unwrap_err(),
        AllocError::TooLarge {
            len: 70_000,
            max: 16384
        }
    );
    // Spilling without the heap: an empty class spills into a larger one.
    let alloc = EventAllocator::builder()
        .capacities([0, 1, 0, 0, 0])
        .heap_fallback(false)
        .build()
        .unwrap();
    let ev = alloc.allocate(b"z", 0).unwrap();
    assert_eq!(RingPtr::pool_id(&ev), Some(PoolId::S));
    assert_eq!(
        alloc.allocate(b"w", 0).unwrap_err(),
        AllocError::PoolExhausted { pool: PoolId::XS }
    );
}

#[test]
fn without_spilling_a_full_class_goes_to_the_heap() {
    let alloc = EventAllocator::builder()
        .capacities([1, 1, 1, 1, 1])
        .spill(false)
        .build()
        .unwrap();
    let _held = alloc.allocate(b"x", 0).unwrap();
    let ev = alloc.allocate(b"y", 0).unwrap();
    assert_eq!(
        RingPtr::pool_id(&ev),
        None,
        "no spill to S, straight to the heap"
    );
    assert_eq!(alloc.stats().pool(PoolId::XS).spills, 1);
}

#[test]
fn empty_payloads_are_events_too() {
    let alloc = small(1, 0);
    let a = alloc.allocate(&[], 3).unwrap();
    assert!(a.payload().is_empty());
    assert_eq!(a.event_type(), 3);
    let b = alloc.allocate(&[], 4).unwrap(); // spills through empty classes to a larger one
    assert!(b.is_empty());
}

#[test]
fn generation_moves_on_at_every_reuse() {
    let alloc = small(1, 0);
    let first = alloc.allocate(b"a", 0).unwrap();
    let g1 = RingPtr::generation(&first);
    let weak = RingPtr::downgrade(&first);
    drop(first);
    let second = alloc.try_allocate(b"b", 0).unwrap();
    assert_ne!(RingPtr::generation(&second), g1);
    assert!(
        weak.upgrade().is_none(),
        "a weak handle from an earlier life must never see the new event"
    );
    assert!(!weak.is_live());
    let weak2 = RingPtr::downgrade(&second);
    let up = weak2.upgrade().expect("same life upgrades");
    assert_eq!(up.payload(), b"b");
    assert_eq!(RingPtr::strong_count(&second), 2);
}

#[test]
fn tokens_round_trip_once_and_stale_tokens_are_refused() {
    let alloc = small(1, 0);
    let ev = alloc.allocate(b"tok", 5).unwrap();
    let twin = ev.clone();
    let t1 = RingPtr::into_raw(ev).unwrap();
    let t2 = RingPtr::into_raw(twin).unwrap();
    assert_eq!(t1, t2, "tokens name (pool, slot, generation)");
    let a = alloc.from_raw(t1).unwrap();
    let b = alloc.from_raw(t2).unwrap();
    assert_eq!(alloc.from_raw(t1).unwrap_err(), TokenError::Released);
    assert_eq!(alloc.clone_raw(t1).unwrap_err(), TokenError::Released);
    assert_eq!(RingPtr::strong_count(&a), 2);
    drop((a, b));
    // Freed but not yet reused: the token was used up, not outlived.
    assert_eq!(alloc.from_raw(t1).unwrap_err(), TokenError::Released);
    // The slot is reused: the old token must not reach the new event.
    let fresh = alloc.try_allocate(b"new", 6).unwrap();
    let fresh_token = RingPtr::into_raw(fresh.clone()).unwrap();
    assert_ne!(fresh_token, t1);
    assert_eq!(alloc.from_raw(t1).unwrap_err(), TokenError::Stale);
    assert_eq!(alloc.from_raw(fresh_token).unwrap().payload(), b"new");
    // Foreign tokens: unknown pool tag, out-of-range slot.
    assert_eq!(alloc.from_raw(u64::MAX).unwrap_err(), TokenError::Foreign);
    assert_eq!(
        alloc.from_raw(t1 | 0x00FF_FFFF).unwrap_err(),
        TokenError::Foreign
    );
    let pool = RingBuffer::<64, 2>::new();
    let typed = RingPtr::into_raw(pool.alloc(1u8).unwrap()).unwrap();
    assert_eq!(alloc.from_raw(typed).unwrap_err(), TokenError::Foreign);
    assert_eq!(
        pool.from_raw::<u8>(fresh_token).unwrap_err(),
        TokenError::Foreign
    );
    assert_eq!(*pool.from_raw::<u8>(typed).unwrap(), 1);
}

#[test]
fn heap_events_have_tokens_too() {
    let alloc = EventAllocator::new();
    let big = alloc.allocate(&[9; 20_000], 1).unwrap();
    let twin = big.clone();
    let token = RingPtr::into_raw(big).expect("every event can become a token");
    assert_ne!(token, 0);
    assert_eq!(
        RingPtr::into_raw(twin).unwrap(),
        token,
        "one event, one token"
    );
    let view = alloc.clone_raw(token).unwrap();
    assert_eq!(view.len(), 20_000);
    assert_eq!(RingPtr::strong_count(&view), 3);
    let a = alloc.from_raw(token).unwrap();
    let b = alloc.from_raw(token).unwrap();
    assert_eq!(alloc.from_raw(token).unwrap_err(), TokenError::Released);
    assert_eq!(alloc.clone_raw(token).unwrap_err(), TokenError::Released);
    assert_eq!(alloc.stats().heap.in_use, 1);
    drop((a, b, view));
    assert_eq!(alloc.stats().heap.in_use, 0);
    // The entry is reused by the next heap event's token: the old one is stale.
    let next = RingPtr::into_raw(alloc.allocate(&[1; 30_000], 2).unwrap()).unwrap();
    assert_ne!(next, token);
    assert_eq!(alloc.from_raw(token).unwrap_err(), TokenError::Stale);
    assert_eq!(alloc.from_raw(next).unwrap().len(), 30_000);
    assert_eq!(alloc.stats().heap.in_use, 0);
}

#[test]
fn handles_outlive_their_allocator() {
    let (ev, weak, heap) = {
        let alloc = EventAllocator::new();
        let ev = alloc.allocate(b"survivor", 1).unwrap();
        let weak = RingPtr::downgrade(&ev);
        let heap = alloc.allocate(&[7; 30_000], 2).unwrap();
        (ev, weak, heap)
    };
    assert_eq!(ev.payload(), b"survivor");
    assert!(heap.iter().all(|&b| b == 7));
    let again = weak.upgrade().expect("the slot is still live");
    drop((ev, again, heap));
    assert!(weak.upgrade().is_none());
    drop(weak); // the storage is freed here; miri checks nothing leaks or dangles
}

#[test]
fn get_mut_only_when_unique() {
    let alloc = EventAllocator::new();
    let mut ev = alloc.allocate(b"abc", 0).unwrap();
    RingPtr::get_mut(&mut ev).unwrap()[0] = b'x';
    assert_eq!(ev.payload(), b"xbc");
    let twin = ev.clone();
    assert!(
        RingPtr::get_mut(&mut ev).is_none(),
        "another strong handle exists"
    );
    drop(twin);
    assert!(RingPtr::get_mut(&mut ev).is_some());
    let weak = RingPtr::downgrade(&ev);
    assert!(
        RingPtr::get_mut(&mut ev).is_none(),
        "a weak handle could upgrade"
    );
    drop(weak);
    assert!(
        RingPtr::get_mut(&mut ev).is_none(),
        "documented: once a weak handle was made, get_mut stays None for this life"
    );
    drop(ev);
    let mut next = alloc.try_allocate(b"next", 0).unwrap();
    assert!(
        RingPtr::get_mut(&mut next).is_some(),
        "a new life starts without the flag"
    );
    let token = RingPtr::into_raw(next.clone()).unwrap();
    assert!(
        RingPtr::get_mut(&mut next).is_none(),
        "a parked token is a reference"
    );
    drop(alloc.from_raw(token).unwrap());
    assert!(
        RingPtr::get_mut(&mut next).is_none(),
        "documented: once a token was made, get_mut stays None for this life \
         (clone_raw could make a reference from it)"
    );
}

#[test]
fn stats_track_in_use_high_water_and_allocations() {
    let alloc = small(4, 0);
    let held: Vec<_> = (0..3).map(|i| alloc.allocate(&[i], 0).unwrap()).collect();
    drop(held);
    let again = alloc.allocate(b"x", 0).unwrap();
    let xs = *alloc.stats().pool(PoolId::XS);
    assert_eq!(xs.capacity, 4);
    assert_eq!(xs.in_use, 1);
    assert_eq!(
        xs.high_water, 3,
        "a freed slot is reused before a fresh one"
    );
    assert_eq!(xs.allocations, 4);
    drop(again);
}

#[test]
fn ring_buffer_refuses_the_ninth_and_hands_it_back() {
    let pool = RingBuffer::<64, 8>::new();
    let p: RingPtr<[u64; 4]> = pool.alloc([1, 2, 3, 4]).unwrap();
    assert_eq!(*p, [1, 2, 3, 4]);
    let rest: Vec<_> = (0..7).map(|i| pool.alloc([i; 4]).unwrap()).collect();
    let err = pool.alloc([9; 4]).unwrap_err();
    assert_eq!(err.into_inner(), [9; 4]);
    assert_eq!(pool.stats().failures, 1);
    for (i, r) in rest.iter().enumerate() {
        assert_eq!(**r, [i as u64; 4], "a live slot was overwritten");
    }
    drop(rest);
    let q = pool.alloc([5; 4]).unwrap();
    assert_eq!(*q, [5; 4]);
    assert_eq!(*p, [1, 2, 3, 4]);
}

#[test]
fn big_ring_buffer_builds_on_the_heap() {
    // 16 MB of slots: must not touch the stack (the library we replace needed a 1 MB
    // stack guard and CI with an 8 MB stack).
    let pool = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(|| {
            let pool = RingBuffer::<16384, 1000>::new();
            let p = pool.alloc([7u64; 8]).unwrap();
            assert_eq!(p[7], 7);
            pool.stats().capacity
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(pool, 1000);
}

#[test]
fn debug_output_names_the_handle() {
    let alloc = EventAllocator::new();
    let ev = alloc.allocate(b"dbg", 1).unwrap();
    let text = format!("{ev:?}");
    assert!(text.contains("RingPtr") && text.contains("XS"), "{text}");
    assert!(format!("{:?}", RingPtr::downgrade(&ev)).contains("WeakRingPtr"));
    assert!(format!("{alloc:?}").contains("EventAllocator"));
}

#[test]
fn errors_display_what_happened() {
    let e = AllocError::PoolExhausted { pool: PoolId::M };
    assert_eq!(e.to_string(), "every slot of the M pool is in use");
    let e: Box<dyn std::error::Error + Send + Sync> = Box::new(TokenError::Stale);
    assert!(e.to_string().contains("stale"));
}

#[test]
fn a_dead_heap_event_is_not_in_use_while_weak_handles_remain() {
    let alloc = EventAllocator::new();
    let big = alloc.allocate(&[1; 20_000], 0).unwrap();
    let weak = RingPtr::downgrade(&big);
    drop(big);
    assert_eq!(alloc.stats().heap.in_use, 0, "found by the model test");
    assert!(weak.upgrade().is_none());
}

#[test]
fn clone_raw_shares_the_event_and_leaves_the_token_usable() {
    let alloc = small(2, 0);
    let token = RingPtr::into_raw(alloc.allocate(b"shared", 3).unwrap()).unwrap();
    let view = alloc.clone_raw(token).unwrap();
    assert_eq!(view.payload(), b"shared");
    assert_eq!(view.event_type(), 3);
    assert_eq!(
        RingPtr::strong_count(&view),
        2,
        "the view plus the parked hold"
    );
    let owned = alloc.from_raw(token).unwrap();
    assert!(RingPtr::ptr_eq(&view, &owned));
    assert_eq!(alloc.clone_raw(token).unwrap_err(), TokenError::Released);
    drop((view, owned));
    let _reuse = alloc.try_allocate(b"next", 4).unwrap();
    let _reuse2 = alloc.try_allocate(b"next", 4).unwrap();
    assert_eq!(alloc.stats().pool(PoolId::XS).in_use, 2);
    assert!(matches!(
        alloc.clone_raw(token).unwrap_err(),
        TokenError::Released | TokenError::Stale
    ));
    assert_eq!(alloc.clone_raw(u64::MAX).unwrap_err(), TokenError::Foreign);
    let pool = RingBuffer::<64, 2>::new();
    let typed = RingPtr::into_raw(pool.alloc(7u16).unwrap()).unwrap();
    assert_eq!(*pool.clone_raw::<u16>(typed).unwrap(), 7);
    assert_eq!(*pool.from_raw::<u16>(typed).unwrap(), 7);
}

#[test]
fn debug_output_is_bounded_and_escaped() {
    let alloc = EventAllocator::new();
    let big = alloc.allocate(&[0xAB; 16_000], 9).unwrap();
    let text = format!("{big:?}");
    assert!(text.len() < 200, "{text}");
    for field in [
        "pool: Some(XL)",
        "slot: ",
        "generation: ",
        "len: 16000",
        "event_type: 9",
    ] {
        assert!(text.contains(field), "{field} missing in {text}");
    }
    assert!(
        text.contains(&format!("prefix: \"{}...\"", "\\xab".repeat(16))),
        "{text}"
    );

    let small = alloc.allocate(b"hi\n\"there\"", 2).unwrap();
    let text = format!("{small:?}");
    assert!(text.contains(r#"prefix: "hi\n\"there\"""#), "{text}");
    assert!(text.contains("len: 10"), "{text}");

    // Above the largest class: the heap fallback has no pool.
    let heap = alloc
        .allocate(&vec![b'z'; PoolId::MAX_POOLED + 1], 3)
        .unwrap();
    let text = format!("{heap:#?}");
    assert!(text.contains("pool: None") && text.len() < 400, "{text}");

    // Typed values show their bytes too, bounded the same way.
    let ring = RingBuffer::<1024, 2>::new();
    let value = ring.alloc([0x41u8; 1000]).unwrap();
    let text = format!("{value:?}");
    assert!(text.contains("len: 1000") && text.contains(&format!("\"{}...\"", "A".repeat(16))));
}
