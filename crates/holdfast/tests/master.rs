//! `holdfast master` over HTTP: a framework and an agent (both driven by this test through
//! the wire protocols) take a task from offer to acknowledged finish.

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::cluster::{command_task, post, EventStream, Master as MasterProcess, Scheduler};
use support::raw_request;

/// An agent's stream read by a thread that answers PINGs (as a live agent does) until
/// it is told to go silent; other records come through a channel.
struct LiveAgent {
    records: std::sync::mpsc::Receiver<Value>,
    silent: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl LiveAgent {
    fn new(mut stream: EventStream, port: u16, agent_id: &str) -> LiveAgent {
        let (tx, records) = std::sync::mpsc::channel();
        let silent = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let quiet = silent.clone();
        let agent_id = agent_id.to_owned();
        std::thread::spawn(move || {
            while let Some(record) = stream.next() {
                if record["type"] == "PING" {
                    if !quiet.load(std::sync::atomic::Ordering::SeqCst) {
                        let pong = json!({"type": "PONG", "agent_id": {"value": agent_id}});
                        post(port, "/internal/v1/agent", &stream.stream_id, &pong);
                    }
                } else if tx.send(record).is_err() {
                    return;
                }
            }
        });
        LiveAgent { records, silent }
    }

    fn next_of(&self, kind: &str) -> Value {
        loop {
            match self.records.recv_timeout(Duration::from_secs(60)) {
                Ok(record) if record["type"] == kind => return record,
                Ok(_) => {}
                Err(_) => panic!("the agent's stream ended before {kind}"),
            }
        }
    }

    fn go_silent(&self) {
        self.silent.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the stream ends within `timeout`.
    fn ends_within(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.records.recv_timeout(left) {
                Ok(_) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return true,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return false,
            }
        }
    }
}

fn subscribe_agent(port: u16, resources: &str) -> (EventStream, String) {
    let resources: Vec<Value> = resources
        .split(';')
        .map(|kv| {
            let (k, v) = kv.split_once(':').expect("k:v");
            json!({"name": k, "type": "SCALAR", "scalar": {"value": v.parse::<f64>().expect("num")}})
        })
        .collect();
    let mut agent = EventStream::open(
        port,
        "/internal/v1/agent",
        &json!({"type": "SUBSCRIBE", "info": {"hostname": "127.0.0.1", "port": 5051, "resources": resources}}),
    );
    let registered = agent.next_of("REGISTERED");
    let id = registered["agent_id"]["value"]
        .as_str()
        .expect("agent id")
        .to_owned();
    (agent, id)
}

#[test]
fn a_framework_runs_a_task_through_the_master() {
    let m = MasterProcess::start(&[]);
    let (mut agent, agent_id) = subscribe_agent(m.port, "cpus:2;mem:1024");

    let mut fw = EventStream::open(
        m.port,
        "/api/v1/scheduler",
        &json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "root", "name": "e2e", "capabilities": [{"type": "PARTITION_AWARE"}]}}}),
    );
    assert!(!fw.stream_id.is_empty(), "Mesos-Stream-Id header");
    let subscribed = fw.next().expect("SUBSCRIBED");
    assert_eq!(subscribed["type"], "SUBSCRIBED");
    assert_eq!(
        subscribed["subscribed"]["heartbeat_interval_seconds"],
        json!(15.0)
    );
    let framework_id = subscribed["subscribed"]["framework_id"].clone();
    assert_eq!(fw.next().expect("HEARTBEAT")["type"], "HEARTBEAT");

    let offers = fw.next_of("OFFERS");
    let offer = &offers["offers"]["offers"][0];
    assert_eq!(offer["agent_id"]["value"], agent_id.as_str());
    let cpus = offer["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["name"] == "cpus")
        .expect("cpus");
    assert_eq!(cpus["scalar"]["value"], json!(2.0));

    let fw_stream = fw.stream_id.clone();
    let call = |body: Value| post(m.port, "/api/v1/scheduler", &fw_stream, &body);
    let (status, body) = call(
        json!({"type": "ACCEPT", "framework_id": framework_id, "accept": {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [{
            "name": "t1", "task_id": {"value": "t1"}, "agent_id": {"value": agent_id},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5},
                           "allocation_info": {"role": "*"}}],
            "command": {"value": "true"}}]}}]}}),
    );
    assert_eq!((status, body.as_str()), (202, ""));

    let run = agent.next_of("RUN_TASK");
    assert_eq!(run["task"]["task_id"]["value"], "t1");
    assert_eq!(run["framework"]["id"], framework_id);

    // The agent reports the task running; the framework sees it and acknowledges.
    let uuid = "knnFONfHRvGmQM8etzVMRQ==";
    let (status, body) = post(
        m.port,
        "/internal/v1/agent",
        &agent.stream_id.clone(),
        &json!({
        "type": "UPDATE", "agent_id": {"value": agent_id}, "framework_id": framework_id,
        "status": {"task_id": {"value": "t1"}, "state": "TASK_RUNNING", "source": "SOURCE_EXECUTOR",
                   "uuid": uuid, "timestamp": 1.5}}),
    );
    assert_eq!((status, body.as_str()), (202, ""));
    let update = fw.next_of("UPDATE");
    assert_eq!(update["update"]["status"]["state"], "TASK_RUNNING");
    assert_eq!(update["update"]["status"]["uuid"], uuid);
    assert_eq!(
        update["update"]["status"]["agent_id"]["value"],
        agent_id.as_str()
    );

    let (status, _) = call(
        json!({"type": "ACKNOWLEDGE", "framework_id": framework_id, "acknowledge": {
        "agent_id": {"value": agent_id}, "task_id": {"value": "t1"}, "uuid": uuid}}),
    );
    assert_eq!(status, 202);
    let ack = agent.next_of("ACKNOWLEDGE");
    assert_eq!(ack["uuid"], uuid);

    // Calls on the wrong stream are refused, as Mesos does.
    let (status, body) = post(
        m.port,
        "/api/v1/scheduler",
        "not-the-stream",
        &json!({
        "type": "REVIVE", "framework_id": framework_id}),
    );
    assert_eq!(status, 400);
    assert!(body.contains("didn't match the stream ID"), "{body}");

    // TEARDOWN ends the stream and the framework's tasks on the agent.
    let (status, _) = call(json!({"type": "TEARDOWN", "framework_id": framework_id}));
    assert_eq!(status, 202);
    assert_eq!(
        agent.next_of("SHUTDOWN_FRAMEWORK")["framework_id"],
        framework_id
    );
    while let Some(record) = fw.next() {
        assert_ne!(record["type"], "OFFERS", "no offers after teardown");
    }
    // A removed framework cannot come back.
    let mut again = EventStream::open(
        m.port,
        "/api/v1/scheduler",
        &json!({"type": "SUBSCRIBE", "framework_id": framework_id, "subscribe": {"framework_info": {
            "user": "root", "name": "e2e", "id": framework_id}}}),
    );
    let error = again.next().expect("ERROR");
    assert_eq!(
        error,
        json!({"type": "ERROR", "error": {"message": "Framework has been removed"}})
    );
    assert!(again.next().is_none(), "stream ends after the error");
}

#[test]
fn an_agent_that_stops_answering_pings_becomes_unreachable() {
    let m = MasterProcess::start(&["--agent_ping_timeout=1secs", "--max_agent_ping_timeouts=2"]);
    let (agent, agent_id) = subscribe_agent(m.port, "cpus:1;mem:256");
    let agent = LiveAgent::new(agent, m.port, &agent_id);
    let mut fw = EventStream::open(
        m.port,
        "/api/v1/scheduler",
        &json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "root", "name": "u"}}}),
    );
    let framework_id = fw.next_of("SUBSCRIBED")["subscribed"]["framework_id"].clone();
    let offer = fw.next_of("OFFERS")["offers"]["offers"][0].clone();
    let (status, _) = post(
        m.port,
        "/api/v1/scheduler",
        &fw.stream_id.clone(),
        &json!({
        "type": "ACCEPT", "framework_id": framework_id, "accept": {"offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [{
            "name": "t", "task_id": {"value": "t"}, "agent_id": {"value": agent_id},
            // No allocation_info, as frameworks written before MULTI_ROLE send.
            "resources": [{"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
            "command": {"value": "sleep 100"}}]}}]}}),
    );
    assert_eq!(status, 202);
    agent.next_of("RUN_TASK");
    // The task runs; now the agent stops answering.
    agent.go_silent();
    let started = Instant::now();
    // Not partition aware: the task is reported lost.
    let update = fw.next_of("UPDATE");
    assert_eq!(update["update"]["status"]["state"], "TASK_LOST");
    assert_eq!(update["update"]["status"]["source"], "SOURCE_MASTER");
    assert!(
        update["update"]["status"].get("uuid").is_none(),
        "made-up updates carry no uuid"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // The agent's stream was ended; it may register again under its id.
    assert!(
        agent.ends_within(Duration::from_secs(30)),
        "the unreachable agent's stream ends"
    );
    let mut back = EventStream::open(
        m.port,
        "/internal/v1/agent",
        &json!({"type": "SUBSCRIBE", "agent_id": {"value": agent_id},
                "info": {"hostname": "127.0.0.1", "port": 5051, "resources": []}}),
    );
    assert_eq!(
        back.next_of("REGISTERED")["agent_id"]["value"],
        agent_id.as_str()
    );
}

#[test]
fn bad_scheduler_input_gets_a_4xx_with_a_reason() {
    let m = MasterProcess::start(&[]);
    let (status, body) = raw_request(
        m.port,
        "POST",
        "/api/v1/scheduler",
        Some("application/json"),
        "{not json",
    )
    .expect("post");
    assert_eq!(status, 400);
    assert!(body.starts_with("Failed to parse body into JSON"), "{body}");
    let (status, body) = raw_request(m.port, "GET", "/api/v1/scheduler", None, "").expect("get");
    assert_eq!(status, 405);
    assert_eq!(
        body,
        "405 Method Not Allowed. Expecting one of { 'POST' }, but received 'GET'."
    );
    let (status, body) = raw_request(
        m.port,
        "POST",
        "/api/v1/scheduler",
        Some("application/json"),
        r#"{"type":"DECLINE","decline":{"offer_ids":[]}}"#,
    )
    .expect("post");
    assert_eq!(
        (status, body.as_str()),
        (
            400,
            "Failed to validate scheduler::Call: Expecting 'framework_id' to be present"
        )
    );
    let (status, body) = raw_request(
        m.port,
        "POST",
        "/internal/v1/agent",
        Some("application/json"),
        r#"{"type":"NOPE"}"#,
    )
    .expect("post");
    assert_eq!(status, 400);
    assert!(body.contains("agent call"), "{body}");
    let (status, body) = raw_request(m.port, "GET", "/version", None, "").expect("version");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert!(
        v["version"]
            .as_str()
            .is_some_and(|s| s.chars().all(|c| c.is_ascii_digit() || c == '.')),
        "{v}"
    );
}

/// An operator call; the answer's status and body.
fn operator_call(port: u16, body: &Value) -> (u16, String) {
    raw_request(
        port,
        "POST",
        "/api/v1",
        Some("application/json"),
        &body.to_string(),
    )
    .expect("operator call")
}

/// A call that must succeed, as JSON.
fn operator_json(port: u16, body: &Value) -> Value {
    let (status, text) = operator_call(port, body);
    assert_eq!(status, 200, "{body}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{body}: {e}: {text}"))
}

fn get_json(port: u16, path: &str) -> Value {
    let (status, text) = raw_request(port, "GET", path, None, "").expect("get");
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
}

/// A GET's whole answer, status line and headers included.
fn get_raw(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    raw
}

fn task_ids(list: &Value, id_pointer: &str) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            t.pointer(id_pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn operators_watch_a_task_run_and_finish() {
    let m = MasterProcess::start(&[]);
    let mut ops = EventStream::open(m.port, "/api/v1", &json!({"type": "SUBSCRIBE"}));
    assert!(
        ops.stream_id.is_empty(),
        "operator streams carry no stream id"
    );
    let subscribed = ops.next().expect("SUBSCRIBED");
    assert_eq!(subscribed["type"], "SUBSCRIBED");
    assert_eq!(
        subscribed["subscribed"]["get_state"]["get_agents"]["agents"],
        json!([])
    );
    assert_eq!(
        subscribed["subscribed"]["heartbeat_interval_seconds"],
        json!(15.0)
    );
    assert_eq!(ops.next().expect("HEARTBEAT")["type"], "HEARTBEAT");

    let (agent, agent_id) = subscribe_agent(m.port, "cpus:2;mem:1024");
    let added = ops.next_of("AGENT_ADDED");
    assert_eq!(
        added["agent_added"]["agent"]["agent_info"]["id"]["value"],
        agent_id.as_str()
    );
    let agent_stream = agent.stream_id.clone();
    let agent = LiveAgent::new(agent, m.port, &agent_id);

    let mut fw = EventStream::open(
        m.port,
        "/api/v1/scheduler",
        &json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "root", "name": "watched", "capabilities": [{"type": "PARTITION_AWARE"}]}}}),
    );
    let framework_id = fw.next_of("SUBSCRIBED")["subscribed"]["framework_id"].clone();
    let added = ops.next_of("FRAMEWORK_ADDED");
    assert_eq!(
        added["framework_added"]["framework"]["framework_info"]["id"],
        framework_id
    );
    assert_eq!(added["framework_added"]["framework"]["connected"], true);

    let offer = fw.next_of("OFFERS")["offers"]["offers"][0].clone();
    let fw_stream = fw.stream_id.clone();
    let call = |body: Value| post(m.port, "/api/v1/scheduler", &fw_stream, &body);
    let (status, _) = call(
        json!({"type": "ACCEPT", "framework_id": framework_id, "accept": {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [{
            "name": "t1", "task_id": {"value": "t1"}, "agent_id": {"value": agent_id},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}],
            "command": {"value": "true"}}]}}]}}),
    );
    assert_eq!(status, 202);
    agent.next_of("RUN_TASK");
    let added = ops.next_of("TASK_ADDED");
    assert_eq!(added["task_added"]["task"]["task_id"]["value"], "t1");
    assert_eq!(added["task_added"]["task"]["state"], "TASK_STAGING");

    // The agent reports the task running, then finished; the framework acknowledges.
    for (state, uuid) in [
        ("TASK_RUNNING", "knnFONfHRvGmQM8etzVMRQ=="),
        ("TASK_FINISHED", "c1ljq/IgRxS2egyRqDvy3Q=="),
    ] {
        let (status, body) = post(
            m.port,
            "/internal/v1/agent",
            &agent_stream,
            &json!({
            "type": "UPDATE", "agent_id": {"value": agent_id}, "framework_id": framework_id,
            "status": {"task_id": {"value": "t1"}, "state": state, "source": "SOURCE_EXECUTOR",
                       "uuid": uuid, "timestamp": 1_700_000_000.5}}),
        );
        assert_eq!((status, body.as_str()), (202, ""));
        let updated = ops.next_of("TASK_UPDATED");
        assert_eq!(updated["task_updated"]["state"], state);
        assert_eq!(updated["task_updated"]["framework_id"], framework_id);
        assert_eq!(updated["task_updated"]["status"]["uuid"], uuid);
        assert_eq!(fw.next_of("UPDATE")["update"]["status"]["state"], state);
        let (status, _) = call(json!({"type": "ACKNOWLEDGE", "framework_id": framework_id,
            "acknowledge": {"agent_id": {"value": agent_id}, "task_id": {"value": "t1"},
                            "uuid": uuid}}));
        assert_eq!(status, 202);
    }

    // The acknowledged task is completed, in every view.
    let tasks = operator_json(m.port, &json!({"type": "GET_TASKS"}));
    assert_eq!(tasks["type"], "GET_TASKS");
    let tasks = &tasks["get_tasks"];
    assert_eq!(tasks["tasks"], json!([]));
    assert_eq!(
        task_ids(&tasks["completed_tasks"], "/task_id/value"),
        ["t1"]
    );
    let t1 = &tasks["completed_tasks"][0];
    assert_eq!(t1["state"], "TASK_FINISHED");
    assert_eq!(t1["framework_id"], framework_id);
    assert_eq!(t1["agent_id"]["value"], agent_id.as_str());
    let states: Vec<&Value> = t1["statuses"]
        .as_array()
        .expect("statuses")
        .iter()
        .map(|s| &s["state"])
        .collect();
    assert_eq!(states, [&json!("TASK_RUNNING"), &json!("TASK_FINISHED")]);

    let state = operator_json(m.port, &json!({"type": "GET_STATE"}));
    let state = &state["get_state"];
    assert_eq!(state["get_tasks"], *tasks);
    assert_eq!(
        state["get_frameworks"]["frameworks"][0]["framework_info"]["name"],
        "watched"
    );
    assert_eq!(
        state["get_agents"]["agents"][0]["agent_info"]["id"]["value"],
        agent_id.as_str()
    );

    for path in ["/master/state", "/state"] {
        let legacy = get_json(m.port, path);
        let fw = &legacy["frameworks"][0];
        assert_eq!(fw["id"], framework_id["value"], "{path}");
        assert_eq!(task_ids(&fw["completed_tasks"], "/id"), ["t1"], "{path}");
        assert_eq!(fw["completed_tasks"][0]["state"], "TASK_FINISHED");
        assert_eq!(fw["completed_tasks"][0]["slave_id"], agent_id.as_str());
        assert_eq!(legacy["slaves"][0]["id"], agent_id.as_str());
        assert_eq!(legacy["activated_slaves"], json!(1.0));
    }
    let listed = get_json(m.port, "/master/tasks");
    assert_eq!(task_ids(&listed["tasks"], "/id"), ["t1"]);

    // The metrics count it.
    let snapshot = get_json(m.port, "/metrics/snapshot");
    assert_eq!(snapshot["master/tasks_finished"], json!(1.0));
    assert_eq!(snapshot["master/tasks_running"], json!(0.0));
    assert_eq!(snapshot["master/slaves_active"], json!(1.0));
    assert_eq!(snapshot["master/frameworks_active"], json!(1.0));
    assert_eq!(
        snapshot["master/operator_event_stream_subscribers"],
        json!(1.0)
    );
    assert_eq!(snapshot["master/cpus_total"], json!(2.0));
    let metrics = operator_json(
        m.port,
        &json!({"type": "GET_METRICS", "get_metrics": {"timeout": {"nanoseconds": 5_000_000_000_u64}}}),
    );
    let finished = metrics["get_metrics"]["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .find(|x| x["name"] == "master/tasks_finished")
        .map(|x| x["value"].clone());
    assert_eq!(finished, Some(json!(1.0)));
    let raw = get_raw(m.port, "/metrics");
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.contains("text/plain; version=0.0.4"), "{raw}");
    assert!(
        raw.contains(
            "# TYPE holdfast_master_tasks_finished counter\nholdfast_master_tasks_finished 1\n"
        ),
        "{raw}"
    );
    assert!(raw.contains("\nholdfast_master_tasks_running 0\n"), "{raw}");

    // TEARDOWN by the operator removes the framework; its stream ends.
    let (status, body) = operator_call(
        m.port,
        &json!({"type": "TEARDOWN", "teardown": {"framework_id": framework_id}}),
    );
    assert_eq!((status, body.as_str()), (200, ""));
    let removed = ops.next_of("FRAMEWORK_REMOVED");
    assert_eq!(
        removed["framework_removed"]["framework_info"]["id"],
        framework_id
    );
    while fw.next().is_some() {}
    let frameworks = operator_json(m.port, &json!({"type": "GET_FRAMEWORKS"}));
    assert_eq!(frameworks["get_frameworks"]["frameworks"], json!([]));
    assert_eq!(
        frameworks["get_frameworks"]["completed_frameworks"][0]["framework_info"]["id"],
        framework_id
    );
}

#[test]
fn bad_operator_input_gets_a_4xx_with_a_reason() {
    let m = MasterProcess::start(&[]);
    let (status, body) = operator_call(m.port, &json!({"type": "GET_FOO"}));
    assert_eq!(status, 400);
    assert!(
        body.starts_with("Failed to validate master::Call: Expecting 'type' to be present"),
        "{body}"
    );
    assert!(body.contains("'GET_FOO'"), "{body}");
    let (status, body) = operator_call(m.port, &json!({"type": "GET_METRICS"}));
    assert_eq!(
        (status, body.as_str()),
        (
            400,
            "Failed to validate master::Call: Expecting 'get_metrics' to be present"
        )
    );
    let (status, body) = operator_call(m.port, &json!({"type": "GET_QUOTA"}));
    assert_eq!(status, 501);
    assert!(body.contains("GET_QUOTA"), "{body}");
    let (status, body) = operator_call(
        m.port,
        &json!({"type": "TEARDOWN", "teardown": {"framework_id": {"value": "nope"}}}),
    );
    assert_eq!(
        (status, body.as_str()),
        (400, "No framework found with ID nope")
    );
    let (status, body) = raw_request(
        m.port,
        "POST",
        "/api/v1",
        Some("application/x-protobuf"),
        "\u{8}\u{1}",
    )
    .expect("protobuf");
    assert_eq!(status, 415);
    assert!(
        body.contains("does not speak application/x-protobuf"),
        "{body}"
    );
    let (status, body) = raw_request(m.port, "GET", "/api/v1", None, "").expect("get");
    assert_eq!(status, 405);
    assert!(body.contains("Expecting one of { 'POST' }"), "{body}");
    // The Mesos alias of the operator endpoint answers the same.
    let (status, body) = raw_request(
        m.port,
        "POST",
        "/api/v1/operator",
        Some("application/json"),
        r#"{"type":"GET_HEALTH"}"#,
    )
    .expect("alias");
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            r#"{"get_health":{"healthy":true},"type":"GET_HEALTH"}"#
        )
    );
    let (status, body) =
        raw_request(m.port, "GET", "/master/tasks?order=sideways", None, "").expect("tasks");
    assert_eq!(status, 400);
    assert!(body.contains("'order' must be 'asc' or 'desc'"), "{body}");
    let (status, body) =
        raw_request(m.port, "GET", "/master/state?jsonp=alert(1)", None, "").expect("jsonp");
    assert_eq!(status, 400);
    assert!(body.contains("jsonp"), "{body}");
    let (status, _) = raw_request(m.port, "GET", "/master/state.json", None, "").expect("404");
    assert_eq!(status, 404);
}

#[test]
fn legacy_endpoints_answer_as_mesos_does() {
    let m = MasterProcess::start(&["--hostname=localhost"]);
    for path in ["/master/redirect", "/redirect"] {
        let raw = get_raw(m.port, path);
        assert!(raw.starts_with("HTTP/1.1 307"), "{raw}");
        let location = format!("location: //localhost:{}\r\n", m.port);
        assert!(raw.to_ascii_lowercase().contains(&location), "{raw}");
    }
    let raw = get_raw(m.port, "/master/state?jsonp=cb");
    assert!(raw.contains("content-type: text/javascript"), "{raw}");
    let body = raw.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
    assert!(body.starts_with("cb({") && body.ends_with("})"), "{body}");
    for path in ["/master/flags", "/flags"] {
        let flags = get_json(m.port, path);
        assert_eq!(flags["flags"]["hostname"], "localhost", "{path}");
    }
    for path in ["/master/health", "/health"] {
        let (status, body) = raw_request(m.port, "GET", path, None, "").expect("health");
        assert_eq!((status, body.as_str()), (200, ""), "{path}");
    }
    let version = get_json(m.port, "/master/version");
    assert_eq!(version, get_json(m.port, "/version"));
    for path in [
        "/master/state-summary",
        "/master/frameworks",
        "/frameworks",
        "/master/slaves",
        "/slaves",
        "/master/tasks",
        "/tasks",
        "/master/roles",
        "/roles",
    ] {
        let doc = get_json(m.port, path);
        assert!(doc.is_object(), "{path}: {doc}");
    }
    assert_eq!(get_json(m.port, "/master/slaves")["slaves"], json!([]));
    assert_eq!(
        get_json(m.port, "/master/state-summary")["hostname"],
        "localhost"
    );
    let master = operator_json(m.port, &json!({"type": "GET_MASTER"}));
    assert_eq!(master["get_master"]["master_info"]["hostname"], "localhost");
    assert!(master["get_master"]["start_time"].as_f64() > Some(1.5e9));
}

fn get_agents(port: u16) -> Value {
    operator_json(port, &json!({"type": "GET_AGENTS"}))["get_agents"].clone()
}

fn ids(list: &Value, pointer: &str) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.pointer(pointer).and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

/// Polls `/metrics/snapshot` until `name` has `value`.
fn wait_for_metric(m: &MasterProcess, name: &str, value: f64) {
    let deadline = Instant::now() + support::cluster::EVENT_TIMEOUT;
    loop {
        let snapshot = get_json(m.port, "/metrics/snapshot");
        if snapshot[name].as_f64() == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never became {value}: {snapshot}\n{}",
            m.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asks the master to reconcile `task` on `agent`, then a task on an agent nobody
/// knows (answered at once, TASK_UNKNOWN or TASK_LOST); returns the updates that came
/// before that one's, so an empty list means no answer about `task`.
fn reconcile(fw: &mut Scheduler, task: &str, agent: &str) -> Vec<Value> {
    reconcile_events(fw, task, agent)
        .into_iter()
        .map(|e| {
            assert_eq!(e["type"], "UPDATE", "{e}");
            e["update"]["status"].clone()
        })
        .collect()
}

/// As [`reconcile`], but returns every event before the marker's answer but offers
/// and heartbeats.
fn reconcile_events(fw: &mut Scheduler, task: &str, agent: &str) -> Vec<Value> {
    fw.call(json!({"type": "RECONCILE", "reconcile": {"tasks": [
        {"task_id": {"value": task}, "agent_id": {"value": agent}},
        {"task_id": {"value": "marker"}, "agent_id": {"value": "no-such-agent"}}]}}));
    let mut before = Vec::new();
    loop {
        let event = fw.events.next().expect("the framework's stream ends");
        if ["HEARTBEAT", "OFFERS", "RESCIND"].contains(&event["type"].as_str().unwrap_or("")) {
            continue;
        }
        let status = &event["update"]["status"];
        if status["task_id"]["value"] == "marker" {
            assert_eq!(status["reason"], "REASON_RECONCILIATION", "{status}");
            return before;
        }
        before.push(event);
    }
}

/// Registers an agent again under `agent_id`, reporting `task` running for the
/// framework of `framework` (a `FrameworkInfo` with its id), as an agent does.
fn reregister_agent(port: u16, agent_id: &str, framework: &Value, task: &Value) -> EventStream {
    let mut agent = EventStream::open(
        port,
        "/internal/v1/agent",
        &json!({"type": "SUBSCRIBE", "agent_id": {"value": agent_id},
                "info": {"hostname": "127.0.0.1", "port": 5051, "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2.0}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 1024.0}}]},
                "tasks": [{"framework_id": framework["id"], "task": task, "state": "TASK_RUNNING"}],
                "frameworks": [framework]}),
    );
    let registered = agent.next_of("REGISTERED");
    assert_eq!(registered["agent_id"]["value"], agent_id);
    agent
}

/// A master with a work dir, an agent running a task for a partition-aware framework;
/// returns the master, the agent's id, the framework's info (with its id) and the task
/// as the agent was told to run it.
fn cluster_with_a_running_task() -> (MasterProcess, String, Value, Value) {
    let m = MasterProcess::start(&[]);
    let (agent, agent_id) = subscribe_agent(m.port, "cpus:2;mem:1024");
    let agent_stream = agent.stream_id.clone();
    let agent = LiveAgent::new(agent, m.port, &agent_id);
    let mut info = json!({"user": "root", "name": "patient", "failover_timeout": 3600.0,
                          "capabilities": [{"type": "PARTITION_AWARE"}]});
    let mut fw = Scheduler::subscribe_as(m.port, info.clone());
    let offers = fw.offers();
    fw.launch(&offers[0], vec![command_task("t", "sleep 1000", 0.5)]);
    let task = agent.next_of("RUN_TASK")["task"].clone();
    let (status, _) = post(
        m.port,
        "/internal/v1/agent",
        &agent_stream,
        &json!({"type": "UPDATE", "agent_id": {"value": agent_id}, "framework_id": fw.framework_id,
                "status": {"task_id": {"value": "t"}, "state": "TASK_RUNNING",
                           "source": "SOURCE_EXECUTOR", "uuid": "knnFONfHRvGmQM8etzVMRQ==",
                           "timestamp": 1.5}}),
    );
    assert_eq!(status, 202);
    assert_eq!(fw.next_update()["state"], "TASK_RUNNING");
    info["id"] = fw.framework_id.clone();
    (m, agent_id, info, task)
}

#[test]
fn a_restarted_master_remembers_its_agents_and_marks_those_that_stay_away_unreachable() {
    let (mut m, agent_id, info, task) = cluster_with_a_running_task();

    // The master dies; the agent does not come back for now.
    m.kill9();
    m.restart(&["--agent_reregister_timeout=10mins"]);
    let agents = get_agents(m.port);
    assert_eq!(agents["agents"], json!([]));
    assert_eq!(
        ids(&agents["recovered_agents"], "/id/value"),
        [agent_id.as_str()]
    );
    let state = get_json(m.port, "/master/state");
    assert_eq!(ids(&state["recovered_slaves"], "/id"), [agent_id.as_str()]);
    assert_eq!(state["unreachable_slaves"], json!(0.0));
    // The framework subscribes again; the master does not know its task yet and does
    // not answer for it while its agent may still come back.
    let mut fw = Scheduler::subscribe_as(m.port, info.clone());
    assert_eq!(reconcile(&mut fw, "t", &agent_id), Vec::<Value>::new());
    drop(fw);

    // Again, now with a short window: the agent stays away past it.
    m.restart(&["--agent_reregister_timeout=1secs"]);
    wait_for_metric(&m, "master/recovery_slave_removals", 1.0);
    let agents = get_agents(m.port);
    assert_eq!(agents["recovered_agents"], json!([]));
    assert_eq!(agents["agents"], json!([]));
    assert_eq!(
        get_json(m.port, "/master/state")["unreachable_slaves"],
        json!(1.0)
    );
    let snapshot = get_json(m.port, "/metrics/snapshot");
    assert_eq!(snapshot["master/slaves_unreachable"], json!(1.0));
    assert_eq!(
        snapshot["master/slave_removals/reason_unhealthy"],
        json!(1.0)
    );
    let mut fw = Scheduler::subscribe_as(m.port, info.clone());
    let unreachable = reconcile(&mut fw, "t", &agent_id);
    assert_eq!(unreachable.len(), 1, "{unreachable:?}");
    assert_eq!(unreachable[0]["state"], "TASK_UNREACHABLE");
    assert_eq!(unreachable[0]["reason"], "REASON_RECONCILIATION");
    assert_eq!(unreachable[0]["agent_id"]["value"], agent_id.as_str());
    let since = unreachable[0]["unreachable_time"]["nanoseconds"].clone();
    assert!(
        since
            .as_i64()
            .is_some_and(|n| n > 1_500_000_000_000_000_000),
        "{since}"
    );
    // A framework that is not partition aware hears TASK_LOST.
    let mut legacy = Scheduler::subscribe(m.port, "legacy", &[]);
    let lost = reconcile(&mut legacy, "t", &agent_id);
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0]["state"], "TASK_LOST");
    drop((fw, legacy));

    // It stays unreachable across another restart, with the time it was marked.
    m.restart(&[]);
    assert_eq!(
        get_json(m.port, "/master/state")["unreachable_slaves"],
        json!(1.0)
    );
    assert_eq!(get_agents(m.port)["recovered_agents"], json!([]));
    let mut fw = Scheduler::subscribe_as(m.port, info.clone());
    let again = reconcile(&mut fw, "t", &agent_id);
    assert_eq!(again[0]["state"], "TASK_UNREACHABLE");
    assert_eq!(again[0]["unreachable_time"]["nanoseconds"], since);

    // The agent comes back with its task: readmitted under its id.
    let _agent = reregister_agent(m.port, &agent_id, &info, &task);
    let agents = get_agents(m.port);
    assert_eq!(
        ids(&agents["agents"], "/agent_info/id/value"),
        [agent_id.as_str()]
    );
    assert_eq!(
        get_json(m.port, "/master/state")["unreachable_slaves"],
        json!(0.0)
    );
    let running = reconcile(&mut fw, "t", &agent_id);
    assert_eq!(running[0]["state"], "TASK_RUNNING");
    drop(fw);

    // Readmitted in the registry too: the next master recovers it.
    m.restart(&[]);
    let agents = get_agents(m.port);
    assert_eq!(
        ids(&agents["recovered_agents"], "/id/value"),
        [agent_id.as_str()]
    );
}

#[test]
fn an_agent_that_registers_again_in_time_keeps_its_tasks() {
    let (mut m, agent_id, info, task) = cluster_with_a_running_task();
    m.kill9();
    m.restart(&["--agent_reregister_timeout=10secs"]);
    let window = Instant::now() + Duration::from_secs(10);
    // The agent comes back first (agents retry within seconds, frameworks may take
    // longer), then its framework; the master knows the task from the agent.
    let agent = reregister_agent(m.port, &agent_id, &info, &task);
    let _agent = LiveAgent::new(agent, m.port, &agent_id);
    // Until its scheduler subscribes, operators see the framework recovered.
    let frameworks = operator_json(m.port, &json!({"type": "GET_FRAMEWORKS"}));
    let recovered = &frameworks["get_frameworks"]["frameworks"][0];
    assert_eq!(recovered["framework_info"]["id"], info["id"]);
    assert_eq!(recovered["recovered"], true);
    assert_eq!(recovered["connected"], false);
    let mut fw = Scheduler::subscribe_as(m.port, info);
    let known = reconcile(&mut fw, "t", &agent_id);
    assert_eq!(known.len(), 1, "{known:?}");
    assert_eq!(known[0]["state"], "TASK_RUNNING");
    assert_eq!(known[0]["message"], "Reconciliation: Latest task state");
    assert_eq!(get_agents(m.port)["recovered_agents"], json!([]));

    // Past the window nothing is reported lost or unreachable.
    std::thread::sleep(window.saturating_duration_since(Instant::now()) + Duration::from_secs(2));
    let events = reconcile_events(&mut fw, "t", &agent_id);
    let states: Vec<&Value> = events
        .iter()
        .map(|e| &e["update"]["status"]["state"])
        .collect();
    assert_eq!(states, [&json!("TASK_RUNNING")], "{events:?}");
    let snapshot = get_json(m.port, "/metrics/snapshot");
    assert_eq!(snapshot["master/recovery_slave_removals"], json!(0.0));
    assert_eq!(snapshot["master/slaves_unreachable"], json!(0.0));
    assert_eq!(snapshot["master/tasks_running"], json!(1.0));
    assert_eq!(
        ids(&get_agents(m.port)["agents"], "/agent_info/id/value"),
        [agent_id.as_str()]
    );
}
