//! The problems the sidecar lives with after start. It never exits for them (it is an essential
//! container: its exit would stop the application): it retries, and says so under a stable `problem`
//! field once per interval, not at every retry, and once more when the problem clears.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::time::Duration;

use ecssd_records::{CallError, ReportGate};

use crate::error::SidecarError;

/// A kind of trouble, named by the stable `problem` field of its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// Route53 refused a change for good (invalid, denied...).
    Route53Rejected,
    /// Route53 kept failing transiently past the retry budget.
    Route53Unavailable,
    /// The hosted zone is gone.
    ZoneNotFound,
    /// Records at the task's names are not ecssd's (or not this task's).
    ForeignRecords,
    /// Docker could not list the task's containers.
    DockerUnreachable,
    /// Docker's event stream broke or ended.
    DockerEvents,
    /// Task metadata did not answer, or not in the v4 format (metadata mode).
    MetadataUnreachable,
    /// The resolver did not answer a DNS check: records deleted behind the sidecar's back go unseen.
    DnsCheck,
    /// Task metadata did not say whether the task still runs: a repair waits until it does.
    StopCheck,
    /// Registrations handed to the batcher kept not landing: they go to Route53 directly for a while.
    RegistrationQueue,
}

impl Problem {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Route53Rejected => "route53_rejected",
            Self::Route53Unavailable => "route53_unavailable",
            Self::ZoneNotFound => "zone_not_found",
            Self::ForeignRecords => "foreign_records",
            Self::DockerUnreachable => "docker_unreachable",
            Self::DockerEvents => "docker_events",
            Self::MetadataUnreachable => "metadata_unreachable",
            Self::DnsCheck => "dns_check",
            Self::StopCheck => "stop_check",
            Self::RegistrationQueue => "registration_queue",
        }
    }

    /// The problem a failed convergence is.
    pub fn of(error: &SidecarError) -> Self {
        match error {
            SidecarError::Route53(CallError::NotFound { .. }) => Self::ZoneNotFound,
            SidecarError::Route53(CallError::Exhausted { .. } | CallError::Conflict { .. }) => {
                Self::Route53Unavailable
            }
            SidecarError::ForeignRecords(_) => Self::ForeignRecords,
            _ => Self::Route53Rejected,
        }
    }
}

/// Ongoing problems, each with when it was last logged.
#[derive(Debug, Default)]
pub struct Problems {
    ongoing: BTreeMap<Problem, ReportGate>,
}

impl Problems {
    /// Logs `problem` at error level unless it was logged so less than a minute ago.
    pub fn report(&mut self, problem: Problem, error: &dyn Display, retry_in: Duration) {
        let retry_in_ms = retry_in.as_millis() as u64;
        if self.ongoing.entry(problem).or_default().open() {
            tracing::error!(problem = problem.as_str(), error = %error, retry_in_ms,
                "the application keeps running; retrying (logged once a minute while it lasts)");
        } else {
            tracing::debug!(problem = problem.as_str(), error = %error, retry_in_ms, "still failing");
        }
    }

    /// Says that `problem` is over, if it was ongoing.
    pub fn clear(&mut self, problem: Problem) {
        if self.ongoing.remove(&problem).is_some() {
            tracing::info!(problem = problem.as_str(), "recovered");
        }
    }

    /// Clears the Route53 problems, after a convergence that Route53 answered (one that called it).
    pub fn route53_answered(&mut self) {
        for problem in [
            Problem::Route53Rejected,
            Problem::Route53Unavailable,
            Problem::ZoneNotFound,
            Problem::ForeignRecords,
        ] {
            self.clear(problem);
        }
    }
}
