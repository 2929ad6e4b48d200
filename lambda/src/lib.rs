//! ecssd's sweeper, run by an EventBridge schedule as a Lambda function (or once from a shell), and,
//! from the same binary, the withdrawer: a second function fed by ECS's task state change events (an
//! EventBridge rule, through an SQS queue), which deletes a stopped task's records within seconds; and
//! a third, the custom resource that sets the negative caching of a zone the stack creates.
//!
//! # Layout
//! - [`config`]: typed settings from the environment or flags, checked at start.
//! - [`inventory`]: a zone listing grouped by task through ownership records; orphans, misfits. Pure.
//! - [`verify`]: whether a task's records say what ECS says (cluster, address, ports). Pure.
//! - [`decide`]: which tasks are dead, the agent brake, which unhealthy tasks may be stopped. Pure.
//! - [`tally`]: health check outcomes per task and per service. Pure.
//! - [`agents`]: since when an ECS agent is disconnected, remembered in ecssd-owned TXT markers. Pure.
//! - [`fleet`]: the narrow ECS/EC2 interface and its AWS implementation.
//! - [`hosts`]: describing the container instances and EC2 instances under the tasks found.
//! - [`health`]: concurrent HTTP health checks and TCP reachability probes.
//! - [`orphans`]: confirming orphans by name within a read budget.
//! - [`apply`]: deleting in batches, retrying rejected ones against fresh reads.
//! - [`stops`]: health-checking confirmed targets and stopping unhealthy tasks within the limits.
//! - [`deadline`]: the sweep's deadline, which every call respects.
//! - [`sweep`]: one sweep, generic over `RecordStore` and `Fleet`.
//! - [`report`]: what a sweep did, as JSON and CloudWatch Embedded Metric Format.
//! - [`task_event`]: reading an ECS task state change event; whether it says the task stops. Pure.
//! - [`withdraw`]: deleting stopped tasks' records, read by name and checked against this owner.
//! - [`stop_events`]: one SQS batch of task state change events, and its partial batch response.
//! - [`negative_caching`]: how long resolvers may remember an absent name (the SOA), reported by each
//!   sweep and, where allowed, kept at a set value.
//! - [`custom_resource`]: the stack's `ZoneNegativeCaching` resource (CloudFormation's request and answer).
//! - [`response_url`]: PUTting that answer to CloudFormation's presigned URL.
//! - `fixtures` (tests only): the records a sidecar writes for a one-container task.

pub mod agents;
pub mod apply;
pub mod config;
pub mod custom_resource;
pub mod deadline;
pub mod decide;
pub mod fleet;
pub mod health;
pub mod hosts;
pub mod inventory;
pub mod negative_caching;
pub mod orphans;
pub mod report;
pub mod response_url;
pub mod stop_events;
pub mod stops;
pub mod sweep;
pub mod tally;
pub mod task_event;
pub mod verify;
pub mod withdraw;

#[cfg(test)]
mod fixtures;

pub use config::Config;
pub use report::Report;
pub use sweep::sweep;
