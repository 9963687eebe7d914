//! Property tests for the invariants of the placement issue (modest case counts: CI runs them).

mod common;

use std::collections::{BTreeMap, HashSet};

use berth_scheduler::*;
use common::*;
use proptest::prelude::*;

const ZONES: [&str; 4] = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"];

fn arb_instance() -> impl Strategy<Value = InstanceSpec> {
    (
        0usize..4,
        0u32..4096,
        0u32..8192,
        proptest::collection::vec(prop_oneof![Just(80u16), Just(8080), 49153u16..49160], 0..4),
        proptest::collection::vec(prop_oneof![Just("service:web"), Just("service:db")], 0..3),
        any::<bool>(),
    )
        .prop_map(|(zone, cpu, memory, ports, groups, connected)| {
            let mut s = inst(0, ZONES[zone], cpu, memory);
            s.used_tcp_ports.extend(ports);
            s.task_groups = groups.into_iter().map(str::to_owned).collect();
            s.agent_connected = connected || cpu % 7 != 0;
            s
        })
}

fn arb_cluster() -> impl Strategy<Value = ClusterView> {
    proptest::collection::vec(arb_instance(), 0..16).prop_map(|specs| {
        ClusterView::from_specs(specs.into_iter().enumerate().map(|(i, mut s)| {
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
    ]
}

fn arb_request() -> impl Strategy<Value = PlacementRequest> {
    (
        0u32..1024,
        1u32..2048,
        proptest::collection::vec(prop_oneof![Just(0u16), Just(80), Just(8080)], 0..3),
        proptest::collection::vec(arb_strategy(), 0..4),
        any::<bool>(),
        0u32..20,
    )
        .prop_map(|(cpu, mem, ports, strategy, distinct, count)| {
            let mut t = task(cpu, mem);
            let mut seen = HashSet::new();
            for p in ports {
                if p == 0 || seen.insert(p) {
                    t.containers[0].port_mappings.push(PortMapping {
                        container_port: 80,
                        host_port: p,
                        protocol: Protocol::Tcp,
                    });
                }
            }
            let mut req = request(t, count);
            req.strategy = strategy;
            req.dynamic_ports = (49153, 49162);
            if distinct {
                req.constraints.push(PlacementConstraint::DistinctInstance);
            }
            req
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// No placement exceeds an instance's free resources or reuses a port; every task is
    /// either placed or counted as unplaced with reasons; the answer is deterministic.
    #[test]
    fn placements_fit_and_ports_are_unique(view in arb_cluster(), req in arb_request(), seed in any::<u64>()) {
        let out = place(&view, &req, seed).unwrap();
        prop_assert_eq!(&out, &place(&view, &req, seed).unwrap());
        prop_assert_eq!(out.placements.len() as u32 + out.unplaced, req.count);
        let need = req.task.reservation();
        let mut used: BTreeMap<usize, (u64, u64, HashSet<u16>)> = BTreeMap::new();
        for p in &out.placements {
            let inst = view.instance(p.instance).unwrap();
            prop_assert_eq!(inst.status(), InstanceStatus::Active);
            prop_assert!(inst.agent_connected());
            let e = used.entry(p.instance).or_default();
            e.0 += u64::from(need.cpu);
            e.1 += u64::from(need.memory);
            prop_assert!(e.0 <= u64::from(inst.remaining().cpu));
            prop_assert!(e.1 <= u64::from(inst.remaining().memory));
            prop_assert_eq!(p.host_ports.len(), req.task.containers[0].port_mappings.len());
            for hp in &p.host_ports {
                prop_assert!(inst.port_free(Protocol::Tcp, hp.host_port), "port {} reserved", hp.host_port);
                prop_assert!(e.2.insert(hp.host_port), "port {} reused", hp.host_port);
            }
            if req.constraints.contains(&PlacementConstraint::DistinctInstance) {
                prop_assert_eq!(view.group_count(p.instance, "service:web"), 0);
            }
        }
        if req.constraints.contains(&PlacementConstraint::DistinctInstance) {
            prop_assert!(out.placements.iter().map(|p| p.instance).collect::<HashSet<_>>().len() == out.placements.len());
        }
        if out.unplaced > 0 {
            let total: u32 = out.failures.iter().map(|f| f.instances).sum();
            prop_assert_eq!(total as usize, view.len());
        } else {
            prop_assert!(out.failures.is_empty());
        }
    }

    /// Spread over zones keeps the per-zone counts of the group within one of each other when
    /// capacity allows.
    #[test]
    fn spread_balances_zones(zones in proptest::collection::vec(0usize..4, 1..20), count in 1u32..40, seed in any::<u64>(), binpack in any::<bool>()) {
        let view = ClusterView::from_specs(zones.iter().enumerate().map(|(i, z)| inst(i, ZONES[*z], 100_000, 100_000 + i as u32)));
        let mut req = request(task(10, 10), count);
        req.strategy = vec![spread_zone()];
        if binpack {
            req.strategy.push(binpack_memory());
        }
        let out = place(&view, &req, seed).unwrap();
        prop_assert_eq!(out.unplaced, 0);
        let mut per: BTreeMap<&str, u32> = zones.iter().map(|z| (ZONES[*z], 0)).collect();
        for p in &out.placements {
            *per.get_mut(view.attribute(p.instance, "ecs.availability-zone").unwrap()).unwrap() += 1;
        }
        let max = per.values().max().unwrap();
        let min = per.values().min().unwrap();
        prop_assert!(max - min <= 1, "{:?}", per);
    }

    /// Binpack (first in the chain) never picks an instance with more remaining memory than
    /// another feasible one.
    #[test]
    fn binpack_picks_the_tightest_feasible(view in arb_cluster(), mem in 1u32..2048, cpu in 0u32..512, count in 1u32..12, seed in any::<u64>(), then_spread in any::<bool>()) {
        let mut req = request(task(cpu, mem), count);
        req.strategy = vec![binpack_memory()];
        if then_spread {
            req.strategy.push(spread_zone());
        }
        let out = place(&view, &req, seed).unwrap();
        let mut remaining: Vec<Resources> = view.instances().map(|i| i.remaining()).collect();
        for p in &out.placements {
            let feasible = view.instances().enumerate().filter(|(i, inst)| {
                inst.status() == InstanceStatus::Active && inst.agent_connected()
                    && remaining[*i].cpu >= cpu && remaining[*i].memory >= mem
            });
            let tightest = feasible.map(|(i, _)| remaining[i].memory).min().unwrap();
            prop_assert_eq!(remaining[p.instance].memory, tightest);
            remaining[p.instance].cpu -= cpu;
            remaining[p.instance].memory -= mem;
        }
    }

    /// Random text never makes the parser panic.
    #[test]
    fn parser_never_panics_on_random_text(s in "\\PC{0,80}") {
        let _ = parse(&s);
    }

    /// Nor do near-miss expressions assembled from the language's own tokens; and whatever
    /// parses also compiles and evaluates without panicking.
    #[test]
    fn parser_never_panics_on_token_soup(tokens in proptest::collection::vec(prop_oneof![
        Just("attribute:ecs.availability-zone"), Just("task:group"), Just("registeredAt"),
        Just("agentVersion"), Just("runningTasksCount"), Just("ec2InstanceId"), Just("agentConnected"),
        Just("=="), Just("!="), Just(">"), Just("<="), Just("=~"), Just("!~"), Just("in"), Just("!in"),
        Just("exists"), Just("!exists"), Just("not_equals"), Just("and"), Just("or"), Just("not"),
        Just("&&"), Just("||"), Just("!"), Just("("), Just(")"), Just("["), Just("]"), Just(","),
        Just("'us-east-1a'"), Just("us-east-1b"), Just("2018-06-18"), Just("1.2.3"), Just("3"),
        Just("true"), Just("t2.*"), Just("'"), Just("\""), Just("("), Just("x("),
    ], 0..14), spaces in any::<bool>()) {
        let text = tokens.join(if spaces { " " } else { "" });
        if parse(&text).is_ok() {
            let view = ClusterView::from_specs((0..3).map(|i| inst(i, ZONES[i % 4], 100, 100)));
            let mut req = request(task(1, 1), 2);
            req.constraints = vec![PlacementConstraint::MemberOf(text.clone())];
            prop_assert!(place(&view, &req, 0).is_ok(), "{}", text);
        }
    }

    /// Scale-in with spread leaves the zones balanced.
    #[test]
    fn scale_in_spread_keeps_zones_balanced(tasks in proptest::collection::vec(0usize..4, 1..30), stop in 0usize..30, seed in any::<u64>()) {
        let view = ClusterView::from_specs((0..4).map(|i| inst(i, ZONES[i], 4096, 8000)));
        let running: Vec<RunningTask> = tasks.iter().map(|&instance| RunningTask { instance, reservation: Resources { cpu: 1, memory: 1 } }).collect();
        let order = select_tasks_to_stop(&view, &running, &[spread_zone()], stop, seed).unwrap();
        prop_assert_eq!(order.len(), stop.min(running.len()));
        prop_assert_eq!(order.iter().collect::<HashSet<_>>().len(), order.len());
        let mut per = [0i64; 4];
        for t in &running { per[t.instance] += 1; }
        // Every stop comes from a zone holding the most remaining tasks.
        for &i in &order {
            let zone = running[i].instance;
            prop_assert_eq!(per[zone], *per.iter().max().unwrap(), "{:?}", per);
            per[zone] -= 1;
        }
    }
}
