//! End-to-end pull and push: `berth push` from one engine to a `berth registry`, `berth pull`
//! into a second engine (its own root) and `berth run` of the result; layers already present;
//! errors a user sees (unknown tag, refused connection, bad credentials, corrupt blobs);
//! `berth login`/`logout` with htpasswd (bcrypt) basic auth and the bearer token flow; a
//! download cut off midway continuing with `Range:`; the docker CLI pulling through Berth's
//! engine socket.

mod common;
mod registry_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use common::TestEngine;
use registry_support::{skopeo, TestRegistry};

/// Runs the CLI against `e` with its own Docker config dir (logins).
fn berth(e: &TestEngine, config: &Path, args: &[&str]) -> Output {
    e.cmd()
        .env("DOCKER_CONFIG", config)
        .args(args)
        .output()
        .expect("run berth")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(e: &TestEngine, config: &Path, args: &[&str]) -> String {
    let o = berth(e, config, args);
    let (out, err) = text(&o);
    assert!(
        o.status.success(),
        "berth {args:?} failed ({:?}):\nstdout: {out}\nstderr: {err}\nengine log:\n{}",
        o.status.code(),
        e.engine_log()
    );
    out
}

fn fails(e: &TestEngine, config: &Path, args: &[&str]) -> String {
    let o = berth(e, config, args);
    let (out, err) = text(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "berth {args:?} should fail with exit 1:\nstdout: {out}\nstderr: {err}"
    );
    err
}

fn config_dir(e: &TestEngine) -> PathBuf {
    let d = e.root.join("docker-config");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn blob_files(dir: &Path) -> Vec<String> {
    registry_support::list(dir)
}

/// The largest blob in a registry: the busybox layer.
fn largest_blob(reg: &TestRegistry) -> PathBuf {
    let dir = reg.root().join("content/blobs/sha256");
    blob_files(&dir)
        .into_iter()
        .map(|f| dir.join(f))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("registry has blobs")
}

#[test]
fn push_then_pull_into_a_second_engine_and_run() {
    let reg = TestRegistry::start(&[]);
    let a = TestEngine::start();
    let b = TestEngine::start();
    let (ca, cb) = (config_dir(&a), config_dir(&b));
    a.import_busybox("bb");
    let image = format!("{}/demo/bb:1", reg.addr);
    ok(&a, &ca, &["tag", "bb", &image]);

    let first = ok(&a, &ca, &["push", &image]);
    assert!(
        first.contains(&format!(
            "The push refers to repository [{}/demo/bb]",
            reg.addr
        )),
        "{first}"
    );
    assert!(first.contains(": Pushed"), "{first}");
    let digest_line = first
        .lines()
        .find(|l| l.starts_with("1: digest: sha256:"))
        .unwrap_or_else(|| panic!("no digest line: {first}"));
    let digest = digest_line.split_whitespace().nth(2).unwrap().to_string();
    let again = ok(&a, &ca, &["push", &image]);
    assert!(again.contains(": Layer already exists"), "{again}");
    assert!(
        !again.contains(": Pushed"),
        "second push uploads nothing: {again}"
    );
    assert!(again.contains(digest_line), "same manifest digest: {again}");

    let pulled = ok(&b, &cb, &["pull", &image]);
    assert!(pulled.contains("1: Pulling from demo/bb"), "{pulled}");
    assert!(pulled.contains(": Pull complete"), "{pulled}");
    assert!(pulled.contains(&format!("Digest: {digest}")), "{pulled}");
    assert!(
        pulled.contains(&format!("Status: Downloaded newer image for {image}")),
        "{pulled}"
    );
    assert_eq!(
        ok(
            &b,
            &cb,
            &["run", "--rm", &image, "echo", "pulled-and-running"]
        )
        .trim(),
        "pulled-and-running"
    );
    assert_eq!(
        a.inspect("bb", "{{.Id}}"),
        b.inspect(&image, "{{.Id}}"),
        "the image id survives the trip"
    );
    let second = ok(&b, &cb, &["pull", &image]);
    assert!(second.contains(": Already exists"), "{second}");
    assert!(!second.contains("Downloading"), "{second}");
    assert!(
        second.contains(&format!("Status: Image is up to date for {image}")),
        "{second}"
    );

    // By digest, quietly: prints the reference, and the digest resolves locally.
    let by_digest = format!("{}/demo/bb@{digest}", reg.addr);
    let q = ok(&b, &cb, &["pull", "-q", &by_digest]);
    assert_eq!(q.trim(), by_digest);
    assert_eq!(b.inspect(&by_digest, "{{.Id}}"), a.inspect("bb", "{{.Id}}"));
    assert_eq!(ok(&b, &cb, &["image", "pull", "-q", &image]).trim(), image);

    // Errors a user sees.
    let nope = format!("{}/demo/bb:nope", reg.addr);
    let err = fails(&b, &cb, &["pull", &nope]);
    assert!(err.contains(&format!("manifest unknown: {nope}")), "{err}");
    let err = fails(&b, &cb, &["pull", &format!("{}/nothere/x", reg.addr)]);
    assert!(err.contains("manifest unknown"), "{err}");
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = fails(&b, &cb, &["pull", &format!("127.0.0.1:{closed}/x:1")]);
    assert!(
        err.contains(&format!("cannot connect to registry 127.0.0.1:{closed}")),
        "{err}"
    );
    let err = fails(&a, &ca, &["push", &format!("{}/demo/missing:1", reg.addr)]);
    assert!(err.contains("does not exist locally"), "{err}");
}

#[test]
fn docker_cli_pulls_through_the_engine_socket() {
    assert!(
        Command::new("docker").arg("--version").output().is_ok(),
        "the docker client is needed (scripts/setup.sh installs docker.io)"
    );
    let reg = TestRegistry::start(&[]);
    let a = TestEngine::start();
    let b = TestEngine::start();
    let ca = config_dir(&a);
    a.import_busybox("bb");
    let image = format!("{}/viadocker:2", reg.addr);
    ok(&a, &ca, &["tag", "bb", &image]);
    ok(&a, &ca, &["push", "-q", &image]);
    let docker = |args: &[&str]| {
        Command::new("docker")
            .args(["-H", &b.host()])
            .args(args)
            .env("DOCKER_CONFIG", b.root.join("docker-cli-config"))
            .output()
            .expect("docker client")
    };
    let out = docker(&["pull", &image]);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "{stdout}\n{stderr}\n{}",
        b.engine_log()
    );
    assert!(stdout.contains("Pull complete"), "{stdout}");
    assert!(stdout.contains("Downloaded newer image"), "{stdout}");
    let images = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        String::from_utf8_lossy(&images.stdout).contains(&image),
        "{images:?}"
    );
    let missing = docker(&["pull", &format!("{}/viadocker:nope", reg.addr)]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("manifest unknown"),
        "{missing:?}"
    );
    // docker push of a new tag: the layer is already in the registry.
    let other = format!("{}/viadocker:3", reg.addr);
    assert!(docker(&["tag", &image, &other]).status.success());
    let push = docker(&["push", &other]);
    let (stdout, stderr) = text(&push);
    assert!(push.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Layer already exists"), "{stdout}");
}

fn htpasswd_file(dir: &Path, user: &str, password: &str) -> PathBuf {
    let hash = bcrypt::hash(password, 5)
        .unwrap()
        .replacen("$2b$", "$2y$", 1);
    let p = dir.join("htpasswd");
    std::fs::write(&p, format!("{user}:{hash}\n")).unwrap();
    p
}

fn login(e: &TestEngine, config: &Path, server: &str, user: &str, password: &str) -> Output {
    let mut child = e
        .cmd()
        .env("DOCKER_CONFIG", config)
        .args(["login", "-u", user, "--password-stdin", server])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn login_then_push_and_pull_with_htpasswd_and_token_auth() {
    let a = TestEngine::start();
    let b = TestEngine::start();
    a.import_busybox("bb");
    let secrets = tempfile::tempdir().unwrap();
    let htpasswd = htpasswd_file(secrets.path(), "alice", "s3cret");
    let basic = TestRegistry::start(&["--htpasswd", htpasswd.to_str().unwrap()]);
    let token = TestRegistry::start(&["--auth", "alice:s3cret", "--token-auth"]);
    for (kind, reg) in [("htpasswd", &basic), ("token", &token)] {
        let ca = a.root.join(format!("config-a-{kind}"));
        let cb = b.root.join(format!("config-b-{kind}"));
        let image = format!("{}/secure/bb:1", reg.addr);
        ok(&a, &ca, &["tag", "bb", &image]);

        let err = fails(&a, &ca, &["push", &image]);
        assert!(err.contains("unauthorized"), "{kind}: {err}");
        assert!(
            err.contains(&format!("berth login {}", reg.addr)),
            "{kind}: {err}"
        );

        let wrong = login(&a, &ca, &reg.addr, "alice", "wrong");
        assert_eq!(wrong.status.code(), Some(1), "{kind}: {wrong:?}");
        assert!(
            String::from_utf8_lossy(&wrong.stderr).contains("unauthorized"),
            "{kind}: {wrong:?}"
        );
        assert!(
            !ca.join("config.json").exists(),
            "a failed login stores nothing"
        );

        for (e, c) in [(&a, &ca), (&b, &cb)] {
            let good = login(e, c, &reg.addr, "alice", "s3cret");
            let (out, err) = text(&good);
            assert!(good.status.success(), "{kind}: {out} {err}");
            assert!(out.contains("Login Succeeded"), "{kind}: {out}");
        }
        let cfg = ca.join("config.json");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&cfg).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
        assert!(v["auths"][&reg.addr]["auth"].is_string(), "{v}");

        let pushed = ok(&a, &ca, &["push", &image]);
        assert!(pushed.contains(": Pushed"), "{kind}: {pushed}");
        let pulled = ok(&b, &cb, &["pull", &image]);
        assert!(
            pulled.contains("Downloaded newer image"),
            "{kind}: {pulled}"
        );
        assert_eq!(
            ok(&b, &cb, &["run", "--rm", &image, "echo", kind]).trim(),
            kind
        );

        let out = ok(&b, &cb, &["logout", &reg.addr]);
        assert!(out.contains("Removing login credentials"), "{out}");
        let err = fails(&b, &cb, &["pull", &image]);
        assert!(err.contains("unauthorized"), "{kind} after logout: {err}");
    }
}

#[test]
fn corrupt_blob_fails_the_pull_and_leaves_nothing() {
    let reg = TestRegistry::start(&[]);
    let a = TestEngine::start();
    let b = TestEngine::start();
    let (ca, cb) = (config_dir(&a), config_dir(&b));
    a.import_busybox("bb");
    let image = format!("{}/corrupt/bb:1", reg.addr);
    ok(&a, &ca, &["tag", "bb", &image]);
    ok(&a, &ca, &["push", &image]);
    let layer = largest_blob(&reg);
    let layer_hex = layer.file_name().unwrap().to_string_lossy().into_owned();
    let mut bytes = std::fs::read(&layer).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&layer, bytes).unwrap();

    let err = fails(&b, &cb, &["pull", &image]);
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(err.contains(&layer_hex), "names the blob: {err}");
    assert_eq!(ok(&b, &cb, &["images", "-q"]).trim(), "", "no image");
    let data = b.root.join("data");
    assert!(
        !blob_files(&data.join("content/blobs/sha256")).contains(&layer_hex),
        "the corrupt layer is not in the content store"
    );
    assert!(
        blob_files(&data.join("ingest")).is_empty(),
        "no partial download of it is kept: {:?}",
        blob_files(&data.join("ingest"))
    );
}

/// A loopback HTTP proxy in front of a registry: one request per connection, each logged;
/// the first `cuts` blob downloads are cut off after `keep` body bytes.
struct CuttingProxy {
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
    cuts: Arc<Mutex<usize>>,
}

impl CuttingProxy {
    fn start(upstream: String, cuts: usize, keep: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let cuts = Arc::new(Mutex::new(cuts));
        let (l2, c2) = (log.clone(), cuts.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { break };
                let (up, log, cuts) = (upstream.clone(), l2.clone(), c2.clone());
                std::thread::spawn(move || {
                    let _ = proxy_one(conn, &up, &log, &cuts, keep);
                });
            }
        });
        Self { addr, log, cuts }
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn proxy_one(
    mut client: TcpStream,
    upstream: &str,
    log: &Mutex<Vec<String>>,
    cuts: &Mutex<usize>,
    keep: usize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        head.push(line.trim_end().to_string());
    }
    let request_line = head.first().cloned().unwrap_or_default();
    let range = head
        .iter()
        .find(|h| h.to_ascii_lowercase().starts_with("range:"))
        .map(|h| h[6..].trim().to_string())
        .unwrap_or_default();
    log.lock()
        .unwrap()
        .push(format!("{request_line} range={range}"));
    let mut up = TcpStream::connect(upstream)?;
    let mut req = String::new();
    for h in &head {
        let lower = h.to_ascii_lowercase();
        if !lower.starts_with("connection:") {
            req.push_str(h);
            req.push_str("\r\n");
        }
    }
    req.push_str("Connection: close\r\n\r\n");
    up.write_all(req.as_bytes())?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(resp.len());
    let (head_bytes, body) = resp.split_at(split.min(resp.len()));
    let body = body.get(4..).unwrap_or_default();
    let mut out_head = String::from_utf8_lossy(head_bytes).into_owned();
    out_head = out_head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    out_head.push_str("\r\nConnection: close\r\n\r\n");
    client.write_all(out_head.as_bytes())?;
    let is_blob = request_line.starts_with("GET ") && request_line.contains("/blobs/sha256:");
    let cut = is_blob && body.len() > keep && {
        let mut c = cuts.lock().unwrap();
        if *c > 0 {
            *c -= 1;
            true
        } else {
            false
        }
    };
    if cut {
        client.write_all(&body[..keep])?;
        client.flush()?;
        let _ = client.shutdown(std::net::Shutdown::Both);
    } else {
        client.write_all(body)?;
    }
    Ok(())
}

#[test]
fn an_interrupted_download_resumes_with_range() {
    let reg = TestRegistry::start(&[]);
    let a = TestEngine::start();
    let b = TestEngine::start();
    let (ca, cb) = (config_dir(&a), config_dir(&b));
    a.import_busybox("bb");
    ok(
        &a,
        &ca,
        &["tag", "bb", &format!("{}/resume/bb:1", reg.addr)],
    );
    ok(&a, &ca, &["push", &format!("{}/resume/bb:1", reg.addr)]);
    let layer = largest_blob(&reg);
    let layer_hex = layer.file_name().unwrap().to_string_lossy().into_owned();
    let size = std::fs::metadata(&layer).unwrap().len() as usize;
    let keep = 100_000;
    assert!(
        size > 4 * keep,
        "the layer ({size} bytes) is big enough to cut"
    );

    // Every attempt of the first pull is cut: it fails and keeps what arrived.
    let proxy = CuttingProxy::start(reg.addr.clone(), 3, keep);
    let image = format!("{}/resume/bb:1", proxy.addr);
    let err = fails(&b, &cb, &["pull", &image]);
    assert!(err.contains("talking to registry"), "{err}");
    let partial = b
        .root
        .join("data/ingest")
        .join(format!("{layer_hex}.partial"));
    assert_eq!(
        std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0),
        3 * keep as u64,
        "three cut attempts, each resumed where the last stopped"
    );
    let blob_gets = |p: &CuttingProxy| -> Vec<String> {
        p.requests()
            .into_iter()
            .filter(|r| r.starts_with("GET ") && r.contains(&layer_hex))
            .collect()
    };
    assert_eq!(
        blob_gets(&proxy),
        vec![
            format!("GET /v2/resume/bb/blobs/sha256:{layer_hex} HTTP/1.1 range="),
            format!("GET /v2/resume/bb/blobs/sha256:{layer_hex} HTTP/1.1 range=bytes={keep}-"),
            format!(
                "GET /v2/resume/bb/blobs/sha256:{layer_hex} HTTP/1.1 range=bytes={}-",
                2 * keep
            ),
        ]
    );
    assert_eq!(ok(&b, &cb, &["images", "-q"]).trim(), "");

    // The next pull continues from the partial file.
    let out = ok(&b, &cb, &["pull", &image]);
    assert!(out.contains("Pull complete"), "{out}");
    assert_eq!(
        blob_gets(&proxy).last().cloned().unwrap_or_default(),
        format!(
            "GET /v2/resume/bb/blobs/sha256:{layer_hex} HTTP/1.1 range=bytes={}-",
            3 * keep
        )
    );
    assert!(
        !partial.exists(),
        "the finished download moved into the store"
    );
    assert_eq!(
        ok(&b, &cb, &["run", "--rm", &image, "echo", "resumed"]).trim(),
        "resumed"
    );
    assert_eq!(*proxy.cuts.lock().unwrap(), 0);
}

/// Pushes busybox from a scratch engine as `<registry>/<name>` and returns the image id.
fn publish_busybox(reg: &TestRegistry, name: &str) -> String {
    let a = TestEngine::start();
    let ca = config_dir(&a);
    a.import_busybox("bb");
    let image = format!("{}/{name}", reg.addr);
    ok(&a, &ca, &["tag", "bb", &image]);
    ok(&a, &ca, &["push", "-q", &image]);
    a.inspect("bb", "{{.Id}}")
}

#[test]
fn run_and_create_pull_a_missing_image_as_docker_does() {
    let reg = TestRegistry::start(&[]);
    let id = publish_busybox(&reg, "auto/bb:1");
    let image = format!("{}/auto/bb:1", reg.addr);
    let b = TestEngine::start();
    let cb = config_dir(&b);

    // --pull never: the missing image is an error, nothing is pulled.
    let o = berth(&b, &cb, &["run", "--rm", "--pull", "never", &image, "true"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(err.to_lowercase().contains("no such image"), "{err}");
    assert!(!err.contains("Unable to find image"), "{err}");

    // The default (missing): Docker's notice and progress on stderr, the container's output
    // alone on stdout.
    let o = berth(&b, &cb, &["run", "--rm", &image, "echo", "auto-pulled"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(out, "auto-pulled\n");
    assert!(
        err.contains(&format!("Unable to find image '{image}' locally")),
        "{err}"
    );
    assert!(err.contains("Pull complete"), "{err}");
    assert_eq!(b.inspect(&image, "{{.Id}}"), id);

    // Present now: no pull at all.
    let o = berth(&b, &cb, &["run", "--rm", &image, "true"]);
    let (_, err) = text(&o);
    assert!(o.status.success() && err.is_empty(), "{err}");

    // --pull always asks the registry even though the image is here.
    let o = berth(&b, &cb, &["create", "--pull", "always", &image, "true"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("Image is up to date"), "{err}");
    assert_eq!(out.trim().len(), 64, "create prints only the id: {out}");
    ok(&b, &cb, &["rm", out.trim()]);

    // `create` pulls a missing image too; -q silences the progress.
    let other = format!("{}/auto/bb:1", reg.addr).replace("auto/bb", "auto/bb2");
    publish_to(&b, &cb, &image, &other);
    ok(&b, &cb, &["rmi", &other]);
    let o = berth(
        &b,
        &cb,
        &["create", "-q", "--name", "pulled-by-create", &other, "true"],
    );
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("Pull complete"), "-q: {err}");
    ok(&b, &cb, &["rm", "pulled-by-create"]);

    // A missing image the registry does not have either: Docker's two messages, exit 125.
    let nope = format!("{}/auto/nope:1", reg.addr);
    let o = berth(&b, &cb, &["run", "--rm", &nope, "true"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(err.contains("Unable to find image"), "{err}");
    assert!(err.contains("manifest unknown"), "{err}");
    assert_eq!(
        ok(&b, &cb, &["ps", "-aq"]).trim(),
        "",
        "no container was left behind"
    );
}

/// Tags `src` (present in `e`) as `dst` and pushes it.
fn publish_to(e: &TestEngine, config: &Path, src: &str, dst: &str) {
    ok(e, config, &["tag", src, dst]);
    ok(e, config, &["push", "-q", dst]);
}

#[test]
fn docker_hub_images_come_from_the_registry_mirror() {
    let reg = TestRegistry::start(&[]);
    // Docker Hub's official images live under library/ on a mirror.
    let id = publish_busybox(&reg, "library/berth-mirror-test:7");
    let mirror = format!("http://{}", reg.addr);
    let b = TestEngine::start_with_env(&[("BERTH_REGISTRY_MIRRORS", &mirror)]);
    let cb = config_dir(&b);
    let out = ok(&b, &cb, &["pull", "berth-mirror-test:7"]);
    assert!(
        out.contains("Status: Downloaded newer image for berth-mirror-test:7"),
        "{out}"
    );
    assert_eq!(b.inspect("berth-mirror-test:7", "{{.Id}}"), id);
    assert_eq!(
        b.inspect("docker.io/library/berth-mirror-test:7", "{{.Id}}"),
        id
    );
    assert!(b.engine_log().contains("berth engine listening"));

    // A bad mirror setting stops the engine from starting, naming the value.
    let o = Command::new(common::BERTH)
        .args(["-H", "unix:///nonexistent/berth.sock", "--root"])
        .arg(b.root.join("other"))
        .args(["engine", "--registry-mirror", "mirror.example:5000"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("invalid registry mirror \"mirror.example:5000\""),
        "{err}"
    );
}

#[test]
fn concurrent_pulls_of_images_sharing_a_layer_both_succeed() {
    let reg = TestRegistry::start(&[]);
    let id = publish_busybox(&reg, "same/one:1");
    // The same layers under a second name: two pulls at once download one blob.
    let a = TestEngine::start();
    let ca = config_dir(&a);
    let one = format!("{}/same/one:1", reg.addr);
    let two = format!("{}/same/two:1", reg.addr);
    ok(&a, &ca, &["pull", "-q", &one]);
    publish_to(&a, &ca, &one, &two);

    let b = TestEngine::start();
    let cb = config_dir(&b);
    let spawn = |image: &str| {
        b.cmd()
            .env("DOCKER_CONFIG", &cb)
            .args(["pull", "-q", image])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (p1, p2) = (spawn(&one), spawn(&two));
    for p in [p1, p2] {
        let o = p.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(b.inspect(&one, "{{.Id}}"), id);
    assert_eq!(b.inspect(&two, "{{.Id}}"), id);
    let ingest = b.root.join("data/ingest");
    assert!(
        blob_files(&ingest).is_empty(),
        "no download left in {}: {:?}",
        ingest.display(),
        blob_files(&ingest)
    );
    assert_eq!(
        ok(&b, &cb, &["run", "--rm", &two, "echo", "ok"]).trim(),
        "ok"
    );
}

/// A credential helper (`docker-credential-berthtest`) that keeps one login in a file.
fn install_credential_helper(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let store = dir.join("helper-store.json");
    let script = format!(
        r#"#!/bin/sh
store={store}
case "$1" in
  get) read url
       if [ -f "$store" ] && grep -q "\"ServerURL\":\"$url\"" "$store"; then cat "$store"
       else echo "credentials not found in native keychain"; exit 1; fi ;;
  store) cat > "$store" ;;
  erase) read url; [ -f "$store" ] || {{ echo "credentials not found in native keychain"; exit 1; }}
         rm -f "$store" ;;
  *) exit 2 ;;
esac
"#,
        store = store.display()
    );
    let helper = bin.join("docker-credential-berthtest");
    std::fs::write(&helper, script).unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn logins_go_through_the_configured_credential_helper() {
    let a = TestEngine::start();
    a.import_busybox("bb");
    let secrets = tempfile::tempdir().unwrap();
    let htpasswd = htpasswd_file(secrets.path(), "alice", "s3cret");
    let reg = TestRegistry::start(&["--htpasswd", htpasswd.to_str().unwrap()]);
    let bin = install_credential_helper(secrets.path());
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let config = a.root.join("helper-config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("config.json"), r#"{"credsStore":"berthtest"}"#).unwrap();
    let run = |args: &[&str], stdin: Option<&str>| -> Output {
        let mut child = a
            .cmd()
            .env("DOCKER_CONFIG", &config)
            .env("PATH", &path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let input = stdin.unwrap_or("").to_string();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let image = format!("{}/helper/bb:1", reg.addr);
    ok(&a, &config, &["tag", "bb", &image]);

    let out = run(
        &["login", "-u", "alice", "--password-stdin", &reg.addr],
        Some("s3cret\n"),
    );
    assert!(out.status.success(), "{:?}", text(&out));
    // The secret went to the helper; the config file only lists the registry.
    let kept = std::fs::read_to_string(secrets.path().join("helper-store.json")).unwrap();
    assert!(kept.contains("\"Secret\":\"s3cret\""), "{kept}");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(config.join("config.json")).unwrap()).unwrap();
    assert_eq!(v["auths"][&reg.addr], serde_json::json!({}), "{v}");
    assert_eq!(v["credsStore"], "berthtest");

    // Push reads the login back from the helper.
    let out = run(&["push", &image], None);
    assert!(out.status.success(), "{:?}", text(&out));

    let out = run(&["logout", &reg.addr], None);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(!secrets.path().join("helper-store.json").exists());
    let out = run(&["push", &image], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("unauthorized"), "{:?}", text(&out));

    // A helper that is not installed is named in the error.
    std::fs::write(config.join("config.json"), r#"{"credsStore":"nothere"}"#).unwrap();
    let out = run(&["push", &image], None);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out).1.contains("docker-credential-nothere"),
        "{:?}",
        text(&out)
    );
}

#[test]
fn push_all_tags_pushes_every_tag_of_the_repository() {
    let a = TestEngine::start();
    let b = TestEngine::start();
    a.import_busybox("bb");
    let reg = TestRegistry::start(&[]);
    let (ca, cb) = (config_dir(&a), config_dir(&b));
    let repo = format!("{}/many/bb", reg.addr);
    for t in ["1", "2", "latest"] {
        ok(&a, &ca, &["tag", "bb", &format!("{repo}:{t}")]);
    }
    // Another repository's tag is not pushed with this one.
    ok(&a, &ca, &["tag", "bb", &format!("{}/other/bb:9", reg.addr)]);
    let out = ok(&a, &ca, &["push", "--all-tags", &repo]);
    for t in ["1", "2", "latest"] {
        assert!(out.contains(&format!("{t}: digest: sha256:")), "{out}");
        ok(&b, &cb, &["pull", &format!("{repo}:{t}")]);
    }
    let err = fails(&b, &cb, &["pull", &format!("{}/other/bb:9", reg.addr)]);
    assert!(
        err.contains("not found") || err.contains("unknown"),
        "{err}"
    );
    // A tag and --all-tags do not go together; an unknown repository is named.
    let err = fails(&a, &ca, &["push", "-a", &format!("{repo}:1")]);
    assert!(err.contains("--all-tags"), "{err}");
    let err = fails(
        &a,
        &ca,
        &["push", "-a", &format!("{}/nothing/here", reg.addr)],
    );
    assert!(err.contains("nothing/here"), "{err}");
}

/// Copies `src` to `dst` (both in the registry) with skopeo, through an OCI layout in `work`
/// holding the plain layers, so that skopeo compresses them as `format` (gzip or zstd).
fn skopeo_recompress(work: &Path, src: &str, dst: &str, format: &str) {
    let layout = format!("oci:{}:v1", work.join(format).display());
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-oci-accept-uncompressed-layers",
        &format!("docker://{src}"),
        &layout,
    ]);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-compress-format",
        format,
        &layout,
        &format!("docker://{dst}"),
    ]);
}

#[test]
fn gzip_and_zstd_compressed_layers_pull_and_run() {
    let reg = TestRegistry::start(&[]);
    publish_busybox(&reg, "plain/bb:1");
    let plain = format!("{}/plain/bb:1", reg.addr);
    let b = TestEngine::start();
    let cb = config_dir(&b);
    let work = tempfile::tempdir().unwrap();
    for (format, media_type) in [
        ("gzip", "application/vnd.oci.image.layer.v1.tar+gzip"),
        ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd"),
    ] {
        // A registry of its own: skopeo reuses a blob the destination already has instead of
        // compressing it.
        let dest = TestRegistry::start(&[]);
        let image = format!("{}/{format}/bb:1", dest.addr);
        skopeo_recompress(work.path(), &plain, &image, format);
        let manifest = dest.http("GET", &format!("/v2/{format}/bb/manifests/1"), &[], b"");
        assert_eq!(manifest.status, 200);
        assert_eq!(
            manifest.json()["layers"][0]["mediaType"],
            media_type,
            "skopeo wrote a {format} layer"
        );
        ok(&b, &cb, &["pull", "-q", &image]);
        let out = ok(
            &b,
            &cb,
            &["run", "--rm", &image, "echo", &format!("{format} ok")],
        );
        assert_eq!(out, format!("{format} ok\n"));
    }
}
