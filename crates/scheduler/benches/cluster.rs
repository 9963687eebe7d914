//! A realistic synthetic ECS cluster, shared by the `placement` bench and the memory test.
//!
//! Each instance has the attributes an ECS agent registers (AMI, zone, instance type, OS,
//! architecture, VPC/subnet, ~40 capabilities) plus a custom `stack` attribute; it is filled to
//! the requested fraction of its memory with 512 MiB / 256-unit tasks from 50 services, each
//! holding a dynamic host port.
#![allow(dead_code)]

use berth_scheduler::{
    BinpackField, ClusterView, ContainerSpec, InstanceSpec, PlacementConstraint, PlacementRequest,
    PlacementStrategy, PortMapping, Protocol, SpreadField, TaskSpec,
};

pub const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
/// (type, cpu units, memory MiB available to tasks)
pub const TYPES: [(&str, u32, u32); 6] = [
    ("m5.large", 2048, 7680),
    ("m5.xlarge", 4096, 15_576),
    ("m5.2xlarge", 8192, 31_408),
    ("c5.2xlarge", 8192, 15_360),
    ("r5.xlarge", 4096, 31_408),
    ("t3.medium", 2048, 3_828),
];

const CAPABILITIES: [&str; 36] = [
    "com.amazonaws.ecs.capability.docker-remote-api.1.17",
    "com.amazonaws.ecs.capability.docker-remote-api.1.18",
    "com.amazonaws.ecs.capability.docker-remote-api.1.19",
    "com.amazonaws.ecs.capability.docker-remote-api.1.20",
    "com.amazonaws.ecs.capability.docker-remote-api.1.21",
    "com.amazonaws.ecs.capability.docker-remote-api.1.22",
    "com.amazonaws.ecs.capability.docker-remote-api.1.23",
    "com.amazonaws.ecs.capability.docker-remote-api.1.24",
    "com.amazonaws.ecs.capability.docker-remote-api.1.25",
    "com.amazonaws.ecs.capability.docker-remote-api.1.26",
    "com.amazonaws.ecs.capability.docker-remote-api.1.27",
    "com.amazonaws.ecs.capability.docker-remote-api.1.28",
    "com.amazonaws.ecs.capability.docker-remote-api.1.29",
    "com.amazonaws.ecs.capability.docker-remote-api.1.30",
    "com.amazonaws.ecs.capability.docker-remote-api.1.31",
    "com.amazonaws.ecs.capability.docker-remote-api.1.32",
    "com.amazonaws.ecs.capability.logging-driver.json-file",
    "com.amazonaws.ecs.capability.logging-driver.syslog",
    "com.amazonaws.ecs.capability.logging-driver.awslogs",
    "com.amazonaws.ecs.capability.logging-driver.none",
    "com.amazonaws.ecs.capability.logging-driver.fluentd",
    "com.amazonaws.ecs.capability.logging-driver.journald",
    "com.amazonaws.ecs.capability.privileged-container",
    "com.amazonaws.ecs.capability.ecr-auth",
    "com.amazonaws.ecs.capability.task-iam-role",
    "com.amazonaws.ecs.capability.task-iam-role-network-host",
    "ecs.capability.execution-role-awslogs",
    "ecs.capability.execution-role-ecr-pull",
    "ecs.capability.secrets.ssm.environment-variables",
    "ecs.capability.secrets.asm.environment-variables",
    "ecs.capability.task-eni",
    "ecs.capability.container-health-check",
    "ecs.capability.container-ordering",
    "ecs.capability.full-sync",
    "ecs.capability.aws-appmesh",
    "ecs.capability.efsAuth",
];

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// `n` instance descriptions filled to `fill` (0.0-1.0) of their memory.
pub fn specs(n: usize, fill: f64) -> Vec<InstanceSpec> {
    let mut rng = Lcg(0x5EED_0000 + n as u64);
    (0..n)
        .map(|i| {
            let zone = ZONES[i % ZONES.len()];
            let (ty, cpu, mem) = TYPES[(rng.next() % TYPES.len() as u64) as usize];
            let mut s = InstanceSpec::new(
                format!(
                    "arn:aws:ecs:us-east-1:123456789012:container-instance/prod/{:032x}",
                    rng.next() << 20 | i as u64
                ),
                format!("i-{:017x}", (rng.next() << 24) | i as u64),
                cpu,
                mem,
            );
            s.agent_version = "1.85.0".into();
            s.registered_at = 1_700_000_000 + i as i64 * 60;
            s.attributes = vec![
                ("ecs.ami-id".into(), Some("ami-0b3c7d2f1e5a49d8c".into())),
                ("ecs.availability-zone".into(), Some(zone.into())),
                ("ecs.instance-type".into(), Some(ty.into())),
                ("ecs.os-type".into(), Some("linux".into())),
                ("ecs.os-family".into(), Some("LINUX".into())),
                ("ecs.cpu-architecture".into(), Some("x86_64".into())),
                ("ecs.vpc-id".into(), Some("vpc-0a1b2c3d4e5f60718".into())),
                (
                    "ecs.subnet-id".into(),
                    Some(format!("subnet-0{}", i % ZONES.len())),
                ),
                (
                    "stack".into(),
                    Some(if i % 10 == 0 { "staging" } else { "prod" }.into()),
                ),
            ];
            s.attributes
                .extend(CAPABILITIES.iter().map(|c| ((*c).to_owned(), None)));
            let tasks = ((f64::from(mem) * fill) / 512.0).floor() as u32;
            let tasks = tasks.min(cpu / 256);
            for k in 0..tasks {
                s.task_groups
                    .push(format!("service:svc-{}", rng.next() % 50));
                s.used_tcp_ports.push(49153 + k as u16);
            }
            s.remaining.cpu = cpu - tasks * 256;
            s.remaining.memory = mem - tasks * 512;
            s
        })
        .collect()
}

pub fn view(n: usize, fill: f64) -> ClusterView {
    ClusterView::from_specs(specs(n, fill))
}

/// The RunTask: 10 tasks, spread(attribute:ecs.availability-zone) + binpack(memory),
/// a memberOf constraint; one container (256 CPU units, 512 MiB reservation, a dynamic port).
pub fn run_task_request() -> PlacementRequest {
    let task = TaskSpec {
        containers: vec![ContainerSpec {
            name: "web".into(),
            cpu: 256,
            memory: Some(1024),
            memory_reservation: Some(512),
            port_mappings: vec![PortMapping {
                container_port: 8080,
                host_port: 0,
                protocol: Protocol::Tcp,
            }],
        }],
        ..Default::default()
    };
    let mut req = PlacementRequest::new(task, 10, "service:svc-7");
    req.strategy = vec![
        PlacementStrategy::Spread(SpreadField::Attribute("ecs.availability-zone".into())),
        PlacementStrategy::Binpack(BinpackField::Memory),
    ];
    req.constraints = vec![PlacementConstraint::MemberOf(
        "attribute:ecs.instance-type =~ '(m5|c5|r5)\\..*' and attribute:stack == prod".into(),
    )];
    req
}
