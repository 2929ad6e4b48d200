//! A real DNS server on loopback answering for the zone, as the Route53 Resolver does inside a VPC:
//! Debian's dnsmasq, fed from the zone's SRV and A records and restarted when they change.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use ecssd_records::{Record, RecordType};
use tokio::process::{Child, Command};

use crate::world::DOMAIN;

/// dnsmasq serving a snapshot of the zone on `127.0.0.1:<port>`; killed when dropped.
#[derive(Debug)]
pub struct Dns {
    pub port: u16,
    child: Child,
    /// The dnsmasq options the current records became, to restart only on a change.
    served: BTreeSet<String>,
}

/// dnsmasq options answering for `records` (SRV and A; TXT is nobody's business here).
fn options(records: &[Record]) -> BTreeSet<String> {
    let mut options = BTreeSet::new();
    for record in records {
        let name = record.key.name.trim_end_matches('.');
        for value in record.values() {
            match record.key.record_type {
                RecordType::A => {
                    options.insert(format!("--host-record={name},{value}"));
                }
                RecordType::Srv => {
                    let fields: Vec<&str> = value.split_whitespace().collect();
                    if let [priority, weight, port, target] = fields[..] {
                        let target = target.trim_end_matches('.');
                        options.insert(format!("--srv-host={name},{target},{port},{priority},{weight}"));
                    }
                }
                RecordType::Txt => {}
            }
        }
    }
    options
}

impl Dns {
    /// Starts dnsmasq on a free loopback port answering for `records`.
    /// A port is free only between the probe and dnsmasq's bind: another process may take it in
    /// between (seen once in CI), so a failed start is tried again on another free port.
    pub async fn start(records: &[Record]) -> anyhow::Result<Self> {
        let served = options(records);
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            match spawn(port, &served).await {
                Ok(child) => return Ok(Self { port, child, served }),
                Err(e) if attempt < 5 => {
                    tracing::warn!(port, attempt, error = %e, "dnsmasq did not start; trying another port");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Serves `records` from now on (dnsmasq reads `--srv-host` only at start, so it restarts).
    pub async fn update(&mut self, records: &[Record]) -> anyhow::Result<bool> {
        let wanted = options(records);
        if wanted == self.served {
            return Ok(false);
        }
        let _ = self.child.kill().await;
        self.child = spawn(self.port, &wanted).await?;
        self.served = wanted;
        Ok(true)
    }

    /// `ip:port` for resolvers.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
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

async fn spawn(port: u16, records: &BTreeSet<String>) -> anyhow::Result<Child> {
    let mut command = Command::new("dnsmasq");
    command
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
        ])
        .args(["--listen-address=127.0.0.1", "--user=root", "--pid-file=", "--log-facility=-"])
        .arg(format!("--port={port}"))
        // Authoritative for the domain: a name with no records is NXDOMAIN, never forwarded.
        .arg(format!("--local=/{DOMAIN}/"))
        .args(records)
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
