//! The registration queue (issue 26) on the bed: an SQS queue in moto, the batcher (the workspace-built
//! `bootstrap` with `ECSSD_ROLE=batcher`) as the function of the Lambda runtime emulator
//! ([`LambdaEmulator`]), and between them an emulation of Lambda's SQS event source mapping, which
//! AWS runs and the bed must do itself.
//!
//! What the mapping does, and what the bed follows, from the Lambda Developer Guide:
//! - "Using Lambda with Amazon SQS" (<https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html>),
//!   "Understanding polling and batching behavior": Lambda polls the queue (long polling,
//!   `ReceiveMessage`, at most 10 messages a call) and invokes the function synchronously with an event
//!   holding a batch of messages, one invocation per batch; when the function has processed a batch,
//!   Lambda deletes its messages from the queue. The event is the example standard queue message event
//!   of that page ([`sqs_event_of`]), with this queue's ARN as `eventSourceARN`.
//! - "Lambda parameters for Amazon SQS event source mappings"
//!   (<https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-parameters.html>) and "Batching
//!   behavior" of "Lambda event source mappings"
//!   (<https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventsourcemapping.html>): a batch is sent
//!   when the batching window (`MaximumBatchingWindowInSeconds`) ends, when it holds `BatchSize`
//!   messages (at most 10,000 for a standard queue, a window of at least 1 s being required above 10),
//!   or when its payload reaches 6 MB. The bed uses what the stack sets for the registration queue:
//!   [`BATCHING_WINDOW`] 1 s, [`BATCH_SIZE`] 1,000.
//! - "Handling errors for an SQS event source in Lambda"
//!   (<https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html>), with
//!   `ReportBatchItemFailures`: the messages named in the answer's `batchItemFailures` stay in the queue
//!   and come back once their visibility timeout passes, the others are deleted; an empty or null list,
//!   or an empty or null answer, is complete success; a function error, an answer that is not JSON, or
//!   an `itemIdentifier` that is empty, null or not a message of the batch fails the whole batch (every
//!   message comes back after the visibility timeout).
//!
//! Where the bed chooses, it says so:
//! - The queue and the mapping are the stack's (template.yaml, `Registrations` and
//!   `BatcherRegistrations`): visibility timeout 180 s, retention 60 s, and the batcher paced at 1
//!   Route53 request/s (`ECSSD_ROUTE53_REQUESTS_PER_SECOND`, the stack's share at 5 requests/s).
//! - One poller and one invocation at a time, where the stack allows two (`ScalingConfig`
//!   `MaximumConcurrency: 2`): the emulator runs one function process. A burst's batches come one
//!   after another, each paced alone; the stack's two share the account's rate.
//! - The batching window starts with the first message a poll returns. (For SQS the guide says the next
//!   window begins when the previous invocation completes; on a queue that was idle for longer than a
//!   window that gives the first message of a burst a batch of its own, one Route53 request more.)
//! - While no batch is being gathered the poller long-polls 1 s at a time (Lambda: up to 20 s), so that
//!   [`Batcher::pause`] takes effect within a second; within a window it polls without waiting, every
//!   100 ms at most, until the window ends.
//! - Pausing is disabling the mapping (`Enabled: false`): no message is received while paused, a batch
//!   already being gathered is still invoked, and messages wait in the queue.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::http;
use crate::moto::Moto;
use crate::sweeper::{LambdaEmulator, base_env};
use crate::task_events::{SqsMessage, sqs_event_of};

/// The stack's `MaximumBatchingWindowInSeconds` for the registration queue.
pub const BATCHING_WINDOW: Duration = Duration::from_secs(1);
/// The stack's `BatchSize` for the registration queue.
pub const BATCH_SIZE: usize = 1_000;
/// The most messages one `ReceiveMessage` returns (SQS API reference, `MaxNumberOfMessages`: 1-10).
const RECEIVE_MAX: usize = 10;
/// The payload limit of a synchronous invocation, which ends a batch.
const PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;
/// The queue's visibility timeout: how long a message named in `batchItemFailures` (or of a failed
/// batch) stays out of sight (the stack's: 6 x the batcher's 30 s timeout, as Lambda asks).
pub const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the queue keeps a message (the stack's, SQS's least: a handoff lives 15 s).
const RETENTION: Duration = Duration::from_secs(60);
/// The batcher's pace (`ECSSD_ROUTE53_REQUESTS_PER_SECOND`): the stack's at 5 requests/s for the account.
pub const BATCHER_REQUESTS_PER_SECOND: &str = "1";
/// The long poll while no batch is being gathered.
const IDLE_WAIT_SECONDS: i32 = 1;
/// How often a batching window polls again after an empty answer.
const WINDOW_POLL: Duration = Duration::from_millis(100);

/// The variable that gives a sidecar the registration queue.
pub const QUEUE_URL_ENV: &str = "ECSSD_REGISTRATION_QUEUE_URL";

/// What one invocation was given and answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub messages: usize,
    /// Messages left in the queue to come back: those named in `batchItemFailures`, or the whole batch
    /// when the answer failed it.
    pub returned: usize,
    /// The answer failed the whole batch (a function error, or an answer Lambda does not accept).
    pub failed: bool,
}

/// The registration queue, its batcher, and the poller between them; stopped when dropped.
#[derive(Debug)]
pub struct Batcher {
    queue_url: String,
    queue_arn: String,
    lambda: LambdaEmulator,
    control: Arc<Control>,
    poller: JoinHandle<()>,
}

#[derive(Debug)]
struct Control {
    /// Whether the mapping is enabled (the poller may receive).
    enabled: watch::Sender<bool>,
    /// Whether the poller has seen it disabled and holds no message.
    paused: watch::Sender<bool>,
    invocations: Mutex<Vec<Invocation>>,
    /// What went wrong in the poller (a failed SQS call, an invocation that did not answer): shown by
    /// [`Batcher::problems`] and when a test fails.
    problems: Mutex<Vec<String>>,
    stopping: AtomicBool,
}

impl Batcher {
    /// Creates the queue `ecssd-registrations` in `moto` and starts the batcher for the zone `zone_id`
    /// (the bed's domain, owner `default`) with `extra` settings (they win over the bed's), and the
    /// poller, enabled.
    pub async fn start(moto: &Moto, zone_id: &str, extra: &[(&str, &str)]) -> anyhow::Result<Self> {
        let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config());
        let created = sqs
            .create_queue()
            .queue_name("ecssd-registrations")
            .attributes(QueueAttributeName::VisibilityTimeout, VISIBILITY_TIMEOUT.as_secs().to_string())
            .attributes(QueueAttributeName::MessageRetentionPeriod, RETENTION.as_secs().to_string())
            .send()
            .await
            .context("creating the registration queue in moto")?;
        let queue_url = created.queue_url().context("CreateQueue gave no URL")?.to_owned();
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await?;
        let queue_arn = attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .context("GetQueueAttributes gave no QueueArn")?
            .clone();

        let mut env = base_env(moto);
        env.push(("ECSSD_ROLE".into(), "batcher".into()));
        env.push(("ECSSD_ZONE_ID".into(), zone_id.into()));
        env.push(("ECSSD_ROUTE53_REQUESTS_PER_SECOND".into(), BATCHER_REQUESTS_PER_SECOND.into()));
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let lambda = LambdaEmulator::start(&env).await?;

        let control = Arc::new(Control {
            enabled: watch::Sender::new(true),
            paused: watch::Sender::new(false),
            invocations: Mutex::new(Vec::new()),
            problems: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        });
        let poller = Poller {
            sqs,
            queue_url: queue_url.clone(),
            queue_arn: queue_arn.clone(),
            invoke_url: lambda.invoke_url(),
            control: control.clone(),
        };
        let poller = tokio::spawn(poller.run());
        Ok(Self { queue_url, queue_arn, lambda, control, poller })
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    pub fn queue_arn(&self) -> &str {
        &self.queue_arn
    }

    /// The sidecar's setting for this queue: `ECSSD_REGISTRATION_QUEUE_URL` and the URL.
    pub fn sidecar_env(&self) -> (String, String) {
        (QUEUE_URL_ENV.to_owned(), self.queue_url.clone())
    }

    /// Disables the mapping; returns once the poller holds no message (a batch being gathered is
    /// invoked first), so nothing is received until [`resume`](Self::resume).
    pub async fn pause(&self) -> anyhow::Result<()> {
        self.control.enabled.send_replace(false);
        let mut paused = self.control.paused.subscribe();
        tokio::time::timeout(Duration::from_secs(120), paused.wait_for(|p| *p))
            .await
            .context("the poller did not pause within 120 s")?
            .context("the poller stopped")?;
        Ok(())
    }

    /// Enables the mapping again.
    pub fn resume(&self) {
        self.control.enabled.send_replace(true);
    }

    /// Every invocation so far, in order.
    pub fn invocations(&self) -> Vec<Invocation> {
        self.control.invocations.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// What went wrong in the poller so far.
    pub fn problems(&self) -> Vec<String> {
        self.control.problems.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// What the batcher has logged so far.
    pub fn function_output(&self) -> String {
        self.lambda.function_output()
    }

    /// The batcher's report lines so far ("handed-over registrations written"), each its `report`.
    pub fn reports(&self) -> Vec<Value> {
        self.function_output()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|v| v["message"] == "handed-over registrations written")
            .filter_map(|v| serde_json::from_str(v["report"].as_str()?).ok())
            .collect()
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.control.stopping.store(true, Ordering::SeqCst);
        self.poller.abort();
        if std::thread::panicking() {
            eprintln!(
                "[registration queue poller] invocations {:?}, problems {:?}",
                self.invocations(),
                self.problems()
            );
        }
    }
}

/// Lambda's side of the mapping: receives, gathers, invokes, deletes.
struct Poller {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    queue_arn: String,
    invoke_url: String,
    control: Arc<Control>,
}

impl Poller {
    async fn run(self) {
        let mut enabled = self.control.enabled.subscribe();
        loop {
            if !*enabled.borrow_and_update() {
                self.control.paused.send_replace(true);
                if enabled.wait_for(|e| *e).await.is_err() {
                    return;
                }
                self.control.paused.send_replace(false);
                continue;
            }
            match self.gather().await {
                Ok(batch) if batch.is_empty() => {}
                Ok(batch) => self.deliver(batch).await,
                Err(e) => {
                    self.problem(format!("ReceiveMessage: {e:#}"));
                    // Lambda's poller backs off after an error; the bed's queue is local.
                    tokio::time::sleep(WINDOW_POLL).await;
                }
            }
            if self.control.stopping.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    /// One batch: empty when the idle long poll found nothing (or the mapping was disabled), else
    /// what arrived within the batching window of its first message, up to the batch size and payload.
    async fn gather(&self) -> anyhow::Result<Vec<SqsMessage>> {
        let mut batch: Vec<SqsMessage> = Vec::new();
        let mut payload = 0;
        let mut window_end: Option<Instant> = None;
        loop {
            let room = (BATCH_SIZE - batch.len()).min(RECEIVE_MAX);
            let wait = match window_end {
                None if !*self.control.enabled.borrow() => return Ok(batch),
                None => IDLE_WAIT_SECONDS,
                Some(end) if Instant::now() >= end => return Ok(batch),
                Some(_) => 0,
            };
            let received = self.receive(room, wait).await?;
            if received.is_empty() {
                match window_end {
                    None => return Ok(batch),
                    Some(end) => {
                        tokio::time::sleep(WINDOW_POLL.min(end.saturating_duration_since(Instant::now())))
                            .await;
                        continue;
                    }
                }
            }
            window_end.get_or_insert_with(|| Instant::now() + BATCHING_WINDOW);
            for message in received {
                payload += message.body.len();
                batch.push(message);
            }
            if batch.len() >= BATCH_SIZE || payload >= PAYLOAD_LIMIT {
                return Ok(batch);
            }
        }
    }

    async fn receive(&self, max: usize, wait_seconds: i32) -> anyhow::Result<Vec<SqsMessage>> {
        let answer = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(i32::try_from(max)?)
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await?;
        let messages = answer.messages().iter().map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone()))).collect())
                .unwrap_or_default();
            SqsMessage {
                message_id: m.message_id().unwrap_or_default().to_owned(),
                receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
                attributes: Value::Object(attributes),
            }
        });
        Ok(messages.collect())
    }

    /// Invokes the function with `batch` and deletes what its answer says was processed.
    async fn deliver(&self, batch: Vec<SqsMessage>) {
        let event = sqs_event_of(&batch, &self.queue_arn);
        let answer = http::post_json(&self.invoke_url, &event).await;
        let returned = match answer {
            Ok(answer) => match retried_ids(&answer, &batch) {
                Ok(ids) => Some(ids),
                Err(why) => {
                    self.problem(format!("the batch of {} failed as a whole: {why}", batch.len()));
                    None
                }
            },
            Err(e) => {
                self.problem(format!("the invocation with {} messages failed: {e:#}", batch.len()));
                None
            }
        };
        let invocation = Invocation {
            messages: batch.len(),
            returned: returned.as_ref().map_or(batch.len(), Vec::len),
            failed: returned.is_none(),
        };
        if let Some(returned) = returned {
            let processed: Vec<&SqsMessage> =
                batch.iter().filter(|m| !returned.contains(&m.message_id)).collect();
            if let Err(e) = self.delete(&processed).await {
                self.problem(format!("DeleteMessageBatch: {e:#}"));
            }
        }
        self.control.invocations.lock().unwrap_or_else(PoisonError::into_inner).push(invocation);
    }

    async fn delete(&self, messages: &[&SqsMessage]) -> anyhow::Result<()> {
        for chunk in messages.chunks(RECEIVE_MAX) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&m.receipt_handle)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let deleted = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await?;
            anyhow::ensure!(deleted.failed().is_empty(), "not deleted: {:?}", deleted.failed());
        }
        Ok(())
    }

    fn problem(&self, problem: String) {
        tracing::warn!(%problem, "registration queue poller");
        self.control.problems.lock().unwrap_or_else(PoisonError::into_inner).push(problem);
    }
}

/// The message ids of `batch` a partial batch response asks to deliver again, as Lambda reads it
/// ("Handling errors for an SQS event source in Lambda", success and failure conditions); an error
/// when the answer fails the whole batch.
fn retried_ids(answer: &Value, batch: &[SqsMessage]) -> Result<Vec<String>, String> {
    if answer.get("errorType").is_some() || answer.get("errorMessage").is_some() {
        return Err(format!("the function failed: {answer}"));
    }
    let failures = match answer {
        Value::Null => return Ok(Vec::new()),
        Value::Object(fields) => match fields.get("batchItemFailures") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(failures)) => failures,
            Some(other) => return Err(format!("batchItemFailures is not a list: {other}")),
        },
        other => return Err(format!("not a partial batch response: {other}")),
    };
    failures
        .iter()
        .map(|failure| match failure.get("itemIdentifier").and_then(Value::as_str) {
            Some(id) if batch.iter().any(|m| m.message_id == id) => Ok(id.to_owned()),
            _ => Err(format!("an itemIdentifier that names no message of the batch: {failure}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str) -> SqsMessage {
        SqsMessage {
            message_id: id.into(),
            receipt_handle: format!("r-{id}"),
            body: "{}".into(),
            attributes: serde_json::json!({}),
        }
    }

    #[test]
    fn partial_batch_responses_are_read_as_lambda_reads_them() {
        let batch = [message("a"), message("b")];
        let read = |answer: Value| retried_ids(&answer, &batch);
        assert_eq!(read(serde_json::json!({"batchItemFailures": []})), Ok(vec![]));
        assert_eq!(read(serde_json::json!({"batchItemFailures": null})), Ok(vec![]));
        assert_eq!(read(serde_json::json!({})), Ok(vec![]));
        assert_eq!(read(Value::Null), Ok(vec![]));
        assert_eq!(
            read(serde_json::json!({"batchItemFailures": [{"itemIdentifier": "b"}]})),
            Ok(vec!["b".into()])
        );
        for whole in [
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "c"}]}),
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": ""}]}),
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": null}]}),
            serde_json::json!({"batchItemFailures": [{"id": "a"}]}),
            serde_json::json!({"errorType": "x", "errorMessage": "boom"}),
            serde_json::json!("ok"),
        ] {
            assert!(read(whole.clone()).is_err(), "{whole} must fail the whole batch");
        }
    }
}
