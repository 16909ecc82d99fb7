//! What the agent tells a supervisor to run. Serialized as `spec.json`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub const SPEC_VERSION: u32 = 2;

/// The fd on which the supervisor reports that the workload started (or why not).
pub const READY_FD: i32 = 3;

/// When open, the supervisor waits for one byte on it before it starts the workload, and
/// exits without starting it if the pipe closes first: the agent first moves it into the
/// container's systemd scope and cgroups.
pub const GO_FD: i32 = 4;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupervisorSpec {
    pub version: u32,
    /// For logs and the process title only.
    pub container_id: String,
    /// The cgroup2 directory the supervisor and workload live in.
    pub leaf_cgroup: PathBuf,
    /// Working directory; `stdout` and `stderr` are created here.
    pub sandbox: PathBuf,
    /// Program to execute: a path, or a name looked up in the workload's `PATH`.
    pub program: String,
    /// Full argv, including argv[0].
    pub argv: Vec<String>,
    /// The workload's complete environment.
    pub env: Vec<(String, String)>,
    /// Run as this user, resolved by the agent; `None` keeps the agent's.
    pub user: Option<UserSpec>,
    pub rlimits: Vec<RlimitSpec>,
    /// Between SIGTERM and SIGKILL on a graceful stop.
    pub grace_period_secs: f64,
}

/// A user as ids, so that the supervisor needs no user database (NSS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSpec {
    /// As the launch named it; for messages.
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, the primary group included.
    pub groups: Vec<u32>,
}

/// One rlimit; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RlimitSpec {
    pub resource: i32,
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}
