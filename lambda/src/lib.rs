//! ecssd's sweeper, run by an EventBridge schedule as a Lambda function (or once from a shell).
//!
//! # Layout
//! - [`config`]: typed settings from the environment or flags.
//! - [`inventory`]: a zone listing grouped by task, orphans found. Pure.
//! - [`decide`]: which tasks are dead, which unhealthy tasks may be stopped. Pure.
//! - [`agents`]: remembering since when an ECS agent is disconnected, in an ecssd-owned TXT record.
//! - [`fleet`]: the narrow ECS/EC2 interface and its AWS implementation.
//! - [`fleet_errors`]: the ECS and EC2 operations it calls and the class of each error they model.
//! - [`health`]: concurrent HTTP health checks.
//! - [`sweep`]: one sweep, generic over `RecordStore` and `Fleet`.
//! - [`report`]: what a sweep did, as JSON and CloudWatch Embedded Metric Format.
//! - `fixtures` (tests only): the records a sidecar writes for a one-container task.

pub mod agents;
pub mod config;
pub mod decide;
pub mod fleet;
pub mod fleet_errors;
pub mod health;
pub mod inventory;
pub mod report;
pub mod sweep;

#[cfg(test)]
mod fixtures;

pub use config::Config;
pub use report::Report;
pub use sweep::sweep;
