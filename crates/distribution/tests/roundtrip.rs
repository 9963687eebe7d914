//! The library against a real `berth registry` served in-process on a loopback port (and
//! Debian's `docker-registry` when installed): chunked uploads (small chunk sizes force
//! `PATCH`es), pulls into a second store, and an OCI index resolved to this host's platform.

use std::path::Path;
use std::sync::{Arc, Mutex};

use berth_distribution::progress::Progress;
use berth_distribution::pull::pull;
use berth_distribution::push::{push_with, UploadSizes};
use berth_distribution::{Credentials, ProgressSink, RegistryClient};
use berth_image::ImageStore;

/// Bytes that do not compress (a xorshift stream).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn recorder() -> (ProgressSink, Arc<Mutex<Vec<Progress>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    (Arc::new(move |p| s2.lock().unwrap().push(p)), seen)
}

fn statuses(seen: &Mutex<Vec<Progress>>) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|p| p.status.clone())
        .collect()
}

async fn start_berth_registry(root: &Path) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let config = berth_registry::Config {
        root: root.to_path_buf(),
        auth: Default::default(),
    };
    tokio::spawn(async move {
        let _ = berth_registry::run(listener, config, async {
            let _ = rx.await;
        })
        .await;
    });
    (addr, tx)
}

fn image_with_layer(store: &ImageStore, dir: &Path, tag: &str, size: usize) -> String {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("data")).unwrap();
    std::fs::write(rootfs.join("data/blob"), noise(size, 0x9e37_79b9_7f4a_7c15)).unwrap();
    store.import_dir(&rootfs, tag).unwrap().id
}

async fn chunked_round_trip(addr: &str, tmp: &Path) {
    let a = ImageStore::open(&tmp.join("a")).unwrap();
    let b = ImageStore::open(&tmp.join("b")).unwrap();
    let image = format!("{addr}/chunked/x:1");
    let id = image_with_layer(&a, tmp, &image, 700_000);
    let client = RegistryClient::new(Default::default()).unwrap();
    let (sink, seen) = recorder();
    let sizes = UploadSizes {
        monolithic_max: 64 << 10,
        chunk_size: 100_000,
    };
    let out = push_with(&client, &a, &image, Credentials::default(), sink, sizes)
        .await
        .unwrap();
    assert!(statuses(&seen).iter().any(|s| s == "Pushed"), "{seen:?}");
    assert_eq!(out.tag, "1");
    let (sink, _) = recorder();
    let pulled = pull(&client, &b, &image, Credentials::default(), sink)
        .await
        .unwrap();
    assert_eq!(pulled.image_id, id);
    assert_eq!(pulled.digest, out.digest);
    assert!(!pulled.up_to_date);
    let got = b.get(&image).unwrap();
    assert_eq!(got.id, id);
    // The layer (unpacked while it downloaded) holds the pushed file, and nothing is left in
    // the store's staging area.
    let layers = b.layer_paths(&got).unwrap();
    let file = layers
        .iter()
        .map(|l| l.join("data/blob"))
        .find(|p| p.exists());
    let file = file.unwrap_or_else(|| panic!("data/blob in none of {layers:?}"));
    assert_eq!(
        std::fs::read(file).unwrap(),
        noise(700_000, 0x9e37_79b9_7f4a_7c15)
    );
    let staging: Vec<_> = std::fs::read_dir(tmp.join("b/tmp")).unwrap().collect();
    assert!(staging.is_empty(), "left in b/tmp: {staging:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_push_and_pull_with_berth_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let (addr, stop) = start_berth_registry(&tmp.path().join("registry")).await;
    chunked_round_trip(&addr, tmp.path()).await;
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_push_and_pull_with_the_reference_registry() {
    let bin = Path::new("/usr/bin/docker-registry");
    if !bin.exists() {
        let msg = "/usr/bin/docker-registry is missing: install docker-registry (scripts/setup.sh)";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = tmp.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            tmp.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(bin)
        .arg("serve")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = {
        for _ in 0..400 {
            if std::net::TcpStream::connect(&addr).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let c = child.try_wait().unwrap();
        assert!(c.is_none(), "docker-registry exited: {c:?}");
        Kill(child)
    };
    chunked_round_trip(&addr, tmp.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_is_resolved_to_this_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let (addr, stop) = start_berth_registry(&tmp.path().join("registry")).await;
    let a = ImageStore::open(&tmp.path().join("a")).unwrap();
    let b = ImageStore::open(&tmp.path().join("b")).unwrap();
    let image = format!("{addr}/multi/x:single");
    let id = image_with_layer(&a, tmp.path(), &image, 10_000);
    let client = RegistryClient::new(Default::default()).unwrap();
    let (sink, _) = recorder();
    let out = push_with(
        &client,
        &a,
        &image,
        Credentials::default(),
        sink,
        UploadSizes::default(),
    )
    .await
    .unwrap();
    let (_, manifest) = a.manifest_of(&image).unwrap();
    let arch = berth_image::config::host_architecture();
    let other = if arch == "amd64" { "arm64" } else { "amd64" };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": out.digest,
             "size": manifest.len(), "platform": {"os": "linux", "architecture": other}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": out.digest,
             "size": manifest.len(), "platform": {"os": "linux", "architecture": arch}},
        ]
    });
    let body = serde_json::to_vec(&index).unwrap();
    let index_digest = berth_image::digest::sha256_of(&body);
    let resp = reqwest::Client::new()
        .put(format!("http://{addr}/v2/multi/x/manifests/multi"))
        .header("Content-Type", "application/vnd.oci.image.index.v1+json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    let (sink, seen) = recorder();
    let reference = format!("{addr}/multi/x:multi");
    let pulled = pull(&client, &b, &reference, Credentials::default(), sink)
        .await
        .unwrap();
    assert_eq!(pulled.image_id, id);
    assert_eq!(pulled.digest, index_digest);
    assert!(statuses(&seen).contains(&format!("Digest: {index_digest}")));
    // The index digest names the image locally too.
    assert_eq!(
        b.get(&format!("{addr}/multi/x@{index_digest}")).unwrap().id,
        id
    );
    let _ = stop.send(());
}
