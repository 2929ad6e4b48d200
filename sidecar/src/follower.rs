//! Following one task's containers, through Docker or task metadata, and converging the task's
//! records to what they publish: the work the event loop hands off, one convergence at a time.

use std::time::{SystemTime, UNIX_EPOCH};

use bollard::models::EventMessage;
use ecssd_edge::Route53Zone;
use futures_util::stream::BoxStream;

use crate::docker_siblings::SiblingLister;
use crate::error::SidecarError;
use crate::metadata::{self, TaskEndpoint};
use crate::metadata_siblings;
use crate::registrar::{Converged, Registrar};
use crate::siblings::{self, EndpointProblem, ReachablePort, Sibling};

/// Docker's events for the task's containers.
pub type EventStream = BoxStream<'static, Result<EventMessage, bollard::errors::Error>>;

/// Milliseconds since a Docker event's `timeNano` (nanoseconds since the Unix epoch).
pub fn ms_since_event(time_nano: i64) -> f64 {
    let now_ns = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as i64;
    (now_ns - time_nano) as f64 / 1e6
}

/// Docker event actions that can change what the task publishes. Others (notably `exec_*`, which
/// every HEALTHCHECK run emits) are ignored.
pub fn is_relevant(event: &EventMessage) -> bool {
    let action = event.action.as_deref().unwrap_or_default();
    matches!(action, "start" | "die" | "stop" | "kill" | "destroy" | "pause" | "unpause" | "restart" | "oom")
        || action.starts_with("health_status")
}

#[derive(Debug)]
pub enum ResyncError {
    /// The task's containers could not be seen.
    Source(SourceError),
    /// Route53 did not take the change.
    Route53(SidecarError),
}

/// Why the task's containers could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("Docker did not list the task's containers: {0}")]
    Docker(bollard::errors::Error),
    #[error("task metadata: {0}")]
    Metadata(String),
}

/// What one convergence came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resynced {
    /// Route53 holds what the task publishes (or what it could: see the registrar's refusals).
    Converged(Converged),
    /// The change would only add, and a failed registration's backoff holds such changes back.
    Held,
}

/// Follows one task's containers, through Docker or task metadata.
#[derive(Debug)]
pub enum Follower {
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
    pub fn subscribe(&self, since: i64) -> Option<EventStream> {
        match self {
            Self::Docker { lister } => Some(lister.events(since)),
            Self::Metadata { .. } => None,
        }
    }

    /// Learns from a Docker event which containers are stopping.
    pub fn observe(&mut self, event: &EventMessage) {
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
}

/// The follower and the registrar: what a convergence needs, lent to it whole while it runs.
#[derive(Debug)]
pub struct Worker {
    pub follower: Follower,
    pub registrar: Registrar<Route53Zone>,
    /// Which port other tasks reach an endpoint at (decided by the network mode and, in bridge mode,
    /// the family published).
    pub port: ReachablePort,
    /// Endpoints that cannot be published, as last logged.
    pub reported: Vec<EndpointProblem>,
}

/// What a convergence was about, whatever its outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Attempt {
    /// It took something away (or tried to): its failure is retried on the withdrawal backoff.
    pub withdrawing: bool,
    /// ECS is stopping the task, as this attempt learned.
    pub learned_stopping: bool,
    /// It withdrew every record of the task.
    pub withdrew_all: bool,
    /// From the first Docker event it answers to its Route53 request being sent, if one was.
    pub event_to_send_ms: Option<f64>,
}

impl Worker {
    /// Withdraws every record of the task.
    pub async fn withdraw(&mut self, attempt: &mut Attempt) -> Result<Resynced, ResyncError> {
        attempt.withdrawing = true;
        attempt.withdrew_all = true;
        let done = self.registrar.withdraw().await.map_err(ResyncError::Route53)?;
        Ok(Resynced::Converged(done))
    }

    /// Lists the task's containers and makes Route53 match them, unless the change only adds while
    /// `held`; withdraws everything instead when the listing says ECS is stopping the task.
    pub async fn resync(
        &mut self,
        held: bool,
        first_event_ns: Option<i64>,
        attempt: &mut Attempt,
    ) -> Result<Resynced, ResyncError> {
        let listing = self.follower.list().await.map_err(ResyncError::Source)?;
        if listing.task_stopping {
            attempt.learned_stopping = true;
            return self.withdraw(attempt).await;
        }
        let (endpoints, problems) = siblings::endpoints(&listing.siblings, self.port);
        if problems != self.reported {
            for problem in &problems {
                tracing::error!(%problem, "cannot publish this endpoint; the others are unaffected");
            }
            self.reported = problems;
        }
        attempt.withdrawing = self.registrar.withdraws(&endpoints);
        if held && !attempt.withdrawing {
            return Ok(Resynced::Held);
        }
        attempt.event_to_send_ms = first_event_ns.map(ms_since_event);
        let count = endpoints.len();
        let done = self.registrar.converge(endpoints).await.map_err(ResyncError::Route53)?;
        tracing::debug!(endpoints = count, requests = done.requests, "resynced");
        if done.requests > 0 {
            tracing::info!(
                endpoints = count,
                changes = done.changes,
                requests = done.requests,
                withdrew = attempt.withdrawing,
                first_event_ns,
                event_to_send_ms = attempt.event_to_send_ms,
                "Route53 updated"
            );
        }
        if done.handed_over > 0 {
            tracing::info!(
                endpoints = count,
                changes = done.handed_over,
                first_event_ns,
                "the registration was handed to the batcher"
            );
        }
        Ok(Resynced::Converged(done))
    }
}
