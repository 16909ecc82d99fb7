//! Errors of cgroup operations.

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

use crate::stats::ParseError;

/// Failure of a cgroup operation. Paths are absolute; the underlying cause, if any, is
/// the error's `source()`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No cgroup2 filesystem is mounted (or the process has no cgroup2 membership).
    #[error("no cgroup2 hierarchy is mounted")]
    NoCgroup2,
    /// The cgroup directory itself does not exist (never created, or already removed).
    #[error("cgroup {} does not exist", path.display())]
    NotFound {
        /// The cgroup's directory.
        path: PathBuf,
    },
    /// A filesystem operation other than a write of a value failed.
    #[error("failed to {op} {}", path.display())]
    Io {
        /// What was attempted, as a verb phrase ("read", "remove", ...).
        op: &'static str,
        /// The file or directory operated on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing a value to an interface file failed.
    #[error("failed to write '{value}' to {}", path.display())]
    Write {
        /// The interface file.
        path: PathBuf,
        /// The value that was written.
        value: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An interface file's content could not be parsed.
    #[error("failed to parse {}", path.display())]
    Parse {
        /// The interface file.
        path: PathBuf,
        /// What is wrong with the content.
        #[source]
        source: ParseError,
    },
    /// A cgroup (or a descendant) could not be removed before the deadline because it
    /// still held processes or children.
    #[error("timed out removing cgroup {}; processes still present: {}", path.display(), format_pids(pids))]
    DestroyTimeout {
        /// The cgroup being destroyed.
        path: PathBuf,
        /// The processes still in it or its descendants when giving up.
        pids: Vec<i32>,
    },
    /// `cgroup.events` did not report `frozen 1` in time after writing `cgroup.freeze`.
    #[error("timed out waiting for cgroup {} to freeze", path.display())]
    FreezeTimeout {
        /// The cgroup being frozen.
        path: PathBuf,
    },
    /// Sending a signal to a member process failed for a reason other than it being gone.
    #[error("failed to send SIGKILL to pid {pid}")]
    Signal {
        /// The target process.
        pid: i32,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The operation would act on every process of a hierarchy (a mount root) or on a
    /// directory that is not a cgroup.
    #[error("refusing to kill the processes of {}: not a non-root cgroup", path.display())]
    NotKillable {
        /// The directory the operation was attempted on.
        path: PathBuf,
    },
    /// A relative cgroup path is empty, absolute beyond the root, or contains `..`.
    #[error("invalid cgroup path '{}': {reason}", path.display())]
    InvalidPath {
        /// The path as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl Error {
    /// Whether this error means the cgroup itself does not exist; callers that remove or
    /// kill cgroups treat that as "already done".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

fn format_pids(pids: &[i32]) -> String {
    if pids.is_empty() {
        return "none".to_owned();
    }
    let mut out = String::new();
    for (i, pid) in pids.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{pid}");
    }
    out
}

/// Whether an I/O error is what the kernel returns for a removed cgroup: ENOENT for
/// lookups, ENODEV for files of a cgroup removed while open.
pub(crate) fn means_gone(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound || err.raw_os_error() == Some(libc::ENODEV)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn messages_are_lower_case_with_cause_in_source() {
        let err = Error::Write {
            path: "/sys/fs/cgroup/x/cgroup.subtree_control".into(),
            value: "+cpu".into(),
            source: io::Error::from_raw_os_error(libc::EBUSY),
        };
        assert_eq!(
            err.to_string(),
            "failed to write '+cpu' to /sys/fs/cgroup/x/cgroup.subtree_control"
        );
        assert!(err.source().is_some());

        let err = Error::DestroyTimeout {
            path: "/sys/fs/cgroup/x".into(),
            pids: vec![12, 34],
        };
        assert_eq!(
            err.to_string(),
            "timed out removing cgroup /sys/fs/cgroup/x; processes still present: 12 34"
        );
    }

    #[test]
    fn not_found_classification() {
        assert!(Error::NotFound { path: "/x".into() }.is_not_found());
        assert!(!Error::NoCgroup2.is_not_found());
        assert!(means_gone(&io::Error::from_raw_os_error(libc::ENOENT)));
        assert!(means_gone(&io::Error::from_raw_os_error(libc::ENODEV)));
        assert!(!means_gone(&io::Error::from_raw_os_error(libc::EBUSY)));
    }
}
