//! A real C program (`tests/c/ffi_test.c`) drives every function of `include/slotring.h`,
//! bad input included, linked against the static library this test run built.
#![cfg(feature = "ffi")]

use std::path::{Path, PathBuf};
use std::process::Command;

/// `libslotring.a` as built for this test run (with the `ffi` feature): cargo leaves it
/// in `deps` beside the test binary (it copies it up a level only for `cargo build`).
fn static_library() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe
        .parent()
        .expect("test binaries live in <target>/<profile>/deps");
    let lib = deps.join("libslotring.a");
    assert!(
        lib.exists(),
        "{} is missing: build the library with `--features ffi` (cargo test does)",
        lib.display()
    );
    lib
}

#[test]
#[cfg_attr(miri, ignore = "compiles and runs a C program")]
fn c_host_exercises_every_function() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("slotring_ffi_test");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let status = Command::new(&cc)
        .args([
            "-std=c11",
            "-D_POSIX_C_SOURCE=200809L",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O1",
        ])
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("tests/c/ffi_test.c"))
        .arg(static_library())
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .status()
        .unwrap_or_else(|e| panic!("running the C compiler `{cc}`: {e}"));
    assert!(status.success(), "the C test program did not compile");
    for mode in ["pooled", "heap"] {
        let out = Command::new(&exe)
            .arg(mode)
            .output()
            .expect("run the C test program");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.trim() == format!("ok {mode}"),
            "C test, {mode} mode: {}\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        );
    }
}
