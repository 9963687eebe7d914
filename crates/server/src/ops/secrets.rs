//! A Secrets Manager API (`X-Amz-Target: secretsmanager.<Op>`) on the same endpoint: the
//! secret store ECS task definitions point at (`secrets[].valueFrom`,
//! `repositoryCredentials.credentialsParameter`), usable with `aws secretsmanager` and boto3.
//!
//! Operations: CreateSecret, GetSecretValue, PutSecretValue, UpdateSecret, DescribeSecret,
//! ListSecrets, DeleteSecret (a recovery window or `ForceDeleteWithoutRecovery`),
//! RestoreSecret. A secret keeps its `AWSCURRENT` version and the one before
//! (`AWSPREVIOUS`). Values are stored in the control plane's store as they are (no KMS).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use berth_api::EcsError;

use super::args::{object_body, required, str_field};
use crate::core::{contention, Batch, Core, Ctx, CAS_ATTEMPTS};
use crate::{ids, keys};

/// The `X-Amz-Target` prefix of Secrets Manager operations.
pub const TARGET_PREFIX: &str = "secretsmanager.";

const CURRENT: &str = "AWSCURRENT";
const PREVIOUS: &str = "AWSPREVIOUS";
/// The most bytes a secret value may have (as AWS).
const MAX_VALUE: usize = 65_536;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SecretTag {
    pub key: String,
    pub value: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Version {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    string: Option<String>,
    /// Base64, as the API carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    binary: Option<String>,
    stages: Vec<String>,
    created: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct SecretRecord {
    arn: String,
    name: String,
    description: Option<String>,
    kms_key_id: Option<String>,
    created: f64,
    last_changed: f64,
    /// When a scheduled deletion takes effect (None: not marked for deletion).
    deletion_date: Option<f64>,
    tags: Vec<SecretTag>,
    versions: Vec<Version>,
}

impl SecretRecord {
    #[cfg(test)]
    fn current(&self) -> Option<&Version> {
        self.versions
            .iter()
            .find(|v| v.stages.iter().any(|s| s == CURRENT))
    }

    /// Adds a value as the new `AWSCURRENT` (the old current becomes `AWSPREVIOUS`; older
    /// versions are dropped). Returns the version id.
    fn add_version(&mut self, id: String, value: Value_, now: f64) -> Result<String, EcsError> {
        if let Some(v) = self.versions.iter().find(|v| v.id == id) {
            // A retried request with the same token: the same value is fine, another is not.
            return if v.string == value.string && v.binary == value.binary {
                Ok(id)
            } else {
                Err(EcsError::ResourceExists(format!(
                    "A resource with the ID you requested already exists: version {id} has another value"
                )))
            };
        }
        self.versions
            .retain(|v| v.stages.iter().any(|s| s == CURRENT));
        for v in &mut self.versions {
            v.stages = vec![PREVIOUS.to_string()];
        }
        self.versions.push(Version {
            id: id.clone(),
            string: value.string,
            binary: value.binary,
            stages: vec![CURRENT.to_string()],
            created: now,
        });
        self.last_changed = now;
        Ok(id)
    }

    fn version_stages(&self) -> Value {
        let mut map = serde_json::Map::new();
        for v in &self.versions {
            map.insert(v.id.clone(), json!(v.stages));
        }
        Value::Object(map)
    }

    fn describe(&self) -> Value {
        let mut d = json!({
            "ARN": self.arn,
            "Name": self.name,
            "CreatedDate": self.created,
            "LastChangedDate": self.last_changed,
            "Tags": self.tags,
            "VersionIdsToStages": self.version_stages(),
        });
        if let Some(desc) = &self.description {
            d["Description"] = json!(desc);
        }
        if let Some(k) = &self.kms_key_id {
            d["KmsKeyId"] = json!(k);
        }
        if let Some(at) = self.deletion_date {
            d["DeletedDate"] = json!(at);
        }
        d
    }
}

/// A secret value as a request carries it.
struct Value_ {
    string: Option<String>,
    binary: Option<String>,
}

fn check_name(name: &str) -> Result<(), EcsError> {
    let ok = !name.is_empty()
        && name.len() <= 512
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(EcsError::invalid(format!(
            "Invalid name {name:?}: a secret name is 1-512 of the characters A-Z a-z 0-9 / _ + = . @ -"
        )))
    }
}

/// The value fields of a request (`SecretString` or `SecretBinary`, not both).
fn value_of(req: &Value, required_one: bool) -> Result<Option<Value_>, EcsError> {
    let string = str_field(req, "SecretString")?.map(str::to_string);
    let binary = str_field(req, "SecretBinary")?.map(str::to_string);
    if string.is_some() && binary.is_some() {
        return Err(EcsError::invalid(
            "You can't specify both a binary secret value and a string secret value in the same secret.",
        ));
    }
    if let Some(b) = &binary {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|_| EcsError::Serialization("SecretBinary must be base64".into()))?;
    }
    let len = string.as_ref().or(binary.as_ref()).map_or(0, String::len);
    if len > MAX_VALUE {
        return Err(EcsError::invalid(format!(
            "The secret value is {len} bytes; the limit is {MAX_VALUE}"
        )));
    }
    match (string, binary) {
        (None, None) if required_one => Err(EcsError::invalid(
            "You must provide either SecretString or SecretBinary.",
        )),
        (None, None) => Ok(None),
        (string, binary) => Ok(Some(Value_ { string, binary })),
    }
}

fn token_of(req: &Value) -> Result<String, EcsError> {
    match str_field(req, "ClientRequestToken")? {
        Some(t) if (32..=64).contains(&t.len()) => Ok(t.to_string()),
        Some(t) => Err(EcsError::invalid(format!(
            "ClientRequestToken must be 32 to 64 characters, got {}",
            t.len()
        ))),
        None => Ok(ids::uuid()),
    }
}

fn not_found() -> EcsError {
    EcsError::ResourceNotFound("Secrets Manager can't find the specified secret.".into())
}

fn marked_for_deletion() -> EcsError {
    EcsError::InvalidRequest(
        "You can't perform this operation on the secret because it was marked for deletion.".into(),
    )
}

/// The store key of a `SecretId` (a name, a full ARN or an ARN without its random suffix), and
/// the full ARN it must match if it was one.
fn secret_key(id: &str) -> Result<(String, Option<String>), EcsError> {
    if !id.starts_with("arn:") {
        check_name(id)?;
        return Ok((keys::secret(id), None));
    }
    let rest = id
        .split_once(":secret:")
        .map(|(_, rest)| rest)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| EcsError::invalid(format!("Invalid secret ARN {id:?}")))?;
    Ok((keys::secret(rest), Some(id.to_string())))
}

fn words(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let hex = ids::hex_id();
    hex.as_bytes()
        .chunks(2)
        .take(n)
        .map(|c| {
            let b = u8::from_str_radix(std::str::from_utf8(c).unwrap_or("0"), 16).unwrap_or(0);
            char::from(ALPHABET[b as usize % ALPHABET.len()])
        })
        .collect()
}

impl Core {
    /// Reads the secret a `SecretId` names (`None` if there is none, or if its scheduled
    /// deletion has passed).
    async fn find_secret(&self, id: &str) -> Result<Option<(SecretRecord, i64, String)>, EcsError> {
        let (key, arn) = secret_key(id)?;
        let mut candidates = vec![key.clone()];
        if arn.is_some() {
            // A full ARN ends with "-" and 6 random characters after the name.
            if let Some((name_key, _)) = key.rsplit_once('-') {
                candidates.push(name_key.to_string());
            }
        }
        for key in candidates {
            let Some((r, rev)) = self.get::<SecretRecord>(&key).await? else {
                continue;
            };
            let arn_matches = arn
                .as_ref()
                .is_none_or(|a| *a == r.arn || r.arn.starts_with(&format!("{a}-")));
            if !arn_matches || r.deletion_date.is_some_and(|at| at <= crate::core::now()) {
                continue;
            }
            return Ok(Some((r, rev, key)));
        }
        Ok(None)
    }

    /// Reads, changes and writes one secret with compare-and-swap.
    async fn update_secret_record<T>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut SecretRecord) -> Result<T, EcsError>,
    ) -> Result<(SecretRecord, T), EcsError> {
        for _ in 0..CAS_ATTEMPTS {
            let (mut record, rev, key) = self.find_secret(id).await?.ok_or_else(not_found)?;
            let out = change(&mut record)?;
            let mut batch = Batch::new();
            batch.put(key, &record, Some(rev))?;
            if self.commit(batch).await? {
                return Ok((record, out));
            }
        }
        Err(contention())
    }

    /// One Secrets Manager call: `op` is the target without its prefix.
    pub async fn secrets_manager(
        &self,
        ctx: &Ctx,
        op: &str,
        body: &[u8],
    ) -> Result<Value, EcsError> {
        let req = object_body(body)?;
        match op {
            "CreateSecret" => self.create_secret(ctx, &req).await,
            "GetSecretValue" => self.get_secret_value(&req).await,
            "PutSecretValue" => self.put_secret_value(&req).await,
            "UpdateSecret" => self.update_secret(&req).await,
            "DescribeSecret" => {
                let id = required(&req, "SecretId")?;
                let (r, _, _) = self.find_secret(id).await?.ok_or_else(not_found)?;
                Ok(r.describe())
            }
            "ListSecrets" => self.list_secrets(&req).await,
            "DeleteSecret" => self.delete_secret(&req).await,
            "RestoreSecret" => {
                let id = required(&req, "SecretId")?;
                let (r, ()) = self
                    .update_secret_record(id, |r| {
                        r.deletion_date = None;
                        Ok(())
                    })
                    .await?;
                Ok(json!({"ARN": r.arn, "Name": r.name}))
            }
            other => Err(EcsError::UnknownOperation(format!(
                "unknown operation `{TARGET_PREFIX}{other}`: berth serves CreateSecret, GetSecretValue, PutSecretValue, UpdateSecret, DescribeSecret, ListSecrets, DeleteSecret and RestoreSecret"
            ))),
        }
    }

    async fn create_secret(&self, ctx: &Ctx, req: &Value) -> Result<Value, EcsError> {
        let name = required(req, "Name")?;
        check_name(name)?;
        let value = value_of(req, false)?;
        let token = token_of(req)?;
        let description = str_field(req, "Description")?.map(str::to_string);
        let tags: Vec<SecretTag> = match req.get("Tags") {
            None | Some(Value::Null) => Vec::new(),
            Some(t) => serde_json::from_value(t.clone()).map_err(|e| {
                EcsError::Serialization(format!("Tags must be a list of {{Key, Value}}: {e}"))
            })?,
        };
        let key = keys::secret(name);
        if let Some((existing, _)) = self.get::<SecretRecord>(&key).await? {
            if existing.deletion_date.is_some() {
                return Err(EcsError::InvalidRequest(
                    "You can't create this secret because a secret with this name is already scheduled for deletion.".into(),
                ));
            }
            return Err(EcsError::ResourceExists(format!(
                "The operation failed because the secret {name} already exists."
            )));
        }
        let now = crate::core::now();
        let mut record = SecretRecord {
            arn: format!(
                "arn:aws:secretsmanager:{}:{}:secret:{name}-{}",
                ctx.region,
                self.account,
                words(6)
            ),
            name: name.to_string(),
            description,
            kms_key_id: str_field(req, "KmsKeyId")?.map(str::to_string),
            created: now,
            last_changed: now,
            deletion_date: None,
            tags,
            versions: Vec::new(),
        };
        let version = value
            .map(|v| record.add_version(token, v, now))
            .transpose()?;
        let mut batch = Batch::new();
        batch.put(key, &record, Some(0))?;
        if !self.commit(batch).await? {
            return Err(EcsError::ResourceExists(format!(
                "The operation failed because the secret {name} already exists."
            )));
        }
        let mut out = json!({"ARN": record.arn, "Name": record.name});
        if let Some(v) = version {
            out["VersionId"] = json!(v);
        }
        Ok(out)
    }

    async fn get_secret_value(&self, req: &Value) -> Result<Value, EcsError> {
        let id = required(req, "SecretId")?;
        let (r, _, _) = self.find_secret(id).await?.ok_or_else(not_found)?;
        if r.deletion_date.is_some() {
            return Err(marked_for_deletion());
        }
        let version_id = str_field(req, "VersionId")?;
        let stage = str_field(req, "VersionStage")?;
        let v = match (version_id, stage) {
            (Some(id), _) => r
                .versions
                .iter()
                .find(|v| v.id == id)
                .filter(|v| stage.is_none_or(|s| v.stages.iter().any(|x| x == s))),
            (None, stage) => {
                let stage = stage.unwrap_or(CURRENT);
                r.versions
                    .iter()
                    .find(|v| v.stages.iter().any(|s| s == stage))
            }
        };
        let v = v.ok_or_else(|| {
            EcsError::ResourceNotFound(format!(
                "Secrets Manager can't find the specified secret value for {}",
                match version_id {
                    Some(id) => format!("VersionId: {id}"),
                    None => format!("staging label: {}", stage.unwrap_or(CURRENT)),
                }
            ))
        })?;
        let mut out = json!({
            "ARN": r.arn,
            "Name": r.name,
            "VersionId": v.id,
            "VersionStages": v.stages,
            "CreatedDate": v.created,
        });
        if let Some(s) = &v.string {
            out["SecretString"] = json!(s);
        }
        if let Some(b) = &v.binary {
            out["SecretBinary"] = json!(b);
        }
        Ok(out)
    }

    async fn put_secret_value(&self, req: &Value) -> Result<Value, EcsError> {
        let id = required(req, "SecretId")?;
        let token = token_of(req)?;
        let now = crate::core::now();
        let (r, version) = self
            .update_secret_record(id, |r| {
                if r.deletion_date.is_some() {
                    return Err(marked_for_deletion());
                }
                let value = value_of(req, true)?.expect("required");
                r.add_version(token.clone(), value, now)
            })
            .await?;
        Ok(json!({
            "ARN": r.arn,
            "Name": r.name,
            "VersionId": version,
            "VersionStages": [CURRENT],
        }))
    }

    async fn update_secret(&self, req: &Value) -> Result<Value, EcsError> {
        let id = required(req, "SecretId")?;
        let token = token_of(req)?;
        let description = str_field(req, "Description")?.map(str::to_string);
        let kms = str_field(req, "KmsKeyId")?.map(str::to_string);
        let now = crate::core::now();
        let (r, version) = self
            .update_secret_record(id, |r| {
                if r.deletion_date.is_some() {
                    return Err(marked_for_deletion());
                }
                if let Some(d) = &description {
                    r.description = Some(d.clone());
                    r.last_changed = now;
                }
                if let Some(k) = &kms {
                    r.kms_key_id = Some(k.clone());
                }
                value_of(req, false)?
                    .map(|v| r.add_version(token.clone(), v, now))
                    .transpose()
            })
            .await?;
        let mut out = json!({"ARN": r.arn, "Name": r.name});
        if let Some(v) = version {
            out["VersionId"] = json!(v);
        }
        Ok(out)
    }

    async fn list_secrets(&self, req: &Value) -> Result<Value, EcsError> {
        let limit = match req.get("MaxResults").and_then(Value::as_i64) {
            None => 100,
            Some(n @ 1..=100) => n as usize,
            Some(n) => {
                return Err(EcsError::invalid(format!(
                    "MaxResults must be between 1 and 100, got {n}"
                )))
            }
        };
        let include_deleted = req
            .get("IncludePlannedDeletion")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut filters: Vec<(String, Vec<String>)> = Vec::new();
        if let Some(list) = req.get("Filters").and_then(Value::as_array) {
            for f in list {
                let key = f.get("Key").and_then(Value::as_str).unwrap_or("");
                if !["name", "description", "tag-key", "tag-value", "all"].contains(&key) {
                    return Err(EcsError::invalid(format!(
                        "Invalid filter key {key:?}: berth filters on name, description, tag-key, tag-value and all"
                    )));
                }
                let values = f
                    .get("Values")
                    .and_then(Value::as_array)
                    .map(|v| {
                        v.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                filters.push((key.to_string(), values));
            }
        }
        let token = str_field(req, "NextToken")?;
        let now = crate::core::now();
        let (list, next) = self
            .scan(keys::SECRETS, token, limit, |kv| {
                let r: SecretRecord = crate::core::decode(kv)?;
                let gone = r.deletion_date.is_some_and(|at| at <= now);
                let shown = !gone && (include_deleted || r.deletion_date.is_none());
                Ok((shown && matches_filters(&r, &filters)).then(|| r.describe()))
            })
            .await?;
        let mut out = json!({"SecretList": list});
        if let Some(t) = next {
            out["NextToken"] = json!(t);
        }
        Ok(out)
    }

    async fn delete_secret(&self, req: &Value) -> Result<Value, EcsError> {
        let id = required(req, "SecretId")?;
        let force = req
            .get("ForceDeleteWithoutRecovery")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let window = req.get("RecoveryWindowInDays").and_then(Value::as_i64);
        if force && window.is_some() {
            return Err(EcsError::invalid(
                "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
            ));
        }
        let days = window.unwrap_or(30);
        if !(7..=30).contains(&days) {
            return Err(EcsError::invalid(format!(
                "RecoveryWindowInDays must be between 7 and 30, got {days}"
            )));
        }
        let now = crate::core::now();
        if force {
            for _ in 0..CAS_ATTEMPTS {
                let (r, rev, key) = self.find_secret(id).await?.ok_or_else(not_found)?;
                let mut batch = Batch::new();
                batch.expect(&key, rev);
                batch.delete(key);
                if self.commit(batch).await? {
                    return Ok(json!({"ARN": r.arn, "Name": r.name, "DeletionDate": now}));
                }
            }
            return Err(contention());
        }
        let at = now + (days * 86_400) as f64;
        let (r, ()) = self
            .update_secret_record(id, |r| {
                if r.deletion_date.is_some() {
                    return Err(marked_for_deletion());
                }
                r.deletion_date = Some(at);
                Ok(())
            })
            .await?;
        Ok(json!({"ARN": r.arn, "Name": r.name, "DeletionDate": at}))
    }
}

fn matches_filters(r: &SecretRecord, filters: &[(String, Vec<String>)]) -> bool {
    filters.iter().all(|(key, values)| {
        values.iter().any(|want| {
            let (negate, want) = match want.strip_prefix('!') {
                Some(w) => (true, w),
                None => (false, want.as_str()),
            };
            let desc = r.description.as_deref().unwrap_or("");
            let hit = match key.as_str() {
                "name" => r.name.starts_with(want),
                "description" => desc.starts_with(want),
                "tag-key" => r.tags.iter().any(|t| t.key.starts_with(want)),
                "tag-value" => r.tags.iter().any(|t| t.value.starts_with(want)),
                _ => {
                    r.name.starts_with(want)
                        || desc.starts_with(want)
                        || r.tags
                            .iter()
                            .any(|t| t.key.starts_with(want) || t.value.starts_with(want))
                }
            };
            hit != negate
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_ids_map_to_keys() {
        assert_eq!(
            secret_key("db/pass").unwrap(),
            ("secrets/db/pass".into(), None)
        );
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db/pass-AbC123";
        assert_eq!(
            secret_key(arn).unwrap(),
            ("secrets/db/pass-AbC123".into(), Some(arn.into()))
        );
        assert!(secret_key("bad name!").is_err());
        assert!(secret_key("arn:aws:secretsmanager:us-east-1:1:nope").is_err());
    }

    #[test]
    fn versions_rotate_current_to_previous() {
        let mut r = SecretRecord {
            arn: "a".into(),
            name: "n".into(),
            description: None,
            kms_key_id: None,
            created: 0.0,
            last_changed: 0.0,
            deletion_date: None,
            tags: vec![],
            versions: vec![],
        };
        let v = |s: &str| Value_ {
            string: Some(s.into()),
            binary: None,
        };
        r.add_version("1".into(), v("one"), 1.0).unwrap();
        r.add_version("2".into(), v("two"), 2.0).unwrap();
        r.add_version("3".into(), v("three"), 3.0).unwrap();
        assert_eq!(r.versions.len(), 2);
        assert_eq!(r.current().unwrap().string.as_deref(), Some("three"));
        assert_eq!(r.versions[0].stages, vec![PREVIOUS]);
        // The same token again: fine with the same value, an error with another.
        assert!(r.add_version("3".into(), v("three"), 4.0).is_ok());
        assert_eq!(
            r.add_version("3".into(), v("other"), 4.0)
                .unwrap_err()
                .code(),
            "ResourceExistsException"
        );
    }
}
