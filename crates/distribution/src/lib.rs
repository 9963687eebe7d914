//! Berth's registry client: pulls images from and pushes images to any registry speaking the
//! OCI Distribution Spec (Docker Registry HTTP API v2) — Docker Hub, `berth registry`, the
//! reference `registry:2`, cloud registries — over http on loopback (or hosts marked insecure)
//! and https (rustls) elsewhere.
//!
//! The engine calls [`pull::pull`], [`push::push`] and [`login::login`]; progress goes to a
//! [`progress::ProgressSink`] as Docker-style per-layer status events.
//!
//! Modules:
//! - [`endpoint`]: where a reference's registry lives (Docker Hub's aliases, http vs https).
//! - [`credentials`]: registry credentials, the engine API's `X-Registry-Auth` header, and the
//!   Docker CLI config file (`~/.docker/config.json`) the CLI stores logins in.
//! - [`challenge`]: parsing `WWW-Authenticate` (basic and bearer challenges).
//! - [`session`]: one repository on one registry: authenticated requests (bearer token flow,
//!   basic auth, one retry on 401 with a fresh token), error bodies turned into messages.
//! - [`pull`]: manifests (indexes resolved to linux/<host arch>), blobs downloaded into the
//!   store's ingest dir (resumable with `Range:`, sha256 verified, 3 at a time), then committed
//!   through [`berth_image::ImageStore::commit_pulled`].
//! - [`push`]: blob existence checks, cross-repository mounts, monolithic or chunked uploads,
//!   then the manifest exactly as stored.
//! - [`login`]: checking credentials against a registry.
//! - [`progress`]: progress events.

pub mod challenge;
pub mod credential_helper;
pub mod credentials;
pub mod endpoint;
mod error;
mod ingest;
pub mod login;
pub mod progress;
pub mod pull;
pub mod push;
pub mod session;
mod unpack_ahead;

pub use credentials::Credentials;
pub use error::DistributionError;
pub use progress::{Progress, ProgressSink};
pub use session::{RegistryClient, RegistryOptions};
