//! The narrow interface to ECS and EC2 the sweeper needs, and its AWS implementation. Batches follow
//! the APIs' limits (100 tasks or container instances per describe); every call is retried per the
//! shared policy and counted per service.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

use aws_sdk_ec2::types::Filter;
use ecssd_records::retry::call_with_retry;
use ecssd_records::{CallCounter, CallError, RetryPolicy};

use crate::decide::TaskState;
use crate::fleet_errors::{
    DESCRIBE_CONTAINER_INSTANCES, DESCRIBE_INSTANCES, DESCRIBE_TASKS, LIST_CLUSTERS, STOP_TASK,
};

/// DescribeTasks and DescribeContainerInstances take at most this many ARNs.
pub const ECS_DESCRIBE_LIMIT: usize = 100;
/// EC2 accepts at most this many values in one filter.
pub const EC2_FILTER_LIMIT: usize = 200;

/// What the sweeper asks of ECS and EC2.
pub trait Fleet: Send + Sync {
    /// Every cluster ARN in the account and region.
    fn list_clusters(&self) -> impl Future<Output = Result<Vec<String>, CallError>> + Send;
    /// States of up to 100 tasks of one cluster.
    fn describe_tasks(
        &self,
        cluster: &str,
        task_arns: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, TaskState>, CallError>> + Send;
    /// (EC2 instance id, agent connected) per container instance ARN; absent when ECS does not know it.
    fn describe_container_instances(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, (String, bool)>, CallError>> + Send;
    /// EC2 state names per instance id; absent when EC2 does not know the instance.
    fn instance_states(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, String>, CallError>> + Send;
    fn stop_task(
        &self,
        cluster: &str,
        task_arn: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), CallError>> + Send;
}

/// ECS and EC2 through the AWS SDK.
#[derive(Debug)]
pub struct AwsFleet {
    pub ecs: aws_sdk_ecs::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub retry: RetryPolicy,
    pub ecs_calls: CallCounter,
    pub ec2_calls: CallCounter,
}

impl AwsFleet {
    pub fn new(ecs: aws_sdk_ecs::Client, ec2: aws_sdk_ec2::Client, retry: RetryPolicy) -> Self {
        Self { ecs, ec2, retry, ecs_calls: CallCounter::default(), ec2_calls: CallCounter::default() }
    }
}

impl Fleet for AwsFleet {
    async fn list_clusters(&self) -> Result<Vec<String>, CallError> {
        let mut clusters = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = call_with_retry(&self.retry, &self.ecs_calls, &LIST_CLUSTERS, || {
                self.ecs.list_clusters().set_next_token(token.clone()).send()
            })
            .await?;
            clusters.extend(page.cluster_arns().iter().cloned());
            match page.next_token() {
                Some(next) if Some(next) != token.as_deref() => token = Some(next.to_owned()),
                _ => return Ok(clusters),
            }
        }
    }

    async fn describe_tasks(
        &self,
        cluster: &str,
        task_arns: &[String],
    ) -> Result<BTreeMap<String, TaskState>, CallError> {
        let response = call_with_retry(&self.retry, &self.ecs_calls, &DESCRIBE_TASKS, || {
            self.ecs.describe_tasks().cluster(cluster).set_tasks(Some(task_arns.to_vec())).send()
        })
        .await;
        let response = match response {
            Ok(response) => response,
            // Only a cluster of this region can be known not to exist (a zone may be shared).
            Err(CallError::NotFound { .. }) if self.in_own_region(cluster) => {
                return Ok(task_arns.iter().map(|arn| (arn.clone(), TaskState::Missing)).collect());
            }
            Err(e) => return Err(e),
        };
        let mut states: BTreeMap<String, TaskState> = BTreeMap::new();
        for task in response.tasks() {
            let Some(arn) = task.task_arn() else { continue };
            let running_for = task.started_at().and_then(|at| {
                let started = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(at.as_secs_f64().max(0.0));
                SystemTime::now().duration_since(started).ok()
            });
            states.insert(
                arn.to_owned(),
                TaskState::Found {
                    last_status: task.last_status().unwrap_or("UNKNOWN").to_owned(),
                    running_for,
                    container_instance: task.container_instance_arn().map(String::from),
                },
            );
        }
        for failure in response.failures() {
            if let (Some(arn), Some("MISSING")) = (failure.arn(), failure.reason()) {
                states.insert(arn.to_owned(), TaskState::Missing);
            }
        }
        // Neither returned nor reported missing: say nothing rather than guess.
        for arn in task_arns {
            states.entry(arn.clone()).or_insert(TaskState::Unknown);
        }
        Ok(states)
    }

    async fn describe_container_instances(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> Result<BTreeMap<String, (String, bool)>, CallError> {
        let response = call_with_retry(&self.retry, &self.ecs_calls, &DESCRIBE_CONTAINER_INSTANCES, || {
            self.ecs
                .describe_container_instances()
                .cluster(cluster)
                .set_container_instances(Some(arns.to_vec()))
                .send()
        })
        .await?;
        Ok(response
            .container_instances()
            .iter()
            .filter_map(|ci| {
                Some((
                    ci.container_instance_arn()?.to_owned(),
                    (ci.ec2_instance_id()?.to_owned(), ci.agent_connected()),
                ))
            })
            .collect())
    }

    async fn instance_states(&self, ids: &[String]) -> Result<BTreeMap<String, String>, CallError> {
        let mut states = BTreeMap::new();
        for chunk in ids.chunks(EC2_FILTER_LIMIT) {
            states.extend(self.instance_states_of(chunk).await?);
        }
        Ok(states)
    }

    async fn stop_task(&self, cluster: &str, task_arn: &str, reason: &str) -> Result<(), CallError> {
        call_with_retry(&self.retry, &self.ecs_calls, &STOP_TASK, || {
            self.ecs.stop_task().cluster(cluster).task(task_arn).reason(reason).send()
        })
        .await
        .map(drop)
    }
}

impl AwsFleet {
    /// Whether `cluster` (a name, or an ARN naming its region) is in the region this client asks.
    fn in_own_region(&self, cluster: &str) -> bool {
        let Some(region) = self.ecs.config().region() else { return false };
        !cluster.starts_with("arn:") || cluster.split(':').nth(3) == Some(region.as_ref())
    }

    /// States of at most [`EC2_FILTER_LIMIT`] instances, all pages.
    async fn instance_states_of(&self, ids: &[String]) -> Result<BTreeMap<String, String>, CallError> {
        // A filter, unlike InstanceIds, does not fail the whole call when one instance is unknown.
        let mut states = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let filter = Filter::builder().name("instance-id").set_values(Some(ids.to_vec())).build();
            let page = call_with_retry(&self.retry, &self.ec2_calls, &DESCRIBE_INSTANCES, || {
                self.ec2.describe_instances().filters(filter.clone()).set_next_token(token.clone()).send()
            })
            .await?;
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                if let (Some(id), Some(state)) =
                    (instance.instance_id(), instance.state().and_then(|s| s.name()))
                {
                    states.insert(id.to_owned(), state.as_str().to_owned());
                }
            }
            match page.next_token() {
                Some(next) if !next.is_empty() && Some(next) != token.as_deref() => {
                    token = Some(next.to_owned())
                }
                _ => return Ok(states),
            }
        }
    }
}
