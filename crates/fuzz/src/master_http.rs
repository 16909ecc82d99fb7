//! The `master-http` target: the real `holdfast master` process, over plain TCP.
//!
//! Requests are written by hand (HTTP/1.1, `Connection: close`) with a mutated body and a
//! random known path, method, content type and accept header; now and then the whole
//! request, head included, is mutated too. A framework and an agent stay subscribed
//! throughout (their streams are read without blocking), so fixture ids in bodies can be
//! swapped for live ones and calls get past the stream checks. Every answer must be
//! below 500, but 501 for an operator call Mesos has and Holdfast says it does not serve
//! yet; streams are closed as soon as their head arrives. The master must not log a
//! panic, must not exit, and must still answer `/health` at the end.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::corpus::{Corpus, FIXTURE_MASTER_ID, INTERNAL_SEEDS, SCHEDULER_SEEDS};
use crate::mutate::{self, find};
use crate::parsers::signature;
use crate::rng::{fnv1a, Rng};
use crate::{Finding, Target};

/// How long an answer may take. Generous: the master is a debug build on a shared
/// machine, and a request that takes this long is a finding.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests kept to save with a master that died: the state it died in came from them.
const HISTORY: usize = 32;
/// Restarts after the master died before the target gives up for this run.
const MAX_RESTARTS: u32 = 3;

/// `(path, weight)`: the master's endpoints, mostly, and a few it does not serve.
const PATHS: &[(&str, usize)] = &[
    ("/api/v1/scheduler", 40),
    ("/internal/v1/agent", 25),
    ("/api/v1", 12),
    ("/api/v1/operator", 4),
    ("/health", 3),
    ("/version", 3),
    ("/api/v1/executor", 2),
    ("/master/state", 1),
    ("/metrics/snapshot", 1),
    ("/api/v1/scheduler/", 1),
    ("/api/v1/scheduler?framework_id=x", 1),
    ("//api/v1", 1),
    ("/api/v1/%73cheduler", 1),
    ("/internal/v1/agent/../../health", 1),
];

const METHODS: &[(&str, usize)] = &[
    ("POST", 85),
    ("GET", 6),
    ("PUT", 2),
    ("DELETE", 2),
    ("HEAD", 1),
    ("OPTIONS", 1),
    ("PATCH", 1),
    ("FUZZ", 2),
];

const CONTENT_TYPES: &[(Option<&str>, usize)] = &[
    (Some("application/json"), 80),
    (None, 5),
    (Some("application/json; charset=utf-8"), 5),
    (Some("application/x-protobuf"), 4),
    (Some("text/plain"), 3),
    (Some("application/jsonx"), 1),
    (Some(";;;"), 1),
    (Some("*/*"), 1),
];

const ACCEPTS: &[(Option<&str>, usize)] = &[
    (None, 50),
    (Some("application/json"), 30),
    (Some("*/*"), 10),
    (Some("application/recordio"), 5),
    (Some("text/html, application/json;q=0.9"), 3),
    (Some("text/html"), 2),
];

/// Mesos's `master::Call` types (`mesos/v1/master/master.proto`): the only ones the
/// operator API may answer 501 ("not served yet"); Mesos answers any other type 400.
const MASTER_CALLS: &[&str] = &[
    "GET_HEALTH",
    "GET_FLAGS",
    "GET_VERSION",
    "GET_METRICS",
    "GET_LOGGING_LEVEL",
    "SET_LOGGING_LEVEL",
    "LIST_FILES",
    "READ_FILE",
    "GET_STATE",
    "GET_AGENTS",
    "GET_FRAMEWORKS",
    "GET_EXECUTORS",
    "GET_OPERATIONS",
    "GET_TASKS",
    "GET_ROLES",
    "GET_WEIGHTS",
    "UPDATE_WEIGHTS",
    "GET_MASTER",
    "SUBSCRIBE",
    "RESERVE_RESOURCES",
    "UNRESERVE_RESOURCES",
    "CREATE_VOLUMES",
    "DESTROY_VOLUMES",
    "GROW_VOLUME",
    "SHRINK_VOLUME",
    "GET_MAINTENANCE_STATUS",
    "GET_MAINTENANCE_SCHEDULE",
    "UPDATE_MAINTENANCE_SCHEDULE",
    "START_MAINTENANCE",
    "STOP_MAINTENANCE",
    "DRAIN_AGENT",
    "DEACTIVATE_AGENT",
    "REACTIVATE_AGENT",
    "GET_QUOTA",
    "UPDATE_QUOTA",
    "SET_QUOTA",
    "REMOVE_QUOTA",
    "TEARDOWN",
    "MARK_AGENT_GONE",
];

/// Whether a 501 is one the master may give: an operator call that Mesos has and
/// Holdfast says it does not serve yet.
fn may_be_unserved(path: &str, request_body: &[u8], answer: &str) -> bool {
    let operator = matches!(path, "/api/v1" | "/api/v1/operator");
    let kind = serde_json::from_slice::<Value>(request_body)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned));
    let says_so = answer.contains("not served") || answer.contains("not supported");
    operator && says_so && kind.is_some_and(|k| MASTER_CALLS.contains(&k.as_str()))
}

fn weighted<'a, T>(rng: &mut Rng, items: &'a [(T, usize)]) -> &'a T {
    let total: usize = items.iter().map(|(_, w)| w).sum();
    let mut n = rng.below(total);
    for (item, w) in items {
        if n < *w {
            return item;
        }
        n -= w;
    }
    &items[0].0
}

/// A running `holdfast master`, killed when dropped.
struct MasterProcess {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl MasterProcess {
    fn start(bin: &Path, dir: &Path, attempt: u32) -> Result<MasterProcess, String> {
        let log = dir.join(format!("master-{attempt}.log"));
        // The port is free when asked; another process may take it before the master
        // binds, so a master that exits at once is tried again on another port.
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("cannot find a free port: {e}"))?
                .port();
            let stderr =
                File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
            let child = Command::new(bin)
                .arg("master")
                .arg("--ip=127.0.0.1")
                .arg(format!("--port={port}"))
                .arg(format!("--work_dir={}", dir.join("work").display()))
                // Short timers, so heartbeats, pings and unreachable agents happen
                // within a run.
                .arg("--heartbeat_interval=1secs")
                .arg("--agent_ping_timeout=1secs")
                .arg("--max_agent_ping_timeouts=3")
                .arg("--logging_level=WARNING")
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
            let mut master = MasterProcess {
                child,
                port,
                log: log.clone(),
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if master.exited().is_some() {
                    break;
                }
                let health = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
                if let Ok(Some(a)) = exchange(port, health, false) {
                    if a.status == 200 {
                        return Ok(master);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Err(format!(
            "the master did not come up; its log:\n{}",
            tail(&log, 20)
        ))
    }

    /// The exit status, once the master has exited.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("cannot be waited for: {e}")),
        }
    }
}

impl Drop for MasterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `lines` lines of a log file.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// An answer's status line and headers, and the start of its body when it has a length.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Reads the head of an HTTP answer; `buf` keeps what came after it. None: the
/// connection closed first.
fn read_head(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<(u16, String)>> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            return Ok(Some((status, head)));
        }
        match sock.read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(e),
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Sends one request and reads the answer's head, and its body when it has a length (a
/// stream is left unread). `half_close` ends the request side first, so a
/// request whose head was mangled cannot leave the server waiting for more.
fn exchange(port: u16, request: &[u8], half_close: bool) -> std::io::Result<Option<Answer>> {
    let mut sock = TcpStream::connect(("127.0.0.1", port))?;
    sock.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    sock.set_write_timeout(Some(ANSWER_TIMEOUT))?;
    if let Err(e) = sock.write_all(request) {
        // The server may answer and close before it read a whole body it refuses.
        if !matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) {
            return Err(e);
        }
    }
    if half_close {
        let _ = sock.shutdown(Shutdown::Write);
    }
    let mut buf = Vec::new();
    let Some((status, head)) = read_head(&mut sock, &mut buf)? else {
        return Ok(None);
    };
    let length = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok());
    if let Some(len) = length {
        // A server error is read whole, to tell "not served" from other 5xx however
        // long the reason; other bodies only give the outcome's signature.
        let want = len.min(if status >= 500 { 1 << 20 } else { 4096 });
        let mut chunk = [0u8; 16384];
        while buf.len() < want {
            match sock.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.truncate(want);
    } else {
        buf.clear();
    }
    Ok(Some(Answer {
        status,
        head,
        body: buf,
    }))
}

/// A chunked RecordIO stream, decoded as bytes arrive.
#[derive(Default)]
struct Decoder {
    raw: Vec<u8>,
    data: Vec<u8>,
    ended: bool,
}

impl Decoder {
    fn feed(&mut self, bytes: &[u8]) {
        self.raw.extend_from_slice(bytes);
        while let Some(eol) = find(&self.raw, b"\r\n") {
            let size = std::str::from_utf8(&self.raw[..eol])
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
            let Some(size) = size else {
                self.ended = true;
                return;
            };
            if size == 0 {
                self.ended = true;
                return;
            }
            if self.raw.len() < eol + 2 + size + 2 {
                return;
            }
            self.data
                .extend_from_slice(&self.raw[eol + 2..eol + 2 + size]);
            self.raw.drain(..eol + 2 + size + 2);
        }
    }

    fn next_record(&mut self) -> Option<Value> {
        let nl = self.data.iter().position(|b| *b == b'\n')?;
        let len: usize = std::str::from_utf8(&self.data[..nl]).ok()?.parse().ok()?;
        if self.data.len() < nl + 1 + len {
            return None;
        }
        let record =
            serde_json::from_slice(&self.data[nl + 1..nl + 1 + len]).unwrap_or(Value::Null);
        self.data.drain(..nl + 1 + len);
        Some(record)
    }
}

/// A subscription held open: a framework's or the agent's stream.
struct Subscription {
    sock: TcpStream,
    stream_id: String,
    decoder: Decoder,
}

impl Subscription {
    /// Subscribes and waits for the first record (SUBSCRIBED, REGISTERED or ERROR).
    fn open(port: u16, path: &str, body: &Value) -> Result<(Subscription, Value), String> {
        let body = body.to_string();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(ANSWER_TIMEOUT))
            .map_err(|e| e.to_string())?;
        sock.write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let (status, head) = read_head(&mut sock, &mut buf)
            .map_err(|e| e.to_string())?
            .ok_or("closed before answering")?;
        if status != 200 {
            return Err(format!("answered {status}"));
        }
        let stream_id = header(&head, "mesos-stream-id")
            .unwrap_or_default()
            .to_owned();
        let mut decoder = Decoder::default();
        decoder.feed(&buf);
        let mut chunk = [0u8; 8192];
        let first = loop {
            if let Some(r) = decoder.next_record() {
                break r;
            }
            if decoder.ended {
                return Err("the stream ended before its first record".to_owned());
            }
            let n = sock.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the stream closed before its first record".to_owned());
            }
            decoder.feed(&chunk[..n]);
        };
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok((
            Subscription {
                sock,
                stream_id,
                decoder,
            },
            first,
        ))
    }

    /// Records that arrived since the last call; Err when the stream is over.
    fn pump(&mut self) -> Result<Vec<Value>, ()> {
        let mut chunk = [0u8; 16384];
        loop {
            match self.sock.read(&mut chunk) {
                Ok(0) => return Err(()),
                Ok(n) => self.decoder.feed(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return Err(()),
            }
        }
        let mut out = Vec::new();
        while let Some(r) = self.decoder.next_record() {
            out.push(r);
        }
        if self.decoder.ended {
            return Err(());
        }
        Ok(out)
    }
}

/// Ids of the live cluster that stand in for the fixtures' ones.
#[derive(Default)]
struct LiveIds {
    master: Option<String>,
    framework: Option<String>,
    agent: Option<String>,
    offers: Vec<String>,
}

/// The fixtures' ids in `body` replaced by live ones: `<id>-0000` and the like by the
/// held framework's, `<id>-S0` by the held agent's, `<id>-O7` by a live offer's.
fn substitute(ids: &LiveIds, rng: &mut Rng, body: &[u8]) -> Vec<u8> {
    let fixture = FIXTURE_MASTER_ID.as_bytes();
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = find(rest, fixture) {
        out.extend_from_slice(&rest[..at]);
        rest = &rest[at + fixture.len()..];
        let suffix_len = |kind: u8| -> usize {
            if rest.len() >= 2 && rest[0] == b'-' && rest[1] == kind {
                2 + rest[2..].iter().take_while(|b| b.is_ascii_digit()).count()
            } else {
                0
            }
        };
        let framework =
            rest.len() >= 5 && rest[0] == b'-' && rest[1..5].iter().all(u8::is_ascii_digit);
        let (replacement, skip) = if framework {
            (ids.framework.clone(), 5)
        } else if suffix_len(b'S') > 2 {
            (ids.agent.clone(), suffix_len(b'S'))
        } else if suffix_len(b'O') > 2 && !ids.offers.is_empty() {
            (Some(rng.pick(&ids.offers).clone()), suffix_len(b'O'))
        } else {
            (ids.master.clone(), 0)
        };
        match replacement {
            Some(r) => {
                out.extend_from_slice(r.as_bytes());
                rest = &rest[skip..];
            }
            None => out.extend_from_slice(fixture),
        }
    }
    out.extend_from_slice(rest);
    out
}

pub struct MasterHttp {
    bin: PathBuf,
    dir: PathBuf,
    save: PathBuf,
    master: Option<MasterProcess>,
    starts: u32,
    rng: Rng,
    seeds: Vec<Vec<u8>>,
    framework: Option<Subscription>,
    agent: Option<Subscription>,
    ids: LiveIds,
    last_subscribe: Option<Instant>,
    history: VecDeque<Vec<u8>>,
    log_seen: u64,
}

impl MasterHttp {
    /// Starts the master found at `bin`; findings' extra files go to `save`.
    pub fn new(corpus: &Corpus, bin: &Path, save: &Path, seed: u64) -> Result<MasterHttp, String> {
        if !bin.is_file() {
            return Err(format!(
                "the master-http target runs {}, which does not exist: build it with `cargo build -p holdfast`",
                bin.display()
            ));
        }
        let stamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("holdfast-fuzz-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut seeds = corpus.all_bodies();
        seeds.extend(
            SCHEDULER_SEEDS
                .iter()
                .chain(INTERNAL_SEEDS)
                .map(|s| s.as_bytes().to_vec()),
        );
        seeds.push(b"{}".to_vec());
        let mut target = MasterHttp {
            bin: bin.to_owned(),
            dir,
            save: save.join("master-http"),
            master: None,
            starts: 0,
            rng: Rng::new(seed ^ 0x6d61_7374_6572),
            seeds,
            framework: None,
            agent: None,
            ids: LiveIds::default(),
            last_subscribe: None,
            history: VecDeque::new(),
            log_seen: 0,
        };
        target.start()?;
        Ok(target)
    }

    fn start(&mut self) -> Result<(), String> {
        self.master = None;
        self.framework = None;
        self.agent = None;
        self.ids = LiveIds::default();
        self.log_seen = 0;
        self.starts += 1;
        self.master = Some(MasterProcess::start(&self.bin, &self.dir, self.starts)?);
        self.keep_subscribed(true);
        Ok(())
    }

    fn port(&self) -> u16 {
        self.master.as_ref().map_or(0, |m| m.port)
    }

    /// Reads the held streams and subscribes again where one ended (at most every
    /// 50 ms, unless `now`: fuzzed calls fail the held framework over, tear it down and
    /// register the agent anew all the time).
    fn keep_subscribed(&mut self, now: bool) {
        if let Some(fw) = self.framework.as_mut() {
            match fw.pump() {
                Ok(records) => {
                    for r in records {
                        match r["type"].as_str() {
                            Some("OFFERS") => {
                                for o in r["offers"]["offers"].as_array().into_iter().flatten() {
                                    if let Some(id) = o["id"]["value"].as_str() {
                                        self.ids.offers.push(id.to_owned());
                                    }
                                }
                            }
                            Some("RESCIND") => {
                                let id = r["rescind"]["offer_id"]["value"].as_str();
                                self.ids.offers.retain(|o| Some(o.as_str()) != id);
                            }
                            _ => {}
                        }
                    }
                    let n = self.ids.offers.len();
                    self.ids.offers.drain(..n.saturating_sub(16));
                }
                Err(()) => self.framework = None,
            }
        }
        let mut pings = 0;
        if let Some(agent) = self.agent.as_mut() {
            match agent.pump() {
                Ok(records) => pings = records.iter().filter(|r| r["type"] == "PING").count(),
                Err(()) => self.agent = None,
            }
        }
        // Some pings go unanswered, so the agent also becomes unreachable and returns.
        if pings > 0 && self.rng.chance(70) {
            if let (Some(agent), Some(id)) = (&self.agent, &self.ids.agent) {
                let body = json!({"type": "PONG", "agent_id": {"value": id}}).to_string();
                let request = format!(
                    "POST /internal/v1/agent HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nMesos-Stream-Id: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    agent.stream_id,
                    body.len()
                );
                let _ = exchange(self.port(), request.as_bytes(), false);
            }
        }
        if self.framework.is_some() && self.agent.is_some() {
            return;
        }
        if !now
            && self
                .last_subscribe
                .is_some_and(|t| t.elapsed() < Duration::from_millis(50))
        {
            return;
        }
        self.last_subscribe = Some(Instant::now());
        let port = self.port();
        if self.framework.is_none() {
            let mut info = json!({
                "user": "root", "name": "holdfast-fuzz", "roles": ["*"], "failover_timeout": 3600.0,
                "capabilities": [{"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"}],
            });
            let mut body = json!({"type": "SUBSCRIBE", "subscribe": {}});
            if let Some(id) = &self.ids.framework {
                info["id"] = json!({ "value": id });
                body["framework_id"] = json!({ "value": id });
            }
            body["subscribe"]["framework_info"] = info;
            // A framework torn down by a fuzzed TEARDOWN may not come back: the second
            // try subscribes a new one.
            for _ in 0..2 {
                let Ok((sub, first)) = Subscription::open(port, "/api/v1/scheduler", &body) else {
                    break;
                };
                if first["type"] == "SUBSCRIBED" {
                    let s = &first["subscribed"];
                    self.ids.framework = s["framework_id"]["value"].as_str().map(str::to_owned);
                    self.ids.master = s["master_info"]["id"].as_str().map(str::to_owned);
                    self.framework = Some(sub);
                    break;
                }
                self.ids.framework = None;
                body["subscribe"]["framework_info"]
                    .as_object_mut()
                    .map(|info| info.remove("id"));
                body.as_object_mut().map(|b| b.remove("framework_id"));
            }
        }
        if self.agent.is_none() {
            let mut body = json!({"type": "SUBSCRIBE", "info": {
                "hostname": "127.0.0.1", "port": 5051,
                "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 4.0}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 4096.0}},
                    {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 32000}]}},
                ],
            }});
            if let Some(id) = &self.ids.agent {
                body["agent_id"] = json!({ "value": id });
            }
            if let Ok((sub, first)) = Subscription::open(port, "/internal/v1/agent", &body) {
                if first["type"] == "REGISTERED" {
                    self.ids.agent = first["agent_id"]["value"].as_str().map(str::to_owned);
                    self.agent = Some(sub);
                }
            }
        }
    }

    /// The endpoint a body is for, going by its call type; most requests go there.
    fn path_for(&mut self, body: &[u8]) -> &'static str {
        let kind = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned));
        let own = match kind.as_deref() {
            Some("PONG" | "EXECUTOR_EXITED") => Some("/internal/v1/agent"),
            Some(t) if t.starts_with("GET_") => Some("/api/v1"),
            Some("SUBSCRIBE") if find(body, b"\"info\"").is_some() => Some("/internal/v1/agent"),
            Some("UPDATE" | "MESSAGE") if find(body, b"\"agent_id\"").is_some() => {
                Some("/internal/v1/agent")
            }
            Some(t) if holdfast_api::scheduler::SUPPORTED_CALLS.contains(&t) => {
                Some("/api/v1/scheduler")
            }
            _ => None,
        };
        match own {
            Some(path) if self.rng.chance(80) => path,
            _ => weighted::<&str>(&mut self.rng, PATHS),
        }
    }

    /// A request around `body`; true when its head was mutated as well.
    fn request(&mut self, body: &[u8]) -> (String, Vec<u8>, bool) {
        let method = *weighted(&mut self.rng, METHODS);
        let path = self.path_for(body);
        let body = substitute(&self.ids, &mut self.rng, body);
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n",
            self.port()
        );
        if let Some(ct) = weighted(&mut self.rng, CONTENT_TYPES) {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        if let Some(accept) = weighted(&mut self.rng, ACCEPTS) {
            head.push_str(&format!("Accept: {accept}\r\n"));
        }
        let held = match path {
            "/api/v1/scheduler" => self.framework.as_ref(),
            "/internal/v1/agent" => self.agent.as_ref(),
            _ => None,
        };
        match held {
            Some(s) if self.rng.chance(85) => {
                head.push_str(&format!("Mesos-Stream-Id: {}\r\n", s.stream_id));
            }
            _ if self.rng.chance(5) => head.push_str("Mesos-Stream-Id: not-a-stream\r\n"),
            _ => {}
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        let mut raw = head.into_bytes();
        raw.extend_from_slice(&body);
        let mangled = self.rng.chance(5);
        if mangled {
            raw = mutate::mutate_bytes(&mut self.rng, &raw, &[]);
        }
        (path.to_owned(), raw, mangled)
    }

    /// Sends `raw` and checks the answer and the master. `strict`: the request's head is
    /// intact, so it must be answered; one that is not has its sending side closed, so
    /// a mangled length cannot keep the server waiting (it may then go unanswered).
    fn send(&mut self, path: &str, raw: &[u8], strict: bool) -> Result<String, Finding> {
        self.send_with(path, raw, strict, !strict)
    }

    fn send_with(
        &mut self,
        path: &str,
        raw: &[u8],
        strict: bool,
        half_close: bool,
    ) -> Result<String, Finding> {
        self.history.push_back(raw.to_vec());
        if self.history.len() > HISTORY {
            self.history.pop_front();
        }
        let answer = exchange(self.port(), raw, half_close);
        self.check_master(raw)?;
        let finding = |kind: String, detail: String| {
            let mut f = Finding::new(kind, detail);
            f.artifact = Some(raw.to_vec());
            f
        };
        match answer {
            Ok(Some(a)) => {
                let body = String::from_utf8_lossy(&a.body).into_owned();
                let request_body = find(raw, b"\r\n\r\n").map_or(&[][..], |at| &raw[at + 4..]);
                if a.status == 501 && !may_be_unserved(path, request_body, &body) {
                    return Err(finding(
                        format!("master answered 501 to a call Mesos does not have, on {path}"),
                        format!(
                            "Mesos answers 400 to unknown call types (fixtures errors/02, 29, 33)\n{}\n\n{body}",
                            a.head
                        ),
                    ));
                }
                if a.status >= 500 && a.status != 501 {
                    return Err(finding(
                        format!("master answered {} on {path}", a.status),
                        format!("{}\n\n{body}", a.head),
                    ));
                }
                Ok(signature(&format!("{path} {}", a.status), &body))
            }
            Ok(None) if strict => Err(finding(
                format!("master closed the connection without answering on {path}"),
                "a well-formed request got no answer (a handler that panicked?)".to_owned(),
            )),
            Err(e) if strict => Err(finding(
                format!("master did not answer on {path}"),
                format!("{e} (waited up to {ANSWER_TIMEOUT:?})"),
            )),
            _ => Ok(format!("{path} no answer")),
        }
    }

    /// The master is alive and its log has no panic.
    fn check_master(&mut self, raw: &[u8]) -> Result<(), Finding> {
        let Some(master) = self.master.as_mut() else {
            return Ok(());
        };
        let log = master.log.clone();
        if let Some(status) = master.exited() {
            let history = self.save_history(raw);
            let mut f = Finding::new(
                "master exited",
                format!(
                    "the master exited ({status}) after this request; {history}\nits log ends:\n{}",
                    tail(&log, 30)
                ),
            );
            f.artifact = Some(raw.to_vec());
            if self.starts <= MAX_RESTARTS {
                if let Err(e) = self.start() {
                    f.detail
                        .push_str(&format!("\nand could not be restarted: {e}"));
                }
            }
            return Err(f);
        }
        let len = std::fs::metadata(&log).map_or(0, |m| m.len());
        if len > self.log_seen {
            let text = std::fs::read(&log).unwrap_or_default();
            let start = usize::try_from(self.log_seen).unwrap_or(0).min(text.len());
            let new = String::from_utf8_lossy(&text[start..]).into_owned();
            self.log_seen = len;
            if let Some(at) = new.find("panicked at") {
                let mut f = Finding::new(
                    "master logged a panic",
                    new[at..].lines().take(20).collect::<Vec<_>>().join("\n"),
                );
                f.artifact = Some(raw.to_vec());
                return Err(f);
            }
        }
        Ok(())
    }

    /// Saves the requests that led up to a crash next to it; says where.
    fn save_history(&self, raw: &[u8]) -> String {
        let path = self.save.join(format!("crash-{:016x}.history", fnv1a(raw)));
        let mut text = Vec::new();
        for (i, r) in self.history.iter().enumerate() {
            text.extend_from_slice(format!("\n#### request {i}\n").as_bytes());
            text.extend_from_slice(r);
        }
        match std::fs::create_dir_all(&self.save).and_then(|()| std::fs::write(&path, text)) {
            Ok(()) => format!(
                "the {} requests before it: {}",
                self.history.len(),
                path.display()
            ),
            Err(e) => format!(
                "the requests before it were not saved ({}: {e})",
                path.display()
            ),
        }
    }
}

impl Target for MasterHttp {
    fn name(&self) -> &'static str {
        "master-http"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        self.seeds.clone()
    }

    /// Some seeds go out unchanged: with live ids swapped in, a seed is a valid call,
    /// and valid calls are what move the master into the states worth fuzzing in.
    fn mutate(&mut self, rng: &mut Rng, input: &[u8], pool: &[Vec<u8>]) -> Vec<u8> {
        if rng.chance(30) {
            rng.pick(&self.seeds).clone()
        } else {
            mutate::mutate(rng, input, pool)
        }
    }

    fn run(&mut self, input: &[u8]) -> Result<String, Finding> {
        if self.master.is_none() {
            return Ok("no master".to_owned());
        }
        self.keep_subscribed(false);
        let (path, raw, mangled) = self.request(input);
        self.send(&path, &raw, !mangled)
    }

    /// A saved request goes out as it is.
    fn replay(&mut self, input: &[u8]) -> Result<(), Finding> {
        self.keep_subscribed(true);
        let path = input
            .split(|b| *b == b' ')
            .nth(1)
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();
        // Whether its head was mangled is not known, so it is not held to an answer;
        // it is sent whole, so a complete request gets one to check.
        self.send_with(&path, input, false, false).map(|_| ())
    }

    fn finish(&mut self) -> Result<(), Finding> {
        let health = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        self.check_master(b"")?;
        match exchange(self.port(), health, false) {
            Ok(Some(a)) if a.status == 200 => Ok(()),
            Ok(Some(a)) => Err(Finding::new("master unhealthy at the end", a.head)),
            Ok(None) => Err(Finding::new(
                "master unhealthy at the end",
                "no answer to /health",
            )),
            Err(e) => Err(Finding::new("master unhealthy at the end", e.to_string())),
        }
    }
}

impl Drop for MasterHttp {
    fn drop(&mut self) {
        self.framework = None;
        self.agent = None;
        self.master = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decoder_reads_records_across_chunk_boundaries() {
        let mut d = Decoder::default();
        let record = b"20\n{\"type\":\"HEARTBEAT\"}";
        let chunk = format!("{:x}\r\n", record.len());
        d.feed(chunk.as_bytes());
        d.feed(&record[..5]);
        assert!(d.next_record().is_none());
        d.feed(&record[5..]);
        d.feed(b"\r\n");
        assert_eq!(d.next_record(), Some(json!({"type": "HEARTBEAT"})));
        assert!(!d.ended);
        d.feed(b"0\r\n\r\n");
        assert!(d.ended);
    }

    #[test]
    fn fixture_ids_become_live_ones() {
        let ids = LiveIds {
            master: Some("M".to_owned()),
            framework: Some("M-0003".to_owned()),
            agent: Some("M-S2".to_owned()),
            offers: vec!["M-O9".to_owned()],
        };
        let fixture = FIXTURE_MASTER_ID;
        let body =
            format!("{fixture}-0000 {fixture}-S0 {fixture}-O12, {fixture} {fixture}-Sx {fixture}-");
        let out = substitute(&ids, &mut Rng::new(1), body.as_bytes());
        assert_eq!(String::from_utf8_lossy(&out), "M-0003 M-S2 M-O9, M M-Sx M-");
        // Until the cluster's ids are known the fixtures' stay.
        let none = substitute(&LiveIds::default(), &mut Rng::new(1), body.as_bytes());
        assert_eq!(none, body.as_bytes());
    }

    #[test]
    fn only_real_operator_calls_may_go_unserved() {
        let not_served = "master call GET_STATE is not served yet";
        assert!(may_be_unserved(
            "/api/v1",
            br#"{"type":"GET_STATE"}"#,
            not_served
        ));
        assert!(!may_be_unserved(
            "/api/v1",
            br#"{"type":"GET_FOO"}"#,
            not_served
        ));
        assert!(!may_be_unserved(
            "/api/v1",
            br#"{"type":"get_state"}"#,
            not_served
        ));
        assert!(!may_be_unserved(
            "/api/v1",
            br#"{"type":"GET_STATE"}"#,
            "boom"
        ));
        assert!(!may_be_unserved(
            "/api/v1/scheduler",
            br#"{"type":"GET_STATE"}"#,
            not_served
        ));
    }

    #[test]
    fn weights_pick_every_item() {
        let mut rng = Rng::new(9);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..20_000 {
            seen.insert(*weighted(&mut rng, PATHS));
        }
        assert_eq!(seen.len(), PATHS.len());
    }
}
