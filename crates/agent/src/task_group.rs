//! Task groups (LAUNCH_GROUP) and the built-in default executor's rules, as Mesos's
//! default executor applies them. Pure: [`cluster`](crate::cluster) does what these
//! functions decide.
//!
//! - Which executor runs a group: type DEFAULT (or no type and no command) is the
//!   built-in default executor, type CUSTOM (or no type with a command) the framework's.
//! - What the default executor refuses, rather than silently not doing it.
//! - The group policy: when a task of a group fails or is killed, the other tasks of
//!   its group are killed (Mesos: "kill all the remaining child containers if one of them
//!   terminated with a non-zero exit code").
//! - What the executor's container holds: its own resources plus its live tasks', and
//!   limits summed the way Mesos's agent sums them.

use std::collections::BTreeMap;

use holdfast_api::agent::LaunchContainer;
use holdfast_api::scheduler::{ExecutorInfo, TaskInfo, TaskState};
use holdfast_api::v1::{CommandInfo, Resource, Scalar};
use serde::{Deserialize, Serialize};

use crate::registry::ExecutorKind;

/// The kill grace period when neither the KILL nor the task sets one (Mesos's 3 s).
pub const DEFAULT_KILL_GRACE_SECS: u64 = 3;

/// TaskInfo fields the default executor would need to act on and does not.
const UNSUPPORTED_TASK_FIELDS: &[(&str, &str)] = &[
    ("health_check", "a health check"),
    ("check", "a check"),
    ("max_completion_time", "a max_completion_time"),
];

/// Which executor runs a task group, from its `ExecutorInfo`.
pub fn executor_kind(info: &ExecutorInfo) -> Result<ExecutorKind, String> {
    let id = &info.executor_id.value;
    match (info.kind.as_deref(), info.command.is_some()) {
        (Some("DEFAULT"), _) | (None, false) => Ok(ExecutorKind::Default),
        (Some("CUSTOM"), true) | (None, true) => Ok(ExecutorKind::Custom),
        (Some("CUSTOM"), false) => Err(format!(
            "executor '{id}' is of type CUSTOM but has no command to run; give it a command, or use type DEFAULT"
        )),
        (Some(other), _) => Err(format!(
            "executor '{id}' has unknown type '{other}'; use DEFAULT or CUSTOM"
        )),
    }
}

/// Why the default executor cannot run this group, if it cannot: the whole group is
/// refused rather than run without something it asked for.
pub fn refusal(tasks: &[TaskInfo]) -> Option<String> {
    if tasks.is_empty() {
        return Some("the task group has no tasks".into());
    }
    for t in tasks {
        let id = &t.task_id.value;
        if t.executor.is_some() {
            return Some(format!(
                "task '{id}' names an executor; the tasks of a group run in the group's executor, so leave 'executor' out of each task"
            ));
        }
        if t.command.is_none() {
            return Some(format!(
                "task '{id}' has no command; the default executor runs each task's 'command'"
            ));
        }
        for (field, what) in UNSUPPORTED_TASK_FIELDS {
            if t.extra.get(*field).is_some_and(|v| !v.is_null()) {
                return Some(format!(
                    "task '{id}' asks for {what}, which this agent's default executor does not support; leave '{field}' out"
                ));
            }
        }
        if let Some(kind) = t.container.as_ref().and_then(|c| c.kind.as_deref()) {
            if kind != "MESOS" {
                return Some(format!(
                    "task '{id}' asks for a {kind} container; this agent runs MESOS containers only"
                ));
            }
        }
    }
    None
}

/// A task's `limits` (Mesos 1.11 `TaskInfo.limits`), or why they cannot be read.
pub fn task_limits(task: &TaskInfo) -> Result<BTreeMap<String, Scalar>, String> {
    match task.extra.get("limits") {
        None => Ok(BTreeMap::new()),
        Some(l) => serde_json::from_value(l.clone())
            .map_err(|e| format!("task '{}' has invalid limits: {e}", task.task_id.value)),
    }
}

/// The resources of the default executor's container: its own and its live tasks'.
/// The tasks' containers share its cgroup (unless they ask for limits of their own), so
/// this is what all of them together get.
pub fn executor_resources<'a>(
    executor: &[Resource],
    tasks: impl IntoIterator<Item = &'a TaskInfo>,
) -> Vec<Resource> {
    let mut out = executor.to_vec();
    for t in tasks {
        out.extend(t.resources.iter().cloned());
    }
    out
}

/// The `cpus` and `mem` limits of the default executor's container, as Mesos's agent
/// computes them (`computeExecutorLimits`): none unless a task has one; then the sum of
/// the executor's request, each task's limit, and the request of each task without a
/// limit. Any infinite limit makes the sum infinite.
pub fn executor_limits<'a>(
    executor: &[Resource],
    tasks: impl IntoIterator<Item = &'a TaskInfo>,
) -> Result<BTreeMap<String, Scalar>, String> {
    let tasks: Vec<&TaskInfo> = tasks.into_iter().collect();
    let request = |resources: &[Resource], name: &str| -> f64 {
        resources
            .iter()
            .filter(|r| r.name == name)
            .filter_map(|r| r.scalar.map(|s| s.value))
            .sum()
    };
    let mut out = BTreeMap::new();
    let mut parsed = Vec::new();
    for t in &tasks {
        parsed.push((*t, task_limits(t)?));
    }
    for name in ["cpus", "mem"] {
        if !parsed.iter().any(|(_, l)| l.contains_key(name)) {
            continue;
        }
        let mut total = request(executor, name);
        for (t, limits) in &parsed {
            total += match limits.get(name) {
                Some(l) => l.value,
                None => request(&t.resources, name),
            };
        }
        out.insert(name.to_owned(), Scalar { value: total });
    }
    Ok(out)
}

/// The memory the default executor's container was given: `mem` request and limit (MB).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeldMemory {
    pub request: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
}

/// The executor's container's new `resources` and `limits` with memory that never goes
/// below what it `held`: its `memory.max` (the limit, or the request without one) only
/// grows, as Mesos's agent only ever raises a running container's memory limit. Returns
/// them with what the container holds afterwards.
pub fn grow_only_memory(
    mut resources: Vec<Resource>,
    mut limits: BTreeMap<String, Scalar>,
    held: Option<HeldMemory>,
) -> (Vec<Resource>, BTreeMap<String, Scalar>, Option<HeldMemory>) {
    let mem: Vec<&Resource> = resources.iter().filter(|r| r.name == "mem").collect();
    let request: f64 = mem.iter().filter_map(|r| r.scalar.map(|s| s.value)).sum();
    let limit = limits.get("mem").map(|s| s.value);
    let Some(held) = held else {
        let held = (!mem.is_empty() || limit.is_some()).then_some(HeldMemory { request, limit });
        return (resources, limits, held);
    };
    let template = mem
        .first()
        .map(|r| (*r).clone())
        .unwrap_or_else(|| Resource::scalar("mem", 0.0));
    let request = request.max(held.request);
    let limit = match (limit, held.limit) {
        (None, None) => None,
        (new, old) => Some(new.unwrap_or(0.0).max(old.unwrap_or(0.0)).max(request)),
    };
    resources.retain(|r| r.name != "mem");
    if request > 0.0 {
        resources.push(Resource {
            scalar: Some(Scalar { value: request }),
            ..template
        });
    }
    if let Some(l) = limit {
        limits.insert("mem".to_owned(), Scalar { value: l });
    }
    (resources, limits, Some(HeldMemory { request, limit }))
}

/// The program that keeps the default executor's container alive while its tasks run.
///
/// The executor itself is part of the agent, but its tasks' containers are nested in a
/// container of its own, and a container lives as long as its workload. That container
/// holds the executor's resources and its tasks' (they share its cgroup), so an idle
/// process is its workload: it does nothing and uses almost nothing, and the agent kills
/// it once no task remains (reporting the executor's exit as a clean one).
pub fn holder_command() -> CommandInfo {
    CommandInfo {
        shell: Some(false),
        value: Some("sleep".into()),
        // About 68 years; `sleep infinity` is GNU only.
        arguments: vec!["sleep".into(), "2147483647".into()],
        ..CommandInfo::default()
    }
}

/// A task of a group as the group policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub task: String,
    /// Not in a terminal state.
    pub live: bool,
    /// Its kill has already begun.
    pub killing: bool,
}

/// After a task of a group ended in `state`: the other tasks of the group to kill now,
/// or `None` when the policy does not apply. It applies when the task FAILED or was
/// KILLED, unless the group is already being killed or the executor is shutting down
/// (which kills every task anyway). Tasks ended or already being killed are left alone.
pub fn kills_after_end(
    members: &[Member],
    ended: &str,
    state: TaskState,
    group_killing: bool,
    shutting_down: bool,
) -> Option<Vec<String>> {
    if shutting_down
        || group_killing
        || !matches!(state, TaskState::TaskFailed | TaskState::TaskKilled)
    {
        return None;
    }
    Some(
        members
            .iter()
            .filter(|m| m.task != ended && m.live && !m.killing)
            .map(|m| m.task.clone())
            .collect(),
    )
}

/// How each task of a group ends when its group could not be launched whole: none runs
/// on its own. `results` holds each task's launch result and whether a KILL came for it
/// meanwhile. Returns `None` if every launch succeeded.
pub fn failed_launch(
    results: &[(String, Result<(), String>, bool)],
) -> Option<Vec<(String, TaskState, String)>> {
    let (failed, why) = results.iter().find_map(|(t, r, _)| match r {
        Err(why) => Some((t.as_str(), why.as_str())),
        Ok(()) => None,
    })?;
    Some(
        results
            .iter()
            .map(|(task, result, killed)| {
                let (state, message) = match result {
                    Err(e) => (
                        TaskState::TaskFailed,
                        format!("Failed to launch container: {e}"),
                    ),
                    Ok(()) if *killed => (
                        TaskState::TaskKilled,
                        "Killed while its task group was launching".to_owned(),
                    ),
                    Ok(()) => (
                        TaskState::TaskFailed,
                        format!(
                            "Task '{failed}' of its task group could not be launched, so none of the group runs: {why}"
                        ),
                    ),
                };
                (task.clone(), state, message)
            })
            .collect(),
    )
}

/// The LAUNCH_CONTAINER of a task of the default executor, before the agent adds the
/// user and environment. `container` is the task's nested container id.
pub fn task_launch(
    task: &TaskInfo,
    container: holdfast_api::v1::ContainerId,
) -> Result<LaunchContainer, String> {
    Ok(LaunchContainer {
        container_id: container,
        command: task.command.clone(),
        resources: task.resources.clone(),
        container: task.container.clone(),
        limits: task_limits(task)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(v: serde_json::Value) -> TaskInfo {
        let mut base = json!({"name": "t", "task_id": {"value": "t"}, "agent_id": {"value": "a"},
                              "command": {"value": "true"}});
        if let (Some(b), Some(o)) = (base.as_object_mut(), v.as_object()) {
            for (k, x) in o {
                b.insert(k.clone(), x.clone());
            }
        }
        serde_json::from_value(base).expect("task")
    }

    fn executor(v: serde_json::Value) -> ExecutorInfo {
        let mut base = json!({"executor_id": {"value": "e"}});
        if let (Some(b), Some(o)) = (base.as_object_mut(), v.as_object()) {
            for (k, x) in o {
                b.insert(k.clone(), x.clone());
            }
        }
        serde_json::from_value(base).expect("executor")
    }

    fn scalar(name: &str, v: f64) -> serde_json::Value {
        json!({"name": name, "type": "SCALAR", "scalar": {"value": v}})
    }

    #[test]
    fn the_executor_type_picks_who_runs_the_group() {
        let check = |v: serde_json::Value, expect: Result<ExecutorKind, &str>| {
            let got = executor_kind(&executor(v.clone()));
            match expect {
                Ok(k) => assert_eq!(got, Ok(k), "{v}"),
                Err(part) => {
                    let e = got.expect_err("refused");
                    assert!(e.contains(part), "{v}: {e}");
                }
            }
        };
        check(json!({"type": "DEFAULT"}), Ok(ExecutorKind::Default));
        check(json!({}), Ok(ExecutorKind::Default));
        check(
            json!({"type": "CUSTOM", "command": {"value": "./x"}}),
            Ok(ExecutorKind::Custom),
        );
        check(
            json!({"command": {"value": "./x"}}),
            Ok(ExecutorKind::Custom),
        );
        check(json!({"type": "CUSTOM"}), Err("has no command"));
        check(json!({"type": "WEIRD"}), Err("unknown type 'WEIRD'"));
    }

    #[test]
    fn what_the_default_executor_cannot_do_is_refused_by_name() {
        assert_eq!(refusal(&[task(json!({}))]), None);
        assert_eq!(
            refusal(&[task(json!({"container": {"type": "MESOS"}}))]),
            None
        );
        for (extra, part) in [
            (
                json!({"health_check": {"type": "COMMAND"}}),
                "asks for a health check",
            ),
            (json!({"check": {"type": "COMMAND"}}), "asks for a check"),
            (
                json!({"max_completion_time": {"nanoseconds": 1}}),
                "max_completion_time",
            ),
            (
                json!({"container": {"type": "DOCKER"}}),
                "asks for a DOCKER container",
            ),
            (
                json!({"executor": {"executor_id": {"value": "x"}}}),
                "leave 'executor' out",
            ),
        ] {
            let why = refusal(&[task(json!({})), task(extra.clone())]).expect("refused");
            assert!(why.contains(part), "{extra}: {why}");
        }
        let mut no_command = task(json!({}));
        no_command.command = None;
        assert!(refusal(&[no_command])
            .expect("refused")
            .contains("has no command"));
        assert!(refusal(&[]).expect("refused").contains("no tasks"));
    }

    fn member(task: &str, live: bool, killing: bool) -> Member {
        Member {
            task: task.into(),
            live,
            killing,
        }
    }

    #[test]
    fn a_failed_or_killed_task_takes_the_rest_of_its_group_down() {
        let group = [
            member("a", false, false),
            member("b", true, false),
            member("c", true, true),
            member("d", false, false),
            member("e", true, false),
        ];
        for state in [TaskState::TaskFailed, TaskState::TaskKilled] {
            assert_eq!(
                kills_after_end(&group, "a", state, false, false),
                Some(vec!["b".to_owned(), "e".to_owned()]),
                "{state:?}: the live ones not already being killed"
            );
        }
        // A task that finishes leaves the others running.
        assert_eq!(
            kills_after_end(&group, "a", TaskState::TaskFinished, false, false),
            None
        );
        // Once the group is being killed, the ends that follow change nothing.
        assert_eq!(
            kills_after_end(&group, "a", TaskState::TaskKilled, true, false),
            None
        );
        // A shutdown kills every task by itself.
        assert_eq!(
            kills_after_end(&group, "a", TaskState::TaskFailed, false, true),
            None
        );
        // The last task of a group has nobody to take down.
        assert_eq!(
            kills_after_end(
                &[member("a", false, false)],
                "a",
                TaskState::TaskFailed,
                false,
                false
            ),
            Some(vec![])
        );
    }

    #[test]
    fn a_group_that_cannot_launch_whole_fails_whole() {
        assert_eq!(
            failed_launch(&[("a".into(), Ok(()), false), ("b".into(), Ok(()), true)]),
            None
        );
        let out = failed_launch(&[
            ("a".into(), Ok(()), false),
            ("b".into(), Err("no such program 'nope'".into()), false),
            ("c".into(), Ok(()), true),
        ])
        .expect("failed");
        assert_eq!(out[0].0, "a");
        assert_eq!(out[0].1, TaskState::TaskFailed);
        assert!(
            out[0].2.contains("Task 'b'") && out[0].2.contains("no such program"),
            "{}",
            out[0].2
        );
        assert_eq!(
            (out[1].1, out[1].2.as_str()),
            (
                TaskState::TaskFailed,
                "Failed to launch container: no such program 'nope'"
            )
        );
        assert_eq!(out[2].1, TaskState::TaskKilled, "a KILL still wins");
    }

    #[test]
    fn the_executor_container_holds_its_own_and_its_tasks_resources() {
        let exec: Vec<Resource> =
            serde_json::from_value(json!([scalar("cpus", 0.1), scalar("mem", 32.0)]))
                .expect("resources");
        let a = task(json!({"resources": [scalar("cpus", 0.5), scalar("mem", 64.0)]}));
        let b = task(
            json!({"resources": [scalar("cpus", 0.25), scalar("mem", 128.0)],
                            "limits": {"mem": {"value": 256.0}}}),
        );
        let all = executor_resources(&exec, [&a, &b]);
        let sum = |name: &str| -> f64 {
            all.iter()
                .filter(|r| r.name == name)
                .filter_map(|r| r.scalar.map(|s| s.value))
                .sum()
        };
        assert!((sum("cpus") - 0.85).abs() < 1e-9);
        assert!((sum("mem") - 224.0).abs() < 1e-9);

        // No task has limits: the container gets none either.
        assert_eq!(executor_limits(&exec, [&a]), Ok(BTreeMap::new()));
        // One has a mem limit: executor request + that limit + the other's request.
        let l = executor_limits(&exec, [&a, &b]).expect("limits");
        assert_eq!(l.keys().collect::<Vec<_>>(), ["mem"]);
        assert!((l["mem"].value - (32.0 + 64.0 + 256.0)).abs() < 1e-9);
        // An infinite limit makes the whole sum infinite.
        let c = task(json!({"limits": {"cpus": {"value": "Infinity"}}}));
        let l = executor_limits(&exec, [&a, &c]).expect("limits");
        assert!(l["cpus"].value.is_infinite());
        let bad = task(json!({"task_id": {"value": "bad"}, "limits": {"mem": "lots"}}));
        assert!(executor_limits(&exec, [&bad])
            .expect_err("bad limits")
            .contains("task 'bad' has invalid limits"));
    }

    #[test]
    fn the_executor_container_memory_only_grows() {
        let mem = |v: f64| -> Resource { serde_json::from_value(scalar("mem", v)).expect("mem") };
        let cpus =
            |v: f64| -> Resource { serde_json::from_value(scalar("cpus", v)).expect("cpus") };
        let total = |r: &[Resource], name: &str| -> f64 {
            r.iter()
                .filter(|x| x.name == name)
                .filter_map(|x| x.scalar.map(|s| s.value))
                .sum()
        };
        // First sizing: as asked, and remembered.
        let (r, l, held) =
            grow_only_memory(vec![cpus(1.0), mem(32.0), mem(64.0)], BTreeMap::new(), None);
        assert!((total(&r, "mem") - 96.0).abs() < 1e-9);
        assert!(l.is_empty());
        assert_eq!(
            held,
            Some(HeldMemory {
                request: 96.0,
                limit: None
            })
        );
        // A task ended: cpus shrink, memory stays.
        let (r, l, held) = grow_only_memory(vec![cpus(0.5), mem(32.0)], BTreeMap::new(), held);
        assert!((total(&r, "cpus") - 0.5).abs() < 1e-9);
        assert!((total(&r, "mem") - 96.0).abs() < 1e-9);
        assert_eq!(r.iter().filter(|x| x.name == "mem").count(), 1);
        assert!(l.is_empty());
        // A bigger group: memory grows.
        let (r, _, held) = grow_only_memory(vec![mem(32.0), mem(128.0)], BTreeMap::new(), held);
        assert!((total(&r, "mem") - 160.0).abs() < 1e-9);
        assert_eq!(
            held,
            Some(HeldMemory {
                request: 160.0,
                limit: None
            })
        );
        // A limit below what memory.max is now (the request, 160) is raised to it.
        let limits = BTreeMap::from([("mem".to_owned(), Scalar { value: 100.0 })]);
        let (_, l, held) = grow_only_memory(vec![mem(64.0)], limits, held);
        assert!((l["mem"].value - 160.0).abs() < 1e-9);
        // With the limit gone, it is kept: memory.max does not fall back to the request.
        let (r, l, _) = grow_only_memory(vec![mem(64.0)], BTreeMap::new(), held);
        assert!((l["mem"].value - 160.0).abs() < 1e-9);
        assert!((total(&r, "mem") - 160.0).abs() < 1e-9);
        // No memory at all, ever: nothing to hold.
        assert_eq!(
            grow_only_memory(vec![cpus(1.0)], BTreeMap::new(), None).2,
            None
        );
    }

    #[test]
    fn the_holder_runs_without_a_shell() {
        let c = holder_command();
        assert!(!c.is_shell());
        assert_eq!(c.arguments[0], "sleep");
    }
}
