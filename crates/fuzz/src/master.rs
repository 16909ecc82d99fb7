//! The `master` target: the master's state machine, driven without a network.
//!
//! Each input is a script, one call per line: scheduler calls (as `POST
//! /api/v1/scheduler` bodies) and agent calls (as `/internal/v1/agent` bodies). Every run
//! starts from the same cluster (two frameworks, two agents, first offers made; its ids
//! are those of the fixtures' capture, so fixture calls name live frameworks, agents and
//! offers) and routes calls the way the HTTP layer does. Between calls a fake clock moves
//! on and the timers' work runs (allocation, pings, failover expiry, disconnects and
//! reconnects, and restarts of the master from its registry, written and read back),
//! chosen by randomness derived from the input, so a script always replays the same
//! way. After every step the cluster's bookkeeping is checked.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use holdfast_api::internal::{AgentCall, AgentEvent, AgentInfo, TaskReport};
use holdfast_api::scheduler::{self, CallBody, Event, FrameworkInfo, Id, MasterInfo, Subscribe};
use holdfast_api::{base64, ApiError};
use holdfast_master::registry::Registry;
use holdfast_master::state::{AgentState, Config, Master, Output};
use holdfast_resources::Resources;

use crate::corpus::{Corpus, FIXTURE_MASTER_ID, INTERNAL_SEEDS, MASTER_SCRIPTS, SCHEDULER_SEEDS};
use crate::mutate;
use crate::parsers::{agent_call_name, signature};
use crate::rng::{fnv1a, Rng};
use crate::{Finding, Target};

/// Calls per script; later lines are ignored, so a run stays short.
const MAX_STEPS: usize = 32;

pub struct MasterTarget {
    cluster: Cluster,
    seeds: Vec<Vec<u8>>,
    /// Single calls from the seeds, to insert into scripts and splice into lines.
    lines: Vec<Vec<u8>>,
}

impl MasterTarget {
    pub fn new(corpus: &Corpus) -> MasterTarget {
        let mut seeds: Vec<Vec<u8>> = MASTER_SCRIPTS
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        seeds.extend(corpus.bodies_for(&["/api/v1/scheduler"]));
        seeds.extend(
            SCHEDULER_SEEDS
                .iter()
                .chain(INTERNAL_SEEDS)
                .map(|s| s.as_bytes().to_vec()),
        );
        let lines = seeds
            .iter()
            .flat_map(|s| s.split(|b| *b == b'\n'))
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        MasterTarget {
            cluster: Cluster::new(),
            seeds,
            lines,
        }
    }
}

/// Who is there when a run starts (made once: every run starts from it).
struct Cluster {
    frameworks: Vec<FrameworkInfo>,
    agents: Vec<AgentInfo>,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster {
            frameworks: vec![
                framework_info("golden-scheduler", &["MULTI_ROLE", "PARTITION_AWARE"], 10.0),
                framework_info("golden-scheduler-legacy-caps", &["MULTI_ROLE"], 0.0),
            ],
            agents: vec![
                agent_info("cpus:4;mem:4096;disk:10000;ports:[31000-32000]"),
                agent_info("cpus:2;cpus(web):1;mem:1024;gpus:1;zones:{a,b}"),
            ],
        }
    }
}

impl Target for MasterTarget {
    fn name(&self) -> &'static str {
        "master"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        self.seeds.clone()
    }

    /// Scripts change line by line: a line is mutated, dropped, repeated, moved, or
    /// brought in from another seed.
    fn mutate(&mut self, rng: &mut Rng, input: &[u8], _pool: &[Vec<u8>]) -> Vec<u8> {
        let mut lines: Vec<Vec<u8>> = input.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
        let n = lines.len();
        match rng.below(10) {
            0 if n > 1 => {
                lines.remove(rng.below(n));
            }
            1 => {
                let copy = lines[rng.below(n)].clone();
                lines.insert(rng.below(n + 1), copy);
            }
            2 if n > 1 => lines.swap(rng.below(n), rng.below(n)),
            3 => {
                let line = rng.pick(&self.lines).clone();
                lines.insert(rng.below(n + 1), line);
            }
            _ => {
                let i = rng.below(n);
                lines[i] = mutate::mutate(rng, &lines[i], &self.lines);
            }
        }
        lines.truncate(MAX_STEPS);
        let mut out = lines.join(&b'\n');
        out.truncate(mutate::MAX_INPUT);
        out
    }

    fn run(&mut self, input: &[u8]) -> Result<String, Finding> {
        let mut sim = Sim::new(&self.cluster, fnv1a(input));
        sim.check("setup")?;
        let lines = input
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .take(MAX_STEPS);
        for (i, line) in lines.enumerate() {
            let what = sim.apply(line);
            sim.check(&format!("call {i} ({what})"))?;
            sim.tick();
            sim.check(&format!("timers after call {i} ({what})"))?;
        }
        // Time goes on after the last call too: failovers expire, agents go quiet.
        for i in 0..sim.rng.below(6) {
            sim.tick();
            sim.check(&format!("timers {i} after the last call"))?;
        }
        Ok(sim.seen.into_iter().collect::<Vec<_>>().join(","))
    }
}

struct Sim {
    m: Master,
    start: Instant,
    secs: f64,
    rng: Rng,
    next_stream: u64,
    /// Frameworks that subscribed (with their ids), as their schedulers remember them
    /// across a restart of the master.
    schedulers: BTreeMap<String, FrameworkInfo>,
    /// What each agent ran when the master last restarted: it reports those tasks when
    /// it registers again, though the new master never heard of them.
    agent_tasks: BTreeMap<String, Vec<TaskReport>>,
    restarts: u64,
    /// What the run did, as a signature for the pool.
    seen: BTreeSet<String>,
}

fn framework_info(name: &str, capabilities: &[&str], failover: f64) -> FrameworkInfo {
    let caps: Vec<_> = capabilities
        .iter()
        .map(|c| serde_json::json!({ "type": c }))
        .collect();
    serde_json::from_value(serde_json::json!({
        "user": "root", "name": name, "roles": ["*", "web"], "hostname": "127.0.0.1",
        "failover_timeout": failover, "capabilities": caps,
    }))
    .expect("a literal framework info is valid")
}

fn agent_info(resources: &str) -> AgentInfo {
    AgentInfo {
        hostname: "127.0.0.1".to_owned(),
        port: 5051,
        resources: Resources::parse(resources, "*")
            .expect("literal resources parse")
            .into_vec(),
        attributes: Vec::new(),
        domain: None,
    }
}

impl Sim {
    fn new(cluster: &Cluster, seed: u64) -> Sim {
        let info = MasterInfo::new(
            FIXTURE_MASTER_ID,
            std::net::Ipv4Addr::LOCALHOST,
            "127.0.0.1",
            5050,
            "1.11.0",
        );
        let config = Config {
            // Small, so that the completed-task ring buffer wraps within a script.
            max_completed_tasks_per_framework: 2,
            // Few, so that agents become unreachable within a script.
            max_agent_ping_timeouts: 2,
            // Short, so that recovered agents are marked unreachable within a script,
            // and the registry's limits are reached.
            agent_reregister_timeout: Duration::from_secs(30),
            registry_max_agent_age: Duration::from_secs(3600),
            registry_max_agent_count: 1,
            ..Config::default()
        };
        let mut sim = Sim {
            m: Master::new(info, config),
            start: Instant::now(),
            secs: 0.0,
            rng: Rng::new(seed),
            next_stream: 0,
            schedulers: BTreeMap::new(),
            agent_tasks: BTreeMap::new(),
            restarts: 0,
            seen: BTreeSet::new(),
        };
        let now = sim.now();
        for info in &cluster.frameworks {
            let stream = sim.stream();
            let sub = Subscribe {
                framework_info: info.clone(),
                suppressed_roles: Vec::new(),
            };
            sim.m
                .subscribe_framework(None, sub, stream, now)
                .expect("a new framework subscribes");
        }
        for info in &cluster.agents {
            let stream = sim.stream();
            sim.m
                .subscribe_agent(None, info.clone(), Vec::new(), stream, now)
                .expect("a new agent registers");
        }
        sim.m.allocate(now, true);
        sim.m.take_outputs();
        sim
    }

    fn now(&self) -> holdfast_master::state::Now {
        holdfast_master::state::Now {
            mono: self.start + Duration::from_secs_f64(self.secs),
            wall: 1_795_290_210.0 + self.secs,
        }
    }

    fn stream(&mut self) -> String {
        self.next_stream += 1;
        format!("stream-{}", self.next_stream)
    }

    fn note(&mut self, what: String) {
        self.seen.insert(what);
    }

    /// One line of the script, routed as the HTTP layer routes it; returns what it was.
    fn apply(&mut self, line: &[u8]) -> String {
        let now = self.now();
        let call = match scheduler::parse_call(line) {
            Ok(call) => call,
            Err(_) => {
                return match serde_json::from_slice::<AgentCall>(line) {
                    Ok(call) => self.agent_call(call),
                    Err(_) => "unparsed".to_owned(),
                }
            }
        };
        let name = call.body.name().to_owned();
        match call.body {
            CallBody::Subscribe(sub) => {
                let stream = self.stream();
                let result = self
                    .m
                    .subscribe_framework(call.framework_id, sub, stream, now);
                self.note(format!("SUBSCRIBE {}", result.is_ok()));
            }
            body => {
                // A scheduler's calls carry the stream id it was given; a framework
                // without a stream has no id to send.
                let stream = call
                    .framework_id
                    .as_ref()
                    .and_then(|id| self.m.frameworks.get(&id.value))
                    .and_then(|fw| fw.stream.clone());
                let result = self
                    .m
                    .authorize_call(call.framework_id.as_ref(), stream.as_deref())
                    .and_then(|fw| self.m.framework_call(&fw, body, now));
                self.note(outcome(&name, &result));
            }
        }
        name
    }

    fn agent_call(&mut self, call: AgentCall) -> String {
        let name = agent_call_name(&call).to_owned();
        let now = self.now();
        let agent = match &call {
            AgentCall::Subscribe { .. } => String::new(),
            AgentCall::Pong { agent_id }
            | AgentCall::Update { agent_id, .. }
            | AgentCall::Message { agent_id, .. }
            | AgentCall::ExecutorExited { agent_id, .. } => agent_id.value.clone(),
        };
        // Calls other than SUBSCRIBE need the agent's live stream, as over HTTP.
        let connected = self
            .m
            .agents
            .get(&agent)
            .is_some_and(|a| a.stream.is_some());
        let result: Result<(), ApiError> = match call {
            AgentCall::Subscribe {
                agent_id,
                info,
                tasks,
                frameworks,
            } => {
                let stream = self.stream();
                self.m.recover_frameworks(frameworks, now);
                self.m
                    .subscribe_agent(agent_id, info, tasks, stream, now)
                    .map(|_| ())
            }
            _ if !connected => Err(ApiError::bad_request("agent not subscribed")),
            AgentCall::Pong { .. } => {
                self.m.agent_pong(&agent);
                Ok(())
            }
            AgentCall::Update {
                framework_id,
                status,
                ..
            } => {
                self.m.agent_update(&agent, &framework_id.value, status);
                Ok(())
            }
            AgentCall::Message {
                framework_id,
                executor_id,
                data,
                ..
            } => base64::decode(&data)
                .map(|data| {
                    self.m
                        .agent_message(&framework_id.value, &agent, executor_id, data)
                })
                .map_err(ApiError::bad_request),
            AgentCall::ExecutorExited {
                framework_id,
                executor_id,
                status,
                ..
            } => {
                self.m
                    .executor_exited(&framework_id.value, &agent, executor_id, status);
                Ok(())
            }
        };
        self.note(outcome(&format!("agent {name}"), &result));
        format!("agent {name}")
    }

    /// Time passes and the master's timers (and its clients' comings and goings) act.
    fn tick(&mut self) {
        self.secs += *self.rng.pick(&[
            0.0, 0.0, 0.1, 0.5, 1.0, 2.0, 5.0, 15.0, 16.0, 30.0, 75.0, 3600.0,
        ]);
        let now = self.now();
        if self.rng.chance(30) {
            self.m.ping_agents(now);
        }
        if self.rng.chance(30) {
            self.m.expire_frameworks(now);
        }
        if self.rng.chance(10) {
            self.m.heartbeat();
        }
        if self.rng.chance(20) {
            if let Some(agent) = self.pick_agent(|a| a.stream.is_some()) {
                self.m.agent_pong(&agent);
            }
        }
        if self.rng.chance(8) {
            let connected: Vec<(String, String)> = self
                .m
                .frameworks
                .values()
                .filter_map(|f| f.stream.clone().map(|s| (f.id.clone(), s)))
                .collect();
            if !connected.is_empty() {
                let (fw, stream) = self.rng.pick(&connected).clone();
                self.m.framework_disconnected(&fw, &stream, now);
            }
        }
        if self.rng.chance(8) {
            if let Some(agent) = self.pick_agent(|a| a.stream.is_some()) {
                let stream = self.m.agents[&agent].stream.clone().unwrap_or_default();
                self.m.agent_disconnected(&agent, &stream);
            }
        }
        if self.rng.chance(8) {
            self.resubscribe_framework();
        }
        if self.rng.chance(8) {
            self.reregister_agent();
        }
        if self.rng.chance(20) {
            self.m.expire_recovered_agents(now);
        }
        if self.rng.chance(10) {
            self.m.prune_registry(now);
        }
        if self.rng.chance(4) {
            self.restart_master();
        }
        let force = self.rng.chance(50);
        self.m.allocate(now, force);
    }

    /// The master restarts: a new one starts from the registry as written and read
    /// back. Schedulers and agents keep what they knew.
    fn restart_master(&mut self) {
        for (agent, tasks) in self.agent_tasks.iter_mut() {
            tasks.retain(|t| {
                !self.m.frameworks.values().any(|f| {
                    f.tasks
                        .get(&t.task.task_id.value)
                        .is_some_and(|k| k.agent_id == *agent)
                })
            });
        }
        for t in self.m.frameworks.values().flat_map(|f| f.tasks.values()) {
            self.agent_tasks
                .entry(t.agent_id.clone())
                .or_default()
                .push(TaskReport {
                    framework_id: Id::new(&t.framework_id),
                    task: t.info.clone(),
                    state: t.state,
                    executor_id: None,
                });
        }
        // A document that does not read back is a finding of the invariants; starting
        // empty lets the run go on.
        let registry = Registry::decode(&self.m.registry().encode()).unwrap_or_default();
        self.restarts += 1;
        let mut info = self.m.info.clone();
        info.id = format!("{FIXTURE_MASTER_ID}-{}", self.restarts);
        let now = self.now();
        let mut m = Master::new(info, self.m.config.clone());
        m.recover_from_registry(registry, now);
        self.m = m;
        self.note("restart".to_owned());
    }

    fn pick_agent(
        &mut self,
        filter: impl Fn(&holdfast_master::state::Agent) -> bool,
    ) -> Option<String> {
        let ids: Vec<String> = self
            .m
            .agents
            .values()
            .filter(|a| filter(a))
            .map(|a| a.id.clone())
            .collect();
        (!ids.is_empty()).then(|| self.rng.pick(&ids).clone())
    }

    /// A disconnected framework's scheduler comes back (failover) with the info it had,
    /// also to a master that restarted since and does not know it.
    fn resubscribe_framework(&mut self) {
        let away: Vec<FrameworkInfo> = self
            .schedulers
            .iter()
            .filter(|(id, _)| {
                self.m
                    .frameworks
                    .get(*id)
                    .is_none_or(|f| f.stream.is_none())
            })
            .map(|(_, info)| info.clone())
            .collect();
        if away.is_empty() {
            return;
        }
        let info = self.rng.pick(&away).clone();
        let stream = self.stream();
        let now = self.now();
        let id = info.id.clone();
        let sub = Subscribe {
            framework_info: info,
            suppressed_roles: Vec::new(),
        };
        let ok = self.m.subscribe_framework(id, sub, stream, now).is_ok();
        self.note(format!("failover {ok}"));
    }

    /// An agent registers again, reporting the tasks the master thinks it runs and
    /// those it ran before the master restarted, with their frameworks (what an agent
    /// that lost its connection, or restarted, does). Agents the master recovered, or
    /// knows only as unreachable from its registry, come back too.
    fn reregister_agent(&mut self) {
        let mut candidates: Vec<(String, AgentInfo)> = self
            .m
            .agents
            .values()
            .map(|a| (a.id.clone(), a.info.clone()))
            .chain(
                self.m
                    .recovered
                    .iter()
                    .map(|(id, i)| (id.clone(), i.clone())),
            )
            .collect();
        let any_info = candidates.first().map(|(_, i)| i.clone());
        if let Some(info) = any_info {
            for id in self.m.registry().unreachable.keys() {
                if !candidates.iter().any(|(c, _)| c == id) {
                    candidates.push((id.clone(), info.clone()));
                }
            }
        }
        if candidates.is_empty() {
            return;
        }
        let (agent, info) = self.rng.pick(&candidates).clone();
        let mut tasks: Vec<TaskReport> = self
            .m
            .frameworks
            .values()
            .flat_map(|f| f.tasks.values())
            .filter(|t| t.agent_id == agent)
            .map(|t| TaskReport {
                framework_id: Id::new(&t.framework_id),
                task: t.info.clone(),
                state: t.state,
                executor_id: None,
            })
            .collect();
        for t in self.agent_tasks.get(&agent).into_iter().flatten() {
            if !tasks.iter().any(|k| k.task.task_id == t.task.task_id) {
                tasks.push(t.clone());
            }
        }
        let frameworks: Vec<FrameworkInfo> = tasks
            .iter()
            .filter_map(|t| self.schedulers.get(&t.framework_id.value).cloned())
            .collect();
        let stream = self.stream();
        let now = self.now();
        self.m.recover_frameworks(frameworks, now);
        let ok = self
            .m
            .subscribe_agent(Some(Id::new(&agent)), info, tasks, stream, now)
            .is_ok();
        self.note(format!("reregister {ok}"));
    }

    /// Drains the outputs into the signature, then checks the invariants.
    fn check(&mut self, step: &str) -> Result<(), Finding> {
        for fw in self.m.frameworks.values().filter(|f| f.connected()) {
            self.schedulers.insert(fw.id.clone(), fw.info.clone());
        }
        for out in self.m.take_outputs() {
            let what = match out {
                Output::Framework { event, .. } => format!("F {}", event_name(&event)),
                Output::EndFrameworkStream { .. } => "F end".to_owned(),
                Output::Agent { event, .. } => format!("A {}", agent_event_name(&event)),
                Output::EndAgentStream { .. } => "A end".to_owned(),
                Output::Operator(_) => "O event".to_owned(),
            };
            self.note(what);
        }
        check_invariants(&self.m).map_err(|mut f| {
            f.detail = format!("after {step}: {}", f.detail);
            f
        })
    }
}

fn outcome(name: &str, result: &Result<(), ApiError>) -> String {
    match result {
        Ok(()) => format!("{name} ok"),
        Err(e) => signature(&format!("{name} {}", e.status), &e.message),
    }
}

fn event_name(e: &Event) -> String {
    match e {
        Event::Subscribed { .. } => "SUBSCRIBED".to_owned(),
        Event::Offers(_) => "OFFERS".to_owned(),
        Event::Rescind(_) => "RESCIND".to_owned(),
        Event::Update(s) => format!("UPDATE {:?}", s.state),
        Event::Message { .. } => "MESSAGE".to_owned(),
        Event::Failure { .. } => "FAILURE".to_owned(),
        Event::Error(_) => "ERROR".to_owned(),
        Event::Heartbeat => "HEARTBEAT".to_owned(),
    }
}

fn agent_event_name(e: &AgentEvent) -> &'static str {
    match e {
        AgentEvent::Registered { .. } => "REGISTERED",
        AgentEvent::Ping => "PING",
        AgentEvent::RunTask { .. } => "RUN_TASK",
        AgentEvent::RunTaskGroup { .. } => "RUN_TASK_GROUP",
        AgentEvent::KillTask { .. } => "KILL_TASK",
        AgentEvent::Acknowledge { .. } => "ACKNOWLEDGE",
        AgentEvent::Message { .. } => "MESSAGE",
        AgentEvent::ShutdownExecutor { .. } => "SHUTDOWN_EXECUTOR",
        AgentEvent::ShutdownFramework { .. } => "SHUTDOWN_FRAMEWORK",
    }
}

/// What must hold between any two inputs, whatever they were.
pub fn check_invariants(m: &Master) -> Result<(), Finding> {
    check_registry(m)?;
    let mut offered_by_agent: BTreeMap<&str, Resources> = BTreeMap::new();
    for (id, offer) in &m.offers {
        let Some(fw) = m.frameworks.get(&offer.framework) else {
            return Err(Finding::new(
                "pending offer of an unknown framework",
                format!("offer {id} names framework {}", offer.framework),
            ));
        };
        let Some(agent) = m.agents.get(&offer.agent) else {
            return Err(Finding::new(
                "pending offer on an unknown agent",
                format!("offer {id} names agent {}", offer.agent),
            ));
        };
        if !fw.offers.contains(id) {
            return Err(Finding::new(
                "pending offer missing from its framework's list",
                format!("offer {id} of {}", fw.id),
            ));
        }
        if fw.stream.is_none() {
            return Err(Finding::new(
                "pending offer to a disconnected framework",
                format!("offer {id} of {}", fw.id),
            ));
        }
        if agent.state != AgentState::Active || agent.stream.is_none() {
            return Err(Finding::new(
                "pending offer on an agent that is gone",
                format!(
                    "offer {id} on {} ({:?}, stream {:?})",
                    agent.id, agent.state, agent.stream
                ),
            ));
        }
        *offered_by_agent.entry(offer.agent.as_str()).or_default() += &offer.resources;
    }
    for fw in m.frameworks.values() {
        if let Some(id) = fw
            .offers
            .iter()
            .find(|id| m.offers.get(*id).is_none_or(|o| o.framework != fw.id))
        {
            return Err(Finding::new(
                "framework lists an offer that is not pending for it",
                format!("framework {} lists offer {id}", fw.id),
            ));
        }
        if m.removed_frameworks.contains(&fw.id) {
            return Err(Finding::new(
                "removed framework is still registered",
                fw.id.clone(),
            ));
        }
    }
    for agent in m.agents.values() {
        let total = agent.total.unallocated();
        let used = agent.used.unallocated();
        let offered = agent.offered.unallocated();
        let detail = || {
            format!(
                "agent {}: total {total}; used {used}; offered {offered}",
                agent.id
            )
        };
        // What an agent reports running is a fact, even beyond its resources (it came
        // back with smaller ones); what must hold is that nothing is offered that is
        // not free.
        let mut free = total.clone();
        free -= &used;
        if !free.contains(&offered) {
            return Err(Finding::new(
                "agent's offered resources exceed what its tasks leave free",
                detail(),
            ));
        }
        let pending = offered_by_agent
            .remove(agent.id.as_str())
            .unwrap_or_default();
        if pending != agent.offered {
            return Err(Finding::new(
                "agent's offered resources differ from its pending offers",
                format!("{}; pending offers hold {pending}", detail()),
            ));
        }
    }
    Ok(())
}

/// The registry agrees with the agents: every registered agent is admitted, every
/// unreachable one is in its unreachable list, every admitted one is registered or
/// recovered, and the document reads back as written.
fn check_registry(m: &Master) -> Result<(), Finding> {
    let registry = m.registry();
    for a in m.agents.values() {
        let listed = match a.state {
            AgentState::Active => registry.is_admitted(&a.id),
            AgentState::Unreachable { .. } => registry.unreachable_since(&a.id).is_some(),
        };
        if !listed {
            return Err(Finding::new(
                "agent missing from the registry",
                format!("agent {} ({:?})", a.id, a.state),
            ));
        }
    }
    for id in registry.agents.keys() {
        let registered = m
            .agents
            .get(id)
            .is_some_and(|a| a.state == AgentState::Active);
        if registered == m.recovered.contains_key(id) {
            return Err(Finding::new(
                "admitted agent neither registered nor recovered (or both)",
                format!("agent {id}: registered {registered}"),
            ));
        }
        if registry.unreachable.contains_key(id) {
            return Err(Finding::new(
                "agent both admitted and unreachable in the registry",
                id.clone(),
            ));
        }
    }
    if let Some(id) = m.recovered.keys().find(|id| !registry.is_admitted(id)) {
        return Err(Finding::new(
            "recovered agent not admitted in the registry",
            id.clone(),
        ));
    }
    match Registry::decode(&registry.encode()) {
        Ok(back) if back == *registry => Ok(()),
        Ok(_) => Err(Finding::new(
            "registry reads back different",
            format!("{registry:?}"),
        )),
        Err(e) => Err(Finding::new("registry does not read back", e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> MasterTarget {
        MasterTarget::new(&Corpus::default())
    }

    #[test]
    fn fixture_ids_name_the_live_cluster() {
        // The first script launches a task on the fixtures' first offer, has the agent
        // report it running and the framework acknowledge that: every id in it must be
        // one the started cluster has. (What follows depends on the timers.)
        let signature = target()
            .run(MASTER_SCRIPTS[0].as_bytes())
            .expect("runs clean");
        for step in [
            "ACCEPT ok",
            "A RUN_TASK",
            "agent UPDATE ok",
            "F UPDATE TaskRunning",
            "ACKNOWLEDGE ok",
        ] {
            assert!(
                signature.split(',').any(|s| s == step),
                "{step} missing: {signature}"
            );
        }
    }

    #[test]
    fn broken_bookkeeping_is_a_finding() {
        let mut sim = Sim::new(&Cluster::new(), 1);
        assert_eq!(check_invariants(&sim.m), Ok(()));
        let offer = sim.m.offers.keys().next().expect("an offer").clone();
        let mut m = Sim::new(&Cluster::new(), 1).m;
        m.offers.remove(&offer);
        let f = check_invariants(&m).expect_err("offer lost from the master's list");
        assert_eq!(
            f.kind,
            "framework lists an offer that is not pending for it"
        );

        let agent = sim.m.agents.keys().next().expect("an agent").clone();
        let a = sim.m.agents.get_mut(&agent).expect("agent");
        a.used = Resources::parse("cpus:1000", "*").expect("resources");
        if a.offered.is_empty() {
            a.offered = Resources::parse("cpus:1", "*").expect("resources");
        }
        let f = check_invariants(&sim.m).expect_err("offered while nothing is free");
        assert!(
            f.kind == "agent's offered resources exceed what its tasks leave free"
                || f.kind == "agent's offered resources differ from its pending offers",
            "{}",
            f.kind
        );
    }

    #[test]
    fn a_restarted_master_recovers_its_agents_and_takes_them_back() {
        let mut sim = Sim::new(&Cluster::new(), 1);
        let agents: Vec<String> = sim.m.agents.keys().cloned().collect();
        sim.check("setup").expect("clean");
        sim.restart_master();
        assert_eq!(sim.m.recovered.keys().cloned().collect::<Vec<_>>(), agents);
        assert!(sim.m.agents.is_empty());
        sim.check("restart")
            .expect("the registry agrees after a restart");
        while !sim.m.recovered.is_empty() {
            sim.reregister_agent();
            sim.check("reregister").expect("clean");
        }
        assert_eq!(sim.m.agents.keys().cloned().collect::<Vec<_>>(), agents);
        sim.resubscribe_framework();
        sim.check("resubscribe").expect("clean");
        assert!(sim.m.frameworks.values().any(|f| f.connected()));
    }

    #[test]
    fn scripts_replay_the_same_way() {
        let mut t = target();
        let script = MASTER_SCRIPTS[1].as_bytes();
        assert_eq!(t.run(script), t.run(script));
    }
}
