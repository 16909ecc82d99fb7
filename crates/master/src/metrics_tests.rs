//! The metrics against Mesos 1.11's snapshot, and their Prometheus form.

use std::collections::BTreeMap;

use serde_json::Value;

use super::*;
use crate::testkit::{body, golden};

fn mesos_snapshot() -> serde_json::Map<String, Value> {
    body("legacy-endpoints/10-master-metrics-snapshot.json")
        .as_object()
        .cloned()
        .expect("flat object")
}

#[test]
fn names_are_mesoss() {
    let g = golden();
    let mesos = mesos_snapshot();
    let ours = snapshot(&g.m, 1.0, 0);
    assert!(ours.len() > 60, "{}", ours.len());
    let unknown: Vec<&str> = ours
        .iter()
        .map(|m| m.name.as_str())
        .filter(|n| !mesos.contains_key(*n))
        .collect();
    assert!(unknown.is_empty(), "not Mesos names: {unknown:?}");
    let mut sorted: Vec<&str> = ours.iter().map(|m| m.name.as_str()).collect();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ours.len(), "sorted by name, no duplicates");
}

#[test]
fn values_agree_with_mesos_for_the_same_cluster() {
    let mut g = golden();
    // The capture had the tasks' leftovers on offer.
    g.m.allocate(crate::testkit::at(g.start, 100.0), true);
    let mesos = mesos_snapshot();
    let ours: BTreeMap<String, f64> = snapshot(&g.m, 17.5, 0)
        .into_iter()
        .map(|m| (m.name, m.value))
        .collect();
    // The capture's cluster, fed the same launches and updates, reads the same; its
    // refused launches and the framework calls of the capture were not replayed.
    for name in [
        "master/elected",
        "master/slaves_active",
        "master/slaves_connected",
        "master/slaves_disconnected",
        "master/slaves_inactive",
        "master/slaves_unreachable",
        "master/frameworks_active",
        "master/frameworks_connected",
        "master/frameworks_disconnected",
        "master/frameworks_inactive",
        "master/outstanding_offers",
        "master/tasks_running",
        "master/tasks_staging",
        "master/tasks_starting",
        "master/tasks_killing",
        "master/tasks_unreachable",
        "master/tasks_finished",
        "master/tasks_failed",
        "master/tasks_killed",
        "master/tasks_lost",
        "master/cpus_total",
        "master/cpus_used",
        "master/cpus_percent",
        "master/mem_total",
        "master/mem_used",
        "master/mem_percent",
        "master/disk_total",
        "master/disk_used",
        "master/gpus_total",
        "master/messages_status_update",
        "master/valid_status_updates",
        "master/slave_registrations",
        "master/operator_event_stream_subscribers",
    ] {
        assert_eq!(Some(&ours[name]), mesos[name].as_f64().as_ref(), "{name}");
    }
    assert_eq!(ours["master/uptime_secs"], 17.5);
}

#[test]
fn the_three_forms_carry_the_same_values() {
    let g = golden();
    let all = snapshot(&g.m, 2.0, 3);
    let flat = to_json(&all);
    let listed = to_get_metrics(&all);
    let list = listed["metrics"].as_array().expect("list");
    assert_eq!(list.len(), all.len());
    for (m, entry) in all.iter().zip(list) {
        assert_eq!(entry["name"], m.name.as_str());
        assert_eq!(entry["value"].as_f64(), Some(m.value));
        assert_eq!(flat[&m.name].as_f64(), Some(m.value));
    }
    assert_eq!(
        flat["master/operator_event_stream_subscribers"].as_f64(),
        Some(3.0)
    );

    let text = to_prometheus(&all);
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (_, kind) = rest.split_once(' ').expect("type line");
            assert!(matches!(kind, "counter" | "gauge"), "{line}");
        } else if !line.starts_with("# HELP ") {
            let (name, value) = line.split_once(' ').expect("sample");
            samples.insert(name.to_owned(), value.parse::<f64>().expect("number"));
        }
    }
    assert_eq!(samples.len(), all.len());
    for m in &all {
        let name = prometheus_name(&m.name);
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{name}"
        );
        assert_eq!(samples.get(&name), Some(&m.value), "{name}");
        let kind = match m.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name}");
        assert!(text.contains(&format!("# HELP {name} ")), "{name}");
    }
    assert!(text.contains("# TYPE holdfast_master_tasks_finished counter\n"));
    assert!(
        text.contains("\nholdfast_master_tasks_running 2\n"),
        "{text}"
    );
}

#[test]
fn prometheus_names_keep_only_what_prometheus_allows() {
    assert_eq!(
        prometheus_name("master/task_dropped/source_master/reason_invalid_offers"),
        "holdfast_master_task_dropped_source_master_reason_invalid_offers"
    );
    assert_eq!(prometheus_name("a/b-c.d*"), "holdfast_a_b_c_d_");
}
