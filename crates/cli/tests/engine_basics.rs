//! End-to-end: run real containers through the real daemon and CLI.

mod common;

use std::time::Duration;

use common::TestEngine;

#[test]
fn run_prints_output_and_exits_with_the_container_code() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let out = e.berth(&[
        "run",
        "--rm",
        "bb",
        "sh",
        "-c",
        "echo hello; echo oops >&2; exit 3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("oops"));
    // --rm removed it.
    e.eventually(Duration::from_secs(5), "--rm container removed", || {
        e.ok(&["ps", "-aq"]).is_empty()
    });
}

#[test]
fn missing_command_exits_127_and_unknown_image_125() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let out = e.berth(&["run", "--rm", "bb", "no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("executable file not found"));
    let out = e.berth(&["run", "--rm", "bb", "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126));
    // --pull never: a missing image is an engine error, and nothing asks a registry (the
    // default would pull it from Docker Hub; registry_pull.rs tests that on loopback).
    let out = e.berth(&["run", "--rm", "--pull", "never", "nosuchimage", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such image"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
