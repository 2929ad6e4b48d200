//! Remembering, between runs, since when an ECS agent has been disconnected: ECS reports only that
//! it is disconnected, and a host that died must not keep its records for long, nor one that blinked
//! lose them. The memory is an ecssd-owned TXT record per container instance,
//! `_ecssd-agent.<container-instance-id>.<owner>.<domain>` = `"heritage=ecssd" "owner=<owner>" "since=<unix s>"`,
//! created when the agent is first seen disconnected and deleted when it is back.

use std::collections::BTreeMap;

use ecssd_records::ownership::{HERITAGE, txt_strings};
use ecssd_records::{Change, Domain, OwnerId, Record, RecordKey, RecordType};

const LABEL: &str = "_ecssd-agent";

/// The marker's record name for a container instance (ARN or id), per owner: two deployments sharing
/// a zone keep their own clocks.
pub fn marker_name(domain: &Domain, owner: &OwnerId, container_instance: &str) -> String {
    let id = container_instance.rsplit('/').next().unwrap_or(container_instance);
    domain.child(&format!("{LABEL}.{id}.{owner}"))
}

/// This owner's markers in a listing: record name -> (record, disconnected since, unix seconds).
pub fn markers(owner: &OwnerId, listed: &[Record]) -> BTreeMap<String, (Record, u64)> {
    let prefix = format!("{LABEL}.");
    listed
        .iter()
        .filter(|r| r.key.record_type == RecordType::Txt && r.key.name.starts_with(&prefix))
        .filter_map(|record| {
            let strings = txt_strings(record.values().first()?);
            let ours = strings.first().is_some_and(|s| s == HERITAGE)
                && strings.iter().any(|s| s.strip_prefix("owner=") == Some(owner.as_str()));
            let since = strings.iter().find_map(|s| s.strip_prefix("since=")?.parse().ok())?;
            ours.then(|| (record.key.name.clone(), (record.clone(), since)))
        })
        .collect()
}

/// A new marker saying the agent is disconnected since `now`.
pub fn new_marker(domain: &Domain, owner: &OwnerId, container_instance: &str, now: u64, ttl: u32) -> Change {
    let key = RecordKey {
        name: marker_name(domain, owner, container_instance),
        record_type: RecordType::Txt,
        set_identifier: None,
    };
    Change::create(Record::new(key, ttl, vec![format!("\"{HERITAGE}\" \"owner={owner}\" \"since={now}\"")]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_respect_owners() {
        let domain: Domain = "sd.internal".parse().unwrap();
        let owner: OwnerId = "default".parse().unwrap();
        let arn = "arn:aws:ecs:us-east-1:1:container-instance/c/abc123";
        let change = new_marker(&domain, &owner, arn, 1_700_000_000, 60);
        assert_eq!(change.record.key.name, "_ecssd-agent.abc123.default.sd.internal.");
        let found = markers(&owner, std::slice::from_ref(&change.record));
        assert_eq!(found[&change.record.key.name].1, 1_700_000_000);
        assert!(markers(&"other".parse().unwrap(), &[change.record]).is_empty());
    }
}
