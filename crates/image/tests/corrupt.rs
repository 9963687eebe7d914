//! Truncated archives and blobs with wrong digests are refused and leave the store exactly as
//! it was: no new files under content/, snapshots/ or tmp/, the same index, no new tag.

mod common;

use std::io::Read;

use berth_image::{ImageError, ImageStore};
use common::*;

/// A saved one-image archive (made in its own store) and the store under test, which already
/// holds an image.
fn setup() -> (tempfile::TempDir, ImageStore, Vec<u8>, tempfile::TempDir) {
    let (src_tmp, src) = common::store();
    busybox_image(&src, "victim:1", "victim");
    let mut bytes = Vec::new();
    src.save(&["victim:1".into()], &mut bytes).unwrap();
    let (tmp, store) = common::store();
    busybox_image(&store, "already:here", "pre");
    (tmp, store, bytes, src_tmp)
}

fn assert_untouched(store: &ImageStore, before: &(Vec<std::path::PathBuf>, Vec<u8>)) {
    assert_eq!(&store_files(store.root()), before, "store changed");
    let images = store.list().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].repo_tags, vec!["already:here"]);
    assert!(matches!(
        store.get("victim:1"),
        Err(ImageError::NotFound(_))
    ));
}

#[test]
fn truncated_archives_leave_nothing() {
    let (_tmp, store, bytes, _src) = setup();
    let before = store_files(store.root());
    let len = bytes.len();
    // Everything but the final 1024 zero bytes is needed.
    for cut in [
        0,
        100,
        512 * 3 + 7,
        len / 3,
        len / 2,
        len * 3 / 4 + 13,
        len - 1025,
    ] {
        let err = store.load(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(err, ImageError::InvalidArchive(_)),
            "cut at {cut}: {err}"
        );
        assert_untouched(&store, &before);
    }
    let gz = gzip(&bytes);
    for cut in [gz.len() / 2, gz.len() - 10] {
        let err = store.load(&gz[..cut]).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        assert_untouched(&store, &before);
    }
    // The whole thing loads.
    assert_eq!(store.load(&bytes[..]).unwrap().len(), 1);
    assert_eq!(store.load(&gz[..]).unwrap().len(), 1);
}

/// Rewrites the archive, passing each entry's bytes through `edit` and dropping the entries
/// for which `keep` is false.
fn rewrite(
    bytes: &[u8],
    keep: impl Fn(&str) -> bool,
    edit: impl Fn(&str, &mut Vec<u8>),
) -> Vec<u8> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = tar::Builder::new(Vec::new());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if !keep(&path) {
            continue;
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        edit(&path, &mut data);
        let mut h = entry.header().clone();
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.append(&h, &data[..]).unwrap();
    }
    out.into_inner().unwrap()
}

fn is_layer_blob(path: &str, data: &[u8]) -> bool {
    path.starts_with("blobs/sha256/") && data.len() > 100_000
}

#[test]
fn a_blob_with_a_wrong_digest_is_refused() {
    let (_tmp, store, bytes, _src) = setup();
    let before = store_files(store.root());
    let flip = |path: &str, data: &mut Vec<u8>| {
        if is_layer_blob(path, data) {
            let mid = data.len() / 2;
            data[mid] ^= 0xff;
        }
    };
    // OCI side (index.json present): the blob's name is its digest.
    let bad = rewrite(&bytes, |_| true, flip);
    let err = store.load(&bad[..]).unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert!(err.to_string().contains("expected sha256:"), "{err}");
    assert_untouched(&store, &before);

    // Docker side only (manifest.json, no index.json).
    let docker_only = |p: &str| p != "index.json" && p != "oci-layout";
    let bad = rewrite(&bytes, docker_only, flip);
    let err = store.load(&bad[..]).unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert_untouched(&store, &before);
    // ...which loads when intact.
    let good = rewrite(&bytes, docker_only, |_, _| {});
    assert_eq!(
        store.load(&good[..]).unwrap()[0].repo_tags,
        vec!["victim:1"]
    );
}

#[test]
fn a_wrong_config_or_missing_blob_is_refused() {
    let (_tmp, store, bytes, _src) = setup();
    let before = store_files(store.root());
    // Tamper with the config JSON (small blob containing "rootfs").
    let bad = rewrite(
        &bytes,
        |_| true,
        |path, data| {
            if path.starts_with("blobs/") && String::from_utf8_lossy(data).contains("\"rootfs\"") {
                let s = String::from_utf8_lossy(data).replace("amd64", "arm64");
                *data = s.into_bytes();
            }
        },
    );
    let err = store.load(&bad[..]).unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert_untouched(&store, &before);

    // Drop the layer blob entirely.
    let missing = rewrite(
        &bytes,
        |p| !p.starts_with("blobs/sha256/") || p.len() < 20,
        |_, _| {},
    );
    let err = store.load(&missing[..]).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    assert_untouched(&store, &before);

    let err = store.load(&b"garbage that is not a tar"[..]).unwrap_err();
    assert!(matches!(err, ImageError::InvalidArchive(_)), "{err}");
    assert_untouched(&store, &before);
}
