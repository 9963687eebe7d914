//! IP address management, pure: IPv4 subnets, gateway choice, and leases of addresses to
//! containers. Persistence is the caller's job (the leases are part of the network's state file).

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{NetworkError, Result};

/// An IPv4 subnet in CIDR form, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self> {
        if !(8..=30).contains(&prefix) {
            return Err(NetworkError::Invalid(format!(
                "invalid subnet {addr}/{prefix}: the prefix length must be between 8 and 30"
            )));
        }
        let s = Self { addr, prefix };
        if s.network_u32() != u32::from(addr) {
            return Err(NetworkError::Invalid(format!(
                "invalid subnet {addr}/{prefix}: host bits are set (did you mean {}/{prefix}?)",
                Ipv4Addr::from(s.network_u32())
            )));
        }
        Ok(s)
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix as u32)
    }

    fn network_u32(&self) -> u32 {
        u32::from(self.addr) & self.mask()
    }

    fn broadcast_u32(&self) -> u32 {
        self.network_u32() | !self.mask()
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.network_u32()
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        let p = self.prefix.min(other.prefix);
        let m = u32::MAX << (32 - p as u32);
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }

    /// The first host address: the default gateway.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network_u32() + 1)
    }

    /// Whether `ip` is a usable host address (not the network or broadcast address).
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        self.contains(ip) && v != self.network_u32() && v != self.broadcast_u32()
    }

    /// The `n`th subnet of length `prefix` inside this one, if there is one.
    pub fn nth_child(&self, prefix: u8, n: u32) -> Option<Subnet> {
        if prefix < self.prefix || prefix > 30 {
            return None;
        }
        let count = 1u64 << (prefix - self.prefix);
        if n as u64 >= count {
            return None;
        }
        let addr = self.network_u32() + (n << (32 - prefix as u32));
        Some(Subnet {
            addr: Ipv4Addr::from(addr),
            prefix,
        })
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = NetworkError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            NetworkError::Invalid(format!(
                "invalid subnet {s:?}: expected CIDR like 10.1.2.0/24"
            ))
        };
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        Subnet::new(addr, prefix)
    }
}

impl Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Subnet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The addresses of one subnet handed out to containers. Allocation walks on from the last
/// address given out (wrapping), so a released address is not reused at once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Leases {
    /// Address -> owner (container id).
    pub leases: BTreeMap<Ipv4Addr, String>,
    /// The last address handed out.
    #[serde(default)]
    pub last: Option<Ipv4Addr>,
}

impl Leases {
    /// Leases the next free host address of `subnet` (never the gateway) to `owner`. An owner
    /// that already holds an address gets that address again.
    pub fn allocate(
        &mut self,
        subnet: &Subnet,
        gateway: Ipv4Addr,
        owner: &str,
    ) -> Result<Ipv4Addr> {
        if let Some(ip) = self.held_by(owner) {
            return Ok(ip);
        }
        let first = subnet.network_u32() + 1;
        let last = subnet.broadcast_u32() - 1;
        let size = last - first + 1;
        let start = match self.last {
            Some(l) if subnet.is_host(l) => u32::from(l) - first + 1,
            _ => 0,
        };
        for i in 0..size {
            let v = first + (start + i) % size;
            let ip = Ipv4Addr::from(v);
            if ip != gateway && !self.leases.contains_key(&ip) {
                self.leases.insert(ip, owner.to_string());
                self.last = Some(ip);
                return Ok(ip);
            }
        }
        Err(NetworkError::Conflict(format!(
            "no free address left in {subnet}: remove containers from the network or use a larger subnet"
        )))
    }

    /// Leases exactly `ip` to `owner` (`--ip`): it must be a host address of the subnet, not
    /// the gateway, and not leased to anyone else.
    pub fn allocate_exact(
        &mut self,
        subnet: &Subnet,
        gateway: Ipv4Addr,
        owner: &str,
        ip: Ipv4Addr,
    ) -> Result<Ipv4Addr> {
        if !subnet.is_host(ip) || ip == gateway {
            return Err(NetworkError::Invalid(format!(
                "address {ip} is not a free host address of subnet {subnet}{}",
                if ip == gateway {
                    " (it is the gateway)"
                } else {
                    ""
                }
            )));
        }
        match self.leases.get(&ip) {
            Some(o) if o == owner => return Ok(ip),
            Some(_) => {
                return Err(NetworkError::Conflict(format!(
                    "address {ip} is already in use on {subnet}: pick another --ip"
                )))
            }
            None => {}
        }
        if let Some(old) = self.held_by(owner) {
            self.leases.remove(&old);
        }
        self.leases.insert(ip, owner.to_string());
        Ok(ip)
    }

    pub fn held_by(&self, owner: &str) -> Option<Ipv4Addr> {
        self.leases
            .iter()
            .find(|(_, o)| o.as_str() == owner)
            .map(|(ip, _)| *ip)
    }

    /// Frees every address `owner` holds; returns whether any was held.
    pub fn release(&mut self, owner: &str) -> bool {
        let before = self.leases.len();
        self.leases.retain(|_, o| o != owner);
        before != self.leases.len()
    }

    /// Frees the addresses of owners for which `keep` is false; returns the owners dropped.
    pub fn retain_owners(&mut self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let mut dropped = Vec::new();
        self.leases.retain(|_, o| {
            let k = keep(o);
            if !k {
                dropped.push(o.clone());
            }
            k
        });
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_validate() {
        let s: Subnet = "10.1.2.0/24".parse().unwrap();
        assert_eq!(s.first_host(), Ipv4Addr::new(10, 1, 2, 1));
        assert!(s.contains(Ipv4Addr::new(10, 1, 2, 200)));
        assert!(!s.contains(Ipv4Addr::new(10, 1, 3, 1)));
        assert!(!s.is_host(Ipv4Addr::new(10, 1, 2, 255)));
        assert!("10.1.2.1/24".parse::<Subnet>().is_err());
        assert!("10.1.2.0".parse::<Subnet>().is_err());
        assert!("10.1.2.0/31".parse::<Subnet>().is_err());
        let big: Subnet = "10.0.0.0/8".parse().unwrap();
        assert!(big.overlaps(&s) && s.overlaps(&big));
        assert!(!s.overlaps(&"10.1.3.0/24".parse().unwrap()));
        assert_eq!(big.nth_child(24, 258).unwrap().to_string(), "10.1.2.0/24");
    }

    #[test]
    fn exact_leases_are_checked() {
        let s: Subnet = "10.9.0.0/29".parse().unwrap();
        let gw = s.first_host();
        let mut l = Leases::default();
        let want = Ipv4Addr::new(10, 9, 0, 5);
        assert_eq!(l.allocate_exact(&s, gw, "a", want).unwrap(), want);
        assert_eq!(l.allocate_exact(&s, gw, "a", want).unwrap(), want);
        assert!(matches!(
            l.allocate_exact(&s, gw, "b", want),
            Err(NetworkError::Conflict(_))
        ));
        for bad in [gw, Ipv4Addr::new(10, 9, 0, 7), Ipv4Addr::new(10, 9, 1, 2)] {
            assert!(matches!(
                l.allocate_exact(&s, gw, "b", bad),
                Err(NetworkError::Invalid(_))
            ));
        }
        assert_ne!(l.allocate(&s, gw, "b").unwrap(), want);
    }

    #[test]
    fn leases_are_unique_and_not_reused_at_once() {
        let s: Subnet = "10.9.0.0/29".parse().unwrap(); // hosts .1-.6
        let gw = s.first_host();
        let mut l = Leases::default();
        let a = l.allocate(&s, gw, "a").unwrap();
        let b = l.allocate(&s, gw, "b").unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 9, 0, 2));
        assert_eq!(b, Ipv4Addr::new(10, 9, 0, 3));
        assert_eq!(l.allocate(&s, gw, "a").unwrap(), a);
        assert!(l.release("a"));
        let c = l.allocate(&s, gw, "c").unwrap();
        assert_ne!(c, a);
        for o in ["d", "e"] {
            l.allocate(&s, gw, o).unwrap();
        }
        // .2 (released) is the only one left; the gateway is never handed out.
        assert_eq!(l.allocate(&s, gw, "g").unwrap(), a);
        assert!(l.allocate(&s, gw, "h").is_err());
        let all: std::collections::BTreeSet<_> = l.leases.keys().collect();
        assert_eq!(all.len(), l.leases.len());
        let dropped = l.retain_owners(|o| o == "b");
        assert_eq!(dropped.len(), 4);
        assert_eq!(l.leases.len(), 1);
    }

    #[test]
    fn leases_survive_serde() {
        let s: Subnet = "10.9.0.0/24".parse().unwrap();
        let mut l = Leases::default();
        l.allocate(&s, s.first_host(), "a").unwrap();
        let json = serde_json::to_string(&l).unwrap();
        let mut back: Leases = serde_json::from_str(&json).unwrap();
        assert_eq!(back, l);
        assert_ne!(
            back.allocate(&s, s.first_host(), "b").unwrap(),
            l.held_by("a").unwrap()
        );
    }
}
