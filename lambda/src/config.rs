//! The sweeper's settings, typed, from the environment (the Lambda) or flags (the shell mode). The
//! names and defaults keep the seed's `lambda_health_check.py` parameters.

use std::time::Duration;

use clap::Parser;
use ecssd_records::{Domain, OwnerId};

/// One sweep of the ecssd zone: delete records of tasks and hosts that died without deregistering,
/// and, if enabled, health-check every endpoint and stop unhealthy tasks within safety limits. Inside
/// Lambda it serves scheduled events; from a shell, `--once` runs one sweep and prints the report.
#[derive(Debug, Clone, Parser)]
#[command(name = "bootstrap", version)]
pub struct Config {
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

    /// Seconds an ECS agent may stay disconnected before its tasks count as dead.
    #[arg(long, env = "ECSSD_AGENT_GRACE_SECONDS", default_value_t = 300)]
    pub agent_grace_seconds: u64,

    /// Report what would be done; change nothing.
    #[arg(long, env = "ECSSD_DRY_RUN", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub dry_run: bool,

    /// Log filter, e.g. `info` or `ecssd_lambda=debug,info` (logs are JSON on stderr).
    #[arg(long, env = "ECSSD_LOG_LEVEL", default_value = "info", value_parser = ecssd_records::cli::log_filter)]
    pub log_level: String,

    /// Run one sweep from a shell and print the report (outside Lambda).
    #[arg(long)]
    pub once: bool,
}

impl Config {
    /// Checks what clap cannot: ranges that depend on meaning.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.max_stop_fraction) {
            return Err(format!(
                "ECSSD_MAX_STOP_FRACTION={} must be between 0 and 1",
                self.max_stop_fraction
            ));
        }
        if !self.health_check_path.starts_with('/') {
            return Err(format!("ECSSD_HEALTH_CHECK_PATH={:?} must start with /", self.health_check_path));
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

    pub fn agent_grace(&self) -> Duration {
        Duration::from_secs(self.agent_grace_seconds)
    }
}

/// A cluster's name, from its name or ARN (`arn:aws:ecs:<region>:<account>:cluster/<name>`).
pub fn cluster_name(cluster: &str) -> &str {
    cluster.rsplit_once(":cluster/").map_or(cluster, |(_, name)| name)
}
