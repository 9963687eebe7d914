//! Request and response shapes of the engine API. Field names follow Docker Engine's API
//! (PascalCase) so the shapes are familiar; durations are nanoseconds where Docker uses them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Error body of every non-2xx response.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ErrorResponse {
    pub message: String,
}

/// `GET /version`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct VersionInfo {
    pub version: String,
    pub api_version: String,
    #[serde(rename = "MinAPIVersion", default)]
    pub min_api_version: String,
    pub os: String,
    pub arch: String,
    pub kernel_version: String,
    /// `cgroup v1` or `cgroup v2`.
    pub cgroup_version: String,
    pub root_dir: String,
}

// ---------------------------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------------------------

/// Docker-style health check (`HEALTHCHECK` / `--health-*`). Durations in nanoseconds; zero means
/// "use the default" (30s interval, 30s timeout, 3 retries, 0s start period).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", "command"]`.
    pub test: Vec<String>,
    pub interval: u64,
    pub timeout: u64,
    pub start_period: u64,
    pub retries: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    /// `""`/`no`, `always`, `unless-stopped`, `on-failure`.
    pub name: String,
    pub maximum_retry_count: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// Host-side settings of a container (resources, mounts, security, policies).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// Memory limit in bytes; 0 means unlimited.
    pub memory: i64,
    /// Soft limit in bytes; 0 means none.
    pub memory_reservation: i64,
    /// CPU quota in units of 1e-9 CPUs (`--cpus 0.5` = 500_000_000).
    pub nano_cpus: i64,
    /// Relative CPU weight (`--cpu-shares`), 0 means the default (1024).
    pub cpu_shares: u64,
    /// Maximum number of processes; `None` or <= 0 means unlimited.
    pub pids_limit: Option<i64>,
    /// `SRC:DST[:ro|rw]` where SRC is an absolute host path or a volume name.
    pub binds: Vec<String>,
    /// Container path -> mount options (e.g. `size=64m`).
    pub tmpfs: BTreeMap<String, String>,
    pub readonly_rootfs: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `bridge` (the default), `none`, `host`, `container:ID` or a user-defined network's name
    /// or id.
    pub network_mode: String,
    /// `-p`: `"PORT/tcp"` or `"PORT/udp"` -> host bindings (empty `HostPort`: an ephemeral
    /// port).
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    pub restart_policy: RestartPolicy,
    /// `--rm`: remove the container when it exits.
    pub auto_remove: bool,
    /// Run a reaping init as PID 1.
    pub init: bool,
    pub privileged: bool,
    pub ulimits: Vec<Ulimit>,
    /// `host:ip` entries added to /etc/hosts.
    pub extra_hosts: Vec<String>,
    /// Nameservers for /etc/resolv.conf (default: the host's, loopback ones dropped).
    pub dns: Vec<String>,
    /// `--dns-search`: search domains for /etc/resolv.conf.
    pub dns_search: Vec<String>,
    /// `-P`: publish every exposed port on an ephemeral host port.
    pub publish_all_ports: bool,
    /// Size of /dev/shm in bytes, 0 means 64 MiB.
    pub shm_size: i64,
    pub sysctls: BTreeMap<String, String>,
    /// Initial size of a `-t` container's terminal, `[rows, columns]` (`[0, 0]`: none), as
    /// Docker's CLI sends it, so the terminal has the client's size before the process starts.
    pub console_size: [u16; 2],
}

/// `POST /containers/create?name=NAME`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerCreate {
    pub image: String,
    /// Overrides the image's Cmd when `Some`.
    pub cmd: Option<Vec<String>>,
    /// Overrides the image's Entrypoint when `Some` (an empty vec clears it).
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE`, appended to (and overriding) the image's Env.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// `uid[:gid]` or a user name from the image's /etc/passwd.
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    /// Seconds to wait after the stop signal before SIGKILL (default 10).
    pub stop_timeout: Option<u64>,
    pub healthcheck: Option<HealthConfig>,
    /// Allocate a pseudo-terminal (`-t`).
    pub tty: bool,
    /// Keep the container's stdin open for attached clients (`-i`).
    pub open_stdin: bool,
    /// Close the container's stdin when the first attached client's input ends.
    pub stdin_once: bool,
    /// `--expose`: `"PORT/tcp"` -> `{}`, added to the image's.
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    pub host_config: HostConfig,
    /// Per-network endpoint settings (`--network-alias`).
    pub networking_config: NetworkingConfig,
}

/// `NetworkingConfig` of a create request: network name -> endpoint settings.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingConfig {
    pub endpoints_config: BTreeMap<String, EndpointConfig>,
}

/// What a create request asks of one network endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointConfig {
    /// Extra names the container answers to in the network's DNS.
    pub aliases: Vec<String>,
    /// `--ip`: a fixed address on this network.
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpamConfig>,
}

/// `IPAMConfig` of an endpoint request.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct EndpointIpamConfig {
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
}

/// `POST /networks/{id}/connect`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkConnect {
    pub container: String,
    pub endpoint_config: Option<EndpointConfig>,
}

/// `POST /networks/{id}/disconnect`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkDisconnect {
    pub container: String,
    pub force: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerCreated {
    pub id: String,
    pub warnings: Vec<String>,
}

/// Effective configuration of a container (image config merged with the request).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerConfig {
    pub hostname: String,
    pub user: String,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub working_dir: String,
    /// The image reference the user gave.
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: String,
    pub stop_timeout: u64,
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    pub healthcheck: Option<HealthConfig>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthLogEntry {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<HealthLogEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerState {
    /// `created`, `running`, `restarting`, `removing`, `exited` or `dead`.
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    /// RFC 3339; `0001-01-01T00:00:00Z` when never started.
    pub started_at: String,
    pub finished_at: String,
    pub health: Option<Health>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountPoint {
    /// `bind`, `volume` or `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    pub name: String,
    pub source: String,
    pub destination: String,
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
}

/// `GET /containers/{id}/json`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerInspect {
    pub id: String,
    /// With Docker's leading slash: `/name`.
    pub name: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub state: ContainerState,
    /// Image id (`sha256:...`).
    pub image: String,
    pub log_path: String,
    pub restart_count: u32,
    pub mounts: Vec<MountPoint>,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub network_settings: NetworkSettings,
}

/// One row of `GET /containers/json[?all=1&filters=...]`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerSummary {
    pub id: String,
    /// With Docker's leading slash.
    pub names: Vec<String>,
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub command: String,
    /// Unix seconds.
    pub created: i64,
    /// `created`, `running`, `restarting`, `exited`, ...
    pub state: String,
    /// Human status: `Up 3 seconds (healthy)`, `Exited (0) 2 minutes ago`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct WaitResponse {
    pub status_code: i64,
    pub error: Option<ErrorResponse>,
}

/// `POST /containers/{id}/exec`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecCreate {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// Allocate a pseudo-terminal (`exec -t`).
    pub tty: bool,
    /// Take the client's input as the process's stdin (`exec -i`).
    pub attach_stdin: bool,
}

/// Body of `POST /exec/{id}/start`: `{"Detach": true}` starts the process without streaming its
/// output back (`berth exec -d`).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecStart {
    pub detach: bool,
    pub tty: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct IdResponse {
    pub id: String,
}

/// `GET /exec/{id}/json`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecInspect {
    pub id: String,
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    pub running: bool,
    /// `None` while running.
    pub exit_code: Option<i64>,
    pub pid: i64,
}

/// One sample of `GET /containers/{id}/stats`. CPU percentages are computed by the client from
/// two samples as Docker does: `(cpu delta / system delta) * online_cpus * 100`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerStats {
    pub id: String,
    pub name: String,
    /// RFC 3339 time of the sample.
    pub read: String,
    /// Total CPU time used by the container's cgroup, nanoseconds.
    pub cpu_total_ns: u64,
    /// Host CPU time (all cpus, from /proc/stat), nanoseconds.
    pub system_cpu_ns: u64,
    pub online_cpus: u32,
    pub memory_usage: u64,
    /// Bytes; the host's memory when the container has no limit.
    pub memory_limit: u64,
    pub pids_current: u64,
    pub pids_limit: u64,
    pub block_read: u64,
    pub block_write: u64,
}

/// `GET /containers/{id}/top`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct TopResponse {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

// ---------------------------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------------------------

/// One row of `GET /images/json`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageSummary {
    /// `sha256:<config digest>`.
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Unix seconds.
    pub created: i64,
    /// Bytes of unpacked layers.
    pub size: i64,
    pub labels: BTreeMap<String, String>,
    /// Containers using the image (filled by `system df`).
    pub containers: i64,
}

/// OCI image config as shown by `image inspect` (Docker's `Config`).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageConfig {
    pub user: String,
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub volumes: BTreeMap<String, serde_json::Value>,
    pub working_dir: String,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: String,
    pub healthcheck: Option<HealthConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct RootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<String>,
}

/// `GET /images/{name}/json`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// RFC 3339.
    pub created: String,
    pub architecture: String,
    pub os: String,
    pub size: i64,
    pub config: ImageConfig,
    pub root_fs: RootFs,
}

/// Response of `POST /images/import?tag=NAME` (body: a rootfs tar) and one entry of
/// `POST /images/load` (body: a docker-archive or OCI layout tar).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageLoaded {
    pub id: String,
    pub repo_tags: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImagesLoaded {
    pub images: Vec<ImageLoaded>,
}

/// `DELETE /images/{name}` answer: what was untagged and what was deleted.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageDeleteItem {
    pub untagged: Option<String>,
    pub deleted: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Volumes
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub mountpoint: String,
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
    pub scope: String,
}

/// `POST /volumes/create`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeCreate {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeList {
    pub volumes: Vec<Volume>,
}

// ---------------------------------------------------------------------------------------------
// System
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerUsage {
    pub id: String,
    pub names: Vec<String>,
    pub image: String,
    pub state: String,
    /// Bytes written to the container's writable layer.
    pub size_rw: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeUsage {
    pub name: String,
    pub size: i64,
    pub ref_count: i64,
}

/// `GET /system/df`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct DiskUsage {
    pub layers_size: i64,
    pub images: Vec<ImageSummary>,
    pub containers: Vec<ContainerUsage>,
    pub volumes: Vec<VolumeUsage>,
}

/// Answer of `POST /containers/prune`, `/images/prune`, `/volumes/prune`, `/system/prune`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct PruneReport {
    pub containers_deleted: Vec<String>,
    pub images_deleted: Vec<String>,
    pub volumes_deleted: Vec<String>,
    pub space_reclaimed: u64,
}

/// One line of `GET /events` (newline-delimited JSON stream).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Event {
    /// `container`, `image` or `volume`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// `create`, `start`, `die`, `stop`, `kill`, `oom`, `destroy`, `restart`,
    /// `health_status: healthy`, ...
    pub action: String,
    pub actor: EventActor,
    /// Unix seconds and nanoseconds.
    #[serde(rename = "time")]
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct EventActor {
    #[serde(rename = "ID")]
    pub id: String,
    pub attributes: BTreeMap<String, String>,
}

/// One host address a container port is published on.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    /// Empty: all addresses.
    pub host_ip: String,
    pub host_port: String,
}

/// `NetworkSettings` of `GET /containers/{id}/json` (Docker's shape; IPv4 only).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkSettings {
    /// The container's network namespace file (empty for none/host).
    pub sandbox_key: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: i64,
    pub gateway: String,
    pub mac_address: String,
    /// Network name -> endpoint.
    pub networks: BTreeMap<String, EndpointSettings>,
    /// Published ports while running: `"PORT/tcp"` -> actual host bindings.
    pub ports: BTreeMap<String, Vec<PortBinding>>,
}

/// A container's endpoint on one network.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointSettings {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub gateway: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: i64,
    pub mac_address: String,
    pub aliases: Vec<String>,
}

/// One `IPAM.Config` entry.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamConfig {
    pub subnet: String,
    pub gateway: String,
}

/// `IPAM` of a network.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkIpam {
    pub driver: String,
    pub config: Vec<IpamConfig>,
}

/// `POST /networks/create`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreate {
    pub name: String,
    /// Only `bridge` (the default when empty).
    pub driver: String,
    pub internal: bool,
    #[serde(rename = "IPAM")]
    pub ipam: NetworkIpam,
    pub labels: BTreeMap<String, String>,
}

/// Answer of `POST /networks/create`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreated {
    pub id: String,
    pub warning: String,
}

/// A container attached to a network, in [`NetworkInspect`].
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkContainer {
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac_address: String,
    /// `ip/prefix`.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
}

/// `GET /networks/{id}` and the rows of `GET /networks`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkInspect {
    pub name: String,
    pub id: String,
    pub created: String,
    pub scope: String,
    pub driver: String,
    pub internal: bool,
    #[serde(rename = "IPAM")]
    pub ipam: NetworkIpam,
    /// Container id -> endpoint.
    pub containers: BTreeMap<String, NetworkContainer>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// Answer of `POST /networks/prune`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkPruneReport {
    pub networks_deleted: Vec<String>,
}

/// Bytes done of a layer in a [`JsonMessage`].
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct ProgressDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// The error of a failed streamed operation.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct ErrorDetail {
    #[serde(default)]
    pub message: String,
}

/// One line of Docker's JSON progress streams (`POST /images/create`, `/images/{name}/push`):
/// a status, optionally about one layer (`id`) with bytes done, or an error.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct JsonMessage {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(
        rename = "progressDetail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub progress_detail: Option<ProgressDetail>,
    #[serde(
        rename = "errorDetail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub error_detail: Option<ErrorDetail>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// `POST /auth` body (Docker's `AuthConfig`).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct AuthRequest {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub serveraddress: String,
}

/// `POST /auth` answer.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct AuthResponse {
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "IdentityToken", default)]
    pub identity_token: String,
}
