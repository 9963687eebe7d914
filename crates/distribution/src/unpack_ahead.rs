//! Unpacking a layer while it downloads: the download loop hands each chunk it writes to the
//! ingest file also to an [`AheadUnpack`], whose blocking thread decompresses, hashes and
//! unpacks it through [`ImageStore::unpack_ahead`]. The blob is still written and verified as
//! before; the commit then takes the unpacked directory instead of reading the blob again.
//!
//! It is an optimisation only: anything unusual (a download that resumes a partial file from
//! an earlier pull, a registry restarting a blob from byte 0, the unpacker failing) drops it,
//! and the layer is unpacked from its verified blob at commit, as without it.

use std::io::Read;

use berth_image::ahead::UnpackedLayer;
use berth_image::ImageStore;
use bytes::Bytes;
use tokio::sync::mpsc;

/// Chunks queued between the download and the unpacker (each a network read, some KiB).
const QUEUE: usize = 256;

/// An unpacker fed by a download.
pub(crate) struct AheadUnpack {
    tx: Option<mpsc::Sender<Bytes>>,
    /// Bytes handed over so far (the blob offset the next chunk must start at).
    fed: u64,
    task: Option<tokio::task::JoinHandle<Option<UnpackedLayer>>>,
}

impl AheadUnpack {
    /// Starts an unpacker thread for the layer blob `digest` (`what` names it in messages).
    /// Its result is only used once the blob verified against `digest` (see [`Self::finish`]).
    pub(crate) fn start(store: &ImageStore, digest: String, what: String) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let store = store.clone();
        let task = tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                rx,
                current: Bytes::new(),
            };
            match store.unpack_ahead(reader, &digest, &what) {
                Ok(u) => Some(u),
                Err(e) => {
                    tracing::debug!(layer = %what, error = %e, "unpacking while downloading failed; the commit unpacks the blob");
                    None
                }
            }
        });
        Self {
            tx: Some(tx),
            fed: 0,
            task: Some(task),
        }
    }

    /// Hands over the chunk that starts at blob offset `offset`. A chunk that does not continue
    /// what was fed (the download started over) stops the unpacker for good.
    pub(crate) async fn feed(&mut self, offset: u64, chunk: &Bytes) {
        if self.tx.is_none() {
            return;
        }
        if offset != self.fed {
            self.abandon();
            return;
        }
        let sent = match &self.tx {
            Some(tx) => tx.send(chunk.clone()).await.is_ok(),
            None => false,
        };
        if sent {
            self.fed += chunk.len() as u64;
        } else {
            // The unpacker stopped (a bad tar): the commit reports it from the blob.
            self.tx = None;
        }
    }

    /// Stops feeding; the unpacker's partial result is thrown away.
    pub(crate) fn abandon(&mut self) {
        self.tx = None;
        self.fed = u64::MAX;
    }

    /// Ends the stream (`complete`: the whole, verified blob was fed) and waits for the
    /// unpacked layer. None when it was abandoned or failed.
    pub(crate) async fn finish(mut self, complete: bool) -> Option<UnpackedLayer> {
        let whole = complete && self.tx.is_some();
        if !whole {
            self.abandon();
        }
        // Closing the channel ends the unpacker's input. An abandoned one sees a short tar and
        // fails, or finishes early; either way its directory is discarded.
        self.tx = None;
        let task = self.task.take()?;
        let unpacked = task.await.ok().flatten();
        match unpacked {
            Some(u) if whole => Some(u),
            Some(u) => {
                let _ = tokio::task::spawn_blocking(move || u.discard()).await;
                None
            }
            None => None,
        }
    }
}

impl Drop for AheadUnpack {
    fn drop(&mut self) {
        // Dropped mid-download (the pull failed): the unpacker sees its input end and its
        // directory, complete or not, is removed when it returns.
        self.tx = None;
        let (Some(task), Ok(runtime)) = (self.task.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        {
            runtime.spawn(async move {
                if let Ok(Some(u)) = task.await {
                    let _ = tokio::task::spawn_blocking(move || u.discard()).await;
                }
            });
        }
    }
}

/// Reads the chunks of a channel as one stream (blocking; on the unpacker's thread).
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Unpacked layers a pull hands to the commit; whatever the commit did not move into the
/// store is removed when this is dropped.
#[derive(Default)]
pub(crate) struct UnpackedLayers(pub std::collections::BTreeMap<String, UnpackedLayer>);

impl Drop for UnpackedLayers {
    fn drop(&mut self) {
        for u in self.0.values() {
            u.discard();
        }
    }
}
