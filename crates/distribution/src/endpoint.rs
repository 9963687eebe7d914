//! Where a registry lives: Docker Hub's names (`docker.io`, `index.docker.io`, the CLI's
//! `https://index.docker.io/v1/`) map to `registry-1.docker.io`; loopback hosts (`localhost`,
//! `127.0.0.0/8`, `::1`) and hosts the engine was told are insecure are spoken to over plain
//! http, every other registry over https — Docker's rules.

use std::net::IpAddr;

use berth_image::reference::DEFAULT_DOMAIN;

/// Docker Hub's registry API host.
pub const DOCKER_HUB_HOST: &str = "registry-1.docker.io";
/// The key Docker's CLI stores Docker Hub credentials under.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A registry endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The domain as references name it (`docker.io`, `localhost:5000`).
    pub domain: String,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// `host[:port]` requests go to.
    pub host: String,
}

impl Endpoint {
    /// The endpoint of `domain`, `insecure` listing `host[:port]` (or bare host) entries to
    /// reach over http.
    pub fn for_domain(domain: &str, insecure: &[String]) -> Self {
        let domain = normalize_server(domain);
        let host = if domain == DEFAULT_DOMAIN {
            DOCKER_HUB_HOST.to_string()
        } else {
            domain.clone()
        };
        let scheme = if is_loopback(&host) || is_insecure(&host, insecure) {
            "http"
        } else {
            "https"
        };
        Self {
            domain,
            scheme,
            host,
        }
    }

    /// A Docker Hub mirror from its URL (`http://127.0.0.1:5000`, `https://mirror.example`);
    /// anything but an http(s) URL of a host is an error naming it.
    pub fn mirror(url: &str) -> Result<Self, crate::DistributionError> {
        let bad = |why: &str| {
            crate::DistributionError::Invalid(format!(
                "invalid registry mirror {url:?}: {why} (expected http://HOST[:PORT] or https://HOST[:PORT])"
            ))
        };
        let (scheme, rest) = if let Some(r) = url.strip_prefix("https://") {
            ("https", r)
        } else if let Some(r) = url.strip_prefix("http://") {
            ("http", r)
        } else {
            return Err(bad("no http:// or https:// scheme"));
        };
        let host = rest.trim_end_matches('/');
        if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
            return Err(bad("it must name a host (and port) only, without a path"));
        }
        Ok(Self {
            domain: DEFAULT_DOMAIN.to_string(),
            scheme,
            host: host.to_string(),
        })
    }

    /// `scheme://host`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }

    /// The name users give `berth login` for this registry (the domain; Docker Hub's is empty
    /// so the message says `berth login`).
    pub fn login_hint(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            String::new()
        } else {
            self.domain.clone()
        }
    }
}

/// `docker.io` for every spelling of Docker Hub, else the server without scheme and path
/// (`https://example.com:5000/v2/` -> `example.com:5000`).
pub fn normalize_server(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s);
    match s {
        ""
        | "docker.io"
        | "index.docker.io"
        | "registry-1.docker.io"
        | "registry.hub.docker.com" => DEFAULT_DOMAIN.to_string(),
        other => other.to_string(),
    }
}

/// The key a login to `server` is stored under in Docker's config file
/// (`https://index.docker.io/v1/` for Docker Hub, else `host[:port]`).
pub fn auth_key(server: &str) -> String {
    let domain = normalize_server(server);
    if domain == DEFAULT_DOMAIN {
        DOCKER_HUB_AUTH_KEY.to_string()
    } else {
        domain
    }
}

fn split_host(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

/// True for `localhost`, 127.0.0.0/8 and ::1 (with or without a port).
pub fn is_loopback(host: &str) -> bool {
    let h = split_host(host);
    h == "localhost"
        || h.ends_with(".localhost")
        || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn is_insecure(host: &str, insecure: &[String]) -> bool {
    let bare = split_host(host);
    insecure.iter().any(|i| {
        let i = i.trim();
        let i = i
            .strip_prefix("http://")
            .or_else(|| i.strip_prefix("https://"))
            .unwrap_or(i)
            .trim_end_matches('/');
        i == host || i == bare
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_and_loopback() {
        let e = Endpoint::for_domain("docker.io", &[]);
        assert_eq!(e.base_url(), "https://registry-1.docker.io");
        for h in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "localhost",
        ] {
            assert_eq!(Endpoint::for_domain(h, &[]).scheme, "http", "{h}");
        }
        assert_eq!(
            Endpoint::for_domain("example.com:5000", &[]).scheme,
            "https"
        );
        let insecure = vec!["example.com:5000".to_string(), "10.0.0.1".to_string()];
        assert_eq!(
            Endpoint::for_domain("example.com:5000", &insecure).scheme,
            "http"
        );
        assert_eq!(
            Endpoint::for_domain("10.0.0.1:443", &insecure).scheme,
            "http"
        );
        assert_eq!(
            Endpoint::for_domain("example.com", &insecure).scheme,
            "https"
        );
    }

    #[test]
    fn mirrors_are_http_urls_of_a_host() {
        let m = Endpoint::mirror("http://127.0.0.1:5000/").unwrap();
        assert_eq!(m.base_url(), "http://127.0.0.1:5000");
        assert_eq!(m.domain, DEFAULT_DOMAIN);
        assert_eq!(
            Endpoint::mirror("https://mirror.example")
                .unwrap()
                .base_url(),
            "https://mirror.example"
        );
        for bad in ["127.0.0.1:5000", "ftp://x", "http://", "http://h/v2/"] {
            let e = Endpoint::mirror(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn server_names() {
        for s in [
            "",
            "docker.io",
            "https://index.docker.io/v1/",
            "index.docker.io",
        ] {
            assert_eq!(auth_key(s), DOCKER_HUB_AUTH_KEY, "{s:?}");
        }
        assert_eq!(auth_key("http://localhost:5000/v2/"), "localhost:5000");
        assert_eq!(normalize_server("reg.example.com"), "reg.example.com");
    }
}
