//! The master's HTTP surface and the task that owns its state.
//!
//! One task ([`run_state`]) owns the [`Master`]; handlers send it [`Command`]s and await
//! the answer, so the state needs no locks and its order of events is the order of the
//! commands. Read-only answers (operator calls, legacy endpoints, metrics) are rendered
//! by a closure the task runs against the state. Streams (a framework's SUBSCRIBE, an
//! agent's, an operator's) are chunked responses fed by a channel per stream: one
//! RecordIO record per chunk. When a client goes away hyper drops the body, which tells
//! the state task.
//!
//! The state task also writes the registry: after each burst of commands (or timer)
//! that changed it, and before it delivers what those commands made, so an agent hears
//! REGISTERED, and frameworks hear of an agent marked unreachable, only once the change
//! is durable. A write that fails stops the task (and the master) with the error, as
//! Mesos's master aborts when its registrar fails: nothing may be acknowledged that a
//! restart would forget.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use holdfast_api::internal::AgentCall;
use holdfast_api::master::{self as operator_call, response};
use holdfast_api::scheduler::{self, recordio, CallBody, Event, Id};
use holdfast_api::ApiError;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::legacy::{self, TasksQuery};
use crate::registry::{self, RegistryError};
use crate::state::{Master, Now, Output, SubscribeRefused};
use crate::{metrics, operator};

/// Largest request body accepted (Mesos sets none; this bounds memory per request).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Records a stream may have waiting for a slow client before the stream is closed
/// (the client then resubscribes, and its updates are resent until acknowledged).
const STREAM_BACKLOG: usize = 8192;
/// How often idle agents' availability is offered again, so filters that expired are
/// noticed (Mesos's `--allocation_interval`).
const ALLOCATION_INTERVAL: Duration = Duration::from_secs(1);
/// Queued commands handled before one allocation pass.
const MAX_COMMANDS_PER_ALLOCATION: usize = 1024;
/// Operator SUBSCRIBE streams open at once (Mesos's
/// `--max_operator_event_stream_subscribers` default); more are refused.
const MAX_OPERATOR_SUBSCRIBERS: usize = 1000;

/// A running stream: records go in, the client reads them as chunks.
struct Stream {
    id: String,
    tx: mpsc::Sender<Bytes>,
}

/// A stream the state task opened: whose it is (framework or agent id), its id, and
/// the records to send.
type Opened = (String, String, mpsc::Receiver<Bytes>);

/// A read of the state: runs in the state task with the state and the number of
/// operator streams, and sends its answer itself.
type View = Box<dyn FnOnce(&Master, usize) + Send>;

enum Command {
    SchedulerSubscribe {
        framework_id: Option<Id>,
        subscribe: scheduler::Subscribe,
        reply: oneshot::Sender<Result<Opened, SubscribeRefused>>,
    },
    SchedulerCall {
        framework_id: Option<Id>,
        stream: Option<String>,
        body: CallBody,
        reply: oneshot::Sender<Result<(), ApiError>>,
    },
    FrameworkGone {
        framework: String,
        stream: String,
    },
    AgentSubscribe {
        call: AgentCall,
        reply: oneshot::Sender<Result<Opened, ApiError>>,
    },
    AgentCall {
        stream: Option<String>,
        call: AgentCall,
        reply: oneshot::Sender<Result<(), ApiError>>,
    },
    AgentGone {
        agent: String,
        stream: String,
    },
    View(View),
    OperatorSubscribe {
        reply: oneshot::Sender<Result<Opened, ApiError>>,
    },
    OperatorGone {
        stream: String,
    },
    /// The operator's TEARDOWN of a framework.
    Teardown {
        framework: String,
        reply: oneshot::Sender<Result<(), ApiError>>,
    },
}

#[derive(Clone)]
pub struct MasterHandle {
    tx: mpsc::Sender<Command>,
    version: Arc<Value>,
    flags: Arc<Value>,
    /// When the master started: wall-clock seconds, and the monotonic instant for
    /// uptime.
    start_time: f64,
    started: Instant,
    /// `//<hostname>:<port>`, where `/master/redirect` points.
    leader: Arc<String>,
}

impl MasterHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| ApiError::unavailable("the master is shutting down"))?;
        rx.await
            .map_err(|_| ApiError::internal("the master's state task stopped"))
    }

    /// Runs `f` against the state (in the state task) and returns what it made.
    async fn view<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Master, usize) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        self.ask(|reply| {
            Command::View(Box::new(move |m, subscribers| {
                let _ = reply.send(f(m, subscribers));
            }))
        })
        .await
    }

    fn uptime_secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The response that carries an opened stream; when hyper drops it, the state task
    /// gets `gone(owner, stream id)`. Scheduler and agent streams name their id in a
    /// `Mesos-Stream-Id` header; operator streams, as in Mesos, do not.
    fn stream_response(
        &self,
        opened: Opened,
        with_id: bool,
        gone: impl FnOnce(String, String) -> Command,
    ) -> Response {
        let (owner, stream, rx) = opened;
        let body = StreamBody {
            rx,
            gone: Some((self.tx.clone(), gone(owner, stream.clone()))),
        };
        stream_response(with_id.then_some(stream.as_str()), body)
    }
}

/// The current time, as the state machine takes it.
pub fn now() -> Now {
    Now {
        mono: Instant::now(),
        wall: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
    }
}

pub use holdfast_api::ids::uuid4;

/// The task that owns the state: it ends with an error when the registry cannot be
/// written, and otherwise once every handle is gone.
pub type StateTask = tokio::task::JoinHandle<Result<(), RegistryError>>;

/// Starts the task that owns `master`, persisting its registry at `registry_path`, and
/// returns the handle handlers use with the task itself.
pub fn start(
    master: Master,
    version: Value,
    flags: Value,
    registry_path: PathBuf,
) -> (MasterHandle, StateTask) {
    let (tx, rx) = mpsc::channel(1024);
    let handle = MasterHandle {
        tx: tx.clone(),
        version: Arc::new(version),
        flags: Arc::new(flags),
        start_time: now().wall,
        started: Instant::now(),
        leader: Arc::new(format!("//{}:{}", master.info.hostname, master.info.port)),
    };
    let task = tokio::spawn(run_state(master, rx, registry_path));
    (handle, task)
}

/// The streams the state task feeds.
#[derive(Default)]
struct Streams {
    frameworks: BTreeMap<String, Stream>,
    agents: BTreeMap<String, Stream>,
    /// Operator SUBSCRIBE streams, by their id.
    operators: BTreeMap<String, Stream>,
}

async fn run_state(
    mut master: Master,
    mut rx: mpsc::Receiver<Command>,
    registry_path: PathBuf,
) -> Result<(), RegistryError> {
    let mut streams = Streams::default();
    let mut heartbeat = tokio::time::interval(master.config.heartbeat_interval);
    let mut ping = tokio::time::interval(master.config.agent_ping_timeout);
    let mut allocation = tokio::time::interval(ALLOCATION_INTERVAL);
    let mut registry_gc = tokio::time::interval(master.config.registry_gc_interval);
    // What was read at startup is on disk already.
    let mut written = master.registry_generation();
    for t in [&mut heartbeat, &mut ping, &mut allocation, &mut registry_gc] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick of an interval is immediate; the SUBSCRIBED answer already
        // carries a heartbeat and a new agent needs no ping yet.
        t.reset();
    }
    loop {
        tokio::select! {
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { return Ok(()) };
                handle_command(&mut master, cmd, &mut streams);
                // Commands already waiting are handled before the allocation they may
                // all change: one pass over the agents for a burst (a thousand agents
                // registering, a framework acknowledging a thousand updates), not one
                // per command. An idle queue still allocates at once.
                for _ in 1..MAX_COMMANDS_PER_ALLOCATION {
                    match rx.try_recv() {
                        Ok(cmd) => handle_command(&mut master, cmd, &mut streams),
                        Err(_) => break,
                    }
                }
                master.allocate(now(), false);
            }
            _ = heartbeat.tick() => {
                master.heartbeat();
                let beat = json!({"type": "HEARTBEAT"});
                broadcast(&mut streams.operators, &beat);
            }
            _ = ping.tick() => master.ping_agents(now()),
            _ = allocation.tick() => {
                let n = now();
                master.expire_frameworks(n);
                master.expire_recovered_agents(n);
                master.allocate(n, true);
            }
            _ = registry_gc.tick() => {
                master.prune_registry(now());
            }
        }
        if master.registry_generation() != written {
            written = write_registry(&master, &registry_path).await?;
        }
        deliver(&mut master, &mut streams);
    }
}

/// Writes the registry durably, on the blocking pool; the state task waits, so the
/// commands that arrive meanwhile make one write together. Returns the generation
/// written.
async fn write_registry(master: &Master, path: &std::path::Path) -> Result<u64, RegistryError> {
    let generation = master.registry_generation();
    let encoded = master.registry().encode();
    let started = Instant::now();
    let target = path.to_owned();
    let bytes = encoded.len();
    tokio::task::spawn_blocking(move || registry::store(&target, &encoded))
        .await
        .map_err(|e| RegistryError::Write {
            path: path.to_owned(),
            source: std::io::Error::other(e),
        })??;
    tracing::debug!(
        bytes,
        ms = started.elapsed().as_secs_f64() * 1e3,
        "registry written"
    );
    Ok(generation)
}

fn handle_command(master: &mut Master, cmd: Command, streams: &mut Streams) {
    let Streams {
        frameworks,
        agents,
        operators,
    } = streams;
    match cmd {
        Command::SchedulerSubscribe {
            framework_id,
            subscribe,
            reply,
        } => {
            let result = open(frameworks, |stream| {
                master.subscribe_framework(framework_id, subscribe, stream, now())
            });
            let _ = reply.send(result);
        }
        Command::SchedulerCall {
            framework_id,
            stream,
            body,
            reply,
        } => {
            let result = master
                .authorize_call(framework_id.as_ref(), stream.as_deref())
                .and_then(|fw| master.framework_call(&fw, body, now()));
            let _ = reply.send(result);
        }
        Command::FrameworkGone { framework, stream } => {
            close(frameworks, &framework, &stream);
            master.framework_disconnected(&framework, &stream, now());
        }
        Command::AgentSubscribe { call, reply } => {
            let AgentCall::Subscribe {
                agent_id,
                info,
                tasks,
                frameworks: reported,
            } = call
            else {
                let _ = reply.send(Err(ApiError::bad_request("expected SUBSCRIBE")));
                return;
            };
            let result = open(agents, |stream| {
                let now = now();
                master.recover_frameworks(reported, now);
                master.subscribe_agent(agent_id, info, tasks, stream, now)
            });
            let _ = reply.send(result);
        }
        Command::AgentCall {
            stream,
            call,
            reply,
        } => {
            let _ = reply.send(agent_call(master, agents, stream.as_deref(), call));
        }
        Command::AgentGone { agent, stream } => {
            close(agents, &agent, &stream);
            master.agent_disconnected(&agent, &stream);
        }
        Command::View(f) => f(master, operators.len()),
        Command::OperatorSubscribe { reply } => {
            let _ = reply.send(operator_subscribe(master, operators));
        }
        Command::OperatorGone { stream } => close(operators, &stream, &stream),
        Command::Teardown { framework, reply } => {
            let result = if master.frameworks.contains_key(&framework) {
                master.remove_framework(&framework, now());
                Ok(())
            } else {
                Err(ApiError::bad_request(format!(
                    "No framework found with ID {framework}"
                )))
            };
            let _ = reply.send(result);
        }
    }
}

/// Opens an operator stream: SUBSCRIBED with the whole state, then a HEARTBEAT at once,
/// as Mesos sends. Changes follow as the state makes them.
fn operator_subscribe(
    master: &Master,
    operators: &mut BTreeMap<String, Stream>,
) -> Result<Opened, ApiError> {
    if operators.len() >= MAX_OPERATOR_SUBSCRIBERS {
        return Err(ApiError::unavailable(format!(
            "{MAX_OPERATOR_SUBSCRIBERS} operator SUBSCRIBE streams are open, the most this \
             master serves; close one and subscribe again"
        )));
    }
    let interval = master.config.heartbeat_interval.as_secs_f64();
    let first = [
        operator::subscribed(master, interval),
        json!({"type": "HEARTBEAT"}),
    ];
    let (key, stream, rx) = open(operators, Ok::<_, ApiError>)?;
    for record in &first {
        send(operators, &key, record);
    }
    Ok((key, stream, rx))
}

/// Opens a stream for whoever `subscribe` admits on it (it gets the new stream's id and
/// returns the framework's or agent's id). Records queued by the state during the
/// command are delivered after it, so the stream is in place for them.
fn open<E>(
    streams: &mut BTreeMap<String, Stream>,
    subscribe: impl FnOnce(String) -> Result<String, E>,
) -> Result<Opened, E> {
    let stream = uuid4();
    let (tx, rx) = mpsc::channel(STREAM_BACKLOG);
    let key = subscribe(stream.clone())?;
    streams.insert(
        key.clone(),
        Stream {
            id: stream.clone(),
            tx,
        },
    );
    Ok((key, stream, rx))
}

/// Ends `key`'s stream if it is still `stream` (a newer one may have replaced it).
fn close(streams: &mut BTreeMap<String, Stream>, key: &str, stream: &str) {
    if streams.get(key).is_some_and(|s| s.id == stream) {
        streams.remove(key);
    }
}

fn agent_call(
    master: &mut Master,
    agents: &BTreeMap<String, Stream>,
    stream: Option<&str>,
    call: AgentCall,
) -> Result<(), ApiError> {
    let agent = match &call {
        AgentCall::Subscribe { .. } => {
            return Err(ApiError::bad_request("SUBSCRIBE opens a stream of its own"))
        }
        AgentCall::Pong { agent_id }
        | AgentCall::Update { agent_id, .. }
        | AgentCall::Message { agent_id, .. }
        | AgentCall::ExecutorExited { agent_id, .. } => agent_id.value.clone(),
    };
    let Some(stream) = stream else {
        return Err(ApiError::bad_request(
            "All non-subscribe calls should include the 'Mesos-Stream-Id' header",
        ));
    };
    if agents.get(&agent).is_none_or(|s| s.id != stream) {
        return Err(ApiError::bad_request(format!(
            "agent {agent} is not subscribed on stream '{stream}'; subscribe again"
        )));
    }
    match call {
        AgentCall::Subscribe { .. } => {}
        AgentCall::Pong { .. } => master.agent_pong(&agent),
        AgentCall::Update {
            framework_id,
            status,
            ..
        } => master.agent_update(&agent, &framework_id.value, status),
        AgentCall::Message {
            framework_id,
            executor_id,
            data,
            ..
        } => {
            let data = holdfast_api::base64::decode(&data)
                .map_err(|e| ApiError::bad_request(format!("'data' is not base64: {e}")))?;
            master.agent_message(&framework_id.value, &agent, executor_id, data);
        }
        AgentCall::ExecutorExited {
            framework_id,
            executor_id,
            status,
            ..
        } => master.executor_exited(&framework_id.value, &agent, executor_id, status),
    }
    Ok(())
}

/// Puts each output on its stream. A stream whose client cannot keep up is closed.
fn deliver(master: &mut Master, streams: &mut Streams) {
    let Streams {
        frameworks,
        agents,
        operators,
    } = streams;
    for out in master.take_outputs() {
        match out {
            Output::Framework { framework, event } => {
                send(frameworks, &framework, &event.to_json());
            }
            Output::EndFrameworkStream { framework, stream } => {
                close(frameworks, &framework, &stream);
            }
            Output::Agent { agent, event } => {
                let value = serde_json::to_value(&event).unwrap_or(Value::Null);
                send(agents, &agent, &value);
            }
            Output::EndAgentStream { agent, stream } => {
                close(agents, &agent, &stream);
            }
            Output::Operator(event) => {
                if !operators.is_empty() {
                    broadcast(operators, &operator::event(master, &event));
                }
            }
        }
    }
}

/// Sends `value` on every stream of `streams`.
fn broadcast(streams: &mut BTreeMap<String, Stream>, value: &Value) {
    let keys: Vec<String> = streams.keys().cloned().collect();
    for key in keys {
        send(streams, &key, value);
    }
}

fn send(streams: &mut BTreeMap<String, Stream>, key: &str, value: &Value) {
    let Some(s) = streams.get(key) else { return };
    if s.tx.try_send(Bytes::from(recordio(value))).is_err() {
        tracing::warn!(
            stream = key,
            "closing a stream whose client does not keep up"
        );
        streams.remove(key);
    }
}

/// The response body of a stream; dropping it (client gone, or stream ended) tells the
/// state task.
struct StreamBody {
    rx: mpsc::Receiver<Bytes>,
    gone: Option<(mpsc::Sender<Command>, Command)>,
}

impl http_body::Body for StreamBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(http_body::Frame::data(b))))
    }
}

impl Drop for StreamBody {
    fn drop(&mut self) {
        if let Some((tx, cmd)) = self.gone.take() {
            if let Err(mpsc::error::TrySendError::Full(cmd)) = tx.try_send(cmd) {
                // The state task is busy; never block a drop.
                tokio::spawn(async move {
                    let _ = tx.send(cmd).await;
                });
            }
        }
    }
}

fn stream_response(stream_id: Option<&str>, body: StreamBody) -> Response {
    let mut r = Response::new(Body::new(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(v) = stream_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        h.insert("Mesos-Stream-Id", v);
    }
    r
}

/// The legacy GET documents.
#[derive(Debug, Clone, Copy)]
enum Doc {
    State,
    StateSummary,
    Frameworks,
    Slaves,
    Tasks,
    Roles,
    Flags,
    MetricsSnapshot,
}

pub fn router(handle: MasterHandle) -> Router {
    use axum::routing::{any, get};
    let mut router = Router::new()
        .route("/api/v1/scheduler", any(scheduler_api))
        .route("/internal/v1/agent", any(agent_api))
        .route("/api/v1", any(operator_api))
        .route("/api/v1/operator", any(operator_api))
        .route("/version", get(version))
        .route("/master/version", get(version))
        .route("/metrics", get(prometheus))
        .route(
            "/metrics/snapshot",
            get(|State(h), uri| legacy(h, uri, Doc::MetricsSnapshot)),
        );
    // The master's own endpoints answer both under `/master/` and bare, as in Mesos
    // (whose master is the process that answers unprefixed paths).
    let docs = [
        ("state", Doc::State),
        ("state-summary", Doc::StateSummary),
        ("frameworks", Doc::Frameworks),
        ("slaves", Doc::Slaves),
        ("tasks", Doc::Tasks),
        ("roles", Doc::Roles),
        ("flags", Doc::Flags),
    ];
    for prefix in ["/master", ""] {
        router = router
            .route(
                &format!("{prefix}/health"),
                get(|| async { StatusCode::OK }),
            )
            .route(&format!("{prefix}/redirect"), get(redirect));
        for (name, doc) in docs {
            router = router.route(
                &format!("{prefix}/{name}"),
                get(move |State(h), uri| legacy(h, uri, doc)),
            );
        }
    }
    router
        .fallback(|| async { error_response(&ApiError::not_found("404 Not Found.")) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(handle)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn check_post(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if method != Method::POST {
        return Err(ApiError::new(
            405,
            format!(
                "405 Method Not Allowed. Expecting one of {{ 'POST' }}, but received '{method}'."
            ),
        ));
    }
    holdfast_api::http::check_content_type(header_str(headers, "content-type"))?;
    holdfast_api::http::check_accept(header_str(headers, "accept"))
}

async fn scheduler_api(
    State(h): State<MasterHandle>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match scheduler_call(&h, &method, &headers, &body).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

async fn scheduler_call(
    h: &MasterHandle,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    check_post(method, headers)?;
    let call = scheduler::parse_call(body)?;
    match call.body {
        CallBody::Subscribe(subscribe) => {
            let framework_id = call.framework_id;
            let result = h
                .ask(|reply| Command::SchedulerSubscribe {
                    framework_id,
                    subscribe,
                    reply,
                })
                .await?;
            match result {
                Ok(opened) => Ok(h.stream_response(opened, true, |framework, stream| {
                    Command::FrameworkGone { framework, stream }
                })),
                // As Mesos: the stream opens with a single ERROR and ends.
                Err(SubscribeRefused(message)) => {
                    let (tx, rx) = mpsc::channel(1);
                    let _ = tx.try_send(Bytes::from(recordio(&Event::Error(message).to_json())));
                    Ok(stream_response(
                        Some(&uuid4()),
                        StreamBody { rx, gone: None },
                    ))
                }
            }
        }
        body => {
            let stream = header_str(headers, "mesos-stream-id").map(str::to_owned);
            let framework_id = call.framework_id;
            h.ask(|reply| Command::SchedulerCall {
                framework_id,
                stream,
                body,
                reply,
            })
            .await??;
            Ok(accepted())
        }
    }
}

async fn agent_api(
    State(h): State<MasterHandle>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        check_post(&method, &headers)?;
        let call: AgentCall = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("Failed to parse the agent call: {e}")))?;
        if let AgentCall::Subscribe { .. } = call {
            let opened = h
                .ask(|reply| Command::AgentSubscribe { call, reply })
                .await??;
            return Ok(
                h.stream_response(opened, true, |agent, stream| Command::AgentGone {
                    agent,
                    stream,
                }),
            );
        }
        let stream = header_str(&headers, "mesos-stream-id").map(str::to_owned);
        h.ask(|reply| Command::AgentCall {
            stream,
            call,
            reply,
        })
        .await??;
        Ok::<_, ApiError>(accepted())
    }
    .await;
    result.unwrap_or_else(|e| error_response(&e))
}

async fn operator_api(
    State(h): State<MasterHandle>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        check_post(&method, &headers)?;
        let call = operator_call::parse_call(&body)?;
        operator_answer(&h, call).await
    }
    .await;
    result.unwrap_or_else(|e| error_response(&e))
}

async fn operator_answer(
    h: &MasterHandle,
    call: operator_call::Call,
) -> Result<Response, ApiError> {
    use operator_call::Call;
    let value = match call {
        Call::GetHealth => response("GET_HEALTH", json!({"healthy": true})),
        Call::GetVersion => response("GET_VERSION", json!({"version_info": *h.version})),
        Call::GetFlags => response("GET_FLAGS", json!({"flags": *h.flags})),
        Call::GetMetrics { timeout: _ } => {
            let uptime = h.uptime_secs();
            h.view(move |m, subscribers| {
                let all = metrics::snapshot(m, uptime, subscribers);
                response("GET_METRICS", metrics::to_get_metrics(&all))
            })
            .await?
        }
        Call::GetState => {
            h.view(|m, _| response("GET_STATE", operator::get_state(m)))
                .await?
        }
        Call::GetAgents => {
            h.view(|m, _| response("GET_AGENTS", operator::get_agents(m)))
                .await?
        }
        Call::GetFrameworks => {
            h.view(|m, _| response("GET_FRAMEWORKS", operator::get_frameworks(m)))
                .await?
        }
        Call::GetExecutors => {
            h.view(|m, _| response("GET_EXECUTORS", operator::get_executors(m)))
                .await?
        }
        Call::GetTasks => {
            h.view(|m, _| response("GET_TASKS", operator::get_tasks(m)))
                .await?
        }
        Call::GetRoles => {
            h.view(|m, _| response("GET_ROLES", operator::get_roles(m)))
                .await?
        }
        // Holdfast offers no operations (reservations, volumes), so there are none.
        Call::GetOperations => response("GET_OPERATIONS", json!({})),
        Call::GetMaster => {
            let start = h.start_time;
            h.view(move |m, _| response("GET_MASTER", operator::get_master(&m.info, start)))
                .await?
        }
        Call::Subscribe => {
            let opened = h
                .ask(|reply| Command::OperatorSubscribe { reply })
                .await??;
            return Ok(
                h.stream_response(opened, false, |_, stream| Command::OperatorGone { stream })
            );
        }
        Call::Teardown { framework_id } => {
            h.ask(|reply| Command::Teardown {
                framework: framework_id.value,
                reply,
            })
            .await??;
            return Ok(StatusCode::OK.into_response());
        }
    };
    Ok(json_response(&value))
}

async fn version(State(h): State<MasterHandle>) -> Response {
    json_response(&h.version)
}

/// `/master/redirect`: where the leading master is (this one), protocol-relative.
async fn redirect(State(h): State<MasterHandle>) -> Response {
    let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(v) = HeaderValue::from_str(&h.leader) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

async fn legacy(h: MasterHandle, uri: Uri, doc: Doc) -> Response {
    let result = async {
        let query = query_pairs(uri.query().unwrap_or_default());
        let jsonp = query
            .iter()
            .find(|(k, _)| k == "jsonp")
            .map(|(_, v)| v.clone());
        if let Some(cb) = &jsonp {
            if !legacy::valid_callback(cb) {
                return Err(ApiError::bad_request(format!(
                    "query parameter 'jsonp' must name a JavaScript function (letters, digits, \
                     '_', '$' and '.'), got '{}'",
                    cb.escape_default()
                )));
            }
        }
        let value = legacy_document(&h, doc, &query).await?;
        let body = serde_json::to_string(&value).unwrap_or_default();
        Ok(match jsonp {
            Some(cb) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/javascript")],
                legacy::jsonp(&cb, &body),
            )
                .into_response(),
            None => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response(),
        })
    }
    .await;
    result.unwrap_or_else(|e| error_response(&e))
}

async fn legacy_document(
    h: &MasterHandle,
    doc: Doc,
    query: &[(String, String)],
) -> Result<Value, ApiError> {
    let (version, flags, start_time) = (h.version.clone(), h.flags.clone(), h.start_time);
    Ok(match doc {
        Doc::State => {
            h.view(move |m, _| {
                let ctx = legacy::Context {
                    version: &version,
                    flags: &flags,
                    start_time,
                };
                legacy::state(m, &ctx)
            })
            .await?
        }
        Doc::StateSummary => h.view(|m, _| legacy::state_summary(m)).await?,
        Doc::Frameworks => h.view(|m, _| legacy::frameworks(m)).await?,
        Doc::Slaves => h.view(|m, _| legacy::slaves(m)).await?,
        Doc::Tasks => {
            let q = TasksQuery::parse(query).map_err(ApiError::bad_request)?;
            h.view(move |m, _| legacy::tasks(m, &q)).await?
        }
        Doc::Roles => h.view(|m, _| legacy::roles(m)).await?,
        Doc::Flags => legacy::flags(&legacy::Context {
            version: &version,
            flags: &flags,
            start_time,
        }),
        Doc::MetricsSnapshot => {
            let uptime = h.uptime_secs();
            h.view(move |m, subscribers| {
                metrics::to_json(&metrics::snapshot(m, uptime, subscribers))
            })
            .await?
        }
    })
}

/// `/metrics`: the metrics in Prometheus's text format.
async fn prometheus(State(h): State<MasterHandle>) -> Response {
    let uptime = h.uptime_secs();
    match h
        .view(move |m, subscribers| {
            metrics::to_prometheus(&metrics::snapshot(m, uptime, subscribers))
        })
        .await
    {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => error_response(&e),
    }
}

/// A URL query's `key=value` pairs, decoded (`+` is a space, `%XX` a byte).
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, Body::empty()).into_response()
}

fn json_response(v: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(id: &str, backlog: usize) -> (Stream, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(backlog);
        (
            Stream {
                id: id.to_owned(),
                tx,
            },
            rx,
        )
    }

    #[test]
    fn a_stream_whose_client_falls_behind_is_closed() {
        let mut streams = BTreeMap::new();
        let (s, mut rx) = stream("s1", 2);
        streams.insert("fw".to_owned(), s);
        send(&mut streams, "fw", &json!({"type": "HEARTBEAT"}));
        send(&mut streams, "fw", &json!({"type": "HEARTBEAT"}));
        assert!(streams.contains_key("fw"), "within its backlog");
        send(&mut streams, "fw", &json!({"type": "HEARTBEAT"}));
        assert!(
            !streams.contains_key("fw"),
            "closed once the backlog is full"
        );
        // What was queued still reaches the client, then the stream ends.
        assert_eq!(
            rx.try_recv().ok(),
            Some(Bytes::from(recordio(&json!({"type": "HEARTBEAT"}))))
        );
        assert!(rx.try_recv().is_ok());
        assert!(matches!(
            rx.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }

    #[test]
    fn closing_an_old_stream_leaves_its_replacement() {
        let mut streams = BTreeMap::new();
        let (s, _rx) = stream("new", 1);
        streams.insert("fw".to_owned(), s);
        close(&mut streams, "fw", "old");
        assert!(streams.contains_key("fw"));
        close(&mut streams, "fw", "new");
        assert!(!streams.contains_key("fw"));
    }

    #[test]
    fn queries_are_decoded() {
        let pairs = query_pairs("limit=1&order=asc&&task_id=a%2Fb+c&flag&bad=%zz%+4%4");
        let expected = [
            ("limit", "1"),
            ("order", "asc"),
            ("task_id", "a/b c"),
            ("flag", ""),
            ("bad", "%zz% 4%4"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(pairs, expected);
        assert!(query_pairs("").is_empty());
    }
}
