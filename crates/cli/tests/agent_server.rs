//! End to end with real processes: `berth server` (SigV4 on), `berth agent` (credentials
//! file) and a test engine, driven through the ECS API: a task placed by RunTask reaches
//! RUNNING, the agent killed with SIGKILL leaves it running and the restarted agent adopts it,
//! StopTask stops it. Everything talks over loopback and the engine's bridges.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_ecs_client::{Credentials, EcsClient};
use berth_engine_client::EngineClient;
use common::{TestEngine, BERTH};
use serde_json::{json, Value};

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `berth server` on an ephemeral port; returns it, its URL and credentials file.
fn server(root: &std::path::Path) -> (Proc, String, PathBuf) {
    server_on(root, "127.0.0.1:0")
}

fn server_on(root: &std::path::Path, listen: &str) -> (Proc, String, PathBuf) {
    let mut child = Command::new(BERTH)
        .args(["--root"])
        .arg(root)
        .args(["server", "--listen", listen])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let url = lines
        .next()
        .unwrap()
        .unwrap()
        .strip_prefix("berth server listening on ")
        .unwrap()
        .to_string();
    let creds = lines.next().unwrap().unwrap();
    let path = creds
        .strip_prefix("credentials: ")
        .and_then(|s| s.split(' ').next())
        .unwrap()
        .to_string();
    (Proc(child), url, PathBuf::from(path))
}

fn agent(e: &TestEngine, root: &std::path::Path, url: &str, creds: &std::path::Path) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("agent.log"))
        .unwrap();
    Proc(
        Command::new(BERTH)
            .args(["-H", &e.host(), "--root"])
            .arg(root)
            .args([
                "agent",
                "--server",
                url,
                "--cluster",
                "c1",
                "--credentials-file",
            ])
            .arg(creds)
            .args([
                "--task-cleanup-wait",
                "2s",
                "--attributes",
                "ecs.availability-zone=az1",
                "--task-network-subnet",
                &common::free_subnet(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

async fn call(c: &EcsClient, op: &str, req: Value) -> Value {
    c.call::<Value, Value>(op, &req)
        .await
        .unwrap_or_else(|e| panic!("{op}: {e}"))
}

async fn describe(c: &EcsClient, arn: &str) -> Value {
    let r = call(c, "DescribeTasks", json!({"cluster": "c1", "tasks": [arn]})).await;
    r["tasks"][0].clone()
}

async fn wait_status(c: &EcsClient, arn: &str, want: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let t = describe(c, arn).await;
        if t["lastStatus"] == want {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "task never reached {want}: {t:#}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn run_task_runs_on_the_agent_survives_an_agent_kill_and_stops() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let server_root = e.root.join("server-root");
    let agent_root = e.root.join("agent-root");
    std::fs::create_dir_all(&agent_root).unwrap();
    let (_server, url, creds) = server(&server_root);
    let mut agent_proc = Some(agent(&e, &agent_root, &url, &creds));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let credentials = Credentials::from_shared_file(&creds, "default").unwrap();
        let c = EcsClient::new(&url, "us-east-1", Some(credentials)).unwrap();
        call(&c, "CreateCluster", json!({"clusterName": "c1"})).await;
        call(
            &c,
            "RegisterTaskDefinition",
            json!({"family": "svc", "containerDefinitions": [
                {"name": "app", "image": "bb", "memory": 64, "stopTimeout": 1,
                 "command": ["sleep", "300"]}
            ]}),
        )
        .await;
        // The agent registers and connects.
        let deadline = Instant::now() + Duration::from_secs(20);
        let instance = loop {
            let l = call(&c, "ListContainerInstances", json!({"cluster": "c1"})).await;
            if let Some(arn) = l["containerInstanceArns"][0].as_str() {
                let d = call(
                    &c,
                    "DescribeContainerInstances",
                    json!({"cluster": "c1", "containerInstances": [arn]}),
                )
                .await;
                if d["containerInstances"][0]["agentConnected"] == true {
                    break d["containerInstances"][0].clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "the agent never connected: {}",
                std::fs::read_to_string(agent_root.join("agent.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let attrs = instance["attributes"].to_string();
        assert!(attrs.contains("ecs.availability-zone"), "{attrs}");
        assert!(attrs.contains("ecs.capability.task-eni"), "{attrs}");

        let t0 = Instant::now();
        let run = call(
            &c,
            "RunTask",
            json!({"cluster": "c1", "taskDefinition": "svc:1"}),
        )
        .await;
        let arn = run["tasks"][0]["taskArn"].as_str().unwrap().to_string();
        let t = wait_status(&c, &arn, "RUNNING", Duration::from_secs(20)).await;
        eprintln!("RunTask -> RUNNING (DescribeTasks): {:?}", t0.elapsed());
        let id = t["containers"][0]["runtimeId"]
            .as_str()
            .unwrap()
            .to_string();
        // A second task on a warm host (bridge up, metadata listener bound).
        let t1 = Instant::now();
        let run2 = call(
            &c,
            "RunTask",
            json!({"cluster": "c1", "taskDefinition": "svc:1"}),
        )
        .await;
        let arn2 = run2["tasks"][0]["taskArn"].as_str().unwrap().to_string();
        wait_status(&c, &arn2, "RUNNING", Duration::from_secs(20)).await;
        eprintln!(
            "warm RunTask -> RUNNING (DescribeTasks): {:?}",
            t1.elapsed()
        );
        for l in std::fs::read_to_string(agent_root.join("agent.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("elapsed"))
        {
            eprintln!("  {l}");
        }
        call(&c, "StopTask", json!({"cluster": "c1", "task": arn2})).await;
        wait_status(&c, &arn2, "STOPPED", Duration::from_secs(20)).await;
        let engine = EngineClient::new(&e.host()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while engine
            .list_containers(true, &Default::default())
            .await
            .unwrap()
            .len()
            > 1
        {
            assert!(
                Instant::now() < deadline,
                "the second task was never cleaned up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // SIGKILL the agent: the task keeps running; a new agent adopts it.
        drop(agent_proc.take());
        let ins = engine.inspect_container(&id).await.unwrap();
        assert!(ins.state.running);
        agent_proc = Some(agent(&e, &agent_root, &url, &creds));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let d = call(
                &c,
                "DescribeContainerInstances",
                json!({"cluster": "c1", "containerInstances": [instance["containerInstanceArn"]]}),
            )
            .await;
            if d["containerInstances"][0]["agentConnected"] == true {
                break;
            }
            assert!(Instant::now() < deadline, "the agent never reconnected");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let l = call(&c, "ListContainerInstances", json!({"cluster": "c1"})).await;
        assert_eq!(
            l["containerInstanceArns"].as_array().map(Vec::len),
            Some(1),
            "the restarted agent kept its identity"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let all = engine
            .list_containers(true, &Default::default())
            .await
            .unwrap();
        assert_eq!(all.len(), 1, "nothing started twice: {all:#?}");
        assert_eq!(all[0].id, id);

        call(
            &c,
            "StopTask",
            json!({"cluster": "c1", "task": arn, "reason": "test"}),
        )
        .await;
        let t = wait_status(&c, &arn, "STOPPED", Duration::from_secs(20)).await;
        assert_eq!(t["stopCode"], "UserInitiated");
        assert_eq!(t["containers"][0]["exitCode"], 137);
        // Cleanup after 2 s removes the container.
        let deadline = Instant::now() + Duration::from_secs(20);
        while engine.inspect_container(&id).await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "the stopped task was never cleaned up: {}",
                std::fs::read_to_string(agent_root.join("agent.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    drop(rt);
    drop(agent_proc);
}

#[test]
fn the_agent_reconnects_after_a_server_restart_and_reports_what_happened_meanwhile() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let server_root = e.root.join("server-root");
    let agent_root = e.root.join("agent-root");
    std::fs::create_dir_all(&agent_root).unwrap();
    let (server_proc, url, creds) = server(&server_root);
    let mut server_proc = Some(server_proc);
    let _agent = agent(&e, &agent_root, &url, &creds);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let credentials = Credentials::from_shared_file(&creds, "default").unwrap();
        let c = EcsClient::new(&url, "us-east-1", Some(credentials)).unwrap();
        call(&c, "CreateCluster", json!({"clusterName": "c1"})).await;
        call(
            &c,
            "RegisterTaskDefinition",
            json!({"family": "short", "containerDefinitions": [
                {"name": "app", "image": "bb", "memory": 32, "command": ["sh", "-c", "sleep 3; exit 5"]}
            ]}),
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let l = call(&c, "ListContainerInstances", json!({"cluster": "c1"})).await;
            if l["containerInstanceArns"][0].is_string() {
                break;
            }
            assert!(Instant::now() < deadline, "the agent never registered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let run = call(
            &c,
            "RunTask",
            json!({"cluster": "c1", "taskDefinition": "short:1"}),
        )
        .await;
        let arn = run["tasks"][0]["taskArn"].as_str().unwrap().to_string();
        wait_status(&c, &arn, "RUNNING", Duration::from_secs(20)).await;

        // The server dies (SIGKILL); the task exits while it is down; the server comes back
        // on the same address and store.
        drop(server_proc.take());
        tokio::time::sleep(Duration::from_secs(4)).await;
        let listen = url.trim_start_matches("http://").to_string();
        let (p, _, _) = server_on(&server_root, &listen);
        server_proc = Some(p);

        let t = wait_status(&c, &arn, "STOPPED", Duration::from_secs(30)).await;
        assert_eq!(t["containers"][0]["exitCode"], 5, "{t:#}");
        assert_eq!(t["stopCode"], "EssentialContainerExited");
        let l = call(&c, "ListTasks", json!({"cluster": "c1"})).await;
        assert_eq!(l["taskArns"].as_array().map(Vec::len), Some(0), "{l}");
        let s = call(
            &c,
            "ListTasks",
            json!({"cluster": "c1", "desiredStatus": "STOPPED"}),
        )
        .await;
        assert_eq!(s["taskArns"].as_array().map(Vec::len), Some(1), "{s}");
    });
    drop(rt);
    drop(server_proc);
}

/// Removes what an in-process engine under `root` made (containers, mounts, cgroups, links).
struct InProcessCleanup {
    root: PathBuf,
    prefix: String,
}

impl Drop for InProcessCleanup {
    fn drop(&mut self) {
        common::cleanup_root(&self.root);
        common::cleanup_network(&self.prefix);
    }
}

#[test]
fn the_agent_starts_an_engine_in_process_when_none_answers() {
    let root = std::env::temp_dir().join(format!(
        "berth-test-agent-inproc-{}-{}",
        std::process::id(),
        Instant::now().elapsed().subsec_nanos()
    ));
    std::fs::create_dir_all(&root).unwrap();
    let prefix = format!("bt{:04x}", (std::process::id() ^ 0x5a5a) & 0xffff);
    let _cleanup = InProcessCleanup {
        root: root.clone(),
        prefix: prefix.clone(),
    };
    let host = format!("unix://{}/engine.sock", root.display());
    let (_server, url, creds) = server(&root.join("server-root"));
    let log = std::fs::File::create(root.join("agent.log")).unwrap();
    let agent_child = Command::new(BERTH)
        .args(["-H", &host, "--root"])
        .arg(root.join("data"))
        .args([
            "agent",
            "--server",
            &url,
            "--cluster",
            "c1",
            "--credentials-file",
        ])
        .arg(&creds)
        .env("BERTH_NETWORK_PREFIX", &prefix)
        .env("BERTH_DEFAULT_BRIDGE_SUBNET", common::free_subnet())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut agent_proc = Some(Proc(agent_child));
    // The engine socket appears; import busybox through it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(root.join("engine.sock")).is_err() {
        assert!(
            Instant::now() < deadline,
            "no in-process engine: {}",
            std::fs::read_to_string(root.join("agent.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rootfs = root.join("rootfs");
    common::busybox_rootfs(&rootfs);
    let out = Command::new(BERTH)
        .args(["-H", &host, "image", "import"])
        .arg(&rootfs)
        .args(["--tag", "bb"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let credentials = Credentials::from_shared_file(&creds, "default").unwrap();
        let c = EcsClient::new(&url, "us-east-1", Some(credentials)).unwrap();
        call(&c, "CreateCluster", json!({"clusterName": "c1"})).await;
        call(
            &c,
            "RegisterTaskDefinition",
            json!({"family": "inproc", "containerDefinitions": [
                {"name": "app", "image": "bb", "memory": 32, "stopTimeout": 1,
                 "command": ["sleep", "300"]}
            ]}),
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let l = call(&c, "ListContainerInstances", json!({"cluster": "c1"})).await;
            if l["containerInstanceArns"][0].is_string() {
                break;
            }
            assert!(Instant::now() < deadline, "the agent never registered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let run = call(
            &c,
            "RunTask",
            json!({"cluster": "c1", "taskDefinition": "inproc:1"}),
        )
        .await;
        let arn = run["tasks"][0]["taskArn"].as_str().unwrap().to_string();
        wait_status(&c, &arn, "RUNNING", Duration::from_secs(20)).await;
        call(&c, "StopTask", json!({"cluster": "c1", "task": arn})).await;
        wait_status(&c, &arn, "STOPPED", Duration::from_secs(20)).await;
    });
    drop(rt);
    drop(agent_proc.take());
}
