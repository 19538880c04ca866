//! Liveness across real processes: `recover()` must never take a live attachment for a
//! dead one, whatever the holder does with its threads, pid namespace, `fork` or `exec`,
//! and must take back the holds of an attachment that is really gone.
//!
//! A test binary without the libtest harness (`harness = false`), because two scenarios
//! need control of a process's main thread and of `fork`: the main thread of a holder
//! exits while another thread keeps the process running, and the parent forks while it
//! is single-threaded. The binary plays the parent, or (with `SLOTRING_LIVENESS_ROLE` in
//! its environment) one of the helper roles below. Answers travel as lines on stdout.
//!
//! miri cannot spawn processes or map files: under miri the binary does nothing.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use slotring::shm::{RecoveryReport, ShmAllocator, ShmError, ShmOptions, ShmPtr};

const ROLE_ENV: &str = "SLOTRING_LIVENESS_ROLE";
const PATH_ENV: &str = "SLOTRING_LIVENESS_PATH";

fn main() {
    if cfg!(miri) {
        return;
    }
    if let Ok(role) = std::env::var(ROLE_ENV) {
        let path = PathBuf::from(std::env::var_os(PATH_ENV).expect("segment path"));
        match role.as_str() {
            "holder" => holder(&path, Mode::Serve),
            "zombie-main" => holder(&path, Mode::MainThreadExits),
            "exec" => holder(&path, Mode::Exec),
            "idle" => idle(),
            "create-loop" => create_loop(&path),
            "worker" => worker(&path),
            other => panic!("unknown role {other}"),
        }
        return;
    }
    // The fork scenario first, while this process has no other thread.
    run(
        "a forked child's drops leave the parent's holds",
        forked_child,
    );
    run(
        "a process whose main thread exited is alive",
        main_thread_exited,
    );
    run("a holder in another pid namespace is alive", pid_namespace);
    run("exec releases the holds of the old program", exec_releases);
    run("a killed holder is recovered", killed_holder);
    run(
        "a create killed midway leaves nothing behind",
        killed_creates,
    );
    run(
        "a storm of SIGKILLs leaks no slot and claims none twice",
        kill_storm,
    );
}

/// Runs one scenario (all, or those whose name contains `SLOTRING_LIVENESS_ONLY`).
fn run(name: &str, test: fn()) {
    if std::env::var("SLOTRING_LIVENESS_ONLY").is_ok_and(|only| !name.contains(&only)) {
        return;
    }
    print!("liveness: {name} ... ");
    std::io::stdout().flush().unwrap();
    test();
    println!("ok");
}

/// A segment file removed when the test ends.
struct TempSegment(PathBuf);

impl TempSegment {
    fn new(name: &str) -> Self {
        let dir = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let path = dir.join(format!("slotring-liveness-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Self(path)
    }
}

impl Drop for TempSegment {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn options() -> ShmOptions {
    ShmOptions::default().classes(&[(64, 4)]).max_processes(4)
}

// ---- helper roles ----

enum Mode {
    /// Serve `check` lines on the main thread until stdin closes.
    Serve,
    /// Serve on a second thread; the main thread exits (the raw `exit` system call ends
    /// only the calling thread), leaving the process in state `Z` to `/proc`.
    MainThreadExits,
    /// `exec` this binary as `idle`: the new program holds nothing.
    Exec,
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "@{line}").unwrap();
    out.flush().unwrap();
}

/// Opens the segment, turns the first stdin line (a token) into a handle, says `held`,
/// then answers `check` with the payload until stdin closes.
fn holder(path: &Path, mode: Mode) {
    let shm = ShmAllocator::open(path).expect("open the segment");
    let mut lines = std::io::stdin().lock().lines();
    let token: u64 = lines.next().unwrap().unwrap().trim().parse().unwrap();
    let ev = shm.from_token(token).expect("take the token");
    say("held");
    drop(lines); // `serve` locks stdin again
    match mode {
        Mode::Serve => serve(&ev),
        Mode::MainThreadExits => {
            std::thread::spawn(move || {
                serve(&ev);
                drop((ev, shm));
                std::process::exit(0);
            });
            // SAFETY: the raw `exit` system call ends this thread only; nothing of it is
            // used afterwards (no destructor runs, its stack is never touched again).
            unsafe { libc::syscall(libc::SYS_exit, 0) };
            unreachable!("the main thread exited");
        }
        Mode::Exec => {
            use std::os::unix::process::CommandExt;
            let err = Command::new(std::env::current_exe().unwrap())
                .env(ROLE_ENV, "idle")
                .exec();
            panic!("exec failed: {err}");
        }
    }
}

fn serve(ev: &ShmPtr) {
    for line in std::io::stdin().lock().lines() {
        match line.unwrap().trim() {
            "check" => say(&format!("payload {}", String::from_utf8_lossy(ev))),
            other => say(&format!("error unknown command {other}")),
        }
    }
}

/// Creates (replacing) a 16 MiB segment at `path` again and again, until killed.
fn create_loop(path: &Path) {
    let options = ShmOptions::default()
        .classes(&[(16384, 1024)])
        .max_processes(2)
        .replace_existing(true);
    say("creating");
    loop {
        drop(ShmAllocator::create(path, options.clone()).expect("create"));
    }
}

/// A 48-byte payload that checks itself: a sequence number and bytes derived from it.
fn stamped(seq: u64) -> [u8; 48] {
    let mut out = [0u8; 48];
    out[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in out[8..].iter_mut().enumerate() {
        *b = (seq.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8;
    }
    out
}

/// Allocates, re-reads, clones, takes holds through tokens and drops, as fast as it can,
/// until killed; panics (exit status 101) if a payload it holds ever changes, which a
/// slot claimed twice would do.
fn worker(path: &Path) {
    let shm = ShmAllocator::open(path).expect("open the segment");
    say("working");
    let base = u64::from(std::process::id()) << 32;
    let mut kept: std::collections::VecDeque<(u64, ShmPtr)> = Default::default();
    for seq in base.. {
        match shm.allocate(&stamped(seq), 0) {
            Ok(ev) => {
                let twin = shm.from_token(ev.to_token()).expect("own token");
                kept.push_back((seq, twin));
                kept.push_back((seq, ev.clone()));
                drop(ev);
            }
            Err(ShmError::Exhausted { .. }) => {}
            Err(e) => panic!("{e}"),
        }
        while kept.len() > 8 {
            kept.pop_front();
        }
        for (seq, ev) in &kept {
            assert_eq!(ev.payload(), &stamped(*seq)[..], "a held payload changed");
        }
    }
}

/// Says `idle` and waits for stdin to close.
fn idle() {
    say("idle");
    for _ in std::io::stdin().lock().lines() {}
}

// ---- the parent's side ----

struct Helper {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Helper {
    fn spawn(mut command: Command, role: &str, path: &Path) -> Self {
        let mut child = command
            .env(ROLE_ENV, role)
            .env(PATH_ENV, path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn a helper");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn own(role: &str, path: &Path) -> Self {
        Self::spawn(Command::new(std::env::current_exe().unwrap()), role, path)
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn answer(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "the helper closed its stdout"
            );
            if let Some(rest) = line.strip_prefix('@') {
                return rest.trim_end().to_string();
            }
        }
    }

    /// Closes stdin (the helper then exits) and reaps it.
    fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the helper failed: {status}");
    }
}

/// The state letter of `pid` in `/proc/<pid>/stat`.
fn proc_state(pid: u32) -> Option<char> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text[text.rfind(')')? + 1..].trim_start().chars().next()
}

/// The helper takes a hold on a fresh event; the parent drops its own handle, so the
/// helper's is the only one. Returns the token.
fn hand_over(shm: &ShmAllocator, helper: &mut Helper, text: &str) -> u64 {
    let ev = shm.allocate(text.as_bytes(), 1).unwrap();
    let token = ev.to_token();
    helper.send(&token.to_string());
    assert_eq!(helper.answer(), "held");
    drop(ev);
    token
}

fn main_thread_exited() {
    let seg = TempSegment::new("zombie-main");
    let shm = ShmAllocator::create(&seg.0, options()).unwrap();
    let mut helper = Helper::own("zombie-main", &seg.0);
    hand_over(&shm, &mut helper, "still mine");
    // Wait (no time limit asserted) for the main thread's exit to show.
    let pid = helper.child.id();
    while proc_state(pid) != Some('Z') {
        std::thread::yield_now();
    }
    let report = shm.recover();
    assert_eq!(report.processes, 0, "a live process was recovered");
    assert_eq!(shm.stats().in_use(), 1, "the live holder's slot was freed");
    // Reuse every other slot: the holder's payload must not change.
    let others: Vec<_> = (0..3).map(|_| shm.allocate(b"other", 2).unwrap()).collect();
    assert!(matches!(
        shm.allocate(b"x", 0),
        Err(ShmError::Exhausted { .. })
    ));
    helper.send("check");
    assert_eq!(helper.answer(), "payload still mine");
    drop(others);
    helper.finish(); // its serving thread drops everything, then exits
    shm.recover();
    assert_eq!((shm.stats().in_use(), shm.stats().attached), (0, 1));
}

fn pid_namespace() {
    // A new user namespace (so no privilege is needed) with a new pid namespace, in
    // which the helper is pid 1.
    let works = Command::new("unshare")
        .args(["--user", "--map-root-user", "--pid", "--fork", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        print!("(skipped: unshare cannot make namespaces here) ");
        return;
    }
    let seg = TempSegment::new("pidns");
    let shm = ShmAllocator::create(&seg.0, options()).unwrap();
    let mut command = Command::new("unshare");
    command
        .args(["--user", "--map-root-user", "--pid", "--fork"])
        .arg(std::env::current_exe().unwrap());
    let mut helper = Helper::spawn(command, "holder", &seg.0);
    hand_over(&shm, &mut helper, "namespaced");
    let report = shm.recover();
    assert_eq!(report.processes, 0, "a live process was recovered");
    assert_eq!(shm.stats().in_use(), 1, "the live holder's slot was freed");
    let others: Vec<_> = (0..3).map(|_| shm.allocate(b"other", 2).unwrap()).collect();
    helper.send("check");
    assert_eq!(helper.answer(), "payload namespaced");
    drop(others);
    helper.finish();
    shm.recover();
    assert_eq!((shm.stats().in_use(), shm.stats().attached), (0, 1));
}

fn exec_releases() {
    let seg = TempSegment::new("exec");
    let shm = ShmAllocator::create(&seg.0, options()).unwrap();
    let mut helper = Helper::own("exec", &seg.0);
    hand_over(&shm, &mut helper, "before exec");
    assert_eq!(helper.answer(), "idle", "the helper did not exec");
    let report = shm.recover();
    assert_eq!(
        (report.processes, report.slots_freed),
        (1, 1),
        "the old program's holds outlived its exec"
    );
    assert_eq!(shm.stats().in_use(), 0);
    helper.finish();
}

fn killed_holder() {
    let seg = TempSegment::new("killed");
    let shm = ShmAllocator::create(&seg.0, options()).unwrap();
    let mut helper = Helper::own("holder", &seg.0);
    hand_over(&shm, &mut helper, "doomed");
    assert_eq!(shm.recover().processes, 0);
    helper.child.kill().unwrap();
    helper.child.wait().unwrap();
    let report = shm.recover();
    assert_eq!((report.processes, report.slots_freed), (1, 1));
    assert_eq!(shm.stats().attached, 1);
}

fn forked_child() {
    let seg = TempSegment::new("fork");
    let shm = ShmAllocator::create(&seg.0, options()).unwrap();
    let ev = shm.allocate(b"parent's", 1).unwrap();
    let twin = ev.clone();
    // SAFETY: this process has one thread here (the scenarios that spawn threads run
    // later, and `Command` leaves none behind), so the child may run any code.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // The child: the inherited attachment refuses work, everything inherited is
        // dropped; then leave without running the parent's exit path.
        let refused = matches!(shm.allocate(b"child", 0), Err(ShmError::Forked))
            && matches!(shm.from_token(ev.to_token()), Err(ShmError::Forked))
            && shm.recover() == RecoveryReport::default()
            && ev.payload() == b"parent's";
        drop(twin);
        drop(ev);
        drop(shm);
        // SAFETY: `_exit` ends the child at once; it has no preconditions.
        unsafe { libc::_exit(if refused { 0 } else { 3 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "the child crashed");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the inherited attachment did not refuse work in the child"
    );
    assert_eq!(shm.stats().attached, 1, "the child detached the parent");
    assert_eq!(
        ShmPtr::process_count(&ev),
        1,
        "the child cleared the parent's hold"
    );
    assert_eq!(shm.stats().in_use(), 1);
    let others: Vec<_> = (0..3).map(|_| shm.allocate(b"other", 2).unwrap()).collect();
    assert_eq!(ev.payload(), b"parent's");
    assert_eq!(twin.payload(), b"parent's");
    drop((ev, twin, others));
    assert_eq!(shm.stats().in_use(), 0);
}

fn killed_creates() {
    let dir =
        std::env::temp_dir().join(format!("slotring-liveness-{}-creates", std::process::id()));
    let dir = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm").join(dir.file_name().unwrap())
    } else {
        dir
    };
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("seg");
    // Kill moments spread over the create loop's cycle (a pseudo-random walk).
    let mut delay = u64::from(std::process::id()) % 7;
    for _ in 0..8 {
        let mut helper = Helper::own("create-loop", &path);
        assert_eq!(helper.answer(), "creating");
        delay = (delay * 5 + 3) % 23;
        std::thread::sleep(std::time::Duration::from_millis(2 + delay));
        helper.child.kill().unwrap();
        helper.child.wait().unwrap();
    }
    // The next create in the directory sweeps what a kill could leave named (a complete
    // file between its link and its rename).
    let options = ShmOptions::default()
        .classes(&[(64, 1)])
        .replace_existing(true);
    drop(ShmAllocator::create(&path, options).unwrap());
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(names, ["seg"], "a killed create left files behind");
}

fn kill_storm() {
    use std::os::unix::process::ExitStatusExt;
    let kills: u32 = std::env::var("SLOTRING_STORM_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let seg = TempSegment::new("storm");
    let options = ShmOptions::default()
        .classes(&[(64, 64), (256, 16)])
        .max_processes(8);
    let shm = ShmAllocator::create(&seg.0, options).unwrap();
    let spawn = || {
        let mut w = Helper::own("worker", &seg.0);
        assert_eq!(w.answer(), "working");
        w
    };
    let mut workers: Vec<Helper> = (0..4).map(|_| spawn()).collect();
    let mut rng = u64::from(std::process::id()) | 1;
    for _ in 0..kills {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let victim = (rng % workers.len() as u64) as usize;
        std::thread::sleep(std::time::Duration::from_micros(rng % 3000));
        let mut w = workers.swap_remove(victim);
        w.child.kill().unwrap();
        let status = w.child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "a worker failed: {status}"
        );
        workers.push(spawn());
    }
    for mut w in workers {
        w.child.kill().unwrap();
        let status = w.child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "a worker failed: {status}"
        );
    }
    shm.recover();
    let stats = shm.stats();
    assert_eq!(stats.attached, 1);
    assert_eq!(stats.in_use(), 0, "slots leaked after {kills} kills");
    // Every slot can be claimed again.
    let all: Vec<_> = (0..stats.capacity())
        .map(|i| shm.allocate(&[i as u8], 0).unwrap())
        .collect();
    assert_eq!(all.len(), 80);
}
