//! ECS and EC2 state in moto for the sweeper's tests: clusters, EC2-backed container instances, tasks
//! placed on chosen hosts, and the zone records a sidecar would have registered for them (written
//! through the shared record model, so the sweeper reads exactly what sidecars write).

use std::net::Ipv4Addr;

use anyhow::Context;
use aws_sdk_ecs::types::{ContainerDefinition, PortMapping};
use ecssd_records::{
    BatchLimits, Change, Endpoint, RecordSet, RecordStore, TaskRegistration, ZoneModel, batches, desired,
};

use crate::moto::Moto;
use crate::world::DOMAIN;

/// ECS and EC2 clients on one moto, with a registered task definition (`web` on port 80, dynamic host
/// port, and the `ecssd` sidecar).
#[derive(Debug, Clone)]
pub struct Fleet {
    pub ecs: aws_sdk_ecs::Client,
    pub ec2: aws_sdk_ec2::Client,
    /// ARN of the task definition every task runs.
    definition: String,
    /// An AMI moto knows, for container-instance hosts.
    image: String,
}

/// A container instance and the EC2 instance under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub cluster: String,
    pub instance_id: String,
    pub container_instance_arn: String,
}

/// A task placed by ECS, as the sweeper's tests seed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedTask {
    pub cluster_arn: String,
    pub task_arn: String,
}

impl PlacedTask {
    /// The id at the end of the task ARN.
    pub fn id(&self) -> &str {
        self.task_arn.rsplit('/').next().unwrap_or(&self.task_arn)
    }
}

impl Fleet {
    pub async fn new(moto: &Moto) -> anyhow::Result<Self> {
        let ecs = aws_sdk_ecs::Client::new(&moto.sdk_config());
        let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config());
        let images = ec2.describe_images().send().await?;
        let image = images.images().first().and_then(|i| i.image_id()).context("moto has no AMI")?.to_owned();
        let web = ContainerDefinition::builder()
            .name("web")
            .image("busybox")
            .memory(4)
            .port_mappings(PortMapping::builder().container_port(80).host_port(0).build())
            .build();
        let sidecar = ContainerDefinition::builder().name("ecssd").image("ecssd-sidecar").memory(4).build();
        let registered = ecs
            .register_task_definition()
            .family("web")
            .container_definitions(web)
            .container_definitions(sidecar)
            .send()
            .await?;
        let definition = registered
            .task_definition()
            .and_then(|d| d.task_definition_arn())
            .context("no task definition ARN")?
            .to_owned();
        Ok(Self { ecs, ec2, definition, image })
    }

    /// ARN of the task definition every task runs (`web` and the `ecssd` sidecar).
    pub fn definition(&self) -> &str {
        &self.definition
    }

    /// Creates a cluster; returns its ARN.
    pub async fn cluster(&self, name: &str) -> anyhow::Result<String> {
        let created = self.ecs.create_cluster().cluster_name(name).send().await?;
        Ok(created.cluster().and_then(|c| c.cluster_arn()).context("no cluster ARN")?.to_owned())
    }

    /// Launches an EC2 instance and registers it as a container instance of `cluster`.
    pub async fn host(&self, cluster: &str) -> anyhow::Result<Host> {
        let run = self
            .ec2
            .run_instances()
            .image_id(&self.image)
            .instance_type(aws_sdk_ec2::types::InstanceType::M5Xlarge)
            .min_count(1)
            .max_count(1)
            .send()
            .await?;
        let instance = run.instances().first().context("no instance")?;
        let instance_id = instance.instance_id().context("no instance id")?.to_owned();
        let document = serde_json::json!({
            "instanceId": instance_id, "region": "us-east-1", "availabilityZone": "us-east-1a",
            "privateIp": instance.private_ip_address(), "accountId": "123456789012",
        });
        let registered = self
            .ecs
            .register_container_instance()
            .cluster(cluster)
            .instance_identity_document(document.to_string())
            .send()
            .await?;
        let container_instance_arn = registered
            .container_instance()
            .and_then(|ci| ci.container_instance_arn())
            .context("no container instance ARN")?
            .to_owned();
        Ok(Host { cluster: cluster.to_owned(), instance_id, container_instance_arn })
    }

    /// Starts `count` tasks on `host`.
    pub async fn start_tasks(&self, host: &Host, count: usize) -> anyhow::Result<Vec<PlacedTask>> {
        let mut placed = Vec::with_capacity(count);
        for _ in 0..count {
            let started = self
                .ecs
                .start_task()
                .cluster(&host.cluster)
                .task_definition(&self.definition)
                .container_instances(&host.container_instance_arn)
                .send()
                .await?;
            for task in started.tasks() {
                placed.push(PlacedTask {
                    cluster_arn: task.cluster_arn().context("no cluster ARN")?.to_owned(),
                    task_arn: task.task_arn().context("no task ARN")?.to_owned(),
                });
            }
        }
        anyhow::ensure!(placed.len() == count, "ECS placed {} of {count} tasks", placed.len());
        Ok(placed)
    }

    pub async fn stop_task(&self, task: &PlacedTask) -> anyhow::Result<()> {
        self.ecs.stop_task().cluster(&task.cluster_arn).task(&task.task_arn).reason("test").send().await?;
        Ok(())
    }

    pub async fn terminate(&self, host: &Host) -> anyhow::Result<()> {
        self.ec2.terminate_instances().instance_ids(&host.instance_id).send().await?;
        Ok(())
    }

    /// (lastStatus, stoppedReason) of a task as ECS reports it.
    pub async fn status(&self, task: &PlacedTask) -> anyhow::Result<(String, String)> {
        let described =
            self.ecs.describe_tasks().cluster(&task.cluster_arn).tasks(&task.task_arn).send().await?;
        let found = described.tasks().first().context("task not found")?;
        Ok((
            found.last_status().unwrap_or_default().to_owned(),
            found.stopped_reason().unwrap_or_default().to_owned(),
        ))
    }
}

/// The records a sidecar registers for `task`: its A record at `address` and one SRV target per
/// (service, reachable port).
pub fn task_records(
    task: &PlacedTask,
    address: Ipv4Addr,
    targets: &[(&str, u16)],
) -> anyhow::Result<RecordSet> {
    let model = ZoneModel { domain: DOMAIN.parse()?, owner: "default".parse()?, ttl: 10 };
    let endpoints = targets
        .iter()
        .enumerate()
        .map(|(index, (service, port))| {
            Ok(Endpoint {
                container: format!("web{index}"),
                container_port: 80,
                service: service.parse().map_err(anyhow::Error::msg)?,
                reachable_port: *port,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let registration = TaskRegistration {
        cluster_arn: task.cluster_arn.clone(),
        task: task.task_arn.parse()?,
        address,
        endpoints,
    };
    Ok(desired(&model, &registration).records)
}

/// Writes record sets to the zone the way sidecars do (each set whole, in as few batches as allowed).
pub async fn seed<S: RecordStore>(zone: &S, sets: Vec<RecordSet>) -> anyhow::Result<()> {
    let units: Vec<Vec<Change>> =
        sets.into_iter().map(|set| set.into_iter().map(Change::create).collect()).collect();
    for batch in batches(units, BatchLimits::default()) {
        zone.apply(&batch).await?;
    }
    Ok(())
}
