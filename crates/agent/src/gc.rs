//! When the containers of completed executors are removed: Mesos's agent garbage
//! collection. A container is scheduled `--gc_delay` after its executor completed; the
//! disk check removes earlier what was scheduled long enough ago when the work dir fills
//! up. Pure: the caller brings the clock and the disk usage.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// The agent's garbage collection flags.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GcPolicy {
    /// `--gc_delay`: how long a completed executor's sandbox is kept at most.
    pub delay: Duration,
    /// `--gc_disk_headroom`: the share of the disk to keep free, in `[0, 1]`.
    pub disk_headroom: f64,
    /// `--disk_watch_interval`: how often the disk usage is checked.
    pub disk_watch_interval: Duration,
}

impl GcPolicy {
    /// How old a scheduled removal may get at the given disk usage (a fraction in
    /// `[0, 1]`) before it is carried out: `delay × max(0, 1 − headroom − usage)`, as
    /// Mesos computes it. At or above `1 − headroom` used, that is zero: everything
    /// scheduled goes.
    pub fn max_age(&self, usage: f64) -> Duration {
        let usage = if usage.is_finite() {
            usage.clamp(0.0, 1.0)
        } else {
            1.0
        };
        let factor = (1.0 - self.disk_headroom - usage).max(0.0);
        self.delay.mul_f64(factor)
    }
}

/// Containers waiting for removal, by when they are due.
#[derive(Debug, Default)]
pub struct Schedule {
    by_time: BTreeSet<(Instant, String)>,
    due_at: HashMap<String, Instant>,
}

impl Schedule {
    /// Schedules `container` for removal at `at`. A container already scheduled keeps
    /// the earlier of its two times.
    pub fn schedule(&mut self, container: &str, at: Instant) {
        if let Some(&old) = self.due_at.get(container) {
            if old <= at {
                return;
            }
            self.by_time.remove(&(old, container.to_owned()));
        }
        self.due_at.insert(container.to_owned(), at);
        self.by_time.insert((at, container.to_owned()));
    }

    /// Takes out the containers due at or before `now`, earliest first.
    pub fn due(&mut self, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.by_time.first() {
            if *at > now {
                break;
            }
            if let Some((_, container)) = self.by_time.pop_first() {
                self.due_at.remove(&container);
                out.push(container);
            }
        }
        out
    }

    /// Takes out the containers scheduled at least `max_age` ago, given that each was
    /// scheduled `policy.delay` before it is due: those due by `now + delay − max_age`.
    pub fn prune(&mut self, now: Instant, policy: &GcPolicy, max_age: Duration) -> Vec<String> {
        let ahead = policy.delay.saturating_sub(max_age);
        match now.checked_add(ahead) {
            Some(limit) => self.due(limit),
            // Beyond what the clock can say: everything is within it.
            None => self.drain(),
        }
    }

    fn drain(&mut self) -> Vec<String> {
        self.due_at.clear();
        std::mem::take(&mut self.by_time)
            .into_iter()
            .map(|(_, c)| c)
            .collect()
    }

    /// When the next removal is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    pub fn len(&self) -> usize {
        self.due_at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.due_at.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn policy() -> GcPolicy {
        GcPolicy {
            delay: 100 * HOUR,
            disk_headroom: 0.1,
            disk_watch_interval: Duration::from_secs(60),
        }
    }

    #[test]
    fn max_age_shrinks_with_the_disk_usage_and_is_zero_past_the_headroom() {
        let p = policy();
        assert_eq!(p.max_age(0.0), 90 * HOUR);
        assert_eq!(p.max_age(0.5), 40 * HOUR);
        assert_eq!(p.max_age(0.9), Duration::ZERO);
        assert_eq!(p.max_age(0.95), Duration::ZERO);
        // A usage nobody can trust removes rather than keeps.
        assert_eq!(p.max_age(f64::NAN), Duration::ZERO);
        let no_headroom = GcPolicy {
            disk_headroom: 0.0,
            ..p
        };
        assert_eq!(no_headroom.max_age(0.0), 100 * HOUR);
        assert_eq!(no_headroom.max_age(1.0), Duration::ZERO);
    }

    #[test]
    fn containers_come_due_in_order_of_their_time() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        s.schedule("b", t0 + 2 * HOUR);
        s.schedule("a", t0 + HOUR);
        s.schedule("c", t0 + 3 * HOUR);
        assert_eq!(s.len(), 3);
        assert_eq!(s.next_due(), Some(t0 + HOUR));
        assert!(s.due(t0).is_empty());
        assert_eq!(s.due(t0 + 2 * HOUR), ["a", "b"]);
        assert_eq!(s.next_due(), Some(t0 + 3 * HOUR));
        assert_eq!(s.due(t0 + 10 * HOUR), ["c"]);
        assert!(s.is_empty());
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn a_container_scheduled_twice_keeps_its_earlier_time() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        s.schedule("a", t0 + 2 * HOUR);
        s.schedule("a", t0 + 5 * HOUR);
        assert_eq!(s.len(), 1);
        assert_eq!(s.next_due(), Some(t0 + 2 * HOUR));
        s.schedule("a", t0 + HOUR);
        assert_eq!(s.len(), 1);
        assert_eq!(s.next_due(), Some(t0 + HOUR));
        assert_eq!(s.due(t0 + HOUR), ["a"]);
        assert!(s.due(t0 + 10 * HOUR).is_empty(), "removed once");
    }

    #[test]
    fn prune_removes_what_was_scheduled_at_least_max_age_ago() {
        let p = policy();
        let t0 = Instant::now();
        let mut s = Schedule::default();
        // Scheduled 50, 30 and 10 hours ago, each due `delay` after it was scheduled.
        for (c, ago) in [("old", 50), ("mid", 30), ("new", 10)] {
            s.schedule(c, t0 + p.delay - ago * HOUR);
        }
        // Half the disk used: 40 hours is the most a sandbox may wait.
        assert_eq!(s.prune(t0, &p, p.max_age(0.5)), ["old"]);
        // Nearly full: everything goes.
        assert_eq!(s.prune(t0, &p, p.max_age(0.95)), ["mid", "new"]);
        assert!(s.is_empty());
    }

    #[test]
    fn prune_with_an_empty_disk_takes_only_what_is_due_by_its_age() {
        let p = policy();
        let t0 = Instant::now();
        let mut s = Schedule::default();
        s.schedule("fresh", t0 + p.delay);
        s.schedule("ancient", t0 + p.delay - 95 * HOUR);
        // 10 % headroom makes the most an untouched disk allows 90 hours.
        assert_eq!(s.prune(t0, &p, p.max_age(0.0)), ["ancient"]);
        assert_eq!(s.len(), 1);
    }
}
