//! Measures the sweeper on this machine (a benchmark, not a test): API calls of one sweep of a large
//! zone against the minimum the APIs allow, health checks of many endpoints with some hanging, and
//! `bootstrap`'s init time before its first event. Run it on a release build:
//!
//! ```sh
//! cargo build --release --workspace --bins && cargo run --release -p ecssd-tools --bin ecssd-bench-sweeper
//! ```
#![allow(clippy::print_stdout)]

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use ecssd_edge::Route53Zone;
use ecssd_lambda::sweep::health::{Endpoint, HealthSettings, check_all};
use ecssd_records::{RecordSet, RecordStore, RetryPolicy};
use ecssd_tests::ecs::{Fleet, Host, PlacedTask, seed, task_records};
use ecssd_tests::endpoints::{Behaviour, TestEndpoint};
use ecssd_tests::moto::Moto;
use ecssd_tests::sidecar::binary;
use ecssd_tests::sweeper::{base_env, sweep_once};
use ecssd_tests::world::DOMAIN;

const CLUSTERS: usize = 3;
const TASKS: usize = 3000;
const HOSTS_PER_CLUSTER: usize = 10;
/// Tasks with a second service, so the zone holds 3 * TASKS + this many records: with its NS and SOA,
/// exactly Route53's default quota of 10,000 records per zone.
const TWO_SERVICE_TASKS: usize = 998;
/// Route53 holds at most 100 multivalue records of one name and type, so the tasks are spread over
/// services of at most this many targets each.
const TARGETS_PER_SERVICE: usize = 100;
/// Tasks stopped without deregistering, and one host terminated, before the sweep.
const STOPPED: usize = 300;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    sweep_calls().await?;
    health_checks(1000, 100, Duration::from_millis(2000)).await?;
    init_time().await?;
    println!("\n(benchmark took {:.0} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// One sweep of a zone at its 10,000-record quota / 3,000 tasks / 3 clusters: API calls against the
/// minimum.
async fn sweep_calls() -> anyhow::Result<()> {
    let moto = Moto::start().await?;
    moto.create_private_zone(DOMAIN).await?;
    let client = ecssd_edge::route53::client(&moto.observer_sdk_config());
    let zone = Route53Zone::find(client, DOMAIN.parse()?, RetryPolicy::default()).await?;
    let fleet = Fleet::new(&moto).await?;
    let seeding = Instant::now();
    let mut hosts: Vec<Host> = Vec::new();
    for c in 0..CLUSTERS {
        let name = format!("cluster-{c}");
        fleet.cluster(&name).await?;
        for _ in 0..HOSTS_PER_CLUSTER {
            hosts.push(fleet.host(&name).await?);
        }
    }
    let mut tasks: Vec<(PlacedTask, usize)> = Vec::with_capacity(TASKS);
    for index in 0..TASKS {
        let host = &hosts[index % hosts.len()];
        let task = fleet.start_tasks(host, 1).await?.remove(0);
        tasks.push((task, index % hosts.len()));
    }
    let mut sets: Vec<RecordSet> = Vec::new();
    for (index, (task, _)) in tasks.iter().enumerate() {
        let port = 32768 + (index % 20000) as u16;
        let octet = (index % 250) as u8 + 1;
        let service = index / TARGETS_PER_SERVICE;
        let (web, admin) = (format!("_web{service}._tcp"), format!("_admin{service}._tcp"));
        let mut targets = vec![(web.as_str(), port)];
        if index < TWO_SERVICE_TASKS {
            targets.push((admin.as_str(), port + 1));
        }
        sets.push(task_records(task, Ipv4Addr::new(10, 1, octet, 1), &targets)?);
    }
    seed(&zone, sets.clone()).await?;
    let records = zone.list_all().await?.len();
    let terminated = hosts.len() - 1;
    fleet.terminate(&hosts[terminated]).await?;
    let (mut dead, mut changes, mut value_chars) = (0, 0, 0);
    for (index, (task, host)) in tasks.iter().enumerate() {
        let stop = (TWO_SERVICE_TASKS..TWO_SERVICE_TASKS + STOPPED).contains(&index);
        if stop {
            fleet.stop_task(task).await?;
        }
        if stop || *host == terminated {
            dead += 1;
            changes += if index < TWO_SERVICE_TASKS { 4 } else { 3 };
            value_chars += sets[index].iter().flat_map(|r| r.values()).map(String::len).sum::<usize>();
        }
    }
    println!(
        "seeded {records} records of {TASKS} tasks on {} hosts in {CLUSTERS} clusters in {:.0} s",
        hosts.len(),
        seeding.elapsed().as_secs_f64()
    );

    let clusters: Vec<String> = (0..CLUSTERS).map(|c| format!("cluster-{c}")).collect();
    let mut env = base_env(&moto);
    env.push(("ECSSD_CLUSTERS".into(), clusters.join(",")));
    let run = sweep_once(&env, &[]).await?;
    anyhow::ensure!(run.success, "sweep failed: {}", run.stderr);
    let report = &run.report;
    let deleted = report["stale_records_deleted"].as_u64().context("stale_records_deleted")?;
    anyhow::ensure!(deleted as usize == changes, "deleted {deleted} records, expected {changes}");
    let calls: u64 = report["api_calls"]
        .as_object()
        .context("api_calls")?
        .values()
        .flat_map(|ops| ops.as_object().into_iter().flat_map(|o| o.values()))
        .filter_map(serde_json::Value::as_u64)
        .sum();
    let per_cluster = TASKS.div_ceil(CLUSTERS).div_ceil(100);
    let minimum = records.div_ceil(300) + CLUSTERS * per_cluster + changes.div_ceil(1000);
    // Route53 also caps a request at 32,000 characters of record values: the real floor for deletes.
    let change_floor = changes.div_ceil(1000).max(value_chars.div_ceil(32_000));
    let floor = records.div_ceil(300) + CLUSTERS * per_cluster + change_floor;
    println!("\n## Sweep of {records} records / {TASKS} tasks / {CLUSTERS} clusters");
    println!(
        "stale: {dead} tasks ({STOPPED} stopped, the rest on a terminated host): {deleted} records deleted"
    );
    let above = |base: usize| (calls as f64 / base as f64 - 1.0) * 100.0;
    println!("API calls: {calls}");
    println!(
        "  issue's minimum {minimum} (list + describe tasks + ceil(changes/1000)): {:.1}% above",
        above(minimum)
    );
    println!(
        "  Route53's real floor {floor} (the deletes hold {value_chars} value characters, at most 32,000 a \
         request: {change_floor} requests): {:.1}% above",
        above(floor)
    );
    println!("by operation: {}", report["api_calls"]);
    println!("sweep duration against moto: {} ms", report["duration_ms"]);
    Ok(())
}

/// `total` endpoints checked at the default concurrency, `hanging` of them never answering.
async fn health_checks(total: usize, hanging: usize, timeout: Duration) -> anyhow::Result<()> {
    // A few listeners serve many endpoints each: every check opens its own connection regardless.
    let healthy: Vec<TestEndpoint> = futures_join(10, Behaviour::Status(200)).await?;
    let hung: Vec<TestEndpoint> = futures_join(10, Behaviour::Hang).await?;
    let endpoints: Vec<Endpoint> = (0..total)
        .map(|index| {
            let server = if index % (total / hanging) == 0 {
                &hung[index % hung.len()]
            } else {
                &healthy[index % healthy.len()]
            };
            Endpoint {
                task: index,
                service: "_web._tcp".into(),
                url: format!("http://{}/health?i={index}", server.addr()),
            }
        })
        .collect();
    let settings = HealthSettings { path: "/health".into(), timeout, attempts: 2, concurrency: 256 };
    let started = Instant::now();
    let outcomes = check_all(endpoints, &settings).await;
    let took = started.elapsed();
    let failed = outcomes.iter().filter(|(_, o)| *o != ecssd_lambda::sweep::health::Outcome::Healthy).count();
    println!(
        "\n## Health checks: {total} endpoints, {hanging} hanging, timeout {} ms, concurrency 256",
        timeout.as_millis()
    );
    println!(
        "unhealthy found: {failed}; total time {} ms = {:.2}x the timeout",
        took.as_millis(),
        took.as_secs_f64() / timeout.as_secs_f64()
    );
    Ok(())
}

async fn futures_join(count: usize, behaviour: Behaviour) -> anyhow::Result<Vec<TestEndpoint>> {
    let mut endpoints = Vec::with_capacity(count);
    for _ in 0..count {
        endpoints.push(TestEndpoint::start(behaviour).await?);
    }
    Ok(endpoints)
}

/// Size of `bootstrap` and the time from exec to its first request for an event (Lambda's init
/// phase), against a minimal Lambda Runtime API on loopback.
async fn init_time() -> anyhow::Result<()> {
    let path = binary("bootstrap")?;
    let size = std::fs::metadata(&path)?.len();
    let mut samples = Vec::new();
    for _ in 0..10 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let api = listener.local_addr()?;
        let started = Instant::now();
        let mut child = tokio::process::Command::new(&path)
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "ecssd-sweeper")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "ANOTREALKEY")
            .env("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
            .env("ECSSD_ZONE_ID", "Z0BENCH")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        // The first connection is the runtime asking for its first event: init is over.
        tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .context("no /next request")??;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        child.kill().await?;
    }
    samples.sort_by(f64::total_cmp);
    println!("\n## bootstrap");
    println!("{}: {:.1} MiB", path.display(), size as f64 / 1048576.0);
    println!(
        "init (exec to first event request), 10 runs: median {:.1} ms, max {:.1} ms",
        samples[5], samples[9]
    );
    Ok(())
}
