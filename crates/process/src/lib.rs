//! Process primitives the launcher and supervisor stand on: spawning straight into a cgroup
//! (`clone3` with `CLONE_INTO_CGROUP`), pidfds, and process identity (pid plus start time).
//!
//! Linux-only and deliberately thin: policy lives in the callers.

pub mod identity;
pub mod pidfd;
pub mod spawn;

pub use identity::{boot_id, start_time, ProcessIdentity};
pub use pidfd::PidFd;
pub use spawn::{spawn, SpawnError, SpawnRequest, Spawned};

/// The last OS error, for the raw libc calls in this crate.
pub(crate) fn last_error() -> std::io::Error {
    std::io::Error::last_os_error()
}
