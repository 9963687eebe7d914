//! Placement rules against the examples of ECS's documentation.

mod common;

use berth_scheduler::*;
use common::*;

#[test]
fn spread_across_zones_then_binpack_memory() {
    // Two zones; in each zone one instance with less free memory: binpack picks it.
    let view = ClusterView::from_specs([
        inst(0, "us-east-1a", 4096, 8000),
        inst(1, "us-east-1a", 4096, 2000),
        inst(2, "us-east-1b", 4096, 8000),
        inst(3, "us-east-1b", 4096, 3000),
    ]);
    let mut req = request(task(256, 512), 4);
    req.strategy = vec![spread_zone(), binpack_memory()];
    let out = place(&view, &req, 1).unwrap();
    assert_eq!(out.unplaced, 0);
    let picks = chosen(&out);
    // Zones alternate and each zone fills its tightest instance first.
    let zone = |i: usize| {
        view.attribute(i, "ecs.availability-zone")
            .unwrap()
            .to_owned()
    };
    assert_ne!(zone(picks[0]), zone(picks[1]));
    assert_ne!(zone(picks[2]), zone(picks[3]));
    assert!(picks.iter().all(|&i| i == 1 || i == 3), "{picks:?}");
}

#[test]
fn spread_counts_existing_tasks_of_the_group_only() {
    let mut a = inst(0, "us-east-1a", 4096, 8000);
    a.task_groups = vec![
        "service:web".into(),
        "service:web".into(),
        "service:other".into(),
    ];
    let mut b = inst(1, "us-east-1b", 4096, 8000);
    b.task_groups = vec!["service:other".into(); 5];
    let view = ClusterView::from_specs([a, b]);
    let mut req = request(task(10, 10), 2);
    req.strategy = vec![spread_zone()];
    let out = place(&view, &req, 0).unwrap();
    assert_eq!(chosen(&out), vec![1, 1]);
    let out = place(&view, &PlacementRequest { count: 3, ..req }, 0).unwrap();
    let picks = chosen(&out);
    assert_eq!(&picks[..2], &[1, 1]);
}

#[test]
fn group_counts_place_as_repeated_groups_do() {
    // The same cluster described per task and as (group, count): same placements.
    let mut a = inst(0, "us-east-1a", 4096, 8000);
    a.task_groups = vec!["service:web".into(); 4];
    let mut b = inst(1, "us-east-1b", 4096, 8000);
    b.task_groups = vec!["service:web".into(); 1];
    b.task_groups.extend(vec!["service:other".into(); 3]);
    let mut a2 = inst(0, "us-east-1a", 4096, 8000);
    a2.task_group_counts = vec![("service:web".into(), 4)];
    let mut b2 = inst(1, "us-east-1b", 4096, 8000);
    b2.task_groups = vec!["service:web".into()];
    b2.task_group_counts = vec![("service:other".into(), 3), ("service:none".into(), 0)];
    let per_task = ClusterView::from_specs([a, b]);
    let counted = ClusterView::from_specs([a2, b2]);
    for strategy in [
        vec![spread_zone()],
        vec![PlacementStrategy::Spread(SpreadField::Instance)],
    ] {
        let mut req = request(task(10, 10), 3);
        req.strategy = strategy;
        assert_eq!(
            chosen(&place(&per_task, &req, 7).unwrap()),
            chosen(&place(&counted, &req, 7).unwrap())
        );
    }
}

#[test]
fn spread_by_instance_balances_hosts() {
    let view = ClusterView::from_specs((0..3).map(|i| inst(i, "a", 4096, 8000)));
    let mut req = request(task(10, 10), 6);
    req.strategy = vec![PlacementStrategy::Spread(SpreadField::Instance)];
    let out = place(&view, &req, 42).unwrap();
    let mut per = [0; 3];
    for i in chosen(&out) {
        per[i] += 1;
    }
    assert_eq!(per, [2, 2, 2]);
}

#[test]
fn binpack_cpu_picks_least_remaining_cpu_that_fits() {
    let view = ClusterView::from_specs([
        inst(0, "a", 1024, 8000),
        inst(1, "a", 300, 8000),
        inst(2, "a", 200, 8000),
    ]);
    let mut req = request(task(256, 10), 1);
    req.strategy = vec![PlacementStrategy::Binpack(BinpackField::Cpu)];
    assert_eq!(chosen(&place(&view, &req, 0).unwrap()), vec![1]);
}

#[test]
fn random_is_seeded() {
    let view = ClusterView::from_specs((0..50).map(|i| inst(i, "a", 4096, 8000)));
    let mut req = request(task(10, 10), 5);
    req.strategy = vec![PlacementStrategy::Random];
    let a = place(&view, &req, 7).unwrap();
    assert_eq!(a, place(&view, &req, 7).unwrap());
    let b = place(&view, &req, 8).unwrap();
    assert_ne!(chosen(&a), chosen(&b));
}

#[test]
fn distinct_instance_puts_each_task_on_its_own_instance() {
    let view = ClusterView::from_specs((0..3).map(|i| inst(i, "a", 4096, 8000)));
    let mut req = request(task(10, 10), 4);
    req.constraints = vec![PlacementConstraint::DistinctInstance];
    req.strategy = vec![binpack_memory()];
    let out = place(&view, &req, 0).unwrap();
    let mut picks = chosen(&out);
    picks.sort();
    assert_eq!(picks, vec![0, 1, 2]);
    assert_eq!(out.unplaced, 1);
    assert_eq!(
        out.failures,
        vec![FailureCount {
            reason: FailureReason::DistinctInstance,
            instances: 3
        }]
    );
    assert_eq!(
        out.failures[0].reason.as_str(),
        "CONSTRAINT: DistinctInstance placement constraint unsatisfied"
    );
}

#[test]
fn distinct_instance_counts_running_tasks_of_the_group() {
    let mut busy = inst(0, "a", 4096, 8000);
    busy.task_groups = vec!["service:web".into()];
    let view = ClusterView::from_specs([busy, inst(1, "a", 4096, 8000)]);
    let mut req = request(task(10, 10), 1);
    req.constraints = vec![PlacementConstraint::DistinctInstance];
    assert_eq!(chosen(&place(&view, &req, 0).unwrap()), vec![1]);
}

#[test]
fn resources_are_consumed_by_earlier_tasks_of_the_request() {
    let view = ClusterView::from_specs([inst(0, "a", 1024, 1000)]);
    let req = request(task(256, 300), 5);
    let out = place(&view, &req, 0).unwrap();
    assert_eq!(out.placements.len(), 3);
    assert_eq!(out.unplaced, 2);
    assert_eq!(
        out.failures,
        vec![FailureCount {
            reason: FailureReason::Memory,
            instances: 1
        }]
    );
}

#[test]
fn task_level_cpu_and_memory_replace_the_containers_sum() {
    let mut t = task(100, 100);
    t.cpu = Some(2048);
    t.memory = Some(4096);
    assert_eq!(
        t.reservation(),
        Resources {
            cpu: 2048,
            memory: 4096
        }
    );
    let mut hard = task(0, 0);
    hard.containers[0].memory_reservation = None;
    hard.containers[0].memory = Some(700);
    assert_eq!(hard.reservation().memory, 700);
    let view = ClusterView::from_specs([inst(0, "a", 1024, 8000)]);
    let out = place(&view, &request(t, 1), 0).unwrap();
    assert_eq!(out.failures[0].reason, FailureReason::Cpu);
    assert_eq!(out.failures[0].reason.as_str(), "RESOURCE:CPU");
}

fn web_task(host_port: u16) -> TaskSpec {
    let mut t = task(10, 10);
    t.containers[0].port_mappings = vec![PortMapping {
        container_port: 80,
        host_port,
        protocol: Protocol::Tcp,
    }];
    t
}

#[test]
fn fixed_host_ports_are_not_reused() {
    let view = ClusterView::from_specs([inst(0, "a", 4096, 8000), inst(1, "a", 4096, 8000)]);
    let out = place(&view, &request(web_task(8080), 3), 0).unwrap();
    let mut picks = chosen(&out);
    picks.sort();
    assert_eq!(picks, vec![0, 1]);
    assert_eq!(out.unplaced, 1);
    assert_eq!(out.failures[0].reason.as_str(), "RESOURCE:PORTS");
    assert_eq!(out.placements[0].host_ports[0].host_port, 8080);
}

#[test]
fn reserved_ports_block_fixed_mappings() {
    let view = ClusterView::from_specs([inst(0, "a", 4096, 8000)]);
    for port in DEFAULT_RESERVED_PORTS {
        let out = place(&view, &request(web_task(port), 1), 0).unwrap();
        assert_eq!(out.unplaced, 1, "port {port}");
    }
}

#[test]
fn dynamic_ports_come_from_the_ephemeral_range_and_are_unique() {
    let mut spec = inst(0, "a", 4096, 8000);
    spec.used_tcp_ports.push(49153);
    let view = ClusterView::from_specs([spec]);
    let mut req = request(web_task(0), 3);
    req.task.containers[0].port_mappings.push(PortMapping {
        container_port: 53,
        host_port: 0,
        protocol: Protocol::Udp,
    });
    let out = place(&view, &req, 0).unwrap();
    let tcp: Vec<u16> = out
        .placements
        .iter()
        .map(|p| p.host_ports[0].host_port)
        .collect();
    assert_eq!(tcp, vec![49154, 49155, 49156]);
    let udp: Vec<u16> = out
        .placements
        .iter()
        .map(|p| p.host_ports[1].host_port)
        .collect();
    assert_eq!(udp, vec![49153, 49154, 49155]);

    // A range with room for two tasks.
    let mut small = request(web_task(0), 3);
    small.dynamic_ports = (49153, 49155);
    let out = place(&view, &small, 0).unwrap();
    assert_eq!(out.placements.len(), 2);
    assert_eq!(out.failures[0].reason, FailureReason::Ports);
}

#[test]
fn a_host_port_mapped_twice_is_rejected() {
    let mut t = web_task(8080);
    t.containers[0].port_mappings.push(PortMapping {
        container_port: 81,
        host_port: 8080,
        protocol: Protocol::Tcp,
    });
    let view = ClusterView::from_specs([inst(0, "a", 4096, 8000)]);
    let err = place(&view, &request(t, 1), 0).unwrap_err();
    assert!(matches!(err, SchedulerError::InvalidTask { .. }), "{err}");
    assert_eq!(err.ecs_error_code(), "InvalidParameterException");
}

#[test]
fn draining_and_disconnected_instances_get_nothing() {
    let mut draining = inst(0, "a", 4096, 8000);
    draining.status = InstanceStatus::Draining;
    let mut gone = inst(1, "a", 4096, 8000);
    gone.agent_connected = false;
    let view = ClusterView::from_specs([draining, gone, inst(2, "a", 10, 10)]);
    let out = place(&view, &request(task(100, 100), 1), 0).unwrap();
    assert_eq!(out.unplaced, 1);
    let reasons: Vec<(&str, u32)> = out
        .failures
        .iter()
        .map(|f| (f.reason.as_str(), f.instances))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("INSTANCE NOT ACTIVE", 1),
            ("AGENT", 1),
            ("RESOURCE:CPU", 1)
        ]
    );
}

#[test]
fn requires_attributes_by_name_and_value() {
    let gpu = inst(0, "a", 4096, 8000)
        .attribute("com.amazonaws.ecs.capability.docker-remote-api.1.19", None);
    let view = ClusterView::from_specs([gpu, inst(1, "a", 4096, 8000)]);
    let mut req = request(task(10, 10), 2);
    req.task.requires_attributes = vec![RequiredAttribute {
        name: "com.amazonaws.ecs.capability.docker-remote-api.1.19".into(),
        value: None,
    }];
    let out = place(&view, &req, 0).unwrap();
    assert_eq!(chosen(&out), vec![0, 0]);
    req.task.requires_attributes = vec![RequiredAttribute {
        name: "ecs.instance-type".into(),
        value: Some("m5.large".into()),
    }];
    let out = place(&view, &req, 0).unwrap();
    assert_eq!(out.unplaced, 2);
    assert_eq!(
        out.failures,
        vec![FailureCount {
            reason: FailureReason::MissingAttribute,
            instances: 2
        }]
    );
}

#[test]
fn member_of_failures_are_reported() {
    let view = ClusterView::from_specs([inst(0, "a", 4096, 8000), inst(1, "b", 1, 1)]);
    let mut req = request(task(10, 10), 1);
    req.constraints = vec![member_of("attribute:ecs.availability-zone == c")];
    let out = place(&view, &req, 0).unwrap();
    assert_eq!(
        out.failures,
        vec![FailureCount {
            reason: FailureReason::MemberOf,
            instances: 2
        }]
    );
}

#[test]
fn empty_cluster_and_zero_count() {
    let view = ClusterView::new();
    let out = place(&view, &request(task(1, 1), 2), 0).unwrap();
    assert_eq!(out.unplaced, 2);
    assert!(out.failures.is_empty());
    let view = ClusterView::from_specs([inst(0, "a", 10, 10)]);
    assert_eq!(
        place(&view, &request(task(1, 1), 0), 0).unwrap(),
        PlacementOutcome::default()
    );
}

#[test]
fn strategy_and_constraint_wire_forms() {
    assert_eq!(
        PlacementStrategy::from_ecs("spread", Some("attribute:ecs.availability-zone")).unwrap(),
        spread_zone()
    );
    assert_eq!(
        PlacementStrategy::from_ecs("spread", Some("host")).unwrap(),
        PlacementStrategy::Spread(SpreadField::Instance)
    );
    assert_eq!(
        PlacementStrategy::from_ecs("binpack", Some("memory")).unwrap(),
        binpack_memory()
    );
    assert_eq!(
        PlacementStrategy::from_ecs("random", None).unwrap(),
        PlacementStrategy::Random
    );
    for (kind, field) in [("binpack", Some("disk")), ("spread", None), ("pack", None)] {
        let err = PlacementStrategy::from_ecs(kind, field).unwrap_err();
        assert!(matches!(err, SchedulerError::InvalidStrategy { .. }));
    }
    assert!(PlacementConstraint::from_ecs("memberOf", None).is_err());
    assert!(PlacementConstraint::from_ecs("distinctInstance", Some("x == y")).is_err());
    assert_eq!(
        PlacementConstraint::from_ecs("distinctInstance", None).unwrap(),
        PlacementConstraint::DistinctInstance
    );
    let view = ClusterView::from_specs([inst(0, "a", 10, 10)]);
    let mut req = request(task(1, 1), 1);
    req.strategy = vec![PlacementStrategy::Random; 6];
    let err = place(&view, &req, 0).unwrap_err();
    assert!(err.to_string().contains("at most 5"), "{err}");
}

#[test]
fn applying_placements_to_the_view() {
    let mut view = ClusterView::from_specs([inst(0, "a", 1024, 1024)]);
    assert!(view.start_task(
        0,
        "service:web",
        Resources {
            cpu: 24,
            memory: 24
        },
        &[(Protocol::Tcp, 8080)]
    ));
    let i = view.instance(0).unwrap();
    assert_eq!(
        i.remaining(),
        Resources {
            cpu: 1000,
            memory: 1000
        }
    );
    assert!(!i.port_free(Protocol::Tcp, 8080));
    assert_eq!(i.running_tasks_count(), 1);
    assert_eq!(view.group_count(0, "service:web"), 1);
    assert!(!view.start_task(
        0,
        "service:web",
        Resources {
            cpu: 2000,
            memory: 1
        },
        &[]
    ));
    assert!(!view.start_task(9, "service:web", Resources::default(), &[]));
}

#[test]
fn scale_in_with_spread_stops_from_the_fullest_zone() {
    let view = ClusterView::from_specs([
        inst(0, "us-east-1a", 4096, 8000),
        inst(1, "us-east-1b", 4096, 8000),
    ]);
    let r = Resources {
        cpu: 10,
        memory: 10,
    };
    let tasks: Vec<RunningTask> = [0, 0, 0, 1]
        .iter()
        .map(|&instance| RunningTask {
            instance,
            reservation: r,
        })
        .collect();
    let stop = select_tasks_to_stop(&view, &tasks, &[spread_zone()], 2, 0).unwrap();
    assert_eq!(stop.len(), 2);
    assert!(stop.iter().all(|&i| tasks[i].instance == 0));
    // A third stop ties the zones (1 and 1); any is balanced.
    let stop = select_tasks_to_stop(&view, &tasks, &[spread_zone()], 10, 0).unwrap();
    assert_eq!(stop.len(), 4);
}

#[test]
fn scale_in_with_binpack_stops_on_the_emptiest_instance() {
    let view = ClusterView::from_specs([inst(0, "a", 4096, 1000), inst(1, "a", 4096, 6000)]);
    let r = Resources {
        cpu: 10,
        memory: 10,
    };
    let tasks = vec![
        RunningTask {
            instance: 0,
            reservation: r,
        },
        RunningTask {
            instance: 1,
            reservation: r,
        },
        RunningTask {
            instance: 0,
            reservation: r,
        },
    ];
    let stop = select_tasks_to_stop(&view, &tasks, &[binpack_memory()], 1, 0).unwrap();
    assert_eq!(stop, vec![1]);
    let a = select_tasks_to_stop(&view, &tasks, &[PlacementStrategy::Random], 2, 3).unwrap();
    assert_eq!(
        a,
        select_tasks_to_stop(&view, &tasks, &[PlacementStrategy::Random], 2, 3).unwrap()
    );
}
