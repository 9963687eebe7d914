//! Writing one regular file of a layer: its data in large writes, then its mtime, owner, mode
//! and extended attributes, as the `tar` crate's own unpacking sets them.
//!
//! `tar`'s unpacking copies a file's data through `std::io::copy`, 8 KiB per `write`; the
//! kernel then sizes page-cache folios by the write and pays its per-folio costs (allocation,
//! memory-cgroup charge, LRU and dirty tracking) for every 8 KiB. Writing up to
//! [`COPY_BUFFER`] at a time lets it use large folios: unpacking 100 MiB of files took about a
//! third less CPU (docs/benchmarks.md, "Distribution").

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Read, Seek as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use nix::sys::stat::futimens;
use nix::sys::time::TimeSpec;

use crate::direct_write::{self, DirectWriter};

/// Largest single `write` of file data.
pub(crate) const COPY_BUFFER: usize = 1 << 20;

/// Creates `target` (which must not exist) from the regular-file `entry`. `buf` is reused
/// between files (grown on first use; it is also the direct writes' block).
pub(crate) fn write_regular<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    target: &Path,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(target)?;
    copy_data(entry, &mut file, target, buf)?;
    let header = entry.header();
    // An mtime of 0 becomes 1, as `tar` does (some tools ignore 0-mtime files).
    if let Ok(mtime) = header.mtime() {
        let t = TimeSpec::new(i64::try_from(mtime.max(1)).unwrap_or(1), 0);
        futimens(file.as_raw_fd(), &t, &t).map_err(io::Error::from)?;
    }
    // Owner first: chown clears set-id bits, which the mode then sets.
    let (uid, gid) = (header.uid()?, header.gid()?);
    let uid =
        u32::try_from(uid).map_err(|_| io::Error::other(format!("UID {uid} is too large")))?;
    let gid =
        u32::try_from(gid).map_err(|_| io::Error::other(format!("GID {gid} is too large")))?;
    std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
    if let Ok(mode) = header.mode() {
        file.set_permissions(Permissions::from_mode(mode))?;
    }
    set_xattrs(entry, target)
}

/// Copies the entry's data into `file` (`target`): a file of at least one direct block with
/// direct I/O (see [`crate::direct_write`]; what it writes needs no flush from the page cache
/// at commit), the rest in writes of up to [`COPY_BUFFER`] bytes.
fn copy_data<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    file: &mut File,
    target: &Path,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    let expected = entry.size();
    let mut written = 0u64;
    if expected >= direct_write::BLOCK as u64 {
        match DirectWriter::open(target, std::mem::take(buf)) {
            Ok(mut direct) => {
                let mut refused = false;
                loop {
                    let n = read_full(entry, direct.unfilled())?;
                    if n == 0 {
                        break;
                    }
                    written += n as u64;
                    if !direct.advance(n, file)? {
                        refused = true;
                        break;
                    }
                }
                if !refused {
                    *buf = direct.finish(file)?;
                    return check_length(written, expected);
                }
                *buf = direct.into_memory();
                file.seek(io::SeekFrom::End(0))?;
            }
            Err(memory) => *buf = memory,
        }
    }
    if buf.len() < COPY_BUFFER {
        buf.resize(COPY_BUFFER, 0);
    }
    loop {
        let filled = read_full(entry, buf)?;
        file.write_all(&buf[..filled])?;
        written += filled as u64;
        if filled < buf.len() {
            break;
        }
    }
    check_length(written, expected)
}

/// Reads until `buf` is full or the entry ends; returns the bytes read.
fn read_full(entry: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match entry.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn check_length(written: u64, expected: u64) -> io::Result<()> {
    if written != expected {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "failed to read entire file",
        ));
    }
    Ok(())
}

/// Sets the `SCHILY.xattr.*` PAX records of the entry as extended attributes of `target`.
fn set_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>, target: &Path) -> io::Result<()> {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt as _;
    const PREFIX: &[u8] = b"SCHILY.xattr.";
    let Ok(Some(extensions)) = entry.pax_extensions() else {
        return Ok(());
    };
    for ext in extensions.flatten() {
        if let Some(name) = ext.key_bytes().strip_prefix(PREFIX) {
            xattr::set(target, OsStr::from_bytes(name), ext.value_bytes()).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "setting extended attribute {} on {}: {e}",
                        String::from_utf8_lossy(name),
                        target.display()
                    ),
                )
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use crate::unpack::unpack_layer;

    fn file_header(path: &str, size: u64, mode: u32, mtime: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(1234);
        h.set_gid(5678);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        h
    }

    /// A layer with a file larger than the copy buffer (set-uid, owned by 1234:5678, with a
    /// user xattr), an empty file with mtime 0, and a small file.
    fn layer() -> (Vec<u8>, Vec<u8>) {
        let big: Vec<u8> = (0..(super::COPY_BUFFER * 5 / 2 + 123))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("SCHILY.xattr.user.berth", &b"yes"[..])])
            .unwrap();
        b.append(
            &file_header("bin/big", big.len() as u64, 0o4755, 1_600_000_000),
            &big[..],
        )
        .unwrap();
        b.append(&file_header("empty", 0, 0o600, 0), &[][..])
            .unwrap();
        b.append(
            &file_header("etc/motd", 3, 0o644, 1_500_000_000),
            &b"hi\n"[..],
        )
        .unwrap();
        (b.into_inner().unwrap(), big)
    }

    #[test]
    fn files_keep_data_owner_mode_mtime_and_xattrs() {
        let (tar, big) = layer();
        let dir = tempfile::tempdir().unwrap();
        let size = unpack_layer(&tar[..], dir.path(), "layer t").unwrap();
        assert_eq!(size, big.len() as u64 + 3);
        let p = dir.path().join("bin/big");
        assert_eq!(std::fs::read(&p).unwrap(), big);
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o4755, "set-uid bit kept after chown");
        assert_eq!((m.uid(), m.gid()), (1234, 5678));
        assert_eq!(m.mtime(), 1_600_000_000);
        assert_eq!(
            xattr::get(&p, "user.berth").unwrap().as_deref(),
            Some(&b"yes"[..])
        );
        let empty = std::fs::metadata(dir.path().join("empty")).unwrap();
        assert_eq!(
            (empty.len(), empty.mode() & 0o7777, empty.mtime()),
            (0, 0o600, 1)
        );
        assert_eq!(std::fs::read(dir.path().join("etc/motd")).unwrap(), b"hi\n");
    }

    #[test]
    fn a_file_cut_short_is_a_truncated_layer() {
        let (tar, _) = layer();
        let dir = tempfile::tempdir().unwrap();
        let err =
            unpack_layer(&tar[..super::COPY_BUFFER + 4096], dir.path(), "layer t").unwrap_err();
        assert!(err.to_string().contains("layer t"), "{err}");
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn a_file_replaces_what_an_earlier_entry_left_at_its_path() {
        let mut b = tar::Builder::new(Vec::new());
        b.append(&file_header("a", 3, 0o644, 1), &b"one"[..])
            .unwrap();
        b.append(&file_header("a", 3, 0o644, 1), &b"two"[..])
            .unwrap();
        let tar = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        unpack_layer(&tar[..], dir.path(), "layer t").unwrap();
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"two");
    }
}
