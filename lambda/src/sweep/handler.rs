//! The sweeper function: a scheduled EventBridge event (EventBridge User Guide, "Creating a rule that
//! runs on a schedule": `source` `aws.events`, `detail-type` `Scheduled Event`) runs one sweep, and the
//! shell mode runs the same sweep once. Anything else is refused before anything is read.

use aws_lambda_events::eventbridge::EventBridgeEvent;

use crate::clients::Clients;
use crate::deadline::Deadline;
use crate::report::{capped_for_log, now_ms, print_json};
use crate::sweep::{Report, sweep};
use crate::zone_settings::negative_caching::{self, ZoneName};

/// The event a schedule sends.
const SCHEDULED_SOURCE: &str = "aws.events";
const SCHEDULED_DETAIL_TYPE: &str = "Scheduled Event";

/// Serves one scheduled event; answers with the report as it is logged (long lists cut to fit).
pub async fn handle(
    clients: &Clients,
    event: EventBridgeEvent<serde_json::Value>,
    deadline: Deadline,
) -> anyhow::Result<serde_json::Value> {
    let source = event.source.as_str();
    anyhow::ensure!(
        source == SCHEDULED_SOURCE && event.detail_type == SCHEDULED_DETAIL_TYPE,
        "the sweeper takes scheduled events only (source {SCHEDULED_SOURCE:?}, detail-type \
         {SCHEDULED_DETAIL_TYPE:?}), not source {source:?}, detail-type {:?}: nothing was done",
        event.detail_type
    );
    let left_ms = deadline.left().as_millis() as u64;
    tracing::info!(source, detail_type = %event.detail_type, left_ms, "sweep triggered");
    if let Some(since) = too_soon(clients) {
        let since_s = since.as_secs();
        let min_interval_s = clients.config.min_sweep_interval_seconds;
        tracing::warn!(
            problem = "sweep_too_soon",
            since_s,
            min_interval_s,
            "a sweep started {since_s} s ago; this invocation sweeps nothing (ECSSD_MIN_SWEEP_INTERVAL_SECONDS)"
        );
        return Ok(serde_json::json!({
            "skipped": format!("a sweep started {since_s} s ago, less than ECSSD_MIN_SWEEP_INTERVAL_SECONDS ({min_interval_s} s): nothing was done"),
        }));
    }
    Ok(capped_for_log(serde_json::to_value(run(clients, deadline).await?)?))
}

/// How long ago the last sweep started, if that is within the minimum interval; otherwise this
/// invocation's sweep is recorded as the last. Wall-clock time: Lambda freezes an instance between
/// invocations, and AWS does not say that a monotonic clock advances meanwhile.
fn too_soon(clients: &Clients) -> Option<std::time::Duration> {
    let minimum = std::time::Duration::from_secs(clients.config.min_sweep_interval_seconds);
    let mut last = clients.last_sweep.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = std::time::SystemTime::now();
    let since = last.and_then(|started| now.duration_since(started).ok());
    match since {
        Some(since) if since < minimum => Some(since),
        _ => {
            *last = Some(now);
            None
        }
    }
}

/// One sweep, with the zone's negative caching checked; the report is logged, and its metrics printed
/// as an EMF line.
pub async fn run(clients: &Clients, deadline: Deadline) -> anyhow::Result<Report> {
    let before = clients.calls();
    let config = &clients.config;
    let policy = negative_caching::Policy {
        limit_seconds: config.negative_ttl_limit,
        keep_seconds: config.keep_negative_ttl,
        dry_run: config.dry_run,
    };
    let zone = &clients.zone;
    let name = ZoneName { id: zone.zone_id(), domain: zone.domain().fqdn() };
    let negative_caching = negative_caching::check(zone, name, policy, &deadline).await;
    let mut report = sweep(zone, &clients.fleet, config, deadline).await;
    match negative_caching {
        Ok(found) => {
            if let Some(warning) = &found.warning {
                tracing::warn!(%warning, "negative caching is too long");
            }
            report.negative_caching = Some(found);
        }
        Err(e) => report.errors.push(format!("reading the zone's SOA (negative caching): {e}")),
    }
    report.api_calls = clients.calls_since(&before);
    tracing::info!(report = %capped_for_log(serde_json::to_value(&report)?), "sweep finished");
    print_json(&report.emf(now_ms()));
    Ok(report)
}
