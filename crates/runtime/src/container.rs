//! Container lifecycle through youki's `libcontainer`: create + start an init process from an
//! OCI bundle, exec a process into a running container, delete what is left.
//!
//! Every function here forks (clone) and must be called from a single-threaded process: the
//! per-container monitor or the exec helper, never from inside the async daemon. The container's
//! init process becomes a child of the caller, so the caller can `waitpid` it.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::Spec;

use crate::seccomp_bpf::{self, CompiledFilter};

/// Failure creating, starting or controlling a container.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot create container {id}: {message}")]
    Create { id: String, message: String },
    #[error("cannot start container {id}: {message}")]
    Start { id: String, message: String },
    #[error("cannot exec in container {id}: {message}")]
    Exec { id: String, message: String },
    #[error("cannot delete container {id}: {message}")]
    Delete { id: String, message: String },
    #[error("{0}")]
    Sys(String),
}

/// The three stdio descriptors handed to a container process.
pub struct Stdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Where libcontainer keeps its per-container state (`<state_root>/<id>`).
#[derive(Debug, Clone)]
pub struct Runtime {
    pub state_root: PathBuf,
}

/// A process to run inside an existing container (`exec`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ExecSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub additional_gids: Vec<u32>,
    /// Give the process a pseudo-terminal (`exec -t`); see [`Runtime::exec_terminal`].
    #[serde(default)]
    pub terminal: bool,
}

impl Runtime {
    pub fn new(state_root: impl Into<PathBuf>) -> Self {
        Self {
            state_root: state_root.into(),
        }
    }

    /// Creates the container from `bundle/config.json` and starts its process. Returns the pid
    /// of the container's init (a child of the caller). `init` runs a reaping init as PID 1.
    /// With a terminal in the spec, `console_socket` names a listening unix socket: the
    /// container's init creates its pseudo-terminal and sends the master there (then `stdio`
    /// is not used). `before_start` runs once the container exists and its process waits to
    /// start (the terminal's master has been sent by then), with the init's pid; an error
    /// from it removes the container.
    pub fn create_and_start(
        &self,
        id: &str,
        bundle: &Path,
        stdio: Stdio,
        init: bool,
        console_socket: Option<&Path>,
        before_start: impl FnOnce(i32) -> Result<(), String>,
    ) -> Result<i32, RuntimeError> {
        std::fs::create_dir_all(&self.state_root).map_err(|e| RuntimeError::Create {
            id: id.to_string(),
            message: format!("state dir {}: {e}", self.state_root.display()),
        })?;
        let create_err = |e: &dyn std::fmt::Display| RuntimeError::Create {
            id: id.to_string(),
            message: e.to_string(),
        };
        let seccomp = self.seccomp_filter(bundle).map_err(|e| create_err(&e))?;
        let mut container = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
            .with_root_path(&self.state_root)
            .map_err(|e| create_err(&e))?
            .with_executor(BerthExecutor { init, seccomp })
            .with_stdin(stdio.stdin)
            .with_stdout(stdio.stdout)
            .with_stderr(stdio.stderr)
            .with_console_socket(console_socket)
            .as_init(bundle)
            .with_systemd(false)
            .with_detach(true)
            .build()
            .map_err(|e| create_err(&error_chain(&e)))?;
        let pid = container.pid().map(|p| p.as_raw()).unwrap_or(0);
        if let Err(e) = crate::netns::bring_up_loopback(pid) {
            tracing::warn!(id, "cannot bring up loopback: {e}");
        }
        if let Err(message) = before_start(pid) {
            let _ = container.delete(true);
            return Err(RuntimeError::Start {
                id: id.to_string(),
                message,
            });
        }
        if let Err(e) = container.start() {
            let _ = container.delete(true);
            return Err(RuntimeError::Start {
                id: id.to_string(),
                message: error_chain(&e),
            });
        }
        Ok(pid)
    }

    /// Runs `spec` inside the running container `id`; returns the new process's pid (a child
    /// of the caller).
    pub fn exec(&self, id: &str, spec: &ExecSpec, stdio: Stdio) -> Result<i32, RuntimeError> {
        let exec_err = |e: &dyn std::fmt::Display| RuntimeError::Exec {
            id: id.to_string(),
            message: e.to_string(),
        };
        let env: HashMap<String, String> = spec
            .env
            .iter()
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        let bundle = Container::load(self.state_root.join(id))
            .map_err(|e| exec_err(&e))?
            .bundle()
            .clone();
        let seccomp = self.seccomp_filter(&bundle).map_err(|e| exec_err(&e))?;
        let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
            .with_root_path(&self.state_root)
            .map_err(|e| exec_err(&e))?
            .with_executor(BerthExecutor {
                init: false,
                seccomp,
            })
            .with_stdin(stdio.stdin)
            .with_stdout(stdio.stdout)
            .with_stderr(stdio.stderr)
            .as_tenant()
            .with_container_args(spec.args.clone())
            .with_env(env)
            .with_cwd(spec.cwd.as_ref().map(PathBuf::from))
            .with_detach(true)
            .with_user(spec.uid)
            .with_group(spec.gid);
        if !spec.additional_gids.is_empty() {
            builder = builder.with_additional_gids(spec.additional_gids.clone());
        }
        let pid = builder.build().map_err(|e| exec_err(&error_chain(&e)))?;
        Ok(pid.as_raw())
    }

    /// Runs `spec` inside container `id` on a new pseudo-terminal: the process is built from
    /// the container's own (`bundle/config.json`) with `spec`'s command, environment, working
    /// directory and user, written to `process_file`, and the runtime sends the terminal's
    /// master to the listening `console_socket`. Returns the new process's pid.
    pub fn exec_terminal(
        &self,
        id: &str,
        spec: &ExecSpec,
        bundle: &Path,
        process_file: &Path,
        console_socket: &Path,
    ) -> Result<i32, RuntimeError> {
        let exec_err = |e: &dyn std::fmt::Display| RuntimeError::Exec {
            id: id.to_string(),
            message: e.to_string(),
        };
        let container_spec = Spec::load(bundle.join("config.json")).map_err(|e| exec_err(&e))?;
        let mut process = container_spec.process().clone().unwrap_or_default();
        process.set_terminal(Some(true));
        process.set_console_size(None);
        process.set_args(Some(spec.args.clone()));
        process.set_env(Some(spec.env.clone()));
        if let Some(cwd) = &spec.cwd {
            process.set_cwd(PathBuf::from(cwd));
        }
        let mut user = process.user().clone();
        if let Some(uid) = spec.uid {
            user.set_uid(uid);
        }
        if let Some(gid) = spec.gid {
            user.set_gid(gid);
        }
        user.set_additional_gids(Some(spec.additional_gids.clone()));
        process.set_user(user);
        let json = serde_json::to_vec(&process).map_err(|e| exec_err(&e))?;
        std::fs::write(process_file, json).map_err(|e| exec_err(&e))?;
        let pid = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
            .with_root_path(&self.state_root)
            .map_err(|e| exec_err(&e))?
            .with_executor(BerthExecutor {
                init: false,
                seccomp: self.seccomp_filter(bundle).map_err(|e| exec_err(&e))?,
            })
            .with_console_socket(Some(console_socket))
            .as_tenant()
            .with_process(Some(process_file))
            .with_detach(true)
            .build()
            .map_err(|e| exec_err(&error_chain(&e)))?;
        Ok(pid.as_raw())
    }

    /// The compiled seccomp filter of the container whose bundle is `bundle` (the profile is
    /// moved out of its config.json on first use; see [`crate::seccomp_bpf`]). Compiled
    /// filters are cached under `<state root>/seccomp/`.
    fn seccomp_filter(&self, bundle: &Path) -> Result<Option<Arc<CompiledFilter>>, String> {
        match seccomp_bpf::take_from_bundle(bundle)? {
            Some(profile) => {
                let cache = self.state_root.join("seccomp");
                let filter = seccomp_bpf::compiled(&profile, &cache)?;
                Ok(Some(Arc::new(filter)))
            }
            None => Ok(None),
        }
    }

    /// Cleans up after a container whose init has exited and been reaped: its cgroup
    /// directories and libcontainer's state, directly (libcontainer's own delete re-reads the
    /// state and procfs, a few ms per container). The container has its own PID namespace, so
    /// its init's exit ended every process in it; a cgroup still busy (processes finishing)
    /// is retried briefly, then left to [`Runtime::delete`].
    pub fn remove_exited(&self, id: &str, cgroup_path: &str) -> Result<(), RuntimeError> {
        let cgroup = crate::cgroups::Cgroup::new(cgroup_path);
        let mut removed = cgroup.remove();
        for _ in 0..20 {
            match &removed {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    removed = cgroup.remove();
                }
                _ => break,
            }
        }
        if let Err(e) = removed {
            tracing::debug!(id, "removing the cgroup directly: {e}");
            return self.delete(id, true);
        }
        let dir = self.state_root.join(id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RuntimeError::Delete {
                id: id.to_string(),
                message: format!("{}: {e}", dir.display()),
            }),
            _ => Ok(()),
        }
    }

    /// Removes libcontainer's state and the container's cgroup. With `force` the container's
    /// processes are killed first.
    pub fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let dir = self.state_root.join(id);
        if !dir.exists() {
            return Ok(());
        }
        let delete_err = |e: &dyn std::fmt::Display| RuntimeError::Delete {
            id: id.to_string(),
            message: e.to_string(),
        };
        let mut container = Container::load(dir.clone()).map_err(|e| delete_err(&e))?;
        if let Err(e) = container.delete(force) {
            // A container whose init is already gone may still fail to refresh; remove the
            // state directory so nothing is left behind.
            tracing::debug!(id, "libcontainer delete: {e}");
            std::fs::remove_dir_all(&dir).map_err(|e| delete_err(&e))?;
        }
        Ok(())
    }
}

/// Formats an error with its sources, innermost last.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
}

/// The workload executor run inside the container after pivot_root, capability drop and
/// seccomp: execs the user's command (Docker's exit codes 126/127 when it cannot), optionally
/// under a minimal reaping init.
#[derive(Clone)]
struct BerthExecutor {
    init: bool,
    /// The container's seccomp filter, compiled ahead ([`crate::seccomp_bpf`]); loaded right
    /// before the workload starts.
    seccomp: Option<Arc<CompiledFilter>>,
}

impl Executor for BerthExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let args: Vec<String> = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default();
        if args.is_empty() {
            fail_exec("no command specified", 127);
        }
        reset_signals();
        if let Some(filter) = &self.seccomp {
            if let Err(e) = seccomp_bpf::load(filter) {
                fail_exec(&format!("cannot load the seccomp filter: {e}"), 126);
            }
        }
        if self.init {
            run_as_init(&args);
        }
        exec_or_exit(&args)
    }

    fn validate(&self, _spec: &Spec) -> Result<(), ExecutorValidationError> {
        // Lookup failures are reported at exec time with Docker's exit codes instead.
        Ok(())
    }
}

/// Restores default dispositions and an empty mask: ignored signals survive exec, and the
/// caller (the monitor) ignores some of its own.
fn reset_signals() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: setting a signal's disposition to SIG_DFL is always valid; invalid numbers
        // just return an error.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    let _ = SigSet::empty().thread_set_mask();
}

/// Replaces the process with `args`, or writes Docker's message to stderr and exits 127 (not
/// found) or 126 (cannot be invoked).
fn exec_or_exit(args: &[String]) -> ! {
    let cargs: Vec<CString> = match args
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
    {
        Ok(v) => v,
        Err(_) => fail_exec("command contains a NUL byte", 127),
    };
    let err = match nix::unistd::execvp(&cargs[0], &cargs) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let name = &args[0];
    match err {
        nix::errno::Errno::ENOENT if !name.contains('/') => fail_exec(
            &format!("exec: \"{name}\": executable file not found in $PATH"),
            127,
        ),
        nix::errno::Errno::ENOENT => fail_exec(
            &format!("exec: \"{name}\": stat {name}: no such file or directory"),
            127,
        ),
        nix::errno::Errno::EACCES | nix::errno::Errno::EPERM => {
            fail_exec(&format!("exec: \"{name}\": permission denied"), 126)
        }
        nix::errno::Errno::ENOEXEC => {
            fail_exec(&format!("exec: \"{name}\": exec format error"), 126)
        }
        other => fail_exec(&format!("exec: \"{name}\": {}", other.desc()), 126),
    }
}

fn fail_exec(message: &str, code: i32) -> ! {
    let line = format!("berth: {message}\n");
    // SAFETY: writing a byte buffer to fd 2 and terminating without running atexit handlers of
    // the forked runtime image are both async-signal-safe.
    unsafe {
        libc::write(2, line.as_ptr().cast(), line.len());
        libc::_exit(code)
    }
}

/// Minimal init (like `docker run --init`): forks the command, forwards signals to it, reaps
/// every orphan, and exits with the command's status.
fn run_as_init(args: &[String]) -> ! {
    let mut all = SigSet::all();
    all.remove(Signal::SIGKILL);
    all.remove(Signal::SIGSTOP);
    let _ = all.thread_block();
    // SAFETY: the process is single-threaded here (libcontainer's container init).
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let _ = SigSet::all().thread_unblock();
            exec_or_exit(args)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => fail_exec(&format!("init: fork: {e}"), 126),
    };
    loop {
        let sig = match all.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig == Signal::SIGCHLD {
            if let Some(code) = reap(child) {
                // SAFETY: terminating the init process.
                unsafe { libc::_exit(code) }
            }
        } else {
            let _ = nix::sys::signal::kill(child, sig);
        }
    }
}

/// Reaps all exited children; returns the exit code if `main` was among them.
fn reap(main: Pid) -> Option<i32> {
    let mut result = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == main => result = Some(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == main => result = Some(128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return result,
            Ok(_) => continue,
        }
    }
}
