//! The sidecar's settings: every flag is also an environment variable, so a task definition configures
//! it with `environment` entries alone.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use ecssd_edge::LogFormat;
use ecssd_records::{AddressFamily, Domain, OwnerId, TaskAddresses};

use crate::source::SourceSetting;

/// Registers the containers of this ECS task in Route53 as SRV records (from their
/// `SERVICE_<port>_NAME=_name._tcp` variables or labels), keeps them in step with Docker or ECS task
/// metadata, and withdraws them on SIGTERM before the task stops.
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
    /// containers still serve. Defaults to the TTL (and goes as high). The task's `stopTimeout` must
    /// cover it.
    #[arg(long, env = "ECSSD_DRAIN_SECONDS", value_parser = clap::value_parser!(u64).range(0..=172_800))]
    pub drain_seconds: Option<u64>,

    /// Owner id written into ownership records; deployments sharing a zone must use different ones.
    #[arg(long, env = "ECSSD_OWNER_ID", default_value = "default")]
    pub owner_id: OwnerId,

    /// The address to register instead of the one derived from the network mode (host IP in bridge
    /// and host mode, the task's ENI IP in awsvpc mode), for setups where neither is reachable: an
    /// IPv4 address, an IPv6 address, or one of each separated by a comma.
    #[arg(long, env = "ECSSD_ADDRESS")]
    pub address: Option<TaskAddresses>,

    /// Which of the task's addresses to publish: `ipv4` (an A record), `ipv6` (an AAAA record) or
    /// `dual` (both); the start fails, naming what is missing, when the task lacks one. Unset: every
    /// address the task has.
    #[arg(long, env = "ECSSD_ADDRESS_FAMILY")]
    pub address_family: Option<AddressFamily>,

    /// Where the task's containers are seen: `docker` (the Docker socket: environment variables and
    /// labels, stop signals as they are sent), `metadata` (ECS task metadata: labels only, polled; no
    /// socket, as on Fargate), or `auto`: Docker when its socket is present, else metadata.
    #[arg(long, env = "ECSSD_SOURCE", value_enum, default_value_t = SourceSetting::Auto)]
    pub source: SourceSetting,

    /// Milliseconds between reads of task metadata in metadata mode (a local endpoint: no AWS call); a
    /// change is published within this and the Route53 call.
    #[arg(long, env = "ECSSD_METADATA_POLL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub metadata_poll_ms: u64,

    /// Milliseconds to gather a burst of Docker events into one Route53 change (at most a minute).
    #[arg(long, env = "ECSSD_COALESCE_MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub coalesce_ms: u64,

    /// The ECS task metadata endpoint (set by the ECS agent in every container).
    #[arg(long, env = "ECS_CONTAINER_METADATA_URI_V4")]
    pub metadata_uri: Option<String>,

    /// Seconds to keep retrying the task metadata endpoint and EC2 instance metadata at start, where
    /// they can be slow to answer (at most an hour).
    #[arg(long, env = "ECSSD_METADATA_WAIT_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub metadata_wait_seconds: u64,

    /// Seconds between checks of the task's records through DNS (no Route53 API call); a record
    /// deleted or changed behind the sidecar's back is repaired after the next check that sees it.
    /// 0 turns self-healing off.
    #[arg(long, env = "ECSSD_HEAL_CHECK_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub heal_check_seconds: u64,

    /// The DNS resolver to check records with, `ip` or `ip:port`. Defaults to the first nameserver of
    /// /etc/resolv.conf, which in an ECS task is the VPC's resolver.
    #[arg(long, env = "ECSSD_RESOLVER", value_parser = parse_resolver)]
    pub resolver: Option<SocketAddr>,

    /// Seconds a resolver may remember that a name did not exist: the zone's negative TTL (the lesser
    /// of its SOA's TTL and MINIMUM; 900 on a zone Route53 creates, 10 on one the stack creates).
    /// Absent names are not taken as deleted until this and the propagation time have passed since
    /// the sidecar's last change.
    #[arg(long, env = "ECSSD_HEAL_DNS_LAG_SECONDS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(0..=604_800))]
    pub heal_dns_lag_seconds: u64,

    /// Seconds Route53 may take to show a change on its name servers ("generally within 60 seconds"):
    /// DNS checks wait this long after the sidecar's last change, because a resolver asked about a name
    /// Route53 does not show yet remembers it as absent, for every client, for the negative TTL.
    #[arg(long, env = "ECSSD_HEAL_PROPAGATION_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub heal_propagation_seconds: u64,

    /// Seconds after which an SRV record DNS cannot show (its name answers Route53's maximum of 8
    /// targets, none of them this one) is read through the API: one call per record per period.
    #[arg(long, env = "ECSSD_HEAL_VERIFY_SECONDS", default_value_t = 7200, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub heal_verify_seconds: u64,

    /// Seconds a record Route53 refused waits before it is tried again, jittered up to half as long
    /// again: mostly a task past Route53's 100 targets per name, waiting for room. Each waiting task
    /// costs one request per wait out of the account's few per second.
    #[arg(long, env = "ECSSD_REFUSED_RETRY_SECONDS", default_value_t = crate::registrar::REFUSED_RETRY.as_secs(), value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub refused_retry_seconds: u64,

    /// URL of the registration queue (the stack's `RegistrationQueueUrl` output). Registrations are
    /// handed to the queue, and the batcher writes many tasks' registrations in one request: a deploy of
    /// hundreds of tasks then costs Route53 a few requests, not one or more per task. Withdrawals go to
    /// Route53 directly. Unset: every change goes to Route53 directly.
    #[arg(long, env = "ECSSD_REGISTRATION_QUEUE_URL", value_parser = parse_queue_url)]
    pub registration_queue_url: Option<String>,

    /// Log format.
    #[arg(long, env = "ECSSD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Log filter, e.g. `info` or `ecssd_sidecar=debug,info`.
    #[arg(long, env = "ECSSD_LOG_LEVEL", default_value = "info", value_parser = ecssd_edge::cli::log_filter)]
    pub log_level: String,

    /// Register the task's records once and exit, without following changes.
    #[arg(long, conflicts_with = "deregister")]
    pub once: bool,

    /// Withdraw every record this task owns and exit (an operator's clean-up).
    #[arg(long)]
    pub deregister: bool,
}

/// An SQS queue URL: `https://` (or `http://`, for a local endpoint) and a path naming the queue.
fn parse_queue_url(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest.and_then(|r| r.split_once('/')) {
        Some((host, path)) if !host.is_empty() && !path.is_empty() && !url.contains(char::is_whitespace) => {
            Ok(url.to_owned())
        }
        _ => Err(format!(
            "{url:?} is not an SQS queue URL (expected https://sqs.<region>.amazonaws.com/<account>/<queue>)"
        )),
    }
}

impl Config {
    pub fn drain(&self) -> Duration {
        Duration::from_secs(self.drain_seconds.unwrap_or(u64::from(self.ttl)))
    }

    pub fn coalesce(&self) -> Duration {
        Duration::from_millis(self.coalesce_ms)
    }

    pub fn refused_retry(&self) -> Duration {
        Duration::from_secs(self.refused_retry_seconds)
    }

    pub fn metadata_poll(&self) -> Duration {
        Duration::from_millis(self.metadata_poll_ms)
    }
}

/// `ip` (port 53) or `ip:port`.
fn parse_resolver(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| {
            format!("`{text}` is not a resolver address: expected an IP address, optionally with :port")
        })
}

#[cfg(test)]
mod tests {
    use std::any::TypeId;

    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("ecssd-sidecar").chain(args.iter().copied()))
    }

    /// Every numeric setting has a range: a value past it (the largest u64 above all, which as a
    /// Duration added to an Instant panics) stops the sidecar at start, naming the setting and range.
    #[test]
    fn numeric_settings_out_of_range_are_refused_naming_the_setting_and_its_range() {
        let cases = [
            ("--ttl", "0..=172800"),
            ("--drain-seconds", "0..=172800"),
            ("--metadata-poll-ms", "100..=60000"),
            ("--coalesce-ms", "0..=60000"),
            ("--metadata-wait-seconds", "0..=3600"),
            ("--heal-check-seconds", "0..=86400"),
            ("--heal-dns-lag-seconds", "0..=604800"),
            ("--heal-propagation-seconds", "0..=3600"),
            ("--heal-verify-seconds", "1..=604800"),
            ("--refused-retry-seconds", "1..=86400"),
        ];
        for (flag, range) in cases {
            let top = range.rsplit('=').next().unwrap_or_default();
            let above: u64 = top.parse::<u64>().expect("a bound") + 1;
            for value in [above.to_string(), u64::MAX.to_string()] {
                let error =
                    parse(&[&format!("{flag}={value}")]).expect_err(&format!("{flag}={value} is refused"));
                let message = error.to_string();
                // A u32 setting reads numbers as i64 first: u64::MAX is "too large" before any range.
                let says_why = message.contains(range) || message.contains("too large");
                assert!(message.contains(flag) && says_why, "{flag}={value}: {message}");
            }
            // The bound itself is a value.
            parse(&[&format!("{flag}={top}")]).unwrap_or_else(|e| panic!("{flag}={top}: {e}"));
        }
        // Every numeric setting is in the list above: a new one without a range fails here.
        let integers = [TypeId::of::<u64>(), TypeId::of::<u32>(), TypeId::of::<u16>(), TypeId::of::<i64>()];
        let unlisted: Vec<String> = Config::command()
            .get_arguments()
            .filter(|argument| integers.iter().any(|id| argument.get_value_parser().type_id() == *id))
            .filter_map(|argument| argument.get_long().map(|long| format!("--{long}")))
            .filter(|flag| !cases.iter().any(|(listed, _)| listed == flag))
            .collect();
        assert!(unlisted.is_empty(), "numeric settings without a range test: {unlisted:?}");
    }

    #[test]
    fn the_defaults_are_in_range() {
        let config = parse(&[]).expect("defaults");
        assert_eq!(config.metadata_wait_seconds, 60);
        assert_eq!(config.coalesce(), Duration::from_millis(100));
        assert_eq!(config.drain(), Duration::from_secs(10));
    }
}
