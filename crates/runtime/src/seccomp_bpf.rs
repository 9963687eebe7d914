//! The seccomp profile as a compiled BPF program, built once and loaded by every container.
//!
//! Given the OCI profile in `linux.seccomp`, libcontainer rebuilds the filter with libseccomp
//! inside every container's init (hundreds of rules resolved and compiled: ~8-10 ms of each
//! container start here). Instead, [`take_from_bundle`] moves the profile out of the bundle's
//! `config.json` (into `seccomp.json` beside it, so libcontainer does not see it), the filter
//! is compiled once per distinct profile ([`compile`], cached under the runtime's state dir by
//! the profile's sha256) and the container's executor loads the ready program with
//! `seccomp(2)` right before it execs the workload ([`load`]) — the point where libcontainer
//! loads it too when `noNewPrivileges` is set, which is the only case handled this way.
//!
//! The rules are translated as libcontainer 0.7 translates them (its `SCMP_CMP_MASKED_EQ`
//! takes the mask from `valueTwo`; rules whose action equals the default are skipped; names
//! the host's libseccomp does not know are skipped), so a profile means the same either way.

use std::collections::HashSet;
use std::io::{Read as _, Seek as _};
use std::os::fd::FromRawFd as _;
use std::path::{Path, PathBuf};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator, Spec,
};
use sha2::{Digest as _, Sha256};

/// Where a bundle keeps the profile taken out of its `config.json`.
pub const PROFILE_FILE: &str = "seccomp.json";
/// `SECCOMP_SET_MODE_FILTER`.
const SET_MODE_FILTER: libc::c_uint = 1;
/// `SECCOMP_FILTER_FLAG_TSYNC`, `_LOG`, `_SPEC_ALLOW`, `_WAIT_KILLABLE_RECV`.
const FLAG_TSYNC: u32 = 1;
const FLAG_LOG: u32 = 2;
const FLAG_SPEC_ALLOW: u32 = 4;
const FLAG_WAIT_KILLABLE_RECV: u32 = 32;
/// Size of one BPF instruction (`struct sock_filter`).
const INSTRUCTION: usize = 8;

/// A compiled filter: the BPF program and the `seccomp(2)` flags to load it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledFilter {
    pub program: Vec<u8>,
    pub flags: u32,
}

/// The profile a container's filter comes from: moved out of `bundle/config.json` into
/// `bundle/seccomp.json` when the config still has it, else read from `seccomp.json` if an
/// earlier start moved it. None when the container has no profile, or one this module leaves
/// to libcontainer (no `noNewPrivileges`, or a notify action).
pub fn take_from_bundle(bundle: &Path) -> Result<Option<LinuxSeccomp>, String> {
    let config = bundle.join("config.json");
    let saved = bundle.join(PROFILE_FILE);
    let mut spec = Spec::load(&config).map_err(|e| format!("{}: {e}", config.display()))?;
    let no_new_privs = spec
        .process()
        .as_ref()
        .and_then(|p| p.no_new_privileges())
        .unwrap_or(false);
    let in_config = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
    match in_config {
        Some(profile) => {
            if !no_new_privs || uses_notify(&profile) {
                return Ok(None);
            }
            let json = serde_json::to_vec(&profile).map_err(|e| e.to_string())?;
            std::fs::write(&saved, json).map_err(|e| format!("{}: {e}", saved.display()))?;
            if let Some(linux) = spec.linux_mut() {
                linux.set_seccomp(None);
            }
            spec.save(&config)
                .map_err(|e| format!("{}: {e}", config.display()))?;
            Ok(Some(profile))
        }
        None => match std::fs::read(&saved) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", saved.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", saved.display())),
        },
    }
}

fn uses_notify(profile: &LinuxSeccomp) -> bool {
    profile.default_action() == LinuxSeccompAction::ScmpActNotify
        || profile
            .syscalls()
            .iter()
            .flatten()
            .any(|s| s.action() == LinuxSeccompAction::ScmpActNotify)
}

/// The compiled filter of `profile`, from `cache_dir/<sha256>.bpf` when an earlier container
/// compiled the same profile with the same libseccomp, else compiled now and cached.
pub fn compiled(profile: &LinuxSeccomp, cache_dir: &Path) -> Result<CompiledFilter, String> {
    let path = cache_path(profile, cache_dir)?;
    if let Ok(bytes) = std::fs::read(&path) {
        if let Some(filter) = decode(&bytes) {
            return Ok(filter);
        }
    }
    let filter = compile(profile)?;
    // Cached with a temporary name and a rename: a reader never sees half a file.
    let _ = std::fs::create_dir_all(cache_dir);
    let tmp = cache_dir.join(format!(".{}.tmp", std::process::id()));
    if std::fs::write(&tmp, encode(&filter)).is_ok() && std::fs::rename(&tmp, &path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(filter)
}

fn cache_path(profile: &LinuxSeccomp, cache_dir: &Path) -> Result<PathBuf, String> {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(profile).map_err(|e| e.to_string())?);
    // A different libseccomp may resolve names (or build the program) differently.
    let v = libseccomp::ScmpVersion::current().map_err(|e| e.to_string())?;
    h.update(format!("libseccomp {}.{}.{}", v.major, v.minor, v.micro));
    Ok(cache_dir.join(format!("{}.bpf", hex_of(&h.finalize()))))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn encode(filter: &CompiledFilter) -> Vec<u8> {
    let mut out = filter.flags.to_le_bytes().to_vec();
    out.extend_from_slice(&filter.program);
    out
}

fn decode(bytes: &[u8]) -> Option<CompiledFilter> {
    let (flags, program) = bytes.split_at_checked(4)?;
    if program.is_empty() || program.len() % INSTRUCTION != 0 {
        return None;
    }
    Some(CompiledFilter {
        flags: u32::from_le_bytes(flags.try_into().ok()?),
        program: program.to_vec(),
    })
}

fn action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, String> {
    let errno = errno.map_or(libc::EPERM, |e| e as i32);
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(
            u16::try_from(errno).map_err(|_| format!("trace value {errno} is out of range"))?,
        ),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => {
            return Err("seccomp notify actions are not compiled ahead".into())
        }
    })
}

fn compare(op: LinuxSeccompOperator, value_two: Option<u64>) -> ScmpCompareOp {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(value_two.unwrap_or(0)),
    }
}

/// libseccomp's architecture for an OCI one (both are named `SCMP_ARCH_*`).
fn arch(a: Arch) -> Result<ScmpArch, String> {
    let name = serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    name.parse()
        .map_err(|_| format!("seccomp architecture {name:?} is unknown to libseccomp"))
}

/// Compiles `profile` into a BPF program with libseccomp.
pub fn compile(profile: &LinuxSeccomp) -> Result<CompiledFilter, String> {
    let fail = |what: &str, e: libseccomp::error::SeccompError| format!("{what}: {e}");
    let default = action(profile.default_action(), profile.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| fail("new filter", e))?;
    ctx.set_ctl_nnp(false).map_err(|e| fail("nnp", e))?;
    let mut flags = 0;
    for flag in profile.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
        };
    }
    for a in profile.architectures().iter().flatten() {
        ctx.add_arch(arch(*a)?)
            .map_err(|e| fail(&format!("architecture {a:?}"), e))?;
    }
    for rule in profile.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        for name in rule.names() {
            // A name this libseccomp does not know: the kernel likely lacks the call too.
            let Ok(call) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let Some(args) = rule.args() else {
                ctx.add_rule(act, call)
                    .map_err(|e| fail(&format!("rule for {name}"), e))?;
                continue;
            };
            let comparisons: Vec<ScmpArgCompare> = args
                .iter()
                .map(|a| {
                    ScmpArgCompare::new(a.index() as u32, compare(a.op(), a.value_two()), a.value())
                })
                .collect();
            let distinct: HashSet<usize> = args.iter().map(|a| a.index()).collect();
            // One rule may compare each argument once; several conditions on the same
            // argument become separate rules (either may match), as runc and libcontainer do.
            let groups: Vec<&[ScmpArgCompare]> = if distinct.len() == args.len() {
                vec![&comparisons[..]]
            } else {
                comparisons.iter().map(std::slice::from_ref).collect()
            };
            for group in groups {
                ctx.add_rule_conditional(act, call, group)
                    .map_err(|e| fail(&format!("rule for {name}"), e))?;
            }
        }
    }
    let program = export(&ctx)?;
    Ok(CompiledFilter { program, flags })
}

/// The context's BPF program (libseccomp writes it to a file descriptor: an anonymous file).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>, String> {
    // SAFETY: memfd_create with a valid name; the returned fd is owned by the File below.
    let fd = unsafe { libc::memfd_create(c"berth-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor we own.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    ctx.export_bpf(&file)
        .map_err(|e| format!("exporting the filter: {e}"))?;
    let mut program = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut program))
        .map_err(|e| format!("reading the filter: {e}"))?;
    if program.is_empty() || program.len() % INSTRUCTION != 0 {
        return Err(format!("the exported filter has {} bytes", program.len()));
    }
    Ok(program)
}

/// Installs `filter` on the calling thread (needs no_new_privs or CAP_SYS_ADMIN).
pub fn load(filter: &CompiledFilter) -> std::io::Result<()> {
    let prog = libc::sock_fprog {
        len: (filter.program.len() / INSTRUCTION) as libc::c_ushort,
        filter: filter.program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: seccomp(2) reads `prog` (a valid program of `len` instructions that outlives
    // the call) and installs a copy.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SET_MODE_FILTER,
            filter.flags as libc::c_uint,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::default_profile;

    fn caps(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Runs `check` in a forked child after loading `filter` (with no_new_privs); the child's
    /// exit status is the result.
    fn in_child_with(filter: &CompiledFilter, check: fn() -> i32) -> i32 {
        // SAFETY: the test forks; the child only makes raw syscalls and exits.
        match unsafe { libc::fork() } {
            0 => {
                // SAFETY: prctl and _exit in the child.
                unsafe {
                    libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                    if load(filter).is_err() {
                        libc::_exit(100);
                    }
                    libc::_exit(check());
                }
            }
            pid => {
                let mut status = 0;
                // SAFETY: waiting for our child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                libc::WEXITSTATUS(status)
            }
        }
    }

    #[test]
    fn the_compiled_default_profile_allows_ordinary_calls_and_refuses_the_rest() {
        let filter = compile(&default_profile(&caps(&[]))).unwrap();
        assert!(filter.program.len() > 100 * INSTRUCTION);
        // getpid is allowed; keyctl fails with EPERM; unshare(CLONE_NEWNET) too.
        let ok = in_child_with(&filter, || {
            // SAFETY: harmless raw syscalls.
            unsafe {
                if libc::getpid() <= 0 {
                    return 1;
                }
                if libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0) != -1
                    || *libc::__errno_location() != libc::EPERM
                {
                    return 2;
                }
                if libc::unshare(libc::CLONE_NEWNET) != -1
                    || *libc::__errno_location() != libc::EPERM
                {
                    return 3;
                }
            }
            0
        });
        assert_eq!(ok, 0);
    }

    #[test]
    fn filters_are_cached_by_profile() {
        let dir = tempfile::tempdir().unwrap();
        let plain = default_profile(&caps(&[]));
        let admin = default_profile(&caps(&["CAP_SYS_ADMIN"]));
        let a = compiled(&plain, dir.path()).unwrap();
        let b = compiled(&admin, dir.path()).unwrap();
        assert_ne!(a, b, "different profiles compile differently");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        // The cached copy is what a second container gets.
        assert_eq!(compiled(&plain, dir.path()).unwrap(), a);
        // A damaged cache file is compiled again.
        for e in std::fs::read_dir(dir.path()).unwrap() {
            std::fs::write(e.unwrap().path(), b"bad").unwrap();
        }
        assert_eq!(compiled(&plain, dir.path()).unwrap(), a);
    }
}
