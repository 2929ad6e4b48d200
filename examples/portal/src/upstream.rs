//! Calling a service through its instances: each in discovery order until one answers. A 2xx or 4xx
//! is the service's answer (a bad formula is not the instance's fault); a 5xx, a refused connection or
//! a timeout moves on to the next instance. The answer says which instance answered and what failed.

use std::time::Duration;

use bytes::Bytes;
use ecssd_example_web::{Auth, Body, json};
use http_body_util::{BodyExt, Empty};
use hyper::Response;
use hyper::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::discovery::{Discovery, DiscoveryError, Instance};

/// How long one instance may take.
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
            match self.get(instance, path).await {
                Ok((status, mut body)) => {
                    if let Some(object) = body.as_object_mut() {
                        object.insert("answered_by".into(), instance.address.to_string().into());
                        object.insert("target".into(), instance.target.clone().into());
                        object.insert("failed".into(), serde_json::json!(failed));
                    }
                    return json(status, &body);
                }
                Err(problem) => failed
                    .push(serde_json::json!({ "instance": instance.address.to_string(), "error": problem })),
            }
        }
        let message = format!("every instance of {name} failed");
        json(StatusCode::BAD_GATEWAY, &serde_json::json!({ "error": message, "failed": failed }))
    }

    /// One instance's answer, or why it is unusable.
    async fn get(&self, instance: &Instance, path: &str) -> Result<(StatusCode, serde_json::Value), String> {
        let uri: hyper::Uri =
            format!("http://{}{path}", instance.address).parse().map_err(|e| format!("bad URL: {e}"))?;
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
