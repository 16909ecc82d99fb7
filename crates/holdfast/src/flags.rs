//! Command-line flags, Mesos-style: `--name=value` or `--name value`, each also readable
//! from `HOLDFAST_<NAME>` in the environment.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecoverMode {
    /// Reattach to running containers.
    Reconnect,
    /// Destroy everything recovered, then exit.
    Cleanup,
}

#[derive(Debug, Clone, Args)]
pub struct AgentFlags {
    /// Where the agent keeps its checkpoints (`meta/`) and sandboxes.
    #[arg(
        long = "work_dir",
        env = "HOLDFAST_WORK_DIR",
        default_value = "/var/lib/holdfast"
    )]
    pub work_dir: PathBuf,
    /// Volatile per-container files (pids, exit statuses); should vanish at reboot.
    #[arg(
        long = "runtime_dir",
        env = "HOLDFAST_RUNTIME_DIR",
        default_value = "/run/holdfast"
    )]
    pub runtime_dir: PathBuf,
    /// Address the HTTP API listens on.
    #[arg(long = "ip", env = "HOLDFAST_IP", default_value = "127.0.0.1")]
    pub ip: std::net::IpAddr,
    /// Port the HTTP API listens on.
    #[arg(long = "port", env = "HOLDFAST_PORT", default_value_t = 5051)]
    pub port: u16,
    /// Name of the cgroup, below the cgroup2 mount, that holds every container.
    #[arg(
        long = "cgroups_root",
        env = "HOLDFAST_CGROUPS_ROOT",
        default_value = "holdfast"
    )]
    pub cgroups_root: PathBuf,
    /// The cgroup2 mount to use; detected from /proc/self/mountinfo when absent.
    #[arg(long = "cgroups_hierarchy", env = "HOLDFAST_CGROUPS_HIERARCHY")]
    pub cgroups_hierarchy: Option<PathBuf>,
    /// How long destroying a container's cgroups may take (e.g. `10secs`).
    #[arg(long = "cgroups_destroy_timeout", env = "HOLDFAST_CGROUPS_DESTROY_TIMEOUT", default_value = "10secs", value_parser = parse_duration)]
    pub cgroups_destroy_timeout: Duration,
    /// Between SIGTERM and SIGKILL when a container is stopped gracefully.
    #[arg(long = "executor_shutdown_grace_period", env = "HOLDFAST_EXECUTOR_SHUTDOWN_GRACE_PERIOD", default_value = "5secs", value_parser = parse_duration)]
    pub executor_shutdown_grace_period: Duration,
    /// Refuse to start when a checkpoint is corrupt (`false`: skip, count and log it).
    #[arg(long = "strict", env = "HOLDFAST_STRICT", default_value_t = true, action = clap::ArgAction::Set)]
    pub strict: bool,
    /// `reconnect` to running containers, or `cleanup`: destroy them all and exit.
    #[arg(
        long = "recover",
        env = "HOLDFAST_RECOVER",
        value_enum,
        default_value = "reconnect"
    )]
    pub recover: RecoverMode,
    /// Which limits to enforce, Mesos names, comma-separated: `cgroups/cpu`, `cgroups/mem`,
    /// `cgroups/pids`, `cgroups/io`, `cgroups/cpuset`, `cgroups/hugetlb`, `cgroups/all`.
    #[arg(
        long = "isolation",
        env = "HOLDFAST_ISOLATION",
        default_value = "cgroups/cpu,cgroups/mem,cgroups/pids,cgroups/io"
    )]
    pub isolation: String,
    /// Without a cpu limit, cap a container's CPU at its request (`cpu.max`).
    #[arg(long = "cgroups_enable_cfs", env = "HOLDFAST_CGROUPS_ENABLE_CFS", default_value_t = false, action = clap::ArgAction::Set)]
    pub cgroups_enable_cfs: bool,
    /// Count swap against the memory limit: no swap beyond `memory.max` (`memory.swap.max` 0).
    #[arg(long = "cgroups_limit_swap", env = "HOLDFAST_CGROUPS_LIMIT_SWAP", default_value_t = false, action = clap::ArgAction::Set)]
    pub cgroups_limit_swap: bool,
    /// Where between request and limit `memory.high` throttles a container (0 to 1).
    #[arg(
        long = "cgroups_memory_throttling_factor",
        env = "HOLDFAST_CGROUPS_MEMORY_THROTTLING_FACTOR",
        default_value_t = 0.9
    )]
    pub cgroups_memory_throttling_factor: f64,
    /// `pids.max` of containers that ask for no `pids` resource (default: unlimited).
    #[arg(
        long = "cgroups_default_pids_max",
        env = "HOLDFAST_CGROUPS_DEFAULT_PIDS_MAX"
    )]
    pub cgroups_default_pids_max: Option<u64>,
    /// Block devices (`MAJ:MIN` or a `/dev` path), comma-separated, that per-container
    /// `io_*` limits apply to.
    #[arg(
        long = "cgroups_io_devices",
        env = "HOLDFAST_CGROUPS_IO_DEVICES",
        default_value = ""
    )]
    pub cgroups_io_devices: String,
    /// Directory holding `holdfast-supervisor`; by default the one `holdfast` runs from.
    #[arg(long = "launcher_dir", env = "HOLDFAST_LAUNCHER_DIR")]
    pub launcher_dir: Option<PathBuf>,
    /// Make each container a systemd scope of its own, so that it outlives the agent's
    /// service (`systemctl restart`). Default: on when systemd is the init system.
    #[arg(long = "systemd_enable_support", env = "HOLDFAST_SYSTEMD_ENABLE_SUPPORT", action = clap::ArgAction::Set)]
    pub systemd_enable_support: Option<bool>,
    /// The slice the containers' scopes go in; its limits cap all containers together.
    #[arg(
        long = "systemd_containers_slice",
        env = "HOLDFAST_SYSTEMD_CONTAINERS_SLICE",
        default_value = "holdfast_containers.slice"
    )]
    pub systemd_containers_slice: String,
    /// systemd's runtime directory, whose presence means systemd is the init system.
    #[arg(
        long = "systemd_runtime_directory",
        env = "HOLDFAST_SYSTEMD_RUNTIME_DIRECTORY",
        default_value = "/run/systemd/system"
    )]
    pub systemd_runtime_directory: PathBuf,
    /// Log level: ERROR, WARNING, INFO or DEBUG (also an env-filter directive).
    #[arg(
        long = "logging_level",
        env = "HOLDFAST_LOGGING_LEVEL",
        default_value = "INFO"
    )]
    pub logging_level: String,
    /// The master to register with (`host:port` or `http://host:port`). Without it the
    /// agent serves only its container API.
    #[arg(long = "master", env = "HOLDFAST_MASTER")]
    pub master: Option<String>,
    /// What the agent offers, e.g. `cpus:4;mem:8192;ports:[31000-32000]` or Resource
    /// JSON. `cpus`, `mem`, `disk` and `ports` left out are taken from the host.
    #[arg(long = "resources", env = "HOLDFAST_RESOURCES")]
    pub resources: Option<String>,
    /// Role of `--resources` entries that name none (reserved for it unless `*`).
    #[arg(
        long = "default_role",
        env = "HOLDFAST_DEFAULT_ROLE",
        default_value = "*"
    )]
    pub default_role: String,
    /// Attributes frameworks see in offers, e.g. `rack:r1;zone:a`.
    #[arg(long = "attributes", env = "HOLDFAST_ATTRIBUTES", default_value = "")]
    pub attributes: String,
    /// The name the agent reports (default: the host's name).
    #[arg(long = "hostname", env = "HOLDFAST_HOSTNAME")]
    pub hostname: Option<String>,
    /// Fault domain, as Mesos's `DomainInfo` JSON or `file:///path` to it.
    #[arg(long = "domain", env = "HOLDFAST_DOMAIN")]
    pub domain: Option<String>,
    /// How long a custom executor may take to subscribe before it is killed.
    #[arg(long = "executor_registration_timeout", env = "HOLDFAST_EXECUTOR_REGISTRATION_TIMEOUT", default_value = "1mins", value_parser = parse_duration)]
    pub executor_registration_timeout: Duration,
    /// Finished executors (and their sandboxes) kept per framework.
    #[arg(
        long = "max_completed_executors_per_framework",
        env = "HOLDFAST_MAX_COMPLETED_EXECUTORS_PER_FRAMEWORK",
        default_value_t = 150
    )]
    pub max_completed_executors_per_framework: usize,
    /// How long a completed executor's sandbox is kept at most.
    #[arg(long = "gc_delay", env = "HOLDFAST_GC_DELAY", default_value = "1weeks", value_parser = parse_duration)]
    pub gc_delay: Duration,
    /// The share of the work dir's disk to keep free: sandboxes go earlier as it fills.
    #[arg(long = "gc_disk_headroom", env = "HOLDFAST_GC_DISK_HEADROOM", default_value = "0.1", value_parser = parse_fraction)]
    pub gc_disk_headroom: f64,
    /// How often the work dir's disk usage is checked.
    #[arg(long = "disk_watch_interval", env = "HOLDFAST_DISK_WATCH_INTERVAL", default_value = "1mins", value_parser = parse_positive_duration)]
    pub disk_watch_interval: Duration,
}

impl AgentFlags {
    /// The flags as GET_FLAGS reports them.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut v = vec![
            (
                "cgroups_destroy_timeout".into(),
                format_duration(self.cgroups_destroy_timeout),
            ),
            (
                "cgroups_default_pids_max".into(),
                self.cgroups_default_pids_max
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            ),
            (
                "cgroups_enable_cfs".into(),
                self.cgroups_enable_cfs.to_string(),
            ),
            (
                "cgroups_hierarchy".into(),
                self.cgroups_hierarchy
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            ("cgroups_io_devices".into(), self.cgroups_io_devices.clone()),
            (
                "cgroups_limit_swap".into(),
                self.cgroups_limit_swap.to_string(),
            ),
            (
                "cgroups_memory_throttling_factor".into(),
                self.cgroups_memory_throttling_factor.to_string(),
            ),
            (
                "cgroups_root".into(),
                self.cgroups_root.display().to_string(),
            ),
            (
                "executor_shutdown_grace_period".into(),
                format_duration(self.executor_shutdown_grace_period),
            ),
            ("attributes".into(), self.attributes.clone()),
            ("default_role".into(), self.default_role.clone()),
            ("domain".into(), self.domain.clone().unwrap_or_default()),
            (
                "executor_registration_timeout".into(),
                format_duration(self.executor_registration_timeout),
            ),
            ("hostname".into(), self.hostname.clone().unwrap_or_default()),
            ("ip".into(), self.ip.to_string()),
            ("isolation".into(), self.isolation.clone()),
            (
                "launcher_dir".into(),
                self.launcher_dir
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            ("logging_level".into(), self.logging_level.clone()),
            ("master".into(), self.master.clone().unwrap_or_default()),
            (
                "max_completed_executors_per_framework".into(),
                self.max_completed_executors_per_framework.to_string(),
            ),
            ("gc_delay".into(), format_duration(self.gc_delay)),
            ("gc_disk_headroom".into(), self.gc_disk_headroom.to_string()),
            (
                "disk_watch_interval".into(),
                format_duration(self.disk_watch_interval),
            ),
            ("port".into(), self.port.to_string()),
            (
                "recover".into(),
                match self.recover {
                    RecoverMode::Reconnect => "reconnect".into(),
                    RecoverMode::Cleanup => "cleanup".into(),
                },
            ),
            (
                "resources".into(),
                self.resources.clone().unwrap_or_default(),
            ),
            ("runtime_dir".into(), self.runtime_dir.display().to_string()),
            ("strict".into(), self.strict.to_string()),
            (
                "systemd_containers_slice".into(),
                self.systemd_containers_slice.clone(),
            ),
            (
                "systemd_enable_support".into(),
                self.systemd_enable_support
                    .map(|b| b.to_string())
                    .unwrap_or_default(),
            ),
            (
                "systemd_runtime_directory".into(),
                self.systemd_runtime_directory.display().to_string(),
            ),
            ("work_dir".into(), self.work_dir.display().to_string()),
        ];
        v.retain(|(_, value)| !value.is_empty());
        v
    }
}

/// Parses a Mesos duration: a number and a unit (`ns`, `us`, `ms`, `secs`, `mins`, `hrs`,
/// `days`, `weeks`), e.g. `10secs` or `1.5mins`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("'{s}' has no unit: write e.g. '10secs' (units: ns, us, ms, secs, mins, hrs, days, weeks)"))?;
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' does not start with a number"))?;
    let secs = match unit {
        "ns" => value / 1e9,
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "secs" => value,
        "mins" => value * 60.0,
        "hrs" => value * 3600.0,
        "days" => value * 86400.0,
        "weeks" => value * 7.0 * 86400.0,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{s}' (units: ns, us, ms, secs, mins, hrs, days, weeks)"
            ))
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("'{s}': {e}"))
}

/// A duration that must not be zero (an interval something runs at).
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("'{s}' is zero: give an interval such as '1mins'"));
    }
    Ok(d)
}

/// A fraction between 0.0 and 1.0, e.g. `0.1`.
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number: give a fraction such as '0.1'"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("'{s}' must be between 0.0 and 1.0"));
    }
    Ok(v)
}

pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}secs", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_mesos_form() {
        assert_eq!(parse_duration("10secs"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5mins"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(
            parse_duration("1weeks"),
            Ok(Duration::from_secs(7 * 24 * 3600))
        );
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
        assert!(parse_duration("10s")
            .unwrap_err()
            .contains("unknown unit 's'"));
        assert!(parse_duration("secs").is_err());
        assert_eq!(format_duration(Duration::from_secs(5)), "5secs");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn fractions_and_intervals_are_checked() {
        assert_eq!(parse_fraction("0.1"), Ok(0.1));
        assert_eq!(parse_fraction("1"), Ok(1.0));
        assert!(parse_fraction("1.5")
            .unwrap_err()
            .contains("between 0.0 and 1.0"));
        assert!(parse_fraction("-0.1").is_err());
        assert!(parse_fraction("NaN").is_err());
        assert!(parse_fraction("ten").unwrap_err().contains("not a number"));
        assert_eq!(
            parse_positive_duration("1mins"),
            Ok(Duration::from_secs(60))
        );
        assert!(parse_positive_duration("0secs")
            .unwrap_err()
            .contains("is zero"));
    }
}
