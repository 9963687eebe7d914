//! Embedded DNS for user-defined networks: one UDP responder per network on the network's
//! gateway address (port 53), which is the container's nameserver. It answers A queries for
//! the names, short ids and hostnames of running containers on that network, answers only
//! clients inside the network's subnet (other networks cannot look names up), answers NXDOMAIN
//! for other single-label names, and forwards every other query to the host's resolvers. The default `bridge` network has none (Docker).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::engine::Engine;

/// The host's nameservers (loopback ones included: the engine runs on the host).
fn upstreams() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ns| ns.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The query's name (lowercase, no trailing dot), type, and the end offset of the question.
fn parse_question(msg: &[u8]) -> Option<(String, u16, usize)> {
    if msg.len() < 12 || u16::from_be_bytes([msg[4], msg[5]]) != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *msg.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // compression is not used in questions
        }
        labels.push(String::from_utf8_lossy(msg.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?]);
    Some((labels.join("."), qtype, i + 4))
}

/// An answer to `query` (question included) with `addrs` as A records.
fn answer(query: &[u8], qend: usize, addrs: &[Ipv4Addr]) -> Vec<u8> {
    let mut out = Vec::with_capacity(qend + 16 * addrs.len());
    out.extend_from_slice(&query[..2]);
    let rd = query[2] & 0x01;
    out.push(0x84 | rd); // QR, AA, RD copied
    out.push(0x80); // RA, NOERROR
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[12..qend]);
    for a in addrs {
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 10, 0, 4]);
        out.extend_from_slice(&a.octets());
    }
    out
}

/// Addresses of running containers on `network_id` known as `name`.
fn lookup(engine: &Engine, network_id: &str, name: &str) -> Option<Vec<Ipv4Addr>> {
    let slots = engine.lock();
    let found: Vec<Ipv4Addr> = slots
        .values()
        .filter(|s| s.rec.state.running)
        .flat_map(|s| {
            let r = &s.rec;
            r.networks
                .iter()
                .filter(|a| a.network_id == network_id)
                .filter(|a| {
                    r.name.eq_ignore_ascii_case(name)
                        || r.short_id() == name
                        || r.config.hostname.eq_ignore_ascii_case(name)
                        || r.aliases_on(a).iter().any(|x| x.eq_ignore_ascii_case(name))
                })
                .map(|a| a.ip)
                .collect::<Vec<_>>()
        })
        .collect();
    (!found.is_empty()).then_some(found)
}

async fn forward(query: &[u8]) -> Option<Vec<u8>> {
    for up in upstreams() {
        let bind: SocketAddr = if up.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let Ok(sock) = UdpSocket::bind(bind).await else {
            continue;
        };
        if sock.send_to(query, up).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf)).await
        {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

/// Serves DNS for one network until aborted.
pub(crate) async fn serve(
    engine: Arc<Engine>,
    sock: UdpSocket,
    network_id: String,
    subnet: berth_network::Subnet,
) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 1500];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let from_network = matches!(peer.ip(), std::net::IpAddr::V4(ip) if subnet.contains(ip));
        if !from_network {
            continue;
        }
        let query = buf[..n].to_vec();
        let Some((name, qtype, qend)) = parse_question(&query) else {
            continue;
        };
        match lookup(&engine, &network_id, &name) {
            Some(addrs) => {
                let addrs = if qtype == 1 { addrs } else { Vec::new() };
                let _ = sock.send_to(&answer(&query, qend, &addrs), peer).await;
            }
            // An unknown single-label name is a container that is not there: answer NXDOMAIN
            // here rather than ask the host's resolvers.
            None if !name.contains('.') => {
                let mut reply = answer(&query, qend, &[]);
                reply[3] |= 3;
                let _ = sock.send_to(&reply, peer).await;
            }
            None => {
                let sock = sock.clone();
                tokio::spawn(async move {
                    if let Some(reply) = forward(&query).await {
                        let _ = sock.send_to(&reply, peer).await;
                    }
                });
            }
        }
    }
}

impl Engine {
    /// Starts the DNS responder of a user-defined network if it is not running yet.
    pub(crate) async fn ensure_dns(self: &Arc<Self>, att: &berth_network::Attachment) {
        if att.network_name == berth_network::DEFAULT_NETWORK {
            return;
        }
        let Ok(net) = self.networks.get(&att.network_id) else {
            return;
        };
        {
            let mut dns = self.dns.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(h) = dns.get(&net.id) {
                if !h.is_finished() {
                    return;
                }
            }
            dns.remove(&net.id);
        }
        let sock = match UdpSocket::bind((net.gateway, 53)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(network = %net.name, "cannot serve DNS on {}:53: {e}", net.gateway);
                return;
            }
        };
        let task = tokio::spawn(serve(self.clone(), sock, net.id.clone(), net.subnet));
        let mut dns = self.dns.lock().unwrap_or_else(|p| p.into_inner());
        match dns.get(&net.id) {
            Some(h) if !h.is_finished() => task.abort(),
            _ => {
                dns.insert(net.id.clone(), task.abort_handle());
            }
        }
    }

    /// Stops the DNS responder of a removed network.
    pub(crate) fn stop_dns(&self, network_id: &str) {
        if let Some(h) = self
            .dns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(network_id)
        {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_parse_and_answers_build() {
        // id 0x1234, RD, one question: web.
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(&[3, b'W', b'e', b'b', 0, 0, 1, 0, 1]);
        let (name, qtype, end) = parse_question(&q).unwrap();
        assert_eq!((name.as_str(), qtype, end), ("web", 1, q.len()));
        let a = answer(&q, end, &[Ipv4Addr::new(10, 1, 2, 3)]);
        assert_eq!(&a[..2], &[0x12, 0x34]);
        assert_eq!(a[3] & 0x0f, 0);
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1);
        assert_eq!(&a[a.len() - 4..], &[10, 1, 2, 3]);
        assert!(parse_question(&q[..10]).is_none());
    }
}
