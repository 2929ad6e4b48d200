//! The withdrawer function: an SQS batch of the task-stop queue (Lambda Developer Guide, "Using Lambda
//! with Amazon SQS") withdraws the stopped tasks' records, once ECS confirms each stop, and answers with
//! the messages to deliver again.

use aws_lambda_events::sqs::SqsEvent;

use crate::clients::Clients;
use crate::deadline::Deadline;
use crate::report::{capped_for_log, now_ms, print_json};
use crate::withdrawal::stop_events::{self, BatchResponse, QueueBatch, QueueMessage};

/// Serves one batch.
pub async fn handle(clients: &Clients, event: SqsEvent, deadline: Deadline) -> anyhow::Result<BatchResponse> {
    let mut messages = Vec::with_capacity(event.records.len());
    for record in event.records {
        // A partial batch response names messages by id: a batch without one cannot be answered.
        let message_id = record.message_id.filter(|id| !id.is_empty()).ok_or_else(|| {
            anyhow::anyhow!("an SQS message without a messageId: not a batch Lambda's SQS poller sends")
        })?;
        messages.push(QueueMessage { message_id, body: record.body.unwrap_or_default() });
    }
    let before = clients.calls();
    let batch = QueueBatch { messages };
    let mut report =
        stop_events::handle(&clients.zone, &clients.fleet, &clients.config, batch, deadline).await;
    report.api_calls = clients.calls_since(&before);
    tracing::info!(report = %capped_for_log(serde_json::to_value(&report)?), "task stop events handled");
    print_json(&report.emf(now_ms()));
    Ok(report.response())
}
