#![allow(clippy::unwrap_used)]
//! Issue 11's attacks on the sweeper, end to end: the real `bootstrap` binary against moto, with the
//! zone written the way an attacker holding only the sidecar's Route53 permissions could (any SRV, A
//! or TXT record), next to honest tasks whose records agree with what ECS and EC2 say about them.
//!
//! Each test reproduces one finding of the issue and asserts the sweeper's contract: ECS is the source
//! of truth for every destructive act (a claim that disagrees with ECS is reported under
//! `disagreements`, never checked, stopped or counted healthy); only ECS's explicit answers delete;
//! the agent-disconnected rule needs failing ECS-verified endpoints and is braked; orphans are deleted
//! only when provably this owner's; a sweep's reads and time are bounded.
//!
//! Endpoints and hosts live on loopback only: hosts are [`Fleet::loopback_host`]s (EC2 private IP
//! 127.0.0.x) and every address a record names is a loopback address.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ecssd_records::{Endpoint, Record, RecordKey, RecordSet, RecordType};
use ecssd_tests::ecs::{
    PlacedTask, WEB_SERVICE, WebPort, registration_records, seed, task_records, task_records_of,
};
use ecssd_tests::endpoints::{Behaviour, TestEndpoint};
use ecssd_tests::moto::Moto;
use ecssd_tests::sweeper::{ShellSweep, SweepBed, key, sweep_once};
use ecssd_tests::world::DOMAIN;

/// A loopback address no host of the bed has (hosts get 127.0.0.10 and up): where forged records point.
const FORGED_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 9, 9);
const ACCOUNT: &str = "123456789012";
/// The prefix every disagreement's reason starts with.
const DISAGREE: &str = "records disagree with ECS: ";

/// Health checks on, no grace period, quick timeouts.
const HEALTH: [(&str, &str); 4] = [
    ("ECSSD_HEALTH_CHECK", "true"),
    ("ECSSD_HEALTH_GRACE_SECONDS", "0"),
    ("ECSSD_HEALTH_TIMEOUT_MS", "500"),
    ("ECSSD_HEALTH_ATTEMPTS", "2"),
];

type Setup = SweepBed;

/// One shell sweep on the bed with `extra` settings; it must succeed.
async fn sweep(setup: &Setup, extra: &[(&str, &str)]) -> ShellSweep {
    let run = sweep_once(&setup.env(extra), &[]).await.unwrap();
    assert!(run.success, "sweep failed: {}", run.stderr);
    run
}

async fn status(setup: &Setup, task: &PlacedTask) -> String {
    setup.fleet.status(task).await.unwrap().0
}

/// A task ARN of `cluster` (a name) with task id `id`, in the new ARN format.
fn task_arn(cluster: &str, id: &str) -> String {
    format!("arn:aws:ecs:us-east-1:{ACCOUNT}:task/{cluster}/{id}")
}

fn cluster_arn(cluster: &str) -> String {
    format!("arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/{cluster}")
}

/// A valid ECS task id (32 lowercase hex digits) no task has.
fn random_task_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

/// The record of `record_type` in a set (a task's records have one A and one TXT).
fn one_of(set: &RecordSet, record_type: RecordType) -> Record {
    set.iter().find(|r| r.key.record_type == record_type).cloned().unwrap()
}

/// `record` under another name (same type, values and TTL).
fn renamed(record: &Record, name: &str) -> Record {
    let key = RecordKey { name: name.to_owned(), ..record.key.clone() };
    Record::new(key, record.ttl, record.values().to_vec())
}

/// An endpoint of container `container`:`container_port` serving `service` at `port`: a forged SRV
/// target that looks exactly like a sidecar's (set identifier, value and ownership entry from the
/// record model).
fn endpoint(container: &str, container_port: u16, service: &str, port: u16) -> Endpoint {
    Endpoint {
        container: container.into(),
        container_port,
        service: service.parse().unwrap(),
        reachable_port: port,
    }
}

/// The (task, reason) findings of a report's array `field`; none when the report has no such field.
fn findings(report: &serde_json::Value, field: &str) -> Vec<(String, String)> {
    report[field]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|f| {
                    (
                        f["task"].as_str().unwrap_or_default().to_owned(),
                        f["reason"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a finding of `field` names `task` (by ARN or id).
fn names_task(report: &serde_json::Value, field: &str, task: &PlacedTask) -> bool {
    findings(report, field)
        .iter()
        .any(|(t, _)| t == &task.task_arn || t.rsplit('/').next() == Some(task.id()))
}

fn disagreement_about(report: &serde_json::Value, task: &PlacedTask) -> Option<String> {
    findings(report, "disagreements")
        .into_iter()
        .find(|(t, reason)| {
            (t == &task.task_arn || t.rsplit('/').next() == Some(task.id())) && reason.starts_with(DISAGREE)
        })
        .map(|(_, reason)| reason)
}

/// Issue 11, first finding, the forged record at the task's own name: an ownership record naming a
/// RUNNING task's ARN at `_ecssd.<task-id>`, with its A record and SRV at a refusing loopback address
/// and port ECS does not report for the task. The sweeper used to health-check the forged address and
/// StopTask the task; it must not stop it, and must report the disagreement.
#[tokio::test]
async fn a_forged_claim_at_a_tasks_own_name_does_not_get_it_stopped() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let host = setup.fleet.loopback_host("c").await.unwrap();
    // _web._tcp has healthy instances, so stopping one more would be within every limit.
    let honest = setup.serving(&host, "_web._tcp", Behaviour::Status(200), 3).await.unwrap();
    // The victim runs (ECS: web:80 on a dynamic host port of 127.0.0.10); its sidecar wrote nothing yet.
    let victim = setup.fleet.start_tasks(&host, 1).await.unwrap().remove(0);
    let refusing = TestEndpoint::start_on(FORGED_ADDRESS, Behaviour::Refuse).await.unwrap();
    let forged = task_records(&victim, FORGED_ADDRESS, &[("_web._tcp", refusing.port)]).unwrap();
    seed(&setup.zone, vec![forged]).await.unwrap();

    let run = sweep(&setup, &HEALTH).await;
    let report = &run.report;
    assert_eq!(status(&setup, &victim).await, "RUNNING", "the victim was stopped: {report:#}");
    assert!(!names_task(report, "stopped", &victim), "{report:#}");
    assert!(disagreement_about(report, &victim).is_some(), "no disagreement about the victim: {report:#}");
    for served in &honest {
        assert_eq!(status(&setup, &served.task).await, "RUNNING");
        assert!(served.endpoint.hits() > 0, "honest endpoint {} never checked", served.endpoint.addr());
    }
}

/// Issue 27, first finding: a task's own ownership record rewritten to list one more SRV of its own
/// `web` container, at a container port ECS maps (81, bound to a host port where a failing endpoint
/// listens) that the task definition does not publish. ECS's `networkBindings` confirm the port; only
/// the task definition says it is not `_web._tcp`. The sweeper used to check the forged target and stop
/// the task, healthy on its real port; it must not stop it, and must report the disagreement.
#[tokio::test]
async fn a_forged_target_at_a_port_the_task_definition_does_not_publish_does_not_get_it_stopped() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let host = setup.fleet.loopback_host("c").await.unwrap();
    let honest = setup.serving(&host, WEB_SERVICE, Behaviour::Status(200), 3).await.unwrap();
    let ip = host.private_ip.unwrap();
    let healthy = TestEndpoint::start_on(ip, Behaviour::Status(200)).await.unwrap();
    let failing = TestEndpoint::start_on(ip, Behaviour::Status(500)).await.unwrap();
    let ports = [
        WebPort { container_port: 80, host_port: healthy.port, service: Some(WEB_SERVICE) },
        WebPort { container_port: 81, host_port: failing.port, service: None },
    ];
    let victim = setup.fleet.start_task_mapping(&host, &ports).await.unwrap();
    let rewritten = registration_records(
        "default",
        &victim,
        ip,
        vec![endpoint("web", 80, WEB_SERVICE, healthy.port), endpoint("web", 81, WEB_SERVICE, failing.port)],
    )
    .unwrap();
    seed(&setup.zone, vec![rewritten]).await.unwrap();

    let run = sweep(&setup, &HEALTH).await;
    let report = &run.report;
    assert_eq!(status(&setup, &victim).await, "RUNNING", "the victim was stopped: {report:#}");
    assert_eq!(failing.hits(), 0, "the forged target was checked: {report:#}");
    let why = disagreement_about(report, &victim).unwrap_or_else(|| panic!("no disagreement: {report:#}"));
    assert!(why.contains("no SERVICE_81_NAME=_web._tcp"), "{why}");
    for served in &honest {
        assert_eq!(status(&setup, &served.task).await, "RUNNING");
        assert!(served.endpoint.hits() > 0, "honest endpoint {} never checked", served.endpoint.addr());
    }
}

/// Issue 11, first finding, the forged record under another name: the task's genuine records exist at
/// `_ecssd.<task-id>`, and a second ownership record at another name claims the same task, listing a
/// forged SRV (container `admin`, which ECS does not know) at a refusing port of the task's own host.
/// The sweeper used to pair the claim with the task's genuine A record, check the refusing port and
/// stop the task; it must not stop it, and must report the disagreement.
#[tokio::test]
async fn a_forged_claim_under_another_name_does_not_get_a_task_stopped() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let host = setup.fleet.loopback_host("c").await.unwrap();
    let mut honest = setup.serving(&host, "_web._tcp", Behaviour::Status(200), 4).await.unwrap();
    let victim = honest.pop().unwrap();
    let ip = host.private_ip.unwrap();
    let refusing = TestEndpoint::start_on(ip, Behaviour::Refuse).await.unwrap();
    let forged = registration_records(
        "default",
        &victim.task,
        ip,
        vec![endpoint("admin", 81, "_web._tcp", refusing.port)],
    )
    .unwrap();
    let claim = renamed(&one_of(&forged, RecordType::Txt), &format!("_ecssd.{}.{DOMAIN}.", random_task_id()));
    seed(&setup.zone, vec![[claim, one_of(&forged, RecordType::Srv)].into_iter().collect()]).await.unwrap();

    let run = sweep(&setup, &HEALTH).await;
    let report = &run.report;
    assert_eq!(status(&setup, &victim.task).await, "RUNNING", "the victim was stopped: {report:#}");
    assert!(
        setup.holds(&victim.records).await.unwrap(),
        "the victim's genuine records were touched: {report:#}"
    );
    assert!(
        disagreement_about(report, &victim.task).is_some(),
        "no disagreement about the victim: {report:#}"
    );
    for served in &honest {
        assert_eq!(status(&setup, &served.task).await, "RUNNING");
        assert!(served.endpoint.hits() > 0, "honest endpoint {} never checked", served.endpoint.addr());
    }
}

/// Issue 11, second finding: a second ownership record under an unrelated name claims a genuine,
/// healthy task that is the only instance of its service, listing a forged SRV of that service at a
/// failing endpoint. The sweeper used to count the task twice, take its genuine entry for "another
/// healthy instance" and stop the service's only task. The task must be counted once: the forged
/// target is never checked, and the task is never stopped.
#[tokio::test]
async fn a_second_claim_on_the_only_instance_of_a_service_does_not_get_it_stopped() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let host = setup.fleet.loopback_host("c").await.unwrap();
    let solo = setup.serving(&host, "_solo._tcp", Behaviour::Status(200), 1).await.unwrap().remove(0);
    let ip = host.private_ip.unwrap();
    let failing = TestEndpoint::start_on(ip, Behaviour::Status(500)).await.unwrap();
    let forged = registration_records(
        "default",
        &solo.task,
        ip,
        vec![endpoint("admin", 81, "_solo._tcp", failing.port)],
    )
    .unwrap();
    let claim = renamed(&one_of(&forged, RecordType::Txt), &format!("_ecssd.{}.{DOMAIN}.", random_task_id()));
    seed(&setup.zone, vec![[claim, one_of(&forged, RecordType::Srv)].into_iter().collect()]).await.unwrap();

    let run = sweep(&setup, &HEALTH).await;
    let report = &run.report;
    assert_eq!(
        status(&setup, &solo.task).await,
        "RUNNING",
        "the service's only task was stopped: {report:#}"
    );
    assert!(setup.holds(&solo.records).await.unwrap(), "the task's genuine records were touched: {report:#}");
    assert_eq!(failing.hits(), 0, "the forged target was checked: {report:#}");
    let checked = report["endpoints_checked"].as_u64().unwrap();
    assert!(checked <= 1, "the task was counted {checked} times: {report:#}");
    assert!(disagreement_about(report, &solo.task).is_some(), "no disagreement about the task: {report:#}");
}

/// Issue 11, third finding, first part: an ownership record names a real RUNNING task with a cluster
/// that does not exist. ECS answers were keyed by task ARN alone, so the fake cluster's MISSING
/// overwrote RUNNING and the live task's records were deleted. They must stay, and the report must
/// say why the claim was not acted on (a disagreement, or an unknown).
#[tokio::test]
async fn a_claim_naming_a_nonexistent_cluster_deletes_nothing_of_the_live_task() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let host = setup.fleet.loopback_host("c").await.unwrap();
    let live = setup.registered(&host, 1).await.unwrap().remove(0);
    let genuine = setup.fleet.sidecar_records(&live, "_web._tcp").await.unwrap();
    // Sorts after the real cluster, so ECS's answer about it came last and won.
    let fake = PlacedTask { cluster_arn: cluster_arn("zz-no-such-cluster"), task_arn: live.task_arn.clone() };
    let forged = task_records(&fake, host.private_ip.unwrap(), &[("_web._tcp", 1)]).unwrap();
    let claim = renamed(&one_of(&forged, RecordType::Txt), &format!("_ecssd.{}.{DOMAIN}.", random_task_id()));
    seed(&setup.zone, vec![[claim].into_iter().collect()]).await.unwrap();

    let run = sweep(&setup, &[]).await;
    let report = &run.report;
    assert!(setup.holds(&genuine).await.unwrap(), "the live task's records were deleted: {report:#}");
    assert!(!names_task(report, "stale_tasks", &live), "{report:#}");
    assert_eq!(status(&setup, &live).await, "RUNNING");
    assert!(
        names_task(report, "disagreements", &live) || names_task(report, "unknown", &live),
        "the report does not say why the claim was left alone: {report:#}"
    );
}

/// Issue 11, third finding, second part: a forged ownership record claims task id `db`
/// (`_ecssd.db.<domain>`, task `arn:…:task/c/db`). ECS reports that task MISSING, and the sweeper
/// used to delete the "task's" A record: the foreign `db.<domain>`. It must never be deleted.
#[tokio::test]
async fn a_claim_on_task_id_db_never_deletes_the_foreign_db_record() {
    let setup = SweepBed::start().await.unwrap();
    let c = setup.fleet.cluster("c").await.unwrap();
    let db = Record::new(key("db", RecordType::A, None), 300, vec!["10.9.9.9".into()]);
    let fake = PlacedTask { cluster_arn: c, task_arn: task_arn("c", "db") };
    let forged = task_records(&fake, FORGED_ADDRESS, &[("_web._tcp", 1)]).unwrap();
    let claim = one_of(&forged, RecordType::Txt);
    assert_eq!(claim.key.name, format!("_ecssd.db.{DOMAIN}."));
    seed(&setup.zone, vec![[db.clone(), claim].into_iter().collect()]).await.unwrap();

    let run = sweep(&setup, &[]).await;
    assert!(setup.holds_record(&db).await.unwrap(), "the foreign A record db was deleted: {:#}", run.report);
}

/// Issue 11, third finding, third part: a lone SRV with set identifier `ecssd:www.prod:x:1` (target
/// `www.prod.<domain>`) made the orphan path delete the foreign A record `www.prod.<domain>`. It must
/// never be deleted; the SRV, not provably this owner's, is left alone too.
#[tokio::test]
async fn a_lone_srv_naming_www_prod_never_deletes_the_foreign_record() {
    let setup = SweepBed::start().await.unwrap();
    let www = Record::new(key("www.prod", RecordType::A, None), 300, vec!["10.9.9.8".into()]);
    let srv = Record::new(
        key("_web._tcp", RecordType::Srv, Some("ecssd:www.prod:x:1")),
        10,
        vec![format!("1 1 80 www.prod.{DOMAIN}")],
    );
    seed(&setup.zone, vec![[www.clone(), srv.clone()].into_iter().collect()]).await.unwrap();

    let run = sweep(&setup, &[]).await;
    let report = &run.report;
    assert!(setup.holds_record(&www).await.unwrap(), "the foreign A record www.prod was deleted: {report:#}");
    assert!(
        setup.holds_record(&srv).await.unwrap(),
        "an SRV not provably this owner's was deleted: {report:#}"
    );
    assert_eq!(report["orphans_deleted"], 0, "{report:#}");
}

/// ECSSD_MAX_CLUSTERS's default.
const MAX_CLUSTERS: usize = 25;

/// Issue 27, "claims drive unbounded ECS calls": with no clusters named (the default), forged claims
/// naming 40 clusters cost one DescribeTasks each per sweep. A sweep asks about at most
/// ECSSD_MAX_CLUSTERS clusters, those most tasks claim first (the real cluster, here), and reports the
/// rest.
#[tokio::test]
async fn claims_naming_many_clusters_cost_a_bounded_number_of_ecs_requests() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let host = setup.fleet.host("c").await.unwrap();
    let real = setup.registered(&host, 2).await.unwrap();
    let forged: Vec<RecordSet> = (0..40)
        .map(|n| {
            let name = format!("forged{n}");
            let fake =
                PlacedTask { cluster_arn: cluster_arn(&name), task_arn: task_arn(&name, &random_task_id()) };
            task_records(&fake, FORGED_ADDRESS, &[("_web._tcp", 1)]).unwrap()
        })
        .collect();
    seed(&setup.zone, forged).await.unwrap();
    let before = setup.moto.stats().await.unwrap();

    let run = sweep(&setup, &[]).await;
    let report = &run.report;
    let after = setup.moto.stats().await.unwrap();
    let describes = Moto::requests(&after, "ecs", Some("DescribeTasks"))
        - Moto::requests(&before, "ecs", Some("DescribeTasks"));
    assert!(describes <= MAX_CLUSTERS as u64, "{describes} DescribeTasks for one sweep: {report:#}");
    let not_asked = report["clusters_not_asked"].as_array().unwrap();
    assert_eq!(not_asked.len(), 41 - MAX_CLUSTERS, "{report:#}");
    assert!(not_asked.iter().all(|c| c.as_str().unwrap().contains(":cluster/forged")), "{report:#}");
    for task in &real {
        assert!(!names_task(report, "unknown", task), "the real cluster was not asked about: {report:#}");
        assert_eq!(setup.records_of(task).await.unwrap().len(), 3);
    }
}

/// Orphan reads per sweep (ECSSD_ORPHAN_READS_PER_SWEEP's default).
const ORPHAN_READS: u64 = 100;
/// Records in one ListResourceRecordSets page (Route53's maximum, what the adapter asks for).
const LIST_PAGE: usize = 300;

/// Issue 11, fourth finding, reads: orphan confirmation cost one read per listed entry without a
/// bound: 5 forged ownership records (owner `default`, valid task ids, canonical names) listing 200
/// SRV records each that do not exist made ~1,006 ListResourceRecordSets calls. A sweep reads at most
/// the listing's pages plus ECSSD_ORPHAN_READS_PER_SWEEP records by name, and counts the rest as
/// deferred.
#[tokio::test]
async fn orphan_confirmation_reads_are_bounded_per_sweep() {
    let setup = SweepBed::start().await.unwrap();
    let c = setup.fleet.cluster("c").await.unwrap();
    let services: Vec<(&str, u16)> = (0..200).map(|i| ("_web._tcp", 20_000 + i)).collect();
    let mut claims = Vec::new();
    for _ in 0..5 {
        let fake = PlacedTask { cluster_arn: c.clone(), task_arn: task_arn("c", &random_task_id()) };
        let forged = task_records(&fake, FORGED_ADDRESS, &services).unwrap();
        let claim = one_of(&forged, RecordType::Txt);
        assert_eq!(claim.values().len(), 201, "a header and 200 SRV entries");
        claims.push([claim].into_iter().collect());
    }
    seed(&setup.zone, claims).await.unwrap();
    let pages = setup.records().await.unwrap().len().div_ceil(LIST_PAGE) as u64;

    // The bed's Route53 has no rate limit; a faster pace than the default only shortens the test.
    let run = sweep(&setup, &[("ECSSD_ROUTE53_REQUESTS_PER_SECOND", "50")]).await;
    let report = &run.report;
    let lists = report["api_calls"]["route53"]["ListResourceRecordSets"].as_u64().unwrap_or(0);
    assert!(
        lists <= pages + ORPHAN_READS,
        "{lists} ListResourceRecordSets calls, more than {pages} listing page(s) + {ORPHAN_READS} reads: {:#}",
        report["api_calls"]
    );
    // What was not confirmed this sweep is counted for the next; a sweeper that settled every claim
    // within the bound has nothing left to count.
    let deferred = report["orphans_deferred"].as_u64();
    let settled = report["orphans_deleted"] == 5;
    assert!(
        deferred.is_some_and(|n| n > 0) || (deferred == Some(0) && settled),
        "the orphan candidates left unread are not counted: {report:#}"
    );
}

/// Issue 11, fourth finding, time: ECS answering 5xx for a whole sweep over 4 clusters took 314 s,
/// past the function's 240 s timeout, and no report came out. With ECSSD_TIME_LIMIT_SECONDS=20 the
/// report comes out within ~25 s, nothing is deleted, and the report has errors.
#[tokio::test]
async fn ecs_failing_for_a_whole_sweep_still_gives_a_report_in_time() {
    let setup = SweepBed::start().await.unwrap();
    for name in ["c1", "c2", "c3", "c4"] {
        setup.fleet.cluster(name).await.unwrap();
        let host = setup.fleet.loopback_host(name).await.unwrap();
        setup.registered(&host, 2).await.unwrap();
    }
    let before = setup.records().await.unwrap();
    // Every ECS request fails with HTTP 500 for as long as the sweep runs: ECS's modeled
    // ServerException for the calls a sweeper makes, AWS's generic InternalFailure for any other.
    let server_exception = |operation: &str| serde_json::json!({"status": 500, "code": "ServerException", "operation": operation, "repeat": true});
    let mut errors: Vec<serde_json::Value> =
        ["DescribeTasks", "DescribeContainerInstances", "StopTask", "ListTasks"]
            .into_iter()
            .map(server_exception)
            .collect();
    errors.push(serde_json::json!({"status": 500, "code": "InternalFailure", "repeat": true}));
    setup.moto.set_faults(serde_json::json!({"ecs": {"errors": errors}})).await.unwrap();

    let started = Instant::now();
    let run = sweep_once(&setup.env(&[("ECSSD_TIME_LIMIT_SECONDS", "20")]), &[]).await;
    let took = started.elapsed();
    assert!(took <= Duration::from_secs(25), "the report came out after {took:?} (limit 20 s): {run:?}");
    let run = run.unwrap();
    assert!(run.success, "{}", run.stderr);
    let report = &run.report;
    assert_eq!(
        setup.records().await.unwrap(),
        before,
        "records were deleted while ECS was failing: {report:#}"
    );
    assert!(!report["errors"].as_array().unwrap().is_empty(), "{report:#}");
    assert_eq!(report["out_of_time"], true, "{report:#}");
    let stats = setup.moto.stats().await.unwrap();
    let failed: u64 = stats["ecs"]
        .as_object()
        .map(|ops| ops.values().filter_map(|op| op["failed"].as_u64()).sum())
        .unwrap_or(0);
    assert!(failed > 0, "ECS was never asked: {stats}");
}

/// Issue 11, "reading the code adds": the agent-disconnected rule deleted the records of tasks ECS
/// still reports RUNNING on the agent's silence alone. (a) A task on a host whose agent has been
/// disconnected past the grace period, but whose ECS-verified endpoint still answers, keeps its
/// records; (c) one whose verified endpoint refuses, one task of 21 (within the 10% brake), loses
/// them.
#[tokio::test]
async fn the_agent_rule_needs_failing_verified_endpoints() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let connected = setup.fleet.loopback_host("c").await.unwrap();
    let (silent_a, silent_c) =
        (setup.fleet.loopback_host("c").await.unwrap(), setup.fleet.loopback_host("c").await.unwrap());
    setup.registered(&connected, 19).await.unwrap();
    let answering = setup.serving(&silent_a, "_web._tcp", Behaviour::Status(200), 1).await.unwrap().remove(0);
    let refusing = setup.serving(&silent_c, "_web._tcp", Behaviour::Refuse, 1).await.unwrap().remove(0);
    for host in [&silent_a, &silent_c] {
        setup.moto.set_agent_connected("c", &host.container_instance_arn, false).await.unwrap();
    }
    let first = sweep(&setup, &[]).await;
    assert_eq!(first.report["stale_tasks"], serde_json::json!([]), "within the grace period");
    for host in [&silent_a, &silent_c] {
        setup.age_agent_marker(host, 600).await.unwrap();
    }

    let run = sweep(&setup, &[]).await;
    let report = &run.report;
    assert!(
        setup.holds(&answering.records).await.unwrap(),
        "the records of a task whose verified endpoint answers were deleted: {report:#}"
    );
    assert!(!names_task(report, "stale_tasks", &answering.task), "{report:#}");
    let left: Vec<Record> = setup
        .records()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| refusing.records.iter().any(|own| own.key == r.key))
        .collect();
    assert_eq!(left, [], "the refusing task's records were kept: {report:#}");
    assert!(names_task(report, "stale_tasks", &refusing.task), "{report:#}");
}

/// Issue 27, "silence counts as a refusal": a task whose ECS agent has been disconnected past the
/// grace, and whose verified endpoint merely does not answer (no connection accepted, none refused, as
/// from a function outside the VPC or a network that drops), keeps its records: only a refusal is
/// evidence that it is gone.
#[tokio::test]
async fn an_agent_silent_task_whose_endpoint_does_not_answer_keeps_its_records() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let connected = setup.fleet.loopback_host("c").await.unwrap();
    let silent_host = setup.fleet.loopback_host("c").await.unwrap();
    setup.registered(&connected, 19).await.unwrap();
    let unanswering = setup.serving(&silent_host, "_web._tcp", Behaviour::Silent, 1).await.unwrap().remove(0);
    setup.moto.set_agent_connected("c", &silent_host.container_instance_arn, false).await.unwrap();
    let first = sweep(&setup, &[]).await;
    assert_eq!(first.report["stale_tasks"], serde_json::json!([]), "within the grace period");
    setup.age_agent_marker(&silent_host, 600).await.unwrap();

    let run = sweep(&setup, &[]).await;
    let report = &run.report;
    assert!(
        setup.holds(&unanswering.records).await.unwrap(),
        "the records of a task whose endpoint only did not answer were deleted: {report:#}"
    );
    assert!(!names_task(report, "stale_tasks", &unanswering.task), "{report:#}");
    assert!(names_task(report, "unknown", &unanswering.task), "reported as unknown: {report:#}");
}

/// Issue 27: outside the tasks' VPC (the default deployment: no SubnetIds) no probe reaches a task,
/// so the agent rule has no evidence to act on. A task whose agent has been disconnected past the
/// grace, with an endpoint that refuses (as an unreachable one may look from outside), keeps its
/// records, and the report says why.
#[tokio::test]
async fn outside_the_tasks_vpc_the_agent_rule_does_not_run() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let connected = setup.fleet.loopback_host("c").await.unwrap();
    let silent_host = setup.fleet.loopback_host("c").await.unwrap();
    setup.registered(&connected, 19).await.unwrap();
    let refusing = setup.serving(&silent_host, "_web._tcp", Behaviour::Refuse, 1).await.unwrap().remove(0);
    setup.moto.set_agent_connected("c", &silent_host.container_instance_arn, false).await.unwrap();
    let outside = [("ECSSD_REACHES_TASKS", "false")];
    sweep(&setup, &outside).await;
    setup.age_agent_marker(&silent_host, 600).await.unwrap();

    let run = sweep(&setup, &outside).await;
    let report = &run.report;
    assert!(setup.holds(&refusing.records).await.unwrap(), "records deleted: {report:#}");
    let (_, why) = findings(report, "unknown")
        .into_iter()
        .find(|(task, _)| task == &refusing.task.task_arn)
        .unwrap_or_else(|| panic!("not reported as unknown: {report:#}"));
    assert!(why.contains("ECSSD_REACHES_TASKS=false"), "{why}");
}

/// Issue 11, "reading the code adds", the brake: a control-plane or NAT outage longer than the agent
/// grace blacked out whole services. Of 10 RUNNING tasks, 2 are on a host whose agent has been
/// disconnected past the grace, with refusing endpoints: 20% is above ECSSD_AGENT_MAX_DELETE_FRACTION
/// (10%), so none of their records is deleted and both are reported as braked.
#[tokio::test]
async fn the_agent_rule_is_braked_above_the_fraction() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let connected = setup.fleet.loopback_host("c").await.unwrap();
    let silent = setup.fleet.loopback_host("c").await.unwrap();
    setup.registered(&connected, 8).await.unwrap();
    let refusing = setup.serving(&silent, "_web._tcp", Behaviour::Refuse, 2).await.unwrap();
    setup.moto.set_agent_connected("c", &silent.container_instance_arn, false).await.unwrap();
    sweep(&setup, &[]).await;
    setup.age_agent_marker(&silent, 600).await.unwrap();

    let run = sweep(&setup, &[]).await;
    let report = &run.report;
    for served in &refusing {
        assert!(setup.holds(&served.records).await.unwrap(), "records deleted past the brake: {report:#}");
        assert!(!names_task(report, "stale_tasks", &served.task), "{report:#}");
    }
    let braked = findings(report, "braked");
    for served in &refusing {
        let found = braked.iter().find(|(t, _)| t.rsplit('/').next() == Some(served.task.id()));
        assert!(found.is_some_and(|(_, reason)| reason.contains("brake")), "{report:#}");
    }
}

/// Issue 11, "reading the code adds": orphan SRVs were deleted whatever owner wrote them. An orphan
/// SRV (no ownership record) whose set identifier names another owner, `ecssd:other:<id>:web:80`,
/// is never deleted; one of this owner, `ecssd:default:<id>:web:80` with a valid task id, is.
#[tokio::test]
async fn only_this_owners_orphans_are_deleted() {
    let setup = SweepBed::start().await.unwrap();
    let orphan = |owner: &str| {
        let id = random_task_id();
        let set_identifier = format!("ecssd:{owner}:{id}:web:80");
        Record::new(
            key("_web._tcp", RecordType::Srv, Some(&set_identifier)),
            10,
            vec![format!("1 1 40000 {id}.{DOMAIN}")],
        )
    };
    let (theirs, ours) = (orphan("other"), orphan("default"));
    // Another owner's complete task beside it, which no sweeper of this owner may touch either.
    let other_task = PlacedTask { cluster_arn: cluster_arn("c"), task_arn: task_arn("c", &random_task_id()) };
    let other_records =
        task_records_of("other", &other_task, FORGED_ADDRESS, &[("_web._tcp", 40001)]).unwrap();
    seed(&setup.zone, vec![[theirs.clone(), ours.clone()].into_iter().collect(), other_records.clone()])
        .await
        .unwrap();

    let run = sweep(&setup, &[]).await;
    let report = &run.report;
    assert!(setup.holds_record(&theirs).await.unwrap(), "another owner's orphan SRV was deleted: {report:#}");
    assert!(setup.holds(&other_records).await.unwrap(), "another owner's records were touched: {report:#}");
    assert!(!setup.holds_record(&ours).await.unwrap(), "this owner's orphan SRV was kept: {report:#}");
    assert_eq!(report["orphans_deleted"], 1, "{report:#}");
}
