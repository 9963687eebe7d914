//! Unpacking one layer tar into a snapshot directory, with overlayfs-style whiteouts.
//!
//! Ownership, modes, mtimes, symlinks, hardlinks, device nodes, FIFOs and (for regular files)
//! PAX xattrs are kept. Paths are sanitized: an entry with `..` is refused, leading `/` is
//! dropped, and no entry is ever written through a symlink that leads outside the directory
//! (parents are created one component at a time and checked after canonicalization; the `tar`
//! crate's `unpack_in` checks the same for the entries it writes).
//!
//! Whiteouts become what overlayfs expects of a lowerdir: `.wh.NAME` turns into a 0:0 character
//! device `NAME`, and `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory.

use std::fs;
use std::io::{self, BufRead, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;
use nix::sys::stat::{self, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use tar::EntryType;

use crate::error::IoContext;
use crate::ImageError;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
/// The xattr overlayfs reads to make a directory opaque.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Compression of a stream, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

impl Compression {
    pub fn detect(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else {
            Compression::None
        }
    }

    /// The OCI media type of a layer compressed like this.
    pub fn oci_layer_media_type(self) -> &'static str {
        match self {
            Compression::Gzip => crate::config::OCI_LAYER_GZIP,
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            _ => crate::config::OCI_LAYER_TAR,
        }
    }
}

/// The compression of the stream `r` reads, from its first bytes (not consumed).
pub fn peek_compression<R: BufRead>(r: &mut R, what: &str) -> Result<Compression, ImageError> {
    let head = r
        .fill_buf()
        .map_err(|e| ImageError::archive(format!("reading {what}: {e}")))?;
    Ok(Compression::detect(head))
}

/// Wraps `r` in the decompressor its magic bytes call for. `what` (e.g. `layer sha256:..
/// (media type)`) names the stream in the error for unsupported compressions.
pub fn decompressed<'a, R: BufRead + 'a>(
    mut r: R,
    what: &str,
) -> Result<Box<dyn Read + 'a>, ImageError> {
    let head = r
        .fill_buf()
        .map_err(|e| ImageError::archive(format!("reading {what}: {e}")))?;
    match Compression::detect(head) {
        Compression::None => Ok(Box::new(r)),
        Compression::Gzip => Ok(Box::new(MultiGzDecoder::new(r))),
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(r)
                .map_err(|e| ImageError::archive(format!("{what}: zstd: {e}")))?;
            Ok(Box::new(decoder))
        }
        c => Err(ImageError::Unsupported(format!(
            "{what} is {c:?}-compressed; berth reads plain, gzip- and zstd-compressed tars"
        ))),
    }
}

/// Unpacks the tar stream `reader` into the directory `dst` (which must exist). Returns the
/// bytes of regular file data written. `what` names the layer in errors.
pub fn unpack_layer<R: Read>(reader: R, dst: &Path, what: &str) -> Result<u64, ImageError> {
    let root = dst
        .canonicalize()
        .ctx(|| format!("resolving {}", dst.display()))?;
    let bad = |msg: String| ImageError::archive(format!("{what}: {msg}"));
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    let mut size = 0u64;
    let mut dirs: Vec<(PathBuf, u64)> = Vec::new();
    let mut copy_buf = Vec::new();
    let entries = archive.entries().map_err(|e| bad(format!("{e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| entry_error(what, e))?;
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader | EntryType::XHeader) {
            continue;
        }
        let raw = entry
            .path()
            .map_err(|e| bad(format!("bad entry path: {e}")))?
            .into_owned();
        let rel = sanitize(&raw).ok_or_else(|| {
            bad(format!(
                "entry {} escapes the layer root with `..`",
                raw.display()
            ))
        })?;
        let mtime = entry.header().mtime().unwrap_or(0);
        let Some(name) = rel.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            // The root itself (`./`): take its mode and owner.
            if kind.is_dir() {
                apply_root_meta(&root, &entry)?;
                dirs.push((root.clone(), mtime));
            }
            continue;
        };
        let rel_parent = rel.parent().unwrap_or(Path::new(""));
        let parent = make_parents(&root, rel_parent).map_err(&bad)?;

        if name == OPAQUE_WHITEOUT {
            xattr::set(&parent, OPAQUE_XATTR, b"y")
                .ctx(|| format!("setting {OPAQUE_XATTR} on {}", parent.display()))?;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(bad(format!("bad whiteout entry {}", raw.display())));
            }
            let target = parent.join(hidden);
            remove_existing(&target, false)?;
            make_node(&target, SFlag::S_IFCHR, 0, 0, 0, 0, 0)?;
            continue;
        }

        let target = parent.join(&name);
        remove_existing(&target, kind.is_dir())?;
        let h = entry.header();
        match kind {
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let flag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let mode = h.mode().unwrap_or(0o644);
                let (uid, gid) = (h.uid().unwrap_or(0), h.gid().unwrap_or(0));
                make_node(&target, flag, mode, major, minor, uid, gid)?;
                set_mtime(&target, mtime);
            }
            EntryType::Regular | EntryType::Continuous => {
                size += entry.size();
                crate::unpack_file::write_regular(&mut entry, &target, &mut copy_buf)
                    .map_err(|e| entry_error(&format!("{what}: {}", raw.display()), e))?;
            }
            _ => {
                entry
                    .unpack_in(&root)
                    .map_err(|e| entry_error(&format!("{what}: {}", raw.display()), e))?;
                if kind.is_dir() {
                    dirs.push((target, mtime));
                }
            }
        }
    }
    // Files written into directories changed their mtimes: restore them, deepest first.
    for (dir, mtime) in dirs.iter().rev() {
        set_mtime(dir, *mtime);
    }
    Ok(size)
}

/// Normalizes an entry path to a relative path: drops `/` and `.` parts, refuses `..`.
/// Returns an empty path for the root itself.
pub fn sanitize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => return None,
        }
    }
    Some(out)
}

/// Creates the missing directories of `rel` under `root` one component at a time, refusing to
/// go through anything that resolves outside `root`. Returns the resolved directory.
fn make_parents(root: &Path, rel: &Path) -> Result<PathBuf, String> {
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                let canon = cur
                    .canonicalize()
                    .map_err(|e| format!("resolving {}: {e}", cur.display()))?;
                if !canon.starts_with(root) || !canon.is_dir() {
                    return Err(format!(
                        "{} is a symlink leading outside the layer (or not to a directory)",
                        rel.display()
                    ));
                }
                cur = canon;
            }
            Ok(_) => {
                return Err(format!(
                    "{} is needed as a directory but is a file",
                    cur.strip_prefix(root).unwrap_or(&cur).display()
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&cur).map_err(|e| format!("creating {}: {e}", cur.display()))?;
            }
            Err(e) => return Err(format!("inspecting {}: {e}", cur.display())),
        }
    }
    Ok(cur)
}

/// Removes whatever is at `path` unless both it and the new entry are directories.
fn remove_existing(path: &Path, new_is_dir: bool) -> Result<(), ImageError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() && new_is_dir => Ok(()),
        Ok(m) if m.is_dir() => {
            fs::remove_dir_all(path).ctx(|| format!("replacing {}", path.display()))
        }
        Ok(_) => fs::remove_file(path).ctx(|| format!("replacing {}", path.display())),
        Err(_) => Ok(()),
    }
}

fn make_node(
    path: &Path,
    kind: SFlag,
    mode: u32,
    major: u32,
    minor: u32,
    uid: u64,
    gid: u64,
) -> Result<(), ImageError> {
    let perm = Mode::from_bits_truncate(mode & 0o7777);
    stat::mknod(path, kind, perm, stat::makedev(major.into(), minor.into()))
        .map_err(|e| ImageError::io(format!("mknod {}", path.display()), e.into()))?;
    let uid = u32::try_from(uid).unwrap_or(0);
    let gid = u32::try_from(gid).unwrap_or(0);
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .ctx(|| format!("chown {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))
        .ctx(|| format!("chmod {}", path.display()))
}

fn apply_root_meta<R: Read>(root: &Path, entry: &tar::Entry<'_, R>) -> Result<(), ImageError> {
    let h = entry.header();
    if let (Ok(uid), Ok(gid)) = (h.uid(), h.gid()) {
        if let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) {
            std::os::unix::fs::lchown(root, Some(uid), Some(gid))
                .ctx(|| format!("chown {}", root.display()))?;
        }
    }
    if let Ok(mode) = h.mode() {
        fs::set_permissions(root, fs::Permissions::from_mode(mode & 0o7777))
            .ctx(|| format!("chmod {}", root.display()))?;
    }
    Ok(())
}

fn set_mtime(path: &Path, mtime: u64) {
    let t = TimeSpec::new(i64::try_from(mtime).unwrap_or(0), 0);
    // Best effort: a wrong directory mtime is not worth failing a load for.
    let _ = stat::utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink);
}

fn entry_error(what: &str, e: io::Error) -> ImageError {
    if e.kind() == io::ErrorKind::UnexpectedEof || e.to_string().contains("failed to read entire") {
        ImageError::archive(format!("{what}: layer tar is truncated"))
    } else {
        let mut msg = format!("{what}: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(&format!(": {s}"));
            source = s.source();
        }
        ImageError::archive(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_paths() {
        assert_eq!(sanitize(Path::new("/a/./b")), Some(PathBuf::from("a/b")));
        assert_eq!(sanitize(Path::new("./")), Some(PathBuf::new()));
        assert_eq!(sanitize(Path::new("a/../../etc")), None);
    }

    #[test]
    fn detects_compression() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"bin/"), Compression::None);
    }
}
