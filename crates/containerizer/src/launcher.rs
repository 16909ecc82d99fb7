//! The Linux side of a launch: cgroups, the supervisor's spec, the spawn, the handshake.
//! Blocking code; the containerizer runs it on the blocking pool.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use holdfast_api::v1::{rlimit_resource, scalar_sum, ContainerId};
use holdfast_cgroups::{Cgroup, Hierarchy};
use holdfast_checkpoint::{ContainerRecord, RuntimeStore, SupervisorRecord};
use holdfast_process::{spawn, PidFd, SpawnRequest};
use holdfast_supervisor::{RlimitSpec, SupervisorSpec, UserSpec, GO_FD, READY_FD, SPEC_VERSION};

use holdfast_isolation::{ContainerLimits, Controllers};

use crate::layout;
use crate::scope::Scopes;
use crate::{isolate, ContainerError};

/// Runs once the supervisor exists and before it may start the workload: puts it where
/// the container lives and returns the limits that are not enforced.
type Place<'a> = &'a mut dyn FnMut(i32) -> Result<Vec<String>, ContainerError>;

/// Default `PATH` of a workload whose environment sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long a supervisor may take to report that the workload started.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Launched {
    pub supervisor: SupervisorRecord,
    pub pidfd: PidFd,
    /// Asked-for limits that are not enforced, in words.
    pub unenforced: Vec<String>,
}

pub struct Launcher {
    pub hierarchy: Hierarchy,
    pub cgroups_root: PathBuf,
    pub runtime: RuntimeStore,
    pub supervisor_exe: PathBuf,
    pub grace_period: Duration,
    /// See [`crate::Config::workload_nofile`].
    pub workload_nofile: Option<(u64, u64)>,
    /// See [`crate::Config::isolation`].
    pub isolation: Controllers,
    /// Present when containers become systemd scopes.
    pub scopes: Option<Scopes>,
}

impl Launcher {
    /// The container's cgroup, relative to the mount: where it was launched, or the
    /// `--cgroups_root` layout for records that predate recording it.
    pub fn cgroup_rel(&self, record: &ContainerRecord) -> PathBuf {
        record
            .cgroup
            .clone()
            .unwrap_or_else(|| layout::cgroup_path(&self.cgroups_root, &record.container_id))
    }

    pub fn cgroup_of(&self, record: &ContainerRecord) -> Cgroup {
        self.hierarchy.cgroup(self.cgroup_rel(record))
    }

    /// Where controllers may be enabled for `cgroup_rel`: from its scope down under
    /// systemd (the cgroups above a scope are systemd's), else from the mount root.
    pub fn delegation_base(cgroup_rel: &Path) -> PathBuf {
        let mut base = PathBuf::new();
        for c in cgroup_rel.components() {
            base.push(c);
            if c.as_os_str()
                .to_str()
                .is_some_and(|n| n.ends_with(".scope"))
            {
                return base;
            }
        }
        PathBuf::new()
    }

    /// Removes what is left of a container: its cgroups (killing any process still
    /// there) and, under systemd, its scope. With `kill_scope` the whole scope is
    /// SIGKILLed first, for containers that may still run (orphans).
    pub fn destroy(
        &self,
        cgroup_rel: &Path,
        unit: Option<&str>,
        kill_scope: bool,
        timeout: Duration,
    ) -> Result<(), ContainerError> {
        let scope = unit.zip(self.scopes.as_ref());
        if let (Some((unit, scopes)), true) = (scope, kill_scope) {
            scopes.kill(unit).map_err(|e| {
                ContainerError::internal(format!("cannot kill systemd scope {unit}"), e)
            })?;
        }
        self.hierarchy
            .cgroup(cgroup_rel)
            .destroy(timeout)
            .map_err(|e| {
                ContainerError::internal(
                    format!("cannot destroy cgroup {}", cgroup_rel.display()),
                    e,
                )
            })?;
        if let Some((unit, scopes)) = scope {
            // systemd removes an empty scope by itself; wait for it if it has not yet, so
            // that no unit outlives its container.
            if self.hierarchy.cgroup(scopes.scope_path(unit)).exists() {
                scopes.stop(unit).map_err(|e| {
                    ContainerError::internal(format!("cannot stop systemd scope {unit}"), e)
                })?;
            }
        }
        Ok(())
    }

    /// SIGKILLs every process of the container: through its scope under systemd (falling
    /// back to its cgroup if systemd cannot be asked), else through its cgroup.
    pub fn kill(&self, record: &ContainerRecord) -> Result<(), ContainerError> {
        let id = &record.container_id;
        if let (Some(unit), Some(scopes)) = (&record.unit, &self.scopes) {
            match scopes.kill(unit) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(container = %id, unit, error = %crate::error_chain(&e), "cannot kill through the scope; killing the cgroup");
                }
            }
        }
        self.cgroup_of(record)
            .kill()
            .map_err(|e| ContainerError::internal(format!("cannot kill container {id}"), e))
    }

    /// Where a new container goes: its cgroup and, for a top-level container under
    /// systemd, its scope. A nested container goes inside its parent.
    pub fn place(
        &self,
        id: &ContainerId,
        parent: Option<&ContainerRecord>,
    ) -> Result<(PathBuf, Option<String>), ContainerError> {
        if let Some(parent) = parent {
            let mut p = self.cgroup_rel(parent);
            p.push(layout::NESTED);
            p.push(&id.value);
            return Ok((p, None));
        }
        match &self.scopes {
            Some(scopes) => {
                let unit = layout::scope_name(id);
                if unit.len() > holdfast_systemd::names::MAX_UNIT_NAME {
                    return Err(ContainerError::Invalid(format!(
                        "container id '{id}' is too long for a systemd unit name ({} bytes as '{unit}', at most {}): use a shorter id",
                        unit.len(),
                        holdfast_systemd::names::MAX_UNIT_NAME
                    )));
                }
                Ok((
                    layout::scoped_cgroup_path(scopes.slice_path(), id),
                    Some(unit),
                ))
            }
            None => Ok((layout::cgroup_path(&self.cgroups_root, id), None)),
        }
    }

    /// Builds what the supervisor runs: shell or argv form, as `CommandInfo` says.
    pub fn spec(
        &self,
        record: &ContainerRecord,
        leaf: &Path,
    ) -> Result<SupervisorSpec, ContainerError> {
        let cmd = record.command.clone().unwrap_or_default();
        let value = cmd.value.clone().unwrap_or_default();
        let (program, argv) = if cmd.is_shell() {
            (
                "/bin/sh".to_string(),
                vec!["sh".to_string(), "-c".to_string(), value],
            )
        } else {
            // Mesos: `arguments` is the whole argv, argv[0] included.
            let argv = if cmd.arguments.is_empty() {
                vec![value.clone()]
            } else {
                cmd.arguments.clone()
            };
            (value, argv)
        };
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), DEFAULT_PATH.into()),
            ("MESOS_SANDBOX".into(), record.sandbox.display().to_string()),
            ("MESOS_CONTAINER_ID".into(), record.container_id.to_string()),
        ];
        if let Some(cpus) = scalar_sum(&record.resources, "cpus") {
            env.push(("MESOS_ALLOCATED_CPUS".into(), cpus.to_string()));
        }
        for var in cmd.environment.iter().flat_map(|e| e.variables.iter()) {
            let value = var.value.clone().unwrap_or_default();
            match env.iter_mut().find(|(k, _)| *k == var.name) {
                Some(slot) => slot.1 = value,
                None => env.push((var.name.clone(), value)),
            }
        }
        let mut rlimits = Vec::new();
        for r in record
            .container
            .iter()
            .filter_map(|c| c.rlimit_info.as_ref())
            .flat_map(|i| i.rlimits.iter())
        {
            let resource = rlimit_resource(&r.kind).ok_or_else(|| {
                ContainerError::Invalid(format!("unknown rlimit type '{}'", r.kind))
            })?;
            if let (Some(s), Some(h)) = (r.soft, r.hard) {
                if s > h {
                    return Err(ContainerError::Invalid(format!(
                        "rlimit {}: soft limit {s} is above hard limit {h}",
                        r.kind
                    )));
                }
            }
            rlimits.push(RlimitSpec {
                resource,
                soft: r.soft,
                hard: r.hard,
            });
        }
        let nofile = libc::RLIMIT_NOFILE as i32;
        if let Some((soft, hard)) = self.workload_nofile {
            if !rlimits.iter().any(|r| r.resource == nofile) {
                let finite = |v: u64| (v != libc::RLIM_INFINITY).then_some(v);
                rlimits.push(RlimitSpec {
                    resource: nofile,
                    soft: finite(soft),
                    hard: finite(hard),
                });
            }
        }
        Ok(SupervisorSpec {
            version: SPEC_VERSION,
            container_id: record.container_id.to_string(),
            leaf_cgroup: leaf.to_path_buf(),
            sandbox: record.sandbox.clone(),
            program,
            argv,
            env,
            user: cmd.user.as_deref().map(resolve_user).transpose()?,
            rlimits,
            grace_period_secs: self.grace_period.as_secs_f64(),
        })
    }

    /// Creates the container's cgroups (and scope) and sandbox and starts its supervisor.
    /// On error nothing of the container is left running.
    pub fn launch(
        &self,
        record: &ContainerRecord,
        limits: &ContainerLimits,
    ) -> Result<Launched, ContainerError> {
        let id = &record.container_id;
        let cgroup_rel = self.cgroup_rel(record);
        if let Some(unit) = &record.unit {
            let scopes = self.scopes.as_ref().ok_or_else(|| {
                ContainerError::LaunchFailed(format!(
                    "container '{id}' is placed in systemd scope {unit} but systemd support is off"
                ))
            })?;
            return self.launch_in_scope(record, limits, &cgroup_rel, unit, scopes);
        }
        let (cgroup, unenforced) = isolate::create_limited_within(
            &self.hierarchy,
            &Self::delegation_base(&cgroup_rel),
            &cgroup_rel,
            limits,
            &self.isolation,
        )?;
        let leaf = cgroup.child(layout::LEAF);
        leaf.create().map_err(|e| {
            ContainerError::internal(format!("cannot create leaf cgroup for '{id}'"), e)
        })?;
        let result = self
            .start_supervisor(record, &leaf, &leaf, None)
            .map(|mut l| {
                l.unenforced = unenforced;
                l
            });
        if result.is_err() {
            // Best effort: the error being returned is the one worth reporting.
            let _ = cgroup.destroy(Duration::from_secs(5));
        }
        result
    }

    /// A top-level container under systemd. A scope cannot be created empty, so the
    /// supervisor starts in the agent's own cgroup, held before it runs anything; the
    /// scope is created around it, the container's cgroups inside the scope, and the
    /// supervisor moves into the leaf before the limits are written and it may go on.
    fn launch_in_scope(
        &self,
        record: &ContainerRecord,
        limits: &ContainerLimits,
        cgroup_rel: &Path,
        unit: &str,
        scopes: &Scopes,
    ) -> Result<Launched, ContainerError> {
        let id = &record.container_id;
        let scope_rel = scopes.scope_path(unit);
        let leaf_rel = cgroup_rel.join(layout::LEAF);
        let leaf = self.hierarchy.cgroup(&leaf_rel);
        let own = self
            .hierarchy
            .own_cgroup()
            .map_err(|e| ContainerError::internal("cannot read the agent's own cgroup", e))?;
        let own = self.hierarchy.cgroup(own);
        let mut place = |pid: i32| -> Result<Vec<String>, ContainerError> {
            scopes
                .start(
                    unit,
                    pid,
                    &format!("Holdfast container {id}"),
                    limits.scope_properties(&self.isolation),
                )
                .map_err(|e| {
                    ContainerError::internal(format!("cannot create systemd scope {unit}"), e)
                })?;
            // The scope holds the supervisor until it moves to the leaf, and a cgroup
            // with processes cannot hand controllers down: cgroups first, limits last.
            self.hierarchy
                .create_path_within(&scope_rel, &leaf_rel, &[])
                .map_err(|e| {
                    ContainerError::internal(format!("cannot create the cgroups of '{id}'"), e)
                })?;
            leaf.add_proc(pid).map_err(|e| {
                ContainerError::internal(format!("cannot move the supervisor of '{id}'"), e)
            })?;
            let (_, unenforced) = isolate::create_limited_within(
                &self.hierarchy,
                &scope_rel,
                cgroup_rel,
                limits,
                &self.isolation,
            )?;
            Ok(unenforced)
        };
        let result = self.start_supervisor(record, &own, &leaf, Some(&mut place));
        if result.is_err() {
            // The supervisor is gone (or never placed); make sure the scope is too.
            if let Err(e) = scopes.stop(unit) {
                tracing::warn!(container = %id, unit, error = %crate::error_chain(&e), "cannot stop the scope of a failed launch");
            }
        }
        result
    }

    /// Spawns the supervisor into `spawn_into` and waits for its answer. With `place`, it
    /// is held on the go pipe until `place` has put it where it belongs.
    fn start_supervisor(
        &self,
        record: &ContainerRecord,
        spawn_into: &Cgroup,
        leaf: &Cgroup,
        place: Option<Place<'_>>,
    ) -> Result<Launched, ContainerError> {
        let id = &record.container_id;
        fs::create_dir_all(&record.sandbox).map_err(|e| {
            ContainerError::internal(
                format!("cannot create sandbox {}", record.sandbox.display()),
                e,
            )
        })?;
        let dir = self.runtime.create_container_dir(id).map_err(|e| {
            ContainerError::internal(format!("cannot create runtime dir for '{id}'"), e)
        })?;
        let spec = self.spec(record, leaf.path())?;
        let spec_path = RuntimeStore::spec_path(&dir);
        let data = serde_json::to_vec(&spec)
            .map_err(|e| ContainerError::internal("cannot encode spec", e))?;
        fs::write(&spec_path, data).map_err(|e| {
            ContainerError::internal(format!("cannot write {}", spec_path.display()), e)
        })?;

        let cgroup_fd = spawn_into
            .open_dir_fd()
            .map_err(|e| ContainerError::internal("cannot open the supervisor's cgroup", e))?;
        let procs = OpenOptions::new()
            .write(true)
            .open(spawn_into.path().join("cgroup.procs"))
            .map_err(|e| ContainerError::internal("cannot open cgroup.procs", e))?;
        let devnull = File::open("/dev/null")
            .map_err(|e| ContainerError::internal("cannot open /dev/null", e))?;
        let log_path = dir.join("supervisor.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| {
                ContainerError::internal(format!("cannot open {}", log_path.display()), e)
            })?;
        let (mut ready_read, ready_write) =
            pipe().map_err(|e| ContainerError::internal("cannot create pipe", e))?;

        let exe = cstring(self.supervisor_exe.as_os_str().as_bytes())?;
        let argv = [
            c"holdfast-supervisor".to_owned(),
            cstring(dir.as_os_str().as_bytes())?,
        ];
        let envp = [c"PATH=/usr/sbin:/usr/bin:/sbin:/bin".to_owned()];
        let go = match place {
            Some(_) => Some(pipe().map_err(|e| ContainerError::internal("cannot create pipe", e))?),
            None => None,
        };
        let mut fds = vec![
            (devnull.as_raw_fd(), 0),
            (log.as_raw_fd(), 1),
            (log.as_raw_fd(), 2),
            (ready_write.as_raw_fd(), READY_FD),
        ];
        if let Some((go_read, _)) = &go {
            fds.push((go_read.as_raw_fd(), GO_FD));
        }
        let spawned = spawn(&SpawnRequest {
            program: &exe,
            argv: &argv,
            envp: &envp,
            cgroup: cgroup_fd.as_fd(),
            cgroup_procs: procs.as_fd(),
            fds: &fds,
            new_session: true,
        })
        .map_err(|e| {
            ContainerError::internal(format!("cannot start the supervisor of '{id}'"), e)
        })?;
        drop(ready_write);
        let mut unenforced = Vec::new();
        if let (Some(place), Some((go_read, mut go_write))) = (place, go) {
            drop(go_read);
            let placed = place(spawned.pidfd.pid()).and_then(|u| {
                go_write
                    .write_all(b"g")
                    .map_err(|e| ContainerError::internal("cannot release the supervisor", e))
                    .map(|()| u)
            });
            match placed {
                Ok(u) => unenforced = u,
                Err(e) => {
                    // Closing the go pipe makes it exit without running anything.
                    drop(go_write);
                    let _ = spawned.pidfd.send_signal(libc::SIGKILL);
                    reap_soon(&spawned.pidfd);
                    return Err(e);
                }
            }
        }

        let answer = read_ready(&mut ready_read).map_err(|e| {
            let _ = spawned.pidfd.send_signal(libc::SIGKILL);
            ContainerError::internal(format!("no answer from the supervisor of '{id}'"), e)
        })?;
        match answer.trim_end().strip_prefix("error: ") {
            None if answer.trim_end() == "ok" => {}
            Some(reason) => {
                reap_soon(&spawned.pidfd);
                return Err(ContainerError::LaunchFailed(reason.to_string()));
            }
            None => {
                // The pipe closed without an answer: the supervisor is gone, and how it
                // ended (a signal, an exit status) is what an operator needs to know.
                let how = match reap_within(&spawned.pidfd, Duration::from_secs(1)) {
                    Some(status) => describe_exit(status),
                    None => {
                        let _ = spawned.pidfd.send_signal(libc::SIGKILL);
                        reap_soon(&spawned.pidfd);
                        "closed its answer pipe and was killed".to_owned()
                    }
                };
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                return Err(ContainerError::LaunchFailed(format!(
                    "the supervisor exited before the workload started ({how}): {}",
                    log.lines().last().unwrap_or("no output")
                )));
            }
        }
        let supervisor = self
            .runtime
            .supervisor(id)
            .map_err(|e| ContainerError::internal("cannot read the supervisor's record", e))?
            .ok_or_else(|| {
                ContainerError::LaunchFailed("the supervisor reported no pids".into())
            })?;
        Ok(Launched {
            supervisor,
            pidfd: spawned.pidfd,
            unenforced,
        })
    }
}

fn cstring(bytes: &[u8]) -> Result<CString, ContainerError> {
    CString::new(bytes).map_err(|_| ContainerError::Invalid("path contains a NUL byte".into()))
}

fn pipe() -> std::io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: a valid array of two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two fresh fds that only we own.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// Reads the supervisor's one-line answer, bounded by [`READY_TIMEOUT`]. EOF without a
/// line means the supervisor died first.
fn read_ready(pipe: &mut File) -> std::io::Result<String> {
    let mut pfd = libc::pollfd {
        fd: pipe.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, READY_TIMEOUT.as_millis() as i32) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if n == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out",
        ));
    }
    let mut s = String::new();
    pipe.take(4096).read_to_string(&mut s)?;
    Ok(s)
}

/// Reaps a supervisor that is exiting, so a failed launch leaves no zombie.
fn reap_soon(pidfd: &PidFd) {
    reap_within(pidfd, Duration::from_secs(1));
}

/// Reaps the process if it ends within `limit`; its wait status.
fn reap_within(pidfd: &PidFd, limit: Duration) -> Option<i32> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = pidfd.try_reap() {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A wait status in words: "exit status 1", "killed by signal 11".
fn describe_exit(status: i32) -> String {
    if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exit status {}", libc::WEXITSTATUS(status))
    }
}

/// Resolves the launch's user here, in the agent: the supervisor gets plain ids.
fn resolve_user(name: &str) -> Result<UserSpec, ContainerError> {
    let user = holdfast_process::lookup_user(name).map_err(ContainerError::LaunchFailed)?;
    Ok(UserSpec {
        name: name.to_string(),
        uid: user.uid,
        gid: user.gid,
        groups: user.groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::SystemdSettings;
    use holdfast_checkpoint::records::VERSION;

    fn launcher(systemd: bool) -> Launcher {
        Launcher {
            hierarchy: Hierarchy::at("/nonexistent"),
            cgroups_root: PathBuf::from("hf"),
            runtime: RuntimeStore::new(Path::new("/nonexistent")),
            supervisor_exe: PathBuf::from("/nonexistent"),
            grace_period: Duration::from_secs(1),
            workload_nofile: None,
            isolation: Controllers::default(),
            scopes: systemd.then(|| {
                Scopes::new(SystemdSettings {
                    slice: "a-b.slice".into(),
                    slice_path: PathBuf::from("a.slice/a-b.slice"),
                })
            }),
        }
    }

    fn record(id: ContainerId, cgroup: Option<&str>) -> ContainerRecord {
        ContainerRecord {
            version: VERSION,
            container_id: id,
            command: None,
            resources: Vec::new(),
            container: None,
            limits: Default::default(),
            sandbox: PathBuf::from("/s"),
            launched_at: 0.0,
            cgroup: cgroup.map(PathBuf::from),
            unit: None,
        }
    }

    #[test]
    fn placement_follows_the_mode_and_the_parent() {
        let top = ContainerId::new("c");
        assert_eq!(
            launcher(false).place(&top, None).expect("place"),
            (PathBuf::from("hf/c"), None)
        );
        assert_eq!(
            launcher(true).place(&top, None).expect("place"),
            (
                PathBuf::from("a.slice/a-b.slice/holdfast-c.scope/container"),
                Some("holdfast-c.scope".to_string())
            )
        );
        // A nested container goes where its parent was launched, whatever the mode now.
        let parent = record(top.clone(), Some("x.slice/holdfast-c.scope/container"));
        assert_eq!(
            launcher(false)
                .place(&top.child("n"), Some(&parent))
                .expect("place"),
            (
                PathBuf::from("x.slice/holdfast-c.scope/container/containers/n"),
                None
            )
        );
        // Records from before the cgroup was recorded: the --cgroups_root layout.
        assert_eq!(
            launcher(true).cgroup_rel(&record(top, None)),
            PathBuf::from("hf/c")
        );
    }

    #[test]
    fn ids_too_long_for_a_unit_name_are_refused_under_systemd() {
        let long = ContainerId::new("x".repeat(holdfast_api::v1::MAX_ID_LEN));
        assert!(matches!(
            launcher(true).place(&long, None),
            Err(ContainerError::Invalid(m)) if m.contains("too long for a systemd unit name")
        ));
        assert!(launcher(false).place(&long, None).is_ok());
    }

    #[test]
    fn controllers_are_delegated_from_the_scope_down() {
        assert_eq!(
            Launcher::delegation_base(Path::new("s.slice/holdfast-c.scope/container/containers/n")),
            PathBuf::from("s.slice/holdfast-c.scope")
        );
        assert_eq!(Launcher::delegation_base(Path::new("hf/c")), PathBuf::new());
    }
}
