//! Helpers shared by the integration tests: temp dirs, busybox root filesystems, tars, and a
//! listing of a store's files to prove a failed operation left nothing behind.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_image::ImageStore;

pub const BUSYBOX: &str = "/bin/busybox";

/// A unique temp dir (removed on drop).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-image-test-")
        .tempdir_in(std::env::temp_dir())
        .expect("temp dir")
}

/// A fresh store in a unique temp dir; keep the TempDir alive as long as the store.
pub fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempdir();
    let store = ImageStore::open(&dir.path().join("root")).expect("open store");
    (dir, store)
}

/// A minimal busybox root filesystem: bin/busybox, applet symlinks, etc/passwd, a file owned by
/// 1000:1000 with mode 0600, an absolute symlink, a char device and a marker file.
pub fn make_rootfs(dir: &Path, marker: &str) {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::create_dir_all(dir.join("dev")).unwrap();
    fs::create_dir_all(dir.join("home/user")).unwrap();
    fs::create_dir_all(dir.join("usr/bin")).unwrap();
    fs::copy(BUSYBOX, dir.join("bin/busybox")).unwrap();
    fs::set_permissions(dir.join("bin/busybox"), fs::Permissions::from_mode(0o755)).unwrap();
    for applet in ["sh", "echo", "ls", "cat", "true"] {
        symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    symlink("/bin/busybox", dir.join("usr/bin/env")).unwrap();
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
    )
    .unwrap();
    fs::write(dir.join("home/user/secret"), "s3cret\n").unwrap();
    fs::set_permissions(
        dir.join("home/user/secret"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::chown(dir.join("home/user/secret"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::chown(dir.join("home/user"), Some(1000), Some(1000)).unwrap();
    let st = Command::new("mknod")
        .arg(dir.join("dev/null"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(st.success(), "mknod");
    fs::write(dir.join("marker"), marker).unwrap();
}

/// A tar of `dir` (paths relative to it), symlinks kept.
pub fn tar_of(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Every path under the store's content/ and snapshots/ (and the index bytes), to compare a
/// store before and after a failed operation.
pub fn store_files(root: &Path) -> (Vec<PathBuf>, Vec<u8>) {
    let mut out = Vec::new();
    for sub in ["content", "snapshots", "tmp"] {
        walk(&root.join(sub), &mut out);
    }
    out.sort();
    let index = fs::read(root.join("images/index.json")).unwrap_or_default();
    (out, index)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        out.push(p.clone());
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            walk(&p, out);
        }
    }
}

/// Runs a command, panicking with its output when it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A busybox image imported from a directory into `store`, tagged `reference`.
pub fn busybox_image(store: &ImageStore, reference: &str, marker: &str) -> berth_image::Image {
    let src = tempdir();
    make_rootfs(src.path(), marker);
    store.import_dir(src.path(), reference).expect("import_dir")
}
