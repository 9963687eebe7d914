//! Optional authentication: HTTP basic against configured users, or bearer tokens issued by
//! the registry's own `/token` endpoint (Docker's token flow) to users giving basic
//! credentials there. Anonymous when no users are configured.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::base64;

/// How clients must authenticate.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// `(user, password)` pairs; empty = anonymous access.
    pub users: Vec<(String, String)>,
    /// Bearer tokens from `/token` instead of basic auth on `/v2/`.
    pub token: bool,
    /// Token lifetime in seconds.
    pub token_ttl: u64,
}

pub const SERVICE: &str = "berth-registry";

pub(crate) struct Auth {
    cfg: AuthConfig,
    key: [u8; 32],
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
        Self { cfg, key }
    }

    pub fn enabled(&self) -> bool {
        !self.cfg.users.is_empty()
    }

    /// Checks basic credentials against the configured users.
    pub fn check_user(&self, user: &str, pass: &str) -> bool {
        self.cfg.users.iter().any(|(u, p)| {
            ct_eq(u.as_bytes(), user.as_bytes()) && ct_eq(p.as_bytes(), pass.as_bytes())
        })
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
}
