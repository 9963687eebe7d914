//! Writing a download into its ingest file off the async runtime: the download loop hands each
//! chunk over (no copy) and a blocking thread writes it with plain `write`s, hashes it, starts
//! the file's writeback every [`WRITEBACK_EVERY`] bytes (so the disk writes while the network
//! delivers) and `fdatasync`s it at the end.

use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

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
    let mut unflushed: u64 = 0;
    while let Some(chunk) = rx.blocking_recv() {
        file.write_all(&chunk)?;
        hasher.update(&chunk);
        unflushed += chunk.len() as u64;
        if unflushed >= WRITEBACK_EVERY {
            unflushed = 0;
            start_writeback(&file);
        }
    }
    file.sync_data()?;
    Ok(hasher)
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
