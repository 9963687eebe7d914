//! `exec`: running an extra process in a running container through the exec helper
//! (`berth __exec`), streaming its output as frames and recording its exit code. Health
//! checks use the same path with output captured.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use berth_engine_client::frame::{encode, StreamKind};
use berth_engine_client::{ExecCreate, ExecInspect};
use berth_runtime::container::ExecSpec;
use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::prepare;

#[derive(Debug, Clone)]
pub struct ExecEntry {
    pub container_id: String,
    pub spec: ExecSpec,
    pub running: bool,
    pub exit_code: Option<i64>,
    pub pid: i64,
    /// Feed the attached client's input to the process (`exec -i`).
    pub attach_stdin: bool,
    /// The terminal master of a running `exec -t` (for resizes).
    pub master: Option<Arc<std::os::fd::OwnedFd>>,
    /// A size asked for before the terminal existed (rows, columns).
    pub pending_size: Option<(u16, u16)>,
}

/// Output of a finished exec with captured output.
pub struct Captured {
    /// `None` when the timeout expired and the process was killed.
    pub exit_code: Option<i64>,
    pub output: String,
}

impl Engine {
    /// Builds the process spec of an exec: the container's env and identity unless overridden.
    pub(crate) fn exec_spec(
        &self,
        container_key: &str,
        req: &ExecCreate,
    ) -> Result<(String, ExecSpec)> {
        let rec = self.record(container_key)?;
        if !rec.state.running {
            return Err(EngineError::Conflict(format!(
                "container {} is not running",
                rec.id
            )));
        }
        if req.cmd.is_empty() {
            return Err(EngineError::Invalid("no exec command specified".into()));
        }
        let (uid, gid, additional_gids) = match req.user.as_deref().filter(|u| !u.is_empty()) {
            Some(user) => {
                let image = self.images.get(&rec.image_id)?;
                let layers = self.images.layer_paths(&image)?;
                prepare::resolve_user(user, &self.paths.container(&rec.id), &layers)?
            }
            None => (rec.uid, rec.gid, rec.additional_gids.clone()),
        };
        let mut env = prepare::merge_env(&rec.config.env, &req.env);
        if req.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        Ok((
            rec.id.clone(),
            ExecSpec {
                terminal: req.tty,
                args: req.cmd.clone(),
                env,
                cwd: Some(
                    req.working_dir
                        .clone()
                        .filter(|w| !w.is_empty())
                        .unwrap_or_else(|| rec.config.working_dir.clone()),
                ),
                uid: Some(uid),
                gid: Some(gid),
                additional_gids,
            },
        ))
    }

    pub fn exec_create(&self, container_key: &str, req: &ExecCreate) -> Result<String> {
        let (container_id, spec) = self.exec_spec(container_key, req)?;
        let id = crate::names::new_id();
        self.execs_lock().insert(
            id.clone(),
            ExecEntry {
                container_id,
                spec,
                running: false,
                exit_code: None,
                pid: 0,
                attach_stdin: req.attach_stdin,
                master: None,
                pending_size: None,
            },
        );
        Ok(id)
    }

    pub(crate) fn execs_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ExecEntry>> {
        self.execs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspect> {
        let execs = self.execs_lock();
        let e = execs
            .get(exec_id)
            .ok_or_else(|| EngineError::NotFound(format!("no such exec instance: {exec_id}")))?;
        Ok(ExecInspect {
            id: exec_id.to_string(),
            container_id: e.container_id.clone(),
            running: e.running,
            exit_code: e.exit_code,
            pid: e.pid,
        })
    }

    pub(crate) fn exec_command(
        &self,
        container_id: &str,
        spec: &ExecSpec,
    ) -> Result<tokio::process::Command> {
        let spec_json = serde_json::to_string(spec).map_err(EngineError::internal)?;
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.arg("__exec")
            .arg(self.paths.runtime_state())
            .arg(container_id)
            .arg(spec_json);
        if spec.terminal {
            cmd.arg(self.paths.container(container_id));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Ok(cmd)
    }

    /// Starts an exec created earlier; output arrives as frames on the returned channel, ending
    /// with a system frame `{"ExitCode":N}`.
    pub fn exec_start(self: &Arc<Self>, exec_id: &str) -> Result<mpsc::Receiver<Bytes>> {
        let (container_id, mut spec, _) = self.exec_begin(exec_id)?;
        // This streaming form has no input and no terminal: it serves `exec -d` and the
        // clients that read the output as a response body.
        spec.terminal = false;
        let mut child = self
            .exec_command(&container_id, &spec)?
            .spawn()
            .map_err(|e| EngineError::Internal(format!("cannot spawn exec helper: {e}")))?;
        if let Some(e) = self.execs_lock().get_mut(exec_id) {
            e.pid = child.id().unwrap_or(0) as i64;
        }
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let t1 = tokio::spawn(relay(stdout, StreamKind::Stdout, tx.clone()));
        let t2 = tokio::spawn(relay(stderr, StreamKind::Stderr, tx.clone()));
        let engine = self.clone();
        let exec_id = exec_id.to_string();
        tokio::spawn(async move {
            let status = child.wait().await;
            let _ = t1.await;
            let _ = t2.await;
            let code = status
                .ok()
                .and_then(|s| s.code())
                .map(i64::from)
                .unwrap_or(126);
            engine.exec_finished(&exec_id, code);
            let msg = serde_json::json!({ "ExitCode": code }).to_string();
            let _ = tx
                .send(Bytes::from(encode(StreamKind::System, msg.as_bytes())))
                .await;
        });
        Ok(rx)
    }

    /// Marks an exec created earlier as started; returns its container, its process and
    /// whether it takes the client's input.
    pub(crate) fn exec_begin(&self, exec_id: &str) -> Result<(String, ExecSpec, bool)> {
        let mut execs = self.execs_lock();
        let e = execs
            .get_mut(exec_id)
            .ok_or_else(|| EngineError::NotFound(format!("no such exec instance: {exec_id}")))?;
        if e.running || e.exit_code.is_some() {
            return Err(EngineError::Conflict(format!(
                "exec {exec_id} has already been started"
            )));
        }
        e.running = true;
        Ok((e.container_id.clone(), e.spec.clone(), e.attach_stdin))
    }

    /// Records the end of an exec.
    pub(crate) fn exec_finished(&self, exec_id: &str, code: i64) {
        if let Some(e) = self.execs_lock().get_mut(exec_id) {
            e.running = false;
            e.exit_code = Some(code);
            e.master = None;
        }
    }

    /// Runs a process in the container and captures its combined output (health checks).
    pub async fn exec_capture(
        &self,
        container_id: &str,
        spec: &ExecSpec,
        timeout: Duration,
    ) -> Result<Captured> {
        let mut child = self
            .exec_command(container_id, spec)?
            .spawn()
            .map_err(|e| EngineError::Internal(format!("cannot spawn exec helper: {e}")))?;
        let mut out = child.stdout.take();
        let mut err = child.stderr.take();
        let collect = async {
            let mut buf = Vec::new();
            let mut ebuf = Vec::new();
            let (a, b) = tokio::join!(
                async {
                    if let Some(o) = out.as_mut() {
                        let _ = o.read_to_end(&mut buf).await;
                    }
                },
                async {
                    if let Some(e) = err.as_mut() {
                        let _ = e.read_to_end(&mut ebuf).await;
                    }
                }
            );
            let _ = (a, b);
            buf.extend_from_slice(&ebuf);
            buf
        };
        match tokio::time::timeout(timeout, async {
            let output = collect.await;
            let status = child.wait().await;
            (output, status)
        })
        .await
        {
            Ok((output, status)) => Ok(Captured {
                exit_code: status.ok().and_then(|s| s.code()).map(i64::from),
                output: truncate_output(&output),
            }),
            Err(_) => {
                // SIGTERM makes the helper kill the process, then it exits.
                if let Some(pid) = child.id() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGTERM,
                    );
                }
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                Ok(Captured {
                    exit_code: None,
                    output: String::new(),
                })
            }
        }
    }
}

/// Docker keeps at most 4 KiB of a probe's output.
fn truncate_output(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.chars().take(4096).collect()
}

async fn relay<R: tokio::io::AsyncRead + Unpin>(
    reader: Option<R>,
    kind: StreamKind,
    tx: mpsc::Sender<Bytes>,
) {
    let Some(mut reader) = reader else { return };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(Bytes::from(encode(kind, &buf[..n]))).await.is_err() {
                    return;
                }
            }
        }
    }
}
