//! The registration queue, as a sidecar sends to it: one handoff per `SendMessage`, one attempt (a
//! sidecar that cannot hand over sends the change to Route53 itself). The message format is
//! `ecssd_edge::handoff`'s, which the batcher reads.

use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
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

    /// Sends one handoff; the error says why it was not sent (the caller then retries Route53).
    pub async fn send(&self, handoff: &Handoff) -> Result<(), String> {
        let sent = self.client.send_message().queue_url(&self.url).message_body(encode(handoff)).send().await;
        sent.map(|_| ()).map_err(|e| format!("SendMessage to {}: {}", self.url, DisplayErrorContext(&e)))
    }
}
