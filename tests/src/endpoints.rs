//! Real HTTP endpoints on loopback for health-check tests: one that answers 200, one that answers a
//! chosen status, one that accepts connections and never answers, and a port that refuses. Each binds
//! `127.0.0.1` or another loopback address of the test's choosing (on Linux every 127/8 address is
//! local), such as a loopback host's private IP from [`crate::ecs::Fleet::loopback_host`].

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How an endpoint behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers every request with this status.
    Status(u16),
    /// Accepts connections and reads, never answers.
    Hang,
    /// Nothing listens: connections are refused.
    Refuse,
    /// Connections get no answer at all, neither accepted nor refused, as from a host that is down or
    /// a network that drops them: a listener whose one-place accept queue is full and never accepted.
    Silent,
}

/// One endpoint on a loopback address; stops serving when dropped.
#[derive(Debug)]
pub struct TestEndpoint {
    /// The loopback address it listens on (or, refusing, where nothing listens).
    pub ip: Ipv4Addr,
    pub port: u16,
    /// Requests (or, when hanging, connections) it received.
    hits: Arc<AtomicUsize>,
    server: Option<JoinHandle<()>>,
}

impl TestEndpoint {
    /// An endpoint on `127.0.0.1`.
    pub async fn start(behaviour: Behaviour) -> anyhow::Result<Self> {
        Self::start_on(Ipv4Addr::LOCALHOST, behaviour).await
    }

    /// An endpoint on `ip`, which must be a loopback address: tests never listen elsewhere.
    pub async fn start_on(ip: Ipv4Addr, behaviour: Behaviour) -> anyhow::Result<Self> {
        anyhow::ensure!(ip.is_loopback(), "{ip} is not a loopback address");
        if behaviour == Behaviour::Silent {
            return Self::silent_on(ip).await;
        }
        let listener = TcpListener::bind((ip, 0)).await?;
        let port = listener.local_addr()?.port();
        let hits = Arc::new(AtomicUsize::new(0));
        let server = match behaviour {
            // The port was just free and is closed again: nothing listens there now. (A silent
            // endpoint was made above.)
            Behaviour::Refuse | Behaviour::Silent => None,
            Behaviour::Hang => Some(tokio::spawn(hang(listener, hits.clone()))),
            Behaviour::Status(status) => Some(tokio::spawn(serve(listener, status, hits.clone()))),
        };
        Ok(Self { ip, port, hits, server })
    }

    /// Linux drops a SYN (no reset) while a listener's accept queue is full: a backlog of 0 holds one
    /// connection, which this endpoint makes itself and never accepts.
    async fn silent_on(ip: Ipv4Addr) -> anyhow::Result<Self> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((ip, 0)))?;
        let listener = socket.listen(0)?;
        let addr = listener.local_addr()?;
        let filler = tokio::net::TcpStream::connect(addr).await?;
        let server = tokio::spawn(async move {
            let _held = (listener, filler);
            std::future::pending::<()>().await;
        });
        let hits = Arc::new(AtomicUsize::new(0));
        Ok(Self { ip, port: addr.port(), hits, server: Some(server) })
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.port))
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for TestEndpoint {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

async fn serve(listener: TcpListener, status: u16, hits: Arc<AtomicUsize>) {
    while let Ok((stream, _)) = listener.accept().await {
        let hits = hits.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_request| {
                hits.fetch_add(1, Ordering::SeqCst);
                async move {
                    let response = hyper::Response::builder()
                        .status(status)
                        .body(Full::new(Bytes::from_static(b"{\"status\":\"test\"}\n")))
                        .unwrap_or_default();
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn hang(listener: TcpListener, hits: Arc<AtomicUsize>) {
    let mut held = Vec::new();
    while let Ok((stream, _)) = listener.accept().await {
        hits.fetch_add(1, Ordering::SeqCst);
        // Kept open, never answered, until the endpoint is dropped.
        held.push(stream);
    }
}
