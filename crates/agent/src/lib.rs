//! The agent's HTTP surface: `POST /api/v1` in Mesos's JSON over the containerizer, and
//! with a master, `POST /api/v1/executor` for custom executors.
//!
//! One error type ([`holdfast_api::ApiError`]) becomes a response in one place; the router
//! is built by [`router`] so tests can drive it without a socket. The cluster side (a
//! master, frameworks' tasks and executors) is [`cluster`].

pub mod cluster;
pub mod executor_api;
pub mod files;
pub mod gc;
pub mod master_link;
pub mod registry;
pub mod state_view;
pub mod status_updates;
pub mod task_group;

use std::sync::{Arc, OnceLock};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use holdfast_api::agent::{self as api, Call, Flag, WaitContainerResponse};
use holdfast_api::v1::{TaskResourceLimitation, VersionInfo};
use holdfast_api::ApiError;
use holdfast_containerizer::{error_chain, ContainerError, Containerizer, LaunchOutcome};

/// Largest request body accepted. Mesos sets none; an unbounded body is a way to exhaust
/// the agent's memory, and no agent call comes near this.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

pub struct AgentState {
    /// Set once recovery has finished; until then every call answers 503.
    containerizer: OnceLock<Containerizer>,
    /// Set when the agent runs with a master.
    cluster: OnceLock<cluster::Cluster>,
    flags: Vec<Flag>,
    version: VersionInfo,
    /// When the agent started, seconds since the epoch (legacy `/state`).
    start_time: f64,
}

impl AgentState {
    pub fn new(flags: Vec<Flag>, version: VersionInfo) -> Arc<Self> {
        Arc::new(AgentState {
            containerizer: OnceLock::new(),
            cluster: OnceLock::new(),
            flags,
            version,
            start_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        })
    }

    /// Marks recovery as done: the API starts serving.
    pub fn recovered(&self, containerizer: Containerizer) {
        let _ = self.containerizer.set(containerizer);
    }

    /// The containerizer's metrics and, in a cluster, the garbage collection's.
    fn metrics(&self, c: &Containerizer) -> std::collections::BTreeMap<String, f64> {
        let mut m = c.metrics();
        if let Some(cluster) = self.cluster.get() {
            m.extend(cluster.metrics());
        }
        m
    }

    /// Joins a cluster: tasks from the master, executors on `/api/v1/executor`.
    pub fn join(&self, cluster: cluster::Cluster) {
        let _ = self.cluster.set(cluster);
    }

    pub fn cluster(&self) -> Option<&cluster::Cluster> {
        self.cluster.get()
    }

    /// The cluster side now; an empty one without a master.
    async fn snapshot(&self) -> state_view::Snapshot {
        match self.cluster.get() {
            Some(c) => c
                .snapshot()
                .await
                .unwrap_or_else(state_view::Snapshot::standalone),
            None => state_view::Snapshot::standalone(),
        }
    }

    fn flag(&self, name: &str) -> String {
        self.flags
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.clone())
            .unwrap_or_default()
    }
}

pub fn router(state: Arc<AgentState>) -> Router {
    Router::new()
        .merge(files::router())
        .route("/api/v1", axum::routing::any(api_v1))
        .route("/api/v1/executor", axum::routing::any(executor_api))
        .route("/metrics/snapshot", axum::routing::get(metrics_snapshot))
        .route("/state", axum::routing::get(legacy_state))
        .route("/state.json", axum::routing::get(legacy_state))
        .route("/slave(1)/state", axum::routing::get(legacy_state))
        .fallback(|| async { error_response(&ApiError::not_found("404 Not Found.")) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn api_v1(
    State(state): State<Arc<AgentState>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match handle(&state, method, &headers, &body).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

async fn executor_api(
    State(state): State<Arc<AgentState>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match executor_call(&state, method, &headers, &body).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

async fn executor_call(
    state: &AgentState,
    method: Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    use cluster::ExecutorCall;
    use holdfast_api::executor::CallBody;
    check_post(&method)?;
    holdfast_api::http::check_content_type(header_str(headers, header::CONTENT_TYPE))?;
    holdfast_api::http::check_accept(header_str(headers, header::ACCEPT))?;
    let call = holdfast_api::executor::parse_call(body)?;
    let Some(cluster) = state.cluster.get() else {
        return Err(ApiError::unavailable(
            "This agent runs no executors: it was started without --master",
        ));
    };
    let (framework, executor) = (call.framework_id.value, call.executor_id.value);
    let to_api = |(status, message): (u16, String)| ApiError::new(status, message);
    match call.body {
        CallBody::Subscribe {
            unacknowledged_tasks,
            unacknowledged_updates,
        } => {
            let gone = cluster.clone();
            let (f, e) = (framework.clone(), executor.clone());
            let (stream, body) =
                executor_api::ExecutorStream::open(move |id| gone.executor_gone(f, e, id));
            cluster
                .executor_call(
                    framework,
                    executor,
                    ExecutorCall::Subscribe {
                        unacknowledged_tasks,
                        unacknowledged_updates,
                        stream,
                    },
                )
                .await
                .map_err(to_api)?;
            let mut r = Response::new(Body::new(body));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            Ok(r)
        }
        CallBody::Update(status) => {
            cluster
                .executor_call(framework, executor, ExecutorCall::Update(status))
                .await
                .map_err(to_api)?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        CallBody::Message(data) => {
            cluster
                .executor_call(framework, executor, ExecutorCall::Message(data))
                .await
                .map_err(to_api)?;
            Ok(empty(StatusCode::ACCEPTED))
        }
    }
}

fn check_post(method: &Method) -> Result<(), ApiError> {
    if method != Method::POST {
        return Err(ApiError::new(
            405,
            format!(
                "405 Method Not Allowed. Expecting one of {{ 'POST' }}, but received '{method}'."
            ),
        ));
    }
    Ok(())
}

/// Mesos's legacy `/state`: the agent's identity, version, flags, resources and
/// frameworks in one document, as tools and UIs written for Mesos read it.
async fn legacy_state(State(state): State<Arc<AgentState>>) -> Response {
    let snapshot = state.snapshot().await;
    let endpoint = format!("{}:{}", state.flag("ip"), state.flag("port"));
    let mut doc = state_view::legacy_state(&snapshot, &endpoint);
    doc.insert("version".into(), serde_json::json!(state.version.version));
    doc.insert("start_time".into(), serde_json::json!(state.start_time));
    doc.insert(
        "flags".into(),
        serde_json::Value::Object(
            state
                .flags
                .iter()
                .map(|f| (f.name.clone(), serde_json::json!(f.value)))
                .collect(),
        ),
    );
    json(serde_json::Value::Object(doc))
}

/// Mesos's `/metrics/snapshot`: one flat JSON object of metric name to value.
async fn metrics_snapshot(State(state): State<Arc<AgentState>>) -> Response {
    match state.containerizer.get() {
        Some(c) => json(serde_json::json!(state.metrics(c))),
        None => error_response(&ApiError::unavailable("Agent has not finished recovery")),
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn handle(
    state: &AgentState,
    method: Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    check_post(&method)?;
    holdfast_api::http::check_content_type(header_str(headers, header::CONTENT_TYPE))?;
    holdfast_api::http::check_accept(header_str(headers, header::ACCEPT))?;
    let call = api::parse_call(body)?;
    let Some(c) = state.containerizer.get() else {
        return Err(ApiError::unavailable("Agent has not finished recovery"));
    };
    match call {
        Call::GetState => Ok(json(serde_json::json!({
            "type": "GET_STATE", "get_state": state_view::get_state(&state.snapshot().await)}))),
        Call::GetFrameworks => Ok(json(serde_json::json!({
            "type": "GET_FRAMEWORKS", "get_frameworks": state_view::get_frameworks(&state.snapshot().await)}))),
        Call::GetExecutors => Ok(json(serde_json::json!({
            "type": "GET_EXECUTORS", "get_executors": state_view::get_executors(&state.snapshot().await)}))),
        Call::GetTasks => Ok(json(serde_json::json!({
            "type": "GET_TASKS", "get_tasks": state_view::get_tasks(&state.snapshot().await)}))),
        Call::GetAgent => {
            let s = state.snapshot().await;
            Ok(json(serde_json::json!({
                "type": "GET_AGENT", "get_agent": state_view::get_agent(&s, &state.flag("ip"), state.flag("port").parse().unwrap_or(0))})))
        }
        Call::GetHealth => Ok(json(api::health_response(true))),
        Call::GetVersion => Ok(json(api::version_response(&state.version))),
        Call::GetFlags => Ok(json(api::flags_response(&state.flags))),
        Call::GetMetrics => Ok(json(api::metrics_response(&state.metrics(c)))),
        Call::GetContainers(q) => {
            let list = c.list(q.show_nested, q.show_standalone).await;
            Ok(json(api::containers_response(&list)))
        }
        Call::LaunchContainer(launch) => match c.launch(launch).await.map_err(to_api)? {
            LaunchOutcome::Launched => Ok(empty(StatusCode::OK)),
            LaunchOutcome::AlreadyLaunched => Ok(empty(StatusCode::ACCEPTED)),
        },
        Call::WaitContainer(id) => {
            let t = c.wait(&id).await.map_err(to_api)?;
            // As Mesos: state, reason and limitation only when a limit ended it.
            let limited = t.reason.is_some();
            Ok(json(api::wait_response(&WaitContainerResponse {
                exit_status: t.wait_status,
                state: limited.then(|| "TASK_FAILED".to_string()),
                reason: t.reason,
                limitation: limited.then_some(TaskResourceLimitation {
                    resources: t.limitation,
                }),
                message: t.message,
            })))
        }
        Call::KillContainer(k) => {
            c.kill(&k.container_id, k.signal).await.map_err(to_api)?;
            Ok(empty(StatusCode::OK))
        }
        Call::RemoveContainer(id) => {
            c.remove(&id).await.map_err(to_api)?;
            Ok(empty(StatusCode::OK))
        }
        Call::UpdateContainer(u) => {
            c.update(u).await.map_err(to_api)?;
            Ok(empty(StatusCode::OK))
        }
        Call::ListFiles(l) => Ok(json(files::list_files(state, l.path).await?)),
        Call::ReadFile(r) => Ok(json(files::read_file(state, r).await?)),
    }
}

fn to_api(e: ContainerError) -> ApiError {
    let status = match &e {
        ContainerError::NotFound(_) | ContainerError::KillNotFound(_) => 404,
        ContainerError::ParentNotFound(_)
        | ContainerError::ParentNotRunning(_)
        | ContainerError::Invalid(_)
        | ContainerError::LaunchFailed(_) => 400,
        ContainerError::StillRunning(_)
        | ContainerError::StillLaunching(_)
        | ContainerError::Conflict(_) => 409,
        ContainerError::Internal { .. } => {
            // Logged once, here, where it is turned into an answer.
            tracing::error!(error = %error_chain(&e), "agent call failed");
            500
        }
    };
    ApiError::new(status, error_chain(&e))
}

fn json(value: serde_json::Value) -> Response {
    let body = serde_json::to_vec(&value).unwrap_or_default();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn empty(status: StatusCode) -> Response {
    (status, Body::empty()).into_response()
}

pub fn error_response(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        e.message.clone(),
    )
        .into_response()
}
