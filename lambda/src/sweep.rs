//! One sweep: read the zone once, ask ECS and EC2 about the tasks found, delete what dead tasks and
//! hosts left, then (optionally) health-check the living and stop the unhealthy within the limits.
//! Generic over the narrow `RecordStore` and `Fleet`, so the same code runs against AWS and moto.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ecssd_records::{
    Action, BatchLimits, CallError, Change, RecordKey, RecordSet, RecordStore, batches, withdraw,
};

use crate::agents;
use crate::config::{Config, cluster_name};
use crate::decide::{HostState, ServiceHealth, StopLimits, TaskState, Unhealthy, allowed_stops, dead_reason};
use crate::fleet::{ECS_DESCRIBE_LIMIT, Fleet};
use crate::health::{self, HealthSettings};
use crate::inventory::{TaskRecords, inventory};
use crate::report::{Finding, Report};

/// TTL of the agent-disconnect markers; nobody resolves them.
const MARKER_TTL: u32 = 60;

/// Time a sweep may spend retrying rejected batches one record at a time; the function's timeout is
/// 240 s, and a report must still come out.
const FALLBACK_BUDGET: Duration = Duration::from_secs(120);

/// What to do when Route53 rejects a batch because the zone changed since the listing.
#[derive(Debug, Clone, Copy)]
enum Fallback {
    /// Retry each change alone against a fresh read, until the deadline (dead tasks' records: their
    /// task is known dead, so whatever its records hold now goes).
    FreshReads(Instant),
    /// Give up on the batch's changes (orphans: a changed record may have an owner again).
    ExactOnly,
}

/// Whether a container instance's host id names an EC2 instance (`i-…`), which EC2 can describe.
fn is_ec2_instance(id: &str) -> bool {
    id.starts_with("i-")
}

/// Runs one sweep. Only failing to read the zone ends it early; every other failure is reported and
/// makes the sweep more cautious, never more destructive.
pub async fn sweep<S: RecordStore, F: Fleet>(
    store: &S,
    fleet: &F,
    config: &Config,
) -> Result<Report, CallError> {
    let started = Instant::now();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let mut report = Report { dry_run: config.dry_run, ..Report::default() };
    let listed = store.list_all().await?;
    let markers = agents::markers(&config.owner_id, &listed);
    let inventory = inventory(&config.domain, &config.owner_id, listed);
    report.records_seen = inventory.records_seen;
    report.unreadable_ownership_records = inventory.unreadable.iter().map(ToString::to_string).collect();

    let tasks = tasks_in_scope(fleet, config, inventory.tasks, &mut report).await;
    report.tasks_seen = tasks.len();
    let states = describe_tasks(fleet, &tasks, &mut report).await;
    report.tasks_checked = states.values().filter(|s| **s != TaskState::Unknown).count();
    let (hosts, marker_changes) =
        describe_hosts(fleet, config, &tasks, &states, &markers, now, &mut report).await;

    let mut stale_keys = BTreeSet::new();
    let mut units = Vec::new();
    let mut alive = Vec::new();
    for task in tasks {
        let state = states.get(task.ownership.task.as_str()).cloned().unwrap_or(TaskState::Unknown);
        let host = match &state {
            TaskState::Found { container_instance: Some(ci), .. } => hosts.get(ci),
            _ => None,
        };
        match dead_reason(&state, host, config.agent_grace()) {
            Some(reason) => {
                tracing::info!(task = %task.ownership.task, %reason, "stale: deleting the task's records");
                report.stale_tasks.push(Finding { task: task.ownership.task.to_string(), reason });
                stale_keys.extend(task.records.iter().map(|r| r.key.clone()));
                units.push(withdraw(&task.records.iter().cloned().collect()));
            }
            None => alive.push((task, state)),
        }
    }
    units.extend(marker_changes.into_iter().map(|change| vec![change]));
    let deadline = started + FALLBACK_BUDGET;
    let failed =
        apply(store, units, config.dry_run, Fallback::FreshReads(deadline), &mut report.errors).await;
    report.stale_records_deleted = stale_keys.difference(&failed).count();

    let orphans = confirm_orphans(store, &config.domain, inventory.orphans, &mut report.errors).await;
    let orphan_keys: BTreeSet<RecordKey> = orphans.iter().map(|r| r.key.clone()).collect();
    let orphan_units = orphans.into_iter().map(|orphan| vec![Change::delete(orphan)]).collect();
    let failed = apply(store, orphan_units, config.dry_run, Fallback::ExactOnly, &mut report.errors).await;
    report.orphans_deleted = orphan_keys.difference(&failed).count();

    if config.health_check {
        check_health(store, fleet, config, alive, deadline, &mut report).await;
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// The tasks of watched clusters. With no clusters configured, every cluster is watched, and a task
/// whose cluster no longer exists is kept in scope (DescribeTasks then reports it missing).
async fn tasks_in_scope<F: Fleet>(
    fleet: &F,
    config: &Config,
    tasks: Vec<TaskRecords>,
    report: &mut Report,
) -> Vec<TaskRecords> {
    let watched = config.watched_clusters();
    if watched.is_empty() {
        if let Err(e) = fleet.list_clusters().await {
            report.errors.push(format!("listing clusters: {e}"));
        }
        return tasks;
    }
    let watched: BTreeSet<&str> = watched.iter().map(|c| cluster_name(c)).collect();
    tasks.into_iter().filter(|t| watched.contains(cluster_name(&t.ownership.cluster_arn))).collect()
}

/// ECS's view of every task, per cluster, 100 tasks a call. A failed call leaves its tasks Unknown.
async fn describe_tasks<F: Fleet>(
    fleet: &F,
    tasks: &[TaskRecords],
    report: &mut Report,
) -> BTreeMap<String, TaskState> {
    let mut by_cluster: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for task in tasks {
        by_cluster
            .entry(task.ownership.cluster_arn.as_str())
            .or_default()
            .push(task.ownership.task.to_string());
    }
    let mut states = BTreeMap::new();
    for (cluster, arns) in by_cluster {
        for chunk in arns.chunks(ECS_DESCRIBE_LIMIT) {
            match fleet.describe_tasks(cluster, chunk).await {
                Ok(found) => states.extend(found),
                Err(e) => report.errors.push(format!("describing tasks of {cluster}: {e}")),
            }
        }
    }
    states
}

/// Host state per container instance ARN, and the marker changes that track disconnected agents.
async fn describe_hosts<F: Fleet>(
    fleet: &F,
    config: &Config,
    tasks: &[TaskRecords],
    states: &BTreeMap<String, TaskState>,
    markers: &BTreeMap<String, (ecssd_records::Record, u64)>,
    now: u64,
    report: &mut Report,
) -> (BTreeMap<String, HostState>, Vec<Change>) {
    let mut by_cluster: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for task in tasks {
        if let Some(TaskState::Found { container_instance: Some(ci), last_status, .. }) =
            states.get(task.ownership.task.as_str())
            && last_status != "STOPPED"
        {
            by_cluster.entry(task.ownership.cluster_arn.as_str()).or_default().insert(ci.clone());
        }
    }
    let mut instances: BTreeMap<String, (Option<String>, bool)> = BTreeMap::new();
    // Markers are forgotten only when every task and host was described (see below).
    let mut described_all = tasks
        .iter()
        .all(|t| states.get(t.ownership.task.as_str()).is_some_and(|state| *state != TaskState::Unknown));
    for (cluster, arns) in by_cluster {
        let arns: Vec<String> = arns.into_iter().collect();
        for chunk in arns.chunks(ECS_DESCRIBE_LIMIT) {
            match fleet.describe_container_instances(cluster, chunk).await {
                Ok(found) => {
                    for arn in chunk {
                        // Unknown to ECS: deregistered, so its host is gone.
                        let entry = found
                            .get(arn)
                            .map_or((None, true), |(id, connected)| (Some(id.clone()), *connected));
                        instances.insert(arn.clone(), entry);
                    }
                }
                Err(e) => {
                    described_all = false;
                    report.errors.push(format!("describing container instances of {cluster}: {e}"));
                }
            }
        }
    }
    let ids: Vec<String> = instances
        .values()
        .filter_map(|(id, _)| id.clone().filter(|id| is_ec2_instance(id)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let ec2_states = if ids.is_empty() {
        Some(BTreeMap::new())
    } else {
        match fleet.instance_states(&ids).await {
            Ok(states) => Some(states),
            Err(e) => {
                report.errors.push(format!("describing EC2 instances: {e}"));
                None
            }
        }
    };
    let mut hosts = BTreeMap::new();
    let mut changes = Vec::new();
    let mut current_markers = BTreeSet::new();
    for (arn, (ec2_id, connected)) in instances {
        let marker_name = agents::marker_name(&config.domain, &config.owner_id, &arn);
        current_markers.insert(marker_name.clone());
        let marker = markers.get(&marker_name);
        let disconnected_for = match (connected, marker) {
            (true, Some((record, _))) => {
                changes.push(Change::delete(record.clone()));
                0
            }
            (true, None) => 0,
            (false, Some((_, since))) => now.saturating_sub(*since),
            (false, None) => {
                changes.push(agents::new_marker(&config.domain, &config.owner_id, &arn, now, MARKER_TTL));
                0
            }
        };
        let ec2_state = match (&ec2_id, &ec2_states) {
            // ECS Anywhere hosts (`mi-…`) are not EC2 instances: EC2 cannot vouch for them either way.
            (Some(id), _) if !is_ec2_instance(id) => Some("unknown".to_owned()),
            (None, _) => None,
            (Some(id), Some(states)) => states.get(id).cloned(),
            // EC2 did not answer: judge by ECS alone.
            (Some(_), None) => Some("unknown".to_owned()),
        };
        hosts.insert(
            arn,
            HostState { ec2_state, agent_disconnected_for: Duration::from_secs(disconnected_for) },
        );
    }
    // A marker of a host no live task runs on any more has nothing left to time; only forget it when
    // every host was described, or a failed call would reset a disconnected agent's clock.
    if described_all {
        let unused = markers.iter().filter(|(name, _)| !current_markers.contains(*name));
        changes.extend(unused.map(|(_, (record, _))| Change::delete(record.clone())));
    }
    (hosts, changes)
}

/// Applies units of changes in as few requests as Route53 allows. When a request is rejected (a
/// record changed or vanished since the listing, e.g. a sidecar deregistered concurrently), its
/// changes are retried one by one against fresh reads; a record already gone is not an error. Returns
/// the keys whose change did not happen.
async fn apply<S: RecordStore>(
    store: &S,
    units: Vec<Vec<Change>>,
    dry_run: bool,
    fallback: Fallback,
    errors: &mut Vec<String>,
) -> BTreeSet<RecordKey> {
    let mut failed = BTreeSet::new();
    if dry_run {
        return failed;
    }
    let mut out_of_time = false;
    for request in batches(units, BatchLimits::default()) {
        match store.apply(&request).await {
            Ok(()) => {}
            Err(CallError::Conflict { detail, .. }) => {
                let Fallback::FreshReads(deadline) = fallback else {
                    errors.push(format!(
                        "{} changes skipped, the zone changed meanwhile: {detail}",
                        request.len()
                    ));
                    failed.extend(request.into_iter().map(|c| c.record.key));
                    continue;
                };
                for change in request {
                    out_of_time = out_of_time || Instant::now() > deadline;
                    if out_of_time || !apply_alone(store, &change).await {
                        failed.insert(change.record.key.clone());
                    }
                }
            }
            Err(e) => {
                errors.push(format!("applying {} changes: {e}", request.len()));
                failed.extend(request.into_iter().map(|c| c.record.key));
            }
        }
    }
    if out_of_time {
        errors.push("ran out of time retrying rejected changes one by one; the next sweep goes on".into());
    }
    failed
}

/// The orphans still orphaned now: the listing is not a snapshot, and a task that registered while it
/// was read shows its SRV and A records without the ownership record listed earlier. Each orphan's
/// counterpart is read again; any sign of an owner (or a failed read) keeps the record.
async fn confirm_orphans<S: RecordStore>(
    store: &S,
    domain: &ecssd_records::Domain,
    orphans: Vec<ecssd_records::Record>,
    errors: &mut Vec<String>,
) -> Vec<ecssd_records::Record> {
    use ecssd_records::ownership::OWNERSHIP_LABEL;
    use ecssd_records::{Ownership, RecordType};
    let mut confirmed = Vec::new();
    for orphan in orphans {
        let counterparts: Vec<RecordKey> = match orphan.key.record_type {
            RecordType::Srv | RecordType::A => {
                let task_id = match orphan.key.record_type {
                    RecordType::Srv => orphan
                        .key
                        .set_identifier
                        .as_deref()
                        .and_then(ecssd_records::task_id_of_set_identifier),
                    _ => orphan.key.name.split('.').next(),
                };
                let Some(task_id) = task_id else { continue };
                let name = domain.child(&format!("{OWNERSHIP_LABEL}.{task_id}"));
                vec![RecordKey { name, record_type: RecordType::Txt, set_identifier: None }]
            }
            RecordType::Txt => match Ownership::decode(orphan.values()) {
                Ok(ownership) => {
                    let a = ecssd_records::ownership::address_name(domain, &ownership.task);
                    let a = RecordKey { name: a, record_type: RecordType::A, set_identifier: None };
                    std::iter::once(a).chain(ownership.srv).collect()
                }
                Err(_) => continue,
            },
        };
        let mut owned = false;
        for key in &counterparts {
            match store.read(key).await {
                Ok(None) => {}
                Ok(Some(_)) => owned = true,
                Err(e) => {
                    errors.push(format!("checking orphan {}: {e}", orphan.key));
                    owned = true;
                }
            }
            if owned {
                break;
            }
        }
        if !owned {
            confirmed.push(orphan);
        }
    }
    confirmed
}

/// One change against a fresh read: a DELETE removes whatever the record holds now (or nothing, if it
/// is already gone); a CREATE is retried once.
async fn apply_alone<S: RecordStore>(store: &S, change: &Change) -> bool {
    let change = match change.action {
        Action::Create => change.clone(),
        Action::Delete => match store.read(&change.record.key).await {
            Ok(Some(current)) => Change::delete(current),
            Ok(None) => return true,
            Err(_) => return false,
        },
    };
    store.apply(std::slice::from_ref(&change)).await.is_ok()
}

/// Health-checks the endpoints of living tasks; withdraws and stops the unhealthy ones the limits allow.
async fn check_health<S: RecordStore, F: Fleet>(
    store: &S,
    fleet: &F,
    config: &Config,
    alive: Vec<(TaskRecords, TaskState)>,
    fallback_deadline: Instant,
    report: &mut Report,
) {
    let grace = Duration::from_secs(config.health_grace_seconds);
    let mut endpoints = Vec::new();
    let mut in_grace = BTreeSet::new();
    for (index, (task, state)) in alive.iter().enumerate() {
        let TaskState::Found { last_status, running_for, .. } = state else { continue };
        if last_status != "RUNNING" {
            continue;
        }
        if running_for.is_none_or(|d| d < grace) {
            in_grace.insert(index);
            continue;
        }
        let Some(address) = task.address() else { continue };
        // HTTP reaches only TCP services; a `_udp` target is not checked (not failed either).
        for (service, port) in task.targets().into_iter().filter(|(service, _)| service.contains("._tcp.")) {
            let url = format!("http://{address}:{port}{}", config.health_check_path);
            endpoints.push(health::Endpoint { task: index, service, url });
        }
    }
    let settings = HealthSettings {
        path: config.health_check_path.clone(),
        timeout: Duration::from_millis(config.health_timeout_ms),
        attempts: config.health_attempts,
        concurrency: config.health_concurrency,
    };
    report.endpoints_checked = endpoints.len();
    let outcomes = health::check_all(endpoints, &settings).await;

    // Per task: the first failure; per service: how many tasks serve it and how many are healthy.
    let mut failures: BTreeMap<usize, String> = BTreeMap::new();
    let mut failed_services: BTreeSet<(usize, String)> = BTreeSet::new();
    for (endpoint, outcome) in &outcomes {
        if let Err(reason) = outcome {
            failures.entry(endpoint.task).or_insert_with(|| reason.clone());
            failed_services.insert((endpoint.task, endpoint.service.clone()));
        }
    }
    let mut services: BTreeMap<String, ServiceHealth> = BTreeMap::new();
    let mut checked_tasks = 0;
    for (index, (task, _)) in alive.iter().enumerate() {
        let served: BTreeSet<String> = task.targets().into_iter().map(|(service, _)| service).collect();
        let checked = outcomes.iter().any(|(e, _)| e.task == index);
        if !checked && !in_grace.contains(&index) {
            continue;
        }
        checked_tasks += usize::from(checked);
        for service in served {
            let health = services.entry(service.clone()).or_default();
            health.tasks += 1;
            health.healthy += usize::from(checked && !failed_services.contains(&(index, service)));
        }
    }
    let unhealthy: Vec<Unhealthy> = failures
        .iter()
        .map(|(index, reason)| {
            let task = &alive[*index].0;
            let services = task.targets().into_iter().map(|(service, _)| service).collect();
            let failed = failed_services
                .iter()
                .filter(|(i, _)| i == index)
                .map(|(_, service)| service.clone())
                .collect();
            Unhealthy { task_arn: task.ownership.task.to_string(), services, failed, reason: reason.clone() }
        })
        .collect();
    report.unhealthy =
        unhealthy.iter().map(|u| Finding { task: u.task_arn.clone(), reason: u.reason.clone() }).collect();
    let limits = StopLimits { max_fraction: config.max_stop_fraction, dry_run: config.dry_run };
    let (stop, held) = allowed_stops(&unhealthy, &services, checked_tasks, limits);
    for (task, why) in held {
        tracing::warn!(task = %task.task_arn, reason = %task.reason, held_back_by = %why, "unhealthy task kept running");
        report.held_back.push(Finding { task: task.task_arn, reason: why });
    }
    for task in stop {
        let Some((records, _)) = alive.iter().find(|(t, _)| t.ownership.task.as_str() == task.task_arn)
        else {
            continue;
        };
        let current: RecordSet = records.records.iter().cloned().collect();
        let fallback = Fallback::FreshReads(fallback_deadline);
        let failed = apply(store, vec![withdraw(&current)], false, fallback, &mut report.errors).await;
        if !failed.is_empty() {
            report
                .errors
                .push(format!("could not withdraw {} before stopping it; not stopped", task.task_arn));
            continue;
        }
        let reason = format!("ecssd health check failed: {}", task.reason);
        let reason: String = reason.chars().take(255).collect();
        match fleet.stop_task(&records.ownership.cluster_arn, &task.task_arn, &reason).await {
            Ok(()) => {
                tracing::warn!(task = %task.task_arn, %reason, "stopped an unhealthy task");
                report.stopped.push(Finding { task: task.task_arn, reason });
            }
            Err(e) => report.errors.push(format!("stopping {}: {e}", task.task_arn)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use clap::Parser;
    use ecssd_records::Record;
    use ecssd_records::memory::MemoryZone;

    use super::*;
    use crate::fixtures::{CLUSTER_ARN as CLUSTER, task_arn as arn, web_task_records};

    /// ECS as a table: task ARN -> state; describing fails when `ecs_down`.
    #[derive(Default)]
    struct TableFleet {
        tasks: BTreeMap<String, TaskState>,
        ecs_down: bool,
        stopped: Mutex<Vec<String>>,
    }

    impl Fleet for TableFleet {
        async fn list_clusters(&self) -> Result<Vec<String>, CallError> {
            Ok(vec![CLUSTER.into()])
        }

        async fn describe_tasks(
            &self,
            _cluster: &str,
            arns: &[String],
        ) -> Result<BTreeMap<String, TaskState>, CallError> {
            if self.ecs_down {
                let detail = "HTTP 503".into();
                let elapsed = std::time::Duration::from_secs(60);
                return Err(CallError::Exhausted {
                    operation: "DescribeTasks",
                    attempts: 9,
                    elapsed,
                    detail,
                });
            }
            Ok(arns
                .iter()
                .map(|a| (a.clone(), self.tasks.get(a).cloned().unwrap_or(TaskState::Missing)))
                .collect())
        }

        async fn describe_container_instances(
            &self,
            _cluster: &str,
            _arns: &[String],
        ) -> Result<BTreeMap<String, (String, bool)>, CallError> {
            Ok(BTreeMap::new())
        }

        async fn instance_states(&self, _ids: &[String]) -> Result<BTreeMap<String, String>, CallError> {
            Ok(BTreeMap::new())
        }

        async fn stop_task(&self, _cluster: &str, task_arn: &str, _reason: &str) -> Result<(), CallError> {
            self.stopped.lock().unwrap().push(task_arn.to_owned());
            Ok(())
        }
    }

    fn records_of(id: &str) -> Vec<Record> {
        web_task_records("default", id).into_iter().collect()
    }

    fn config() -> Config {
        Config::try_parse_from(["bootstrap", "--domain", "sd.internal"]).unwrap()
    }

    fn stopped() -> TaskState {
        TaskState::Found { last_status: "STOPPED".into(), running_for: None, container_instance: None }
    }

    #[tokio::test]
    async fn a_sidecar_deregistering_during_the_sweep_does_not_fail_it() {
        let zone = MemoryZone::new([records_of("t1"), records_of("t2")].concat());
        let fleet = TableFleet {
            tasks: BTreeMap::from([(arn("t1"), stopped()), (arn("t2"), stopped())]),
            ..TableFleet::default()
        };
        // t1's sidecar withdraws its records between the sweep's listing and its batch.
        let t1 = records_of("t1");
        zone.before_next_apply(move |records| {
            *records = records.iter().filter(|r| !t1.contains(r)).cloned().collect();
        });
        let report = sweep(&zone, &fleet, &config()).await.unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(zone.records().is_empty(), "{:?}", zone.records());
        assert_eq!(report.stale_records_deleted, 6);
        // list, the rejected batch, then each record alone against a fresh read.
        assert_eq!(zone.calls().iter().filter(|c| **c == "change").count(), 1 + 3);
    }

    #[tokio::test]
    async fn when_ecs_cannot_be_asked_nothing_is_deleted() {
        let zone = MemoryZone::new(records_of("t1"));
        let fleet = TableFleet { ecs_down: true, ..TableFleet::default() };
        let report = sweep(&zone, &fleet, &config()).await.unwrap();
        assert_eq!(zone.records().len(), 3);
        assert!(report.stale_tasks.is_empty());
        assert_eq!(report.tasks_checked, 0);
        assert!(report.errors[0].contains("HTTP 503"), "{:?}", report.errors);
    }

    #[tokio::test]
    async fn a_dry_run_reports_and_changes_nothing() {
        let zone = MemoryZone::new(records_of("t1"));
        let fleet = TableFleet { tasks: BTreeMap::from([(arn("t1"), stopped())]), ..TableFleet::default() };
        let config = Config { dry_run: true, ..config() };
        let report = sweep(&zone, &fleet, &config).await.unwrap();
        assert_eq!(report.stale_tasks.len(), 1);
        assert_eq!(zone.records().len(), 3);
        assert_eq!(zone.calls(), ["list"]);
    }
}
