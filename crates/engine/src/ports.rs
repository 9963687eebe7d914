//! Published TCP ports (`-p`): the engine binds each host address and port itself (so a port
//! in use is an error at start, before the container runs) and proxies every accepted
//! connection to the container's address. This serves 127.0.0.1 without `route_localnet` or
//! DNAT hairpin rules; nftables DNAT for speed, UDP and `-P` are a later phase.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use berth_engine_client::PortBinding;
use tokio::task::AbortHandle;

use crate::error::{EngineError, Result};

/// A bound host listener waiting for its container's address.
pub(crate) struct Bound {
    key: String,
    ctr_port: u16,
    listener: std::net::TcpListener,
    actual: PortBinding,
}

/// `"80/tcp"` -> 80; anything but TCP is refused.
pub(crate) fn container_port(key: &str) -> Result<u16> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    if proto != "tcp" {
        return Err(EngineError::Invalid(format!(
            "publishing {key}: only tcp ports can be published in this version"
        )));
    }
    port.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| EngineError::Invalid(format!("invalid container port {key:?}")))
}

/// Binds every requested host address and port (an empty port: an ephemeral one).
pub(crate) fn bind(bindings: &BTreeMap<String, Vec<PortBinding>>) -> Result<Vec<Bound>> {
    let mut out = Vec::new();
    for (key, list) in bindings {
        let ctr_port = container_port(key)?;
        for b in list {
            let ip: Ipv4Addr = if b.host_ip.is_empty() {
                Ipv4Addr::UNSPECIFIED
            } else {
                b.host_ip.parse().map_err(|_| {
                    EngineError::Invalid(format!("invalid host address {:?}", b.host_ip))
                })?
            };
            let port: u16 = if b.host_port.is_empty() {
                0
            } else {
                b.host_port.parse().map_err(|_| {
                    EngineError::Invalid(format!("invalid host port {:?}", b.host_port))
                })?
            };
            let listener = std::net::TcpListener::bind((ip, port)).map_err(|e| {
                EngineError::Conflict(format!(
                    "cannot publish {key} on {ip}:{port}: {e}: pick another host port"
                ))
            })?;
            listener.set_nonblocking(true)?;
            let actual_port = listener.local_addr()?.port();
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

/// Starts proxying the bound listeners to `target`; returns the tasks and the actual bindings.
pub(crate) fn spawn(
    bound: Vec<Bound>,
    target: Ipv4Addr,
) -> (Vec<AbortHandle>, BTreeMap<String, Vec<PortBinding>>) {
    let mut tasks = Vec::new();
    let mut actual: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    for b in bound {
        let to = SocketAddr::from((target, b.ctr_port));
        let Ok(listener) = tokio::net::TcpListener::from_std(b.listener) else {
            continue;
        };
        actual.entry(b.key).or_default().push(b.actual);
        tasks.push(tokio::spawn(serve(listener, to)).abort_handle());
    }
    (tasks, actual)
}

async fn serve(listener: tokio::net::TcpListener, to: SocketAddr) {
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
