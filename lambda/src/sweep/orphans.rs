//! Confirming orphans before deleting them: the listing is not a snapshot, and a task that registered
//! while it was read shows its SRV and address records without the ownership record listed earlier. Each
//! orphan's counterparts are read again by name; any sign of an owner (or a failed read) keeps it. The
//! reads are bounded per sweep: the rest are left for the next run.

use ecssd_records::{
    Domain, Ownership, Record, RecordKey, RecordStore, RecordType, TaskKeys, parse_set_identifier,
};

use crate::deadline::Deadline;

/// The orphans confirmed now, and how many were left unconfirmed for the next run.
#[derive(Debug, Default)]
pub struct Confirmed {
    pub orphans: Vec<Record>,
    pub deferred: usize,
}

/// Confirms `orphans` with at most `max_reads` reads by name, within the deadline.
pub async fn confirm<S: RecordStore>(
    store: &S,
    domain: &Domain,
    orphans: Vec<Record>,
    max_reads: usize,
    deadline: Deadline,
    errors: &mut Vec<String>,
) -> Confirmed {
    let mut confirmed = Confirmed::default();
    let mut reads = 0;
    for orphan in orphans {
        // One request per group: a name's A and AAAA are read together.
        let groups = ecssd_records::provider::reads(&counterparts(domain, &orphan));
        if groups.is_empty() {
            continue;
        }
        if reads + groups.len() > max_reads || deadline.passed() {
            confirmed.deferred += 1;
            continue;
        }
        let mut owned = false;
        for group in &groups {
            reads += 1;
            match deadline.run(store.read_group(group)).await {
                Ok(found) if found.is_empty() => continue,
                Ok(_) => {}
                Err(e) => errors.push(format!("checking orphan {}: {e}", orphan.key)),
            }
            owned = true;
            break;
        }
        if !owned {
            confirmed.orphans.push(orphan);
        }
    }
    if confirmed.deferred > 0 {
        errors.push(format!(
            "{} orphans left for the next run: confirming them would pass {max_reads} reads \
             (ECSSD_ORPHAN_READS_PER_SWEEP) or the deadline",
            confirmed.deferred
        ));
    }
    confirmed
}

/// The records whose presence would mean `orphan` has an owner: an SRV's or address record's
/// ownership record, an ownership record's address and SRV records.
fn counterparts(domain: &Domain, orphan: &Record) -> Vec<RecordKey> {
    let txt = |task_id: &str| TaskKeys::of(domain, task_id).ownership;
    match orphan.key.record_type {
        RecordType::Srv => {
            let claim = orphan.key.set_identifier.as_deref().and_then(parse_set_identifier);
            claim.map(|c| vec![txt(c.task_id)]).unwrap_or_default()
        }
        RecordType::A | RecordType::Aaaa => {
            orphan.key.name.split('.').next().map(|id| vec![txt(id)]).unwrap_or_default()
        }
        RecordType::Txt => match Ownership::decode(orphan.values()) {
            Ok(ownership) => ownership.handed_over(domain),
            Err(_) => Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ecssd_records::RecordType;
    use ecssd_records::memory::MemoryZone;

    use super::*;
    use crate::fixtures::{TASK_IDS, model, web_task_records};

    fn ownership_record(id: &str) -> Record {
        let records = web_task_records("default", id);
        records.iter().find(|r| r.key.record_type == RecordType::Txt).cloned().unwrap()
    }

    #[tokio::test]
    async fn reads_stay_within_the_budget_and_the_rest_wait() {
        // Three ownership records alone: each costs two reads (its A and AAAA together, its one SRV).
        let orphans: Vec<Record> = TASK_IDS[..3].iter().map(|id| ownership_record(id)).collect();
        let zone = MemoryZone::new(orphans.clone());
        let mut errors = Vec::new();
        let deadline = Deadline::after(Duration::from_secs(60));
        let domain = model("default").domain;
        let confirmed = confirm(&zone, &domain, orphans.clone(), 5, deadline, &mut errors).await;
        assert_eq!(confirmed.orphans, orphans[..2]);
        assert_eq!(confirmed.deferred, 1);
        assert_eq!(zone.calls().iter().filter(|c| c.starts_with("read")).count(), 4);
        assert!(errors[0].contains("1 orphans left for the next run"), "{errors:?}");
    }

    #[tokio::test]
    async fn a_counterpart_that_appeared_keeps_the_orphan() {
        let records = web_task_records("default", TASK_IDS[0]);
        let srv = records.iter().find(|r| r.key.record_type == RecordType::Srv).cloned().unwrap();
        // The listing showed the SRV alone; the ownership record is there now.
        let zone = MemoryZone::new(records.into_iter().collect::<Vec<_>>());
        let mut errors = Vec::new();
        let deadline = Deadline::after(Duration::from_secs(60));
        let confirmed = confirm(&zone, &model("default").domain, vec![srv], 100, deadline, &mut errors).await;
        assert!(confirmed.orphans.is_empty() && errors.is_empty());
    }
}
