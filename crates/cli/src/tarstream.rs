//! Upload bodies for image import/load: a file or stdin streamed as is, or a directory turned
//! into a tar archive on the fly (on a blocking thread, through a bounded channel, so a
//! multi-GB tree is never held in memory).
//!
//! Directory archives keep what a root filesystem needs: modes, owners, mtimes, symlinks,
//! hardlinks (a second path to the same inode becomes a link entry), character/block devices
//! and fifos. Sockets are skipped, as tar cannot hold them.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use berth_engine_client::client::{channel_stream, reader_stream, stream_body, RequestBody};
use bytes::Bytes;
use tar::{EntryType, Header, HeaderMode};
use tokio::sync::mpsc;

/// A `Write` that sends 64 KiB chunks into a channel (blocking; call from a blocking thread).
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "upload aborted"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send_buf()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buf()
    }
}

/// Streams the directory `dir` as a tar archive (entries relative to `dir`).
pub fn directory_body(dir: PathBuf) -> RequestBody {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result = (|| -> io::Result<()> {
            let mut builder = tar::Builder::new(writer);
            let mut links = HashMap::new();
            append_tree(&mut builder, &dir, Path::new(""), &mut links)?;
            let mut writer = builder.into_inner()?;
            writer.flush()
        })();
        if let Err(e) = result {
            if e.kind() != io::ErrorKind::BrokenPipe {
                let _ = tx.blocking_send(Err(e));
            }
        }
    });
    stream_body(channel_stream(rx))
}

/// The body for a file path, `-` meaning stdin.
pub async fn file_body(path: &str) -> Result<RequestBody> {
    if path == "-" {
        return Ok(stream_body(reader_stream(tokio::io::stdin())));
    }
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("open {path}"))?;
    Ok(stream_body(reader_stream(file)))
}

/// The body for SRC: a directory is archived on the fly, anything else is streamed as is.
pub async fn path_body(path: &str) -> Result<RequestBody> {
    if path != "-" {
        let meta = fs::metadata(path).with_context(|| format!("open {path}"))?;
        if meta.is_dir() {
            return Ok(directory_body(PathBuf::from(path)));
        }
    }
    file_body(path).await
}

fn append_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    rel: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let dir = root.join(rel);
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?
        .collect::<io::Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let rel_path = rel.join(entry.file_name());
        let full = root.join(&rel_path);
        let meta = fs::symlink_metadata(&full)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", full.display())))?;
        let ft = meta.file_type();
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(&meta, HeaderMode::Complete);
        if ft.is_dir() {
            header.set_size(0);
            builder.append_data(&mut header, &rel_path, io::empty())?;
            append_tree(builder, root, &rel_path, links)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&full)?;
            header.set_entry_type(EntryType::Symlink);
            header.set_size(0);
            builder.append_link(&mut header, &rel_path, &target)?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = links.get(&key) {
                    header.set_entry_type(EntryType::Link);
                    header.set_size(0);
                    let first = first.clone();
                    builder.append_link(&mut header, &rel_path, &first)?;
                    continue;
                }
                links.insert(key, rel_path.clone());
            }
            let file = fs::File::open(&full)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", full.display())))?;
            builder.append_data(&mut header, &rel_path, file)?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            header.set_entry_type(if ft.is_char_device() {
                EntryType::Char
            } else if ft.is_block_device() {
                EntryType::Block
            } else {
                EntryType::Fifo
            });
            header.set_size(0);
            let rdev = meta.rdev();
            let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0x0000_0fff);
            let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0x0000_00ff);
            header.set_device_major(major as u32)?;
            header.set_device_minor(minor as u32)?;
            builder.append_data(&mut header, &rel_path, io::empty())?;
        }
        // sockets cannot be archived: skipped
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn archives_a_tree_with_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("bin")).unwrap();
        fs::write(root.join("bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(
            root.join("bin/tool"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        fs::hard_link(root.join("bin/tool"), root.join("bin/tool2")).unwrap();
        std::os::unix::fs::symlink("tool", root.join("bin/sh")).unwrap();

        let body = directory_body(root.to_path_buf());
        let mut data = Vec::new();
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            data.extend_from_slice(&chunk.unwrap());
        }
        let mut archive = tar::Archive::new(&data[..]);
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            seen.push((path, h.entry_type(), link, h.mode().unwrap() & 0o777));
        }
        assert_eq!(seen[0].0, "bin");
        assert_eq!(seen[0].1, EntryType::Directory);
        assert_eq!(
            seen[1],
            (
                "bin/sh".into(),
                EntryType::Symlink,
                Some("tool".into()),
                0o777
            )
        );
        assert_eq!(
            seen[2],
            ("bin/tool".into(), EntryType::Regular, None, 0o755)
        );
        assert_eq!(
            seen[3],
            (
                "bin/tool2".into(),
                EntryType::Link,
                Some("bin/tool".into()),
                0o755
            )
        );
    }
}
