//! The master's state machine: frameworks, agents, offers and tasks.
//!
//! Pure: every input is a method that takes the current time ([`Now`]) and queues the
//! [`Output`]s it causes (events for a framework's stream, events for an agent's
//! stream, changes for the operator API's subscribers), which the caller drains with
//! [`Master::take_outputs`] and delivers. It also counts what it did
//! ([`Master::counters`]) for the metrics endpoints. Ids of
//! streams are made by the caller; ids of frameworks, agents and offers derive from the
//! master's id, as in Mesos (`<master>-0000`, `<master>-S0`, `<master>-O0`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use holdfast_api::base64;
use holdfast_api::internal::{AgentEvent, AgentInfo, TaskReport};
use holdfast_api::scheduler::{
    Accept, CallBody, Decline, Event, ExecutorInfo, FrameworkInfo, Id, MasterInfo, Offer,
    Operation, ReconcileTask, Subscribe, TaskInfo, TaskState, TaskStatus, Url,
};
use holdfast_api::v1::AllocationInfo;
use holdfast_api::ApiError;
use holdfast_resources::Resources;

use crate::allocator::{refuse_timeout, Allocator};
use crate::registry::{nanos, Registry};

/// The time, twice: monotonic for timers and filters, wall-clock seconds for the
/// timestamps frameworks see.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    pub wall: f64,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `--heartbeat_interval` (the scheduler stream's HEARTBEAT period).
    pub heartbeat_interval: Duration,
    /// `--agent_ping_timeout`.
    pub agent_ping_timeout: Duration,
    /// `--max_agent_ping_timeouts`.
    pub max_agent_ping_timeouts: u32,
    /// Terminal tasks kept per framework for GET_STATE/GET_TASKS.
    pub max_completed_tasks_per_framework: usize,
    /// Removed frameworks kept for GET_STATE/GET_FRAMEWORKS.
    pub max_completed_frameworks: usize,
    /// `--agent_reregister_timeout`: how long agents recovered from the registry have to
    /// register again after the master started before they are marked unreachable.
    pub agent_reregister_timeout: Duration,
    /// `--registry_max_agent_age`: unreachable agents are forgotten after this long.
    pub registry_max_agent_age: Duration,
    /// `--registry_max_agent_count`: at most this many unreachable agents are kept.
    pub registry_max_agent_count: usize,
    /// `--registry_gc_interval`: how often those two limits are applied.
    pub registry_gc_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            heartbeat_interval: Duration::from_secs(15),
            agent_ping_timeout: Duration::from_secs(15),
            max_agent_ping_timeouts: 5,
            max_completed_tasks_per_framework: 1000,
            max_completed_frameworks: 50,
            // Mesos's defaults.
            agent_reregister_timeout: Duration::from_secs(10 * 60),
            registry_max_agent_age: Duration::from_secs(14 * 86400),
            registry_max_agent_count: 100 * 1024,
            registry_gc_interval: Duration::from_secs(15 * 60),
        }
    }
}

/// What an input causes, for the caller to deliver.
// Outputs are made and delivered at once; their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// An event for the framework's current stream (dropped if it has none).
    Framework { framework: String, event: Event },
    /// End the framework's stream (TEARDOWN, or replaced by a failover).
    EndFrameworkStream { framework: String, stream: String },
    /// An event for the agent's stream.
    Agent { agent: String, event: AgentEvent },
    /// End the agent's stream (it was marked unreachable while still connected).
    EndAgentStream { agent: String, stream: String },
    /// A change for every operator SUBSCRIBE stream.
    Operator(OperatorEvent),
}

/// A change of the cluster's state, as the operator API's SUBSCRIBE streams are told
/// (`mesos.v1.master.Event`). Each carries what the event shows, taken when it happened.
// Events are made and delivered at once; their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum OperatorEvent {
    /// A task the master now knows: launched, or reported by a (re)registering agent.
    TaskAdded(Task),
    /// A task's state changed; `status` is the update that changed it.
    TaskUpdated {
        framework_id: String,
        status: TaskStatus,
        state: TaskState,
    },
    /// An agent registered, or came back after it was unreachable.
    AgentAdded(Agent),
    /// An agent left the registered agents (it became unreachable).
    AgentRemoved(String),
    FrameworkAdded(FrameworkSummary),
    /// A framework failed over, disconnected or changed its `FrameworkInfo`.
    FrameworkUpdated(FrameworkSummary),
    /// A framework was torn down or did not fail over in time.
    FrameworkRemoved(FrameworkInfo),
}

/// What operator events show of a framework (no tasks, offers or resources).
#[derive(Debug, Clone, PartialEq)]
pub struct FrameworkSummary {
    pub info: FrameworkInfo,
    pub connected: bool,
    pub recovered: bool,
    pub registered_time: f64,
    pub reregistered_time: f64,
    pub unregistered_time: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub info: TaskInfo,
    pub framework_id: String,
    pub agent_id: String,
    pub state: TaskState,
    /// Updates in the order they arrived; the last is the latest.
    pub statuses: Vec<TaskStatus>,
    pub resources: Resources,
    pub role: String,
}

impl Task {
    pub fn latest(&self) -> Option<&TaskStatus> {
        self.statuses.last()
    }

    /// Keeps `status` as the task's latest, as Mesos does: a repeated state replaces the
    /// status before it (so health updates do not pile up), and `data` is dropped (a
    /// framework may make it large). Returns whether the state is new.
    fn record(&mut self, status: &TaskStatus) -> bool {
        let repeated = self.latest().is_some_and(|s| s.state == status.state);
        if repeated {
            self.statuses.pop();
        }
        let mut kept = status.clone();
        kept.data = None;
        self.statuses.push(kept);
        self.state = status.state;
        !repeated
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Framework {
    pub id: String,
    pub info: FrameworkInfo,
    /// The stream events go to; None while disconnected.
    pub stream: Option<String>,
    /// When the stream went away, for `failover_timeout`.
    pub disconnected_at: Option<Instant>,
    pub registered_time: f64,
    /// The last (re)subscription; the registration time until it fails over.
    pub reregistered_time: f64,
    /// When it was removed.
    pub unregistered_time: Option<f64>,
    pub tasks: BTreeMap<String, Task>,
    pub completed: VecDeque<Task>,
    pub offers: BTreeSet<String>,
    /// Executors its launches named (custom ones and task groups'), by (agent id,
    /// executor id), until they exit.
    pub executors: BTreeMap<(String, String), ExecutorInfo>,
    /// What each executor the master started holds on its agent, apart from its tasks,
    /// and the role it was allocated to: charged once, when its first task launched, and
    /// freed when it exits (not when that task ends).
    pub executor_usage: BTreeMap<(String, String), (Resources, String)>,
    /// Known only from an agent that runs its tasks: its scheduler has not subscribed to
    /// this master yet (Mesos's "recovered" frameworks, after a master restart).
    pub recovered: bool,
}

impl Framework {
    /// A framework as it first becomes known at `now`, with nothing running yet.
    fn new(id: String, info: FrameworkInfo, stream: Option<String>, now: Now) -> Framework {
        Framework {
            id,
            info,
            stream,
            disconnected_at: None,
            registered_time: now.wall,
            reregistered_time: now.wall,
            unregistered_time: None,
            tasks: BTreeMap::new(),
            completed: VecDeque::new(),
            offers: BTreeSet::new(),
            executors: BTreeMap::new(),
            executor_usage: BTreeMap::new(),
            recovered: false,
        }
    }

    fn partition_aware(&self) -> bool {
        self.info.has_capability("PARTITION_AWARE")
    }

    pub fn connected(&self) -> bool {
        self.stream.is_some()
    }

    pub fn summary(&self) -> FrameworkSummary {
        FrameworkSummary {
            info: self.info.clone(),
            connected: self.connected(),
            recovered: self.recovered,
            registered_time: self.registered_time,
            reregistered_time: self.reregistered_time,
            unregistered_time: self.unregistered_time,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AgentState {
    Active,
    /// Missed too many pings; its tasks were reported unreachable or lost.
    Unreachable {
        since: f64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub id: String,
    pub info: AgentInfo,
    pub total: Resources,
    pub used: Resources,
    pub offered: Resources,
    pub state: AgentState,
    pub stream: Option<String>,
    pub missed_pings: u32,
    pub registered_time: f64,
    pub reregistered_time: Option<f64>,
}

impl Agent {
    fn available(&self) -> Resources {
        let mut a = self.total.clone();
        a -= &self.used.unallocated();
        a -= &self.offered.unallocated();
        a
    }
}

#[derive(Debug, Clone)]
pub struct PendingOffer {
    pub framework: String,
    pub agent: String,
    pub role: String,
    pub resources: Resources,
}

pub struct Master {
    pub info: MasterInfo,
    pub config: Config,
    pub frameworks: BTreeMap<String, Framework>,
    /// Frameworks torn down or failed over past their timeout; a SUBSCRIBE with such an
    /// id is refused.
    pub removed_frameworks: BTreeSet<String>,
    /// Removed frameworks, oldest first, at most `max_completed_frameworks`.
    pub completed_frameworks: VecDeque<Framework>,
    pub agents: BTreeMap<String, Agent>,
    pub offers: BTreeMap<String, PendingOffer>,
    /// Event counts since start, by Mesos's metric name without `master/`.
    pub counters: BTreeMap<String, u64>,
    /// Agents recovered from the registry that have not registered again since the
    /// master started (Mesos's "recovered" agents), with what the registry knew of them.
    /// Emptied when the last one registers or `agent_reregister_timeout` ends.
    pub recovered: BTreeMap<String, AgentInfo>,
    /// When recovered agents that have not come back are marked unreachable.
    recovery_deadline: Option<Instant>,
    /// The agents admitted and unreachable, as persisted; changed in step with `agents`.
    registry: Registry,
    /// Counts changes of `registry`: its owner writes the document when this moved, and
    /// delivers the outputs of those changes only once it is written.
    registry_generation: u64,
    allocator: Allocator,
    next_framework: u64,
    next_agent: u64,
    next_offer: u64,
    /// Something changed that may let the allocator offer more.
    dirty: bool,
    outputs: Vec<Output>,
}

/// Why a SUBSCRIBE was refused after the stream was opened: Mesos answers 200 with a
/// single ERROR event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeRefused(pub String);

impl Master {
    pub fn new(info: MasterInfo, config: Config) -> Master {
        Master {
            info,
            config,
            frameworks: BTreeMap::new(),
            removed_frameworks: BTreeSet::new(),
            completed_frameworks: VecDeque::new(),
            agents: BTreeMap::new(),
            offers: BTreeMap::new(),
            counters: BTreeMap::new(),
            recovered: BTreeMap::new(),
            recovery_deadline: None,
            registry: Registry::default(),
            registry_generation: 0,
            allocator: Allocator::new(),
            next_framework: 0,
            next_agent: 0,
            next_offer: 0,
            dirty: false,
            outputs: Vec::new(),
        }
    }

    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    /// Starts from a registry read at startup: its admitted agents are recovered (they
    /// have `agent_reregister_timeout` from `now` to register again), its unreachable
    /// agents stay unreachable. Call before any other input.
    pub fn recover_from_registry(&mut self, registry: Registry, now: Now) {
        self.recovered = registry
            .agents
            .iter()
            .map(|(id, a)| (id.clone(), a.info.clone()))
            .collect();
        self.recovery_deadline =
            (!self.recovered.is_empty()).then(|| now.mono + self.config.agent_reregister_timeout);
        self.registry = registry;
    }

    /// The registry as it must be persisted.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Moves whenever the registry changed. Outputs queued with a change are
    /// acknowledgements of it (REGISTERED to an admitted agent, updates about an
    /// unreachable one): they must not be delivered before the registry is written.
    pub fn registry_generation(&self) -> u64 {
        self.registry_generation
    }

    fn registry_changed(&mut self, changed: bool) {
        if changed {
            self.registry_generation += 1;
        }
    }

    /// The allocator, for the roles and shares it tracks.
    pub fn allocator(&self) -> &Allocator {
        &self.allocator
    }

    /// The count of `name` (a metric name without `master/`); 0 if it never happened.
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    fn count(&mut self, name: &str) {
        *self.counters.entry(name.to_owned()).or_default() += 1;
    }

    /// Counts a task's move to a terminal or unreachable state, under Mesos's names:
    /// `tasks_<state>` for terminal states (the others are gauges of current tasks) and
    /// `<state>/<source>/<reason>` when the update has a reason.
    fn count_transition(&mut self, status: &TaskStatus) {
        let state = state_name(status.state).to_ascii_lowercase();
        if status.state.is_terminal() {
            self.count(&format!("tasks_{}", state.trim_start_matches("task_")));
        }
        // Agents send these; only enum-like names become metrics, so a stray string can
        // neither make an odd metric name nor a new counter per value.
        let enum_like = |s: &str| {
            !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
        };
        if let (Some(source), Some(reason)) = (&status.source, &status.reason) {
            if !enum_like(source) || !enum_like(reason) {
                return;
            }
            self.count(&format!(
                "{state}/{}/{}",
                source.to_ascii_lowercase(),
                reason.to_ascii_lowercase()
            ));
        }
    }

    fn tell_operators(&mut self, event: OperatorEvent) {
        self.outputs.push(Output::Operator(event));
    }

    fn framework_updated(&mut self, framework: &str) {
        if let Some(fw) = self.frameworks.get(framework) {
            let summary = fw.summary();
            self.tell_operators(OperatorEvent::FrameworkUpdated(summary));
        }
    }

    fn send_framework(&mut self, framework: &str, event: Event) {
        self.outputs.push(Output::Framework {
            framework: framework.to_owned(),
            event,
        });
    }

    fn agent_connected(&self, agent: &str) -> bool {
        self.agents
            .get(agent)
            .is_some_and(|a| a.stream.is_some() && a.state == AgentState::Active)
    }

    /// Queues `event` for the agent if it is connected.
    fn send_agent(&mut self, agent: &str, event: AgentEvent) {
        if self.agent_connected(agent) {
            self.outputs.push(Output::Agent {
                agent: agent.to_owned(),
                event,
            });
        }
    }

    // ---- Frameworks -----------------------------------------------------------------

    /// SUBSCRIBE on a new stream `stream`. Returns the framework's id; SUBSCRIBED and a
    /// first HEARTBEAT are queued for it.
    pub fn subscribe_framework(
        &mut self,
        outer_id: Option<Id>,
        sub: Subscribe,
        stream: String,
        now: Now,
    ) -> Result<String, SubscribeRefused> {
        let Subscribe {
            mut framework_info,
            suppressed_roles,
        } = sub;
        let id = match framework_info.id.clone().or(outer_id) {
            Some(id) => {
                if self.removed_frameworks.contains(&id.value) {
                    return Err(SubscribeRefused("Framework has been removed".to_owned()));
                }
                id.value
            }
            None => {
                let id = format!("{}-{:04}", self.info.id, self.next_framework);
                self.next_framework += 1;
                id
            }
        };
        framework_info.id = Some(Id::new(&id));
        let roles = framework_info.effective_roles();
        let known = self.frameworks.contains_key(&id);
        self.count(if known {
            "messages_reregister_framework"
        } else {
            "messages_register_framework"
        });
        match self.frameworks.get_mut(&id) {
            Some(fw) => {
                // Failover: the old stream ends; offers made to it are void.
                if let Some(old) = fw.stream.take() {
                    self.outputs.push(Output::Framework {
                        framework: id.clone(),
                        event: Event::Error("Framework failed over".to_owned()),
                    });
                    self.outputs.push(Output::EndFrameworkStream {
                        framework: id.clone(),
                        stream: old,
                    });
                }
                fw.info = framework_info;
                fw.stream = Some(stream);
                fw.recovered = false;
                fw.disconnected_at = None;
                fw.reregistered_time = now.wall;
                self.rescind_framework_offers(&id, false);
            }
            None => {
                self.frameworks.insert(
                    id.clone(),
                    Framework::new(id.clone(), framework_info, Some(stream), now),
                );
            }
        }
        self.allocator.add_framework(&id, &roles);
        self.allocator.revive(&id, &[]);
        if !suppressed_roles.is_empty() {
            self.allocator.suppress(&id, &suppressed_roles);
        }
        self.send_framework(
            &id,
            Event::Subscribed {
                framework_id: Id::new(&id),
                heartbeat_interval_seconds: self.config.heartbeat_interval.as_secs_f64(),
                master_info: self.info.clone(),
            },
        );
        self.send_framework(&id, Event::Heartbeat);
        if known {
            self.framework_updated(&id);
        } else if let Some(fw) = self.frameworks.get(&id) {
            let summary = fw.summary();
            self.tell_operators(OperatorEvent::FrameworkAdded(summary));
        }
        self.dirty = true;
        Ok(id)
    }

    /// The framework's stream `stream` closed. Its offers are rescinded; it has
    /// `failover_timeout` to come back before it is removed.
    pub fn framework_disconnected(&mut self, framework: &str, stream: &str, now: Now) {
        let Some(fw) = self.frameworks.get_mut(framework) else {
            return;
        };
        if fw.stream.as_deref() != Some(stream) {
            return;
        }
        fw.stream = None;
        fw.disconnected_at = Some(now.mono);
        self.allocator.suppress(framework, &[]);
        self.rescind_framework_offers(framework, false);
        self.framework_updated(framework);
    }

    /// Checks a non-SUBSCRIBE call's framework and stream, as Mesos does, in its order.
    pub fn authorize_call(
        &self,
        framework: Option<&Id>,
        stream: Option<&str>,
    ) -> Result<String, ApiError> {
        let Some(stream) = stream else {
            return Err(ApiError::bad_request(
                "All non-subscribe calls should include the 'Mesos-Stream-Id' header",
            ));
        };
        let Some(framework) = framework else {
            return Err(ApiError::bad_request(
                "Failed to validate scheduler::Call: Expecting 'framework_id' to be present",
            ));
        };
        let Some(fw) = self.frameworks.get(&framework.value) else {
            return Err(ApiError::bad_request("Framework cannot be found"));
        };
        if fw.stream.as_deref() != Some(stream) {
            return Err(ApiError::bad_request(format!(
                "The stream ID '{stream}' included in this request didn't match the stream ID \
                 currently associated with framework ID {}",
                framework.value
            )));
        }
        Ok(fw.id.clone())
    }

    /// A non-SUBSCRIBE scheduler call of `framework` (already authorized).
    pub fn framework_call(
        &mut self,
        framework: &str,
        call: CallBody,
        now: Now,
    ) -> Result<(), ApiError> {
        // Mesos's counters of the messages its scheduler calls replaced.
        let counter = match &call {
            CallBody::Teardown => Some("messages_unregister_framework"),
            CallBody::Accept(_) => Some("messages_launch_tasks"),
            CallBody::Decline(_) => Some("messages_decline_offers"),
            CallBody::Revive(_) => Some("messages_revive_offers"),
            CallBody::Suppress(_) => Some("messages_suppress_offers"),
            CallBody::Kill(_) => Some("messages_kill_task"),
            CallBody::Acknowledge(_) => Some("messages_status_update_acknowledgement"),
            CallBody::Reconcile(_) => Some("messages_reconcile_tasks"),
            CallBody::Message(_) => Some("messages_framework_to_executor"),
            CallBody::Subscribe(_)
            | CallBody::Shutdown(_)
            | CallBody::Ignored
            | CallBody::UpdateFramework(_) => None,
        };
        if let Some(name) = counter {
            self.count(name);
        }
        match call {
            CallBody::Subscribe(_) => {
                return Err(ApiError::bad_request("SUBSCRIBE opens a stream of its own"))
            }
            CallBody::Teardown => self.remove_framework(framework, now),
            CallBody::Accept(a) => self.accept(framework, a, now)?,
            CallBody::Decline(d) => self.decline(framework, d, now),
            CallBody::Revive(roles) => {
                self.allocator.revive(framework, &roles);
                self.dirty = true;
            }
            CallBody::Suppress(roles) => self.allocator.suppress(framework, &roles),
            CallBody::Kill(k) => {
                let known = self
                    .frameworks
                    .get(framework)
                    .and_then(|fw| fw.tasks.get(&k.task_id.value))
                    .map(|t| t.agent_id.clone());
                match known {
                    Some(agent) => self.send_agent(
                        &agent,
                        AgentEvent::KillTask {
                            framework_id: Id::new(framework),
                            task_id: k.task_id,
                            kill_policy: k.kill_policy,
                        },
                    ),
                    // As Mesos: killing a task the master does not know reconciles it.
                    None => self.reconcile(
                        framework,
                        vec![ReconcileTask {
                            task_id: k.task_id,
                            agent_id: k.agent_id,
                        }],
                        now,
                    ),
                }
            }
            CallBody::Shutdown(s) => self.send_agent(
                &s.agent_id.value,
                AgentEvent::ShutdownExecutor {
                    framework_id: Id::new(framework),
                    executor_id: s.executor_id,
                },
            ),
            CallBody::Acknowledge(a) => {
                self.acknowledge(framework, &a.task_id, &a.agent_id, &a.uuid)
            }
            CallBody::Reconcile(tasks) => self.reconcile(framework, tasks, now),
            CallBody::Message(m) => {
                let reachable = self.agent_connected(&m.agent_id.value);
                self.send_agent(
                    &m.agent_id.value,
                    AgentEvent::Message {
                        framework_id: Id::new(framework),
                        executor_id: m.executor_id,
                        data: base64::encode(&m.data),
                    },
                );
                self.count(if reachable {
                    "valid_framework_to_executor_messages"
                } else {
                    "invalid_framework_to_executor_messages"
                });
            }
            CallBody::UpdateFramework(sub) => {
                if sub
                    .framework_info
                    .id
                    .as_ref()
                    .is_some_and(|i| i.value != framework)
                {
                    return Err(ApiError::bad_request(
                        "Failed to validate scheduler::Call: 'framework_info.id' differs from 'framework_id'",
                    ));
                }
                let roles = sub.framework_info.effective_roles();
                if let Some(fw) = self.frameworks.get_mut(framework) {
                    let mut info = sub.framework_info;
                    info.id = Some(Id::new(framework));
                    fw.info = info;
                }
                self.allocator.update_framework_roles(framework, &roles);
                self.allocator.revive(framework, &[]);
                if !sub.suppressed_roles.is_empty() {
                    self.allocator.suppress(framework, &sub.suppressed_roles);
                }
                self.framework_updated(framework);
                self.dirty = true;
            }
            CallBody::Ignored => {}
        }
        Ok(())
    }

    /// TEARDOWN, or a failover timeout: the framework's tasks are killed on their
    /// agents, its offers go back, and its id may not subscribe again.
    pub fn remove_framework(&mut self, framework: &str, now: Now) {
        self.rescind_framework_offers(framework, false);
        let held: Vec<(String, String)> = self
            .frameworks
            .get(framework)
            .map(|fw| fw.executor_usage.keys().cloned().collect())
            .unwrap_or_default();
        for key in &held {
            self.release_executor(framework, key);
        }
        let Some(mut fw) = self.frameworks.remove(framework) else {
            return;
        };
        // Agents with the framework's tasks, or with executors that may outlive them
        // (every agent a task of it ran on).
        let agents: BTreeSet<String> = fw
            .tasks
            .values()
            .chain(fw.completed.iter())
            .map(|t| t.agent_id.clone())
            .chain(fw.executors.keys().map(|(a, _)| a.clone()))
            .collect();
        for agent in agents {
            self.send_agent(
                &agent,
                AgentEvent::ShutdownFramework {
                    framework_id: Id::new(framework),
                },
            );
        }
        let limit = self.config.max_completed_tasks_per_framework;
        for (_, mut task) in std::mem::take(&mut fw.tasks) {
            if !task.state.is_terminal() {
                self.release_task_resources(&task);
                let status = master_status(
                    &task,
                    TaskState::TaskKilled,
                    "Framework was removed",
                    "REASON_FRAMEWORK_REMOVED",
                    now,
                );
                task.record(&status);
                self.count_transition(&status);
                self.tell_operators(OperatorEvent::TaskUpdated {
                    framework_id: framework.to_owned(),
                    status,
                    state: TaskState::TaskKilled,
                });
            }
            push_completed(&mut fw, task, limit);
        }
        if let Some(stream) = fw.stream.take() {
            self.outputs.push(Output::EndFrameworkStream {
                framework: framework.to_owned(),
                stream,
            });
        }
        self.allocator.remove_framework(framework);
        self.removed_frameworks.insert(framework.to_owned());
        fw.disconnected_at = None;
        fw.unregistered_time = Some(now.wall);
        fw.executors.clear();
        self.tell_operators(OperatorEvent::FrameworkRemoved(fw.info.clone()));
        self.completed_frameworks.push_back(fw);
        while self.completed_frameworks.len() > self.config.max_completed_frameworks {
            self.completed_frameworks.pop_front();
        }
        self.dirty = true;
    }

    fn decline(&mut self, framework: &str, d: Decline, now: Now) {
        let refuse = refuse_timeout(d.filters.refuse_seconds);
        for offer in d.offer_ids {
            if let Some(o) = self.take_offer(framework, &offer.value) {
                self.return_offer(&o, refuse_until(refuse, now));
            }
        }
    }

    /// Removes offer `id` of `framework`, if it is one.
    fn take_offer(&mut self, framework: &str, id: &str) -> Option<PendingOffer> {
        if self.offers.get(id)?.framework != framework {
            return None;
        }
        let o = self.offers.remove(id)?;
        if let Some(fw) = self.frameworks.get_mut(framework) {
            fw.offers.remove(id);
        }
        Some(o)
    }

    /// An offer's resources leave the agent's offered pool and go back to the allocator,
    /// refused by its framework on that agent `until` then.
    fn return_offer(&mut self, o: &PendingOffer, until: Option<Instant>) {
        if let Some(agent) = self.agents.get_mut(&o.agent) {
            agent.offered -= &o.resources;
        }
        self.recover(&o.framework, &o.role, &o.agent, &o.resources, until);
    }

    /// `resources` no longer count against `framework`'s share.
    fn recover(
        &mut self,
        framework: &str,
        role: &str,
        agent: &str,
        resources: &Resources,
        until: Option<Instant>,
    ) {
        let scalars = resources.scalars();
        self.allocator.recover(framework, role, agent, &scalars);
        if let Some(until) = until {
            self.allocator.refuse(framework, agent, &scalars, until);
        }
        self.dirty = true;
    }

    fn rescind_framework_offers(&mut self, framework: &str, tell: bool) {
        let ids: Vec<String> = self
            .frameworks
            .get(framework)
            .map(|f| f.offers.iter().cloned().collect())
            .unwrap_or_default();
        for id in ids {
            self.rescind(&id, tell);
        }
    }

    /// Every outstanding offer of `agent` goes back, and its framework is told.
    fn rescind_agent_offers(&mut self, agent: &str) {
        let ids: Vec<String> = self
            .offers
            .iter()
            .filter(|(_, o)| o.agent == agent)
            .map(|(k, _)| k.clone())
            .collect();
        for id in ids {
            self.rescind(&id, true);
        }
    }

    fn rescind(&mut self, offer: &str, tell: bool) {
        let Some(o) = self.offers.remove(offer) else {
            return;
        };
        if let Some(fw) = self.frameworks.get_mut(&o.framework) {
            fw.offers.remove(offer);
        }
        self.return_offer(&o, None);
        if tell {
            self.send_framework(&o.framework, Event::Rescind(Id::new(offer)));
        }
    }

    fn accept(&mut self, framework: &str, a: Accept, now: Now) -> Result<(), ApiError> {
        if let Some(op) = a.operations.iter().find_map(|o| match o {
            Operation::Unsupported(name) => Some(name.clone()),
            _ => None,
        }) {
            return Err(ApiError::bad_request(format!(
                "ACCEPT operation {op} is not supported: Holdfast offers unreserved resources \
                 only (use LAUNCH or LAUNCH_GROUP)"
            )));
        }
        let tasks: Vec<TaskInfo> = a
            .operations
            .iter()
            .flat_map(|o| match o {
                Operation::Launch(t) => t.clone(),
                Operation::LaunchGroup { tasks, .. } => tasks.clone(),
                Operation::Unsupported(_) => Vec::new(),
            })
            .collect();

        // Every offer must be live, this framework's, and on one agent.
        let mut taken = Vec::new();
        let mut invalid = None;
        for id in &a.offer_ids {
            match self.take_offer(framework, &id.value) {
                Some(o) => taken.push(o),
                None => {
                    invalid.get_or_insert(format!("Offer {} is no longer valid", id.value));
                }
            }
        }
        if invalid.is_none() {
            if taken.is_empty() {
                invalid = Some("No offers given".to_owned());
            } else if taken.iter().any(|o| o.agent != taken[0].agent) {
                invalid = Some("Offers must all be for the same agent".to_owned());
            }
        }
        let refuse = refuse_timeout(a.filters.refuse_seconds);
        if let Some(why) = invalid {
            for o in &taken {
                self.return_offer(o, None);
            }
            let partition_aware = self
                .frameworks
                .get(framework)
                .is_some_and(Framework::partition_aware);
            let state = if partition_aware {
                TaskState::TaskDropped
            } else {
                TaskState::TaskLost
            };
            for t in &tasks {
                let status = made_up_status(
                    &t.task_id,
                    Some(&t.agent_id),
                    state,
                    &format!("Task launched with invalid offers: {why}"),
                    "REASON_INVALID_OFFERS",
                    now,
                );
                self.refuse_launch(framework, status);
            }
            return Ok(());
        }

        let agent_id = taken[0].agent.clone();
        let role = taken[0].role.clone();
        let mut remaining = Resources::default();
        for o in &taken {
            remaining += &o.resources;
        }
        // The offered amounts leave the agent's offered pool; what tasks do not use comes
        // back below.
        if let Some(agent) = self.agents.get_mut(&agent_id) {
            for o in &taken {
                agent.offered -= &o.resources;
            }
        }
        let framework_info = match self.frameworks.get(framework) {
            Some(fw) => fw.info.clone(),
            None => return Ok(()),
        };
        for mut op in a.operations {
            inject_allocation(&mut op, &role);
            match op {
                Operation::Launch(list) => {
                    for task in list {
                        // An executor already on the agent is not charged again.
                        let new_executor = task
                            .executor
                            .as_ref()
                            .map(|e| (agent_id.clone(), e.executor_id.value.clone()))
                            .filter(|key| {
                                !self
                                    .frameworks
                                    .get(framework)
                                    .is_some_and(|fw| fw.executors.contains_key(key))
                            });
                        if let Some(resources) =
                            self.validate_task(framework, &agent_id, &task, None, &remaining, now)
                        {
                            remaining -= &resources;
                            let executor_resources = match (&new_executor, &task.executor) {
                                (Some(_), Some(e)) => {
                                    Resources::new(e.resources.clone()).unwrap_or_default()
                                }
                                _ => Resources::default(),
                            };
                            let mut own = resources;
                            own -= &executor_resources;
                            self.start_task(framework, &agent_id, &role, task.clone(), own, None);
                            if let Some(key) = new_executor {
                                self.charge_executor(framework, key, &role, executor_resources);
                            }
                            self.send_agent(
                                &agent_id,
                                AgentEvent::RunTask {
                                    framework: framework_info.clone(),
                                    task,
                                },
                            );
                        }
                    }
                }
                Operation::LaunchGroup { executor, tasks } => {
                    let mut group = Vec::new();
                    // The executor's own resources, unless it already runs on the agent
                    // (a later group for the same executor) and holds them already.
                    let key = (agent_id.clone(), executor.executor_id.value.clone());
                    let new_executor = !self
                        .frameworks
                        .get(framework)
                        .is_some_and(|fw| fw.executors.contains_key(&key));
                    let executor_resources = if new_executor {
                        Resources::new(executor.resources.clone()).unwrap_or_default()
                    } else {
                        Resources::default()
                    };
                    let mut all = executor_resources.clone();
                    let mut ok = true;
                    for task in &tasks {
                        match self.validate_task(
                            framework,
                            &agent_id,
                            task,
                            Some(&executor),
                            &remaining,
                            now,
                        ) {
                            Some(r) => {
                                all += &r;
                                group.push((task.clone(), r));
                            }
                            None => ok = false,
                        }
                    }
                    // A group starts whole or not at all.
                    if !ok || !remaining.contains(&all) {
                        let message = if ok {
                            format!(
                                "Total resources {all} required by the task group and its executor are more than available {remaining}"
                            )
                        } else {
                            "A task of its group is invalid".to_owned()
                        };
                        for (task, _) in group {
                            let status = made_up_status(
                                &task.task_id,
                                Some(&task.agent_id),
                                TaskState::TaskError,
                                &message,
                                "REASON_TASK_GROUP_INVALID",
                                now,
                            );
                            self.refuse_launch(framework, status);
                        }
                        continue;
                    }
                    remaining -= &all;
                    let mut infos = Vec::new();
                    for (task, r) in group {
                        infos.push(task.clone());
                        self.start_task(framework, &agent_id, &role, task, r, Some(&*executor));
                    }
                    if new_executor {
                        self.charge_executor(framework, key, &role, executor_resources);
                    }
                    self.send_agent(
                        &agent_id,
                        AgentEvent::RunTaskGroup {
                            framework: framework_info.clone(),
                            executor: *executor,
                            tasks: infos,
                        },
                    );
                }
                Operation::Unsupported(_) => {}
            }
        }
        // Whatever the tasks left goes back, with the framework's filter.
        self.recover(
            framework,
            &role,
            &agent_id,
            &remaining,
            refuse_until(refuse, now),
        );
        Ok(())
    }

    /// A task's resources if it may start from `remaining`, else a TASK_ERROR to the
    /// framework saying why.
    fn validate_task(
        &mut self,
        framework: &str,
        agent: &str,
        task: &TaskInfo,
        executor: Option<&holdfast_api::scheduler::ExecutorInfo>,
        remaining: &Resources,
        now: Now,
    ) -> Option<Resources> {
        let fail = |why: String| {
            made_up_status(
                &task.task_id,
                Some(&task.agent_id),
                TaskState::TaskError,
                &why,
                "REASON_TASK_INVALID",
                now,
            )
        };
        let reason = (|| {
            if task.task_id.value.is_empty() {
                return Err("Task ID must not be empty".to_owned());
            }
            if self
                .frameworks
                .get(framework)
                .is_some_and(|fw| fw.tasks.contains_key(&task.task_id.value))
            {
                return Err(format!("Task has duplicate ID: {}", task.task_id.value));
            }
            if task.agent_id.value != agent {
                return Err(format!(
                    "Task uses invalid agent: {} (its offers are for {agent})",
                    task.agent_id.value
                ));
            }
            // A task of a group runs in the group's executor; any other needs exactly one.
            if executor.is_none() && task.command.is_some() == task.executor.is_some() {
                return Err(
                    "Task should have at least one (but not both) of CommandInfo or \
                     ExecutorInfo present"
                        .to_owned(),
                );
            }
            let mut needed = Resources::new(task.resources.clone())
                .map_err(|e| format!("Task uses invalid resources: {e}"))?;
            if let Some(e) = task.executor.as_ref() {
                let r = Resources::new(e.resources.clone())
                    .map_err(|e| format!("Executor uses invalid resources: {e}"))?;
                // An executor already on the agent holds its resources already.
                let running = self.frameworks.get(framework).is_some_and(|fw| {
                    fw.executors
                        .contains_key(&(agent.to_owned(), e.executor_id.value.clone()))
                });
                if !running {
                    needed += &r;
                }
            }
            if needed.is_empty() {
                return Err("Task uses no resources".to_owned());
            }
            if !remaining.contains(&needed) {
                return Err(format!(
                    "Total resources {} required by task and its executor is more than \
                     available {}",
                    with_allocation(&needed),
                    with_allocation(remaining)
                ));
            }
            Ok(needed)
        })();
        match reason {
            Ok(r) => Some(r),
            Err(why) => {
                let status = fail(why);
                self.refuse_launch(framework, status);
                None
            }
        }
    }

    /// A task that will not run: the framework is told why, and it is counted.
    fn refuse_launch(&mut self, framework: &str, status: TaskStatus) {
        self.count_transition(&status);
        self.send_framework(framework, Event::Update(status));
    }

    /// Adds a launched task; `group_executor` is the executor of its task group.
    fn start_task(
        &mut self,
        framework: &str,
        agent: &str,
        role: &str,
        task: TaskInfo,
        resources: Resources,
        group_executor: Option<&ExecutorInfo>,
    ) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.used += &resources;
        }
        let mut info = task;
        // As Mesos: a group's task names the group's executor, so operators see it.
        if info.executor.is_none() {
            info.executor = group_executor.cloned();
        }
        if let Some(e) = info.executor.as_mut() {
            e.framework_id = Some(Id::new(framework));
        }
        let Some(fw) = self.frameworks.get_mut(framework) else {
            return;
        };
        if let Some(e) = &info.executor {
            fw.executors
                .insert((agent.to_owned(), e.executor_id.value.clone()), e.clone());
        }
        let t = Task {
            framework_id: framework.to_owned(),
            agent_id: agent.to_owned(),
            state: TaskState::TaskStaging,
            statuses: Vec::new(),
            resources,
            role: role.to_owned(),
            info,
        };
        fw.tasks.insert(t.info.task_id.value.clone(), t.clone());
        self.tell_operators(OperatorEvent::TaskAdded(t));
    }

    /// An executor starts holding `resources` on its agent.
    fn charge_executor(
        &mut self,
        framework: &str,
        key: (String, String),
        role: &str,
        resources: Resources,
    ) {
        if resources.is_empty() {
            return;
        }
        if let Some(a) = self.agents.get_mut(&key.0) {
            a.used += &resources;
        }
        if let Some(fw) = self.frameworks.get_mut(framework) {
            fw.executor_usage.insert(key, (resources, role.to_owned()));
        }
    }

    /// The executor exited (or its framework went): what it held is free again.
    fn release_executor(&mut self, framework: &str, key: &(String, String)) {
        let Some((resources, role)) = self
            .frameworks
            .get_mut(framework)
            .and_then(|fw| fw.executor_usage.remove(key))
        else {
            return;
        };
        if let Some(a) = self.agents.get_mut(&key.0) {
            a.used -= &resources;
        }
        self.recover(framework, &role, &key.0, &resources, None);
    }

    fn release_task_resources(&mut self, task: &Task) {
        if let Some(a) = self.agents.get_mut(&task.agent_id) {
            a.used -= &task.resources;
        }
        self.recover(
            &task.framework_id,
            &task.role,
            &task.agent_id,
            &task.resources,
            None,
        );
    }

    fn acknowledge(&mut self, framework: &str, task_id: &Id, agent: &Id, uuid: &[u8]) {
        let encoded = base64::encode(uuid);
        let known = self
            .frameworks
            .get(framework)
            .is_some_and(|fw| fw.tasks.contains_key(&task_id.value));
        self.count(if known {
            "valid_status_update_acknowledgements"
        } else {
            "invalid_status_update_acknowledgements"
        });
        self.send_agent(
            &agent.value,
            AgentEvent::Acknowledge {
                framework_id: Id::new(framework),
                task_id: task_id.clone(),
                uuid: encoded.clone(),
            },
        );
        // The terminal update acknowledged: the task is done with.
        let limit = self.config.max_completed_tasks_per_framework;
        let Some(fw) = self.frameworks.get_mut(framework) else {
            return;
        };
        let done = fw.tasks.get(&task_id.value).is_some_and(|t| {
            t.state.is_terminal()
                && t.latest().and_then(|s| s.uuid.as_deref()) == Some(encoded.as_str())
        });
        if done {
            if let Some(t) = fw.tasks.remove(&task_id.value) {
                push_completed(fw, t, limit);
            }
        }
    }

    fn reconcile(&mut self, framework: &str, tasks: Vec<ReconcileTask>, now: Now) {
        let Some(fw) = self.frameworks.get(framework) else {
            return;
        };
        let partition_aware = fw.partition_aware();
        let mut updates = Vec::new();
        let latest = |t: &Task| {
            let mut s = t.latest().cloned().unwrap_or_else(|| {
                made_up_status(
                    &t.info.task_id,
                    Some(&t.info.agent_id),
                    t.state,
                    "",
                    "",
                    now,
                )
            });
            s.state = t.state;
            s.uuid = None;
            s.message = Some("Reconciliation: Latest task state".to_owned());
            s.source = Some("SOURCE_MASTER".to_owned());
            s.reason = Some("REASON_RECONCILIATION".to_owned());
            s.timestamp = Some(now.wall);
            s.executor_id = None;
            s.healthy = None;
            s.data = None;
            s
        };
        if tasks.is_empty() {
            updates.extend(fw.tasks.values().map(latest));
        } else {
            // Mesos's cases for a task the master does not know, by where its agent is.
            // Partition-unaware frameworks get TASK_LOST for each.
            for r in tasks {
                if let Some(t) = fw.tasks.get(&r.task_id.value) {
                    updates.push(latest(t));
                    continue;
                }
                let agent = r.agent_id.as_ref().map(|a| a.value.as_str());
                // Recovered and not registered again: no answer yet. The framework asks
                // again and is answered once the agent registers or is marked
                // unreachable. Without an agent id any such agent could hold the task.
                let recovered = match agent {
                    Some(a) => self.recovered.contains_key(a),
                    None => !self.recovered.is_empty(),
                };
                if recovered {
                    continue;
                }
                let registered = agent
                    .and_then(|a| self.agents.get(a))
                    .is_some_and(|a| a.state == AgentState::Active);
                let unreachable_since = agent.and_then(|a| self.registry.unreachable_since(a));
                let (state, message) = if registered {
                    (
                        TaskState::TaskGone,
                        "Reconciliation: Task is unknown to the agent",
                    )
                } else if unreachable_since.is_some() {
                    (
                        TaskState::TaskUnreachable,
                        "Reconciliation: Task is unreachable",
                    )
                } else {
                    (TaskState::TaskUnknown, "Reconciliation: Task is unknown")
                };
                let state = if partition_aware {
                    state
                } else {
                    TaskState::TaskLost
                };
                let mut status = made_up_status(
                    &r.task_id,
                    r.agent_id.as_ref(),
                    state,
                    message,
                    "REASON_RECONCILIATION",
                    now,
                );
                status.unreachable_time = unreachable_since
                    .map(|nanoseconds| holdfast_api::scheduler::Nanos { nanoseconds });
                updates.push(status);
            }
        }
        for u in updates {
            self.send_framework(framework, Event::Update(u));
        }
    }

    /// HEARTBEAT to every connected framework (every `heartbeat_interval`).
    pub fn heartbeat(&mut self) {
        let ids: Vec<String> = self
            .frameworks
            .values()
            .filter(|f| f.stream.is_some())
            .map(|f| f.id.clone())
            .collect();
        for id in ids {
            self.send_framework(&id, Event::Heartbeat);
        }
    }

    /// Removes frameworks that stayed away longer than their `failover_timeout`.
    pub fn expire_frameworks(&mut self, now: Now) {
        let expired: Vec<String> = self
            .frameworks
            .values()
            .filter(|f| {
                f.disconnected_at.is_some_and(|at| {
                    let timeout = f.info.failover_timeout.unwrap_or(0.0);
                    now.mono.saturating_duration_since(at)
                        >= Duration::try_from_secs_f64(timeout).unwrap_or(Duration::MAX)
                })
            })
            .map(|f| f.id.clone())
            .collect();
        for id in expired {
            tracing::info!(framework = %id, "framework did not fail over in time; removing it");
            self.remove_framework(&id, now);
        }
    }

    // ---- Agents ---------------------------------------------------------------------

    /// Frameworks an agent runs tasks of, as it reports them when it subscribes (call
    /// before [`subscribe_agent`](Self::subscribe_agent)): those this master does not
    /// know, and did not remove, are added as recovered, as Mesos does, so the tasks the
    /// agent reports are kept even when the agent comes back to a restarted master
    /// before the framework does. A recovered framework gets no offers until its
    /// scheduler subscribes, and has no failover timeout running: only its scheduler or
    /// an operator's TEARDOWN ends it.
    pub fn recover_frameworks(&mut self, frameworks: Vec<FrameworkInfo>, now: Now) {
        for mut info in frameworks {
            let Some(id) = info.id.as_ref().map(|i| i.value.clone()) else {
                continue;
            };
            if id.is_empty()
                || self.frameworks.contains_key(&id)
                || self.removed_frameworks.contains(&id)
            {
                continue;
            }
            tracing::info!(framework = %id, "recovering a framework from an agent that runs its tasks");
            info.id = Some(Id::new(&id));
            let roles = info.effective_roles();
            // Known only from an agent's report: no stream until it subscribes again.
            let fw = Framework {
                recovered: true,
                ..Framework::new(id.clone(), info, None, now)
            };
            let summary = fw.summary();
            self.frameworks.insert(id.clone(), fw);
            self.allocator.add_framework(&id, &roles);
            self.allocator.suppress(&id, &[]);
            self.tell_operators(OperatorEvent::FrameworkAdded(summary));
        }
    }

    /// An agent's SUBSCRIBE on stream `stream`: registration, or reregistration with the
    /// id it was given (also after this master restarted, or after it was unreachable).
    pub fn subscribe_agent(
        &mut self,
        agent_id: Option<Id>,
        info: AgentInfo,
        tasks: Vec<TaskReport>,
        stream: String,
        now: Now,
    ) -> Result<String, ApiError> {
        let total = Resources::new(info.resources.clone())
            .map_err(|e| ApiError::bad_request(format!("invalid agent resources: {e}")))?;
        if agent_id.is_some() {
            self.count("messages_reregister_slave");
            self.count("slave_reregistrations");
        } else {
            self.count("messages_register_slave");
            self.count("slave_registrations");
        }
        let id = match agent_id {
            Some(id) => id.value,
            None => {
                let id = format!("{}-S{}", self.info.id, self.next_agent);
                self.next_agent += 1;
                id
            }
        };
        if self.recovered.remove(&id).is_some() {
            tracing::info!(agent = %id, "agent recovered from the registry registered again");
            if self.recovered.is_empty() {
                self.recovery_deadline = None;
            }
        } else if self.registry.unreachable_since(&id).is_some() && !self.agents.contains_key(&id) {
            tracing::info!(agent = %id, "agent unreachable since before the master started came back; readmitting it");
        }
        // REGISTERED, queued below, waits for the registry to be written.
        let changed = self.registry.admit(&id, &info);
        self.registry_changed(changed);
        // Operators learn of agents that join the registered ones.
        let added = self
            .agents
            .get(&id)
            .is_none_or(|a| a.state != AgentState::Active);
        let old_stream = match self.agents.get_mut(&id) {
            Some(agent) => {
                let old = agent.stream.replace(stream.clone());
                agent.info = info;
                agent.total = total.clone();
                agent.missed_pings = 0;
                agent.reregistered_time = Some(now.wall);
                if let AgentState::Unreachable { .. } = agent.state {
                    tracing::info!(agent = %id, "unreachable agent came back; readmitting it");
                }
                agent.state = AgentState::Active;
                old
            }
            None => {
                self.agents.insert(
                    id.clone(),
                    Agent {
                        id: id.clone(),
                        info,
                        total: total.clone(),
                        used: Resources::default(),
                        offered: Resources::default(),
                        state: AgentState::Active,
                        stream: Some(stream),
                        missed_pings: 0,
                        registered_time: now.wall,
                        reregistered_time: None,
                    },
                );
                None
            }
        };
        if let Some(old) = old_stream {
            self.outputs.push(Output::EndAgentStream {
                agent: id.clone(),
                stream: old,
            });
        }
        // Offers on the old registration are void.
        self.rescind_agent_offers(&id);
        self.allocator.add_agent(&id, total.scalars());
        self.adopt_reported_tasks(&id, tasks);
        if added {
            if let Some(a) = self.agents.get(&id) {
                let a = a.clone();
                self.tell_operators(OperatorEvent::AgentAdded(a));
            }
        }
        self.send_agent(
            &id,
            AgentEvent::Registered {
                agent_id: Id::new(&id),
                ping_interval_seconds: self.config.agent_ping_timeout.as_secs_f64(),
            },
        );
        self.dirty = true;
        Ok(id)
    }

    /// Brings the master's view of the agent's tasks in line with what it reports.
    fn adopt_reported_tasks(&mut self, agent: &str, reports: Vec<TaskReport>) {
        let mut used = Resources::default();
        let mut added = Vec::new();
        for report in reports {
            let framework = report.framework_id.value.clone();
            let Some(fw) = self.frameworks.get_mut(&framework) else {
                // A framework this master does not know (removed, or lost in a master
                // restart before it resubscribed): its tasks must not run on.
                if self.removed_frameworks.contains(&framework) {
                    self.send_agent(
                        agent,
                        AgentEvent::ShutdownFramework {
                            framework_id: report.framework_id,
                        },
                    );
                }
                continue;
            };
            let partition_aware = fw.partition_aware();
            let resources = Resources::new(report.task.resources.clone()).unwrap_or_default();
            let lost_before = fw
                .tasks
                .get(&report.task.task_id.value)
                .is_some_and(|t| t.state == TaskState::TaskLost);
            if lost_before && !partition_aware {
                // The framework was told the task was lost; it must not come back.
                let task_id = report.task.task_id.clone();
                self.send_agent(
                    agent,
                    AgentEvent::KillTask {
                        framework_id: report.framework_id,
                        task_id,
                        kill_policy: None,
                    },
                );
                continue;
            }
            if !report.state.is_terminal() {
                used += &resources;
            }
            let role = report
                .task
                .resources
                .iter()
                .find_map(|r| r.allocation_info.as_ref().and_then(|a| a.role.clone()))
                .unwrap_or_else(|| "*".to_owned());
            if let Some(e) = &report.task.executor {
                let mut e = e.clone();
                e.framework_id = Some(report.framework_id.clone());
                fw.executors
                    .insert((agent.to_owned(), e.executor_id.value.clone()), e);
            }
            let previous = fw.tasks.get(&report.task.task_id.value).map(|t| t.state);
            let entry = fw
                .tasks
                .entry(report.task.task_id.value.clone())
                .or_insert_with(|| Task {
                    info: report.task.clone(),
                    framework_id: framework.clone(),
                    agent_id: agent.to_owned(),
                    state: report.state,
                    statuses: Vec::new(),
                    resources: resources.clone(),
                    role: role.clone(),
                });
            entry.state = report.state;
            // New to this master, or back from an unreachable agent: operators see it
            // added, as Mesos re-adds a returning agent's tasks.
            if previous.is_none_or(|s| s == TaskState::TaskUnreachable) {
                added.push(entry.clone());
            }
            if !report.state.is_terminal() {
                self.allocator
                    .allocate(&framework, &role, agent, &resources.scalars());
            }
        }
        if let Some(a) = self.agents.get_mut(agent) {
            a.used = used;
        }
        for t in added {
            self.tell_operators(OperatorEvent::TaskAdded(t));
        }
    }

    pub fn agent_pong(&mut self, agent: &str) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.missed_pings = 0;
        }
    }

    pub fn agent_disconnected(&mut self, agent: &str, stream: &str) {
        if let Some(a) = self.agents.get_mut(agent) {
            if a.stream.as_deref() == Some(stream) {
                a.stream = None;
            }
        }
        self.rescind_agent_offers(agent);
    }

    /// Every `agent_ping_timeout`: ping connected agents; an agent that has not answered
    /// `max_agent_ping_timeouts` pings in a row (or stayed disconnected that long) becomes
    /// unreachable.
    pub fn ping_agents(&mut self, now: Now) {
        let ids: Vec<String> = self
            .agents
            .values()
            .filter(|a| a.state == AgentState::Active)
            .map(|a| a.id.clone())
            .collect();
        for id in ids {
            let Some(a) = self.agents.get_mut(&id) else {
                continue;
            };
            if a.missed_pings >= self.config.max_agent_ping_timeouts {
                self.mark_unreachable(&id, now);
                continue;
            }
            a.missed_pings += 1;
            self.send_agent(&id, AgentEvent::Ping);
        }
    }

    pub fn mark_unreachable(&mut self, agent: &str, now: Now) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        tracing::warn!(agent, hostname = %a.info.hostname, "agent is unreachable: health check timed out");
        a.state = AgentState::Unreachable { since: now.wall };
        let hostname = a.info.hostname.clone();
        if let Some(stream) = a.stream.take() {
            self.outputs.push(Output::EndAgentStream {
                agent: agent.to_owned(),
                stream,
            });
        }
        self.rescind_agent_offers(agent);
        // The updates below wait for the registry to be written.
        let changed = self.registry.mark_unreachable(agent, nanos(now.wall));
        self.registry_changed(changed);
        // Mesos schedules the marking (rate limited) and then completes it; here both
        // happen at once, so nothing is ever cancelled.
        self.count("slave_unreachable_scheduled");
        self.count("slave_unreachable_completed");
        self.count("slave_removals");
        self.count("slave_removals/reason_unhealthy");
        let mut updates = Vec::new();
        for fw in self.frameworks.values_mut() {
            // Its executors went with it.
            fw.executors.retain(|(a, _), _| a != agent);
            fw.executor_usage.retain(|(a, _), _| a != agent);
            let partition_aware = fw.partition_aware();
            for t in fw.tasks.values_mut().filter(|t| t.agent_id == agent) {
                if t.state.is_terminal() {
                    continue;
                }
                let state = if partition_aware {
                    TaskState::TaskUnreachable
                } else {
                    TaskState::TaskLost
                };
                let mut s = master_status(
                    t,
                    state,
                    &format!("Agent {hostname} is unreachable: health check timed out"),
                    "REASON_AGENT_REMOVED",
                    now,
                );
                if partition_aware {
                    s.unreachable_time = Some(holdfast_api::scheduler::Nanos {
                        nanoseconds: nanos(now.wall),
                    });
                }
                t.record(&s);
                updates.push((fw.id.clone(), s));
            }
        }
        for (fw, s) in updates {
            self.count_transition(&s);
            self.tell_operators(OperatorEvent::TaskUpdated {
                framework_id: fw.clone(),
                state: s.state,
                status: s.clone(),
            });
            self.send_framework(&fw, Event::Update(s));
        }
        if let Some(a) = self.agents.get_mut(agent) {
            a.used = Resources::default();
        }
        self.allocator.remove_agent(agent);
        self.tell_operators(OperatorEvent::AgentRemoved(agent.to_owned()));
        self.dirty = true;
    }

    /// Once `agent_reregister_timeout` has passed since the master recovered, the
    /// recovered agents that have not registered again are marked unreachable, as Mesos
    /// does after a failover. The master knows none of their tasks, so connected
    /// frameworks are only told the agent is lost (a FAILURE without an executor); they
    /// learn their tasks' fate by reconciling them.
    pub fn expire_recovered_agents(&mut self, now: Now) {
        if self.recovery_deadline.is_none_or(|d| now.mono < d) {
            return;
        }
        self.recovery_deadline = None;
        let lost = std::mem::take(&mut self.recovered);
        let connected: Vec<String> = self
            .frameworks
            .values()
            .filter(|f| f.connected())
            .map(|f| f.id.clone())
            .collect();
        let timeout = self.config.agent_reregister_timeout;
        for (id, info) in lost {
            tracing::warn!(
                agent = %id,
                hostname = %info.hostname,
                "agent did not register again within {timeout:?} after the master started; marking it unreachable"
            );
            let changed = self.registry.mark_unreachable(&id, nanos(now.wall));
            self.registry_changed(changed);
            for name in [
                "slave_unreachable_scheduled",
                "slave_unreachable_completed",
                "slave_removals",
                "slave_removals/reason_unhealthy",
                "recovery_slave_removals",
            ] {
                self.count(name);
            }
            for fw in &connected {
                self.send_framework(
                    fw,
                    Event::Failure {
                        agent_id: Id::new(&id),
                        executor_id: None,
                        status: None,
                    },
                );
            }
        }
    }

    /// The registry's garbage collection (every `--registry_gc_interval`): unreachable
    /// agents marked longer ago than `registry_max_agent_age`, or beyond the newest
    /// `registry_max_agent_count`, are forgotten, and with them the tasks the master kept
    /// as unreachable there; reconciling those now answers as for unknown tasks, as in
    /// Mesos. Returns how many agents went.
    pub fn prune_registry(&mut self, now: Now) -> usize {
        let removed = self.registry.prune(
            nanos(now.wall),
            self.config.registry_max_agent_age,
            self.config.registry_max_agent_count,
        );
        if removed.is_empty() {
            return 0;
        }
        self.registry_changed(true);
        for id in &removed {
            if self
                .agents
                .get(id)
                .is_some_and(|a| a.state != AgentState::Active)
            {
                self.agents.remove(id);
            }
            for fw in self.frameworks.values_mut() {
                fw.tasks
                    .retain(|_, t| t.agent_id != *id || t.state != TaskState::TaskUnreachable);
            }
        }
        tracing::info!(
            agents = removed.len(),
            "forgot unreachable agents past --registry_max_agent_age or --registry_max_agent_count"
        );
        removed.len()
    }

    /// A status update from an agent, forwarded to its framework (which acknowledges it
    /// through the master).
    pub fn agent_update(&mut self, agent: &str, framework: &str, mut status: TaskStatus) {
        status.agent_id = Some(Id::new(agent));
        self.count("messages_status_update");
        let limit = self.config.max_completed_tasks_per_framework;
        let mut released = None;
        let mut known = false;
        let mut new_state = false;
        if let Some(fw) = self.frameworks.get_mut(framework) {
            if let Some(t) = fw.tasks.get_mut(&status.task_id.value) {
                known = true;
                let was_terminal = t.state.is_terminal();
                new_state = t.record(&status);
                if status.state.is_terminal() && !was_terminal {
                    released = Some(t.clone());
                }
                // A terminal update without a uuid needs no acknowledgement.
                if status.state.is_terminal() && status.uuid.is_none() {
                    if let Some(t) = fw.tasks.remove(&status.task_id.value) {
                        push_completed(fw, t, limit);
                    }
                }
            }
        }
        self.count(if known {
            "valid_status_updates"
        } else {
            "invalid_status_updates"
        });
        if new_state {
            self.tell_operators(OperatorEvent::TaskUpdated {
                framework_id: framework.to_owned(),
                state: status.state,
                status: status.clone(),
            });
        }
        if let Some(t) = released {
            self.count_transition(&status);
            self.release_task_resources(&t);
        }
        self.send_framework(framework, Event::Update(status));
    }

    pub fn agent_message(&mut self, framework: &str, agent: &str, executor: Id, data: Vec<u8>) {
        self.count("messages_executor_to_framework");
        self.count(if self.frameworks.contains_key(framework) {
            "valid_executor_to_framework_messages"
        } else {
            "invalid_executor_to_framework_messages"
        });
        self.send_framework(
            framework,
            Event::Message {
                agent_id: Id::new(agent),
                executor_id: executor,
                data,
            },
        );
    }

    pub fn executor_exited(&mut self, framework: &str, agent: &str, executor: Id, status: i32) {
        self.count("messages_exited_executor");
        self.release_executor(framework, &(agent.to_owned(), executor.value.clone()));
        if let Some(fw) = self.frameworks.get_mut(framework) {
            fw.executors
                .remove(&(agent.to_owned(), executor.value.clone()));
        }
        self.send_framework(
            framework,
            Event::Failure {
                agent_id: Id::new(agent),
                executor_id: Some(executor),
                status: Some(status),
            },
        );
    }

    // ---- Offers ---------------------------------------------------------------------

    /// Outstanding offer `id` as its framework was sent it.
    pub fn offer(&self, id: &str) -> Option<Offer> {
        let o = self.offers.get(id)?;
        let agent = self.agents.get(&o.agent)?;
        Some(Offer {
            id: Id::new(id),
            framework_id: Id::new(&o.framework),
            agent_id: Id::new(&o.agent),
            hostname: agent.info.hostname.clone(),
            url: Url {
                scheme: "http".to_owned(),
                address: holdfast_api::scheduler::Address {
                    hostname: agent.info.hostname.clone(),
                    ip: agent.info.hostname.clone(),
                    port: agent.info.port,
                },
                path: "/slave(1)".to_owned(),
            },
            resources: o.resources.to_vec(),
            attributes: agent.info.attributes.clone(),
            allocation_info: AllocationInfo {
                role: Some(o.role.clone()),
            },
            domain: agent.info.domain.clone(),
        })
    }

    /// Offers what agents have available, when something changed since the last time
    /// (or always with `force`, so expired filters are noticed).
    pub fn allocate(&mut self, now: Now, force: bool) {
        if !self.dirty && !force {
            return;
        }
        self.dirty = false;
        let available: BTreeMap<String, holdfast_resources::Resources> = self
            .agents
            .values()
            .filter(|a| a.state == AgentState::Active && a.stream.is_some())
            .map(|a| (a.id.clone(), a.available()))
            .filter(|(_, r)| !r.is_empty())
            .collect();
        let scalars = available
            .iter()
            .map(|(k, r)| (k.clone(), r.scalars()))
            .collect();
        let decisions = self.allocator.decide(&scalars, now.mono);
        let mut by_framework: BTreeMap<String, Vec<Offer>> = BTreeMap::new();
        for d in decisions {
            let Some(resources) = available.get(&d.agent) else {
                continue;
            };
            if self
                .frameworks
                .get(&d.framework)
                .is_none_or(|f| f.stream.is_none())
            {
                continue;
            }
            let resources = resources.allocated_to(&d.role);
            let id = format!("{}-O{}", self.info.id, self.next_offer);
            self.next_offer += 1;
            let Some(agent) = self.agents.get_mut(&d.agent) else {
                continue;
            };
            agent.offered += &resources;
            self.allocator
                .allocate(&d.framework, &d.role, &d.agent, &resources.scalars());
            if let Some(fw) = self.frameworks.get_mut(&d.framework) {
                fw.offers.insert(id.clone());
            }
            self.offers.insert(
                id.clone(),
                PendingOffer {
                    framework: d.framework.clone(),
                    agent: d.agent.clone(),
                    role: d.role,
                    resources,
                },
            );
            if let Some(offer) = self.offer(&id) {
                by_framework.entry(d.framework).or_default().push(offer);
            }
        }
        for (fw, offers) in by_framework {
            self.send_framework(&fw, Event::Offers(offers));
        }
    }
}

/// A task state's name as Mesos writes it (`TASK_RUNNING`).
pub fn state_name(state: TaskState) -> String {
    match serde_json::to_value(state) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{state:?}"),
    }
}

/// Resources that name no allocation role get the offer's, as Mesos does for frameworks
/// that leave it out (those written before MULTI_ROLE).
fn inject_allocation(op: &mut Operation, role: &str) {
    let fill = |resources: &mut Vec<holdfast_api::v1::Resource>| {
        for r in resources.iter_mut().filter(|r| r.allocation_info.is_none()) {
            r.allocation_info = Some(AllocationInfo {
                role: Some(role.to_owned()),
            });
        }
    };
    let tasks = match op {
        Operation::Launch(tasks) => tasks,
        Operation::LaunchGroup { executor, tasks } => {
            fill(&mut executor.resources);
            tasks
        }
        Operation::Unsupported(_) => return,
    };
    for t in tasks.iter_mut() {
        fill(&mut t.resources);
        if let Some(e) = t.executor.as_mut() {
            fill(&mut e.resources);
        }
    }
}

/// When a refuse filter of `refuse` from `now` ends; none for a zero duration.
fn refuse_until(refuse: Duration, now: Now) -> Option<Instant> {
    (!refuse.is_zero()).then(|| now.mono + refuse)
}

fn push_completed(fw: &mut Framework, t: Task, limit: usize) {
    fw.completed.push_back(t);
    while fw.completed.len() > limit {
        fw.completed.pop_front();
    }
}

/// Resources in Mesos's text form with their allocation role, as its error messages
/// write them: `cpus(allocated: *):4`.
fn with_allocation(r: &Resources) -> String {
    r.iter()
        .map(|res| {
            let role = res
                .allocation_info
                .as_ref()
                .and_then(|a| a.role.clone())
                .unwrap_or_else(|| "*".to_owned());
            let one = Resources::new([res.clone()]).map(|x| x.unallocated().to_string());
            let text = one.unwrap_or_default();
            match text.split_once(':') {
                Some((name, value)) => format!("{name}(allocated: {role}):{value}"),
                None => text,
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// An update the master makes up: no uuid (nothing to acknowledge), source master.
fn made_up_status(
    task: &Id,
    agent: Option<&Id>,
    state: TaskState,
    message: &str,
    reason: &str,
    now: Now,
) -> TaskStatus {
    TaskStatus {
        task_id: task.clone(),
        state,
        message: (!message.is_empty()).then(|| message.to_owned()),
        source: Some("SOURCE_MASTER".to_owned()),
        reason: (!reason.is_empty()).then(|| reason.to_owned()),
        data: None,
        agent_id: agent.cloned(),
        executor_id: None,
        timestamp: Some(now.wall),
        uuid: None,
        healthy: None,
        container_status: None,
        unreachable_time: None,
        extra: Default::default(),
    }
}

fn master_status(
    task: &Task,
    state: TaskState,
    message: &str,
    reason: &str,
    now: Now,
) -> TaskStatus {
    made_up_status(
        &task.info.task_id,
        Some(&Id::new(&task.agent_id)),
        state,
        message,
        reason,
        now,
    )
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
