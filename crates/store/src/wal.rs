//! The write-ahead log of [`crate::RedbStore`]: two files, `<dir>/store.wal` and
//! `<dir>/store.wal.1`, written in turns.
//!
//! Each group commit appends ONE record to the active file and `fdatasync`s it before the
//! batch is answered; redb itself commits without an fsync and is made durable only at
//! checkpoints. A record is
//!
//! ```text
//! magic u32 | payload length u32 | crc32 of (lsn + payload) u32 | lsn u64 | payload
//! ```
//!
//! with `lsn` the log sequence number, one more for each record ever written (redb's `meta`
//! table keeps the lsn of the last record its state includes). A file is extended with zeros
//! in chunks and then only overwritten in place: overwriting blocks that are already allocated
//! and written makes `fdatasync` a data flush without a file-system journal commit, which is
//! what makes it cheap (see docs/benchmarks.md, "Store").
//!
//! A checkpoint starts by [`Wal::switch`]ing: later records go to the other file from offset
//! 0 while the checkpoint makes everything in the first file durable in redb, so writes go
//! on during it. The store switches back only after that checkpoint succeeded (a failed one
//! is retried without switching), so a file is only ever overwritten once redb holds all
//! its records durably.
//!
//! Reading on open: each file is read from offset 0 while its records are whole (magic,
//! length within the file, checksum) and their lsns follow each other; what is behind is an
//! older cycle's leftovers or a torn tail. The records of both files after redb's lsn are
//! then taken in lsn order as long as they follow each other.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: u32 = 0x4c41_5742; // "BWAL" little-endian
const HEADER: usize = 20;
/// The log grows by zero-filled chunks of this size.
const CHUNK: u64 = 4 * 1024 * 1024;

/// One of the two log files.
struct LogFile {
    file: File,
    path: PathBuf,
    /// Where the next record goes.
    offset: u64,
    /// How much of the file is allocated (zero-filled or written).
    allocated: u64,
}

pub(crate) struct Wal {
    files: [LogFile; 2],
    /// The file records are appended to.
    active: usize,
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

impl LogFile {
    /// Opens (creating if needed) one file and reads its run of consecutive records.
    fn open(path: &Path) -> io::Result<(LogFile, Vec<Record>)> {
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
        let mut records: Vec<Record> = Vec::new();
        let mut offset = 0u64;
        let mut header = [0u8; HEADER];
        while offset + HEADER as u64 <= allocated {
            file.read_exact_at(&mut header, offset)?;
            let field = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap());
            let (magic, len, crc) = (field(0), field(4) as u64, field(8));
            let lsn = u64::from_le_bytes(header[12..20].try_into().unwrap());
            let follows = records.last().is_none_or(|r| r.lsn + 1 == lsn);
            if magic != MAGIC || !follows || offset + HEADER as u64 + len > allocated {
                break;
            }
            let mut payload = vec![0u8; len as usize];
            file.read_exact_at(&mut payload, offset + HEADER as u64)?;
            if checksum(lsn, &payload) != crc {
                break;
            }
            records.push(Record { lsn, payload });
            offset += HEADER as u64 + len;
        }
        let log = LogFile {
            file,
            path: path.to_path_buf(),
            offset: 0,
            allocated,
        };
        Ok((log, records))
    }

    fn append(&mut self, lsn: u64, payload: &[u8]) -> io::Result<()> {
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
        Ok(())
    }
}

/// The second file's path (`store.wal` -> `store.wal.1`).
fn second_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

impl Wal {
    /// Opens (creating if needed) the log at `path` (and its second file) and reads the
    /// records that follow redb's state, whose last applied lsn is `applied`. The log is
    /// positioned at offset 0 of the first file with the next lsn after the last record
    /// returned: the caller applies them and checkpoints before appending.
    pub fn open(path: &Path, applied: u64) -> io::Result<(Wal, Vec<Record>)> {
        let (first, mut records) = LogFile::open(path)?;
        let (second, more) = LogFile::open(&second_path(path))?;
        records.extend(more);
        records.retain(|r| r.lsn > applied);
        records.sort_by_key(|r| r.lsn);
        let mut expected = applied + 1;
        let mut follow = 0;
        while follow < records.len() && records[follow].lsn == expected {
            follow += 1;
            expected += 1;
        }
        records.truncate(follow);
        let wal = Wal {
            files: [first, second],
            active: 0,
            next_lsn: expected,
        };
        Ok((wal, records))
    }

    /// The lsn the next appended record gets.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Whether records were appended to the active file since it was started.
    pub fn has_records(&self) -> bool {
        self.files[self.active].offset > 0
    }

    /// How many bytes of records the active file holds.
    pub fn offset(&self) -> u64 {
        self.files[self.active].offset
    }

    /// Starts the other file at offset 0 (a checkpoint is making the active one's records
    /// durable in redb).
    pub fn switch(&mut self) {
        self.active = 1 - self.active;
        self.files[self.active].offset = 0;
    }

    /// Starts over at offset 0 of the first file (after a checkpoint made every record of
    /// both files durable in redb).
    pub fn restart(&mut self) {
        self.active = 0;
        for f in &mut self.files {
            f.offset = 0;
        }
    }

    /// Appends the record of lsn [`Wal::next_lsn`] to the active file and flushes it.
    pub fn append(&mut self, payload: &[u8]) -> io::Result<()> {
        self.files[self.active].append(self.next_lsn, payload)?;
        self.next_lsn += 1;
        Ok(())
    }

    /// The active file.
    pub fn path(&self) -> &Path {
        &self.files[self.active].path
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
        // redb already holds the first two: the rest follow.
        let (wal, records) = Wal::open(&path, 2).unwrap();
        assert_eq!(records.iter().map(|r| r.lsn).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(wal.next_lsn(), 6);

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

    #[test]
    fn records_of_both_files_are_read_in_lsn_order_after_a_switch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.wal");
        let (mut wal, _) = Wal::open(&path, 0).unwrap();
        for n in 0..3u8 {
            wal.append(&[n; 30]).unwrap();
        }
        wal.switch();
        for n in 3..5u8 {
            wal.append(&[n; 30]).unwrap();
        }
        drop(wal);
        // A crash during the checkpoint: redb still at lsn 0, both files are needed.
        let (_, records) = Wal::open(&path, 0).unwrap();
        assert_eq!(
            records.iter().map(|r| r.lsn).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        // After the checkpoint (redb at lsn 3): only the second file's records.
        let (mut wal, records) = Wal::open(&path, 3).unwrap();
        assert_eq!(records.iter().map(|r| r.lsn).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(wal.next_lsn(), 6);
        // The next cycle overwrites the first file from offset 0 (its old records are in
        // redb); a kill then leaves the second file's records and the new ones.
        wal.files[1].offset = 2 * (HEADER as u64 + 30);
        wal.active = 1;
        wal.switch();
        wal.append(&[6; 10]).unwrap();
        drop(wal);
        let (_, records) = Wal::open(&path, 3).unwrap();
        assert_eq!(records.iter().map(|r| r.lsn).collect::<Vec<_>>(), [4, 5, 6]);
        // With redb at 5, only the new record; a gap (redb at 1) ends the log at the gap.
        let (_, records) = Wal::open(&path, 5).unwrap();
        assert_eq!(records.iter().map(|r| r.lsn).collect::<Vec<_>>(), [6]);
        let (_, records) = Wal::open(&path, 1).unwrap();
        assert!(records.is_empty(), "lsn 2 and 3 were overwritten");
    }
}
