//! `ecssd-demo`: ecssd on this machine with nothing but Docker. moto plays AWS (a private hosted zone
//! and ECS), the local Docker engine plays the ECS host (with task metadata and IMDS stand-ins),
//! dnsmasq answers for the zone as the Route53 Resolver would, and real sidecar processes register the
//! example services: time ×2, calc ×2 and the portal. It then stops a calc task the way ECS does,
//! sweeps after a task that was SIGKILLed, and leaves the portal running until Ctrl-C.
//!
//! `ecssd-demo --cleanup` removes containers a demo that was killed left behind.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use anyhow::Context;
use ecssd_records::RecordType;
use ecssd_tests::examples::{
    ExampleCluster, ExampleTask, free_port, portal_task, service_task, start_dns, sync_dns,
};
use ecssd_tests::sweeper::{base_env, sweep_once};
use ecssd_tests::world::{DOMAIN, World};

fn step(text: &str) {
    println!("\n\x1b[1m==> {text}\x1b[0m");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--cleanup") {
        let docker = ecssd_tests::docker::connect().await?;
        let removed = ecssd_tests::docker::remove_leftovers(&docker).await?;
        println!("removed {removed} containers left by earlier runs");
        return Ok(());
    }
    step("starting moto (AWS: Route53 private zone servicediscovery.internal, ECS, EC2)");
    let world = World::new().await.context("starting moto and connecting to Docker (run scripts/setup)")?;
    let cluster = ExampleCluster::new(&world).await?;
    println!("    AWS endpoint: {}", world.moto.endpoint());
    let dns = start_dns(&world).await?;
    println!("    DNS for the zone (dnsmasq, caching): {}", dns.address());

    let mut tasks: Vec<ExampleTask> = Vec::new();
    for (service, count) in [("time", 2), ("calc", 2)] {
        for n in 1..=count {
            let task = service_task(&world, &cluster, service, &format!("{service}-{n}")).await?;
            println!("    task {service}-{n} ({}) started; its sidecar registers it", task.placed.id());
            tasks.push(task);
        }
    }
    world.wait_for_targets("_time._tcp", 2, Duration::from_secs(60)).await?;
    world.wait_for_targets("_calc._tcp", 2, Duration::from_secs(60)).await?;
    sync_dns(&world, &dns).await?;
    let port = free_port()?;
    step("starting the portal, which finds time and calc by DNS SRV lookups");
    let portal = portal_task(&world, &cluster, &dns, port).await?;
    world.wait_for_targets("_portal._tcp", 1, Duration::from_secs(60)).await?;
    step("the zone now holds");
    print_zone(&world).await?;

    let calc = tasks.remove(3);
    step(&format!("stopping {} the way ECS does: SIGTERM to its sidecar", calc.instance));
    let ExampleTask { placed, running, mut sidecar, .. } = calc;
    sidecar.sigterm()?;
    let status = sidecar.wait(Duration::from_secs(30)).await?;
    println!("    its sidecar withdrew the task's records, drained, and exited ({status})");
    cluster.fleet.stop_task(&placed).await?;
    drop(running);
    sync_dns(&world, &dns).await?;
    print_zone(&world).await?;

    let time = tasks.remove(1);
    step(&format!(
        "{} crashes: SIGKILL to its sidecar and its containers, no chance to deregister",
        time.instance
    ));
    let ExampleTask { placed, running, sidecar, .. } = time;
    sidecar.sigkill().await?;
    drop(running);
    cluster.fleet.stop_task(&placed).await?;
    println!("    ECS reports the task STOPPED; its records are still in the zone:");
    print_zone(&world).await?;
    step("one sweep (the Lambda's binary, run once from the shell)");
    let sweep = sweep_once(&base_env(&world.moto), &[]).await?;
    anyhow::ensure!(sweep.success, "the sweep failed: {}", sweep.stderr);
    println!(
        "    stale tasks: {}, records deleted: {}, API calls: {}",
        sweep.report["stale_tasks"], sweep.report["stale_records_deleted"], sweep.report["api_calls"]
    );
    sync_dns(&world, &dns).await?;
    print_zone(&world).await?;

    step(&format!("the portal: http://127.0.0.1:{port}/  (Ctrl-C stops everything and cleans up)"));
    // DNS follows the zone as the Route53 Resolver does.
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = interval.tick() => {
                if sync_dns(&world, &dns).await? {
                    println!("    the zone changed:");
                    print_zone(&world).await?;
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    step("cleaning up: each sidecar withdraws its task, then everything is removed");
    // Ctrl-C in a terminal already reached the sidecars (same process group); this covers a SIGINT
    // sent to the demo alone.
    let mut all: Vec<ExampleTask> = tasks;
    all.push(portal);
    for task in &all {
        let _ = task.sidecar.sigterm();
    }
    for task in &mut all {
        task.sidecar.wait(Duration::from_secs(30)).await?;
    }
    print_zone(&world).await?;
    Ok(())
}

/// Prints the zone's SRV targets as a table: service, target, port, task.
async fn print_zone(world: &World) -> anyhow::Result<()> {
    let records = world.records().await?;
    println!("    {:<40} {:<66} {:>6}  task", "service", "target", "port");
    let mut rows = 0;
    for record in records.iter().filter(|r| r.key.record_type == RecordType::Srv) {
        for value in record.values() {
            let fields: Vec<&str> = value.split(' ').collect();
            let (port, target) = (fields.get(2).unwrap_or(&"?"), fields.get(3).unwrap_or(&"?"));
            let task = target.trim_end_matches('.').strip_suffix(&format!(".{DOMAIN}")).unwrap_or(target);
            println!("    {:<40} {:<66} {:>6}  {task}", record.key.name.trim_end_matches('.'), target, port);
            rows += 1;
        }
    }
    if rows == 0 {
        println!("    (no SRV records)");
    }
    Ok(())
}
