//! sha256 digests: formatting, validation, and readers/writers that hash what passes through.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

use crate::ImageError;

/// The only algorithm the store uses.
pub const SHA256: &str = "sha256:";

/// `sha256:<hex>` of `bytes`.
pub fn sha256_of(bytes: &[u8]) -> String {
    format!("{SHA256}{}", hex::encode(Sha256::digest(bytes)))
}

/// Checks that `digest` is `sha256:` followed by 64 lowercase hex characters and returns the hex.
pub fn hex_of(digest: &str) -> Result<&str, ImageError> {
    match digest.strip_prefix(SHA256) {
        Some(hex) if is_hex64(hex) => Ok(hex),
        _ => Err(ImageError::InvalidReference(format!(
            "{digest:?} is not a sha256 digest (want sha256:<64 hex characters>)"
        ))),
    }
}

/// True for exactly 64 lowercase hex characters.
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64 && is_lower_hex(s)
}

/// True when every character is a lowercase hex digit.
pub fn is_lower_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A writer that hashes and counts everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// The inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        let digest = format!("{SHA256}{}", hex::encode(self.hasher.finalize()));
        (self.inner, digest, self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Reads the rest of the stream (hashing it) and returns the digest and total byte count.
    pub fn drain_and_finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        let digest = format!("{SHA256}{}", hex::encode(self.hasher.finalize()));
        Ok((digest, self.len))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty() {
        assert_eq!(
            sha256_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn validates_digests() {
        assert!(hex_of(&sha256_of(b"x")).is_ok());
        assert!(hex_of("sha256:abc").is_err());
        assert!(hex_of("md5:00").is_err());
        assert!(hex_of(&sha256_of(b"x").to_uppercase()).is_err());
    }

    #[test]
    fn hashing_reader_and_writer_agree() {
        let data = b"hello world".repeat(1000);
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (out, d1, n1) = w.finish();
        let (d2, n2) = HashingReader::new(&out[..]).drain_and_finish().unwrap();
        assert_eq!((d1.clone(), n1), (d2, n2));
        assert_eq!(d1, sha256_of(&data));
    }
}
