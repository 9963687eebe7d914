//! The exec helper (`berth __exec STATE_ROOT ID SPEC_JSON`): a single-threaded process that
//! joins a running container through the runtime, runs one process there with the helper's own
//! stdout/stderr, waits for it and exits with its exit code. SIGTERM to the helper kills the
//! process (used for health-check timeouts).

use std::os::fd::OwnedFd;
use std::path::Path;

use berth_runtime::container::{ExecSpec, Runtime, Stdio};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Entry point; returns the exit code (the exec'd process's, or 126 if it could not start).
pub fn main(state_root: &Path, id: &str, spec_json: &str) -> i32 {
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
    let stdio = match (|| -> std::io::Result<Stdio> {
        Ok(Stdio {
            stdin: std::fs::File::open("/dev/null")?.into(),
            stdout: dup(1)?,
            stderr: dup(2)?,
        })
    })() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth: exec: {e}");
            return 126;
        }
    };
    let pid = match Runtime::new(state_root).exec(id, &spec, stdio) {
        Ok(pid) => Pid::from_raw(pid),
        Err(e) => {
            eprintln!("berth: {e}");
            return 126;
        }
    };
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
