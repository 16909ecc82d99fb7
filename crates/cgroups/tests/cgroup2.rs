//! Tests against the real cgroup2 hierarchy. Each test works only inside its own
//! uniquely named cgroup directly below the mount and removes it on exit; without root
//! or a writable cgroup2 they are skipped.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use holdfast_cgroups::{Cgroup, Error, Hierarchy, PressureResource};

const DESTROY_TIMEOUT: Duration = Duration::from_secs(5);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A test's own cgroup, destroyed (with anything left in it) when dropped.
struct TestCgroup {
    cgroup: Cgroup,
    relative: PathBuf,
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Err(err) = self.cgroup.destroy(DESTROY_TIMEOUT) {
            eprintln!("failed to clean up {}: {err}", self.cgroup.path().display());
        }
    }
}

/// Child processes that are killed and reaped when dropped, so a failing test leaves
/// nothing running.
#[derive(Default)]
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Children {
    /// Starts `sleep 100` and moves it into `cgroup`.
    fn spawn_sleep_in(&mut self, cgroup: &Cgroup) -> i32 {
        let child = Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("spawn sleep");
        let pid = i32::try_from(child.id()).expect("pid fits in i32");
        self.0.push(child);
        cgroup.add_proc(pid).expect("move sleep into cgroup");
        pid
    }

    /// Waits until every child has exited and checks that SIGKILL ended it.
    fn assert_all_killed(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        for child in &mut self.0 {
            let status = loop {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    break status;
                }
                assert!(
                    Instant::now() < deadline,
                    "pid {} still running",
                    child.id()
                );
                sleep(Duration::from_millis(5));
            };
            assert_eq!(status.signal(), Some(libc::SIGKILL), "pid {}", child.id());
        }
    }
}

/// Prints why the test is skipped, or fails when HOLDFAST_REQUIRE_CGROUP2 is set (CI).
fn skip(why: &str) {
    if std::env::var_os("HOLDFAST_REQUIRE_CGROUP2").is_some() {
        panic!("HOLDFAST_REQUIRE_CGROUP2 is set but this test cannot run: {why}");
    }
    eprintln!("{why}");
}

fn setup() -> Option<(Hierarchy, TestCgroup)> {
    const SKIP: &str = "skipped: needs root and a writable cgroup2 hierarchy";
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        skip(SKIP);
        return None;
    }
    let Ok(hierarchy) = Hierarchy::detect() else {
        skip(SKIP);
        return None;
    };
    let name = format!(
        "holdfast-test-cg-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let cgroup = hierarchy.root().child(&name);
    if let Err(err) = cgroup.create() {
        skip(&format!("{SKIP} ({err})"));
        return None;
    }
    Some((
        hierarchy,
        TestCgroup {
            cgroup,
            relative: PathBuf::from(name),
        },
    ))
}

#[test]
fn create_path_children_and_destroy() {
    let Some((hierarchy, test)) = setup() else {
        return;
    };
    let leaf = hierarchy
        .create_path(test.relative.join("a/b"), &[])
        .expect("create_path");
    assert_eq!(leaf.path(), test.cgroup.path().join("a/b"));
    assert!(leaf.exists());
    assert_eq!(test.cgroup.children().expect("children"), ["a"]);
    assert_eq!(test.cgroup.child("a").children().expect("children"), ["b"]);
    assert!(leaf.children().expect("children").is_empty());
    // Creating an existing path again is fine.
    hierarchy
        .create_path(test.relative.join("a/b"), &[])
        .expect("create_path again");

    test.cgroup.destroy(DESTROY_TIMEOUT).expect("destroy");
    assert!(!test.cgroup.exists());
    assert!(test.cgroup.children().expect_err("gone").is_not_found());
    test.cgroup.destroy(DESTROY_TIMEOUT).expect("destroy again");
}

#[test]
fn create_path_delegates_only_available_controllers() {
    let Some((_, test)) = setup() else {
        return;
    };
    // Rooting a hierarchy at the test cgroup keeps controller changes inside it.
    let local = Hierarchy::at(test.cgroup.path());
    let wanted = ["cpu", "memory", "pids", "io", "no-such-controller"];
    let leaf = local.create_path("x/y", &wanted).expect("create_path");
    assert!(leaf.exists());
    for cgroup in [&test.cgroup, &test.cgroup.child("x")] {
        let available = cgroup.controllers().expect("controllers");
        let enabled = cgroup.subtree_control().expect("subtree_control");
        for name in wanted {
            assert_eq!(
                enabled.iter().any(|e| e == name),
                available.iter().any(|a| a == name),
                "{name} in {}",
                cgroup.path().display()
            );
        }
    }
}

#[test]
fn enable_controllers_offers_only_available() {
    let Some((_, test)) = setup() else {
        return;
    };
    let available = test.cgroup.controllers().expect("controllers");
    let enabled = test
        .cgroup
        .enable_controllers(&["cpu", "memory", "pids"])
        .expect("enable_controllers");
    assert!(enabled.iter().all(|name| available.contains(name)));
    if available.is_empty() {
        // The controller-less cgroup2 of a hybrid host.
        assert!(enabled.is_empty());
    }
    let subtree = test.cgroup.subtree_control().expect("subtree_control");
    assert!(enabled.iter().all(|name| subtree.contains(name)));
}

#[test]
fn kill_kills_all_processes() {
    let Some((_, test)) = setup() else {
        return;
    };
    let nested = test.cgroup.child("nested");
    nested.create().expect("create nested");
    let mut children = Children::default();
    let mut pids = vec![
        children.spawn_sleep_in(&test.cgroup),
        children.spawn_sleep_in(&test.cgroup),
        children.spawn_sleep_in(&nested),
    ];
    pids.sort_unstable();
    assert_eq!(
        test.cgroup.procs_recursive().expect("procs_recursive"),
        pids
    );
    assert_eq!(nested.procs().expect("procs").len(), 1);
    assert!(test.cgroup.populated().expect("populated"));

    test.cgroup.kill().expect("kill");
    children.assert_all_killed();
    assert!(test.cgroup.procs_recursive().expect("procs").is_empty());
    assert!(!test.cgroup.populated().expect("populated"));
}

#[test]
fn fallback_kill_freezes_signals_and_thaws() {
    let Some((_, test)) = setup() else {
        return;
    };
    let nested = test.cgroup.child("nested");
    nested.create().expect("create nested");
    let mut children = Children::default();
    children.spawn_sleep_in(&test.cgroup);
    children.spawn_sleep_in(&nested);

    test.cgroup
        .kill_by_signal_fallback()
        .expect("kill_by_signal_fallback");
    children.assert_all_killed();
    // The thaw request is checked rather than `frozen` in cgroup.events: when frozen
    // members exit while the cgroup is being thawed, some kernels (seen on 6.18) leave
    // that flag at 1 in the now empty cgroup.
    assert_eq!(test.cgroup.read("cgroup.freeze").expect("read").trim(), "0");
    assert!(test.cgroup.procs_recursive().expect("procs").is_empty());
}

#[test]
fn freeze_and_thaw() {
    let Some((_, test)) = setup() else {
        return;
    };
    let mut children = Children::default();
    children.spawn_sleep_in(&test.cgroup);
    test.cgroup.freeze().expect("freeze");
    assert!(test.cgroup.frozen().expect("frozen"));
    test.cgroup.thaw().expect("thaw");
    wait_thawed(&test.cgroup);
}

/// The kernel clears `frozen` in `cgroup.events` shortly after the thaw write, not
/// during it.
fn wait_thawed(cgroup: &Cgroup) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while cgroup.frozen().expect("frozen") {
        assert!(Instant::now() < deadline, "still frozen after thaw");
        sleep(Duration::from_millis(2));
    }
}

#[test]
fn destroy_nested_tree_with_processes_in_leaf() {
    let Some((hierarchy, test)) = setup() else {
        return;
    };
    let leaf = hierarchy
        .create_path(test.relative.join("a/b/c"), &[])
        .expect("create_path");
    hierarchy
        .create_path(test.relative.join("a/other"), &[])
        .expect("create_path");
    let mut children = Children::default();
    children.spawn_sleep_in(&leaf);
    children.spawn_sleep_in(&leaf);

    // The killed processes are not reaped yet: destroy must cope with them exiting.
    test.cgroup.destroy(DESTROY_TIMEOUT).expect("destroy");
    assert!(!test.cgroup.exists());
    children.assert_all_killed();
}

#[test]
fn destroy_of_missing_cgroup_is_ok() {
    let Some((_, test)) = setup() else {
        return;
    };
    let missing = test.cgroup.child("never-created");
    missing.destroy(DESTROY_TIMEOUT).expect("destroy missing");
    missing.kill().expect("kill missing");
    assert!(missing.procs().expect_err("missing").is_not_found());
}

#[test]
fn kill_refuses_hierarchy_root() {
    let Some((hierarchy, _test)) = setup() else {
        return;
    };
    // Only checks the refusal; nothing is written to the root.
    assert!(matches!(
        hierarchy.root().kill(),
        Err(Error::NotKillable { .. })
    ));
}

#[test]
fn own_cgroup_and_cgroup_of_pid() {
    let Some((hierarchy, test)) = setup() else {
        return;
    };
    let own = hierarchy.own_cgroup().expect("own_cgroup");
    let own_cgroup = hierarchy.cgroup(&own);
    assert!(own_cgroup.exists(), "{}", own_cgroup.path().display());
    let me = i32::try_from(std::process::id()).expect("pid fits in i32");
    assert!(own_cgroup.procs().expect("procs").contains(&me));

    let mut children = Children::default();
    let pid = children.spawn_sleep_in(&test.cgroup);
    assert_eq!(
        hierarchy.cgroup_of_pid(pid).expect("cgroup_of_pid"),
        test.relative
    );
    assert_eq!(test.cgroup.procs().expect("procs"), [pid]);
}

#[test]
fn statistics() {
    let Some((_, test)) = setup() else {
        return;
    };
    let stat = test.cgroup.cpu_stat().expect("cpu_stat");
    assert!(stat.is_some(), "cpu.stat is a core file of every cgroup");
    // Present or not depending on controllers and kernel configuration; must not fail.
    test.cgroup.memory_current().expect("memory_current");
    test.cgroup.memory_peak().expect("memory_peak");
    test.cgroup.memory_stat().expect("memory_stat");
    test.cgroup.memory_events().expect("memory_events");
    for resource in [
        PressureResource::Cpu,
        PressureResource::Memory,
        PressureResource::Io,
    ] {
        test.cgroup.pressure(resource).expect("pressure");
    }
}

#[test]
fn open_dir_fd_of_cgroup() {
    let Some((_, test)) = setup() else {
        return;
    };
    let fd = test.cgroup.open_dir_fd().expect("open_dir_fd");
    let link = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
    .expect("readlink");
    assert_eq!(link, Path::new(test.cgroup.path()));
}
