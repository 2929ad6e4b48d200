//! The example services as ECS would run them here: time and calc tasks (bridge mode, port 8080
//! published on a dynamic loopback port), an IPv6-only instance of one (awsvpc, its ENI address `::1`)
//! and a portal task (host mode), each with a real sidecar, and DNS for the zone (the portal asks its
//! caching resolver). Images come from `scripts/build-images`.

use std::net::Ipv6Addr;
use std::time::Duration;

use anyhow::Context;
use ecssd_records::TaskAddresses;

use crate::dns::Dns;
use crate::docker::ContainerSpec;
use crate::ecs::{Fleet, Host, PlacedTask};
use crate::metadata::NetworkMode;
use crate::sidecar::{Sidecar, SidecarOptions};
use crate::world::{DOMAIN, RunningTask, World};

/// The credentials time and calc require (their defaults, as in the seed).
pub const USER: &str = "admin";
pub const PASSWORD: &str = "password";

/// The ECS side in moto: a cluster `examples` with one container instance, where every example task
/// is placed, so ECS knows each task's ARN (and a sweep can tell a dead one).
#[derive(Debug)]
pub struct ExampleCluster {
    pub fleet: Fleet,
    pub host: Host,
}

impl ExampleCluster {
    pub async fn new(world: &World) -> anyhow::Result<Self> {
        let fleet = Fleet::new(&world.moto).await?;
        fleet.cluster("examples").await?;
        let host = fleet.host("examples").await?;
        Ok(Self { fleet, host })
    }

    async fn place(&self) -> anyhow::Result<PlacedTask> {
        self.fleet.start_tasks(&self.host, 1).await?.pop().context("ECS placed no task")
    }
}

/// One example task and its sidecar.
#[derive(Debug)]
pub struct ExampleTask {
    /// The task as ECS knows it.
    pub placed: PlacedTask,
    pub running: RunningTask,
    pub sidecar: Sidecar,
    /// What the service reports as its instance, e.g. `calc-2`.
    pub instance: String,
}

/// The sidecar's settings in the examples: a short drain, readable logs.
fn sidecar_options() -> SidecarOptions {
    SidecarOptions { args: vec!["--drain-seconds=1".into()], env: vec![] }
}

/// The placeholder for the sidecar's own container (the sidecar runs as a process reading its metadata).
fn sidecar_container() -> ContainerSpec {
    ContainerSpec {
        name: "ecssd".into(),
        cmd: Some(vec!["sleep".into(), "86400".into()]),
        ..Default::default()
    }
}

/// Starts a `time` or `calc` task named `instance` (e.g. `calc-1`) with its sidecar.
pub async fn service_task(
    world: &World,
    cluster: &ExampleCluster,
    service: &str,
    instance: &str,
) -> anyhow::Result<ExampleTask> {
    let app = ContainerSpec {
        name: service.to_owned(),
        image: Some(format!("ecssd-{service}:dev")),
        env: vec![format!("SERVICE_8080_NAME=_{service}._tcp"), format!("INSTANCE_NAME={instance}")],
        publish: vec![8080],
        ..Default::default()
    };
    let placed = cluster.place().await?;
    let running = world.placed_task(&placed, &[app, sidecar_container()], NetworkMode::Bridge).await?;
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, sidecar_options()).await?;
    Ok(ExampleTask { placed, running, sidecar, instance: instance.to_owned() })
}

/// Starts an IPv6-only `time` or `calc` task named `instance` (e.g. `calc-v6`) with its sidecar: an
/// awsvpc task whose ENI has the address `::1` and no IPv4 address, so its sidecar publishes an AAAA
/// record `::1` and SRV records with the container port, `port`. The service runs on the host's
/// network (the ENI stand-in) and listens on `[::1]:<port>` only; returns once it answers there.
pub async fn ipv6_service_task(
    world: &World,
    cluster: &ExampleCluster,
    service: &str,
    instance: &str,
    port: u16,
) -> anyhow::Result<ExampleTask> {
    let app = ContainerSpec {
        name: service.to_owned(),
        image: Some(format!("ecssd-{service}:dev")),
        env: vec![
            format!("SERVICE_{port}_NAME=_{service}._tcp"),
            format!("PORT={port}"),
            // Unreachable over IPv4, as in an IPv6-only subnet.
            "BIND_ADDRESS=::1".into(),
            format!("INSTANCE_NAME={instance}"),
        ],
        host_network: true,
        ..Default::default()
    };
    let placed = cluster.place().await?;
    let addresses = TaskAddresses::Ipv6(Ipv6Addr::LOCALHOST);
    let running =
        world.placed_task(&placed, &[app, sidecar_container()], NetworkMode::Awsvpc(addresses)).await?;
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, sidecar_options()).await?;
    answering(instance, &format!("http://[::1]:{port}/health")).await?;
    Ok(ExampleTask { placed, running, sidecar, instance: instance.to_owned() })
}

/// Waits until `instance` answers `health` with 200, for up to 30 s.
async fn answering(instance: &str, health: &str) -> anyhow::Result<()> {
    crate::wait_for(&format!("{instance} to answer {health}"), Duration::from_secs(30), || async {
        Ok(crate::http::request("GET", health, None).await.ok().filter(|(status, _)| *status == 200))
    })
    .await
    .with_context(|| format!("{instance} did not start"))?;
    Ok(())
}

/// Starts the portal task (host network, so it reaches loopback DNS and ports) on `port`.
pub async fn portal_task(
    world: &World,
    cluster: &ExampleCluster,
    dns: &Dns,
    port: u16,
) -> anyhow::Result<ExampleTask> {
    let app = ContainerSpec {
        name: "portal".into(),
        image: Some("ecssd-portal:dev".into()),
        env: vec![
            format!("SERVICE_{port}_NAME=_portal._tcp"),
            format!("PORT={port}"),
            // On the host's network: loopback only, as everything the bed runs.
            "BIND_ADDRESS=127.0.0.1".into(),
            format!("DNS_SERVER={}", dns.address()),
            format!("ECSSD_DOMAIN={DOMAIN}"),
            "INSTANCE_NAME=portal-1".into(),
        ],
        host_network: true,
        ..Default::default()
    };
    let placed = cluster.place().await?;
    let running = world.placed_task(&placed, &[app, sidecar_container()], NetworkMode::Host).await?;
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, sidecar_options()).await?;
    answering("the portal", &format!("http://127.0.0.1:{port}/health")).await?;
    Ok(ExampleTask { placed, running, sidecar, instance: "portal-1".into() })
}

/// A free TCP port on loopback (for a host-network container).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A free TCP port on IPv6 loopback, `[::1]` (for an IPv6-only service on the host's network).
pub fn free_ipv6_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// DNS for the zone as it is now (its authority and the caching resolver in front).
pub async fn start_dns(world: &World) -> anyhow::Result<Dns> {
    Dns::start(Some(world.zone_contents().await?)).await
}

/// Points `dns`'s authority at what the zone holds now; true when that changed anything. Clients
/// asking the caching resolver see the change once what it cached expires (the records' TTL, or the
/// zone's negative TTL for a name that did not exist).
pub async fn sync_dns(world: &World, dns: &Dns) -> anyhow::Result<bool> {
    dns.update(Some(world.zone_contents().await?))
}
