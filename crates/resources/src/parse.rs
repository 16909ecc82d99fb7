//! The agent's `--resources` flag, in Mesos's two forms:
//!
//! - text: `cpus:4; mem(role):1024; ports:[31000-32000, 33000]; zones:{a,b}`
//! - JSON: an array of `Resource` objects, as on the wire.

use std::collections::BTreeMap;

use holdfast_api::v1::{Resource, ValueType};

use crate::{from_wire, validate_role, Error, Resources, UNRESERVED};

impl Resources {
    /// Parses the agent's `--resources` flag.
    ///
    /// Text that starts with `[` (or `{`, to explain that an array is wanted) is JSON;
    /// anything else is the text form, `;`-separated `name(role):value` entries where
    /// the value is a scalar (`4`, `0.5`), ranges (`[31000-32000, 33000-33010]`, a
    /// single port as `[80]` or `[80-80]`) or a set (`{a,b}`). Whitespace around tokens
    /// and empty entries are ignored. Resources without a role (in either form) are
    /// reserved for `default_role`, which is `*` for unreserved. Repeated entries add
    /// up; one name given two types is refused.
    pub fn parse(text: &str, default_role: &str) -> Result<Resources, Error> {
        validate_role(default_role).map_err(|reason| Error::DefaultRole {
            role: default_role.to_owned(),
            reason,
        })?;
        let trimmed = text.trim_start();
        if trimmed.starts_with('[') || trimmed.starts_with('{') {
            parse_json(text, default_role)
        } else {
            parse_text(text, default_role)
        }
    }
}

fn parse_json(text: &str, default_role: &str) -> Result<Resources, Error> {
    let mut list: Vec<Resource> = serde_json::from_str(text).map_err(|e| Error::Json {
        detail: e.to_string(),
    })?;
    let mut types: BTreeMap<&str, ValueType> = BTreeMap::new();
    for resource in &list {
        let first = *types.entry(&resource.name).or_insert(resource.kind);
        if first != resource.kind {
            return Err(Error::MixedTypes {
                name: resource.name.clone(),
                first,
                second: resource.kind,
            });
        }
    }
    // Mesos gives role-less JSON resources the default role too.
    for resource in &mut list {
        if resource.role.is_none() && default_role != UNRESERVED {
            resource.role = Some(default_role.to_owned());
        }
    }
    Resources::new(list)
}

fn parse_text(text: &str, default_role: &str) -> Result<Resources, Error> {
    let mut out = Resources::default();
    let mut types: BTreeMap<String, ValueType> = BTreeMap::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let fail = |reason: String| Error::Entry {
            entry: entry.to_owned(),
            reason,
        };
        let resource = parse_entry(entry, default_role).map_err(fail)?;
        if let Some(&first) = types.get(&resource.name) {
            if first != resource.kind {
                return Err(fail(format!(
                    "'{}' was already given as {}, not {}",
                    resource.name,
                    crate::type_name(first),
                    crate::type_name(resource.kind)
                )));
            }
        }
        types.insert(resource.name.clone(), resource.kind);
        let (key, value) = from_wire(resource).map_err(fail)?;
        out.insert(key, value);
    }
    Ok(out)
}

/// Reads the syntax of one `name(role):value` entry; [`from_wire`] then checks the
/// values (signs, finiteness, range order, role rules).
fn parse_entry(entry: &str, default_role: &str) -> Result<Resource, String> {
    let (head, value) = entry
        .split_once(':')
        .ok_or_else(|| "there is no ':' between the name and the value".to_owned())?;
    let head = head.trim();
    let (name, role) = match head.split_once('(') {
        None => (head, default_role),
        Some((name, rest)) => {
            let role = rest
                .strip_suffix(')')
                .ok_or_else(|| "the role has no closing ')' before the ':'".to_owned())?
                .trim();
            if role.is_empty() {
                return Err("the role between '(' and ')' is empty".to_owned());
            }
            (name.trim(), role)
        }
    };
    if name.is_empty() {
        return Err("the name before the ':' is empty".to_owned());
    }
    let value = value.trim();
    let mut resource = if let Some(inner) = value.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| format!("ranges '{value}' have no closing ']'"))?;
        Resource::ranges(name, &parse_ranges(inner)?)
    } else if let Some(inner) = value.strip_prefix('{') {
        let inner = inner
            .strip_suffix('}')
            .ok_or_else(|| format!("set '{value}' has no closing '}}'"))?;
        let items = parse_items(inner)?;
        Resource::set(name, &items)
    } else if value.is_empty() {
        return Err("the value after the ':' is empty".to_owned());
    } else {
        let number = value
            .parse::<f64>()
            .map_err(|_| format!("'{value}' is not a number"))?;
        Resource::scalar(name, number)
    };
    resource.role = Some(role.to_owned());
    Ok(resource)
}

/// `31000-32000, 33000` (inside the brackets); empty means no ranges.
fn parse_ranges(inner: &str) -> Result<Vec<(u64, u64)>, String> {
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split(',')
        .map(str::trim)
        .map(|range| {
            if range.is_empty() {
                return Err("there is an empty range between commas".to_owned());
            }
            match range.split_once('-') {
                Some((begin, end)) => Ok((bound(begin, range)?, bound(end, range)?)),
                None => {
                    let port = bound(range, range)?;
                    Ok((port, port))
                }
            }
        })
        .collect()
}

fn bound(text: &str, range: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!(
            "range '{range}' is not of the form begin-end or a single number"
        ));
    }
    text.parse::<u64>()
        .map_err(|_| format!("'{text}' in range '{range}' is not a non-negative integer"))
}

/// `a, b` (inside the braces); empty means an empty set.
fn parse_items(inner: &str) -> Result<Vec<&str>, String> {
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split(',')
        .map(str::trim)
        .map(|item| {
            if item.is_empty() {
                Err("there is an empty set item between commas".to_owned())
            } else {
                Ok(item)
            }
        })
        .collect()
}
