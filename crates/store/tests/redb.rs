//! RedbStore beyond the conformance suite: durability across reopen and SIGKILL, file locking,
//! corrupt files, slow watchers, automatic compaction, group commit isolation.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use berth_store::{
    EventKind, Op, RangeRequest, RedbOptions, RedbStore, Revision, Store, StoreError, Txn,
    WatchStream,
};
use futures_util::StreamExt;
use rand::Rng;

const WAIT: Duration = Duration::from_secs(20);

async fn next(stream: &mut WatchStream) -> Result<berth_store::WatchEvent, StoreError> {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("watch item in time")
        .expect("watch not ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_keys_revision_and_history() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RedbStore::open(dir.path()).unwrap();
        store.put("a", b"1".to_vec()).await.unwrap();
        store.put("b", b"2".to_vec()).await.unwrap();
        store.put("a", b"3".to_vec()).await.unwrap();
        store.delete("b").await.unwrap();
        store.put("c", vec![0xff; 4000]).await.unwrap();
        store.compact(2).await.unwrap();
        assert_eq!(store.revision().await.unwrap(), 5);
    }
    let store = RedbStore::open(dir.path()).unwrap();
    assert_eq!(store.revision().await.unwrap(), 5);
    let a = store.get("a").await.unwrap().unwrap();
    assert_eq!(
        (a.value, a.create_revision, a.mod_revision, a.version),
        (b"3".to_vec(), 1, 3, 2)
    );
    assert_eq!(store.get("b").await.unwrap(), None);
    assert_eq!(
        store.get("c").await.unwrap().unwrap().value,
        vec![0xff; 4000]
    );
    // The history and the compaction point survived.
    assert!(matches!(
        store.watch("", 1).await,
        Err(StoreError::Compacted {
            requested: 1,
            compacted: 2
        })
    ));
    let mut watch = store.watch("", 2).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let event = next(&mut watch).await.unwrap();
        seen.push((event.kind, event.kv.key, event.kv.mod_revision));
    }
    assert_eq!(
        seen,
        [
            (EventKind::Put, "b".to_string(), 2),
            (EventKind::Put, "a".to_string(), 3),
            (EventKind::Delete, "b".to_string(), 4),
            (EventKind::Put, "c".to_string(), 5),
        ]
    );
    // Writing goes on from the stored revision, and the open watch gets it.
    assert_eq!(store.put("d", vec![]).await.unwrap(), 6);
    assert_eq!(next(&mut watch).await.unwrap().kv.mod_revision, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_open_fails_clearly_while_held() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    store.put("a", vec![1]).await.unwrap();
    let error = RedbStore::open(dir.path())
        .err()
        .expect("second open must fail");
    let message = error.to_string();
    assert!(message.contains("already open"), "{message}");
    assert!(
        message.contains(&dir.path().join("store.redb").display().to_string()),
        "{message}"
    );
    drop(store);
    // Released on drop.
    let store = RedbStore::open(dir.path()).unwrap();
    assert_eq!(store.get("a").await.unwrap().unwrap().value, vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_holding_the_store_is_reported() {
    if let Ok(dir) = std::env::var("BERTH_STORE_HOLD_DIR") {
        // Child: hold the store until killed.
        let _store = RedbStore::open(&dir).unwrap();
        println!("held");
        std::io::stdout().flush().unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "another_process_holding_the_store_is_reported",
            "--nocapture",
        ])
        .env("BERTH_STORE_HOLD_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let held = lines.any(|line| line.is_ok_and(|l| l.contains("held")));
    let result = RedbStore::open(dir.path());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(held, "the child did not open the store");
    let message = result.err().expect("open must fail while held").to_string();
    assert!(
        message.contains("already open") && message.contains("store.redb"),
        "{message}"
    );
    // After the holder died (SIGKILL), the store opens.
    RedbStore::open(dir.path()).unwrap();
}

#[test]
fn corrupt_file_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
    let message = RedbStore::open(dir.path())
        .err()
        .expect("garbage must not open")
        .to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");

    // A real store cut short.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        runtime.block_on(async {
            for i in 0..200 {
                store.put(&format!("k{i}"), vec![7; 2000]).await.unwrap();
            }
        });
    }
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..600]).unwrap();
    let message = RedbStore::open(dir.path())
        .err()
        .expect("a truncated file must not open")
        .to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_is_cut_off_with_a_resume_point() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        watch_buffer: 4,
        ..RedbOptions::default()
    };
    let store = RedbStore::open_with(dir.path(), options).unwrap();
    let mut slow = store.watch("k/", 0).await.unwrap();
    for i in 1..=20 {
        store
            .txn(
                Txn::new()
                    .and_then(Op::put(format!("k/{i}"), "a"))
                    .and_then(Op::put(format!("k/{i}/x"), "b")),
            )
            .await
            .unwrap();
    }
    // The 4 buffered revisions (both events of each), then the end.
    let mut seen = Vec::new();
    let resume_from = loop {
        match next(&mut slow).await {
            Ok(event) => seen.push(event.kv.mod_revision),
            Err(StoreError::WatchLagged { resume_from }) => break resume_from,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(seen, [1, 1, 2, 2, 3, 3, 4, 4]);
    assert_eq!(resume_from, 5);
    assert!(slow.next().await.is_none());
    // Resuming from there gives the rest, with no gap and no duplicate.
    let mut resumed = store.watch("k/", resume_from).await.unwrap();
    for revision in 5..=20 {
        for _ in 0..2 {
            assert_eq!(next(&mut resumed).await.unwrap().kv.mod_revision, revision);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_compacted_automatically() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        history_revisions: 10,
        ..RedbOptions::default()
    };
    let store = RedbStore::open_with(dir.path(), options.clone()).unwrap();
    for i in 0..200 {
        store
            .put(&format!("k{}", i % 7), vec![1; 10_000])
            .await
            .unwrap();
    }
    assert!(matches!(
        store.watch("", 190).await,
        Err(StoreError::Compacted {
            requested: 190,
            compacted: 191
        })
    ));
    let mut watch = store.watch("", 191).await.unwrap();
    for revision in 191..=200 {
        assert_eq!(next(&mut watch).await.unwrap().kv.mod_revision, revision);
    }
    let size_after_200 = std::fs::metadata(store.path()).unwrap().len();
    for i in 0..400 {
        store
            .put(&format!("k{}", i % 7), vec![1; 10_000])
            .await
            .unwrap();
    }
    let size_after_600 = std::fs::metadata(store.path()).unwrap().len();
    // 600 writes of 10 KB would be 6 MB of history; the file stays near its first size.
    assert!(
        size_after_600 <= size_after_200 + 2 * 1024 * 1024,
        "file grew from {size_after_200} to {size_after_600}"
    );
    drop(store);
    let store = RedbStore::open_with(dir.path(), options).unwrap();
    assert!(matches!(
        store.watch("", 590).await,
        Err(StoreError::Compacted { .. })
    ));
    assert!(store.watch("", 591).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_txn_in_a_group_commit_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path()).unwrap());
    let mut handles = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let txn = if i % 5 == 0 {
                Txn::new()
                    .and_then(Op::put("dup", "1"))
                    .and_then(Op::put("dup", "2"))
            } else {
                Txn::new().and_then(Op::put(format!("k/{i}"), i.to_string()))
            };
            (i, store.txn(txn).await)
        }));
    }
    let mut revisions = Vec::new();
    for handle in handles {
        let (i, result) = handle.await.unwrap();
        if i % 5 == 0 {
            assert!(
                matches!(result, Err(StoreError::InvalidRequest(_))),
                "{result:?}"
            );
        } else {
            revisions.push(result.unwrap().revision);
        }
    }
    revisions.sort();
    assert_eq!(revisions, (1..=160).collect::<Vec<Revision>>());
    assert_eq!(
        store
            .range(RangeRequest::prefix("k/"))
            .await
            .unwrap()
            .kvs
            .len(),
        160
    );
    assert_eq!(store.get("dup").await.unwrap(), None);
}

/// The child side of the crash test: concurrent acknowledged writes, each printed after its
/// acknowledgement, until killed.
async fn crash_child(dir: &str, round: u32) {
    // Rounds alternate: the default options (the write-ahead log is killed mid-cycle and
    // replayed on the next open), a log of 64 KiB (checkpoints and restarts of the log every
    // few batches, so a kill also lands during a checkpoint or right after a restart, with an
    // older cycle's records behind the tail), and no log (durable redb commits).
    let base = crash_options();
    let options = match round % 3 {
        0 => base,
        1 => RedbOptions {
            wal_max_bytes: 64 * 1024,
            ..base
        },
        _ => RedbOptions { wal: false, ..base },
    };
    let store = Arc::new(RedbStore::open_with(dir, options).unwrap());
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let mut handles = Vec::new();
    for task in 0..8u32 {
        let store = store.clone();
        let out = out.clone();
        handles.push(tokio::spawn(async move {
            for i in 0u64.. {
                let key = format!("r{round}/t{task}/{i}");
                let value = format!("{key}={}", "x".repeat((i % 50) as usize * 30));
                // Alternate plain puts and a transaction writing two keys plus a CAS counter.
                let revision = if i % 2 == 0 {
                    store.put(&key, value.into_bytes()).await.unwrap()
                } else {
                    let counter = format!("counter/t{task}");
                    store
                        .txn(
                            Txn::new()
                                .and_then(Op::put(&key, value.clone()))
                                .and_then(Op::put(counter, key.clone())),
                        )
                        .await
                        .unwrap()
                        .revision
                };
                let mut out = out.lock().unwrap();
                writeln!(out, "ack {revision} {key}").unwrap();
                out.flush().unwrap();
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
}

/// The crash test's store options: the whole history is kept (no automatic compaction), so
/// the parent can replay every revision of every round, however many the children wrote.
fn crash_options() -> RedbOptions {
    RedbOptions {
        history_revisions: 0,
        ..RedbOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_write() {
    if let Ok(dir) = std::env::var("BERTH_STORE_CRASH_DIR") {
        let round = std::env::var("BERTH_STORE_CRASH_ROUND")
            .unwrap()
            .parse()
            .unwrap();
        crash_child(&dir, round).await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged: BTreeMap<String, Revision> = BTreeMap::new();
    let mut rng = rand::thread_rng();
    for round in 0..6u32 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sigkill_loses_no_acknowledged_write",
                "--nocapture",
            ])
            .env("BERTH_STORE_CRASH_DIR", dir.path())
            .env("BERTH_STORE_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                // Only whole lines: the kill may cut the last one.
                if line.ends_with('\n') {
                    lines.push(line.trim_end().to_string());
                }
                line.clear();
            }
            lines
        });
        let delay = rng.gen_range(200..1500);
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        let mut this_round = 0;
        for line in lines {
            let mut parts = line.split(' ');
            if parts.next() != Some("ack") {
                continue;
            }
            let revision: Revision = parts.next().unwrap().parse().unwrap();
            let key = parts.next().unwrap().to_string();
            acknowledged.insert(key, revision);
            this_round += 1;
        }
        // Reopen and check every acknowledged write of every round so far.
        let store = RedbStore::open_with(dir.path(), crash_options()).unwrap();
        let current = store.revision().await.unwrap();
        for (key, revision) in &acknowledged {
            let kv = store
                .get(key)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged key {key} (revision {revision}) lost"));
            assert_eq!(kv.mod_revision, *revision, "{key}");
            assert!(kv.value.starts_with(key.as_bytes()));
            assert!(*revision <= current);
        }
        // Revisions are consistent: the history holds every revision 1..=current once, in
        // order, and the keys' mod revisions agree with it.
        // A sentinel write marks the end of what to read back.
        let sentinel = format!("sentinel/{round}");
        assert_eq!(store.put(&sentinel, vec![]).await.unwrap(), current + 1);
        let mut watch = store.watch("", 1).await.unwrap();
        let mut expected = 1;
        let mut last_put = BTreeMap::new();
        loop {
            let event = next(&mut watch).await.unwrap();
            let revision = event.kv.mod_revision;
            assert!(
                revision == expected || revision == expected - 1,
                "gap at {revision}"
            );
            expected = revision + 1;
            last_put.insert(event.kv.key.clone(), revision);
            if event.kv.key == sentinel {
                break;
            }
        }
        assert_eq!(expected, current + 2);
        let all = store.range(RangeRequest::prefix("")).await.unwrap();
        assert_eq!(all.revision, current + 1);
        assert_eq!(all.kvs.len(), last_put.len());
        for kv in &all.kvs {
            assert_eq!(Some(&kv.mod_revision), last_put.get(&kv.key));
        }
        eprintln!(
            "round {round}: killed after {delay} ms, {this_round} acknowledged writes, store at revision {current}"
        );
    }
    assert!(!acknowledged.is_empty());
}

/// The child of `writes_only_in_the_log_are_replayed_after_a_kill`: writes, reports, waits
/// to be killed without ever checkpointing.
async fn log_only_child(dir: &str) {
    let options = RedbOptions {
        wal_idle_checkpoint: Duration::from_secs(3600),
        ..RedbOptions::default()
    };
    let store = RedbStore::open_with(dir, options).unwrap();
    for i in 0..50u32 {
        store
            .txn(
                Txn::new()
                    .and_then(Op::put(format!("k/{i}"), format!("v{i}")))
                    .and_then(Op::delete(format!("k/{}", i.wrapping_sub(10)))),
            )
            .await
            .unwrap();
    }
    store.compact(20).await.unwrap();
    println!("done {}", store.revision().await.unwrap());
    std::thread::sleep(Duration::from_secs(3600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_only_in_the_log_are_replayed_after_a_kill() {
    if let Ok(dir) = std::env::var("BERTH_STORE_LOG_ONLY_DIR") {
        log_only_child(&dir).await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "writes_only_in_the_log_are_replayed_after_a_kill",
            "--nocapture",
        ])
        .env("BERTH_STORE_LOG_ONLY_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let revision = loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "child ended early"
        );
        if let Some(rev) = line.trim_end().strip_prefix("done ") {
            break rev.parse::<Revision>().unwrap();
        }
    };
    child.kill().unwrap(); // SIGKILL: redb never made these commits durable
    child.wait().unwrap();
    assert_eq!(revision, 50);

    let store = RedbStore::open(dir.path()).unwrap();
    assert_eq!(store.revision().await.unwrap(), 50);
    let keys = store.range(RangeRequest::prefix("k/")).await.unwrap();
    let mut names: Vec<_> = keys.kvs.iter().map(|kv| kv.key.clone()).collect();
    names.sort();
    let mut expected: Vec<_> = (40..50).map(|i| format!("k/{i}")).collect();
    expected.sort();
    assert_eq!(names, expected);
    let kv = store.get("k/45").await.unwrap().unwrap();
    assert_eq!((kv.value.as_slice(), kv.mod_revision), (&b"v45"[..], 46));
    // The compaction was replayed too; history from it on is whole.
    assert!(matches!(
        store.watch("k/", 19).await,
        Err(StoreError::Compacted { compacted: 20, .. })
    ));
    let mut watch = store.watch("k/", 20).await.unwrap();
    let first = next(&mut watch).await.unwrap();
    assert_eq!(first.kv.mod_revision, 20);
    // And writing goes on from there, surviving a clean reopen.
    assert_eq!(store.put("k/after", b"x".to_vec()).await.unwrap(), 51);
    drop(watch);
    drop(store);
    let store = RedbStore::open(dir.path()).unwrap();
    assert_eq!(store.revision().await.unwrap(), 51);
}
