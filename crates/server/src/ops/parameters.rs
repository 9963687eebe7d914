//! An SSM Parameter Store API (`X-Amz-Target: AmazonSSM.<Op>`) on the control plane's
//! endpoint: the other place ECS `secrets[].valueFrom` points at (a parameter name or
//! `arn:aws:ssm:...:parameter/NAME`), usable with `aws ssm` and boto3.
//!
//! Operations: PutParameter, GetParameter, GetParameters, GetParametersByPath,
//! DeleteParameter, DeleteParameters, DescribeParameters. Types String, StringList and
//! SecureString; a SecureString's value is returned only `WithDecryption` (without it, as
//! base64, never in clear). Each put makes a new version; only the latest is kept (a
//! `NAME:VERSION` selector of an older one is `ParameterVersionNotFound`). Values are stored
//! in the control plane's store as they are (no KMS).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use berth_api::EcsError;

use super::args::{object_body, required, str_field};
use crate::core::{contention, decode, Batch, Core, Ctx, CAS_ATTEMPTS};
use crate::keys;

/// The `X-Amz-Target` prefix of SSM operations.
pub const TARGET_PREFIX: &str = "AmazonSSM.";

const TYPES: &[&str] = &["String", "StringList", "SecureString"];
/// The most characters of a standard parameter's value (as AWS).
const MAX_VALUE: usize = 4096;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct ParameterRecord {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    value: String,
    version: i64,
    description: Option<String>,
    last_modified: f64,
    /// The region the parameter was first put in (for its ARN).
    region: String,
}

fn error(code: &'static str, message: impl Into<String>) -> EcsError {
    EcsError::Service {
        code,
        message: message.into(),
    }
}

fn validation(message: impl Into<String>) -> EcsError {
    error("ValidationException", message)
}

fn not_found(name: &str) -> EcsError {
    error("ParameterNotFound", format!("Parameter {name} not found."))
}

fn check_name(name: &str) -> Result<(), EcsError> {
    let ok = !name.is_empty()
        && name.len() <= 1011
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.-".contains(c))
        && !name.contains("//")
        && (!name.contains('/') || name.starts_with('/'))
        && !name
            .to_ascii_lowercase()
            .trim_start_matches('/')
            .starts_with("aws")
        && !name
            .to_ascii_lowercase()
            .trim_start_matches('/')
            .starts_with("ssm");
    if ok {
        Ok(())
    } else {
        Err(validation(format!(
            "Parameter name {name:?} is not valid: use letters, digits and . - _, a hierarchy starts with / (a/b is not allowed), and names may not start with aws or ssm"
        )))
    }
}

/// A `Name` as requests carry it: a name, its ARN, or either with a `:VERSION` selector.
fn parse_name(raw: &str) -> Result<(String, Option<i64>), EcsError> {
    let mut name = raw.to_string();
    if let Some(rest) = raw.strip_prefix("arn:") {
        let path = rest
            .split_once(":parameter/")
            .map(|(_, p)| p)
            .ok_or_else(|| validation(format!("{raw:?} is not a parameter ARN")))?;
        name = if path.contains('/') {
            format!("/{path}")
        } else {
            path.to_string()
        };
    }
    let mut version = None;
    if let Some((n, v)) = name.rsplit_once(':') {
        let v: i64 = v
            .parse()
            .map_err(|_| validation(format!("invalid version selector in {raw:?}")))?;
        version = Some(v);
        name = n.to_string();
    }
    check_name(&name)?;
    Ok((name, version))
}

impl ParameterRecord {
    fn arn(&self, account: &str) -> String {
        format!(
            "arn:aws:ssm:{}:{account}:parameter/{}",
            self.region,
            self.name.trim_start_matches('/')
        )
    }

    /// The `Parameter` shape of the Get calls.
    fn shown(&self, account: &str, decrypt: bool) -> Value {
        let value = if self.kind == "SecureString" && !decrypt {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(self.value.as_bytes())
        } else {
            self.value.clone()
        };
        json!({
            "Name": self.name,
            "Type": self.kind,
            "Value": value,
            "Version": self.version,
            "LastModifiedDate": self.last_modified,
            "ARN": self.arn(account),
            "DataType": "text",
        })
    }

    /// The `ParameterMetadata` shape of DescribeParameters.
    fn metadata(&self, account: &str) -> Value {
        let mut m = json!({
            "Name": self.name,
            "ARN": self.arn(account),
            "Type": self.kind,
            "Version": self.version,
            "LastModifiedDate": self.last_modified,
            "Tier": "Standard",
            "DataType": "text",
        });
        if let Some(d) = &self.description {
            m["Description"] = json!(d);
        }
        m
    }
}

fn decrypt_flag(req: &Value) -> bool {
    req.get("WithDecryption")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn max_results(req: &Value, most: i64) -> Result<usize, EcsError> {
    match req.get("MaxResults").and_then(Value::as_i64) {
        None => Ok(most as usize),
        Some(n) if (1..=most).contains(&n) => Ok(n as usize),
        Some(n) => Err(validation(format!(
            "MaxResults must be between 1 and {most}, got {n}"
        ))),
    }
}

fn names_of(req: &Value) -> Result<Vec<String>, EcsError> {
    let names: Vec<String> = req
        .get("Names")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() || names.len() > 10 {
        return Err(validation("Names must list 1 to 10 parameter names"));
    }
    Ok(names)
}

impl Core {
    /// One SSM call: `op` is the target without its prefix.
    pub async fn ssm(&self, ctx: &Ctx, op: &str, body: &[u8]) -> Result<Value, EcsError> {
        let req = object_body(body)?;
        match op {
            "PutParameter" => self.put_parameter(ctx, &req).await,
            "GetParameter" => {
                let raw = required(&req, "Name")?;
                let p = self.parameter_at(raw).await?;
                Ok(json!({"Parameter": p.shown(&self.account, decrypt_flag(&req))}))
            }
            "GetParameters" => {
                let (mut found, mut invalid) = (Vec::new(), Vec::new());
                for raw in names_of(&req)? {
                    match self.parameter_at(&raw).await {
                        Ok(p) => found.push(p.shown(&self.account, decrypt_flag(&req))),
                        Err(EcsError::Service { .. }) => invalid.push(raw),
                        Err(e) => return Err(e),
                    }
                }
                Ok(json!({"Parameters": found, "InvalidParameters": invalid}))
            }
            "GetParametersByPath" => self.parameters_by_path(&req).await,
            "DeleteParameter" => {
                let raw = required(&req, "Name")?;
                if !self.delete_parameter(raw).await? {
                    return Err(not_found(raw));
                }
                Ok(json!({}))
            }
            "DeleteParameters" => {
                let (mut deleted, mut invalid) = (Vec::new(), Vec::new());
                for raw in names_of(&req)? {
                    if self.delete_parameter(&raw).await? {
                        deleted.push(raw);
                    } else {
                        invalid.push(raw);
                    }
                }
                Ok(json!({"DeletedParameters": deleted, "InvalidParameters": invalid}))
            }
            "DescribeParameters" => {
                let limit = max_results(&req, 50)?;
                let token = str_field(&req, "NextToken")?;
                let (list, next) = self
                    .scan(keys::PARAMETERS, token, limit, |kv| {
                        let p: ParameterRecord = decode(kv)?;
                        Ok(Some(p.metadata(&self.account)))
                    })
                    .await?;
                let mut out = json!({"Parameters": list});
                if let Some(t) = next {
                    out["NextToken"] = json!(t);
                }
                Ok(out)
            }
            other => Err(EcsError::UnknownOperation(format!(
                "unknown operation `{TARGET_PREFIX}{other}`: berth serves PutParameter, GetParameter, GetParameters, GetParametersByPath, DeleteParameter, DeleteParameters and DescribeParameters"
            ))),
        }
    }

    /// The parameter a `Name` (with an optional version selector) names.
    async fn parameter_at(&self, raw: &str) -> Result<ParameterRecord, EcsError> {
        let (name, version) = parse_name(raw)?;
        let (p, _) = self
            .get::<ParameterRecord>(&keys::parameter(&name))
            .await?
            .ok_or_else(|| not_found(raw))?;
        if version.is_some_and(|v| v != p.version) {
            return Err(error(
                "ParameterVersionNotFound",
                format!("Systems Manager could not find version {} of {name}. Berth keeps the latest version only ({}).", version.unwrap_or_default(), p.version),
            ));
        }
        Ok(p)
    }

    async fn put_parameter(&self, ctx: &Ctx, req: &Value) -> Result<Value, EcsError> {
        let (name, version) = parse_name(required(req, "Name")?)?;
        if version.is_some() {
            return Err(validation("a parameter name to put cannot carry a version"));
        }
        let value = str_field(req, "Value")?
            .ok_or_else(|| validation("missing required parameter `Value`"))?;
        if value.is_empty() || value.chars().count() > MAX_VALUE {
            return Err(validation(format!(
                "Value must be 1 to {MAX_VALUE} characters"
            )));
        }
        let kind = str_field(req, "Type")?;
        if let Some(k) = kind {
            if !TYPES.contains(&k) {
                return Err(validation(format!(
                    "Type {k:?} is not valid: String, StringList or SecureString"
                )));
            }
        }
        let overwrite = req
            .get("Overwrite")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let key = keys::parameter(&name);
        for _ in 0..CAS_ATTEMPTS {
            let existing = self.get::<ParameterRecord>(&key).await?;
            let record = match &existing {
                Some(_) if !overwrite => {
                    return Err(error(
                        "ParameterAlreadyExists",
                        "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.",
                    ))
                }
                Some((old, _)) => ParameterRecord {
                    kind: kind.unwrap_or(&old.kind).to_string(),
                    value: value.to_string(),
                    version: old.version + 1,
                    description: str_field(req, "Description")?
                        .map(str::to_string)
                        .or_else(|| old.description.clone()),
                    last_modified: crate::core::now(),
                    ..old.clone()
                },
                None => ParameterRecord {
                    name: name.clone(),
                    kind: kind
                        .ok_or_else(|| validation("A parameter type is required when you create a parameter."))?
                        .to_string(),
                    value: value.to_string(),
                    version: 1,
                    description: str_field(req, "Description")?.map(str::to_string),
                    last_modified: crate::core::now(),
                    region: ctx.region.clone(),
                },
            };
            let mut batch = Batch::new();
            batch.put(
                key.clone(),
                &record,
                Some(existing.map_or(0, |(_, rev)| rev)),
            )?;
            if self.commit(batch).await? {
                return Ok(json!({"Version": record.version, "Tier": "Standard"}));
            }
        }
        Err(contention())
    }

    /// Deletes a parameter; false if there was none.
    async fn delete_parameter(&self, raw: &str) -> Result<bool, EcsError> {
        let (name, _) = parse_name(raw)?;
        let key = keys::parameter(&name);
        for _ in 0..CAS_ATTEMPTS {
            let Some((_, rev)) = self.get::<ParameterRecord>(&key).await? else {
                return Ok(false);
            };
            let mut batch = Batch::new();
            batch.expect(&key, rev);
            batch.delete(key.clone());
            if self.commit(batch).await? {
                return Ok(true);
            }
        }
        Err(contention())
    }

    async fn parameters_by_path(&self, req: &Value) -> Result<Value, EcsError> {
        let path = required(req, "Path")?;
        if !path.starts_with('/') {
            return Err(validation(format!("Path {path:?} must start with /")));
        }
        let recursive = req
            .get("Recursive")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let decrypt = decrypt_flag(req);
        let limit = max_results(req, 10)?;
        let dir = if path.ends_with('/') {
            path.to_string()
        } else {
            format!("{path}/")
        };
        let token = str_field(req, "NextToken")?;
        let (list, next) = self
            .scan(&keys::parameter(&dir), token, limit, |kv| {
                let p: ParameterRecord = decode(kv)?;
                let below = &p.name[dir.len()..];
                Ok((recursive || !below.contains('/')).then(|| p.shown(&self.account, decrypt)))
            })
            .await?;
        let mut out = json!({"Parameters": list});
        if let Some(t) = next {
            out["NextToken"] = json!(t);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_arns_and_selectors() {
        assert_eq!(parse_name("/prod/db").unwrap(), ("/prod/db".into(), None));
        assert_eq!(parse_name("plain:3").unwrap(), ("plain".into(), Some(3)));
        assert_eq!(
            parse_name("arn:aws:ssm:us-east-1:123456789012:parameter/prod/db").unwrap(),
            ("/prod/db".into(), None)
        );
        assert_eq!(
            parse_name("arn:aws:ssm:us-east-1:123456789012:parameter/plain").unwrap(),
            ("plain".into(), None)
        );
        for bad in ["a/b", "/a//b", "awsThing", "/ssm/x", "sp ace", "x:y", ""] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
    }
}
