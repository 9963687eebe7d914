//! Image references (`[domain/]path[:tag][@digest]`), normalized like Docker: `busybox`,
//! `library/busybox` and `docker.io/library/busybox` are one repository, and a missing tag means
//! `latest`. Tags are stored and shown in the familiar form (`busybox:latest`,
//! `example.com/app:1`).

use crate::digest;
use crate::ImageError;

/// Docker Hub's canonical domain.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
/// Tag used when a reference has none.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry domain, `docker.io` when none was given.
    pub domain: String,
    /// Repository path inside the domain (`library/busybox`).
    pub path: String,
    /// The tag, if one was given.
    pub tag: Option<String>,
    /// The digest, if one was given (`sha256:...`).
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalizes `s`.
    pub fn parse(s: &str) -> Result<Self, ImageError> {
        let bad = |why: &str| ImageError::InvalidReference(format!("{s:?}: {why}"));
        if s.is_empty() {
            return Err(bad("empty reference"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((name, d)) => {
                digest::hex_of(d).map_err(|_| bad("digest must be sha256:<64 hex characters>"))?;
                (name, Some(d.to_string()))
            }
            None => (s, None),
        };
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(rest[at + 1..].to_string()))
            }
            None => (rest, None),
        };
        if let Some(tag) = &tag {
            if !valid_tag(tag) {
                return Err(bad(
                    "tag must be 1-128 of [A-Za-z0-9_.-], not starting with . or -",
                ));
            }
        }
        if name.is_empty() {
            return Err(bad("missing repository name"));
        }
        if name.len() > 255 {
            return Err(bad("repository name longer than 255 characters"));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                if !valid_domain(first) {
                    return Err(bad("invalid registry domain"));
                }
                (first.to_string(), remainder.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        let domain = if domain == LEGACY_DOMAIN {
            DEFAULT_DOMAIN.to_string()
        } else {
            domain
        };
        if !path.split('/').all(valid_path_component) {
            return Err(bad(
                "repository name must be lowercase letters, digits and separators (. _ __ -)",
            ));
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("{OFFICIAL_PREFIX}{path}")
        } else {
            path
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// Repository name as Docker shows it (`busybox`, `user/app`, `example.com/app`).
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_PREFIX) {
                Some(short) if !short.contains('/') => short.to_string(),
                _ => self.path.clone(),
            }
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// Fully qualified repository name (`docker.io/library/busybox`).
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The tag, `latest` when none was given.
    pub fn tag_or_default(&self) -> &str {
        self.tag.as_deref().unwrap_or(DEFAULT_TAG)
    }

    /// Familiar `name:tag`, the key tags are stored under (`busybox:latest`).
    pub fn familiar_tagged(&self) -> String {
        format!("{}:{}", self.familiar_name(), self.tag_or_default())
    }

    /// Fully qualified `domain/path:tag` (`docker.io/library/busybox:latest`).
    pub fn full_tagged(&self) -> String {
        format!("{}:{}", self.full_name(), self.tag_or_default())
    }
}

/// Normalizes a tag reference to its stored form (`busybox` -> `busybox:latest`). Digest
/// references are refused: a tag needs a tag.
pub fn normalize_tag(s: &str) -> Result<String, ImageError> {
    let r = Reference::parse(s)?;
    if r.digest.is_some() {
        return Err(ImageError::InvalidReference(format!(
            "{s:?}: a tag cannot contain a digest"
        )));
    }
    Ok(r.familiar_tagged())
}

fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (domain, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|part| {
            !part.is_empty()
                && !part.starts_with('-')
                && !part.ends_with('-')
                && part.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(part: &str) -> bool {
    let b = part.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &part[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        for s in [
            "busybox",
            "busybox:latest",
            "library/busybox",
            "docker.io/library/busybox",
            "docker.io/busybox:latest",
            "index.docker.io/library/busybox",
        ] {
            let r = Reference::parse(s).unwrap();
            assert_eq!(r.familiar_tagged(), "busybox:latest", "{s}");
            assert_eq!(r.full_tagged(), "docker.io/library/busybox:latest", "{s}");
        }
        let r = Reference::parse("user/app:1.0").unwrap();
        assert_eq!(r.familiar_tagged(), "user/app:1.0");
        let r = Reference::parse("localhost:5000/a/b:v2").unwrap();
        assert_eq!(r.familiar_tagged(), "localhost:5000/a/b:v2");
        assert_eq!(r.domain, "localhost:5000");
        let r = Reference::parse("example.com/app").unwrap();
        assert_eq!(r.familiar_tagged(), "example.com/app:latest");
    }

    #[test]
    fn digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert!(Reference::parse("busybox@sha256:abc").is_err());
        assert!(normalize_tag(&format!("busybox@{d}")).is_err());
    }

    #[test]
    fn rejects_bad_names() {
        for s in [
            "", "Busybox", "busy box", "a:", ":tag", "a:-x", "a//b", "a/", "-a", "a__-b", "a:b:c",
        ] {
            assert!(Reference::parse(s).is_err(), "{s:?} should be invalid");
        }
        assert!(Reference::parse("a-b_c__d---e/f.g:T_1.x-y").is_ok());
    }
}
