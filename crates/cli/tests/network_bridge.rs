//! End-to-end tests of bridge networking: a real engine (own link prefix and subnets, see
//! `common`), real bridges, veth pairs, namespaces and nftables rules. Traffic stays on the
//! bridges these tests create.

mod common;

use std::time::Duration;

use common::{free_subnet, links_with_prefix, nft_table_exists, TestEngine};

fn engine() -> TestEngine {
    let e = TestEngine::start();
    e.import_busybox("bb");
    e
}

fn ip_of(e: &TestEngine, c: &str) -> String {
    e.inspect(c, "{{.NetworkSettings.IPAddress}}")
}

/// Starts busybox httpd on `port` in a detached container on `net`, serving a page that
/// says `served-by-NAME`; returns the container's address.
fn web(e: &TestEngine, name: &str, net: &str, port: u16) -> String {
    let script =
        format!("echo served-by-{name} > /tmp/index.html && exec httpd -f -p {port} -h /tmp");
    e.ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        net,
        "bb",
        "sh",
        "-c",
        &script,
    ]);
    ip_of(e, name)
}

/// An HTTP GET of ip:port from a fresh container on `net` (busybox nc; its wget needs NSS);
/// the answer, empty when there was none.
fn fetch(e: &TestEngine, net: &str, ip: &str, port: u16) -> String {
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} {port}");
    let out = e.berth(&["run", "--rm", "--network", net, "bb", "sh", "-c", &script]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until a GET from `net` answers with `name`'s page.
fn reachable(e: &TestEngine, net: &str, ip: &str, port: u16, name: &str) {
    let want = format!("served-by-{name}");
    e.eventually(
        Duration::from_secs(15),
        &format!("{want} from {net}"),
        || fetch(e, net, ip, port).contains(&want),
    );
}

fn netns_files(e: &TestEngine) -> Vec<String> {
    std::fs::read_dir(e.root.join("data/netns"))
        .map(|rd| {
            rd.flatten()
                .map(|x| x.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn containers_on_a_user_network_talk_and_leave_nothing_behind() {
    let e = engine();
    let subnet = free_subnet();
    e.ok(&["network", "create", "--subnet", &subnet, "appnet"]);
    let ip = web(&e, "server1", "appnet", 5001);
    assert!(
        ip.starts_with(subnet.trim_end_matches("0/24")),
        "{ip} in {subnet}"
    );
    assert_eq!(
        e.inspect("server1", "{{.NetworkSettings.Gateway}}"),
        subnet.replace("0/24", "1")
    );
    assert!(e
        .inspect("server1", "{{json .NetworkSettings.Networks}}")
        .contains("appnet"));
    let hosts = e.ok(&["exec", "server1", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&ip), "{hosts}");
    reachable(&e, "appnet", &ip, 5001, "server1");
    let net = e.ok(&["network", "inspect", "-f", "{{.IPAM.Config}}", "appnet"]);
    assert!(net.contains(&subnet), "{net}");
    // A network in use cannot be removed.
    assert!(!e.berth(&["network", "rm", "appnet"]).status.success());
    e.ok(&["rm", "-f", "server1"]);
    // Only the bridge is left; no veth, namespace or lease.
    let bridge = e.ok(&[
        "network",
        "inspect",
        "-f",
        "{{index .Options \"com.docker.network.bridge.name\"}}",
        "appnet",
    ]);
    // The veth goes on a background thread after rm (deleting one takes the kernel ~20 ms).
    e.eventually(
        Duration::from_secs(5),
        "the container's veth and netns gone",
        || links_with_prefix(&e.net_prefix) == vec![bridge.clone()] && netns_files(&e).is_empty(),
    );
    assert_eq!(
        e.ok(&["network", "inspect", "-f", "{{len .Containers}}", "appnet"]),
        "0"
    );
    assert!(nft_table_exists(&e.net_prefix));
    e.ok(&["network", "rm", "appnet"]);
    assert!(links_with_prefix(&e.net_prefix).is_empty());
    assert!(!nft_table_exists(&e.net_prefix));
    assert!(!e.ok(&["network", "ls"]).contains("appnet"));
}

#[test]
fn networks_are_isolated_from_each_other() {
    let e = engine();
    e.ok(&["network", "create", "--subnet", &free_subnet(), "left"]);
    e.ok(&["network", "create", "--subnet", &free_subnet(), "right"]);
    e.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        &free_subnet(),
        "inner",
    ]);
    let ip = web(&e, "target", "left", 5002);
    reachable(&e, "left", &ip, 5002, "target");
    assert!(!fetch(&e, "right", &ip, 5002).contains("served-by"));
    assert!(!fetch(&e, "inner", &ip, 5002).contains("served-by"));
    // No default route on an internal network.
    let routes = e.ok(&["run", "--rm", "--network", "inner", "bb", "ip", "route"]);
    assert!(!routes.contains("default"), "{routes}");
    e.ok(&["rm", "-f", "target"]);
    assert_eq!(e.ok(&["network", "prune", "-f"]).lines().count(), 4);
    assert!(links_with_prefix(&e.net_prefix).is_empty());
}

#[test]
fn addresses_are_unique_and_survive_an_engine_restart() {
    let mut e = engine();
    let mut ips = Vec::new();
    for name in ["keep1", "keep2", "keep3"] {
        ips.push(web(&e, name, "bridge", 5003));
    }
    reachable(&e, "bridge", &ips[1], 5003, "keep2");
    e.ok(&[
        "run",
        "-d",
        "--name",
        "gone",
        "--network",
        "bridge",
        "bb",
        "sleep",
        "600",
    ]);
    let gone_ip = ip_of(&e, "gone");
    ips.push(gone_ip.clone());
    let mut uniq = ips.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 4, "{ips:?}");
    // Crash the engine; one container dies while it is down.
    e.stop_daemon(true);
    let pid = std::fs::read_dir(e.root.join("data/containers"))
        .unwrap()
        .flatten()
        .filter_map(|d| std::fs::read_to_string(d.path().join("record.json")).ok())
        .find(|r| r.contains("\"name\": \"gone\""))
        .and_then(|r| {
            let v: serde_json::Value = serde_json::from_str(&r).ok()?;
            v["monitor_pid"].as_i64()
        })
        .expect("record of gone");
    // SAFETY: killing the monitor of this test's own container.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(300));
    e.spawn_daemon();
    for (i, name) in ["keep1", "keep2", "keep3"].iter().enumerate() {
        assert_eq!(ip_of(&e, name), ips[i], "{name} kept its address");
    }
    e.eventually(Duration::from_secs(10), "gone to be seen as exited", || {
        e.inspect("gone", "{{.State.Running}}") == "false"
    });
    assert_eq!(ip_of(&e, "gone"), "");
    let leased = e.ok(&["network", "inspect", "-f", "{{len .Containers}}", "bridge"]);
    assert_eq!(leased, "3");
    // The stale veth and namespace of `gone` are gone; the live ones stay.
    assert_eq!(netns_files(&e).len(), 3);
    assert_eq!(
        links_with_prefix(&e.net_prefix).len(),
        4,
        "bridge + 3 veths"
    );
    // A new container gets an address nobody holds.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "fresh",
        "--network",
        "bridge",
        "bb",
        "sleep",
        "600",
    ]);
    let fresh = ip_of(&e, "fresh");
    assert!(!ips[..3].contains(&fresh), "{fresh} vs {ips:?}");
    // Still serving at its old address after the restart.
    reachable(&e, "bridge", &ips[1], 5003, "keep2");
    for c in ["keep1", "keep2", "keep3", "gone", "fresh"] {
        e.ok(&["rm", "-f", c]);
    }
    e.eventually(
        Duration::from_secs(5),
        "the containers' netns files gone",
        || netns_files(&e).is_empty(),
    );
    assert_eq!(
        e.ok(&["network", "inspect", "-f", "{{len .Containers}}", "bridge"]),
        "0"
    );
    e.eventually(Duration::from_secs(5), "only the bridge left", || {
        links_with_prefix(&e.net_prefix).len() == 1
    });
}

#[test]
fn bad_network_requests_fail_clearly_and_leave_nothing() {
    let e = engine();
    let subnet = free_subnet();
    e.ok(&["network", "create", "--subnet", &subnet, "first"]);
    let fails = |args: &[&str], want: &str| {
        let out = e.berth(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
        out.status.code()
    };
    fails(
        &["network", "create", "--subnet", &free_subnet(), "first"],
        "already exists",
    );
    fails(
        &["network", "create", "--subnet", &subnet, "second"],
        "overlaps",
    );
    fails(
        &[
            "network",
            "create",
            "--subnet",
            &free_subnet(),
            "--gateway",
            "192.0.2.77",
            "third",
        ],
        "not a host address",
    );
    fails(
        &["network", "create", "--subnet", "10.1.2.3/24", "fourth"],
        "host bits",
    );
    fails(&["network", "create", "bridge"], "reserved");
    fails(&["network", "rm", "bridge"], "pre-defined");
    fails(&["network", "rm", "nosuch"], "not found");
    let code = fails(
        &["run", "--network", "nosuch", "bb", "true"],
        "network nosuch not found",
    );
    assert_eq!(code, Some(125));
    assert_eq!(e.ok(&["ps", "-aq"]), "");
    assert!(!e.ok(&["network", "ls"]).contains("second"));
    e.ok(&["network", "rm", "first"]);
    assert!(links_with_prefix(&e.net_prefix).is_empty());
    assert!(!nft_table_exists(&e.net_prefix));
}

#[test]
fn containers_find_each_other_by_name_on_a_user_network() {
    let e = engine();
    e.ok(&["network", "create", "--subnet", &free_subnet(), "dnsnet"]);
    e.ok(&["network", "create", "--subnet", &free_subnet(), "othernet"]);
    let ip = web(&e, "named-web", "dnsnet", 5004);
    reachable(&e, "dnsnet", &ip, 5004, "named-web");
    // busybox nslookup has its own DNS client (its wget/nc name lookups need NSS).
    let script = "a=$(nslookup named-web | awk '/^Address/ {x=$NF} END {print x}'); \
                  echo resolved=$a; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 $a 5004";
    e.eventually(Duration::from_secs(15), "a GET by name", || {
        let out = e.berth(&[
            "run",
            "--rm",
            "--network",
            "dnsnet",
            "bb",
            "sh",
            "-c",
            script,
        ]);
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        out.contains(&format!("resolved={ip}")) && out.contains("served-by-named-web")
    });
    // An alias resolves too.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "aliased",
        "--network",
        "dnsnet",
        "--network-alias",
        "svc-alias",
        "bb",
        "sleep",
        "600",
    ]);
    let alias_ip = ip_of(&e, "aliased");
    assert!(e
        .inspect("aliased", "{{json .NetworkSettings.Networks}}")
        .contains("svc-alias"));
    e.eventually(Duration::from_secs(15), "the alias to resolve", || {
        let out = e.berth(&[
            "run",
            "--rm",
            "--network",
            "dnsnet",
            "bb",
            "nslookup",
            "svc-alias",
        ]);
        String::from_utf8_lossy(&out.stdout).contains(&alias_ip)
    });
    // Aliases are for user-defined networks only.
    let out = e.berth(&[
        "run",
        "--network",
        "bridge",
        "--network-alias",
        "x1",
        "bb",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    e.ok(&["rm", "-f", "aliased"]);
    // Another network's DNS does not know the name (and does not ask outside for it).
    let out = e.berth(&[
        "run",
        "--rm",
        "--network",
        "othernet",
        "bb",
        "nslookup",
        "named-web",
    ]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&ip),
        "{out:?}"
    );
    e.ok(&["rm", "-f", "named-web"]);
    e.ok(&["network", "rm", "dnsnet", "othernet"]);
    e.eventually(Duration::from_secs(5), "no links left", || {
        links_with_prefix(&e.net_prefix).is_empty()
    });
}
