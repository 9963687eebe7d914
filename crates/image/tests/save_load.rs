//! Saving images and loading them back, checked against the real skopeo.

mod common;

use std::fs::{self, File};
use std::process::Command;

use common::*;

fn skopeo() -> Command {
    let mut c = Command::new("skopeo");
    c.arg("--insecure-policy");
    c
}

#[test]
fn save_is_a_docker_archive_and_an_oci_archive_and_loads_back() {
    let (tmp, store) = common::store();
    let img = busybox_image(&store, "busybox:1.36", "saved");
    store.tag("busybox:1.36", "example.com/team/bb:v1").unwrap();
    let file = tmp.path().join("images.tar");
    store
        .save(
            &[
                "busybox:1.36".to_string(),
                "example.com/team/bb:v1".to_string(),
            ],
            File::create(&file).unwrap(),
        )
        .unwrap();

    let docker = run(skopeo()
        .arg("inspect")
        .arg(format!("docker-archive:{}", file.display())));
    let docker: serde_json::Value = serde_json::from_str(&docker).unwrap();
    assert_eq!(docker["Os"], "linux");
    assert_eq!(docker["Layers"].as_array().unwrap().len(), 1);
    assert_eq!(docker["Env"][0], berth_image::DEFAULT_PATH);
    let config = run(skopeo()
        .args(["inspect", "--config"])
        .arg(format!("docker-archive:{}", file.display())));
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"][0], img.diff_ids[0]);

    // Like Docker, the OCI ref name annotation holds the tag (the full name is in
    // io.containerd.image.name).
    let oci = run(skopeo()
        .arg("inspect")
        .arg(format!("oci-archive:{}:1.36", file.display())));
    let oci: serde_json::Value = serde_json::from_str(&oci).unwrap();
    assert_eq!(oci["Digest"], img.manifest_digest);

    // Load into a fresh store: same id, both tags.
    let (_tmp2, fresh) = common::store();
    let loaded = fresh.load(File::open(&file).unwrap()).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id, img.id);
    assert_eq!(loaded[0].manifest_digest, img.manifest_digest);
    assert_eq!(
        loaded[0].repo_tags,
        vec!["busybox:1.36", "example.com/team/bb:v1"]
    );
    let l = &fresh.layer_paths(&loaded[0]).unwrap()[0];
    assert_eq!(fs::read_to_string(l.join("marker")).unwrap(), "saved");
    // Loading it again changes nothing and shares everything.
    let again = fresh.load(File::open(&file).unwrap()).unwrap();
    assert_eq!(again[0].id, img.id);
    assert_eq!(fresh.list().unwrap().len(), 1);
}

#[test]
fn skopeo_made_layouts_and_archives_load() {
    let (tmp, store) = common::store();
    let img = busybox_image(&store, "busybox", "via-skopeo");
    let file = tmp.path().join("saved.tar");
    store
        .save(&["busybox".to_string()], File::create(&file).unwrap())
        .unwrap();

    // One image, one tag: plain `oci-archive:FILE` works too.
    let oci = run(skopeo()
        .arg("inspect")
        .arg(format!("oci-archive:{}", file.display())));
    let oci: serde_json::Value = serde_json::from_str(&oci).unwrap();
    assert_eq!(oci["Digest"], img.manifest_digest);

    // docker-archive -> OCI layout dir (skopeo gzips the layer on the way).
    let layout = tmp.path().join("layout");
    run(skopeo()
        .arg("copy")
        .arg(format!("docker-archive:{}", file.display()))
        .arg(format!("oci:{}:example.com/copied:2", layout.display())));
    let (_t2, fresh) = common::store();
    let loaded = fresh.load_dir(&layout).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id, img.id, "the config blob travels unchanged");
    assert_eq!(loaded[0].repo_tags, vec!["example.com/copied:2"]);
    let l = &fresh.layer_paths(&loaded[0]).unwrap()[0];
    assert_eq!(fs::read_to_string(l.join("marker")).unwrap(), "via-skopeo");

    // OCI layout -> classic docker-archive (config as <hex>.json, layers as <hex>.tar).
    let classic = tmp.path().join("classic.tar");
    run(skopeo()
        .arg("copy")
        .arg(format!("oci:{}:example.com/copied:2", layout.display()))
        .arg(format!("docker-archive:{}:classic:v9", classic.display())));
    let (_t3, third) = common::store();
    let loaded = third.load(File::open(&classic).unwrap()).unwrap();
    assert_eq!(loaded[0].id, img.id);
    assert_eq!(loaded[0].repo_tags, vec!["classic:v9"]);

    // An OCI archive (tar of a layout) with a bare ref name: loaded, untagged.
    let oci_tar = tmp.path().join("oci.tar");
    run(skopeo()
        .arg("copy")
        .arg(format!("docker-archive:{}", file.display()))
        .arg(format!("oci-archive:{}:justatag", oci_tar.display())));
    let (_t4, fourth) = common::store();
    let loaded = fourth.load(File::open(&oci_tar).unwrap()).unwrap();
    assert_eq!(loaded[0].id, img.id);
    assert!(loaded[0].repo_tags.is_empty());
}

#[test]
fn umoci_layout_loads() {
    let (tmp, store) = common::store();
    let layout = tmp.path().join("umoci");
    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    run(Command::new("umoci")
        .args(["new", "--image"])
        .arg(format!("{}:latest", layout.display())));
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle));
    make_rootfs(&bundle.join("rootfs"), "umoci");
    run(Command::new("umoci")
        .args(["repack", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle));
    let loaded = store.load_dir(&layout).unwrap();
    assert_eq!(loaded.len(), 1);
    let paths = store.layer_paths(&loaded[0]).unwrap();
    let top = paths.last().unwrap();
    assert_eq!(fs::read_to_string(top.join("marker")).unwrap(), "umoci");
    store.tag(&loaded[0].id, "umoci-made").unwrap();
    assert_eq!(store.get("umoci-made").unwrap().id, loaded[0].id);
}

#[test]
fn zstd_compressed_layouts_load() {
    let (tmp, store) = common::store();
    let img = busybox_image(&store, "busybox", "via-zstd");
    let file = tmp.path().join("saved.tar");
    store
        .save(&["busybox".to_string()], File::create(&file).unwrap())
        .unwrap();
    let layout = tmp.path().join("zstd");
    run(skopeo()
        .args(["copy", "--dest-compress-format", "zstd"])
        .arg(format!("docker-archive:{}", file.display()))
        .arg(format!("oci:{}:z", layout.display())));
    let raw = run(skopeo()
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:z", layout.display())));
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let (_t2, fresh) = common::store();
    let loaded = fresh.load_dir(&layout).unwrap();
    assert_eq!(loaded[0].id, img.id, "the config blob travels unchanged");
    let l = &fresh.layer_paths(&loaded[0]).unwrap()[0];
    assert_eq!(fs::read_to_string(l.join("marker")).unwrap(), "via-zstd");
}
