//! The engine's event bus: every lifecycle change is published to live subscribers
//! (`/events`) and kept in a bounded history for `since` queries.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use berth_engine_client::{Event, EventActor};
use tokio::sync::broadcast;

const HISTORY: usize = 1024;

pub struct EventBus {
    tx: broadcast::Sender<Event>,
    history: Mutex<VecDeque<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(HISTORY);
        Self {
            tx,
            history: Mutex::new(VecDeque::new()),
        }
    }

    pub fn publish(
        &self,
        kind: &str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
    ) {
        let now = chrono::Utc::now();
        let event = Event {
            kind: kind.to_string(),
            action: action.to_string(),
            actor: EventActor {
                id: id.to_string(),
                attributes,
            },
            time: now.timestamp(),
            time_nano: now.timestamp_nanos_opt().unwrap_or(0),
        };
        if let Ok(mut h) = self.history.lock() {
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(event.clone());
        }
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Events at or after `since` (unix seconds).
    pub fn history_since(&self, since: i64) -> Vec<Event> {
        self.history
            .lock()
            .map(|h| h.iter().filter(|e| e.time >= since).cloned().collect())
            .unwrap_or_default()
    }
}
