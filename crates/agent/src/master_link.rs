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
use tokio::sync::{mpsc, oneshot, Semaphore};

pub const AGENT_PATH: &str = "/internal/v1/agent";

/// Between attempts to reach the master: from 1 s, doubling up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Calls to the master in flight at once (PONGs aside). A thousand tasks ending together
/// would otherwise open a thousand connections to a master that answers them one by one,
/// and every call slower than its timeout would be sent again on top.
const MAX_CALLS_IN_FLIGHT: usize = 16;

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
    in_flight: Semaphore,
}

impl MasterLink {
    pub fn new(master: String, info: AgentInfo) -> Arc<MasterLink> {
        Arc::new(MasterLink {
            client: Client::new(master, Duration::from_secs(30)),
            info,
            agent_id: Mutex::new(None),
            session: Mutex::new(None),
            in_flight: Semaphore::new(MAX_CALLS_IN_FLIGHT),
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
        // A PONG never queues behind updates: a late one gets the agent declared gone.
        let _permit = match call {
            AgentCall::Pong { .. } => None,
            _ => match self.in_flight.acquire().await {
                Ok(p) => Some(p),
                Err(_) => return false,
            },
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A master that holds every call but PONGs until told to answer, and counts how
    /// many it holds at once.
    #[derive(Default)]
    struct SlowMaster {
        now: AtomicUsize,
        most: AtomicUsize,
        pongs: AtomicUsize,
        release: tokio::sync::Notify,
    }

    async fn serve(master: Arc<SlowMaster>) -> String {
        let app = axum::Router::new().route(
            AGENT_PATH,
            axum::routing::post(move |body: String| {
                let m = master.clone();
                async move {
                    if body.contains("PONG") {
                        m.pongs.fetch_add(1, Ordering::SeqCst);
                        return axum::http::StatusCode::ACCEPTED;
                    }
                    let now = m.now.fetch_add(1, Ordering::SeqCst) + 1;
                    m.most.fetch_max(now, Ordering::SeqCst);
                    m.release.notified().await;
                    m.now.fetch_sub(1, Ordering::SeqCst);
                    axum::http::StatusCode::ACCEPTED
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    #[tokio::test]
    async fn calls_in_flight_are_bounded_and_pongs_pass_the_queue() {
        let master = Arc::new(SlowMaster::default());
        let addr = serve(master.clone()).await;
        let link = MasterLink::new(
            addr,
            AgentInfo {
                hostname: "h".into(),
                port: 1,
                resources: Vec::new(),
                attributes: Vec::new(),
                domain: None,
            },
        );
        *link.session.lock().expect("lock") = Some(Session {
            agent_id: "a".into(),
            stream_id: "s".into(),
        });
        let mut calls = Vec::new();
        for i in 0..(MAX_CALLS_IN_FLIGHT * 3) {
            let link = link.clone();
            calls.push(tokio::spawn(async move {
                link.send(|agent_id| AgentCall::Message {
                    agent_id,
                    framework_id: Id::new("f"),
                    executor_id: Id::new(format!("e{i}")),
                    data: String::new(),
                })
                .await
            }));
        }
        // Let the calls pile up at the master.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while master.now.load(Ordering::SeqCst) < MAX_CALLS_IN_FLIGHT {
            assert!(
                tokio::time::Instant::now() < deadline,
                "calls never arrived"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(master.most.load(Ordering::SeqCst), MAX_CALLS_IN_FLIGHT);
        // With every permit held, a PONG still goes through.
        assert!(link.send(|agent_id| AgentCall::Pong { agent_id }).await);
        assert_eq!(master.pongs.load(Ordering::SeqCst), 1);
        // Released, all the others are delivered, never more at once than the bound.
        let releaser = {
            let m = master.clone();
            tokio::spawn(async move {
                loop {
                    m.release.notify_waiters();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        for c in calls {
            assert!(c.await.expect("join"), "every call is delivered");
        }
        releaser.abort();
        assert_eq!(master.most.load(Ordering::SeqCst), MAX_CALLS_IN_FLIGHT);
    }
}
