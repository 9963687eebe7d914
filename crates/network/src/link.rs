//! Link operations over rtnetlink, in process (bridges, veth pairs, addresses, routes). Each
//! function is one kernel operation on the namespace of the [`Rtnl`] socket it is given;
//! callers compose them.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{NetworkError, Result};
pub use crate::nl::Rtnl;

fn sys(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> NetworkError {
    move |e| NetworkError::System(format!("{what}: {e}"))
}

/// Opens a netlink socket in the calling thread's namespace.
pub fn open() -> Result<Rtnl> {
    Rtnl::open().map_err(sys("cannot open a netlink socket"))
}

/// Whether a link of that name exists in the engine's namespace (asked over netlink: /sys
/// may show another namespace's links, e.g. under `nsenter --net`).
pub fn exists(name: &str) -> bool {
    open()
        .and_then(|mut nl| index(&mut nl, name))
        .map(|i| i.is_some())
        .unwrap_or(false)
}

/// The index of a link by name; `None` if there is none.
pub fn index(nl: &mut Rtnl, name: &str) -> Result<Option<u32>> {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.into()));
    match nl.get(RouteNetlinkMessage::GetLink(m)) {
        Ok(RouteNetlinkMessage::NewLink(l)) => Ok(Some(l.header.index)),
        Ok(_) => Err(NetworkError::System(format!(
            "netlink: odd answer for link {name}"
        ))),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(NetworkError::System(format!(
            "cannot look up link {name}: {e}"
        ))),
    }
}

fn up_message(index: u32) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    m
}

/// Brings a link up.
pub fn set_up(nl: &mut Rtnl, index: u32) -> Result<()> {
    nl.exec(RouteNetlinkMessage::SetLink(up_message(index)), 0)
        .map_err(sys(format!("cannot bring link {index} up")))
}

/// Sets an IPv4 address on a link (replacing it if present).
pub fn set_addr(nl: &mut Rtnl, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<()> {
    let mut m = AddressMessage::default();
    m.header.family = AddressFamily::Inet;
    m.header.prefix_len = prefix;
    m.header.index = index;
    m.header.scope = AddressScope::Universe;
    m.attributes.push(AddressAttribute::Local(IpAddr::V4(ip)));
    m.attributes.push(AddressAttribute::Address(IpAddr::V4(ip)));
    let bcast = u32::from(ip) | (u32::MAX.checked_shr(prefix as u32).unwrap_or(0));
    m.attributes
        .push(AddressAttribute::Broadcast(Ipv4Addr::from(bcast)));
    nl.exec(
        RouteNetlinkMessage::NewAddress(m),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
    .map_err(sys(format!("cannot set address {ip}/{prefix}")))
}

/// Adds a default route through `gateway`.
pub fn add_default_route(nl: &mut Rtnl, gateway: Ipv4Addr, index: u32) -> Result<()> {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet;
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::Boot;
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::Unicast;
    m.attributes
        .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
    m.attributes.push(RouteAttribute::Oif(index));
    nl.exec(RouteNetlinkMessage::NewRoute(m), NLM_F_CREATE | NLM_F_EXCL)
        .map_err(sys(format!("cannot add a default route via {gateway}")))
}

/// Creates a bridge with `gateway/prefix` as its address and brings it up. An existing bridge
/// of that name is reused.
pub fn create_bridge(name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<()> {
    let mut nl = open()?;
    let index = match index(&mut nl, name)? {
        Some(i) => i,
        None => {
            let mut m = LinkMessage::default();
            m.attributes.push(LinkAttribute::IfName(name.into()));
            m.attributes
                .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                    InfoKind::Bridge,
                )]));
            match nl.exec(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(sys(format!("cannot create bridge {name}"))(e)),
            }
            index(&mut nl, name)?.ok_or_else(|| {
                NetworkError::System(format!("bridge {name} vanished after its creation"))
            })?
        }
    };
    set_addr(&mut nl, index, gateway, prefix)?;
    set_up(&mut nl, index)
}

/// Deletes a link by index; a missing link is not an error.
pub fn delete_index(nl: &mut Rtnl, index: u32) -> Result<()> {
    let mut m = LinkMessage::default();
    m.header.index = index;
    match nl.exec(RouteNetlinkMessage::DelLink(m), 0) {
        Err(e) if e.raw_os_error() != Some(libc::ENODEV) => {
            Err(sys(format!("cannot delete link {index}"))(e))
        }
        _ => Ok(()),
    }
}

/// Deletes a link (bridge or veth; deleting one end of a veth pair deletes both). A missing
/// link is not an error.
pub fn delete(name: &str) -> Result<()> {
    if !exists(name) {
        return Ok(());
    }
    let mut nl = open()?;
    match index(&mut nl, name)? {
        Some(i) => delete_index(&mut nl, i),
        None => Ok(()),
    }
}

/// Parses `02:42:..` into bytes.
fn mac_bytes(mac: &str) -> Result<Vec<u8>> {
    mac.split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .ok()
        .filter(|v| v.len() == 6)
        .ok_or_else(|| NetworkError::Invalid(format!("invalid MAC address {mac:?}")))
}

/// Creates a veth pair in one request: `host` stays in `nl`'s namespace, enslaved to the
/// bridge `bridge_index` and up; the peer is created directly in the namespace `netns_fd`,
/// named `peer`, with MAC `mac`, down until [`configure`]. Returns the host end's index.
pub fn create_veth(
    nl: &mut Rtnl,
    host: &str,
    peer: &str,
    netns_fd: RawFd,
    mac: &str,
    bridge_index: u32,
) -> Result<u32> {
    // The peer cannot be brought up here (its other end does not exist yet when the kernel
    // configures it: ENOTCONN); `configure` does that inside the namespace.
    let mut p = LinkMessage::default();
    p.attributes.push(LinkAttribute::IfName(peer.into()));
    p.attributes.push(LinkAttribute::NetNsFd(netns_fd));
    p.attributes.push(LinkAttribute::Address(mac_bytes(mac)?));
    let mut m = up_message(0);
    m.attributes.push(LinkAttribute::IfName(host.into()));
    m.attributes.push(LinkAttribute::Controller(bridge_index));
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
    ]));
    nl.exec(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
        .map_err(sys(format!("cannot create veth pair {host}/{peer}")))?;
    index(nl, host)?
        .ok_or_else(|| NetworkError::System(format!("veth {host} vanished after its creation")))
}

/// Inside a container's namespace (`nl` opened there): gives `dev` its address, brings it up
/// and, unless `gateway` is `None`, adds a default route through it.
pub fn configure(
    nl: &mut Rtnl,
    dev: &str,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
) -> Result<()> {
    let i = index(nl, dev)?
        .ok_or_else(|| NetworkError::System(format!("no link {dev} in the container")))?;
    set_addr(nl, i, ip, prefix)?;
    set_up(nl, i)?;
    if let Some(gw) = gateway {
        add_default_route(nl, gw, i)?;
    }
    Ok(())
}

/// The names of the links in the engine's namespace starting with `prefix` (a netlink dump).
pub fn list_with_prefix(prefix: &str) -> Vec<String> {
    let Ok(links) = open().and_then(|mut nl| {
        nl.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))
            .map_err(sys("cannot list links"))
    }) else {
        return Vec::new();
    };
    links
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => l.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n),
                _ => None,
            }),
            _ => None,
        })
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// The destinations of the IPv4 routes of the engine's namespace (all tables), as subnets;
/// routes wider than /8 (default and the like) don't count as "in use".
pub fn routed_subnets() -> Vec<crate::ipam::Subnet> {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet;
    let Ok(routes) = open().and_then(|mut nl| {
        nl.dump(RouteNetlinkMessage::GetRoute(m))
            .map_err(sys("cannot list routes"))
    }) else {
        return Vec::new();
    };
    routes
        .into_iter()
        .filter_map(|r| match r {
            RouteNetlinkMessage::NewRoute(r) => Some(r),
            _ => None,
        })
        .filter(|r| r.header.destination_prefix_length >= 8)
        .filter_map(|r| {
            let prefix = r.header.destination_prefix_length;
            let addr = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(*a),
                _ => None,
            })?;
            let mask = u32::MAX << (32 - prefix as u32);
            Some(crate::ipam::Subnet {
                addr: Ipv4Addr::from(u32::from(addr) & mask),
                prefix,
            })
        })
        .collect()
}
