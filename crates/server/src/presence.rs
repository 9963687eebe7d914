//! Which container instances have an agent channel open in this server, and keeping their
//! `agentConnected` in step: true while at least one channel of the instance is open, false
//! once the last one closes.
//!
//! Channels are counted in memory ([`Presence`]); a [`ChannelGuard`] counts one open channel
//! and, when dropped, schedules the instance record's write if it was the last. Every write
//! re-reads the count under the cluster's lock, so writes that race each other still leave
//! the record matching the channels open. [`Presence::drain`] waits for the scheduled writes
//! (the server calls it before it returns, so the store can be reopened).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_api::EcsError;
use berth_store::RangeRequest;
use tokio::task::JoinSet;

use crate::core::{contention, Batch, Core, CAS_ATTEMPTS};
use crate::keys;
use crate::records::InstanceRecord;

/// The agent channels open in this process, by instance id.
#[derive(Default)]
pub struct Presence {
    open: Mutex<HashMap<String, usize>>,
    writes: Mutex<JoinSet<()>>,
}

impl Presence {
    /// How many channels of the instance are open.
    pub fn open_channels(&self, instance_id: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(instance_id).copied().unwrap_or(0)
    }

    fn enter(&self, instance_id: &str) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        *open.entry(instance_id.to_owned()).or_insert(0) += 1;
    }

    /// Counts one channel less; returns whether it was the last.
    fn leave(&self, instance_id: &str) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.get_mut(instance_id) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                open.remove(instance_id);
                true
            }
            None => false,
        }
    }

    fn spawn(&self, write: impl std::future::Future<Output = ()> + Send + 'static) {
        // Dropped outside a runtime (nothing to write with): the next channel fixes the record.
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        while writes.try_join_next().is_some() {}
        writes.spawn_on(write, &handle);
    }

    /// Waits for every scheduled write.
    pub async fn drain(&self) {
        let mut writes = {
            let mut w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *w)
        };
        while writes.join_next().await.is_some() {}
    }
}

/// One open agent channel of an instance; dropping it closes it.
pub struct ChannelGuard {
    core: Arc<Core>,
    cluster: String,
    instance_id: String,
}

impl ChannelGuard {
    /// Counts a channel of `instance_id` (of `cluster`) as open and makes its record say
    /// agentConnected.
    pub async fn open(core: Arc<Core>, cluster: &str, instance_id: &str) -> ChannelGuard {
        core.presence.enter(instance_id);
        let guard = ChannelGuard {
            core,
            cluster: cluster.to_owned(),
            instance_id: instance_id.to_owned(),
        };
        if let Err(e) = guard
            .core
            .sync_agent_connected(&guard.cluster, &guard.instance_id)
            .await
        {
            tracing::warn!(
                instance = guard.instance_id,
                "cannot set agentConnected: {e}"
            );
        }
        guard
    }
}

impl Drop for ChannelGuard {
    fn drop(&mut self) {
        if !self.core.presence.leave(&self.instance_id) {
            return;
        }
        let core = self.core.clone();
        let cluster = std::mem::take(&mut self.cluster);
        let id = std::mem::take(&mut self.instance_id);
        self.core.presence.spawn(async move {
            if let Err(e) = core.sync_agent_connected(&cluster, &id).await {
                tracing::warn!(instance = id, "cannot clear agentConnected: {e}");
            }
        });
    }
}

impl Core {
    /// At start no channel is open in this server, yet records of instances served by an
    /// agent channel may still say agentConnected from before a restart (or a crash): writes
    /// it false for each such instance (instances registered through the API alone, never
    /// with a channel, keep what registration set), in the
    /// background (the reads are the `instances/` keys only, so the number of tasks does not
    /// matter). A channel that opens meanwhile is counted before its own write, and both
    /// writes re-read the count under the cluster's lock, so the record ends up true for it.
    /// With several servers sharing a store this would also clear instances connected to the
    /// others; the embedded store has one server.
    pub fn reset_agent_connected(self: &Arc<Self>) {
        let core = self.clone();
        self.presence.spawn(async move {
            if let Err(e) = core.reset_agent_connected_now().await {
                tracing::warn!("cannot reset agentConnected after start: {e}");
            }
        });
    }

    async fn reset_agent_connected_now(&self) -> Result<(), EcsError> {
        const PAGE: usize = 256;
        let mut stale = Vec::new();
        let mut start_after = None;
        loop {
            let page = self
                .store
                .range(RangeRequest {
                    prefix: keys::INSTANCES_PREFIX.to_owned(),
                    start_after: start_after.take(),
                    limit: Some(PAGE),
                })
                .await
                .map_err(crate::core::store_err)?;
            for kv in &page.kvs {
                let rec: InstanceRecord = crate::core::decode(kv)?;
                if rec.registered() && rec.agent_channel && rec.instance.agent_connected {
                    let rest = &kv.key[keys::INSTANCES_PREFIX.len()..];
                    if let Some((cluster, id)) = rest.split_once('/') {
                        stale.push((cluster.to_owned(), id.to_owned()));
                    }
                }
            }
            match (page.more, page.kvs.last()) {
                (true, Some(last)) => start_after = Some(last.key.clone()),
                _ => break,
            }
        }
        for (cluster, id) in stale {
            self.sync_agent_connected(&cluster, &id).await?;
        }
        Ok(())
    }

    /// Writes the instance's `agentConnected` as "a channel of it is open here", if the
    /// instance is registered and its record says otherwise.
    pub async fn sync_agent_connected(&self, cluster: &str, id: &str) -> Result<(), EcsError> {
        let key = keys::instance(cluster, id);
        let _guard = self.lock(cluster).await;
        for _ in 0..CAS_ATTEMPTS {
            let connected = self.presence.open_channels(id) > 0;
            let Some((mut rec, rev)) = self.get::<InstanceRecord>(&key).await? else {
                return Ok(());
            };
            if !rec.registered() || (rec.instance.agent_connected == connected && rec.agent_channel)
            {
                return Ok(());
            }
            rec.instance.agent_connected = connected;
            rec.agent_channel = true;
            rec.sync();
            let mut batch = Batch::new();
            batch.put(key.clone(), &rec, Some(rev))?;
            if self.commit(batch).await? {
                return Ok(());
            }
        }
        Err(contention())
    }
}
