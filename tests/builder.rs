//! Writing events in place: `reserve` / `EventBuilder`, `allocate_with`, and (feature
//! `bytes`) `BufMut` and the copy-free conversion to `Bytes`.

use std::collections::HashSet;
use std::io::{Cursor, ErrorKind, Read, Write};
use std::task::{Context, Waker};

use slotring::{AllocError, Event, EventAllocator, PoolId, RingPtr};

fn small(xs: usize) -> EventAllocator {
    EventAllocator::builder()
        .capacities([xs, 1, 0, 0, 0])
        .heap_fallback(false)
        .build()
        .unwrap()
}

fn in_use(alloc: &EventAllocator, pool: PoolId) -> usize {
    alloc.stats().pool(pool).in_use
}

#[test]
fn a_builder_writes_truncates_and_freezes() {
    let alloc = small(2);
    let mut b = alloc.reserve(10, 4).unwrap();
    assert_eq!((b.len(), b.capacity(), b.event_type()), (0, 64, 4));
    assert!(b.is_empty());
    b.write_all(b"hello, world").unwrap();
    assert_eq!(b.as_slice(), b"hello, world");
    b.as_mut_slice()[0] = b'H';
    b.truncate(5);
    b.truncate(100); // longer: no effect
    b.set_event_type(9);
    let ev = b.freeze();
    assert_eq!((ev.payload(), ev.event_type()), (&b"Hello"[..], 9));
    assert_eq!(RingPtr::strong_count(&ev), 1);
    assert!(
        RingPtr::get_mut(&mut ev.clone()).is_none(),
        "two handles now"
    );
    // A frozen event is an ordinary one: tokens, weak handles, reuse.
    let token = RingPtr::into_raw(ev).unwrap();
    let ev = alloc.from_raw(token).unwrap();
    assert_eq!(ev.payload(), b"Hello");
    drop(ev);
    assert_eq!(in_use(&alloc, PoolId::XS), 0);
}

#[test]
fn an_unfinished_builder_returns_its_slot_and_leaves_no_trace() {
    let alloc = small(1);
    let before = alloc.stats().pool(PoolId::XS).allocations;
    let mut b = alloc.reserve(1, 0).unwrap();
    b.write_all(b"abandoned").unwrap();
    assert_eq!(
        alloc.try_allocate(b"x", 0).unwrap_err(),
        AllocError::PoolExhausted { pool: PoolId::XS },
        "the reserved slot is taken"
    );
    drop(b);
    assert_eq!(
        alloc.stats().pool(PoolId::XS).allocations,
        before,
        "never published"
    );
    let ev = alloc.try_allocate(b"x", 0).expect("the slot came back");
    assert_eq!(ev.payload(), b"x");
}

#[test]
fn a_full_builder_writes_nothing_more() {
    let alloc = small(1);
    let mut b = alloc.reserve_in(PoolId::XS, 0).unwrap();
    assert_eq!(b.write(&[1; 100]).unwrap(), 64);
    assert_eq!(b.write(&[2]).unwrap(), 0);
    assert_eq!(b.write_all(&[2]).unwrap_err().kind(), ErrorKind::WriteZero);
    assert_eq!(b.read_from(&mut Cursor::new([3u8; 10])).unwrap(), 0);
    assert_eq!(b.len(), 64);
    assert!(
        b.as_slice().iter().all(|&x| x == 1),
        "nothing past the slot"
    );
}

#[test]
fn reads_go_straight_into_the_slot() {
    let alloc = small(1);
    let data: Vec<u8> = (0..200u8).collect();
    let mut reader = Cursor::new(data.clone());
    let mut b = alloc.reserve(256, 1).unwrap();
    while b.read_from(&mut reader).unwrap() > 0 {}
    assert_eq!(b.as_slice(), &data[..]);
    // read_exact_from: refused (nothing read) when it does not fit, exact otherwise.
    let mut more = Cursor::new(vec![7u8; 100]);
    assert_eq!(
        b.read_exact_from(&mut more, 57).unwrap_err().kind(),
        ErrorKind::WriteZero
    );
    assert_eq!((b.len(), more.position()), (200, 0));
    b.read_exact_from(&mut more, 56).unwrap();
    assert_eq!(b.len(), 256);
    let ev = b.freeze();
    assert_eq!(ev.len(), 256);
}

#[test]
fn spare_capacity_and_commit() {
    let alloc = small(1);
    let mut b = alloc.reserve(3, 0).unwrap();
    b.spare_capacity_mut()[..3].copy_from_slice(b"abc");
    b.commit(3).unwrap();
    assert!(matches!(
        b.commit(62),
        Err(AllocError::TooLarge { len: 65, max: 64 })
    ));
    assert!(
        b.commit(usize::MAX).is_err(),
        "overflowing counts are refused too"
    );
    assert_eq!(b.freeze().payload(), b"abc");
}

#[test]
fn reservation_errors_are_typed_and_spills_are_counted() {
    let alloc = small(1);
    assert!(matches!(
        alloc.reserve(PoolId::MAX_POOLED + 1, 0),
        Err(AllocError::TooLarge { .. })
    ));
    let xs = alloc.reserve(1, 0).unwrap();
    let spilled = alloc.reserve(1, 0).unwrap();
    assert_eq!(spilled.capacity(), 256, "spilled to S");
    assert_eq!(alloc.stats().pool(PoolId::XS).spills, 1);
    assert_eq!(
        alloc.reserve(1, 0).unwrap_err(),
        AllocError::PoolExhausted { pool: PoolId::XS }
    );
    assert_eq!(
        alloc.reserve_in(PoolId::M, 0).unwrap_err(),
        AllocError::PoolExhausted { pool: PoolId::M }
    );
    drop((xs, spilled));
}

#[test]
fn allocate_with_publishes_or_returns_the_slot() {
    let alloc = small(1);
    let ev = alloc
        .allocate_with(3, 5, |buf| {
            buf.copy_from_slice(b"xyz");
            Ok::<(), AllocError>(())
        })
        .unwrap();
    assert_eq!((ev.payload(), ev.event_type()), (&b"xyz"[..], 5));
    drop(ev);
    // A failing fill (a short read) returns the slot and its error.
    let mut short = Cursor::new(b"ab".to_vec());
    let err = alloc
        .allocate_with(3, 0, |buf| short.read_exact(buf))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    assert_eq!(in_use(&alloc, PoolId::XS), 0);
    // Reservation errors come back through From<AllocError>.
    let err = alloc
        .allocate_with(PoolId::MAX_POOLED + 1, 0, |_| Ok::<(), std::io::Error>(()))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
#[cfg_attr(miri, ignore = "unwinding through the fill: slow under miri")]
fn a_panicking_fill_returns_the_slot() {
    let alloc = small(1);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        alloc.allocate_with(3, 0, |_| -> Result<(), AllocError> {
            panic!("fill failed")
        })
    }));
    assert!(result.is_err());
    assert!(alloc.try_allocate(b"x", 0).is_ok(), "the slot came back");
}

#[test]
fn an_abandoned_builder_wakes_a_waiter() {
    let alloc = EventAllocator::builder()
        .capacities([1, 0, 0, 0, 0])
        .spill(false)
        .heap_fallback(false)
        .build()
        .unwrap();
    let b = alloc.reserve(1, 0).unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let mut wait = Box::pin(alloc.allocate_async(b"w", 0));
    assert!(wait.as_mut().poll(&mut cx).is_pending());
    drop(b);
    assert!(wait.as_mut().poll(&mut cx).is_ready());
}

#[test]
fn a_builder_moves_to_another_thread() {
    let alloc = small(1);
    let mut b = alloc.reserve(8, 0).unwrap();
    b.write_all(b"there").unwrap();
    let ev = std::thread::spawn(move || b.freeze()).join().unwrap();
    assert_eq!(ev.payload(), b"there");
    let refused = alloc.reserve_in(PoolId::XS, 0).unwrap_err();
    assert_eq!(refused, AllocError::PoolExhausted { pool: PoolId::XS });
    drop(ev);
    let b = alloc.reserve(8, 0).unwrap();
    std::thread::spawn(move || drop(b)).join().unwrap();
    assert_eq!(in_use(&alloc, PoolId::XS), 0);
}

#[test]
fn events_are_looked_up_by_their_bytes() {
    let alloc = small(4);
    let set: HashSet<RingPtr<Event>> = [b"a", b"b"]
        .into_iter()
        .map(|p| alloc.allocate(p, 0).unwrap())
        .collect();
    assert!(set.contains(&b"a"[..]));
    assert!(!set.contains(&b"c"[..]));
    let as_ref: &[u8] = set.iter().next().unwrap().as_ref();
    assert_eq!(as_ref.len(), 1);
}

#[cfg(feature = "bytes")]
mod with_bytes {
    use bytes::{BufMut, Bytes};

    use super::*;

    #[test]
    fn buf_mut_writes_in_place() {
        let alloc = small(1);
        let mut b = alloc.reserve(64, 0).unwrap();
        assert_eq!(b.remaining_mut(), 64);
        b.put_u32(0xDEAD_BEEF);
        b.put_slice(b"tail");
        assert_eq!(b.remaining_mut(), 56);
        let ev = b.freeze();
        assert_eq!(ev.payload(), b"\xDE\xAD\xBE\xEFtail");
    }

    #[test]
    #[should_panic(expected = "past the builder's capacity")]
    fn buf_mut_refuses_to_run_past_the_slot() {
        let alloc = small(1);
        let mut b = alloc.reserve(64, 0).unwrap();
        b.put_slice(&[0; 60]);
        // SAFETY: deliberately past the room; the builder's own check panics before
        // anything is marked written (nothing is read either way).
        unsafe { b.advance_mut(5) };
    }

    #[test]
    fn bytes_share_the_slot_until_the_last_clone_drops() {
        let alloc = small(1);
        let ev = alloc.allocate(b"payload", 0).unwrap();
        let ptr = ev.payload().as_ptr();
        let bytes = Bytes::from(ev);
        assert_eq!(
            (&bytes[..], bytes.as_ptr()),
            (&b"payload"[..], ptr),
            "no copy"
        );
        let tail = bytes.slice(3..);
        drop(bytes);
        assert_eq!(
            in_use(&alloc, PoolId::XS),
            1,
            "a slice still holds the slot"
        );
        assert_eq!(&tail[..], b"load");
        drop(tail);
        assert_eq!(in_use(&alloc, PoolId::XS), 0);
    }
}
