//! Sending a custom resource's answer: one PUT of JSON to the presigned S3 URL CloudFormation gave.
//! HTTPS through the TLS stack and CA roots the AWS SDK already uses here (rustls, aws-lc, the system's
//! roots); plain HTTP only to loopback, for the stand-in of the tests.
//!
//! The URL is presigned without a content type, so none is sent (CloudFormation User Guide, "Custom
//! resources": the provider uploads the response with a PUT to the presigned URL). A refused PUT (4xx:
//! an expired or altered URL) is final; a connection failure or a 5xx is tried again until the deadline.

use bytes::Bytes;
use ecssd_records::{Backoff, RetryPolicy};
use http_body_util::Full;
use hyper::header::CONTENT_LENGTH;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::deadline::Deadline;

/// PUTs `body` to `url`, retrying transient failures until `deadline`.
pub async fn put(url: &str, body: Vec<u8>, deadline: &Deadline) -> Result<(), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("ResponseURL is not a URL: {e}"))?;
    // CloudFormation's URLs are HTTPS; plain HTTP only to this machine (the tests' stand-in).
    let loopback = matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if uri.scheme_str() != Some("https") && !(uri.scheme_str() == Some("http") && loopback) {
        return Err(format!(
            "ResponseURL must be https:// (plain http only to loopback), not {}://{}",
            uri.scheme_str().unwrap_or_default(),
            uri.host().unwrap_or_default()
        ));
    }
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
        .map_err(|e| format!("loading the system's CA certificates: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let body = Bytes::from(body);
    let mut backoff = Backoff::new(RetryPolicy::default());
    // The URL's query carries a signature: it is never logged, only its host.
    let host = uri.host().unwrap_or_default().to_owned();
    loop {
        let request = hyper::Request::put(uri.clone())
            .header(CONTENT_LENGTH, body.len())
            .body(Full::new(body.clone()))
            .map_err(|e| format!("building the PUT to the ResponseURL: {e}"))?;
        let problem = match deadline.within(client.request(request)).await {
            None => return Err(format!("no answer from {host} before the deadline")),
            Some(Ok(response)) if response.status().is_success() => return Ok(()),
            Some(Ok(response)) if response.status().is_client_error() => {
                return Err(format!("{host} refused the answer: HTTP {}", response.status()));
            }
            Some(Ok(response)) => format!("HTTP {}", response.status()),
            Some(Err(e)) => e.to_string(),
        };
        let delay = backoff.next_delay();
        tracing::warn!(%host, %problem, retry_in_ms = delay.as_millis() as u64, "sending the custom resource answer failed");
        if deadline.within(tokio::time::sleep(delay)).await.is_none() {
            return Err(format!("sending the answer to {host} kept failing until the deadline: {problem}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn plain_http_goes_only_to_loopback_and_the_signature_is_never_repeated() {
        let deadline = Deadline::after(Duration::from_secs(5));
        let url = "http://bucket.s3.amazonaws.com/answer?X-Amz-Signature=f00d";
        let error = put(url, b"{}".to_vec(), &deadline).await.expect_err("refused before any connection");
        assert!(error.contains("must be https://") && error.contains("bucket.s3.amazonaws.com"), "{error}");
        assert!(!error.contains("f00d"), "{error}");
    }
}
