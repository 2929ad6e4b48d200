//! The caching resolver in front of the zone's authority, as the Route53 Resolver is inside a VPC:
//! Debian's dnsmasq forwarding the domain (and nothing else) to the authority, caching positive
//! answers for their TTL and negative ones (NXDOMAIN and NODATA) for the TTL of the SOA the
//! authority sends with them, min(SOA TTL, MINIMUM) (RFC 2308 §5), which is what lets tests see what
//! a client sees when a service's last task withdraws. Measured with dnsmasq 2.90 for A, SRV and TXT:
//! its clock ticks in whole seconds, so an entry cached for N seconds lives between N-1 and N. An
//! upstream's REFUSED (no zone) is passed on, not cached; names outside the domain are REFUSED.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

/// Entries dnsmasq keeps (its default, 150, could evict a large bench's names and hide staleness).
const CACHE_SIZE: u32 = 10_000;

/// dnsmasq caching and forwarding `domain` to one upstream, on `127.0.0.1:<port>`; killed when
/// dropped.
#[derive(Debug)]
pub struct CachingResolver {
    port: u16,
    _child: Child,
}

impl CachingResolver {
    /// Starts dnsmasq on a free loopback port, forwarding queries for `domain` to `upstream`.
    /// A port is free only between the probe and dnsmasq's bind: another process may take it in
    /// between (seen once in CI), so a failed start is tried again on another free port.
    pub async fn start(domain: &str, upstream: SocketAddr) -> anyhow::Result<Self> {
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            match spawn(port, domain, upstream).await {
                Ok(child) => return Ok(Self { port, _child: child }),
                Err(e) if attempt < 5 => {
                    tracing::warn!(port, attempt, error = %e, "dnsmasq did not start; trying another port");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// A loopback port free for both TCP and UDP at this moment (dnsmasq listens on both).
fn free_port() -> anyhow::Result<u16> {
    for _ in 0..100 {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no loopback port free for both TCP and UDP in 100 tries")
}

async fn spawn(port: u16, domain: &str, upstream: SocketAddr) -> anyhow::Result<Child> {
    let mut command = Command::new("dnsmasq");
    command
        .args([
            "--keep-in-foreground",
            // No configuration file (not /etc/dnsmasq.conf), no /etc/resolv.conf, no /etc/hosts:
            // the domain's one upstream below is all it knows, so other names are REFUSED.
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--user=root",
            "--pid-file=",
            "--log-facility=-",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--cache-size={CACHE_SIZE}"))
        // dnsmasq 2.90 caches A, AAAA, CNAME and SRV answers; without this, TXT answers and TXT
        // NODATA are forwarded every time (measured), unlike the Route53 Resolver, which caches all.
        .arg("--cache-rr=TXT")
        .arg(format!("--server=/{domain}/{}#{}", upstream.ip(), upstream.port()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = command.spawn().context("starting dnsmasq (scripts/setup installs dnsmasq-base)")?;
    // Ready when it answers on TCP (it listens on TCP and UDP at once).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(child);
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("dnsmasq exited at start ({status}): is port {port} free?");
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "dnsmasq did not start within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
