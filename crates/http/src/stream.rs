//! The server side of an event stream: a response body fed record by record from a
//! channel, which reports when the client has gone.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::recordio;

/// The sending half: each [`send`](Sender::send) is one RecordIO record in one chunk.
#[derive(Debug, Clone)]
pub struct Sender {
    tx: mpsc::UnboundedSender<Bytes>,
}

impl Sender {
    /// Queues a record; false if the client is gone.
    pub fn send_json(&self, value: &serde_json::Value) -> bool {
        let record = recordio::encode(value.to_string().as_bytes());
        self.tx.send(Bytes::from(record)).is_ok()
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The response body. The stream ends when every [`Sender`] is dropped; dropping the
/// body (the client went away, or the stream ended) runs `on_drop`.
pub struct Body {
    rx: mpsc::UnboundedReceiver<Bytes>,
    on_drop: Option<Box<dyn FnOnce() + Send + Sync>>,
}

/// A new stream: the sender to feed and the body to answer with.
pub fn channel(on_drop: impl FnOnce() + Send + Sync + 'static) -> (Sender, Body) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Sender { tx },
        Body {
            rx,
            on_drop: Some(Box::new(on_drop)),
        },
    )
}

impl http_body::Body for Body {
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

impl Drop for Body {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}
