//! Verifying and unpacking the layers of one image into a [`Stage`]: each layer blob is
//! decompressed, hashed (its diff id must match the config's) and, unless the snapshot for its
//! chain id already exists, unpacked into a staged snapshot directory.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::Path;

use crate::ahead::UnpackedLayer;
use crate::digest::HashingReader;
use crate::error::IoContext;
use crate::snapshot::{chain_ids, SnapshotStore};
use crate::stage::{Stage, StagedSnapshot};
use crate::unpack;
use crate::ImageError;

/// One layer to stage: the blob file (already in the stage or anywhere readable), its digest and
/// media type (for messages).
pub struct LayerSource<'a> {
    pub path: &'a Path,
    pub digest: &'a str,
    pub media_type: &'a str,
    /// The layer as already unpacked by a pull ([`crate::ahead`]): used instead of unpacking
    /// the blob again once its diff id checks out.
    pub unpacked: Option<&'a UnpackedLayer>,
}

impl<'a> LayerSource<'a> {
    /// Views a list of `(path, digest, media type)` triples as layer sources.
    pub fn from_triples(layers: &'a [(std::path::PathBuf, String, String)]) -> Vec<Self> {
        layers
            .iter()
            .map(|(path, digest, media_type)| LayerSource {
                path,
                digest,
                media_type,
                unpacked: None,
            })
            .collect()
    }
}

/// One layer's work: verify its diff id and, when `dir` is set, unpack it there.
struct LayerJob<'a> {
    layer: &'a LayerSource<'a>,
    diff_id: &'a str,
    /// Where to unpack (None: the snapshot exists; the layer is only verified).
    dir: Option<std::path::PathBuf>,
}

/// Verifies every layer against `diff_ids` and unpacks those whose snapshot is missing, a few
/// layers at a time (one per core, at most 4: decompressing, hashing and writing files are
/// CPU work each layer does on its own). Returns the total unpacked size of the image's
/// layers. The first failing layer (in layer order) is the error.
pub fn stage_layers(
    stage: &mut Stage,
    snapshots: &SnapshotStore,
    layers: &[LayerSource<'_>],
    diff_ids: &[String],
) -> Result<i64, ImageError> {
    if layers.len() != diff_ids.len() {
        return Err(ImageError::archive(format!(
            "image has {} layers but its config lists {} diff ids",
            layers.len(),
            diff_ids.len()
        )));
    }
    let chains = chain_ids(diff_ids);
    let mut total: u64 = 0;
    let mut jobs = Vec::with_capacity(layers.len());
    for ((layer, diff_id), chain) in layers.iter().zip(diff_ids).zip(&chains) {
        if let Some(unpacked) = layer.unpacked {
            total += take_unpacked(stage, snapshots, layer, unpacked, diff_id, chain)?;
            continue;
        }
        let already = stage.snapshots.get(chain).map(|s| s.size).or_else(|| {
            if snapshots.exists(chain) {
                snapshots.size(chain).ok()
            } else {
                None
            }
        });
        let dir = match already {
            Some(size) => {
                total += size;
                None
            }
            None => Some(stage.temp_path("snapshot")),
        };
        jobs.push(LayerJob {
            layer,
            diff_id,
            dir,
        });
    }
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
        .min(jobs.len().max(1));
    let results = run_jobs(&jobs, workers);
    for ((job, chain), result) in jobs.iter().zip(&chains).zip(results) {
        let size = result?;
        if let Some(dir) = &job.dir {
            total += size;
            stage.snapshots.insert(
                chain.clone(),
                StagedSnapshot {
                    dir: dir.clone(),
                    size,
                },
            );
        }
    }
    Ok(i64::try_from(total).unwrap_or(i64::MAX))
}

/// Uses a layer a pull unpacked already: checks its diff id and, unless the snapshot exists,
/// moves its directory into the stage. Returns the layer's unpacked size.
fn take_unpacked(
    stage: &mut Stage,
    snapshots: &SnapshotStore,
    layer: &LayerSource<'_>,
    unpacked: &UnpackedLayer,
    diff_id: &str,
    chain: &str,
) -> Result<u64, ImageError> {
    if unpacked.diff_id != diff_id {
        return Err(ImageError::archive(format!(
            "layer {} ({}): uncompressed content digest mismatch: expected {diff_id} (config diff id) got {}",
            layer.digest, layer.media_type, unpacked.diff_id
        )));
    }
    if let Some(staged) = stage.snapshots.get(chain) {
        return Ok(staged.size);
    }
    if snapshots.exists(chain) {
        return snapshots.size(chain);
    }
    let dir = stage.temp_path("snapshot");
    fs::rename(&unpacked.dir, &dir).ctx(|| {
        format!(
            "moving the unpacked layer {} into {}",
            unpacked.dir.display(),
            dir.display()
        )
    })?;
    stage.snapshots.insert(
        chain.to_string(),
        StagedSnapshot {
            dir,
            size: unpacked.size,
        },
    );
    Ok(unpacked.size)
}

/// Runs the jobs on `workers` threads (job i on worker i mod workers); results in job order.
fn run_jobs(jobs: &[LayerJob<'_>], workers: usize) -> Vec<Result<u64, ImageError>> {
    if workers <= 1 {
        return jobs.iter().map(verify_and_unpack).collect();
    }
    let mut results: Vec<Option<Result<u64, ImageError>>> = jobs.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                scope.spawn(move || {
                    jobs.iter()
                        .enumerate()
                        .skip(w)
                        .step_by(workers)
                        .map(|(i, job)| (i, verify_and_unpack(job)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            // A panicked worker leaves its results None: reported below.
            if let Ok(done) = handle.join() {
                for (i, r) in done {
                    results[i] = Some(r);
                }
            }
        }
    });
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(ImageError::archive(
                    "unpacking a layer panicked".to_string(),
                ))
            })
        })
        .collect()
}

/// Verifies one layer's diff id, unpacking it into `job.dir` when set; its unpacked size.
fn verify_and_unpack(job: &LayerJob<'_>) -> Result<u64, ImageError> {
    let layer = job.layer;
    let what = format!("layer {} ({})", layer.digest, layer.media_type);
    let file = File::open(layer.path).ctx(|| format!("opening {}", layer.path.display()))?;
    // Large reads: the layer is read once, front to back.
    let mut buffered = BufReader::with_capacity(1 << 20, file);
    // An uncompressed layer's diff id is its blob digest, which every caller verified when
    // the blob was stored: it is not hashed again.
    let plain = unpack::peek_compression(&mut buffered, &what)? == unpack::Compression::None;
    let reader = unpack::decompressed(buffered, &what)?;
    let (got, size) = if plain {
        let size = match &job.dir {
            Some(dir) => unpack_to(reader, dir, &what)?,
            None => 0,
        };
        (layer.digest.to_string(), size)
    } else {
        let mut hashing = HashingReader::new(reader);
        let size = match &job.dir {
            Some(dir) => unpack_to(&mut hashing, dir, &what)?,
            None => 0,
        };
        let (got, _) = hashing
            .drain_and_finish()
            .map_err(|e| crate::stage::read_error(&what, e))?;
        (got, size)
    };
    if got != job.diff_id {
        return Err(ImageError::archive(format!(
            "{what}: uncompressed content digest mismatch: expected {} (config diff id) got {got}",
            job.diff_id
        )));
    }
    Ok(size)
}

/// Unpacks a layer stream into `dir/fs` and records its size in `dir/size`.
fn unpack_to(reader: impl std::io::Read, dir: &Path, what: &str) -> Result<u64, ImageError> {
    let fs_dir = dir.join("fs");
    fs::create_dir_all(&fs_dir).ctx(|| format!("creating {}", fs_dir.display()))?;
    let size = unpack::unpack_layer(reader, &fs_dir, what)?;
    fs::write(dir.join("size"), size.to_string()).ctx(|| format!("writing {}", dir.display()))?;
    Ok(size)
}
