//! Authenticated requests to one repository of one registry.
//!
//! A request goes out with the authorization the session last obtained (none at first). On a
//! 401 the `WWW-Authenticate` challenge decides: `Basic` -> the credentials as basic auth;
//! `Bearer realm=,service=,scope=` -> a token from the realm (`GET realm?service=&scope=`,
//! with the credentials as basic auth or anonymously; `token` or `access_token` of the
//! answer). The request is then retried once; a second 401 is [`DistributionError::Unauthorized`].
//! Bodies are built by a closure so a streamed upload can be sent again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};

use crate::challenge::{self, Challenge};
use crate::endpoint::Endpoint;
use crate::{Credentials, DistributionError};

/// The engine's registry settings (Docker's `insecure-registries` and `registry-mirrors`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryOptions {
    /// `host[:port]` (or bare host) registries reached over plain http although not on loopback.
    pub insecure: Vec<String>,
    /// Mirrors of Docker Hub (`http://host:port` or `https://host`), tried in order before
    /// Docker Hub itself when pulling a `docker.io` image.
    pub mirrors: Vec<String>,
}

impl RegistryOptions {
    /// `BERTH_INSECURE_REGISTRIES` and `BERTH_REGISTRY_MIRRORS` (comma lists).
    pub fn from_env() -> Self {
        let list = |var: &str| -> Vec<String> {
            std::env::var(var)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        Self {
            insecure: list("BERTH_INSECURE_REGISTRIES"),
            mirrors: list("BERTH_REGISTRY_MIRRORS"),
        }
    }
}

/// A shared HTTP client plus the engine's registry options. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    insecure: Vec<String>,
    mirrors: Vec<Endpoint>,
    /// One lock per blob being downloaded, so concurrent pulls sharing a layer do not write
    /// the same ingest file at once.
    downloads: Arc<Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>>,
}

impl RegistryClient {
    /// A client for `options`; a mirror that is not an http(s) URL is an error naming it.
    pub fn new(options: RegistryOptions) -> Result<Self, DistributionError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| {
                DistributionError::Invalid(format!("cannot build the HTTP client: {e}"))
            })?;
        let mirrors = options
            .mirrors
            .iter()
            .map(|m| Endpoint::mirror(m))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            http,
            insecure: options.insecure,
            mirrors,
            downloads: Arc::default(),
        })
    }

    /// Waits until no other pull of this client downloads `digest`, and holds that until the
    /// guard is dropped.
    pub(crate) async fn lock_blob(&self, digest: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.downloads.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, w| w.strong_count() > 0);
            match map.get(digest).and_then(Weak::upgrade) {
                Some(l) => l,
                None => {
                    let l = Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(digest.to_string(), Arc::downgrade(&l));
                    l
                }
            }
        };
        lock.lock_owned().await
    }

    /// Registries reached over http although not on loopback.
    pub fn insecure(&self) -> &[String] {
        &self.insecure
    }

    /// Docker Hub mirrors, in the order pulls try them.
    pub fn mirrors(&self) -> &[Endpoint] {
        &self.mirrors
    }

    /// The endpoint of a registry domain.
    pub fn endpoint(&self, domain: &str) -> Endpoint {
        Endpoint::for_domain(domain, &self.insecure)
    }

    /// A session on `repository` at `endpoint` (a mirror, say), asking for `actions`.
    pub fn session_at(
        &self,
        endpoint: Endpoint,
        repository: &str,
        credentials: Credentials,
        actions: &str,
    ) -> Session {
        Session {
            http: self.http.clone(),
            endpoint,
            repository: repository.to_string(),
            credentials,
            scope: format!("repository:{repository}:{actions}"),
            authorization: Mutex::new(None),
        }
    }

    /// A session on `repository` of `domain`, asking for `actions` (`pull` or `pull,push`).
    pub fn session(
        &self,
        domain: &str,
        repository: &str,
        credentials: Credentials,
        actions: &str,
    ) -> Session {
        self.session_at(self.endpoint(domain), repository, credentials, actions)
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// One repository on one registry, with the authorization obtained so far.
#[derive(Debug)]
pub struct Session {
    http: reqwest::Client,
    pub endpoint: Endpoint,
    pub repository: String,
    credentials: Credentials,
    scope: String,
    authorization: Mutex<Option<String>>,
}

/// A request body factory (called again for the retry after a 401).
pub type BodyFn<'a> = &'a (dyn Fn() -> Result<reqwest::Body, DistributionError> + Sync);

impl Session {
    /// `scheme://host/v2/<repository>/<rest>`.
    pub fn url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.endpoint.base_url(), self.repository)
    }

    /// An absolute URL for a `Location` header (absolute or a path).
    pub fn resolve_location(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{location}", self.endpoint.base_url())
        } else {
            format!("{}/{location}", self.endpoint.base_url())
        }
    }

    fn current_auth(&self) -> Option<String> {
        self.authorization
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Adds a scope (e.g. `repository:other:pull` for a cross-repository mount) to the token
    /// requests of this session and drops the current token.
    pub fn add_scope(&mut self, scope: &str) {
        if !self.scope.split(' ').any(|s| s == scope) {
            self.scope = format!("{} {scope}", self.scope);
            *self.authorization.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    /// Sends a request; answers a 401 with authentication and one retry. Returns the response
    /// whatever its status (other than a final 401).
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Option<BodyFn<'_>>,
    ) -> Result<Response, DistributionError> {
        let mut retried = false;
        loop {
            let mut req = self
                .http
                .request(method.clone(), url)
                .headers(headers.clone());
            if let Some(a) = self.current_auth() {
                req = req.header(AUTHORIZATION, a);
            }
            if let Some(b) = body {
                req = req.body(b()?);
            }
            let resp = req.send().await.map_err(|e| self.transport_error(e))?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(challenge::parse);
            let (false, Some(challenge)) = (retried, challenge) else {
                let message = error_message(resp).await;
                return Err(self.unauthorized(message));
            };
            retried = true;
            let auth = match challenge {
                Challenge::Basic => match self.credentials.basic_header() {
                    Some(h) => h,
                    None => {
                        return Err(self.unauthorized(
                            "the registry requires credentials and none were given".into(),
                        ))
                    }
                },
                Challenge::Bearer {
                    realm,
                    service,
                    scope,
                } => {
                    let scope = merge_scopes(&self.scope, scope.as_deref());
                    let token = fetch_token(
                        &self.http,
                        &realm,
                        service.as_deref(),
                        Some(&scope),
                        &self.credentials,
                    )
                    .await
                    .map_err(|e| match e {
                        DistributionError::Unauthorized { message, .. } => {
                            self.unauthorized(message)
                        }
                        other => other,
                    })?;
                    format!("Bearer {token}")
                }
            };
            *self.authorization.lock().unwrap_or_else(|p| p.into_inner()) = Some(auth);
        }
    }

    /// [`Self::send`] with no body.
    pub async fn get(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
    ) -> Result<Response, DistributionError> {
        self.send(method, url, headers, None).await
    }

    pub(crate) fn unauthorized(&self, message: String) -> DistributionError {
        DistributionError::Unauthorized {
            server: self.endpoint.login_hint(),
            message: if message.is_empty() {
                "authentication required".into()
            } else {
                message
            },
        }
    }

    pub(crate) fn transport_error(&self, e: reqwest::Error) -> DistributionError {
        transport_error(&self.endpoint, e)
    }

    /// Turns an unexpected answer into an error naming `what`.
    pub async fn unexpected(&self, resp: Response, what: &str) -> DistributionError {
        let status = resp.status().as_u16();
        let message = error_message(resp).await;
        DistributionError::Registry {
            registry: self.endpoint.domain.clone(),
            what: what.to_string(),
            status,
            message,
        }
    }
}

/// The challenge's scope plus ours (deduplicated, space separated).
fn merge_scopes(ours: &str, theirs: Option<&str>) -> String {
    let mut scopes: Vec<&str> = Vec::new();
    for s in theirs.unwrap_or_default().split(' ').chain(ours.split(' ')) {
        if !s.is_empty() && !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    scopes.join(" ")
}

/// Maps a reqwest failure to a connect or transport error naming the registry.
pub(crate) fn transport_error(endpoint: &Endpoint, e: reqwest::Error) -> DistributionError {
    // The innermost cause says what happened ("Connection refused (os error 111)"); the
    // outer layers only repeat the URL.
    let mut cause = e.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    if e.is_timeout() {
        cause = format!("timed out ({cause})");
    }
    if e.is_connect() {
        DistributionError::Connect {
            registry: format!("{} ({})", endpoint.domain, endpoint.base_url()),
            cause,
        }
    } else {
        DistributionError::Transport {
            registry: endpoint.domain.clone(),
            cause,
        }
    }
}

/// Gets a bearer token from `realm`.
pub(crate) async fn fetch_token(
    http: &reqwest::Client,
    realm: &str,
    service: Option<&str>,
    scope: Option<&str>,
    credentials: &Credentials,
) -> Result<String, DistributionError> {
    let mut query: Vec<(&str, &str)> = Vec::new();
    if let Some(s) = service {
        query.push(("service", s));
    }
    if let Some(scope) = scope {
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            query.push(("scope", s));
        }
    }
    if let Some((u, _)) = credentials.basic() {
        query.push(("account", u));
    }
    let mut req = http.get(realm).query(&query);
    if let Some(h) = credentials.basic_header() {
        req = req.header(AUTHORIZATION, h);
    }
    let realm_host = reqwest::Url::parse(realm)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| realm.to_string());
    let resp = req.send().await.map_err(|e| {
        let cause = e.to_string();
        if e.is_connect() {
            DistributionError::Connect {
                registry: format!("token service {realm_host}"),
                cause,
            }
        } else {
            DistributionError::Transport {
                registry: format!("token service {realm_host}"),
                cause,
            }
        }
    })?;
    let status = resp.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        let message = error_message(resp).await;
        return Err(DistributionError::Unauthorized {
            server: String::new(),
            message: if message.is_empty() {
                "the token service refused the credentials".into()
            } else {
                message
            },
        });
    }
    if !status.is_success() {
        let message = error_message(resp).await;
        return Err(DistributionError::Registry {
            registry: realm_host,
            what: "a token request".into(),
            status: status.as_u16(),
            message,
        });
    }
    #[derive(serde::Deserialize)]
    struct TokenAnswer {
        #[serde(default)]
        token: String,
        #[serde(default)]
        access_token: String,
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| DistributionError::Transport {
            registry: realm_host.clone(),
            cause: e.to_string(),
        })?;
    let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
        DistributionError::Unsupported(format!("token service {realm_host} answered bad JSON: {e}"))
    })?;
    let token = if answer.token.is_empty() {
        answer.access_token
    } else {
        answer.token
    };
    if token.is_empty() {
        return Err(DistributionError::Unsupported(format!(
            "token service {realm_host} answered no token"
        )));
    }
    Ok(token)
}

/// The message of a registry error body (`{"errors":[{"code","message"}]}`), else its text.
pub(crate) async fn error_message(resp: Response) -> String {
    let bytes = resp.bytes().await.unwrap_or_default();
    error_text(&bytes)
}

/// The message of a registry error body, else its text.
pub fn error_text(bytes: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<Item>,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(bytes) {
        if let Some(first) = e.errors.first() {
            return match (first.code.is_empty(), first.message.is_empty()) {
                (false, false) => format!("{}: {}", first.code, first.message),
                (false, true) => first.code.clone(),
                _ => first.message.clone(),
            };
        }
    }
    let text = String::from_utf8_lossy(bytes).trim().to_string();
    text.chars().take(300).collect()
}

/// The first error code of a registry error body.
pub fn error_code(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v["errors"][0]["code"].as_str().map(str::to_string)
}

/// A header map from pairs (invalid values are skipped).
pub fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(*k, v);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_merge_and_errors_read() {
        assert_eq!(
            merge_scopes("repository:a:pull,push", Some("repository:a:pull,push")),
            "repository:a:pull,push"
        );
        assert_eq!(
            merge_scopes(
                "repository:a:pull repository:b:pull",
                Some("repository:a:push")
            ),
            "repository:a:push repository:a:pull repository:b:pull"
        );
        assert_eq!(
            error_text(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(error_text(b" plain "), "plain");
        assert_eq!(
            error_code(br#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#).as_deref(),
            Some("NAME_UNKNOWN")
        );
    }
}
