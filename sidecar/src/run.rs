//! The sidecar's start: learn the task and its address, find the zone, then hand over to the event
//! loop ([`crate::event_loop`]). A start that cannot succeed ends the process with a message for the
//! operator; SIGTERM during it ends the start with nothing registered.

use std::future::Future;
use std::time::Duration;

use ecssd_edge::Route53Zone;
use ecssd_records::{AddressFamily, RetryPolicy, TaskAddresses, ZoneModel};

use crate::config::Config;
use crate::dns::{self, Resolver};
use crate::docker_siblings::SiblingLister;
use crate::error::SidecarError;
use crate::event_loop::{LoopSettings, ONE_ATTEMPT, ROUTE53_RETRY, Sidecar, ZoneFinder};
use crate::follower::{Follower, Worker};
use crate::heal::{HealSettings, Healer};
use crate::metadata::{self, NetworkMode, TaskEndpoint, TaskIdentity};
use crate::registrar::Registrar;
use crate::siblings::ReachablePort;
use crate::source::SourceClient;

/// Clients built once by `main`.
#[derive(Debug, Clone)]
pub struct Deps {
    /// Where the task's containers are seen (with the Docker client in Docker mode), and why (said at
    /// start).
    pub source: SourceClient,
    pub source_reason: String,
    pub route53: aws_sdk_route53::Client,
    /// Finding the host's address in bridge and host mode.
    pub host: crate::host_address::HostLookup,
    /// Where registrations go when Route53 throttles them, if configured.
    pub queue: Option<crate::registration_queue::RegistrationQueue>,
}

/// How often the task's containers are listed again even without Docker events.
const SAFETY_RESYNC: Duration = Duration::from_secs(30);

/// Finding the zone at start: throttling and other transient failures are retried for as long as it
/// takes (a deploy of hundreds of tasks throttles the account for minutes), said once a minute; only a
/// definite answer (no such zone, access denied) ends the start. ECS's start timeout or a stop signal
/// ends the wait.
const START_RETRY: RetryPolicy =
    RetryPolicy { base: Duration::from_secs(1), cap: Duration::from_secs(20), give_up_after: None };

/// Runs until `shutdown` resolves (then withdraws and drains). It fails only at start, for what an
/// operator must fix (no task metadata, no Docker, no zone); afterwards every failure is retried.
/// `shutdown` during the start ends it at once, with nothing registered.
pub async fn run(config: Config, deps: Deps, shutdown: impl Future<Output = ()>) -> Result<(), SidecarError> {
    let mut shutdown = std::pin::pin!(shutdown);
    let started = tokio::select! {
        started = start(&config, &deps) => started?,
        () = &mut shutdown => {
            tracing::info!("stop signal during start: nothing was registered; exiting");
            return Ok(());
        }
    };
    let Started { mut worker, subscriber, healer, endpoint, settings, zone_finder } = started;
    if config.deregister {
        let done = tokio::select! {
            done = worker.registrar.withdraw() => done?,
            () = &mut shutdown => return Ok(()),
        };
        tracing::info!(changes = done.changes, "withdrew every record of the task");
        return Ok(());
    }
    Sidecar::new(settings, worker, subscriber, healer, endpoint, zone_finder).run(shutdown).await
}

/// What the start learned and built: the loop's parts.
struct Started {
    worker: Worker,
    subscriber: Option<SiblingLister>,
    healer: Option<Healer>,
    endpoint: TaskEndpoint,
    settings: LoopSettings,
    zone_finder: Option<ZoneFinder>,
}

async fn start(config: &Config, deps: &Deps) -> Result<Started, SidecarError> {
    let wait = Duration::from_secs(config.metadata_wait_seconds);
    let endpoint = TaskEndpoint::new(config.metadata_uri.as_deref())?;
    let identity = metadata::task_identity(&endpoint, wait).await?;
    let (address, address_source) = reachable_address(config, &deps.host, &identity, wait).await?;
    let (follower, subscriber) = match &deps.source {
        SourceClient::Docker(docker) => {
            docker.ping().await.map_err(|e| SidecarError::NoDocker(e.to_string()))?;
            let task = identity.task.to_string();
            let lister = SiblingLister::new(docker.clone(), task.clone());
            (Follower::Docker { lister }, Some(SiblingLister::new(docker.clone(), task)))
        }
        SourceClient::Metadata => {
            (Follower::Metadata { endpoint: endpoint.clone(), checked_for_labels: false }, None)
        }
    };
    let zone = match &config.zone_id {
        Some(id) => Route53Zone::for_id(deps.route53.clone(), id, config.domain.clone(), ROUTE53_RETRY),
        None => Route53Zone::find(deps.route53.clone(), config.domain.clone(), START_RETRY).await?,
    };
    let healer = healer(config);
    tracing::info!(task = %identity.task, cluster = %identity.cluster, network_mode = ?identity.network_mode,
        %address, address_source = address_source.as_str(), zone_id = zone.zone_id(), domain = %config.domain,
        source = deps.source.source().as_str(), source_reason = deps.source_reason,
        resolver = healer.as_ref().map(|h| h.resolver().address.to_string()),
        registration_queue = config.registration_queue_url.as_deref(), "ecssd sidecar starting");
    if config.registration_queue_url.is_some() && healer.is_none() {
        tracing::warn!(
            "ECSSD_REGISTRATION_QUEUE_URL is set, but self-healing is off: registrations are not handed \
            over (a DNS check confirms each handoff), and Route53 throttling is retried by the sidecar itself"
        );
    }
    let model = ZoneModel { domain: config.domain.clone(), owner: config.owner_id.clone(), ttl: config.ttl };
    // Deregistering retries each call itself; the loop's calls are single attempts it retries.
    let store = if config.deregister { zone } else { zone.with_retry(ONE_ATTEMPT) };
    let mut registrar =
        Registrar::new(store, model, identity.task.clone(), identity.cluster.clone(), address)
            .with_refused_retry(config.refused_retry())
            // A handoff is confirmed by the DNS checks: without them (or with `--once`, which exits
            // before any), none is made.
            .with_queue(
                deps.queue.clone().filter(|_| healer.is_some() && !config.deregister && !config.once),
            );
    if healer.is_none() || config.deregister {
        // No DNS check will find what an earlier run of this task left: read it now (once).
        registrar.invalidate();
    }
    let settings = LoopSettings {
        once: config.once,
        coalesce: config.coalesce(),
        resync_every: if subscriber.is_some() { SAFETY_RESYNC } else { config.metadata_poll() },
        drain: config.drain(),
    };
    let zone_finder = config
        .zone_id
        .is_none()
        .then(|| ZoneFinder { client: deps.route53.clone(), domain: config.domain.clone() });
    let port = ReachablePort::of(identity.network_mode, address);
    let worker = Worker { follower, registrar, port, reported: Vec::new() };
    Ok(Started { worker, subscriber, healer, endpoint, settings, zone_finder })
}

/// The DNS checker, unless self-healing is off or no resolver is known.
fn healer(config: &Config) -> Option<Healer> {
    if config.heal_check_seconds == 0 {
        return None;
    }
    let Some(resolver) = config.resolver.or_else(dns::system_resolver) else {
        tracing::warn!(
            "no DNS resolver (set ECSSD_RESOLVER): records deleted behind the sidecar's back are not noticed"
        );
        return None;
    };
    let settings = HealSettings {
        every: Duration::from_secs(config.heal_check_seconds),
        dns_lag: Duration::from_secs(config.heal_dns_lag_seconds),
        propagation: Duration::from_secs(config.heal_propagation_seconds),
        verify_every: Duration::from_secs(config.heal_verify_seconds),
        ttl: Duration::from_secs(u64::from(config.ttl)),
    };
    Some(Healer::new(Resolver::new(resolver), settings))
}

/// The addresses other tasks reach this task's ports at, and where they came from. `awsvpc`: every
/// address the ENI has. `bridge` and `host`: the host's IPv4 address, or its IPv6 address on an
/// IPv6-only host (the first host source, the container metadata file, gives a dual-stack host's
/// IPv4 address only, so publishing both by default would depend on which source answered); `dual`
/// in host mode asks for both. `bridge` publishes one family: Docker may map a port to another host
/// port on IPv6 than on IPv4 (aws/amazon-ecs-agent issue 3096), and an SRV record has one port.
/// `ECSSD_ADDRESS_FAMILY` picks among them, and a family the task lacks stops the start.
async fn reachable_address(
    config: &Config,
    host: &crate::host_address::HostLookup,
    identity: &TaskIdentity,
    wait: Duration,
) -> Result<(TaskAddresses, crate::host_address::AddressSource), SidecarError> {
    use crate::host_address::{self, AddressSource};
    let mode = identity.network_mode;
    if mode == NetworkMode::Bridge && config.address_family == Some(AddressFamily::Dual) {
        return Err(SidecarError::BridgeFamily);
    }
    let (has, source) = match (config.address, mode) {
        (Some(configured), _) => (configured, AddressSource::Configured),
        (None, NetworkMode::Awsvpc(eni)) => (eni, AddressSource::TaskEni),
        (None, NetworkMode::Bridge | NetworkMode::Host) => {
            host_address::find(host, identity, config.address_family, wait).await?
        }
    };
    let one_family = mode == NetworkMode::Bridge || (config.address.is_none() && mode == NetworkMode::Host);
    let published = match (config.address_family, has) {
        (Some(family), has) => has.select(family)?,
        (None, TaskAddresses::Dual(ipv4, _)) if one_family => TaskAddresses::Ipv4(ipv4),
        (None, has) => has,
    };
    Ok((published, source))
}
