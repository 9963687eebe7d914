//! Attaching to a container's stdio (`attach`, `run -i/-t`) and resizing its terminal: the
//! engine connects to the container monitor's `attach.sock` (see [`crate::monitor_io`]) and
//! the API layer splices that connection to the client's hijacked HTTP connection.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::monitor_io::{AttachRequest, ATTACH_SOCKET};

impl Engine {
    /// Checks that `key` can be attached to now: it exists and is running, created or
    /// restarting (Docker refuses a stopped container). Returns its id and whether it has a
    /// terminal.
    pub fn attachable(&self, key: &str) -> Result<(String, bool)> {
        let rec = self.record(key)?;
        let status = rec.state.status.as_str();
        if !rec.state.running && status != "created" && status != "restarting" {
            return Err(EngineError::Conflict(
                "you cannot attach to a stopped container, start it first".into(),
            ));
        }
        Ok((rec.id.clone(), rec.config.tty))
    }

    /// Connects to the monitor of container `id` once it runs (a created container is waited
    /// for: `run` attaches before it starts). `None` when it exited before that.
    pub async fn attach(self: &Arc<Self>, id: &str, request: &AttachRequest) -> Option<UnixStream> {
        let _waiting = AttachWaiter::register(self, id);
        let mut lifecycle = self.lifecycle_receiver(id)?;
        let exits_at_start = lifecycle.borrow().exits;
        loop {
            let now = lifecycle.borrow_and_update().clone();
            if now.running || now.exits > exits_at_start || now.removed {
                break;
            }
            if lifecycle.changed().await.is_err() {
                return None;
            }
        }
        let mut stream = self.connect_monitor(id).await.ok()?;
        let mut line = serde_json::to_vec(request).ok()?;
        line.push(b'\n');
        stream.write_all(&line).await.ok()?;
        Some(stream)
    }

    /// Sets the terminal size of a running `-t` container.
    pub async fn resize(&self, key: &str, height: u16, width: u16) -> Result<()> {
        let rec = self.record(key)?;
        if !rec.state.running {
            return Err(EngineError::Conflict(format!(
                "container {} is not running",
                rec.id
            )));
        }
        if !rec.config.tty {
            // Docker accepts and ignores it too.
            return Ok(());
        }
        let mut stream = self.connect_monitor(&rec.id).await.map_err(|e| {
            EngineError::Internal(format!("cannot reach the container's monitor: {e}"))
        })?;
        let request = AttachRequest {
            resize: Some((height, width)),
            ..AttachRequest::default()
        };
        let mut line = serde_json::to_vec(&request).map_err(EngineError::internal)?;
        line.push(b'\n');
        stream.write_all(&line).await?;
        // The monitor closes the connection once the size is applied.
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
        Ok(())
    }

    /// Whether an attach request waits for container `id` to start (its monitor then keeps
    /// the output for it).
    pub(crate) fn attach_waiting(&self, id: &str) -> bool {
        lock(&self.attach_waiters).get(id).is_some_and(|n| *n > 0)
    }

    async fn connect_monitor(&self, id: &str) -> std::io::Result<UnixStream> {
        // The socket path may exceed sun_path's 108 bytes under a long root: reach it through
        // an open handle of the container directory instead.
        let dir = std::fs::File::open(self.paths.container(id))?;
        use std::os::fd::AsRawFd;
        let path = format!("/proc/self/fd/{}/{ATTACH_SOCKET}", dir.as_raw_fd());
        let stream = UnixStream::connect(&path).await;
        drop(dir);
        stream
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts an attach request as waiting while it lives.
struct AttachWaiter<'a> {
    engine: &'a Engine,
    id: String,
}

impl<'a> AttachWaiter<'a> {
    fn register(engine: &'a Engine, id: &str) -> Self {
        *lock(&engine.attach_waiters)
            .entry(id.to_string())
            .or_default() += 1;
        AttachWaiter {
            engine,
            id: id.to_string(),
        }
    }
}

impl Drop for AttachWaiter<'_> {
    fn drop(&mut self) {
        let mut waiters = lock(&self.engine.attach_waiters);
        if let Some(n) = waiters.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                waiters.remove(&self.id);
            }
        }
    }
}

/// Splices a client connection and a monitor connection until the container's output ends:
/// the client's input goes to the container's stdin (its end is passed on as a half-close),
/// the monitor's output to the client.
pub async fn splice<C>(client: C, monitor: UnixStream)
where
    C: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut monitor_read, mut monitor_write) = monitor.into_split();
    let input = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut monitor_write).await;
        let _ = monitor_write.shutdown().await;
    });
    let _ = tokio::io::copy(&mut monitor_read, &mut client_write).await;
    let _ = client_write.shutdown().await;
    input.abort();
}
