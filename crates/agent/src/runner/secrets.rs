//! A task's secrets, resolved before its containers are created, as the ECS agent does:
//!
//! - `secrets: [{"name": ENV, "valueFrom": ARN}]` in a container definition: the secret's
//!   value becomes the environment variable ENV. `valueFrom` is a Secrets Manager secret ARN,
//!   optionally followed by `:json-key:version-stage:version-id` (each part may be empty),
//!   where a JSON key picks one field of a JSON secret, or an SSM parameter (below);
//! - `repositoryCredentials: {"credentialsParameter": ARN}`: a secret holding
//!   `{"username": ..., "password": ...}`, the login for pulling that container's image.
//!
//! `valueFrom` may also name an SSM parameter (its name, or `arn:aws:ssm:...:parameter/NAME`),
//! read decrypted. Values are read from the control plane's Secrets Manager and SSM APIs
//! through a [`SecretSource`] (the agent's own signed client).

use berth_api::shapes::ContainerDefinition;
use futures_util::future::BoxFuture;
use serde_json::Value;

/// Where the runner reads secret values (the control plane's `GetSecretValue`).
pub trait SecretSource: Send + Sync + std::fmt::Debug {
    /// The `SecretString` of `secret_id` at a version stage or id (AWSCURRENT when neither).
    fn secret_string<'a>(
        &'a self,
        secret_id: &'a str,
        version_stage: Option<&'a str>,
        version_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String, String>>;

    /// The (decrypted) value of the SSM parameter `name` (a name or an ARN).
    fn parameter<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<String, String>>;
}

/// The prefix of the reason a task fails with when a secret cannot be read (ECS's).
const FAILURE: &str = "ResourceInitializationError: unable to pull secrets or registry auth";

/// A parsed `valueFrom`.
#[derive(Debug, PartialEq)]
struct SecretRef {
    secret_id: String,
    json_key: Option<String>,
    version_stage: Option<String>,
    version_id: Option<String>,
}

fn parse_value_from(value_from: &str) -> Result<SecretRef, String> {
    let (head, rest) = value_from
        .split_once(":secret:")
        .filter(|(head, _)| head.starts_with("arn:aws:secretsmanager:"))
        .ok_or_else(|| format!("{value_from:?} is not a Secrets Manager secret ARN"))?;
    let mut parts = rest.split(':');
    let name = parts.next().unwrap_or_default();
    if name.is_empty() {
        return Err(format!("{value_from:?} names no secret"));
    }
    let mut field = || parts.next().filter(|p| !p.is_empty()).map(str::to_string);
    let (json_key, version_stage, version_id) = (field(), field(), field());
    Ok(SecretRef {
        secret_id: format!("{head}:secret:{name}"),
        json_key,
        version_stage,
        version_id,
    })
}

/// Whether `value_from` names an SSM parameter (a name, or an `arn:aws:ssm:` ARN).
fn is_parameter(value_from: &str) -> bool {
    value_from.starts_with("arn:aws:ssm:") || !value_from.starts_with("arn:")
}

/// The value `value_from` points at.
async fn resolve(source: &dyn SecretSource, value_from: &str) -> Result<String, String> {
    if is_parameter(value_from) {
        return source.parameter(value_from).await;
    }
    let r = parse_value_from(value_from)?;
    let value = source
        .secret_string(
            &r.secret_id,
            r.version_stage.as_deref(),
            r.version_id.as_deref(),
        )
        .await?;
    let Some(key) = r.json_key else {
        return Ok(value);
    };
    let doc: Value = serde_json::from_str(&value).map_err(|_| {
        format!(
            "secret {} is not JSON, so it has no key {key:?}",
            r.secret_id
        )
    })?;
    match doc.get(&key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Ok(other.to_string()),
        None => Err(format!("secret {} has no key {key:?}", r.secret_id)),
    }
}

fn source_or_err(source: Option<&dyn SecretSource>) -> Result<&dyn SecretSource, String> {
    source.ok_or_else(|| format!("{FAILURE}: this runner has no secret source"))
}

/// The environment variables a container definition's `secrets` give, or the task's failure.
pub(crate) async fn environment(
    source: Option<&dyn SecretSource>,
    def: &ContainerDefinition,
) -> Result<Vec<(String, String)>, String> {
    let Some(list) = def.extra.get("secrets").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let container = def.name.as_deref().unwrap_or_default();
    let mut env = Vec::new();
    for s in list {
        let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
        let value_from = s
            .get("valueFrom")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if name.is_empty() || value_from.is_empty() {
            return Err(format!(
                "{FAILURE}: container {container}: each secret needs a name and a valueFrom"
            ));
        }
        let value = resolve(source_or_err(source)?, value_from)
            .await
            .map_err(|e| format!("{FAILURE}: container {container}: secret {name}: {e}"))?;
        env.push((name.to_string(), value));
    }
    Ok(env)
}

/// The login (username, password) a container definition's `repositoryCredentials` give.
pub(crate) async fn registry_login(
    source: Option<&dyn SecretSource>,
    def: &ContainerDefinition,
) -> Result<Option<(String, String)>, String> {
    let Some(param) = def
        .extra
        .get("repositoryCredentials")
        .and_then(|r| r.get("credentialsParameter"))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    let container = def.name.as_deref().unwrap_or_default();
    let err = |e: String| format!("{FAILURE}: container {container}: repositoryCredentials: {e}");
    let value = resolve(source_or_err(source)?, param).await.map_err(err)?;
    let doc: Value = serde_json::from_str(&value).map_err(|_| {
        err(format!(
            "secret {param} is not JSON with username and password"
        ))
    })?;
    let field = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
    match (field("username"), field("password")) {
        (Some(u), Some(p)) => Ok(Some((u, p))),
        _ => Err(err(format!(
            "secret {param} must hold {{\"username\": ..., \"password\": ...}}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbC123";

    #[test]
    fn value_from_forms() {
        assert_eq!(
            parse_value_from(ARN).unwrap(),
            SecretRef {
                secret_id: ARN.into(),
                json_key: None,
                version_stage: None,
                version_id: None
            }
        );
        let r = parse_value_from(&format!("{ARN}:password:AWSPREVIOUS:")).unwrap();
        assert_eq!(r.secret_id, ARN);
        assert_eq!(r.json_key.as_deref(), Some("password"));
        assert_eq!(r.version_stage.as_deref(), Some("AWSPREVIOUS"));
        assert_eq!(r.version_id, None);
        let r = parse_value_from(&format!("{ARN}::::")).unwrap();
        assert_eq!(r.json_key, None);
        for bad in [
            "arn:aws:s3:::bucket",
            "arn:aws:secretsmanager:us-east-1:1:secret:",
        ] {
            assert!(parse_value_from(bad).is_err(), "{bad}");
        }
        for param in [
            "my-param",
            "/prod/db",
            "arn:aws:ssm:us-east-1:1:parameter/x",
        ] {
            assert!(is_parameter(param), "{param}");
        }
        assert!(!is_parameter(ARN));
    }
}
