//! The agent's `--attributes` flag: `name:value` pairs separated by `;`, where a value is
//! a scalar (`2.5`), ranges (`[1-10,20-30]`), a set (`{a,b}`) or text (anything else),
//! as Mesos reads them. The result is Mesos's `Attribute` JSON.

use serde_json::{json, Value};

/// Parses `--attributes` into `Attribute` objects, in the order given.
pub fn parse_attributes(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((name, value)) = entry.split_once(':') else {
            return Err(format!(
                "attribute '{entry}' is not name:value (e.g. rack:r1;zone:a)"
            ));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() {
            return Err(format!("attribute '{entry}' has no name"));
        }
        out.push(attribute(name, value)?);
    }
    Ok(out)
}

fn attribute(name: &str, value: &str) -> Result<Value, String> {
    if let Some(inner) = value.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| format!("attribute '{name}': ranges must end with ']'"))?;
        let mut ranges = Vec::new();
        for r in inner.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let (b, e) = r.split_once('-').unwrap_or((r, r));
            let parse = |s: &str| {
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("attribute '{name}': '{r}' is not a range like 1-10"))
            };
            let (b, e) = (parse(b)?, parse(e)?);
            if b > e {
                return Err(format!(
                    "attribute '{name}': range {r} ends before it begins"
                ));
            }
            ranges.push(json!({"begin": b, "end": e}));
        }
        return Ok(json!({"name": name, "type": "RANGES", "ranges": {"range": ranges}}));
    }
    if let Some(inner) = value.strip_prefix('{') {
        let inner = inner
            .strip_suffix('}')
            .ok_or_else(|| format!("attribute '{name}': a set must end with '}}'"))?;
        let items: Vec<&str> = inner
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .collect();
        return Ok(json!({"name": name, "type": "SET", "set": {"item": items}}));
    }
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() => {
            Ok(json!({"name": name, "type": "SCALAR", "scalar": {"value": v}}))
        }
        _ => Ok(json!({"name": name, "type": "TEXT", "text": {"value": value}})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_kind_as_mesos_reads_it() {
        let a = parse_attributes("rack:r1; cores:8 ;ports:[1-10,20];zones:{a, b};").expect("valid");
        assert_eq!(
            a,
            vec![
                json!({"name": "rack", "type": "TEXT", "text": {"value": "r1"}}),
                json!({"name": "cores", "type": "SCALAR", "scalar": {"value": 8.0}}),
                json!({"name": "ports", "type": "RANGES", "ranges": {"range": [
                    {"begin": 1, "end": 10}, {"begin": 20, "end": 20}]}}),
                json!({"name": "zones", "type": "SET", "set": {"item": ["a", "b"]}}),
            ]
        );
        assert!(parse_attributes("").expect("empty").is_empty());
    }

    #[test]
    fn malformed_attributes_say_what_is_wrong() {
        assert!(parse_attributes("rack")
            .unwrap_err()
            .contains("not name:value"));
        assert!(parse_attributes(":x").unwrap_err().contains("no name"));
        assert!(parse_attributes("p:[5-1]")
            .unwrap_err()
            .contains("ends before"));
        assert!(parse_attributes("p:[a-b]")
            .unwrap_err()
            .contains("not a range"));
        assert!(parse_attributes("s:{a").unwrap_err().contains("must end"));
    }
}
