//! Docker's default seccomp profile, as an OCI [`LinuxSeccomp`].
//!
//! The profile follows the semantics of Docker's default profile (written here from the
//! documented behaviour, not copied):
//!
//! - everything not listed fails with `EPERM` (`SCMP_ACT_ERRNO`, errno 1);
//! - a large allowlist covers what ordinary programs need (files, memory, signals, time,
//!   processes, sockets, IPC, `ptrace` of one's own children, ...);
//! - `personality` is allowed only for the harmless personas (`PER_LINUX`, `PER_LINUX32`,
//!   `UNAME26` variants and the query value `0xffffffff`);
//! - `socket` is allowed for every address family except `AF_VSOCK`;
//! - without `CAP_SYS_ADMIN`, `clone` is allowed only when it creates no namespace, and
//!   `clone3` fails with `ENOSYS` so that libc falls back to `clone` (seccomp cannot look
//!   inside the `clone3` argument struct);
//! - syscalls whose only use is privileged are allowed only when the container holds the
//!   matching capability (`mount`/`unshare`/`setns` need `CAP_SYS_ADMIN`, `reboot` needs
//!   `CAP_SYS_BOOT`, `settimeofday` needs `CAP_SYS_TIME`, module loading needs
//!   `CAP_SYS_MODULE`, ...);
//! - some syscalls stay blocked whatever the capabilities: the kernel keyring (`keyctl`,
//!   `add_key`, `request_key`, not namespaced), `kexec_*`, `userfaultfd`, `io_uring_*`,
//!   `swapon`/`swapoff`, obsolete ones (`uselib`, `nfsservctl`, `_sysctl`, ...).
//!
//! Names are resolved by libseccomp when the container starts; youki's libcontainer skips a
//! name the installed libseccomp does not know (with a warning) instead of failing, so the
//! profile may list syscalls newer than the host's libseccomp. The unit tests compile the
//! profile with the host's libseccomp and run it in a child process.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

/// `EPERM`: the errno of every syscall the profile does not allow.
pub const DEFAULT_ERRNO: u32 = 1;
/// `ENOSYS`: returned for `clone3` without `CAP_SYS_ADMIN`, so libc falls back to `clone`.
pub const ENOSYS: u32 = 38;
/// Namespace flags of `clone(2)`: `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
/// CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET`.
pub const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
/// `AF_VSOCK`, the one socket family the profile refuses.
pub const AF_VSOCK: u64 = 40;
/// `personality(2)` values allowed: `PER_LINUX`, `PER_LINUX32`, `UNAME26`,
/// `UNAME26 | PER_LINUX32`, and `0xffffffff` (query the current persona).
pub const ALLOWED_PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// Syscalls every container may use.
const BASE: &[&str] = &[
    // files and directories
    "access",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "close",
    "close_range",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futimesat",
    "getcwd",
    "getdents",
    "getdents64",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "name_to_handle_at",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pread64",
    "preadv",
    "preadv2",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "rmdir",
    "sendfile",
    "sendfile64",
    "setxattr",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "tee",
    "truncate",
    "truncate64",
    "umask",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vmsplice",
    "write",
    "writev",
    // polling and event fds
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "_newselect",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "ppoll_time64",
    "pselect6",
    "pselect6_time64",
    "select",
    "signalfd",
    "signalfd4",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    // asynchronous I/O (io_uring stays blocked, as in Docker)
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "io_setup",
    "io_submit",
    "ioctl",
    "ioprio_get",
    "ioprio_set",
    // memory
    "brk",
    "cachestat",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mremap",
    "mseal",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "remap_file_pages",
    // processes and threads
    "capget",
    "capset",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "fork",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "get_robust_list",
    "get_thread_area",
    "getcpu",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "getrusage",
    "getsid",
    "gettid",
    "getuid",
    "getuid32",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "pidfd_open",
    "pidfd_send_signal",
    "prctl",
    "prlimit64",
    "process_mrelease",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "restart_syscall",
    "rseq",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "setsid",
    "setuid",
    "setuid32",
    "tgkill",
    "tkill",
    "ugetrlimit",
    "vfork",
    "wait4",
    "waitid",
    "waitpid",
    // signals
    "alarm",
    "pause",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sigaltstack",
    "sigprocmask",
    "sigreturn",
    // time (reading clocks; setting them needs CAP_SYS_TIME, checked by the kernel too)
    "adjtimex",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "getitimer",
    "gettimeofday",
    "nanosleep",
    "setitimer",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "times",
    // sockets (`socket` itself is allowed with a condition, see below)
    "accept",
    "accept4",
    "bind",
    "connect",
    "getpeername",
    "getsockname",
    "getsockopt",
    "listen",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "send",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setsockopt",
    "shutdown",
    "socketcall",
    "socketpair",
    // System V and POSIX IPC (namespaced by the IPC namespace)
    "ipc",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    // system information
    "getrandom",
    "sysinfo",
    "uname",
];

/// Allowed on x86 (all three x86 ABIs).
const X86_ONLY: &[&str] = &["arch_prctl", "modify_ldt"];

/// Allowed on ARM (32 and 64 bit).
const ARM_ONLY: &[&str] = &[
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "breakpoint",
    "cacheflush",
    "set_tls",
    "sync_file_range2",
];

/// Syscalls allowed only when the container holds at least one of the listed capabilities.
const BY_CAPABILITY: &[(&[&str], &[&str])] = &[
    (
        &["CAP_SYS_ADMIN"],
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "pivot_root",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    (&["CAP_BPF"], &["bpf"]),
    (&["CAP_PERFMON"], &["perf_event_open"]),
    (&["CAP_SYSLOG"], &["syslog"]),
    (&["CAP_DAC_READ_SEARCH"], &["open_by_handle_at"]),
    (&["CAP_SYS_BOOT"], &["reboot"]),
    (&["CAP_SYS_CHROOT"], &["chroot"]),
    (
        &["CAP_SYS_MODULE"],
        &["delete_module", "finit_module", "init_module"],
    ),
    (&["CAP_SYS_PACCT"], &["acct"]),
    (
        &["CAP_SYS_PTRACE"],
        &["kcmp", "pidfd_getfd", "process_madvise"],
    ),
    (
        &["CAP_SYS_TIME"],
        &["clock_settime", "clock_settime64", "settimeofday", "stime"],
    ),
    (&["CAP_SYS_TTY_CONFIG"], &["vhangup"]),
    (
        &["CAP_SYS_NICE"],
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
];

/// x86-only syscalls gated by `CAP_SYS_RAWIO`.
const X86_RAWIO: &[&str] = &["ioperm", "iopl"];

/// Architectures the filter covers on this host: the native ABI plus its 32-bit compat ABI.
/// x32 is left out (Docker lists it; almost nothing uses it): every architecture multiplies
/// the time libseccomp takes to build the filter at each container start. Syscalls from an
/// architecture not listed are refused.
pub fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86]
    } else if cfg!(target_arch = "x86") {
        vec![Arch::ScmpArchX86]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else if cfg!(target_arch = "arm") {
        vec![Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchNative]
    }
}

fn has_cap(capabilities: &[String], cap: &str) -> bool {
    capabilities.iter().any(|c| {
        let c = c.trim().to_ascii_uppercase();
        c == cap || format!("CAP_{c}") == cap
    })
}

fn rule(names: Vec<String>, action: LinuxSeccompAction) -> LinuxSyscall {
    let mut s = LinuxSyscall::default();
    s.set_names(names);
    s.set_action(action);
    s
}

fn arg(
    index: usize,
    value: u64,
    value_two: Option<u64>,
    op: LinuxSeccompOperator,
) -> LinuxSeccompArg {
    let builder = LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .op(op);
    let builder = match value_two {
        Some(v) => builder.value_two(v),
        None => builder,
    };
    // Every field is set and the builder has no validation step, so this cannot fail.
    builder
        .build()
        .expect("LinuxSeccompArg builder with every field set")
}

/// The names the profile allows unconditionally for `capabilities` (sorted, deduplicated).
pub fn allowed_syscalls(capabilities: &[String]) -> Vec<String> {
    let x86 = cfg!(any(target_arch = "x86_64", target_arch = "x86"));
    let arm = cfg!(any(target_arch = "aarch64", target_arch = "arm"));

    let mut names: Vec<&str> = BASE.to_vec();
    if x86 {
        names.extend_from_slice(X86_ONLY);
        if has_cap(capabilities, "CAP_SYS_RAWIO") {
            names.extend_from_slice(X86_RAWIO);
        }
    }
    if arm {
        names.extend_from_slice(ARM_ONLY);
    }
    for (caps, syscalls) in BY_CAPABILITY {
        if caps.iter().any(|c| has_cap(capabilities, c)) {
            names.extend_from_slice(syscalls);
        }
    }
    names.sort_unstable();
    names.dedup();
    names.into_iter().map(str::to_string).collect()
}

/// Docker's default seccomp profile for a container holding `capabilities` (canonical
/// `CAP_XXX` names; other spellings are accepted too).
pub fn default_profile(capabilities: &[String]) -> LinuxSeccomp {
    let sys_admin = has_cap(capabilities, "CAP_SYS_ADMIN");
    let mut syscalls = vec![rule(
        allowed_syscalls(capabilities),
        LinuxSeccompAction::ScmpActAllow,
    )];

    // personality(2): only the harmless personas; one rule per value (an OR).
    for value in ALLOWED_PERSONALITIES {
        let mut r = rule(
            vec!["personality".to_string()],
            LinuxSeccompAction::ScmpActAllow,
        );
        r.set_args(Some(vec![arg(
            0,
            value,
            None,
            LinuxSeccompOperator::ScmpCmpEq,
        )]));
        syscalls.push(r);
    }

    // socket(2): every family except AF_VSOCK.
    let mut r = rule(vec!["socket".to_string()], LinuxSeccompAction::ScmpActAllow);
    r.set_args(Some(vec![arg(
        0,
        AF_VSOCK,
        None,
        LinuxSeccompOperator::ScmpCmpNe,
    )]));
    syscalls.push(r);

    if !sys_admin {
        // clone(2) without namespace flags: (flags & CLONE_NAMESPACE_FLAGS) == 0.
        //
        // Runtimes disagree on which of `value`/`valueTwo` is the mask of
        // SCMP_CMP_MASKED_EQ: runc hands `value` to libseccomp as the mask, youki's
        // libcontainer 0.7 (our runtime) hands it `valueTwo`. libseccomp also reduces the
        // expected value with the mask, so the encoding meant for the other runtime turns
        // into `(flags & 0) == 0`, which allows every clone. Only libcontainer's encoding
        // is emitted: mask in `valueTwo`, expected result (0) in `value`.
        let mut r = rule(vec!["clone".to_string()], LinuxSeccompAction::ScmpActAllow);
        r.set_args(Some(vec![arg(
            0,
            0,
            Some(CLONE_NAMESPACE_FLAGS),
            LinuxSeccompOperator::ScmpCmpMaskedEq,
        )]));
        syscalls.push(r);

        // clone3(2): its flags live in a struct seccomp cannot read; ENOSYS makes libc
        // fall back to clone(2), which is checked above.
        let mut r = rule(vec!["clone3".to_string()], LinuxSeccompAction::ScmpActErrno);
        r.set_errno_ret(Some(ENOSYS));
        syscalls.push(r);
    }

    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActErrno);
    profile.set_default_errno_ret(Some(DEFAULT_ERRNO));
    profile.set_architectures(Some(architectures()));
    profile.set_syscalls(Some(syscalls));
    profile
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = crate::capabilities::default_capabilities()
            .into_iter()
            .map(String::from)
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    /// Whether `name` is allowed without conditions.
    fn allowed(p: &LinuxSeccomp, name: &str) -> bool {
        p.syscalls().iter().flatten().any(|s| {
            s.action() == LinuxSeccompAction::ScmpActAllow
                && s.args().is_none()
                && s.names().iter().any(|n| n == name)
        })
    }

    fn rules_for<'a>(p: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        p.syscalls()
            .iter()
            .flatten()
            .filter(|s| s.names().iter().any(|n| n == name))
            .collect()
    }

    #[test]
    fn default_action_is_eperm() {
        let p = default_profile(&caps(&[]));
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(1));
        assert!(!p.architectures().as_ref().unwrap().is_empty());
        if cfg!(target_arch = "x86_64") {
            assert_eq!(
                p.architectures().as_ref().unwrap(),
                &vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86]
            );
        }
    }

    #[test]
    fn ordinary_syscalls_are_allowed() {
        let p = default_profile(&caps(&[]));
        for name in [
            "read",
            "write",
            "openat",
            "execve",
            "fork",
            "vfork",
            "wait4",
            "kill",
            "mmap",
            "futex",
            "exit_group",
            "accept4",
            "connect",
            "epoll_wait",
            "chroot",
            "ptrace",
        ] {
            assert!(allowed(&p, name), "{name} should be allowed");
        }
    }

    #[test]
    fn privileged_syscalls_need_sys_admin() {
        let plain = default_profile(&caps(&[]));
        let admin = default_profile(&caps(&["CAP_SYS_ADMIN"]));
        for name in ["mount", "umount2", "unshare", "setns", "sethostname", "bpf"] {
            assert!(
                !allowed(&plain, name),
                "{name} allowed without CAP_SYS_ADMIN"
            );
            assert!(rules_for(&plain, name).is_empty(), "{name} has a rule");
            assert!(
                allowed(&admin, name),
                "{name} not allowed with CAP_SYS_ADMIN"
            );
        }
        // Accepts other spellings of the capability name too.
        assert!(allowed(
            &default_profile(&["sys_admin".to_string()]),
            "mount"
        ));
    }

    #[test]
    fn keyring_and_friends_are_always_blocked() {
        let all: Vec<String> = crate::capabilities::ALL_CAPABILITIES
            .iter()
            .map(|c| c.to_string())
            .collect();
        let p = default_profile(&all);
        for name in [
            "keyctl",
            "add_key",
            "request_key",
            "kexec_load",
            "userfaultfd",
            "io_uring_setup",
            "swapon",
        ] {
            assert!(rules_for(&p, name).is_empty(), "{name} must stay blocked");
        }
        // ... while capability-gated ones open up.
        for name in [
            "reboot",
            "init_module",
            "settimeofday",
            "open_by_handle_at",
            "acct",
        ] {
            assert!(allowed(&p, name), "{name}");
            assert!(!allowed(&default_profile(&caps(&[])), name), "{name}");
        }
    }

    #[test]
    fn clone_is_restricted_without_sys_admin() {
        let p = default_profile(&caps(&[]));
        assert!(!allowed(&p, "clone"));
        let clone = rules_for(&p, "clone");
        assert_eq!(clone.len(), 1);
        let args = clone[0].args().as_ref().unwrap();
        assert_eq!(args.len(), 1);
        assert_eq!(args[0].index(), 0);
        assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        // libcontainer 0.7 reads `valueTwo` as the mask and `value` as the expected result.
        assert_eq!(args[0].value_two(), Some(CLONE_NAMESPACE_FLAGS));
        assert_eq!(args[0].value(), 0);
        let clone3 = rules_for(&p, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3[0].errno_ret(), Some(ENOSYS));

        let admin = default_profile(&caps(&["CAP_SYS_ADMIN"]));
        assert!(allowed(&admin, "clone"));
        assert!(allowed(&admin, "clone3"));
        assert_eq!(rules_for(&admin, "clone").len(), 1);
    }

    #[test]
    fn personality_only_with_safe_values() {
        let p = default_profile(&caps(&[]));
        assert!(!allowed(&p, "personality"));
        let values: Vec<u64> = rules_for(&p, "personality")
            .iter()
            .map(|r| {
                let args = r.args().as_ref().unwrap();
                assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpEq);
                args[0].value()
            })
            .collect();
        assert_eq!(values, ALLOWED_PERSONALITIES.to_vec());
    }

    #[test]
    fn allowlist_has_no_duplicates() {
        let names = allowed_syscalls(&caps(&["CAP_SYS_ADMIN", "CAP_SYSLOG", "CAP_BPF"]));
        let mut dedup = names.clone();
        dedup.dedup();
        assert_eq!(names, dedup);
        assert!(names.len() > 300, "{}", names.len());
    }
}
