//! The C API's in-place writes from Rust: racing publishes and abandons of one
//! reservation (exactly one wins, the rest get `NO_RESERVATION`), and reservations
//! published on another thread than the one that made them.

use slotring::ffi::SlotringStatus;
use slotring_ffi::{
    slotring_event_abandon, slotring_event_data, slotring_event_publish, slotring_event_release,
    slotring_event_reserve,
};

fn reserve(capacity: usize) -> (u64, *mut u8, usize) {
    let (mut res, mut room, mut cap) = (0u64, core::ptr::null_mut(), 0usize);
    // SAFETY: the out pointers are valid locals.
    let status = unsafe { slotring_event_reserve(capacity, 3, &mut res, &mut room, &mut cap) };
    assert_eq!(status, SlotringStatus::Ok);
    (res, room, cap)
}

#[test]
fn racing_publishes_and_abandons_of_one_reservation_have_one_winner() {
    let rounds = if cfg!(miri) { 3 } else { 200 };
    for _ in 0..rounds {
        let (res, room, _) = reserve(4);
        // SAFETY: the room is ours (4 bytes at least) until the reservation closes.
        unsafe { room.copy_from_nonoverlapping(b"race".as_ptr(), 4) };
        let outcomes: Vec<_> = std::thread::scope(|s| {
            let publishers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(move || {
                        let mut token = 0u64;
                        // SAFETY: `token` is a valid local.
                        let status = unsafe { slotring_event_publish(res, 4, &mut token) };
                        (status, token)
                    })
                })
                .collect();
            let abandon = s.spawn(move || (slotring_event_abandon(res), 0));
            publishers
                .into_iter()
                .chain([abandon])
                .map(|t| t.join().unwrap())
                .collect()
        });
        let winners: Vec<_> = outcomes
            .iter()
            .filter(|(status, _)| *status == SlotringStatus::Ok)
            .collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|(s, _)| matches!(s, SlotringStatus::Ok | SlotringStatus::NoReservation))
        );
        let (_, token) = winners[0];
        if *token != 0 {
            let (mut data, mut len) = (core::ptr::null(), 0usize);
            // SAFETY: valid out pointers; the type pointer may be null.
            let status =
                unsafe { slotring_event_data(*token, &mut data, &mut len, core::ptr::null_mut()) };
            assert_eq!(status, SlotringStatus::Ok);
            // SAFETY: the token's hold keeps `len` bytes at `data` valid.
            assert_eq!(unsafe { core::slice::from_raw_parts(data, len) }, b"race");
            assert_eq!(slotring_event_release(*token), SlotringStatus::Ok);
        }
    }
}

#[test]
fn a_reservation_is_published_on_another_thread() {
    let (res, room, cap) = reserve(100);
    assert_eq!(cap, 256);
    let room = room as usize; // raw pointers are not Send; the room is ours to hand over
    let token = std::thread::spawn(move || {
        // SAFETY: the room is this reservation's, 256 bytes, written by us alone.
        unsafe { (room as *mut u8).write_bytes(7, 100) };
        let mut token = 0u64;
        // SAFETY: valid out pointer.
        let status = unsafe { slotring_event_publish(res, 100, &mut token) };
        assert_eq!(status, SlotringStatus::Ok);
        token
    })
    .join()
    .unwrap();
    let mut len = 0usize;
    // SAFETY: valid out pointer; the others may be null.
    let status = unsafe {
        slotring_event_data(
            token,
            core::ptr::null_mut(),
            &mut len,
            core::ptr::null_mut(),
        )
    };
    assert_eq!((status, len), (SlotringStatus::Ok, 100));
    assert_eq!(slotring_event_release(token), SlotringStatus::Ok);
}
