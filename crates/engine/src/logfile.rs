//! Container log files in Docker's json-file format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"RFC3339 nanos"}`, rotated by size into
//! `container.log.1`, `.2`, ... The monitor writes them; the daemon reads them for `logs`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Longest line kept in one record; longer output is split, as Docker does.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogRecord {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Appends records to a log file, rotating it when it grows past `max_size`.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
}

impl LogWriter {
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
        })
    }

    pub fn write(&mut self, stream: &str, text: &[u8]) -> std::io::Result<()> {
        let record = LogRecord {
            log: String::from_utf8_lossy(text).into_owned(),
            stream: stream.to_string(),
            time: now_rfc3339_nanos(),
        };
        let mut line = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        if self.max_size > 0 && self.size + line.len() as u64 > self.max_size && self.size > 0 {
            self.rotate()?;
        }
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.max_files <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        for n in (1..self.max_files - 1).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Path of the `n`th rotated file.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// All log files of a container, oldest first.
pub fn files_oldest_first(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut n = 1;
    while rotated(path, n).exists() {
        out.push(rotated(path, n));
        n += 1;
    }
    out.reverse();
    if path.exists() {
        out.push(path.to_path_buf());
    }
    out
}

/// Reads every record of every file, oldest first.
pub fn read_all(path: &Path) -> Vec<LogRecord> {
    let mut out = Vec::new();
    for file in files_oldest_first(path) {
        if let Ok(f) = File::open(&file) {
            for line in BufReader::new(f).lines().map_while(Result::ok) {
                if let Ok(rec) = serde_json::from_str::<LogRecord>(&line) {
                    out.push(rec);
                }
            }
        }
    }
    out
}

pub fn now_rfc3339_nanos() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Splits a stream of output chunks into log lines (keeping the newline), flushing partial
/// lines longer than [`MAX_LINE`].
#[derive(Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    pub fn push(&mut self, data: &[u8], mut emit: impl FnMut(&[u8])) {
        self.buf.extend_from_slice(data);
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            emit(&line);
        }
        while self.buf.len() >= MAX_LINE {
            let part: Vec<u8> = self.buf.drain(..MAX_LINE).collect();
            emit(&part);
        }
    }

    pub fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            emit(&rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_long_partials() {
        let mut s = LineSplitter::default();
        let mut got: Vec<Vec<u8>> = Vec::new();
        s.push(b"a\nbc", |l| got.push(l.to_vec()));
        s.push(b"d\n", |l| got.push(l.to_vec()));
        assert_eq!(got, vec![b"a\n".to_vec(), b"bcd\n".to_vec()]);
        got.clear();
        s.push(&vec![b'x'; MAX_LINE + 5], |l| got.push(l.to_vec()));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len(), MAX_LINE);
        s.finish(|l| got.push(l.to_vec()));
        assert_eq!(got[1].len(), 5);
    }

    #[test]
    fn rotates_by_size_and_reads_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let mut w = LogWriter::open(&path, 200, 3).unwrap();
        for i in 0..20 {
            w.write("stdout", format!("line {i}\n").as_bytes()).unwrap();
        }
        assert!(rotated(&path, 1).exists());
        assert!(rotated(&path, 2).exists());
        assert!(!rotated(&path, 3).exists(), "keeps at most 3 files");
        let records = read_all(&path);
        let nums: Vec<usize> = records
            .iter()
            .map(|r| r.log.trim().trim_start_matches("line ").parse().unwrap())
            .collect();
        assert!(
            nums.windows(2).all(|w| w[1] == w[0] + 1),
            "in order: {nums:?}"
        );
        assert_eq!(*nums.last().unwrap(), 19);
    }
}
