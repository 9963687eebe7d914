//! The `berth` binary's argument handling and error reporting, without an engine: help, clap
//! usage errors (exit 125 for run/create like Docker, 1 otherwise), bad flag values, and the
//! "cannot connect" message when the engine socket does not exist.

use std::process::{Command, Output};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
const NO_ENGINE: &str = "unix:///nonexistent/berth-cli-test.sock";

fn berth(args: &[&str]) -> Output {
    Command::new(BERTH)
        .args(args)
        .env("BERTH_HOST", NO_ENGINE)
        .env_remove("BERTH_ROOT")
        .output()
        .expect("run berth")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_works() {
    let out = berth(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "ps", "logs", "images", "volume", "system", "engine"] {
        assert!(text.contains(cmd), "--help lacks {cmd}: {text}");
    }
    let out = berth(&["run", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--memory"), "{text}");
    assert!(text.contains("--hostname"), "{text}");
}

#[test]
fn unknown_flag_of_run_exits_125() {
    let out = berth(&["run", "--bogus-flag", "alpine"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(err.starts_with("berth: "), "{err}");
    assert!(err.contains("--bogus-flag"), "{err}");
    let out = berth(&["create"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
}

#[test]
fn unknown_flag_of_other_commands_exits_1() {
    let out = berth(&["ps", "--bogus-flag"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--bogus-flag"));
}

#[test]
fn bad_memory_value_exits_125_naming_it() {
    let out = berth(&["run", "-m", "64q", "alpine", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        stderr(&out).trim_end(),
        "berth: invalid memory size \"64q\": expected a number with an optional b, k, m or g suffix"
    );
}

#[test]
fn bad_values_are_named() {
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--cpus", "lots", "alpine"], "\"lots\""),
        (
            &["run", "--restart", "sometimes", "alpine"],
            "\"sometimes\"",
        ),
        (&["run", "--health-interval", "10", "alpine"], "\"10\""),
        (&["run", "-v", "./rel:/data", "alpine"], "./rel"),
        (&["run", "--ulimit", "bogus=1", "alpine"], "bogus"),
        (
            &["create", "--env-file", "/nonexistent/env", "alpine"],
            "/nonexistent/env",
        ),
    ];
    for (args, needle) in cases {
        let out = berth(args);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with("berth: ") && err.contains(needle),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn unreachable_engine_is_reported() {
    let out = Command::new(BERTH)
        .args(["-H", "unix:///nonexistent.sock", "ps"])
        .output()
        .expect("run berth");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("berth: cannot connect to the berth engine at unix:///nonexistent.sock: "),
        "{err}"
    );
    assert!(
        err.trim_end().ends_with("is `berth engine` running?"),
        "{err}"
    );
    // run reports the same failure with Docker's 125.
    let out = berth(&["run", "alpine", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("cannot connect to the berth engine"));
}

#[test]
fn tcp_hosts_are_refused_clearly() {
    let out = berth(&["-H", "tcp://127.0.0.1:2375", "ps"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("only unix sockets are supported"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn save_refuses_a_terminal_only_when_stdout_is_one() {
    // stdout is a pipe here, so save goes on to contact the (missing) engine.
    let out = berth(&["image", "save", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot connect"), "{}", stderr(&out));
}

#[test]
fn bad_engine_auth_settings_are_named_before_the_agent_starts() {
    let server = ["agent", "--server", "http://127.0.0.1:9", "--cluster", "c"];
    let cases: &[(&[&str], &str)] = &[
        (&["--engine-auth-type", "basic"], "docker or dockercfg"),
        (&["--engine-auth-data", "{}"], "--engine-auth-type"),
        (&["--engine-auth-type", "docker"], "--engine-auth-data"),
        (
            &["--engine-auth-type", "docker", "--engine-auth-data", "{bad"],
            "not a JSON object",
        ),
        (
            &[
                "--engine-auth-type",
                "dockercfg",
                "--engine-auth-data",
                r#"{"r.example": {"auth": "%%"}}"#,
            ],
            "r.example.auth is not base64",
        ),
    ];
    for (extra, needle) in cases {
        let args: Vec<&str> = server.iter().chain(extra.iter()).copied().collect();
        let out = berth(&args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
