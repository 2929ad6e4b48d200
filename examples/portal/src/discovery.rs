//! Finding instances by DNS: the SRV records of `_<service>._tcp.<domain>`, in RFC 2782 order
//! (lowest priority first, random within a priority), each target's A record resolved.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{ResolveError, TokioResolver};

/// Names cached: every service's SRV name and each instance's A name, with room to spare.
const CACHE_SIZE: usize = 256;

/// The longest this client remembers that a service has no instance: the stack's default negative
/// caching time (`NegativeCacheTtl`), and the sidecars' default record TTL.
pub const NEGATIVE_CACHE_LIMIT: Duration = Duration::from_secs(10);

/// One instance a service's SRV record points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The SRV target name, e.g. `<task-id>.servicediscovery.internal.`
    pub target: String,
    pub address: SocketAddr,
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
            let target = srv.target().to_utf8();
            match self.resolver.ipv4_lookup(srv.target().clone()).await {
                Ok(addresses) => {
                    if let Some(ip) = addresses.iter().next() {
                        let address = SocketAddr::new(IpAddr::V4(ip.0), srv.port());
                        instances.push(Instance { target, address });
                    }
                }
                // A target without an address is skipped; a failing resolver is worth saying.
                Err(e) if e.is_no_records_found() => {}
                Err(e) => resolver_error = Some(e),
            }
        }
        match (instances.is_empty(), resolver_error) {
            (false, _) => Ok(instances),
            (true, Some(e)) => Err(DiscoveryError::Resolver(e)),
            (true, None) => Err(DiscoveryError::NoneRegistered),
        }
    }
}
