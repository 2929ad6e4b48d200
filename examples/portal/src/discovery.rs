//! Finding instances by DNS: the SRV records of `_<service>._tcp.<domain>`, in RFC 2782 order
//! (lowest priority first, random within a priority), each target's A and AAAA records resolved: a
//! task publishes an A record, an AAAA record or both at its target name, so an IPv6-only task is an
//! instance as much as an IPv4 one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{ResolveError, TokioResolver};

/// Names cached: every service's SRV name and each instance's A and AAAA names, with room to spare.
const CACHE_SIZE: usize = 256;

/// The longest this client remembers that a service has no instance: the stack's default negative
/// caching time (`NegativeCacheTtl`), and the sidecars' default record TTL.
pub const NEGATIVE_CACHE_LIMIT: Duration = Duration::from_secs(10);

/// One instance a service's SRV record points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The SRV target name, e.g. `<task-id>.servicediscovery.internal.`
    pub target: String,
    /// Where it is reached: each of the target's addresses at the SRV port, IPv4 first; never empty.
    pub addresses: Vec<SocketAddr>,
}

/// Why no instance could be listed.
#[derive(Debug)]
pub enum DiscoveryError {
    /// The name has no SRV records: nothing is registered.
    NoneRegistered,
    /// The resolver failed (timeout, server failure).
    Resolver(ResolveError),
}

/// Resolves service names in one domain.
#[derive(Debug, Clone)]
pub struct Discovery {
    resolver: TokioResolver,
    domain: String,
}

impl Discovery {
    /// Uses `server` (e.g. `127.0.0.1:5353`) when given, else the system's resolver configuration
    /// (inside a VPC: the Route53 Resolver, which answers for the private zone).
    pub fn new(domain: &str, server: Option<SocketAddr>) -> Result<Self, ResolveError> {
        let mut options = ResolverOpts::default();
        // Answers are cached for what is left of their TTL (the resolver hands out the remainder), so
        // a withdrawn instance is forgotten when every cache would forget it, within the sidecar's
        // drain. An absence is cached for the lesser of the SOA's TTL and MINIMUM (RFC 2308), and
        // never longer than NEGATIVE_CACHE_LIMIT: a service that scaled to zero and came back is
        // tried again within seconds whatever the zone says.
        options.cache_size = CACHE_SIZE;
        options.negative_max_ttl = Some(NEGATIVE_CACHE_LIMIT);
        let resolver = match server {
            Some(server) => {
                let servers = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
                TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, vec![], servers),
                    TokioConnectionProvider::default(),
                )
                .with_options(options)
                .build()
            }
            None => TokioResolver::builder_tokio()?.with_options(options).build(),
        };
        Ok(Self { resolver, domain: domain.trim_end_matches('.').to_owned() })
    }

    /// The full name of a service, e.g. `_calc._tcp.servicediscovery.internal.`
    pub fn name(&self, service: &str) -> String {
        format!("{service}.{}.", self.domain)
    }

    /// The instances of `service` (e.g. `_calc._tcp`) in the order to try them.
    pub async fn instances(&self, service: &str) -> Result<Vec<Instance>, DiscoveryError> {
        let records = match self.resolver.srv_lookup(self.name(service)).await {
            Ok(records) => records,
            Err(e) if e.is_no_records_found() => return Err(DiscoveryError::NoneRegistered),
            Err(e) => return Err(DiscoveryError::Resolver(e)),
        };
        let mut records: Vec<_> = records.iter().cloned().collect();
        fastrand::shuffle(&mut records);
        records.sort_by_key(|srv| srv.priority());
        let mut instances = Vec::new();
        let mut resolver_error = None;
        for srv in records {
            let name = srv.target().clone();
            // Both families at once: a target has either or both, and the two lookups are independent.
            let (ipv4, ipv6) =
                tokio::join!(self.resolver.ipv4_lookup(name.clone()), self.resolver.ipv6_lookup(name));
            let ipv4 = Found::from_lookup(ipv4.map(|found| found.iter().map(|a| a.0).collect()));
            let ipv6 = Found::from_lookup(ipv6.map(|found| found.iter().map(|a| a.0).collect()));
            let (addresses, error) = reachable_at(srv.port(), ipv4, ipv6);
            resolver_error = resolver_error.or(error);
            // A target without an address is skipped.
            if !addresses.is_empty() {
                instances.push(Instance { target: srv.target().to_utf8(), addresses });
            }
        }
        outcome(instances, resolver_error)
    }
}

/// What one lookup of a target's A or AAAA records gave.
#[derive(Debug)]
enum Found<T> {
    Addresses(Vec<T>),
    /// The name has no record of this type (NXDOMAIN or NODATA): the task lacks this family.
    NoRecords,
    Failed(ResolveError),
}

impl<T> Found<T> {
    fn from_lookup(result: Result<Vec<T>, ResolveError>) -> Self {
        match result {
            Ok(addresses) => Self::Addresses(addresses),
            Err(e) if e.is_no_records_found() => Self::NoRecords,
            Err(e) => Self::Failed(e),
        }
    }

    /// The addresses, and the error of a lookup that failed for another reason than the name
    /// lacking this type.
    fn split(self) -> (Vec<T>, Option<ResolveError>) {
        match self {
            Self::Addresses(addresses) => (addresses, None),
            Self::NoRecords => (Vec::new(), None),
            Self::Failed(e) => (Vec::new(), Some(e)),
        }
    }
}

/// One SRV target's addresses at its `port`, IPv4 first (a dual-stack task is reached as it was
/// before it had IPv6), and the first failed lookup's error: worth saying if no instance is found.
fn reachable_at(
    port: u16,
    ipv4: Found<Ipv4Addr>,
    ipv6: Found<Ipv6Addr>,
) -> (Vec<SocketAddr>, Option<ResolveError>) {
    let (ipv4, ipv4_error) = ipv4.split();
    let (ipv6, ipv6_error) = ipv6.split();
    let ips = ipv4.into_iter().map(IpAddr::V4).chain(ipv6.into_iter().map(IpAddr::V6));
    let mut addresses: Vec<SocketAddr> = Vec::new();
    for address in ips.map(|ip| SocketAddr::new(ip, port)) {
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    (addresses, ipv4_error.or(ipv6_error))
}

/// The instances found, else why there are none: the resolver's failure if a lookup failed, else
/// nothing registered.
fn outcome(
    instances: Vec<Instance>,
    resolver_error: Option<ResolveError>,
) -> Result<Vec<Instance>, DiscoveryError> {
    match (instances.is_empty(), resolver_error) {
        (false, _) => Ok(instances),
        (true, Some(e)) => Err(DiscoveryError::Resolver(e)),
        (true, None) => Err(DiscoveryError::NoneRegistered),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed<T>(message: &'static str) -> Found<T> {
        Found::Failed(ResolveError::from(message))
    }

    #[test]
    fn a_target_is_reached_at_its_ipv4_and_ipv6_addresses_ipv4_first() {
        let v4 = Ipv4Addr::new(10, 0, 3, 17);
        let v6: Ipv6Addr = "2600:1f18::17".parse().unwrap();
        let (dual, error) = reachable_at(8080, Found::Addresses(vec![v4]), Found::Addresses(vec![v6]));
        let expected: Vec<SocketAddr> =
            vec!["10.0.3.17:8080".parse().unwrap(), "[2600:1f18::17]:8080".parse().unwrap()];
        assert_eq!(dual, expected);
        assert!(error.is_none());

        let (only_v6, error) =
            reachable_at(9000, Found::NoRecords, Found::Addresses(vec![Ipv6Addr::LOCALHOST]));
        assert_eq!(only_v6, vec!["[::1]:9000".parse::<SocketAddr>().unwrap()]);
        assert!(error.is_none(), "a missing A record is no failure");

        let (only_v4, error) = reachable_at(80, Found::Addresses(vec![v4, v4]), Found::NoRecords);
        assert_eq!(only_v4, vec!["10.0.3.17:80".parse::<SocketAddr>().unwrap()], "each address once");
        assert!(error.is_none());
    }

    #[test]
    fn a_failed_lookup_leaves_the_other_family_and_is_remembered() {
        let (addresses, error) =
            reachable_at(9000, failed("A timed out"), Found::Addresses(vec![Ipv6Addr::LOCALHOST]));
        assert_eq!(addresses, vec!["[::1]:9000".parse::<SocketAddr>().unwrap()]);
        assert_eq!(error.unwrap().to_string(), "A timed out");

        let (addresses, error) = reachable_at(9000, Found::NoRecords, failed("AAAA timed out"));
        assert!(addresses.is_empty());
        assert_eq!(error.unwrap().to_string(), "AAAA timed out");
    }

    #[test]
    fn no_instance_is_a_resolver_failure_only_when_a_lookup_failed() {
        let instance = Instance {
            target: "t.servicediscovery.internal.".into(),
            addresses: vec!["[::1]:1".parse().unwrap()],
        };
        let found = outcome(vec![instance.clone()], Some(ResolveError::from("timed out"))).unwrap();
        assert_eq!(found, vec![instance], "instances found are used, whatever else failed");
        assert!(matches!(outcome(vec![], None), Err(DiscoveryError::NoneRegistered)));
        let failed = outcome(vec![], Some(ResolveError::from("timed out")));
        assert!(matches!(failed, Err(DiscoveryError::Resolver(e)) if e.to_string() == "timed out"));
    }
}
