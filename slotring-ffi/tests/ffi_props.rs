//! Random FFI call sequences against a model (the fuzz target's interpreter).

#[path = "support/ffi_ops.rs"]
mod ffi_ops;

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 6 } else { 512 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_call_sequences_match_the_model(
        bytes in proptest::collection::vec(any::<u8>(), 0..if cfg!(miri) { 120 } else { 600 })
    ) {
        ffi_ops::run(&bytes);
    }
}

#[test]
fn a_long_fixed_sequence_reaches_every_operation() {
    let len = if cfg!(miri) { 600 } else { 4000u32 };
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    ffi_ops::run(&bytes);
}
