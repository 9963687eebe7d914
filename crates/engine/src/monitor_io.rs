//! The monitor's I/O loop: copies the container's output into the json-file log and to the
//! clients attached through `attach.sock`, feeds their input to the container's stdin (`-i`),
//! applies terminal resizes (`-t`), and reaps the container.
//!
//! Attach protocol (engine <-> monitor, on the container directory's `attach.sock`): the client
//! sends one JSON line, an [`AttachRequest`]. A resize request is applied and the connection
//! closed. Otherwise the monitor streams the requested output — raw bytes for a terminal,
//! Docker's multiplexed frames (8-byte header: stream, 0, 0, 0, big-endian length) otherwise —
//! and copies whatever the client sends afterwards to the container's stdin. When the container
//! exits, the monitor flushes and closes every client.
//!
//! A container started with `-i` or `-t` keeps its output from before the first attach (up to
//! [`REPLAY_LIMIT`]) and replays it to that client, so `run -it` never loses a prompt printed
//! between start and attach.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::logfile::{LineSplitter, LogWriter};

/// Name of the attach socket in the container directory.
pub const ATTACH_SOCKET: &str = "attach.sock";
/// Output kept for the first client of an interactive container.
pub const REPLAY_LIMIT: usize = 1 << 20;
/// How long an interactive container's monitor waits for its first client after the exit.
const FIRST_CLIENT_GRACE: Duration = Duration::from_millis(500);
/// A client that falls this far behind is disconnected rather than grow the monitor.
const CLIENT_BACKLOG_LIMIT: usize = 4 << 20;
/// Input buffered for the container's stdin before clients are no longer read.
const STDIN_BACKLOG_LIMIT: usize = 1 << 20;

/// The first line a client of `attach.sock` sends.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AttachRequest {
    #[serde(default)]
    pub stdin: bool,
    #[serde(default)]
    pub stdout: bool,
    #[serde(default)]
    pub stderr: bool,
    /// `(height, width)`: resize the container's terminal and close.
    #[serde(default)]
    pub resize: Option<(u16, u16)>,
}

/// Where the container's output comes from.
pub enum Output {
    Pipes { stdout: OwnedFd, stderr: OwnedFd },
    Terminal { master: OwnedFd },
}

/// How the loop treats input and late clients.
pub struct Options {
    /// Write end of the container's stdin (a pipe, or a duplicate of the terminal master).
    pub stdin: Option<OwnedFd>,
    /// Close the container's stdin when the first attached client's input ends.
    pub stdin_once: bool,
    /// Keep output for the first client (interactive containers).
    pub replay: bool,
    /// Called once the loop has had nothing to do for [`IDLE_AFTER`] since it started or
    /// since its last activity, and [`IDLE_AFTER`] after the start if it was busy until then
    /// (the monitor gives back memory there).
    pub on_idle: Option<fn()>,
}

/// How long the loop waits without events before it calls [`Options::on_idle`].
pub const IDLE_AFTER: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, PartialEq)]
enum Stream {
    Stdout = 1,
    Stderr = 2,
}

/// Output kept for the first client: the chunks and their total size.
type Replay = (VecDeque<(Stream, Vec<u8>)>, usize);

struct Source {
    fd: OwnedFd,
    stream: Stream,
    splitter: LineSplitter,
}

struct Client {
    sock: UnixStream,
    /// The request line, until it is complete.
    header: Option<Vec<u8>>,
    request: AttachRequest,
    input_open: bool,
    pending: VecDeque<u8>,
}

struct Loop<'a> {
    tty: bool,
    sources: Vec<Source>,
    /// Terminal master (for resizes), when there is one.
    master: Option<RawFd>,
    stdin: Option<OwnedFd>,
    stdin_pending: VecDeque<u8>,
    stdin_once: bool,
    /// The first client's input ended (`stdin_once`): close stdin once flushed.
    stdin_close_requested: bool,
    replay: Option<Replay>,
    listener: Option<UnixListener>,
    clients: Vec<Client>,
    log: &'a mut Option<LogWriter>,
    on_idle: Option<fn()>,
    /// Something happened since `on_idle` last ran.
    idle_pending: bool,
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on an fd we own, only adding O_NONBLOCK.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

fn read_fd(fd: RawFd, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: reading into our own buffer from an fd we own.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn write_fd(fd: RawFd, buf: &[u8]) -> std::io::Result<usize> {
    // SAFETY: writing our own buffer to an fd we own.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn would_block(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR))
}

/// Sets the terminal size of `master`.
pub(crate) fn resize(master: RawFd, height: u16, width: u16) {
    let size = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from our stack.
    unsafe {
        libc::ioctl(master, libc::TIOCSWINSZ, &size);
    }
}

/// Runs the loop until the container `pid` has exited and its output is drained; returns
/// its exit code (128 + signal for a killed one).
pub fn run(
    pid: i32,
    pidfd: Option<OwnedFd>,
    output: Output,
    options: Options,
    listener: Option<UnixListener>,
    log: &mut Option<LogWriter>,
) -> i32 {
    let (tty, master, sources) = match output {
        Output::Pipes { stdout, stderr } => (
            false,
            None,
            vec![
                Source {
                    fd: stdout,
                    stream: Stream::Stdout,
                    splitter: LineSplitter::default(),
                },
                Source {
                    fd: stderr,
                    stream: Stream::Stderr,
                    splitter: LineSplitter::default(),
                },
            ],
        ),
        Output::Terminal { master } => (
            true,
            Some(master.as_raw_fd()),
            vec![Source {
                fd: master,
                stream: Stream::Stdout,
                splitter: LineSplitter::default(),
            }],
        ),
    };
    for s in &sources {
        set_nonblocking(s.fd.as_raw_fd());
    }
    if let Some(fd) = &options.stdin {
        set_nonblocking(fd.as_raw_fd());
    }
    if let Some(l) = &listener {
        let _ = l.set_nonblocking(true);
    }
    let mut state = Loop {
        tty,
        sources,
        master,
        stdin: options.stdin,
        stdin_pending: VecDeque::new(),
        stdin_once: options.stdin_once,
        stdin_close_requested: false,
        replay: options.replay.then(|| (VecDeque::new(), 0)),
        listener,
        clients: Vec::new(),
        log,
        on_idle: options.on_idle,
        idle_pending: true,
    };
    let code = state.pump(pid, pidfd);
    state.finish();
    code
}

impl Loop<'_> {
    fn pump(&mut self, pid: i32, pidfd: Option<OwnedFd>) -> i32 {
        let mut exit_code: Option<i32> = None;
        let mut drain_deadline: Option<Instant> = None;
        let mut exited_at: Option<Instant> = None;
        let mut buf = vec![0u8; 64 * 1024];
        let mut idle_now = false;
        // The first call comes at the latest this long after the start, even if the container
        // keeps the loop busy (the pages starting it took are given back then).
        let mut first_idle_by = self.on_idle.map(|_| Instant::now() + IDLE_AFTER);
        loop {
            if self.sources.is_empty()
                && exit_code.is_some()
                && !self.awaiting_first_client(exited_at)
            {
                break;
            }
            if drain_deadline.is_some_and(|d| Instant::now() > d) {
                break;
            }
            // Slots: sources, pidfd, listener, stdin, clients.
            let mut fds: Vec<libc::pollfd> = Vec::new();
            let poll = |fd: RawFd, events: i16| libc::pollfd {
                fd,
                events,
                revents: 0,
            };
            for s in &self.sources {
                fds.push(poll(s.fd.as_raw_fd(), libc::POLLIN));
            }
            let pid_slot = match (&pidfd, exit_code) {
                (Some(p), None) => {
                    fds.push(poll(p.as_raw_fd(), libc::POLLIN));
                    Some(fds.len() - 1)
                }
                _ => None,
            };
            let listener_slot = self.listener.as_ref().map(|l| {
                fds.push(poll(l.as_raw_fd(), libc::POLLIN));
                fds.len() - 1
            });
            let stdin_slot = match &self.stdin {
                Some(fd) if !self.stdin_pending.is_empty() => {
                    fds.push(poll(fd.as_raw_fd(), libc::POLLOUT));
                    Some(fds.len() - 1)
                }
                _ => None,
            };
            let clients_from = fds.len();
            let input_room = self.stdin_pending.len() < STDIN_BACKLOG_LIMIT;
            for c in &self.clients {
                let mut events = 0;
                if c.header.is_some() || (c.input_open && input_room) {
                    events |= libc::POLLIN;
                }
                if !c.pending.is_empty() {
                    events |= libc::POLLOUT;
                }
                fds.push(poll(c.sock.as_raw_fd(), events));
            }
            // Without a pidfd (very old kernels) or while draining, poll with a timeout; while
            // an idle callback is due, wake up for it.
            let idle_due = self.idle_pending && self.on_idle.is_some();
            let timeout = if pidfd.is_none() || exit_code.is_some() {
                200
            } else if idle_due {
                IDLE_AFTER.as_millis() as i32
            } else {
                -1
            };
            // Right before sleeping, so that as little as possible runs between the two.
            if first_idle_by.is_some_and(|t| Instant::now() >= t) {
                idle_now = true;
            }
            if std::mem::take(&mut idle_now) {
                first_idle_by = None;
                if let Some(on_idle) = self.on_idle {
                    on_idle();
                }
            }
            // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                break;
            }
            if n == 0 && idle_due && timeout > 200 {
                self.idle_pending = false;
                idle_now = true;
                continue;
            }
            if n > 0 {
                self.idle_pending = true;
            }
            let revents: Vec<i16> = fds.iter().map(|f| f.revents).collect();

            // Clients first (their slots shift when sources close).
            for (i, client_revents) in revents[clients_from..].iter().enumerate().rev() {
                if *client_revents != 0 && !self.serve_client(i, *client_revents, &mut buf) {
                    self.drop_client(i);
                }
            }
            if let Some(slot) = stdin_slot {
                if revents[slot] != 0 {
                    self.flush_stdin();
                }
            }
            if let Some(slot) = listener_slot {
                if revents[slot] != 0 {
                    self.accept_clients();
                }
            }
            for i in (0..self.sources.len()).rev() {
                if revents[i] != 0 && !self.read_source(i, &mut buf) {
                    let mut source = self.sources.remove(i);
                    let stream = source.stream;
                    let log = &mut *self.log;
                    source.splitter.finish(|line| write_log(log, stream, line));
                }
            }
            let child_done = match pid_slot {
                Some(slot) => revents[slot] != 0,
                None => exit_code.is_none(),
            };
            if child_done && exit_code.is_none() {
                let flags = if pidfd.is_some() {
                    None
                } else {
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG)
                };
                match waitpid(Pid::from_raw(pid), flags) {
                    Ok(WaitStatus::Exited(_, code)) => exit_code = Some(code),
                    Ok(WaitStatus::Signaled(_, sig, _)) => exit_code = Some(128 + sig as i32),
                    Ok(_) => {}
                    Err(_) => exit_code = Some(255),
                }
                if exit_code.is_some() {
                    exited_at = Some(Instant::now());
                    // Everything else in the container's PID namespace dies with its init;
                    // give the pipes a moment to drain, never hang on a leaked descriptor.
                    drain_deadline = Some(Instant::now() + Duration::from_secs(2));
                }
            }
        }
        exit_code.unwrap_or(255)
    }

    /// An interactive container that exited before anyone attached waits a moment for the
    /// client `run -i/-t` is connecting, so a fast command's output still reaches it.
    fn awaiting_first_client(&self, exited_at: Option<Instant>) -> bool {
        let unread = self
            .replay
            .as_ref()
            .is_some_and(|(chunks, _)| !chunks.is_empty())
            || self.clients.iter().any(|c| c.header.is_some());
        unread && exited_at.is_some_and(|t| t.elapsed() < FIRST_CLIENT_GRACE)
    }

    /// Reads one chunk from source `i`; false when it reached its end.
    fn read_source(&mut self, i: usize, buf: &mut [u8]) -> bool {
        let fd = self.sources[i].fd.as_raw_fd();
        match read_fd(fd, buf) {
            Ok(0) => false,
            Ok(n) => {
                let data = &buf[..n];
                let stream = self.sources[i].stream;
                let log = &mut *self.log;
                self.sources[i]
                    .splitter
                    .push(data, |line| write_log(log, stream, line));
                self.broadcast(stream, data);
                true
            }
            Err(e) if would_block(&e) => true,
            // EIO: the terminal's last slave closed.
            Err(_) => false,
        }
    }

    fn broadcast(&mut self, stream: Stream, data: &[u8]) {
        if let Some((chunks, size)) = &mut self.replay {
            chunks.push_back((stream, data.to_vec()));
            *size += data.len();
            while *size > REPLAY_LIMIT {
                match chunks.pop_front() {
                    Some((_, c)) => *size -= c.len(),
                    None => break,
                }
            }
        }
        let tty = self.tty;
        let mut overflowing = Vec::new();
        for (i, c) in self.clients.iter_mut().enumerate() {
            if c.header.is_none() && queue_output(c, tty, stream, data) {
                overflowing.push(i);
            }
        }
        for i in overflowing.into_iter().rev() {
            self.drop_client(i);
        }
    }

    fn accept_clients(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((sock, _)) => {
                    let _ = sock.set_nonblocking(true);
                    self.clients.push(Client {
                        sock,
                        header: Some(Vec::new()),
                        request: AttachRequest::default(),
                        input_open: true,
                        pending: VecDeque::new(),
                    });
                }
                Err(_) => return,
            }
        }
    }

    /// Handles readiness on client `i`; false when the client is done.
    fn serve_client(&mut self, i: usize, revents: i16, buf: &mut [u8]) -> bool {
        if revents & libc::POLLOUT != 0 && !flush_client(&mut self.clients[i]) {
            return false;
        }
        if revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            return false;
        }
        if revents & (libc::POLLIN | libc::POLLHUP) == 0 {
            return true;
        }
        let client = &self.clients[i];
        if client.header.is_none() && !client.input_open {
            // Nothing more to read and the peer hung up entirely.
            return revents & libc::POLLHUP == 0;
        }
        let n = match self.clients[i].sock.read(buf) {
            Ok(n) => n,
            Err(e) if would_block(&e) => return true,
            Err(_) => return false,
        };
        if self.clients[i].header.is_some() {
            return n > 0 && self.read_header(i, &buf[..n]);
        }
        if n == 0 {
            // The client's input ended; it may still read output (a half-closed socket).
            let client = &mut self.clients[i];
            client.input_open = false;
            let wants_output = client.request.stdout || client.request.stderr;
            if client.request.stdin {
                self.close_stdin_when_flushed();
            }
            return wants_output && revents & libc::POLLHUP == 0;
        }
        if self.clients[i].request.stdin && self.stdin.is_some() {
            self.stdin_pending.extend(&buf[..n]);
            self.flush_stdin();
        }
        true
    }

    /// Accumulates the request line; applies it once complete. False closes the client.
    fn read_header(&mut self, i: usize, data: &[u8]) -> bool {
        let Some(header) = self.clients[i].header.as_mut() else {
            return true;
        };
        header.extend_from_slice(data);
        let Some(end) = header.iter().position(|&b| b == b'\n') else {
            return header.len() < 4096;
        };
        let rest = header.split_off(end + 1);
        let request: AttachRequest = match serde_json::from_slice(&header[..end]) {
            Ok(r) => r,
            Err(_) => return false,
        };
        if let Some((height, width)) = request.resize {
            if let Some(master) = self.master {
                resize(master, height, width);
            }
            return false;
        }
        let client = &mut self.clients[i];
        client.header = None;
        client.request = request;
        if (client.request.stdout || client.request.stderr) && self.replay.is_some() {
            let (chunks, _) = self.replay.take().unwrap_or_default();
            let tty = self.tty;
            for (stream, chunk) in chunks {
                queue_output(client, tty, stream, &chunk);
            }
        }
        if !rest.is_empty() && client.request.stdin && self.stdin.is_some() {
            self.stdin_pending.extend(rest);
            self.flush_stdin();
        }
        flush_client(&mut self.clients[i])
    }

    fn drop_client(&mut self, i: usize) {
        let client = self.clients.remove(i);
        if client.input_open && client.request.stdin {
            self.close_stdin_when_flushed();
        }
    }

    fn flush_stdin(&mut self) {
        let Some(fd) = &self.stdin else {
            self.stdin_pending.clear();
            return;
        };
        while !self.stdin_pending.is_empty() {
            let (front, _) = self.stdin_pending.as_slices();
            match write_fd(fd.as_raw_fd(), front) {
                Ok(n) => {
                    self.stdin_pending.drain(..n);
                }
                Err(e) if would_block(&e) => return,
                Err(_) => {
                    // The container closed its stdin: drop what it will never read.
                    self.stdin_pending.clear();
                    self.stdin = None;
                    return;
                }
            }
        }
        if self.stdin_close_requested {
            self.stdin = None;
        }
    }

    /// With `stdin_once`, the end of an attached client's input closes the container's stdin
    /// (after what is buffered): `echo hi | run -i IMAGE cat` ends. A terminal has no such
    /// end: the user types its EOF character instead.
    fn close_stdin_when_flushed(&mut self) {
        if !self.stdin_once || self.tty {
            return;
        }
        self.stdin_close_requested = true;
        if self.stdin_pending.is_empty() {
            self.stdin = None;
        }
    }

    /// Flushes what clients still have to read (bounded), then closes them.
    fn finish(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        for client in &mut self.clients {
            let _ = client.sock.set_nonblocking(false);
            let _ = client
                .sock
                .set_write_timeout(Some(deadline.saturating_duration_since(Instant::now())));
            let (a, b) = client.pending.as_slices();
            let _ = client
                .sock
                .write_all(a)
                .and_then(|_| client.sock.write_all(b));
        }
        self.clients.clear();
    }
}

/// Queues output for a client that asked for `stream`; true when the client fell too far
/// behind and must be dropped.
fn queue_output(client: &mut Client, tty: bool, stream: Stream, data: &[u8]) -> bool {
    let wanted = match stream {
        Stream::Stdout => client.request.stdout,
        Stream::Stderr => client.request.stderr,
    };
    if !wanted {
        return false;
    }
    if !tty {
        let len = (data.len() as u32).to_be_bytes();
        client
            .pending
            .extend([stream as u8, 0, 0, 0, len[0], len[1], len[2], len[3]]);
    }
    client.pending.extend(data);
    client.pending.len() > CLIENT_BACKLOG_LIMIT
}

/// Writes what a client has pending without blocking; false when the client is gone.
fn flush_client(client: &mut Client) -> bool {
    while !client.pending.is_empty() {
        let (front, _) = client.pending.as_slices();
        match client.sock.write(front) {
            Ok(0) => return false,
            Ok(n) => {
                client.pending.drain(..n);
            }
            Err(e) if would_block(&e) => return true,
            Err(_) => return false,
        }
    }
    true
}

fn write_log(log: &mut Option<LogWriter>, stream: Stream, line: &[u8]) {
    if let Some(l) = log.as_mut() {
        let name = match stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        let _ = l.write(name, line);
    }
}
