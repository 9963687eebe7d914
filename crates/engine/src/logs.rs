//! Serving `logs`: reads the json-file log (rotated files first), applies `since`/`tail`, and
//! with `follow` keeps reading as the monitor appends (following rotation) until the container
//! stops. Output is framed per stream (stdout/stderr kept apart).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_engine_client::frame::{encode, StreamKind};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::error::Result;
use crate::logfile::{files_oldest_first, LogRecord};

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub timestamps: bool,
    pub tail: Option<usize>,
    pub since: Option<i64>,
}

fn frame(rec: &LogRecord, opts: &LogOptions) -> Option<Bytes> {
    let kind = match rec.stream.as_str() {
        "stderr" if opts.stderr => StreamKind::Stderr,
        "stdout" if opts.stdout => StreamKind::Stdout,
        _ => return None,
    };
    if let Some(since) = opts.since {
        let t = chrono::DateTime::parse_from_rfc3339(&rec.time)
            .map(|t| t.timestamp())
            .unwrap_or(0);
        if t < since {
            return None;
        }
    }
    let payload = if opts.timestamps {
        format!("{} {}", rec.time, rec.log)
    } else {
        rec.log.clone()
    };
    Some(Bytes::from(encode(kind, payload.as_bytes())))
}

fn parse_lines(reader: &mut BufReader<File>, partial: &mut String, out: &mut Vec<LogRecord>) {
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                partial.push_str(&line);
                if partial.ends_with('\n') {
                    if let Ok(rec) = serde_json::from_str::<LogRecord>(partial.trim_end()) {
                        out.push(rec);
                    }
                    partial.clear();
                }
            }
        }
    }
}

impl Engine {
    pub fn logs(self: &Arc<Self>, key: &str, opts: LogOptions) -> Result<mpsc::Receiver<Bytes>> {
        let id = self.resolve(key)?;
        let path = self.paths.container(&id).join("container.log");
        let (tx, rx) = mpsc::channel(256);
        let engine = self.clone();
        let wake = self.lifecycle_receiver(&id);
        let handle = tokio::runtime::Handle::current();
        std::thread::spawn(move || follow_file(engine, id, path, opts, tx, wake, handle));
        Ok(rx)
    }
}

fn follow_file(
    engine: Arc<Engine>,
    id: String,
    path: PathBuf,
    opts: LogOptions,
    tx: mpsc::Sender<Bytes>,
    mut wake: Option<tokio::sync::watch::Receiver<crate::engine::Lifecycle>>,
    handle: tokio::runtime::Handle,
) {
    let files = files_oldest_first(&path);
    let mut records = Vec::new();
    for f in files.iter().filter(|f| **f != path) {
        if let Ok(file) = File::open(f) {
            parse_lines(&mut BufReader::new(file), &mut String::new(), &mut records);
        }
    }
    let mut current = File::open(&path).ok().map(BufReader::new);
    let mut partial = String::new();
    if let Some(r) = current.as_mut() {
        parse_lines(r, &mut partial, &mut records);
    }
    let skip = opts
        .tail
        .map(|n| records.len().saturating_sub(n))
        .unwrap_or(0);
    for rec in records.iter().skip(skip) {
        if let Some(f) = frame(rec, &opts) {
            if tx.blocking_send(f).is_err() {
                return;
            }
        }
    }
    if !opts.follow {
        return;
    }
    let exits_at_start = engine.follow_state(&id).map(|s| s.1).unwrap_or(0);
    loop {
        // Keep following while the container runs, and for a container that has not run yet
        // (attach before start) until its first exit.
        let running = match engine.follow_state(&id) {
            Some((active, exits, status)) => {
                active || (status == "created" && exits == exits_at_start)
            }
            None => false,
        };
        let mut fresh = Vec::new();
        if current.is_none() {
            current = File::open(&path).ok().map(BufReader::new);
        }
        if let Some(r) = current.as_mut() {
            parse_lines(r, &mut partial, &mut fresh);
            // Rotated: the path now names a new file; finish the old one, then switch.
            let rotated = match (std::fs::metadata(&path), r.get_ref().metadata()) {
                (Ok(a), Ok(b)) => a.ino() != b.ino(),
                _ => false,
            };
            if rotated {
                parse_lines(r, &mut partial, &mut fresh);
                partial.clear();
                current = File::open(&path).ok().map(BufReader::new);
                if let Some(r) = current.as_mut() {
                    parse_lines(r, &mut partial, &mut fresh);
                }
            }
        }
        for rec in &fresh {
            if let Some(f) = frame(rec, &opts) {
                if tx.blocking_send(f).is_err() {
                    return;
                }
            }
        }
        if !running && fresh.is_empty() {
            return;
        }
        if tx.is_closed() {
            return;
        }
        // New output is picked up every 50 ms; an exit wakes the follower at once.
        match wake.as_mut() {
            Some(rx) => {
                let changed = handle.block_on(async {
                    tokio::time::timeout(Duration::from_millis(50), rx.changed()).await
                });
                if let Ok(Err(_)) = changed {
                    wake = None;
                }
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
