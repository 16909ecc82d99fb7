//! The Linux side of a launch: cgroups, the supervisor's spec, the spawn, the handshake.
//! Blocking code; the containerizer runs it on the blocking pool.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use holdfast_api::v1::{rlimit_resource, scalar_sum, ContainerId};
use holdfast_cgroups::{Cgroup, Hierarchy};
use holdfast_checkpoint::{ContainerRecord, RuntimeStore, SupervisorRecord};
use holdfast_process::{spawn, PidFd, SpawnRequest};
use holdfast_supervisor::{RlimitSpec, SupervisorSpec, UserSpec, READY_FD, SPEC_VERSION};

use holdfast_isolation::{ContainerLimits, Controllers};

use crate::layout;
use crate::{isolate, ContainerError};

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
}

impl Launcher {
    pub fn cgroup(&self, id: &ContainerId) -> Cgroup {
        self.hierarchy
            .cgroup(layout::cgroup_path(&self.cgroups_root, id))
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

    /// Creates the container's cgroups and sandbox and starts its supervisor. On error
    /// nothing of the container is left running.
    pub fn launch(
        &self,
        record: &ContainerRecord,
        limits: &ContainerLimits,
    ) -> Result<Launched, ContainerError> {
        let id = &record.container_id;
        let cgroup_rel = layout::cgroup_path(&self.cgroups_root, id);
        let (cgroup, unenforced) =
            isolate::create_limited(&self.hierarchy, &cgroup_rel, limits, &self.isolation)?;
        let leaf = cgroup.child(layout::LEAF);
        leaf.create().map_err(|e| {
            ContainerError::internal(format!("cannot create leaf cgroup for '{id}'"), e)
        })?;
        let result = self.start_supervisor(record, &leaf).map(|mut l| {
            l.unenforced = unenforced;
            l
        });
        if result.is_err() {
            // Best effort: the error being returned is the one worth reporting.
            let _ = cgroup.destroy(Duration::from_secs(5));
        }
        result
    }

    fn start_supervisor(
        &self,
        record: &ContainerRecord,
        leaf: &Cgroup,
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

        let cgroup_fd = leaf
            .open_dir_fd()
            .map_err(|e| ContainerError::internal("cannot open leaf cgroup", e))?;
        let procs = OpenOptions::new()
            .write(true)
            .open(leaf.path().join("cgroup.procs"))
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
        let fds = [
            (devnull.as_raw_fd(), 0),
            (log.as_raw_fd(), 1),
            (log.as_raw_fd(), 2),
            (ready_write.as_raw_fd(), READY_FD),
        ];
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
                let _ = spawned.pidfd.send_signal(libc::SIGKILL);
                reap_soon(&spawned.pidfd);
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                return Err(ContainerError::LaunchFailed(format!(
                    "the supervisor exited before the workload started: {}",
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
            unenforced: Vec::new(),
        })
    }
}

fn cstring(bytes: &[u8]) -> Result<CString, ContainerError> {
    CString::new(bytes).map_err(|_| ContainerError::Invalid("path contains a NUL byte".into()))
}

fn pipe() -> std::io::Result<(File, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: a valid array of two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two fresh fds that only we own.
    Ok(unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
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
    for _ in 0..1000 {
        if let Ok(Some(_)) = pidfd.try_reap() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
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
