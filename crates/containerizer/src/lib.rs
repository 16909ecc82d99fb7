//! The containerizer: launches containers, watches them, kills and removes them, and
//! recovers them after an agent restart.
//!
//! It owns the container registry. HTTP handlers call its methods; no lock is held across
//! an await or a blocking call, and the blocking Linux work runs on tokio's blocking pool.
//!
//! Modules: [`layout`] (paths, pure), [`recovery`] (the recovery plan, pure), [`launcher`]
//! (cgroups, supervisor spawn; Linux).

pub mod isolate;
pub mod launcher;
pub mod layout;
pub mod recovery;
pub mod scope;

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use holdfast_api::agent::{ContainerEntry, LaunchContainer, UpdateContainer};
use holdfast_api::v1::{ContainerId, ContainerStatus};
use holdfast_cgroups::Hierarchy;
use holdfast_checkpoint::records::{now_secs, VERSION};
use holdfast_checkpoint::{
    CheckpointError, ContainerRecord, MetaStore, RuntimeStore, SupervisorRecord, TerminationRecord,
};
use holdfast_isolation::{
    decide_memory_max, statistics, ContainerLimits, Controllers, MemoryMaxDecision,
    Settings as LimitSettings,
};
use holdfast_process::{PidFd, ProcessIdentity};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use crate::launcher::Launcher;
use crate::recovery::{Observation, Outcome};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("Container {0} cannot be found")]
    NotFound(ContainerId),
    #[error("Container '{0}' cannot be found (or is already killed)")]
    KillNotFound(ContainerId),
    #[error("Parent container {0} cannot be found")]
    ParentNotFound(ContainerId),
    #[error("Parent container {0} is not running")]
    ParentNotRunning(ContainerId),
    #[error("Container {0} is still running: kill it and wait for it before removing it")]
    StillRunning(ContainerId),
    #[error("Container {0} is still being launched: try again once the launch completes")]
    StillLaunching(ContainerId),
    #[error("{0}")]
    Invalid(String),
    /// The request is valid but cannot be applied in the container's current state.
    #[error("{0}")]
    Conflict(String),
    #[error("Failed to launch container: {0}")]
    LaunchFailed(String),
    #[error("{context}")]
    Internal {
        context: String,
        #[source]
        source: BoxError,
    },
}

impl ContainerError {
    pub fn internal(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        ContainerError::Internal {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Recovery failed and the agent must not serve.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("failed to recover checkpoints (use --strict=false to skip corrupt ones)")]
    Checkpoint(#[source] CheckpointError),
    #[error("{0}")]
    Setup(String),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: BoxError,
    },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub work_dir: PathBuf,
    pub runtime_dir: PathBuf,
    pub hierarchy: Hierarchy,
    /// Relative to the hierarchy's mount.
    pub cgroups_root: PathBuf,
    pub destroy_timeout: Duration,
    pub grace_period: Duration,
    pub strict: bool,
    /// The `holdfast-supervisor` binary each container runs under.
    pub supervisor_exe: PathBuf,
    /// `RLIMIT_NOFILE` (soft, hard) of workloads that set none: the host's default, since
    /// the agent raises its own.
    pub workload_nofile: Option<(u64, u64)>,
    /// Controllers `--isolation` enables.
    pub isolation: Controllers,
    /// How resources turn into limits (the `--cgroups_*` flags).
    pub limit_settings: LimitSettings,
    /// Containers become systemd scopes in this slice (`--systemd_enable_support`).
    pub systemd: Option<scope::SystemdSettings>,
}

/// What recovery did, for the log and the metrics.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RecoveryReport {
    pub reattached: usize,
    pub ended: usize,
    pub orphans_destroyed: Vec<String>,
    pub skipped_checkpoints: Vec<String>,
    /// Running containers with a process outside the cgroup they were launched in: their
    /// isolation is lost. One line each, saying where the process was found.
    pub misplaced: Vec<String>,
    pub rebooted: bool,
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Launching,
    Running,
    Ended(TerminationRecord),
}

struct Entry {
    record: ContainerRecord,
    /// What the record's resources and limits mean under the current flags.
    limits: ContainerLimits,
    /// Asked-for limits that are not enforced, in words (GET_CONTAINERS shows them).
    unenforced: Vec<String>,
    phase: Phase,
    supervisor: Option<SupervisorRecord>,
    /// The agent killed it: a missing exit record then means SIGKILL.
    killed: bool,
    done: watch::Sender<Option<TerminationRecord>>,
}

struct Inner {
    cfg: Config,
    meta: MetaStore,
    launcher: Launcher,
    entries: Mutex<HashMap<ContainerId, Entry>>,
    metrics: Counters,
}

#[derive(Default)]
struct Counters {
    launch_errors: AtomicU64,
    /// Containers found outside their cgroup at the last recovery.
    misplaced: AtomicU64,
}

#[derive(Clone)]
pub struct Containerizer {
    inner: Arc<Inner>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchOutcome {
    Launched,
    AlreadyLaunched,
}

fn blocking_failed(e: tokio::task::JoinError) -> ContainerError {
    ContainerError::internal("a blocking task failed", e)
}

impl Containerizer {
    fn entries(&self) -> MutexGuard<'_, HashMap<ContainerId, Entry>> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    pub fn config(&self) -> &Config {
        &self.inner.cfg
    }

    /// Recovers every container this agent knew and returns a containerizer that serves
    /// them. See [`recovery`] for the cases.
    pub async fn recover(cfg: Config) -> Result<(Containerizer, RecoveryReport), RecoveryError> {
        let started = Instant::now();
        let meta = MetaStore::new(&cfg.work_dir);
        let runtime = RuntimeStore::new(&cfg.runtime_dir);
        let launcher = Launcher {
            hierarchy: cfg.hierarchy.clone(),
            cgroups_root: cfg.cgroups_root.clone(),
            runtime: runtime.clone(),
            supervisor_exe: cfg.supervisor_exe.clone(),
            grace_period: cfg.grace_period,
            workload_nofile: cfg.workload_nofile,
            isolation: cfg.isolation.clone(),
            scopes: cfg.systemd.clone().map(scope::Scopes::new),
        };
        let inner = Arc::new(Inner {
            cfg: cfg.clone(),
            meta: meta.clone(),
            launcher,
            entries: Mutex::new(HashMap::new()),
            metrics: Counters::default(),
        });
        let this = Containerizer { inner };
        let c = this.clone();
        let (report, reattach) = tokio::task::spawn_blocking(move || c.recover_blocking())
            .await
            .map_err(|e| RecoveryError::Io {
                context: "recovery task failed".into(),
                source: e.into(),
            })??;
        for (id, pidfd) in reattach {
            this.watch(id, pidfd);
        }
        let mut report = report;
        report.duration = started.elapsed();
        this.inner
            .metrics
            .misplaced
            .store(report.misplaced.len() as u64, Ordering::Relaxed);
        Ok((this, report))
    }

    fn recover_blocking(
        &self,
    ) -> Result<(RecoveryReport, Vec<(ContainerId, PidFd)>), RecoveryError> {
        let cfg = &self.inner.cfg;
        let meta = &self.inner.meta;
        let runtime = &self.inner.launcher.runtime;
        let io = |context: String| move |e: BoxError| RecoveryError::Io { context, source: e };

        // The agent must not be inside the subtree it manages: destroying an orphan would
        // kill the agent itself.
        let own = cfg
            .hierarchy
            .own_cgroup()
            .map_err(|e| io("cannot read own cgroup".into())(e.into()))?;
        let own_rel = own.strip_prefix("/").unwrap_or(&own);
        if own_rel.starts_with(&cfg.cgroups_root) {
            return Err(RecoveryError::Setup(format!(
                "the agent runs in cgroup /{} inside --cgroups_root {}; start it in another cgroup or choose another --cgroups_root",
                own_rel.display(),
                cfg.cgroups_root.display()
            )));
        }
        if let Some(systemd) = &cfg.systemd {
            if own_rel.starts_with(&systemd.slice_path) {
                return Err(RecoveryError::Setup(format!(
                    "the agent runs in cgroup /{} inside its containers' slice {}; start it in another unit or choose another --systemd_containers_slice",
                    own_rel.display(),
                    systemd.slice
                )));
            }
        } else {
            cfg.hierarchy
                .create_path(&cfg.cgroups_root, &[])
                .map_err(|e| {
                    io(format!(
                        "cannot create cgroup root {}",
                        cfg.cgroups_root.display()
                    ))(e.into())
                })?;
        }

        let boot_id = holdfast_process::boot_id()
            .map_err(|e| io("cannot read the boot id".into())(e.into()))?;
        let last_boot = meta.boot_id().map_err(RecoveryError::Checkpoint)?;
        let rebooted = last_boot.as_deref().is_some_and(|b| b != boot_id);

        let loaded = meta.load(cfg.strict).map_err(RecoveryError::Checkpoint)?;
        let mut report = RecoveryReport {
            rebooted,
            ..Default::default()
        };
        for skipped in &loaded.skipped {
            tracing::warn!(error = %skipped, "skipping corrupt checkpoint (--strict=false)");
            report.skipped_checkpoints.push(skipped.to_string());
        }
        for unreadable in &loaded.unreadable_copies {
            tracing::warn!(error = %unreadable, "ignoring an unreadable copy of a supervisor record; using the runtime record");
        }

        // Observe each container: its supervisor's identity, its exit record.
        let mut pidfds: HashMap<ContainerId, PidFd> = HashMap::new();
        let mut observations = Vec::with_capacity(loaded.containers.len());
        for lc in loaded.containers {
            let id = lc.record.container_id.clone();
            let supervisor = match lc.supervisor {
                Some(s) => Some(s),
                None => runtime.supervisor(&id).ok().flatten(),
            };
            let mut alive = false;
            if let (Some(sup), None, false) = (supervisor, &lc.termination, rebooted) {
                // Open first, then check the start time: the fd cannot then name a
                // process that reused the pid.
                if let Ok(fd) = PidFd::open(sup.pid) {
                    let ident = ProcessIdentity {
                        pid: sup.pid,
                        start_time: sup.start_time,
                    };
                    if ident.is_current() && !fd.has_exited().unwrap_or(true) {
                        alive = true;
                        pidfds.insert(id.clone(), fd);
                    }
                }
            }
            let exit = if alive || rebooted {
                None
            } else {
                runtime.exit(&id).ok().flatten()
            };
            let limitation = if alive || rebooted || lc.termination.is_some() {
                None
            } else {
                isolate::limitation_at_exit(
                    exit.as_ref(),
                    &self.inner.launcher.cgroup_of(&lc.record),
                )
            };
            if let (true, Some(sup)) = (alive, supervisor) {
                let expected = self
                    .inner
                    .launcher
                    .cgroup_rel(&lc.record)
                    .join(layout::LEAF);
                let found: Vec<String> = [
                    (sup.pid, sup.start_time),
                    (sup.workload_pid, sup.workload_start_time),
                ]
                .into_iter()
                .filter_map(|(pid, start)| {
                    misplaced(&cfg.hierarchy, pid, start, &expected)
                        .map(|at| format!("process {pid} in {at}"))
                })
                .collect();
                if !found.is_empty() {
                    let line = format!(
                        "container {id}: {}, not in its cgroup /{}",
                        found.join(", "),
                        expected.display()
                    );
                    tracing::warn!(container = %id, found = %found.join(", "), expected = %format!("/{}", expected.display()), "container processes were moved out of the container's cgroup: its limits no longer apply to them");
                    report.misplaced.push(line);
                }
            }
            observations.push(Observation {
                loaded: holdfast_checkpoint::LoadedContainer {
                    record: lc.record,
                    supervisor,
                    termination: lc.termination,
                },
                supervisor,
                supervisor_alive: alive,
                exit,
                limitation,
            });
        }

        let mut list = |p: &std::path::Path| {
            cfg.hierarchy.cgroup(p).children().or_else(|e| {
                if e.is_not_found() {
                    Ok(Vec::new())
                } else {
                    Err(e)
                }
            })
        };
        let mut scan = layout::scan_tree(&cfg.cgroups_root, &mut list)
            .map_err(|e| io("cannot walk the cgroup tree".into())(e.into()))?;
        if let Some(systemd) = &cfg.systemd {
            let scopes = layout::scan_scopes(&systemd.slice_path, &mut list)
                .map_err(|e| io(format!("cannot walk the slice {}", systemd.slice))(e.into()))?;
            scan.containers.extend(scopes.containers);
            scan.cgroups.extend(scopes.cgroups);
        }
        // Where each container found in the tree lives, to destroy the orphans.
        let found: HashMap<&ContainerId, &std::path::PathBuf> =
            scan.containers.iter().zip(scan.cgroups.iter()).collect();
        let plan = recovery::plan(
            &observations,
            &scan.containers,
            &scan.foreign,
            rebooted,
            now_secs(),
        );

        let launcher = &self.inner.launcher;
        let timeout = cfg.destroy_timeout;
        let mut reattach = Vec::new();
        let mut entries = self.entries();
        for (decision, obs) in plan.decisions.into_iter().zip(observations) {
            let id = decision.id;
            if decision.destroy_cgroup {
                let record = &obs.loaded.record;
                let rel = launcher.cgroup_rel(record);
                if let Err(e) = launcher.destroy(&rel, record.unit.as_deref(), true, timeout) {
                    tracing::warn!(container = %id, error = %error_chain(&e), "cannot destroy cgroup of ended container");
                }
            }
            let (phase, supervisor) = match decision.outcome {
                Outcome::Reattach(sup) => {
                    if let Some(fd) = pidfds.remove(&id) {
                        reattach.push((id.clone(), fd));
                    }
                    // Complete the checkpoint if the agent died before copying it.
                    if obs.loaded.supervisor.is_none() {
                        if let Err(e) = meta.save_supervisor(&id, &sup) {
                            tracing::warn!(container = %id, error = %error_chain(&e), "cannot checkpoint supervisor");
                        }
                    }
                    report.reattached += 1;
                    (Phase::Running, Some(sup))
                }
                Outcome::Ended {
                    termination,
                    already_recorded,
                } => {
                    if !already_recorded {
                        meta.save_termination(&id, &termination)
                            .map_err(RecoveryError::Checkpoint)?;
                        tracing::info!(container = %id, wait_status = ?termination.wait_status, message = ?termination.message, "container ended while the agent was away");
                    }
                    report.ended += 1;
                    (Phase::Ended(termination), obs.supervisor)
                }
            };
            let done = match &phase {
                Phase::Ended(t) => watch::channel(Some(t.clone())).0,
                _ => watch::channel(None).0,
            };
            let limits = recovered_limits(cfg, &obs.loaded.record);
            entries.insert(
                id,
                Entry {
                    record: obs.loaded.record,
                    limits,
                    unenforced: Vec::new(),
                    phase,
                    supervisor,
                    killed: false,
                    done,
                },
            );
        }
        drop(entries);

        for orphan in plan.orphans {
            let Some(rel) = found.get(&orphan).map(|p| p.to_path_buf()) else {
                continue;
            };
            let unit = (!orphan.is_nested()
                && Launcher::delegation_base(&rel) != std::path::Path::new(""))
            .then(|| layout::scope_name(&orphan));
            let path = cfg.hierarchy.cgroup(&rel).path().display().to_string();
            tracing::warn!(container = %orphan, cgroup = %path, unit = ?unit, "destroying unknown container (no checkpoint knows it)");
            if let Err(e) = launcher.destroy(&rel, unit.as_deref(), true, timeout) {
                tracing::warn!(cgroup = %path, error = %error_chain(&e), "cannot destroy orphan container");
            }
            report.orphans_destroyed.push(path);
        }
        for foreign in plan.foreign {
            let cg = cfg.hierarchy.cgroup(&foreign);
            tracing::warn!(cgroup = %cg.path().display(), "destroying unknown cgroup under the cgroups root");
            if let Err(e) = cg.destroy(timeout) {
                tracing::warn!(cgroup = %cg.path().display(), error = %error_chain(&e), "cannot destroy unknown cgroup");
            }
            report
                .orphans_destroyed
                .push(cg.path().display().to_string());
        }
        // Launches that never got their container.json: nothing ran that we could know of.
        for id in loaded.incomplete {
            if let Err(e) = meta.remove_container(&id) {
                tracing::warn!(container = %id, error = %error_chain(&e), "cannot remove incomplete checkpoint");
            }
        }
        // Checkpoint directories a crash left half built or half removed.
        for dir in &loaded.stale {
            if let Err(e) = std::fs::remove_dir_all(dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a stale checkpoint directory");
            }
        }
        // Runtime dirs of containers the checkpoints do not know.
        if let Ok(ids) = runtime.top_level_ids() {
            let known = self.entries();
            for name in ids {
                let id = ContainerId::new(name);
                if !known.contains_key(&id) {
                    let _ = runtime.remove_container(&id);
                }
            }
        }
        meta.save_boot_id(&boot_id)
            .map_err(RecoveryError::Checkpoint)?;
        Ok((report, reattach))
    }

    /// Watches a supervisor through its pidfd and collects the container when it exits.
    fn watch(&self, id: ContainerId, pidfd: PidFd) {
        let this = self.clone();
        tokio::spawn(async move {
            // SAFETY: a PidFd owns its fd and always returns the same one, which stays open
            // until the AsyncFd gives it back through into_inner.
            let registered =
                unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) };
            match registered {
                Ok(afd) => {
                    // A pidfd polls readable once the process exits.
                    if let Ok(mut guard) = afd.readable().await {
                        guard.retain_ready();
                    }
                    let pidfd = afd.into_inner();
                    // Our own child (launched by this agent run): reap it.
                    let _ = pidfd.try_reap();
                }
                Err(e) => {
                    let (pidfd, err) = e.into_parts();
                    tracing::error!(container = %id, error = %err, "cannot watch supervisor; polling instead");
                    while !pidfd.has_exited().unwrap_or(true) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    let _ = pidfd.try_reap();
                }
            }
            this.collect(id).await;
        });
    }

    /// The supervisor is gone: read how the workload ended, destroy what is left of the
    /// container, checkpoint the termination and wake the waiters.
    async fn collect(&self, id: ContainerId) {
        let killed = {
            let mut entries = self.entries();
            // Everything nested goes with it.
            let nested: Vec<ContainerId> = entries
                .keys()
                .filter(|k| is_descendant(k, &id))
                .cloned()
                .collect();
            for n in nested {
                if let Some(e) = entries.get_mut(&n) {
                    e.killed = true;
                }
            }
            entries.get(&id).map(|e| e.killed).unwrap_or(false)
        };
        let inner = self.inner.clone();
        let cid = id.clone();
        let parent_gone = id.parent.as_deref().is_some_and(|p| {
            self.entries()
                .get(p)
                .is_none_or(|e| e.killed || !matches!(e.phase, Phase::Running))
        });
        let record = self.entries().get(&id).map(|e| e.record.clone());
        let termination = tokio::task::spawn_blocking(move || {
            let exit = inner.launcher.runtime.exit(&cid);
            let limitation = record.as_ref().and_then(|r| {
                let exit = exit.as_ref().ok().and_then(|e| e.as_ref());
                isolate::limitation_at_exit(exit, &inner.launcher.cgroup_of(r))
            });
            if let Some(r) = &record {
                let rel = inner.launcher.cgroup_rel(r);
                if let Err(e) = inner.launcher.destroy(
                    &rel,
                    r.unit.as_deref(),
                    false,
                    inner.cfg.destroy_timeout,
                ) {
                    tracing::warn!(container = %cid, error = %error_chain(&e), "cannot destroy container cgroup");
                }
            }
            let termination = match exit {
                Ok(Some(exit)) => TerminationRecord {
                    version: VERSION,
                    wait_status: Some(exit.wait_status),
                    finished_at: exit.exited_at,
                    message: None,
                    reason: None,
                    limitation: Vec::new(),
                },
                other => {
                    if let Err(e) = other {
                        tracing::warn!(container = %cid, error = %error_chain(&e), "cannot read exit record");
                    }
                    // Killed by the agent: SIGKILL is the whole story, as in Mesos.
                    let message = if parent_gone {
                        Some(recovery::MSG_PARENT_ENDED)
                    } else if killed {
                        None
                    } else {
                        Some(recovery::MSG_SUPERVISOR_LOST)
                    };
                    TerminationRecord {
                        version: VERSION,
                        wait_status: killed.then_some(libc::SIGKILL),
                        finished_at: now_secs(),
                        message: message.map(str::to_string),
                        reason: None,
                        limitation: Vec::new(),
                    }
                }
            };
            let termination = with_limitation(termination, limitation);
            if let Err(e) = inner.meta.save_termination(&cid, &termination) {
                tracing::error!(container = %cid, error = %error_chain(&e), "cannot checkpoint termination");
            }
            termination
        })
        .await;
        let termination = match termination {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(container = %id, error = %e, "collecting the container failed");
                return;
            }
        };
        tracing::info!(container = %id, wait_status = ?termination.wait_status, "container ended");
        let mut entries = self.entries();
        if let Some(e) = entries.get_mut(&id) {
            e.phase = Phase::Ended(termination.clone());
            e.done.send_replace(Some(termination));
        }
    }

    /// LAUNCH_CONTAINER.
    pub async fn launch(&self, req: LaunchContainer) -> Result<LaunchOutcome, ContainerError> {
        let id = req.container_id.clone();
        let sandbox = {
            let entries = self.entries();
            match entries.get(&id).map(|e| &e.phase) {
                Some(Phase::Launching) | Some(Phase::Running) => {
                    return Ok(LaunchOutcome::AlreadyLaunched)
                }
                Some(Phase::Ended(_)) | None => {}
            }
            if let Some(parent) = id.parent.as_deref() {
                match entries.get(parent).map(|e| &e.phase) {
                    None => return Err(ContainerError::ParentNotFound(parent.clone())),
                    Some(Phase::Running) => {}
                    Some(_) => return Err(ContainerError::ParentNotRunning(parent.clone())),
                }
            }
            layout::sandbox_path(&self.inner.cfg.work_dir, &id)
        };
        // The id of an ended container is free again, as in Mesos: forget the old one.
        if matches!(
            self.entries().get(&id).map(|e| &e.phase),
            Some(Phase::Ended(_))
        ) {
            self.remove(&id).await?;
        }
        let share = req.container.as_ref().and_then(|c| c.share_cgroups());
        if !id.is_nested() && share == Some(true) {
            return Err(ContainerError::Invalid(
                "'container.linux_info.share_cgroups' cannot be true for a top-level container: it has no parent to share with; leave it out".into(),
            ));
        }
        let limits = if has_own_cgroup_limits(&id, share) {
            ContainerLimits::compute(&req.resources, &req.limits, &self.inner.cfg.limit_settings)
                .map_err(|e| ContainerError::Invalid(e.to_string()))?
        } else {
            ContainerLimits::default()
        };
        let parent = id
            .parent
            .as_deref()
            .and_then(|p| self.entries().get(p).map(|e| e.record.clone()));
        let (cgroup, unit) = self.inner.launcher.place(&id, parent.as_ref())?;
        let record = ContainerRecord {
            version: VERSION,
            container_id: id.clone(),
            command: req.command,
            resources: req.resources,
            container: req.container,
            limits: req.limits,
            sandbox,
            launched_at: now_secs(),
            cgroup: Some(cgroup),
            unit,
        };
        {
            let mut entries = self.entries();
            if entries.contains_key(&id) {
                // Another launch of the same id won the race.
                return Ok(LaunchOutcome::AlreadyLaunched);
            }
            entries.insert(
                id.clone(),
                Entry {
                    record: record.clone(),
                    limits: limits.clone(),
                    unenforced: Vec::new(),
                    phase: Phase::Launching,
                    supervisor: None,
                    killed: false,
                    done: watch::channel(None).0,
                },
            );
        }
        let inner = self.inner.clone();
        let rec = record.clone();
        let result = tokio::task::spawn_blocking(move || {
            // Checkpoint first: a crash after this point leaves a record that recovery
            // resolves; a crash before it leaves at most a cgroup, which is an orphan.
            inner
                .meta
                .create_container(&rec)
                .map_err(|e| ContainerError::internal("cannot checkpoint the container", e))?;
            let launched = inner.launcher.launch(&rec, &limits);
            match launched {
                Ok(l) => inner
                    .meta
                    .save_supervisor(&rec.container_id, &l.supervisor)
                    .map_err(|e| ContainerError::internal("cannot checkpoint the supervisor", e))
                    .map(|()| l),
                Err(e) => {
                    let _ = inner.meta.remove_container(&rec.container_id);
                    let _ = inner.launcher.runtime.remove_container(&rec.container_id);
                    Err(e)
                }
            }
        })
        .await
        .map_err(blocking_failed)
        .and_then(|r| r);
        match result {
            Ok(launched) => {
                {
                    let mut entries = self.entries();
                    if let Some(e) = entries.get_mut(&id) {
                        e.phase = Phase::Running;
                        e.supervisor = Some(launched.supervisor);
                        e.unenforced = launched.unenforced.clone();
                    }
                }
                if !launched.unenforced.is_empty() {
                    tracing::warn!(container = %id, unenforced = %launched.unenforced.join("; "), "container runs without some of the limits it asked for");
                }
                tracing::info!(container = %id, supervisor = launched.supervisor.pid, pid = launched.supervisor.workload_pid, "container launched");
                self.watch(id, launched.pidfd);
                Ok(LaunchOutcome::Launched)
            }
            Err(e) => {
                self.entries().remove(&id);
                self.inner
                    .metrics
                    .launch_errors
                    .fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// UPDATE_CONTAINER: new requests and limits for a running container, written to its
    /// cgroup and checkpointed. A lower memory limit needs `lower_memory_limit` and is
    /// refused below the current usage.
    pub async fn update(&self, req: UpdateContainer) -> Result<(), ContainerError> {
        let id = req.container_id.clone();
        let record = {
            let entries = self.entries();
            let entry = entries
                .get(&id)
                .ok_or_else(|| ContainerError::NotFound(id.clone()))?;
            match entry.phase {
                Phase::Running => {}
                Phase::Launching => return Err(ContainerError::StillLaunching(id)),
                Phase::Ended(_) => {
                    return Err(ContainerError::Conflict(format!(
                        "Container {id} has ended: there are no limits to update"
                    )))
                }
            }
            entry.record.clone()
        };
        let share = record.container.as_ref().and_then(|c| c.share_cgroups());
        if !has_own_cgroup_limits(&id, share) {
            return Err(ContainerError::Invalid(format!(
                "Container {id} shares its parent's cgroup limits: update the parent"
            )));
        }
        let mut limits =
            ContainerLimits::compute(&req.resources, &req.limits, &self.inner.cfg.limit_settings)
                .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        let inner = self.inner.clone();
        let cid = id.clone();
        let (record, limits, unenforced) = tokio::task::spawn_blocking(move || {
            let launcher = &inner.launcher;
            let cgroup = launcher.cgroup_of(&record);
            if let Some(memory) = limits.memory.as_mut() {
                let current = isolate::memory_max(&cgroup);
                let usage = cgroup.memory_current().ok().flatten().unwrap_or(0);
                match decide_memory_max(current, memory.max, usage, req.lower_memory_limit) {
                    Ok(MemoryMaxDecision::Write(max)) => memory.max = max,
                    Ok(MemoryMaxDecision::Keep { .. }) if current == memory.max => {}
                    Ok(MemoryMaxDecision::Keep { reason }) => {
                        return Err(ContainerError::Conflict(format!(
                            "Container {cid}: {reason}"
                        )))
                    }
                    Err(e) => {
                        return Err(ContainerError::Conflict(format!("Container {cid}: {e}")))
                    }
                }
            }
            let relative = launcher.cgroup_rel(&record);
            let (_, unenforced) = isolate::create_limited_within(
                &launcher.hierarchy,
                &Launcher::delegation_base(&relative),
                &relative,
                &limits,
                &launcher.isolation,
            )?;
            if let (Some(unit), Some(scopes)) = (&record.unit, &launcher.scopes) {
                scopes
                    .set_resources(unit, &limits.scope_properties(&launcher.isolation))
                    .map_err(|e| {
                        ContainerError::internal(format!("cannot update systemd scope {unit}"), e)
                    })?;
            }
            let record = ContainerRecord {
                resources: req.resources,
                limits: req.limits,
                ..record
            };
            inner
                .meta
                .save_container(&record)
                .map_err(|e| ContainerError::internal("cannot checkpoint the container", e))?;
            Ok((record, limits, unenforced))
        })
        .await
        .map_err(blocking_failed)??;
        if let Some(e) = self.entries().get_mut(&id) {
            e.record = record;
            e.limits = limits;
            e.unenforced = unenforced;
        }
        tracing::info!(container = %id, "container limits updated");
        Ok(())
    }

    /// WAIT_CONTAINER: resolves when the container has ended (at once if it already has).
    pub async fn wait(&self, id: &ContainerId) -> Result<TerminationRecord, ContainerError> {
        let mut rx = {
            let entries = self.entries();
            let entry = entries
                .get(id)
                .ok_or_else(|| ContainerError::NotFound(id.clone()))?;
            entry.done.subscribe()
        };
        loop {
            if let Some(t) = rx.borrow_and_update().clone() {
                return Ok(t);
            }
            if rx.changed().await.is_err() {
                // The entry was removed while we waited.
                return Err(ContainerError::NotFound(id.clone()));
            }
        }
    }

    /// KILL_CONTAINER. No signal (or SIGKILL) destroys the container; SIGTERM asks its
    /// supervisor for a graceful stop (SIGTERM, then SIGKILL after the grace period); any
    /// other signal goes to the workload's main process.
    pub async fn kill(&self, id: &ContainerId, signal: Option<i32>) -> Result<(), ContainerError> {
        let supervisor = {
            let mut entries = self.entries();
            let entry = match entries.get_mut(id) {
                Some(e) => e,
                None => return Err(ContainerError::KillNotFound(id.clone())),
            };
            match entry.phase {
                Phase::Ended(_) => return Err(ContainerError::KillNotFound(id.clone())),
                Phase::Launching => return Err(ContainerError::StillLaunching(id.clone())),
                Phase::Running => {}
            }
            let supervisor = entry.supervisor;
            let record = entry.record.clone();
            if matches!(signal, None | Some(libc::SIGKILL)) {
                // Nested containers die with it; mark them before their monitors fire.
                for (k, e) in entries.iter_mut() {
                    if k == id || is_descendant(k, id) {
                        e.killed = true;
                    }
                }
            }
            (supervisor, record)
        };
        let (supervisor, record) = supervisor;
        match signal.unwrap_or(libc::SIGKILL) {
            libc::SIGKILL => {
                let inner = self.inner.clone();
                tokio::task::spawn_blocking(move || inner.launcher.kill(&record))
                    .await
                    .map_err(blocking_failed)??;
                tracing::info!(container = %id, "container killed");
                Ok(())
            }
            sig => {
                let Some(sup) = supervisor else {
                    return Err(ContainerError::KillNotFound(id.clone()));
                };
                let (pid, start_time) = if sig == libc::SIGTERM {
                    (sup.pid, sup.start_time)
                } else {
                    (sup.workload_pid, sup.workload_start_time)
                };
                let fd = PidFd::open(pid).map_err(|_| ContainerError::KillNotFound(id.clone()))?;
                if !(ProcessIdentity { pid, start_time }).is_current() {
                    return Err(ContainerError::KillNotFound(id.clone()));
                }
                fd.send_signal(sig).map_err(|e| {
                    ContainerError::internal(format!("cannot signal container {id}"), e)
                })?;
                tracing::info!(container = %id, signal = sig, "container signalled");
                Ok(())
            }
        }
    }

    /// The pid of a running container's workload (Mesos's `executor_pid`).
    pub fn workload_pid(&self, id: &ContainerId) -> Option<i32> {
        self.entries()
            .get(id)
            .and_then(|e| e.supervisor.as_ref())
            .map(|s| s.workload_pid)
    }

    /// Sends `signal` to the container's workload (its main process), whatever the signal:
    /// the built-in command executor's graceful kill is SIGTERM here, then SIGKILL of the
    /// whole container after the task's own grace period.
    pub async fn signal_workload(
        &self,
        id: &ContainerId,
        signal: i32,
    ) -> Result<(), ContainerError> {
        let sup = {
            let entries = self.entries();
            match entries.get(id) {
                Some(Entry {
                    phase: Phase::Running,
                    supervisor: Some(sup),
                    ..
                }) => *sup,
                Some(Entry {
                    phase: Phase::Launching,
                    ..
                }) => return Err(ContainerError::StillLaunching(id.clone())),
                _ => return Err(ContainerError::KillNotFound(id.clone())),
            }
        };
        let (pid, start_time) = (sup.workload_pid, sup.workload_start_time);
        let fd = PidFd::open(pid).map_err(|_| ContainerError::KillNotFound(id.clone()))?;
        if !(ProcessIdentity { pid, start_time }).is_current() {
            return Err(ContainerError::KillNotFound(id.clone()));
        }
        fd.send_signal(signal)
            .map_err(|e| ContainerError::internal(format!("cannot signal container {id}"), e))?;
        tracing::info!(container = %id, signal, "workload signalled");
        Ok(())
    }

    /// REMOVE_CONTAINER: forgets an ended container, its nested containers, checkpoints,
    /// runtime files and sandbox.
    pub async fn remove(&self, id: &ContainerId) -> Result<(), ContainerError> {
        let sandbox = {
            let entries = self.entries();
            let entry = entries
                .get(id)
                .ok_or_else(|| ContainerError::NotFound(id.clone()))?;
            if !matches!(entry.phase, Phase::Ended(_)) {
                return Err(ContainerError::StillRunning(id.clone()));
            }
            if let Some((nested, _)) = entries
                .iter()
                .find(|(k, e)| is_descendant(k, id) && !matches!(e.phase, Phase::Ended(_)))
            {
                return Err(ContainerError::StillRunning(nested.clone()));
            }
            entry.record.sandbox.clone()
        };
        let inner = self.inner.clone();
        let cid = id.clone();
        tokio::task::spawn_blocking(move || -> Result<(), ContainerError> {
            inner.meta.remove_container(&cid).map_err(|e| {
                ContainerError::internal(format!("cannot remove checkpoint of {cid}"), e)
            })?;
            let _ = inner.launcher.runtime.remove_container(&cid);
            match std::fs::remove_dir_all(&sandbox) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(ContainerError::internal(
                    format!("cannot remove sandbox {}", sandbox.display()),
                    e,
                )),
            }
        })
        .await
        .map_err(blocking_failed)??;
        self.entries()
            .retain(|k, _| k != id && !is_descendant(k, id));
        Ok(())
    }

    /// GET_CONTAINERS: running containers with their statistics. Every container is
    /// standalone until executors exist, so `show_standalone` decides whether any shows.
    pub async fn list(&self, show_nested: bool, show_standalone: bool) -> Vec<ContainerEntry> {
        type Listed = (
            ContainerId,
            ContainerLimits,
            Vec<String>,
            Option<SupervisorRecord>,
            ContainerRecord,
        );
        let running: Vec<Listed> = {
            let entries = self.entries();
            let mut v: Vec<_> = entries
                .iter()
                .filter(|(id, e)| {
                    matches!(e.phase, Phase::Running)
                        && show_standalone
                        && (show_nested || !id.is_nested())
                })
                .map(|(id, e)| {
                    (
                        id.clone(),
                        e.limits.clone(),
                        e.unenforced.clone(),
                        e.supervisor,
                        e.record.clone(),
                    )
                })
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            running
                .into_iter()
                .map(|(id, limits, unenforced, sup, record)| {
                    let usage = isolate::read_usage(&inner.launcher.cgroup_of(&record));
                    ContainerEntry {
                        container_status: ContainerStatus {
                            container_id: id.clone(),
                            executor_pid: sup.map(|s| s.workload_pid as u32),
                            network_infos: Vec::new(),
                            unenforced_limits: unenforced,
                        },
                        resource_statistics: Some(statistics(now_secs(), &usage, &limits)),
                        container_id: id,
                    }
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// Metrics, by Mesos's names where Mesos has one.
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let (running, ended) = {
            let entries = self.entries();
            let running = entries
                .values()
                .filter(|e| !matches!(e.phase, Phase::Ended(_)))
                .count();
            (running, entries.len() - running)
        };
        let m = &self.inner.metrics;
        BTreeMap::from([
            ("containerizer/containers_running".into(), running as f64),
            ("containerizer/containers_ended".into(), ended as f64),
            (
                "containerizer/recovery/misplaced_containers".into(),
                m.misplaced.load(Ordering::Relaxed) as f64,
            ),
            (
                "slave/container_launch_errors".into(),
                m.launch_errors.load(Ordering::Relaxed) as f64,
            ),
        ])
    }

    /// Ids of containers that are not ended, parents first.
    pub fn running(&self) -> Vec<ContainerId> {
        let mut v: Vec<ContainerId> = self
            .entries()
            .iter()
            .filter(|(_, e)| !matches!(e.phase, Phase::Ended(_)))
            .map(|(id, _)| id.clone())
            .collect();
        v.sort_by_key(|id| (id.depth(), id.clone()));
        v
    }

    /// Destroys every container and waits for each to be collected (`--recover=cleanup`).
    pub async fn destroy_all(&self) -> Result<usize, ContainerError> {
        let top: Vec<ContainerId> = self
            .running()
            .into_iter()
            .filter(|id| !id.is_nested())
            .collect();
        let all = self.running();
        for id in &top {
            self.kill(id, None).await?;
        }
        for id in &all {
            self.wait(id).await?;
        }
        Ok(all.len())
    }
}

/// Where process `pid` lives when that is not `expected` (both relative to the mount), as
/// long as `pid` is still the process that started at `start_time`.
fn misplaced(
    hierarchy: &Hierarchy,
    pid: i32,
    start_time: u64,
    expected: &std::path::Path,
) -> Option<String> {
    if !(ProcessIdentity { pid, start_time }).is_current() {
        return None;
    }
    let actual = hierarchy.cgroup_of_pid(pid).ok()?;
    (actual != expected).then(|| format!("/{}", actual.display()))
}

fn is_descendant(candidate: &ContainerId, ancestor: &ContainerId) -> bool {
    let mut p = candidate.parent.as_deref();
    while let Some(parent) = p {
        if parent == ancestor {
            return true;
        }
        p = parent.parent.as_deref();
    }
    false
}

/// The limits a recovered container runs under: recomputed from its record, since only
/// the record is checkpointed. Flags may have changed since the launch; the values in its
/// cgroup are the ones set then, and what fails to compute now is only not reported.
fn recovered_limits(cfg: &Config, record: &ContainerRecord) -> ContainerLimits {
    let share = record.container.as_ref().and_then(|c| c.share_cgroups());
    if !has_own_cgroup_limits(&record.container_id, share) {
        return ContainerLimits::default();
    }
    ContainerLimits::compute(&record.resources, &record.limits, &cfg.limit_settings)
        .unwrap_or_else(|e| {
            tracing::warn!(container = %record.container_id, error = %e, "cannot interpret the recorded limits under the current flags");
            ContainerLimits::default()
        })
}

/// Top-level containers always have limits of their own; nested ones only with
/// `share_cgroups: false` (Mesos's default is to share, and then their resources count
/// against the parent's limits).
fn has_own_cgroup_limits(id: &ContainerId, share_cgroups: Option<bool>) -> bool {
    !id.is_nested() || share_cgroups == Some(false)
}

/// A termination caused by a limit carries Mesos's reason, message and resources.
fn with_limitation(
    mut t: TerminationRecord,
    limitation: Option<isolate::Limitation>,
) -> TerminationRecord {
    if let Some(l) = limitation {
        t.reason = Some(l.reason.to_string());
        t.message = Some(l.message);
        t.limitation = l.resources;
    }
    t
}

/// An error and its causes on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
