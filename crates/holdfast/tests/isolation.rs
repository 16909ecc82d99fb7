//! Limits enforced through cgroup v2 controllers. These need a host whose cgroup2 root
//! offers cpu, memory, pids and cpuset (the systemd VM of `tests/vm/run.sh`); elsewhere
//! they skip and say why, unless HOLDFAST_REQUIRE_CONTROLLERS is set.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

const NEEDED: [&str; 4] = ["cpu", "memory", "pids", "cpuset"];

/// The cgroup2 mount when it offers every controller these tests need.
fn controllers() -> Option<PathBuf> {
    let mount = cgroup2()?;
    let offered = std::fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
    let missing: Vec<&str> = NEEDED
        .iter()
        .copied()
        .filter(|c| !offered.split_whitespace().any(|o| o == *c))
        .collect();
    if missing.is_empty() {
        return Some(mount);
    }
    let why = format!(
        "the cgroup2 root at {} lacks the {} controller(s); run tests/vm/run.sh",
        mount.display(),
        missing.join(", ")
    );
    skip("HOLDFAST_REQUIRE_CONTROLLERS", &why);
    None
}

fn scalar(name: &str, value: f64) -> Value {
    json!({"name": name, "type": "SCALAR", "scalar": {"value": value}})
}

fn launch_with(agent: &Agent, id: &str, cmd: &str, resources: Value, limits: Value) {
    let (status, body) = agent.call(json!({"type": "LAUNCH_CONTAINER", "launch_container": {
        "container_id": {"value": id},
        "command": {"value": cmd},
        "resources": resources,
        "limits": limits,
    }}));
    assert_eq!(status, 200, "launch {id}: {body}");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

fn usage_usec(cgroup: &Path) -> u64 {
    read(&cgroup.join("cpu.stat"))
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.parse().ok())
        .expect("usage_usec")
}

/// CPUs used by each cgroup over `secs` seconds of wall time.
fn cpu_rates(cgroups: &[PathBuf], secs: f64) -> Vec<f64> {
    let before: Vec<u64> = cgroups.iter().map(|c| usage_usec(c)).collect();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let elapsed = start.elapsed().as_secs_f64();
    cgroups
        .iter()
        .zip(before)
        .map(|(c, b)| (usage_usec(c) - b) as f64 / 1e6 / elapsed)
        .collect()
}

#[test]
fn limits_land_in_the_container_cgroup() {
    let Some(mount) = controllers() else { return };
    let agent = Agent::start(&mount, &["--cgroups_default_pids_max=500"]);
    launch_with(
        &agent,
        "shaped",
        "exec sleep 1000",
        json!([scalar("cpus", 0.5), scalar("mem", 64.0)]),
        json!({"cpus": {"value": 1.5}, "mem": {"value": 128}}),
    );
    let cg = agent.cgroup("shaped");
    assert_eq!(read(&cg.join("cpu.weight")), "50");
    assert_eq!(read(&cg.join("cpu.max")), "150000 100000");
    assert_eq!(read(&cg.join("memory.max")), (128u64 << 20).to_string());
    assert_eq!(read(&cg.join("memory.low")), (64u64 << 20).to_string());
    // request + 0.9 × (limit − request), on a page boundary
    let high = (64u64 << 20) + ((0.9 * (64u64 << 20) as f64) as u64 / 4096 * 4096);
    assert_eq!(read(&cg.join("memory.high")), high.to_string());
    assert_eq!(read(&cg.join("memory.oom.group")), "1");
    assert_eq!(read(&cg.join("pids.max")), "500");
    // The leaf holds the processes and enables nothing for children.
    assert_eq!(read(&cg.join("leaf/cgroup.subtree_control")), "");

    let (status, body) =
        agent.call(json!({"type": "GET_CONTAINERS", "get_containers": {"show_standalone": true}}));
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    let stats = &v["get_containers"]["containers"][0]["resource_statistics"];
    assert_eq!(stats["cpus_limit"], 1.5, "{stats}");
    assert_eq!(stats["cpus_soft_limit"], 0.5, "{stats}");
    assert_eq!(stats["mem_limit_bytes"], 128u64 << 20, "{stats}");
    assert_eq!(stats["mem_soft_limit_bytes"], 64u64 << 20, "{stats}");
    assert!(stats["mem_total_bytes"].as_u64().is_some(), "{stats}");
    assert!(stats["mem_anon_bytes"].as_u64().is_some(), "{stats}");
    assert!(
        v["get_containers"]["containers"][0]["container_status"]
            .get("unenforced_limits")
            .is_none(),
        "everything is enforced here: {body}"
    );

    let (status, body) = agent.call(json!({"type": "LAUNCH_CONTAINER", "launch_container": {
        "container_id": {"value": "bad"},
        "command": {"value": "true"},
        "resources": [scalar("mem", 64.0)],
        "limits": {"mem": {"value": 32}},
    }}));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("below the request"), "{body}");
}

#[test]
fn an_oom_kill_is_a_memory_limitation_and_spares_the_neighbours() {
    let Some(mount) = controllers() else { return };
    let agent = Agent::start(&mount, &[]);
    launch_with(
        &agent,
        "calm",
        "exec sleep 1000",
        json!([scalar("mem", 64.0)]),
        json!({}),
    );
    let calm = agent.leaf_pids("calm");
    // dd with a 200 MB block allocates and fills a 200 MB buffer.
    launch_with(
        &agent,
        "hog",
        "exec dd if=/dev/zero of=/dev/null bs=200M count=1",
        json!([scalar("mem", 64.0)]),
        json!({}),
    );
    let wait = &agent.wait(cid("hog"))["wait_container"];
    assert_eq!(
        wait["reason"], "REASON_CONTAINER_LIMITATION_MEMORY",
        "{wait}"
    );
    assert_eq!(wait["state"], "TASK_FAILED", "{wait}");
    assert_eq!(wait["exit_status"], 9, "killed by the OOM killer: {wait}");
    let mem = &wait["limitation"]["resources"][0];
    assert_eq!(mem["name"], "mem", "{wait}");
    assert_eq!(mem["scalar"]["value"], 64.0, "{wait}");
    assert!(
        wait["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Memory limit exceeded")),
        "{wait}"
    );
    assert_eq!(agent.leaf_pids("calm"), calm, "the neighbour runs on");
    assert_eq!(agent.call(json!({"type": "GET_HEALTH"})).0, 200);
}

#[test]
fn a_busy_loop_limited_to_half_a_cpu_uses_half_a_cpu() {
    let Some(mount) = controllers() else { return };
    let agent = Agent::start(&mount, &[]);
    launch_with(
        &agent,
        "spin",
        "while :; do :; done",
        json!([scalar("cpus", 0.5)]),
        json!({"cpus": {"value": 0.5}}),
    );
    let cg = agent.cgroup("spin");
    let rate = cpu_rates(std::slice::from_ref(&cg), 5.0)[0];
    assert!((0.45..=0.55).contains(&rate), "used {rate:.3} cpus");
    let stat = read(&cg.join("cpu.stat"));
    assert!(
        stat.lines()
            .any(|l| l.starts_with("nr_throttled ") && l != "nr_throttled 0"),
        "throttled: {stat}"
    );
}

#[test]
fn weights_split_a_contended_cpu_one_to_three() {
    let Some(mount) = controllers() else { return };
    // Both on CPU 0, so that they contend; cpuset is not in the default --isolation.
    let agent = Agent::start(&mount, &["--isolation=cgroups/all"]);
    let cpu0 = json!({"name": "cpuset_cpus", "type": "RANGES", "ranges": {"range": [{"begin": 0, "end": 0}]}});
    for (id, cpus) in [("light", 0.25), ("heavy", 0.75)] {
        launch_with(
            &agent,
            id,
            "while :; do :; done",
            json!([scalar("cpus", cpus), cpu0.clone()]),
            json!({}),
        );
    }
    assert_eq!(read(&agent.cgroup("light").join("cpuset.cpus")), "0");
    let rates = cpu_rates(&[agent.cgroup("light"), agent.cgroup("heavy")], 5.0);
    let ratio = rates[1] / rates[0];
    assert!(
        (2.7..=3.3).contains(&ratio),
        "heavy/light = {ratio:.2} ({rates:?})"
    );
}

#[test]
fn a_fork_bomb_stops_at_pids_max_and_the_host_keeps_working() {
    let Some(mount) = controllers() else { return };
    let agent = Agent::start(&mount, &[]);
    launch_with(
        &agent,
        "bomb",
        "b() { b | b & }; b; sleep 1000",
        json!([scalar("pids", 64.0)]),
        json!({}),
    );
    let cg = agent.cgroup("bomb");
    wait_until("the bomb to hit pids.max", Duration::from_secs(60), || {
        read(&cg.join("pids.events"))
            .lines()
            .any(|l| l.starts_with("max ") && l != "max 0")
    });
    let current: u64 = read(&cg.join("pids.current"))
        .parse()
        .expect("pids.current");
    assert!(current <= 64, "pids.current {current}");
    agent.launch("neighbour", "echo fine");
    assert_eq!(
        agent.wait(cid("neighbour"))["wait_container"]["exit_status"],
        0
    );
    assert_eq!(agent.kill(cid("bomb"), None).0, 200);
    agent.wait(cid("bomb"));
    assert!(!cg.exists(), "the bomb's cgroup is gone");
}

#[test]
fn limits_and_oom_detection_survive_an_agent_restart() {
    let Some(mount) = controllers() else { return };
    let mut agent = Agent::start(&mount, &[]);
    // The late hog waits for the test's go (a file in its sandbox), not for a fixed
    // time: an agent restart under emulation can take longer than any sleep.
    let hog =
        "while [ ! -e go ]; do sleep 0.1; done; exec dd if=/dev/zero of=/dev/null bs=200M count=1";
    launch_with(
        &agent,
        "early",
        "exec dd if=/dev/zero of=/dev/null bs=200M count=1",
        json!([scalar("mem", 48.0)]),
        json!({}),
    );
    let early = agent.wait(cid("early"));
    assert_eq!(
        early["wait_container"]["reason"],
        "REASON_CONTAINER_LIMITATION_MEMORY"
    );
    launch_with(&agent, "late", hog, json!([scalar("mem", 48.0)]), json!({}));
    let cg = agent.cgroup("late");
    let max = read(&cg.join("memory.max"));
    agent.kill9();
    agent.restart();
    assert_eq!(read(&cg.join("memory.max")), max, "limits stay in place");
    let go = agent.work_dir().join("containers/late/go");
    std::fs::write(&go, "").unwrap_or_else(|e| panic!("write {}: {e}", go.display()));
    let late = agent.wait(cid("late"));
    assert_eq!(
        late["wait_container"]["reason"], "REASON_CONTAINER_LIMITATION_MEMORY",
        "an OOM after the restart is detected: {late}"
    );
    // The OOM from before the restart is reported as it was, once: same record.
    let term = agent
        .work_dir()
        .join("meta/containers/early/termination.json");
    let recorded = read(&term);
    agent.kill9();
    agent.restart();
    assert_eq!(agent.wait(cid("early")), early);
    assert_eq!(read(&term), recorded, "not recorded again");
}

#[test]
fn limits_that_are_not_enforced_are_named_in_the_status() {
    // Runs on any cgroup2 host: cgroups/mem is left out of --isolation, so a memory limit
    // goes unenforced everywhere, for a reason the status names.
    let Some(mount) = cgroup2() else { return };
    let agent = Agent::start(&mount, &["--isolation=cgroups/pids"]);
    launch_with(
        &agent,
        "loose",
        "exec sleep 1000",
        json!([scalar("mem", 64.0), scalar("pids", 100.0)]),
        json!({}),
    );
    let (status, body) =
        agent.call(json!({"type": "GET_CONTAINERS", "get_containers": {"show_standalone": true}}));
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    let unenforced = v["get_containers"]["containers"][0]["container_status"]["unenforced_limits"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        unenforced.iter().any(|u| u
            .as_str()
            .is_some_and(|u| u.contains("memory") && u.contains("--isolation"))),
        "{body}"
    );
    let offers_pids = std::fs::read_to_string(mount.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .any(|c| c == "pids");
    let pids_named = unenforced
        .iter()
        .any(|u| u.as_str().is_some_and(|u| u.contains("pids")));
    assert_eq!(
        pids_named, !offers_pids,
        "the pids limit is named exactly when the host lacks the controller: {body}"
    );
    assert_eq!(agent.cgroup("loose").join("pids.max").exists(), offers_pids);
}

#[test]
fn io_max_holds_writes_to_the_limit() {
    let Some(mount) = controllers() else { return };
    let Some(device) = std::env::var_os("HOLDFAST_TEST_BLOCK_DEVICE") else {
        skip(
            "HOLDFAST_REQUIRE_CONTROLLERS",
            "needs a scratch block device in HOLDFAST_TEST_BLOCK_DEVICE (the VM has one)",
        );
        return;
    };
    let device = device.to_string_lossy().into_owned();
    let agent = Agent::start(&mount, &[&format!("--cgroups_io_devices={device}")]);
    const LIMIT: u64 = 2 << 20;
    const TOTAL_MB: u64 = 16;
    // Direct writes to the raw device: no page cache between the workload and the limit.
    let cmd = format!(
        "exec dd if=/dev/zero of={device} bs=256k count={} oflag=direct",
        TOTAL_MB * 4
    );
    let start = Instant::now();
    launch_with(
        &agent,
        "writer",
        &cmd,
        json!([scalar("cpus", 0.5)]),
        json!({"io_write_bps": {"value": LIMIT}}),
    );
    let io_max = read(&agent.cgroup("writer").join("io.max"));
    assert!(io_max.contains(&format!("wbps={LIMIT}")), "{io_max}");
    let wait = agent.wait(cid("writer"));
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(wait["wait_container"]["exit_status"], 0, "{wait}");
    // dd's own time ("... copied, 8.0012 s, 2.1 MB/s"): the launch around it is no part
    // of the rate, and under emulation it takes seconds.
    let stderr = std::fs::read_to_string(agent.work_dir().join("containers/writer/stderr"))
        .expect("dd's stderr");
    let secs: f64 = stderr
        .split_once("copied, ")
        .and_then(|(_, rest)| rest.split_once(" s"))
        .and_then(|(secs, _)| secs.trim().parse().ok())
        .unwrap_or_else(|| panic!("no time in dd's output: {stderr}"));
    assert!(
        secs <= elapsed,
        "dd's {secs} s within the {elapsed:.2} s of the launch"
    );
    let rate = (TOTAL_MB << 20) as f64 / secs;
    let ratio = rate / LIMIT as f64;
    assert!(
        (0.8..=1.2).contains(&ratio),
        "wrote {TOTAL_MB} MiB in {secs:.2} s: {:.2} MiB/s against a limit of 2 MiB/s",
        rate / (1 << 20) as f64
    );
}

#[test]
fn a_nested_container_that_does_not_share_cgroups_gets_limits_of_its_own() {
    let Some(mount) = controllers() else { return };
    let agent = Agent::start(&mount, &[]);
    launch_with(
        &agent,
        "parent",
        "exec sleep 1000",
        json!([scalar("mem", 256.0)]),
        json!({}),
    );
    let launch_nested = |id: &str, share: bool, cmd: &str| {
        agent.call(json!({"type": "LAUNCH_CONTAINER", "launch_container": {
            "container_id": {"value": id, "parent": {"value": "parent"}},
            "command": {"value": cmd},
            "resources": [scalar("mem", 48.0)],
            "container": {"type": "MESOS", "linux_info": {"share_cgroups": share}},
        }}))
    };
    let (status, body) = launch_nested("sharing", true, "exec sleep 1000");
    assert_eq!(status, 200, "{body}");
    let (status, body) = launch_nested(
        "own",
        false,
        "exec dd if=/dev/zero of=/dev/null bs=200M count=1",
    );
    assert_eq!(status, 200, "{body}");
    let parent = agent.cgroup("parent");
    assert_eq!(read(&parent.join("memory.max")), (256u64 << 20).to_string());
    // Sharing: no limit of its own; the parent's applies.
    let sharing = parent.join("containers/sharing");
    assert!(
        !sharing.join("memory.max").exists() || read(&sharing.join("memory.max")) == "max",
        "a sharing container has no memory limit of its own"
    );
    let wait = agent.wait(json!({"value": "own", "parent": {"value": "parent"}}));
    assert_eq!(
        wait["wait_container"]["reason"], "REASON_CONTAINER_LIMITATION_MEMORY",
        "its own 48 MB limit, not the parent's 256 MB: {wait}"
    );
    assert_eq!(
        wait["wait_container"]["limitation"]["resources"][0]["scalar"]["value"],
        48.0
    );
    let (status, body) = agent.call(json!({"type": "GET_CONTAINERS", "get_containers": {"show_standalone": true, "show_nested": true}}));
    assert_eq!(status, 200);
    assert!(body.contains("\"sharing\""), "the sibling runs on: {body}");
    assert!(agent.leaf_pids("parent").len() == 2, "the parent runs on");
}

#[test]
fn a_top_level_container_cannot_share_cgroups() {
    let Some(mount) = cgroup2() else { return };
    let agent = Agent::start(&mount, &[]);
    let (status, body) = agent.call(json!({"type": "LAUNCH_CONTAINER", "launch_container": {
        "container_id": {"value": "top"},
        "command": {"value": "true"},
        "container": {"type": "MESOS", "linux_info": {"share_cgroups": true}},
    }}));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("share_cgroups"), "{body}");
}

#[test]
fn limits_are_updated_live_and_memory_is_lowered_only_when_asked() {
    let Some(mount) = controllers() else { return };
    let mut agent = Agent::start(&mount, &[]);
    // dd fills a 100 MB buffer, then blocks writing it into a pipe nobody reads: the
    // container holds about 100 MB for as long as it runs.
    launch_with(
        &agent,
        "grow",
        "dd if=/dev/zero bs=100M count=1 | sleep 1000",
        json!([scalar("cpus", 0.5), scalar("mem", 160.0)]),
        json!({}),
    );
    let cg = agent.cgroup("grow");
    wait_until("dd to fill its buffer", Duration::from_secs(60), || {
        read(&cg.join("memory.current"))
            .parse::<u64>()
            .is_ok_and(|v| v > 90 << 20)
    });
    let update = |mem: f64, lower: bool| {
        agent.call(json!({"type": "UPDATE_CONTAINER", "update_container": {
            "container_id": {"value": "grow"},
            "resources": [scalar("cpus", 1.0), scalar("mem", mem)],
            "lower_memory_limit": lower,
        }}))
    };
    assert_eq!(update(256.0, false), (200, String::new()));
    assert_eq!(read(&cg.join("memory.max")), (256u64 << 20).to_string());
    assert_eq!(read(&cg.join("cpu.weight")), "100");

    let (status, body) = update(192.0, false);
    assert_eq!(status, 409, "lowering needs asking: {body}");
    assert_eq!(read(&cg.join("memory.max")), (256u64 << 20).to_string());

    let (status, body) = update(64.0, true);
    assert_eq!(status, 409, "never below what it uses: {body}");
    assert!(body.contains("uses"), "{body}");
    assert_eq!(read(&cg.join("memory.max")), (256u64 << 20).to_string());

    assert_eq!(update(192.0, true), (200, String::new()));
    assert_eq!(read(&cg.join("memory.max")), (192u64 << 20).to_string());

    // The update is checkpointed: after a restart the statistics show the new limit.
    agent.kill9();
    agent.restart();
    let (_, body) =
        agent.call(json!({"type": "GET_CONTAINERS", "get_containers": {"show_standalone": true}}));
    let v: Value = serde_json::from_str(&body).expect("json");
    let stats = &v["get_containers"]["containers"][0]["resource_statistics"];
    assert_eq!(stats["mem_limit_bytes"], 192u64 << 20, "{stats}");
    assert_eq!(stats["cpus_soft_limit"], 1.0, "{stats}");
}
