//! Importing root filesystems and finding images again.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use berth_image::{ImageError, DEFAULT_PATH};
use common::*;

#[test]
fn import_dir_then_get_by_name_id_and_prefix() {
    let (_tmp, store) = store();
    let img = busybox_image(&store, "busybox", "one");
    assert!(img.id.starts_with("sha256:") && img.id.len() == 71);
    assert_eq!(img.repo_tags, vec!["busybox:latest"]);
    assert_eq!(img.os, "linux");
    assert_eq!(img.architecture, "amd64");
    assert_eq!(img.config.env, vec![DEFAULT_PATH]);
    assert!(img.config.cmd.is_empty(), "docker import sets no Cmd");
    assert_eq!(img.diff_ids.len(), 1);
    assert!(img.size > 1_000_000, "size {}", img.size);

    let hex = img.id.trim_start_matches("sha256:").to_string();
    for r in [
        "busybox",
        "busybox:latest",
        "library/busybox",
        "docker.io/library/busybox:latest",
        img.id.as_str(),
        hex.as_str(),
        &hex[..12],
        &hex[..4],
        &format!("sha256:{}", &hex[..8]),
    ] {
        assert_eq!(store.get(r).unwrap().id, img.id, "get({r})");
    }
    assert!(matches!(
        store.get("busybox:other"),
        Err(ImageError::NotFound(_))
    ));
    assert!(matches!(
        store.get("Bad:Name"),
        Err(ImageError::InvalidReference(_))
    ));

    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    let summary = list[0].summary();
    assert_eq!(summary.id, img.id);
    assert!(summary.created > 1_600_000_000);
    let inspect = img.inspect();
    assert_eq!(inspect.root_fs.layers, img.diff_ids);
    assert_eq!(
        img.repo_digests,
        vec![format!("busybox@{}", img.manifest_digest)]
    );
    assert!(store.layers_size().unwrap() >= img.size);

    // The unpacked layer keeps files, modes, owners, symlinks and devices.
    let layers = store.layer_paths(&img).unwrap();
    assert_eq!(layers.len(), 1);
    let l = &layers[0];
    let bb = fs::metadata(l.join("bin/busybox")).unwrap();
    assert_eq!(bb.len(), fs::metadata(BUSYBOX).unwrap().len());
    assert_eq!(bb.mode() & 0o777, 0o755);
    assert_eq!(
        fs::read_link(l.join("bin/sh")).unwrap().to_str(),
        Some("busybox")
    );
    assert_eq!(
        fs::read_link(l.join("usr/bin/env")).unwrap().to_str(),
        Some("/bin/busybox")
    );
    let secret = fs::metadata(l.join("home/user/secret")).unwrap();
    assert_eq!(
        (secret.uid(), secret.gid(), secret.mode() & 0o777),
        (1000, 1000, 0o600)
    );
    let null = fs::symlink_metadata(l.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc_makedev(1, 3));
    assert_eq!(fs::read_to_string(l.join("marker")).unwrap(), "one");
}

fn libc_makedev(major: u64, minor: u64) -> u64 {
    nix::sys::stat::makedev(major, minor)
}

#[test]
fn import_tar_plain_and_gzip_share_the_layer() {
    let (_tmp, store) = store();
    let src = tempdir();
    make_rootfs(src.path(), "tar");
    let tar = tar_of(src.path());
    let a = store.import_rootfs(&tar[..], "example.com/app:1").unwrap();
    let b = store.import_rootfs(&gzip(&tar)[..], "app:gz").unwrap();
    assert_eq!(a.repo_tags, vec!["example.com/app:1"]);
    assert_eq!(b.repo_tags, vec!["app:gz"]);
    // Same content, so same diff id and one shared snapshot.
    assert_eq!(a.diff_ids, b.diff_ids);
    assert_eq!(
        store.layer_paths(&a).unwrap(),
        store.layer_paths(&b).unwrap()
    );
    let snaps = fs::read_dir(store.root().join("snapshots/sha256"))
        .unwrap()
        .count();
    assert_eq!(snaps, 1);
    assert_eq!(store.list().unwrap().len(), 2);
    let l = &store.layer_paths(&b).unwrap()[0];
    assert_eq!(fs::read_to_string(l.join("marker")).unwrap(), "tar");
}

#[test]
fn bad_imports_are_refused_and_leave_nothing() {
    let (_tmp, store) = store();
    let before = store_files(store.root());
    assert!(store.import_rootfs(&b""[..], "x").is_err());
    assert!(store.import_rootfs(&b"not a tar at all"[..], "x").is_err());
    let mut evil = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    // `append_data` refuses `..`, so write the name into the header by hand.
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"../../escaped");
    h.set_cksum();
    evil.append(&h, &b"boom"[..]).unwrap();
    let evil = evil.into_inner().unwrap();
    let err = store.import_rootfs(&evil[..], "x").unwrap_err();
    assert!(err.to_string().contains("escapes"), "{err}");
    assert!(matches!(
        store.import_rootfs(&b""[..], "UPPER"),
        Err(ImageError::InvalidReference(_))
    ));
    assert_eq!(store_files(store.root()), before);
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn symlink_escape_is_refused() {
    let (_tmp, store) = store();
    let outside = tempdir();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, "esc", outside.path()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    b.append_data(&mut h, "esc/pwned", &b"bad"[..]).unwrap();
    let bytes = b.into_inner().unwrap();
    assert!(store.import_rootfs(&bytes[..], "esc").is_err());
    assert!(!outside.path().join("pwned").exists());
}

#[test]
fn store_reopens_with_its_images_and_is_usable_from_threads() {
    let tmp = tempdir();
    let root = tmp.path().join("root");
    let id = {
        let store = berth_image::ImageStore::open(&root).unwrap();
        busybox_image(&store, "keep:1", "k").id
    };
    let store = berth_image::ImageStore::open(&root).unwrap();
    assert_eq!(store.get("keep:1").unwrap().id, id);

    let src = tempdir();
    make_rootfs(src.path(), "threads");
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            let dir = src.path().to_path_buf();
            std::thread::spawn(move || {
                let img = store.import_dir(&dir, &format!("t{i}")).unwrap();
                store.tag(&img.id, &format!("t{i}:extra")).unwrap();
                assert_eq!(store.get(&format!("t{i}:extra")).unwrap().id, img.id);
                store.list().unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(store.list().unwrap().len(), 5);
    let reopened = berth_image::ImageStore::open(&root).unwrap();
    assert_eq!(reopened.list().unwrap().len(), 5);
}
