//! The agent channel (`GET /v1/agent/watch`, docs/agent-protocol.md): the tasks placed on one
//! container instance, pushed to its node agent as newline-delimited
//! [`AgentEvent`]s.
//!
//! [`open`] checks the cluster and the instance, counts the channel as open (see
//! `presence`), reads the instance's assignments (`assignments/<instance id>/`) at one
//! revision for the snapshot and starts a store watch from the next revision, so errors are
//! known before the response starts. The stream then turns each change of an assignment into
//! an event: a put into a `task` event (the task record and its task definition read again;
//! definitions are cached, they never change), a delete into `removed`. A heartbeat goes out
//! when nothing else was sent for a heartbeat interval. The stream ends when the watch fails
//! (compacted history, a lagging watcher, a closed store: the agent reconnects and gets a
//! fresh snapshot) or the server shuts down.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use berth_api::shapes::{
    AgentEvent, AssignedHostPort, TaskAssignment, TaskDefinition, HEARTBEAT_SECONDS,
};
use berth_api::{cluster_name, container_instance_id, EcsError};
use berth_store::{EventKind, KeyValue, RangeRequest, WatchEvent, WatchStream};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::core::{decode, store_err, Core};
use crate::keys;
use crate::presence::ChannelGuard;
use crate::records::{AssignmentRecord, InstanceRecord, Phase, TaskRecord};

/// How often an idle channel carries a heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(HEARTBEAT_SECONDS);

/// An open channel, before its first line is sent.
pub struct Channel {
    core: Arc<Core>,
    snapshot: AgentEvent,
    revision: i64,
    watch: WatchStream,
    taskdefs: HashMap<String, TaskDefinition>,
    guard: ChannelGuard,
}

/// Opens the channel of `instance` (id or ARN) in `cluster` (name or ARN; `None`: default).
pub async fn open(
    core: &Arc<Core>,
    cluster: Option<&str>,
    instance: &str,
) -> Result<Channel, EcsError> {
    let cluster = cluster_name(cluster)?;
    core.active_cluster(&cluster).await?;
    let id = container_instance_id(instance, &cluster)?;
    let registered = match core
        .get::<InstanceRecord>(&keys::instance(&cluster, &id))
        .await?
    {
        Some((rec, _)) => rec.registered(),
        None => false,
    };
    if !registered {
        return Err(EcsError::invalid(format!(
            "container instance `{instance}` is not registered in cluster `{cluster}`: register it first"
        )));
    }
    let guard = ChannelGuard::open(core.clone(), &cluster, &id).await;
    let range = core
        .store
        .range(RangeRequest::prefix(keys::assignments_of(&id)))
        .await
        .map_err(store_err)?;
    let mut taskdefs = HashMap::new();
    let tasks = snapshot(core, &range.kvs, &mut taskdefs).await?;
    let watch = core
        .store
        .watch(&keys::assignments_of(&id), range.revision + 1)
        .await
        .map_err(store_err)?;
    Ok(Channel {
        core: core.clone(),
        snapshot: AgentEvent::Snapshot {
            revision: range.revision,
            tasks,
        },
        revision: range.revision,
        watch,
        taskdefs,
        guard,
    })
}

impl Channel {
    /// The channel as lines of JSON: the snapshot, then the events, heartbeats every
    /// `heartbeat` of silence; it ends when `shutdown` turns true.
    pub fn lines(
        self,
        heartbeat: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
        let state = Lines {
            first: Some(self.snapshot),
            core: self.core,
            watch: self.watch,
            revision: self.revision,
            heartbeat,
            quiet_until: Instant::now() + heartbeat,
            taskdefs: self.taskdefs,
            shutdown,
            _guard: self.guard,
        };
        futures_util::stream::unfold(state, |mut s| async move {
            let event = s.next_event().await?;
            s.quiet_until = Instant::now() + s.heartbeat;
            let mut line = match serde_json::to_vec(&event) {
                Ok(line) => line,
                Err(e) => {
                    tracing::error!("cannot encode an agent event: {e}");
                    return None;
                }
            };
            line.push(b'\n');
            Some((Ok(Bytes::from(line)), s))
        })
    }
}

struct Lines {
    first: Option<AgentEvent>,
    core: Arc<Core>,
    watch: WatchStream,
    revision: i64,
    heartbeat: Duration,
    quiet_until: Instant,
    taskdefs: HashMap<String, TaskDefinition>,
    shutdown: watch::Receiver<bool>,
    /// Counts the channel as open until the stream is dropped.
    _guard: ChannelGuard,
}

impl Lines {
    /// The next event to send; `None` ends the channel.
    async fn next_event(&mut self) -> Option<AgentEvent> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        loop {
            let next = tokio::select! {
                _ = self.shutdown.wait_for(|stop| *stop) => return None,
                _ = tokio::time::sleep_until(self.quiet_until) => {
                    return Some(AgentEvent::Heartbeat { revision: self.revision });
                }
                next = self.watch.next() => next,
            };
            match next {
                None => return None,
                Some(Err(e)) => {
                    tracing::debug!("agent channel ends, its watch failed: {e}");
                    return None;
                }
                Some(Ok(event)) => {
                    self.revision = event.revision();
                    match self.event(event).await {
                        Ok(Some(e)) => return Some(e),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!("agent channel ends: {e}");
                            return None;
                        }
                    }
                }
            }
        }
    }

    /// The agent event for a change of an assignment (`None`: nothing to tell).
    async fn event(&mut self, event: WatchEvent) -> Result<Option<AgentEvent>, EcsError> {
        let revision = event.revision();
        match event.kind {
            EventKind::Put => {
                let Some(assignment) =
                    assignment(&self.core, &event.kv, &mut self.taskdefs).await?
                else {
                    return Ok(None);
                };
                Ok(Some(AgentEvent::Task {
                    revision,
                    assignment: Box::new(assignment),
                }))
            }
            EventKind::Delete => {
                let Some(prev) = &event.prev_kv else {
                    return Ok(None);
                };
                let rec: AssignmentRecord = decode(prev)?;
                Ok(Some(AgentEvent::Removed {
                    revision,
                    task_arn: rec.task_arn,
                }))
            }
        }
    }
}

/// The snapshot's tasks: every assignment whose task is not STOPPED.
async fn snapshot(
    core: &Core,
    kvs: &[KeyValue],
    taskdefs: &mut HashMap<String, TaskDefinition>,
) -> Result<Vec<TaskAssignment>, EcsError> {
    let mut task_keys = Vec::with_capacity(kvs.len());
    for kv in kvs {
        let rec: AssignmentRecord = decode(kv)?;
        task_keys.push(keys::task(&rec.cluster, keys::last_segment(&kv.key)));
    }
    let mut out = Vec::with_capacity(kvs.len());
    for kv in core.get_many(task_keys).await?.into_iter().flatten() {
        let t: TaskRecord = decode(&kv)?;
        if Phase::of(&t.task.last_status) != Phase::Stopped {
            if let Some(a) = task_assignment(core, t, taskdefs).await? {
                out.push(a);
            }
        }
    }
    Ok(out)
}

/// The assignment an `assignments/...` record stands for, read now (`None`: its task is gone).
async fn assignment(
    core: &Core,
    kv: &KeyValue,
    taskdefs: &mut HashMap<String, TaskDefinition>,
) -> Result<Option<TaskAssignment>, EcsError> {
    let rec: AssignmentRecord = decode(kv)?;
    let key = keys::task(&rec.cluster, keys::last_segment(&kv.key));
    match core.get::<TaskRecord>(&key).await? {
        Some((t, _)) => task_assignment(core, t, taskdefs).await,
        None => Ok(None),
    }
}

/// A task and its definition as the agent gets them (`None`: the definition cannot be found,
/// which a store that keeps every definition never does; the task is left out).
async fn task_assignment(
    core: &Core,
    t: TaskRecord,
    taskdefs: &mut HashMap<String, TaskDefinition>,
) -> Result<Option<TaskAssignment>, EcsError> {
    let arn = &t.task.task_definition_arn;
    let task_definition = match taskdefs.get(arn) {
        Some(td) => td.clone(),
        None => match core.find_task_definition(arn).await {
            Ok((rec, _)) => {
                taskdefs.insert(arn.clone(), rec.task_definition.clone());
                rec.task_definition
            }
            Err(e @ EcsError::Server(_)) => return Err(e),
            Err(e) => {
                tracing::warn!(
                    task = t.task.task_arn,
                    "task left out of the agent channel: {e}"
                );
                return Ok(None);
            }
        },
    };
    Ok(Some(TaskAssignment {
        cluster: t.cluster,
        host_ports: t
            .host_ports
            .into_iter()
            .map(|p| AssignedHostPort {
                container_name: p.container_name,
                container_port: p.container_port,
                host_port: p.host_port,
                protocol: p.protocol,
            })
            .collect(),
        task: t.task,
        task_definition,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Ctx;
    use berth_api::shapes::{CreateClusterRequest, RegisterContainerInstanceRequest};

    /// A core on `store` with cluster `c` and one instance (its ARN).
    async fn core_with_instance(store: Arc<dyn berth_store::Store>) -> (Arc<Core>, String) {
        let core = Arc::new(Core::new(store, "123456789012".into()));
        let ctx = Ctx {
            region: "us-east-1".into(),
            endpoint: "http://127.0.0.1:1".into(),
        };
        let req = CreateClusterRequest {
            cluster_name: Some("c".into()),
            ..Default::default()
        };
        core.create_cluster(&ctx, req).await.unwrap();
        let req = RegisterContainerInstanceRequest {
            cluster: Some("c".into()),
            ..Default::default()
        };
        let r = core.register_container_instance(&ctx, req).await.unwrap();
        (core, r.container_instance.container_instance_arn)
    }

    fn memory() -> Arc<dyn berth_store::Store> {
        Arc::new(berth_store::MemoryStore::new())
    }

    fn event(line: &Bytes) -> AgentEvent {
        serde_json::from_slice(line.strip_suffix(b"\n").unwrap()).unwrap()
    }

    #[tokio::test]
    async fn heartbeats_when_idle_and_ends_on_shutdown() {
        let (core, instance) = core_with_instance(memory()).await;
        let channel = open(&core, Some("c"), &instance).await.unwrap();
        let (stop, stopping) = watch::channel(false);
        let lines = channel.lines(Duration::from_millis(50), stopping);
        let mut lines = std::pin::pin!(lines);
        let Some(Ok(first)) = lines.next().await else {
            panic!("no snapshot");
        };
        let AgentEvent::Snapshot { revision, tasks } = event(&first) else {
            panic!("the first line is not the snapshot");
        };
        assert!(tasks.is_empty());
        for _ in 0..2 {
            let Some(Ok(line)) = lines.next().await else {
                panic!("the channel ended");
            };
            assert_eq!(event(&line), AgentEvent::Heartbeat { revision });
        }
        // One JSON object per line.
        assert_eq!(first.iter().filter(|b| **b == b'\n').count(), 1);
        let _ = stop.send(true);
        assert!(lines.next().await.is_none());
    }

    /// A store whose watches fail at once (as after a compaction).
    struct FailingWatches(berth_store::MemoryStore);

    #[async_trait::async_trait]
    impl berth_store::Store for FailingWatches {
        async fn txn(
            &self,
            txn: berth_store::Txn,
        ) -> Result<berth_store::TxnResponse, berth_store::StoreError> {
            self.0.txn(txn).await
        }
        async fn range(
            &self,
            request: RangeRequest,
        ) -> Result<berth_store::RangeResponse, berth_store::StoreError> {
            self.0.range(request).await
        }
        async fn watch(
            &self,
            _prefix: &str,
            from_revision: i64,
        ) -> Result<WatchStream, berth_store::StoreError> {
            let e = berth_store::StoreError::Compacted {
                requested: from_revision,
                compacted: from_revision + 1,
            };
            Ok(Box::pin(futures_util::stream::iter([Err(e)])))
        }
        async fn revision(&self) -> Result<i64, berth_store::StoreError> {
            self.0.revision().await
        }
        async fn compact(&self, revision: i64) -> Result<(), berth_store::StoreError> {
            self.0.compact(revision).await
        }
    }

    #[tokio::test]
    async fn a_failed_watch_ends_the_channel_after_the_snapshot() {
        let store = Arc::new(FailingWatches(berth_store::MemoryStore::new()));
        let (core, arn) = core_with_instance(store).await;
        let channel = open(&core, Some("c"), &arn).await.unwrap();
        let (_stop, stopping) = watch::channel(false);
        let lines = channel.lines(Duration::from_secs(60), stopping);
        let mut lines = std::pin::pin!(lines);
        let Some(Ok(first)) = lines.next().await else {
            panic!("no snapshot");
        };
        assert!(matches!(event(&first), AgentEvent::Snapshot { .. }));
        assert!(lines.next().await.is_none());
    }

    #[tokio::test]
    async fn an_unknown_instance_is_refused() {
        let (core, _) = core_with_instance(memory()).await;
        let e = open(&core, Some("c"), "0123").await.err().unwrap();
        assert_eq!(e.code(), "InvalidParameterException");
        let e = open(&core, Some("nope"), "0123").await.err().unwrap();
        assert_eq!(e.code(), "ClusterNotFoundException");
    }
}
