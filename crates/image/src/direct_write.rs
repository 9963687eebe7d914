//! Writing a new file with direct I/O (`O_DIRECT`) in page-aligned blocks of [`BLOCK`] bytes:
//! the data goes from the block to the disk without the page cache, which would cost the
//! kernel a page allocation, a memory-cgroup charge, dirty tracking and writeback for every
//! few KiB — on a small machine most of the CPU a pull spends writing (docs/benchmarks.md,
//! "Distribution"). The last, partial block is written through the file's ordinary
//! descriptor. Where direct I/O is refused (a file system without it), [`DirectWriter::open`]
//! gives None, or a block write reports the refusal and the caller goes on with ordinary
//! writes: nothing is lost either way.
//!
//! Used for layer blobs as they download (`berth-distribution`'s ingest) and for large files
//! unpacked from layers ([`crate::unpack`]).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Size of one direct write (a multiple of any block size direct I/O asks alignment to).
pub const BLOCK: usize = 1 << 20;
/// Alignment of direct writes' buffers and offsets.
const ALIGN: usize = 4096;

/// Direct writes of a file from its start; its ordinary descriptor (`plain` in the methods)
/// takes what cannot go direct.
pub struct DirectWriter {
    file: File,
    /// Backing memory of the block: `BLOCK + ALIGN` bytes, of which the aligned `BLOCK`
    /// starting at `start` are used.
    memory: Vec<u8>,
    start: usize,
    /// Bytes of the block filled.
    filled: usize,
    /// File offset of the block's first byte.
    offset: u64,
}

impl DirectWriter {
    /// A direct descriptor of the (new or truncated) file `path`, its block in `memory`
    /// (grown as needed; pass the buffer a previous writer gave back to skip the allocation).
    /// Where the file system refuses direct I/O, `memory` comes back as the error.
    pub fn open(path: &Path, mut memory: Vec<u8>) -> Result<Self, Vec<u8>> {
        let Ok(file) = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
        else {
            return Err(memory);
        };
        if memory.len() < BLOCK + ALIGN {
            memory.resize(BLOCK + ALIGN, 0);
        }
        let start = memory.as_ptr().align_offset(ALIGN);
        Ok(Self {
            file,
            memory,
            start,
            filled: 0,
            offset: 0,
        })
    }

    /// The unfilled rest of the current block, to read into before [`Self::advance`].
    pub fn unfilled(&mut self) -> &mut [u8] {
        &mut self.memory[self.start + self.filled..self.start + BLOCK]
    }

    /// Takes `n` more bytes written into [`Self::unfilled`], writing the block when it is
    /// full. False when the direct write was refused: the block then went through `plain`,
    /// and the caller goes on with `plain` from its end. An error is `plain`'s.
    pub fn advance(&mut self, n: usize, plain: &File) -> io::Result<bool> {
        self.filled += n;
        debug_assert!(self.filled <= BLOCK);
        if self.filled < BLOCK {
            return Ok(true);
        }
        let block = &self.memory[self.start..self.start + BLOCK];
        let direct = self.file.write_all_at(block, self.offset);
        if let Err(e) = &direct {
            tracing::debug!(error = %e, "direct write refused; writing through the page cache");
            // A short direct write may have written a prefix: write the whole block again.
            plain.write_all_at(block, self.offset)?;
        }
        self.offset += BLOCK as u64;
        self.filled = 0;
        Ok(direct.is_ok())
    }

    /// Appends `chunk` (see [`Self::advance`] for the result). After a refusal, the rest of
    /// `chunk` has been written through `plain` too.
    pub fn push(&mut self, mut chunk: &[u8], plain: &File) -> io::Result<bool> {
        while !chunk.is_empty() {
            let room = self.unfilled();
            let n = room.len().min(chunk.len());
            room[..n].copy_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if !self.advance(n, plain)? {
                plain.write_all_at(chunk, self.offset)?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Writes the last, partial block through `plain`. The file then holds every byte given.
    /// Gives the block's memory back.
    pub fn finish(self, plain: &File) -> io::Result<Vec<u8>> {
        let block = &self.memory[self.start..self.start + self.filled];
        plain.write_all_at(block, self.offset)?;
        Ok(self.memory)
    }

    /// The block's memory, for reuse (after a refusal, when nothing is left in it).
    pub fn into_memory(self) -> Vec<u8> {
        self.memory
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 253) as u8).collect()
    }

    #[test]
    fn blocks_and_the_tail_make_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let plain = File::create(&path).unwrap();
        let data = pattern(BLOCK * 2 + 4097);
        match DirectWriter::open(&path, Vec::new()) {
            Ok(mut d) => {
                for chunk in data.chunks(70_001) {
                    assert!(d.push(chunk, &plain).unwrap());
                }
                d.finish(&plain).unwrap();
            }
            Err(_) => return, // no direct I/O here: nothing to test
        }
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[test]
    fn a_refused_direct_write_goes_through_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let plain = File::create(&path).unwrap();
        let Ok(mut d) = DirectWriter::open(&path, Vec::new()) else {
            return;
        };
        // A descriptor that cannot write stands in for a refusal.
        d.file = File::open(&path).unwrap();
        let data = pattern(BLOCK + 100);
        assert!(!d.push(&data, &plain).unwrap(), "the refusal is reported");
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }
}
