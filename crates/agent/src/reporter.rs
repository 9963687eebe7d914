//! Task state reports to the control plane (`SubmitTaskStateChange`), one lane per task.
//!
//! The runner publishes a task's whole current state each time it changes. Per task, at most
//! one report is in flight; newer states published meanwhile replace the queued one
//! (coalescing: only the latest is sent next). Transport failures are retried with backoff
//! (100 ms doubling to 10 s) — always with the latest state. Once a STOPPED report is
//! acknowledged the lane is closed and later reports of that task are dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::shapes::tasks::SubmitTaskStateChangeRequest;

/// Why a sink could not deliver a report.
#[derive(Debug, Clone)]
pub enum SinkError {
    /// Worth retrying (connection failure, server error).
    Retryable(String),
    /// The server refused the report; retrying the same report will not help.
    Rejected(String),
}

/// Where reports go: the control plane in production, a channel in tests.
#[async_trait::async_trait]
pub trait ReportSink: Send + Sync + 'static {
    async fn submit(&self, report: &SubmitTaskStateChangeRequest) -> Result<(), SinkError>;
}

/// A sink that hands every report to a channel (tests, embedding).
pub struct ChannelSink(pub tokio::sync::mpsc::UnboundedSender<SubmitTaskStateChangeRequest>);

#[async_trait::async_trait]
impl ReportSink for ChannelSink {
    async fn submit(&self, report: &SubmitTaskStateChangeRequest) -> Result<(), SinkError> {
        self.0
            .send(report.clone())
            .map_err(|_| SinkError::Rejected("the report channel is closed".into()))
    }
}

#[derive(Default)]
struct Lane {
    queued: Option<SubmitTaskStateChangeRequest>,
    in_flight: bool,
    stopped_acked: bool,
}

/// Coalescing, retrying report queue (cheap to clone).
#[derive(Clone)]
pub struct Reporter {
    lanes: Arc<Mutex<HashMap<String, Lane>>>,
    sink: Arc<dyn ReportSink>,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl Reporter {
    pub fn new(sink: Arc<dyn ReportSink>) -> Self {
        Reporter {
            lanes: Arc::new(Mutex::new(HashMap::new())),
            sink,
        }
    }

    /// Queues the task's latest state; starts a sender for the task if none runs.
    pub fn publish(&self, report: SubmitTaskStateChangeRequest) {
        let Some(task) = report.task.clone() else {
            return;
        };
        let start = {
            let Ok(mut lanes) = self.lanes.lock() else {
                return;
            };
            let lane = lanes.entry(task.clone()).or_default();
            if lane.stopped_acked {
                return;
            }
            lane.queued = Some(report);
            if lane.in_flight {
                false
            } else {
                lane.in_flight = true;
                true
            }
        };
        if start {
            let me = self.clone();
            tokio::spawn(async move { me.drain(task).await });
        }
    }

    /// Forgets a task's lane (the server removed the task).
    pub fn forget(&self, task: &str) {
        if let Ok(mut lanes) = self.lanes.lock() {
            if lanes.get(task).is_some_and(|l| !l.in_flight) {
                lanes.remove(task);
            }
        }
    }

    /// Whether the task's STOPPED report was acknowledged.
    pub fn stopped_acknowledged(&self, task: &str) -> bool {
        self.lanes
            .lock()
            .map(|l| l.get(task).is_some_and(|l| l.stopped_acked))
            .unwrap_or(false)
    }

    /// The task's STOPPED report is final (acknowledged or refused): nothing more is sent.
    fn close_lane(&self, task: &str) {
        if let Ok(mut lanes) = self.lanes.lock() {
            if let Some(lane) = lanes.get_mut(task) {
                lane.stopped_acked = true;
                lane.queued = None;
                lane.in_flight = false;
            }
        }
    }

    fn take(&self, task: &str) -> Option<SubmitTaskStateChangeRequest> {
        let mut lanes = self.lanes.lock().ok()?;
        let lane = lanes.get_mut(task)?;
        let next = lane.queued.take();
        if next.is_none() {
            lane.in_flight = false;
        }
        next
    }

    async fn drain(&self, task: String) {
        let mut backoff = FIRST_BACKOFF;
        let mut current = self.take(&task);
        while let Some(report) = current {
            match self.sink.submit(&report).await {
                Ok(()) => {
                    backoff = FIRST_BACKOFF;
                    if report.status.as_deref() == Some("STOPPED") {
                        self.close_lane(&task);
                        return;
                    }
                    current = self.take(&task);
                }
                Err(SinkError::Rejected(e)) => {
                    tracing::warn!(task, "state report refused: {e}");
                    if report.status.as_deref() == Some("STOPPED") {
                        // Final either way: the server will not take it.
                        self.close_lane(&task);
                        return;
                    }
                    current = self.take(&task);
                }
                Err(SinkError::Retryable(e)) => {
                    tracing::debug!(task, "state report failed, retrying in {backoff:?}: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    // A newer state replaces the one that failed.
                    let newer = self
                        .lanes
                        .lock()
                        .ok()
                        .and_then(|mut l| l.get_mut(&task).and_then(|l| l.queued.take()));
                    current = Some(newer.unwrap_or(report));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn report(task: &str, status: &str) -> SubmitTaskStateChangeRequest {
        SubmitTaskStateChangeRequest {
            task: Some(task.into()),
            status: Some(status.into()),
            ..Default::default()
        }
    }

    /// Fails the first `fail` calls, then records; each call takes 50 ms.
    struct Flaky {
        fail: AtomicUsize,
        seen: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl ReportSink for Flaky {
        async fn submit(&self, r: &SubmitTaskStateChangeRequest) -> Result<(), SinkError> {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if self
                .fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
                .is_ok()
            {
                return Err(SinkError::Retryable("down".into()));
            }
            self.seen
                .lock()
                .unwrap()
                .push(r.status.clone().unwrap_or_default());
            Ok(())
        }
    }

    #[tokio::test]
    async fn coalesces_retries_and_closes_after_stopped() {
        let sink = Arc::new(Flaky {
            fail: AtomicUsize::new(2),
            seen: Mutex::new(Vec::new()),
        });
        let r = Reporter::new(sink.clone());
        r.publish(report("t", "PENDING"));
        r.publish(report("t", "ACTIVATING"));
        r.publish(report("t", "RUNNING"));
        tokio::time::sleep(Duration::from_secs(2)).await;
        // The first send failed twice; by then RUNNING had replaced the rest.
        assert_eq!(*sink.seen.lock().unwrap(), vec!["RUNNING"]);
        r.publish(report("t", "STOPPED"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(r.stopped_acknowledged("t"));
        r.publish(report("t", "RUNNING"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(*sink.seen.lock().unwrap(), vec!["RUNNING", "STOPPED"]);
    }
}
