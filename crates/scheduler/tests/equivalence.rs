//! `place` (attribute columns, per-spread-group heaps) must give exactly the outcome of the
//! reference scan `place_scan` for every view, request and seed.

mod common;

use berth_scheduler::*;
use common::*;
use proptest::prelude::*;

const ZONES: [&str; 4] = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"];
const TYPES: [&str; 3] = ["m5.large", "c5.xlarge", "t3.micro"];

fn arb_instance() -> impl Strategy<Value = InstanceSpec> {
    (
        0usize..5,
        0usize..4,
        0u32..4,
        0u32..6,
        proptest::collection::vec(prop_oneof![Just(80u16), Just(8080), 49153u16..49160], 0..4),
        proptest::collection::vec(
            prop_oneof![
                Just("service:web"),
                Just("service:db"),
                Just("family:batch")
            ],
            0..3,
        ),
        0u8..12,
    )
        .prop_map(|(zone, ty, cpu, memory, ports, groups, flags)| {
            // Few distinct resource values, so ties between strategies are common.
            let mut s = InstanceSpec::new("arn", "i-0", cpu * 256, memory * 512);
            if zone < ZONES.len() {
                s = s.attribute("ecs.availability-zone", Some(ZONES[zone]));
            }
            if ty < TYPES.len() {
                s = s.attribute("ecs.instance-type", Some(TYPES[ty]));
            }
            if flags % 3 != 0 {
                s = s.attribute("stack", Some(if flags % 2 == 0 { "prod" } else { "dev" }));
            }
            if flags % 4 == 1 {
                s = s.attribute("gpu", None);
            }
            s.used_tcp_ports.extend(ports);
            s.task_groups = groups.into_iter().map(str::to_owned).collect();
            s.agent_connected = flags != 7;
            if flags == 11 {
                s.status = InstanceStatus::Draining;
            }
            s.registered_at = 1_600_000_000 + i64::from(flags) * 86_400;
            s
        })
}

fn arb_cluster() -> impl Strategy<Value = ClusterView> {
    proptest::collection::vec(arb_instance(), 0..24).prop_map(|specs| {
        ClusterView::from_specs(specs.into_iter().enumerate().map(|(i, mut s)| {
            s.arn = format!("arn:aws:ecs:us-east-1:1:container-instance/c/{i:08}");
            s.ec2_instance_id = format!("i-{i:08}");
            s
        }))
    })
}

fn arb_strategy() -> impl Strategy<Value = PlacementStrategy> {
    prop_oneof![
        Just(PlacementStrategy::Random),
        Just(binpack_memory()),
        Just(PlacementStrategy::Binpack(BinpackField::Cpu)),
        Just(PlacementStrategy::Spread(SpreadField::Instance)),
        Just(spread_zone()),
        Just(PlacementStrategy::Spread(SpreadField::Attribute(
            "ecs.instance-type".into()
        ))),
        Just(PlacementStrategy::Spread(SpreadField::Attribute(
            "nonexistent".into()
        ))),
    ]
}

const EXPRESSIONS: [&str; 12] = [
    "attribute:ecs.instance-type =~ '(m5|c5)\\..*' and attribute:stack == prod",
    "attribute:ecs.availability-zone in [us-east-1a, us-east-1c]",
    "attribute:stack != prod",
    "attribute:gpu exists",
    "not attribute:gpu exists or attribute:ecs.instance-type !~ t3.*",
    "attribute:nonexistent == x",
    "attribute:ecs.instance-type > c5",
    "runningTasksCount < 2",
    "task:group == service:web or attribute:stack == dev",
    "not task:group == service:db",
    "registeredAt >= 1970-01-01 and ec2InstanceId != i-00000003",
    "agentConnected == true and attribute:ecs.availability-zone !in [us-east-1b]",
];

fn arb_request() -> impl Strategy<Value = PlacementRequest> {
    (
        0u32..3,
        0u32..3,
        proptest::collection::vec(prop_oneof![Just(0u16), Just(80), Just(8080)], 0..3),
        proptest::collection::vec(arb_strategy(), 0..4),
        any::<bool>(),
        proptest::collection::vec(0usize..EXPRESSIONS.len(), 0..3),
        0u8..4,
        0u32..20,
        prop_oneof![Just("service:web"), Just("service:db"), Just("service:new")],
    )
        .prop_map(
            |(cpu, mem, ports, strategy, distinct, exprs, requires, count, group)| {
                let mut t = task(cpu * 256, mem * 512 + 1);
                let mut seen = std::collections::HashSet::new();
                for p in ports {
                    if p == 0 || seen.insert(p) {
                        t.containers[0].port_mappings.push(PortMapping {
                            container_port: 80,
                            host_port: p,
                            protocol: Protocol::Tcp,
                        });
                    }
                }
                match requires {
                    1 => t.requires_attributes.push(RequiredAttribute {
                        name: "stack".into(),
                        value: None,
                    }),
                    2 => t.requires_attributes.push(RequiredAttribute {
                        name: "stack".into(),
                        value: Some("prod".into()),
                    }),
                    3 => t.requires_attributes.push(RequiredAttribute {
                        name: "missing".into(),
                        value: None,
                    }),
                    _ => {}
                }
                let mut req = PlacementRequest::new(t, count, group);
                req.strategy = strategy;
                req.dynamic_ports = (49153, 49162);
                if distinct {
                    req.constraints.push(PlacementConstraint::DistinctInstance);
                }
                for e in exprs {
                    req.constraints.push(member_of(EXPRESSIONS[e]));
                }
                req
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn place_equals_the_reference_scan(view in arb_cluster(), req in arb_request(), seed in 0u64..4) {
        let fast = place(&view, &req, seed);
        let reference = place_scan(&view, &req, seed);
        prop_assert_eq!(&fast, &reference);
        // Again, with the view's attribute columns already built.
        prop_assert_eq!(&place(&view, &req, seed), &reference);
    }
}

/// The benchmark's request on the benchmark's cluster, for many seeds.
#[path = "../benches/cluster.rs"]
mod cluster;

#[test]
fn place_equals_the_reference_scan_on_the_bench_cluster() {
    for (n, fill) in [(1_000, 0.5), (2_000, 0.9), (1_500, 0.99)] {
        let view = cluster::view(n, fill);
        let mut req = cluster::run_task_request();
        for count in [10, 400] {
            req.count = count;
            for seed in 0..20 {
                assert_eq!(
                    place(&view, &req, seed).unwrap(),
                    place_scan(&view, &req, seed).unwrap(),
                    "n={n} fill={fill} count={count} seed={seed}"
                );
            }
        }
    }
}

/// The view's lazily built indexes (attribute columns, a group's instances) follow the changes a
/// caller makes to its snapshot: tasks started and instances added.
#[test]
fn indexes_follow_started_tasks_and_added_instances() {
    let mut view = cluster::view(300, 0.5);
    let mut req = cluster::run_task_request();
    req.constraints
        .push(member_of("not task:group == service:svc-9"));
    for round in 0..30u64 {
        let out = place(&view, &req, round).unwrap();
        assert_eq!(
            out,
            place_scan(&view, &req, round).unwrap(),
            "round {round}"
        );
        let p = &out.placements[0];
        let ports: Vec<_> = p
            .host_ports
            .iter()
            .map(|h| (h.protocol, h.host_port))
            .collect();
        let group = if round % 3 == 0 {
            "service:svc-9"
        } else {
            &req.group
        };
        assert!(view.start_task(p.instance, group, req.task.reservation(), &ports));
        if round % 5 == 4 {
            let mut spec = cluster::specs(1, 0.0).remove(0);
            // A new zone, a type and stack the memberOf accepts, and little room left: spread
            // and binpack both prefer it, so stale indexes would show.
            spec.attributes[1].1 = Some("us-east-1z".into());
            spec.attributes[2].1 = Some("m5.large".into());
            spec.attributes[8].1 = Some("prod".into());
            spec.remaining = Resources {
                cpu: 512,
                memory: 1024,
            };
            view.push(&spec);
        }
    }
}
