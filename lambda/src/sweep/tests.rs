//! One sweep against the in-memory zone and ECS as a table.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use clap::Parser;
use ecssd_records::memory::MemoryZone;
use ecssd_records::{Record, RecordStore};

use crate::Config;
use crate::deadline::Deadline;
use crate::fixtures::{TASK_IDS, TableFleet, task, task_arn as arn, web_task_records};
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
    let facts = Ec2Facts { state: "running".into(), private_ip: Some(Ipv4Addr::new(10, 0, 0, 1)) };
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
