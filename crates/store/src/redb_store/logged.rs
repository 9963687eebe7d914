//! The writer's path with the write-ahead log: answer after the log, apply to redb after the
//! answer and checkpoint, both on a thread of their own (see [`crate::overlay`]).
//!
//! - A batch is evaluated against the key space redb ∪ overlay ∪ the batch's own writes,
//!   appended to the log as one record (one `fdatasync`), added to the overlay (which readers
//!   see from then on) and answered; redb is not touched on the writer thread.
//! - The applier thread moves overlay records into redb in one commit without an fsync once
//!   the oldest has waited [`RedbOptions::apply_delay`] (or the overlay holds
//!   [`APPLY_RECORDS`] records): a key written many times in that window (a cluster's or an
//!   instance's record on every RunTask) reaches redb's pages once, and redb, which copies
//!   every page a commit touches, writes far fewer pages than with a commit per batch. The
//!   writer forgets applied records when the applier reports them done.
//! - A checkpoint (one durable redb commit, on the same thread) is due when the active log
//!   file is full or the store is idle: the log switches to its other file, the records of the
//!   first file are applied, then the durable commit runs while batches go on into the new
//!   file and the overlay. A failed checkpoint is retried without switching again.

use std::collections::BTreeMap;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::overlay::{merge_one, merge_range, Overlay, PendingRecord};

/// The most overlay records applied to redb in one commit; this many pending records are
/// applied without waiting for [`RedbOptions::apply_delay`].
pub(super) const APPLY_RECORDS: usize = 4096;

/// How long the applier waits before retrying a checkpoint that failed.
const CHECKPOINT_RETRY: Duration = Duration::from_millis(100);

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

/// Work for the applier thread.
enum Job {
    /// Apply these records (oldest first) to redb, whose revision and compaction point are
    /// given, in one commit without an fsync.
    Apply {
        records: Vec<Arc<PendingRecord>>,
        revision: Revision,
        compacted: Revision,
    },
    /// One durable redb commit.
    Checkpoint,
}

/// What the applier reports back.
enum Done {
    /// redb's new revision and compaction point, and the last record applied (lsn, revision).
    Applied(Result<(Revision, Revision), StoreError>, (u64, Revision)),
    Checkpointed(Result<(), StoreError>),
}

/// The applier thread and what the writer knows of it.
pub(super) struct Applier {
    /// Dropped (None) to end the thread.
    jobs: Option<std_mpsc::Sender<Job>>,
    /// The thread, joined on drop: it holds the database, which must be closed when the
    /// store is (a reopen right after would find it still held).
    thread: Option<std::thread::JoinHandle<()>>,
    done: std_mpsc::Receiver<Done>,
    /// A job is running (it may hold redb's write lock).
    pub busy: bool,
    /// A checkpoint is under way: the log switched files and every record up to this lsn
    /// (the first file's last) must be applied, then made durable.
    checkpoint_through: Option<u64>,
    /// After a failed checkpoint: not retried before this.
    retry_at: Option<Instant>,
}

impl Applier {
    /// Starts the thread; it ends when the writer drops this.
    pub fn start(shared: Arc<Shared>) -> Result<Self, StoreError> {
        let (jobs, jobs_rx) = std_mpsc::channel::<Job>();
        let (done_tx, done) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("berth-store-apply".into())
            .spawn(move || {
                for job in jobs_rx {
                    if done_tx.send(run_job(&shared, job)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the store applier: {e}")))?;
        Ok(Applier {
            jobs: Some(jobs),
            thread: Some(thread),
            done,
            busy: false,
            checkpoint_through: None,
            retry_at: None,
        })
    }

    fn send(&mut self, job: Job) {
        if self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok())
        {
            self.busy = true;
        }
    }

    /// The running job's report, if it finished (with `block`, waits for it).
    fn finished(&mut self, block: bool) -> Option<Done> {
        if !self.busy {
            return None;
        }
        let done = if block {
            self.done.recv().ok()
        } else {
            match self.done.try_recv() {
                Err(std_mpsc::TryRecvError::Empty) => return None,
                other => other.ok(),
            }
        };
        self.busy = false;
        done
    }
}

impl Drop for Applier {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run_job(shared: &Shared, job: Job) -> Done {
    match job {
        Job::Apply {
            records,
            revision,
            compacted,
        } => {
            let last = records.last().map_or((0, 0), |r| (r.lsn, r.revision));
            let logged = records.iter().map(|r| (r.lsn, r.payload.as_slice()));
            let result = replay(
                &shared.db,
                logged,
                revision,
                compacted,
                redb::Durability::None,
            );
            Done::Applied(result, last)
        }
        Job::Checkpoint => Done::Checkpointed(durable_commit(shared)),
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
    /// Takes the applier's report of a finished job (with `block`, waits for a running one).
    pub(super) fn collect(&mut self, shared: &Shared, block: bool) {
        if let Some(done) = self.applier.as_mut().and_then(|a| a.finished(block)) {
            self.absorb(shared, done);
        }
    }

    /// Records what a finished job did: applied records leave the overlay; a checkpoint ends
    /// (or is retried later).
    fn absorb(&mut self, shared: &Shared, done: Done) {
        match done {
            Done::Applied(Ok((revision, compacted)), (lsn, last_revision)) => {
                self.stored_revision = revision;
                self.stored_compacted = compacted;
                self.overlay.applied(lsn, last_revision);
                shared.publish_overlay(&self.overlay);
            }
            Done::Applied(Err(e), _) => {
                self.failed = Some(StoreError::Backend(format!(
                    "cannot apply logged writes to the store: {e} (restart to recover)"
                )));
            }
            Done::Checkpointed(result) => {
                if let Some(applier) = self.applier.as_mut() {
                    if result.is_ok() {
                        applier.checkpoint_through = None;
                        applier.retry_at = None;
                    } else {
                        applier.retry_at = Some(Instant::now() + CHECKPOINT_RETRY);
                    }
                }
            }
        }
    }

    /// The job applying the overlay's oldest records.
    fn apply_job(&self) -> Job {
        Job::Apply {
            records: self.overlay.oldest(APPLY_RECORDS),
            revision: self.stored_revision,
            compacted: self.stored_compacted,
        }
    }

    /// Gives the applier its next job when it is free: applying the records a checkpoint
    /// needs, the checkpoint itself, or the overlay's records once the oldest has waited
    /// [`RedbOptions::apply_delay`]. With `idle` (no writes for a while), a non-empty log is
    /// checkpointed.
    pub(super) fn tend(&mut self, shared: &Shared, idle: bool) {
        let (Some(wal), Some(applier)) = (self.wal.as_mut(), self.applier.as_mut()) else {
            return;
        };
        if self.failed.is_some() || applier.busy {
            return;
        }
        if applier.checkpoint_through.is_none()
            && wal.has_records()
            && (idle || wal.offset() >= shared.options.wal_max_bytes)
        {
            applier.checkpoint_through = Some(wal.next_lsn() - 1);
            wal.switch();
        }
        let job = match applier.checkpoint_through {
            Some(through) if self.overlay.oldest_lsn().is_some_and(|lsn| lsn <= through) => {
                Some(self.apply_job())
            }
            Some(_) => applier
                .retry_at
                .is_none_or(|at| Instant::now() >= at)
                .then_some(Job::Checkpoint),
            None => (self.overlay.len() >= APPLY_RECORDS
                || self
                    .overlay
                    .oldest_age()
                    .is_some_and(|age| age >= shared.options.apply_delay))
            .then(|| self.apply_job()),
        };
        if let (Some(job), Some(applier)) = (job, self.applier.as_mut()) {
            applier.send(job);
        }
    }

    /// How long the writer may wait for requests before [`Writer::tend`] has work: None when
    /// nothing is pending (then an idle log is checkpointed after `wal_idle_checkpoint`).
    pub(super) fn tend_within(&self, shared: &Shared) -> Option<Duration> {
        let applier = self.applier.as_ref()?;
        if self.failed.is_some() {
            return None;
        }
        if applier.busy || applier.checkpoint_through.is_some() {
            return Some(BUSY_POLL);
        }
        let age = self.overlay.oldest_age()?;
        Some(
            shared
                .options
                .apply_delay
                .saturating_sub(age)
                .max(Duration::from_millis(1)),
        )
    }

    /// Applies every overlay record to redb on this thread (closing: the applier is idle).
    pub(super) fn apply_all_now(&mut self, shared: &Shared) {
        while !self.overlay.is_empty() && self.failed.is_none() {
            let done = run_job(shared, self.apply_job());
            self.absorb(shared, done);
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
            logged_at: Instant::now(),
        });
        shared.publish_overlay(&writer.overlay);
    }
    Ok((outcomes, revision, compacted))
}
