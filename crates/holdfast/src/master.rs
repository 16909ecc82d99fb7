//! `holdfast master`: the cluster's master (frameworks, agents, offers).

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use holdfast_api::scheduler::MasterInfo;
use holdfast_master::registry;
use holdfast_master::state::{Config, Master};
use serde_json::json;

use crate::flags::{format_duration, parse_duration};

#[derive(Debug, Clone, Args)]
pub struct MasterFlags {
    /// Address the HTTP APIs listen on.
    #[arg(long = "ip", env = "HOLDFAST_IP", default_value = "127.0.0.1")]
    pub ip: IpAddr,
    /// Port the HTTP APIs listen on.
    #[arg(long = "port", env = "HOLDFAST_PORT", default_value_t = 5050)]
    pub port: u16,
    /// The name agents and frameworks are told to reach the master by; the IP if unset.
    #[arg(long = "hostname", env = "HOLDFAST_HOSTNAME")]
    pub hostname: Option<String>,
    /// Where the master keeps its state: the registry (`registry.json`), the agents it
    /// admitted and those it marked unreachable.
    #[arg(
        long = "work_dir",
        env = "HOLDFAST_WORK_DIR",
        default_value = "/var/lib/holdfast-master"
    )]
    pub work_dir: PathBuf,
    /// Period of HEARTBEAT events on scheduler streams (e.g. `15secs`).
    #[arg(long = "heartbeat_interval", env = "HOLDFAST_HEARTBEAT_INTERVAL", default_value = "15secs", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,
    /// How long the master waits for an agent's answer to a ping.
    #[arg(long = "agent_ping_timeout", env = "HOLDFAST_AGENT_PING_TIMEOUT", default_value = "15secs", value_parser = parse_duration)]
    pub agent_ping_timeout: Duration,
    /// Unanswered pings in a row after which an agent is unreachable.
    #[arg(long = "max_agent_ping_timeouts", env = "HOLDFAST_MAX_AGENT_PING_TIMEOUTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_agent_ping_timeouts: u32,
    /// How long agents the registry lists have to register again after the master
    /// started before they are marked unreachable.
    #[arg(long = "agent_reregister_timeout", env = "HOLDFAST_AGENT_REREGISTER_TIMEOUT", default_value = "10mins", value_parser = parse_duration)]
    pub agent_reregister_timeout: Duration,
    /// How long the registry remembers an unreachable agent.
    #[arg(long = "registry_max_agent_age", env = "HOLDFAST_REGISTRY_MAX_AGENT_AGE", default_value = "2weeks", value_parser = parse_duration)]
    pub registry_max_agent_age: Duration,
    /// How many unreachable agents the registry remembers at most (the oldest go first).
    #[arg(long = "registry_max_agent_count", env = "HOLDFAST_REGISTRY_MAX_AGENT_COUNT", default_value_t = 100 * 1024)]
    pub registry_max_agent_count: usize,
    /// How often the registry forgets unreachable agents past those two limits.
    #[arg(long = "registry_gc_interval", env = "HOLDFAST_REGISTRY_GC_INTERVAL", default_value = "15mins", value_parser = parse_duration)]
    pub registry_gc_interval: Duration,
    /// ERROR, WARNING, INFO or DEBUG.
    #[arg(
        long = "logging_level",
        env = "HOLDFAST_LOGGING_LEVEL",
        default_value = "INFO"
    )]
    pub logging_level: String,
}

/// Mesos refuses an `--agent_reregister_timeout` below this, because its agents space
/// their attempts to register again by it; see [`check`].
const MESOS_MIN_AGENT_REREGISTER_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Refuses flag values the master cannot work with, saying what to write instead.
fn check(flags: &MasterFlags) -> anyhow::Result<()> {
    for (name, value) in [
        ("--heartbeat_interval", flags.heartbeat_interval),
        ("--agent_ping_timeout", flags.agent_ping_timeout),
        ("--agent_reregister_timeout", flags.agent_reregister_timeout),
        ("--registry_gc_interval", flags.registry_gc_interval),
    ] {
        if value.is_zero() {
            anyhow::bail!("{name} must be longer than zero (e.g. 15secs)");
        }
    }
    // Mesos exits on a shorter one. Holdfast agents try again at least every 10 s once
    // they notice the master is gone, so a shorter window works for them; but an agent
    // that did not notice (the master's host went away without closing connections)
    // waits five ping intervals first, and must not be declared unreachable before it
    // tries. A shorter value is allowed (tests, small clusters) and warned about.
    if flags.agent_reregister_timeout < MESOS_MIN_AGENT_REREGISTER_TIMEOUT {
        tracing::warn!(
            "--agent_reregister_timeout is {}, below the 10mins Mesos requires: agents that \
             do not notice a master restart within it are marked unreachable",
            format_duration(flags.agent_reregister_timeout)
        );
    }
    Ok(())
}

pub fn run(flags: MasterFlags) -> anyhow::Result<ExitCode> {
    crate::agent::init_logging(&flags.logging_level);
    // Every agent keeps a stream open and makes its calls on a connection of its own, so
    // a thousand agents need more descriptors than the usual soft limit of 1024; past it
    // new connections are not accepted and agents miss their pings.
    if let Err(e) = holdfast_process::fds::raise_nofile_limit() {
        tracing::warn!(error = %e, "cannot raise RLIMIT_NOFILE; the number of agents and frameworks is bounded by the current limit");
    }
    std::fs::create_dir_all(&flags.work_dir)
        .with_context(|| format!("cannot create --work_dir {}", flags.work_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(flags))
}

/// Connections the kernel may queue before the master accepts them (it caps this at
/// `net.core.somaxconn`). With the usual 128, a thousand agents subscribing at once (after
/// a restart of the master or of the network) overflow the queue, and each dropped
/// connection is retried only after 1 s, then 3 s, 7 s and so on.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind`: a restarted master can take its port back at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

pub async fn serve(flags: MasterFlags) -> anyhow::Result<ExitCode> {
    check(&flags)?;
    // Read before listening: a registry that cannot be read stops the master before
    // any agent or framework reaches it.
    let registry_path = flags.work_dir.join(registry::FILE_NAME);
    let recovered = registry::load(&registry_path)?;
    if recovered.is_none() {
        // Written at once, so a work dir where it cannot be written stops the master
        // now rather than at the first agent's registration.
        registry::store(&registry_path, &registry::Registry::default().encode())?;
    }
    let addr = std::net::SocketAddr::new(flags.ip, flags.port);
    let listener = listen(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let ipv4 = match flags.ip {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
    };
    let hostname = flags
        .hostname
        .clone()
        .unwrap_or_else(|| flags.ip.to_string());
    let version = crate::agent::version_info();
    let info = MasterInfo::new(
        &holdfast_master::http::uuid4(),
        ipv4,
        &hostname,
        flags.port,
        &version.version,
    );
    tracing::info!(master_id = %info.id, "master starting on {addr}");
    let mut master = Master::new(
        info,
        Config {
            heartbeat_interval: flags.heartbeat_interval,
            agent_ping_timeout: flags.agent_ping_timeout,
            max_agent_ping_timeouts: flags.max_agent_ping_timeouts,
            agent_reregister_timeout: flags.agent_reregister_timeout,
            registry_max_agent_age: flags.registry_max_agent_age,
            registry_max_agent_count: flags.registry_max_agent_count,
            registry_gc_interval: flags.registry_gc_interval,
            ..Config::default()
        },
    );
    if let Some(registry) = recovered {
        tracing::info!(
            agents = registry.agents.len(),
            unreachable = registry.unreachable.len(),
            "recovered the registry {}; allowing {} for agents to register again",
            registry_path.display(),
            format_duration(flags.agent_reregister_timeout)
        );
        master.recover_from_registry(registry, holdfast_master::http::now());
    }
    let flag_list = json!([
        {"name": "ip", "value": flags.ip.to_string()},
        {"name": "port", "value": flags.port.to_string()},
        {"name": "hostname", "value": hostname},
        {"name": "work_dir", "value": flags.work_dir.display().to_string()},
        {"name": "heartbeat_interval", "value": format!("{}secs", flags.heartbeat_interval.as_secs_f64())},
        {"name": "agent_ping_timeout", "value": format!("{}secs", flags.agent_ping_timeout.as_secs_f64())},
        {"name": "max_agent_ping_timeouts", "value": flags.max_agent_ping_timeouts.to_string()},
        {"name": "agent_reregister_timeout", "value": format_duration(flags.agent_reregister_timeout)},
        {"name": "registry_max_agent_age", "value": format_duration(flags.registry_max_agent_age)},
        {"name": "registry_max_agent_count", "value": flags.registry_max_agent_count.to_string()},
        {"name": "registry_gc_interval", "value": format_duration(flags.registry_gc_interval)},
        {"name": "logging_level", "value": flags.logging_level},
    ]);
    let (handle, state) = holdfast_master::http::start(
        master,
        serde_json::to_value(&version).unwrap_or_default(),
        flag_list,
        registry_path,
    );
    let app = holdfast_master::http::router(handle);
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(crate::agent::shutdown_signal("stopping"));
    tokio::select! {
        served = server => served.context("the HTTP server failed")?,
        // The state task ends first only when it failed: the registry could not be
        // written, and the master must not go on acknowledging what it cannot keep.
        ended = state => {
            ended.context("the master's state task panicked")??;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        flags: MasterFlags,
    }

    fn flags(args: &[&str]) -> MasterFlags {
        Cli::try_parse_from(std::iter::once("master").chain(args.iter().copied()))
            .expect("flags parse")
            .flags
    }

    #[test]
    fn registry_flags_default_to_mesos_values() {
        let f = flags(&[]);
        assert_eq!(f.agent_reregister_timeout, Duration::from_secs(600));
        assert_eq!(f.registry_max_agent_age, Duration::from_secs(14 * 86400));
        assert_eq!(f.registry_max_agent_count, 102_400);
        assert_eq!(f.registry_gc_interval, Duration::from_secs(900));
        assert!(check(&f).is_ok());
    }

    #[test]
    fn a_zero_window_is_refused_and_a_short_one_allowed() {
        let e = check(&flags(&["--agent_reregister_timeout=0secs"])).expect_err("zero");
        assert!(e.to_string().contains("--agent_reregister_timeout"), "{e}");
        assert!(check(&flags(&["--registry_gc_interval=0mins"])).is_err());
        assert!(check(&flags(&["--agent_reregister_timeout=5secs"])).is_ok());
    }
}
