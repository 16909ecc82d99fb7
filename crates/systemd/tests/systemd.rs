//! The client against the real systemd. These tests need systemd as PID 1 and root; they
//! skip and say why elsewhere, unless HOLDFAST_REQUIRE_SYSTEMD is set (then they fail).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use holdfast_systemd::{detect, Connection, Error, Scope};

fn have_systemd() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if detect::booted() && root {
        return true;
    }
    assert!(
        std::env::var_os("HOLDFAST_REQUIRE_SYSTEMD").is_none(),
        "HOLDFAST_REQUIRE_SYSTEMD is set, but this test needs systemd as PID 1 and root \
         (booted: {}, root: {root})",
        detect::booted()
    );
    eprintln!("skipped: needs systemd as PID 1 and root");
    false
}

/// Kills and reaps the child if a test fails before doing so itself.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn poll_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn scope_lifecycle() {
    if !have_systemd() {
        return;
    }
    let pid = std::process::id();
    let mut child = Reap(
        Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("spawn sleep"),
    );
    let child_pid = child.0.id();

    let started = Instant::now();
    let mut conn = Connection::system().expect("connect to systemd");
    let version = conn.version().expect("version");
    eprintln!(
        "systemd version {version}, connected in {:?}",
        started.elapsed()
    );
    assert!(
        version.starts_with(|c: char| c.is_ascii_digit()),
        "{version}"
    );

    let name = format!("holdfast-systemd-test-{pid}.scope");
    let slice = format!("holdfast_systemd_test_{pid}.slice");
    let started = Instant::now();
    conn.start_scope(&Scope {
        name: name.clone(),
        slice: slice.clone(),
        description: "holdfast-systemd integration test".to_owned(),
        pids: vec![child_pid],
        delegate: true,
        resources: Vec::new(),
    })
    .expect("start_scope");
    eprintln!("start_scope took {:?}", started.elapsed());

    let cgroup = std::fs::read_to_string(format!("/proc/{child_pid}/cgroup")).expect("read cgroup");
    let want = format!("/{slice}/{name}");
    assert!(cgroup.contains(&want), "{cgroup:?} lacks {want}");
    assert!(conn.unit_loaded(&name).expect("unit_loaded"));

    let dir: PathBuf = Path::new("/sys/fs/cgroup").join(&slice).join(&name);
    let controllers =
        std::fs::read_to_string(dir.join("cgroup.controllers")).expect("read cgroup.controllers");
    assert!(
        controllers.split_whitespace().any(|c| c == "memory"),
        "Delegate=yes should give the scope the memory controller: {controllers:?}"
    );

    let started = Instant::now();
    conn.kill_unit(&name, libc::SIGKILL).expect("kill_unit");
    let status = child.0.wait().expect("reap sleep");
    eprintln!("kill_unit + reap took {:?} ({status})", started.elapsed());
    let started = Instant::now();
    let gone = poll_until(Duration::from_secs(5), || {
        !conn.unit_loaded(&name).expect("unit_loaded") && !dir.exists()
    });
    assert!(
        gone,
        "scope {name} still loaded or {} still present",
        dir.display()
    );
    eprintln!("scope collected after {:?}", started.elapsed());

    // The slice was created for the scope; stopping it removes its cgroup.
    conn.stop_unit(&slice).expect("stop the slice");
    assert!(!Path::new("/sys/fs/cgroup").join(&slice).exists());
}

#[test]
fn scope_for_a_missing_process_fails() {
    if !have_systemd() {
        return;
    }
    // A pid near pid_max that is not in use.
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("read pid_max")
        .trim()
        .parse()
        .expect("parse pid_max");
    let missing = (2..pid_max)
        .rev()
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .expect("a free pid");

    let mut conn = Connection::system().expect("connect to systemd");
    let name = format!("holdfast-systemd-test-{}-nopid.scope", std::process::id());
    let started = Instant::now();
    let err = conn
        .start_scope(&Scope {
            name: name.clone(),
            pids: vec![missing],
            ..Scope::default()
        })
        .expect_err("a scope for a missing process must fail");
    eprintln!("start_scope failed after {:?}: {err}", started.elapsed());
    assert!(!matches!(err, Error::Timeout(_)), "{err}");
    // A refused transient unit leaves nothing behind (systemd may take a moment to
    // collect it).
    assert!(poll_until(Duration::from_secs(5), || {
        !conn.unit_loaded(&name).expect("unit_loaded")
    }));
}

#[test]
fn stopping_an_unknown_unit_succeeds() {
    if !have_systemd() {
        return;
    }
    let mut conn = Connection::system().expect("connect to systemd");
    let name = format!("holdfast-systemd-test-{}-absent.scope", std::process::id());
    conn.stop_unit(&name).expect("stop_unit of an unknown unit");
    conn.kill_unit(&name, libc::SIGKILL)
        .expect("kill_unit of an unknown unit");
    conn.reset_failed_unit(&name)
        .expect("reset_failed_unit of an unknown unit");
    assert!(!conn.unit_loaded(&name).expect("unit_loaded"));
}

/// The same operations through the system bus daemon (the path non-root callers and
/// hosts without the private socket use): Hello, AddMatch and Subscribe.
#[test]
fn scope_through_the_system_bus() {
    if !have_systemd() {
        return;
    }
    let bus = Path::new("/run/dbus/system_bus_socket");
    if !bus.exists() {
        eprintln!("skipped: no system bus at {}", bus.display());
        return;
    }
    let pid = std::process::id();
    let mut child = Reap(
        Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("spawn sleep"),
    );
    let child_pid = child.0.id();
    let started = Instant::now();
    let mut conn = Connection::connect(bus, true).expect("connect to the system bus");
    assert!(!conn.version().expect("version").is_empty());
    eprintln!("bus connection + version took {:?}", started.elapsed());

    let name = format!("holdfast-systemd-test-{pid}-bus.scope");
    let slice = format!("holdfast_systemd_test_{pid}_bus.slice");
    let started = Instant::now();
    conn.start_scope(&Scope {
        name: name.clone(),
        slice: slice.clone(),
        description: String::new(),
        pids: vec![child_pid],
        delegate: false,
        resources: Vec::new(),
    })
    .expect("start_scope over the bus");
    eprintln!("start_scope over the bus took {:?}", started.elapsed());
    let cgroup = std::fs::read_to_string(format!("/proc/{child_pid}/cgroup")).expect("read cgroup");
    assert!(cgroup.contains(&format!("/{slice}/{name}")), "{cgroup:?}");

    // stop_unit sends SIGTERM, which ends sleep; the stop job completes once it is gone.
    let started = Instant::now();
    conn.stop_unit(&name).expect("stop_unit over the bus");
    eprintln!("stop_unit over the bus took {:?}", started.elapsed());
    let _ = child.0.wait();
    assert!(poll_until(Duration::from_secs(5), || !conn
        .unit_loaded(&name)
        .expect("unit_loaded")));
    conn.stop_unit(&slice).expect("stop the slice");
}

/// Every fresh connection answers its first call at once. (systemd 252 left a call that
/// reached it in the same read as a late SASL BEGIN unprocessed until the client hung
/// up; this caught it most of the time.)
#[test]
fn fresh_connections_answer_their_first_call() {
    if !have_systemd() {
        return;
    }
    for i in 0..30 {
        let mut conn = Connection::system().expect("connect to systemd");
        conn.set_timeout(Duration::from_secs(10))
            .expect("set_timeout");
        let started = Instant::now();
        conn.version()
            .unwrap_or_else(|e| panic!("connection {i}: version: {e}"));
        assert!(started.elapsed() < Duration::from_secs(5), "connection {i}");
    }
}
