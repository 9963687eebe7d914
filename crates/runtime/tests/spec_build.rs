//! `build_spec`: the spec a user of `berth run` gets, checked field by field against what
//! `docker run` produces, plus validation of bad input. Pure tests: no containers.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use berth_runtime::capabilities::default_capabilities;
use berth_runtime::spec::{
    build_spec, MountInput, MountKind, NetworkMode, SpecError, SpecInput, UlimitInput,
    MASKED_PATHS, READONLY_PATHS,
};
use oci_spec::runtime::{
    Capability, LinuxDeviceType, LinuxNamespaceType, LinuxResources, Mount, PosixRlimitType, Spec,
};

fn input() -> SpecInput {
    let mut i = SpecInput::new(
        vec!["/bin/sh".into(), "-c".into(), "echo hi".into()],
        "/var/lib/berth/containers/abc/rootfs",
    );
    i.env = vec!["PATH=/usr/bin:/bin".into(), "HOSTNAME=abc".into()];
    i.hostname = "abc".into();
    i.cgroups_path = "/berth/abc".into();
    i
}

fn build(i: &SpecInput) -> Spec {
    build_spec(i).unwrap_or_else(|e| panic!("build_spec: {e}"))
}

fn destinations(spec: &Spec) -> Vec<String> {
    spec.mounts()
        .iter()
        .flatten()
        .map(|m| m.destination().display().to_string())
        .collect()
}

fn mount_at<'a>(spec: &'a Spec, dest: &str) -> &'a Mount {
    spec.mounts()
        .iter()
        .flatten()
        .find(|m| m.destination() == Path::new(dest))
        .unwrap_or_else(|| panic!("no mount at {dest}"))
}

fn options(m: &Mount) -> Vec<&str> {
    m.options().iter().flatten().map(String::as_str).collect()
}

fn resources(spec: &Spec) -> &LinuxResources {
    spec.linux().as_ref().unwrap().resources().as_ref().unwrap()
}

fn namespaces(spec: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
    spec.linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .iter()
        .flatten()
        .map(|n| (n.typ(), n.path().clone()))
        .collect()
}

#[test]
fn process_has_dockers_defaults() {
    let mut i = input();
    i.uid = 1000;
    i.gid = 1000;
    i.additional_gids = vec![10, 20];
    i.cwd = "/work".into();
    let spec = build(&i);
    let p = spec.process().as_ref().unwrap();
    assert_eq!(p.terminal(), Some(false));
    assert_eq!(p.args().as_ref().unwrap(), &i.args);
    assert_eq!(p.env().as_ref().unwrap(), &i.env);
    assert_eq!(p.cwd(), Path::new("/work"));
    assert_eq!(p.user().uid(), 1000);
    assert_eq!(p.user().gid(), 1000);
    assert_eq!(p.user().additional_gids().as_ref().unwrap(), &vec![10, 20]);
    assert_eq!(p.no_new_privileges(), Some(true));
    assert_eq!(p.oom_score_adj(), Some(0));
    assert_eq!(spec.hostname().as_deref(), Some("abc"));
    assert!(spec.version().starts_with("1."));

    let rlimits = p.rlimits().as_ref().unwrap();
    assert_eq!(rlimits.len(), 1);
    assert_eq!(rlimits[0].typ(), PosixRlimitType::RlimitNofile);
    // Docker's 1048576, but never above what this process may grant (its own hard limit).
    let (_, own_hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    let expected = 1_048_576.min(own_hard);
    assert_eq!((rlimits[0].soft(), rlimits[0].hard()), (expected, expected));

    let root = spec.root().as_ref().unwrap();
    assert_eq!(
        root.path(),
        Path::new("/var/lib/berth/containers/abc/rootfs")
    );
    assert_eq!(root.readonly(), Some(false));
    assert_eq!(
        spec.linux().as_ref().unwrap().cgroups_path().as_deref(),
        Some(Path::new("/berth/abc"))
    );
}

#[test]
fn default_capabilities_are_exactly_dockers_fourteen() {
    let spec = build(&input());
    let caps = spec
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .as_ref()
        .unwrap();
    let expected: HashSet<Capability> = default_capabilities()
        .iter()
        .map(|c| berth_runtime::capabilities::to_oci(c).unwrap())
        .collect();
    assert_eq!(expected.len(), 14);
    assert_eq!(caps.bounding().as_ref().unwrap(), &expected);
    assert_eq!(caps.effective().as_ref().unwrap(), &expected);
    assert_eq!(caps.permitted().as_ref().unwrap(), &expected);
    assert!(caps.inheritable().as_ref().unwrap().is_empty());
    assert!(caps.ambient().as_ref().unwrap().is_empty());
}

#[test]
fn cap_add_and_drop_reach_the_spec() {
    let mut i = input();
    i.cap_add = vec!["net_admin".into()];
    i.cap_drop = vec!["CAP_NET_RAW".into()];
    let spec = build(&i);
    let caps = spec
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .clone()
        .unwrap();
    let b = caps.bounding().clone().unwrap();
    assert!(b.contains(&Capability::NetAdmin));
    assert!(!b.contains(&Capability::NetRaw));

    i.cap_add = vec!["ALL".into()];
    i.cap_drop = vec![];
    let spec = build(&i);
    let caps = spec
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .clone()
        .unwrap();
    assert_eq!(caps.bounding().as_ref().unwrap().len(), 41);

    i.cap_add = vec!["CAP_FOO".into()];
    let err = build_spec(&i).unwrap_err();
    assert_eq!(err, SpecError::UnknownCapability("CAP_FOO".into()));
    assert!(err.to_string().contains("\"CAP_FOO\""));
}

#[test]
fn namespaces_new_host_and_path_network() {
    let spec = build(&input());
    let ns = namespaces(&spec);
    let types: Vec<_> = ns.iter().map(|(t, _)| *t).collect();
    for t in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ] {
        assert!(types.contains(&t), "missing {t:?}");
    }
    assert_eq!(types.len(), 6);
    assert!(ns.iter().all(|(_, p)| p.is_none()));

    let mut i = input();
    i.network = NetworkMode::Host;
    let spec = build(&i);
    assert!(!namespaces(&spec)
        .iter()
        .any(|(t, _)| *t == LinuxNamespaceType::Network));
    assert_eq!(namespaces(&spec).len(), 5);

    i.network = NetworkMode::Path("/run/berth/netns/abc".into());
    let spec = build(&i);
    assert!(namespaces(&spec).contains(&(
        LinuxNamespaceType::Network,
        Some(PathBuf::from("/run/berth/netns/abc"))
    )));

    i.network = NetworkMode::Path("relative/netns".into());
    assert!(matches!(
        build_spec(&i),
        Err(SpecError::RelativeNetnsPath(_))
    ));
}

#[test]
fn default_mounts_in_dockers_order_with_dockers_options() {
    let spec = build(&input());
    assert_eq!(
        destinations(&spec),
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/sys",
            "/sys/fs/cgroup",
            "/dev/mqueue",
            "/dev/shm"
        ]
    );
    let proc_ = mount_at(&spec, "/proc");
    assert_eq!(proc_.typ().as_deref(), Some("proc"));
    assert_eq!(options(proc_), ["nosuid", "noexec", "nodev"]);
    let dev = mount_at(&spec, "/dev");
    assert_eq!(dev.typ().as_deref(), Some("tmpfs"));
    assert_eq!(
        options(dev),
        ["nosuid", "strictatime", "mode=755", "size=65536k"]
    );
    let pts = mount_at(&spec, "/dev/pts");
    assert_eq!(pts.typ().as_deref(), Some("devpts"));
    for o in [
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
        "gid=5",
        "nosuid",
        "noexec",
    ] {
        assert!(options(pts).contains(&o), "devpts lacks {o}");
    }
    let sys = mount_at(&spec, "/sys");
    assert_eq!(sys.typ().as_deref(), Some("sysfs"));
    assert!(options(sys).contains(&"ro"));
    let cg = mount_at(&spec, "/sys/fs/cgroup");
    assert_eq!(cg.typ().as_deref(), Some("cgroup"));
    assert!(options(cg).contains(&"ro"));
    assert_eq!(
        mount_at(&spec, "/dev/mqueue").typ().as_deref(),
        Some("mqueue")
    );
    let shm = mount_at(&spec, "/dev/shm");
    assert_eq!(shm.typ().as_deref(), Some("tmpfs"));
    assert_eq!(
        options(shm),
        ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]
    );

    let mut i = input();
    i.shm_size = Some(128 * 1024 * 1024);
    let spec = build(&i);
    assert!(options(mount_at(&spec, "/dev/shm")).contains(&"size=134217728"));
}

#[test]
fn user_mounts_follow_defaults_parents_first() {
    let mut i = input();
    i.mounts = vec![
        MountInput {
            destination: "/data/cache".into(),
            source: "/srv/cache".into(),
            kind: MountKind::Bind,
            readonly: false,
            options: vec![],
        },
        MountInput {
            destination: "/data/".into(),
            source: "/srv/data".into(),
            kind: MountKind::Bind,
            readonly: true,
            options: vec![],
        },
        MountInput {
            destination: "/tmp".into(),
            source: String::new(),
            kind: MountKind::Tmpfs,
            readonly: false,
            options: vec!["size=64m".into(), "mode=1777".into()],
        },
        MountInput {
            destination: "/etc/hosts".into(),
            source: "/var/lib/berth/containers/abc/hosts".into(),
            kind: MountKind::Bind,
            readonly: false,
            options: vec![],
        },
    ];
    let spec = build(&i);
    let d = destinations(&spec);
    assert_eq!(&d[..7][0], "/proc");
    assert_eq!(&d[7..], ["/data", "/tmp", "/data/cache", "/etc/hosts"]);

    let data = mount_at(&spec, "/data");
    assert_eq!(data.typ().as_deref(), Some("bind"));
    assert_eq!(data.source().as_deref(), Some(Path::new("/srv/data")));
    assert_eq!(options(data), ["rbind", "rprivate", "ro"]);
    assert_eq!(
        options(mount_at(&spec, "/data/cache")),
        ["rbind", "rprivate", "rw"]
    );
    let tmp = mount_at(&spec, "/tmp");
    assert_eq!(tmp.typ().as_deref(), Some("tmpfs"));
    assert_eq!(
        options(tmp),
        ["nosuid", "nodev", "noexec", "size=64m", "mode=1777"]
    );
}

#[test]
fn user_mount_replaces_default_at_same_destination() {
    let mut i = input();
    i.mounts = vec![MountInput {
        destination: "/dev/shm".into(),
        source: "/srv/shm".into(),
        kind: MountKind::Bind,
        readonly: false,
        options: vec!["rshared".into()],
    }];
    let spec = build(&i);
    let d = destinations(&spec);
    assert_eq!(d.iter().filter(|x| *x == "/dev/shm").count(), 1);
    let shm = mount_at(&spec, "/dev/shm");
    assert_eq!(shm.typ().as_deref(), Some("bind"));
    assert_eq!(options(shm), ["rbind", "rshared", "rw"]);
}

#[test]
fn bad_mounts_are_rejected_by_name() {
    let bind = |dest: &str, src: &str| MountInput {
        destination: dest.into(),
        source: src.into(),
        kind: MountKind::Bind,
        readonly: false,
        options: vec![],
    };
    let mut i = input();
    i.mounts = vec![bind("data", "/srv")];
    let err = build_spec(&i).unwrap_err();
    assert_eq!(err, SpecError::RelativeMountDestination("data".into()));
    assert!(err.to_string().contains("\"data\""));

    i.mounts = vec![bind("/a/../etc", "/srv")];
    assert!(matches!(
        build_spec(&i),
        Err(SpecError::InvalidMountDestination { .. })
    ));
    i.mounts = vec![bind("/", "/srv")];
    assert!(matches!(
        build_spec(&i),
        Err(SpecError::InvalidMountDestination { .. })
    ));
    i.mounts = vec![bind("/x", "/srv"), bind("/x/", "/srv2")];
    assert_eq!(
        build_spec(&i).unwrap_err(),
        SpecError::DuplicateMountDestination("/x".into())
    );
    i.mounts = vec![bind("/x", "srv")];
    assert_eq!(
        build_spec(&i).unwrap_err(),
        SpecError::RelativeBindSource("srv".into())
    );
}

#[test]
fn readonly_rootfs() {
    let mut i = input();
    i.readonly_rootfs = true;
    assert_eq!(build(&i).root().as_ref().unwrap().readonly(), Some(true));
    i.rootfs = "rootfs".into();
    assert!(matches!(build_spec(&i), Err(SpecError::RelativeRootfs(_))));
}

#[test]
fn resources_are_mapped() {
    let mut i = input();
    i.memory_limit = Some(512 * 1024 * 1024);
    i.memory_reservation = Some(256 * 1024 * 1024);
    i.cpu_shares = Some(512);
    // --cpus 0.5
    i.cpu_quota = Some(50_000);
    i.pids_limit = Some(100);
    let spec = build(&i);
    let r = resources(&spec);
    let mem = r.memory().as_ref().unwrap();
    assert_eq!(mem.limit(), Some(536_870_912));
    assert_eq!(mem.reservation(), Some(268_435_456));
    let cpu = r.cpu().as_ref().unwrap();
    assert_eq!(cpu.shares(), Some(512));
    assert_eq!(cpu.quota(), Some(50_000));
    assert_eq!(cpu.period(), Some(100_000));
    assert_eq!(r.pids().as_ref().unwrap().limit(), 100);

    // Nothing asked, nothing set (besides the device rules).
    let spec = build(&input());
    let r = resources(&spec);
    assert!(r.memory().is_none() && r.cpu().is_none() && r.pids().is_none());

    i.cpu_period = Some(200_000);
    i.cpu_quota = Some(100_000);
    let spec = build(&i);
    assert_eq!(
        resources(&spec).cpu().as_ref().unwrap().period(),
        Some(200_000)
    );

    let mut bad = input();
    bad.memory_limit = Some(1024);
    let err = build_spec(&bad).unwrap_err();
    assert!(err.to_string().contains("1024"), "{err}");
    let mut bad = input();
    bad.cpu_quota = Some(10);
    assert!(matches!(
        build_spec(&bad),
        Err(SpecError::InvalidResource { .. })
    ));
    let mut bad = input();
    bad.memory_limit = Some(64 << 20);
    bad.memory_reservation = Some(128 << 20);
    assert!(build_spec(&bad).is_err());
}

#[test]
fn device_cgroup_denies_all_then_allows_defaults() {
    let spec = build(&input());
    let devices = resources(&spec).devices().as_ref().unwrap();
    assert!(!devices[0].allow());
    assert_eq!(devices[0].access().as_deref(), Some("rwm"));
    assert!(devices[0].major().is_none() && devices[0].minor().is_none());
    let allowed: Vec<String> = devices[1..]
        .iter()
        .map(|d| {
            assert!(d.allow());
            d.to_string()
        })
        .collect();
    for rule in [
        "c *:* m",
        "b *:* m",
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:1 rwm",
        "c 5:2 rwm",
        "c 136:* rwm",
    ] {
        assert!(
            allowed.contains(&rule.to_string()),
            "missing {rule}: {allowed:?}"
        );
    }
    // libcontainer creates the default device nodes itself.
    assert!(spec.linux().as_ref().unwrap().devices().is_none());
    assert_eq!(devices[1].typ(), Some(LinuxDeviceType::C));
}

#[test]
fn masked_and_readonly_paths_and_seccomp() {
    let spec = build(&input());
    let linux = spec.linux().as_ref().unwrap();
    let masked = linux.masked_paths().as_ref().unwrap();
    for p in MASKED_PATHS {
        assert!(masked.contains(&p.to_string()), "{p}");
    }
    assert!(masked.contains(&"/proc/kcore".to_string()));
    let ro = linux.readonly_paths().as_ref().unwrap();
    for p in READONLY_PATHS {
        assert!(ro.contains(&p.to_string()), "{p}");
    }
    assert!(ro.contains(&"/proc/sys".to_string()));
    assert!(linux.seccomp().is_some());

    let mut i = input();
    i.seccomp = false;
    assert!(build(&i).linux().as_ref().unwrap().seccomp().is_none());
}

#[test]
fn privileged_drops_confinement() {
    let mut i = input();
    i.privileged = true;
    let spec = build(&i);
    let linux = spec.linux().as_ref().unwrap();
    assert!(linux.seccomp().is_none());
    assert!(linux.masked_paths().is_none());
    assert!(linux.readonly_paths().is_none());
    assert!(options(mount_at(&spec, "/sys")).contains(&"rw"));
    assert!(!options(mount_at(&spec, "/sys")).contains(&"ro"));
    assert!(!options(mount_at(&spec, "/sys/fs/cgroup")).contains(&"ro"));
    let devices = resources(&spec).devices().as_ref().unwrap();
    assert_eq!(devices.len(), 1);
    assert!(devices[0].allow());
    assert_eq!(devices[0].access().as_deref(), Some("rwm"));
    let caps = spec
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .clone()
        .unwrap();
    assert_eq!(caps.bounding().as_ref().unwrap().len(), 41);
    assert!(caps
        .effective()
        .as_ref()
        .unwrap()
        .contains(&Capability::SysAdmin));
}

#[test]
fn no_new_privileges_off_is_omitted() {
    let mut i = input();
    i.no_new_privileges = false;
    let spec = build(&i);
    // `None`, not `Some(false)`: libcontainer then loads seccomp while still privileged.
    assert_eq!(spec.process().as_ref().unwrap().no_new_privileges(), None);
}

#[test]
fn sysctls_only_namespaced() {
    let mut i = input();
    i.sysctls = BTreeMap::from([
        ("net.ipv4.ip_forward".to_string(), "1".to_string()),
        ("kernel.shmmax".to_string(), "1000000".to_string()),
        ("fs.mqueue.msg_max".to_string(), "20".to_string()),
        ("kernel.msgmax".to_string(), "9000".to_string()),
    ]);
    let spec = build(&i);
    let sysctl = spec.linux().as_ref().unwrap().sysctl().clone().unwrap();
    assert_eq!(sysctl.len(), 4);
    assert_eq!(sysctl["net.ipv4.ip_forward"], "1");

    i.sysctls = BTreeMap::from([("vm.swappiness".to_string(), "10".to_string())]);
    let err = build_spec(&i).unwrap_err();
    assert_eq!(err, SpecError::SysctlNotNamespaced("vm.swappiness".into()));
    assert!(err.to_string().contains("vm.swappiness"));
    i.sysctls = BTreeMap::from([("kernel.hostname".to_string(), "x".to_string())]);
    assert!(build_spec(&i).is_err());

    i.sysctls = BTreeMap::from([("net.core.somaxconn".to_string(), "1024".to_string())]);
    i.network = NetworkMode::Host;
    assert_eq!(
        build_spec(&i).unwrap_err(),
        SpecError::SysctlHostNetwork("net.core.somaxconn".into())
    );
}

#[test]
fn ulimits_override_and_validate() {
    let mut i = input();
    i.ulimits = vec![
        UlimitInput {
            name: "nofile".into(),
            soft: 1024,
            hard: 2048,
        },
        UlimitInput {
            name: "NPROC".into(),
            soft: 512,
            hard: 512,
        },
    ];
    let spec = build(&i);
    let r = spec.process().as_ref().unwrap().rlimits().clone().unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].typ(), PosixRlimitType::RlimitNofile);
    assert_eq!((r[0].soft(), r[0].hard()), (1024, 2048));
    assert_eq!(r[1].typ(), PosixRlimitType::RlimitNproc);

    i.ulimits = vec![UlimitInput {
        name: "bogus".into(),
        soft: 1,
        hard: 1,
    }];
    let err = build_spec(&i).unwrap_err();
    assert_eq!(err, SpecError::UnknownUlimit("bogus".into()));
    assert!(err.to_string().contains("bogus"));
    i.ulimits = vec![UlimitInput {
        name: "core".into(),
        soft: 10,
        hard: 1,
    }];
    assert!(matches!(
        build_spec(&i),
        Err(SpecError::UlimitSoftAboveHard { .. })
    ));
}

#[test]
fn process_input_is_validated() {
    let mut i = input();
    i.args.clear();
    assert_eq!(build_spec(&i).unwrap_err(), SpecError::EmptyArgs);
    let mut i = input();
    i.env.push("NOEQUALS".into());
    assert_eq!(
        build_spec(&i).unwrap_err(),
        SpecError::InvalidEnv("NOEQUALS".into())
    );
    let mut i = input();
    i.cwd = "work".into();
    assert_eq!(
        build_spec(&i).unwrap_err(),
        SpecError::RelativeCwd("work".into())
    );
    let mut i = input();
    i.cwd = String::new();
    assert_eq!(build(&i).process().as_ref().unwrap().cwd(), Path::new("/"));
}

#[test]
fn spec_passes_libcontainer_validation_and_round_trips_json() {
    for privileged in [false, true] {
        let mut i = input();
        i.privileged = privileged;
        i.sysctls = BTreeMap::from([("net.ipv4.ping_group_range".into(), "0 0".into())]);
        let spec = build(&i);
        libcontainer::validator::Validator::validate_spec(&spec)
            .unwrap_or_else(|e| panic!("libcontainer rejects the spec: {e:?}"));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        spec.save(&path).unwrap();
        let loaded = Spec::load(&path).unwrap();
        assert_eq!(loaded, spec);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            json["process"]["capabilities"]["inheritable"],
            serde_json::json!([])
        );
        if !privileged {
            assert_eq!(json["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
            assert_eq!(json["linux"]["seccomp"]["defaultErrnoRet"], 1);
        }
    }
}

#[test]
fn spec_input_serializes() {
    let mut i = input();
    i.network = NetworkMode::Path("/run/netns/x".into());
    i.mounts.push(MountInput {
        destination: "/x".into(),
        source: "/y".into(),
        kind: MountKind::Tmpfs,
        readonly: true,
        options: vec![],
    });
    let json = serde_json::to_string(&i).unwrap();
    let back: SpecInput = serde_json::from_str(&json).unwrap();
    assert_eq!(back.network, i.network);
    assert_eq!(back.mounts, i.mounts);
    // Missing fields take defaults.
    let partial: SpecInput = serde_json::from_str(r#"{"args":["sh"],"rootfs":"/r"}"#).unwrap();
    assert_eq!(partial.args, ["sh"]);
}
