//! The checkpointed records. Each is versioned from its first release; a reader refuses a
//! version it does not know rather than guessing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use holdfast_api::v1::{CommandInfo, ContainerId, ContainerInfo, Resource, Scalar};
use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 1;

/// What the agent accepted to launch, written before anything is started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub version: u32,
    pub container_id: ContainerId,
    #[serde(default)]
    pub command: Option<CommandInfo>,
    #[serde(default)]
    pub resources: Vec<Resource>,
    #[serde(default)]
    pub container: Option<ContainerInfo>,
    /// LAUNCH_CONTAINER's `limits` (absent in records written before limits existed).
    #[serde(default)]
    pub limits: BTreeMap<String, Scalar>,
    pub sandbox: PathBuf,
    /// Seconds since the epoch.
    pub launched_at: f64,
    /// The container's cgroup (its limits), relative to the cgroup2 mount, as launched.
    /// Absent in records written before it was recorded: then the `--cgroups_root` layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<PathBuf>,
    /// The systemd scope holding a top-level container, when it was launched as one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// Who runs the container: the supervisor and the workload it started, each with the
/// start time that makes its pid unambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorRecord {
    pub version: u32,
    pub pid: i32,
    pub start_time: u64,
    pub workload_pid: i32,
    pub workload_start_time: u64,
}

/// The supervisor's record of how the workload ended (in the runtime dir).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub version: u32,
    /// Raw wait(2) status.
    pub wait_status: i32,
    pub exited_at: f64,
    /// The container's memory accounting when the OOM killer had struck it, read before
    /// the last process left: under systemd the scope and its cgroups vanish with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom: Option<OomEvidence>,
}

/// What the container's cgroup said after an OOM kill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OomEvidence {
    /// `oom_kill` of `memory.events`.
    pub kills: u64,
    /// `memory.max` (`None` for "max").
    #[serde(default)]
    pub max: Option<u64>,
    #[serde(default)]
    pub peak: Option<u64>,
    #[serde(default)]
    pub stat: BTreeMap<String, u64>,
}

/// How a container ended, as the agent last learned it. Kept until REMOVE_CONTAINER so
/// that no exit status is lost, not even across a reboot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TerminationRecord {
    pub version: u32,
    /// Raw wait(2) status; absent when it could not be known (the host rebooted, the
    /// supervisor was killed from outside).
    #[serde(default)]
    pub wait_status: Option<i32>,
    pub finished_at: f64,
    #[serde(default)]
    pub message: Option<String>,
    /// Mesos `TaskStatus.Reason` name when a limit ended the container, e.g.
    /// `REASON_CONTAINER_LIMITATION_MEMORY`.
    #[serde(default)]
    pub reason: Option<String>,
    /// The limited resources, for WAIT_CONTAINER's `limitation`.
    #[serde(default)]
    pub limitation: Vec<Resource>,
}

/// Seconds since the epoch, as Mesos's float timestamps.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
