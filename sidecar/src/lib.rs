//! ecssd's sidecar: one per ECS task, it publishes the task's containers as Route53 SRV records.
//!
//! # Layout
//! - [`config`]: flags and environment variables.
//! - [`metadata`]: ECS task metadata v4 and the host's IP from IMDSv2.
//! - [`siblings`]: the task's containers from Docker, and the pure step to endpoints.
//! - [`registrar`]: converging the task's records, generic over `RecordStore`.
//! - [`run`]: the event loop: register, follow Docker events, heal, withdraw and drain on shutdown.
//! - [`heal`]: noticing records deleted or changed behind the sidecar's back, through DNS.
//! - [`dns`]: asking the VPC's resolver about the task's names.
//! - [`problems`]: what goes wrong after start, retried and logged once per interval.
//! - [`error`]: errors; at start they end the process, after it they are problems.

pub mod config;
pub mod dns;
pub mod error;
pub mod heal;
pub mod metadata;
pub mod problems;
pub mod registrar;
pub mod run;
pub mod siblings;

pub use config::Config;
pub use error::SidecarError;
pub use run::{Deps, run};
