//! The master's metrics: one list, read off the state, written three ways
//! (`/metrics/snapshot`, GET_METRICS and Prometheus's text format at `/metrics`). Pure.
//!
//! Names are Mesos's (`master/tasks_running`, ...), so tools written for Mesos find
//! them, and only what Holdfast measures is listed: none of Mesos's metrics of
//! features it lacks (revocable resources, operations, maintenance, quota, registrar).
//! Counters count since the master started.
//!
//! Prometheus names are the Mesos names with `/` (and anything else Prometheus does
//! not allow) turned into `_`, behind the prefix `holdfast_`: `holdfast_master_tasks_running`.
//! Not `mesos_`: exporters for Mesos publish `mesos_*` series of other shapes, and a
//! Prometheus that scrapes both during a migration must not see two meanings under one
//! name.

use std::fmt::Write as _;

use holdfast_api::scheduler::TaskState;
use serde_json::{json, Map, Value};

use crate::operator::registered_agents;
use crate::state::{state_name, AgentState, Master};

/// Prefix of every Prometheus metric name.
pub const PROMETHEUS_PREFIX: &str = "holdfast_";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (since the master started).
    Counter,
    /// A value now.
    Gauge,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Mesos's name, e.g. `master/tasks_running`.
    pub name: String,
    pub value: f64,
    pub kind: Kind,
    pub help: String,
}

/// Counters the state machine keeps (names without `master/`), with their help.
const COUNTERS: &[(&str, &str)] = &[
    (
        "messages_register_framework",
        "SUBSCRIBE calls of new frameworks",
    ),
    (
        "messages_reregister_framework",
        "SUBSCRIBE calls of frameworks the master knows (failovers)",
    ),
    (
        "messages_unregister_framework",
        "TEARDOWN calls of frameworks",
    ),
    ("messages_launch_tasks", "ACCEPT calls of frameworks"),
    ("messages_decline_offers", "DECLINE calls of frameworks"),
    ("messages_revive_offers", "REVIVE calls of frameworks"),
    ("messages_suppress_offers", "SUPPRESS calls of frameworks"),
    ("messages_kill_task", "KILL calls of frameworks"),
    (
        "messages_status_update_acknowledgement",
        "ACKNOWLEDGE calls of frameworks",
    ),
    ("messages_reconcile_tasks", "RECONCILE calls of frameworks"),
    (
        "messages_framework_to_executor",
        "MESSAGE calls of frameworks",
    ),
    ("messages_register_slave", "Registrations of new agents"),
    (
        "messages_reregister_slave",
        "Registrations of agents with an id they were given",
    ),
    ("messages_status_update", "Task status updates from agents"),
    (
        "messages_executor_to_framework",
        "Messages from executors to frameworks",
    ),
    (
        "messages_exited_executor",
        "Executor exits reported by agents",
    ),
    (
        "valid_status_updates",
        "Status updates for tasks the master knows",
    ),
    (
        "invalid_status_updates",
        "Status updates for tasks the master does not know",
    ),
    (
        "valid_status_update_acknowledgements",
        "Acknowledgements for tasks the master knows",
    ),
    (
        "invalid_status_update_acknowledgements",
        "Acknowledgements for tasks the master does not know",
    ),
    (
        "valid_framework_to_executor_messages",
        "Framework messages passed to a connected agent",
    ),
    (
        "invalid_framework_to_executor_messages",
        "Framework messages for an agent that is not connected",
    ),
    (
        "valid_executor_to_framework_messages",
        "Executor messages for frameworks the master knows",
    ),
    (
        "invalid_executor_to_framework_messages",
        "Executor messages for frameworks the master does not know",
    ),
    ("slave_registrations", "Agents registered"),
    ("slave_reregistrations", "Agents registered again"),
    ("slave_removals", "Agents removed from the registered ones"),
    (
        "slave_removals/reason_unhealthy",
        "Agents removed because they stopped answering pings or did not register again \
         after the master started",
    ),
    (
        "slave_unreachable_scheduled",
        "Agents the master decided to mark unreachable",
    ),
    (
        "slave_unreachable_completed",
        "Agents marked unreachable (at once: the marking is not rate limited)",
    ),
    (
        "slave_unreachable_canceled",
        "Markings unreachable called off (never: they are not delayed)",
    ),
    (
        "recovery_slave_removals",
        "Agents recovered from the registry that did not register again within \
         --agent_reregister_timeout",
    ),
];

/// Task states counted as tasks now (gauges); the terminal ones are counters.
const ACTIVE_STATES: &[TaskState] = &[
    TaskState::TaskStaging,
    TaskState::TaskStarting,
    TaskState::TaskRunning,
    TaskState::TaskKilling,
    TaskState::TaskUnreachable,
];

const TERMINAL_STATES: &[TaskState] = &[
    TaskState::TaskFinished,
    TaskState::TaskFailed,
    TaskState::TaskKilled,
    TaskState::TaskLost,
    TaskState::TaskError,
    TaskState::TaskDropped,
    TaskState::TaskGone,
    TaskState::TaskGoneByOperator,
];

/// The scalar resources whose totals Mesos reports.
const RESOURCES: &[&str] = &["cpus", "gpus", "mem", "disk"];

fn short(state: TaskState) -> String {
    state_name(state)
        .trim_start_matches("TASK_")
        .to_ascii_lowercase()
}

/// Every metric now, sorted by name. `uptime_secs` and the number of operator
/// subscribers come from the HTTP layer, which owns the clock and the streams.
pub fn snapshot(m: &Master, uptime_secs: f64, operator_subscribers: usize) -> Vec<Metric> {
    let mut out = Vec::new();
    let mut gauge = |name: &str, value: f64, help: &str| {
        out.push(Metric {
            name: format!("master/{name}"),
            value,
            kind: Kind::Gauge,
            help: help.to_owned(),
        });
    };
    gauge(
        "uptime_secs",
        uptime_secs,
        "Seconds since the master started",
    );
    gauge(
        "elected",
        1.0,
        "Whether this master leads (1: Holdfast runs a single master)",
    );

    let agents = |f: &dyn Fn(&crate::state::Agent) -> bool| {
        m.agents.values().filter(|a| f(a)).count() as f64
    };
    let connected = agents(&|a| a.state == AgentState::Active && a.stream.is_some());
    let disconnected = agents(&|a| a.state == AgentState::Active && a.stream.is_none());
    gauge(
        "slaves_connected",
        connected,
        "Registered agents with a stream to the master",
    );
    gauge(
        "slaves_disconnected",
        disconnected,
        "Registered agents whose stream broke",
    );
    gauge(
        "slaves_active",
        connected,
        "Agents whose resources are offered",
    );
    gauge(
        "slaves_inactive",
        disconnected,
        "Registered agents whose resources are not offered",
    );
    gauge(
        "slaves_unreachable",
        m.registry().unreachable.len() as f64,
        "Agents marked unreachable that have not registered again (the registry's list)",
    );

    let frameworks = m.frameworks.len() as f64;
    let fw_connected = m.frameworks.values().filter(|f| f.connected()).count() as f64;
    gauge(
        "frameworks_connected",
        fw_connected,
        "Frameworks with a SUBSCRIBE stream",
    );
    gauge(
        "frameworks_disconnected",
        frameworks - fw_connected,
        "Frameworks whose stream broke, within their failover timeout",
    );
    gauge(
        "frameworks_active",
        fw_connected,
        "Frameworks that get offers",
    );
    gauge(
        "frameworks_inactive",
        frameworks - fw_connected,
        "Frameworks that get no offers while disconnected",
    );
    gauge(
        "outstanding_offers",
        m.offers.len() as f64,
        "Offers made and not yet answered",
    );
    gauge(
        "operator_event_stream_subscribers",
        operator_subscribers as f64,
        "Operator API SUBSCRIBE streams",
    );

    for state in ACTIVE_STATES {
        let n = m
            .frameworks
            .values()
            .flat_map(|f| f.tasks.values())
            .filter(|t| t.state == *state)
            .count();
        gauge(
            &format!("tasks_{}", short(*state)),
            n as f64,
            &format!("Tasks in {} now", state_name(*state)),
        );
    }

    for name in RESOURCES {
        let mut total = 0.0;
        let mut used = 0.0;
        for a in registered_agents(m) {
            total += a.total.scalar(name);
            used += a.used.scalar(name);
        }
        let percent = if total > 0.0 { used / total } else { 0.0 };
        gauge(
            &format!("{name}_total"),
            total,
            &format!("{name} of the registered agents"),
        );
        gauge(
            &format!("{name}_used"),
            used,
            &format!("{name} that tasks and executors hold"),
        );
        gauge(
            &format!("{name}_percent"),
            percent,
            &format!("Share of {name} that tasks and executors hold (0 to 1)"),
        );
    }

    let mut counter = |name: String, help: String| {
        let value = m.counter(&name) as f64;
        out.push(Metric {
            name: format!("master/{name}"),
            value,
            kind: Kind::Counter,
            help,
        });
    };
    for state in TERMINAL_STATES {
        counter(
            format!("tasks_{}", short(*state)),
            format!("Tasks that ended in {}", state_name(*state)),
        );
    }
    for (name, help) in COUNTERS {
        counter((*name).to_owned(), (*help).to_owned());
    }
    // `task_<state>/source_<source>/reason_<reason>`, as updates name them.
    for name in m.counters.keys().filter(|k| k.starts_with("task_")) {
        let parts: Vec<&str> = name.split('/').collect();
        let help = match parts.as_slice() {
            [state, source, reason] => format!(
                "Tasks that went {} by an update from {} with {}",
                state.to_ascii_uppercase(),
                source.to_ascii_uppercase(),
                reason.to_ascii_uppercase()
            ),
            _ => "Task state changes".to_owned(),
        };
        counter(name.clone(), help);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The flat object of `/metrics/snapshot`: name to value.
pub fn to_json(metrics: &[Metric]) -> Value {
    let map: Map<String, Value> = metrics
        .iter()
        .map(|m| (m.name.clone(), json!(m.value)))
        .collect();
    Value::Object(map)
}

/// The `metrics` list of a GET_METRICS answer.
pub fn to_get_metrics(metrics: &[Metric]) -> Value {
    let list: Vec<Value> = metrics
        .iter()
        .map(|m| json!({"name": m.name, "value": m.value}))
        .collect();
    json!({ "metrics": list })
}

/// A metric's Prometheus name: the prefix, then the Mesos name with every character
/// Prometheus does not allow in a name turned into `_`.
pub fn prometheus_name(name: &str) -> String {
    let mut out = String::from(PROMETHEUS_PREFIX);
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            c
        } else {
            '_'
        }
    }));
    out
}

/// Prometheus's text exposition format (version 0.0.4), with HELP and TYPE lines.
pub fn to_prometheus(metrics: &[Metric]) -> String {
    let mut out = String::new();
    for m in metrics {
        let name = prometheus_name(&m.name);
        let kind = match m.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        // HELP text escapes backslashes and newlines.
        let help = m.help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP {name} {help} (Mesos: {})", m.name);
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {}", m.value);
    }
    out
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
