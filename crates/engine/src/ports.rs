//! Published ports (`-p`, `-P`): the engine binds each host address and port itself (so a port
//! in use is an error at start, before the container runs, and `-P` gets free ports from the
//! kernel's ephemeral range by binding port 0) and relays traffic to the container's address:
//! TCP by proxying every accepted connection, UDP by a flow per client address (a connected
//! socket towards the container, dropped after [`UDP_IDLE`] without traffic). See
//! docs/architecture.md (Networking) for why a proxy rather than DNAT.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_engine_client::PortBinding;
use tokio::net::UdpSocket;
use tokio::task::{AbortHandle, JoinSet};

use crate::error::{EngineError, Result};
use crate::record::ContainerRecord;

/// How long a UDP flow lives without a datagram either way.
const UDP_IDLE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Tcp,
    Udp,
}

enum Listener {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

/// A bound host socket waiting for its container's address.
pub(crate) struct Bound {
    key: String,
    ctr_port: u16,
    listener: Listener,
    actual: PortBinding,
}

/// `"80/tcp"` -> (80, Tcp); `"53/udp"` -> (53, Udp); other protocols are refused.
pub(crate) fn container_port(key: &str) -> Result<(u16, Proto)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => {
            return Err(EngineError::Invalid(format!(
                "publishing {key}: protocol {other:?} is not supported: use tcp or udp"
            )))
        }
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| EngineError::Invalid(format!("invalid container port {key:?}")))?;
    Ok((port, proto))
}

/// The host address and port of a binding (empty address: all; empty port: an ephemeral one).
pub(crate) fn host_addr(b: &PortBinding) -> Result<(Ipv4Addr, u16)> {
    let ip: Ipv4Addr = if b.host_ip.is_empty() {
        Ipv4Addr::UNSPECIFIED
    } else {
        b.host_ip.parse().map_err(|_| {
            EngineError::Invalid(format!(
                "invalid host address {:?}: give an IPv4 address",
                b.host_ip
            ))
        })?
    };
    let port: u16 = if b.host_port.is_empty() {
        0
    } else {
        b.host_port
            .parse()
            .map_err(|_| EngineError::Invalid(format!("invalid host port {:?}", b.host_port)))?
    };
    Ok((ip, port))
}

/// The bindings a container asks for: `-p`, plus with `-P` every exposed port (image
/// `ExposedPorts` and `--expose`) not bound by `-p`, on an ephemeral host port. Only for
/// containers on bridge networks.
pub(crate) fn requested(rec: &ContainerRecord) -> BTreeMap<String, Vec<PortBinding>> {
    if rec.requested_endpoints().is_empty() {
        return BTreeMap::new();
    }
    let mut out = rec.host_config.port_bindings.clone();
    if rec.host_config.publish_all_ports {
        for key in rec.config.exposed_ports.keys() {
            let key = if key.contains('/') {
                key.clone()
            } else {
                format!("{key}/tcp")
            };
            if container_port(&key).is_ok() {
                out.entry(key)
                    .or_insert_with(|| vec![PortBinding::default()]);
            }
        }
    }
    out
}

/// Binds every requested host address and port; on error nothing stays bound.
pub(crate) fn bind(bindings: &BTreeMap<String, Vec<PortBinding>>) -> Result<Vec<Bound>> {
    let mut out = Vec::new();
    for (key, list) in bindings {
        let (ctr_port, proto) = container_port(key)?;
        for b in list {
            let (ip, port) = host_addr(b)?;
            let in_use = |e: std::io::Error| {
                EngineError::Conflict(format!(
                    "cannot publish {key} on {ip}:{port}: {e}: pick another host port"
                ))
            };
            let (listener, actual_port) = match proto {
                Proto::Tcp => {
                    let l = std::net::TcpListener::bind((ip, port)).map_err(in_use)?;
                    l.set_nonblocking(true)?;
                    let p = l.local_addr()?.port();
                    (Listener::Tcp(l), p)
                }
                Proto::Udp => {
                    let s = std::net::UdpSocket::bind((ip, port)).map_err(in_use)?;
                    s.set_nonblocking(true)?;
                    let p = s.local_addr()?.port();
                    (Listener::Udp(s), p)
                }
            };
            out.push(Bound {
                key: key.clone(),
                ctr_port,
                listener,
                actual: PortBinding {
                    host_ip: ip.to_string(),
                    host_port: actual_port.to_string(),
                },
            });
        }
    }
    Ok(out)
}

/// Starts relaying the bound sockets to `target`; returns the tasks and the actual bindings.
pub(crate) fn spawn(
    bound: Vec<Bound>,
    target: Ipv4Addr,
) -> (Vec<AbortHandle>, BTreeMap<String, Vec<PortBinding>>) {
    let mut tasks = Vec::new();
    let mut actual: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    for b in bound {
        let to = SocketAddr::from((target, b.ctr_port));
        let task = match b.listener {
            Listener::Tcp(l) => match tokio::net::TcpListener::from_std(l) {
                Ok(l) => tokio::spawn(serve_tcp(l, to)),
                Err(_) => continue,
            },
            Listener::Udp(s) => match UdpSocket::from_std(s) {
                Ok(s) => tokio::spawn(serve_udp(s, to)),
                Err(_) => continue,
            },
        };
        actual.entry(b.key).or_default().push(b.actual);
        tasks.push(task.abort_handle());
    }
    (tasks, actual)
}

async fn serve_tcp(listener: tokio::net::TcpListener, to: SocketAddr) {
    loop {
        let (mut inbound, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%to, "accept on a published port failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            if let Ok(mut out) = tokio::net::TcpStream::connect(to).await {
                let _ = inbound.set_nodelay(true);
                let _ = out.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
            }
        });
    }
}

/// UDP: one connected socket towards the container per client address; replies go back from
/// the published socket. The flows are tasks of this one, so aborting it ends them all and
/// frees the host port at once.
async fn serve_udp(sock: UdpSocket, to: SocketAddr) {
    let sock = Arc::new(sock);
    let flows: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    let mut set = JoinSet::new();
    let mut buf = vec![0u8; 65536];
    loop {
        while set.try_join_next().is_some() {}
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%to, "receive on a published UDP port failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let flow = flows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&peer)
            .cloned();
        let flow = match flow {
            Some(f) => f,
            None => {
                let Ok(up) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await else {
                    continue;
                };
                if up.connect(to).await.is_err() {
                    continue;
                }
                let up = Arc::new(up);
                flows
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(peer, up.clone());
                let (sock, flows, up2) = (sock.clone(), flows.clone(), up.clone());
                set.spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, up2.recv(&mut buf)).await {
                        let _ = sock.send_to(&buf[..n], peer).await;
                    }
                    flows
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&peer);
                });
                up
            }
        };
        let _ = flow.send(&buf[..n]).await;
    }
}
