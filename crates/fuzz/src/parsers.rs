//! Targets for the pure call parsers: the scheduler API, the agent operator API, the
//! executor API and the internal agent protocol. Besides not panicking, a refused call must be refused the
//! way clients rely on: a 4xx (or 501 for a call named as not served) and a non-empty,
//! one-line reason.

use holdfast_api::internal::AgentCall;
use holdfast_api::{agent, executor, scheduler, ApiError};

use crate::corpus::{Corpus, AGENT_SEEDS, INTERNAL_SEEDS, SCHEDULER_SEEDS};
use crate::{Finding, Target};

/// A short, stable description of an outcome: the reason up to its first quoted part
/// (which echoes the input), without digits. Inputs with a new one join the pool.
pub fn signature(prefix: &str, reason: &str) -> String {
    let cut = reason.find(['"', '\'', '`']).unwrap_or(reason.len());
    let stem: String = reason[..cut]
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .take(80)
        .collect();
    format!("{prefix} {stem}")
}

/// Checks a refusal against what the HTTP surface promises for bad input.
fn check_refusal(e: &ApiError) -> Result<String, Finding> {
    if !((400..500).contains(&e.status) || e.status == 501) {
        return Err(Finding::new(
            format!("parser answered status {}", e.status),
            format!("bad input must get a 4xx, got {e}"),
        ));
    }
    if e.message.trim().is_empty() || e.message.contains(['\n', '\r']) {
        return Err(Finding::new(
            "parser reason is empty or not one line",
            format!("{:?}", e.message),
        ));
    }
    Ok(signature(&format!("err {}", e.status), &e.message))
}

fn seeds(corpus: &Corpus, paths: &[&str], extra: &[&str]) -> Vec<Vec<u8>> {
    let mut out = corpus.bodies_for(paths);
    out.extend(extra.iter().map(|s| s.as_bytes().to_vec()));
    out
}

/// `holdfast_api::scheduler::parse_call`.
pub struct SchedulerParser {
    seeds: Vec<Vec<u8>>,
}

impl SchedulerParser {
    pub fn new(corpus: &Corpus) -> SchedulerParser {
        SchedulerParser {
            seeds: seeds(corpus, &["/api/v1/scheduler"], SCHEDULER_SEEDS),
        }
    }
}

impl Target for SchedulerParser {
    fn name(&self) -> &'static str {
        "scheduler"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        self.seeds.clone()
    }

    fn run(&mut self, input: &[u8]) -> Result<String, Finding> {
        match scheduler::parse_call(input) {
            Ok(call) => Ok(format!("ok {}", call.body.name())),
            Err(e) => check_refusal(&e),
        }
    }
}

/// `holdfast_api::agent::parse_call` (the agent's operator API).
pub struct AgentParser {
    seeds: Vec<Vec<u8>>,
}

impl AgentParser {
    pub fn new(corpus: &Corpus) -> AgentParser {
        AgentParser {
            seeds: seeds(corpus, &["/api/v1", "/api/v1/operator"], AGENT_SEEDS),
        }
    }
}

impl Target for AgentParser {
    fn name(&self) -> &'static str {
        "agent"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        self.seeds.clone()
    }

    fn run(&mut self, input: &[u8]) -> Result<String, Finding> {
        match agent::parse_call(input) {
            Ok(call) => Ok(format!("ok {}", agent_operator_call_name(&call))),
            Err(e) => check_refusal(&e),
        }
    }
}

/// `holdfast_api::executor::parse_call` (the agent's `/api/v1/executor`).
pub struct ExecutorParser {
    seeds: Vec<Vec<u8>>,
}

impl ExecutorParser {
    pub fn new(corpus: &Corpus) -> ExecutorParser {
        ExecutorParser {
            seeds: seeds(corpus, &["/api/v1/executor"], &[]),
        }
    }
}

impl Target for ExecutorParser {
    fn name(&self) -> &'static str {
        "executor"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        self.seeds.clone()
    }

    fn run(&mut self, input: &[u8]) -> Result<String, Finding> {
        match executor::parse_call(input) {
            Ok(call) => Ok(format!(
                "ok {}",
                match call.body {
                    executor::CallBody::Subscribe { .. } => "SUBSCRIBE",
                    executor::CallBody::Update(_) => "UPDATE",
                    executor::CallBody::Message(_) => "MESSAGE",
                }
            )),
            Err(e) => check_refusal(&e),
        }
    }
}

/// `serde_json::from_slice::<AgentCall>`, as the master's `/internal/v1/agent` reads it.
pub struct InternalParser {
    seeds: Vec<Vec<u8>>,
}

impl InternalParser {
    pub fn new(corpus: &Corpus) -> InternalParser {
        // The executor API's calls are the nearest relatives in the fixtures.
        InternalParser {
            seeds: seeds(corpus, &["/api/v1/executor"], INTERNAL_SEEDS),
        }
    }
}

fn agent_operator_call_name(call: &agent::Call) -> &'static str {
    match call {
        agent::Call::GetHealth => "GET_HEALTH",
        agent::Call::GetVersion => "GET_VERSION",
        agent::Call::GetFlags => "GET_FLAGS",
        agent::Call::GetMetrics => "GET_METRICS",
        agent::Call::GetContainers(_) => "GET_CONTAINERS",
        agent::Call::LaunchContainer(_) => "LAUNCH_CONTAINER",
        agent::Call::WaitContainer(_) => "WAIT_CONTAINER",
        agent::Call::KillContainer(_) => "KILL_CONTAINER",
        agent::Call::RemoveContainer(_) => "REMOVE_CONTAINER",
        agent::Call::UpdateContainer(_) => "UPDATE_CONTAINER",
        agent::Call::GetState => "GET_STATE",
        agent::Call::GetFrameworks => "GET_FRAMEWORKS",
        agent::Call::GetExecutors => "GET_EXECUTORS",
        agent::Call::GetTasks => "GET_TASKS",
        agent::Call::GetAgent => "GET_AGENT",
        agent::Call::ListFiles(_) => "LIST_FILES",
        agent::Call::ReadFile(_) => "READ_FILE",
    }
}

pub fn agent_call_name(call: &AgentCall) -> &'static str {
    match call {
        AgentCall::Subscribe { .. } => "SUBSCRIBE",
        AgentCall::Pong { .. } => "PONG",
        AgentCall::Update { .. } => "UPDATE",
        AgentCall::Message { .. } => "MESSAGE",
        AgentCall::ExecutorExited { .. } => "EXECUTOR_EXITED",
    }
}

impl Target for InternalParser {
    fn name(&self) -> &'static str {
        "internal"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        self.seeds.clone()
    }

    fn run(&mut self, input: &[u8]) -> Result<String, Finding> {
        match serde_json::from_slice::<AgentCall>(input) {
            Ok(call) => Ok(format!("ok {}", agent_call_name(&call))),
            Err(e) => Ok(signature("err", &e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_drop_what_echoes_the_input() {
        assert_eq!(
            signature("err 400", "unknown call type 'X1' (known: A)"),
            "err 400 unknown call type "
        );
        assert_eq!(signature("e", "at line 12 column 3"), "e at line  column ");
    }

    #[test]
    fn a_server_error_from_a_parser_is_a_finding() {
        let finding = check_refusal(&ApiError::internal("boom")).expect_err("500");
        assert!(finding.kind.contains("500"), "{}", finding.kind);
        assert!(check_refusal(&ApiError::new(501, "not served")).is_ok());
        assert!(check_refusal(&ApiError::bad_request("  ")).is_err());
    }
}
