//! The per-container supervisor: a small process, started by the agent straight into the
//! container's leaf cgroup, that is the parent of the container's workload.
//!
//! It exists so that the agent can die and come back without losing anything: the
//! supervisor reaps the workload and writes its wait status durably to the runtime dir,
//! whoever is (or is not) listening. It runs before any async runtime exists, is
//! single-threaded, and blocks on one signalfd.
//!
//! Protocol with the agent (all versioned, see [`spec`]):
//! 1. the agent writes `spec.json` into the container's runtime dir and starts
//!    `holdfast-supervisor <runtime dir>` with fd 3 the write end of a pipe;
//! 2. the supervisor starts the workload, writes `supervisor.json` (its own and the
//!    workload's pid and start time), then writes `ok` or `error: <reason>` to fd 3;
//! 3. when the workload ends it writes `exit.json`, kills what is left in its leaf cgroup
//!    and exits.
//!
//! SIGTERM to the supervisor asks for a graceful stop: SIGTERM to the workload's process
//! group, then SIGKILL after the spec's grace period.

pub mod run;
pub mod spec;

pub use spec::{RlimitSpec, SupervisorSpec, UserSpec, GO_FD, READY_FD, SPEC_VERSION};
