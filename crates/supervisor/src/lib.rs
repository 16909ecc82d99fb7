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

/// The OOM killer's traces in a container's cgroup (the one holding its limits), if it
/// struck. The supervisor reads them while it still keeps the cgroup populated (under
/// systemd the scope and its cgroups vanish with the last process); the agent reads them
/// the same way when no supervisor recorded them.
pub fn oom_evidence(
    cgroup_dir: &std::path::Path,
) -> Option<holdfast_checkpoint::records::OomEvidence> {
    let cgroup = holdfast_cgroups::Cgroup::new(cgroup_dir);
    let events = cgroup.memory_events().ok().flatten()?;
    let kills = events.get("oom_kill").copied().unwrap_or(0);
    if kills == 0 {
        return None;
    }
    Some(holdfast_checkpoint::records::OomEvidence {
        kills,
        max: cgroup
            .read("memory.max")
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok()),
        peak: cgroup.memory_peak().ok().flatten(),
        stat: cgroup.memory_stat().ok().flatten().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_evidence_only_after_an_oom_kill() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |f: &str, v: &str| std::fs::write(dir.path().join(f), v).expect("write");
        // No memory controller: nothing to say.
        assert_eq!(oom_evidence(dir.path()), None);
        write("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n");
        assert_eq!(oom_evidence(dir.path()), None);
        write("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n");
        write("memory.max", "67108864\n");
        write("memory.peak", "67100000\n");
        write("memory.stat", "anon 66000000\nfile 0\n");
        let e = oom_evidence(dir.path()).expect("evidence");
        assert_eq!(e.kills, 2);
        assert_eq!(e.max, Some(64 << 20));
        assert_eq!(e.peak, Some(67_100_000));
        assert_eq!(e.stat.get("anon"), Some(&66_000_000));
        write("memory.max", "max\n");
        assert_eq!(oom_evidence(dir.path()).expect("evidence").max, None);
    }
}
