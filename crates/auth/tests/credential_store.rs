//! `CredentialStore::load_or_create` on a real filesystem.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};

use berth_auth::{AuthError, CredentialStore};

#[test]
fn creates_once_with_mode_0600_then_reuses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/server");
    let (store, created) = CredentialStore::load_or_create(&dir).unwrap();
    assert!(created);
    assert_eq!(store.path(), dir.join("credentials"));
    let meta = std::fs::metadata(store.path()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let creds = store.profile("default").unwrap().clone();
    assert_eq!(store.lookup(&creds.access_key_id), Some(&creds));
    assert_eq!(store.lookup("AKIANOTTHERE"), None);

    let text = std::fs::read_to_string(store.path()).unwrap();
    assert!(text.contains("[default]\n"), "{text}");
    assert!(text.contains(&format!("aws_access_key_id = {}\n", creds.access_key_id)));
    assert!(text.contains(&format!(
        "aws_secret_access_key = {}\n",
        creds.secret_access_key
    )));
    // No temp files left behind.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("credentials")]);

    let (again, created) = CredentialStore::load_or_create(&dir).unwrap();
    assert!(!created);
    assert_eq!(again.profile("default"), Some(&creds));
}

#[test]
fn concurrent_first_starts_agree_on_one_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(tmp.path().join("server"));
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (dir, barrier) = (dir.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                CredentialStore::load_or_create(&dir).unwrap()
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let on_disk = CredentialStore::load(&dir.join("credentials")).unwrap();
    let key = on_disk.profile("default").unwrap();
    assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
    for (store, _) in &results {
        assert_eq!(store.profile("default"), Some(key));
    }
}

#[test]
fn every_profile_in_the_file_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("credentials"),
        "[default]\naws_access_key_id = AKIAONE\naws_secret_access_key = s1\n\n[ci]\naws_access_key_id=AKIATWO\naws_secret_access_key=s2\nregion=eu-west-1\n",
    )
    .unwrap();
    let (store, created) = CredentialStore::load_or_create(tmp.path()).unwrap();
    assert!(!created);
    assert_eq!(store.lookup("AKIAONE").unwrap().secret_access_key, "s1");
    assert_eq!(store.lookup("AKIATWO").unwrap().secret_access_key, "s2");
    assert_eq!(store.lookup_entry("AKIATWO").unwrap().profile, "ci");
    assert_eq!(store.entries().len(), 2);
}

#[test]
fn a_malformed_file_is_an_error_naming_path_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("credentials");
    std::fs::write(&path, "[default]\naws_access_key_id = AKIAONE\noops\n").unwrap();
    let err = CredentialStore::load_or_create(tmp.path()).unwrap_err();
    assert!(
        matches!(err, AuthError::MalformedCredentials { line: 3, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("line 3"),
        "{msg}"
    );
    assert_eq!(err.aws_code(), None);
    assert_eq!(err.http_status(), 500);
    // The file is left as it was.
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "[default]\naws_access_key_id = AKIAONE\noops\n"
    );
}

#[test]
fn an_unwritable_place_is_an_io_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = CredentialStore::load_or_create(&file.join("server")).unwrap_err();
    assert!(matches!(err, AuthError::Io { .. }), "{err:?}");
    assert!(err.to_string().starts_with("credentials file "), "{err}");
}
