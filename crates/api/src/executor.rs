//! The v1 executor API (`POST /api/v1/executor` on the agent): calls from custom
//! executors, and the events the agent streams back.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::json::CallKind;
use crate::scheduler::{
    ExecutorInfo, FrameworkInfo, Id, KillPolicy, TaskGroupInfo, TaskInfo, TaskStatus,
};
use crate::ApiError;

const EXECUTOR_CALL: CallKind = CallKind("Executor::Call");

pub const CALL_TYPES: &[&str] = &["SUBSCRIBE", "UPDATE", "MESSAGE"];

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub framework_id: Id,
    pub executor_id: Id,
    pub body: CallBody,
}

// Calls are parsed once and handed on; their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum CallBody {
    Subscribe {
        unacknowledged_tasks: Vec<TaskInfo>,
        unacknowledged_updates: Vec<TaskStatus>,
    },
    Update(TaskStatus),
    /// base64, passed to the framework as is.
    Message(String),
}

#[derive(Deserialize)]
struct SubscribePayload {
    #[serde(default)]
    unacknowledged_tasks: Vec<TaskInfo>,
    #[serde(default)]
    unacknowledged_updates: Vec<UnackedUpdate>,
}

#[derive(Deserialize)]
struct UnackedUpdate {
    status: TaskStatus,
}

#[derive(Deserialize)]
struct UpdatePayload {
    status: TaskStatus,
}

#[derive(Deserialize)]
struct MessagePayload {
    data: String,
}

/// Parses an executor call, with Mesos's error wording.
pub fn parse_call(body: &[u8]) -> Result<Call, ApiError> {
    let (obj, kind) = EXECUTOR_CALL.envelope(body)?;
    let mut missing = Vec::new();
    for field in ["framework_id", "executor_id"] {
        if obj.get(field).is_none_or(Value::is_null) {
            missing.push(field);
        }
    }
    if !missing.is_empty() {
        return Err(
            EXECUTOR_CALL.unconvertible(format!("Missing required fields: {}", missing.join(", ")))
        );
    }
    let framework_id: Id = EXECUTOR_CALL.typed(&obj["framework_id"], "framework_id")?;
    let executor_id: Id = EXECUTOR_CALL.typed(&obj["executor_id"], "executor_id")?;
    let field = kind.to_ascii_lowercase();
    let payload = obj.get(&field);
    let body = match kind.as_str() {
        "SUBSCRIBE" => {
            let p: SubscribePayload =
                EXECUTOR_CALL.typed(EXECUTOR_CALL.required(payload, &field)?, &field)?;
            CallBody::Subscribe {
                unacknowledged_tasks: p.unacknowledged_tasks,
                unacknowledged_updates: p
                    .unacknowledged_updates
                    .into_iter()
                    .map(|u| u.status)
                    .collect(),
            }
        }
        "UPDATE" => {
            let p: UpdatePayload =
                EXECUTOR_CALL.typed(EXECUTOR_CALL.required(payload, &field)?, &field)?;
            if p.status.uuid.is_none() {
                return Err(EXECUTOR_CALL.invalid("Expecting 'uuid' to be present"));
            }
            CallBody::Update(p.status)
        }
        "MESSAGE" => {
            let p: MessagePayload =
                EXECUTOR_CALL.typed(EXECUTOR_CALL.required(payload, &field)?, &field)?;
            if crate::base64::decode(&p.data).is_err() {
                return Err(EXECUTOR_CALL.invalid("'message.data' is not base64"));
            }
            CallBody::Message(p.data)
        }
        other => return Err(EXECUTOR_CALL.unknown(other, CALL_TYPES)),
    };
    Ok(Call {
        framework_id,
        executor_id,
        body,
    })
}

/// What the agent streams to a subscribed executor.
// Events are made and sent at once; their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Subscribed {
        executor_info: ExecutorInfo,
        framework_info: Option<FrameworkInfo>,
        agent_info: Value,
        container_id: String,
    },
    Launch {
        task: TaskInfo,
    },
    /// A task group, launched together (`Event.LaunchGroup.task_group`).
    LaunchGroup {
        tasks: Vec<TaskInfo>,
    },
    Kill {
        task_id: Id,
        kill_policy: Option<KillPolicy>,
    },
    Acknowledged {
        task_id: Id,
        uuid: String,
    },
    Message {
        data: String,
    },
    Shutdown,
    Error {
        message: String,
    },
}

impl Event {
    /// Mesos's JSON: `{"type": "LAUNCH", "launch": {...}}`.
    pub fn to_json(&self) -> Value {
        match self {
            Event::Subscribed {
                executor_info,
                framework_info,
                agent_info,
                container_id,
            } => json!({"type": "SUBSCRIBED", "subscribed": {
                "executor_info": executor_info,
                "framework_info": framework_info,
                "agent_info": agent_info,
                "container_id": {"value": container_id},
            }}),
            Event::Launch { task } => json!({"type": "LAUNCH", "launch": {"task": task}}),
            Event::LaunchGroup { tasks } => json!({"type": "LAUNCH_GROUP", "launch_group": {
                "task_group": TaskGroupInfo { tasks: tasks.clone() },
            }}),
            Event::Kill {
                task_id,
                kill_policy,
            } => {
                let mut kill = json!({ "task_id": task_id });
                if let Some(p) = kill_policy {
                    kill["kill_policy"] = json!(p);
                }
                json!({"type": "KILL", "kill": kill})
            }
            Event::Acknowledged { task_id, uuid } => {
                json!({"type": "ACKNOWLEDGED", "acknowledged": {"task_id": task_id, "uuid": uuid}})
            }
            Event::Message { data } => json!({"type": "MESSAGE", "message": {"data": data}}),
            Event::Shutdown => json!({"type": "SHUTDOWN"}),
            Event::Error { message } => json!({"type": "ERROR", "error": {"message": message}}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> Value {
        let p = format!(
            "{}/../../../shared/fixtures/mesos-1.11/{path}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
        serde_json::from_str(&text).expect("fixture json")
    }

    fn request_body(path: &str) -> Vec<u8> {
        fixture(path)["request"]["body"].to_string().into_bytes()
    }

    #[test]
    fn recorded_executor_calls_parse() {
        let sub = parse_call(&request_body("executor/01-subscribe.json")).expect("subscribe");
        assert_eq!(sub.executor_id.value, "golden-dump-executor");
        assert!(matches!(sub.body, CallBody::Subscribe { .. }));
        let up = parse_call(&request_body("executor/02-update-running.json")).expect("update");
        match up.body {
            CallBody::Update(s) => assert_eq!(s.uuid.as_deref(), Some("GA4EV5QfSRSjZHw+iT71gA==")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_calls_get_mesos_reasons() {
        for (path, status, message) in [
            (
                "errors/20-executor-update-without-uuid.json",
                400,
                "Failed to validate Executor::Call: Expecting 'uuid' to be present",
            ),
            (
                "errors/23-executor-missing-executor-id.json",
                400,
                "Failed to convert JSON into Call protobuf: Missing required fields: executor_id",
            ),
        ] {
            let f = fixture(path);
            assert_eq!(f["response"]["status"], status);
            assert_eq!(f["response"]["body"], message);
            let e = parse_call(f["request"]["body"].to_string().as_bytes()).unwrap_err();
            assert_eq!((e.status, e.message.as_str()), (status, message), "{path}");
        }
        let e = parse_call(
            br#"{"type":"NOPE","framework_id":{"value":"f"},"executor_id":{"value":"e"}}"#,
        )
        .unwrap_err();
        assert!(
            e.message.contains("unknown call type 'NOPE'"),
            "{}",
            e.message
        );
        let e = parse_call(br#"{"type":"MESSAGE","framework_id":{"value":"f"},"executor_id":{"value":"e"},"message":{"data":"%%"}}"#)
            .unwrap_err();
        assert!(e.message.contains("not base64"), "{}", e.message);
    }

    #[test]
    fn events_have_mesos_shapes() {
        let f = fixture("executor/01-subscribe.json");
        let records = f["response"]["body"].as_array().expect("records");
        let ack = records
            .iter()
            .find(|r| r["type"] == "ACKNOWLEDGED")
            .expect("an ack");
        let ours = Event::Acknowledged {
            task_id: Id::new(
                ack["acknowledged"]["task_id"]["value"]
                    .as_str()
                    .unwrap_or(""),
            ),
            uuid: ack["acknowledged"]["uuid"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        };
        assert_eq!(&ours.to_json(), ack);
        let launch = records
            .iter()
            .find(|r| r["type"] == "LAUNCH")
            .expect("launch");
        let task: TaskInfo =
            serde_json::from_value(launch["launch"]["task"].clone()).expect("task");
        assert_eq!(&Event::Launch { task }.to_json(), launch);
        assert_eq!(Event::Shutdown.to_json(), json!({"type": "SHUTDOWN"}));
    }

    #[test]
    fn launch_group_uses_the_executor_proto_field_names() {
        // Mesos 1.11 executor.proto: `Event.launch_group` is a `LaunchGroup` whose
        // `task_group` is a `TaskGroupInfo` with `repeated TaskInfo tasks`.
        let task = |id: &str| -> TaskInfo {
            serde_json::from_value(json!({
                "name": id, "task_id": {"value": id}, "agent_id": {"value": "a-S0"},
                "command": {"value": "true"}, "data": "aGk="}))
            .expect("task")
        };
        let event = Event::LaunchGroup {
            tasks: vec![task("t1"), task("t2")],
        }
        .to_json();
        assert_eq!(event["type"], "LAUNCH_GROUP");
        let tasks = event["launch_group"]["task_group"]["tasks"]
            .as_array()
            .expect("tasks");
        let ids: Vec<&str> = tasks
            .iter()
            .filter_map(|t| t["task_id"]["value"].as_str())
            .collect();
        assert_eq!(ids, ["t1", "t2"], "in the order the framework gave");
        // Each task is written as it came: an executor can read it back whole.
        let back: TaskInfo = serde_json::from_value(tasks[0].clone()).expect("task info");
        assert_eq!(back, task("t1"));
        assert_eq!(event.as_object().map(|o| o.len()), Some(2), "{event}");
    }
}
