//! The bridge to the scheduler: what a task needs ([`task_spec`]), the cluster as the
//! scheduler sees it ([`instance_spec`]), and the wire placement parameters.

use berth_api::shapes::{PlacementConstraint, PlacementStrategy, TaskDefinition, TaskOverride};
use berth_api::{validate, EcsError};
use berth_scheduler::{
    ContainerSpec, InstanceSpec, InstanceStatus, PortMapping, Protocol, RequiredAttribute,
    Resources, TaskSpec,
};

use crate::records::InstanceRecord;

/// The scheduling-relevant part of a task definition with the run's overrides applied.
pub fn task_spec(td: &TaskDefinition, ov: &TaskOverride) -> Result<TaskSpec, EcsError> {
    for o in &ov.container_overrides {
        let name = o.name.as_deref().unwrap_or("");
        if !td
            .container_definitions
            .iter()
            .any(|c| c.name.as_deref() == Some(name))
        {
            return Err(EcsError::invalid(format!(
                "container override names `{name}`, which is not a container of {}",
                td.task_definition_arn
            )));
        }
    }
    let cpu = ov
        .cpu
        .as_deref()
        .or(td.cpu.as_deref())
        .map(validate::task_cpu)
        .transpose()?;
    let memory = ov
        .memory
        .as_deref()
        .or(td.memory.as_deref())
        .map(validate::task_memory)
        .transpose()?;
    let awsvpc = td.network_mode.as_deref() == Some("awsvpc");
    let mut containers = Vec::new();
    for c in &td.container_definitions {
        let o = ov
            .container_overrides
            .iter()
            .find(|o| o.name.is_some() && o.name == c.name);
        let num = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
        let mut port_mappings = Vec::new();
        if !awsvpc {
            for pm in c.port_mappings.iter().flatten() {
                let Some(cp) = pm.container_port.and_then(|p| u16::try_from(p).ok()) else {
                    continue;
                };
                port_mappings.push(PortMapping {
                    container_port: cp,
                    host_port: pm
                        .host_port
                        .and_then(|p| u16::try_from(p).ok())
                        .unwrap_or(0),
                    protocol: if pm.protocol.as_deref() == Some("udp") {
                        Protocol::Udp
                    } else {
                        Protocol::Tcp
                    },
                });
            }
        }
        containers.push(ContainerSpec {
            name: c.name.clone().unwrap_or_default(),
            cpu: num(o.and_then(|o| o.cpu).or(c.cpu)).unwrap_or(0),
            memory: num(o.and_then(|o| o.memory).or(c.memory)),
            memory_reservation: num(o
                .and_then(|o| o.memory_reservation)
                .or(c.memory_reservation)),
            port_mappings,
        });
    }
    Ok(TaskSpec {
        cpu,
        memory,
        containers,
        requires_attributes: td
            .requires_attributes
            .iter()
            .map(|a| RequiredAttribute {
                name: a.name.clone(),
                value: a.value.clone(),
            })
            .collect(),
    })
}

fn status(s: &str) -> InstanceStatus {
    match s {
        "ACTIVE" => InstanceStatus::Active,
        "DRAINING" => InstanceStatus::Draining,
        "REGISTERING" => InstanceStatus::Registering,
        "DEREGISTERING" => InstanceStatus::Deregistering,
        "REGISTRATION_FAILED" => InstanceStatus::RegistrationFailed,
        _ => InstanceStatus::Inactive,
    }
}

/// A stored instance as the scheduler sees it.
pub fn instance_spec(r: &InstanceRecord) -> InstanceSpec {
    InstanceSpec {
        arn: r.instance.container_instance_arn.clone(),
        ec2_instance_id: r.instance.ec2_instance_id.clone(),
        status: status(&r.instance.status),
        agent_connected: r.instance.agent_connected,
        registered_at: r.instance.registered_at as i64,
        agent_version: r
            .instance
            .version_info
            .as_ref()
            .and_then(|v| v.agent_version.clone())
            .unwrap_or_default(),
        attributes: r
            .instance
            .attributes
            .iter()
            .map(|a| (a.name.clone(), a.value.clone()))
            .collect(),
        registered: Resources {
            cpu: r.registered_cpu,
            memory: r.registered_memory,
        },
        remaining: Resources {
            cpu: r.remaining_cpu,
            memory: r.remaining_memory,
        },
        used_tcp_ports: r.reserved_tcp.iter().chain(&r.used_tcp).copied().collect(),
        used_udp_ports: r.reserved_udp.iter().chain(&r.used_udp).copied().collect(),
        task_groups: Vec::new(),
        // Counts, not one entry per task: placement cost stays flat as tasks pile up.
        task_group_counts: r.groups.iter().map(|(g, n)| (g.clone(), *n)).collect(),
    }
}

/// The run's constraints (the task definition's first) in the scheduler's form.
pub fn constraints(
    td: &TaskDefinition,
    given: &[PlacementConstraint],
) -> Result<Vec<berth_scheduler::PlacementConstraint>, EcsError> {
    let total = td.placement_constraints.len() + given.len();
    if total > berth_scheduler::MAX_CONSTRAINTS {
        return Err(EcsError::invalid(format!(
            "too many placement constraints: {total} (task definition and request); the limit is {}",
            berth_scheduler::MAX_CONSTRAINTS
        )));
    }
    let mut out = Vec::with_capacity(total);
    for c in &td.placement_constraints {
        out.push(berth_scheduler::PlacementConstraint::from_ecs(
            c.kind.as_deref().unwrap_or(""),
            c.expression.as_deref(),
        )?);
    }
    for c in given {
        out.push(berth_scheduler::PlacementConstraint::from_ecs(
            c.kind.as_deref().unwrap_or(""),
            c.expression.as_deref(),
        )?);
    }
    Ok(out)
}

/// The run's strategies in the scheduler's form.
pub fn strategies(
    given: &[PlacementStrategy],
) -> Result<Vec<berth_scheduler::PlacementStrategy>, EcsError> {
    if given.len() > berth_scheduler::MAX_STRATEGIES {
        return Err(EcsError::invalid(format!(
            "too many placement strategies: {}; the limit is {}",
            given.len(),
            berth_scheduler::MAX_STRATEGIES
        )));
    }
    given
        .iter()
        .map(|s| {
            berth_scheduler::PlacementStrategy::from_ecs(
                s.kind.as_deref().unwrap_or(""),
                s.field.as_deref(),
            )
            .map_err(EcsError::from)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::shapes::ContainerOverride;

    fn td() -> TaskDefinition {
        serde_json::from_value(serde_json::json!({
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:1:task-definition/web:1",
            "family": "web", "revision": 1, "status": "ACTIVE", "networkMode": "bridge",
            "containerDefinitions": [
                {"name": "web", "image": "nginx", "cpu": 256, "memory": 512, "memoryReservation": 256,
                 "portMappings": [{"containerPort": 80, "hostPort": 8080, "protocol": "tcp"}, {"containerPort": 53, "protocol": "udp"}]},
                {"name": "side", "image": "busybox", "memory": 64}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn spec_from_definition_and_overrides() {
        let spec = task_spec(&td(), &TaskOverride::default()).unwrap();
        assert_eq!(
            spec.reservation(),
            Resources {
                cpu: 256,
                memory: 320
            }
        );
        assert_eq!(spec.containers[0].port_mappings.len(), 2);
        assert_eq!(spec.containers[0].port_mappings[1].protocol, Protocol::Udp);
        assert_eq!(spec.containers[0].port_mappings[1].host_port, 0);
        let ov = TaskOverride {
            container_overrides: vec![ContainerOverride {
                name: Some("side".into()),
                memory: Some(128),
                ..ContainerOverride::default()
            }],
            ..TaskOverride::default()
        };
        assert_eq!(task_spec(&td(), &ov).unwrap().reservation().memory, 384);
        let bad = TaskOverride {
            container_overrides: vec![ContainerOverride {
                name: Some("nope".into()),
                ..ContainerOverride::default()
            }],
            ..TaskOverride::default()
        };
        assert!(task_spec(&td(), &bad).is_err());
        let task_level = TaskOverride {
            cpu: Some("1024".into()),
            memory: Some("2048".into()),
            ..TaskOverride::default()
        };
        assert_eq!(
            task_spec(&td(), &task_level).unwrap().reservation(),
            Resources {
                cpu: 1024,
                memory: 2048
            }
        );
    }
}
