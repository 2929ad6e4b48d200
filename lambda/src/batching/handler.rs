//! The batcher function: an SQS batch of the registration queue ([`crate::sqs_batch`]) is read, checked
//! and written ([`write`]), reported, and answered with the messages to deliver again.

use aws_lambda_events::sqs::SqsEvent;
use ecssd_edge::handoff::decode;
use serde::Serialize;

use crate::batching::write::{Outcome, write};
use crate::clients::{CallsByService, Clients};
use crate::deadline::Deadline;
use crate::report::{Finding, capped_for_log, emf_line, now_ms, print_json};
use crate::sqs_batch::{BatchResponse, QueueBatch};

/// What one batch did: logged as JSON and as CloudWatch Embedded Metric Format.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct BatchReport {
    pub messages: usize,
    /// Tasks whose registration was written.
    pub written: usize,
    pub changes_written: usize,
    /// Handoffs not written, and why (their sidecars' DNS checks repair what is missing).
    pub dropped: Vec<Finding>,
    /// Handoffs past their time: the sidecar may have withdrawn since.
    pub expired: usize,
    /// Messages that are not a handoff this batcher may write (by message id), never written.
    pub refused: Vec<Finding>,
    /// Message ids to deliver again (the invocation ran out of time before they were tried).
    pub retry: Vec<String>,
    pub api_calls: CallsByService,
}

impl BatchReport {
    fn emf(&self, timestamp_ms: u128) -> serde_json::Value {
        let requests = self.api_calls.get("route53").and_then(|ops| ops.get("ChangeResourceRecordSets"));
        emf_line(
            timestamp_ms,
            &[
                ("BatcherMessages", self.messages as u64, "Count"),
                ("BatcherRegistrationsWritten", self.written as u64, "Count"),
                ("BatcherRegistrationsDropped", self.dropped.len() as u64, "Count"),
                ("BatcherRegistrationsExpired", self.expired as u64, "Count"),
                ("BatcherMessagesRefused", self.refused.len() as u64, "Count"),
                ("BatcherChangeRequests", requests.copied().unwrap_or(0), "Count"),
            ],
        )
    }
}

/// Serves one batch.
pub async fn handle(clients: &Clients, event: SqsEvent, deadline: Deadline) -> anyhow::Result<BatchResponse> {
    let batch = QueueBatch::of(event)?;
    let before = clients.calls();
    let config = &clients.config;
    let mut report = BatchReport { messages: batch.messages.len(), ..BatchReport::default() };
    let mut ids = Vec::new();
    let mut handoffs = Vec::new();
    for message in batch.messages {
        let checked = decode(&message.body)
            .and_then(|h| h.check(&config.domain, &config.owner_id).map(|()| h).map_err(|e| e.to_string()));
        match checked {
            Ok(handoff) => {
                ids.push(message.message_id);
                handoffs.push(handoff);
            }
            Err(why) => {
                tracing::error!(problem = "handoff_refused", message_id = message.message_id, %why,
                    "a registration queue message this batcher may not write; nothing was changed for it");
                report.refused.push(Finding::new(message.message_id, why));
            }
        }
    }
    let tasks: Vec<String> = handoffs.iter().map(|h| h.task.to_string()).collect();
    for ((outcome, id), task) in
        write(&clients.zone, handoffs, deadline).await.into_iter().zip(ids).zip(tasks)
    {
        match outcome {
            Outcome::Written { changes } => {
                report.written += 1;
                report.changes_written += changes;
            }
            Outcome::Expired => report.expired += 1,
            Outcome::Dropped { why } => report.dropped.push(Finding::new(task, why)),
            Outcome::OutOfTime => report.retry.push(id),
        }
    }
    report.api_calls = clients.calls_since(&before);
    tracing::info!(report = %capped_for_log(serde_json::to_value(&report)?), "handed-over registrations written");
    print_json(&report.emf(now_ms()));
    Ok(BatchResponse::retry(&report.retry))
}
