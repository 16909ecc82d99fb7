//! The agent's part in a cluster: registered with a master (through [`MasterLink`]), it
//! runs the tasks frameworks launch, reports their status updates reliably, and serves
//! custom executors.
//!
//! One task owns the [`Registry`] and the [`StatusUpdates`]; everything else (the
//! master's events, launches and exits of containers, kill deadlines, executor calls) is
//! a message to it, so no lock is held across an await. The built-in command executor is
//! part of this task: it launches the task's command as the executor's container and
//! turns the container's end into the task's terminal update. So is the built-in default
//! executor that runs task groups ([`default_executor`]).

mod default_executor;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use holdfast_api::agent::LaunchContainer;
use holdfast_api::ids;
use holdfast_api::internal::{AgentCall, AgentEvent, AgentInfo};
use holdfast_api::scheduler::{FrameworkInfo, Id, KillPolicy, TaskInfo, TaskState, TaskStatus};
use holdfast_api::v1::{ContainerId, ContainerStatus, Environment, Variable};
use holdfast_checkpoint::TerminationRecord;
use holdfast_containerizer::{error_chain, layout, ContainerError, Containerizer};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::executor_api::{ExecutorEvent, ExecutorStream};
use crate::gc::{self, GcPolicy};
use crate::master_link::{LinkEvent, MasterLink};
use crate::registry::{ExecutorKind, ExecutorState, Launch, Placement, Registry};
use crate::state_view::Snapshot;
use crate::status_updates::{Acked, Added, StatusUpdates};
use crate::task_group;

/// The kill grace period of a command task whose kill policy sets none (Mesos's).
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `host:port` of the master.
    pub master: String,
    pub info: AgentInfo,
    /// `ip:port` executors reach the agent's API at (`MESOS_AGENT_ENDPOINT`).
    pub endpoint: String,
    /// How long a custom executor has between SHUTDOWN and being killed.
    pub executor_shutdown_grace: Duration,
    /// How long a custom executor may take to subscribe before it is killed.
    pub executor_registration_timeout: Duration,
    pub max_completed_executors: usize,
    /// Where sandboxes are: the containerizer's work dir.
    pub work_dir: PathBuf,
    /// When completed executors' containers are removed.
    pub gc: GcPolicy,
    /// The work dir's disk usage, for the garbage collection's disk check.
    pub disk_usage: DiskUsage,
}

/// Reads the share of the work dir's disk in use, in `[0, 1]`; `None` when it cannot.
#[derive(Clone)]
pub struct DiskUsage(pub Arc<dyn Fn() -> Option<f64> + Send + Sync>);

impl std::fmt::Debug for DiskUsage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DiskUsage")
    }
}

/// Garbage collection counters, under Mesos's metric names.
#[derive(Debug, Default)]
struct GcCounters {
    pending: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
}

/// A handle on the cluster task.
#[derive(Clone)]
pub struct Cluster {
    tx: mpsc::UnboundedSender<Input>,
    gc: Arc<GcCounters>,
}

// Moved once from sender to receiver; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
/// What an executor's call asked of the cluster task.
pub enum ExecutorCall {
    Subscribe {
        unacknowledged_tasks: Vec<TaskInfo>,
        unacknowledged_updates: Vec<TaskStatus>,
        stream: ExecutorStream,
    },
    Update(TaskStatus),
    Message(String),
}

// Moved once from sender to receiver; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Input {
    Link(LinkEvent),
    Launched {
        framework: String,
        executor: String,
        result: Result<(), String>,
    },
    Ended {
        framework: String,
        executor: String,
        termination: Option<TerminationRecord>,
    },
    /// A custom executor had its time to subscribe: killed if it has not.
    RegistrationDeadline {
        framework: String,
        executor: String,
        container: String,
    },
    /// A kill's grace period is over: the container goes, if it still runs.
    KillDeadline {
        framework: String,
        executor: String,
        container: String,
    },
    Executor {
        framework: String,
        executor: String,
        call: ExecutorCall,
        reply: oneshot::Sender<Result<(), (u16, String)>>,
    },
    /// Default executor: the containers of a task group were launched (or not), each
    /// task's result in the group's order.
    GroupLaunched {
        framework: String,
        executor: String,
        results: Vec<(String, Result<(), String>)>,
    },
    /// Default executor: a task's container ended.
    TaskEnded {
        framework: String,
        executor: String,
        task: String,
        container: String,
        termination: Option<TerminationRecord>,
    },
    /// Default executor: a task's kill grace period is over.
    TaskKillDeadline {
        framework: String,
        executor: String,
        task: String,
        container: String,
    },
    ExecutorGone {
        framework: String,
        executor: String,
        stream: u64,
    },
    Snapshot(oneshot::Sender<Snapshot>),
}

impl Cluster {
    /// Starts the cluster task and its link to the master.
    pub fn start(cfg: ClusterConfig, containerizer: Containerizer) -> Cluster {
        let (tx, rx) = mpsc::unbounded_channel();
        let (link_tx, link_rx) = mpsc::unbounded_channel();
        let link = MasterLink::new(cfg.master.clone(), cfg.info.clone());
        tokio::spawn(link.clone().run(link_tx));
        let counters = Arc::new(GcCounters::default());
        let (gc_tx, gc_rx) = mpsc::unbounded_channel();
        tokio::spawn(remove_garbage(
            containerizer.clone(),
            gc_rx,
            counters.clone(),
        ));
        let actor = Actor {
            gc: Gc {
                schedule: gc::Schedule::default(),
                next_disk_check: Instant::now() + cfg.gc.disk_watch_interval,
                removals: gc_tx,
                counters: counters.clone(),
            },
            registry: Registry::new(cfg.max_completed_executors),
            cfg,
            containerizer,
            link,
            updates: StatusUpdates::new(),
            agent_id: None,
            connected: false,
            tx: tx.clone(),
            executors: BTreeMap::new(),
            shutting_down: BTreeSet::new(),
            launch_slots: Arc::new(tokio::sync::Semaphore::new(launch_parallelism())),
            resizing: BTreeMap::new(),
        };
        tokio::spawn(actor.run(rx, link_rx));
        Cluster { tx, gc: counters }
    }

    /// The garbage collection's metrics (`gc/path_removals_*`, as Mesos names them).
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        BTreeMap::from([
            ("gc/path_removals_pending".into(), load(&self.gc.pending)),
            (
                "gc/path_removals_succeeded".into(),
                load(&self.gc.succeeded),
            ),
            ("gc/path_removals_failed".into(), load(&self.gc.failed)),
        ])
    }

    /// Hands an executor's call to the cluster task; `Err` is an HTTP status and reason.
    pub async fn executor_call(
        &self,
        framework: String,
        executor: String,
        call: ExecutorCall,
    ) -> Result<(), (u16, String)> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Input::Executor {
                framework,
                executor,
                call,
                reply,
            })
            .map_err(|_| (503, "the agent is shutting down".to_owned()))?;
        rx.await
            .unwrap_or_else(|_| Err((503, "the agent is shutting down".to_owned())))
    }

    /// An executor's event stream was dropped (the executor went away).
    pub fn executor_gone(&self, framework: String, executor: String, stream: u64) {
        let _ = self.tx.send(Input::ExecutorGone {
            framework,
            executor,
            stream,
        });
    }

    /// The registry and the agent's registration (what the state endpoints show).
    pub async fn snapshot(&self) -> Option<Snapshot> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Input::Snapshot(reply)).ok()?;
        rx.await.ok()
    }
}

/// A subscribed custom executor's stream.
struct Subscribed {
    id: u64,
    stream: ExecutorStream,
}

/// The cluster task's side of garbage collection.
struct Gc {
    schedule: gc::Schedule,
    next_disk_check: Instant,
    /// To the task that removes containers, one at a time.
    removals: mpsc::UnboundedSender<String>,
    counters: Arc<GcCounters>,
}

/// Removes the containers it is sent, one after the other, so that a large prune does
/// not occupy the blocking pool.
async fn remove_garbage(
    containerizer: Containerizer,
    mut rx: mpsc::UnboundedReceiver<String>,
    counters: Arc<GcCounters>,
) {
    while let Some(container) = rx.recv().await {
        let id = ContainerId::new(&container);
        match containerizer.remove(&id).await {
            Ok(()) => {
                counters.succeeded.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(container = %id, "removed a completed executor's container");
            }
            // Already removed (REMOVE_CONTAINER by an operator): nothing left to do.
            Err(ContainerError::NotFound(_)) => {
                counters.succeeded.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(container = %id, error = %error_chain(&e), "cannot remove a completed executor's container");
            }
        }
        counters.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Actor {
    cfg: ClusterConfig,
    gc: Gc,
    containerizer: Containerizer,
    link: Arc<MasterLink>,
    registry: Registry,
    updates: StatusUpdates,
    agent_id: Option<String>,
    connected: bool,
    tx: mpsc::UnboundedSender<Input>,
    /// Event streams of subscribed custom executors, by (framework, executor).
    executors: BTreeMap<(String, String), Subscribed>,
    /// Frameworks the master told to shut down: removed once their executors ended.
    shutting_down: BTreeSet<String>,
    /// Container launches allowed at once.
    launch_slots: Arc<tokio::sync::Semaphore>,
    /// Default executors: resizes of each executor's container, applied one at a time in
    /// the order they were decided (two at once would race on its checkpoint).
    resizing: BTreeMap<(String, String), mpsc::UnboundedSender<default_executor::Resize>>,
}

impl Actor {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Input>,
        mut link_rx: mpsc::UnboundedReceiver<LinkEvent>,
    ) {
        loop {
            // Wake for the next status update retry, removal or disk check, at the
            // latest every minute.
            let deadline = [
                self.updates.next_deadline(),
                self.gc.schedule.next_due(),
                Some(self.gc.next_disk_check),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
            tokio::select! {
                input = rx.recv() => match input {
                    Some(i) => self.handle(i),
                    None => return,
                },
                event = link_rx.recv() => match event {
                    Some(e) => self.handle(Input::Link(e)),
                    None => return,
                },
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
            self.flush_updates();
            self.collect_garbage(Instant::now());
        }
    }

    /// Schedules a completed executor's container for removal after `--gc_delay`.
    fn schedule_removal(&mut self, container: String) {
        let before = self.gc.schedule.len();
        let at = Instant::now()
            .checked_add(self.cfg.gc.delay)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86400));
        self.gc.schedule.schedule(&container, at);
        if self.gc.schedule.len() > before {
            self.gc.counters.pending.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Removes what is due, and on every disk check what the disk usage says is old
    /// enough to go early.
    fn collect_garbage(&mut self, now: Instant) {
        let mut due = self.gc.schedule.due(now);
        if now >= self.gc.next_disk_check {
            self.gc.next_disk_check = now + self.cfg.gc.disk_watch_interval;
            match (self.cfg.disk_usage.0)() {
                Some(usage) => {
                    let max_age = self.cfg.gc.max_age(usage);
                    let pruned = self.gc.schedule.prune(now, &self.cfg.gc, max_age);
                    if pruned.is_empty() {
                        tracing::debug!(usage, max_age_secs = max_age.as_secs(), "disk check");
                    } else {
                        tracing::info!(
                            usage,
                            max_age_secs = max_age.as_secs(),
                            removing = pruned.len(),
                            "work dir disk usage is high: removing older sandboxes early"
                        );
                    }
                    due.extend(pruned);
                }
                None => tracing::debug!("cannot read the work dir's disk usage"),
            }
        }
        for container in due {
            // The worker ends only when this task drops its sender, or when the runtime
            // shuts down, when nothing is left to remove anyway.
            let _ = self.gc.removals.send(container);
        }
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Link(LinkEvent::Registered { agent_id }) => {
                self.agent_id = Some(agent_id);
                self.connected = true;
                self.updates.resend_all(Instant::now());
            }
            Input::Link(LinkEvent::Disconnected) => self.connected = false,
            Input::Link(LinkEvent::Snapshot(reply)) => {
                let frameworks: Vec<FrameworkInfo> = self
                    .registry
                    .frameworks
                    .values()
                    .map(|f| f.info.clone())
                    .collect();
                let _ = reply.send((self.registry.reports(), frameworks));
            }
            Input::Link(LinkEvent::Event(event)) => self.master_event(event),
            Input::Launched {
                framework,
                executor,
                result,
            } => self.launched(&framework, &executor, result),
            Input::Ended {
                framework,
                executor,
                termination,
            } => self.ended(&framework, &executor, termination),
            Input::KillDeadline {
                framework,
                executor,
                container,
            } => {
                let live = self
                    .registry
                    .executor(&framework, &executor)
                    .is_some_and(|e| {
                        e.container_id == container && e.state != ExecutorState::Terminated
                    });
                if live {
                    tracing::info!(framework = %framework, executor = %executor, "grace period over; killing the container");
                    self.kill_container(&container);
                }
            }
            Input::RegistrationDeadline {
                framework,
                executor,
                container,
            } => {
                let waiting = self
                    .registry
                    .executor(&framework, &executor)
                    .is_some_and(|e| {
                        e.container_id == container && e.state == ExecutorState::Registering
                    });
                if waiting {
                    tracing::warn!(framework = %framework, executor = %executor, "executor did not subscribe in time; killing it");
                    self.kill_container(&container);
                }
            }
            Input::Executor {
                framework,
                executor,
                call,
                reply,
            } => {
                let r = self.executor_call(&framework, &executor, call);
                let _ = reply.send(r);
            }
            Input::ExecutorGone {
                framework,
                executor,
                stream,
            } => {
                let key = (framework, executor);
                if self.executors.get(&key).is_some_and(|s| s.id == stream) {
                    self.executors.remove(&key);
                    tracing::info!(framework = %key.0, executor = %key.1, "executor disconnected");
                }
            }
            Input::GroupLaunched {
                framework,
                executor,
                results,
            } => self.group_launched(&framework, &executor, results),
            Input::TaskEnded {
                framework,
                executor,
                task,
                container,
                termination,
            } => self.group_task_ended(&framework, &executor, &task, &container, termination),
            Input::TaskKillDeadline {
                framework,
                executor,
                task,
                container,
            } => self.group_task_kill_deadline(&framework, &executor, &task, &container),
            Input::Snapshot(reply) => {
                let _ = reply.send(Snapshot {
                    registry: self.registry.clone(),
                    agent_id: self.agent_id.clone(),
                    info: Some(self.cfg.info.clone()),
                    master: Some(self.cfg.master.clone()),
                });
            }
        }
    }

    // ---- Events from the master -----------------------------------------------------

    fn master_event(&mut self, event: AgentEvent) {
        match event {
            AgentEvent::RunTask { framework, task } => self.run_task(framework, task),
            AgentEvent::RunTaskGroup {
                framework,
                executor,
                tasks,
            } => self.run_task_group(framework, executor, tasks),
            AgentEvent::KillTask {
                framework_id,
                task_id,
                kill_policy,
            } => self.kill_task(&framework_id.value, &task_id.value, kill_policy),
            AgentEvent::Acknowledge {
                framework_id,
                task_id,
                uuid,
            } => self.acknowledged(&framework_id.value, &task_id.value, &uuid),
            AgentEvent::Message {
                framework_id,
                executor_id,
                data,
            } => {
                let key = (framework_id.value, executor_id.value);
                match self.executors.get(&key) {
                    Some(s) => s.stream.send(ExecutorEvent::Message { data }),
                    None => {
                        tracing::warn!(framework = %key.0, executor = %key.1, "dropping a framework message for an executor that is not subscribed")
                    }
                }
            }
            AgentEvent::ShutdownExecutor {
                framework_id,
                executor_id,
            } => self.shutdown_executor(&framework_id.value, &executor_id.value),
            AgentEvent::ShutdownFramework { framework_id } => {
                let fw = framework_id.value;
                tracing::info!(framework = %fw, "shutting down the framework's executors");
                self.shutting_down.insert(fw.clone());
                let executors: Vec<String> = self
                    .registry
                    .frameworks
                    .get(&fw)
                    .map(|f| f.executors.keys().cloned().collect())
                    .unwrap_or_default();
                for e in executors {
                    self.shutdown_executor(&fw, &e);
                }
                self.forget_framework_if_done(&fw);
            }
            AgentEvent::Registered { .. } | AgentEvent::Ping => {}
        }
    }

    fn run_task(&mut self, framework: FrameworkInfo, task: TaskInfo) {
        let Some(fid) = framework.id.as_ref().map(|i| i.value.clone()) else {
            tracing::warn!(task = %task.task_id, "RUN_TASK without a framework id; ignored");
            return;
        };
        self.shutting_down.remove(&fid);
        let work_dir = self.cfg.work_dir.clone();
        let placement = self.registry.add_task(framework.clone(), task.clone(), || {
            let cid = ids::uuid4();
            let dir = layout::sandbox_path(&work_dir, &ContainerId::new(&cid));
            (cid, dir)
        });
        match placement {
            Err(reason) => {
                tracing::warn!(framework = %fid, task = %task.task_id, %reason, "refusing a task");
                if !reason.contains("already known") {
                    self.refuse_task(&framework, &task, &reason);
                    if let Some(e) = &task.executor {
                        self.executor_never_launched(&fid, &e.executor_id.value);
                    }
                }
            }
            Ok(Placement::NewExecutor { executor_id }) => {
                let kind = self.registry.executor(&fid, &executor_id).map(|e| e.kind);
                if kind == Some(ExecutorKind::Command) {
                    let status = self.status(&fid, &task.task_id.value, TaskState::TaskStarting);
                    if let Some(s) = status {
                        self.enqueue(&fid, s);
                    }
                }
                self.launch_executor(&fid, &executor_id);
            }
            Ok(Placement::Existing {
                executor_id,
                subscribed,
            }) => {
                if subscribed {
                    if let Some(s) = self.executors.get(&(fid.clone(), executor_id)) {
                        s.stream.send(ExecutorEvent::Launch { task });
                    }
                }
            }
        }
    }

    /// A task that cannot run here: TASK_FAILED straight away, from the agent.
    fn refuse_task(&mut self, framework: &FrameworkInfo, task: &TaskInfo, reason: &str) {
        self.refuse_task_with(framework, task, "REASON_TASK_INVALID", reason);
    }

    /// As [`refuse_task`](Self::refuse_task), with Mesos's `reason` code.
    fn refuse_task_with(
        &mut self,
        framework: &FrameworkInfo,
        task: &TaskInfo,
        code: &str,
        reason: &str,
    ) {
        let Some(fid) = framework.id.as_ref().map(|i| i.value.clone()) else {
            return;
        };
        let status = TaskStatus {
            message: Some(reason.to_owned()),
            reason: Some(code.into()),
            source: Some("SOURCE_AGENT".into()),
            ..self.blank_status(&task.task_id, TaskState::TaskFailed)
        };
        self.enqueue(&fid, status);
    }

    fn launch_executor(&mut self, framework: &str, executor: &str) {
        // The default executor's container is sized for the tasks waiting for it.
        let sized = self
            .registry
            .executor(framework, executor)
            .is_some_and(|e| e.kind == ExecutorKind::Default)
            .then(|| self.executor_size(framework, executor));
        let Some(e) = self.registry.executor(framework, executor) else {
            return;
        };
        let Some(fw) = self.registry.frameworks.get(framework) else {
            return;
        };
        let (command, resources, container, limits) = match e.kind {
            ExecutorKind::Command => {
                let Some(task) = e.launched.values().next() else {
                    return;
                };
                let limits = match task.info.extra.get("limits") {
                    Some(l) => match serde_json::from_value(l.clone()) {
                        Ok(l) => l,
                        Err(err) => {
                            let msg = format!("invalid task limits: {err}");
                            self.launched(framework, executor, Err(msg));
                            return;
                        }
                    },
                    None => BTreeMap::new(),
                };
                (
                    task.info.command.clone(),
                    task.info.resources.clone(),
                    task.info.container.clone(),
                    limits,
                )
            }
            ExecutorKind::Custom => (
                e.info.command.clone(),
                e.info.resources.clone(),
                e.info.container.clone(),
                BTreeMap::new(),
            ),
            ExecutorKind::Default => {
                let Some(Ok(size)) = sized else {
                    let msg = match sized {
                        Some(Err(msg)) => msg,
                        _ => "the executor's size is unknown".to_owned(),
                    };
                    self.launched(framework, executor, Err(msg));
                    return;
                };
                // The executor's own user, if its command names one, runs the holder.
                let mut holder = task_group::holder_command();
                holder.user = e.info.command.as_ref().and_then(|c| c.user.clone());
                (
                    Some(holder),
                    size.resources,
                    e.info.container.clone(),
                    size.limits,
                )
            }
        };
        let Some(mut command) = command else {
            let msg = match e.kind {
                ExecutorKind::Command => "the task has neither a command nor an executor",
                ExecutorKind::Custom | ExecutorKind::Default => "the executor has no command",
            };
            self.launched(framework, executor, Err(msg.to_owned()));
            return;
        };
        // Tasks run as their framework's user unless the command names one (Mesos's
        // --switch_user default).
        if command.user.is_none() && !fw.info.user.is_empty() {
            command.user = Some(fw.info.user.clone());
        }
        let role = resources
            .iter()
            .find_map(|r| r.allocation_info.as_ref().and_then(|a| a.role.clone()));
        command.environment = Some(self.environment(
            framework,
            executor,
            &e.directory,
            e.kind,
            role.as_deref(),
            command.environment.take(),
        ));
        let launch = LaunchContainer {
            container_id: ContainerId::new(&e.container_id),
            command: Some(command),
            resources,
            container,
            limits,
        };
        let c = self.containerizer.clone();
        let tx = self.tx.clone();
        let slots = self.launch_slots.clone();
        let (framework, executor) = (framework.to_owned(), executor.to_owned());
        tokio::spawn(async move {
            // A burst of launches all at once only makes each one slower.
            let _slot = slots.acquire_owned().await;
            let result = c
                .launch(launch)
                .await
                .map(|_| ())
                .map_err(|e| error_chain(&e));
            let _ = tx.send(Input::Launched {
                framework,
                executor,
                result,
            });
        });
    }

    /// Mesos's executor environment, then the command's own variables (which win).
    fn environment(
        &self,
        framework: &str,
        executor: &str,
        directory: &std::path::Path,
        kind: ExecutorKind,
        role: Option<&str>,
        own: Option<Environment>,
    ) -> Environment {
        let dir = directory.display().to_string();
        let grace = format!("{}secs", self.cfg.executor_shutdown_grace.as_secs_f64());
        let agent_id = self.agent_id.clone().unwrap_or_default();
        let mut vars: Vec<(&str, String)> = vec![
            ("MESOS_FRAMEWORK_ID", framework.to_owned()),
            ("MESOS_EXECUTOR_ID", executor.to_owned()),
            ("MESOS_AGENT_ENDPOINT", self.cfg.endpoint.clone()),
            ("MESOS_SLAVE_ID", agent_id),
            ("MESOS_SLAVE_PID", format!("slave(1)@{}", self.cfg.endpoint)),
            ("MESOS_DIRECTORY", dir.clone()),
            ("MESOS_SANDBOX", dir),
            ("MESOS_CHECKPOINT", "0".into()),
            ("MESOS_HTTP_COMMAND_EXECUTOR", "0".into()),
            ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", grace),
        ];
        if kind == ExecutorKind::Command {
            vars.push(("MESOS_ALLOCATION_ROLE", role.unwrap_or("*").to_owned()));
        }
        let mut variables: Vec<Variable> = vars
            .into_iter()
            .map(|(name, value)| Variable {
                name: name.to_owned(),
                kind: None,
                value: Some(value),
            })
            .collect();
        variables.extend(own.into_iter().flat_map(|e| e.variables));
        Environment { variables }
    }

    fn launched(&mut self, framework: &str, executor: &str, result: Result<(), String>) {
        let Some(e) = self.registry.executor(framework, executor) else {
            return;
        };
        let (kind, container) = (e.kind, e.container_id.clone());
        match result {
            Ok(()) => {
                tracing::info!(framework, executor, container = %container, "executor launched");
                if kind == ExecutorKind::Command {
                    self.registry
                        .set_executor_state(framework, executor, ExecutorState::Running);
                    let task = executor.to_owned();
                    if let Some(s) = self.status(framework, &task, TaskState::TaskRunning) {
                        self.enqueue(framework, s);
                    }
                    let killed = self
                        .registry
                        .task(framework, &task)
                        .is_some_and(|t| t.kill_requested);
                    if killed {
                        self.kill_command_task(framework, executor, None);
                    }
                } else if kind == ExecutorKind::Default {
                    self.watch(framework, executor, &container);
                    self.default_executor_launched(framework, executor);
                    return;
                } else {
                    self.arm_registration_timeout(framework, executor, &container);
                }
                self.watch(framework, executor, &container);
            }
            Err(reason) => {
                tracing::warn!(framework, executor, %reason, "executor launch failed");
                let message = format!("Failed to launch container: {reason}");
                self.fail_live_tasks(
                    framework,
                    executor,
                    TaskState::TaskFailed,
                    &message,
                    "REASON_CONTAINER_LAUNCH_FAILED",
                );
                if kind != ExecutorKind::Command {
                    // The master holds the executor's resources until it hears it is
                    // gone; no process ran, so there is no status (Mesos sends -1).
                    self.send_executor_exited(framework, executor, -1);
                }
                self.executor_ended(framework, executor);
            }
        }
    }

    fn watch(&self, framework: &str, executor: &str, container: &str) {
        let c = self.containerizer.clone();
        let tx = self.tx.clone();
        let id = ContainerId::new(container);
        let (framework, executor) = (framework.to_owned(), executor.to_owned());
        tokio::spawn(async move {
            let termination = c.wait(&id).await.ok();
            let _ = tx.send(Input::Ended {
                framework,
                executor,
                termination,
            });
        });
    }

    fn arm_registration_timeout(&self, framework: &str, executor: &str, container: &str) {
        let tx = self.tx.clone();
        let timeout = self.cfg.executor_registration_timeout;
        let (framework, executor, container) = (
            framework.to_owned(),
            executor.to_owned(),
            container.to_owned(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let _ = tx.send(Input::RegistrationDeadline {
                framework,
                executor,
                container,
            });
        });
    }

    /// The executor's container ended.
    fn ended(&mut self, framework: &str, executor: &str, termination: Option<TerminationRecord>) {
        let Some(e) = self.registry.executor(framework, executor) else {
            return;
        };
        if e.kind == ExecutorKind::Default {
            self.default_executor_ended(framework, executor, termination);
        } else if e.kind == ExecutorKind::Command {
            let task = executor.to_owned();
            let killed = e.task(&task).is_some_and(|t| t.kill_requested);
            let live = e.launched.contains_key(&task);
            if live {
                let (state, message, reason) = command_outcome(termination.as_ref(), killed);
                if let Some(mut s) = self.status(framework, &task, state) {
                    s.message = Some(message);
                    s.reason = reason;
                    self.enqueue(framework, s);
                }
            }
        } else {
            let how = describe_wait(termination.as_ref().and_then(|t| t.wait_status));
            let message = format!("Executor terminated: {how}");
            let reason = termination
                .as_ref()
                .and_then(|t| t.reason.clone())
                .unwrap_or_else(|| "REASON_EXECUTOR_TERMINATED".into());
            self.fail_live_tasks(
                framework,
                executor,
                TaskState::TaskFailed,
                &message,
                &reason,
            );
            let status = termination
                .as_ref()
                .and_then(|t| t.wait_status)
                .unwrap_or(9);
            self.send_executor_exited(framework, executor, status);
        }
        self.executor_ended(framework, executor);
    }

    /// A task or group for an executor this agent does not run was refused: the master
    /// charged the executor's resources when it sent it, so it hears the executor exited
    /// (status -1), as Mesos's agent tells it, although nothing was launched.
    pub(super) fn executor_never_launched(&self, framework: &str, executor: &str) {
        if self.registry.executor(framework, executor).is_none() {
            self.send_executor_exited(framework, executor, -1);
        }
    }

    /// Tells the master the executor is gone, so that it frees what the executor held.
    pub(super) fn send_executor_exited(&self, framework: &str, executor: &str, status: i32) {
        let link = self.link.clone();
        let (fid, eid) = (Id::new(framework), Id::new(executor));
        tokio::spawn(async move {
            link.send(|agent_id| AgentCall::ExecutorExited {
                agent_id,
                framework_id: fid,
                executor_id: eid,
                status,
            })
            .await;
        });
    }

    fn executor_ended(&mut self, framework: &str, executor: &str) {
        self.registry
            .set_executor_state(framework, executor, ExecutorState::Terminated);
        self.resizing
            .remove(&(framework.to_owned(), executor.to_owned()));
        if let Some(s) = self
            .executors
            .remove(&(framework.to_owned(), executor.to_owned()))
        {
            s.stream.close();
        }
        if let Some(container) = self.registry.finish_executor_if_done(framework, executor) {
            self.schedule_removal(container);
        }
        self.forget_framework_if_done(framework);
    }

    /// Ends every task of the executor that has not ended, with updates from the agent.
    fn fail_live_tasks(
        &mut self,
        framework: &str,
        executor: &str,
        state: TaskState,
        message: &str,
        reason: &str,
    ) {
        let Some(e) = self.registry.executor(framework, executor) else {
            return;
        };
        let live: Vec<String> = e
            .live_tasks()
            .map(|t| t.info.task_id.value.clone())
            .collect();
        for task in live {
            if let Some(mut s) = self.status(framework, &task, state) {
                s.message = Some(message.to_owned());
                s.reason = Some(reason.to_owned());
                s.source = Some("SOURCE_AGENT".into());
                self.enqueue(framework, s);
            }
        }
    }

    fn kill_task(&mut self, framework: &str, task: &str, policy: Option<KillPolicy>) {
        let Some(e) = self.registry.executor_of(framework, task) else {
            tracing::warn!(
                framework,
                task,
                "KILL of a task this agent does not run; ignored"
            );
            return;
        };
        let executor = e.info.executor_id.value.clone();
        let Some(t) = e.task(task) else {
            return;
        };
        if t.state.is_terminal() {
            return;
        }
        let queued = e.queued.contains_key(task);
        match e.kind {
            ExecutorKind::Default => self.kill_group_task(framework, &executor, task, policy),
            ExecutorKind::Custom if queued && t.group.is_some() => {
                self.kill_queued_group(framework, &executor, task)
            }
            ExecutorKind::Command => {
                if !self.registry.mark_kill_requested(framework, task) {
                    return;
                }
                let running = self
                    .registry
                    .executor(framework, &executor)
                    .is_some_and(|e| e.state == ExecutorState::Running);
                // A task still launching is killed once its launch returns.
                if running {
                    self.kill_command_task(framework, &executor, policy);
                }
            }
            ExecutorKind::Custom if queued => self.kill_queued(framework, task),
            ExecutorKind::Custom => {
                self.registry.mark_kill_requested(framework, task);
                match self
                    .executors
                    .get(&(framework.to_owned(), executor.clone()))
                {
                    Some(s) => s.stream.send(ExecutorEvent::Kill {
                        task_id: Id::new(task),
                        kill_policy: policy,
                    }),
                    None => {
                        tracing::warn!(framework, task, executor = %executor, "cannot pass a KILL on: the executor is not subscribed")
                    }
                }
            }
        }
    }

    /// A task that never reached its executor: it just ends, KILLED.
    /// TASK_KILLING for `task`, if its framework understands that state.
    pub(super) fn report_killing(&mut self, framework: &str, task: &str) {
        let killing_state = self
            .registry
            .frameworks
            .get(framework)
            .is_some_and(|f| f.info.has_capability("TASK_KILLING_STATE"));
        if killing_state {
            if let Some(s) = self.status(framework, task, TaskState::TaskKilling) {
                self.enqueue(framework, s);
            }
        }
    }

    /// Kills `task` and the rest of its group while they wait for their executor: Mesos
    /// kills a group that has not reached its executor as a whole.
    pub(super) fn kill_queued_group(&mut self, framework: &str, executor: &str, task: &str) {
        let Some(e) = self.registry.executor(framework, executor) else {
            return;
        };
        let group = e.queued.get(task).and_then(|q| q.group);
        let members: Vec<String> = e
            .queued
            .values()
            .filter(|q| q.group == group)
            .map(|q| q.info.task_id.value.clone())
            .collect();
        for member in members {
            self.kill_queued(framework, &member);
        }
    }

    fn kill_queued(&mut self, framework: &str, task: &str) {
        if let Some(mut s) = self.status(framework, task, TaskState::TaskKilled) {
            s.source = Some("SOURCE_AGENT".into());
            s.reason = Some("REASON_TASK_KILLED_DURING_LAUNCH".into());
            s.message = Some("Killed before the executor subscribed".into());
            self.enqueue(framework, s);
        }
    }

    /// SIGTERM to the command, TASK_KILLING if the framework understands it, and SIGKILL
    /// of the container after the grace period.
    fn kill_command_task(&mut self, framework: &str, executor: &str, policy: Option<KillPolicy>) {
        let Some(e) = self.registry.executor(framework, executor) else {
            return;
        };
        let container = e.container_id.clone();
        let task_policy = e
            .launched
            .get(executor)
            .and_then(|t| t.info.kill_policy.clone());
        let grace = policy
            .or(task_policy)
            .and_then(|p| p.grace_period)
            .map(|n| Duration::from_nanos(n.nanoseconds.max(0) as u64))
            .unwrap_or(DEFAULT_KILL_GRACE);
        self.report_killing(framework, executor);
        let c = self.containerizer.clone();
        let tx = self.tx.clone();
        let (framework, executor) = (framework.to_owned(), executor.to_owned());
        tokio::spawn(async move {
            let id = ContainerId::new(&container);
            if !stop_gracefully(&c, &id, grace).await {
                return;
            }
            let _ = tx.send(Input::KillDeadline {
                framework,
                executor,
                container,
            });
        });
    }

    fn shutdown_executor(&mut self, framework: &str, executor: &str) {
        let Some(e) = self.registry.executor(framework, executor) else {
            return;
        };
        if e.state == ExecutorState::Terminated {
            return;
        }
        let container = e.container_id.clone();
        match e.kind {
            ExecutorKind::Command => {
                let task = executor.to_owned();
                self.kill_task(framework, &task, None);
            }
            ExecutorKind::Default => self.shutdown_default_executor(framework, executor),
            ExecutorKind::Custom => {
                self.registry
                    .set_executor_state(framework, executor, ExecutorState::Terminating);
                match self
                    .executors
                    .get(&(framework.to_owned(), executor.to_owned()))
                {
                    Some(s) => {
                        s.stream.send(ExecutorEvent::Shutdown);
                        let tx = self.tx.clone();
                        let grace = self.cfg.executor_shutdown_grace;
                        let (framework, executor) = (framework.to_owned(), executor.to_owned());
                        tokio::spawn(async move {
                            tokio::time::sleep(grace).await;
                            let _ = tx.send(Input::KillDeadline {
                                framework,
                                executor,
                                container,
                            });
                        });
                    }
                    None => self.kill_container(&container),
                }
            }
        }
    }

    fn kill_container(&self, container: &str) {
        let c = self.containerizer.clone();
        let id = ContainerId::new(container);
        tokio::spawn(async move {
            if let Err(e) = c.kill(&id, None).await {
                tracing::debug!(container = %id, error = %error_chain(&e), "kill after the grace period");
            }
        });
    }

    fn forget_framework_if_done(&mut self, framework: &str) {
        if !self.shutting_down.contains(framework) {
            return;
        }
        let done = self.registry.frameworks.get(framework).is_none_or(|f| {
            f.executors
                .values()
                .all(|e| e.state == ExecutorState::Terminated)
        });
        if !done {
            return;
        }
        self.shutting_down.remove(framework);
        // The master forgot the framework: nobody will acknowledge its updates.
        self.updates.remove_framework(framework);
        for container in self.registry.complete_framework(framework) {
            self.schedule_removal(container);
        }
        tracing::info!(framework, "framework shut down and forgotten");
    }

    // ---- Status updates -------------------------------------------------------------

    fn blank_status(&self, task: &Id, state: TaskState) -> TaskStatus {
        TaskStatus {
            task_id: task.clone(),
            state,
            message: None,
            source: Some("SOURCE_EXECUTOR".into()),
            reason: None,
            data: None,
            agent_id: self.agent_id.clone().map(Id::new),
            executor_id: None,
            timestamp: Some(holdfast_checkpoint::records::now_secs()),
            uuid: Some(ids::update_uuid()),
            healthy: None,
            container_status: None,
            unreachable_time: None,
            extra: Default::default(),
        }
    }

    /// A new update of `task` from its executor (the agent, for command tasks). A task
    /// of the default executor reports its own container, nested in the executor's.
    fn status(&self, framework: &str, task: &str, state: TaskState) -> Option<TaskStatus> {
        let e = self.registry.executor_of(framework, task)?;
        let executor_container = ContainerId::new(&e.container_id);
        let container_id = match e.task(task).and_then(|t| t.container.as_deref()) {
            Some(nested) => executor_container.child(nested),
            None => executor_container,
        };
        let executor_pid = self
            .containerizer
            .workload_pid(&container_id)
            .and_then(|p| u32::try_from(p).ok());
        Some(TaskStatus {
            executor_id: Some(e.info.executor_id.clone()),
            container_status: Some(ContainerStatus {
                container_id,
                executor_pid,
                network_infos: Vec::new(),
                unenforced_limits: Vec::new(),
            }),
            ..self.blank_status(&Id::new(task), state)
        })
    }

    fn enqueue(&mut self, framework: &str, status: TaskStatus) {
        let task = status.task_id.value.clone();
        let recorded = status.clone();
        match self.updates.add(framework, status, Instant::now()) {
            Added::Queued => self.registry.record_status(framework, &recorded),
            // An executor may send an update again; the first one is on its way.
            Added::Duplicate => {
                tracing::debug!(framework, task = %task, "duplicate status update dropped")
            }
            other => tracing::warn!(framework, task = %task, ?other, "status update dropped"),
        }
    }

    fn flush_updates(&mut self) {
        if !self.connected {
            return;
        }
        for (framework, status) in self.updates.due(Instant::now()) {
            let link = self.link.clone();
            let fid = Id::new(&framework);
            tokio::spawn(async move {
                link.send(|agent_id| AgentCall::Update {
                    agent_id,
                    framework_id: fid,
                    status,
                })
                .await;
            });
        }
    }

    fn acknowledged(&mut self, framework: &str, task: &str, uuid: &str) {
        match self
            .updates
            .acknowledge(framework, task, uuid, Instant::now())
        {
            Acked::Ignored => {
                tracing::debug!(
                    framework,
                    task,
                    uuid,
                    "acknowledgement of no pending update"
                );
            }
            Acked::Done { status, terminal } => {
                let executor = status.executor_id.as_ref().map(|e| e.value.clone());
                if let Some(eid) = &executor {
                    if status.source.as_deref() == Some("SOURCE_EXECUTOR") {
                        if let Some(s) = self.executors.get(&(framework.to_owned(), eid.clone())) {
                            s.stream.send(ExecutorEvent::Acknowledged {
                                task_id: status.task_id.clone(),
                                uuid: uuid.to_owned(),
                            });
                        }
                    }
                }
                if terminal {
                    if let Some(container) =
                        self.registry.task_acknowledged_terminal(framework, task)
                    {
                        self.schedule_removal(container);
                    }
                }
            }
        }
    }

    // ---- Custom executors -----------------------------------------------------------

    fn executor_call(
        &mut self,
        framework: &str,
        executor: &str,
        call: ExecutorCall,
    ) -> Result<(), (u16, String)> {
        if !self.registry.frameworks.contains_key(framework) {
            return Err((400, "Framework cannot be found".into()));
        }
        let Some(e) = self.registry.executor(framework, executor) else {
            return Err((400, "Executor cannot be found".into()));
        };
        if e.kind != ExecutorKind::Custom {
            let which = match e.kind {
                ExecutorKind::Default => "default",
                _ => "command",
            };
            return Err((
                400,
                format!("Executor '{executor}' is the agent's built-in {which} executor"),
            ));
        }
        match call {
            ExecutorCall::Subscribe {
                unacknowledged_tasks,
                unacknowledged_updates,
                stream,
            } => {
                if matches!(
                    e.state,
                    ExecutorState::Terminating | ExecutorState::Terminated
                ) {
                    return Err((400, format!("Executor '{executor}' is shutting down")));
                }
                // An executor that subscribes again (it lost its connection) says what it
                // sent that was not acknowledged; what the agent already has is dropped
                // as a duplicate, the rest is queued as if sent now.
                for status in unacknowledged_updates {
                    if let Err((_, why)) = self.executor_update(framework, executor, status) {
                        tracing::warn!(framework, executor, %why, "ignoring an unacknowledged update the executor reported");
                    }
                }
                if !unacknowledged_tasks.is_empty() {
                    tracing::debug!(
                        framework,
                        executor,
                        tasks = unacknowledged_tasks.len(),
                        "executor reported unacknowledged tasks"
                    );
                }
                let Some(e) = self.registry.executor(framework, executor) else {
                    return Err((400, "Executor cannot be found".into()));
                };
                let fw = self
                    .registry
                    .frameworks
                    .get(framework)
                    .map(|f| f.info.clone());
                stream.send(ExecutorEvent::Subscribed {
                    executor_info: e.info.clone(),
                    framework_info: fw,
                    agent_info: self.agent_info_json(),
                    container_id: e.container_id.clone(),
                });
                let id = stream.id();
                if let Some(old) = self.executors.insert(
                    (framework.to_owned(), executor.to_owned()),
                    Subscribed { id, stream },
                ) {
                    old.stream.close();
                }
                let launches = self.registry.executor_subscribed(framework, executor);
                if let Some(s) = self
                    .executors
                    .get(&(framework.to_owned(), executor.to_owned()))
                {
                    for launch in launches {
                        s.stream.send(match launch {
                            Launch::Task(task) => ExecutorEvent::Launch { task },
                            Launch::Group(tasks) => ExecutorEvent::LaunchGroup { tasks },
                        });
                    }
                }
                tracing::info!(framework, executor, "executor subscribed");
                Ok(())
            }
            ExecutorCall::Update(status) => self.executor_update(framework, executor, status),
            ExecutorCall::Message(data) => {
                let link = self.link.clone();
                let (fid, eid) = (Id::new(framework), Id::new(executor));
                tokio::spawn(async move {
                    link.send(|agent_id| AgentCall::Message {
                        agent_id,
                        framework_id: fid,
                        executor_id: eid,
                        data,
                    })
                    .await;
                });
                Ok(())
            }
        }
    }

    /// An update from a custom executor, checked and completed as the agent sends it on.
    fn executor_update(
        &mut self,
        framework: &str,
        executor: &str,
        mut status: TaskStatus,
    ) -> Result<(), (u16, String)> {
        let Some(e) = self.registry.executor(framework, executor) else {
            return Err((400, "Executor cannot be found".into()));
        };
        if status.uuid.is_none() {
            return Err((400, "Status update must carry a uuid".into()));
        }
        let task = status.task_id.value.clone();
        if e.task(&task).is_none() {
            return Err((
                400,
                format!("Task '{task}' is not a task of executor '{executor}'"),
            ));
        }
        status.source = Some("SOURCE_EXECUTOR".into());
        status.executor_id = Some(Id::new(executor));
        status.agent_id = self.agent_id.clone().map(Id::new);
        if status.timestamp.is_none() {
            status.timestamp = Some(holdfast_checkpoint::records::now_secs());
        }
        status
            .container_status
            .get_or_insert_with(|| ContainerStatus {
                container_id: ContainerId::new(&e.container_id),
                executor_pid: None,
                network_infos: Vec::new(),
                unenforced_limits: Vec::new(),
            });
        self.enqueue(framework, status);
        Ok(())
    }

    fn agent_info_json(&self) -> Value {
        let mut info = serde_json::to_value(self.link.info()).unwrap_or_default();
        if let (Some(obj), Some(id)) = (info.as_object_mut(), &self.agent_id) {
            obj.insert("id".into(), serde_json::json!({ "value": id }));
        }
        info
    }
}

/// Launches in flight at once. A launch mostly waits (journal commits for its checkpoint,
/// the supervisor's answer), so several per CPU keep the CPUs busy; unbounded, a burst of
/// a thousand tasks made each launch slower than the queue it replaced. Eight per CPU
/// launched three times as many tasks per second as two per CPU on a 2-core host.
fn launch_parallelism() -> usize {
    std::env::var("HOLDFAST_LAUNCH_PARALLELISM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() * 8)
                .unwrap_or(16)
        })
        .max(1)
}

/// SIGTERM to a task's workload (none with no grace), then its grace period. False when
/// the workload is gone or cannot be signalled: its container was killed outright.
async fn stop_gracefully(c: &Containerizer, id: &ContainerId, grace: Duration) -> bool {
    let signalled = if grace.is_zero() {
        Ok(())
    } else {
        c.signal_workload(id, libc::SIGTERM).await
    };
    if let Err(e) = signalled {
        tracing::warn!(container = %id, error = %error_chain(&e), "cannot stop the task gracefully; killing its container");
        let _ = c.kill(id, None).await;
        return false;
    }
    tokio::time::sleep(grace).await;
    true
}

/// How a command task ended, as Mesos's command executor reports it.
fn command_outcome(
    termination: Option<&TerminationRecord>,
    killed: bool,
) -> (TaskState, String, Option<String>) {
    let Some(t) = termination else {
        return (
            TaskState::TaskFailed,
            "The container ended and its exit status is unknown".into(),
            Some("REASON_EXECUTOR_TERMINATED".into()),
        );
    };
    if let Some(reason) = &t.reason {
        let message = t
            .message
            .clone()
            .unwrap_or_else(|| describe_wait(t.wait_status));
        return (TaskState::TaskFailed, message, Some(reason.clone()));
    }
    let message = describe_wait(t.wait_status);
    if killed {
        return (TaskState::TaskKilled, message, None);
    }
    match t.wait_status {
        Some(0) => (TaskState::TaskFinished, message, None),
        _ => (TaskState::TaskFailed, message, None),
    }
}

/// "Command exited with status 3" / "Command terminated with signal Killed".
fn describe_wait(wait_status: Option<i32>) -> String {
    match wait_status {
        None => "Command ended with an unknown status".into(),
        Some(w) if w & 0x7f == 0 => format!("Command exited with status {}", (w >> 8) & 0xff),
        Some(w) => format!("Command terminated with signal {}", signal_name(w & 0x7f)),
    }
}

/// strsignal(3)'s words for the signals tasks usually die of.
fn signal_name(sig: i32) -> String {
    match sig {
        1 => "Hangup".into(),
        2 => "Interrupt".into(),
        3 => "Quit".into(),
        4 => "Illegal instruction".into(),
        6 => "Aborted".into(),
        7 => "Bus error".into(),
        8 => "Floating point exception".into(),
        9 => "Killed".into(),
        11 => "Segmentation fault".into(),
        13 => "Broken pipe".into(),
        14 => "Alarm clock".into(),
        15 => "Terminated".into(),
        n => format!("Unknown signal {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(wait: Option<i32>) -> TerminationRecord {
        TerminationRecord {
            version: 1,
            wait_status: wait,
            finished_at: 0.0,
            message: None,
            reason: None,
            limitation: Vec::new(),
        }
    }

    #[test]
    fn command_outcomes_read_as_mesos_writes_them() {
        let (s, m, r) = command_outcome(Some(&term(Some(0))), false);
        assert_eq!(
            (s, m.as_str(), r),
            (
                TaskState::TaskFinished,
                "Command exited with status 0",
                None
            )
        );
        let (s, m, _) = command_outcome(Some(&term(Some(3 << 8))), false);
        assert_eq!(
            (s, m.as_str()),
            (TaskState::TaskFailed, "Command exited with status 3")
        );
        let (s, m, _) = command_outcome(Some(&term(Some(15))), true);
        assert_eq!(
            (s, m.as_str()),
            (
                TaskState::TaskKilled,
                "Command terminated with signal Terminated"
            )
        );
        let (s, m, _) = command_outcome(Some(&term(Some(9))), false);
        assert_eq!(
            (s, m.as_str()),
            (
                TaskState::TaskFailed,
                "Command terminated with signal Killed"
            )
        );
        let mut oom = term(Some(9));
        oom.reason = Some("REASON_CONTAINER_LIMITATION_MEMORY".into());
        oom.message = Some("Memory limit exceeded".into());
        let (s, m, r) = command_outcome(Some(&oom), true);
        assert_eq!(s, TaskState::TaskFailed, "a limit wins over a kill");
        assert_eq!(m, "Memory limit exceeded");
        assert_eq!(r.as_deref(), Some("REASON_CONTAINER_LIMITATION_MEMORY"));
        assert_eq!(command_outcome(None, false).0, TaskState::TaskFailed);
    }
}
