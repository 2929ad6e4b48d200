//! ECS task state change events, and the SQS batches Lambda hands the Withdrawer (issue 13): the
//! events are built from what moto's ECS says about a task, shaped as ECS sends them to EventBridge,
//! and delivered as EventBridge puts them on an SQS queue and Lambda polls them.
//!
//! The event's shape follows AWS's example in the Amazon ECS Developer Guide, "Amazon ECS task state
//! change events" (<https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_task_events.html>;
//! the same example in the archived `awsdocs/amazon-ecs-developer-guide`, `doc_source/ecs_cwe_events.md`):
//! the envelope (`version` "0", `id`, `detail-type` "ECS Task State Change", `source` "aws.ecs",
//! `account`, `time`, `region`, `resources` [the task ARN]) around a `detail` that "resembles the Task
//! object that is returned from a DescribeTasks API operation", with camelCase fields, ISO string
//! timestamps where DescribeTasks has UNIX ones, and an integer `version` that ECS increments on every
//! change of the task (so duplicates carry the same one). [`task_state_change`] takes `detail` from
//! moto's DescribeTasks answer and fills in what moto leaves out the way ECS does for an EC2 task that
//! StopTask stopped: `launchType` "EC2" (moto answers ""), `availabilityZone` (the container
//! instance's EC2 placement), `createdAt` (moto has none: `startedAt`), `updatedAt`, and, once the
//! task stops, `stoppingAt`, `stoppedAt`, `executionStoppedAt`, `stopCode` "UserInitiated" and the
//! containers' `lastStatus` STOPPED (moto keeps them RUNNING); `overrides` lists each container by
//! name as in the example (moto answers `{}`).
//!
//! The SQS batch is the Lambda Developer Guide's, "Using Lambda with Amazon SQS" (example standard
//! queue message event): `Records` of `messageId`, `receiptHandle`, `body` (here the event's JSON text,
//! as EventBridge writes it to an SQS target), `attributes`, `messageAttributes`, `md5OfBody`,
//! `eventSource` "aws:sqs", `eventSourceARN`, `awsRegion`. The function answers with the partial batch
//! response of "Handling errors for an SQS event source in Lambda" (`batchItemFailures`), read by
//! [`batch_item_failures`].

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aws_sdk_ecs::primitives::DateTime;
use aws_sdk_ecs::types::Task;
use serde_json::{Value, json};

use crate::ecs::{Fleet, PlacedTask};

/// The queue the harness pretends the events came through.
pub const QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:ecssd-task-stops";
/// Who SQS says sent the messages (the Lambda Developer Guide's example value).
const SENDER_ID: &str = "AIDAIENQZJOLO23YVJ4VO";

/// The "ECS Task State Change" event ECS sends for `task` as moto describes it now, with `version` as
/// the task's version in `detail` (ECS increments it per change; the caller counts).
pub async fn task_state_change(fleet: &Fleet, task: &PlacedTask, version: i64) -> anyhow::Result<Value> {
    let described =
        fleet.ecs.describe_tasks().cluster(&task.cluster_arn).tasks(&task.task_arn).send().await?;
    let found = described.tasks().first().with_context(|| format!("ECS does not know {}", task.task_arn))?;
    let zone = availability_zone(fleet, found).await?;
    Ok(envelope(detail(found, zone, version, now())))
}

/// `event` with the task's `desiredStatus` and `lastStatus` replaced, and the fields that go with them
/// made to agree as ECS's would: containers' `lastStatus`, and the stop's fields (`stoppingAt`,
/// `stoppedReason`, `stopCode` once a stop is asked for; `stoppedAt`, `executionStoppedAt`, exit codes
/// once the task has stopped). E.g. ("STOPPED", "RUNNING") is ECS's first event of a StopTask, and
/// ("RUNNING", "RUNNING") a running task's event, of any version the caller sets with [`with_version`].
pub fn with_statuses(mut event: Value, desired: &str, last: &str) -> Value {
    let time = event["detail"]["updatedAt"].clone();
    let detail = &mut event["detail"];
    detail["desiredStatus"] = json!(desired);
    detail["lastStatus"] = json!(last);
    let fields = detail.as_object_mut().expect("an event's detail is an object");
    if desired == "STOPPED" {
        fields.entry("stoppingAt").or_insert_with(|| time.clone());
        fields.entry("stoppedReason").or_insert_with(|| json!("Task stopped by user"));
        fields.entry("stopCode").or_insert_with(|| json!("UserInitiated"));
    } else {
        for field in ["stoppingAt", "stoppedReason", "stopCode"] {
            fields.remove(field);
        }
    }
    if last == "STOPPED" {
        fields.entry("stoppedAt").or_insert_with(|| time.clone());
        fields.entry("executionStoppedAt").or_insert_with(|| time.clone());
    } else {
        fields.remove("stoppedAt");
        fields.remove("executionStoppedAt");
    }
    if let Some(containers) = detail["containers"].as_array_mut() {
        for container in containers {
            container["lastStatus"] = json!(last);
            let container = container.as_object_mut().expect("a container is an object");
            if last == "STOPPED" {
                container.entry("exitCode").or_insert(json!(0));
            } else {
                container.remove("exitCode");
            }
        }
    }
    event
}

/// `event` as ECS sends it at another `version` of the task (a fresh event id: another event).
pub fn with_version(mut event: Value, version: i64) -> Value {
    event["detail"]["version"] = json!(version);
    event["id"] = json!(uuid());
    event
}

/// The SQS event Lambda gives the function for one batch of messages with these bodies, in order:
/// each message with its own id (see [`message_ids`]), from the harness's pretend queue ([`QUEUE_ARN`]).
pub fn sqs_event(bodies: &[String]) -> Value {
    let sent = now_millis();
    let messages: Vec<SqsMessage> = bodies
        .iter()
        .map(|body| SqsMessage {
            message_id: uuid(),
            receipt_handle: receipt_handle(),
            body: body.clone(),
            attributes: json!({
                "ApproximateReceiveCount": "1",
                "SentTimestamp": sent.to_string(),
                "SenderId": SENDER_ID,
                "ApproximateFirstReceiveTimestamp": (sent + 3).to_string(),
            }),
        })
        .collect();
    sqs_event_of(&messages, QUEUE_ARN)
}

/// One message as SQS's ReceiveMessage gives it, for [`sqs_event_of`].
#[derive(Debug, Clone)]
pub struct SqsMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// The message's system attributes (`ApproximateReceiveCount`, `SentTimestamp`, `SenderId`,
    /// `ApproximateFirstReceiveTimestamp`), as strings.
    pub attributes: Value,
}

/// The SQS event Lambda gives the function for `messages` received from the queue `queue_arn`, in
/// order: each record the message as received, `md5OfBody` its body's MD5, no message attributes.
pub fn sqs_event_of(messages: &[SqsMessage], queue_arn: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|message| {
            json!({
                "messageId": message.message_id,
                "receiptHandle": message.receipt_handle,
                "body": message.body,
                "attributes": message.attributes,
                "messageAttributes": {},
                "md5OfBody": md5_hex(message.body.as_bytes()),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": queue_arn.split(':').nth(3).unwrap_or("us-east-1"),
            })
        })
        .collect();
    json!({ "Records": records })
}

/// [`sqs_event`] for events as EventBridge writes them to the queue: each event's JSON text is a body.
pub fn sqs_batch(events: &[Value]) -> Value {
    let bodies: Vec<String> = events.iter().map(Value::to_string).collect();
    sqs_event(&bodies)
}

/// The `messageId`s of an [`sqs_event`], in order.
pub fn message_ids(sqs_event: &Value) -> Vec<String> {
    sqs_event["Records"]
        .as_array()
        .map(|records| records.iter().filter_map(|r| r["messageId"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// The message ids a partial batch response (`{"batchItemFailures": [{"itemIdentifier": id}, ...]}`)
/// asks to retry; an error if the answer is not one.
pub fn batch_item_failures(answer: &Value) -> anyhow::Result<BTreeSet<String>> {
    let failures = answer
        .get("batchItemFailures")
        .and_then(Value::as_array)
        .with_context(|| format!("not a partial batch response (no batchItemFailures list): {answer}"))?;
    failures
        .iter()
        .map(|f| {
            f.get("itemIdentifier")
                .and_then(Value::as_str)
                .map(String::from)
                .with_context(|| format!("a batch item failure without itemIdentifier: {answer}"))
        })
        .collect()
}

/// A container's network interface in an event as in DescribeTasks (API reference, "NetworkInterface":
/// `attachmentId`, `privateIpv4Address`, `ipv6Address`), each field only when ECS gives it: an
/// IPv6-only task's has no IPv4 address, an IPv4 one's no IPv6 address.
fn network_interface(interface: &aws_sdk_ecs::types::NetworkInterface) -> Value {
    let fields = [
        ("attachmentId", interface.attachment_id()),
        ("privateIpv4Address", interface.private_ipv4_address()),
        ("ipv6Address", interface.ipv6_address()),
    ];
    fields.into_iter().filter_map(|(name, value)| Some((name.to_owned(), json!(value?)))).collect()
}

/// The EventBridge envelope around a task's `detail`.
fn envelope(detail: Value) -> Value {
    let task_arn = detail["taskArn"].as_str().unwrap_or_default().to_owned();
    // arn:aws:ecs:<region>:<account>:task/...
    let mut parts = task_arn.split(':').skip(3);
    let region = parts.next().unwrap_or_default().to_owned();
    let account = parts.next().unwrap_or_default().to_owned();
    let time = detail["updatedAt"].as_str().map(|t| format!("{}Z", &t[..19])).unwrap_or_default();
    json!({
        "version": "0",
        "id": uuid(),
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": account,
        "time": time,
        "region": region,
        "resources": [task_arn],
        "detail": detail,
    })
}

/// The event's `detail` from ECS's description of the task, at `version`, changed at `now`.
fn detail(task: &Task, availability_zone: Option<String>, version: i64, now: DateTime) -> Value {
    let last = task.last_status().unwrap_or_default();
    let desired = task.desired_status().unwrap_or_default();
    let containers: Vec<Value> = task
        .containers()
        .iter()
        .map(|c| {
            let bindings: Vec<Value> = c
                .network_bindings()
                .iter()
                .map(|b| {
                    json!({
                        "bindIP": b.bind_ip(),
                        "containerPort": b.container_port(),
                        "hostPort": b.host_port(),
                        "protocol": b.protocol().map(|p| p.as_str()),
                    })
                })
                .collect();
            let mut container = json!({
                "containerArn": c.container_arn(),
                "lastStatus": c.last_status(),
                "name": c.name(),
                "image": c.image(),
                "taskArn": c.task_arn(),
                "networkBindings": bindings,
                "networkInterfaces": c.network_interfaces().iter().map(network_interface).collect::<Vec<_>>(),
                "cpu": c.cpu(),
            });
            if let Some(memory) = c.memory() {
                container["memory"] = json!(memory);
            }
            container
        })
        .collect();
    let attachments: Vec<Value> = task
        .attachments()
        .iter()
        .map(|a| {
            json!({
                "id": a.id(),
                "type": a.r#type(),
                "status": a.status(),
                "details": a.details().iter().map(|d| json!({"name": d.name(), "value": d.value()})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let overrides = task.overrides().map(|o| o.container_overrides()).unwrap_or_default();
    let overrides: Vec<Value> = if overrides.is_empty() {
        task.containers().iter().map(|c| json!({"name": c.name()})).collect()
    } else {
        overrides.iter().map(|o| json!({"name": o.name()})).collect()
    };
    let started = task.started_at().map(iso);
    let launch_type = task.launch_type().map(|l| l.as_str()).filter(|l| !l.is_empty()).unwrap_or("EC2");
    let mut detail = json!({
        "attachments": attachments,
        "availabilityZone": availability_zone,
        "clusterArn": task.cluster_arn(),
        "containerInstanceArn": task.container_instance_arn(),
        "containers": containers,
        "createdAt": task.created_at().map(iso).or_else(|| started.clone()),
        "launchType": launch_type,
        "desiredStatus": desired,
        "group": task.group(),
        "lastStatus": last,
        "overrides": {"containerOverrides": overrides},
        "startedAt": started,
        "updatedAt": iso(&now),
        "taskArn": task.task_arn(),
        "taskDefinitionArn": task.task_definition_arn(),
        "version": version,
    });
    if let Some(started_by) = task.started_by().filter(|s| !s.is_empty()) {
        detail["startedBy"] = json!(started_by);
    }
    if let Some(reason) = task.stopped_reason().filter(|s| !s.is_empty()) {
        detail["stoppedReason"] = json!(reason);
    }
    if let Some(code) = task.stop_code() {
        detail["stopCode"] = json!(code.as_str());
    }
    for (field, at) in [
        ("stoppingAt", task.stopping_at()),
        ("stoppedAt", task.stopped_at()),
        ("executionStoppedAt", task.execution_stopped_at()),
    ] {
        if let Some(at) = at {
            detail[field] = json!(iso(at));
        }
    }
    let event = json!({ "detail": detail });
    // What moto leaves out of a task it has stopped (or been asked to stop), as ECS would say it.
    with_statuses(event, desired, last)["detail"].take()
}

/// The availability zone of the task's container instance (its EC2 instance's placement): ECS gives
/// one, moto does not.
async fn availability_zone(fleet: &Fleet, task: &Task) -> anyhow::Result<Option<String>> {
    if let Some(zone) = task.availability_zone() {
        return Ok(Some(zone.to_owned()));
    }
    let (Some(cluster), Some(instance)) = (task.cluster_arn(), task.container_instance_arn()) else {
        return Ok(None);
    };
    let instances = fleet
        .ecs
        .describe_container_instances()
        .cluster(cluster)
        .container_instances(instance)
        .send()
        .await?;
    let Some(ec2_id) = instances.container_instances().first().and_then(|ci| ci.ec2_instance_id()) else {
        return Ok(None);
    };
    let ec2 = fleet.ec2.describe_instances().instance_ids(ec2_id).send().await?;
    Ok(ec2
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find_map(|i| i.placement().and_then(|p| p.availability_zone()))
        .map(String::from))
}

fn now() -> DateTime {
    DateTime::from(SystemTime::now())
}

fn now_millis() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default()
}

/// `2020-01-23T17:57:34.402Z`, as ECS writes timestamps in events.
fn iso(at: &DateTime) -> String {
    let secs = at.secs();
    let (days, of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        at.subsec_nanos() / 1_000_000
    )
}

/// (year, month, day) of a day counted from 1970-01-01 (H. Hinnant, "chrono-Compatible Low-Level Date
/// Algorithms", `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// A random UUID (version 4), as message and event ids are.
fn uuid() -> String {
    let bits = fastrand::u128(..) & !(0xf << 76) & !(0x3 << 62) | (0x4 << 76) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// An opaque receipt handle, base64 like SQS's.
fn receipt_handle() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let tail: String = (0..120).map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())])).collect();
    format!("AQEB{tail}")
}

/// MD5 of `data` in lowercase hex (RFC 1321), as SQS reports `md5OfBody`.
fn md5_hex(data: &[u8]) -> String {
    const SHIFTS: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
    // K[i] = floor(|sin(i + 1)| * 2^32): checked by the test vectors below.
    let k: Vec<u32> = (0..64).map(|i| ((f64::from(i + 1)).sin().abs() * 4_294_967_296.0) as u32).collect();
    let mut message = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_le_bytes());
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    for chunk in message.chunks(64) {
        let m: Vec<u32> = chunk.chunks(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect();
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let rotated = a.wrapping_add(f).wrapping_add(k[i]).wrapping_add(m[g]);
            (a, d, c) = (d, c, b);
            b = b.wrapping_add(rotated.rotate_left(SHIFTS[(i / 16) * 4 + i % 4]));
        }
        for (word, add) in state.iter_mut().zip([a, b, c, d]) {
            *word = word.wrapping_add(add);
        }
    }
    state.iter().flat_map(|w| w.to_le_bytes()).map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_rfc_1321_and_sqs() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            md5_hex(b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
        // The Lambda Developer Guide's SQS example: body "test".
        assert_eq!(md5_hex(b"test"), "098f6bcd4621d373cade4e832627b4f6");
    }

    #[test]
    fn timestamps_are_iso_strings_like_ecs_events() {
        assert_eq!(iso(&DateTime::from_millis(1_579_802_254_402)), "2020-01-23T17:57:34.402Z");
        assert_eq!(iso(&DateTime::from_secs(951_782_400)), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn message_ids_are_uuids_and_unique() {
        let event = sqs_event(&["a".into(), "a".into()]);
        let ids = message_ids(&event);
        assert_eq!(ids.len(), 2);
        assert_ne!(ids[0], ids[1]);
        assert!(ids.iter().all(|id| id.len() == 36 && id.as_bytes()[14] == b'4'), "{ids:?}");
    }
}
