//! `holdfast-bench`: measures a real Holdfast agent (or master) on this host and prints the
//! figures as a Markdown table.
//!
//! ```text
//! cargo build --release -p holdfast -p holdfast-bench && sudo target/release/holdfast-bench
//! ```
//!
//! It needs root and a cgroup2 mount, like the agent. Each run starts its own agent
//! (`--cgroups_root holdfast-bench-<pid>`, scratch directories in
//! `/tmp/holdfast-bench-<pid>`, a free port on 127.0.0.1) and removes all of it at the
//! end, also after an error or a Ctrl-C: the agent is killed, `holdfast agent
//! --recover=cleanup` destroys the containers, and the cgroup is removed.
//!
//! What it measures (`launch`, `recovery`, `footprint`; all three by default):
//!
//! * **launch**: the `LAUNCH_CONTAINER` round trip of `--launches` containers running
//!   `true`, one after the other, each then waited for and removed (untimed);
//! * **recovery**: with `--containers` containers running `sleep 3600`, the agent is
//!   SIGKILLed and started again; the time from the spawn until `GET_HEALTH` answers 200,
//!   and whether `GET_CONTAINERS` then lists every container;
//! * **footprint**: `VmRSS` of the idle agent, of the agent holding `--containers`
//!   containers, and of their supervisors.
//!
//! * **master** (only when named; see `master.rs`): a `holdfast master` with `--agents`
//!   simulated agents and one framework: registration, CPU and RSS in steady state, offer
//!   cycle latency, and `--tasks` task launches. It needs neither root nor cgroups.
//!
//! The figures are reported, not asserted: the exit status is non-zero only when the bench
//! could not run or the agent misbehaved (a failed call, a container lost in recovery).
//! See `docs/benchmarks.md`.

mod agent;
mod http;
mod master;
mod procfs;
mod stats;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::agent::{Agent, Client, Setup, Startup};
use crate::stats::{Latencies, Sizes};

/// Goal for the median launch round trip.
const GOAL_LAUNCH_P50: Duration = Duration::from_millis(5);
/// Goal for a restart with every container to recover, until `GET_HEALTH` answers 200.
const GOAL_RECOVERY: Duration = Duration::from_secs(1);
/// Goal for the idle agent's RSS, in KiB.
const GOAL_IDLE_AGENT_KIB: u64 = 20 * 1024;
/// Goal for one supervisor's RSS, in KiB.
const GOAL_SUPERVISOR_KIB: u64 = 1536;

/// How often `GET_HEALTH` is polled while an agent starts.
const HEALTH_POLL: Duration = Duration::from_millis(2);

#[derive(Parser)]
#[command(
    name = "holdfast-bench",
    version,
    about = "Measures Holdfast: the agent's launch latency, recovery time and memory footprint; the master at scale",
    long_about = "Measures Holdfast: the agent's launch latency, recovery time and memory footprint;\n\
                  the master with many simulated agents (`master`).\n\
                  The agent benchmarks need root and a cgroup2 mount. Prints a Markdown table on stdout,\n\
                  progress on stderr."
)]
struct Cli {
    #[command(subcommand)]
    what: Option<What>,
    /// The `holdfast` binary (default: the one next to this binary).
    #[arg(long, global = true)]
    holdfast: Option<PathBuf>,
    /// Launches of `true` timed by the launch benchmark.
    #[arg(long, global = true, default_value_t = 1000)]
    launches: usize,
    /// `sleep 3600` containers held by the recovery and footprint benchmarks.
    #[arg(long, global = true, default_value_t = 1000)]
    containers: usize,
    /// Port of the agent on 127.0.0.1 (default: a free one).
    #[arg(long, global = true, default_value_t = 0)]
    port: u16,
    /// Timeout of each API call, in seconds.
    #[arg(long, global = true, default_value_t = 120)]
    timeout: u64,
    /// Keep the agents' logs (otherwise kept only when something failed).
    #[arg(long, global = true)]
    keep_logs: bool,
    /// An extra flag for the agent, e.g. `--agent-arg=--isolation=` (repeatable).
    #[arg(long = "agent-arg", global = true, allow_hyphen_values = true)]
    agent_args: Vec<String>,
}

#[derive(Subcommand, Clone, PartialEq, Eq)]
enum What {
    /// Everything (the default).
    All,
    /// Launch latency only.
    Launch,
    /// Recovery time (and the footprint of the containers it needs).
    Recovery,
    /// Memory footprint only.
    Footprint,
    /// The master with simulated agents and a framework (not part of `all`).
    Master(master::MasterArgs),
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// SIGINT and SIGTERM only set a flag, so that the run stops between two calls and
/// still cleans up. No `SA_RESTART`: a blocking read is interrupted where it can be.
fn install_signal_handlers() -> anyhow::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value, and the
        // handler only stores to an atomic, which is async-signal-safe.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("cannot install a signal handler");
        }
    }
    Ok(())
}

/// Marks every inherited descriptor above stderr close-on-exec, so the agent starts with
/// only stdin, stdout and stderr whatever launched the bench. (A stray high descriptor
/// would presize the agent's descriptor table and shift where the table grows.)
fn keep_inherited_fds_from_agent() {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC closes nothing; it only sets the
    // close-on-exec flag, so every descriptor this process owns stays valid.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc != 0 {
        eprintln!(
            "warning: cannot mark inherited descriptors close-on-exec: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Fails once SIGINT or SIGTERM has arrived.
pub fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// What one run measured; `None` for what it did not measure.
#[derive(Default)]
struct Results {
    launches: usize,
    containers: usize,
    first_start: Option<Startup>,
    idle_rss: Option<u64>,
    launch_true: Option<Latencies>,
    rss_after_launches: Option<u64>,
    launch_sleep: Option<Latencies>,
    loaded_rss: Option<u64>,
    supervisors: Option<Sizes>,
    supervisors_anon: Option<Sizes>,
    supervisors_file: Option<Sizes>,
    supervisors_pss: Option<Sizes>,
    /// `executor_pid` of each container before the restart.
    executors: HashMap<String, Option<u32>>,
    recovery: Option<Startup>,
    recovery_agent_millis: Option<u64>,
    recovered_listed: Option<usize>,
    recovered_running: Option<usize>,
    recovered_rss: Option<u64>,
    /// Misbehaviour of the agent seen along the way; any makes the exit status non-zero.
    problems: Vec<String>,
    /// Oddities worth a line under the table.
    notes: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("holdfast-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn default_holdfast() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("holdfast")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("target/release/holdfast"))
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    if let Some(What::Master(args)) = &cli.what {
        return master::run(cli, args);
    }
    if effective_uid() != Some(0) {
        bail!("must run as root: the agent creates cgroups and starts containers");
    }
    let holdfast = cli.holdfast.clone().unwrap_or_else(default_holdfast);
    let holdfast = holdfast.canonicalize().with_context(|| {
        format!(
            "no holdfast binary at {} (build it with `cargo build --release -p holdfast`, or pass --holdfast)",
            holdfast.display()
        )
    })?;
    let mounts = procfs::cgroup_mounts()?;
    keep_inherited_fds_from_agent();
    install_signal_handlers()?;

    let what = cli.what.clone().unwrap_or(What::All);
    let mut setup = Setup::create(
        holdfast,
        mounts,
        cli.port,
        Duration::from_secs(cli.timeout.max(1)),
    )?;
    setup.agent_args = cli.agent_args.clone();
    eprintln!(
        "agent {} on {}, cgroup {}, scratch {}",
        setup.holdfast.display(),
        setup.addr,
        setup.cgroup_dir().display(),
        setup.base.display()
    );
    let mut results = Results {
        launches: cli.launches,
        containers: cli.containers,
        ..Results::default()
    };
    let mut current: Option<Agent> = None;
    let outcome = bench(what, &mut setup, &mut current, &mut results);
    let failed = outcome.is_err() || !results.problems.is_empty();
    if let Err(e) = &outcome {
        let mut msg = format!("holdfast-bench: {e:#}");
        let exit_reported = e.chain().any(|c| c.is::<agent::Exited>());
        if let Some(agent) = current.as_mut().filter(|_| !exit_reported) {
            match agent.check_running() {
                Err(exited) => write!(msg, "\n{exited:#}")?,
                Ok(()) => msg.push_str(&agent::log_tail(&agent.log, 10)),
            }
        }
        eprintln!("{msg}");
    }
    eprintln!("cleaning up");
    let cleanup_problems = setup.cleanup(current.take(), cli.keep_logs || failed);

    let facts = Facts::gather(&setup);
    print!("{}", render(&facts, &results));
    for p in &results.problems {
        eprintln!("holdfast-bench: agent misbehaved: {p}");
    }
    for p in &cleanup_problems {
        eprintln!("holdfast-bench: cleanup: {p}");
    }
    Ok(
        if outcome.is_err() || !results.problems.is_empty() || !cleanup_problems.is_empty() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// Runs the selected benchmarks; the agent in use is kept in `current` so that the caller
/// can clean it up whatever happens.
fn bench(
    what: What,
    setup: &mut Setup,
    current: &mut Option<Agent>,
    r: &mut Results,
) -> anyhow::Result<()> {
    let client = setup.client();
    eprintln!("starting the agent");
    let agent = current.insert(setup.start_agent()?);
    r.first_start = Some(agent.wait_healthy(&client, HEALTH_POLL)?);
    r.idle_rss = Some(procfs::rss_kib(agent.pid())?);

    if matches!(what, What::All | What::Launch) {
        r.launch_true = Latencies::of(&launch_bench(&client, agent, r)?);
        r.rss_after_launches = Some(procfs::rss_kib(agent.pid())?);
        let left = client.containers()?;
        if !left.is_empty() {
            r.problems.push(format!(
                "{} containers still listed after every launched one was waited for and removed",
                left.len()
            ));
        }
    }

    if what == What::Launch {
        return Ok(());
    }
    let ids = fleet(&client, agent, r)?;
    footprint(setup, &client, agent, &ids, r)?;
    if matches!(what, What::All | What::Recovery) {
        recovery(setup, &client, current, &ids, r)?;
    }
    Ok(())
}

/// `LAUNCH_CONTAINER` of `true`, timed; then WAIT and REMOVE, untimed.
fn launch_bench(
    client: &Client,
    agent: &mut Agent,
    r: &mut Results,
) -> anyhow::Result<Vec<Duration>> {
    let n = r.launches;
    eprintln!("launch: {n} launches of `true`");
    let mut samples = Vec::with_capacity(n);
    let mut failed_statuses = Vec::new();
    let started = Instant::now();
    for i in 0..n {
        check_interrupted()?;
        let id = format!("launch-{i:05}");
        samples.push(client.launch(&id, "true")?);
        let status = client.wait(&id)?;
        if status != Some(0) {
            failed_statuses.push(format!("{id}: {status:?}"));
        }
        client.remove(&id)?;
        progress("launch", i + 1, n, started);
    }
    agent.check_running()?;
    report_slowest("launch", "launch", &samples);
    if !failed_statuses.is_empty() {
        r.problems.push(format!(
            "{} of {n} `true` containers did not end with wait status 0 (first: {})",
            failed_statuses.len(),
            failed_statuses[0]
        ));
    }
    Ok(samples)
}

/// Prints the slowest samples of a series to stderr, to locate outliers.
fn report_slowest(what: &str, prefix: &str, samples: &[Duration]) {
    let mut indexed: Vec<(usize, Duration)> = samples.iter().copied().enumerate().collect();
    indexed.sort_by_key(|s| std::cmp::Reverse(s.1));
    let slowest: Vec<String> = indexed
        .iter()
        .take(3)
        .map(|(i, d)| format!("{prefix}-{i:05} {}", ms(*d)))
        .collect();
    if !slowest.is_empty() {
        eprintln!("{what}: slowest: {}", slowest.join(", "));
    }
}

fn progress(what: &str, done: usize, total: usize, started: Instant) {
    let step = (total / 10).max(1);
    if done.is_multiple_of(step) || done == total {
        eprintln!(
            "{what}: {done}/{total} ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
    }
}

/// Launches the `sleep 3600` containers the footprint and recovery benchmarks need.
fn fleet(client: &Client, agent: &mut Agent, r: &mut Results) -> anyhow::Result<Vec<String>> {
    let m = r.containers;
    eprintln!("fleet: launching {m} containers running `sleep 3600`");
    let mut ids = Vec::with_capacity(m);
    let mut samples = Vec::with_capacity(m);
    let started = Instant::now();
    for i in 0..m {
        check_interrupted()?;
        let id = format!("sleep-{i:05}");
        samples.push(client.launch(&id, "sleep 3600")?);
        ids.push(id);
        progress("fleet", i + 1, m, started);
    }
    agent.check_running()?;
    report_slowest("fleet", "sleep", &samples);
    r.launch_sleep = Latencies::of(&samples);
    Ok(ids)
}

/// RSS of the agent holding the fleet, and of the fleet's supervisors.
fn footprint(
    setup: &Setup,
    client: &Client,
    agent: &mut Agent,
    ids: &[String],
    r: &mut Results,
) -> anyhow::Result<()> {
    // Let every supervisor settle into its steady state first.
    std::thread::sleep(Duration::from_secs(1));
    r.loaded_rss = Some(procfs::rss_kib(agent.pid())?);
    let listed = client.containers()?;
    check_listed("before the restart", ids, &listed, r);
    r.executors = listed
        .iter()
        .map(|c| (c.id.clone(), c.executor_pid))
        .collect();
    let mut rss = Vec::with_capacity(listed.len());
    let mut anon = Vec::with_capacity(listed.len());
    let mut file = Vec::with_capacity(listed.len());
    let mut pss = Vec::with_capacity(listed.len());
    let mut missing = Vec::new();
    let mut via_cgroup = 0;
    for c in &listed {
        match setup.supervisor_of(&c.id, c.executor_pid) {
            Some((pid, fallback)) => {
                via_cgroup += usize::from(fallback);
                match procfs::memory(pid) {
                    Ok(mem) => {
                        rss.push(mem.rss);
                        anon.push(mem.anon);
                        file.push(mem.file);
                        pss.extend(mem.pss);
                    }
                    Err(_) => missing.push(c.id.clone()),
                }
            }
            None => missing.push(c.id.clone()),
        }
    }
    if !missing.is_empty() {
        r.problems.push(format!(
            "no live supervisor found for {} of {} containers (first: {})",
            missing.len(),
            listed.len(),
            missing[0]
        ));
    }
    if via_cgroup > 0 {
        r.notes.push(format!(
            "{via_cgroup} supervisors were not the parent of their executor_pid and were found in the leaf cgroup instead"
        ));
    }
    r.supervisors = Sizes::of(&rss);
    r.supervisors_anon = Sizes::of(&anon);
    r.supervisors_file = Sizes::of(&file);
    r.supervisors_pss = Sizes::of(&pss);
    Ok(())
}

/// Compares `GET_CONTAINERS` with the ids launched; returns how many of them are listed.
fn check_listed(when: &str, ids: &[String], listed: &[agent::Listed], r: &mut Results) -> usize {
    let seen: HashSet<&str> = listed.iter().map(|c| c.id.as_str()).collect();
    let absent: Vec<&String> = ids
        .iter()
        .filter(|id| !seen.contains(id.as_str()))
        .collect();
    if !absent.is_empty() {
        r.problems.push(format!(
            "GET_CONTAINERS {when} lists {} of {} containers (first missing: {})",
            ids.len() - absent.len(),
            ids.len(),
            absent[0]
        ));
    }
    let expected: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let extra = listed
        .iter()
        .filter(|c| !expected.contains(c.id.as_str()))
        .count();
    if extra > 0 {
        r.problems.push(format!(
            "GET_CONTAINERS {when} lists {extra} containers that were never launched or were removed"
        ));
    }
    ids.len() - absent.len()
}

/// SIGKILLs the agent holding the fleet, starts it again and times the recovery.
fn recovery(
    setup: &mut Setup,
    client: &Client,
    current: &mut Option<Agent>,
    ids: &[String],
    r: &mut Results,
) -> anyhow::Result<()> {
    if let Some(old) = current.take() {
        if r.loaded_rss.is_none() {
            r.loaded_rss = Some(procfs::rss_kib(old.pid())?);
        }
        eprintln!("recovery: SIGKILL the agent, start it again");
        old.kill()?;
    }
    let agent = current.insert(setup.start_agent()?);
    let startup = agent.wait_healthy(client, HEALTH_POLL)?;
    eprintln!(
        "recovery: healthy after {:.1} ms",
        startup.healthy.as_secs_f64() * 1e3
    );
    r.recovery = Some(startup);
    r.recovered_rss = Some(procfs::rss_kib(agent.pid())?);
    r.recovery_agent_millis = agent_reported_recovery_millis(&agent.log);
    let listed = client.containers()?;
    r.recovered_listed = Some(check_listed("after the restart", ids, &listed, r));
    // Reattached: the same executor as before the restart, still alive.
    let running = listed
        .iter()
        .filter(|c| {
            c.executor_pid.is_some_and(procfs::alive)
                && r.executors
                    .get(&c.id)
                    .is_none_or(|&before| before == c.executor_pid)
        })
        .count();
    if running != listed.len() {
        r.problems.push(format!(
            "after the restart only {running} of {} listed containers report their executor_pid from before the restart, alive",
            listed.len()
        ));
    }
    r.recovered_running = Some(running);
    Ok(())
}

/// The `millis=` the agent logs with "recovery complete", if it does.
fn agent_reported_recovery_millis(log: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains("recovery complete"))?;
    let rest = &line[line.find("millis=")? + "millis=".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The machine the figures were taken on.
struct Facts {
    date: String,
    nproc: usize,
    kernel: String,
    cgroups: String,
    agent_version: String,
}

impl Facts {
    fn gather(setup: &Setup) -> Facts {
        let agent_version = std::process::Command::new(&setup.holdfast)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "unknown".into());
        Facts {
            date: today_utc(),
            nproc: procfs::nproc(),
            kernel: procfs::kernel_release(),
            cgroups: format!(
                "{} (cgroup2 at {})",
                if setup.mounts.hybrid {
                    "hybrid"
                } else {
                    "unified"
                },
                setup.mounts.unified.display()
            ),
            agent_version,
        }
    }
}

/// Today's date (UTC) as `YYYY-MM-DD`.
fn today_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn mib(kib: f64) -> String {
    format!("{:.2} MiB", kib / 1024.0)
}

fn verdict(goal: &str, met: bool) -> String {
    if met {
        format!("{goal}: met")
    } else {
        format!("{goal}: **missed**")
    }
}

/// The results as Markdown.
fn render(facts: &Facts, r: &Results) -> String {
    let mut out = String::new();
    let mut rows: Vec<[String; 3]> = Vec::new();
    let n = r.launches;
    let m = r.containers;
    if let Some(l) = r.launch_true {
        rows.push([
            format!("Launch `true`, p50 (n={})", l.count),
            ms(l.p50),
            verdict("<= 5 ms", l.p50 <= GOAL_LAUNCH_P50),
        ]);
        rows.push(["Launch `true`, p90".into(), ms(l.p90), String::new()]);
        rows.push(["Launch `true`, p99".into(), ms(l.p99), String::new()]);
        rows.push(["Launch `true`, max".into(), ms(l.max), String::new()]);
    }
    if let Some(l) = r.launch_sleep {
        rows.push([
            format!(
                "Launch `sleep 3600` while 0..{} run, p50 / p90 / p99 / max",
                l.count
            ),
            format!(
                "{} / {} / {} / {}",
                ms(l.p50),
                ms(l.p90),
                ms(l.p99),
                ms(l.max)
            ),
            String::new(),
        ]);
    }
    if let Some(s) = r.first_start {
        rows.push([
            "Agent start, no containers: spawn to GET_HEALTH 200".into(),
            ms(s.healthy),
            String::new(),
        ]);
    }
    if let Some(s) = r.recovery {
        rows.push([
            format!("Recovery of {m} containers: spawn to GET_HEALTH 200"),
            ms(s.healthy),
            verdict("<= 1 s", s.healthy <= GOAL_RECOVERY),
        ]);
        rows.push([
            "Recovery: spawn to the first answer (503 while recovering)".into(),
            format!(
                "{} ({} polls answered 503)",
                ms(s.first_answer),
                s.unavailable_answers
            ),
            String::new(),
        ]);
        if let Some(millis) = r.recovery_agent_millis {
            rows.push([
                "Recovery: duration the agent logs".into(),
                format!("{millis} ms"),
                String::new(),
            ]);
        }
    }
    if let Some(listed) = r.recovered_listed {
        let running = r.recovered_running.unwrap_or(0);
        rows.push([
            "Containers listed by GET_CONTAINERS after recovery".into(),
            format!("{listed} of {m} ({running} with the same live executor_pid as before)"),
            verdict("all", listed == m && running == m),
        ]);
    }
    if let Some(kib) = r.idle_rss {
        rows.push([
            "Agent RSS, idle (no containers)".into(),
            mib(kib as f64),
            verdict("<= 20 MiB", kib <= GOAL_IDLE_AGENT_KIB),
        ]);
    }
    if let Some(kib) = r.rss_after_launches {
        rows.push([
            format!("Agent RSS after {n} launch/wait/remove cycles"),
            mib(kib as f64),
            String::new(),
        ]);
    }
    if let Some(kib) = r.loaded_rss {
        rows.push([
            format!("Agent RSS with {m} containers"),
            mib(kib as f64),
            String::new(),
        ]);
    }
    if let Some(kib) = r.recovered_rss {
        rows.push([
            format!("Agent RSS right after recovering {m} containers"),
            mib(kib as f64),
            String::new(),
        ]);
    }
    if let Some(s) = r.supervisors {
        rows.push([
            format!("Supervisor RSS, mean over {}", s.count),
            mib(s.mean_kib),
            verdict("<= 1.5 MiB", s.mean_kib <= GOAL_SUPERVISOR_KIB as f64),
        ]);
        rows.push([
            format!("Supervisor RSS, max over {}", s.count),
            mib(s.max_kib as f64),
            verdict("<= 1.5 MiB", s.max_kib <= GOAL_SUPERVISOR_KIB),
        ]);
    }
    if let (Some(a), Some(f)) = (r.supervisors_anon, r.supervisors_file) {
        rows.push([
            "Supervisor RSS split, mean: anonymous / file-backed".into(),
            format!("{} / {}", mib(a.mean_kib), mib(f.mean_kib)),
            String::new(),
        ]);
    }
    if let Some(p) = r.supervisors_pss {
        rows.push([
            format!("Supervisor PSS, mean / max over {}", p.count),
            format!("{} / {}", mib(p.mean_kib), mib(p.max_kib as f64)),
            String::new(),
        ]);
    }

    if rows.is_empty() && r.problems.is_empty() {
        return out;
    }
    let _ = writeln!(out, "## Holdfast benchmark, {}\n", facts.date);
    let _ = writeln!(
        out,
        "Host: nproc {}, kernel {}, cgroups {}. Agent: {}.\n",
        facts.nproc, facts.kernel, facts.cgroups, facts.agent_version
    );
    let _ = writeln!(out, "| Figure | Measured | Goal |");
    let _ = writeln!(out, "|---|---|---|");
    for [a, b, c] in &rows {
        let _ = writeln!(out, "| {a} | {b} | {c} |");
    }
    if !r.notes.is_empty() || !r.problems.is_empty() {
        out.push('\n');
        for note in &r.notes {
            let _ = writeln!(out, "- Note: {note}");
        }
        for p in &r.problems {
            let _ = writeln!(out, "- Agent misbehaved: {p}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_778), (2026, 11, 21));
    }

    #[test]
    fn recovery_millis_from_log() {
        let dir = std::env::temp_dir().join(format!("holdfast-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let log = dir.join("agent.log");
        std::fs::write(
            &log,
            "2026-11-21T10:00:00Z  INFO holdfast::agent: recovery complete; serving on 127.0.0.1:1 reattached=3 ended=0 millis=42\n",
        )
        .expect("write");
        assert_eq!(agent_reported_recovery_millis(&log), Some(42));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
