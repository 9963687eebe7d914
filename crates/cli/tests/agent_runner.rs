//! End-to-end tests of the node agent's task runner on a real engine: hand-built
//! TaskAssignments, reports collected through a channel sink. Traffic stays on loopback and
//! the test engine's bridges; the engine harness removes containers, links and nft tables.

mod common;
mod registry_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_agent::metadata::Metadata;
use berth_agent::{ChannelSink, Reporter, Runner, RunnerConfig};
use berth_api::shapes::agent::{AssignedHostPort, TaskAssignment};
use berth_api::shapes::tasks::{SubmitTaskStateChangeRequest, Task};
use berth_engine_client::EngineClient;
use common::TestEngine;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;

type Reports = UnboundedReceiver<SubmitTaskStateChangeRequest>;

fn unique_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{:08x}{:04x}{:04x}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        Instant::now().elapsed().subsec_nanos() & 0xffff
    )
}

fn assignment(
    family: &str,
    network_mode: Option<&str>,
    containers: Value,
    volumes: Value,
    host_ports: Vec<AssignedHostPort>,
) -> TaskAssignment {
    let mut td = json!({
        "taskDefinitionArn": format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{family}:1"),
        "family": family, "revision": 1, "status": "ACTIVE",
        "containerDefinitions": containers, "volumes": volumes
    });
    if let Some(m) = network_mode {
        td["networkMode"] = json!(m);
    }
    TaskAssignment {
        cluster: "test".into(),
        task: Task {
            task_arn: format!(
                "arn:aws:ecs:us-east-1:123456789012:task/test/{}",
                unique_id()
            ),
            cluster_arn: "arn:aws:ecs:us-east-1:123456789012:cluster/test".into(),
            desired_status: "RUNNING".into(),
            last_status: "PENDING".into(),
            launch_type: "EC2".into(),
            ..Task::default()
        },
        task_definition: serde_json::from_value(td).unwrap(),
        host_ports,
    }
}

fn stopped(a: &TaskAssignment) -> TaskAssignment {
    let mut a = a.clone();
    a.task.desired_status = "STOPPED".into();
    a
}

async fn runner(e: &TestEngine, config: RunnerConfig) -> (Runner, Reports, Arc<Metadata>) {
    let engine = EngineClient::new(&e.host()).unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let reporter = Reporter::new(Arc::new(ChannelSink(tx)));
    let md = Metadata::new(engine.clone(), None);
    let r = Runner::new(engine, config, reporter, Some(md.clone()))
        .await
        .unwrap();
    (r, rx, md)
}

fn config() -> RunnerConfig {
    RunnerConfig {
        task_cleanup_wait: Duration::from_secs(60),
        task_network: "berth-task".into(),
        task_network_subnet: Some(common::free_subnet()),
        ..RunnerConfig::default()
    }
}

/// The first report of `arn` that satisfies `pred` (reports of other tasks are skipped).
async fn wait_for(
    rx: &mut Reports,
    arn: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&SubmitTaskStateChangeRequest) -> bool,
) -> SubmitTaskStateChangeRequest {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(r)) => {
                if r.task.as_deref() == Some(arn) {
                    if pred(&r) {
                        return r;
                    }
                    last = Some(r);
                }
            }
            _ => panic!("timed out waiting for {what}; last report: {last:#?}"),
        }
    }
}

fn status(r: &SubmitTaskStateChangeRequest) -> &str {
    r.status.as_deref().unwrap_or_default()
}

fn container<'a>(
    r: &'a SubmitTaskStateChangeRequest,
    name: &str,
) -> &'a berth_api::shapes::tasks::ContainerStateChange {
    r.containers
        .as_ref()
        .and_then(|c| c.iter().find(|c| c.container_name.as_deref() == Some(name)))
        .unwrap_or_else(|| panic!("no container {name} in {r:#?}"))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_two_container_task_runs_and_its_essential_exit_stops_it_honouring_stop_timeout() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    block_on(async {
        let (r, mut rx, _md) = runner(&e, config()).await;
        let a = assignment(
            "life",
            None,
            json!([
                {"name": "main", "image": "bb", "command": ["sh", "-c", "sleep 1.5; exit 3"]},
                {"name": "side", "image": "bb", "essential": false, "stopTimeout": 2,
                 "command": ["sleep", "300"]}
            ]),
            json!([]),
            vec![],
        );
        let arn = a.task.task_arn.clone();
        let t0 = Instant::now();
        r.apply(a.clone());
        let running = wait_for(&mut rx, &arn, "RUNNING", Duration::from_secs(20), |r| {
            status(r) == "RUNNING"
        })
        .await;
        eprintln!("apply -> RUNNING report: {:?}", t0.elapsed());
        for n in ["main", "side"] {
            let c = container(&running, n);
            assert_eq!(c.status.as_deref(), Some("RUNNING"), "{running:#?}");
            assert!(c.runtime_id.is_some());
        }
        let stopping = wait_for(&mut rx, &arn, "STOPPING", Duration::from_secs(20), |r| {
            matches!(status(r), "STOPPING" | "STOPPED")
        })
        .await;
        let t_stop = Instant::now();
        assert_eq!(
            stopping.stop_code.as_deref(),
            Some("EssentialContainerExited")
        );
        let done = wait_for(&mut rx, &arn, "STOPPED", Duration::from_secs(20), |r| {
            status(r) == "STOPPED"
        })
        .await;
        // `side` ignores SIGTERM (PID 1 without a handler): killed after its 2 s stopTimeout.
        assert!(
            t_stop.elapsed() >= Duration::from_millis(1500),
            "stopped after {:?}",
            t_stop.elapsed()
        );
        assert_eq!(done.stop_code.as_deref(), Some("EssentialContainerExited"));
        assert_eq!(
            done.reason.as_deref(),
            Some("Essential container in task exited")
        );
        assert_eq!(container(&done, "main").exit_code, Some(3));
        assert_eq!(container(&done, "side").exit_code, Some(137));
        assert!(done.execution_stopped_at.is_some());
        drop(r);
    });
}

#[test]
fn stop_task_stops_in_reverse_dependency_order_and_a_missing_image_fails_to_start() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let out = e.root.join("out-order");
    std::fs::create_dir_all(&out).unwrap();
    block_on(async {
        let (r, mut rx, _md) = runner(&e, config()).await;
        // Timestamps (uptime in centiseconds) written inside the containers.
        let stamp = |name: &str| format!("cut -d' ' -f1 /proc/uptime | tr -d . > /out/{name}");
        let a = assignment(
            "order",
            None,
            json!([
                {"name": "app", "image": "bb",
                 "dependsOn": [{"containerName": "db", "condition": "HEALTHY"},
                               {"containerName": "side", "condition": "START"}],
                 "mountPoints": [{"sourceVolume": "out", "containerPath": "/out"}],
                 "stopTimeout": 1,
                 "command": ["sh", "-c", format!("{}; exec sleep 300", stamp("app"))]},
                {"name": "db", "image": "bb",
                 "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}],
                 "healthCheck": {"command": ["CMD-SHELL", "test -f /tmp/ready"], "interval": 1, "timeout": 2, "retries": 1},
                 "mountPoints": [{"sourceVolume": "out", "containerPath": "/out"}],
                 "stopTimeout": 1,
                 "command": ["sh", "-c", format!("{}; sleep 0.5; touch /tmp/ready; {}; exec sleep 300", stamp("db"), stamp("db-ready"))]},
                {"name": "init", "image": "bb", "essential": false,
                 "mountPoints": [{"sourceVolume": "out", "containerPath": "/out"}],
                 "command": ["sh", "-c", format!("sleep 0.3; {}", stamp("init-end"))]},
                {"name": "side", "image": "bb", "essential": false, "stopTimeout": 1,
                 "command": ["sleep", "300"]}
            ]),
            json!([{"name": "out", "host": {"sourcePath": out.display().to_string()}}]),
            vec![],
        );
        let arn = a.task.task_arn.clone();
        r.apply(a.clone());
        let running = wait_for(&mut rx, &arn, "RUNNING", Duration::from_secs(30), |r| {
            status(r) == "RUNNING"
        })
        .await;
        assert_eq!(
            container(&running, "init").exit_code,
            Some(0),
            "{running:#?}"
        );
        assert_eq!(running.health_status.as_deref(), Some("HEALTHY"));
        let mut stamps = BTreeMap::new();
        for n in ["init-end", "db", "db-ready", "app"] {
            let v: u64 = eventually_file(&out.join(n), Duration::from_secs(10))
                .await
                .trim()
                .parse()
                .unwrap();
            stamps.insert(n, v);
        }
        assert!(
            stamps["db"] >= stamps["init-end"],
            "db started before init ended: {stamps:?}"
        );
        assert!(
            stamps["app"] >= stamps["db-ready"],
            "app started before db was healthy: {stamps:?}"
        );

        // StopTask: app (the dependent) first, then db and side; 1 s stopTimeout each.
        let t0 = Instant::now();
        r.apply(stopped(&a));
        let done = wait_for(&mut rx, &arn, "STOPPED", Duration::from_secs(20), |r| {
            status(r) == "STOPPED"
        })
        .await;
        assert!(
            t0.elapsed() >= Duration::from_millis(1800),
            "{:?}",
            t0.elapsed()
        );
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        assert_eq!(done.stop_code, None);
        assert_eq!(container(&done, "app").exit_code, Some(137));

        // A missing image no registry serves (nothing listens on the port): STOPPED with
        // TaskFailedToStart, nothing created.
        let image = format!("127.0.0.1:{}/does-not-exist:1", free_port());
        let b = assignment(
            "noimg",
            None,
            json!([{"name": "x", "image": image}]),
            json!([]),
            vec![],
        );
        let barn = b.task.task_arn.clone();
        r.apply(b);
        let failed = wait_for(&mut rx, &barn, "STOPPED", Duration::from_secs(10), |r| {
            status(r) == "STOPPED"
        })
        .await;
        assert_eq!(failed.stop_code.as_deref(), Some("TaskFailedToStart"));
        let reason = container(&failed, "x").reason.clone().unwrap_or_default();
        assert!(reason.starts_with("CannotPullContainerError"), "{reason}");
        assert!(reason.contains("cannot connect to registry"), "{reason}");
        drop(r);
    });
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

async fn eventually_file(path: &std::path::Path, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if !s.is_empty() {
                return s;
            }
        }
        assert!(Instant::now() < deadline, "no {}", path.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn bridge_ports_answer_on_loopback_and_the_metadata_endpoint_answers_inside() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let out = e.root.join("out-md");
    std::fs::create_dir_all(&out).unwrap();
    let port = free_port();
    block_on(async {
        let (r, mut rx, _md) = runner(&e, config()).await;
        let a = assignment(
            "web",
            Some("bridge"),
            json!([
                {"name": "web", "image": "bb", "stopTimeout": 1,
                 "portMappings": [{"containerPort": 80}, {"containerPort": 81, "hostPort": 0}],
                 "command": ["sh", "-c", "echo served-by-agent > /tmp/index.html; exec httpd -f -p 80 -h /tmp"]},
                {"name": "probe", "image": "bb", "stopTimeout": 1,
                 "mountPoints": [{"sourceVolume": "out", "containerPath": "/out"}],
                 "command": ["sh", "-c", "until wget -q -O /out/c.json \"$ECS_CONTAINER_METADATA_URI_V4\"; do sleep 0.2; done; wget -q -O /out/t.json \"$ECS_CONTAINER_METADATA_URI_V4/task\"; wget -q -O /out/s.json \"$ECS_CONTAINER_METADATA_URI_V4/stats\"; exec sleep 300"]}
            ]),
            json!([{"name": "out", "host": {"sourcePath": out.display().to_string()}}]),
            vec![AssignedHostPort {
                container_name: "web".into(),
                container_port: 80,
                host_port: port,
                protocol: "tcp".into(),
            }],
        );
        let arn = a.task.task_arn.clone();
        r.apply(a.clone());
        let running = wait_for(&mut rx, &arn, "RUNNING", Duration::from_secs(20), |r| {
            status(r) == "RUNNING"
        })
        .await;
        let web = container(&running, "web");
        let bindings = web.network_bindings.clone().unwrap_or_default();
        let b80 = bindings
            .iter()
            .find(|b| b.container_port == Some(80))
            .unwrap_or_else(|| panic!("{bindings:?}"));
        assert_eq!(b80.host_port, Some(port as i64));
        assert_eq!(b80.bind_ip.as_deref(), Some("0.0.0.0"));
        let b81 = bindings
            .iter()
            .find(|b| b.container_port == Some(81))
            .unwrap();
        assert!(b81.host_port.unwrap_or(0) > 0, "{b81:?}");

        let deadline = Instant::now() + Duration::from_secs(15);
        while !http_get(port).contains("served-by-agent") {
            assert!(
                Instant::now() < deadline,
                "the published port never answered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let c: Value = serde_json::from_str(
            &eventually_file(&out.join("c.json"), Duration::from_secs(15)).await,
        )
        .unwrap();
        assert_eq!(c["Name"], "probe");
        assert_eq!(
            c["DockerId"].as_str(),
            container(&running, "probe").runtime_id.as_deref()
        );
        assert_eq!(c["Labels"]["com.amazonaws.ecs.task-arn"], arn.as_str());
        let t: Value = serde_json::from_str(
            &eventually_file(&out.join("t.json"), Duration::from_secs(10)).await,
        )
        .unwrap();
        assert_eq!(t["TaskARN"], arn.as_str());
        assert_eq!(t["Family"], "web");
        assert_eq!(t["Containers"].as_array().map(Vec::len), Some(2));
        let s: Value = serde_json::from_str(
            &eventually_file(&out.join("s.json"), Duration::from_secs(10)).await,
        )
        .unwrap();
        assert!(s["memory_stats"]["usage"].is_u64(), "{s}");

        r.apply(stopped(&a));
        wait_for(&mut rx, &arn, "STOPPED", Duration::from_secs(40), |r| {
            status(r) == "STOPPED"
        })
        .await;
        drop(r);
    });
}

#[test]
fn awsvpc_containers_share_localhost_and_get_an_eni() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let out = e.root.join("out-vpc");
    std::fs::create_dir_all(&out).unwrap();
    block_on(async {
        let (r, mut rx, _md) = runner(&e, config()).await;
        let a = assignment(
            "vpc",
            Some("awsvpc"),
            json!([
                {"name": "server", "image": "bb", "stopTimeout": 1,
                 "command": ["sh", "-c", "echo awsvpc-ok > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]},
                {"name": "client", "image": "bb", "stopTimeout": 1,
                 "mountPoints": [{"sourceVolume": "out", "containerPath": "/out"}],
                 "command": ["sh", "-c", "until wget -q -O /out/got http://127.0.0.1:8080/; do sleep 0.1; done; wget -q -O /out/md.json \"$ECS_CONTAINER_METADATA_URI_V4\"; exec sleep 300"]}
            ]),
            json!([{"name": "out", "host": {"sourcePath": out.display().to_string()}}]),
            vec![],
        );
        let arn = a.task.task_arn.clone();
        r.apply(a.clone());
        let running = wait_for(&mut rx, &arn, "RUNNING", Duration::from_secs(20), |r| {
            status(r) == "RUNNING"
        })
        .await;
        let att = running
            .task_attachments
            .clone()
            .unwrap_or_default()
            .first()
            .cloned()
            .unwrap_or_else(|| panic!("{running:#?}"));
        assert_eq!(att["type"], "ElasticNetworkInterface");
        let ip = att["details"]
            .as_array()
            .and_then(|d| d.iter().find(|x| x["name"] == "privateIPv4Address"))
            .and_then(|x| x["value"].as_str())
            .unwrap_or_default()
            .to_string();
        assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{att}");
        let ni = container(&running, "server")
            .network_interfaces
            .clone()
            .unwrap_or_default();
        assert_eq!(ni[0]["privateIpv4Address"].as_str(), Some(ip.as_str()));

        let got = eventually_file(&out.join("got"), Duration::from_secs(15)).await;
        assert_eq!(got.trim(), "awsvpc-ok");
        let md: Value = serde_json::from_str(
            &eventually_file(&out.join("md.json"), Duration::from_secs(10)).await,
        )
        .unwrap();
        assert_eq!(md["Networks"][0]["NetworkMode"], "awsvpc");
        assert_eq!(
            md["Networks"][0]["IPv4Addresses"][0].as_str(),
            Some(ip.as_str())
        );

        r.apply(stopped(&a));
        wait_for(&mut rx, &arn, "STOPPED", Duration::from_secs(20), |r| {
            status(r) == "STOPPED"
        })
        .await;
        drop(r);
    });
}

#[test]
fn a_new_runner_adopts_running_containers_without_starting_new_ones() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    block_on(async {
        let (r1, mut rx1, _md1) = runner(&e, config()).await;
        let a = assignment(
            "adopt",
            None,
            json!([{"name": "only", "image": "bb", "stopTimeout": 1, "command": ["sleep", "300"]}]),
            json!([]),
            vec![],
        );
        let arn = a.task.task_arn.clone();
        r1.apply(a.clone());
        let running = wait_for(&mut rx1, &arn, "RUNNING", Duration::from_secs(20), |r| {
            status(r) == "RUNNING"
        })
        .await;
        let id = container(&running, "only").runtime_id.clone().unwrap();
        drop(r1);

        let (r2, mut rx2, _md2) = runner(&e, config()).await;
        r2.apply(a.clone());
        let again = wait_for(&mut rx2, &arn, "RUNNING", Duration::from_secs(20), |r| {
            status(r) == "RUNNING"
        })
        .await;
        assert_eq!(
            container(&again, "only").runtime_id.as_deref(),
            Some(id.as_str())
        );
        let engine = EngineClient::new(&e.host()).unwrap();
        let mut f = BTreeMap::new();
        f.insert(
            "label".to_string(),
            vec![format!("com.amazonaws.ecs.task-arn={arn}")],
        );
        let list = engine.list_containers(true, &f).await.unwrap();
        assert_eq!(list.len(), 1, "{list:#?}");
        assert_eq!(list[0].id, id);
        assert_eq!(list[0].state, "running");

        r2.apply(stopped(&a));
        let done = wait_for(&mut rx2, &arn, "STOPPED", Duration::from_secs(20), |r| {
            status(r) == "STOPPED"
        })
        .await;
        assert_eq!(container(&done, "only").exit_code, Some(137));
        drop(r2);
    });
}

#[test]
fn host_and_none_network_modes() {
    let e = TestEngine::start();
    e.import_busybox("bb");
    let out = e.root.join("out-host");
    std::fs::create_dir_all(&out).unwrap();
    block_on(async {
        let (r, mut rx, _md) = runner(&e, config()).await;
        // Host mode: the metadata endpoint is on 127.0.0.1.
        let a = assignment(
            "hostmode",
            Some("host"),
            json!([{"name": "h", "image": "bb",
                    "mountPoints": [{"sourceVolume": "out", "containerPath": "/out"}],
                    "command": ["sh", "-c", "case \"$ECS_CONTAINER_METADATA_URI_V4\" in http://127.0.0.1:*) ;; *) exit 9;; esac; wget -q -O /out/h.json \"$ECS_CONTAINER_METADATA_URI_V4/task\""]}]),
            json!([{"name": "out", "host": {"sourcePath": out.display().to_string()}}]),
            vec![],
        );
        let arn = a.task.task_arn.clone();
        r.apply(a);
        let done = wait_for(&mut rx, &arn, "STOPPED", Duration::from_secs(20), |r| {
            status(r) == "STOPPED"
        })
        .await;
        assert_eq!(container(&done, "h").exit_code, Some(0), "{done:#?}");
        let t: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("h.json")).unwrap()).unwrap();
        assert_eq!(t["Containers"][0]["Networks"][0]["NetworkMode"], "host");

        // None mode: only loopback, and no metadata endpoint.
        let b = assignment(
            "nonemode",
            Some("none"),
            json!([{"name": "n", "image": "bb",
                    "command": ["sh", "-c", "test -z \"$ECS_CONTAINER_METADATA_URI_V4\" || exit 8; test \"$(ls /sys/class/net)\" = lo || exit 7"]}]),
            json!([]),
            vec![],
        );
        let barn = b.task.task_arn.clone();
        r.apply(b);
        let done = wait_for(&mut rx, &barn, "STOPPED", Duration::from_secs(20), |r| {
            status(r) == "STOPPED"
        })
        .await;
        assert_eq!(container(&done, "n").exit_code, Some(0), "{done:#?}");
        assert_eq!(done.stop_code.as_deref(), Some("EssentialContainerExited"));
        drop(r);
    });
}

#[test]
fn the_agent_pulls_a_missing_task_image_once_for_all_tasks_needing_it() {
    let reg = registry_support::TestRegistry::start(&[]);
    let e = TestEngine::start();
    e.import_busybox("bb");
    let image = format!("{}/agent/pulled:1", reg.addr);
    e.ok(&["tag", "bb", &image]);
    e.ok(&["push", "-q", &image]);
    e.ok(&["rmi", &image]);
    block_on(async {
        let (r, mut rx, _md) = runner(&e, config()).await;
        let tasks: Vec<TaskAssignment> = (0..2)
            .map(|_| {
                assignment(
                    "pulled",
                    None,
                    json!([{"name": "app", "image": image, "command": ["sh", "-c", "exit 4"]}]),
                    json!([]),
                    vec![],
                )
            })
            .collect();
        for t in &tasks {
            r.apply(t.clone());
        }
        // Either task may stop first: collect both STOPPED reports.
        let mut stopped = std::collections::HashMap::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while stopped.len() < tasks.len() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(r)) if status(&r) == "STOPPED" => {
                    stopped.insert(r.task.clone().unwrap_or_default(), r);
                }
                Ok(Some(_)) => {}
                _ => panic!("timed out: stopped so far {:?}", stopped.keys()),
            }
        }
        for t in &tasks {
            let done = &stopped[&t.task.task_arn];
            let c = container(done, "app");
            assert_eq!(c.exit_code, Some(4), "{done:#?}");
            assert!(
                done.pull_started_at.is_some() && done.pull_stopped_at.is_some(),
                "{done:#?}"
            );
        }
        drop(r);
    });
    assert_eq!(e.inspect(&image, "{{.Id}}"), e.inspect("bb", "{{.Id}}"));
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let events = e.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &until,
        "--filter",
        "event=pull",
    ]);
    let pulls = events.lines().filter(|l| l.contains(&image)).count();
    assert_eq!(pulls, 1, "two tasks, one pull: {events}");
}

/// Logs `e`'s CLI in to `server` with its own Docker config dir `config`.
fn login(e: &TestEngine, config: &std::path::Path, server: &str, user: &str, password: &str) {
    use std::io::Write;
    let mut child = e
        .cmd()
        .env("DOCKER_CONFIG", config)
        .args(["login", "-u", user, "--password-stdin", server])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{password}\n").as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "login: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs one task of `image` (`sh -c "exit 7"`) on a new runner with `config`; its STOPPED
/// report.
async fn run_image_once(
    e: &TestEngine,
    image: &str,
    family: &str,
    config: RunnerConfig,
    repository_credentials: Option<&str>,
) -> SubmitTaskStateChangeRequest {
    let (r, mut rx, _md) = runner(e, config).await;
    let mut def = json!({"name": "app", "image": image, "command": ["sh", "-c", "exit 7"]});
    if let Some(arn) = repository_credentials {
        def["repositoryCredentials"] = json!({ "credentialsParameter": arn });
    }
    let t = assignment(family, None, json!([def]), json!([]), vec![]);
    r.apply(t.clone());
    let stopped = wait_for(
        &mut rx,
        &t.task.task_arn,
        "STOPPED",
        Duration::from_secs(30),
        |r| status(r) == "STOPPED",
    )
    .await;
    drop(r);
    stopped
}

/// `berth server --no-auth` on an ephemeral port (killed on drop) and a client of it.
fn secrets_server(root: &std::path::Path) -> (ChildProc, berth_ecs_client::EcsClient) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(common::BERTH)
        .args(["server", "--listen", "127.0.0.1:0", "--no-auth", "--store"])
        .arg(root)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    // Kept open: the server's later output must not hit a closed pipe.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("berth server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let client = berth_ecs_client::EcsClient::new(&url, "us-east-1", None).unwrap();
    (ChildProc(child, stdout), client)
}

/// A child process (and its stdout) killed on drop.
struct ChildProc(
    std::process::Child,
    #[allow(dead_code)] std::io::BufReader<std::process::ChildStdout>,
);

impl Drop for ChildProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn private_registry_images_pull_with_the_ecs_engine_auth_logins() {
    let reg = registry_support::TestRegistry::start(&["--auth", "alice:s3cret"]);
    let e = TestEngine::start();
    e.import_busybox("bb");
    let image = format!("{}/private/app:1", reg.addr);
    let config_dir = e.root.join("docker-config");
    login(&e, &config_dir, &reg.addr, "alice", "s3cret");
    e.ok(&["tag", "bb", &image]);
    let pushed = e
        .cmd()
        .env("DOCKER_CONFIG", &config_dir)
        .args(["push", "-q", &image])
        .output()
        .unwrap();
    assert!(pushed.status.success(), "{pushed:?}");
    e.ok(&["rmi", &image]);
    let docker_logins = format!(
        r#"{{"{}": {{"username": "alice", "password": "s3cret", "email": ""}}}}"#,
        reg.addr
    );
    block_on(async {
        // No login for that registry: the pull is refused and the task fails to start.
        let failed = run_image_once(&e, &image, "nologin", config(), None).await;
        assert_eq!(failed.stop_code.as_deref(), Some("TaskFailedToStart"));
        let reason = container(&failed, "app").reason.clone().unwrap_or_default();
        assert!(reason.starts_with("CannotPullContainerError"), "{reason}");
        assert!(reason.to_lowercase().contains("unauthorized"), "{reason}");

        // ECS_ENGINE_AUTH_TYPE=docker + ECS_ENGINE_AUTH_DATA: pulled and run.
        let logins =
            berth_agent::EngineAuth::parse(berth_agent::EngineAuthType::Docker, &docker_logins)
                .unwrap();
        let with_logins = RunnerConfig {
            engine_auth: Some(Arc::new(logins)),
            ..config()
        };
        let done = run_image_once(&e, &image, "withlogin", with_logins, None).await;
        assert_eq!(container(&done, "app").exit_code, Some(7), "{done:#?}");
        e.ok(&["rmi", &image]);

        // The task's own repositoryCredentials: a secret of the control plane, read by the
        // runner through its client (a real server and Secrets Manager API).
        let (_server, client) = secrets_server(&e.root.join("server"));
        let made: serde_json::Value = client
            .call_secrets_manager(
                "CreateSecret",
                &json!({"Name": "registry/alice",
                        "SecretString": r#"{"username": "alice", "password": "s3cret"}"#}),
            )
            .await
            .unwrap();
        let arn = made["ARN"].as_str().unwrap().to_string();
        let with_secrets = RunnerConfig {
            secrets: Some(Arc::new(client.clone())),
            ..config()
        };
        let done = run_image_once(&e, &image, "repocreds", with_secrets.clone(), Some(&arn)).await;
        assert_eq!(container(&done, "app").exit_code, Some(7), "{done:#?}");
        assert_eq!(e.inspect(&image, "{{.Id}}"), e.inspect("bb", "{{.Id}}"));
        e.ok(&["rmi", &image]);
        // A secret that is not a login, and one that does not exist: the task fails to start.
        let bad: serde_json::Value = client
            .call_secrets_manager(
                "CreateSecret",
                &json!({"Name": "registry/bad", "SecretString": "just a string"}),
            )
            .await
            .unwrap();
        let failed = run_image_once(
            &e,
            &image,
            "badcreds",
            with_secrets.clone(),
            bad["ARN"].as_str(),
        )
        .await;
        assert_eq!(failed.stop_code.as_deref(), Some("TaskFailedToStart"));
        let reason = failed.reason.clone().unwrap_or_default();
        assert!(reason.contains("ResourceInitializationError"), "{reason}");
        assert!(reason.contains("username"), "{reason}");
        let missing = arn.replace("registry/alice", "registry/none");
        let failed = run_image_once(&e, &image, "nocreds", with_secrets, Some(&missing)).await;
        let reason = failed.reason.clone().unwrap_or_default();
        assert!(
            reason.contains("can't find the specified secret"),
            "{reason}"
        );
    });
}
