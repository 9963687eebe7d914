//! `berth build`: sends the context (honouring `.dockerignore`) to the engine's `POST /build`
//! and prints its progress, either as Docker's classic builder does or, with
//! `--progress plain`, in BuildKit's plain style (`#N [i/n] RUN ...`, `#N CACHED`,
//! `#N DONE 0.3s`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use berth_build::IgnoreMatcher;
use berth_engine_client::client::stream_body;
use berth_engine_client::EngineClient;
use bytes::Bytes;
use clap::Args;
use futures_util::StreamExt;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (`name:tag`); may be given several times.
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile).
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// Set a build-time variable (`KEY=VALUE`, or `KEY` to take it from the environment).
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Build up to this stage.
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use the layer cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Progress output: auto, tty (Docker's classic output) or plain (BuildKit-like).
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Network of RUN steps: none (default), host or bridge.
    #[arg(long, default_value = "none")]
    pub network: String,
    /// Print only the image id.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Build context directory.
    pub context: String,
}

/// The context as a tar (in memory), `.dockerignore` applied; the Dockerfile's name in it.
fn context_tar(dir: &Path, dockerfile: Option<&str>) -> Result<(Vec<u8>, String)> {
    let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(text) => IgnoreMatcher::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?,
        Err(_) => IgnoreMatcher::default(),
    };
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    // The Dockerfile: inside the context, or added under a private name.
    let (df_name, outside) = match dockerfile {
        None => ("Dockerfile".to_string(), None),
        Some(f) => {
            let p = PathBuf::from(f);
            let abs = std::fs::canonicalize(&p).with_context(|| format!("open Dockerfile {f}"))?;
            let ctx = std::fs::canonicalize(dir)?;
            match abs.strip_prefix(&ctx) {
                Ok(rel) => (rel.to_string_lossy().into_owned(), None),
                Err(_) => (".berth-dockerfile".to_string(), Some(abs)),
            }
        }
    };
    if outside.is_none() && !dir.join(&df_name).is_file() {
        bail!(
            "cannot find the Dockerfile {}: give it with -f",
            dir.join(&df_name).display()
        );
    }
    walk(&mut b, dir, Path::new(""), &ignore, &df_name)?;
    if let Some(abs) = outside {
        b.append_path_with_name(&abs, &df_name)?;
    }
    Ok((b.into_inner()?, df_name))
}

fn walk(
    b: &mut tar::Builder<Vec<u8>>,
    base: &Path,
    rel: &Path,
    ignore: &IgnoreMatcher,
    dockerfile: &str,
) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(base.join(rel))
        .with_context(|| format!("reading {}", base.join(rel).display()))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let r = rel.join(e.file_name());
        let rs = r.to_string_lossy();
        let keep = rs == dockerfile || rs == ".dockerignore";
        let excluded = !keep && ignore.is_excluded(&rs);
        let is_dir = e.file_type()?.is_dir();
        if excluded && !(is_dir && ignore.has_exceptions()) {
            continue;
        }
        if !excluded {
            b.append_path_with_name(e.path(), &r)
                .with_context(|| format!("adding {} to the context", r.display()))?;
        }
        if is_dir {
            walk(b, base, &r, ignore, dockerfile)?;
        }
    }
    Ok(())
}

/// Turns Docker's classic step lines into BuildKit's plain style.
struct Plain {
    step: usize,
    started: Instant,
    open: bool,
}

impl Plain {
    fn finish(&mut self, out: &mut impl std::io::Write) {
        if self.open {
            let _ = writeln!(
                out,
                "#{} DONE {:.1}s",
                self.step,
                self.started.elapsed().as_secs_f64()
            );
            self.open = false;
        }
    }

    fn line(&mut self, l: &str, out: &mut impl std::io::Write) {
        if let Some(rest) = l.strip_prefix("Step ") {
            self.finish(out);
            if let Some((nums, text)) = rest.split_once(" : ") {
                self.step = nums
                    .split('/')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(self.step + 1);
                let _ = writeln!(out, "#{} [{nums}] {text}", self.step);
                self.started = Instant::now();
                self.open = true;
                return;
            }
        }
        if l.trim() == "---> Using cache" {
            let _ = writeln!(out, "#{} CACHED", self.step);
            self.open = false;
            return;
        }
        if l.trim_start().starts_with("--->") || l.starts_with("Removing intermediate container") {
            return;
        }
        if l.starts_with("Successfully built") {
            self.finish(out);
            return;
        }
        if let Some(t) = l.strip_prefix("Successfully tagged ") {
            let _ = writeln!(out, "#{} naming to {t} done", self.step + 1);
            return;
        }
        let _ = writeln!(out, "#{} {l}", self.step);
    }
}

pub async fn build(client: &EngineClient, args: BuildArgs) -> Result<i32> {
    let dir = PathBuf::from(&args.context);
    if !dir.is_dir() {
        bail!(
            "unable to prepare context: path {:?} not found",
            args.context
        );
    }
    let plain = match args.progress.as_str() {
        "plain" => true,
        "auto" | "tty" => false,
        other => bail!("invalid --progress {other:?}: use auto, tty or plain"),
    };
    let (d, f) = (dir.clone(), args.file.clone());
    let (tar, df_name) =
        tokio::task::spawn_blocking(move || context_tar(&d, f.as_deref())).await??;
    let mut build_args = serde_json::Map::new();
    for a in &args.build_args {
        match a.split_once('=') {
            Some((k, v)) => build_args.insert(k.to_string(), serde_json::Value::String(v.into())),
            None => build_args.insert(
                a.clone(),
                std::env::var(a)
                    .map(serde_json::Value::String)
                    .unwrap_or(serde_json::Value::Null),
            ),
        };
    }
    let mut params: Vec<(&str, String)> = args.tags.iter().map(|t| ("t", t.clone())).collect();
    params.push(("dockerfile", df_name));
    if !build_args.is_empty() {
        params.push((
            "buildargs",
            serde_json::Value::Object(build_args).to_string(),
        ));
    }
    if let Some(t) = &args.target {
        params.push(("target", t.clone()));
    }
    if args.no_cache {
        params.push(("nocache", "1".into()));
    }
    params.push(("networkmode", args.network.clone()));
    let body = stream_body(futures_util::stream::once(async move {
        Ok::<Bytes, std::io::Error>(Bytes::from(tar))
    }));
    let mut stream = client.build(&params, body).await?;
    let mut buf: Vec<u8> = Vec::new();
    let mut id = None;
    let mut failed = None;
    let mut plain_state = Plain {
        step: 0,
        started: Instant::now(),
        open: false,
    };
    let mut pending = String::new();
    let stdout = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let v: serde_json::Value = match serde_json::from_str(text) {
                Ok(v) => v,
                Err(_) => continue,
            };
            if let Some(s) = v.get("stream").and_then(|s| s.as_str()) {
                if args.quiet {
                    continue;
                }
                let mut out = stdout.lock();
                if plain {
                    pending.push_str(s);
                    while let Some(i) = pending.find('\n') {
                        let l: String = pending.drain(..=i).collect();
                        plain_state.line(l.trim_end_matches('\n'), &mut out);
                    }
                } else {
                    let _ = out.write_all(s.as_bytes());
                }
                let _ = out.flush();
            } else if let Some(aux) = v.get("aux") {
                id = aux.get("ID").and_then(|i| i.as_str()).map(str::to_string);
                if plain && !args.quiet {
                    if let Some(i) = &id {
                        let mut out = stdout.lock();
                        plain_state.finish(&mut out);
                        let _ = writeln!(out, "#{} writing image {i} done", plain_state.step + 1);
                    }
                }
            } else if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
                failed = Some(e.to_string());
            }
        }
    }
    if let Some(e) = failed {
        crate::errln!("{e}");
        return Ok(1);
    }
    match id {
        Some(i) => {
            if args.quiet {
                crate::outln!("{i}");
            }
            Ok(0)
        }
        None => bail!("the build ended without an image id"),
    }
}
