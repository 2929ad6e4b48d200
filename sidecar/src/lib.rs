//! ecssd's sidecar: one per ECS task, it publishes the task's containers as Route53 SRV records.
//!
//! # Layout
//! - [`config`]: flags and environment variables.
//! - [`metadata`]: ECS task metadata v4 and the host's IP from IMDSv2.
//! - [`siblings`]: the task's containers from Docker, and the pure step to endpoints.
//! - [`registrar`]: converging the task's records, generic over `RecordStore`.
//! - [`run`]: the event loop: register, follow Docker events, withdraw and drain on shutdown.
//! - [`error`]: permanent errors that end the process.

pub mod config;
pub mod error;
pub mod metadata;
pub mod registrar;
pub mod run;
pub mod siblings;

pub use config::{Config, LogFormat};
pub use error::SidecarError;
pub use run::{Deps, run};
