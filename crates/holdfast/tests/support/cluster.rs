//! A cluster for tests: a real `holdfast master` process, and a scheduler that speaks
//! the v1 scheduler API over plain sockets (blocking, so every step is visible).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{free_port, raw_request, BIN};

/// How long a test waits for any one event. Generous: the VM runs 40x slower.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Master {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Master {
    pub fn start(extra: &[&str]) -> Master {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let child = Master::spawn(port, &dir, extra);
        Master { child, port, dir }
    }

    fn spawn(port: u16, dir: &tempfile::TempDir, extra: &[&str]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("master.log"))
            .expect("log");
        let child = Command::new(BIN)
            .arg("master")
            .arg(format!("--port={port}"))
            .arg(format!("--work_dir={}", dir.path().display()))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn master");
        let deadline = Instant::now() + Duration::from_secs(60);
        while raw_request(port, "GET", "/health", None, "")
            .map(|r| r.0)
            .ok()
            != Some(200)
        {
            assert!(Instant::now() < deadline, "master did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts again on the same port (after [`kill9`](Self::kill9)).
    pub fn restart(&mut self, extra: &[&str]) {
        self.kill9();
        self.child = Master::spawn(self.port, &self.dir, extra);
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("master.log")).unwrap_or_default()
    }

    /// An operator call (`POST /api/v1`), answered with JSON.
    pub fn operator(&self, body: &Value) -> Value {
        let (status, text) = post(self.port, "/api/v1", "", body);
        assert_eq!(status, 200, "operator call {body}: {text}");
        serde_json::from_str(&text).expect("operator answer is JSON")
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A chunked RecordIO stream: the answer to a SUBSCRIBE.
pub struct EventStream {
    reader: BufReader<TcpStream>,
    pub stream_id: String,
}

impl EventStream {
    pub fn open(port: u16, path: &str, body: &Value) -> EventStream {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(EVENT_TIMEOUT)).expect("timeout");
        let body = body.to_string();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let mut reader = BufReader::new(s);
        let mut status = String::new();
        reader.read_line(&mut status).expect("status line");
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut stream_id = String::new();
        let mut chunked = false;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header line");
            match name.to_ascii_lowercase().as_str() {
                "mesos-stream-id" => stream_id = value.trim().to_owned(),
                "transfer-encoding" => chunked = value.trim() == "chunked",
                _ => {}
            }
        }
        assert!(chunked, "streams are chunked");
        EventStream { reader, stream_id }
    }

    /// The next record; None when the stream ended.
    pub fn next(&mut self) -> Option<Value> {
        let mut size = String::new();
        self.reader.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return None;
        }
        let mut chunk = vec![0u8; size + 2];
        self.reader.read_exact(&mut chunk).ok()?;
        let text = String::from_utf8(chunk[..size].to_vec()).expect("utf8");
        let (len, json) = text.split_once('\n').expect("recordio");
        assert_eq!(len.parse::<usize>().expect("length"), json.len());
        Some(serde_json::from_str(json).expect("json"))
    }

    /// The next record of `kind`, skipping others.
    pub fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let record = self
                .next()
                .unwrap_or_else(|| panic!("stream ended before {kind}"));
            if record["type"] == kind {
                return record;
            }
        }
    }
}

/// One POST on a connection of its own; `stream` goes in `Mesos-Stream-Id` when not empty.
pub fn post(port: u16, path: &str, stream: &str, body: &Value) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(EVENT_TIMEOUT)).expect("timeout");
    let body = body.to_string();
    let stream_header = if stream.is_empty() {
        String::new()
    } else {
        format!("Mesos-Stream-Id: {stream}\r\n")
    };
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json\r\n{stream_header}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// A framework: its stream, id, and calls.
pub struct Scheduler {
    pub events: EventStream,
    pub framework_id: Value,
    port: u16,
}

impl Scheduler {
    /// Subscribes with `capabilities` (e.g. `["TASK_KILLING_STATE"]`) and reads SUBSCRIBED.
    pub fn subscribe(port: u16, name: &str, capabilities: &[&str]) -> Scheduler {
        let caps: Vec<Value> = capabilities.iter().map(|c| json!({"type": c})).collect();
        Scheduler::subscribe_as(
            port,
            json!({"user": "root", "name": name, "capabilities": caps, "failover_timeout": 3600.0}),
        )
    }

    /// Subscribes with this `FrameworkInfo` (with an `id`, to fail over).
    pub fn subscribe_as(port: u16, info: Value) -> Scheduler {
        let mut body = json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": info}});
        if let Some(id) = info.get("id") {
            body["framework_id"] = id.clone();
        }
        let mut events = EventStream::open(port, "/api/v1/scheduler", &body);
        let subscribed = events.next_of("SUBSCRIBED");
        let framework_id = subscribed["subscribed"]["framework_id"].clone();
        Scheduler {
            events,
            framework_id,
            port,
        }
    }

    pub fn id(&self) -> &str {
        self.framework_id["value"].as_str().unwrap_or("")
    }

    /// A call on this framework's stream; must be accepted (202).
    pub fn call(&self, mut body: Value) {
        body["framework_id"] = self.framework_id.clone();
        let (status, text) = post(
            self.port,
            "/api/v1/scheduler",
            &self.events.stream_id,
            &body,
        );
        assert_eq!(status, 202, "{body}: {text}");
    }

    /// The next offers event's offers.
    pub fn offers(&mut self) -> Vec<Value> {
        let offers = self.events.next_of("OFFERS");
        offers["offers"]["offers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// LAUNCH of `tasks` (TaskInfo without agent_id, which is filled in) on `offer`.
    pub fn launch(&self, offer: &Value, tasks: Vec<Value>) {
        let tasks: Vec<Value> = tasks
            .into_iter()
            .map(|mut t| {
                t["agent_id"] = offer["agent_id"].clone();
                t
            })
            .collect();
        self.call(json!({"type": "ACCEPT", "accept": {
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}],
            "filters": {"refuse_seconds": 0.0}}}));
    }

    /// LAUNCH_GROUP of `tasks` (TaskInfo without agent_id, which is filled in) on
    /// `executor` (an ExecutorInfo), with `offer`.
    pub fn launch_group(&self, offer: &Value, executor: &Value, tasks: Vec<Value>) {
        let tasks: Vec<Value> = tasks
            .into_iter()
            .map(|mut t| {
                t["agent_id"] = offer["agent_id"].clone();
                t
            })
            .collect();
        self.call(json!({"type": "ACCEPT", "accept": {
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH_GROUP", "launch_group": {
                "executor": executor, "task_group": {"tasks": tasks}}}],
            "filters": {"refuse_seconds": 0.0}}}));
    }

    /// Acknowledges `status` if it carries a uuid (updates the master makes up do not).
    pub fn acknowledge(&self, status: &Value) {
        if status.get("uuid").is_some() {
            self.call(json!({"type": "ACKNOWLEDGE", "acknowledge": {
                "agent_id": status["agent_id"], "task_id": status["task_id"],
                "uuid": status["uuid"]}}));
        }
    }

    /// The next status update; acknowledged at once when it carries a uuid.
    pub fn next_update(&mut self) -> Value {
        let update = self.events.next_of("UPDATE");
        let status = update["update"]["status"].clone();
        if status.get("uuid").is_some() {
            self.call(json!({"type": "ACKNOWLEDGE", "acknowledge": {
                "agent_id": status["agent_id"], "task_id": status["task_id"],
                "uuid": status["uuid"]}}));
        }
        status
    }

    pub fn kill(&self, task: &str) {
        self.call(json!({"type": "KILL", "kill": {"task_id": {"value": task}}}));
    }
}

/// A command task asking for `cpus` and 32 MiB.
pub fn command_task(id: &str, command: &str, cpus: f64) -> Value {
    json!({
        "name": id, "task_id": {"value": id},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32.0}}],
        "command": {"value": command}})
}
