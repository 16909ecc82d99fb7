//! The legacy documents against Mesos 1.11's answers.

use std::collections::BTreeMap;

use holdfast_api::v1::Resource;
use serde_json::{json, Value};

use super::*;
use crate::testkit::{assert_shape, at, body, golden, Golden};

/// The golden cluster with the offer the capture had outstanding (what the tasks left,
/// to the scheduler with the smaller share).
fn golden_with_offer() -> Golden {
    let mut g = golden();
    g.m.allocate(at(g.start, 100.0), true);
    g.m.take_outputs();
    g
}

/// A Holdfast build's version: no git or build details.
fn version() -> Value {
    json!({"version": "0.1.0"})
}

fn flag_list() -> Value {
    json!([{"name": "port", "value": "5050"}, {"name": "work_dir", "value": "/w"}])
}

/// Fields of the build Holdfast does not record.
const BUILD: &[&str] = &[
    "git_sha",
    "git_tag",
    "build_date",
    "build_time",
    "build_user",
];

fn by_id(list: &Value) -> BTreeMap<String, Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|x| (x["id"].as_str().unwrap_or_default().to_owned(), x.clone()))
        .collect()
}

#[test]
fn state_matches_mesos() {
    let g = golden_with_offer();
    let (v, f) = (version(), flag_list());
    let ctx = Context {
        version: &v,
        flags: &f,
        start_time: 1_795_290_207.746,
    };
    let ours = state(&g.m, &ctx);
    let theirs = body("legacy-endpoints/03-master-state.json");
    assert_shape(&ours, &theirs, BUILD, &["flags"]);
    assert_eq!(ours["flags"], json!({"port": "5050", "work_dir": "/w"}));
    assert_eq!(ours["activated_slaves"], json!(1.0));
    assert_eq!(ours["leader"], theirs["leader"]);
    assert_eq!(ours["leader_info"], theirs["leader_info"]);
    let slave = &ours["slaves"][0];
    let mesos_slave = &theirs["slaves"][0];
    for field in [
        "id",
        "pid",
        "resources",
        "used_resources",
        "offered_resources",
        "unreserved_resources",
        "reserved_resources",
        "attributes",
    ] {
        assert_eq!(slave[field], mesos_slave[field], "{field}");
    }
    // Fed the same launches and updates, frameworks and their tasks read as Mesos's.
    let ours = by_id(&ours["frameworks"]);
    let theirs = by_id(&theirs["frameworks"]);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (id, fw) in &ours {
        let mesos = &theirs[id];
        for field in [
            "name",
            "used_resources",
            "offered_resources",
            "resources",
            "capabilities",
            "roles",
            "active",
            "executors",
        ] {
            assert_eq!(fw[field], mesos[field], "{id} {field}");
        }
        // Offer ids count the offers made, which differ; the rest agrees.
        let offers = |v: &Value| {
            let mut list = v["offers"].as_array().cloned().unwrap_or_default();
            list.iter_mut()
                .filter_map(Value::as_object_mut)
                .for_each(|o| drop(o.remove("id")));
            list
        };
        assert_eq!(offers(fw), offers(mesos), "{id} offers");
        for list in ["tasks", "completed_tasks", "unreachable_tasks"] {
            assert_eq!(by_id(&fw[list]), by_id(&mesos[list]), "{id} {list}");
        }
    }
}

#[test]
fn state_is_served_bare_as_well() {
    // `/state` is the same document as `/master/state` in the capture.
    let a = body("legacy-endpoints/03-master-state.json");
    let b = body("legacy-endpoints/04-state.json");
    assert_eq!(
        a.as_object().map(|o| o.keys().collect::<Vec<_>>()),
        b.as_object().map(|o| o.keys().collect::<Vec<_>>())
    );
}

#[test]
fn frameworks_and_slaves_match_mesos() {
    let g = golden_with_offer();
    let theirs = body("legacy-endpoints/06-master-frameworks.json");
    assert_shape(&frameworks(&g.m), &theirs, &[], &[]);
    let ours = slaves(&g.m);
    let theirs = body("legacy-endpoints/07-master-slaves.json");
    assert_shape(&ours, &theirs, &[], &[]);
    let sorted = |v: &Value| {
        let mut list = v.as_array().cloned().unwrap_or_default();
        list.sort_by_key(|r| r["name"].as_str().map(str::to_owned));
        list
    };
    for field in [
        "unreserved_resources_full",
        "used_resources_full",
        "offered_resources_full",
    ] {
        assert_eq!(
            sorted(&ours["slaves"][0][field]),
            sorted(&theirs["slaves"][0][field]),
            "{field}"
        );
    }
    assert_eq!(ours["slaves"][0]["reserved_resources_full"], json!({}));
}

#[test]
fn tasks_are_listed_newest_first_and_paged() {
    let g = golden();
    let all = TasksQuery::parse(&[]).expect("defaults");
    assert_eq!(
        tasks(&g.m, &all),
        body("legacy-endpoints/08-master-tasks.json"),
        "every task of the capture, in Mesos's order"
    );
    let q = |pairs: &[(&str, &str)]| {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TasksQuery::parse(&pairs).expect("query")
    };
    assert_eq!(
        tasks(&g.m, &q(&[("limit", "1"), ("order", "asc")])),
        body("legacy-endpoints/14-master-tasks-query.json")
    );
    let ids = |v: Value| -> Vec<String> {
        v["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["id"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(
        ids(tasks(&g.m, &q(&[("offset", "1"), ("limit", "2")]))),
        ["exec-task-finish", "golden-task-long"]
    );
    assert_eq!(
        ids(tasks(
            &g.m,
            &q(&[(
                "framework_id",
                &format!("{}-0001", crate::testkit::GOLDEN_MASTER)
            )])
        )),
        ["exec-task-wait", "exec-task-finish"]
    );
    assert_eq!(
        ids(tasks(&g.m, &q(&[("task_id", "golden-task-1")]))),
        ["golden-task-1"]
    );
}

#[test]
fn bad_task_queries_say_what_is_wrong() {
    for (key, value, says) in [
        (
            "limit",
            "-1",
            "'limit' must be a non-negative integer, got '-1'",
        ),
        ("offset", "x", "'offset' must be a non-negative integer"),
        ("order", "up", "'order' must be 'asc' or 'desc', got 'up'"),
    ] {
        let err = TasksQuery::parse(&[(key.to_owned(), value.to_owned())]).expect_err(key);
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn state_summary_counts_tasks_as_mesos_does() {
    let g = golden_with_offer();
    let ours = state_summary(&g.m);
    let theirs = body("legacy-endpoints/11-master-state-summary.json");
    assert_shape(&ours, &theirs, &[], &[]);
    let counts = |v: &Value| -> Vec<Value> {
        [
            "TASK_RUNNING",
            "TASK_FINISHED",
            "TASK_FAILED",
            "TASK_STAGING",
        ]
        .iter()
        .map(|s| v[*s].clone())
        .collect()
    };
    assert_eq!(counts(&ours["slaves"][0]), counts(&theirs["slaves"][0]));
    let theirs = by_id(&theirs["frameworks"]);
    for (id, fw) in by_id(&ours["frameworks"]) {
        assert_eq!(counts(&fw), counts(&theirs[&id]), "{id}");
        assert_eq!(fw["slave_ids"], theirs[&id]["slave_ids"]);
    }
}

#[test]
fn roles_and_flags_match_mesos() {
    let g = golden_with_offer();
    let mut ours = roles(&g.m);
    let mut theirs = body("legacy-endpoints/12-master-roles.json");
    for v in [&mut ours, &mut theirs] {
        if let Some(f) = v["roles"][0]["frameworks"].as_array_mut() {
            f.sort_by_key(|x| x.as_str().map(str::to_owned));
        }
    }
    assert_eq!(ours, theirs);

    let (v, f) = (version(), flag_list());
    let ctx = Context {
        version: &v,
        flags: &f,
        start_time: 0.0,
    };
    assert_shape(
        &flags(&ctx),
        &body("legacy-endpoints/35-master-flags.json"),
        &[],
        &["flags"],
    );
}

#[test]
fn resources_read_as_maps() {
    let mut reserved = Resource::scalar("cpus", 2.0);
    reserved.role = Some("web".into());
    let list = vec![
        Resource::scalar("cpus", 0.1),
        Resource::scalar("cpus", 0.2),
        reserved,
        Resource::ranges("ports", &[(5, 6), (1, 3), (4, 4), (10, 11)]),
        Resource::set("zones", &["b", "a"]),
    ];
    assert_eq!(
        resources(&list),
        json!({"cpus": 2.3, "gpus": 0.0, "mem": 0.0, "disk": 0.0,
               "ports": "[1-6, 10-11]", "zones": "{a, b}"})
    );
    assert_eq!(
        resources(&[]),
        json!({"cpus": 0.0, "gpus": 0.0, "mem": 0.0, "disk": 0.0})
    );
}

#[test]
fn jsonp_callbacks_must_be_names() {
    assert_eq!(jsonp("cb", "{}"), "cb({})");
    for good in ["cb", "angular.callbacks._0", "$jsonp1", "a_b.c$"] {
        assert!(valid_callback(good), "{good}");
    }
    for bad in [
        "",
        "alert(1)//",
        "a b",
        "1cb",
        "a..b",
        "x;y",
        &"a".repeat(200),
    ] {
        assert!(!valid_callback(bad), "{bad}");
    }
}
