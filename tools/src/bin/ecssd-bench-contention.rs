//! Measures how a sweep of a full zone slows sidecars down (a benchmark, not a test): sidecars starting
//! at once while `bootstrap --once` sweeps a zone at Route53's 10,000-record quota, against a Route53
//! limited to 5 requests/s per account; their registration latency with the sweep and, on a fresh bed
//! otherwise identical, without it. Run it on a release build:
//!
//! ```sh
//! cargo build --release --workspace --bins && cargo run --release -p ecssd-tools --bin ecssd-bench-contention [SIDECARS [ZONE_RECORDS]]
//! ```
//!
//! SIDECARS (default 50, at most 100: one SRV name holds at most 100 multivalue records) and
//! ZONE_RECORDS (default 10,000) size the bed. Per round:
//! - the zone is seeded through the observer (unthrottled, uncounted) so that, with its NS and SOA and
//!   the sidecars' own records once they register, it holds exactly ZONE_RECORDS records. The seeded
//!   records are those of tasks in a cluster that exists in ECS (moto) but does not know them, so ECS
//!   answers MISSING and the sweep does the whole of its Route53 work: a full listing, ECS describes,
//!   and the deletion of every seeded record. Their services (`_seed<n>._tcp`) are not the sidecars'.
//! - the sidecars' tasks are placed in ECS (a `bench` cluster on one EC2-backed host) and run in
//!   Docker, one `web` container each with `SERVICE_80_NAME=_bench._tcp`: ECS reports them RUNNING, as
//!   it would for real sidecars, so the sweep keeps their records.
//! - Route53 is throttled to 5 requests/s (burst 5) for everyone but the observer.
//! - with the sweep: `bootstrap --once` starts (its default ECSSD_ROUTE53_REQUESTS_PER_SECOND, 2),
//!   and the sidecars are all spawned as soon as moto has seen its first ListResourceRecordSets.
//! - a sidecar's registration latency runs from its spawn to its SRV target being in the zone, read by
//!   the observer every 250 ms (one listing of `_bench._tcp` a poll): latencies are upper bounds
//!   within 250 ms plus one listing.
#![allow(clippy::print_stdout)]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_route53::types::RrType;
use ecssd_records::ownership::address_name;
use ecssd_records::{RecordSet, RecordStore, TaskArn};
use ecssd_tests::docker::ContainerSpec;
use ecssd_tests::ecs::{Fleet, PlacedTask, seed, task_records};
use ecssd_tests::measure::percentile;
use ecssd_tests::metadata::NetworkMode;
use ecssd_tests::sidecar::{Sidecar, SidecarOptions};
use ecssd_tests::sweeper::{ShellSweep, base_env, sweep_once};
use ecssd_tests::wait_for;
use ecssd_tests::world::{DOMAIN, RunningTask, World};

const DEFAULT_SIDECARS: usize = 50;
/// Route53's default quota of records per hosted zone (NS and SOA count).
const DEFAULT_ZONE_RECORDS: usize = 10_000;
/// The zone's apex NS and SOA, which count against the quota but are not in `list_all`.
const APEX_RECORDS: usize = 2;
/// Route53 holds at most 100 multivalue records of one name and type.
const TARGETS_PER_SERVICE: usize = 100;
/// The sidecars' one service.
const SERVICE: &str = "_bench._tcp";
const SEEDED_CLUSTER: &str = "seeded";
const BENCH_CLUSTER: &str = "bench";
/// How often the observer reads the sidecars' SRV records: gently, moto shares the machine with them.
const POLL: Duration = Duration::from_millis(250);
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(900);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let count: usize = args.get(1).map_or(Ok(DEFAULT_SIDECARS), |n| n.parse()).context("SIDECARS")?;
    let zone_records: usize =
        args.get(2).map_or(Ok(DEFAULT_ZONE_RECORDS), |n| n.parse()).context("ZONE_RECORDS")?;
    anyhow::ensure!(
        (1..=TARGETS_PER_SERVICE).contains(&count),
        "SIDECARS must be 1-{TARGETS_PER_SERVICE}: they share one SRV name"
    );
    let started = Instant::now();
    let with_sweep = round(count, zone_records, true).await?;
    let without_sweep = round(count, zone_records, false).await?;

    println!(
        "\n## {count} sidecars registering while a sweep of a {zone_records}-record zone runs, Route53 \
         limited to 5 requests/s"
    );
    println!(
        "| round | sidecars | p50 | p99 | max | sweep duration | sweep Route53 requests | throttled requests (moto stats) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for round in [&with_sweep, &without_sweep] {
        round.print_row();
    }
    println!();
    for round in [&with_sweep, &without_sweep] {
        round.print_notes();
    }
    let build = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!(
        "\n(command: `{}`, a {build} build; latencies from each sidecar's spawn to its SRV target in the \
         zone, polled every {} ms; throttled = Route53 requests moto refused as Throttling from the \
         sidecars' spawn until the last registered)",
        args.join(" "),
        POLL.as_millis()
    );
    println!("(benchmark took {:.0} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// What one round measured.
#[derive(Debug)]
struct Round {
    name: &'static str,
    count: usize,
    /// Registration latencies in seconds, sorted.
    latencies: Vec<f64>,
    /// From the sidecars' spawn until the last registration was seen, in seconds.
    window: f64,
    /// Route53 requests (all operations) moto saw in that window, and how many it throttled.
    requests: u64,
    throttled: u64,
    /// The window's Route53 stats by operation.
    by_operation: serde_json::Value,
    /// Log lines of sidecars retrying after PriorRequestNotComplete.
    refused_busy: usize,
    /// The sidecars' targets in the zone once the round (and its sweep) ended.
    present_after: usize,
    sweep: Option<SweepOutcome>,
}

/// The sweep of the round, its times relative to the sidecars' spawn.
#[derive(Debug)]
struct SweepOutcome {
    /// Seconds from its spawn to the sidecars' spawn (it starts first).
    started_before: f64,
    /// Seconds from the sidecars' spawn to its exit (negative: it ended before them).
    ended_at: f64,
    /// Spawn to exit, in seconds.
    wall: f64,
    /// The sweep's own `duration_ms`.
    reported_ms: u64,
    /// Route53 calls the sweep's report counts, and by operation.
    route53_calls: u64,
    route53_by_operation: serde_json::Value,
    /// Route53 requests of everyone (sweep and sidecars) from the sweep's spawn to its exit, and how
    /// many moto throttled.
    requests_during: u64,
    throttled_during: u64,
    records_seen: u64,
    stale_records_deleted: u64,
    seeded: usize,
    orphans_deleted: u64,
    /// Sidecar tasks the sweep found dead (must be none).
    bench_tasks_stale: usize,
    disagreements: usize,
    /// The first disagreement's reason (the bench's tasks register loopback addresses and Docker's
    /// ports, not the EC2 address and port ECS reports: the sweep keeps them and says so).
    first_disagreement: Option<String>,
    unknown: usize,
    out_of_time: bool,
    errors: Vec<String>,
}

impl Round {
    fn print_row(&self) {
        let (p50, p99, max) = (
            percentile(&self.latencies, 50.0),
            percentile(&self.latencies, 99.0),
            self.latencies.last().copied().unwrap_or(f64::NAN),
        );
        let (duration, calls) = match &self.sweep {
            Some(sweep) => {
                (format!("{:.1} s", sweep.reported_ms as f64 / 1000.0), sweep.route53_calls.to_string())
            }
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "| {} | {} | {p50:.1} s | {p99:.1} s | {max:.1} s | {duration} | {calls} | {} of {} |",
            self.name, self.count, self.throttled, self.requests
        );
    }

    fn print_notes(&self) {
        println!(
            "- {}: the last of {} sidecars registered {:.1} s after their spawn; {} of {} targets still in \
             the zone at the end; {} retries after PriorRequestNotComplete; Route53 in the window: {}",
            self.name,
            self.count,
            self.window,
            self.present_after,
            self.count,
            self.refused_busy,
            self.by_operation
        );
        if let Some(sweep) = &self.sweep {
            let overlapped = sweep.ended_at >= self.window;
            println!(
                "  sweep: spawned {:.1} s before the sidecars (they started once moto saw its first \
                 ListResourceRecordSets), exited {:.1} s after their spawn ({:.1} s wall, {} ms by its \
                 report): {} the whole registration window",
                sweep.started_before,
                sweep.ended_at,
                sweep.wall,
                sweep.reported_ms,
                if overlapped { "overlapped" } else { "did NOT overlap" }
            );
            println!(
                "  sweep: {} Route53 calls by its report ({}); from its spawn to its exit moto saw {} Route53 \
                 requests of everyone and throttled {}",
                sweep.route53_calls,
                sweep.route53_by_operation,
                sweep.requests_during,
                sweep.throttled_during
            );
            println!(
                "  sweep report: {} records seen, {} of {} seeded records deleted, {} orphans deleted, {} \
                 sidecar tasks found dead, {} disagreements, {} unknown, out of time: {}, errors: {:?}",
                sweep.records_seen,
                sweep.stale_records_deleted,
                sweep.seeded,
                sweep.orphans_deleted,
                sweep.bench_tasks_stale,
                sweep.disagreements,
                sweep.unknown,
                sweep.out_of_time,
                sweep.errors
            );
            if let Some(reason) = &sweep.first_disagreement {
                println!("  first disagreement: {reason}");
            }
        }
    }
}

/// One round on a fresh bed: seed, prepare the sidecars' tasks, throttle, (sweep,) spawn, measure.
async fn round(count: usize, zone_records: usize, sweep: bool) -> anyhow::Result<Round> {
    let name = if sweep { "with sweep" } else { "without sweep" };
    let world = World::new().await?;
    let fleet = Fleet::new(&world.moto).await?;
    fleet.cluster(SEEDED_CLUSTER).await?;
    fleet.cluster(BENCH_CLUSTER).await?;
    let host = fleet.host(BENCH_CLUSTER).await?;

    let preparing = Instant::now();
    let placed = fleet.start_tasks(&host, count).await?;
    let per_sidecar = task_records(&placed[0], Ipv4Addr::LOCALHOST, &[(SERVICE, 80)])?.len();
    let seeded = zone_records
        .checked_sub(APEX_RECORDS + per_sidecar * count)
        .filter(|n| *n > 0)
        .with_context(|| format!("{zone_records} records leave no room to seed beside {count} sidecars"))?;
    let sets = seed_sets(seeded)?;
    let seeded_tasks = sets.len();
    seed(&world.zone, sets).await?;
    let listed = world.zone.list_all().await?.len();
    anyhow::ensure!(listed == seeded, "seeded {listed} records, meant {seeded}");

    let variable = format!("SERVICE_80_NAME={SERVICE}");
    let mut tasks: Vec<(RunningTask, String)> = Vec::with_capacity(count);
    for task in &placed {
        let running = world
            .placed_task(task, &[ContainerSpec::httpd("web", &[variable.as_str()])], NetworkMode::Bridge)
            .await?;
        // The SRV target the task's sidecar registers: its A record's name.
        let target = address_name(&world.zone.domain(), task.task_arn.parse::<TaskArn>()?.id());
        tasks.push((running, target.trim_end_matches('.').to_ascii_lowercase()));
    }
    println!(
        "\n## round {name}: zone seeded with {seeded} records of {seeded_tasks} tasks MISSING in ECS \
         (+{APEX_RECORDS} NS/SOA, +{} for the sidecars = {zone_records}); {count} sidecar tasks placed \
         in ECS and started in Docker; bed ready in {:.0} s (not part of the measurement)",
        per_sidecar * count,
        preparing.elapsed().as_secs_f64()
    );

    world.moto.set_account_rate(Some(ecssd_tests::moto::AccountRate::Five)).await?;
    let before = world.moto.stats().await?;

    let sweeping = if sweep {
        let env = base_env(&world.moto);
        let spawned = Instant::now();
        let handle = tokio::spawn(async move {
            let run = sweep_once(&env, &[]).await;
            (run, Instant::now())
        });
        let lists_before = requests_of(&before, "ListResourceRecordSets");
        let listing =
            wait_for("the sweep's first ListResourceRecordSets", Duration::from_secs(60), || async {
                if handle.is_finished() {
                    return Ok(Some(false));
                }
                let stats = world.moto.stats().await?;
                Ok((requests_of(&stats, "ListResourceRecordSets") > lists_before).then_some(true))
            })
            .await?;
        if !listing {
            let (run, _) = handle.await?;
            let run = run?;
            anyhow::bail!("the sweep ended before listing the zone: {:?}\n{}", run.report, run.stderr);
        }
        Some((spawned, handle))
    } else {
        None
    };

    // The window's counters start here: the sweep's requests before the sidecars' spawn are not in it.
    let at_launch = world.moto.stats().await?;
    let launch = Instant::now();
    let mut sidecars = Vec::with_capacity(count);
    let mut spawned_at = Vec::with_capacity(count);
    let options = SidecarOptions {
        args: vec![format!("--zone-id={}", world.zone.zone_id()), "--log-level=warn".to_owned()],
        env: vec![],
    };
    for (task, _) in &tasks {
        spawned_at.push(Instant::now());
        sidecars.push(Sidecar::spawn(&world.moto, &task.metadata, options.clone()).await?);
    }

    let client = world.observer_client();
    let zone_id = world.zone.zone_id();
    let srv_name = format!("{SERVICE}.{DOMAIN}.");
    let registered: Mutex<Vec<Option<Instant>>> = Mutex::new(vec![None; count]);
    wait_for("every sidecar to register", REGISTRATION_TIMEOUT, || async {
        // wait_for itself waits 50 ms between checks.
        tokio::time::sleep(POLL.saturating_sub(Duration::from_millis(50))).await;
        let present = srv_targets(&client, &zone_id, &srv_name).await?;
        let now = Instant::now();
        let mut registered = registered.lock().unwrap_or_else(PoisonError::into_inner);
        for ((_, target), at) in tasks.iter().zip(registered.iter_mut()) {
            if at.is_none() && present.contains(target) {
                *at = Some(now);
            }
        }
        Ok(registered.iter().all(Option::is_some).then_some(()))
    })
    .await?;
    let window_end = Instant::now();
    let after = world.moto.stats().await?;
    let registered = registered.into_inner().unwrap_or_else(PoisonError::into_inner);
    let mut latencies: Vec<f64> = registered
        .iter()
        .zip(&spawned_at)
        .filter_map(|(at, spawned)| Some(at.as_ref()?.duration_since(*spawned).as_secs_f64()))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let last = registered.iter().flatten().max().copied().unwrap_or(window_end);

    let sweep = match sweeping {
        Some((spawned, handle)) => {
            let (run, ended) = handle.await?;
            let run = run?;
            let (requests_during, throttled_during) = route53_totals(&world.moto.stats().await?, &before);
            let bench_arns: BTreeSet<&str> = placed.iter().map(|t| t.task_arn.as_str()).collect();
            let mut outcome = sweep_outcome(&run, spawned, ended, launch, seeded, &bench_arns)?;
            (outcome.requests_during, outcome.throttled_during) = (requests_during, throttled_during);
            Some(outcome)
        }
        None => {
            // The zone at its peak: the seeded records, the sidecars', NS and SOA.
            let peak = world.zone.list_all().await?.len() + APEX_RECORDS;
            anyhow::ensure!(
                peak == zone_records,
                "the zone holds {peak} records at its peak, meant {zone_records}"
            );
            None
        }
    };
    let present_after = srv_targets(&client, &zone_id, &srv_name).await?;
    let present_after = tasks.iter().filter(|(_, target)| present_after.contains(target)).count();
    let refused_busy = sidecars
        .iter()
        .map(|s| s.logs().iter().filter(|line| line.contains("PriorRequestNotComplete")).count())
        .sum();
    let (requests, throttled) = route53_totals(&after, &at_launch);
    Ok(Round {
        name,
        count,
        latencies,
        window: last.duration_since(launch).as_secs_f64(),
        requests,
        throttled,
        by_operation: route53_by_operation(&after, &at_launch),
        refused_busy,
        present_after,
        sweep,
    })
}

/// Record sets of tasks in the seeded cluster, `records` records in all: ownership, A and one SRV per
/// task, and a second SRV for as many tasks as the remainder needs. Services of at most 100 targets.
fn seed_sets(records: usize) -> anyhow::Result<Vec<RecordSet>> {
    let per_task = 3;
    let tasks = records / per_task;
    let two_service = records - tasks * per_task;
    anyhow::ensure!(tasks > 0 && two_service <= tasks, "cannot seed {records} records");
    let cluster_arn = format!("arn:aws:ecs:us-east-1:123456789012:cluster/{SEEDED_CLUSTER}");
    let mut sets = Vec::with_capacity(tasks);
    for index in 0..tasks {
        // A task id of ECS's shape that ECS never issued: DescribeTasks answers MISSING.
        let id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let task = PlacedTask {
            cluster_arn: cluster_arn.clone(),
            task_arn: format!("arn:aws:ecs:us-east-1:123456789012:task/{SEEDED_CLUSTER}/{id}"),
        };
        let port = 32768 + (index % 20000) as u16;
        let address = Ipv4Addr::new(10, 1, (index / 250 % 250) as u8, (index % 250) as u8 + 1);
        let service = index / TARGETS_PER_SERVICE;
        let (web, admin) = (format!("_seed{service}._tcp"), format!("_seedadmin{service}._tcp"));
        let mut targets = vec![(web.as_str(), port)];
        if index < two_service {
            targets.push((admin.as_str(), port + 1));
        }
        let set = task_records(&task, address, &targets)?;
        anyhow::ensure!(set.len() == per_task + targets.len() - 1, "a task has {} records", set.len());
        sets.push(set);
    }
    Ok(sets)
}

/// The targets (lowercase, without the final dot) of the SRV records named `name`, read by the observer
/// from one listing starting at that name.
async fn srv_targets(
    client: &aws_sdk_route53::Client,
    zone_id: &str,
    name: &str,
) -> anyhow::Result<BTreeSet<String>> {
    let mut targets = BTreeSet::new();
    let mut identifier: Option<String> = None;
    loop {
        let page = client
            .list_resource_record_sets()
            .hosted_zone_id(zone_id)
            .start_record_name(name)
            .start_record_type(RrType::Srv)
            .set_start_record_identifier(identifier.clone())
            .max_items(i32::try_from(TARGETS_PER_SERVICE)?)
            .send()
            .await?;
        let ours = |n: &str, t: &RrType| n.eq_ignore_ascii_case(name) && *t == RrType::Srv;
        for set in page.resource_record_sets().iter().filter(|s| ours(s.name(), s.r#type())) {
            for record in set.resource_records() {
                if let Some((_, target)) = ecssd_records::parse_srv_value(record.value()) {
                    targets.insert(target.trim_end_matches('.').to_ascii_lowercase());
                }
            }
        }
        match (page.is_truncated(), page.next_record_name(), page.next_record_type()) {
            (true, Some(next), Some(kind)) if ours(next, kind) => {
                identifier = Some(page.next_record_identifier().context("no next identifier")?.to_owned());
            }
            _ => return Ok(targets),
        }
    }
}

fn sweep_outcome(
    run: &ShellSweep,
    spawned: Instant,
    ended: Instant,
    launch: Instant,
    seeded: usize,
    bench_arns: &BTreeSet<&str>,
) -> anyhow::Result<SweepOutcome> {
    anyhow::ensure!(run.success, "the sweep failed: {:?}\n{}", run.report, run.stderr);
    let report = &run.report;
    let count = |key: &str| report[key].as_u64().with_context(|| format!("no {key} in {report}"));
    let len = |key: &str| report[key].as_array().map_or(0, Vec::len);
    let route53_calls = report["api_calls"]["route53"]
        .as_object()
        .context("no api_calls.route53 in the report")?
        .values()
        .filter_map(serde_json::Value::as_u64)
        .sum();
    let bench_tasks_stale = report["stale_tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["task"].as_str().is_some_and(|arn| bench_arns.contains(arn)))
        .count();
    let ended_at = if ended >= launch {
        ended.duration_since(launch).as_secs_f64()
    } else {
        -launch.duration_since(ended).as_secs_f64()
    };
    Ok(SweepOutcome {
        started_before: launch.duration_since(spawned).as_secs_f64(),
        ended_at,
        wall: ended.duration_since(spawned).as_secs_f64(),
        reported_ms: count("duration_ms")?,
        route53_calls,
        route53_by_operation: report["api_calls"]["route53"].clone(),
        requests_during: 0,
        throttled_during: 0,
        records_seen: count("records_seen")?,
        stale_records_deleted: count("stale_records_deleted")?,
        seeded,
        orphans_deleted: count("orphans_deleted")?,
        bench_tasks_stale,
        disagreements: len("disagreements"),
        first_disagreement: report["disagreements"][0]["reason"].as_str().map(String::from),
        unknown: len("unknown"),
        out_of_time: report["out_of_time"].as_bool().unwrap_or(false),
        errors: report["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str().map(String::from))
            .collect(),
    })
}

/// Requests moto saw for one Route53 operation.
fn requests_of(stats: &serde_json::Value, operation: &str) -> u64 {
    stats["route53"][operation]["requests"].as_u64().unwrap_or(0)
}

/// (requests, throttled) of Route53, all operations, between two stats snapshots.
fn route53_totals(after: &serde_json::Value, before: &serde_json::Value) -> (u64, u64) {
    let sum = |stats: &serde_json::Value, key: &str| -> u64 {
        stats["route53"]
            .as_object()
            .into_iter()
            .flat_map(|ops| ops.values())
            .filter_map(|op| op[key].as_u64())
            .sum()
    };
    (
        sum(after, "requests").saturating_sub(sum(before, "requests")),
        sum(after, "throttled").saturating_sub(sum(before, "throttled")),
    )
}

/// Route53's per-operation counters between two snapshots.
fn route53_by_operation(after: &serde_json::Value, before: &serde_json::Value) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (operation, counters) in after["route53"].as_object().into_iter().flatten() {
        let mut diff = serde_json::Map::new();
        for (key, value) in counters.as_object().into_iter().flatten() {
            let earlier = before["route53"][operation][key].as_u64().unwrap_or(0);
            let delta = value.as_u64().unwrap_or(0).saturating_sub(earlier);
            diff.insert(key.clone(), delta.into());
        }
        if diff.values().any(|v| v.as_u64() != Some(0)) {
            out.insert(operation.clone(), diff.into());
        }
    }
    out.into()
}
