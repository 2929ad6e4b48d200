//! Calling a service through its instances: each in discovery order until one answers, an instance at
//! each of its addresses (IPv4, then IPv6). A 2xx or 4xx is the service's answer (a bad formula is not
//! the instance's fault); a 5xx, a refused connection or a timeout moves on to the next address or
//! instance. The answer says which address answered and which failed.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use ecssd_example_web::{Auth, Body, json};
use http_body_util::{BodyExt, Empty};
use hyper::Response;
use hyper::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::discovery::{Discovery, DiscoveryError};

/// How long one address of an instance may take.
const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Upstream {
    discovery: Discovery,
    auth: Auth,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Upstream {
    pub fn new(discovery: Discovery, auth: Auth) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(TIMEOUT));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Self { discovery, auth, client }
    }

    /// GETs `path` from an instance of `service`, failing over; the answer as JSON for the page.
    pub async fn call(&self, service: &str, path: &str) -> Response<Body> {
        let name = self.discovery.name(service);
        let instances = match self.discovery.instances(service).await {
            Ok(instances) => instances,
            Err(DiscoveryError::NoneRegistered) => {
                let message = format!("no instance of {name} is registered");
                return json(StatusCode::SERVICE_UNAVAILABLE, &serde_json::json!({ "error": message }));
            }
            Err(DiscoveryError::Resolver(e)) => {
                let message = format!("cannot resolve {name}: {e}");
                return json(StatusCode::BAD_GATEWAY, &serde_json::json!({ "error": message }));
            }
        };
        let mut failed = Vec::new();
        for instance in &instances {
            for address in &instance.addresses {
                match self.get(*address, path).await {
                    Ok((status, mut body)) => {
                        if let Some(object) = body.as_object_mut() {
                            object.insert("answered_by".into(), address.to_string().into());
                            object.insert("target".into(), instance.target.clone().into());
                            object.insert("failed".into(), serde_json::json!(failed));
                        }
                        return json(status, &body);
                    }
                    Err(problem) => {
                        failed.push(serde_json::json!({ "instance": address.to_string(), "error": problem }))
                    }
                }
            }
        }
        let message = format!("every instance of {name} failed");
        json(StatusCode::BAD_GATEWAY, &serde_json::json!({ "error": message, "failed": failed }))
    }

    /// One instance's answer at one of its addresses, or why it is unusable.
    async fn get(&self, address: SocketAddr, path: &str) -> Result<(StatusCode, serde_json::Value), String> {
        let uri: hyper::Uri = url(address, path).parse().map_err(|e| format!("bad URL: {e}"))?;
        let request = hyper::Request::get(uri)
            .header(hyper::header::AUTHORIZATION, self.auth.header())
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| chain(&e))?;
            let status = response.status();
            let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok::<_, String>((status, body))
        };
        let (status, body) = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no answer within {} ms", TIMEOUT.as_millis()))??;
        if status.is_server_error() {
            return Err(format!("HTTP {status}"));
        }
        let body = serde_json::from_slice(&body).unwrap_or_else(|_| {
            serde_json::json!({ "error": String::from_utf8_lossy(&body).chars().take(200).collect::<String>() })
        });
        Ok((status, body))
    }
}

/// The URL of `path` at `address`: an IPv6 address in brackets, e.g. `http://[::1]:8080/calc/1`.
fn url(address: SocketAddr, path: &str) -> String {
    // SocketAddr writes an IPv6 address bracketed, as URLs have it (RFC 3986 §3.2.2).
    format!("http://{address}{path}")
}

/// An error with its causes, e.g. `client error (Connect): tcp connect error: Connection refused`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_bracket_ipv6_addresses() {
        let at = |address: &str| url(address.parse().unwrap(), "/calc/1");
        assert_eq!(at("127.0.0.1:32768"), "http://127.0.0.1:32768/calc/1");
        assert_eq!(at("[::1]:8080"), "http://[::1]:8080/calc/1");
        assert_eq!(at("[2600:1f18::17]:80"), "http://[2600:1f18::17]:80/calc/1");
        let uri: hyper::Uri = at("[::1]:8080").parse().unwrap();
        assert_eq!((uri.host(), uri.port_u16()), (Some("[::1]"), Some(8080)));
    }
}
