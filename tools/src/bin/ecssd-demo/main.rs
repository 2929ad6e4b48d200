//! `ecssd-demo`: ecssd on this machine with nothing but Docker. moto plays AWS (a private hosted zone
//! and ECS), the local Docker engine plays the ECS host (with task metadata and IMDS stand-ins),
//! dnsmasq answers for the zone as the Route53 Resolver would, and real sidecar processes register the
//! example services: time ×2, calc ×2, an IPv6-only calc (`calc-v6`, its address `::1`, an AAAA
//! record and no A record) and the portal, which it shows reaching calc-v6. It then stops a calc task
//! the way ECS does, sweeps after a task that was SIGKILLed, and leaves the portal running until it is
//! stopped.
//!
//! However it is stopped (Ctrl-C, also through a pipe such as `| tee demo.log`; SIGTERM; its terminal
//! closed, SIGHUP), it removes every container and process it started before it exits.
//! `ecssd-demo --cleanup` removes what a demo killed outright (SIGKILL) left behind ([`leftovers`]).

mod leftovers;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ecssd_records::RecordType;
use ecssd_tests::dns::{Dns, Rdata};
use ecssd_tests::examples::{
    ExampleCluster, ExampleTask, free_ipv6_port, free_port, ipv6_service_task, portal_task, service_task,
    start_dns, sync_dns,
};
use ecssd_tests::http::request_with_headers;
use ecssd_tests::sweeper::{base_env, sweep_once};
use ecssd_tests::world::{DOMAIN, World};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::leftovers::Record;

const USAGE: &str = "usage: ecssd-demo [--cleanup]
  (no argument)  run the demo until Ctrl-C, SIGTERM or SIGHUP, then remove everything it started
  --cleanup      remove the containers and processes of a demo that was killed (SIGKILL) before it could";

/// How long the sidecars get to withdraw their tasks at the end; moto may be gone already (Ctrl-C
/// in a terminal reaches every process of the demo), and then they cannot.
const SIDECARS_STOP: Duration = Duration::from_secs(10);

/// How long the processes the demo kills at the end may take to be gone.
const PROCESSES_END: Duration = Duration::from_secs(10);

/// Writes a line to standard output, never failing: once a pipe's reader is gone (`| tee` stopped by
/// the same Ctrl-C), the demo must still clean up.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

fn step(text: &str) {
    say!("\n\x1b[1m==> {text}\x1b[0m");
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => run().await,
        ["--cleanup"] => cleanup().await.map(|()| ExitCode::SUCCESS),
        ["--help" | "-h"] => {
            say!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => {
            let _ = writeln!(
                std::io::stderr(),
                "ecssd-demo: unknown argument {:?}: expected none or --cleanup\n{USAGE}",
                other.join(" ")
            );
            return ExitCode::from(2);
        }
    };
    result.unwrap_or_else(|e| {
        let _ = writeln!(std::io::stderr(), "ecssd-demo: {e:#}");
        ExitCode::FAILURE
    })
}

/// The signals that stop the demo: Ctrl-C, `kill`, the terminal closing.
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl StopSignals {
    /// From now on these signals are the demo's to handle: none kills it before it has cleaned up.
    fn install() -> anyhow::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("handling SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("handling SIGTERM")?,
            hangup: signal(SignalKind::hangup()).context("handling SIGHUP")?,
        })
    }

    /// The next one: its name and the exit code it calls for (128 + its number).
    async fn next(&mut self) -> (&'static str, u8) {
        tokio::select! {
            _ = self.interrupt.recv() => ("SIGINT", 130),
            _ = self.terminate.recv() => ("SIGTERM", 143),
            _ = self.hangup.recv() => ("SIGHUP", 129),
        }
    }
}

async fn run() -> anyhow::Result<ExitCode> {
    let mut stops = StopSignals::install()?;
    let mut record = Record::start()?;
    let mut demo = Demo::default();
    let (exit, why) = tokio::select! {
        result = demo.run(&mut record) => match result {
            Ok(()) => (ExitCode::SUCCESS, "done".to_owned()),
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "ecssd-demo: {e:#}");
                (ExitCode::FAILURE, "the demo failed".to_owned())
            }
        },
        (name, code) = stops.next() => (ExitCode::from(code), name.to_owned()),
    };
    step(&format!(
        "stopping ({why}): each sidecar withdraws its task, then everything the demo started is removed"
    ));
    tokio::select! {
        () = demo.withdraw() => {}
        (name, _) = stops.next() => say!("    {name} again: removing everything without waiting"),
    }
    // Containers first (each task's are removed as it drops), then dnsmasq, then moto.
    drop(demo);
    leftovers::remove_own_containers().await?;
    record.finish(PROCESSES_END).await?;
    say!("    removed every container and process the demo started");
    Ok(exit)
}

/// Everything the demo has started, dropped in field order: each task (its containers removed, its
/// sidecar killed), then DNS (dnsmasq killed), then ECS's side, then moto (killed).
#[derive(Default)]
struct Demo {
    tasks: Vec<ExampleTask>,
    dns: Option<Dns>,
    cluster: Option<ExampleCluster>,
    world: Option<World>,
}

impl Demo {
    /// The demo's steps, then following the zone until stopped. Whatever it has started is in `self`
    /// and in `record` as soon as it runs.
    async fn run(&mut self, record: &mut Record) -> anyhow::Result<()> {
        step("starting moto (AWS: Route53 private zone servicediscovery.internal, ECS, EC2)");
        let world =
            World::new().await.context("starting moto and connecting to Docker (run scripts/setup demo)");
        record.update()?;
        let world = self.world.insert(world?);
        let cluster = self.cluster.insert(ExampleCluster::new(world).await?);
        say!("    AWS endpoint: {}", world.moto.endpoint());
        let dns = start_dns(world).await;
        record.update()?;
        let dns = self.dns.insert(dns?);
        say!("    DNS for the zone (dnsmasq, caching): {}", dns.address());

        for (service, count) in [("time", 2), ("calc", 2)] {
            for n in 1..=count {
                let task = service_task(world, cluster, service, &format!("{service}-{n}")).await;
                record.update()?;
                let task = task?;
                say!("    task {service}-{n} ({}) started; its sidecar registers it", task.placed.id());
                self.tasks.push(task);
            }
        }
        let v6_port = free_ipv6_port()?;
        let task = ipv6_service_task(world, cluster, "calc", "calc-v6", v6_port).await;
        record.update()?;
        let task = task?;
        let v6_target = format!("{}.{DOMAIN}", task.placed.id());
        say!(
            "    task calc-v6 ({}) started: IPv6 only (awsvpc, its address ::1), listening on [::1]:{v6_port}",
            task.placed.id()
        );
        self.tasks.push(task);
        world.wait_for_targets("_time._tcp", 2, Duration::from_secs(60)).await?;
        world.wait_for_targets("_calc._tcp", 3, Duration::from_secs(60)).await?;
        sync_dns(world, dns).await?;
        let port = free_port()?;
        step("starting the portal, which finds time and calc by DNS SRV lookups");
        let portal = portal_task(world, cluster, dns, port).await;
        record.update()?;
        self.tasks.push(portal?);
        world.wait_for_targets("_portal._tcp", 1, Duration::from_secs(60)).await?;
        step("the zone now holds");
        print_zone(world).await?;
        show_ipv6_instance(dns, port, &v6_target).await?;

        let calc = self.tasks.remove(3);
        step(&format!("stopping {} the way ECS does: SIGTERM to its sidecar", calc.instance));
        let ExampleTask { placed, running, mut sidecar, .. } = calc;
        sidecar.sigterm()?;
        let status = sidecar.wait(Duration::from_secs(30)).await?;
        say!("    its sidecar withdrew the task's records, drained, and exited ({status})");
        cluster.fleet.stop_task(&placed).await?;
        drop(running);
        sync_dns(world, dns).await?;
        print_zone(world).await?;

        let time = self.tasks.remove(1);
        step(&format!(
            "{} crashes: SIGKILL to its sidecar and its containers, no chance to deregister",
            time.instance
        ));
        let ExampleTask { placed, running, sidecar, .. } = time;
        sidecar.sigkill().await?;
        drop(running);
        cluster.fleet.stop_task(&placed).await?;
        say!("    ECS reports the task STOPPED; its records are still in the zone:");
        print_zone(world).await?;
        step("one sweep (the Lambda's binary, run once from the shell)");
        let sweep = sweep_once(&base_env(&world.moto), &[]).await?;
        anyhow::ensure!(sweep.success, "the sweep failed: {}", sweep.stderr);
        say!(
            "    stale tasks: {}, records deleted: {}, API calls: {}",
            sweep.report["stale_tasks"],
            sweep.report["stale_records_deleted"],
            sweep.report["api_calls"]
        );
        sync_dns(world, dns).await?;
        print_zone(world).await?;

        step(&format!("the portal: http://127.0.0.1:{port}/  (Ctrl-C stops everything and cleans up)"));
        // DNS follows the zone as the Route53 Resolver does.
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        loop {
            interval.tick().await;
            if sync_dns(world, dns).await? {
                say!("    the zone changed:");
                print_zone(world).await?;
            }
        }
    }

    /// Lets each sidecar withdraw its task's records, as ECS stops a task, within [`SIDECARS_STOP`].
    async fn withdraw(&mut self) {
        for task in &self.tasks {
            let _ = task.sidecar.sigterm();
        }
        let waits = async {
            for task in &mut self.tasks {
                let _ = task.sidecar.wait(SIDECARS_STOP).await;
            }
        };
        let _ = tokio::time::timeout(SIDECARS_STOP, waits).await;
    }
}

/// `--cleanup`: kills what killed demos left running and removes their containers.
async fn cleanup() -> anyhow::Result<()> {
    let mut killed = Vec::new();
    for leftover in leftovers::records()? {
        if leftover.demo.is_alive() {
            say!("a demo is still running (pid {}): stop it with Ctrl-C; left alone", leftover.demo.pid);
            continue;
        }
        killed.extend(leftover.remove().await?);
    }
    let docker = ecssd_tests::docker::connect().await?;
    let containers = ecssd_tests::docker::remove_leftovers(&docker).await?;
    killed.sort();
    let processes = if killed.is_empty() { String::new() } else { format!(" ({})", killed.join(", ")) };
    say!(
        "removed {containers} containers and {} processes{processes} left by demos (or test runs) that did not finish",
        killed.len()
    );
    Ok(())
}

/// What the resolver answers for calc-v6's target (AAAA `::1`, no A record), and the portal
/// answering from calc-v6: it tries the calc instances in random order, so within a few requests.
async fn show_ipv6_instance(dns: &Dns, portal_port: u16, target: &str) -> anyhow::Result<()> {
    step("the portal reaches calc-v6, the IPv6-only task, through its AAAA record");
    for record_type in [RecordType::Aaaa, RecordType::A] {
        let answer = dns.query(target, record_type).await?;
        let addresses: Vec<String> = answer
            .records
            .iter()
            .filter_map(|data| match data {
                Rdata::A(ip) => Some(ip.to_string()),
                Rdata::Aaaa(ip) => Some(ip.to_string()),
                _ => None,
            })
            .collect();
        let said = if addresses.is_empty() { "(none)".to_owned() } else { addresses.join(", ") };
        say!("    dnsmasq: {target} {} {said}", record_type.as_str());
    }
    let url = format!("http://127.0.0.1:{portal_port}/api/calc/6*7");
    let answer =
        ecssd_tests::wait_for("the portal to answer from calc-v6", Duration::from_secs(30), || async {
            let (_, body) = request_with_headers("GET", &url, &[], None).await?;
            let answer: serde_json::Value = serde_json::from_slice(&body)?;
            Ok((answer["instanceid"] == "calc-v6").then_some(answer))
        })
        .await?;
    say!(
        "    GET /calc/6*7 on the portal: {} from {} at {} (its SRV target {})",
        answer["value"].as_f64().map_or("?".to_owned(), |value| value.to_string()),
        answer["instanceid"].as_str().unwrap_or("?"),
        answer["answered_by"].as_str().unwrap_or("?"),
        answer["target"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// Prints the zone's SRV targets as a table: service, target, port, task, and the task's addresses
/// (its A and AAAA records).
async fn print_zone(world: &World) -> anyhow::Result<()> {
    let records = world.records().await?;
    let mut addresses: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for record in records.iter().filter(|r| matches!(r.key.record_type, RecordType::A | RecordType::Aaaa)) {
        let values = addresses.entry(record.key.name.trim_end_matches('.')).or_default();
        values.extend(record.values().iter().map(String::as_str));
    }
    say!("    {:<40} {:<66} {:>6}  {:<36}  address", "service", "target", "port", "task");
    let mut rows = 0;
    for record in records.iter().filter(|r| r.key.record_type == RecordType::Srv) {
        for value in record.values() {
            let fields: Vec<&str> = value.split(' ').collect();
            let (port, target) = (fields.get(2).unwrap_or(&"?"), fields.get(3).unwrap_or(&"?"));
            let task = target.trim_end_matches('.').strip_suffix(&format!(".{DOMAIN}")).unwrap_or(target);
            let address = addresses
                .get(target.trim_end_matches('.'))
                .map_or("?".to_owned(), |values| values.join(", "));
            say!(
                "    {:<40} {:<66} {:>6}  {task:<36}  {address}",
                record.key.name.trim_end_matches('.'),
                target,
                port
            );
            rows += 1;
        }
    }
    if rows == 0 {
        say!("    (no SRV records)");
    }
    Ok(())
}
