//! Records for unit tests: what a sidecar registers for a task with one `web` container serving
//! `_web._tcp`, written through the shared record model.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ecssd_records::{Endpoint, RecordSet, TaskRegistration, ZoneModel, desired};

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

/// Every record `owner`'s sidecar registers for task `id` of cluster `c`.
pub(crate) fn web_task_records(owner: &str, id: &str) -> RecordSet {
    let registration = TaskRegistration {
        cluster_arn: CLUSTER_ARN.into(),
        task: task_arn(id).parse().unwrap(),
        address: Ipv4Addr::new(10, 0, 0, 1),
        endpoints: vec![Endpoint {
            container: "web".into(),
            container_port: 80,
            service: "_web._tcp".parse().unwrap(),
            reachable_port: 32768,
        }],
    };
    desired(&model(owner), &registration).records
}

/// The task definition of the fixture tasks: container `web` publishes port 80 as `_web._tcp`.
pub(crate) fn web_definition() -> crate::fleet::DefinitionFacts {
    let web = crate::fleet::DefinedContainer {
        environment: BTreeMap::from([("SERVICE_80_NAME".into(), "_web._tcp".into())]),
        labels: BTreeMap::new(),
    };
    crate::fleet::DefinitionFacts { containers: BTreeMap::from([("web".into(), web)]) }
}

/// The ARN of the fixture tasks' task definition.
pub(crate) const DEFINITION_ARN: &str = "arn:aws:ecs:us-east-1:1:task-definition/web:1";
