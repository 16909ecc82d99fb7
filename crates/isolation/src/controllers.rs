//! The cgroup2 controllers Holdfast drives and the `--isolation` flag that picks them.

use std::collections::BTreeSet;

/// A cgroup2 controller that enforces one kind of limit.
///
/// The declaration order is the order writes are issued and names are listed in, so
/// output is stable across runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Controller {
    /// `cpu`: `cpu.weight`, `cpu.max`.
    Cpu,
    /// `memory`: `memory.low`, `memory.high`, `memory.max`, `memory.swap.max`, `memory.oom.group`.
    Memory,
    /// `pids`: `pids.max`.
    Pids,
    /// `io`: `io.weight`, `io.max`.
    Io,
    /// `cpuset`: `cpuset.cpus`, `cpuset.mems`.
    Cpuset,
    /// `hugetlb`: `hugetlb.<size>.max`.
    Hugetlb,
}

impl Controller {
    /// Every controller, in declaration order.
    pub const ALL: [Controller; 6] = [
        Controller::Cpu,
        Controller::Memory,
        Controller::Pids,
        Controller::Io,
        Controller::Cpuset,
        Controller::Hugetlb,
    ];

    /// The cgroup2 controller name: "cpu", "memory", "pids", "io", "cpuset", "hugetlb".
    pub fn cgroup_name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Io => "io",
            Controller::Cpuset => "cpuset",
            Controller::Hugetlb => "hugetlb",
        }
    }

    /// The `--isolation` name: "cgroups/cpu", "cgroups/mem", "cgroups/pids", "cgroups/io",
    /// "cgroups/cpuset", "cgroups/hugetlb". Memory is "mem" because that is Mesos's name.
    pub fn isolation_name(self) -> &'static str {
        match self {
            Controller::Cpu => "cgroups/cpu",
            Controller::Memory => "cgroups/mem",
            Controller::Pids => "cgroups/pids",
            Controller::Io => "cgroups/io",
            Controller::Cpuset => "cgroups/cpuset",
            Controller::Hugetlb => "cgroups/hugetlb",
        }
    }
}

/// A set of controllers, iterated in [`Controller`] declaration order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Controllers(BTreeSet<Controller>);

impl Controllers {
    /// Whether `c` is in the set.
    pub fn contains(&self, c: Controller) -> bool {
        self.0.contains(&c)
    }

    /// The controllers in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = Controller> + '_ {
        self.0.iter().copied()
    }

    /// Adds `c`; adding it twice is harmless.
    pub fn insert(&mut self, c: Controller) {
        self.0.insert(c);
    }

    /// Whether the set has no controller (no limits are enforced).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of controllers in the set.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// cgroup2 names in declaration order, e.g. for `cgroup.subtree_control`:
    /// `["cpu", "memory", ...]`.
    pub fn cgroup_names(&self) -> Vec<&'static str> {
        self.iter().map(Controller::cgroup_name).collect()
    }

    /// The default of `--isolation`: `cgroups/cpu,cgroups/mem,cgroups/pids,cgroups/io`.
    ///
    /// cpuset and hugetlb stay off by default because they need host-specific setup
    /// (CPU and NUMA layout, reserved huge pages) to be meaningful.
    pub fn default_isolation() -> Controllers {
        [
            Controller::Cpu,
            Controller::Memory,
            Controller::Pids,
            Controller::Io,
        ]
        .into_iter()
        .collect()
    }

    /// All six controllers (`cgroups/all`).
    pub fn all() -> Controllers {
        Controller::ALL.into_iter().collect()
    }
}

impl FromIterator<Controller> for Controllers {
    fn from_iter<I: IntoIterator<Item = Controller>>(iter: I) -> Self {
        Controllers(iter.into_iter().collect())
    }
}

/// Names that Mesos agents commonly run with and that mean nothing extra here: usage is
/// always reported and the sandbox is always a plain directory. Accepting them lets an
/// existing Mesos `--isolation` value work unchanged.
const NO_OP_NAMES: [&str; 3] = ["posix/cpu", "posix/mem", "filesystem/posix"];

/// Mesos's cgroup v1 name for the io controller.
const BLKIO_ALIAS: &str = "cgroups/blkio";

const ALL_NAME: &str = "cgroups/all";

/// Parses the Mesos-style `--isolation` flag.
///
/// Entries are comma-separated; whitespace around them and empty entries are ignored (as
/// Mesos tokenizes the flag) and duplicates are fine. Known names: the six
/// [`Controller::isolation_name`]s, `cgroups/blkio` (alias of `cgroups/io`), `cgroups/all`
/// (all six), and the no-op `posix/cpu`, `posix/mem`, `filesystem/posix`. An empty flag
/// yields an empty set: no limits are enforced.
pub fn parse_isolation(flag: &str) -> Result<Controllers, String> {
    let mut set = Controllers::default();
    for entry in flag.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if let Some(c) = Controller::ALL
            .into_iter()
            .find(|c| c.isolation_name() == entry)
        {
            set.insert(c);
        } else if entry == BLKIO_ALIAS {
            set.insert(Controller::Io);
        } else if entry == ALL_NAME {
            set.0.extend(Controller::ALL);
        } else if !NO_OP_NAMES.contains(&entry) {
            return Err(format!(
                "unknown --isolation entry '{}'; Holdfast knows: {}",
                entry.escape_default(),
                known_names().join(", ")
            ));
        }
    }
    Ok(set)
}

fn known_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Controller::ALL
        .into_iter()
        .map(Controller::isolation_name)
        .collect();
    names.push(BLKIO_ALIAS);
    names.push(ALL_NAME);
    names.extend(NO_OP_NAMES);
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let cgroup: Vec<_> = Controller::ALL
            .into_iter()
            .map(Controller::cgroup_name)
            .collect();
        assert_eq!(cgroup, ["cpu", "memory", "pids", "io", "cpuset", "hugetlb"]);
        let isolation: Vec<_> = Controller::ALL
            .into_iter()
            .map(Controller::isolation_name)
            .collect();
        assert_eq!(
            isolation,
            [
                "cgroups/cpu",
                "cgroups/mem",
                "cgroups/pids",
                "cgroups/io",
                "cgroups/cpuset",
                "cgroups/hugetlb"
            ]
        );
    }

    #[test]
    fn set_is_ordered_and_deduplicated() {
        let mut set = Controllers::default();
        assert!(set.is_empty());
        set.insert(Controller::Io);
        set.insert(Controller::Cpu);
        set.insert(Controller::Io);
        assert_eq!(set.len(), 2);
        assert!(set.contains(Controller::Cpu));
        assert!(!set.contains(Controller::Memory));
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [Controller::Cpu, Controller::Io]
        );
        assert_eq!(set.cgroup_names(), ["cpu", "io"]);
    }

    #[test]
    fn default_isolation() {
        assert_eq!(
            Controllers::default_isolation().cgroup_names(),
            ["cpu", "memory", "pids", "io"]
        );
        // The flag's default text parses to the same set.
        assert_eq!(
            parse_isolation("cgroups/cpu,cgroups/mem,cgroups/pids,cgroups/io"),
            Ok(Controllers::default_isolation())
        );
    }

    #[test]
    fn parse_each_name() {
        for c in Controller::ALL {
            let set = parse_isolation(c.isolation_name()).expect("known name");
            assert_eq!(set.iter().collect::<Vec<_>>(), [c]);
        }
    }

    #[test]
    fn parse_whitespace_duplicates_and_empty_entries() {
        let set = parse_isolation(" cgroups/mem , cgroups/cpu,cgroups/mem,, ").expect("parse");
        assert_eq!(set.cgroup_names(), ["cpu", "memory"]);
    }

    #[test]
    fn parse_empty_is_no_limits() {
        assert_eq!(parse_isolation(""), Ok(Controllers::default()));
        assert_eq!(parse_isolation("  "), Ok(Controllers::default()));
    }

    #[test]
    fn parse_aliases() {
        assert_eq!(
            parse_isolation("cgroups/blkio")
                .expect("alias")
                .cgroup_names(),
            ["io"]
        );
        assert_eq!(parse_isolation("cgroups/all"), Ok(Controllers::all()));
        assert_eq!(
            parse_isolation("cgroups/all").expect("all").cgroup_names(),
            ["cpu", "memory", "pids", "io", "cpuset", "hugetlb"]
        );
        // Mesos's own default means nothing extra.
        assert_eq!(
            parse_isolation("posix/cpu,posix/mem,filesystem/posix"),
            Ok(Controllers::default())
        );
        assert_eq!(
            parse_isolation("posix/cpu,cgroups/pids")
                .expect("mixed")
                .cgroup_names(),
            ["pids"]
        );
    }

    #[test]
    fn parse_rejects_unknown_names() {
        let err = parse_isolation("cgroups/cpu,network/cni").expect_err("unknown");
        assert_eq!(
            err,
            "unknown --isolation entry 'network/cni'; Holdfast knows: cgroups/cpu, cgroups/mem, \
             cgroups/pids, cgroups/io, cgroups/cpuset, cgroups/hugetlb, cgroups/blkio, \
             cgroups/all, posix/cpu, posix/mem, filesystem/posix"
        );
        // cgroup2 names are not --isolation names.
        assert!(parse_isolation("memory").is_err());
        assert!(parse_isolation("cgroups/memory").is_err());
        // Case matters, as in Mesos.
        assert!(parse_isolation("CGROUPS/CPU").is_err());
    }
}
