//! Writing a download into its ingest file off the async runtime: the download loop hands each
//! chunk over (no copy) and a blocking thread writes it while a second one hashes it, then the
//! file is `fdatasync`ed at the end.
//!
//! A new file is written with direct I/O ([`berth_image::direct_write`]). Where that is
//! refused, and for a file continued from an earlier pull (at an unaligned offset), the file
//! is written with plain `write`s and its writeback is started every [`WRITEBACK_EVERY`]
//! bytes, so the disk writes while the network delivers.

use std::fs::OpenOptions;
use std::io::{self, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use berth_image::direct_write::DirectWriter;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

/// Chunks queued between the download and the writer.
const QUEUE: usize = 256;
/// Every this many bytes written, the file's writeback is started, so the final `fdatasync`
/// finds little left to do.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// A writer thread appending to one ingest file.
pub(crate) struct IngestWriter {
    tx: Option<mpsc::Sender<Bytes>>,
    task: tokio::task::JoinHandle<io::Result<Sha256>>,
}

impl IngestWriter {
    /// Opens `path` (`truncate`: from byte 0; else appending) on a writer thread that continues
    /// `hasher` (the hash of what the file already holds).
    pub(crate) fn open(path: &Path, truncate: bool, hasher: Sha256) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let path = path.to_path_buf();
        let task = tokio::task::spawn_blocking(move || write_all(&path, truncate, hasher, rx));
        IngestWriter { tx: Some(tx), task }
    }

    /// Hands a chunk to the writer. An error is the writer's (it stopped).
    pub(crate) async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        let sent = match &self.tx {
            Some(tx) => tx.send(chunk).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        self.tx = None;
        Err(io::Error::other("the ingest writer stopped"))
    }

    /// Ends the file: waits for every chunk to be written and flushed to disk; returns the
    /// hash of the whole file.
    pub(crate) async fn finish(mut self) -> io::Result<Sha256> {
        self.tx = None;
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(io::Error::other(format!("the ingest writer failed: {e}"))),
        }
    }
}

fn write_all(
    path: &PathBuf,
    truncate: bool,
    hasher: Sha256,
    mut rx: mpsc::Receiver<Bytes>,
) -> io::Result<Sha256> {
    let mut o = OpenOptions::new();
    o.create(true);
    if truncate {
        o.write(true).truncate(true);
    } else {
        o.append(true);
    }
    let mut file = o.open(path)?;
    let mut direct = truncate
        .then(|| DirectWriter::open(path, Vec::new()).ok())
        .flatten();
    // The hash is computed on a thread of its own, in parallel with the writes (a chunk is
    // shared, not copied): a layer's bytes are on disk and hashed about when the last arrives.
    let (to_hasher, hasher_rx) = std::sync::mpsc::channel::<Bytes>();
    let hashing = std::thread::Builder::new()
        .name("ingest-hash".into())
        .spawn(move || {
            let mut hasher = hasher;
            for chunk in hasher_rx {
                hasher.update(&chunk);
            }
            hasher
        })?;
    let written = (|| -> io::Result<()> {
        let mut unflushed: u64 = 0;
        while let Some(chunk) = rx.blocking_recv() {
            let _ = to_hasher.send(chunk.clone());
            if let Some(d) = &mut direct {
                if d.push(&chunk, &file)? {
                    continue;
                }
                // Direct I/O refused mid-way: everything so far went through `file`; go on there.
                direct = None;
                file.seek(io::SeekFrom::End(0))?;
                continue;
            }
            file.write_all(&chunk)?;
            unflushed += chunk.len() as u64;
            if unflushed >= WRITEBACK_EVERY {
                unflushed = 0;
                start_writeback(&file);
            }
        }
        if let Some(d) = direct.take() {
            d.finish(&file)?;
        }
        file.sync_data()
    })();
    drop(to_hasher);
    let hasher = hashing
        .join()
        .map_err(|_| io::Error::other("the ingest hasher panicked"))?;
    written.map(|()| hasher)
}

/// Starts writeback of a file's dirty pages without waiting for it (`sync_file_range`).
fn start_writeback(file: &std::fs::File) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: a valid open descriptor; the call only queues writeback. A failure is harmless
    // (the final fdatasync writes everything).
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(test)]
mod tests {
    use berth_image::direct_write::BLOCK;

    use super::*;

    /// Bytes `from..to` of a test blob (a pattern that no block boundary can hide).
    fn pattern(from: usize, to: usize) -> Vec<u8> {
        (from..to).map(|i| (i * 31 % 253) as u8).collect()
    }

    async fn write_in_chunks(path: &Path, truncate: bool, hasher: Sha256, data: &[u8]) -> Sha256 {
        let mut w = IngestWriter::open(path, truncate, hasher);
        // Uneven chunks, as a network delivers them, crossing block boundaries.
        for chunk in data.chunks(65_537) {
            w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        w.finish().await.unwrap()
    }

    #[tokio::test]
    async fn a_new_file_holds_every_byte_and_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob.partial");
        let data = pattern(0, BLOCK * 2 + 12_345);
        let hash = write_in_chunks(&path, true, Sha256::new(), &data).await;
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert_eq!(hash.finalize().to_vec(), Sha256::digest(&data).to_vec());
    }

    #[tokio::test]
    async fn a_file_of_whole_blocks_and_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole");
        let data = pattern(0, BLOCK);
        write_in_chunks(&whole, true, Sha256::new(), &data).await;
        assert_eq!(std::fs::read(&whole).unwrap(), data);
        let empty = dir.path().join("empty");
        write_in_chunks(&empty, true, Sha256::new(), &[]).await;
        assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
    }

    #[tokio::test]
    async fn a_partial_file_is_continued_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob.partial");
        let first = pattern(0, 1_000_003);
        let hasher = write_in_chunks(&path, true, Sha256::new(), &first).await;
        let rest = pattern(1_000_003, BLOCK * 2 + 7);
        let hash = write_in_chunks(&path, false, hasher, &rest).await;
        let all = pattern(0, BLOCK * 2 + 7);
        assert_eq!(std::fs::read(&path).unwrap(), all);
        assert_eq!(hash.finalize().to_vec(), Sha256::digest(&all).to_vec());
    }
}
