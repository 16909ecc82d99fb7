//! `holdfast agent`: recover, then serve the agent API.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use holdfast_agent::cluster::{Cluster, ClusterConfig, DiskUsage};
use holdfast_agent::gc::GcPolicy;
use holdfast_api::agent::Flag;
use holdfast_api::internal::AgentInfo;
use holdfast_api::v1::VersionInfo;
use holdfast_cgroups::Hierarchy;
use holdfast_containerizer::scope::SystemdSettings;
use holdfast_containerizer::{Config, Containerizer};
use holdfast_isolation::{parse_isolation, Settings as LimitSettings};
use holdfast_resources::{default_agent_resources, Resources};

use crate::flags::{AgentFlags, RecoverMode};

pub fn init_logging(level: &str) {
    let directive = match level.to_ascii_uppercase().as_str() {
        "ERROR" => "error".to_string(),
        "WARNING" | "WARN" => "warn".to_string(),
        "INFO" => "info".to_string(),
        "DEBUG" => "debug".to_string(),
        _ => level.to_string(),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directive)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

pub fn version_info() -> VersionInfo {
    VersionInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        build_date: None,
        build_time: None,
        build_user: None,
        git_sha: None,
        git_tag: None,
    }
}

fn check_cgroups_root(root: &Path) -> anyhow::Result<()> {
    let ok = !root.as_os_str().is_empty()
        && root.components().all(|c| matches!(c, Component::Normal(_)));
    if !ok {
        bail!(
            "--cgroups_root '{}' must be a relative path below the cgroup2 mount without '..' (e.g. 'holdfast')",
            root.display()
        );
    }
    Ok(())
}

pub fn run(flags: AgentFlags) -> anyhow::Result<ExitCode> {
    init_logging(&flags.logging_level);
    let (cfg, cluster) = prepare(&flags)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(flags, cfg, cluster))
}

/// Everything the agent checks and sets up before it serves: a bad flag or an unusable
/// host stops it here, with the reason.
pub fn prepare(flags: &AgentFlags) -> anyhow::Result<(Config, Option<ClusterConfig>)> {
    check_cgroups_root(&flags.cgroups_root)?;
    let hierarchy = match &flags.cgroups_hierarchy {
        Some(p) => Hierarchy::at(p.clone()),
        None => Hierarchy::detect().context(
            "no cgroup2 hierarchy found: mount one (e.g. at /sys/fs/cgroup) or pass --cgroups_hierarchy",
        )?,
    };
    let isolation =
        parse_isolation(&flags.isolation).map_err(|e| anyhow::anyhow!("--isolation: {e}"))?;
    let limit_settings = limit_settings(flags)?;
    let offered = hierarchy.root().controllers().unwrap_or_default();
    let missing: Vec<&str> = isolation
        .iter()
        .filter(|c| !offered.iter().any(|o| o == c.cgroup_name()))
        .map(|c| c.isolation_name())
        .collect();
    if !missing.is_empty() {
        tracing::warn!(
            mount = %hierarchy.mount().display(),
            offered = %offered.join(" "),
            not_enforced = %missing.join(","),
            "this cgroup2 hierarchy lacks controllers --isolation asks for: containers run, but those limits are not enforced and each container's status names them (see `holdfast doctor`)"
        );
    }
    for dir in [&flags.work_dir, &flags.runtime_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let systemd = systemd_settings(flags)?;
    let supervisor_exe = supervisor_exe(flags.launcher_dir.as_deref())?;
    let workload_nofile = reserve_descriptors();
    let cfg = Config {
        work_dir: flags.work_dir.clone(),
        runtime_dir: flags.runtime_dir.clone(),
        hierarchy,
        cgroups_root: flags.cgroups_root.clone(),
        destroy_timeout: flags.cgroups_destroy_timeout,
        grace_period: flags.executor_shutdown_grace_period,
        strict: flags.strict,
        supervisor_exe,
        workload_nofile,
        isolation,
        limit_settings,
        systemd,
    };
    let cluster = cluster_config(flags)?;
    Ok((cfg, cluster))
}

/// With `--master`: what the agent tells the master about itself and how it runs tasks.
fn cluster_config(flags: &AgentFlags) -> anyhow::Result<Option<ClusterConfig>> {
    let Some(master) = &flags.master else {
        for (name, set) in [
            ("--resources", flags.resources.is_some()),
            ("--attributes", !flags.attributes.is_empty()),
            ("--domain", flags.domain.is_some()),
        ] {
            if set {
                tracing::warn!("{name} has no effect without --master");
            }
        }
        return Ok(None);
    };
    let master =
        holdfast_http::parse_endpoint(master).map_err(|e| anyhow::anyhow!("--master {e}"))?;
    let resources = agent_resources(flags)?;
    let attributes = holdfast_resources::parse_attributes(&flags.attributes)
        .map_err(|e| anyhow::anyhow!("--attributes: {e}"))?;
    let domain = match &flags.domain {
        Some(d) => Some(parse_domain(d)?),
        None => None,
    };
    let hostname = match &flags.hostname {
        Some(h) => h.clone(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| flags.ip.to_string()),
    };
    let ip = if flags.ip.is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        flags.ip
    };
    Ok(Some(ClusterConfig {
        master,
        info: AgentInfo {
            hostname,
            port: flags.port,
            resources: resources.into_vec(),
            attributes,
            domain,
        },
        endpoint: std::net::SocketAddr::new(ip, flags.port).to_string(),
        executor_shutdown_grace: flags.executor_shutdown_grace_period,
        executor_registration_timeout: flags.executor_registration_timeout,
        max_completed_executors: flags.max_completed_executors_per_framework,
        work_dir: flags.work_dir.clone(),
        gc: GcPolicy {
            delay: flags.gc_delay,
            disk_headroom: flags.gc_disk_headroom,
            disk_watch_interval: flags.disk_watch_interval,
        },
        disk_usage: {
            let dir = flags.work_dir.clone();
            DiskUsage(std::sync::Arc::new(move || {
                statvfs(&dir).map(|s| used_fraction(&s))
            }))
        },
    }))
}

/// `--resources`, with `cpus`, `mem`, `disk` and `ports` it leaves out taken from the
/// host as Mesos does: every CPU, memory less 1 GiB (half of it below 2 GiB), the work
/// dir's disk less 5 GiB (half of it below 10 GiB).
fn agent_resources(flags: &AgentFlags) -> anyhow::Result<Resources> {
    let given = match &flags.resources {
        Some(text) => Resources::parse(text, &flags.default_role)
            .map_err(|e| anyhow::anyhow!("--resources: {e}"))?,
        None => Resources::default(),
    };
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as f64)
        .unwrap_or(1.0);
    let gib = 1024.0;
    let mem = host_memory_mib().map(|m| if m >= 2.0 * gib { m - gib } else { m / 2.0 });
    let disk = disk_mib(&flags.work_dir).map(|d| {
        if d >= 10.0 * gib {
            d - 5.0 * gib
        } else {
            d / 2.0
        }
    });
    let defaults = default_agent_resources(cpus, mem.unwrap_or(0.0), disk.unwrap_or(0.0));
    let named: std::collections::BTreeSet<String> = given.iter().map(|r| r.name.clone()).collect();
    let mut out = given;
    let missing = Resources::new(
        defaults
            .into_vec()
            .into_iter()
            .filter(|r| !named.contains(&r.name)),
    )
    .map_err(|e| anyhow::anyhow!("host resources: {e}"))?;
    out += &missing;
    Ok(out)
}

fn host_memory_mib() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn disk_mib(path: &Path) -> Option<f64> {
    let st = statvfs(path)?;
    Some(st.f_blocks as f64 * st.f_frsize as f64 / (1024.0 * 1024.0))
}

fn statvfs(path: &Path) -> Option<libc::statvfs> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: zeroed statvfs is a valid out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid pointer to a statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st)
}

/// The share of a file system in use: the larger of its blocks and its inodes (a disk
/// full of small sandboxes runs out of inodes first).
fn used_fraction(st: &libc::statvfs) -> f64 {
    let share = |total: u64, free: u64| {
        if total == 0 {
            // File systems without a fixed inode table report none.
            0.0
        } else {
            total.saturating_sub(free) as f64 / total as f64
        }
    };
    share(st.f_blocks, st.f_bfree).max(share(st.f_files, st.f_ffree))
}

/// `--domain`: `DomainInfo` JSON, or `file:///path` (or a path) to it. It must name a
/// region and a zone, as Mesos requires.
fn parse_domain(flag: &str) -> anyhow::Result<serde_json::Value> {
    let text = if flag.trim_start().starts_with('{') {
        flag.to_owned()
    } else {
        let path = flag.strip_prefix("file://").unwrap_or(flag);
        std::fs::read_to_string(path).with_context(|| format!("--domain: cannot read {path}"))?
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("--domain is not JSON: {e}"))?;
    let fd = &v["fault_domain"];
    for part in ["region", "zone"] {
        if !fd[part]["name"].is_string() {
            bail!(
                "--domain needs fault_domain.{part}.name, e.g. {{\"fault_domain\":{{\"region\":{{\"name\":\"eu-west\"}},\"zone\":{{\"name\":\"eu-west-1a\"}}}}}}"
            );
        }
    }
    Ok(v)
}

/// Whether containers become systemd scopes (`--systemd_enable_support`, by default when
/// systemd is the init system), and in which slice. Checked at start: a slice name systemd
/// would refuse or a systemd that cannot be reached stops the agent here rather than
/// failing every launch.
fn systemd_settings(flags: &AgentFlags) -> anyhow::Result<Option<SystemdSettings>> {
    let booted = holdfast_systemd::detect::booted_at(&flags.systemd_runtime_directory);
    if !flags.systemd_enable_support.unwrap_or(booted) {
        if booted {
            tracing::warn!("--systemd_enable_support=false on a systemd host: containers live under --cgroups_root, inside the agent's unit unless it runs elsewhere, and a `systemctl stop` of that unit kills them");
        }
        return Ok(None);
    }
    if !booted {
        bail!(
            "--systemd_enable_support=true, but systemd is not the init system here ({} does not exist); leave the flag out or set it to false",
            flags.systemd_runtime_directory.display()
        );
    }
    let slice = flags.systemd_containers_slice.clone();
    holdfast_systemd::names::validate_slice_name(&slice)
        .map_err(|e| anyhow::anyhow!("--systemd_containers_slice: {e}"))?;
    let version = holdfast_systemd::Connection::system()
        .and_then(|mut c| c.version())
        .context("cannot talk to systemd over D-Bus, which containers in systemd scopes need (or pass --systemd_enable_support=false)")?;
    tracing::info!(systemd = %version, slice = %slice, "containers run as systemd scopes");
    Ok(Some(SystemdSettings {
        slice_path: holdfast_systemd::names::slice_cgroup_path(&slice),
        slice,
    }))
}

/// The `--cgroups_*` flags as isolation settings, refused at start when out of range
/// (rather than failing every launch later).
fn limit_settings(flags: &AgentFlags) -> anyhow::Result<LimitSettings> {
    let settings = LimitSettings {
        enable_cfs: flags.cgroups_enable_cfs,
        limit_swap: flags.cgroups_limit_swap,
        memory_throttling_factor: flags.cgroups_memory_throttling_factor,
        default_pids_max: flags.cgroups_default_pids_max,
        io_devices: parse_io_devices(&flags.cgroups_io_devices).context("--cgroups_io_devices")?,
    };
    settings.validate()?;
    Ok(settings)
}

/// `--cgroups_io_devices`: comma-separated `MAJ:MIN` numbers or block device paths.
fn parse_io_devices(flag: &str) -> anyhow::Result<Vec<(u32, u32)>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut devices = Vec::new();
    for item in flag.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some((major, minor)) = item.split_once(':') {
            let parse = |v: &str| v.parse::<u32>().ok();
            match (parse(major), parse(minor)) {
                (Some(a), Some(b)) => devices.push((a, b)),
                _ => bail!("'{item}' is not MAJ:MIN (e.g. 8:0) or a block device path"),
            }
            continue;
        }
        let meta = std::fs::metadata(item)
            .with_context(|| format!("cannot stat '{item}' (give MAJ:MIN or a block device)"))?;
        if !meta.file_type().is_block_device() {
            bail!("'{item}' is not a block device");
        }
        let rdev = meta.rdev();
        devices.push((libc::major(rdev), libc::minor(rdev)));
    }
    Ok(devices)
}

/// Raises the agent's descriptor limit (it holds one pidfd per container) and sizes its
/// descriptor table while it is still single-threaded. Returns the limit workloads get
/// unless they ask for one: the agent's own limit as it was started.
fn reserve_descriptors() -> Option<(u64, u64)> {
    let original = match holdfast_process::fds::raise_nofile_limit() {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise RLIMIT_NOFILE; the number of containers is bounded by the current limit");
            return None;
        }
    };
    // The soft limit is now the hard one.
    let table = original.rlim_max.min(FD_TABLE_RESERVE as u64) as i32;
    if let Err(e) = holdfast_process::fds::reserve_fd_table(table) {
        tracing::debug!(error = %e, "cannot presize the descriptor table");
    }
    Some((original.rlim_cur, original.rlim_max))
}

/// Descriptors the agent's table is sized for at start: room for a few thousand containers
/// without the stall of growing the table in a multithreaded process.
const FD_TABLE_RESERVE: i32 = 4096;

/// The supervisor binary: in `--launcher_dir`, or beside the agent's own executable.
fn supervisor_exe(launcher_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match launcher_dir {
        Some(dir) => dir.to_path_buf(),
        None => std::env::current_exe()
            .context("cannot find the agent's own executable")?
            .parent()
            .map(Path::to_path_buf)
            .context("the agent's executable has no directory")?,
    };
    let exe = dir.join(SUPERVISOR_BIN);
    let meta = std::fs::metadata(&exe).with_context(|| {
        format!(
            "cannot find {SUPERVISOR_BIN} at {}: install it beside holdfast or point --launcher_dir at its directory",
            exe.display()
        )
    })?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        bail!(
            "{} is not an executable file: reinstall {SUPERVISOR_BIN} or fix --launcher_dir",
            exe.display()
        );
    }
    Ok(exe)
}

const SUPERVISOR_BIN: &str = "holdfast-supervisor";

pub async fn serve(
    flags: AgentFlags,
    cfg: Config,
    cluster: Option<ClusterConfig>,
) -> anyhow::Result<ExitCode> {
    let pairs = flags.to_pairs();
    let state = holdfast_agent::AgentState::new(
        pairs
            .into_iter()
            .map(|(name, value)| Flag { name, value })
            .collect(),
        version_info(),
    );

    if flags.recover == RecoverMode::Cleanup {
        let (c, report) = Containerizer::recover(cfg).await?;
        let n = c.destroy_all().await?;
        tracing::info!(
            destroyed = n,
            ended_before = report.ended,
            "cleanup finished"
        );
        return Ok(ExitCode::SUCCESS);
    }

    // Listen before recovering, so clients get a 503 instead of a refused connection.
    let addr = std::net::SocketAddr::new(flags.ip, flags.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let app = holdfast_agent::router(state.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal("stopping; containers keep running"))
            .await
    });

    let (c, report) = Containerizer::recover(cfg).await?;
    tracing::info!(
        reattached = report.reattached,
        ended = report.ended,
        orphans_destroyed = report.orphans_destroyed.len(),
        skipped_checkpoints = report.skipped_checkpoints.len(),
        host_rebooted = report.rebooted,
        millis = report.duration.as_millis() as u64,
        "recovery complete; serving on {addr}"
    );
    if let Some(cluster) = cluster {
        tracing::info!(master = %cluster.master, "registering with the master");
        state.join(Cluster::start(cluster, c.clone()));
    }
    state.recovered(c);
    notify(&format!(
        "READY=1\nSTATUS=serving on {addr}; {} containers recovered",
        report.reattached
    ));

    server
        .await
        .context("the HTTP server task failed")?
        .context("the HTTP server failed")?;
    tracing::info!("agent stopped; containers keep running and are recovered at the next start");
    Ok(ExitCode::SUCCESS)
}

/// Waits for SIGTERM or SIGINT, then tells systemd the service is stopping with `status`.
pub async fn shutdown_signal(status: &str) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the agent still stops on SIGTERM's default action.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    notify(&format!("STOPPING=1\nSTATUS={status}"));
}

/// Tells systemd (a `Type=notify` service) how the agent is doing; nothing without it.
fn notify(state: &str) {
    if let Err(e) = holdfast_systemd::notify(state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        flags: AgentFlags,
    }

    fn settings(args: &[&str]) -> anyhow::Result<LimitSettings> {
        let cli = Cli::try_parse_from(std::iter::once("agent").chain(args.iter().copied()))?;
        limit_settings(&cli.flags)
    }

    #[test]
    fn io_devices_by_number_or_path() {
        assert_eq!(
            parse_io_devices(" 8:0, 254:16 ,").expect("numbers"),
            vec![(8, 0), (254, 16)]
        );
        let e = parse_io_devices("8:x").unwrap_err().to_string();
        assert!(e.contains("'8:x' is not MAJ:MIN"), "{e}");
        // /dev/null is a character device, not a disk.
        let e = parse_io_devices("/dev/null").unwrap_err().to_string();
        assert_eq!(e, "'/dev/null' is not a block device");
        let e = format!("{:#}", parse_io_devices("/no/such/disk").unwrap_err());
        assert!(e.contains("cannot stat '/no/such/disk'"), "{e}");
    }

    #[test]
    fn out_of_range_isolation_flags_stop_the_agent_at_start() {
        let ok = settings(&["--cgroups_io_devices=8:0", "--cgroups_default_pids_max=100"])
            .expect("valid");
        assert_eq!(ok.io_devices, vec![(8, 0)]);
        assert_eq!(ok.default_pids_max, Some(100));
        assert_eq!(ok.memory_throttling_factor, 0.9);
        let e = settings(&["--cgroups_memory_throttling_factor=1.5"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--cgroups_memory_throttling_factor 1.5 is outside [0, 1]"),
            "{e}"
        );
        let e = settings(&["--cgroups_default_pids_max=0"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--cgroups_default_pids_max 0 is outside"), "{e}");
    }

    #[test]
    fn sandbox_gc_defaults_are_mesos_and_bad_values_are_refused() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("agent").chain(args.iter().copied()))
                .map(|c| c.flags)
        };
        let work_dir = format!("--work_dir={}", std::env::temp_dir().display());
        let f = parse(&["--master=127.0.0.1:5050", &work_dir]).expect("defaults");
        let c = cluster_config(&f).expect("config").expect("with a master");
        assert_eq!(
            c.gc,
            GcPolicy {
                delay: std::time::Duration::from_secs(7 * 24 * 3600),
                disk_headroom: 0.1,
                disk_watch_interval: std::time::Duration::from_secs(60),
            }
        );
        let usage = (c.disk_usage.0)().expect("the work dir's file system can be read");
        assert!((0.0..=1.0).contains(&usage), "{usage}");
        for bad in [
            "--gc_disk_headroom=1.1",
            "--disk_watch_interval=0secs",
            "--gc_delay=1",
        ] {
            assert!(parse(&[bad]).is_err(), "{bad} accepted");
        }
    }
}
