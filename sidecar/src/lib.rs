//! ecssd's sidecar: one per ECS task, it publishes the task's containers as Route53 SRV records.
//!
//! # Layout
//! - [`config`]: flags and environment variables.
//! - [`metadata`]: ECS task metadata v4 (the task, whether it is stopping).
//! - [`host_address`]: the host's private IP for bridge and host mode: the ECS container metadata file,
//!   EC2 instance metadata (IMDSv2), or the ECS and EC2 APIs, and which one gave it.
//! - [`source`]: Docker or task metadata, and choosing between them.
//! - [`siblings`]: the task's containers as either source shows them, and the pure step to endpoints.
//! - [`docker_siblings`]: the task's containers from the Docker API and its events.
//! - [`metadata_siblings`]: the task's containers from task metadata.
//! - [`registrar`]: converging the task's records, generic over `RecordStore`.
//! - [`registration_queue`]: handing a registration to the batcher's queue.
//! - [`run`]: the start: the task, its address, the zone; SIGTERM during it registers nothing.
//! - [`event_loop`]: after start: register, follow Docker events or poll task metadata, heal, withdraw
//!   and drain on shutdown; nothing slow runs in the loop itself.
//! - [`follower`]: the work the loop hands off: list the task's containers, converge its records.
//! - [`schedule`]: every delay of the loop: resyncs, backoffs (withdrawals first), reconnects, checks.
//! - [`heal`]: noticing records deleted or changed behind the sidecar's back, through DNS.
//! - [`dns`]: asking the VPC's resolver about the task's names.
//! - [`problems`]: what goes wrong after start, retried and logged once per interval.
//! - [`error`]: errors; at start they end the process, after it they are problems.

pub mod config;
pub mod dns;
pub mod docker_siblings;
pub mod error;
pub mod event_loop;
pub mod follower;
pub mod heal;
pub mod host_address;
pub mod metadata;
pub mod metadata_siblings;
pub mod problems;
pub mod registrar;
pub mod registration_queue;
pub mod run;
pub mod schedule;
pub mod siblings;
pub mod source;

pub use config::Config;
pub use error::SidecarError;
pub use run::{Deps, run};
