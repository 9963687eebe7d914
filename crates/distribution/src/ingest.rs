//! Writing a download into its ingest file off the async runtime: the download loop hands each
//! chunk over (no copy) and a blocking thread hashes it and writes it, then `fdatasync`s the
//! file at the end.
//!
//! A new file is written with direct I/O (`O_DIRECT`) in [`DIRECT_BLOCK`]-sized, page-aligned
//! blocks: the blob goes from the block to the disk without passing through the page cache,
//! which would cost the kernel a page allocation, a memory-cgroup charge, dirty tracking and
//! writeback for every 4 KiB (the pull is CPU-bound on small machines: docs/benchmarks.md,
//! "Distribution"). The last, partial block is written through the page cache. Where direct
//! I/O is refused (a file system without it, a file continued from an earlier pull at an
//! unaligned offset), the file is written with plain `write`s and its writeback is started
//! every [`WRITEBACK_EVERY`] bytes, so the disk writes while the network delivers.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek as _, Write as _};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

/// Chunks queued between the download and the writer.
const QUEUE: usize = 256;
/// Every this many bytes written, the file's writeback is started, so the final `fdatasync`
/// finds little left to do.
const WRITEBACK_EVERY: u64 = 8 << 20;
/// Size of one direct write (a multiple of any block size direct I/O asks alignment to).
const DIRECT_BLOCK: usize = 1 << 20;
/// Alignment of direct writes' buffers and offsets.
const DIRECT_ALIGN: usize = 4096;

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
    mut hasher: Sha256,
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
    let mut direct = truncate.then(|| DirectWriter::open(path)).flatten();
    let mut unflushed: u64 = 0;
    while let Some(chunk) = rx.blocking_recv() {
        hasher.update(&chunk);
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
    if let Some(d) = direct {
        d.finish(&file)?;
    }
    file.sync_data()?;
    Ok(hasher)
}

/// Direct (`O_DIRECT`) writes of a new file in aligned blocks; the file's other descriptor
/// (plain, positioned at its end by nothing but these writes) takes what cannot go direct.
struct DirectWriter {
    file: File,
    /// Backing memory of the block: `DIRECT_BLOCK + DIRECT_ALIGN` bytes, of which the
    /// aligned `DIRECT_BLOCK` starting at `start` are used.
    memory: Vec<u8>,
    start: usize,
    /// Bytes of the block filled.
    filled: usize,
    /// File offset of the block's first byte.
    offset: u64,
}

impl DirectWriter {
    /// A direct descriptor of `path`, or None where the file system refuses direct I/O.
    fn open(path: &Path) -> Option<Self> {
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok()?;
        let memory = vec![0u8; DIRECT_BLOCK + DIRECT_ALIGN];
        let start = memory.as_ptr().align_offset(DIRECT_ALIGN);
        Some(Self {
            file,
            memory,
            start,
            filled: 0,
            offset: 0,
        })
    }

    fn block(&mut self) -> &mut [u8] {
        &mut self.memory[self.start..self.start + DIRECT_BLOCK]
    }

    /// Appends `chunk`, writing every block that fills. False when a direct write was refused:
    /// then everything not yet on disk has been written through `plain` instead, and the
    /// caller goes on with `plain`. An error is `plain`'s.
    fn push(&mut self, mut chunk: &[u8], plain: &File) -> io::Result<bool> {
        while !chunk.is_empty() {
            let n = (DIRECT_BLOCK - self.filled).min(chunk.len());
            let filled = self.filled;
            self.block()[filled..filled + n].copy_from_slice(&chunk[..n]);
            self.filled += n;
            chunk = &chunk[n..];
            if self.filled == DIRECT_BLOCK {
                let (start, offset) = (self.start, self.offset);
                let block = &self.memory[start..start + DIRECT_BLOCK];
                if let Err(e) = self.file.write_all_at(block, offset) {
                    tracing::debug!(error = %e, "direct write refused; writing through the page cache");
                    // A short direct write may have written a prefix: rewrite the whole block.
                    plain.write_all_at(block, offset)?;
                    self.offset += DIRECT_BLOCK as u64;
                    self.filled = 0;
                    plain.write_all_at(chunk, self.offset)?;
                    return Ok(false);
                }
                self.offset += DIRECT_BLOCK as u64;
                self.filled = 0;
            }
        }
        Ok(true)
    }

    /// Writes the last, partial block through `plain`.
    fn finish(self, plain: &File) -> io::Result<()> {
        let block = &self.memory[self.start..self.start + self.filled];
        plain.write_all_at(block, self.offset)
    }
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
        let data = pattern(0, DIRECT_BLOCK * 2 + 12_345);
        let hash = write_in_chunks(&path, true, Sha256::new(), &data).await;
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert_eq!(hash.finalize().to_vec(), Sha256::digest(&data).to_vec());
    }

    #[tokio::test]
    async fn a_file_of_whole_blocks_and_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole");
        let data = pattern(0, DIRECT_BLOCK);
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
        let rest = pattern(1_000_003, DIRECT_BLOCK * 2 + 7);
        let hash = write_in_chunks(&path, false, hasher, &rest).await;
        let all = pattern(0, DIRECT_BLOCK * 2 + 7);
        assert_eq!(std::fs::read(&path).unwrap(), all);
        assert_eq!(hash.finalize().to_vec(), Sha256::digest(&all).to_vec());
    }

    #[test]
    fn a_refused_direct_write_goes_through_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob.partial");
        let plain = File::create(&path).unwrap();
        let Some(mut d) = DirectWriter::open(&path) else {
            return; // this file system has no direct I/O: the plain path is the only one
        };
        // A descriptor that cannot write stands in for a refusal.
        d.file = File::open(&path).unwrap();
        let data = pattern(0, DIRECT_BLOCK + 100);
        assert!(!d.push(&data, &plain).unwrap(), "the refusal is reported");
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }
}
