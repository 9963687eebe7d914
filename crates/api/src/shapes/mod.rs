//! The wire shapes of the ECS JSON protocol, camelCase as the SDKs send and expect them.
//! Requests deserialize (missing optional members are `None`); responses serialize, leaving
//! out absent optional members. Timestamps are epoch seconds as floats.

pub mod agent;
pub mod clusters;
pub mod common;
pub mod instances;
pub mod tags;
pub mod taskdefs;
pub mod tasks;

pub use agent::*;
pub use clusters::*;
pub use common::*;
pub use instances::*;
pub use tags::*;
pub use taskdefs::*;
pub use tasks::*;
