//! `holdfast execute`: a one-task framework. It subscribes to the master, launches the
//! command on the first offer that fits, prints each state change, and exits with the
//! task's exit status (as `mesos-execute` does).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use holdfast_http::{Client, EventStream};
use holdfast_resources::Resources;
use serde_json::{json, Value};

#[derive(Debug, Clone, Args)]
pub struct ExecuteFlags {
    /// The master, `host:port` or `http://host:port`.
    #[arg(
        long = "master",
        env = "HOLDFAST_MASTER",
        default_value = "127.0.0.1:5050"
    )]
    pub master: String,
    /// The shell command to run.
    #[arg(long = "command")]
    pub command: String,
    /// What the task asks for, e.g. `cpus:0.1;mem:32`.
    #[arg(long = "resources", default_value = "cpus:0.1;mem:32")]
    pub resources: String,
    /// The task's name (and the start of its id).
    #[arg(long = "name", default_value = "holdfast-execute")]
    pub name: String,
    /// The role the framework subscribes with.
    #[arg(long = "role", default_value = "*")]
    pub role: String,
    /// The user the task runs as (default: the one running this command).
    #[arg(long = "user")]
    pub user: Option<String>,
    /// Give up if no offer fits within this long (e.g. `1mins`).
    #[arg(long = "offer_timeout", default_value = "1mins", value_parser = crate::flags::parse_duration)]
    pub offer_timeout: Duration,
}

const SCHEDULER: &str = "/api/v1/scheduler";

pub fn run(flags: ExecuteFlags) -> anyhow::Result<ExitCode> {
    let master = holdfast_http::parse_endpoint(&flags.master)
        .map_err(|e| anyhow::anyhow!("--master {e}"))?;
    let want =
        Resources::parse(&flags.resources, "*").map_err(|e| anyhow::anyhow!("--resources: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(execute(flags, master, want))
}

struct Framework {
    client: Client,
    stream_id: String,
    id: Value,
}

impl Framework {
    async fn call(&self, mut body: Value) -> anyhow::Result<()> {
        body["framework_id"] = self.id.clone();
        self.client
            .call(SCHEDULER, &[("Mesos-Stream-Id", &self.stream_id)], &body)
            .await
            .with_context(|| format!("{} call", body["type"].as_str().unwrap_or("scheduler")))?;
        Ok(())
    }
}

async fn execute(flags: ExecuteFlags, master: String, want: Resources) -> anyhow::Result<ExitCode> {
    let client = Client::new(master.clone(), Duration::from_secs(30));
    let user = flags.user.clone().unwrap_or_else(current_user);
    let subscribe = json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
        "user": user, "name": format!("{} ({})", flags.name, flags.command),
        "roles": [flags.role], "failover_timeout": 0.0,
        "capabilities": [{"type": "MULTI_ROLE"}, {"type": "TASK_KILLING_STATE"}]}}});
    let mut events = client
        .subscribe(SCHEDULER, &[], &subscribe)
        .await
        .with_context(|| format!("cannot subscribe to the master at {master}"))?;
    let stream_id = events.header("mesos-stream-id").unwrap_or("").to_owned();
    let first = next(&mut events).await?;
    if first["type"] == "ERROR" {
        bail!(
            "the master refused the framework: {}",
            first["error"]["message"]
        );
    }
    let id = first["subscribed"]["framework_id"].clone();
    println!("Subscribed with ID {}", id["value"].as_str().unwrap_or(""));
    let fw = Framework {
        client,
        stream_id,
        id,
    };
    let result = run_task(&fw, &mut events, &flags, &want).await;
    // The framework is done either way; its resources go back at once.
    if let Err(e) = fw.call(json!({"type": "TEARDOWN"})).await {
        eprintln!("warning: TEARDOWN failed: {e:#}");
    }
    result
}

async fn run_task(
    fw: &Framework,
    events: &mut EventStream,
    flags: &ExecuteFlags,
    want: &Resources,
) -> anyhow::Result<ExitCode> {
    let task_id = format!("{}-{}", flags.name, &holdfast_api::ids::uuid4()[..8]);
    let offer_deadline = tokio::time::Instant::now() + flags.offer_timeout;
    let mut launched = false;
    let mut interrupted = false;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot handle SIGINT")?;
    loop {
        let event = tokio::select! {
            e = next(events) => e?,
            _ = tokio::time::sleep_until(offer_deadline), if !launched => {
                bail!("no offer with {} arrived within {:?}", flags.resources, flags.offer_timeout);
            }
            _ = sigint.recv(), if !interrupted => {
                if !launched {
                    bail!("interrupted before the task was launched");
                }
                interrupted = true;
                eprintln!("Interrupted: killing task '{task_id}'");
                fw.call(json!({"type": "KILL", "kill": {"task_id": {"value": task_id}}})).await?;
                continue;
            }
        };
        match event["type"].as_str() {
            Some("OFFERS") => {
                for offer in event["offers"]["offers"].as_array().into_iter().flatten() {
                    let fits = !launched
                        && Resources::new(
                            serde_json::from_value::<Vec<holdfast_api::v1::Resource>>(
                                offer["resources"].clone(),
                            )
                            .unwrap_or_default(),
                        )
                        .map(|r| r.unallocated().contains(want))
                        .unwrap_or(false);
                    if !fits {
                        fw.call(
                            json!({"type": "DECLINE", "decline": {"offer_ids": [offer["id"]]}}),
                        )
                        .await?;
                        continue;
                    }
                    let task = json!({
                        "name": flags.name, "task_id": {"value": task_id},
                        "agent_id": offer["agent_id"],
                        "resources": want.to_vec(),
                        "command": {"shell": true, "value": flags.command}});
                    fw.call(json!({"type": "ACCEPT", "accept": {
                        "offer_ids": [offer["id"]],
                        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}}))
                        .await?;
                    launched = true;
                    println!(
                        "Submitted task '{task_id}' to agent '{}'",
                        offer["agent_id"]["value"].as_str().unwrap_or("")
                    );
                }
            }
            Some("UPDATE") => {
                let status = &event["update"]["status"];
                if status["task_id"]["value"] != task_id.as_str() {
                    continue;
                }
                let state = status["state"].as_str().unwrap_or("TASK_UNKNOWN");
                println!("Received status update {state} for task '{task_id}'");
                for field in ["message", "reason", "source"] {
                    if let Some(v) = status[field].as_str() {
                        println!("  {field}: {v}");
                    }
                }
                if status.get("uuid").is_some() {
                    fw.call(json!({"type": "ACKNOWLEDGE", "acknowledge": {
                        "agent_id": status["agent_id"], "task_id": status["task_id"],
                        "uuid": status["uuid"]}}))
                        .await?;
                }
                if let Some(code) = exit_code(state, status["message"].as_str()) {
                    return Ok(ExitCode::from(code));
                }
            }
            Some("ERROR") => bail!(
                "the master ended the framework: {}",
                event["error"]["message"]
            ),
            _ => {}
        }
    }
}

async fn next(events: &mut EventStream) -> anyhow::Result<Value> {
    events
        .next()
        .await?
        .context("the master closed the framework's stream")
}

/// The exit status for a terminal state: the command's own for FINISHED and FAILED
/// ("Command exited with status N"), 128 + N for a signal, 1 for anything else. None
/// while the task has not ended.
fn exit_code(state: &str, message: Option<&str>) -> Option<u8> {
    let terminal = matches!(
        state,
        "TASK_FINISHED"
            | "TASK_FAILED"
            | "TASK_KILLED"
            | "TASK_ERROR"
            | "TASK_LOST"
            | "TASK_DROPPED"
            | "TASK_GONE"
            | "TASK_GONE_BY_OPERATOR"
    );
    if !terminal {
        return None;
    }
    if state == "TASK_FINISHED" {
        return Some(0);
    }
    let message = message.unwrap_or("");
    if let Some(n) = message
        .strip_prefix("Command exited with status ")
        .and_then(|n| n.trim().parse::<u8>().ok())
    {
        return Some(if n == 0 { 1 } else { n });
    }
    if let Some(name) = message.strip_prefix("Command terminated with signal ") {
        let signal = match name.trim() {
            "Hangup" => 1,
            "Interrupt" => 2,
            "Quit" => 3,
            "Aborted" => 6,
            "Killed" => 9,
            "Segmentation fault" => 11,
            "Terminated" => 15,
            _ => 0,
        };
        return Some(128 + signal);
    }
    Some(1)
}

fn current_user() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; it is read at once.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            if let Ok(name) = std::ffi::CStr::from_ptr((*pw).pw_name).to_str() {
                return name.to_owned();
            }
        }
    }
    std::env::var("USER").unwrap_or_else(|_| "root".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_task() {
        assert_eq!(exit_code("TASK_RUNNING", None), None);
        assert_eq!(
            exit_code("TASK_FINISHED", Some("Command exited with status 0")),
            Some(0)
        );
        assert_eq!(
            exit_code("TASK_FAILED", Some("Command exited with status 7")),
            Some(7)
        );
        assert_eq!(
            exit_code(
                "TASK_KILLED",
                Some("Command terminated with signal Terminated")
            ),
            Some(143)
        );
        assert_eq!(
            exit_code("TASK_ERROR", Some("more than available")),
            Some(1)
        );
        assert_eq!(
            exit_code("TASK_FAILED", Some("Command exited with status 0")),
            Some(1)
        );
    }
}
