//! The hosts under the tasks found: ECS's container instances, EC2's instances under them, and the
//! agent-disconnect markers. Only what ECS and EC2 state counts; a container instance or EC2 instance
//! they did not describe is unknown, with why.

use std::collections::{BTreeMap, BTreeSet};

use ecssd_records::{Change, Record, TaskAddresses};

use crate::config::Config;
use crate::deadline::Deadline;
use crate::fleet::{ECS_DESCRIBE_LIMIT, Fleet, InstanceAnswer};
use crate::sweep::agents;
use crate::sweep::decide::{Ec2View, HostState};

/// What this sweep knows about each container instance.
#[derive(Debug, Default)]
pub struct Hosts {
    /// Per container instance ARN: its state, or why it is unknown.
    pub states: BTreeMap<String, Result<HostState, String>>,
    /// The addresses of the EC2 instance under each container instance EC2 described (its private IPv4
    /// address, its primary IPv6 address, or both), where bridge and host tasks are reached.
    pub addresses: BTreeMap<String, TaskAddresses>,
    /// Changes to the agent markers.
    pub marker_changes: Vec<Change>,
}

/// The agent markers read from the zone, and the time now (unix seconds).
#[derive(Debug, Clone, Copy)]
pub struct AgentMemory<'a> {
    pub markers: &'a BTreeMap<String, (Record, u64)>,
    pub now: u64,
}

/// Describes the container instances in `wanted` (cluster -> ARNs) and their EC2 instances.
/// `described_all_tasks` says whether every task was answered for (markers are forgotten only then).
pub async fn describe_hosts<F: Fleet>(
    fleet: &F,
    config: &Config,
    wanted: BTreeMap<String, BTreeSet<String>>,
    described_all_tasks: bool,
    memory: AgentMemory<'_>,
    deadline: Deadline,
    errors: &mut Vec<String>,
) -> Hosts {
    let mut hosts = Hosts::default();
    let mut described_all = described_all_tasks;
    let mut found: BTreeMap<String, (Option<String>, bool)> = BTreeMap::new();
    for (cluster, arns) in wanted {
        let arns: Vec<String> = arns.into_iter().collect();
        for chunk in arns.chunks(ECS_DESCRIBE_LIMIT) {
            match deadline.run(fleet.describe_container_instances(&cluster, chunk)).await {
                Ok(mut answers) => {
                    for arn in chunk {
                        match answers.remove(arn) {
                            Some(InstanceAnswer::Found { ec2_instance_id, agent_connected }) => {
                                found.insert(arn.clone(), (ec2_instance_id, agent_connected));
                            }
                            Some(InstanceAnswer::Missing) => {
                                let why = "ECS reports its container instance MISSING".to_owned();
                                hosts.states.insert(arn.clone(), Err(why));
                            }
                            None => {
                                described_all = false;
                                let why = "ECS did not describe its container instance".to_owned();
                                hosts.states.insert(arn.clone(), Err(why));
                            }
                        }
                    }
                }
                Err(e) => {
                    described_all = false;
                    errors.push(format!("describing container instances of {cluster}: {e}"));
                    for arn in chunk {
                        hosts.states.insert(
                            arn.clone(),
                            Err(format!("describing its container instance failed: {e}")),
                        );
                    }
                }
            }
        }
    }
    let ids: Vec<String> = found
        .values()
        .filter_map(|(id, _)| id.clone().filter(|id| is_ec2_instance(id)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let ec2 = if ids.is_empty() {
        Ok(BTreeMap::new())
    } else {
        deadline.run(fleet.instances(&ids)).await.map_err(|e| {
            errors.push(format!("describing EC2 instances: {e}"));
            format!("EC2 did not answer ({e})")
        })
    };
    let agents = found.iter().map(|(arn, (_, connected))| (arn.clone(), *connected)).collect();
    let (disconnected_for, changes) =
        agents::track(&config.domain, &config.owner_id, memory.markers, &agents, described_all, memory.now);
    hosts.marker_changes = changes;
    for (arn, (ec2_id, _)) in found {
        let view = match (ec2_id, &ec2) {
            (None, _) => Ec2View::Unknown("ECS names no EC2 instance for its container instance".into()),
            // ECS Anywhere hosts (`mi-…`) are not EC2 instances: EC2 cannot vouch for them either way.
            (Some(id), _) if !is_ec2_instance(&id) => {
                Ec2View::Unknown(format!("{id} is not an EC2 instance"))
            }
            (Some(_), Err(why)) => Ec2View::Unknown(why.clone()),
            (Some(id), Ok(described)) => match described.get(&id) {
                Some(facts) => {
                    if let Some(addresses) = TaskAddresses::from_parts(facts.private_ip, facts.ipv6) {
                        hosts.addresses.insert(arn.clone(), addresses);
                    }
                    Ec2View::State(facts.state.clone())
                }
                None => Ec2View::NotFound,
            },
        };
        let agent_disconnected_for = disconnected_for.get(&arn).copied().unwrap_or_default();
        hosts.states.insert(arn, Ok(HostState { ec2: view, agent_disconnected_for }));
    }
    hosts
}

/// Whether a container instance's host id names an EC2 instance (`i-…`), which EC2 can describe.
fn is_ec2_instance(id: &str) -> bool {
    id.starts_with("i-")
}
