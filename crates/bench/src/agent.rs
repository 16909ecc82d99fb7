//! The agent under test: its scratch directories and cgroup, starting and killing it, its
//! API, and cleaning everything up afterwards.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::http::{self, Failure, Response};
use crate::procfs::{self, CgroupMounts};

/// The supervisor's `comm`.
pub const SUPERVISOR_COMM: &str = "holdfast-sup";

/// How long one agent may take to become healthy before the bench gives up.
const HEALTHY_LIMIT: Duration = Duration::from_secs(300);

/// Timeout of one `GET_HEALTH` poll while an agent starts.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);

/// How long `--recover=cleanup` may take.
const CLEANUP_LIMIT: Duration = Duration::from_secs(600);

/// Everything one bench run owns: scratch directories under /tmp, a cgroup below the
/// cgroup2 mount, and an address for the agent.
pub struct Setup {
    pub holdfast: PathBuf,
    pub base: PathBuf,
    pub work_dir: PathBuf,
    pub runtime_dir: PathBuf,
    pub log_dir: PathBuf,
    pub cgroups_root: String,
    /// The containers' slice when the agent makes them systemd scopes.
    pub slice: String,
    pub mounts: CgroupMounts,
    pub addr: SocketAddr,
    pub request_timeout: Duration,
    /// Extra flags for every agent this run starts (e.g. `--isolation=`).
    pub agent_args: Vec<String>,
    starts: u32,
}

impl Setup {
    /// Creates the scratch directories. `port` 0 picks a free port.
    pub fn create(
        holdfast: PathBuf,
        mounts: CgroupMounts,
        port: u16,
        request_timeout: Duration,
    ) -> anyhow::Result<Setup> {
        let pid = std::process::id();
        let base = std::env::temp_dir().join(format!("holdfast-bench-{pid}"));
        std::fs::create_dir(&base).with_context(|| format!("cannot create {}", base.display()))?;
        let setup = Setup {
            holdfast,
            work_dir: base.join("work"),
            runtime_dir: base.join("run"),
            log_dir: base.join("logs"),
            base,
            cgroups_root: format!("holdfast-bench-{pid}"),
            slice: format!("holdfast_bench_{pid}.slice"),
            mounts,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, pick_port(port)?)),
            request_timeout,
            agent_args: Vec::new(),
            starts: 0,
        };
        std::fs::create_dir(&setup.log_dir)
            .with_context(|| format!("cannot create {}", setup.log_dir.display()))?;
        Ok(setup)
    }

    /// The directory of the cgroup that holds every container of this run.
    pub fn cgroup_dir(&self) -> PathBuf {
        self.mounts.unified.join(&self.cgroups_root)
    }

    /// Whether the agent puts containers in systemd scopes (its default under systemd).
    pub fn systemd(&self) -> bool {
        std::fs::symlink_metadata("/run/systemd/system").is_ok_and(|m| m.is_dir())
            && !self
                .agent_args
                .iter()
                .any(|a| a == "--systemd_enable_support=false")
    }

    /// The leaf cgroup (supervisor and workload) of a container.
    pub fn leaf_dir(&self, id: &str) -> PathBuf {
        if self.systemd() {
            self.mounts
                .unified
                .join(&self.slice)
                .join(format!("holdfast-{id}.scope/container/leaf"))
        } else {
            self.cgroup_dir().join(id).join("leaf")
        }
    }

    pub fn client(&self) -> Client {
        Client {
            addr: self.addr,
            timeout: self.request_timeout,
        }
    }

    fn agent_command(&self, log: &Path) -> anyhow::Result<Command> {
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(&self.holdfast);
        cmd.arg("agent")
            .arg("--work_dir")
            .arg(&self.work_dir)
            .arg("--runtime_dir")
            .arg(&self.runtime_dir)
            .arg("--cgroups_root")
            .arg(&self.cgroups_root)
            .arg("--systemd_containers_slice")
            .arg(&self.slice)
            .stdin(Stdio::null())
            .args(&self.agent_args)
            .stdout(out)
            .stderr(err);
        // Its own process group: a Ctrl-C meant for the bench must not reach the agent
        // (the bench then cleans up itself).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        Ok(cmd)
    }

    /// Starts an agent in reconnect mode; the clock for its start-up runs from just
    /// before the spawn.
    pub fn start_agent(&mut self) -> anyhow::Result<Agent> {
        self.starts += 1;
        let log = self.log_dir.join(format!("agent-{}.log", self.starts));
        let mut cmd = self.agent_command(&log)?;
        cmd.arg("--ip")
            .arg(self.addr.ip().to_string())
            .arg("--port")
            .arg(self.addr.port().to_string());
        let spawned_at = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", self.holdfast.display()))?;
        Ok(Agent {
            child,
            spawned_at,
            log,
        })
    }

    /// Kills the agent, destroys every container with `--recover=cleanup`, removes the
    /// run's cgroup and its scratch directories. Goes on after a failed step and returns
    /// what failed. The logs are kept when `keep_logs` is set or anything failed.
    pub fn cleanup(&mut self, agent: Option<Agent>, keep_logs: bool) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(agent) = agent {
            if let Err(e) = agent.kill() {
                problems.push(format!("cannot kill the agent: {e:#}"));
            }
        }
        if let Err(e) = self.run_cleanup_mode() {
            problems.push(format!("{e:#}"));
        }
        let cgroup = self.cgroup_dir();
        if cgroup.exists() {
            if let Err(e) = std::fs::remove_dir(&cgroup) {
                let left = std::fs::read_dir(&cgroup)
                    .map(|d| {
                        d.filter_map(|e| e.ok())
                            .filter(|e| e.path().is_dir())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                problems.push(format!(
                    "cannot remove cgroup {}: {e} (child cgroups left: {})",
                    cgroup.display(),
                    if left.is_empty() {
                        "none".to_string()
                    } else {
                        left.join(", ")
                    }
                ));
            }
        }
        let keep = keep_logs || !problems.is_empty();
        let doomed = if keep {
            vec![self.work_dir.clone(), self.runtime_dir.clone()]
        } else {
            vec![self.base.clone()]
        };
        for dir in doomed {
            if dir.exists() {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    problems.push(format!("cannot remove {}: {e}", dir.display()));
                }
            }
        }
        if keep {
            eprintln!("agent logs kept in {}", self.log_dir.display());
        }
        problems
    }

    fn run_cleanup_mode(&mut self) -> anyhow::Result<()> {
        let log = self.log_dir.join("cleanup.log");
        let mut cmd = self.agent_command(&log)?;
        cmd.arg("--recover=cleanup");
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", self.holdfast.display()))?;
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if started.elapsed() > CLEANUP_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "`holdfast agent --recover=cleanup` did not finish within {} s{}",
                    CLEANUP_LIMIT.as_secs(),
                    log_tail(&log, 5)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if !status.success() {
            bail!(
                "`holdfast agent --recover=cleanup` failed ({status}){}",
                log_tail(&log, 5)
            );
        }
        Ok(())
    }

    /// The supervisor of a container: the parent of its executor, or else the process in
    /// its leaf cgroup named [`SUPERVISOR_COMM`]. The flag tells whether the fallback
    /// was needed.
    pub fn supervisor_of(&self, id: &str, executor_pid: Option<u32>) -> Option<(u32, bool)> {
        if let Some(parent) = executor_pid.and_then(|pid| procfs::ppid(pid).ok()) {
            if procfs::comm(parent).as_deref() == Some(SUPERVISOR_COMM) {
                return Some((parent, false));
            }
        }
        procfs::cgroup_procs(&self.leaf_dir(id))
            .ok()?
            .into_iter()
            .find(|&pid| procfs::comm(pid).as_deref() == Some(SUPERVISOR_COMM))
            .map(|pid| (pid, true))
    }
}

/// A free port on 127.0.0.1 when `port` is 0.
pub fn pick_port(port: u16) -> anyhow::Result<u16> {
    if port != 0 {
        return Ok(port);
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("cannot find a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// The last `n` lines of a log, formatted to follow an error message.
pub fn log_tail(path: &Path, n: usize) -> String {
    let Ok(text) = std::fs::read_to_string(path) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = lines[lines.len().saturating_sub(n)..].join("\n  ");
    format!("\nlast lines of {}:\n  {tail}", path.display())
}

/// The error for an agent that exited on its own; it carries the end of its log.
#[derive(Debug)]
pub struct Exited(String);

impl std::fmt::Display for Exited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Exited {}

/// A running agent.
pub struct Agent {
    child: Child,
    spawned_at: Instant,
    pub log: PathBuf,
}

/// How an agent came up.
#[derive(Debug, Clone, Copy)]
pub struct Startup {
    /// From the spawn to the first HTTP answer of any kind (503 while recovering).
    pub first_answer: Duration,
    /// From the spawn to the first `GET_HEALTH` answered with 200.
    pub healthy: Duration,
    /// `GET_HEALTH` calls that got a 503.
    pub unavailable_answers: u32,
}

impl Agent {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the agent has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            Some(status) => Err(self.exited(status)),
            None => Ok(()),
        }
    }

    fn exited(&self, status: ExitStatus) -> anyhow::Error {
        anyhow::Error::new(Exited(format!(
            "the agent exited ({status}){}",
            log_tail(&self.log, 10)
        )))
    }

    /// Polls `GET_HEALTH` every `every` until it answers 200.
    pub fn wait_healthy(&mut self, client: &Client, every: Duration) -> anyhow::Result<Startup> {
        let mut first_answer = None;
        let mut unavailable_answers = 0;
        let mut last_failure = None;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(self.exited(status));
            }
            match client.health_poll() {
                Ok(r) => {
                    let at = self.spawned_at.elapsed();
                    first_answer.get_or_insert(at);
                    match r.status {
                        200 => {
                            return Ok(Startup {
                                first_answer: first_answer.unwrap_or(at),
                                healthy: at,
                                unavailable_answers,
                            })
                        }
                        503 => unavailable_answers += 1,
                        other => bail!("GET_HEALTH answered {other}: {}", r.text()),
                    }
                }
                Err(Failure::Refused) => {}
                // Retried: whatever it is, the agent exiting or the time limit ends it.
                Err(Failure::Other(e)) => last_failure = Some(e),
            }
            if self.spawned_at.elapsed() > HEALTHY_LIMIT {
                let last = last_failure
                    .map(|e| format!(" (last GET_HEALTH failure: {e:#})"))
                    .unwrap_or_default();
                bail!(
                    "the agent was not healthy {} s after its start{last}{}",
                    HEALTHY_LIMIT.as_secs(),
                    log_tail(&self.log, 10)
                );
            }
            crate::check_interrupted()?;
            std::thread::sleep(every);
        }
    }

    /// SIGKILL, then reap it.
    pub fn kill(mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_none() {
            self.child.kill().context("cannot send SIGKILL")?;
        }
        self.child.wait().context("cannot reap the agent")?;
        Ok(())
    }
}

/// One container as `GET_CONTAINERS` lists it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: String,
    pub executor_pid: Option<u32>,
}

/// Calls on the agent's `/api/v1`.
#[derive(Debug, Clone)]
pub struct Client {
    addr: SocketAddr,
    timeout: Duration,
}

impl Client {
    fn post(&self, body: &[u8]) -> Result<Response, Failure> {
        http::post_json(self.addr, "/api/v1", body, self.timeout)
    }

    fn call(&self, what: &str, call: &Value) -> anyhow::Result<Response> {
        let body = serde_json::to_vec(call)?;
        self.post(&body)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{what} failed"))
    }

    fn call_ok(&self, what: &str, call: &Value) -> anyhow::Result<Response> {
        let r = self.call(what, call)?;
        if r.status != 200 {
            bail!("{what} answered {}: {}", r.status, r.text());
        }
        Ok(r)
    }

    /// `GET_HEALTH` with a short timeout, for polling a starting agent.
    fn health_poll(&self) -> Result<Response, Failure> {
        http::post_json(
            self.addr,
            "/api/v1",
            br#"{"type":"GET_HEALTH"}"#,
            self.timeout.min(POLL_TIMEOUT),
        )
    }

    /// Launches a shell command and returns the round trip of the call alone: the
    /// request is encoded before the clock starts.
    pub fn launch(&self, id: &str, shell_command: &str) -> anyhow::Result<Duration> {
        let body = serde_json::to_vec(&json!({
            "type": "LAUNCH_CONTAINER",
            "launch_container": {
                "container_id": {"value": id},
                "command": {"value": shell_command, "shell": true},
                // What a typical small task asks for: with isolation on, these become
                // cpu.weight, memory.low, memory.max and memory.oom.group writes.
                "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}
                ]
            }
        }))?;
        let started = Instant::now();
        let r = self
            .post(&body)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("LAUNCH_CONTAINER {id} failed"))?;
        let took = started.elapsed();
        if r.status != 200 {
            bail!("LAUNCH_CONTAINER {id} answered {}: {}", r.status, r.text());
        }
        Ok(took)
    }

    /// Waits for a container to end and returns its raw wait status.
    pub fn wait(&self, id: &str) -> anyhow::Result<Option<i64>> {
        let r = self.call_ok(
            &format!("WAIT_CONTAINER {id}"),
            &json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": id}}}),
        )?;
        let v: Value = serde_json::from_slice(&r.body)
            .with_context(|| format!("WAIT_CONTAINER {id} answered no JSON: {}", r.text()))?;
        Ok(v.pointer("/wait_container/exit_status")
            .and_then(Value::as_i64))
    }

    pub fn remove(&self, id: &str) -> anyhow::Result<()> {
        self.call_ok(
            &format!("REMOVE_CONTAINER {id}"),
            &json!({"type": "REMOVE_CONTAINER", "remove_container": {"container_id": {"value": id}}}),
        )?;
        Ok(())
    }

    pub fn containers(&self) -> anyhow::Result<Vec<Listed>> {
        let r = self.call_ok(
            "GET_CONTAINERS",
            &json!({"type": "GET_CONTAINERS", "get_containers": {"show_standalone": true}}),
        )?;
        let v: Value = serde_json::from_slice(&r.body)
            .with_context(|| format!("GET_CONTAINERS answered no JSON: {}", r.text()))?;
        let list = v
            .pointer("/get_containers/containers")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        list.iter()
            .map(|c| {
                let id = c
                    .pointer("/container_id/value")
                    .and_then(Value::as_str)
                    .with_context(|| format!("GET_CONTAINERS lists an entry without an id: {c}"))?;
                let executor_pid = c
                    .pointer("/container_status/executor_pid")
                    .and_then(Value::as_u64)
                    .and_then(|p| u32::try_from(p).ok());
                Ok(Listed {
                    id: id.to_string(),
                    executor_pid,
                })
            })
            .collect()
    }
}
