//! The host's private addresses, IPv4, IPv6 or both, which a bridge- or host-mode task is reached at,
//! and which source gave them. In order:
//!
//! 1. the ECS container metadata file (`ECS_CONTAINER_METADATA_FILE`, written by an agent whose
//!    configuration has `ECS_ENABLE_CONTAINER_METADATA=true`): its `HostPrivateIPv4Address` and, on
//!    an IPv6-only instance, `HostIPv6Address` (agent 1.98.0 and later; amazon-ecs-agent
//!    `agent/containermetadata/types.go`), once its `MetadataFileStatus` is `READY`. The agent writes it in stages, a truncated one first, `READY`
//!    "usually within 1 second after the container starts" (ECS Developer Guide, "Amazon ECS container
//!    metadata file", "Turning on Amazon ECS container metadata" and "Amazon ECS container metadata
//!    file format"); the agent omits the status until then (amazon-ecs-agent,
//!    `agent/containermetadata/types.go`: `MetadataFileStatus` is `omitempty` and its first stage,
//!    `INITIAL`, is the zero value; that stage already has the address, but AWS says to rely on the
//!    file once `READY`). The agent learns the address itself, on the host's network, for
//!    containers kept from instance metadata (aws/amazon-ecs-agent issue 1575, PR 2025).
//! 2. EC2 instance metadata (IMDSv2; `AWS_EC2_METADATA_SERVICE_ENDPOINT` and, on an IPv6-only
//!    instance, `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6` are honoured): `local-ipv4` and `ipv6`,
//!    each "not set and results in an HTTP 404 response" when the instance lacks it (EC2 User Guide,
//!    "Instance metadata categories"). Its session
//!    token request is bounded by a few seconds, because from a bridge-mode container the token's
//!    answer is one hop further than an instance's default `HttpPutResponseHopLimit` of 1 lets it go,
//!    and it never arrives (EC2 User Guide, "Configure the instance metadata options").
//! 3. The ECS and EC2 APIs: `DescribeTasks` (the task's `containerInstanceArn`),
//!    `DescribeContainerInstances` (its `ec2InstanceId`), `DescribeInstances` (its `PrivateIpAddress`
//!    and `Ipv6Address`),
//!    each error classed on the SDK's typed error enum, paced, in the task's own region (an EC2 task's
//!    container may have no `AWS_REGION`: aws/containers-roadmap issue 1611; agents inject it only
//!    since amazon-ecs-agent PR 4946).
//!
//! The sources are tried in rounds until one answers or `wait` has passed: a source that cannot
//! answer on this host (the file not turned on, IMDS turned off, permissions missing) is not asked
//! again; one that may yet answer (a file not `READY`, IMDS silent, ECS not knowing the task yet) is,
//! every round, with growing pauses between rounds. Only when every source has failed does the
//! sidecar stop, with one message naming each source, why it failed and how to turn it on.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_config::imds::client::error::{ImdsError, TokenError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use ecssd_edge::ecs_errors::{DESCRIBE_CONTAINER_INSTANCES, DESCRIBE_INSTANCES, DESCRIBE_TASKS};
use ecssd_edge::retry::call_with_retry;
use ecssd_edge::{CallCounter, Pacer};
use ecssd_records::{AddressFamily, Backoff, CallError, RetryPolicy, TaskAddresses, optional_address};
use serde::Deserialize;
use tokio::time::Instant;

use crate::error::SidecarError;
use crate::metadata::TaskIdentity;

/// Where the address the sidecar registers came from (said in its start log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressSource {
    /// `ECSSD_ADDRESS`.
    Configured,
    /// The task's ENI (awsvpc), from task metadata.
    TaskEni,
    /// The host's, from the ECS container metadata file.
    ContainerMetadataFile,
    /// The host's, from EC2 instance metadata.
    Imds,
    /// The host's, from the ECS and EC2 APIs.
    EcsApi,
}

impl AddressSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Configured => "ecssd_address",
            Self::TaskEni => "task_metadata",
            Self::ContainerMetadataFile => "container_metadata_file",
            Self::Imds => "imds",
            Self::EcsApi => "ecs_api",
        }
    }
}

impl fmt::Display for AddressSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The variable the ECS agent sets to the container metadata file's path in the container.
pub const METADATA_FILE_VARIABLE: &str = "ECS_CONTAINER_METADATA_FILE";

/// How long the first round waits for the container metadata file to become `READY` before asking
/// the other sources: AWS says it usually is within a second of the container's start.
const FILE_GRACE: Duration = Duration::from_secs(5);
/// Between reads of a container metadata file that is not `READY` yet (a local file: no cost).
const FILE_POLL: Duration = Duration::from_millis(100);

/// IMDS is a link-local service that answers in milliseconds: a connection not made within 1 s, or a
/// request not answered within 2 s, is one that will not be (a hop limit of 1 drops the token's
/// answer; a firewall drops the connection).
const IMDS_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const IMDS_READ_TIMEOUT: Duration = Duration::from_secs(2);
const IMDS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Within one round, a reset connection or an error status from IMDS is retried this long (a refused
/// connection or a silent IMDS is not: it will not change within seconds).
const IMDS_ROUND_BUDGET: Duration = Duration::from_secs(3);
const IMDS_RETRY: RetryPolicy =
    RetryPolicy { base: Duration::from_millis(100), cap: Duration::from_secs(1), give_up_after: None };

/// The pauses between rounds: a fleet of sidecars asking ECS and EC2 together spreads out.
const ROUND_RETRY: RetryPolicy =
    RetryPolicy { base: Duration::from_secs(1), cap: Duration::from_secs(10), give_up_after: None };
/// At most this many ECS and EC2 requests per second from one sidecar, retries included.
const API_REQUESTS_PER_SECOND: f64 = 2.0;

/// What finding the host's address needs, built once by `main`.
#[derive(Debug, Clone)]
pub struct HostLookup {
    /// `ECS_CONTAINER_METADATA_FILE`, if the agent set it.
    metadata_file: Option<PathBuf>,
    imds: aws_config::imds::Client,
    ecs: aws_sdk_ecs::Client,
    ec2: aws_sdk_ec2::Client,
    pacer: Arc<Pacer>,
    calls: Arc<CallCounter>,
}

impl HostLookup {
    /// `ecs` and `ec2` should be clients whose retries are ours (`ecssd_edge::sdk::for_our_retries`).
    pub fn new(metadata_file: Option<PathBuf>, ecs: aws_sdk_ecs::Client, ec2: aws_sdk_ec2::Client) -> Self {
        let imds = aws_config::imds::Client::builder()
            .connect_timeout(IMDS_CONNECT_TIMEOUT)
            .read_timeout(IMDS_READ_TIMEOUT)
            .operation_attempt_timeout(IMDS_ATTEMPT_TIMEOUT)
            .operation_timeout(IMDS_ATTEMPT_TIMEOUT)
            // One attempt per call: the rounds here retry, and know a silent IMDS from a flaky one.
            .max_attempts(1)
            .build();
        let pacer = Pacer::per_second(API_REQUESTS_PER_SECOND).expect("a positive, finite rate");
        Self {
            metadata_file: metadata_file.filter(|path| !path.as_os_str().is_empty()),
            imds,
            ecs,
            ec2,
            pacer: Arc::new(pacer),
            calls: Arc::new(CallCounter::default()),
        }
    }

    /// ECS and EC2 requests made so far, per operation.
    pub fn api_calls(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.calls.snapshot()
    }
}

/// Why one source gave no address, and whether it may yet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    reason: String,
    /// It cannot answer on this host as configured: not asked again.
    permanent: bool,
    /// ECS or EC2 throttled the request: a deploy of many tasks at once, not a fault of this host.
    /// The start waits it out, past `ECSSD_METADATA_WAIT_SECONDS`.
    throttled: bool,
}

impl Failure {
    fn permanent(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), permanent: true, throttled: false }
    }

    fn passing(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), permanent: false, throttled: false }
    }
}

/// The host sources, in the order they are asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostSource {
    File,
    Imds,
    Apis,
}

impl HostSource {
    const ALL: [Self; 3] = [Self::File, Self::Imds, Self::Apis];

    fn address_source(self) -> AddressSource {
        match self {
            Self::File => AddressSource::ContainerMetadataFile,
            Self::Imds => AddressSource::Imds,
            Self::Apis => AddressSource::EcsApi,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::File => "the ECS container metadata file",
            Self::Imds => "EC2 instance metadata (IMDSv2)",
            Self::Apis => "the ECS and EC2 APIs",
        }
    }

    /// How an operator turns this source on.
    fn remedy(self) -> &'static str {
        match self {
            Self::File => {
                "turn it on with ECS_ENABLE_CONTAINER_METADATA=true in the ECS agent's configuration \
                 (/etc/ecs/ecs.config), set when the instance launches"
            }
            Self::Imds => {
                "let containers reach 169.254.169.254 and, for bridge-mode tasks, raise the instance's \
                 metadata hop limit (HttpPutResponseHopLimit) to 2"
            }
            Self::Apis => {
                "grant the task role ecs:DescribeTasks and ecs:DescribeContainerInstances on the cluster and \
                 ec2:DescribeInstances (the stack's sidecar policy has them)"
            }
        }
    }
}

/// Finds the host's private addresses, asking each source in turn, in rounds, for up to `wait`
/// (each source is asked at least once), and for as long as ECS or EC2 throttle the API path. A
/// source whose answer lacks a family `wanted` needs does not serve (the container metadata file of
/// a dual-stack host gives its IPv4 address only). The error names every source, why it failed and
/// how to turn it on.
pub async fn find(
    lookup: &HostLookup,
    identity: &TaskIdentity,
    wanted: Option<AddressFamily>,
    wait: Duration,
) -> Result<(TaskAddresses, AddressSource), SidecarError> {
    let started = Instant::now();
    let deadline = started + wait;
    let mut failures: [Option<Failure>; 3] = [None, None, None];
    if lookup.metadata_file.is_none() {
        failures[0] = Some(Failure::permanent(format!("{METADATA_FILE_VARIABLE} is not set")));
    }
    let mut rounds = Backoff::new(ROUND_RETRY);
    let mut first_round = true;
    loop {
        for (index, source) in HostSource::ALL.into_iter().enumerate() {
            if failures[index].as_ref().is_some_and(|f| f.permanent) {
                continue;
            }
            let outcome = match source {
                HostSource::File => {
                    let path = lookup.metadata_file.as_deref().expect("checked above: a file is set");
                    // The first round gives the agent its second to finish the file; later rounds read
                    // it once.
                    let until =
                        if first_round { (Instant::now() + FILE_GRACE).min(deadline) } else { started };
                    from_file(path, until).await
                }
                HostSource::Imds => {
                    from_imds(&lookup.imds, (Instant::now() + IMDS_ROUND_BUDGET).min(deadline)).await
                }
                HostSource::Apis => from_apis(lookup, identity, deadline).await,
            };
            let outcome = outcome.and_then(|address| match wanted.map(|family| address.select(family)) {
                Some(Err(missing)) => Err(Failure::permanent(missing.to_string())),
                _ => Ok(address),
            });
            match outcome {
                Ok(address) => {
                    tracing::debug!(source = source.address_source().as_str(), %address,
                        api_calls = ?lookup.api_calls(), "found the host's address");
                    return Ok((address, source.address_source()));
                }
                Err(failure) => {
                    tracing::debug!(source = source.address_source().as_str(), reason = %failure.reason,
                        permanent = failure.permanent, "no host address from this source; trying the next");
                    failures[index] = Some(failure);
                }
            }
        }
        first_round = false;
        let all_permanent = failures.iter().all(|f| f.as_ref().is_some_and(|f| f.permanent));
        // Throttling is not an answer: a start never fails on it, however long a deploy lasts.
        let throttled = failures.iter().any(|f| f.as_ref().is_some_and(|f| f.throttled));
        let delay = rounds.next_delay();
        if all_permanent || (Instant::now() + delay >= deadline && !throttled) {
            return Err(SidecarError::NoHostAddress(explain(&failures, started.elapsed(), all_permanent)));
        }
        tracing::warn!(retry_in_ms = delay.as_millis() as u64, failures = %summary(&failures),
            "no source gave the host's address yet; asking again");
        tokio::time::sleep(delay).await;
    }
}

/// One line per source: what failed, then how to turn it on.
fn explain(failures: &[Option<Failure>; 3], elapsed: Duration, all_permanent: bool) -> String {
    let after = if all_permanent {
        "none of them can on this host as configured".to_owned()
    } else {
        format!("none did within {}s (ECSSD_METADATA_WAIT_SECONDS)", elapsed.as_secs())
    };
    let each: Vec<String> = HostSource::ALL
        .iter()
        .zip(failures)
        .map(|(source, failure)| {
            let reason = failure.as_ref().map_or("not asked", |f| f.reason.as_str());
            format!("{}: {reason}; {}", source.name(), source.remedy())
        })
        .collect();
    format!(
        "no source gave the host's private address for a bridge- or host-mode task, and {after}. {}. \
         Or set ECSSD_ADDRESS to the address other tasks reach this host at",
        each.join(". ")
    )
}

/// The failures so far, for the log of a round that asks again.
fn summary(failures: &[Option<Failure>; 3]) -> String {
    HostSource::ALL
        .iter()
        .zip(failures)
        .filter_map(|(source, failure)| failure.as_ref().map(|f| format!("{}: {}", source.name(), f.reason)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The fields of the container metadata file read here (ECS Developer Guide, "Amazon ECS container
/// metadata file format").
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MetadataFile {
    #[serde(default)]
    metadata_file_status: Option<String>,
    #[serde(rename = "HostPrivateIPv4Address", default)]
    host_private_ipv4_address: Option<String>,
    #[serde(rename = "HostIPv6Address", default)]
    host_ipv6_address: Option<String>,
}

/// Reads the container metadata file until it is `READY` or `until` has passed (at least once).
async fn from_file(path: &Path, until: Instant) -> Result<TaskAddresses, Failure> {
    let mut said = false;
    loop {
        let failure = match read_file(path) {
            Ok(address) => return Ok(address),
            Err(failure) => failure,
        };
        if failure.permanent || Instant::now() + FILE_POLL >= until {
            return Err(failure);
        }
        if !said {
            tracing::info!(path = %path.display(), reason = %failure.reason,
                "waiting for the container metadata file to be READY");
            said = true;
        }
        tokio::time::sleep(FILE_POLL).await;
    }
}

/// One read of the container metadata file (a small local file).
fn read_file(path: &Path) -> Result<TaskAddresses, Failure> {
    let at = path.display();
    let body = match std::fs::read(path) {
        Ok(body) => body,
        // The agent creates it with the container; not there yet is not gone.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::passing(format!("{at} does not exist (yet)")));
        }
        Err(e) => return Err(Failure::permanent(format!("cannot read {at}: {e}"))),
    };
    parse_file(&body).map_err(|failure| Failure { reason: format!("{at}: {}", failure.reason), ..failure })
}

fn parse_file(body: &[u8]) -> Result<TaskAddresses, Failure> {
    // A file caught while the agent rewrites it may be cut short: read again.
    let file: MetadataFile =
        serde_json::from_slice(body).map_err(|e| Failure::passing(format!("not complete JSON yet ({e})")))?;
    match file.metadata_file_status.as_deref() {
        Some("READY") => {}
        Some(status) => {
            return Err(Failure::passing(format!("MetadataFileStatus is {status}, not READY yet")));
        }
        None => {
            return Err(Failure::passing(
                "MetadataFileStatus absent: not READY yet (the agent's first stage)",
            ));
        }
    }
    let ipv4 = optional_address("HostPrivateIPv4Address", file.host_private_ipv4_address.as_deref())
        .map_err(Failure::permanent)?;
    let ipv6 =
        optional_address("HostIPv6Address", file.host_ipv6_address.as_deref()).map_err(Failure::permanent)?;
    TaskAddresses::from_parts(ipv4, ipv6).ok_or_else(|| {
        Failure::permanent(
            "READY without HostPrivateIPv4Address or HostIPv6Address (agents before aws/amazon-ecs-agent \
             PR 2025, of 2019, leave the first out)",
        )
    })
}

/// How an IMDS failure is handled within a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ImdsFailure {
    /// Retried within the round: a reset connection, a 5xx, an expired token.
    Flaky,
    /// Not retried within the round, asked again next round: no answer in time, a refused connection.
    Unreachable,
    /// IMDS is off for this instance, or does not have the address: not asked again.
    Off,
}

/// Asks IMDS for the instance's private IPv4 and IPv6 addresses (`local-ipv4`, `ipv6`), whichever it
/// has, retrying flaky failures until `until`.
async fn from_imds(client: &aws_config::imds::Client, until: Instant) -> Result<TaskAddresses, Failure> {
    const IPV4: &str = "/latest/meta-data/local-ipv4";
    const IPV6: &str = "/latest/meta-data/ipv6";
    let ipv4 = imds_item::<Ipv4Addr>(client, IPV4, until).await?;
    let ipv6 = imds_item::<Ipv6Addr>(client, IPV6, until).await?;
    TaskAddresses::from_parts(ipv4, ipv6)
        .ok_or_else(|| Failure::permanent(format!("neither {IPV4} nor {IPV6} is set (HTTP 404)")))
}

/// One IMDS item, parsed; `None` when the instance does not have it (HTTP 404), flaky failures
/// retried until `until`.
async fn imds_item<T: std::str::FromStr>(
    client: &aws_config::imds::Client,
    path: &str,
    until: Instant,
) -> Result<Option<T>, Failure> {
    let mut backoff = Backoff::new(IMDS_RETRY);
    loop {
        let error = match client.get(path).await {
            Ok(text) => {
                let text = text.as_ref().trim().to_owned();
                return text
                    .parse()
                    .map(Some)
                    .map_err(|_| Failure::permanent(format!("{path} answered {text:?}, not an address")));
            }
            Err(ImdsError::ErrorResponse(response)) if response.response().status().as_u16() == 404 => {
                return Ok(None);
            }
            Err(error) => error,
        };
        let (kind, reason) = classify_imds(&error);
        let delay = backoff.next_delay();
        match kind {
            ImdsFailure::Flaky if Instant::now() + delay < until => {
                tracing::warn!(url = path, problem = %reason, retry_in_ms = delay.as_millis() as u64,
                    "EC2 instance metadata not answering yet");
                tokio::time::sleep(delay).await;
            }
            ImdsFailure::Off => return Err(Failure::permanent(reason)),
            ImdsFailure::Flaky | ImdsFailure::Unreachable => return Err(Failure::passing(reason)),
        }
    }
}

/// Sorts an IMDS error by what it says about this host, on the IMDS client's typed errors.
fn classify_imds(error: &ImdsError) -> (ImdsFailure, String) {
    match error {
        ImdsError::FailedToLoadToken(_) => {
            let source = std::error::Error::source(error)
                .and_then(|s| s.downcast_ref::<SdkError<TokenError, HttpResponse>>());
            match source {
                Some(SdkError::TimeoutError(_)) => (ImdsFailure::Unreachable, token_unanswered()),
                Some(SdkError::DispatchFailure(failure)) if failure.is_timeout() => {
                    (ImdsFailure::Unreachable, token_unanswered())
                }
                Some(SdkError::DispatchFailure(failure)) if refused(failure) => (
                    ImdsFailure::Unreachable,
                    "the connection was refused: containers are blocked from instance metadata".to_owned(),
                ),
                Some(SdkError::ServiceError(context)) if context.raw().status().as_u16() == 403 => (
                    ImdsFailure::Off,
                    "the session token request was refused (HTTP 403): instance metadata is turned off"
                        .to_owned(),
                ),
                Some(other) => {
                    (ImdsFailure::Flaky, format!("no session token: {}", DisplayErrorContext(other)))
                }
                None => (ImdsFailure::Flaky, DisplayErrorContext(error).to_string()),
            }
        }
        ImdsError::ErrorResponse(response) => {
            let status = response.response().status().as_u16();
            let kind = match status {
                // Turned off (an item the instance lacks, 404, is `None` in `imds_item`): asking
                // again will not change it.
                403 | 404 => ImdsFailure::Off,
                _ => ImdsFailure::Flaky,
            };
            (kind, format!("HTTP {status}"))
        }
        // A timeout or a broken answer to the address request itself.
        ImdsError::IoError(_) => (ImdsFailure::Unreachable, DisplayErrorContext(error).to_string()),
        _ => (ImdsFailure::Flaky, DisplayErrorContext(error).to_string()),
    }
}

fn token_unanswered() -> String {
    format!(
        "the session token request (PUT /latest/api/token) got no answer (connecting bounded by {}s, the \
         answer by {}s): from a bridge-mode container this is an instance metadata hop limit of 1 (EC2's \
         default), or a firewall dropping the traffic",
        IMDS_CONNECT_TIMEOUT.as_secs(),
        IMDS_READ_TIMEOUT.as_secs()
    )
}

/// Whether a connector error is a refused connection.
fn refused(failure: &aws_smithy_runtime_api::client::result::DispatchFailure) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = failure.as_connector_error().map(|e| e as _);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        cause = error.source();
    }
    false
}

/// The region of an ARN (`arn:partition:service:region:account:...`).
fn region_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|region| !region.is_empty())
}

/// A failed API call as a source's failure: throttling and 5xx until the wait ran out may pass;
/// denied, invalid or unknown will not.
fn api_failure(error: CallError) -> Failure {
    match error {
        CallError::Exhausted { throttled, .. } => {
            Failure { throttled, ..Failure::passing(error.to_string()) }
        }
        _ => Failure::permanent(error.to_string()),
    }
}

/// The task's container instance, its EC2 instance, that instance's private IPv4 and IPv6 addresses:
/// three requests, paced, transient failures retried until `deadline`.
async fn from_apis(
    lookup: &HostLookup,
    identity: &TaskIdentity,
    deadline: Instant,
) -> Result<TaskAddresses, Failure> {
    let task = identity.task.as_str();
    let cluster = identity.cluster.as_str();
    let region = region_of(task).map(|r| r.to_owned());
    let policy = RetryPolicy {
        base: Duration::from_millis(500),
        cap: Duration::from_secs(5),
        give_up_after: Some(deadline.saturating_duration_since(Instant::now())),
    };
    let ecs_region = || {
        let mut config = aws_sdk_ecs::config::Builder::default();
        if let Some(region) = &region {
            config = config.region(aws_sdk_ecs::config::Region::new(region.clone()));
        }
        config
    };
    let described = call_with_retry(&policy, &lookup.calls, &DESCRIBE_TASKS, || async {
        lookup.pacer.ready().await;
        lookup
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .tasks(task)
            .customize()
            .config_override(ecs_region())
            .send()
            .await
    })
    .await
    .map_err(api_failure)?;
    let Some(found) = described.tasks().iter().find(|t| t.task_arn() == Some(task)) else {
        let reason = described.failures().iter().find_map(|f| f.reason()).unwrap_or("no answer about it");
        // Unknown is not gone: ECS may not show a task this new yet.
        return Err(Failure::passing(format!("DescribeTasks does not describe the task ({reason})")));
    };
    let Some(container_instance) = found.container_instance_arn() else {
        return Err(Failure::permanent(
            "DescribeTasks gives the task no containerInstanceArn: it does not run on an EC2 container instance",
        ));
    };
    let instances = call_with_retry(&policy, &lookup.calls, &DESCRIBE_CONTAINER_INSTANCES, || async {
        lookup.pacer.ready().await;
        lookup
            .ecs
            .describe_container_instances()
            .cluster(cluster)
            .container_instances(container_instance)
            .customize()
            .config_override(ecs_region())
            .send()
            .await
    })
    .await
    .map_err(api_failure)?;
    let instance_id = instances
        .container_instances()
        .iter()
        .find(|ci| ci.container_instance_arn() == Some(container_instance))
        .and_then(|ci| ci.ec2_instance_id())
        .ok_or_else(|| {
            Failure::passing(format!(
                "DescribeContainerInstances gives no ec2InstanceId for {container_instance}"
            ))
        })?;
    let ec2_region = || {
        let mut config = aws_sdk_ec2::config::Builder::default();
        if let Some(region) = &region {
            config = config.region(aws_sdk_ec2::config::Region::new(region.clone()));
        }
        config
    };
    let reservations = call_with_retry(&policy, &lookup.calls, &DESCRIBE_INSTANCES, || async {
        lookup.pacer.ready().await;
        lookup
            .ec2
            .describe_instances()
            .instance_ids(instance_id)
            .customize()
            .config_override(ec2_region())
            .send()
            .await
    })
    .await
    .map_err(api_failure)?;
    let instance = reservations
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(instance_id))
        .ok_or_else(|| Failure::passing(format!("DescribeInstances does not describe {instance_id}")))?;
    let ipv4 = optional_address("DescribeInstances' PrivateIpAddress", instance.private_ip_address())
        .map_err(Failure::permanent)?;
    let ipv6 = optional_address("DescribeInstances' Ipv6Address", instance.ipv6_address())
        .map_err(Failure::permanent)?;
    TaskAddresses::from_parts(ipv4, ipv6).ok_or_else(|| {
        Failure::passing(format!("DescribeInstances gives {instance_id} no PrivateIpAddress or Ipv6Address"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_serves_only_once_ready() {
        // The agent's first stage: no status (the zero value is omitted), no host address.
        let initial =
            br#"{"Cluster":"c","TaskARN":"arn:aws:ecs:us-east-1:1:task/c/abc","ContainerName":"ecssd"}"#;
        let failure = parse_file(initial).expect_err("not READY");
        assert!(!failure.permanent && failure.reason.contains("MetadataFileStatus absent"), "{failure:?}");
        let ready = br#"{"MetadataFileStatus":"READY","HostPrivateIPv4Address":"10.0.3.17"}"#;
        assert_eq!(parse_file(ready), Ok(Ipv4Addr::new(10, 0, 3, 17).into()));
        // An IPv6-only instance (agent 1.98.0 and later).
        let ipv6_only = br#"{"MetadataFileStatus":"READY","HostIPv6Address":"2600:1f18::3:17"}"#;
        assert_eq!(parse_file(ipv6_only), Ok("2600:1f18::3:17".parse::<Ipv6Addr>().unwrap().into()));
        let failure = parse_file(br#"{"MetadataFileStatus":"REA"#).expect_err("cut short");
        assert!(!failure.permanent, "{failure:?}");
        let failure = parse_file(br#"{"MetadataFileStatus":"INITIAL"}"#).expect_err("initial");
        assert!(!failure.permanent && failure.reason.contains("INITIAL"), "{failure:?}");
        let failure = parse_file(br#"{"MetadataFileStatus":"READY"}"#).expect_err("old agent");
        assert!(failure.permanent, "{failure:?}");
        let failure =
            parse_file(br#"{"MetadataFileStatus":"READY","HostPrivateIPv4Address":"x"}"#).expect_err("bad");
        assert!(failure.permanent, "{failure:?}");
    }

    #[test]
    fn regions_come_from_the_arn() {
        assert_eq!(region_of("arn:aws:ecs:eu-west-1:123456789012:task/c/abc"), Some("eu-west-1"));
        assert_eq!(region_of("arn:aws-cn:ecs:cn-north-1:1:task/abc"), Some("cn-north-1"));
        assert_eq!(region_of("abc"), None);
    }

    #[test]
    fn the_message_names_every_source_and_its_remedy() {
        let failures = [
            Some(Failure::permanent("ECS_CONTAINER_METADATA_FILE is not set")),
            Some(Failure::passing(token_unanswered())),
            Some(Failure::permanent("DescribeTasks: ClientException")),
        ];
        let message = explain(&failures, Duration::from_secs(60), false);
        for needle in [
            "the ECS container metadata file: ECS_CONTAINER_METADATA_FILE is not set",
            "ECS_ENABLE_CONTAINER_METADATA=true",
            "EC2 instance metadata (IMDSv2): the session token request",
            "HttpPutResponseHopLimit) to 2",
            "the ECS and EC2 APIs: DescribeTasks: ClientException",
            "ecs:DescribeTasks",
            "ec2:DescribeInstances",
            "within 60s",
            "ECSSD_ADDRESS",
        ] {
            assert!(message.contains(needle), "{needle:?} in {message}");
        }
    }

    #[test]
    fn sources_are_named_in_the_log() {
        let names: Vec<&str> = [
            AddressSource::Configured,
            AddressSource::TaskEni,
            AddressSource::ContainerMetadataFile,
            AddressSource::Imds,
            AddressSource::EcsApi,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect();
        assert_eq!(names, ["ecssd_address", "task_metadata", "container_metadata_file", "imds", "ecs_api"]);
    }

    #[test]
    fn a_denied_call_of_the_api_path_is_permanent() {
        let denied = CallError::Permanent { operation: "DescribeTasks", detail: "ClientException".into() };
        assert!(api_failure(denied).permanent);
    }

    #[tokio::test]
    async fn only_an_exhausted_retry_of_the_api_path_may_pass() {
        let policy = RetryPolicy { give_up_after: Some(Duration::ZERO), ..RetryPolicy::default() };
        let slow = || async { Err::<(), _>(SdkError::timeout_error("attempt timed out")) };
        let exhausted = call_with_retry(&policy, &CallCounter::default(), &DESCRIBE_TASKS, slow).await;
        let exhausted = exhausted.expect_err("never answered");
        assert!(matches!(exhausted, CallError::Exhausted { .. }), "{exhausted:?}");
        assert!(!api_failure(exhausted).permanent);
    }
}
