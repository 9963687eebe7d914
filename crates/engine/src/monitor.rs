//! The per-container monitor (`berth __monitor DIR`): a small single-threaded process that
//! creates and starts the container through the runtime, holds its stdout/stderr pipes, writes
//! them to the json-file log, reaps the container, reads the OOM counter and records the exit in
//! `state.json`. It detaches from the engine (double fork + setsid), so containers keep running
//! while the engine restarts; the engine finds the monitor again by its pid.
//!
//! Protocol with the engine: the engine writes `monitor.json` and the OCI bundle, spawns the
//! monitor with a pipe on stdout, and reads one JSON line ([`Ready`]) from it. The monitor
//! rewrites `state.json` atomically on start and on exit; the engine learns of the exit when
//! the monitor process ends (pidfd).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use berth_runtime::cgroups::Cgroup;
use berth_runtime::console;
use berth_runtime::container::{Runtime, Stdio};
use nix::unistd::{fork, setsid, ForkResult};
use serde::{Deserialize, Serialize};

use crate::logfile::{now_rfc3339_nanos, LogWriter};
use crate::monitor_io;
use crate::paths::write_atomic_nosync;

pub const CONFIG_FILE: &str = "monitor.json";
pub const STATE_FILE: &str = "state.json";
/// Where the runtime sends a `-t` container's terminal (relative to the container directory).
const CONSOLE_SOCKET: &str = "console.sock";

/// What the engine tells the monitor (`monitor.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorConfig {
    pub id: String,
    /// Directory holding the OCI `config.json`.
    pub bundle: PathBuf,
    /// libcontainer's state root.
    pub state_root: PathBuf,
    pub log_path: PathBuf,
    pub log_max_size: u64,
    pub log_max_files: u32,
    pub init: bool,
    pub cgroup_path: String,
    /// Give the container a pseudo-terminal (`-t`).
    #[serde(default)]
    pub tty: bool,
    /// Size `(rows, columns)` the terminal gets before the process starts (`-t`).
    #[serde(default)]
    pub console_size: Option<(u16, u16)>,
    /// Keep stdin open for attached clients (`-i`).
    #[serde(default)]
    pub open_stdin: bool,
    #[serde(default)]
    pub stdin_once: bool,
    /// Keep the output until the first client attaches (one is on its way).
    #[serde(default)]
    pub replay: bool,
}

/// What the monitor records (`state.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MonitorState {
    pub monitor_pid: i32,
    pub pid: i32,
    /// `running` or `exited`.
    pub status: String,
    pub exit_code: i32,
    pub oom_killed: bool,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
}

/// First line the monitor writes to its stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ready {
    pub monitor_pid: i32,
    pub pid: i32,
    pub error: Option<String>,
}

impl MonitorState {
    pub fn load(dir: &Path) -> Option<Self> {
        let bytes = std::fs::read(dir.join(STATE_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn save(&self, dir: &Path) {
        if let Ok(bytes) = serde_json::to_vec_pretty(self) {
            let _ = write_atomic_nosync(&dir.join(STATE_FILE), &bytes);
        }
    }
}

/// Entry point of `berth __monitor DIR`. Returns the process exit code.
pub fn main(dir: &Path) -> i32 {
    let config: MonitorConfig = match std::fs::read(dir.join(CONFIG_FILE))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            report_ready(&Ready {
                monitor_pid: 0,
                pid: 0,
                error: Some(format!("monitor: bad {CONFIG_FILE}: {e}")),
            });
            return 1;
        }
    };
    // Detach: the engine reaps the intermediate process at once, the monitor lives on in its
    // own session so signals to the engine's process group do not reach it.
    // SAFETY: the monitor is single-threaded at this point.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => return 0,
        Ok(ForkResult::Child) => {}
        Err(e) => {
            report_ready(&Ready {
                monitor_pid: 0,
                pid: 0,
                error: Some(format!("monitor: fork: {e}")),
            });
            return 1;
        }
    }
    let _ = setsid();
    // SAFETY: ignoring SIGPIPE (engine gone) and SIGINT/SIGTERM/SIGHUP (the engine's session).
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
    run(dir, &config);
    0
}

fn report_ready(ready: &Ready) {
    if let Ok(mut line) = serde_json::to_vec(ready) {
        line.push(b'\n');
        let mut out = std::io::stdout();
        let _ = out.write_all(&line);
        let _ = out.flush();
    }
}

/// Closes our stdout so the engine's read of the ready line sees EOF.
fn close_ready_channel() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: replacing fd 1 with /dev/null; `null` stays valid for the call.
        unsafe {
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

/// What starting the container gave the monitor to pump.
struct Started {
    pid: i32,
    output: monitor_io::Output,
    stdin: Option<OwnedFd>,
}

/// Binds a unix socket in the current directory (the container directory: a relative name
/// keeps it within `sun_path`'s 108 bytes however long the engine's root is).
fn bind_here(name: &str) -> std::io::Result<UnixListener> {
    let _ = std::fs::remove_file(name);
    UnixListener::bind(name)
}

fn start_container(dir: &Path, config: &MonitorConfig) -> Result<Started, String> {
    let (out_r, out_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
    let (err_r, err_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
    let (stdin, stdin_writer) = if config.open_stdin && !config.tty {
        let (r, w) = pipe().map_err(|e| format!("pipe: {e}"))?;
        (r, Some(w))
    } else {
        let null: OwnedFd = std::fs::File::open("/dev/null")
            .map_err(|e| format!("/dev/null: {e}"))?
            .into();
        (null, None)
    };
    let console = if config.tty {
        Some(bind_here(CONSOLE_SOCKET).map_err(|e| format!("console socket: {e}"))?)
    } else {
        None
    };
    berth_runtime::cgroups::ensure_parent(&config.cgroup_path)
        .map_err(|e| format!("cgroup parent of {}: {e}", config.cgroup_path))?;
    let runtime = Runtime::new(&config.state_root);
    // A stale runtime state from an earlier run of the same container would block create.
    let _ = runtime.delete(&config.id, true);
    let console_path = dir.join(CONSOLE_SOCKET);
    // With a terminal, the container's init has sent its master before it waits to start:
    // it is taken then, and given its size, so the process starts on a terminal of the
    // client's size (Docker's `ConsoleSize`) instead of racing the first resize.
    let mut terminal: Option<OwnedFd> = None;
    let take_terminal = |_pid: i32| -> Result<(), String> {
        let Some(console) = &console else {
            return Ok(());
        };
        let _ = std::fs::remove_file(CONSOLE_SOCKET);
        let master = console::accept_terminal(console, std::time::Duration::from_secs(10))
            .map_err(|e| format!("cannot set up the container's terminal: {e}"))?;
        if let Some((rows, cols)) = config.console_size {
            monitor_io::resize(master.as_raw_fd(), rows, cols);
        }
        terminal = Some(master);
        Ok(())
    };
    let pid = runtime
        .create_and_start(
            &config.id,
            &config.bundle,
            Stdio {
                stdin,
                stdout: out_w,
                stderr: err_w,
            },
            config.init,
            console.as_ref().map(|_| console_path.as_path()),
            take_terminal,
        )
        .map_err(|e| e.to_string())?;
    let Some(master) = terminal else {
        return Ok(Started {
            pid,
            output: monitor_io::Output::Pipes {
                stdout: out_r,
                stderr: err_r,
            },
            stdin: stdin_writer,
        });
    };
    let writer = master.try_clone().map_err(|e| format!("terminal: {e}"))?;
    Ok(Started {
        pid,
        output: monitor_io::Output::Terminal { master },
        stdin: config.open_stdin.then_some(writer),
    })
}

fn run(dir: &Path, config: &MonitorConfig) {
    let monitor_pid = std::process::id() as i32;
    // Sockets are bound by relative names in the container directory.
    let _ = std::env::set_current_dir(dir);
    let attach = bind_here(monitor_io::ATTACH_SOCKET).ok();
    let started = start_container(dir, config);
    let Started { pid, output, stdin } = match started {
        Ok(v) => v,
        Err(error) => {
            MonitorState {
                monitor_pid,
                status: "exited".into(),
                exit_code: 125,
                error: error.clone(),
                finished_at: now_rfc3339_nanos(),
                ..Default::default()
            }
            .save(dir);
            report_ready(&Ready {
                monitor_pid,
                pid: 0,
                error: Some(error),
            });
            return;
        }
    };
    let mut state = MonitorState {
        monitor_pid,
        pid,
        status: "running".into(),
        started_at: now_rfc3339_nanos(),
        ..Default::default()
    };
    state.save(dir);
    report_ready(&Ready {
        monitor_pid,
        pid,
        error: None,
    });
    close_ready_channel();

    let mut log = LogWriter::open(&config.log_path, config.log_max_size, config.log_max_files).ok();
    let exit_code = monitor_io::run(
        pid,
        pidfd_open(pid),
        output,
        monitor_io::Options {
            stdin,
            stdin_once: config.stdin_once,
            replay: config.replay,
            on_idle: Some(crate::memory::shed_single_threaded),
        },
        attach,
        &mut log,
    );
    let _ = std::fs::remove_file(monitor_io::ATTACH_SOCKET);

    let cgroup = Cgroup::new(&config.cgroup_path);
    state.oom_killed = cgroup.oom_kills() > 0;
    let _ = Runtime::new(&config.state_root).remove_exited(&config.id, &config.cgroup_path);
    state.status = "exited".into();
    state.exit_code = exit_code;
    state.finished_at = now_rfc3339_nanos();
    state.save(dir);
}

/// Opens a pidfd for `pid` (Linux >= 5.3).
pub fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        None
    } else {
        // SAFETY: the fd was just returned by the kernel and is owned by nobody else.
        Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}

/// True if `pid` is alive and is the monitor of the container in `dir`.
pub fn is_monitor_alive(pid: i32, dir: &Path) -> bool {
    if pid <= 0 {
        return false;
    }
    let mut cmdline = Vec::new();
    if std::fs::File::open(format!("/proc/{pid}/cmdline"))
        .and_then(|mut f| f.read_to_end(&mut cmdline))
        .is_err()
    {
        return false;
    }
    let text = String::from_utf8_lossy(&cmdline);
    text.contains("__monitor") && text.contains(&*dir.to_string_lossy())
}
