//! The narrow interface to ECS and EC2 the sweeper needs, and its AWS implementation. It reports only
//! what the APIs say explicitly: a task in a DescribeTasks answer, a MISSING failure, a container
//! instance, an EC2 instance in a DescribeInstances answer; whatever is absent from an answer stays
//! absent, and the caller treats it as unknown. Batches follow the APIs' limits (100 tasks or container
//! instances per describe); every call is retried per the shared policy and counted per service.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_ec2::types::Filter;
use ecssd_edge::pace::paced;
use ecssd_edge::retry::call_with_retry;
use ecssd_edge::{CallCounter, Pacer};
use ecssd_records::{CallError, RetryPolicy, TaskAddresses};

use crate::deadline::Deadline;

use ecssd_edge::ecs_errors::{
    DESCRIBE_CONTAINER_INSTANCES, DESCRIBE_INSTANCES, DESCRIBE_TASK_DEFINITION, DESCRIBE_TASKS, STOP_TASK,
};

/// DescribeTasks and DescribeContainerInstances take at most this many ARNs.
pub const ECS_DESCRIBE_LIMIT: usize = 100;
/// EC2 accepts at most this many values in one filter.
pub const EC2_FILTER_LIMIT: usize = 200;

/// One port mapping of a running container as ECS reports it (`networkBindings`, bridge and host
/// network modes; empty in awsvpc mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub container_port: u16,
    pub host_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// One container of a task, by name, with its bindings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFacts {
    pub name: String,
    pub bindings: Vec<Binding>,
}

/// What DescribeTasks said about a task it returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFacts {
    /// The cluster ECS says the task runs in.
    pub cluster_arn: String,
    pub last_status: String,
    /// `RUNNING`, or `STOPPED` once ECS has decided to stop the task.
    pub desired_status: String,
    /// How long ago it started, if it has (for the health-check grace period).
    pub running_for: Option<Duration>,
    /// The container instance it runs on (EC2 launch type); `None` on Fargate.
    pub container_instance: Option<String>,
    pub containers: Vec<ContainerFacts>,
    /// The addresses of the task's ENI (awsvpc network mode, Fargate included): IPv4, IPv6 (dual-stack)
    /// or IPv6 alone (an IPv6-only subnet); `None` in bridge and host modes, or when ECS names neither.
    pub eni: Option<TaskAddresses>,
    /// The task definition revision it runs (`taskDefinitionArn`).
    pub task_definition_arn: Option<String>,
    /// The environment variables the task's launch overrode or added, per container
    /// (`overrides.containerOverrides[].environment`).
    pub environment_overrides: BTreeMap<String, BTreeMap<String, String>>,
}

impl TaskFacts {
    /// Whether ECS says the task stops, by the rule a task state change event is read by.
    pub fn stops(&self) -> bool {
        crate::withdrawal::task_event::stops(&self.desired_status, &self.last_status)
    }
}

/// The settings one container definition gives its container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefinedContainer {
    /// `environment`, by name.
    pub environment: BTreeMap<String, String>,
    /// `dockerLabels`.
    pub labels: BTreeMap<String, String>,
}

/// What one task definition revision says of its containers, by container name. A revision never
/// changes (ECS Developer Guide, "Updating a task definition": a change is a new revision), so it is
/// described once per cold start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefinitionFacts {
    pub containers: BTreeMap<String, DefinedContainer>,
}

/// ECS's explicit answer about one task of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskAnswer {
    Found(Box<TaskFacts>),
    /// A MISSING failure for this task, or the cluster does not exist.
    Missing,
}

/// ECS's explicit answer about one container instance of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceAnswer {
    Found {
        /// The EC2 instance under it (`i-…`), or a managed instance of ECS Anywhere (`mi-…`).
        ec2_instance_id: Option<String>,
        agent_connected: bool,
    },
    /// A MISSING failure: ECS no longer knows the container instance (not evidence about the host).
    Missing,
}

/// What EC2 said about an instance it returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Facts {
    /// The state name: `pending`, `running`, `stopping`, `stopped`, `shutting-down`, `terminated`.
    pub state: String,
    pub private_ip: Option<Ipv4Addr>,
    /// The instance's primary IPv6 address (`Ipv6Address`), which bridge and host tasks of an
    /// IPv6-only instance are reached at.
    pub ipv6: Option<Ipv6Addr>,
}

/// What the sweeper asks of ECS and EC2.
pub trait Fleet: Send + Sync {
    /// ECS's answers about up to 100 tasks of one cluster, by task ARN; a task it did not mention is
    /// absent.
    fn describe_tasks(
        &self,
        cluster: &str,
        task_arns: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, TaskAnswer>, CallError>> + Send;
    /// ECS's answers about up to 100 container instances of one cluster, by ARN.
    fn describe_container_instances(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, InstanceAnswer>, CallError>> + Send;
    /// EC2's facts per instance id; an instance EC2 does not know is absent.
    fn instances(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, Ec2Facts>, CallError>> + Send;
    fn stop_task(
        &self,
        cluster: &str,
        task_arn: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), CallError>> + Send;
    /// What a task definition revision (by ARN) says of its containers.
    fn task_definition(
        &self,
        arn: &str,
    ) -> impl Future<Output = Result<Arc<DefinitionFacts>, CallError>> + Send;
}

/// ECS and EC2 through the AWS SDK.
#[derive(Debug)]
pub struct AwsFleet {
    pub ecs: aws_sdk_ecs::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub retry: RetryPolicy,
    pub ecs_calls: CallCounter,
    pub ec2_calls: CallCounter,
    /// Task definition revisions described so far (immutable, so kept for the process's life).
    definitions: Mutex<BTreeMap<String, Arc<DefinitionFacts>>>,
    /// Paces every ECS and EC2 request (retries included): the account's ECS budget is shared too.
    pacer: Option<Pacer>,
}

impl AwsFleet {
    pub fn new(ecs: aws_sdk_ecs::Client, ec2: aws_sdk_ec2::Client, retry: RetryPolicy) -> Self {
        Self {
            ecs,
            ec2,
            retry,
            ecs_calls: CallCounter::default(),
            ec2_calls: CallCounter::default(),
            definitions: Mutex::default(),
            pacer: None,
        }
    }

    /// Paces every request by `pacer`, which slows down while ECS or EC2 throttle.
    pub fn with_pacer(mut self, pacer: Pacer) -> Self {
        self.pacer = Some(pacer);
        self
    }
}

impl Fleet for AwsFleet {
    async fn describe_tasks(
        &self,
        cluster: &str,
        task_arns: &[String],
    ) -> Result<BTreeMap<String, TaskAnswer>, CallError> {
        let response = call_with_retry(&self.retry, &self.ecs_calls, &DESCRIBE_TASKS, || {
            paced(
                self.pacer.as_ref(),
                self.ecs.describe_tasks().cluster(cluster).set_tasks(Some(task_arns.to_vec())).send(),
            )
        })
        .await;
        let response = match response {
            Ok(response) => response,
            // Only a cluster of this region can be known not to exist (a zone may be shared).
            Err(CallError::NotFound { .. }) if self.in_own_region(cluster) => {
                return Ok(task_arns.iter().map(|arn| (arn.clone(), TaskAnswer::Missing)).collect());
            }
            Err(e) => return Err(e),
        };
        let mut answers = BTreeMap::new();
        for task in response.tasks() {
            // Only an answer about the task that was asked for, in the cluster that was asked about.
            let Some(arn) = task.task_arn().filter(|arn| task_arns.iter().any(|asked| asked == arn)) else {
                continue;
            };
            let Some(cluster_arn) = task.cluster_arn() else { continue };
            answers.insert(arn.to_owned(), TaskAnswer::Found(Box::new(task_facts(task, cluster_arn))));
        }
        for failure in response.failures() {
            if let (Some(arn), Some("MISSING")) = (failure.arn(), failure.reason())
                && task_arns.iter().any(|asked| asked == arn)
            {
                answers.entry(arn.to_owned()).or_insert(TaskAnswer::Missing);
            }
        }
        Ok(answers)
    }

    async fn describe_container_instances(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> Result<BTreeMap<String, InstanceAnswer>, CallError> {
        let response = call_with_retry(&self.retry, &self.ecs_calls, &DESCRIBE_CONTAINER_INSTANCES, || {
            let request = self.ecs.describe_container_instances().cluster(cluster);
            paced(self.pacer.as_ref(), request.set_container_instances(Some(arns.to_vec())).send())
        })
        .await?;
        let mut answers = BTreeMap::new();
        for instance in response.container_instances() {
            let Some(arn) = instance.container_instance_arn() else { continue };
            let answer = InstanceAnswer::Found {
                ec2_instance_id: instance.ec2_instance_id().map(String::from),
                agent_connected: instance.agent_connected(),
            };
            answers.insert(arn.to_owned(), answer);
        }
        for failure in response.failures() {
            if let (Some(arn), Some("MISSING")) = (failure.arn(), failure.reason()) {
                answers.entry(arn.to_owned()).or_insert(InstanceAnswer::Missing);
            }
        }
        Ok(answers)
    }

    async fn instances(&self, ids: &[String]) -> Result<BTreeMap<String, Ec2Facts>, CallError> {
        let mut facts = BTreeMap::new();
        for chunk in ids.chunks(EC2_FILTER_LIMIT) {
            facts.extend(self.instances_of(chunk).await?);
        }
        Ok(facts)
    }

    async fn stop_task(&self, cluster: &str, task_arn: &str, reason: &str) -> Result<(), CallError> {
        call_with_retry(&self.retry, &self.ecs_calls, &STOP_TASK, || {
            paced(
                self.pacer.as_ref(),
                self.ecs.stop_task().cluster(cluster).task(task_arn).reason(reason).send(),
            )
        })
        .await
        .map(drop)
    }

    async fn task_definition(&self, arn: &str) -> Result<Arc<DefinitionFacts>, CallError> {
        if let Some(known) = self.definitions.lock().unwrap_or_else(|e| e.into_inner()).get(arn) {
            return Ok(known.clone());
        }
        let response = call_with_retry(&self.retry, &self.ecs_calls, &DESCRIBE_TASK_DEFINITION, || {
            paced(self.pacer.as_ref(), self.ecs.describe_task_definition().task_definition(arn).send())
        })
        .await?;
        let containers = response
            .task_definition()
            .map(|definition| definition.container_definitions())
            .unwrap_or_default()
            .iter()
            .filter_map(|container| {
                let environment = environment_of(container.environment());
                let labels = container.docker_labels().cloned().unwrap_or_default().into_iter().collect();
                Some((container.name()?.to_owned(), DefinedContainer { environment, labels }))
            })
            .collect();
        let facts = Arc::new(DefinitionFacts { containers });
        self.definitions.lock().unwrap_or_else(|e| e.into_inner()).insert(arn.to_owned(), facts.clone());
        Ok(facts)
    }
}

/// ECS's answers about tasks given as (cluster, task ARN), keyed by (cluster asked, task ARN): one
/// DescribeTasks per cluster and 100 tasks. An answer counts only for the cluster it was asked about
/// (one naming another cluster is dropped); a call that fails leaves its tasks unanswered, and is
/// returned with its cluster and tasks.
pub async fn describe_by_cluster<'a, F: Fleet>(
    fleet: &F,
    tasks: impl IntoIterator<Item = (&'a str, String)>,
    deadline: Deadline,
) -> (BTreeMap<(String, String), TaskAnswer>, Vec<UnansweredTasks>) {
    let mut by_cluster: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (cluster, arn) in tasks {
        by_cluster.entry(cluster).or_default().push(arn);
    }
    let mut answers = BTreeMap::new();
    let mut unanswered = Vec::new();
    for (cluster, arns) in by_cluster {
        for chunk in arns.chunks(ECS_DESCRIBE_LIMIT) {
            match deadline.run(fleet.describe_tasks(cluster, chunk)).await {
                Ok(found) => {
                    for (arn, answer) in found {
                        let elsewhere = matches!(&answer, TaskAnswer::Found(f) if f.cluster_arn != cluster);
                        if !elsewhere {
                            answers.insert((cluster.to_owned(), arn), answer);
                        }
                    }
                }
                Err(error) => unanswered.push(UnansweredTasks {
                    cluster: cluster.to_owned(),
                    arns: chunk.to_vec(),
                    error,
                }),
            }
        }
    }
    (answers, unanswered)
}

/// A DescribeTasks call that failed: its cluster, the tasks it asked about, and why.
#[derive(Debug)]
pub struct UnansweredTasks {
    pub cluster: String,
    pub arns: Vec<String>,
    pub error: CallError,
}

/// Environment variables as ECS lists them (a definition's, or a task's overrides), by name.
fn environment_of(pairs: &[aws_sdk_ecs::types::KeyValuePair]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .filter_map(|pair| Some((pair.name()?.to_owned(), pair.value().unwrap_or_default().to_owned())))
        .collect()
}

/// The facts the sweeper uses from one DescribeTasks entry.
fn task_facts(task: &aws_sdk_ecs::types::Task, cluster_arn: &str) -> TaskFacts {
    let running_for = task.started_at().and_then(|at| {
        let started = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(at.as_secs_f64().max(0.0));
        SystemTime::now().duration_since(started).ok()
    });
    let containers = task
        .containers()
        .iter()
        .filter_map(|container| {
            let bindings = container
                .network_bindings()
                .iter()
                .filter_map(|binding| {
                    Some(Binding {
                        container_port: u16::try_from(binding.container_port()?).ok()?,
                        host_port: u16::try_from(binding.host_port()?).ok()?,
                        protocol: binding.protocol().map_or("tcp", |p| p.as_str()).to_owned(),
                    })
                })
                .collect();
            Some(ContainerFacts { name: container.name()?.to_owned(), bindings })
        })
        .collect();
    // ECS Developer Guide, "Task networking" (awsvpc): the task's ENI is an attachment of type
    // ElasticNetworkInterface whose details carry `privateIPv4Address`. No IPv6 detail is documented
    // (API reference, "Attachment"); the IPv6 address is the containers' `networkInterfaces[]`
    // `ipv6Address` (API reference, "NetworkInterface", which also carries `privateIpv4Address`).
    let interfaces = || task.containers().iter().flat_map(|c| c.network_interfaces());
    let attachment_ipv4 = task
        .attachments()
        .iter()
        .filter(|a| a.r#type() == Some("ElasticNetworkInterface"))
        .flat_map(|a| a.details())
        .find(|detail| detail.name() == Some("privateIPv4Address"))
        .and_then(|detail| detail.value()?.parse().ok());
    let eni_ipv4 =
        attachment_ipv4.or_else(|| interfaces().find_map(|i| i.private_ipv4_address()?.parse().ok()));
    let eni_ipv6 = interfaces().find_map(|i| i.ipv6_address()?.parse().ok());
    let environment_overrides = task
        .overrides()
        .map(|o| o.container_overrides())
        .unwrap_or_default()
        .iter()
        .filter_map(|container| Some((container.name()?.to_owned(), environment_of(container.environment()))))
        .collect();
    TaskFacts {
        cluster_arn: cluster_arn.to_owned(),
        last_status: task.last_status().unwrap_or("UNKNOWN").to_owned(),
        desired_status: task.desired_status().unwrap_or("UNKNOWN").to_owned(),
        running_for,
        container_instance: task.container_instance_arn().map(String::from),
        containers,
        eni: TaskAddresses::from_parts(eni_ipv4, eni_ipv6),
        task_definition_arn: task.task_definition_arn().map(String::from),
        environment_overrides,
    }
}

impl AwsFleet {
    /// Whether `cluster` (a name, or an ARN naming its region) is in the region this client asks.
    fn in_own_region(&self, cluster: &str) -> bool {
        let Some(region) = self.ecs.config().region() else { return false };
        !cluster.starts_with("arn:") || cluster.split(':').nth(3) == Some(region.as_ref())
    }

    /// Facts of at most [`EC2_FILTER_LIMIT`] instances, all pages.
    async fn instances_of(&self, ids: &[String]) -> Result<BTreeMap<String, Ec2Facts>, CallError> {
        // A filter, unlike InstanceIds, does not fail the whole call when one instance is unknown.
        let mut facts = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let filter = Filter::builder().name("instance-id").set_values(Some(ids.to_vec())).build();
            let page = call_with_retry(&self.retry, &self.ec2_calls, &DESCRIBE_INSTANCES, || {
                let request = self.ec2.describe_instances().filters(filter.clone());
                paced(self.pacer.as_ref(), request.set_next_token(token.clone()).send())
            })
            .await?;
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                if let (Some(id), Some(state)) =
                    (instance.instance_id(), instance.state().and_then(|s| s.name()))
                {
                    let private_ip = instance.private_ip_address().and_then(|ip| ip.parse().ok());
                    let ipv6 = instance.ipv6_address().and_then(|ip| ip.parse().ok());
                    let state = state.as_str().to_owned();
                    facts.insert(id.to_owned(), Ec2Facts { state, private_ip, ipv6 });
                }
            }
            match page.next_token() {
                Some(next) if !next.is_empty() && Some(next) != token.as_deref() => {
                    token = Some(next.to_owned())
                }
                _ => return Ok(facts),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_ecs::types::{Attachment, Container, KeyValuePair, NetworkInterface, Task};

    use super::*;

    /// An awsvpc task as DescribeTasks describes it: the ENI attachment's details (`privateIPv4Address`
    /// when the ENI has one) and the containers' `networkInterfaces`.
    fn awsvpc(ipv4: Option<&str>, ipv6: Option<&str>) -> Task {
        let mut attachment = Attachment::builder().r#type("ElasticNetworkInterface");
        if let Some(ipv4) = ipv4 {
            attachment =
                attachment.details(KeyValuePair::builder().name("privateIPv4Address").value(ipv4).build());
        }
        let interface = NetworkInterface::builder()
            .attachment_id("a-1")
            .set_private_ipv4_address(ipv4.map(String::from))
            .set_ipv6_address(ipv6.map(String::from))
            .build();
        let web = Container::builder().name("web").network_interfaces(interface).build();
        Task::builder().attachments(attachment.build()).containers(web).build()
    }

    /// Issue 30: the ENI's IPv6 address is read from the containers' network interfaces (the
    /// attachment's details document none), beside the IPv4 address.
    #[test]
    fn an_awsvpc_tasks_addresses_are_its_enis_ipv4_and_ipv6() {
        let eni = |task: &Task| task_facts(task, "c").eni;
        let ipv4: Ipv4Addr = "10.0.1.5".parse().unwrap();
        let ipv6: Ipv6Addr = "fd00:ec55::5".parse().unwrap();
        assert_eq!(eni(&awsvpc(Some("10.0.1.5"), None)), Some(TaskAddresses::Ipv4(ipv4)));
        assert_eq!(
            eni(&awsvpc(Some("10.0.1.5"), Some("fd00:ec55::5"))),
            Some(TaskAddresses::Dual(ipv4, ipv6))
        );
        assert_eq!(eni(&awsvpc(None, Some("FD00:EC55:0::5"))), Some(TaskAddresses::Ipv6(ipv6)));
        assert_eq!(eni(&Task::builder().build()), None, "bridge and host modes have no ENI");
    }
}
