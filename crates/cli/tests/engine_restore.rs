//! End-to-end: containers outlive the engine process (live restore).

mod common;

use std::time::Duration;

use common::TestEngine;

fn pid_alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn containers_survive_an_engine_crash_and_stay_controllable() {
    let mut e = TestEngine::start();
    e.import_busybox("bb");
    let long = e.ok(&[
        "run",
        "-d",
        "--name",
        "long",
        "bb",
        "sh",
        "-c",
        "trap 'exit 5' TERM; while :; do echo beat; sleep 0.2; done",
    ]);
    let short = e.ok(&[
        "run",
        "-d",
        "--name",
        "short",
        "bb",
        "sh",
        "-c",
        "sleep 1; exit 4",
    ]);
    let pid: i32 = e.inspect(&long, "{{.State.Pid}}").parse().unwrap();
    assert!(pid_alive(pid));

    e.stop_daemon(true);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        pid_alive(pid),
        "the container keeps running without the engine"
    );

    e.spawn_daemon();
    // The running one is found again, with its pid, and still logs.
    assert_eq!(e.inspect("long", "{{.State.Status}}"), "running");
    assert_eq!(e.inspect("long", "{{.State.Pid}}"), pid.to_string());
    // The one that exited while the engine was down has its real exit code.
    assert_eq!(e.inspect("short", "{{.State.Status}}"), "exited");
    assert_eq!(e.inspect("short", "{{.State.ExitCode}}"), "4");
    let before = e.ok(&["logs", "long"]).lines().count();
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        e.ok(&["logs", "long"]).lines().count() > before,
        "logging continued"
    );
    // Still controllable: exec, stop with its handler.
    assert_eq!(e.ok(&["exec", "long", "echo", "hi"]), "hi");
    e.ok(&["stop", "long"]);
    assert_eq!(e.inspect("long", "{{.State.ExitCode}}"), "5");
    assert!(!pid_alive(pid));
    let _ = short;
}

#[test]
fn graceful_engine_restart_keeps_restart_policies() {
    let mut e = TestEngine::start();
    e.import_busybox("bb");
    let id = e.ok(&["run", "-d", "--restart", "always", "bb", "sleep", "60"]);
    let pid = e.inspect(&id, "{{.State.Pid}}");
    e.stop_daemon(false);
    e.spawn_daemon();
    assert_eq!(
        e.inspect(&id, "{{.State.Pid}}"),
        pid,
        "not restarted: the same process"
    );
    // Killed from outside while the engine runs: the policy restarts it.
    // SAFETY: killing the test's own container process.
    unsafe { libc::kill(pid.parse().unwrap(), libc::SIGKILL) };
    e.eventually(Duration::from_secs(10), "restart after kill", || {
        e.inspect(&id, "{{.State.Running}}") == "true" && e.inspect(&id, "{{.State.Pid}}") != pid
    });
}

#[test]
fn a_killed_monitor_ends_its_container_instead_of_leaking_it() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let id = e.ok(&["run", "-d", "bb", "sleep", "100"]);
    let pid: i32 = e.inspect(&id, "{{.State.Pid}}").parse().unwrap();
    let monitor = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|p| p.file_name().to_string_lossy().parse::<i32>().ok())
        .find(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.contains("__monitor") && cmd.contains(&id)
        })
        .expect("the container's monitor");
    // SAFETY: killing the test's own monitor process.
    unsafe { libc::kill(monitor, libc::SIGKILL) };
    e.eventually(
        Duration::from_secs(10),
        "the container to be marked exited",
        || e.inspect(&id, "{{.State.Status}}") == "exited",
    );
    e.eventually(
        Duration::from_secs(5),
        "the container process to be gone",
        || !pid_alive(pid),
    );
    assert!(e.inspect(&id, "{{.State.Error}}").contains("monitor"));
}
