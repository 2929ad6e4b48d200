//! What the task knows about itself: ECS task metadata v4. (The host's private IP, for bridge and host
//! networking, is [`crate::host_address`]'s.)

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use ecssd_records::{Backoff, RetryPolicy, TaskAddresses, TaskArn, optional_address};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::error::SidecarError;

/// Retrying the metadata endpoints at start: short steps, as they usually answer within a second.
const STARTUP_RETRY: RetryPolicy =
    RetryPolicy { base: Duration::from_millis(100), cap: Duration::from_secs(5), give_up_after: None };

/// How long one read of task metadata may take before it counts as failed.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The stop check runs inside the event loop: it must not hold it up for long.
const STOP_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How the task's containers are networked, which decides the address other tasks reach them at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// Docker's bridge: reachable at the host's IP on the host port Docker mapped.
    Bridge,
    /// The host's network namespace: the host's IP, the container port.
    Host,
    /// A task ENI: the ENI's addresses (IPv4, IPv6 or both), the container port.
    Awsvpc(TaskAddresses),
}

/// The fields of a task metadata v4 `/task` document the sidecar uses (ECS Developer Guide, "Task
/// metadata endpoint version 4" and its Fargate variant).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskMetadata {
    cluster: String,
    #[serde(rename = "TaskARN")]
    task_arn: String,
    /// STOPPED once ECS has decided to stop the task (StopTask, a deployment, an essential container
    /// exiting), while its containers may still run for a while (a load balancer's deregistration
    /// delay, their stop timeouts).
    #[serde(default)]
    pub desired_status: String,
    /// Required, and never empty (the sidecar is one of them): a document without them is not an
    /// empty task, it is one the sidecar cannot read, and unknown is not gone.
    pub containers: Vec<ContainerMetadata>,
}

impl TaskMetadata {
    /// Parses a `/task` document; the error says what is wrong with it.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let task: Self =
            serde_json::from_slice(body).map_err(|e| format!("not the task metadata v4 format: {e}"))?;
        if task.containers.is_empty() {
            return Err("not the task metadata v4 format: `Containers` is empty, while the sidecar itself \
                        is a container of the task"
                .into());
        }
        Ok(task)
    }
}

/// One container of the task. `Type` is `NORMAL` for the task definition's containers (others are
/// ECS's own, e.g. `CNI_PAUSE`); `Ports[].HostPort` is given in bridge and host mode only (agent
/// 1.41.1 or later in bridge mode); `Health` appears only for a container whose task definition has a
/// `healthCheck`. The fields that decide whether a container serves are required: a container whose
/// type or status cannot be read must not be taken as gone.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerMetadata {
    pub name: String,
    #[serde(rename = "Type")]
    pub kind: String,
    pub known_status: String,
    pub desired_status: String,
    /// The container's Docker labels: the task definition's `dockerLabels`, ECS's own
    /// `com.amazonaws.ecs.*` ones, and any `LABEL` of its image (Docker merges them).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub ports: Vec<PortMetadata>,
    pub health: Option<HealthMetadata>,
    #[serde(default)]
    networks: Vec<NetworkMetadata>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortMetadata {
    pub container_port: u16,
    #[serde(default)]
    pub protocol: String,
    pub host_port: Option<u16>,
    /// The host address bound; an IPv4 and an IPv6 binding of one port may have different host ports
    /// (aws/amazon-ecs-agent issue 3096).
    #[serde(default)]
    pub host_ip: String,
}

/// `status` is HEALTHY, UNHEALTHY or UNKNOWN (the agent's name for Docker's "starting").
#[derive(Debug, Clone, Deserialize)]
pub struct HealthMetadata {
    #[serde(default)]
    pub status: String,
}

#[derive(Debug, Clone, Deserialize)]
struct NetworkMetadata {
    #[serde(rename = "NetworkMode")]
    mode: String,
    #[serde(rename = "IPv4Addresses", default)]
    ipv4: Vec<String>,
    /// Absent unless the ENI has one: the documents name no IPv6 field; the agent's is
    /// `IPv6Addresses`, omitted when empty (amazon-ecs-agent, ecs-agent/tmds/handlers/v4/state), and
    /// an IPv6-only task has no `IPv4Addresses` either.
    #[serde(rename = "IPv6Addresses", default)]
    ipv6: Vec<String>,
}

impl NetworkMetadata {
    /// The ENI's first IPv4 and first IPv6 address, whichever it has; an error naming a value that is
    /// not an address, or the absence of both.
    fn eni_addresses(&self) -> Result<TaskAddresses, String> {
        fn first(values: &[String]) -> Option<&str> {
            values.iter().map(String::as_str).find(|value| !value.is_empty())
        }
        let ipv4 = optional_address("IPv4Addresses", first(&self.ipv4))?;
        let ipv6 = optional_address("IPv6Addresses", first(&self.ipv6))?;
        TaskAddresses::from_parts(ipv4, ipv6).ok_or_else(|| {
            "awsvpc task metadata lists no address: neither `IPv4Addresses` nor `IPv6Addresses`".into()
        })
    }
}

/// Who this sidecar works for.
#[derive(Debug, Clone)]
pub struct TaskIdentity {
    pub task: TaskArn,
    /// The cluster's ARN (metadata may give a short name; see [`TaskArn::cluster_arn`]).
    pub cluster: String,
    pub network_mode: NetworkMode,
}

/// The task metadata `/task` document's URL, and one HTTP client kept across reads: metadata mode
/// reads it every poll interval.
#[derive(Debug, Clone)]
pub struct TaskEndpoint {
    url: String,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl TaskEndpoint {
    /// From `ECS_CONTAINER_METADATA_URI_V4`; its absence is permanent.
    pub fn new(uri: Option<&str>) -> Result<Self, SidecarError> {
        let uri = uri.ok_or(SidecarError::NoTaskMetadata(
            "ECS_CONTAINER_METADATA_URI_V4 is not set: the sidecar must run as a container of an ECS task \
             (ECS agent 1.39 or later, or Fargate platform 1.4.0 or later)"
                .into(),
        ))?;
        let url = format!("{}/task", uri.trim_end_matches('/'));
        Ok(Self { url, client: Client::builder(TokioExecutor::new()).build_http() })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// One read of the task document; a description naming the URL when it fails.
    pub async fn read(&self, timeout: Duration) -> Result<Bytes, String> {
        get(&self.client, &self.url, timeout).await.map_err(|problem| format!("{}: {problem}", self.url))
    }

    /// One read of the task document, parsed; a description naming the URL when either fails.
    pub async fn read_task(&self, timeout: Duration) -> Result<TaskMetadata, String> {
        let body = self.read(timeout).await?;
        TaskMetadata::parse(&body).map_err(|e| format!("{}: {e}", self.url))
    }
}

/// Reads task metadata, retrying for up to `wait` while the endpoint is not yet serving (it can lag
/// the container's start). Still failing after `wait` is permanent.
pub async fn task_identity(endpoint: &TaskEndpoint, wait: Duration) -> Result<TaskIdentity, SidecarError> {
    let body =
        retry_for(wait, endpoint.url(), "task metadata not available yet", || endpoint.read(READ_TIMEOUT))
            .await
            .map_err(|problem| {
                SidecarError::NoTaskMetadata(format!("still failing after {wait:?}: {problem}"))
            })?;
    parse_task_identity(&body)
}

/// Whether ECS has decided to stop the task (task metadata v4 `DesiredStatus` STOPPED): one request to
/// the local endpoint, no AWS call. An endpoint that does not answer (in time) says nothing, which is
/// not a stop.
pub async fn task_is_stopping(endpoint: &TaskEndpoint) -> Result<bool, String> {
    Ok(endpoint.read_task(STOP_CHECK_TIMEOUT).await?.desired_status == "STOPPED")
}

/// Calls `attempt` until it succeeds or `wait` has passed, saying `waiting` (and `url`) at each retry;
/// the last error if it never does. The metadata endpoints can lag a container's start.
async fn retry_for<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    wait: Duration,
    url: &str,
    waiting: &str,
    mut attempt: impl FnMut() -> F,
) -> Result<T, E> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut backoff = Backoff::new(STARTUP_RETRY);
    loop {
        let delay = backoff.next_delay();
        match attempt().await {
            Err(problem) if tokio::time::Instant::now() + delay < deadline => {
                tracing::warn!(url, %problem, retry_in_ms = delay.as_millis() as u64, "{waiting}");
                tokio::time::sleep(delay).await;
            }
            outcome => return outcome,
        }
    }
}

fn parse_task_identity(body: &[u8]) -> Result<TaskIdentity, SidecarError> {
    let metadata = TaskMetadata::parse(body).map_err(SidecarError::NoTaskMetadata)?;
    let task: TaskArn =
        metadata.task_arn.parse().map_err(|e| SidecarError::NoTaskMetadata(format!("{e}")))?;
    let network = metadata.containers.iter().flat_map(|c| c.networks.first()).next();
    let network_mode = match network {
        Some(n) if n.mode == "awsvpc" => {
            NetworkMode::Awsvpc(n.eni_addresses().map_err(SidecarError::NoTaskMetadata)?)
        }
        Some(n) if n.mode == "host" => NetworkMode::Host,
        _ => NetworkMode::Bridge,
    };
    let cluster = task.cluster_arn(&metadata.cluster);
    Ok(TaskIdentity { task, cluster, network_mode })
}

/// GETs a loopback or link-local URL; the body on 200, a description otherwise.
async fn get(
    client: &Client<HttpConnector, Empty<Bytes>>,
    url: &str,
    timeout: Duration,
) -> Result<Bytes, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL {url:?}: {e}"))?;
    let call = async {
        let response = client.get(uri).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        if status.is_success() { Ok(body) } else { Err(format!("HTTP {status}")) }
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An awsvpc task's `/task` document with these `Networks` fields besides the mode.
    fn awsvpc_doc(fields: &str) -> String {
        format!(
            r#"{{"Cluster":"c","TaskARN":"arn:aws:ecs:us-east-1:1:task/c/abc","Containers":[{{"Name":"x",
            "Type":"NORMAL","KnownStatus":"RUNNING","DesiredStatus":"RUNNING",
            "Networks":[{{"NetworkMode":"awsvpc"{fields}}}]}}]}}"#
        )
    }

    #[test]
    fn an_awsvpc_task_has_the_enis_ipv4_ipv6_or_both() {
        let mode = |fields: &str| parse_task_identity(awsvpc_doc(fields).as_bytes()).map(|t| t.network_mode);
        let v4: std::net::Ipv4Addr = "10.0.1.5".parse().unwrap();
        let v6: std::net::Ipv6Addr = "2600:1f18::5".parse().unwrap();
        let dual = mode(
            r#","IPv4Addresses":["10.0.1.5"],"IPv6Addresses":["2600:1f18::5"],"IPv6SubnetCIDRBlock":"2600:1f18::/64""#,
        );
        assert_eq!(dual.unwrap(), NetworkMode::Awsvpc(TaskAddresses::Dual(v4, v6)));
        // An IPv6-only ENI: the agent omits every IPv4 field.
        let only_v6 =
            mode(r#","IPv6Addresses":["2600:1f18::5"],"SubnetGatewayIpv6Address":"2600:1f18::1/64""#);
        assert_eq!(only_v6.unwrap(), NetworkMode::Awsvpc(TaskAddresses::Ipv6(v6)));
        let err = mode(r#","IPv6Addresses":["2600:1f18::zz"]"#).unwrap_err().to_string();
        assert!(err.contains("`IPv6Addresses` holds `2600:1f18::zz`, not an address of its family"), "{err}");
        let err = mode("").unwrap_err().to_string();
        assert!(err.contains("neither `IPv4Addresses` nor `IPv6Addresses`"), "{err}");
    }

    #[test]
    fn parses_network_modes() {
        let doc = |mode: &str, ip: &str| {
            format!(
                r#"{{"Cluster":"arn:aws:ecs:us-east-1:1:cluster/c","TaskARN":"arn:aws:ecs:us-east-1:1:task/c/abc",
                "Containers":[{{"Name":"x","Type":"NORMAL","KnownStatus":"RUNNING","DesiredStatus":"RUNNING",
                "Networks":[{{"NetworkMode":"{mode}","IPv4Addresses":["{ip}"]}}]}}]}}"#
            )
        };
        let bridge = parse_task_identity(doc("bridge", "172.17.0.2").as_bytes()).expect("bridge");
        assert_eq!(bridge.network_mode, NetworkMode::Bridge);
        assert_eq!(bridge.cluster, "arn:aws:ecs:us-east-1:1:cluster/c");
        assert_eq!(bridge.task.id(), "abc");
        let host = parse_task_identity(doc("host", "").as_bytes()).expect("host");
        assert_eq!(host.network_mode, NetworkMode::Host);
        let vpc = parse_task_identity(doc("awsvpc", "10.0.1.5").as_bytes()).expect("awsvpc");
        assert_eq!(vpc.network_mode, NetworkMode::Awsvpc(std::net::Ipv4Addr::new(10, 0, 1, 5).into()));
        let err = parse_task_identity(doc("awsvpc", "").as_bytes()).expect_err("no ip");
        assert!(err.to_string().contains("lists no address"), "{err}");
        let short = br#"{"Cluster":"prod","TaskARN":"arn:aws:ecs:eu-west-1:2:task/prod/abc","Containers":[
            {"Name":"x","Type":"NORMAL","KnownStatus":"RUNNING","DesiredStatus":"RUNNING"}]}"#;
        let short = parse_task_identity(short).expect("a short cluster name");
        assert_eq!(short.cluster, "arn:aws:ecs:eu-west-1:2:cluster/prod");
        let err = parse_task_identity(b"{}").expect_err("garbage");
        assert!(err.to_string().contains("not the task metadata v4 format"), "{err}");
        let empty =
            br#"{"Cluster":"prod","TaskARN":"arn:aws:ecs:eu-west-1:2:task/prod/abc","Containers":[]}"#;
        let err = parse_task_identity(empty).expect_err("no containers");
        assert!(err.to_string().contains("`Containers` is empty"), "{err}");
    }
}
