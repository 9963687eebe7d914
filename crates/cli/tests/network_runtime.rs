//! End-to-end tests of networking beyond one network per container: UDP publishing, `-P`,
//! conflicting host ports, `network connect/disconnect` at runtime, several networks, `--ip`,
//! `--network container:ID`, and that nothing is left after `rm`. Traffic stays on loopback
//! and on the bridges of the test engine.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_subnet, links_with_prefix, TestEngine};

fn engine() -> TestEngine {
    let e = TestEngine::start();
    e.import_busybox("bb");
    e
}

/// An HTTP GET of 127.0.0.1:port; the answer or an empty string.
fn get(port: u16) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn httpd_script(name: &str, port: u16) -> String {
    format!("echo served-by-{name} > /tmp/index.html && exec httpd -f -p {port} -h /tmp")
}

/// A GET of ip:port run inside the container `c` (busybox nc); the answer or "".
fn fetch_from(e: &TestEngine, c: &str, ip: &str, port: u16) -> String {
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} {port}");
    let out = e.berth(&["exec", c, "sh", "-c", &script]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The links of the engine that are not bridges (veth host ends).
fn veths(e: &TestEngine) -> Vec<String> {
    links_with_prefix(&e.net_prefix)
        .into_iter()
        .filter(|l| !std::path::Path::new(&format!("/sys/class/net/{l}/bridge")).exists())
        .collect()
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

/// Waits until the engine has no veth and no namespace file left.
fn nothing_left(e: &TestEngine) {
    e.eventually(Duration::from_secs(10), "no veth or netns left", || {
        veths(e).is_empty() && netns_files(e).is_empty()
    });
}

/// A UDP echo server (`pong:` + datagram) in a container's network namespace: busybox has no
/// UDP server, so the host's python runs it inside the namespace (`nsenter --net`). Killed on
/// drop.
struct UdpEcho(Child);

impl UdpEcho {
    fn start(netns: &str, port: u16) -> Self {
        let code = format!(
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.bind(('0.0.0.0',{port}))\nprint('ready',flush=True)\n\
             while True:\n d,a=s.recvfrom(2048)\n s.sendto(b'pong:'+d,a)\n"
        );
        let mut child = Command::new("nsenter")
            .arg(format!("--net={netns}"))
            .args(["/usr/bin/python3", "-c", &code])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn nsenter python3");
        let mut buf = [0u8; 6];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut buf)
            .expect("udp echo server ready");
        Self(child)
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `msg` to 127.0.0.1:port over UDP; the answer or "".
fn udp_ask(port: u16, msg: &str) -> String {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let _ = s.send_to(msg.as_bytes(), ("127.0.0.1", port));
    let mut buf = [0u8; 2048];
    match s.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(_) => String::new(),
    }
}

fn host_port(e: &TestEngine, c: &str, key: &str) -> u16 {
    let ports: serde_json::Value =
        serde_json::from_str(&e.inspect(c, "{{json .NetworkSettings.Ports}}")).unwrap();
    ports[key][0]["HostPort"]
        .as_str()
        .unwrap_or_else(|| panic!("no binding for {key} in {ports}"))
        .parse()
        .unwrap()
}

#[test]
fn udp_publish_relays_datagrams_and_survives_an_engine_crash() {
    let mut e = engine();
    // The default network is bridge; -p HOST_IP::PORT/udp picks an ephemeral host port.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "dns",
        "-p",
        "127.0.0.1::5353/udp",
        "bb",
        "sleep",
        "300",
    ]);
    let port = host_port(&e, "dns", "5353/udp");
    assert_eq!(
        e.ok(&["port", "dns", "5353/udp"]),
        format!("127.0.0.1:{port}")
    );
    let _server = UdpEcho::start(&e.inspect("dns", "{{.NetworkSettings.SandboxKey}}"), 5353);
    e.eventually(Duration::from_secs(10), "a UDP answer", || {
        udp_ask(port, "hi") == "pong:hi"
    });
    // The engine dies; the restarted engine binds the published port again.
    e.stop_daemon(true);
    e.spawn_daemon();
    e.eventually(
        Duration::from_secs(10),
        "a UDP answer after restart",
        || udp_ask(port, "again") == "pong:again",
    );
    e.ok(&["rm", "-f", "dns"]);
    assert!(
        UdpSocket::bind(("127.0.0.1", port)).is_ok(),
        "the host port is free after rm"
    );
    nothing_left(&e);
}

#[test]
fn publish_all_picks_free_ports_and_a_taken_port_fails_cleanly() {
    let e = engine();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "allp",
        "-P",
        "--expose",
        "8080",
        "bb",
        "sh",
        "-c",
        &httpd_script("allp", 8080),
    ]);
    let port = host_port(&e, "allp", "8080/tcp");
    assert!(port >= 1024, "ephemeral port {port}");
    e.eventually(Duration::from_secs(15), "the page on the -P port", || {
        get(port).contains("served-by-allp")
    });
    let listed = e.ok(&["port", "allp"]);
    assert_eq!(listed, format!("8080/tcp -> 0.0.0.0:{port}"));

    // A host port that is taken: exit 125, a clear message, no endpoint left behind.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    let out = e.berth(&[
        "run",
        "-d",
        "--name",
        "clash",
        "-p",
        &format!("127.0.0.1:{busy}:80"),
        "bb",
        "sleep",
        "60",
    ]);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{busy}")) && err.contains("pick another host port"),
        "{err}"
    );
    assert_eq!(e.inspect("clash", "{{.State.Running}}"), "false");
    let containers = e.ok(&[
        "network",
        "inspect",
        "--format",
        "{{len .Containers}}",
        "bridge",
    ]);
    assert_eq!(containers, "1", "only allp holds an address");
    e.ok(&["rm", "-f", "allp", "clash"]);
    nothing_left(&e);
}

#[test]
fn connect_and_disconnect_at_runtime() {
    let e = engine();
    let (sa, sb) = (free_subnet(), free_subnet());
    e.ok(&["network", "create", "--subnet", &sa, "neta"]);
    e.ok(&["network", "create", "--subnet", &sb, "netb"]);
    e.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "neta",
        "bb",
        "sh",
        "-c",
        &httpd_script("srv", 80),
    ]);
    let srv_ip = e.inspect("srv", "{{.NetworkSettings.IPAddress}}");
    e.ok(&[
        "run",
        "-d",
        "--name",
        "cli",
        "--network",
        "netb",
        "bb",
        "sleep",
        "300",
    ]);
    // Isolated at first.
    assert!(!fetch_from(&e, "cli", &srv_ip, 80).contains("served-by-srv"));

    // connect with a fixed address and an alias: reachable, and by alias through the DNS.
    let fixed = format!("{}77", sa.trim_end_matches("0/24"));
    e.ok(&[
        "network", "connect", "--ip", &fixed, "--alias", "buddy", "neta", "cli",
    ]);
    let nets: serde_json::Value =
        serde_json::from_str(&e.inspect("cli", "{{json .NetworkSettings.Networks}}")).unwrap();
    assert_eq!(nets["neta"]["IPAddress"], fixed.as_str(), "{nets}");
    assert_eq!(nets["neta"]["Aliases"][0], "buddy", "{nets}");
    e.eventually(
        Duration::from_secs(10),
        "srv from cli after connect",
        || fetch_from(&e, "cli", &srv_ip, 80).contains("served-by-srv"),
    );
    let hosts = e.ok(&["exec", "cli", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&fixed), "{hosts}");
    let lookup = e.ok(&["exec", "srv", "nslookup", "buddy"]);
    assert!(lookup.contains(&fixed), "{lookup}");
    let out = e.berth(&["network", "connect", "neta", "cli"]);
    assert_ne!(out.status.code(), Some(0), "connecting twice fails");

    // disconnect: unreachable again, the veth and the lease are gone.
    e.ok(&["network", "disconnect", "neta", "cli"]);
    assert!(!fetch_from(&e, "cli", &srv_ip, 80).contains("served-by-srv"));
    let nets = e.inspect("cli", "{{len .NetworkSettings.Networks}}");
    assert_eq!(nets, "1");
    assert_eq!(veths(&e).len(), 2, "{:?}", veths(&e));
    let out = e.berth(&["network", "disconnect", "neta", "cli"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "not connected any more: {out:?}"
    );
    e.ok(&["network", "disconnect", "-f", "neta", "cli"]);

    // Several networks at run: eth0 and eth1, the default route on the first.
    let out = e.ok(&[
        "run",
        "--rm",
        "--network",
        "neta",
        "--network",
        "netb",
        "bb",
        "sh",
        "-c",
        "cat /proc/net/dev; ip route",
    ]);
    assert!(out.contains("eth0:") && out.contains("eth1:"), "{out}");
    assert!(
        out.contains(&format!(
            "default via {}1 dev eth0",
            sa.trim_end_matches("0/24")
        )),
        "{out}"
    );
    e.ok(&["rm", "-f", "srv", "cli"]);
    nothing_left(&e);
    e.ok(&["network", "rm", "neta", "netb"]);
}

#[test]
fn container_mode_shares_the_network_namespace() {
    let e = engine();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "base",
        "bb",
        "sh",
        "-c",
        &httpd_script("base", 8081),
    ]);
    let base_ip = e.inspect("base", "{{.NetworkSettings.IPAddress}}");
    let script = "sleep 0.3; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 127.0.0.1 8081; \
                  ip -4 addr show eth0; cat /etc/hosts";
    let mut out = String::new();
    e.eventually(
        Duration::from_secs(10),
        "base's server on its loopback",
        || {
            out = e.ok(&[
                "run",
                "--rm",
                "--network",
                "container:base",
                "bb",
                "sh",
                "-c",
                script,
            ]);
            out.contains("served-by-base")
        },
    );
    assert!(out.contains(&base_ip), "same address: {out}");
    let out = e.berth(&["run", "--rm", "--network", "container:nosuch", "bb", "true"]);
    assert_eq!(out.status.code(), Some(125));
    e.ok(&["rm", "-f", "base"]);
    nothing_left(&e);
}
