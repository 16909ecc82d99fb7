//! Test harness: a real `holdfast agent` process on its own port, work dir, runtime dir
//! and uniquely named cgroups root, cleaned up on drop.

#![allow(dead_code)]

pub mod cluster;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub const BIN: &str = env!("CARGO_BIN_EXE_holdfast");

/// The cgroup2 mount, when the test can use it (root and a writable cgroup2); otherwise
/// prints why the test is skipped. Set HOLDFAST_REQUIRE_CGROUP2=1 to fail instead (CI).
pub fn cgroup2() -> Option<PathBuf> {
    let reason = (|| {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("needs root".to_string());
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
        let mut found = None;
        for line in mounts.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            if post.split_whitespace().next() == Some("cgroup2") {
                if let Some(mp) = pre.split_whitespace().nth(4) {
                    if found.is_none() || mp == "/sys/fs/cgroup" {
                        found = Some(PathBuf::from(mp));
                    }
                }
            }
        }
        let mount = found.ok_or("needs a cgroup2 mount")?;
        let probe = mount.join(format!("holdfast-probe-{}", std::process::id()));
        std::fs::create_dir(&probe)
            .map_err(|e| format!("cgroup2 at {} is not writable: {e}", mount.display()))?;
        let _ = std::fs::remove_dir(&probe);
        Ok(mount)
    })();
    match reason {
        Ok(m) => Some(m),
        Err(why) => {
            skip(
                "HOLDFAST_REQUIRE_CGROUP2",
                &format!("{why} (root and a writable cgroup2 hierarchy)"),
            );
            None
        }
    }
}

/// Says why a test does not run, or fails it when `require` is set in the environment
/// (CI sets the variables for what its hosts have, so nothing skips silently there).
pub fn skip(require: &str, why: &str) {
    if std::env::var_os(require).is_some() {
        panic!("{require} is set but this test cannot run: {why}");
    }
    eprintln!("skipped: {why}");
}

pub struct Agent {
    pub mount: PathBuf,
    pub root: String,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub child: Option<Child>,
    pub extra: Vec<String>,
}

impl Agent {
    /// Starts an agent and waits until it serves.
    pub fn start(mount: &Path, extra: &[&str]) -> Agent {
        let mut a = Agent::prepare(mount, extra);
        a.restart();
        a
    }

    /// An agent's dirs, names and port, not started: for running it some other way (as a
    /// systemd service). Dropping it still cleans up what it launched.
    pub fn prepare(mount: &Path, extra: &[&str]) -> Agent {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        Agent {
            mount: mount.to_path_buf(),
            root: format!("holdfast-test-{}-{n}", std::process::id()),
            dir: tempfile::tempdir().expect("tempdir"),
            port: free_port(),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn work_dir(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub fn cgroup_root(&self) -> PathBuf {
        self.mount.join(&self.root)
    }

    /// Whether this agent puts containers in systemd scopes (its default where systemd
    /// is the init system).
    pub fn systemd(&self) -> bool {
        systemd_booted()
            && !self
                .extra
                .iter()
                .any(|a| a == "--systemd_enable_support=false")
    }

    /// Each test agent has a slice of its own, so that recoveries never meet another
    /// test's scopes.
    pub fn slice(&self) -> String {
        format!("{}.slice", self.root.replace('-', "_"))
    }

    /// The cgroup of top-level container `id` (its limits), under either layout.
    pub fn cgroup(&self, id: &str) -> PathBuf {
        if self.systemd() {
            self.mount
                .join(self.slice())
                .join(format!("holdfast-{id}.scope"))
                .join("container")
        } else {
            self.cgroup_root().join(id)
        }
    }

    /// A running process in what looks like container `id` to this agent's recovery, with
    /// no checkpoint behind it: a cgroup under the root, or a scope in the slice.
    /// Returns the cgroup recovery must remove, and the process.
    pub fn start_orphan(&self, id: &str) -> (PathBuf, Child) {
        if self.systemd() {
            let unit = format!("holdfast-{id}.scope");
            let child = Command::new("systemd-run")
                .args(["--scope", "--quiet", "-p", "Delegate=yes"])
                .arg(format!("--unit={unit}"))
                .arg(format!("--slice={}", self.slice()))
                .args(["sleep", "1000"])
                .spawn()
                .expect("systemd-run");
            let scope = self.mount.join(self.slice()).join(&unit);
            let pid = child.id().to_string();
            let deadline = Instant::now() + Duration::from_secs(20);
            while !std::fs::read_to_string(scope.join("cgroup.procs"))
                .is_ok_and(|p| p.lines().any(|l| l == pid))
            {
                assert!(
                    Instant::now() < deadline,
                    "orphan scope {unit} never started"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            (scope, child)
        } else {
            let orphan = self.cgroup_root().join(id);
            std::fs::create_dir(&orphan).expect("orphan cgroup");
            let child = Command::new("sleep").arg("1000").spawn().expect("sleep");
            std::fs::write(orphan.join("cgroup.procs"), child.id().to_string())
                .expect("move stray");
            (orphan, child)
        }
    }

    /// What the agent wrote to stderr (its log) so far, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    pub fn args(&self) -> Vec<String> {
        let mut v = vec![
            "agent".to_string(),
            format!("--work_dir={}", self.work_dir().display()),
            format!("--runtime_dir={}", self.runtime_dir().display()),
            format!("--cgroups_root={}", self.root),
            format!("--cgroups_hierarchy={}", self.mount.display()),
            format!("--systemd_containers_slice={}", self.slice()),
            "--ip=127.0.0.1".to_string(),
            format!("--port={}", self.port),
            "--logging_level=WARNING".to_string(),
        ];
        v.extend(self.extra.iter().cloned());
        v
    }

    /// Runs the agent binary to completion with these args plus `more` (e.g. a strict
    /// recovery that must fail).
    pub fn run_to_exit(&self, more: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(self.args())
            .args(more)
            .output()
            .expect("run agent")
    }

    /// Starts (again) on a fresh port and waits for GET_HEALTH.
    pub fn restart(&mut self) {
        self.port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .expect("agent log");
        let child = Command::new(BIN)
            .args(self.args())
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn agent");
        self.child = Some(child);
        // Generous: under emulation, with other tests starting agents beside it, a start
        // has taken over 20 s.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok((200, _)) = self.try_call(&json!({"type": "GET_HEALTH"})) {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("agent exited during start: {status}\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "agent did not become healthy");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn try_call(&self, body: &Value) -> std::io::Result<(u16, String)> {
        post(self.port, &body.to_string(), "application/json")
    }

    pub fn call(&self, body: Value) -> (u16, String) {
        self.try_call(&body).expect("agent answers")
    }

    pub fn launch(&self, id: &str, cmd: &str) {
        let (status, body) = self.call(launch_body(id, None, cmd));
        assert_eq!(status, 200, "launch {id}: {body}");
    }

    pub fn wait(&self, id: Value) -> Value {
        let (status, body) =
            self.call(json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": id}}));
        assert_eq!(status, 200, "wait: {body}");
        serde_json::from_str(&body).expect("wait json")
    }

    pub fn kill(&self, id: Value, signal: Option<i32>) -> (u16, String) {
        let mut k = json!({"container_id": id});
        if let Some(s) = signal {
            k["signal"] = json!(s);
        }
        self.call(json!({"type": "KILL_CONTAINER", "kill_container": k}))
    }

    /// Ids of the containers GET_CONTAINERS lists (nested as "parent.child").
    pub fn listed(&self) -> Vec<String> {
        let (status, body) = self.call(json!({"type": "GET_CONTAINERS", "get_containers": {"show_nested": true, "show_standalone": true}}));
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        let mut ids: Vec<String> = v["get_containers"]["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .map(|c| id_string(&c["container_id"]))
            .collect();
        ids.sort();
        ids
    }

    pub fn leaf_pids(&self, id: &str) -> Vec<i32> {
        let path = self.cgroup(id).join("leaf/cgroup.procs");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    }

    /// The leaf's processes with their command lines, for failure messages.
    pub fn leaf_processes(&self, id: &str) -> Vec<String> {
        self.leaf_pids(id)
            .into_iter()
            .map(|pid| {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                format!("{pid}: {}", cmd.trim_end())
            })
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        // Destroy whatever the test left running, then the root cgroup itself.
        let _ = Command::new(BIN)
            .args(self.args())
            .arg("--recover=cleanup")
            .arg("--strict=false")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir(self.cgroup_root());
    }
}

/// systemd is the init system here.
pub fn systemd_booted() -> bool {
    std::fs::symlink_metadata("/run/systemd/system").is_ok_and(|m| m.is_dir())
}

pub fn id_string(id: &Value) -> String {
    let mut parts = vec![id["value"].as_str().unwrap_or("").to_string()];
    let mut cur = &id["parent"];
    while !cur.is_null() {
        parts.push(cur["value"].as_str().unwrap_or("").to_string());
        cur = &cur["parent"];
    }
    parts.reverse();
    parts.join(".")
}

pub fn cid(value: &str) -> Value {
    json!({"value": value})
}

pub fn nested(parent: &str, value: &str) -> Value {
    json!({"value": value, "parent": {"value": parent}})
}

pub fn launch_body(id: &str, parent: Option<&str>, cmd: &str) -> Value {
    let container_id = match parent {
        Some(p) => nested(p, id),
        None => cid(id),
    };
    json!({"type": "LAUNCH_CONTAINER", "launch_container": {
        "container_id": container_id,
        "command": {"value": cmd, "shell": true},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}
        ]
    }})
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One HTTP/1.1 POST to /api/v1; returns status and body.
pub fn post(port: u16, body: &str, content_type: &str) -> std::io::Result<(u16, String)> {
    raw_request(port, "POST", "/api/v1", Some(content_type), body)
}

pub fn raw_request(
    port: u16,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let ct = content_type
        .map(|c| format!("Content-Type: {c}\r\n"))
        .unwrap_or_default();
    let sent = write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{ct}Accept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // A server may answer and close before reading a whole body it refuses (413); the
    // answer is still there to read, so a failed write is only an error without one.
    let mut raw = Vec::new();
    let read = s.read_to_end(&mut raw);
    let resp = String::from_utf8_lossy(&raw).into_owned();
    if resp.is_empty() {
        sent?;
        read?;
    }
    let status: u16 = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {resp:?}")))?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    Ok((status, body))
}

/// True once `pid` no longer runs (gone, or a zombie nobody reaped yet).
pub fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
