//! What the agent runs for frameworks: frameworks, their executors, and the executors'
//! tasks, as Mesos's agent keeps them.
//!
//! Pure and serializable, so it can be checkpointed and reported as it is. A command
//! task gets an executor of its own, with the task's id as executor id (as Mesos's
//! command executor does); tasks with an `ExecutorInfo` share that executor, and so do
//! the tasks of task groups (LAUNCH_GROUP) sent to the same executor id. Each executor
//! runs in one container; a task of the built-in default executor runs in a container
//! nested in it. A task moves from `queued` (its executor has not subscribed, or its
//! group's containers are not launched yet) to `launched`, and when it ends to
//! `terminated` until its terminal update is acknowledged, then to the executor's
//! `completed` list.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;

use holdfast_api::scheduler::{ExecutorInfo, FrameworkInfo, Id, TaskInfo, TaskState};
use serde::{Deserialize, Serialize};

use crate::task_group::HeldMemory;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorKind {
    /// The built-in command executor: the agent runs the task's command itself.
    Command,
    /// The framework's own executor, speaking the executor API.
    Custom,
    /// The built-in default executor (ExecutorInfo type DEFAULT) that runs task groups:
    /// each task in a container nested in the executor's.
    Default,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorState {
    /// Its container is being launched, or (custom) it has not subscribed yet.
    Registering,
    Running,
    /// Asked to shut down; its container is killed after the grace period.
    Terminating,
    Terminated,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub info: TaskInfo,
    pub state: TaskState,
    /// A KILL arrived: the task ends as TASK_KILLED whatever its exit status.
    #[serde(default)]
    pub kill_requested: bool,
    /// Every update made for it, oldest first (for the state endpoints).
    #[serde(default)]
    pub statuses: Vec<holdfast_api::scheduler::TaskStatus>,
    /// The task group it came in (numbered per executor), if it came in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<u64>,
    /// Default executor: the id of the task's container, nested in the executor's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Default executor: its kill has begun (SIGTERM sent, grace period running).
    #[serde(default)]
    pub killing: bool,
}

impl Task {
    fn new(info: TaskInfo, group: Option<u64>) -> Task {
        Task {
            info,
            state: TaskState::TaskStaging,
            kill_requested: false,
            statuses: Vec::new(),
            group,
            container: None,
            killing: false,
        }
    }
}

/// What to send a custom executor that (re)subscribed: its queued tasks, a group's
/// tasks together.
// Made and sent at once; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Launch {
    Task(TaskInfo),
    Group(Vec<TaskInfo>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Executor {
    pub info: ExecutorInfo,
    pub kind: ExecutorKind,
    pub container_id: String,
    pub directory: PathBuf,
    pub state: ExecutorState,
    /// Tasks waiting for the executor to subscribe.
    pub queued: BTreeMap<String, Task>,
    pub launched: BTreeMap<String, Task>,
    /// Ended, terminal update not yet acknowledged.
    pub terminated: BTreeMap<String, Task>,
    pub completed: VecDeque<Task>,
    /// The number the next task group sent to this executor gets.
    #[serde(default)]
    pub next_group: u64,
    /// Default executor: groups whose remaining tasks are being killed because one of
    /// them failed or was killed (Mesos's `killingTaskGroup`).
    #[serde(default)]
    pub killing_groups: BTreeSet<u64>,
    /// Default executor: the memory its container was last given (it never shrinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_memory: Option<HeldMemory>,
}

impl Executor {
    fn new(
        info: ExecutorInfo,
        kind: ExecutorKind,
        container_id: String,
        directory: PathBuf,
    ) -> Self {
        Executor {
            info,
            kind,
            container_id,
            directory,
            state: ExecutorState::Registering,
            queued: BTreeMap::new(),
            launched: BTreeMap::new(),
            terminated: BTreeMap::new(),
            completed: VecDeque::new(),
            next_group: 0,
            killing_groups: BTreeSet::new(),
            held_memory: None,
        }
    }

    /// Every task that has not reached a terminal state.
    pub fn live_tasks(&self) -> impl Iterator<Item = &Task> {
        self.queued.values().chain(self.launched.values())
    }

    pub fn task(&self, id: &str) -> Option<&Task> {
        self.queued
            .get(id)
            .or_else(|| self.launched.get(id))
            .or_else(|| self.terminated.get(id))
    }

    fn task_mut(&mut self, id: &str) -> Option<&mut Task> {
        if let Some(t) = self.queued.get_mut(id) {
            return Some(t);
        }
        if let Some(t) = self.launched.get_mut(id) {
            return Some(t);
        }
        self.terminated.get_mut(id)
    }

    /// Every task of task group `group` the executor still holds, ended or not.
    pub fn group_tasks(&self, group: u64) -> impl Iterator<Item = &Task> {
        self.live_tasks()
            .chain(self.terminated.values())
            .chain(self.completed.iter())
            .filter(move |t| t.group == Some(group))
    }

    /// Done with: ended, and no task waits for an acknowledgement.
    pub fn is_finished(&self) -> bool {
        self.state == ExecutorState::Terminated
            && self.queued.is_empty()
            && self.launched.is_empty()
            && self.terminated.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Framework {
    pub info: FrameworkInfo,
    pub executors: BTreeMap<String, Executor>,
    pub completed_executors: VecDeque<Executor>,
}

impl Framework {
    /// The executor holding `task` (live or awaiting acknowledgement). A command task's
    /// executor is named after the task, so most lookups need no walk over the executors.
    fn executor_with_task(&self, task: &str) -> Option<&Executor> {
        match self.executors.get(task) {
            Some(e) if e.task(task).is_some() => Some(e),
            _ => self.executors.values().find(|e| e.task(task).is_some()),
        }
    }

    fn executor_with_task_mut(&mut self, task: &str) -> Option<&mut Executor> {
        if self
            .executors
            .get(task)
            .is_some_and(|e| e.task(task).is_some())
        {
            return self.executors.get_mut(task);
        }
        self.executors.values_mut().find(|e| e.task(task).is_some())
    }
}

/// Where a new task goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// A new executor: its container must be launched.
    NewExecutor { executor_id: String },
    /// An executor that exists: `subscribed` says whether the task can be sent now.
    Existing {
        executor_id: String,
        subscribed: bool,
    },
}

/// Shut-down frameworks kept (Mesos's `--max_completed_frameworks` default).
pub const MAX_COMPLETED_FRAMEWORKS: usize = 50;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    pub frameworks: BTreeMap<String, Framework>,
    #[serde(default)]
    pub completed_frameworks: VecDeque<Framework>,
    /// Finished executors kept per framework for the state endpoints and sandboxes
    /// (`--max_completed_executors_per_framework`).
    pub max_completed_executors: usize,
}

impl Registry {
    pub fn new(max_completed_executors: usize) -> Registry {
        Registry {
            frameworks: BTreeMap::new(),
            completed_frameworks: VecDeque::new(),
            max_completed_executors,
        }
    }

    pub fn executor(&self, framework: &str, executor: &str) -> Option<&Executor> {
        self.frameworks.get(framework)?.executors.get(executor)
    }

    pub fn executor_mut(&mut self, framework: &str, executor: &str) -> Option<&mut Executor> {
        self.frameworks
            .get_mut(framework)?
            .executors
            .get_mut(executor)
    }

    /// The executor that runs `task`, if the task is live or awaiting acknowledgement.
    pub fn executor_of(&self, framework: &str, task: &str) -> Option<&Executor> {
        self.frameworks.get(framework)?.executor_with_task(task)
    }

    pub fn task(&self, framework: &str, task: &str) -> Option<&Task> {
        self.executor_of(framework, task)?.task(task)
    }

    /// Places a task the master sent. `container_id` and `directory` are used only if a
    /// new executor is made. A command task's executor is synthesized from the task.
    pub fn add_task(
        &mut self,
        framework: FrameworkInfo,
        task: TaskInfo,
        container_id: impl FnOnce() -> (String, PathBuf),
    ) -> Result<Placement, String> {
        let Some(framework_id) = framework.id.clone() else {
            return Err("the framework has no id".into());
        };
        let fw = self
            .frameworks
            .entry(framework_id.value.clone())
            .or_insert_with(|| Framework {
                info: framework.clone(),
                executors: BTreeMap::new(),
                completed_executors: VecDeque::new(),
            });
        fw.info = framework;
        let task_id = task.task_id.value.clone();
        if fw.executor_with_task(&task_id).is_some() {
            return Err(format!("task '{task_id}' is already known to this agent"));
        }
        let (info, kind) = match &task.executor {
            Some(e) => {
                let mut info = e.clone();
                info.framework_id
                    .get_or_insert_with(|| framework_id.clone());
                (info, ExecutorKind::Custom)
            }
            None => (
                command_executor_info(&framework_id, &task),
                ExecutorKind::Command,
            ),
        };
        let executor_id = info.executor_id.value.clone();
        let entry = Task::new(task, None);
        if let Some(e) = fw.executors.get_mut(&executor_id) {
            if e.kind == ExecutorKind::Default {
                return Err(format!(
                    "executor '{executor_id}' is the default executor, which runs task groups only; launch the task with LAUNCH_GROUP or give it an executor id of its own"
                ));
            }
            if kind == ExecutorKind::Command || e.kind == ExecutorKind::Command {
                return Err(format!(
                    "executor '{executor_id}' already runs a command task; a command task needs an executor of its own"
                ));
            }
            if matches!(
                e.state,
                ExecutorState::Terminating | ExecutorState::Terminated
            ) {
                return Err(format!("executor '{executor_id}' is shutting down"));
            }
            let subscribed = e.state == ExecutorState::Running;
            if subscribed {
                e.launched.insert(task_id, entry);
            } else {
                e.queued.insert(task_id, entry);
            }
            return Ok(Placement::Existing {
                executor_id,
                subscribed,
            });
        }
        let (container_id, directory) = container_id();
        let mut executor = Executor::new(info, kind, container_id, directory);
        match kind {
            // The agent itself is the command executor: the task is launched with it.
            ExecutorKind::Command => executor.launched.insert(task_id, entry),
            ExecutorKind::Custom | ExecutorKind::Default => executor.queued.insert(task_id, entry),
        };
        fw.executors.insert(executor_id.clone(), executor);
        Ok(Placement::NewExecutor { executor_id })
    }

    /// Places a task group the master sent for `executor` (already checked to be of
    /// `kind`, custom or default), all its tasks or none. Returns where it went and the
    /// group's number. Tasks wait in `queued` until a custom executor subscribes (then
    /// they are sent together) or, for the default executor, until
    /// [`start_group`](Self::start_group).
    pub fn add_task_group(
        &mut self,
        framework: FrameworkInfo,
        executor: ExecutorInfo,
        kind: ExecutorKind,
        tasks: Vec<TaskInfo>,
        container_id: impl FnOnce() -> (String, PathBuf),
    ) -> Result<(Placement, u64), String> {
        let Some(framework_id) = framework.id.clone() else {
            return Err("the framework has no id".into());
        };
        if tasks.is_empty() {
            return Err("the task group has no tasks".into());
        }
        let fw = self
            .frameworks
            .entry(framework_id.value.clone())
            .or_insert_with(|| Framework {
                info: framework.clone(),
                executors: BTreeMap::new(),
                completed_executors: VecDeque::new(),
            });
        fw.info = framework;
        let mut ids = BTreeSet::new();
        for t in &tasks {
            let id = t.task_id.value.as_str();
            if !ids.insert(id) {
                return Err(format!("task '{id}' appears twice in its group"));
            }
            if fw.executor_with_task(id).is_some() {
                return Err(format!("task '{id}' is already known to this agent"));
            }
        }
        let executor_id = executor.executor_id.value.clone();
        let placement = match fw.executors.get(&executor_id) {
            Some(e) if e.kind != kind => {
                let what = match e.kind {
                    ExecutorKind::Command => "a command task's executor",
                    ExecutorKind::Custom => "a custom executor",
                    ExecutorKind::Default => "the default executor",
                };
                return Err(format!(
                    "executor '{executor_id}' is already running here as {what}; a task group must name an executor of the same type, or a new executor id"
                ));
            }
            Some(e)
                if matches!(
                    e.state,
                    ExecutorState::Terminating | ExecutorState::Terminated
                ) =>
            {
                return Err(format!("executor '{executor_id}' is shutting down"));
            }
            Some(e) => Placement::Existing {
                executor_id: executor_id.clone(),
                subscribed: e.state == ExecutorState::Running,
            },
            None => {
                let mut info = executor;
                info.framework_id
                    .get_or_insert_with(|| framework_id.clone());
                let (container_id, directory) = container_id();
                let e = Executor::new(info, kind, container_id, directory);
                fw.executors.insert(executor_id.clone(), e);
                Placement::NewExecutor {
                    executor_id: executor_id.clone(),
                }
            }
        };
        let Some(e) = fw.executors.get_mut(&executor_id) else {
            return Err(format!("executor '{executor_id}' vanished"));
        };
        let group = e.next_group;
        e.next_group += 1;
        // A subscribed custom executor is sent the group at once.
        let send_now = kind == ExecutorKind::Custom
            && matches!(
                placement,
                Placement::Existing {
                    subscribed: true,
                    ..
                }
            );
        for t in tasks {
            let id = t.task_id.value.clone();
            let entry = Task::new(t, Some(group));
            if send_now {
                e.launched.insert(id, entry);
            } else {
                e.queued.insert(id, entry);
            }
        }
        Ok((placement, group))
    }

    /// The default executor starts the queued tasks of `group`: each gets the id of its
    /// nested container and moves to `launched`. Returns them with their container ids.
    pub fn start_group(
        &mut self,
        framework: &str,
        executor: &str,
        group: u64,
        mut container_id: impl FnMut() -> String,
    ) -> Vec<(TaskInfo, String)> {
        let Some(e) = self.executor_mut(framework, executor) else {
            return Vec::new();
        };
        let ids: Vec<String> = e
            .queued
            .iter()
            .filter(|(_, t)| t.group == Some(group))
            .map(|(id, _)| id.clone())
            .collect();
        let mut out = Vec::new();
        for id in ids {
            if let Some(mut t) = e.queued.remove(&id) {
                let cid = container_id();
                t.container = Some(cid.clone());
                out.push((t.info.clone(), cid));
                e.launched.insert(id, t);
            }
        }
        out
    }

    /// The groups with tasks waiting in `queued`, oldest first.
    pub fn queued_groups(&self, framework: &str, executor: &str) -> Vec<u64> {
        let Some(e) = self.executor(framework, executor) else {
            return Vec::new();
        };
        let groups: BTreeSet<u64> = e.queued.values().filter_map(|t| t.group).collect();
        groups.into_iter().collect()
    }

    /// Marks task group `group` as being killed; false if it already was.
    pub fn begin_killing_group(&mut self, framework: &str, executor: &str, group: u64) -> bool {
        self.executor_mut(framework, executor)
            .is_some_and(|e| e.killing_groups.insert(group))
    }

    /// Marks the start of a task's kill; false if it had begun already.
    pub fn begin_killing(&mut self, framework: &str, task: &str) -> bool {
        let Some(t) = self
            .frameworks
            .get_mut(framework)
            .and_then(|fw| fw.executor_with_task_mut(task))
            .and_then(|e| e.task_mut(task))
        else {
            return false;
        };
        t.kill_requested = true;
        !std::mem::replace(&mut t.killing, true)
    }

    /// Records an update of a task: its state, and the update for the state endpoints.
    pub fn record_status(&mut self, framework: &str, status: &holdfast_api::scheduler::TaskStatus) {
        let task = status.task_id.value.as_str();
        if let Some(t) = self
            .frameworks
            .get_mut(framework)
            .and_then(|fw| fw.executor_with_task_mut(task))
            .and_then(|e| e.task_mut(task))
        {
            t.statuses.push(status.clone());
        }
        self.set_task_state(framework, task, status.state);
    }

    /// Records a task's new state; a terminal one moves it to `terminated`.
    pub fn set_task_state(&mut self, framework: &str, task: &str, state: TaskState) {
        let Some(fw) = self.frameworks.get_mut(framework) else {
            return;
        };
        let Some(e) = fw.executor_with_task_mut(task) else {
            return;
        };
        if let Some(t) = e.task_mut(task) {
            t.state = state;
        }
        if state.is_terminal() {
            let t = e.queued.remove(task).or_else(|| e.launched.remove(task));
            if let Some(t) = t {
                e.terminated.insert(task.to_owned(), t);
            }
        }
    }

    pub fn mark_kill_requested(&mut self, framework: &str, task: &str) -> bool {
        let Some(e) = self
            .frameworks
            .get_mut(framework)
            .and_then(|fw| fw.executor_with_task_mut(task))
        else {
            return false;
        };
        match e.task_mut(task) {
            Some(t) => {
                t.kill_requested = true;
                true
            }
            None => false,
        }
    }

    /// A custom executor subscribed: its queued tasks are to be sent to it now, single
    /// tasks one by one and each task group whole, oldest group first.
    pub fn executor_subscribed(&mut self, framework: &str, executor: &str) -> Vec<Launch> {
        let Some(e) = self.executor_mut(framework, executor) else {
            return Vec::new();
        };
        if e.state == ExecutorState::Registering {
            e.state = ExecutorState::Running;
        }
        let queued = std::mem::take(&mut e.queued);
        let mut out = Vec::new();
        let mut groups: BTreeMap<u64, Vec<TaskInfo>> = BTreeMap::new();
        for (id, t) in queued {
            match t.group {
                Some(g) => groups.entry(g).or_default().push(t.info.clone()),
                None => out.push(Launch::Task(t.info.clone())),
            }
            e.launched.insert(id, t);
        }
        out.extend(groups.into_values().map(Launch::Group));
        out
    }

    pub fn set_executor_state(&mut self, framework: &str, executor: &str, state: ExecutorState) {
        if let Some(e) = self.executor_mut(framework, executor) {
            e.state = state;
        }
    }

    /// The terminal update of a task was acknowledged: it is completed. If that finished
    /// its executor, returns the executor's container (see
    /// [`finish_executor_if_done`](Self::finish_executor_if_done)).
    pub fn task_acknowledged_terminal(&mut self, framework: &str, task: &str) -> Option<String> {
        let fw = self.frameworks.get_mut(framework)?;
        let (eid, e) = fw
            .executors
            .iter_mut()
            .find(|(_, e)| e.terminated.contains_key(task))?;
        let eid = eid.clone();
        if let Some(t) = e.terminated.remove(task) {
            e.completed.push_back(t);
        }
        self.finish_executor_if_done(framework, &eid)
    }

    /// The executor's container ended. Returns its tasks that had not ended, for the
    /// caller to fail; they are marked as ended with `state`.
    pub fn executor_terminated(
        &mut self,
        framework: &str,
        executor: &str,
        state: TaskState,
    ) -> Vec<TaskInfo> {
        let Some(e) = self.executor_mut(framework, executor) else {
            return Vec::new();
        };
        e.state = ExecutorState::Terminated;
        let live: Vec<TaskInfo> = e.live_tasks().map(|t| t.info.clone()).collect();
        for t in &live {
            self.set_task_state(framework, &t.task_id.value, state);
        }
        live
    }

    /// Moves a finished executor to the framework's completed list, dropping the oldest
    /// completed executors that no longer fit in it (the list is what the state endpoints
    /// show; their sandboxes stay until garbage collection). Returns the finished
    /// executor's container, or None if it is not finished.
    pub fn finish_executor_if_done(&mut self, framework: &str, executor: &str) -> Option<String> {
        let limit = self.max_completed_executors;
        let fw = self.frameworks.get_mut(framework)?;
        if !fw
            .executors
            .get(executor)
            .is_some_and(Executor::is_finished)
        {
            return None;
        }
        let e = fw.executors.remove(executor)?;
        let container = e.container_id.clone();
        fw.completed_executors.push_back(e);
        while fw.completed_executors.len() > limit {
            fw.completed_executors.pop_front();
        }
        Some(container)
    }

    /// Every container an executor (live or completed) refers to.
    pub fn container_ids(&self) -> impl Iterator<Item = &str> {
        self.frameworks
            .values()
            .chain(self.completed_frameworks.iter())
            .flat_map(|fw| {
                fw.executors
                    .values()
                    .chain(fw.completed_executors.iter())
                    .map(|e| e.container_id.as_str())
            })
    }

    /// A framework that was shut down and whose executors all ended moves to the
    /// completed frameworks (kept for the state endpoints; the oldest beyond the limit
    /// are dropped). Returns the containers of the executors that completed with it.
    pub fn complete_framework(&mut self, framework: &str) -> Vec<String> {
        let Some(mut fw) = self.frameworks.remove(framework) else {
            return Vec::new();
        };
        let executors = std::mem::take(&mut fw.executors);
        let containers = executors.values().map(|e| e.container_id.clone()).collect();
        fw.completed_executors.extend(executors.into_values());
        self.completed_frameworks.push_back(fw);
        while self.completed_frameworks.len() > MAX_COMPLETED_FRAMEWORKS {
            self.completed_frameworks.pop_front();
        }
        containers
    }

    /// Live and unacknowledged tasks, as the agent reports them when it subscribes.
    pub fn reports(&self) -> Vec<holdfast_api::internal::TaskReport> {
        let mut out = Vec::new();
        for (fid, fw) in &self.frameworks {
            for e in fw.executors.values() {
                for t in e.live_tasks().chain(e.terminated.values()) {
                    out.push(holdfast_api::internal::TaskReport {
                        framework_id: Id::new(fid),
                        task: t.info.clone(),
                        state: t.state,
                        executor_id: (e.kind != ExecutorKind::Command)
                            .then(|| e.info.executor_id.clone()),
                    });
                }
            }
        }
        out
    }
}

/// The `ExecutorInfo` of a command task's built-in executor, as Mesos describes it.
pub fn command_executor_info(framework: &Id, task: &TaskInfo) -> ExecutorInfo {
    let command = task
        .command
        .as_ref()
        .and_then(|c| c.value.clone())
        .unwrap_or_default();
    let mut extra = serde_json::Map::new();
    extra.insert(
        "source".into(),
        serde_json::Value::String(task.task_id.value.clone()),
    );
    ExecutorInfo {
        kind: Some("DEFAULT".into()),
        executor_id: task.task_id.clone(),
        framework_id: Some(framework.clone()),
        command: task.command.clone(),
        container: None,
        resources: Vec::new(),
        name: Some(format!(
            "Command Executor (Task: {}) (Command: sh -c '{}')",
            task.task_id.value, command
        )),
        extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn framework(id: &str) -> FrameworkInfo {
        serde_json::from_value(json!({"user": "root", "name": "fw", "id": {"value": id}}))
            .expect("framework")
    }

    fn command_task(id: &str) -> TaskInfo {
        serde_json::from_value(json!({
            "name": id, "task_id": {"value": id}, "agent_id": {"value": "a-S0"},
            "command": {"value": "true"}
        }))
        .expect("task")
    }

    fn executor_task(id: &str, executor: &str) -> TaskInfo {
        serde_json::from_value(json!({
            "name": id, "task_id": {"value": id}, "agent_id": {"value": "a-S0"},
            "executor": {"executor_id": {"value": executor}, "command": {"value": "./exec"}}
        }))
        .expect("task")
    }

    fn dir(n: &str) -> impl FnOnce() -> (String, PathBuf) + '_ {
        move || (n.to_owned(), PathBuf::from(format!("/sandbox/{n}")))
    }

    #[test]
    fn a_command_task_gets_an_executor_of_its_own_named_after_it() {
        let mut r = Registry::new(10);
        let p = r.add_task(framework("f"), command_task("t1"), dir("c1"));
        assert_eq!(
            p,
            Ok(Placement::NewExecutor {
                executor_id: "t1".into()
            })
        );
        let e = r.executor("f", "t1").expect("executor");
        assert_eq!(e.kind, ExecutorKind::Command);
        assert_eq!(e.container_id, "c1");
        assert!(e.launched.contains_key("t1"));
        assert!(e
            .info
            .name
            .as_deref()
            .unwrap_or("")
            .contains("Command: sh -c 'true'"));
        assert!(r
            .add_task(framework("f"), command_task("t1"), dir("c2"))
            .unwrap_err()
            .contains("already known"));
    }

    #[test]
    fn tasks_of_a_custom_executor_queue_until_it_subscribes() {
        let mut r = Registry::new(10);
        r.add_task(framework("f"), executor_task("t1", "e"), dir("c1"))
            .expect("first");
        let p = r
            .add_task(framework("f"), executor_task("t2", "e"), dir("unused"))
            .expect("second");
        assert_eq!(
            p,
            Placement::Existing {
                executor_id: "e".into(),
                subscribed: false
            }
        );
        let sent = r.executor_subscribed("f", "e");
        assert_eq!(
            sent,
            vec![
                Launch::Task(executor_task("t1", "e")),
                Launch::Task(executor_task("t2", "e"))
            ]
        );
        let p = r
            .add_task(framework("f"), executor_task("t3", "e"), dir("unused"))
            .expect("third");
        assert!(matches!(
            p,
            Placement::Existing {
                subscribed: true,
                ..
            }
        ));
        assert_eq!(r.executor("f", "e").expect("e").container_id, "c1");
    }

    fn group_task(id: &str) -> TaskInfo {
        serde_json::from_value(json!({
            "name": id, "task_id": {"value": id}, "agent_id": {"value": "a-S0"},
            "command": {"value": "true"}
        }))
        .expect("task")
    }

    fn group_executor(id: &str, kind: &str) -> ExecutorInfo {
        serde_json::from_value(json!({"type": kind, "executor_id": {"value": id},
                                      "command": {"value": "./exec"}}))
        .expect("executor")
    }

    fn ids(tasks: &[TaskInfo]) -> Vec<&str> {
        tasks.iter().map(|t| t.task_id.value.as_str()).collect()
    }

    #[test]
    fn a_custom_executor_gets_each_queued_group_whole() {
        let mut r = Registry::new(10);
        let custom = group_executor("e", "CUSTOM");
        let (p, g0) = r
            .add_task_group(
                framework("f"),
                custom.clone(),
                ExecutorKind::Custom,
                vec![group_task("a"), group_task("b")],
                dir("c1"),
            )
            .expect("first group");
        assert_eq!(
            p,
            Placement::NewExecutor {
                executor_id: "e".into()
            }
        );
        r.add_task(framework("f"), executor_task("single", "e"), dir("x"))
            .expect("a single task on the same executor");
        let (_, g1) = r
            .add_task_group(
                framework("f"),
                custom.clone(),
                ExecutorKind::Custom,
                vec![group_task("c")],
                dir("x"),
            )
            .expect("second group");
        assert_ne!(g0, g1);
        let sent = r.executor_subscribed("f", "e");
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert_eq!(sent[0], Launch::Task(executor_task("single", "e")));
        match (&sent[1], &sent[2]) {
            (Launch::Group(first), Launch::Group(second)) => {
                assert_eq!(ids(first), ["a", "b"]);
                assert_eq!(ids(second), ["c"]);
            }
            other => panic!("{other:?}"),
        }
        // Once subscribed, a group goes straight to `launched`.
        let (p, _) = r
            .add_task_group(
                framework("f"),
                custom,
                ExecutorKind::Custom,
                vec![group_task("d")],
                dir("x"),
            )
            .expect("third group");
        assert!(matches!(
            p,
            Placement::Existing {
                subscribed: true,
                ..
            }
        ));
        assert!(r.executor("f", "e").expect("e").launched.contains_key("d"));
        let reports = r.reports();
        assert!(reports
            .iter()
            .all(|t| t.executor_id.as_ref().is_some_and(|e| e.value == "e")));
    }

    #[test]
    fn a_task_group_is_placed_whole_or_not_at_all() {
        let mut r = Registry::new(10);
        let default = group_executor("d", "DEFAULT");
        r.add_task(framework("f"), command_task("known"), dir("c0"))
            .expect("command task");
        for (tasks, why) in [
            (vec![group_task("x"), group_task("x")], "appears twice"),
            (vec![group_task("y"), group_task("known")], "already known"),
            (vec![], "no tasks"),
        ] {
            let e = r
                .add_task_group(
                    framework("f"),
                    default.clone(),
                    ExecutorKind::Default,
                    tasks,
                    dir("c1"),
                )
                .expect_err("refused");
            assert!(e.contains(why), "{e}");
        }
        assert!(
            r.task("f", "y").is_none(),
            "nothing of a refused group stays"
        );
        assert!(r.executor("f", "d").is_none());

        r.add_task_group(
            framework("f"),
            default.clone(),
            ExecutorKind::Default,
            vec![group_task("g1"), group_task("g2")],
            dir("c1"),
        )
        .expect("group");
        // The default executor runs groups only, and an executor id keeps its type.
        let e = r
            .add_task(framework("f"), executor_task("t", "d"), dir("x"))
            .expect_err("single task");
        assert!(e.contains("runs task groups only"), "{e}");
        let e = r
            .add_task_group(
                framework("f"),
                group_executor("d", "CUSTOM"),
                ExecutorKind::Custom,
                vec![group_task("g3")],
                dir("x"),
            )
            .expect_err("other type");
        assert!(
            e.contains("already running here as the default executor"),
            "{e}"
        );
        let e = r
            .add_task_group(
                framework("f"),
                group_executor("known", "DEFAULT"),
                ExecutorKind::Default,
                vec![group_task("g4")],
                dir("x"),
            )
            .expect_err("a command task's executor id");
        assert!(e.contains("a command task's executor"), "{e}");
        r.set_executor_state("f", "d", ExecutorState::Terminating);
        let e = r
            .add_task_group(
                framework("f"),
                default,
                ExecutorKind::Default,
                vec![group_task("g5")],
                dir("x"),
            )
            .expect_err("shutting down");
        assert!(e.contains("shutting down"), "{e}");
    }

    #[test]
    fn the_default_executor_starts_groups_in_their_own_containers() {
        let mut r = Registry::new(10);
        let default = group_executor("d", "DEFAULT");
        let (_, g0) = r
            .add_task_group(
                framework("f"),
                default.clone(),
                ExecutorKind::Default,
                vec![group_task("a"), group_task("b")],
                dir("c1"),
            )
            .expect("group");
        r.set_executor_state("f", "d", ExecutorState::Running);
        let (p, g1) = r
            .add_task_group(
                framework("f"),
                default,
                ExecutorKind::Default,
                vec![group_task("c")],
                dir("unused"),
            )
            .expect("second group");
        assert!(matches!(
            p,
            Placement::Existing {
                subscribed: true,
                ..
            }
        ));
        assert_eq!(r.queued_groups("f", "d"), vec![g0, g1]);
        let mut n = 0;
        let started = r.start_group("f", "d", g0, || {
            n += 1;
            format!("n{n}")
        });
        let got: Vec<(&str, &str)> = started
            .iter()
            .map(|(t, c)| (t.task_id.value.as_str(), c.as_str()))
            .collect();
        assert_eq!(got, [("a", "n1"), ("b", "n2")]);
        let e = r.executor("f", "d").expect("d");
        assert_eq!(
            e.container_id, "c1",
            "one executor container for both groups"
        );
        assert_eq!(e.task("a").and_then(|t| t.container.as_deref()), Some("n1"));
        assert!(e.launched.contains_key("a") && e.queued.contains_key("c"));
        assert_eq!(r.queued_groups("f", "d"), vec![g1]);

        // A kill begins once; the group's kill is recorded once.
        assert!(r.begin_killing("f", "a"));
        assert!(!r.begin_killing("f", "a"));
        assert!(r.task("f", "a").is_some_and(|t| t.kill_requested));
        assert!(r.begin_killing_group("f", "d", g0));
        assert!(!r.begin_killing_group("f", "d", g0));

        r.set_task_state("f", "a", TaskState::TaskKilled);
        let e = r.executor("f", "d").expect("d");
        let live: Vec<&str> = e
            .group_tasks(g0)
            .filter(|t| !t.state.is_terminal())
            .map(|t| t.info.task_id.value.as_str())
            .collect();
        assert_eq!(live, ["b"]);
        assert_eq!(e.group_tasks(g0).count(), 2, "ended tasks still count");
        let round: Registry =
            serde_json::from_value(serde_json::to_value(&r).expect("json")).expect("back");
        assert_eq!(round, r, "the registry checkpoints as JSON");
    }

    #[test]
    fn an_executor_finishes_when_it_ended_and_every_terminal_update_is_acknowledged() {
        let mut r = Registry::new(1);
        for (t, c) in [("t1", "c1"), ("t2", "c2")] {
            r.add_task(framework("f"), command_task(t), dir(c))
                .expect("task");
            r.set_task_state("f", t, TaskState::TaskRunning);
            r.set_task_state("f", t, TaskState::TaskFinished);
            assert_eq!(
                r.reports()
                    .iter()
                    .filter(|x| x.task.task_id.value == t)
                    .count(),
                1
            );
            // Not done until the container ended as well.
            assert_eq!(r.task_acknowledged_terminal("f", t), None);
            assert!(r
                .executor_terminated("f", t, TaskState::TaskFailed)
                .is_empty());
            assert_eq!(r.finish_executor_if_done("f", t).as_deref(), Some(c));
            assert_eq!(r.finish_executor_if_done("f", t), None, "finished once");
        }
        let fw = &r.frameworks["f"];
        assert!(fw.executors.is_empty());
        // Only the newest completed executor is kept.
        assert_eq!(fw.completed_executors.len(), 1);
        assert_eq!(fw.completed_executors[0].container_id, "c2");
        assert_eq!(r.container_ids().collect::<Vec<_>>(), vec!["c2"]);
        assert!(r.reports().is_empty());
    }

    #[test]
    fn an_executor_that_dies_leaves_its_live_tasks_to_be_failed() {
        let mut r = Registry::new(10);
        r.add_task(framework("f"), executor_task("t1", "e"), dir("c1"))
            .expect("t1");
        r.add_task(framework("f"), executor_task("t2", "e"), dir("x"))
            .expect("t2");
        r.executor_subscribed("f", "e");
        r.set_task_state("f", "t1", TaskState::TaskFinished);
        let failed: Vec<String> = r
            .executor_terminated("f", "e", TaskState::TaskFailed)
            .into_iter()
            .map(|t| t.task_id.value)
            .collect();
        assert_eq!(failed, vec!["t2"]);
        assert_eq!(
            r.task("f", "t2").map(|t| t.state),
            Some(TaskState::TaskFailed)
        );
        assert_eq!(
            r.complete_framework("f"),
            ["c1"],
            "the executor completes with its framework"
        );
        assert!(r.frameworks.is_empty());
        assert_eq!(r.completed_frameworks[0].completed_executors.len(), 1);
        assert_eq!(r.container_ids().collect::<Vec<_>>(), vec!["c1"]);
        let round: Registry =
            serde_json::from_value(serde_json::to_value(&r).expect("json")).expect("back");
        assert_eq!(round, r, "the registry checkpoints as JSON");
    }
}
