//! Saving images as one tar that is both a docker-archive (`manifest.json`, `repositories`)
//! and an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/*`), as Docker 25+
//! writes it, so `docker load`, `skopeo ... docker-archive:` and `skopeo ... oci-archive:` all
//! read it.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};

use serde_json::json;

use crate::config::{
    self, Descriptor, DockerArchiveEntry, Index, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME,
};
use crate::content::ContentStore;
use crate::digest;
use crate::image::Image;
use crate::index::ImageRecord;
use crate::reference::Reference;
use crate::ImageError;

/// Writes `images` (each with the tags to record for it) to `out`.
pub(crate) fn write_archive(
    content: &ContentStore,
    images: &[(Image, Vec<String>)],
    records: &[ImageRecord],
    out: impl Write,
) -> Result<(), ImageError> {
    let mut tar = tar::Builder::new(out);
    let werr = |e: std::io::Error| ImageError::io("writing the image archive", e);
    append_dir(&mut tar, "blobs/").map_err(werr)?;
    append_dir(&mut tar, "blobs/sha256/").map_err(werr)?;

    let mut written: HashSet<String> = HashSet::new();
    let mut index_entries = Vec::new();
    let mut docker_entries = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();

    for ((image, tags), rec) in images.iter().zip(records) {
        let manifest_bytes = content.read_verified(&rec.manifest_digest)?;
        let manifest_media_type = serde_json::from_slice::<serde_json::Value>(&manifest_bytes)
            .ok()
            .and_then(|v| {
                v.get("mediaType")
                    .and_then(|m| m.as_str())
                    .map(String::from)
            })
            .unwrap_or_else(|| config::OCI_MANIFEST.to_string());
        let mut blobs = vec![rec.manifest_digest.clone(), image.id.clone()];
        blobs.extend(rec.layers.iter().cloned());
        for d in &blobs {
            if written.insert(d.clone()) {
                append_blob(&mut tar, content, d)?;
            }
        }
        let descriptor = Descriptor {
            media_type: manifest_media_type,
            digest: rec.manifest_digest.clone(),
            size: manifest_bytes.len() as i64,
            ..Default::default()
        };
        if tags.is_empty() {
            index_entries.push(descriptor.clone());
        }
        for t in tags {
            let r = Reference::parse(t)?;
            let mut d = descriptor.clone();
            d.annotations
                .insert(ANNOTATION_IMAGE_NAME.to_string(), r.full_tagged());
            d.annotations.insert(
                ANNOTATION_REF_NAME.to_string(),
                r.tag_or_default().to_string(),
            );
            index_entries.push(d);
            if let Some(top) = rec.layers.last() {
                let hex = top.strip_prefix(digest::SHA256).unwrap_or(top);
                repositories
                    .entry(r.familiar_name())
                    .or_default()
                    .insert(r.tag_or_default().to_string(), hex.to_string());
            }
        }
        docker_entries.push(DockerArchiveEntry {
            config: blob_name(&image.id)?,
            repo_tags: Some(tags.clone()),
            layers: rec
                .layers
                .iter()
                .map(|l| blob_name(l))
                .collect::<Result<_, _>>()?,
        });
    }

    let index = Index {
        schema_version: 2,
        media_type: Some(config::OCI_INDEX.to_string()),
        manifests: index_entries,
    };
    let ser = |v: serde_json::Result<Vec<u8>>| {
        v.map_err(|e| ImageError::Corrupt(format!("serializing archive metadata: {e}")))
    };
    append_bytes(&mut tar, "index.json", &ser(serde_json::to_vec(&index))?).map_err(werr)?;
    append_bytes(
        &mut tar,
        "manifest.json",
        &ser(serde_json::to_vec(&docker_entries))?,
    )
    .map_err(werr)?;
    append_bytes(
        &mut tar,
        "oci-layout",
        &ser(serde_json::to_vec(&json!({"imageLayoutVersion": "1.0.0"})))?,
    )
    .map_err(werr)?;
    if !repositories.is_empty() {
        append_bytes(
            &mut tar,
            "repositories",
            &ser(serde_json::to_vec(&repositories))?,
        )
        .map_err(werr)?;
    }
    tar.into_inner().and_then(|mut w| w.flush()).map_err(werr)?;
    Ok(())
}

fn blob_name(digest: &str) -> Result<String, ImageError> {
    Ok(format!("blobs/sha256/{}", digest::hex_of(digest)?))
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> std::io::Result<()> {
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    tar.append_data(&mut h, path, std::io::empty())
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut h = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
    tar.append_data(&mut h, path, bytes)
}

fn append_blob<W: Write>(
    tar: &mut tar::Builder<W>,
    content: &ContentStore,
    digest: &str,
) -> Result<(), ImageError> {
    let size = content.size(digest)?;
    let file = content.open_blob(digest)?;
    let mut h = header(tar::EntryType::Regular, 0o644, size);
    // A blob that changed size under us would corrupt the archive: read exactly `size` bytes.
    tar.append_data(&mut h, blob_name(digest)?, file.take(size))
        .map_err(|e| ImageError::io(format!("writing blob {digest} to the archive"), e))
}
