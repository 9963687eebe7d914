//! The exec helper (`berth __exec STATE_ROOT ID SPEC_JSON [BUNDLE]`): a single-threaded process
//! that joins a running container through the runtime, runs one process there with the
//! helper's own stdin/stdout/stderr, waits for it and exits with its exit code. SIGTERM to the
//! helper kills the process (used for health-check timeouts).
//!
//! With a terminal (`exec -t`; BUNDLE is the container's directory) the runtime creates the
//! pseudo-terminal inside the container and sends its master to a console socket the helper
//! binds in BUNDLE; the helper passes the master on to the engine over descriptor
//! [`HANDOFF_FD`], and the engine does the terminal's I/O.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use berth_runtime::console;
use berth_runtime::container::{ExecSpec, Runtime, Stdio};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// The descriptor (a unix socket) on which a terminal exec sends the master to the engine.
pub const HANDOFF_FD: i32 = 3;

/// Entry point; returns the exit code (the exec'd process's, or 126 if it could not start).
pub fn main(state_root: &Path, id: &str, spec_json: &str, bundle: Option<&Path>) -> i32 {
    let spec: ExecSpec = match serde_json::from_str(spec_json) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth: bad exec spec: {e}");
            return 126;
        }
    };
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGCHLD);
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    let _ = signals.thread_block();
    let dup = |fd: i32| -> std::io::Result<OwnedFd> {
        let f = nix::unistd::dup(fd).map_err(std::io::Error::from)?;
        // SAFETY: dup returned a new descriptor that we own.
        Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(f) })
    };
    let started = match (spec.terminal, bundle) {
        (true, Some(bundle)) => exec_on_terminal(state_root, id, &spec, bundle),
        _ => (|| -> std::io::Result<Stdio> {
            Ok(Stdio {
                stdin: dup(0)?,
                stdout: dup(1)?,
                stderr: dup(2)?,
            })
        })()
        .map_err(|e| format!("exec: {e}"))
        .and_then(|stdio| {
            Runtime::new(state_root)
                .exec(id, &spec, stdio)
                .map_err(|e| e.to_string())
        }),
    };
    let pid = match started {
        Ok(pid) => Pid::from_raw(pid),
        Err(e) => {
            eprintln!("berth: {e}");
            return 126;
        }
    };
    wait_for(pid, &signals)
}

fn wait_for(pid: Pid, signals: &SigSet) -> i32 {
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) => {}
            Err(_) => return 126,
        }
        match signals.wait() {
            Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => {
                let _ = kill(pid, Signal::SIGKILL);
            }
            _ => {}
        }
    }
}

/// Starts the process on a terminal and hands the master to the engine.
fn exec_on_terminal(
    state_root: &Path,
    id: &str,
    spec: &ExecSpec,
    bundle: &Path,
) -> Result<i32, String> {
    // Bound by a relative name in the container directory: short whatever the root's length.
    std::env::set_current_dir(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let unique = format!("exec-{}", std::process::id());
    let socket_name = format!("{unique}.sock");
    let process_name = format!("{unique}.json");
    let _ = std::fs::remove_file(&socket_name);
    let listener = std::os::unix::net::UnixListener::bind(&socket_name)
        .map_err(|e| format!("console socket: {e}"))?;
    let result = (|| {
        let pid = Runtime::new(state_root)
            .exec_terminal(
                id,
                spec,
                bundle,
                &bundle.join(&process_name),
                &bundle.join(&socket_name),
            )
            .map_err(|e| e.to_string())?;
        let master = console::accept_terminal(&listener, std::time::Duration::from_secs(10))
            .and_then(|master| {
                // SAFETY: the engine passed a unix socket as this descriptor; it stays open
                // for the helper's life.
                let handoff = unsafe { BorrowedFd::borrow_raw(HANDOFF_FD) };
                console::send_fd(handoff, master.as_fd())
            });
        if let Err(e) = master {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            return Err(format!("cannot set up the terminal: {e}"));
        }
        Ok(pid)
    })();
    let _ = std::fs::remove_file(&socket_name);
    let _ = std::fs::remove_file(&process_name);
    result
}
