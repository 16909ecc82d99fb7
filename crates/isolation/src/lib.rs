//! Resource arithmetic for cgroup v2 isolation, Mesos style.
//!
//! This crate decides *what* a container's cgroup should hold; it never touches a file
//! or makes a syscall. The Linux side (enabling controllers, writing interface files,
//! reading usage) lives in the containerizer's launcher. Keeping the decisions pure
//! makes every mapping testable without root or a cgroup2 mount, and keeps the launcher
//! a thin loop over [`FileWrite`]s.
//!
//! - [`controllers`]: the controllers Holdfast drives and the `--isolation` flag.
//! - [`limits`]: a launch's resources and limits plus agent flags to [`ContainerLimits`]
//!   and from there to interface-file writes, and which limits go unenforced.
//! - [`update`]: whether a live update may change `memory.max`.
//! - [`usage`]: cgroup usage to Mesos `ResourceStatistics`.
//! - [`oom`]: Mesos's OOM limitation message and resources.

pub mod controllers;
pub mod limits;
pub mod oom;
mod units;
pub mod update;
pub mod usage;

pub use controllers::{parse_isolation, Controller, Controllers};
pub use limits::{
    ContainerLimits, CpuLimits, CpuMax, CpusetLimits, FileWrite, HugetlbLimit, IoLimits, IoMax,
    LimitError, MemoryLimits, PidsLimits, Settings,
};
pub use oom::{memory_limitation_message, memory_limitation_resources};
pub use update::{decide_memory_max, MemoryMaxDecision};
pub use usage::{statistics, CgroupUsage};
