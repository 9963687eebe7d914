//! The core's operations, one module per resource. Each is a method on [`crate::core::Core`]
//! taking the request context and the typed request and returning the typed response.

mod agent;
mod args;
mod attributes;
mod clusters;
mod instances;
mod parameters;
mod secrets;
mod settings;
mod tags;
mod taskdefs;
mod tasks;

pub use parameters::TARGET_PREFIX as SSM_TARGET_PREFIX;
pub use secrets::TARGET_PREFIX as SECRETS_TARGET_PREFIX;
