//! End-to-end: resource limits enforced by the kernel through the container's cgroup.

mod common;

use common::TestEngine;

#[test]
fn memory_limit_oom_kills_and_inspect_says_so() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    // dd allocates and touches a 64 MiB buffer: over a 16 MiB limit.
    let out = e.berth(&[
        "run",
        "--name",
        "hog",
        "-m",
        "16m",
        "bb",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(e.inspect("hog", "{{.State.OOMKilled}}"), "true");
    assert_eq!(
        e.inspect("hog", "{{.HostConfig.Memory}}"),
        (16 * 1024 * 1024).to_string()
    );
    // The same work under a generous limit succeeds and is not marked.
    let ok = e.berth(&[
        "run",
        "--name",
        "fine",
        "-m",
        "256m",
        "bb",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(e.inspect("fine", "{{.State.OOMKilled}}"), "false");
    // Too small a limit is refused up front.
    let bad = e.berth(&["run", "--rm", "-m", "1m", "bb", "true"]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("6MB"));
}

#[test]
fn pids_limit_holds_against_a_fork_loop() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    // Try to start 60 sleepers under a limit of 20 processes.
    // Only shell builtins run after the loop: no fork is needed to report.
    let out = e.berth(&[
        "run", "--rm", "--pids-limit", "20", "bb", "sh", "-c",
        "sh -c 'for i in $(seq 60); do sleep 5 & done' 2>/dev/null; \
         read m < /sys/fs/cgroup/pids/pids.max 2>/dev/null || read m < /sys/fs/cgroup/pids.max; echo $m; \
         c=0; for p in /proc/[0-9]*; do c=$((c+1)); done; echo $c",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"20"), "pids.max is 20: {text}");
    let running: usize = lines.last().unwrap().trim().parse().unwrap();
    assert!(running <= 20, "at most 20 processes ran, saw {running}");
    assert!(
        running >= 10,
        "the limit, not something else, stopped the loop: {running}"
    );
}

#[test]
fn cpu_quota_and_shares_reach_the_cgroup() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let id = e.ok(&[
        "run",
        "-d",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "bb",
        "sleep",
        "30",
    ]);
    let v1 = std::path::Path::new("/sys/fs/cgroup/cpu/berth").join(&id);
    let (quota, period, shares) = if v1.exists() {
        let r = |f: &str| {
            std::fs::read_to_string(v1.join(f))
                .unwrap()
                .trim()
                .to_string()
        };
        (
            r("cpu.cfs_quota_us"),
            r("cpu.cfs_period_us"),
            r("cpu.shares"),
        )
    } else {
        let v2 = std::path::Path::new("/sys/fs/cgroup/berth").join(&id);
        let max = std::fs::read_to_string(v2.join("cpu.max")).unwrap();
        let mut it = max.split_whitespace();
        (
            it.next().unwrap().to_string(),
            it.next().unwrap().to_string(),
            "512".into(),
        )
    };
    assert_eq!(
        (quota.as_str(), period.as_str(), shares.as_str()),
        ("50000", "100000", "512")
    );
    // A busy loop is held near half a CPU.
    let busy = e.ok(&[
        "run",
        "-d",
        "--cpus",
        "0.5",
        "bb",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let usage = |id: &str| -> u64 {
        let p = std::path::Path::new("/sys/fs/cgroup/cpuacct/berth")
            .join(id)
            .join("cpuacct.usage");
        std::fs::read_to_string(p)
            .map(|s| s.trim().parse().unwrap())
            .unwrap_or(0)
    };
    let before = usage(&busy);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let used = usage(&busy) - before;
    if before > 0 {
        let fraction = used as f64 / 2e9;
        assert!(
            fraction < 0.65,
            "quota holds the loop to ~0.5 CPU, got {fraction:.2}"
        );
        assert!(fraction > 0.3, "the loop ran: {fraction:.2}");
    }
    e.ok(&["rm", "-f", &id, &busy]);
}

#[test]
fn an_exited_container_leaves_no_cgroup_behind() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    // Init exits while two children still run: the kernel ends them with the PID namespace,
    // and the cgroup goes once they are gone.
    let id = e.ok(&[
        "run",
        "-d",
        "bb",
        "sh",
        "-c",
        "sleep 100 & sleep 100 & sleep 0.2; exit 3",
    ]);
    assert_eq!(e.ok(&["wait", &id]), "3");
    let mut left = Vec::new();
    // Each v1 hierarchy (/sys/fs/cgroup/<controller>/berth/<id>) and the v2 tree.
    for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let candidate = entry.path().join("berth").join(&id);
        if candidate.exists() {
            left.push(candidate);
        }
    }
    let v2 = std::path::Path::new("/sys/fs/cgroup/berth").join(&id);
    if v2.exists() {
        left.push(v2);
    }
    assert!(left.is_empty(), "cgroups left after exit: {left:?}");
    e.ok(&["rm", &id]);
}
