//! Measures the sidecar on this machine (a benchmark, not a test): event-to-batch latency, resident
//! memory, Route53 calls per task lifetime, stop-signal-to-withdrawn latency while Route53 throttles,
//! and 200 sidecars starting at once against Route53 limited to the account's rate (5 requests/s, or
//! `--account-rate=10`: 10/s with a burst of 50). Run it on a release build:
//!
//! ```sh
//! cargo build --release -p ecssd-sidecar -p ecssd-tools --bins && ./target/release/ecssd-bench-sidecar [FLEET]
//! ```
//!
//! `FLEET` is the number of sidecars started at once (200); `--only=latency|lifetime|throttled-withdrawal|fleet`
//! runs one part. The fleet's options:
//! - `--queue`: with the registration queue (issue 26): an SQS queue in moto, the batcher
//!   (`bootstrap`, `ECSSD_ROLE=batcher`, the stack's pace) behind the bed's emulation of Lambda's SQS
//!   event source mapping (`ecssd_tests::registration_queue`); build `-p ecssd-lambda` too. The
//!   batcher's Route53 requests count as the account's, as they do in AWS.
//! - `--metadata`: the sidecars in metadata mode (no Docker socket, as on Fargate), each task's
//!   metadata served by one stand-in for the whole fleet, with no container per task (the fleet stand-in
//!   here: Fargate-shaped documents of a `web` container announcing its service by label, and the
//!   sidecar's own). Fits 1,000 sidecars on a 2-core machine; Docker mode, a container a task, 500.
//! - `--account-rate=10`: 10 requests/s with a burst of 50 instead of 5 with a burst of 5.
//! - `--timeout=SECONDS`: how long to wait for every sidecar to register (default 120 s + 10x the
//!   floor); what was measured until then is printed all the same, and the bench fails.
//! - `--logs=DIR`: the sidecars log at debug level, and each one's log is written to `DIR/<n>.log` at
//!   the end (by default they log warnings only, kept in memory).
//!
//! The fleet's sidecars resolve through the bed's DNS (the zone's authority, re-read when Route53
//! changes, behind dnsmasq as the VPC resolver), as in a VPC: their DNS checks then cost no Route53
//! request when the records show. (Without a resolver every check would fall back to reading the zone
//! through the API, which no deployment does.)
//!
//! With `--queue` it also shows where a handoff's time goes, from the bed's event source mapping
//! (`Batcher::timings`, `Batcher::invocations`) and the batcher's reports: SQS's `SentTimestamp` to
//! `ApproximateFirstReceiveTimestamp` (waiting in the queue for a poller), the poller's receive to the
//! invocation (the batching window, then waiting for a free function), the invocation's duration (the
//! batcher's time per batch: its paced, throttled and split Route53 requests), the handoff's life left
//! when its batch was invoked (`not_after_ms`; the batcher drops what has under 2 s left), and how many
//! the batcher reported expired.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use anyhow::Context;
use ecssd_tests::docker::ContainerSpec;
use ecssd_tests::fleet_metadata::FleetMetadata;
use ecssd_tests::measure::{percentile, rss_kib};
use ecssd_tests::moto::AccountRate;
use ecssd_tests::registration_queue::{Batcher, MAXIMUM_CONCURRENCY, POLLERS};
use ecssd_tests::sidecar::{Sidecar, SidecarOptions};
use ecssd_tests::wait_for;
use ecssd_tests::world::World;

const WAIT: Duration = Duration::from_secs(120);
const COALESCE_MS: f64 = 100.0;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let only = args.iter().find_map(|a| a.strip_prefix("--only="));
    let fleet: usize = match args.iter().find(|a| !a.starts_with("--")) {
        Some(n) => n.parse().with_context(|| format!("fleet size {n:?}: expected a number of tasks"))?,
        None => 200,
    };
    let runs = |section: &str| only.is_none_or(|o| o == section);
    if runs("latency") {
        latency_and_memory().await?;
    }
    if runs("lifetime") {
        calls_per_lifetime().await?;
    }
    if runs("throttled-withdrawal") {
        withdrawal_under_throttling().await?;
    }
    if runs("fleet") {
        let rate = args.iter().find_map(|a| a.strip_prefix("--account-rate=")).unwrap_or("5").parse()?;
        let queue = args.iter().any(|a| a == "--queue");
        let metadata = args.iter().any(|a| a == "--metadata");
        let timeout = args.iter().find_map(|a| a.strip_prefix("--timeout=")).map(str::parse).transpose()?;
        let logs = args.iter().find_map(|a| a.strip_prefix("--logs=")).map(std::path::PathBuf::from);
        let options = FleetOptions { rate, queue, metadata, timeout: timeout.map(Duration::from_secs), logs };
        fleet_start(fleet, options).await?;
    }
    println!("\n(benchmark took {:.0} s)", started.elapsed().as_secs_f64());
    Ok(())
}

fn zone_options(world: &World, extra: &[&str]) -> SidecarOptions {
    let mut args = vec![format!("--zone-id={}", world.zone.zone_id())];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    SidecarOptions { args, env: vec![] }
}

async fn latency_and_memory() -> anyhow::Result<()> {
    let world = World::new().await?;
    let running = world
        .task(
            "bench",
            &[ContainerSpec::httpd("web", &["SERVICE_80_NAME=_web._tcp"]), ContainerSpec::idle_sidecar()],
        )
        .await?;
    let sidecar =
        Sidecar::spawn(&world.moto, &running.metadata, zone_options(&world, &["--coalesce-ms=100"])).await?;
    world.wait_for_targets("_web._tcp", 1, WAIT).await?;
    let pid = sidecar.pid().context("sidecar pid")?;
    let idle_rss = rss_kib(pid)?;

    let rounds = 50;
    for _ in 0..rounds {
        running.task.stop_container(0).await?;
        world.wait_for_targets("_web._tcp", 0, WAIT).await?;
        running.task.start_container(0).await?;
        world.wait_for_targets("_web._tcp", 1, WAIT).await?;
    }
    let lines: Vec<serde_json::Value> =
        sidecar.logs().iter().filter_map(|line| serde_json::from_str(line).ok()).collect();
    let latencies = event_to_batch(&lines, "web");
    anyhow::ensure!(
        latencies.len() == 2 * rounds,
        "expected {} measurements (a stop and a start per round), got {}",
        2 * rounds,
        latencies.len()
    );
    anyhow::ensure!(
        latencies.iter().all(|l| l.accepted_ms.is_finite()),
        "a stop or start without a change request after it"
    );
    println!(
        "\n## event-to-batch latency ({rounds} container stops and {rounds} starts, window {COALESCE_MS} ms): \
         from the Docker event that calls for the change to its change request"
    );
    println!("| change | first request p50 | p99 | accepted request p50 | p99 |\n|---|---|---|---|---|");
    for (label, withdrawals) in [("withdrawal (`kill`)", true), ("registration (`start`)", false)] {
        let pick = |accepted: bool| {
            let mut ms: Vec<f64> = latencies
                .iter()
                .filter(|l| l.withdrawal == withdrawals)
                .map(|l| if accepted { l.accepted_ms } else { l.first_ms })
                .collect();
            ms.sort_by(f64::total_cmp);
            (percentile(&ms, 50.0), percentile(&ms, 99.0))
        };
        let ((first50, first99), (done50, done99)) = (pick(false), pick(true));
        println!("| {label} | {first50:.1} ms | {first99:.1} ms | {done50:.1} ms | {done99:.1} ms |");
    }
    let after_churn = rss_kib(pid)?;
    drop(sidecar);
    drop(running);

    let mut specs: Vec<ContainerSpec> =
        (0..50).map(|i| ContainerSpec::httpd(&format!("web{i}"), &["SERVICE_80_NAME=_fifty._tcp"])).collect();
    specs.push(ContainerSpec::idle_sidecar());
    let running = world.task("bench", &specs).await?;
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, zone_options(&world, &[])).await?;
    world.wait_for_targets("_fifty._tcp", 50, WAIT).await?;
    let fifty_rss = rss_kib(sidecar.pid().context("pid")?)?;
    println!("\n## resident memory (VmRSS)\n| state | RSS |\n|---|---|");
    println!("| idle, 1 sibling registered | {:.1} MiB |", idle_rss as f64 / 1024.0);
    println!("| after {rounds} stop/start cycles | {:.1} MiB |", after_churn as f64 / 1024.0);
    println!("| 50 siblings registered | {:.1} MiB |", fifty_rss as f64 / 1024.0);
    Ok(())
}

async fn calls_per_lifetime() -> anyhow::Result<()> {
    let world = World::new().await?;
    let running = world
        .task(
            "bench",
            &[ContainerSpec::httpd("web", &["SERVICE_80_NAME=_web._tcp"]), ContainerSpec::idle_sidecar()],
        )
        .await?;
    let mut sidecar =
        Sidecar::spawn(&world.moto, &running.metadata, zone_options(&world, &["--drain-seconds=0"])).await?;
    world.wait_for_targets("_web._tcp", 1, WAIT).await?;
    sidecar.sigterm()?;
    sidecar.wait(WAIT).await?;
    let stats = world.moto.stats().await?;
    let route53 = stats["route53"].as_object().cloned().unwrap_or_default();
    let total: u64 = route53.values().map(|op| op["requests"].as_u64().unwrap_or(0)).sum();
    let refused = sidecar_logs_count(std::slice::from_ref(&sidecar), "PriorRequestNotComplete") as u64;
    println!("\n## Route53 calls per task lifetime (register, then SIGTERM; zone given by id)");
    println!(
        "{total} calls, {} accepted, {refused} refused as PriorRequestNotComplete (the withdrawal came \
         within the zone's processing window of the registration) and retried: {}",
        total - refused,
        serde_json::Value::Object(route53)
    );
    Ok(())
}

/// SIGTERM to "withdrew every record of the task", while Route53 throttles every other request: the
/// withdrawal's first attempt is refused with `Throttling`, its retry goes through.
async fn withdrawal_under_throttling() -> anyhow::Result<()> {
    let world = World::new().await?;
    let rounds = 20;
    let mut latencies = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let running = world
            .task(
                "bench",
                &[ContainerSpec::httpd("web", &["SERVICE_80_NAME=_web._tcp"]), ContainerSpec::idle_sidecar()],
            )
            .await?;
        let mut sidecar =
            Sidecar::spawn(&world.moto, &running.metadata, zone_options(&world, &["--drain-seconds=0"]))
                .await?;
        world.wait_for_task_records(running.task.task_id(), 3, WAIT).await?;
        world.moto.set_faults(serde_json::json!({"route53": {"errors": [[400, "Throttling"]]}})).await?;
        let signalled = Instant::now();
        sidecar.sigterm()?;
        while !sidecar.logs().iter().any(|line| line.contains("withdrew every record of the task")) {
            anyhow::ensure!(signalled.elapsed() < WAIT, "not withdrawn: {:?}", sidecar.logs());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(signalled.elapsed().as_secs_f64() * 1000.0);
        sidecar.wait(WAIT).await?;
        anyhow::ensure!(world.task_records(running.task.task_id()).await?.is_empty(), "records left");
        world.moto.set_faults(serde_json::json!({"route53": {"errors": []}})).await?;
    }
    latencies.sort_by(f64::total_cmp);
    println!("\n## stop signal to withdrawn, the withdrawal's first request throttled ({rounds} tasks)");
    println!("| p50 | p99 | max |\n|---|---|---|");
    println!(
        "| {:.0} ms | {:.0} ms | {:.0} ms |",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or_default()
    );
    Ok(())
}

/// How the fleet starts; see the options in this file's documentation.
struct FleetOptions {
    rate: AccountRate,
    queue: bool,
    metadata: bool,
    timeout: Option<Duration>,
    /// Where to write each sidecar's debug log, if anywhere.
    logs: Option<std::path::PathBuf>,
}

async fn fleet_start(count: usize, options: FleetOptions) -> anyhow::Result<()> {
    let FleetOptions { rate, queue, metadata, timeout, logs } = options;
    let world = World::new().await?;
    let batcher = match queue {
        true => Some(Batcher::start(&world.moto, &world.zone.zone_id(), &[]).await?),
        false => None,
    };
    let preparing = Instant::now();
    // Route53 holds at most 100 multivalue records of one name and type: 100 tasks per service.
    const TARGETS_PER_SERVICE: usize = 100;
    let services: Vec<String> =
        (0..count.div_ceil(TARGETS_PER_SERVICE)).map(|s| format!("_fleet{s}._tcp")).collect();
    let service_of = |index: usize| services[index / TARGETS_PER_SERVICE].clone();
    // Docker mode: a task (container + its metadata stand-ins) each. Metadata mode: one stand-in.
    let mut tasks = Vec::new();
    let fleet_metadata = match metadata {
        true => Some(FleetMetadata::start((0..count).map(service_of).collect()).await?),
        false => {
            for index in 0..count {
                let variable = format!("SERVICE_80_NAME={}", service_of(index));
                tasks.push(world.task("fleet", &[ContainerSpec::httpd("web", &[variable.as_str()])]).await?);
            }
            None
        }
    };
    let per_second = f64::from(rate.per_second());
    let mode = if metadata { "metadata mode, one task metadata stand-in" } else { "Docker mode" };
    let handoff =
        if queue { "with the registration queue and the batcher" } else { "without the registration queue" };
    println!(
        "\n## {count} sidecars starting at once ({mode}, {handoff}), Route53 limited to the account's \
         {per_second}/s (burst {})",
        rate.burst()
    );
    println!("command: `{}`", std::env::args().collect::<Vec<_>>().join(" "));
    println!("load average before: {}", load_average());
    println!(
        "({count} tasks prepared in {:.0} s; not part of the measurement)",
        preparing.elapsed().as_secs_f64()
    );
    let dns = world.serve_dns().await?;
    world.moto.set_account_rate(Some(rate)).await?;
    let before = world.moto.stats().await?;
    let level = if logs.is_some() { "debug" } else { "warn" };
    let extra = vec![format!("--log-level={level}")];
    let mut env = dns.sidecar_env();
    if let Some(batcher) = &batcher {
        env.push(batcher.sidecar_env());
    }
    if metadata {
        env.extend(FleetMetadata::sidecar_env());
    }
    let options = {
        let mut options = zone_options(&world, &[]);
        options.args.extend(extra);
        options.env = env;
        options
    };
    let launch = Instant::now();
    let mut sidecars = Vec::with_capacity(count);
    match &fleet_metadata {
        Some(stand_in) => {
            for index in 0..count {
                let uri = stand_in.task_metadata_uri(index);
                sidecars.push(
                    Sidecar::spawn_at(&world.moto, &uri, &stand_in.imds_endpoint(), options.clone()).await?,
                );
            }
        }
        None => {
            for task in &tasks {
                sidecars.push(Sidecar::spawn(&world.moto, &task.metadata, options.clone()).await?);
            }
        }
    }
    // One zone listing per poll for every service: the poll must not load moto more than it must.
    let service_names: Vec<&str> = services.iter().map(String::as_str).collect();
    let targets = || world.srv_values_of(&service_names);
    let spawned = launch.elapsed().as_secs_f64();
    // (seconds since launch, targets registered), one sample per poll: where the time goes.
    let progress = std::sync::Mutex::new(Vec::new());
    let timeout =
        timeout.unwrap_or_else(|| Duration::from_secs(120 + 10 * count as u64 / rate.per_second() as u64));
    let waited = wait_for("every sidecar to register", timeout, || async {
        // Poll gently: moto shares these two cores with the sidecars being measured.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let registered = targets().await?.len();
        progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((launch.elapsed().as_secs_f64(), registered));
        Ok((registered >= count).then_some(()))
    })
    .await;
    let elapsed = launch.elapsed().as_secs_f64();
    if let Err(e) = &waited {
        println!("**not all registered**: {e:#}");
    }
    let after = world.moto.stats().await?;
    let progress = progress.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    let reached = |share: f64| {
        progress.iter().find(|(_, n)| *n as f64 >= share * count as f64).map_or(f64::NAN, |(t, _)| *t)
    };
    println!(
        "(all {count} spawned after {spawned:.1} s; 25% registered at {:.1} s, 50% at {:.1} s, 90% at {:.1} s, \
         100% at {:.1} s; the zone read every 0.5 s)",
        reached(0.25),
        reached(0.5),
        reached(0.9),
        reached(1.0)
    );
    let values = targets().await?;
    let mut unique = values.clone();
    unique.dedup();
    let ideal = count as f64 / per_second;
    let limits = world.moto.limits().await?;
    println!("(bed: {limits}; {} services of at most {TARGETS_PER_SERVICE} targets)", services.len());
    let route53 = |stats: &serde_json::Value, operation: Option<&str>, field: &str| -> u64 {
        stats["route53"]
            .as_object()
            .map(|ops| {
                ops.iter()
                    .filter(|(name, _)| operation.is_none_or(|o| o == name.as_str()))
                    .map(|(_, counts)| counts[field].as_u64().unwrap_or_default())
                    .sum()
            })
            .unwrap_or_default()
    };
    let delta = |operation: Option<&str>, field: &str| {
        route53(&after, operation, field) - route53(&before, operation, field)
    };
    let (all, throttled) = (delta(None, "requests"), delta(None, "throttled"));
    let changes = delta(Some("ChangeResourceRecordSets"), "requests");
    let reads = all - changes;
    println!(
        "| registered | lost | duplicated | time | floor (tasks / rate) | ratio | 25 / 50 / 90 % | Route53 requests \
         (changes + reads) | per registration | throttled |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {elapsed:.1} s | {ideal:.0} s | {:.2}x | {:.1} / {:.1} / {:.1} s | {all} ({changes} + {reads}) | \
         **{:.2}** | {throttled} ({:.0}%) |",
        unique.len(),
        count - unique.len(),
        values.len() - unique.len(),
        elapsed / ideal,
        reached(0.25),
        reached(0.5),
        reached(0.9),
        all as f64 / count as f64,
        100.0 * throttled as f64 / all.max(1) as f64,
    );
    let by_operation: Vec<String> = after["route53"]
        .as_object()
        .map(|ops| {
            ops.keys()
                .map(|op| {
                    let field = |f: &str| route53(&after, Some(op), f) - route53(&before, Some(op), f);
                    format!("{op} {} ({} throttled)", field("requests"), field("throttled"))
                })
                .collect()
        })
        .unwrap_or_default();
    println!("Route53 by operation over the start: {}", by_operation.join(", "));
    if let Some(batcher) = &batcher {
        println!("{}", batcher.summary());
        handoff_timings(batcher);
    }
    let refused_busy = sidecar_logs_count(&sidecars, "PriorRequestNotComplete");
    let exited = sidecars.iter().filter(|s| s.pid().is_none()).count();
    println!("({refused_busy} sidecar log lines about PriorRequestNotComplete; {exited} sidecars exited)");
    println!("load average after: {}", load_average());
    if let Some(dir) = &logs {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (index, sidecar) in sidecars.iter().enumerate() {
            let path = dir.join(format!("{index}.log"));
            std::fs::write(&path, sidecar.logs().join("\n"))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        println!("(each sidecar's log is in {})", dir.display());
    }
    waited
}

/// Where the handoffs' time went: a table of distributions, in seconds.
fn handoff_timings(batcher: &Batcher) {
    let timings = batcher.timings();
    let invocations = batcher.invocations();
    let seconds = |ms: Option<i64>| ms.map(|ms| ms as f64 / 1000.0);
    let signed = |later: Option<u64>, earlier: Option<u64>| Some(later? as i64 - earlier? as i64);
    let rows: Vec<(&str, Vec<f64>)> = vec![
        (
            "in the queue: SentTimestamp to ApproximateFirstReceiveTimestamp (SQS, moto's clock)",
            timings.iter().filter_map(|t| seconds(signed(t.first_received_ms, t.sent_ms))).collect(),
        ),
        (
            "received to invoked (the batching window, then waiting for a free function)",
            timings.iter().filter_map(|t| seconds(signed(Some(t.invoked_ms), Some(t.received_ms)))).collect(),
        ),
        (
            "sent to invoked",
            timings.iter().filter_map(|t| seconds(signed(Some(t.invoked_ms), t.sent_ms))).collect(),
        ),
        (
            "sent to its invocation's answer",
            timings.iter().filter_map(|t| seconds(signed(Some(t.answered_ms), t.sent_ms))).collect(),
        ),
        (
            "handoff's life left when invoked (not_after_ms - invoked; under 2 s is expired)",
            timings.iter().filter_map(|t| seconds(signed(t.not_after_ms, Some(t.invoked_ms)))).collect(),
        ),
        (
            "batcher's time per batch (invoke to answer), per invocation",
            invocations.iter().map(|i| i.took.as_secs_f64()).collect(),
        ),
    ];
    println!(
        "\nwhere a handoff's time goes ({} handoffs delivered, {} invocations):",
        timings.len(),
        invocations.len()
    );
    println!("| stage | n | min | p50 | p90 | max |\n|---|---|---|---|---|---|");
    for (stage, mut values) in rows {
        values.sort_by(f64::total_cmp);
        if values.is_empty() {
            println!("| {stage} | 0 | | | | |");
            continue;
        }
        println!(
            "| {stage} | {} | {:.1} s | {:.1} s | {:.1} s | {:.1} s |",
            values.len(),
            values[0],
            percentile(&values, 50.0),
            percentile(&values, 90.0),
            values[values.len() - 1]
        );
    }
    let again = timings.iter().filter(|t| t.receive_count.is_some_and(|n| n > 1)).count();
    let per_instance: Vec<usize> = (0..MAXIMUM_CONCURRENCY)
        .map(|i| invocations.iter().filter(|inv| inv.instance == i).count())
        .collect();
    println!(
        "({again} deliveries of a message received before; invocations per function process {per_instance:?}; \
         {POLLERS} pollers, at most {MAXIMUM_CONCURRENCY} invocations at once)"
    );
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// One change the bench's Docker actions called for, and how long the sidecar took to send it.
struct EventToBatch {
    /// A stop (timed from its first `kill` event) rather than a start (timed from `start`).
    withdrawal: bool,
    /// To the first change request sent for it.
    first_ms: f64,
    /// To the change request Route53 accepted (later when the first was refused, e.g. with the zone
    /// still processing the previous change).
    accepted_ms: f64,
}

/// From the sidecar's debug log: each Docker event of `container` (its name in the task) that calls for a change (the first `kill` of a
/// stop, which withdraws; a `start`, which registers), and the first request of that kind sent after
/// it. In this bench every such request answers that event: before a stop nothing is to be withdrawn,
/// before a start nothing is to be registered.
fn event_to_batch(lines: &[serde_json::Value], container: &str) -> Vec<EventToBatch> {
    // (sent at, ns since the epoch; withdrew; accepted): a refused attempt logs `withdrawing`.
    let sends: Vec<(f64, bool, bool)> = lines
        .iter()
        .filter_map(|v| {
            let sent = v["first_event_ns"].as_i64()? as f64 + v["event_to_send_ms"].as_f64()? * 1e6;
            let withdrew = v["withdrew"].as_bool().or_else(|| v["withdrawing"].as_bool())?;
            Some((sent, withdrew, v["message"] == "Route53 updated"))
        })
        .collect();
    // The container's first start came before the sidecar ran: what the log says after its first
    // change is timed.
    let registered = lines.iter().position(|v| v["message"] == "Route53 updated").unwrap_or(lines.len());
    let mut stopping = false;
    let mut found = Vec::new();
    for v in
        lines[registered..].iter().filter(|v| v["message"] == "docker event" && v["container"] == container)
    {
        let (Some(action), Some(at)) = (v["action"].as_str(), v["time_nano"].as_i64()) else { continue };
        let withdrawal = match action {
            a if a.contains("\"kill\"") && !stopping => true,
            a if a.contains("\"start\"") => false,
            _ => continue,
        };
        stopping = withdrawal;
        let after = |accepted_only: bool| {
            sends
                .iter()
                .filter(|(sent, withdrew, accepted)| {
                    *sent >= at as f64 && *withdrew == withdrawal && (*accepted || !accepted_only)
                })
                .map(|(sent, ..)| (sent - at as f64) / 1e6)
                .fold(f64::INFINITY, f64::min)
        };
        found.push(EventToBatch { withdrawal, first_ms: after(false), accepted_ms: after(true) });
    }
    found
}

/// Log lines of all `sidecars` that mention `needle` (their retries log the AWS error code).
fn sidecar_logs_count(sidecars: &[Sidecar], needle: &str) -> usize {
    sidecars.iter().map(|s| s.logs().iter().filter(|line| line.contains(needle)).count()).sum()
}
