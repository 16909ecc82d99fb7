//! The master's operator API (`POST /api/v1`, `mesos/v1/master/master.proto`): calls in.
//! The answers are views of the master's state and are written by the master.

use serde::Deserialize;
use serde_json::Value;

use crate::json::CallKind;
use crate::scheduler::{Id, Nanos};
use crate::ApiError;

/// Master call types Holdfast serves.
pub const SUPPORTED_CALLS: &[&str] = &[
    "GET_HEALTH",
    "GET_FLAGS",
    "GET_VERSION",
    "GET_METRICS",
    "GET_STATE",
    "GET_AGENTS",
    "GET_FRAMEWORKS",
    "GET_EXECUTORS",
    "GET_OPERATIONS",
    "GET_TASKS",
    "GET_ROLES",
    "GET_MASTER",
    "SUBSCRIBE",
    "TEARDOWN",
];

/// Master call types that exist in Mesos but that Holdfast does not serve; they get a
/// 501 that names them rather than Mesos's puzzling "type missing".
const KNOWN_UNSUPPORTED_CALLS: &[&str] = &[
    "GET_LOGGING_LEVEL",
    "SET_LOGGING_LEVEL",
    "LIST_FILES",
    "READ_FILE",
    "GET_WEIGHTS",
    "UPDATE_WEIGHTS",
    "RESERVE_RESOURCES",
    "UNRESERVE_RESOURCES",
    "CREATE_VOLUMES",
    "DESTROY_VOLUMES",
    "GROW_VOLUME",
    "SHRINK_VOLUME",
    "GET_MAINTENANCE_STATUS",
    "GET_MAINTENANCE_SCHEDULE",
    "UPDATE_MAINTENANCE_SCHEDULE",
    "START_MAINTENANCE",
    "STOP_MAINTENANCE",
    "DRAIN_AGENT",
    "DEACTIVATE_AGENT",
    "REACTIVATE_AGENT",
    "GET_QUOTA",
    "UPDATE_QUOTA",
    "SET_QUOTA",
    "REMOVE_QUOTA",
    "MARK_AGENT_GONE",
];

const MASTER_CALL: CallKind = CallKind("master::Call");

#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    GetHealth,
    GetFlags,
    GetVersion,
    /// The timeout is accepted and not needed: every metric is read at once.
    GetMetrics {
        timeout: Option<Nanos>,
    },
    GetState,
    GetAgents,
    GetFrameworks,
    GetExecutors,
    GetOperations,
    GetTasks,
    GetRoles,
    GetMaster,
    Subscribe,
    Teardown {
        framework_id: Id,
    },
}

#[derive(Deserialize)]
struct RawGetMetrics {
    #[serde(default)]
    timeout: Option<Nanos>,
}

#[derive(Deserialize)]
struct RawTeardown {
    framework_id: Id,
}

/// Parses the body of the master's `POST /api/v1`. Errors carry Mesos's status and
/// wording.
pub fn parse_call(body: &[u8]) -> Result<Call, ApiError> {
    let c = MASTER_CALL;
    let (obj, kind) = c.envelope(body)?;
    let field = kind.to_ascii_lowercase();
    let payload = obj.get(&field);
    let call = match kind.as_str() {
        "GET_HEALTH" => Call::GetHealth,
        "GET_FLAGS" => Call::GetFlags,
        "GET_VERSION" => Call::GetVersion,
        "GET_METRICS" => {
            let raw: RawGetMetrics = c.typed(c.required(payload, &field)?, &field)?;
            Call::GetMetrics {
                timeout: raw.timeout,
            }
        }
        "GET_STATE" => Call::GetState,
        "GET_AGENTS" => Call::GetAgents,
        "GET_FRAMEWORKS" => Call::GetFrameworks,
        "GET_EXECUTORS" => Call::GetExecutors,
        "GET_OPERATIONS" => Call::GetOperations,
        "GET_TASKS" => Call::GetTasks,
        "GET_ROLES" => Call::GetRoles,
        "GET_MASTER" => Call::GetMaster,
        "SUBSCRIBE" => Call::Subscribe,
        "TEARDOWN" => {
            let raw: RawTeardown = c.typed(c.required(payload, &field)?, &field)?;
            Call::Teardown {
                framework_id: raw.framework_id,
            }
        }
        other if KNOWN_UNSUPPORTED_CALLS.contains(&other) => {
            return Err(ApiError::new(
                501,
                format!("Call type {other} is not supported by this master"),
            ));
        }
        other => return Err(c.unknown(other, SUPPORTED_CALLS)),
    };
    Ok(call)
}

/// The answer to a call that carries no data (`{"type": "GET_HEALTH", ...}` has
/// `get_health`): `{"type": <kind>, "<kind in lower case>": payload}`.
pub fn response(kind: &str, payload: Value) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("type".to_owned(), Value::String(kind.to_owned()));
    out.insert(kind.to_ascii_lowercase(), payload);
    Value::Object(out)
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
        for (path, expected) in [
            ("master-operator/01-get-health.json", Call::GetHealth),
            ("master-operator/04-get-state.json", Call::GetState),
            (
                "master-operator/10-get-metrics-with-body.json",
                Call::GetMetrics {
                    timeout: Some(Nanos {
                        nanoseconds: 5_000_000_000,
                    }),
                },
            ),
            (
                "master-operator/11-get-metrics-empty-body.json",
                Call::GetMetrics { timeout: None },
            ),
            ("master-operator/20-subscribe.json", Call::Subscribe),
            ("errors/32-get-state-unknown-field.json", Call::GetHealth),
        ] {
            let f = fixture(path);
            assert_eq!(parse(f["request"]["body"].clone()), Ok(expected), "{path}");
        }
    }

    #[test]
    fn fixture_errors_match_mesos() {
        for path in [
            "master-operator/12-get-metrics-without-body.json",
            "errors/08-missing-type.json",
            "errors/09-wrong-field-type.json",
        ] {
            let f = fixture(path);
            let err = parse(f["request"]["body"].clone()).expect_err(path);
            assert_eq!(err.status, f["response"]["status"], "{path}");
            assert_eq!(err.message, f["response"]["body"], "{path}");
        }
        // Unknown types keep Mesos's wording first, then say which type and what exists.
        for path in [
            "errors/02-unknown-call-type.json",
            "errors/29-master-agent-only-call.json",
            "errors/33-enum-lowercase.json",
        ] {
            let f = fixture(path);
            let err = parse(f["request"]["body"].clone()).expect_err(path);
            assert_eq!(err.status, 400, "{path}");
            let mesos = f["response"]["body"].as_str().expect("text");
            assert!(err.message.starts_with(mesos), "{path}: {err}");
            let kind = f["request"]["body"]["type"].as_str().expect("type");
            assert!(
                err.message.contains(&format!("unknown call type '{kind}'")),
                "{err}"
            );
            assert!(err.message.contains("GET_STATE"), "lists the known: {err}");
        }
    }

    #[test]
    fn calls_holdfast_does_not_serve_say_so() {
        for kind in ["GET_QUOTA", "GET_MAINTENANCE_STATUS", "RESERVE_RESOURCES"] {
            let err = parse(json!({ "type": kind })).expect_err(kind);
            assert_eq!(err.status, 501);
            assert!(err.message.contains(kind), "{err}");
        }
    }

    #[test]
    fn teardown_needs_a_framework_id() {
        assert_eq!(
            parse(json!({"type": "TEARDOWN", "teardown": {"framework_id": {"value": "f"}}})),
            Ok(Call::Teardown {
                framework_id: Id::new("f")
            })
        );
        let err = parse(json!({"type": "TEARDOWN"})).expect_err("no payload");
        assert_eq!(
            err.message,
            "Failed to validate master::Call: Expecting 'teardown' to be present"
        );
        let err = parse(json!({"type": "TEARDOWN", "teardown": {}})).expect_err("no id");
        assert!(err.message.contains("framework_id"), "{err}");
    }

    #[test]
    fn responses_name_their_payload_after_the_type() {
        assert_eq!(
            response("GET_HEALTH", json!({"healthy": true})),
            fixture("master-operator/01-get-health.json")["response"]["body"]
        );
    }
}
