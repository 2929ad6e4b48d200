//! Stand-ins for the two endpoints ECS and EC2 give a task, served on loopback and built on every
//! request from what the real Docker engine runs:
//! - ECS task metadata v4: `GET /v4/<container-name>` and `GET /v4/<container-name>/task`, in the
//!   shape of an EC2 task or of a Fargate one ([`LaunchType`]);
//! - EC2 instance metadata with IMDSv2 sessions: `PUT /latest/api/token`, then
//!   `GET /latest/meta-data/{local-ipv4,instance-id}` with the token; or, as hardened hosts have it,
//!   refused, never answering, or with a hop limit of 1 ([`ImdsMode`]);
//! - the ECS container metadata file, in its two stages ([`ContainerMetadataFile`]).
//!
//! Each container the task definition names is a Docker container labelled with the task's ARN; the
//! agent's own pause container of an awsvpc task is described without one (nothing here needs it to
//! run). Which rule of the real endpoint each part follows is said where it is built; the sources are
//! the ECS Developer Guide's "Amazon ECS task metadata endpoint version 4" (with its "JSON response"
//! and "examples" pages), its Fargate variants ("... for tasks on Fargate"), and the ECS agent's
//! source (amazon-ecs-agent: `agent/handlers/v4`, `ecs-agent/api/container/status`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
use bytes::Bytes;
use ecssd_records::TaskAddresses;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the pretend task is networked; decides what the metadata reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    Bridge,
    Host,
    /// The task's ENI addresses: IPv4, IPv6 (an IPv6-only subnet) or both (dual-stack).
    Awsvpc(TaskAddresses),
}

impl NetworkMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Bridge => "bridge",
            Self::Host => "host",
            Self::Awsvpc(_) => "awsvpc",
        }
    }
}

/// How task metadata names the cluster: "the Amazon Resource Name (ARN) or short name of the Amazon
/// ECS cluster" (ECS Developer Guide, "Task metadata endpoint version 4"), so a sidecar must take both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterForm {
    Arn,
    ShortName,
}

/// Where the task runs, which decides the shape of its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchType {
    /// An EC2 container instance: Docker's ids and names, the agent's port bindings.
    Ec2,
    /// Fargate: awsvpc only ([`MetadataServer::start`] refuses another mode), the cluster as an ARN,
    /// `DockerId`s that are not Docker's, no host ports. (Nor a Docker socket or IMDS for the task;
    /// this stand-in still serves IMDS, so tests give the sidecar no Docker socket themselves.)
    Fargate,
}

impl LaunchType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ec2 => "EC2",
            Self::Fargate => "FARGATE",
        }
    }
}

/// What the stand-ins say about the task and its host.
#[derive(Debug, Clone)]
pub struct MetadataConfig {
    pub task_arn: String,
    pub cluster_arn: String,
    /// How the `Cluster` field gives `cluster_arn`.
    pub cluster_form: ClusterForm,
    pub network_mode: NetworkMode,
    /// The instance's private IP as IMDS reports it; 127.0.0.1 here, where ports are published.
    pub host_ip: Ipv4Addr,
    pub instance_id: String,
    pub launch_type: LaunchType,
}

/// How EC2 instance metadata behaves for the task's containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImdsMode {
    /// Answers, with IMDSv2 sessions.
    Serving,
    /// Connections are refused, as with a firewall rule that rejects containers' traffic to
    /// 169.254.169.254 (the ECS best practices guide's hardening, done with `REJECT`).
    /// [`MetadataServer::imds_endpoint`] then names a loopback port bound but not listening.
    Refused,
    /// Connections are accepted and requests read, and nothing is ever answered: a host that drops
    /// the traffic beyond the first hop.
    Unanswered,
    /// The instance's `HttpPutResponseHopLimit` is 1 (EC2's default) and the caller is a bridge-mode
    /// container, one hop further: the session token `PUT` is accepted at TCP level and its answer
    /// never arrives, while `GET`s are answered (401 without a token, IMDSv2 being required). EC2
    /// User Guide, "Configure the instance metadata options" (hop limit: "the number of network
    /// hops that the PUT response is allowed to make").
    HopLimitOne,
}

/// The IMDS stand-in's behaviour and what it saw, shared with its connections.
#[derive(Debug)]
struct ImdsControl {
    mode: Mutex<ImdsMode>,
    /// The instance's addresses IMDS gives (`local-ipv4`, `ipv6`), when a test set them; otherwise
    /// the config's `host_ip` and no IPv6 address.
    host: Mutex<Option<TaskAddresses>>,
    /// Session token requests (`PUT /latest/api/token`) received, answered or not.
    token_requests: AtomicUsize,
    /// Ends when the server is dropped: requests held unanswered give up then.
    closed: watch::Receiver<()>,
}

impl ImdsControl {
    fn mode(&self) -> ImdsMode {
        *self.mode.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn host(&self, config: &MetadataConfig) -> TaskAddresses {
        let set = *self.host.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        set.unwrap_or(TaskAddresses::Ipv4(config.host_ip))
    }
}

/// The name task metadata gives the agent's pause container of an awsvpc task.
pub const PAUSE_CONTAINER: &str = "~internal~ecs~pause";

/// The running stand-in server; stops when dropped.
#[derive(Debug)]
pub struct MetadataServer {
    addr: SocketAddr,
    /// While false, task metadata answers 503, like an agent that has not caught up with a new task.
    available: Arc<AtomicBool>,
    /// Once true, the task's `DesiredStatus` is STOPPED: ECS has decided to stop it.
    stop_requested: Arc<AtomicBool>,
    /// Task metadata requests (`/v4/...`) received, answered or not.
    task_requests: Arc<AtomicUsize>,
    resets: Arc<Resets>,
    imds: Arc<ImdsControl>,
    /// Bound and never listening: a loopback port where connections are refused ([`ImdsMode::Refused`]).
    refusing: TcpSocket,
    /// Dropped with the server: wakes requests held unanswered.
    _close: watch::Sender<()>,
    config: MetadataConfig,
    serving: JoinHandle<()>,
}

/// IMDS connections still to reset, and how many were.
#[derive(Debug, Default)]
struct Resets {
    pending: AtomicUsize,
    done: AtomicUsize,
}

impl Resets {
    /// Claims one pending reset, if any.
    fn claim(&self) -> bool {
        self.pending.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }
}

const IMDS_TOKEN: &str = "ecssd-test-imds-token";

impl MetadataServer {
    pub async fn start(docker: Docker, config: MetadataConfig) -> anyhow::Result<Self> {
        // Fargate tasks are networked awsvpc, and only so (ECS Developer Guide, "Amazon ECS task
        // networking options for Fargate").
        if config.launch_type == LaunchType::Fargate && !matches!(config.network_mode, NetworkMode::Awsvpc(_))
        {
            anyhow::bail!("a Fargate task is networked awsvpc, not {:?}", config.network_mode);
        }
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let available = Arc::new(AtomicBool::new(true));
        let stop_requested = Arc::new(AtomicBool::new(false));
        let resets = Arc::new(Resets::default());
        let task_requests = Arc::new(AtomicUsize::new(0));
        let counted = task_requests.clone();
        let refusing = TcpSocket::new_v4()?;
        refusing.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let (close, closed) = watch::channel(());
        let imds = Arc::new(ImdsControl {
            mode: Mutex::new(ImdsMode::Serving),
            host: Mutex::new(None),
            token_requests: AtomicUsize::new(0),
            closed,
        });
        let kept = config.clone();
        let state = Arc::new((docker, config, available.clone(), stop_requested.clone()));
        let accept_resets = resets.clone();
        let accept_imds = imds.clone();
        let serving = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                let resets = accept_resets.clone();
                let counted = counted.clone();
                let imds = accept_imds.clone();
                tokio::spawn(async move {
                    if resets.pending.load(Ordering::SeqCst) > 0 && is_imds(&stream).await && resets.claim() {
                        // RST without a response: SO_LINGER 0, then close.
                        let _ = stream.set_zero_linger();
                        // Counted first, so a client that saw the reset sees the count.
                        resets.done.fetch_add(1, Ordering::SeqCst);
                        drop(stream);
                        return;
                    }
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        let counted = counted.clone();
                        let imds = imds.clone();
                        async move {
                            if let Some(held) = unanswered_imds(&imds, &req) {
                                held.await;
                                return Ok(reply(StatusCode::SERVICE_UNAVAILABLE, "the stand-in stopped"));
                            }
                            if req.uri().path().starts_with("/v4/") {
                                counted.fetch_add(1, Ordering::SeqCst);
                            }
                            if req.uri().path().starts_with("/v4/") && !state.2.load(Ordering::SeqCst) {
                                return Ok::<_, Infallible>(reply(StatusCode::SERVICE_UNAVAILABLE, ""));
                            }
                            let stopping = state.3.load(Ordering::SeqCst);
                            Ok::<_, Infallible>(handle(&state.0, &state.1, &imds, stopping, req).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            available,
            stop_requested,
            task_requests,
            resets,
            imds,
            refusing,
            _close: close,
            config: kept,
            serving,
        })
    }

    /// Makes EC2 instance metadata behave as a hardened host's does (see [`ImdsMode`]); a sidecar
    /// started afterwards gets the matching [`imds_endpoint`](Self::imds_endpoint).
    pub fn set_imds(&self, mode: ImdsMode) {
        *self.imds.mode.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = mode;
    }

    /// Makes EC2 instance metadata give the instance these addresses: a dual-stack or an IPv6-only
    /// instance (its `local-ipv4` then answers 404).
    pub fn set_imds_host(&self, host: TaskAddresses) {
        *self.imds.host.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(host);
    }

    /// IMDSv2 session token requests (`PUT /latest/api/token`) received so far, answered or not.
    pub fn imds_token_requests(&self) -> usize {
        self.imds.token_requests.load(Ordering::SeqCst)
    }

    /// The task's ARN, as its metadata gives it.
    pub fn task_arn(&self) -> &str {
        &self.config.task_arn
    }

    /// Resets the next `n` connections whose first request is for IMDS (`PUT /latest/api/token`,
    /// `GET /latest/meta-data/...`): closed with a TCP RST and no response, as a flaky instance
    /// metadata service does. Task metadata connections are untouched. Replaces any count left.
    pub fn reset_imds_connections(&self, n: usize) {
        self.resets.pending.store(n, Ordering::SeqCst);
    }

    /// IMDS connections reset so far.
    pub fn imds_resets_done(&self) -> usize {
        self.resets.done.load(Ordering::SeqCst)
    }

    /// Task metadata requests received so far (`/v4/...`), answered or failed: a reader's polls.
    pub fn task_requests(&self) -> usize {
        self.task_requests.load(Ordering::SeqCst)
    }

    /// Makes task metadata answer (true) or fail with 503 (false).
    pub fn set_available(&self, available: bool) {
        self.available.store(available, Ordering::SeqCst);
    }

    /// Makes task metadata say what it says once ECS has decided to stop the task (StopTask, a
    /// deployment): the task's and every container's `DesiredStatus` STOPPED, while they still run.
    pub fn request_stop(&self) {
        self.stop_requested.store(true, Ordering::SeqCst);
    }

    /// The value of `ECS_CONTAINER_METADATA_URI_V4` for the container named `container`.
    pub fn task_metadata_uri(&self, container: &str) -> String {
        format!("http://{}/v4/{container}", self.addr)
    }

    /// The value of `AWS_EC2_METADATA_SERVICE_ENDPOINT`: this server, or in [`ImdsMode::Refused`] a
    /// loopback port that refuses connections.
    pub fn imds_endpoint(&self) -> String {
        match (self.imds.mode(), self.refusing.local_addr()) {
            (ImdsMode::Refused, Ok(refusing)) => format!("http://{refusing}"),
            _ => format!("http://{}", self.addr),
        }
    }
}

impl Drop for MetadataServer {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

/// For an IMDS request this host does not answer ([`ImdsMode::Unanswered`], [`ImdsMode::HopLimitOne`]):
/// a future that ends only when the server is dropped. Counts token requests.
fn unanswered_imds(
    imds: &ImdsControl,
    req: &Request<hyper::body::Incoming>,
) -> Option<impl std::future::Future<Output = ()> + use<>> {
    let token = req.method() == Method::PUT && req.uri().path() == "/latest/api/token";
    if token {
        imds.token_requests.fetch_add(1, Ordering::SeqCst);
    }
    let held = match imds.mode() {
        ImdsMode::Unanswered => req.uri().path().starts_with("/latest/"),
        ImdsMode::HopLimitOne => token,
        ImdsMode::Serving | ImdsMode::Refused => false,
    };
    let mut closed = imds.closed.clone();
    held.then_some(async move {
        // Err once the sender is dropped with the server.
        let _ = closed.changed().await;
    })
}

/// Whether the connection's first request is for IMDS, judged from its request line, peeked so hyper
/// still reads it whole.
async fn is_imds(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 64];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let n = match stream.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let seen = &buf[..n];
        // Enough to tell: the longest prefix matched below, or the whole request line.
        if n >= "GET /latest/meta-data/".len() || seen.contains(&b'\n') {
            return seen.starts_with(b"PUT /latest/api/token ")
                || seen.starts_with(b"GET /latest/meta-data/");
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        // Peek returns what is there at once; wait a little for the rest of the request line.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

async fn handle(
    docker: &Docker,
    config: &MetadataConfig,
    imds: &ImdsControl,
    stopping: bool,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    if config.launch_type == LaunchType::Fargate && path.starts_with("/latest/") {
        // A Fargate task cannot retrieve EC2 instance metadata; it has task metadata instead (AWS re:Post
        // Knowledge Center, "ecs-fargate-metadata-errors"). A sidecar on Fargate must never need IMDS.
        return reply(StatusCode::NOT_FOUND, "no EC2 instance metadata on Fargate");
    }
    if req.method() == Method::PUT && path == "/latest/api/token" {
        // Like IMDS: the session TTL is required, and echoed back with the token.
        let Some(ttl) = req.headers().get("x-aws-ec2-metadata-token-ttl-seconds").cloned() else {
            return reply(StatusCode::BAD_REQUEST, "missing x-aws-ec2-metadata-token-ttl-seconds");
        };
        let mut response = reply(StatusCode::OK, IMDS_TOKEN);
        response.headers_mut().insert("x-aws-ec2-metadata-token-ttl-seconds", ttl);
        return response;
    }
    if let Some(item) = path.strip_prefix("/latest/meta-data/") {
        let token = req.headers().get("x-aws-ec2-metadata-token").and_then(|v| v.to_str().ok());
        if token != Some(IMDS_TOKEN) {
            return reply(StatusCode::UNAUTHORIZED, "");
        }
        return match item {
            // Either "is not set and results in an HTTP 404 response" when the instance lacks it (EC2
            // User Guide, "Instance metadata categories", local-ipv4 and ipv6).
            "local-ipv4" => match imds.host(config).ipv4() {
                Some(ipv4) => reply(StatusCode::OK, ipv4.to_string()),
                None => reply(StatusCode::NOT_FOUND, ""),
            },
            "ipv6" => match imds.host(config).ipv6() {
                Some(ipv6) => reply(StatusCode::OK, ipv6.to_string()),
                None => reply(StatusCode::NOT_FOUND, ""),
            },
            "instance-id" => reply(StatusCode::OK, config.instance_id.clone()),
            _ => reply(StatusCode::NOT_FOUND, ""),
        };
    }
    let Some(rest) = path.strip_prefix("/v4/") else {
        return reply(StatusCode::NOT_FOUND, "");
    };
    let desired = if stopping { "STOPPED" } else { "RUNNING" };
    let containers = match task_containers(docker, config, desired).await {
        Ok(containers) => containers,
        Err(e) => return reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let body = match rest.split_once('/') {
        Some((_, "task")) => task_document(config, containers, desired),
        None => match containers.into_iter().find(|c| c["Name"] == rest) {
            Some(container) => container,
            None => return reply(StatusCode::NOT_FOUND, format!("no container {rest} in the task")),
        },
        Some(_) => return reply(StatusCode::NOT_FOUND, ""),
    };
    reply(StatusCode::OK, body.to_string())
}

fn task_document(config: &MetadataConfig, containers: Vec<Value>, desired: &str) -> Value {
    // "The Amazon Resource Name (ARN) or short name of the Amazon ECS cluster" ("Amazon ECS task
    // metadata V4 JSON response"); Fargate gives the ARN ("Amazon ECS task metadata v4 examples for
    // tasks on Fargate").
    let cluster = match (config.launch_type, config.cluster_form) {
        (LaunchType::Fargate, _) | (_, ClusterForm::Arn) => config.cluster_arn.as_str(),
        (LaunchType::Ec2, ClusterForm::ShortName) => {
            config.cluster_arn.rsplit('/').next().unwrap_or_default()
        }
    };
    json!({
        "Cluster": cluster,
        "TaskARN": config.task_arn,
        "Family": FAMILY,
        "Revision": REVISION,
        "DesiredStatus": desired,
        "KnownStatus": "RUNNING",
        // "The launch type the task is using" ("Amazon ECS task metadata V4 JSON response").
        "LaunchType": config.launch_type.as_str(),
        "AvailabilityZone": "us-east-1a",
        "Containers": containers,
    })
}

/// The task definition the test tasks claim (as `docker::Task` labels their containers).
const FAMILY: &str = "ecssd-test";
const REVISION: &str = "1";

/// The task's id, the last part of its ARN.
fn task_id(config: &MetadataConfig) -> &str {
    config.task_arn.rsplit('/').next().unwrap_or_default()
}

/// A number from `seed`, the same for the same seed, for ids that must be stable between requests.
fn stable_number(seed: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    seed.hash(&mut hasher);
    hasher.finish()
}

/// The `DockerId` task metadata gives a container Docker knows as `docker_id` (or the pause container).
fn metadata_docker_id(config: &MetadataConfig, docker_id: &str) -> String {
    match config.launch_type {
        LaunchType::Ec2 => docker_id.to_owned(),
        // On Fargate, a 32-digit hex id followed by a 10-digit number ("Amazon ECS task metadata v4
        // JSON response for tasks on Fargate", `DockerId`): the task's id, a hyphen, a number
        // (as in that guide's examples).
        LaunchType::Fargate => {
            let number = stable_number(docker_id) % 10_000_000_000;
            format!("{}-{number:010}", task_id(config).replace('-', ""))
        }
    }
}

/// The containers' network as task metadata v4 gives it: the mode, the address; an ENI's details.
fn network(config: &MetadataConfig, bridge_ip: String) -> Value {
    match config.network_mode {
        // "awsvpc": every container of the task has the ENI's addresses, with the ENI's details
        // ("Amazon ECS task metadata v4 examples", the awsvpc and Fargate ones, which show IPv4
        // only). The documents name no IPv6 field; the agent's are `IPv6Addresses` and
        // `IPv6SubnetCIDRBlock`, and for an IPv6-only ENI `SubnetGatewayIpv6Address` with its prefix,
        // every field omitted when empty, so an IPv6-only task has no `IPv4Addresses` at all
        // (amazon-ecs-agent, ecs-agent/tmds/handlers/v4/state `NetworkInterfaceProperties`, and
        // agent/api/task's IPv6-only ENI handling, v1.95.0).
        NetworkMode::Awsvpc(eni) => {
            let mut network = json!({"NetworkMode": config.network_mode.as_str(), "AttachmentIndex": 0});
            let fields = network.as_object_mut().expect("an object");
            let host = |mac_end: [u8; 3], dns: String| {
                let [x, y, z] = mac_end;
                (format!("0e:9e:32:{x:02x}:{y:02x}:{z:02x}"), dns)
            };
            let (mac, dns_name) = match (eni.ipv4(), eni.ipv6()) {
                (Some(v4), _) => {
                    let [a, b, c, d] = v4.octets();
                    fields.insert("IPv4Addresses".into(), json!([v4.to_string()]));
                    fields.insert("IPv4SubnetCIDRBlock".into(), json!(format!("{a}.{b}.{c}.0/24")));
                    fields.insert("SubnetGatewayIpv4Address".into(), json!(format!("{a}.{b}.{c}.1/24")));
                    host([a, c, d], format!("ip-{a}-{b}-{c}-{d}.ec2.internal"))
                }
                (None, Some(v6)) => {
                    let [.., x, y, z] = v6.octets();
                    host([x, y, z], format!("i-0ecssd{x:02x}{y:02x}{z:02x}.ec2.internal"))
                }
                (None, None) => unreachable!("TaskAddresses has one address at least"),
            };
            fields.insert("MACAddress".into(), json!(mac));
            fields.insert("PrivateDNSName".into(), json!(dns_name));
            if let Some(v6) = eni.ipv6() {
                let prefix = Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1));
                fields.insert("IPv6Addresses".into(), json!([v6.to_string()]));
                fields.insert("IPv6SubnetCIDRBlock".into(), json!(format!("{prefix}/64")));
                if eni.ipv4().is_none() {
                    fields.insert("SubnetGatewayIpv6Address".into(), json!(format!("{prefix}1/64")));
                }
            }
            network
        }
        NetworkMode::Host => {
            json!({"NetworkMode": config.network_mode.as_str(), "IPv4Addresses": [config.host_ip.to_string()]})
        }
        NetworkMode::Bridge => {
            json!({"NetworkMode": config.network_mode.as_str(), "IPv4Addresses": [bridge_ip]})
        }
    }
}

/// The agent's pause container of an awsvpc task, which holds the ENI: "Name":
/// "~internal~ecs~pause", "Type": "CNI_PAUSE", status RESOURCES_PROVISIONED, the agent's labels only
/// ("Amazon ECS task metadata v3 examples for tasks on Fargate"; amazon-ecs-agent: the container type
/// `ContainerCNIPause`, status `ContainerResourcesProvisioned`). Its desired status follows the task's
/// once ECS stops it.
fn pause_container(config: &MetadataConfig, desired: &str) -> Value {
    let docker_id = match config.launch_type {
        LaunchType::Ec2 => {
            (0..4).map(|i| format!("{:016x}", stable_number(&format!("{}/{i}", config.task_arn)))).collect()
        }
        LaunchType::Fargate => format!("{}/pause", config.task_arn),
    };
    let docker_name = match config.launch_type {
        LaunchType::Ec2 => {
            format!("ecs-{FAMILY}-{REVISION}-internalecspause-{:016x}", stable_number(&config.task_arn))
        }
        LaunchType::Fargate => PAUSE_CONTAINER.to_owned(),
    };
    let desired = if desired == "STOPPED" { "STOPPED" } else { "RESOURCES_PROVISIONED" };
    json!({
        "DockerId": metadata_docker_id(config, &docker_id),
        "Name": PAUSE_CONTAINER,
        "DockerName": docker_name,
        "Image": "amazon/amazon-ecs-pause:0.1.0",
        "Labels": {
            "com.amazonaws.ecs.cluster": config.cluster_arn,
            "com.amazonaws.ecs.container-name": PAUSE_CONTAINER,
            "com.amazonaws.ecs.task-arn": config.task_arn,
            "com.amazonaws.ecs.task-definition-family": FAMILY,
            "com.amazonaws.ecs.task-definition-version": REVISION,
        },
        "DesiredStatus": desired,
        "KnownStatus": "RESOURCES_PROVISIONED",
        "Type": "CNI_PAUSE",
        "Networks": [network(config, String::new())],
    })
}

/// A container's `KnownStatus` from Docker's state: the agent's container statuses NONE, PULLED,
/// CREATED, RUNNING, RESOURCES_PROVISIONED, STOPPED (amazon-ecs-agent `ContainerStatus`).
fn known_status(state: &bollard::models::ContainerState) -> &'static str {
    use bollard::models::ContainerStateStatusEnum as State;
    match state.status {
        Some(State::CREATED) => "CREATED",
        _ if state.running.unwrap_or(false) => "RUNNING",
        _ => "STOPPED",
    }
}

/// The `Health` of a container with a healthcheck: the agent reports Docker's `starting` as UNKNOWN,
/// `healthy` and `unhealthy` as HEALTHY and UNHEALTHY (amazon-ecs-agent: `ContainerHealthStatus`
/// and its `BackendStatus`), since when, and the last check's output and exit code
/// (`statusSince`, `output`, `exitCode`, each omitted when empty). None without a healthcheck: only a
/// container whose task definition has a health check has `Health` ("Amazon ECS task metadata V4
/// JSON response").
fn health(state: &bollard::models::ContainerState) -> Option<Value> {
    use bollard::models::HealthStatusEnum as Status;
    let docker_health = state.health.as_ref()?;
    let status = match docker_health.status? {
        Status::HEALTHY => "HEALTHY",
        Status::UNHEALTHY => "UNHEALTHY",
        Status::STARTING => "UNKNOWN",
        Status::NONE | Status::EMPTY => return None,
    };
    let mut health = json!({"status": status});
    // Serialized, so as not to depend on how bollard is built to give dates.
    let last =
        docker_health.log.as_ref().and_then(|log| log.last()).and_then(|l| serde_json::to_value(l).ok());
    if let Some(last) = last {
        if let Some(end) = last["End"].as_str().filter(|e| !e.is_empty()) {
            health["statusSince"] = json!(end);
        }
        if let Some(output) = last["Output"].as_str().filter(|o| !o.is_empty()) {
            health["output"] = json!(output);
        }
        if let Some(code) = last["ExitCode"].as_i64().filter(|c| *c != 0) {
            health["exitCode"] = json!(code);
        }
    }
    Some(health)
}

/// The task's containers as task metadata v4 describes them, from Docker inspect, after the pause
/// container in awsvpc mode.
async fn task_containers(
    docker: &Docker,
    config: &MetadataConfig,
    desired: &str,
) -> anyhow::Result<Vec<Value>> {
    let filter = format!("com.amazonaws.ecs.task-arn={}", config.task_arn);
    let filters = HashMap::from([("label".to_owned(), vec![filter])]);
    let listed = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await?;
    let mut containers = Vec::new();
    if let NetworkMode::Awsvpc(_) = config.network_mode {
        containers.push(pause_container(config, desired));
    }
    let awsvpc = matches!(config.network_mode, NetworkMode::Awsvpc(_));
    for summary in listed {
        let Some(id) = summary.id else { continue };
        let inspect = docker.inspect_container(&id, None::<InspectContainerOptions>).await?;
        let mut labels = inspect.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
        // The bed's own bookkeeping, not the task definition's.
        labels.remove(crate::docker::TEST_LABEL);
        let name = labels.get("com.amazonaws.ecs.container-name").cloned().unwrap_or_default();
        let state = inspect.state.clone().unwrap_or_default();
        let settings = inspect.network_settings.clone().unwrap_or_default();
        let bridge_ip = settings
            .networks
            .as_ref()
            .and_then(|n| n.values().find_map(|e| e.ip_address.clone()))
            .unwrap_or_default();
        let mut ports = Vec::new();
        for (key, bindings) in settings.ports.unwrap_or_default() {
            let (port, protocol) = key.split_once('/').unwrap_or((&key, "tcp"));
            let port = port.parse::<u16>().unwrap_or(0);
            if awsvpc {
                // The agent leaves `HostPort` out in awsvpc mode (`json:",omitempty"` on a port it
                // does not set), and `HostIp` with it: the task's ENI has the container's ports.
                ports.push(json!({"ContainerPort": port, "Protocol": protocol}));
                continue;
            }
            for binding in bindings.unwrap_or_default() {
                ports.push(json!({
                    "ContainerPort": port,
                    "Protocol": protocol,
                    "HostPort": binding.host_port.and_then(|p| p.parse::<u16>().ok()).unwrap_or(0),
                    "HostIp": binding.host_ip.unwrap_or_default(),
                }));
            }
        }
        ports.sort_by_key(|p| (p["ContainerPort"].as_u64(), p["Protocol"].as_str().map(String::from)));
        ports.dedup();
        // On EC2 Docker's name of the container; on Fargate the task definition's ("Amazon ECS task
        // metadata v4 examples for tasks on Fargate").
        let docker_name = match config.launch_type {
            LaunchType::Ec2 => inspect.name.clone().unwrap_or_default().trim_start_matches('/').to_owned(),
            LaunchType::Fargate => name.clone(),
        };
        let mut container = json!({
            "DockerId": metadata_docker_id(config, &id),
            "Name": name,
            "DockerName": docker_name,
            "Image": inspect.config.and_then(|c| c.image).unwrap_or_default(),
            "DesiredStatus": desired,
            "KnownStatus": known_status(&state),
            // "NORMAL" for the task definition's containers; the agent's own have other types.
            "Type": "NORMAL",
            "Networks": [network(config, bridge_ip)],
        });
        // `Labels` is "omitted if there are no labels applied", `Ports` "if there are no exposed
        // ports" (the task metadata JSON response pages, v3 and v4).
        if !labels.is_empty() {
            container["Labels"] = json!(labels);
        }
        if !ports.is_empty() {
            container["Ports"] = json!(ports);
        }
        if let Some(health) = health(&state) {
            container["Health"] = health;
        }
        containers.push(container);
    }
    Ok(containers)
}

/// The ECS container metadata file of the task's sidecar container, as the ECS agent writes it when
/// its configuration has `ECS_ENABLE_CONTAINER_METADATA=true` (ECS Developer Guide, "Amazon ECS
/// container metadata file" and "Amazon ECS container metadata file format"), in a directory of its
/// own, removed when dropped. Give the sidecar [`path`](Self::path) as `ECS_CONTAINER_METADATA_FILE`.
///
/// The agent writes it in two stages (amazon-ecs-agent, `agent/containermetadata`): at container
/// creation what the task and the agent know (`parseMetadataAtContainerCreate`: cluster, task, the
/// container instance, the host's addresses), with status `INITIAL`, the zero value, which
/// `MetadataFileStatus`'s `omitempty` leaves out; then, once the container runs, the same plus what
/// Docker says (container id, image, ports, networks) with `MetadataFileStatus` `READY`, "usually
/// within 1 second after the container starts" (the format page). Each stage replaces the file whole.
#[derive(Debug)]
pub struct ContainerMetadataFile {
    dir: PathBuf,
    path: PathBuf,
    config: MetadataConfig,
    host: TaskAddresses,
}

impl ContainerMetadataFile {
    /// The first stage of the sidecar's (container `ecssd`) file on a host whose private addresses
    /// are `host`.
    pub fn initial(metadata: &MetadataServer, host: impl Into<TaskAddresses>) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "ecssd-container-metadata-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("ecs-container-metadata.json");
        let file = Self { dir, path, config: metadata.config.clone(), host: host.into() };
        file.write(&file.document(false))?;
        Ok(file)
    }

    /// The second stage: `READY`.
    pub fn make_ready(&self) -> anyhow::Result<()> {
        self.write(&self.document(true))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn document(&self, ready: bool) -> Value {
        let config = &self.config;
        let container_instance = format!(
            "{}:container-instance/{}/{:032x}",
            config.cluster_arn.split(":cluster/").next().unwrap_or_default(),
            config.cluster_arn.rsplit('/').next().unwrap_or_default(),
            stable_number(&config.instance_id)
        );
        let mut document = json!({
            // As the format page's example gives it.
            "Cluster": config.cluster_arn,
            "ContainerInstanceARN": container_instance,
            "TaskARN": config.task_arn,
            "TaskDefinitionFamily": FAMILY,
            "TaskDefinitionRevision": REVISION,
            "ContainerName": "ecssd",
            "AvailabilityZone": "us-east-1a",
        });
        // The agent writes `HostIPv6Address` on IPv6-only instances only (amazon-ecs-agent 1.98.0,
        // `agent/containermetadata`); the format page names neither it nor a dual-stack host's IPv6.
        match self.host {
            TaskAddresses::Ipv4(ipv4) | TaskAddresses::Dual(ipv4, _) => {
                document["HostPrivateIPv4Address"] = json!(ipv4.to_string());
            }
            TaskAddresses::Ipv6(ipv6) => document["HostIPv6Address"] = json!(ipv6.to_string()),
        }
        if ready {
            let docker_id = format!("{:016x}", stable_number(&format!("{}/ecssd", config.task_arn)));
            document["ContainerID"] = json!(docker_id.repeat(4));
            document["DockerContainerName"] = json!(format!("/ecs-{FAMILY}-{REVISION}-ecssd-{docker_id}"));
            document["ImageID"] = json!(format!("sha256:{}", docker_id.repeat(4)));
            document["ImageName"] = json!("ecssd-sidecar:latest");
            document["Networks"] =
                json!([{"NetworkMode": config.network_mode.as_str(), "IPv4Addresses": []}]);
            document["MetadataFileStatus"] = json!("READY");
        }
        document
    }

    /// Replaces the file whole (written beside it, then renamed), so no read sees half of it.
    fn write(&self, document: &Value) -> anyhow::Result<()> {
        let next = self.dir.join("ecs-container-metadata.json.next");
        std::fs::write(&next, serde_json::to_vec_pretty(document)?)?;
        std::fs::rename(&next, &self.path)?;
        Ok(())
    }
}

impl Drop for ContainerMetadataFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
