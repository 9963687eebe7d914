//! [`MemoryStore`]: the in-process reference backend. Not durable; used by tests, by
//! throwaway servers, and as the model the conformance suite checks other backends against.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::logic::{apply_txn, KeySpace};
use crate::{
    KeyValue, RangeRequest, RangeResponse, Revision, Store, StoreError, Txn, TxnResponse,
    WatchEvent, WatchStream,
};

/// An in-memory [`Store`]. Clones share the same data.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    kvs: BTreeMap<String, KeyValue>,
    revision: Revision,
    /// The oldest revision a watch may start from (history below it was compacted away).
    compacted: Revision,
    /// Change history from `compacted` on, in revision order.
    history: Vec<WatchEvent>,
    watchers: Vec<Watcher>,
}

struct Watcher {
    prefix: String,
    sender: mpsc::UnboundedSender<Result<WatchEvent, StoreError>>,
}

struct MapSpace<'a>(&'a mut BTreeMap<String, KeyValue>);

impl KeySpace for MapSpace<'_> {
    fn get(&mut self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.0.get(key).cloned())
    }

    fn put(&mut self, kv: KeyValue) -> Result<(), StoreError> {
        self.0.insert(kv.key.clone(), kv);
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<(), StoreError> {
        self.0.remove(key);
        Ok(())
    }

    fn keys_with_prefix(&mut self, prefix: &str) -> Result<Vec<KeyValue>, StoreError> {
        Ok(self
            .0
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect())
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map half-written (apply_txn works
        // on clones until each single insert), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        let mut state = self.lock();
        let current = state.revision;
        let (response, events) = apply_txn(&mut MapSpace(&mut state.kvs), current, &txn)?;
        state.revision = response.revision;
        if !events.is_empty() {
            state.watchers.retain(|w| {
                events
                    .iter()
                    .filter(|e| e.kv.key.starts_with(&w.prefix))
                    .all(|e| w.sender.send(Ok(e.clone())).is_ok())
            });
            state.history.extend(events);
        }
        Ok(response)
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse, StoreError> {
        let state = self.lock();
        let start = match &request.start_after {
            Some(after) if after.as_str() >= request.prefix.as_str() => {
                std::ops::Bound::Excluded(after.clone())
            }
            _ => std::ops::Bound::Included(request.prefix.clone()),
        };
        let mut matching = state
            .kvs
            .range((start, std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&request.prefix))
            .map(|(_, v)| v);
        let limit = request.limit.unwrap_or(usize::MAX);
        let kvs: Vec<KeyValue> = matching.by_ref().take(limit).cloned().collect();
        let more = matching.next().is_some();
        Ok(RangeResponse {
            kvs,
            more,
            revision: state.revision,
        })
    }

    async fn watch(
        &self,
        prefix: &str,
        from_revision: Revision,
    ) -> Result<WatchStream, StoreError> {
        let mut state = self.lock();
        let from = if from_revision <= 0 {
            state.revision + 1
        } else {
            from_revision
        };
        if from > state.revision + 1 {
            return Err(StoreError::FutureRevision {
                requested: from,
                current: state.revision,
            });
        }
        if from < state.compacted {
            return Err(StoreError::Compacted {
                requested: from,
                compacted: state.compacted,
            });
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        let start = state.history.partition_point(|e| e.revision() < from);
        for event in &state.history[start..] {
            if event.kv.key.starts_with(prefix) {
                // The receiver is alive: it is in our hands.
                let _ = sender.send(Ok(event.clone()));
            }
        }
        state.watchers.push(Watcher {
            prefix: prefix.to_string(),
            sender,
        });
        Ok(Box::pin(tokio_stream_from(receiver)))
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        Ok(self.lock().revision)
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let mut state = self.lock();
        if revision > state.revision {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: state.revision,
            });
        }
        if revision > state.compacted {
            let keep_from = state.history.partition_point(|e| e.revision() < revision);
            state.history.drain(..keep_from);
            state.compacted = revision;
        }
        Ok(())
    }
}

/// Adapts an unbounded receiver into a [`futures_util::Stream`].
fn tokio_stream_from(
    mut receiver: mpsc::UnboundedReceiver<Result<WatchEvent, StoreError>>,
) -> impl futures_util::Stream<Item = Result<WatchEvent, StoreError>> + Send {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}
