//! Berth's scheduler: Amazon ECS task placement as a pure function.
//!
//! [`place`] takes a read-only [`ClusterView`], a [`PlacementRequest`] and a seed and returns a
//! [`PlacementOutcome`]: one [`Placement`] per task (instance + host ports), or the tasks left
//! unplaced with per-reason counts (`RESOURCE:MEMORY`, `MISSING ATTRIBUTE`, ...). No I/O, no
//! async, no clock: the same inputs always give the same answer, so any decision can be
//! replayed from a snapshot. [`select_tasks_to_stop`] picks the tasks a scale-in stops with the
//! same strategies.
//!
//! Layout:
//! - `view`: the compact, interned cluster view ([`InstanceSpec`] in, [`Instance`] stored);
//! - `request`: task resources, constraints, strategies ([`PlacementStrategy::from_ecs`] and
//!   [`PlacementConstraint::from_ecs`] take the wire form);
//! - `expr`: the cluster query language ([`parse`]) and its compiled, per-instance form;
//! - `place`: filtering and the strategy chain; `scale_in`: choosing tasks to stop;
//! - `error`: [`SchedulerError`], every variant an `InvalidParameterException`.

mod error;
mod expr;
mod intern;
mod place;
mod request;
mod scale_in;
mod util;
mod view;

pub use error::SchedulerError;
pub use expr::{parse, Expr, Op, Subject, Value, MAX_EXPRESSION_LEN};
pub use intern::Sym;
pub use place::{
    place, place_scan, FailureCount, FailureReason, HostPort, Placement, PlacementOutcome,
};
pub use request::{
    BinpackField, ContainerSpec, PlacementConstraint, PlacementRequest, PlacementStrategy,
    PortMapping, RequiredAttribute, SpreadField, TaskSpec, DEFAULT_DYNAMIC_PORTS, MAX_CONSTRAINTS,
    MAX_STRATEGIES,
};
pub use scale_in::{select_tasks_to_stop, RunningTask};
pub use util::{parse_date, Version};
pub use view::{
    ClusterView, Instance, InstanceSpec, InstanceStatus, Protocol, Resources,
    DEFAULT_RESERVED_PORTS,
};
