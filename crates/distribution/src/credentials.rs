//! Registry credentials and where they travel:
//!
//! - the engine API's `X-Registry-Auth` header: base64url of the JSON
//!   `{"username","password","serveraddress","identitytoken"}` (padding optional, standard
//!   base64 accepted too, `{}` or empty = anonymous);
//! - Docker's CLI config file (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
//!   `auths.<server>.auth` = base64(`user:password`), written with mode 0600 and every other
//!   key of the file kept; or, when `credsStore`/`credHelpers` name one, a credential helper
//!   program keeps the secret ([`crate::credential_helper`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::credential_helper;
use crate::endpoint::{auth_key, normalize_server};
use crate::DistributionError;

/// A user name and password (or an identity token) for one registry.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub serveraddress: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identitytoken: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("serveraddress", &self.serveraddress)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// True when there is nothing to authenticate with.
    pub fn is_empty(&self) -> bool {
        self.username.is_empty() && self.password.is_empty() && self.identitytoken.is_empty()
    }

    /// `(user, secret)` for basic auth, if any.
    pub fn basic(&self) -> Option<(&str, &str)> {
        if !self.username.is_empty() || !self.password.is_empty() {
            Some((&self.username, &self.password))
        } else if !self.identitytoken.is_empty() {
            Some(("<token>", &self.identitytoken))
        } else {
            None
        }
    }

    /// `Basic <base64 user:password>`.
    pub fn basic_header(&self) -> Option<String> {
        self.basic()
            .map(|(u, p)| format!("Basic {}", STANDARD.encode(format!("{u}:{p}"))))
    }

    /// The `X-Registry-Auth` header value.
    pub fn to_header(&self) -> String {
        URL_SAFE.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes an `X-Registry-Auth` header value.
    pub fn from_header(value: &str) -> Result<Self, DistributionError> {
        let v = value.trim();
        if v.is_empty() {
            return Ok(Self::default());
        }
        let raw = decode_any(v).ok_or_else(|| {
            DistributionError::Invalid("X-Registry-Auth is not base64-encoded JSON".into())
        })?;
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        serde_json::from_slice(&raw).map_err(|e| {
            DistributionError::Invalid(format!("X-Registry-Auth is not valid JSON: {e}"))
        })
    }
}

/// Decodes an `auth` field of Docker's config formats (base64 of `user:password`) into the
/// user and password; a value without `:` is a user with an empty password. None when it is
/// not base64.
pub fn decode_auth_field(auth: &str) -> Option<(String, String)> {
    let raw = decode_any(auth.trim())?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (u, p) = text.split_once(':').unwrap_or((&text, ""));
    Some((u.to_string(), p.to_string()))
}

fn decode_any(s: &str) -> Option<Vec<u8>> {
    URL_SAFE
        .decode(s)
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .or_else(|_| STANDARD.decode(s))
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .ok()
}

/// Docker's CLI config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn config_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("config.json");
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker").join("config.json")
}

fn read_config(
    path: &Path,
) -> Result<serde_json::Map<String, serde_json::Value>, DistributionError> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Default::default()),
        Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            _ => Err(DistributionError::Invalid(format!(
                "{} is not a JSON object; fix or remove it",
                path.display()
            ))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
        Err(e) => Err(DistributionError::io(
            format!("reading {}", path.display()),
            e,
        )),
    }
}

fn write_config(
    path: &Path,
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), DistributionError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| DistributionError::io(format!("creating {}", dir.display()), e))?;
    let tmp = dir.join(format!(".config.json.{}", rand::random::<u32>()));
    let body = serde_json::to_vec_pretty(map).unwrap_or_default();
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(&body)?;
            f.write_all(b"\n")?;
            f.sync_all()
        })
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(DistributionError::io(
            format!("writing {}", path.display()),
            e,
        ));
    }
    Ok(())
}

/// The credentials stored for `server` (a registry domain or Docker Hub), if any.
/// The `X-Registry-Auth` value for the registry of `reference` from the logins stored in
/// Docker's config file ([`config_path`]); None when there is no login for it.
pub fn header_for(reference: &str) -> Result<Option<String>, DistributionError> {
    let r = berth_image::reference::Reference::parse(reference)?;
    Ok(load(&config_path(), &r.domain)?.map(|mut c| {
        c.serveraddress = crate::endpoint::auth_key(&r.domain);
        c.to_header()
    }))
}

/// The login stored for `server` in the config file at `path`.
pub fn load(path: &Path, server: &str) -> Result<Option<Credentials>, DistributionError> {
    let map = read_config(path)?;
    if let Some(helper) = credential_helper::helper_for(&map, server) {
        if let Some(found) = credential_helper::get(&helper, &auth_key(server))? {
            return Ok(Some(found));
        }
    }
    let Some(auths) = map.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let want = normalize_server(server);
    for (key, entry) in auths {
        if normalize_server(key) != want {
            continue;
        }
        if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) {
            let (username, password) = decode_auth_field(auth).ok_or_else(|| {
                DistributionError::Invalid(format!(
                    "{}: auths.{key}.auth is not base64; run berth login again",
                    path.display()
                ))
            })?;
            return Ok(Some(Credentials {
                username,
                password,
                serveraddress: key.clone(),
                identitytoken: entry
                    .get("identitytoken")
                    .and_then(|t| t.as_str())
                    .unwrap_or_default()
                    .to_string(),
            }));
        }
        if let Some(t) = entry.get("identitytoken").and_then(|t| t.as_str()) {
            return Ok(Some(Credentials {
                identitytoken: t.to_string(),
                serveraddress: key.clone(),
                ..Default::default()
            }));
        }
    }
    Ok(None)
}

/// Stores `user:password` for `server`, keeping every other key of the file.
pub fn store(
    path: &Path,
    server: &str,
    user: &str,
    password: &str,
) -> Result<(), DistributionError> {
    let mut map = read_config(path)?;
    let key = auth_key(server);
    let helper = credential_helper::helper_for(&map, server);
    if let Some(helper) = &helper {
        credential_helper::store(helper, &key, user, password)?;
    }
    let auths = map
        .entry("auths")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    if !auths.is_object() {
        *auths = serde_json::Value::Object(Default::default());
    }
    if let Some(obj) = auths.as_object_mut() {
        let want = normalize_server(server);
        obj.retain(|k, _| normalize_server(k) != want);
        // With a helper the secret stays with it; the file only lists the registry, as
        // Docker's does.
        let entry = match helper {
            Some(_) => serde_json::json!({}),
            None => serde_json::json!({ "auth": STANDARD.encode(format!("{user}:{password}")) }),
        };
        obj.insert(key, entry);
    }
    write_config(path, &map)
}

/// Removes the credentials of `server`; true when there were some.
pub fn remove(path: &Path, server: &str) -> Result<bool, DistributionError> {
    let mut map = read_config(path)?;
    let want = normalize_server(server);
    let erased = match credential_helper::helper_for(&map, server) {
        Some(helper) => credential_helper::erase(&helper, &auth_key(server))?,
        None => false,
    };
    let removed = match map.get_mut("auths").and_then(|a| a.as_object_mut()) {
        Some(obj) => {
            let before = obj.len();
            obj.retain(|k, _| normalize_server(k) != want);
            obj.len() != before
        }
        None => false,
    };
    if removed {
        write_config(path, &map)?;
    }
    Ok(removed || erased)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_variants() {
        let c = Credentials {
            username: "u".into(),
            password: "p?>".into(),
            serveraddress: "localhost:5000".into(),
            identitytoken: String::new(),
        };
        assert_eq!(Credentials::from_header(&c.to_header()).unwrap(), c);
        let std_b64 = STANDARD_NO_PAD.encode(br#"{"username":"a","password":"b"}"#);
        assert_eq!(Credentials::from_header(&std_b64).unwrap().username, "a");
        assert!(Credentials::from_header("e30=").unwrap().is_empty());
        assert!(Credentials::from_header("").unwrap().is_empty());
        assert!(Credentials::from_header("!!!").is_err());
    }

    #[test]
    fn config_file_keeps_other_keys() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(
            &p,
            r#"{"credsStore":"","proxies":{"x":1},"auths":{"other:1":{"auth":"eDp5"}}}"#,
        )
        .unwrap();
        store(&p, "http://localhost:5000/", "me", "s:cret").unwrap();
        let c = load(&p, "localhost:5000").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("me", "s:cret"));
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["proxies"]["x"], 1);
        assert_eq!(v["auths"]["other:1"]["auth"], "eDp5");
        assert_eq!(
            v["auths"]["localhost:5000"]["auth"],
            STANDARD.encode("me:s:cret")
        );
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        store(&p, "", "hub", "pw").unwrap();
        assert!(load(&p, "docker.io").unwrap().is_some());
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert!(v["auths"]["https://index.docker.io/v1/"].is_object());
        assert!(remove(&p, "localhost:5000").unwrap());
        assert!(!remove(&p, "localhost:5000").unwrap());
        assert!(load(&p, "localhost:5000").unwrap().is_none());
        assert!(load(&p, "other:1").unwrap().is_some());
    }
}
