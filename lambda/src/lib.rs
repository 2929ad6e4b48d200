//! ecssd's four Lambda functions, served by one `bootstrap` binary; each is told its role
//! (`ECSSD_ROLE`) and takes only its role's events:
//!
//! - [`sweep`]: the sweeper, run by an EventBridge schedule (or once from a shell): deletes the
//!   records of tasks and hosts ECS or EC2 confirm dead and the orphans this owner wrote, and, if
//!   enabled, health-checks the targets ECS confirms and stops unhealthy tasks within limits.
//! - [`withdrawal`]: the withdrawer, fed ECS's task state change events through an SQS queue: deletes
//!   a stopped task's records within seconds, once ECS confirms the stop.
//! - [`batching`]: the batcher, fed the registration queue: writes the registrations sidecars handed
//!   over, many tasks to a request.
//! - [`zone_settings`]: the custom resource that sets the negative caching of a zone the stack creates.
//!
//! What they share:
//! - [`config`]: typed settings from the environment or flags, checked at start, and the role.
//! - [`clients`]: the clients built once per cold start, and the API calls each invocation reports.
//! - [`fleet`]: the narrow ECS/EC2 interface and its AWS implementation.
//! - [`deadline`]: an invocation's deadline, which every call respects.
//! - [`sqs_batch`]: an SQS batch and its partial batch response (the withdrawer's and the batcher's).
//! - [`report`]: findings about tasks, and CloudWatch Embedded Metric Format lines.
//! - `fixtures` (tests only): the records a sidecar writes for a one-container task, and ECS as a table.

pub mod batching;
pub mod clients;
pub mod config;
pub mod deadline;
pub mod fleet;
pub mod report;
pub mod sqs_batch;
pub mod sweep;
pub mod withdrawal;
pub mod zone_settings;

#[cfg(test)]
mod fixtures;

pub use config::{Config, Role};
pub use sweep::{Report, sweep};
