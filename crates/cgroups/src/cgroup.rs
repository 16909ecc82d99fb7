//! A handle on one cgroup directory and the operations on its interface files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::error::{means_gone, Error};
use crate::stats::{self, CpuStat, ParseError, Pressure, PressureResource};

/// How long `freeze()` waits for the kernel to report the cgroup frozen.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between `rmdir` attempts while killed processes are still exiting.
const REMOVE_RETRY_INTERVAL: Duration = Duration::from_millis(2);
/// How often `destroy()` repeats the kill while waiting, to catch processes that
/// slipped in after the first kill (possible only without `cgroup.kill`).
const REKILL_INTERVAL: Duration = Duration::from_millis(100);
/// Bound on signalling passes in the fallback kill, so a fork storm cannot keep it
/// looping forever when freezing is unavailable.
const MAX_SIGNAL_PASSES: usize = 16;

/// A cgroup2 directory, identified by its absolute path. Creating a handle touches
/// nothing; operations act on the directory's interface files.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cgroup {
    path: PathBuf,
}

enum Removal {
    Done,
    Busy,
}

impl Cgroup {
    /// A handle for the cgroup directory at the absolute `path`.
    pub fn new(path: impl Into<PathBuf>) -> Cgroup {
        Cgroup { path: path.into() }
    }

    /// The cgroup's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the cgroup directory exists.
    pub fn exists(&self) -> bool {
        fs::symlink_metadata(&self.path).is_ok_and(|meta| meta.is_dir())
    }

    /// A handle for the child cgroup `name` (a single path component).
    pub fn child(&self, name: &str) -> Cgroup {
        Cgroup::new(self.path.join(name))
    }

    /// Creates the cgroup directory; succeeds if it already exists. The parent must
    /// exist.
    pub fn create(&self) -> Result<(), Error> {
        match fs::create_dir(&self.path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(source) => Err(Error::Io {
                op: "create",
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Names of the child cgroups, sorted. Names that are not UTF-8 are left out (this
    /// crate never creates such cgroups); [`Cgroup::destroy`] still removes them.
    pub fn children(&self) -> Result<Vec<String>, Error> {
        Ok(self
            .child_dirs()?
            .into_iter()
            .filter_map(|dir| {
                dir.file_name()
                    .and_then(|name| name.to_str())
                    .map(str::to_owned)
            })
            .collect())
    }

    /// Controllers available to this cgroup (`cgroup.controllers`).
    pub fn controllers(&self) -> Result<Vec<String>, Error> {
        Ok(stats::parse_list(&self.read("cgroup.controllers")?))
    }

    /// Controllers enabled for this cgroup's children (`cgroup.subtree_control`).
    pub fn subtree_control(&self) -> Result<Vec<String>, Error> {
        Ok(stats::parse_list(&self.read("cgroup.subtree_control")?))
    }

    /// Enables for the children those of `wanted` that this cgroup offers in
    /// `cgroup.controllers`, and returns them (whether newly or already enabled).
    /// Controllers that are not available are skipped rather than reported, because
    /// which controllers a host offers is its configuration, not an error.
    pub fn enable_controllers(&self, wanted: &[&str]) -> Result<Vec<String>, Error> {
        let available = self.controllers()?;
        let mut selected: Vec<String> = Vec::new();
        for name in wanted {
            if available.iter().any(|a| a == name) && !selected.iter().any(|s| s == name) {
                selected.push((*name).to_owned());
            }
        }
        if selected.is_empty() {
            return Ok(selected);
        }
        let enabled = self.subtree_control()?;
        let missing: Vec<String> = selected
            .iter()
            .filter(|name| !enabled.contains(name))
            .map(|name| format!("+{name}"))
            .collect();
        // Skipping the write when nothing changes avoids needless writes to ancestors
        // that other managers also configure.
        if !missing.is_empty() {
            self.write("cgroup.subtree_control", &missing.join(" "))?;
        }
        Ok(selected)
    }

    /// Processes that are members of this cgroup itself (not of its descendants),
    /// sorted and without duplicates.
    pub fn procs(&self) -> Result<Vec<i32>, Error> {
        let file = "cgroup.procs";
        let text = self.read(file)?;
        stats::parse_pids(&text).map_err(|source| self.parse_error(file, source))
    }

    /// Processes of this cgroup and all its descendants, sorted and without duplicates.
    /// Descendants removed during the walk are skipped.
    pub fn procs_recursive(&self) -> Result<Vec<i32>, Error> {
        let mut pids = self.procs()?;
        let mut pending = self.child_dirs()?;
        while let Some(dir) = pending.pop() {
            let cgroup = Cgroup::new(dir);
            match cgroup.procs() {
                Ok(found) => pids.extend(found),
                Err(err) if err.is_not_found() => continue,
                // Threaded cgroups refuse cgroup.procs; their processes are listed by
                // the threaded domain above them.
                Err(Error::Io { source, .. })
                    if source.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
                Err(err) => return Err(err),
            }
            match cgroup.child_dirs() {
                Ok(dirs) => pending.extend(dirs),
                Err(err) if err.is_not_found() => {}
                Err(err) => return Err(err),
            }
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Moves process `pid` (all its threads) into this cgroup.
    pub fn add_proc(&self, pid: i32) -> Result<(), Error> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// Whether this cgroup or a descendant has processes (`populated` of
    /// `cgroup.events`, which root cgroups do not have).
    pub fn populated(&self) -> Result<bool, Error> {
        self.event("populated")
    }

    /// Whether the cgroup is completely frozen (`frozen` of `cgroup.events`).
    pub fn frozen(&self) -> Result<bool, Error> {
        self.event("frozen")
    }

    /// Freezes the cgroup and its descendants and waits (up to about a second) until the
    /// kernel reports them frozen; [`Error::FreezeTimeout`] otherwise, in which case the
    /// cgroup stays in the freezing state until thawed.
    pub fn freeze(&self) -> Result<(), Error> {
        self.write("cgroup.freeze", "1")?;
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        let mut delay = Duration::from_millis(1);
        loop {
            if self.frozen()? {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::FreezeTimeout {
                    path: self.path.clone(),
                });
            }
            sleep(delay.min(deadline - now));
            delay = (delay * 2).min(Duration::from_millis(20));
        }
    }

    /// Thaws the cgroup (undoes [`Cgroup::freeze`]).
    pub fn thaw(&self) -> Result<(), Error> {
        self.write("cgroup.freeze", "0")
    }

    /// Whether the kernel offers `cgroup.kill` (Linux 5.14 and later).
    pub fn has_kill(&self) -> bool {
        self.file("cgroup.kill").exists()
    }

    /// Kills every process in this cgroup and its descendants: through `cgroup.kill`
    /// when present; otherwise freeze, SIGKILL each pid of [`Cgroup::procs_recursive`],
    /// thaw. Succeeds if the cgroup is gone. Returns without waiting for the processes
    /// to exit. Refuses ([`Error::NotKillable`]) to act on a hierarchy root.
    pub fn kill(&self) -> Result<(), Error> {
        if !self.check_killable()? {
            return Ok(());
        }
        if !self.has_kill() {
            return self.kill_by_signal_fallback();
        }
        match self.write("cgroup.kill", "1") {
            Err(err) if err.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// The part of [`Cgroup::kill`] used when `cgroup.kill` is missing; public only so
    /// that it can be tested on kernels that have `cgroup.kill`.
    #[doc(hidden)]
    pub fn kill_by_signal_fallback(&self) -> Result<(), Error> {
        if !self.check_killable()? {
            return Ok(());
        }
        // Freezing first fixes the member set: frozen tasks can neither fork nor exit on
        // their own, so no pid read below can be recycled by an unrelated process before
        // it is signalled. SIGKILL still takes effect on frozen tasks.
        if let Err(err) = self.freeze() {
            if err.is_not_found() {
                return Ok(());
            }
            // Without cgroup.freeze (before Linux 5.2), or if freezing stalls, the
            // repeated passes below still catch processes forked meanwhile.
        }
        let result = self.signal_members();
        if self.file("cgroup.freeze").exists() {
            match self.thaw() {
                Err(err) if !err.is_not_found() => return result.and(Err(err)),
                _ => {}
            }
        }
        result
    }

    /// Sends SIGKILL to every member until a pass finds no member not yet signalled.
    fn signal_members(&self) -> Result<(), Error> {
        let mut signalled = BTreeSet::new();
        for _ in 0..MAX_SIGNAL_PASSES {
            let pids = match self.procs_recursive() {
                Ok(pids) => pids,
                Err(err) if err.is_not_found() => return Ok(()),
                Err(err) => return Err(err),
            };
            let fresh: Vec<i32> = pids
                .into_iter()
                .filter(|pid| !signalled.contains(pid))
                .collect();
            if fresh.is_empty() {
                return Ok(());
            }
            for pid in fresh {
                send_sigkill(pid)?;
                signalled.insert(pid);
            }
        }
        Ok(())
    }

    /// Kills all processes (see [`Cgroup::kill`]), then removes this cgroup and all
    /// descendants bottom-up. `rmdir` failing with EBUSY (processes still exiting) is
    /// retried every few milliseconds until `timeout`, then [`Error::DestroyTimeout`]
    /// names the path and the pids still present. Succeeds if the cgroup is already gone.
    pub fn destroy(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        match self.kill() {
            Err(err) if err.is_not_found() => return Ok(()),
            other => other?,
        }
        let mut last_kill = Instant::now();
        loop {
            if let Removal::Done = remove_tree(self)? {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::DestroyTimeout {
                    path: self.path.clone(),
                    pids: self.procs_recursive().unwrap_or_default(),
                });
            }
            if now.duration_since(last_kill) >= REKILL_INTERVAL {
                match self.kill() {
                    Err(err) if err.is_not_found() => return Ok(()),
                    other => other?,
                }
                last_kill = now;
            }
            sleep(REMOVE_RETRY_INTERVAL.min(deadline - now));
        }
    }

    /// Opens the cgroup directory (`O_RDONLY | O_DIRECTORY | O_CLOEXEC`), e.g. for
    /// `clone3` with `CLONE_INTO_CGROUP`.
    pub fn open_dir_fd(&self) -> Result<OwnedFd, Error> {
        // std always adds O_CLOEXEC.
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&self.path)
            .map(OwnedFd::from)
            .map_err(|source| self.io_error("open", self.path.clone(), source))
    }

    /// `cpu.stat`; `None` if the file does not exist.
    pub fn cpu_stat(&self) -> Result<Option<CpuStat>, Error> {
        self.read_parsed("cpu.stat", stats::parse_cpu_stat)
    }

    /// `memory.current` in bytes; `None` if the memory controller is not enabled.
    pub fn memory_current(&self) -> Result<Option<u64>, Error> {
        self.read_parsed("memory.current", |text| {
            stats::parse_single_u64(text, "memory.current")
        })
    }

    /// `memory.peak` in bytes; `None` if missing (no memory controller, or before
    /// Linux 5.19).
    pub fn memory_peak(&self) -> Result<Option<u64>, Error> {
        self.read_parsed("memory.peak", |text| {
            stats::parse_single_u64(text, "memory.peak")
        })
    }

    /// `memory.stat`; `None` if the memory controller is not enabled.
    pub fn memory_stat(&self) -> Result<Option<BTreeMap<String, u64>>, Error> {
        self.read_parsed("memory.stat", stats::parse_flat_keyed)
    }

    /// `memory.events`; `None` if the memory controller is not enabled.
    pub fn memory_events(&self) -> Result<Option<BTreeMap<String, u64>>, Error> {
        self.read_parsed("memory.events", stats::parse_flat_keyed)
    }

    /// Pressure stall information of `resource`; `None` if the kernel lacks PSI.
    pub fn pressure(&self, resource: PressureResource) -> Result<Option<Pressure>, Error> {
        self.read_parsed(resource.file_name(), stats::parse_pressure)
    }

    /// Reads the interface file `file` of this cgroup. [`Error::NotFound`] if the cgroup
    /// itself is gone.
    pub fn read(&self, file: &str) -> Result<String, Error> {
        let path = self.file(file);
        fs::read_to_string(&path).map_err(|source| self.io_error("read", path, source))
    }

    /// Writes `value` to the interface file `file` in a single `write(2)`, as the kernel
    /// treats each write as one complete command. [`Error::NotFound`] if the cgroup
    /// itself is gone.
    pub fn write(&self, file: &str, value: &str) -> Result<(), Error> {
        let path = self.file(file);
        let result = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut handle| loop {
                match handle.write(value.as_bytes()) {
                    Ok(written) if written == value.len() => return Ok(()),
                    Ok(written) => {
                        return Err(io::Error::new(
                            io::ErrorKind::WriteZero,
                            format!("short write of {written} of {} bytes", value.len()),
                        ))
                    }
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(err),
                }
            });
        result.map_err(|source| {
            if means_gone(&source) && !self.exists() {
                self.not_found()
            } else {
                Error::Write {
                    path,
                    value: value.to_owned(),
                    source,
                }
            }
        })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    fn not_found(&self) -> Error {
        Error::NotFound {
            path: self.path.clone(),
        }
    }

    /// Maps an I/O error on `path` (this cgroup or one of its files), turning "no such
    /// file" into [`Error::NotFound`] when it is the cgroup itself that is gone.
    fn io_error(&self, op: &'static str, path: PathBuf, source: io::Error) -> Error {
        if means_gone(&source) && !self.exists() {
            self.not_found()
        } else {
            Error::Io { op, path, source }
        }
    }

    fn parse_error(&self, file: &str, source: ParseError) -> Error {
        Error::Parse {
            path: self.file(file),
            source,
        }
    }

    /// Reads and parses an optional interface file: `None` if the file is missing while
    /// the cgroup exists (controller not enabled, feature absent from the kernel).
    fn read_parsed<T>(
        &self,
        file: &str,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Result<Option<T>, Error> {
        let path = self.file(file);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound && self.exists() => return Ok(None),
            Err(source) => return Err(self.io_error("read", path, source)),
        };
        parse(&text)
            .map(Some)
            .map_err(|source| self.parse_error(file, source))
    }

    fn event(&self, key: &str) -> Result<bool, Error> {
        let file = "cgroup.events";
        let text = self.read(file)?;
        let events = stats::parse_flat_keyed(&text).map_err(|e| self.parse_error(file, e))?;
        match events.get(key) {
            Some(value) => Ok(*value != 0),
            None => Err(self.parse_error(
                file,
                ParseError::MissingKey {
                    key: key.to_owned(),
                },
            )),
        }
    }

    /// Directories directly below this cgroup, sorted.
    fn child_dirs(&self) -> Result<Vec<PathBuf>, Error> {
        let entries =
            fs::read_dir(&self.path).map_err(|e| self.io_error("list", self.path.clone(), e))?;
        let mut dirs = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) if means_gone(&err) && !self.exists() => return Err(self.not_found()),
                Err(source) => {
                    return Err(Error::Io {
                        op: "list",
                        path: self.path.clone(),
                        source,
                    })
                }
            };
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => dirs.push(entry.path()),
                Ok(_) => {}
                // The child was removed between listing and inspection.
                Err(err) if means_gone(&err) => {}
                Err(source) => {
                    return Err(Error::Io {
                        op: "inspect",
                        path: entry.path(),
                        source,
                    })
                }
            }
        }
        dirs.sort();
        Ok(dirs)
    }

    /// Whether kill may proceed: `Ok(false)` if the cgroup is gone, an error if it is a
    /// hierarchy root or not a cgroup. Only non-root cgroups have `cgroup.events`;
    /// requiring it keeps a mistaken handle from signalling every process on the host.
    fn check_killable(&self) -> Result<bool, Error> {
        if self.file("cgroup.events").exists() {
            return Ok(true);
        }
        if !self.exists() {
            return Ok(false);
        }
        Err(Error::NotKillable {
            path: self.path.clone(),
        })
    }
}

/// Removes the tree below and including `cgroup`, children first. `Busy` if some cgroup
/// still has processes (or gained children) and must be retried.
fn remove_tree(cgroup: &Cgroup) -> Result<Removal, Error> {
    let children = match cgroup.child_dirs() {
        Ok(children) => children,
        Err(err) if err.is_not_found() => return Ok(Removal::Done),
        Err(err) => return Err(err),
    };
    let mut busy = false;
    for child in children {
        if let Removal::Busy = remove_tree(&Cgroup::new(child))? {
            busy = true;
        }
    }
    if busy {
        return Ok(Removal::Busy);
    }
    match fs::remove_dir(&cgroup.path) {
        Ok(()) => Ok(Removal::Done),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Removal::Done),
        Err(err) if matches!(err.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY)) => {
            Ok(Removal::Busy)
        }
        Err(source) => Err(Error::Io {
            op: "remove",
            path: cgroup.path.clone(),
            source,
        }),
    }
}

/// Sends SIGKILL to `pid`; a process that is already gone is not an error.
fn send_sigkill(pid: i32) -> Result<(), Error> {
    // kill(2) with 0 or a negative pid targets process groups or every process.
    if pid <= 0 {
        return Ok(());
    }
    // SAFETY: kill(2) only takes integer arguments and accesses no memory of ours.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    if rc == 0 {
        return Ok(());
    }
    let source = io::Error::last_os_error();
    if source.raw_os_error() == Some(libc::ESRCH) {
        return Ok(());
    }
    Err(Error::Signal { pid, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_cgroup() -> (tempfile::TempDir, Cgroup) {
        let dir = tempfile::tempdir().expect("tempdir");
        let cgroup = Cgroup::new(dir.path());
        (dir, cgroup)
    }

    #[test]
    fn read_and_write_files() {
        let (_dir, cg) = fake_cgroup();
        fs::write(cg.path().join("cgroup.procs"), "").expect("seed");
        cg.write("cgroup.procs", "1234").expect("write");
        assert_eq!(cg.read("cgroup.procs").expect("read"), "1234");
        assert_eq!(cg.procs().expect("procs"), [1234]);
    }

    #[test]
    fn missing_file_of_existing_cgroup_is_io_error() {
        let (_dir, cg) = fake_cgroup();
        let err = cg.read("cgroup.procs").expect_err("missing");
        assert!(!err.is_not_found());
        assert!(matches!(err, Error::Io { op: "read", .. }));
        assert_eq!(
            err.to_string(),
            format!(
                "failed to read {}",
                cg.path().join("cgroup.procs").display()
            )
        );
    }

    #[test]
    fn files_of_missing_cgroup_are_not_found() {
        let (_dir, parent) = fake_cgroup();
        let cg = parent.child("gone");
        assert!(!cg.exists());
        assert!(cg.read("cgroup.procs").expect_err("gone").is_not_found());
        assert!(cg
            .write("cgroup.procs", "1")
            .expect_err("gone")
            .is_not_found());
        assert!(cg.children().expect_err("gone").is_not_found());
        assert!(cg.procs_recursive().expect_err("gone").is_not_found());
        assert!(cg.cpu_stat().expect_err("gone").is_not_found());
        assert!(cg.open_dir_fd().expect_err("gone").is_not_found());
        // Already gone counts as killed and destroyed.
        cg.kill().expect("kill of missing cgroup");
        cg.destroy(Duration::from_millis(10))
            .expect("destroy of missing cgroup");
    }

    #[test]
    fn write_error_names_value_and_file() {
        let (_dir, cg) = fake_cgroup();
        fs::create_dir(cg.path().join("cgroup.kill")).expect("seed");
        let err = cg.write("cgroup.kill", "1").expect_err("is a directory");
        assert_eq!(
            err.to_string(),
            format!(
                "failed to write '1' to {}",
                cg.path().join("cgroup.kill").display()
            )
        );
    }

    #[test]
    fn children_lists_directories_only() {
        let (_dir, cg) = fake_cgroup();
        cg.child("b").create().expect("create b");
        cg.child("a").create().expect("create a");
        cg.child("a").create().expect("create is idempotent");
        fs::write(cg.path().join("cgroup.procs"), "").expect("seed");
        assert_eq!(cg.children().expect("children"), ["a", "b"]);
    }

    #[test]
    fn create_fails_without_parent() {
        let (_dir, cg) = fake_cgroup();
        let err = cg.child("x").child("y").create().expect_err("no parent");
        assert!(matches!(err, Error::Io { op: "create", .. }));
    }

    #[test]
    fn procs_recursive_on_plain_tree() {
        let (_dir, cg) = fake_cgroup();
        let leaf = cg.child("a").child("b");
        fs::create_dir_all(leaf.path()).expect("mkdir");
        fs::write(cg.path().join("cgroup.procs"), "5\n3\n").expect("seed");
        fs::write(cg.child("a").path().join("cgroup.procs"), "").expect("seed");
        fs::write(leaf.path().join("cgroup.procs"), "7\n3\n0\n").expect("seed");
        assert_eq!(cg.procs_recursive().expect("procs"), [3, 5, 7]);
    }

    #[test]
    fn procs_parse_error_names_file() {
        let (_dir, cg) = fake_cgroup();
        fs::write(cg.path().join("cgroup.procs"), "12\nxyz\n").expect("seed");
        let err = cg.procs().expect_err("garbage");
        assert_eq!(
            err.to_string(),
            format!(
                "failed to parse {}",
                cg.path().join("cgroup.procs").display()
            )
        );
    }

    #[test]
    fn optional_stats_files() {
        let (_dir, cg) = fake_cgroup();
        assert_eq!(cg.cpu_stat().expect("no file"), None);
        assert_eq!(cg.memory_current().expect("no file"), None);
        assert_eq!(cg.memory_peak().expect("no file"), None);
        assert_eq!(cg.memory_stat().expect("no file"), None);
        assert_eq!(cg.memory_events().expect("no file"), None);
        assert_eq!(cg.pressure(PressureResource::Io).expect("no file"), None);

        fs::write(
            cg.path().join("cpu.stat"),
            "usage_usec 10\nuser_usec 6\nsystem_usec 4\n",
        )
        .expect("seed");
        fs::write(cg.path().join("memory.current"), "4096\n").expect("seed");
        fs::write(cg.path().join("memory.peak"), "8192\n").expect("seed");
        fs::write(cg.path().join("memory.events"), "oom 1\noom_kill 2\n").expect("seed");
        fs::write(
            cg.path().join("memory.pressure"),
            "some avg10=1.00 avg60=2.00 avg300=3.00 total=4\n",
        )
        .expect("seed");
        let cpu = cg.cpu_stat().expect("read").expect("present");
        assert_eq!((cpu.usage_usec, cpu.user_usec, cpu.system_usec), (10, 6, 4));
        assert_eq!(cg.memory_current().expect("read"), Some(4096));
        assert_eq!(cg.memory_peak().expect("read"), Some(8192));
        let events = cg.memory_events().expect("read").expect("present");
        assert_eq!(events["oom_kill"], 2);
        let pressure = cg
            .pressure(PressureResource::Memory)
            .expect("read")
            .expect("present");
        assert_eq!(pressure.some.avg300, 3.0);
        assert_eq!(pressure.full, None);

        fs::write(cg.path().join("memory.current"), "lots\n").expect("seed");
        assert!(matches!(cg.memory_current(), Err(Error::Parse { .. })));
    }

    #[test]
    fn enable_controllers_intersects_with_available() {
        let (_dir, cg) = fake_cgroup();
        fs::write(cg.path().join("cgroup.controllers"), "cpu memory pids\n").expect("seed");
        fs::write(cg.path().join("cgroup.subtree_control"), "cpu\n").expect("seed");
        let enabled = cg
            .enable_controllers(&["memory", "io", "cpu", "memory"])
            .expect("enable");
        assert_eq!(enabled, ["memory", "cpu"]);
        // Only the controller not yet enabled is written.
        assert_eq!(cg.read("cgroup.subtree_control").expect("read"), "+memory");
    }

    #[test]
    fn enable_controllers_without_any_available_writes_nothing() {
        let (_dir, cg) = fake_cgroup();
        fs::write(cg.path().join("cgroup.controllers"), "\n").expect("seed");
        assert!(cg.enable_controllers(&["cpu"]).expect("enable").is_empty());
        assert!(!cg.path().join("cgroup.subtree_control").exists());
    }

    #[test]
    fn events() {
        let (_dir, cg) = fake_cgroup();
        fs::write(cg.path().join("cgroup.events"), "populated 1\nfrozen 0\n").expect("seed");
        assert!(cg.populated().expect("populated"));
        assert!(!cg.frozen().expect("frozen"));
    }

    #[test]
    fn kill_refuses_non_cgroup_directories() {
        let (_dir, cg) = fake_cgroup();
        assert!(matches!(cg.kill(), Err(Error::NotKillable { .. })));
        assert!(matches!(
            cg.kill_by_signal_fallback(),
            Err(Error::NotKillable { .. })
        ));
        assert!(matches!(
            cg.destroy(Duration::from_millis(10)),
            Err(Error::NotKillable { .. })
        ));
        assert!(cg.exists());
    }

    #[test]
    fn open_dir_fd_of_directory() {
        let (_dir, cg) = fake_cgroup();
        cg.open_dir_fd().expect("open");
    }
}
