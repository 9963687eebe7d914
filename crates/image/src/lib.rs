//! Berth's image store: where images live on disk and how they get in and out.
//!
//! The engine calls the synchronous [`ImageStore`] API (from `spawn_blocking`) to import root
//! filesystems, load and save `docker save`/OCI archives, resolve references, tag, remove and
//! prune images, and get the unpacked layer directories a container's overlay mount is built
//! from.
//!
//! # Layout on disk (under the engine data dir, e.g. `/var/lib/berth`)
//!
//! ```text
//! content/blobs/sha256/<hex>        blobs by digest: manifests, configs, layer tars (as loaded)
//! snapshots/sha256/<chain id hex>/  one unpacked layer per chain id
//!     fs/                           the layer's files; whiteouts in overlayfs form (lowerdir)
//!     size                          bytes of file data in fs/
//! images/index.json                 image id -> manifest, layers, diff ids; tag -> image id
//! tmp/stage-<random>/               private staging of an import/load in progress
//! tmp/ahead-<random>/               a layer a pull unpacks while downloading it
//! ingest/<hex>.partial              a blob a pull is downloading (kept to resume)
//! ```
//!
//! Image ids are the sha256 of the config blob, which is kept byte-for-byte. Every blob is
//! hashed while it is written and checked against the digest it claims; a load or import is
//! staged completely (blobs verified, layers unpacked) before anything is renamed into
//! `content/` or `snapshots/` and the index is rewritten, so a corrupt or truncated archive
//! leaves no trace.
//!
//! # Modules
//!
//! - [`reference`]: parsing and Docker-style normalization of image names.
//! - [`digest`]: sha256 helpers, hashing readers and writers.
//! - [`content`]: the content-addressed blob store.
//! - [`snapshot`]: unpacked layers keyed by chain id.
//! - [`unpack`]: extracting one layer tar safely, with overlayfs whiteouts.
//! - [`config`]: OCI/Docker JSON documents (manifest, index, image config).
//! - [`index`]: the persisted name/id index.
//! - [`pulled`]: registering an image a registry pull downloaded.
//! - [`ahead`]: unpacking a layer while a pull is still downloading it.
//! - `stage`, `layer`, `import`, `archive_load`, `archive_save`: staging, layer verification,
//!   `docker import`, `docker load`, `docker save`.
//! - `store`: [`ImageStore`] itself.

pub mod ahead;
mod archive_load;
mod archive_save;
pub mod config;
pub mod content;
pub mod digest;
pub mod direct_write;
mod error;
mod image;
mod import;
pub mod index;
mod layer;
pub mod pulled;
pub mod reference;
pub mod snapshot;
mod stage;
mod store;
pub mod unpack;
mod unpack_file;

pub use error::ImageError;
pub use image::{short_id, Image, ZERO_TIME};
pub use import::DEFAULT_PATH;
pub use store::ImageStore;
