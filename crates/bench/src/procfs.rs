//! What the bench reads from `/proc` and the cgroup2 tree: memory, process names and
//! parents, the cgroup2 mount, and the machine facts printed with the results.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

/// `VmRSS` of a process, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    status_field(&status, "VmRSS")
        .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// `VmHWM` of a process (the highest RSS it reached), in KiB.
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    status_field(&status, "VmHWM")
        .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmHWM in /proc/{pid}/status"))
}

/// CPU time a process has used so far, user plus system (`utime + stime` of
/// `/proc/<pid>/stat`), over all its threads.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    let ticks = stat_cpu_ticks(&stat).with_context(|| format!("bad /proc/{pid}/stat: {stat}"))?;
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second)
        .ok()
        .filter(|&t| t > 0)
        .unwrap_or(100);
    Ok(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

/// `utime + stime` in clock ticks. The name in parentheses may hold spaces and
/// parentheses, so fields are counted from the last `)`: the state is field 3, utime 14
/// and stime 15.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory of a process, in KiB, as `/proc/<pid>/status` splits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: everything resident.
    pub rss: u64,
    /// `RssAnon`: heap, stacks and other private anonymous pages.
    pub anon: u64,
    /// `RssFile`: mapped files, mostly the executable and shared libraries.
    pub file: u64,
    /// `Pss` from `smaps_rollup`: resident pages, each shared one divided among its
    /// sharers; what the process adds to the host's memory use.
    pub pss: Option<u64>,
}

/// `VmRSS`, `RssAnon` and `RssFile` of a process.
pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let kib = |name: &str| -> anyhow::Result<u64> {
        status_field(&status, name)
            .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok(Memory {
        rss: kib("VmRSS")?,
        anon: kib("RssAnon")?,
        file: kib("RssFile")?,
        pss: std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
            .ok()
            .and_then(|rollup| {
                status_field(&rollup, "Pss")?
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            }),
    })
}

/// Whether a process exists (a zombie counts).
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The parent pid of a process.
pub fn ppid(pid: u32) -> anyhow::Result<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    status_field(&status, "PPid")
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no PPid in /proc/{pid}/status"))
}

/// The process's `comm` (its short name), or `None` once it is gone.
pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

fn status_field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim())
    })
}

/// The pids listed in a cgroup's `cgroup.procs`.
pub fn cgroup_procs(cgroup: &Path) -> anyhow::Result<Vec<u32>> {
    let path = cgroup.join("cgroup.procs");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// How cgroups are mounted on this host.
#[derive(Debug, Clone)]
pub struct CgroupMounts {
    /// The cgroup2 mount point.
    pub unified: PathBuf,
    /// Whether cgroup v1 hierarchies are mounted too (a "hybrid" host).
    pub hybrid: bool,
}

/// Finds the cgroup2 mount (and whether v1 hierarchies exist) in `/proc/self/mountinfo`.
pub fn cgroup_mounts() -> anyhow::Result<CgroupMounts> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .context("cannot read /proc/self/mountinfo")?;
    parse_mountinfo(&text)
}

fn parse_mountinfo(text: &str) -> anyhow::Result<CgroupMounts> {
    let mut unified = None;
    let mut hybrid = false;
    for line in text.lines() {
        // "<id> <parent> <maj:min> <root> <mount point> <options> [optional...] - <fstype> ..."
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = right.split(' ').next().unwrap_or_default();
        let Some(mount_point) = left.split(' ').nth(4) else {
            continue;
        };
        match fstype {
            "cgroup2" if unified.is_none() => unified = Some(unescape(mount_point)),
            "cgroup" => hybrid = true,
            _ => {}
        }
    }
    match unified {
        Some(p) => Ok(CgroupMounts {
            unified: PathBuf::from(p),
            hybrid,
        }),
        None => bail!("no cgroup2 mount in /proc/self/mountinfo"),
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space, and so on).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(v as u8);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `uname -r`.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// What `nproc` prints: the CPUs this process may run on.
pub fn nproc() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_mountinfo() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw
";
        let m = parse_mountinfo(text).expect("parse");
        assert_eq!(m.unified, PathBuf::from("/sys/fs/cgroup/unified"));
        assert!(m.hybrid);
    }

    #[test]
    fn unified_mountinfo_with_escape() {
        let text = "30 23 0:26 / /mnt/cg\\040two rw - cgroup2 cgroup2 rw\n";
        let m = parse_mountinfo(text).expect("parse");
        assert_eq!(m.unified, PathBuf::from("/mnt/cg two"));
        assert!(!m.hybrid);
        assert!(parse_mountinfo("1 0 0:1 / / rw - ext4 /dev/sda rw\n").is_err());
    }

    #[test]
    fn cpu_ticks_from_stat() {
        let stat = "4242 (holdfast (x) y) S 1 4242 4242 0 -1 4194560 2000 0 0 0 \
                    150 37 0 0 20 0 3 0 123456 1000000 500 18446744073709551615";
        assert_eq!(stat_cpu_ticks(stat), Some(187));
        assert_eq!(stat_cpu_ticks("1 (x) S 1 2"), None);
        cpu_time(std::process::id()).expect("this process's own stat parses");
    }

    #[test]
    fn status_fields() {
        let status = "Name:\tholdfast-sup\nPPid:\t42\nVmRSS:\t    1234 kB\n";
        assert_eq!(status_field(status, "PPid"), Some("42"));
        assert_eq!(status_field(status, "VmRSS"), Some("1234 kB"));
        assert_eq!(status_field(status, "VmHWM"), None);
    }
}
