//! Resource arithmetic over Mesos `Resource` lists.
//!
//! A [`Resources`] value is a normalized multiset of resources. Two resources are of the
//! *same kind* when they share name, type, reservation role (`role`, where absent and `*`
//! both mean unreserved) and allocation role (`allocation_info.role`). Each kind appears
//! at most once: same-kind scalars are summed, ranges merged and coalesced, sets united,
//! and zero or empty values dropped, so two values compare equal exactly when they
//! describe the same resources.
//!
//! Scalars are kept in fixed point with three decimal places, as Mesos does, so that
//! `0.1 + 0.2 == 0.3` and long runs of offers, launches and frees never drift.
//!
//! [`Resources::parse`] reads the agent's `--resources` flag (Mesos's text form or a JSON
//! array) and [`Display`](std::fmt::Display) writes the text form back.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::{AddAssign, SubAssign};

use holdfast_api::v1::{AllocationInfo, Range, Ranges, Resource, Scalar, Set, ValueType};

mod attributes;
mod parse;

pub use attributes::parse_attributes;

/// The reservation role of unreserved resources, as Mesos writes it.
pub const UNRESERVED: &str = "*";

/// Largest scalar value accepted. Values are held as an `i64` count of thousandths;
/// this bound leaves headroom for sums of many of them.
pub const MAX_SCALAR: f64 = 1e15;

/// The port range Mesos agents offer when `--resources` names none.
pub const DEFAULT_PORTS: (u64, u64) = (31000, 32000);

/// Why a resource list or a `--resources` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A resource of a list failed validation.
    #[error("invalid resource '{name}' (index {index}): {reason}")]
    Invalid {
        /// Position of the resource in the list given, from 0.
        index: usize,
        /// The resource's name, as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An entry of the text form of `--resources` could not be read.
    #[error(
        "invalid --resources entry '{entry}': {reason} \
         (expected e.g. cpus:4, ports:[31000-32000] or zones:{{a,b}})"
    )]
    Entry {
        /// The entry, trimmed.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The JSON form of `--resources` could not be read. The parser's message is kept as
    /// text so that printing this error alone says where the JSON went wrong.
    #[error(
        "invalid --resources JSON: {detail} (expected an array of Resource objects, \
         e.g. [{{\"name\":\"cpus\",\"type\":\"SCALAR\",\"scalar\":{{\"value\":4}}}}])"
    )]
    Json {
        /// The JSON parser's message, with line and column.
        detail: String,
    },
    /// The JSON form of `--resources` gives one name two types.
    #[error(
        "resource '{name}' is given as both {} and {}: a name has one type",
        type_name(*first),
        type_name(*second)
    )]
    MixedTypes {
        /// The resource name.
        name: String,
        /// The type seen first.
        first: ValueType,
        /// The conflicting type.
        second: ValueType,
    },
    /// The default role passed to [`Resources::parse`] is not a valid role.
    #[error("invalid default role '{role}': {reason}")]
    DefaultRole {
        /// The role given.
        role: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Identifies a kind of resource: pieces with equal keys are merged. The field order
/// is the output order (name, reservation, allocation).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    name: String,
    /// `None` when unreserved, so unreserved resources sort first.
    role: Option<String>,
    allocation: Option<String>,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    Scalar,
    Ranges,
    Set,
}

/// A resource amount. The variant always matches the `kind` of its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Value {
    /// Thousandths: Mesos's fixed point.
    Scalar(i64),
    /// Sorted, disjoint, non-adjacent inclusive intervals.
    Ranges(Vec<(u64, u64)>),
    Set(BTreeSet<String>),
}

/// A normalized multiset of Mesos resources; see the crate documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Resources {
    /// Invariant: no value is zero or empty.
    items: BTreeMap<Key, Value>,
}

impl Resources {
    /// Validates and normalizes `list`.
    ///
    /// Each resource needs a name, a payload matching its type (TEXT is refused), a
    /// finite non-negative scalar no larger than [`MAX_SCALAR`], ranges with
    /// `begin <= end`, and valid roles. Names, roles and set items must also be
    /// writable in the text form, so that [`Display`](fmt::Display) output parses back.
    pub fn new(list: impl IntoIterator<Item = Resource>) -> Result<Resources, Error> {
        let mut out = Resources::default();
        for (index, resource) in list.into_iter().enumerate() {
            let name = resource.name.clone();
            let (key, value) = from_wire(resource).map_err(|reason| Error::Invalid {
                index,
                name,
                reason,
            })?;
            out.insert(key, value);
        }
        Ok(out)
    }

    /// True when there are no resources.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Number of distinct kinds of resources (the length of [`Resources::to_vec`]).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Adds `other` to these resources.
    pub fn add(&mut self, other: &Resources) {
        for (key, value) in &other.items {
            self.insert_ref(key, value);
        }
    }

    /// Removes what of `other` is present: scalars go to `max(0, a - b)`, ranges and
    /// sets lose their overlap. Anything in `other` that is not here is ignored.
    pub fn subtract(&mut self, other: &Resources) {
        for (key, value) in &other.items {
            if let Entry::Occupied(mut entry) = self.items.entry(key.clone()) {
                entry.get_mut().subtract(value);
                if entry.get().is_empty() {
                    entry.remove();
                }
            }
        }
    }

    /// True when every piece of `other` is covered by a piece of the same kind here.
    /// Resources reserved for a role do not cover unreserved ones, nor the reverse.
    pub fn contains(&self, other: &Resources) -> bool {
        other
            .items
            .iter()
            .all(|(key, value)| self.items.get(key).is_some_and(|have| have.contains(value)))
    }

    /// The total of the scalar resource `name` over all roles and allocations; 0 if
    /// there is none.
    pub fn scalar(&self, name: &str) -> f64 {
        let total =
            self.items
                .iter()
                .filter(|(key, _)| key.name == name)
                .fold(0i64, |sum, (_, value)| match value {
                    Value::Scalar(v) => sum.saturating_add(*v),
                    _ => sum,
                });
        from_fixed(total)
    }

    /// Totals of every scalar resource by name, over all roles and allocations.
    pub fn scalars(&self) -> BTreeMap<String, f64> {
        let mut totals: BTreeMap<String, i64> = BTreeMap::new();
        for (key, value) in &self.items {
            if let Value::Scalar(v) = value {
                let sum = totals.entry(key.name.clone()).or_default();
                *sum = sum.saturating_add(*v);
            }
        }
        totals
            .into_iter()
            .map(|(name, v)| (name, from_fixed(v)))
            .collect()
    }

    /// A copy with every resource allocated to `role` (as in an offer to a framework of
    /// that role).
    pub fn allocated_to(&self, role: &str) -> Resources {
        self.map_allocation(|_| Some(role.to_owned()))
    }

    /// A copy with all allocation information removed.
    pub fn unallocated(&self) -> Resources {
        self.map_allocation(|_| None)
    }

    /// Only the resources allocated to `role`.
    pub fn filter_allocated(&self, role: &str) -> Resources {
        Resources {
            items: self
                .items
                .iter()
                .filter(|(key, _)| key.allocation.as_deref() == Some(role))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        }
    }

    /// The resources as wire values, in output order (see [`Resources::into_vec`]).
    pub fn iter(&self) -> impl Iterator<Item = Resource> + '_ {
        self.items.iter().map(|(key, value)| to_wire(key, value))
    }

    /// The resources as wire values, sorted by name, then reservation role (unreserved
    /// first), then allocation role (unallocated first). Unreserved resources carry
    /// `role: "*"`, as Mesos sends them; ranges are sorted and set items are sorted.
    pub fn into_vec(self) -> Vec<Resource> {
        self.items
            .into_iter()
            .map(|(key, value)| to_wire(&key, &value))
            .collect()
    }

    /// Like [`Resources::into_vec`], without consuming.
    pub fn to_vec(&self) -> Vec<Resource> {
        self.iter().collect()
    }

    fn map_allocation(&self, f: impl Fn(&Option<String>) -> Option<String>) -> Resources {
        let mut out = Resources::default();
        for (key, value) in &self.items {
            let key = Key {
                allocation: f(&key.allocation),
                ..key.clone()
            };
            out.insert(key, value.clone());
        }
        out
    }

    fn insert(&mut self, key: Key, value: Value) {
        if value.is_empty() {
            return;
        }
        match self.items.entry(key) {
            Entry::Vacant(entry) => {
                entry.insert(value);
            }
            Entry::Occupied(mut entry) => entry.get_mut().add(&value),
        }
    }

    fn insert_ref(&mut self, key: &Key, value: &Value) {
        if value.is_empty() {
            return;
        }
        match self.items.get_mut(key) {
            Some(have) => have.add(value),
            None => {
                self.items.insert(key.clone(), value.clone());
            }
        }
    }
}

impl Value {
    fn is_empty(&self) -> bool {
        match self {
            Value::Scalar(v) => *v == 0,
            Value::Ranges(r) => r.is_empty(),
            Value::Set(s) => s.is_empty(),
        }
    }

    // In the three methods below, mismatched variants cannot occur (keys include the
    // kind); they are treated as disjoint rather than panicking.

    fn add(&mut self, other: &Value) {
        match (self, other) {
            (Value::Scalar(a), Value::Scalar(b)) => *a = a.saturating_add(*b),
            (Value::Ranges(a), Value::Ranges(b)) => {
                a.extend_from_slice(b);
                *a = coalesce(std::mem::take(a));
            }
            (Value::Set(a), Value::Set(b)) => a.extend(b.iter().cloned()),
            _ => {}
        }
    }

    fn subtract(&mut self, other: &Value) {
        match (self, other) {
            (Value::Scalar(a), Value::Scalar(b)) => *a = a.saturating_sub(*b).max(0),
            (Value::Ranges(a), Value::Ranges(b)) => *a = ranges_difference(a, b),
            (Value::Set(a), Value::Set(b)) => a.retain(|item| !b.contains(item)),
            _ => {}
        }
    }

    fn contains(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Scalar(a), Value::Scalar(b)) => a >= b,
            (Value::Ranges(a), Value::Ranges(b)) => ranges_contain(a, b),
            (Value::Set(a), Value::Set(b)) => b.is_subset(a),
            _ => false,
        }
    }
}

/// Sorts and merges overlapping or adjacent intervals: `[1-3],[4-5]` becomes `[1-5]`.
fn coalesce(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (begin, end) in ranges {
        match out.last_mut() {
            // saturating: an interval ending at u64::MAX absorbs everything after it.
            Some(last) if begin <= last.1.saturating_add(1) => last.1 = last.1.max(end),
            _ => out.push((begin, end)),
        }
    }
    out
}

/// `a` minus `b`, both normalized; the result is normalized too.
fn ranges_difference(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::with_capacity(a.len());
    let mut first = 0;
    for &(begin, end) in a {
        // Intervals of `b` wholly before this one cannot touch later ones either.
        while first < b.len() && b[first].1 < begin {
            first += 1;
        }
        let mut lo = begin;
        let mut consumed = false;
        for &(cut_begin, cut_end) in b[first..].iter().take_while(|r| r.0 <= end) {
            if cut_begin > lo {
                out.push((lo, cut_begin - 1));
            }
            if cut_end >= end {
                consumed = true;
                break;
            }
            // cut_end < end, so this cannot overflow.
            lo = lo.max(cut_end + 1);
        }
        if !consumed {
            out.push((lo, end));
        }
    }
    out
}

/// Whether every interval of `b` lies inside one interval of `a` (both normalized, so
/// an interval of `b` cannot straddle two of `a`).
fn ranges_contain(a: &[(u64, u64)], b: &[(u64, u64)]) -> bool {
    b.iter().all(|&(begin, end)| {
        let i = a.partition_point(|r| r.1 < begin);
        a.get(i).is_some_and(|r| r.0 <= begin && end <= r.1)
    })
}

/// Rounds to the nearest thousandth, as Mesos's `convertToFixed` does. Callers check
/// the range first; the cast saturates regardless.
fn to_fixed(value: f64) -> i64 {
    (value * 1000.0).round() as i64
}

fn from_fixed(value: i64) -> f64 {
    value as f64 / 1000.0
}

/// Checks a wire resource and splits it into its key and amount.
fn from_wire(resource: Resource) -> Result<(Key, Value), String> {
    let Resource {
        name,
        kind,
        scalar,
        ranges,
        set,
        role,
        allocation_info,
    } = resource;
    validate_name(&name)?;
    let role = match role {
        None => None,
        Some(role) if role == UNRESERVED => None,
        Some(role) => {
            validate_role(&role).map_err(|e| format!("reservation {e}"))?;
            Some(role)
        }
    };
    let allocation = match allocation_info.and_then(|a| a.role) {
        None => None,
        Some(role) => {
            validate_role(&role).map_err(|e| format!("allocation {e}"))?;
            Some(role)
        }
    };
    let present: Vec<&str> = [
        scalar.is_some().then_some("scalar"),
        ranges.is_some().then_some("ranges"),
        set.is_some().then_some("set"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let wrong_payload = |wanted: &str| {
        if present.is_empty() {
            format!("type is {} but it has no '{wanted}' value", type_name(kind))
        } else {
            format!(
                "type is {} but it has a '{}' value (only '{wanted}' belongs with it)",
                type_name(kind),
                present.join("' and '")
            )
        }
    };
    let (kind, value) = match (kind, scalar, ranges, set) {
        (ValueType::Scalar, Some(Scalar { value }), None, None) => {
            (Kind::Scalar, Value::Scalar(scalar_to_fixed(value)?))
        }
        (ValueType::Scalar, ..) => return Err(wrong_payload("scalar")),
        (ValueType::Ranges, None, Some(Ranges { range }), None) => {
            for r in &range {
                if r.begin > r.end {
                    return Err(format!(
                        "range {}-{} has its begin after its end",
                        r.begin, r.end
                    ));
                }
            }
            let pairs = range.iter().map(|r| (r.begin, r.end)).collect();
            (Kind::Ranges, Value::Ranges(coalesce(pairs)))
        }
        (ValueType::Ranges, ..) => return Err(wrong_payload("ranges")),
        (ValueType::Set, None, None, Some(Set { item })) => {
            for i in &item {
                validate_set_item(i)?;
            }
            (Kind::Set, Value::Set(item.into_iter().collect()))
        }
        (ValueType::Set, ..) => return Err(wrong_payload("set")),
        (ValueType::Text, ..) => return Err("text resources cannot be offered".to_owned()),
    };
    Ok((
        Key {
            name,
            role,
            allocation,
            kind,
        },
        value,
    ))
}

fn scalar_to_fixed(value: f64) -> Result<i64, String> {
    if !value.is_finite() {
        return Err(format!("scalar value {value} is not finite"));
    }
    if value < 0.0 {
        return Err(format!("scalar value {value} is negative"));
    }
    if value > MAX_SCALAR {
        return Err(format!(
            "scalar value {value} is too large (at most {MAX_SCALAR})"
        ));
    }
    Ok(to_fixed(value))
}

fn type_name(kind: ValueType) -> &'static str {
    match kind {
        ValueType::Scalar => "SCALAR",
        ValueType::Ranges => "RANGES",
        ValueType::Set => "SET",
        ValueType::Text => "TEXT",
    }
}

fn to_wire(key: &Key, value: &Value) -> Resource {
    let (kind, scalar, ranges, set) = match value {
        Value::Scalar(v) => (
            ValueType::Scalar,
            Some(Scalar {
                value: from_fixed(*v),
            }),
            None,
            None,
        ),
        Value::Ranges(r) => (
            ValueType::Ranges,
            None,
            Some(Ranges {
                range: r.iter().map(|&(begin, end)| Range { begin, end }).collect(),
            }),
            None,
        ),
        Value::Set(s) => (
            ValueType::Set,
            None,
            None,
            Some(Set {
                item: s.iter().cloned().collect(),
            }),
        ),
    };
    Resource {
        name: key.name.clone(),
        kind,
        scalar,
        ranges,
        set,
        role: Some(key.role.as_deref().unwrap_or(UNRESERVED).to_owned()),
        allocation_info: key.allocation.as_ref().map(|role| AllocationInfo {
            role: Some(role.clone()),
        }),
    }
}

/// Characters the text form uses as syntax, so names may not contain them.
const NAME_SYNTAX: &[char] = &[':', ';', '(', ')', '[', ']', '{', '}', ','];

fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".to_owned());
    }
    if name.trim() != name {
        return Err("the name starts or ends with whitespace".to_owned());
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || NAME_SYNTAX.contains(c))
    {
        return Err(format!(
            "the name contains '{}'; names may not contain control characters or any of : ; ( ) [ ] {{ }} ,",
            c.escape_default()
        ));
    }
    Ok(())
}

/// Mesos's role rules (`*`, or non-empty `/`-separated components, none `.`, `..`, `*`
/// or starting with `-`, no whitespace), plus no `(`, `)`, `:`, `;` so that a role can
/// be written inside `name(role)`.
fn validate_role(role: &str) -> Result<(), String> {
    if role.is_empty() {
        return Err("role is empty".to_owned());
    }
    if role == UNRESERVED {
        return Ok(());
    }
    if let Some(c) = role
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "():;".contains(*c))
    {
        return Err(format!(
            "role '{}' contains '{}', which roles may not contain",
            role.escape_default(),
            c.escape_default()
        ));
    }
    for component in role.split('/') {
        if matches!(component, "" | "." | ".." | "*") {
            return Err(format!(
                "role '{role}' has a path component '{component}'; components must be names other than '.', '..' and '*'"
            ));
        }
        if component.starts_with('-') {
            return Err(format!(
                "role '{role}' has a component '{component}' starting with '-'"
            ));
        }
    }
    Ok(())
}

fn validate_set_item(item: &str) -> Result<(), String> {
    if item.is_empty() {
        return Err("a set item is empty".to_owned());
    }
    if item.trim() != item {
        return Err(format!("set item '{item}' starts or ends with whitespace"));
    }
    if let Some(c) = item.chars().find(|c| c.is_control() || ",;{}".contains(*c)) {
        return Err(format!(
            "set item '{}' contains '{}'; set items may not contain control characters or any of , ; {{ }}",
            item.escape_default(),
            c.escape_default()
        ));
    }
    Ok(())
}

/// Writes thousandths (never negative here) as the shortest exact decimal: 4000 -> `4`,
/// 500 -> `0.5`, so the text form loses nothing.
fn write_fixed(f: &mut fmt::Formatter<'_>, value: i64) -> fmt::Result {
    write!(f, "{}", value / 1000)?;
    let frac = value % 1000;
    if frac != 0 {
        let digits = format!("{frac:03}");
        write!(f, ".{}", digits.trim_end_matches('0'))?;
    }
    Ok(())
}

impl fmt::Display for Resources {
    /// Mesos's text form, e.g. `cpus:4; disk(role):100; ports:[31000-32000]`. The
    /// allocation role is not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, value)) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            f.write_str(&key.name)?;
            if let Some(role) = &key.role {
                write!(f, "({role})")?;
            }
            f.write_str(":")?;
            match value {
                Value::Scalar(v) => write_fixed(f, *v)?,
                Value::Ranges(ranges) => {
                    f.write_str("[")?;
                    for (j, (begin, end)) in ranges.iter().enumerate() {
                        if j > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "{begin}-{end}")?;
                    }
                    f.write_str("]")?;
                }
                Value::Set(items) => {
                    f.write_str("{")?;
                    for (j, item) in items.iter().enumerate() {
                        if j > 0 {
                            f.write_str(", ")?;
                        }
                        f.write_str(item)?;
                    }
                    f.write_str("}")?;
                }
            }
        }
        Ok(())
    }
}

impl IntoIterator for Resources {
    type Item = Resource;
    type IntoIter = std::vec::IntoIter<Resource>;

    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

// Only the assigning operators: an `Add for &Resources` impl would make
// `resources.add(&other)` resolve to the trait method (autoref comes before `&mut`) and
// silently return a new value instead of adding in place.
impl AddAssign<&Resources> for Resources {
    fn add_assign(&mut self, other: &Resources) {
        self.add(other);
    }
}

impl SubAssign<&Resources> for Resources {
    fn sub_assign(&mut self, other: &Resources) {
        self.subtract(other);
    }
}

/// What a Mesos agent offers by default: `cpus`, `mem` and `disk` (MiB) scalars plus
/// `ports:[31000-32000]`, all unreserved. A value that is not finite or is not positive
/// leaves that resource out; values above [`MAX_SCALAR`] are capped.
pub fn default_agent_resources(cpus: f64, mem_mib: f64, disk_mib: f64) -> Resources {
    let mut out = Resources::default();
    for (name, value) in [("cpus", cpus), ("mem", mem_mib), ("disk", disk_mib)] {
        if value.is_finite() && value > 0.0 {
            out.insert(
                Key::unreserved(name, Kind::Scalar),
                Value::Scalar(to_fixed(value.min(MAX_SCALAR))),
            );
        }
    }
    out.insert(
        Key::unreserved("ports", Kind::Ranges),
        Value::Ranges(vec![DEFAULT_PORTS]),
    );
    out
}

impl Key {
    fn unreserved(name: &str, kind: Kind) -> Key {
        Key {
            name: name.to_owned(),
            role: None,
            allocation: None,
            kind,
        }
    }
}

#[cfg(test)]
mod tests;
