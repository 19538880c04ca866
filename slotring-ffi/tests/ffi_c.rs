//! Real C programs, linked against the static library this test run built:
//! `tests/c/ffi_test.c` drives every function of `include/slotring.h`, bad input
//! included; `tests/c/defects_test.c` reproduces each defect of issue 12 (out of memory
//! under `ulimit -v`, re-entry from the sink callback, racing sends, token 0); and
//! `tests/c/header_check.c` checks that the header is C99 (`-std=c99 -pedantic`) and C++.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `libslotring_ffi.a` as built for this test run: cargo leaves it in `deps` beside the
/// test binary (it copies it up a level only for `cargo build`).
fn static_library() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe
        .parent()
        .expect("test binaries live in <target>/<profile>/deps");
    let lib = deps.join("libslotring_ffi.a");
    assert!(
        lib.exists(),
        "{} is missing: `cargo test -p slotring-ffi` builds it",
        lib.display()
    );
    lib
}

/// Compiles `source` (in `tests/c`) against the header and the static library.
fn compile(source: &str, exe_name: &str, flags: &[&str]) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join(exe_name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let status = Command::new(&cc)
        .args(flags)
        .args(["-Wall", "-Wextra", "-Werror", "-O1"])
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("tests/c").join(source))
        .arg(static_library())
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .status()
        .unwrap_or_else(|e| panic!("running the C compiler `{cc}`: {e}"));
    assert!(status.success(), "{source} did not compile");
    exe
}

/// Runs `exe mode` (under `sh -c "ulimit -v <kib>; exec ..."` if `ulimit_kib` is set)
/// and checks that it printed `ok <mode>` and exited 0: an abort, a crash, a deadlock
/// (the program's alarm) or a failed check fails the test with its output.
fn run_mode(exe: &Path, mode: &str, ulimit_kib: Option<u64>) {
    let out = match ulimit_kib {
        Some(kib) => Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -v {kib} && exec \"$0\" \"$1\""))
            .arg(exe)
            .arg(mode)
            .output(),
        None => Command::new(exe).arg(mode).output(),
    }
    .expect("run the C test program");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim() == format!("ok {mode}"),
        "C test, {mode} mode: {}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
}

#[test]
#[cfg_attr(miri, ignore = "compiles and runs a C program")]
fn c_host_exercises_every_function() {
    let exe = compile(
        "ffi_test.c",
        "slotring_ffi_test",
        &["-std=c11", "-D_POSIX_C_SOURCE=200809L"],
    );
    for mode in ["pooled", "heap"] {
        run_mode(&exe, mode, None);
    }
}

#[test]
#[cfg_attr(miri, ignore = "compiles and runs a C program")]
fn out_of_memory_is_a_status_not_an_abort() {
    let exe = compile("defects_test.c", "slotring_defects_oom", &["-std=c11"]);
    // 4.5 GiB of address space: room for the program and a lazily mapped 3 GiB source
    // buffer, not for 256 GiB of slots nor for a second 3 GiB block.
    run_mode(&exe, "oom-init", Some(4_500_000));
    run_mode(&exe, "oom-heap", Some(4_500_000));
}

#[test]
#[cfg_attr(miri, ignore = "compiles and runs a C program")]
fn reentry_from_the_callback_is_misuse_not_a_deadlock() {
    let exe = compile("defects_test.c", "slotring_defects_reentry", &["-std=c11"]);
    for mode in ["reenter-set", "reenter-send", "recursion"] {
        run_mode(&exe, mode, None);
    }
}

#[test]
#[cfg_attr(miri, ignore = "compiles and runs a C program")]
fn racing_sends_deliver_once_and_token_none_is_foreign() {
    let exe = compile("defects_test.c", "slotring_defects_tokens", &["-std=c11"]);
    run_mode(&exe, "send-race", None);
    run_mode(&exe, "token-none", None);
}

#[test]
#[cfg_attr(miri, ignore = "compiles a C program")]
fn the_header_is_c99_and_cpp() {
    let exe = compile(
        "header_check.c",
        "slotring_header_c99",
        &["-std=c99", "-pedantic", "-Wpedantic"],
    );
    run_mode(&exe, "c99", None);
    // The same file as C++ (compiled only: linking C++ needs the C++ runtime).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".to_owned());
    let object = Path::new(env!("CARGO_TARGET_TMPDIR")).join("slotring_header_cpp.o");
    let status = Command::new(&cxx)
        .args([
            "-x",
            "c++",
            "-std=c++11",
            "-pedantic",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-c",
        ])
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("tests/c/header_check.c"))
        .arg("-o")
        .arg(&object)
        .status()
        .unwrap_or_else(|e| panic!("running the C++ compiler `{cxx}`: {e}"));
    assert!(status.success(), "slotring.h does not compile as C++11");
}
