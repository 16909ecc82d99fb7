//! The master's legacy GET endpoints (`/master/state`, `/master/tasks`, ...) in Mesos
//! 1.11's JSON. Pure.
//!
//! These documents predate the v1 API and differ from it: ids are plain strings, times
//! are float seconds, resources are maps (`{"cpus": 4.0, "ports": "[31000-32000]"}`,
//! always with `cpus`, `gpus`, `mem` and `disk`), capabilities are strings, and agents
//! are "slaves".

use std::collections::{BTreeMap, BTreeSet};

use holdfast_api::internal::AgentInfo;
use holdfast_api::scheduler::{Capability, ExecutorInfo, MasterInfo, TaskState, TaskStatus};
use holdfast_api::v1::{Resource, ValueType};
use holdfast_resources::Resources;
use serde_json::{json, Map, Value};

use crate::operator::{
    framework_offered, framework_used, known_roles, registered_agents, role_usage,
};
use crate::state::{Agent, AgentState, Framework, Master, Task};

/// What the documents show that the state machine does not hold.
pub struct Context<'a> {
    /// The build's `VersionInfo` JSON.
    pub version: &'a Value,
    /// The flags as `GET_FLAGS` lists them: `[{"name": .., "value": ..}]`.
    pub flags: &'a Value,
    /// When the master started, in seconds since the epoch.
    pub start_time: f64,
}

/// Resources as a map of name to amount: scalars summed, ranges as `[a-b, c-d]`, sets
/// as `{a, b}`, whatever their roles.
pub fn resources(list: &[Resource]) -> Value {
    let mut scalars: BTreeMap<String, f64> = ["cpus", "gpus", "mem", "disk"]
        .into_iter()
        .map(|n| (n.to_owned(), 0.0))
        .collect();
    let mut ranges: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    let mut sets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in list {
        match r.kind {
            ValueType::Scalar => {
                *scalars.entry(r.name.clone()).or_default() +=
                    r.scalar.as_ref().map_or(0.0, |s| s.value);
            }
            ValueType::Ranges => ranges.entry(r.name.clone()).or_default().extend(
                r.ranges
                    .iter()
                    .flat_map(|x| &x.range)
                    .map(|x| (x.begin, x.end)),
            ),
            ValueType::Set => sets
                .entry(r.name.clone())
                .or_default()
                .extend(r.set.iter().flat_map(|s| s.item.iter().cloned())),
            _ => {}
        }
    }
    let mut out = Map::new();
    for (name, v) in scalars {
        // Sums of fixed-point amounts: round away the binary noise (0.1 + 0.2).
        out.insert(name, json!((v * 1000.0).round() / 1000.0));
    }
    for (name, list) in ranges {
        let text: Vec<String> = coalesce(list)
            .into_iter()
            .map(|(b, e)| format!("{b}-{e}"))
            .collect();
        out.insert(name, json!(format!("[{}]", text.join(", "))));
    }
    for (name, items) in sets {
        let items: Vec<String> = items.into_iter().collect();
        out.insert(name, json!(format!("{{{}}}", items.join(", "))));
    }
    Value::Object(out)
}

/// Sorted, merged ranges (overlapping or adjacent ones become one).
fn coalesce(mut list: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    list.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (b, e) in list {
        match out.last_mut() {
            Some(last) if b <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => out.push((b, e)),
        }
    }
    out
}

fn map_of(r: &Resources) -> Value {
    resources(&r.to_vec())
}

fn capabilities(list: &[Capability]) -> Value {
    json!(list
        .iter()
        .filter_map(|c| c.kind.clone())
        .collect::<Vec<_>>())
}

/// An `Attribute` list as a map of name to value.
fn attributes(list: &[Value]) -> Value {
    let mut out = Map::new();
    for a in list {
        let Some(name) = a.get("name").and_then(Value::as_str) else {
            continue;
        };
        let value = if let Some(v) = a.pointer("/scalar/value") {
            v.clone()
        } else if let Some(t) = a.pointer("/text/value") {
            t.clone()
        } else if let Some(r) = a.pointer("/ranges/range").and_then(Value::as_array) {
            let list: Vec<(u64, u64)> = r
                .iter()
                .filter_map(|x| Some((x.get("begin")?.as_u64()?, x.get("end")?.as_u64()?)))
                .collect();
            let text: Vec<String> = coalesce(list)
                .into_iter()
                .map(|(b, e)| format!("{b}-{e}"))
                .collect();
            json!(format!("[{}]", text.join(", ")))
        } else if let Some(s) = a.pointer("/set/item").and_then(Value::as_array) {
            let items: Vec<&str> = s.iter().filter_map(Value::as_str).collect();
            json!(format!("{{{}}}", items.join(", ")))
        } else {
            continue;
        };
        out.insert(name.to_owned(), value);
    }
    Value::Object(out)
}

fn status(s: &TaskStatus) -> Value {
    let mut obj = Map::new();
    obj.insert("state".into(), json!(s.state));
    obj.insert("timestamp".into(), json!(s.timestamp.unwrap_or(0.0)));
    if let Some(c) = &s.container_status {
        let mut cs = Map::new();
        cs.insert("container_id".into(), json!(c.container_id));
        if !c.network_infos.is_empty() {
            cs.insert("network_infos".into(), json!(c.network_infos));
        }
        obj.insert("container_status".into(), Value::Object(cs));
    }
    if let Some(h) = s.healthy {
        obj.insert("healthy".into(), json!(h));
    }
    Value::Object(obj)
}

/// A task, as `/master/tasks` and `/master/state` list it.
pub fn task(t: &Task) -> Value {
    let info = serde_json::to_value(&t.info).unwrap_or_default();
    let mut obj = Map::new();
    obj.insert("id".into(), json!(t.info.task_id.value));
    obj.insert("name".into(), json!(t.info.name));
    obj.insert("framework_id".into(), json!(t.framework_id));
    let executor = t
        .info
        .executor
        .as_ref()
        .map(|e| e.executor_id.value.as_str());
    obj.insert("executor_id".into(), json!(executor.unwrap_or_default()));
    obj.insert("slave_id".into(), json!(t.agent_id));
    obj.insert("state".into(), json!(t.state));
    obj.insert("resources".into(), resources(&t.info.resources));
    obj.insert("role".into(), json!(t.role));
    obj.insert(
        "statuses".into(),
        json!(t.statuses.iter().map(status).collect::<Vec<_>>()),
    );
    for field in ["labels", "discovery", "container", "health_check", "limits"] {
        if let Some(v) = info.get(field) {
            obj.insert(field.into(), v.clone());
        }
    }
    Value::Object(obj)
}

fn executor(agent: &str, e: &ExecutorInfo) -> Value {
    let mut obj = Map::new();
    obj.insert("executor_id".into(), json!(e.executor_id.value));
    obj.insert("name".into(), json!(e.name.clone().unwrap_or_default()));
    let framework = e.framework_id.as_ref().map(|f| f.value.as_str());
    obj.insert("framework_id".into(), json!(framework.unwrap_or_default()));
    let command = e.command.clone().unwrap_or_default();
    let mut cmd = Map::new();
    if let Some(shell) = command.shell {
        cmd.insert("shell".into(), json!(shell));
    }
    if let Some(value) = &command.value {
        cmd.insert("value".into(), json!(value));
    }
    cmd.insert("argv".into(), json!(command.arguments));
    if let Some(env) = &command.environment {
        cmd.insert("environment".into(), json!(env));
    }
    cmd.insert("uris".into(), json!([]));
    obj.insert("command".into(), Value::Object(cmd));
    obj.insert("resources".into(), resources(&e.resources));
    if let Some(role) = e
        .resources
        .iter()
        .find_map(|r| r.allocation_info.as_ref().and_then(|a| a.role.clone()))
    {
        obj.insert("role".into(), json!(role));
    }
    if let Some(kind) = &e.kind {
        obj.insert("type".into(), json!(kind));
    }
    obj.insert("slave_id".into(), json!(agent));
    Value::Object(obj)
}

/// The fields `/master/state-summary` shows of a framework.
fn framework_summary(m: &Master, fw: &Framework) -> Map<String, Value> {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(fw.id));
    obj.insert("name".into(), json!(fw.info.name));
    obj.insert("used_resources".into(), map_of(&framework_used(fw)));
    obj.insert(
        "offered_resources".into(),
        map_of(&framework_offered(m, fw)),
    );
    obj.insert("capabilities".into(), capabilities(&fw.info.capabilities));
    obj.insert(
        "hostname".into(),
        json!(fw.info.hostname.clone().unwrap_or_default()),
    );
    let webui = fw.info.extra.get("webui_url").and_then(Value::as_str);
    obj.insert("webui_url".into(), json!(webui.unwrap_or_default()));
    obj.insert("active".into(), json!(fw.connected()));
    obj.insert("connected".into(), json!(fw.connected()));
    obj.insert("recovered".into(), json!(fw.recovered));
    obj
}

/// A framework with its tasks, offers and executors (`/master/frameworks`).
pub fn framework(m: &Master, fw: &Framework) -> Value {
    let mut obj = framework_summary(m, fw);
    let info = &fw.info;
    obj.insert("user".into(), json!(info.user));
    obj.insert(
        "failover_timeout".into(),
        json!(info.failover_timeout.unwrap_or(0.0)),
    );
    obj.insert("checkpoint".into(), json!(info.checkpoint.unwrap_or(false)));
    obj.insert("registered_time".into(), json!(fw.registered_time));
    obj.insert(
        "unregistered_time".into(),
        json!(fw.unregistered_time.unwrap_or(0.0)),
    );
    if let Some(p) = &info.principal {
        obj.insert("principal".into(), json!(p));
    }
    let mut all = framework_used(fw);
    all += &framework_offered(m, fw);
    obj.insert("resources".into(), map_of(&all));
    if fw.reregistered_time != fw.registered_time {
        obj.insert("reregistered_time".into(), json!(fw.reregistered_time));
    }
    if info.has_capability("MULTI_ROLE") {
        obj.insert("roles".into(), json!(info.effective_roles()));
    } else {
        let role = info.effective_roles().into_iter().next();
        obj.insert("role".into(), json!(role.unwrap_or_else(|| "*".into())));
    }
    let (unreachable, tasks): (Vec<&Task>, Vec<&Task>) = fw
        .tasks
        .values()
        .partition(|t| t.state == TaskState::TaskUnreachable);
    obj.insert(
        "tasks".into(),
        json!(tasks.into_iter().map(task).collect::<Vec<_>>()),
    );
    obj.insert(
        "unreachable_tasks".into(),
        json!(unreachable.into_iter().map(task).collect::<Vec<_>>()),
    );
    obj.insert(
        "completed_tasks".into(),
        json!(fw.completed.iter().map(task).collect::<Vec<_>>()),
    );
    let offers: Vec<Value> = fw
        .offers
        .iter()
        .filter_map(|id| Some((id, m.offers.get(id)?)))
        .map(|(id, o)| {
            json!({
                "id": id,
                "framework_id": o.framework,
                "allocation_info": {"role": o.role},
                "slave_id": o.agent,
                "resources": map_of(&o.resources),
            })
        })
        .collect();
    obj.insert("offers".into(), json!(offers));
    let executors: Vec<Value> = fw
        .executors
        .iter()
        .map(|((agent, _), e)| executor(agent, e))
        .collect();
    obj.insert("executors".into(), json!(executors));
    if let Some(labels) = info.extra.get("labels") {
        obj.insert("labels".into(), labels.clone());
    }
    obj.insert("offer_constraints".into(), json!({}));
    Value::Object(obj)
}

/// Unreserved resources, and reserved ones by role.
fn reservations(r: &Resources) -> (Vec<Resource>, BTreeMap<String, Vec<Resource>>) {
    let mut unreserved = Vec::new();
    let mut reserved: BTreeMap<String, Vec<Resource>> = BTreeMap::new();
    for res in r.iter() {
        match res.role.as_deref() {
            None | Some("*") => unreserved.push(res),
            Some(role) => reserved.entry(role.to_owned()).or_default().push(res),
        }
    }
    (unreserved, reserved)
}

/// What `/master/slaves` and `/master/state` show of an agent's info: all they show of
/// a recovered agent (`recovered_slaves`), and the start of a registered one's entry.
fn agent_info(id: &str, info: &AgentInfo) -> Map<String, Value> {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(id));
    obj.insert("hostname".into(), json!(info.hostname));
    obj.insert("port".into(), json!(info.port));
    obj.insert("attributes".into(), attributes(&info.attributes));
    if let Some(d) = &info.domain {
        obj.insert("domain".into(), d.clone());
    }
    obj
}

/// Agents recovered from the registry that have not registered again.
fn recovered_slaves(m: &Master) -> Value {
    json!(m
        .recovered
        .iter()
        .map(|(id, info)| Value::Object(agent_info(id, info)))
        .collect::<Vec<_>>())
}

/// An agent (`/master/slaves`, `/master/state`).
pub fn agent(m: &Master, a: &Agent) -> Map<String, Value> {
    let mut obj = agent_info(&a.id, &a.info);
    obj.insert(
        "pid".into(),
        json!(format!("slave(1)@{}:{}", a.info.hostname, a.info.port)),
    );
    obj.insert("registered_time".into(), json!(a.registered_time));
    if let Some(t) = a.reregistered_time {
        obj.insert("reregistered_time".into(), json!(t));
    }
    obj.insert("resources".into(), map_of(&a.total));
    obj.insert("used_resources".into(), map_of(&a.used));
    obj.insert("offered_resources".into(), map_of(&a.offered));
    let (unreserved, reserved) = reservations(&a.total);
    let reserved: Map<String, Value> = reserved
        .into_iter()
        .map(|(role, list)| (role, resources(&list)))
        .collect();
    obj.insert("reserved_resources".into(), Value::Object(reserved));
    obj.insert("unreserved_resources".into(), resources(&unreserved));
    obj.insert("active".into(), json!(a.stream.is_some()));
    obj.insert("deactivated".into(), json!(false));
    obj.insert("version".into(), json!(m.info.version));
    obj.insert("capabilities".into(), json!([]));
    obj
}

/// `/master/slaves`: agents with their resources in full as well.
pub fn slaves(m: &Master) -> Value {
    let slaves: Vec<Value> = registered_agents(m)
        .map(|a| {
            let mut obj = agent(m, a);
            let (unreserved, reserved) = reservations(&a.total);
            obj.insert("reserved_resources_full".into(), json!(reserved));
            obj.insert("unreserved_resources_full".into(), json!(unreserved));
            obj.insert("used_resources_full".into(), json!(a.used.to_vec()));
            obj.insert("offered_resources_full".into(), json!(a.offered.to_vec()));
            Value::Object(obj)
        })
        .collect();
    json!({ "slaves": slaves, "recovered_slaves": recovered_slaves(m) })
}

/// `/master/frameworks`.
pub fn frameworks(m: &Master) -> Value {
    json!({
        "frameworks": m.frameworks.values().map(|f| framework(m, f)).collect::<Vec<_>>(),
        "completed_frameworks":
            m.completed_frameworks.iter().map(|f| framework(m, f)).collect::<Vec<_>>(),
        "unregistered_frameworks": [],
    })
}

/// The flags as a map of name to value.
pub fn flags_map(flags: &Value) -> Value {
    let mut out = Map::new();
    for f in flags.as_array().into_iter().flatten() {
        if let (Some(name), Some(value)) = (f.get("name").and_then(Value::as_str), f.get("value")) {
            out.insert(name.to_owned(), value.clone());
        }
    }
    Value::Object(out)
}

/// `/master/flags`.
pub fn flags(ctx: &Context<'_>) -> Value {
    json!({ "flags": flags_map(ctx.flags) })
}

/// `/master/state`.
pub fn state(m: &Master, ctx: &Context<'_>) -> Value {
    let mut obj = match ctx.version {
        Value::Object(v) => v.clone(),
        _ => Map::new(),
    };
    let info: &MasterInfo = &m.info;
    obj.insert("start_time".into(), json!(ctx.start_time));
    obj.insert("elected_time".into(), json!(ctx.start_time));
    obj.insert("id".into(), json!(info.id));
    obj.insert("pid".into(), json!(info.pid));
    obj.insert("hostname".into(), json!(info.hostname));
    let caps: Vec<&Value> = info
        .capabilities
        .iter()
        .filter_map(|c| c.get("type"))
        .collect();
    obj.insert("capabilities".into(), json!(caps));
    let count = |f: &dyn Fn(&Agent) -> bool| m.agents.values().filter(|a| f(a)).count() as f64;
    obj.insert(
        "activated_slaves".into(),
        json!(count(
            &|a| a.state == AgentState::Active && a.stream.is_some()
        )),
    );
    obj.insert(
        "deactivated_slaves".into(),
        json!(count(
            &|a| a.state == AgentState::Active && a.stream.is_none()
        )),
    );
    // Those marked unreachable before the master started too: the registry has them.
    obj.insert(
        "unreachable_slaves".into(),
        json!(m.registry().unreachable.len() as f64),
    );
    obj.insert("leader".into(), json!(info.pid));
    obj.insert(
        "leader_info".into(),
        json!({"id": info.id, "pid": info.pid, "port": info.port, "hostname": info.hostname}),
    );
    obj.insert("flags".into(), flags_map(ctx.flags));
    let slaves: Vec<Value> = registered_agents(m)
        .map(|a| Value::Object(agent(m, a)))
        .collect();
    obj.insert("slaves".into(), json!(slaves));
    obj.insert("recovered_slaves".into(), recovered_slaves(m));
    let frameworks = frameworks(m);
    obj.insert("frameworks".into(), frameworks["frameworks"].clone());
    obj.insert(
        "completed_frameworks".into(),
        frameworks["completed_frameworks"].clone(),
    );
    obj.insert("orphan_tasks".into(), json!([]));
    obj.insert("unregistered_frameworks".into(), json!([]));
    Value::Object(obj)
}

/// The states `/master/state-summary` counts, in its order.
const SUMMARY_STATES: &[TaskState] = &[
    TaskState::TaskStaging,
    TaskState::TaskStarting,
    TaskState::TaskRunning,
    TaskState::TaskKilling,
    TaskState::TaskFinished,
    TaskState::TaskKilled,
    TaskState::TaskFailed,
    TaskState::TaskLost,
    TaskState::TaskError,
    TaskState::TaskUnreachable,
];

fn count_states<'a>(tasks: impl Iterator<Item = &'a Task>, obj: &mut Map<String, Value>) {
    let mut counts = [0u64; SUMMARY_STATES.len()];
    for t in tasks {
        if let Some(i) = SUMMARY_STATES.iter().position(|s| *s == t.state) {
            counts[i] += 1;
        }
    }
    for (state, n) in SUMMARY_STATES.iter().zip(counts) {
        obj.insert(crate::state::state_name(*state), json!(n));
    }
}

fn all_tasks(fw: &Framework) -> impl Iterator<Item = &Task> {
    fw.tasks.values().chain(&fw.completed)
}

/// `/master/state-summary`: agents and frameworks with counts of their tasks by state.
pub fn state_summary(m: &Master) -> Value {
    let slaves: Vec<Value> = registered_agents(m)
        .map(|a| {
            let mut obj = agent(m, a);
            let on_agent: Vec<&Task> = m
                .frameworks
                .values()
                .flat_map(all_tasks)
                .filter(|t| t.agent_id == a.id)
                .collect();
            count_states(on_agent.iter().copied(), &mut obj);
            let ids: BTreeSet<&str> = on_agent.iter().map(|t| t.framework_id.as_str()).collect();
            obj.insert("framework_ids".into(), json!(ids));
            Value::Object(obj)
        })
        .collect();
    let frameworks: Vec<Value> = m
        .frameworks
        .values()
        .map(|fw| {
            let mut obj = framework_summary(m, fw);
            count_states(all_tasks(fw), &mut obj);
            let ids: BTreeSet<&str> = all_tasks(fw).map(|t| t.agent_id.as_str()).collect();
            obj.insert("slave_ids".into(), json!(ids));
            Value::Object(obj)
        })
        .collect();
    json!({ "hostname": m.info.hostname, "slaves": slaves, "frameworks": frameworks })
}

/// The query of `/master/tasks`.
#[derive(Debug, Clone, PartialEq)]
pub struct TasksQuery {
    pub limit: usize,
    pub offset: usize,
    /// Oldest first; newest first (the default) otherwise.
    pub ascending: bool,
    pub framework_id: Option<String>,
    pub task_id: Option<String>,
}

/// How many tasks `/master/tasks` lists unless asked for another number (Mesos's).
pub const TASK_LIMIT: usize = 100;

impl TasksQuery {
    /// Reads `limit`, `offset`, `order` (`asc` or `desc`), `framework_id` and `task_id`.
    /// A number that does not parse is an error, where Mesos would silently use its
    /// default.
    pub fn parse(pairs: &[(String, String)]) -> Result<TasksQuery, String> {
        let mut q = TasksQuery {
            limit: TASK_LIMIT,
            offset: 0,
            ascending: false,
            framework_id: None,
            task_id: None,
        };
        for (key, value) in pairs {
            let number = || {
                value.parse::<usize>().map_err(|_| {
                    format!("query parameter '{key}' must be a non-negative integer, got '{value}'")
                })
            };
            match key.as_str() {
                "limit" => q.limit = number()?,
                "offset" => q.offset = number()?,
                "order" => match value.as_str() {
                    "asc" => q.ascending = true,
                    "desc" => q.ascending = false,
                    _ => {
                        return Err(format!(
                            "query parameter 'order' must be 'asc' or 'desc', got '{value}'"
                        ))
                    }
                },
                "framework_id" => q.framework_id = Some(value.clone()),
                "task_id" => q.task_id = Some(value.clone()),
                _ => {}
            }
        }
        Ok(q)
    }
}

/// `/master/tasks`: tasks of current and removed frameworks, ordered by the time of
/// their first status update (tasks without one first when ascending, last when not).
pub fn tasks(m: &Master, q: &TasksQuery) -> Value {
    let mut list: Vec<&Task> = m
        .frameworks
        .values()
        .chain(&m.completed_frameworks)
        .filter(|fw| q.framework_id.as_ref().is_none_or(|id| *id == fw.id))
        .flat_map(all_tasks)
        .filter(|t| {
            q.task_id
                .as_ref()
                .is_none_or(|id| *id == t.info.task_id.value)
        })
        .collect();
    let first = |t: &Task| t.statuses.first().map(|s| s.timestamp.unwrap_or(0.0));
    list.sort_by(|a, b| {
        let (a, b) = (first(a), first(b));
        let order = match (a, b) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        if q.ascending {
            order
        } else {
            order.reverse()
        }
    });
    let page: Vec<Value> = list
        .into_iter()
        .skip(q.offset)
        .take(q.limit)
        .map(task)
        .collect();
    json!({ "tasks": page })
}

/// `/master/roles`: each known role's weight, what it holds and is offered, and its
/// frameworks. Holdfast has no quota or reservations; those parts are empty, and what
/// counts against a quota is what the role holds.
pub fn roles(m: &Master) -> Value {
    let roles: Vec<Value> = known_roles(m)
        .into_iter()
        .map(|(name, frameworks)| {
            let (allocated, offered) = role_usage(m, &name);
            let mut both = allocated.clone();
            both += &offered;
            json!({
                "name": name,
                "weight": m.allocator().weight(&name),
                "quota": {
                    "role": name,
                    "guarantee": {},
                    "limit": {},
                    "consumed": quantities(&allocated),
                },
                "resources": quantities(&both),
                "allocated": quantities(&allocated),
                "offered": quantities(&offered),
                "reserved": {},
                "frameworks": frameworks.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "roles": roles })
}

/// Amounts by name: scalars summed, ranges and sets by how many items they hold (a
/// port range `[31000-32000]` is 1001), as Mesos's resource quantities count.
fn quantities(r: &Resources) -> Value {
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    for res in r.iter() {
        let n = match res.kind {
            ValueType::Scalar => res.scalar.as_ref().map_or(0.0, |s| s.value),
            ValueType::Ranges => res
                .ranges
                .iter()
                .flat_map(|x| &x.range)
                .map(|x| (x.end.saturating_sub(x.begin) + 1) as f64)
                .sum(),
            ValueType::Set => res.set.as_ref().map_or(0, |s| s.item.len()) as f64,
            _ => 0.0,
        };
        *out.entry(res.name.clone()).or_default() += n;
    }
    let rounded: Map<String, Value> = out
        .into_iter()
        .map(|(k, v)| (k, json!((v * 1000.0).round() / 1000.0)))
        .collect();
    Value::Object(rounded)
}

/// Wraps `body` for JSONP, as Mesos does for `?jsonp=<callback>`.
pub fn jsonp(callback: &str, body: &str) -> String {
    format!("{callback}({body})")
}

/// Whether `name` may be used as a JSONP callback (a dotted JavaScript identifier), so
/// a page cannot be made to run a script of a stranger's choosing.
pub fn valid_callback(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        })
}

#[cfg(test)]
#[path = "legacy_tests.rs"]
mod tests;
