//! A small HTTP/1.1 client for Holdfast's own JSON APIs: the agent talking to the master,
//! `holdfast execute` talking to the scheduler API.
//!
//! Calls ([`Client::post`]) reuse kept-alive connections; event streams
//! ([`Client::subscribe`]) get a connection of their own and decode RecordIO.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::recordio::{self, RecordIoError};

/// Each variant says what failed and why in one line (the cause is part of the message,
/// not a separate source, so it is not printed twice in a chain).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to {addr}: {error}")]
    Connect { addr: String, error: std::io::Error },
    #[error("HTTP exchange with {addr} failed: {error}")]
    Http { addr: String, error: hyper::Error },
    /// The server answered, but not with success; `body` is its reason.
    #[error("{addr} answered {status}: {body}")]
    Status {
        addr: String,
        status: u16,
        body: String,
    },
    #[error("{addr} did not answer within {0:?}", .timeout)]
    Timeout { addr: String, timeout: Duration },
    #[error("bad event stream from {addr}: {error}")]
    RecordIo { addr: String, error: RecordIoError },
    #[error("event from {addr} is not JSON: {error}")]
    Json {
        addr: String,
        error: serde_json::Error,
    },
    #[error("invalid request: {0}")]
    Request(String),
}

/// What a call got back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_owned()
    }
}

/// Idle connections kept per client: enough for a few calls in flight at once.
const MAX_IDLE: usize = 8;

/// A client of one server (`host:port`).
pub struct Client {
    addr: String,
    timeout: Duration,
    idle: Mutex<Vec<http1::SendRequest<Full<Bytes>>>>,
}

impl Client {
    /// `timeout` bounds connecting plus each call's whole exchange (not a stream's life).
    pub fn new(addr: impl Into<String>, timeout: Duration) -> Client {
        Client {
            addr: addr.into(),
            timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn connect(&self) -> Result<http1::SendRequest<Full<Bytes>>, Error> {
        let tcp = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(|error| Error::Connect {
                addr: self.addr.clone(),
                error,
            })?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|source| self.http(source))?;
        // The connection is driven until either side closes it.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn http(&self, error: hyper::Error) -> Error {
        Error::Http {
            addr: self.addr.clone(),
            error,
        }
    }

    fn request(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<hyper::Request<Full<Bytes>>, Error> {
        let mut req = hyper::Request::post(path)
            .header(hyper::header::HOST, &self.addr)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Error::Request(e.to_string()))?;
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| Error::Request(format!("header name {name:?}: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| Error::Request(format!("header {name}: {e}")))?;
            req.headers_mut().insert(name, value);
        }
        Ok(req)
    }

    /// A kept connection that is still usable, or a new one.
    async fn sender(&self) -> Result<http1::SendRequest<Full<Bytes>>, Error> {
        loop {
            let kept = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match kept {
                Some(mut s) => {
                    if s.ready().await.is_ok() {
                        return Ok(s);
                    }
                }
                None => return self.connect().await,
            }
        }
    }

    /// POSTs a JSON body to `path` and reads the whole answer. Any status is a `Reply`;
    /// only a failed exchange is an error.
    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Reply, Error> {
        let req = self.request(path, headers, body)?;
        let exchange = async {
            let mut sender = self.sender().await?;
            let resp = sender.send_request(req).await.map_err(|e| self.http(e))?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(|e| self.http(e))?.to_bytes();
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(sender);
            }
            Ok(Reply {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Error::Timeout {
                addr: self.addr.clone(),
                timeout: self.timeout,
            })?
    }

    /// POSTs a JSON call that must be answered 2xx; any other answer is [`Error::Status`].
    pub async fn call(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Result<Reply, Error> {
        let reply = self
            .post(path, headers, body.to_string().into_bytes())
            .await?;
        if !(200..300).contains(&reply.status) {
            return Err(Error::Status {
                addr: self.addr.clone(),
                status: reply.status,
                body: reply.text(),
            });
        }
        Ok(reply)
    }

    /// POSTs a call whose answer is a RecordIO event stream (SUBSCRIBE), on a connection
    /// of its own. Anything but 200 is [`Error::Status`].
    pub async fn subscribe(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Result<EventStream, Error> {
        let req = self.request(path, headers, body.to_string().into_bytes())?;
        let open = async {
            let mut sender = self.connect().await?;
            let resp = sender.send_request(req).await.map_err(|e| self.http(e))?;
            let (parts, body) = resp.into_parts();
            if parts.status != hyper::StatusCode::OK {
                let text = body
                    .collect()
                    .await
                    .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_owned())
                    .unwrap_or_default();
                return Err(Error::Status {
                    addr: self.addr.clone(),
                    status: parts.status.as_u16(),
                    body: text,
                });
            }
            Ok(EventStream {
                addr: self.addr.clone(),
                headers: parts.headers,
                body,
                decoder: recordio::Decoder::new(),
            })
        };
        tokio::time::timeout(self.timeout, open)
            .await
            .map_err(|_| Error::Timeout {
                addr: self.addr.clone(),
                timeout: self.timeout,
            })?
    }
}

/// An open event stream: records in arrival order until the server ends it.
pub struct EventStream {
    addr: String,
    headers: hyper::HeaderMap,
    body: Incoming,
    decoder: recordio::Decoder,
}

impl EventStream {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The next event; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<Value>, Error> {
        loop {
            let record = self
                .decoder
                .next_record()
                .map_err(|error| Error::RecordIo {
                    addr: self.addr.clone(),
                    error,
                })?;
            if let Some(r) = record {
                return serde_json::from_slice(&r)
                    .map(Some)
                    .map_err(|error| Error::Json {
                        addr: self.addr.clone(),
                        error,
                    });
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(error)) => {
                    return Err(Error::Http {
                        addr: self.addr.clone(),
                        error,
                    })
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.feed(&data);
                    }
                }
            }
        }
    }
}

/// A server address as operators write it: `host:port` or `http://host:port[/]`. Returns
/// `host:port`.
pub fn parse_endpoint(flag: &str) -> Result<String, String> {
    let s = flag.trim();
    let rest = if let Some(r) = s.strip_prefix("http://") {
        r
    } else if s.contains("://") {
        return Err(format!(
            "'{s}': only http://host:port or host:port is supported (no ZooKeeper or TLS)"
        ));
    } else {
        s
    };
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(rest.to_owned())
        }
        _ => Err(format!("'{s}' is not host:port (e.g. 127.0.0.1:5050)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::post;

    #[test]
    fn endpoints_as_operators_write_them() {
        assert_eq!(parse_endpoint("10.0.0.1:5050").unwrap(), "10.0.0.1:5050");
        assert_eq!(parse_endpoint("http://m1:5050/").unwrap(), "m1:5050");
        assert!(parse_endpoint("zk://z:2181/mesos")
            .unwrap_err()
            .contains("no ZooKeeper"));
        assert!(parse_endpoint("m1").unwrap_err().contains("not host:port"));
        assert!(parse_endpoint("m1:x").is_err());
    }

    async fn serve() -> String {
        let app = axum::Router::new()
            .route(
                "/call",
                post(|body: String| async move {
                    if body.contains("bad") {
                        (axum::http::StatusCode::BAD_REQUEST, "bad call".to_string())
                    } else {
                        (axum::http::StatusCode::ACCEPTED, String::new())
                    }
                }),
            )
            .route(
                "/stream",
                post(|| async {
                    let mut wire = recordio::encode(br#"{"type":"SUBSCRIBED"}"#);
                    wire.extend(recordio::encode(br#"{"type":"HEARTBEAT"}"#));
                    axum::response::Response::builder()
                        .header("Mesos-Stream-Id", "s-1")
                        .body(Body::from(wire))
                        .expect("response")
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
    async fn calls_reuse_connections_and_report_refusals() {
        let addr = serve().await;
        let c = Client::new(addr, Duration::from_secs(10));
        for _ in 0..3 {
            let r = c.post("/call", &[], b"{}".to_vec()).await.expect("call");
            assert_eq!(r.status, 202);
        }
        assert_eq!(c.idle.lock().unwrap().len(), 1, "one kept connection");
        let e = c
            .call("/call", &[], &serde_json::json!({"bad": 1}))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::Status { status: 400, body, .. } if body == "bad call"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn streams_yield_records_then_end() {
        let addr = serve().await;
        let c = Client::new(addr, Duration::from_secs(10));
        let mut s = c
            .subscribe("/stream", &[], &serde_json::json!({}))
            .await
            .expect("stream");
        assert_eq!(s.header("mesos-stream-id"), Some("s-1"));
        assert_eq!(s.next().await.unwrap().unwrap()["type"], "SUBSCRIBED");
        assert_eq!(s.next().await.unwrap().unwrap()["type"], "HEARTBEAT");
        assert!(s.next().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn nobody_listening_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let c = Client::new(addr, Duration::from_secs(10));
        let e = c.post("/call", &[], Vec::new()).await.unwrap_err();
        assert!(matches!(e, Error::Connect { .. }), "{e}");
    }
}
