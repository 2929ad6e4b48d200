//! One sweep: read the zone once, ask ECS and EC2 about the tasks claimed there, delete what ECS or EC2
//! confirms dead tasks and hosts left and what orphans this owner provably wrote, then (optionally)
//! health-check the targets ECS confirms and stop the unhealthy within the limits. Generic over the
//! narrow `RecordStore` and `Fleet`, so the same code runs against AWS and moto. Every failure is
//! reported and makes the sweep more cautious, never more destructive; the report always comes out
//! before the deadline.
//!
//! - [`handler`]: the function: a scheduled event in, one sweep's report out (and the shell's sweep).
//! - [`inventory`]: a zone listing grouped by task through ownership records; orphans, misfits. Pure.
//! - [`verify`]: whether a task's records say what ECS says (cluster, address, ports, the task
//!   definition's services). Pure.
//! - [`decide`]: which tasks are dead, the agent brake, which unhealthy tasks may be stopped. Pure.
//! - [`tally`]: health check outcomes per task and per service. Pure.
//! - [`agents`]: since when an ECS agent is disconnected, remembered in ecssd-owned TXT markers. Pure.
//! - [`hosts`]: describing the container instances and EC2 instances under the tasks found.
//! - [`health`]: concurrent HTTP health checks and TCP reachability probes.
//! - [`orphans`]: confirming orphans by name within a read budget.
//! - [`apply`]: deleting in batches, retrying rejected ones against fresh reads.
//! - [`stops`]: health-checking confirmed targets and stopping unhealthy tasks within the limits.
//! - [`report`]: what a sweep did, as JSON and CloudWatch Embedded Metric Format.

pub mod agents;
pub mod apply;
pub mod decide;
pub mod handler;
pub mod health;
pub mod hosts;
pub mod inventory;
pub mod orphans;
pub mod report;
pub mod stops;
pub mod tally;
pub mod verify;

pub use report::Report;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ecssd_records::{Change, RecordKey, RecordStore, withdraw};

use self::apply::{Fallback, apply};
use self::decide::{Verdict, agent_brake, verdict};
use self::health::Probe;
use self::hosts::{AgentMemory, Hosts, describe_hosts};
use self::inventory::{TaskRecords, inventory};
use self::stops::{Verified, check_and_stop};
use self::verify::{Target, cluster_to_ask, verify};
use crate::config::Config;
use crate::deadline::Deadline;
use crate::fleet::{DefinitionFacts, Fleet, TaskAnswer, describe_by_cluster};
use crate::report::Finding;

/// What ECS said in this sweep: about the tasks, and about their task definitions.
struct EcsWord {
    answers: Answers,
    definitions: Definitions,
}

/// A task in scope and the cluster it is asked about.
struct Claimed {
    records: TaskRecords,
    cluster: String,
}

/// ECS's answers, keyed by (cluster asked, task ARN).
type Answers = BTreeMap<(String, String), TaskAnswer>;

/// The task definition revisions of the tasks ECS described, by ARN; one that could not be read is
/// absent.
type Definitions = BTreeMap<String, Arc<DefinitionFacts>>;

/// Whether a described task's records agree with ECS.
enum Check {
    /// Every record agrees: its targets.
    Confirmed(Vec<Target>),
    /// A record says what ECS does not: why.
    Disagrees(String),
    /// ECS's word is missing (its task definition could not be read): why.
    Unknown(String),
}

impl Claimed {
    fn arn(&self) -> String {
        self.records.ownership.task.to_string()
    }

    fn answer<'a>(&self, answers: &'a Answers) -> Option<&'a TaskAnswer> {
        answers.get(&(self.cluster.clone(), self.arn()))
    }

    /// Whether every record of it agrees with what ECS (its task and task definition) and EC2 (its
    /// host) say. `None` when ECS did not describe it.
    fn check(&self, config: &Config, ecs: &EcsWord, hosts: &Hosts) -> Option<Check> {
        let Some(TaskAnswer::Found(facts)) = self.answer(&ecs.answers) else { return None };
        let Some(definition) = facts.task_definition_arn.as_ref().and_then(|arn| ecs.definitions.get(arn))
        else {
            let arn = facts.task_definition_arn.as_deref().unwrap_or("(none given)");
            return Some(Check::Unknown(format!("its task definition {arn} could not be read: not checked")));
        };
        let host = facts.container_instance.as_ref().and_then(|ci| hosts.addresses.get(ci)).copied();
        Some(match verify(&config.domain, &config.owner_id, &self.records, facts, definition, host) {
            Ok(targets) => Check::Confirmed(targets),
            Err(why) => Check::Disagrees(why),
        })
    }
}

/// Runs one sweep within `deadline`.
pub async fn sweep<S: RecordStore, F: Fleet>(
    store: &S,
    fleet: &F,
    config: &Config,
    deadline: Deadline,
) -> Report {
    let started = Instant::now();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let mut report = Report { dry_run: config.dry_run, ..Report::default() };
    let listed = match deadline.run(store.list_all()).await {
        Ok(listed) => listed,
        Err(e) => {
            report.errors.push(format!("reading the zone: {e}; nothing else was done"));
            return finish(report, started, deadline);
        }
    };
    let markers = agents::markers(&config.owner_id, &listed);
    let inventory = inventory(&config.domain, &config.owner_id, listed, now);
    report.records_seen = inventory.records_seen;
    report.unreadable_ownership_records = inventory.unreadable.iter().map(ToString::to_string).collect();
    report.orphans_unproven = inventory.unproven.iter().map(ToString::to_string).collect();
    report.disagreements =
        inventory.misfits.iter().map(|m| Finding::disagreement(&m.task, &m.reason)).collect();

    let tasks = in_scope(config, inventory.tasks, &mut report);
    report.tasks_seen = tasks.len();
    let answers = describe_tasks(fleet, &tasks, deadline, &mut report.errors).await;
    report.tasks_checked = answers.len();
    let running = answers
        .values()
        .filter(|a| matches!(a, TaskAnswer::Found(facts) if facts.last_status == "RUNNING"))
        .count();
    let mut wanted_hosts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (cluster, answer) in answers.iter().map(|((c, _), a)| (c, a)) {
        if let TaskAnswer::Found(facts) = answer
            && let Some(ci) = &facts.container_instance
            && facts.last_status != "STOPPED"
        {
            wanted_hosts.entry(cluster.clone()).or_default().insert(ci.clone());
        }
    }
    let described_all = answers.len() == tasks.len();
    let memory = AgentMemory { markers: &markers, now };
    let hosts =
        describe_hosts(fleet, config, wanted_hosts, described_all, memory, deadline, &mut report.errors)
            .await;

    let mut dead = Vec::new();
    let mut silent = Vec::new();
    let mut alive = Vec::new();
    for task in tasks {
        let answer = task.answer(&answers);
        let host = match answer {
            Some(TaskAnswer::Found(facts)) => {
                facts.container_instance.as_ref().and_then(|ci| hosts.states.get(ci))
            }
            _ => None,
        };
        match verdict(answer, host, config.agent_grace()) {
            Verdict::Dead(reason) => dead.push((task, reason)),
            Verdict::Unknown(reason) => report.unknown.push(Finding::new(task.arn(), reason)),
            Verdict::AgentSilent(away) => silent.push((task, away)),
            Verdict::Alive => alive.push(task),
        }
    }
    let to_check = alive.iter().chain(silent.iter().map(|(task, _)| task));
    let definitions = describe_definitions(fleet, to_check, &answers, deadline, &mut report.errors).await;
    let ecs = EcsWord { answers, definitions };
    let verified = verify_alive(config, alive, &ecs, &hosts, &mut report);
    dead.extend(agent_silent_to_withdraw(config, silent, &ecs, &hosts, running, deadline, &mut report).await);

    let mut stale_keys = BTreeSet::new();
    let mut units = Vec::new();
    for (task, reason) in dead {
        tracing::info!(task = %task.arn(), %reason, "stale: deleting the task's records");
        report.stale_tasks.push(Finding::new(task.arn(), reason));
        stale_keys.extend(task.records.records.iter().map(|r| r.key.clone()));
        units.push(withdraw(&task.records.records.iter().cloned().collect()));
    }
    units.extend(hosts.marker_changes.into_iter().map(|change| vec![change]));
    let failed =
        apply(store, units, config.dry_run, Fallback::FreshReads, deadline, &mut report.errors).await;
    report.stale_records_deleted = stale_keys.difference(&failed).count();

    let confirmed = orphans::confirm(
        store,
        &config.domain,
        inventory.orphans,
        config.orphan_reads_per_sweep,
        deadline,
        &mut report.errors,
    )
    .await;
    report.orphans_deferred = confirmed.deferred;
    let orphan_keys: BTreeSet<RecordKey> = confirmed.orphans.iter().map(|r| r.key.clone()).collect();
    let orphan_units = confirmed.orphans.into_iter().map(|orphan| vec![Change::delete(orphan)]).collect();
    let failed =
        apply(store, orphan_units, config.dry_run, Fallback::ExactOnly, deadline, &mut report.errors).await;
    report.orphans_deleted = orphan_keys.difference(&failed).count();

    if config.health_check {
        check_and_stop(store, fleet, config, verified, deadline, &mut report).await;
    }
    finish(report, started, deadline)
}

fn finish(mut report: Report, started: Instant, deadline: Deadline) -> Report {
    report.out_of_time = deadline.passed();
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// The tasks to ask about: each with the cluster its ARN names (a disagreeing claim is reported and left
/// out), of the watched clusters only when some are named, and of at most `max_clusters` clusters: the
/// ones most tasks claim (any task can write claims naming any number of clusters, and each cluster
/// costs ECS requests); the rest are reported.
fn in_scope(config: &Config, tasks: Vec<TaskRecords>, report: &mut Report) -> Vec<Claimed> {
    let mut claimed = Vec::new();
    for records in tasks {
        match cluster_to_ask(&records) {
            Ok(cluster) if config.watches(&cluster) => {
                claimed.push(Claimed { records, cluster });
            }
            Ok(_) => {}
            Err(why) => {
                report.disagreements.push(Finding::disagreement(records.ownership.task.to_string(), &why))
            }
        }
    }
    let mut claims: BTreeMap<&str, usize> = BTreeMap::new();
    for task in &claimed {
        *claims.entry(task.cluster.as_str()).or_default() += 1;
    }
    if claims.len() <= config.max_clusters {
        return claimed;
    }
    let mut by_claims: Vec<(&str, usize)> = claims.into_iter().collect();
    by_claims.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let (asked, left): (Vec<_>, Vec<_>) =
        by_claims.into_iter().enumerate().partition(|(rank, _)| *rank < config.max_clusters);
    let asked: BTreeSet<String> = asked.into_iter().map(|(_, (cluster, _))| cluster.to_owned()).collect();
    report.clusters_not_asked =
        left.into_iter().map(|(_, (cluster, tasks))| format!("{cluster} ({tasks} tasks)")).collect();
    tracing::warn!(
        limit = config.max_clusters,
        not_asked = report.clusters_not_asked.len(),
        "records name more clusters than one sweep asks ECS about (ECSSD_MAX_CLUSTERS); name the watched \
         clusters (ECSSD_CLUSTERS) to choose"
    );
    claimed.into_iter().filter(|task| asked.contains(&task.cluster)).collect()
}

/// ECS's answers, keyed by (cluster asked, task ARN), 100 tasks a call. An answer only counts for the
/// cluster it was asked about; a failed call leaves its tasks unanswered (unknown).
async fn describe_tasks<F: Fleet>(
    fleet: &F,
    tasks: &[Claimed],
    deadline: Deadline,
    errors: &mut Vec<String>,
) -> Answers {
    let asked = tasks.iter().map(|task| (task.cluster.as_str(), task.arn()));
    let (answers, unanswered) = describe_by_cluster(fleet, asked, deadline).await;
    errors.extend(unanswered.into_iter().map(|u| format!("describing tasks of {}: {}", u.cluster, u.error)));
    answers
}

/// The task definition revision of each task to check, each described once (and kept by the fleet
/// across sweeps: a revision never changes). One that cannot be read leaves its tasks unchecked.
async fn describe_definitions<'a, F: Fleet>(
    fleet: &F,
    tasks: impl Iterator<Item = &'a Claimed>,
    answers: &Answers,
    deadline: Deadline,
    errors: &mut Vec<String>,
) -> Definitions {
    let wanted: BTreeSet<&String> = tasks
        .filter_map(|task| match task.answer(answers) {
            Some(TaskAnswer::Found(facts)) => facts.task_definition_arn.as_ref(),
            _ => None,
        })
        .collect();
    let mut definitions = BTreeMap::new();
    for arn in wanted {
        match deadline.run(fleet.task_definition(arn)).await {
            Ok(facts) => {
                definitions.insert(arn.clone(), facts);
            }
            Err(e) => errors.push(format!("describing task definition {arn}: {e}")),
        }
    }
    definitions
}

/// The living tasks whose records ECS confirms; the others are reported as disagreements or unknown.
fn verify_alive(
    config: &Config,
    alive: Vec<Claimed>,
    ecs: &EcsWord,
    hosts: &Hosts,
    report: &mut Report,
) -> Vec<Verified> {
    let mut verified = Vec::new();
    for task in alive {
        let (Some(TaskAnswer::Found(facts)), Some(checked)) =
            (task.answer(&ecs.answers), task.check(config, ecs, hosts))
        else {
            continue;
        };
        match checked {
            Check::Confirmed(targets) => verified.push(Verified {
                facts: (**facts).clone(),
                records: task.records,
                cluster: task.cluster,
                targets,
            }),
            Check::Disagrees(why) => report.disagreements.push(Finding::disagreement(task.arn(), &why)),
            Check::Unknown(why) => report.unknown.push(Finding::new(task.arn(), why)),
        }
    }
    verified
}

/// The agent-silent tasks whose records go: ECS still reports them running, so more evidence is
/// needed (every TCP target ECS confirms refuses a connection), and the agent brake bounds how many.
async fn agent_silent_to_withdraw(
    config: &Config,
    silent: Vec<(Claimed, Duration)>,
    ecs: &EcsWord,
    hosts: &Hosts,
    running: usize,
    deadline: Deadline,
    report: &mut Report,
) -> Vec<(Claimed, String)> {
    if !config.reaches_tasks {
        for (task, away) in silent {
            let why = format!(
                "its ECS agent has been disconnected for {}s, but this sweeper does not reach the tasks' \
                 endpoints (outside their VPC: ECSSD_REACHES_TASKS=false), so it cannot gather evidence: kept",
                away.as_secs()
            );
            report.unknown.push(Finding::new(task.arn(), why));
        }
        return Vec::new();
    }
    let mut candidates = Vec::new();
    let mut probes: Vec<(usize, SocketAddr)> = Vec::new();
    for (task, away) in silent {
        let targets = match task.check(config, ecs, hosts) {
            None => continue,
            Some(Check::Confirmed(targets)) => targets,
            Some(Check::Disagrees(why)) => {
                report.disagreements.push(Finding::disagreement(task.arn(), &why));
                continue;
            }
            Some(Check::Unknown(why)) => {
                report.unknown.push(Finding::new(task.arn(), why));
                continue;
            }
        };
        let tcp: Vec<SocketAddr> =
            targets.iter().filter(|t| t.tcp).map(|t| SocketAddr::from((t.address, t.port))).collect();
        if tcp.is_empty() {
            let why = "its ECS agent is disconnected, and it has no TCP endpoint to confirm it is gone";
            report.unknown.push(Finding::new(task.arn(), why));
            continue;
        }
        probes.extend(tcp.into_iter().map(|address| (candidates.len(), address)));
        candidates.push((task, away));
    }
    let timeout = Duration::from_millis(config.health_timeout_ms);
    let addresses = probes.iter().map(|(_, a)| *a).collect();
    let Some(outcomes) = deadline.within(health::probe(addresses, timeout, config.health_concurrency)).await
    else {
        report.errors.push("out of time probing agent-silent tasks: none withdrawn this run".into());
        return Vec::new();
    };
    // Per candidate, the strongest answer any of its endpoints gave: one that answers keeps the task,
    // and only refusals from every one of them are evidence that it is gone.
    let mut answered = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for ((index, _), outcome) in probes.iter().zip(outcomes) {
        match outcome {
            Probe::Answered => answered.insert(*index),
            Probe::Silent => silent.insert(*index),
            Probe::Refused => false,
        };
    }
    let mut evidenced = Vec::new();
    for (index, (task, away)) in candidates.into_iter().enumerate() {
        let away_s = away.as_secs();
        if answered.contains(&index) {
            let why = format!(
                "its ECS agent has been disconnected for {away_s}s, but its endpoints still answer: kept"
            );
            report.unknown.push(Finding::new(task.arn(), why));
        } else if silent.contains(&index) {
            let why = format!(
                "its ECS agent has been disconnected for {away_s}s, and its endpoints do not answer, but none \
                 refused a connection (a timeout or an unreachable network is not evidence): kept"
            );
            report.unknown.push(Finding::new(task.arn(), why));
        } else {
            evidenced.push((task, away));
        }
    }
    if let Err(why) = agent_brake(evidenced.len(), running, config.agent_max_delete_fraction) {
        tracing::warn!(%why, "agent brake: no agent-silent task withdrawn this run");
        report.braked.extend(evidenced.iter().map(|(task, _)| Finding::new(task.arn(), why.clone())));
        return Vec::new();
    }
    let grace = config.agent_grace().as_secs();
    evidenced
        .into_iter()
        .map(|(task, away)| {
            let reason = format!(
                "its ECS agent has been disconnected for {}s (grace {grace}s) and its endpoints refuse connections",
                away.as_secs()
            );
            (task, reason)
        })
        .collect()
}

#[cfg(test)]
mod tests;
