//! One sweep against the in-memory zone and ECS as a table.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use ecssd_records::memory::MemoryZone;
use ecssd_records::{Record, RecordSet, RecordStore, TaskAddresses};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Config;
use crate::deadline::Deadline;
use crate::fixtures::{
    IPV4, IPV6, TASK_IDS, TableFleet, awsvpc_task, task, task_arn as arn, web_task_records,
    web_task_records_at,
};
use crate::fleet::{Ec2Facts, InstanceAnswer, TaskAnswer};
use crate::sweep::sweep;

fn records_of(id: &str) -> Vec<Record> {
    web_task_records("default", id).into_iter().collect()
}

fn config() -> Config {
    Config::try_parse_from(["bootstrap", "--domain", "sd.internal"]).unwrap()
}

fn minute() -> Deadline {
    Deadline::after(Duration::from_secs(60))
}

/// A container instance `ci` on a running EC2 instance at the fixtures' address, agent `connected`.
fn host(fleet: &mut TableFleet, connected: bool) {
    let answer = InstanceAnswer::Found { ec2_instance_id: Some("i-1".into()), agent_connected: connected };
    fleet.instances.insert("ci".into(), answer);
    let facts =
        Ec2Facts { state: "running".into(), private_ip: Some(Ipv4Addr::new(10, 0, 0, 1)), ipv6: None };
    fleet.ec2.insert("i-1".into(), facts);
}

#[tokio::test]
async fn a_sidecar_deregistering_during_the_sweep_does_not_fail_it() {
    let (t1, t2) = (TASK_IDS[0], TASK_IDS[1]);
    let zone = MemoryZone::new([records_of(t1), records_of(t2)].concat());
    let fleet = TableFleet {
        tasks: BTreeMap::from([(arn(t1), task("STOPPED", None)), (arn(t2), task("STOPPED", None))]),
        ..TableFleet::default()
    };
    // t1's sidecar withdraws its records between the sweep's listing and its batch.
    let first = records_of(t1);
    zone.before_next_apply(move |records| {
        *records = records.iter().filter(|r| !first.contains(r)).cloned().collect();
    });
    let report = sweep(&zone, &fleet, &config(), minute()).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(zone.records().is_empty(), "{:?}", zone.records());
    assert_eq!(report.stale_records_deleted, 6);
    // The rejected batch, then each record alone against a fresh read.
    assert_eq!(zone.calls().iter().filter(|c| **c == "change").count(), 1 + 3);
}

#[tokio::test]
async fn when_ecs_cannot_be_asked_nothing_is_deleted() {
    let zone = MemoryZone::new(records_of(TASK_IDS[0]));
    let fleet = TableFleet { ecs_down: true, ..TableFleet::default() };
    let report = sweep(&zone, &fleet, &config(), minute()).await;
    assert_eq!(zone.records().len(), 3);
    assert!(report.stale_tasks.is_empty());
    assert_eq!(report.tasks_checked, 0);
    assert!(report.errors[0].contains("HTTP 503"), "{:?}", report.errors);
    assert!(report.unknown[0].reason.contains("ECS gave no answer"), "{:?}", report.unknown);
}

#[tokio::test]
async fn a_hanging_ecs_ends_at_the_deadline_with_a_report() {
    let zone = MemoryZone::new(records_of(TASK_IDS[0]));
    let fleet = TableFleet { ecs_hangs: true, ..TableFleet::default() };
    let started = std::time::Instant::now();
    let report = sweep(&zone, &fleet, &config(), Deadline::after(Duration::from_millis(300))).await;
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(report.out_of_time);
    assert!(report.errors.iter().any(|e| e.contains("out of time")), "{:?}", report.errors);
    assert_eq!(zone.records().len(), 3, "nothing deleted");
}

#[tokio::test]
async fn a_dry_run_reports_and_changes_nothing() {
    let zone = MemoryZone::new(records_of(TASK_IDS[0]));
    let fleet = TableFleet {
        tasks: BTreeMap::from([(arn(TASK_IDS[0]), task("STOPPED", None))]),
        ..TableFleet::default()
    };
    let config = Config { dry_run: true, ..config() };
    let report = sweep(&zone, &fleet, &config, minute()).await;
    assert_eq!(report.stale_tasks.len(), 1);
    assert_eq!(zone.records().len(), 3);
    assert_eq!(zone.calls(), ["list"]);
}

#[tokio::test]
async fn a_container_instance_ecs_does_not_describe_is_unknown_not_gone() {
    let zone = MemoryZone::new(records_of(TASK_IDS[0]));
    let fleet = TableFleet {
        tasks: BTreeMap::from([(arn(TASK_IDS[0]), task("RUNNING", Some("ci")))]),
        ..TableFleet::default()
    };
    let report = sweep(&zone, &fleet, &config(), minute()).await;
    assert!(report.stale_tasks.is_empty(), "{:?}", report.stale_tasks);
    assert!(
        report.unknown[0].reason.contains("did not describe its container instance"),
        "{:?}",
        report.unknown
    );
    assert_eq!(zone.records().len(), 3);
}

#[tokio::test]
async fn an_answer_about_another_cluster_does_not_count() {
    let zone = MemoryZone::new(records_of(TASK_IDS[0]));
    let mut elsewhere = task("STOPPED", None);
    if let TaskAnswer::Found(facts) = &mut elsewhere {
        facts.cluster_arn = "arn:aws:ecs:us-east-1:1:cluster/other".into();
    }
    let fleet =
        TableFleet { tasks: BTreeMap::from([(arn(TASK_IDS[0]), elsewhere)]), ..TableFleet::default() };
    let report = sweep(&zone, &fleet, &config(), minute()).await;
    assert!(report.stale_tasks.is_empty());
    assert_eq!(zone.records().len(), 3);
}

#[tokio::test]
async fn healthy_records_that_match_ecs_raise_nothing() {
    let zone = MemoryZone::new(records_of(TASK_IDS[0]));
    let mut fleet = TableFleet {
        tasks: BTreeMap::from([(arn(TASK_IDS[0]), task("RUNNING", Some("ci")))]),
        ..TableFleet::default()
    };
    host(&mut fleet, true);
    let report = sweep(&zone, &fleet, &config(), minute()).await;
    assert!(report.disagreements.is_empty() && report.unknown.is_empty(), "{report:?}");
    assert_eq!(zone.list_all().await.unwrap().len(), 3);
}

/// Issue 30: dual-stack and IPv6-only tasks lose every record (AAAA included) once ECS says they
/// stopped, and keep them, agreeing with ECS, while it says they run.
#[tokio::test]
async fn dual_stack_and_ipv6_only_tasks_go_when_stopped_and_agree_with_ecs_while_running() {
    let dual = TaskAddresses::Dual(IPV4, IPV6);
    let [stopped_dual, stopped_v6, running_dual, running_v6] = TASK_IDS;
    let at = |id, addresses| web_task_records_at("default", id, addresses, 80);
    let running: RecordSet = at(running_dual, dual).into_iter().chain(at(running_v6, IPV6.into())).collect();
    let zone = MemoryZone::new(
        [at(stopped_dual, dual), at(stopped_v6, IPV6.into()), running.clone()].into_iter().flatten(),
    );
    let fleet = TableFleet {
        tasks: BTreeMap::from([
            (arn(stopped_dual), awsvpc_task("STOPPED", dual)),
            (arn(stopped_v6), awsvpc_task("STOPPED", IPV6.into())),
            (arn(running_dual), awsvpc_task("RUNNING", dual)),
            (arn(running_v6), awsvpc_task("RUNNING", IPV6.into())),
        ]),
        ..TableFleet::default()
    };
    let report = sweep(&zone, &fleet, &config(), minute()).await;
    assert!(report.disagreements.is_empty() && report.unknown.is_empty(), "{report:?}");
    assert_eq!(report.stale_tasks.len(), 2, "{report:?}");
    assert_eq!(report.stale_records_deleted, 4 + 3);
    assert_eq!(zone.records(), running);
}

/// A one-route HTTP server on `[::1]` answering 200, and the `Host` headers it was sent.
async fn ipv6_loopback_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hosts = Arc::new(Mutex::new(Vec::new()));
    let seen = hosts.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = vec![0; 4096];
            let read = stream.read(&mut request).await.unwrap_or(0);
            let text = String::from_utf8_lossy(&request[..read]).to_ascii_lowercase();
            let host = text.lines().find_map(|l| l.strip_prefix("host: ")).unwrap_or_default();
            seen.lock().unwrap().push(host.trim().to_owned());
            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
            let _ = stream.write_all(answer).await;
        }
    });
    (port, hosts)
}

/// Issue 30: an IPv6-only task is health-checked at its IPv6 address, bracketed in the URL: here a
/// bridge task on an IPv6-only host (EC2 gives it no private IPv4 address), served on `[::1]`.
#[tokio::test]
async fn an_ipv6_only_task_is_health_checked_at_its_ipv6_address() {
    let (port, hosts_asked) = ipv6_loopback_server().await;
    let id = TASK_IDS[0];
    let records = web_task_records_at("default", id, Ipv6Addr::LOCALHOST.into(), port);
    let zone = MemoryZone::new(records.clone());
    let mut answer = task("RUNNING", Some("ci"));
    if let TaskAnswer::Found(facts) = &mut answer {
        facts.containers[0].bindings[0].host_port = port;
    }
    let mut fleet = TableFleet { tasks: BTreeMap::from([(arn(id), answer)]), ..TableFleet::default() };
    let instance = InstanceAnswer::Found { ec2_instance_id: Some("i-1".into()), agent_connected: true };
    fleet.instances.insert("ci".into(), instance);
    let ipv6_only = Ec2Facts { state: "running".into(), private_ip: None, ipv6: Some(Ipv6Addr::LOCALHOST) };
    fleet.ec2.insert("i-1".into(), ipv6_only);
    let config = Config { health_check: true, ..config() };
    let report = sweep(&zone, &fleet, &config, minute()).await;
    assert!(report.disagreements.is_empty() && report.unhealthy.is_empty(), "{report:?}");
    assert_eq!(report.endpoints_checked, 1, "{report:?}");
    assert_eq!(*hosts_asked.lock().unwrap(), [format!("[::1]:{port}")]);
    assert_eq!(zone.records(), records);
}
