//! The sidecar's life: learn the task, register, follow Docker events or poll task metadata, withdraw on
//! shutdown.

use std::future::Future;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::models::EventMessage;
use ecssd_edge::Route53Zone;
use ecssd_records::{Backoff, RetryPolicy, ZoneModel};
use ecssd_records::{RecordSet, RecordType};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, future};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::Config;
use crate::dns::{self, Resolver};
use crate::docker_siblings::SiblingLister;
use crate::error::SidecarError;
use crate::heal::{self, HealSettings, Healer, Next};
use crate::metadata::{self, NetworkMode, TaskEndpoint, TaskIdentity};
use crate::metadata_siblings;
use crate::problems::{Problem, Problems};
use crate::registrar::{Converged, Registrar};
use crate::siblings::{self, EndpointProblem, Sibling};
use crate::source::SourceClient;

/// Clients built once by `main`.
#[derive(Debug, Clone)]
pub struct Deps {
    /// Where the task's containers are seen (with the Docker client in Docker mode), and why (said at
    /// start).
    pub source: SourceClient,
    pub source_reason: String,
    pub route53: aws_sdk_route53::Client,
}

/// Docker event actions that can change what the task publishes. Others (notably `exec_*`, which
/// every HEALTHCHECK run emits) are ignored.
fn is_relevant(event: &EventMessage) -> bool {
    let action = event.action.as_deref().unwrap_or_default();
    matches!(action, "start" | "die" | "stop" | "kill" | "destroy" | "pause" | "unpause" | "restart" | "oom")
        || action.starts_with("health_status")
}

/// How often the task's containers are listed again even without Docker events.
const SAFETY_RESYNC: Duration = Duration::from_secs(30);

/// Retrying a convergence Route53 failed after start: soon at first, then about once a minute, for as
/// long as it takes (a fleet's retries spend the account's rate).
const AFTER_START_RETRY: RetryPolicy =
    RetryPolicy { base: Duration::from_secs(1), cap: Duration::from_secs(60), give_up_after: None };

/// Retrying the task's local source (the Docker socket, task metadata) after a failed listing: these
/// cost no AWS call, and a change made while they failed is seen within 5 s of their return.
const SOURCE_RETRY: RetryPolicy =
    RetryPolicy { base: Duration::from_millis(500), cap: Duration::from_secs(5), give_up_after: None };

/// What a DNS check heard, per (name, type).
type Answers = std::collections::BTreeMap<(String, RecordType), Result<dns::Answer, String>>;

/// A DNS check under way, and what it asks about.
#[derive(Debug)]
struct DnsCheck {
    answers: JoinHandle<Answers>,
    written: RecordSet,
    absent: Vec<(String, RecordType)>,
}

/// Route53 calls: retried while transient for up to a minute, then the failure is a problem the run
/// loop retries and reports, so a long outage neither blocks the loop nor goes unsaid.
const ROUTE53_RETRY: RetryPolicy = RetryPolicy {
    base: Duration::from_millis(200),
    cap: Duration::from_secs(5),
    give_up_after: Some(Duration::from_secs(60)),
};

/// When the next full resync is due, and the time (ns) of the event that asked for it.
type Pending = Option<(Instant, Option<i64>)>;

/// Asks for a resync at `at` unless one is due sooner; the first event of a burst keeps its time.
fn schedule(pending: &mut Pending, at: Instant, event_ns: Option<i64>) {
    *pending = match *pending {
        Some((due, first)) if due <= at => Some((due, first.or(event_ns))),
        Some((_, first)) => Some((at, first.or(event_ns))),
        None => Some((at, event_ns)),
    };
}

/// Runs until `shutdown` resolves (then withdraws and drains). It fails only at start, for what an
/// operator must fix (no task metadata, no Docker, no zone); afterwards every failure is retried.
pub async fn run(config: Config, deps: Deps, shutdown: impl Future<Output = ()>) -> Result<(), SidecarError> {
    let wait = Duration::from_secs(config.metadata_wait_seconds);
    let endpoint = TaskEndpoint::new(config.metadata_uri.as_deref())?;
    let identity = metadata::task_identity(&endpoint, wait).await?;
    let address = reachable_address(&config, &identity, wait).await?;
    let mut follower = match &deps.source {
        SourceClient::Docker(docker) => {
            docker.ping().await.map_err(|e| SidecarError::NoDocker(e.to_string()))?;
            Follower::Docker { lister: SiblingLister::new(docker.clone(), identity.task.to_string()) }
        }
        SourceClient::Metadata => {
            Follower::Metadata { endpoint: endpoint.clone(), checked_for_labels: false }
        }
    };
    let zone = match &config.zone_id {
        Some(id) => Route53Zone::for_id(deps.route53.clone(), id, config.domain.clone(), ROUTE53_RETRY),
        None => Route53Zone::find(deps.route53.clone(), config.domain.clone(), ROUTE53_RETRY).await?,
    };
    let mut healer = healer(&config);
    tracing::info!(task = %identity.task, cluster = %identity.cluster, network_mode = ?identity.network_mode,
        %address, zone_id = zone.zone_id(), domain = %config.domain, source = deps.source.source().as_str(),
        source_reason = deps.source_reason,
        resolver = healer.as_ref().map(|h| h.resolver().address.to_string()), "ecssd sidecar starting");
    let model = ZoneModel { domain: config.domain.clone(), owner: config.owner_id.clone(), ttl: config.ttl };
    let mut registrar = Registrar::new(zone, model, identity.task.clone(), identity.cluster.clone(), address);
    if healer.is_none() {
        // No DNS check will find what an earlier run of this task left: read it now (two calls, once).
        registrar.invalidate();
    }

    if config.deregister {
        registrar.invalidate();
        let done = registrar.withdraw().await?;
        tracing::info!(changes = done.changes, "withdrew every record of the task");
        return Ok(());
    }

    let mut shutdown = std::pin::pin!(shutdown);
    let mode = identity.network_mode;
    // Subscribed from now, before the first listing: Docker replays events since then whenever the
    // (lazy) stream is first polled, so nothing in between is missed.
    let mut events_since = unix_seconds() - 1;
    let mut events = if config.once { None } else { follower.subscribe(events_since) };
    let mut reported = Vec::new();
    let mut problems = Problems::default();
    // Docker mode: a safety net for events Docker dropped. Metadata mode: the poll that finds changes.
    let resync_every = match follower {
        Follower::Docker { .. } => SAFETY_RESYNC,
        Follower::Metadata { .. } => config.metadata_poll(),
    };
    let mut safety_net = tokio::time::interval_at(Instant::now() + resync_every, resync_every);
    safety_net.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Reconnecting to Docker's event stream.
    let mut reconnect = Backoff::new(RetryPolicy::default());
    let mut retry = Backoff::new(AFTER_START_RETRY);
    let mut source_retry = Backoff::new(SOURCE_RETRY);
    let mut pending: Pending = Some((Instant::now(), None));
    // After a failed convergence, nothing (events, the safety net) brings the retry forward: a fleet
    // whose changes Route53 refuses must not retry in step with Docker's events.
    let mut retrying_until = Instant::now();
    let mut reconnect_at: Option<Instant> = None;
    // None until the first convergence, then checked at once: a restarted sidecar with nothing to
    // publish learns of its predecessor's leftovers there.
    let mut next_check: Option<Instant> = None;
    // A DNS check under way (off the loop: a silent resolver must not delay events), with what it asks
    // about.
    let mut check: Option<DnsCheck> = None;
    // Once ECS has decided to stop the task, its records are withdrawn and nothing is published or
    // repaired again: its containers may run on for minutes (a load balancer's deregistration delay),
    // and ecssd's withdrawer may already have deleted the records on ECS's event.
    let mut stopping = false;

    loop {
        let resync_due = sleep_until(pending.map(|p| p.0));
        let reconnect_due = sleep_until(reconnect_at);
        let check_due = sleep_until(next_check);
        let check_done = async {
            match check.as_mut() {
                Some(check) => (&mut check.answers).await,
                None => future::pending().await,
            }
        };
        let next_event = async {
            match events.as_mut() {
                Some(stream) => stream.next().await,
                None => future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            // A periodic resync costs a container listing or a metadata read, and Route53 nothing
            // unless something changed.
            _ = safety_net.tick() => schedule(&mut pending, retrying_until.max(Instant::now()), None),
            () = reconnect_due => {
                reconnect_at = None;
                events = follower.subscribe(events_since);
                schedule(&mut pending, retrying_until.max(Instant::now()), None);
            }
            () = resync_due => {
                let first_event = pending.take().and_then(|p| p.1);
                // Metadata mode reads the task's status with its containers.
                if !config.once && matches!(follower, Follower::Docker { .. }) {
                    learn_of_a_stop(&mut stopping, &endpoint).await;
                }
                let converge = async {
                    if stopping {
                        registrar.withdraw().await.map_err(ResyncError::Route53)
                    } else {
                        follower.resync(mode, &mut registrar, &mut reported, first_event, &mut stopping).await
                    }
                };
                let outcome = tokio::select! {
                    outcome = converge => outcome,
                    () = &mut shutdown => break,
                };
                if !matches!(outcome, Err(ResyncError::Source(_))) {
                    // The task's containers were seen, whatever Route53 then did.
                    source_retry.reset();
                    problems.clear(Problem::DockerUnreachable);
                    problems.clear(Problem::MetadataUnreachable);
                }
                match outcome {
                    Ok(done) => {
                        retry.reset();
                        retrying_until = Instant::now();
                        if done.requests + done.reads > 0 {
                            problems.route53_answered();
                        }
                        if let Some(healer) = healer.as_mut() {
                            // A read-back follows a request whose outcome was unclear (a lost
                            // answer retried into a conflict): it may have written too.
                            if done.requests + done.reads > 0 {
                                healer.wrote();
                            }
                            healer.repaired(done.changes);
                            // The first check runs right after the first convergence, or once Route53
                            // can show what it wrote.
                            let first = healer.quiet_until().unwrap_or_else(Instant::now);
                            next_check.get_or_insert(first);
                        }
                        if config.once {
                            if stopping {
                                tracing::info!("ECS is stopping the task: withdrew its records; exiting (--once)");
                            } else {
                                tracing::info!("registered once; exiting (--once)");
                            }
                            return Ok(());
                        }
                    }
                    Err(ResyncError::Source(e)) if config.once => return Err(SidecarError::Source(e.to_string())),
                    Err(ResyncError::Source(e)) => {
                        let delay = source_retry.next_delay();
                        let problem = match e {
                            SourceError::Docker(_) => Problem::DockerUnreachable,
                            SourceError::Metadata(_) => Problem::MetadataUnreachable,
                        };
                        problems.report(problem, &e, delay);
                        // Never sooner than a Route53 backoff already running.
                        retrying_until = retrying_until.max(Instant::now() + delay);
                        schedule(&mut pending, retrying_until, first_event);
                    }
                    Err(ResyncError::Route53(e)) if config.once => return Err(e),
                    Err(ResyncError::Route53(e)) => {
                        let delay = retry.next_delay();
                        let problem = Problem::of(&e);
                        problems.report(problem, &e, delay);
                        if problem == Problem::ZoneNotFound && config.zone_id.is_none() {
                            tokio::select! {
                                () = find_zone_again(&config, &deps, &mut registrar) => {}
                                () = &mut shutdown => break,
                            }
                        }
                        retrying_until = Instant::now() + delay;
                        schedule(&mut pending, retrying_until, first_event);
                    }
                }
                if let Some(at) = registrar.next_retry() {
                    schedule(&mut pending, at.max(retrying_until), None);
                }
            }
            () = check_due => {
                let Some(healer) = healer.as_ref() else { continue };
                if let Some(until) = healer.quiet_until() {
                    // A write since this check was scheduled: ask once Route53 can show it.
                    next_check = Some(until);
                    continue;
                }
                next_check = Some(Instant::now() + healer.every().mul_f64(0.9 + 0.2 * fastrand::f64()));
                // Each check also asks task metadata (no API call) whether ECS is stopping the task.
                if learn_of_a_stop(&mut stopping, &endpoint).await {
                    schedule(&mut pending, retrying_until.max(Instant::now()), None);
                }
                if stopping {
                    tracing::debug!("DNS check skipped: ECS is stopping the task");
                    continue;
                }
                if check.is_some() {
                    continue;
                }
                // Unknown after an interrupted write: the next convergence reads the records anyway.
                let Some(written) = registrar.written().cloned() else { continue };
                let absent = if written.is_empty() { vec![registrar.ownership_name()] } else { Vec::new() };
                let answers = tokio::spawn(heal::ask(healer.resolver(), heal::questions(&written, &absent)));
                check = Some(DnsCheck { answers, written, absent });
            }
            answers = check_done => {
                let Some(DnsCheck { written, absent, .. }) = check.take() else { continue };
                let (Some(healer), Ok(answers)) = (healer.as_mut(), answers) else { continue };
                // What to read through the API, why, and whether it confirms a disagreement.
                let (keys, reason, confirming) = match healer.decide_on(&written, &absent, &answers) {
                    Next::Nothing => {
                        tracing::debug!("DNS check: nothing to repair");
                        continue;
                    }
                    Next::Confirm { key, reason } => (vec![key], reason, true),
                    Next::Verify(keys) => {
                        let reason = format!("{} SRV record(s) DNS could not show are not as written", keys.len());
                        (keys, reason, false)
                    }
                };
                let read = tokio::select! {
                    read = registrar.verify(&keys) => read,
                    () = &mut shutdown => break,
                };
                let repair = match read {
                    Ok(as_written) => {
                        if confirming {
                            healer.confirmed(as_written);
                        }
                        (!as_written).then_some(reason)
                    }
                    // Converging finds the zone again, if it was recreated.
                    Err(e) if Problem::of(&e) == Problem::ZoneNotFound => Some(e.to_string()),
                    Err(e) => {
                        problems.report(Problem::of(&e), &e, healer.every());
                        None
                    }
                };
                // Records missing because the task is stopping are not to be put back.
                let repair = if repair.is_some() && learn_of_a_stop(&mut stopping, &endpoint).await {
                    schedule(&mut pending, retrying_until.max(Instant::now()), None);
                    None
                } else {
                    repair
                };
                match repair {
                    Some(reason) => {
                        tracing::warn!(problem = "records_drifted", %reason,
                            "the task's records differ from what it wrote; reading them back to repair them");
                        registrar.invalidate();
                        schedule(&mut pending, retrying_until.max(Instant::now()), None);
                    }
                    None => tracing::debug!("DNS check: nothing to repair"),
                }
            }
            event = next_event => match event {
                Some(Ok(event)) => {
                    reconnect.reset();
                    problems.clear(Problem::DockerEvents);
                    if let Some(time) = event.time {
                        events_since = events_since.max(time);
                    }
                    if is_relevant(&event) {
                        tracing::debug!(action = ?event.action, "docker event");
                        follower.observe(&event);
                        let at = retrying_until.max(Instant::now() + config.coalesce());
                        schedule(&mut pending, at, event.time_nano);
                    }
                }
                broken => {
                    let delay = reconnect.next_delay();
                    let error = match broken {
                        Some(Err(e)) => format!("Docker event stream broke: {e}"),
                        _ => "Docker event stream ended".to_owned(),
                    };
                    problems.report(Problem::DockerEvents, &error, delay);
                    events = None;
                    reconnect_at = Some(Instant::now() + delay);
                }
            },
        }
    }

    tracing::info!("shutting down: withdrawing the task's records");
    let done = registrar.withdraw().await?;
    let drain = config.drain();
    tracing::info!(
        changes = done.changes,
        requests = done.requests,
        drain_seconds = drain.as_secs(),
        "withdrawn; draining so cached answers expire before the task stops"
    );
    tokio::time::sleep(drain).await;
    tracing::info!("drained; exiting");
    Ok(())
}

/// Asks task metadata whether ECS is stopping the task, unless `stopping` already says so; true when
/// this is how the sidecar learns it (then `stopping` is set, and the log says so once). No answer is
/// not a stop: the sidecar goes on.
async fn learn_of_a_stop(stopping: &mut bool, endpoint: &TaskEndpoint) -> bool {
    if *stopping {
        return false;
    }
    match metadata::task_is_stopping(endpoint).await {
        Ok(false) => false,
        Ok(true) => {
            *stopping = true;
            say_the_task_is_stopping();
            true
        }
        Err(problem) => {
            tracing::debug!(%problem, "task metadata did not say whether the task is stopping");
            false
        }
    }
}

fn say_the_task_is_stopping() {
    tracing::info!(
        "ECS is stopping the task: withdrawing its records; nothing is published or repaired again"
    );
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

/// After Route53 said the zone is gone: looks it up by domain again (it may have been recreated under
/// a new id); what the new zone holds is read before the next change.
async fn find_zone_again(config: &Config, deps: &Deps, registrar: &mut Registrar<Route53Zone>) {
    let retry = RetryPolicy { give_up_after: Some(Duration::from_secs(10)), ..RetryPolicy::default() };
    match Route53Zone::find(deps.route53.clone(), config.domain.clone(), retry).await {
        Ok(zone) if zone.zone_id() != registrar.store().zone_id() => {
            tracing::info!(zone_id = zone.zone_id(), domain = %config.domain, "found the hosted zone under a new id");
            registrar.replace_store(zone);
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "the hosted zone is still not found"),
    }
}

/// Seconds since the Unix epoch, as Docker's `since` takes them.
fn unix_seconds() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64
}

/// Resolves at `at`, or never when there is nothing scheduled.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => future::pending().await,
    }
}

/// The address other tasks reach this task's ports at.
async fn reachable_address(
    config: &Config,
    identity: &TaskIdentity,
    wait: Duration,
) -> Result<Ipv4Addr, SidecarError> {
    if let Some(address) = config.address {
        return Ok(address);
    }
    match identity.network_mode {
        NetworkMode::Awsvpc(ip) => Ok(ip),
        NetworkMode::Bridge | NetworkMode::Host => metadata::host_private_ip(wait).await,
    }
}

#[derive(Debug)]
enum ResyncError {
    /// The task's containers could not be seen.
    Source(SourceError),
    /// Route53 did not take the change.
    Route53(SidecarError),
}

/// Why the task's containers could not be listed.
#[derive(Debug, thiserror::Error)]
enum SourceError {
    #[error("Docker did not list the task's containers: {0}")]
    Docker(bollard::errors::Error),
    #[error("task metadata: {0}")]
    Metadata(String),
}

/// Follows one task's containers, through Docker or task metadata.
#[derive(Debug)]
enum Follower {
    Docker {
        /// Lists the task's containers, remembering what never changes about each.
        lister: SiblingLister,
    },
    Metadata {
        endpoint: TaskEndpoint,
        /// Whether the first document was checked for `SERVICE_*` labels.
        checked_for_labels: bool,
    },
}

/// The task's serving containers, and whether the source says ECS is stopping the task.
struct Listing {
    siblings: Vec<Sibling>,
    task_stopping: bool,
}

impl Follower {
    /// The task's container events since `since` (Unix seconds), filtered by Docker; none in metadata
    /// mode, which polls.
    fn subscribe(
        &self,
        since: i64,
    ) -> Option<BoxStream<'static, Result<EventMessage, bollard::errors::Error>>> {
        match self {
            Self::Docker { lister } => Some(lister.events(since)),
            Self::Metadata { .. } => None,
        }
    }

    /// Learns from a Docker event which containers are stopping.
    fn observe(&mut self, event: &EventMessage) {
        if let Self::Docker { lister } = self {
            lister.observe(event);
        }
    }

    async fn list(&mut self) -> Result<Listing, SourceError> {
        match self {
            Self::Docker { lister } => {
                let siblings = lister.list().await.map_err(SourceError::Docker)?;
                Ok(Listing { siblings, task_stopping: false })
            }
            Self::Metadata { endpoint, checked_for_labels } => {
                let task = endpoint.read_task(metadata::READ_TIMEOUT).await.map_err(SourceError::Metadata)?;
                let view = metadata_siblings::task_view(task);
                if !std::mem::replace(checked_for_labels, true) && !view.labelled {
                    // What an EC2 task configured by environment variables, started without the
                    // socket mounted, would otherwise do in silence: publish nothing.
                    tracing::warn!(
                        "no container of the task has a SERVICE_* label: in metadata mode the sidecar sees \
                         docker labels only, not environment variables; put SERVICE_<port>_NAME in the \
                         task definition's dockerLabels, or mount the Docker socket (ECSSD_SOURCE=docker)"
                    );
                }
                Ok(Listing { siblings: view.siblings, task_stopping: view.stopping })
            }
        }
    }

    /// Lists the task's containers and makes Route53 match them; withdraws everything instead when
    /// the listing says ECS is stopping the task (then `stopping` is set).
    async fn resync<S: ecssd_records::RecordStore>(
        &mut self,
        mode: NetworkMode,
        registrar: &mut Registrar<S>,
        reported: &mut Vec<EndpointProblem>,
        first_event_ns: Option<i64>,
        stopping: &mut bool,
    ) -> Result<Converged, ResyncError> {
        let listing = self.list().await.map_err(ResyncError::Source)?;
        if listing.task_stopping {
            *stopping = true;
            say_the_task_is_stopping();
            return registrar.withdraw().await.map_err(ResyncError::Route53);
        }
        let (endpoints, problems) = siblings::endpoints(&listing.siblings, mode);
        if problems != *reported {
            for problem in &problems {
                tracing::error!(%problem, "cannot publish this endpoint; the others are unaffected");
            }
            *reported = problems;
        }
        let event_to_send_ms = first_event_ns.map(|ns| {
            let now_ns = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as i64;
            (now_ns - ns) as f64 / 1e6
        });
        let count = endpoints.len();
        let done = registrar.converge(endpoints).await.map_err(ResyncError::Route53)?;
        tracing::debug!(endpoints = count, requests = done.requests, "resynced");
        if done.requests > 0 {
            tracing::info!(
                endpoints = count,
                changes = done.changes,
                requests = done.requests,
                event_to_send_ms,
                "Route53 updated"
            );
        }
        Ok(done)
    }
}
