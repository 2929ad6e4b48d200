//! The ecssd record model, shared by the sidecar and the sweeper Lambda.
//!
//! # Layout
//! - [`service`]: parsing `SERVICE_<port>_NAME=<_service._proto>` variables.
//! - [`names`]: the zone's domain, task ARNs and ids, owner ids.
//! - [`record`]: records as ecssd sees them (A, SRV, TXT) and sets of them.
//! - [`ownership`]: the per-task ownership TXT record (marker + index of the task's records).
//! - [`desired`]: `desired(task)`, the records a task should own. Pure.
//! - [`plan`]: `plan(desired, current)`, the changes between two record sets. Pure.
//! - [`batch`]: packing changes into Route53 requests within its limits. Pure.
//! - [`provider`]: the narrow `RecordStore` trait reconcile code is generic over.
//! - [`pace`]: spacing one client's requests under a shared rate limit.
//! - [`route53`]: the Route53 implementation of it; the only I/O in this crate.
//! - [`memory`]: an in-memory implementation that judges changes like Route53, for unit tests.
//! - [`route53_errors`]: the Route53 operations ecssd calls and the class of each error they model.
//! - [`retry`]: transient/conflict/not-found/permanent error classes, backoff with jitter, call counting.
//! - [`cli`]: the binaries' edge: flag/environment parsing naming the variable behind a bad value, the log
//!   filter check, and `block_on` (runtime and exit status).

pub mod batch;
pub mod cli;
pub mod desired;
pub mod memory;
pub mod names;
pub mod ownership;
pub mod pace;
pub mod plan;
pub mod provider;
pub mod record;
pub mod retry;
pub mod route53;
pub mod route53_errors;
pub mod service;

pub use batch::{BatchLimits, batches};
pub use desired::{
    Desired, Endpoint, Rejected, SetIdentifierClaim, TaskRegistration, ZoneModel, desired,
    parse_set_identifier, parse_srv_value, set_identifier, srv_value,
};
pub use names::{Domain, NameError, OwnerId, TaskArn, is_ecs_task_id};
pub use ownership::{Ownership, OwnershipError};
pub use pace::Pacer;
pub use plan::{Action, Change, plan, withdraw};
pub use provider::RecordStore;
pub use record::{Record, RecordKey, RecordSet, RecordType};
pub use retry::{Backoff, CallCounter, CallError, ErrorClass, ReportGate, RetryPolicy};
pub use route53::Route53Zone;
pub use service::{Protocol, ServiceBinding, ServiceEnv, ServiceEnvError, ServiceName, parse_service_env};
