//! The agent on a systemd host: containers are scopes of their own, so they outlive the
//! agent's service. These need systemd as the init system (the VM suite has it); set
//! HOLDFAST_REQUIRE_SYSTEMD=1 to fail instead of skipping. The moved-process test needs
//! only cgroup2 and also runs on hosts without systemd.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

/// systemd as the init system and a writable cgroup2, or why not.
fn systemd_host() -> Option<PathBuf> {
    let mount = cgroup2()?;
    if !systemd_booted() {
        skip(
            "HOLDFAST_REQUIRE_SYSTEMD",
            "needs systemd as the init system (/run/systemd/system)",
        );
        return None;
    }
    Some(mount)
}

fn systemctl(args: &[&str]) -> String {
    // Another test's `daemon-reexec` drops every connection to PID 1 for a moment:
    // systemctl then fails to connect, and trying again is what an operator would do.
    let mut attempts = 0;
    loop {
        let out = Command::new("systemctl")
            .args(args)
            .output()
            .expect("run systemctl");
        let err = String::from_utf8_lossy(&out.stderr);
        let reexec = err.contains("Transport endpoint is not connected")
            || err.contains("Connection reset by peer")
            || err.contains("Failed to connect to bus");
        if !out.status.success() && reexec && attempts < 20 {
            attempts += 1;
            std::thread::sleep(std::time::Duration::from_millis(500));
            continue;
        }
        assert!(out.status.success(), "systemctl {args:?}: {err}");
        return String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
}

/// The agent as a systemd service, from the unit file the project ships, with only
/// `ExecStart` (and `extra` lines) changed. Stopped and removed on drop; the agent's own
/// drop then destroys what the test left running.
struct Service {
    name: String,
    agent: Agent,
}

impl Service {
    fn install(mount: &Path, extra: &[&str]) -> Service {
        let agent = Agent::prepare(mount, &[]);
        let name = format!("{}.service", agent.root);
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../dist/systemd/holdfast-agent.service"
        ))
        .expect("shipped unit file");
        let exec = format!("ExecStart={BIN} {}", agent.args().join(" "));
        let mut unit = String::new();
        for line in shipped.lines() {
            if line.starts_with("ExecStart=") {
                unit.push_str(&exec);
                unit.push('\n');
                for e in extra {
                    unit.push_str(e);
                    unit.push('\n');
                }
            } else {
                unit.push_str(line);
                unit.push('\n');
            }
        }
        std::fs::write(format!("/run/systemd/system/{name}"), unit).expect("write unit");
        systemctl(&["daemon-reload"]);
        Service { name, agent }
    }

    fn main_pid(&self) -> i32 {
        systemctl(&["show", "-p", "MainPID", "--value", &self.name])
            .parse()
            .expect("MainPID")
    }

    fn state(&self) -> String {
        systemctl(&["show", "-p", "ActiveState", "--value", &self.name])
    }

    /// The processes in the agent's own cgroup.
    fn procs(&self) -> Vec<i32> {
        let cgroup = systemctl(&["show", "-p", "ControlGroup", "--value", &self.name]);
        let path = self
            .agent
            .mount
            .join(cgroup.trim_start_matches('/'))
            .join("cgroup.procs");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    }

    /// Nothing but the agent runs in the agent's unit.
    fn assert_only_agent_in_unit(&self) {
        assert_eq!(self.procs(), vec![self.main_pid()], "the agent's cgroup");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The agent's log is in the journal.
            let _ = Command::new("journalctl")
                .args(["--no-pager", "-n", "60", "-u", &self.name])
                .status();
        }
        let _ = Command::new("systemctl")
            .args(["stop", &self.name])
            .status();
        let _ = std::fs::remove_file(format!("/run/systemd/system/{}", self.name));
        let _ = Command::new("systemctl").arg("daemon-reload").status();
    }
}

fn exit_status(agent: &Agent, id: &str) -> Value {
    agent.wait(cid(id))["wait_container"]["exit_status"].clone()
}

/// Every leaf process of container `id` is in the container's leaf inside its scope.
fn assert_in_scope(agent: &Agent, id: &str) {
    let leaf = format!("/{}/holdfast-{id}.scope/container/leaf", agent.slice());
    let pids = agent.leaf_pids(id);
    assert!(!pids.is_empty(), "{id} has processes");
    for pid in pids {
        let Ok(cgroup) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            // A short-lived child (the loop's `sleep 0.1`) ended since the listing.
            continue;
        };
        if cgroup.is_empty() {
            continue;
        }
        assert_eq!(
            cgroup.trim(),
            format!("0::{leaf}"),
            "cgroup of {id}'s pid {pid}"
        );
    }
}

#[test]
fn containers_outlive_restart_and_stop_of_the_agent_service() {
    let Some(mount) = systemd_host() else { return };
    let go = tempfile::tempdir().expect("tempdir");
    let go_file = go.path().join("go");
    // Containers that end while the agent is down: released after the agent stopped.
    let svc = Service::install(
        &mount,
        &[&format!(
            "ExecStopPost=/bin/sh -c 'touch {}; sleep 1'",
            go_file.display()
        )],
    );
    // Type=notify: this returns once the agent said READY=1.
    systemctl(&["start", &svc.name]);
    assert_eq!(svc.state(), "active");
    let agent = &svc.agent;

    let runners: Vec<String> = (0..12).map(|i| format!("run{i:02}")).collect();
    let enders: Vec<String> = (0..8).map(|i| format!("end{i:02}")).collect();
    for id in &runners {
        agent.launch(id, "exec sleep 1000");
    }
    for id in &enders {
        agent.launch(
            id,
            &format!(
                "while [ ! -e {} ]; do sleep 0.1; done; exit 7",
                go_file.display()
            ),
        );
    }
    for id in runners.iter().chain(&enders) {
        assert_in_scope(agent, id);
    }
    svc.assert_only_agent_in_unit();
    let pids: Vec<Vec<i32>> = runners.iter().map(|id| agent.leaf_pids(id)).collect();
    let first_agent = svc.main_pid();

    systemctl(&["restart", &svc.name]);
    assert_eq!(svc.state(), "active");
    assert_ne!(svc.main_pid(), first_agent, "a new agent process");
    svc.assert_only_agent_in_unit();
    for (id, before) in runners.iter().zip(&pids) {
        assert_eq!(
            &agent.leaf_pids(id),
            before,
            "{id} ran on through the restart"
        );
        assert_in_scope(agent, id);
    }
    assert_eq!(agent.listed(), runners, "the survivors are reattached");
    for id in &enders {
        // exit 7 while the agent was away, collected from the supervisor's record.
        assert_eq!(exit_status(agent, id), 7 << 8, "{id}");
    }

    systemctl(&["stop", &svc.name]);
    assert_eq!(svc.state(), "inactive");
    for (id, before) in runners.iter().zip(&pids) {
        for pid in before {
            assert!(
                !is_dead(*pid),
                "{id}'s pid {pid} outlives the stopped agent"
            );
        }
    }
    systemctl(&["start", &svc.name]);
    svc.assert_only_agent_in_unit();
    assert_eq!(agent.listed(), runners, "recovered after stop and start");
    for (id, before) in runners.iter().zip(&pids) {
        assert_eq!(&agent.leaf_pids(id), before, "{id}");
    }

    for id in &runners {
        assert_eq!(agent.kill(cid(id), None).0, 200);
        assert_eq!(exit_status(agent, id), 9);
    }
    let slice = mount.join(agent.slice());
    wait_until("the scopes to be gone", Duration::from_secs(10), || {
        scopes_in(&slice).is_empty()
    });
}

/// The `holdfast-*` entries of a slice's cgroup (none if the slice is gone).
fn scopes_in(slice: &Path) -> Vec<String> {
    std::fs::read_dir(slice)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("holdfast-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn recovery_reports_a_process_moved_out_of_its_container() {
    let Some(mount) = cgroup2() else { return };
    let mut agent = Agent::start(&mount, &[]);
    agent.launch("moved", "exec sleep 1000");
    agent.launch("stays", "exec sleep 1000");
    let (status, body) = agent.call(json!({"type": "GET_CONTAINERS",
        "get_containers": {"show_standalone": true}}));
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).expect("json");
    let pid = listed["get_containers"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["container_id"]["value"] == "moved")
        .and_then(|c| c["container_status"]["executor_pid"].as_i64())
        .expect("workload pid") as i32;

    // Somewhere else entirely, as an operator's `echo $pid > .../cgroup.procs` would.
    let elsewhere = ForeignCgroup(mount.join(format!("{}-elsewhere", agent.root)));
    std::fs::create_dir(&elsewhere.0).expect("mkdir");
    std::fs::write(elsewhere.0.join("cgroup.procs"), pid.to_string()).expect("move");
    agent.kill9();
    agent.restart();

    let log = agent.log();
    let warning = log
        .lines()
        .find(|l| l.contains("moved out of the container's cgroup"))
        .unwrap_or_else(|| panic!("no warning in the log:\n{log}"));
    assert!(warning.contains("container=moved"), "{warning}");
    assert!(
        warning.contains(&format!("{}-elsewhere", agent.root)),
        "says where: {warning}"
    );
    let warned = log
        .lines()
        .filter(|l| l.contains("moved out of the container's cgroup"))
        .count();
    assert_eq!(warned, 1, "only the moved one:\n{log}");
    let (status, body) = agent.call(json!({"type": "GET_METRICS"}));
    assert_eq!(status, 200, "{body}");
    let metrics: Value = serde_json::from_str(&body).expect("json");
    let misplaced = metrics["get_metrics"]["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .find(|m| m["name"] == "containerizer/recovery/misplaced_containers")
        .map(|m| m["value"].clone());
    assert_eq!(misplaced, Some(json!(1.0)));

    // The container's kill no longer reaches it: `elsewhere` is cleaned up by hand.
    drop(elsewhere);
    assert!(is_dead(pid), "the moved process outlived its cgroup");
}

/// A cgroup a test made outside the agent's reach: on drop its processes are killed
/// and it is removed, once the kernel has let go of them (rmdir fails while the cgroup
/// is still populated), even when the test failed.
struct ForeignCgroup(PathBuf);

impl Drop for ForeignCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("cgroup.kill"), "1");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::remove_dir(&self.0).is_err() && self.0.exists() {
            if std::time::Instant::now() > deadline {
                eprintln!("could not remove {}", self.0.display());
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn daemon_reload_and_reexec_leave_container_limits_alone() {
    let Some(mount) = systemd_host() else { return };
    let agent = Agent::start(&mount, &[]);
    let (status, body) = agent.call(json!({"type": "LAUNCH_CONTAINER", "launch_container": {
        "container_id": {"value": "held"},
        "command": {"value": "exec sleep 1000", "shell": true},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}},
            {"name": "pids", "type": "SCALAR", "scalar": {"value": 50}}
        ],
        "limits": {"cpus": {"value": 1.0}, "mem": {"value": 128}}
    }}));
    assert_eq!(status, 200, "{body}");
    let files = [
        "cpu.weight",
        "cpu.max",
        "memory.low",
        "memory.high",
        "memory.max",
        "memory.oom.group",
        "pids.max",
    ];
    let cg = agent.cgroup("held");
    let snapshot = || -> Vec<(String, String)> {
        files
            .iter()
            .map(|f| {
                let v =
                    std::fs::read_to_string(cg.join(f)).unwrap_or_else(|e| panic!("read {f}: {e}"));
                (f.to_string(), v.trim().to_string())
            })
            .collect()
    };
    let before = snapshot();
    // The values the launch set, so that "unchanged" below means "still ours".
    assert!(before.contains(&("memory.max".into(), (128u64 << 20).to_string())));
    assert!(before.contains(&("cpu.max".into(), "100000 100000".into())));
    assert!(before.contains(&("pids.max".into(), "50".into())));

    systemctl(&["daemon-reload"]);
    assert_eq!(snapshot(), before, "after daemon-reload");
    systemctl(&["daemon-reexec"]);
    // systemctl returns once the new manager answers.
    systemctl(&["show", "-p", "Version", "--value"]);
    assert_eq!(snapshot(), before, "after daemon-reexec");
    assert_in_scope(&agent, "held");

    // The agent's connection to systemd died with the old manager; launches still work.
    agent.launch("after", "exec sleep 1000");
    assert_in_scope(&agent, "after");
}

#[test]
fn no_scope_or_cgroup_is_left_after_100_launch_and_exit_cycles() {
    let Some(mount) = cgroup2() else { return };
    let agent = Agent::start(&mount, &[]);
    std::thread::scope(|s| {
        for t in 0..4 {
            let agent = &agent;
            s.spawn(move || {
                for i in 0..25 {
                    let id = format!("cycle{t}x{i:02}");
                    agent.launch(&id, "exit 0");
                    assert_eq!(exit_status(agent, &id), 0, "{id}");
                    let (status, body) = agent.call(json!({"type": "REMOVE_CONTAINER",
                        "remove_container": {"container_id": {"value": id}}}));
                    assert_eq!(status, 200, "{body}");
                }
            });
        }
    });
    if agent.systemd() {
        let slice = mount.join(agent.slice());
        wait_until("no scope in the slice", Duration::from_secs(10), || {
            scopes_in(&slice).is_empty()
        });
        let units = systemctl(&[
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "holdfast-cycle*",
        ]);
        assert_eq!(units, "", "units left behind");
    } else {
        let left: Vec<_> = std::fs::read_dir(agent.cgroup_root())
            .expect("cgroups root")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "cgroups left behind: {left:?}");
    }
}
