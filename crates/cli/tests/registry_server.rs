//! `berth registry` over the wire: the distribution spec's endpoints with a raw HTTP client,
//! bad input and its error codes, interrupted uploads, pagination, auth, and skopeo (a
//! third-party client) copying images to and from it.

mod registry_support;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use registry_support::*;

#[test]
fn base_endpoint_and_version_header() {
    let reg = TestRegistry::start(&[]);
    let r = reg.http("GET", "/v2/", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );
}

#[test]
fn blobs_monolithic_chunked_mount_range_delete() {
    let reg = TestRegistry::start(&[]);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let d = put_blob(&reg.addr, "a/b", &data, &[]);
    assert!(reg.blob_files().contains(&d[7..].to_string()));

    let h = reg.http("HEAD", &format!("/v2/a/b/blobs/{d}"), &[], b"");
    assert_eq!(h.status, 200);
    assert_eq!(h.header("Content-Length"), Some("100000"));
    assert_eq!(h.header("Docker-Content-Digest"), Some(d.as_str()));
    let g = reg.http("GET", &format!("/v2/a/b/blobs/{d}"), &[], b"");
    assert_eq!(g.body, data);
    let rg = reg.http(
        "GET",
        &format!("/v2/a/b/blobs/{d}"),
        &[("Range", "bytes=10-19")],
        b"",
    );
    assert_eq!(rg.status, 206);
    assert_eq!(rg.body, &data[10..20]);
    assert_eq!(rg.header("Content-Range"), Some("bytes 10-19/100000"));
    let bad = reg.http(
        "GET",
        &format!("/v2/a/b/blobs/{d}"),
        &[("Range", "bytes=200000-")],
        b"",
    );
    assert_eq!(bad.status, 416);

    // Not linked into another repository until mounted.
    let other = reg.http("HEAD", &format!("/v2/c/blobs/{d}"), &[], b"");
    assert_eq!(other.status, 404);
    let m = reg.http(
        "POST",
        &format!("/v2/c/blobs/uploads/?mount={d}&from=a/b"),
        &[],
        b"",
    );
    assert_eq!(m.status, 201, "{m:?}");
    assert_eq!(
        m.header("Location"),
        Some(format!("/v2/c/blobs/{d}").as_str())
    );
    assert_eq!(
        reg.http("HEAD", &format!("/v2/c/blobs/{d}"), &[], b"")
            .status,
        200
    );
    // A mount from a repository without the blob starts a normal upload.
    let m2 = reg.http(
        "POST",
        &format!("/v2/e/blobs/uploads/?mount={d}&from=nothere"),
        &[],
        b"",
    );
    assert_eq!(m2.status, 202);

    // Chunked upload.
    let chunked: Vec<u8> = b"0123456789abcdefghij".to_vec();
    let cd = sha256(&chunked);
    let p = reg.http("POST", "/v2/x/blobs/uploads/", &[], b"");
    assert_eq!(p.status, 202);
    let loc = p.header("Location").unwrap().to_string();
    assert_eq!(p.header("Range"), Some("0-0"));
    let c1 = reg.http("PATCH", &loc, &[("Content-Range", "0-9")], &chunked[..10]);
    assert_eq!(c1.status, 202, "{c1:?}");
    assert_eq!(c1.header("Range"), Some("0-9"));
    // A chunk that does not continue where the upload is: 416 and nothing appended.
    let c_bad = reg.http("PATCH", &loc, &[("Content-Range", "5-14")], &chunked[5..15]);
    assert_eq!(c_bad.status, 416);
    let st = reg.http("GET", &loc, &[], b"");
    assert_eq!(st.status, 204);
    assert_eq!(st.header("Range"), Some("0-9"));
    let c2 = reg.http(
        "PATCH",
        &loc,
        &[("Content-Range", "10-14")],
        &chunked[10..15],
    );
    assert_eq!(c2.status, 202);
    let fin = reg.http("PUT", &format!("{loc}?digest={cd}"), &[], &chunked[15..]);
    assert_eq!(fin.status, 201, "{fin:?}");
    assert_eq!(fin.header("Docker-Content-Digest"), Some(cd.as_str()));
    assert_eq!(
        reg.http("GET", &format!("/v2/x/blobs/{cd}"), &[], b"").body,
        chunked
    );
    // The finished upload is gone.
    assert_eq!(
        reg.http("GET", &loc, &[], b"").code(),
        "BLOB_UPLOAD_UNKNOWN"
    );

    // Cancel.
    let p = reg.http("POST", "/v2/x/blobs/uploads/", &[], b"");
    let loc = p.header("Location").unwrap().to_string();
    assert_eq!(reg.http("DELETE", &loc, &[], b"").status, 204);
    assert_eq!(
        reg.http("PATCH", &loc, &[], b"zz").code(),
        "BLOB_UPLOAD_UNKNOWN"
    );

    // Delete unlinks from the repository.
    assert_eq!(
        reg.http("DELETE", &format!("/v2/c/blobs/{d}"), &[], b"")
            .status,
        202
    );
    let gone = reg.http("GET", &format!("/v2/c/blobs/{d}"), &[], b"");
    assert_eq!((gone.status, gone.code().as_str()), (404, "BLOB_UNKNOWN"));
}

#[test]
fn bad_input_gets_spec_errors() {
    let reg = TestRegistry::start(&[]);
    let before = reg.blob_files();
    // Wrong digest on a monolithic upload: DIGEST_INVALID, no blob.
    let wrong = sha256(b"something else");
    let r = reg.http(
        "POST",
        &format!("/v2/a/blobs/uploads/?digest={wrong}"),
        &[],
        b"payload",
    );
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    // Wrong digest finishing a chunked upload.
    let p = reg.http("POST", "/v2/a/blobs/uploads/", &[], b"");
    let loc = p.header("Location").unwrap().to_string();
    let r = reg.http("PUT", &format!("{loc}?digest={wrong}"), &[], b"payload");
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(reg.blob_files(), before, "no blob may appear");
    // Malformed digests and names.
    let r = reg.http("GET", "/v2/a/blobs/sha256:xyz", &[], b"");
    assert_eq!(r.code(), "DIGEST_INVALID");
    let r = reg.http("GET", "/v2/UPPER/tags/list", &[], b"");
    assert_eq!((r.status, r.code().as_str()), (400, "NAME_INVALID"));
    let r = reg.http("GET", "/v2/a/../b/tags/list", &[], b"");
    assert_eq!(r.status, 400);
    // Unknowns.
    let r = reg.http("GET", "/v2/a/manifests/nope", &[], b"");
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    let r = reg.http("GET", "/v2/none/tags/list", &[], b"");
    assert_eq!((r.status, r.code().as_str()), (404, "NAME_UNKNOWN"));
    let r = reg.http("GET", &format!("/v2/a/blobs/{wrong}"), &[], b"");
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
    let r = reg.http(
        "PATCH",
        "/v2/a/blobs/uploads/0123456789abcdef0123456789abcdef",
        &[],
        b"x",
    );
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
    let r = reg.http("PUT", "/v2/_catalog", &[], b"");
    assert_eq!((r.status, r.code().as_str()), (405, "UNSUPPORTED"));
    // A manifest referencing a blob the repository does not have.
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": wrong, "size": 3},
        "layers": [],
    });
    let r = reg.http(
        "PUT",
        "/v2/a/manifests/v1",
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        &serde_json::to_vec(&manifest).unwrap(),
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN")
    );
    let r = reg.http("PUT", "/v2/a/manifests/v1", &[], b"not json");
    assert_eq!(r.code(), "MANIFEST_INVALID");
    // A manifest put by a digest it does not have.
    let md = put_image(&reg.addr, "a", "v1", b"layer");
    let body = reg
        .http("GET", &format!("/v2/a/manifests/{md}"), &[], b"")
        .body;
    let r = reg.http("PUT", &format!("/v2/a/manifests/{wrong}"), &[], &body);
    assert_eq!(r.code(), "DIGEST_INVALID");
}

#[test]
fn interrupted_upload_leaves_no_blob_and_retry_works() {
    let reg = TestRegistry::start(&[]);
    let data = vec![7u8; 4 << 20];
    let d = sha256(&data);
    {
        let mut s = TcpStream::connect(&reg.addr).unwrap();
        let head = format!(
            "POST /v2/a/blobs/uploads/?digest={d} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            data.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&data[..1 << 20]).unwrap();
        // Dropped here: the connection closes midway.
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(!reg.blob_files().contains(&d[7..].to_string()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !list(&reg.root().join("registry/uploads")).is_empty() {
        assert!(Instant::now() < deadline, "temp upload file left behind");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        reg.http("HEAD", &format!("/v2/a/blobs/{d}"), &[], b"")
            .status,
        404
    );
    put_blob(&reg.addr, "a", &data, &[]);
    let g = reg.http("GET", &format!("/v2/a/blobs/{d}"), &[], b"");
    assert_eq!(sha256(&g.body), d);
}

#[test]
fn manifests_tags_catalog_and_pagination() {
    let reg = TestRegistry::start(&[]);
    let md = put_image(&reg.addr, "team/app", "v1", b"layer one");
    for t in ["v2", "v3", "latest"] {
        put_image(&reg.addr, "team/app", t, b"layer one");
    }
    for n in ["zeta", "alpha", "mid/x"] {
        put_image(&reg.addr, n, "1", b"l");
    }
    let r = reg.http("GET", "/v2/team/app/manifests/v1", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Docker-Content-Digest"), Some(md.as_str()));
    assert_eq!(
        r.header("Content-Type"),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    assert_eq!(sha256(&r.body), md);
    let h = reg.http("HEAD", &format!("/v2/team/app/manifests/{md}"), &[], b"");
    assert_eq!(h.status, 200);
    assert_eq!(
        h.header("Content-Length"),
        Some(r.body.len().to_string().as_str())
    );

    let p1 = reg.http("GET", "/v2/team/app/tags/list?n=2", &[], b"");
    assert_eq!(p1.json()["tags"], serde_json::json!(["latest", "v1"]));
    let link = p1.header("Link").expect("Link header").to_string();
    assert_eq!(link, "</v2/team/app/tags/list?n=2&last=v1>; rel=\"next\"");
    let p2 = reg.http("GET", "/v2/team/app/tags/list?n=2&last=v1", &[], b"");
    assert_eq!(p2.json()["tags"], serde_json::json!(["v2", "v3"]));
    assert!(reg
        .http("GET", "/v2/team/app/tags/list?n=2&last=v3", &[], b"")
        .json()["tags"]
        .as_array()
        .unwrap()
        .is_empty());
    let all = reg.http("GET", "/v2/team/app/tags/list", &[], b"");
    assert_eq!(
        all.json()["tags"],
        serde_json::json!(["latest", "v1", "v2", "v3"])
    );
    assert!(all.header("Link").is_none());

    let c = reg.http("GET", "/v2/_catalog", &[], b"");
    assert_eq!(
        c.json()["repositories"],
        serde_json::json!(["alpha", "mid/x", "team/app", "zeta"])
    );
    let c1 = reg.http("GET", "/v2/_catalog?n=3", &[], b"");
    assert_eq!(
        c1.json()["repositories"],
        serde_json::json!(["alpha", "mid/x", "team/app"])
    );
    assert_eq!(
        c1.header("Link"),
        Some("</v2/_catalog?n=3&last=team%2Fapp>; rel=\"next\"")
    );
    let c2 = reg.http("GET", "/v2/_catalog?n=3&last=team%2Fapp", &[], b"");
    assert_eq!(c2.json()["repositories"], serde_json::json!(["zeta"]));

    // An index referencing the manifest, then deletes.
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": r.body.len(),
            "platform": {"architecture": "amd64", "os": "linux"}}],
    }))
    .unwrap();
    let ir = reg.http(
        "PUT",
        "/v2/team/app/manifests/multi",
        &[("Content-Type", "application/vnd.oci.image.index.v1+json")],
        &index,
    );
    assert_eq!(ir.status, 201, "{ir:?}");
    let g = reg.http("GET", "/v2/team/app/manifests/multi", &[], b"");
    assert_eq!(
        g.header("Content-Type"),
        Some("application/vnd.oci.image.index.v1+json")
    );
    // An index referencing a manifest of another repository is refused.
    let r = reg.http("PUT", "/v2/zeta/manifests/multi", &[], &index);
    assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN");

    assert_eq!(
        reg.http("DELETE", "/v2/team/app/manifests/v3", &[], b"")
            .status,
        202
    );
    assert_eq!(
        reg.http("GET", "/v2/team/app/manifests/v3", &[], b"")
            .code(),
        "MANIFEST_UNKNOWN"
    );
    assert_eq!(
        reg.http("DELETE", &format!("/v2/team/app/manifests/{md}"), &[], b"")
            .status,
        202
    );
    assert_eq!(
        reg.http("GET", "/v2/team/app/manifests/v1", &[], b"")
            .code(),
        "MANIFEST_UNKNOWN"
    );
}

#[test]
fn basic_and_token_auth() {
    let reg = TestRegistry::start(&["--auth", "alice:secret"]);
    let r = reg.http("GET", "/v2/", &[], b"");
    assert_eq!((r.status, r.code().as_str()), (401, "UNAUTHORIZED"));
    assert!(r.header("WWW-Authenticate").unwrap().starts_with("Basic "));
    let good = format!("Basic {}", b64("alice:secret"));
    assert_eq!(
        reg.http("GET", "/v2/", &[("Authorization", &good)], b"")
            .status,
        200
    );
    let bad = format!("Basic {}", b64("alice:nope"));
    assert_eq!(
        reg.http("GET", "/v2/", &[("Authorization", &bad)], b"")
            .status,
        401
    );
    drop(reg);

    let reg = TestRegistry::start(&["--auth", "alice:secret", "--token-auth"]);
    let r = reg.http("GET", "/v2/a/tags/list", &[], b"");
    assert_eq!(r.status, 401);
    let ch = r.header("WWW-Authenticate").unwrap().to_string();
    assert!(ch.starts_with("Bearer realm=\"http://"), "{ch}");
    assert!(ch.contains("service=\"berth-registry\""), "{ch}");
    assert!(ch.contains("scope=\"repository:a:pull,push\""), "{ch}");
    let t = reg.http(
        "GET",
        "/token?service=berth-registry&scope=repository:a:pull",
        &[("Authorization", &bad)],
        b"",
    );
    assert_eq!(t.status, 401);
    let t = reg.http(
        "GET",
        "/token?service=berth-registry&scope=repository:a:pull",
        &[("Authorization", &good)],
        b"",
    );
    assert_eq!(t.status, 200);
    let token = t.json()["token"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {token}");
    let r = reg.http("GET", "/v2/", &[("Authorization", &bearer)], b"");
    assert_eq!(r.status, 200);
    // Basic credentials are not accepted on /v2/ in token mode.
    assert_eq!(
        reg.http("GET", "/v2/", &[("Authorization", &good)], b"")
            .status,
        401
    );
}

fn b64(s: &str) -> String {
    berth_b64(s.as_bytes())
}

fn berth_b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn skopeo_copies_to_and_from_the_registry() {
    let reg = TestRegistry::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let layer = tar_with("hello.txt", &vec![b'h'; 300_000]);
    oci_layout(&src, "v1", &layer);
    let dest = format!("docker://{}/skopeo/hello:v1", reg.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &dest,
    ]);
    // skopeo compresses the layer on the way, so the manifest is its own: read it back.
    let m = reg.http("GET", "/v2/skopeo/hello/manifests/v1", &[], b"");
    assert_eq!(m.status, 200);
    let md = m.header("Docker-Content-Digest").unwrap().to_string();
    let config_digest = m.json()["config"]["digest"].as_str().unwrap().to_string();
    let info: serde_json::Value =
        serde_json::from_str(&skopeo(&["inspect", "--tls-verify=false", &dest])).unwrap();
    assert_eq!(info["Digest"], md);
    assert_eq!(info["Architecture"], "amd64");
    let tags: serde_json::Value = serde_json::from_str(&skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/skopeo/hello", reg.addr),
    ]))
    .unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["v1"]));

    // And back out, byte for byte.
    let back = work.path().join("back");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &dest,
        &format!("oci:{}:v1", back.display()),
    ]);
    let got = std::fs::read(back.join("blobs/sha256").join(&md[7..])).unwrap();
    assert_eq!(sha256(&got), md);
    let config_back = std::fs::read(back.join("blobs/sha256").join(&config_digest[7..])).unwrap();
    assert_eq!(sha256(&config_back), config_digest);
    for l in m.json()["layers"].as_array().unwrap() {
        let d = l["digest"].as_str().unwrap();
        let got = std::fs::read(back.join("blobs/sha256").join(&d[7..])).unwrap();
        assert_eq!(sha256(&got), d);
    }

    // Registry to registry inside Berth (a cross-repository copy: skopeo mounts or uploads).
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &dest,
        &format!("docker://{}/other/hello:copy", reg.addr),
    ]);
    let info2: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}/other/hello:copy", reg.addr),
    ]))
    .unwrap();
    assert_eq!(info2["Digest"], md);
}

#[test]
fn skopeo_uses_the_token_flow() {
    let reg = TestRegistry::start(&["--auth", "bob:pw", "--token-auth"]);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    oci_layout(&src, "v1", &tar_with("f", b"data"));
    let dest = format!("docker://{}/auth/img:v1", reg.addr);
    let out = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", src.display()))
        .arg(&dest)
        .output()
        .unwrap();
    assert!(!out.status.success(), "anonymous push must fail");
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "bob:pw",
        &format!("oci:{}:v1", src.display()),
        &dest,
    ]);
    skopeo(&["inspect", "--tls-verify=false", "--creds", "bob:pw", &dest]);
}
