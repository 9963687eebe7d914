//! Registry logins given to the agent as the ECS container agent takes them:
//! `ECS_ENGINE_AUTH_TYPE` and `ECS_ENGINE_AUTH_DATA`. Two formats, as in the ECS agent:
//!
//! - `docker`: `{"REGISTRY": {"username": "...", "password": "...", "email": "..."}}`;
//! - `dockercfg`: `{"REGISTRY": {"auth": "<base64 of user:password>", "email": "..."}}` (the
//!   old `~/.dockercfg` layout).
//!
//! `REGISTRY` is a host (`registry.example.com:5000`) or a URL (`https://index.docker.io/v1/`);
//! Docker Hub's names all mean Docker Hub. A task image whose registry has an entry here is
//! pulled with it; other images use the logins of Docker's config file (see [`super::images`]).

use std::fmt;
use std::str::FromStr;

use berth_distribution::credentials::{decode_auth_field, Credentials};
use berth_distribution::endpoint::{auth_key, normalize_server};

/// The format of `ECS_ENGINE_AUTH_DATA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineAuthType {
    Docker,
    Dockercfg,
}

impl FromStr for EngineAuthType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "docker" => Ok(Self::Docker),
            "dockercfg" => Ok(Self::Dockercfg),
            other => Err(format!(
                "invalid engine auth type {other:?}: expected docker or dockercfg"
            )),
        }
    }
}

/// Parsed logins, one per registry. `Debug` shows the registries and user names only.
#[derive(Clone, Default)]
pub struct EngineAuth {
    logins: Vec<(String, Credentials)>,
}

impl fmt::Debug for EngineAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.logins.iter().map(|(r, c)| (r, &c.username)))
            .finish()
    }
}

impl EngineAuth {
    /// Parses `data` written in format `kind`; the error names what is wrong.
    pub fn parse(kind: EngineAuthType, data: &str) -> Result<Self, String> {
        let what = match kind {
            EngineAuthType::Docker => "engine auth data (type docker)",
            EngineAuthType::Dockercfg => "engine auth data (type dockercfg)",
        };
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(data)
            .map_err(|e| format!("{what} is not a JSON object of registries: {e}"))?;
        let mut logins = Vec::with_capacity(map.len());
        for (registry, entry) in &map {
            let field = |name: &str| -> Result<String, String> {
                match entry.get(name) {
                    None | Some(serde_json::Value::Null) => Ok(String::new()),
                    Some(serde_json::Value::String(s)) => Ok(s.clone()),
                    Some(_) => Err(format!("{what}: {registry}.{name} must be a string")),
                }
            };
            if !entry.is_object() {
                return Err(format!("{what}: {registry} must be an object"));
            }
            let (username, password) = match kind {
                EngineAuthType::Docker => (field("username")?, field("password")?),
                EngineAuthType::Dockercfg => decode_auth_field(&field("auth")?)
                    .ok_or_else(|| format!("{what}: {registry}.auth is not base64"))?,
            };
            if username.is_empty() {
                return Err(format!("{what}: {registry} has no user name"));
            }
            if password.is_empty() {
                return Err(format!("{what}: {registry} has no password"));
            }
            let server = normalize_server(registry);
            logins.push((
                server.clone(),
                Credentials {
                    username,
                    password,
                    serveraddress: auth_key(&server),
                    ..Credentials::default()
                },
            ));
        }
        Ok(EngineAuth { logins })
    }

    /// The `X-Registry-Auth` value logging in to `image`'s registry as `username` (a task's
    /// `repositoryCredentials`); None if `image` is not a valid reference.
    pub fn header_for_login(image: &str, username: &str, password: &str) -> Option<String> {
        let domain = berth_image::reference::Reference::parse(image).ok()?.domain;
        let server = normalize_server(&domain);
        Some(
            Credentials {
                username: username.to_string(),
                password: password.to_string(),
                serveraddress: auth_key(&server),
                ..Credentials::default()
            }
            .to_header(),
        )
    }

    /// The `X-Registry-Auth` value for pulling `image`, when a login for its registry is here.
    pub fn header_for(&self, image: &str) -> Option<String> {
        let domain = berth_image::reference::Reference::parse(image).ok()?.domain;
        let want = normalize_server(&domain);
        self.logins
            .iter()
            .find(|(server, _)| *server == want)
            .map(|(_, c)| c.to_header())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    fn decoded(header: &str) -> Credentials {
        Credentials::from_header(header).unwrap()
    }

    #[test]
    fn both_formats_parse_and_match_the_image_registry() {
        let docker = EngineAuth::parse(
            EngineAuthType::Docker,
            r#"{"https://index.docker.io/v1/": {"username": "hub", "password": "p1", "email": "a@b"},
                "registry.example.com:5000": {"username": "me", "password": "p2"}}"#,
        )
        .unwrap();
        let c = decoded(&docker.header_for("busybox:latest").unwrap());
        assert_eq!((c.username.as_str(), c.password.as_str()), ("hub", "p1"));
        let c = decoded(
            &docker
                .header_for("registry.example.com:5000/app/web:1")
                .unwrap(),
        );
        assert_eq!((c.username.as_str(), c.password.as_str()), ("me", "p2"));
        assert_eq!(docker.header_for("quay.io/x/y:1"), None);
        assert!(
            !format!("{docker:?}").contains("p2"),
            "Debug hides passwords"
        );

        let auth = STANDARD.encode("alice:s3:cret");
        let cfg = EngineAuth::parse(
            EngineAuthType::Dockercfg,
            &format!(r#"{{"127.0.0.1:5000": {{"auth": "{auth}", "email": ""}}}}"#),
        )
        .unwrap();
        let c = decoded(&cfg.header_for("127.0.0.1:5000/a/b:2").unwrap());
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "s3:cret")
        );
    }

    #[test]
    fn malformed_data_is_named() {
        let err = |kind, data: &str| EngineAuth::parse(kind, data).unwrap_err();
        assert!(err(EngineAuthType::Docker, "not json").contains("not a JSON object"));
        assert!(err(EngineAuthType::Docker, r#"{"r": 3}"#).contains("r must be an object"));
        assert!(err(EngineAuthType::Docker, r#"{"r": {"password": "x"}}"#).contains("no user name"));
        assert!(err(EngineAuthType::Dockercfg, r#"{"r": {"auth": "%%%"}}"#)
            .contains("r.auth is not base64"));
        let no_colon = STANDARD.encode("justuser");
        assert!(err(
            EngineAuthType::Dockercfg,
            &format!(r#"{{"r": {{"auth": "{no_colon}"}}}}"#)
        )
        .contains("r has no password"));
        assert!("basic"
            .parse::<EngineAuthType>()
            .unwrap_err()
            .contains("docker or dockercfg"));
    }
}
