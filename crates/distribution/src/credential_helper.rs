//! Docker's credential helpers: a login kept by an external program instead of in the config
//! file. `credHelpers.<registry>` names the helper of one registry, else `credsStore` the one
//! of every registry; the helper is the program `docker-credential-<name>` on `PATH`, spoken
//! to as Docker does:
//!
//! - `get`: the server URL on stdin; `{"ServerURL","Username","Secret"}` on stdout (a
//!   `Username` of `<token>` makes `Secret` an identity token); a non-zero exit whose output
//!   says "credentials not found" means no login;
//! - `store`: that JSON on stdin;
//! - `erase`: the server URL on stdin.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::credentials::Credentials;
use crate::endpoint::normalize_server;
use crate::DistributionError;

/// `Username` a helper reports for an identity token.
const TOKEN_USER: &str = "<token>";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperCredentials {
    #[serde(rename = "ServerURL", default)]
    server_url: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    secret: String,
}

/// The helper the config file names for `server` (`credHelpers` first, then `credsStore`).
pub(crate) fn helper_for(
    config: &serde_json::Map<String, serde_json::Value>,
    server: &str,
) -> Option<String> {
    let want = normalize_server(server);
    let per_registry = config
        .get("credHelpers")
        .and_then(|h| h.as_object())
        .and_then(|h| {
            h.iter()
                .find(|(k, _)| normalize_server(k) == want)
                .and_then(|(_, v)| v.as_str())
        });
    per_registry
        .or_else(|| config.get("credsStore").and_then(|s| s.as_str()))
        .filter(|name| !name.is_empty())
        .map(str::to_string)
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin; its exit success and
/// output (stdout, then stderr).
fn run(helper: &str, action: &str, input: &[u8]) -> Result<(bool, String), DistributionError> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            DistributionError::Invalid(format!(
                "the credential helper {program} (named by credsStore/credHelpers in {}) cannot be run: {e}",
                crate::credentials::config_path().display()
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input reports through its status.
        let _ = stdin.write_all(input);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| DistributionError::io(format!("running {program} {action}"), e))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text.trim().to_string()))
}

/// The login `helper` holds for `server_url`, if any.
pub(crate) fn get(
    helper: &str,
    server_url: &str,
) -> Result<Option<Credentials>, DistributionError> {
    let (ok, text) = run(helper, "get", server_url.as_bytes())?;
    if !ok {
        if text.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(DistributionError::Invalid(format!(
            "docker-credential-{helper} get {server_url} failed: {text}"
        )));
    }
    let found: HelperCredentials = serde_json::from_str(&text).map_err(|e| {
        DistributionError::Invalid(format!(
            "docker-credential-{helper} get {server_url} answered something that is not its JSON: {e}"
        ))
    })?;
    if found.username.is_empty() && found.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if found.username == TOKEN_USER {
        Credentials {
            identitytoken: found.secret,
            serveraddress: server_url.to_string(),
            ..Default::default()
        }
    } else {
        Credentials {
            username: found.username,
            password: found.secret,
            serveraddress: server_url.to_string(),
            ..Default::default()
        }
    }))
}

/// Hands a login to `helper`.
pub(crate) fn store(
    helper: &str,
    server_url: &str,
    user: &str,
    secret: &str,
) -> Result<(), DistributionError> {
    let body = serde_json::to_vec(&HelperCredentials {
        server_url: server_url.to_string(),
        username: user.to_string(),
        secret: secret.to_string(),
    })
    .unwrap_or_default();
    let (ok, text) = run(helper, "store", &body)?;
    if ok {
        Ok(())
    } else {
        Err(DistributionError::Invalid(format!(
            "docker-credential-{helper} store {server_url} failed: {text}"
        )))
    }
}

/// Asks `helper` to forget `server_url`; true when it had a login.
pub(crate) fn erase(helper: &str, server_url: &str) -> Result<bool, DistributionError> {
    let (ok, text) = run(helper, "erase", server_url.as_bytes())?;
    if ok {
        return Ok(true);
    }
    if text.to_ascii_lowercase().contains("credentials not found") {
        return Ok(false);
    }
    Err(DistributionError::Invalid(format!(
        "docker-credential-{helper} erase {server_url} failed: {text}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_registry_helpers_win_over_the_store() {
        let cfg: serde_json::Value = serde_json::json!({
            "credsStore": "desktop",
            "credHelpers": {"gcr.io": "gcloud", "https://index.docker.io/v1/": "hub"}
        });
        let m = cfg.as_object().unwrap();
        assert_eq!(helper_for(m, "gcr.io").as_deref(), Some("gcloud"));
        assert_eq!(helper_for(m, "docker.io").as_deref(), Some("hub"));
        assert_eq!(helper_for(m, "localhost:5000").as_deref(), Some("desktop"));
        let none = serde_json::json!({"credsStore": ""});
        assert_eq!(helper_for(none.as_object().unwrap(), "gcr.io"), None);
    }
}
