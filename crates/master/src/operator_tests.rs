//! The operator API's documents and events against Mesos 1.11's answers.

use std::collections::BTreeMap;

use holdfast_api::internal::AgentInfo;
use holdfast_api::scheduler::{
    Accept, CallBody, Event, Filters, FrameworkInfo, Operation, Subscribe, TaskState, TaskStatus,
};
use serde_json::{json, Value};

use super::*;
use crate::state::Output;
use crate::testkit::{assert_shape, at, body, golden, names};

/// What Holdfast's agents do not tell the master, so it cannot show.
const AGENT_OMITS: &[&str] = &["capabilities", "agent_info.checkpoint"];

fn omitted(prefix: &str) -> Vec<String> {
    AGENT_OMITS.iter().map(|f| format!("{prefix}{f}")).collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn by_task_id(list: &Value) -> BTreeMap<String, Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["task_id"]["value"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                t.clone(),
            )
        })
        .collect()
}

#[test]
fn get_state_matches_mesos() {
    let g = golden();
    let ours = get_state(&g.m);
    let theirs = body("master-operator/04-get-state.json")["get_state"].clone();
    assert_shape(&ours, &theirs, &refs(&omitted("get_agents.agents[].")), &[]);
    // Fed the same launches and updates, tasks read exactly as Mesos's.
    for list in ["tasks", "unreachable_tasks", "completed_tasks"] {
        assert_eq!(
            by_task_id(&ours["get_tasks"][list]),
            by_task_id(&theirs["get_tasks"][list]),
            "{list}"
        );
    }
    assert_eq!(ours["get_executors"], theirs["get_executors"]);
    let agent = &ours["get_agents"]["agents"][0];
    let mesos_agent = &theirs["get_agents"]["agents"][0];
    // Mesos lists an agent's resources in the order the agent gave; Holdfast by name.
    let sorted = |v: &Value| {
        let mut list = v.as_array().cloned().unwrap_or_default();
        list.sort_by_key(|r| r["name"].as_str().map(str::to_owned));
        list
    };
    for field in ["total_resources", "allocated_resources"] {
        assert_eq!(
            sorted(&agent[field]),
            sorted(&mesos_agent[field]),
            "{field}"
        );
    }
    for field in ["version", "pid", "active"] {
        assert_eq!(agent[field], mesos_agent[field], "{field}");
    }
    let frameworks = |v: &Value| -> BTreeMap<String, (Value, Value)> {
        v["get_frameworks"]["frameworks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                let id = f["framework_info"]["id"]["value"]
                    .as_str()
                    .unwrap_or_default();
                (
                    id.to_owned(),
                    (
                        f["framework_info"].clone(),
                        f["allocated_resources"].clone(),
                    ),
                )
            })
            .collect()
    };
    assert_eq!(frameworks(&ours), frameworks(&theirs));
}

#[test]
fn the_calls_of_get_state_match_mesos_on_their_own() {
    let g = golden();
    assert_shape(
        &get_tasks(&g.m),
        &body("master-operator/07-get-tasks.json")["get_tasks"],
        &[],
        &[],
    );
    assert_shape(
        &get_frameworks(&g.m),
        &body("master-operator/06-get-frameworks.json")["get_frameworks"],
        &[],
        &[],
    );
    assert_shape(
        &get_agents(&g.m),
        &body("master-operator/05-get-agents.json")["get_agents"],
        &refs(&omitted("agents[].")),
        &[],
    );
    assert_eq!(
        get_executors(&g.m),
        body("master-operator/08-get-executors.json")["get_executors"]
    );
}

#[test]
fn get_master_and_get_roles_match_mesos() {
    let g = golden();
    let theirs = body("master-operator/09-get-master.json")["get_master"].clone();
    let ours = get_master(&g.m.info, 1_795_290_207.746);
    assert_shape(&ours, &theirs, &[], &[]);
    // Mesos 1.11 adds an empty capability (QUOTA_V2, unknown to v1); the rest agree.
    let mut caps = theirs["master_info"]["capabilities"].clone();
    if let Some(c) = caps.as_array_mut() {
        c.retain(|x| x != &json!({}));
    }
    assert_eq!(ours["master_info"]["capabilities"], caps);
    assert_eq!(ours["master_info"]["ip"], theirs["master_info"]["ip"]);

    let theirs = body("master-operator/13-get-roles.json")["get_roles"].clone();
    let ours = get_roles(&g.m);
    assert_shape(&ours, &theirs, &[], &[]);
    let sorted = |v: &Value| {
        let mut r = v["roles"][0].clone();
        if let Some(f) = r["frameworks"].as_array_mut() {
            f.sort_by_key(|x| x["value"].as_str().map(str::to_owned));
        }
        r
    };
    assert_eq!(sorted(&ours), sorted(&theirs));
}

#[test]
fn an_unreachable_agents_tasks_are_listed_apart_until_it_returns() {
    let mut g = golden();
    let now = at(g.start, 20.0);
    // The fixture's frameworks are partition aware.
    g.m.mark_unreachable(&g.agent, now);
    let tasks = get_tasks(&g.m);
    assert_eq!(
        names(&tasks, "/unreachable_tasks", "/task_id/value"),
        ["exec-task-wait", "golden-task-long"]
            .map(String::from)
            .into()
    );
    assert_eq!(tasks["tasks"], json!([]));
    assert_eq!(
        tasks["unreachable_tasks"][0]["statuses"]
            .as_array()
            .and_then(|s| s.last())
            .map(|s| s["state"].clone()),
        Some(json!("TASK_UNREACHABLE"))
    );
    assert_eq!(
        get_agents(&g.m)["agents"],
        json!([]),
        "no longer registered"
    );
    assert_eq!(
        get_executors(&g.m)["executors"],
        json!([]),
        "went with the agent"
    );
    // Its tasks hold no resources while it is away.
    let fw = &get_frameworks(&g.m)["frameworks"][0];
    assert!(fw.get("allocated_resources").is_none(), "{fw}");
}

#[test]
fn removed_frameworks_and_their_tasks_stay_listed() {
    let mut g = golden();
    let fw = format!("{}-0000", crate::testkit::GOLDEN_MASTER);
    g.m.remove_framework(&fw, at(g.start, 30.0));
    let frameworks = get_frameworks(&g.m);
    let completed = &frameworks["completed_frameworks"];
    assert_eq!(completed.as_array().map(Vec::len), Some(1));
    assert_eq!(completed[0]["framework_info"]["id"]["value"], fw.as_str());
    assert_eq!(completed[0]["active"], false);
    assert_eq!(completed[0]["connected"], false);
    assert!(completed[0]["unregistered_time"]["nanoseconds"].as_i64() > Some(0));
    let tasks = get_tasks(&g.m);
    let long = by_task_id(&tasks["completed_tasks"])
        .remove("golden-task-long")
        .expect("the running task is completed");
    assert_eq!(long["state"], "TASK_KILLED");
    assert!(!names(&tasks, "/tasks", "/task_id/value").contains("golden-task-long"));
}

/// Drives the changes the fixture's SUBSCRIBE stream saw and renders each event.
fn events_of_a_framework_lifetime() -> Vec<Value> {
    let mut g = golden();
    let m = &mut g.m;
    let start = g.start;
    let info: FrameworkInfo = serde_json::from_value(json!({
        "user": "root", "name": "golden-operator-trigger", "failover_timeout": 0.0,
        "checkpoint": false, "roles": ["*"], "hostname": "127.0.0.1",
        "capabilities": [{"type": "MULTI_ROLE"}, {"type": "TASK_KILLING_STATE"},
                         {"type": "PARTITION_AWARE"}]}))
    .expect("info");
    let mut out = Vec::new();
    let drain = |m: &mut Master, out: &mut Vec<Value>| {
        for o in m.take_outputs() {
            if let Output::Operator(e) = o {
                out.push(event(m, &e));
            }
        }
    };
    let now = at(start, 40.0);
    let fw = m
        .subscribe_framework(
            None,
            Subscribe {
                framework_info: info,
                suppressed_roles: Vec::new(),
            },
            "s".into(),
            now,
        )
        .expect("subscribe");
    drain(m, &mut out);
    m.allocate(at(start, 50.0), true);
    let offer = m
        .take_outputs()
        .into_iter()
        .find_map(|o| match o {
            Output::Framework {
                event: Event::Offers(list),
                ..
            } => list.into_iter().next(),
            _ => None,
        })
        .expect("offer");
    let task = serde_json::from_value(json!({
        "name": "golden-op-task", "task_id": {"value": "golden-op-task"},
        "agent_id": {"value": g.agent},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}, "allocation_info": {"role": "*"}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32.0}, "allocation_info": {"role": "*"}}],
        "command": {"value": "true"}}))
    .expect("task");
    m.framework_call(
        &fw,
        CallBody::Accept(Accept {
            offer_ids: vec![offer.id],
            operations: vec![Operation::Launch(vec![task])],
            filters: Filters::default(),
        }),
        now,
    )
    .expect("accept");
    drain(m, &mut out);
    let records = body("master-operator/20-subscribe.json");
    for r in records.as_array().into_iter().flatten() {
        if r["type"] == "TASK_UPDATED" {
            let status: TaskStatus =
                serde_json::from_value(r["task_updated"]["status"].clone()).expect("status");
            m.agent_update(&g.agent, &fw, status);
        }
    }
    drain(m, &mut out);
    let second = m
        .subscribe_agent(
            None,
            AgentInfo {
                hostname: "127.0.0.1".into(),
                port: 25052,
                resources: serde_json::from_value(
                    body("master-operator/05-get-agents.json")["get_agents"]["agents"][0]
                        ["agent_info"]["resources"]
                        .clone(),
                )
                .expect("resources"),
                attributes: Vec::new(),
                domain: None,
            },
            Vec::new(),
            "a2".into(),
            now,
        )
        .expect("agent");
    drain(m, &mut out);
    m.mark_unreachable(&second, now);
    drain(m, &mut out);
    m.remove_framework(&fw, now);
    drain(m, &mut out);
    out
}

#[test]
fn events_match_mesos_subscribe_stream() {
    let ours = events_of_a_framework_lifetime();
    let theirs = body("master-operator/20-subscribe.json");
    let types = |v: &[Value]| -> Vec<String> {
        v.iter()
            .filter_map(|r| r["type"].as_str().map(str::to_owned))
            .collect()
    };
    let mesos: Vec<Value> = theirs.as_array().cloned().unwrap_or_default();
    // Mesos's stream as captured, after SUBSCRIBED and the first HEARTBEAT.
    assert_eq!(types(&ours), types(&mesos[2..]));
    let omit = omitted("agent_added.agent.");
    for (r, same) in ours.iter().zip(&mesos[2..]) {
        assert_shape(r, same, &refs(&omit), &[]);
    }
    // The framework events name the framework as Mesos does.
    assert_eq!(
        ours.last()
            .map(|r| r["framework_removed"]["framework_info"]["name"].clone()),
        Some(json!("golden-operator-trigger"))
    );
    let updated: Vec<&Value> = ours
        .iter()
        .filter(|r| r["type"] == "TASK_UPDATED")
        .collect();
    let mesos_updated: Vec<&Value> = mesos
        .iter()
        .filter(|r| r["type"] == "TASK_UPDATED")
        .collect();
    for (a, b) in updated.iter().zip(&mesos_updated) {
        assert_eq!(a["task_updated"]["status"], b["task_updated"]["status"]);
        assert_eq!(a["task_updated"]["state"], b["task_updated"]["state"]);
    }
}

#[test]
fn subscribed_carries_the_whole_state() {
    let g = golden();
    let ours = subscribed(&g.m, 15.0);
    let theirs = body("master-operator/20-subscribe.json")[0].clone();
    assert_shape(
        &ours,
        &theirs,
        &refs(&omitted("subscribed.get_state.get_agents.agents[].")),
        &[],
    );
    assert_eq!(ours["subscribed"]["get_state"], get_state(&g.m));
    assert_eq!(
        ours["subscribed"]["heartbeat_interval_seconds"],
        json!(15.0)
    );
}

#[test]
fn a_task_shows_what_its_launch_named() {
    let mut g = golden();
    let fw = format!("{}-0000", crate::testkit::GOLDEN_MASTER);
    g.m.allocate(at(g.start, 100.0), true);
    let offer =
        g.m.take_outputs()
            .into_iter()
            .find_map(|o| match o {
                Output::Framework {
                    framework,
                    event: Event::Offers(list),
                } if framework == fw => list.into_iter().next(),
                _ => None,
            })
            .expect("offer");
    // An outstanding offer is listed with its framework.
    let listed = get_frameworks(&g.m)["frameworks"]
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|f| f["framework_info"]["id"]["value"] == fw.as_str())
                .cloned()
        })
        .expect("framework");
    assert_eq!(listed["offers"][0]["id"]["value"], offer.id.value.as_str());
    assert!(listed["offered_resources"]
        .as_array()
        .is_some_and(|r| !r.is_empty()));
    let task = serde_json::from_value(json!({
        "name": "labelled", "task_id": {"value": "labelled"}, "agent_id": {"value": g.agent},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}],
        "command": {"value": "true", "user": "nobody"},
        "labels": {"labels": [{"key": "k", "value": "v"}]},
        "kill_policy": {"grace_period": {"nanoseconds": 5}}}))
    .expect("task");
    g.m.framework_call(
        &fw,
        CallBody::Accept(Accept {
            offer_ids: vec![offer.id],
            operations: vec![Operation::Launch(vec![task])],
            filters: Filters::default(),
        }),
        at(g.start, 100.0),
    )
    .expect("accept");
    let t = by_task_id(&get_tasks(&g.m)["tasks"])
        .remove("labelled")
        .expect("listed");
    assert_eq!(t["state"], json!(TaskState::TaskStaging));
    assert_eq!(t["user"], "nobody");
    assert_eq!(t["labels"], json!({"labels": [{"key": "k", "value": "v"}]}));
    assert_eq!(
        t["kill_policy"],
        json!({"grace_period": {"nanoseconds": 5}})
    );
    assert_eq!(
        t["resources"],
        json!([{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5},
                "allocation_info": {"role": "*"}}]),
        "the offer's role is filled in"
    );
    assert!(t.get("statuses").is_none(), "no updates yet");
}
