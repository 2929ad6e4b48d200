//! DNS for the zone as a VPC sees it: an authoritative server answering from the zone as Route53's
//! name servers do ([`authority`], uncached, SOA included), and in front of it a caching resolver
//! ([`resolver`], Debian's dnsmasq) playing the Route53 Resolver, which remembers answers for their
//! TTL and absences for the SOA's negative TTL. Clients (the portal, sidecars' DNS checks) ask the
//! resolver, [`Dns::address`]; a test about following the zone rather than caching asks the
//! authority, [`Dns::authority_address`]. [`LiveDns`] keeps both following the zone by itself.

pub mod authority;
pub mod resolver;

use std::collections::VecDeque;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ecssd_records::{CallError, Domain, RecordStore, RecordType, Soa, SoaStore};
use ecssd_sidecar::dns::{self, Resolver};
use hickory_proto::rr::{RData, RecordType as DnsType};
use tokio::task::JoinHandle;

use self::authority::Authority;
pub use self::authority::ZoneContents;
use self::resolver::CachingResolver;
use crate::world::{DOMAIN, STACK_NEGATIVE_TTL, find_zone};

/// How often [`LiveDns`] re-reads the zone: the authority's lag behind Route53's API.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

/// The authority serving a snapshot of the zone named [`DOMAIN`] and the caching resolver in front
/// of it, on loopback; both stop when dropped.
#[derive(Debug)]
pub struct Dns {
    // Declared first so the resolver stops before its upstream.
    resolver: CachingResolver,
    authority: Authority,
}

impl Dns {
    /// Starts both, the authority answering from `zone` (`None`: no zone has the domain).
    pub async fn start(zone: Option<ZoneContents>) -> anyhow::Result<Self> {
        let authority = Authority::start(DOMAIN, zone).await?;
        let resolver = CachingResolver::start(DOMAIN, authority.address()).await?;
        Ok(Self { resolver, authority })
    }

    /// Makes the authority answer from `zone` from now on, in place; true when that changed
    /// anything. The resolver keeps what it cached until it expires, as the VPC's does.
    pub fn update(&self, zone: Option<ZoneContents>) -> anyhow::Result<bool> {
        self.authority.serve(zone)
    }

    /// `127.0.0.1:<port>` of the caching resolver: what clients in the VPC ask.
    pub fn address(&self) -> String {
        self.resolver.address().to_string()
    }

    /// `127.0.0.1:<port>` of the authority: the zone as Route53's name servers answer it, uncached.
    pub fn authority_address(&self) -> String {
        self.authority.address().to_string()
    }

    /// Asks the caching resolver for `name`'s records of `record_type` (see [`query`]).
    pub async fn query(&self, name: &str, record_type: RecordType) -> anyhow::Result<Answer> {
        query(&self.address(), name, record_type).await
    }

    /// Asks the authority for `name`'s records of `record_type` (see [`query`]).
    pub async fn query_authority(&self, name: &str, record_type: RecordType) -> anyhow::Result<Answer> {
        query(&self.authority_address(), name, record_type).await
    }
}

/// [`Dns`] following the zone named [`DOMAIN`]: every [`FOLLOW_INTERVAL`] a background task asks moto
/// whether Route53 changed (`GET /_ecssd/route53-version`, a harness control: Route53's name servers
/// are told of changes, they do not list the zone through the API), and only then re-reads the zone's
/// records and SOA and replaces the authority's snapshot. (Listing a zone of thousands of records ten
/// times a second was most of moto's work under a fleet of a thousand sidecars.) The zone is looked up
/// by domain at every read, so a zone deleted and created again is followed; while there is none, the
/// authority answers REFUSED, as a name server that does not host the zone. Dropped, it stops
/// following and both servers stop.
#[derive(Debug)]
pub struct LiveDns {
    dns: Arc<Dns>,
    follower: JoinHandle<()>,
}

impl LiveDns {
    /// Starts DNS answering for the zone as it is now and keeps it following the zone, read through
    /// `client` (give it an observer's, so faults do not slow the follower down) whenever the
    /// Route53 of the moto at `moto_endpoint` says it changed.
    pub async fn follow(client: aws_sdk_route53::Client, moto_endpoint: &str) -> anyhow::Result<Self> {
        Self::follow_after(client, moto_endpoint, Duration::ZERO).await
    }

    /// As [`follow`](Self::follow), but the authority shows each state of the zone `propagation`
    /// after it was read, as Route53's name servers show a change some time after the API accepted it
    /// ("generally within 60 seconds").
    pub async fn follow_after(
        client: aws_sdk_route53::Client,
        moto_endpoint: &str,
        propagation: Duration,
    ) -> anyhow::Result<Self> {
        let domain: Domain = DOMAIN.parse()?;
        let version_url = format!("{moto_endpoint}/_ecssd/route53-version");
        let mut read_at = route53_version(&version_url).await?;
        let dns = Arc::new(Dns::start(zone_contents(&client, &domain).await?).await?);
        let serving = dns.clone();
        let follower = tokio::spawn(async move {
            // States read but not shown yet, each with when it is due.
            let mut propagating = VecDeque::new();
            loop {
                tokio::time::sleep(FOLLOW_INTERVAL).await;
                // Asked before reading: a change made while the zone is read is read again next time.
                let read = match route53_version(&version_url).await {
                    Ok(version) if version == read_at => Ok(None),
                    Ok(version) => zone_contents(&client, &domain).await.map(|zone| Some((version, zone))),
                    Err(e) => Err(e.context("asking moto whether Route53 changed")),
                };
                let followed = match read {
                    Ok(read) => {
                        if let Some((version, zone)) = read {
                            read_at = version;
                            propagating.push_back((Instant::now() + propagation, zone));
                        }
                        let mut shown = Ok(false);
                        while propagating.front().is_some_and(|(due, _)| *due <= Instant::now()) {
                            if let Some((_, zone)) = propagating.pop_front() {
                                shown = serving.update(zone);
                            }
                        }
                        shown
                    }
                    Err(e) => Err(e.context("reading the zone")),
                };
                if let Err(e) = followed {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "live DNS: following the zone failed; next poll retries"
                    );
                }
            }
        });
        Ok(Self { dns, follower })
    }

    /// `127.0.0.1:<port>` of the caching resolver (see [`Dns::address`]).
    pub fn address(&self) -> String {
        self.dns.address()
    }

    /// A sidecar's settings for checking its records through this DNS: the resolver, the world's
    /// zone's negative TTL ([`STACK_NEGATIVE_TTL`]) as how long DNS may lag, and 1 s for a change to
    /// show (the follower re-reads the zone every [`FOLLOW_INTERVAL`]).
    pub fn sidecar_env(&self) -> Vec<(String, String)> {
        vec![
            ("ECSSD_RESOLVER".to_owned(), self.address()),
            ("ECSSD_HEAL_DNS_LAG_SECONDS".to_owned(), STACK_NEGATIVE_TTL.to_string()),
            ("ECSSD_HEAL_PROPAGATION_SECONDS".to_owned(), "1".to_owned()),
        ]
    }

    /// `127.0.0.1:<port>` of the authority (see [`Dns::authority_address`]).
    pub fn authority_address(&self) -> String {
        self.dns.authority_address()
    }

    /// Asks the caching resolver (see [`query`]).
    pub async fn query(&self, name: &str, record_type: RecordType) -> anyhow::Result<Answer> {
        self.dns.query(name, record_type).await
    }

    /// Asks the authority (see [`query`]).
    pub async fn query_authority(&self, name: &str, record_type: RecordType) -> anyhow::Result<Answer> {
        self.dns.query_authority(name, record_type).await
    }
}

impl Drop for LiveDns {
    fn drop(&mut self) {
        // The task holds the other reference to the Dns: cancelling it lets both servers stop.
        self.follower.abort();
    }
}

/// How many times moto's Route53 zones have changed (`/_ecssd/route53-version`).
async fn route53_version(url: &str) -> anyhow::Result<u64> {
    let answer = crate::http::get_json(url).await?;
    answer["version"].as_u64().with_context(|| format!("{url} answered {answer}, not {{\"version\": n}}"))
}

/// The zone's records and SOA now; `None` while no zone has the domain.
async fn zone_contents(
    client: &aws_sdk_route53::Client,
    domain: &Domain,
) -> anyhow::Result<Option<ZoneContents>> {
    let Some(zone) = find_zone(client, domain).await? else {
        return Ok(None);
    };
    let read = async {
        Ok::<_, CallError>(ZoneContents { records: zone.list_all().await?, soa: zone.read_soa().await? })
    };
    match read.await {
        Ok(contents) => Ok(Some(contents)),
        // Deleted since it was found: there may be no zone now, or a new one the next poll finds.
        Err(CallError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What a DNS server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED (RFC 1035 §4.1.1).
    pub rcode: u8,
    /// AA: the zone's own server answered, not a cache.
    pub authoritative: bool,
    /// The answer section's records.
    pub records: Vec<Rdata>,
    /// The lowest TTL in the answer section (what a cache counts down).
    pub ttl: Option<u32>,
    /// The SOA of the authority section, with its TTL as served: in a negative answer, how long a
    /// resolver may cache the absence (RFC 2308 §3).
    pub soa: Option<Soa>,
}

impl Answer {
    pub const NOERROR: u8 = 0;
    pub const SERVFAIL: u8 = 2;
    pub const NXDOMAIN: u8 = 3;
    pub const REFUSED: u8 = 5;

    /// NXDOMAIN or NODATA: nothing of the type asked for at the name.
    pub fn is_absent(&self) -> bool {
        self.rcode == Self::NXDOMAIN || (self.rcode == Self::NOERROR && self.records.is_empty())
    }
}

/// One answer record's data; names without their trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rdata {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
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
/// sidecar's own DNS client; the answer as clients see it.
pub async fn query(server: &str, name: &str, record_type: RecordType) -> anyhow::Result<Answer> {
    let dns_type = match record_type {
        RecordType::A => DnsType::A,
        RecordType::Aaaa => DnsType::AAAA,
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
            RData::AAAA(address) => Rdata::Aaaa(address.0),
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
    let soa = response.name_servers().iter().find_map(|record| match record.data() {
        RData::SOA(soa) => Some(Soa {
            ttl: record.ttl(),
            primary: soa.mname().to_ascii(),
            mailbox: soa.rname().to_ascii(),
            serial: soa.serial(),
            // The wire's 32 bits, which hickory types as signed.
            refresh: soa.refresh() as u32,
            retry: soa.retry() as u32,
            expire: soa.expire() as u32,
            minimum: soa.minimum(),
        }),
        _ => None,
    });
    Ok(Answer {
        rcode: response.response_code().low(),
        authoritative: response.authoritative(),
        ttl: response.answers().iter().map(|record| record.ttl()).min(),
        records,
        soa,
    })
}
