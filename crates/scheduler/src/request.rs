//! What to place: the task's resource needs, constraints, strategies, count and group.

use crate::error::SchedulerError;
use crate::view::{Protocol, Resources};

/// ECS's limit on chained strategies.
pub const MAX_STRATEGIES: usize = 5;
/// ECS's limit on placement constraints per request (task definition plus call).
pub const MAX_CONSTRAINTS: usize = 10;
/// The agent's default ephemeral range for dynamic host ports (Docker >= 1.6.0).
pub const DEFAULT_DYNAMIC_PORTS: (u16, u16) = (49153, 65535);

/// A container's port mapping; `host_port` 0 asks for a dynamic port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortMapping {
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: Protocol,
}

/// The scheduling-relevant part of a container definition.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub cpu: u32,
    /// Hard limit (MiB).
    pub memory: Option<u32>,
    /// Soft limit (MiB); reserved instead of `memory` when given.
    pub memory_reservation: Option<u32>,
    pub port_mappings: Vec<PortMapping>,
}

/// An attribute the task definition requires (`requiresAttributes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequiredAttribute {
    pub name: String,
    /// When set the instance's value must equal it.
    pub value: Option<String>,
}

/// The scheduling-relevant part of a task definition.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TaskSpec {
    /// Task-level CPU units; when set it replaces the containers' sum.
    pub cpu: Option<u32>,
    /// Task-level memory (MiB); when set it replaces the containers' sum.
    pub memory: Option<u32>,
    pub containers: Vec<ContainerSpec>,
    pub requires_attributes: Vec<RequiredAttribute>,
}

impl TaskSpec {
    /// What one task reserves: task-level values when given, else the sum over containers of
    /// `cpu` and of `memoryReservation` (else `memory`).
    pub fn reservation(&self) -> Resources {
        let cpu = self.cpu.unwrap_or_else(|| {
            self.containers
                .iter()
                .fold(0u32, |a, c| a.saturating_add(c.cpu))
        });
        let memory = self.memory.unwrap_or_else(|| {
            self.containers.iter().fold(0u32, |a, c| {
                a.saturating_add(c.memory_reservation.or(c.memory).unwrap_or(0))
            })
        });
        Resources { cpu, memory }
    }
}

/// A placement constraint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlacementConstraint {
    /// Each task of the group on a different instance.
    DistinctInstance,
    /// Only instances matching a cluster query language expression.
    MemberOf(String),
}

impl PlacementConstraint {
    /// From the wire form (`type`, `expression`); the expression is parsed later.
    pub fn from_ecs(kind: &str, expression: Option<&str>) -> Result<Self, SchedulerError> {
        match (kind, expression) {
            ("distinctInstance", None) => Ok(PlacementConstraint::DistinctInstance),
            ("distinctInstance", Some(e)) if e.trim().is_empty() => {
                Ok(PlacementConstraint::DistinctInstance)
            }
            ("distinctInstance", Some(_)) => Err(SchedulerError::InvalidConstraint {
                reason: "distinctInstance takes no expression".into(),
            }),
            ("memberOf", Some(e)) => Ok(PlacementConstraint::MemberOf(e.to_owned())),
            ("memberOf", None) => Err(SchedulerError::InvalidConstraint {
                reason: "memberOf needs an expression".into(),
            }),
            (other, _) => Err(SchedulerError::InvalidConstraint {
                reason: format!("unknown type `{other}`: use distinctInstance or memberOf"),
            }),
        }
    }
}

/// The resource `binpack` packs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinpackField {
    Cpu,
    Memory,
}

/// What `spread` balances over.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SpreadField {
    /// `instanceId` or `host`.
    Instance,
    /// `attribute:<name>`.
    Attribute(String),
}

/// One link of the strategy chain.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PlacementStrategy {
    Binpack(BinpackField),
    Spread(SpreadField),
    Random,
}

impl PlacementStrategy {
    /// From the wire form (`type`, `field`).
    pub fn from_ecs(kind: &str, field: Option<&str>) -> Result<Self, SchedulerError> {
        let bad = |reason: String| Err(SchedulerError::InvalidStrategy { reason });
        match kind {
            "random" => match field {
                None | Some("") => Ok(PlacementStrategy::Random),
                Some(f) => bad(format!("random takes no field, got `{f}`")),
            },
            "binpack" => match field.map(str::to_ascii_lowercase).as_deref() {
                Some("cpu") => Ok(PlacementStrategy::Binpack(BinpackField::Cpu)),
                Some("memory") => Ok(PlacementStrategy::Binpack(BinpackField::Memory)),
                _ => bad(format!(
                    "binpack field must be cpu or memory, got `{}`",
                    field.unwrap_or("")
                )),
            },
            "spread" => match field {
                Some(f)
                    if f.eq_ignore_ascii_case("instanceId") || f.eq_ignore_ascii_case("host") =>
                {
                    Ok(PlacementStrategy::Spread(SpreadField::Instance))
                }
                Some(f) => match f.strip_prefix("attribute:") {
                    Some(name) if !name.is_empty() => Ok(PlacementStrategy::Spread(
                        SpreadField::Attribute(name.to_owned()),
                    )),
                    _ => bad(format!(
                        "spread field must be instanceId, host or attribute:<name>, got `{f}`"
                    )),
                },
                None => bad("spread needs a field".into()),
            },
            other => bad(format!(
                "unknown type `{other}`: use binpack, spread or random"
            )),
        }
    }
}

/// A request to place `count` copies of a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacementRequest {
    pub task: TaskSpec,
    pub constraints: Vec<PlacementConstraint>,
    /// Applied in order; ties go to the next strategy, then to the seed.
    pub strategy: Vec<PlacementStrategy>,
    pub count: u32,
    /// The task group (`service:web`, `family:batch`): spread and distinctInstance count the
    /// tasks of this group.
    pub group: String,
    /// Inclusive range dynamic host ports are taken from.
    pub dynamic_ports: (u16, u16),
}

impl PlacementRequest {
    /// A request for `count` tasks of `group` with no constraints or strategies.
    pub fn new(task: TaskSpec, count: u32, group: impl Into<String>) -> Self {
        PlacementRequest {
            task,
            constraints: Vec::new(),
            strategy: Vec::new(),
            count,
            group: group.into(),
            dynamic_ports: DEFAULT_DYNAMIC_PORTS,
        }
    }
}
