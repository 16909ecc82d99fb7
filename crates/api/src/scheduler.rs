//! The scheduler API (`POST /api/v1/scheduler`, `mesos/v1/scheduler/scheduler.proto`):
//! calls from frameworks in, events to them out, and the messages both carry.
//!
//! Messages that the master stores and shows back (framework and task infos) keep the
//! fields Holdfast does not interpret in `extra`, so GET_STATE returns what the framework
//! sent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::json::CallKind;
use crate::v1::{CommandInfo, ContainerInfo, ContainerStatus, Resource};
use crate::ApiError;

const SCHEDULER_CALL: CallKind = CallKind("scheduler::Call");

/// Scheduler call types Holdfast serves.
pub const SUPPORTED_CALLS: &[&str] = &[
    "SUBSCRIBE",
    "TEARDOWN",
    "ACCEPT",
    "DECLINE",
    "REVIVE",
    "SUPPRESS",
    "KILL",
    "SHUTDOWN",
    "ACKNOWLEDGE",
    "RECONCILE",
    "MESSAGE",
    "REQUEST",
    "UPDATE_FRAMEWORK",
    "ACCEPT_INVERSE_OFFERS",
    "DECLINE_INVERSE_OFFERS",
];

/// `{"value": "..."}`: the shape of every Mesos id but `ContainerID`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Id {
    pub value: String,
}

impl Id {
    pub fn new(value: impl Into<String>) -> Id {
        Id {
            value: value.into(),
        }
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.value)
    }
}

/// A protobuf `DurationInfo`/`TimeInfo`: nanoseconds as a plain JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nanos {
    pub nanoseconds: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capability {
    /// Unknown capability names are kept as sent and ignored.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameworkInfo {
    pub user: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_timeout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<bool>,
    /// Deprecated single role; `roles` wins when both are given (MULTI_ROLE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<Capability>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl FrameworkInfo {
    /// The roles the framework subscribes to: `roles`, else the old `role`, else `*`.
    pub fn effective_roles(&self) -> Vec<String> {
        if !self.roles.is_empty() {
            self.roles.clone()
        } else {
            vec![self.role.clone().unwrap_or_else(|| "*".to_owned())]
        }
    }

    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities
            .iter()
            .any(|c| c.kind.as_deref() == Some(name))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KillPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<Nanos>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutorInfo {
    /// DEFAULT (task groups) or CUSTOM (a command of the framework's).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub executor_id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub name: String,
    pub task_id: Id,
    pub agent_id: Id,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
    /// `bytes`, base64 in JSON; passed to the executor untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskGroupInfo {
    #[serde(default)]
    pub tasks: Vec<TaskInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Filters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refuse_seconds: Option<f64>,
}

/// One operation of an ACCEPT. Only LAUNCH and LAUNCH_GROUP are carried out; the
/// others (reservations, volumes) are refused with a reason.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    Launch(Vec<TaskInfo>),
    LaunchGroup {
        executor: Box<ExecutorInfo>,
        tasks: Vec<TaskInfo>,
    },
    Unsupported(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Accept {
    pub offer_ids: Vec<Id>,
    pub operations: Vec<Operation>,
    pub filters: Filters,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Decline {
    #[serde(default)]
    pub offer_ids: Vec<Id>,
    #[serde(default)]
    pub filters: Filters,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Kill {
    pub task_id: Id,
    #[serde(default)]
    pub agent_id: Option<Id>,
    #[serde(default)]
    pub kill_policy: Option<KillPolicy>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Shutdown {
    pub executor_id: Id,
    pub agent_id: Id,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Acknowledge {
    pub agent_id: Id,
    pub task_id: Id,
    /// The 16 bytes of the status update's uuid.
    pub uuid: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReconcileTask {
    pub task_id: Id,
    #[serde(default)]
    pub agent_id: Option<Id>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub agent_id: Id,
    pub executor_id: Id,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Subscribe {
    pub framework_info: FrameworkInfo,
    pub suppressed_roles: Vec<String>,
}

/// A parsed scheduler call. Every call but SUBSCRIBE names its framework.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub framework_id: Option<Id>,
    pub body: CallBody,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CallBody {
    Subscribe(Subscribe),
    Teardown,
    Accept(Accept),
    Decline(Decline),
    /// Roles to revive or suppress; empty means all of the framework's roles.
    Revive(Vec<String>),
    Suppress(Vec<String>),
    Kill(Kill),
    Shutdown(Shutdown),
    Acknowledge(Acknowledge),
    Reconcile(Vec<ReconcileTask>),
    Message(Message),
    /// REQUEST and the inverse-offer calls: accepted, nothing to do (no maintenance).
    Ignored,
    UpdateFramework(Subscribe),
}

impl CallBody {
    pub fn name(&self) -> &'static str {
        match self {
            CallBody::Subscribe(_) => "SUBSCRIBE",
            CallBody::Teardown => "TEARDOWN",
            CallBody::Accept(_) => "ACCEPT",
            CallBody::Decline(_) => "DECLINE",
            CallBody::Revive(_) => "REVIVE",
            CallBody::Suppress(_) => "SUPPRESS",
            CallBody::Kill(_) => "KILL",
            CallBody::Shutdown(_) => "SHUTDOWN",
            CallBody::Acknowledge(_) => "ACKNOWLEDGE",
            CallBody::Reconcile(_) => "RECONCILE",
            CallBody::Message(_) => "MESSAGE",
            CallBody::Ignored => "REQUEST",
            CallBody::UpdateFramework(_) => "UPDATE_FRAMEWORK",
        }
    }
}

#[derive(Deserialize)]
struct RawSubscribe {
    framework_info: Value,
    #[serde(default)]
    suppressed_roles: Vec<String>,
}

#[derive(Deserialize)]
struct RawAccept {
    #[serde(default)]
    offer_ids: Vec<Id>,
    #[serde(default)]
    operations: Vec<Value>,
    #[serde(default)]
    filters: Filters,
}

#[derive(Deserialize)]
struct RawLaunch {
    #[serde(default)]
    task_infos: Vec<TaskInfo>,
}

#[derive(Deserialize)]
struct RawLaunchGroup {
    executor: ExecutorInfo,
    task_group: TaskGroupInfo,
}

#[derive(Deserialize)]
struct RawAcknowledge {
    agent_id: Id,
    task_id: Id,
    uuid: String,
}

#[derive(Deserialize)]
struct RawReconcile {
    #[serde(default)]
    tasks: Vec<ReconcileTask>,
}

#[derive(Deserialize)]
struct RawMessage {
    agent_id: Id,
    executor_id: Id,
    #[serde(default)]
    data: String,
}

#[derive(Deserialize, Default)]
struct RawRoles {
    #[serde(default)]
    roles: Vec<String>,
}

/// Parses the body of `POST /api/v1/scheduler`. Errors carry Mesos's status and wording.
pub fn parse_call(body: &[u8]) -> Result<Call, ApiError> {
    let c = SCHEDULER_CALL;
    let (obj, kind) = c.envelope(body)?;
    let field = kind.to_ascii_lowercase();
    let payload = obj.get(&field);
    let framework_id: Option<Id> = match obj.get("framework_id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(c.typed(v, "framework_id")?),
    };
    let body = match kind.as_str() {
        "SUBSCRIBE" => {
            let s = subscribe(c.required(payload, &field)?, &field)?;
            // A resubscription names its id twice; the two must agree.
            if let Some(outer) = &framework_id {
                if s.framework_info.id.as_ref() != Some(outer) {
                    return Err(
                        c.invalid("'framework_id' differs from 'subscribe.framework_info.id'")
                    );
                }
            }
            CallBody::Subscribe(s)
        }
        "UPDATE_FRAMEWORK" => {
            CallBody::UpdateFramework(subscribe(c.required(payload, &field)?, &field)?)
        }
        "TEARDOWN" => CallBody::Teardown,
        "ACCEPT" => {
            let raw: RawAccept = c.typed(c.required(payload, &field)?, &field)?;
            let operations = raw
                .operations
                .iter()
                .map(operation)
                .collect::<Result<_, _>>()?;
            CallBody::Accept(Accept {
                offer_ids: raw.offer_ids,
                operations,
                filters: raw.filters,
            })
        }
        "DECLINE" => CallBody::Decline(c.typed(c.required(payload, &field)?, &field)?),
        "REVIVE" | "SUPPRESS" => {
            let roles: RawRoles = match payload {
                None | Some(Value::Null) => RawRoles::default(),
                Some(v) => c.typed(v, &field)?,
            };
            if kind == "REVIVE" {
                CallBody::Revive(roles.roles)
            } else {
                CallBody::Suppress(roles.roles)
            }
        }
        "KILL" => CallBody::Kill(c.typed(c.required(payload, &field)?, &field)?),
        "SHUTDOWN" => CallBody::Shutdown(c.typed(c.required(payload, &field)?, &field)?),
        "ACKNOWLEDGE" => {
            let raw: RawAcknowledge = c.typed(c.required(payload, &field)?, &field)?;
            let uuid = crate::base64::decode(&raw.uuid)
                .map_err(|e| c.unconvertible(format!("in 'acknowledge.uuid': {e}")))?;
            if uuid.len() != 16 {
                return Err(c.invalid(format!(
                    "'acknowledge.uuid' must be the 16 bytes of a status update's uuid, got {}",
                    uuid.len()
                )));
            }
            CallBody::Acknowledge(Acknowledge {
                agent_id: raw.agent_id,
                task_id: raw.task_id,
                uuid,
            })
        }
        "RECONCILE" => {
            let raw: RawReconcile = match payload {
                None | Some(Value::Null) => RawReconcile { tasks: Vec::new() },
                Some(v) => c.typed(v, &field)?,
            };
            CallBody::Reconcile(raw.tasks)
        }
        "MESSAGE" => {
            let raw: RawMessage = c.typed(c.required(payload, &field)?, &field)?;
            let data = crate::base64::decode(&raw.data)
                .map_err(|e| c.unconvertible(format!("in 'message.data': {e}")))?;
            CallBody::Message(Message {
                agent_id: raw.agent_id,
                executor_id: raw.executor_id,
                data,
            })
        }
        "REQUEST" | "ACCEPT_INVERSE_OFFERS" | "DECLINE_INVERSE_OFFERS" => CallBody::Ignored,
        other => return Err(c.unknown(other, SUPPORTED_CALLS)),
    };
    if !matches!(body, CallBody::Subscribe(_)) && framework_id.is_none() {
        return Err(c.invalid("Expecting 'framework_id' to be present"));
    }
    Ok(Call { framework_id, body })
}

fn subscribe(v: &Value, field: &str) -> Result<Subscribe, ApiError> {
    let c = SCHEDULER_CALL;
    let raw: RawSubscribe = c.typed(v, field)?;
    for required in ["user", "name"] {
        if !raw
            .framework_info
            .get(required)
            .is_some_and(Value::is_string)
        {
            return Err(c.unconvertible(format!(
                "Missing required fields: {field}.framework_info.{required}"
            )));
        }
    }
    let framework_info: FrameworkInfo =
        c.typed(&raw.framework_info, &format!("{field}.framework_info"))?;
    if let Some(t) = framework_info.failover_timeout {
        if !t.is_finite() || t < 0.0 {
            return Err(c.invalid(format!(
                "'framework_info.failover_timeout' must be a non-negative number of seconds, got {t}"
            )));
        }
    }
    for role in framework_info.effective_roles() {
        validate_role(&role).map_err(|e| c.invalid(e))?;
    }
    Ok(Subscribe {
        framework_info,
        suppressed_roles: raw.suppressed_roles,
    })
}

/// Mesos's role name rules: not empty, not `.` or `..`, no leading `-`, no `/`-separated
/// empty or dot components, no whitespace or control characters, no backslash.
pub fn validate_role(role: &str) -> Result<(), String> {
    if role == "*" {
        return Ok(());
    }
    let bad = || format!("invalid role '{}'", role.escape_default());
    if role.is_empty() || role.starts_with('-') {
        return Err(format!(
            "{}: a role must not be empty or start with '-'",
            bad()
        ));
    }
    if role
        .chars()
        .any(|ch| ch.is_whitespace() || ch.is_control() || ch == '\\' || ch == '*')
    {
        return Err(format!(
            "{}: a role must not contain whitespace, control characters, '\\' or '*'",
            bad()
        ));
    }
    if role
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(format!(
            "{}: each '/'-separated part must be a non-empty name other than '.' and '..'",
            bad()
        ));
    }
    Ok(())
}

fn operation(v: &Value) -> Result<Operation, ApiError> {
    let c = SCHEDULER_CALL;
    let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "LAUNCH" => {
            let raw: RawLaunch = c.typed(
                c.required(v.get("launch"), "launch")?,
                "accept.operations.launch",
            )?;
            Ok(Operation::Launch(raw.task_infos))
        }
        "LAUNCH_GROUP" => {
            let raw: RawLaunchGroup = c.typed(
                c.required(v.get("launch_group"), "launch_group")?,
                "accept.operations.launch_group",
            )?;
            Ok(Operation::LaunchGroup {
                executor: Box::new(raw.executor),
                tasks: raw.task_group.tasks,
            })
        }
        "" => Err(c.invalid("Expecting 'type' of each operation to be present")),
        other => Ok(Operation::Unsupported(other.to_owned())),
    }
}

/// The states a task moves through (`mesos.v1.TaskState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    TaskStaging,
    TaskStarting,
    TaskRunning,
    TaskKilling,
    TaskFinished,
    TaskFailed,
    TaskKilled,
    TaskError,
    TaskLost,
    TaskDropped,
    TaskUnreachable,
    TaskGone,
    TaskGoneByOperator,
    TaskUnknown,
}

impl TaskState {
    /// Whether the task can change state no more. UNREACHABLE is not terminal: the agent
    /// may come back.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::TaskFinished
                | TaskState::TaskFailed
                | TaskState::TaskKilled
                | TaskState::TaskError
                | TaskState::TaskLost
                | TaskState::TaskDropped
                | TaskState::TaskGone
                | TaskState::TaskGoneByOperator
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub task_id: Id,
    pub state: TaskState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// SOURCE_MASTER, SOURCE_AGENT or SOURCE_EXECUTOR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<Id>,
    /// Seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<f64>,
    /// base64 of 16 bytes; absent on updates the master makes up, which need no ack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_status: Option<ContainerStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable_time: Option<Nanos>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Address {
    pub hostname: String,
    pub ip: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MasterInfo {
    pub id: String,
    /// The IPv4 address as Mesos encodes it: a little-endian u32 of the network-order
    /// bytes (127.0.0.1 is 16777343).
    pub ip: u32,
    pub port: u16,
    pub pid: String,
    pub hostname: String,
    pub version: String,
    pub address: Address,
    pub capabilities: Vec<Value>,
}

impl MasterInfo {
    pub fn new(id: &str, ip: std::net::Ipv4Addr, hostname: &str, port: u16, version: &str) -> Self {
        MasterInfo {
            id: id.to_owned(),
            ip: u32::from_le_bytes(ip.octets()),
            port,
            pid: format!("master@{ip}:{port}"),
            hostname: hostname.to_owned(),
            version: version.to_owned(),
            address: Address {
                hostname: hostname.to_owned(),
                ip: ip.to_string(),
                port,
            },
            capabilities: vec![
                serde_json::json!({"type": "AGENT_UPDATE"}),
                serde_json::json!({"type": "AGENT_DRAINING"}),
            ],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Url {
    pub scheme: String,
    pub address: Address,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Offer {
    pub id: Id,
    pub framework_id: Id,
    pub agent_id: Id,
    pub hostname: String,
    pub url: Url,
    pub resources: Vec<Resource>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<Value>,
    pub allocation_info: crate::v1::AllocationInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<Value>,
}

/// An event on a framework's stream. Serialized as Mesos does: `{"type": "OFFERS",
/// "offers": {...}}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Subscribed {
        framework_id: Id,
        heartbeat_interval_seconds: f64,
        master_info: MasterInfo,
    },
    Offers(Vec<Offer>),
    Rescind(Id),
    Update(TaskStatus),
    Message {
        agent_id: Id,
        executor_id: Id,
        data: Vec<u8>,
    },
    /// An agent or executor failed; `status` is an executor's wait status.
    Failure {
        agent_id: Id,
        executor_id: Option<Id>,
        status: Option<i32>,
    },
    Error(String),
    Heartbeat,
}

impl Event {
    pub fn to_json(&self) -> Value {
        use serde_json::json;
        match self {
            Event::Subscribed {
                framework_id,
                heartbeat_interval_seconds,
                master_info,
            } => json!({"type": "SUBSCRIBED", "subscribed": {
                "framework_id": framework_id,
                "heartbeat_interval_seconds": heartbeat_interval_seconds,
                "master_info": master_info,
            }}),
            Event::Offers(offers) => json!({"type": "OFFERS", "offers": {"offers": offers}}),
            Event::Rescind(id) => json!({"type": "RESCIND", "rescind": {"offer_id": id}}),
            Event::Update(status) => json!({"type": "UPDATE", "update": {"status": status}}),
            Event::Message {
                agent_id,
                executor_id,
                data,
            } => json!({"type": "MESSAGE", "message": {
                "agent_id": agent_id,
                "executor_id": executor_id,
                "data": crate::base64::encode(data),
            }}),
            Event::Failure {
                agent_id,
                executor_id,
                status,
            } => {
                let mut failure = json!({"agent_id": agent_id});
                if let Some(e) = executor_id {
                    failure["executor_id"] = json!(e);
                }
                if let Some(s) = status {
                    failure["status"] = json!(s);
                }
                json!({"type": "FAILURE", "failure": failure})
            }
            Event::Error(message) => json!({"type": "ERROR", "error": {"message": message}}),
            Event::Heartbeat => json!({"type": "HEARTBEAT"}),
        }
    }
}

/// One RecordIO record: the decimal length of `json`, a newline, then `json`.
pub fn recordio(json: &Value) -> Vec<u8> {
    let body = json.to_string();
    let mut out = format!("{}\n", body.len()).into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Call, ApiError> {
        parse_call(v.to_string().as_bytes())
    }

    fn fixture(path: &str) -> Value {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/mesos-1.11/"
        );
        let text = std::fs::read_to_string(format!("{dir}{path}"))
            .unwrap_or_else(|e| panic!("fixture {path}: {e}"));
        serde_json::from_str(&text).expect("fixture json")
    }

    #[test]
    fn fixture_calls_parse() {
        let sub = fixture("scheduler/01-subscribe.json");
        let call = parse(sub["request"]["body"].clone()).expect("subscribe");
        let CallBody::Subscribe(s) = call.body else {
            panic!("not a subscribe: {call:?}")
        };
        assert_eq!(s.framework_info.user, "root");
        assert_eq!(s.framework_info.effective_roles(), vec!["*".to_owned()]);
        assert!(s.framework_info.has_capability("PARTITION_AWARE"));
        // Fields Holdfast does not interpret are kept to show back.
        let back = serde_json::to_value(&s.framework_info).expect("json");
        assert_eq!(back["failover_timeout"], json!(0.0));

        let accept = fixture("scheduler/02-accept-launch.json");
        let call = parse(accept["request"]["body"].clone()).expect("accept");
        assert_eq!(
            call.framework_id.as_ref().map(|i| i.value.as_str()),
            Some("c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000")
        );
        let CallBody::Accept(a) = call.body else {
            panic!("not an accept")
        };
        assert_eq!(a.offer_ids.len(), 1);
        assert_eq!(a.filters.refuse_seconds, Some(0.5));
        let [Operation::Launch(tasks)] = a.operations.as_slice() else {
            panic!("one launch: {:?}", a.operations)
        };
        assert_eq!(tasks[0].task_id.value, "golden-task-1");
        assert_eq!(tasks[0].resources.len(), 2);

        let ack = fixture("scheduler/06-acknowledge.json");
        let CallBody::Acknowledge(a) = parse(ack["request"]["body"].clone()).expect("ack").body
        else {
            panic!("not an ack")
        };
        assert_eq!(a.uuid.len(), 16);

        let decline = fixture("scheduler/07-decline.json");
        let CallBody::Decline(d) = parse(decline["request"]["body"].clone())
            .expect("decline")
            .body
        else {
            panic!("not a decline")
        };
        assert_eq!(d.filters.refuse_seconds, Some(1.0));
    }

    #[test]
    fn fixture_errors_match_mesos() {
        for name in [
            "15-scheduler-call-missing-framework-id",
            "16-scheduler-subscribe-missing-user",
            "18-scheduler-subscribe-framework-id-mismatch",
            "19-scheduler-invalid-json",
        ] {
            let f = fixture(&format!("errors/{name}.json"));
            let body = match &f["request"]["body"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let err = parse_call(body.as_bytes()).expect_err(name);
            assert_eq!(err.status, f["response"]["status"], "{name}");
            let expected = f["response"]["body"].as_str().expect("text");
            // serde's JSON syntax errors are worded differently from Mesos's; the
            // prefix is what clients match on.
            if name.contains("invalid-json") {
                assert!(
                    err.message.starts_with("Failed to parse body into JSON:"),
                    "{err}"
                );
            } else {
                assert_eq!(err.message, expected, "{name}");
            }
        }
    }

    #[test]
    fn bad_calls_say_what_is_wrong() {
        let fw = json!({"value": "f"});
        let err = parse(json!({"type": "ACKNOWLEDGE", "framework_id": fw,
            "acknowledge": {"agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "Zm9v"}}))
        .expect_err("short uuid");
        assert!(err.message.contains("16 bytes"), "{err}");
        let err = parse(json!({"type": "KILL", "framework_id": fw})).expect_err("no payload");
        assert_eq!(
            err.message,
            "Failed to validate scheduler::Call: Expecting 'kill' to be present"
        );
        let err = parse(json!({"type": "SUBSCRIBE", "subscribe": {"framework_info":
            {"user": "u", "name": "n", "roles": ["a b"]}}}))
        .expect_err("bad role");
        assert!(err.message.contains("invalid role 'a b'"), "{err}");
        let err = parse(json!({"type": "SUBSCRIBE", "subscribe": {"framework_info":
            {"user": "u", "name": "n", "failover_timeout": -1}}}))
        .expect_err("negative failover");
        assert!(err.message.contains("failover_timeout"), "{err}");
        let err = parse(json!({"type": "NOPE", "framework_id": fw})).expect_err("unknown");
        assert!(err.message.contains("unknown call type 'NOPE'"), "{err}");
        let err = parse(json!({"type": "ACCEPT", "framework_id": fw,
            "accept": {"offer_ids": [], "operations": [{"launch": {}}]}}))
        .expect_err("operation without type");
        assert!(err.message.contains("operation"), "{err}");
    }

    #[test]
    fn roles_and_revive() {
        for good in ["*", "web", "eng/web", "a.b"] {
            assert!(validate_role(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "a//b", "a/./b", "..", "a\\b", "x*", "tab\t"] {
            assert!(validate_role(bad).is_err(), "{bad:?}");
        }
        let call =
            parse(json!({"type": "REVIVE", "framework_id": {"value": "f"}})).expect("revive");
        assert_eq!(call.body, CallBody::Revive(Vec::new()));
        let call = parse(json!({"type": "SUPPRESS", "framework_id": {"value": "f"},
            "suppress": {"roles": ["web"]}}))
        .expect("suppress");
        assert_eq!(call.body, CallBody::Suppress(vec!["web".to_owned()]));
    }

    #[test]
    fn events_serialize_as_mesos_does() {
        let sub = fixture("scheduler/01-subscribe.json");
        let info = MasterInfo::new(
            "c5626c28-6e85-4bb4-95c9-ddeb24d2d624",
            std::net::Ipv4Addr::LOCALHOST,
            "127.0.0.1",
            25050,
            "1.11.0",
        );
        let event = Event::Subscribed {
            framework_id: Id::new("c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"),
            heartbeat_interval_seconds: 15.0,
            master_info: info,
        };
        let mut expected = sub["response"]["body"][0].clone();
        // Mesos 1.11 sends an empty capability object for QUOTA_V2, which v1 lacks.
        expected["subscribed"]["master_info"]["capabilities"]
            .as_array_mut()
            .expect("caps")
            .retain(|c| c != &json!({}));
        assert_eq!(event.to_json(), expected);
        assert_eq!(Event::Heartbeat.to_json(), sub["response"]["body"][1]);

        let running = fixture("scheduler/04-update-task-running.json");
        let record = &running["response"]["body"][0];
        let status: TaskStatus =
            serde_json::from_value(record["update"]["status"].clone()).expect("status");
        assert_eq!(status.state, TaskState::TaskRunning);
        assert_eq!(&Event::Update(status).to_json(), record);
        assert_eq!(
            recordio(&json!({"type": "HEARTBEAT"})),
            b"20\n{\"type\":\"HEARTBEAT\"}"
        );
    }
}
