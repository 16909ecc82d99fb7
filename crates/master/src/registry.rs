//! The master's registry: which agents it admitted and which it declared unreachable
//! (and when). It is what survives a restart of the master, as Mesos's registry does:
//! frameworks and tasks are not in it (frameworks subscribe again under their ids, and
//! agents report their tasks when they register again).
//!
//! The document is `<work_dir>/registry.json`, replaced atomically and durably
//! (`holdfast_checkpoint::fs::write_atomic`) whenever it changes:
//!
//! ```text
//! {
//!   "version": 1,
//!   "agents":      { "<agent id>": { "info": <AgentInfo> }, ... },
//!   "unreachable": { "<agent id>": { "timestamp_ns": <nanoseconds since the epoch> }, ... }
//! }
//! ```
//!
//! `agents` are the agents admitted (registered, and not unreachable since);
//! `unreachable` the agents marked unreachable, with when, until they come back or the
//! registry's garbage collection forgets them. An agent is in at most one of the two.
//! Times are whole nanoseconds, as Mesos's `TimeInfo` and the `unreachable_time`
//! frameworks are told: a float would not always read back as the same number.
//! The operations and the encoding are pure; [`load`] and [`store`] are the only file
//! access.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use holdfast_api::internal::AgentInfo;
use serde::{Deserialize, Serialize};

/// The registry's file name in the master's `--work_dir`.
pub const FILE_NAME: &str = "registry.json";

/// The document's version; a master refuses a registry of a version it does not know.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    pub version: u32,
    /// Admitted agents, by id.
    #[serde(default)]
    pub agents: BTreeMap<String, Admitted>,
    /// Agents marked unreachable, by id.
    #[serde(default)]
    pub unreachable: BTreeMap<String, Unreachable>,
}

/// An admitted agent: what it told the master about itself when it last registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Admitted {
    pub info: AgentInfo,
}

/// An agent marked unreachable. Only its id and the time are kept, as in Mesos: the
/// list may grow long (`--registry_max_agent_count`), and an agent that comes back
/// tells its info again.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Unreachable {
    /// When it was marked unreachable: wall-clock nanoseconds since the epoch.
    pub timestamp_ns: i64,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            version: VERSION,
            agents: BTreeMap::new(),
            unreachable: BTreeMap::new(),
        }
    }
}

impl Registry {
    /// Admits agent `id` (a new registration, a registration again with changed info,
    /// or an unreachable agent that came back). Returns whether the document changed:
    /// an agent that registers again as it was needs no write.
    pub fn admit(&mut self, id: &str, info: &AgentInfo) -> bool {
        let was_unreachable = self.unreachable.remove(id).is_some();
        let same = self.agents.get(id).is_some_and(|a| a.info == *info);
        if !same {
            self.agents
                .insert(id.to_owned(), Admitted { info: info.clone() });
        }
        was_unreachable || !same
    }

    /// Moves agent `id` from the admitted agents to the unreachable ones, as of
    /// `timestamp_ns`. An agent already unreachable keeps its first time (frameworks
    /// were told that one). Returns whether the document changed.
    pub fn mark_unreachable(&mut self, id: &str, timestamp_ns: i64) -> bool {
        let was_admitted = self.agents.remove(id).is_some();
        if self.unreachable.contains_key(id) {
            return was_admitted;
        }
        self.unreachable
            .insert(id.to_owned(), Unreachable { timestamp_ns });
        true
    }

    /// When agent `id` was marked unreachable (nanoseconds since the epoch), if it is.
    pub fn unreachable_since(&self, id: &str) -> Option<i64> {
        self.unreachable.get(id).map(|u| u.timestamp_ns)
    }

    pub fn is_admitted(&self, id: &str) -> bool {
        self.agents.contains_key(id)
    }

    /// The registry's garbage collection, as Mesos's: the unreachable agents beyond the
    /// newest `max_count` go, and so does every one marked unreachable more than
    /// `max_age` before `now_ns` (nanoseconds since the epoch). Returns the ids removed,
    /// oldest first. Admitted agents are never pruned.
    pub fn prune(&mut self, now_ns: i64, max_age: Duration, max_count: usize) -> Vec<String> {
        // Oldest first; the id breaks ties so the result does not depend on map order.
        let mut by_age: Vec<(i64, String)> = self
            .unreachable
            .iter()
            .map(|(id, u)| (u.timestamp_ns, id.clone()))
            .collect();
        by_age.sort();
        let excess = by_age.len().saturating_sub(max_count);
        let max_age = i128::try_from(max_age.as_nanos()).unwrap_or(i128::MAX);
        let removed: Vec<String> = by_age
            .into_iter()
            .enumerate()
            .filter(|(i, (t, _))| *i < excess || i128::from(now_ns) - i128::from(*t) > max_age)
            .map(|(_, (_, id))| id)
            .collect();
        for id in &removed {
            self.unreachable.remove(id);
        }
        removed
    }

    /// The document as written to the file.
    pub fn encode(&self) -> Vec<u8> {
        // A map of strings to plain data always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a document. The version is checked first, so a registry written by a newer
    /// master is refused as such, not as corrupt.
    pub fn decode(bytes: &[u8]) -> Result<Registry, DecodeError> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u64,
        }
        let v: Versioned = serde_json::from_slice(bytes).map_err(DecodeError::Corrupt)?;
        if v.version != u64::from(VERSION) {
            return Err(DecodeError::Version(v.version));
        }
        serde_json::from_slice(bytes).map_err(DecodeError::Corrupt)
    }
}

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a registry document")]
    Corrupt(#[source] serde_json::Error),
    #[error("version {0}, which this master does not know (it knows version {VERSION})")]
    Version(u64),
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read the registry {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the registry {} is corrupt: restore it from a backup, or move it away to start \
         with an empty one (agents that register again are then admitted anew, but those \
         that never come back are never reported unreachable)",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        #[source]
        source: DecodeError,
    },
    #[error(
        "the registry {} was written by a newer master ({found}; this one knows version \
         {VERSION}): run that release or a later one",
        path.display()
    )]
    Newer { path: PathBuf, found: u64 },
    #[error("cannot write the registry {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads the registry at `path`; `None` when there is none yet (a missing or empty
/// file: the master never admitted an agent there).
pub fn load(path: &Path) -> Result<Option<Registry>, RegistryError> {
    let bytes =
        holdfast_checkpoint::fs::read_optional(path).map_err(|source| RegistryError::Read {
            path: path.to_owned(),
            source,
        })?;
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    match Registry::decode(&bytes) {
        Ok(r) => Ok(Some(r)),
        Err(DecodeError::Version(found)) if found > u64::from(VERSION) => {
            Err(RegistryError::Newer {
                path: path.to_owned(),
                found,
            })
        }
        Err(source) => Err(RegistryError::Corrupt {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Replaces the registry at `path` with `encoded` (from [`Registry::encode`]), durably:
/// when this returns, a crash leaves this document, never the one before or a torn one.
pub fn store(path: &Path, encoded: &[u8]) -> Result<(), RegistryError> {
    holdfast_checkpoint::fs::write_atomic(path, encoded).map_err(|source| RegistryError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Wall-clock seconds as the whole nanoseconds the registry keeps and frameworks are
/// told (`unreachable_time`).
pub fn nanos(wall_secs: f64) -> i64 {
    (wall_secs * 1e9) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(host: &str) -> AgentInfo {
        AgentInfo {
            hostname: host.to_owned(),
            port: 5051,
            resources: Vec::new(),
            attributes: Vec::new(),
            domain: None,
        }
    }

    #[test]
    fn an_agent_is_admitted_marked_unreachable_and_readmitted() {
        let mut r = Registry::default();
        assert!(r.admit("a", &info("h1")));
        assert!(!r.admit("a", &info("h1")), "the same info needs no write");
        assert!(r.admit("a", &info("h2")), "changed info is written");
        assert_eq!(r.agents["a"].info.hostname, "h2");

        assert!(r.mark_unreachable("a", 100));
        assert!(!r.is_admitted("a"));
        assert_eq!(r.unreachable_since("a"), Some(100));
        assert!(!r.mark_unreachable("a", 200), "already unreachable");
        assert_eq!(r.unreachable_since("a"), Some(100), "the first time stays");

        assert!(
            r.admit("a", &info("h2")),
            "readmission leaves the unreachable list"
        );
        assert!(r.is_admitted("a"));
        assert_eq!(r.unreachable_since("a"), None);
    }

    #[test]
    fn an_agent_never_admitted_can_be_marked_unreachable() {
        // A recovered agent that did not come back is only in the admitted list of the
        // document it was recovered from; marking it is the same operation.
        let mut r = Registry::default();
        assert!(r.mark_unreachable("x", 5));
        assert_eq!(r.unreachable_since("x"), Some(5));
        assert!(r.agents.is_empty());
    }

    fn with_unreachable(times: &[(&str, i64)]) -> Registry {
        let mut r = Registry::default();
        r.admit("live", &info("live"));
        for (id, t) in times {
            r.mark_unreachable(id, *t);
        }
        r
    }

    #[test]
    fn pruning_drops_the_oldest_beyond_the_count_and_the_too_old() {
        let week = Duration::from_secs(7 * 86400);
        let day = 86_400_000_000_000;
        let now = 100 * day;
        let times = [
            ("d", now - 3 * day),
            ("a", now - 10 * day),
            ("c", now - 5 * day),
            ("b", now - 8 * day),
        ];
        // By age: older than a week.
        let mut r = with_unreachable(&times);
        assert_eq!(r.prune(now, week, 100), ["a", "b"]);
        let left: Vec<&String> = r.unreachable.keys().collect();
        assert_eq!(left, ["c", "d"]);
        assert!(r.is_admitted("live"), "admitted agents stay");

        // By count: the oldest go first, whatever their age.
        let mut r = with_unreachable(&times);
        assert_eq!(r.prune(now, week * 4, 1), ["a", "b", "c"]);
        assert_eq!(r.unreachable_since("d"), Some(now - 3 * day));

        // Both: the count leaves two, and one of them is too old.
        let mut r = with_unreachable(&times);
        assert_eq!(
            r.prune(now, Duration::from_secs(4 * 86400), 2),
            ["a", "b", "c"]
        );

        // Nothing qualifies.
        let mut r = with_unreachable(&times);
        assert!(r.prune(now, week * 4, 4).is_empty());
        assert_eq!(r.unreachable.len(), 4);
    }

    #[test]
    fn the_document_round_trips_and_carries_its_version() {
        let mut r = Registry::default();
        r.admit("m-S0", &info("h1"));
        r.mark_unreachable("m-S1", 1_700_000_000_123_456_789);
        let bytes = r.encode();
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["version"], 1);
        assert_eq!(v["agents"]["m-S0"]["info"]["hostname"], "h1");
        assert_eq!(
            v["unreachable"]["m-S1"]["timestamp_ns"],
            1_700_000_000_123_456_789_i64
        );
        assert_eq!(Registry::decode(&bytes).expect("decode"), r);
    }

    #[test]
    fn a_newer_version_is_refused_as_newer_and_garbage_as_corrupt() {
        let newer = br#"{"version": 2, "agents": "a shape this master does not know"}"#;
        assert!(matches!(
            Registry::decode(newer),
            Err(DecodeError::Version(2))
        ));
        for bad in [
            &b"{\"version\": 1, \"agents\": [1]}"[..],
            b"{\"agents\": {}}",
            b"{\"version\": 1, \"agents\": {\"a\": {\"info\": {\"port\": 1}}}}",
            b"\x00\x01 torn",
        ] {
            assert!(
                matches!(Registry::decode(bad), Err(DecodeError::Corrupt(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn load_tells_missing_from_corrupt_and_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        assert!(load(&path).expect("missing").is_none());
        std::fs::write(&path, b"").expect("empty");
        assert!(load(&path).expect("empty").is_none(), "never written yet");

        let mut r = Registry::default();
        r.admit("a", &info("h"));
        store(&path, &r.encode()).expect("store");
        assert_eq!(load(&path).expect("load"), Some(r));

        std::fs::write(&path, b"{\"version\": 1, \"agents\": ").expect("torn");
        let e = load(&path).expect_err("corrupt");
        assert!(matches!(e, RegistryError::Corrupt { .. }), "{e:?}");
        let message = e.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("move it away"), "{message}");

        std::fs::write(&path, b"{\"version\": 7}").expect("newer");
        let e = load(&path).expect_err("newer");
        assert!(matches!(e, RegistryError::Newer { found: 7, .. }), "{e:?}");
        assert!(e.to_string().contains(&path.display().to_string()));

        std::fs::write(&path, b"{\"version\": 0}").expect("older");
        assert!(matches!(
            load(&path),
            Err(RegistryError::Corrupt {
                source: DecodeError::Version(0),
                ..
            })
        ));
    }
}
