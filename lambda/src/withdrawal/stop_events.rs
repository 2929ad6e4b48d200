//! One batch of the task-stop queue ([`crate::sqs_batch`]): each message's event is read, the stopping
//! tasks of watched clusters are withdrawn together, and the messages to deliver again are named in a
//! partial batch response.
//!
//! A message that is not a task state change is delivered again until the queue's redrive policy moves
//! it to the dead-letter queue, where an operator sees it; nothing is changed for it.
//!
//! An event is a claim: anyone allowed to invoke the function can make one up. Before anything is
//! deleted, ECS is asked (one DescribeTasks per cluster and 100 tasks) and confirms that each task stops
//! (desired or last status STOPPED, or MISSING). A task ECS reports running, or that ECS did not answer
//! for, keeps its records, and its messages are delivered again.

use std::collections::BTreeMap;
use std::time::Duration;

use ecssd_records::RecordStore;
use serde::Serialize;
use tokio::time::Instant;

use crate::Config;
use crate::deadline::Deadline;
use crate::fleet::{Fleet, TaskAnswer, describe_by_cluster};
use crate::report::{Finding, emf_line};
use crate::sqs_batch::{BatchResponse, QueueBatch};
use crate::withdrawal::task_event::{self, TaskStateChange};
use crate::withdrawal::withdraw::{Outcome, withdraw};

/// What one batch did: logged as JSON and as CloudWatch Embedded Metric Format.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StopsReport {
    pub dry_run: bool,
    pub messages: usize,
    /// Tasks whose records were deleted (or would be, in a dry run), with how many.
    pub withdrawn: Vec<Finding>,
    pub records_deleted: usize,
    /// Stopping tasks with no ownership record: never registered, or already withdrawn.
    pub not_registered: usize,
    /// Ownership records that are not this owner's claim on the stopped task: untouched.
    pub left_alone: Vec<Finding>,
    /// Events of tasks that are not stopping, or of clusters not watched.
    pub ignored: usize,
    /// Messages that are not task state change events (by message id).
    pub malformed: Vec<Finding>,
    /// Stopping tasks ECS does not confirm stop (it reports them running, or gave no answer): their
    /// records are kept and their messages delivered again.
    pub not_confirmed: Vec<Finding>,
    /// Tasks whose withdrawal failed; their messages are delivered again.
    pub failed: Vec<Finding>,
    /// The messages to deliver again.
    pub retry: Vec<String>,
    /// API calls made, per service and operation.
    pub api_calls: BTreeMap<String, BTreeMap<String, u64>>,
    pub duration_ms: u64,
}

impl StopsReport {
    pub fn response(&self) -> BatchResponse {
        BatchResponse::retry(&self.retry)
    }

    /// The Embedded Metric Format line for this batch.
    pub fn emf(&self, timestamp_ms: u128) -> serde_json::Value {
        let calls: u64 = self.api_calls.values().flat_map(|ops| ops.values()).sum();
        emf_line(
            timestamp_ms,
            &[
                ("TaskStopMessages", self.messages as u64, "Count"),
                ("TaskStopsWithdrawn", self.withdrawn.len() as u64, "Count"),
                ("TaskStopRecordsDeleted", self.records_deleted as u64, "Count"),
                ("TaskStopsLeftAlone", self.left_alone.len() as u64, "Count"),
                ("TaskStopMessagesMalformed", self.malformed.len() as u64, "Count"),
                ("TaskStopsNotConfirmed", self.not_confirmed.len() as u64, "Count"),
                ("TaskStopsFailed", self.failed.len() as u64, "Count"),
                ("TaskStopApiCalls", calls, "Count"),
                ("TaskStopDurationMs", self.duration_ms, "Milliseconds"),
            ],
        )
    }
}

/// Handles one batch against `store`, confirming each stop with `fleet`.
pub async fn handle<S: RecordStore, F: Fleet>(
    store: &S,
    fleet: &F,
    config: &Config,
    batch: QueueBatch,
    deadline: Deadline,
) -> StopsReport {
    let started = Instant::now();
    let mut report =
        StopsReport { dry_run: config.dry_run, messages: batch.messages.len(), ..Default::default() };
    // One entry per stopping task, with every message that named it (duplicates share the outcome).
    let mut tasks: Vec<TaskStateChange> = Vec::new();
    let mut messages_of: Vec<Vec<String>> = Vec::new();
    for message in batch.messages {
        let change = match task_event::parse(&message.body) {
            Ok(change) => change,
            Err(problem) => {
                tracing::error!(message_id = %message.message_id, %problem, "not a task state change event");
                report
                    .malformed
                    .push(Finding::new(format!("message {}", message.message_id), problem.to_string()));
                report.retry.push(message.message_id);
                continue;
            }
        };
        if !change.is_stopping() || !config.watches(&change.cluster_arn) {
            report.ignored += 1;
            continue;
        }
        match tasks.iter().position(|t| t.task == change.task) {
            Some(index) => messages_of[index].push(message.message_id),
            None => {
                tasks.push(change);
                messages_of.push(vec![message.message_id]);
            }
        }
    }
    let confirmed = confirmed_by_ecs(fleet, tasks, messages_of, deadline, &mut report).await;
    let (tasks, messages_of): (Vec<_>, Vec<_>) = confirmed.into_iter().unzip();
    let outcomes = withdraw(store, &config.domain, &config.owner_id, &tasks, config.dry_run, deadline).await;
    for ((task, messages), outcome) in tasks.iter().zip(messages_of).zip(outcomes) {
        let task = task.task.to_string();
        match outcome {
            Outcome::Withdrawn { records } => {
                report.records_deleted += records;
                report.withdrawn.push(Finding::new(task, format!("{records} records")));
            }
            Outcome::NotRegistered => report.not_registered += 1,
            Outcome::LeftAlone { why } => report.left_alone.push(Finding::new(task, why)),
            Outcome::Failed { why } => {
                report.failed.push(Finding::new(task, why));
                report.retry.extend(messages);
            }
        }
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// How long to wait before asking ECS again about a task it reports running: ECS's API is eventually
/// consistent (API Reference, "Request eventual consistency"), so DescribeTasks right after the event
/// of a stop may still show the task as it was.
const RECHECK_AFTER: Duration = Duration::from_secs(2);

/// The tasks (with their messages) ECS confirms stop; the others are reported, and their messages
/// delivered again. A task ECS reports running is asked about once more, after [`RECHECK_AFTER`].
async fn confirmed_by_ecs<F: Fleet>(
    fleet: &F,
    tasks: Vec<TaskStateChange>,
    messages_of: Vec<Vec<String>>,
    deadline: Deadline,
    report: &mut StopsReport,
) -> Vec<(TaskStateChange, Vec<String>)> {
    let (mut answers, mut unanswered) = describe(fleet, tasks.iter(), deadline).await;
    let running = |task: &&TaskStateChange, answers: &BTreeMap<String, TaskAnswer>| matches!(answers.get(&task.task.to_string()), Some(TaskAnswer::Found(facts)) if !facts.stops());
    let recheck: Vec<&TaskStateChange> = tasks.iter().filter(|task| running(task, &answers)).collect();
    if !recheck.is_empty() && deadline.within(tokio::time::sleep(RECHECK_AFTER)).await.is_some() {
        answers.extend(describe(fleet, recheck.into_iter(), deadline).await.0);
    }
    let mut confirmed = Vec::new();
    for (task, messages) in tasks.into_iter().zip(messages_of) {
        let arn = task.task.to_string();
        let why = match answers.get(&arn) {
            Some(TaskAnswer::Missing) => None,
            Some(TaskAnswer::Found(facts)) if facts.stops() => None,
            Some(TaskAnswer::Found(facts)) => Some(format!(
                "ECS reports it {} (desired {}): the event is not confirmed, records kept",
                facts.last_status, facts.desired_status
            )),
            None => Some(unanswered.remove(&arn).unwrap_or_else(|| "ECS gave no answer about it".into())),
        };
        match why {
            None => confirmed.push((task, messages)),
            Some(why) => {
                tracing::warn!(task = %arn, %why, "a task stop event ECS does not confirm");
                report.not_confirmed.push(Finding::new(arn, why));
                report.retry.extend(messages);
            }
        }
    }
    confirmed
}

/// ECS's answers about `tasks` by task ARN (each asked about in its event's cluster), and why it gave
/// none about the others.
async fn describe<'a, F: Fleet>(
    fleet: &F,
    tasks: impl Iterator<Item = &'a TaskStateChange>,
    deadline: Deadline,
) -> (BTreeMap<String, TaskAnswer>, BTreeMap<String, String>) {
    let asked = tasks.map(|task| (task.cluster_arn.as_str(), task.task.to_string()));
    let (answers, failed) = describe_by_cluster(fleet, asked, deadline).await;
    let answers = answers.into_iter().map(|((_, arn), answer)| (arn, answer)).collect();
    let unanswered = failed
        .into_iter()
        .flat_map(|u| {
            let why = format!("asking ECS: {}", u.error);
            u.arns.into_iter().map(move |arn| (arn, why.clone()))
        })
        .collect();
    (answers, unanswered)
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use ecssd_records::CallError;
    use ecssd_records::memory::MemoryZone;

    use super::*;
    use crate::fixtures::{CLUSTER_ARN, TASK_IDS, TableFleet, task, task_arn, web_task_records};
    use crate::sqs_batch::QueueMessage;

    /// ECS as the tests see it: each of `stopped` is STOPPED, each of `running` RUNNING.
    fn ecs(stopped: &[&str], running: &[&str]) -> TableFleet {
        let stopped = stopped.iter().map(|id| (task_arn(id), task("STOPPED", None)));
        let running = running.iter().map(|id| (task_arn(id), task("RUNNING", None)));
        TableFleet { tasks: stopped.chain(running).collect(), ..TableFleet::default() }
    }

    fn config(clusters: &str) -> Config {
        Config::try_parse_from(["bootstrap", "--domain", "sd.internal", "--clusters", clusters]).unwrap()
    }

    fn event(id: &str, cluster_arn: &str, desired: &str, version: u64) -> String {
        serde_json::json!({
            "version": "0", "id": format!("event-{version}"), "detail-type": "ECS Task State Change",
            "source": "aws.ecs", "account": "1", "time": "2026-11-26T10:00:00Z", "region": "us-east-1",
            "resources": [task_arn(id)],
            "detail": {
                "taskArn": task_arn(id), "clusterArn": cluster_arn, "desiredStatus": desired,
                "lastStatus": "RUNNING", "version": version,
            },
        })
        .to_string()
    }

    fn batch(bodies: Vec<String>) -> QueueBatch {
        let messages = bodies
            .into_iter()
            .enumerate()
            .map(|(n, body)| QueueMessage { message_id: format!("m{n}"), body })
            .collect();
        QueueBatch { messages }
    }

    #[tokio::test]
    async fn a_batch_withdraws_each_stopping_task_once_and_retries_only_what_it_cannot_read() {
        let [a, b, c, _] = TASK_IDS;
        let (first, second, running) =
            (web_task_records("default", a), web_task_records("default", b), web_task_records("default", c));
        let zone = MemoryZone::new(first.iter().chain(second.iter()).chain(running.iter()).cloned());
        let bodies = vec![
            event(a, CLUSTER_ARN, "STOPPED", 3),
            event(a, CLUSTER_ARN, "STOPPED", 3), // a duplicate
            event(a, CLUSTER_ARN, "RUNNING", 2), // older, arriving late
            event(b, CLUSTER_ARN, "STOPPED", 5),
            event(c, CLUSTER_ARN, "RUNNING", 1),
            "{not json".to_owned(),
        ];
        let deadline = Deadline::after(std::time::Duration::from_secs(30));
        let report = handle(&zone, &ecs(&[a, b], &[c]), &config("c"), batch(bodies), deadline).await;
        assert_eq!(zone.records(), running, "only the stopped tasks' records went");
        assert_eq!(zone.calls().iter().filter(|c| **c == "change").count(), 1, "one request");
        assert_eq!((report.withdrawn.len(), report.records_deleted), (2, first.len() + second.len()));
        assert_eq!(report.ignored, 2);
        assert_eq!(report.malformed.len(), 1);
        assert!(report.malformed[0].reason.starts_with("not a JSON EventBridge event"), "{report:?}");
        let response = serde_json::to_value(report.response()).unwrap();
        assert_eq!(response, serde_json::json!({"batchItemFailures": [{"itemIdentifier": "m5"}]}));
    }

    /// A zone whose change requests Route53 refuses for good.
    struct Refusing(MemoryZone);

    impl RecordStore for Refusing {
        async fn read(
            &self,
            key: &ecssd_records::RecordKey,
        ) -> Result<Option<ecssd_records::Record>, CallError> {
            self.0.read(key).await
        }

        async fn list_all(&self) -> Result<Vec<ecssd_records::Record>, CallError> {
            self.0.list_all().await
        }

        async fn apply(&self, _: &[ecssd_records::Change]) -> Result<(), CallError> {
            Err(CallError::Permanent { operation: "ChangeResourceRecordSets", detail: "refused".into() })
        }
    }

    #[tokio::test]
    async fn every_message_of_a_task_that_could_not_be_withdrawn_is_delivered_again() {
        let [a, b, ..] = TASK_IDS;
        let records = web_task_records("default", a);
        let zone = Refusing(MemoryZone::new(records.iter().cloned()));
        let bodies = vec![
            event(a, CLUSTER_ARN, "STOPPED", 3),
            event(b, CLUSTER_ARN, "STOPPED", 1), // never registered: done
            event(a, CLUSTER_ARN, "STOPPED", 4), // the same task again
        ];
        let deadline = Deadline::after(std::time::Duration::from_secs(30));
        let report = handle(&zone, &ecs(&[a, b], &[]), &config("c"), batch(bodies), deadline).await;
        assert_eq!(report.failed.len(), 1, "{report:?}");
        assert!(report.failed[0].reason.contains("refused"), "{report:?}");
        assert_eq!(report.not_registered, 1);
        let response = serde_json::to_value(report.response()).unwrap();
        assert_eq!(
            response,
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m2"}]})
        );
        assert_eq!(zone.0.records(), records);
    }

    #[tokio::test]
    async fn a_task_of_an_unwatched_cluster_is_left_as_it_is() {
        let [a, ..] = TASK_IDS;
        let records = web_task_records("default", a);
        let zone = MemoryZone::new(records.iter().cloned());
        let deadline = Deadline::after(std::time::Duration::from_secs(30));
        let batch = batch(vec![event(a, CLUSTER_ARN, "STOPPED", 3)]);
        let report = handle(&zone, &ecs(&[a], &[]), &config("other"), batch, deadline).await;
        assert_eq!(report.ignored, 1);
        assert_eq!(zone.records(), records);
        assert!(zone.calls().is_empty(), "not even a read: {:?}", zone.calls());
        assert_eq!(report.response(), BatchResponse { batch_item_failures: vec![] });
    }

    /// Issue 27: anyone allowed to invoke the function can send a made-up batch. A task ECS reports
    /// running keeps its records, and so does one ECS gives no answer about; both messages come back.
    #[tokio::test]
    async fn a_stop_ecs_does_not_confirm_deletes_nothing_and_comes_back() {
        let [a, b, ..] = TASK_IDS;
        let records: ecssd_records::RecordSet =
            web_task_records("default", a).into_iter().chain(web_task_records("default", b)).collect();
        let zone = MemoryZone::new(records.iter().cloned());
        let bodies = vec![event(a, CLUSTER_ARN, "STOPPED", 3), event(b, CLUSTER_ARN, "STOPPED", 3)];
        let deadline = Deadline::after(std::time::Duration::from_secs(30));
        let report = handle(&zone, &ecs(&[], &[a]), &config("c"), batch(bodies), deadline).await;
        assert_eq!(zone.records(), records, "{report:?}");
        assert!(report.withdrawn.is_empty(), "{report:?}");
        let reasons: Vec<&str> = report.not_confirmed.iter().map(|f| f.reason.as_str()).collect();
        assert_eq!(reasons.len(), 2, "{report:?}");
        assert!(reasons[0].starts_with("ECS reports it RUNNING (desired RUNNING)"), "{reasons:?}");
        assert_eq!(reasons[1], "ECS gave no answer about it");
        assert_eq!(report.retry, ["m0", "m1"]);

        let down = TableFleet { ecs_down: true, ..TableFleet::default() };
        let bodies = vec![event(a, CLUSTER_ARN, "STOPPED", 3)];
        let deadline = Deadline::after(std::time::Duration::from_secs(30));
        let report = handle(&zone, &down, &config("c"), batch(bodies), deadline).await;
        assert_eq!(zone.records().len(), records.len(), "unknown is not gone");
        assert!(report.not_confirmed[0].reason.starts_with("asking ECS: "), "{report:?}");
        assert_eq!(report.retry, ["m0"]);
    }

    /// ECS answering as eventual consistency allows: RUNNING at first, STOPPED when asked again.
    struct CatchingUp {
        asked: std::sync::Mutex<usize>,
    }

    impl Fleet for CatchingUp {
        async fn describe_tasks(
            &self,
            _cluster: &str,
            arns: &[String],
        ) -> Result<BTreeMap<String, TaskAnswer>, CallError> {
            let mut asked = self.asked.lock().unwrap();
            *asked += 1;
            let status = if *asked == 1 { "RUNNING" } else { "STOPPED" };
            Ok(arns.iter().map(|arn| (arn.clone(), task(status, None))).collect())
        }

        async fn describe_container_instances(
            &self,
            _: &str,
            _: &[String],
        ) -> Result<BTreeMap<String, crate::fleet::InstanceAnswer>, CallError> {
            unreachable!("the withdrawer asks about tasks only")
        }

        async fn instances(
            &self,
            _: &[String],
        ) -> Result<BTreeMap<String, crate::fleet::Ec2Facts>, CallError> {
            unreachable!("the withdrawer asks about tasks only")
        }

        async fn stop_task(&self, _: &str, _: &str, _: &str) -> Result<(), CallError> {
            unreachable!("the withdrawer stops nothing")
        }

        async fn task_definition(
            &self,
            _: &str,
        ) -> Result<std::sync::Arc<crate::fleet::DefinitionFacts>, CallError> {
            unreachable!("the withdrawer asks about tasks only")
        }
    }

    #[tokio::test]
    async fn a_stop_ecs_has_not_caught_up_with_yet_is_confirmed_when_asked_again() {
        let [a, ..] = TASK_IDS;
        let zone = MemoryZone::new(web_task_records("default", a).into_iter());
        let fleet = CatchingUp { asked: std::sync::Mutex::new(0) };
        let deadline = Deadline::after(std::time::Duration::from_secs(30));
        let report =
            handle(&zone, &fleet, &config("c"), batch(vec![event(a, CLUSTER_ARN, "STOPPED", 3)]), deadline)
                .await;
        assert_eq!(*fleet.asked.lock().unwrap(), 2, "asked again");
        assert_eq!(report.withdrawn.len(), 1, "{report:?}");
        assert!(zone.records().is_empty());
    }
}
