//! Health checks and stops: HTTP-checks the targets ECS confirmed of living tasks, tallies them, and
//! withdraws and stops the unhealthy tasks the safety limits allow.

use std::net::SocketAddr;
use std::time::Duration;

use ecssd_records::{Change, RecordSet, RecordStore, withdraw};

use crate::config::Config;
use crate::deadline::Deadline;
use crate::fleet::{Fleet, TaskFacts};
use crate::sweep::apply::{Fallback, apply};
use crate::sweep::decide::{StopLimits, allowed_stops};
use crate::sweep::health::{self, HealthSettings};
use crate::sweep::inventory::TaskRecords;
use crate::sweep::report::{Finding, Report};
use crate::sweep::tally::{CheckedTask, tally};
use crate::sweep::verify::Target;

/// Time kept from the deadline, when stopping a task, to put its records back if the stop fails.
const RESTORE_RESERVE: Duration = Duration::from_secs(10);

/// A living task whose every record ECS confirmed.
#[derive(Debug, Clone)]
pub struct Verified {
    pub records: TaskRecords,
    /// The cluster ECS answered for it.
    pub cluster: String,
    pub facts: TaskFacts,
    pub targets: Vec<Target>,
}

/// Checks every `_tcp` target of the RUNNING tasks past their grace period; withdraws and stops the
/// unhealthy ones the limits allow.
pub async fn check_and_stop<S: RecordStore, F: Fleet>(
    store: &S,
    fleet: &F,
    config: &Config,
    tasks: Vec<Verified>,
    deadline: Deadline,
    report: &mut Report,
) {
    let grace = Duration::from_secs(config.health_grace_seconds);
    let tasks: Vec<Verified> = tasks.into_iter().filter(|t| t.facts.last_status == "RUNNING").collect();
    let mut checked = Vec::new();
    let mut endpoints = Vec::new();
    for (index, task) in tasks.iter().enumerate() {
        let in_grace = task.facts.running_for.is_none_or(|d| d < grace);
        let services = task.targets.iter().map(|t| t.service.clone()).collect();
        checked.push(CheckedTask { task_arn: task.records.ownership.task.to_string(), services, in_grace });
        if in_grace {
            continue;
        }
        // HTTP reaches only TCP services; a `_udp` target is not checked (not failed either).
        for target in task.targets.iter().filter(|t| t.tcp) {
            // An IPv6 address is bracketed in a URL (RFC 3986, "IP-literal"), as a socket address prints.
            let authority = SocketAddr::new(target.address, target.port);
            let url = format!("http://{authority}{}", config.health_check_path);
            endpoints.push(health::Endpoint { task: index, service: target.service.clone(), url });
        }
    }
    let settings = HealthSettings {
        path: config.health_check_path.clone(),
        timeout: Duration::from_millis(config.health_timeout_ms),
        attempts: config.health_attempts,
        concurrency: config.health_concurrency,
    };
    report.endpoints_checked = endpoints.len();
    let Some(outcomes) = deadline.within(health::check_all(endpoints, &settings)).await else {
        report.errors.push("out of time during health checks: nothing stopped this run".into());
        return;
    };
    for (_, outcome) in &outcomes {
        if let health::Outcome::Unreachable(problem) = outcome {
            // A configuration to fix (IPv6 egress for IPv6-only tasks), and nothing to act on.
            report.errors.push(format!(
                "health check not made, this function has no route to the task: {problem} (an \
                 IPv6-only task needs the function in dual-stack subnets with Ipv6AllowedForDualStack)"
            ));
        }
    }
    let outcomes: Vec<_> = outcomes.into_iter().map(|(e, outcome)| (e.task, e.service, outcome)).collect();
    let tally = tally(&checked, &outcomes);
    report.unhealthy = tally.unhealthy.iter().map(|u| Finding::new(&u.task_arn, &u.reason)).collect();
    let limits = StopLimits { max_fraction: config.max_stop_fraction, dry_run: config.dry_run };
    let (stop, held) = allowed_stops(&tally.unhealthy, &tally.services, tally.tasks_checked, limits);
    for (task, why) in held {
        tracing::warn!(task = %task.task_arn, reason = %task.reason, held_back_by = %why, "unhealthy task kept running");
        report.held_back.push(Finding::new(task.task_arn, why));
    }
    for task in stop {
        let Some(verified) = tasks.iter().find(|t| t.records.ownership.task.as_str() == task.task_arn) else {
            continue;
        };
        let current: RecordSet = verified.records.records.iter().cloned().collect();
        let units = vec![withdraw(&current)];
        let failed = apply(store, units, false, Fallback::FreshReads, deadline, &mut report.errors).await;
        if !failed.is_empty() {
            report
                .errors
                .push(format!("could not withdraw {} before stopping it; not stopped", task.task_arn));
            continue;
        }
        let reason: String =
            format!("ecssd health check failed: {}", task.reason).chars().take(255).collect();
        // Time is kept to put the records back if the stop fails.
        let stop_by = deadline.earlier_by(RESTORE_RESERVE);
        match stop_by.run(fleet.stop_task(&verified.cluster, &task.task_arn, &reason)).await {
            Ok(()) => {
                tracing::warn!(task = %task.task_arn, %reason, "stopped an unhealthy task");
                report.stopped.push(Finding::new(task.task_arn, reason));
            }
            Err(e) => {
                // The task runs on: its records go back, or it would serve without DNS until its
                // sidecar heals them.
                let restore = vec![current.iter().cloned().map(Change::create).collect()];
                let failed =
                    apply(store, restore, false, Fallback::ExactOnly, deadline, &mut report.errors).await;
                let records = if failed.is_empty() {
                    "its records were put back"
                } else {
                    "putting its records back failed"
                };
                tracing::error!(task = %task.task_arn, error = %e, records, "stopping an unhealthy task failed");
                report.errors.push(format!("stopping {}: {e}; {records}", task.task_arn));
            }
        }
    }
}
