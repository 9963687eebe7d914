//! A container's root filesystem: the image's unpacked layers stacked read-only under a
//! per-container writable layer with overlayfs, mounted at `containers/<id>/rootfs`.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Mounts the overlay; `layers` are bottom first. Idempotent.
pub fn mount_rootfs(dir: &Path, layers: &[PathBuf]) -> std::io::Result<PathBuf> {
    let upper = dir.join("upper");
    let work = dir.join("work");
    let target = dir.join("rootfs");
    for d in [&upper, &work, &target] {
        std::fs::create_dir_all(d)?;
    }
    if is_mounted(&target) {
        return Ok(target);
    }
    let lower = if layers.is_empty() {
        // overlayfs needs at least one lower dir; an empty one stands for `scratch`.
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty)?;
        empty.display().to_string()
    } else {
        // overlayfs lists lowerdirs top first.
        layers
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    };
    let options = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        &target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|e| std::io::Error::other(format!("mount overlay at {}: {e}", target.display())))?;
    Ok(target)
}

/// Unmounts the rootfs if mounted.
pub fn unmount_rootfs(dir: &Path) -> std::io::Result<()> {
    let target = dir.join("rootfs");
    if is_mounted(&target) {
        match umount2(&target, MntFlags::MNT_DETACH) {
            // Unmounted concurrently (exit handling and removal race): nothing left to do.
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => {
                return Err(std::io::Error::other(format!(
                    "unmount {}: {e}",
                    target.display()
                )))
            }
        }
    }
    Ok(())
}

/// True if `path` is a mount point (listed in /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| mp == want)
}

/// Looks a file up in the container's layers without mounting: the writable layer first, then
/// the image layers top-down. Whiteouts are honoured roughly (a char device hides the file).
pub fn find_in_layers(dir: &Path, layers: &[PathBuf], rel: &str) -> Option<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let rel = rel.trim_start_matches('/');
    let upper = dir.join("upper");
    for layer in std::iter::once(&upper).chain(layers.iter().rev()) {
        let candidate = layer.join(rel);
        if let Ok(meta) = std::fs::symlink_metadata(&candidate) {
            if meta.file_type().is_char_device() {
                return None;
            }
            return Some(candidate);
        }
    }
    None
}
