//! Requests signed by real client code must verify, and each kind of tampering must be refused
//! with AWS's code:
//!
//! - botocore (the stack under the aws CLI and boto3): an ECS client's real requests, captured
//!   before sending, plus raw `SigV4Auth` requests with paths and query strings;
//! - the aws CLI itself, against a one-shot loopback HTTP responder in this test, using a
//!   credentials file made by `CredentialStore::load_or_create`;
//! - the `aws-sigv4` Rust crate's signer.
//!
//! Python comes from `BERTH_PYTHON`, else the venv scripts/setup.sh installs
//! (`${BERTH_VENV:-/opt/berth-venv}/bin/python`, with botocore and awscli pinned in
//! tests/ecs/requirements.txt), else `python3`. Without botocore these tests fail under CI
//! (`CI` set) and are skipped with a message elsewhere.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use berth_auth::{AuthError, CredentialEntry, CredentialStore, Credentials};
use http::request::Parts;

fn venv_dir() -> PathBuf {
    std::env::var_os("BERTH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/berth-venv"))
}

/// A Python with botocore, or `None` (after saying why) when the test may be skipped.
fn python() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("BERTH_PYTHON") {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(venv_dir().join("bin/python"));
    candidates.push(PathBuf::from("python3"));
    for c in candidates {
        let ok = Command::new(&c)
            .args(["-c", "import botocore"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(c);
        }
    }
    let msg = "no python with botocore (BERTH_PYTHON, $BERTH_VENV/bin/python, python3); \
               run scripts/setup.sh to install the venv";
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

fn store_with(creds: &Credentials) -> CredentialStore {
    CredentialStore::from_entries(
        PathBuf::from("test-credentials"),
        vec![CredentialEntry {
            profile: "default".into(),
            credentials: creds.clone(),
        }],
    )
}

/// A request as a client sent it.
#[derive(Clone, Debug)]
struct Captured {
    name: String,
    method: String,
    path_and_query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Captured {
    fn parts(&self) -> Parts {
        let mut b = http::Request::builder()
            .method(self.method.as_str())
            .uri(self.path_and_query.as_str());
        for (k, v) in &self.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        b.body(()).expect("valid request").into_parts().0
    }

    fn header_mut(&mut self, name: &str) -> &mut String {
        let i = self
            .headers
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(name))
            .unwrap_or_else(|| panic!("{}: no {name} header", self.name));
        &mut self.headers[i].1
    }

    fn verify(
        &self,
        store: &CredentialStore,
        now: SystemTime,
    ) -> Result<berth_auth::VerifiedRequest, AuthError> {
        berth_auth::verify(&self.parts(), &self.body, store, now)
    }
}

/// Runs botocore_sign.py and parses its JSON lines; adds the `Host` header urllib3 sends.
fn botocore_requests(python: &Path, creds: &Credentials) -> Vec<Captured> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/botocore_sign.py");
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .spawn()
        .expect("run python");
    let input = serde_json::json!({
        "endpoint": "http://127.0.0.1:9400",
        "access_key_id": creds.access_key_id,
        "secret_access_key": creds.secret_access_key,
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "botocore_sign.py failed");
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let url = v["url"].as_str().unwrap();
            let rest = url.strip_prefix("http://").unwrap();
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let mut headers: Vec<(String, String)> = v["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| (h[0].as_str().unwrap().into(), h[1].as_str().unwrap().into()))
                .collect();
            headers.push(("Host".into(), host.into()));
            Captured {
                name: v["name"].as_str().unwrap().into(),
                method: v["method"].as_str().unwrap().into(),
                path_and_query: if path.is_empty() {
                    "/".into()
                } else {
                    path.into()
                },
                headers,
                // latin-1 text back to bytes
                body: v["body"]
                    .as_str()
                    .unwrap()
                    .chars()
                    .map(|c| c as u8)
                    .collect(),
            }
        })
        .collect()
}

fn code(r: Result<berth_auth::VerifiedRequest, AuthError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("{}: {e}", e.aws_code().unwrap_or("none")),
    }
}

#[test]
fn botocore_signed_requests_verify_and_tampering_is_refused() {
    let Some(python) = python() else { return };
    let creds = Credentials::generate();
    let store = store_with(&creds);
    let reqs = botocore_requests(&python, &creds);
    let now = SystemTime::now();
    let expected_regions = [
        ("ecs-list-clusters", "us-east-1"),
        ("ecs-create-cluster-eu-west-1", "eu-west-1"),
        ("ecs-register-task-definition", "us-west-2"),
        ("raw-get-query", "ap-southeast-2"),
        ("raw-post-headers", "us-east-1"),
    ];
    for (name, region) in expected_regions {
        let r = reqs.iter().find(|r| r.name == name).unwrap();
        let v = r
            .verify(&store, now)
            .unwrap_or_else(|e| panic!("{name}: {e} ({r:?})"));
        assert_eq!(
            (v.region.as_str(), v.service.as_str()),
            (region, "ecs"),
            "{name}"
        );
        assert_eq!(v.access_key_id, creds.access_key_id);
        v.check_service("ecs").unwrap();
    }
    let token = reqs.iter().find(|r| r.name == "ecs-session-token").unwrap();
    assert_eq!(
        code(token.verify(&store, now)),
        "UnrecognizedClientException: The security token included in the request is invalid."
    );

    let mismatch = "InvalidSignatureException: The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
    for base_name in ["ecs-create-cluster-eu-west-1", "raw-get-query"] {
        let base = reqs.iter().find(|r| r.name == base_name).unwrap().clone();
        let tampered = |f: &dyn Fn(&mut Captured)| {
            let mut r = base.clone();
            f(&mut r);
            code(r.verify(&store, now))
        };
        // Body, signed header, path, query.
        assert_eq!(tampered(&|r| r.body.push(b' ')), mismatch, "{base_name}");
        assert_eq!(
            tampered(&|r| *r.header_mut("host") = "127.0.0.1:9401".into()),
            mismatch
        );
        assert_eq!(
            tampered(&|r| r.path_and_query = r.path_and_query.replacen('/', "/x", 1)),
            mismatch
        );
        assert_eq!(
            tampered(&|r| r
                .path_and_query
                .push_str(if r.path_and_query.contains('?') {
                    "&extra=1"
                } else {
                    "?extra=1"
                })),
            mismatch
        );
        // An unsigned header may change; a signed one may not.
        assert_eq!(
            tampered(&|r| r.headers.push(("X-Unsigned".into(), "1".into()))),
            "ok"
        );
        // Date: a second later is another string to sign.
        assert_eq!(
            tampered(&|r| {
                let d = r.header_mut("x-amz-date");
                let last = d.pop().unwrap();
                let s = d.pop().unwrap();
                d.push(if s == '9' { '8' } else { (s as u8 + 1) as char });
                d.push(last);
            }),
            mismatch
        );
        // Region in the scope.
        assert_eq!(
            tampered(&|r| {
                let a = r.header_mut("authorization");
                *a = a
                    .replace("/eu-west-1/", "/us-east-1/")
                    .replace("/ap-southeast-2/", "/us-east-1/");
            }),
            mismatch
        );
        // Signature itself.
        assert_eq!(
            tampered(&|r| {
                let a = r.header_mut("authorization");
                let flipped = if a.ends_with('0') { '1' } else { '0' };
                a.pop();
                a.push(flipped);
            }),
            mismatch
        );
        // Unknown key id.
        assert_eq!(
            tampered(&|r| {
                let a = r.header_mut("authorization");
                *a = a.replace("Credential=AKIA", "Credential=AKIB");
            }),
            "UnrecognizedClientException: The security token included in the request is invalid."
        );
        // No Authorization; incomplete Authorization.
        assert_eq!(
            tampered(&|r| r
                .headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"))),
            "MissingAuthenticationTokenException: Missing Authentication Token"
        );
        let incomplete = tampered(&|r| {
            let a = r.header_mut("authorization");
            *a = a[..a.find(", Signature=").unwrap()].to_string();
        });
        assert!(
            incomplete.starts_with(
                "IncompleteSignatureException: Authorization header requires 'Signature' parameter. Authorization=AWS4-HMAC-SHA256 Credential="
            ),
            "{incomplete}"
        );
        // Wrong secret for the right key id.
        let other = store_with(&Credentials {
            access_key_id: creds.access_key_id.clone(),
            secret_access_key: Credentials::generate().secret_access_key,
        });
        assert_eq!(code(base.verify(&other, now)), mismatch);
        // Clock: just inside 5 minutes either way passes, beyond is refused.
        let date = base
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-date"))
            .unwrap()
            .1
            .clone();
        let signed_at = now - Duration::from_secs(3); // botocore signed moments ago
        assert_eq!(
            code(base.verify(&store, signed_at + Duration::from_secs(240))),
            "ok"
        );
        let late = code(base.verify(&store, now + Duration::from_secs(600)));
        assert!(
            late.starts_with(&format!(
                "InvalidSignatureException: Signature expired: {date} is now earlier than "
            )) && late.ends_with(" - 5 min.)"),
            "{late}"
        );
        let early = code(base.verify(&store, now - Duration::from_secs(600)));
        assert!(
            early.starts_with(&format!(
                "InvalidSignatureException: Signature not yet current: {date} is still later than "
            )) && early.ends_with(" + 5 min.)"),
            "{early}"
        );
    }
}

/// Reads one HTTP/1.1 request from a client and answers it with `body`.
fn serve_one(listener: &TcpListener, body: &str) -> Captured {
    let (stream, _) = listener.accept().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let mut it = line.split_whitespace();
    let method = it.next().unwrap().to_string();
    let target = it.next().unwrap().to_string();
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut l = String::new();
        reader.read_line(&mut l).unwrap();
        let l = l.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        if k.eq_ignore_ascii_case("content-length") {
            len = v.trim().parse().unwrap();
        }
        headers.push((k.to_string(), v.trim().to_string()));
    }
    let mut req_body = vec![0; len];
    reader.read_exact(&mut req_body).unwrap();
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    Captured {
        name: "aws-cli".into(),
        method,
        path_and_query: target,
        headers,
        body: req_body,
    }
}

#[test]
fn aws_cli_requests_with_the_created_credentials_file_verify() {
    let aws = venv_dir().join("bin/aws");
    if !aws.exists() {
        let msg = format!("{} missing; run scripts/setup.sh", aws.display());
        if std::env::var_os("CI").is_some() {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (store, created) = CredentialStore::load_or_create(&dir.path().join("server")).unwrap();
    assert!(created);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let run = |args: &[&str]| {
        Command::new(&aws)
            .args([
                "--endpoint-url",
                &endpoint,
                "--region",
                "eu-central-1",
                "ecs",
            ])
            .args(args)
            .env("AWS_SHARED_CREDENTIALS_FILE", store.path())
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    for (args, reply) in [
        (&["list-clusters"][..], r#"{"clusterArns":[]}"#),
        (
            &[
                "create-cluster",
                "--cluster-name",
                "démo",
                "--tags",
                "key=a,value=b c",
            ][..],
            r#"{"cluster":{"clusterName":"x"}}"#,
        ),
    ] {
        let mut child = run(args);
        let req = serve_one(&listener, reply);
        assert!(child.wait().unwrap().success(), "aws {args:?}");
        let v = req
            .verify(&store, SystemTime::now())
            .unwrap_or_else(|e| panic!("aws {args:?}: {e} ({req:?})"));
        assert_eq!(
            (v.region.as_str(), v.service.as_str()),
            ("eu-central-1", "ecs")
        );
    }
}

fn sign_with_aws_sigv4(
    creds: &Credentials,
    token: Option<&str>,
    uri: &str,
    body: &[u8],
    checksum_header: bool,
    time: SystemTime,
) -> (Parts, Vec<u8>) {
    use aws_sigv4::http_request::{
        sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
    };
    use aws_sigv4::sign::v4;

    let identity = aws_credential_types::Credentials::new(
        &creds.access_key_id,
        &creds.secret_access_key,
        token.map(str::to_string),
        None,
        "test",
    )
    .into();
    let mut settings = SigningSettings::default();
    if checksum_header {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("sa-east-1")
        .name("ecs")
        .time(time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let mut request = http::Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "x-amz-target",
            "AmazonEC2ContainerServiceV20141113.ListClusters",
        )
        .body(body.to_vec())
        .unwrap();
    let headers: Vec<(&str, &str)> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
        .collect();
    let signable =
        SignableRequest::new("POST", uri, headers.into_iter(), SignableBody::Bytes(body)).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    instructions.apply_to_request_http1x(&mut request);
    // The server sees origin-form targets and the Host header, as hyper hands them over.
    let host = request.uri().authority().unwrap().to_string();
    let pq = request.uri().path_and_query().unwrap().to_string();
    let (mut parts, body) = request.into_parts();
    parts.uri = pq.parse().unwrap();
    parts
        .headers
        .insert(http::header::HOST, host.parse().unwrap());
    (parts, body)
}

#[test]
fn aws_sigv4_crate_signed_requests_verify() {
    let creds = Credentials::generate();
    let store = store_with(&creds);
    let now = SystemTime::now();
    for (uri, checksum) in [
        ("http://127.0.0.1:9400/", false),
        ("http://127.0.0.1:9400/", true),
        (
            "http://localhost:8080/a/b%20c/?z=1&a=%2F&plus=a+b&sp=x%20y&e=",
            false,
        ),
        ("http://localhost/./x/../y//z", true),
    ] {
        let body = br#"{"maxResults": 10}"#;
        let (parts, body) = sign_with_aws_sigv4(&creds, None, uri, body, checksum, now);
        let v = berth_auth::verify(&parts, &body, &store, now)
            .unwrap_or_else(|e| panic!("{uri} checksum={checksum}: {e} {parts:?}"));
        assert_eq!(
            (v.region.as_str(), v.service.as_str()),
            ("sa-east-1", "ecs")
        );
        let mut changed = body.clone();
        changed[0] = b' ';
        assert!(matches!(
            berth_auth::verify(&parts, &changed, &store, now),
            Err(AuthError::SignatureMismatch)
        ));
    }
    let (parts, body) = sign_with_aws_sigv4(
        &creds,
        Some("token"),
        "http://127.0.0.1:9400/",
        b"{}",
        false,
        now,
    );
    let err = berth_auth::verify(&parts, &body, &store, now).unwrap_err();
    assert_eq!(err.aws_code(), Some("UnrecognizedClientException"));
    assert_eq!(err.http_status(), 400);
}
