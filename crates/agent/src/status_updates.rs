//! The status update manager: every task's updates reach its framework in order, each
//! until acknowledged.
//!
//! Pure: the caller passes the time and sends what [`StatusUpdates::due`] returns. Per
//! task, only the oldest unacknowledged update (the head) is in flight; the next one goes
//! out when the framework acknowledges the head. An unacknowledged head is sent again
//! after 10 s, then 20 s, doubling up to 10 min (Mesos's intervals), and at once when the
//! agent (re)registers. An update whose uuid was seen before is a duplicate and dropped;
//! so is anything after a task's terminal update.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::time::{Duration, Instant};

use holdfast_api::scheduler::TaskStatus;

pub const RETRY_MIN: Duration = Duration::from_secs(10);
pub const RETRY_MAX: Duration = Duration::from_secs(600);

/// (framework id, task id).
pub type TaskKey = (String, String);

#[derive(Debug)]
struct Stream {
    pending: VecDeque<TaskStatus>,
    /// When the head goes out (again); None while it waits for a connection.
    next_send: Option<Instant>,
    backoff: Duration,
    seen: HashSet<String>,
    terminal_added: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// Queued; it goes out once the ones before it are acknowledged.
    Queued,
    /// An update with this uuid was seen before.
    Duplicate,
    /// The task already had its terminal update.
    AfterTerminal,
    /// No uuid: nothing could acknowledge it.
    NoUuid,
}

// Moved once from sender to receiver; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Acked {
    /// The head was acknowledged; `terminal` if it was the task's last update.
    Done { status: TaskStatus, terminal: bool },
    /// Not the head of any stream: late, repeated or unknown. Ignored.
    Ignored,
}

#[derive(Debug, Default)]
pub struct StatusUpdates {
    streams: BTreeMap<TaskKey, Stream>,
    /// Every stream's `next_send`, by time: what is due is at the front, without a walk
    /// over every task (the cluster task asks after each message it handles).
    timers: BTreeSet<(Instant, TaskKey)>,
}

/// Sets a stream's `next_send`, keeping `timers` in step.
fn reschedule(
    timers: &mut BTreeSet<(Instant, TaskKey)>,
    key: &TaskKey,
    stream: &mut Stream,
    next: Option<Instant>,
) {
    if let Some(old) = stream.next_send {
        timers.remove(&(old, key.clone()));
    }
    if let Some(at) = next {
        timers.insert((at, key.clone()));
    }
    stream.next_send = next;
}

impl StatusUpdates {
    pub fn new() -> StatusUpdates {
        StatusUpdates::default()
    }

    /// Queues an update (which must carry a uuid) for `framework`'s task.
    pub fn add(&mut self, framework: &str, status: TaskStatus, now: Instant) -> Added {
        let Some(uuid) = status.uuid.clone() else {
            return Added::NoUuid;
        };
        let key = (framework.to_owned(), status.task_id.value.clone());
        let stream = self.streams.entry(key.clone()).or_insert_with(|| Stream {
            pending: VecDeque::new(),
            next_send: None,
            backoff: RETRY_MIN,
            seen: HashSet::new(),
            terminal_added: false,
        });
        if stream.seen.contains(&uuid) {
            return Added::Duplicate;
        }
        if stream.terminal_added {
            return Added::AfterTerminal;
        }
        stream.seen.insert(uuid);
        stream.terminal_added = status.state.is_terminal();
        stream.pending.push_back(status);
        if stream.pending.len() == 1 {
            reschedule(&mut self.timers, &key, stream, Some(now));
            stream.backoff = RETRY_MIN;
        }
        Added::Queued
    }

    /// The framework acknowledged the update with `uuid` (base64).
    pub fn acknowledge(&mut self, framework: &str, task: &str, uuid: &str, now: Instant) -> Acked {
        let key = (framework.to_owned(), task.to_owned());
        let Some(stream) = self.streams.get_mut(&key) else {
            return Acked::Ignored;
        };
        if stream.pending.front().and_then(|s| s.uuid.as_deref()) != Some(uuid) {
            return Acked::Ignored;
        }
        let Some(status) = stream.pending.pop_front() else {
            return Acked::Ignored;
        };
        let terminal = status.state.is_terminal();
        if terminal {
            // Nothing can follow a terminal update: the stream is done.
            reschedule(&mut self.timers, &key, stream, None);
            self.streams.remove(&key);
        } else if !stream.pending.is_empty() {
            reschedule(&mut self.timers, &key, stream, Some(now));
            stream.backoff = RETRY_MIN;
        } else {
            reschedule(&mut self.timers, &key, stream, None);
        }
        Acked::Done { status, terminal }
    }

    /// The heads to send now; each is scheduled for its next retry.
    pub fn due(&mut self, now: Instant) -> Vec<(String, TaskStatus)> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.timers.first() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.timers.pop_first() {
                due.push(key);
            }
        }
        // In task order, as a walk over the streams would give them.
        due.sort_unstable();
        let mut out = Vec::new();
        for key in due {
            let Some(stream) = self.streams.get_mut(&key) else {
                continue;
            };
            // Its timer is gone already; the next one is set below.
            stream.next_send = None;
            let Some(head) = stream.pending.front() else {
                continue;
            };
            out.push((key.0.clone(), head.clone()));
            let next = now + stream.backoff;
            stream.backoff = (stream.backoff * 2).min(RETRY_MAX);
            reschedule(&mut self.timers, &key, stream, Some(next));
        }
        out
    }

    /// After (re)registering with a master: every head goes out at once.
    pub fn resend_all(&mut self, now: Instant) {
        for (key, stream) in self.streams.iter_mut() {
            if !stream.pending.is_empty() {
                reschedule(&mut self.timers, key, stream, Some(now));
                stream.backoff = RETRY_MIN;
            }
        }
    }

    /// When [`due`](Self::due) next has something.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Updates of the task not yet acknowledged, oldest first.
    pub fn pending(&self, framework: &str, task: &str) -> impl Iterator<Item = &TaskStatus> {
        self.streams
            .get(&(framework.to_owned(), task.to_owned()))
            .into_iter()
            .flat_map(|s| s.pending.iter())
    }

    /// Forgets a framework's updates (it was shut down).
    pub fn remove_framework(&mut self, framework: &str) {
        self.streams.retain(|(f, _), _| f != framework);
        self.timers.retain(|(_, (f, _))| f != framework);
    }

    pub fn len(&self) -> usize {
        self.streams.values().map(|s| s.pending.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_api::scheduler::{Id, TaskState};

    fn status(task: &str, state: TaskState, uuid: &str) -> TaskStatus {
        TaskStatus {
            task_id: Id::new(task),
            state,
            message: None,
            source: None,
            reason: None,
            data: None,
            agent_id: None,
            executor_id: None,
            timestamp: None,
            uuid: Some(uuid.to_owned()),
            healthy: None,
            container_status: None,
            unreachable_time: None,
            extra: Default::default(),
        }
    }

    fn sent(due: Vec<(String, TaskStatus)>) -> Vec<String> {
        due.into_iter()
            .map(|(_, s)| s.uuid.unwrap_or_default())
            .collect()
    }

    #[test]
    fn one_update_in_flight_per_task_in_order() {
        let t0 = Instant::now();
        let mut m = StatusUpdates::new();
        assert_eq!(
            m.add("f", status("t", TaskState::TaskStarting, "u1"), t0),
            Added::Queued
        );
        assert_eq!(
            m.add("f", status("t", TaskState::TaskRunning, "u2"), t0),
            Added::Queued
        );
        assert_eq!(
            m.add("f", status("t2", TaskState::TaskRunning, "v1"), t0),
            Added::Queued
        );
        assert_eq!(sent(m.due(t0)), vec!["u1", "v1"]);
        assert!(m.due(t0).is_empty(), "nothing again before the retry");
        // An ack of the second update while the first is in flight changes nothing.
        assert_eq!(m.acknowledge("f", "t", "u2", t0), Acked::Ignored);
        assert!(matches!(
            m.acknowledge("f", "t", "u1", t0),
            Acked::Done {
                terminal: false,
                ..
            }
        ));
        assert_eq!(sent(m.due(t0)), vec!["u2"]);
        assert_eq!(m.pending("f", "t").count(), 1);
    }

    #[test]
    fn unacknowledged_heads_are_retried_with_doubling_backoff() {
        let t0 = Instant::now();
        let mut m = StatusUpdates::new();
        m.add("f", status("t", TaskState::TaskRunning, "u1"), t0);
        let mut times = Vec::new();
        let mut now = t0;
        for _ in 0..8 {
            assert_eq!(sent(m.due(now)), vec!["u1"]);
            let next = m.next_deadline().expect("scheduled");
            times.push(next - now);
            assert!(m.due(next - Duration::from_millis(1)).is_empty());
            now = next;
        }
        let secs: Vec<u64> = times.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, vec![10, 20, 40, 80, 160, 320, 600, 600]);
        // A new registration sends at once and starts the backoff over.
        m.resend_all(now);
        assert_eq!(sent(m.due(now)), vec!["u1"]);
        assert_eq!(m.next_deadline(), Some(now + RETRY_MIN));
    }

    #[test]
    fn duplicates_and_updates_after_the_end_are_dropped() {
        let t0 = Instant::now();
        let mut m = StatusUpdates::new();
        m.add("f", status("t", TaskState::TaskRunning, "u1"), t0);
        assert_eq!(
            m.add("f", status("t", TaskState::TaskRunning, "u1"), t0),
            Added::Duplicate
        );
        m.add("f", status("t", TaskState::TaskFinished, "u2"), t0);
        assert_eq!(
            m.add("f", status("t", TaskState::TaskFailed, "u3"), t0),
            Added::AfterTerminal
        );
        let mut no_uuid = status("t", TaskState::TaskRunning, "x");
        no_uuid.uuid = None;
        assert_eq!(m.add("f", no_uuid, t0), Added::NoUuid);
        m.acknowledge("f", "t", "u1", t0);
        assert!(matches!(
            m.acknowledge("f", "t", "u2", t0),
            Acked::Done { terminal: true, .. }
        ));
        assert!(m.is_empty());
        assert_eq!(m.next_deadline(), None);
        assert_eq!(
            m.acknowledge("f", "t", "u2", t0),
            Acked::Ignored,
            "a repeated ack"
        );
    }

    #[test]
    fn a_framework_shut_down_leaves_nothing_to_send() {
        let t0 = Instant::now();
        let mut m = StatusUpdates::new();
        m.add("f", status("t", TaskState::TaskRunning, "u1"), t0);
        m.add("g", status("t", TaskState::TaskRunning, "v1"), t0);
        m.remove_framework("f");
        assert_eq!(m.next_deadline(), Some(t0));
        assert_eq!(sent(m.due(t0)), vec!["v1"]);
        m.remove_framework("g");
        assert_eq!(m.next_deadline(), None);
        assert!(m.due(t0 + RETRY_MAX).is_empty());
    }

    #[test]
    fn each_task_keeps_its_own_retry_time() {
        let t0 = Instant::now();
        let mut m = StatusUpdates::new();
        m.add("f", status("a", TaskState::TaskRunning, "a1"), t0);
        assert_eq!(sent(m.due(t0)), vec!["a1"]);
        let t1 = t0 + Duration::from_secs(5);
        m.add("f", status("b", TaskState::TaskRunning, "b1"), t1);
        assert_eq!(sent(m.due(t1)), vec!["b1"]);
        // a's retry is due at 10 s, b's at 15 s.
        assert_eq!(m.next_deadline(), Some(t0 + RETRY_MIN));
        assert_eq!(sent(m.due(t0 + RETRY_MIN)), vec!["a1"]);
        assert_eq!(m.next_deadline(), Some(t1 + RETRY_MIN));
        // Acknowledging b cancels its retry.
        m.acknowledge("f", "b", "b1", t1);
        assert_eq!(m.next_deadline(), Some(t0 + RETRY_MIN + 2 * RETRY_MIN));
    }
}
