//! Berth container networking (the engine's `bridge` driver).
//!
//! Layout, one job per module:
//! - [`ipam`] — IPv4 subnets and address leases (pure).
//! - [`nl`] — a synchronous rtnetlink socket (request, ack, dump).
//! - [`link`] — bridges, veth pairs, addresses, routes (netlink calls behind a small API).
//! - [`netns`] — network namespaces bound to files; namespace work on dedicated threads.
//! - [`firewall`] — the engine's nftables table: isolation between networks, internal
//!   networks, masquerade.
//! - [`manager`] — [`Networks`]: network state files, create/remove/prune, attach/detach of
//!   containers, reconcile after an engine restart.

pub mod error;
pub mod firewall;
pub mod ipam;
pub mod link;
pub mod manager;
pub mod netns;
pub mod nl;

pub use error::NetworkError;
pub use ipam::Subnet;
pub use manager::{
    write_atomic, write_atomic_nosync, AttachOptions, Attachment, CreateNetwork, Network,
    NetworkOptions, Networks, DEFAULT_NETWORK,
};
