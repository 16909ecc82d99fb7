//! `holdfast doctor`: what this host supports, and what Holdfast could not enforce here.

use std::process::ExitCode;

use clap::Args;
use holdfast_cgroups::{Hierarchy, Mode};

#[derive(Debug, Clone, Args)]
pub struct DoctorFlags {
    /// The cgroup2 mount to inspect; detected when absent.
    #[arg(long = "cgroups_hierarchy", env = "HOLDFAST_CGROUPS_HIERARCHY")]
    pub cgroups_hierarchy: Option<std::path::PathBuf>,
}

/// Controllers Holdfast's isolators use, with what goes unenforced without them.
const CONTROLLERS: &[(&str, &str)] = &[
    (
        "cpu",
        "cgroups/cpu: cpu shares (cpu.weight) and quotas (cpu.max)",
    ),
    (
        "memory",
        "cgroups/mem: memory limits, OOM detection and memory statistics",
    ),
    ("pids", "cgroups/pids: process-count limits"),
    ("io", "cgroups/io: disk bandwidth limits and weights"),
    ("cpuset", "cgroups/cpuset: CPU and memory-node pinning"),
    ("hugetlb", "cgroups/hugetlb: huge page limits"),
];

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

pub fn run(flags: DoctorFlags) -> anyhow::Result<ExitCode> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let systemd = holdfast_systemd::detect::booted();
    println!("running as root:        {}", yes(root));
    println!("systemd as PID 1:       {}", yes(systemd));
    if systemd {
        // What containers as scopes need: systemd reachable over D-Bus.
        match holdfast_systemd::Connection::system().and_then(|mut c| c.version()) {
            Ok(v) => println!("systemd version:        {v} (containers become scopes)"),
            Err(e) => println!("systemd version:        unknown: cannot reach systemd over D-Bus ({e}); the agent will not start with --systemd_enable_support"),
        }
    }
    let hierarchy = match &flags.cgroups_hierarchy {
        Some(p) => Some(Hierarchy::at(p.clone())),
        None => Hierarchy::detect().ok(),
    };
    let Some(h) = hierarchy else {
        println!("cgroup2 mount:          none");
        println!("\nNot enforced: everything. Holdfast needs a cgroup2 hierarchy to track and kill containers.");
        return Ok(ExitCode::FAILURE);
    };
    let mode = match h.mode() {
        Mode::Unified => "unified (pure cgroup v2)",
        Mode::Hybrid => "hybrid (cgroup v1 controllers beside a cgroup2 mount)",
    };
    println!("cgroup2 mount:          {} ({mode})", h.mount().display());
    let available = h.root().controllers().unwrap_or_default();
    println!(
        "cgroup2 controllers:    {}",
        if available.is_empty() {
            "none".to_string()
        } else {
            available.join(" ")
        }
    );

    // Probe features on a cgroup of our own, removed at once.
    let probe = h.cgroup(format!("holdfast-doctor-{}", std::process::id()));
    let (kill, clone_into) = match probe.create() {
        Ok(()) => {
            let kill = probe.has_kill();
            let clone_into = probe
                .open_dir_fd()
                .map(|fd| {
                    use std::os::fd::AsFd;
                    holdfast_process::spawn::clone_into_cgroup_supported(fd.as_fd())
                })
                .unwrap_or(false);
            let _ = probe.destroy(std::time::Duration::from_secs(2));
            (Some(kill), Some(clone_into))
        }
        Err(e) => {
            println!("probe cgroup:           cannot create ({e})");
            (None, None)
        }
    };
    let show = |v: Option<bool>| v.map_or("unknown (needs a writable cgroup2)", yes);
    println!("cgroup.kill:            {}", show(kill));
    println!("CLONE_INTO_CGROUP:      {}", show(clone_into));

    let missing: Vec<&(&str, &str)> = CONTROLLERS
        .iter()
        .filter(|(c, _)| !available.iter().any(|a| a == c))
        .collect();
    if missing.is_empty() {
        println!("\nEvery isolator can be enforced on this host.");
    } else {
        println!(
            "\nNot enforced on this host (controller missing from {}):",
            h.mount().display()
        );
        for (c, what) in missing {
            println!("  - {what} [{c}]");
        }
    }
    if kill == Some(false) {
        println!("  - cgroup.kill is missing: containers are killed by freezing and signalling each process");
    }
    if !root {
        println!("  - not root: the agent cannot create cgroups or switch users");
    }
    if !holdfast_process::caps::has_capability(holdfast_process::caps::CAP_SYS_RESOURCE) {
        println!("  - no CAP_SYS_RESOURCE: supervisors cannot shield themselves from the OOM killer, so a container's OOM kill loses its exit status (the memory limitation is still reported)");
    }
    Ok(ExitCode::SUCCESS)
}
