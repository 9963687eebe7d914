//! Berth runtime: turns a container description into a running, isolated process.
//!
//! Layout:
//! - [`spec`] — [`spec::SpecInput`] (what the engine decided: command, user, mounts, limits, security)
//!   -> an OCI runtime spec with Docker's defaults (namespaces, mounts, devices, masked paths).
//! - [`capabilities`] — Docker's default capability set and `--cap-add/--cap-drop` resolution.
//! - [`seccomp`] — Docker's default seccomp profile as an OCI `LinuxSeccomp`.
//! - [`seccomp_bpf`] — that profile compiled once per distinct profile and loaded ready-made.
//! - [`container`] — create/start/exec/kill/delete through youki's `libcontainer`. These fork and
//!   must run in a single-threaded process (the per-container monitor or a helper), never in
//!   the async daemon.
//! - [`cgroups`] — reading usage and OOM counters of a container's cgroup (v1 and v2).

pub mod capabilities;
pub mod cgroups;
pub mod console;
pub mod container;
pub mod netns;
pub mod seccomp;
pub mod seccomp_bpf;
pub mod spec;
