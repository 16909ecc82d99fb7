//! Seed inputs: the request bodies of the recorded Mesos fixtures, plus a few written
//! here for what the fixtures do not cover (the internal agent protocol, calls Mesos
//! was never asked in the capture, scripts for the master's state machine).

use std::fmt;
use std::path::{Path, PathBuf};

use holdfast_api::base64;
use serde_json::Value;

/// One recorded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// Every request found under a fixtures directory.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    pub requests: Vec<Request>,
}

#[derive(Debug)]
pub enum CorpusError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    Empty {
        dir: PathBuf,
    },
}

impl fmt::Display for CorpusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorpusError::Read { path, source } => {
                write!(f, "cannot read the corpus at {}: {source}", path.display())
            }
            CorpusError::Empty { dir } => write!(
                f,
                "no fixture requests (*.json with a \"request\" object) under {}",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for CorpusError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CorpusError::Read { source, .. } => Some(source),
            CorpusError::Empty { .. } => None,
        }
    }
}

/// Where the fixtures are in a checkout: `<repo>/../shared/fixtures`.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

impl Corpus {
    /// Reads every `*.json` fixture under `dir` (recursively) that records a request.
    /// Files that are not fixtures are skipped; an unreadable directory is an error.
    pub fn load(dir: &Path) -> Result<Corpus, CorpusError> {
        let mut files = Vec::new();
        collect_json(dir, &mut files)?;
        files.sort();
        let mut requests = Vec::new();
        for path in files {
            let text = std::fs::read(&path).map_err(|source| CorpusError::Read {
                path: path.clone(),
                source,
            })?;
            if let Some(r) = serde_json::from_slice::<Value>(&text)
                .ok()
                .and_then(|v| request_of(&v))
            {
                requests.push(r);
            }
        }
        if requests.is_empty() {
            return Err(CorpusError::Empty {
                dir: dir.to_owned(),
            });
        }
        Ok(Corpus { requests })
    }

    /// Bodies of the requests sent to one of `paths`, skipping empty ones.
    pub fn bodies_for(&self, paths: &[&str]) -> Vec<Vec<u8>> {
        self.requests
            .iter()
            .filter(|r| paths.contains(&r.path.as_str()) && !r.body.is_empty())
            .map(|r| r.body.clone())
            .collect()
    }

    /// Every non-empty body, whatever its endpoint.
    pub fn all_bodies(&self) -> Vec<Vec<u8>> {
        self.requests
            .iter()
            .filter(|r| !r.body.is_empty())
            .map(|r| r.body.clone())
            .collect()
    }
}

fn collect_json(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CorpusError> {
    let entries = std::fs::read_dir(dir).map_err(|source| CorpusError::Read {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| CorpusError::Read {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        if path.is_dir() {
            collect_json(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

/// The request a fixture records. Bodies are kept as sent: JSON compactly, text as
/// is, `{"_base64": ...}` (binary) decoded.
fn request_of(fixture: &Value) -> Option<Request> {
    let req = fixture.get("request")?;
    let method = req.get("method")?.as_str()?.to_owned();
    let path = req.get("path")?.as_str()?.to_owned();
    let body = match req.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(Value::Object(o)) if o.len() == 1 && o.contains_key("_base64") => {
            base64::decode(o["_base64"].as_str()?).ok()?
        }
        Some(v) => v.to_string().into_bytes(),
    };
    Some(Request { method, path, body })
}

/// The master id of the fixtures' capture: the master target runs a master with this id,
/// so the framework, agent and offer ids in the fixtures name live ones.
pub const FIXTURE_MASTER_ID: &str = "c5626c28-6e85-4bb4-95c9-ddeb24d2d624";

/// Scheduler calls the capture did not record.
pub const SCHEDULER_SEEDS: &[&str] = &[
    r#"{"type":"ACCEPT","framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"accept":{"offer_ids":[{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-O0"}],"operations":[{"type":"LAUNCH_GROUP","launch_group":{"executor":{"type":"DEFAULT","executor_id":{"value":"group-exec"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":32}}]},"task_group":{"tasks":[{"name":"g1","task_id":{"value":"g1"},"agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.5}},{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31001}]}}],"command":{"value":"sleep 1"}},{"name":"g2","task_id":{"value":"g2"},"agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"},"resources":[{"name":"mem","type":"SCALAR","scalar":{"value":64}}],"command":{"value":"sleep 1"}}]}}}],"filters":{"refuse_seconds":5}}}"#,
    r#"{"type":"ACCEPT","framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"accept":{"offer_ids":[{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-O0"}],"operations":[{"type":"RESERVE","reserve":{"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"reservations":[{"type":"DYNAMIC","role":"web"}]}]}}]}}"#,
    r#"{"type":"SHUTDOWN","framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"shutdown":{"executor_id":{"value":"golden-dump-executor"},"agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"}}}"#,
    r#"{"type":"MESSAGE","framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"message":{"agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"},"executor_id":{"value":"golden-dump-executor"},"data":"aGVsbG8="}}"#,
    r#"{"type":"UPDATE_FRAMEWORK","framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"update_framework":{"framework_info":{"user":"root","name":"golden-scheduler","id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"roles":["*","web"],"failover_timeout":30,"capabilities":[{"type":"MULTI_ROLE"},{"type":"PARTITION_AWARE"}]},"suppressed_roles":["web"]}}"#,
    r#"{"type":"SUBSCRIBE","framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"subscribe":{"framework_info":{"user":"root","name":"golden-scheduler","id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"role":"eng/web","failover_timeout":1e9,"checkpoint":true,"principal":"p"},"suppressed_roles":["eng/web"]}}"#,
    r#"{"type":"REQUEST","framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"request":{"requests":[]}}"#,
];

/// Agent operator calls the capture did not record (Holdfast's UPDATE_CONTAINER, and
/// launches that use limits, rlimits and environments).
pub const AGENT_SEEDS: &[&str] = &[
    r#"{"type":"UPDATE_CONTAINER","update_container":{"container_id":{"value":"c1"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":1}}],"limits":{"mem":{"value":"Infinity"},"cpus":{"value":2}},"lower_memory_limit":true}}"#,
    r#"{"type":"LAUNCH_CONTAINER","launch_container":{"container_id":{"value":"child","parent":{"value":"c1"}},"command":{"shell":false,"value":"/bin/sleep","arguments":["sleep","10"],"environment":{"variables":[{"name":"A","type":"VALUE","value":"1"}]},"user":"nobody"},"resources":[{"name":"mem","type":"SCALAR","scalar":{"value":64}}],"limits":{"cpus":{"value":"4"}},"container":{"type":"MESOS","rlimit_info":{"rlimits":[{"type":"RLMT_NOFILE","soft":1024,"hard":4096}]},"linux_info":{"share_cgroups":false}}}}"#,
    r#"{"type":"KILL_CONTAINER","kill_container":{"container_id":{"value":"c1"},"signal":64}}"#,
];

/// The internal agent protocol (`/internal/v1/agent`), which the fixtures predate.
pub const INTERNAL_SEEDS: &[&str] = &[
    r#"{"type":"SUBSCRIBE","info":{"hostname":"127.0.0.1","port":5051,"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":4}},{"name":"mem","type":"SCALAR","scalar":{"value":4096}},{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":32000}]}},{"name":"zones","type":"SET","set":{"item":["a","b"]}}],"attributes":[{"name":"rack","type":"TEXT","text":{"value":"r1"}}],"domain":{"fault_domain":{"region":{"name":"r"},"zone":{"name":"z"}}}}}"#,
    r#"{"type":"SUBSCRIBE","agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"},"info":{"hostname":"127.0.0.1","port":5051,"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":4}},{"name":"mem","type":"SCALAR","scalar":{"value":4096}}]},"tasks":[{"framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"task":{"name":"golden-task-1","task_id":{"value":"golden-task-1"},"agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1},"allocation_info":{"role":"*"}},{"name":"mem","type":"SCALAR","scalar":{"value":32},"allocation_info":{"role":"*"}}],"command":{"value":"sleep 100"}},"state":"TASK_RUNNING"}],"frameworks":[{"user":"root","name":"golden-scheduler","id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"}}]}"#,
    r#"{"type":"PONG","agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"}}"#,
    r#"{"type":"UPDATE","agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"},"framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"status":{"task_id":{"value":"golden-task-1"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR","executor_id":{"value":"golden-task-1"},"timestamp":1795290214.0061839,"uuid":"knnFONfHRvGmQM8etzVMRQ==","container_status":{"container_id":{"value":"9b7e6e07-fa96-456b-8807-5b25564e92f4"},"executor_pid":26000}}}"#,
    r#"{"type":"UPDATE","agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"},"framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"status":{"task_id":{"value":"golden-task-1"},"state":"TASK_FINISHED","source":"SOURCE_EXECUTOR","message":"Command exited with status 0","timestamp":1795290216.1,"uuid":"Ty8qKc7CT0C3UPSl/t2q5w=="}}"#,
    r#"{"type":"MESSAGE","agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"},"framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"executor_id":{"value":"golden-dump-executor"},"data":"aGVsbG8="}"#,
    r#"{"type":"EXECUTOR_EXITED","agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"},"framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"executor_id":{"value":"golden-dump-executor"},"status":256}"#,
];

/// Scripts for the master target: one call per line, a task's life from offer to
/// acknowledged end, and a failover.
pub const MASTER_SCRIPTS: &[&str] = &[
    concat!(
        r#"{"type":"ACCEPT","framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"accept":{"offer_ids":[{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-O0"}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[{"name":"golden-task-1","task_id":{"value":"golden-task-1"},"agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1},"allocation_info":{"role":"*"}},{"name":"mem","type":"SCALAR","scalar":{"value":32},"allocation_info":{"role":"*"}}],"command":{"value":"sleep 2","shell":true}}]}}],"filters":{"refuse_seconds":0.5}}}"#,
        "\n",
        r#"{"type":"UPDATE","agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"},"framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"status":{"task_id":{"value":"golden-task-1"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR","uuid":"knnFONfHRvGmQM8etzVMRQ=="}}"#,
        "\n",
        r#"{"type":"ACKNOWLEDGE","framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"acknowledge":{"agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"},"task_id":{"value":"golden-task-1"},"uuid":"knnFONfHRvGmQM8etzVMRQ=="}}"#,
        "\n",
        r#"{"type":"UPDATE","agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"},"framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"status":{"task_id":{"value":"golden-task-1"},"state":"TASK_FINISHED","source":"SOURCE_EXECUTOR","uuid":"Ty8qKc7CT0C3UPSl/t2q5w=="}}"#,
        "\n",
        r#"{"type":"ACKNOWLEDGE","framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"acknowledge":{"agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"},"task_id":{"value":"golden-task-1"},"uuid":"Ty8qKc7CT0C3UPSl/t2q5w=="}}"#,
        "\n",
        r#"{"type":"RECONCILE","framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"reconcile":{"tasks":[]}}"#,
    ),
    concat!(
        r#"{"type":"ACCEPT","framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"accept":{"offer_ids":[{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-O0"}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[{"name":"t","task_id":{"value":"t"},"agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":1}},{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31000}]}}],"command":{"value":"sleep 100"}}]}}]}}"#,
        "\n",
        r#"{"type":"SUBSCRIBE","agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"},"info":{"hostname":"127.0.0.1","port":5051,"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":2}},{"name":"mem","type":"SCALAR","scalar":{"value":1024}},{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31999}]}}]},"tasks":[{"framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"task":{"name":"t","task_id":{"value":"t"},"agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"allocation_info":{"role":"*"}},{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31000}]},"allocation_info":{"role":"*"}}]},"state":"TASK_RUNNING"}]}"#,
        "\n",
        r#"{"type":"KILL","framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"kill":{"task_id":{"value":"t"},"agent_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0"}}}"#,
        "\n",
        r#"{"type":"SUBSCRIBE","framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"subscribe":{"framework_info":{"user":"root","name":"golden-scheduler","id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000"},"failover_timeout":5,"capabilities":[{"type":"PARTITION_AWARE"}]}}}"#,
        "\n",
        r#"{"type":"TEARDOWN","framework_id":{"value":"c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0001"}}"#,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixtures_give_bodies_for_every_api() {
        let corpus = Corpus::load(&default_dir()).expect("fixtures");
        assert!(corpus.bodies_for(&["/api/v1/scheduler"]).len() >= 10);
        assert!(corpus.bodies_for(&["/api/v1"]).len() >= 10);
        // Binary bodies are decoded: the protobuf fixtures are not base64 text.
        assert!(corpus
            .requests
            .iter()
            .any(|r| r.body == base64::decode("CAE=").expect("b64")));
    }

    #[test]
    fn handwritten_seeds_parse_as_the_calls_they_stand_for() {
        for seed in SCHEDULER_SEEDS {
            holdfast_api::scheduler::parse_call(seed.as_bytes())
                .unwrap_or_else(|e| panic!("{e}: {seed}"));
        }
        for seed in AGENT_SEEDS {
            holdfast_api::agent::parse_call(seed.as_bytes())
                .unwrap_or_else(|e| panic!("{e}: {seed}"));
        }
        for seed in INTERNAL_SEEDS {
            serde_json::from_str::<holdfast_api::internal::AgentCall>(seed)
                .unwrap_or_else(|e| panic!("{e}: {seed}"));
        }
        for line in MASTER_SCRIPTS.iter().flat_map(|s| s.split('\n')) {
            let scheduler = holdfast_api::scheduler::parse_call(line.as_bytes()).is_ok();
            let agent = serde_json::from_str::<holdfast_api::internal::AgentCall>(line).is_ok();
            assert!(scheduler || agent, "{line}");
        }
    }

    #[test]
    fn a_missing_directory_says_where() {
        let err = Corpus::load(Path::new("/nonexistent/fixtures")).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/fixtures"), "{err}");
    }
}
