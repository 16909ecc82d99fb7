//! Who a pid is: a pid alone can be reused, a pid with its start time cannot (within one
//! boot). Recovery adopts a process only when both match.

use std::io;
use std::path::Path;

/// A pid together with the start time the kernel recorded for it (clock ticks since boot,
/// field 22 of `/proc/<pid>/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessIdentity {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcessIdentity {
    /// Reads the identity of a live pid.
    pub fn of(pid: i32) -> io::Result<ProcessIdentity> {
        Ok(ProcessIdentity {
            pid,
            start_time: start_time(pid)?,
        })
    }

    /// True when `pid` still names the same process (alive or a zombie).
    pub fn is_current(&self) -> bool {
        matches!(start_time(self.pid), Ok(t) if t == self.start_time)
    }
}

/// The start time of `pid` in clock ticks since boot.
pub fn start_time(pid: i32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_start_time(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected format of /proc/{pid}/stat"),
        )
    })
}

/// Parses field 22 of a `/proc/<pid>/stat` line. The command name (field 2) may contain
/// spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // Fields after the name start at field 3 (state); start time is field 22.
    after.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// This boot's id: it changes at every boot, which tells a host reboot from an agent
/// restart.
pub fn boot_id() -> io::Result<String> {
    boot_id_from(Path::new("/proc/sys/kernel/random/boot_id"))
}

pub fn boot_id_from(path: &Path) -> io::Result<String> {
    Ok(std::fs::read_to_string(path)?.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_start_time_even_with_odd_names() {
        let line =
            "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(line), Some(987654));
        assert_eq!(parse_start_time("garbage"), None);
        assert_eq!(parse_start_time("1 (x) S 1"), None);
    }

    #[test]
    fn own_identity_is_current() {
        let me = ProcessIdentity::of(std::process::id() as i32).expect("own stat");
        assert!(me.is_current());
        let other = ProcessIdentity {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(
            !other.is_current(),
            "a different start time is another process"
        );
    }

    #[test]
    fn boot_id_is_a_uuid() {
        let id = boot_id().expect("boot id");
        assert_eq!(id.len(), 36, "{id}");
    }
}
