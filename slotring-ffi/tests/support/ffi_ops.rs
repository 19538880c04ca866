//! Random sequences of FFI calls, decoded from bytes and checked against a model. Shared
//! by the proptest (`tests/ffi_props.rs`) and the fuzz target (`fuzz/`), so both drive
//! exactly the same interpreter.
//!
//! Each call to [`run`] starts from "nothing held" and ends by releasing everything it
//! still holds and checking that every slot and heap event came back.

use std::sync::{Mutex, Once, PoisonError};

use slotring::ffi::{self, SinkError, SlotringStatus};
use slotring::{Event, RingPtr};
use slotring_ffi::SlotringStats;

/// Events the sink took, held on the Rust side until a `Drain`.
static SUNK: Mutex<Vec<RingPtr<Event>>> = Mutex::new(Vec::new());

/// Small pools with spilling and the heap fallback on, so runs reach every class, the
/// heap-token table and spills within a few dozen calls.
pub(crate) fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let capacities = [4usize, 2, 2, 1, 1];
        // SAFETY: `capacities` holds `SLOTRING_POOL_COUNT` values.
        let status = unsafe { slotring_ffi::slotring_init(capacities.as_ptr(), 0) };
        assert_eq!(status, SlotringStatus::Ok, "slotring_init must come first");
        ffi::set_sink(|ev: RingPtr<Event>| -> Result<(), SinkError> {
            if ev.event_type() == REFUSED_TYPE {
                return Err(SinkError::Full(ev));
            }
            SUNK.lock().unwrap_or_else(PoisonError::into_inner).push(ev);
            Ok(())
        });
    });
}

/// Events of this type are refused by the sink.
const REFUSED_TYPE: u32 = 13;

/// Payload lengths that hit every class boundary and the heap.
const LENGTHS: [usize; 12] = [0, 1, 64, 65, 256, 257, 1024, 1025, 4096, 4097, 16384, 16385];

struct Held {
    token: u64,
    holds: u32,
    payload: Vec<u8>,
    event_type: u32,
}

/// Reads the bytes of a run one at a time; missing bytes read as zero.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }
    fn byte(&mut self) -> u8 {
        self.next().unwrap_or(0)
    }
    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |acc, _| (acc << 8) | u64::from(self.byte()))
    }
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn read(token: u64) -> Result<(Vec<u8>, u32), SlotringStatus> {
    let (mut data, mut len, mut ty) = (std::ptr::null(), 0usize, 0u32);
    // SAFETY: the out pointers are valid for writes.
    let status = unsafe { slotring_ffi::slotring_event_data(token, &mut data, &mut len, &mut ty) };
    if status != SlotringStatus::Ok {
        return Err(status);
    }
    // SAFETY: the caller holds the token, so the bytes stay valid and unchanged.
    Ok((
        unsafe { std::slice::from_raw_parts(data, len) }.to_vec(),
        ty,
    ))
}

fn is_refusal(status: SlotringStatus) -> bool {
    matches!(
        status,
        SlotringStatus::AlreadyReleased | SlotringStatus::StaleToken | SlotringStatus::ForeignToken
    )
}

/// Runs the calls encoded in `bytes` and checks each result against the model.
pub(crate) fn run(bytes: &[u8]) {
    // Runs share the process-wide allocator and sink, and end by checking that nothing
    // is in use: one at a time.
    static TURN: Mutex<()> = Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
    setup();
    let mut input = Bytes(bytes);
    let mut held: Vec<Held> = Vec::new();
    let mut released: Vec<u64> = Vec::new();
    while let Some(op) = input.next() {
        let pick = usize::from(input.byte());
        match op % 10 {
            0 => {
                let len = LENGTHS[pick % LENGTHS.len()];
                let event_type = u32::from(input.byte());
                let bytes = payload(len, pick as u8);
                let mut token = 0;
                // SAFETY: `bytes` and `token` are valid for the call.
                let status = unsafe {
                    slotring_ffi::slotring_event_alloc(bytes.as_ptr(), len, event_type, &mut token)
                };
                assert_eq!(status, SlotringStatus::Ok, "spill and heap fallback are on");
                assert!(
                    held.iter().all(|h| h.token != token),
                    "a live token was handed out twice"
                );
                held.push(Held {
                    token,
                    holds: 1,
                    payload: bytes,
                    event_type,
                });
            }
            1 if !held.is_empty() => {
                let h = &held[pick % held.len()];
                assert_eq!(read(h.token), Ok((h.payload.clone(), h.event_type)));
            }
            2 if !held.is_empty() => {
                let i = pick % held.len();
                let mut twin = 0;
                // SAFETY: the out pointer is valid.
                let status =
                    unsafe { slotring_ffi::slotring_event_clone(held[i].token, &mut twin) };
                assert_eq!(status, SlotringStatus::Ok);
                assert_eq!(twin, held[i].token);
                held[i].holds += 1;
            }
            3 | 4 if !held.is_empty() => {
                let i = pick % held.len();
                let status = if op % 10 == 3 {
                    slotring_ffi::slotring_event_release(held[i].token)
                } else {
                    slotring_ffi::slotring_event_send(held[i].token)
                };
                if op % 10 == 4 && held[i].event_type == REFUSED_TYPE {
                    assert_eq!(
                        status,
                        SlotringStatus::SinkFull,
                        "refused sends keep the hold"
                    );
                } else {
                    assert_eq!(status, SlotringStatus::Ok);
                    held[i].holds -= 1;
                    if held[i].holds == 0 {
                        released.push(held.swap_remove(i).token);
                    }
                }
            }
            5 if !released.is_empty() => {
                let token = released[pick % released.len()];
                if held.iter().all(|h| h.token != token) {
                    let status = slotring_ffi::slotring_event_release(token);
                    assert!(
                        is_refusal(status),
                        "a released token was accepted: {status:?}"
                    );
                    assert!(is_refusal(read(token).unwrap_err()));
                }
            }
            6 => {
                let len = LENGTHS[pick % LENGTHS.len()];
                let event_type = u32::from(input.byte());
                let bytes = payload(len, pick as u8);
                // SAFETY: `bytes` is valid for reads of `len` bytes.
                let status = unsafe { ffi::handle_ffi_event(bytes.as_ptr(), len, event_type) };
                let expected = if event_type == REFUSED_TYPE {
                    SlotringStatus::SinkFull
                } else {
                    SlotringStatus::Ok
                };
                assert_eq!(status, expected);
                if expected == SlotringStatus::Ok {
                    let sunk = SUNK.lock().unwrap_or_else(PoisonError::into_inner);
                    let last = sunk.last().expect("the sink took the event");
                    assert_eq!(
                        (last.payload(), last.event_type()),
                        (&bytes[..], event_type)
                    );
                }
            }
            7 => SUNK.lock().unwrap_or_else(PoisonError::into_inner).clear(),
            8 => {
                let forged = input.u64();
                if held.iter().all(|h| h.token != forged) {
                    assert!(is_refusal(slotring_ffi::slotring_event_release(forged)));
                    let mut twin = 0;
                    // SAFETY: the out pointer is valid.
                    let status = unsafe { slotring_ffi::slotring_event_clone(forged, &mut twin) };
                    assert!(is_refusal(status));
                }
            }
            9 => {
                let mut token = 0;
                let len = 1 + pick;
                // SAFETY: a null data pointer with a non-zero length is refused unread.
                let status = unsafe {
                    slotring_ffi::slotring_event_alloc(std::ptr::null(), len, 1, &mut token)
                };
                assert_eq!(status, SlotringStatus::NullPointer);
            }
            _ => {}
        }
    }
    for h in held.drain(..) {
        for _ in 0..h.holds {
            assert_eq!(
                slotring_ffi::slotring_event_release(h.token),
                SlotringStatus::Ok
            );
        }
        assert!(is_refusal(slotring_ffi::slotring_event_release(h.token)));
    }
    SUNK.lock().unwrap_or_else(PoisonError::into_inner).clear();
    let mut stats = SlotringStats::default();
    // SAFETY: the out pointer is valid.
    let status = unsafe { slotring_ffi::slotring_stats(&mut stats) };
    assert_eq!(status, SlotringStatus::Ok);
    for (class, pool) in stats.pools.iter().enumerate() {
        assert_eq!(pool.in_use, 0, "class {class} leaked a slot");
    }
    assert_eq!(stats.heap_in_use, 0, "a heap event leaked");
}
