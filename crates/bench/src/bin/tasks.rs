//! `holdfast-bench-tasks`: tasks launched and finished per second through one local
//! agent, and the latency of status updates from the executor to the framework.
//!
//! ```text
//! cargo build --release -p holdfast -p holdfast-bench
//! sudo target/release/holdfast-bench-tasks --tasks 2000
//! ```
//!
//! It runs `holdfast local` (a master and an agent in one process, with a cgroups root,
//! slice and scratch directory of its own) and a framework that launches `--tasks`
//! command tasks running `true` on every offer as they fit, acknowledging every update
//! at once. Figures:
//!
//! * **tasks/s**: tasks that reached TASK_FINISHED divided by the time from the first
//!   ACCEPT to the last TASK_FINISHED;
//! * **update latency**: for each update, the time it reached the framework minus its
//!   `timestamp` (set by the agent's command executor when it made the update). Both
//!   clocks are this host's. An update waits in the agent until the one before it for
//!   the same task is acknowledged, so this is the latency a framework sees, queueing
//!   included.
//!
//! The figures are printed, not asserted. Everything it made is removed at the end.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::Parser;
use holdfast_http::{Client, EventStream};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    name = "holdfast-bench-tasks",
    about = "Tasks per second and status update latency through one local agent"
)]
struct Cli {
    /// Tasks to launch and finish.
    #[arg(long, default_value_t = 1000)]
    tasks: usize,
    /// cpus each task asks for.
    #[arg(long, default_value_t = 0.01)]
    task_cpus: f64,
    /// mem (MiB) each task asks for.
    #[arg(long, default_value_t = 16.0)]
    task_mem: f64,
    /// What the agent offers.
    #[arg(long, default_value = "cpus:32;mem:65536")]
    resources: String,
    /// The `holdfast` binary (default: the one next to this binary).
    #[arg(long)]
    holdfast: Option<PathBuf>,
    /// Copy the cluster's log here before cleaning up.
    #[arg(long)]
    keep_log: Option<PathBuf>,
    /// The agent's `--runtime_dir` (default: a fresh directory under /dev/shm). An agent's
    /// runtime records belong on tmpfs (its default is /run/holdfast); on disk every
    /// container pays for their fsyncs.
    #[arg(long)]
    runtime_dir: Option<PathBuf>,
    /// An extra agent flag, e.g. `--agent-arg=--isolation=` (repeatable).
    #[arg(long = "agent-arg", allow_hyphen_values = true)]
    agent_args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("holdfast-bench-tasks: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `holdfast local` and what it made, removed on drop.
struct Local {
    holdfast: PathBuf,
    child: Option<Child>,
    base: PathBuf,
    runtime_dir: PathBuf,
    /// Whether `runtime_dir` is ours to remove (not one the caller named).
    own_runtime_dir: bool,
    cgroups_root: String,
    slice: String,
    hierarchy: PathBuf,
    master_port: u16,
}

impl Local {
    fn agent_dirs(&self) -> [String; 2] {
        [
            format!("--work_dir={}", self.base.join("agent").display()),
            format!("--runtime_dir={}", self.runtime_dir.display()),
        ]
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Whatever the agent left running goes, then its cgroups and scratch files.
        let _ = Command::new(&self.holdfast)
            .arg("agent")
            .args(self.agent_dirs())
            .arg(format!("--cgroups_root={}", self.cgroups_root))
            .arg(format!("--cgroups_hierarchy={}", self.hierarchy.display()))
            .arg(format!("--systemd_containers_slice={}", self.slice))
            .args([
                "--recover=cleanup",
                "--strict=false",
                "--logging_level=ERROR",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir(self.hierarchy.join(&self.cgroups_root));
        let _ = std::fs::remove_dir_all(&self.base);
        if self.own_runtime_dir {
            let _ = std::fs::remove_dir_all(&self.runtime_dir);
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

/// The cgroup2 mount: /sys/fs/cgroup on a pure v2 host, /sys/fs/cgroup/unified on a
/// hybrid one.
fn cgroup2() -> anyhow::Result<PathBuf> {
    for p in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        if Path::new(p).join("cgroup.procs").exists() {
            return Ok(PathBuf::from(p));
        }
    }
    bail!("no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified")
}

fn start_local(cli: &Cli) -> anyhow::Result<Local> {
    let holdfast = match &cli.holdfast {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("holdfast"))
            .context("no directory for this binary")?,
    };
    let pid = std::process::id();
    let base = std::env::temp_dir().join(format!("holdfast-bench-tasks-{pid}"));
    std::fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
    let runtime_dir = cli
        .runtime_dir
        .clone()
        .unwrap_or_else(|| Path::new("/dev/shm").join(format!("holdfast-bench-tasks-{pid}")));
    let mut local = Local {
        holdfast,
        child: None,
        base,
        own_runtime_dir: cli.runtime_dir.is_none(),
        runtime_dir,
        cgroups_root: format!("holdfast-bench-tasks-{pid}"),
        slice: format!("holdfast_bench_tasks_{pid}.slice"),
        hierarchy: cgroup2()?,
        master_port: free_port()?,
    };
    let log = std::fs::File::create(local.base.join("local.log"))?;
    let mut cmd = Command::new(&local.holdfast);
    cmd.arg("local")
        .arg(format!("--port={}", local.master_port))
        .arg(format!("--agent_port={}", free_port()?))
        .arg(format!("--work_dir={}", local.base.display()))
        .arg(format!("--runtime_dir={}", local.runtime_dir.display()))
        .arg(format!("--resources={}", cli.resources))
        .arg(if cli.keep_log.is_some() {
            "--logging_level=INFO"
        } else {
            "--logging_level=WARNING"
        });
    for flag in local.agent_dirs().iter().take(1).chain(
        [
            format!("--cgroups_root={}", local.cgroups_root),
            format!("--cgroups_hierarchy={}", local.hierarchy.display()),
            format!("--systemd_containers_slice={}", local.slice),
        ]
        .iter(),
    ) {
        cmd.arg(format!("--agent_flag={flag}"));
    }
    for a in &cli.agent_args {
        cmd.arg(format!("--agent_flag={a}"));
    }
    local.child = Some(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot run {}", local.holdfast.display()))?,
    );
    Ok(local)
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let local = start_local(cli)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(framework(cli, local.master_port));
    if result.is_err() {
        let log = std::fs::read_to_string(local.base.join("local.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        eprintln!("last lines of the cluster's log:");
        for l in tail.iter().rev() {
            eprintln!("  {l}");
        }
    }
    if let Some(dest) = &cli.keep_log {
        std::fs::copy(local.base.join("local.log"), dest)
            .with_context(|| format!("cannot copy the log to {}", dest.display()))?;
    }
    let figures = result?;
    println!("{figures}");
    Ok(())
}

struct Figures {
    tasks: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// What the host's CPUs did over the timed window, if `/proc/stat` could be read.
    cpu: Option<CpuTimes>,
}

/// The host's CPU time from `/proc/stat`'s `cpu` line, in clock ticks.
#[derive(Clone, Copy, Default)]
struct CpuTimes {
    /// user + nice + system + irq + softirq.
    busy: u64,
    /// idle + iowait.
    idle: u64,
    /// Taken by the hypervisor for other guests.
    steal: u64,
}

impl CpuTimes {
    fn now() -> Option<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        Some(CpuTimes {
            busy: at(0) + at(1) + at(2) + at(5) + at(6),
            idle: at(3) + at(4),
            steal: at(7),
        })
    }

    fn since(self, start: CpuTimes) -> CpuTimes {
        CpuTimes {
            busy: self.busy.saturating_sub(start.busy),
            idle: self.idle.saturating_sub(start.idle),
            steal: self.steal.saturating_sub(start.steal),
        }
    }
}

/// Clock ticks per second (`USER_HZ`).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        let pct = |p: usize| {
            let rank = (p * l.len()).div_ceil(100).max(1);
            l.get(rank - 1).copied().unwrap_or_default()
        };
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        writeln!(f, "| figure | value |")?;
        writeln!(f, "|---|---|")?;
        writeln!(f, "| tasks finished | {} |", self.tasks)?;
        writeln!(
            f,
            "| first ACCEPT to last TASK_FINISHED | {:.2} s |",
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "| tasks per second | {:.0} |",
            self.tasks as f64 / self.elapsed.as_secs_f64().max(1e-9)
        )?;
        if let Some(cpu) = self.cpu {
            let total = (cpu.busy + cpu.idle + cpu.steal).max(1) as f64;
            let busy_secs = cpu.busy as f64 / ticks_per_second();
            writeln!(
                f,
                "| host CPU time per task (all processes) | {:.2} ms |",
                busy_secs * 1000.0 / self.tasks.max(1) as f64
            )?;
            writeln!(
                f,
                "| host CPUs busy / idle / stolen by the hypervisor | {:.0} % / {:.0} % / {:.0} % |",
                100.0 * cpu.busy as f64 / total,
                100.0 * cpu.idle as f64 / total,
                100.0 * cpu.steal as f64 / total
            )?;
        }
        writeln!(f, "| status updates | {} |", l.len())?;
        writeln!(f, "| update latency p50 | {:.2} ms |", ms(pct(50)))?;
        writeln!(f, "| update latency p99 | {:.2} ms |", ms(pct(99)))?;
        write!(
            f,
            "| update latency max | {:.2} ms |",
            ms(l.last().copied().unwrap_or_default())
        )
    }
}

#[derive(Clone)]
struct Framework {
    client: std::sync::Arc<Client>,
    stream_id: String,
    id: Value,
}

impl Framework {
    async fn call(&self, mut body: Value) -> anyhow::Result<()> {
        body["framework_id"] = self.id.clone();
        self.client
            .call(
                "/api/v1/scheduler",
                &[("Mesos-Stream-Id", &self.stream_id)],
                &body,
            )
            .await
            .with_context(|| format!("{} call", body["type"]))?;
        Ok(())
    }
}

async fn subscribe(client: &Client) -> anyhow::Result<EventStream> {
    let body = json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
        "user": "root", "name": "holdfast-bench-tasks"}}});
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.subscribe("/api/v1/scheduler", &[], &body).await {
            Ok(s) => return Ok(s),
            // Not listening yet: the cluster is still starting.
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e).context("the master did not come up"),
        }
    }
}

fn scalar(offer: &Value, name: &str) -> f64 {
    offer["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["name"] == name)
        .filter_map(|r| r["scalar"]["value"].as_f64())
        .sum()
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

async fn framework(cli: &Cli, port: u16) -> anyhow::Result<Figures> {
    let client = Client::new(format!("127.0.0.1:{port}"), Duration::from_secs(60));
    let mut events = subscribe(&client).await?;
    let stream_id = events.header("mesos-stream-id").unwrap_or("").to_owned();
    let mut fw = Framework {
        client: std::sync::Arc::new(client),
        stream_id,
        id: Value::Null,
    };
    let ack_failed: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
    let (mut launched, mut finished) = (0usize, 0usize);
    let mut started: Option<Instant> = None;
    let mut cpu_start: Option<CpuTimes> = None;
    let mut latencies = Vec::with_capacity(cli.tasks * 3);
    let idle_limit = Duration::from_secs(120);
    while finished < cli.tasks {
        let event = tokio::time::timeout(idle_limit, events.next())
            .await
            .context("no event for two minutes")??
            .context("the master closed the stream")?;
        match event["type"].as_str() {
            Some("SUBSCRIBED") => fw.id = event["subscribed"]["framework_id"].clone(),
            Some("OFFERS") => {
                for offer in event["offers"]["offers"].as_array().into_iter().flatten() {
                    let fit = ((scalar(offer, "cpus") + 1e-9) / cli.task_cpus)
                        .min((scalar(offer, "mem") + 1e-9) / cli.task_mem)
                        .floor() as usize;
                    let n = fit.min(cli.tasks - launched);
                    if n == 0 {
                        fw.call(
                            json!({"type": "DECLINE", "decline": {"offer_ids": [offer["id"]],
                            "filters": {"refuse_seconds": 0.0}}}),
                        )
                        .await?;
                        continue;
                    }
                    let tasks: Vec<Value> = (launched..launched + n)
                        .map(|i| json!({
                            "name": format!("t{i}"), "task_id": {"value": format!("t{i}")},
                            "agent_id": offer["agent_id"],
                            "resources": [
                                {"name": "cpus", "type": "SCALAR", "scalar": {"value": cli.task_cpus}},
                                {"name": "mem", "type": "SCALAR", "scalar": {"value": cli.task_mem}}],
                            "command": {"value": "true"}}))
                        .collect();
                    if started.is_none() {
                        started = Some(Instant::now());
                        cpu_start = CpuTimes::now();
                    }
                    fw.call(
                        json!({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]],
                        "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}],
                        "filters": {"refuse_seconds": 0.0}}}),
                    )
                    .await?;
                    launched += n;
                }
            }
            Some("UPDATE") => {
                let status = &event["update"]["status"];
                if let Some(t) = status["timestamp"].as_f64() {
                    latencies.push(Duration::from_secs_f64((now_secs() - t).max(0.0)));
                }
                if status.get("uuid").is_some() {
                    // Acknowledgements go out without waiting for each other, as a
                    // framework under load sends them; a failed one fails the run.
                    let ack = json!({"type": "ACKNOWLEDGE", "acknowledge": {
                        "agent_id": status["agent_id"], "task_id": status["task_id"],
                        "uuid": status["uuid"]}});
                    let fw = fw.clone();
                    let failed = ack_failed.clone();
                    tokio::spawn(async move {
                        if let Err(e) = fw.call(ack).await {
                            failed
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(format!("{e:#}"));
                        }
                    });
                }
                if let Some(e) = ack_failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    bail!("an acknowledgement failed: {e}");
                }
                match status["state"].as_str() {
                    Some("TASK_FINISHED") => finished += 1,
                    Some("TASK_STARTING") | Some("TASK_RUNNING") => {}
                    other => bail!(
                        "task {} ended {other:?}: {}",
                        status["task_id"]["value"],
                        status["message"]
                    ),
                }
            }
            _ => {}
        }
    }
    let elapsed = started.map(|s| s.elapsed()).unwrap_or_default();
    let cpu = cpu_start.zip(CpuTimes::now()).map(|(a, b)| b.since(a));
    let _ = fw.call(json!({"type": "TEARDOWN"})).await;
    Ok(Figures {
        tasks: finished,
        elapsed,
        latencies,
        cpu,
    })
}
