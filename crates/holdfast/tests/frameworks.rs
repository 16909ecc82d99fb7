//! Frameworks run tasks end to end: a real master, a real agent registered with it
//! (`--master`), and a scheduler speaking the v1 scheduler API.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::cluster::{command_task, Master, Scheduler};
use support::{cgroup2, Agent};

/// A master and an agent registered with it, when this host can run containers.
fn cluster(agent_flags: &[&str]) -> Option<(Master, Agent)> {
    let mount = cgroup2()?;
    let master = Master::start(&[]);
    let mut flags = vec![format!("--master={}", master.addr())];
    flags.extend(agent_flags.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let agent = Agent::start(&mount, &flags);
    Some((master, agent))
}

/// Statuses by task, in arrival order, until every task in `tasks` is terminal.
fn run_until_terminal(
    s: &mut Scheduler,
    tasks: &[&str],
    mut on_update: impl FnMut(&Scheduler, &Value),
) -> BTreeMap<String, Vec<Value>> {
    let mut seen: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let terminal = |st: &str| {
        matches!(
            st,
            "TASK_FINISHED"
                | "TASK_FAILED"
                | "TASK_KILLED"
                | "TASK_ERROR"
                | "TASK_LOST"
                | "TASK_DROPPED"
        )
    };
    while !tasks.iter().all(|t| {
        seen.get(*t)
            .and_then(|v| v.last())
            .is_some_and(|st| terminal(st["state"].as_str().unwrap_or("")))
    }) {
        let status = s.next_update();
        on_update(s, &status);
        let task = status["task_id"]["value"].as_str().unwrap_or("").to_owned();
        seen.entry(task).or_default().push(status);
    }
    seen
}

/// How many tasks of `cpus` and `mem` the offer holds.
fn fits(offer: &Value, cpus: f64, mem: f64) -> usize {
    let scalar = |name: &str| {
        offer["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["name"] == name)
            .filter_map(|r| r["scalar"]["value"].as_f64())
            .sum::<f64>()
    };
    // Rounded as the master's fixed-point arithmetic would, so 0.3/0.1 counts 3.
    let n = |have: f64, each: f64| ((have + 1e-9) / each).floor() as usize;
    n(scalar("cpus"), cpus).min(n(scalar("mem"), mem))
}

fn states(statuses: &[Value]) -> Vec<&str> {
    statuses
        .iter()
        .map(|s| s["state"].as_str().unwrap_or(""))
        .collect()
}

#[test]
fn command_tasks_finish_fail_and_get_killed() {
    let Some((master, agent)) = cluster(&["--resources=cpus:4;mem:1024"]) else {
        return;
    };
    let mut s = Scheduler::subscribe(
        master.port,
        "e2e",
        &["TASK_KILLING_STATE", "PARTITION_AWARE"],
    );
    let offers = s.offers();
    assert_eq!(offers.len(), 1, "one agent, one offer: {offers:?}");
    let offer = &offers[0];
    let fid = s.id().to_owned();
    // The task checks the environment it runs in, as Mesos's command executor sets it.
    let env_check = format!(
        "test \"$MESOS_FRAMEWORK_ID\" = {fid} && test \"$MESOS_EXECUTOR_ID\" = t-ok && test -d \"$MESOS_SANDBOX\" && test \"$PWD\" = \"$MESOS_SANDBOX\" && test \"$MESOS_ALLOCATION_ROLE\" = '*'"
    );
    let mut long = command_task("t-long", "exec sleep 1000", 0.1);
    long["kill_policy"] = json!({"grace_period": {"nanoseconds": 5_000_000_000u64}});
    s.launch(
        offer,
        vec![
            command_task("t-ok", &env_check, 0.1),
            command_task("t-fail", "exit 3", 0.1),
            long,
            command_task("t-big", "true", 100.0),
        ],
    );
    let mut killed_at = None;
    let seen = run_until_terminal(&mut s, &["t-ok", "t-fail", "t-long", "t-big"], |s, st| {
        if st["task_id"]["value"] == "t-long" && st["state"] == "TASK_RUNNING" {
            s.kill("t-long");
            killed_at = Some(Instant::now());
        }
    });

    assert_eq!(
        states(&seen["t-ok"]),
        ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"],
        "{:#?}\n{}",
        seen["t-ok"],
        agent.log()
    );
    let finished = &seen["t-ok"][2];
    assert_eq!(finished["message"], "Command exited with status 0");
    assert_eq!(finished["source"], "SOURCE_EXECUTOR");
    assert_eq!(finished["executor_id"]["value"], "t-ok");
    assert!(finished["container_status"]["container_id"]["value"].is_string());

    assert_eq!(
        states(&seen["t-fail"]),
        ["TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"]
    );
    assert_eq!(seen["t-fail"][2]["message"], "Command exited with status 3");

    assert_eq!(
        states(&seen["t-long"]),
        [
            "TASK_STARTING",
            "TASK_RUNNING",
            "TASK_KILLING",
            "TASK_KILLED"
        ]
    );
    assert_eq!(
        seen["t-long"][3]["message"],
        "Command terminated with signal Terminated"
    );
    // sleep dies of SIGTERM at once: no need to wait out the 5 s grace period.
    assert!(killed_at.is_some_and(|t| t.elapsed() < Duration::from_secs(60)));

    // The master refuses a task larger than its offer, with a reason.
    let big = &seen["t-big"];
    assert_eq!(states(big), ["TASK_ERROR"]);
    assert!(
        big[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("more than available"),
        "{big:?}"
    );
}

#[test]
fn a_task_that_ignores_sigterm_is_killed_after_its_grace_period() {
    let Some((master, agent)) = cluster(&["--resources=cpus:1;mem:256"]) else {
        return;
    };
    let mut s = Scheduler::subscribe(master.port, "grace", &[]);
    let offers = s.offers();
    let mut task = command_task(
        "stubborn",
        "trap '' TERM; touch ready; while :; do sleep 0.1; done",
        0.1,
    );
    task["kill_policy"] = json!({"grace_period": {"nanoseconds": 1_000_000_000u64}});
    s.launch(&offers[0], vec![task]);
    let mut kill_sent = None;
    let seen = run_until_terminal(&mut s, &["stubborn"], |s, st| {
        if st["state"] == "TASK_RUNNING" {
            // Let the shell install its trap first.
            let dir = st["container_status"]["container_id"]["value"]
                .as_str()
                .map(|c| agent.work_dir().join("containers").join(c).join("ready"));
            let deadline = Instant::now() + Duration::from_secs(60);
            while !dir.as_ref().is_some_and(|d| d.exists()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            s.kill("stubborn");
            kill_sent = Some(Instant::now());
        }
    });
    let end = seen["stubborn"].last().expect("terminal");
    assert_eq!(end["state"], "TASK_KILLED", "{:#?}", seen["stubborn"]);
    // No TASK_KILLING: the framework did not ask for it.
    assert_eq!(
        states(&seen["stubborn"]),
        ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"]
    );
    assert_eq!(end["message"], "Command terminated with signal Killed");
    let took = kill_sent.map(|t| t.elapsed()).unwrap_or_default();
    assert!(
        took >= Duration::from_secs(1),
        "killed before its grace period: {took:?}"
    );
}

#[test]
fn a_hundred_command_tasks_all_finish_and_are_acknowledged() {
    let Some((master, agent)) = cluster(&["--resources=cpus:8;mem:8192"]) else {
        return;
    };
    let mut s = Scheduler::subscribe(master.port, "hundred", &[]);
    let total = 100;
    let mut launched = 0;
    // An update not acknowledged within 10 s is sent again (a slow machine, a busy
    // framework): count each (task, uuid) once, as a framework must.
    let mut finished = std::collections::BTreeSet::new();
    let mut updates = std::collections::BTreeSet::new();
    while finished.len() < total {
        // Offers and updates interleave on the stream; launch on every offer until all
        // tasks are out, and count the updates (each acknowledged as it arrives).
        let event = s.events.next().expect("stream open");
        match event["type"].as_str() {
            Some("OFFERS") => {
                for offer in event["offers"]["offers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                {
                    let n = (total - launched).min(fits(&offer, 0.1, 32.0));
                    let tasks: Vec<Value> = (launched..launched + n)
                        .map(|i| command_task(&format!("task-{i}"), "true", 0.1))
                        .collect();
                    launched += n;
                    if tasks.is_empty() {
                        s.call(json!({"type": "DECLINE", "decline": {"offer_ids": [offer["id"]]}}));
                    } else {
                        s.launch(&offer, tasks);
                    }
                }
            }
            Some("UPDATE") => {
                let status = event["update"]["status"].clone();
                updates.insert((
                    status["task_id"]["value"].to_string(),
                    status["uuid"].to_string(),
                ));
                // Updates the master makes up have no uuid; none is expected here, and
                // the match below says which one came.
                if status.get("uuid").is_some() {
                    s.call(json!({"type": "ACKNOWLEDGE", "acknowledge": {
                        "agent_id": status["agent_id"], "task_id": status["task_id"],
                        "uuid": status["uuid"]}}));
                }
                match status["state"].as_str() {
                    Some("TASK_FINISHED") => {
                        finished.insert(status["task_id"]["value"].to_string());
                    }
                    Some("TASK_STARTING") | Some("TASK_RUNNING") => {}
                    other => panic!(
                        "unexpected {other:?}: {status}\n{}\n{}",
                        agent.log(),
                        master.log()
                    ),
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        updates.len(),
        3 * total,
        "STARTING, RUNNING and FINISHED for each task"
    );

    // The agent shows them completed once its last acknowledgements are in.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, body) = agent.call(json!({"type": "GET_STATE"}));
        assert_eq!(status, 200, "{body}");
        let state: Value = serde_json::from_str(&body).expect("json");
        let tasks = &state["get_state"]["get_tasks"];
        let completed = tasks["completed_tasks"].as_array().map_or(0, Vec::len);
        if completed == total {
            assert!(tasks["completed_tasks"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|t| t["state"] == "TASK_FINISHED" && t["framework_id"]["value"] == s.id()));
            assert_eq!(tasks["launched_tasks"], json!([]));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{completed} of {total} completed: {tasks}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) =
        support::raw_request(agent.port, "GET", "/state", None, "").expect("/state");
    assert_eq!(status, 200);
    let legacy: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(legacy["frameworks"][0]["id"], s.id());
    assert_eq!(
        legacy["frameworks"][0]["completed_executors"]
            .as_array()
            .map_or(0, Vec::len),
        total
    );
}

fn b64(text: &str) -> String {
    holdfast_api::base64::encode(text.as_bytes())
}

fn unb64(data: &Value) -> String {
    let bytes = holdfast_api::base64::decode(data.as_str().unwrap_or("")).expect("base64");
    String::from_utf8(bytes).expect("utf8")
}

#[test]
fn a_custom_executor_runs_tasks_and_exchanges_messages() {
    let Some((master, agent)) = cluster(&["--resources=cpus:2;mem:1024"]) else {
        return;
    };
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/executors/echo_executor.py"
    );
    let mut s = Scheduler::subscribe(master.port, "executor", &["TASK_KILLING_STATE"]);
    let offers = s.offers();
    let executor = json!({
        "type": "CUSTOM", "executor_id": {"value": "echo"},
        "command": {"value": format!("exec python3 {script}")},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 64.0}}]});
    let task = |id: &str| {
        let mut t = command_task(id, "unused", 0.1);
        t.as_object_mut().map(|o| o.remove("command"));
        t["executor"] = executor.clone();
        t
    };
    s.launch(&offers[0], vec![task("e1"), task("e2")]);

    // Both tasks start, and the executor says so in a message for each.
    let mut running = 0;
    let mut ready = Vec::new();
    while running < 2 || ready.len() < 2 {
        let event = s.events.next().expect("stream open");
        match event["type"].as_str() {
            Some("UPDATE") => {
                let st = &event["update"]["status"];
                assert_eq!(st["state"], "TASK_RUNNING", "{event}\n{}", agent.log());
                assert_eq!(st["executor_id"]["value"], "echo");
                assert_eq!(st["source"], "SOURCE_EXECUTOR");
                s.call(json!({"type": "ACKNOWLEDGE", "acknowledge": {
                    "agent_id": st["agent_id"], "task_id": st["task_id"], "uuid": st["uuid"]}}));
                running += 1;
            }
            Some("MESSAGE") => {
                assert_eq!(event["message"]["executor_id"]["value"], "echo");
                ready.push(unb64(&event["message"]["data"]));
            }
            _ => {}
        }
    }
    ready.sort();
    assert_eq!(ready, ["ready e1", "ready e2"]);

    // A message to the executor comes back, and finishes the oldest task.
    let agent_id = offers[0]["agent_id"].clone();
    s.call(json!({"type": "MESSAGE", "message": {
        "agent_id": agent_id, "executor_id": {"value": "echo"}, "data": b64("ping")}}));
    let echo = s.events.next_of("MESSAGE");
    assert_eq!(unb64(&echo["message"]["data"]), "echo: ping");
    let done = s.next_update();
    assert_eq!(done["task_id"]["value"], "e1");
    assert_eq!(done["state"], "TASK_FINISHED");
    assert_eq!(done["message"], "answered ping");

    // KILL goes to the executor, which reports the task killed.
    s.kill("e2");
    let killed = s.next_update();
    assert_eq!(
        (&killed["task_id"]["value"], &killed["state"]),
        (&json!("e2"), &json!("TASK_KILLED"))
    );

    // TEARDOWN: the executor is told to shut down and its container ends.
    s.call(json!({"type": "TEARDOWN"}));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let python_left = std::process::Command::new("pgrep")
            .args(["-f", script])
            .output()
            .map(|o| !o.stdout.is_empty())
            .unwrap_or(false);
        if !python_left {
            break;
        }
        if Instant::now() > deadline {
            let ps = std::process::Command::new("ps")
                .args(["-ef", "--forest"])
                .output()
                .expect("ps");
            panic!(
                "executor still running after TEARDOWN\n{}\n{}\n{}",
                String::from_utf8_lossy(&ps.stdout),
                agent.log(),
                master.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its sandbox stays for the operator to read.
    let sandboxes = std::fs::read_dir(agent.work_dir().join("containers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        sandboxes, 1,
        "the executor's sandbox is kept after TEARDOWN"
    );
}

#[test]
fn holdfast_execute_runs_one_task_and_exits_with_its_status() {
    let Some((master, _agent)) = cluster(&["--resources=cpus:1;mem:256"]) else {
        return;
    };
    let run = |command: &str| {
        std::process::Command::new(support::BIN)
            .args(["execute", "--master", &format!("http://{}", master.addr())])
            .args(["--command", command, "--resources", "cpus:0.1;mem:32"])
            .output()
            .expect("holdfast execute")
    };
    let ok = run("echo hello");
    let out = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for line in [
        "Received status update TASK_STARTING",
        "Received status update TASK_RUNNING",
        "Received status update TASK_FINISHED",
    ] {
        assert!(out.contains(line), "{line} missing from:\n{out}");
    }
    let failed = run("exit 7");
    let out = String::from_utf8_lossy(&failed.stdout);
    assert_eq!(failed.status.code(), Some(7), "{out}");
    assert!(
        out.contains("message: Command exited with status 7"),
        "{out}"
    );
    // Too big for any offer: a clear error after the offer timeout, not a hang.
    let big = std::process::Command::new(support::BIN)
        .args(["execute", "--master", &master.addr(), "--command", "true"])
        .args(["--resources", "cpus:64", "--offer_timeout", "2secs"])
        .output()
        .expect("holdfast execute");
    let err = String::from_utf8_lossy(&big.stderr);
    assert_eq!(big.status.code(), Some(1), "{:?}: {err}", big.status);
    assert!(err.contains("no offer with cpus:64 arrived"), "{err}");
}

#[test]
fn holdfast_local_is_a_cluster_of_one() {
    let Some(mount) = cgroup2() else {
        return;
    };
    // The harness's names and dirs, so that dropping it cleans up what the agent made.
    let mut agent = Agent::prepare(&mount, &[]);
    let master_port = support::free_port();
    let log = std::fs::File::create(agent.dir.path().join("agent.log")).expect("log");
    let child = std::process::Command::new(support::BIN)
        .arg("local")
        .arg(format!("--port={master_port}"))
        .arg(format!("--agent_port={}", agent.port))
        .arg(format!(
            "--work_dir={}",
            agent.dir.path().join("local").display()
        ))
        .arg(format!("--runtime_dir={}", agent.runtime_dir().display()))
        .arg(format!(
            "--agent_flag=--work_dir={}",
            agent.work_dir().display()
        ))
        .arg(format!("--agent_flag=--cgroups_root={}", agent.root))
        .arg(format!(
            "--agent_flag=--cgroups_hierarchy={}",
            mount.display()
        ))
        .arg(format!(
            "--agent_flag=--systemd_containers_slice={}",
            agent.slice()
        ))
        .arg("--logging_level=WARNING")
        .stderr(log)
        .spawn()
        .expect("holdfast local");
    agent.child = Some(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while support::raw_request(master_port, "GET", "/health", None, "")
        .map(|r| r.0)
        .ok()
        != Some(200)
    {
        assert!(
            Instant::now() < deadline,
            "the local master did not come up\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = std::process::Command::new(support::BIN)
        .args(["execute", "--master", &format!("127.0.0.1:{master_port}")])
        .args([
            "--command",
            "echo hello from local",
            "--offer_timeout",
            "2mins",
        ])
        .output()
        .expect("holdfast execute");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        agent.log()
    );
    assert!(stdout.contains("TASK_FINISHED"), "{stdout}");
}

#[test]
fn an_update_made_while_the_master_was_away_reaches_the_framework() {
    let Some((mut master, agent)) = cluster(&["--resources=cpus:1;mem:256"]) else {
        return;
    };
    let info = json!({"user": "root", "name": "patient", "failover_timeout": 3600.0,
                      "capabilities": [{"type": "PARTITION_AWARE"}]});
    let mut s = Scheduler::subscribe_as(master.port, info.clone());
    let offers = s.offers();
    // The task ends when told to, through a file in its sandbox.
    s.launch(
        &offers[0],
        vec![command_task(
            "waiter",
            "while [ ! -e go ]; do sleep 0.05; done",
            0.1,
        )],
    );
    let mut sandbox = None;
    while sandbox.is_none() {
        let st = s.next_update();
        if st["state"] == "TASK_RUNNING" {
            let cid = st["container_status"]["container_id"]["value"]
                .as_str()
                .expect("container id")
                .to_owned();
            sandbox = Some(agent.work_dir().join("containers").join(cid));
        }
    }
    let agent_id = offers[0]["agent_id"]["value"].clone();
    let framework_id = s.id().to_owned();

    // The master dies; meanwhile the task finishes and the agent keeps the update.
    master.kill9();
    drop(s);
    std::fs::write(sandbox.expect("sandbox").join("go"), "").expect("go");
    std::thread::sleep(Duration::from_millis(500));
    master.restart(&[]);

    // The framework comes back under its id; the agent registers again under its own,
    // and the update it kept arrives and is acknowledged.
    let mut info = info;
    info["id"] = json!({ "value": framework_id });
    let mut s = Scheduler::subscribe_as(master.port, info);
    let finished = loop {
        let st = s.next_update();
        if st["task_id"]["value"] == "waiter" && st["state"] == "TASK_FINISHED" {
            break st;
        }
    };
    assert_eq!(finished["agent_id"]["value"], agent_id, "the same agent id");
    assert_eq!(finished["message"], "Command exited with status 0");
    // Once acknowledged, the agent lists it completed.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, body) = agent.call(json!({"type": "GET_TASKS"}));
        let v: Value = serde_json::from_str(&body).expect("json");
        if v["get_tasks"]["completed_tasks"][0]["task_id"]["value"] == "waiter" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not completed: {body}\n{}",
            master.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- Task groups ----------------------------------------------------------------------

/// A DEFAULT executor (the agent's built-in one) with 0.1 cpus and 32 MB of its own.
fn default_executor(id: &str) -> Value {
    json!({"type": "DEFAULT", "executor_id": {"value": id},
           "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                         {"name": "mem", "type": "SCALAR", "scalar": {"value": 32.0}}]})
}

fn is_terminal(status: &Value) -> bool {
    matches!(
        status["state"].as_str().unwrap_or(""),
        "TASK_FINISHED"
            | "TASK_FAILED"
            | "TASK_KILLED"
            | "TASK_ERROR"
            | "TASK_LOST"
            | "TASK_DROPPED"
    )
}

/// What a framework saw: updates by task in arrival order, and executors that exited.
#[derive(Default)]
struct Seen {
    updates: BTreeMap<String, Vec<Value>>,
    /// FAILURE events: executors that exited, with their status.
    exited: Vec<Value>,
}

impl Seen {
    fn ended(&self, tasks: &[&str]) -> bool {
        tasks.iter().all(|t| {
            self.updates
                .get(*t)
                .and_then(|v| v.last())
                .is_some_and(is_terminal)
        })
    }

    /// The FAILURE event of `executor`, if it exited.
    fn exit_of(&self, executor: &str) -> Option<&Value> {
        self.exited
            .iter()
            .find(|f| f["executor_id"]["value"] == executor)
    }

    fn reached(&self, task: &str, state: &str) -> bool {
        self.updates
            .get(task)
            .is_some_and(|v| v.iter().any(|s| s["state"] == state))
    }

    /// The task's container id as Mesos prints it (`parent.child`).
    fn container(&self, task: &str) -> String {
        let running = self.updates[task]
            .iter()
            .find(|s| s["state"] == "TASK_RUNNING")
            .unwrap_or_else(|| panic!("{task} never ran: {:?}", self.updates[task]));
        support::id_string(&running["container_status"]["container_id"])
    }
}

/// Reads the framework's events into `seen` until `done`: updates are acknowledged and
/// passed to `on_update`, offers declined (they come back at the next allocation).
fn watch(
    s: &mut Scheduler,
    seen: &mut Seen,
    mut on_update: impl FnMut(&Scheduler, &Seen, &Value),
    done: impl Fn(&Seen) -> bool,
) {
    while !done(seen) {
        let event = s.events.next().expect("stream open");
        match event["type"].as_str() {
            Some("UPDATE") => {
                let status = event["update"]["status"].clone();
                s.acknowledge(&status);
                let task = status["task_id"]["value"].as_str().unwrap_or("").to_owned();
                seen.updates.entry(task).or_default().push(status.clone());
                on_update(s, seen, &status);
            }
            Some("FAILURE") => seen.exited.push(event["failure"].clone()),
            Some("OFFERS") => decline_all(s, &event),
            _ => {}
        }
    }
}

fn decline_all(s: &Scheduler, offers: &Value) {
    let ids: Vec<Value> = offers["offers"]["offers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| o["id"].clone())
        .collect();
    if !ids.is_empty() {
        s.call(json!({"type": "DECLINE", "decline": {"offer_ids": ids,
                      "filters": {"refuse_seconds": 0.0}}}));
    }
}

/// Waits until the framework holds offers for all of the agent's `cpus` and `mem`:
/// nothing is held by tasks or executors any more. Offers are kept, not declined, while
/// waiting: what is freed meanwhile comes as further offers, which add up.
fn wait_for_everything_offered(s: &mut Scheduler, cpus: f64, mem: f64, agent: &support::Agent) {
    let deadline = Instant::now() + support::cluster::EVENT_TIMEOUT;
    let mut held: Vec<Value> = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "resources never all came back: offered {held:?}\n{}",
            agent.log()
        );
        let event = s.events.next().expect("stream open");
        match event["type"].as_str() {
            Some("OFFERS") => {
                held.extend(
                    event["offers"]["offers"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            Some("RESCIND") => {
                let gone = &event["rescind"]["offer_id"];
                held.retain(|o| &o["id"] != gone);
            }
            _ => continue,
        }
        let all = json!({"resources": held
            .iter()
            .flat_map(|o| o["resources"].as_array().cloned().unwrap_or_default())
            .collect::<Vec<_>>()});
        if fits(&all, cpus, mem) == 1 {
            decline_all(s, &json!({"offers": {"offers": held}}));
            return;
        }
    }
}

/// `cpus_soft_limit` (its cpus request) of the agent's top-level container `id`.
fn container_cpus(agent: &support::Agent, id: &str) -> Option<f64> {
    let (status, body) =
        agent.call(json!({"type": "GET_CONTAINERS", "get_containers": {"show_standalone": true}}));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    v["get_containers"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["container_id"]["value"] == id && c["container_id"].get("parent").is_none())
        .and_then(|c| c["resource_statistics"]["cpus_soft_limit"].as_f64())
}

fn wait_for_cpus(agent: &support::Agent, id: &str, cpus: f64) {
    support::wait_until(
        &format!("executor container {id} sized for {cpus} cpus"),
        Duration::from_secs(60),
        || container_cpus(agent, id).is_some_and(|c| (c - cpus).abs() < 1e-6),
    );
}

#[test]
fn a_task_group_runs_on_the_default_executor_which_exits_after_it() {
    let Some((master, agent)) = cluster(&["--resources=cpus:2;mem:1024"]) else {
        return;
    };
    let mut s = Scheduler::subscribe(master.port, "pods", &[]);
    let offers = s.offers();
    let fid = s.id().to_owned();
    // Each task checks the environment Mesos's default executor gives it.
    let task = |id: &str| {
        command_task(
            id,
            &format!(
                "test \"$PWD\" = \"$MESOS_SANDBOX\" && test \"$MESOS_ALLOCATION_ROLE\" = '*' && test -n \"$MESOS_CONTAINER_IP\" && echo hello from {id}"
            ),
            0.5,
        )
    };
    s.launch_group(
        &offers[0],
        &default_executor("pod"),
        vec![task("web"), task("side")],
    );
    let mut seen = Seen::default();
    watch(
        &mut s,
        &mut seen,
        |_, _, _| {},
        |seen| seen.ended(&["web", "side"]) && !seen.exited.is_empty(),
    );

    for t in ["web", "side"] {
        let updates = &seen.updates[t];
        assert_eq!(
            states(updates),
            ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"],
            "{t}: {updates:#?}\n{}",
            agent.log()
        );
        assert_eq!(updates[2]["message"], "Command exited with status 0");
        assert_eq!(updates[2]["executor_id"]["value"], "pod");
        assert_eq!(updates[2]["source"], "SOURCE_EXECUTOR");
    }
    // Each task in a container of its own, nested in the executor's.
    let (web, side) = (seen.container("web"), seen.container("side"));
    let (executor_container, _) = web.split_once('.').expect("nested");
    assert_eq!(side.split_once('.').map(|p| p.0), Some(executor_container));
    assert_ne!(web, side);
    // The executor exits once its tasks have: cleanly, and the master is told.
    assert_eq!(seen.exited[0]["executor_id"]["value"], "pod");
    assert_eq!(seen.exited[0]["status"], 0, "{:?}", seen.exited);

    // Sandboxes as Mesos lays them out: tasks/<task id> leads to the task's own.
    let sandbox = agent.work_dir().join("containers").join(executor_container);
    let out = std::fs::read_to_string(sandbox.join("tasks/web/stdout")).expect("web's stdout");
    assert_eq!(out, "hello from web\n");
    let path = format!("/frameworks/{fid}/executors/pod/runs/latest/tasks/side/stdout");
    let (status, body) = support::raw_request(
        agent.port,
        "GET",
        &format!("/files/read?path={path}&offset=0"),
        None,
        "",
    )
    .expect("/files/read");
    assert_eq!(status, 200, "{body}");
    let read: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(read["data"], "hello from side\n");

    // What the executor and its tasks held is offered again.
    wait_for_everything_offered(&mut s, 2.0, 1024.0, &agent);

    // The agent lists the tasks under their executor, completed once acknowledged.
    support::wait_until(
        "the group's tasks completed",
        Duration::from_secs(60),
        || {
            let (_, body) = agent.call(json!({"type": "GET_STATE"}));
            let v: Value = serde_json::from_str(&body).expect("json");
            let done = &v["get_state"]["get_tasks"]["completed_tasks"];
            done.as_array().map_or(0, Vec::len) == 2
                && done
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|t| t["executor_id"]["value"] == "pod" && t["state"] == "TASK_FINISHED")
        },
    );
    let (_, body) = support::raw_request(agent.port, "GET", "/state", None, "").expect("/state");
    let legacy: Value = serde_json::from_str(&body).expect("json");
    let executor = &legacy["frameworks"][0]["completed_executors"][0];
    assert_eq!(executor["id"], "pod");
    assert_eq!(executor["type"], "DEFAULT");
    assert_eq!(
        executor["completed_tasks"].as_array().map_or(0, Vec::len),
        2,
        "{executor}"
    );
}

#[test]
fn a_failed_or_killed_task_takes_the_rest_of_its_group_down() {
    let Some((master, agent)) = cluster(&["--resources=cpus:4;mem:2048"]) else {
        return;
    };
    let mut s = Scheduler::subscribe(master.port, "group-policy", &["TASK_KILLING_STATE"]);
    let offers = s.offers();
    let sleeper = |id: &str| {
        let mut t = command_task(id, "exec sleep 1000", 0.2);
        t["kill_policy"] = json!({"grace_period": {"nanoseconds": 5_000_000_000u64}});
        t["agent_id"] = offers[0]["agent_id"].clone();
        t
    };
    let mut bad = command_task("bad", "exit 1", 0.2);
    bad["agent_id"] = offers[0]["agent_id"].clone();
    // Two groups in one ACCEPT, each on an executor of its own.
    s.call(json!({"type": "ACCEPT", "accept": {
        "offer_ids": [offers[0]["id"]],
        "operations": [
            {"type": "LAUNCH_GROUP", "launch_group": {"executor": default_executor("p1"),
             "task_group": {"tasks": [bad, sleeper("good")]}}},
            {"type": "LAUNCH_GROUP", "launch_group": {"executor": default_executor("p2"),
             "task_group": {"tasks": [sleeper("k1"), sleeper("k2")]}}}],
        "filters": {"refuse_seconds": 0.0}}}));
    let mut killed = false;
    let mut seen = Seen::default();
    watch(
        &mut s,
        &mut seen,
        |s, seen, _| {
            // KILL one task of the second group once both run.
            if !killed && seen.reached("k1", "TASK_RUNNING") && seen.reached("k2", "TASK_RUNNING") {
                s.kill("k1");
                killed = true;
            }
        },
        |seen| seen.ended(&["bad", "good", "k1", "k2"]) && seen.exited.len() == 2,
    );
    let log = || format!("{:#?}\n{}", seen.updates, agent.log());
    assert_eq!(
        states(&seen.updates["bad"]),
        ["TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"],
        "{}",
        log()
    );
    assert_eq!(
        seen.updates["bad"][2]["message"],
        "Command exited with status 1"
    );
    // Its group goes with it: killed, with TASK_KILLING for a framework that knows it.
    for t in ["good", "k1", "k2"] {
        assert_eq!(
            states(&seen.updates[t]),
            [
                "TASK_STARTING",
                "TASK_RUNNING",
                "TASK_KILLING",
                "TASK_KILLED"
            ],
            "{t}: {}",
            log()
        );
        assert_eq!(
            seen.updates[t][3]["message"], "Command terminated with signal Terminated",
            "{t}"
        );
    }
    let mut exited: Vec<(String, i64)> = seen
        .exited
        .iter()
        .map(|f| {
            (
                f["executor_id"]["value"].as_str().unwrap_or("").to_owned(),
                f["status"].as_i64().unwrap_or(-2),
            )
        })
        .collect();
    exited.sort();
    assert_eq!(exited, [("p1".to_owned(), 0), ("p2".to_owned(), 0)]);
}

#[test]
fn a_second_group_joins_a_running_default_executor() {
    let Some((master, agent)) = cluster(&["--resources=cpus:2;mem:1024"]) else {
        return;
    };
    let mut s = Scheduler::subscribe(master.port, "two-groups", &[]);
    let offers = s.offers();
    s.launch_group(
        &offers[0],
        &default_executor("pod"),
        vec![command_task("long", "exec sleep 1000", 0.5)],
    );
    let mut seen = Seen::default();
    watch(
        &mut s,
        &mut seen,
        |_, _, _| {},
        |seen| seen.reached("long", "TASK_RUNNING"),
    );
    let long = seen.container("long");
    let (executor_container, _) = long.split_once('.').expect("nested");
    let executor_container = executor_container.to_owned();
    // The executor's container holds its own cpus and its task's.
    wait_for_cpus(&agent, &executor_container, 0.6);

    // A second group on the same executor while the first runs, and a group asking for
    // a health check, which the default executor refuses whole.
    let offers = s.offers();
    let agent_id = offers[0]["agent_id"].clone();
    let with_agent = |mut t: Value| {
        t["agent_id"] = agent_id.clone();
        t
    };
    let mut checked = command_task("checked", "true", 0.1);
    checked["health_check"] = json!({"type": "COMMAND", "command": {"value": "true"}});
    s.call(json!({"type": "ACCEPT", "accept": {
        "offer_ids": [offers[0]["id"]],
        "operations": [
            {"type": "LAUNCH_GROUP", "launch_group": {"executor": default_executor("pod"),
             "task_group": {"tasks": [with_agent(command_task(
                 "short", "while [ ! -e go ]; do sleep 0.05; done", 0.25))]}}},
            {"type": "LAUNCH_GROUP", "launch_group": {"executor": default_executor("hc"),
             "task_group": {"tasks": [with_agent(checked), with_agent(command_task("buddy", "true", 0.1))]}}}],
        "filters": {"refuse_seconds": 0.0}}}));
    watch(
        &mut s,
        &mut seen,
        |_, _, _| {},
        |seen| {
            seen.reached("short", "TASK_RUNNING")
                && seen.ended(&["checked", "buddy"])
                && seen.exit_of("hc").is_some()
        },
    );
    // The refused group's executor never ran; the master hears it exited (as Mesos's
    // agent tells it), so that what it charged for it is free again.
    assert_eq!(seen.exit_of("hc").expect("hc")["status"], -1);
    let short = seen.container("short");
    assert_eq!(
        short.split_once('.').map(|p| p.0),
        Some(executor_container.as_str()),
        "one executor container for both groups"
    );
    // It grew to hold the new task before the task started.
    let cpus = container_cpus(&agent, &executor_container);
    assert!(cpus.is_some_and(|c| (c - 0.85).abs() < 1e-6), "{cpus:?}");
    for t in ["checked", "buddy"] {
        let st = seen.updates[t].last().expect("update");
        assert_eq!(st["state"], "TASK_FAILED", "{t}: {st}");
        assert_eq!(st["reason"], "REASON_TASK_GROUP_INVALID", "{t}: {st}");
        let message = st["message"].as_str().unwrap_or("");
        assert!(
            message.contains("task 'checked' asks for a health check"),
            "{message}"
        );
    }

    // The second group ends; the executor shrinks back and keeps running the first.
    let (_, child) = short.split_once('.').expect("nested");
    let sandbox = agent
        .work_dir()
        .join("containers")
        .join(&executor_container)
        .join("containers")
        .join(child);
    std::fs::write(sandbox.join("go"), "").expect("go");
    watch(
        &mut s,
        &mut seen,
        |_, _, _| {},
        |seen| seen.ended(&["short"]),
    );
    assert_eq!(
        states(&seen.updates["short"]),
        ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    );
    wait_for_cpus(&agent, &executor_container, 0.6);
    assert!(
        seen.exit_of("pod").is_none(),
        "the executor still runs 'long'"
    );

    // KILL of the last task: the executor exits and everything is offered again.
    s.kill("long");
    watch(
        &mut s,
        &mut seen,
        |_, _, _| {},
        |seen| seen.ended(&["long"]) && seen.exit_of("pod").is_some(),
    );
    assert_eq!(
        seen.updates["long"].last().expect("end")["state"],
        "TASK_KILLED"
    );
    assert_eq!(seen.exit_of("pod").expect("pod")["status"], 0);
    wait_for_everything_offered(&mut s, 2.0, 1024.0, &agent);
    assert_eq!(
        container_cpus(&agent, &executor_container),
        None,
        "its container ended"
    );
}

#[test]
fn a_custom_executor_receives_a_task_group_whole() {
    let Some((master, agent)) = cluster(&["--resources=cpus:2;mem:1024"]) else {
        return;
    };
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/executors/echo_executor.py"
    );
    let mut s = Scheduler::subscribe(master.port, "custom-group", &[]);
    let offers = s.offers();
    let executor = json!({
        "type": "CUSTOM", "executor_id": {"value": "echo"},
        "command": {"value": format!("exec python3 {script}")},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 64.0}}]});
    let task = |id: &str| {
        let mut t = command_task(id, "unused", 0.1);
        t.as_object_mut().map(|o| o.remove("command"));
        t
    };
    s.launch_group(&offers[0], &executor, vec![task("g1"), task("g2")]);
    // The group reaches the executor (once it subscribed) as one LAUNCH_GROUP.
    let mut running = Vec::new();
    let mut told = None;
    while running.len() < 2 || told.is_none() {
        let event = s.events.next().expect("stream open");
        match event["type"].as_str() {
            Some("UPDATE") => {
                let st = event["update"]["status"].clone();
                assert_eq!(st["state"], "TASK_RUNNING", "{event}\n{}", agent.log());
                assert_eq!(st["executor_id"]["value"], "echo");
                s.acknowledge(&st);
                running.push(st["task_id"]["value"].as_str().unwrap_or("").to_owned());
            }
            Some("MESSAGE") => told = Some(unb64(&event["message"]["data"])),
            _ => {}
        }
    }
    running.sort();
    assert_eq!(running, ["g1", "g2"]);
    assert_eq!(told.as_deref(), Some("group g1 g2"));
    // The agent shows them under their executor.
    let (_, body) = agent.call(json!({"type": "GET_TASKS"}));
    let v: Value = serde_json::from_str(&body).expect("json");
    let launched = v["get_tasks"]["launched_tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(launched.len(), 2, "{body}");
    assert!(
        launched.iter().all(|t| t["executor_id"]["value"] == "echo"),
        "{body}"
    );
}

/// The agent's `/metrics/snapshot` value of `name`.
fn agent_metric(agent: &support::Agent, name: &str) -> f64 {
    let (code, body) =
        support::raw_request(agent.port, "GET", "/metrics/snapshot", None, "").expect("metrics");
    assert_eq!(code, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).expect("metrics JSON");
    doc[name]
        .as_f64()
        .unwrap_or_else(|| panic!("no {name} in {doc}"))
}

/// Runs one `true` task to TASK_FINISHED (acknowledged) and returns its container.
fn run_one_task(master: &Master) -> String {
    let mut s = Scheduler::subscribe(master.port, "gc", &[]);
    let offers = s.offers();
    s.launch(&offers[0], vec![command_task("t", "echo kept", 0.1)]);
    let seen = run_until_terminal(&mut s, &["t"], |_, _| {});
    let last = &seen["t"][seen["t"].len() - 1];
    assert_eq!(last["state"], "TASK_FINISHED", "{:#?}", seen["t"]);
    last["container_status"]["container_id"]["value"]
        .as_str()
        .expect("container id")
        .to_owned()
}

#[test]
fn a_completed_executors_sandbox_is_removed_after_the_gc_delay() {
    let Some((master, agent)) = cluster(&["--resources=cpus:1;mem:256", "--gc_delay=20secs"])
    else {
        return;
    };
    // The removal is scheduled after this (once the terminal update is acknowledged),
    // so it cannot come due before `start` + 20 s, however slow the machine.
    let start = Instant::now();
    let container = run_one_task(&master);
    let sandbox = agent.work_dir().join("containers").join(&container);
    let checkpoint = agent
        .work_dir()
        .join("meta")
        .join("containers")
        .join(&container);
    // Scheduled once the terminal update is acknowledged, and kept until then.
    support::wait_until(
        "the removal to be scheduled",
        Duration::from_secs(30),
        || agent_metric(&agent, "gc/path_removals_pending") == 1.0,
    );
    let stdout = std::fs::read_to_string(sandbox.join("stdout")).expect("the sandbox is kept");
    assert_eq!(stdout, "kept\n");
    assert!(checkpoint.is_dir());
    assert_eq!(agent_metric(&agent, "containerizer/containers_ended"), 1.0);

    support::wait_until("the sandbox to be removed", Duration::from_secs(90), || {
        !sandbox.exists()
    });
    assert!(
        start.elapsed() >= Duration::from_secs(20),
        "removed {:?} after the task was launched, before the 20 s delay",
        start.elapsed()
    );
    support::wait_until("the removal to be counted", Duration::from_secs(10), || {
        agent_metric(&agent, "gc/path_removals_succeeded") == 1.0
    });
    assert!(!checkpoint.exists(), "the checkpoint goes with the sandbox");
    assert_eq!(agent_metric(&agent, "gc/path_removals_pending"), 0.0);
    assert_eq!(agent_metric(&agent, "gc/path_removals_failed"), 0.0);
    assert_eq!(
        agent_metric(&agent, "containerizer/containers_ended"),
        0.0,
        "the containerizer forgot it"
    );
}

#[test]
fn a_full_disk_removes_completed_sandboxes_before_their_delay() {
    // No headroom left to keep: every disk check finds the disk "full" and removes what
    // is scheduled, whatever the week-long delay says.
    let Some((master, agent)) = cluster(&[
        "--resources=cpus:1;mem:256",
        "--gc_delay=1weeks",
        "--gc_disk_headroom=1",
        "--disk_watch_interval=1secs",
    ]) else {
        return;
    };
    let container = run_one_task(&master);
    let sandbox = agent.work_dir().join("containers").join(&container);
    support::wait_until(
        "the disk check to remove the sandbox",
        Duration::from_secs(60),
        || !sandbox.exists(),
    );
    support::wait_until("the removal to be counted", Duration::from_secs(10), || {
        agent_metric(&agent, "gc/path_removals_succeeded") == 1.0
    });
    assert_eq!(agent_metric(&agent, "gc/path_removals_pending"), 0.0);
}
