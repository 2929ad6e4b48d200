//! The sidecar's settings: every flag is also an environment variable, so a task definition configures
//! it with `environment` entries alone.

use std::net::Ipv4Addr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use ecssd_records::{Domain, OwnerId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for CloudWatch Logs.
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

/// Registers the containers of this ECS task in Route53 as SRV records (from their
/// `SERVICE_<port>_NAME=_name._tcp` variables), keeps them in step with Docker, and withdraws them on
/// SIGTERM before the task stops.
#[derive(Debug, Clone, Parser)]
#[command(name = "ecssd-sidecar", version)]
pub struct Config {
    /// Domain of the Route53 private hosted zone; services resolve as `_name._tcp.<domain>`.
    #[arg(long, env = "ECSSD_DOMAIN", default_value = "servicediscovery.internal")]
    pub domain: Domain,

    /// Id of the hosted zone. When given, the zone is not looked up by domain (one Route53 call
    /// fewer per task); `--domain` must still name the zone's domain.
    #[arg(long, env = "ECSSD_ZONE_ID")]
    pub zone_id: Option<String>,

    /// TTL of every record, in seconds: how long resolvers may keep answering with a withdrawn target.
    #[arg(long, env = "ECSSD_TTL", default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=172_800))]
    pub ttl: u32,

    /// Seconds to wait after withdrawing on SIGTERM, so cached answers expire while the task's other
    /// containers still serve. Defaults to the TTL. The task's `stopTimeout` must cover it.
    #[arg(long, env = "ECSSD_DRAIN_SECONDS")]
    pub drain_seconds: Option<u64>,

    /// Owner id written into ownership records; deployments sharing a zone must use different ones.
    #[arg(long, env = "ECSSD_OWNER_ID", default_value = "default")]
    pub owner_id: OwnerId,

    /// The address to register instead of the one derived from the network mode (host IP in bridge
    /// and host mode, the task's ENI IP in awsvpc mode), for setups where neither is reachable.
    #[arg(long, env = "ECSSD_ADDRESS")]
    pub address: Option<Ipv4Addr>,

    /// Milliseconds to gather a burst of Docker events into one Route53 change.
    #[arg(long, env = "ECSSD_COALESCE_MS", default_value_t = 100)]
    pub coalesce_ms: u64,

    /// The ECS task metadata endpoint (set by the ECS agent in every container).
    #[arg(long, env = "ECS_CONTAINER_METADATA_URI_V4")]
    pub metadata_uri: Option<String>,

    /// Seconds to keep retrying the task metadata endpoint at start, where it can be slow to appear.
    #[arg(long, env = "ECSSD_METADATA_WAIT_SECONDS", default_value_t = 60)]
    pub metadata_wait_seconds: u64,

    /// Log format.
    #[arg(long, env = "ECSSD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Log filter, e.g. `info` or `ecssd_sidecar=debug,info`.
    #[arg(long, env = "ECSSD_LOG_LEVEL", default_value = "info", value_parser = ecssd_records::cli::log_filter)]
    pub log_level: String,

    /// Register the task's records once and exit, without following Docker events.
    #[arg(long, conflicts_with = "deregister")]
    pub once: bool,

    /// Withdraw every record this task owns and exit (an operator's clean-up).
    #[arg(long)]
    pub deregister: bool,
}

impl Config {
    pub fn drain(&self) -> Duration {
        Duration::from_secs(self.drain_seconds.unwrap_or(u64::from(self.ttl)))
    }

    pub fn coalesce(&self) -> Duration {
        Duration::from_millis(self.coalesce_ms)
    }
}
