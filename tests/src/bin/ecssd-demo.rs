//! `ecssd-demo`: ecssd on this machine with nothing but Docker. moto plays AWS (a private hosted
//! zone), the local Docker engine plays the ECS host (with task metadata and IMDS stand-ins), and real
//! sidecar processes register real containers. Ctrl-C cleans everything up.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use anyhow::Context;
use ecssd_records::RecordType;
use ecssd_tests::docker::ContainerSpec;
use ecssd_tests::sidecar::{Sidecar, SidecarOptions};
use ecssd_tests::world::{DOMAIN, RunningTask, World};

/// The demo's tasks: (service name, how many tasks).
const SERVICES: &[(&str, usize)] = &[("web", 2), ("api", 2)];

fn step(text: &str) {
    println!("\n\x1b[1m==> {text}\x1b[0m");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    step("starting moto (AWS) with the private hosted zone servicediscovery.internal");
    let world = World::new().await.context("starting moto and connecting to Docker (run scripts/setup)")?;
    println!("    AWS endpoint: {}", world.moto.endpoint());

    let mut tasks: Vec<(RunningTask, Sidecar)> = Vec::new();
    for (service, count) in SERVICES {
        for n in 1..=*count {
            let variable = format!("SERVICE_80_NAME=_{service}._tcp");
            let specs = [
                ContainerSpec::httpd(service, &[variable.as_str()]),
                ContainerSpec {
                    name: "ecssd".into(),
                    cmd: Some(vec!["sleep".into(), "86400".into()]),
                    ..Default::default()
                },
            ];
            let running = world.task("demo", &specs).await?;
            step(&format!(
                "task {service} #{n} ({}) started; its sidecar registers it",
                running.task.task_id()
            ));
            let options = SidecarOptions {
                args: vec!["--drain-seconds=1".into(), "--log-format=text".into()],
                env: vec![],
            };
            let sidecar = Sidecar::spawn(&world.moto, &running.metadata, options).await?;
            tasks.push((running, sidecar));
        }
    }
    for (service, count) in SERVICES {
        world.wait_for_targets(&format!("_{service}._tcp"), *count, Duration::from_secs(60)).await?;
    }
    step("the zone now holds");
    print_zone(&world).await?;

    let (stopping, mut sidecar) = tasks.remove(0);
    step(&format!("stopping task {} the way ECS does: SIGTERM to its sidecar", stopping.task.task_id()));
    sidecar.sigterm()?;
    let status = sidecar.wait(Duration::from_secs(30)).await?;
    println!("    sidecar withdrew the task's records, drained, and exited ({status})");
    drop(stopping);
    print_zone(&world).await?;

    step("running; try: curl http://127.0.0.1:<port>/ for any port above. Ctrl-C stops and cleans up");
    tokio::signal::ctrl_c().await?;
    step("cleaning up");
    // Ctrl-C in a terminal already reached the sidecars (same process group); this covers a SIGINT
    // sent to the demo alone.
    for (_, sidecar) in &tasks {
        let _ = sidecar.sigterm();
    }
    for (_, sidecar) in &mut tasks {
        sidecar.wait(Duration::from_secs(30)).await?;
    }
    print_zone(&world).await?;
    Ok(())
}

/// Prints the zone's SRV targets as a table: service, target, port, task.
async fn print_zone(world: &World) -> anyhow::Result<()> {
    let records = world.records().await?;
    println!("    {:<36} {:<56} {:>6}  task", "service", "target", "port");
    let mut rows = 0;
    for record in records.iter().filter(|r| r.key.record_type == RecordType::Srv) {
        for value in record.values() {
            let fields: Vec<&str> = value.split(' ').collect();
            let (port, target) = (fields.get(2).unwrap_or(&"?"), fields.get(3).unwrap_or(&"?"));
            let task = target.strip_suffix(&format!(".{DOMAIN}")).unwrap_or(target);
            println!("    {:<36} {:<56} {:>6}  {task}", record.key.name.trim_end_matches('.'), target, port);
            rows += 1;
        }
    }
    if rows == 0 {
        println!("    (no SRV records)");
    }
    Ok(())
}
