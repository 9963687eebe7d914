//! The default seccomp profile against the host's libseccomp and kernel.
//!
//! - every syscall name resolves with the installed libseccomp, except the few known to be
//!   newer than libseccomp 2.5.4 (Debian 12), which libcontainer skips with a warning;
//! - the profile compiles to BPF, with and without `CAP_SYS_ADMIN`;
//! - loaded through libcontainer's own loader in a child process (this test binary re-run
//!   with `BERTH_SECCOMP_CHILD` set), it blocks and allows what a user would notice.

use std::process::Command;

use berth_runtime::capabilities::{default_capabilities, ALL_CAPABILITIES};
use berth_runtime::seccomp::default_profile;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

/// Syscalls the profile lists that libseccomp 2.5.4 does not know yet (kernel >= 5.17).
const NEWER_THAN_LIBSECCOMP_2_5_4: &[&str] = &[
    "cachestat",
    "fchmodat2",
    "futex_requeue",
    "futex_wait",
    "futex_wake",
    "map_shadow_stack",
    "mseal",
    "set_mempolicy_home_node",
];

const CHILD_ENV: &str = "BERTH_SECCOMP_CHILD";

fn caps(extra: &[&str]) -> Vec<String> {
    default_capabilities()
        .into_iter()
        .chain(extra.iter().copied())
        .map(String::from)
        .collect()
}

fn all_caps() -> Vec<String> {
    ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect()
}

#[test]
fn every_syscall_name_resolves_with_host_libseccomp() {
    let version = libseccomp::ScmpVersion::current().expect("libseccomp version");
    let mut unknown = Vec::new();
    for profile in [default_profile(&caps(&[])), default_profile(&all_caps())] {
        for rule in profile.syscalls().iter().flatten() {
            for name in rule.names() {
                if ScmpSyscall::from_name(name).is_err() && !unknown.contains(name) {
                    unknown.push(name.clone());
                }
            }
        }
    }
    eprintln!("libseccomp {version:?} does not know: {unknown:?}");
    for name in &unknown {
        assert!(
            NEWER_THAN_LIBSECCOMP_2_5_4.contains(&name.as_str()),
            "syscall {name:?} is unknown to libseccomp {version:?}: typo?"
        );
    }
}

fn arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchArm => ScmpArch::Arm,
        _ => ScmpArch::Native,
    }
}

/// Compiles `profile` the way libcontainer 0.7 does (including its reading of
/// MASKED_EQ's `valueTwo` as the mask) and exports the BPF program.
fn compile(profile: &LinuxSeccomp) -> Vec<u8> {
    let action = |a: LinuxSeccompAction, errno: Option<u32>| match a {
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno.unwrap_or(1) as i32),
        other => panic!("unexpected action {other:?}"),
    };
    let default = action(profile.default_action(), profile.default_errno_ret());
    let mut ctx = ScmpFilterContext::new(default).expect("new filter");
    for a in profile.architectures().iter().flatten() {
        ctx.add_arch(arch(*a)).expect("add arch");
    }
    for rule in profile.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret());
        for name in rule.names() {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let cmps: Vec<ScmpArgCompare> = rule
                .args()
                .iter()
                .flatten()
                .map(|a| {
                    let op = match a.op() {
                        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
                        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
                        LinuxSeccompOperator::ScmpCmpMaskedEq => {
                            ScmpCompareOp::MaskedEqual(a.value_two().unwrap_or(0))
                        }
                        other => panic!("unexpected operator {other:?}"),
                    };
                    ScmpArgCompare::new(a.index() as u32, op, a.value())
                })
                .collect();
            ctx.add_rule_conditional(act, sc, &cmps)
                .unwrap_or_else(|e| panic!("rule for {name}: {e}"));
        }
    }
    let file = tempfile::tempfile().expect("tempfile");
    ctx.export_bpf(&file).expect("export bpf");
    std::fs::read(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&file)
    ))
    .expect("read bpf")
}

#[test]
fn profile_compiles_to_bpf() {
    for set in [caps(&[]), caps(&["CAP_SYS_ADMIN"]), all_caps(), vec![]] {
        let bpf = compile(&default_profile(&set));
        assert!(!bpf.is_empty());
        assert_eq!(bpf.len() % 8, 0, "BPF instructions are 8 bytes");
    }
}

// ---- enforcement, in a child process --------------------------------------------------

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Runs a raw syscall; `Ok(ret)` or `Err(errno)`.
fn sys(nr: libc::c_long, args: &[libc::c_long]) -> Result<libc::c_long, i32> {
    let mut a = [0 as libc::c_long; 5];
    for (slot, v) in a.iter_mut().zip(args) {
        *slot = *v;
    }
    // SAFETY: only called with syscalls and arguments that either fail (bad pointers are
    // NULL or point to valid C strings) or have no effect on memory safety.
    let ret = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4]) };
    if ret < 0 {
        Err(errno())
    } else {
        Ok(ret)
    }
}

fn cstr(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).expect("no NUL")
}

/// Entry point of the child: does nothing unless `BERTH_SECCOMP_CHILD` is set.
#[test]
fn seccomp_child_entry() {
    let Ok(scenario) = std::env::var(CHILD_ENV) else {
        return;
    };
    let sys_admin = scenario == "sys_admin";
    let profile = if sys_admin {
        default_profile(&caps(&["CAP_SYS_ADMIN"]))
    } else {
        default_profile(&caps(&[]))
    };
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) takes integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "PR_SET_NO_NEW_PRIVS");
    libcontainer::seccomp::initialize_seccomp(&profile).expect("libcontainer loads the profile");

    // Ordinary things keep working.
    assert!(sys(libc::SYS_getpid, &[]).is_ok());
    let t = std::thread::spawn(|| 40 + 2);
    assert_eq!(t.join().expect("thread"), 42);
    let status = Command::new("/bin/true").status().expect("spawn /bin/true");
    assert!(status.success(), "/bin/true under the profile: {status}");
    let out = Command::new("/bin/sh")
        .args(["-c", "echo hi | cat"])
        .output()
        .expect("spawn sh");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert!(sys(
        libc::SYS_socket,
        &[libc::AF_UNIX as _, libc::SOCK_STREAM as _, 0, 0]
    )
    .is_ok());
    assert!(sys(libc::SYS_personality, &[0xffff_ffff, 0, 0, 0]).is_ok());
    // chroot is allowed (CAP_SYS_CHROOT is a default capability): the kernel answers ENOENT.
    let missing = cstr("/nonexistent-berth-seccomp-test");
    assert_eq!(
        sys(libc::SYS_chroot, &[missing.as_ptr() as _, 0, 0, 0]),
        Err(libc::ENOENT)
    );

    // Always blocked.
    const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
    const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
    assert_eq!(
        sys(
            libc::SYS_keyctl,
            &[KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0, 0]
        ),
        Err(libc::EPERM)
    );
    assert_eq!(sys(libc::SYS_userfaultfd, &[]), Err(libc::EPERM));
    assert_eq!(
        sys(libc::SYS_io_uring_setup, &[1, 0, 0, 0]),
        Err(libc::EPERM)
    );
    assert_eq!(sys(libc::SYS_reboot, &[]), Err(libc::EPERM));
    assert_eq!(
        sys(
            libc::SYS_socket,
            &[40 /* AF_VSOCK */, libc::SOCK_STREAM as _, 0, 0]
        ),
        Err(libc::EPERM)
    );
    assert_eq!(
        sys(
            libc::SYS_personality,
            &[0x0040_0000 /* READ_IMPLIES_EXEC */, 0, 0, 0]
        ),
        Err(libc::EPERM)
    );

    let src = cstr("/nonexistent-berth-src");
    let dst = cstr("/nonexistent-berth-dst");
    let mount = sys(
        libc::SYS_mount,
        &[src.as_ptr() as _, dst.as_ptr() as _, 0, libc::MS_BIND as _],
    );
    let unshare = sys(libc::SYS_unshare, &[libc::CLONE_NEWUTS as _, 0, 0, 0]);
    let clone3 = sys(libc::SYS_clone3, &[0, 0, 0, 0]);
    if sys_admin {
        // Allowed by the profile: the kernel itself answers.
        assert_eq!(mount, Err(libc::ENOENT), "mount with CAP_SYS_ADMIN");
        assert_eq!(unshare, Ok(0), "unshare with CAP_SYS_ADMIN");
        assert_ne!(clone3, Err(libc::ENOSYS), "clone3 with CAP_SYS_ADMIN");
        assert_eq!(
            sys(
                libc::SYS_keyctl,
                &[KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0, 0]
            ),
            Err(libc::EPERM),
            "keyctl stays blocked with CAP_SYS_ADMIN"
        );
    } else {
        assert_eq!(mount, Err(libc::EPERM), "mount without CAP_SYS_ADMIN");
        assert_eq!(unshare, Err(libc::EPERM), "unshare without CAP_SYS_ADMIN");
        assert_eq!(clone3, Err(libc::ENOSYS), "clone3 without CAP_SYS_ADMIN");
        // clone with a namespace flag is refused (it would fork on success).
        let flags = (libc::CLONE_NEWUTS | libc::SIGCHLD) as libc::c_long;
        let r = sys(libc::SYS_clone, &[flags, 0, 0, 0]);
        if r == Ok(0) {
            // SAFETY: we are the unexpected child; leave immediately.
            unsafe { libc::_exit(0) };
        }
        assert_eq!(
            r,
            Err(libc::EPERM),
            "clone(CLONE_NEWUTS) without CAP_SYS_ADMIN"
        );
        assert_eq!(sys(libc::SYS_setns, &[-1, 0, 0, 0]), Err(libc::EPERM));
    }
    println!("seccomp child {scenario}: all checks passed");
}

fn run_child(scenario: &str) {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .args([
            "--exact",
            "seccomp_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, scenario)
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "child {scenario} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

fn can_load_seccomp() -> bool {
    // Seccomp may be unavailable in some sandboxes; the profile tests above still ran.
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.contains("Seccomp:"))
        .unwrap_or(false)
}

#[test]
fn profile_enforced_without_sys_admin() {
    if std::env::var(CHILD_ENV).is_ok() || !can_load_seccomp() {
        return;
    }
    run_child("default");
}

#[test]
fn profile_enforced_with_sys_admin() {
    if std::env::var(CHILD_ENV).is_ok() || !can_load_seccomp() {
        return;
    }
    // unshare/mount need real privileges in the child for the kernel to answer as
    // expected; without root only the "blocked" half can be checked.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: needs root");
        return;
    }
    run_child("sys_admin");
}
