//! What the document tests share: the Mesos 1.11 fixtures, a comparison of JSON shapes,
//! and a master in the state the fixtures were captured in.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use holdfast_api::internal::AgentInfo;
use holdfast_api::scheduler::{
    Accept, Acknowledge, CallBody, Event, Filters, FrameworkInfo, Id, MasterInfo, Operation,
    Subscribe, TaskInfo, TaskStatus,
};
use serde_json::{json, Value};

use crate::state::{Config, Master, Now, Output};

/// The master id of the capture; framework and agent ids derive from it.
pub const GOLDEN_MASTER: &str = "c5626c28-6e85-4bb4-95c9-ddeb24d2d624";

pub fn fixture(path: &str) -> Value {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/mesos-1.11/"
    );
    let text = std::fs::read_to_string(format!("{dir}{path}"))
        .unwrap_or_else(|e| panic!("fixture {path}: {e}"));
    serde_json::from_str(&text).expect("fixture json")
}

/// A fixture's response body.
pub fn body(path: &str) -> Value {
    fixture(path)["response"]["body"].clone()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "double",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// What identifies an element of a list, to pair ours with the fixture's.
fn identity(v: &Value) -> Option<Value> {
    [
        "/uuid",
        "/task_id/value",
        "/id",
        "/framework_info/name",
        "/executor_info/executor_id/value",
        "/agent_info/port",
        "/name",
        "/state",
    ]
    .iter()
    .find_map(|p| v.pointer(p).cloned())
}

/// Checks that `ours` has the fixture's shape: the same JSON types (doubles and
/// integers apart) at every path, no field the fixture lacks, and every field the
/// fixture has except the `omitted` paths (`a.b[].c`). Objects at `opaque` paths are maps
/// whose keys are not compared. Returns the differences.
pub fn shape_diff(ours: &Value, theirs: &Value, omitted: &[&str], opaque: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    walk(ours, theirs, "", omitted, opaque, &mut out);
    out
}

fn walk(
    ours: &Value,
    theirs: &Value,
    path: &str,
    omitted: &[&str],
    opaque: &[&str],
    out: &mut Vec<String>,
) {
    if kind(ours) != kind(theirs) {
        out.push(format!(
            "{path}: ours is a {}, Mesos's a {} ({ours} vs {theirs})",
            kind(ours),
            kind(theirs)
        ));
        return;
    }
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            if opaque.contains(&path) {
                return;
            }
            let join = |k: &str| {
                if path.is_empty() {
                    k.to_owned()
                } else {
                    format!("{path}.{k}")
                }
            };
            for (k, v) in a {
                match b.get(k) {
                    Some(w) => walk(v, w, &join(k), omitted, opaque, out),
                    None => out.push(format!("{}: not in Mesos's answer", join(k))),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                if !omitted.contains(&join(k).as_str()) {
                    out.push(format!("{}: missing", join(k)));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            let Some(first) = b.first() else { return };
            let path = format!("{path}[]");
            for v in a {
                let id = identity(v);
                let pair = b.iter().find(|w| id.is_some() && identity(w) == id);
                walk(v, pair.unwrap_or(first), &path, omitted, opaque, out);
            }
        }
        _ => {}
    }
}

pub fn assert_shape(ours: &Value, theirs: &Value, omitted: &[&str], opaque: &[&str]) {
    let diff = shape_diff(ours, theirs, omitted, opaque);
    assert!(
        diff.is_empty(),
        "shape differs from Mesos's:\n{}",
        diff.join("\n")
    );
}

/// The fixtures' time of capture, as the master's clock.
pub fn at(start: Instant, secs: f64) -> Now {
    Now {
        mono: start + Duration::from_secs_f64(secs),
        wall: 1_795_290_207.75 + secs,
    }
}

/// A master in the state of `master-operator/04-get-state.json`: one agent, the two
/// frameworks, their five tasks with the statuses the capture shows (three of them
/// finished and acknowledged), and the custom executor.
pub struct Golden {
    pub m: Master,
    pub agent: String,
    pub start: Instant,
}

pub fn golden() -> Golden {
    let state = body("master-operator/04-get-state.json")["get_state"].clone();
    let info = MasterInfo::new(
        GOLDEN_MASTER,
        std::net::Ipv4Addr::LOCALHOST,
        "127.0.0.1",
        25050,
        "1.11.0",
    );
    let mut m = Master::new(info, Config::default());
    let start = Instant::now();
    let agent_info = &state["get_agents"]["agents"][0]["agent_info"];
    let agent = m
        .subscribe_agent(
            None,
            AgentInfo {
                hostname: "127.0.0.1".into(),
                port: 25051,
                resources: serde_json::from_value(agent_info["resources"].clone())
                    .expect("resources"),
                attributes: Vec::new(),
                domain: None,
            },
            Vec::new(),
            "agent-stream".into(),
            at(start, 2.8),
        )
        .expect("agent");
    let mut fixture_tasks: Vec<Value> = Vec::new();
    for list in ["tasks", "completed_tasks"] {
        fixture_tasks.extend(
            state["get_tasks"][list]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
    }
    let executor = state["get_executors"]["executors"][0]["executor_info"].clone();
    let mut frameworks: Vec<Value> = state["get_frameworks"]["frameworks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    frameworks.sort_by_key(|f| {
        f["framework_info"]["id"]["value"]
            .as_str()
            .map(str::to_owned)
    });
    for (i, f) in frameworks.iter().enumerate() {
        let mut info: FrameworkInfo =
            serde_json::from_value(f["framework_info"].clone()).expect("framework info");
        let fw_id = info.id.take().expect("id").value;
        let now = at(start, 6.0 + i as f64);
        let id = m
            .subscribe_framework(
                None,
                Subscribe {
                    framework_info: info,
                    suppressed_roles: Vec::new(),
                },
                format!("stream-{i}"),
                now,
            )
            .expect("subscribe");
        assert_eq!(id, fw_id, "ids derive from the master's");
        m.allocate(now, true);
        let offer = m
            .take_outputs()
            .into_iter()
            .find_map(|o| match o {
                Output::Framework {
                    framework,
                    event: Event::Offers(offers),
                } if framework == id => offers.into_iter().next(),
                _ => None,
            })
            .expect("an offer");
        let tasks: Vec<TaskInfo> = fixture_tasks
            .iter()
            .filter(|t| t["framework_id"]["value"] == id.as_str())
            .map(|t| {
                let mut info = json!({
                    "name": t["name"], "task_id": t["task_id"], "agent_id": {"value": agent},
                    "resources": t["resources"],
                });
                if t.get("executor_id").is_some() {
                    let mut e = executor.clone();
                    if let Some(o) = e.as_object_mut() {
                        o.remove("framework_id");
                    }
                    info["executor"] = e;
                } else {
                    info["command"] = json!({"value": "true"});
                }
                serde_json::from_value(info).expect("task info")
            })
            .collect();
        m.framework_call(
            &id,
            CallBody::Accept(Accept {
                offer_ids: vec![offer.id],
                operations: vec![Operation::Launch(tasks)],
                filters: Filters::default(),
            }),
            now,
        )
        .expect("accept");
    }
    // The statuses in the order they were sent; terminal ones are acknowledged.
    let mut statuses: Vec<(String, TaskStatus)> = fixture_tasks
        .iter()
        .flat_map(|t| {
            let fw = t["framework_id"]["value"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            t["statuses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |s| (fw.clone(), serde_json::from_value(s).expect("status")))
        })
        .collect();
    statuses.sort_by(|a, b| {
        a.1.timestamp
            .unwrap_or(0.0)
            .total_cmp(&b.1.timestamp.unwrap_or(0.0))
    });
    for (fw, status) in statuses {
        let terminal = status.state.is_terminal();
        let ack = CallBody::Acknowledge(Acknowledge {
            agent_id: Id::new(&agent),
            task_id: status.task_id.clone(),
            uuid: holdfast_api::base64::decode(status.uuid.as_deref().unwrap_or_default())
                .expect("uuid"),
        });
        m.agent_update(&agent, &fw, status);
        if terminal {
            m.framework_call(&fw, ack, at(start, 15.0)).expect("ack");
        }
    }
    m.take_outputs();
    Golden { m, agent, start }
}

/// Names of the fixture's list at `pointer`, by `key` (a JSON pointer into each item).
pub fn names(v: &Value, pointer: &str, key: &str) -> BTreeSet<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|x| x.pointer(key).and_then(Value::as_str).map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_diff_reports_what_differs() {
        let mesos = json!({"a": 1, "b": 1.5, "list": [{"task_id": {"value": "x"}, "s": "t"}],
                           "map": {"k": 1}, "gone": true});
        let ours = json!({"a": 2, "b": 2, "list": [{"task_id": {"value": "x"}, "s": 1}],
                          "map": {"other": 1}, "new": null});
        let mut diff = shape_diff(&ours, &mesos, &[], &[]);
        diff.sort();
        assert_eq!(
            diff,
            [
                "b: ours is a integer, Mesos's a double (2 vs 1.5)",
                "gone: missing",
                "list[].s: ours is a integer, Mesos's a string (1 vs \"t\")",
                "map.k: missing",
                "map.other: not in Mesos's answer",
                "new: not in Mesos's answer",
            ]
        );
        assert_eq!(
            shape_diff(&ours, &mesos, &["gone"], &["map"]).len(),
            3,
            "omitted and opaque paths are not compared"
        );
    }
}
