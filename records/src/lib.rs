//! The ecssd record model, shared by the sidecar and the sweeper Lambda.
//!
//! Pure: no AWS SDK, no async runtime, no CLI. The AWS and process edge is `ecssd-edge`.
//!
//! # Layout
//! - [`service`]: parsing `SERVICE_<port>_NAME=<_service._proto>` variables.
//! - [`names`]: the zone's domain, task ARNs and ids, owner ids.
//! - [`address`]: a task's IPv4 and IPv6 addresses, and which family it publishes.
//! - [`record`]: records as ecssd sees them (A, AAAA, SRV, TXT) and sets of them.
//! - [`ownership`]: the per-task ownership TXT record (marker + index of the task's records), and the
//!   one answer to "which records may a task own" ([`TaskKeys`], [`Ownership::handed_over`]).
//! - [`mod@desired`]: `desired(task)`, the records a task should own.
//! - [`mod@plan`]: `plan(desired, current)`, the changes between two record sets.
//! - [`handoff`]: a registration a sidecar hands to the batcher when the account's rate is spent, and
//!   what the batcher checks before writing it.
//! - [`batch`]: packing changes into Route53 requests within its limits.
//! - [`provider`]: the narrow `RecordStore` trait reconcile code is generic over, and its error;
//!   `SoaStore`, the zone's SOA.
//! - [`soa`]: the SOA record and the negative-caching TTL it gives resolvers (RFC 2308).
//! - [`memory`]: an in-memory `RecordStore` that judges changes like Route53, for unit tests.
//! - [`backoff`]: one backoff (exponential, full jitter) for every retry in ecssd; a gate on repeated
//!   reports.

pub mod address;
pub mod backoff;
pub mod batch;
pub mod desired;
pub mod handoff;
pub mod memory;
pub mod names;
pub mod ownership;
pub mod plan;
pub mod provider;
pub mod record;
pub mod service;
pub mod soa;

pub use address::{AddressFamily, MissingFamily, TaskAddresses, canonical_ipv6, optional_address};
pub use backoff::{Backoff, REPORT_INTERVAL, ReportGate, RetryPolicy};
pub use batch::{BatchLimits, batches, cost_of};
pub use desired::{
    Desired, Endpoint, Rejected, SetIdentifierClaim, TaskRegistration, ZoneModel, desired,
    parse_set_identifier, parse_srv_value, set_identifier, srv_value,
};
pub use handoff::{Handoff, HandoffError};
pub use names::{Domain, NameError, OwnerId, TaskArn, is_ecs_task_id};
pub use ownership::{Ownership, OwnershipError, TaskKeys};
pub use plan::{Action, Change, plan, withdraw};
pub use provider::{CallError, RecordStore, SoaStore};
pub use record::{Record, RecordKey, RecordSet, RecordType};
pub use service::{
    ContainerSettings, Protocol, ServiceBinding, ServiceEnv, ServiceEnvError, ServiceName, SettingOrigin,
    parse_service_env,
};
pub use soa::{Soa, SoaError};
