//! Pseudo-terminal masters passed over unix sockets (`SCM_RIGHTS`): the runtime's init sends
//! the master of a `-t` container's terminal to a console socket; the monitor or the exec
//! helper receives it, and the exec helper hands it on to the engine.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Waits (up to `timeout`) for the runtime to connect to `listener` and send the terminal.
pub fn accept_terminal(listener: &UnixListener, timeout: Duration) -> Result<OwnedFd, String> {
    let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(millis)) {
        Ok(n) if n > 0 => {}
        _ => return Err("the runtime did not send the terminal in time".into()),
    }
    let (sock, _) = listener.accept().map_err(|e| e.to_string())?;
    receive_fd(sock.as_fd())
}

/// Receives one descriptor sent with `SCM_RIGHTS` on `sock`.
pub fn receive_fd(sock: BorrowedFd<'_>) -> Result<OwnedFd, String> {
    let mut name = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| e.to_string())?;
    for cmsg in msg.cmsgs().map_err(|e| e.to_string())? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            if let Some(&fd) = received.first() {
                // SAFETY: SCM_RIGHTS just installed this fd in our table; we own it now.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err("no descriptor was sent".into())
}

/// Sends `fd` with `SCM_RIGHTS` on `sock`.
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<(), String> {
    let fds = [fd.as_raw_fd()];
    let iov = [IoSlice::new(b"terminal")];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}
