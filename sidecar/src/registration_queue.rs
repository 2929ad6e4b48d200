//! The registration queue, as a sidecar sends to it: one handoff per `SendMessage`, one attempt. A
//! handoff SQS did not take goes to Route53 from the sidecar itself; one whose answer never came may be
//! in the queue, and is taken as handed over until a DNS check shows otherwise (sending it again, or
//! sending the change to Route53 too, would spend twice what a slow queue already holds). The message
//! format is `ecssd_edge::handoff`'s, which the batcher reads.

use std::time::Duration;

use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use ecssd_edge::handoff::encode;
use ecssd_records::Handoff;

/// The registration queue, as a sidecar sends to it.
#[derive(Debug, Clone)]
pub struct RegistrationQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl RegistrationQueue {
    /// Sends to the queue at `url`; each send is one attempt of at most `attempt`.
    pub fn new(sdk: &aws_types::SdkConfig, url: String, attempt: Duration) -> Self {
        let client = aws_sdk_sqs::Client::new(&ecssd_edge::sdk::for_our_retries(sdk, attempt));
        Self { client, url }
    }

    /// Sends one handoff; the error says whether it may be in the queue all the same, and why.
    pub async fn send(&self, handoff: &Handoff) -> Result<(), SendFailure> {
        let sent = self.client.send_message().queue_url(&self.url).message_body(encode(handoff)).send().await;
        sent.map(|_| ()).map_err(|e| {
            let detail = format!("SendMessage to {}: {}", self.url, DisplayErrorContext(&e));
            match e {
                // No request built, no connection (connecting is bounded by 3/4 of the attempt, so a
                // connection that never opens ends here), or SQS's own refusal: not in the queue. A
                // dispatch failure may also be a connection lost after the request went out: sent
                // directly too, the exact-value guard keeps the two from both landing.
                SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) => {
                    SendFailure::NotSent(detail)
                }
                e if ecssd_edge::retry::refused(&e) => SendFailure::NotSent(detail),
                // Sent, and no answer, an unreadable one or a 5xx: SQS may have taken it.
                _ => SendFailure::Unanswered(detail),
            }
        })
    }
}

/// Why a handoff is not known to be in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    /// It is not, as far as the sidecar can tell: SQS refused it, or there was no connection.
    NotSent(String),
    /// It may be: the request went out and no answer says what became of it.
    Unanswered(String),
}
