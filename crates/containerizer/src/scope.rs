//! The containers' systemd scopes: a thin layer over `holdfast-systemd` that retries while
//! systemd is away (`daemon-reexec` closes every connection).

use std::os::fd::{AsFd as _, AsRawFd as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
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

/// Operations on the containers' scopes. Connections to systemd are kept between
/// operations (connecting costs more than the call itself) and handed to one operation
/// at a time; a background thread reads and drops what systemd sends to the idle ones,
/// since on the private socket it pushes every unit's change signals to every
/// connection and would otherwise buffer them in PID 1.
pub struct Scopes {
    pub settings: SystemdSettings,
    idle: Arc<Mutex<Vec<Connection>>>,
    /// Whether connections are kept (only with the drain thread running).
    reuse: bool,
    /// Operations in progress, at most `MAX_IN_FLIGHT`.
    in_flight: Mutex<usize>,
    slot_freed: Condvar,
}

/// How often an operation is tried when systemd is away (`daemon-reexec` closes every
/// connection and briefly refuses new ones).
const ATTEMPTS: u32 = 5;
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Connections kept for reuse.
const MAX_IDLE: usize = 4;
/// Operations on systemd at once. PID 1 handles jobs one at a time, so more in flight
/// only lengthen its queue until the last ones wait past their timeout (seen with 16
/// launches at once on a slow host); the rest wait here, before their clock starts.
const MAX_IN_FLIGHT: usize = MAX_IDLE;
/// How long the drain thread waits for idle connections to become readable before it
/// looks at the set of idle connections again.
const DRAIN_POLL_MS: i32 = 1000;

impl Scopes {
    pub fn new(settings: SystemdSettings) -> Scopes {
        let idle = Arc::new(Mutex::new(Vec::new()));
        let weak = Arc::downgrade(&idle);
        let reuse = match std::thread::Builder::new()
            .name("systemd-drain".into())
            .spawn(move || drain_idle(weak))
        {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the thread that drains idle systemd connections; connecting per operation");
                false
            }
        };
        Scopes {
            settings,
            idle,
            reuse,
            in_flight: Mutex::new(0),
            slot_freed: Condvar::new(),
        }
    }

    /// An idle connection with nothing stale in it, or a new one.
    fn take(&self) -> Result<Connection, Error> {
        loop {
            let held = lock(&self.idle).pop();
            let Some(mut conn) = held else {
                return Connection::system();
            };
            // A connection systemd closed (daemon-reexec) is dropped here.
            if conn.discard_pending().is_ok() {
                return Ok(conn);
            }
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = lock(&self.idle);
        if self.reuse && idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// Runs `op` on a connection, again on a new one while systemd cannot be reached or
    /// drops the connection.
    fn with<T>(&self, op: &mut dyn FnMut(&mut Connection) -> Result<T, Error>) -> Result<T, Error> {
        let mut attempt = 1;
        loop {
            let slot = self.slot();
            let result = self.take().and_then(|mut c| {
                let result = op(&mut c);
                // A refusal leaves the connection as good as it was; after a broken
                // connection or a timeout (a reply may still come) it goes.
                if matches!(
                    result,
                    Ok(_) | Err(Error::DBus { .. } | Error::JobFailed { .. })
                ) {
                    self.give_back(c);
                }
                result
            });
            drop(slot);
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

    /// Waits for one of the `MAX_IN_FLIGHT` places; it is given back when dropped.
    fn slot(&self) -> Slot<'_> {
        let mut n = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= MAX_IN_FLIGHT {
            n = self.slot_freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        Slot(self)
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

/// One operation's place among the `MAX_IN_FLIGHT`.
struct Slot<'a>(&'a Scopes);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut n = self.0.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        self.0.slot_freed.notify_one();
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

fn lock(idle: &Mutex<Vec<Connection>>) -> MutexGuard<'_, Vec<Connection>> {
    // The list holds no invariant a panicking holder could break.
    idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Waits for the idle connections to become readable and drops what systemd sent them,
/// until the `Scopes` goes away.
fn drain_idle(idle: Weak<Mutex<Vec<Connection>>>) {
    loop {
        let Some(pool) = idle.upgrade() else { return };
        // Poll duplicates of the sockets: an operation may take and close a connection
        // while this thread waits on it.
        let watched: Vec<std::os::fd::OwnedFd> = lock(&pool)
            .iter()
            .filter_map(|c| c.as_fd().try_clone_to_owned().ok())
            .collect();
        drop(pool);
        let mut fds: Vec<libc::pollfd> = watched
            .iter()
            .map(|fd| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let readable = if fds.is_empty() {
            std::thread::sleep(Duration::from_millis(DRAIN_POLL_MS as u64));
            false
        } else {
            // SAFETY: `fds` is a valid array of pollfds for descriptors `watched` keeps
            // open for the duration of the call.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, DRAIN_POLL_MS) > 0 }
        };
        if readable {
            let Some(pool) = idle.upgrade() else { return };
            // Connections systemd closed are dropped.
            lock(&pool).retain_mut(|c| c.discard_pending().is_ok());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn operations_beyond_the_bound_wait_for_a_place() {
        let scopes = Scopes::new(SystemdSettings {
            slice: "t.slice".into(),
            slice_path: PathBuf::from("t.slice"),
        });
        let now = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..(MAX_IN_FLIGHT * 3) {
                s.spawn(|| {
                    let _slot = scopes.slot();
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    now.fetch_sub(1, Ordering::SeqCst);
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(
            done.load(Ordering::SeqCst),
            MAX_IN_FLIGHT * 3,
            "all got through"
        );
        assert_eq!(most.load(Ordering::SeqCst), MAX_IN_FLIGHT);
        assert_eq!(
            *scopes.in_flight.lock().expect("lock"),
            0,
            "every place given back"
        );
    }
}
