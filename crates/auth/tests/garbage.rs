//! No input makes verification or credential parsing panic.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_auth::{CredentialEntry, CredentialStore, Credentials};
use proptest::prelude::*;

fn store() -> CredentialStore {
    CredentialStore::from_entries(
        PathBuf::from("x"),
        vec![CredentialEntry {
            profile: "default".into(),
            credentials: Credentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "secret".into(),
            },
        }],
    )
}

/// Authorization-ish strings: real pieces glued in random order with junk.
fn auth_value() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"AWS4-HMAC-SHA256 ".to_vec()),
        Just(b"Credential=AKIDEXAMPLE/20150830/us-east-1/ecs/aws4_request".to_vec()),
        Just(b"Credential=".to_vec()),
        Just(b"Credential=/////".to_vec()),
        Just(b"SignedHeaders=host;x-amz-date".to_vec()),
        Just(b"SignedHeaders=;;;".to_vec()),
        Just(b"Signature=".to_vec()),
        Just(
            b"Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_vec()
        ),
        Just(b", ".to_vec()),
        Just(b"=".to_vec()),
        Just(b"\t".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|v| v.concat())
}

fn date_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"20150830T123600Z".to_vec()),
        Just(b"99999999T999999Z".to_vec()),
        Just(b"00000101T000000Z".to_vec()),
        Just(b"Sun, 30 Aug 2015 12:36:00 GMT".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..20),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn verify_never_panics(
        auth in auth_value(),
        date in date_value(),
        use_date_header in any::<bool>(),
        path in "(/|[a-z]|\\.|%|%2|%zz|\\?|&|=|\\+){0,12}",
        extra_name in "[a-z-]{1,8}",
        extra_value in proptest::collection::vec(any::<u8>(), 0..16),
        body in proptest::collection::vec(any::<u8>(), 0..32),
        now_secs in prop_oneof![Just(1_440_938_160u64), any::<u32>().prop_map(u64::from), Just(u64::MAX / 4)],
    ) {
        let mut b = http::Request::builder().method("POST");
        let uri = format!("/{path}");
        if uri.parse::<http::Uri>().is_ok() {
            b = b.uri(uri);
        }
        let (mut parts, ()) = b.body(()).unwrap().into_parts();
        let hv = |v: &[u8]| http::HeaderValue::from_bytes(v).ok();
        if let Some(v) = hv(&auth) {
            parts.headers.insert(http::header::AUTHORIZATION, v);
        }
        if let Some(v) = hv(&date) {
            let name = if use_date_header { http::header::DATE } else { http::HeaderName::from_static("x-amz-date") };
            parts.headers.insert(name, v);
        }
        if let (Ok(n), Some(v)) = (http::HeaderName::from_bytes(extra_name.as_bytes()), hv(&extra_value)) {
            parts.headers.append(n, v);
        }
        parts.headers.insert(http::header::HOST, http::HeaderValue::from_static("h"));
        let now = UNIX_EPOCH.checked_add(Duration::from_secs(now_secs)).unwrap_or(SystemTime::now());
        let r = berth_auth::verify(&parts, &body, &store(), now);
        if let Err(e) = r {
            prop_assert!(e.aws_code().is_some());
            prop_assert_eq!(e.http_status(), 400);
        }
        let _ = berth_auth::scope_region(&parts.headers);
    }

    #[test]
    fn credential_files_never_panic(bytes in proptest::collection::vec(
        prop_oneof![
            Just(b"[default]\n".to_vec()),
            Just(b"[profile x]\n".to_vec()),
            Just(b"aws_access_key_id = A\n".to_vec()),
            Just(b"aws_secret_access_key=s\n".to_vec()),
            Just(b"=\n".to_vec()),
            Just(b"[".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..10),
        ], 0..10).prop_map(|v| v.concat())
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(&path, &bytes).unwrap();
        match CredentialStore::load(&path) {
            Ok(s) => prop_assert!(!s.entries().is_empty()),
            Err(e) => prop_assert!(e.to_string().contains("line ")),
        }
    }
}
