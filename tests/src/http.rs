//! A minimal HTTP/1 client for talking to loopback servers in tests (moto's controls, metadata
//! stand-ins, workload containers).

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Sends one request and returns the status and body.
pub async fn request(method: &str, url: &str, body: Option<Vec<u8>>) -> anyhow::Result<(u16, Bytes)> {
    request_with_headers(method, url, &[("content-type", "application/json")], body).await
}

/// Sends one request with extra headers and returns the status and body.
pub async fn request_with_headers(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> anyhow::Result<(u16, Bytes)> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let response = client.request(request).await.with_context(|| format!("{method} {url}"))?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

pub async fn get_json(url: &str) -> anyhow::Result<serde_json::Value> {
    let (status, body) = request("GET", url, None).await?;
    json_or_error("GET", url, status, &body)
}

pub async fn post_json(url: &str, payload: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
    let (status, body) = request("POST", url, Some(serde_json::to_vec(payload)?)).await?;
    json_or_error("POST", url, status, &body)
}

/// A 2xx body as JSON; any other status is an error carrying the server's explanation: the `error`
/// field of a JSON body (as the moto launcher's controls send), else the whole body.
fn json_or_error(method: &str, url: &str, status: u16, body: &[u8]) -> anyhow::Result<serde_json::Value> {
    if !(200..300).contains(&status) {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let explanation = match parsed.as_ref().and_then(|v| v.get("error")).and_then(|e| e.as_str()) {
            Some(error) => error.to_owned(),
            None => String::from_utf8_lossy(body).into_owned(),
        };
        bail!("{method} {url}: HTTP {status}: {explanation}");
    }
    serde_json::from_slice(body).with_context(|| format!("{method} {url}: the response is not JSON"))
}
