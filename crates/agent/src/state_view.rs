//! What the agent's state endpoints show, built from a [`Snapshot`] of the cluster side:
//! the v1 operator calls GET_STATE, GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS and
//! GET_AGENT, and the legacy `/state` document, in Mesos's shapes. Pure.

use holdfast_api::internal::AgentInfo;
use holdfast_api::scheduler::TaskStatus;
use holdfast_api::v1::{Resource, ValueType};
use serde_json::{json, Map, Value};

use crate::registry::{Executor, ExecutorKind, Framework, Registry, Task};

/// The cluster side as the state endpoints see it at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub registry: Registry,
    pub agent_id: Option<String>,
    pub info: Option<AgentInfo>,
    pub master: Option<String>,
}

impl Snapshot {
    /// An agent without a master: no frameworks.
    pub fn standalone() -> Snapshot {
        Snapshot {
            registry: Registry::new(0),
            agent_id: None,
            info: None,
            master: None,
        }
    }

    fn agent_id(&self) -> Value {
        match &self.agent_id {
            Some(id) => json!({ "value": id }),
            None => Value::Null,
        }
    }
}

fn task(s: &Snapshot, framework: &str, e: &Executor, t: &Task) -> Value {
    let mut v = json!({
        "name": t.info.name,
        "task_id": t.info.task_id,
        "framework_id": {"value": framework},
        "agent_id": s.agent_id(),
        "state": t.state,
        "resources": t.info.resources,
        "statuses": t.statuses,
    });
    if e.kind != ExecutorKind::Command {
        v["executor_id"] = json!(e.info.executor_id);
    }
    if let Some(last) = t.statuses.last() {
        v["status_update_state"] = json!(last.state);
        if let Some(uuid) = &last.uuid {
            v["status_update_uuid"] = json!(uuid);
        }
    }
    v
}

/// GET_TASKS's payload.
pub fn get_tasks(s: &Snapshot) -> Value {
    let (mut queued, mut launched, mut terminated, mut completed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let live = s
        .registry
        .frameworks
        .iter()
        .map(|(id, fw)| (id.as_str(), fw));
    let done = s
        .registry
        .completed_frameworks
        .iter()
        .map(|fw| (framework_id(fw), fw));
    for (fid, fw) in live.chain(done) {
        for e in fw.executors.values().chain(fw.completed_executors.iter()) {
            queued.extend(e.queued.values().map(|t| task(s, fid, e, t)));
            launched.extend(e.launched.values().map(|t| task(s, fid, e, t)));
            terminated.extend(e.terminated.values().map(|t| task(s, fid, e, t)));
            completed.extend(e.completed.iter().map(|t| task(s, fid, e, t)));
        }
    }
    json!({
        "pending_tasks": [],
        "queued_tasks": queued,
        "launched_tasks": launched,
        "terminated_tasks": terminated,
        "completed_tasks": completed,
    })
}

fn framework_id(fw: &Framework) -> &str {
    fw.info.id.as_ref().map(|i| i.value.as_str()).unwrap_or("")
}

/// GET_EXECUTORS's payload.
pub fn get_executors(s: &Snapshot) -> Value {
    let info = |e: &Executor| json!({ "executor_info": e.info });
    let all = s
        .registry
        .frameworks
        .values()
        .chain(s.registry.completed_frameworks.iter());
    let (mut live, mut done) = (Vec::new(), Vec::new());
    for fw in all {
        live.extend(fw.executors.values().map(info));
        done.extend(fw.completed_executors.iter().map(info));
    }
    json!({ "executors": live, "completed_executors": done })
}

/// GET_FRAMEWORKS's payload.
pub fn get_frameworks(s: &Snapshot) -> Value {
    let info = |fw: &Framework| json!({ "framework_info": fw.info });
    json!({
        "frameworks": s.registry.frameworks.values().map(info).collect::<Vec<_>>(),
        "completed_frameworks": s.registry.completed_frameworks.iter().map(info).collect::<Vec<_>>(),
    })
}

/// GET_AGENT's payload.
pub fn get_agent(s: &Snapshot, fallback_hostname: &str, port: u16) -> Value {
    let mut info = match &s.info {
        Some(i) => serde_json::to_value(i).unwrap_or_default(),
        None => json!({ "hostname": fallback_hostname, "port": port }),
    };
    if let Some(id) = &s.agent_id {
        info["id"] = json!({ "value": id });
    }
    json!({ "agent_info": info })
}

/// GET_STATE's payload.
pub fn get_state(s: &Snapshot) -> Value {
    json!({
        "get_tasks": get_tasks(s),
        "get_executors": get_executors(s),
        "get_frameworks": get_frameworks(s),
    })
}

/// Resources as the legacy endpoints show them: scalars as numbers, ranges as
/// `"[a-b, c-d]"`, sets as `"{a, b}"`, summed by name.
pub fn legacy_resources(list: &[Resource]) -> Value {
    let mut out = Map::new();
    for r in list {
        match r.kind {
            ValueType::Scalar => {
                let v = r.scalar.as_ref().map(|s| s.value).unwrap_or(0.0);
                let total = out.get(&r.name).and_then(Value::as_f64).unwrap_or(0.0) + v;
                out.insert(r.name.clone(), json!(total));
            }
            ValueType::Ranges => {
                let ranges: Vec<String> = r
                    .ranges
                    .iter()
                    .flat_map(|rs| rs.range.iter())
                    .map(|x| format!("{}-{}", x.begin, x.end))
                    .collect();
                out.insert(r.name.clone(), json!(format!("[{}]", ranges.join(", "))));
            }
            // Resources are never text; nothing to show.
            ValueType::Text => {}
            ValueType::Set => {
                let items: Vec<String> =
                    r.set.iter().flat_map(|s| s.item.iter().cloned()).collect();
                out.insert(r.name.clone(), json!(format!("{{{}}}", items.join(", "))));
            }
        }
    }
    Value::Object(out)
}

fn legacy_status(st: &TaskStatus) -> Value {
    let mut v = json!({ "state": st.state, "timestamp": st.timestamp });
    if let Some(c) = &st.container_status {
        v["container_status"] = json!({
            "container_id": {"value": c.container_id.value},
            "network_infos": c.network_infos,
        });
    }
    v
}

fn legacy_task(s: &Snapshot, framework: &str, e: &Executor, t: &Task) -> Value {
    let mut v = json!({
        "id": t.info.task_id.value,
        "name": t.info.name,
        "framework_id": framework,
        "executor_id": e.info.executor_id.value,
        "slave_id": s.agent_id.clone().unwrap_or_default(),
        "state": t.state,
        "resources": legacy_resources(&t.info.resources),
        "role": role_of(&t.info.resources),
        "statuses": t.statuses.iter().map(legacy_status).collect::<Vec<_>>(),
    });
    if e.kind == ExecutorKind::Command {
        v.as_object_mut().map(|o| o.remove("executor_id"));
    }
    v
}

fn role_of(resources: &[Resource]) -> String {
    resources
        .iter()
        .find_map(|r| r.allocation_info.as_ref().and_then(|a| a.role.clone()))
        .unwrap_or_else(|| "*".to_owned())
}

fn legacy_executor(s: &Snapshot, framework: &str, e: &Executor) -> Value {
    let tasks = |m: &mut dyn Iterator<Item = &Task>| -> Vec<Value> {
        m.map(|t| legacy_task(s, framework, e, t)).collect()
    };
    let resources: Vec<Resource> = match e.kind {
        ExecutorKind::Custom => e.info.resources.clone(),
        // As Mesos's allocated resources: its own and its live tasks'.
        ExecutorKind::Default => e
            .info
            .resources
            .iter()
            .cloned()
            .chain(e.live_tasks().flat_map(|t| t.info.resources.clone()))
            .collect(),
        ExecutorKind::Command => e
            .launched
            .values()
            .chain(e.terminated.values())
            .chain(e.completed.iter())
            .flat_map(|t| t.info.resources.clone())
            .collect(),
    };
    json!({
        "id": e.info.executor_id.value,
        "name": e.info.name.clone().unwrap_or_default(),
        "source": e.info.extra.get("source").cloned().unwrap_or(json!("")),
        "container": e.container_id,
        "directory": e.directory.display().to_string(),
        "resources": legacy_resources(&resources),
        "role": role_of(&resources),
        "type": if e.kind == ExecutorKind::Custom { "CUSTOM" } else { "DEFAULT" },
        "tasks": tasks(&mut e.launched.values().chain(e.terminated.values())),
        "queued_tasks": tasks(&mut e.queued.values()),
        "completed_tasks": tasks(&mut e.completed.iter()),
    })
}

fn legacy_framework(s: &Snapshot, fw: &Framework) -> Value {
    let id = framework_id(fw);
    json!({
        "id": id,
        "name": fw.info.name,
        "user": fw.info.user,
        "failover_timeout": fw.info.failover_timeout.unwrap_or(0.0),
        "checkpoint": fw.info.checkpoint.unwrap_or(false),
        "hostname": fw.info.hostname.clone().unwrap_or_default(),
        "roles": fw.info.effective_roles(),
        "executors": fw.executors.values().map(|e| legacy_executor(s, id, e)).collect::<Vec<_>>(),
        "completed_executors": fw.completed_executors.iter().map(|e| legacy_executor(s, id, e)).collect::<Vec<_>>(),
    })
}

/// What the legacy `/state` adds to the agent's own facts (version, flags, start time,
/// which the caller knows): identity, resources and frameworks.
pub fn legacy_state(s: &Snapshot, endpoint: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let id = s.agent_id.clone().unwrap_or_default();
    out.insert("id".into(), json!(id));
    out.insert("pid".into(), json!(format!("slave(1)@{endpoint}")));
    let (hostname, resources, attributes) = match &s.info {
        Some(i) => (
            i.hostname.clone(),
            i.resources.clone(),
            i.attributes.clone(),
        ),
        None => (String::new(), Vec::new(), Vec::new()),
    };
    out.insert("hostname".into(), json!(hostname));
    out.insert("resources".into(), legacy_resources(&resources));
    out.insert("unreserved_resources".into(), legacy_resources(&resources));
    out.insert("reserved_resources".into(), json!({}));
    let mut attrs = Map::new();
    for a in attributes {
        let name = a["name"].as_str().unwrap_or("").to_owned();
        let value = a["text"]["value"]
            .as_str()
            .map(|t| json!(t))
            .or_else(|| a["scalar"]["value"].as_f64().map(|v| json!(v)))
            .unwrap_or_else(|| {
                a.get("ranges")
                    .or(a.get("set"))
                    .cloned()
                    .unwrap_or(Value::Null)
            });
        attrs.insert(name, value);
    }
    out.insert("attributes".into(), Value::Object(attrs));
    let master_host = s
        .master
        .as_deref()
        .and_then(|m| m.rsplit_once(':').map(|(h, _)| h.to_owned()))
        .unwrap_or_default();
    out.insert("master_hostname".into(), json!(master_host));
    out.insert(
        "frameworks".into(),
        json!(s
            .registry
            .frameworks
            .values()
            .map(|fw| legacy_framework(s, fw))
            .collect::<Vec<_>>()),
    );
    out.insert(
        "completed_frameworks".into(),
        json!(s
            .registry
            .completed_frameworks
            .iter()
            .map(|fw| legacy_framework(s, fw))
            .collect::<Vec<_>>()),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ExecutorKind;
    use holdfast_api::scheduler::{FrameworkInfo, TaskInfo, TaskState};
    use std::path::PathBuf;

    fn snapshot() -> Snapshot {
        let mut r = Registry::new(10);
        let fw: FrameworkInfo = serde_json::from_value(
            json!({"user": "root", "name": "fw", "id": {"value": "f1"}, "roles": ["*"]}),
        )
        .expect("fw");
        let task = |id: &str| -> TaskInfo {
            serde_json::from_value(json!({
                "name": id, "task_id": {"value": id}, "agent_id": {"value": "a-S0"},
                "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1},
                               "allocation_info": {"role": "*"}}],
                "command": {"value": "true"}}))
            .expect("task")
        };
        r.add_task(fw.clone(), task("run"), || {
            ("c1".into(), PathBuf::from("/s/c1"))
        })
        .expect("run");
        r.add_task(fw, task("done"), || ("c2".into(), PathBuf::from("/s/c2")))
            .expect("done");
        let status: TaskStatus = serde_json::from_value(json!({
            "task_id": {"value": "run"}, "state": "TASK_RUNNING", "uuid": "AAAAAAAAAAAAAAAAAAAAAA==",
            "timestamp": 1.5}))
        .expect("status");
        r.record_status("f1", &status);
        r.set_task_state("f1", "done", TaskState::TaskFinished);
        r.task_acknowledged_terminal("f1", "done");
        r.executor_terminated("f1", "done", TaskState::TaskFailed);
        r.finish_executor_if_done("f1", "done");
        Snapshot {
            registry: r,
            agent_id: Some("a-S0".into()),
            info: Some(AgentInfo {
                hostname: "h1".into(),
                port: 5051,
                resources: vec![
                    Resource::scalar("cpus", 4.0),
                    Resource::ranges("ports", &[(31000, 32000)]),
                ],
                attributes: vec![json!({"name": "rack", "type": "TEXT", "text": {"value": "r1"}})],
                domain: None,
            }),
            master: Some("m1:5050".into()),
        }
    }

    #[test]
    fn get_state_lists_tasks_by_where_they_are() {
        let s = snapshot();
        let state = get_state(&s);
        let tasks = &state["get_tasks"];
        assert_eq!(tasks["launched_tasks"][0]["task_id"]["value"], "run");
        assert_eq!(tasks["launched_tasks"][0]["state"], "TASK_RUNNING");
        assert_eq!(tasks["launched_tasks"][0]["agent_id"]["value"], "a-S0");
        assert_eq!(
            tasks["launched_tasks"][0]["status_update_state"],
            "TASK_RUNNING"
        );
        assert_eq!(
            tasks["launched_tasks"][0]["statuses"][0]["uuid"],
            "AAAAAAAAAAAAAAAAAAAAAA=="
        );
        assert!(
            tasks["launched_tasks"][0].get("executor_id").is_none(),
            "command task"
        );
        assert_eq!(tasks["completed_tasks"][0]["task_id"]["value"], "done");
        assert_eq!(tasks["completed_tasks"][0]["state"], "TASK_FINISHED");
        let ex = &state["get_executors"];
        assert_eq!(
            ex["executors"][0]["executor_info"]["executor_id"]["value"],
            "run"
        );
        assert_eq!(
            ex["completed_executors"][0]["executor_info"]["executor_id"]["value"],
            "done"
        );
        assert_eq!(
            state["get_frameworks"]["frameworks"][0]["framework_info"]["id"]["value"],
            "f1"
        );
        let agent = get_agent(&s, "x", 1);
        assert_eq!(agent["agent_info"]["id"]["value"], "a-S0");
        assert_eq!(agent["agent_info"]["hostname"], "h1");
    }

    #[test]
    fn legacy_state_uses_flat_resources_and_string_ids() {
        let s = snapshot();
        let st = legacy_state(&s, "127.0.0.1:5051");
        assert_eq!(st["id"], "a-S0");
        assert_eq!(st["pid"], "slave(1)@127.0.0.1:5051");
        assert_eq!(
            st["resources"],
            json!({"cpus": 4.0, "ports": "[31000-32000]"})
        );
        assert_eq!(st["attributes"], json!({"rack": "r1"}));
        assert_eq!(st["master_hostname"], "m1");
        let fw = &st["frameworks"][0];
        assert_eq!(fw["id"], "f1");
        let ex = &fw["executors"][0];
        assert_eq!(ex["directory"], "/s/c1");
        assert_eq!(ex["tasks"][0]["id"], "run");
        assert_eq!(ex["tasks"][0]["resources"], json!({"cpus": 0.1}));
        assert_eq!(ex["tasks"][0]["statuses"][0]["timestamp"], json!(1.5));
        assert_eq!(
            fw["completed_executors"][0]["completed_tasks"][0]["state"],
            "TASK_FINISHED"
        );
    }

    #[test]
    fn tasks_of_a_group_show_under_their_default_executor() {
        let mut r = Registry::new(10);
        let fw: FrameworkInfo =
            serde_json::from_value(json!({"user": "root", "name": "fw", "id": {"value": "f1"}}))
                .expect("fw");
        let res =
            |cpus: f64| json!([{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}}]);
        let executor = serde_json::from_value(json!({
            "type": "DEFAULT", "executor_id": {"value": "pod"}, "resources": res(0.1)}))
        .expect("executor");
        let task = |id: &str| -> TaskInfo {
            serde_json::from_value(json!({
                "name": id, "task_id": {"value": id}, "agent_id": {"value": "a-S0"},
                "resources": res(0.5), "command": {"value": "true"}}))
            .expect("task")
        };
        let (_, group) = r
            .add_task_group(
                fw,
                executor,
                ExecutorKind::Default,
                vec![task("g1"), task("g2")],
                || ("c1".into(), PathBuf::from("/s/c1")),
            )
            .expect("group");
        r.set_executor_state("f1", "pod", crate::registry::ExecutorState::Running);
        r.start_group("f1", "pod", group, || "n".into());
        r.set_task_state("f1", "g2", TaskState::TaskFinished);
        let s = Snapshot {
            registry: r,
            agent_id: Some("a-S0".into()),
            info: None,
            master: None,
        };
        let tasks = get_tasks(&s);
        assert_eq!(tasks["launched_tasks"][0]["task_id"]["value"], "g1");
        assert_eq!(tasks["launched_tasks"][0]["executor_id"]["value"], "pod");
        assert_eq!(tasks["terminated_tasks"][0]["executor_id"]["value"], "pod");
        let ex = get_executors(&s);
        assert_eq!(ex["executors"][0]["executor_info"]["type"], "DEFAULT");
        let legacy = legacy_state(&s, "127.0.0.1:5051");
        let e = &legacy["frameworks"][0]["executors"][0];
        assert_eq!(e["id"], "pod");
        assert_eq!(e["type"], "DEFAULT");
        assert_eq!(e["tasks"][0]["executor_id"], "pod");
        // Its own resources and its live task's: the ended one gave its back.
        assert_eq!(e["resources"], json!({"cpus": 0.6}));
        let ids: Vec<&str> = e["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["id"].as_str())
            .collect();
        assert_eq!(ids, ["g1", "g2"]);
    }
}
