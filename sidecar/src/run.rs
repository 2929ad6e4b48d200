//! The sidecar's life: learn the task, register, follow Docker events, withdraw on shutdown.

use std::future::Future;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::EventMessage;
use bollard::query_parameters::EventsOptions;
use ecssd_records::{Backoff, RetryPolicy, Route53Zone, ZoneModel};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, future};
use tokio::time::Instant;

use crate::config::Config;
use crate::error::SidecarError;
use crate::metadata::{self, NetworkMode, TaskIdentity};
use crate::registrar::Registrar;
use crate::siblings::{self, EndpointProblem, TASK_ARN_LABEL};

/// Clients built once by `main`.
#[derive(Debug, Clone)]
pub struct Deps {
    pub docker: Docker,
    pub route53: aws_sdk_route53::Client,
}

/// Docker event actions that can change what the task publishes. Others (notably `exec_*`, which
/// every HEALTHCHECK run emits) are ignored.
fn is_relevant(event: &EventMessage) -> bool {
    let action = event.action.as_deref().unwrap_or_default();
    matches!(action, "start" | "die" | "stop" | "kill" | "destroy" | "pause" | "unpause" | "restart" | "oom")
        || action.starts_with("health_status")
}

/// How often the task's containers are listed again even without events.
const SAFETY_RESYNC: Duration = Duration::from_secs(30);

/// Runs until `shutdown` resolves (then withdraws and drains) or a permanent error occurs.
pub async fn run(config: Config, deps: Deps, shutdown: impl Future<Output = ()>) -> Result<(), SidecarError> {
    let identity = metadata::task_identity(
        config.metadata_uri.as_deref(),
        Duration::from_secs(config.metadata_wait_seconds),
    )
    .await?;
    let address = reachable_address(&config, &identity).await?;
    deps.docker.ping().await.map_err(|e| SidecarError::NoDocker(e.to_string()))?;
    let zone = match &config.zone_id {
        Some(id) => {
            Route53Zone::for_id(deps.route53.clone(), id, config.domain.clone(), RetryPolicy::default())
        }
        None => {
            Route53Zone::find(deps.route53.clone(), config.domain.clone(), RetryPolicy::default()).await?
        }
    };
    tracing::info!(task = %identity.task, cluster = %identity.cluster, network_mode = ?identity.network_mode,
        %address, zone_id = zone.zone_id(), domain = %config.domain, "ecssd sidecar starting");
    let model = ZoneModel { domain: config.domain.clone(), owner: config.owner_id.clone(), ttl: config.ttl };
    let mut registrar = Registrar::new(zone, model, identity.task.clone(), identity.cluster.clone(), address);

    if config.deregister {
        registrar.invalidate();
        let done = registrar.withdraw().await?;
        tracing::info!(changes = done.changes, "withdrew every record of the task");
        return Ok(());
    }

    let mut shutdown = std::pin::pin!(shutdown);
    let mut follower = Follower {
        docker: deps.docker.clone(),
        task_arn: identity.task.to_string(),
        mode: identity.network_mode,
        lister: siblings::SiblingLister::new(deps.docker.clone(), identity.task.to_string()),
    };
    // Subscribe before the first listing, so nothing that happens in between is missed.
    let mut events = (!config.once).then(|| follower.subscribe());
    let mut problems = Vec::new();
    let mut safety_net = tokio::time::interval_at(Instant::now() + SAFETY_RESYNC, SAFETY_RESYNC);
    // Reconnecting to Docker and retrying a failed resync: the same policy as Route53 calls.
    let mut backoff = Backoff::new(RetryPolicy::default());
    // When the next full resync is due, and the time (ns) of the event that asked for it.
    let mut pending: Option<(Instant, Option<i64>)> = Some((Instant::now(), None));
    let mut reconnect_at: Option<Instant> = None;

    loop {
        let resync_due = sleep_until(pending.map(|p| p.0));
        let reconnect_due = sleep_until(reconnect_at);
        let next_event = async {
            match events.as_mut() {
                Some(stream) => stream.next().await,
                None => future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            // A safety net for anything the event stream missed (its subscription is lazy, and
            // Docker may drop events): a periodic resync costs a container listing, and Route53
            // nothing unless something changed.
            _ = safety_net.tick() => {
                if pending.is_none() {
                    pending = Some((Instant::now(), None));
                }
            }
            () = reconnect_due => {
                reconnect_at = None;
                events = Some(follower.subscribe());
                pending = Some((Instant::now(), None));
            }
            () = resync_due => {
                let first_event = pending.take().and_then(|p| p.1);
                let outcome = tokio::select! {
                    outcome = follower.resync(&mut registrar, &mut problems, first_event) => outcome,
                    () = &mut shutdown => break,
                };
                match outcome {
                    Ok(()) if config.once => {
                        tracing::info!("registered once; exiting (--once)");
                        return Ok(());
                    }
                    Ok(()) => backoff.reset(),
                    Err(ResyncError::Docker(e)) => {
                        let delay = backoff.next_delay();
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot list the task's containers; retrying");
                        pending = Some((Instant::now() + delay, first_event));
                    }
                    Err(ResyncError::Fatal(e)) => return Err(e),
                }
            }
            event = next_event => match event {
                Some(Ok(event)) if is_relevant(&event) => {
                    tracing::debug!(action = ?event.action, "docker event");
                    follower.lister.observe(&event);
                    if pending.is_none() {
                        pending = Some((Instant::now() + config.coalesce(), event.time_nano));
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "Docker event stream broke; reconnecting");
                    events = None;
                    reconnect_at = Some(Instant::now() + delay);
                }
                None => {
                    let delay = backoff.next_delay();
                    tracing::warn!(retry_in_ms = delay.as_millis() as u64, "Docker event stream ended; reconnecting");
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

/// Resolves at `at`, or never when there is nothing scheduled.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => future::pending().await,
    }
}

/// The address other tasks reach this task's ports at.
async fn reachable_address(config: &Config, identity: &TaskIdentity) -> Result<Ipv4Addr, SidecarError> {
    if let Some(address) = config.address {
        return Ok(address);
    }
    match identity.network_mode {
        NetworkMode::Awsvpc(ip) => Ok(ip),
        NetworkMode::Bridge | NetworkMode::Host => metadata::host_private_ip().await,
    }
}

#[derive(Debug)]
enum ResyncError {
    /// Docker did not answer; retried with backoff.
    Docker(bollard::errors::Error),
    /// Ends the sidecar.
    Fatal(SidecarError),
}

/// Follows one task's containers.
#[derive(Debug)]
struct Follower {
    docker: Docker,
    task_arn: String,
    mode: NetworkMode,
    /// Lists the task's containers, remembering what never changes about each.
    lister: siblings::SiblingLister,
}

impl Follower {
    fn subscribe(&self) -> BoxStream<'static, Result<EventMessage, bollard::errors::Error>> {
        let filters = std::collections::HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("label".to_owned(), vec![format!("{TASK_ARN_LABEL}={}", self.task_arn)]),
        ]);
        self.docker.events(Some(EventsOptions { filters: Some(filters), ..Default::default() })).boxed()
    }

    /// Lists the task's containers and makes Route53 match them.
    async fn resync<S: ecssd_records::RecordStore>(
        &mut self,
        registrar: &mut Registrar<S>,
        reported: &mut Vec<EndpointProblem>,
        first_event_ns: Option<i64>,
    ) -> Result<(), ResyncError> {
        let siblings = self.lister.list().await.map_err(ResyncError::Docker)?;
        let (endpoints, problems) = siblings::endpoints(&siblings, self.mode);
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
        let done = registrar.converge(endpoints).await.map_err(ResyncError::Fatal)?;
        if done.requests > 0 {
            tracing::info!(
                endpoints = count,
                changes = done.changes,
                requests = done.requests,
                event_to_send_ms,
                "Route53 updated"
            );
        }
        Ok(())
    }
}
