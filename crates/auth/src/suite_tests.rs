//! The official AWS SigV4 test suite (the CRT signing suite as shipped inside the `aws-sigv4`
//! crate, a dev-dependency, so its files are in cargo's registry wherever these tests build):
//! every header-signing vector's canonical request, string to sign and signature must come out
//! exactly, and every vector whose request line is also a valid wire request must pass
//! [`crate::verify`] (or be refused, if it carries a session token).

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::sigv4::{canonical_request, signature, signing_key, string_to_sign, CanonicalInput};
use crate::time::{format_basic, parse_basic};
use crate::{AuthError, CredentialEntry, CredentialStore, Credentials};

/// `<cargo home>/registry/src/*/aws-sigv4-*/aws-signing-test-suite/v4`.
fn suite_dir() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .expect("CARGO_HOME or HOME is set");
    let mut found: Vec<PathBuf> = std::fs::read_dir(cargo_home.join("registry/src"))
        .expect("cargo registry sources exist")
        .flatten()
        .flat_map(|index| {
            std::fs::read_dir(index.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("aws-sigv4-1."))
        })
        .map(|p| p.join("aws-signing-test-suite/v4"))
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    found.pop().expect(
        "the aws-sigv4 dev-dependency's source (with its test suite) is in cargo's registry",
    )
}

struct RawRequest {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Parses the suite's `request.txt` form: request line, `Name:value` lines (with obs-fold
/// continuation lines joined by a space), blank line, body.
fn parse_request(text: &str) -> RawRequest {
    let (head, body) = match text.split_once("\n\n") {
        Some((h, b)) => (h, b),
        None => (text.trim_end_matches('\n'), ""),
    };
    let mut lines = head.lines();
    let line = lines.next().unwrap();
    let (method, rest) = line.split_once(' ').unwrap();
    let target = rest.strip_suffix(" HTTP/1.1").unwrap().to_string();
    let mut headers: Vec<(String, String)> = Vec::new();
    for l in lines {
        if l.starts_with([' ', '\t']) {
            let last = headers.last_mut().unwrap();
            last.1.push(' ');
            last.1.push_str(l.trim());
        } else {
            let (n, v) = l.split_once(':').unwrap();
            headers.push((n.to_string(), v.to_string()));
        }
    }
    RawRequest {
        method: method.to_string(),
        target,
        headers,
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn aws_sigv4_test_suite() {
    let dir = suite_dir();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("context.json").is_file())
        .collect();
    names.sort();
    assert!(
        names.len() >= 30,
        "only {} vectors in {}",
        names.len(),
        dir.display()
    );
    let (mut checked, mut verified) = (0, 0);
    for case in &names {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        if name == "get-space-normalized" {
            // Its request line is already percent-encoded and it expects the path encoded only
            // once; every non-S3 signer (botocore, aws-sigv4, which skips this vector too)
            // encodes the wire path again. `get-space-unnormalized` covers the space.
            continue;
        }
        let read = |f: &str| std::fs::read_to_string(case.join(f)).unwrap();
        let ctx: serde_json::Value = serde_json::from_str(&read("context.json")).unwrap();
        let creds = &ctx["credentials"];
        let secret = creds["secret_access_key"].as_str().unwrap();
        let akid = creds["access_key_id"].as_str().unwrap();
        let token = creds["token"].as_str();
        let region = ctx["region"].as_str().unwrap();
        let service = ctx["service"].as_str().unwrap();
        let normalize = ctx["normalize"].as_bool().unwrap();
        let sign_body = ctx["sign_body"].as_bool().unwrap_or(false);
        let ts = ctx["timestamp"].as_str().unwrap().replace(['-', ':'], "");
        let secs = parse_basic(&ts).unwrap();
        let amz_date = format_basic(secs);

        let req = parse_request(&read("request.txt"));
        let payload_hash = hex::encode(Sha256::digest(&req.body));
        let mut headers = req.headers.clone();
        headers.push(("X-Amz-Date".into(), amz_date.clone()));
        if let Some(t) = token {
            headers.push(("X-Amz-Security-Token".into(), t.into()));
        }
        if sign_body {
            headers.push(("X-Amz-Content-Sha256".into(), payload_hash.clone()));
        }
        let lookup = |n: &str| -> Vec<Vec<u8>> {
            headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_bytes().to_vec())
                .collect()
        };

        let expected_creq = read("header-canonical-request.txt");
        let signed_headers = expected_creq.lines().rev().nth(1).unwrap().to_string();
        let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
        let creq = canonical_request(&CanonicalInput {
            method: &req.method,
            path,
            query,
            signed_headers: &signed_headers,
            lookup: &lookup,
            payload_hash: &payload_hash,
            normalize_path: normalize,
            plus_as_space: false,
        });
        assert_eq!(
            String::from_utf8_lossy(&creq),
            expected_creq.trim_end_matches('\n'),
            "{name}: canonical request"
        );
        let scope = format!("{}/{region}/{service}/aws4_request", &amz_date[..8]);
        let sts = string_to_sign(&amz_date, &scope, &creq);
        assert_eq!(
            sts,
            read("header-string-to-sign.txt").trim_end_matches('\n'),
            "{name}: string to sign"
        );
        let key = signing_key(secret, &amz_date[..8], region, service);
        assert_eq!(
            signature(&key, &sts),
            read("header-signature.txt").trim(),
            "{name}: signature"
        );
        checked += 1;

        // The whole path through `verify`, where the signed request is also a wire request.
        if !normalize {
            continue;
        }
        let signed = parse_request(&read("header-signed-request.txt"));
        let mut builder = http::Request::builder()
            .method(signed.method.as_str())
            .uri(signed.target.as_str());
        for (n, v) in &signed.headers {
            builder = builder.header(n.as_str(), v.as_str());
        }
        let Ok(request) = builder.body(()) else {
            continue; // e.g. a raw space or UTF-8 in the path: not a wire request
        };
        if signed.target.bytes().any(|b| b == b'%') {
            continue; // the wire form would be encoded once more by a client
        }
        let (parts, ()) = request.into_parts();
        let store = CredentialStore::from_entries(
            PathBuf::from("suite"),
            vec![CredentialEntry {
                profile: "default".into(),
                credentials: Credentials {
                    access_key_id: akid.into(),
                    secret_access_key: secret.into(),
                },
            }],
        );
        let now = UNIX_EPOCH + Duration::from_secs(secs as u64 + 60);
        let result = crate::verify(&parts, &signed.body, &store, now);
        if signed
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("x-amz-security-token"))
        {
            assert!(
                matches!(result, Err(AuthError::UnrecognizedClient)),
                "{name}: {result:?}"
            );
        } else {
            let v = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((v.region.as_str(), v.service.as_str()), (region, service));
            verified += 1;
        }
    }
    assert!(
        checked >= 30 && verified >= 15,
        "checked {checked}, verified {verified}"
    );
}
