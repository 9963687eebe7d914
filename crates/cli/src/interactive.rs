//! Interactive containers: `run -i/-t`, `start -ai` and `attach`. The CLI attaches to the
//! container's stdio before starting it (so nothing is lost), copies its own stdin into the
//! container, puts the local terminal in raw mode for `-it`, forwards terminal size changes,
//! and exits with the container's exit code.

use std::io::Write as _;
use std::os::fd::AsRawFd;

use anyhow::{anyhow, bail, Result};
use berth_engine_client::frame::{Decoder, StreamKind};
use berth_engine_client::EngineClient;
use clap::Args;
use nix::sys::termios::{self, SetArg, Termios};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::errln;
use crate::run::SignalProxy;

/// `berth attach`.
#[derive(Debug, Clone, Args)]
pub struct AttachArgs {
    /// Do not attach stdin.
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy received signals to the container (not with a terminal).
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// How a session attaches.
pub struct Session {
    pub id: String,
    pub tty: bool,
    pub stdin: bool,
    /// Start the container once attached (`run`, `start -a`).
    pub start: bool,
    /// Remove the container when it exits (`run --rm`).
    pub auto_remove: bool,
    pub sig_proxy: bool,
}

/// The local terminal in raw mode; restored on drop.
struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    fn enter() -> Option<Self> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

fn is_terminal(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// The size of the local terminal (rows, columns), if stdout is one.
pub(crate) fn terminal_size() -> Option<(u16, u16)> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into our stack variable.
    let ok = unsafe { libc::ioctl(std::io::stdout().as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
    (ok == 0 && size.ws_row > 0).then_some((size.ws_row, size.ws_col))
}

/// Reads this process's stdin on a plain thread (a blocked read cannot be cancelled, so it
/// must not hold up the async runtime) and hands the chunks over; `None` marks the end.
fn stdin_chunks() -> mpsc::Receiver<Option<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        use std::io::Read as _;
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.blocking_send(None);
                    return;
                }
                Ok(n) => {
                    if tx.blocking_send(Some(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Attaches, optionally starts, relays until the output ends, and returns the exit code.
pub async fn run_session(client: &EngineClient, session: Session) -> Result<i32> {
    let wc = client.clone();
    let wid = session.id.clone();
    let mut wait = tokio::spawn(async move { wc.wait_container(&wid, Some("next-exit")).await });
    let stream = match client.attach(&session.id, session.stdin, true, true).await {
        Ok(s) => s,
        Err(e) => {
            wait.abort();
            if session.auto_remove {
                let _ = client.remove_container(&session.id, true, true).await;
            }
            return Err(e.into());
        }
    };
    if session.start {
        if let Err(e) = client.start_container(&session.id).await {
            wait.abort();
            if session.auto_remove {
                let _ = client.remove_container(&session.id, true, true).await;
            }
            return Err(e.into());
        }
    }
    pump(
        client,
        stream,
        session.tty,
        session.stdin,
        Target::Container(session.id.clone()),
        session.sig_proxy,
    )
    .await;
    let code = match (&mut wait).await {
        Ok(Ok(resp)) => {
            if let Some(err) = resp.error.filter(|e| !e.message.is_empty()) {
                errln!("{}", err.message);
            }
            resp.status_code
        }
        Ok(Err(e)) => match client.inspect_container(&session.id).await {
            Ok(c) if !c.state.running => c.state.exit_code,
            // `attach` to a container that keeps running after we were cut off.
            Ok(_) => 0,
            Err(_) => return Err(anyhow!(e).context("waiting for the container failed")),
        },
        Err(e) => bail!("waiting for the container failed: {e}"),
    };
    if session.auto_remove {
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            client.wait_container(&session.id, Some("removed")),
        )
        .await;
    }
    Ok(code as i32)
}

/// What a session's terminal resizes and forwarded signals go to.
#[derive(Clone)]
enum Target {
    Container(String),
    Exec(String),
}

/// Relays an attached stream until the output ends: our stdin in (raw mode for an
/// interactive terminal), the output out, terminal size changes and (without a terminal)
/// signals forwarded.
async fn pump<S>(
    client: &EngineClient,
    stream: S,
    tty: bool,
    stdin: bool,
    target: Target,
    sig_proxy: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let raw = (tty && stdin && is_terminal(0))
        .then(RawTerminal::enter)
        .flatten();
    if tty {
        spawn_resizer(client.clone(), target.clone());
    }
    let (mut reader, mut writer) = tokio::io::split(stream);
    let input = stdin.then(|| {
        tokio::spawn(async move {
            let mut chunks = stdin_chunks();
            while let Some(Some(chunk)) = chunks.recv().await {
                if writer.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            // Our input ended: pass the end on (the container's stdin closes with -i).
            let _ = writer.shutdown().await;
        })
    });
    let mut proxy = match (&target, sig_proxy && !tty) {
        (Target::Container(id), true) => Some((SignalProxy::new(), id.clone())),
        _ => None,
    };
    let relay = relay_output(&mut reader, tty);
    tokio::pin!(relay);
    loop {
        tokio::select! {
            _ = &mut relay => break,
            sig = async {
                match proxy.as_mut() {
                    Some((p, _)) => p.next().await,
                    None => std::future::pending().await,
                }
            } => {
                let c = client.clone();
                let id = proxy.as_ref().map(|(_, id)| id.clone()).unwrap_or_default();
                tokio::spawn(async move {
                    if let Err(e) = c.kill_container(&id, Some(sig)).await {
                        errln!("failed to forward {sig}: {e}");
                    }
                });
            }
        }
    }
    if let Some(task) = input {
        task.abort();
    }
    drop(raw);
}

/// `berth exec -i/-t`: runs the exec attached and returns its exit code.
pub async fn exec_session(
    client: &EngineClient,
    exec_id: &str,
    tty: bool,
    stdin: bool,
) -> Result<i32> {
    let stream = client.exec_attach(exec_id, tty).await?;
    pump(
        client,
        stream,
        tty,
        stdin,
        Target::Exec(exec_id.to_string()),
        false,
    )
    .await;
    // The engine closes the stream once the exit code is recorded.
    let info = client.exec_inspect(exec_id).await?;
    match info.exit_code {
        Some(code) if !info.running => Ok(code as i32),
        _ => bail!("the exec {exec_id} did not report an exit code"),
    }
}

/// Copies the container's output to ours until it ends: raw for a terminal, demultiplexed
/// into stdout and stderr otherwise.
async fn relay_output<R: tokio::io::AsyncRead + Unpin>(reader: &mut R, tty: bool) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut decoder = Decoder::new();
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if tty {
            let mut out = std::io::stdout().lock();
            if out.write_all(&buf[..n]).is_err() || out.flush().is_err() {
                return;
            }
            continue;
        }
        decoder.push(&buf[..n]);
        while let Some((kind, data)) = decoder.next_frame() {
            let written = match kind {
                StreamKind::Stderr => {
                    let mut err = std::io::stderr().lock();
                    err.write_all(&data).and_then(|_| err.flush())
                }
                _ => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&data).and_then(|_| out.flush())
                }
            };
            if written.is_err() {
                return;
            }
        }
    }
}

/// Sends the local terminal's size now and on every SIGWINCH.
fn spawn_resizer(client: EngineClient, target: Target) {
    tokio::spawn(async move {
        let mut winch =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
        loop {
            if let Some((rows, cols)) = terminal_size() {
                let _ = match &target {
                    Target::Container(id) => client.resize_container(id, rows, cols).await,
                    Target::Exec(id) => client.exec_resize(id, rows, cols).await,
                };
            }
            match winch.as_mut() {
                Some(w) => {
                    if w.recv().await.is_none() {
                        return;
                    }
                }
                None => return,
            }
        }
    });
}

/// `berth attach`.
pub async fn attach(client: &EngineClient, args: AttachArgs) -> Result<i32> {
    let info = client.inspect_container(&args.container).await?;
    if !info.state.running {
        bail!("you cannot attach to a stopped container, start it first");
    }
    run_session(
        client,
        Session {
            id: info.id.clone(),
            tty: info.config.tty,
            stdin: !args.no_stdin && info.config.open_stdin,
            start: false,
            auto_remove: false,
            sig_proxy: args.sig_proxy,
        },
    )
    .await
}
