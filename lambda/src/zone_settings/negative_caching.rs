//! How long resolvers may remember that a name does not exist in the zone, and setting it.
//!
//! When a service's last task withdraws, its SRV name stops existing; a resolver asked then caches
//! "no such name" for the lesser of the SOA's TTL and MINIMUM (RFC 2308 §5), 900 s on a zone Route53
//! has just created. Each sweep reads the SOA (one call) and reports that time, with the fix when it is
//! over the limit; it changes the SOA only when told to keep a value (a setting the stack's IAM policy
//! must also allow). The stack's custom resource sets it once, on a zone the stack creates.

use ecssd_records::{CallError, Soa, SoaStore};
use serde::Serialize;

use crate::deadline::Deadline;

/// What the warning suggests: the sidecars' default record TTL and the stack's default, so that an
/// absence is remembered no longer than a withdrawn target.
const SUGGESTED_SECONDS: u32 = 10;

/// The zone as the fix command names it.
#[derive(Debug, Clone, Copy)]
pub struct ZoneName<'a> {
    pub id: &'a str,
    /// Fully qualified, e.g. `servicediscovery.internal.`
    pub domain: &'a str,
}

/// What the sweep found (and did) about the zone's negative caching.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NegativeCaching {
    /// The SOA record's TTL and MINIMUM as read, before this run changed anything.
    pub soa_ttl: u32,
    pub soa_minimum: u32,
    /// How long resolvers may cache an absent name now (after any change this run made).
    pub seconds: u32,
    /// The longest the report accepts without a warning (`ECSSD_NEGATIVE_TTL_LIMIT`).
    pub limit_seconds: u32,
    /// The value this run set TTL and MINIMUM to (`ECSSD_KEEP_NEGATIVE_TTL`), or would have in a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_to: Option<u32>,
    /// Why the time is too long and how to shorten it; absent when it is within the limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// What a sweep is told about negative caching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub limit_seconds: u32,
    /// Keep the negative-caching time at this value (TTL and MINIMUM), changing the SOA when it differs.
    pub keep_seconds: Option<u32>,
    pub dry_run: bool,
}

/// Reads the zone's SOA, sets it as `policy` asks, and says whether resolvers may remember an absent
/// service for longer than the limit.
pub async fn check(
    zone: &impl SoaStore,
    name: ZoneName<'_>,
    policy: Policy,
    deadline: &Deadline,
) -> Result<NegativeCaching, CallError> {
    let soa = deadline.run(zone.read_soa()).await?;
    let change = policy.keep_seconds.and_then(|seconds| soa.with_negative_ttl(seconds));
    if let Some(wanted) = &change
        && !policy.dry_run
    {
        deadline.run(zone.write_soa(wanted)).await?;
        tracing::info!(before = %soa, after = %wanted, "negative caching set (ECSSD_KEEP_NEGATIVE_TTL)");
    }
    let now = match &change {
        Some(wanted) if !policy.dry_run => wanted,
        _ => &soa,
    };
    let seconds = now.negative_ttl();
    let warning = (seconds > policy.limit_seconds).then(|| {
        format!(
            "resolvers may remember for {seconds} s that a name does not exist (SOA TTL {}, MINIMUM {}), \
             over the limit of {} s (ECSSD_NEGATIVE_TTL_LIMIT): a service that scales to zero stays \
             unresolvable that long after a task registers again. Shorten it: {}",
            now.ttl,
            now.minimum,
            policy.limit_seconds,
            fix_command(
                name,
                now,
                policy.keep_seconds.unwrap_or(SUGGESTED_SECONDS).min(policy.limit_seconds)
            ),
        )
    });
    Ok(NegativeCaching {
        soa_ttl: soa.ttl,
        soa_minimum: soa.minimum,
        seconds,
        limit_seconds: policy.limit_seconds,
        set_to: change.map(|wanted| wanted.ttl),
        warning,
    })
}

/// Sets the zone's negative caching to `seconds` (TTL and MINIMUM) unless it already is: the SOA before,
/// and the one written if any.
pub async fn set(
    zone: &impl SoaStore,
    seconds: u32,
    deadline: &Deadline,
) -> Result<(Soa, Option<Soa>), CallError> {
    let soa = deadline.run(zone.read_soa()).await?;
    let change = soa.with_negative_ttl(seconds);
    if let Some(wanted) = &change {
        deadline.run(zone.write_soa(wanted)).await?;
    }
    Ok((soa, change))
}

/// The AWS CLI command that gives the zone a negative-caching time of `seconds`, keeping the SOA's
/// other fields (the README shows the same command).
pub fn fix_command(zone: ZoneName<'_>, soa: &Soa, seconds: u32) -> String {
    let wanted = soa.with_negative_ttl(seconds).unwrap_or_else(|| soa.clone());
    let batch = serde_json::json!({"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
        "Name": zone.domain, "Type": "SOA", "TTL": wanted.ttl,
        "ResourceRecords": [{"Value": wanted.value()}],
    }}]});
    format!("aws route53 change-resource-record-sets --hosted-zone-id {} --change-batch '{batch}'", zone.id)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ecssd_records::memory::{MemoryZone, route53_new_zone_soa};

    use super::*;

    const ZONE: ZoneName<'static> = ZoneName { id: "Z1", domain: "sd.internal." };
    const WARN_ONLY: Policy = Policy { limit_seconds: 60, keep_seconds: None, dry_run: false };

    fn deadline() -> Deadline {
        Deadline::after(Duration::from_secs(10))
    }

    #[tokio::test]
    async fn a_new_route53_zone_is_reported_with_the_fix_and_left_alone() {
        let zone = MemoryZone::new([]);
        let found = check(&zone, ZONE, WARN_ONLY, &deadline()).await.expect("checked");
        assert_eq!((found.soa_ttl, found.soa_minimum, found.seconds), (900, 86_400, 900));
        let warning = found.warning.expect("900 s is over 60 s");
        assert!(warning.contains("900 s") && warning.contains("ECSSD_NEGATIVE_TTL_LIMIT"), "{warning}");
        assert!(
            warning.contains("--hosted-zone-id Z1") && warning.contains("\"Name\":\"sd.internal.\""),
            "{warning}"
        );
        assert!(warning.contains("\"TTL\":10") && warning.contains("1209600 10\""), "{warning}");
        assert_eq!(found.set_to, None);
        assert_eq!(zone.calls(), ["read SOA"], "one read, no change");
    }

    #[tokio::test]
    async fn a_short_negative_ttl_is_reported_without_a_warning() {
        let zone = MemoryZone::new([]);
        zone.write_soa(&route53_new_zone_soa().with_negative_ttl(10).expect("a change")).await.expect("set");
        zone.take_calls();
        let found = check(&zone, ZONE, WARN_ONLY, &deadline()).await.expect("checked");
        assert_eq!((found.seconds, found.warning), (10, None));
    }

    #[tokio::test]
    async fn keeping_a_value_sets_ttl_and_minimum_once() {
        let zone = MemoryZone::new([]);
        let keep = Policy { keep_seconds: Some(10), ..WARN_ONLY };
        let found = check(&zone, ZONE, keep, &deadline()).await.expect("checked");
        assert_eq!((found.soa_ttl, found.seconds, found.set_to, found.warning), (900, 10, Some(10), None));
        let soa = zone.read_soa().await.expect("read");
        assert_eq!((soa.ttl, soa.minimum, soa.retry), (10, 10, 900), "other fields kept");
        zone.take_calls();
        let again = check(&zone, ZONE, keep, &deadline()).await.expect("checked");
        assert_eq!(again.set_to, None);
        assert_eq!(zone.calls(), ["read SOA"], "already kept: no write");
    }

    #[tokio::test]
    async fn a_dry_run_says_what_it_would_set_and_changes_nothing() {
        let zone = MemoryZone::new([]);
        let keep = Policy { keep_seconds: Some(10), dry_run: true, ..WARN_ONLY };
        let found = check(&zone, ZONE, keep, &deadline()).await.expect("checked");
        assert_eq!(found.set_to, Some(10));
        assert_eq!(found.seconds, 900, "still what resolvers get");
        assert!(found.warning.is_some());
        assert_eq!(zone.calls(), ["read SOA"]);
        assert_eq!(zone.read_soa().await.expect("read").ttl, 900);
    }
}
