//! SigV4 verification of the `Authorization: AWS4-HMAC-SHA256 ...` header form.
//!
//! The server recomputes the signature the way the client did and compares:
//!
//! 1. parse the `Authorization` header (`Credential`, `SignedHeaders`, `Signature`) and the
//!    request time (`X-Amz-Date`, else `Date`), checking scope and time;
//! 2. build the canonical request: method, canonical URI (path with dot segments and repeated
//!    slashes removed, then percent-encoded again as every non-S3 signer does), canonical query
//!    string (pairs decoded, strictly re-encoded, sorted), the canonical headers of exactly the
//!    signed headers, the signed-header list and the SHA-256 of the body;
//! 3. string to sign = algorithm, time, scope, hash of the canonical request;
//! 4. signing key = HMAC chain over date, region, service, `aws4_request`, starting from
//!    `"AWS4" + secret`; compare HMAC(signing key, string to sign) in constant time.
//!
//! The error codes and messages are the ones AWS's JSON-protocol services send (see
//! [`AuthError`]).

use std::time::SystemTime;

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::time::{format_basic, parse_basic, parse_http_date, unix_secs};
use crate::{AuthError, CredentialStore};

type HmacSha256 = Hmac<Sha256>;

/// The only signing algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far the request time may be from the server's clock, either way, in seconds (AWS's
/// JSON services answer "Signature expired: ... (... - 5 min.)" beyond it).
pub const MAX_CLOCK_SKEW_SECS: i64 = 5 * 60;
/// The credential scope's last element.
pub const SCOPE_TERMINATOR: &str = "aws4_request";

/// Who signed a request that passed [`verify`], and the scope they signed it for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRequest {
    /// The access key id that signed the request.
    pub access_key_id: String,
    /// The credential scope's region (used in ARNs).
    pub region: String,
    /// The credential scope's service (`ecs` for the ECS API).
    pub service: String,
}

impl VerifiedRequest {
    /// Checks that the request was signed for `expected` service; the error is the one AWS
    /// sends for a credential scoped to another service.
    pub fn check_service(&self, expected: &str) -> Result<(), AuthError> {
        if self.service == expected {
            Ok(())
        } else {
            Err(AuthError::InvalidSignature(format!(
                "Credential should be scoped to correct service: '{expected}'. "
            )))
        }
    }
}

/// The parts of a credential scope `AKID/DATE/REGION/SERVICE/aws4_request`.
struct Scope<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

/// The parsed `Authorization` header.
struct Authorization<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

/// Region names as they may appear in a scope (and so in ARNs): 1-64 of `[a-z0-9-]`.
fn valid_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 64
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Service names: 1-64 of `[a-z0-9-]`.
fn valid_service(s: &str) -> bool {
    valid_region(s)
}

/// Parses the header value; `has_date` says whether the request has a date header, because
/// AWS reports a missing one together with missing parameters.
fn parse_authorization(value: &str, has_date: bool) -> Result<Authorization<'_>, AuthError> {
    let trimmed = value.trim();
    let (algorithm, rest) = trimmed.split_once([' ', '\t']).unwrap_or((trimmed, ""));
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for token in rest.split([',', ' ', '\t']).filter(|t| !t.is_empty()) {
        let Some((k, v)) = token.split_once('=') else {
            return Err(AuthError::IncompleteSignature(format!(
                "'{token}' not a valid key=value pair (missing equal-sign) in Authorization header: '{trimmed}'."
            )));
        };
        let slot = match k {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v);
        }
    }
    let mut missing = String::new();
    for (name, found) in [
        ("Credential", credential.is_some()),
        ("Signature", signature.is_some()),
        ("SignedHeaders", signed_headers.is_some()),
    ] {
        if !found {
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    if !has_date {
        missing.push_str(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
        );
    }
    if !missing.is_empty() {
        return Err(AuthError::IncompleteSignature(format!(
            "{missing}Authorization={trimmed}"
        )));
    }
    if algorithm != ALGORITHM {
        return Err(AuthError::IncompleteSignature(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'."
        )));
    }
    match (credential, signed_headers, signature) {
        (Some(credential), Some(signed_headers), Some(signature)) => Ok(Authorization {
            credential,
            signed_headers,
            signature,
        }),
        // Unreachable: each None was reported as missing above.
        _ => Err(AuthError::IncompleteSignature(format!(
            "Authorization={trimmed}"
        ))),
    }
}

fn parse_scope(credential: &str) -> Result<Scope<'_>, AuthError> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts[..] else {
        return Err(AuthError::IncompleteSignature(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
        )));
    };
    if terminator != SCOPE_TERMINATOR {
        return Err(AuthError::InvalidSignature(format!(
            "Credential should be scoped with a valid terminator: '{SCOPE_TERMINATOR}', not '{terminator}'. "
        )));
    }
    if !valid_region(region) {
        return Err(AuthError::InvalidSignature(format!(
            "Credential should be scoped to a valid region, not '{region}'. "
        )));
    }
    if !valid_service(service) {
        return Err(AuthError::InvalidSignature(format!(
            "Credential should be scoped to correct service: '{service}'. "
        )));
    }
    Ok(Scope {
        access_key_id,
        date,
        region,
        service,
    })
}

/// The region of the `Authorization` header's credential scope, without verifying anything
/// (for `--no-auth`). `None` if there is no such header or no well-formed scope in it.
pub fn scope_region(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let credential = value
        .split([',', ' ', '\t'])
        .find_map(|t| t.strip_prefix("Credential="))?;
    let scope = parse_scope(credential).ok()?;
    Some(scope.region.to_string())
}

/// The request time: `X-Amz-Date` (ISO-8601 basic) if present, else `Date` (HTTP date).
/// `Ok(None)` if neither header is present. Returns (seconds, basic form).
fn request_time(headers: &HeaderMap) -> Result<Option<(i64, String)>, AuthError> {
    let bad_format = |v: &str| {
        AuthError::IncompleteSignature(format!(
            "Date must be in ISO-8601 'basic format'. Got '{v}'. See http://en.wikipedia.org/wiki/ISO_8601"
        ))
    };
    if let Some(v) = headers.get("x-amz-date") {
        let s = String::from_utf8_lossy(v.as_bytes());
        let secs = parse_basic(s.trim()).ok_or_else(|| bad_format(&s))?;
        return Ok(Some((secs, s.trim().to_string())));
    }
    if let Some(v) = headers.get(http::header::DATE) {
        let s = String::from_utf8_lossy(v.as_bytes());
        let secs = parse_http_date(s.trim()).ok_or_else(|| bad_format(&s))?;
        return Ok(Some((secs, format_basic(secs))));
    }
    Ok(None)
}

/// Verifies a request's SigV4 signature (`Authorization` header form) against the store.
///
/// `body` is the complete request body; `now` is the server's clock (a parameter so tests
/// can pin it). On success, says who signed it and for which region and service.
pub fn verify(
    parts: &http::request::Parts,
    body: &[u8],
    store: &CredentialStore,
    now: SystemTime,
) -> Result<VerifiedRequest, AuthError> {
    let headers = &parts.headers;
    let mut auth_values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(auth_value) = auth_values.next() else {
        return Err(AuthError::MissingAuthenticationToken);
    };
    let auth_text = String::from_utf8_lossy(auth_value.as_bytes()).into_owned();
    if auth_values.next().is_some() {
        return Err(AuthError::IncompleteSignature(format!(
            "Only one Authorization header is allowed. Authorization={}",
            auth_text.trim()
        )));
    }
    let time = request_time(headers);
    let has_date = !matches!(time, Ok(None));
    let auth = parse_authorization(&auth_text, has_date)?;
    let scope = parse_scope(auth.credential)?;
    let Some((req_secs, req_basic)) = time? else {
        // parse_authorization reported a missing date already; kept for completeness.
        return Err(AuthError::IncompleteSignature(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
                .to_string(),
        ));
    };

    let signed: Vec<&str> = auth.signed_headers.split(';').collect();
    if !signed.iter().any(|h| h.eq_ignore_ascii_case("host")) {
        return Err(AuthError::IncompleteSignature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".to_string(),
        ));
    }
    if scope.date != &req_basic[..8] {
        return Err(AuthError::InvalidSignature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
            scope.date,
            &req_basic[..8],
            req_basic
        )));
    }
    // No session tokens are ever issued, so any token is one AWS would not recognize.
    if headers.contains_key("x-amz-security-token") {
        return Err(AuthError::UnrecognizedClient);
    }

    let now_secs = unix_secs(now);
    if req_secs < now_secs.saturating_sub(MAX_CLOCK_SKEW_SECS) {
        return Err(AuthError::InvalidSignature(format!(
            "Signature expired: {} is now earlier than {} ({} - 5 min.)",
            req_basic,
            format_basic(now_secs.saturating_sub(MAX_CLOCK_SKEW_SECS)),
            format_basic(now_secs)
        )));
    }
    if req_secs > now_secs.saturating_add(MAX_CLOCK_SKEW_SECS) {
        return Err(AuthError::InvalidSignature(format!(
            "Signature not yet current: {} is still later than {} ({} + 5 min.)",
            req_basic,
            format_basic(now_secs.saturating_add(MAX_CLOCK_SKEW_SECS)),
            format_basic(now_secs)
        )));
    }

    let Some(credentials) = store.lookup(scope.access_key_id) else {
        return Err(AuthError::UnrecognizedClient);
    };

    let provided = match hex::decode(auth.signature) {
        Ok(bytes) if bytes.len() == 32 => bytes,
        _ => return Err(AuthError::SignatureMismatch),
    };

    let payload_hash = hex::encode(Sha256::digest(body));
    let lookup = |name: &str| -> Vec<Vec<u8>> {
        let mut values: Vec<Vec<u8>> = headers
            .get_all(name)
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect();
        if values.is_empty() && name == "host" {
            // HTTP/2 and absolute-form requests carry the host in the URI.
            if let Some(authority) = parts.uri.authority() {
                values.push(authority.as_str().as_bytes().to_vec());
            }
        }
        values
    };
    let key = signing_key(
        &credentials.secret_access_key,
        scope.date,
        scope.region,
        scope.service,
    );
    let scope_text = format!(
        "{}/{}/{}/{SCOPE_TERMINATOR}",
        scope.date, scope.region, scope.service
    );
    let query = parts.uri.query().unwrap_or("");
    // A '+' in a query is read as itself by most signers (botocore) and as a space by
    // form-urlencoded ones (aws-sigv4); both readings sign the same raw bytes, so either may match.
    let plus_readings: &[bool] = if query.contains('+') {
        &[false, true]
    } else {
        &[false]
    };
    for &plus_as_space in plus_readings {
        let creq = canonical_request(&CanonicalInput {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query,
            signed_headers: auth.signed_headers,
            lookup: &lookup,
            payload_hash: &payload_hash,
            normalize_path: true,
            plus_as_space,
        });
        let sts = string_to_sign(&req_basic, &scope_text, &creq);
        let mut mac = hmac_key(&key);
        mac.update(sts.as_bytes());
        if mac.verify_slice(&provided).is_ok() {
            return Ok(VerifiedRequest {
                access_key_id: scope.access_key_id.to_string(),
                region: scope.region.to_string(),
                service: scope.service.to_string(),
            });
        }
    }
    Err(AuthError::SignatureMismatch)
}

/// What the canonical request is made of. `lookup` returns all values of a (lowercase)
/// header name in order.
pub(crate) struct CanonicalInput<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub signed_headers: &'a str,
    pub lookup: &'a dyn Fn(&str) -> Vec<Vec<u8>>,
    pub payload_hash: &'a str,
    pub normalize_path: bool,
    pub plus_as_space: bool,
}

/// Builds the canonical request (bytes, since header values may hold non-UTF-8 bytes).
pub(crate) fn canonical_request(input: &CanonicalInput<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(input.method.as_bytes());
    out.push(b'\n');
    let path = if input.normalize_path {
        normalize_path(input.path)
    } else if input.path.is_empty() {
        "/".to_string()
    } else {
        input.path.to_string()
    };
    uri_encode(path.as_bytes(), false, &mut out);
    out.push(b'\n');
    out.extend_from_slice(canonical_query(input.query, input.plus_as_space).as_bytes());
    out.push(b'\n');
    for name in input.signed_headers.split(';') {
        let lower = name.to_ascii_lowercase();
        out.extend_from_slice(lower.as_bytes());
        out.push(b':');
        for (i, value) in (input.lookup)(&lower).iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            trim_all(value, &mut out);
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(input.signed_headers.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(input.payload_hash.as_bytes());
    out
}

/// The string to sign for a canonical request.
pub(crate) fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &[u8]) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request))
    )
}

fn hmac_key(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable_hmac(),
    }
}

#[cold]
fn unreachable_hmac() -> ! {
    unreachable!("HMAC-SHA256 takes keys of any length")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = hmac_key(key);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The SigV4 signing key for a secret and scope.
pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, SCOPE_TERMINATOR.as_bytes())
}

/// Hex signature of a string to sign.
#[cfg(test)]
pub(crate) fn signature(key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac(key, string_to_sign.as_bytes()))
}

/// Removes `.` and `..` segments (RFC 3986 5.2.4) and empty segments (repeated slashes), as
/// AWS signers do for every service but S3. Keeps a trailing slash; never returns "".
pub(crate) fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut result = String::with_capacity(path.len() + 1);
    result.push('/');
    result.push_str(&out.join("/"));
    let trailing = ["/", "/.", "/.."].iter().any(|s| path.ends_with(s));
    if trailing && !result.ends_with('/') {
        result.push('/');
    }
    result
}

/// SigV4's URI encoding: unreserved characters (`A-Z a-z 0-9 - _ . ~`) stay, `/` stays in
/// paths, every other byte becomes `%XY` (uppercase hex).
fn uri_encode(bytes: &[u8], encode_slash: bool, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (b == b'/' && !encode_slash)
        {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// Decodes `%XY` escapes (malformed ones stay as they are); `+` becomes a space only if asked.
fn percent_decode(s: &str, plus_as_space: bool) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex_val = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' => {
                let high = b.get(i + 1).and_then(|&c| hex_val(c));
                let low = b.get(i + 2).and_then(|&c| hex_val(c));
                if let (Some(h), Some(l)) = (high, low) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' if plus_as_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// The canonical query string: each `name=value` pair decoded, strictly re-encoded, sorted by
/// name then value, joined with `&`; a pair without `=` gets an empty value.
pub(crate) fn canonical_query(query: &str, plus_as_space: bool) -> String {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let mut ek = Vec::new();
            uri_encode(&percent_decode(k, plus_as_space), true, &mut ek);
            let mut ev = Vec::new();
            uri_encode(&percent_decode(v, plus_as_space), true, &mut ev);
            (ek, ev)
        })
        .collect();
    pairs.sort();
    let mut out = Vec::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(k);
        out.push(b'=');
        out.extend_from_slice(v);
    }
    // Only ASCII is produced by uri_encode.
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends a header value with leading/trailing spaces removed and runs of spaces collapsed
/// to one (SigV4's "Trimall").
fn trim_all(value: &[u8], out: &mut Vec<u8>) {
    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ws(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ws(b))
        .map_or(start, |e| e + 1);
    let mut prev_space = false;
    for &b in &value[start..end] {
        if b == b' ' {
            if !prev_space {
                out.push(b' ');
            }
            prev_space = true;
        } else {
            out.push(b);
            prev_space = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CredentialEntry, Credentials};
    use std::path::PathBuf;
    use std::time::{Duration, UNIX_EPOCH};

    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20150830T123600Z";

    fn store() -> CredentialStore {
        CredentialStore::from_entries(
            PathBuf::from("x"),
            vec![CredentialEntry {
                profile: "default".into(),
                credentials: Credentials {
                    access_key_id: AKID.into(),
                    secret_access_key: SECRET.into(),
                },
            }],
        )
    }

    fn at(basic: &str) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(parse_basic(basic).unwrap() as u64)
    }

    /// A POST / signed the way botocore does it, with `headers` extra.
    fn signed(headers: &[(&str, &str)], body: &[u8], region: &str) -> http::request::Parts {
        let mut b = http::Request::builder()
            .method("POST")
            .uri("/")
            .header("host", "127.0.0.1:9400");
        // A request that brings its own `Date` header is signed with that instead.
        if !headers.iter().any(|(k, _)| *k == "date") {
            b = b.header("x-amz-date", DATE);
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (mut parts, ()) = b.body(()).unwrap().into_parts();
        let mut names: Vec<String> = parts.headers.keys().map(|k| k.to_string()).collect();
        names.sort();
        names.dedup();
        let signed_headers = names.join(";");
        let lookup = |n: &str| -> Vec<Vec<u8>> {
            parts
                .headers
                .get_all(n)
                .iter()
                .map(|v| v.as_bytes().to_vec())
                .collect()
        };
        let creq = canonical_request(&CanonicalInput {
            method: "POST",
            path: "/",
            query: "",
            signed_headers: &signed_headers,
            lookup: &lookup,
            payload_hash: &hex::encode(Sha256::digest(body)),
            normalize_path: true,
            plus_as_space: false,
        });
        let scope = format!("20150830/{region}/ecs/aws4_request");
        let sts = string_to_sign(DATE, &scope, &creq);
        let sig = signature(&signing_key(SECRET, "20150830", region, "ecs"), &sts);
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={AKID}/{scope}, SignedHeaders={signed_headers}, Signature={sig}"
        );
        parts
            .headers
            .insert(http::header::AUTHORIZATION, auth.parse().unwrap());
        parts
    }

    fn with_auth(auth: &str) -> http::request::Parts {
        let mut p = signed(&[], b"{}", "us-east-1");
        p.headers
            .insert(http::header::AUTHORIZATION, auth.parse().unwrap());
        p
    }

    fn err(parts: &http::request::Parts) -> (Option<&'static str>, String) {
        let e = verify(parts, b"{}", &store(), at(DATE)).unwrap_err();
        assert_eq!(e.http_status(), 400);
        (e.aws_code(), e.to_string())
    }

    #[test]
    fn accepts_its_own_signature_and_reports_the_scope() {
        let p = signed(
            &[(
                "x-amz-target",
                "AmazonEC2ContainerServiceV20141113.ListClusters",
            )],
            b"{}",
            "eu-north-1",
        );
        let v = verify(&p, b"{}", &store(), at(DATE)).unwrap();
        assert_eq!(
            v,
            VerifiedRequest {
                access_key_id: AKID.into(),
                region: "eu-north-1".into(),
                service: "ecs".into()
            }
        );
        assert!(v.check_service("ecs").is_ok());
        let e = v.check_service("logs").unwrap_err();
        assert_eq!(
            (e.aws_code(), e.to_string().as_str()),
            (
                Some("InvalidSignatureException"),
                "Credential should be scoped to correct service: 'logs'. "
            )
        );
        assert_eq!(scope_region(&p.headers).as_deref(), Some("eu-north-1"));
    }

    #[test]
    fn missing_authorization() {
        let mut p = signed(&[], b"{}", "us-east-1");
        p.headers.remove(http::header::AUTHORIZATION);
        assert_eq!(
            err(&p),
            (
                Some("MissingAuthenticationTokenException"),
                "Missing Authentication Token".into()
            )
        );
        assert_eq!(scope_region(&p.headers), None);
    }

    #[test]
    fn incomplete_authorization_lists_what_is_missing() {
        let mut p = with_auth("AWS4-HMAC-SHA256 Credential=ABCDEF");
        p.headers.remove("x-amz-date");
        assert_eq!(
            err(&p),
            (
                Some("IncompleteSignatureException"),
                "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256 Credential=ABCDEF".into()
            )
        );
        assert_eq!(
            err(&with_auth("Bearer")).1,
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization=Bearer"
        );
        assert_eq!(
            err(&with_auth(
                "AWS4-HMAC-SHA256 Credential=AKID /20150830/us-east-1/ecs/aws4_request, SignedHeaders=host, Signature=00"
            )).1,
            "'/20150830/us-east-1/ecs/aws4_request' not a valid key=value pair (missing equal-sign) in Authorization header: 'AWS4-HMAC-SHA256 Credential=AKID /20150830/us-east-1/ecs/aws4_request, SignedHeaders=host, Signature=00'."
        );
        assert_eq!(
            err(&with_auth(
                "AWS4-HMAC-SHA512 Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=00"
            )),
            (
                Some("IncompleteSignatureException"),
                "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512'.".into()
            )
        );
    }

    #[test]
    fn malformed_scopes() {
        let cases = [
            ("AKIDEXAMPLE/20150830/us-east-1/ecs", "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got 'AKIDEXAMPLE/20150830/us-east-1/ecs'"),
            ("AKIDEXAMPLE/20150830/us-east-1/ecs/aws4_reqest", "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws4_reqest'. "),
            ("AKIDEXAMPLE/20150830/US_EAST/ecs/aws4_request", "Credential should be scoped to a valid region, not 'US_EAST'. "),
            ("AKIDEXAMPLE/20150830//ecs/aws4_request", "Credential should be scoped to a valid region, not ''. "),
            ("AKIDEXAMPLE/20150830/us-east-1//aws4_request", "Credential should be scoped to correct service: ''. "),
        ];
        for (i, (cred, msg)) in cases.into_iter().enumerate() {
            let p = with_auth(&format!(
                "AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host;x-amz-date, Signature=00"
            ));
            // A malformed credential is an incomplete signature; a wrong scope an invalid one.
            let code = if i == 0 {
                "IncompleteSignatureException"
            } else {
                "InvalidSignatureException"
            };
            assert_eq!(err(&p), (Some(code), msg.into()));
        }
    }

    #[test]
    fn dates() {
        let mut p = signed(&[], b"{}", "us-east-1");
        p.headers
            .insert("x-amz-date", "2015-08-30T12:36:00Z".parse().unwrap());
        assert_eq!(
            err(&p),
            (Some("IncompleteSignatureException"), "Date must be in ISO-8601 'basic format'. Got '2015-08-30T12:36:00Z'. See http://en.wikipedia.org/wiki/ISO_8601".into())
        );
        p.headers
            .insert("x-amz-date", "20150831T123600Z".parse().unwrap());
        assert_eq!(
            err(&p),
            (Some("InvalidSignatureException"), "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20150830' != '20150831', from '20150831T123600Z'.".into())
        );
        let p = signed(&[], b"{}", "us-east-1");
        let e = verify(&p, b"{}", &store(), at("20150830T124101Z")).unwrap_err();
        assert_eq!(e.to_string(), "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T124101Z - 5 min.)");
        let e = verify(&p, b"{}", &store(), at("20150830T123059Z")).unwrap_err();
        assert_eq!(e.to_string(), "Signature not yet current: 20150830T123600Z is still later than 20150830T123559Z (20150830T123059Z + 5 min.)");
        assert_eq!(e.aws_code(), Some("InvalidSignatureException"));
        // Exactly five minutes either way is still accepted.
        assert!(verify(&p, b"{}", &store(), at("20150830T124100Z")).is_ok());
        assert!(verify(&p, b"{}", &store(), at("20150830T123100Z")).is_ok());
    }

    #[test]
    fn date_header_instead_of_x_amz_date() {
        // Signed with only an HTTP `Date`: the string to sign uses its basic form.
        let p = signed(
            &[("date", "Sun, 30 Aug 2015 12:36:00 GMT")],
            b"{}",
            "us-east-1",
        );
        assert!(!p.headers.contains_key("x-amz-date"));
        verify(&p, b"{}", &store(), at(DATE)).unwrap();
        // X-Amz-Date wins over Date when both are present.
        let mut q = p.clone();
        q.headers
            .insert("x-amz-date", "20150830T123601Z".parse().unwrap());
        assert_eq!(err(&q).0, Some("InvalidSignatureException"));
        let mut q = p.clone();
        q.headers
            .insert(http::header::DATE, "not a date".parse().unwrap());
        assert_eq!(
            err(&q),
            (
                Some("IncompleteSignatureException"),
                "Date must be in ISO-8601 'basic format'. Got 'not a date'. See http://en.wikipedia.org/wiki/ISO_8601".into()
            )
        );
    }

    #[test]
    fn host_must_be_signed_and_tokens_are_refused() {
        let p = with_auth(&format!(
            "AWS4-HMAC-SHA256 Credential={AKID}/20150830/us-east-1/ecs/aws4_request, SignedHeaders=x-amz-date, Signature=00"
        ));
        assert_eq!(
            err(&p),
            (
                Some("IncompleteSignatureException"),
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into()
            )
        );
        let p = signed(&[("x-amz-security-token", "abc")], b"{}", "us-east-1");
        assert_eq!(
            err(&p),
            (
                Some("UnrecognizedClientException"),
                "The security token included in the request is invalid.".into()
            )
        );
    }

    #[test]
    fn signature_problems_are_mismatches() {
        let p = signed(&[], b"{}", "us-east-1");
        let auth = p.headers[http::header::AUTHORIZATION]
            .to_str()
            .unwrap()
            .to_string();
        let base = &auth[..auth.len() - 64];
        for sig in ["", "zz", &"0".repeat(64), &"A".repeat(64), &"0".repeat(66)] {
            let q = with_auth(&format!("{base}{sig}"));
            assert_eq!(err(&q).0, Some("InvalidSignatureException"), "{sig}");
        }
        // Upper-case hex of the right signature is still the right signature.
        let q = with_auth(&format!("{base}{}", auth[auth.len() - 64..].to_uppercase()));
        assert!(verify(&q, b"{}", &store(), at(DATE)).is_ok());
        let mut q = signed(&[], b"{}", "us-east-1");
        q.headers
            .append(http::header::AUTHORIZATION, auth.parse().unwrap());
        assert_eq!(err(&q).0, Some("IncompleteSignatureException"));
    }

    #[test]
    fn extreme_clocks_do_not_panic() {
        let p = signed(&[], b"{}", "us-east-1");
        let far = Duration::from_secs(1 << 40);
        for now in [
            UNIX_EPOCH,
            UNIX_EPOCH + far,
            UNIX_EPOCH.checked_sub(far).unwrap(),
        ] {
            let e = verify(&p, b"{}", &store(), now).unwrap_err();
            assert_eq!(e.aws_code(), Some("InvalidSignatureException"));
        }
    }

    #[test]
    fn canonical_pieces() {
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("/a/./b/../c//d/"), "/a/c/d/");
        assert_eq!(normalize_path("/.."), "/");
        assert_eq!(normalize_path("/a/.."), "/");
        assert_eq!(normalize_path("/a/b/."), "/a/b/");
        assert_eq!(
            canonical_query("b=2&a=%2f&a=1&c&d=x+y&%7e=~", false),
            "a=%2F&a=1&b=2&c=&d=x%2By&~=~"
        );
        assert_eq!(
            canonical_query("d=x+y&bad=%zz%4", true),
            "bad=%25zz%254&d=x%20y"
        );
        let mut out = Vec::new();
        trim_all(b"  a   b \t c  ", &mut out);
        assert_eq!(out, b"a b \t c");
        let mut out = Vec::new();
        uri_encode("/ü b%".as_bytes(), false, &mut out);
        assert_eq!(out, b"/%C3%BC%20b%25");
    }
}
