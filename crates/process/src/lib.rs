//! Process primitives the launcher and supervisor stand on: spawning straight into a cgroup
//! (`clone3` with `CLONE_INTO_CGROUP`), pidfds, process identity (pid plus start time), and user lookup.
//!
//! Linux-only and deliberately thin: policy lives in the callers.

pub mod caps;
pub mod fds;
pub mod identity;
pub mod pidfd;
pub mod spawn;
pub mod user;

pub use identity::{boot_id, start_time, ProcessIdentity};
pub use pidfd::PidFd;
pub use spawn::{spawn, SpawnError, SpawnRequest, Spawned};
pub use user::{lookup_user, User};

/// The last OS error, for the raw libc calls in this crate.
pub(crate) fn last_error() -> std::io::Error {
    std::io::Error::last_os_error()
}
