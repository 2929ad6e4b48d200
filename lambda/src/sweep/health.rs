//! HTTP health checks of registered endpoints: concurrent with a bound, a per-request timeout, and a
//! retry for quick failures (a refused connection or a 5xx can be a blip; a timeout already spent its
//! whole budget, so it is not retried, which keeps a run with hanging endpoints near one timeout).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How endpoints are checked.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// Path requested on every endpoint, e.g. `/health`.
    pub path: String,
    /// Limit for one request, connection included.
    pub timeout: Duration,
    /// Attempts per endpoint for quick failures (refused, reset, non-2xx).
    pub attempts: u32,
    /// Endpoints checked at once.
    pub concurrency: usize,
}

/// One endpoint to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Index of the task in the caller's list.
    pub task: usize,
    /// The SRV record name it is registered under.
    pub service: String,
    pub url: String,
}

/// The outcome for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Healthy,
    /// What went wrong: an error status, no answer in time, a refused or reset connection.
    Unhealthy(String),
    /// This function's network has no route to the address (a function without IPv6 egress asking
    /// an IPv6-only task, an address outside its VPC): nothing is known of the task's health, as a
    /// silent probe tells nothing ([`Probe::Silent`]).
    Unreachable(String),
}

/// Checks every endpoint; outcomes come back in the endpoints' order.
pub async fn check_all(endpoints: Vec<Endpoint>, settings: &HealthSettings) -> Vec<(Endpoint, Outcome)> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(settings.timeout));
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build(connector);
    let checks = endpoints.into_iter().enumerate().map(|(index, endpoint)| {
        let client = client.clone();
        async move {
            let outcome = check(&client, &endpoint.url, settings).await;
            (index, endpoint, outcome)
        }
    });
    let mut results: Vec<_> =
        futures_util::stream::iter(checks).buffer_unordered(settings.concurrency.max(1)).collect().await;
    results.sort_by_key(|(index, _, _)| *index);
    results.into_iter().map(|(_, endpoint, outcome)| (endpoint, outcome)).collect()
}

/// What a TCP connection to an endpoint met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// It connected: something serves there.
    Answered,
    /// The host refused it (a reset to the SYN): it is up, and nothing listens on that port.
    Refused,
    /// No answer within the timeout, or the network could not reach it: unknown. A host can be
    /// unreachable from here and serving its clients (a function outside the VPC reaches no task).
    Silent,
}

/// A TCP connection to each address, the evidence the agent rule needs beyond a disconnected agent,
/// asked of any TCP service without assuming it serves HTTP. Results come back in the addresses' order.
pub async fn probe(addresses: Vec<SocketAddr>, timeout: Duration, concurrency: usize) -> Vec<Probe> {
    let probes = addresses.into_iter().map(|address| async move {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(_)) => Probe::Answered,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Probe::Refused,
            Ok(Err(_)) | Err(_) => Probe::Silent,
        }
    });
    futures_util::stream::iter(probes).buffered(concurrency.max(1)).collect().await
}

async fn check(
    client: &Client<HttpConnector, Empty<Bytes>>,
    url: &str,
    settings: &HealthSettings,
) -> Outcome {
    let mut last = String::new();
    for attempt in 1..=settings.attempts.max(1) {
        let uri: hyper::Uri = match url.parse() {
            Ok(uri) => uri,
            Err(e) => return Outcome::Unhealthy(format!("bad URL {url}: {e}")),
        };
        match tokio::time::timeout(settings.timeout, client.get(uri)).await {
            Err(_) => {
                return Outcome::Unhealthy(format!(
                    "GET {url}: no answer within {} ms",
                    settings.timeout.as_millis()
                ));
            }
            Ok(Ok(response)) if response.status().is_success() => return Outcome::Healthy,
            Ok(Ok(response)) => last = format!("GET {url}: HTTP {}", response.status()),
            Ok(Err(e)) if no_route(&e) => return Outcome::Unreachable(format!("GET {url}: {e}")),
            Ok(Err(e)) => last = format!("GET {url}: {e}"),
        }
        if attempt < settings.attempts {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Outcome::Unhealthy(last)
}

/// Whether a request failed for want of a route from here (`ENETUNREACH`, `EHOSTUNREACH`,
/// `EADDRNOTAVAIL` when connecting), which says nothing of the task.
fn no_route(error: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind;
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ErrorKind::NetworkUnreachable | ErrorKind::HostUnreachable | ErrorKind::AddrNotAvailable
            );
        }
        cause = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection this function's network cannot make says nothing of the task (review: a function
    /// without IPv6 egress would otherwise find every IPv6-only task unhealthy and stop it).
    #[test]
    fn only_a_missing_route_is_unreachable() {
        #[derive(Debug)]
        struct Wrapped(std::io::Error);
        impl std::fmt::Display for Wrapped {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "client error (Connect)")
            }
        }
        impl std::error::Error for Wrapped {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        use std::io::{Error, ErrorKind};
        for kind in [ErrorKind::NetworkUnreachable, ErrorKind::HostUnreachable, ErrorKind::AddrNotAvailable] {
            assert!(no_route(&Wrapped(Error::from(kind))), "{kind:?}");
        }
        for kind in [ErrorKind::ConnectionRefused, ErrorKind::ConnectionReset, ErrorKind::TimedOut] {
            assert!(!no_route(&Wrapped(Error::from(kind))), "{kind:?}");
        }
    }

    #[tokio::test]
    async fn only_a_refused_connection_is_a_refusal_and_no_answer_is_silence() {
        let serving = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let closed_addr = closed.local_addr().expect("addr");
        drop(closed);
        // Linux drops a SYN (no reset) while the accept queue is full: a backlog of 0 holds one.
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let full = socket.listen(0).expect("listen");
        let _filler = tokio::net::TcpStream::connect(full.local_addr().expect("addr")).await.expect("fill");
        let addresses =
            vec![serving.local_addr().expect("addr"), closed_addr, full.local_addr().expect("addr")];
        let outcomes = probe(addresses, Duration::from_millis(300), 3).await;
        assert_eq!(outcomes, [Probe::Answered, Probe::Refused, Probe::Silent]);
    }
}
