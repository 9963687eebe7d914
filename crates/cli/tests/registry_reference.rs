//! Pull and push against a third-party server: Debian's `docker-registry` (the reference
//! registry, distribution/distribution) on a loopback port of its own with filesystem storage
//! in a temp dir — anonymous, and with htpasswd (bcrypt) basic auth.
//!
//! The binary comes from scripts/setup.sh. Without it the tests fail in CI (`CI` set) and are
//! skipped elsewhere with a loud message.

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TestEngine;

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A `docker-registry serve` child; killed (and its storage removed) on drop.
struct ReferenceRegistry {
    dir: tempfile::TempDir,
    addr: String,
    child: Child,
}

impl ReferenceRegistry {
    /// None (after saying so loudly) when the binary is missing outside CI.
    fn start(htpasswd: Option<&Path>) -> Option<Self> {
        if !Path::new(REGISTRY_BIN).exists() {
            let msg = format!(
                "{REGISTRY_BIN} is missing: install Debian's docker-registry (scripts/setup.sh)"
            );
            if std::env::var_os("CI").is_some() {
                panic!("{msg}");
            }
            eprintln!("\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let auth = match htpasswd {
            Some(p) => format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                p.display()
            ),
            None => String::new(),
        };
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{auth}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        let reg = Self { dir, addr, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&reg.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not come up: {}",
                reg.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(reg)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for ReferenceRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn berth(e: &TestEngine, config: &Path, args: &[&str]) -> Output {
    e.cmd()
        .env("DOCKER_CONFIG", config)
        .args(args)
        .output()
        .expect("run berth")
}

fn ok(e: &TestEngine, config: &Path, args: &[&str], reg: &ReferenceRegistry) -> String {
    let o = berth(e, config, args);
    assert!(
        o.status.success(),
        "berth {args:?} failed ({:?}):\nstdout: {}\nstderr: {}\nregistry log:\n{}\nengine log:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        reg.log(),
        e.engine_log()
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails(e: &TestEngine, config: &Path, args: &[&str]) -> String {
    let o = berth(e, config, args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "berth {args:?} should fail: {o:?}"
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn config_dir(e: &TestEngine, name: &str) -> PathBuf {
    let d = e.root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn push_pull_and_run_through_the_reference_registry() {
    let Some(reg) = ReferenceRegistry::start(None) else {
        return;
    };
    let a = TestEngine::start();
    let b = TestEngine::start();
    let (ca, cb) = (config_dir(&a, "cfg"), config_dir(&b, "cfg"));
    a.import_busybox("bb");
    let image = format!("{}/ref/bb:1", reg.addr);
    ok(&a, &ca, &["tag", "bb", &image], &reg);
    let pushed = ok(&a, &ca, &["push", &image], &reg);
    assert!(pushed.contains(": Pushed"), "{pushed}");
    let digest = pushed
        .lines()
        .find_map(|l| l.strip_prefix("1: digest: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest line: {pushed}"))
        .to_string();
    let again = ok(&a, &ca, &["push", &image], &reg);
    assert!(again.contains("Layer already exists"), "{again}");
    // Another repository of the same registry: the layer is mounted, not uploaded.
    let other = format!("{}/ref/other:1", reg.addr);
    ok(&a, &ca, &["tag", "bb", &other], &reg);
    let mounted = ok(&a, &ca, &["push", &other], &reg);
    assert!(mounted.contains("Mounted from ref/bb"), "{mounted}");

    let pulled = ok(&b, &cb, &["pull", &image], &reg);
    assert!(pulled.contains("Pull complete"), "{pulled}");
    assert!(pulled.contains(&format!("Digest: {digest}")), "{pulled}");
    assert_eq!(
        ok(
            &b,
            &cb,
            &["run", "--rm", &image, "echo", "via-reference-registry"],
            &reg
        )
        .trim(),
        "via-reference-registry"
    );
    let second = ok(&b, &cb, &["pull", &image], &reg);
    assert!(second.contains("Image is up to date"), "{second}");
    let by_digest = format!("{}/ref/other@{digest}", reg.addr);
    let q = ok(&b, &cb, &["pull", "-q", &by_digest], &reg);
    assert_eq!(q.trim(), by_digest);
    let nope = format!("{}/ref/bb:nope", reg.addr);
    let err = fails(&b, &cb, &["pull", &nope]);
    assert!(err.contains(&format!("manifest unknown: {nope}")), "{err}");
}

#[test]
fn htpasswd_login_push_and_pull_with_the_reference_registry() {
    let secrets = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("pa55word", 5)
        .unwrap()
        .replacen("$2b$", "$2y$", 1);
    let htpasswd = secrets.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("carol:{hash}\n")).unwrap();
    let Some(reg) = ReferenceRegistry::start(Some(&htpasswd)) else {
        return;
    };
    let a = TestEngine::start();
    let b = TestEngine::start();
    let (ca, cb) = (config_dir(&a, "cfg"), config_dir(&b, "cfg"));
    a.import_busybox("bb");
    let image = format!("{}/private/bb:1", reg.addr);
    ok(&a, &ca, &["tag", "bb", &image], &reg);
    let err = fails(&a, &ca, &["push", &image]);
    assert!(err.contains("unauthorized"), "{err}");
    assert!(err.contains(&format!("berth login {}", reg.addr)), "{err}");
    let err = fails(&a, &ca, &["login", "-u", "carol", "-p", "nope", &reg.addr]);
    assert!(err.contains("unauthorized"), "{err}");
    for (e, c) in [(&a, &ca), (&b, &cb)] {
        let mut child = e
            .cmd()
            .env("DOCKER_CONFIG", c)
            .args(["login", "-u", "carol", "--password-stdin", &reg.addr])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"pa55word\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"),
            "{out:?}\n{}",
            reg.log()
        );
    }
    let pushed = ok(&a, &ca, &["push", &image], &reg);
    assert!(pushed.contains(": Pushed"), "{pushed}");
    ok(&b, &cb, &["pull", &image], &reg);
    assert_eq!(
        ok(&b, &cb, &["run", "--rm", &image, "echo", "private"], &reg).trim(),
        "private"
    );
}
