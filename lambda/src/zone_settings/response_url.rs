//! Sending a custom resource's answer: one PUT of JSON to the presigned S3 URL CloudFormation gave,
//! HTTPS through the TLS stack and CA roots the AWS SDK already uses here (rustls, aws-lc, the system's
//! roots).
//!
//! Anyone allowed to invoke the function can name any URL, so the answer goes only where
//! CloudFormation's can: an https endpoint of S3 in the function's region (CloudFormation User Guide,
//! "Custom resources": "a presigned Amazon S3 URL"; the documents name no bucket, so any bucket is
//! taken: the check keeps answers on S3, it cannot tell CloudFormation's bucket from another), or the
//! endpoint this process is told to use instead of AWS
//! (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`: the SDKs' documented override, which the tests'
//! stand-in uses), with its scheme.
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

/// Where an answer may go: `url` if it is an https URL of S3 in `region`, or of `endpoint_override`
/// (scheme, host and port alike); otherwise why not (the URL's query, which carries a signature, is
/// never repeated).
pub fn destination(url: &str, region: &str, endpoint_override: Option<&str>) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("ResponseURL is not a URL: {e}"))?;
    let (scheme, host) = (uri.scheme_str().unwrap_or_default(), uri.host().unwrap_or_default());
    let overridden = endpoint_override.and_then(|e| e.parse::<hyper::Uri>().ok()).is_some_and(|endpoint| {
        endpoint.scheme_str() == Some(scheme)
            && endpoint.host() == Some(host)
            && endpoint.port_u16() == uri.port_u16()
    });
    if overridden {
        return Ok(uri);
    }
    let dns = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    let mut s3 = vec![
        format!("s3.{region}.{dns}"),
        format!("s3-{region}.{dns}"),
        format!("s3.dualstack.{region}.{dns}"),
    ];
    if dns == "amazonaws.com" {
        s3.push("s3.amazonaws.com".to_owned());
    }
    let of_s3 = s3.iter().any(|endpoint| host == endpoint || host.ends_with(&format!(".{endpoint}")));
    if scheme == "https" && uri.port().is_none() && of_s3 {
        return Ok(uri);
    }
    Err(format!(
        "ResponseURL {scheme}://{host}{} is not an https URL of S3 in the function's region {region} \
         (e.g. https://<bucket>.s3.{region}.{dns}/...): no answer sent there",
        uri.port().map(|p| format!(":{p}")).unwrap_or_default()
    ))
}

/// PUTs `body` to `uri` (a [`destination`]), retrying transient failures until `deadline`.
pub async fn put(uri: &hyper::Uri, body: Vec<u8>, deadline: &Deadline) -> Result<(), String> {
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
    use super::*;

    const REGION: &str = "eu-west-1";

    /// Issue 27: the function used to PUT its answer to any https URL an invoker named.
    #[test]
    fn answers_go_only_to_s3_of_the_functions_region_or_the_overriding_endpoint() {
        for url in [
            "https://cloudformation-custom-resource-response-euwest1.s3.amazonaws.com/a?X-Amz-Signature=f",
            "https://cloudformation-custom-resource-response-euwest1.s3.eu-west-1.amazonaws.com/a",
            "https://bucket.s3-eu-west-1.amazonaws.com/a",
            "https://s3.eu-west-1.amazonaws.com/bucket/a",
        ] {
            assert!(destination(url, REGION, None).is_ok(), "{url}");
        }
        for url in [
            "http://bucket.s3.amazonaws.com/answer?X-Amz-Signature=f00d",
            "https://example.com/answer?X-Amz-Signature=f00d",
            "https://bucket.s3.us-east-1.amazonaws.com/answer",
            "https://s3.eu-west-1.amazonaws.com.example.com/answer",
            "https://bucket.s3.eu-west-1.amazonaws.com:8443/answer",
            "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next",
        ] {
            let error = destination(url, REGION, None).expect_err(url);
            assert!(
                error.contains("is not an https URL of S3 in the function's region eu-west-1"),
                "{error}"
            );
            assert!(!error.contains("f00d") && !error.contains("X-Amz"), "{error}");
        }
        let stand_in = "http://127.0.0.1:4566";
        assert!(destination("http://127.0.0.1:4566/answer", REGION, Some(stand_in)).is_ok());
        assert!(destination("http://127.0.0.1:9001/answer", REGION, Some(stand_in)).is_err(), "another port");
        assert!(
            destination("https://127.0.0.1:4566/answer", REGION, Some(stand_in)).is_err(),
            "another scheme"
        );
        assert!(destination("https://bucket.s3.cn-north-1.amazonaws.com.cn/a", "cn-north-1", None).is_ok());
        assert!(destination("https://bucket.s3.amazonaws.com/a", "cn-north-1", None).is_err());
    }
}
