//! The built-in default executor: what Mesos's `mesos-default-executor` does for task
//! groups, done by the cluster task itself (as for the command executor), so no executor
//! process speaks the executor API.
//!
//! The executor has a container of its own, holding its resources and its live tasks'
//! (their containers share its cgroup), with an idle process as its workload
//! ([`task_group::holder_command`]). Each task runs in a container nested in it, whose
//! sandbox is `<executor sandbox>/containers/<id>`, linked from
//! `<executor sandbox>/tasks/<task id>` as Mesos does. The tasks of a group start
//! together (TASK_STARTING each, the containers, then TASK_RUNNING each) or, if one
//! cannot start, none runs. When a task of a group fails or is killed, the rest of its
//! group is killed. When no task is left the executor exits: its container is killed and
//! the master told (EXECUTOR_EXITED, status 0).

use holdfast_api::agent::UpdateContainer;
use holdfast_api::scheduler::ExecutorInfo;
use holdfast_api::v1::validate_id_component;

use super::*;
use crate::task_group::Member;

/// An update of a default executor's container and where its result goes.
pub(super) type Resize = (UpdateContainer, oneshot::Sender<Result<(), String>>);

impl Actor {
    /// RUN_TASK_GROUP: to the default executor, or delivered to a custom one.
    pub(super) fn run_task_group(
        &mut self,
        framework: FrameworkInfo,
        executor: ExecutorInfo,
        tasks: Vec<TaskInfo>,
    ) {
        let Some(fid) = framework.id.as_ref().map(|i| i.value.clone()) else {
            tracing::warn!("RUN_TASK_GROUP without a framework id; ignored");
            return;
        };
        self.shutting_down.remove(&fid);
        let eid = executor.executor_id.value.clone();
        // A group the default executor cannot run is refused whole, like a bad type.
        let kind = task_group::executor_kind(&executor).and_then(|k| match k {
            ExecutorKind::Default => task_group::refusal(&tasks).map_or(Ok(k), Err),
            _ => Ok(k),
        });
        let kind = match kind {
            Ok(k) => k,
            Err(why) => {
                return self.refuse_group(
                    &framework,
                    &eid,
                    &tasks,
                    "REASON_TASK_GROUP_INVALID",
                    &why,
                )
            }
        };
        let work_dir = self.cfg.work_dir.clone();
        let placed =
            self.registry
                .add_task_group(framework.clone(), executor, kind, tasks.clone(), || {
                    let cid = ids::uuid4();
                    let dir = layout::sandbox_path(&work_dir, &ContainerId::new(&cid));
                    (cid, dir)
                });
        let (placement, group) = match placed {
            Ok(p) => p,
            Err(reason) => {
                let ending = self.registry.executor(&fid, &eid).is_some_and(|e| {
                    matches!(
                        e.state,
                        ExecutorState::Terminating | ExecutorState::Terminated
                    )
                });
                let code = if ending {
                    "REASON_EXECUTOR_TERMINATED"
                } else {
                    "REASON_TASK_GROUP_INVALID"
                };
                // A task this agent already runs keeps running; the others are refused.
                let unknown: Vec<TaskInfo> = tasks
                    .into_iter()
                    .filter(|t| self.registry.task(&fid, &t.task_id.value).is_none())
                    .collect();
                return self.refuse_group(&framework, &eid, &unknown, code, &reason);
            }
        };
        tracing::info!(framework = %fid, executor = %eid, group, tasks = tasks.len(), ?kind, "task group placed");
        match placement {
            Placement::NewExecutor { .. } => self.launch_executor(&fid, &eid),
            Placement::Existing { subscribed, .. } => match kind {
                ExecutorKind::Custom if subscribed => {
                    match self.executors.get(&(fid.clone(), eid.clone())) {
                        Some(s) => s.stream.send(ExecutorEvent::LaunchGroup { tasks }),
                        None => {
                            tracing::warn!(framework = %fid, executor = %eid, "cannot pass a task group on: the executor is not connected")
                        }
                    }
                }
                // Sent when it subscribes.
                ExecutorKind::Custom => {}
                // Its container is still being launched: the group starts once it is up.
                _ if !subscribed => {}
                _ => self.start_group(&fid, &eid, group),
            },
        }
    }

    /// Every task of a group that cannot run: TASK_FAILED with `code` and `reason`; and
    /// the master hears its executor exited if the agent does not run it.
    fn refuse_group(
        &mut self,
        framework: &FrameworkInfo,
        executor: &str,
        tasks: &[TaskInfo],
        code: &str,
        reason: &str,
    ) {
        tracing::warn!(framework = ?framework.id.as_ref().map(|i| &i.value), %reason, "refusing a task group");
        let message = format!("Task group refused: {reason}");
        for t in tasks {
            self.refuse_task_with(framework, t, code, &message);
        }
        if let Some(fid) = framework.id.as_ref() {
            self.executor_never_launched(&fid.value, executor);
        }
    }

    /// The default executor's container is up: it runs, and the groups that waited for
    /// it start (unless it was told to shut down meanwhile).
    pub(super) fn default_executor_launched(&mut self, framework: &str, executor: &str) {
        if self
            .registry
            .executor(framework, executor)
            .is_some_and(|e| e.state == ExecutorState::Registering)
        {
            self.registry
                .set_executor_state(framework, executor, ExecutorState::Running);
        }
        let running = self
            .registry
            .executor(framework, executor)
            .is_some_and(|e| e.state == ExecutorState::Running);
        if running {
            for group in self.registry.queued_groups(framework, executor) {
                self.start_group(framework, executor, group);
            }
        }
        // Killed while its container was launching: nothing to run.
        self.resize_or_stop(framework, executor, false);
    }

    /// Starts task group `group` of a running default executor: TASK_STARTING for each
    /// task, the executor's container resized to hold them, then each task's container.
    fn start_group(&mut self, framework: &str, executor: &str, group: u64) {
        let started = self
            .registry
            .start_group(framework, executor, group, ids::uuid4);
        if started.is_empty() {
            return;
        }
        for (task, _) in &started {
            if let Some(s) = self.status(framework, &task.task_id.value, TaskState::TaskStarting) {
                self.enqueue(framework, s);
            }
        }
        let Some(e) = self.registry.executor(framework, executor) else {
            return;
        };
        let parent = ContainerId::new(&e.container_id);
        let sandbox = e.directory.clone();
        let user = self
            .registry
            .frameworks
            .get(framework)
            .map(|f| f.info.user.clone())
            .filter(|u| !u.is_empty());
        // The executor's container grows to hold the group before its tasks start.
        let resized = self
            .executor_resize(framework, executor)
            .map(|update| self.resize(framework, executor, update));
        let mut launches = Vec::new();
        for (task, cid) in started {
            let id = task.task_id.value.clone();
            let launch = task_group::task_launch(&task, parent.child(&cid)).map(|mut l| {
                if let Some(cmd) = l.command.as_mut() {
                    // As for the executor: the framework's user unless the command names one.
                    if cmd.user.is_none() {
                        cmd.user = user.clone();
                    }
                    let role = task
                        .resources
                        .iter()
                        .find_map(|r| r.allocation_info.as_ref().and_then(|a| a.role.clone()));
                    cmd.environment =
                        Some(self.task_environment(role.as_deref(), cmd.environment.take()));
                }
                l
            });
            launches.push((id, cid, launch));
        }
        let c = self.containerizer.clone();
        let tx = self.tx.clone();
        let slots = self.launch_slots.clone();
        let (framework, executor) = (framework.to_owned(), executor.to_owned());
        tokio::spawn(async move {
            if let Some(resized) = resized {
                let resized = resized
                    .await
                    .unwrap_or_else(|_| Err("the executor's container is gone".to_owned()));
                if let Err(e) = resized {
                    let why = format!(
                        "cannot give the executor's container the task group's resources: {e}"
                    );
                    let results = launches
                        .into_iter()
                        .map(|(id, _, _)| (id, Err(why.clone())))
                        .collect();
                    let _ = tx.send(Input::GroupLaunched {
                        framework,
                        executor,
                        results,
                    });
                    return;
                }
            }
            // Every container of the group launches at once; the results come back
            // together, in the group's order.
            let mut pending = Vec::new();
            for (id, cid, launch) in launches {
                let handle = launch.map(|l| {
                    let (c, slots, sandbox, id) =
                        (c.clone(), slots.clone(), sandbox.clone(), id.clone());
                    tokio::spawn(async move {
                        let _slot = slots.acquire_owned().await;
                        c.launch(l).await.map_err(|e| error_chain(&e))?;
                        link_task_sandbox(&sandbox, &id, &cid).await;
                        Ok::<(), String>(())
                    })
                });
                pending.push((id, handle));
            }
            let mut results = Vec::new();
            for (id, handle) in pending {
                let result = match handle {
                    Ok(h) => h
                        .await
                        .unwrap_or_else(|e| Err(format!("the launch did not complete: {e}"))),
                    Err(why) => Err(why),
                };
                results.push((id, result));
            }
            let _ = tx.send(Input::GroupLaunched {
                framework,
                executor,
                results,
            });
        });
    }

    /// The environment a task of the default executor gets on top of the container's own
    /// (`MESOS_SANDBOX`, its sandbox; `MESOS_CONTAINER_ID`), as Mesos's default executor
    /// sets it; the command's own variables win.
    fn task_environment(&self, role: Option<&str>, own: Option<Environment>) -> Environment {
        let ip = self
            .cfg
            .endpoint
            .rsplit_once(':')
            .map_or(self.cfg.endpoint.as_str(), |(host, _)| host);
        let mut variables = vec![
            Variable {
                name: "MESOS_CONTAINER_IP".into(),
                kind: None,
                value: Some(ip.to_owned()),
            },
            Variable {
                name: "MESOS_ALLOCATION_ROLE".into(),
                kind: None,
                value: Some(role.unwrap_or("*").to_owned()),
            },
        ];
        variables.extend(own.into_iter().flat_map(|e| e.variables));
        Environment { variables }
    }

    /// The containers of a group were launched, or some were not.
    pub(super) fn group_launched(
        &mut self,
        framework: &str,
        executor: &str,
        results: Vec<(String, Result<(), String>)>,
    ) {
        // Tasks that ended meanwhile (their executor's container ended) stay ended.
        let live = |s: &Self, task: &str| {
            s.registry
                .task(framework, task)
                .is_some_and(|t| !t.state.is_terminal())
        };
        let with_kills: Vec<(String, Result<(), String>, bool)> = results
            .into_iter()
            .map(|(task, result)| {
                let killed = self
                    .registry
                    .task(framework, &task)
                    .is_some_and(|t| t.kill_requested);
                (task, result, killed)
            })
            .collect();
        if let Some(outcome) = task_group::failed_launch(&with_kills) {
            let group = with_kills
                .iter()
                .find_map(|(t, _, _)| self.registry.task(framework, t).and_then(|t| t.group));
            if let Some(g) = group {
                self.registry.begin_killing_group(framework, executor, g);
            }
            // None of the group runs: what did start is killed outright.
            for (task, result, _) in &with_kills {
                if result.is_ok() && live(self, task) {
                    if let Some(cid) = self.nested_container(framework, task) {
                        self.kill_container_id(cid);
                    }
                }
            }
            tracing::warn!(
                framework,
                executor,
                "a task group could not be launched whole"
            );
            for (task, state, message) in outcome {
                if !live(self, &task) {
                    continue;
                }
                if let Some(mut s) = self.status(framework, &task, state) {
                    s.message = Some(message);
                    if state == TaskState::TaskFailed {
                        s.reason = Some("REASON_CONTAINER_LAUNCH_FAILED".into());
                    }
                    self.enqueue(framework, s);
                }
            }
            self.resize_or_stop(framework, executor, true);
            return;
        }
        for (task, _, killed) in with_kills {
            if !live(self, &task) {
                continue;
            }
            if let Some(s) = self.status(framework, &task, TaskState::TaskRunning) {
                self.enqueue(framework, s);
            }
            if let Some(cid) = self.nested_container(framework, &task) {
                self.watch_task(framework, executor, &task, cid);
            }
            // A KILL (or a shutdown) came while the group was launching.
            if killed {
                self.kill_group_task(framework, executor, &task, None);
            }
        }
    }

    /// The container a task of the default executor runs in.
    fn nested_container(&self, framework: &str, task: &str) -> Option<ContainerId> {
        let e = self.registry.executor_of(framework, task)?;
        let nested = e.task(task)?.container.as_deref()?;
        Some(ContainerId::new(&e.container_id).child(nested))
    }

    fn watch_task(&self, framework: &str, executor: &str, task: &str, id: ContainerId) {
        let c = self.containerizer.clone();
        let tx = self.tx.clone();
        let (framework, executor, task) =
            (framework.to_owned(), executor.to_owned(), task.to_owned());
        tokio::spawn(async move {
            let termination = c.wait(&id).await.ok();
            let _ = tx.send(Input::TaskEnded {
                framework,
                executor,
                task,
                container: id.value,
                termination,
            });
        });
    }

    /// A task's container ended: its terminal update, then the group policy, then the
    /// executor's size (or its exit, if that was its last task).
    pub(super) fn group_task_ended(
        &mut self,
        framework: &str,
        executor: &str,
        task: &str,
        container: &str,
        termination: Option<TerminationRecord>,
    ) {
        let Some(t) = self.registry.task(framework, task) else {
            return;
        };
        if t.state.is_terminal() || t.container.as_deref() != Some(container) {
            return;
        }
        let group = t.group;
        let (state, message, reason) = command_outcome(termination.as_ref(), t.kill_requested);
        tracing::info!(framework, executor, task, ?state, %message, "task of a group ended");
        if let Some(mut s) = self.status(framework, task, state) {
            s.message = Some(message);
            s.reason = reason;
            self.enqueue(framework, s);
        }
        if let Some(group) = group {
            self.apply_group_policy(framework, executor, group, task, state);
        }
        self.resize_or_stop(framework, executor, true);
    }

    /// When a task of a group failed or was killed, the rest of the group is killed.
    fn apply_group_policy(
        &mut self,
        framework: &str,
        executor: &str,
        group: u64,
        ended: &str,
        state: TaskState,
    ) {
        let Some(e) = self.registry.executor(framework, executor) else {
            return;
        };
        let members: Vec<Member> = e
            .group_tasks(group)
            .map(|t| Member {
                task: t.info.task_id.value.clone(),
                live: !t.state.is_terminal(),
                killing: t.killing,
            })
            .collect();
        let kills = task_group::kills_after_end(
            &members,
            ended,
            state,
            e.killing_groups.contains(&group),
            e.state == ExecutorState::Terminating,
        );
        let Some(kills) = kills else {
            return;
        };
        self.registry
            .begin_killing_group(framework, executor, group);
        if !kills.is_empty() {
            tracing::info!(framework, executor, task = ended, ?state, others = ?kills, "killing the rest of the task group");
        }
        for task in kills {
            self.kill_group_task(framework, executor, &task, None);
        }
    }

    /// Kills a task of the default executor with its kill policy: TASK_KILLING if the
    /// framework understands it, SIGTERM, and SIGKILL of its container after the grace
    /// period. A task whose group has not started ends at once, with its whole group.
    pub(super) fn kill_group_task(
        &mut self,
        framework: &str,
        executor: &str,
        task: &str,
        policy: Option<KillPolicy>,
    ) {
        let Some(e) = self.registry.executor(framework, executor) else {
            return;
        };
        let Some(t) = e.task(task) else {
            return;
        };
        if t.state.is_terminal() {
            return;
        }
        if e.queued.contains_key(task) {
            self.kill_queued_group(framework, executor, task);
            self.resize_or_stop(framework, executor, true);
            return;
        }
        if t.killing {
            // As Mesos: a second KILL does not restart the grace period.
            tracing::debug!(framework, task, "task is already being killed");
            return;
        }
        let launching = t.state == TaskState::TaskStarting;
        let grace = policy
            .or_else(|| t.info.kill_policy.clone())
            .and_then(|p| p.grace_period)
            .map(|n| Duration::from_nanos(n.nanoseconds.max(0) as u64))
            .unwrap_or(Duration::from_secs(task_group::DEFAULT_KILL_GRACE_SECS));
        if launching {
            // Killed as soon as its container is up.
            self.registry.mark_kill_requested(framework, task);
            return;
        }
        let Some(id) = self.nested_container(framework, task) else {
            return;
        };
        self.registry.begin_killing(framework, task);
        self.report_killing(framework, task);
        tracing::info!(framework, task, container = %id, ?grace, "killing a task of a group");
        let c = self.containerizer.clone();
        let tx = self.tx.clone();
        let (framework, executor, task) =
            (framework.to_owned(), executor.to_owned(), task.to_owned());
        tokio::spawn(async move {
            if !stop_gracefully(&c, &id, grace).await {
                return;
            }
            let _ = tx.send(Input::TaskKillDeadline {
                framework,
                executor,
                task,
                container: id.value,
            });
        });
    }

    /// A task's grace period is over: its container goes, if it still runs.
    pub(super) fn group_task_kill_deadline(
        &mut self,
        framework: &str,
        executor: &str,
        task: &str,
        container: &str,
    ) {
        let live = self
            .registry
            .task(framework, task)
            .is_some_and(|t| !t.state.is_terminal() && t.container.as_deref() == Some(container));
        if !live {
            return;
        }
        tracing::info!(
            framework,
            executor,
            task,
            "grace period over; killing the task's container"
        );
        if let Some(id) = self.nested_container(framework, task) {
            self.kill_container_id(id);
        }
    }

    /// SHUTDOWN of the default executor (its framework is going): every task is killed,
    /// with no group policy; after `--executor_shutdown_grace_period` whatever is left
    /// goes with the executor's container.
    pub(super) fn shutdown_default_executor(&mut self, framework: &str, executor: &str) {
        let Some(e) = self.registry.executor(framework, executor) else {
            return;
        };
        let container = e.container_id.clone();
        let tasks: Vec<String> = e
            .live_tasks()
            .map(|t| t.info.task_id.value.clone())
            .collect();
        self.registry
            .set_executor_state(framework, executor, ExecutorState::Terminating);
        for task in tasks {
            self.kill_group_task(framework, executor, &task, None);
        }
        let tx = self.tx.clone();
        let grace = self.cfg.executor_shutdown_grace;
        let (f, x) = (framework.to_owned(), executor.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = tx.send(Input::KillDeadline {
                framework: f,
                executor: x,
                container,
            });
        });
        self.resize_or_stop(framework, executor, true);
    }

    /// After tasks ended: with none left the executor exits (its container is killed;
    /// `default_executor_ended` reports a clean exit), else its container is resized to
    /// what its live tasks hold, if `resize`.
    fn resize_or_stop(&mut self, framework: &str, executor: &str, resize: bool) {
        let Some(e) = self.registry.executor(framework, executor) else {
            return;
        };
        if e.kind != ExecutorKind::Default {
            return;
        }
        let idle = e.live_tasks().next().is_none();
        let container = e.container_id.clone();
        match e.state {
            // Its launch returns to `default_executor_launched`, which decides then.
            ExecutorState::Registering | ExecutorState::Terminated => {}
            ExecutorState::Running | ExecutorState::Terminating if idle => {
                tracing::info!(
                    framework,
                    executor,
                    "no task left; the default executor exits"
                );
                self.registry
                    .set_executor_state(framework, executor, ExecutorState::Terminating);
                self.kill_container(&container);
            }
            ExecutorState::Running if resize => {
                if let Some(update) = self.executor_resize(framework, executor) {
                    // Not waited for: if it fails the container keeps what it had, which
                    // is more (the resizer logs why).
                    drop(self.resize(framework, executor, update));
                }
            }
            ExecutorState::Running | ExecutorState::Terminating => {}
        }
    }

    /// Hands `update` to the executor's resizer, which applies its updates one at a
    /// time in the order given; the receiver gets the result.
    fn resize(
        &mut self,
        framework: &str,
        executor: &str,
        update: UpdateContainer,
    ) -> oneshot::Receiver<Result<(), String>> {
        let (reply, result) = oneshot::channel();
        let key = (framework.to_owned(), executor.to_owned());
        let tx = self.resizing.entry(key).or_insert_with(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<Resize>();
            let c = self.containerizer.clone();
            // Ends when the executor ends (its sender is dropped).
            tokio::spawn(async move {
                while let Some((update, reply)) = rx.recv().await {
                    let id = update.container_id.clone();
                    let result = c.update(update).await.map_err(|e| error_chain(&e));
                    if let Err(why) = &result {
                        tracing::info!(container = %id, %why, "cannot resize the executor's container");
                    }
                    let _ = reply.send(result);
                }
            });
            tx
        });
        let _ = tx.send((update, reply));
        result
    }

    /// The UPDATE of the executor's container to its own resources plus its live tasks'
    /// (None if a task's limits cannot be read: that task fails its own launch).
    fn executor_resize(&mut self, framework: &str, executor: &str) -> Option<UpdateContainer> {
        match self.executor_size(framework, executor) {
            Ok(size) => Some(size),
            Err(why) => {
                tracing::debug!(framework, executor, %why, "not resizing the executor");
                None
            }
        }
    }

    /// What the executor's container holds now: its own resources plus its live tasks',
    /// with their limits summed. Its memory never goes down (as in Mesos: lowering it
    /// could OOM-kill tasks that still run), so memory is what the container held before
    /// if that is more; the registry remembers what it is given.
    pub(super) fn executor_size(
        &mut self,
        framework: &str,
        executor: &str,
    ) -> Result<UpdateContainer, String> {
        let e = self
            .registry
            .executor(framework, executor)
            .ok_or_else(|| format!("executor '{executor}' is not known"))?;
        let tasks: Vec<&TaskInfo> = e.live_tasks().map(|t| &t.info).collect();
        let limits = task_group::executor_limits(&e.info.resources, tasks.iter().copied())?;
        let resources = task_group::executor_resources(&e.info.resources, tasks.iter().copied());
        let (resources, limits, held) =
            task_group::grow_only_memory(resources, limits, e.held_memory);
        let update = UpdateContainer {
            container_id: ContainerId::new(&e.container_id),
            resources,
            limits,
            // Never lower than what it was given (above), but it may read lower: where
            // the memory controller is missing `memory.max` reads as unlimited, and any
            // value would count as lowering it.
            lower_memory_limit: true,
        };
        if let Some(e) = self.registry.executor_mut(framework, executor) {
            e.held_memory = held;
        }
        Ok(update)
    }

    /// The default executor's container ended: its tasks that had not ended end now
    /// (KILLED if a kill was asked for, else FAILED), and the master learns the executor
    /// exited: status 0 if the agent ended it with no task left, else its wait status.
    pub(super) fn default_executor_ended(
        &mut self,
        framework: &str,
        executor: &str,
        termination: Option<TerminationRecord>,
    ) {
        let Some(e) = self.registry.executor(framework, executor) else {
            return;
        };
        let live: Vec<(String, bool)> = e
            .live_tasks()
            .map(|t| (t.info.task_id.value.clone(), t.kill_requested))
            .collect();
        let clean = live.is_empty() && e.state == ExecutorState::Terminating;
        let how = describe_wait(termination.as_ref().and_then(|t| t.wait_status));
        let limit = termination.as_ref().and_then(|t| t.reason.clone());
        for (task, killed) in live {
            let (state, reason) = match (&limit, killed) {
                (Some(r), _) => (TaskState::TaskFailed, Some(r.clone())),
                (None, true) => (TaskState::TaskKilled, None),
                (None, false) => (
                    TaskState::TaskFailed,
                    Some("REASON_EXECUTOR_TERMINATED".to_owned()),
                ),
            };
            if let Some(mut s) = self.status(framework, &task, state) {
                s.message = Some(format!("Executor terminated: {how}"));
                s.reason = reason;
                s.source = Some("SOURCE_AGENT".into());
                self.enqueue(framework, s);
            }
        }
        let status = if clean {
            0
        } else {
            termination
                .as_ref()
                .and_then(|t| t.wait_status)
                .unwrap_or(9)
        };
        tracing::info!(framework, executor, status, "default executor exited");
        self.send_executor_exited(framework, executor, status);
    }

    fn kill_container_id(&self, id: ContainerId) {
        let c = self.containerizer.clone();
        tokio::spawn(async move {
            if let Err(e) = c.kill(&id, None).await {
                tracing::debug!(container = %id, error = %error_chain(&e), "kill of a task's container");
            }
        });
    }
}

/// `<executor sandbox>/tasks/<task id>` → `../containers/<container>`, where Mesos's
/// tools look for a task's sandbox. A task id that cannot be a file name gets no link
/// (the task runs all the same; its sandbox is still under `containers/`).
async fn link_task_sandbox(sandbox: &std::path::Path, task: &str, container: &str) {
    if let Err(why) = validate_id_component(task) {
        tracing::warn!(task, %why, "no tasks/<task id> link for this task's sandbox");
        return;
    }
    let tasks = sandbox.join("tasks");
    let link = tasks.join(task);
    let target = std::path::Path::new("..")
        .join(layout::NESTED)
        .join(container);
    let shown = link.display().to_string();
    let made = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&tasks)?;
        std::os::unix::fs::symlink(&target, &link)
    })
    .await;
    match made {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(link = %shown, error = %e, "cannot link the task's sandbox"),
        Err(e) => tracing::warn!(link = %shown, error = %e, "cannot link the task's sandbox"),
    }
}
