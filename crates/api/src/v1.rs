//! Mesos v1 message types shared by the APIs (`mesos/v1/mesos.proto`), as JSON.
//!
//! Only the fields Holdfast reads or writes are modelled; unknown input fields are ignored,
//! as Mesos ignores them.

use serde::{Deserialize, Serialize};

/// A container id; nested containers name their parent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContainerId {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Box<ContainerId>>,
}

/// Longest id component: it becomes a directory name.
pub const MAX_ID_LEN: usize = 242;

impl ContainerId {
    pub fn new(value: impl Into<String>) -> Self {
        ContainerId {
            value: value.into(),
            parent: None,
        }
    }

    pub fn child(&self, value: impl Into<String>) -> Self {
        ContainerId {
            value: value.into(),
            parent: Some(Box::new(self.clone())),
        }
    }

    /// The chain of ids from the top-level container down to this one.
    pub fn path(&self) -> Vec<&str> {
        let mut parts = vec![self.value.as_str()];
        let mut cur = self.parent.as_deref();
        while let Some(p) = cur {
            parts.push(p.value.as_str());
            cur = p.parent.as_deref();
        }
        parts.reverse();
        parts
    }

    pub fn from_path<S: AsRef<str>>(parts: &[S]) -> Option<Self> {
        let mut iter = parts.iter();
        let mut id = ContainerId::new(iter.next()?.as_ref());
        for p in iter {
            id = id.child(p.as_ref());
        }
        Some(id)
    }

    pub fn is_nested(&self) -> bool {
        self.parent.is_some()
    }

    pub fn depth(&self) -> usize {
        self.path().len()
    }

    /// Checks every component the way Mesos validates ids, a little stricter: an id
    /// becomes a directory name in the cgroup tree and the work dir, so it must not be
    /// able to name another place (`..`, `/`) or hide (`.x` is fine, `.` is not).
    pub fn validate(&self) -> Result<(), String> {
        for part in self.path() {
            validate_id_component(part)?;
        }
        Ok(())
    }
}

pub fn validate_id_component(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("container id must not be empty".into());
    }
    if id == "." || id == ".." {
        return Err(format!("container id '{id}' is not allowed"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!(
            "container id '{}...' is longer than {MAX_ID_LEN} bytes",
            &id[..id.char_indices().nth(16).map_or(id.len(), |(i, _)| i)]
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@' | '+')))
    {
        return Err(format!(
            "container id '{}' contains '{}': use letters, digits and - _ . : @ +",
            id.escape_default(),
            c.escape_default()
        ));
    }
    Ok(())
}

impl std::fmt::Display for ContainerId {
    /// Mesos prints nested ids joined with dots.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path().join("."))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl CommandInfo {
    /// `shell` defaults to true in the proto.
    pub fn is_shell(&self) -> bool {
        self.shell.unwrap_or(true)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    #[serde(default)]
    pub variables: Vec<Variable>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variable {
    pub name: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ValueType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalar: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Ranges>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<Set>,
    /// Deprecated in Mesos but still sent: the role the resource is reserved for, `*`
    /// when unreserved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The role the resource is allocated to, in offers and tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_info: Option<AllocationInfo>,
}

impl Resource {
    /// An unreserved, unallocated scalar resource.
    pub fn scalar(name: &str, value: f64) -> Resource {
        Resource {
            name: name.to_owned(),
            kind: ValueType::Scalar,
            scalar: Some(Scalar { value }),
            ranges: None,
            set: None,
            role: None,
            allocation_info: None,
        }
    }

    /// An unreserved, unallocated ranges resource of inclusive `(begin, end)` pairs.
    pub fn ranges(name: &str, ranges: &[(u64, u64)]) -> Resource {
        Resource {
            name: name.to_owned(),
            kind: ValueType::Ranges,
            scalar: None,
            ranges: Some(Ranges {
                range: ranges
                    .iter()
                    .map(|&(begin, end)| Range { begin, end })
                    .collect(),
            }),
            set: None,
            role: None,
            allocation_info: None,
        }
    }

    /// An unreserved, unallocated set resource.
    pub fn set(name: &str, items: &[&str]) -> Resource {
        Resource {
            name: name.to_owned(),
            kind: ValueType::Set,
            scalar: None,
            ranges: None,
            set: Some(Set {
                item: items.iter().map(|i| (*i).to_owned()).collect(),
            }),
            role: None,
            allocation_info: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AllocationInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValueType {
    #[serde(rename = "SCALAR")]
    Scalar,
    #[serde(rename = "RANGES")]
    Ranges,
    #[serde(rename = "SET")]
    Set,
    #[serde(rename = "TEXT")]
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scalar {
    /// Protobuf's JSON mapping writes infinities as `"Infinity"` / `"-Infinity"`; Mesos
    /// uses an infinite limit to mean "unlimited".
    #[serde(with = "json_double")]
    pub value: f64,
}

/// A protobuf `double` in JSON: a number, or one of the strings `"Infinity"`,
/// `"-Infinity"`, `"NaN"` (and numbers written as strings, which protobuf also accepts).
mod json_double {
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_nan() {
            s.serialize_str("NaN")
        } else if v.is_infinite() {
            s.serialize_str(if *v > 0.0 { "Infinity" } else { "-Infinity" })
        } else {
            s.serialize_f64(*v)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Number(f64),
            Text(String),
        }
        let text = match Repr::deserialize(d)? {
            Repr::Number(v) => return Ok(v),
            Repr::Text(t) => t,
        };
        match text.as_str() {
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            "NaN" => Ok(f64::NAN),
            t => t.trim().parse().map_err(|_| {
                de::Error::custom(format!(
                    "'{t}' is not a number (write a number, \"Infinity\" or \"-Infinity\")"
                ))
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranges {
    #[serde(default)]
    pub range: Vec<Range>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub begin: u64,
    pub end: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Set {
    #[serde(default)]
    pub item: Vec<String>,
}

/// Sum of the scalar resources called `name`.
pub fn scalar_sum(resources: &[Resource], name: &str) -> Option<f64> {
    let mut found = None;
    for r in resources.iter().filter(|r| r.name == name) {
        if let Some(s) = r.scalar {
            *found.get_or_insert(0.0) += s.value;
        }
    }
    found
}

/// `ContainerInfo`: only `rlimit_info` is read for now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerInfo {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rlimit_info: Option<RLimitInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux_info: Option<LinuxInfo>,
}

/// The part of Mesos's `LinuxInfo` Holdfast acts on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinuxInfo {
    /// Nested containers only: `true` (the default) runs in the parent's cgroup limits,
    /// `false` gives the container limits of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_cgroups: Option<bool>,
}

impl ContainerInfo {
    /// `linux_info.share_cgroups` as given, if it was.
    pub fn share_cgroups(&self) -> Option<bool> {
        self.linux_info.as_ref().and_then(|l| l.share_cgroups)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RLimitInfo {
    #[serde(default)]
    pub rlimits: Vec<RLimit>,
}

/// One rlimit; an absent `soft`/`hard` means unlimited, as in Mesos.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RLimit {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft: Option<u64>,
}

/// Mesos's `RLimitInfo.RLimit.Type` names and the Linux resource each maps to.
pub const RLIMIT_NAMES: &[(&str, i32)] = &[
    ("RLMT_AS", 9),
    ("RLMT_CORE", 4),
    ("RLMT_CPU", 0),
    ("RLMT_DATA", 2),
    ("RLMT_FSIZE", 1),
    ("RLMT_LOCKS", 10),
    ("RLMT_MEMLOCK", 8),
    ("RLMT_MSGQUEUE", 12),
    ("RLMT_NICE", 13),
    ("RLMT_NOFILE", 7),
    ("RLMT_NPROC", 6),
    ("RLMT_RSS", 5),
    ("RLMT_RTPRIO", 14),
    ("RLMT_RTTIME", 15),
    ("RLMT_SIGPENDING", 11),
    ("RLMT_STACK", 3),
];

pub fn rlimit_resource(name: &str) -> Option<i32> {
    RLIMIT_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| *r)
}

/// `ResourceStatistics`, with Mesos's field names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceStatistics {
    pub timestamp: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_user_time_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_system_time_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_limit: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_soft_limit: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_nr_periods: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_nr_throttled: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_throttled_time_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_total_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_total_memsw_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_kmem_usage_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_kmem_tcp_usage_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_limit_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_soft_limit_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_file_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_anon_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_cache_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_rss_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_mapped_file_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_swap_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_unevictable_bytes: Option<u64>,
}

/// Which resources a container exceeded (Mesos `TaskResourceLimitation`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskResourceLimitation {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub container_id: ContainerId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_pid: Option<u32>,
    /// Passed through from executors' updates; Holdfast's containers share the host's
    /// network, so it never makes any of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_infos: Vec<serde_json::Value>,
    /// Holdfast extension: each limit the launch asked for that is not enforced (its
    /// controller is missing on the host or not in `--isolation`), in words. Absent when
    /// every limit is enforced; Mesos clients ignore it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unenforced_limits: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_time: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_sha: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_tag: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_take_protobuf_json_doubles() {
        let parse = |s: &str| serde_json::from_str::<Scalar>(s).map(|v| v.value);
        assert_eq!(parse(r#"{"value": 0.5}"#).ok(), Some(0.5));
        assert_eq!(parse(r#"{"value": "Infinity"}"#).ok(), Some(f64::INFINITY));
        assert_eq!(parse(r#"{"value": "2.5"}"#).ok(), Some(2.5));
        let e = parse(r#"{"value": "lots"}"#).unwrap_err().to_string();
        assert!(e.contains("'lots' is not a number"), "{e}");
        let out = serde_json::to_string(&Scalar {
            value: f64::INFINITY,
        })
        .expect("serialize");
        assert_eq!(out, r#"{"value":"Infinity"}"#);
    }

    #[test]
    fn id_path_roundtrip() {
        let id = ContainerId::new("a").child("b").child("c");
        assert_eq!(id.path(), vec!["a", "b", "c"]);
        assert_eq!(ContainerId::from_path(&["a", "b", "c"]), Some(id.clone()));
        assert_eq!(id.to_string(), "a.b.c");
        assert_eq!(id.depth(), 3);
    }

    #[test]
    fn id_validation() {
        for ok in [
            "a",
            "golden-standalone-sleep",
            "b0939ed9-fc11",
            "x.y",
            "a_b:c@d+e",
        ] {
            assert!(validate_id_component(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "a b", "a\\b", "a\nb", "é"] {
            assert!(validate_id_component(bad).is_err(), "{bad:?}");
        }
        assert!(validate_id_component(&"x".repeat(MAX_ID_LEN + 1)).is_err());
        let nested_bad = ContainerId::new("ok").child("..");
        assert!(nested_bad.validate().is_err());
    }

    #[test]
    fn scalar_sum_adds_same_name() {
        let r = |name: &str, v: f64| Resource {
            name: name.into(),
            kind: ValueType::Scalar,
            scalar: Some(Scalar { value: v }),
            ranges: None,
            set: None,
            role: None,
            allocation_info: None,
        };
        let rs = vec![r("cpus", 0.5), r("mem", 32.0), r("cpus", 0.25)];
        assert_eq!(scalar_sum(&rs, "cpus"), Some(0.75));
        assert_eq!(scalar_sum(&rs, "disk"), None);
    }
}
