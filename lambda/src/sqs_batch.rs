//! What the two functions fed by an SQS queue share (the withdrawer and the batcher): the messages of
//! one batch as Lambda's SQS event source delivers them, and the partial batch response naming those
//! to deliver again. Lambda Developer Guide, "Using Lambda with Amazon SQS" (the event:
//! `Records[].messageId`, `body`) and "Handling errors for an SQS event source in Lambda"
//! (`batchItemFailures[].itemIdentifier`; the mapping needs `ReportBatchItemFailures`).

use aws_lambda_events::sqs::SqsEvent;
use serde::Serialize;

/// The messages of one batch.
#[derive(Debug)]
pub struct QueueBatch {
    pub messages: Vec<QueueMessage>,
}

#[derive(Debug)]
pub struct QueueMessage {
    pub message_id: String,
    pub body: String,
}

impl QueueBatch {
    /// The batch in `event`; an error for a message without an id (a partial batch response names
    /// messages by id: such a batch cannot be answered, and is not one Lambda's SQS poller sends).
    pub fn of(event: SqsEvent) -> anyhow::Result<Self> {
        let mut messages = Vec::with_capacity(event.records.len());
        for record in event.records {
            let message_id = record.message_id.filter(|id| !id.is_empty()).ok_or_else(|| {
                anyhow::anyhow!("an SQS message without a messageId: not a batch Lambda's SQS poller sends")
            })?;
            messages.push(QueueMessage { message_id, body: record.body.unwrap_or_default() });
        }
        Ok(Self { messages })
    }
}

/// The partial batch response: the messages to deliver again.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ItemFailure {
    pub item_identifier: String,
}

impl BatchResponse {
    /// Delivers the messages with these ids again.
    pub fn retry<'a>(ids: impl IntoIterator<Item = &'a String>) -> Self {
        let failures = ids.into_iter().map(|id| ItemFailure { item_identifier: id.clone() });
        Self { batch_item_failures: failures.collect() }
    }
}
