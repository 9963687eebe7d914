//! Image commands: `images`/`image ls`, `image import`, `image load`, `image save`,
//! `image inspect`, `image rm`/`rmi`, `tag` and `image prune` (`image pull`/`push` are in
//! [`crate::distribution`]).
//!
//! Archives are streamed both ways: uploads come from a file, stdin or a directory tarred on the
//! fly ([`crate::tarstream`]); `save` writes the engine's byte stream to a temporary file next to
//! the target and renames it once complete.

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use berth_engine_client::{EngineClient, ImageSummary};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::containers::{self, TypedInspectArgs};
use crate::format::{self, Table};
use crate::{errln, outln, system, tarstream, template};

/// `berth image ...`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Import a root filesystem tarball or directory as an image.
    Import(ImportArgs),
    /// Load images from a tar archive or an OCI layout directory.
    Load(LoadArgs),
    /// Save one or more images to a tar archive.
    Save(SaveArgs),
    /// Display detailed information on one or more images.
    Inspect(TypedInspectArgs),
    /// Remove one or more images.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Remove unused images.
    Prune(PruneArgs),
    /// Download an image from a registry.
    Pull(crate::distribution::PullArgs),
    /// Upload an image to a registry.
    Push(crate::distribution::PushArgs),
}

/// `berth images`.
#[derive(Debug, Clone, Args)]
pub struct LsArgs {
    /// Show all images.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only show image IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output using a Go template (fields: ID, Repository, Tag, CreatedSince, CreatedAt,
    /// Size).
    #[arg(long)]
    pub format: Option<String>,
    /// Only show images of this repository (REPOSITORY[:TAG]).
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// `berth image import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// A rootfs tarball (.tar or .tar.gz), a directory, or - for stdin.
    #[arg(value_name = "SRC")]
    pub src: String,
    /// The image name.
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
    /// The image name (alternative to the positional argument).
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tag: Option<String>,
}

/// `berth image load`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Read from a tar archive file or an OCI layout directory, instead of stdin.
    #[arg(short = 'i', long = "input", value_name = "ARCHIVE")]
    pub input: Option<String>,
    /// Suppress the load output.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `berth image save`.
#[derive(Debug, Clone, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// `berth image rm`.
#[derive(Debug, Clone, Args)]
pub struct RmArgs {
    /// Force removal of the image.
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// `berth tag`.
#[derive(Debug, Clone, Args)]
pub struct TagArgs {
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

/// `berth image prune`.
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// Runs an `image` subcommand.
pub async fn dispatch(client: &EngineClient, cmd: ImageCommand) -> Result<i32> {
    match cmd {
        ImageCommand::Ls(a) => ls(client, a).await,
        ImageCommand::Import(a) => import(client, a).await,
        ImageCommand::Load(a) => load(client, a).await,
        ImageCommand::Save(a) => save(client, a).await,
        ImageCommand::Inspect(a) => containers::inspect(client, a.into_inspect("image")).await,
        ImageCommand::Rm(a) => rm(client, a).await,
        ImageCommand::Tag(a) => tag(client, a).await,
        ImageCommand::Prune(a) => prune(client, a).await,
        ImageCommand::Pull(a) => crate::distribution::pull(client, a).await,
        ImageCommand::Push(a) => crate::distribution::push(client, a).await,
    }
}

/// Splits `name[:tag]` (the tag is after the last `:` that follows the last `/`).
pub fn split_reference(reference: &str) -> (String, Option<String>) {
    let name_part = reference.split('@').next().unwrap_or(reference);
    let slash = name_part.rfind('/').map(|i| i + 1).unwrap_or(0);
    match name_part[slash..].rfind(':') {
        Some(i) => (
            name_part[..slash + i].to_string(),
            Some(name_part[slash + i + 1..].to_string()),
        ),
        None => (name_part.to_string(), None),
    }
}

/// The (repository, tag) rows of one image: one per tag, or `<none>`.
fn image_rows(img: &ImageSummary) -> Vec<(String, String)> {
    if img.repo_tags.is_empty() {
        return vec![("<none>".into(), "<none>".into())];
    }
    img.repo_tags
        .iter()
        .map(|t| {
            let (repo, tag) = split_reference(t);
            (repo, tag.unwrap_or_else(|| "<none>".into()))
        })
        .collect()
}

/// `berth images`.
pub async fn ls(client: &EngineClient, args: LsArgs) -> Result<i32> {
    let mut images = client.list_images(args.all).await?;
    images.sort_by_key(|i| std::cmp::Reverse(i.created));
    let filter = args.reference.as_deref().map(split_reference);
    let now = format::now_unix();
    let mut rows = Vec::new();
    for img in &images {
        for (repo, tag) in image_rows(img) {
            if let Some((frepo, ftag)) = &filter {
                if &repo != frepo || ftag.as_ref().is_some_and(|t| t != &tag) {
                    continue;
                }
            }
            rows.push((repo, tag, img));
        }
    }
    let id_of = |img: &ImageSummary| {
        if args.no_trunc {
            img.id.clone()
        } else {
            format::short_id(&img.id)
        }
    };
    if args.quiet {
        for (_, _, img) in &rows {
            outln!("{}", id_of(img));
        }
        return Ok(0);
    }
    if let Some(fmt) = &args.format {
        let tpl = template::Template::parse(fmt.strip_prefix("table ").unwrap_or(fmt))?;
        for (repo, tag, img) in &rows {
            let v = json!({
                "ID": id_of(img),
                "Repository": repo,
                "Tag": tag,
                "CreatedSince": format::ago(img.created, now),
                "CreatedAt": chrono::DateTime::from_timestamp(img.created, 0)
                    .map(|d| d.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S %z %Z").to_string())
                    .unwrap_or_default(),
                "Size": format::human_size(img.size as f64),
                "Digest": img.repo_digests.first().cloned().unwrap_or_else(|| "<none>".into()),
            });
            outln!("{}", tpl.render(&v)?);
        }
        return Ok(0);
    }
    let mut t = Table::new(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    for (repo, tag, img) in rows {
        t.row(vec![
            repo,
            tag,
            id_of(img),
            format::ago(img.created, now),
            format::human_size(img.size as f64),
        ]);
    }
    let _ = t.print();
    Ok(0)
}

/// `berth image import`: prints the new image id.
pub async fn import(client: &EngineClient, args: ImportArgs) -> Result<i32> {
    let tag = match (&args.tag, &args.reference) {
        (Some(_), Some(_)) => {
            bail!("give the image name either as an argument or with --tag, not both")
        }
        (Some(t), None) | (None, Some(t)) => t.clone(),
        (None, None) => String::new(),
    };
    if args.src == "-" && std::io::stdin().is_terminal() {
        bail!("requested import from stdin, but stdin is a terminal");
    }
    let body = tarstream::path_body(&args.src).await?;
    let loaded = client.import_image(&tag, body).await?;
    outln!("{}", loaded.id);
    Ok(0)
}

/// `berth image load`.
pub async fn load(client: &EngineClient, args: LoadArgs) -> Result<i32> {
    let body = match &args.input {
        Some(path) => tarstream::path_body(path).await?,
        None => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            tarstream::file_body("-").await?
        }
    };
    let loaded = client.load_images(body).await?;
    for img in &loaded.images {
        if img.repo_tags.is_empty() {
            outln!("Loaded image ID: {}", img.id);
        }
        for t in &img.repo_tags {
            outln!("Loaded image: {t}");
        }
    }
    Ok(0)
}

/// `berth image save`.
pub async fn save(client: &EngineClient, args: SaveArgs) -> Result<i32> {
    match &args.output {
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut stream = client.save_images(&args.images).await?;
            let mut out = tokio::io::stdout();
            while let Some(chunk) = stream.next().await {
                out.write_all(&chunk?).await.context("write to stdout")?;
            }
            out.flush().await.context("write to stdout")?;
        }
        Some(path) => {
            let target = std::path::Path::new(path);
            let dir = match target.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => std::path::PathBuf::from("."),
            };
            let file_name = target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "archive".into());
            let tmp = dir.join(format!(".{file_name}.berth-tmp-{}", std::process::id()));
            let mut stream = client.save_images(&args.images).await?;
            let result = async {
                let mut f = tokio::fs::File::create(&tmp)
                    .await
                    .with_context(|| format!("failed to save image: create {path}"))?;
                while let Some(chunk) = stream.next().await {
                    f.write_all(&chunk?)
                        .await
                        .with_context(|| format!("failed to save image: write {path}"))?;
                }
                f.sync_all()
                    .await
                    .with_context(|| format!("failed to save image: write {path}"))?;
                tokio::fs::rename(&tmp, target)
                    .await
                    .with_context(|| format!("failed to save image: rename to {path}"))?;
                anyhow::Ok(())
            }
            .await;
            if result.is_err() {
                let _ = tokio::fs::remove_file(&tmp).await;
            }
            result?;
        }
    }
    Ok(0)
}

/// `berth image rm` / `berth rmi`.
pub async fn rm(client: &EngineClient, args: RmArgs) -> Result<i32> {
    let mut code = 0;
    for name in &args.images {
        match client.remove_image(name, args.force).await {
            Ok(items) => {
                for item in items {
                    if let Some(u) = item.untagged {
                        outln!("Untagged: {u}");
                    }
                    if let Some(d) = item.deleted {
                        outln!("Deleted: {d}");
                    }
                }
            }
            Err(e) => {
                errln!("{e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// `berth tag`.
pub async fn tag(client: &EngineClient, args: TagArgs) -> Result<i32> {
    let (repo, tag) = split_reference(&args.target);
    if repo.is_empty() {
        bail!("invalid reference format: {:?}", args.target);
    }
    client
        .tag_image(&args.source, &repo, tag.as_deref().unwrap_or("latest"))
        .await?;
    Ok(0)
}

/// `berth image prune`.
pub async fn prune(client: &EngineClient, args: PruneArgs) -> Result<i32> {
    let warning = if args.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !args.force && !system::confirm(warning)? {
        return Ok(0);
    }
    let report = client.prune_images(args.all).await?;
    if !report.images_deleted.is_empty() {
        outln!("Deleted Images:");
        for i in &report.images_deleted {
            outln!("deleted: {i}");
        }
        outln!();
    }
    outln!(
        "Total reclaimed space: {}",
        format::human_size(report.space_reclaimed as f64)
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_references() {
        assert_eq!(split_reference("alpine"), ("alpine".into(), None));
        assert_eq!(
            split_reference("alpine:3.19"),
            ("alpine".into(), Some("3.19".into()))
        );
        assert_eq!(
            split_reference("reg:5000/a/b:tag"),
            ("reg:5000/a/b".into(), Some("tag".into()))
        );
        assert_eq!(
            split_reference("reg:5000/a/b"),
            ("reg:5000/a/b".into(), None)
        );
    }

    #[test]
    fn rows_per_tag() {
        let img = ImageSummary {
            repo_tags: vec!["a:1".into(), "b:latest".into()],
            ..Default::default()
        };
        assert_eq!(
            image_rows(&img),
            vec![("a".into(), "1".into()), ("b".into(), "latest".into())]
        );
        assert_eq!(
            image_rows(&ImageSummary::default()),
            vec![("<none>".into(), "<none>".into())]
        );
    }
}
