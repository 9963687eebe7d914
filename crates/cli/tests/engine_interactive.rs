//! End-to-end: interactive containers. `run -i` feeds our stdin to the container and closes it
//! at its end, `run -t` gives the container a terminal, `-it` works through a real
//! pseudo-terminal (size included), `attach` reaches a running container, and the Docker CLI's
//! non-detached `run` (which attaches before it starts) gets all output and the exit code.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestEngine;

/// Runs `berth ARGS` with `input` on its stdin; returns (exit code, stdout, stderr).
fn with_stdin(e: &TestEngine, args: &[&str], input: &[u8]) -> (i32, String, String) {
    output_of(e.cmd().args(args), Some(input), "spawn berth")
}

/// Runs `cmd` with `input` on its stdin (none: stdin is /dev/null) and collects its exit code,
/// stdout and stderr; `what` is the panic message if it cannot be spawned.
fn output_of(cmd: &mut Command, input: Option<&[u8]>, what: &str) -> (i32, String, String) {
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(what);
    if let Some(input) = input {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn run_i_pipes_stdin_and_closes_it_at_the_end() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let (code, out, err) = with_stdin(&e, &["run", "--rm", "-i", "bb", "cat"], b"one\ntwo\n");
    assert_eq!((code, out.as_str()), (0, "one\ntwo\n"), "stderr: {err}");
    let (code, out, _) = with_stdin(
        &e,
        &["run", "--rm", "-i", "bb", "sh"],
        b"echo from-script; echo oops >&2; exit 6\n",
    );
    assert_eq!((code, out.as_str()), (6, "from-script\n"));
    // Without -i the container's stdin is empty: cat ends at once.
    let (code, out, _) = with_stdin(&e, &["run", "--rm", "bb", "cat"], b"ignored\n");
    assert_eq!((code, out.as_str()), (0, ""));
    assert_eq!(e.ok(&["ps", "-aq"]), "");
}

#[test]
fn run_t_gives_a_terminal_and_loses_no_output_of_a_fast_command() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let out = e.ok(&["run", "--rm", "-t", "bb", "sh", "-c", "tty; echo $TERM"]);
    // A terminal turns "\n" into "\r\n"; TERM=xterm as Docker sets it.
    assert_eq!(out, "/dev/pts/0\r\nxterm");
    let id = e.ok(&["create", "-t", "bb", "echo", "fast"]);
    assert_eq!(e.inspect(&id, "{{.Config.Tty}}"), "true");
    let out = e.ok(&["start", "-a", &id]);
    assert_eq!(out, "fast");
    e.ok(&["rm", &id]);
}

/// A pseudo-terminal for the CLI: its stdin, stdout and stderr are the slave side.
struct Pty {
    master: std::fs::File,
    slave: std::os::fd::OwnedFd,
}

fn pty(rows: u16, cols: u16) -> Pty {
    let size = nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let p = nix::pty::openpty(Some(&size), None).expect("openpty");
    Pty {
        master: std::fs::File::from(p.master),
        slave: p.slave,
    }
}

/// Reads from the master until `needle` appears or the deadline passes; returns all read.
fn read_until(master: &mut std::fs::File, seen: &mut String, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let fd = master.as_raw_fd();
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) && Instant::now() < deadline {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: polling one valid descriptor we own.
        if unsafe { libc::poll(&mut pfd, 1, 100) } <= 0 {
            continue;
        }
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(
        seen.contains(needle),
        "expected {needle:?} in terminal output:\n{seen}"
    );
}

fn spawn_on_pty(cmd: &mut Command, p: &Pty) -> std::process::Child {
    let io = || Stdio::from(p.slave.try_clone().unwrap());
    cmd.stdin(io())
        .stdout(io())
        .stderr(io())
        .spawn()
        .expect("spawn on pty")
}

fn wait_code(child: &mut std::process::Child, timeout: Duration) -> i32 {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the CLI did not exit in {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn run_it_is_an_interactive_shell_with_the_terminal_size() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let mut p = pty(33, 111);
    let mut child = spawn_on_pty(e.cmd().args(["run", "--rm", "-it", "bb", "sh"]), &p);
    let mut seen = String::new();
    p.master.write_all(b"stty size; echo $((6*7))\n").unwrap();
    read_until(&mut p.master, &mut seen, "42", Duration::from_secs(20));
    assert!(
        seen.contains("33 111"),
        "terminal size not passed on:\n{seen}"
    );
    // The size went with the create (Docker's ConsoleSize), so the shell had it from its start.
    let id = e.ok(&["ps", "-q"]);
    let size = e.ok(&[
        "inspect",
        "--format",
        "{{json .HostConfig.ConsoleSize}}",
        id.trim(),
    ]);
    assert_eq!(size.trim(), "[33,111]");
    p.master.write_all(b"exit 5\n").unwrap();
    assert_eq!(wait_code(&mut child, Duration::from_secs(20)), 5);
    assert_eq!(e.ok(&["ps", "-aq"]), "");
}

#[test]
fn attach_reaches_a_detached_interactive_container() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let id = e.ok(&["run", "-dit", "--name", "shell", "bb", "sh"]);
    assert_eq!(e.inspect(&id, "{{.Config.OpenStdin}}"), "true");
    let mut p = pty(24, 80);
    let mut child = spawn_on_pty(e.cmd().args(["attach", "shell"]), &p);
    let mut seen = String::new();
    p.master.write_all(b"echo attached-$((40+2))\n").unwrap();
    read_until(
        &mut p.master,
        &mut seen,
        "attached-42",
        Duration::from_secs(20),
    );
    p.master.write_all(b"exit 7\n").unwrap();
    assert_eq!(wait_code(&mut child, Duration::from_secs(20)), 7);
    assert_eq!(e.inspect("shell", "{{.State.ExitCode}}"), "7");
    // A stopped container cannot be attached to.
    let out = e.berth(&["attach", "shell"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("start it first"));
    e.ok(&["rm", "shell"]);
}

fn docker(e: &TestEngine, args: &[&str], input: Option<&[u8]>) -> (i32, String, String) {
    output_of(
        Command::new("docker")
            .args(["-H", &e.host()])
            .args(args)
            .env("DOCKER_CONFIG", e.root.join("docker-config")),
        input,
        "the docker client (scripts/setup.sh installs docker.io)",
    )
}

#[test]
fn docker_cli_run_attaches_and_gets_the_exit_code() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let (code, out, err) = docker(
        &e,
        &[
            "run",
            "--rm",
            "bb",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        None,
    );
    assert_eq!((code, out.as_str(), err.as_str()), (3, "out\n", "err\n"));
    let (code, out, _) = docker(&e, &["run", "--rm", "-i", "bb", "cat"], Some(b"piped\n"));
    assert_eq!((code, out.as_str()), (0, "piped\n"));
    assert_eq!(e.ok(&["ps", "-aq"]), "");
}

#[test]
fn exec_i_and_it_reach_a_running_container() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    e.ok(&["run", "-d", "--name", "box", "bb", "sleep", "300"]);
    let (code, out, _) = with_stdin(
        &e,
        &["exec", "-i", "box", "sh"],
        b"echo in-$((1+1)); exit 4\n",
    );
    assert_eq!((code, out.as_str()), (4, "in-2\n"));
    let out = e.ok(&["exec", "-t", "box", "sh", "-c", "tty; echo $TERM"]);
    assert_eq!(out, "/dev/pts/0\r\nxterm");
    let mut p = pty(41, 97);
    let mut child = spawn_on_pty(e.cmd().args(["exec", "-it", "box", "sh"]), &p);
    let mut seen = String::new();
    p.master.write_all(b"stty size; echo $((9*9))\n").unwrap();
    read_until(&mut p.master, &mut seen, "81", Duration::from_secs(20));
    assert!(
        seen.contains("41 97"),
        "terminal size not passed on:\n{seen}"
    );
    p.master.write_all(b"exit 3\n").unwrap();
    assert_eq!(wait_code(&mut child, Duration::from_secs(20)), 3);
    // A command that does not exist is 127 with or without a terminal.
    assert_eq!(
        e.berth(&["exec", "-t", "box", "nope"]).status.code(),
        Some(127)
    );
    assert_eq!(
        e.berth(&["exec", "-i", "box", "nope"]).status.code(),
        Some(127)
    );
    // The Docker CLI's exec takes over the connection too.
    let (code, out, _) = docker(&e, &["exec", "box", "sh", "-c", "echo dx; exit 6"], None);
    assert_eq!((code, out.as_str()), (6, "dx\n"));
    let (code, out, _) = docker(&e, &["exec", "-i", "box", "cat"], Some(b"to-cat\n"));
    assert_eq!((code, out.as_str()), (0, "to-cat\n"));
    e.ok(&["rm", "-f", "box"]);
}
