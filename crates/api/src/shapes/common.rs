//! Shapes shared by several operations: tags, attributes, failures, resources, settings.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tag {
    pub key: Option<String>,
    pub value: Option<String>,
}

#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct KeyValuePair {
    pub name: Option<String>,
    pub value: Option<String>,
}

/// One item a batch call could not handle (`reason` `MISSING`, `RESOURCE:MEMORY`, ...).
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub arn: Option<String>,
    pub reason: String,
    pub detail: Option<String>,
}

impl Failure {
    pub fn new(arn: Option<String>, reason: impl Into<String>) -> Self {
        Failure {
            arn,
            reason: reason.into(),
            detail: None,
        }
    }
    pub fn missing(arn: String) -> Self {
        Failure::new(Some(arn), "MISSING")
    }
}

/// A container instance attribute (`PutAttributes` and friends).
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
}

impl Attribute {
    pub fn new(name: impl Into<String>, value: Option<&str>) -> Self {
        Attribute {
            name: name.into(),
            value: value.map(str::to_owned),
            target_type: None,
            target_id: None,
        }
    }
}

/// ECS's `Resource`: one resource of a container instance (`CPU`, `MEMORY`, `PORTS`, ...).
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAmount {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub double_value: Option<f64>,
    pub long_value: Option<i64>,
    pub integer_value: Option<i64>,
    pub string_set_value: Option<Vec<String>>,
}

impl ResourceAmount {
    pub fn integer(name: &str, value: i64) -> Self {
        ResourceAmount {
            name: Some(name.into()),
            kind: Some("INTEGER".into()),
            double_value: Some(0.0),
            long_value: Some(0),
            integer_value: Some(value),
            string_set_value: None,
        }
    }
    pub fn string_set(name: &str, values: Vec<String>) -> Self {
        ResourceAmount {
            name: Some(name.into()),
            kind: Some("STRINGSET".into()),
            double_value: Some(0.0),
            long_value: Some(0),
            integer_value: Some(0),
            string_set_value: Some(values),
        }
    }
    /// The integer amount, whichever numeric field carries it.
    pub fn amount(&self) -> i64 {
        match (self.integer_value, self.long_value, self.double_value) {
            (Some(i), _, _) if i != 0 => i,
            (_, Some(l), _) if l != 0 => l,
            (_, _, Some(d)) => d as i64,
            (i, l, _) => i.or(l).unwrap_or(0),
        }
    }
}

/// An account setting.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Setting {
    pub name: String,
    pub value: String,
    pub principal_arn: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// Responses of operations that return nothing.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Empty {}
