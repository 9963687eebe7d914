//! End-to-end: `berth build` against a real engine (RUN steps in real containers, layers
//! committed to the content store), then `berth run` of the result. Base images come from
//! Debian's busybox-static.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::TestEngine;

fn context(engine: &TestEngine, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = engine.root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (f, content) in files {
        let p = dir.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir
}

fn build(engine: &TestEngine, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["build"];
    args.extend_from_slice(extra);
    args.push(dir.to_str().unwrap());
    engine.berth(&args)
}

fn build_ok(engine: &TestEngine, dir: &Path, extra: &[&str]) -> String {
    let out = build(engine, dir, extra);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "build failed:\nstdout: {stdout}\nstderr: {}\nengine log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        engine.engine_log()
    );
    stdout
}

fn no_containers_left(engine: &TestEngine) {
    assert_eq!(
        engine.ok(&["ps", "-aq"]),
        "",
        "build containers were left behind"
    );
}

#[test]
fn multi_stage_into_scratch_runs_and_rebuild_is_cached() {
    let engine = TestEngine::start();
    engine.import_busybox("base");
    let dir = context(
        &engine,
        "ctx-multi",
        &[(
            "Dockerfile",
            "# syntax=docker/dockerfile:1\nFROM base AS builder\nRUN mkdir -p /out \\\n && cp /bin/busybox /out/busybox \\\n && echo compiled\n\nFROM scratch\nCOPY --from=builder /out/busybox /busybox\nENTRYPOINT [\"/busybox\", \"echo\"]\nCMD [\"built\", \"by\", \"berth\"]\n",
        )],
    );
    let first = build_ok(&engine, &dir, &["-t", "hello:1", "-t", "hello:latest"]);
    assert!(first.contains("Step 1/6 : FROM base AS builder"), "{first}");
    assert!(
        first.contains("\ncompiled\n"),
        "RUN output is streamed: {first}"
    );
    assert!(first.contains("Successfully built"), "{first}");
    assert!(first.contains("Successfully tagged hello:1"), "{first}");
    assert!(
        first.contains("Successfully tagged hello:latest"),
        "{first}"
    );
    no_containers_left(&engine);
    assert_eq!(engine.ok(&["run", "--rm", "hello:1"]), "built by berth");
    let id1 = engine.inspect("hello:1", "{{.Id}}");
    // The final image holds one layer: the scratch stage's COPY.
    let layers = engine.inspect("hello:1", "{{len .RootFs.Layers}}");
    assert_eq!(layers, "1");

    let again = build_ok(&engine, &dir, &["-t", "hello:1"]);
    assert_eq!(again.matches("---> Using cache").count(), 4, "{again}");
    assert!(
        !again.contains("\ncompiled"),
        "no RUN executed on a cached rebuild: {again}"
    );
    assert_eq!(engine.inspect("hello:1", "{{.Id}}"), id1);

    let nocache = build_ok(
        &engine,
        &dir,
        &["--no-cache", "-t", "hello:2", "--progress", "plain"],
    );
    assert!(!nocache.contains("CACHED"), "{nocache}");
    assert!(nocache.contains("#2 [2/6] RUN mkdir"), "{nocache}");
    assert!(nocache.contains("compiled"), "{nocache}");
    assert!(nocache.contains("DONE"), "{nocache}");
    let plain_cached = build_ok(&engine, &dir, &["--progress", "plain"]);
    assert!(plain_cached.contains("#2 CACHED"), "{plain_cached}");
    no_containers_left(&engine);
}

#[test]
fn changed_file_rebuilds_from_its_copy_and_dockerignore_excludes() {
    let engine = TestEngine::start();
    engine.import_busybox("base");
    let dir = context(
        &engine,
        "ctx-partial",
        &[
            (
                "Dockerfile",
                "FROM base\nRUN echo first-step > /s1\nCOPY a.txt /app/\nRUN cat /app/a.txt > /app/copy && echo second-step\nCOPY . /ctx/\n",
            ),
            ("a.txt", "one\n"),
            ("keep.txt", "keep\n"),
            ("secret.txt", "do not send\n"),
            ("logs/x.log", "noise\n"),
            (".dockerignore", "# ignore these\nsecret.txt\n**/*.log\n"),
        ],
    );
    let first = build_ok(&engine, &dir, &["-t", "partial"]);
    assert!(
        first.contains("first-step") || !first.contains("Using cache"),
        "{first}"
    );
    assert_eq!(
        engine.ok(&["run", "--rm", "partial", "cat", "/app/copy"]),
        "one"
    );
    let listing = engine.ok(&[
        "run",
        "--rm",
        "partial",
        "sh",
        "-c",
        "cd /ctx && find . | sort",
    ]);
    assert!(listing.contains("./keep.txt"), "{listing}");
    assert!(listing.contains("./Dockerfile"), "{listing}");
    assert!(
        !listing.contains("secret"),
        ".dockerignore excludes: {listing}"
    );
    assert!(
        !listing.contains("x.log"),
        ".dockerignore ** excludes: {listing}"
    );

    std::fs::write(dir.join("a.txt"), "two\n").unwrap();
    let second = build_ok(&engine, &dir, &["-t", "partial"]);
    let step2 = second
        .split("Step 2/5")
        .nth(1)
        .unwrap()
        .split("Step 3/5")
        .next()
        .unwrap();
    assert!(
        step2.contains("Using cache"),
        "the step before the COPY is cached: {second}"
    );
    let step3 = second.split("Step 3/5").nth(1).unwrap();
    assert!(
        !step3.contains("Using cache"),
        "from the changed COPY on nothing is cached: {second}"
    );
    assert!(second.contains("second-step"), "{second}");
    assert_eq!(
        engine.ok(&["run", "--rm", "partial", "cat", "/app/copy"]),
        "two"
    );
    no_containers_left(&engine);
}

#[test]
fn arg_env_workdir_user_semantics() {
    let engine = TestEngine::start();
    engine.import_busybox("base");
    let dir = context(
        &engine,
        "ctx-args",
        &[(
            "Dockerfile",
            "ARG BASE=nope\nFROM ${BASE}\nARG GREETING=hello\nARG UNUSED_DEFAULT=x\nENV APP_HOME=/srv/app MSG=\"${GREETING} world\"\nENV LEGACY value with spaces\nWORKDIR $APP_HOME\nRUN echo \"$GREETING\" > greeting.txt && chown 1000:1000 greeting.txt\nWORKDIR sub\nUSER 1000:1000\nLABEL org.example.greeting=$GREETING\nEXPOSE 8080 53/udp\nSTOPSIGNAL SIGINT\nCMD [\"sh\", \"-c\", \"pwd; id -u; echo $MSG\"]\n",
        )],
    );
    build_ok(
        &engine,
        &dir,
        &[
            "-t",
            "args",
            "--build-arg",
            "BASE=base",
            "--build-arg",
            "GREETING=hi",
        ],
    );
    assert_eq!(
        engine.ok(&["run", "--rm", "args"]),
        "/srv/app/sub\n1000\nhi world"
    );
    let env = engine.ok(&["run", "--rm", "args", "env"]);
    assert!(env.contains("MSG=hi world"), "{env}");
    assert!(env.contains("APP_HOME=/srv/app"), "{env}");
    assert!(env.contains("LEGACY=value with spaces"), "{env}");
    assert!(
        !env.contains("GREETING="),
        "ARGs are not persisted in the image: {env}"
    );
    assert_eq!(
        engine.ok(&["run", "--rm", "args", "cat", "/srv/app/greeting.txt"]),
        "hi"
    );
    assert_eq!(engine.inspect("args", "{{.Config.User}}"), "1000:1000");
    assert_eq!(
        engine.inspect("args", "{{.Config.WorkingDir}}"),
        "/srv/app/sub"
    );
    assert_eq!(engine.inspect("args", "{{.Config.StopSignal}}"), "SIGINT");
    assert_eq!(
        engine.inspect("args", "{{index .Config.Labels \"org.example.greeting\"}}"),
        "hi"
    );
    let ports = engine.inspect("args", "{{json .Config.ExposedPorts}}");
    assert!(
        ports.contains("8080/tcp") && ports.contains("53/udp"),
        "{ports}"
    );
    // The default GREETING when no --build-arg is given.
    build_ok(&engine, &dir, &["-t", "args2", "--build-arg", "BASE=base"]);
    let msg = engine.ok(&["run", "--rm", "args2", "sh", "-c", "echo $MSG"]);
    assert_eq!(msg, "hello world");
    no_containers_left(&engine);
}

#[test]
fn failing_run_and_malformed_dockerfile_are_clear_errors() {
    let engine = TestEngine::start();
    engine.import_busybox("base");
    let dir = context(
        &engine,
        "ctx-fail",
        &[(
            "Dockerfile",
            "FROM base\n\nRUN echo before-failure && exit 3\nRUN echo never\n",
        )],
    );
    let out = build(&engine, &dir, &["-t", "broken"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("before-failure"),
        "the step's output is shown: {stdout}"
    );
    assert!(!stdout.contains("never"), "{stdout}");
    assert!(
        stderr.contains(
            "The command '/bin/sh -c echo before-failure && exit 3' returned a non-zero code: 3"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("line 3"), "{stderr}");
    no_containers_left(&engine);
    assert!(engine.berth(&["inspect", "broken"]).status.code() != Some(0));

    std::fs::write(
        dir.join("Dockerfile"),
        "FROM base\nRUN true\nCOPY onlyone\n",
    )
    .unwrap();
    let out = build(&engine, &dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(
        stderr.contains("COPY requires at least two arguments"),
        "{stderr}"
    );

    std::fs::write(dir.join("Dockerfile"), "FROM missing-image:1\n").unwrap();
    let out = build(&engine, &dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing-image:1"), "{stderr}");

    std::fs::write(
        dir.join("Dockerfile"),
        "FROM base\nADD https://example.invalid/x /x\n",
    )
    .unwrap();
    let out = build(&engine, &dir, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("remote URLs are not supported"), "{stderr}");
}

#[test]
fn deletions_in_run_become_whiteouts() {
    let engine = TestEngine::start();
    engine.import_busybox("base");
    let dir = context(
        &engine,
        "ctx-wh",
        &[
            (
                "Dockerfile",
                "FROM base\nRUN mkdir -p /o /d && touch /o/a /o/b /d/f\nRUN rm -rf /d /bin/vi && rm -rf /o && mkdir /o && touch /o/c\nCOPY --chmod=700 tool.sh /usr/local/bin/\nADD bundle.tar /opt/\n",
            ),
            ("tool.sh", "#!/bin/sh\necho tool\n"),
        ],
    );
    // A tar for ADD to unpack.
    {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, "inner/file.txt", &b"abc"[..])
            .unwrap();
        std::fs::write(dir.join("bundle.tar"), b.into_inner().unwrap()).unwrap();
    }
    build_ok(&engine, &dir, &["-t", "wh"]);
    let check = engine.ok(&[
        "run",
        "--rm",
        "wh",
        "sh",
        "-c",
        "test -e /d && echo d-exists; test -e /bin/vi && echo vi-exists; ls /o; stat -c %a /usr/local/bin/tool.sh; /usr/local/bin/tool.sh; cat /opt/inner/file.txt",
    ]);
    assert_eq!(check, "c\n700\ntool\nabc");
    let history = engine.inspect("wh", "{{len .RootFs.Layers}}");
    assert_eq!(history, "5");
    no_containers_left(&engine);
}

#[test]
fn docker_cli_classic_build_against_the_engine() {
    let engine = TestEngine::start();
    engine.import_busybox("base");
    let dir = context(
        &engine,
        "ctx-docker",
        &[
            ("Dockerfile", "FROM base\nARG WHO=nobody\nCOPY hello.txt /\nRUN echo \"by $WHO\" >> /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n"),
            ("hello.txt", "hello\n"),
        ],
    );
    let out = std::process::Command::new("docker")
        .args([
            "-H",
            &engine.host(),
            "build",
            "-t",
            "viadocker:1",
            "--build-arg",
            "WHO=docker",
        ])
        .arg(&dir)
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_CONFIG", engine.root.join("docker-config"))
        .output()
        .expect("docker client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Successfully tagged viadocker:1"),
        "{stdout}"
    );
    assert_eq!(
        engine.ok(&["run", "--rm", "viadocker:1"]),
        "hello\nby docker"
    );
    no_containers_left(&engine);
}
