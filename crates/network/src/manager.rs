//! The engine's networks: their state files (`<dir>/<id>.json`: config and address leases,
//! written atomically), their bridges and firewall table, and the endpoints (veth pair, netns,
//! address) of containers attached to them. Policy only: kernel work goes through [`crate::link`],
//! [`crate::netns`] and [`crate::firewall`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::error::{NetworkError, Result};
use crate::ipam::{Leases, Subnet};
use crate::{firewall, link, netns};

/// The name of the default bridge network.
pub const DEFAULT_NETWORK: &str = "bridge";
/// Linux limits interface names to 15 bytes.
const IFNAMSIZ: usize = 15;
/// The interface name inside the container.
pub const CONTAINER_IF: &str = "eth0";

/// How the engine sets networking up.
#[derive(Debug, Clone)]
pub struct NetworkOptions {
    /// State files of networks.
    pub dir: PathBuf,
    /// Where container namespaces are bound (`<root>/netns`).
    pub netns_dir: PathBuf,
    /// Prefix of every link this engine creates, and the name of its nftables table.
    pub prefix: String,
    /// Subnet of the default `bridge` network.
    pub default_subnet: Subnet,
    /// Pool user networks without `--subnet` get a /24 from.
    pub pool: Subnet,
}

impl NetworkOptions {
    pub fn new(root: &Path) -> Self {
        Self {
            dir: root.join("networks"),
            netns_dir: root.join("netns"),
            prefix: "berth".into(),
            default_subnet: "172.28.0.0/16".parse().expect("valid"),
            pool: "172.29.0.0/16".parse().expect("valid"),
        }
    }
}

/// A network as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    pub internal: bool,
    pub created: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The Linux bridge.
    pub bridge: String,
    #[serde(default)]
    pub ipam: Leases,
}

/// A request to create a user-defined network.
#[derive(Debug, Clone, Default)]
pub struct CreateNetwork {
    pub name: String,
    pub subnet: Option<Subnet>,
    pub gateway: Option<Ipv4Addr>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
}

/// A container's endpoint on a network; stored in the container's record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attachment {
    pub network_id: String,
    pub network_name: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    /// Host end of the veth pair.
    pub veth: String,
    /// The interface inside the container (`eth0`, `eth1`, ...).
    #[serde(default = "default_ifname")]
    pub ifname: String,
    /// Whether the container's default route goes through this network's gateway.
    #[serde(default)]
    pub default_route: bool,
    /// The container's network namespace file.
    pub netns: PathBuf,
}

fn default_ifname() -> String {
    CONTAINER_IF.into()
}

/// How a container joins one network.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// The interface name inside the container.
    pub ifname: String,
    /// `--ip`: this address rather than the next free one.
    pub ip: Option<Ipv4Addr>,
    /// Route by default through this network's gateway (ignored on internal networks).
    pub default_route: bool,
}

pub struct Networks {
    opts: NetworkOptions,
    table: Mutex<BTreeMap<String, Network>>,
    /// Background veth deletions not yet joined (see [`Networks::flush`]).
    deleting: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn new_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Writes `bytes` to `path` atomically: a uniquely named temp file in the same directory,
/// fsync, rename. Safe for concurrent writers of one file (the last rename wins whole).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_replacing(path, bytes, true)
}

/// [`write_atomic`] without the fsync: the file is whole after a crash of the process (the
/// page cache outlives it) but may be lost by a power failure. For state that a reboot makes
/// stale anyway (address leases, a container's runtime files and run state): after a reboot no
/// container runs, and the engine's restore and reconcile recompute it.
pub fn write_atomic_nosync(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_replacing(path, bytes, false)
}

/// Writes a unique temporary file next to `path` (fsynced when `durable`) and renames it over.
fn write_replacing(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphanumeric())
        && c.all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch))
        && n.len() <= 64
}

/// Docker's MAC scheme: 02:42 followed by the IPv4 address.
fn mac_for(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

impl Networks {
    /// Loads the networks (creating the default one's record; its bridge comes with the first
    /// container attached to it).
    pub fn open(opts: NetworkOptions) -> Result<Self> {
        std::fs::create_dir_all(&opts.dir)?;
        let mut table = BTreeMap::new();
        for e in std::fs::read_dir(&opts.dir)?.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&p).map_err(NetworkError::from).and_then(|b| {
                serde_json::from_slice::<Network>(&b)
                    .map_err(|e| NetworkError::System(e.to_string()))
            }) {
                Ok(n) => {
                    table.insert(n.id.clone(), n);
                }
                Err(e) => {
                    tracing::warn!(path = %p.display(), "ignoring unreadable network state: {e}")
                }
            }
        }
        let nets = Self {
            opts,
            table: Mutex::new(table),
            deleting: Mutex::new(Vec::new()),
        };
        let mut t = nets.lock();
        if !t.values().any(|n| n.name == DEFAULT_NETWORK) {
            let subnet = nets.opts.default_subnet;
            let n = Network {
                id: new_id(),
                name: DEFAULT_NETWORK.into(),
                driver: "bridge".into(),
                subnet,
                gateway: subnet.first_host(),
                internal: false,
                created: now(),
                labels: BTreeMap::new(),
                bridge: nets.truncate(format!("{}0", nets.opts.prefix)),
                ipam: Leases::default(),
            };
            nets.save(&n)?;
            t.insert(n.id.clone(), n);
        }
        drop(t);
        Ok(nets)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Network>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn truncate(&self, mut s: String) -> String {
        s.truncate(IFNAMSIZ);
        s
    }

    /// Writes a network's state durably (create).
    fn save(&self, n: &Network) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(n).map_err(|e| NetworkError::System(e.to_string()))?;
        write_atomic(&self.opts.dir.join(format!("{}.json", n.id)), &bytes)?;
        Ok(())
    }

    /// Writes a network's state after a lease change, without fsync (see
    /// [`write_atomic_nosync`]): on the start and exit path of every container.
    fn save_leases(&self, n: &Network) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(n).map_err(|e| NetworkError::System(e.to_string()))?;
        write_atomic_nosync(&self.opts.dir.join(format!("{}.json", n.id)), &bytes)?;
        Ok(())
    }

    pub fn options(&self) -> &NetworkOptions {
        &self.opts
    }

    /// The host end of a container's veth pair on a network: the prefix and a hash of both
    /// ids, 15 bytes at most.
    pub fn veth_name(&self, container_id: &str, network_id: &str) -> String {
        // FNV-1a: stable across builds and runs (the name is found again after a restart).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in container_id.bytes().chain([b'/']).chain(network_id.bytes()) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.truncate(format!("{}{h:016x}", self.opts.prefix))
    }

    pub fn netns_path(&self, container_id: &str) -> PathBuf {
        self.opts.netns_dir.join(container_id)
    }

    pub fn list(&self) -> Vec<Network> {
        let mut v: Vec<Network> = self.lock().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// By id, name, or unique id prefix.
    pub fn get(&self, key: &str) -> Result<Network> {
        find(&self.lock(), key).cloned()
    }

    /// Rewrites the firewall table for the networks whose bridge exists.
    fn sync_firewall(&self, t: &BTreeMap<String, Network>) -> Result<()> {
        let rules: Vec<firewall::BridgeRule> = t
            .values()
            .filter(|n| link::exists(&n.bridge))
            .map(|n| firewall::BridgeRule {
                bridge: n.bridge.clone(),
                subnet: n.subnet,
                internal: n.internal,
            })
            .collect();
        if rules.is_empty() && !self.table_exists() {
            return Ok(());
        }
        firewall::apply(&firewall::script(
            &self.opts.prefix,
            &self.opts.prefix,
            &rules,
        ))
    }

    fn table_exists(&self) -> bool {
        std::process::Command::new("nft")
            .args(["list", "table", "inet", &self.opts.prefix])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn ensure_bridge(&self, t: &BTreeMap<String, Network>, n: &Network) -> Result<()> {
        let existed = link::exists(&n.bridge);
        if !existed {
            // A route to the subnet that is not ours would make the bridge unreachable or
            // hijack the host's traffic (the default network's subnet is only checked here).
            if let Some(r) = link::routed_subnets()
                .iter()
                .find(|r| r.overlaps(&n.subnet))
            {
                return Err(NetworkError::Conflict(format!(
                    "the subnet {} of network {} overlaps the host route {r}: {}",
                    n.subnet,
                    n.name,
                    if n.name == DEFAULT_NETWORK {
                        "start the engine with --default-bridge-subnet set to a free range"
                    } else {
                        "remove the network and create it with another --subnet"
                    }
                )));
            }
        }
        if !existed {
            link::create_bridge(&n.bridge, n.gateway, n.subnet.prefix)?;
            self.sync_firewall(t)?;
        }
        Ok(())
    }

    pub fn create(&self, req: CreateNetwork) -> Result<Network> {
        if !valid_name(&req.name) {
            return Err(NetworkError::Invalid(format!(
                "invalid network name {:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                req.name
            )));
        }
        if matches!(
            req.name.as_str(),
            "host" | "none" | "default" | DEFAULT_NETWORK
        ) {
            return Err(NetworkError::Conflict(format!(
                "network name {:?} is reserved: pick another name",
                req.name
            )));
        }
        let mut t = self.lock();
        if t.values().any(|n| n.name == req.name) {
            return Err(NetworkError::Conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let routes = link::routed_subnets();
        let used = |s: &Subnet| {
            t.values().any(|n| n.subnet.overlaps(s)) || routes.iter().any(|r| r.overlaps(s))
        };
        let subnet = match req.subnet {
            Some(s) => {
                if let Some(other) = t.values().find(|n| n.subnet.overlaps(&s)) {
                    return Err(NetworkError::Conflict(format!(
                        "subnet {s} overlaps network {} ({}): pick another subnet",
                        other.name, other.subnet
                    )));
                }
                if let Some(r) = routes.iter().find(|r| r.overlaps(&s)) {
                    return Err(NetworkError::Conflict(format!(
                        "subnet {s} overlaps the host route {r}: pick another subnet"
                    )));
                }
                s
            }
            None => (0..)
                .map_while(|i| self.opts.pool.nth_child(24, i))
                .find(|s| !used(s))
                .ok_or_else(|| {
                    NetworkError::Conflict(format!(
                        "all subnets of the pool {} are in use: give --subnet",
                        self.opts.pool
                    ))
                })?,
        };
        let gateway = match req.gateway {
            Some(g) if !subnet.is_host(g) => {
                return Err(NetworkError::Invalid(format!(
                    "gateway {g} is not a host address of subnet {subnet}"
                )))
            }
            Some(g) => g,
            None => subnet.first_host(),
        };
        let id = new_id();
        let n = Network {
            bridge: self.truncate(format!("{}br{}", self.opts.prefix, &id)),
            id,
            name: req.name,
            driver: "bridge".into(),
            subnet,
            gateway,
            internal: req.internal,
            created: now(),
            labels: req.labels,
            ipam: Leases::default(),
        };
        self.save(&n)?;
        t.insert(n.id.clone(), n.clone());
        if let Err(e) = self.ensure_bridge(&t, &n) {
            t.remove(&n.id);
            let _ = std::fs::remove_file(self.opts.dir.join(format!("{}.json", n.id)));
            let _ = link::delete(&n.bridge);
            let _ = self.sync_firewall(&t);
            return Err(e);
        }
        Ok(n)
    }

    /// Removes a user-defined network without endpoints: its bridge, rules and state.
    pub fn remove(&self, key: &str) -> Result<Network> {
        let mut t = self.lock();
        let n = find(&t, key)?.clone();
        if n.name == DEFAULT_NETWORK {
            return Err(NetworkError::Conflict(format!(
                "{DEFAULT_NETWORK} is a pre-defined network and cannot be removed"
            )));
        }
        if !n.ipam.leases.is_empty() {
            return Err(NetworkError::Conflict(format!(
                "error while removing network: network {} has active endpoints: remove or stop its containers first",
                n.name
            )));
        }
        link::delete(&n.bridge)?;
        t.remove(&n.id);
        std::fs::remove_file(self.opts.dir.join(format!("{}.json", n.id)))?;
        self.sync_firewall(&t)?;
        Ok(n)
    }

    /// Removes every user-defined network without endpoints; returns their names.
    pub fn prune(&self) -> Vec<String> {
        let unused: Vec<String> = self
            .list()
            .into_iter()
            .filter(|n| n.name != DEFAULT_NETWORK && n.ipam.leases.is_empty())
            .map(|n| n.id)
            .collect();
        unused
            .iter()
            .filter_map(|id| self.remove(id).ok().map(|n| n.name))
            .collect()
    }

    /// Creates the container's network namespace at [`netns_path`](Self::netns_path)
    /// (replacing a leftover of an earlier run) and returns a netlink socket inside it.
    pub fn create_sandbox(&self, container_id: &str) -> Result<link::Rtnl> {
        let path = self.netns_path(container_id);
        let _ = netns::remove(&path);
        netns::create_with(&path, link::open)
    }

    /// A netlink socket inside the container's existing namespace.
    pub fn sandbox_socket(&self, container_id: &str) -> Result<link::Rtnl> {
        let path = self.netns_path(container_id);
        if !path.exists() {
            return Err(NetworkError::Conflict(format!(
                "container {container_id} has no network namespace: is it running?"
            )));
        }
        netns::run_in(&path, link::open)
    }

    /// Unbinds the container's namespace; the kernel destroys it (and the container ends of its
    /// veth pairs, hence the pairs) once the container's processes are gone.
    pub fn remove_sandbox(&self, container_id: &str) -> Result<()> {
        netns::remove(&self.netns_path(container_id))
    }

    /// Joins the container (whose namespace `ns` is a socket in) to a network: an address
    /// lease, a veth pair from the network's bridge into the namespace as `opts.ifname`, the
    /// address, and a default route through the gateway if asked (never on internal networks).
    pub fn attach(
        &self,
        key: &str,
        container_id: &str,
        opts: &AttachOptions,
        ns: &mut link::Rtnl,
    ) -> Result<Attachment> {
        let mut t = self.lock();
        let n = find(&t, key)?.clone();
        if n.ipam.held_by(container_id).is_some() {
            return Err(NetworkError::Conflict(format!(
                "container {container_id} is already attached to network {}",
                n.name
            )));
        }
        self.ensure_bridge(&t, &n)?;
        let net = t.get_mut(&n.id).expect("found");
        let ip = match opts.ip {
            Some(want) => net
                .ipam
                .allocate_exact(&n.subnet, n.gateway, container_id, want)?,
            None => net.ipam.allocate(&n.subnet, n.gateway, container_id)?,
        };
        let net = net.clone();
        self.save_leases(&net)?;
        let att = Attachment {
            network_id: n.id.clone(),
            network_name: n.name.clone(),
            ip,
            prefix: n.subnet.prefix,
            gateway: n.gateway,
            mac: mac_for(ip),
            veth: self.veth_name(container_id, &n.id),
            ifname: opts.ifname.clone(),
            default_route: opts.default_route && !n.internal,
            netns: self.netns_path(container_id),
        };
        let mut setup = || -> Result<()> {
            // A leftover of an earlier run of this container goes first.
            link::delete(&att.veth)?;
            let mut nl = link::open()?;
            let bridge = link::index(&mut nl, &n.bridge)?.ok_or_else(|| {
                NetworkError::System(format!("bridge {} of network {} is gone", n.bridge, n.name))
            })?;
            let nsfile = std::fs::File::open(&att.netns)?;
            use std::os::fd::AsRawFd;
            link::create_veth(
                &mut nl,
                &att.veth,
                &att.ifname,
                nsfile.as_raw_fd(),
                &att.mac,
                bridge,
            )?;
            link::configure(
                ns,
                &att.ifname,
                ip,
                n.subnet.prefix,
                att.default_route.then_some(n.gateway),
            )
        };
        if let Err(e) = setup() {
            let _ = link::delete(&att.veth);
            if let Some(net) = t.get_mut(&n.id) {
                net.ipam.release(container_id);
                let net = net.clone();
                let _ = self.save_leases(&net);
            }
            return Err(e);
        }
        Ok(att)
    }

    /// Undoes [`attach`](Self::attach) for one network: deletes the veth pair (its container
    /// end goes with it) and frees the address. Safe to call more than once.
    pub fn detach(&self, container_id: &str, att: &Attachment) -> Result<()> {
        let mut t = self.lock();
        let r = link::delete(&att.veth);
        if let Some(net) = t.get_mut(&att.network_id) {
            if net.ipam.release(container_id) {
                let net = net.clone();
                self.save_leases(&net)?;
            }
        }
        r
    }

    /// Releases all of a container's endpoints at its exit: unbinds its namespace and frees
    /// the addresses at once; the veth pairs are deleted on a background thread (by index, so
    /// a new pair of the same name, from a quick restart, is never hit). Deleting a veth costs
    /// ~20 ms of kernel time (an RCU grace period), which `run --rm` need not wait for; the
    /// kernel also deletes them itself when the namespace dies. Safe to call more than once.
    pub fn release(&self, container_id: &str, atts: &[Attachment]) -> Result<()> {
        let r = self.remove_sandbox(container_id);
        let mut doomed = Vec::new();
        {
            let mut t = self.lock();
            for a in atts {
                if link::exists(&a.veth) {
                    doomed.push(a.veth.clone());
                }
                if let Some(net) = t.get_mut(&a.network_id) {
                    if net.ipam.release(container_id) {
                        let net = net.clone();
                        self.save_leases(&net)?;
                    }
                }
            }
        }
        if !doomed.is_empty() {
            let mut nl = link::open()?;
            let indexes: Vec<u32> = doomed
                .iter()
                .filter_map(|v| link::index(&mut nl, v).ok().flatten())
                .collect();
            let spawned = std::thread::Builder::new()
                .name("berth-veth-del".into())
                .spawn(move || {
                    for i in indexes {
                        let _ = link::delete_index(&mut nl, i);
                    }
                });
            if let Ok(handle) = spawned {
                let mut pending = self.deleting.lock().unwrap_or_else(|p| p.into_inner());
                pending.retain(|h| !h.is_finished());
                pending.push(handle);
            }
        }
        r
    }

    /// Waits for the background veth deletions to finish (before the process exits, so none
    /// is cut short).
    pub fn flush(&self) {
        let pending = std::mem::take(&mut *self.deleting.lock().unwrap_or_else(|p| p.into_inner()));
        for h in pending {
            let _ = h.join();
        }
    }

    /// After an engine restart: frees leases, deletes veths and namespace files of containers
    /// for which `live` is false, deletes bridges of networks that no longer exist, and
    /// recreates bridges and rules of networks that do (after a reboot).
    pub fn reconcile(&self, live: &dyn Fn(&str) -> bool) {
        let mut t = self.lock();
        for net in t.values_mut() {
            let dropped = net.ipam.retain_owners(live);
            if !dropped.is_empty() {
                tracing::info!(network = %net.name, "freed {} stale address lease(s)", dropped.len());
                let net = net.clone();
                if let Err(e) = self.save_leases(&net) {
                    tracing::warn!("cannot save network {}: {e}", net.name);
                }
            }
        }
        let mut keep: Vec<String> = t.values().map(|n| n.bridge.clone()).collect();
        for net in t.values() {
            keep.extend(net.ipam.leases.values().map(|c| self.veth_name(c, &net.id)));
        }
        for name in link::list_with_prefix(&self.opts.prefix) {
            if !keep.contains(&name) {
                tracing::info!(link = %name, "deleting orphaned link");
                let _ = link::delete(&name);
            }
        }
        if let Ok(rd) = std::fs::read_dir(&self.opts.netns_dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !live(&name) {
                    let _ = netns::remove(&e.path());
                }
            }
        }
        let user: Vec<Network> = t
            .values()
            .filter(|n| n.name != DEFAULT_NETWORK || !n.ipam.leases.is_empty())
            .cloned()
            .collect();
        for n in user {
            if let Err(e) = link::create_bridge(&n.bridge, n.gateway, n.subnet.prefix) {
                tracing::warn!(network = %n.name, "cannot restore bridge: {e}");
            }
        }
        if let Err(e) = self.sync_firewall(&t) {
            tracing::warn!("cannot restore firewall rules: {e}");
        }
    }
}

fn find<'a>(t: &'a BTreeMap<String, Network>, key: &str) -> Result<&'a Network> {
    if let Some(n) = t.get(key) {
        return Ok(n);
    }
    if let Some(n) = t.values().find(|n| n.name == key) {
        return Ok(n);
    }
    let m: Vec<&Network> = t
        .values()
        .filter(|n| !key.is_empty() && n.id.starts_with(key))
        .collect();
    match m.len() {
        1 => Ok(m[0]),
        0 => Err(NetworkError::NotFound(format!("network {key} not found"))),
        _ => Err(NetworkError::Invalid(format!(
            "network {key} is ambiguous ({} matches): give more of its id",
            m.len()
        ))),
    }
}
