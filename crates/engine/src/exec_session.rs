//! Attached execs (`POST /exec/{id}/start` on a taken-over connection, as Docker clients do):
//! the client's input goes to the process's stdin (`-i`), its output comes back as frames, or
//! raw through a pseudo-terminal (`-t`) whose master the exec helper hands to the engine. The
//! connection closes once the process has exited and its exit code is recorded, so a client
//! that inspects the exec next always sees the code.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use berth_engine_client::frame::{encode, StreamKind};
use berth_runtime::container::ExecSpec;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Child;

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::exec_helper::HANDOFF_FD;

impl Engine {
    /// Runs a started exec (see [`Engine::exec_begin`]) with its stdio spliced to `client`.
    pub async fn exec_session<C>(
        self: Arc<Self>,
        exec_id: String,
        container_id: String,
        spec: ExecSpec,
        attach_stdin: bool,
        client: C,
    ) where
        C: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let code = if spec.terminal {
            self.terminal_session(
                &exec_id,
                &container_id,
                &spec,
                &mut client_read,
                &mut client_write,
            )
            .await
        } else {
            self.pipe_session(
                &container_id,
                &spec,
                attach_stdin,
                client_read,
                &mut client_write,
            )
            .await
        };
        self.exec_finished(&exec_id, code);
        let _ = client_write.shutdown().await;
    }

    /// Sets the terminal size of a running `exec -t`.
    pub fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        let mut execs = self.execs_lock();
        let e = execs
            .get_mut(exec_id)
            .ok_or_else(|| EngineError::NotFound(format!("no such exec instance: {exec_id}")))?;
        match &e.master {
            Some(master) => crate::monitor_io::resize(master.as_raw_fd(), height, width),
            // The client resizes as soon as it is attached, often before the terminal exists.
            None => e.pending_size = Some((height, width)),
        }
        Ok(())
    }

    async fn pipe_session<R, W>(
        &self,
        container_id: &str,
        spec: &ExecSpec,
        attach_stdin: bool,
        mut client_read: R,
        client_write: &mut W,
    ) -> i64
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin,
    {
        let mut cmd = match self.exec_command(container_id, spec) {
            Ok(c) => c,
            Err(e) => return report(client_write, false, &e.to_string()).await,
        };
        if attach_stdin {
            cmd.stdin(std::process::Stdio::piped());
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("cannot spawn exec helper: {e}");
                return report(client_write, false, &msg).await;
            }
        };
        let input = child.stdin.take().map(|mut stdin| {
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut stdin).await;
                // Dropping stdin closes it: the process sees the end of its input.
            })
        });
        let (Some(mut out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
            return wait_code(&mut child).await;
        };
        let mut out_buf = vec![0u8; 32 * 1024];
        let mut err_buf = vec![0u8; 32 * 1024];
        let (mut out_open, mut err_open) = (true, true);
        while out_open || err_open {
            let (kind, n) = tokio::select! {
                r = out.read(&mut out_buf), if out_open => (StreamKind::Stdout, r.unwrap_or(0)),
                r = err.read(&mut err_buf), if err_open => (StreamKind::Stderr, r.unwrap_or(0)),
            };
            if n == 0 {
                match kind {
                    StreamKind::Stdout => out_open = false,
                    _ => err_open = false,
                }
                continue;
            }
            let data = match kind {
                StreamKind::Stdout => &out_buf[..n],
                _ => &err_buf[..n],
            };
            // A client gone away does not stop the process; keep draining its output.
            let _ = client_write.write_all(&encode(kind, data)).await;
        }
        let code = wait_code(&mut child).await;
        if let Some(task) = input {
            task.abort();
        }
        code
    }

    async fn terminal_session<R, W>(
        &self,
        exec_id: &str,
        container_id: &str,
        spec: &ExecSpec,
        client_read: &mut R,
        client_write: &mut W,
    ) -> i64
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let (ours, theirs) = match std::os::unix::net::UnixStream::pair() {
            Ok(p) => p,
            Err(e) => return report(client_write, true, &format!("socketpair: {e}")).await,
        };
        let mut cmd = match self.exec_command(container_id, spec) {
            Ok(c) => c,
            Err(e) => return report(client_write, true, &e.to_string()).await,
        };
        let handoff: RawFd = theirs.as_raw_fd();
        // SAFETY: between fork and exec the child only duplicates a descriptor it inherited
        // onto HANDOFF_FD (dup2 clears close-on-exec on the copy); no allocation, no locks.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(handoff, HANDOFF_FD) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("cannot spawn exec helper: {e}");
                return report(client_write, true, &msg).await;
            }
        };
        drop(theirs);
        let master = tokio::task::spawn_blocking(move || {
            let _ = ours.set_read_timeout(Some(Duration::from_secs(15)));
            berth_runtime::console::receive_fd(std::os::fd::AsFd::as_fd(&ours))
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let master = match master {
            Ok(m) => Arc::new(m),
            Err(_) => {
                // The helper says why on its stderr.
                let mut why = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = err.read_to_string(&mut why).await;
                }
                let code = wait_code(&mut child).await;
                let _ = client_write.write_all(why.as_bytes()).await;
                return code;
            }
        };
        if let Some(e) = self.execs_lock().get_mut(exec_id) {
            if let Some((height, width)) = e.pending_size.take() {
                crate::monitor_io::resize(master.as_raw_fd(), height, width);
            }
            e.master = Some(master.clone());
        }
        if let Err(e) = splice_terminal(&master, client_read, client_write).await {
            tracing::debug!(exec_id, "terminal: {e}");
        }
        wait_code(&mut child).await
    }
}

/// Copies between the client and the terminal master until the terminal closes (every
/// process holding its other side has exited).
async fn splice_terminal<R, W>(
    master: &Arc<OwnedFd>,
    client_read: &mut R,
    client_write: &mut W,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // A second descriptor for the reactor (AsyncFd takes ownership), non-blocking.
    // SAFETY: dup of a descriptor we hold; the copy is owned by `fd`.
    let dup = unsafe { libc::dup(master.as_raw_fd()) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a fresh descriptor nobody else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(dup) };
    // SAFETY: fcntl on our own descriptor, adding O_NONBLOCK.
    unsafe {
        let flags = libc::fcntl(dup, libc::F_GETFL);
        libc::fcntl(dup, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    // SAFETY: `owned` is an open descriptor the AsyncFd owns until it is dropped, and an
    // OwnedFd always returns the same descriptor.
    let fd = unsafe { AsyncFd::register(owned) }.map_err(|e| io::Error::other(e.to_string()))?;
    let mut out = vec![0u8; 32 * 1024];
    let mut input = vec![0u8; 32 * 1024];
    let mut input_open = true;
    loop {
        tokio::select! {
            guard = fd.readable() => {
                let mut guard = guard?;
                match guard.try_io(|inner| sys_read(inner.get_ref().as_raw_fd(), &mut out)) {
                    // EIO: the last process on the terminal exited.
                    Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
                    Ok(Ok(n)) => {
                        let _ = client_write.write_all(&out[..n]).await;
                        let _ = client_write.flush().await;
                    }
                    Err(_would_block) => continue,
                }
            }
            n = client_read.read(&mut input), if input_open => {
                match n {
                    Ok(0) | Err(_) => input_open = false,
                    Ok(n) => write_all_fd(&fd, &input[..n]).await?,
                }
            }
        }
    }
}

async fn write_all_fd(fd: &AsyncFd<OwnedFd>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let mut guard = fd.writable().await?;
        match guard.try_io(|inner| sys_write(inner.get_ref().as_raw_fd(), data)) {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

fn sys_read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reading into our own buffer.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn sys_write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: writing from our own buffer.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

async fn wait_code(child: &mut Child) -> i64 {
    child
        .wait()
        .await
        .ok()
        .and_then(|s| s.code())
        .map(i64::from)
        .unwrap_or(126)
}

/// Tells the client why the exec could not run; its exit code is 126 as Docker's.
async fn report<W: AsyncWrite + Unpin>(client: &mut W, tty: bool, message: &str) -> i64 {
    let line = format!("{message}\n");
    let bytes = if tty {
        line.into_bytes()
    } else {
        encode(StreamKind::Stderr, line.as_bytes())
    };
    let _ = client.write_all(&bytes).await;
    126
}
