//! Task metadata v4 for a fleet of Fargate tasks that have no containers, for the benchmarks (the
//! issue 26 fleet of 1,000 metadata-mode sidecars on a 2-core machine): not one of the end-to-end
//! tests' stand-ins, which describe what Docker really runs ([`crate::metadata`]). The documents have
//! the shape of that stand-in's Fargate ones, fixed instead of read from Docker: nothing in a fleet
//! start changes after it.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// Task metadata v4 for a fleet of Fargate tasks that have no containers: `GET /v4/<n>/task` is task
/// `n`'s document (its `web` container announcing `SERVICE_80_NAME` by label, RUNNING, at its own ENI
/// address, and the sidecar's own container `ecssd`), `GET /v4/<n>` the sidecar's container. The
/// shape is the bed's Fargate stand-in's (`ecssd_tests::metadata`, `LaunchType::Fargate`), fixed
/// instead of read from Docker: nothing in the fleet bench changes after the start.
#[derive(Debug)]
pub struct FleetMetadata {
    addr: SocketAddr,
    serving: tokio::task::JoinHandle<()>,
}

const FLEET_CLUSTER: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/fleet";

impl FleetMetadata {
    pub async fn start(services: Vec<String>) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let services = Arc::new(services);
        let serving = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let services = services.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let services = services.clone();
                        async move { Ok::<_, Infallible>(fleet_document(&services, req.uri().path())) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, serving })
    }

    pub fn task_metadata_uri(&self, index: usize) -> String {
        format!("http://{}/v4/{index}", self.addr)
    }

    /// Fargate has no instance metadata; nothing answers there.
    pub fn imds_endpoint(&self) -> String {
        format!("http://{}/no-imds", self.addr)
    }

    /// What a sidecar of this fleet runs with, as on Fargate: metadata mode, no Docker socket.
    pub fn sidecar_env() -> Vec<(String, String)> {
        vec![
            ("DOCKER_HOST".to_owned(), "unix:///nonexistent/docker.sock".to_owned()),
            ("ECSSD_SOURCE".to_owned(), "metadata".to_owned()),
        ]
    }
}

impl Drop for FleetMetadata {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

fn fleet_document(services: &[String], path: &str) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
    };
    let Some(rest) = path.strip_prefix("/v4/") else { return reply(StatusCode::NOT_FOUND, String::new()) };
    let (index, task) = match rest.split_once('/') {
        Some((index, "task")) => (index, true),
        None => (rest, false),
        Some(_) => return reply(StatusCode::NOT_FOUND, String::new()),
    };
    let Some((index, service)) = index.parse::<usize>().ok().and_then(|i| Some((i, services.get(i)?))) else {
        return reply(StatusCode::NOT_FOUND, format!("no task {index}"));
    };
    let n = index + 1;
    let eni = Ipv4Addr::new(10, 1 + (n >> 16) as u8, (n >> 8) as u8, n as u8);
    let task_arn =
        format!("arn:aws:ecs:us-east-1:123456789012:task/fleet/{:032x}", 0x000f_1ee7_0000_u128 + n as u128);
    let container = |name: &str, labels: serde_json::Value, ports: serde_json::Value| {
        serde_json::json!({
            "DockerId": format!("{:032x}-{:010}", 0x000f_1ee7_0000_u128 + n as u128, name.len()),
            "Name": name,
            "DockerName": name,
            "Image": "ecssd-busybox:test",
            "Labels": labels,
            "DesiredStatus": "RUNNING",
            "KnownStatus": "RUNNING",
            "Type": "NORMAL",
            "Ports": ports,
            "Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": [eni.to_string()]}],
        })
    };
    let sidecar = container("ecssd", serde_json::json!({}), serde_json::json!([]));
    if !task {
        return reply(StatusCode::OK, sidecar.to_string());
    }
    let web = container(
        "web",
        serde_json::json!({ "SERVICE_80_NAME": service }),
        serde_json::json!([{"ContainerPort": 80, "Protocol": "tcp"}]),
    );
    let document = serde_json::json!({
        "Cluster": FLEET_CLUSTER,
        "TaskARN": task_arn,
        "Family": "ecssd-fleet",
        "Revision": "1",
        "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING",
        "LaunchType": "FARGATE",
        "AvailabilityZone": "us-east-1a",
        "Containers": [web, sidecar],
    });
    reply(StatusCode::OK, document.to_string())
}
