//! Network namespace helpers: bringing up a new namespace's loopback device (as runc and
//! Docker do for `--network none`), from a single-threaded caller.

use std::fs::File;
use std::os::fd::AsRawFd;

use nix::sched::{setns, CloneFlags};

/// Sets `lo` up inside the network namespace of `pid`, then returns the caller to its own
/// namespace. Must be called from a single-threaded process (setns moves the calling thread).
pub fn bring_up_loopback(pid: i32) -> std::io::Result<()> {
    if pid <= 0 {
        return Ok(());
    }
    let own = File::open("/proc/self/ns/net")?;
    let target = File::open(format!("/proc/{pid}/ns/net"))?;
    if same_ns(&own, &target)? {
        return Ok(());
    }
    setns(&target, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
    let result = set_loopback_up();
    setns(&own, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
    result
}

fn same_ns(a: &File, b: &File) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (ma, mb) = (a.metadata()?, b.metadata()?);
    Ok(ma.ino() == mb.ino() && ma.dev() == mb.dev())
}

fn set_loopback_up() -> std::io::Result<()> {
    // SAFETY: plain socket(2); the fd is owned by the File below and closed on drop.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and is not owned elsewhere.
    let sock = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
