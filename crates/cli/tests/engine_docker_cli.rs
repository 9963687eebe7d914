//! End-to-end: the Docker CLI (a client only, on PATH here) talks to the Berth engine's API
//! for the commands whose API shapes match: run -d, ps, logs, inspect, stop, rm, images,
//! network create/connect/disconnect/rm.

mod common;

use std::process::Command;

use common::TestEngine;

fn docker(e: &TestEngine, args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(["-H", &e.host()])
        .args(args)
        .env("DOCKER_CONFIG", e.root.join("docker-config"))
        .output()
        .expect("docker client")
}

#[test]
fn docker_cli_drives_the_engine() {
    assert!(
        Command::new("docker").arg("--version").output().is_ok(),
        "the docker client is needed (scripts/setup.sh installs docker.io)"
    );
    let e = TestEngine::start();
    e.import_busybox("bb");
    let out = docker(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "viadocker",
            "-e",
            "WHO=docker",
            "bb",
            "sh",
            "-c",
            "echo hello $WHO; sleep 60",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    e.eventually(std::time::Duration::from_secs(5), "log line", || {
        !e.ok(&["logs", "viadocker"]).is_empty()
    });
    let logs = docker(&e, &["logs", "viadocker"]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout).trim(), "hello docker");
    let ps = docker(&e, &["ps"]);
    assert!(String::from_utf8_lossy(&ps.stdout).contains("viadocker"));
    let status = docker(&e, &["inspect", "-f", "{{.State.Status}}", "viadocker"]);
    assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), "running");
    // Networks: create, connect with an alias, disconnect.
    let subnet = common::free_subnet();
    let ok = |args: &[&str]| {
        let out = docker(&e, args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    ok(&["network", "create", "--subnet", &subnet, "dnet"]);
    ok(&[
        "network",
        "connect",
        "--alias",
        "dalias",
        "dnet",
        "viadocker",
    ]);
    let nets = ok(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks}}",
        "viadocker",
    ]);
    assert!(
        nets.contains("\"dnet\"") && nets.contains("dalias"),
        "{nets}"
    );
    ok(&["network", "disconnect", "dnet", "viadocker"]);
    let nets = ok(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks}}",
        "viadocker",
    ]);
    assert!(!nets.contains("\"dnet\""), "{nets}");
    let images = docker(&e, &["images"]);
    assert!(String::from_utf8_lossy(&images.stdout).contains("bb"));
    assert!(docker(&e, &["stop", "-t", "1", "viadocker"])
        .status
        .success());
    assert!(docker(&e, &["rm", "viadocker"]).status.success());
    ok(&["network", "rm", "dnet"]);
    assert_eq!(e.ok(&["ps", "-aq"]), "");
}
