//! The master's state machine driven directly: frameworks, agents, offers and tasks.

use std::time::{Duration, Instant};

use holdfast_api::internal::{AgentEvent, AgentInfo, TaskReport};
use holdfast_api::scheduler::{
    Accept, CallBody, Capability, Decline, Event, Filters, FrameworkInfo, Id, MasterInfo,
    Operation, ReconcileTask, Subscribe, TaskInfo, TaskState, TaskStatus,
};
use holdfast_api::v1::Resource;
use holdfast_resources::Resources;

use super::*;

struct World {
    m: Master,
    start: Instant,
    secs: f64,
}

impl World {
    fn new() -> World {
        let info = MasterInfo::new(
            "m",
            std::net::Ipv4Addr::LOCALHOST,
            "localhost",
            5050,
            "0.1.0",
        );
        World {
            m: Master::new(info, Config::default()),
            start: Instant::now(),
            secs: 0.0,
        }
    }

    fn now(&self) -> Now {
        Now {
            mono: self.start + Duration::from_secs_f64(self.secs),
            wall: 1_700_000_000.0 + self.secs,
        }
    }

    fn advance(&mut self, secs: f64) {
        self.secs += secs;
    }

    fn framework(&mut self, name: &str, partition_aware: bool) -> String {
        let mut info = framework_info(name);
        if partition_aware {
            info.capabilities.push(Capability {
                kind: Some("PARTITION_AWARE".to_owned()),
            });
        }
        let now = self.now();
        let id = self
            .m
            .subscribe_framework(
                None,
                Subscribe {
                    framework_info: info,
                    suppressed_roles: Vec::new(),
                },
                format!("stream-{name}"),
                now,
            )
            .expect("subscribe");
        let out = self.m.take_outputs();
        assert!(matches!(
            &out[0],
            Output::Framework {
                event: Event::Subscribed { .. },
                ..
            }
        ));
        assert!(matches!(
            &out[1],
            Output::Framework {
                event: Event::Heartbeat,
                ..
            }
        ));
        id
    }

    fn agent(&mut self, host: &str, resources: &str) -> String {
        let now = self.now();
        let id = self
            .m
            .subscribe_agent(
                None,
                agent_info(host, resources),
                Vec::new(),
                format!("astream-{host}"),
                now,
            )
            .expect("agent");
        let out = self.m.take_outputs();
        assert!(
            out.iter().any(|o| matches!(
                o,
                Output::Agent {
                    event: AgentEvent::Registered { .. },
                    ..
                }
            )),
            "{out:?}"
        );
        id
    }

    /// Runs an allocation and returns the offers each framework got.
    fn offers(&mut self) -> Vec<(String, holdfast_api::scheduler::Offer)> {
        let now = self.now();
        self.m.allocate(now, true);
        self.m
            .take_outputs()
            .into_iter()
            .flat_map(|o| match o {
                Output::Framework {
                    framework,
                    event: Event::Offers(list),
                } => list.into_iter().map(|x| (framework.clone(), x)).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn call(&mut self, fw: &str, body: CallBody) -> Vec<Output> {
        let now = self.now();
        self.m.framework_call(fw, body, now).expect("call");
        self.m.take_outputs()
    }
}

fn framework_info(name: &str) -> FrameworkInfo {
    serde_json::from_value(serde_json::json!({"user": "root", "name": name})).expect("info")
}

fn agent_info(host: &str, resources: &str) -> AgentInfo {
    AgentInfo {
        hostname: host.to_owned(),
        port: 5051,
        resources: Resources::parse(resources, "*")
            .expect("resources")
            .into_vec(),
        attributes: Vec::new(),
        domain: None,
    }
}

fn task(id: &str, agent: &str, cpus: f64, mem: f64) -> TaskInfo {
    let mut cpu = Resource::scalar("cpus", cpus);
    cpu.allocation_info = Some(holdfast_api::v1::AllocationInfo {
        role: Some("*".to_owned()),
    });
    let mut m = Resource::scalar("mem", mem);
    m.allocation_info = cpu.allocation_info.clone();
    serde_json::from_value(serde_json::json!({
        "name": id, "task_id": {"value": id}, "agent_id": {"value": agent},
        "resources": [cpu, m], "command": {"value": "true"}
    }))
    .expect("task")
}

fn launch(offer: &str, tasks: Vec<TaskInfo>, refuse: Option<f64>) -> CallBody {
    CallBody::Accept(Accept {
        offer_ids: vec![Id::new(offer)],
        operations: vec![Operation::Launch(tasks)],
        filters: Filters {
            refuse_seconds: refuse,
        },
    })
}

fn updates(out: &[Output]) -> Vec<TaskStatus> {
    out.iter()
        .filter_map(|o| match o {
            Output::Framework {
                event: Event::Update(s),
                ..
            } => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn agent_events(out: &[Output]) -> Vec<AgentEvent> {
    out.iter()
        .filter_map(|o| match o {
            Output::Agent { event, .. } => Some(event.clone()),
            _ => None,
        })
        .collect()
}

fn status(task: &str, state: TaskState, uuid: Option<&str>) -> TaskStatus {
    serde_json::from_value(serde_json::json!({
        "task_id": {"value": task}, "state": state, "source": "SOURCE_EXECUTOR",
        "uuid": uuid, "timestamp": 1.0
    }))
    .expect("status")
}

const UUID_A: &str = "knnFONfHRvGmQM8etzVMRQ==";

#[test]
fn a_task_goes_from_offer_to_acknowledged_finish() {
    let mut w = World::new();
    let fw = w.framework("f", true);
    let agent = w.agent("h1", "cpus:4;mem:4096;ports:[31000-32000]");
    let offers = w.offers();
    assert_eq!(offers.len(), 1);
    let (to, offer) = &offers[0];
    assert_eq!(to, &fw);
    let offered = Resources::new(offer.resources.clone()).expect("offered");
    assert_eq!(offered.scalar("cpus"), 4.0);
    assert_eq!(offered.scalar("mem"), 4096.0);
    assert!(offer
        .resources
        .iter()
        .all(|r| r.role.as_deref() == Some("*")
            && r.allocation_info.as_ref().and_then(|a| a.role.as_deref()) == Some("*")));

    let out = w.call(
        &fw,
        launch(
            &offer.id.value,
            vec![task("t1", &agent, 1.0, 128.0)],
            Some(0.0),
        ),
    );
    let run = agent_events(&out);
    assert!(
        matches!(&run[..], [AgentEvent::RunTask { task, .. }] if task.task_id.value == "t1"),
        "{run:?}"
    );
    assert_eq!(
        w.m.frameworks[&fw].tasks["t1"].state,
        TaskState::TaskStaging
    );

    // What the task does not use is offered again.
    let again = w.offers();
    assert_eq!(again.len(), 1);
    let left = Resources::new(again[0].1.resources.clone()).expect("left");
    assert_eq!(left.scalar("cpus"), 3.0);
    assert_eq!(left.scalar("mem"), 3968.0);

    w.m.agent_update(
        &agent,
        &fw,
        status("t1", TaskState::TaskRunning, Some(UUID_A)),
    );
    let out = w.m.take_outputs();
    let u = updates(&out);
    assert_eq!(u.len(), 1);
    assert_eq!(
        u[0].agent_id.as_ref().map(|a| a.value.as_str()),
        Some(agent.as_str())
    );
    assert_eq!(u[0].uuid.as_deref(), Some(UUID_A));

    let ack = |uuid: &str| {
        CallBody::Acknowledge(holdfast_api::scheduler::Acknowledge {
            agent_id: Id::new(&agent),
            task_id: Id::new("t1"),
            uuid: holdfast_api::base64::decode(uuid).expect("uuid"),
        })
    };
    let out = w.call(&fw, ack(UUID_A));
    assert!(
        matches!(&agent_events(&out)[..], [AgentEvent::Acknowledge { uuid, .. }] if uuid == UUID_A)
    );

    let finished_uuid = "AAAAAAAAAAAAAAAAAAAAAA==";
    w.m.agent_update(
        &agent,
        &fw,
        status("t1", TaskState::TaskFinished, Some(finished_uuid)),
    );
    w.m.take_outputs();
    assert!(
        w.m.agents[&agent].used.is_empty(),
        "resources freed at the terminal update"
    );
    // Still listed until acknowledged; then completed.
    assert!(w.m.frameworks[&fw].tasks.contains_key("t1"));
    w.call(&fw, ack(finished_uuid));
    assert!(w.m.frameworks[&fw].tasks.is_empty());
    assert_eq!(w.m.frameworks[&fw].completed.len(), 1);
}

#[test]
fn a_task_larger_than_its_offer_is_refused_with_a_reason() {
    let mut w = World::new();
    let fw = w.framework("f", true);
    let agent = w.agent("h1", "cpus:4;mem:4096");
    let offer = w.offers().remove(0).1;
    let out = w.call(
        &fw,
        launch(
            &offer.id.value,
            vec![task("big", &agent, 100.0, 32.0)],
            None,
        ),
    );
    let u = updates(&out);
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].state, TaskState::TaskError);
    assert_eq!(u[0].reason.as_deref(), Some("REASON_TASK_INVALID"));
    assert_eq!(u[0].uuid, None);
    assert_eq!(
        u[0].message.as_deref(),
        Some(
            "Total resources cpus(allocated: *):100; mem(allocated: *):32 required by task and \
              its executor is more than available cpus(allocated: *):4; mem(allocated: *):4096"
        )
    );
    assert!(agent_events(&out).is_empty());
    assert!(w.m.frameworks[&fw].tasks.is_empty());
}

#[test]
fn invalid_offers_drop_or_lose_the_tasks() {
    for (partition_aware, state) in [(true, TaskState::TaskDropped), (false, TaskState::TaskLost)] {
        let mut w = World::new();
        let fw = w.framework("f", partition_aware);
        let agent = w.agent("h1", "cpus:4;mem:4096");
        let out = w.call(
            &fw,
            launch(
                "no-such-offer-O999",
                vec![task("t", &agent, 1.0, 32.0)],
                None,
            ),
        );
        let u = updates(&out);
        assert_eq!(u[0].state, state);
        assert_eq!(
            u[0].message.as_deref(),
            Some("Task launched with invalid offers: Offer no-such-offer-O999 is no longer valid")
        );
        assert_eq!(u[0].reason.as_deref(), Some("REASON_INVALID_OFFERS"));
    }
}

#[test]
fn declined_resources_wait_out_the_filter_unless_revived() {
    let mut w = World::new();
    let fw = w.framework("f", true);
    w.agent("h1", "cpus:4;mem:4096");
    let offer = w.offers().remove(0).1;
    w.call(
        &fw,
        CallBody::Decline(Decline {
            offer_ids: vec![offer.id.clone()],
            filters: Filters {
                refuse_seconds: Some(10.0),
            },
        }),
    );
    assert!(w.offers().is_empty(), "filtered");
    w.advance(11.0);
    assert_eq!(w.offers().len(), 1, "filter expired");
    let offer = w.offers_or_existing();
    w.call(
        &fw,
        CallBody::Decline(Decline {
            offer_ids: vec![Id::new(&offer)],
            filters: Filters {
                refuse_seconds: Some(1000.0),
            },
        }),
    );
    assert!(w.offers().is_empty());
    w.call(&fw, CallBody::Revive(Vec::new()));
    assert_eq!(w.offers().len(), 1, "revive clears filters");
}

#[test]
fn a_declined_remnant_does_not_hold_back_what_a_finished_task_frees() {
    let mut w = World::new();
    let fw = w.framework("f", true);
    let agent = w.agent("h1", "cpus:1;mem:1024");
    let offer = w.offers().remove(0).1;
    w.call(
        &fw,
        launch(
            &offer.id.value,
            vec![task("t1", &agent, 1.0, 32.0)],
            Some(0.0),
        ),
    );
    // The task took every cpu; the mem left is offered, and declined for an hour.
    let remnant = w.offers().remove(0).1;
    let left = Resources::new(remnant.resources.clone()).expect("left");
    assert_eq!((left.scalar("cpus"), left.scalar("mem")), (0.0, 992.0));
    w.call(
        &fw,
        CallBody::Decline(Decline {
            offer_ids: vec![remnant.id.clone()],
            filters: Filters {
                refuse_seconds: Some(3600.0),
            },
        }),
    );
    assert!(w.offers().is_empty(), "the remnant stays refused");

    // Once the task ends the agent has more than was refused, and Mesos offers it again.
    w.m.agent_update(
        &agent,
        &fw,
        status("t1", TaskState::TaskFinished, Some(UUID_A)),
    );
    w.m.take_outputs();
    let offers = w.offers();
    assert_eq!(offers.len(), 1, "the freed cpu is offered");
    let all = Resources::new(offers[0].1.resources.clone()).expect("offered");
    assert_eq!((all.scalar("cpus"), all.scalar("mem")), (1.0, 1024.0));
}

impl World {
    /// A partition-aware framework "f" with task `id` launched on agent "h1" (STAGING).
    fn with_staged_task(id: &str) -> (World, String, String) {
        let mut w = World::new();
        let fw = w.framework("f", true);
        let agent = w.agent("h1", "cpus:4;mem:4096");
        let offer = w.offers().remove(0).1;
        let out = w.call(
            &fw,
            launch(&offer.id.value, vec![task(id, &agent, 1.0, 32.0)], None),
        );
        assert!(
            matches!(&agent_events(&out)[..], [AgentEvent::RunTask { .. }]),
            "{out:?}"
        );
        (w, fw, agent)
    }

    fn offers_or_existing(&self) -> String {
        self.m
            .offers
            .keys()
            .next()
            .cloned()
            .expect("an outstanding offer")
    }
}

#[test]
fn two_frameworks_share_two_agents() {
    let mut w = World::new();
    let a = w.framework("a", true);
    let b = w.framework("b", true);
    w.agent("h1", "cpus:4;mem:4096");
    w.agent("h2", "cpus:4;mem:4096");
    let offers = w.offers();
    let mut to: Vec<&str> = offers.iter().map(|(f, _)| f.as_str()).collect();
    to.sort();
    assert_eq!(to, vec![a.as_str(), b.as_str()]);
}

#[test]
fn an_agent_that_stops_answering_becomes_unreachable_and_is_readmitted() {
    let mut w = World::new();
    let aware = w.framework("aware", true);
    let legacy = w.framework("legacy", false);
    let agent = w.agent("h1", "cpus:4;mem:4096");
    let offers = w.offers();
    for (fw, offer) in &offers {
        let id = if fw == &aware { "ta" } else { "tl" };
        w.call(
            fw,
            launch(
                &offer.id.value,
                vec![task(id, &agent, 0.5, 64.0)],
                Some(0.0),
            ),
        );
    }
    // Both frameworks may hold the single agent's offer in turn.
    while w
        .m
        .frameworks
        .values()
        .map(|f| f.tasks.len())
        .sum::<usize>()
        < 2
    {
        let more = w.offers();
        let (fw, offer) = more.first().expect("offer").clone();
        let id = if fw == aware { "ta" } else { "tl" };
        w.call(
            &fw,
            launch(
                &offer.id.value,
                vec![task(id, &agent, 0.5, 64.0)],
                Some(0.0),
            ),
        );
    }
    let max = w.m.config.max_agent_ping_timeouts;
    for _ in 0..max {
        let now = w.now();
        w.m.ping_agents(now);
        assert!(agent_events(&w.m.take_outputs()).contains(&AgentEvent::Ping));
    }
    assert_eq!(w.m.agents[&agent].state, AgentState::Active);
    let now = w.now();
    w.m.ping_agents(now);
    let out = w.m.take_outputs();
    assert!(matches!(
        w.m.agents[&agent].state,
        AgentState::Unreachable { .. }
    ));
    let u = updates(&out);
    let ta = u.iter().find(|s| s.task_id.value == "ta").expect("ta");
    assert_eq!(ta.state, TaskState::TaskUnreachable);
    assert!(ta.unreachable_time.is_some());
    let tl = u.iter().find(|s| s.task_id.value == "tl").expect("tl");
    assert_eq!(tl.state, TaskState::TaskLost);
    assert_eq!(tl.reason.as_deref(), Some("REASON_AGENT_REMOVED"));
    assert!(
        w.offers().is_empty(),
        "nothing offered on an unreachable agent"
    );

    // It comes back with both tasks still running.
    let reports = [("ta", &aware), ("tl", &legacy)]
        .iter()
        .map(|(t, fw)| TaskReport {
            framework_id: Id::new(*fw),
            task: task(t, &agent, 0.5, 64.0),
            state: TaskState::TaskRunning,
            executor_id: None,
        })
        .collect();
    let now = w.now();
    let back =
        w.m.subscribe_agent(
            Some(Id::new(&agent)),
            agent_info("h1", "cpus:4;mem:4096"),
            reports,
            "again".into(),
            now,
        )
        .expect("reregister");
    assert_eq!(back, agent);
    let out = w.m.take_outputs();
    assert_eq!(w.m.agents[&agent].state, AgentState::Active);
    let events = agent_events(&out);
    // The legacy framework was told its task was lost: it must not come back.
    assert!(
        events
            .iter()
            .any(|e| matches!(e, AgentEvent::KillTask { task_id, .. } if task_id.value == "tl")),
        "{events:?}"
    );
    assert_eq!(
        w.m.frameworks[&aware].tasks["ta"].state,
        TaskState::TaskRunning
    );
    assert_eq!(w.m.agents[&agent].used.scalar("cpus"), 0.5);
}

#[test]
fn teardown_ends_the_framework_for_good() {
    let (mut w, fw, agent) = World::with_staged_task("t");
    let out = w.call(&fw, CallBody::Teardown);
    assert!(agent_events(&out)
        .iter()
        .any(|e| matches!(e, AgentEvent::ShutdownFramework { .. })));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::EndFrameworkStream { .. })));
    assert!(w.m.agents[&agent].used.is_empty());
    let mut info = framework_info("f");
    info.id = Some(Id::new(&fw));
    let now = w.now();
    let refused = w.m.subscribe_framework(
        None,
        Subscribe {
            framework_info: info,
            suppressed_roles: vec![],
        },
        "s2".into(),
        now,
    );
    assert_eq!(
        refused,
        Err(SubscribeRefused("Framework has been removed".into()))
    );
}

#[test]
fn a_framework_fails_over_within_its_timeout_or_is_removed() {
    let mut w = World::new();
    let mut info = framework_info("f");
    info.failover_timeout = Some(60.0);
    let now = w.now();
    let fw =
        w.m.subscribe_framework(
            None,
            Subscribe {
                framework_info: info.clone(),
                suppressed_roles: vec![],
            },
            "s1".into(),
            now,
        )
        .expect("sub");
    w.m.take_outputs();
    w.agent("h1", "cpus:4;mem:4096");
    assert_eq!(w.offers().len(), 1);
    let now = w.now();
    w.m.framework_disconnected(&fw, "s1", now);
    assert!(w.m.offers.is_empty(), "offers rescinded on disconnect");
    assert!(w.offers().is_empty(), "nothing offered while away");
    w.advance(30.0);
    let now = w.now();
    w.m.expire_frameworks(now);
    info.id = Some(Id::new(&fw));
    let again =
        w.m.subscribe_framework(
            None,
            Subscribe {
                framework_info: info.clone(),
                suppressed_roles: vec![],
            },
            "s2".into(),
            now,
        )
        .expect("failover");
    assert_eq!(again, fw);
    w.m.take_outputs();
    assert_eq!(w.offers().len(), 1);
    assert_eq!(
        w.m.authorize_call(Some(&Id::new(&fw)), Some("s2")),
        Ok(fw.clone())
    );
    let now = w.now();
    w.m.framework_disconnected(&fw, "s2", now);
    w.advance(61.0);
    let now = w.now();
    w.m.expire_frameworks(now);
    assert!(!w.m.frameworks.contains_key(&fw));
}

#[test]
fn calls_with_the_wrong_stream_or_framework_are_refused_as_mesos_does() {
    let mut w = World::new();
    let fw = w.framework("f", true);
    let err =
        w.m.authorize_call(Some(&Id::new(&fw)), None)
            .expect_err("no stream");
    assert_eq!(
        err.message,
        "All non-subscribe calls should include the 'Mesos-Stream-Id' header"
    );
    let err =
        w.m.authorize_call(Some(&Id::new("nope")), Some("x"))
            .expect_err("unknown");
    assert_eq!(err.message, "Framework cannot be found");
    let err =
        w.m.authorize_call(Some(&Id::new(&fw)), Some("other"))
            .expect_err("mismatch");
    assert_eq!(
        err.message,
        format!("The stream ID 'other' included in this request didn't match the stream ID currently associated with framework ID {fw}")
    );
}

#[test]
fn reconciliation_reports_known_and_unknown_tasks() {
    let (mut w, fw, agent) = World::with_staged_task("t");
    w.m.agent_update(
        &agent,
        &fw,
        status("t", TaskState::TaskRunning, Some(UUID_A)),
    );
    w.m.take_outputs();
    let out = w.call(
        &fw,
        CallBody::Reconcile(vec![
            ReconcileTask {
                task_id: Id::new("t"),
                agent_id: None,
            },
            ReconcileTask {
                task_id: Id::new("gone"),
                agent_id: Some(Id::new(&agent)),
            },
            ReconcileTask {
                task_id: Id::new("never"),
                agent_id: None,
            },
        ]),
    );
    let u = updates(&out);
    let states: Vec<(String, TaskState, Option<String>)> = u
        .iter()
        .map(|s| (s.task_id.value.clone(), s.state, s.message.clone()))
        .collect();
    assert_eq!(
        states,
        vec![
            (
                "t".into(),
                TaskState::TaskRunning,
                Some("Reconciliation: Latest task state".into())
            ),
            (
                "gone".into(),
                TaskState::TaskGone,
                Some("Reconciliation: Task is unknown to the agent".into())
            ),
            (
                "never".into(),
                TaskState::TaskUnknown,
                Some("Reconciliation: Task is unknown".into())
            ),
        ]
    );
    assert!(u
        .iter()
        .all(|s| s.uuid.is_none() && s.reason.as_deref() == Some("REASON_RECONCILIATION")));
    let implicit = updates(&w.call(&fw, CallBody::Reconcile(Vec::new())));
    assert_eq!(implicit.len(), 1);
    assert_eq!(implicit[0].task_id.value, "t");
}

#[test]
fn kill_goes_to_the_agent_and_an_unknown_task_is_reconciled() {
    let (mut w, fw, _) = World::with_staged_task("t");
    let kill = |t: &str| {
        CallBody::Kill(holdfast_api::scheduler::Kill {
            task_id: Id::new(t),
            agent_id: None,
            kill_policy: None,
        })
    };
    let out = w.call(&fw, kill("t"));
    assert!(
        matches!(&agent_events(&out)[..], [AgentEvent::KillTask { task_id, .. }] if task_id.value == "t")
    );
    let out = w.call(&fw, kill("nope"));
    assert_eq!(updates(&out)[0].state, TaskState::TaskUnknown);
}

#[test]
fn command_is_required() {
    let mut w = World::new();
    let fw = w.framework("f", true);
    let agent = w.agent("h1", "cpus:4;mem:4096");
    let offer = w.offers().remove(0).1;
    let mut t = task("t", &agent, 1.0, 32.0);
    t.command = None;
    let out = w.call(&fw, launch(&offer.id.value, vec![t], None));
    let u = updates(&out);
    assert_eq!(u[0].state, TaskState::TaskError);
    assert!(u[0]
        .message
        .as_deref()
        .is_some_and(|m| m.contains("CommandInfo or ExecutorInfo")));
}

/// The operator events among `out`, by kind and what they name.
fn operator_events(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Operator(e) => Some(match e {
                OperatorEvent::TaskAdded(t) => {
                    format!(
                        "TASK_ADDED {} {}",
                        t.info.task_id.value,
                        state_name(t.state)
                    )
                }
                OperatorEvent::TaskUpdated { status, state, .. } => {
                    format!(
                        "TASK_UPDATED {} {}",
                        status.task_id.value,
                        state_name(*state)
                    )
                }
                OperatorEvent::AgentAdded(a) => format!("AGENT_ADDED {}", a.info.hostname),
                OperatorEvent::AgentRemoved(a) => format!("AGENT_REMOVED {a}"),
                OperatorEvent::FrameworkAdded(f) => format!("FRAMEWORK_ADDED {}", f.info.name),
                OperatorEvent::FrameworkUpdated(f) => {
                    format!(
                        "FRAMEWORK_UPDATED {} connected={}",
                        f.info.name, f.connected
                    )
                }
                OperatorEvent::FrameworkRemoved(info) => {
                    format!("FRAMEWORK_REMOVED {}", info.name)
                }
            }),
            _ => None,
        })
        .collect()
}

#[test]
fn operators_are_told_of_each_change() {
    let mut w = World::new();
    let now = w.now();
    let fw =
        w.m.subscribe_framework(
            None,
            Subscribe {
                framework_info: framework_info("f"),
                suppressed_roles: Vec::new(),
            },
            "s1".into(),
            now,
        )
        .expect("subscribe");
    assert_eq!(operator_events(&w.m.take_outputs()), ["FRAMEWORK_ADDED f"]);
    let agent =
        w.m.subscribe_agent(
            None,
            agent_info("h1", "cpus:4;mem:1024"),
            Vec::new(),
            "a1".into(),
            now,
        )
        .expect("agent");
    assert_eq!(operator_events(&w.m.take_outputs()), ["AGENT_ADDED h1"]);

    let offer = w.offers().remove(0).1;
    let out = w.call(
        &fw,
        launch(&offer.id.value, vec![task("t", &agent, 1.0, 64.0)], None),
    );
    assert_eq!(operator_events(&out), ["TASK_ADDED t TASK_STAGING"]);

    w.m.agent_update(
        &agent,
        &fw,
        status("t", TaskState::TaskRunning, Some(UUID_A)),
    );
    assert_eq!(
        operator_events(&w.m.take_outputs()),
        ["TASK_UPDATED t TASK_RUNNING"]
    );
    // An update that does not change the state (a health check) is not news, and the
    // task keeps one status per state in a row.
    w.m.agent_update(
        &agent,
        &fw,
        status("t", TaskState::TaskRunning, Some(UUID_A)),
    );
    assert_eq!(operator_events(&w.m.take_outputs()), Vec::<String>::new());
    assert_eq!(w.m.frameworks[&fw].tasks["t"].statuses.len(), 1);

    w.m.framework_disconnected(&fw, "s1", now);
    assert_eq!(
        operator_events(&w.m.take_outputs()),
        ["FRAMEWORK_UPDATED f connected=false"]
    );
    w.m.subscribe_framework(
        Some(Id::new(&fw)),
        Subscribe {
            framework_info: framework_info("f"),
            suppressed_roles: Vec::new(),
        },
        "s2".into(),
        now,
    )
    .expect("failover");
    assert_eq!(
        operator_events(&w.m.take_outputs()),
        ["FRAMEWORK_UPDATED f connected=true"]
    );

    // Not partition aware: the task is lost with its agent, which leaves the
    // registered ones.
    w.m.mark_unreachable(&agent, now);
    assert_eq!(
        operator_events(&w.m.take_outputs()),
        [
            "TASK_UPDATED t TASK_LOST",
            &format!("AGENT_REMOVED {agent}")
        ]
    );
    w.m.subscribe_agent(
        Some(Id::new(&agent)),
        agent_info("h1", "cpus:4;mem:1024"),
        Vec::new(),
        "a2".into(),
        now,
    )
    .expect("back");
    assert_eq!(operator_events(&w.m.take_outputs()), ["AGENT_ADDED h1"]);

    w.m.remove_framework(&fw, now);
    assert_eq!(
        operator_events(&w.m.take_outputs()),
        ["FRAMEWORK_REMOVED f"]
    );
    assert_eq!(w.m.completed_frameworks.len(), 1);
    assert_eq!(
        w.m.completed_frameworks[0].unregistered_time,
        Some(now.wall)
    );
}

#[test]
fn a_partition_aware_frameworks_tasks_come_back_with_their_agent() {
    let mut w = World::new();
    let fw = w.framework("f", true);
    let agent = w.agent("h1", "cpus:4;mem:1024");
    let offer = w.offers().remove(0).1;
    let t = task("t", &agent, 1.0, 64.0);
    w.call(&fw, launch(&offer.id.value, vec![t.clone()], None));
    let now = w.now();
    w.m.mark_unreachable(&agent, now);
    assert_eq!(
        operator_events(&w.m.take_outputs()),
        [
            "TASK_UPDATED t TASK_UNREACHABLE",
            &format!("AGENT_REMOVED {agent}")
        ]
    );
    let report = TaskReport {
        framework_id: Id::new(&fw),
        task: t,
        state: TaskState::TaskRunning,
        executor_id: None,
    };
    w.m.subscribe_agent(
        Some(Id::new(&agent)),
        agent_info("h1", "cpus:4;mem:1024"),
        vec![report],
        "a2".into(),
        now,
    )
    .expect("back");
    // As Mesos re-adds a returning agent's tasks: the task first, then its agent.
    assert_eq!(
        operator_events(&w.m.take_outputs()),
        ["TASK_ADDED t TASK_RUNNING", "AGENT_ADDED h1"]
    );
}

#[test]
fn teardown_kills_the_tasks_operators_see() {
    let mut w = World::new();
    let fw = w.framework("f", true);
    let agent = w.agent("h1", "cpus:4;mem:1024");
    let offer = w.offers().remove(0).1;
    w.call(
        &fw,
        launch(&offer.id.value, vec![task("t", &agent, 1.0, 64.0)], None),
    );
    let out = w.call(&fw, CallBody::Teardown);
    assert_eq!(
        operator_events(&out),
        ["TASK_UPDATED t TASK_KILLED", "FRAMEWORK_REMOVED f"]
    );
    let done = &w.m.completed_frameworks[0];
    assert_eq!(done.completed.len(), 1, "its tasks are kept as completed");
    assert_eq!(done.completed[0].state, TaskState::TaskKilled);
    assert_eq!(w.m.counter("tasks_killed"), 1);
    assert_eq!(
        w.m.counter("task_killed/source_master/reason_framework_removed"),
        1
    );
}

#[test]
fn the_master_counts_what_it_does() {
    let mut w = World::new();
    let fw = w.framework("f", true);
    let agent = w.agent("h1", "cpus:4;mem:1024");
    assert_eq!(w.m.counter("messages_register_framework"), 1);
    assert_eq!(w.m.counter("messages_register_slave"), 1);
    assert_eq!(w.m.counter("slave_registrations"), 1);

    let offer = w.offers().remove(0).1;
    // One good task and one too large: the second is refused and counted as an error.
    w.call(
        &fw,
        launch(
            &offer.id.value,
            vec![
                task("ok", &agent, 1.0, 64.0),
                task("big", &agent, 100.0, 64.0),
            ],
            None,
        ),
    );
    assert_eq!(w.m.counter("messages_launch_tasks"), 1);
    assert_eq!(w.m.counter("tasks_error"), 1);
    assert_eq!(
        w.m.counter("task_error/source_master/reason_task_invalid"),
        1
    );

    // An unknown offer: the partition-aware framework's task is dropped.
    w.call(
        &fw,
        launch("no-such-offer", vec![task("gone", &agent, 1.0, 1.0)], None),
    );
    assert_eq!(w.m.counter("tasks_dropped"), 1);
    assert_eq!(
        w.m.counter("task_dropped/source_master/reason_invalid_offers"),
        1
    );

    w.m.agent_update(
        &agent,
        &fw,
        status("ok", TaskState::TaskFinished, Some(UUID_A)),
    );
    w.m.agent_update(
        &agent,
        &fw,
        status("stranger", TaskState::TaskRunning, Some(UUID_A)),
    );
    assert_eq!(w.m.counter("messages_status_update"), 2);
    assert_eq!(w.m.counter("valid_status_updates"), 1);
    assert_eq!(w.m.counter("invalid_status_updates"), 1);
    assert_eq!(w.m.counter("tasks_finished"), 1);
    // The finished task's repeated update does not count it twice.
    w.m.agent_update(
        &agent,
        &fw,
        status("ok", TaskState::TaskFinished, Some(UUID_A)),
    );
    assert_eq!(w.m.counter("tasks_finished"), 1);

    w.call(
        &fw,
        CallBody::Acknowledge(holdfast_api::scheduler::Acknowledge {
            agent_id: Id::new(&agent),
            task_id: Id::new("ok"),
            uuid: holdfast_api::base64::decode(UUID_A).expect("uuid"),
        }),
    );
    assert_eq!(w.m.counter("messages_status_update_acknowledgement"), 1);
    assert_eq!(w.m.counter("valid_status_update_acknowledgements"), 1);
    w.call(&fw, CallBody::Revive(Vec::new()));
    w.call(&fw, CallBody::Suppress(Vec::new()));
    w.call(&fw, CallBody::Reconcile(Vec::new()));
    for name in [
        "messages_revive_offers",
        "messages_suppress_offers",
        "messages_reconcile_tasks",
    ] {
        assert_eq!(w.m.counter(name), 1, "{name}");
    }
    let now = w.now();
    w.m.mark_unreachable(&agent, now);
    assert_eq!(w.m.counter("slave_removals"), 1);
    assert_eq!(w.m.counter("slave_removals/reason_unhealthy"), 1);
    assert_eq!(w.m.counter("never_happened"), 0);
}

#[test]
fn only_enum_like_reasons_become_counters() {
    let mut w = World::new();
    let fw = w.framework("f", true);
    let agent = w.agent("h1", "cpus:4;mem:1024");
    let offer = w.offers().remove(0).1;
    w.call(
        &fw,
        launch(
            &offer.id.value,
            vec![task("a", &agent, 1.0, 8.0), task("b", &agent, 1.0, 8.0)],
            None,
        ),
    );
    let mut odd = status("a", TaskState::TaskFailed, Some(UUID_A));
    odd.reason = Some("no such\nreason".into());
    w.m.agent_update(&agent, &fw, odd);
    let mut known = status("b", TaskState::TaskFailed, Some(UUID_A));
    known.reason = Some("REASON_COMMAND_EXECUTOR_FAILED".into());
    w.m.agent_update(&agent, &fw, known);
    assert_eq!(w.m.counter("tasks_failed"), 2, "both ended");
    let reasons: Vec<&String> =
        w.m.counters
            .keys()
            .filter(|k| k.starts_with("task_"))
            .collect();
    assert_eq!(
        reasons,
        ["task_failed/source_executor/reason_command_executor_failed"]
    );
}

#[test]
fn an_executor_is_charged_once_and_freed_when_it_exits() {
    let mut w = World::new();
    let fw = w.framework("f", false);
    let agent = w.agent("h1", "cpus:4;mem:4096");
    let offers = w.offers();
    let with_executor = |id: &str| {
        let mut t = task(id, &agent, 0.5, 32.0);
        t.command = None;
        t.executor = Some(
            serde_json::from_value(serde_json::json!({
                "executor_id": {"value": "e"}, "command": {"value": "./exec"},
                "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.0}}]}))
            .expect("executor"),
        );
        t
    };
    let out = w.call(
        &fw,
        launch(
            &offers[0].1.id.value,
            vec![with_executor("t1"), with_executor("t2")],
            Some(0.0),
        ),
    );
    assert!(updates(&out).is_empty(), "both launch: {out:?}");
    let used = |w: &World| w.m.agents[&agent].used.scalar("cpus");
    assert_eq!(
        used(&w),
        2.0,
        "two tasks of 0.5 and their executor's 1 once"
    );

    // A task that ends leaves the executor holding its share.
    w.m.agent_update(&agent, &fw, status("t1", TaskState::TaskFinished, None));
    assert_eq!(used(&w), 1.5);

    w.m.executor_exited(&fw, &agent, Id::new("e"), 0);
    assert_eq!(used(&w), 0.5, "the executor's share is free once it exits");
    // A third task with the same executor id starts it anew, and is charged for it.
    let offers = w.offers();
    w.call(
        &fw,
        launch(&offers[0].1.id.value, vec![with_executor("t3")], Some(0.0)),
    );
    assert_eq!(used(&w), 2.0);
    // TEARDOWN frees everything.
    w.call(&fw, CallBody::Teardown);
    assert_eq!(used(&w), 0.0);
}

#[test]
fn a_task_groups_executor_is_charged_once_and_freed_when_it_exits() {
    let mut w = World::new();
    let fw = w.framework("f", false);
    let agent = w.agent("h1", "cpus:4;mem:4096");
    let executor: holdfast_api::scheduler::ExecutorInfo =
        serde_json::from_value(serde_json::json!({
        "type": "DEFAULT", "executor_id": {"value": "pod"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.0}}]}))
        .expect("executor");
    let group = |offer: &str, ids: &[&str]| {
        let tasks = ids
            .iter()
            .map(|id| task(id, &agent, 0.5, 32.0))
            .collect::<Vec<_>>();
        CallBody::Accept(Accept {
            offer_ids: vec![Id::new(offer)],
            operations: vec![Operation::LaunchGroup {
                executor: Box::new(executor.clone()),
                tasks,
            }],
            filters: Filters {
                refuse_seconds: Some(0.0),
            },
        })
    };
    let used = |w: &World| w.m.agents[&agent].used.scalar("cpus");
    let offers = w.offers();
    let out = w.call(&fw, group(&offers[0].1.id.value, &["a", "b"]));
    assert!(updates(&out).is_empty(), "the group launches: {out:?}");
    assert_eq!(used(&w), 2.0, "two tasks of 0.5 and their executor's 1");
    // A second group for the running executor pays only for its task.
    let offers = w.offers();
    let offered = Resources::new(offers[0].1.resources.clone()).expect("resources");
    assert_eq!(offered.scalar("cpus"), 2.0, "the rest is offered");
    w.call(&fw, group(&offers[0].1.id.value, &["c"]));
    assert_eq!(used(&w), 2.5);
    for id in ["a", "b", "c"] {
        w.m.agent_update(&agent, &fw, status(id, TaskState::TaskFinished, None));
    }
    assert_eq!(used(&w), 1.0, "the executor holds its share until it exits");
    w.m.executor_exited(&fw, &agent, Id::new("pod"), 0);
    assert_eq!(used(&w), 0.0);
    // A group that does not fit with its executor is refused whole, with the amounts.
    let offers = w.offers();
    let out = w.call(
        &fw,
        group(
            &offers[0].1.id.value,
            &["d", "e", "f", "g", "h", "i", "j", "k"],
        ),
    );
    let refused = updates(&out);
    assert_eq!(refused.len(), 8);
    assert!(
        refused[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("task group and its executor are more than available")),
        "{refused:?}"
    );
    assert_eq!(used(&w), 0.0);
}

// ---- The registry and a restart of the master --------------------------------------

impl World {
    /// The master restarted: a new one (new id) on the same clock, recovered from this
    /// one's registry as written and read back.
    fn restarted(&self) -> World {
        let bytes = self.m.registry().encode();
        let registry = crate::registry::Registry::decode(&bytes).expect("the registry reads back");
        let info = MasterInfo::new(
            "m2",
            std::net::Ipv4Addr::LOCALHOST,
            "localhost",
            5050,
            "0.1.0",
        );
        let mut w = World {
            m: Master::new(info, self.m.config.clone()),
            start: self.start,
            secs: self.secs,
        };
        let now = w.now();
        w.m.recover_from_registry(registry, now);
        w
    }

    /// Framework `id` (as `framework` made it) subscribes again under its id.
    fn resubscribe(&mut self, id: &str, name: &str, partition_aware: bool) {
        let mut info = framework_info(name);
        info.id = Some(Id::new(id));
        if partition_aware {
            info.capabilities.push(Capability {
                kind: Some("PARTITION_AWARE".to_owned()),
            });
        }
        let now = self.now();
        let back = self
            .m
            .subscribe_framework(
                None,
                Subscribe {
                    framework_info: info,
                    suppressed_roles: Vec::new(),
                },
                format!("stream-{name}-again"),
                now,
            )
            .expect("subscribe again");
        assert_eq!(back, id);
        self.m.take_outputs();
    }

    fn reconcile(&mut self, fw: &str, tasks: &[(&str, Option<&str>)]) -> Vec<TaskStatus> {
        let tasks = tasks
            .iter()
            .map(|(t, a)| ReconcileTask {
                task_id: Id::new(*t),
                agent_id: a.map(Id::new),
            })
            .collect();
        updates(&self.call(fw, CallBody::Reconcile(tasks)))
    }

    /// Agent `id` registers again with task `t` of `fw` running.
    fn reregister(&mut self, id: &str, host: &str, fw: &str, t: &str) -> Vec<Output> {
        let now = self.now();
        let report = TaskReport {
            framework_id: Id::new(fw),
            task: task(t, id, 1.0, 64.0),
            state: TaskState::TaskRunning,
            executor_id: None,
        };
        let back = self
            .m
            .subscribe_agent(
                Some(Id::new(id)),
                agent_info(host, "cpus:4;mem:4096"),
                vec![report],
                format!("astream-{host}-again"),
                now,
            )
            .expect("reregister");
        assert_eq!(back, id);
        self.m.take_outputs()
    }
}

#[test]
fn registrations_and_unreachable_agents_change_the_registry() {
    let mut w = World::new();
    let g0 = w.m.registry_generation();
    let agent = w.agent("h1", "cpus:4;mem:4096");
    assert!(w.m.registry().is_admitted(&agent));
    let g1 = w.m.registry_generation();
    assert!(g1 > g0, "an admission is written");
    w.reregister(&agent, "h1", "nobody", "t");
    assert_eq!(
        w.m.registry_generation(),
        g1,
        "the same agent again needs no write"
    );
    let now = w.now();
    w.m.mark_unreachable(&agent, now);
    assert!(w.m.registry_generation() > g1, "unreachable is written");
    assert_eq!(
        w.m.registry().unreachable_since(&agent),
        Some(crate::registry::nanos(now.wall))
    );
    assert!(!w.m.registry().is_admitted(&agent));
    assert_eq!(w.m.counter("slave_unreachable_scheduled"), 1);
    assert_eq!(w.m.counter("slave_unreachable_completed"), 1);
    assert_eq!(w.m.counter("recovery_slave_removals"), 0);
}

#[test]
fn a_recovered_agent_that_does_not_come_back_is_marked_unreachable_after_the_timeout() {
    let (mut w, fw, agent) = World::with_staged_task("t");
    let legacy = w.framework("legacy", false);
    let mut w = w.restarted();
    assert_eq!(
        w.m.recovered.keys().collect::<Vec<_>>(),
        [&agent],
        "admitted agents are recovered"
    );
    assert!(w.m.agents.is_empty(), "none has registered yet");
    let agents = crate::operator::get_agents(&w.m);
    assert_eq!(agents["agents"], serde_json::json!([]));
    assert_eq!(agents["recovered_agents"][0]["id"]["value"], agent.as_str());
    assert_eq!(agents["recovered_agents"][0]["hostname"], "h1");

    // Frameworks come back; the master knows none of their tasks. Asking about a task
    // on the recovered agent (or on no agent named while any is recovered) gets no
    // answer yet; on an agent the master never knew, it is unknown.
    w.resubscribe(&fw, "f", true);
    w.resubscribe(&legacy, "legacy", false);
    assert!(w.reconcile(&fw, &[("t", Some(&agent))]).is_empty());
    assert!(w.reconcile(&fw, &[("t", None)]).is_empty());
    let other = w.reconcile(&fw, &[("t", Some("elsewhere"))]);
    assert_eq!(other[0].state, TaskState::TaskUnknown);
    assert!(
        w.reconcile(&fw, &[]).is_empty(),
        "implicit: only what the master knows"
    );

    // Just before the timeout nothing happens.
    w.advance(599.0);
    let now = w.now();
    let generation = w.m.registry_generation();
    w.m.expire_recovered_agents(now);
    assert!(w.m.take_outputs().is_empty());
    assert_eq!(w.m.registry_generation(), generation);

    w.advance(1.0);
    let now = w.now();
    w.m.expire_recovered_agents(now);
    assert!(w.m.recovered.is_empty());
    assert!(w.m.registry_generation() > generation, "written");
    assert_eq!(
        w.m.registry().unreachable_since(&agent),
        Some(crate::registry::nanos(now.wall))
    );
    let out = w.m.take_outputs();
    // Each connected framework hears the agent is lost, as Mesos's LostSlaveMessage.
    let lost: Vec<&str> = out
        .iter()
        .filter_map(|o| match o {
            Output::Framework {
                framework,
                event:
                    Event::Failure {
                        agent_id,
                        executor_id: None,
                        status: None,
                    },
            } if agent_id.value == agent => Some(framework.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(lost, [fw.as_str(), legacy.as_str()]);
    for name in [
        "recovery_slave_removals",
        "slave_removals",
        "slave_removals/reason_unhealthy",
        "slave_unreachable_scheduled",
        "slave_unreachable_completed",
    ] {
        assert_eq!(w.m.counter(name), 1, "{name}");
    }
    let metrics = crate::metrics::snapshot(&w.m, 0.0, 0);
    let unreachable = metrics
        .iter()
        .find(|x| x.name == "master/slaves_unreachable")
        .map(|x| x.value);
    assert_eq!(unreachable, Some(1.0));

    // Now reconciliation answers: unreachable since then, or lost.
    let aware = w.reconcile(&fw, &[("t", Some(&agent))]);
    assert_eq!(aware.len(), 1);
    assert_eq!(aware[0].state, TaskState::TaskUnreachable);
    assert_eq!(
        aware[0].message.as_deref(),
        Some("Reconciliation: Task is unreachable")
    );
    assert_eq!(
        aware[0].unreachable_time.as_ref().map(|t| t.nanoseconds),
        Some((now.wall * 1e9) as i64)
    );
    assert_eq!(
        aware[0].agent_id.as_ref().map(|a| a.value.as_str()),
        Some(agent.as_str())
    );
    let old = w.reconcile(&legacy, &[("t", Some(&agent))]);
    assert_eq!(old[0].state, TaskState::TaskLost);

    // The agent comes back later: readmitted, with its task.
    w.advance(60.0);
    let out = w.reregister(&agent, "h1", &fw, "t");
    assert!(w.m.registry().is_admitted(&agent));
    assert_eq!(w.m.registry().unreachable_since(&agent), None);
    assert!(agent_events(&out)
        .iter()
        .any(|e| matches!(e, AgentEvent::Registered { .. })));
    assert_eq!(w.m.frameworks[&fw].tasks["t"].state, TaskState::TaskRunning);
    let again = w.reconcile(&fw, &[("t", Some(&agent))]);
    assert_eq!(again[0].state, TaskState::TaskRunning);
}

#[test]
fn a_recovered_agent_that_comes_back_in_time_keeps_its_tasks() {
    let (w, fw, agent) = World::with_staged_task("t");
    let mut w = w.restarted();
    w.resubscribe(&fw, "f", true);
    w.advance(30.0);
    let out = w.reregister(&agent, "h1", &fw, "t");
    assert!(w.m.recovered.is_empty());
    assert!(
        updates(&out).is_empty(),
        "nothing is reported about the task: {out:?}"
    );
    assert_eq!(w.m.frameworks[&fw].tasks["t"].state, TaskState::TaskRunning);
    assert_eq!(
        operator_events(&out),
        ["TASK_ADDED t TASK_RUNNING", "AGENT_ADDED h1"]
    );
    // The timeout passes: nothing more happens to it.
    w.advance(600.0);
    let now = w.now();
    w.m.expire_recovered_agents(now);
    assert!(w.m.take_outputs().is_empty());
    assert_eq!(w.m.agents[&agent].state, AgentState::Active);
    assert!(w.m.registry().is_admitted(&agent));
    assert_eq!(w.m.counter("recovery_slave_removals"), 0);
    let known = w.reconcile(&fw, &[("t", Some(&agent))]);
    assert_eq!(known[0].state, TaskState::TaskRunning);
}

#[test]
fn an_agent_unreachable_before_the_restart_is_unreachable_after_it() {
    let (mut w, fw, agent) = World::with_staged_task("t");
    w.advance(5.0);
    let marked = w.now();
    w.m.mark_unreachable(&agent, marked);
    w.advance(5.0);
    let mut w = w.restarted();
    assert!(
        w.m.recovered.is_empty(),
        "only admitted agents are recovered"
    );
    assert_eq!(
        w.m.registry().unreachable_since(&agent),
        Some(crate::registry::nanos(marked.wall))
    );
    let now = w.now();
    w.m.expire_recovered_agents(now);
    assert!(w.m.take_outputs().is_empty());
    let state = crate::legacy::state(
        &w.m,
        &crate::legacy::Context {
            version: &serde_json::json!({}),
            flags: &serde_json::json!([]),
            start_time: 0.0,
        },
    );
    assert_eq!(state["unreachable_slaves"], serde_json::json!(1.0));
    assert_eq!(state["recovered_slaves"], serde_json::json!([]));

    w.resubscribe(&fw, "f", true);
    let u = w.reconcile(&fw, &[("t", Some(&agent))]);
    assert_eq!(u[0].state, TaskState::TaskUnreachable);
    assert_eq!(
        u[0].unreachable_time.as_ref().map(|t| t.nanoseconds),
        Some((marked.wall * 1e9) as i64),
        "the time it was marked, before the restart"
    );

    let out = w.reregister(&agent, "h1", &fw, "t");
    assert!(operator_events(&out).contains(&"AGENT_ADDED h1".to_owned()));
    assert!(w.m.registry().is_admitted(&agent));
    assert!(w.m.registry().unreachable.is_empty());
}

#[test]
fn the_registry_forgets_old_unreachable_agents_and_their_unreachable_tasks() {
    let (mut w, fw, agent) = World::with_staged_task("t");
    let other = w.agent("h2", "cpus:1;mem:128");
    let now = w.now();
    w.m.mark_unreachable(&agent, now);
    w.advance(3600.0);
    let now = w.now();
    w.m.mark_unreachable(&other, now);
    w.m.take_outputs();
    assert_eq!(
        w.m.frameworks[&fw].tasks["t"].state,
        TaskState::TaskUnreachable
    );

    // Within both limits nothing goes.
    let generation = w.m.registry_generation();
    assert_eq!(w.m.prune_registry(now), 0);
    assert_eq!(w.m.registry_generation(), generation);

    // Over the count: the oldest goes, with its unreachable task.
    w.m.config.registry_max_agent_count = 1;
    assert_eq!(w.m.prune_registry(now), 1);
    assert!(w.m.registry_generation() > generation);
    assert_eq!(w.m.registry().unreachable_since(&agent), None);
    assert!(w.m.registry().unreachable_since(&other).is_some());
    assert!(!w.m.agents.contains_key(&agent));
    assert!(w.m.frameworks[&fw].tasks.is_empty());
    let u = w.reconcile(&fw, &[("t", Some(&agent))]);
    assert_eq!(u[0].state, TaskState::TaskUnknown);

    // Past the age.
    w.advance(15.0 * 86400.0);
    let now = w.now();
    assert_eq!(w.m.prune_registry(now), 1);
    assert!(w.m.registry().unreachable.is_empty());
}

#[test]
fn an_agent_back_before_its_framework_keeps_the_framework_and_its_tasks() {
    let (w, fw, agent) = World::with_staged_task("t");
    let info = w.m.frameworks[&fw].info.clone();
    let mut w = w.restarted();
    // The agent reports the framework's task before the scheduler is back.
    let now = w.now();
    w.m.recover_frameworks(vec![info], now);
    let out = w.reregister(&agent, "h1", &fw, "t");
    assert_eq!(
        operator_events(&out),
        [
            "FRAMEWORK_ADDED f",
            "TASK_ADDED t TASK_RUNNING",
            "AGENT_ADDED h1"
        ]
    );
    let recovered = &w.m.frameworks[&fw];
    assert!(recovered.recovered && !recovered.connected());
    assert_eq!(recovered.tasks["t"].state, TaskState::TaskRunning);
    let summary = crate::operator::get_frameworks(&w.m);
    assert_eq!(summary["frameworks"][0]["recovered"], true);
    assert_eq!(summary["frameworks"][0]["active"], false);

    // No offers for it, and no failover timeout: it waits for its scheduler.
    assert!(w.offers().is_empty());
    w.advance(1e6);
    let now = w.now();
    w.m.expire_frameworks(now);
    assert!(w.m.frameworks.contains_key(&fw));

    w.resubscribe(&fw, "f", true);
    assert!(!w.m.frameworks[&fw].recovered);
    let u = w.reconcile(&fw, &[("t", Some(&agent))]);
    assert_eq!(u[0].state, TaskState::TaskRunning);
    assert!(!w.offers().is_empty(), "offers resume once it subscribed");
}

#[test]
fn a_removed_framework_is_not_recovered() {
    let (mut w, fw, _) = World::with_staged_task("t");
    let info = w.m.frameworks[&fw].info.clone();
    w.call(&fw, CallBody::Teardown);
    let now = w.now();
    w.m.recover_frameworks(vec![info], now);
    assert!(w.m.frameworks.is_empty());
    assert!(w.m.take_outputs().is_empty());
}
