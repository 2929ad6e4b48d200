//! Fixtures for unit tests: what a sidecar registers for a task with one `web` container serving
//! `_web._tcp` (written through the shared record model), its task definition, and ECS as a table.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ecssd_records::{CallError, Endpoint, RecordSet, TaskAddresses, TaskRegistration, ZoneModel, desired};

use crate::fleet::{
    Binding, ContainerFacts, DefinedContainer, DefinitionFacts, Ec2Facts, Fleet, InstanceAnswer, TaskAnswer,
    TaskFacts,
};

/// The test zone `sd.internal` as `owner` writes it.
pub(crate) fn model(owner: &str) -> ZoneModel {
    ZoneModel { domain: "sd.internal".parse().unwrap(), owner: owner.parse().unwrap(), ttl: 10 }
}

/// The cluster every fixture task runs in.
pub(crate) const CLUSTER_ARN: &str = "arn:aws:ecs:us-east-1:1:cluster/c";

/// Task ids of ECS's shape (32 hex digits), for tasks the sweeper may act on.
pub(crate) const TASK_IDS: [&str; 4] = [
    "0000000000000000000000000000000a",
    "0000000000000000000000000000000b",
    "0000000000000000000000000000000c",
    "0000000000000000000000000000000d",
];

/// The ARN of task `id` in cluster `c`.
pub(crate) fn task_arn(id: &str) -> String {
    format!("arn:aws:ecs:us-east-1:1:task/c/{id}")
}

/// The fixture tasks' IPv4 address, and the IPv6 address of the dual-stack and IPv6-only ones (a
/// unique local address: never connected to).
pub(crate) const IPV4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub(crate) const IPV6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec55, 0, 0, 0, 0, 0, 1);

/// Every record `owner`'s sidecar registers for task `id` of cluster `c`.
pub(crate) fn web_task_records(owner: &str, id: &str) -> RecordSet {
    web_task_records_at(owner, id, IPV4.into(), 32768)
}

/// The records of a task at `addresses` whose `web` port 80 is reached at `reachable_port` (in awsvpc,
/// the container port itself).
pub(crate) fn web_task_records_at(
    owner: &str,
    id: &str,
    addresses: TaskAddresses,
    reachable_port: u16,
) -> RecordSet {
    let registration = TaskRegistration {
        cluster_arn: CLUSTER_ARN.into(),
        task: task_arn(id).parse().unwrap(),
        addresses,
        endpoints: vec![Endpoint {
            container: "web".into(),
            container_port: 80,
            service: "_web._tcp".parse().unwrap(),
            reachable_port,
        }],
    };
    desired(&model(owner), &registration).records
}

/// The task definition of the fixture tasks: container `web` publishes port 80 as `_web._tcp`.
pub(crate) fn web_definition() -> DefinitionFacts {
    let web = DefinedContainer {
        environment: BTreeMap::from([("SERVICE_80_NAME".into(), "_web._tcp".into())]),
        labels: BTreeMap::new(),
    };
    DefinitionFacts { containers: BTreeMap::from([("web".into(), web)]) }
}

/// The ARN of the fixture tasks' task definition.
pub(crate) const DEFINITION_ARN: &str = "arn:aws:ecs:us-east-1:1:task-definition/web:1";

/// ECS as a table: task ARN -> answer (absent: no answer); describing fails when `ecs_down`, and
/// hangs when `ecs_hangs`.
#[derive(Default)]
pub(crate) struct TableFleet {
    pub(crate) tasks: BTreeMap<String, TaskAnswer>,
    pub(crate) instances: BTreeMap<String, InstanceAnswer>,
    pub(crate) ec2: BTreeMap<String, Ec2Facts>,
    pub(crate) ecs_down: bool,
    pub(crate) ecs_hangs: bool,
    pub(crate) stopped: Mutex<Vec<String>>,
}

impl Fleet for TableFleet {
    async fn describe_tasks(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> Result<BTreeMap<String, TaskAnswer>, CallError> {
        if self.ecs_hangs {
            std::future::pending::<()>().await;
        }
        if self.ecs_down {
            let elapsed = Duration::from_secs(60);
            let detail = "HTTP 503".into();
            return Err(CallError::Exhausted {
                operation: "DescribeTasks",
                attempts: 9,
                elapsed,
                detail,
                refused: true,
                throttled: false,
            });
        }
        Ok(arns
            .iter()
            .filter_map(|a| self.tasks.get(a).map(|answer| (a.clone(), answer.clone())))
            .filter(|(_, answer)| !matches!(answer, TaskAnswer::Found(f) if f.cluster_arn != cluster))
            .collect())
    }

    async fn describe_container_instances(
        &self,
        _cluster: &str,
        arns: &[String],
    ) -> Result<BTreeMap<String, InstanceAnswer>, CallError> {
        Ok(arns.iter().filter_map(|a| self.instances.get(a).map(|i| (a.clone(), i.clone()))).collect())
    }

    async fn instances(&self, ids: &[String]) -> Result<BTreeMap<String, Ec2Facts>, CallError> {
        Ok(ids.iter().filter_map(|id| self.ec2.get(id).map(|f| (id.clone(), f.clone()))).collect())
    }

    async fn stop_task(&self, _cluster: &str, task_arn: &str, _reason: &str) -> Result<(), CallError> {
        self.stopped.lock().unwrap().push(task_arn.to_owned());
        Ok(())
    }

    async fn task_definition(&self, arn: &str) -> Result<Arc<DefinitionFacts>, CallError> {
        assert_eq!(arn, DEFINITION_ARN, "the fixture tasks run one task definition");
        Ok(Arc::new(web_definition()))
    }
}

/// ECS's answer about a fixture task of cluster `c` (container `web`, port 80 on host port 32768).
pub(crate) fn task(last_status: &str, container_instance: Option<&str>) -> TaskAnswer {
    TaskAnswer::Found(Box::new(TaskFacts {
        cluster_arn: CLUSTER_ARN.into(),
        last_status: last_status.into(),
        desired_status: if last_status == "STOPPED" { "STOPPED" } else { "RUNNING" }.into(),
        running_for: Some(Duration::from_secs(3600)),
        container_instance: container_instance.map(String::from),
        containers: vec![ContainerFacts {
            name: "web".into(),
            bindings: vec![Binding { container_port: 80, host_port: 32768, protocol: "tcp".into() }],
        }],
        eni: None,
        task_definition_arn: Some(DEFINITION_ARN.into()),
        environment_overrides: BTreeMap::new(),
    }))
}

/// ECS's answer about a fixture task in awsvpc mode whose ENI has `eni`: `web` on port 80, no bindings.
pub(crate) fn awsvpc_task(last_status: &str, eni: TaskAddresses) -> TaskAnswer {
    let mut answer = task(last_status, None);
    if let TaskAnswer::Found(facts) = &mut answer {
        facts.containers[0].bindings.clear();
        facts.eni = Some(eni);
    }
    answer
}
