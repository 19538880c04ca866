//! `include/slotring.h` is generated from `src/lib.rs` and the main crate's
//! `src/ffi/status.rs`: this test fails when the checked-in header differs from a fresh
//! generation. Regenerate with `SLOTRING_BLESS=1 cargo test -p slotring-ffi --test ffi_header`.

use std::path::Path;

#[test]
#[cfg_attr(miri, ignore = "cbindgen parses source files: too slow for miri")]
fn c_header_matches_the_rust_source() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/lib.rs"))
        .with_src(root.join("../src/ffi/status.rs"))
        .generate()
        .expect("cbindgen parses src/lib.rs and ../src/ffi/status.rs")
        .write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("the header is UTF-8");
    let path = root.join("include/slotring.h");
    if std::env::var_os("SLOTRING_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write include/slotring.h");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "include/slotring.h is out of date with the Rust source; regenerate it with \
         `SLOTRING_BLESS=1 cargo test -p slotring-ffi --test ffi_header`"
    );
    for function in [
        "handle_ffi_event",
        "slotring_init",
        "slotring_event_alloc",
        "slotring_event_data",
        "slotring_event_clone",
        "slotring_event_release",
        "slotring_event_send",
        "slotring_event_reserve",
        "slotring_event_publish",
        "slotring_event_abandon",
        "slotring_set_sink_callback",
        "slotring_stats",
        "slotring_status_message",
        "slotring_version",
        "slotring_version_string",
    ] {
        assert!(
            fresh.contains(&format!("{function}(")),
            "{function} missing from the header"
        );
    }
}
