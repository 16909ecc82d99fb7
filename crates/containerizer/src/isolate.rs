//! The Linux side of isolation: writing a container's limits into its cgroup, reading its
//! usage, and finding out whether the OOM killer ended it. What to write and how to read
//! the numbers is decided in `holdfast_isolation`; this module only moves bytes.

use holdfast_api::v1::Resource;
use holdfast_cgroups::{stats, Cgroup, Hierarchy};
use holdfast_checkpoint::records::OomEvidence;
use holdfast_checkpoint::ExitRecord;
use holdfast_isolation::{
    memory_limitation_message, memory_limitation_resources, CgroupUsage, ContainerLimits,
    Controllers,
};

use crate::ContainerError;

/// Why a container ended, when a limit ended it.
#[derive(Debug, Clone, PartialEq)]
pub struct Limitation {
    pub reason: &'static str,
    pub message: String,
    pub resources: Vec<Resource>,
}

pub const REASON_MEMORY: &str = "REASON_CONTAINER_LIMITATION_MEMORY";

/// Creates `relative` with the controllers `limits` needs (of those `isolation` enables)
/// delegated down to it, and writes the limits into it. Returns the cgroup and every
/// asked-for limit that is not enforced, in words.
pub fn create_limited(
    hierarchy: &Hierarchy,
    relative: &std::path::Path,
    limits: &ContainerLimits,
    isolation: &Controllers,
) -> Result<(Cgroup, Vec<String>), ContainerError> {
    create_limited_within(
        hierarchy,
        std::path::Path::new(""),
        relative,
        limits,
        isolation,
    )
}

/// [`create_limited`] inside a subtree delegated at `base` (a systemd scope): controllers
/// are enabled from `base` down, never above it.
pub fn create_limited_within(
    hierarchy: &Hierarchy,
    base: &std::path::Path,
    relative: &std::path::Path,
    limits: &ContainerLimits,
    isolation: &Controllers,
) -> Result<(Cgroup, Vec<String>), ContainerError> {
    let mut wanted = Controllers::default();
    for c in limits.needed().iter().filter(|c| isolation.contains(*c)) {
        wanted.insert(c);
    }
    let cgroup = hierarchy
        .create_path_within(base, relative, &wanted.cgroup_names())
        .map_err(|e| {
            ContainerError::internal(format!("cannot create cgroup {}", relative.display()), e)
        })?;
    let available = cgroup.controllers().unwrap_or_default();
    let unenforced = limits.unenforced(isolation, &available);
    let mut usable = Controllers::default();
    for c in isolation
        .iter()
        .filter(|c| available.iter().any(|a| a == c.cgroup_name()))
    {
        usable.insert(c);
    }
    for w in limits.writes(&usable) {
        cgroup.write(&w.file, &w.value).map_err(|e| {
            ContainerError::internal(
                format!(
                    "cannot set {} to '{}' in {}",
                    w.file,
                    w.value,
                    cgroup.path().display()
                ),
                e,
            )
        })?;
    }
    Ok((cgroup, unenforced))
}

/// What the container's cgroup says about its use of resources; missing files are `None`.
pub fn read_usage(cgroup: &Cgroup) -> CgroupUsage {
    let procs = cgroup.procs_recursive().ok();
    CgroupUsage {
        cpu: cgroup.cpu_stat().ok().flatten(),
        memory_current: cgroup.memory_current().ok().flatten(),
        memory_stat: cgroup.memory_stat().ok().flatten(),
        swap_current: cgroup
            .read("memory.swap.current")
            .ok()
            .and_then(|t| stats::parse_single_u64(&t, "memory.swap.current").ok()),
        processes: procs.as_ref().map(|p| p.len() as u32),
        threads: procs.map(|p| p.iter().map(|&pid| thread_count(pid)).sum()),
    }
}

fn thread_count(pid: i32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// `memory.max` now: `None` for "max" (or when it cannot be read).
pub fn memory_max(cgroup: &Cgroup) -> Option<u64> {
    cgroup
        .read("memory.max")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
}

/// Reads `memory.events` of a container's cgroup before it is destroyed: an `oom_kill`
/// there means the OOM killer ended it, which Mesos reports as a memory limitation.
pub fn memory_limitation(cgroup: &Cgroup) -> Option<Limitation> {
    holdfast_supervisor::oom_evidence(cgroup.path())
        .as_ref()
        .and_then(recorded_memory_limitation)
}

/// The same from what the supervisor recorded at exit, for when the cgroup is gone.
pub fn recorded_memory_limitation(oom: &OomEvidence) -> Option<Limitation> {
    if oom.kills == 0 {
        return None;
    }
    Some(Limitation {
        reason: REASON_MEMORY,
        message: memory_limitation_message(oom.max, oom.peak, Some(&oom.stat)),
        resources: memory_limitation_resources(oom.max),
    })
}

/// How the container ended as far as limits go: what the supervisor recorded in
/// `exit.json`, else what the cgroup still says.
pub fn limitation_at_exit(exit: Option<&ExitRecord>, cgroup: &Cgroup) -> Option<Limitation> {
    match exit.and_then(|e| e.oom.as_ref()) {
        Some(oom) => recorded_memory_limitation(oom),
        None => memory_limitation(cgroup),
    }
}
