//! End-to-end: the event stream reports lifecycle changes.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::TestEngine;

#[test]
fn events_report_the_container_lifecycle() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let since = chrono::Utc::now().timestamp().to_string();
    let out = e.berth(&["run", "--name", "ev", "bb", "sh", "-c", "exit 2"]);
    assert_eq!(out.status.code(), Some(2));
    e.ok(&["rm", "ev"]);
    // Replay from `since` up to now.
    let until = (chrono::Utc::now().timestamp() + 1).to_string();
    let mut child = e
        .cmd()
        .args([
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--format",
            "{{json .}}",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let reader = BufReader::new(child.stdout.take().unwrap());
    let mut actions = Vec::new();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        actions.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = actions.join("\n");
    for action in ["create", "start", "die", "destroy"] {
        assert!(
            text.contains(action),
            "event {action} missing from:\n{text}"
        );
    }
    assert!(
        text.contains("exitCode") && text.contains('2'),
        "die carries the exit code:\n{text}"
    );
}
