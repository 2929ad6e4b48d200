//! One test's world: a fresh moto with the private zone, the Docker engine, and helpers to start
//! tasks (containers + metadata stand-ins) and read what the zone holds.

use std::net::Ipv4Addr;
use std::time::Duration;

use bollard::Docker;
use ecssd_records::{Record, RecordStore, RecordType, RetryPolicy, Route53Zone};

use crate::docker::{self, ContainerSpec, Task};
use crate::ecs::PlacedTask;
use crate::metadata::{ClusterForm, MetadataConfig, MetadataServer, NetworkMode};
use crate::moto::Moto;
use crate::wait_for;

/// The zone's domain in every test.
pub const DOMAIN: &str = "servicediscovery.internal";

#[derive(Debug)]
pub struct World {
    pub moto: Moto,
    pub docker: Docker,
    /// Reads the zone the way ecssd does (through the shared adapter), as an observer that injected
    /// faults do not slow down and stats do not count.
    pub zone: Route53Zone,
}

/// A started task: its containers and the metadata endpoint its sidecar reads.
#[derive(Debug)]
pub struct RunningTask {
    pub task: Task,
    pub metadata: MetadataServer,
}

impl World {
    pub async fn new() -> anyhow::Result<Self> {
        let moto = Moto::start().await?;
        moto.create_private_zone(DOMAIN).await?;
        let docker = docker::connect().await?;
        docker::remove_leftovers(&docker).await?;
        let client = ecssd_records::route53::client(&moto.observer_sdk_config());
        let zone = Route53Zone::find(client, DOMAIN.parse()?, RetryPolicy::default()).await?;
        Ok(Self { moto, docker, zone })
    }

    /// Starts a bridge-mode task with these containers, plus its metadata stand-ins.
    pub async fn task(&self, cluster: &str, specs: &[ContainerSpec]) -> anyhow::Result<RunningTask> {
        self.task_in_mode(cluster, specs, NetworkMode::Bridge).await
    }

    pub async fn task_in_mode(
        &self,
        cluster: &str,
        specs: &[ContainerSpec],
        network_mode: NetworkMode,
    ) -> anyhow::Result<RunningTask> {
        let task = Task::start(&self.docker, cluster, specs).await?;
        self.with_metadata(task, network_mode).await
    }

    /// Starts the containers of a task ECS (moto) placed, plus its metadata stand-ins.
    pub async fn placed_task(
        &self,
        placed: &PlacedTask,
        specs: &[ContainerSpec],
        network_mode: NetworkMode,
    ) -> anyhow::Result<RunningTask> {
        let task = Task::start_as(&self.docker, &placed.cluster_arn, &placed.task_arn, specs).await?;
        self.with_metadata(task, network_mode).await
    }

    async fn with_metadata(&self, task: Task, network_mode: NetworkMode) -> anyhow::Result<RunningTask> {
        let config = MetadataConfig {
            task_arn: task.task_arn.clone(),
            cluster_arn: task.cluster_arn.clone(),
            // The stricter of the two forms ECS documents: the sidecar must derive the ARN itself.
            cluster_form: ClusterForm::ShortName,
            network_mode,
            host_ip: Ipv4Addr::LOCALHOST,
            instance_id: "i-0ecssd0000000000".into(),
        };
        let metadata = MetadataServer::start(self.docker.clone(), config).await?;
        Ok(RunningTask { task, metadata })
    }

    /// Every A, SRV and TXT record in the zone.
    pub async fn records(&self) -> anyhow::Result<Vec<Record>> {
        Ok(self.zone.list_all().await?)
    }

    /// The SRV values of `_service._tcp.<domain>`, sorted.
    pub async fn srv_values(&self, service: &str) -> anyhow::Result<Vec<String>> {
        self.srv_values_of(&[service]).await
    }

    /// The SRV values of all these services together, sorted, from one zone listing.
    pub async fn srv_values_of(&self, services: &[&str]) -> anyhow::Result<Vec<String>> {
        let names: Vec<String> = services.iter().map(|service| format!("{service}.{DOMAIN}.")).collect();
        let mut values: Vec<String> = self
            .records()
            .await?
            .into_iter()
            .filter(|r| r.key.record_type == RecordType::Srv && names.contains(&r.key.name))
            .flat_map(|r| r.values().to_vec())
            .collect();
        values.sort();
        Ok(values)
    }

    /// Waits until the zone holds exactly `count` targets for `service`; returns their values.
    pub async fn wait_for_targets(
        &self,
        service: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<String>> {
        wait_for(&format!("{count} targets of {service}"), timeout, || async {
            let values = self.srv_values(service).await?;
            Ok((values.len() == count).then_some(values))
        })
        .await
    }

    /// Records that belong to the task with this id (its A, ownership TXT and SRV targets).
    pub async fn task_records(&self, task_id: &str) -> anyhow::Result<Vec<Record>> {
        let needle = format!("{task_id}.{DOMAIN}");
        Ok(self
            .records()
            .await?
            .into_iter()
            .filter(|r| r.key.name.contains(task_id) || r.values().iter().any(|v| v.contains(&needle)))
            .collect())
    }
}
