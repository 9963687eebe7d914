//! End-to-end: image import, save (read by skopeo), load of OCI layouts made by skopeo, rm,
//! and bad archives.

mod common;

use std::process::Command;

use common::TestEngine;

fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed")
}

#[test]
fn saved_images_are_read_by_skopeo_and_oci_layouts_load_and_run() {
    let e = TestEngine::start();
    e.import_busybox("bb:1.0");
    let archive = e.root.join("bb.tar");
    e.ok(&["image", "save", "-o", archive.to_str().unwrap(), "bb:1.0"]);
    let inspect = skopeo(&["inspect", &format!("docker-archive:{}", archive.display())]);
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(json["Os"], "linux");
    assert_eq!(json["Layers"].as_array().unwrap().len(), 1);

    // skopeo converts it into an OCI layout (gzip layers); berth loads the directory and runs it.
    let layout = e.root.join("layout");
    let copy = skopeo(&[
        "copy",
        &format!("docker-archive:{}", archive.display()),
        &format!("oci:{}:v2", layout.display()),
    ]);
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let loaded = e.ok(&["image", "load", "-i", layout.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image"), "{loaded}");
    let id_line = e.ok(&["images", "-q"]);
    assert!(!id_line.is_empty());
    // An untagged OCI image runs by id.
    let ids: Vec<&str> = id_line.lines().collect();
    let mut ran = false;
    for id in ids {
        let out = e.berth(&["run", "--rm", id, "echo", "from-oci"]);
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "from-oci");
            ran = true;
        }
    }
    assert!(ran);

    // Round trip through our own archive into a second engine root.
    let e2 = TestEngine::start();
    e2.ok(&["image", "load", "-i", archive.to_str().unwrap()]);
    assert_eq!(
        e2.ok(&["run", "--rm", "bb:1.0", "echo", "copied"]),
        "copied"
    );
    assert_eq!(
        e.inspect("bb:1.0", "{{.Id}}"),
        e2.inspect("bb:1.0", "{{.Id}}"),
        "the image id survives save/load"
    );
}

#[test]
fn bad_archives_leave_nothing_behind() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let archive = e.root.join("bb.tar");
    e.ok(&["image", "save", "-o", archive.to_str().unwrap(), "bb"]);
    let bytes = std::fs::read(&archive).unwrap();
    let truncated = e.root.join("trunc.tar");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let e2 = TestEngine::start();
    let out = e2.berth(&["image", "load", "-i", truncated.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stderr).trim().is_empty());
    assert_eq!(e2.ok(&["images", "-q"]), "", "nothing half-imported");
    let blobs = std::fs::read_dir(e2.root.join("data/content/blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(blobs, 0, "no stray blobs");
    let garbage = e.root.join("garbage.tar");
    std::fs::write(&garbage, b"this is not a tar archive at all").unwrap();
    let out = e2.berth(&["image", "load", "-i", garbage.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn image_rm_refuses_images_in_use_and_untags() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    e.ok(&["tag", "bb", "other:2"]);
    let id = e.ok(&["create", "bb", "true"]);
    // Removing one of two tags only untags.
    e.ok(&["image", "rm", "other:2"]);
    assert!(!e.ok(&["images"]).contains("other"));
    let out = e.berth(&["image", "rm", "bb"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("being used"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    e.ok(&["rm", &id]);
    e.ok(&["image", "rm", "bb"]);
    assert_eq!(e.ok(&["images", "-q"]), "");
    let out = e.berth(&["image", "inspect", "bb"]);
    assert_ne!(out.status.code(), Some(0));
}
