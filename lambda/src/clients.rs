//! What every function shares across its invocations: the clients built once per cold start, the
//! settings, and the count of API calls each invocation reports.

use std::collections::BTreeMap;

use ecssd_edge::{CallCounter, Route53Zone};

use crate::Config;
use crate::fleet::AwsFleet;

/// API calls per service and operation.
pub type CallsByService = BTreeMap<String, BTreeMap<String, u64>>;

/// The clients and settings of one cold start.
#[derive(Debug)]
pub struct Clients {
    /// The zone, paced to the function's share of Route53's account rate.
    pub zone: Route53Zone,
    /// ECS and EC2.
    pub fleet: AwsFleet,
    /// CloudFormation, asked only by the zone settings function, about its own stack.
    pub stacks: aws_sdk_cloudformation::Client,
    /// When this instance last started a sweep (the sweeper's reserved concurrency of 1 keeps one
    /// instance warm while it is invoked often).
    pub last_sweep: std::sync::Mutex<Option<std::time::SystemTime>>,
    pub config: Config,
}

impl Clients {
    /// API calls so far per service and operation (cumulative across warm invocations).
    pub fn calls(&self) -> CallsByService {
        let named =
            |counter: &CallCounter| counter.snapshot().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        BTreeMap::from([
            ("route53".to_owned(), named(self.zone.calls())),
            ("ecs".to_owned(), named(&self.fleet.ecs_calls)),
            ("ec2".to_owned(), named(&self.fleet.ec2_calls)),
        ])
    }

    /// The API calls made since `before` (a [`calls`](Self::calls) snapshot).
    pub fn calls_since(&self, before: &CallsByService) -> CallsByService {
        self.calls()
            .into_iter()
            .map(|(service, ops)| {
                let earlier = before.get(&service).cloned().unwrap_or_default();
                let ops = ops
                    .into_iter()
                    .map(|(op, n)| (op.clone(), n - earlier.get(&op).copied().unwrap_or(0)))
                    .filter(|(_, n)| *n > 0);
                (service, ops.collect())
            })
            .collect()
    }
}
