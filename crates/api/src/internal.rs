//! The protocol between an agent and the master (`POST /internal/v1/agent`), Holdfast's
//! own, shaped like the scheduler API so one set of tools reads both.
//!
//! The agent sends `SUBSCRIBE` and keeps the answer: a chunked RecordIO stream of
//! [`AgentEvent`]s (`REGISTERED` first). Every other [`AgentCall`] is a separate POST
//! carrying the `Mesos-Stream-Id` of that stream and answered 202. A broken stream is a
//! disconnect; the agent subscribes again with the id it was given (reregistration).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::scheduler::{
    ExecutorInfo, FrameworkInfo, Id, KillPolicy, TaskInfo, TaskState, TaskStatus,
};
use crate::v1::Resource;

/// What an agent tells the master about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub hostname: String,
    /// The agent's HTTP port (its operator and executor APIs).
    pub port: u16,
    #[serde(default)]
    pub resources: Vec<Resource>,
    /// Mesos attributes, as `Attribute` JSON.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<Value>,
    /// Mesos `DomainInfo` JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Value>,
}

/// A task the agent runs, reported when it (re)subscribes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    pub framework_id: Id,
    pub task: TaskInfo,
    pub state: TaskState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<Id>,
}

// Messages are decoded once and moved along; their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentCall {
    Subscribe {
        /// Present when the agent was registered before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent_id: Option<Id>,
        info: AgentInfo,
        #[serde(default)]
        tasks: Vec<TaskReport>,
        /// Frameworks the agent runs tasks of.
        #[serde(default)]
        frameworks: Vec<FrameworkInfo>,
    },
    Pong {
        agent_id: Id,
    },
    /// A status update for a framework: carries its uuid and must be acknowledged.
    Update {
        agent_id: Id,
        framework_id: Id,
        status: TaskStatus,
    },
    /// A message from an executor to its framework.
    Message {
        agent_id: Id,
        framework_id: Id,
        executor_id: Id,
        data: String,
    },
    ExecutorExited {
        agent_id: Id,
        framework_id: Id,
        executor_id: Id,
        /// The executor's wait status.
        status: i32,
    },
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentEvent {
    Registered {
        agent_id: Id,
        /// How often the master pings; the agent may treat silence for several
        /// intervals as a lost master.
        ping_interval_seconds: f64,
    },
    Ping,
    RunTask {
        framework: FrameworkInfo,
        task: TaskInfo,
    },
    RunTaskGroup {
        framework: FrameworkInfo,
        executor: ExecutorInfo,
        tasks: Vec<TaskInfo>,
    },
    KillTask {
        framework_id: Id,
        task_id: Id,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kill_policy: Option<KillPolicy>,
    },
    /// The framework acknowledged the update with this uuid (base64).
    Acknowledge {
        framework_id: Id,
        task_id: Id,
        uuid: String,
    },
    Message {
        framework_id: Id,
        executor_id: Id,
        data: String,
    },
    ShutdownExecutor {
        framework_id: Id,
        executor_id: Id,
    },
    ShutdownFramework {
        framework_id: Id,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_events_round_trip_with_a_type_tag() {
        let call = AgentCall::Pong {
            agent_id: Id::new("a-S0"),
        };
        let json = serde_json::to_value(&call).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"type": "PONG", "agent_id": {"value": "a-S0"}})
        );
        assert_eq!(
            serde_json::from_value::<AgentCall>(json).expect("back"),
            call
        );
        let event = AgentEvent::Ping;
        assert_eq!(
            serde_json::to_value(&event).expect("json"),
            serde_json::json!({"type": "PING"})
        );
        let sub: AgentCall = serde_json::from_value(serde_json::json!({
            "type": "SUBSCRIBE",
            "info": {"hostname": "h", "port": 5051, "resources": []}
        }))
        .expect("minimal subscribe");
        assert!(matches!(sub, AgentCall::Subscribe { agent_id: None, .. }));
    }
}
