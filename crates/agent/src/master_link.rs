//! The agent's connection to its master (`/internal/v1/agent`, see
//! `holdfast_api::internal`): subscribe, keep the event stream, answer pings, and
//! subscribe again (with the id it was given) whenever the stream breaks.
//!
//! Events other than pings go to the cluster task; calls to the master go out through
//! [`MasterLink::send`], which needs a live stream (its id travels with each call).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_api::internal::{AgentCall, AgentEvent, AgentInfo, TaskReport};
use holdfast_api::scheduler::{FrameworkInfo, Id};
use holdfast_http::{Client, Error as ClientError};
use tokio::sync::{mpsc, oneshot};

pub const AGENT_PATH: &str = "/internal/v1/agent";

/// Between attempts to reach the master: from 1 s, doubling up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

// Moved once from sender to receiver; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
/// What the link tells the cluster task.
#[derive(Debug)]
pub enum LinkEvent {
    /// The master answered a SUBSCRIBE; updates can flow.
    Registered {
        agent_id: String,
    },
    /// The stream broke; the link is subscribing again.
    Disconnected,
    Event(AgentEvent),
    /// The link is about to subscribe: it wants the tasks and frameworks to report.
    Snapshot(oneshot::Sender<(Vec<TaskReport>, Vec<FrameworkInfo>)>),
}

#[derive(Debug, Clone)]
struct Session {
    agent_id: String,
    stream_id: String,
}

pub struct MasterLink {
    client: Client,
    info: AgentInfo,
    /// Kept across disconnects: the agent reregisters under the id it was given.
    agent_id: Mutex<Option<String>>,
    session: Mutex<Option<Session>>,
}

impl MasterLink {
    pub fn new(master: String, info: AgentInfo) -> Arc<MasterLink> {
        Arc::new(MasterLink {
            client: Client::new(master, Duration::from_secs(30)),
            info,
            agent_id: Mutex::new(None),
            session: Mutex::new(None),
        })
    }

    pub fn master(&self) -> &str {
        self.client.addr()
    }

    pub fn info(&self) -> &AgentInfo {
        &self.info
    }

    fn session(&self) -> Option<Session> {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn agent_id(&self) -> Option<String> {
        self.agent_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends a call built for the current registration; false when there is none (the
    /// caller's retry logic covers it) or the master refused it.
    pub async fn send(&self, make: impl FnOnce(Id) -> AgentCall) -> bool {
        let Some(s) = self.session() else {
            return false;
        };
        let call = make(Id::new(&s.agent_id));
        let body = match serde_json::to_value(&call) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a call to the master");
                return false;
            }
        };
        match self
            .client
            .call(AGENT_PATH, &[("Mesos-Stream-Id", &s.stream_id)], &body)
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "call to the master failed");
                false
            }
        }
    }

    /// Runs for the agent's life: subscribe, read events, resubscribe after a break.
    pub async fn run(self: Arc<Self>, tx: mpsc::UnboundedSender<LinkEvent>) {
        let mut backoff = Duration::from_secs(1);
        let mut warned = false;
        loop {
            match self.clone().session_once(&tx).await {
                Ok(()) => {
                    backoff = Duration::from_secs(1);
                    warned = false;
                    tracing::warn!(master = %self.master(), "lost the master; registering again");
                }
                Err(e) => {
                    // Say it once per outage, not at every attempt.
                    if !warned {
                        tracing::warn!(master = %self.master(), error = %e, "cannot register with the master; retrying");
                        warned = true;
                    } else {
                        tracing::debug!(error = %e, "still cannot register with the master");
                    }
                }
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One registration: Ok when an established stream ended, Err if none was established.
    async fn session_once(
        self: Arc<Self>,
        tx: &mpsc::UnboundedSender<LinkEvent>,
    ) -> Result<(), ClientError> {
        let (reply, rx) = oneshot::channel();
        if tx.send(LinkEvent::Snapshot(reply)).is_err() {
            return Ok(());
        }
        let (tasks, frameworks) = rx.await.unwrap_or_default();
        let call = AgentCall::Subscribe {
            agent_id: self.agent_id().map(Id::new),
            info: self.info.clone(),
            tasks,
            frameworks,
        };
        let body = serde_json::to_value(&call).unwrap_or_default();
        let mut stream = self.client.subscribe(AGENT_PATH, &[], &body).await?;
        let stream_id = stream.header("mesos-stream-id").unwrap_or("").to_owned();
        // Until REGISTERED arrives the master has not taken the agent in.
        let mut silence = Duration::from_secs(75);
        let mut registered = false;
        loop {
            let next = match tokio::time::timeout(silence, stream.next()).await {
                Ok(n) => n,
                Err(_) => {
                    tracing::warn!(master = %self.master(), secs = silence.as_secs(), "no ping from the master");
                    break;
                }
            };
            let value = match next {
                Ok(Some(v)) => v,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "the master's stream broke");
                    break;
                }
            };
            let event: AgentEvent = match serde_json::from_value(value) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring an event from the master this agent does not understand");
                    continue;
                }
            };
            match event {
                AgentEvent::Registered {
                    agent_id,
                    ping_interval_seconds,
                } => {
                    // The master declares an agent gone after 5 missed pings; wait as long.
                    if ping_interval_seconds.is_finite() && ping_interval_seconds > 0.0 {
                        silence =
                            Duration::from_secs_f64((ping_interval_seconds * 5.0).min(3600.0))
                                .max(Duration::from_secs(5));
                    }
                    *self.agent_id.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(agent_id.value.clone());
                    *self.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(Session {
                        agent_id: agent_id.value.clone(),
                        stream_id: stream_id.clone(),
                    });
                    registered = true;
                    tracing::info!(agent_id = %agent_id, master = %self.master(), "registered with the master");
                    let _ = tx.send(LinkEvent::Registered {
                        agent_id: agent_id.value,
                    });
                }
                AgentEvent::Ping => {
                    let link = self.clone();
                    tokio::spawn(async move {
                        link.send(|agent_id| AgentCall::Pong { agent_id }).await;
                    });
                }
                other => {
                    if tx.send(LinkEvent::Event(other)).is_err() {
                        break;
                    }
                }
            }
        }
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if registered {
            let _ = tx.send(LinkEvent::Disconnected);
        }
        Ok(())
    }
}
