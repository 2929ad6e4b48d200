//! Remembering, between runs, since when an ECS agent has been disconnected: ECS reports only that
//! it is disconnected, and a host that died must not keep its records for long, nor one that blinked
//! lose them. The memory is an ecssd-owned TXT record per container instance,
//! `_ecssd-agent.<container-instance-id>.<owner>.<domain>` = `"heritage=ecssd" "owner=<owner>" "since=<unix s>"`,
//! created when the agent is first seen disconnected and deleted when it is back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

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

/// This sweep's markers: how long each described agent has been disconnected, and the marker changes
/// that remember it. `agents` holds every container instance described now (ARN -> agent connected).
/// A marker starts when an agent is first seen disconnected and goes when it is back; a marker of a host
/// no live task runs on any more is forgotten only when `described_all`, or a failed call would reset a
/// disconnected agent's clock.
pub fn track(
    domain: &Domain,
    owner: &OwnerId,
    markers: &BTreeMap<String, (Record, u64)>,
    agents: &BTreeMap<String, bool>,
    described_all: bool,
    now: u64,
) -> (BTreeMap<String, Duration>, Vec<Change>) {
    let mut disconnected_for = BTreeMap::new();
    let mut changes = Vec::new();
    let mut current = BTreeSet::new();
    for (arn, connected) in agents {
        let name = marker_name(domain, owner, arn);
        let marker = markers.get(&name);
        current.insert(name);
        let seconds = match (connected, marker) {
            (true, Some((record, _))) => {
                changes.push(Change::delete(record.clone()));
                0
            }
            (true, None) => 0,
            (false, Some((_, since))) => now.saturating_sub(*since),
            (false, None) => {
                changes.push(new_marker(domain, owner, arn, now, MARKER_TTL));
                0
            }
        };
        disconnected_for.insert(arn.clone(), Duration::from_secs(seconds));
    }
    if described_all {
        let unused = markers.iter().filter(|(name, _)| !current.contains(*name));
        changes.extend(unused.map(|(_, (record, _))| Change::delete(record.clone())));
    }
    (disconnected_for, changes)
}

/// TTL of the agent-disconnect markers; nobody resolves them.
const MARKER_TTL: u32 = 60;

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

    #[test]
    fn markers_start_time_and_end_the_clock() {
        let domain: Domain = "sd.internal".parse().unwrap();
        let owner: OwnerId = "default".parse().unwrap();
        let (away, back, gone) = ("arn:ci/away", "arn:ci/back", "arn:ci/gone");
        let since = |arn: &str, at: u64| new_marker(&domain, &owner, arn, at, 60).record;
        let listed = [since(away, 1000), since(back, 1000), since(gone, 1000)];
        let known = markers(&owner, &listed);
        let agents = BTreeMap::from([
            (away.to_owned(), false),
            (back.to_owned(), true),
            ("arn:ci/new".to_owned(), false),
        ]);
        let (clocks, changes) = track(&domain, &owner, &known, &agents, true, 1600);
        assert_eq!(clocks[away], Duration::from_secs(600));
        assert_eq!(clocks[back], Duration::ZERO);
        assert_eq!(clocks["arn:ci/new"], Duration::ZERO, "first seen now");
        let deleted: Vec<&str> = changes
            .iter()
            .filter(|c| c.action == ecssd_records::Action::Delete)
            .map(|c| c.record.key.name.as_str())
            .collect();
        assert_eq!(
            deleted,
            [listed[1].key.name.as_str(), listed[2].key.name.as_str()],
            "back, and no longer used"
        );
        let created: Vec<&str> = changes
            .iter()
            .filter(|c| c.action == ecssd_records::Action::Create)
            .map(|c| c.record.key.name.as_str())
            .collect();
        assert_eq!(created, ["_ecssd-agent.new.default.sd.internal."]);
        let (_, partial) = track(&domain, &owner, &known, &agents, false, 1600);
        assert_eq!(partial.len(), 2, "an unused marker is kept when not every host was described");
    }
}
