//! Persistent network namespaces bound to files (`<root>/netns/<id>`), as `ip netns` does under
//! /run/netns but inside the engine's root. `setns`/`unshare` only change the calling thread,
//! so each namespace operation runs on a short-lived dedicated thread, never on a tokio worker.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::error::{NetworkError, Result};

fn on_thread<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(f)
        .map_err(|e| NetworkError::System(format!("cannot start a namespace thread: {e}")))?
        .join()
        .map_err(|_| NetworkError::System("namespace thread panicked".into()))?
}

/// Creates a new network namespace and binds it to `path` (which must not exist yet).
pub fn create(path: &Path) -> Result<()> {
    create_with(path, || Ok(()))
}

/// Creates a new network namespace, binds it to `path` (which must not exist yet), and runs
/// `f` on the thread that is inside it (to open a netlink socket there, say).
pub fn create_with<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::File::create(path)?;
    let target: PathBuf = path.to_path_buf();
    let r = on_thread(move || {
        nix::sched::unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| NetworkError::System(format!("unshare(CLONE_NEWNET): {e}")))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| {
            NetworkError::System(format!(
                "cannot bind the network namespace to {}: {e}",
                target.display()
            ))
        })?;
        // The thread ends after `f`; the bind mount keeps the namespace alive.
        f()
    });
    if r.is_err() {
        let _ = remove(path);
    }
    r
}

/// Unbinds and deletes a namespace file; the namespace ends once no process uses it (its veth
/// ends go with it). A missing file is not an error.
pub fn remove(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    // EINVAL: not a mount point (a file left by a failed create).
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(NetworkError::System(format!(
                "cannot unmount {}: {e}",
                path.display()
            )))
        }
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Runs `f` on a dedicated thread that has entered the namespace bound at `path`; processes
/// it spawns start in that namespace too.
pub fn run_in<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let file = std::fs::File::open(path)?;
    on_thread(move || {
        nix::sched::setns(file.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| NetworkError::System(format!("setns(CLONE_NEWNET): {e}")))?;
        f()
    })
}
