//! Discovery of the cgroup2 mount and path handling relative to it.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

use crate::cgroup::Cgroup;
use crate::error::Error;

/// The conventional place of the cgroup2 mount on pure v2 hosts.
pub const DEFAULT_MOUNT: &str = "/sys/fs/cgroup";

/// How cgroup2 is set up on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only cgroup2, mounted at `/sys/fs/cgroup`.
    Unified,
    /// cgroup2 mounted elsewhere (typically `/sys/fs/cgroup/unified`) beside v1
    /// controller mounts; controllers bound to v1 are not available in cgroup2.
    Hybrid,
}

/// A mounted cgroup2 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    mount: PathBuf,
    mode: Mode,
    /// The cgroup the mount shows as its root ("/" unless a sub-tree was bind mounted);
    /// needed to turn `/proc/<pid>/cgroup` paths into mount-relative ones.
    root: PathBuf,
}

impl Hierarchy {
    /// Finds the cgroup2 mount of this process's mount namespace.
    pub fn detect() -> Result<Hierarchy, Error> {
        let path = "/proc/self/mountinfo";
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            op: "read",
            path: path.into(),
            source,
        })?;
        Hierarchy::from_mountinfo(&text).ok_or(Error::NoCgroup2)
    }

    /// Picks the cgroup2 mount from `/proc/<pid>/mountinfo` text: the one at
    /// `/sys/fs/cgroup` if that is cgroup2, else the first cgroup2 mount. The mode is
    /// [`Mode::Hybrid`] if any cgroup v1 mount exists or the chosen mount is not at
    /// `/sys/fs/cgroup`.
    pub fn from_mountinfo(text: &str) -> Option<Hierarchy> {
        let mounts: Vec<MountEntry> = text.lines().filter_map(parse_mountinfo_line).collect();
        // A later mount on the same mount point hides the earlier one, so only the last
        // entry per mount point is what a path lookup would reach.
        let visible = |index: usize, entry: &MountEntry| {
            !mounts[index + 1..]
                .iter()
                .any(|later| later.mount_point == entry.mount_point)
        };
        let mut v1_present = false;
        let mut chosen: Option<&MountEntry> = None;
        for (index, entry) in mounts.iter().enumerate() {
            if !visible(index, entry) {
                continue;
            }
            match entry.fs_type.as_str() {
                "cgroup" => v1_present = true,
                "cgroup2" => {
                    let preferred = entry.mount_point == Path::new(DEFAULT_MOUNT);
                    if chosen.is_none() || preferred {
                        chosen = Some(entry);
                    }
                }
                _ => {}
            }
        }
        let chosen = chosen?;
        let mode = if v1_present || chosen.mount_point != Path::new(DEFAULT_MOUNT) {
            Mode::Hybrid
        } else {
            Mode::Unified
        };
        Some(Hierarchy {
            mount: chosen.mount_point.clone(),
            mode,
            root: chosen.root.clone(),
        })
    }

    /// Uses an explicitly configured mount point. The mode is [`Mode::Unified`] only for
    /// `/sys/fs/cgroup`.
    pub fn at(mount: impl Into<PathBuf>) -> Hierarchy {
        let mount = mount.into();
        let mode = if mount == Path::new(DEFAULT_MOUNT) {
            Mode::Unified
        } else {
            Mode::Hybrid
        };
        Hierarchy {
            mount,
            mode,
            root: PathBuf::from("/"),
        }
    }

    /// The mount point.
    pub fn mount(&self) -> &Path {
        &self.mount
    }

    /// Whether the host is pure cgroup2 or hybrid.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A handle for the cgroup at `relative` below the mount (a leading `/` is ignored).
    /// Does not create anything.
    pub fn cgroup(&self, relative: impl AsRef<Path>) -> Cgroup {
        let mut path = self.mount.clone();
        for component in relative.as_ref().components() {
            match component {
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                other => path.push(other),
            }
        }
        Cgroup::new(path)
    }

    /// The root cgroup of the mount.
    pub fn root(&self) -> Cgroup {
        Cgroup::new(self.mount.clone())
    }

    /// Creates every missing component of `relative` below the mount and, in each
    /// ancestor from the mount root down to the parent of the last component, enables in
    /// `cgroup.subtree_control` those of `controllers` that the ancestor offers in
    /// `cgroup.controllers` (never more). Returns the handle of the last component.
    ///
    /// `relative` must name at least one component and must not contain `..`.
    pub fn create_path(
        &self,
        relative: impl AsRef<Path>,
        controllers: &[&str],
    ) -> Result<Cgroup, Error> {
        self.create_path_within("", relative, controllers)
    }

    /// [`Hierarchy::create_path`] for a subtree delegated to us at `base` (e.g. a systemd
    /// scope): the cgroups above `base` belong to someone else, so nothing above it is
    /// created or written; controllers are enabled from `base` down. `relative` must lie
    /// below `base`.
    pub fn create_path_within(
        &self,
        base: impl AsRef<Path>,
        relative: impl AsRef<Path>,
        controllers: &[&str],
    ) -> Result<Cgroup, Error> {
        let base = base.as_ref();
        let relative = relative.as_ref();
        let below = relative
            .strip_prefix(base)
            .map_err(|_| Error::InvalidPath {
                path: relative.to_path_buf(),
                reason: "is not below the delegated cgroup",
            })?;
        let mut current = self.cgroup(base);
        if !base.as_os_str().is_empty() && !current.exists() {
            return Err(Error::Io {
                op: "find",
                path: current.path().to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let relative = below;
        let mut names = Vec::new();
        for component in relative.components() {
            match component {
                Component::Normal(name) => names.push(name),
                Component::RootDir | Component::CurDir => {}
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(Error::InvalidPath {
                        path: relative.to_path_buf(),
                        reason: "must not contain '..'",
                    });
                }
            }
        }
        if names.is_empty() {
            return Err(Error::InvalidPath {
                path: relative.to_path_buf(),
                reason: "names no cgroup below the mount",
            });
        }
        for name in names {
            if !controllers.is_empty() {
                current.enable_controllers(controllers)?;
            }
            let next = Cgroup::new(current.path().join(name));
            next.create()?;
            current = next;
        }
        Ok(current)
    }

    /// This process's cgroup, relative to the mount (empty for the root cgroup).
    pub fn own_cgroup(&self) -> Result<PathBuf, Error> {
        self.cgroup_of_proc_file(Path::new("/proc/self/cgroup"))
    }

    /// The cgroup of process `pid`, relative to the mount (empty for the root cgroup).
    pub fn cgroup_of_pid(&self, pid: i32) -> Result<PathBuf, Error> {
        self.cgroup_of_proc_file(&PathBuf::from(format!("/proc/{pid}/cgroup")))
    }

    fn cgroup_of_proc_file(&self, file: &Path) -> Result<PathBuf, Error> {
        let text = std::fs::read_to_string(file).map_err(|source| Error::Io {
            op: "read",
            path: file.to_path_buf(),
            source,
        })?;
        let absolute = parse_proc_cgroup(&text).ok_or(Error::NoCgroup2)?;
        // Strip the mount's own root so the result can be joined to the mount point.
        let relative = absolute
            .strip_prefix(&self.root)
            .or_else(|_| absolute.strip_prefix("/"))
            .unwrap_or(&absolute);
        Ok(relative.to_path_buf())
    }
}

/// Extracts the cgroup2 path (the `0::/...` line) from `/proc/<pid>/cgroup` text.
pub fn parse_proc_cgroup(text: &str) -> Option<PathBuf> {
    text.lines().find_map(|line| {
        let path = line.strip_prefix("0::")?;
        // The kernel marks a cgroup removed after the process left it.
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        Some(PathBuf::from(path))
    })
}

struct MountEntry {
    root: PathBuf,
    mount_point: PathBuf,
    fs_type: String,
}

/// Parses one line of mountinfo (see proc(5)):
/// `id parent major:minor root mount-point options [optional...] - fstype source super-options`.
fn parse_mountinfo_line(line: &str) -> Option<MountEntry> {
    let mut fields = line.split(' ');
    let _id = fields.next()?;
    let _parent = fields.next()?;
    let _device = fields.next()?;
    let root = fields.next()?;
    let mount_point = fields.next()?;
    // The optional fields end at a lone "-"; the filesystem type follows it.
    let fs_type = fields.skip_while(|field| *field != "-").nth(1)?;
    Some(MountEntry {
        root: unescape_octal(root),
        mount_point: unescape_octal(mount_point),
        fs_type: fs_type.to_owned(),
    })
}

/// Undoes the kernel's `\ooo` escaping of space, tab, newline and backslash in paths.
fn unescape_octal(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if let Some(digits) = bytes.get(i + 1..i + 4) {
                if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                    let value = digits
                        .iter()
                        .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                    if let Ok(byte) = u8::try_from(value) {
                        out.push(byte);
                        i += 4;
                        continue;
                    }
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    // /proc/self/mountinfo of a hybrid host (v1 controllers plus a controller-less
    // cgroup2 at /sys/fs/cgroup/unified), abridged to the relevant mounts.
    const HYBRID: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334460k,nr_inodes=3083615,mode=755
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    // A systemd-managed pure cgroup2 host.
    const UNIFIED: &str = "\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
26 23 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
27 23 0:25 / /sys/fs/pstore rw,nosuid,nodev,noexec,relatime shared:5 - pstore pstore rw
28 23 0:26 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:6 - bpf bpf rw,mode=700
";

    #[test]
    fn hybrid_host() {
        let h = Hierarchy::from_mountinfo(HYBRID).expect("cgroup2 present");
        assert_eq!(h.mount(), Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(h.mode(), Mode::Hybrid);
    }

    #[test]
    fn unified_host() {
        let h = Hierarchy::from_mountinfo(UNIFIED).expect("cgroup2 present");
        assert_eq!(h.mount(), Path::new("/sys/fs/cgroup"));
        assert_eq!(h.mode(), Mode::Unified);
    }

    #[test]
    fn prefers_sys_fs_cgroup_over_earlier_cgroup2_mounts() {
        let text = "\
30 23 0:40 / /run/other rw - cgroup2 cgroup2 rw
31 23 0:24 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw
";
        let h = Hierarchy::from_mountinfo(text).expect("cgroup2 present");
        assert_eq!(h.mount(), Path::new("/sys/fs/cgroup"));
        assert_eq!(h.mode(), Mode::Unified);
    }

    #[test]
    fn cgroup2_elsewhere_without_v1_is_hybrid() {
        let text = "30 23 0:40 / /run/cg\\040two rw - cgroup2 none rw\n";
        let h = Hierarchy::from_mountinfo(text).expect("cgroup2 present");
        assert_eq!(h.mount(), Path::new("/run/cg two"));
        assert_eq!(h.mode(), Mode::Hybrid);
    }

    #[test]
    fn shadowed_mount_is_ignored() {
        let text = "\
26 23 0:24 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
27 23 0:25 / /sys/fs/cgroup rw - tmpfs tmpfs rw
28 27 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";
        let h = Hierarchy::from_mountinfo(text).expect("cgroup2 present");
        assert_eq!(h.mount(), Path::new("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn no_cgroup2() {
        let v1_only: String = HYBRID
            .lines()
            .filter(|l| !l.contains("cgroup2"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(Hierarchy::from_mountinfo(&v1_only), None);
        assert_eq!(Hierarchy::from_mountinfo(""), None);
        assert_eq!(Hierarchy::from_mountinfo("garbage\n"), None);
    }

    #[test]
    fn explicit_mount_mode() {
        assert_eq!(Hierarchy::at("/sys/fs/cgroup").mode(), Mode::Unified);
        assert_eq!(Hierarchy::at("/sys/fs/cgroup/unified").mode(), Mode::Hybrid);
    }

    #[test]
    fn cgroup_paths() {
        let h = Hierarchy::at("/sys/fs/cgroup");
        assert_eq!(
            h.cgroup("/holdfast/c1").path(),
            Path::new("/sys/fs/cgroup/holdfast/c1")
        );
        assert_eq!(
            h.cgroup("holdfast/c1").path(),
            Path::new("/sys/fs/cgroup/holdfast/c1")
        );
        assert_eq!(h.cgroup(""), h.root());
        assert_eq!(h.cgroup("/"), h.root());
    }

    #[test]
    fn create_path_rejects_bad_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = Hierarchy::at(dir.path());
        assert!(matches!(
            h.create_path("a/../b", &[]),
            Err(Error::InvalidPath { .. })
        ));
        assert!(matches!(
            h.create_path("/", &[]),
            Err(Error::InvalidPath { .. })
        ));
    }

    #[test]
    fn create_path_on_plain_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = Hierarchy::at(dir.path());
        let cg = h.create_path("/a/b/c", &[]).expect("create");
        assert_eq!(cg.path(), dir.path().join("a/b/c"));
        assert!(cg.exists());
        // Idempotent.
        h.create_path("a/b/c", &[]).expect("create again");
    }

    #[test]
    fn create_path_within_leaves_the_delegating_side_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = Hierarchy::at(dir.path());
        // The delegated cgroup must already exist: it is someone else's to create.
        assert!(h
            .create_path_within("s.slice/x.scope", "s.slice/x.scope/c/leaf", &[])
            .is_err());
        std::fs::create_dir_all(dir.path().join("s.slice/x.scope")).expect("mkdir");
        let cg = h
            .create_path_within("s.slice/x.scope", "s.slice/x.scope/c/leaf", &[])
            .expect("create");
        assert_eq!(cg.path(), dir.path().join("s.slice/x.scope/c/leaf"));
        assert!(matches!(
            h.create_path_within("s.slice/x.scope", "other/c", &[]),
            Err(Error::InvalidPath { .. })
        ));
    }

    #[test]
    fn proc_cgroup_parsing() {
        let hybrid = "9:name=systemd:/\n4:memory:/process_api/c0fd\n0::/\n";
        assert_eq!(parse_proc_cgroup(hybrid), Some(PathBuf::from("/")));
        let unified = "0::/system.slice/holdfast.service\n";
        assert_eq!(
            parse_proc_cgroup(unified),
            Some(PathBuf::from("/system.slice/holdfast.service"))
        );
        assert_eq!(
            parse_proc_cgroup("0::/gone (deleted)\n"),
            Some(PathBuf::from("/gone"))
        );
        assert_eq!(parse_proc_cgroup("4:memory:/x\n"), None);
    }

    #[test]
    fn octal_unescape() {
        assert_eq!(unescape_octal("/a\\040b"), PathBuf::from("/a b"));
        assert_eq!(unescape_octal("/a\\134b"), PathBuf::from("/a\\b"));
        assert_eq!(
            unescape_octal("/trailing\\04"),
            PathBuf::from("/trailing\\04")
        );
        assert_eq!(unescape_octal("/x\\"), PathBuf::from("/x\\"));
    }
}
