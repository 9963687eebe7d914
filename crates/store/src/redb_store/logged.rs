//! The writer's path with the write-ahead log: answer after the log, apply to redb after the
//! answer, checkpoint on a thread of its own (see [`crate::overlay`]).
//!
//! - A batch is evaluated against the key space redb ∪ overlay ∪ the batch's own writes,
//!   appended to the log as one record (one `fdatasync`), added to the overlay (which readers
//!   see from then on) and answered; redb is not touched.
//! - Between batches, when no checkpoint holds redb's write lock, the oldest overlay records
//!   are applied to redb in one commit without an fsync (at most [`DRAIN_RECORDS`] at a time,
//!   so the writer is never away long) and leave the overlay.
//! - A checkpoint starts when the overlay is empty (redb holds every record of the active log
//!   file) and the file is full, or the store is idle: the log switches to its other file and
//!   the checkpoint thread makes redb's state durable (one durable commit) while batches go on
//!   into the new file and the overlay. A failed checkpoint is retried without switching.

use std::collections::BTreeMap;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use super::*;
use crate::overlay::{merge_one, merge_range, Overlay, PendingRecord};

/// The most overlay records applied to redb in one commit.
pub(super) const DRAIN_RECORDS: usize = 64;

/// The key space a batch sees: redb's snapshot, the overlay over it, the batch's own writes
/// over both.
pub(super) struct LayeredSpace<'a, T: ReadableTable<&'static str, &'static [u8]>> {
    pub table: &'a T,
    pub overlay: &'a Overlay,
    pub batch: BTreeMap<String, Option<KeyValue>>,
}

impl<'a, T: ReadableTable<&'static str, &'static [u8]>> LayeredSpace<'a, T> {
    pub fn new(table: &'a T, overlay: &'a Overlay) -> Self {
        LayeredSpace {
            table,
            overlay,
            batch: BTreeMap::new(),
        }
    }
}

impl<T: ReadableTable<&'static str, &'static [u8]>> KeySpace for LayeredSpace<'_, T> {
    fn get(&mut self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        if let Some(written) = self.batch.get(key) {
            return Ok(written.clone());
        }
        Ok(merge_one(
            self.overlay.get(key),
            table_get(self.table, key)?,
        ))
    }

    fn put(&mut self, kv: KeyValue) -> Result<(), StoreError> {
        self.batch.insert(kv.key.clone(), Some(kv));
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<(), StoreError> {
        self.batch.insert(key.to_string(), None);
        Ok(())
    }

    fn keys_with_prefix(&mut self, prefix: &str) -> Result<Vec<KeyValue>, StoreError> {
        let (stored, _) = table_range(self.table, prefix, None, usize::MAX)?;
        let (kvs, _) = merge_range(self.overlay, prefix, None, stored, false, usize::MAX);
        let mut all: BTreeMap<String, KeyValue> =
            kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
        for (key, written) in self
            .batch
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
        {
            match written {
                Some(kv) => all.insert(key.clone(), kv.clone()),
                None => all.remove(key),
            };
        }
        Ok(all.into_values().collect())
    }
}

/// The checkpoint thread and what the writer knows of it.
pub(super) struct Checkpointer {
    /// Dropped (None) to end the thread.
    go: Option<std_mpsc::Sender<()>>,
    /// The thread, joined on drop: it holds the database, which must be closed when the
    /// store is (a reopen right after would find it still held).
    thread: Option<std::thread::JoinHandle<()>>,
    done: std_mpsc::Receiver<Result<(), StoreError>>,
    /// A checkpoint holds redb's write lock.
    pub running: bool,
    /// The last one failed: the next one must not switch log files.
    retry: bool,
}

impl Checkpointer {
    /// Starts the thread; it ends when the writer drops this.
    pub fn start(shared: Arc<Shared>) -> Result<Self, StoreError> {
        let (go, go_rx) = std_mpsc::channel::<()>();
        let (done_tx, done) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("berth-store-checkpoint".into())
            .spawn(move || {
                for () in go_rx {
                    if done_tx.send(durable_commit(&shared)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| {
                StoreError::Backend(format!("cannot start the store checkpointer: {e}"))
            })?;
        Ok(Checkpointer {
            go: Some(go),
            thread: Some(thread),
            done,
            running: false,
            retry: false,
        })
    }

    /// Notes a finished checkpoint; with `block`, waits for a running one.
    pub fn poll(&mut self, block: bool) {
        if !self.running {
            return;
        }
        let result = if block {
            self.done.recv().map_err(|_| ())
        } else {
            match self.done.try_recv() {
                Err(std_mpsc::TryRecvError::Empty) => return,
                other => other.map_err(|_| ()),
            }
        };
        self.running = false;
        self.retry = !matches!(result, Ok(Ok(())));
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.go = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One durable redb commit: everything committed so far survives a crash.
pub(super) fn durable_commit(shared: &Shared) -> Result<(), StoreError> {
    let mut wtx = shared.db.begin_write().map_err(storage)?;
    wtx.set_durability(redb::Durability::Immediate)
        .map_err(storage)?;
    wtx.set_quick_repair(shared.options.quick_repair);
    wtx.commit().map_err(storage)
}

impl Writer {
    /// Starts a checkpoint on its thread if one is due: none running, redb holding every
    /// record (empty overlay), and the active log file full or the store idle.
    pub(super) fn maybe_checkpoint(&mut self, shared: &Shared, idle: bool) {
        let (Some(wal), Some(cp)) = (self.wal.as_mut(), self.checkpointer.as_mut()) else {
            return;
        };
        if self.failed.is_some() || cp.running || !self.overlay.is_empty() || !wal.has_records() {
            return;
        }
        if !idle && wal.offset() < shared.options.wal_max_bytes {
            return;
        }
        if !cp.retry {
            wal.switch();
        }
        if cp.go.as_ref().is_some_and(|go| go.send(()).is_ok()) {
            cp.running = true;
        }
    }

    /// Applies the oldest overlay records to redb (not while a checkpoint runs).
    pub(super) fn drain(&mut self, shared: &Shared, max: usize) {
        if self.failed.is_some()
            || self.overlay.is_empty()
            || self.checkpointer.as_ref().is_some_and(|c| c.running)
        {
            return;
        }
        let chunk = self.overlay.oldest(max);
        let records = chunk.iter().map(|r| (r.lsn, r.payload.as_slice()));
        match replay(
            &shared.db,
            records,
            self.stored_revision,
            self.stored_compacted,
            redb::Durability::None,
        ) {
            Ok((revision, compacted)) => {
                self.stored_revision = revision;
                self.stored_compacted = compacted;
                if let Some(last) = chunk.last() {
                    self.overlay.applied(last.lsn, last.revision);
                }
                shared.publish_overlay(&self.overlay);
            }
            Err(e) => {
                self.failed = Some(StoreError::Backend(format!(
                    "cannot apply logged writes to the store: {e} (restart to recover)"
                )));
            }
        }
    }
}

/// Evaluates a batch against redb ∪ overlay, logs it (one record, one fdatasync) and adds it
/// to the overlay. Nothing is written to redb here.
pub(super) fn apply_batch_logged(
    shared: &Shared,
    writer: &mut Writer,
    batch: &[Request],
    mut revision: Revision,
    mut compacted: Revision,
) -> Result<BatchResult, StoreError> {
    let rtx = shared.begin_read()?;
    let table = rtx.open_table(KEYS).map_err(storage)?;
    let mut space = LayeredSpace::new(&table, &writer.overlay);
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut log = LogPayload::new();
    let mut writes = Vec::new();
    let mut dirty = false;
    for request in batch {
        match request {
            Request::Txn(txn, _) => {
                if let Err(e) = validate_txn(txn) {
                    outcomes.push(Outcome::Txn(Err(e)));
                    continue;
                }
                let (response, events) = apply_txn(&mut space, revision, txn)?;
                if !events.is_empty() {
                    dirty = true;
                    log.begin_write(response.revision, events.len());
                    for event in &events {
                        log.event(&encode_event(event));
                    }
                    writes.push((response.revision, events.clone()));
                }
                revision = response.revision;
                outcomes.push(Outcome::Txn(Ok((response, events))));
            }
            Request::Compact(to, _) => {
                let result = compaction_request(*to, revision, compacted);
                if let Ok(Some(to)) = result {
                    compacted = to;
                    dirty = true;
                }
                outcomes.push(Outcome::Compact(result.map(|_| ())));
            }
        }
    }
    if let Some(to) = automatic_compaction(shared, revision, compacted) {
        compacted = to;
        dirty = true;
    }
    drop(space);
    if dirty {
        let wal = writer
            .wal
            .as_mut()
            .ok_or_else(|| StoreError::Backend("the store has no log".into()))?;
        let lsn = wal.next_lsn();
        let payload = log.finish(revision, compacted);
        if let Err(e) = wal.append(&payload) {
            let error = StoreError::Backend(format!(
                "cannot write the store's log {}: {e} (restart to recover)",
                wal.path().display()
            ));
            writer.failed = Some(error.clone());
            return Err(error);
        }
        writer.overlay.push(PendingRecord {
            lsn,
            payload,
            writes,
            revision,
        });
        shared.publish_overlay(&writer.overlay);
    }
    Ok((outcomes, revision, compacted))
}
