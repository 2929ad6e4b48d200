//! Emptying a zone the stack created of this owner's records when the stack deletes it: Route53 deletes
//! only a zone that holds nothing but its SOA and NS records (API Reference, DeleteHostedZone:
//! `HostedZoneNotEmpty`), so a stack deleted while tasks had registered failed at the zone, naming no
//! record. Only what this owner provably wrote goes (the records of its tasks' ownership records, its
//! proven orphans, withdrawal guards, its agent clock), each with its exact values; anything else blocks the delete, named
//! before anything is deleted. Records of shapes ecssd never writes (aliases, other types) are not
//! listed here: Route53's own `HostedZoneNotEmpty` names the zone then.

use ecssd_records::{Change, Domain, OwnerId, RecordStore};

use crate::deadline::Deadline;
use crate::sweep::agents;
use crate::sweep::apply::{Fallback, apply};
use crate::sweep::inventory::inventory;

/// Records named in a refusal, at most.
const NAMED: usize = 10;

/// Deletes this owner's records from the zone; then the records that still keep Route53 from deleting
/// it, if any, make the error (naming them).
pub async fn empty_of_ours<S: RecordStore>(
    store: &S,
    domain: &Domain,
    owner: &OwnerId,
    deadline: Deadline,
) -> Result<usize, String> {
    let listed = deadline.run(store.list_all()).await.map_err(|e| format!("reading the zone: {e}"))?;
    let markers = agents::markers(owner, &listed);
    // Withdrawal guards go too: the stack is being deleted. A handoff that lands after this (its queue
    // and batcher may be deleted at the same time) is named by the check below, and fails the delete.
    let found = inventory(domain, owner, listed.clone(), 0);
    let mut units: Vec<Vec<Change>> =
        found.tasks.iter().map(|task| task.records.iter().cloned().map(Change::delete).collect()).collect();
    units.extend(found.orphans.into_iter().chain(found.guards).map(|orphan| vec![Change::delete(orphan)]));
    units.extend(markers.into_values().map(|(marker, _)| vec![Change::delete(marker)]));
    // What would still block the zone's delete is named before anything is deleted: the stack's delete
    // then fails with this owner's tasks still registered, not after they lost their records.
    let ours: std::collections::BTreeSet<&ecssd_records::RecordKey> =
        units.iter().flatten().map(|change| &change.record.key).collect();
    let blocking: Vec<String> = listed
        .iter()
        .filter(|r| !ours.contains(&r.key))
        .map(|r| format!("{} {}", r.key.name, r.key.record_type))
        .collect();
    if !blocking.is_empty() {
        return Err(blocked(owner, &blocking, "nothing was deleted"));
    }
    let deleted = units.iter().map(Vec::len).sum();
    let mut errors = Vec::new();
    let failed = apply(store, units, false, Fallback::ExactOnly, deadline, &mut errors).await;
    if !failed.is_empty() {
        return Err(format!("deleting ecssd's records failed: {}", errors.join("; ")));
    }
    let left = deadline.run(store.list_all()).await.map_err(|e| format!("reading the zone again: {e}"))?;
    // The listing holds the types ecssd writes (A, AAAA, SRV, TXT): the zone's SOA and NS are not in it.
    let blocking: Vec<String> =
        left.iter().map(|r| format!("{} {}", r.key.name, r.key.record_type)).collect();
    if blocking.is_empty() {
        return Ok(deleted);
    }
    Err(blocked(owner, &blocking, "ecssd's records were deleted"))
}

/// Why the zone cannot be deleted: the records that block it, named.
fn blocked(owner: &OwnerId, blocking: &[String], done: &str) -> String {
    format!(
        "the zone still holds {} A, AAAA, SRV or TXT records ecssd of owner {owner} did not write (or that \
         changed while it was emptied), which keep Route53 from deleting it: {}{} ({done}); delete them \
         (and any record of another type), or stop the tasks still registering, and delete the stack again",
        blocking.len(),
        blocking[..blocking.len().min(NAMED)].join(", "),
        if blocking.len() > NAMED { ", …" } else { "" }
    )
}
