//! Berth's control plane: an Amazon ECS-compatible API served over HTTP, with its state in a
//! [`berth_store::Store`] and placement by [`berth_scheduler::place`].
//!
//! [`run`] serves on a bound listener until a shutdown future completes (tests bind port 0).
//!
//! # Layers
//! - `edge`: AWS JSON 1.1 (`POST /`, `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Op>`):
//!   request id, authentication (SigV4 through [`berth_auth::verify`] before anything else
//!   runs; the region of ARNs is the credential scope's), parsing into a typed request ([`berth_api::shapes`]),
//!   rendering the response or the ECS error. Also `GET /v1/agent/watch`, the agent channel's
//!   HTTP side (same authentication, query parameters, a streamed NDJSON response). No
//!   business logic.
//! - `core` + `ops/*`: handle one typed request against the store: `clusters`, `taskdefs`,
//!   `instances`, `attributes`, `tasks` (RunTask/StartTask/StopTask/Describe/List), `agent`
//!   (state changes from node agents: idempotent, only forward in ECS's lifecycle), `tags`,
//!   `settings`.
//! - `channel`: the agent channel (docs/agent-protocol.md): a snapshot of the instance's
//!   assignments at one revision, then a store watch from the next revision turned into
//!   task/removed events, heartbeats when idle; `presence`: the channels open per instance in
//!   this process and the instance's `agentConnected` kept in step with them.
//! - `counts`: the only place task phases change, so counts stay exact, and the lifecycle
//!   order; `placement`: the bridge to the scheduler; `filter`: the cluster query language over
//!   stored instances; `records`/`keys`: what is stored where; `ids`: random ids.
//!
//! # Key layout (values are JSON)
//! | key | value |
//! | --- | --- |
//! | `clusters/NAME` | the wire `Cluster`, counts included; INACTIVE after DeleteCluster |
//! | `families/FAMILY` | last revision, number of ACTIVE revisions |
//! | `taskdefs/FAMILY/REVISION` (10 digits) | the `TaskDefinition` and its tags |
//! | `instances/CLUSTER/ID` | the wire `ContainerInstance` + reservations, host ports, task groups |
//! | `tasks/CLUSTER/ID` | the wire `Task` + instance id, reservation, host ports chosen |
//! | `assignments/INSTANCE_ID/TASK_ID` | cluster, task ARN, desiredStatus: a task placed on the instance and not yet STOPPED |
//! | `parameters/NAME` | an SSM parameter: type, value, version, description (`ops::parameters`) |
//! | `secrets/NAME` | a Secrets Manager secret: ARN, description, tags, its AWSCURRENT and AWSPREVIOUS values (`ops::secrets`) |
//! | `idempotency/CLUSTER/TOKEN` | the task ids a RunTask clientToken created |
//! | `settings/default/NAME`, `settings/principal/ARN/NAME` | account settings |
//!
//! A node agent watches `assignments/<its instance id>/` through the agent channel (a put: a
//! new task or a new desiredStatus, sent as the task and its definition read again; a delete:
//! the task is STOPPED); controllers watch `tasks/`, `clusters/`. StopTask of a task no agent
//! reported on stops it at once unless a channel of its instance is open here; then it only
//! puts the new desiredStatus and the agent's STOPPED report finishes it.
//!
//! `agentConnected` of an instance is true while a channel of it is open in this server
//! (RegisterContainerInstance sets it too) and is written false when the last one closes;
//! with several servers sharing a store each one only knows its own channels. At start the
//! server writes it false for every instance whose record still says true (no channel is
//! open yet; agents reconnect within seconds and set it again).
//! Nothing is loaded at start: every request reads the keys it needs (DescribeTasks is one
//! multi-get), so start-up time does not depend on the number of tasks.
//!
//! # Exact counts
//! Writers of one cluster (its record, instances and tasks) hold an in-process lock for that
//! cluster and write everything a change touches in one store transaction that compares the
//! mod revision of every record it read (compare-and-swap; on a lost race it re-reads and
//! retries). RunTask/StartTask pipeline their writes on a cached copy of the cluster (see
//! `ops::tasks`), comparing record versions, so concurrent calls share the store's commits.
//! A task's phase (pending/running/stopped) changes only in `counts::transition`,
//! which adjusts the cluster's and the instance's counts and releases the reservation.

mod channel;
mod core;
mod counts;
mod edge;
mod error;
mod filter;
mod ids;
mod keys;
mod ops;
mod placement;
mod presence;
mod records;

use std::future::Future;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use berth_store::Store;

pub use crate::core::{Core, Ctx};
pub use error::ServerError;

/// How requests are authenticated.
#[derive(Clone)]
pub enum Auth {
    /// `--no-auth`: every request is accepted; the region comes from the SigV4 scope if any.
    Disabled,
    /// Every request must carry a valid SigV4 signature made with one of these keys
    /// (`UnrecognizedClientException`, `InvalidSignatureException`, ... otherwise).
    Enabled(Arc<berth_auth::CredentialStore>),
}

/// What the server needs besides its listener.
pub struct ServerConfig {
    pub store: Arc<dyn Store>,
    /// The account id in ARNs.
    pub account_id: String,
    /// The region used when a request carries no SigV4 credential scope.
    pub default_region: String,
    pub auth: Auth,
}

/// How many revisions of change history the server keeps for watchers to resume from.
pub const HISTORY_REVISIONS: i64 = 100_000;
/// How often the server compacts older history.
const COMPACT_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Drops change history older than [`HISTORY_REVISIONS`] revisions, periodically, so a long
/// running server's history does not grow without bound.
async fn compactor(store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(COMPACT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(current) = store.revision().await else {
            continue;
        };
        let keep_from = current - HISTORY_REVISIONS;
        if keep_from > 1 {
            if let Err(e) = store.compact(keep_from).await {
                tracing::debug!("compaction to revision {keep_from} skipped: {e}");
            }
        }
    }
}

/// Serves the ECS API on `listener` until `shutdown` completes, then finishes the requests in
/// flight and returns.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let addr = listener.local_addr().map_err(ServerError::Address)?;
    let compaction = tokio::spawn(compactor(config.store.clone()));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let core = Arc::new(Core::new(config.store, config.account_id));
    // No channel is open yet: records saying agentConnected are from before this start.
    core.reset_agent_connected();
    let app = Arc::new(edge::App {
        core: core.clone(),
        auth: config.auth,
        default_region: config.default_region,
        endpoint: format!("http://{addr}"),
        shutdown: stopping,
    });
    let router = Router::new()
        .route("/", post(edge::handle))
        .route(
            "/v1/agent/watch",
            get(edge::agent_watch).fallback(edge::fallback),
        )
        .fallback(edge::fallback)
        .with_state(app);
    tracing::info!(%addr, "serving the ECS API");
    let shutdown = async move {
        shutdown.await;
        // Open agent channels end, so the graceful shutdown does not wait for them.
        let _ = stop.send(true);
    };
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServerError::Serve);
    // The agentConnected writes of the channels that just closed.
    core.presence.drain().await;
    compaction.abort();
    // Wait for the compactor to be gone so the store can be reopened right after `run` returns.
    let _ = compaction.await;
    served
}
