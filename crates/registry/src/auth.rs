//! Optional authentication: HTTP basic against configured users (plain `USER:PASSWORD` pairs
//! or bcrypt entries of an htpasswd file, the format `htpasswd -B` writes), or bearer tokens
//! issued by the registry's own `/token` endpoint (Docker's token flow) to users giving basic
//! credentials there. Anonymous when no users are configured.
//!
//! bcrypt is slow on purpose (~50-100 ms per check), so a successful check is remembered (as
//! a sha256 of user, password and hash) and later requests with the same credentials are
//! answered from memory.

use std::collections::HashSet;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};

use crate::base64;

/// How clients must authenticate.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// `(user, password)` pairs; with `htpasswd` empty too = anonymous access.
    pub users: Vec<(String, String)>,
    /// `(user, bcrypt hash)` pairs from an htpasswd file.
    pub htpasswd: Vec<(String, String)>,
    /// Bearer tokens from `/token` instead of basic auth on `/v2/`.
    pub token: bool,
    /// Token lifetime in seconds.
    pub token_ttl: u64,
}

pub const SERVICE: &str = "berth-registry";

pub(crate) struct Auth {
    cfg: AuthConfig,
    key: [u8; 32],
    /// Credentials that passed a bcrypt check (sha256 of user, password and hash).
    verified: Mutex<HashSet<[u8; 32]>>,
}

/// Parses an htpasswd file: `user:$2y$...` lines (bcrypt only), `#` comments and blank lines
/// skipped.
pub fn parse_htpasswd(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, hash) = line
            .split_once(':')
            .filter(|(u, h)| !u.is_empty() && !h.is_empty())
            .ok_or_else(|| format!("line {}: want USER:HASH", n + 1))?;
        if !["$2y$", "$2a$", "$2b$", "$2x$"]
            .iter()
            .any(|p| hash.starts_with(p))
        {
            return Err(format!(
                "line {}: the entry of {user:?} is not bcrypt; make it with `htpasswd -B`",
                n + 1
            ));
        }
        out.push((user.to_string(), hash.to_string()));
    }
    Ok(out)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Constant-time equality of two byte strings.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decodes `Basic <base64 user:pass>`.
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let b64 = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let raw = base64::decode(b64.trim())?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

impl Auth {
    pub fn new(cfg: AuthConfig) -> Self {
        let mut key = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut key);
        Self {
            cfg,
            key,
            verified: Mutex::new(HashSet::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.cfg.users.is_empty() || !self.cfg.htpasswd.is_empty()
    }

    /// Checks basic credentials against the configured users and htpasswd entries.
    pub fn check_user(&self, user: &str, pass: &str) -> bool {
        let plain = self.cfg.users.iter().any(|(u, p)| {
            ct_eq(u.as_bytes(), user.as_bytes()) && ct_eq(p.as_bytes(), pass.as_bytes())
        });
        plain
            || self
                .cfg
                .htpasswd
                .iter()
                .filter(|(u, _)| ct_eq(u.as_bytes(), user.as_bytes()))
                .any(|(_, hash)| self.check_bcrypt(user, pass, hash))
    }

    fn check_bcrypt(&self, user: &str, pass: &str, hash: &str) -> bool {
        let mut h = Sha256::new();
        for part in [user, pass, hash] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        let key: [u8; 32] = h.finalize().into();
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.contains(&key) {
            return true;
        }
        drop(verified);
        if bcrypt::verify(pass, hash).unwrap_or(false) {
            verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            verified.insert(key);
            true
        } else {
            false
        }
    }

    fn sign(&self, payload: &str) -> String {
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.key).expect("any key length");
        mac.update(payload.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A token for `user`, valid for the configured lifetime.
    pub fn issue(&self, user: &str) -> (String, u64) {
        let ttl = if self.cfg.token_ttl == 0 {
            300
        } else {
            self.cfg.token_ttl
        };
        let payload = format!("{}:{}", now() + ttl, user);
        let p64 = base64::encode_url(payload.as_bytes());
        (format!("{p64}.{}", self.sign(&payload)), ttl)
    }

    fn verify_token(&self, token: &str) -> bool {
        let Some((p64, sig)) = token.split_once('.') else {
            return false;
        };
        let Some(payload) = base64::decode(p64).and_then(|b| String::from_utf8(b).ok()) else {
            return false;
        };
        let Some((exp, _user)) = payload.split_once(':') else {
            return false;
        };
        ct_eq(self.sign(&payload).as_bytes(), sig.as_bytes())
            && exp.parse::<u64>().map(|e| e > now()).unwrap_or(false)
    }

    /// Whether a request with this `Authorization` header may use `/v2/`.
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        if !self.enabled() {
            return true;
        }
        let Some(h) = authorization else { return false };
        if self.cfg.token {
            h.strip_prefix("Bearer ")
                .map(|t| self.verify_token(t.trim()))
                .unwrap_or(false)
        } else {
            parse_basic(h)
                .map(|(u, p)| self.check_user(&u, &p))
                .unwrap_or(false)
        }
    }

    /// The `WWW-Authenticate` challenge for a request to `host` about `scope`.
    pub fn challenge(&self, host: &str, scope: Option<&str>) -> String {
        if self.cfg.token {
            let mut c = format!("Bearer realm=\"http://{host}/token\",service=\"{SERVICE}\"");
            if let Some(s) = scope {
                c.push_str(&format!(",scope=\"{s}\""));
            }
            c
        } else {
            format!("Basic realm=\"{SERVICE}\"")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_basic() {
        let a = Auth::new(AuthConfig {
            users: vec![("u".into(), "p".into())],
            htpasswd: Vec::new(),
            token: true,
            token_ttl: 60,
        });
        let (t, _) = a.issue("u");
        assert!(a.allows(Some(&format!("Bearer {t}"))));
        assert!(!a.allows(Some(&format!("Bearer {t}x"))));
        assert!(!a.allows(None));
        assert_eq!(
            parse_basic(&format!("Basic {}", base64::encode(b"u:p:q"))),
            Some(("u".into(), "p:q".into()))
        );
        assert!(a.check_user("u", "p") && !a.check_user("u", "x"));
    }

    #[test]
    fn htpasswd_bcrypt() {
        // `htpasswd -nbB alice secret` (cost 4 to keep the test fast).
        let hash = bcrypt::hash("secret", 4)
            .unwrap()
            .replacen("$2b$", "$2y$", 1);
        let entries = parse_htpasswd(&format!("# users\nalice:{hash}\n\n")).unwrap();
        let a = Auth::new(AuthConfig {
            htpasswd: entries,
            ..Default::default()
        });
        assert!(a.enabled());
        assert!(a.check_user("alice", "secret"));
        assert!(a.check_user("alice", "secret"), "cached the second time");
        assert!(!a.check_user("alice", "wrong"));
        assert!(!a.check_user("bob", "secret"));
        assert!(parse_htpasswd("bob:{SHA}abc").is_err());
        assert!(parse_htpasswd("nocolon").is_err());
    }
}
