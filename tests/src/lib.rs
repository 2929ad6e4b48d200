//! The ecssd end-to-end harness: real parts wherever they exist on this machine.
//!
//! # Layout
//! - [`moto`]: a moto server (pinned in `scripts/setup`) started from `tests/moto/ecssd_moto.py`,
//!   which fixes moto's divergences from Route53 and ECS; SDK config and fault controls for it.
//! - [`docker`]: workload images built without a registry, containers labelled like an ECS task's,
//!   cleaned up even when a test fails.
//! - [`docker_proxy`]: a Docker socket proxy a test can cut, to break event streams on purpose.
//! - [`metadata`]: the only stand-ins: ECS task metadata v4 and EC2 IMDSv2, built from Docker.
//! - [`sidecar`]: runs the real sidecar binary wired like ECS wires it.
//! - [`fleet_metadata`]: for the benchmarks only, task metadata for a fleet of tasks without containers.
//! - [`ecs`]: clusters, EC2-backed container instances and tasks in moto, and their records seeded
//!   through the shared record model, for the sweeper.
//! - [`endpoints`]: real loopback HTTP endpoints that are healthy, failing, hanging or refusing.
//! - [`sweeper`]: runs the real sweeper binary from a shell, or as the function of a Lambda runtime
//!   API emulator (`cargo lambda watch --only-lambda-apis`).
//! - [`cloudformation`]: a custom resource's request, and the loopback "presigned URL" its answer goes to.
//! - [`task_events`]: ECS task state change events of moto's tasks, in SQS batches for the Withdrawer.
//! - [`registration_queue`]: the registration queue in moto, the batcher as a Lambda function, and
//!   Lambda's SQS event source mapping between them, emulated.
//! - [`dns`]: the zone's authoritative server (as Route53's name servers answer, from a snapshot
//!   of the zone) and a caching resolver in front of it (dnsmasq, as the VPC's Route53 Resolver).
//! - [`examples`]: the example services (time, calc, portal) as tasks with their sidecars.
//! - [`world`]: one test's moto + zone + Docker, with helpers to start tasks and read the zone.
//! - [`http`]: a small loopback HTTP client.
//! - [`measure`]: resident memory and percentiles, for the benchmarks (in `tools/`).
//! - [`wait_for`]: polling a condition with a deadline (tests wait for conditions, never sleep).
//!
//! The tests themselves live in `tests/tests/e2e/` (one test binary, a module per subject); the demo
//! and the benchmarks, built on this library, in the `ecssd-tools` package (`tools/`).

pub mod cloudformation;
pub mod dns;
pub mod docker;
pub mod docker_proxy;
pub mod ecs;
pub mod endpoints;
pub mod examples;
pub mod fleet_metadata;
pub mod http;
pub mod measure;
pub mod metadata;
pub mod moto;
pub mod registration_queue;
pub mod sidecar;
pub mod sweeper;
pub mod task_events;
pub mod world;

use std::time::Duration;

/// Polls `check` every 50 ms until it returns `Some`, or fails after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Logs to the test's output (shown on failure); call at the start of a test.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
}

/// The address records among `records` as `TYPE value` (`A 10.0.0.1`, `AAAA ::1`), sorted: what a
/// test of dual-stack and IPv6-only tasks compares.
pub fn address_records(records: &[ecssd_records::Record]) -> Vec<String> {
    use ecssd_records::RecordType;
    let mut found: Vec<String> = records
        .iter()
        .filter(|r| matches!(r.key.record_type, RecordType::A | RecordType::Aaaa))
        .map(|r| format!("{} {}", r.key.record_type, r.values().join(",")))
        .collect();
    found.sort();
    found
}
