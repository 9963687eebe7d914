//! Gzip decode speed of the flate2 backend Berth is built with (docs/benchmarks.md,
//! "Stop 14: gzip through zlib-rs"): 64 MiB of text-like data compressed once, then
//! decompressed five times through the same `MultiGzDecoder` layers go through; prints the best.
//! To compare backends, build it with flate2's `rust_backend` instead of `zlib-rs`.
//!
//! `cargo run --release -p berth-image --example gzip_decode`

use std::io::{Read, Write};
fn main() {
    // 64 MiB of text-like data (about as compressible as the binaries and text in layers).
    let mut data = Vec::with_capacity(64 << 20);
    let mut x: u64 = 1;
    while data.len() < (64 << 20) {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let w = [
            "alpha ",
            "beta ",
            "gamma\n",
            "delta ",
            "/usr/lib/x86_64 ",
            "0x7f45 ",
        ][(x >> 33) as usize % 6];
        data.extend_from_slice(w.as_bytes());
        if (x >> 20).is_multiple_of(7) {
            data.extend_from_slice(&x.to_le_bytes());
        }
    }
    let t = std::time::Instant::now();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&data).unwrap();
    let gz = enc.finish().unwrap();
    let ct = t.elapsed();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let mut out = Vec::with_capacity(data.len());
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        assert_eq!(out.len(), data.len());
    }
    println!(
        "compressed {} -> {} in {:?}; decompress best {:.1} ms = {:.0} MiB/s",
        data.len(),
        gz.len(),
        ct,
        best * 1e3,
        64.0 / best
    );
}
