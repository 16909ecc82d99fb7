//! The agent's operator API (`POST /api/v1`, `mesos/v1/agent/agent.proto`): calls in,
//! responses out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::json::CallKind;
use crate::v1::{
    CommandInfo, ContainerId, ContainerInfo, ContainerStatus, Resource, ResourceStatistics, Scalar,
    TaskResourceLimitation, VersionInfo,
};
use crate::ApiError;

/// Agent call types Holdfast serves.
pub const SUPPORTED_CALLS: &[&str] = &[
    "GET_HEALTH",
    "GET_VERSION",
    "GET_FLAGS",
    "GET_METRICS",
    "GET_CONTAINERS",
    "LIST_FILES",
    "READ_FILE",
    "LAUNCH_CONTAINER",
    "WAIT_CONTAINER",
    "KILL_CONTAINER",
    "REMOVE_CONTAINER",
    "UPDATE_CONTAINER",
    "GET_STATE",
    "GET_FRAMEWORKS",
    "GET_EXECUTORS",
    "GET_TASKS",
    "GET_AGENT",
];

/// Agent call types that exist in Mesos but that this agent does not serve yet; they get
/// a 501 that says so rather than Mesos's puzzling "type missing".
const KNOWN_UNSUPPORTED_CALLS: &[&str] = &[
    "GET_LOGGING_LEVEL",
    "SET_LOGGING_LEVEL",
    "GET_OPERATIONS",
    "GET_RESOURCE_PROVIDERS",
    "LAUNCH_NESTED_CONTAINER",
    "WAIT_NESTED_CONTAINER",
    "KILL_NESTED_CONTAINER",
    "REMOVE_NESTED_CONTAINER",
    "LAUNCH_NESTED_CONTAINER_SESSION",
    "ATTACH_CONTAINER_INPUT",
    "ATTACH_CONTAINER_OUTPUT",
    "ADD_RESOURCE_PROVIDER_CONFIG",
    "UPDATE_RESOURCE_PROVIDER_CONFIG",
    "REMOVE_RESOURCE_PROVIDER_CONFIG",
    "MARK_RESOURCE_PROVIDER_GONE",
    "PRUNE_IMAGES",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    GetHealth,
    GetVersion,
    GetFlags,
    GetMetrics,
    GetContainers(GetContainers),
    ListFiles(ListFiles),
    ReadFile(ReadFile),
    LaunchContainer(LaunchContainer),
    WaitContainer(ContainerId),
    KillContainer(KillContainer),
    RemoveContainer(ContainerId),
    UpdateContainer(UpdateContainer),
    GetState,
    GetFrameworks,
    GetExecutors,
    GetTasks,
    GetAgent,
}

/// Holdfast extension (Mesos's agent API has no such call): new requests and limits for a
/// running container, applied to its cgroup at once.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UpdateContainer {
    pub container_id: ContainerId,
    #[serde(default)]
    pub resources: Vec<Resource>,
    #[serde(default)]
    pub limits: BTreeMap<String, Scalar>,
    /// A lower memory limit is applied only when this is true (and never below what the
    /// container uses now): lowering it can OOM-kill the container.
    #[serde(default)]
    pub lower_memory_limit: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct GetContainers {
    #[serde(default)]
    pub show_nested: bool,
    #[serde(default)]
    pub show_standalone: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchContainer {
    pub container_id: ContainerId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
    /// Limits above the requests in `resources`, by resource name (`cpus`, `mem`); an
    /// infinite value means unlimited.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, Scalar>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct KillContainer {
    pub container_id: ContainerId,
    #[serde(default)]
    pub signal: Option<i32>,
}

/// LIST_FILES: the entries of a directory the agent serves (see the agent's `files`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ListFiles {
    pub path: String,
}

/// READ_FILE: up to `length` bytes (capped by the agent) from `offset`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReadFile {
    pub path: String,
    pub offset: u64,
    #[serde(default)]
    pub length: Option<u64>,
}

#[derive(Deserialize)]
struct ContainerIdOnly {
    container_id: ContainerId,
}

const AGENT_CALL: CallKind = CallKind("agent::Call");

fn validation_error(reason: impl std::fmt::Display) -> ApiError {
    AGENT_CALL.invalid(reason)
}

/// Parses the body of `POST /api/v1` into a call. Errors carry the status Mesos uses and
/// a one-line reason.
pub fn parse_call(body: &[u8]) -> Result<Call, ApiError> {
    let (obj, kind) = AGENT_CALL.envelope(body)?;
    let kind = kind.as_str();

    // The payload of a call lives under the lower-cased call name.
    let field = kind.to_ascii_lowercase();
    let payload = obj.get(&field);
    let call = match kind {
        "GET_HEALTH" => Call::GetHealth,
        "GET_VERSION" => Call::GetVersion,
        "GET_FLAGS" => Call::GetFlags,
        // `get_metrics.timeout` is accepted and has nothing to wait for: every metric is
        // a counter read at once.
        "GET_METRICS" => Call::GetMetrics,
        "GET_STATE" => Call::GetState,
        "GET_FRAMEWORKS" => Call::GetFrameworks,
        "GET_EXECUTORS" => Call::GetExecutors,
        "GET_TASKS" => Call::GetTasks,
        "GET_AGENT" => Call::GetAgent,
        "GET_CONTAINERS" => Call::GetContainers(match payload {
            None | Some(Value::Null) => GetContainers::default(),
            Some(v) => typed(v, &field)?,
        }),
        "LAUNCH_CONTAINER" => {
            let launch: LaunchContainer = typed(required(payload, &field)?, &field)?;
            validate_id(&launch.container_id)?;
            if let Some(cmd) = &launch.command {
                validate_command(cmd)?;
            }
            if let Some(info) = &launch.container {
                validate_rlimits(info)?;
            }
            Call::LaunchContainer(launch)
        }
        "WAIT_CONTAINER" => {
            let c: ContainerIdOnly = typed(required(payload, &field)?, &field)?;
            validate_id(&c.container_id)?;
            Call::WaitContainer(c.container_id)
        }
        "KILL_CONTAINER" => {
            let k: KillContainer = typed(required(payload, &field)?, &field)?;
            validate_id(&k.container_id)?;
            if let Some(sig) = k.signal {
                if !(1..=64).contains(&sig) {
                    return Err(validation_error(format!(
                        "'kill_container.signal' {sig} is not a signal number (1-64)"
                    )));
                }
            }
            Call::KillContainer(k)
        }
        "REMOVE_CONTAINER" => {
            let c: ContainerIdOnly = typed(required(payload, &field)?, &field)?;
            validate_id(&c.container_id)?;
            Call::RemoveContainer(c.container_id)
        }
        "UPDATE_CONTAINER" => {
            let u: UpdateContainer = typed(required(payload, &field)?, &field)?;
            validate_id(&u.container_id)?;
            Call::UpdateContainer(u)
        }
        "LIST_FILES" => Call::ListFiles(typed(required(payload, &field)?, &field)?),
        "READ_FILE" => Call::ReadFile(typed(required(payload, &field)?, &field)?),
        other if KNOWN_UNSUPPORTED_CALLS.contains(&other) => {
            return Err(ApiError::new(
                501,
                format!("Call type {other} is not supported by this agent yet"),
            ));
        }
        other => return Err(AGENT_CALL.unknown(other, SUPPORTED_CALLS)),
    };
    Ok(call)
}

fn required<'a>(payload: Option<&'a Value>, field: &str) -> Result<&'a Value, ApiError> {
    AGENT_CALL.required(payload, field)
}

fn typed<T: serde::de::DeserializeOwned>(v: &Value, field: &str) -> Result<T, ApiError> {
    AGENT_CALL.typed(v, field)
}

fn validate_id(id: &ContainerId) -> Result<(), ApiError> {
    id.validate().map_err(validation_error)
}

fn validate_command(cmd: &CommandInfo) -> Result<(), ApiError> {
    if cmd.is_shell() {
        if cmd.value.as_deref().is_none_or(|v| v.trim().is_empty()) {
            return Err(validation_error(
                "'command.value' must be a non-empty shell command when 'command.shell' is true",
            ));
        }
    } else if cmd.value.as_deref().is_none_or(str::is_empty) {
        return Err(validation_error(
            "'command.value' must name the program to run when 'command.shell' is false",
        ));
    }
    if let Some(env) = &cmd.environment {
        for var in &env.variables {
            if var.name.is_empty() || var.name.contains('=') || var.name.contains('\0') {
                return Err(validation_error(format!(
                    "environment variable name '{}' is invalid",
                    var.name.escape_default()
                )));
            }
            if let Some(kind) = var.kind.as_deref() {
                if kind != "VALUE" {
                    return Err(validation_error(format!(
                        "environment variable '{}' has type {kind}; only VALUE is supported",
                        var.name
                    )));
                }
            }
        }
    }
    Ok(())
}

fn validate_rlimits(info: &ContainerInfo) -> Result<(), ApiError> {
    for r in info.rlimit_info.iter().flat_map(|i| i.rlimits.iter()) {
        if crate::v1::rlimit_resource(&r.kind).is_none() {
            return Err(validation_error(format!(
                "unknown rlimit type '{}' (expected one of RLMT_AS, RLMT_CORE, ..., RLMT_STACK)",
                r.kind.escape_default()
            )));
        }
        if let (Some(soft), Some(hard)) = (r.soft, r.hard) {
            if soft > hard {
                return Err(validation_error(format!(
                    "rlimit {}: soft limit {soft} is above hard limit {hard}",
                    r.kind
                )));
            }
        }
    }
    Ok(())
}

/// One entry of `GET_CONTAINERS`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerEntry {
    pub container_id: ContainerId,
    pub container_status: ContainerStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_statistics: Option<ResourceStatistics>,
}

/// One `GET_FLAGS` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flag {
    pub name: String,
    pub value: String,
}

/// `WAIT_CONTAINER`'s answer. `exit_status` is the raw wait(2) status, as Mesos reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WaitContainerResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limitation: Option<TaskResourceLimitation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One directory entry of LIST_FILES (Mesos's `FileInfo`): `mode` is `st_mode` and
/// `mtime` whole seconds, as Mesos reports them; `uid` and `gid` are names where the host
/// has them, else the numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileInfo {
    pub path: String,
    pub nlink: u64,
    pub size: u64,
    pub mtime: TimeInfo,
    pub mode: u32,
    pub uid: String,
    pub gid: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimeInfo {
    pub nanoseconds: i64,
}

impl TimeInfo {
    pub fn from_secs(secs: i64) -> TimeInfo {
        TimeInfo {
            nanoseconds: secs.saturating_mul(1_000_000_000),
        }
    }
}

pub fn list_files_response(files: &[FileInfo]) -> Value {
    json!({"type": "LIST_FILES", "list_files": {"file_infos": files}})
}

/// READ_FILE's answer: `data` is a protobuf `bytes` field, so base64.
pub fn read_file_response(size: u64, data: &[u8]) -> Value {
    json!({"type": "READ_FILE", "read_file": {"size": size, "data": crate::base64::encode(data)}})
}

pub fn health_response(healthy: bool) -> Value {
    json!({"type": "GET_HEALTH", "get_health": {"healthy": healthy}})
}

/// GET_METRICS: Mesos's list of `{name, value}`.
pub fn metrics_response(metrics: &std::collections::BTreeMap<String, f64>) -> Value {
    let list: Vec<Value> = metrics
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    json!({"type": "GET_METRICS", "get_metrics": {"metrics": list}})
}

pub fn version_response(info: &VersionInfo) -> Value {
    json!({"type": "GET_VERSION", "get_version": {"version_info": info}})
}

pub fn flags_response(flags: &[Flag]) -> Value {
    json!({"type": "GET_FLAGS", "get_flags": {"flags": flags}})
}

pub fn containers_response(containers: &[ContainerEntry]) -> Value {
    json!({"type": "GET_CONTAINERS", "get_containers": {"containers": containers}})
}

pub fn wait_response(wait: &WaitContainerResponse) -> Value {
    json!({"type": "WAIT_CONTAINER", "wait_container": wait})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> ApiError {
        parse_call(body.as_bytes()).expect_err(body)
    }

    #[test]
    fn parses_the_calls_mesos_clients_send() {
        assert_eq!(
            parse_call(br#"{"type":"GET_HEALTH","bogus":1}"#),
            Ok(Call::GetHealth)
        );
        assert_eq!(
            parse_call(br#"{"type":"GET_CONTAINERS","get_containers":{"show_nested":true,"show_standalone":true}}"#),
            Ok(Call::GetContainers(GetContainers { show_nested: true, show_standalone: true }))
        );
        let launch = br#"{"type":"LAUNCH_CONTAINER","launch_container":{"container_id":{"value":"c1"},
            "command":{"value":"echo standalone; sleep 100","shell":true},
            "resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":32}}]}}"#;
        match parse_call(launch) {
            Ok(Call::LaunchContainer(l)) => {
                assert_eq!(l.container_id, ContainerId::new("c1"));
                assert_eq!(l.resources.len(), 2);
                assert_eq!(crate::v1::scalar_sum(&l.resources, "mem"), Some(32.0));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_call(br#"{"type":"KILL_CONTAINER","kill_container":{"container_id":{"value":"c","parent":{"value":"p"}},"signal":15}}"#),
            Ok(Call::KillContainer(KillContainer { container_id: ContainerId::new("p").child("c"), signal: Some(15) }))
        );
        let update =
            br#"{"type":"UPDATE_CONTAINER","update_container":{"container_id":{"value":"c1"},
            "resources":[{"name":"mem","type":"SCALAR","scalar":{"value":64}}],
            "limits":{"mem":{"value":"Infinity"}},"lower_memory_limit":true}}"#;
        match parse_call(update) {
            Ok(Call::UpdateContainer(u)) => {
                assert_eq!(u.container_id, ContainerId::new("c1"));
                assert_eq!(crate::v1::scalar_sum(&u.resources, "mem"), Some(64.0));
                assert_eq!(u.limits.get("mem").map(|s| s.value), Some(f64::INFINITY));
                assert!(u.lower_memory_limit);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_input_gets_a_one_line_reason() {
        let cases: &[(&str, u16, &str)] = &[
            ("[", 400, "Failed to parse body into JSON"),
            (
                "{}",
                400,
                "Failed to validate agent::Call: Expecting 'type' to be present",
            ),
            (r#"{"type":"GET_FOO"}"#, 400, "unknown call type 'GET_FOO'"),
            (
                r#"{"type":"get_health"}"#,
                400,
                "unknown call type 'get_health'",
            ),
            (r#"{"type":"GET_AGENTS"}"#, 400, "unknown call type"),
            (
                r#"{"type":1}"#,
                400,
                "Not expecting a JSON number for field 'type'",
            ),
            (
                r#"{"type":"LAUNCH_CONTAINER"}"#,
                400,
                "Expecting 'launch_container' to be present",
            ),
            (
                r#"{"type":"LAUNCH_CONTAINER","launch_container":{}}"#,
                400,
                "missing field `container_id`",
            ),
            (
                r#"{"type":"LAUNCH_CONTAINER","launch_container":{"container_id":{"value":"../x"}}}"#,
                400,
                "container id '../x'",
            ),
            (
                r#"{"type":"LAUNCH_CONTAINER","launch_container":{"container_id":{"value":""}}}"#,
                400,
                "must not be empty",
            ),
            (
                r#"{"type":"LAUNCH_CONTAINER","launch_container":{"container_id":{"value":"a"},"command":{"shell":true}}}"#,
                400,
                "'command.value'",
            ),
            (
                r#"{"type":"KILL_CONTAINER","kill_container":{"container_id":{"value":"a"},"signal":99}}"#,
                400,
                "not a signal number",
            ),
            (
                r#"{"type":"WAIT_CONTAINER","wait_container":{"container_id":{"value":"x","parent":{"value":".."}}}}"#,
                400,
                "'..' is not allowed",
            ),
            (
                r#"{"type":"GET_OPERATIONS"}"#,
                501,
                "not supported by this agent yet",
            ),
        ];
        for (body, status, needle) in cases {
            let e = err(body);
            assert_eq!(e.status, *status, "{body}: {e}");
            assert!(e.message.contains(needle), "{body}: {}", e.message);
            assert!(!e.message.contains('\n'), "{body}: multi-line reason");
        }
    }

    #[test]
    fn file_calls_parse_and_answer_as_mesos() {
        // The bodies of agent-operator/30-list-files.json and 31-read-file.json.
        assert_eq!(
            parse_call(br#"{"type":"LIST_FILES","list_files":{"path":"/w/containers/c1"}}"#),
            Ok(Call::ListFiles(ListFiles {
                path: "/w/containers/c1".into()
            }))
        );
        assert_eq!(
            parse_call(br#"{"type":"READ_FILE","read_file":{"path":"/w/c/stdout","offset":0,"length":100}}"#),
            Ok(Call::ReadFile(ReadFile {
                path: "/w/c/stdout".into(),
                offset: 0,
                length: Some(100)
            }))
        );
        assert_eq!(
            parse_call(br#"{"type":"READ_FILE","read_file":{"path":"/w/c/stdout","offset":7}}"#),
            Ok(Call::ReadFile(ReadFile {
                path: "/w/c/stdout".into(),
                offset: 7,
                length: None
            }))
        );
        for (body, needle) in [
            (
                r#"{"type":"LIST_FILES"}"#,
                "Expecting 'list_files' to be present",
            ),
            (
                r#"{"type":"READ_FILE","read_file":{"path":"/x"}}"#,
                "missing field `offset`",
            ),
            (
                r#"{"type":"READ_FILE","read_file":{"path":"/x","offset":-1}}"#,
                "in 'read_file'",
            ),
        ] {
            let e = err(body);
            assert_eq!(e.status, 400, "{body}: {e}");
            assert!(e.message.contains(needle), "{body}: {}", e.message);
        }

        let info = FileInfo {
            path: "/w/c/stdout".into(),
            nlink: 1,
            size: 1077,
            mtime: TimeInfo::from_secs(1795290214),
            mode: 0o100644,
            uid: "root".into(),
            gid: "root".into(),
        };
        assert_eq!(
            list_files_response(&[info]),
            json!({"type": "LIST_FILES", "list_files": {"file_infos": [{
                "path": "/w/c/stdout", "nlink": 1, "size": 1077,
                "mtime": {"nanoseconds": 1795290214000000000_i64},
                "mode": 33188, "uid": "root", "gid": "root"
            }]}})
        );
        assert_eq!(
            read_file_response(1077, b"hello-from-golden-task\n"),
            json!({"type": "READ_FILE", "read_file": {"size": 1077, "data": "aGVsbG8tZnJvbS1nb2xkZW4tdGFzawo="}})
        );
    }

    #[test]
    fn wait_response_matches_mesos() {
        let v = wait_response(&WaitContainerResponse {
            exit_status: Some(1792),
            ..Default::default()
        });
        assert_eq!(
            v,
            json!({"type":"WAIT_CONTAINER","wait_container":{"exit_status":1792}})
        );
    }
}
