//! The task metadata endpoint, version 4 (and the same answers under `/v3/`), served by the
//! agent: `GET /v4/<token>` (the container), `/v4/<token>/task` (the task and its
//! containers), `/v4/<token>/stats` and `/v4/<token>/task/stats` (Docker-format stats).
//! Field names are those AWS documents for v4.
//!
//! A container finds the endpoint through `ECS_CONTAINER_METADATA_URI_V4`, which points at an
//! address it can reach: the default bridge network's gateway (bridge tasks), the task
//! network's gateway (awsvpc) or 127.0.0.1 (host). The agent binds one listener per such
//! address — never 0.0.0.0 — with `IP_FREEBIND`, so it can bind a bridge gateway before the
//! engine has brought the bridge up. The token in the path names the container. Ports are kept
//! in a state file so a restarted agent serves adopted containers on the same addresses.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use berth_engine_client::{ContainerStats, EngineClient};
use serde_json::{json, Map, Value};

use crate::runner::state::{ContainerView, TaskView};
use crate::runner::Views;
use crate::AgentError;

/// The endpoint: its listeners and what it serves.
pub struct Metadata {
    engine: EngineClient,
    views: Views,
    listeners: tokio::sync::Mutex<HashMap<Ipv4Addr, SocketAddr>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    state_file: Option<PathBuf>,
    /// Previous stats sample per container (Docker's `precpu_stats`).
    previous: Mutex<HashMap<String, ContainerStats>>,
}

impl Metadata {
    /// `state_file` keeps the listeners' ports across agent restarts.
    pub fn new(engine: EngineClient, state_file: Option<PathBuf>) -> Arc<Metadata> {
        Arc::new(Metadata {
            engine,
            views: Views::default(),
            listeners: tokio::sync::Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            state_file,
            previous: Mutex::new(HashMap::new()),
        })
    }

    /// The task views it serves (the runner writes them).
    pub fn views(&self) -> Views {
        self.views.clone()
    }

    fn saved_ports(&self) -> HashMap<String, u16> {
        self.state_file
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// The listener on `ip` (bound and served on first use).
    pub async fn endpoint(self: &Arc<Self>, ip: Ipv4Addr) -> Result<SocketAddr, AgentError> {
        let mut listeners = self.listeners.lock().await;
        if let Some(a) = listeners.get(&ip) {
            return Ok(*a);
        }
        let saved = self.saved_ports().get(&ip.to_string()).copied();
        let listener = match saved.map(|p| bind_freebind(ip, p)) {
            Some(Ok(l)) => l,
            _ => bind_freebind(ip, 0)
                .map_err(|e| AgentError::Io(format!("cannot listen on {ip}: {e}")))?,
        };
        let addr = listener
            .local_addr()
            .map_err(|e| AgentError::Io(e.to_string()))?;
        let app = router(self.clone());
        let handle = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!("metadata endpoint on {addr} ended: {e}");
            }
        });
        if let Ok(mut t) = self.tasks.lock() {
            t.push(handle);
        }
        listeners.insert(ip, addr);
        if let Some(p) = &self.state_file {
            let mut saved = self.saved_ports();
            saved.insert(ip.to_string(), addr.port());
            if let Ok(b) = serde_json::to_vec(&saved) {
                let tmp = p.with_extension("tmp");
                if std::fs::write(&tmp, b).is_ok() {
                    let _ = std::fs::rename(&tmp, p);
                }
            }
        }
        tracing::debug!(%addr, "task metadata endpoint listening");
        Ok(addr)
    }

    fn find(&self, token: &str) -> Option<(TaskView, usize)> {
        let views = self.views.read().ok()?;
        views.values().find_map(|t| {
            t.containers
                .iter()
                .position(|c| c.token == token)
                .map(|i| (t.clone(), i))
        })
    }

    /// Docker-format stats of one container.
    async fn stats(&self, id: &str) -> Option<Value> {
        let s = self.engine.stats_once(id).await.ok()?;
        let prev = self
            .previous
            .lock()
            .ok()
            .and_then(|mut p| p.insert(id.to_string(), s.clone()));
        Some(docker_stats(&s, prev.as_ref()))
    }
}

impl Drop for Metadata {
    fn drop(&mut self) {
        if let Ok(t) = self.tasks.lock() {
            for h in t.iter() {
                h.abort();
            }
        }
    }
}

/// A listening socket on `ip:port` with `IP_FREEBIND` (the address need not exist yet).
fn bind_freebind(ip: Ipv4Addr, port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.set_reuseaddr(true)?;
    socket2::SockRef::from(&sock).set_freebind_v4(true)?;
    sock.bind(SocketAddr::new(ip.into(), port))?;
    sock.listen(128)
}

fn router(md: Arc<Metadata>) -> Router {
    Router::new()
        .route("/v4/{token}", get(container))
        .route("/v4/{token}/task", get(task))
        .route("/v4/{token}/stats", get(container_stats))
        .route("/v4/{token}/task/stats", get(task_stats))
        .route("/v3/{token}", get(container))
        .route("/v3/{token}/task", get(task))
        .route("/v3/{token}/stats", get(container_stats))
        .route("/v3/{token}/task/stats", get(task_stats))
        .with_state(md)
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"message": "no container with this metadata token"})),
    )
        .into_response()
}

async fn container(State(md): State<Arc<Metadata>>, Path(token): Path<String>) -> Response {
    match md.find(&token) {
        Some((t, i)) => Json(container_json(&t, &t.containers[i])).into_response(),
        None => not_found(),
    }
}

async fn task(State(md): State<Arc<Metadata>>, Path(token): Path<String>) -> Response {
    match md.find(&token) {
        Some((t, _)) => Json(task_json(&t)).into_response(),
        None => not_found(),
    }
}

async fn container_stats(State(md): State<Arc<Metadata>>, Path(token): Path<String>) -> Response {
    let Some((t, i)) = md.find(&token) else {
        return not_found();
    };
    let Some(id) = t.containers[i].runtime_id.clone() else {
        return Json(Value::Null).into_response();
    };
    Json(md.stats(&id).await.unwrap_or(Value::Null)).into_response()
}

async fn task_stats(State(md): State<Arc<Metadata>>, Path(token): Path<String>) -> Response {
    let Some((t, _)) = md.find(&token) else {
        return not_found();
    };
    let mut out = Map::new();
    for c in &t.containers {
        if let Some(id) = &c.runtime_id {
            out.insert(id.clone(), md.stats(id).await.unwrap_or(Value::Null));
        }
    }
    Json(Value::Object(out)).into_response()
}

fn rfc3339(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<String> {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
}

fn epoch_rfc3339(t: Option<f64>) -> Option<String> {
    let t = t?;
    let secs = t.floor() as i64;
    let nanos = ((t - t.floor()) * 1e9) as u32;
    rfc3339(chrono::DateTime::from_timestamp(secs, nanos))
}

fn insert_opt(m: &mut Map<String, Value>, k: &str, v: Option<impl Into<Value>>) {
    if let Some(v) = v {
        m.insert(k.to_string(), v.into());
    }
}

/// The v4 container JSON.
pub fn container_json(t: &TaskView, c: &ContainerView) -> Value {
    let mut m = Map::new();
    insert_opt(&mut m, "DockerId", c.runtime_id.clone());
    m.insert("Name".into(), c.name.clone().into());
    m.insert("DockerName".into(), c.engine_name.clone().into());
    m.insert("Image".into(), c.image.clone().into());
    insert_opt(&mut m, "ImageID", c.image_id.clone());
    let ports: Vec<Value> = c
        .network_bindings
        .iter()
        .map(|b| {
            json!({"ContainerPort": b.container_port, "Protocol": b.protocol,
                   "HostPort": b.host_port, "HostIp": b.bind_ip})
        })
        .collect();
    if !ports.is_empty() {
        m.insert("Ports".into(), ports.into());
    }
    let labels: Map<String, Value> = c
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != crate::runner::spec::LABEL_METADATA_TOKEN)
        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
        .collect();
    m.insert("Labels".into(), Value::Object(labels));
    m.insert(
        "DesiredStatus".into(),
        if t.desired_stopped {
            "STOPPED"
        } else {
            "RUNNING"
        }
        .into(),
    );
    m.insert("KnownStatus".into(), c.status.as_str().into());
    insert_opt(&mut m, "ExitCode", c.exit_code);
    m.insert(
        "Limits".into(),
        json!({"CPU": c.cpu.unwrap_or(0), "Memory": c.memory.unwrap_or(0)}),
    );
    insert_opt(&mut m, "CreatedAt", rfc3339(c.created_at));
    insert_opt(&mut m, "StartedAt", rfc3339(c.started_at));
    insert_opt(&mut m, "FinishedAt", rfc3339(c.finished_at));
    m.insert("Type".into(), "NORMAL".into());
    m.insert("LogDriver".into(), "json-file".into());
    if let Some(arn) = t
        .assignment
        .task
        .containers
        .iter()
        .find(|x| x.name == c.name)
        .map(|x| x.container_arn.clone())
    {
        m.insert("ContainerARN".into(), arn.into());
    }
    if let Some(h) = &c.health {
        m.insert("Health".into(), json!({"status": h}));
    }
    let network = match (&t.eni, t.net) {
        (Some(e), _) => Some(json!({
            "NetworkMode": "awsvpc",
            "IPv4Addresses": [e.ip],
            "AttachmentIndex": 0,
            "MACAddress": e.mac,
            "IPv4SubnetCIDRBlock": e.subnet,
            "SubnetGatewayIpv4Address": format!("{}/{}", e.gateway, e.prefix_len),
        })),
        (None, crate::runner::spec::NetMode::Awsvpc) => None,
        (None, mode) => Some(json!({"NetworkMode": mode.as_str(), "IPv4Addresses": []})),
    };
    if let Some(n) = network {
        m.insert("Networks".into(), json!([n]));
    }
    Value::Object(m)
}

/// The v4 task JSON.
pub fn task_json(t: &TaskView) -> Value {
    let a = &t.assignment;
    let mut m = Map::new();
    m.insert("Cluster".into(), a.cluster.clone().into());
    m.insert("TaskARN".into(), a.task.task_arn.clone().into());
    m.insert("Family".into(), a.task_definition.family.clone().into());
    m.insert(
        "Revision".into(),
        a.task_definition.revision.to_string().into(),
    );
    m.insert(
        "DesiredStatus".into(),
        if t.desired_stopped {
            "STOPPED"
        } else {
            "RUNNING"
        }
        .into(),
    );
    m.insert("KnownStatus".into(), t.status.as_str().into());
    let mut limits = Map::new();
    if let Some(cpu) = a
        .task_definition
        .cpu
        .as_deref()
        .and_then(|c| c.parse::<f64>().ok())
    {
        limits.insert("CPU".into(), json!(cpu / 1024.0));
    }
    if let Some(mem) = a
        .task_definition
        .memory
        .as_deref()
        .and_then(|c| c.parse::<i64>().ok())
    {
        limits.insert("Memory".into(), json!(mem));
    }
    if !limits.is_empty() {
        m.insert("Limits".into(), Value::Object(limits));
    }
    insert_opt(&mut m, "PullStartedAt", epoch_rfc3339(t.pull_started_at));
    insert_opt(&mut m, "PullStoppedAt", epoch_rfc3339(t.pull_stopped_at));
    insert_opt(
        &mut m,
        "ExecutionStoppedAt",
        epoch_rfc3339(t.execution_stopped_at),
    );
    insert_opt(&mut m, "AvailabilityZone", a.task.availability_zone.clone());
    m.insert("LaunchType".into(), "EC2".into());
    m.insert(
        "Containers".into(),
        Value::Array(t.containers.iter().map(|c| container_json(t, c)).collect()),
    );
    Value::Object(m)
}

/// Docker's stats JSON from the engine's sample (and the previous one for `precpu_stats`).
pub fn docker_stats(s: &ContainerStats, prev: Option<&ContainerStats>) -> Value {
    let cpu = |x: &ContainerStats| {
        json!({
            "cpu_usage": {"total_usage": x.cpu_total_ns},
            "system_cpu_usage": x.system_cpu_ns,
            "online_cpus": x.online_cpus,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
        })
    };
    json!({
        "read": s.read,
        "preread": prev.map(|p| p.read.clone()).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        "name": s.name.trim_start_matches('/'),
        "id": s.id,
        "num_procs": 0,
        "pids_stats": {"current": s.pids_current, "limit": s.pids_limit},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 0, "minor": 0, "op": "read", "value": s.block_read},
            {"major": 0, "minor": 0, "op": "write", "value": s.block_write}
        ]},
        "cpu_stats": cpu(s),
        "precpu_stats": prev.map(cpu).unwrap_or_else(|| json!({"cpu_usage": {"total_usage": 0}, "throttling_data": {}})),
        "memory_stats": {"usage": s.memory_usage, "limit": s.memory_limit, "stats": {}}
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::spec::NetMode;
    use crate::runner::state::{ContainerStatus, Eni, TaskStatus};
    use berth_api::shapes::agent::TaskAssignment;
    use berth_api::shapes::tasks::{NetworkBinding, Task};
    use std::collections::BTreeMap;

    fn view(eni: Option<Eni>) -> TaskView {
        let td = berth_api::shapes::taskdefs::TaskDefinition {
            family: "fam".into(),
            revision: 4,
            cpu: Some("512".into()),
            ..Default::default()
        };
        TaskView {
            assignment: Arc::new(TaskAssignment {
                cluster: "c1".into(),
                task: Task {
                    task_arn: "arn:aws:ecs:r:1:task/c1/abc".into(),
                    ..Task::default()
                },
                task_definition: td,
                host_ports: vec![],
            }),
            status: TaskStatus::Running,
            desired_stopped: false,
            containers: vec![ContainerView {
                name: "web".into(),
                essential: true,
                engine_name: "ecs-fam-4-web-abc".into(),
                image: "bb".into(),
                image_id: Some("sha256:1".into()),
                runtime_id: Some("id1".into()),
                status: ContainerStatus::Running,
                exit_code: None,
                reason: None,
                network_bindings: vec![NetworkBinding {
                    bind_ip: Some("0.0.0.0".into()),
                    container_port: Some(80),
                    host_port: Some(8080),
                    protocol: Some("tcp".into()),
                    ..Default::default()
                }],
                health: Some("HEALTHY".into()),
                created_at: None,
                started_at: Some(chrono::Utc::now()),
                finished_at: None,
                token: "tok".into(),
                labels: BTreeMap::from([
                    ("a".to_string(), "b".to_string()),
                    (
                        crate::runner::spec::LABEL_METADATA_TOKEN.to_string(),
                        "tok".to_string(),
                    ),
                ]),
                cpu: Some(128),
                memory: Some(64),
            }],
            stop_code: None,
            stopped_reason: None,
            pull_started_at: Some(1.5),
            pull_stopped_at: Some(2.0),
            execution_stopped_at: None,
            net: if eni.is_some() {
                NetMode::Awsvpc
            } else {
                NetMode::Bridge
            },
            eni,
            pause_id: None,
        }
    }

    #[test]
    fn v4_json_uses_the_documented_names() {
        let v = view(None);
        let c = container_json(&v, &v.containers[0]);
        assert_eq!(c["DockerId"], "id1");
        assert_eq!(c["DockerName"], "ecs-fam-4-web-abc");
        assert_eq!(c["KnownStatus"], "RUNNING");
        assert_eq!(c["Limits"]["Memory"], 64);
        assert_eq!(c["Ports"][0]["HostPort"], 8080);
        assert_eq!(c["Health"]["status"], "HEALTHY");
        assert_eq!(c["Networks"][0]["NetworkMode"], "bridge");
        assert!(c["Labels"]
            .get(crate::runner::spec::LABEL_METADATA_TOKEN)
            .is_none());
        let t = task_json(&v);
        assert_eq!(t["Cluster"], "c1");
        assert_eq!(t["Revision"], "4");
        assert_eq!(t["Limits"]["CPU"], 0.5);
        assert_eq!(t["PullStartedAt"], "1970-01-01T00:00:01.500000000Z");
        assert_eq!(t["LaunchType"], "EC2");
        assert_eq!(t["Containers"][0]["Name"], "web");

        let v = view(Some(Eni {
            attachment_id: "att".into(),
            ip: "10.1.2.3".into(),
            prefix_len: 24,
            mac: "02:42:0a:01:02:03".into(),
            gateway: "10.1.2.1".into(),
            subnet: "10.1.2.0/24".into(),
        }));
        let c = container_json(&v, &v.containers[0]);
        assert_eq!(c["Networks"][0]["NetworkMode"], "awsvpc");
        assert_eq!(c["Networks"][0]["IPv4Addresses"][0], "10.1.2.3");
        assert_eq!(c["Networks"][0]["IPv4SubnetCIDRBlock"], "10.1.2.0/24");
    }

    #[test]
    fn stats_follow_docker() {
        let s = ContainerStats {
            id: "id1".into(),
            name: "/x".into(),
            read: "t2".into(),
            cpu_total_ns: 10,
            system_cpu_ns: 100,
            online_cpus: 2,
            memory_usage: 5,
            memory_limit: 50,
            ..Default::default()
        };
        let prev = ContainerStats {
            read: "t1".into(),
            cpu_total_ns: 4,
            ..s.clone()
        };
        let d = docker_stats(&s, Some(&prev));
        assert_eq!(d["name"], "x");
        assert_eq!(d["preread"], "t1");
        assert_eq!(d["cpu_stats"]["cpu_usage"]["total_usage"], 10);
        assert_eq!(d["precpu_stats"]["cpu_usage"]["total_usage"], 4);
        assert_eq!(d["memory_stats"]["limit"], 50);
    }
}
