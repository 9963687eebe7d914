//! A two-layer image whose upper layer deletes a file and makes a directory opaque: the layer
//! directories carry overlayfs whiteouts, and mounted as overlay lowerdirs they show the
//! merged tree (and busybox runs in it).

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::json;
use sha2::{Digest, Sha256};

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn put_blob(layout: &Path, bytes: &[u8]) -> String {
    let d = sha(bytes);
    fs::write(
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:")),
        bytes,
    )
    .unwrap();
    d
}

/// Unmounts on drop, so a failing assertion never leaves a mount behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn header() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

fn build_layout(layout: &Path) {
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let base = tempdir();
    make_rootfs(base.path(), "base");
    fs::write(base.path().join("etc/motd"), "hello\n").unwrap();
    fs::create_dir_all(base.path().join("data")).unwrap();
    fs::write(base.path().join("data/a"), "a").unwrap();
    fs::write(base.path().join("data/b"), "b").unwrap();
    let l1 = tar_of(base.path());

    let mut b = tar::Builder::new(Vec::new());
    let mut h = header();
    h.set_size(0);
    h.set_mode(0o644);
    b.append_data(&mut h, "etc/.wh.motd", &b""[..]).unwrap();
    let mut h = header();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    b.append_data(&mut h, "data/", &b""[..]).unwrap();
    let mut h = header();
    h.set_size(0);
    h.set_mode(0o644);
    b.append_data(&mut h, "data/.wh..wh..opq", &b""[..])
        .unwrap();
    let mut h = header();
    h.set_size(3);
    h.set_mode(0o644);
    b.append_data(&mut h, "data/c", &b"new"[..]).unwrap();
    let l2 = b.into_inner().unwrap();
    let l2_gz = gzip(&l2);

    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {
            "Cmd": ["sh"], "Env": ["PATH=/bin"],
            "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 2000000000, "Retries": 2}
        },
        "rootfs": {"type": "layers", "diff_ids": [sha(&l1), sha(&l2)]}
    }))
    .unwrap();
    let config_digest = put_blob(layout, &config);
    let l1_digest = put_blob(layout, &l1);
    let l2_digest = put_blob(layout, &l2_gz);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar",
             "digest": l1_digest, "size": l1.len()},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
             "digest": l2_digest, "size": l2_gz.len()}
        ]
    }))
    .unwrap();
    let manifest_digest = put_blob(layout, &manifest);
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest, "size": manifest.len(),
                "annotations": {"io.containerd.image.name": "docker.io/library/whiteout:test",
                                "org.opencontainers.image.ref.name": "test"}
            }]
        }))
        .unwrap(),
    )
    .unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    let (tmp, store) = common::store();
    let layout = tmp.path().join("layout");
    build_layout(&layout);
    let images = store.load_dir(&layout).unwrap();
    assert_eq!(images.len(), 1);
    let img = &images[0];
    assert_eq!(img.repo_tags, vec!["whiteout:test"]);
    assert_eq!(img.created, "2024-01-02T03:04:05Z");
    let hc = img.config.healthcheck.clone().expect("healthcheck kept");
    assert_eq!(hc.test, vec!["CMD-SHELL", "true"]);
    assert_eq!((hc.interval, hc.retries), (2_000_000_000, 2));

    let layers = store.layer_paths(img).unwrap();
    assert_eq!(layers.len(), 2);
    let (bottom, top) = (&layers[0], &layers[1]);
    assert_eq!(
        fs::read_to_string(bottom.join("etc/motd")).unwrap(),
        "hello\n"
    );
    let wh = fs::symlink_metadata(top.join("etc/motd")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!((wh.rdev(), wh.uid(), wh.gid()), (0, 0, 0));
    assert!(!top.join("etc/.wh.motd").exists());
    assert!(!top.join("data/.wh..wh..opq").exists());
    assert_eq!(
        xattr::get(top.join("data"), "trusted.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );

    // Mount the layers as an overlay (top first) and look at the merged tree.
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let opts = format!("lowerdir={}:{}", top.display(), bottom.display());
    nix::mount::mount(
        Some("overlay"),
        &mnt,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(opts.as_str()),
    )
    .expect("mount overlay");
    let _guard = Mount(mnt.clone());
    assert!(!mnt.join("etc/motd").exists(), "whiteout hides the file");
    let mut data: Vec<String> = fs::read_dir(mnt.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    data.sort();
    assert_eq!(data, vec!["c"], "opaque dir hides the lower entries");
    let out = run(Command::new("chroot").arg(&mnt).args([
        "/bin/sh",
        "-c",
        "echo hi from $(cat /marker)",
    ]));
    assert_eq!(out.trim(), "hi from base");
}

#[test]
fn save_of_a_two_layer_image_round_trips() {
    let (tmp, store) = common::store();
    let layout = tmp.path().join("layout");
    build_layout(&layout);
    let img = store.load_dir(&layout).unwrap().remove(0);
    let mut bytes = Vec::new();
    store.save(&["whiteout:test".into()], &mut bytes).unwrap();
    let (_t, fresh) = common::store();
    let loaded = fresh.load(&bytes[..]).unwrap().remove(0);
    assert_eq!(loaded.id, img.id);
    assert_eq!(loaded.manifest_digest, img.manifest_digest);
    assert_eq!(loaded.config, img.config);
    let top = fresh.layer_paths(&loaded).unwrap().remove(1);
    assert!(fs::symlink_metadata(top.join("etc/motd"))
        .unwrap()
        .file_type()
        .is_char_device());
}
