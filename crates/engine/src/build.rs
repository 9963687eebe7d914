//! `POST /build`: Docker's classic builder in the engine. The Dockerfile is parsed by
//! `berth-build`; each step commits an image (as Docker's classic builder does), so a step's
//! cache entry is simply "parent image + instruction (+ args, + copied files) -> image id",
//! stored one file per key under `<root>/build-cache/`.
//!
//! - RUN: a temporary container of this engine from the current image (network per the
//!   request, default `none`); its output is streamed; afterwards its overlay `upper` dir is
//!   turned into a layer (overlay whiteouts -> OCI `.wh.` entries) and the container removed.
//! - COPY/ADD: files are copied into a fresh directory (with `--chown`/`--chmod`), tarred as
//!   the layer; `--from` reads another stage's (or image's) filesystem through a read-only
//!   overlay mount that is unmounted when the step ends.
//! - Everything else changes only the config (history `empty_layer: true`), except WORKDIR of a
//!   directory that does not exist yet, which adds a layer creating it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use berth_build::dockerfile::{CommandForm, Health, Instruction, Kind};
use berth_build::shell::process_word;
use berth_build::{ignore, shell};
use berth_engine_client::{ContainerCreate, HostConfig};
use berth_image::config::{DockerHealthcheck, History, ImageConfigFile};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::error::{EngineError, Result};

/// What `POST /build` asks for.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub tags: Vec<String>,
    /// Path of the Dockerfile inside the context (default `Dockerfile`).
    pub dockerfile: String,
    pub build_args: BTreeMap<String, Option<String>>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// `none` (default), `host` or `bridge`.
    pub network: String,
}

/// One progress message of a build (sent as Docker's JSON lines).
#[derive(Debug, Clone)]
pub enum Progress {
    Stream(String),
    Aux(String),
}

struct Out(mpsc::Sender<Progress>);

impl Out {
    async fn say(&self, s: impl Into<String>) {
        let _ = self.0.send(Progress::Stream(s.into())).await;
    }
}

fn invalid(line: usize, msg: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!("Dockerfile line {line}: {msg}"))
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// The state of the stage being built.
struct StageState {
    /// Current image id; `None` while a `scratch` stage has committed nothing.
    image: Option<String>,
    cfg: ImageConfigFile,
    /// ARGs declared in this stage with their values (`None`: declared, no value).
    args: BTreeMap<String, Option<String>>,
    cmd_set: bool,
}

impl StageState {
    fn env_get(&self, name: &str) -> Option<String> {
        if let Some(env) = &self.cfg.config.env {
            for kv in env.iter().rev() {
                if let Some((k, v)) = kv.split_once('=') {
                    if k == name {
                        return Some(v.to_string());
                    }
                }
            }
        }
        self.args.get(name).cloned().flatten()
    }

    fn expand(&self, s: &str, escape: char, line: usize) -> Result<String> {
        process_word(s, escape, &|n: &str| self.env_get(n)).map_err(|e| invalid(line, e))
    }

    fn expand_words(&self, s: &str, escape: char, line: usize) -> Result<Vec<String>> {
        shell::process_words(s, escape, &|n: &str| self.env_get(n)).map_err(|e| invalid(line, e))
    }

    /// ARGs with values that ENV does not override: the RUN environment's extra variables.
    fn run_args(&self) -> Vec<String> {
        let env_keys: BTreeSet<String> = self
            .cfg
            .config
            .env
            .iter()
            .flatten()
            .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_string()))
            .collect();
        self.args
            .iter()
            .filter(|(k, _)| !env_keys.contains(*k))
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect()
    }

    fn shell(&self) -> Vec<String> {
        self.cfg
            .config
            .shell
            .clone()
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    fn argv(&self, form: &CommandForm) -> Vec<String> {
        match form {
            CommandForm::Exec(v) => v.clone(),
            CommandForm::Shell(s) => {
                let mut v = self.shell();
                v.push(s.clone());
                v
            }
        }
    }

    fn set_env(&mut self, key: &str, value: &str) {
        let env = self.cfg.config.env.get_or_insert_with(Vec::new);
        let entry = format!("{key}={value}");
        match env
            .iter_mut()
            .find(|kv| kv.split_once('=').map(|(k, _)| k) == Some(key) || kv.as_str() == key)
        {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
    }
}

/// Runs a build; returns the final image id. Progress goes to `tx`.
pub async fn build(
    engine: Arc<Engine>,
    context: PathBuf,
    opts: BuildOptions,
    tx: mpsc::Sender<Progress>,
) -> Result<String> {
    let out = Out(tx);
    let df_name = if opts.dockerfile.is_empty() {
        "Dockerfile".to_string()
    } else {
        opts.dockerfile.clone()
    };
    let df_rel = ignore_clean(&df_name);
    let text = fs::read_to_string(context.join(&df_rel)).map_err(|e| {
        EngineError::Invalid(format!(
            "cannot read the Dockerfile {df_name:?} in the build context: {e}"
        ))
    })?;
    let df = berth_build::parse(&text).map_err(|e| EngineError::Invalid(e.to_string()))?;
    let escape = df.escape;

    // Meta ARGs (before FROM): defaults, overridden by --build-arg.
    let mut meta: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut consumed: BTreeSet<String> = BTreeSet::new();
    for inst in &df.meta_args {
        if let Kind::Arg(list) = &inst.kind {
            for (name, default) in list {
                consumed.insert(name.clone());
                let value = match opts.build_args.get(name) {
                    Some(Some(v)) => Some(v.clone()),
                    _ => match default {
                        Some(d) => Some(
                            process_word(d, escape, &|n: &str| meta.get(n).cloned().flatten())
                                .map_err(|e| invalid(inst.line, e))?,
                        ),
                        None => None,
                    },
                };
                meta.insert(name.clone(), value);
            }
        }
    }

    let last = match &opts.target {
        Some(t) if !t.is_empty() => {
            let t = t.to_ascii_lowercase();
            df.stages
                .iter()
                .position(|s| s.name.as_deref() == Some(t.as_str()))
                .ok_or_else(|| {
                    EngineError::Invalid(format!("target stage {t:?} could not be found"))
                })?
        }
        _ => df.stages.len() - 1,
    };
    let total: usize = df.stages[..=last]
        .iter()
        .map(|s| 1 + s.instructions.len())
        .sum();
    let cache_dir = engine.paths.root.join("build-cache");
    fs::create_dir_all(&cache_dir)?;
    let work = engine
        .paths
        .tmp()
        .join(format!("build-{}", crate::names::new_id()));
    fs::create_dir_all(&work)?;
    let _work_guard = RemoveDir(work.clone());

    let mut stage_images: Vec<Option<String>> = Vec::new();
    let mut step = 0usize;
    let mut final_id = String::new();
    for stage in &df.stages[..=last] {
        step += 1;
        let base = process_word(&stage.base, escape, &|n: &str| {
            meta.get(n).cloned().flatten()
        })
        .map_err(|e| invalid(stage.from.line, e))?;
        out.say(format!("Step {step}/{total} : {}\n", stage.from.text))
            .await;
        let mut st = if base == "scratch" {
            StageState {
                image: None,
                cfg: ImageConfigFile {
                    architecture: berth_image::config::host_architecture().to_string(),
                    os: "linux".into(),
                    ..Default::default()
                },
                args: BTreeMap::new(),
                cmd_set: false,
            }
        } else {
            let by_stage = df.stages[..stage.index]
                .iter()
                .position(|s| s.name.as_deref() == Some(base.to_ascii_lowercase().as_str()))
                .or_else(|| base.parse::<usize>().ok().filter(|i| *i < stage.index));
            let id = match by_stage {
                Some(i) => stage_images[i].clone(),
                None => Some(
                    engine
                        .images
                        .get(&base)
                        .map_err(|_| {
                            EngineError::NotFound(format!(
                                "base image {base:?} (Dockerfile line {}) not found: berth build does not pull; load or import it first",
                                stage.from.line
                            ))
                        })?
                        .id,
                ),
            };
            let cfg = match &id {
                Some(id) => engine.images.config_file(id)?,
                None => ImageConfigFile {
                    architecture: berth_image::config::host_architecture().to_string(),
                    os: "linux".into(),
                    ..Default::default()
                },
            };
            StageState {
                image: id,
                cfg,
                args: BTreeMap::new(),
                cmd_set: false,
            }
        };
        if let Some(id) = &st.image {
            out.say(format!(" ---> {}\n", berth_image::short_id(id)))
                .await;
        }
        for inst in &stage.instructions {
            step += 1;
            let started = Instant::now();
            out.say(format!("Step {step}/{total} : {}\n", inst.text))
                .await;
            if let Kind::Arg(list) = &inst.kind {
                for (name, default) in list {
                    consumed.insert(name.clone());
                    let value = match opts.build_args.get(name) {
                        Some(Some(v)) => Some(v.clone()),
                        _ => match default {
                            Some(d) => Some(st.expand(d, escape, inst.line)?),
                            None => meta.get(name).cloned().flatten(),
                        },
                    };
                    st.args.insert(name.clone(), value);
                }
            }
            let ctx = StepCtx {
                engine: &engine,
                context: &context,
                work: &work,
                escape,
                opts: &opts,
                stage_images: &stage_images,
                stage_names: df.stages[..stage.index]
                    .iter()
                    .map(|s| s.name.clone())
                    .collect(),
                out: &out,
            };
            let id = ctx.step(&mut st, inst, &cache_dir).await?;
            st.image = Some(id.clone());
            tracing::debug!(step, elapsed = ?started.elapsed(), "build step done");
            out.say(format!(" ---> {}\n", berth_image::short_id(&id)))
                .await;
        }
        // A stage without instructions after FROM scratch still needs an image.
        let id = match &st.image {
            Some(id) => id.clone(),
            None => {
                let e = engine.clone();
                let cfg = st.cfg.clone();
                tokio::task::spawn_blocking(move || e.images.commit_layer(None, None, cfg, &[]))
                    .await
                    .map_err(EngineError::internal)??
                    .id
            }
        };
        final_id = id.clone();
        stage_images.push(Some(id));
    }
    let unused: Vec<&String> = opts
        .build_args
        .keys()
        .filter(|k| !consumed.contains(*k) && !PREDEFINED_ARGS.contains(&k.as_str()))
        .collect();
    if !unused.is_empty() {
        out.say(format!(
            "[Warning] One or more build-args [{}] were not consumed\n",
            unused
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ))
        .await;
    }
    let _ = out.0.send(Progress::Aux(final_id.clone())).await;
    out.say(format!(
        "Successfully built {}\n",
        berth_image::short_id(&final_id)
    ))
    .await;
    for t in &opts.tags {
        engine.images.tag(&final_id, t)?;
        let shown = berth_image::reference::Reference::parse(t)
            .map(|r| r.familiar_tagged())
            .unwrap_or_else(|_| t.clone());
        out.say(format!("Successfully tagged {shown}\n")).await;
    }
    Ok(final_id)
}

const PREDEFINED_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn ignore_clean(p: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

struct StepCtx<'a> {
    engine: &'a Arc<Engine>,
    context: &'a Path,
    work: &'a Path,
    escape: char,
    opts: &'a BuildOptions,
    stage_images: &'a [Option<String>],
    stage_names: Vec<Option<String>>,
    out: &'a Out,
}

/// What a step changes besides the config.
enum Layer {
    None,
    Tar(PathBuf),
}

fn cache_key(parent: Option<&str>, inst: &Instruction, st: &StageState, extra: &str) -> String {
    let mut h = Sha256::new();
    h.update(parent.unwrap_or("scratch").as_bytes());
    h.update([0]);
    h.update(inst.text.as_bytes());
    h.update([0]);
    for (k, v) in &st.args {
        h.update(format!("{k}={v:?}\n").as_bytes());
    }
    h.update([0]);
    h.update(extra.as_bytes());
    hex::encode(h.finalize())
}

impl StepCtx<'_> {
    async fn step(
        &self,
        st: &mut StageState,
        inst: &Instruction,
        cache_dir: &Path,
    ) -> Result<String> {
        let parent = st.image.clone();
        let line = inst.line;
        // COPY's cache key covers the copied files.
        let mut extra = String::new();
        let mut copy_plan: Option<CopyPlan> = None;
        let mut from_guard: Option<MountGuard> = None;
        if let Kind::Copy {
            add,
            sources,
            dest,
            from,
            chown,
            chmod,
        } = &inst.kind
        {
            let (root, guard) = match from {
                None => (self.context.to_path_buf(), None),
                Some(f) => {
                    let f = st.expand(f, self.escape, line)?;
                    self.stage_root(&f, line).await?
                }
            };
            from_guard = guard;
            let mut srcs = Vec::new();
            for s in sources {
                srcs.push(st.expand(s, self.escape, line)?);
            }
            let dest = st.expand(dest, self.escape, line)?;
            let plan = CopyPlan {
                add: *add,
                root,
                sources: srcs,
                dest,
                workdir: st.cfg.config.working_dir.clone(),
                chown: chown
                    .as_ref()
                    .map(|c| st.expand(c, self.escape, line))
                    .transpose()?,
                chmod: chmod.clone(),
                line,
            };
            let p = plan.clone();
            extra = tokio::task::spawn_blocking(move || p.digest())
                .await
                .map_err(EngineError::internal)??;
            copy_plan = Some(plan);
        }
        let key = cache_key(parent.as_deref(), inst, st, &extra);
        let cache_file = cache_dir.join(&key);
        if !self.opts.no_cache {
            if let Ok(id) = fs::read_to_string(&cache_file) {
                let id = id.trim().to_string();
                if let Ok(cfg) = self.engine.images.config_file(&id) {
                    if self.engine.images.get(&id).is_ok() {
                        self.out.say(" ---> Using cache\n").await;
                        self.apply_cached(st, inst);
                        st.cfg = cfg;
                        return Ok(id);
                    }
                }
            }
        }
        let mut layer = Layer::None;
        let mut created_by = format!("/bin/sh -c #(nop)  {}", inst.text);
        match &inst.kind {
            Kind::From => {}
            Kind::Run(form) => {
                let argv = st.argv(form);
                let args = st.run_args();
                created_by = if args.is_empty() {
                    argv.join(" ")
                } else {
                    format!("|{} {} {}", args.len(), args.join(" "), argv.join(" "))
                };
                layer = self.run(st, argv, args, line).await?;
            }
            Kind::Copy { .. } => {
                let plan = copy_plan
                    .take()
                    .ok_or_else(|| EngineError::internal("no copy plan"))?;
                let parent_layers = self.layers_of(parent.as_deref())?;
                let dir = self.work.join(format!("copy-{}", crate::names::new_id()));
                let tar = self
                    .work
                    .join(format!("layer-{}.tar", crate::names::new_id()));
                let (d, t) = (dir.clone(), tar.clone());
                let engine_dir = self.work.to_path_buf();
                tokio::task::spawn_blocking(move || {
                    let r = plan.execute(&d, &parent_layers, &engine_dir).and_then(|_| {
                        write_tar(&d, &t, false)
                            .map_err(|e| EngineError::Internal(format!("writing the layer: {e}")))
                    });
                    let _ = fs::remove_dir_all(&d);
                    r
                })
                .await
                .map_err(EngineError::internal)??;
                drop(from_guard.take());
                created_by = format!("/bin/sh -c #(nop) {}", inst.text);
                layer = Layer::Tar(tar);
            }
            Kind::Env(pairs) => {
                let mut values = Vec::new();
                for (k, v) in pairs {
                    values.push((
                        st.expand(k, self.escape, line)?,
                        st.expand(v, self.escape, line)?,
                    ));
                }
                for (k, v) in values {
                    st.set_env(&k, &v);
                }
            }
            Kind::Arg(_) => {}
            Kind::Workdir(w) => {
                let w = st.expand(w, self.escape, line)?;
                let new = if w.starts_with('/') {
                    w
                } else {
                    let cur = if st.cfg.config.working_dir.is_empty() {
                        "/".to_string()
                    } else {
                        st.cfg.config.working_dir.clone()
                    };
                    format!("{}/{}", cur.trim_end_matches('/'), w)
                };
                let clean = format!("/{}", ignore_clean(&new).display());
                st.cfg.config.working_dir = clean.clone();
                let layers = self.layers_of(parent.as_deref())?;
                let rel = clean.trim_start_matches('/').to_string();
                if !rel.is_empty()
                    && crate::rootfs::find_in_layers(self.work, &layers, &rel).is_none()
                {
                    let dir = self.work.join(format!("wd-{}", crate::names::new_id()));
                    let tar = self
                        .work
                        .join(format!("layer-{}.tar", crate::names::new_id()));
                    let (d, t) = (dir.clone(), tar.clone());
                    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                        fs::create_dir_all(d.join(&rel))?;
                        let r = write_tar(&d, &t, false);
                        let _ = fs::remove_dir_all(&d);
                        r
                    })
                    .await
                    .map_err(EngineError::internal)??;
                    layer = Layer::Tar(tar);
                }
            }
            Kind::User(u) => st.cfg.config.user = st.expand(u, self.escape, line)?,
            Kind::StopSignal(s) => {
                let s = st.expand(s, self.escape, line)?;
                crate::prepare::parse_signal(&s).map_err(|e| invalid(line, e))?;
                st.cfg.config.stop_signal = s;
            }
            Kind::Expose(words) => {
                let mut new = Vec::new();
                for w in words {
                    for p in st.expand_words(w, self.escape, line)? {
                        new.extend(expose_ports(&p).map_err(|e| invalid(line, e))?);
                    }
                }
                let ports = st
                    .cfg
                    .config
                    .exposed_ports
                    .get_or_insert_with(BTreeMap::new);
                for port in new {
                    ports.insert(port, serde_json::json!({}));
                }
            }
            Kind::Volume(words) => {
                let mut vols = Vec::new();
                for w in words {
                    vols.extend(st.expand_words(w, self.escape, line)?);
                }
                let map = st.cfg.config.volumes.get_or_insert_with(BTreeMap::new);
                for v in vols {
                    map.insert(v, serde_json::json!({}));
                }
            }
            Kind::Label(pairs) => {
                let mut values = Vec::new();
                for (k, v) in pairs {
                    values.push((
                        st.expand(k, self.escape, line)?,
                        st.expand(v, self.escape, line)?,
                    ));
                }
                let labels = st.cfg.config.labels.get_or_insert_with(BTreeMap::new);
                for (k, v) in values {
                    labels.insert(k, v);
                }
            }
            Kind::Cmd(form) => {
                st.cfg.config.cmd = Some(st.argv(form));
                st.cmd_set = true;
            }
            Kind::Entrypoint(form) => {
                st.cfg.config.entrypoint = Some(st.argv(form));
                if !st.cmd_set {
                    st.cfg.config.cmd = None;
                }
            }
            Kind::Shell(v) => st.cfg.config.shell = Some(v.clone()),
            Kind::Healthcheck(h) => st.cfg.config.healthcheck = Some(healthcheck(h, line)?),
        }
        let empty_layer = matches!(layer, Layer::None);
        st.cfg.created = Some(now());
        st.cfg.history.push(History {
            created: st.cfg.created.clone(),
            created_by: Some(created_by),
            comment: None,
            empty_layer,
        });
        let e = self.engine.clone();
        let cfg = st.cfg.clone();
        let p = parent.clone();
        let image = tokio::task::spawn_blocking(move || {
            let tar = match &layer {
                Layer::Tar(t) => Some(t.as_path()),
                Layer::None => None,
            };
            let r = e.images.commit_layer(p.as_deref(), tar, cfg, &[]);
            if let Layer::Tar(t) = &layer {
                let _ = fs::remove_file(t);
            }
            r
        })
        .await
        .map_err(EngineError::internal)??;
        let tmp = cache_file.with_extension("tmp");
        if fs::write(&tmp, &image.id).is_ok() {
            let _ = fs::rename(&tmp, &cache_file);
        }
        Ok(image.id)
    }

    /// Keeps the stage's bookkeeping that is not in the config on a cache hit.
    fn apply_cached(&self, st: &mut StageState, inst: &Instruction) {
        if let Kind::Cmd(_) = inst.kind {
            st.cmd_set = true;
        }
    }

    fn layers_of(&self, image: Option<&str>) -> Result<Vec<PathBuf>> {
        match image {
            None => Ok(Vec::new()),
            Some(id) => {
                let img = self.engine.images.get(id)?;
                Ok(self.engine.images.layer_paths(&img)?)
            }
        }
    }

    /// The filesystem of `--from=NAME` (a stage name or index, or an image).
    async fn stage_root(&self, from: &str, line: usize) -> Result<(PathBuf, Option<MountGuard>)> {
        let lower = from.to_ascii_lowercase();
        let idx = self
            .stage_names
            .iter()
            .position(|n| n.as_deref() == Some(lower.as_str()))
            .or_else(|| {
                from.parse::<usize>()
                    .ok()
                    .filter(|i| *i < self.stage_images.len())
            });
        let image = match idx {
            Some(i) => self.stage_images[i].clone(),
            None => Some(
                self.engine
                    .images
                    .get(from)
                    .map_err(|_| {
                        invalid(
                            line,
                            format!("COPY --from={from}: no such stage or image (berth build does not pull)"),
                        )
                    })?
                    .id,
            ),
        };
        let layers = self.layers_of(image.as_deref())?;
        match layers.len() {
            0 => {
                let empty = self.work.join(format!("empty-{}", crate::names::new_id()));
                fs::create_dir_all(&empty)?;
                Ok((empty, None))
            }
            1 => Ok((layers[0].clone(), None)),
            _ => {
                let target = self.work.join(format!("from-{}", crate::names::new_id()));
                fs::create_dir_all(&target)?;
                let lower = layers
                    .iter()
                    .rev()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":");
                let options = format!("lowerdir={lower}");
                nix::mount::mount(
                    Some("overlay"),
                    &target,
                    Some("overlay"),
                    nix::mount::MsFlags::MS_RDONLY,
                    Some(options.as_str()),
                )
                .map_err(|e| {
                    EngineError::Internal(format!("mounting the stage's filesystem: {e}"))
                })?;
                Ok((target.clone(), Some(MountGuard(target))))
            }
        }
    }

    async fn run(
        &self,
        st: &StageState,
        argv: Vec<String>,
        args: Vec<String>,
        line: usize,
    ) -> Result<Layer> {
        let Some(image) = st.image.clone() else {
            return Err(invalid(
                line,
                "RUN in a stage FROM scratch with nothing in it: there is no shell to run",
            ));
        };
        let network = match self.opts.network.as_str() {
            "" | "default" => "none".to_string(),
            other => other.to_string(),
        };
        let mut labels = BTreeMap::new();
        labels.insert("berth.build".to_string(), "true".to_string());
        let req = ContainerCreate {
            image,
            cmd: Some(argv.clone()),
            entrypoint: Some(Vec::new()),
            env: args,
            labels,
            host_config: HostConfig {
                network_mode: network,
                ..Default::default()
            },
            ..Default::default()
        };
        let created = self.engine.create(req, None).await?;
        let id = created.id;
        self.out
            .say(format!(" ---> Running in {}\n", &id[..12.min(id.len())]))
            .await;
        let result = self.run_in(&id, &argv, line).await;
        let _ = self.engine.remove(&id, true, true).await;
        self.out
            .say(format!(
                "Removing intermediate container {}\n",
                &id[..12.min(id.len())]
            ))
            .await;
        result
    }

    async fn run_in(&self, id: &str, argv: &[String], line: usize) -> Result<Layer> {
        let waiter = self.engine.waiter(id, "next-exit")?;
        self.engine.start(id).await?;
        let mut logs = self.engine.logs(
            id,
            crate::logs::LogOptions {
                follow: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            },
        )?;
        while let Some(frame) = logs.recv().await {
            if frame.len() > 8 {
                self.out
                    .say(String::from_utf8_lossy(&frame[8..]).into_owned())
                    .await;
            }
        }
        let code = waiter.await;
        if code != 0 {
            return Err(EngineError::Invalid(format!(
                "The command '{}' returned a non-zero code: {code} (Dockerfile line {line})",
                argv.join(" ")
            )));
        }
        let upper = self.engine.paths.container(id).join("upper");
        let tar = self
            .work
            .join(format!("layer-{}.tar", crate::names::new_id()));
        let t = tar.clone();
        tokio::task::spawn_blocking(move || write_tar(&upper, &t, true))
            .await
            .map_err(EngineError::internal)?
            .map_err(|e| EngineError::Internal(format!("reading the RUN step's changes: {e}")))?;
        Ok(Layer::Tar(tar))
    }
}

/// `80`, `80/udp`, `8000-8002/tcp` -> `["80/tcp"]`, ...
fn expose_ports(p: &str) -> std::result::Result<Vec<String>, String> {
    let (ports, proto) = match p.split_once('/') {
        Some((a, b)) => (a, b.to_ascii_lowercase()),
        None => (p, "tcp".to_string()),
    };
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(format!(
            "invalid protocol in EXPOSE {p:?}: use tcp, udp or sctp"
        ));
    }
    let bad = || format!("invalid port in EXPOSE {p:?}: use a number 1-65535 or a range");
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let n = ports.parse::<u16>().map_err(|_| bad())?;
            (n, n)
        }
    };
    if lo == 0 || hi < lo {
        return Err(bad());
    }
    Ok((lo..=hi).map(|n| format!("{n}/{proto}")).collect())
}

fn healthcheck(h: &Health, line: usize) -> Result<DockerHealthcheck> {
    let dur = |v: &Option<String>| -> Result<u64> {
        match v {
            None => Ok(0),
            Some(s) => berth_build::parse_duration(s).map_err(|e| invalid(line, e)),
        }
    };
    let test = match &h.test {
        None => vec!["NONE".to_string()],
        Some(CommandForm::Shell(s)) => vec!["CMD-SHELL".to_string(), s.clone()],
        Some(CommandForm::Exec(v)) => {
            let mut t = vec!["CMD".to_string()];
            t.extend(v.iter().cloned());
            t
        }
    };
    Ok(DockerHealthcheck {
        test: Some(test),
        interval: dur(&h.interval)?,
        timeout: dur(&h.timeout)?,
        start_period: dur(&h.start_period)?,
        retries: match &h.retries {
            None => 0,
            Some(r) => r
                .parse()
                .map_err(|_| invalid(line, format!("bad --retries {r:?}")))?,
        },
    })
}

/// Unmounts (lazily) and removes a temporary mount point on drop.
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        let _ = fs::remove_dir(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Layers from directories
// ---------------------------------------------------------------------------------------------

/// Files a RUN container's runtime creates as mount points; not part of the layer when empty.
const MOUNT_POINT_FILES: &[&str] = &["etc/hosts", "etc/hostname", "etc/resolv.conf"];

/// Tars `dir` into `tar`. With `overlay`, `dir` is an overlay upper dir: whiteouts (char
/// devices 0/0) become `.wh.NAME`, opaque directories get `.wh..wh..opq`.
fn write_tar(dir: &Path, tar: &Path, overlay: bool) -> std::io::Result<()> {
    let file = fs::File::create(tar)?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(file));
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Complete);
    add_dir(&mut b, dir, Path::new(""), overlay)?;
    let mut w = b.into_inner()?;
    w.flush()?;
    Ok(())
}

fn add_dir<W: Write>(
    b: &mut tar::Builder<W>,
    base: &Path,
    rel: &Path,
    overlay: bool,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(base.join(rel))?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let r = rel.join(&name);
        let path = base.join(&r);
        let meta = fs::symlink_metadata(&path)?;
        let ft = meta.file_type();
        if overlay {
            if ft.is_char_device() && meta.rdev() == 0 {
                let wh = rel.join(format!(".wh.{}", name.to_string_lossy()));
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(0);
                h.set_mode(0o644);
                h.set_mtime(meta.mtime().max(0) as u64);
                b.append_data(&mut h, &wh, std::io::empty())?;
                continue;
            }
            let rs = r.to_string_lossy();
            if ft.is_file() && meta.len() == 0 && MOUNT_POINT_FILES.contains(&rs.as_ref()) {
                continue;
            }
        }
        if ft.is_dir() {
            b.append_path_with_name(&path, &r)?;
            if overlay {
                if let Ok(Some(v)) = xattr::get(&path, "trusted.overlay.opaque") {
                    if v == b"y" {
                        let mut h = tar::Header::new_gnu();
                        h.set_entry_type(tar::EntryType::Regular);
                        h.set_size(0);
                        h.set_mode(0o644);
                        b.append_data(&mut h, r.join(".wh..wh..opq"), std::io::empty())?;
                    }
                }
            }
            add_dir(b, base, &r, overlay)?;
        } else {
            b.append_path_with_name(&path, &r)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// COPY / ADD
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct CopyPlan {
    add: bool,
    root: PathBuf,
    sources: Vec<String>,
    dest: String,
    workdir: String,
    chown: Option<String>,
    chmod: Option<String>,
    line: usize,
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://") || s.starts_with("git@")
}

/// Every file below `dir` (relative paths), directories included.
fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(root.join(rel))?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let r = rel.join(e.file_name());
        out.push(r.clone());
        if e.file_type()?.is_dir() {
            walk(root, &r, out)?;
        }
    }
    Ok(())
}

impl CopyPlan {
    fn what(&self) -> &'static str {
        if self.add {
            "ADD"
        } else {
            "COPY"
        }
    }

    /// Sources resolved against the root (globs expanded): relative paths.
    fn resolve(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for s in &self.sources {
            if is_url(s) {
                return Err(invalid(
                    self.line,
                    format!("{} {s}: remote URLs are not supported by berth build; download the file into the context and COPY it", self.what()),
                ));
            }
            let clean = ignore_clean(s);
            if ignore::has_glob(s) {
                let mut all = Vec::new();
                walk(&self.root, Path::new(""), &mut all)?;
                let mut hits = 0;
                for p in all {
                    let ps = p.to_string_lossy();
                    if ignore::glob_match(s, &ps).map_err(|e| invalid(self.line, e))? {
                        out.push(p);
                        hits += 1;
                    }
                }
                if hits == 0 {
                    return Err(invalid(
                        self.line,
                        format!("{} failed: no source files were specified: no file matches {s:?} in the build context", self.what()),
                    ));
                }
            } else {
                if fs::symlink_metadata(self.root.join(&clean)).is_err() {
                    return Err(invalid(
                        self.line,
                        format!("{} failed: file not found in build context or excluded by .dockerignore: stat {s}: file does not exist", self.what()),
                    ));
                }
                out.push(clean);
            }
        }
        Ok(out)
    }

    /// A digest of the sources' names, metadata and content (the cache key's part).
    fn digest(&self) -> Result<String> {
        let mut h = Sha256::new();
        for src in self.resolve()? {
            let mut files = vec![src.clone()];
            if fs::symlink_metadata(self.root.join(&src))?.is_dir() {
                walk(&self.root.join(&src), Path::new(""), &mut files)?;
                files = std::iter::once(src.clone())
                    .chain(files.into_iter().skip(1).map(|f| src.join(f)))
                    .collect();
            }
            for f in files {
                let p = self.root.join(&f);
                let m = fs::symlink_metadata(&p)?;
                h.update(format!("{}\0{:o}\0{}\0", f.display(), m.mode(), m.len()).as_bytes());
                if m.file_type().is_symlink() {
                    h.update(fs::read_link(&p)?.to_string_lossy().as_bytes());
                } else if m.is_file() {
                    let mut file = fs::File::open(&p)?;
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = file.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                    }
                }
            }
        }
        Ok(hex::encode(h.finalize()))
    }

    fn execute(&self, layer: &Path, parent_layers: &[PathBuf], scratch: &Path) -> Result<()> {
        let sources = self.resolve()?;
        let (uid, gid) = match &self.chown {
            None => (0, 0),
            Some(c) => {
                let (u, g, _) = crate::prepare::resolve_user(c, scratch, parent_layers)
                    .map_err(|e| invalid(self.line, format!("--chown={c}: {e}")))?;
                (u, g)
            }
        };
        let mode = match &self.chmod {
            None => None,
            Some(m) => Some(u32::from_str_radix(m, 8).map_err(|_| {
                invalid(
                    self.line,
                    format!("--chmod={m}: use an octal mode like 755"),
                )
            })?),
        };
        let dest_abs = if self.dest.starts_with('/') {
            self.dest.clone()
        } else {
            format!(
                "{}/{}",
                if self.workdir.is_empty() {
                    ""
                } else {
                    self.workdir.trim_end_matches('/')
                },
                self.dest
            )
        };
        let dest_rel = ignore_clean(&dest_abs);
        let dest_rel_s = dest_rel.to_string_lossy().to_string();
        let exists_dir = dest_rel_s.is_empty()
            || crate::rootfs::find_in_layers(scratch, parent_layers, &dest_rel_s)
                .and_then(|p| fs::metadata(p).ok())
                .is_some_and(|m| m.is_dir());
        let dest_is_dir = self.dest.ends_with('/') || self.dest.ends_with("/.") || exists_dir;
        if sources.len() > 1 && !dest_is_dir {
            return Err(invalid(
                self.line,
                format!("When using {} with more than one source file, the destination must be a directory and end with a /", self.what()),
            ));
        }
        fs::create_dir_all(layer)?;
        let make_parents = |rel: &Path| -> Result<()> {
            // Parent directories as the image has them (or root 0755).
            let mut cur = PathBuf::new();
            for c in rel.components() {
                cur.push(c);
                let target = layer.join(&cur);
                if target.exists() {
                    continue;
                }
                fs::create_dir(&target)?;
                let cs = cur.to_string_lossy().to_string();
                match crate::rootfs::find_in_layers(scratch, parent_layers, &cs)
                    .and_then(|p| fs::metadata(p).ok())
                {
                    Some(m) => {
                        fs::set_permissions(
                            &target,
                            fs::Permissions::from_mode(m.mode() & 0o7777),
                        )?;
                        std::os::unix::fs::lchown(&target, Some(m.uid()), Some(m.gid()))?;
                    }
                    None => {
                        fs::set_permissions(&target, fs::Permissions::from_mode(0o755))?;
                        std::os::unix::fs::lchown(&target, Some(uid), Some(gid))?;
                    }
                }
            }
            Ok(())
        };
        for src in sources {
            let sp = self.root.join(&src);
            let m = fs::symlink_metadata(&sp)?;
            if m.is_dir() {
                make_parents(&dest_rel)?;
                copy_tree(&sp, &layer.join(&dest_rel), uid, gid, mode)?;
            } else if self.add && m.is_file() && is_archive(&sp) {
                make_parents(&dest_rel)?;
                let f = fs::File::open(&sp)?;
                let reader =
                    berth_image::unpack::decompressed(std::io::BufReader::new(f), "ADD archive")
                        .map_err(|e| invalid(self.line, e))?;
                let target = layer.join(&dest_rel);
                fs::create_dir_all(&target)?;
                berth_image::unpack::unpack_layer(
                    reader,
                    &target,
                    &format!("ADD {}", src.display()),
                )
                .map_err(|e| invalid(self.line, e))?;
            } else {
                let target_rel = if dest_is_dir {
                    dest_rel.join(src.file_name().unwrap_or_default())
                } else {
                    dest_rel.clone()
                };
                if let Some(parent) = target_rel.parent() {
                    make_parents(parent)?;
                }
                copy_one(&sp, &layer.join(&target_rel), uid, gid, mode)?;
            }
        }
        Ok(())
    }
}

fn is_archive(p: &Path) -> bool {
    let mut head = [0u8; 512];
    let Ok(mut f) = fs::File::open(p) else {
        return false;
    };
    let n = f.read(&mut head).unwrap_or(0);
    if n >= 2 && head[0] == 0x1f && head[1] == 0x8b {
        return true;
    }
    n >= 262 && &head[257..262] == b"ustar"
}

fn copy_one(src: &Path, dst: &Path, uid: u32, gid: u32, mode: Option<u32>) -> std::io::Result<()> {
    let m = fs::symlink_metadata(src)?;
    if dst.symlink_metadata().is_ok() && !dst.is_dir() {
        fs::remove_file(dst)?;
    }
    if m.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
        std::os::unix::fs::lchown(dst, Some(uid), Some(gid))?;
        return Ok(());
    }
    if m.is_dir() {
        if !dst.exists() {
            fs::create_dir(dst)?;
        }
    } else if m.is_file() {
        fs::copy(src, dst)?;
    } else {
        // Devices, fifos and sockets are not copied.
        return Ok(());
    }
    let perm = mode.unwrap_or(m.mode() & 0o7777);
    fs::set_permissions(dst, fs::Permissions::from_mode(perm))?;
    std::os::unix::fs::lchown(dst, Some(uid), Some(gid))?;
    Ok(())
}

fn copy_tree(src: &Path, dst: &Path, uid: u32, gid: u32, mode: Option<u32>) -> std::io::Result<()> {
    if !dst.exists() {
        copy_one(src, dst, uid, gid, mode)?;
    }
    let mut entries: Vec<_> = fs::read_dir(src)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let s = e.path();
        let d = dst.join(e.file_name());
        copy_one(&s, &d, uid, gid, mode)?;
        if e.file_type()?.is_dir() {
            copy_tree(&s, &d, uid, gid, mode)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes() {
        assert_eq!(expose_ports("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(expose_ports("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(
            expose_ports("8000-8001").unwrap(),
            vec!["8000/tcp", "8001/tcp"]
        );
        assert!(expose_ports("x").is_err());
        assert!(expose_ports("80/xyz").is_err());
        assert!(expose_ports("0").is_err());
    }

    #[test]
    fn overlay_upper_becomes_oci_layer() {
        use std::os::unix::fs::symlink;
        let t = tempfile::tempdir().unwrap();
        let up = t.path().join("upper");
        fs::create_dir_all(up.join("etc")).unwrap();
        fs::write(up.join("etc/hosts"), b"").unwrap();
        fs::write(up.join("new.txt"), b"hi").unwrap();
        symlink("new.txt", up.join("link")).unwrap();
        nix::sys::stat::mknod(
            &up.join("gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        let tar_path = t.path().join("l.tar");
        write_tar(&up, &tar_path, true).unwrap();
        let mut ar = tar::Archive::new(fs::File::open(&tar_path).unwrap());
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["etc", ".wh.gone", "link", "new.txt"]);
    }
}
