//! The registration queue (issue 26) on the bed: an SQS queue in moto, the batcher (the workspace-built
//! `bootstrap` with `ECSSD_ROLE=batcher`) as the function of Lambda runtime emulators
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
//! - "Configuring scaling behavior for SQS event source mappings"
//!   (<https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html>): for a standard queue,
//!   when messages are available "Lambda starts processing five batches at a time with five concurrent
//!   invocations of your function"; while messages remain it adds "up to 300 more instances per
//!   minute", up to 1,000 batches at once; the scale-down to as few as 2 concurrent batches "is not
//!   available when you enable the maximum concurrency setting". Its section "Configuring maximum
//!   concurrency for Amazon SQS event sources", and `ScalingConfig`
//!   (<https://docs.aws.amazon.com/lambda/latest/api/API_ScalingConfig.html>): `MaximumConcurrency`
//!   (2 to 1,000) "limits the number of concurrent instances that the Amazon SQS event source can
//!   invoke". The bed runs [`POLLERS`] (five) concurrent `ReceiveMessage` loops and at most
//!   [`MAXIMUM_CONCURRENCY`] (the stack's two) invocations at once, each in a function process of its
//!   own (one [`LambdaEmulator`] each, as Lambda gives each concurrent invocation an instance).
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
//!   `BatcherRegistrations`): visibility timeout 180 s, retention 60 s, `ScalingConfig`
//!   `MaximumConcurrency: 2`, and each batcher paced at 1 Route53 request/s
//!   (`ECSSD_ROUTE53_REQUESTS_PER_SECOND`, the stack's share at 5 requests/s): two invocations at once
//!   offer up to 2 requests/s, as the stack's two do.
//! - The pollers stay at five: the bed does not scale them up (the stack's maximum concurrency of two
//!   would not let more batches be invoked) nor down.
//! - How the pollers' messages become batches is not documented; the bed pools them: every poller
//!   adds what it receives to one batch being gathered, whose window starts with its first message
//!   (for SQS the guide says the next window begins when the previous invocation completes; on a queue
//!   that was idle for longer than a window that gives the first message of a burst a batch of its
//!   own, one Route53 request more). When the window ends (or the batch is full) the batch goes to the
//!   first of the [`MAXIMUM_CONCURRENCY`] function processes that is free, and the next batch is
//!   gathered meanwhile. The pollers hold at most one batch's worth of messages not yet invoked: with
//!   every invocation busy and a full batch waiting, they stop receiving and messages wait in the
//!   queue (Lambda invokes no more than the maximum concurrency, so it has no use for more).
//! - While no batch is being gathered the pollers long-poll 1 s at a time (Lambda: up to 20 s), so
//!   that [`Batcher::pause`] takes effect within a second; within a window each polls without waiting,
//!   every 100 ms at most after an empty answer, until the window ends.
//! - Pausing is disabling the mapping (`Enabled: false`): no message is received while paused, a batch
//!   already being gathered is still invoked when its window ends, and messages wait in the queue.
//! - What each message went through is kept ([`Batcher::timings`]): SQS's `SentTimestamp` and
//!   `ApproximateFirstReceiveTimestamp` (moto's clock, this machine's) and the bed's own clock when the
//!   poller got it, when its invocation started and when it answered, for benchmarks to show where a
//!   handoff's time goes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
/// The concurrent `ReceiveMessage` loops: Lambda's five at the start ("five batches at a time").
pub const POLLERS: usize = 5;
/// The stack's `ScalingConfig` `MaximumConcurrency`: invocations at once, a function process each.
pub const MAXIMUM_CONCURRENCY: usize = 2;
/// The most messages one `ReceiveMessage` returns (SQS API reference, `MaxNumberOfMessages`: 1-10).
const RECEIVE_MAX: usize = 10;
/// The payload limit of a synchronous invocation, which ends a batch.
const PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;
/// The queue's visibility timeout: how long a message named in `batchItemFailures` (or of a failed
/// batch) stays out of sight (the stack's: 6 x the batcher's 30 s timeout, as Lambda asks).
pub const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the queue keeps a message (the stack's, SQS's least).
const RETENTION: Duration = Duration::from_secs(60);
/// The stack's `Timeout` for the batcher.
const BATCHER_TIMEOUT_SECONDS: &str = "30";
/// The batcher's pace (`ECSSD_ROUTE53_REQUESTS_PER_SECOND`): the stack's at 5 requests/s for the account.
pub const BATCHER_REQUESTS_PER_SECOND: &str = "1";
/// The long poll while no batch is being gathered.
const IDLE_WAIT_SECONDS: i32 = 1;
/// How often a poller polls again within a batching window after an empty answer.
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
    /// Which function process (0 to [`MAXIMUM_CONCURRENCY`] - 1) served it.
    pub instance: usize,
    /// From the invoke request to the function's answer.
    pub took: Duration,
}

/// What one message delivered to the function went through, in ms since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageTiming {
    /// SQS's `SentTimestamp` (moto's clock).
    pub sent_ms: Option<u64>,
    /// SQS's `ApproximateFirstReceiveTimestamp` (moto's clock).
    pub first_received_ms: Option<u64>,
    /// SQS's `ApproximateReceiveCount` when this delivery received it.
    pub receive_count: Option<u64>,
    /// When the poller's `ReceiveMessage` answered with it (the bed's clock).
    pub received_ms: u64,
    /// When its invocation started.
    pub invoked_ms: u64,
    /// When its invocation answered.
    pub answered_ms: u64,
    /// The handoff's `not_after_ms`, when the body is one.
    pub not_after_ms: Option<u64>,
}

/// The registration queue, its batcher, and the pollers between them; stopped when dropped.
#[derive(Debug)]
pub struct Batcher {
    queue_url: String,
    queue_arn: String,
    lambdas: Vec<LambdaEmulator>,
    control: Arc<Control>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Debug)]
struct Control {
    state: Mutex<State>,
    /// Bumped whenever `state` changes: what pollers, invokers and [`Batcher::pause`] wait on.
    changed: watch::Sender<u64>,
    invocations: Mutex<Vec<Invocation>>,
    timings: Mutex<Vec<MessageTiming>>,
    /// What went wrong in the mapping (a failed SQS call, an invocation that did not answer): shown
    /// by [`Batcher::problems`] and when a test fails.
    problems: Mutex<Vec<String>>,
    stopping: AtomicBool,
}

#[derive(Debug)]
struct State {
    /// Whether the mapping is enabled (the pollers may receive).
    enabled: bool,
    /// Received and not yet invoked, in order, each with when it was received; the first ones are the
    /// batch being gathered.
    received: VecDeque<Received>,
    /// `ReceiveMessage` calls under way.
    receiving: usize,
    /// Invocations under way.
    invoking: usize,
}

#[derive(Debug)]
struct Received {
    message: SqsMessage,
    at: Instant,
    at_ms: u64,
}

impl State {
    /// Whether the mapping is disabled and holds no message.
    fn paused(&self) -> bool {
        !self.enabled && self.received.is_empty() && self.receiving == 0 && self.invoking == 0
    }

    /// When the batch being gathered is due: its window's end, or now when it is full.
    fn due(&self) -> Option<Instant> {
        let first = self.received.front()?;
        let payload: usize = self.received.iter().map(|r| r.message.body.len()).sum();
        if self.received.len() >= BATCH_SIZE || payload >= PAYLOAD_LIMIT {
            return Some(first.at);
        }
        Some(first.at + BATCHING_WINDOW)
    }

    /// The batch being gathered, when it is due: at most [`BATCH_SIZE`] messages and the payload limit.
    fn take_due(&mut self) -> Option<Vec<Received>> {
        if self.due()? > Instant::now() {
            return None;
        }
        let mut batch = Vec::new();
        let mut payload = 0;
        while let Some(next) = self.received.front() {
            let fits = batch.len() < BATCH_SIZE
                && (batch.is_empty() || payload + next.message.body.len() <= PAYLOAD_LIMIT);
            if !fits {
                break;
            }
            payload += next.message.body.len();
            batch.extend(self.received.pop_front());
        }
        Some(batch)
    }
}

impl Control {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the state and wakes whoever waits for a change.
    fn update<T>(&self, change: impl FnOnce(&mut State) -> T) -> T {
        let result = change(&mut self.state());
        self.bump();
        result
    }

    /// Wakes whoever waits for a change of `state`.
    fn bump(&self) {
        self.changed.send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    fn problem(&self, problem: String) {
        tracing::warn!(%problem, "registration queue event source mapping");
        self.problems.lock().unwrap_or_else(PoisonError::into_inner).push(problem);
    }
}

impl Batcher {
    /// Creates the queue `ecssd-registrations` in `moto` and starts the batcher for the zone `zone_id`
    /// (the bed's domain, owner `default`) with `extra` settings (they win over the bed's), in
    /// [`MAXIMUM_CONCURRENCY`] function processes, and the mapping, enabled.
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
        // The stack's Timeout: the emulator's invocations carry a deadline of 600 s, so the batcher's
        // own limit is what ends a batch, as Lambda's timeout would.
        env.push(("ECSSD_TIME_LIMIT_SECONDS".into(), BATCHER_TIMEOUT_SECONDS.into()));
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let lambdas: Vec<LambdaEmulator> =
            futures_util::future::try_join_all((0..MAXIMUM_CONCURRENCY).map(|_| LambdaEmulator::start(&env)))
                .await?;

        let control = Arc::new(Control {
            state: Mutex::new(State { enabled: true, received: VecDeque::new(), receiving: 0, invoking: 0 }),
            changed: watch::Sender::new(0),
            invocations: Mutex::new(Vec::new()),
            timings: Mutex::new(Vec::new()),
            problems: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        });
        let mapping = Arc::new(Mapping {
            sqs,
            queue_url: queue_url.clone(),
            queue_arn: queue_arn.clone(),
            control: control.clone(),
        });
        let mut tasks: Vec<JoinHandle<()>> =
            (0..POLLERS).map(|_| tokio::spawn(mapping.clone().poll())).collect();
        tasks.extend(
            lambdas.iter().enumerate().map(|(instance, lambda)| {
                tokio::spawn(mapping.clone().invoke(instance, lambda.invoke_url()))
            }),
        );
        Ok(Self { queue_url, queue_arn, lambdas, control, tasks })
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

    /// Disables the mapping; returns once it holds no message (a batch being gathered is invoked
    /// first), so nothing is received until [`resume`](Self::resume).
    pub async fn pause(&self) -> anyhow::Result<()> {
        let mut changed = self.control.changed.subscribe();
        self.control.update(|state| state.enabled = false);
        let paused = async {
            loop {
                if self.control.state().paused() {
                    return Ok(());
                }
                changed.changed().await.context("the mapping stopped")?;
            }
        };
        tokio::time::timeout(Duration::from_secs(120), paused)
            .await
            .context("the mapping did not pause within 120 s")?
    }

    /// Enables the mapping again.
    pub fn resume(&self) {
        self.control.update(|state| state.enabled = true);
    }

    /// Every invocation so far, in the order they answered.
    pub fn invocations(&self) -> Vec<Invocation> {
        self.control.invocations.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// What each message delivered so far went through, in the order their invocations answered.
    pub fn timings(&self) -> Vec<MessageTiming> {
        self.control.timings.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// What went wrong in the mapping so far.
    pub fn problems(&self) -> Vec<String> {
        self.control.problems.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// What the batcher's function processes have logged so far, one after the other.
    pub fn function_output(&self) -> String {
        self.lambdas.iter().map(LambdaEmulator::function_output).collect::<Vec<_>>().join("")
    }

    /// One line of what the batcher did so far: invocations and their batches, handoffs written,
    /// expired, dropped, refused and to be delivered again, its change requests, and the problems of
    /// the bed's event source mapping.
    pub fn summary(&self) -> String {
        let invocations = self.invocations();
        let reports = self.reports();
        let sum = |field: &str| reports.iter().map(|r| r[field].as_u64().unwrap_or_default()).sum::<u64>();
        let count =
            |field: &str| reports.iter().map(|r| r[field].as_array().map_or(0, Vec::len)).sum::<usize>();
        let changes: u64 = reports
            .iter()
            .map(|r| r["api_calls"]["route53"]["ChangeResourceRecordSets"].as_u64().unwrap_or_default())
            .sum();
        let sizes: Vec<usize> = invocations.iter().map(|i| i.messages).collect();
        format!(
            "batcher: {} invocations, {} handoffs delivered (batches {sizes:?}); written {}, expired {}, dropped \
             {}, refused {}, to deliver again {}; {changes} ChangeResourceRecordSets calls (attempts, throttled \
             included); mapping problems: {:?}",
            invocations.len(),
            sizes.iter().sum::<usize>(),
            sum("written"),
            sum("expired"),
            count("dropped"),
            count("refused"),
            count("retry"),
            self.problems()
        )
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
        for task in &self.tasks {
            task.abort();
        }
        if std::thread::panicking() {
            eprintln!(
                "[registration queue mapping] invocations {:?}, problems {:?}",
                self.invocations(),
                self.problems()
            );
        }
    }
}

/// Lambda's side of the mapping: pollers receive, invokers invoke and delete.
#[derive(Debug)]
struct Mapping {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    queue_arn: String,
    control: Arc<Control>,
}

impl Mapping {
    /// One poller: receives while the mapping is enabled and holds less than a batch.
    async fn poll(self: Arc<Self>) {
        let mut changed = self.control.changed.subscribe();
        while !self.control.stopping.load(Ordering::SeqCst) {
            // Seen before the state is read: a change after the read wakes the wait below.
            changed.mark_unchanged();
            // Whether to receive, how many, and whether to wait (no batch being gathered).
            let call = {
                let mut state = self.control.state();
                let held = state.received.len() + state.receiving * RECEIVE_MAX;
                if state.enabled && held < BATCH_SIZE {
                    state.receiving += 1;
                    let wait = if state.received.is_empty() { IDLE_WAIT_SECONDS } else { 0 };
                    Some(((BATCH_SIZE - held).min(RECEIVE_MAX), wait))
                } else {
                    None
                }
            };
            let Some((max, wait)) = call else {
                if changed.changed().await.is_err() {
                    return;
                }
                continue;
            };
            let answer = self.receive(max, wait).await;
            let empty_in_window = self.control.update(|state| {
                state.receiving -= 1;
                match answer {
                    Ok(messages) => {
                        let (at, at_ms) = (Instant::now(), now_ms());
                        let empty = messages.is_empty();
                        state.received.extend(messages.into_iter().map(|message| Received {
                            message,
                            at,
                            at_ms,
                        }));
                        empty && !state.received.is_empty()
                    }
                    Err(e) => {
                        self.control.problem(format!("ReceiveMessage: {e:#}"));
                        // Lambda's poller backs off after an error; the bed's queue is local.
                        true
                    }
                }
            });
            if empty_in_window {
                tokio::time::sleep(WINDOW_POLL).await;
            }
        }
    }

    /// One function process: invokes each batch that is due while it is free.
    async fn invoke(self: Arc<Self>, instance: usize, invoke_url: String) {
        let mut changed = self.control.changed.subscribe();
        while !self.control.stopping.load(Ordering::SeqCst) {
            changed.mark_unchanged();
            let (batch, due) = {
                let mut state = self.control.state();
                let batch = state.take_due();
                if batch.is_some() {
                    state.invoking += 1;
                }
                (batch, state.due())
            };
            if batch.is_some() {
                // The pollers may have room again.
                self.control.bump();
            }
            match batch {
                Some(batch) => {
                    self.deliver(instance, &invoke_url, batch).await;
                    self.control.update(|state| state.invoking -= 1);
                }
                None => {
                    let wake = async {
                        match due {
                            Some(due) => tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        result = changed.changed() => if result.is_err() { return },
                        () = wake => {}
                    }
                }
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
    async fn deliver(&self, instance: usize, invoke_url: &str, batch: Vec<Received>) {
        let (invoked, invoked_ms) = (Instant::now(), now_ms());
        let messages: Vec<SqsMessage> = batch.iter().map(|r| r.message.clone()).collect();
        let event = sqs_event_of(&messages, &self.queue_arn);
        let answer = http::post_json(invoke_url, &event).await;
        let (took, answered_ms) = (invoked.elapsed(), now_ms());
        let returned = match answer {
            Ok(answer) => match retried_ids(&answer, &messages) {
                Ok(ids) => Some(ids),
                Err(why) => {
                    self.control.problem(format!("the batch of {} failed as a whole: {why}", batch.len()));
                    None
                }
            },
            Err(e) => {
                self.control.problem(format!("the invocation with {} messages failed: {e:#}", batch.len()));
                None
            }
        };
        let invocation = Invocation {
            messages: batch.len(),
            returned: returned.as_ref().map_or(batch.len(), Vec::len),
            failed: returned.is_none(),
            instance,
            took,
        };
        if let Some(returned) = returned {
            let processed: Vec<&SqsMessage> =
                messages.iter().filter(|m| !returned.contains(&m.message_id)).collect();
            if let Err(e) = self.delete(&processed).await {
                self.control.problem(format!("DeleteMessageBatch: {e:#}"));
            }
        }
        let timings = batch.iter().map(|r| {
            let attribute = |name: &str| r.message.attributes[name].as_str().and_then(|s| s.parse().ok());
            let body: Option<Value> = serde_json::from_str(&r.message.body).ok();
            MessageTiming {
                sent_ms: attribute("SentTimestamp"),
                first_received_ms: attribute("ApproximateFirstReceiveTimestamp"),
                receive_count: attribute("ApproximateReceiveCount"),
                received_ms: r.at_ms,
                invoked_ms,
                answered_ms,
                not_after_ms: body.and_then(|b| b["not_after_ms"].as_u64()),
            }
        });
        self.control.timings.lock().unwrap_or_else(PoisonError::into_inner).extend(timings);
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
}

/// Milliseconds since the Unix epoch, as SQS's timestamps count.
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
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
