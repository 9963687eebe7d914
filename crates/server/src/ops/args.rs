//! Arguments of the other services' JSON calls (Secrets Manager, SSM), read from the body as
//! a JSON object with the errors those services give.

use berth_api::EcsError;
use serde_json::{json, Value};

/// The request body as a JSON object (an empty body is `{}`).
pub fn object_body(body: &[u8]) -> Result<Value, EcsError> {
    let req: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| {
            EcsError::Serialization(format!("the request body is not valid JSON: {e}"))
        })?
    };
    if req.is_object() {
        Ok(req)
    } else {
        Err(EcsError::Serialization(
            "the request body must be a JSON object".into(),
        ))
    }
}

/// An optional string field.
pub fn str_field<'a>(req: &'a Value, name: &str) -> Result<Option<&'a str>, EcsError> {
    match req.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(EcsError::Serialization(format!("{name} must be a string"))),
    }
}

/// A required, non-empty string field.
pub fn required<'a>(req: &'a Value, name: &str) -> Result<&'a str, EcsError> {
    str_field(req, name)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| EcsError::invalid(format!("missing required parameter `{name}`")))
}
