//! Stand-ins for the two endpoints ECS and EC2 give a task, served on loopback and built on every
//! request from what the real Docker engine runs:
//! - ECS task metadata v4: `GET /v4/<container-name>` and `GET /v4/<container-name>/task`;
//! - EC2 instance metadata with IMDSv2 sessions: `PUT /latest/api/token`, then
//!   `GET /latest/meta-data/{local-ipv4,instance-id}` with the token.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How the pretend task is networked; decides what the metadata reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    Bridge,
    Host,
    /// The task's ENI address is reported as the container's IPv4 address.
    Awsvpc(Ipv4Addr),
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
}

/// The running stand-in server; stops when dropped.
#[derive(Debug)]
pub struct MetadataServer {
    addr: SocketAddr,
    /// While false, task metadata answers 503, like an agent that has not caught up with a new task.
    available: Arc<AtomicBool>,
    /// Once true, the task's `DesiredStatus` is STOPPED: ECS has decided to stop it.
    stop_requested: Arc<AtomicBool>,
    resets: Arc<Resets>,
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
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let available = Arc::new(AtomicBool::new(true));
        let stop_requested = Arc::new(AtomicBool::new(false));
        let resets = Arc::new(Resets::default());
        let state = Arc::new((docker, config, available.clone(), stop_requested.clone()));
        let accept_resets = resets.clone();
        let serving = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                let resets = accept_resets.clone();
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
                        async move {
                            if req.uri().path().starts_with("/v4/") && !state.2.load(Ordering::SeqCst) {
                                return Ok::<_, Infallible>(reply(StatusCode::SERVICE_UNAVAILABLE, ""));
                            }
                            let stopping = state.3.load(Ordering::SeqCst);
                            Ok::<_, Infallible>(handle(&state.0, &state.1, stopping, req).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, available, stop_requested, resets, serving })
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

    /// The value of `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    pub fn imds_endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for MetadataServer {
    fn drop(&mut self) {
        self.serving.abort();
    }
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
    stopping: bool,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
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
            "local-ipv4" => reply(StatusCode::OK, config.host_ip.to_string()),
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
    let cluster = match config.cluster_form {
        ClusterForm::Arn => config.cluster_arn.as_str(),
        ClusterForm::ShortName => config.cluster_arn.rsplit('/').next().unwrap_or_default(),
    };
    json!({
        "Cluster": cluster,
        "TaskARN": config.task_arn,
        "Family": "ecssd-test",
        "Revision": "1",
        "DesiredStatus": desired,
        "KnownStatus": "RUNNING",
        "LaunchType": "EC2",
        "AvailabilityZone": "us-east-1a",
        "Containers": containers,
    })
}

/// The task's containers as task metadata v4 describes them, from Docker inspect.
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
    for summary in listed {
        let Some(id) = summary.id else { continue };
        let inspect = docker.inspect_container(&id, None::<InspectContainerOptions>).await?;
        let labels = inspect.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
        let state = inspect.state.clone().unwrap_or_default();
        let running = state.running.unwrap_or(false);
        let settings = inspect.network_settings.clone().unwrap_or_default();
        let bridge_ip = settings
            .networks
            .as_ref()
            .and_then(|n| n.values().find_map(|e| e.ip_address.clone()))
            .unwrap_or_default();
        let ip = match config.network_mode {
            NetworkMode::Awsvpc(eni) => eni.to_string(),
            NetworkMode::Host => config.host_ip.to_string(),
            NetworkMode::Bridge => bridge_ip,
        };
        let mut ports = Vec::new();
        for (key, bindings) in settings.ports.unwrap_or_default() {
            let (port, protocol) = key.split_once('/').unwrap_or((&key, "tcp"));
            for binding in bindings.unwrap_or_default() {
                ports.push(json!({
                    "ContainerPort": port.parse::<u16>().unwrap_or(0),
                    "Protocol": protocol,
                    "HostPort": binding.host_port.and_then(|p| p.parse::<u16>().ok()).unwrap_or(0),
                    "HostIp": binding.host_ip.unwrap_or_default(),
                }));
            }
        }
        let mut container = json!({
            "DockerId": id,
            "Name": labels.get("com.amazonaws.ecs.container-name").cloned().unwrap_or_default(),
            "DockerName": inspect.name.unwrap_or_default().trim_start_matches('/'),
            "Image": inspect.config.and_then(|c| c.image).unwrap_or_default(),
            "Labels": labels,
            "DesiredStatus": desired,
            "KnownStatus": if running { "RUNNING" } else { "STOPPED" },
            "Type": "NORMAL",
            "Networks": [{"NetworkMode": config.network_mode.as_str(), "IPv4Addresses": [ip]}],
            "Ports": ports,
        });
        if let Some(health) = state.health.and_then(|h| h.status) {
            container["Health"] = json!({"status": health.to_string().to_uppercase()});
        }
        containers.push(container);
    }
    Ok(containers)
}
