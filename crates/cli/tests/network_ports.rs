//! End-to-end tests of published ports (`-p`): the engine's proxy on 127.0.0.1 to a container
//! on a bridge network. All traffic is on loopback and the test engine's bridge.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::TestEngine;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

fn web(e: &TestEngine, name: &str, publish: &str) -> std::process::Output {
    let script = format!("echo served-by-{name} > /tmp/index.html && exec httpd -f -p 80 -h /tmp");
    e.berth(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "bridge",
        "-p",
        publish,
        "bb",
        "sh",
        "-c",
        &script,
    ])
}

#[test]
fn a_published_port_answers_on_loopback_and_survives_an_engine_restart() {
    let mut e = TestEngine::start();
    e.import_busybox("bb");
    let port = free_port();
    let out = web(&e, "pub1", &format!("127.0.0.1:{port}:80"));
    assert!(out.status.success(), "{out:?}");
    e.eventually(Duration::from_secs(15), "the published page", || {
        get(port).contains("served-by-pub1")
    });
    let ports = e.inspect("pub1", "{{json .NetworkSettings.Ports}}");
    assert!(
        ports.contains(&format!("\"HostPort\":\"{port}\"")),
        "{ports}"
    );
    assert_eq!(
        e.ok(&["port", "pub1"]),
        format!("80/tcp -> 127.0.0.1:{port}")
    );
    assert_eq!(e.ok(&["port", "pub1", "80"]), format!("127.0.0.1:{port}"));
    assert!(!e.berth(&["port", "pub1", "81"]).status.success());
    // A host port in use is a clear error at run.
    let out = web(&e, "pub2", &format!("127.0.0.1:{port}:80"));
    assert_eq!(out.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot publish"),
        "{out:?}"
    );
    // The engine restarts (crash): the port is served again.
    e.stop_daemon(true);
    e.spawn_daemon();
    e.eventually(Duration::from_secs(15), "the page after restart", || {
        get(port).contains("served-by-pub1")
    });
    // An ephemeral host port.
    let out = web(&e, "pub3", "127.0.0.1::80");
    assert!(out.status.success(), "{out:?}");
    let ports: serde_json::Value =
        serde_json::from_str(&e.inspect("pub3", "{{json .NetworkSettings.Ports}}")).unwrap();
    let eph: u16 = ports["80/tcp"][0]["HostPort"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(eph, 0);
    e.eventually(
        Duration::from_secs(15),
        "the page on the ephemeral port",
        || get(eph).contains("served-by-pub3"),
    );
    // Publishing needs a bridge network.
    let out = e.berth(&[
        "run",
        "-d",
        "--network",
        "none",
        "-p",
        "8080:80",
        "bb",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    e.ok(&["rm", "-f", "pub1", "pub3"]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port closed after rm"
    );
}
