//! `spawn` against the real kernel: the child starts in the requested cgroup, in its own
//! session, with the fds it was given and an empty signal mask; a failed exec says so; and
//! many spawns from several threads at once all come through (the vfork-mode child runs on
//! the parent's memory, so a mistake there shows up as corruption or a crash here).
//! Needs root and a writable cgroup2; skipped otherwise (HOLDFAST_REQUIRE_CGROUP2 fails
//! instead).

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use holdfast_cgroups::{Cgroup, Hierarchy};
use holdfast_process::{spawn, PidFd, SpawnError, SpawnRequest};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

struct TestCgroup {
    cgroup: Cgroup,
    relative: String,
    dir: OwnedFd,
    procs: File,
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Err(err) = self.cgroup.destroy(Duration::from_secs(5)) {
            eprintln!("failed to clean up {}: {err}", self.cgroup.path().display());
        }
    }
}

fn setup() -> Option<TestCgroup> {
    const SKIP: &str = "skipped: needs root and a writable cgroup2 hierarchy";
    let skip = |why: &str| {
        if std::env::var_os("HOLDFAST_REQUIRE_CGROUP2").is_some() {
            panic!("HOLDFAST_REQUIRE_CGROUP2 is set but this test cannot run: {why}");
        }
        eprintln!("{why}");
    };
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        skip(SKIP);
        return None;
    }
    let Ok(hierarchy) = Hierarchy::detect() else {
        skip(SKIP);
        return None;
    };
    let relative = format!(
        "holdfast-test-spawn-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let cgroup = hierarchy.root().child(&relative);
    if let Err(err) = cgroup.create() {
        skip(&format!("{SKIP} ({err})"));
        return None;
    }
    let dir = cgroup.open_dir_fd().expect("open the cgroup");
    let procs = File::options()
        .write(true)
        .open(cgroup.path().join("cgroup.procs"))
        .expect("open cgroup.procs");
    Some(TestCgroup {
        cgroup,
        relative,
        dir,
        procs,
    })
}

fn cstrings(items: &[&str]) -> Vec<CString> {
    items
        .iter()
        .map(|s| CString::new(*s).expect("no NUL"))
        .collect()
}

fn wait(pidfd: &PidFd) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = pidfd.try_reap().expect("waitid") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "pid {} never exited",
            pidfd.pid()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn spawn_sh(cg: &TestCgroup, script: &str, stdout: Option<&File>) -> Result<PidFd, SpawnError> {
    let argv = cstrings(&["sh", "-c", script]);
    let envp = cstrings(&["PATH=/usr/bin:/bin"]);
    let program = CString::new("/bin/sh").expect("no NUL");
    let fds: Vec<(i32, i32)> = stdout.map(|f| (f.as_raw_fd(), 1)).into_iter().collect();
    spawn(&SpawnRequest {
        program: &program,
        argv: &argv,
        envp: &envp,
        cgroup: cg.dir.as_fd(),
        cgroup_procs: cg.procs.as_fd(),
        fds: &fds,
        new_session: true,
    })
    .map(|s| s.pidfd)
}

fn blocked_signals_of_this_thread() -> libc::sigset_t {
    // SAFETY: reading this thread's mask into a zeroed set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set);
        set
    }
}

#[test]
fn the_child_starts_in_its_cgroup_and_session_with_its_fds_and_no_blocked_signals() {
    let Some(cg) = setup() else { return };
    let out = tempfile_in_tmp();
    // SIGUSR2 blocked here must not be blocked in the child, and stays blocked here.
    // SAFETY: adding one signal to this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let before = blocked_signals_of_this_thread();
    let pidfd = spawn_sh(
        &cg,
        "cat /proc/self/cgroup; \
         echo sid=$(cut -d' ' -f6 /proc/$$/stat) pid=$$; \
         grep SigBlk /proc/$$/status",
        Some(&out.1),
    )
    .expect("spawn");
    assert_eq!(wait(&pidfd), 0, "the script exits 0");
    let after = blocked_signals_of_this_thread();
    // SAFETY: sigismember on valid sets.
    unsafe {
        for sig in 1..libc::SIGRTMIN() {
            assert_eq!(
                libc::sigismember(&before, sig),
                libc::sigismember(&after, sig),
                "signal {sig}: the caller's mask is restored"
            );
        }
        assert_eq!(libc::sigismember(&after, libc::SIGUSR2), 1);
    }
    let text = take_output(&out.0);
    let cgroup_line = text
        .lines()
        .find(|l| l.starts_with("0::"))
        .unwrap_or_else(|| panic!("no cgroup2 line in {text:?}"));
    assert!(
        cgroup_line.ends_with(&format!("/{}", cg.relative)),
        "{cgroup_line}"
    );
    let ids = text
        .lines()
        .find(|l| l.starts_with("sid="))
        .unwrap_or_else(|| panic!("no sid line in {text:?}"));
    let (sid, pid) = ids
        .strip_prefix("sid=")
        .and_then(|r| r.split_once(" pid="))
        .unwrap_or_else(|| panic!("{ids}"));
    assert_eq!(sid, pid, "the child leads its own session");
    assert!(
        text.contains("SigBlk:\t0000000000000000"),
        "the child blocks no signal: {text}"
    );
}

#[test]
fn descriptors_the_caller_inherited_without_close_on_exec_do_not_reach_the_child() {
    let Some(cg) = setup() else { return };
    let out = tempfile_in_tmp();
    // dup() makes a descriptor without close-on-exec, as a parent that leaks one would;
    // a high one is the case close_range must reach.
    let null = File::open("/dev/null").expect("open /dev/null");
    // SAFETY: dup and dup2 of a descriptor we own; both results are closed below.
    let (leaked, high) = unsafe {
        let leaked = libc::dup(null.as_raw_fd());
        let high = libc::dup2(null.as_raw_fd(), 900);
        (leaked, high)
    };
    assert!(
        leaked >= 0 && high == 900,
        "dup: {}",
        std::io::Error::last_os_error()
    );
    let pidfd = spawn_sh(&cg, "ls /proc/self/fd", Some(&out.1));
    // SAFETY: closing the two descriptors made above.
    unsafe {
        libc::close(leaked);
        libc::close(high);
    }
    assert_eq!(wait(&pidfd.expect("spawn")), 0);
    let text = take_output(&out.0);
    let mut fds: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    fds.sort_unstable();
    // 0 and 2 are the test's own, 1 the output file, and `ls` opens one to list the
    // directory; neither leaked descriptor is there.
    assert!(!fds.contains(&leaked), "fd {leaked} leaked: {fds:?}");
    assert!(!fds.contains(&900), "fd 900 leaked: {fds:?}");
    assert!(fds.len() <= 4, "only stdio and ls's own: {fds:?}");
}

#[test]
fn a_failed_exec_names_the_stage_and_errno() {
    let Some(cg) = setup() else { return };
    let argv = cstrings(&["missing"]);
    let program = CString::new("/nonexistent/holdfast-missing").expect("no NUL");
    let err = spawn(&SpawnRequest {
        program: &program,
        argv: &argv,
        envp: &[],
        cgroup: cg.dir.as_fd(),
        cgroup_procs: cg.procs.as_fd(),
        fds: &[],
        new_session: false,
    })
    .expect_err("exec of a missing file fails");
    match err {
        SpawnError::Child { stage, source } => {
            assert_eq!(stage, "exec");
            assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
        }
        other => panic!("expected a child error, got {other:?}"),
    }
    assert!(cg.cgroup.procs().expect("procs").is_empty(), "nothing left");
}

#[test]
fn many_spawns_from_several_threads_all_come_through() {
    let Some(cg) = setup() else { return };
    let threads = 4;
    let per_thread = 50;
    std::thread::scope(|s| {
        for t in 0..threads {
            let cg = &cg;
            s.spawn(move || {
                for i in 0..per_thread {
                    let code = (t * per_thread + i) % 100;
                    let pidfd = spawn_sh(cg, &format!("exit {code}"), None).expect("spawn");
                    let status = wait(&pidfd);
                    assert_eq!(status, code << 8, "thread {t} spawn {i}");
                }
            });
        }
    });
}

/// A fresh file in the temp dir: its path and an open handle to write through.
/// What the child wrote to the output file, which is then removed.
fn take_output(path: &std::path::Path) -> String {
    let mut text = String::new();
    File::open(path)
        .expect("open output")
        .read_to_string(&mut text)
        .expect("read output");
    std::fs::remove_file(path).expect("remove output");
    text
}

fn tempfile_in_tmp() -> (std::path::PathBuf, File) {
    let path = std::env::temp_dir().join(format!(
        "holdfast-spawn-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let file = File::create(&path).expect("create output file");
    (path, file)
}
