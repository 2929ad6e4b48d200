//! The functions' settings, typed, from the environment (the Lambda) or flags (the shell mode). The
//! sweeper's names and defaults keep the seed's `lambda_health_check.py` parameters.

use std::time::Duration;

use clap::Parser;
use ecssd_records::{Domain, OwnerId};

/// ecssd's four Lambda functions in one binary, each told its role by ECSSD_ROLE: the sweeper
/// (scheduled: deletes records of tasks and hosts that died without deregistering and, if enabled,
/// health-checks endpoints and stops unhealthy tasks within safety limits), the withdrawer (deletes a
/// stopped task's records, fed ECS task state change events through SQS), the zone settings (the
/// stack's custom resource setting the zone's negative caching) and the batcher (writes registrations
/// sidecars hand over, many tasks to a request). From a shell, `--once` runs one sweep
/// and prints the report.
#[derive(Debug, Clone, Parser)]
#[command(name = "bootstrap", version)]
pub struct Config {
    /// Which function this is; inside Lambda it is required, and only that role's events are taken.
    #[arg(long, env = "ECSSD_ROLE", value_enum)]
    pub role: Option<Role>,

    /// Domain of the Route53 private hosted zone.
    #[arg(long, env = "ECSSD_DOMAIN", default_value = "servicediscovery.internal")]
    pub domain: Domain,

    /// Id of the hosted zone; when given, the zone is not looked up by domain.
    #[arg(long, env = "ECSSD_ZONE_ID")]
    pub zone_id: Option<String>,

    /// Owner id of the sidecars whose records this sweeper manages.
    #[arg(long, env = "ECSSD_OWNER_ID", default_value = "default")]
    pub owner_id: OwnerId,

    /// Clusters to watch, comma-separated names or ARNs; empty watches every cluster in the account.
    #[arg(long, env = "ECSSD_CLUSTERS", default_value = "", value_delimiter = ',')]
    pub clusters: Vec<String>,

    /// HTTP-check every registered endpoint and stop unhealthy tasks.
    #[arg(long, env = "ECSSD_HEALTH_CHECK", default_value_t = false, action = clap::ArgAction::Set)]
    pub health_check: bool,

    /// Path requested by health checks.
    #[arg(long, env = "ECSSD_HEALTH_CHECK_PATH", default_value = "/health")]
    pub health_check_path: String,

    /// Per-request timeout of a health check, in milliseconds.
    #[arg(long, env = "ECSSD_HEALTH_TIMEOUT_MS", default_value_t = 2000)]
    pub health_timeout_ms: u64,

    /// Attempts per endpoint for quick failures (refused, non-2xx); timeouts are not retried.
    #[arg(long, env = "ECSSD_HEALTH_ATTEMPTS", default_value_t = 2)]
    pub health_attempts: u32,

    /// Endpoints checked at once.
    #[arg(long, env = "ECSSD_HEALTH_CONCURRENCY", default_value_t = 256)]
    pub health_concurrency: usize,

    /// Seconds after a task starts before its endpoints are checked.
    #[arg(long, env = "ECSSD_HEALTH_GRACE_SECONDS", default_value_t = 120)]
    pub health_grace_seconds: u64,

    /// Largest fraction of one service's tasks stopped in one run; also, when more than this fraction
    /// of all checked tasks is unhealthy, nothing is stopped.
    #[arg(long, env = "ECSSD_MAX_STOP_FRACTION", default_value_t = 0.5)]
    pub max_stop_fraction: f64,

    /// Seconds an ECS agent may stay disconnected before its tasks' records may go (and then only if
    /// their endpoints refuse connections too, within the agent brake).
    #[arg(long, env = "ECSSD_AGENT_GRACE_SECONDS", default_value_t = 300)]
    pub agent_grace_seconds: u64,

    /// ECS and EC2 requests per second, at most: their budgets are the account's too, shared with
    /// every other tool (ECS API Reference, "Request throttling for the Amazon ECS API").
    #[arg(long, env = "ECSSD_ECS_REQUESTS_PER_SECOND", default_value_t = 5.0)]
    pub ecs_requests_per_second: f64,

    /// Clusters one sweep asks ECS about, at most. Records name their clusters, and any task can
    /// write records: the clusters claimed by most tasks are asked about, the rest are reported and
    /// left for the named `ECSSD_CLUSTERS` (or a higher limit).
    #[arg(long, env = "ECSSD_MAX_CLUSTERS", default_value_t = 25)]
    pub max_clusters: usize,

    /// Whether this function reaches the tasks' endpoints (it runs in their VPC: the template sets it
    /// from SubnetIds). Without, the agent rule cannot gather its evidence (a connection refused; from
    /// elsewhere a firewall's reject looks the same) and does not run: agent-silent tasks keep their
    /// records, reported as unknown.
    #[arg(long, env = "ECSSD_REACHES_TASKS", default_value_t = false, action = clap::ArgAction::Set)]
    pub reaches_tasks: bool,

    /// Largest fraction of the RUNNING tasks seen whose records one sweep deletes because their ECS
    /// agent is disconnected; above it none are, and the report says why.
    #[arg(long, env = "ECSSD_AGENT_MAX_DELETE_FRACTION", default_value_t = 0.1)]
    pub agent_max_delete_fraction: f64,

    /// Records read by name per sweep to confirm orphans; the rest wait for the next run.
    #[arg(long, env = "ECSSD_ORPHAN_READS_PER_SWEEP", default_value_t = 100)]
    pub orphan_reads_per_sweep: usize,

    /// The sweeper's own Route53 request rate; Route53 allows 5 per second per account, shared with
    /// every sidecar, so the default leaves them 60%.
    #[arg(long, env = "ECSSD_ROUTE53_REQUESTS_PER_SECOND", default_value_t = 2.0)]
    pub route53_requests_per_second: f64,

    /// Longest negative caching (seconds resolvers may remember that a name does not exist: the lesser
    /// of the zone SOA's TTL and MINIMUM) the sweep's report accepts without a warning.
    #[arg(long, env = "ECSSD_NEGATIVE_TTL_LIMIT", default_value_t = 60)]
    pub negative_ttl_limit: u32,

    /// Keep the zone's negative caching at this many seconds: each sweep sets the SOA's TTL and MINIMUM
    /// to it when they differ (needs UPSERT of SOA in the IAM policy). Unset: the SOA is only read.
    #[arg(long, env = "ECSSD_KEEP_NEGATIVE_TTL", value_parser = clap::value_parser!(u32).range(0..=86_400))]
    pub keep_negative_ttl: Option<u32>,

    /// The zone settings function's stack (the template sets it): only its delete, as CloudFormation
    /// reports it, empties the zone of ecssd's records.
    #[arg(long, env = "ECSSD_STACK_ID")]
    pub stack_id: Option<String>,

    /// Seconds after a sweep started within which the sweeper function answers another invocation
    /// without sweeping (anyone allowed to invoke it could otherwise keep its one concurrent run busy,
    /// and the account's Route53 and ECS budgets with it). Below the schedule's rate (EventBridge's
    /// shortest is a minute).
    #[arg(long, env = "ECSSD_MIN_SWEEP_INTERVAL_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub min_sweep_interval_seconds: u64,

    /// Outside Lambda, the time one sweep may take (inside Lambda the invocation's deadline counts).
    #[arg(long, env = "ECSSD_TIME_LIMIT_SECONDS", default_value_t = 240)]
    pub time_limit_seconds: u64,

    /// Report what would be done; change nothing.
    #[arg(long, env = "ECSSD_DRY_RUN", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub dry_run: bool,

    /// Log filter, e.g. `info` or `ecssd_lambda=debug,info` (logs are JSON on stderr).
    #[arg(long, env = "ECSSD_LOG_LEVEL", default_value = "info", value_parser = ecssd_edge::cli::log_filter)]
    pub log_level: String,

    /// Run one sweep from a shell and print the report (outside Lambda).
    #[arg(long)]
    pub once: bool,
}

/// The stack's four functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Scheduled EventBridge events: one sweep each.
    Sweeper,
    /// SQS batches of ECS task state change events: withdraws the stopped tasks' records.
    Withdrawer,
    /// CloudFormation custom resource requests: sets the zone's negative caching.
    ZoneSettings,
    /// SQS batches of the registration queue: writes the registrations sidecars hand over, many tasks
    /// to a request.
    Batcher,
}

impl Config {
    /// The role to serve: the one given; from a shell, a sweep. Inside Lambda a role must be given, and
    /// `--once` (one sweep) goes with the sweeper only.
    pub fn role(&self, in_lambda: bool) -> Result<Role, String> {
        match (self.role, in_lambda && !self.once) {
            (Some(Role::Sweeper) | None, false) => Ok(Role::Sweeper),
            (Some(role), false) => Err(format!(
                "--once (or a shell) runs one sweep; ECSSD_ROLE={} serves Lambda events only",
                role.name()
            )),
            (Some(Role::ZoneSettings), true) if self.keep_negative_ttl.is_none() => Err(
                "the zone-settings function sets only its stack's NegativeCacheTtl: ECSSD_KEEP_NEGATIVE_TTL \
                 must give it (the template sets it)"
                    .into(),
            ),
            (Some(Role::ZoneSettings), true) if self.stack_id.as_deref().is_none_or(str::is_empty) => Err(
                "the zone-settings function empties the zone only for its own stack's delete: ECSSD_STACK_ID \
                 must name the stack (the template sets it)"
                    .into(),
            ),
            (Some(role), true) => Ok(role),
            (None, true) => {
                Err("ECSSD_ROLE must say which function this is: sweeper, withdrawer, zone-settings or \
                 batcher (the stack's template sets it for each)"
                    .into())
            }
        }
    }

    /// Checks what clap cannot: ranges that depend on meaning.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("ECSSD_MAX_STOP_FRACTION", self.max_stop_fraction),
            ("ECSSD_AGENT_MAX_DELETE_FRACTION", self.agent_max_delete_fraction),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("{name}={value} must be between 0 and 1"));
            }
        }
        let path = &self.health_check_path;
        if !path.starts_with('/') {
            return Err(format!("ECSSD_HEALTH_CHECK_PATH={path:?} must start with /"));
        }
        let invalid = path.chars().any(|c| c.is_whitespace() || c.is_control())
            || hyper::http::uri::PathAndQuery::try_from(path.as_str()).is_err();
        if invalid {
            return Err(format!(
                "ECSSD_HEALTH_CHECK_PATH={path:?} is not a valid URL path (no spaces or control characters; \
                 percent-encode them), e.g. /health"
            ));
        }
        if !(self.route53_requests_per_second.is_finite() && self.route53_requests_per_second > 0.0) {
            return Err(format!(
                "ECSSD_ROUTE53_REQUESTS_PER_SECOND={} must be above 0 (Route53 allows 5 per second per account)",
                self.route53_requests_per_second
            ));
        }
        if !(self.ecs_requests_per_second.is_finite() && self.ecs_requests_per_second > 0.0) {
            return Err(format!(
                "ECSSD_ECS_REQUESTS_PER_SECOND={} must be above 0",
                self.ecs_requests_per_second
            ));
        }
        if self.max_clusters == 0 {
            return Err("ECSSD_MAX_CLUSTERS must be at least 1".into());
        }
        if self.time_limit_seconds == 0 {
            return Err("ECSSD_TIME_LIMIT_SECONDS must be above 0".into());
        }
        if self.health_timeout_ms == 0 {
            return Err("ECSSD_HEALTH_TIMEOUT_MS must be above 0".into());
        }
        Ok(())
    }

    /// Watched cluster names or ARNs, blanks dropped.
    pub fn watched_clusters(&self) -> Vec<String> {
        self.clusters.iter().map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()).collect()
    }

    /// Whether `cluster` (a name or an ARN) is watched: every cluster when none is named, else by name.
    pub fn watches(&self, cluster: &str) -> bool {
        let watched = self.watched_clusters();
        watched.is_empty() || watched.iter().any(|c| cluster_name(c) == cluster_name(cluster))
    }

    pub fn agent_grace(&self) -> Duration {
        Duration::from_secs(self.agent_grace_seconds)
    }
}

impl Role {
    /// The role as ECSSD_ROLE spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sweeper => "sweeper",
            Self::Withdrawer => "withdrawer",
            Self::ZoneSettings => "zone-settings",
            Self::Batcher => "batcher",
        }
    }
}

/// A cluster's name, from its name or ARN (`arn:aws:ecs:<region>:<account>:cluster/<name>`).
pub fn cluster_name(cluster: &str) -> &str {
    cluster.rsplit_once(":cluster/").map_or(cluster, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let mut all = vec!["bootstrap"];
        all.extend_from_slice(args);
        Config::try_parse_from(all).unwrap()
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (args, expected) in [
            (
                &["--health-check-path", "/he alth"][..],
                "ECSSD_HEALTH_CHECK_PATH=\"/he alth\" is not a valid URL path",
            ),
            (&["--health-check-path", "health"][..], "must start with /"),
            (
                &["--agent-max-delete-fraction", "1.5"][..],
                "ECSSD_AGENT_MAX_DELETE_FRACTION=1.5 must be between 0 and 1",
            ),
            (
                &["--route53-requests-per-second", "0"][..],
                "ECSSD_ROUTE53_REQUESTS_PER_SECOND=0 must be above 0",
            ),
            (&["--time-limit-seconds", "0"][..], "ECSSD_TIME_LIMIT_SECONDS must be above 0"),
            (&["--ecs-requests-per-second", "0"][..], "ECSSD_ECS_REQUESTS_PER_SECOND=0 must be above 0"),
            (&["--max-clusters", "0"][..], "ECSSD_MAX_CLUSTERS must be at least 1"),
        ] {
            let problem = parse(args).validate().unwrap_err();
            assert!(problem.contains(expected), "{args:?}: {problem}");
        }
        assert_eq!(parse(&["--health-check-path", "/health?deep=1"]).validate(), Ok(()));
    }

    #[test]
    fn inside_lambda_the_role_is_required_and_a_shell_only_sweeps() {
        assert_eq!(parse(&[]).role(false), Ok(Role::Sweeper));
        assert_eq!(parse(&["--role", "withdrawer"]).role(true), Ok(Role::Withdrawer));
        assert_eq!(
            parse(&["--role", "zone-settings", "--keep-negative-ttl", "10", "--stack-id", "arn:s"])
                .role(true),
            Ok(Role::ZoneSettings)
        );
        assert!(
            parse(&["--role", "zone-settings"]).role(true).unwrap_err().contains("ECSSD_KEEP_NEGATIVE_TTL")
        );
        assert!(parse(&[]).role(true).unwrap_err().contains("ECSSD_ROLE must say which function"));
        assert_eq!(parse(&["--once"]).role(true), Ok(Role::Sweeper), "--once inside Lambda's environment");
        let problem = parse(&["--once", "--role", "withdrawer"]).role(true).unwrap_err();
        assert!(problem.contains("ECSSD_ROLE=withdrawer serves Lambda events only"), "{problem}");
        assert!(Config::try_parse_from(["bootstrap", "--role", "sweep"]).is_err(), "only the four names");
    }
}
