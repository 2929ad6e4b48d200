//! The withdrawer function: an SQS batch of the task-stop queue (Lambda Developer Guide, "Using Lambda
//! with Amazon SQS") withdraws the stopped tasks' records, once ECS confirms each stop, and answers with
//! the messages to deliver again.

use aws_lambda_events::sqs::SqsEvent;

use crate::clients::Clients;
use crate::deadline::Deadline;
use crate::report::{capped_for_log, now_ms, print_json};
use crate::sqs_batch::{BatchResponse, QueueBatch};
use crate::withdrawal::stop_events;

/// Serves one batch.
pub async fn handle(clients: &Clients, event: SqsEvent, deadline: Deadline) -> anyhow::Result<BatchResponse> {
    let batch = QueueBatch::of(event)?;
    let before = clients.calls();
    let mut report =
        stop_events::handle(&clients.zone, &clients.fleet, &clients.config, batch, deadline).await;
    report.api_calls = clients.calls_since(&before);
    tracing::info!(report = %capped_for_log(serde_json::to_value(&report)?), "task stop events handled");
    print_json(&report.emf(now_ms()));
    Ok(report.response())
}
