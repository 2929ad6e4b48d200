//! ECS and EC2 state in moto for the sweeper's tests: clusters, EC2-backed container instances, tasks
//! placed on chosen hosts, and the zone records a sidecar would have registered for them (written
//! through the shared record model, so the sweeper reads exactly what sidecars write).
//!
//! A sweeper that health-checks endpoints or stops tasks must first find each endpoint in what ECS and
//! EC2 say about the task: the container's `networkBindings` host port and the container instance's
//! EC2 private IP. So that ECS describes endpoints the tests can serve without leaving loopback,
//! [`Fleet::loopback_host`] launches hosts whose private IP is a loopback address, and
//! [`Fleet::serving_task`] starts a task whose static host port is where a [`TestEndpoint`] listens,
//! with the records its sidecar would write ([`Fleet::sidecar_records`]).
//!
//! awsvpc tasks ([`Fleet::start_awsvpc_task`]) get their addresses from their subnet, as ECS gives
//! them: IPv4, dual-stack (an IPv6 block beside the IPv4 one) or IPv6-only ([`SubnetStack`]); the bed
//! gives each task the lowest free address of the subnet's IPv6 block, so a block of `::1/128` puts a
//! task on IPv6 loopback, and a unique local block gives addresses that are only record values.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use aws_sdk_ecs::types::{
    AwsVpcConfiguration, ContainerDefinition, KeyValuePair, NetworkConfiguration, NetworkMode, PortMapping,
};
use ecssd_records::{
    BatchLimits, Change, Endpoint, RecordSet, RecordStore, TaskAddresses, TaskRegistration, ZoneModel,
    batches, desired,
};
use tokio::sync::OnceCell;

use crate::endpoints::{Behaviour, TestEndpoint};
use crate::moto::Moto;
use crate::world::DOMAIN;

/// The container every task definition of the bed publishes, and its port inside the container.
pub const WEB_CONTAINER: &str = "web";
pub const WEB_CONTAINER_PORT: u16 = 80;
/// The service the bed's default task definition publishes `web`'s port 80 as (`SERVICE_80_NAME`).
pub const WEB_SERVICE: &str = "_web._tcp";

/// One port mapping of the `web` container in a task definition the bed registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebPort {
    pub container_port: u16,
    /// 0 asks ECS for a dynamic host port.
    pub host_port: u16,
    /// The service its `SERVICE_<port>_NAME` publishes it as; `None`: mapped, but not published.
    pub service: Option<&'static str>,
}

/// The loopback network of [`Fleet::loopback_host`]'s hosts: the VPC and its one subnet.
const LOOPBACK_CIDR: &str = "127.0.0.0/16";
/// Host addresses start here: AWS reserves a subnet's first four addresses (VPC User Guide, "Subnet
/// CIDR blocks"), and 127.0.0.1 is where moto and every default endpoint listen.
const FIRST_LOOPBACK_HOST: u32 = 10;

/// The IPv4 network of the VPC [`Fleet::awsvpc_subnet`] creates subnets in: moto gives an ENI an IPv4
/// address of its own choosing (never connected to), so this range only has to hold the subnets.
const AWSVPC_CIDR: &str = "10.0.0.0/16";

/// How an awsvpc subnet addresses the tasks in it (ECS Developer Guide, "Amazon ECS task networking
/// options for Fargate": "Tasks launched in dual-stack subnets receive an IPv4 address and an IPv6
/// address. Tasks launched in IPv6-only subnets receive only an IPv6 address.").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubnetStack {
    /// IPv4 only.
    Ipv4,
    /// An IPv4 range and this IPv6 block (e.g. `fd00:ec55:1::/64`, or `::1/128`).
    DualStack(&'static str),
    /// This IPv6 block alone (an IPv6-native subnet).
    Ipv6Only(&'static str),
}

/// A subnet awsvpc tasks are started in, and the security group they get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsvpcSubnet {
    pub subnet_id: String,
    pub security_group: String,
}

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
    /// The subnet of loopback hosts, created by the first [`loopback_host`](Self::loopback_host).
    loopback_subnet: Arc<OnceCell<String>>,
    /// The host part (within [`LOOPBACK_CIDR`]) of the next loopback host's address.
    next_loopback: Arc<AtomicU32>,
    /// The VPC of awsvpc subnets and its security group, created by the first
    /// [`awsvpc_subnet`](Self::awsvpc_subnet).
    awsvpc_network: Arc<OnceCell<(String, String)>>,
    /// The third octet (within [`AWSVPC_CIDR`]) of the next awsvpc subnet with an IPv4 range.
    next_awsvpc_subnet: Arc<AtomicU32>,
}

/// A container instance and the EC2 instance under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub cluster: String,
    pub instance_id: String,
    pub container_instance_arn: String,
    /// The EC2 instance's private IPv4 address (a loopback address for [`Fleet::loopback_host`]).
    pub private_ip: Option<Ipv4Addr>,
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

/// A task serving one service from a real endpoint that ECS and EC2 describe: the endpoint listens on
/// its host's (loopback) private IP at the task's static host port.
#[derive(Debug)]
pub struct ServingTask {
    pub task: PlacedTask,
    pub endpoint: TestEndpoint,
    /// What its sidecar registers: A at the host's private IP, SRV at the host port ECS reports.
    pub records: RecordSet,
}

impl Fleet {
    pub async fn new(moto: &Moto) -> anyhow::Result<Self> {
        let ecs = aws_sdk_ecs::Client::new(&moto.sdk_config());
        let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config());
        let images = ec2.describe_images().send().await?;
        let image = images.images().first().and_then(|i| i.image_id()).context("moto has no AMI")?.to_owned();
        let port = WebPort { container_port: WEB_CONTAINER_PORT, host_port: 0, service: Some(WEB_SERVICE) };
        let definition = register_web(&ecs, &[port], None).await?;
        Ok(Self {
            ecs,
            ec2,
            definition,
            image,
            loopback_subnet: Arc::new(OnceCell::new()),
            next_loopback: Arc::new(AtomicU32::new(FIRST_LOOPBACK_HOST)),
            awsvpc_network: Arc::new(OnceCell::new()),
            next_awsvpc_subnet: Arc::new(AtomicU32::new(1)),
        })
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

    /// Launches an EC2 instance (moto picks its private IP) and registers it as a container instance of
    /// `cluster`.
    pub async fn host(&self, cluster: &str) -> anyhow::Result<Host> {
        self.launch(cluster, None).await
    }

    /// Like [`host`](Self::host), but the EC2 instance's private IP is a loopback address of its own
    /// (`127.0.0.10`, `127.0.0.11`, ... per fleet), so that endpoints ECS and EC2 describe on it can be
    /// served, checked and refused without leaving the machine.
    ///
    /// This is the bed's one concession to keep tests on loopback: the instance is launched in a VPC and
    /// subnet of `127.0.0.0/16` with that `PrivateIpAddress`, which moto accepts; AWS would refuse such a
    /// VPC (VPC User Guide, "VPC CIDR blocks": RFC 1918 or publicly routable ranges, which loopback is
    /// not). Everything else (RunInstances, RegisterContainerInstance, DescribeInstances) is AWS's API.
    pub async fn loopback_host(&self, cluster: &str) -> anyhow::Result<Host> {
        let subnet = self.loopback_subnet.get_or_try_init(|| self.create_loopback_subnet()).await?.clone();
        let host_part = self.next_loopback.fetch_add(1, Ordering::SeqCst);
        anyhow::ensure!(host_part < 0xffff, "the loopback subnet {LOOPBACK_CIDR} is full");
        let address = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 0)) | host_part);
        self.launch(cluster, Some((subnet, address))).await
    }

    async fn create_loopback_subnet(&self) -> anyhow::Result<String> {
        let vpc = self.ec2.create_vpc().cidr_block(LOOPBACK_CIDR).send().await?;
        let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).context("no VPC id")?;
        let subnet = self
            .ec2
            .create_subnet()
            .vpc_id(vpc_id)
            .cidr_block(LOOPBACK_CIDR)
            .availability_zone("us-east-1a")
            .send()
            .await?;
        Ok(subnet.subnet().and_then(|s| s.subnet_id()).context("no subnet id")?.to_owned())
    }

    async fn launch(&self, cluster: &str, placement: Option<(String, Ipv4Addr)>) -> anyhow::Result<Host> {
        let mut run = self
            .ec2
            .run_instances()
            .image_id(&self.image)
            .instance_type(aws_sdk_ec2::types::InstanceType::M5Xlarge)
            .min_count(1)
            .max_count(1);
        if let Some((subnet, address)) = &placement {
            run = run.subnet_id(subnet).private_ip_address(address.to_string());
        }
        let run = run.send().await?;
        let instance = run.instances().first().context("no instance")?;
        let instance_id = instance.instance_id().context("no instance id")?.to_owned();
        let private_ip = instance.private_ip_address().and_then(|ip| ip.parse().ok());
        if let Some((_, address)) = placement {
            anyhow::ensure!(private_ip == Some(address), "EC2 gave {private_ip:?}, not {address}");
        }
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
        Ok(Host { cluster: cluster.to_owned(), instance_id, container_instance_arn, private_ip })
    }

    /// Starts `count` tasks on `host`.
    pub async fn start_tasks(&self, host: &Host, count: usize) -> anyhow::Result<Vec<PlacedTask>> {
        let mut placed = Vec::with_capacity(count);
        for _ in 0..count {
            placed.extend(self.start(host, &self.definition).await?);
        }
        anyhow::ensure!(placed.len() == count, "ECS placed {} of {count} tasks", placed.len());
        Ok(placed)
    }

    /// Starts one task on `host` whose `web` container (port 80, published as `service`) is bound to
    /// the static `host_port`, from a task definition registered for it, as an operator could: ECS's
    /// `networkBindings` then report that port.
    pub async fn start_task_on_port(
        &self,
        host: &Host,
        host_port: u16,
        service: &'static str,
    ) -> anyhow::Result<PlacedTask> {
        anyhow::ensure!(host_port != 0, "0 asks ECS for a dynamic port: use start_tasks");
        let port = WebPort { container_port: WEB_CONTAINER_PORT, host_port, service: Some(service) };
        self.start_task_mapping(host, &[port]).await
    }

    /// Starts one task on `host` from a task definition registered for it whose `web` container maps
    /// `ports`.
    pub async fn start_task_mapping(&self, host: &Host, ports: &[WebPort]) -> anyhow::Result<PlacedTask> {
        let definition = register_web(&self.ecs, ports, None).await?;
        self.start(host, &definition).await?.pop().context("ECS placed no task")
    }

    /// A subnet for awsvpc tasks addressed as `stack`, in a VPC with DNS hostnames enabled (as ecssd's
    /// private hosted zone needs; the VPC User Guide's "DNS attributes for your VPC").
    pub async fn awsvpc_subnet(&self, stack: SubnetStack) -> anyhow::Result<AwsvpcSubnet> {
        let (vpc_id, security_group) =
            self.awsvpc_network.get_or_try_init(|| self.create_awsvpc_network()).await?.clone();
        let mut create = self.ec2.create_subnet().vpc_id(&vpc_id).availability_zone("us-east-1a");
        let ipv4_range = || {
            let octet = self.next_awsvpc_subnet.fetch_add(1, Ordering::SeqCst);
            anyhow::ensure!(octet < 256, "the awsvpc network {AWSVPC_CIDR} is full");
            Ok(format!("10.0.{octet}.0/24"))
        };
        create = match stack {
            SubnetStack::Ipv4 => create.cidr_block(ipv4_range()?),
            SubnetStack::DualStack(block) => create.cidr_block(ipv4_range()?).ipv6_cidr_block(block),
            SubnetStack::Ipv6Only(block) => create.ipv6_cidr_block(block).ipv6_native(true),
        };
        let created = create.send().await?;
        let subnet_id = created.subnet().and_then(|s| s.subnet_id()).context("no subnet id")?.to_owned();
        Ok(AwsvpcSubnet { subnet_id, security_group })
    }

    async fn create_awsvpc_network(&self) -> anyhow::Result<(String, String)> {
        let vpc = self.ec2.create_vpc().cidr_block(AWSVPC_CIDR).send().await?;
        let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).context("no VPC id")?.to_owned();
        let enabled = aws_sdk_ec2::types::AttributeBooleanValue::builder().value(true).build();
        self.ec2.modify_vpc_attribute().vpc_id(&vpc_id).enable_dns_hostnames(enabled).send().await?;
        let group = self
            .ec2
            .create_security_group()
            .group_name("ecssd-tasks")
            .description("awsvpc tasks of the bed")
            .vpc_id(&vpc_id)
            .send()
            .await?;
        Ok((vpc_id, group.group_id().context("no security group id")?.to_owned()))
    }

    /// Starts one awsvpc task on `host` in `subnet`, from a task definition registered for it whose `web`
    /// container publishes `container_port` as `service` (in awsvpc the host port is the container
    /// port).
    pub async fn start_awsvpc_task(
        &self,
        host: &Host,
        subnet: &AwsvpcSubnet,
        container_port: u16,
        service: &'static str,
    ) -> anyhow::Result<PlacedTask> {
        let port = WebPort { container_port, host_port: container_port, service: Some(service) };
        let definition = register_web(&self.ecs, &[port], Some(NetworkMode::Awsvpc)).await?;
        let vpc = AwsVpcConfiguration::builder()
            .subnets(&subnet.subnet_id)
            .security_groups(&subnet.security_group)
            .build()?;
        let network = NetworkConfiguration::builder().awsvpc_configuration(vpc).build();
        self.start_with(host, &definition, Some(network)).await?.pop().context("ECS placed no task")
    }

    /// The task's addresses as ECS describes them (its containers' `networkInterfaces`, the ENI
    /// attachment's `privateIPv4Address`): what its sidecar publishes, as task metadata mirrors ECS.
    pub async fn eni_addresses(&self, task: &PlacedTask) -> anyhow::Result<TaskAddresses> {
        let found = self.described(task).await?;
        let interface = found
            .containers()
            .iter()
            .flat_map(|c| c.network_interfaces())
            .next()
            .context("ECS names no network interface of the task")?;
        let ipv4 = interface.private_ipv4_address().map(str::parse).transpose()?;
        let ipv6 = interface.ipv6_address().map(str::parse).transpose()?;
        TaskAddresses::from_parts(ipv4, ipv6).context("ECS gives the task's interface no address")
    }

    /// The records an awsvpc task's sidecar registers for `service` at `container_port`: A and/or
    /// AAAA at the addresses ECS gives its ENI, the SRV at the container port.
    pub async fn awsvpc_records(
        &self,
        task: &PlacedTask,
        service: &str,
        container_port: u16,
    ) -> anyhow::Result<RecordSet> {
        let addresses = self.eni_addresses(task).await?;
        let endpoint = Endpoint {
            container: WEB_CONTAINER.to_owned(),
            container_port,
            service: service.parse().map_err(anyhow::Error::msg)?,
            reachable_port: container_port,
        };
        registration_records("default", task, addresses, vec![endpoint])
    }

    async fn start(&self, host: &Host, definition: &str) -> anyhow::Result<Vec<PlacedTask>> {
        self.start_with(host, definition, None).await
    }

    async fn start_with(
        &self,
        host: &Host,
        definition: &str,
        network: Option<NetworkConfiguration>,
    ) -> anyhow::Result<Vec<PlacedTask>> {
        let started = self
            .ecs
            .start_task()
            .cluster(&host.cluster)
            .task_definition(definition)
            .container_instances(&host.container_instance_arn)
            .set_network_configuration(network)
            .send()
            .await?;
        started
            .tasks()
            .iter()
            .map(|task| {
                Ok(PlacedTask {
                    cluster_arn: task.cluster_arn().context("no cluster ARN")?.to_owned(),
                    task_arn: task.task_arn().context("no task ARN")?.to_owned(),
                })
            })
            .collect()
    }

    /// A task on `host` (a [`loopback_host`](Self::loopback_host)) serving `service` from an endpoint
    /// that behaves as told, on the host's private IP at the task's static host port, and the records
    /// its sidecar would register (not yet in the zone: [`seed`] them).
    pub async fn serving_task(
        &self,
        host: &Host,
        service: &'static str,
        behaviour: Behaviour,
    ) -> anyhow::Result<ServingTask> {
        let ip = host.private_ip.context("the host has no private IP")?;
        anyhow::ensure!(ip.is_loopback(), "{ip} is not a loopback address: use Fleet::loopback_host");
        let endpoint = TestEndpoint::start_on(ip, behaviour).await?;
        let task = self.start_task_on_port(host, endpoint.port, service).await?;
        let (host_port, address) = self.web_binding(&task).await?;
        anyhow::ensure!(host_port == endpoint.port, "ECS reports port {host_port}, not {}", endpoint.port);
        let records = task_records(&task, address, &[(service, host_port)])?;
        Ok(ServingTask { task, endpoint, records })
    }

    /// The records the task's sidecar registers for `service`, from what it learns the way a real
    /// sidecar does (task metadata mirrors ECS): the `web` container's port 80 is reachable at the host
    /// port of its `networkBindings`, on the container instance's EC2 private IP.
    pub async fn sidecar_records(&self, task: &PlacedTask, service: &str) -> anyhow::Result<RecordSet> {
        let (host_port, address) = self.web_binding(task).await?;
        task_records(task, address, &[(service, host_port)])
    }

    /// The task as DescribeTasks gives it.
    async fn described(&self, task: &PlacedTask) -> anyhow::Result<aws_sdk_ecs::types::Task> {
        let described =
            self.ecs.describe_tasks().cluster(&task.cluster_arn).tasks(&task.task_arn).send().await?;
        described.tasks().first().cloned().context("ECS does not know the task")
    }

    /// (host port, host private IP) ECS and EC2 report for the task's `web` container port 80.
    pub async fn web_binding(&self, task: &PlacedTask) -> anyhow::Result<(u16, Ipv4Addr)> {
        let found = self.described(task).await?;
        let host_port = found
            .containers()
            .iter()
            .filter(|c| c.name() == Some(WEB_CONTAINER))
            .flat_map(|c| c.network_bindings())
            .find(|b| b.container_port() == Some(i32::from(WEB_CONTAINER_PORT)))
            .and_then(|b| b.host_port())
            .context("no network binding of web:80")?;
        let container_instance = found.container_instance_arn().context("no container instance")?;
        let instances = self
            .ecs
            .describe_container_instances()
            .cluster(&task.cluster_arn)
            .container_instances(container_instance)
            .send()
            .await?;
        let instance_id = instances
            .container_instances()
            .first()
            .and_then(|ci| ci.ec2_instance_id())
            .context("no EC2 instance id")?;
        let ec2 = self.ec2.describe_instances().instance_ids(instance_id).send().await?;
        let address = ec2
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find_map(|i| i.private_ip_address())
            .context("no private IP")?
            .parse()?;
        Ok((u16::try_from(host_port)?, address))
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

/// Registers a `web` task definition (`web` mapping `ports`, each with its `SERVICE_<port>_NAME`, and
/// the `ecssd` sidecar) in `network_mode` (ECS's default, bridge, when `None`); returns its ARN.
async fn register_web(
    ecs: &aws_sdk_ecs::Client,
    ports: &[WebPort],
    network_mode: Option<NetworkMode>,
) -> anyhow::Result<String> {
    let mut web = ContainerDefinition::builder().name(WEB_CONTAINER).image("busybox").memory(4);
    for port in ports {
        web = web.port_mappings(
            PortMapping::builder()
                .container_port(i32::from(port.container_port))
                .host_port(i32::from(port.host_port))
                .build(),
        );
        if let Some(service) = port.service {
            let name = format!("SERVICE_{}_NAME", port.container_port);
            web = web.environment(KeyValuePair::builder().name(name).value(service).build());
        }
    }
    let web = web.build();
    let sidecar = ContainerDefinition::builder().name("ecssd").image("ecssd-sidecar").memory(4).build();
    let registered = ecs
        .register_task_definition()
        .family("web")
        .set_network_mode(network_mode)
        .container_definitions(web)
        .container_definitions(sidecar)
        .send()
        .await?;
    Ok(registered
        .task_definition()
        .and_then(|d| d.task_definition_arn())
        .context("no task definition ARN")?
        .to_owned())
}

/// The records a sidecar of owner `default` registers for `task`: its A record at `address` and one SRV
/// target per (service, reachable port). The first target is the task definition's `web` container
/// port 80, as a real sidecar names it; further targets (a bed shortcut for tasks serving several
/// services) are containers `web1`, `web2`, ... port 80. Whether the records agree with ECS is up to
/// the caller: [`Fleet::sidecar_records`] gives ones that do.
pub fn task_records(
    task: &PlacedTask,
    address: Ipv4Addr,
    targets: &[(&str, u16)],
) -> anyhow::Result<RecordSet> {
    task_records_of("default", task, address, targets)
}

/// [`task_records`] as a sidecar of another owner writes them.
pub fn task_records_of(
    owner: &str,
    task: &PlacedTask,
    address: Ipv4Addr,
    targets: &[(&str, u16)],
) -> anyhow::Result<RecordSet> {
    let endpoints = targets
        .iter()
        .enumerate()
        .map(|(index, (service, port))| {
            let container =
                if index == 0 { WEB_CONTAINER.to_owned() } else { format!("{WEB_CONTAINER}{index}") };
            Ok(Endpoint {
                container,
                container_port: WEB_CONTAINER_PORT,
                service: service.parse().map_err(anyhow::Error::msg)?,
                reachable_port: *port,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    registration_records(owner, task, address, endpoints)
}

/// The records `desired` gives a task registering `endpoints` at `address` for `owner`: the building
/// block of [`task_records`], and of forged records that must look exactly like a sidecar's.
pub fn registration_records(
    owner: &str,
    task: &PlacedTask,
    addresses: impl Into<TaskAddresses>,
    endpoints: Vec<Endpoint>,
) -> anyhow::Result<RecordSet> {
    let model = ZoneModel { domain: DOMAIN.parse()?, owner: owner.parse()?, ttl: 10 };
    let registration = TaskRegistration {
        cluster_arn: task.cluster_arn.clone(),
        task: task.task_arn.parse()?,
        addresses: addresses.into(),
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
