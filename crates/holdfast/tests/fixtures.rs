//! Replays recorded Mesos 1.11 agent exchanges (`../shared/fixtures/mesos-1.11`) against a
//! real agent and checks status codes and bodies match, except where Holdfast differs on
//! purpose (README, "Differences from Mesos").

mod support;

use std::path::PathBuf;

use serde_json::Value;
use support::*;

fn fixture(name: &str) -> Option<Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/mesos-1.11");
    match std::fs::read_to_string(dir.join(name)) {
        Ok(text) => Some(serde_json::from_str(&text).expect("fixture is JSON")),
        Err(e) => {
            skip(
                "HOLDFAST_REQUIRE_CGROUP2",
                &format!("fixture {name} not found beside the project ({e})"),
            );
            None
        }
    }
}

/// Sends the fixture's request and checks the status and, for text or JSON bodies without
/// volatile fields, the body.
fn replay(agent: &Agent, name: &str, compare_body: bool) {
    let Some(f) = fixture(name) else { return };
    let req = &f["request"];
    let body = match &req["body"] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let ct = req["headers"]["Content-Type"].as_str();
    let (status, got) = raw_request(
        agent.port,
        req["method"].as_str().unwrap_or("POST"),
        req["path"].as_str().unwrap_or("/api/v1"),
        ct,
        &body,
    )
    .expect("agent answers");
    let want_status = f["response"]["status"].as_u64().unwrap_or(0) as u16;
    assert_eq!(status, want_status, "{name}: body {got}");
    if compare_body {
        match &f["response"]["body"] {
            Value::String(s) => assert_eq!(&got, s, "{name}"),
            want => {
                let got: Value = serde_json::from_str(&got).expect("json answer");
                assert_eq!(&got, want, "{name}");
            }
        }
    }
}

#[test]
fn agent_operator_fixtures() {
    let Some(mount) = cgroup2() else { return };
    let agent = Agent::start(&mount, &[]);
    replay(&agent, "agent-operator/01-get-health.json", true);
    replay(&agent, "agent-operator/14-launch-container.json", true);
    replay(
        &agent,
        "agent-operator/15-launch-container-existing-id.json",
        true,
    );
    replay(&agent, "agent-operator/16-kill-container.json", true);
    replay(&agent, "agent-operator/17-wait-container-killed.json", true);
    replay(
        &agent,
        "agent-operator/19-launch-container-exit7.json",
        true,
    );
    replay(&agent, "agent-operator/20-wait-container-exit7.json", true);
    // Mesos forgets an exited container (404); Holdfast keeps its status until removed.
    let again = agent.wait(cid("golden-standalone-exit7"));
    assert_eq!(again["wait_container"]["exit_status"], 1792);
    replay(
        &agent,
        "agent-operator/22-launch-container-existing-exited-id.json",
        true,
    );
    replay(
        &agent,
        "agent-operator/24-wait-container-unknown.json",
        true,
    );
    replay(
        &agent,
        "agent-operator/25-kill-container-unknown.json",
        true,
    );
    replay(
        &agent,
        "agent-operator/27-launch-container-no-resources.json",
        true,
    );
    replay(
        &agent,
        "agent-operator/28-kill-container-sigterm.json",
        true,
    );
    replay(&agent, "errors/26-agent-get-on-api.json", true);
    replay(&agent, "errors/27-unknown-path.json", true);
    // Same status; the reason says more than Mesos's.
    replay(&agent, "errors/24-agent-invalid-json.json", false);
    replay(&agent, "errors/25-agent-unknown-call.json", false);
    replay(&agent, "errors/28-agent-master-only-call.json", false);
    replay(&agent, "agent-operator/29-subscribe.json", false);
}
