//! `holdfast-bench master`: a real `holdfast master` with a simulated cluster around it.
//!
//! The bench starts the release master on a free port and plays, in one async runtime,
//! `--agents` agents (each with its own SUBSCRIBE stream on `/internal/v1/agent` and a
//! kept-alive connection for its calls) and one framework on `/api/v1/scheduler`. Phases,
//! in order:
//!
//! 1. **registration**: every agent subscribes at once; the time until the last one has
//!    read its REGISTERED;
//! 2. **steady state**: for `--steady-secs` the agents only answer PINGs (one every
//!    `--agent-ping-timeout`) with PONGs; the master's CPU and RSS;
//! 3. **offers**: the framework subscribes; the time until offers cover every agent;
//!    then `--offer-cycles` times it declines them all (`refuse_seconds: 0`) and the time
//!    until offers cover every agent again;
//! 4. **tasks**: the framework suppresses offers and accepts each agent's offer with its
//!    share of `--tasks` tasks; the agents answer each RUN_TASK with a TASK_RUNNING
//!    UPDATE, the framework acknowledges each; the times until all tasks were sent to
//!    their agents, reported running and acknowledged back to the agents; the master's
//!    RSS; a second steady-state window with the tasks running.
//!
//! The master's CPU is `utime + stime` from `/proc/<pid>/stat` over each phase, so the
//! bench's own work does not count. Nothing is asserted: the exit status is non-zero only
//! when the master exited, refused a call, or the cluster did not get where it should
//! (a task not running, a stream ended), or the run timed out. See `docs/benchmarks.md`.

mod wire;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use holdfast_api::internal::AgentEvent;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use self::wire::{Caller, EventStream};
use crate::procfs;
use crate::stats::Latencies;

const AGENT_PATH: &str = "/internal/v1/agent";
const SCHEDULER_PATH: &str = "/api/v1/scheduler";

/// What each task asks for: a small service, one port each. Eight cpus make room for 80
/// such tasks per agent.
const TASK_CPUS: f64 = 0.1;
const TASK_MEM: f64 = 32.0;
const MAX_TASKS_PER_AGENT: usize = 80;
/// Each agent's port range is `FIRST_PORT..=LAST_PORT`.
const FIRST_PORT: u64 = 31000;
const LAST_PORT: u64 = 32000;

/// Framework calls (ACCEPT, ACKNOWLEDGE) in flight at once, each on its own kept-alive
/// connection, so that acknowledgements keep pace with 10,000 updates.
const FRAMEWORK_CONNECTIONS: usize = 8;

/// Worker threads of the simulated cluster: as many as the master has, on a machine
/// whose two cores the master and the bench share.
const BENCH_THREADS: usize = 2;

/// How long the master may take to answer its first GET_HEALTH.
const START_LIMIT: Duration = Duration::from_secs(60);

/// How long the master may take to stop after SIGTERM once every client has gone.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Descriptors the bench needs besides two per agent.
const FD_MARGIN: u64 = 64;

#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct MasterArgs {
    /// Simulated agents.
    #[arg(long, default_value_t = 1000)]
    pub agents: usize,
    /// Tasks launched, spread evenly over the agents (at most 80 per agent).
    #[arg(long, default_value_t = 10_000)]
    pub tasks: usize,
    /// Offer cycles timed (decline everything, wait for offers on every agent again).
    #[arg(long = "offer-cycles", default_value_t = 100)]
    pub offer_cycles: usize,
    /// Length of each steady-state window, in seconds (0 skips them).
    #[arg(long = "steady-secs", default_value_t = 30)]
    pub steady_secs: u64,
    /// The master's `--agent_ping_timeout`, which is also how often it pings each agent.
    #[arg(long = "agent-ping-timeout", default_value = "1secs")]
    pub agent_ping_timeout: String,
    /// The master's `--max_agent_ping_timeouts`: unanswered pings in a row after which an
    /// agent is unreachable. Above the master's default of 5, so that a busy shared machine
    /// does not end a run (a PONG waits in the master's queue behind the SUBSCRIBEs and
    /// ACCEPTs before it counts).
    #[arg(long = "max-agent-ping-timeouts", default_value_t = 15)]
    pub max_agent_ping_timeouts: u32,
    /// An extra flag for the master, e.g. `--master-arg=--logging_level=WARNING`
    /// (repeatable).
    #[arg(long = "master-arg", allow_hyphen_values = true)]
    pub master_args: Vec<String>,
}

/// CPU time a process used over a stretch of wall-clock time.
#[derive(Debug, Clone, Copy)]
struct CpuUse {
    cpu: Duration,
    wall: Duration,
}

impl CpuUse {
    /// Percent of one core.
    fn percent(&self) -> f64 {
        if self.wall.is_zero() {
            return 0.0;
        }
        self.cpu.as_secs_f64() / self.wall.as_secs_f64() * 100.0
    }
}

/// CPU use of the master and of the bench itself over one phase; the bench's shows
/// whether the load it makes kept pace or held the master back.
#[derive(Debug, Clone, Copy)]
struct PhaseCpu {
    master: CpuUse,
    bench: CpuUse,
}

/// Where a phase started: its clock and both processes' CPU time.
struct Meter {
    master: u32,
    master_cpu: Duration,
    bench_cpu: Duration,
    at: Instant,
}

impl Meter {
    fn start(master: u32) -> anyhow::Result<Meter> {
        Ok(Meter {
            master,
            master_cpu: procfs::cpu_time(master)?,
            bench_cpu: procfs::cpu_time(std::process::id())?,
            at: Instant::now(),
        })
    }

    fn stop(&self) -> anyhow::Result<PhaseCpu> {
        let wall = self.at.elapsed();
        Ok(PhaseCpu {
            master: CpuUse {
                cpu: procfs::cpu_time(self.master)?.saturating_sub(self.master_cpu),
                wall,
            },
            bench: CpuUse {
                cpu: procfs::cpu_time(std::process::id())?.saturating_sub(self.bench_cpu),
                wall,
            },
        })
    }
}

/// One steady-state window.
#[derive(Debug, Clone, Copy)]
struct Steady {
    cpu: PhaseCpu,
    pongs: usize,
    rss_kib: u64,
}

#[derive(Default)]
struct Results {
    start: Option<Duration>,
    idle_rss: Option<u64>,
    registration: Option<Duration>,
    registration_latency: Option<Latencies>,
    registration_cpu: Option<PhaseCpu>,
    agents_rss: Option<u64>,
    steady: Option<Steady>,
    first_offers: Option<Duration>,
    offers_bytes: Option<usize>,
    offer_cycles: Option<Latencies>,
    offer_cycles_cpu: Option<PhaseCpu>,
    launch_sent: Option<Duration>,
    launch_running: Option<Duration>,
    launch_acked: Option<Duration>,
    launch_cpu: Option<PhaseCpu>,
    tasks_rss: Option<u64>,
    steady_tasks: Option<Steady>,
    peak_rss: Option<u64>,
    notes: Vec<String>,
}

/// What the simulated agents and the framework share with the controller.
struct Cluster {
    addr: SocketAddr,
    timeout: Duration,
    /// Origin of the `last_*` times, kept as nanoseconds so that tasks can raise them
    /// with `fetch_max`.
    origin: Instant,
    stopping: AtomicBool,
    registered: AtomicUsize,
    last_registered: AtomicU64,
    registration_latencies: Mutex<Vec<Duration>>,
    pongs: AtomicUsize,
    run_tasks: AtomicUsize,
    last_run_task: AtomicU64,
    acks: AtomicUsize,
    last_ack: AtomicU64,
    running: AtomicUsize,
    last_running: AtomicU64,
    problems: Mutex<Vec<String>>,
}

impl Cluster {
    fn new(addr: SocketAddr, timeout: Duration) -> Cluster {
        Cluster {
            addr,
            timeout,
            origin: Instant::now(),
            stopping: AtomicBool::new(false),
            registered: AtomicUsize::new(0),
            last_registered: AtomicU64::new(0),
            registration_latencies: Mutex::new(Vec::new()),
            pongs: AtomicUsize::new(0),
            run_tasks: AtomicUsize::new(0),
            last_run_task: AtomicU64::new(0),
            acks: AtomicUsize::new(0),
            last_ack: AtomicU64::new(0),
            running: AtomicUsize::new(0),
            last_running: AtomicU64::new(0),
            problems: Mutex::new(Vec::new()),
        }
    }

    /// Records that something happened now, in `slot`.
    fn mark(&self, slot: &AtomicU64) {
        let nanos = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        slot.fetch_max(nanos, Ordering::SeqCst);
    }

    /// The time `slot` was last marked.
    fn at(&self, slot: &AtomicU64) -> Instant {
        self.origin + Duration::from_nanos(slot.load(Ordering::SeqCst))
    }

    fn count(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Something the master did wrong, or a stream that broke; ignored once the bench
    /// itself is closing everything.
    fn problem(&self, what: String) {
        if self.stopping() {
            return;
        }
        if let Ok(mut p) = self.problems.lock() {
            p.push(what);
        }
    }

    fn check_problems(&self) -> anyhow::Result<()> {
        let problems = self.problems.lock().map(|p| p.clone()).unwrap_or_default();
        if let Some(first) = problems.first() {
            let more = problems.len() - 1;
            if more == 0 {
                bail!("{first}");
            }
            bail!(
                "{first} (and {more} more: {})",
                problems[1..problems.len().min(4)].join("; ")
            );
        }
        Ok(())
    }
}

/// The error for a master that exited on its own; it carries the end of its log.
#[derive(Debug)]
struct MasterExited(String);

impl std::fmt::Display for MasterExited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MasterExited {}

/// The master under test.
struct MasterProcess {
    child: Child,
    spawned_at: Instant,
    log: PathBuf,
}

impl MasterProcess {
    fn spawn(
        holdfast: &Path,
        addr: SocketAddr,
        dir: &Path,
        args: &MasterArgs,
    ) -> anyhow::Result<MasterProcess> {
        let work_dir = dir.join("work");
        let log = dir.join("master.log");
        let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(holdfast);
        cmd.arg("master")
            .arg(format!("--ip={}", addr.ip()))
            .arg(format!("--port={}", addr.port()))
            .arg(format!("--work_dir={}", work_dir.display()))
            .arg(format!("--agent_ping_timeout={}", args.agent_ping_timeout))
            .arg(format!(
                "--max_agent_ping_timeouts={}",
                args.max_agent_ping_timeouts
            ))
            .args(&args.master_args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // Its own process group, so a Ctrl-C meant for the bench does not reach it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let spawned_at = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", holdfast.display()))?;
        Ok(MasterProcess {
            child,
            spawned_at,
            log,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails, with the end of its log, once the master has exited.
    fn check_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            Some(status) => Err(anyhow::Error::new(MasterExited(format!(
                "the master exited ({status}){}",
                crate::agent::log_tail(&self.log, 10)
            )))),
            None => Ok(()),
        }
    }

    /// Polls the operator API's GET_HEALTH until it answers 200; returns the time since
    /// the spawn.
    fn wait_healthy(&mut self, addr: SocketAddr) -> anyhow::Result<Duration> {
        loop {
            self.check_running()?;
            crate::check_interrupted()?;
            match crate::http::post_json(
                addr,
                "/api/v1",
                br#"{"type":"GET_HEALTH"}"#,
                Duration::from_secs(1),
            ) {
                Ok(r) if r.status == 200 => return Ok(self.spawned_at.elapsed()),
                Ok(r) => bail!(
                    "the master's GET_HEALTH answered {}: {}",
                    r.status,
                    r.text()
                ),
                Err(_) if self.spawned_at.elapsed() < START_LIMIT => {}
                Err(e) => bail!(
                    "the master did not answer GET_HEALTH within {} s: {e}{}",
                    START_LIMIT.as_secs(),
                    crate::agent::log_tail(&self.log, 10)
                ),
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within [`STOP_GRACE`]; returns a note
    /// when it had to be killed or had exited with a failure.
    fn stop(mut self) -> Option<String> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return (!status.success()).then(|| format!("the master had exited ({status})"));
        }
        let pid = libc::pid_t::try_from(self.pid()).unwrap_or(0);
        // SAFETY: kill only sends a signal, to our own child, which is not reaped yet
        // (try_wait above returned None), so the pid is still its.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return None,
                Ok(Some(status)) => {
                    return Some(format!("the master exited with {status} on SIGTERM"))
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Some(format!("cannot wait for the master: {e}")),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Some(format!(
            "the master did not stop within {} s of SIGTERM and was killed",
            STOP_GRACE.as_secs()
        ))
    }
}

pub fn run(cli: &crate::Cli, args: &MasterArgs) -> anyhow::Result<ExitCode> {
    if args.agents == 0 {
        bail!("--agents must be at least 1");
    }
    if args.tasks > args.agents * MAX_TASKS_PER_AGENT {
        bail!(
            "{} tasks do not fit on {} agents: each task takes {TASK_CPUS} of an agent's 8 cpus, \
             so at most {MAX_TASKS_PER_AGENT} fit on one; raise --agents or lower --tasks",
            args.tasks,
            args.agents
        );
    }
    let holdfast = cli.holdfast.clone().unwrap_or_else(crate::default_holdfast);
    let holdfast = holdfast.canonicalize().with_context(|| {
        format!(
            "no holdfast binary at {} (build it with `cargo build --release -p holdfast`, or pass --holdfast)",
            holdfast.display()
        )
    })?;
    let limits = nofile_limits()?;
    let needed = 2 * args.agents as u64 + FRAMEWORK_CONNECTIONS as u64 + FD_MARGIN;
    if limits.rlim_max < needed {
        bail!(
            "the hard RLIMIT_NOFILE is {}, but {} agents need about {needed} descriptors here \
             (and as many in the master); raise it (`ulimit -Hn`, as root) or lower --agents",
            limits.rlim_max,
            args.agents
        );
    }
    crate::keep_inherited_fds_from_agent();
    crate::install_signal_handlers()?;

    let dir = std::env::temp_dir().join(format!("holdfast-bench-master-{}", std::process::id()));
    std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, crate::agent::pick_port(cli.port)?));
    eprintln!(
        "master {} on {addr}, {} agents, {} tasks, scratch {}",
        holdfast.display(),
        args.agents,
        args.tasks,
        dir.display()
    );
    // The master is spawned before the bench raises its own descriptor limit, so it
    // starts with the limit the bench was given, as it would from a shell or a unit.
    let mut master = match MasterProcess::spawn(&holdfast, addr, &dir, args) {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let mut results = Results::default();
    let outcome = raise_nofile_limit(needed).and_then(|()| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(BENCH_THREADS)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let cluster = Arc::new(Cluster::new(addr, Duration::from_secs(cli.timeout.max(1))));
        let outcome = measure(&runtime, &cluster, &mut master, args, &mut results);
        // Closing every connection first lets the master's graceful stop finish.
        cluster.stopping.store(true, Ordering::SeqCst);
        runtime.shutdown_timeout(Duration::from_secs(2));
        outcome
    });
    let failed = outcome.is_err();
    if let Err(e) = &outcome {
        // When the master died, that is the news, not the streams it took with it.
        let msg = if e.chain().any(|c| c.is::<MasterExited>()) {
            format!("{e:#}")
        } else {
            match master.check_running() {
                Err(exited) => format!("{exited:#}\n(noticed as: {e:#})"),
                Ok(()) => format!("{e:#}{}", crate::agent::log_tail(&master.log, 10)),
            }
        };
        eprintln!("holdfast-bench: {msg}");
    }
    results.peak_rss = procfs::peak_rss_kib(master.pid()).ok();
    let log = master.log.clone();
    if let Some(note) = master.stop() {
        results.notes.push(note);
    }
    if cli.keep_logs || failed {
        eprintln!("master log kept in {}", log.display());
        let _ = std::fs::remove_dir_all(dir.join("work"));
    } else if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("holdfast-bench: cannot remove {}: {e}", dir.display());
    }
    print!("{}", render(&holdfast, args, &results));
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn nofile_limits() -> anyhow::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } < 0 {
        return Err(std::io::Error::last_os_error()).context("cannot read RLIMIT_NOFILE");
    }
    Ok(lim)
}

/// Raises the bench's soft descriptor limit to `needed` (the hard limit allows it, as
/// checked before).
fn raise_nofile_limit(needed: u64) -> anyhow::Result<()> {
    let lim = nofile_limits()?;
    if lim.rlim_cur >= needed {
        return Ok(());
    }
    let raised = libc::rlimit {
        rlim_cur: needed,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot raise RLIMIT_NOFILE to {needed}"));
    }
    Ok(())
}

fn measure(
    runtime: &tokio::runtime::Runtime,
    cluster: &Arc<Cluster>,
    master: &mut MasterProcess,
    args: &MasterArgs,
    r: &mut Results,
) -> anyhow::Result<()> {
    eprintln!("starting the master");
    r.start = Some(master.wait_healthy(cluster.addr)?);
    r.idle_rss = Some(procfs::rss_kib(master.pid())?);
    runtime.block_on(scenario(cluster, master, args, r))
}

/// Waits until `progress` says `(done, wanted)` with `done >= wanted`, failing early
/// when the master exits, the cluster saw a problem, the bench is interrupted, or the
/// `--timeout` passes.
async fn wait_for(
    master: &mut MasterProcess,
    cx: &Cluster,
    what: &str,
    progress: impl Fn() -> (usize, usize),
) -> anyhow::Result<()> {
    let deadline = Instant::now() + cx.timeout;
    loop {
        let (done, wanted) = progress();
        if done >= wanted {
            return Ok(());
        }
        master.check_running()?;
        cx.check_problems()?;
        crate::check_interrupted()?;
        if Instant::now() > deadline {
            bail!(
                "timed out after {} s waiting for {what}: {done} of {wanted} (raise --timeout if the machine is slow)",
                cx.timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn scenario(
    cx: &Arc<Cluster>,
    master: &mut MasterProcess,
    args: &MasterArgs,
    r: &mut Results,
) -> anyhow::Result<()> {
    let n = args.agents;
    let pid = master.pid();

    // 1. Registration: every agent at once, as after a restart of the whole cluster.
    eprintln!("registration: {n} agents subscribe");
    let meter = Meter::start(pid)?;
    for i in 0..n {
        tokio::spawn(run_agent(i, cx.clone()));
    }
    wait_for(master, cx, "the agents to register", || {
        (Cluster::count(&cx.registered), n)
    })
    .await?;
    r.registration = Some(cx.at(&cx.last_registered) - meter.at);
    r.registration_cpu = Some(meter.stop()?);
    r.registration_latency = cx
        .registration_latencies
        .lock()
        .ok()
        .and_then(|l| Latencies::of(&l));
    eprintln!(
        "registration: {n} agents in {}",
        crate::ms(r.registration.unwrap_or_default())
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    r.agents_rss = Some(procfs::rss_kib(pid)?);

    // 2. Steady state: pings and pongs only.
    if args.steady_secs > 0 {
        eprintln!("steady state: {} s with {n} agents", args.steady_secs);
        r.steady = Some(steady(master, cx, args.steady_secs).await?);
    }

    // 3. Offers.
    eprintln!("offers: a framework subscribes");
    let subscribed_at = Instant::now();
    let mut fw = Framework::subscribe(cx.clone()).await?;
    let mut held = BTreeMap::new();
    let (covered, bytes) = fw.collect_offers(master, cx, &mut held, n).await?;
    r.first_offers = Some(covered - subscribed_at);
    r.offers_bytes = Some(bytes);
    if args.offer_cycles > 0 {
        eprintln!("offers: {} decline/offer cycles", args.offer_cycles);
        let meter = Meter::start(pid)?;
        let mut samples = Vec::with_capacity(args.offer_cycles);
        for _ in 0..args.offer_cycles {
            let ids: Vec<String> = std::mem::take(&mut held).into_values().flatten().collect();
            let body = fw.decline_body(&ids, 0.0);
            let started = Instant::now();
            fw.call("DECLINE", &body).await?;
            let (covered, _) = fw.collect_offers(master, cx, &mut held, n).await?;
            samples.push(covered - started);
        }
        r.offer_cycles_cpu = Some(meter.stop()?);
        r.offer_cycles = Latencies::of(&samples);
    }

    // 4. Tasks.
    if args.tasks > 0 {
        launch(master, cx, &mut fw, &held, args, r).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        r.tasks_rss = Some(procfs::rss_kib(pid)?);
        if args.steady_secs > 0 {
            eprintln!(
                "steady state: {} s with {n} agents and {} tasks",
                args.steady_secs, args.tasks
            );
            r.steady_tasks = Some(steady(master, cx, args.steady_secs).await?);
        }
    }
    master.check_running()?;
    cx.check_problems()
}

/// A window of `secs` in which the bench does nothing but answer pings.
async fn steady(master: &mut MasterProcess, cx: &Cluster, secs: u64) -> anyhow::Result<Steady> {
    let pid = master.pid();
    let meter = Meter::start(pid)?;
    let pongs = Cluster::count(&cx.pongs);
    let end = meter.at + Duration::from_secs(secs);
    while Instant::now() < end {
        master.check_running()?;
        cx.check_problems()?;
        crate::check_interrupted()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Steady {
        cpu: meter.stop()?,
        pongs: Cluster::count(&cx.pongs) - pongs,
        rss_kib: procfs::rss_kib(pid)?,
    })
}

/// The task launches: one ACCEPT per agent with its share of the tasks.
async fn launch(
    master: &mut MasterProcess,
    cx: &Arc<Cluster>,
    fw: &mut Framework,
    held: &BTreeMap<String, Vec<String>>,
    args: &MasterArgs,
    r: &mut Results,
) -> anyhow::Result<()> {
    let t = args.tasks;
    eprintln!("tasks: launching {t} on {} agents", held.len());
    // What the accepted offers leave over must not come back while the tasks launch.
    let suppress = fw.suppress_body();
    fw.call("SUPPRESS", &suppress).await?;
    let per_agent = t / held.len();
    let extra = t % held.len();
    let mut accepts = Vec::new();
    let mut unused = Vec::new();
    for (i, (agent, offers)) in held.iter().enumerate() {
        let k = per_agent + usize::from(i < extra);
        if k == 0 {
            unused.extend(offers.iter().cloned());
        } else {
            accepts.push(fw.accept_body(i, agent, offers, k));
        }
    }
    let meter = Meter::start(master.pid())?;
    for body in accepts {
        fw.send(Job {
            what: "ACCEPT",
            body,
        })?;
    }
    if !unused.is_empty() {
        fw.send(Job {
            what: "DECLINE",
            body: fw.decline_body(&unused, 0.0),
        })?;
    }
    wait_for(master, cx, "RUN_TASKs at the agents", || {
        (Cluster::count(&cx.run_tasks), t)
    })
    .await?;
    r.launch_sent = Some(cx.at(&cx.last_run_task) - meter.at);
    wait_for(master, cx, "TASK_RUNNING updates at the framework", || {
        (Cluster::count(&cx.running), t)
    })
    .await?;
    r.launch_running = Some(cx.at(&cx.last_running) - meter.at);
    wait_for(master, cx, "acknowledgements at the agents", || {
        (Cluster::count(&cx.acks), t)
    })
    .await?;
    r.launch_acked = Some(cx.at(&cx.last_ack) - meter.at);
    r.launch_cpu = Some(meter.stop()?);
    eprintln!(
        "tasks: {t} running and acknowledged after {}",
        crate::ms(r.launch_acked.unwrap_or_default())
    );
    Ok(())
}

/// One simulated agent, until its stream ends or the bench stops.
async fn run_agent(index: usize, cx: Arc<Cluster>) {
    if let Err(e) = agent(index, &cx).await {
        cx.problem(format!("agent {index}: {e:#}"));
    }
}

async fn agent(index: usize, cx: &Cluster) -> anyhow::Result<()> {
    let started = Instant::now();
    let subscribe = json!({"type": "SUBSCRIBE", "info": {
        "hostname": format!("agent-{index:05}.bench"),
        "port": 5051,
        // What `--resources=cpus:8;mem:16384;disk:100000;ports:[31000-32000]` gives.
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 8}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 16384}},
            {"name": "disk", "type": "SCALAR", "scalar": {"value": 100000}},
            {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": FIRST_PORT, "end": LAST_PORT}]}}
        ]
    }});
    let mut stream = EventStream::open(cx.addr, AGENT_PATH, subscribe.to_string().as_bytes())
        .await
        .context("SUBSCRIBE failed")?;
    let first = stream
        .next()
        .await?
        .context("the master ended the stream before REGISTERED")?;
    let agent_id = match serde_json::from_slice(&first) {
        Ok(AgentEvent::Registered { agent_id, .. }) => agent_id.value,
        Ok(other) => bail!("the stream began with {other:?}, not REGISTERED"),
        Err(e) => bail!(
            "the stream began with an undecodable record ({e}): {}",
            String::from_utf8_lossy(&first)
        ),
    };
    if let Ok(mut l) = cx.registration_latencies.lock() {
        l.push(started.elapsed());
    }
    cx.mark(&cx.last_registered);
    cx.registered.fetch_add(1, Ordering::SeqCst);

    let mut caller = Caller::new(cx.addr, AGENT_PATH, stream.stream_id.clone(), cx.timeout);
    let pong = json!({"type": "PONG", "agent_id": {"value": agent_id}})
        .to_string()
        .into_bytes();
    let mut updates: u64 = 0;
    loop {
        let record = match stream.next().await {
            Ok(Some(record)) => record,
            Ok(None) => bail!("the master ended the agent's stream"),
            Err(e) => return Err(e.context("the agent's stream broke")),
        };
        let event: AgentEvent = serde_json::from_slice(&record).with_context(|| {
            format!(
                "undecodable event on the agent's stream: {}",
                String::from_utf8_lossy(&record)
            )
        })?;
        match event {
            AgentEvent::Ping => {
                expect_accepted("PONG", caller.post(&pong).await?)?;
                cx.pongs.fetch_add(1, Ordering::SeqCst);
            }
            AgentEvent::RunTask { framework, task } => {
                cx.mark(&cx.last_run_task);
                cx.run_tasks.fetch_add(1, Ordering::SeqCst);
                let framework_id = framework
                    .id
                    .context("RUN_TASK without a framework id")?
                    .value;
                updates += 1;
                let update = json!({
                    "type": "UPDATE",
                    "agent_id": {"value": agent_id},
                    "framework_id": {"value": framework_id},
                    "status": {
                        "task_id": task.task_id,
                        "state": "TASK_RUNNING",
                        "source": "SOURCE_EXECUTOR",
                        "uuid": status_uuid(index, updates),
                        "timestamp": wall_clock(),
                    }
                });
                expect_accepted("UPDATE", caller.post(update.to_string().as_bytes()).await?)?;
            }
            AgentEvent::Acknowledge { .. } => {
                cx.mark(&cx.last_ack);
                cx.acks.fetch_add(1, Ordering::SeqCst);
            }
            other => bail!("unexpected event on the agent's stream: {other:?}"),
        }
    }
}

fn expect_accepted(what: &str, reply: wire::Reply) -> anyhow::Result<()> {
    if reply.status != 202 {
        bail!("{what} answered {}: {}", reply.status, reply.text());
    }
    Ok(())
}

/// A status update's uuid (16 bytes, base64), unique per agent and update.
fn status_uuid(agent: usize, update: u64) -> String {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(agent as u64).to_be_bytes());
    b[8..].copy_from_slice(&update.to_be_bytes());
    holdfast_api::base64::encode(&b)
}

fn wall_clock() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A framework call to make on one of the pool's connections.
struct Job {
    what: &'static str,
    body: Vec<u8>,
}

/// What the framework's stream brings the controller.
enum Offered {
    Offers {
        /// When the record was read, before it was parsed.
        at: Instant,
        /// (offer id, agent id)
        offers: Vec<(String, String)>,
        /// Size of the record.
        bytes: usize,
    },
    Rescind(String),
}

/// The framework: its stream (read by a task of its own, which also acknowledges every
/// update), a connection for the calls the controller times, and a pool of connections
/// for the rest.
struct Framework {
    id: String,
    caller: Caller,
    jobs: mpsc::UnboundedSender<Job>,
    offered: mpsc::UnboundedReceiver<Offered>,
}

impl Framework {
    async fn subscribe(cx: Arc<Cluster>) -> anyhow::Result<Framework> {
        let body = json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "root", "name": "holdfast-bench"}}});
        let mut stream = EventStream::open(cx.addr, SCHEDULER_PATH, body.to_string().as_bytes())
            .await
            .context("the framework's SUBSCRIBE failed")?;
        let first = stream
            .next()
            .await?
            .context("the master ended the framework's stream before SUBSCRIBED")?;
        let first: Value =
            serde_json::from_slice(&first).context("the framework's first record is no JSON")?;
        let id = match first["subscribed"]["framework_id"]["value"].as_str() {
            Some(id) if first["type"] == "SUBSCRIBED" => id.to_owned(),
            _ => bail!("the framework's stream began with {first}, not SUBSCRIBED"),
        };
        let (jobs, queue) = mpsc::unbounded_channel::<Job>();
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        for _ in 0..FRAMEWORK_CONNECTIONS {
            let caller = Caller::new(
                cx.addr,
                SCHEDULER_PATH,
                stream.stream_id.clone(),
                cx.timeout,
            );
            tokio::spawn(call_worker(caller, queue.clone(), cx.clone()));
        }
        let (offers_tx, offered) = mpsc::unbounded_channel();
        let caller = Caller::new(
            cx.addr,
            SCHEDULER_PATH,
            stream.stream_id.clone(),
            cx.timeout,
        );
        tokio::spawn(read_framework(
            stream,
            cx,
            id.clone(),
            offers_tx,
            jobs.clone(),
        ));
        Ok(Framework {
            id,
            caller,
            jobs,
            offered,
        })
    }

    /// Makes a call on the framework's own connection and waits for its 202.
    async fn call(&mut self, what: &str, body: &[u8]) -> anyhow::Result<()> {
        let reply = self
            .caller
            .post(body)
            .await
            .with_context(|| format!("the framework's {what} failed"))?;
        expect_accepted(what, reply)
    }

    fn send(&self, job: Job) -> anyhow::Result<()> {
        self.jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("the framework's call workers stopped"))
    }

    /// Takes offers from the stream into `held` (agent id -> offer ids) until every one
    /// of `agents` agents has one; returns when the offer that completed the set was read,
    /// and the size of the OFFERS records taken.
    async fn collect_offers(
        &mut self,
        master: &mut MasterProcess,
        cx: &Cluster,
        held: &mut BTreeMap<String, Vec<String>>,
        agents: usize,
    ) -> anyhow::Result<(Instant, usize)> {
        let deadline = Instant::now() + cx.timeout;
        let mut size = 0;
        loop {
            let event = tokio::select! {
                e = self.offered.recv() => e.context("the framework's stream ended")?,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    master.check_running()?;
                    cx.check_problems()?;
                    crate::check_interrupted()?;
                    if Instant::now() > deadline {
                        bail!(
                            "timed out after {} s waiting for offers on every agent: {} of {agents}",
                            cx.timeout.as_secs(),
                            held.len()
                        );
                    }
                    continue;
                }
            };
            match event {
                Offered::Offers { at, offers, bytes } => {
                    size += bytes;
                    for (offer, agent) in offers {
                        held.entry(agent).or_default().push(offer);
                    }
                    if held.len() >= agents {
                        return Ok((at, size));
                    }
                }
                Offered::Rescind(offer) => {
                    for offers in held.values_mut() {
                        offers.retain(|o| *o != offer);
                    }
                    held.retain(|_, offers| !offers.is_empty());
                }
            }
        }
    }

    fn decline_body(&self, offers: &[String], refuse_seconds: f64) -> Vec<u8> {
        let ids: Vec<Value> = offers.iter().map(|o| json!({"value": o})).collect();
        json!({"type": "DECLINE", "framework_id": {"value": self.id}, "decline": {
            "offer_ids": ids, "filters": {"refuse_seconds": refuse_seconds}}})
        .to_string()
        .into_bytes()
    }

    fn suppress_body(&self) -> Vec<u8> {
        json!({"type": "SUPPRESS", "framework_id": {"value": self.id}})
            .to_string()
            .into_bytes()
    }

    /// ACCEPT of an agent's offers with `tasks` tasks, `bench-<agent index>-<n>`.
    fn accept_body(&self, index: usize, agent: &str, offers: &[String], tasks: usize) -> Vec<u8> {
        let infos: Vec<Value> = (0..tasks)
            .map(|j| {
                let port = FIRST_PORT + j as u64;
                json!({
                    "name": format!("bench-{index}-{j}"),
                    "task_id": {"value": format!("bench-{index:05}-{j:03}")},
                    "agent_id": {"value": agent},
                    "resources": [
                        {"name": "cpus", "type": "SCALAR", "scalar": {"value": TASK_CPUS},
                         "allocation_info": {"role": "*"}},
                        {"name": "mem", "type": "SCALAR", "scalar": {"value": TASK_MEM},
                         "allocation_info": {"role": "*"}},
                        {"name": "ports", "type": "RANGES",
                         "ranges": {"range": [{"begin": port, "end": port}]},
                         "allocation_info": {"role": "*"}}
                    ],
                    "command": {"value": "sleep 3600"}
                })
            })
            .collect();
        let ids: Vec<Value> = offers.iter().map(|o| json!({"value": o})).collect();
        json!({"type": "ACCEPT", "framework_id": {"value": self.id}, "accept": {
            "offer_ids": ids,
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": infos}}],
            "filters": {"refuse_seconds": 0}}})
        .to_string()
        .into_bytes()
    }
}

/// Makes the framework's queued calls, one at a time, on its own connection.
async fn call_worker(
    mut caller: Caller,
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>>,
    cx: Arc<Cluster>,
) {
    loop {
        let Some(job) = queue.lock().await.recv().await else {
            return;
        };
        match caller.post(&job.body).await {
            Ok(reply) => {
                if let Err(e) = expect_accepted(job.what, reply) {
                    cx.problem(format!("the framework's {e:#}"));
                }
            }
            Err(e) => cx.problem(format!("the framework's {} failed: {e:#}", job.what)),
        }
    }
}

/// Reads the framework's stream: offers go to the controller, every update is counted
/// and acknowledged through the call pool at once (a framework that falls behind its
/// stream has it closed).
async fn read_framework(
    mut stream: EventStream,
    cx: Arc<Cluster>,
    framework_id: String,
    offered: mpsc::UnboundedSender<Offered>,
    jobs: mpsc::UnboundedSender<Job>,
) {
    loop {
        let record = match stream.next().await {
            Ok(Some(record)) => record,
            Ok(None) => {
                cx.problem("the master ended the framework's stream".to_owned());
                return;
            }
            Err(e) => {
                cx.problem(format!("the framework's stream broke: {e:#}"));
                return;
            }
        };
        let at = Instant::now();
        let event: Value = match serde_json::from_slice(&record) {
            Ok(v) => v,
            Err(e) => {
                cx.problem(format!(
                    "undecodable record on the framework's stream ({e}): {}",
                    String::from_utf8_lossy(&record)
                ));
                return;
            }
        };
        match event["type"].as_str().unwrap_or_default() {
            "OFFERS" => {
                let offers = event["offers"]["offers"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|o| {
                        Some((
                            o["id"]["value"].as_str()?.to_owned(),
                            o["agent_id"]["value"].as_str()?.to_owned(),
                        ))
                    })
                    .collect();
                let _ = offered.send(Offered::Offers {
                    at,
                    offers,
                    bytes: record.len(),
                });
            }
            "RESCIND" => {
                if let Some(id) = event["rescind"]["offer_id"]["value"].as_str() {
                    let _ = offered.send(Offered::Rescind(id.to_owned()));
                }
            }
            "UPDATE" => {
                let status = &event["update"]["status"];
                let state = status["state"].as_str().unwrap_or_default();
                let task = status["task_id"]["value"].as_str().unwrap_or_default();
                if state == "TASK_RUNNING" {
                    cx.mark(&cx.last_running);
                    cx.running.fetch_add(1, Ordering::SeqCst);
                } else {
                    cx.problem(format!(
                        "task {task} is {state}: {}",
                        status["message"].as_str().unwrap_or_default()
                    ));
                }
                if let Some(uuid) = status["uuid"].as_str() {
                    let body = json!({"type": "ACKNOWLEDGE", "framework_id": {"value": framework_id},
                        "acknowledge": {"agent_id": status["agent_id"], "task_id": status["task_id"],
                                        "uuid": uuid}});
                    let _ = jobs.send(Job {
                        what: "ACKNOWLEDGE",
                        body: body.to_string().into_bytes(),
                    });
                }
            }
            "ERROR" => cx.problem(format!(
                "the master sent the framework an ERROR: {}",
                event["error"]["message"].as_str().unwrap_or_default()
            )),
            _ => {}
        }
    }
}

fn render(holdfast: &Path, args: &MasterArgs, r: &Results) -> String {
    let n = args.agents;
    let t = args.tasks;
    let mut rows: Vec<[String; 2]> = Vec::new();
    let pct = |c: &PhaseCpu| {
        format!(
            "{:.1} % of one core ({:.2} s CPU in {:.2} s); the bench: {:.1} %",
            c.master.percent(),
            c.master.cpu.as_secs_f64(),
            c.master.wall.as_secs_f64(),
            c.bench.percent()
        )
    };
    let mib = |kib: u64| crate::mib(kib as f64);
    if let Some(d) = r.start {
        rows.push(["Master start: spawn to GET_HEALTH 200".into(), crate::ms(d)]);
    }
    if let Some(kib) = r.idle_rss {
        rows.push(["Master RSS, no agents".into(), mib(kib)]);
    }
    if let Some(d) = r.registration {
        rows.push([
            format!("Registration of {n} agents: first SUBSCRIBE to last REGISTERED"),
            format!(
                "{} ({:.0} agents/s)",
                crate::ms(d),
                n as f64 / d.as_secs_f64().max(1e-9)
            ),
        ]);
    }
    if let Some(l) = r.registration_latency {
        rows.push([
            "Registration, per agent: SUBSCRIBE to REGISTERED, p50 / p99 / max".into(),
            format!(
                "{} / {} / {}",
                crate::ms(l.p50),
                crate::ms(l.p99),
                crate::ms(l.max)
            ),
        ]);
    }
    if let Some(c) = r.registration_cpu {
        rows.push(["Master CPU during registration".into(), pct(&c)]);
    }
    if let Some(kib) = r.agents_rss {
        rows.push([format!("Master RSS with {n} agents"), mib(kib)]);
    }
    let steady_rows = |rows: &mut Vec<[String; 2]>, s: &Steady, with: &str| {
        rows.push([
            format!(
                "Master CPU, steady state with {with}, pings every {}",
                args.agent_ping_timeout
            ),
            pct(&s.cpu),
        ]);
        rows.push([
            format!("PONGs in that window ({with})"),
            format!(
                "{} ({:.0}/s)",
                s.pongs,
                s.pongs as f64 / s.cpu.master.wall.as_secs_f64().max(1e-9)
            ),
        ]);
        rows.push([
            format!("Master RSS at the end of that window ({with})"),
            mib(s.rss_kib),
        ]);
    };
    if let Some(s) = &r.steady {
        steady_rows(&mut rows, s, &format!("{n} agents"));
    }
    if let Some(d) = r.first_offers {
        rows.push([
            format!("First offers: framework SUBSCRIBE to offers on all {n} agents"),
            crate::ms(d),
        ]);
    }
    if let Some(b) = r.offers_bytes {
        rows.push([
            format!("Size of the OFFERS events for all {n} agents"),
            format!("{:.0} KiB", b as f64 / 1024.0),
        ]);
    }
    if let Some(l) = r.offer_cycles {
        rows.push([
            format!(
                "Offer cycle: DECLINE of all {n} offers to offers on all {n} agents again, p50 / p99 / max (n={})",
                l.count
            ),
            format!("{} / {} / {}", crate::ms(l.p50), crate::ms(l.p99), crate::ms(l.max)),
        ]);
    }
    if let Some(c) = r.offer_cycles_cpu {
        rows.push(["Master CPU during the offer cycles".into(), pct(&c)]);
    }
    if let Some(d) = r.launch_sent {
        rows.push([
            format!("Launch of {t} tasks: first ACCEPT to the last RUN_TASK at its agent"),
            crate::ms(d),
        ]);
    }
    if let Some(d) = r.launch_running {
        rows.push([
            "Launch: first ACCEPT to the last TASK_RUNNING at the framework".into(),
            crate::ms(d),
        ]);
    }
    if let Some(d) = r.launch_acked {
        rows.push([
            "Launch: first ACCEPT to the last acknowledgement at its agent".into(),
            crate::ms(d),
        ]);
    }
    if let Some(c) = r.launch_cpu {
        rows.push(["Master CPU during the launch".into(), pct(&c)]);
    }
    if let Some(kib) = r.tasks_rss {
        rows.push([
            format!("Master RSS with {n} agents and {t} running tasks"),
            mib(kib),
        ]);
    }
    if let Some(s) = &r.steady_tasks {
        steady_rows(&mut rows, s, &format!("{n} agents and {t} tasks"));
    }
    if let Some(kib) = r.peak_rss {
        rows.push(["Master peak RSS (VmHWM) over the run".into(), mib(kib)]);
    }

    let mut out = String::new();
    if rows.is_empty() {
        return out;
    }
    let version = Command::new(holdfast)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let _ = writeln!(
        out,
        "## Holdfast master benchmark, {}\n",
        crate::today_utc()
    );
    let _ = writeln!(
        out,
        "Host: nproc {}, kernel {}. Master: {version}, `--agent_ping_timeout={}`, \
         `--max_agent_ping_timeouts={}`. {n} agents, {t} tasks.\n",
        procfs::nproc(),
        procfs::kernel_release(),
        args.agent_ping_timeout,
        args.max_agent_ping_timeouts
    );
    let _ = writeln!(out, "| Figure | Measured |");
    let _ = writeln!(out, "|---|---|");
    for [a, b] in &rows {
        let _ = writeln!(out, "| {a} | {b} |");
    }
    if !r.notes.is_empty() {
        out.push('\n');
        for note in &r.notes {
            let _ = writeln!(out, "- Note: {note}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_uuids_are_16_bytes_and_distinct() {
        let a = status_uuid(0, 1);
        let b = status_uuid(1, 1);
        let c = status_uuid(0, 2);
        assert_eq!(holdfast_api::base64::decode(&a).expect("base64").len(), 16);
        assert!(a != b && a != c && b != c);
    }

    #[test]
    fn cpu_use_is_a_percentage_of_one_core() {
        let c = CpuUse {
            cpu: Duration::from_millis(500),
            wall: Duration::from_secs(2),
        };
        assert!((c.percent() - 25.0).abs() < 1e-9);
        let idle = CpuUse {
            cpu: Duration::ZERO,
            wall: Duration::ZERO,
        };
        assert_eq!(idle.percent(), 0.0);
    }
}
