//! JSON documents of the OCI image spec and Docker's archive format, as far as the store reads
//! or writes them: descriptors, manifests, indexes, `manifest.json` entries and the image config.
//!
//! The image config is parsed with our own serde struct (not `oci-spec`'s) so Docker's
//! `Healthcheck` survives; the config blob itself is always kept byte-for-byte.

use std::collections::BTreeMap;

use berth_engine_client::{HealthConfig, ImageConfig};
use serde::{Deserialize, Serialize};

use crate::ImageError;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Annotation holding the tag (or full reference) of a manifest in an OCI index.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's (and Docker 25+'s) annotation with the full image name.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

/// Content descriptor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// Image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

impl Index {
    /// The entry for linux on this machine's architecture, if the index lists one.
    pub fn for_this_platform(&self) -> Option<&Descriptor> {
        let arch = host_architecture();
        self.manifests.iter().find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
    }
}

/// One entry of a docker-archive's `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DockerArchiveEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(default)]
    pub layers: Vec<String>,
}

/// The `config` object inside an image config (Docker's spelling).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct RunConfig {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub working_dir: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub stop_signal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<DockerHealthcheck>,
    /// `SHELL` of a Dockerfile: the shell for shell-form RUN/CMD/ENTRYPOINT of later builds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

/// Docker's `Healthcheck` in an image config (durations in nanoseconds).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct DockerHealthcheck {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    pub interval: u64,
    pub timeout: u64,
    pub start_period: u64,
    pub retries: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct RootFsConfig {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct History {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// The image config blob (the fields the store uses; the blob itself is kept verbatim).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct ImageConfigFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub config: RunConfig,
    pub rootfs: RootFsConfig,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
}

impl ImageConfigFile {
    /// Parses a config blob; `what` names it in errors.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self, ImageError> {
        let cfg: ImageConfigFile = serde_json::from_slice(bytes)
            .map_err(|e| ImageError::archive(format!("image config {what} is not valid: {e}")))?;
        if cfg.rootfs.kind != "layers" {
            return Err(ImageError::archive(format!(
                "image config {what}: rootfs.type is {:?}, want \"layers\"",
                cfg.rootfs.kind
            )));
        }
        for d in &cfg.rootfs.diff_ids {
            crate::digest::hex_of(d).map_err(|_| {
                ImageError::archive(format!("image config {what}: bad diff id {d:?}"))
            })?;
        }
        Ok(cfg)
    }

    /// The engine API view of the run config.
    pub fn api_config(&self) -> ImageConfig {
        let c = &self.config;
        ImageConfig {
            user: c.user.clone(),
            exposed_ports: c.exposed_ports.clone().unwrap_or_default(),
            env: c.env.clone().unwrap_or_default(),
            entrypoint: c.entrypoint.clone().unwrap_or_default(),
            cmd: c.cmd.clone().unwrap_or_default(),
            volumes: c.volumes.clone().unwrap_or_default(),
            working_dir: c.working_dir.clone(),
            labels: c.labels.clone().unwrap_or_default(),
            stop_signal: c.stop_signal.clone(),
            healthcheck: c.healthcheck.as_ref().map(|h| HealthConfig {
                test: h.test.clone().unwrap_or_default(),
                interval: h.interval,
                timeout: h.timeout,
                start_period: h.start_period,
                retries: h.retries,
            }),
        }
    }
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// Go's name of the host architecture (`amd64`, `arm64`, ...).
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_healthcheck() {
        let raw = br#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"],"Cmd":["sh"],
            "Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":1000000000,"Retries":3}},
            "rootfs":{"type":"layers","diff_ids":[]}}"#;
        let cfg = ImageConfigFile::parse(raw, "test").unwrap();
        let api = cfg.api_config();
        let hc = api.healthcheck.unwrap();
        assert_eq!(hc.test, vec!["CMD-SHELL", "true"]);
        assert_eq!(hc.interval, 1_000_000_000);
        assert_eq!(hc.retries, 3);
        assert_eq!(api.cmd, vec!["sh"]);
    }

    #[test]
    fn rejects_bad_config() {
        assert!(ImageConfigFile::parse(b"{", "x").is_err());
        assert!(ImageConfigFile::parse(br#"{"rootfs":{"type":"nope"}}"#, "x").is_err());
        assert!(
            ImageConfigFile::parse(br#"{"rootfs":{"type":"layers","diff_ids":["x"]}}"#, "x")
                .is_err()
        );
    }
}
