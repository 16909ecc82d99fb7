//! What every `POST` API's call parser shares: the JSON envelope `{"type": ..., "<type in
//! lower case>": {...}}` and Mesos's error wording, which names the API's call message
//! (`agent::Call`, `scheduler::Call`, ...).

use serde_json::{Map, Value};

use crate::ApiError;

/// The call message of one API, as Mesos names it in errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallKind(pub &'static str);

impl CallKind {
    pub fn invalid(self, reason: impl std::fmt::Display) -> ApiError {
        ApiError::bad_request(format!("Failed to validate {}: {reason}", self.0))
    }

    pub fn unconvertible(self, reason: impl std::fmt::Display) -> ApiError {
        ApiError::bad_request(format!(
            "Failed to convert JSON into Call protobuf: {reason}"
        ))
    }

    /// Parses the body into its JSON object and the call's `type`.
    pub fn envelope(self, body: &[u8]) -> Result<(Map<String, Value>, String), ApiError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Failed to parse body into JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(self.unconvertible("expecting a JSON object"));
        };
        let kind = match obj.get("type") {
            None | Some(Value::Null) => {
                return Err(self.invalid("Expecting 'type' to be present"));
            }
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(self.unconvertible(format!(
                    "Not expecting a JSON {} for field 'type'",
                    json_kind(other)
                )));
            }
        };
        Ok((obj, kind))
    }

    /// The call's payload, which must be there.
    pub fn required<'a>(
        self,
        payload: Option<&'a Value>,
        field: &str,
    ) -> Result<&'a Value, ApiError> {
        match payload {
            None | Some(Value::Null) => {
                Err(self.invalid(format!("Expecting '{field}' to be present")))
            }
            Some(v) => Ok(v),
        }
    }

    /// `v` as a `T`; serde's message is told where in the call it applies.
    pub fn typed<T: serde::de::DeserializeOwned>(
        self,
        v: &Value,
        field: &str,
    ) -> Result<T, ApiError> {
        T::deserialize(v).map_err(|e| self.unconvertible(format!("in '{field}': {e}")))
    }

    /// An unknown call type: Mesos drops unknown enum values while converting, so it
    /// reports the type as missing; the known types are listed to help.
    pub fn unknown(self, kind: &str, known: &[&str]) -> ApiError {
        self.invalid(format!(
            "Expecting 'type' to be present: unknown call type '{}' (known: {})",
            kind.escape_default(),
            known.join(", ")
        ))
    }
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
