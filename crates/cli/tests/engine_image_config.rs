//! End-to-end: an image's config (Env, Entrypoint, Cmd, WorkingDir, User, StopSignal,
//! Healthcheck, Labels, ExposedPorts) is honoured by `run`. The image is a `docker save`-style
//! archive written here by hand, so its config is exactly what the test says.

mod common;

use std::time::Duration;

use common::{busybox_rootfs, TestEngine};
use sha2::{Digest, Sha256};

fn tar_dir(dir: &std::path::Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap()
}

fn sha(bytes: &[u8]) -> String {
    hex_encode(&Sha256::digest(bytes))
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn configured_image(root: &std::path::Path) -> std::path::PathBuf {
    let rootfs = root.join("cfg-rootfs");
    busybox_rootfs(&rootfs);
    std::fs::create_dir_all(rootfs.join("srv/app")).unwrap();
    std::fs::write(rootfs.join("srv/app/ready"), "").unwrap();
    let layer = tar_dir(&rootfs);
    let layer_digest = sha(&layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/bin", "GREETING=from-image"],
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo $GREETING in $(pwd) as $(id -u); trap 'exit 11' USR2; while :; do sleep 0.1; done"],
            "WorkingDir": "/srv/app",
            "User": "1000",
            "StopSignal": "SIGUSR2",
            "Labels": {"org.example.role": "demo"},
            "ExposedPorts": {"8080/tcp": {}},
            "Healthcheck": {"Test": ["CMD-SHELL", "test -f /srv/app/ready"], "Interval": 200000000, "Retries": 2}
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]}
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = sha(&config_bytes);
    let manifest = serde_json::json!([{
        "Config": format!("{config_digest}.json"),
        "RepoTags": ["configured:1"],
        "Layers": [format!("{layer_digest}/layer.tar")]
    }]);
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    add(&format!("{config_digest}.json"), &config_bytes);
    add(&format!("{layer_digest}/layer.tar"), &layer);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    let archive = root.join("configured.tar");
    std::fs::write(&archive, b.into_inner().unwrap()).unwrap();
    archive
}

#[test]
fn image_config_is_honoured() {
    let e = TestEngine::start();
    let archive = configured_image(&e.root);
    e.ok(&["image", "load", "-i", archive.to_str().unwrap()]);
    let id = e.ok(&["run", "-d", "configured:1"]);
    e.eventually(Duration::from_secs(5), "first log line", || {
        !e.ok(&["logs", &id]).is_empty()
    });
    assert_eq!(e.ok(&["logs", &id]), "from-image in /srv/app as 1000");
    assert_eq!(e.inspect(&id, "{{.Config.StopSignal}}"), "SIGUSR2");
    assert_eq!(
        e.inspect(&id, "{{index .Config.Labels \"org.example.role\"}}"),
        "demo"
    );
    assert!(e
        .inspect(&id, "{{json .Config.ExposedPorts}}")
        .contains("8080/tcp"));
    e.eventually(
        Duration::from_secs(10),
        "healthy from the image's HEALTHCHECK",
        || e.inspect(&id, "{{.State.Health.Status}}") == "healthy",
    );
    // The image's stop signal is used by stop.
    e.ok(&["stop", &id]);
    assert_eq!(e.inspect(&id, "{{.State.ExitCode}}"), "11");
    // Run-time flags override the image: env by key, user, workdir, cmd.
    let out = e.ok(&[
        "run",
        "--rm",
        "-e",
        "GREETING=override",
        "-u",
        "0",
        "-w",
        "/",
        "configured:1",
        "echo $GREETING $(id -u) $(pwd)",
    ]);
    assert_eq!(out, "override 0 /");
    // --no-healthcheck disables the image's check.
    let quiet = e.ok(&["run", "-d", "--no-healthcheck", "configured:1"]);
    assert_eq!(e.inspect(&quiet, "{{json .State.Health}}"), "null");
}
