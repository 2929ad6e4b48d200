//! "ECS Task State Change" events, as EventBridge puts them on the task-stop queue: which task an
//! event names and whether ECS says there that the task stops. Pure: no I/O.
//!
//! Shape: ECS Developer Guide, "Amazon ECS task state change events"
//! (<https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_task_events.html>): `source`
//! `aws.ecs`, `detail-type` `ECS Task State Change`, and a `detail` that mirrors DescribeTasks
//! (`taskArn`, `clusterArn`, `lastStatus`, `desiredStatus`, `version`, …). ECS "may add other event
//! types, sources, and details in the future" ("Amazon ECS events"), so unknown fields are ignored.
//! Events come at least once and possibly out of order ("Handling events"; `detail.version` orders
//! them); a task whose desired status is STOPPED never runs again, so any one event saying so is
//! enough, none is ever undone by a later (or older) one, and the version is not needed (nor read, so
//! a change in its type cannot make events unreadable).

use ecssd_records::{TaskArn, is_ecs_task_id};
use serde::Deserialize;

/// The event's `source` and `detail-type`.
pub const SOURCE: &str = "aws.ecs";
pub const DETAIL_TYPE: &str = "ECS Task State Change";

/// What one task state change event says about its task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStateChange {
    pub task: TaskArn,
    pub cluster_arn: String,
    pub desired_status: String,
    pub last_status: String,
}

impl TaskStateChange {
    /// Whether ECS says the task stops, by [`stops`].
    pub fn is_stopping(&self) -> bool {
        stops(&self.desired_status, &self.last_status)
    }
}

/// Whether ECS says a task stops: its desired status or its last status is STOPPED (the rule for an
/// event and for a DescribeTasks answer alike).
pub fn stops(desired_status: &str, last_status: &str) -> bool {
    desired_status == "STOPPED" || last_status == "STOPPED"
}

/// Why a queue message is not a task state change event ecssd can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("not a JSON EventBridge event of the documented shape: {0}")]
    NotJson(String),
    #[error(
        "not an ECS task state change (source {event_source:?}, detail-type {detail_type:?}; expected \
         {SOURCE:?}, {DETAIL_TYPE:?})"
    )]
    OtherEvent { event_source: String, detail_type: String },
    #[error("the event's detail has no {0}")]
    Missing(&'static str),
    #[error("the event's detail.taskArn {arn:?} is not a task ARN: {problem}")]
    BadTaskArn { arn: String, problem: String },
    #[error("the task {task} does not belong to the event's cluster {cluster_arn}")]
    ClusterMismatch { task: String, cluster_arn: String },
    #[error("the event's {field} is {found:?}, but its task {task} is in {field} {expected:?}")]
    ElsewhereThanItsTask { field: &'static str, found: String, expected: String, task: String },
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    source: String,
    #[serde(rename = "detail-type", default)]
    detail_type: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    detail: Detail,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    task_arn: Option<String>,
    cluster_arn: Option<String>,
    desired_status: Option<String>,
    last_status: Option<String>,
}

/// Reads one event (a queue message's body).
pub fn parse(body: &str) -> Result<TaskStateChange, EventError> {
    let event: Envelope = serde_json::from_str(body).map_err(|e| EventError::NotJson(e.to_string()))?;
    if event.source != SOURCE || event.detail_type != DETAIL_TYPE {
        return Err(EventError::OtherEvent { event_source: event.source, detail_type: event.detail_type });
    }
    let detail = event.detail;
    let arn = detail.task_arn.ok_or(EventError::Missing("taskArn"))?;
    let cluster_arn = detail.cluster_arn.ok_or(EventError::Missing("clusterArn"))?;
    let task: TaskArn =
        arn.parse().map_err(|e| EventError::BadTaskArn { arn: arn.clone(), problem: format!("{e}") })?;
    if !is_ecs_task_id(task.id()) {
        let problem = "its task id is not one ECS issues (32 hex digits, or a UUID)".to_owned();
        return Err(EventError::BadTaskArn { arn, problem });
    }
    // A new-format task ARN names its cluster; it must be the event's, and in any case in the task's
    // region and account, as the event itself must be.
    let (region, account) = region_and_account(task.as_str());
    let cluster_elsewhere = region_and_account(&cluster_arn) != (region, account);
    if cluster_elsewhere || task.own_cluster_arn().is_some_and(|own| own != cluster_arn) {
        return Err(EventError::ClusterMismatch { task: arn, cluster_arn });
    }
    for (field, found, expected) in [("region", &event.region, region), ("account", &event.account, account)]
    {
        if found != expected {
            let (found, expected) = (found.clone(), expected.to_owned());
            return Err(EventError::ElsewhereThanItsTask { field, found, expected, task: arn });
        }
    }
    Ok(TaskStateChange {
        task,
        cluster_arn,
        desired_status: detail.desired_status.ok_or(EventError::Missing("desiredStatus"))?,
        last_status: detail.last_status.ok_or(EventError::Missing("lastStatus"))?,
    })
}

/// The region and account of an ARN (`arn:<partition>:<service>:<region>:<account>:…`).
fn region_and_account(arn: &str) -> (&str, &str) {
    let mut fields = arn.split(':').skip(3);
    (fields.next().unwrap_or_default(), fields.next().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK: &str = "arn:aws:ecs:us-east-1:123456789012:task/web/0123456789abcdef0123456789abcdef";
    const CLUSTER: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/web";

    fn event(detail: serde_json::Value) -> String {
        serde_json::json!({
            "version": "0", "id": "7c8b6a2e-0000-4000-8000-000000000000", "detail-type": DETAIL_TYPE,
            "source": SOURCE, "account": "123456789012", "time": "2026-11-26T10:00:00Z",
            "region": "us-east-1", "resources": [TASK], "detail": detail,
        })
        .to_string()
    }

    #[test]
    fn a_stopping_task_is_read_from_the_documented_shape() {
        let body = event(serde_json::json!({
            "taskArn": TASK, "clusterArn": CLUSTER, "desiredStatus": "STOPPED", "lastStatus": "RUNNING",
            "version": 3, "stoppedReason": "Task stopped by user", "containers": [], "someFutureField": 1,
        }));
        let change = parse(&body).unwrap();
        assert_eq!(change.task.as_str(), TASK);
        assert_eq!(change.cluster_arn, CLUSTER);
        assert!(change.is_stopping());
        let running = event(serde_json::json!({
            "taskArn": TASK, "clusterArn": CLUSTER, "desiredStatus": "RUNNING", "lastStatus": "RUNNING",
        }));
        assert!(!parse(&running).unwrap().is_stopping());
    }

    #[test]
    fn anything_else_is_named_with_what_was_expected() {
        let stopped = |detail: serde_json::Value| parse(&event(detail)).unwrap_err().to_string();
        assert!(parse("{not json").unwrap_err().to_string().starts_with("not a JSON EventBridge event"));
        let scheduled = serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event"});
        assert!(parse(&scheduled.to_string()).unwrap_err().to_string().contains("expected \"aws.ecs\""));
        assert_eq!(
            stopped(serde_json::json!({"clusterArn": CLUSTER, "desiredStatus": "STOPPED"})),
            "the event's detail has no taskArn"
        );
        assert!(
            stopped(serde_json::json!({"taskArn": "task/1", "clusterArn": CLUSTER}))
                .contains("is not a task ARN")
        );
        let other_cluster = "arn:aws:ecs:us-east-1:123456789012:cluster/batch";
        let elsewhere = |envelope_field: &str, value: &str| {
            let mut event: serde_json::Value = serde_json::from_str(&event(serde_json::json!({
                "taskArn": TASK, "clusterArn": CLUSTER, "desiredStatus": "STOPPED", "lastStatus": "STOPPED",
            })))
            .unwrap();
            event[envelope_field] = value.into();
            parse(&event.to_string()).unwrap_err().to_string()
        };
        assert!(elsewhere("account", "111122223333").contains("the event's account is \"111122223333\""));
        assert!(elsewhere("region", "eu-west-1").contains("the event's region is \"eu-west-1\""));
        let not_an_ecs_id = "arn:aws:ecs:us-east-1:123456789012:task/web/not-hex";
        assert!(
            stopped(serde_json::json!({"taskArn": not_an_ecs_id, "clusterArn": CLUSTER}))
                .contains("not one ECS issues")
        );
        let old_format_elsewhere = "arn:aws:ecs:us-east-1:999999999999:task/0123456789abcdef0123456789abcdef";
        assert!(
            stopped(serde_json::json!({
                "taskArn": old_format_elsewhere, "clusterArn": CLUSTER, "desiredStatus": "STOPPED", "lastStatus": "STOPPED",
            }))
            .contains("does not belong to the event's cluster")
        );
        assert!(
            stopped(serde_json::json!({
                "taskArn": TASK, "clusterArn": other_cluster, "desiredStatus": "STOPPED", "lastStatus": "STOPPED",
            }))
            .contains("does not belong to the event's cluster")
        );
    }
}
