//! Measures self-healing on this machine (a benchmark, not a test): with the heal check at its default
//! interval (60 s), the Route53 API calls a fleet of sidecars makes while its records are intact, and
//! how long records deleted behind the sidecars' backs take to return and what each repair costs.
//! The resolver is the bed's caching resolver (dnsmasq in front of the zone's authority); the sidecars
//! are told the world zone's negative TTL (`ECSSD_HEAL_DNS_LAG_SECONDS`, the stack's 10 s) and the
//! bed's propagation (`ECSSD_HEAL_PROPAGATION_SECONDS=1`: the authority follows the zone within
//! 0.1 s). Arguments: tasks (default 20), deletion rounds (default 3). Run it on a release build:
//!
//! ```sh
//! cargo build --release --workspace --bins && cargo run --release -p ecssd-tools --bin ecssd-bench-healing -- 20 3
//! ```
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use anyhow::Context;
use ecssd_records::{Record, RecordKey};
use ecssd_tests::docker::ContainerSpec;
use ecssd_tests::measure::{percentile, rss_kib};
use ecssd_tests::sidecar::{Sidecar, SidecarOptions};
use ecssd_tests::wait_for;
use ecssd_tests::world::{DOMAIN, RunningTask, World};

/// The sidecar's default heal check interval, which this benchmark leaves unset.
const CHECK_SECONDS: f64 = 60.0;
/// Records per task: its A record, its ownership TXT record and one SRV target.
const RECORDS_PER_TASK: usize = 3;
/// How often the zone is listed (once for all tasks) while waiting for records.
const POLL: Duration = Duration::from_millis(200);
/// Tasks whose records one deletion request removes (3 values each; Route53 takes 1,000 per request).
const DELETE_BATCH_TASKS: usize = 100;
const FLEET_TASKS: f64 = 1000.0;
const FLEET_TASKS_TEXT: &str = "1,000";
/// Route53's API limit per account, every caller together.
const ROUTE53_RATE: f64 = 5.0;
const RSS_BUDGET_MIB: f64 = 10.0;

const NOTHING_TO_REPAIR: &str = "DNS check: nothing to repair";
const INCONCLUSIVE: &str = "DNS check inconclusive";
const DRIFTED: &str = "\"problem\":\"records_drifted\"";
const BUSY: &str = "PriorRequestNotComplete";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map_or(Ok(20), |n| n.parse()).context("tasks (first argument)")?;
    let rounds: usize = args.next().map_or(Ok(3), |n| n.parse()).context("rounds (second argument)")?;
    anyhow::ensure!(count > 0 && rounds > 0, "tasks and rounds must be at least 1");

    let world = World::new().await?;
    let dns = world.serve_dns().await?;
    let machine = machine(&world).await;
    let options =
        SidecarOptions { args: vec![format!("--zone-id={}", world.zone.zone_id())], env: dns.sidecar_env() };

    // 1. N tasks, each with its own sidecar, all registered.
    let preparing = Instant::now();
    let mut tasks: Vec<RunningTask> = Vec::with_capacity(count);
    let mut sidecars: Vec<Sidecar> = Vec::with_capacity(count);
    for _ in 0..count {
        let running = world
            .task(
                "bench",
                &[ContainerSpec::httpd("web", &["SERVICE_80_NAME=_web._tcp"]), ContainerSpec::idle_sidecar()],
            )
            .await?;
        sidecars.push(Sidecar::spawn(&world.moto, &running.metadata, options.clone()).await?);
        tasks.push(running);
    }
    let ids: Vec<String> = tasks.iter().map(|t| t.task.task_id().to_owned()).collect();
    let registered =
        wait_for("every task's 3 records", Duration::from_secs(120 + 2 * count as u64), || async {
            tokio::time::sleep(POLL).await;
            let zone = world.records().await?;
            let per_task: Vec<Vec<Record>> = ids.iter().map(|id| records_of(&zone, id)).collect();
            Ok(per_task.iter().all(|r| r.len() == RECORDS_PER_TASK).then_some(per_task))
        })
        .await?;
    println!(
        "({count} tasks with their sidecars started and registered in {:.0} s; not part of the measurement)",
        preparing.elapsed().as_secs_f64()
    );

    // 2. Steady state: records intact, every sidecar checks DNS twice.
    let marks = log_marks(&sidecars);
    let before = Calls::now(&world).await?;
    let steady_started = Instant::now();
    wait_for("2 DNS checks by every sidecar", Duration::from_secs(200), || async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(counts_since(&sidecars, &marks, NOTHING_TO_REPAIR).iter().all(|&n| n >= 2).then_some(()))
    })
    .await?;
    // Counted before the calls, so no call of a check counted here can be missed.
    let steady_checks: usize = counts_since(&sidecars, &marks, NOTHING_TO_REPAIR).iter().sum();
    let steady_inconclusive: usize = counts_since(&sidecars, &marks, INCONCLUSIVE).iter().sum();
    let steady_drifted: usize = counts_since(&sidecars, &marks, DRIFTED).iter().sum();
    let steady = Calls::now(&world).await?.since(&before);
    let steady_seconds = steady_started.elapsed().as_secs_f64();
    let per_check = steady.total as f64 / steady_checks as f64;
    let steady_fleet_rate = per_check * FLEET_TASKS / CHECK_SECONDS;
    println!("\n## steady state: records intact ({count} sidecars, {steady_seconds:.0} s)");
    println!(
        "| DNS checks (\"nothing to repair\") | of them inconclusive | repairs asked | ListResourceRecordSets | ChangeResourceRecordSets | all Route53 calls |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {steady_checks} | {steady_inconclusive} | {steady_drifted} | {} | {} | {} |",
        steady.list, steady.change, steady.total
    );
    println!(
        "{per_check:.3} calls per task-check: at {FLEET_TASKS_TEXT} tasks checking every {CHECK_SECONDS:.0} s, \
         {steady_fleet_rate:.3} calls/s fleet-wide"
    );

    // 3. Healing: every task's records deleted at once, R times.
    let mut times: Vec<f64> = Vec::with_capacity(count * rounds);
    let mut healing = Calls::default();
    let (mut repairs_asked, mut busy) = (0, 0);
    println!("\n## healing: all records of all {count} tasks deleted at once, {rounds} round(s)");
    println!(
        "| round | back after p50 | max | ListResourceRecordSets | ChangeResourceRecordSets | repairs asked | {BUSY} |"
    );
    println!("|---|---|---|---|---|---|---|");
    for round in 1..=rounds {
        let marks = log_marks(&sidecars);
        let before = Calls::now(&world).await?;
        let mut deleted_at = vec![Instant::now(); count];
        let indices: Vec<usize> = (0..count).collect();
        for batch in indices.chunks(DELETE_BATCH_TASKS) {
            let keys: Vec<RecordKey> =
                batch.iter().flat_map(|&i| registered[i].iter().map(|r| r.key.clone())).collect();
            world.delete_records(&keys).await?;
            let now = Instant::now();
            for &i in batch {
                deleted_at[i] = now;
            }
        }
        let mut back: Vec<Option<f64>> = vec![None; count];
        let deadline = Instant::now() + Duration::from_secs(200);
        while back.iter().any(Option::is_none) {
            anyhow::ensure!(
                Instant::now() < deadline,
                "round {round}: {} of {count} tasks' records not back after 200 s",
                back.iter().filter(|b| b.is_none()).count()
            );
            tokio::time::sleep(POLL).await;
            let zone = world.records().await?;
            let now = Instant::now();
            for (i, slot) in back.iter_mut().enumerate().filter(|(_, b)| b.is_none()) {
                if records_of(&zone, &ids[i]) == registered[i] {
                    *slot = Some(now.duration_since(deleted_at[i]).as_secs_f64());
                }
            }
        }
        let calls = Calls::now(&world).await?.since(&before);
        let asked: usize = counts_since(&sidecars, &marks, DRIFTED).iter().sum();
        let refused: usize = counts_since(&sidecars, &marks, BUSY).iter().sum();
        let mut round_times: Vec<f64> = back.into_iter().flatten().collect();
        round_times.sort_by(f64::total_cmp);
        println!(
            "| {round} | {:.1} s | {:.1} s | {} | {} | {asked} | {refused} |",
            percentile(&round_times, 50.0),
            percentile(&round_times, 100.0),
            calls.list,
            calls.change
        );
        times.extend(round_times);
        healing = healing.plus(&calls);
        repairs_asked += asked;
        busy += refused;
    }
    times.sort_by(f64::total_cmp);
    let repaired = (count * rounds) as f64;
    let (p50, p99, max) = (percentile(&times, 50.0), percentile(&times, 99.0), percentile(&times, 100.0));
    let per_repair = healing.total as f64 / repaired;
    let hourly_fleet_rate = per_repair * FLEET_TASKS / 3600.0;
    println!(
        "{} repairs: back after p50 {p50:.1} s, p99 {p99:.1} s, max {max:.1} s (from the deletion until the \
         zone held exactly what the task registered; polled every {} ms)",
        times.len(),
        POLL.as_millis()
    );
    println!(
        "API calls per repair: {:.2} ListResourceRecordSets + {:.2} ChangeResourceRecordSets = {per_repair:.2} \
         ({} calls, all operations, for {} repairs; {busy} refused as {BUSY} and retried, counted in these)",
        healing.list as f64 / repaired,
        healing.change as f64 / repaired,
        healing.total,
        times.len()
    );

    // 4. Memory of every sidecar at the end.
    let mut rss: Vec<f64> = Vec::with_capacity(count);
    for sidecar in &sidecars {
        let pid = sidecar.pid().context("a sidecar exited")?;
        rss.push(rss_kib(pid)? as f64 / 1024.0);
    }
    rss.sort_by(f64::total_cmp);
    let (rss_median, rss_max) = (percentile(&rss, 50.0), percentile(&rss, 100.0));
    println!("\n## resident memory (VmRSS) of the {count} sidecars at the end");
    println!("max {rss_max:.1} MiB, median {rss_median:.1} MiB (budget: under {RSS_BUDGET_MIB:.0} MiB)");

    let profile = if cfg!(debug_assertions) { "debug build: not representative" } else { "release build" };
    println!("\n## summary");
    println!("Machine: {machine}; {profile}.");
    println!(
        "Bed: moto on loopback as Route53 (the harness's own reads uncounted), a caching resolver (dnsmasq) in \
         front of the zone's authority as the VPC resolver; {count} tasks, each one httpd container (_web._tcp) and its own sidecar process."
    );
    println!(
        "Settings: heal check every {CHECK_SECONDS:.0} s (the default, jittered ±10%); \
         ECSSD_HEAL_DNS_LAG_SECONDS=10 (the zone's negative TTL, as the stack sets it), \
         ECSSD_HEAL_PROPAGATION_SECONDS=1 (the bed's authority follows the zone within 0.1 s); zone given by id."
    );
    println!(
        "- Intact records: {steady_checks} DNS checks over {steady_seconds:.0} s made {} Route53 API calls \
         ({per_check:.3} per check): at {FLEET_TASKS_TEXT} tasks, {steady_fleet_rate:.3} calls/s fleet-wide \
         (Route53 allows {ROUTE53_RATE:.0}/s per account).",
        steady.total
    );
    println!(
        "- Deleted records ({count} tasks x {rounds} round(s), all at once): back after p50 {p50:.1} s, p99 \
         {p99:.1} s, max {max:.1} s (bounded by the check interval); {per_repair:.2} API calls per repair \
         ({:.2} ListResourceRecordSets, {:.2} ChangeResourceRecordSets; {repairs_asked} repairs asked for \
         {} deletions). If every task's records were deleted once an hour, {FLEET_TASKS_TEXT} tasks would \
         make {hourly_fleet_rate:.2} calls/s ({:.0}% of Route53's {ROUTE53_RATE:.0}/s).",
        healing.list as f64 / repaired,
        healing.change as f64 / repaired,
        times.len(),
        100.0 * hourly_fleet_rate / ROUTE53_RATE
    );
    println!("- Sidecar memory at the end: VmRSS max {rss_max:.1} MiB, median {rss_median:.1} MiB.");
    println!("\n(benchmark took {:.0} s)", started.elapsed().as_secs_f64());
    anyhow::ensure!(
        cfg!(debug_assertions) || rss_max < RSS_BUDGET_MIB,
        "a sidecar's VmRSS ({rss_max:.1} MiB) is over the {RSS_BUDGET_MIB:.0} MiB budget"
    );
    Ok(())
}

/// The task's records in a listing of the zone: the same selection as [`World::task_records`], from
/// one listing for all tasks (each poll lists the zone once, not once per task).
fn records_of(zone: &[Record], task_id: &str) -> Vec<Record> {
    let needle = format!("{task_id}.{DOMAIN}");
    zone.iter()
        .filter(|r| r.key.name.contains(task_id) || r.values().iter().any(|v| v.contains(&needle)))
        .cloned()
        .collect()
}

/// Route53 requests the sidecars made (the observer's are not counted).
#[derive(Debug, Default, Clone, Copy)]
struct Calls {
    list: u64,
    change: u64,
    /// Every Route53 operation.
    total: u64,
}

impl Calls {
    async fn now(world: &World) -> anyhow::Result<Self> {
        let stats = world.moto.stats().await?;
        let route53 = stats["route53"].as_object().cloned().unwrap_or_default();
        let requests = |op: &str| route53.get(op).and_then(|o| o["requests"].as_u64()).unwrap_or(0);
        Ok(Self {
            list: requests("ListResourceRecordSets"),
            change: requests("ChangeResourceRecordSets"),
            total: route53.values().map(|o| o["requests"].as_u64().unwrap_or(0)).sum(),
        })
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            list: self.list - before.list,
            change: self.change - before.change,
            total: self.total - before.total,
        }
    }

    fn plus(&self, other: &Self) -> Self {
        Self {
            list: self.list + other.list,
            change: self.change + other.change,
            total: self.total + other.total,
        }
    }
}

/// How many lines each sidecar has logged so far.
fn log_marks(sidecars: &[Sidecar]) -> Vec<usize> {
    sidecars.iter().map(|s| s.logs().len()).collect()
}

/// Per sidecar, its lines since `marks` that contain `needle`.
fn counts_since(sidecars: &[Sidecar], marks: &[usize], needle: &str) -> Vec<usize> {
    sidecars
        .iter()
        .zip(marks)
        .map(|(s, &mark)| s.logs().iter().skip(mark).filter(|l| l.contains(needle)).count())
        .collect()
}

/// This machine as the benchmark saw it: CPU, cores, memory, kernel, Docker.
async fn machine(world: &World) -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let meminfo = read("/proc/meminfo");
    let memory_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0 / 1024.0);
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    let docker = match world.docker.version().await {
        Ok(version) => version.version.unwrap_or_else(|| "?".into()),
        Err(_) => "?".into(),
    };
    format!("{cpu}, {cores} CPUs available, {memory_gib:.1} GiB RAM, Linux {kernel}, Docker {docker}")
}
