//! End-to-end: volumes and bind mounts, name conflicts, system df/prune.

mod common;

use common::TestEngine;

#[test]
fn named_volumes_persist_between_containers() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    e.ok(&["volume", "create", "data"]);
    assert!(e.ok(&["volume", "ls"]).contains("data"));
    e.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "bb",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(
        e.ok(&["run", "--rm", "-v", "data:/data:ro", "bb", "cat", "/data/f"]),
        "kept"
    );
    let out = e.berth(&[
        "run",
        "--rm",
        "-v",
        "data:/data:ro",
        "bb",
        "sh",
        "-c",
        "echo x > /data/g",
    ]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "read-only volume refuses writes"
    );
    // A volume named on run is created on demand.
    e.ok(&["run", "--rm", "-v", "auto:/a", "bb", "true"]);
    assert!(e
        .ok(&["volume", "inspect", "auto"])
        .contains("\"Mountpoint\""));
    // In use: cannot be removed.
    let id = e.ok(&["create", "-v", "data:/data", "bb", "true"]);
    let out = e.berth(&["volume", "rm", "data"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"));
    e.ok(&["rm", &id]);
    e.ok(&["volume", "rm", "data"]);
    assert!(!e.ok(&["volume", "ls", "-q"]).lines().any(|l| l == "data"));
}

#[test]
fn bind_mounts_and_their_errors() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let host = e.root.join("shared");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in.txt"), "from host").unwrap();
    let spec = format!("{}:/mnt/shared", host.display());
    assert_eq!(
        e.ok(&[
            "run",
            "--rm",
            "-v",
            &spec,
            "bb",
            "cat",
            "/mnt/shared/in.txt"
        ]),
        "from host"
    );
    e.ok(&[
        "run",
        "--rm",
        "-v",
        &spec,
        "bb",
        "sh",
        "-c",
        "echo back > /mnt/shared/out.txt",
    ]);
    assert_eq!(
        std::fs::read_to_string(host.join("out.txt")).unwrap(),
        "back\n"
    );
    let ro = format!("{}:/mnt/shared:ro", host.display());
    let out = e.berth(&["run", "--rm", "-v", &ro, "bb", "touch", "/mnt/shared/x"]);
    assert_ne!(out.status.code(), Some(0));
    // Missing source: clear error, exit 125, no container left.
    let missing = format!("{}/nope:/x", e.root.display());
    let out = e.berth(&["run", "--rm", "-v", &missing, "bb", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bind source path does not exist"));
    assert_eq!(e.ok(&["ps", "-aq"]), "");
}

#[test]
fn names_are_unique_and_prune_cleans_up() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    e.ok(&["run", "--name", "one", "bb", "true"]);
    let out = e.berth(&["run", "--name", "one", "bb", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already in use"));
    let out = e.berth(&["rm", "nosuch"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such container"));
    // A running container is not removed without -f.
    let running = e.ok(&["run", "-d", "bb", "sleep", "60"]);
    let out = e.berth(&["rm", &running]);
    assert_ne!(out.status.code(), Some(0));
    let df = e.ok(&["system", "df"]);
    assert!(df.contains("Images") && df.contains("Containers"), "{df}");
    e.ok(&["system", "prune", "-f"]);
    // The exited one is gone, the running one stays, its image stays.
    let all = e.ok(&["ps", "-aq"]);
    assert_eq!(all.lines().count(), 1, "{all}");
    assert!(running.starts_with(all.trim()));
    assert!(!e.ok(&["images", "-q"]).is_empty());
    e.ok(&["rm", "-f", &running]);
    e.ok(&["system", "prune", "-af"]);
    assert_eq!(e.ok(&["images", "-q"]), "");
}

#[test]
fn anonymous_volumes_and_copy_up() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    // A new named volume over an image directory starts with the image's content.
    assert!(e
        .ok(&[
            "run",
            "--rm",
            "-v",
            "etcvol:/etc",
            "bb",
            "cat",
            "/etc/passwd"
        ])
        .contains("root:x:0:0"));
    let mountpoint = e.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "etcvol"]);
    assert!(std::path::Path::new(&mountpoint).join("passwd").exists());
    // `-v /path` makes an anonymous volume, kept by plain rm, removed by rm -v.
    let before = e.ok(&["volume", "ls", "-q"]).lines().count();
    let id = e.ok(&[
        "run",
        "-d",
        "-v",
        "/scratch",
        "bb",
        "sh",
        "-c",
        "echo x > /scratch/f; sleep 30",
    ]);
    assert_eq!(e.ok(&["volume", "ls", "-q"]).lines().count(), before + 1);
    assert!(e
        .inspect(&id, "{{json .Mounts}}")
        .contains("\"Type\":\"volume\""));
    e.ok(&["rm", "-f", "-v", &id]);
    assert_eq!(
        e.ok(&["volume", "ls", "-q"]).lines().count(),
        before,
        "rm -v removed it"
    );
    // --rm removes anonymous volumes too, and keeps named ones.
    e.ok(&[
        "run",
        "--rm",
        "-v",
        "/tmpdata",
        "-v",
        "keep:/keep",
        "bb",
        "true",
    ]);
    let names = e.ok(&["volume", "ls", "-q"]);
    assert_eq!(names.lines().count(), before + 1, "{names}");
    assert!(names.lines().any(|n| n == "keep"));
}
