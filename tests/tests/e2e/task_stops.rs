#![allow(clippy::unwrap_used)]
//! Issue 13's Withdrawer end to end: the real `bootstrap` binary as the function of the Lambda runtime
//! API emulator, handed SQS batches of "ECS Task State Change" events built from what moto's ECS says
//! about its tasks (tests/src/task_events.rs), against a zone seeded as sidecars write it next to
//! records ecssd does not own.
//!
//! The contract: for an event saying a task of a watched cluster stops (desiredStatus or lastStatus
//! STOPPED), the task's ownership record is read by name and, if it is this owner's claim on exactly
//! that task and cluster, it and the A and SRV records it lists are deleted with their exact values, the
//! tasks of one batch in shared requests, once ECS confirms the stop (one DescribeTasks per cluster of
//! the batch: an event is a claim anyone allowed to invoke the function can make up). Anything else
//! changes nothing; a message that is not such an event, or whose stop ECS does not confirm, is named
//! in `batchItemFailures` (and in the log).

use std::collections::BTreeSet;

use ecssd_records::{Record, RecordKey, RecordType};
use ecssd_tests::ecs::{PlacedTask, WEB_CONTAINER, registration_records, seed, task_records_of};
use ecssd_tests::moto::Moto;
use ecssd_tests::sweeper::{LambdaEmulator, SweepBed, foreign_records, invoke, mentions};
use ecssd_tests::task_events::{
    QUEUE_ARN, batch_item_failures, message_ids, sqs_batch, sqs_event, task_state_change, with_statuses,
    with_version,
};
use ecssd_tests::world::DOMAIN;
use serde_json::Value;

type Setup = SweepBed;

/// The Withdrawer: the workspace-built `bootstrap` serving the emulator, configured like the sweeper
/// (this zone, moto) plus `extra`.
async fn withdrawer(setup: &Setup, extra: &[(&str, &str)]) -> LambdaEmulator {
    let mut env = setup.env(extra);
    env.push(("ECSSD_ROLE".into(), "withdrawer".into()));
    LambdaEmulator::start(&env).await.unwrap()
}

/// What one invocation with an SQS batch did.
#[derive(Debug)]
struct Delivery {
    /// The batch's message ids, in order.
    ids: Vec<String>,
    /// The messages the function asked to have delivered again.
    failures: BTreeSet<String>,
    /// ChangeResourceRecordSets requests the function made.
    change_requests: u64,
    /// ECS requests the function made (one DescribeTasks per cluster of the stopping tasks at most).
    ecs_requests: u64,
}

/// Invokes the function with `batch` (an SQS event); its answer must be a partial batch response.
async fn deliver(setup: &Setup, lambda: &LambdaEmulator, batch: Value) -> Delivery {
    let before = setup.moto.stats().await.unwrap();
    let answer = invoke(lambda, &batch).await.unwrap();
    let after = setup.moto.stats().await.unwrap();
    let failures = batch_item_failures(&answer)
        .unwrap_or_else(|e| panic!("{e}\n[bootstrap] {}", lambda.function_output()));
    Delivery {
        ids: message_ids(&batch),
        failures,
        change_requests: Moto::requests(&after, "route53", Some("ChangeResourceRecordSets"))
            - Moto::requests(&before, "route53", Some("ChangeResourceRecordSets")),
        ecs_requests: Moto::requests(&after, "ecs", None) - Moto::requests(&before, "ecs", None),
    }
}

/// `records` without those of `tasks` (by name, set identifier or value).
fn without(records: &[Record], tasks: &[&PlacedTask]) -> Vec<Record> {
    records.iter().filter(|r| !tasks.iter().any(|t| mentions(r, t))).cloned().collect()
}

/// Asserts that the delivery asked for no retry and asked ECS once at most (the tests' tasks share
/// one cluster).
fn assert_clean(delivery: &Delivery, lambda: &LambdaEmulator) {
    assert!(
        delivery.failures.is_empty(),
        "unexpected batchItemFailures {:?}\n[bootstrap] {}",
        delivery.failures,
        lambda.function_output()
    );
    assert!(delivery.ecs_requests <= 1, "{} ECS requests for one cluster", delivery.ecs_requests);
}

/// The record of `record_type` in a task's records (one A, one TXT).
fn one_of(records: &ecssd_records::RecordSet, record_type: RecordType) -> Record {
    records.iter().find(|r| r.key.record_type == record_type).cloned().unwrap()
}

/// `record` under another name (same type, values and TTL).
fn renamed(record: &Record, name: &str) -> Record {
    let key = RecordKey { name: name.to_owned(), ..record.key.clone() };
    Record::new(key, record.ttl, record.values().to_vec())
}

/// The harness's event is the one the ECS Developer Guide documents, filled from moto's DescribeTasks:
/// what the other tests hand the Withdrawer is what EventBridge would put on the queue.
#[tokio::test]
async fn events_are_shaped_as_ecs_sends_them() {
    let setup = SweepBed::start().await.unwrap();
    let cluster = setup.fleet.cluster("c").await.unwrap();
    let host = setup.fleet.host("c").await.unwrap();
    let task = setup.fleet.start_tasks(&host, 1).await.unwrap().remove(0);
    let (host_port, _) = setup.fleet.web_binding(&task).await.unwrap();

    let running = task_state_change(&setup.fleet, &task, 1).await.unwrap();
    assert_eq!(running["version"], "0");
    assert_eq!(running["source"], "aws.ecs");
    assert_eq!(running["detail-type"], "ECS Task State Change");
    assert_eq!(running["account"], "123456789012");
    assert_eq!(running["region"], "us-east-1");
    assert_eq!(running["resources"], serde_json::json!([task.task_arn]));
    let detail = &running["detail"];
    assert_eq!(detail["taskArn"], task.task_arn.as_str());
    assert_eq!(detail["clusterArn"], cluster.as_str());
    assert_eq!(detail["containerInstanceArn"], host.container_instance_arn.as_str());
    assert_eq!(detail["taskDefinitionArn"], setup.fleet.definition());
    assert_eq!(
        (detail["desiredStatus"].as_str(), detail["lastStatus"].as_str()),
        (Some("RUNNING"), Some("RUNNING"))
    );
    assert_eq!(detail["launchType"], "EC2");
    assert_eq!(detail["availabilityZone"], "us-east-1a");
    assert_eq!(detail["version"], 1);
    for field in ["createdAt", "startedAt", "updatedAt"] {
        let at = detail[field].as_str().unwrap_or_default();
        assert!(at.len() == 24 && at.ends_with('Z') && at.as_bytes()[10] == b'T', "{field}: {at:?}");
    }
    for field in ["stoppedAt", "stoppingAt", "stopCode"] {
        assert!(detail.get(field).is_none(), "a running task's event has {field}: {running:#}");
    }
    let web = detail["containers"].as_array().unwrap().iter().find(|c| c["name"] == WEB_CONTAINER).unwrap();
    assert_eq!(web["taskArn"], task.task_arn.as_str());
    assert_eq!(web["lastStatus"], "RUNNING");
    assert_eq!(web["networkBindings"][0]["hostPort"], host_port);
    assert_eq!(web["networkBindings"][0]["containerPort"], 80);

    setup.fleet.stop_task(&task).await.unwrap();
    let stopped = task_state_change(&setup.fleet, &task, 3).await.unwrap();
    let detail = &stopped["detail"];
    assert_eq!(
        (detail["desiredStatus"].as_str(), detail["lastStatus"].as_str()),
        (Some("STOPPED"), Some("STOPPED"))
    );
    assert_eq!(detail["stoppedReason"], "test", "moto's, from StopTask");
    assert_eq!(detail["stopCode"], "UserInitiated");
    assert!(detail["stoppedAt"].is_string() && detail["stoppingAt"].is_string(), "{stopped:#}");
    assert!(detail["containers"].as_array().unwrap().iter().all(|c| c["lastStatus"] == "STOPPED"));
    assert_eq!(detail["version"], 3);
    assert_ne!(stopped["id"], running["id"]);

    // The stop request (ECS's first event of a StopTask) and a running task's event, rewritten.
    let requested = with_statuses(stopped.clone(), "STOPPED", "RUNNING");
    assert_eq!(requested["detail"]["lastStatus"], "RUNNING");
    assert!(requested["detail"].get("stoppedAt").is_none() && requested["detail"]["stoppingAt"].is_string());
    let rerun = with_version(with_statuses(stopped.clone(), "RUNNING", "RUNNING"), 4);
    assert!(rerun["detail"].get("stopCode").is_none() && rerun["detail"].get("stoppedReason").is_none());
    assert_eq!(rerun["detail"]["version"], 4);

    // On the queue: one message per event, the body the event's JSON text.
    let batch = sqs_batch(&[stopped.clone(), stopped.clone()]);
    let records = batch["Records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    let ids: BTreeSet<String> = message_ids(&batch).into_iter().collect();
    assert_eq!(ids.len(), 2, "every message has its own id");
    for record in records {
        assert_eq!(serde_json::from_str::<Value>(record["body"].as_str().unwrap()).unwrap(), stopped);
        assert_eq!(record["eventSource"], "aws:sqs");
        assert_eq!(record["eventSourceARN"], QUEUE_ARN);
        assert_eq!(record["md5OfBody"].as_str().unwrap().len(), 32);
    }
}

#[tokio::test]
async fn a_stopped_tasks_records_are_withdrawn_and_nothing_else() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let host = setup.fleet.host("c").await.unwrap();
    let tasks = setup.registered(&host, 3).await.unwrap();
    seed(&setup.zone, vec![foreign_records().into_iter().collect()]).await.unwrap();
    let before = setup.records().await.unwrap();
    assert_eq!(setup.records_of(&tasks[1]).await.unwrap().len(), 3, "TXT, A and SRV");
    setup.fleet.stop_task(&tasks[1]).await.unwrap();
    let stopped = task_state_change(&setup.fleet, &tasks[1], 3).await.unwrap();

    let lambda = withdrawer(&setup, &[]).await;
    let delivery = deliver(&setup, &lambda, sqs_batch(&[stopped])).await;
    assert_clean(&delivery, &lambda);
    assert_eq!(setup.records().await.unwrap(), without(&before, &[&tasks[1]]));
    assert!(setup.records_of(&tasks[1]).await.unwrap().is_empty());
    assert_eq!(delivery.change_requests, 1);
}

/// ECS's first event of a stop says desiredStatus STOPPED while the task still runs: that is enough.
#[tokio::test]
async fn a_stop_request_withdraws_before_the_task_has_stopped() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let host = setup.fleet.host("c").await.unwrap();
    let tasks = setup.registered(&host, 2).await.unwrap();
    let before = setup.records().await.unwrap();
    setup.fleet.stop_task(&tasks[0]).await.unwrap();
    let requested =
        with_statuses(task_state_change(&setup.fleet, &tasks[0], 2).await.unwrap(), "STOPPED", "RUNNING");

    let lambda = withdrawer(&setup, &[]).await;
    let delivery = deliver(&setup, &lambda, sqs_batch(&[requested])).await;
    assert_clean(&delivery, &lambda);
    assert_eq!(setup.records().await.unwrap(), without(&before, &[&tasks[0]]));
}

/// Events come at least once and in any order (the same event twice, in one batch or two; the stop
/// request after the stop; a RUNNING event after the STOPPED one, older or newer): a task is withdrawn
/// once, nothing is ever re-created, no message is retried.
#[tokio::test]
async fn duplicates_and_reordered_events_change_nothing_more() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let host = setup.fleet.host("c").await.unwrap();
    let tasks = setup.registered(&host, 3).await.unwrap();
    let (a, b, neighbour) = (&tasks[0], &tasks[1], &tasks[2]);
    let before = setup.records().await.unwrap();
    // As ECS said it while they ran.
    let running_a = task_state_change(&setup.fleet, a, 1).await.unwrap();
    let running_b = task_state_change(&setup.fleet, b, 1).await.unwrap();
    setup.fleet.stop_task(a).await.unwrap();
    setup.fleet.stop_task(b).await.unwrap();
    let stopped_a = task_state_change(&setup.fleet, a, 3).await.unwrap();
    let requested_a = with_statuses(with_version(stopped_a.clone(), 2), "STOPPED", "RUNNING");
    let stopped_b = task_state_change(&setup.fleet, b, 3).await.unwrap();
    let lambda = withdrawer(&setup, &[]).await;

    // The same event twice in one batch (two messages, one body).
    let twice = deliver(&setup, &lambda, sqs_batch(&[stopped_a.clone(), stopped_a.clone()])).await;
    assert_clean(&twice, &lambda);
    assert_eq!(setup.records().await.unwrap(), without(&before, &[a]));
    assert_eq!(twice.change_requests, 1, "one task, one request");

    // Again in another invocation, with the stop request arriving after the stop.
    let withdrawn = setup.records().await.unwrap();
    let again = deliver(&setup, &lambda, sqs_batch(&[stopped_a.clone(), requested_a])).await;
    assert_clean(&again, &lambda);
    assert_eq!(setup.records().await.unwrap(), withdrawn);
    assert_eq!(again.change_requests, 0, "nothing left to delete");

    // RUNNING after STOPPED: the older event arriving late, and a newer one (ECS never restarts a task;
    // the Withdrawer never registers anything).
    let rerun_a = with_version(with_statuses(stopped_a, "RUNNING", "RUNNING"), 4);
    for late in [running_a, rerun_a] {
        let delivery = deliver(&setup, &lambda, sqs_batch(&[late])).await;
        assert_clean(&delivery, &lambda);
        assert_eq!(delivery.change_requests, 0);
        assert_eq!(setup.records().await.unwrap(), withdrawn);
    }

    // Both orders in one batch: STOPPED then the older RUNNING.
    let mixed = deliver(&setup, &lambda, sqs_batch(&[stopped_b, running_b])).await;
    assert_clean(&mixed, &lambda);
    assert_eq!(setup.records().await.unwrap(), without(&before, &[a, b]));
    assert_eq!(setup.records_of(neighbour).await.unwrap().len(), 3);
}

/// Only this owner's claim on exactly the stopped task and its cluster is withdrawn: another owner's
/// records, a task ecssd never registered, and ownership records at the task's name that name another
/// task or another cluster are left alone, and none of them is a failure.
#[tokio::test]
async fn what_is_not_this_owners_claim_on_the_task_is_left_alone() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let elsewhere_cluster = setup.fleet.cluster("elsewhere").await.unwrap();
    let host = setup.fleet.host("c").await.unwrap();
    let started = setup.fleet.start_tasks(&host, 5).await.unwrap();
    let [theirs, never, victim, victim2, other_task] = <[PlacedTask; 5]>::try_from(started).unwrap();
    let address = host.private_ip.unwrap();
    // Another deployment's sidecar (owner "other") registered `theirs`, agreeing with ECS.
    let (port, _) = setup.fleet.web_binding(&theirs).await.unwrap();
    let their_records = task_records_of("other", &theirs, address, &[("_web._tcp", port)]).unwrap();
    // At `victim`'s ownership name: a claim naming another (running) task, whose A and SRV exist.
    let (port, _) = setup.fleet.web_binding(&other_task).await.unwrap();
    let other_task_records = setup.fleet.sidecar_records(&other_task, "_web._tcp").await.unwrap();
    let claim =
        renamed(&one_of(&other_task_records, RecordType::Txt), &format!("_ecssd.{}.{DOMAIN}.", victim.id()));
    let other_a_srv: Vec<Record> =
        other_task_records.iter().filter(|r| r.key.record_type != RecordType::Txt).cloned().collect();
    // `victim2`'s records, claiming it for another cluster.
    let misplaced = PlacedTask { cluster_arn: elsewhere_cluster, task_arn: victim2.task_arn.clone() };
    let misplaced_records = registration_records(
        "default",
        &misplaced,
        address,
        vec![ecssd_records::Endpoint {
            container: WEB_CONTAINER.into(),
            container_port: 80,
            service: "_web._tcp".parse().unwrap(),
            reachable_port: port,
        }],
    )
    .unwrap();
    seed(
        &setup.zone,
        vec![
            their_records,
            [claim].into_iter().chain(other_a_srv).collect(),
            misplaced_records,
            foreign_records().into_iter().collect(),
        ],
    )
    .await
    .unwrap();
    let before = setup.records().await.unwrap();
    let mut events = Vec::new();
    for task in [&theirs, &never, &victim, &victim2] {
        setup.fleet.stop_task(task).await.unwrap();
        events.push(task_state_change(&setup.fleet, task, 3).await.unwrap());
    }

    let lambda = withdrawer(&setup, &[]).await;
    let delivery = deliver(&setup, &lambda, sqs_batch(&events)).await;
    assert_clean(&delivery, &lambda);
    assert_eq!(setup.records().await.unwrap(), before, "nothing here is this owner's claim on the task");
    assert_eq!(delivery.change_requests, 0);

    // The owner is what made the difference: the Withdrawer of owner "other" withdraws its own task.
    let theirs_withdrawer = withdrawer(&setup, &[("ECSSD_OWNER_ID", "other")]).await;
    let delivery = deliver(&setup, &theirs_withdrawer, sqs_batch(&events[..1])).await;
    assert_clean(&delivery, &theirs_withdrawer);
    assert_eq!(setup.records().await.unwrap(), without(&before, &[&theirs]));
}

#[tokio::test]
async fn tasks_of_clusters_not_watched_are_left_alone() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("watched").await.unwrap();
    setup.fleet.cluster("ignored").await.unwrap();
    let watched = setup.registered(&setup.fleet.host("watched").await.unwrap(), 1).await.unwrap().remove(0);
    let ignored = setup.registered(&setup.fleet.host("ignored").await.unwrap(), 1).await.unwrap().remove(0);
    let before = setup.records().await.unwrap();
    let mut events = Vec::new();
    for task in [&ignored, &watched] {
        setup.fleet.stop_task(task).await.unwrap();
        events.push(task_state_change(&setup.fleet, task, 3).await.unwrap());
    }

    let lambda = withdrawer(&setup, &[("ECSSD_CLUSTERS", "watched, some-other")]).await;
    let delivery = deliver(&setup, &lambda, sqs_batch(&events)).await;
    assert_clean(&delivery, &lambda);
    assert_eq!(setup.records().await.unwrap(), without(&before, &[&watched]));
    assert_eq!(setup.records_of(&ignored).await.unwrap().len(), 3);
}

/// Issue 27: anyone allowed to invoke the withdrawer can hand it a made-up SQS batch (the queue policy
/// never comes into play). An event saying a running task stopped, in the documented shape: ECS says
/// the task runs, so its records stay and the message is delivered again.
#[tokio::test]
async fn a_made_up_stop_of_a_running_task_deletes_nothing() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let host = setup.fleet.host("c").await.unwrap();
    let tasks = setup.registered(&host, 2).await.unwrap();
    let before = setup.records().await.unwrap();
    let made_up =
        with_statuses(task_state_change(&setup.fleet, &tasks[0], 3).await.unwrap(), "STOPPED", "STOPPED");

    let lambda = withdrawer(&setup, &[]).await;
    let delivery = deliver(&setup, &lambda, sqs_batch(&[made_up])).await;
    assert_eq!(setup.records().await.unwrap(), before, "[bootstrap] {}", lambda.function_output());
    assert_eq!(delivery.change_requests, 0);
    assert_eq!(delivery.failures, delivery.ids.iter().cloned().collect(), "delivered again");
    assert_eq!(setup.fleet.status(&tasks[0]).await.unwrap().0, "RUNNING");
    assert!(lambda.function_output().contains("ECS reports it RUNNING"), "{}", lambda.function_output());
}

/// Messages that are not task state change events ecssd can read fail alone: each is named in
/// `batchItemFailures` (so it ends in the dead-letter queue) and in the log, the good event of the
/// same batch is withdrawn, and the tasks the malformed ones name keep their records.
#[tokio::test]
async fn malformed_messages_fail_alone() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let other_cluster = setup.fleet.cluster("other").await.unwrap();
    let host = setup.fleet.host("c").await.unwrap();
    let tasks = setup.registered(&host, 7).await.unwrap();
    let before = setup.records().await.unwrap();
    let mut events = Vec::new();
    for task in &tasks {
        setup.fleet.stop_task(task).await.unwrap();
        events.push(task_state_change(&setup.fleet, task, 3).await.unwrap());
    }
    let good = events[0].to_string();
    // Cut short: not JSON.
    let text = events[1].to_string();
    let not_json = text[..text.len() / 2].to_owned();
    let mut wrong_source = events[2].clone();
    wrong_source["source"] = "custom.imitation".into();
    let mut wrong_type = events[3].clone();
    wrong_type["detail-type"] = "ECS Container Instance State Change".into();
    let mut no_task = events[4].clone();
    no_task["detail"].as_object_mut().unwrap().remove("taskArn");
    no_task["resources"] = serde_json::json!([]);
    let mut no_cluster = events[5].clone();
    no_cluster["detail"].as_object_mut().unwrap().remove("clusterArn");
    let mut mismatched = events[6].clone();
    mismatched["detail"]["clusterArn"] = other_cluster.into();
    let bodies = [good, not_json]
        .into_iter()
        .chain([wrong_source, wrong_type, no_task, no_cluster, mismatched].map(|event| event.to_string()))
        .collect::<Vec<_>>();

    let lambda = withdrawer(&setup, &[]).await;
    let delivery = deliver(&setup, &lambda, sqs_event(&bodies)).await;
    let malformed: BTreeSet<String> = delivery.ids[1..].iter().cloned().collect();
    assert_eq!(delivery.failures, malformed, "[bootstrap] {}", lambda.function_output());
    assert_eq!(delivery.ecs_requests, 1, "one DescribeTasks, for the good event");
    assert_eq!(setup.records().await.unwrap(), without(&before, &[&tasks[0]]));
    let log = lambda.function_output();
    for id in &malformed {
        assert!(log.contains(id.as_str()), "the log does not name message {id}: {log}");
    }
}

/// One SQS batch of stopped tasks is withdrawn with one ChangeResourceRecordSets request (Lambda's
/// default batch size for an SQS queue is 10).
#[tokio::test]
async fn a_batch_of_stopped_tasks_is_one_change_request() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let host = setup.fleet.host("c").await.unwrap();
    let tasks = setup.registered(&host, 12).await.unwrap();
    let (stopped, neighbours) = tasks.split_at(10);
    let before = setup.records().await.unwrap();
    let mut events = Vec::new();
    for task in stopped {
        setup.fleet.stop_task(task).await.unwrap();
        events.push(task_state_change(&setup.fleet, task, 3).await.unwrap());
    }

    let lambda = withdrawer(&setup, &[]).await;
    let delivery = deliver(&setup, &lambda, sqs_batch(&events)).await;
    assert_clean(&delivery, &lambda);
    let stopped: Vec<&PlacedTask> = stopped.iter().collect();
    assert_eq!(setup.records().await.unwrap(), without(&before, &stopped));
    assert_eq!(delivery.change_requests, 1, "10 tasks, 30 records: one request");
    for task in neighbours {
        assert_eq!(setup.records_of(task).await.unwrap().len(), 3);
    }
}
