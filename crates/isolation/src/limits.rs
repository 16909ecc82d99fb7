//! From a launch's resources and limits plus the agent's flags to cgroup2 file values.
//!
//! Requests come from Mesos `Resource`s (summed by name), limits from the
//! `LAUNCH_CONTAINER` `limits` map (Mesos 1.11) plus Holdfast's io keys. The result,
//! [`ContainerLimits`], is what the container gets; [`ContainerLimits::writes`] is the
//! list of interface-file writes that enforce it.

use std::collections::BTreeMap;

use holdfast_api::v1::{scalar_sum, Resource, Scalar, ValueType};

use crate::controllers::{Controller, Controllers};
use crate::units::{format_bytes, format_number, round_down_to_page, MIB};

/// `cpu.max` period. 100 ms is the kernel's default and what Mesos uses, so quotas mean
/// the same as on a Mesos agent.
pub const CPU_PERIOD_US: u64 = 100_000;
/// Smallest `cpu.max` quota. The kernel rejects quotas under 1 ms; Mesos floors at the
/// same value.
pub const MIN_CPU_QUOTA_US: u64 = 1_000;
/// Largest `cpu.max` quota the kernel accepts (`MAX_BW`, 2^44 - 1 µs).
pub const MAX_CPU_QUOTA_US: u64 = (1 << 44) - 1;
/// Floor for `memory.max` and `memory.low` (Mesos's `CGROUPS2_MIN_MEMORY`, 32 MiB).
///
/// A smaller hard limit gets a container OOM-killed by its own runtime footprint before
/// its workload does anything, which looks like a bug in the workload; Mesos raises such
/// limits to 32 MiB and so does Holdfast.
pub const MIN_MEMORY_BYTES: u64 = 32 * MIB;
/// Largest `pids.max` the kernel accepts (`PID_MAX_LIMIT`).
pub const MAX_PIDS: u64 = 4_194_304;
/// Bounds of `cpu.weight` and `io.weight` (`CGROUP_WEIGHT_MIN` / `CGROUP_WEIGHT_MAX`).
pub const MIN_WEIGHT: u64 = 1;
/// See [`MIN_WEIGHT`].
pub const MAX_WEIGHT: u64 = 10_000;
/// Default `--cgroups_memory_throttling_factor`, Kubernetes' `memoryThrottlingFactor`.
pub const DEFAULT_MEMORY_THROTTLING_FACTOR: f64 = 0.9;

/// The keys a launch's `limits` map may hold.
pub const LIMIT_KEYS: [&str; 6] = [
    "cpus",
    "mem",
    "io_read_bps",
    "io_write_bps",
    "io_read_iops",
    "io_write_iops",
];

/// Scalar resources Holdfast turns into limits; other resource names (disk, ports, gpus)
/// are bookkeeping for the master and are ignored here.
const SCALAR_RESOURCES: [&str; 6] = [
    "cpus",
    "mem",
    "pids",
    "io_weight",
    "hugepages_2MB",
    "hugepages_1GB",
];
/// Ranges resources Holdfast turns into cpuset lists.
const RANGES_RESOURCES: [&str; 2] = ["cpuset_cpus", "cpuset_mems"];

/// Huge page resources: resource name, the size as in `hugetlb.<size>.max`, page size in MB.
const HUGE_PAGE_SIZES: [(&str, &str, u64); 2] =
    [("hugepages_2MB", "2MB", 2), ("hugepages_1GB", "1GB", 1024)];

/// How limits are derived, from the agent's flags.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `--cgroups_enable_cfs`: without a cpu limit, cap CPU at the request (Mesos
    /// semantics). Default false: the request only sets the weight.
    pub enable_cfs: bool,
    /// `--cgroups_limit_swap`: count swap against the memory limit, as Mesos does with
    /// `memory.memsw.limit_in_bytes` on cgroup v1. cgroup2 keeps swap separate, so "memory
    /// plus swap within the limit" becomes `memory.swap.max` = 0 beside `memory.max`.
    /// Default false: swap is left as the host configures it.
    pub limit_swap: bool,
    /// `--cgroups_memory_throttling_factor` in [0, 1]: where between request and limit
    /// `memory.high` starts reclaiming. Default 0.9 (Kubernetes' `memoryThrottlingFactor`);
    /// 0 disables `memory.high`.
    pub memory_throttling_factor: f64,
    /// `--cgroups_default_pids_max`: `pids.max` for containers that ask for no `pids`;
    /// None leaves them unlimited.
    pub default_pids_max: Option<u64>,
    /// `--cgroups_io_devices`: the block devices (major, minor) that per-container io
    /// limits apply to. cgroup2 io limits are per device, and a launch names none.
    pub io_devices: Vec<(u32, u32)>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enable_cfs: false,
            limit_swap: false,
            memory_throttling_factor: DEFAULT_MEMORY_THROTTLING_FACTOR,
            default_pids_max: None,
            io_devices: Vec::new(),
        }
    }
}

impl Settings {
    /// Checks the flag values; [`ContainerLimits::compute`] calls it, and the agent can
    /// call it at start-up to refuse bad flags early.
    pub fn validate(&self) -> Result<(), LimitError> {
        let f = self.memory_throttling_factor;
        if !(0.0..=1.0).contains(&f) {
            return Err(invalid(format!(
                "--cgroups_memory_throttling_factor {} is outside [0, 1]; use a number from 0 \
                 (no memory.high) to 1",
                format_number(f)
            )));
        }
        if let Some(n) = self.default_pids_max {
            if !(1..=MAX_PIDS).contains(&n) {
                return Err(invalid(format!(
                    "--cgroups_default_pids_max {n} is outside 1..={MAX_PIDS}; give a count in \
                     that range or leave the flag out for no limit"
                )));
            }
        }
        Ok(())
    }
}

/// What a container gets; a field is None (or empty) when the launch asked nothing of
/// that controller.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerLimits {
    /// Some when the launch asked for cpus (request or limit).
    pub cpu: Option<CpuLimits>,
    /// Some when the launch asked for mem (a request above 0, or a limit).
    pub memory: Option<MemoryLimits>,
    /// Some when a `pids` resource was given or `--cgroups_default_pids_max` applies.
    pub pids: Option<PidsLimits>,
    /// Some when `io_weight` or any `io_*` limit was given.
    pub io: Option<IoLimits>,
    /// Some when `cpuset_cpus` or `cpuset_mems` was given.
    pub cpuset: Option<CpusetLimits>,
    /// One entry per huge page size asked for.
    pub hugetlb: Vec<HugetlbLimit>,
}

/// `cpu.weight` and `cpu.max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuLimits {
    /// The `cpus` request (0 when only a limit was given).
    pub request: f64,
    /// `cpu.weight`: 100 per requested CPU, clamped to 1..=10000.
    pub weight: u64,
    /// `cpu.max`.
    pub max: CpuMax,
}

/// A `cpu.max` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuMax {
    /// `max <period>`: no cap.
    Unlimited,
    /// `<quota> <period>`: at most `quota_us` of CPU time per `period_us`.
    Quota {
        /// CPU time per period, µs.
        quota_us: u64,
        /// Period length, µs.
        period_us: u64,
    },
}

impl CpuMax {
    /// The cap in CPUs, None when unlimited.
    pub fn cpus(self) -> Option<f64> {
        match self {
            CpuMax::Unlimited => None,
            CpuMax::Quota {
                quota_us,
                period_us,
            } => Some(quota_us as f64 / period_us as f64),
        }
    }

    /// The text of `cpu.max`.
    pub fn file_value(self) -> String {
        match self {
            CpuMax::Unlimited => format!("max {CPU_PERIOD_US}"),
            CpuMax::Quota {
                quota_us,
                period_us,
            } => format!("{quota_us} {period_us}"),
        }
    }
}

/// The memory controller's values, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimits {
    /// The `mem` request in bytes, rounded down to a page, before any minimum.
    pub request_bytes: u64,
    /// `memory.max`; None = "max" (unlimited).
    pub max: Option<u64>,
    /// `memory.low`: memory protected from reclaim (the request; 0 without one).
    pub low: u64,
    /// `memory.high`; None = "max".
    pub high: Option<u64>,
    /// `memory.swap.max`; None = leave it alone, Some(0) = no swap beyond `memory.max`.
    pub swap_max: Option<u64>,
}

/// `pids.max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidsLimits {
    /// None = "max".
    pub max: Option<u64>,
}

/// `io.weight` and `io.max`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoLimits {
    /// `io.weight` default weight, 1..=10000.
    pub weight: Option<u64>,
    /// One `io.max` line per device.
    pub max: Vec<IoMax>,
}

/// One `io.max` line; None fields are left out of it (and so stay unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoMax {
    /// Device major number.
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
    /// Read bytes per second.
    pub rbps: Option<u64>,
    /// Write bytes per second.
    pub wbps: Option<u64>,
    /// Read operations per second.
    pub riops: Option<u64>,
    /// Write operations per second.
    pub wiops: Option<u64>,
}

impl IoMax {
    /// The text of the `io.max` write: `MAJ:MIN` and only the keys given.
    pub fn file_value(&self) -> String {
        let mut line = format!("{}:{}", self.major, self.minor);
        for (key, value) in [
            ("rbps", self.rbps),
            ("wbps", self.wbps),
            ("riops", self.riops),
            ("wiops", self.wiops),
        ] {
            if let Some(v) = value {
                line.push_str(&format!(" {key}={v}"));
            }
        }
        line
    }
}

/// `cpuset.cpus` and `cpuset.mems`, in the cgroup list format ("0-1,3").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpusetLimits {
    /// CPUs the container may run on.
    pub cpus: Option<String>,
    /// NUMA nodes the container may allocate memory from.
    pub mems: Option<String>,
}

/// One `hugetlb.<size>.max`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HugetlbLimit {
    /// "2MB" or "1GB", as in the file name.
    pub page_size: String,
    /// Bytes of huge pages of that size the container may use; 0 forbids them.
    pub bytes: u64,
}

/// Why a launch's resources or limits cannot be turned into cgroup values. The message is
/// one line naming the resource and value and saying what is allowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    /// A request, limit or flag value is not acceptable.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: String) -> LimitError {
    LimitError::Invalid(message)
}

/// One interface-file write: `value` into `file` of the container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWrite {
    /// The controller the file belongs to.
    pub controller: Controller,
    /// The file name, e.g. "memory.max".
    pub file: String,
    /// The exact text to write.
    pub value: String,
}

impl ContainerLimits {
    /// Derives a container's limits from its resources (requests), its `limits` map and
    /// the agent's settings.
    ///
    /// Resources are summed by name. `cpus` (cores), `mem` (MiB), `pids`, `io_weight`,
    /// `hugepages_2MB` / `hugepages_1GB` (MiB) are scalars; `cpuset_cpus` / `cpuset_mems`
    /// are ranges. Other resource names are ignored. Limit keys are [`LIMIT_KEYS`]; `cpus`
    /// and `mem` limits may be +Infinity (unlimited) and must be at least their request.
    pub fn compute(
        resources: &[Resource],
        limits: &BTreeMap<String, Scalar>,
        settings: &Settings,
    ) -> Result<ContainerLimits, LimitError> {
        settings.validate()?;
        check_resources(resources)?;
        if let Some(key) = limits.keys().find(|k| !LIMIT_KEYS.contains(&k.as_str())) {
            return Err(invalid(format!(
                "unknown limit '{}'; known limits are: {}",
                key.escape_default(),
                LIMIT_KEYS.join(", ")
            )));
        }
        Ok(ContainerLimits {
            cpu: cpu_limits(resources, limits, settings)?,
            memory: memory_limits(resources, limits, settings)?,
            pids: pids_limits(resources, settings)?,
            io: io_limits(resources, limits, settings)?,
            cpuset: cpuset_limits(resources)?,
            hugetlb: hugetlb_limits(resources)?,
        })
    }

    /// The interface-file writes for the controllers in `enabled`, in the order they must
    /// be written.
    /// What must also be set on a systemd scope holding the container, as systemd's
    /// property names: weights only count between siblings and `memory.low` is capped by
    /// the parent's, so the values inside the scope alone would not compete with other
    /// containers (each scope is their sibling, not the container's cgroup).
    pub fn scope_properties(&self, enabled: &Controllers) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        if let (Some(cpu), true) = (&self.cpu, enabled.contains(Controller::Cpu)) {
            out.push(("CPUWeight".to_string(), cpu.weight));
        }
        if let (Some(w), true) = (
            self.io.as_ref().and_then(|io| io.weight),
            enabled.contains(Controller::Io),
        ) {
            out.push(("IOWeight".to_string(), w));
        }
        if let (Some(mem), true) = (&self.memory, enabled.contains(Controller::Memory)) {
            out.push(("MemoryLow".to_string(), mem.low));
        }
        out
    }

    pub fn writes(&self, enabled: &Controllers) -> Vec<FileWrite> {
        let mut out = Vec::new();
        let mut write = |controller: Controller, file: &str, value: String| {
            if enabled.contains(controller) {
                out.push(FileWrite {
                    controller,
                    file: file.to_owned(),
                    value,
                });
            }
        };
        if let Some(cpu) = &self.cpu {
            write(Controller::Cpu, "cpu.weight", cpu.weight.to_string());
            write(Controller::Cpu, "cpu.max", cpu.max.file_value());
        }
        if let Some(mem) = &self.memory {
            write(Controller::Memory, "memory.low", mem.low.to_string());
            write(Controller::Memory, "memory.high", max_value(mem.high));
            write(Controller::Memory, "memory.max", max_value(mem.max));
            if let Some(swap) = mem.swap_max {
                write(Controller::Memory, "memory.swap.max", swap.to_string());
            }
            // An OOM kill takes the whole workload, never half of it.
            write(Controller::Memory, "memory.oom.group", "1".to_owned());
        }
        if let Some(pids) = &self.pids {
            write(Controller::Pids, "pids.max", max_value(pids.max));
        }
        if let Some(io) = &self.io {
            if let Some(w) = io.weight {
                write(Controller::Io, "io.weight", format!("default {w}"));
            }
            for line in &io.max {
                write(Controller::Io, "io.max", line.file_value());
            }
        }
        if let Some(cpuset) = &self.cpuset {
            if let Some(cpus) = &cpuset.cpus {
                write(Controller::Cpuset, "cpuset.cpus", cpus.clone());
            }
            if let Some(mems) = &cpuset.mems {
                write(Controller::Cpuset, "cpuset.mems", mems.clone());
            }
        }
        for h in &self.hugetlb {
            write(
                Controller::Hugetlb,
                &format!("hugetlb.{}.max", h.page_size),
                h.bytes.to_string(),
            );
        }
        out
    }

    /// One line per asked-for limit that will not be enforced, because its controller is
    /// not in `enabled` (`--isolation`) or not in `available` (the cgroup2 names the host
    /// offers, e.g. the parent's `cgroup.controllers`). Empty when all are enforced.
    ///
    /// When both apply, `--isolation` is named: that is the operator's choice and the
    /// first thing to change.
    pub fn unenforced(&self, enabled: &Controllers, available: &[String]) -> Vec<String> {
        self.descriptions()
            .into_iter()
            .filter_map(|(c, what)| {
                if !enabled.contains(c) {
                    Some(format!(
                        "{what}: {} is not in --isolation",
                        c.isolation_name()
                    ))
                } else if !available.iter().any(|a| a == c.cgroup_name()) {
                    Some(format!(
                        "{what}: the {} controller is not available on this host",
                        c.cgroup_name()
                    ))
                } else {
                    None
                }
            })
            .collect()
    }

    /// The controllers these limits need.
    pub fn needed(&self) -> Controllers {
        let mut set = Controllers::default();
        let pairs = [
            (Controller::Cpu, self.cpu.is_some()),
            (Controller::Memory, self.memory.is_some()),
            (Controller::Pids, self.pids.is_some()),
            (Controller::Io, self.io.is_some()),
            (Controller::Cpuset, self.cpuset.is_some()),
            (Controller::Hugetlb, !self.hugetlb.is_empty()),
        ];
        for (c, present) in pairs {
            if present {
                set.insert(c);
            }
        }
        set
    }

    /// A short description of each asked-for limit with the controller enforcing it.
    fn descriptions(&self) -> Vec<(Controller, String)> {
        let mut out = Vec::new();
        if let Some(cpu) = &self.cpu {
            let what = match cpu.max.cpus() {
                Some(cpus) => format!("cpu limit {}", format_number(cpus)),
                None => format!("cpu request {}", format_number(cpu.request)),
            };
            out.push((Controller::Cpu, what));
        }
        if let Some(mem) = &self.memory {
            let what = match mem.max {
                Some(max) => format!("memory limit {}", format_bytes(max)),
                None if mem.low > 0 => format!("memory request {}", format_bytes(mem.low)),
                None => "whole-container OOM kill (memory.oom.group)".to_owned(),
            };
            out.push((Controller::Memory, what));
        }
        if let Some(PidsLimits { max: Some(n) }) = &self.pids {
            out.push((Controller::Pids, format!("pids limit {n}")));
        }
        if let Some(io) = &self.io {
            if let Some(w) = io.weight {
                out.push((Controller::Io, format!("io weight {w}")));
            }
            for line in &io.max {
                out.push((Controller::Io, format!("io limit {}", line.file_value())));
            }
        }
        if let Some(cpuset) = &self.cpuset {
            if let Some(cpus) = &cpuset.cpus {
                out.push((Controller::Cpuset, format!("cpuset cpus {cpus}")));
            }
            if let Some(mems) = &cpuset.mems {
                out.push((Controller::Cpuset, format!("cpuset mems {mems}")));
            }
        }
        for h in &self.hugetlb {
            out.push((
                Controller::Hugetlb,
                format!("hugetlb {} limit {}", h.page_size, format_bytes(h.bytes)),
            ));
        }
        out
    }
}

fn max_value(v: Option<u64>) -> String {
    v.map_or_else(|| "max".to_owned(), |n| n.to_string())
}

/// Checks the type and values of every resource Holdfast reads, so the per-controller
/// code below can trust sums and ranges.
fn check_resources(resources: &[Resource]) -> Result<(), LimitError> {
    for r in resources {
        let name = r.name.as_str();
        if SCALAR_RESOURCES.contains(&name) {
            let (ValueType::Scalar, Some(scalar)) = (r.kind, r.scalar) else {
                return Err(invalid(format!(
                    "resource '{name}' must be a SCALAR with a value; send it as \
                     {{\"name\": \"{name}\", \"type\": \"SCALAR\", \"scalar\": {{\"value\": N}}}}"
                )));
            };
            let v = scalar.value;
            if v.is_nan() || v.is_infinite() || v < 0.0 {
                return Err(invalid(format!(
                    "resource '{name}' has value {}; a request must be a finite number of \
                     at least 0",
                    format_number(v)
                )));
            }
        } else if RANGES_RESOURCES.contains(&name) {
            let (ValueType::Ranges, Some(ranges)) = (r.kind, &r.ranges) else {
                return Err(invalid(format!(
                    "resource '{name}' must be RANGES of ids; send it as {{\"name\": \
                     \"{name}\", \"type\": \"RANGES\", \"ranges\": {{\"range\": [{{\"begin\": 0, \
                     \"end\": 1}}]}}}}"
                )));
            };
            if let Some(bad) = ranges.range.iter().find(|x| x.begin > x.end) {
                return Err(invalid(format!(
                    "resource '{name}' has range [{}-{}] whose begin is above its end; write \
                     each range as begin <= end",
                    bad.begin, bad.end
                )));
            }
        }
    }
    Ok(())
}

/// A `cpus` or `mem` limit: positive, may be +Infinity.
fn resource_limit(limits: &BTreeMap<String, Scalar>, key: &str) -> Result<Option<f64>, LimitError> {
    let Some(scalar) = limits.get(key) else {
        return Ok(None);
    };
    let v = scalar.value;
    if v.is_nan() || v <= 0.0 {
        return Err(invalid(format!(
            "limit {} for {key} is not allowed; a limit must be above 0 (Infinity for \
             unlimited)",
            format_number(v)
        )));
    }
    Ok(Some(v))
}

fn check_not_below_request(key: &str, limit: Option<f64>, request: f64) -> Result<(), LimitError> {
    match limit {
        Some(l) if l < request => Err(invalid(format!(
            "limit {} for {key} is below the request {}; a limit must be at least the request",
            format_number(l),
            format_number(request)
        ))),
        _ => Ok(()),
    }
}

/// A scalar that must be a whole number in `min..=max`.
fn whole(v: f64, what: &str, min: u64, max: u64) -> Result<u64, LimitError> {
    if v.fract() != 0.0 || v < min as f64 || v > max as f64 {
        return Err(invalid(format!(
            "{what} {} is not allowed; give a whole number from {min} to {max}",
            format_number(v)
        )));
    }
    Ok(v as u64)
}

fn cpu_limits(
    resources: &[Resource],
    limits: &BTreeMap<String, Scalar>,
    settings: &Settings,
) -> Result<Option<CpuLimits>, LimitError> {
    let request = scalar_sum(resources, "cpus");
    let limit = resource_limit(limits, "cpus")?;
    if request.is_none() && limit.is_none() {
        return Ok(None);
    }
    let request = request.unwrap_or(0.0);
    check_not_below_request("cpus", limit, request)?;
    let weight = ((100.0 * request).round() as u64).clamp(MIN_WEIGHT, MAX_WEIGHT);
    let max = match limit {
        Some(l) if l.is_infinite() => CpuMax::Unlimited,
        Some(l) => cpu_quota(l, "limit")?,
        None if settings.enable_cfs && request > 0.0 => cpu_quota(request, "request")?,
        None => CpuMax::Unlimited,
    };
    Ok(Some(CpuLimits {
        request,
        weight,
        max,
    }))
}

fn cpu_quota(cpus: f64, what: &str) -> Result<CpuMax, LimitError> {
    let quota = (cpus * CPU_PERIOD_US as f64).round();
    if quota > MAX_CPU_QUOTA_US as f64 {
        return Err(invalid(format!(
            "cpus {what} {} is more than the kernel can enforce (at most {} cpus); ask for \
             less, or use an Infinity limit for no cap",
            format_number(cpus),
            MAX_CPU_QUOTA_US / CPU_PERIOD_US
        )));
    }
    Ok(CpuMax::Quota {
        quota_us: (quota as u64).max(MIN_CPU_QUOTA_US),
        period_us: CPU_PERIOD_US,
    })
}

/// MiB (Mesos's "MB") to bytes, rounded down to a page.
fn mib_to_bytes(mib: f64, what: &str) -> Result<u64, LimitError> {
    let bytes = (mib * MIB as f64).floor();
    // 2^63: far beyond any machine, and safely below where f64 -> u64 saturates.
    if bytes >= 9_223_372_036_854_775_808.0 {
        return Err(invalid(format!(
            "mem {what} {} MB is too large; ask for less, or use an Infinity limit for no cap",
            format_number(mib)
        )));
    }
    Ok(round_down_to_page(bytes as u64))
}

fn memory_limits(
    resources: &[Resource],
    limits: &BTreeMap<String, Scalar>,
    settings: &Settings,
) -> Result<Option<MemoryLimits>, LimitError> {
    let request = scalar_sum(resources, "mem").unwrap_or(0.0);
    let limit = resource_limit(limits, "mem")?;
    if request == 0.0 && limit.is_none() {
        return Ok(None);
    }
    check_not_below_request("mem", limit, request)?;
    let request_bytes = mib_to_bytes(request, "request")?;
    // Without a limit the request is the hard limit, as in Mesos.
    let max = match limit {
        Some(l) if l.is_infinite() => None,
        Some(l) => Some(mib_to_bytes(l, "limit")?.max(MIN_MEMORY_BYTES)),
        None => Some(request_bytes.max(MIN_MEMORY_BYTES)),
    };
    let low = if request > 0.0 {
        request_bytes.max(MIN_MEMORY_BYTES)
    } else {
        0
    };
    let high = max.and_then(|m| memory_high(low, m, settings.memory_throttling_factor));
    // Mesos limits memory plus swap to the limit; with no limit there is nothing to count
    // swap against, so swap is left alone then.
    let swap_max = (settings.limit_swap && max.is_some()).then_some(0);
    Ok(Some(MemoryLimits {
        request_bytes,
        max,
        low,
        high,
        swap_max,
    }))
}

/// `memory.high` as Kubernetes computes it: `floor((request + factor × (limit − request))
/// / page) × page`, set only when it lies strictly between the request and the limit.
///
/// Reclaim pressure from `memory.high` slows a container down as it nears its limit
/// instead of letting it run into an OOM kill at full speed. `request` here is the
/// effective `memory.low` (the request after the 32 MiB minimum), so a request raised to
/// the minimum never yields a `memory.high` below its own protection.
fn memory_high(request: u64, max: u64, factor: f64) -> Option<u64> {
    if max <= request {
        return None;
    }
    let extra = (factor * (max - request) as f64).floor() as u64;
    let high = round_down_to_page(request + extra);
    (high > request && high < max).then_some(high)
}

fn pids_limits(
    resources: &[Resource],
    settings: &Settings,
) -> Result<Option<PidsLimits>, LimitError> {
    if let Some(n) = scalar_sum(resources, "pids") {
        let max = whole(n, "resource 'pids'", 1, MAX_PIDS)?;
        return Ok(Some(PidsLimits { max: Some(max) }));
    }
    Ok(settings
        .default_pids_max
        .map(|max| PidsLimits { max: Some(max) }))
}

/// An io limit: a whole, positive, finite rate.
fn io_limit(limits: &BTreeMap<String, Scalar>, key: &str) -> Result<Option<u64>, LimitError> {
    let Some(scalar) = limits.get(key) else {
        return Ok(None);
    };
    let v = scalar.value;
    // u64::MAX as f64 rounds up to 2^64, so `<` keeps the cast in range.
    if v.is_nan() || v < 1.0 || v >= u64::MAX as f64 || v.fract() != 0.0 {
        return Err(invalid(format!(
            "limit {} for {key} is not allowed; give a whole number of at least 1, or leave \
             {key} out for no limit",
            format_number(v)
        )));
    }
    Ok(Some(v as u64))
}

fn io_limits(
    resources: &[Resource],
    limits: &BTreeMap<String, Scalar>,
    settings: &Settings,
) -> Result<Option<IoLimits>, LimitError> {
    let weight = scalar_sum(resources, "io_weight")
        .map(|w| whole(w, "resource 'io_weight'", MIN_WEIGHT, MAX_WEIGHT))
        .transpose()?;
    let rbps = io_limit(limits, "io_read_bps")?;
    let wbps = io_limit(limits, "io_write_bps")?;
    let riops = io_limit(limits, "io_read_iops")?;
    let wiops = io_limit(limits, "io_write_iops")?;
    let any_max = rbps.is_some() || wbps.is_some() || riops.is_some() || wiops.is_some();
    if weight.is_none() && !any_max {
        return Ok(None);
    }
    let mut max: Vec<IoMax> = Vec::new();
    if any_max {
        if settings.io_devices.is_empty() {
            return Err(invalid(
                "io limits (io_read_bps, io_write_bps, io_read_iops, io_write_iops) apply per \
                 block device and this agent names none; set --cgroups_io_devices (e.g. 8:0) \
                 or launch without io limits"
                    .to_owned(),
            ));
        }
        for &(major, minor) in &settings.io_devices {
            if !max.iter().any(|m| (m.major, m.minor) == (major, minor)) {
                max.push(IoMax {
                    major,
                    minor,
                    rbps,
                    wbps,
                    riops,
                    wiops,
                });
            }
        }
    }
    Ok(Some(IoLimits { weight, max }))
}

/// Formats ids as a cgroup list ("0-1,3"): sorted, overlapping and adjacent ranges merged.
pub fn format_id_list(ranges: &[(u64, u64)]) -> String {
    let mut sorted: Vec<(u64, u64)> = ranges.iter().map(|&(a, b)| (a.min(b), a.max(b))).collect();
    sorted.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (begin, end) in sorted {
        match merged.last_mut() {
            Some(last) if begin <= last.1.saturating_add(1) => last.1 = last.1.max(end),
            _ => merged.push((begin, end)),
        }
    }
    merged
        .iter()
        .map(|&(b, e)| {
            if b == e {
                b.to_string()
            } else {
                format!("{b}-{e}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn id_list(resources: &[Resource], name: &str) -> Result<Option<String>, LimitError> {
    let mut present = false;
    let mut ranges = Vec::new();
    for r in resources.iter().filter(|r| r.name == name) {
        present = true;
        if let Some(rs) = &r.ranges {
            ranges.extend(rs.range.iter().map(|x| (x.begin, x.end)));
        }
    }
    if !present {
        return Ok(None);
    }
    if ranges.is_empty() {
        return Err(invalid(format!(
            "resource '{name}' has no ranges; give at least one range of ids or leave \
             '{name}' out"
        )));
    }
    Ok(Some(format_id_list(&ranges)))
}

fn cpuset_limits(resources: &[Resource]) -> Result<Option<CpusetLimits>, LimitError> {
    let cpus = id_list(resources, "cpuset_cpus")?;
    let mems = id_list(resources, "cpuset_mems")?;
    if cpus.is_none() && mems.is_none() {
        return Ok(None);
    }
    Ok(Some(CpusetLimits { cpus, mems }))
}

fn hugetlb_limits(resources: &[Resource]) -> Result<Vec<HugetlbLimit>, LimitError> {
    let mut out = Vec::new();
    for (name, page_size, page_mb) in HUGE_PAGE_SIZES {
        let Some(mb) = scalar_sum(resources, name) else {
            continue;
        };
        let whole_pages = mb.fract() == 0.0 && (mb as u64).is_multiple_of(page_mb);
        let bytes = (mb as u64).checked_mul(MIB);
        match (whole_pages, bytes) {
            (true, Some(bytes)) => out.push(HugetlbLimit {
                page_size: page_size.to_owned(),
                bytes,
            }),
            _ => {
                return Err(invalid(format!(
                    "resource '{name}' is {} MB; give a whole multiple of the {page_mb} MB \
                     page size",
                    format_number(mb)
                )))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::GIB;

    fn scalar(name: &str, value: f64) -> Resource {
        Resource::scalar(name, value)
    }

    fn ranges(name: &str, rs: &[(u64, u64)]) -> Resource {
        Resource::ranges(name, rs)
    }

    fn lim(pairs: &[(&str, f64)]) -> BTreeMap<String, Scalar> {
        pairs
            .iter()
            .map(|&(k, value)| (k.to_owned(), Scalar { value }))
            .collect()
    }

    fn compute(resources: &[Resource], limits: &[(&str, f64)]) -> ContainerLimits {
        ContainerLimits::compute(resources, &lim(limits), &Settings::default()).expect("valid")
    }

    fn compute_with(
        resources: &[Resource],
        limits: &[(&str, f64)],
        settings: &Settings,
    ) -> ContainerLimits {
        ContainerLimits::compute(resources, &lim(limits), settings).expect("valid")
    }

    fn error(resources: &[Resource], limits: &[(&str, f64)], settings: &Settings) -> String {
        ContainerLimits::compute(resources, &lim(limits), settings)
            .expect_err("must be rejected")
            .to_string()
    }

    /// The (file, value) pairs of all writes with every controller enabled.
    fn files(limits: &ContainerLimits) -> Vec<(String, String)> {
        limits
            .writes(&Controllers::all())
            .into_iter()
            .map(|w| (w.file, w.value))
            .collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|&(f, v)| (f.to_owned(), v.to_owned()))
            .collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn settings_defaults() {
        let s = Settings::default();
        assert!(!s.enable_cfs);
        assert!(!s.limit_swap);
        assert_eq!(s.memory_throttling_factor, 0.9);
        assert_eq!(s.default_pids_max, None);
        assert!(s.io_devices.is_empty());
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn settings_validation() {
        for f in [-0.1, 1.5, f64::NAN] {
            let s = Settings {
                memory_throttling_factor: f,
                ..Settings::default()
            };
            let e = s.validate().expect_err("bad factor").to_string();
            assert!(e.starts_with("--cgroups_memory_throttling_factor"), "{e}");
            assert!(e.contains("outside [0, 1]"), "{e}");
        }
        let s = Settings {
            default_pids_max: Some(0),
            ..Settings::default()
        };
        assert_eq!(
            s.validate().expect_err("zero pids").to_string(),
            "--cgroups_default_pids_max 0 is outside 1..=4194304; give a count in that range \
             or leave the flag out for no limit"
        );
        // compute refuses bad settings too.
        assert!(ContainerLimits::compute(&[], &BTreeMap::new(), &s).is_err());
    }

    #[test]
    fn nothing_asked_nothing_written() {
        let l = compute(&[scalar("disk", 100.0)], &[]);
        assert_eq!(l, ContainerLimits::default());
        assert!(l.writes(&Controllers::all()).is_empty());
        assert!(l.needed().is_empty());
        assert!(l.unenforced(&Controllers::default(), &[]).is_empty());
    }

    // ---- cpu ----

    #[test]
    fn cpu_weight_from_request() {
        let l = compute(&[scalar("cpus", 0.5)], &[]);
        assert_eq!(
            l.cpu,
            Some(CpuLimits {
                request: 0.5,
                weight: 50,
                max: CpuMax::Unlimited
            })
        );
        assert_eq!(
            files(&l),
            pairs(&[("cpu.weight", "50"), ("cpu.max", "max 100000")])
        );
        assert_eq!(
            l.scope_properties(&Controllers::all()),
            vec![("CPUWeight".to_string(), 50)]
        );
        assert!(l.scope_properties(&Controllers::default()).is_empty());
        // Requests are summed by name.
        let l = compute(&[scalar("cpus", 0.25), scalar("cpus", 1.0)], &[]);
        assert_eq!(l.cpu.map(|c| c.weight), Some(125));
        // Rounded to the nearest weight.
        let l = compute(&[scalar("cpus", 0.125)], &[]);
        assert_eq!(l.cpu.map(|c| c.weight), Some(13));
    }

    #[test]
    fn cpu_weight_clamps() {
        let weight = |cpus: f64| compute(&[scalar("cpus", cpus)], &[]).cpu.map(|c| c.weight);
        assert_eq!(weight(0.0), Some(1));
        assert_eq!(weight(0.004), Some(1));
        assert_eq!(weight(0.01), Some(1));
        assert_eq!(weight(0.02), Some(2));
        assert_eq!(weight(100.0), Some(10_000));
        assert_eq!(weight(128.0), Some(10_000));
    }

    #[test]
    fn cpu_limit_sets_quota() {
        let l = compute(&[scalar("cpus", 0.5)], &[("cpus", 1.5)]);
        assert_eq!(
            l.cpu,
            Some(CpuLimits {
                request: 0.5,
                weight: 50,
                max: CpuMax::Quota {
                    quota_us: 150_000,
                    period_us: 100_000
                }
            })
        );
        assert_eq!(
            files(&l),
            pairs(&[("cpu.weight", "50"), ("cpu.max", "150000 100000")])
        );
    }

    #[test]
    fn cpu_quota_minimum() {
        let l = compute(&[scalar("cpus", 0.001)], &[("cpus", 0.001)]);
        assert_eq!(
            l.cpu.map(|c| c.max),
            Some(CpuMax::Quota {
                quota_us: 1_000,
                period_us: 100_000
            })
        );
        let l = compute(&[], &[("cpus", 0.011)]);
        assert_eq!(
            l.cpu.map(|c| c.max),
            Some(CpuMax::Quota {
                quota_us: 1_100,
                period_us: 100_000
            })
        );
    }

    #[test]
    fn cpu_infinite_limit_is_unlimited_even_with_cfs() {
        let s = Settings {
            enable_cfs: true,
            ..Settings::default()
        };
        let l = compute_with(&[scalar("cpus", 2.0)], &[("cpus", f64::INFINITY)], &s);
        assert_eq!(
            l.cpu,
            Some(CpuLimits {
                request: 2.0,
                weight: 200,
                max: CpuMax::Unlimited
            })
        );
        assert_eq!(
            files(&l),
            pairs(&[("cpu.weight", "200"), ("cpu.max", "max 100000")])
        );
    }

    #[test]
    fn cpu_enable_cfs_caps_at_request() {
        let on = Settings {
            enable_cfs: true,
            ..Settings::default()
        };
        let l = compute_with(&[scalar("cpus", 0.25)], &[], &on);
        assert_eq!(
            files(&l),
            pairs(&[("cpu.weight", "25"), ("cpu.max", "25000 100000")])
        );
        // Off: the request is only a weight.
        let l = compute(&[scalar("cpus", 0.25)], &[]);
        assert_eq!(l.cpu.map(|c| c.max), Some(CpuMax::Unlimited));
        // On, but a zero request has nothing to cap at.
        let l = compute_with(&[scalar("cpus", 0.0)], &[], &on);
        assert_eq!(l.cpu.map(|c| c.max), Some(CpuMax::Unlimited));
        // On, and an explicit limit wins over the request.
        let l = compute_with(&[scalar("cpus", 0.25)], &[("cpus", 1.0)], &on);
        assert_eq!(
            l.cpu.map(|c| c.max),
            Some(CpuMax::Quota {
                quota_us: 100_000,
                period_us: 100_000
            })
        );
    }

    #[test]
    fn cpu_limit_without_request() {
        let l = compute(&[], &[("cpus", 2.0)]);
        assert_eq!(
            l.cpu,
            Some(CpuLimits {
                request: 0.0,
                weight: 1,
                max: CpuMax::Quota {
                    quota_us: 200_000,
                    period_us: 100_000
                }
            })
        );
    }

    #[test]
    fn cpu_errors() {
        let s = Settings::default();
        assert_eq!(
            error(&[scalar("cpus", 1.0)], &[("cpus", 0.5)], &s),
            "limit 0.5 for cpus is below the request 1; a limit must be at least the request"
        );
        assert_eq!(
            error(&[scalar("cpus", -1.0)], &[], &s),
            "resource 'cpus' has value -1; a request must be a finite number of at least 0"
        );
        assert_eq!(
            error(&[scalar("cpus", f64::NAN)], &[], &s),
            "resource 'cpus' has value NaN; a request must be a finite number of at least 0"
        );
        assert_eq!(
            error(&[scalar("cpus", f64::INFINITY)], &[], &s),
            "resource 'cpus' has value Infinity; a request must be a finite number of at \
             least 0"
        );
        // A negative part is refused even when the sum would be positive.
        assert!(ContainerLimits::compute(
            &[scalar("cpus", 2.0), scalar("cpus", -1.0)],
            &BTreeMap::new(),
            &s
        )
        .is_err());
        assert_eq!(
            error(&[], &[("cpus", 0.0)], &s),
            "limit 0 for cpus is not allowed; a limit must be above 0 (Infinity for unlimited)"
        );
        assert!(error(&[], &[("cpus", -2.0)], &s).starts_with("limit -2 for cpus"));
        assert!(error(&[], &[("cpus", f64::NAN)], &s).starts_with("limit NaN for cpus"));
        assert_eq!(
            error(&[], &[("cpus", 1e9)], &s),
            "cpus limit 1000000000 is more than the kernel can enforce (at most 175921860 \
             cpus); ask for less, or use an Infinity limit for no cap"
        );
    }

    #[test]
    fn wrong_resource_type_is_rejected() {
        let mut r = ranges("cpus", &[(0, 1)]);
        let e = error(&[r.clone()], &[], &Settings::default());
        assert!(e.starts_with("resource 'cpus' must be a SCALAR"), "{e}");
        r.name = "mem".into();
        assert!(error(&[r], &[], &Settings::default()).starts_with("resource 'mem' must"));
        let e = error(&[scalar("cpuset_cpus", 1.0)], &[], &Settings::default());
        assert!(
            e.starts_with("resource 'cpuset_cpus' must be RANGES"),
            "{e}"
        );
    }

    #[test]
    fn unknown_limit_key() {
        assert_eq!(
            error(&[], &[("disk", 10.0)], &Settings::default()),
            "unknown limit 'disk'; known limits are: cpus, mem, io_read_bps, io_write_bps, \
             io_read_iops, io_write_iops"
        );
    }

    // ---- memory ----

    #[test]
    fn memory_request_is_the_hard_limit() {
        let l = compute(&[scalar("mem", 64.0)], &[]);
        assert_eq!(
            l.memory,
            Some(MemoryLimits {
                request_bytes: 64 * MIB,
                max: Some(64 * MIB),
                low: 64 * MIB,
                high: None,
                swap_max: None
            })
        );
        assert_eq!(
            files(&l),
            pairs(&[
                ("memory.low", "67108864"),
                ("memory.high", "max"),
                ("memory.max", "67108864"),
                ("memory.oom.group", "1"),
            ])
        );
    }

    #[test]
    fn memory_bytes_round_down_to_a_page() {
        // 100.001 MiB = 104858649 bytes (floor) -> 104857600 + 1048 -> page 104857600.
        let l = compute(&[scalar("mem", 100.001)], &[]);
        let m = l.memory.expect("memory");
        assert_eq!(m.request_bytes, 100 * MIB);
        // 100.004 MiB = 104861794 bytes -> 104861696 (one extra page).
        let l = compute(&[scalar("mem", 100.004)], &[]);
        let m = l.memory.expect("memory");
        assert_eq!(m.request_bytes, 100 * MIB + 4096);
        assert_eq!(m.max, Some(100 * MIB + 4096));
    }

    #[test]
    fn memory_zero_request_is_not_asked() {
        let l = compute(&[scalar("mem", 0.0)], &[]);
        assert_eq!(l.memory, None);
        assert!(!l.needed().contains(Controller::Memory));
    }

    #[test]
    fn memory_high_between_request_and_limit() {
        // 64 MiB + floor(0.9 × 64 MiB) = 67108864 + 60397977, page-aligned down: 127504384.
        let l = compute(&[scalar("mem", 64.0)], &[("mem", 128.0)]);
        let expected_high = 64 * MIB + (60_397_977 / 4096) * 4096;
        assert_eq!(expected_high, 127_504_384);
        assert_eq!(
            l.memory,
            Some(MemoryLimits {
                request_bytes: 64 * MIB,
                max: Some(128 * MIB),
                low: 64 * MIB,
                high: Some(127_504_384),
                swap_max: None
            })
        );
        assert_eq!(
            files(&l),
            pairs(&[
                ("memory.low", "67108864"),
                ("memory.high", "127504384"),
                ("memory.max", "134217728"),
                ("memory.oom.group", "1"),
            ])
        );
    }

    #[test]
    fn memory_high_factor_zero_and_one() {
        let with = |factor: f64| Settings {
            memory_throttling_factor: factor,
            ..Settings::default()
        };
        // 0: memory.high would equal the request; no throttling is set (as Kubernetes).
        let l = compute_with(&[scalar("mem", 64.0)], &[("mem", 128.0)], &with(0.0));
        assert_eq!(l.memory.and_then(|m| m.high), None);
        // 1: memory.high would equal memory.max and add nothing.
        let l = compute_with(&[scalar("mem", 64.0)], &[("mem", 128.0)], &with(1.0));
        assert_eq!(l.memory.and_then(|m| m.high), None);
        // 0.5: exactly halfway.
        let l = compute_with(&[scalar("mem", 64.0)], &[("mem", 128.0)], &with(0.5));
        assert_eq!(l.memory.and_then(|m| m.high), Some(96 * MIB));
    }

    #[test]
    fn memory_limit_without_request() {
        let l = compute(&[], &[("mem", 100.0)]);
        assert_eq!(
            l.memory,
            Some(MemoryLimits {
                request_bytes: 0,
                max: Some(100 * MIB),
                low: 0,
                // floor(0.9 × 104857600) = 94371840, already page-aligned.
                high: Some(94_371_840),
                swap_max: None
            })
        );
        assert_eq!(
            files(&l),
            pairs(&[
                ("memory.low", "0"),
                ("memory.high", "94371840"),
                ("memory.max", "104857600"),
                ("memory.oom.group", "1"),
            ])
        );
    }

    #[test]
    fn memory_infinite_limit() {
        let l = compute(&[scalar("mem", 256.0)], &[("mem", f64::INFINITY)]);
        assert_eq!(
            l.memory,
            Some(MemoryLimits {
                request_bytes: 256 * MIB,
                max: None,
                low: 256 * MIB,
                high: None,
                swap_max: None
            })
        );
        assert_eq!(
            files(&l),
            pairs(&[
                ("memory.low", "268435456"),
                ("memory.high", "max"),
                ("memory.max", "max"),
                ("memory.oom.group", "1"),
            ])
        );
        // Unlimited and nothing requested still groups OOM kills.
        let l = compute(&[], &[("mem", f64::INFINITY)]);
        assert_eq!(
            files(&l),
            pairs(&[
                ("memory.low", "0"),
                ("memory.high", "max"),
                ("memory.max", "max"),
                ("memory.oom.group", "1"),
            ])
        );
    }

    #[test]
    fn memory_minimum_32_mib() {
        let l = compute(&[scalar("mem", 16.0)], &[]);
        assert_eq!(
            l.memory,
            Some(MemoryLimits {
                request_bytes: 16 * MIB,
                max: Some(32 * MIB),
                low: 32 * MIB,
                high: None,
                swap_max: None
            })
        );
        // Both below the minimum: both raised, no memory.high between equal values.
        let l = compute(&[scalar("mem", 8.0)], &[("mem", 16.0)]);
        let m = l.memory.expect("memory");
        assert_eq!((m.low, m.max, m.high), (32 * MIB, Some(32 * MIB), None));
        // A request under the minimum with a larger limit: memory.high counts from the
        // raised request. 32 MiB + floor(0.9 × 32 MiB) -> page-aligned.
        let l = compute(&[scalar("mem", 8.0)], &[("mem", 64.0)]);
        let m = l.memory.expect("memory");
        assert_eq!(m.low, 32 * MIB);
        assert_eq!(m.high, Some(32 * MIB + (30_198_988 / 4096) * 4096));
        assert_eq!(m.high, Some(63_750_144));
        // A limit alone under the minimum.
        let l = compute(&[], &[("mem", 1.0)]);
        let m = l.memory.expect("memory");
        assert_eq!((m.low, m.max), (0, Some(32 * MIB)));
    }

    #[test]
    fn memory_swap() {
        let on = Settings {
            limit_swap: true,
            ..Settings::default()
        };
        let l = compute_with(&[scalar("mem", 64.0)], &[], &on);
        assert_eq!(l.memory.and_then(|m| m.swap_max), Some(0));
        assert_eq!(
            files(&l),
            pairs(&[
                ("memory.low", "67108864"),
                ("memory.high", "max"),
                ("memory.max", "67108864"),
                ("memory.swap.max", "0"),
                ("memory.oom.group", "1"),
            ])
        );
        // Off: memory.swap.max is not written.
        let l = compute(&[scalar("mem", 64.0)], &[]);
        assert_eq!(l.memory.and_then(|m| m.swap_max), None);
        assert!(!files(&l).iter().any(|(f, _)| f == "memory.swap.max"));
        // On, but unlimited memory: nothing to count swap against.
        let l = compute_with(&[scalar("mem", 64.0)], &[("mem", f64::INFINITY)], &on);
        assert_eq!(l.memory.and_then(|m| m.swap_max), None);
    }

    #[test]
    fn memory_errors() {
        let s = Settings::default();
        assert_eq!(
            error(&[scalar("mem", 128.0)], &[("mem", 64.0)], &s),
            "limit 64 for mem is below the request 128; a limit must be at least the request"
        );
        assert_eq!(
            error(&[scalar("mem", -5.0)], &[], &s),
            "resource 'mem' has value -5; a request must be a finite number of at least 0"
        );
        assert!(error(&[scalar("mem", f64::INFINITY)], &[], &s).contains("value Infinity"));
        assert!(error(&[], &[("mem", f64::NAN)], &s).starts_with("limit NaN for mem"));
        assert!(error(&[], &[("mem", 0.0)], &s).starts_with("limit 0 for mem"));
        assert_eq!(
            error(&[scalar("mem", 1e20)], &[], &s),
            "mem request 100000000000000000000 MB is too large; ask for less, or use an \
             Infinity limit for no cap"
        );
    }

    // ---- pids ----

    #[test]
    fn pids_from_resource() {
        let l = compute(&[scalar("pids", 100.0)], &[]);
        assert_eq!(l.pids, Some(PidsLimits { max: Some(100) }));
        assert_eq!(files(&l), pairs(&[("pids.max", "100")]));
    }

    #[test]
    fn pids_default_flag() {
        let s = Settings {
            default_pids_max: Some(512),
            ..Settings::default()
        };
        let l = compute_with(&[], &[], &s);
        assert_eq!(files(&l), pairs(&[("pids.max", "512")]));
        // The resource wins over the default.
        let l = compute_with(&[scalar("pids", 64.0)], &[], &s);
        assert_eq!(files(&l), pairs(&[("pids.max", "64")]));
        // Neither: no pids limits.
        assert_eq!(compute(&[], &[]).pids, None);
        // An explicit "max" is written as such.
        let l = ContainerLimits {
            pids: Some(PidsLimits { max: None }),
            ..ContainerLimits::default()
        };
        assert_eq!(files(&l), pairs(&[("pids.max", "max")]));
    }

    #[test]
    fn pids_errors() {
        let s = Settings::default();
        assert_eq!(
            error(&[scalar("pids", 0.0)], &[], &s),
            "resource 'pids' 0 is not allowed; give a whole number from 1 to 4194304"
        );
        assert_eq!(
            error(&[scalar("pids", 2.5)], &[], &s),
            "resource 'pids' 2.5 is not allowed; give a whole number from 1 to 4194304"
        );
        assert!(error(&[scalar("pids", 5e6)], &[], &s).starts_with("resource 'pids' 5000000"));
    }

    // ---- io ----

    fn io_settings() -> Settings {
        Settings {
            io_devices: vec![(8, 0), (259, 1)],
            ..Settings::default()
        }
    }

    #[test]
    fn io_weight_only() {
        let l = compute(&[scalar("io_weight", 500.0)], &[]);
        assert_eq!(
            l.io,
            Some(IoLimits {
                weight: Some(500),
                max: vec![]
            })
        );
        assert_eq!(files(&l), pairs(&[("io.weight", "default 500")]));
    }

    #[test]
    fn io_max_all_keys_per_device() {
        let l = compute_with(
            &[scalar("io_weight", 100.0)],
            &[
                ("io_read_bps", 1_048_576.0),
                ("io_write_bps", 2_097_152.0),
                ("io_read_iops", 1000.0),
                ("io_write_iops", 500.0),
            ],
            &io_settings(),
        );
        assert_eq!(
            files(&l),
            pairs(&[
                ("io.weight", "default 100"),
                (
                    "io.max",
                    "8:0 rbps=1048576 wbps=2097152 riops=1000 wiops=500"
                ),
                (
                    "io.max",
                    "259:1 rbps=1048576 wbps=2097152 riops=1000 wiops=500"
                ),
            ])
        );
    }

    #[test]
    fn io_max_subsets_of_keys() {
        let l = compute_with(&[], &[("io_write_bps", 4096.0)], &io_settings());
        assert_eq!(
            l.io,
            Some(IoLimits {
                weight: None,
                max: vec![
                    IoMax {
                        major: 8,
                        minor: 0,
                        rbps: None,
                        wbps: Some(4096),
                        riops: None,
                        wiops: None
                    },
                    IoMax {
                        major: 259,
                        minor: 1,
                        rbps: None,
                        wbps: Some(4096),
                        riops: None,
                        wiops: None
                    }
                ]
            })
        );
        assert_eq!(
            files(&l),
            pairs(&[("io.max", "8:0 wbps=4096"), ("io.max", "259:1 wbps=4096")])
        );
        let one_device = Settings {
            io_devices: vec![(8, 16), (8, 16)],
            ..Settings::default()
        };
        let l = compute_with(
            &[],
            &[("io_read_iops", 50.0), ("io_write_iops", 60.0)],
            &one_device,
        );
        // Duplicate devices give one line.
        assert_eq!(files(&l), pairs(&[("io.max", "8:16 riops=50 wiops=60")]));
        let l = compute_with(&[], &[("io_read_bps", 1.0)], &one_device);
        assert_eq!(files(&l), pairs(&[("io.max", "8:16 rbps=1")]));
    }

    #[test]
    fn io_limits_need_devices() {
        assert_eq!(
            error(&[], &[("io_read_bps", 1000.0)], &Settings::default()),
            "io limits (io_read_bps, io_write_bps, io_read_iops, io_write_iops) apply per block \
             device and this agent names none; set --cgroups_io_devices (e.g. 8:0) or launch \
             without io limits"
        );
        // A weight alone needs no device list.
        assert!(ContainerLimits::compute(
            &[scalar("io_weight", 10.0)],
            &BTreeMap::new(),
            &Settings::default()
        )
        .is_ok());
    }

    #[test]
    fn io_errors() {
        let s = io_settings();
        assert_eq!(
            error(&[scalar("io_weight", 0.0)], &[], &s),
            "resource 'io_weight' 0 is not allowed; give a whole number from 1 to 10000"
        );
        assert!(error(&[scalar("io_weight", 10_001.0)], &[], &s).contains("from 1 to 10000"));
        assert!(error(&[scalar("io_weight", 1.5)], &[], &s).contains("whole number"));
        assert_eq!(
            error(&[], &[("io_read_bps", 0.0)], &s),
            "limit 0 for io_read_bps is not allowed; give a whole number of at least 1, or \
             leave io_read_bps out for no limit"
        );
        for bad in [f64::INFINITY, f64::NAN, -1.0, 2.5, 1e20] {
            assert!(
                error(&[], &[("io_write_iops", bad)], &s).contains("for io_write_iops"),
                "{bad}"
            );
        }
    }

    // ---- cpuset ----

    #[test]
    fn cpuset_lists_merge_and_sort() {
        assert_eq!(format_id_list(&[(0, 1), (3, 3)]), "0-1,3");
        assert_eq!(format_id_list(&[(3, 3), (0, 1)]), "0-1,3");
        // Adjacent ranges merge.
        assert_eq!(format_id_list(&[(0, 1), (2, 3)]), "0-3");
        // Overlapping and contained ranges merge.
        assert_eq!(format_id_list(&[(4, 8), (0, 5), (6, 7)]), "0-8");
        assert_eq!(format_id_list(&[(5, 5), (5, 5)]), "5");
        assert_eq!(format_id_list(&[(0, 0), (2, 2), (4, 6)]), "0,2,4-6");
        assert_eq!(
            format_id_list(&[(u64::MAX, u64::MAX), (0, 0)]),
            "0,18446744073709551615"
        );
    }

    #[test]
    fn cpuset_writes() {
        let l = compute(
            &[
                ranges("cpuset_cpus", &[(2, 3), (0, 1)]),
                ranges("cpuset_cpus", &[(6, 6)]),
                ranges("cpuset_mems", &[(0, 0)]),
            ],
            &[],
        );
        assert_eq!(
            l.cpuset,
            Some(CpusetLimits {
                cpus: Some("0-3,6".into()),
                mems: Some("0".into())
            })
        );
        assert_eq!(
            files(&l),
            pairs(&[("cpuset.cpus", "0-3,6"), ("cpuset.mems", "0")])
        );
        let l = compute(&[ranges("cpuset_mems", &[(1, 1)])], &[]);
        assert_eq!(files(&l), pairs(&[("cpuset.mems", "1")]));
    }

    #[test]
    fn cpuset_errors() {
        let s = Settings::default();
        assert_eq!(
            error(&[ranges("cpuset_cpus", &[(3, 1)])], &[], &s),
            "resource 'cpuset_cpus' has range [3-1] whose begin is above its end; write each \
             range as begin <= end"
        );
        assert_eq!(
            error(&[ranges("cpuset_mems", &[])], &[], &s),
            "resource 'cpuset_mems' has no ranges; give at least one range of ids or leave \
             'cpuset_mems' out"
        );
    }

    // ---- hugetlb ----

    #[test]
    fn hugetlb_writes() {
        let l = compute(
            &[
                scalar("hugepages_2MB", 4.0),
                scalar("hugepages_1GB", 2048.0),
            ],
            &[],
        );
        assert_eq!(
            l.hugetlb,
            vec![
                HugetlbLimit {
                    page_size: "2MB".into(),
                    bytes: 4 * MIB
                },
                HugetlbLimit {
                    page_size: "1GB".into(),
                    bytes: 2 * GIB
                }
            ]
        );
        assert_eq!(
            files(&l),
            pairs(&[
                ("hugetlb.2MB.max", "4194304"),
                ("hugetlb.1GB.max", "2147483648")
            ])
        );
        // 0 forbids huge pages of that size.
        let l = compute(&[scalar("hugepages_2MB", 0.0)], &[]);
        assert_eq!(files(&l), pairs(&[("hugetlb.2MB.max", "0")]));
    }

    #[test]
    fn hugetlb_must_be_whole_pages() {
        let s = Settings::default();
        assert_eq!(
            error(&[scalar("hugepages_2MB", 3.0)], &[], &s),
            "resource 'hugepages_2MB' is 3 MB; give a whole multiple of the 2 MB page size"
        );
        assert!(error(&[scalar("hugepages_2MB", 2.5)], &[], &s).contains("is 2.5 MB"));
        assert_eq!(
            error(&[scalar("hugepages_1GB", 512.0)], &[], &s),
            "resource 'hugepages_1GB' is 512 MB; give a whole multiple of the 1024 MB page size"
        );
        assert!(error(&[scalar("hugepages_1GB", 1e30)], &[], &s).contains("1GB"));
    }

    // ---- writes, needed, unenforced ----

    fn everything() -> ContainerLimits {
        let s = Settings {
            io_devices: vec![(8, 0)],
            ..Settings::default()
        };
        compute_with(
            &[
                scalar("cpus", 0.5),
                scalar("mem", 64.0),
                scalar("pids", 10.0),
                scalar("io_weight", 200.0),
                ranges("cpuset_cpus", &[(0, 1)]),
                scalar("hugepages_2MB", 2.0),
            ],
            &[("cpus", 1.0), ("io_read_bps", 100.0)],
            &s,
        )
    }

    #[test]
    fn writes_follow_controller_order() {
        assert_eq!(
            files(&everything()),
            pairs(&[
                ("cpu.weight", "50"),
                ("cpu.max", "100000 100000"),
                ("memory.low", "67108864"),
                ("memory.high", "max"),
                ("memory.max", "67108864"),
                ("memory.oom.group", "1"),
                ("pids.max", "10"),
                ("io.weight", "default 200"),
                ("io.max", "8:0 rbps=100"),
                ("cpuset.cpus", "0-1"),
                ("hugetlb.2MB.max", "2097152"),
            ])
        );
    }

    #[test]
    fn writes_only_for_enabled_controllers() {
        let l = everything();
        let enabled: Controllers = [Controller::Memory, Controller::Pids].into_iter().collect();
        let writes = l.writes(&enabled);
        assert_eq!(
            writes,
            vec![
                FileWrite {
                    controller: Controller::Memory,
                    file: "memory.low".into(),
                    value: "67108864".into()
                },
                FileWrite {
                    controller: Controller::Memory,
                    file: "memory.high".into(),
                    value: "max".into()
                },
                FileWrite {
                    controller: Controller::Memory,
                    file: "memory.max".into(),
                    value: "67108864".into()
                },
                FileWrite {
                    controller: Controller::Memory,
                    file: "memory.oom.group".into(),
                    value: "1".into()
                },
                FileWrite {
                    controller: Controller::Pids,
                    file: "pids.max".into(),
                    value: "10".into()
                },
            ]
        );
        assert!(l.writes(&Controllers::default()).is_empty());
    }

    #[test]
    fn needed_controllers() {
        assert_eq!(
            everything().needed().cgroup_names(),
            ["cpu", "memory", "pids", "io", "cpuset", "hugetlb"]
        );
        let l = compute(&[scalar("mem", 64.0)], &[]);
        assert_eq!(l.needed().cgroup_names(), ["memory"]);
    }

    #[test]
    fn unenforced_when_controller_missing_from_host() {
        let l = everything();
        let available = names(&["cpu", "io", "pids"]);
        assert_eq!(
            l.unenforced(&Controllers::all(), &available),
            [
                "memory limit 64 MiB: the memory controller is not available on this host",
                "cpuset cpus 0-1: the cpuset controller is not available on this host",
                "hugetlb 2MB limit 2 MiB: the hugetlb controller is not available on this host",
            ]
        );
    }

    #[test]
    fn unenforced_when_not_in_isolation() {
        let l = everything();
        let available = names(&["cpu", "memory", "pids", "io", "cpuset", "hugetlb"]);
        assert_eq!(
            l.unenforced(&Controllers::default_isolation(), &available),
            [
                "cpuset cpus 0-1: cgroups/cpuset is not in --isolation",
                "hugetlb 2MB limit 2 MiB: cgroups/hugetlb is not in --isolation",
            ]
        );
        // Not in --isolation wins over missing from the host.
        assert_eq!(
            l.unenforced(&Controllers::default(), &[]),
            [
                "cpu limit 1: cgroups/cpu is not in --isolation",
                "memory limit 64 MiB: cgroups/mem is not in --isolation",
                "pids limit 10: cgroups/pids is not in --isolation",
                "io weight 200: cgroups/io is not in --isolation",
                "io limit 8:0 rbps=100: cgroups/io is not in --isolation",
                "cpuset cpus 0-1: cgroups/cpuset is not in --isolation",
                "hugetlb 2MB limit 2 MiB: cgroups/hugetlb is not in --isolation",
            ]
        );
        assert!(l.unenforced(&Controllers::all(), &available).is_empty());
    }

    #[test]
    fn unenforced_descriptions_of_other_shapes() {
        let none = Controllers::default();
        let l = compute(&[scalar("cpus", 0.5)], &[]);
        assert_eq!(
            l.unenforced(&none, &[]),
            ["cpu request 0.5: cgroups/cpu is not in --isolation"]
        );
        let l = compute(&[scalar("mem", 64.0)], &[("mem", f64::INFINITY)]);
        assert_eq!(
            l.unenforced(&none, &[]),
            ["memory request 64 MiB: cgroups/mem is not in --isolation"]
        );
        let l = compute(&[], &[("mem", f64::INFINITY)]);
        assert_eq!(
            l.unenforced(&none, &[]),
            ["whole-container OOM kill (memory.oom.group): cgroups/mem is not in --isolation"]
        );
        let l = compute(&[ranges("cpuset_mems", &[(0, 1)])], &[]);
        assert_eq!(
            l.unenforced(&Controllers::all(), &[]),
            ["cpuset mems 0-1: the cpuset controller is not available on this host"]
        );
        // An explicit pids "max" limits nothing, so nothing is lost.
        let l = ContainerLimits {
            pids: Some(PidsLimits { max: None }),
            ..ContainerLimits::default()
        };
        assert!(l.unenforced(&none, &[]).is_empty());
    }

    #[test]
    fn cpu_max_helpers() {
        assert_eq!(CpuMax::Unlimited.cpus(), None);
        assert_eq!(CpuMax::Unlimited.file_value(), "max 100000");
        let q = CpuMax::Quota {
            quota_us: 50_000,
            period_us: 100_000,
        };
        assert_eq!(q.cpus(), Some(0.5));
        assert_eq!(q.file_value(), "50000 100000");
    }
}
