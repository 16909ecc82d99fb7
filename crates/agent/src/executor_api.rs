//! The executor API's stream: what the cluster task holds for each subscribed custom
//! executor.

use std::sync::atomic::{AtomicU64, Ordering};

pub use holdfast_api::executor::Event as ExecutorEvent;
use holdfast_http::stream;

/// One executor's event stream (`POST /api/v1/executor` SUBSCRIBE). Dropping the last
/// handle ends the HTTP response.
#[derive(Debug)]
pub struct ExecutorStream {
    id: u64,
    sender: stream::Sender,
}

static NEXT_STREAM: AtomicU64 = AtomicU64::new(1);

impl ExecutorStream {
    /// A new stream; `on_drop` runs with its id when the response body is dropped.
    pub fn open(
        on_drop: impl FnOnce(u64) + Send + Sync + 'static,
    ) -> (ExecutorStream, stream::Body) {
        let id = NEXT_STREAM.fetch_add(1, Ordering::Relaxed);
        let (sender, body) = stream::channel(move || on_drop(id));
        (ExecutorStream { id, sender }, body)
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn send(&self, event: ExecutorEvent) {
        if !self.sender.send_json(&event.to_json()) {
            tracing::debug!(stream = self.id, "executor stream already closed");
        }
    }

    /// Ends the stream (the executor sees its response end).
    pub fn close(self) {}
}
