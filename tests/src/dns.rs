//! A real DNS server on loopback answering for the zone, as the Route53 Resolver does inside a VPC:
//! Debian's dnsmasq, fed from the zone's SRV, A and TXT records and restarted when they change.
//! [`LiveDns`] keeps it following the zone by itself.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use ecssd_records::{CallError, Domain, Record, RecordStore, RecordType};
use ecssd_sidecar::dns::{self, Resolver};
use hickory_proto::rr::{RData, RecordType as DnsType};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::world::{DOMAIN, find_zone};

/// How often [`LiveDns`] re-reads the zone.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

/// dnsmasq serving a snapshot of the zone on `127.0.0.1:<port>`; killed when dropped.
#[derive(Debug)]
pub struct Dns {
    pub port: u16,
    child: Child,
    /// The dnsmasq configuration lines the current records became, to restart only on a change.
    served: BTreeSet<String>,
}

/// dnsmasq configuration lines answering for `records`. They go through a configuration file (stdin)
/// rather than the command line: dnsmasq honours quotes only there, and TXT strings need them.
fn options(records: &[Record]) -> BTreeSet<String> {
    let mut options = BTreeSet::new();
    for record in records {
        let name = record.key.name.trim_end_matches('.');
        for value in record.values() {
            match record.key.record_type {
                RecordType::A => {
                    options.insert(format!("host-record={name},{value}"));
                }
                RecordType::Srv => {
                    let fields: Vec<&str> = value.split_whitespace().collect();
                    if let [priority, weight, port, target] = fields[..] {
                        let target = target.trim_end_matches('.');
                        options.insert(format!("srv-host={name},{target},{port},{priority},{weight}"));
                    }
                }
                // One line per value: each value is one TXT RR of one or more strings.
                RecordType::Txt => {
                    let strings: Vec<String> = txt_strings(value).iter().map(|s| quote(s)).collect();
                    options.insert(format!("txt-record={name},{}", strings.join(",")));
                }
            }
        }
    }
    options
}

/// The character-strings of a TXT value as Route53 stores it (`"a" "b"`; a backslash escapes the
/// next character; an unquoted run of characters is one string).
fn txt_strings(value: &str) -> Vec<String> {
    let mut strings = Vec::new();
    let mut chars = value.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let quoted = c == '"';
        if quoted {
            chars.next();
        }
        let mut string = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => string.extend(chars.next()),
                '"' if quoted => break,
                c if c.is_whitespace() && !quoted => break,
                c => string.push(c),
            }
        }
        strings.push(string);
    }
    strings
}

/// One string quoted for a dnsmasq configuration file, where quotes keep `,` `:` `.` `#` literal and
/// `\\` and `\"` are the escapes.
fn quote(string: &str) -> String {
    format!("\"{}\"", string.replace('\\', "\\\\").replace('"', "\\\""))
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

    /// Serves `records` from now on (dnsmasq reads its records only at start, so it restarts).
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

    /// Asks this server for `name`'s records of `record_type` (see [`query`]).
    pub async fn query(&self, name: &str, record_type: RecordType) -> anyhow::Result<Answer> {
        query(&self.address(), name, record_type).await
    }
}

/// dnsmasq that follows the zone named [`DOMAIN`]: a background task re-reads it every 100 ms and
/// restarts dnsmasq when its records change. The zone is looked up by domain at every read, so a zone
/// deleted and created again is followed; while there is none, every name is NXDOMAIN. Dropped, it
/// stops following and dnsmasq is killed.
#[derive(Debug)]
pub struct LiveDns {
    port: u16,
    follower: JoinHandle<()>,
}

impl LiveDns {
    /// Starts dnsmasq answering for the zone's current records and keeps it following the zone,
    /// read through `client` (give it an observer's, so faults do not slow the follower down).
    pub async fn follow(client: aws_sdk_route53::Client) -> anyhow::Result<Self> {
        let domain: Domain = DOMAIN.parse()?;
        let records = zone_records(&client, &domain).await?.unwrap_or_default();
        let mut dns = Dns::start(&records).await?;
        let port = dns.port;
        let follower = tokio::spawn(async move {
            loop {
                tokio::time::sleep(FOLLOW_INTERVAL).await;
                let records = match zone_records(&client, &domain).await {
                    Ok(records) => records.unwrap_or_default(),
                    Err(e) => {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "live DNS: reading the zone failed; next poll retries"
                        );
                        continue;
                    }
                };
                if let Err(e) = dns.update(&records).await {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "live DNS: restarting dnsmasq failed; next poll retries"
                    );
                }
            }
        });
        Ok(Self { port, follower })
    }

    /// `127.0.0.1:<port>` for resolvers.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Asks this server for `name`'s records of `record_type` (see [`query`]).
    pub async fn query(&self, name: &str, record_type: RecordType) -> anyhow::Result<Answer> {
        query(&self.address(), name, record_type).await
    }
}

impl Drop for LiveDns {
    fn drop(&mut self) {
        // The task owns the Dns: cancelling it drops the Dns, which kills dnsmasq.
        self.follower.abort();
    }
}

/// The zone's records now; `None` while no zone has the domain.
async fn zone_records(
    client: &aws_sdk_route53::Client,
    domain: &Domain,
) -> anyhow::Result<Option<Vec<Record>>> {
    let Some(zone) = find_zone(client, domain).await? else {
        return Ok(None);
    };
    match zone.list_all().await {
        Ok(records) => Ok(Some(records)),
        // Deleted since it was found: there may be no zone now, or a new one the next poll finds.
        Err(CallError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What a DNS server answered: its response code and the answer section's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// 0 NOERROR, 3 NXDOMAIN (RFC 1035 4.1.1).
    pub rcode: u8,
    pub records: Vec<Rdata>,
}

impl Answer {
    pub const NOERROR: u8 = 0;
    pub const NXDOMAIN: u8 = 3;
}

/// One answer record's data; names without their trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rdata {
    A(Ipv4Addr),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    /// One TXT RR: its character-strings, in order.
    Txt(Vec<String>),
    /// Any other type, by number.
    Other(u16),
}

/// One DNS query to `server` (`ip:port`, loopback in tests), with a 2 s timeout, through the
/// sidecar's own DNS client; the answer section as clients see it.
pub async fn query(server: &str, name: &str, record_type: RecordType) -> anyhow::Result<Answer> {
    let dns_type = match record_type {
        RecordType::A => DnsType::A,
        RecordType::Txt => DnsType::TXT,
        RecordType::Srv => DnsType::SRV,
    };
    let resolver = Resolver::new(server.parse().with_context(|| format!("DNS server {server:?}"))?);
    let name = dns::fqdn(name).map_err(anyhow::Error::msg)?;
    let response = resolver.exchange(&name, dns_type).await.map_err(anyhow::Error::msg)?;
    let records = response
        .answers()
        .iter()
        .map(|record| match record.data() {
            RData::A(address) => Rdata::A(address.0),
            RData::SRV(srv) => Rdata::Srv {
                priority: srv.priority(),
                weight: srv.weight(),
                port: srv.port(),
                target: srv.target().to_ascii().trim_end_matches('.').to_owned(),
            },
            RData::TXT(txt) => Rdata::Txt(
                txt.txt_data().iter().map(|string| String::from_utf8_lossy(string).into_owned()).collect(),
            ),
            _ => Rdata::Other(u16::from(record.record_type())),
        })
        .collect();
    Ok(Answer { rcode: response.response_code().low(), records })
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
            // The records, read from stdin; also keeps dnsmasq off /etc/dnsmasq.conf.
            "--conf-file=-",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
        ])
        .args(["--listen-address=127.0.0.1", "--user=root", "--pid-file=", "--log-facility=-"])
        .arg(format!("--port={port}"))
        // Authoritative for the domain: a name with no records is NXDOMAIN, never forwarded.
        .arg(format!("--local=/{DOMAIN}/"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = command.spawn().context("starting dnsmasq (scripts/setup installs dnsmasq-base)")?;
    let mut config = String::new();
    for line in records {
        config.push_str(line);
        config.push('\n');
    }
    let mut stdin = child.stdin.take().context("dnsmasq's stdin")?;
    // A failed write means dnsmasq exited, which the loop below reports.
    let _ = stdin.write_all(config.as_bytes()).await;
    drop(stdin);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_values_split_into_their_strings() {
        assert_eq!(txt_strings(r#""heritage=ecssd" "owner=default""#), ["heritage=ecssd", "owner=default"]);
        assert_eq!(txt_strings(r#""a, b" "" plain"#), ["a, b", "", "plain"]);
        assert_eq!(txt_strings(r#""say \"hi\" \\o/""#), [r#"say "hi" \o/"#]);
    }

    #[test]
    fn each_txt_value_is_one_quoted_config_line() {
        let key = ecssd_records::RecordKey {
            name: "t.servicediscovery.internal.".into(),
            record_type: RecordType::Txt,
            set_identifier: None,
        };
        let record = Record::new(key, 0, vec![r#""a,b" "c""#.into(), r#""q\"""#.into()]);
        let lines: Vec<String> = options(&[record]).into_iter().collect();
        assert_eq!(
            lines,
            [
                r#"txt-record=t.servicediscovery.internal,"a,b","c""#,
                r#"txt-record=t.servicediscovery.internal,"q\"""#
            ]
        );
    }
}
