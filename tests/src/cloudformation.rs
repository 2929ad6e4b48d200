//! CloudFormation's side of a custom resource, on loopback: the request it sends the function, and the
//! presigned `ResponseURL` it then reads the answer from (CloudFormation User Guide, "Custom resource
//! request and response reference"). The bucket keeps every PUT for the test to read, and answers as
//! it is told (200, or a refusal such as an expired URL's 403).

use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The query string of the URL: a presigned URL's signature, which must never reach a log.
pub const SIGNATURE: &str = "X-Amz-Signature=f00dfacecafe";

/// One PUT the bucket received.
#[derive(Debug, Clone)]
pub struct Upload {
    pub method: String,
    /// Lowercase header names and their values.
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
}

impl Upload {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The presigned S3 object a custom resource's answer goes to; stops when dropped.
#[derive(Debug)]
pub struct ResponseBucket {
    pub url: String,
    uploads: Arc<Mutex<Vec<Upload>>>,
    server: JoinHandle<()>,
}

impl ResponseBucket {
    /// Where the bucket listens (`http://127.0.0.1:<port>`): the S3 endpoint a function is pointed at
    /// (`AWS_ENDPOINT_URL_S3`) to take this bucket's URLs as S3's.
    pub fn origin(&self) -> String {
        let rest = self.url.strip_prefix("http://").unwrap_or(&self.url);
        format!("http://{}", rest.split('/').next().unwrap_or_default())
    }

    /// A bucket answering every PUT with `status`.
    pub async fn start(status: u16) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/cloudformation-response/r-1?{SIGNATURE}", listener.local_addr()?);
        let uploads = Arc::new(Mutex::new(Vec::new()));
        let kept = uploads.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, status, &kept).await {
                        tracing::warn!(error = %e, "response bucket: a broken request");
                    }
                });
            }
        });
        Ok(Self { url, uploads, server })
    }

    /// Every upload so far, in order.
    pub fn uploads(&self) -> Vec<Upload> {
        self.uploads.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for ResponseBucket {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Reads one HTTP/1.1 request (headers, then `Content-Length` bytes), keeps it, answers `status`.
async fn serve(stream: TcpStream, status: u16, kept: &Mutex<Vec<Upload>>) -> anyhow::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let method = line.split_whitespace().next().context("an empty request")?.to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).await?;
        let Some((name, value)) = line.trim_end().split_once(':') else { break };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .map(|(_, value)| value.parse())
        .transpose()?
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    let body = serde_json::from_slice(&body).with_context(|| format!("a body that is not JSON: {body:?}"))?;
    kept.lock().unwrap_or_else(PoisonError::into_inner).push(Upload { method, headers, body });
    let answer = format!("HTTP/1.1 {status} Answer\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    reader.get_mut().write_all(answer.as_bytes()).await?;
    Ok(())
}

/// The stack the requests of [`zone_negative_caching_request`] come from.
pub const STACK_ID: &str =
    "arn:aws:cloudformation:us-east-1:123456789012:stack/ecssd/5b6a2ea0-0000-0000-0000-000000000000";

/// The request CloudFormation sends the stack's `ZoneNegativeCaching` resource.
pub fn zone_negative_caching_request(
    request_type: &str,
    response_url: &str,
    zone_id: &str,
    negative_cache_ttl: &str,
) -> serde_json::Value {
    let mut request = serde_json::json!({
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:ecssd-ZoneSettings",
        "ResponseURL": response_url,
        "StackId": STACK_ID,
        "RequestId": format!("{request_type}-request"),
        "ResourceType": "Custom::ZoneNegativeCaching",
        "LogicalResourceId": "ZoneNegativeCaching",
        // CloudFormation passes every property as a string.
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:ecssd-ZoneSettings",
            "ServiceTimeout": "120",
            "ZoneId": zone_id,
            "NegativeCacheTtl": negative_cache_ttl,
        },
    });
    // Update and Delete name the resource by the id the Create answered; an Update also carries the
    // properties before it (the reference: "OldResourceProperties: Used only for Update requests").
    if request_type != "Create" {
        request["PhysicalResourceId"] = format!("{zone_id}/negative-caching").into();
    }
    if request_type == "Update" {
        request["OldResourceProperties"] = request["ResourceProperties"].clone();
    }
    request
}
