//! Shared builders for the scheduler's tests.
#![allow(dead_code)]

use berth_scheduler::*;

/// An instance `i-<n>` in `zone` with the given free resources.
pub fn inst(n: usize, zone: &str, cpu: u32, memory: u32) -> InstanceSpec {
    InstanceSpec::new(
        format!("arn:aws:ecs:us-east-1:123456789012:container-instance/c/{n:08}"),
        format!("i-{n:08}"),
        cpu,
        memory,
    )
    .attribute("ecs.availability-zone", Some(zone))
    .attribute("ecs.instance-type", Some("t2.small"))
    .attribute("ecs.os-type", Some("linux"))
}

/// A one-container task reserving `cpu` units and `memory` MiB.
pub fn task(cpu: u32, memory: u32) -> TaskSpec {
    TaskSpec {
        containers: vec![ContainerSpec {
            name: "app".into(),
            cpu,
            memory_reservation: Some(memory),
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub fn request(task: TaskSpec, count: u32) -> PlacementRequest {
    PlacementRequest::new(task, count, "service:web")
}

pub fn member_of(e: &str) -> PlacementConstraint {
    PlacementConstraint::MemberOf(e.to_owned())
}

pub fn spread_zone() -> PlacementStrategy {
    PlacementStrategy::Spread(SpreadField::Attribute("ecs.availability-zone".into()))
}

pub fn binpack_memory() -> PlacementStrategy {
    PlacementStrategy::Binpack(BinpackField::Memory)
}

/// Instances chosen, in task order.
pub fn chosen(out: &PlacementOutcome) -> Vec<usize> {
    out.placements.iter().map(|p| p.instance).collect()
}
