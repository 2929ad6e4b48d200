//! What the example services (time, calc, portal) share: where they listen, an HTTP/1 server loop that
//! stops on SIGTERM, HTTP basic auth, JSON answers, and who is answering (container and instance).
//!
//! # Layout
//! - [`bind`]: the listening socket, at `::` (IPv6 and IPv4) or `BIND_ADDRESS`, port `PORT`.
//! - [`serve`], [`serve_until`]: accept loop that lingers after SIGTERM, then stops gracefully.
//! - [`Auth`]: basic-auth credentials from the environment (`AUTH_USER`/`AUTH_PASSWORD`).
//! - [`json`], [`error`]: responses.
//! - [`Identity`]: container and instance names reported in every answer.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub type Body = Full<Bytes>;

/// Serves `handler` on `listener` until SIGTERM or Ctrl-C, then keeps serving for
/// `SHUTDOWN_DELAY_SECONDS` (default 0) so that clients holding DNS answers cached before the sidecar
/// withdrew this task still reach it, then stops accepting and lets open connections finish the
/// request in flight (for at most 10 s).
pub async fn serve<H, F>(listener: TcpListener, handler: H) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let linger = shutdown_delay(std::env::var("SHUTDOWN_DELAY_SECONDS").ok().as_deref())?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let signalled = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    serve_until(listener, handler, signalled, linger).await;
    Ok(())
}

/// `SHUTDOWN_DELAY_SECONDS`, parsed: whole seconds, at most 600.
pub fn shutdown_delay(value: Option<&str>) -> std::io::Result<Duration> {
    let Some(value) = value else { return Ok(Duration::ZERO) };
    match value.trim().parse::<u64>() {
        Ok(seconds) if seconds <= 600 => Ok(Duration::from_secs(seconds)),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("SHUTDOWN_DELAY_SECONDS={value:?} is not valid: expected whole seconds from 0 to 600"),
        )),
    }
}

/// Serves `handler` on `listener` until `shutdown` resolves and then `linger` longer; then stops
/// accepting and lets open connections finish the request in flight (for at most 10 s).
pub async fn serve_until<H, F>(
    listener: TcpListener,
    handler: H,
    shutdown: impl Future<Output = ()>,
    linger: Duration,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let lingering = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors, a connection reset before accept: keep serving.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown, if deadline.is_none() => {
                deadline = Some(tokio::time::Instant::now() + linger);
                continue;
            }
            () = lingering => break,
        };
        // Forget finished connections, so the set holds only open ones.
        while connections.try_join_next().is_some() {}
        let handler = handler.clone();
        let mut stop = stop.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let answer = handler(request);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    let _ = stopping.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

/// Runs a service whose answers need no I/O (time, calc): listens on `PORT` (default 8080) as
/// [`bind`] says and serves `/health` openly and `GET <prefix><argument>` behind basic auth
/// (credentials from the environment), answering with `answer(argument, identity)`; any other path
/// gets a 404 saying `usage`.
pub async fn run_service(
    prefix: &'static str,
    usage: &'static str,
    answer: fn(&str, &Identity) -> Response<Body>,
) -> std::io::Result<()> {
    let listener = bind(8080).await?;
    let (auth, identity) = (Auth::from_env(), Identity::from_env());
    serve(listener, move |request| {
        let path = request.uri().path();
        let response = if path == "/health" {
            health()
        } else if let Some(argument) = path_argument(path, prefix) {
            if auth.admits(&request) { answer(&argument, &identity) } else { Auth::challenge() }
        } else {
            error(StatusCode::NOT_FOUND, usage)
        };
        async move { response }
    })
    .await
}

/// Binds port `PORT` (from the environment, else `default_port`) at `BIND_ADDRESS` (an IP address,
/// e.g. `::1`), by default at `::`: IPv6 and, as Linux has it unless `net.ipv6.bindv6only` is set,
/// IPv4 too, so a service answers in an IPv6-only task as in an IPv4 one; on a host without IPv6,
/// at `0.0.0.0`.
pub async fn bind(default_port: u16) -> std::io::Result<TcpListener> {
    let port = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(default_port);
    listen(bind_address(std::env::var("BIND_ADDRESS").ok().as_deref())?, port).await
}

/// Listens on `port` at `address`, else at `::` (or `0.0.0.0` without IPv6): [`bind`]'s work.
async fn listen(address: Option<IpAddr>, port: u16) -> std::io::Result<TcpListener> {
    if let Some(address) = address {
        return TcpListener::bind(SocketAddr::new(address, port)).await;
    }
    match TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))).await {
        Err(e) if e.kind() != std::io::ErrorKind::AddrInUse => {
            TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))).await
        }
        bound => bound,
    }
}

/// `BIND_ADDRESS`, parsed: an IPv4 or IPv6 address (IPv6 without brackets), or None when unset.
pub fn bind_address(value: Option<&str>) -> std::io::Result<Option<IpAddr>> {
    let Some(value) = value else { return Ok(None) };
    value.trim().parse().map(Some).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("BIND_ADDRESS={value:?} is not an IP address (e.g. ::, ::1, 0.0.0.0 or 127.0.0.1)"),
        )
    })
}

/// A JSON answer.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{value}\n"))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    response
}

/// A JSON error answer: `{"error": message}`.
pub fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message }))
}

/// Basic-auth credentials required by a service.
#[derive(Debug, Clone)]
pub struct Auth {
    user: String,
    password: String,
}

impl Auth {
    /// `AUTH_USER` and `AUTH_PASSWORD`, `admin`/`password` when unset (as in the seed: demo only).
    pub fn from_env() -> Self {
        Self {
            user: std::env::var("AUTH_USER").unwrap_or_else(|_| "admin".into()),
            password: std::env::var("AUTH_PASSWORD").unwrap_or_else(|_| "password".into()),
        }
    }

    pub fn new(user: &str, password: &str) -> Self {
        Self { user: user.into(), password: password.into() }
    }

    /// The `Authorization` header value for these credentials.
    pub fn header(&self) -> String {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.user, self.password));
        format!("Basic {encoded}")
    }

    /// Whether the request carries these credentials.
    pub fn admits<B>(&self, request: &Request<B>) -> bool {
        request
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value == self.header())
    }

    /// The 401 answer that asks a browser for credentials.
    pub fn challenge() -> Response<Body> {
        let mut response = error(StatusCode::UNAUTHORIZED, "authentication required");
        response.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Basic realm=\"ecssd example\""),
        );
        response
    }
}

/// Who answers: the container (its hostname) and the instance (`INSTANCE_NAME`, else the container).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Identity {
    pub container: String,
    pub instance: String,
}

impl Identity {
    pub fn from_env() -> Self {
        let container = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_owned()))
            .unwrap_or_else(|| "unknown".into());
        let instance = std::env::var("INSTANCE_NAME").unwrap_or_else(|_| container.clone());
        Self { container, instance }
    }
}

/// The percent-decoded rest of `path` after `prefix` (e.g. `/calc/` + `8%2F2` gives `8/2`).
pub fn path_argument(path: &str, prefix: &str) -> Option<String> {
    let raw = path.strip_prefix(prefix)?;
    Some(percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned())
}

/// `/health`: open, says OK.
pub fn health() -> Response<Body> {
    json(StatusCode::OK, &serde_json::json!({ "status": "OK" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_round_trip() {
        let auth = Auth::new("admin", "password");
        assert_eq!(auth.header(), "Basic YWRtaW46cGFzc3dvcmQ=");
        let ok = Request::builder().header("authorization", auth.header()).body(()).unwrap();
        let wrong =
            Request::builder().header("authorization", Auth::new("admin", "x").header()).body(()).unwrap();
        assert!(auth.admits(&ok));
        assert!(!auth.admits(&wrong));
        assert!(!auth.admits(&Request::new(())));
    }

    #[test]
    fn path_arguments_are_decoded() {
        assert_eq!(path_argument("/calc/8%2F2", "/calc/").as_deref(), Some("8/2"));
        assert_eq!(path_argument("/calc/8/2", "/calc/").as_deref(), Some("8/2"));
        assert_eq!(path_argument("/time/15%3A04%20Jan%202", "/time/").as_deref(), Some("15:04 Jan 2"));
        assert_eq!(path_argument("/other", "/time/"), None);
    }

    #[test]
    fn shutdown_delays() {
        assert_eq!(shutdown_delay(None).unwrap(), Duration::ZERO);
        assert_eq!(shutdown_delay(Some("10")).unwrap(), Duration::from_secs(10));
        for bad in ["", "-1", "1.5", "ten", "601"] {
            let error = shutdown_delay(Some(bad)).unwrap_err().to_string();
            assert!(error.contains("SHUTDOWN_DELAY_SECONDS"), "{bad}: {error}");
        }
    }

    #[test]
    fn bind_addresses() {
        assert_eq!(bind_address(None).unwrap(), None);
        assert_eq!(bind_address(Some("::1")).unwrap(), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(bind_address(Some("127.0.0.1")).unwrap(), Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        for bad in ["", "[::1]", "localhost", "::1:8080x"] {
            let error = bind_address(Some(bad)).unwrap_err().to_string();
            assert!(error.contains("BIND_ADDRESS"), "{bad}: {error}");
        }
    }

    #[tokio::test]
    async fn by_default_a_service_answers_over_ipv4_and_ipv6() {
        let listener = listen(None, 0).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(serve_until(
            listener,
            |_| async { health() },
            std::future::pending(),
            Duration::ZERO,
        ));
        for client in [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)] {
            assert!(get_health(SocketAddr::new(client, port)).await.starts_with("HTTP/1.1 200"), "{client}");
        }
        server.abort();
    }

    #[tokio::test]
    async fn bind_address_limits_a_service_to_one_address() {
        let listener = listen(Some(IpAddr::V6(Ipv6Addr::LOCALHOST)), 0).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(listener.local_addr().unwrap().ip(), Ipv6Addr::LOCALHOST);
        let server = tokio::spawn(serve_until(
            listener,
            |_| async { health() },
            std::future::pending(),
            Duration::ZERO,
        ));
        assert!(get_health(SocketAddr::from((Ipv6Addr::LOCALHOST, port))).await.starts_with("HTTP/1.1 200"));
        let ipv4 = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await;
        assert!(ipv4.is_err(), "nothing listens on 127.0.0.1:{port}");
        server.abort();
    }

    async fn get_health(address: SocketAddr) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn after_the_signal_it_keeps_serving_for_the_delay_then_stops() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (signal, signalled) = tokio::sync::oneshot::channel::<()>();
        let (observed, shutdown_observed) = tokio::sync::oneshot::channel::<tokio::time::Instant>();
        let shutdown = async move {
            let _ = signalled.await;
            let _ = observed.send(tokio::time::Instant::now());
        };
        let linger = Duration::from_millis(300);
        let server = tokio::spawn(serve_until(listener, |_| async { health() }, shutdown, linger));
        assert!(get_health(address).await.starts_with("HTTP/1.1 200"));
        signal.send(()).unwrap();
        let signalled_at = shutdown_observed.await.unwrap();
        // The server has seen the signal; a new client is still served.
        assert!(get_health(address).await.starts_with("HTTP/1.1 200"));
        tokio::time::timeout(Duration::from_secs(5), server).await.expect("stops after the delay").unwrap();
        assert!(signalled_at.elapsed() >= linger, "stopped {:?} after the signal", signalled_at.elapsed());
        assert!(tokio::net::TcpStream::connect(address).await.is_err(), "no longer listening");
    }
}
