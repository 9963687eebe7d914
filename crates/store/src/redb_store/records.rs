//! How [`super::RedbStore`] encodes what it writes: a key's row in the `keys` table and an
//! event (a history row, and the unit of a log record's payload).
//!
//! Plain encodings (little-endian integers, `sized` = u32 length then the bytes):
//! - key row: `create_revision i64 | mod_revision i64 | version i64 | value`;
//! - event: `kind u8 (0 put, 1 delete) | key sized | fields | value sized | 0`, or `... | 1 |
//!   previous fields | previous value sized` when the key had a value before.
//!
//! Rows and events of [`PACK_FROM`] bytes or more are stored compressed (an LZ4 block) when
//! that saves space: a packed key row is `PACKED_ROW (i64 -1, never a create revision) |
//! plain length u32 | LZ4 block of the plain row`, a packed event is `PACKED_EVENT (0x80,
//! never a kind) | plain length u32 | LZ4 block of the plain event`. An event is compressed
//! as one block, so its previous value (usually the new one with a field changed) costs
//! little. LZ4 rather than zstd: zstd's entropy tables, built anew for every small record,
//! took a fifth of the server's CPU under RunTask load. Both plain forms stay readable, so stores written before compression open as
//! before. Compressing is what keeps the bytes per write small enough for the disk's flushes
//! to stay quick (docs/benchmarks.md, "Store").

use std::borrow::Cow;

use crate::{EventKind, KeyValue, StoreError, WatchEvent};

/// Plain encodings shorter than this are stored as they are.
const PACK_FROM: usize = 128;
/// The first 8 bytes of a packed key row.
const PACKED_ROW: [u8; 8] = [0xff; 8];
/// The first byte of a packed event.
const PACKED_EVENT: u8 = 0x80;

/// `marker | plain length | block` if that is shorter than `plain`, else `plain`.
fn pack(plain: Vec<u8>, marker: &[u8]) -> Vec<u8> {
    if plain.len() < PACK_FROM {
        return plain;
    }
    let header = marker.len() + 4;
    let mut out = vec![0u8; header + lz4_flex::block::get_maximum_output_size(plain.len())];
    match lz4_flex::block::compress_into(&plain, &mut out[header..]) {
        Ok(n) if header + n < plain.len() => {
            out[..marker.len()].copy_from_slice(marker);
            out[marker.len()..header].copy_from_slice(&(plain.len() as u32).to_le_bytes());
            out.truncate(header + n);
            out
        }
        _ => plain,
    }
}

/// The plain encoding behind `marker | plain length | block` (`bytes` past the marker).
fn unpack(packed: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut reader = Reader(packed);
    let len = reader.u32()? as usize;
    let mut plain = vec![0u8; len];
    match lz4_flex::block::decompress_into(reader.0, &mut plain) {
        Ok(n) if n == len => Ok(plain),
        _ => Err(corrupt()),
    }
}

pub(super) fn corrupt() -> StoreError {
    StoreError::Backend("store file holds a malformed record".into())
}

fn encode_kv_fields(out: &mut Vec<u8>, kv: &KeyValue) {
    out.extend_from_slice(&kv.create_revision.to_le_bytes());
    out.extend_from_slice(&kv.mod_revision.to_le_bytes());
    out.extend_from_slice(&kv.version.to_le_bytes());
}

/// A key's row (without the key), packed when that pays.
pub(super) fn encode_kv(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + kv.value.len());
    encode_kv_fields(&mut out, kv);
    out.extend_from_slice(&kv.value);
    pack(out, &PACKED_ROW)
}

pub(super) fn decode_kv(key: &str, bytes: &[u8]) -> Result<KeyValue, StoreError> {
    let plain = match bytes.strip_prefix(&PACKED_ROW) {
        Some(packed) => Cow::Owned(unpack(packed)?),
        None => Cow::Borrowed(bytes),
    };
    let mut reader = Reader(&plain);
    let mut kv = reader.kv(key, &[])?;
    kv.value = reader.0.to_vec();
    Ok(kv)
}

/// Reads the fields of the encodings.
pub(super) struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.0.len() < n {
            return Err(corrupt());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(i64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| corrupt())?,
        ))
    }

    pub fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| corrupt())?,
        ))
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    pub fn sized(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn kv(&mut self, key: &str, value: &[u8]) -> Result<KeyValue, StoreError> {
        Ok(KeyValue {
            key: key.to_string(),
            create_revision: self.i64()?,
            mod_revision: self.i64()?,
            version: self.i64()?,
            value: value.to_vec(),
        })
    }
}

pub(super) fn push_sized(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// An event (history row and log unit), packed when that pays.
pub(super) fn encode_event(event: &WatchEvent) -> Vec<u8> {
    let prev_len = event.prev_kv.as_ref().map_or(0, |p| p.value.len() + 28);
    let mut out = Vec::with_capacity(40 + event.kv.key.len() + event.kv.value.len() + prev_len);
    out.push(match event.kind {
        EventKind::Put => 0,
        EventKind::Delete => 1,
    });
    push_sized(&mut out, event.kv.key.as_bytes());
    encode_kv_fields(&mut out, &event.kv);
    push_sized(&mut out, &event.kv.value);
    match &event.prev_kv {
        None => out.push(0),
        Some(prev) => {
            out.push(1);
            encode_kv_fields(&mut out, prev);
            push_sized(&mut out, &prev.value);
        }
    }
    pack(out, &[PACKED_EVENT])
}

/// An event's plain encoding.
fn plain_event(bytes: &[u8]) -> Result<Cow<'_, [u8]>, StoreError> {
    match bytes.split_first() {
        Some((&PACKED_EVENT, packed)) => Ok(Cow::Owned(unpack(packed)?)),
        _ => Ok(Cow::Borrowed(bytes)),
    }
}

fn decode_plain_event(bytes: &[u8]) -> Result<WatchEvent, StoreError> {
    let mut reader = Reader(bytes);
    let kind = match reader.u8()? {
        0 => EventKind::Put,
        1 => EventKind::Delete,
        _ => return Err(corrupt()),
    };
    let key = std::str::from_utf8(reader.sized()?).map_err(|_| corrupt())?;
    let mut kv = reader.kv(key, &[])?;
    kv.value = reader.sized()?.to_vec();
    let prev_kv = match reader.u8()? {
        0 => None,
        1 => {
            let mut prev = reader.kv(key, &[])?;
            prev.value = reader.sized()?.to_vec();
            Some(prev)
        }
        _ => return Err(corrupt()),
    };
    Ok(WatchEvent { kind, kv, prev_kv })
}

pub(super) fn decode_event(bytes: &[u8]) -> Result<WatchEvent, StoreError> {
    decode_plain_event(&plain_event(bytes)?)
}

/// The event if its key starts with `prefix` (a plain event's other fields are decoded only
/// then).
pub(super) fn decode_event_under(
    bytes: &[u8],
    prefix: &str,
) -> Result<Option<WatchEvent>, StoreError> {
    let plain = plain_event(bytes)?;
    let mut reader = Reader(&plain);
    reader.u8()?;
    let key = std::str::from_utf8(reader.sized()?).map_err(|_| corrupt())?;
    if !key.starts_with(prefix) {
        return Ok(None);
    }
    decode_plain_event(&plain).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(value: Vec<u8>) -> KeyValue {
        KeyValue {
            key: "a/b".into(),
            value,
            create_revision: 3,
            mod_revision: 9,
            version: 4,
        }
    }

    /// A JSON-like value of about `len` bytes, compressible as records are.
    fn record(len: usize, seed: u64) -> Vec<u8> {
        let mut out = String::from("{");
        let mut n = seed;
        while out.len() < len {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.push_str(&format!(
                "\"taskArn\":\"arn:aws:ecs:us-east-1:123456789012:task/demo/{n:016x}\","
            ));
        }
        out.push('}');
        out.into_bytes()
    }

    fn events(new: Vec<u8>, old: Vec<u8>) -> [WatchEvent; 2] {
        let prev = KeyValue {
            value: old,
            mod_revision: 7,
            version: 3,
            ..kv(vec![])
        };
        [
            WatchEvent {
                kind: EventKind::Put,
                kv: kv(new.clone()),
                prev_kv: Some(prev),
            },
            WatchEvent {
                kind: EventKind::Delete,
                kv: kv(new),
                prev_kv: None,
            },
        ]
    }

    #[test]
    fn small_events_and_rows_stay_plain_and_round_trip() {
        for event in events(b"new".to_vec(), b"old".to_vec()) {
            let bytes = encode_event(&event);
            assert!(bytes[0] < 2, "small events are not packed");
            assert_eq!(decode_event(&bytes).unwrap(), event);
            assert_eq!(decode_event_under(&bytes, "a/").unwrap(), Some(event));
            assert_eq!(decode_event_under(&bytes, "b/").unwrap(), None);
        }
        let small = kv(b"v".to_vec());
        assert_eq!(encode_kv(&small).len(), 25);
        assert_eq!(decode_kv("a/b", &encode_kv(&small)).unwrap(), small);
        assert!(decode_event(&[1, 200]).is_err());
    }

    #[test]
    fn records_are_compressed_and_round_trip() {
        let (new, old) = (record(3000, 1), record(3000, 1));
        for event in events(new.clone(), old) {
            let bytes = encode_event(&event);
            assert_eq!(bytes[0], PACKED_EVENT);
            // The previous value costs little: the event is smaller than its new value alone.
            assert!(bytes.len() < 3000 / 2, "{} bytes", bytes.len());
            assert_eq!(decode_event(&bytes).unwrap(), event);
            assert_eq!(decode_event_under(&bytes, "a/").unwrap(), Some(event));
            assert_eq!(decode_event_under(&bytes, "ab").unwrap(), None);
        }
        let row = kv(new);
        let bytes = encode_kv(&row);
        assert!(bytes.starts_with(&PACKED_ROW) && bytes.len() < 3000 / 2);
        assert_eq!(decode_kv("a/b", &bytes).unwrap(), row);
    }

    #[test]
    fn incompressible_values_stay_plain() {
        let mut n = 7u64;
        let noise: Vec<u8> = (0..2000)
            .map(|_| {
                n ^= n << 13;
                n ^= n >> 7;
                n ^= n << 17;
                n as u8
            })
            .collect();
        let row = kv(noise);
        let bytes = encode_kv(&row);
        assert_eq!(bytes.len(), 24 + 2000);
        assert_eq!(decode_kv("a/b", &bytes).unwrap(), row);
    }

    #[test]
    fn rows_written_before_compression_still_read() {
        // A plain row whose value would be compressed today (an older store's row).
        let row = kv(record(1000, 2));
        let mut plain = Vec::new();
        encode_kv_fields(&mut plain, &row);
        plain.extend_from_slice(&row.value);
        assert_eq!(decode_kv("a/b", &plain).unwrap(), row);
    }

    #[test]
    fn damaged_packed_records_are_errors_not_panics() {
        let bytes = encode_event(&events(record(2000, 3), record(2000, 4))[0].clone());
        let mut cut = bytes.clone();
        cut.truncate(bytes.len() / 2);
        assert!(decode_event(&cut).is_err());
        let mut wrong_len = bytes.clone();
        wrong_len[1] ^= 0x01;
        assert!(decode_event(&wrong_len).is_err());
        assert!(decode_kv("a/b", &PACKED_ROW).is_err());
    }
}
