//! Writes that are durable in the write-ahead log but not yet applied to redb.
//!
//! With the log, [`crate::RedbStore`]'s writer answers a batch once its log record is on disk
//! and applies the batch to redb afterwards, a few records at a time, whenever redb's write
//! lock is free. A checkpoint (a durable redb commit, tens to hundreds of milliseconds of
//! fsyncs) runs on its own thread holding that lock, and writes keep being answered meanwhile:
//! they wait here. Readers merge the overlay over their redb snapshot, so an answered write is
//! visible to every later read and watch.
//!
//! Merging rule: for each key the newer of the overlay's entry and redb's value wins, by
//! revision. A reader takes the overlay before it opens its redb snapshot, so whatever the
//! writer has moved into redb in between shows in the snapshot, and an overlay entry already
//! applied is never older than what the snapshot holds for its key.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{EventKind, KeyValue, Revision, WatchEvent};

/// The latest pending write of one key: its revision and the value (None: deleted).
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub revision: Revision,
    pub kv: Option<Arc<KeyValue>>,
}

/// One log record not yet applied to redb.
#[derive(Debug)]
pub(crate) struct PendingRecord {
    pub lsn: u64,
    /// The record's payload, as in the log (what applying it replays).
    pub payload: Vec<u8>,
    /// Each writing transaction's revision and events, for watches catching up.
    pub writes: Vec<(Revision, Vec<WatchEvent>)>,
    /// The batch's last revision.
    pub revision: Revision,
    /// When it was logged (applied to redb once it has waited long enough).
    pub logged_at: Instant,
}

/// See the module documentation. Cheap to clone: the writer publishes a copy after every
/// batch, so the key map is a persistent map (`imbl::OrdMap`: a clone shares every node, an
/// insert copies one path) and the records are `Arc`s.
#[derive(Clone, Debug, Default)]
pub(crate) struct Overlay {
    keys: imbl::OrdMap<String, Pending>,
    records: VecDeque<Arc<PendingRecord>>,
}

impl Overlay {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// How many records wait here.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// The oldest record's lsn.
    pub fn oldest_lsn(&self) -> Option<u64> {
        self.records.front().map(|r| r.lsn)
    }

    /// How long the oldest record has waited.
    pub fn oldest_age(&self) -> Option<Duration> {
        self.records.front().map(|r| r.logged_at.elapsed())
    }

    /// The newest revision waiting here (0 when empty).
    pub fn revision(&self) -> Revision {
        self.records.back().map_or(0, |r| r.revision)
    }

    /// Adds an answered batch.
    pub fn push(&mut self, record: PendingRecord) {
        for (revision, events) in &record.writes {
            for event in events {
                let kv = match event.kind {
                    EventKind::Put => Some(Arc::new(event.kv.clone())),
                    EventKind::Delete => None,
                };
                self.keys.insert(
                    event.kv.key.clone(),
                    Pending {
                        revision: *revision,
                        kv,
                    },
                );
            }
        }
        self.records.push_back(Arc::new(record));
    }

    /// Up to `max` of the oldest records, to apply to redb.
    pub fn oldest(&self, max: usize) -> Vec<Arc<PendingRecord>> {
        self.records.iter().take(max).cloned().collect()
    }

    /// Forgets the records up to lsn `lsn` and the key entries they cover (revision up to
    /// `revision`), once redb holds them.
    pub fn applied(&mut self, lsn: u64, revision: Revision) {
        while self.records.front().is_some_and(|r| r.lsn <= lsn) {
            self.records.pop_front();
        }
        let done: Vec<String> = self
            .keys
            .iter()
            .filter(|(_, p)| p.revision <= revision)
            .map(|(k, _)| k.clone())
            .collect();
        for key in done {
            self.keys.remove(&key);
        }
    }

    /// The pending entry of `key`.
    pub fn get(&self, key: &str) -> Option<&Pending> {
        self.keys.get(key)
    }

    /// Pending entries with keys under `prefix` after `start_after`, in key order.
    pub fn range<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&str>,
    ) -> impl Iterator<Item = (&'a String, &'a Pending)> + 'a {
        let start = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        self.keys
            .range((start, Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// How many pending deletions fall under `prefix` after `start_after` (a ranged redb read
    /// asks for that many more keys, since they may hide some of its results).
    pub fn deletions_in(&self, prefix: &str, start_after: Option<&str>) -> usize {
        self.range(prefix, start_after)
            .filter(|(_, p)| p.kv.is_none())
            .count()
    }

    /// The pending writes from revision `next` on, as whole revisions in order.
    pub fn history_from(&self, next: Revision) -> Vec<(Revision, Vec<WatchEvent>)> {
        self.records
            .iter()
            .flat_map(|r| r.writes.iter())
            .filter(|(revision, _)| *revision >= next)
            .cloned()
            .collect()
    }
}

/// The value of one key given its pending entry and redb's value: the newer one.
pub(crate) fn merge_one(pending: Option<&Pending>, stored: Option<KeyValue>) -> Option<KeyValue> {
    match (pending, stored) {
        (Some(p), Some(s)) if s.mod_revision > p.revision => Some(s),
        (Some(p), _) => p.kv.as_deref().cloned(),
        (None, s) => s,
    }
}

/// Merges redb's range result (`stored`, key order, `stored_more` when redb had more keys
/// than it returned) with the overlay's pending entries of the same range; at most `limit`
/// keys, and whether more matched.
pub(crate) fn merge_range(
    overlay: &Overlay,
    prefix: &str,
    start_after: Option<&str>,
    stored: Vec<KeyValue>,
    stored_more: bool,
    limit: usize,
) -> (Vec<KeyValue>, bool) {
    // Past the last key redb returned, redb may hold keys it did not return: pending keys
    // there cannot be placed, so they are left to the next page.
    let horizon = stored_more.then(|| stored.last().map(|kv| kv.key.clone()));
    let mut merged: BTreeMap<String, KeyValue> =
        stored.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
    for (key, pending) in overlay.range(prefix, start_after) {
        if let Some(h) = &horizon {
            if h.as_deref().is_none_or(|h| key.as_str() > h) {
                break;
            }
        }
        let current = merged.remove(key);
        if let Some(kv) = merge_one(Some(pending), current) {
            merged.insert(key.clone(), kv);
        }
    }
    let more = stored_more || merged.len() > limit;
    (merged.into_values().take(limit).collect(), more)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, revision: Revision) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            create_revision: revision,
            mod_revision: revision,
            version: 1,
        }
    }

    fn record(lsn: u64, revision: Revision, events: Vec<WatchEvent>) -> PendingRecord {
        PendingRecord {
            lsn,
            payload: Vec::new(),
            writes: vec![(revision, events)],
            revision,
            logged_at: Instant::now(),
        }
    }

    fn put(key: &str, value: &str, revision: Revision) -> WatchEvent {
        WatchEvent {
            kind: EventKind::Put,
            kv: kv(key, value, revision),
            prev_kv: None,
        }
    }

    fn delete(key: &str, revision: Revision) -> WatchEvent {
        let mut kv = kv(key, "", revision);
        kv.version = 0;
        WatchEvent {
            kind: EventKind::Delete,
            kv,
            prev_kv: None,
        }
    }

    #[test]
    fn newer_of_pending_and_stored_wins() {
        let mut o = Overlay::default();
        o.push(record(1, 5, vec![put("a", "pending", 5)]));
        o.push(record(2, 6, vec![delete("b", 6)]));
        assert_eq!(
            merge_one(o.get("a"), Some(kv("a", "old", 3)))
                .unwrap()
                .value,
            b"pending"
        );
        assert_eq!(merge_one(o.get("b"), Some(kv("b", "old", 2))), None);
        // redb already moved past the pending entry (applied, then written again).
        assert_eq!(
            merge_one(o.get("a"), Some(kv("a", "newer", 9)))
                .unwrap()
                .value,
            b"newer"
        );
        assert_eq!(merge_one(o.get("zz"), None), None);
        assert_eq!(o.revision(), 6);
        assert_eq!(o.history_from(6).len(), 1);
        o.applied(1, 5);
        assert!(o.get("a").is_none() && o.get("b").is_some());
        o.applied(2, 6);
        assert!(o.is_empty() && o.get("b").is_none());
    }

    #[test]
    fn ranges_merge_inserts_and_deletions_and_keep_pages_whole() {
        let mut o = Overlay::default();
        o.push(record(
            1,
            10,
            vec![
                put("p/b", "new", 10),
                delete("p/c", 10),
                put("p/z", "late", 10),
            ],
        ));
        let stored = vec![kv("p/a", "1", 1), kv("p/c", "3", 3), kv("p/d", "4", 4)];
        let (kvs, more) = merge_range(&o, "p/", None, stored.clone(), false, 10);
        let keys: Vec<_> = kvs.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(keys, ["p/a", "p/b", "p/d", "p/z"]);
        assert!(!more);
        let (kvs, more) = merge_range(&o, "p/", None, stored.clone(), false, 2);
        assert_eq!(kvs.len(), 2);
        assert!(more);
        // redb has more after p/d: p/z must wait for the page that reaches it.
        let (kvs, more) = merge_range(&o, "p/", None, stored, true, 10);
        let keys: Vec<_> = kvs.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(keys, ["p/a", "p/b", "p/d"]);
        assert!(more);
        assert_eq!(o.deletions_in("p/", None), 1);
        assert_eq!(o.deletions_in("p/", Some("p/c")), 0);
    }
}
