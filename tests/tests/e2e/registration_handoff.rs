#![allow(clippy::unwrap_used)]
//! Issue 26's registration handoff end to end: real sidecars whose registrations Route53 throttles hand
//! them to the registration queue (an SQS queue in moto), and the real `bootstrap` as the batcher
//! writes them, fed by the bed's emulation of Lambda's SQS event source mapping
//! (tests/src/registration_queue.rs: 1 s batching window, batches of up to 1,000, partial batch
//! responses).
//!
//! The contract: a burst of tasks against the account's 5 requests/s all register, none lost or
//! duplicated, at no more than 1.5 Route53 requests per registration; a handoff delivered after its
//! sidecar withdrew cannot land over the withdrawal guard, and the sidecar does not wait for it; and the batcher writes nothing a
//! sidecar's own registration would not (it lends its rights to whoever can send to the queue).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ecssd_edge::handoff::encode;
use ecssd_records::{
    Action, Change, Endpoint, Handoff, OwnerId, Record, RecordSet, RecordStore, TaskRegistration, ZoneModel,
    desired, plan,
};
use ecssd_tests::docker::ContainerSpec;
use ecssd_tests::moto::{AccountRate, Moto};
use ecssd_tests::registration_queue::Batcher;
use ecssd_tests::sidecar::{Sidecar, SidecarOptions};
use ecssd_tests::wait_for;
use ecssd_tests::world::{DOMAIN, RunningTask, World};

const WAIT: Duration = Duration::from_secs(60);

/// A sidecar of the world's zone (given by id) with the registration queue.
fn with_queue(world: &World, batcher: &Batcher) -> SidecarOptions {
    SidecarOptions {
        args: vec![format!("--zone-id={}", world.zone.zone_id())],
        env: vec![batcher.sidecar_env()],
    }
}

/// A task with one httpd container announcing `service`.
async fn web_task(world: &World, service: &str) -> RunningTask {
    let variable = format!("SERVICE_80_NAME={service}");
    world.task("handoff", &[ContainerSpec::httpd("web", &[variable.as_str()])]).await.unwrap()
}

/// Route53 requests counted in `stats` for every operation, and for ChangeResourceRecordSets.
fn route53_requests(stats: &serde_json::Value) -> (u64, u64) {
    (
        Moto::requests(stats, "route53", None),
        Moto::requests(stats, "route53", Some("ChangeResourceRecordSets")),
    )
}

/// 40 sidecars starting at once against the account's 5 requests/s (burst 5): the first few register
/// themselves, the others are throttled once and hand over, and the batcher writes them in a few
/// requests. Without the handoff each throttled sidecar retries Route53 itself: several requests per
/// registration (the issue measured 11 at 200 tasks, 46 at 500).
#[tokio::test]
async fn a_burst_of_tasks_registers_at_most_one_and_a_half_requests_each() {
    const TASKS: usize = 40;
    const SERVICE: &str = "_burst._tcp";
    let world = World::new().await.unwrap();
    let batcher = Batcher::start(&world.moto, &world.zone.zone_id(), &[]).await.unwrap();
    let tasks: Vec<RunningTask> =
        futures_util::future::join_all((0..TASKS).map(|_| web_task(&world, SERVICE))).await;
    world.moto.set_account_rate(Some(AccountRate::Five)).await.unwrap();
    let before = world.moto.stats().await.unwrap();

    let started = Instant::now();
    let mut sidecars = Vec::with_capacity(TASKS);
    for task in &tasks {
        sidecars
            .push(Sidecar::spawn(&world.moto, &task.metadata, with_queue(&world, &batcher)).await.unwrap());
    }
    let values = world
        .wait_for_targets(SERVICE, TASKS, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n[batcher] {}", batcher.function_output()));
    let took = started.elapsed();
    // Nothing more in flight: every handoff was delivered and its sidecar has logged its outcome.
    wait_for("the queue to be drained", WAIT, || async {
        let delivered: usize = batcher.invocations().iter().map(|i| i.messages - i.returned).sum();
        let handed = sidecars.iter().filter(|s| s.logged(&["handed to the batcher"])).count();
        Ok((delivered >= handed).then_some(()))
    })
    .await
    .unwrap();
    let after = world.moto.stats().await.unwrap();

    let mut unique = values.clone();
    unique.dedup();
    assert_eq!(unique.len(), TASKS, "a target twice: {values:?}");
    for task in &tasks {
        let records = world.task_records(task.task.task_id()).await.unwrap();
        assert_eq!(records.len(), 3, "the task's A, ownership and SRV records, once each: {records:?}");
    }
    let handed = sidecars.iter().filter(|s| s.logged(&["handed to the batcher"])).count();
    let ((all_before, changes_before), (all_after, changes_after)) =
        (route53_requests(&before), route53_requests(&after));
    let (all, changes) = (all_after - all_before, changes_after - changes_before);
    let reads = all - changes;
    let per_registration = changes as f64 / TASKS as f64;
    let with_reads = all as f64 / TASKS as f64;
    eprintln!(
        "{TASKS} registered in {:.1} s (floor {} s at 5/s): {changes} ChangeResourceRecordSets ({per_registration:.2} \
         per registration), {reads} other Route53 requests ({with_reads:.2} per registration with them); \
         {handed} handed over, batcher invocations {:?}; route53 {}",
        took.as_secs_f64(),
        TASKS / 5,
        batcher.invocations(),
        after["route53"]
    );
    assert!(per_registration <= 1.5, "{changes} change requests for {TASKS} registrations");
    assert!(with_reads <= 1.5, "{all} Route53 requests (reads included) for {TASKS} registrations");
    assert!(handed > 0, "no sidecar handed its registration over");
    assert!(batcher.problems().is_empty(), "{:?}", batcher.problems());
}

/// A sidecar stopping before its handoff landed leaves its withdrawal guard and exits after its drain,
/// without waiting for the handoff; the batcher, resumed after the exit, cannot land the handoff over
/// the guard (Route53 refuses the whole request), so nothing of the task is published. Before the
/// guard, the sidecar waited out the handoff's lifetime on its way out.
#[tokio::test]
async fn a_sidecar_stopping_before_its_handoff_lands_exits_at_once_and_the_handoff_never_lands() {
    let world = World::new().await.unwrap();
    let batcher = Batcher::start(&world.moto, &world.zone.zone_id(), &[]).await.unwrap();
    batcher.pause().await.unwrap();
    let task = web_task(&world, "_late._tcp").await;
    let mut options = with_queue(&world, &batcher);
    options.env.push(("ECSSD_DRAIN_SECONDS".into(), "0".into()));
    let mut sidecar = Sidecar::spawn(&world.moto, &task.metadata, options).await.unwrap();
    wait_for("the sidecar to hand its registration over", WAIT, || async {
        Ok(sidecar.logged(&["handed to the batcher"]).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:#?}", sidecar.logs()));
    let handed_at = Instant::now();
    assert!(world.task_records(task.task.task_id()).await.unwrap().is_empty(), "nothing written yet");

    sidecar.sigterm().unwrap();
    let status = sidecar.wait(WAIT).await.unwrap();
    let exited_after = handed_at.elapsed();
    assert!(status.success(), "{status}: {:#?}", sidecar.logs());
    // The handoff may land for a minute; the sidecar did not wait for it (10 s: the bed's start-up and
    // a withdrawal, with room for a loaded machine).
    assert!(
        exited_after < Duration::from_secs(10),
        "exited {exited_after:?} after handing over: {:#?}",
        sidecar.logs()
    );
    let guard = world.task_records(task.task.task_id()).await.unwrap();
    let guard_values: Vec<String> = guard.iter().flat_map(|r| r.values().to_vec()).collect();
    assert!(
        guard.len() == 1 && guard_values.iter().any(|v| v.contains("withdrawn-until=")),
        "only the withdrawal guard: {guard:?}"
    );

    batcher.resume();
    wait_for("the batcher to be given the handoff", WAIT, || async {
        Ok(batcher.invocations().iter().any(|i| i.messages > 0).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n[batcher] {}", batcher.function_output()));
    let reports = batcher.reports();
    let dropped: usize = reports.iter().map(|r| r["dropped"].as_array().map_or(0, Vec::len)).sum();
    let written: u64 = reports.iter().map(|r| r["written"].as_u64().unwrap_or(0)).sum();
    assert_eq!((dropped, written), (1, 0), "Route53 refuses the handoff over the guard: {reports:?}");
    assert_eq!(world.task_records(task.task.task_id()).await.unwrap(), guard, "the guard alone remains");
    eprintln!(
        "exited {:.1} s after handing over; the handoff, delivered after, was refused",
        exited_after.as_secs_f64()
    );
}

/// A handoff that outlived its minute in the queue (the batcher paused, as when it is throttled for
/// that long) is handed over again by its sidecar once a DNS check shows it did not land, planned
/// from what the zone held before: the sidecar reads nothing and writes nothing itself, and the
/// batcher writes the second handoff. Before, the sidecar read the ownership record back, then its
/// records, and repaired them with its own change request: a request a task taken from the batcher,
/// which at 500 tasks made the fleet's requests per registration 5.5.
#[tokio::test]
async fn a_handoff_that_did_not_land_is_handed_over_again_and_the_sidecar_spends_no_request() {
    let world = World::new().await.unwrap();
    let dns = world.serve_dns().await.unwrap();
    let batcher = Batcher::start(&world.moto, &world.zone.zone_id(), &[]).await.unwrap();
    batcher.pause().await.unwrap();
    let task = web_task(&world, "_again._tcp").await;
    let mut options = with_queue(&world, &batcher);
    options.env.extend(dns.sidecar_env());
    options.env.extend([("ECSSD_TTL".into(), "1".into()), ("ECSSD_HEAL_CHECK_SECONDS".into(), "1".into())]);
    let before = world.moto.stats().await.unwrap();
    let sidecar = Sidecar::spawn(&world.moto, &task.metadata, options).await.unwrap();

    // The first handoff waits out its lifetime in the paused queue; the DNS check after it sees nothing.
    let again = "handing it over again";
    let lifetime = Duration::from_secs(120);
    wait_for("the sidecar to hand its registration over again", lifetime, || async {
        Ok(sidecar.logged(&[again]).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:#?}", sidecar.logs()));
    assert!(world.task_records(task.task.task_id()).await.unwrap().is_empty(), "nothing written yet");

    batcher.resume();
    let records = world.wait_for_task_records(task.task.task_id(), 3, WAIT).await.unwrap();
    assert_eq!(records.len(), 3, "A, ownership and SRV records, once each: {records:?}");
    let after = world.moto.stats().await.unwrap();
    let reads = Moto::requests(&after, "route53", Some("ListResourceRecordSets"))
        - Moto::requests(&before, "route53", Some("ListResourceRecordSets"));
    let changes = Moto::requests(&after, "route53", Some("ChangeResourceRecordSets"))
        - Moto::requests(&before, "route53", Some("ChangeResourceRecordSets"));
    assert_eq!(
        (reads, changes),
        (0, 1),
        "the batcher's one write, nothing from the sidecar: {:#?}",
        sidecar.logs()
    );
    // The first handoff is gone (the queue keeps a message 60 s); the second is written.
    let reports = batcher.reports();
    let written: u64 = reports.iter().map(|r| r["written"].as_u64().unwrap_or(0)).sum();
    assert_eq!(written, 1, "{reports:?}");
    assert!(!sidecar.logged(&["records_drifted"]), "no read-back: {:#?}", sidecar.logs());
}

/// The batch's tasks: a cluster and task ARNs of the bed's shape.
const CLUSTER: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/handoff";

fn task_arn(n: u8) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task/handoff/{:032x}", u128::from(n) * 0x1111)
}

/// The records a sidecar of `owner` registers for task `n`: one endpoint of `_victim._tcp`.
fn registration(owner: &str, n: u8) -> RecordSet {
    let model = ZoneModel { domain: DOMAIN.parse().unwrap(), owner: owner.parse().unwrap(), ttl: 10 };
    let registration = TaskRegistration {
        cluster_arn: CLUSTER.into(),
        task: task_arn(n).parse().unwrap(),
        addresses: std::net::Ipv4Addr::new(127, 0, 0, n).into(),
        endpoints: vec![Endpoint {
            container: "web".into(),
            container_port: 80,
            service: "_victim._tcp".parse().unwrap(),
            reachable_port: 8000 + u16::from(n),
        }],
    };
    desired(&model, &registration).records
}

/// A handoff from task `from` of `owner` with these changes, valid for a minute.
fn handoff(owner: &str, from: u8, changes: Vec<Change>) -> String {
    let not_after_ms = (SystemTime::now() + Duration::from_secs(60)).duration_since(UNIX_EPOCH).unwrap();
    let handoff = Handoff {
        owner: owner.parse::<OwnerId>().unwrap(),
        task: task_arn(from).parse().unwrap(),
        not_after_ms: not_after_ms.as_millis() as u64,
        changes,
    };
    encode(&handoff)
}

/// What anyone allowed to send to the queue could forge, in one batch with a genuine handoff: another
/// task's records, a DELETE of a registered task's SRV record, another owner's records. Each is refused
/// whole and reported by message id; the zone changes by the genuine one only, and the refused messages
/// are not delivered again (they never can be written).
#[tokio::test]
async fn forged_handoffs_change_nothing_and_are_reported() {
    let world = World::new().await.unwrap();
    let batcher = Batcher::start(&world.moto, &world.zone.zone_id(), &[]).await.unwrap();
    // Task 1 registered itself; its SRV record is the victim of the DELETE.
    world.zone.apply(&plan(&registration("default", 1), &RecordSet::new())).await.unwrap();
    let before: Vec<Record> = world.records().await.unwrap();

    let victims_srv = registration("default", 1)
        .iter()
        .find(|r| r.key.record_type == ecssd_records::RecordType::Srv)
        .cloned()
        .unwrap();
    let forged = [
        // Task 2 hands over task 3's registration.
        (
            "another task's records",
            handoff("default", 2, plan(&registration("default", 3), &RecordSet::new())),
        ),
        // Task 1's own handoff, taking its SRV record away.
        (
            "a DELETE of an SRV record",
            handoff("default", 1, vec![Change { action: Action::Delete, record: victims_srv }]),
        ),
        // Another ecssd deployment's registration, sent to this one's queue.
        ("another owner's records", handoff("blue", 4, plan(&registration("blue", 4), &RecordSet::new()))),
    ];
    let genuine = handoff("default", 5, plan(&registration("default", 5), &RecordSet::new()));

    batcher.pause().await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&world.moto.sdk_config());
    let mut forged_ids = Vec::new();
    for (_, body) in &forged {
        let sent = sqs.send_message().queue_url(batcher.queue_url()).message_body(body).send().await.unwrap();
        forged_ids.push(sent.message_id().unwrap().to_owned());
    }
    sqs.send_message().queue_url(batcher.queue_url()).message_body(&genuine).send().await.unwrap();
    batcher.resume();

    wait_for("the batch to be delivered", WAIT, || async {
        Ok((!batcher.invocations().is_empty()).then_some(()))
    })
    .await
    .unwrap();
    let invocations = batcher.invocations();
    assert_eq!(invocations.len(), 1, "one batch: {invocations:?}");
    assert_eq!((invocations[0].messages, invocations[0].returned), (4, 0), "{invocations:?}");

    let expected: Vec<Record> = {
        let mut records = before.clone();
        records.extend(registration("default", 5).iter().cloned());
        records
    };
    let after = world.records().await.unwrap();
    let sorted = |mut records: Vec<Record>| {
        records.sort_by(|a, b| a.key.cmp(&b.key));
        records
    };
    assert_eq!(sorted(after), sorted(expected), "only the genuine handoff's records were written");

    let output = batcher.function_output();
    for ((what, _), id) in forged.iter().zip(&forged_ids) {
        let reported = output
            .lines()
            .any(|line| line.contains("\"problem\":\"handoff_refused\"") && line.contains(id.as_str()));
        assert!(reported, "{what} (message {id}) not reported as handoff_refused:\n{output}");
    }
    let report = batcher.reports().pop().unwrap_or_else(|| panic!("no report:\n{output}"));
    assert_eq!(report["written"], 1, "{report}");
    assert_eq!(report["refused"].as_array().map(Vec::len), Some(3), "{report}");
}
