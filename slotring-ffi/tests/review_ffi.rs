//! Adversarial review of the C API's in-place writes (`slotring_event_reserve`,
//! `_publish`, `_abandon`): one test per finding, failing on the reviewed code and passing
//! since reservation generations are drawn at random.

use slotring::ffi::SlotringStatus;
use slotring_ffi::{
    slotring_event_abandon, slotring_event_data, slotring_event_publish, slotring_event_release,
    slotring_event_reserve,
};

fn reserve(capacity: usize) -> (u64, *mut u8) {
    let (mut res, mut room, mut cap) = (0u64, core::ptr::null_mut(), 0usize);
    // SAFETY: the out pointers are valid locals.
    let status = unsafe { slotring_event_reserve(capacity, 3, &mut res, &mut room, &mut cap) };
    assert_eq!(status, SlotringStatus::Ok);
    (res, room)
}

/// Scenario: a C host holds a stale reservation handle `h` (abandoned). Another part of
/// the host reserves again. The stale holder forges `h + 2^32` (the next generation of
/// the same entry: handles are `generation << 32 | index + 1`, with generations counting
/// up from 0 and entries reused last-in first-out) and publishes it.
///
/// Expected (docs/design.md, "Reservations are handles in a table": "a forged handle
/// finds no entry of that generation (`NO_RESERVATION`)"; tokens, by contrast, are
/// keyed with a random per-pool value precisely so that they cannot be made up): the
/// forged handle is refused.
///
/// Actual: reservation handles carry no key, so the forged handle is exactly the
/// handle of the other party's open reservation and the publish succeeds: the other
/// party's reservation is published (and its later writes through its data pointer
/// race with readers of the event; its own publish gets `NO_RESERVATION`).
/// Severity: doc mismatch (forged handles are accepted).
#[test]
fn a_forged_reservation_handle_is_accepted() {
    let (stale, _) = reserve(8);
    assert_eq!(slotring_event_abandon(stale), SlotringStatus::Ok);
    let (theirs, room) = reserve(8);
    // SAFETY: the room holds at least 8 bytes and is the reservation's.
    unsafe { room.copy_from_nonoverlapping(b"theirs!!".as_ptr(), 8) };

    let forged = stale.wrapping_add(1 << 32);
    let mut token = 0u64;
    // SAFETY: `token` is a valid local.
    let status = unsafe { slotring_event_publish(forged, 8, &mut token) };
    if status == SlotringStatus::Ok {
        let (mut data, mut len, mut ty) = (core::ptr::null(), 0usize, 0u32);
        // SAFETY: valid out pointers.
        unsafe { slotring_event_data(token, &mut data, &mut len, &mut ty) };
        let mut own = 0u64;
        // SAFETY: as above.
        let their_publish = unsafe { slotring_event_publish(theirs, 8, &mut own) };
        slotring_event_release(token);
        panic!(
            "a handle never issued to this caller (forged from a stale one: {forged:#x}, \
             the real one {theirs:#x}) published another reservation ({len} bytes); \
             the owner's own publish then got {their_publish:?}"
        );
    }
    assert_eq!(status, SlotringStatus::NoReservation);
    assert_eq!(slotring_event_abandon(theirs), SlotringStatus::Ok);
}
