//! Measures the sidecar in metadata mode (`ECSSD_SOURCE=metadata`, no Docker socket, as on Fargate) at
//! the default poll interval (a benchmark, not a test): change-to-batch latency, resident memory, task
//! metadata requests per second, Route53 calls per task lifetime. The metadata stand-in reads Docker at
//! every request, so a poll that comes while Docker stops or starts a container may wait for that call
//! and see the change as it returns; the report shows which changes had such a poll. Run it on a
//! release build:
//!
//! ```sh
//! cargo build --release -p ecssd-sidecar --bin ecssd-sidecar
//! cargo build --release -p ecssd-tools --bin ecssd-bench-metadata
//! ./target/release/ecssd-bench-metadata [rounds, default 30]
//! ```
#![allow(clippy::print_stdout)]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ecssd_tests::docker::ContainerSpec;
use ecssd_tests::measure::{percentile, rss_kib};
use ecssd_tests::sidecar::{Sidecar, SidecarOptions};
use ecssd_tests::wait_for;
use ecssd_tests::world::{RunningTask, World};

const WAIT: Duration = Duration::from_secs(120);
/// The sidecar's default `ECSSD_METADATA_POLL_MS`: not set here, so the default is what is measured.
const POLL_MS: f64 = 1000.0;
/// The goal: a change is sent within the poll interval and this much more.
const GOAL_BEYOND_POLL_MS: f64 = 50.0;
/// How long task metadata requests are counted while nothing changes.
const QUIET_WINDOW: Duration = Duration::from_secs(20);
/// The task's ENI address on Fargate.
const ENI: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 23);
/// A Docker socket that is not there: nothing the sidecar does may need one.
const NO_DOCKER: &str = "unix:///nonexistent/docker.sock";
/// What the sidecar logs once Route53 has answered a change batch.
const UPDATED: &str = "Route53 updated";
/// What the sidecar logs (debug) after every poll, changed or not.
const RESYNCED: &str = "resynced";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let command: Vec<String> = std::env::args().collect();
    println!("# ecssd sidecar, metadata mode, default poll interval ({POLL_MS:.0} ms)");
    println!("command: `{}`", command.join(" "));
    println!("load average at start: {}", load_average());
    let rounds: usize = command.get(1).map_or(Ok(30), |n| n.parse())?;
    latency_memory_and_polls(rounds).await?;
    calls_per_lifetime(false).await?;
    calls_per_lifetime(true).await?;
    println!("\nload average at end: {}", load_average());
    println!("(benchmark took {:.0} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// A metadata-mode sidecar of the world's zone, given by id, at the default poll interval.
fn metadata_options(world: &World, extra: &[&str]) -> SidecarOptions {
    let mut args = vec![format!("--zone-id={}", world.zone.zone_id())];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let env = vec![
        ("DOCKER_HOST".to_owned(), NO_DOCKER.to_owned()),
        ("ECSSD_SOURCE".to_owned(), "metadata".to_owned()),
    ];
    SidecarOptions { args, env }
}

/// An httpd container serving port 80, announced by the `dockerLabel` `SERVICE_80_NAME=service`.
fn labelled(name: &str, service: &str) -> ContainerSpec {
    ContainerSpec {
        labels: vec![("SERVICE_80_NAME".to_owned(), service.to_owned())],
        ..ContainerSpec::httpd(name, &[])
    }
}

/// web (stopped and started), calc (stays) and the sidecar's own idle container, on Fargate.
async fn fargate_task(world: &World) -> anyhow::Result<RunningTask> {
    let specs = [labelled("web", "_web._tcp"), labelled("calc", "_calc._tcp"), ContainerSpec::idle_sidecar()];
    world.fargate_task("bench", &specs, ENI).await
}

async fn latency_memory_and_polls(rounds: usize) -> anyhow::Result<()> {
    let world = World::new().await?;
    let running = fargate_task(&world).await?;
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, metadata_options(&world, &[])).await?;
    world.wait_for_targets("_web._tcp", 1, WAIT).await?;
    world.wait_for_targets("_calc._tcp", 1, WAIT).await?;
    anyhow::ensure!(
        sidecar.logged(&["ecssd sidecar starting", "\"source\":\"metadata\""]),
        "the sidecar did not start in metadata mode: {:#?}",
        sidecar.logs()
    );
    let pid = sidecar.pid().context("sidecar pid")?;
    // A few polls after the registration (and the first DNS check, which follows it).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rss = rss_kib(pid)?;

    // Task metadata requests while nothing changes: the polls, and any DNS check's stop check.
    let load_before_window = load_average();
    let lines_before = sidecar.logs().len();
    let requests_before = running.metadata.task_requests();
    let window_start = Instant::now();
    tokio::time::sleep(QUIET_WINDOW).await;
    let requests = running.metadata.task_requests() - requests_before;
    let window = window_start.elapsed().as_secs_f64();
    let window_lines: Vec<String> = sidecar.logs().split_off(lines_before);
    let polls = window_lines.iter().filter(|l| message(l).as_deref() == Some(RESYNCED)).count();
    let checks = window_lines.iter().filter(|l| l.contains("DNS check")).count();
    let batches = window_lines.iter().filter(|l| message(l).as_deref() == Some(UPDATED)).count();

    // Stop and start web `rounds` times; each change comes at a random point of the poll interval.
    let load_before_rounds = load_average();
    let mut samples = Vec::with_capacity(2 * rounds);
    let churn = Instant::now();
    for _ in 0..rounds {
        for (stop, targets) in [(true, 0), (false, 1)] {
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..POLL_MS as u64))).await;
            let before = sidecar.logs().len();
            let requests_before = running.metadata.task_requests();
            let op = Instant::now();
            if stop {
                running.task.stop_container(0).await?;
            } else {
                running.task.start_container(0).await?;
            }
            // From now on task metadata shows the change.
            let visible = unix_micros(SystemTime::now());
            let op_ms = op.elapsed().as_secs_f64() * 1e3;
            let polls_in_op = running.metadata.task_requests() - requests_before;
            let (latency_ms, beyond_tick_ms) = wait_for("the sidecar to send the change", WAIT, || async {
                // Gently: the sidecar shares two cores with this process, moto and Docker.
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(batch_after(&sidecar.logs(), before, visible))
            })
            .await?;
            let sample = Sample { stop, op_ms, polls_in_op, latency_ms, beyond_tick_ms };
            samples.push(sample);
            let now = world.srv_values("_web._tcp").await?.len();
            anyhow::ensure!(now == targets, "after the batch web has {now} targets, not {targets}");
        }
    }
    let churn_seconds = churn.elapsed().as_secs_f64();
    let load_after_rounds = load_average();
    let after_churn = rss_kib(pid)?;
    let peak = hwm_kib(pid)?;
    let logs = sidecar.logs();
    let total_batches = logs.iter().filter(|l| message(l).as_deref() == Some(UPDATED)).count();
    let refused = logs.iter().filter(|l| l.contains("PriorRequestNotComplete")).count();
    anyhow::ensure!(
        world.srv_values("_calc._tcp").await?.len() == 1,
        "calc, which never stopped, must stay registered"
    );

    let sorted = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values
    };
    let latencies = sorted(samples.iter().map(|s| s.latency_ms).collect());
    let beyond = sorted(samples.iter().filter_map(|s| s.beyond_tick_ms).collect());
    println!(
        "\n## change-to-batch latency ({} changes: {rounds} stop/start cycles of one of two labelled containers)",
        latencies.len()
    );
    println!(
        "From `docker stop`/`docker start` returning (task metadata shows the change from then on) to the \
         timestamp of the sidecar's \"{UPDATED}\" line, written after moto answered the change (the local \
         Route53 call is included). Each change came after a random pause of 0-{POLL_MS:.0} ms."
    );
    println!(
        "\"After the poll's tick\" estimates the metadata read + Route53 call of the poll that sent the batch: \
         the batch's time minus its tick, the earliest of the 5 polls before it (their \"{RESYNCED}\" lines) \
         moved on by whole intervals of {POLL_MS:.0} ms; understated by the shortest of their reads (a few \
         ms), overstated if a tick came late and moved the grid."
    );
    println!("| | change to batch | after the poll's tick (estimate) |\n|---|---|---|");
    for (name, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0)] {
        println!("| {name} | {:.1} ms | {:.1} ms |", percentile(&latencies, p), nearest_rank(&beyond, p));
    }
    println!("| min | {:.1} ms | {:.1} ms |", latencies[0], beyond.first().copied().unwrap_or(f64::NAN));
    let limit = POLL_MS + GOAL_BEYOND_POLL_MS;
    let over: Vec<String> = latencies.iter().filter(|&&l| l > limit).map(|l| format!("{l:.1}")).collect();
    println!(
        "goal: max <= {limit:.0} ms (poll interval + {GOAL_BEYOND_POLL_MS:.0} ms): {} ({} of {} above: [{}])",
        if over.is_empty() { "met" } else { "NOT met" },
        over.len(),
        latencies.len(),
        over.join(", ")
    );
    println!(
        "\n| change | n | to batch p50 / p90 / max | after tick p50 / max | Docker call p50 / max | \
         changes with a poll during the Docker call |\n|---|---|---|---|---|---|"
    );
    for (kind, stop) in [("stop", true), ("start", false)] {
        let of_kind: Vec<&Sample> = samples.iter().filter(|s| s.stop == stop).collect();
        let latency = sorted(of_kind.iter().map(|s| s.latency_ms).collect());
        let after_tick = sorted(of_kind.iter().filter_map(|s| s.beyond_tick_ms).collect());
        let op = sorted(of_kind.iter().map(|s| s.op_ms).collect());
        println!(
            "| {kind} | {} | {:.1} / {:.1} / {:.1} ms | {:.1} / {:.1} ms | {:.0} / {:.0} ms | {} |",
            of_kind.len(),
            nearest_rank(&latency, 50.0),
            nearest_rank(&latency, 90.0),
            nearest_rank(&latency, 100.0),
            nearest_rank(&after_tick, 50.0),
            nearest_rank(&after_tick, 100.0),
            nearest_rank(&op, 50.0),
            nearest_rank(&op, 100.0),
            of_kind.iter().filter(|s| s.polls_in_op > 0).count()
        );
    }
    for (which, during) in [("no poll", false), ("a poll", true)] {
        let after_tick = sorted(
            samples
                .iter()
                .filter(|s| (s.polls_in_op > 0) == during)
                .filter_map(|s| s.beyond_tick_ms)
                .collect(),
        );
        println!(
            "after the tick, changes with {which} during the Docker call ({}): p50 {:.1} / p90 {:.1} / max {:.1} ms",
            after_tick.len(),
            nearest_rank(&after_tick, 50.0),
            nearest_rank(&after_tick, 90.0),
            nearest_rank(&after_tick, 100.0)
        );
    }
    for (kind, stop) in [("stop", true), ("start", false)] {
        let latency = sorted(samples.iter().filter(|s| s.stop == stop).map(|s| s.latency_ms).collect());
        let shown: Vec<String> = latency.iter().map(|l| format!("{l:.0}")).collect();
        println!("{kind}, every change to batch (ms, sorted): {}", shown.join(" "));
    }
    let mut slowest: Vec<&Sample> = samples.iter().collect();
    slowest.sort_by(|a, b| b.latency_ms.total_cmp(&a.latency_ms));
    let mut late_ticks: Vec<&Sample> = samples.iter().filter(|s| s.beyond_tick_ms.is_some()).collect();
    late_ticks.sort_by(|a, b| b.beyond_tick_ms.unwrap_or(0.0).total_cmp(&a.beyond_tick_ms.unwrap_or(0.0)));
    println!(
        "slowest to batch: {}",
        slowest.iter().take(3).map(|s| s.describe()).collect::<Vec<_>>().join("; ")
    );
    println!(
        "longest after the tick: {}",
        late_ticks.iter().take(3).map(|s| s.describe()).collect::<Vec<_>>().join("; ")
    );
    println!(
        "(rounds took {churn_seconds:.0} s; load average before them {load_before_rounds}, after \
         {load_after_rounds}; {total_batches} \"{UPDATED}\" lines in all: 1 registration + one per change \
         expected = {}; {refused} lines about PriorRequestNotComplete)",
        1 + 2 * rounds
    );

    println!("\n## resident memory (VmRSS)\n| state | RSS |\n|---|---|");
    println!("| idle, web and calc registered | {:.1} MiB |", idle_rss as f64 / 1024.0);
    println!("| after {rounds} stop/start cycles | {:.1} MiB |", after_churn as f64 / 1024.0);
    println!("| peak over the run (VmHWM) | {:.1} MiB |", peak as f64 / 1024.0);
    let goal = 10 * 1024;
    println!(
        "goal: < 10 MiB: {}",
        if idle_rss.max(after_churn).max(peak) < goal { "met" } else { "NOT met" }
    );

    println!("\n## task metadata requests while nothing changes");
    println!(
        "{requests} requests in {window:.1} s = {:.2}/s ({polls} polls logged, {checks} DNS-check lines, \
         {batches} batches; load average before the window {load_before_window})",
        requests as f64 / window
    );
    Ok(())
}

/// One change, as measured.
struct Sample {
    /// A stop (else a start) of web.
    stop: bool,
    /// How long `docker stop`/`docker start` took.
    op_ms: f64,
    /// Task metadata requests that arrived while it ran: polls whose read may have waited for Docker
    /// and seen the change as the call returned.
    polls_in_op: usize,
    /// From the change becoming visible in task metadata to the batch's log line.
    latency_ms: f64,
    /// From the tick of the poll that sent the batch (estimated) to its log line.
    beyond_tick_ms: Option<f64>,
}

impl Sample {
    fn describe(&self) -> String {
        format!(
            "{} {:.1} ms (after tick {:.1} ms, Docker call {:.0} ms, {} poll(s) during it)",
            if self.stop { "stop" } else { "start" },
            self.latency_ms,
            self.beyond_tick_ms.unwrap_or(f64::NAN),
            self.op_ms,
            self.polls_in_op
        )
    }
}

/// The nearest-rank `p`th percentile of `sorted`; NaN when it is empty.
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() { f64::NAN } else { percentile(sorted, p) }
}

/// The first batch logged from line `since` on (after the change): milliseconds from `visible` (µs
/// since the epoch) to it, and after the tick of the poll that sent it (estimated).
fn batch_after(lines: &[String], since: usize, visible: i64) -> Option<(f64, Option<f64>)> {
    let index = since + lines[since..].iter().position(|l| message(l).as_deref() == Some(UPDATED))?;
    let sent = timestamp_micros(&lines[index])?;
    // Polls tick on a fixed grid, one interval apart, each logging "resynced" once it has read task
    // metadata (and sent any batch). The poll that sent this one logs it just before; each of the few
    // before it, moved on by whole intervals, puts the batch's tick at most its own read time too late.
    let tick = lines[..index]
        .iter()
        .rev()
        .filter(|l| message(l).as_deref() == Some(RESYNCED))
        .skip(1)
        .take(5)
        .filter_map(|l| timestamp_micros(l))
        .map(|at| {
            let intervals = ((sent - at) as f64 / (POLL_MS * 1e3)).round() as i64;
            at + intervals * (POLL_MS * 1e3) as i64
        })
        .min();
    Some(((sent - visible) as f64 / 1e3, tick.map(|t| (sent - t) as f64 / 1e3)))
}

/// One task's lifetime: registration, then SIGTERM as soon as the zone shows the records or, when
/// `settle`, once the zone has finished processing the registration (a task that lives a while).
async fn calls_per_lifetime(settle: bool) -> anyhow::Result<()> {
    let world = World::new().await?;
    let running = fargate_task(&world).await?;
    let mut sidecar =
        Sidecar::spawn(&world.moto, &running.metadata, metadata_options(&world, &["--drain-seconds=0"]))
            .await?;
    world.wait_for_targets("_web._tcp", 1, WAIT).await?;
    world.wait_for_targets("_calc._tcp", 1, WAIT).await?;
    let when = if settle {
        let limits = world.moto.limits().await?;
        let window = limits["route53"]["change_processing_ms"].as_u64().context("change_processing_ms")?;
        tokio::time::sleep(Duration::from_millis(window + 500)).await;
        format!("{} ms after the zone shows them (its processing window: {window} ms)", window + 500)
    } else {
        "as soon as the zone shows them".to_owned()
    };
    sidecar.sigterm()?;
    let status = sidecar.wait(WAIT).await?;
    anyhow::ensure!(
        world.task_records(running.task.task_id()).await?.is_empty(),
        "records left after SIGTERM"
    );
    let stats = world.moto.stats().await?;
    let route53 = stats["route53"].as_object().cloned().unwrap_or_default();
    let total: u64 = route53.values().map(|op| op["requests"].as_u64().unwrap_or(0)).sum();
    let refused =
        sidecar.logs().iter().filter(|line| line.contains("PriorRequestNotComplete")).count() as u64;
    println!(
        "\n## Route53 calls per task lifetime (web and calc registered, SIGTERM {when}; zone given by \
         id; --drain-seconds=0)"
    );
    println!(
        "{total} calls, {} accepted, {refused} refused as PriorRequestNotComplete and retried; sidecar {status}: {}",
        total - refused,
        serde_json::Value::Object(route53)
    );
    Ok(())
}

/// The `message` of a JSON log line.
fn message(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value["message"].as_str().map(str::to_owned)
}

/// The `timestamp` of a JSON log line, `YYYY-MM-DDTHH:MM:SS.ffffffZ` (tracing-subscriber's UTC
/// format), in microseconds since the epoch.
fn timestamp_micros(line: &str) -> Option<i64> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let text = value["timestamp"].as_str()?.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut hms = hms.splitn(3, ':').map(str::parse::<i64>);
    let (hour, minute, second) = (hms.next()?.ok()?, hms.next()?.ok()?, hms.next()?.ok()?);
    // The fraction as microseconds, whatever its number of digits.
    let digits: String = fraction.chars().chain(std::iter::repeat('0')).take(6).collect();
    let micros: i64 = digits.parse().ok()?;
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(seconds * 1_000_000 + micros)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn unix_micros(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as i64
}

/// VmHWM (peak resident memory) of a process, in KiB.
fn hwm_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM")?;
    Ok(line.split_whitespace().nth(1).context("VmHWM value")?.parse()?)
}

/// The 1, 5 and 15 minute load averages, as `uptime` shows them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}
