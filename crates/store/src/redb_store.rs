//! [`RedbStore`]: the embedded durable backend, one [redb](https://www.redb.org) file
//! (`<dir>/store.redb`) and its write-ahead log (`<dir>/store.wal`, module `wal`).
//!
//! Tables:
//! - `keys`: key -> encoded [`KeyValue`] (without the key);
//! - `history`: (revision, n-th event of the revision) -> encoded [`WatchEvent`], what a watch
//!   from an old revision replays; trimmed by compaction;
//! - `meta`: `revision` (the store revision), `compacted` (the oldest revision a watch may
//!   still start from) and `wal_lsn` (the last log record the tables include).
//!
//! Writes go through one writer thread doing group commit: it takes every queued request
//! (up to [`RedbOptions::max_batch`]), applies them in order inside ONE redb write transaction
//! (each writing [`Txn`] gets its own revision and sees the effects of the ones before it; a
//! transaction that fails validation fails alone), makes the batch durable, then commits it
//! (readers see it from here on), publishes the new revision, hands the events to the live
//! watchers and only then answers the callers. So an answered write is on disk, and a watch
//! started after an answer sees everything after it.
//!
//! Durable means: with the write-ahead log ([`RedbOptions::wal`], the default), the batch's
//! events are appended to the log as one record and `fdatasync`ed, answered from memory (the
//! overlay), and applied to redb later by the applier thread, many batches per commit and
//! without an fsync (`Durability::None`, module `logged`); a checkpoint (one durable redb
//! commit) happens when the log reaches [`RedbOptions::wal_max_bytes`], after
//! [`RedbOptions::wal_idle_checkpoint`] without writes, and on close, and then the log starts
//! over. Opening replays the log records after
//! redb's `wal_lsn` (their events: puts, deletes, history rows, the compaction point) and
//! checkpoints. Without the log, redb's commit itself is durable (one fsync). If writing the
//! log or the commit after it fails, the store refuses every later write (reopening recovers).
//!
//! Reads (`range`, `get`, read-only transactions) run on redb read transactions (MVCC
//! snapshots) and never wait for the writer.
//!
//! A watch first replays the history table from its start revision in chunks (in the
//! consumer's pace: nothing is buffered ahead), then registers with the writer's fan-out under
//! the same lock the writer publishes under, when it has caught up; events the writer publishes
//! after that are passed through a bounded channel of [`RedbOptions::watch_buffer`] revisions,
//! skipping revisions the replay already delivered, so there is no gap and no duplicate. A
//! watcher whose channel is full is dropped and its stream ends with
//! [`StoreError::WatchLagged`] naming the first revision it did not get.

use std::fmt::Display;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use crate::logic::{apply_txn, validate_txn, KeySpace};
use crate::overlay::{merge_one, merge_range, Overlay};
use crate::wal::Wal;

mod logged;
mod records;

use crate::{
    EventKind, KeyValue, RangeRequest, RangeResponse, Revision, Store, StoreError, Txn,
    TxnResponse, WatchEvent, WatchStream,
};
use logged::{apply_batch_logged, Applier, LayeredSpace};
use records::{
    decode_event, decode_event_under, decode_kv, encode_event, encode_kv, push_sized, Reader,
};

const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
const HISTORY: TableDefinition<(i64, u32), &[u8]> = TableDefinition::new("history");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");

const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";
/// The lsn of the last write-ahead log record redb's state includes.
const META_WAL_LSN: &str = "wal_lsn";

/// How many history rows one catch-up read of a watch scans at most (whole revisions).
const CATCH_UP_CHUNK: usize = 1024;

/// Ranges that may return more keys than this are read on a blocking thread.
const INLINE_RANGE_LIMIT: usize = 256;

/// Tuning of a [`RedbStore`].
#[derive(Clone, Debug)]
pub struct RedbOptions {
    /// Keep the watch history of (at least) the last this many revisions; older history is
    /// compacted automatically as writes go on. 0 disables automatic compaction.
    pub history_revisions: i64,
    /// How many revisions' worth of events a live watcher may have unread before it is dropped
    /// with [`StoreError::WatchLagged`].
    pub watch_buffer: usize,
    /// The most requests one group commit takes.
    pub max_batch: usize,
    /// redb's page cache size in bytes. Half of it may hold pages written by commits that
    /// are not yet durable, which a checkpoint then writes out at once: kept small so pages
    /// reach the file (and the writeback) early; reads are served by the OS page cache.
    pub cache_size: usize,
    /// redb's quick repair: each commit also saves the allocator state (a second fsync), so
    /// opening after a crash does not have to walk the whole file.
    pub quick_repair: bool,
    /// Write-ahead log (`store.wal`, see `wal`): each group commit is acknowledged after one
    /// `fdatasync` of a log record in a preallocated file, and redb commits without an fsync
    /// until a checkpoint. Off: every group commit is a durable redb commit.
    pub wal: bool,
    /// The log is checkpointed (a durable redb commit) and restarted once it holds this many
    /// bytes; this also bounds what an open after a crash replays.
    pub wal_max_bytes: u64,
    /// An idle writer checkpoints a non-empty log after this long without writes.
    pub wal_idle_checkpoint: std::time::Duration,
    /// With the log: answered writes wait in memory (the overlay, which reads merge) at least
    /// this long before they are applied to redb, so that many batches go in one commit
    /// (redb copies every page a commit touches; a key rewritten by many batches is written
    /// once). Longer: fewer bytes written per write, more memory and merging per read.
    pub apply_delay: std::time::Duration,
    /// With the log: start writeback of the redb file's dirty pages this often from a
    /// background thread (`sync_file_range`), so a checkpoint's fsync finds little left to
    /// write (None: only checkpoints flush).
    pub writeback_interval: Option<std::time::Duration>,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            history_revisions: 10_000,
            watch_buffer: 1024,
            max_batch: 1024,
            cache_size: 16 * 1024 * 1024,
            quick_repair: false,
            wal: true,
            wal_max_bytes: 16 * 1024 * 1024,
            wal_idle_checkpoint: std::time::Duration::from_secs(1),
            writeback_interval: Some(std::time::Duration::from_millis(20)),
            apply_delay: std::time::Duration::from_millis(100),
        }
    }
}

/// The embedded durable [`Store`]. See the module documentation for how it works.
///
/// Dropping it waits for the writer thread to finish its current batch and closes the file
/// (watch streams then end with [`StoreError::Closed`]), so the same directory can be opened
/// again right after.
pub struct RedbStore {
    shared: Arc<Shared>,
    requests: Option<std_mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    /// Stops the background writeback thread when dropped.
    writeback: Option<std_mpsc::Sender<()>>,
}

/// Starts the thread that flushes the redb file's dirty pages every `every` (see
/// [`RedbOptions::writeback_interval`]); it ends when the returned sender is dropped.
fn start_writeback(
    path: &Path,
    every: std::time::Duration,
) -> Result<std_mpsc::Sender<()>, StoreError> {
    let file = std::fs::File::open(path)
        .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
    let (stop, stopped) = std_mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("berth-store-writeback".into())
        .spawn(move || {
            use std::os::fd::AsRawFd;
            while let Err(std_mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                // Starts writeback of every dirty page without waiting for it or flushing the
                // device: the data trickles to disk instead of arriving in one burst at the
                // checkpoint, whose fsyncs would hold up the log's.
                // SAFETY: a valid open descriptor; the call only schedules I/O.
                unsafe {
                    libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
                }
            }
        })
        .map_err(|e| StoreError::Backend(format!("cannot start the store writeback: {e}")))?;
    Ok(stop)
}

struct Shared {
    db: Database,
    path: PathBuf,
    options: RedbOptions,
    /// The last committed revision.
    revision: AtomicI64,
    /// The oldest revision a watch may start from.
    compacted: AtomicI64,
    hub: Mutex<Hub>,
    /// Logged writes not yet applied to redb (see [`crate::overlay`]); readers merge them.
    overlay: Mutex<Arc<Overlay>>,
}

/// The live watchers, and the last revision handed to them.
struct Hub {
    notified: Revision,
    watchers: Vec<LiveWatcher>,
    closed: bool,
}

struct LiveWatcher {
    prefix: String,
    /// Revisions below this were delivered from history already.
    from: Revision,
    sender: mpsc::Sender<Vec<WatchEvent>>,
    /// Set to the first revision not delivered when the channel overflowed.
    lagged: Arc<AtomicI64>,
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Request {
    Txn(Txn, Reply<TxnResponse>),
    Compact(Revision, Reply<()>),
}

fn backend(context: &str) -> impl Fn(&dyn Display) -> StoreError + '_ {
    move |e| StoreError::Backend(format!("{context}: {e}"))
}

macro_rules! be {
    ($ctx:expr) => {
        |e| backend($ctx)(&e)
    };
}

impl RedbStore {
    /// Opens (creating if needed) the store in `dir`, with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(dir, RedbOptions::default())
    }

    /// Opens (creating if needed) the store in `dir`.
    pub fn open_with(dir: impl AsRef<Path>, options: RedbOptions) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!(
                "cannot create store directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join("store.redb");
        let db = open_database(&path, options.cache_size)?;
        let ctx = path.display().to_string();
        // Create the tables on first open and read the counters.
        let (mut revision, mut compacted, applied_lsn) = {
            let mut wtx = db.begin_write().map_err(be!(&ctx))?;
            wtx.set_quick_repair(options.quick_repair);
            let counters;
            let applied_lsn;
            {
                wtx.open_table(KEYS).map_err(be!(&ctx))?;
                wtx.open_table(HISTORY).map_err(be!(&ctx))?;
                let meta = wtx.open_table(META).map_err(be!(&ctx))?;
                counters = read_counters(&meta).map_err(be!(&ctx))?;
                applied_lsn = meta
                    .get(META_WAL_LSN)
                    .map_err(be!(&ctx))?
                    .map_or(0, |v| v.value());
            }
            wtx.commit().map_err(be!(&ctx))?;
            (counters.0, counters.1, applied_lsn)
        };
        // Replay the write-ahead log's records that redb's durable state lacks, then make
        // them durable in redb (a checkpoint) so the log can start over.
        let wal_path = dir.join("store.wal");
        let wal = if options.wal || wal_path.exists() {
            let wal_ctx = wal_path.display().to_string();
            let (wal, records) = Wal::open(&wal_path, applied_lsn as u64).map_err(be!(&wal_ctx))?;
            if !records.is_empty() {
                let logged = records.iter().map(|r| (r.lsn, r.payload.as_slice()));
                (revision, compacted) = replay(
                    &db,
                    logged,
                    revision,
                    compacted,
                    redb::Durability::Immediate,
                )?;
            }
            options.wal.then_some(wal)
        } else {
            None
        };
        let shared = Arc::new(Shared {
            db,
            path,
            options: options.clone(),
            revision: AtomicI64::new(revision),
            compacted: AtomicI64::new(compacted),
            hub: Mutex::new(Hub {
                notified: revision,
                watchers: Vec::new(),
                closed: false,
            }),
            overlay: Mutex::new(Arc::default()),
        });
        let applier = match &wal {
            Some(_) => Some(Applier::start(shared.clone())?),
            None => None,
        };
        let writeback = match (options.wal, options.writeback_interval) {
            (true, Some(every)) => Some(start_writeback(&shared.path, every)?),
            _ => None,
        };
        let (requests, receiver) = std_mpsc::channel();
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("berth-store-writer".into())
            .spawn(move || {
                let mut writer = Writer {
                    wal,
                    failed: None,
                    overlay: Overlay::default(),
                    applier,
                    stored_revision: revision,
                    stored_compacted: compacted,
                };
                writer_loop(&writer_shared, &mut writer, &receiver)
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the store writer: {e}")))?;
        Ok(RedbStore {
            shared,
            requests: Some(requests),
            writer: Some(writer),
            writeback,
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    async fn submit<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(make(reply))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Reads on a blocking thread (the caller's future may be dropped; the read still ends).
    async fn read_blocking<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Shared) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || read(&shared))
            .await
            .map_err(|e| StoreError::Backend(format!("store read failed: {e}")))?
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // Closing the queue ends the writer after its current batch; it then closes the
        // watchers. Joining makes sure the file is released when this returns (the database
        // closes when the last reference to `Shared` goes, which is ours or a short read's).
        self.requests = None;
        self.writeback = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn open_database(path: &Path, cache_size: usize) -> Result<Database, StoreError> {
    let shown = path.display();
    // A damaged file can make redb panic instead of failing; report it as corruption.
    let opened =
        std::panic::catch_unwind(|| Database::builder().set_cache_size(cache_size).create(path));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => Err(StoreError::Backend(format!(
            "store file {shown} is already open (another berth process holds it)"
        ))),
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(message)))) => Err(
            StoreError::Backend(format!("store file {shown} is corrupt: {message}")),
        ),
        Ok(Err(e)) => Err(StoreError::Backend(format!(
            "cannot open store file {shown} (damaged or not a store?): {e}"
        ))),
        Err(_) => Err(StoreError::Backend(format!(
            "store file {shown} is corrupt (the database engine failed reading it)"
        ))),
    }
}

fn read_counters(
    meta: &impl ReadableTable<&'static str, i64>,
) -> Result<(Revision, Revision), redb::StorageError> {
    let revision = meta.get(META_REVISION)?.map_or(0, |v| v.value());
    let compacted = meta.get(META_COMPACTED)?.map_or(0, |v| v.value());
    Ok((revision, compacted))
}

// ---------------------------------------------------------------------------------------------
// Key spaces over redb tables

fn storage(e: impl Display) -> StoreError {
    StoreError::Backend(format!("store I/O failed: {e}"))
}

fn table_get(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<KeyValue>, StoreError> {
    match table.get(key).map_err(storage)? {
        Some(guard) => Ok(Some(decode_kv(key, guard.value())?)),
        None => Ok(None),
    }
}

/// Keys under `prefix` after `start_after`, at most `limit`; and whether more matched.
fn table_range(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
    start_after: Option<&str>,
    limit: usize,
) -> Result<(Vec<KeyValue>, bool), StoreError> {
    let start = match start_after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    };
    let mut kvs = Vec::new();
    let mut more = false;
    for entry in table
        .range::<&str>((start, Bound::Unbounded))
        .map_err(storage)?
    {
        let (key, value) = entry.map_err(storage)?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        if kvs.len() == limit {
            more = true;
            break;
        }
        kvs.push(decode_kv(key, value.value())?);
    }
    Ok((kvs, more))
}

struct WriteSpace<'a, 't>(&'a mut redb::Table<'t, &'static str, &'static [u8]>);

impl KeySpace for WriteSpace<'_, '_> {
    fn get(&mut self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        table_get(&*self.0, key)
    }

    fn put(&mut self, kv: KeyValue) -> Result<(), StoreError> {
        self.0
            .insert(kv.key.as_str(), encode_kv(&kv).as_slice())
            .map_err(storage)?;
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<(), StoreError> {
        self.0.remove(key).map_err(storage)?;
        Ok(())
    }

    fn keys_with_prefix(&mut self, prefix: &str) -> Result<Vec<KeyValue>, StoreError> {
        Ok(table_range(&*self.0, prefix, None, usize::MAX)?.0)
    }
}

fn is_read_only(txn: &Txn) -> bool {
    !txn.success.iter().chain(&txn.failure).any(|op| op.writes())
}

impl Shared {
    fn hub(&self) -> MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.db.begin_read().map_err(storage)
    }

    /// The overlay as published by the writer. Readers take it BEFORE opening their redb
    /// snapshot (see [`crate::overlay`]).
    fn overlay(&self) -> Arc<Overlay> {
        self.overlay
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes the writer's overlay what readers see.
    fn publish_overlay(&self, overlay: &Overlay) {
        *self.overlay.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(overlay.clone());
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let overlay = self.overlay();
        let rtx = self.begin_read()?;
        let keys = rtx.open_table(KEYS).map_err(storage)?;
        Ok(merge_one(overlay.get(key), table_get(&keys, key)?))
    }

    fn read_revision(rtx: &redb::ReadTransaction) -> Result<(Revision, Revision), StoreError> {
        let meta = rtx.open_table(META).map_err(storage)?;
        read_counters(&meta).map_err(storage)
    }

    fn range(&self, request: &RangeRequest) -> Result<RangeResponse, StoreError> {
        let overlay = self.overlay();
        let rtx = self.begin_read()?;
        let (revision, _) = Self::read_revision(&rtx)?;
        let keys = rtx.open_table(KEYS).map_err(storage)?;
        let (prefix, after) = (&request.prefix, request.start_after.as_deref());
        let limit = request.limit.unwrap_or(usize::MAX);
        // Pending deletions may hide some of redb's keys: ask for that many more.
        let extra = overlay.deletions_in(prefix, after);
        let (stored, more) = table_range(&keys, prefix, after, limit.saturating_add(extra))?;
        let (kvs, more) = if overlay.is_empty() {
            (stored, more)
        } else {
            merge_range(&overlay, prefix, after, stored, more, limit)
        };
        Ok(RangeResponse {
            kvs,
            more,
            revision: revision.max(overlay.revision()),
        })
    }

    fn read_txn(&self, txn: &Txn) -> Result<TxnResponse, StoreError> {
        let overlay = self.overlay();
        let rtx = self.begin_read()?;
        let (revision, _) = Self::read_revision(&rtx)?;
        let keys = rtx.open_table(KEYS).map_err(storage)?;
        let revision = revision.max(overlay.revision());
        let (response, _) = apply_txn(&mut LayeredSpace::new(&keys, &overlay), revision, txn)?;
        Ok(response)
    }

    /// History events from revision `next` on, whole revisions, about `CATCH_UP_CHUNK` rows:
    /// the matching events and the revision to continue from.
    fn read_history(
        &self,
        prefix: &str,
        next: Revision,
    ) -> Result<(Vec<WatchEvent>, Revision), StoreError> {
        let overlay = self.overlay();
        let rtx = self.begin_read()?;
        let (_, compacted) = Self::read_revision(&rtx)?;
        if next < compacted {
            return Err(StoreError::Compacted {
                requested: next,
                compacted,
            });
        }
        let history = rtx.open_table(HISTORY).map_err(storage)?;
        let mut events = Vec::new();
        let mut continue_from = next;
        let mut whole = true;
        for (scanned, entry) in history.range((next, 0)..).map_err(storage)?.enumerate() {
            let (key, value) = entry.map_err(storage)?;
            let (revision, _) = key.value();
            if scanned >= CATCH_UP_CHUNK && revision >= continue_from {
                whole = false;
                break;
            }
            continue_from = revision + 1;
            let bytes = value.value();
            if let Some(event) = decode_event_under(bytes, prefix)? {
                events.push(event);
            }
        }
        // Past redb's history: the revisions still in the overlay, in order.
        if whole {
            for (revision, written) in overlay.history_from(continue_from) {
                if revision != continue_from {
                    break;
                }
                continue_from = revision + 1;
                events.extend(written.into_iter().filter(|e| e.kv.key.starts_with(prefix)));
            }
        }
        Ok((events, continue_from))
    }

    /// Registers a live watcher continuing at `next` if the fan-out has not passed it.
    fn try_go_live(&self, prefix: &str, next: Revision) -> Result<Option<WatchPhase>, StoreError> {
        let mut hub = self.hub();
        if hub.closed {
            return Err(StoreError::Closed);
        }
        if hub.notified >= next {
            return Ok(None);
        }
        let (sender, receiver) = mpsc::channel(self.options.watch_buffer.max(1));
        let lagged = Arc::new(AtomicI64::new(0));
        hub.watchers.push(LiveWatcher {
            prefix: prefix.to_string(),
            from: next,
            sender,
            lagged: lagged.clone(),
        });
        Ok(Some(WatchPhase::Live { receiver, lagged }))
    }
}

// ---------------------------------------------------------------------------------------------
// The writer

enum Outcome {
    Txn(Result<(TxnResponse, Vec<WatchEvent>), StoreError>),
    Compact(Result<(), StoreError>),
}

/// The writer thread's own state.
struct Writer {
    /// The write-ahead log, when the store uses one.
    wal: Option<Wal>,
    /// Set when writing the log or committing after it failed: the state on disk and in
    /// memory may then differ, so every later write fails (reopening replays the log).
    failed: Option<StoreError>,
    /// With the log: answered writes not yet in redb (readers see the published copy).
    overlay: Overlay,
    /// With the log: the thread applying the overlay to redb and checkpointing.
    applier: Option<Applier>,
    /// redb's own revision and compaction point (behind the store's by the overlay).
    stored_revision: Revision,
    stored_compacted: Revision,
}

fn writer_loop(shared: &Shared, writer: &mut Writer, requests: &std_mpsc::Receiver<Request>) {
    let max_batch = shared.options.max_batch.max(1);
    loop {
        // With the log: take the applier's report, give it its next job (applying answered
        // writes to redb, checkpointing), all off the answering path.
        writer.collect(shared, false);
        writer.tend(shared, false);
        let pending = writer.tend_within(shared);
        let idle_wait = pending.is_none()
            && writer.failed.is_none()
            && writer.wal.as_ref().is_some_and(Wal::has_records);
        let wait = pending.or(idle_wait.then_some(shared.options.wal_idle_checkpoint));
        let first = match wait {
            Some(timeout) => match requests.recv_timeout(timeout) {
                Ok(request) => request,
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    if idle_wait {
                        writer.tend(shared, true);
                    }
                    continue;
                }
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match requests.recv() {
                Ok(request) => request,
                Err(_) => break,
            },
        };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        run_batch(shared, writer, batch);
    }
    // Closing: finish a running job, apply what is left, make everything durable in redb so
    // the next open replays nothing.
    writer.collect(shared, true);
    writer.apply_all_now(shared);
    checkpoint(shared, writer);
    let mut hub = shared.hub();
    hub.closed = true;
    hub.watchers.clear();
}

/// How often a writer waiting for requests looks at a running checkpoint or the overlay.
const BUSY_POLL: std::time::Duration = std::time::Duration::from_millis(2);

/// Makes every commit so far durable in redb (one durable commit on this thread) and
/// restarts the log: at close, once nothing is left in the overlay.
fn checkpoint(shared: &Shared, writer: &mut Writer) {
    if writer.failed.is_some() || !writer.overlay.is_empty() {
        return;
    }
    let Some(wal) = writer.wal.as_mut() else {
        return;
    };
    // On failure the log still holds everything: the next open replays it.
    if logged::durable_commit(shared).is_ok() {
        wal.restart();
    }
}

fn run_batch(shared: &Shared, writer: &mut Writer, batch: Vec<Request>) {
    let revision = shared.revision.load(Ordering::Acquire);
    let compacted = shared.compacted.load(Ordering::Acquire);
    let applied = match &writer.failed {
        Some(error) => Err(error.clone()),
        None if writer.wal.is_some() => {
            apply_batch_logged(shared, writer, &batch, revision, compacted)
        }
        None => apply_batch(shared, &batch, revision, compacted),
    };
    match applied {
        Ok((outcomes, new_revision, new_compacted)) => {
            shared.compacted.store(new_compacted, Ordering::Release);
            shared.revision.store(new_revision, Ordering::Release);
            {
                let mut hub = shared.hub();
                for outcome in &outcomes {
                    if let Outcome::Txn(Ok((response, events))) = outcome {
                        if !events.is_empty() {
                            fan_out(&mut hub, response.revision, events);
                        }
                    }
                }
                hub.notified = new_revision;
            }
            for (request, outcome) in batch.into_iter().zip(outcomes) {
                match (request, outcome) {
                    (Request::Txn(_, reply), Outcome::Txn(result)) => {
                        let _ = reply.send(result.map(|(response, _)| response));
                    }
                    (Request::Compact(_, reply), Outcome::Compact(result)) => {
                        let _ = reply.send(result);
                    }
                    _ => unreachable!("outcomes follow the requests"),
                }
            }
        }
        Err(error) => {
            // Nothing of the batch was committed.
            for request in batch {
                match request {
                    Request::Txn(_, reply) => {
                        let _ = reply.send(Err(error.clone()));
                    }
                    Request::Compact(_, reply) => {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
            }
        }
    }
}

fn fan_out(hub: &mut Hub, revision: Revision, events: &[WatchEvent]) {
    hub.watchers.retain(|watcher| {
        if revision < watcher.from {
            return true;
        }
        let matching: Vec<WatchEvent> = events
            .iter()
            .filter(|e| e.kv.key.starts_with(&watcher.prefix))
            .cloned()
            .collect();
        if matching.is_empty() {
            return true;
        }
        match watcher.sender.try_send(matching) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                watcher.lagged.store(revision, Ordering::Release);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    });
}

type BatchResult = (Vec<Outcome>, Revision, Revision);

/// Without the log: applies a batch in one durable redb commit (one fsync).
fn apply_batch(
    shared: &Shared,
    batch: &[Request],
    mut revision: Revision,
    mut compacted: Revision,
) -> Result<BatchResult, StoreError> {
    let mut wtx = shared.db.begin_write().map_err(storage)?;
    wtx.set_durability(redb::Durability::Immediate)
        .map_err(storage)?;
    wtx.set_quick_repair(shared.options.quick_repair);
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut dirty = false;
    {
        let mut keys = wtx.open_table(KEYS).map_err(storage)?;
        let mut history = wtx.open_table(HISTORY).map_err(storage)?;
        for request in batch {
            match request {
                Request::Txn(txn, _) => {
                    if let Err(e) = validate_txn(txn) {
                        outcomes.push(Outcome::Txn(Err(e)));
                        continue;
                    }
                    // An error here is the backend's: it fails the whole batch.
                    let (response, events) = apply_txn(&mut WriteSpace(&mut keys), revision, txn)?;
                    dirty |= !events.is_empty();
                    for (n, event) in events.iter().enumerate() {
                        let bytes = encode_event(event);
                        history
                            .insert((response.revision, n as u32), bytes.as_slice())
                            .map_err(storage)?;
                    }
                    revision = response.revision;
                    outcomes.push(Outcome::Txn(Ok((response, events))));
                }
                Request::Compact(to, _) => {
                    let result = compaction_request(*to, revision, compacted);
                    if let Ok(Some(to)) = result {
                        trim_history(&mut history, to)?;
                        compacted = to;
                        dirty = true;
                    }
                    outcomes.push(Outcome::Compact(result.map(|_| ())));
                }
            }
        }
        if let Some(to) = automatic_compaction(shared, revision, compacted) {
            compacted = to;
            trim_history(&mut history, compacted)?;
            dirty = true;
        }
        if dirty {
            let mut meta = wtx.open_table(META).map_err(storage)?;
            meta.insert(META_REVISION, revision).map_err(storage)?;
            meta.insert(META_COMPACTED, compacted).map_err(storage)?;
        }
    }
    if dirty {
        wtx.commit().map_err(storage)?;
    } else {
        wtx.abort().map_err(storage)?;
    }
    Ok((outcomes, revision, compacted))
}

/// A `compact(to)` request at store revision `revision`: the new compaction point when it
/// moves, None when it does not, an error for a future revision.
fn compaction_request(
    to: Revision,
    revision: Revision,
    compacted: Revision,
) -> Result<Option<Revision>, StoreError> {
    if to > revision {
        return Err(StoreError::FutureRevision {
            requested: to,
            current: revision,
        });
    }
    Ok((to > compacted).then_some(to))
}

/// The compaction point that keeps the last `history_revisions` revisions, when it moves.
fn automatic_compaction(
    shared: &Shared,
    revision: Revision,
    compacted: Revision,
) -> Option<Revision> {
    let keep = shared.options.history_revisions;
    (keep > 0 && revision + 1 - compacted > keep).then(|| revision + 1 - keep)
}

/// Deletes the history of revisions below `to`.
fn trim_history(
    history: &mut redb::Table<'_, (i64, u32), &'static [u8]>,
    to: Revision,
) -> Result<(), StoreError> {
    history.retain_in(..(to, 0), |_, _| false).map_err(storage)
}

/// A log record's payload: the batch's final revision and compaction point, then each
/// writing transaction's revision and events (`push_sized` encoded events).
struct LogPayload {
    bytes: Vec<u8>,
    writes: u32,
}

/// Where the payload's header (revision, compaction point, number of writes) goes.
const LOG_HEADER: usize = 8 + 8 + 4;

impl LogPayload {
    fn new() -> Self {
        LogPayload {
            bytes: vec![0; LOG_HEADER],
            writes: 0,
        }
    }

    /// Starts the events of one writing transaction.
    fn begin_write(&mut self, revision: Revision, events: usize) {
        self.writes += 1;
        self.bytes.extend_from_slice(&revision.to_le_bytes());
        self.bytes.extend_from_slice(&(events as u32).to_le_bytes());
    }

    /// Adds one encoded event of the current transaction.
    fn event(&mut self, encoded: &[u8]) {
        push_sized(&mut self.bytes, encoded);
    }

    fn finish(mut self, revision: Revision, compacted: Revision) -> Vec<u8> {
        self.bytes[0..8].copy_from_slice(&revision.to_le_bytes());
        self.bytes[8..16].copy_from_slice(&compacted.to_le_bytes());
        self.bytes[16..20].copy_from_slice(&self.writes.to_le_bytes());
        self.bytes
    }
}

impl Default for LogPayload {
    fn default() -> Self {
        LogPayload::new()
    }
}

/// Applies log records (lsn, payload) to redb in one commit of `durability` (at open, the
/// records the log holds beyond redb's state; while running, the overlay's oldest); returns
/// redb's new revision and compaction point.
fn replay<'a>(
    db: &Database,
    records: impl IntoIterator<Item = (u64, &'a [u8])>,
    mut revision: Revision,
    mut compacted: Revision,
    durability: redb::Durability,
) -> Result<(Revision, Revision), StoreError> {
    let replay_error = |e: &dyn Display| StoreError::Backend(format!("store log replay: {e}"));
    let mut wtx = db.begin_write().map_err(|e| replay_error(&e))?;
    wtx.set_durability(durability)
        .map_err(|e| replay_error(&e))?;
    {
        let mut keys = wtx.open_table(KEYS).map_err(storage)?;
        let mut history = wtx.open_table(HISTORY).map_err(storage)?;
        let mut meta = wtx.open_table(META).map_err(storage)?;
        for (lsn, payload) in records {
            let mut reader = Reader(payload);
            let batch_revision = reader.i64()?;
            let batch_compacted = reader.i64()?;
            for _ in 0..reader.u32()? {
                let rev = reader.i64()?;
                for n in 0..reader.u32()? {
                    let bytes = reader.sized()?;
                    let event = decode_event(bytes)?;
                    match event.kind {
                        EventKind::Put => {
                            keys.insert(event.kv.key.as_str(), encode_kv(&event.kv).as_slice())
                                .map_err(storage)?;
                        }
                        EventKind::Delete => {
                            keys.remove(event.kv.key.as_str()).map_err(storage)?;
                        }
                    }
                    history.insert((rev, n), bytes).map_err(storage)?;
                }
            }
            if batch_compacted > compacted {
                trim_history(&mut history, batch_compacted)?;
                compacted = batch_compacted;
            }
            revision = revision.max(batch_revision);
            meta.insert(META_WAL_LSN, lsn as i64).map_err(storage)?;
        }
        meta.insert(META_REVISION, revision).map_err(storage)?;
        meta.insert(META_COMPACTED, compacted).map_err(storage)?;
    }
    wtx.commit().map_err(|e| replay_error(&e))?;
    Ok((revision, compacted))
}

// ---------------------------------------------------------------------------------------------
// Watch streams

enum WatchPhase {
    /// Replaying history from `next`.
    CatchUp {
        next: Revision,
    },
    Live {
        receiver: mpsc::Receiver<Vec<WatchEvent>>,
        lagged: Arc<AtomicI64>,
    },
    Done,
}

struct WatchState {
    shared: Weak<Shared>,
    prefix: String,
    phase: WatchPhase,
}

type Items = Vec<Result<WatchEvent, StoreError>>;

async fn next_items(mut state: WatchState) -> Option<(Items, WatchState)> {
    loop {
        match state.phase {
            WatchPhase::Done => return None,
            WatchPhase::Live {
                mut receiver,
                lagged,
            } => {
                return Some(match receiver.recv().await {
                    Some(events) => {
                        state.phase = WatchPhase::Live { receiver, lagged };
                        (events.into_iter().map(Ok).collect(), state)
                    }
                    None => {
                        let resume_from = lagged.load(Ordering::Acquire);
                        let error = if resume_from > 0 {
                            StoreError::WatchLagged { resume_from }
                        } else {
                            StoreError::Closed
                        };
                        state.phase = WatchPhase::Done;
                        (vec![Err(error)], state)
                    }
                });
            }
            WatchPhase::CatchUp { next } => {
                let Some(shared) = state.shared.upgrade() else {
                    state.phase = WatchPhase::Done;
                    return Some((vec![Err(StoreError::Closed)], state));
                };
                match shared.try_go_live(&state.prefix, next) {
                    Err(e) => {
                        state.phase = WatchPhase::Done;
                        return Some((vec![Err(e)], state));
                    }
                    Ok(Some(live)) => {
                        state.phase = live;
                        continue;
                    }
                    Ok(None) => {}
                }
                let prefix = state.prefix.clone();
                let read = tokio::task::spawn_blocking(move || shared.read_history(&prefix, next))
                    .await
                    .unwrap_or_else(|e| {
                        Err(StoreError::Backend(format!("watch read failed: {e}")))
                    });
                match read {
                    Err(e) => {
                        state.phase = WatchPhase::Done;
                        return Some((vec![Err(e)], state));
                    }
                    Ok((events, continue_from)) => {
                        state.phase = WatchPhase::CatchUp {
                            next: continue_from,
                        };
                        if !events.is_empty() {
                            return Some((events.into_iter().map(Ok).collect(), state));
                        }
                    }
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Store for RedbStore {
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        if is_read_only(&txn) {
            validate_txn(&txn)?;
            return self.shared.read_txn(&txn);
        }
        self.submit(|reply| Request::Txn(txn, reply)).await
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse, StoreError> {
        if request.limit.is_some_and(|l| l <= INLINE_RANGE_LIMIT) {
            return self.shared.range(&request);
        }
        self.read_blocking(move |shared| shared.range(&request))
            .await
    }

    async fn watch(
        &self,
        prefix: &str,
        from_revision: Revision,
    ) -> Result<WatchStream, StoreError> {
        // The committed revision; it may be ahead of what the writer has handed to live
        // watchers yet (it publishes right after), which the hand-over accounts for.
        let current = self.shared.revision.load(Ordering::Acquire);
        let from = if from_revision <= 0 {
            current + 1
        } else {
            from_revision
        };
        if from > current + 1 {
            return Err(StoreError::FutureRevision {
                requested: from,
                current,
            });
        }
        let compacted = self.shared.compacted.load(Ordering::Acquire);
        if from < compacted {
            return Err(StoreError::Compacted {
                requested: from,
                compacted,
            });
        }
        // Watching from now: register at once, so no later write is missed.
        let phase = self
            .shared
            .try_go_live(prefix, from)?
            .unwrap_or(WatchPhase::CatchUp { next: from });
        let state = WatchState {
            shared: Arc::downgrade(&self.shared),
            prefix: prefix.to_string(),
            phase,
        };
        let stream = futures_util::stream::unfold(state, next_items);
        Ok(Box::pin(futures_util::StreamExt::flat_map(
            stream,
            futures_util::stream::iter,
        )))
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        Ok(self.shared.revision.load(Ordering::Acquire))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.submit(|reply| Request::Compact(revision, reply)).await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        if key.is_empty() {
            return Err(StoreError::InvalidRequest("read of an empty key".into()));
        }
        self.shared.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_txns_are_recognised() {
        use crate::Op;
        assert!(is_read_only(&Txn::new().and_then(Op::get("a"))));
        assert!(!is_read_only(
            &Txn::new().and_then(Op::get("a")).or_else(Op::delete("a"))
        ));
    }
}
