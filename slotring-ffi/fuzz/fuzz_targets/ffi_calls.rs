//! Fuzzes the FFI surface: each input is a sequence of C calls (allocate, read, clone,
//! release, send, deliver, forged and released tokens, null pointers), checked against
//! the model in `tests/support/ffi_ops.rs`, the interpreter the proptest also runs.
#![no_main]

#[path = "../../tests/support/ffi_ops.rs"]
mod ffi_ops;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ffi_ops::run(data);
});
