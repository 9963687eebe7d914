//! End-to-end: what a process inside a container can see and do.

mod common;

use common::TestEngine;

fn run_out(e: &TestEngine, args: &[&str]) -> String {
    let mut full = vec!["run", "--rm"];
    full.extend_from_slice(args);
    e.ok(&full)
}

#[test]
fn namespaces_hide_the_host() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    // PID 1 is the container's command, and no host process is visible.
    let out = run_out(
        &e,
        &[
            "bb",
            "sh",
            "-c",
            "echo $$; ls /proc | grep -E '^[0-9]+$' | wc -l",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "the command runs as PID 1: {out}");
    let visible: usize = lines[1].trim().parse().unwrap();
    assert!(
        visible <= 4,
        "only the container's processes are visible, saw {visible}"
    );
    // Own hostname: the short id by default, --hostname when given.
    let out = run_out(&e, &["--hostname", "box", "bb", "hostname"]);
    assert_eq!(out, "box");
    let out = e.ok(&["run", "-d", "bb", "sleep", "30"]);
    let short = &out[..12];
    assert_eq!(e.ok(&["exec", out.as_str(), "hostname"]), short);
    e.ok(&["rm", "-f", out.as_str()]);
    // Host mounts are not visible: the root is the overlay, nothing of the host's /tmp.
    let mounts = run_out(&e, &["bb", "cat", "/proc/self/mounts"]);
    assert!(
        mounts
            .lines()
            .next()
            .unwrap()
            .starts_with("overlay / overlay"),
        "{mounts}"
    );
    let points: Vec<&str> = mounts.lines().filter_map(|l| l.split(' ').nth(1)).collect();
    for p in &points {
        assert!(
            ["/", "/proc", "/dev", "/sys", "/etc"]
                .iter()
                .any(|ok| p == ok || p.starts_with(&format!("{ok}/"))),
            "unexpected mount point {p} in {points:?}"
        );
    }
    // Own network namespace (`--network none`): only loopback, and it is up.
    let links = run_out(&e, &["--network", "none", "bb", "cat", "/proc/net/dev"]);
    let ifaces: Vec<&str> = links
        .lines()
        .skip(2)
        .map(|l| l.split(':').next().unwrap().trim())
        .collect();
    assert_eq!(ifaces, vec!["lo"]);
    let ping = run_out(
        &e,
        &[
            "bb",
            "sh",
            "-c",
            "nc -l -p 7000 -e echo pong & sleep 0.3; nc 127.0.0.1 7000",
        ],
    );
    assert_eq!(ping, "pong", "loopback works inside the container");
}

#[test]
fn security_defaults_match_docker() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let status = run_out(&e, &["bb", "cat", "/proc/self/status"]);
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
            .unwrap()
    };
    // Docker's 14 default capabilities.
    assert_eq!(field("CapEff:"), "00000000a80425fb");
    assert_eq!(field("CapBnd:"), "00000000a80425fb");
    assert_eq!(field("Seccomp:"), "2", "seccomp filter mode");
    assert_eq!(field("NoNewPrivs:"), "1");
    // Seccomp and caps bite: mount and unshare are refused.
    let out = e.berth(&["run", "--rm", "bb", "mount", "-t", "tmpfs", "none", "/tmp"]);
    assert_ne!(out.status.code(), Some(0));
    let out = e.berth(&["run", "--rm", "bb", "unshare", "-n", "true"]);
    assert_ne!(out.status.code(), Some(0));
    // Masked and read-only /proc paths, read-only /sys.
    assert_eq!(
        run_out(&e, &["bb", "sh", "-c", "wc -c < /proc/timer_list"]),
        "0"
    );
    let out = e.berth(&[
        "run",
        "--rm",
        "bb",
        "sh",
        "-c",
        "echo 1 > /proc/sys/kernel/domainname",
    ]);
    assert_ne!(out.status.code(), Some(0));
    let out = e.berth(&["run", "--rm", "bb", "touch", "/sys/x"]);
    assert_ne!(out.status.code(), Some(0));
    // Minimal /dev.
    let dev = run_out(&e, &["bb", "ls", "/dev"]);
    for d in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx",
    ] {
        assert!(
            dev.split_whitespace().any(|x| x == d),
            "/dev/{d} missing: {dev}"
        );
    }
    assert!(
        !dev.split_whitespace()
            .any(|x| x == "sda" || x == "vda" || x == "mem"),
        "host devices leak: {dev}"
    );
    // cap-drop / cap-add change the set.
    let out = e.berth(&[
        "run",
        "--rm",
        "--cap-drop",
        "CHOWN",
        "bb",
        "chown",
        "1000",
        "/tmp",
    ]);
    assert_ne!(out.status.code(), Some(0), "chown without CAP_CHOWN fails");
    let ok = e.berth(&[
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        "bb",
        "mount",
        "-t",
        "tmpfs",
        "none",
        "/tmp",
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // /etc files are provided.
    assert!(run_out(&e, &["bb", "cat", "/etc/hosts"]).contains("localhost"));
    assert!(run_out(&e, &["bb", "cat", "/etc/resolv.conf"]).contains("nameserver"));
}

#[test]
fn user_workdir_env_readonly_and_tmpfs() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    assert_eq!(run_out(&e, &["-u", "1000:50", "bb", "id", "-u"]), "1000");
    assert_eq!(run_out(&e, &["-u", "user", "bb", "id", "-G"]), "1000 50");
    assert_eq!(run_out(&e, &["-w", "/work/dir", "bb", "pwd"]), "/work/dir");
    assert_eq!(
        run_out(
            &e,
            &["-e", "A=1", "-e", "B=two", "bb", "sh", "-c", "echo $A-$B"]
        ),
        "1-two"
    );
    let env_file = e.root.join("env.list");
    std::fs::write(&env_file, "# comment\nFROM_FILE=yes\n\n").unwrap();
    assert_eq!(
        run_out(
            &e,
            &[
                "--env-file",
                env_file.to_str().unwrap(),
                "bb",
                "sh",
                "-c",
                "echo $FROM_FILE"
            ]
        ),
        "yes"
    );
    assert_eq!(
        run_out(&e, &["--entrypoint", "echo", "bb", "via", "entrypoint"]),
        "via entrypoint"
    );
    let out = e.berth(&["run", "--rm", "--read-only", "bb", "touch", "/x"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "read-only rootfs refuses writes"
    );
    assert_eq!(
        run_out(
            &e,
            &[
                "--read-only",
                "--tmpfs",
                "/scratch",
                "bb",
                "sh",
                "-c",
                "echo hi > /scratch/f && cat /scratch/f"
            ]
        ),
        "hi"
    );
    let out = e.berth(&["run", "--rm", "-u", "nosuchuser", "bb", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuchuser"));
}

#[test]
fn init_reaps_and_forwards_signals() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    // With --init the command is not PID 1.
    assert_eq!(run_out(&e, &["--init", "bb", "sh", "-c", "echo $$"]), "2");
    // And a SIGTERM reaches the command (sh as PID 1 would ignore it).
    let id = e.ok(&["run", "-d", "--init", "bb", "sleep", "60"]);
    let start = std::time::Instant::now();
    e.ok(&["stop", "-t", "20", &id]);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(10),
        "stop took {:?}",
        start.elapsed()
    );
    assert_eq!(e.inspect(&id, "{{.State.ExitCode}}"), "143");
}

#[test]
fn exec_processes_are_filtered_and_the_profile_follows_capabilities() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    e.ok(&["run", "-d", "--name", "filtered", "bb", "sleep", "30"]);
    // A process started with exec runs under the container's seccomp filter too.
    let status = e.ok(&["exec", "filtered", "cat", "/proc/self/status"]);
    let seccomp = status
        .lines()
        .find(|l| l.starts_with("Seccomp:"))
        .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string());
    assert_eq!(seccomp.as_deref(), Some("2"), "{status}");
    let out = e.berth(&["exec", "filtered", "unshare", "-n", "true"]);
    assert_ne!(out.status.code(), Some(0), "unshare allowed in exec");
    // With CAP_SYS_ADMIN the profile allows unshare (each capability set gets its own
    // compiled filter); without it, it stays refused.
    let out = e.berth(&[
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        "bb",
        "unshare",
        "-n",
        "true",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = e.berth(&["run", "--rm", "bb", "unshare", "-n", "true"]);
    assert_ne!(out.status.code(), Some(0));
    e.ok(&["rm", "-f", "filtered"]);
}
