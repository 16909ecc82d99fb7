//! The containers' systemd scopes: a thin layer over `holdfast-systemd` that retries while
//! systemd is away (`daemon-reexec` closes every connection).

use std::path::{Path, PathBuf};
use std::time::Duration;

use holdfast_systemd::{Connection, Error, Scope};

/// Where the agent puts its containers' scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdSettings {
    /// `--systemd_containers_slice`.
    pub slice: String,
    /// Its cgroup, relative to the cgroup2 mount (`a-b.slice` is `a.slice/a-b.slice`).
    pub slice_path: PathBuf,
}

/// A connection per operation: systemd pushes every unit's change signals to each
/// private connection, so one held open between launches would pile them up in PID 1.
pub struct Scopes {
    pub settings: SystemdSettings,
}

/// How often an operation is tried when systemd is away (`daemon-reexec` closes every
/// connection and briefly refuses new ones).
const ATTEMPTS: u32 = 5;
const RETRY_PAUSE: Duration = Duration::from_millis(200);

impl Scopes {
    pub fn new(settings: SystemdSettings) -> Scopes {
        Scopes { settings }
    }

    /// Runs `op` on a fresh connection, again on a new one while systemd cannot be
    /// reached or drops the connection.
    fn with<T>(&self, op: &mut dyn FnMut(&mut Connection) -> Result<T, Error>) -> Result<T, Error> {
        let mut attempt = 1;
        loop {
            let result = Connection::system().and_then(|mut c| op(&mut c));
            match result {
                Err(e) if retryable(&e) && attempt < ATTEMPTS => {
                    tracing::info!(error = %e, attempt, "systemd is not answering; trying again");
                    attempt += 1;
                    std::thread::sleep(RETRY_PAUSE);
                }
                other => return other,
            }
        }
    }

    /// Creates the scope `unit` around process `pid` in the containers' slice, delegated to
    /// the agent, and returns once systemd has moved the process into it.
    /// `resources` are the scope's own weights and protection (see
    /// `ContainerLimits::scope_properties`).
    pub fn start(
        &self,
        unit: &str,
        pid: i32,
        description: &str,
        resources: Vec<(String, u64)>,
    ) -> Result<(), Error> {
        let scope = Scope {
            name: unit.to_string(),
            slice: self.settings.slice.clone(),
            description: description.to_string(),
            pids: vec![pid as u32],
            delegate: true,
            resources,
        };
        let path = self.scope_path(unit);
        self.with(&mut |c| match c.start_scope(&scope) {
            Err(Error::DBus { name, message }) if name == UNIT_EXISTS => {
                // Either an earlier attempt got through before the connection broke (its
                // job may still be moving the process), or the scope of an ended
                // container of the same id is still going away.
                if wait_for_pid_in(pid, &path, Duration::from_secs(2)) {
                    return Ok(());
                }
                tracing::info!(unit, %message, "replacing a scope left from an ended container");
                c.stop_unit(unit)?;
                c.start_scope(&scope)
            }
            other => other,
        })
    }

    /// Changes the scope's own weights and protection (UPDATE_CONTAINER).
    pub fn set_resources(&self, unit: &str, resources: &[(String, u64)]) -> Result<(), Error> {
        if resources.is_empty() {
            return Ok(());
        }
        self.with(&mut |c| c.set_unit_properties(unit, resources))
    }
    /// SIGKILLs every process in the scope; systemd then removes the empty scope.
    pub fn kill(&self, unit: &str) -> Result<(), Error> {
        self.with(&mut |c| c.kill_unit(unit, libc::SIGKILL))
    }

    /// Stops the scope and waits until systemd has removed it; a scope that is already
    /// gone is fine.
    pub fn stop(&self, unit: &str) -> Result<(), Error> {
        self.with(&mut |c| c.stop_unit(unit))
    }

    /// The scope's cgroup, relative to the mount.
    pub fn scope_path(&self, unit: &str) -> PathBuf {
        self.settings.slice_path.join(unit)
    }

    pub fn slice_path(&self) -> &Path {
        &self.settings.slice_path
    }
}

const UNIT_EXISTS: &str = "org.freedesktop.systemd1.UnitExists";

fn retryable(e: &Error) -> bool {
    e.is_disconnected() || matches!(e, Error::Io { .. })
}

/// Whether process `pid` sits in the cgroup `path` (relative to the mount) or below it,
/// waiting up to `timeout` for it to get there.
fn wait_for_pid_in(pid: i32, path: &Path, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let inside = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|t| holdfast_cgroups::parse_proc_cgroup(&t))
            .is_some_and(|p| p.strip_prefix("/").unwrap_or(&p).starts_with(path));
        if inside || std::time::Instant::now() >= deadline {
            return inside;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
