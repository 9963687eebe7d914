//! The key pair requests are signed with.

use std::fmt;
use std::path::Path;

use crate::EcsClientError;

/// An AWS-style access key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), if both are set.
    pub fn from_env() -> Option<Self> {
        let id = std::env::var("AWS_ACCESS_KEY_ID")
            .ok()
            .filter(|v| !v.is_empty())?;
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY")
            .ok()
            .filter(|v| !v.is_empty())?;
        Some(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: std::env::var("AWS_SESSION_TOKEN")
                .ok()
                .filter(|v| !v.is_empty()),
        })
    }

    /// The key pair of `profile` in an AWS shared-credentials file (the file `berth server`
    /// writes and prints).
    pub fn from_shared_file(path: &Path, profile: &str) -> Result<Self, EcsClientError> {
        let store = berth_auth::CredentialStore::load(path).map_err(|e| {
            EcsClientError::Config(format!(
                "cannot read the credentials file {}: {e}",
                path.display()
            ))
        })?;
        let c = store.profile(profile).ok_or_else(|| {
            EcsClientError::Config(format!(
                "the credentials file {} has no profile `{profile}`",
                path.display()
            ))
        })?;
        Ok(Credentials {
            access_key_id: c.access_key_id.clone(),
            secret_access_key: c.secret_access_key.clone(),
            session_token: None,
        })
    }
}
