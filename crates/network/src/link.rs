//! Link operations through iproute2's `ip` (bridges, veth pairs, addresses, routes). Each
//! function is one kernel operation; callers compose them. Kept behind this module so it can be
//! swapped for netlink calls (`rtnetlink`) without touching policy code.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{NetworkError, Result};

/// Runs `ip ARGS`; an error carries its stderr.
fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| NetworkError::System(format!("cannot run ip (install iproute2): {e}")))?;
    if !out.status.success() {
        return Err(NetworkError::System(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs several `ip` commands in one process (`ip -batch -`), in the caller's network namespace.
pub fn ip_batch(commands: &[String]) -> Result<()> {
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetworkError::System(format!("cannot run ip (install iproute2): {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(commands.join("\n").as_bytes())?;
        stdin.write_all(b"\n")?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(NetworkError::System(format!(
            "ip -batch ({}): {}",
            commands.join("; "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Whether a link of that name exists in the caller's namespace.
pub fn exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Creates a bridge with `gateway/prefix` as its address and brings it up. An existing bridge
/// of that name is reused.
pub fn create_bridge(name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<()> {
    if !exists(name) {
        ip(&["link", "add", "name", name, "type", "bridge"])?;
    }
    let addr = format!("{gateway}/{prefix}");
    let have = ip(&["-o", "-4", "addr", "show", "dev", name])?;
    if !have.contains(&format!(" {addr} ")) {
        ip(&["addr", "replace", &addr, "dev", name])?;
    }
    ip(&["link", "set", name, "up"])?;
    Ok(())
}

/// Deletes a link (bridge or veth; deleting one end of a veth pair deletes both). A missing
/// link is not an error.
pub fn delete(name: &str) -> Result<()> {
    if !exists(name) {
        return Ok(());
    }
    match ip(&["link", "del", name]) {
        Err(_) if !exists(name) => Ok(()),
        r => r.map(|_| ()),
    }
}

/// Creates a veth pair: `host` stays in the caller's namespace, enslaved to `bridge` and up;
/// the peer is created directly in the namespace bound at `netns` under the name `peer`.
pub fn create_veth(host: &str, peer: &str, netns: &Path, bridge: &str) -> Result<()> {
    let ns = netns.display().to_string();
    ip(&[
        "link", "add", "name", host, "type", "veth", "peer", "name", peer, "netns", &ns,
    ])?;
    let r = ip_batch(&[
        format!("link set {host} master {bridge}"),
        format!("link set {host} up"),
    ]);
    if r.is_err() {
        let _ = delete(host);
    }
    r
}

/// The names of the links in the caller's namespace starting with `prefix`.
pub fn list_with_prefix(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// The IPv4 routes of the caller's namespace (`ip -4 route`), as subnets where they parse.
pub fn routed_subnets() -> Vec<crate::ipam::Subnet> {
    let out = ip(&["-4", "route", "show", "table", "all"]).unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|dest| {
            let (a, p) = dest.split_once('/').unwrap_or((dest, "32"));
            let addr: Ipv4Addr = a.parse().ok()?;
            let prefix: u8 = p.parse().ok()?;
            if prefix < 8 {
                return None; // default and other very wide routes don't count as "in use"
            }
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix as u32)
            };
            Some(crate::ipam::Subnet {
                addr: Ipv4Addr::from(u32::from(addr) & mask),
                prefix,
            })
        })
        .collect()
}

/// Commands (for [`ip_batch`] inside the container's namespace) that give `dev` its address,
/// bring it up, and route by default through `gateway` (none for internal networks).
pub fn configure_commands(
    dev: &str,
    ip_addr: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
) -> Vec<String> {
    let mut cmds = vec![
        format!("addr add {ip_addr}/{prefix} dev {dev}"),
        format!("link set {dev} up"),
    ];
    if let Some(gw) = gateway {
        cmds.push(format!("route add default via {gw} dev {dev}"));
    }
    cmds
}
