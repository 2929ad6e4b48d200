//! Measures how a sweep of a full zone slows sidecars down (a benchmark, not a test): sidecars starting
//! at once while `bootstrap --once` sweeps a zone at Route53's 10,000-record quota, against a Route53
//! limited to 5 requests/s per account; their registration latency with the sweep and, on a fresh bed
//! otherwise identical, without it; and whether the sweep finishes within the stack's deadline. Run it
//! on a release build:
//!
//! ```sh
//! cargo build --release --workspace --bins && cargo run --release -p ecssd-tools --bin ecssd-bench-contention [SIDECARS [ZONE_RECORDS]] [--queue] [--metadata] [--only=with-sweep|without-sweep] [--timeout=SECONDS]
//! ```
//!
//! Issue 26's question, "with a sweep of a 10,000-record zone running during the 500-task start, how
//! long the sweep takes and whether it finishes", is `ecssd-bench-contention 500 10000 --queue`.
//!
//! Arguments and options:
//! - SIDECARS (default 50) and ZONE_RECORDS (default 10,000) size the bed. The sidecars' tasks serve
//!   services `_bench0._tcp`, `_bench1._tcp`, ... of at most 100 targets each (one SRV name holds at
//!   most 100 multivalue records), as the fleet bench (`ecssd-bench-sidecar`) splits its fleet.
//! - `--queue`: with the registration queue (issue 26): an SQS queue in moto and the batcher
//!   (`bootstrap`, `ECSSD_ROLE=batcher`, the stack's pace) behind the bed's emulation of Lambda's SQS
//!   event source mapping (`ecssd_tests::registration_queue::Batcher`), as the fleet bench's `--queue`;
//!   the sidecars hand their registrations over to it. The batcher's Route53 requests count as the
//!   account's, as they do in AWS.
//! - `--metadata`: the sidecars in metadata mode (no Docker socket, as on Fargate), each task's metadata
//!   served by one stand-in for the whole fleet (`ecssd_tests::fleet_metadata::FleetMetadata`), with
//!   no container per task, as the fleet bench's `--metadata`. Those tasks are not in ECS (the stand-in
//!   names ARNs ECS never issued, in a cluster `fleet`), so the sweep is told to watch only the seeded
//!   cluster (`ECSSD_CLUSTERS=seeded`): it lists the whole zone and deletes the seeded records as in
//!   Docker mode, and leaves the sidecars' records alone without asking ECS about their tasks.
//!   Without it (Docker mode) each task is placed in ECS and runs a container.
//! - `--only=with-sweep` or `--only=without-sweep`: run that round alone (default: both, with first).
//! - `--timeout=SECONDS` (default 900): how long to wait for every sidecar to register; what was
//!   measured until then is printed all the same, and the bench fails.
//!
//! Per round:
//! - the zone is seeded through the observer (unthrottled, uncounted) so that, with its NS and SOA and
//!   the sidecars' own records once they register (SRV, A and the TXT ownership record: 3 per task),
//!   it holds exactly ZONE_RECORDS records, and never more. The seeded records are those of tasks in a
//!   cluster that exists in ECS (moto) but does not know them, so ECS answers MISSING and the sweep
//!   does the whole of its Route53 work: a full listing, ECS describes, and the deletion of every
//!   seeded record. Their services (`_seed<n>._tcp`) are not the sidecars'. The round without the
//!   sweep checks that the zone holds exactly ZONE_RECORDS records once every sidecar registered.
//! - in Docker mode the sidecars' tasks are placed in ECS (a `bench` cluster on one EC2-backed host)
//!   and run in Docker, one `web` container each with `SERVICE_80_NAME=_bench<n>._tcp`: ECS reports
//!   them RUNNING, as it would for real sidecars, so the sweep keeps their records.
//! - Route53 is throttled to 5 requests/s (burst 5) for everyone but the observer.
//! - with the sweep: `bootstrap --once` starts with the stack's settings that bear on the race: its
//!   zone by id (`ECSSD_ZONE_ID`), its default pace (`ECSSD_ROUTE53_REQUESTS_PER_SECOND` 2, the
//!   stack's at 5 requests/s), and as its time limit (`ECSSD_TIME_LIMIT_SECONDS`) the Sweeper
//!   function's `Timeout` read from template.yaml: in Lambda the invocation's deadline is that
//!   Timeout, and from a shell the sweeper takes its deadline from this limit, both less the time it
//!   keeps to report (`lambda/src/deadline.rs`). The bench gives the process the Timeout plus 60 s
//!   before killing it, so that a sweep overrunning its deadline shows as such. The sidecars are all
//!   spawned as soon as moto has seen the sweep's first ListResourceRecordSets. A sidecar whose
//!   records land while the sweep lists the zone can show in the listing without its ownership
//!   record: the sweep then reads its records by name before calling them orphans (at most
//!   `ECSSD_ORPHAN_READS_PER_SWEEP`, 100, a sweep; the rest wait for the next, "left unconfirmed"),
//!   so how much of the start overlaps the listing changes the sweep's cost from run to run.
//! - a sidecar's registration latency runs from its spawn to its SRV target being in the zone, read by
//!   the observer with one listing per service not yet complete, every 250 ms for each service read
//!   (every 250 ms with one service, every 1.25 s with five): latencies are upper bounds within that
//!   plus the listings. "All registered" is the last of them; the floor is SIDECARS / 5 s, one
//!   request per registration at the account's rate.
//! - Route53 requests per registration: with the sweep, moto's count of every Route53 request from
//!   the sweep's spawn until both the last registration and the sweep's exit, less the sweep's own
//!   (its report counts every attempt, as moto does), per sidecar; without it, moto's count from the
//!   sidecars' spawn until the last registration. The throttled share is of every client's requests
//!   from the sidecars' spawn until the last registration.
//! - the sidecars check their records through no resolver (the bed's default, a closed loopback
//!   port: their DNS checks judge nothing and cost no request). The bed's live DNS
//!   (`World::serve_dns`), which the fleet bench uses, re-lists the zone at every change: while the
//!   sweep deletes 10,000 records that would load moto more than the sidecars do, and the sidecars'
//!   checks come a minute after their registration, after this bench has measured it.
#![allow(clippy::print_stdout)]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_route53::types::RrType;
use ecssd_records::ownership::address_name;
use ecssd_records::{RecordSet, RecordStore, TaskArn};
use ecssd_tests::docker::ContainerSpec;
use ecssd_tests::ecs::{Fleet, PlacedTask, seed, task_records};
use ecssd_tests::fleet_metadata::FleetMetadata;
use ecssd_tests::measure::percentile;
use ecssd_tests::metadata::NetworkMode;
use ecssd_tests::moto::{AccountRate, workspace_root};
use ecssd_tests::registration_queue::Batcher;
use ecssd_tests::sidecar::{Sidecar, SidecarOptions};
use ecssd_tests::sweeper::{ShellSweep, base_env, sweep_once_within};
use ecssd_tests::world::{DOMAIN, RunningTask, World};
use ecssd_tests::{http, wait_for};
use tokio::task::JoinHandle;

const DEFAULT_SIDECARS: usize = 50;
/// Route53's default quota of records per hosted zone (NS and SOA count).
const DEFAULT_ZONE_RECORDS: usize = 10_000;
/// The zone's apex NS and SOA, which count against the quota but are not in `list_all`.
const APEX_RECORDS: usize = 2;
/// Route53 holds at most 100 multivalue records of one name and type.
const TARGETS_PER_SERVICE: usize = 100;
const SEEDED_CLUSTER: &str = "seeded";
const BENCH_CLUSTER: &str = "bench";
/// The account's Route53 rate the bed throttles to.
const ACCOUNT_RATE: AccountRate = AccountRate::Five;
/// How often the observer reads one service's SRV records: gently, moto shares the machine with them.
const POLL: Duration = Duration::from_millis(250);
const DEFAULT_REGISTRATION_TIMEOUT: Duration = Duration::from_secs(900);
/// How long the sweep process may run past the stack's Timeout before the bench kills it.
const SWEEP_GRACE: Duration = Duration::from_secs(60);

/// What the command line asks for.
#[derive(Debug, Clone)]
struct Options {
    count: usize,
    zone_records: usize,
    queue: bool,
    metadata: bool,
    /// Run only the round with the sweep (`Some(true)`) or without it (`Some(false)`).
    only: Option<bool>,
    registration_timeout: Duration,
    /// The Sweeper function's `Timeout` in template.yaml.
    sweep_timeout: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let options = parse_options(&args)?;
    let started = Instant::now();
    let mut rounds = Vec::new();
    for sweep in [true, false] {
        if options.only.is_none_or(|only| only == sweep) {
            rounds.push(round(&options, sweep).await?);
        }
    }

    let count = options.count;
    let mode = if options.metadata { "metadata mode" } else { "Docker mode" };
    let handoff =
        if options.queue { "with the registration queue" } else { "without the registration queue" };
    println!(
        "\n## {count} sidecars ({mode}, {handoff}) registering while a sweep of a {}-record zone runs, \
         Route53 limited to {} requests/s (burst {})",
        options.zone_records,
        ACCOUNT_RATE.per_second(),
        ACCOUNT_RATE.burst()
    );
    println!(
        "| round | registered | all registered after | floor (tasks / {} per s) | ratio | p50 | p99 | Route53 \
         requests per registration | throttled (all clients, registration window) | sweep duration | sweep \
         Route53 requests | sweep finished | within the Timeout ({} s) |",
        ACCOUNT_RATE.per_second(),
        options.sweep_timeout.as_secs()
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for round in &rounds {
        round.print_row();
    }
    println!();
    for round in &rounds {
        round.print_notes();
    }
    let build = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!(
        "\n(command: `{}`, a {build} build; latencies from each sidecar's spawn to its SRV target in the \
         zone, one listing per pending service every {} ms; throttled = Route53 requests moto refused as \
         Throttling from the sidecars' spawn until the last registered; the Timeout is the Sweeper's in \
         template.yaml, given to the sweep as ECSSD_TIME_LIMIT_SECONDS)",
        args.join(" "),
        POLL.as_millis()
    );
    println!("(benchmark took {:.0} s)", started.elapsed().as_secs_f64());
    let unfinished: Vec<&str> = rounds.iter().filter(|r| r.registered < r.count).map(|r| r.name).collect();
    anyhow::ensure!(unfinished.is_empty(), "not every sidecar registered in: {unfinished:?}");
    Ok(())
}

/// The arguments and options the doc comment lists, and the stack's sweep Timeout.
fn parse_options(args: &[String]) -> anyhow::Result<Options> {
    let mut positional = args.iter().skip(1).filter(|a| !a.starts_with("--"));
    let count: usize = positional.next().map_or(Ok(DEFAULT_SIDECARS), |n| n.parse()).context("SIDECARS")?;
    let zone_records: usize =
        positional.next().map_or(Ok(DEFAULT_ZONE_RECORDS), |n| n.parse()).context("ZONE_RECORDS")?;
    anyhow::ensure!(count > 0, "SIDECARS must be at least 1");
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value = |name: &str| args.iter().find_map(|a| a.strip_prefix(name));
    let only = match value("--only=") {
        None => None,
        Some("with-sweep") => Some(true),
        Some("without-sweep") => Some(false),
        Some(other) => anyhow::bail!("--only={other}: expected with-sweep or without-sweep"),
    };
    let registration_timeout = match value("--timeout=") {
        Some(seconds) => Duration::from_secs(seconds.parse().context("--timeout=SECONDS")?),
        None => DEFAULT_REGISTRATION_TIMEOUT,
    };
    let known = ["--queue", "--metadata", "--only=", "--timeout="];
    if let Some(unknown) =
        args.iter().skip(1).find(|a| a.starts_with("--") && !known.iter().any(|k| a.starts_with(k)))
    {
        anyhow::bail!("unknown option {unknown}");
    }
    Ok(Options {
        count,
        zone_records,
        queue: flag("--queue"),
        metadata: flag("--metadata"),
        only,
        registration_timeout,
        sweep_timeout: sweeper_timeout()?,
    })
}

/// The Sweeper function's `Timeout` in template.yaml, read line by line: the `Timeout:` among the
/// properties (six spaces in) of the resource `Sweeper` (two spaces in, under `Resources:`).
fn sweeper_timeout() -> anyhow::Result<Duration> {
    let path = workspace_root().join("template.yaml");
    let template = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let (mut section, mut resource) = ("", "");
    for line in template.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        match indent {
            0 => (section, resource) = (trimmed, ""),
            2 => resource = trimmed,
            6 if section == "Resources:" && resource == "Sweeper:" => {
                if let Some(seconds) = trimmed.strip_prefix("Timeout:") {
                    return Ok(Duration::from_secs(seconds.trim().parse().context("the Sweeper's Timeout")?));
                }
            }
            _ => {}
        }
    }
    anyhow::bail!("no Timeout for the Sweeper in {}", path.display())
}

/// What one round measured.
#[derive(Debug)]
struct Round {
    name: &'static str,
    count: usize,
    services: usize,
    /// Registration latencies in seconds of the sidecars that registered, sorted.
    latencies: Vec<f64>,
    registered: usize,
    /// From the sidecars' spawn until the last registration was seen (or the wait gave up), in seconds.
    window: f64,
    /// The count over the account's rate, in seconds.
    floor: f64,
    /// Route53 requests (all operations) moto saw in that window, and how many it throttled.
    requests: u64,
    throttled: u64,
    /// The window's Route53 stats by operation.
    by_operation: serde_json::Value,
    /// The sidecars' and the batcher's Route53 requests (see the doc comment); `None` when the sweep's
    /// own are unknown (it gave no report).
    registration_requests: Option<u64>,
    /// Log lines of sidecars retrying after PriorRequestNotComplete.
    refused_busy: usize,
    /// The sidecars' targets in the zone once the round (and its sweep) ended.
    present_after: usize,
    /// Records in the zone (NS and SOA included) once the round (and its sweep) ended.
    zone_after: usize,
    /// What the batcher did, with `--queue`.
    batcher: Option<String>,
    /// Why the wait for the registrations gave up, if it did.
    gave_up: Option<String>,
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
    /// The stack's Timeout, given to it as its time limit.
    timeout: Duration,
    /// Route53 requests of everyone (sweep and sidecars) from the sweep's spawn to its exit, and how
    /// many moto throttled.
    requests_during: u64,
    throttled_during: u64,
    /// What its report said; `None` when it gave none (killed, or failed: `failure` says).
    report: Option<SweepReport>,
    failure: Option<String>,
}

/// What a sweep's report says that this bench shows.
#[derive(Debug)]
struct SweepReport {
    /// The sweep's own `duration_ms`.
    reported_ms: u64,
    /// Route53 calls the sweep's report counts, and by operation.
    route53_calls: u64,
    route53_by_operation: serde_json::Value,
    records_seen: u64,
    stale_records_deleted: u64,
    seeded: usize,
    orphans_deleted: u64,
    /// Orphans left unconfirmed for the next sweep (reads by name are capped per sweep): records of
    /// sidecars that registered while the sweep listed the zone show up without their ownership
    /// record, and each costs the sweep a read by name to confirm.
    orphans_deferred: u64,
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

impl SweepOutcome {
    /// It exited with a report.
    fn finished(&self) -> bool {
        self.report.is_some()
    }

    /// It exited with a report, not cut short by its deadline, within the stack's Timeout.
    fn within_timeout(&self) -> bool {
        self.report.as_ref().is_some_and(|r| !r.out_of_time) && self.wall <= self.timeout.as_secs_f64()
    }
}

impl Round {
    fn print_row(&self) {
        let (p50, p99) = (percentile(&self.latencies, 50.0), percentile(&self.latencies, 99.0));
        let all = if self.registered == self.count {
            format!("{:.1} s", self.window)
        } else {
            format!("not all: {} of {} after {:.1} s", self.registered, self.count, self.window)
        };
        let per_registration = self
            .registration_requests
            .map_or_else(|| "-".to_owned(), |n| format!("{:.2} ({n})", n as f64 / self.count as f64));
        let (duration, calls, finished, within) = match &self.sweep {
            Some(sweep) => (
                match &sweep.report {
                    Some(report) => {
                        format!("{:.1} s ({:.1} s wall)", report.reported_ms as f64 / 1000.0, sweep.wall)
                    }
                    None => format!("- ({:.1} s wall)", sweep.wall),
                },
                sweep.report.as_ref().map_or_else(|| "-".to_owned(), |r| r.route53_calls.to_string()),
                yes_no(sweep.finished()),
                yes_no(sweep.within_timeout()),
            ),
            None => ("-".to_owned(), "-".to_owned(), "-", "-"),
        };
        println!(
            "| {} | {} of {} | {all} | {:.0} s | {:.2}x | {p50:.1} s | {p99:.1} s | {per_registration} | {} of {} \
             ({:.0}%) | {duration} | {calls} | {finished} | {within} |",
            self.name,
            self.registered,
            self.count,
            self.floor,
            self.window / self.floor,
            self.throttled,
            self.requests,
            100.0 * self.throttled as f64 / self.requests.max(1) as f64,
        );
    }

    fn print_notes(&self) {
        println!(
            "- {}: {} of {} sidecars (services: {}) registered, the last {:.1} s after their spawn (max latency \
             {:.1} s); {} of {} targets still in the zone at the end, which held {} records (NS and SOA \
             included); {} retries after PriorRequestNotComplete; Route53 in the window: {}",
            self.name,
            self.registered,
            self.count,
            self.services,
            self.window,
            self.latencies.last().copied().unwrap_or(f64::NAN),
            self.present_after,
            self.count,
            self.zone_after,
            self.refused_busy,
            self.by_operation
        );
        if let Some(why) = &self.gave_up {
            println!("  **not all registered**: {why}");
        }
        if let Some(batcher) = &self.batcher {
            println!("  {batcher}");
        }
        let Some(sweep) = &self.sweep else { return };
        let overlapped = sweep.ended_at >= self.window;
        println!(
            "  sweep: spawned {:.1} s before the sidecars (they started once moto saw its first \
             ListResourceRecordSets), exited {:.1} s after their spawn ({:.1} s wall, the stack's Timeout {} s): \
             {} the whole registration window",
            sweep.started_before,
            sweep.ended_at,
            sweep.wall,
            sweep.timeout.as_secs(),
            if overlapped { "overlapped" } else { "did NOT overlap" }
        );
        if let Some(failure) = &sweep.failure {
            println!("  sweep: **no report**: {failure}");
        }
        let Some(report) = &sweep.report else { return };
        println!(
            "  sweep: {} Route53 calls by its report ({}); from its spawn to its exit moto saw {} Route53 \
             requests of everyone and throttled {}",
            report.route53_calls, report.route53_by_operation, sweep.requests_during, sweep.throttled_during
        );
        println!(
            "  sweep report: {} ms, {} records seen, {} of {} seeded records deleted, {} orphans deleted, {} \
             orphans left unconfirmed, {} sidecar tasks found dead, {} disagreements, {} unknown, out of time: {}, errors: {:?}",
            report.reported_ms,
            report.records_seen,
            report.stale_records_deleted,
            report.seeded,
            report.orphans_deleted,
            report.orphans_deferred,
            report.bench_tasks_stale,
            report.disagreements,
            report.unknown,
            report.out_of_time,
            report.errors
        );
        if let Some(reason) = &report.first_disagreement {
            println!("  first disagreement: {reason}");
        }
    }
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "**no**" }
}

/// One round's bed, ready for the sidecars to spawn: the zone seeded, their tasks prepared.
struct Bed {
    world: World,
    /// With `--queue`.
    batcher: Option<Batcher>,
    launch: Launch,
    /// `_bench<n>._tcp` for each group of at most [`TARGETS_PER_SERVICE`] sidecars.
    services: Vec<String>,
    /// For each sidecar: its service (an index into `services`), the SRV target it registers (its A
    /// record's name, lowercase, without the final dot), and its task's ARN.
    targets: Vec<(usize, String, String)>,
    seeded: usize,
}

/// How the sidecars find their tasks.
enum Launch {
    /// A task ECS placed, its container running in Docker, and its metadata stand-ins, each.
    Docker(Vec<RunningTask>),
    /// One task metadata stand-in for every task.
    Metadata(FleetMetadata),
}

/// One round on a fresh bed: seed, prepare the sidecars' tasks, throttle, (sweep,) spawn, measure.
async fn round(options: &Options, sweep: bool) -> anyhow::Result<Round> {
    let name = if sweep { "with sweep" } else { "without sweep" };
    let (count, zone_records) = (options.count, options.zone_records);
    let preparing = Instant::now();
    let bed = prepare(options).await?;
    let world = &bed.world;
    println!(
        "\n## round {name}: zone seeded with {} records of tasks MISSING in ECS (+{APEX_RECORDS} NS/SOA, +{} \
         for the sidecars = {zone_records}); {count} sidecars, services of at most {TARGETS_PER_SERVICE} targets: {} ({}{}); bed ready in {:.0} s \
         (not part of the measurement)",
        bed.seeded,
        zone_records - bed.seeded - APEX_RECORDS,
        bed.services.len(),
        match bed.launch {
            Launch::Docker(_) => "tasks placed in ECS and started in Docker",
            Launch::Metadata(_) => "metadata mode, one task metadata stand-in",
        },
        if bed.batcher.is_some() { ", with the registration queue" } else { "" },
        preparing.elapsed().as_secs_f64()
    );

    world.moto.set_account_rate(Some(ACCOUNT_RATE)).await?;
    let before = world.moto.stats().await?;
    let sweeping = match sweep {
        true => Some(start_sweep(&bed, options, &before).await?),
        false => None,
    };

    // The window's counters start here: the sweep's requests before the sidecars' spawn are not in it.
    let at_launch = world.moto.stats().await?;
    let launch = Instant::now();
    let (sidecars, spawned_at) = spawn_sidecars(&bed, options).await?;
    let client = world.observer_client();
    let watched = watch_registrations(&client, &bed, options.registration_timeout).await?;
    let window_end = Instant::now();
    let after = world.moto.stats().await?;
    let mut latencies: Vec<f64> = watched
        .iter()
        .zip(&spawned_at)
        .filter_map(|(at, spawned)| Some(at.as_ref()?.duration_since(*spawned).as_secs_f64()))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let registered = latencies.len();
    let gave_up = (registered < count)
        .then(|| format!("{registered} of {count} after waiting {:?}", options.registration_timeout));
    let last = match gave_up {
        None => watched.iter().flatten().max().copied().unwrap_or(window_end),
        Some(_) => window_end,
    };

    let (sweep, registration_requests) = match sweeping {
        Some((spawned, handle)) => {
            let run = handle.await??;
            let (requests_during, throttled_during) = route53_totals(&run.stats_at_exit, &before);
            // Every Route53 request from the sweep's spawn until both it and the registrations ended.
            let end = if run.ended > window_end { &run.stats_at_exit } else { &after };
            let everyone = route53_totals(end, &before).0;
            let mut outcome = sweep_outcome(&run, spawned, launch, options.sweep_timeout, &bed)?;
            (outcome.requests_during, outcome.throttled_during) = (requests_during, throttled_during);
            let registration = outcome.report.as_ref().map(|r| everyone.saturating_sub(r.route53_calls));
            (Some(outcome), registration)
        }
        None => {
            // The zone at its peak: the seeded records, the sidecars', NS and SOA.
            let peak = world.zone.list_all().await?.len() + APEX_RECORDS;
            anyhow::ensure!(
                gave_up.is_some() || peak == zone_records,
                "the zone holds {peak} records at its peak, meant {zone_records}"
            );
            (None, Some(route53_totals(&after, &at_launch).0))
        }
    };
    let zone_after = world.zone.list_all().await?.len() + APEX_RECORDS;
    let mut present_after = 0;
    for (index, service) in bed.services.iter().enumerate() {
        let present = srv_targets(&client, &world.zone.zone_id(), &srv_name(service)).await?;
        present_after += bed.targets.iter().filter(|(s, t, _)| *s == index && present.contains(t)).count();
    }
    let refused_busy = sidecars
        .iter()
        .map(|s| s.logs().iter().filter(|line| line.contains("PriorRequestNotComplete")).count())
        .sum();
    let (requests, throttled) = route53_totals(&after, &at_launch);
    Ok(Round {
        name,
        count,
        services: bed.services.len(),
        latencies,
        registered,
        window: last.duration_since(launch).as_secs_f64(),
        floor: count as f64 / f64::from(ACCOUNT_RATE.per_second()),
        requests,
        throttled,
        by_operation: route53_by_operation(&after, &at_launch),
        registration_requests,
        refused_busy,
        present_after,
        zone_after,
        batcher: bed.batcher.as_ref().map(Batcher::summary),
        gave_up,
        sweep,
    })
}

/// A fresh bed: moto and the zone, the ECS clusters, the registration queue (`--queue`), the sidecars'
/// tasks (placed in ECS and started in Docker, or one metadata stand-in), and the zone seeded so that
/// with the sidecars' records it holds exactly ZONE_RECORDS.
async fn prepare(options: &Options) -> anyhow::Result<Bed> {
    let count = options.count;
    let world = World::new().await?;
    let fleet = Fleet::new(&world.moto).await?;
    fleet.cluster(SEEDED_CLUSTER).await?;
    let batcher = match options.queue {
        true => Some(Batcher::start(&world.moto, &world.zone.zone_id(), &[]).await?),
        false => None,
    };
    let services: Vec<String> =
        (0..count.div_ceil(TARGETS_PER_SERVICE)).map(|s| format!("_bench{s}._tcp")).collect();
    let service_of = |index: usize| index / TARGETS_PER_SERVICE;

    let domain = world.zone.domain();
    let target_of = |task_arn: &str| -> anyhow::Result<String> {
        let target = address_name(&domain, task_arn.parse::<TaskArn>()?.id());
        Ok(target.trim_end_matches('.').to_ascii_lowercase())
    };
    let mut targets = Vec::with_capacity(count);
    let launch = match options.metadata {
        true => {
            let stand_in =
                FleetMetadata::start((0..count).map(|i| services[service_of(i)].clone()).collect()).await?;
            for index in 0..count {
                // The task the stand-in describes: the sidecar registers under its id.
                let uri = format!("{}/task", stand_in.task_metadata_uri(index));
                let document = http::get_json(&uri).await?;
                let arn = document["TaskARN"].as_str().with_context(|| format!("no TaskARN at {uri}"))?;
                targets.push((service_of(index), target_of(arn)?, arn.to_owned()));
            }
            Launch::Metadata(stand_in)
        }
        false => {
            fleet.cluster(BENCH_CLUSTER).await?;
            let host = fleet.host(BENCH_CLUSTER).await?;
            let placed = fleet.start_tasks(&host, count).await?;
            let mut tasks = Vec::with_capacity(count);
            for (index, task) in placed.iter().enumerate() {
                let variable = format!("SERVICE_80_NAME={}", services[service_of(index)]);
                let spec = ContainerSpec::httpd("web", &[variable.as_str()]);
                tasks.push(world.placed_task(task, &[spec], NetworkMode::Bridge).await?);
                targets.push((service_of(index), target_of(&task.task_arn)?, task.task_arn.clone()));
            }
            Launch::Docker(tasks)
        }
    };

    let seeded = options
        .zone_records
        .checked_sub(APEX_RECORDS + records_per_sidecar()? * count)
        .filter(|n| *n > 0)
        .with_context(|| {
            format!("{} records leave no room to seed beside {count} sidecars", options.zone_records)
        })?;
    seed(&world.zone, seed_sets(seeded)?).await?;
    let listed = world.zone.list_all().await?.len();
    anyhow::ensure!(listed == seeded, "seeded {listed} records, meant {seeded}");
    Ok(Bed { world, batcher, launch, services, targets, seeded })
}

/// The records a sidecar of a task with one endpoint registers: SRV, A and its TXT ownership record.
fn records_per_sidecar() -> anyhow::Result<usize> {
    let task = PlacedTask {
        cluster_arn: format!("arn:aws:ecs:us-east-1:123456789012:cluster/{BENCH_CLUSTER}"),
        task_arn: format!("arn:aws:ecs:us-east-1:123456789012:task/{BENCH_CLUSTER}/{:032x}", 1),
    };
    Ok(task_records(&task, Ipv4Addr::LOCALHOST, &[("_bench0._tcp", 80)])?.len())
}

/// Starts `bootstrap --once` and returns once moto has seen its first ListResourceRecordSets, with
/// when it was spawned and the task that waits for its end.
async fn start_sweep(
    bed: &Bed,
    options: &Options,
    before: &serde_json::Value,
) -> anyhow::Result<(Instant, JoinHandle<anyhow::Result<SweepRun>>)> {
    let world = &bed.world;
    let mut env = base_env(&world.moto);
    env.push(("ECSSD_ZONE_ID".into(), world.zone.zone_id()));
    env.push(("ECSSD_TIME_LIMIT_SECONDS".into(), options.sweep_timeout.as_secs().to_string()));
    if options.metadata {
        env.push(("ECSSD_CLUSTERS".into(), SEEDED_CLUSTER.into()));
    }
    let stats_url = format!("{}/_ecssd/stats", world.moto.endpoint());
    let spawned = Instant::now();
    let handle = tokio::spawn(run_sweep(env, options.sweep_timeout + SWEEP_GRACE, stats_url));
    let lists_before = requests_of(before, "ListResourceRecordSets");
    let listing = wait_for("the sweep's first ListResourceRecordSets", Duration::from_secs(60), || async {
        if handle.is_finished() {
            return Ok(Some(false));
        }
        let stats = world.moto.stats().await?;
        Ok((requests_of(&stats, "ListResourceRecordSets") > lists_before).then_some(true))
    })
    .await?;
    if !listing {
        let run = handle.await??;
        let (report, stderr) = run.run.map(|r| (r.report, r.stderr)).unwrap_or_default();
        anyhow::bail!("the sweep ended before listing the zone: {report:?}\n{stderr}");
    }
    Ok((spawned, handle))
}

/// How the sweep process ended.
#[derive(Debug)]
struct SweepRun {
    /// What it printed, once it exited; `None` when it was still running at the bench's limit and was
    /// killed.
    run: Option<ShellSweep>,
    ended: Instant,
    /// moto's stats as the process ended.
    stats_at_exit: serde_json::Value,
}

/// Runs `bootstrap --once` with `env`, killing it after `limit`, and reads moto's stats (`stats_url`)
/// as it ends.
async fn run_sweep(
    env: Vec<(String, String)>,
    limit: Duration,
    stats_url: String,
) -> anyhow::Result<SweepRun> {
    let run = sweep_once_within(&env, &[], limit).await?;
    let ended = Instant::now();
    let stats_at_exit = http::get_json(&stats_url).await?;
    Ok(SweepRun { run, ended, stats_at_exit })
}

/// Spawns every sidecar, one after the other; returns them and when each was spawned.
async fn spawn_sidecars(bed: &Bed, options: &Options) -> anyhow::Result<(Vec<Sidecar>, Vec<Instant>)> {
    let world = &bed.world;
    let mut env = Vec::new();
    if let Some(batcher) = &bed.batcher {
        env.push(batcher.sidecar_env());
    }
    if options.metadata {
        env.extend(FleetMetadata::sidecar_env());
    }
    let sidecar_options = SidecarOptions {
        args: vec![format!("--zone-id={}", world.zone.zone_id()), "--log-level=warn".to_owned()],
        env,
    };
    let mut sidecars = Vec::with_capacity(options.count);
    let mut spawned_at = Vec::with_capacity(options.count);
    match &bed.launch {
        Launch::Docker(tasks) => {
            for task in tasks {
                spawned_at.push(Instant::now());
                sidecars.push(Sidecar::spawn(&world.moto, &task.metadata, sidecar_options.clone()).await?);
            }
        }
        Launch::Metadata(stand_in) => {
            for index in 0..options.count {
                let uri = stand_in.task_metadata_uri(index);
                spawned_at.push(Instant::now());
                sidecars.push(
                    Sidecar::spawn_at(&world.moto, &uri, &stand_in.imds_endpoint(), sidecar_options.clone())
                        .await?,
                );
            }
        }
    }
    Ok((sidecars, spawned_at))
}

/// When each sidecar's SRV target was first seen in the zone (`None`: not within `timeout`), read by
/// the observer: one listing of each service not yet complete, then [`POLL`] for each listing read.
async fn watch_registrations(
    client: &aws_sdk_route53::Client,
    bed: &Bed,
    timeout: Duration,
) -> anyhow::Result<Vec<Option<Instant>>> {
    let zone_id = bed.world.zone.zone_id();
    let mut seen: Vec<Option<Instant>> = vec![None; bed.targets.len()];
    let give_up = Instant::now() + timeout;
    loop {
        let pending: BTreeSet<usize> =
            bed.targets.iter().zip(&seen).filter(|(_, at)| at.is_none()).map(|((s, ..), _)| *s).collect();
        if pending.is_empty() || Instant::now() >= give_up {
            return Ok(seen);
        }
        tokio::time::sleep(POLL * u32::try_from(pending.len())?).await;
        for &service in &pending {
            let present = srv_targets(client, &zone_id, &srv_name(&bed.services[service])).await?;
            let now = Instant::now();
            for ((s, target, _), at) in bed.targets.iter().zip(seen.iter_mut()) {
                if *s == service && at.is_none() && present.contains(target) {
                    *at = Some(now);
                }
            }
        }
    }
}

/// The SRV name of `service` in the bed's zone.
fn srv_name(service: &str) -> String {
    format!("{service}.{DOMAIN}.")
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

/// The sweep's times and, when it exited with a report, what the report says.
fn sweep_outcome(
    run: &SweepRun,
    spawned: Instant,
    launch: Instant,
    timeout: Duration,
    bed: &Bed,
) -> anyhow::Result<SweepOutcome> {
    let ended = run.ended;
    let ended_at = if ended >= launch {
        ended.duration_since(launch).as_secs_f64()
    } else {
        -launch.duration_since(ended).as_secs_f64()
    };
    let mut outcome = SweepOutcome {
        started_before: launch.duration_since(spawned).as_secs_f64(),
        ended_at,
        wall: ended.duration_since(spawned).as_secs_f64(),
        timeout,
        requests_during: 0,
        throttled_during: 0,
        report: None,
        failure: None,
    };
    match &run.run {
        None => {
            outcome.failure = Some(format!("still running {:.0} s after its spawn: killed", outcome.wall));
        }
        Some(shell) if !shell.success || !shell.report.is_object() => {
            let tail: Vec<&str> = shell.stderr.lines().rev().take(5).collect();
            outcome.failure =
                Some(format!("exited, success {}, no report; stderr ends {tail:?}", shell.success));
        }
        Some(shell) => outcome.report = Some(sweep_report(&shell.report, bed)?),
    }
    Ok(outcome)
}

fn sweep_report(report: &serde_json::Value, bed: &Bed) -> anyhow::Result<SweepReport> {
    let count = |key: &str| report[key].as_u64().with_context(|| format!("no {key} in {report}"));
    let len = |key: &str| report[key].as_array().map_or(0, Vec::len);
    let route53_calls = report["api_calls"]["route53"]
        .as_object()
        .context("no api_calls.route53 in the report")?
        .values()
        .filter_map(serde_json::Value::as_u64)
        .sum();
    let bench_arns: BTreeSet<&str> = bed.targets.iter().map(|(_, _, arn)| arn.as_str()).collect();
    let bench_tasks_stale = report["stale_tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["task"].as_str().is_some_and(|arn| bench_arns.contains(arn)))
        .count();
    Ok(SweepReport {
        reported_ms: count("duration_ms")?,
        route53_calls,
        route53_by_operation: report["api_calls"]["route53"].clone(),
        records_seen: count("records_seen")?,
        stale_records_deleted: count("stale_records_deleted")?,
        seeded: bed.seeded,
        orphans_deleted: count("orphans_deleted")?,
        orphans_deferred: count("orphans_deferred")?,
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
