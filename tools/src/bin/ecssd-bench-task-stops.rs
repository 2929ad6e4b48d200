//! Measures the Withdrawer on this machine (a benchmark, not a test): from a task state change event's
//! delivery to the stopped task's records gone, for 100 tasks stopped one after another and for a burst
//! of 100 stopped at once, with the Route53 calls each task costs. The function is the release
//! `bootstrap` serving the Lambda runtime API emulator; events are built from what moto's ECS says
//! about each stopped task and delivered as the SQS batches Lambda would hand it (at most 10, the
//! template's batch size) to one function instance paced as deployed (1 Route53 request/s; on AWS two
//! instances may run at once); Route53 is limited to AWS's 5 requests/s for the account. Run it on a
//! release build:
//!
//! ```sh
//! cargo build --release --workspace --bins && ./target/release/ecssd-bench-task-stops
//! ```
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, ensure};
use ecssd_records::{RecordStore, TaskKeys};
use ecssd_tests::ecs::PlacedTask;
use ecssd_tests::http::post_json;
use ecssd_tests::measure::percentile;
use ecssd_tests::moto::Moto;
use ecssd_tests::sweeper::{LambdaEmulator, SweepBed};
use ecssd_tests::task_events::{batch_item_failures, sqs_batch, task_state_change};
use ecssd_tests::world::DOMAIN;

const TASKS: usize = 100;
/// The template's `BatchSize` for the queue.
const BATCH_SIZE: usize = 10;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let bed = SweepBed::start().await?;
    // The account's rate before 2026-07-30 (5/s; Route53 Developer Guide, "Throttling for Amazon Route
    // 53 API requests"): the function's own calls are paced below it.
    bed.moto.set_account_rate(Some(ecssd_tests::moto::AccountRate::Five)).await?;
    let host = bed.fleet.host(&bed.fleet.cluster("bench").await?).await?;
    // One withdrawer instance at its deployed pace for that account rate: Route53RequestsPerSecond=auto
    // gives the withdrawals 40% of 5/s, and each of the two instances the event source mapping may run
    // takes half.
    let lambda = LambdaEmulator::start(
        &bed.env(&[("ECSSD_ROLE", "withdrawer"), ("ECSSD_ROUTE53_REQUESTS_PER_SECOND", "1")]),
    )
    .await?;

    println!("One after another: {TASKS} tasks, each stopped in ECS, then its event delivered alone");
    let tasks = bed.registered(&host, TASKS).await?;
    let before = bed.moto.stats().await?;
    let mut latencies = Vec::with_capacity(TASKS);
    for task in &tasks {
        bed.fleet.stop_task(task).await?;
        let event = task_state_change(&bed.fleet, task, 2).await?;
        let delivered = Instant::now();
        deliver(&lambda, &[event]).await?;
        wait_gone(&bed, task).await?;
        latencies.push(delivered.elapsed().as_secs_f64() * 1000.0);
    }
    let calls = calls_since(&bed, &before).await?;
    report_latencies("event delivered → records gone", &mut latencies);
    report_calls(&calls, TASKS);

    println!("\nA burst: {TASKS} tasks stopped at once, their events delivered in batches of {BATCH_SIZE}");
    let tasks = bed.registered(&host, TASKS).await?;
    let mut events = Vec::with_capacity(TASKS);
    for task in &tasks {
        bed.fleet.stop_task(task).await?;
        events.push(task_state_change(&bed.fleet, task, 2).await?);
    }
    let before = bed.moto.stats().await?;
    let burst = Instant::now();
    let mut latencies = Vec::with_capacity(TASKS);
    for (batch, chunk) in tasks.chunks(BATCH_SIZE).zip(events.chunks(BATCH_SIZE)) {
        deliver(&lambda, chunk).await?;
        for task in batch {
            wait_gone(&bed, task).await?;
            latencies.push(burst.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let calls = calls_since(&bed, &before).await?;
    println!("  all {TASKS} withdrawn {:.1} s after the first delivery", burst.elapsed().as_secs_f64());
    report_latencies("first delivery → a task's records gone", &mut latencies);
    report_calls(&calls, TASKS);
    println!("\n(benchmark took {:.0} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// Hands the function one SQS batch of `events`; it must ask for no message to be delivered again.
async fn deliver(lambda: &LambdaEmulator, events: &[serde_json::Value]) -> anyhow::Result<()> {
    let answer = post_json(&lambda.invoke_url(), &sqs_batch(events)).await?;
    let failures = batch_item_failures(&answer)?;
    ensure!(failures.is_empty(), "messages to deliver again: {failures:?}\n{}", lambda.function_output());
    Ok(())
}

/// Confirms (one read by name, not counted) that the task's ownership record is gone.
async fn wait_gone(bed: &SweepBed, task: &PlacedTask) -> anyhow::Result<()> {
    let key = TaskKeys::of(&DOMAIN.parse()?, task.id()).ownership;
    ensure!(bed.zone.read(&key).await?.is_none(), "{key} is still in the zone after its withdrawal");
    Ok(())
}

/// Requests the function made since `before` (moto's stats), per "service operation".
async fn calls_since(bed: &SweepBed, before: &serde_json::Value) -> anyhow::Result<BTreeMap<String, u64>> {
    let after = bed.moto.stats().await?;
    // Route53 only: the harness's own ECS and EC2 calls (stopping and describing the tasks, the
    // instance's zone for the event) fall in the window; the function makes none (the tests assert it).
    let mut calls = BTreeMap::new();
    for operation in after["route53"].as_object().context("route53 stats")?.keys() {
        let requests = |stats| Moto::requests(stats, "route53", Some(operation));
        let made = requests(&after) - requests(before);
        if made > 0 {
            calls.insert(format!("route53 {operation}"), made);
        }
    }
    Ok(calls)
}

fn report_latencies(what: &str, latencies: &mut [f64]) {
    latencies.sort_by(f64::total_cmp);
    println!(
        "  {what}: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} tasks)",
        percentile(latencies, 50.0),
        percentile(latencies, 99.0),
        latencies.last().copied().unwrap_or_default(),
        latencies.len()
    );
}

fn report_calls(calls: &BTreeMap<String, u64>, tasks: usize) {
    for (call, count) in calls {
        println!("  {call}: {count} ({:.2} per task)", *count as f64 / tasks as f64);
    }
}
