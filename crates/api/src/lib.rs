//! Berth's ECS wire layer: everything about the Amazon ECS JSON protocol that is pure logic.
//!
//! The API edge (berth-server) deserializes a request body into one of the [`shapes`],
//! validates it with [`validate`], and serializes the response shapes back; every failure a
//! client can see is an [`EcsError`] carrying its ECS error code.
//!
//! Layout:
//! - `shapes`: request and response structs, camelCase as the AWS SDKs send and expect them
//!   (field names checked against botocore's ECS service model);
//! - `error`: [`EcsError`], one variant per ECS error code, with its HTTP status;
//! - `arn`: building ([`ArnScope`]) and parsing ([`Arn`]) of ECS ARNs, and the
//!   "name or ARN" parameters (`cluster`, `task`, `containerInstance`, task definitions);
//! - `validate`: names, model limits (RunTask count, batch sizes, tags) and the full
//!   validation of `RegisterTaskDefinition`;
//! - `paging`: `maxResults` ranges and opaque `nextToken`s;
//! - `ops`: the [`Operation`]s, named by `X-Amz-Target`.

mod arn;
mod error;
mod ops;
pub mod paging;
pub mod shapes;
pub mod validate;

pub use arn::{
    cluster_name, container_instance_id, task_id, Arn, ArnScope, Resource, TaskDefinitionRef,
};
pub use error::EcsError;
pub use ops::{Operation, TARGET_PREFIX};
