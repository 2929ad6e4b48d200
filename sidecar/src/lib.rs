//! ecssd's sidecar: one per ECS task, it publishes the task's containers as Route53 SRV records.
//!
//! # Layout
//! - [`config`]: flags and environment variables.
//! - [`metadata`]: ECS task metadata v4 (the task, whether it is stopping) and the host's IP from IMDSv2.
//! - [`source`]: Docker or task metadata, and choosing between them.
//! - [`siblings`]: the task's containers as either source shows them, and the pure step to endpoints.
//! - [`docker_siblings`]: the task's containers from the Docker API and its events.
//! - [`metadata_siblings`]: the task's containers from task metadata.
//! - [`registrar`]: converging the task's records, generic over `RecordStore`.
//! - [`run`]: the event loop: register, follow Docker events or poll task metadata, heal, withdraw and
//!   drain on shutdown.
//! - [`heal`]: noticing records deleted or changed behind the sidecar's back, through DNS.
//! - [`dns`]: asking the VPC's resolver about the task's names.
//! - [`problems`]: what goes wrong after start, retried and logged once per interval.
//! - [`error`]: errors; at start they end the process, after it they are problems.

pub mod config;
pub mod dns;
pub mod docker_siblings;
pub mod error;
pub mod heal;
pub mod metadata;
pub mod metadata_siblings;
pub mod problems;
pub mod registrar;
pub mod run;
pub mod siblings;
pub mod source;

pub use config::Config;
pub use error::SidecarError;
pub use run::{Deps, run};
