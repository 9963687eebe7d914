//! The write-ahead log of [`crate::RedbStore`] (`<dir>/store.wal`).
//!
//! Each group commit appends ONE record and `fdatasync`s it before the batch becomes visible
//! or is answered; redb itself commits without an fsync and is made durable only at
//! checkpoints. A record is
//!
//! ```text
//! magic u32 | payload length u32 | crc32 of (lsn + payload) u32 | lsn u64 | payload
//! ```
//!
//! with `lsn` the log sequence number, one more for each record ever written (redb's `meta`
//! table keeps the lsn of the last record its state includes). The file is extended with
//! zeros in chunks and then only overwritten in place: overwriting blocks that are already
//! allocated and written makes `fdatasync` a data flush without a file-system journal commit,
//! which is what makes it cheap (see docs/benchmarks.md, "Store"). Once the log holds
//! [`crate::RedbOptions::wal_max_bytes`], or after a second without writes, or on close, the
//! store checkpoints (one durable redb commit) and the log starts again at offset 0.
//!
//! Reading on open: records are read from offset 0 while they are whole (magic, length within
//! the file, checksum) and their lsns follow each other starting right after redb's; the first
//! record that is not is the end (a torn tail, or an older cycle's record left behind).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: u32 = 0x4c41_5742; // "BWAL" little-endian
const HEADER: usize = 20;
/// The log grows by zero-filled chunks of this size.
const CHUNK: u64 = 4 * 1024 * 1024;

pub(crate) struct Wal {
    file: File,
    path: PathBuf,
    /// Where the next record goes.
    offset: u64,
    /// How much of the file is allocated (zero-filled or written).
    allocated: u64,
    /// The lsn of the next record.
    next_lsn: u64,
}

/// A record read back on open.
pub(crate) struct Record {
    pub lsn: u64,
    pub payload: Vec<u8>,
}

fn checksum(lsn: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&lsn.to_le_bytes());
    h.update(payload);
    h.finalize()
}

fn sync_dir(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl Wal {
    /// Opens (creating if needed) the log at `path` and reads the records that follow redb's
    /// state, whose last applied lsn is `applied`. The log is positioned at offset 0 with the
    /// next lsn after the last record returned: the caller applies them and checkpoints
    /// before appending.
    pub fn open(path: &Path, applied: u64) -> io::Result<(Wal, Vec<Record>)> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if !existed {
            file.sync_all()?;
            sync_dir(path)?;
        }
        let allocated = file.metadata()?.len();
        let mut records = Vec::new();
        let mut offset = 0u64;
        let mut expected = applied + 1;
        let mut header = [0u8; HEADER];
        while offset + HEADER as u64 <= allocated {
            file.read_exact_at(&mut header, offset)?;
            let field = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap());
            let (magic, len, crc) = (field(0), field(4) as u64, field(8));
            let lsn = u64::from_le_bytes(header[12..20].try_into().unwrap());
            if magic != MAGIC || lsn != expected || offset + HEADER as u64 + len > allocated {
                break;
            }
            let mut payload = vec![0u8; len as usize];
            file.read_exact_at(&mut payload, offset + HEADER as u64)?;
            if checksum(lsn, &payload) != crc {
                break;
            }
            records.push(Record { lsn, payload });
            offset += HEADER as u64 + len;
            expected += 1;
        }
        let wal = Wal {
            file,
            path: path.to_path_buf(),
            offset: 0,
            allocated,
            next_lsn: expected,
        };
        Ok((wal, records))
    }

    /// The lsn the next appended record gets.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Whether records were appended since the last [`Wal::restart`].
    pub fn has_records(&self) -> bool {
        self.offset > 0
    }

    /// How many bytes of records were appended since the last [`Wal::restart`].
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Starts over at offset 0 (after a checkpoint made every record durable in redb).
    pub fn restart(&mut self) {
        self.offset = 0;
    }

    /// Appends the record of lsn [`Wal::next_lsn`] and flushes it to disk.
    pub fn append(&mut self, payload: &[u8]) -> io::Result<()> {
        let lsn = self.next_lsn;
        let end = self.offset + (HEADER + payload.len()) as u64;
        if end > self.allocated {
            // Extend with zeros (whole chunks) and make the new size durable once, so later
            // overwrites of these blocks need no metadata commit.
            let new_len = end.div_ceil(CHUNK) * CHUNK;
            let zeros = vec![0u8; (new_len - self.allocated).min(CHUNK) as usize];
            let mut at = self.allocated;
            while at < new_len {
                let n = zeros.len().min((new_len - at) as usize);
                self.file.write_all_at(&zeros[..n], at)?;
                at += n as u64;
            }
            self.file.sync_all()?;
            self.allocated = new_len;
        }
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(&MAGIC.to_le_bytes());
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&checksum(lsn, payload).to_le_bytes());
        record.extend_from_slice(&lsn.to_le_bytes());
        record.extend_from_slice(payload);
        self.file.write_all_at(&record, self.offset)?;
        self.file.sync_data()?;
        self.offset = end;
        self.next_lsn += 1;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_until_a_torn_or_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.wal");
        let (mut wal, records) = Wal::open(&path, 0).unwrap();
        assert!(records.is_empty());
        assert_eq!(wal.next_lsn(), 1);
        for n in 0..5u8 {
            wal.append(&vec![n; 100 + n as usize]).unwrap();
        }
        drop(wal);
        let (_, records) = Wal::open(&path, 0).unwrap();
        assert_eq!(records.len(), 5);
        assert_eq!(records[4].lsn, 5);
        assert_eq!(records[4].payload, vec![4u8; 104]);
        // redb already holds the first two: nothing follows lsn 2 at offset 0.
        let (wal, records) = Wal::open(&path, 2).unwrap();
        assert!(records.is_empty());
        assert_eq!(wal.next_lsn(), 3);

        // A torn tail: the fourth record's last byte changed.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let fourth_end = (0..4u64).map(|n| HEADER as u64 + 100 + n).sum::<u64>();
        file.write_all_at(&[0xff], fourth_end - 1).unwrap();
        let (mut wal, records) = Wal::open(&path, 0).unwrap();
        assert_eq!(records.iter().map(|r| r.lsn).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(wal.next_lsn(), 4);

        // A new cycle from offset 0 after a checkpoint at lsn 3: the old cycle's records
        // behind the new one are not read back.
        wal.append(b"new").unwrap();
        drop(wal);
        let (_, records) = Wal::open(&path, 3).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].lsn, 4);
        assert_eq!(records[0].payload, b"new");
    }

    #[test]
    fn a_truncated_file_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.wal");
        let (mut wal, _) = Wal::open(&path, 0).unwrap();
        wal.append(&[1; 50]).unwrap();
        wal.append(&[2; 50]).unwrap();
        drop(wal);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len((HEADER + 50 + HEADER + 10) as u64).unwrap();
        let (_, records) = Wal::open(&path, 0).unwrap();
        assert_eq!(records.len(), 1);
    }
}
