//! Docker's multiplexed stream framing for logs and exec output: each frame is an 8-byte header
//! `[stream, 0, 0, 0, len_be_u32]` followed by `len` bytes. Stream 1 is stdout, 2 is stderr;
//! Berth adds stream 3, "system", whose payload is a JSON control message (e.g. an exec's exit).

/// Which stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
    System = 3,
}

impl StreamKind {
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Stdin),
            1 => Some(Self::Stdout),
            2 => Some(Self::Stderr),
            3 => Some(Self::System),
            _ => None,
        }
    }
}

/// Encodes one frame.
pub fn encode(kind: StreamKind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.push(kind as u8);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Incremental decoder: feed bytes, take complete frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, if any. Frames with an unknown stream byte are returned as
    /// stdout so no output is lost.
    pub fn next_frame(&mut self) -> Option<(StreamKind, Vec<u8>)> {
        if self.buf.len() < 8 {
            return None;
        }
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if self.buf.len() < 8 + len {
            return None;
        }
        let kind = StreamKind::from_byte(self.buf[0]).unwrap_or(StreamKind::Stdout);
        let payload = self.buf[8..8 + len].to_vec();
        self.buf.drain(..8 + len);
        Some((kind, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_split_across_pushes() {
        let mut bytes = encode(StreamKind::Stdout, b"hello\n");
        bytes.extend(encode(StreamKind::Stderr, b"oops"));
        let mut dec = Decoder::new();
        dec.push(&bytes[..5]);
        assert!(dec.next_frame().is_none());
        dec.push(&bytes[5..]);
        assert_eq!(
            dec.next_frame(),
            Some((StreamKind::Stdout, b"hello\n".to_vec()))
        );
        assert_eq!(
            dec.next_frame(),
            Some((StreamKind::Stderr, b"oops".to_vec()))
        );
        assert_eq!(dec.next_frame(), None);
    }
}
