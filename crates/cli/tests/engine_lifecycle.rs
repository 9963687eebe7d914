//! End-to-end: logs, stop, kill, restart policies, health checks, exec, wait.

mod common;

use std::time::{Duration, Instant};

use common::TestEngine;

#[test]
fn logs_keep_order_and_streams() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let id = e.ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        "bb",
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo out$i; sleep 0.05; echo err$i >&2; sleep 0.05; done",
    ]);
    e.ok(&["wait", &id]);
    let out = e.berth(&["logs", "talker"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "out1\nout2\nout3\nout4\nout5\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "err1\nerr2\nerr3\nerr4\nerr5\n"
    );
    let tail = e.berth(&["logs", "--tail", "2", "talker"]);
    let combined = format!(
        "{}{}",
        String::from_utf8_lossy(&tail.stdout),
        String::from_utf8_lossy(&tail.stderr)
    );
    assert_eq!(combined.lines().count(), 2, "{combined}");
    assert!(combined.contains("out5") && combined.contains("err5"));
    let ts = e.ok(&["logs", "-t", "talker"]);
    let first = ts.lines().next().unwrap();
    let stamp = first.split(' ').next().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
        "timestamped: {first}"
    );
    // Interleaving across streams is kept in the log file.
    let log = std::fs::read_to_string(
        e.root
            .join("data/containers")
            .join(&id)
            .join("container.log"),
    )
    .unwrap();
    let order: Vec<String> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["log"]
                .as_str()
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    assert_eq!(
        order,
        ["out1", "err1", "out2", "err2", "out3", "err3", "out4", "err4", "out5", "err5"]
    );
}

#[test]
fn logs_follow_streams_until_exit() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let id = e.ok(&[
        "run",
        "-d",
        "bb",
        "sh",
        "-c",
        "for i in 1 2 3; do echo tick$i; sleep 0.3; done",
    ]);
    let start = Instant::now();
    let out = e.ok(&["logs", "-f", &id]);
    assert_eq!(out, "tick1\ntick2\ntick3");
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "followed while running"
    );
}

#[test]
fn stop_waits_the_grace_period_then_kills() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    // Handles SIGTERM: exits promptly with its own code.
    let polite = e.ok(&[
        "run",
        "-d",
        "bb",
        "sh",
        "-c",
        "trap 'exit 7' TERM; while :; do sleep 0.1; done",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    e.ok(&["stop", "-t", "10", &polite]);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(e.inspect(&polite, "{{.State.ExitCode}}"), "7");
    // PID 1 without a handler ignores SIGTERM: killed after the timeout.
    let stubborn = e.ok(&["run", "-d", "bb", "sleep", "100"]);
    let t = Instant::now();
    e.ok(&["stop", "-t", "1", &stubborn]);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "took {took:?}"
    );
    assert_eq!(e.inspect(&stubborn, "{{.State.ExitCode}}"), "137");
    assert_eq!(e.inspect(&stubborn, "{{.State.Status}}"), "exited");
    // The image/--stop-signal is used.
    let usr1 = e.ok(&[
        "run",
        "-d",
        "--stop-signal",
        "USR1",
        "bb",
        "sh",
        "-c",
        "trap 'exit 9' USR1; while :; do sleep 0.1; done",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    e.ok(&["stop", &usr1]);
    assert_eq!(e.inspect(&usr1, "{{.State.ExitCode}}"), "9");
    // kill -s delivers the named signal.
    let k = e.ok(&[
        "run",
        "-d",
        "bb",
        "sh",
        "-c",
        "trap 'exit 3' HUP; while :; do sleep 0.1; done",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    e.ok(&["kill", "-s", "HUP", &k]);
    assert_eq!(e.ok(&["wait", &k]), "3");
    let out = e.berth(&["kill", &k]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "killing a stopped container is an error"
    );
}

#[test]
fn restart_policy_retries_with_backoff() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let t = Instant::now();
    let id = e.ok(&[
        "run",
        "-d",
        "--restart",
        "on-failure:3",
        "bb",
        "sh",
        "-c",
        "date +%s%N >> /tmp/starts; exit 1",
    ]);
    e.eventually(Duration::from_secs(20), "three restarts", || {
        e.inspect(&id, "{{.RestartCount}}") == "3"
            && e.inspect(&id, "{{.State.Status}}") == "exited"
    });
    // Backoff 100 + 200 + 400 ms between the four runs.
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(e.inspect(&id, "{{.State.ExitCode}}"), "1");
    // on-failure does not restart a clean exit; always does.
    let clean = e.ok(&["run", "-d", "--restart", "on-failure", "bb", "true"]);
    e.ok(&["wait", &clean]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(e.inspect(&clean, "{{.RestartCount}}"), "0");
    let always = e.ok(&["run", "-d", "--restart", "always", "bb", "true"]);
    e.eventually(Duration::from_secs(10), "always restarts", || {
        e.inspect(&always, "{{.RestartCount}}")
            .parse::<u32>()
            .unwrap_or(0)
            >= 2
    });
    // An explicit stop ends the cycle.
    e.ok(&["stop", &always]);
    std::thread::sleep(Duration::from_millis(800));
    let count = e.inspect(&always, "{{.RestartCount}}");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        e.inspect(&always, "{{.RestartCount}}"),
        count,
        "no restarts after stop"
    );
    assert_eq!(e.inspect(&always, "{{.State.Running}}"), "false");
}

#[test]
fn health_checks_move_between_states() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let id = e.ok(&[
        "run",
        "-d",
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "--health-timeout",
        "2s",
        "bb",
        "sleep",
        "60",
    ]);
    assert_eq!(e.inspect(&id, "{{.State.Health.Status}}"), "starting");
    e.eventually(Duration::from_secs(10), "unhealthy", || {
        e.inspect(&id, "{{.State.Health.Status}}") == "unhealthy"
    });
    let ps = e.ok(&["ps"]);
    assert!(ps.contains("(unhealthy)"), "{ps}");
    e.ok(&["exec", &id, "touch", "/tmp/ok"]);
    e.eventually(Duration::from_secs(10), "healthy", || {
        e.inspect(&id, "{{.State.Health.Status}}") == "healthy"
    });
    assert!(e.ok(&["ps"]).contains("(healthy)"));
    assert_eq!(e.inspect(&id, "{{.State.Health.FailingStreak}}"), "0");
}

#[test]
fn exec_runs_in_the_container_with_options() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let id = e.ok(&["run", "-d", "-e", "BASE=1", "bb", "sleep", "60"]);
    assert_eq!(e.ok(&["exec", &id, "sh", "-c", "echo $BASE"]), "1");
    assert_eq!(
        e.ok(&[
            "exec",
            "-e",
            "X=y",
            "-w",
            "/tmp",
            "-u",
            "1000",
            &id,
            "sh",
            "-c",
            "echo $X $(pwd) $(id -u)"
        ]),
        "y /tmp 1000"
    );
    let out = e.berth(&["exec", &id, "sh", "-c", "echo to-err >&2; exit 42"]);
    assert_eq!(out.status.code(), Some(42));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "to-err");
    let out = e.berth(&["exec", &id, "nope-cmd"]);
    assert_eq!(out.status.code(), Some(127));
    // Exec'd processes share the container's PID namespace.
    let ps = e.ok(&["exec", &id, "ps"]);
    assert!(ps.contains("sleep 60"), "{ps}");
    let top = e.ok(&["top", &id]);
    assert!(top.contains("sleep 60"), "{top}");
    let stats = e.ok(&["stats", "--no-stream", &id]);
    assert!(stats.contains(&id[..12]), "{stats}");
}
