//! The operator API's answers (`mesos.v1.master.Response`) and SUBSCRIBE events
//! (`mesos.v1.master.Event`) in Mesos's JSON, read off the master's state. Pure.
//!
//! Shapes follow Mesos 1.11: times are `{"nanoseconds": n}`, resources are v1
//! `Resource`s (an agent's and a framework's totals carry the deprecated `role` next to
//! `allocation_info`, as Mesos's endpoints write them; a task's are as launched), and
//! empty repeated fields inside objects are left out while the top-level lists are
//! always there.

use holdfast_api::internal::AgentInfo;
use holdfast_api::master::response;
use holdfast_api::scheduler::{MasterInfo, TaskState};
use holdfast_resources::Resources;
use serde_json::{json, Map, Value};

use crate::state::{Agent, AgentState, Framework, FrameworkSummary, Master, OperatorEvent, Task};

/// A time in seconds since the epoch as a v1 `TimeInfo`.
pub fn time_info(secs: f64) -> Value {
    json!({ "nanoseconds": (secs * 1e9) as i64 })
}

fn id(value: &str) -> Value {
    json!({ "value": value })
}

/// Resources as Mesos's endpoints write them: with `role` and `allocation_info`.
fn endpoint_resources(r: &Resources) -> Value {
    serde_json::to_value(r.to_vec()).unwrap_or_else(|_| json!([]))
}

/// Sets `key` to `value` unless it is an empty list (a repeated field left out).
fn put(obj: &mut Map<String, Value>, key: &str, value: Value) {
    if !value.as_array().is_some_and(Vec::is_empty) {
        obj.insert(key.to_owned(), value);
    }
}

/// Fields of a `TaskInfo` a master's `Task` carries over as they are.
const TASK_INFO_FIELDS: &[&str] = &[
    "labels",
    "discovery",
    "container",
    "health_check",
    "kill_policy",
    "limits",
];

/// A task (`mesos.v1.Task`).
pub fn task(t: &Task) -> Value {
    let info = serde_json::to_value(&t.info).unwrap_or_default();
    let mut obj = Map::new();
    obj.insert("name".into(), json!(t.info.name));
    obj.insert("task_id".into(), id(&t.info.task_id.value));
    obj.insert("framework_id".into(), id(&t.framework_id));
    if let Some(e) = &t.info.executor {
        obj.insert("executor_id".into(), id(&e.executor_id.value));
    }
    obj.insert("agent_id".into(), id(&t.agent_id));
    obj.insert("state".into(), json!(t.state));
    put(&mut obj, "resources", info["resources"].clone());
    put(
        &mut obj,
        "statuses",
        serde_json::to_value(&t.statuses).unwrap_or_default(),
    );
    // The update the agent is retrying until it is acknowledged: its latest.
    if let Some(s) = t.statuses.iter().rev().find(|s| s.uuid.is_some()) {
        obj.insert("status_update_state".into(), json!(s.state));
        obj.insert("status_update_uuid".into(), json!(s.uuid));
    }
    for field in TASK_INFO_FIELDS {
        if let Some(v) = info.get(*field) {
            obj.insert((*field).into(), v.clone());
        }
    }
    let user = t
        .info
        .command
        .as_ref()
        .and_then(|c| c.user.clone())
        .or_else(|| {
            t.info
                .executor
                .as_ref()
                .and_then(|e| e.command.as_ref())
                .and_then(|c| c.user.clone())
        });
    if let Some(user) = user {
        obj.insert("user".into(), json!(user));
    }
    Value::Object(obj)
}

/// Whether a task still holds its resources (it is neither ended nor on an agent that
/// went away).
pub fn holds_resources(t: &Task) -> bool {
    !t.state.is_terminal() && t.state != TaskState::TaskUnreachable
}

/// `get_tasks`: every task of current and removed frameworks, by where it stands.
pub fn get_tasks(m: &Master) -> Value {
    let mut tasks = Vec::new();
    let mut unreachable = Vec::new();
    let mut completed = Vec::new();
    for fw in m.frameworks.values() {
        for t in fw.tasks.values() {
            if t.state == TaskState::TaskUnreachable {
                unreachable.push(task(t));
            } else {
                tasks.push(task(t));
            }
        }
    }
    for fw in m.frameworks.values().chain(&m.completed_frameworks) {
        completed.extend(fw.completed.iter().map(task));
    }
    json!({
        "tasks": tasks,
        "unreachable_tasks": unreachable,
        "completed_tasks": completed,
    })
}

/// What a framework's own and its events' entries share.
fn framework_summary(s: &FrameworkSummary, obj: &mut Map<String, Value>) {
    obj.insert(
        "framework_info".into(),
        serde_json::to_value(&s.info).unwrap_or_default(),
    );
    obj.insert("active".into(), json!(s.connected));
    obj.insert("connected".into(), json!(s.connected));
    obj.insert("recovered".into(), json!(s.recovered));
    obj.insert("registered_time".into(), time_info(s.registered_time));
    obj.insert("reregistered_time".into(), time_info(s.reregistered_time));
}

/// A framework (`GetFrameworks.Framework`) with its offers and resources.
pub fn framework(m: &Master, fw: &Framework) -> Value {
    let mut obj = Map::new();
    framework_summary(&fw.summary(), &mut obj);
    if let Some(t) = fw.unregistered_time {
        obj.insert("unregistered_time".into(), time_info(t));
    }
    let offers: Vec<Value> = fw
        .offers
        .iter()
        .filter_map(|o| m.offer(o))
        .map(|o| serde_json::to_value(o).unwrap_or_default())
        .collect();
    put(&mut obj, "offers", json!(offers));
    put(
        &mut obj,
        "allocated_resources",
        endpoint_resources(&framework_used(fw)),
    );
    put(
        &mut obj,
        "offered_resources",
        endpoint_resources(&framework_offered(m, fw)),
    );
    // Holdfast takes no offer constraints; Mesos always shows the (empty) message.
    obj.insert("offer_constraints".into(), json!({}));
    Value::Object(obj)
}

/// What a framework's tasks (and their executors) hold.
pub fn framework_used(fw: &Framework) -> Resources {
    let mut used = Resources::default();
    for t in fw.tasks.values().filter(|t| holds_resources(t)) {
        used += &t.resources;
    }
    for (r, _) in fw.executor_usage.values() {
        used += r;
    }
    used
}

/// What a framework is offered now.
pub fn framework_offered(m: &Master, fw: &Framework) -> Resources {
    let mut offered = Resources::default();
    for o in fw.offers.iter().filter_map(|o| m.offers.get(o)) {
        offered += &o.resources;
    }
    offered
}

/// `get_frameworks`.
pub fn get_frameworks(m: &Master) -> Value {
    let frameworks: Vec<Value> = m.frameworks.values().map(|f| framework(m, f)).collect();
    let completed: Vec<Value> = m
        .completed_frameworks
        .iter()
        .map(|f| framework(m, f))
        .collect();
    json!({ "frameworks": frameworks, "completed_frameworks": completed })
}

/// An agent (`GetAgents.Agent`). Agents do not report their version; they come from
/// the same release as the master, whose version is shown.
/// An `AgentInfo` with its id, as the operator API shows it.
fn agent_info(agent_id: &str, info: &AgentInfo) -> Value {
    let mut info = serde_json::to_value(info).unwrap_or_default();
    if let Some(obj) = info.as_object_mut() {
        obj.insert("id".into(), id(agent_id));
        if obj.get("resources").is_some_and(|r| r == &json!([])) {
            obj.remove("resources");
        }
    }
    info
}

pub fn agent(m: &Master, a: &Agent) -> Value {
    let mut obj = Map::new();
    obj.insert("agent_info".into(), agent_info(&a.id, &a.info));
    obj.insert("active".into(), json!(a.stream.is_some()));
    obj.insert("deactivated".into(), json!(false));
    obj.insert("version".into(), json!(m.info.version));
    obj.insert(
        "pid".into(),
        json!(format!("slave(1)@{}:{}", a.info.hostname, a.info.port)),
    );
    obj.insert("registered_time".into(), time_info(a.registered_time));
    if let Some(t) = a.reregistered_time {
        obj.insert("reregistered_time".into(), time_info(t));
    }
    put(&mut obj, "total_resources", endpoint_resources(&a.total));
    put(&mut obj, "allocated_resources", endpoint_resources(&a.used));
    put(
        &mut obj,
        "offered_resources",
        endpoint_resources(&a.offered),
    );
    Value::Object(obj)
}

/// The agents that are registered now (not the unreachable ones).
pub fn registered_agents(m: &Master) -> impl Iterator<Item = &Agent> {
    m.agents.values().filter(|a| a.state == AgentState::Active)
}

/// `get_agents`: the registered agents, and those recovered from the registry that have
/// not registered again yet.
pub fn get_agents(m: &Master) -> Value {
    let agents: Vec<Value> = registered_agents(m).map(|a| agent(m, a)).collect();
    let recovered: Vec<Value> = m
        .recovered
        .iter()
        .map(|(id, info)| agent_info(id, info))
        .collect();
    json!({ "agents": agents, "recovered_agents": recovered })
}

/// `get_executors`: the executors frameworks' launches named, until they exit. The
/// command executors of command tasks are not listed, as in Mesos.
pub fn get_executors(m: &Master) -> Value {
    let executors: Vec<Value> = m
        .frameworks
        .values()
        .flat_map(|fw| fw.executors.iter())
        .map(|((agent, _), e)| json!({ "executor_info": e, "agent_id": id(agent) }))
        .collect();
    json!({ "executors": executors })
}

/// `get_state`.
pub fn get_state(m: &Master) -> Value {
    json!({
        "get_tasks": get_tasks(m),
        "get_executors": get_executors(m),
        "get_frameworks": get_frameworks(m),
        "get_agents": get_agents(m),
    })
}

/// `get_master`. The master is its own leader from the start, so it was elected when
/// it started.
pub fn get_master(info: &MasterInfo, start_time: f64) -> Value {
    json!({
        "master_info": info,
        "start_time": start_time,
        "elected_time": start_time,
    })
}

/// The roles the master knows: those its frameworks subscribed to, by name.
pub fn known_roles(m: &Master) -> std::collections::BTreeMap<String, Vec<&Framework>> {
    let mut roles: std::collections::BTreeMap<String, Vec<&Framework>> = Default::default();
    for fw in m.frameworks.values() {
        for role in fw.info.effective_roles() {
            roles.entry(role).or_default().push(fw);
        }
    }
    roles
}

/// What a role's frameworks hold and are offered.
pub fn role_usage(m: &Master, role: &str) -> (Resources, Resources) {
    let mut allocated = Resources::default();
    let mut offered = Resources::default();
    for fw in m.frameworks.values() {
        for t in fw
            .tasks
            .values()
            .filter(|t| t.role == role && holds_resources(t))
        {
            allocated += &t.resources;
        }
        for (r, _) in fw.executor_usage.values().filter(|(_, r)| r == role) {
            allocated += r;
        }
    }
    for o in m.offers.values().filter(|o| o.role == role) {
        offered += &o.resources;
    }
    (allocated, offered)
}

/// `get_roles`: each known role's weight, frameworks, and what it holds and is offered
/// of cpus, mem, disk and gpus (as Mesos reports).
pub fn get_roles(m: &Master) -> Value {
    let roles: Vec<Value> = known_roles(m)
        .into_iter()
        .map(|(name, frameworks)| {
            let (mut total, offered) = role_usage(m, &name);
            total += &offered;
            let resources: Vec<Value> = total
                .scalars()
                .into_iter()
                .filter(|(n, _)| matches!(n.as_str(), "cpus" | "mem" | "disk" | "gpus"))
                .map(|(n, v)| json!({"name": n, "type": "SCALAR", "scalar": {"value": v}}))
                .collect();
            let mut obj = Map::new();
            obj.insert("name".into(), json!(name));
            obj.insert("weight".into(), json!(m.allocator().weight(&name)));
            put(
                &mut obj,
                "frameworks",
                json!(frameworks.iter().map(|f| id(&f.id)).collect::<Vec<_>>()),
            );
            put(&mut obj, "resources", json!(resources));
            Value::Object(obj)
        })
        .collect();
    json!({ "roles": roles })
}

/// The first record of an operator SUBSCRIBE stream.
pub fn subscribed(m: &Master, heartbeat_interval_seconds: f64) -> Value {
    response(
        "SUBSCRIBED",
        json!({
            "get_state": get_state(m),
            "heartbeat_interval_seconds": heartbeat_interval_seconds,
        }),
    )
}

/// An operator event as its stream record.
pub fn event(m: &Master, e: &OperatorEvent) -> Value {
    match e {
        OperatorEvent::TaskAdded(t) => response("TASK_ADDED", json!({ "task": task(t) })),
        OperatorEvent::TaskUpdated {
            framework_id,
            status,
            state,
        } => response(
            "TASK_UPDATED",
            json!({ "framework_id": id(framework_id), "status": status, "state": state }),
        ),
        OperatorEvent::AgentAdded(a) => response("AGENT_ADDED", json!({ "agent": agent(m, a) })),
        OperatorEvent::AgentRemoved(a) => response("AGENT_REMOVED", json!({ "agent_id": id(a) })),
        OperatorEvent::FrameworkAdded(s) => response(
            "FRAMEWORK_ADDED",
            json!({ "framework": event_framework(s) }),
        ),
        OperatorEvent::FrameworkUpdated(s) => response(
            "FRAMEWORK_UPDATED",
            json!({ "framework": event_framework(s) }),
        ),
        OperatorEvent::FrameworkRemoved(info) => {
            response("FRAMEWORK_REMOVED", json!({ "framework_info": info }))
        }
    }
}

/// A framework in an event: no offers or resources, and an unregistered time that is
/// zero until it is removed (as Mesos sends).
fn event_framework(s: &FrameworkSummary) -> Value {
    let mut obj = Map::new();
    framework_summary(s, &mut obj);
    obj.insert(
        "unregistered_time".into(),
        time_info(s.unregistered_time.unwrap_or(0.0)),
    );
    Value::Object(obj)
}

#[cfg(test)]
#[path = "operator_tests.rs"]
mod tests;
