//! Mutators: byte-level (flip, insert, delete, duplicate a range, splice two inputs) and
//! JSON-aware (parse, change one node, write back). A mutation stacks one to three of
//! them; a JSON mutation of an input that is not JSON falls back to a byte mutation.

use serde_json::{Map, Number, Value};

use crate::rng::Rng;

/// Longest input tried; longer mutants are cut. Parsers see bodies up to the HTTP limit,
/// but past this size a run only measures serde's speed.
pub const MAX_INPUT: usize = 64 * 1024;

/// Mutates `input`; `pool` supplies the other half of splices.
pub fn mutate(rng: &mut Rng, input: &[u8], pool: &[Vec<u8>]) -> Vec<u8> {
    let rounds = 1 + rng.below(3);
    // JSON rounds share one parse and one write: in a debug build those cost more than
    // the run of the input itself.
    let json = if rng.chance(65) {
        mutate_json(rng, input, pool, rounds)
    } else {
        None
    };
    let mut out = json.unwrap_or_else(|| {
        let mut out = input.to_vec();
        for _ in 0..rounds {
            out = mutate_bytes(rng, &out, pool);
        }
        out
    });
    out.truncate(MAX_INPUT);
    out
}

/// JSON punctuation and the bytes that most often break parsers.
const INTERESTING_BYTES: &[u8] = b"{}[]\":,\\0-.eE+ \n\t\x00\x7f\x80\xff";

/// Fragments that are valid JSON tokens (or almost) and stress number and string parsing.
const TOKENS: &[&str] = &[
    "null",
    "true",
    "-0",
    "1e999",
    "-1e999",
    "18446744073709551616",
    "-9223372036854775809",
    "1.7976931348623157e309",
    "0.0000000000000000000001",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "\"\\uDBFF\\uDFFF\"",
    "\"type\"",
    "\"\":",
    "[",
    "]",
    "{",
    "}",
    ",,",
    "\"value\"",
];

pub fn mutate_bytes(rng: &mut Rng, input: &[u8], pool: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    let len = out.len();
    match rng.below(8) {
        0 if len > 0 => {
            let i = rng.below(len);
            out[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            out[i] = *rng.pick(INTERESTING_BYTES);
        }
        2 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            out.splice(at..at, bytes);
        }
        3 => {
            let at = rng.below(len + 1);
            out.splice(at..at, rng.pick(TOKENS).bytes());
        }
        4 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(32)).min(len);
            out.drain(start..end);
        }
        5 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(64)).min(len);
            let copy = out[start..end].to_vec();
            let at = rng.below(len + 1);
            out.splice(at..at, copy);
        }
        6 if !pool.is_empty() => {
            let other = rng.pick(pool);
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            out.truncate(cut);
            out.extend_from_slice(&other[from..]);
        }
        7 if len > 0 => out.truncate(rng.below(len)),
        _ => {
            let at = rng.below(len + 1);
            out.insert(at, *rng.pick(INTERESTING_BYTES));
        }
    }
    out
}

/// How many nodes of `v` (itself included) satisfy `pred`.
fn count(v: &Value, pred: fn(&Value) -> bool) -> usize {
    let children = match v {
        Value::Object(map) => map.values().map(|c| count(c, pred)).sum(),
        Value::Array(items) => items.iter().map(|c| count(c, pred)).sum(),
        _ => 0,
    };
    children + usize::from(pred(v))
}

/// The `n`th node (depth first, from 0) that satisfies `pred`.
fn nth_mut<'a>(v: &'a mut Value, pred: fn(&Value) -> bool, n: &mut usize) -> Option<&'a mut Value> {
    if pred(v) {
        if *n == 0 {
            return Some(v);
        }
        *n -= 1;
    }
    match v {
        Value::Object(map) => map.values_mut().find_map(|c| nth_mut(c, pred, n)),
        Value::Array(items) => items.iter_mut().find_map(|c| nth_mut(c, pred, n)),
        _ => None,
    }
}

fn any_node(_: &Value) -> bool {
    true
}

fn non_empty_object(v: &Value) -> bool {
    v.as_object().is_some_and(|m| !m.is_empty())
}

/// A random node of `v` that satisfies `pred`, if there is one.
fn random_node<'a>(
    rng: &mut Rng,
    v: &'a mut Value,
    pred: fn(&Value) -> bool,
) -> Option<&'a mut Value> {
    let n = count(v, pred);
    if n == 0 {
        return None;
    }
    nth_mut(v, pred, &mut rng.below(n))
}

/// Names that mean something somewhere in the APIs: call, operation, state, type and
/// capability names, plus near misses and ids of the fixtures' capture.
pub const DICTIONARY: &[&str] = &[
    "SUBSCRIBE",
    "TEARDOWN",
    "ACCEPT",
    "DECLINE",
    "REVIVE",
    "SUPPRESS",
    "KILL",
    "SHUTDOWN",
    "ACKNOWLEDGE",
    "RECONCILE",
    "MESSAGE",
    "REQUEST",
    "UPDATE_FRAMEWORK",
    "ACCEPT_INVERSE_OFFERS",
    "DECLINE_INVERSE_OFFERS",
    "PONG",
    "UPDATE",
    "EXECUTOR_EXITED",
    "GET_HEALTH",
    "GET_VERSION",
    "GET_FLAGS",
    "GET_METRICS",
    "GET_STATE",
    "GET_CONTAINERS",
    "LAUNCH_CONTAINER",
    "WAIT_CONTAINER",
    "KILL_CONTAINER",
    "REMOVE_CONTAINER",
    "UPDATE_CONTAINER",
    "LAUNCH_NESTED_CONTAINER",
    "LAUNCH",
    "LAUNCH_GROUP",
    "RESERVE",
    "UNRESERVE",
    "CREATE",
    "DESTROY",
    "SCALAR",
    "RANGES",
    "SET",
    "TEXT",
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_ERROR",
    "TASK_LOST",
    "TASK_DROPPED",
    "TASK_UNREACHABLE",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
    "TASK_UNKNOWN",
    "task_running",
    "TASK_RUNNING ",
    "TASK_BOGUS",
    "SOURCE_EXECUTOR",
    "SOURCE_MASTER",
    "REASON_RECONCILIATION",
    "PARTITION_AWARE",
    "MULTI_ROLE",
    "TASK_KILLING_STATE",
    "DEFAULT",
    "CUSTOM",
    "MESOS",
    "DOCKER",
    "VALUE",
    "SECRET",
    "RLMT_NOFILE",
    "RLMT_AS",
    "RLMT_BOGUS",
    "cpus",
    "mem",
    "disk",
    "ports",
    "gpus",
    "*",
    "web",
    "eng/web",
    "",
    ".",
    "..",
    "-x",
    "a b",
    "a//b",
    "Infinity",
    "-Infinity",
    "NaN",
    "1e999",
    " 4 ",
    "=",
    "Zg",
    "knnFONfHRvGmQM8etzVMRQ==",
    "Ty8qKc7CT0C3UPSl/t2q5w==",
    "!!!!",
    "c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0000",
    "c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0001",
    "c5626c28-6e85-4bb4-95c9-ddeb24d2d624-0002",
    "c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S0",
    "c5626c28-6e85-4bb4-95c9-ddeb24d2d624-S1",
    "c5626c28-6e85-4bb4-95c9-ddeb24d2d624-O0",
    "c5626c28-6e85-4bb4-95c9-ddeb24d2d624-O1",
    "c5626c28-6e85-4bb4-95c9-ddeb24d2d624-O2",
    "c5626c28-6e85-4bb4-95c9-ddeb24d2d624-O3",
    "golden-task-1",
    "golden-dump-executor",
];

/// Field names of the messages the parsers read, to add where they may not belong.
const FIELDS: &[&str] = &[
    "type",
    "value",
    "framework_id",
    "agent_id",
    "task_id",
    "executor_id",
    "offer_ids",
    "operations",
    "filters",
    "refuse_seconds",
    "resources",
    "scalar",
    "ranges",
    "range",
    "begin",
    "end",
    "set",
    "item",
    "role",
    "roles",
    "allocation_info",
    "reservations",
    "framework_info",
    "failover_timeout",
    "capabilities",
    "suppressed_roles",
    "task_infos",
    "task_group",
    "tasks",
    "executor",
    "command",
    "shell",
    "arguments",
    "environment",
    "variables",
    "container",
    "rlimit_info",
    "rlimits",
    "soft",
    "hard",
    "limits",
    "kill_policy",
    "grace_period",
    "nanoseconds",
    "uuid",
    "data",
    "state",
    "status",
    "info",
    "hostname",
    "port",
    "frameworks",
    "signal",
    "parent",
    "user",
    "name",
    "id",
];

fn interesting_number(rng: &mut Rng) -> Value {
    const INTS: &[i64] = &[
        0,
        1,
        -1,
        i64::MAX,
        i64::MIN,
        i32::MAX as i64 + 1,
        i32::MIN as i64 - 1,
        65535,
        65536,
        u32::MAX as i64,
        1 << 32,
        (1 << 53) + 1,
    ];
    const FLOATS: &[f64] = &[
        0.5,
        -0.5,
        -0.0,
        0.0001,
        0.0005,
        0.001,
        0.0015,
        1e-300,
        1e300,
        -1e300,
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        1e15,
        1e15 + 0.5,
        9.3e15,
        1e19,
        1e20,
    ];
    match rng.below(3) {
        0 => Value::from(*rng.pick(INTS)),
        1 => Value::from(u64::MAX - rng.below(2) as u64),
        _ => Number::from_f64(*rng.pick(FLOATS)).map_or(Value::Null, Value::Number),
    }
}

fn long_string(rng: &mut Rng) -> Value {
    // Mostly just past the limits the APIs set (ids of 242 bytes); rarely long enough
    // to matter for speed, which slows every later run of the input.
    let n = *rng.pick(&[243usize, 243, 256, 256, 1024, 4096, 4096, 20_000]);
    let unit = *rng.pick(&["x", "é", "\u{1F600}", "\u{0}", "../", "\u{202e}", "%"]);
    Value::String(unit.repeat(n / unit.len().max(1)))
}

fn deep(rng: &mut Rng) -> Value {
    let depth = *rng.pick(&[64usize, 127, 128, 129, 300, 1000]);
    let object = rng.chance(50);
    let mut v = Value::Null;
    for _ in 0..depth {
        v = if object {
            let mut m = Map::new();
            m.insert("value".to_owned(), v);
            Value::Object(m)
        } else {
            Value::Array(vec![v])
        };
    }
    v
}

fn small_value(rng: &mut Rng) -> Value {
    match rng.below(7) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 => interesting_number(rng),
        3 => Value::String((*rng.pick(DICTIONARY)).to_owned()),
        4 => Value::Array(Vec::new()),
        5 => Value::Object(Map::new()),
        _ => serde_json::json!({"value": *rng.pick(DICTIONARY)}),
    }
}

/// A value of another JSON type than `v`.
fn other_type(rng: &mut Rng, v: &Value) -> Value {
    loop {
        let candidate = small_value(rng);
        if std::mem::discriminant(&candidate) != std::mem::discriminant(v) {
            return candidate;
        }
    }
}

/// A marker key that stands for a duplicate of another key until the value is written
/// out: a JSON object in memory cannot hold a key twice, the text can.
const DUPLICATE_MARKER: &str = "__holdfast_fuzz_duplicate_key__";

/// `rounds` changes to the JSON value of `input`; None if it is not JSON.
pub fn mutate_json(
    rng: &mut Rng,
    input: &[u8],
    pool: &[Vec<u8>],
    rounds: usize,
) -> Option<Vec<u8>> {
    let mut root: Value = serde_json::from_slice(input).ok()?;
    let mut duplicate = None;
    for _ in 0..rounds {
        // A round that finds nothing to change (no object, say) is skipped.
        let _ = change_node(rng, &mut root, pool, &mut duplicate);
    }
    let mut bytes = serde_json::to_vec(&root).ok()?;
    if let Some(key) = duplicate {
        let marker = format!("\"{DUPLICATE_MARKER}\"");
        let at = find(&bytes, marker.as_bytes())?;
        let replacement = serde_json::to_string(&key).ok()?;
        bytes.splice(at..at + marker.len(), replacement.into_bytes());
    }
    Some(bytes)
}

/// One change to a random node of `root`. A duplicated key is marked in place and its
/// name put in `duplicate` (once per value: the marker is a single key).
fn change_node(
    rng: &mut Rng,
    root: &mut Value,
    pool: &[Vec<u8>],
    duplicate: &mut Option<String>,
) -> Option<()> {
    let op = rng.below(14);
    // Operations on an object's keys: drop one, duplicate one, add a known one.
    if op >= 11 {
        let Value::Object(map) = random_node(rng, root, non_empty_object)? else {
            return None;
        };
        let key = map.keys().nth(rng.below(map.len()))?.clone();
        match rng.below(3) {
            0 => {
                map.remove(&key);
            }
            1 if duplicate.is_none() => {
                let value = if rng.chance(50) {
                    map[&key].clone()
                } else {
                    small_value(rng)
                };
                map.insert(DUPLICATE_MARKER.to_owned(), value);
                *duplicate = Some(key);
            }
            _ => {
                map.insert((*rng.pick(FIELDS)).to_owned(), small_value(rng));
            }
        }
    } else {
        let target = random_node(rng, root, any_node)?;
        match op {
            0 => *target = other_type(rng, target),
            1 | 2 => *target = interesting_number(rng),
            3 => *target = long_string(rng),
            4 => *target = deep(rng),
            5 | 6 => *target = Value::String((*rng.pick(DICTIONARY)).to_owned()),
            7 => {
                *target = if rng.chance(50) {
                    Value::Object(Map::new())
                } else {
                    Value::Array(Vec::new())
                }
            }
            8 => *target = Value::Null,
            9 => {
                if pool.is_empty() {
                    return None;
                }
                let donor: &Vec<u8> = rng.pick(pool);
                let mut other = serde_json::from_slice::<Value>(donor).ok()?;
                *target = random_node(rng, &mut other, any_node)?.take();
            }
            _ => match target {
                Value::Array(items) if !items.is_empty() => {
                    let i = rng.below(items.len());
                    if rng.chance(30) {
                        items.remove(i);
                    } else {
                        let copy = items[i].clone();
                        let size = copy.to_string().len().max(1);
                        let n = (1 + rng.below(64)).min(MAX_INPUT / size).max(1);
                        items.extend(std::iter::repeat_n(copy, n));
                    }
                }
                Value::Number(n) => {
                    *target = match (n.as_i64(), n.as_f64()) {
                        (Some(i), _) => Value::from(*rng.pick(&[
                            i.wrapping_add(1),
                            i.wrapping_sub(1),
                            i.wrapping_neg(),
                        ])),
                        (None, Some(f)) => {
                            Number::from_f64(-f * 1e6).map_or(Value::Null, Value::Number)
                        }
                        _ => Value::from(0),
                    }
                }
                _ => *target = small_value(rng),
            },
        }
    }
    Some(())
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = match needle.split_first() {
        Some(split) => split,
        None => return Some(0),
    };
    let mut from = 0;
    while let Some(i) = haystack[from..].iter().position(|b| *b == first) {
        let at = from + i;
        if haystack[at + 1..].starts_with(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutants_differ_and_stay_bounded() {
        let seed =
            br#"{"type":"KILL","framework_id":{"value":"f"},"kill":{"task_id":{"value":"t"}}}"#;
        let pool = vec![seed.to_vec()];
        let mut rng = Rng::new(1);
        let mut changed = 0;
        let mut still_json = 0;
        for _ in 0..2000 {
            let m = mutate(&mut rng, seed, &pool);
            assert!(m.len() <= MAX_INPUT);
            changed += usize::from(m != seed);
            still_json += usize::from(serde_json::from_slice::<Value>(&m).is_ok());
        }
        // Nearly every mutant differs, and JSON-aware ones keep many of them parseable,
        // which is what lets them reach past the JSON parser.
        assert!(changed > 1800, "{changed}");
        assert!(still_json > 400, "{still_json}");
    }

    #[test]
    fn duplicate_keys_reach_the_text() {
        let mut rng = Rng::new(3);
        let seed = br#"{"a":1}"#;
        let found = (0..5000).any(|_| {
            mutate_json(&mut rng, seed, &[], 1).is_some_and(|m| {
                let text = String::from_utf8_lossy(&m).into_owned();
                text.matches("\"a\"").count() == 2
            })
        });
        assert!(found, "no mutant wrote key \"a\" twice");
    }

    #[test]
    fn byte_mutations_handle_empty_input() {
        let mut rng = Rng::new(5);
        for _ in 0..200 {
            let _ = mutate_bytes(&mut rng, b"", &[]);
        }
    }
}
