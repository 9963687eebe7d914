//! Untagging, deleting and pruning images, and the garbage they leave (none).

mod common;

use std::collections::HashSet;
use std::fs;

use berth_engine_client::ImageDeleteItem;
use berth_image::ImageError;
use common::*;

fn untagged(t: &str) -> ImageDeleteItem {
    ImageDeleteItem {
        untagged: Some(t.into()),
        deleted: None,
    }
}

fn deleted(id: &str) -> ImageDeleteItem {
    ImageDeleteItem {
        untagged: None,
        deleted: Some(id.into()),
    }
}

fn count(dir: std::path::PathBuf) -> usize {
    fs::read_dir(dir).unwrap().count()
}

#[test]
fn remove_by_tag_untags_and_by_id_needs_force_for_several_tags() {
    let (_tmp, store) = common::store();
    let img = busybox_image(&store, "app:1", "rm");
    store.tag("app:1", "app:2").unwrap();
    store.tag("app:1", "other/app").unwrap();
    assert_eq!(
        store.get("app:2").unwrap().repo_tags,
        vec!["app:1", "app:2", "other/app:latest"]
    );

    // By tag while other tags remain: only untag.
    assert_eq!(
        store.remove("app:1", false).unwrap(),
        vec![untagged("app:1")]
    );
    assert!(matches!(store.get("app:1"), Err(ImageError::NotFound(_))));
    assert_eq!(store.get("app:2").unwrap().id, img.id);

    // By id with two tags: refused without force.
    let err = store.remove(&img.id, false).unwrap_err();
    assert!(matches!(err, ImageError::Conflict(_)), "{err}");
    assert!(err
        .to_string()
        .contains("referenced in multiple repositories"));
    assert_eq!(store.list().unwrap().len(), 1);

    // With force: every tag goes, then the image, its blobs and its snapshot.
    let items = store.remove(&img.id[7..19], true).unwrap();
    assert_eq!(
        items,
        vec![
            untagged("app:2"),
            untagged("other/app:latest"),
            deleted(&img.id)
        ]
    );
    assert!(store.list().unwrap().is_empty());
    assert_eq!(count(store.root().join("content/blobs/sha256")), 0);
    assert_eq!(count(store.root().join("snapshots/sha256")), 0);
    assert!(matches!(
        store.remove("app:2", false),
        Err(ImageError::NotFound(_))
    ));
}

#[test]
fn removing_the_last_tag_deletes_but_keeps_shared_layers() {
    let (_tmp, store) = common::store();
    let src = tempdir();
    make_rootfs(src.path(), "shared");
    let a = store.import_dir(src.path(), "a").unwrap();
    let b = store.import_dir(src.path(), "b").unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(a.diff_ids, b.diff_ids);
    assert_eq!(
        store.remove("a", false).unwrap(),
        vec![untagged("a:latest"), deleted(&a.id)]
    );
    // b still has its layer (shared snapshot and layer blob kept).
    let paths = store.layer_paths(&store.get("b").unwrap()).unwrap();
    assert!(paths[0].join("bin/busybox").is_file());
    // One image left: config + manifest + layer.
    assert_eq!(count(store.root().join("content/blobs/sha256")), 3);
    // By id with a single tag needs no force.
    assert_eq!(
        store.remove(&b.id, false).unwrap(),
        vec![untagged("b:latest"), deleted(&b.id)]
    );
    assert_eq!(count(store.root().join("snapshots/sha256")), 0);
    assert_eq!(store.layers_size().unwrap(), 0);
}

#[test]
fn prune_removes_dangling_or_all_unused() {
    let (_tmp, store) = common::store();
    let old = busybox_image(&store, "app", "old");
    let new = busybox_image(&store, "app", "new"); // takes the tag: `old` dangles
    let keep = busybox_image(&store, "keep", "keep");
    let used = busybox_image(&store, "used", "used");
    assert!(store.get(&old.id).unwrap().repo_tags.is_empty());
    let leftover = store.root().join("tmp/stage-leftover");
    fs::create_dir_all(&leftover).unwrap();

    let in_use: HashSet<String> = [used.id.clone()].into();
    let report = store.prune(&in_use, false).unwrap();
    assert_eq!(report.images_deleted, vec![old.id.clone()]);
    assert!(report.space_reclaimed > 1_000_000);
    assert!(!leftover.exists());
    assert_eq!(store.list().unwrap().len(), 3);

    let report = store.prune(&in_use, true).unwrap();
    let mut gone = report.images_deleted.clone();
    gone.sort();
    let mut want = vec![new.id.clone(), keep.id.clone()];
    want.sort();
    assert_eq!(gone, want);
    let left = store.list().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, used.id);
    assert_eq!(count(store.root().join("snapshots/sha256")), 1);
    assert_eq!(count(store.root().join("content/blobs/sha256")), 3);
    assert!(store.layer_paths(&left[0]).unwrap()[0].is_dir());
}

#[test]
fn ambiguous_prefixes_and_bad_ids() {
    let (_tmp, store) = common::store();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    b.append_data(&mut h, "f", &b"hi"[..]).unwrap();
    let tiny = b.into_inner().unwrap();
    // 17 ids: by pigeonhole two share their first hex digit.
    let mut ids = Vec::new();
    for i in 0..17 {
        ids.push(
            store
                .import_rootfs(&tiny[..], &format!("img{i}"))
                .unwrap()
                .id,
        );
    }
    let digit = (0..16)
        .map(|d| format!("{d:x}"))
        .find(|d| ids.iter().filter(|id| id[7..8] == **d).count() > 1)
        .unwrap();
    let err = store.get(&format!("sha256:{digit}")).unwrap_err();
    assert!(matches!(err, ImageError::Ambiguous(_)), "{err}");
    assert!(matches!(
        store.get("sha256:xyz"),
        Err(ImageError::InvalidReference(_))
    ));
    assert!(matches!(
        store.tag("img0", "Bad Tag"),
        Err(ImageError::InvalidReference(_))
    ));
    assert!(matches!(
        store.get("ffff0000"),
        Err(ImageError::NotFound(_))
    ));
    // All 17 share one snapshot.
    assert_eq!(count(store.root().join("snapshots/sha256")), 1);
}
