//! Reading a whole zone listing into what the sweeper acts on, without I/O: ecssd's records grouped by
//! task through their ownership records, and orphans (records of ecssd's shape whose counterpart is
//! gone). Records of any other shape or owner are left out, so nothing can ever act on them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ecssd_records::ownership::{OWNERSHIP_LABEL, address_name};
use ecssd_records::{
    Domain, OwnerId, Ownership, OwnershipError, Record, RecordKey, RecordType, task_id_of_set_identifier,
};

/// One task's records, found through its ownership record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecords {
    pub ownership: Ownership,
    /// Every record of the task present in the zone (ownership TXT, A, listed SRVs), exact values.
    pub records: Vec<Record>,
}

impl TaskRecords {
    /// The registered address, if the A record is present.
    pub fn address(&self) -> Option<Ipv4Addr> {
        self.records
            .iter()
            .find(|r| r.key.record_type == RecordType::A)
            .and_then(|r| r.values().first())
            .and_then(|v| v.parse().ok())
    }

    /// (SRV record name, reachable port) of every registered target.
    pub fn targets(&self) -> Vec<(String, u16)> {
        self.records
            .iter()
            .filter(|r| r.key.record_type == RecordType::Srv)
            .filter_map(|r| {
                let port = r.values().first()?.split(' ').nth(2)?.parse().ok()?;
                Some((r.key.name.clone(), port))
            })
            .collect()
    }
}

/// What a zone listing holds for this deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Tasks with an ownership record of this owner and at least one other record.
    pub tasks: Vec<TaskRecords>,
    /// ecssd-shaped records whose counterpart is gone: an SRV with ecssd's set identifier whose task
    /// has no ownership record, the A record such an SRV points at, or an ownership record of this
    /// owner whose A and SRV records are all gone.
    pub orphans: Vec<Record>,
    /// Ownership records with ecssd's marker that cannot be read (left alone, reported).
    pub unreadable: Vec<RecordKey>,
    /// Every A, SRV and TXT record listed.
    pub records_seen: usize,
}

pub fn inventory(domain: &Domain, owner: &OwnerId, listed: Vec<Record>) -> Inventory {
    let records_seen = listed.len();
    let by_key: BTreeMap<RecordKey, Record> = listed.into_iter().map(|r| (r.key.clone(), r)).collect();
    let ownership_prefix = format!("{OWNERSHIP_LABEL}.");
    let domain_suffix = format!(".{}", domain.fqdn());
    let mut inventory = Inventory { records_seen, ..Inventory::default() };
    // Task ids with an ownership record of any owner: their records are never orphans.
    let mut owned_task_ids = BTreeSet::new();
    for record in by_key.values().filter(|r| r.key.record_type == RecordType::Txt) {
        if !record.key.name.starts_with(&ownership_prefix) {
            continue;
        }
        let ownership = match Ownership::decode(record.values()) {
            Ok(ownership) => ownership,
            Err(OwnershipError::NotOurs) => continue,
            Err(OwnershipError::Malformed(_)) => {
                // Unreadable, but it still claims its task: that task's records are nobody's orphans.
                if let Some(id) =
                    record.key.name.strip_prefix(&ownership_prefix).and_then(|n| n.split('.').next())
                {
                    owned_task_ids.insert(id.to_owned());
                }
                inventory.unreadable.push(record.key.clone());
                continue;
            }
        };
        owned_task_ids.insert(ownership.task.id().to_owned());
        if ownership.owner != *owner {
            continue;
        }
        let a_key = RecordKey {
            name: address_name(domain, &ownership.task),
            record_type: RecordType::A,
            set_identifier: None,
        };
        // Only keys of ecssd's shape for this task: an ownership record cannot hand over anything else.
        let listed_srv = ownership.srv.iter().filter(|key| {
            key.set_identifier.as_deref().and_then(task_id_of_set_identifier) == Some(ownership.task.id())
                && key.name.ends_with(&domain_suffix)
        });
        let others: Vec<Record> =
            std::iter::once(&a_key).chain(listed_srv).filter_map(|key| by_key.get(key).cloned()).collect();
        if others.is_empty() {
            inventory.orphans.push(record.clone());
            continue;
        }
        let mut records = vec![record.clone()];
        records.extend(others);
        inventory.tasks.push(TaskRecords { ownership, records });
    }
    for record in by_key.values().filter(|r| r.key.record_type == RecordType::Srv) {
        let Some(task_id) = record.key.set_identifier.as_deref().and_then(task_id_of_set_identifier) else {
            continue;
        };
        if owned_task_ids.contains(task_id) {
            continue;
        }
        inventory.orphans.push(record.clone());
        let a_key =
            RecordKey { name: domain.child(task_id), record_type: RecordType::A, set_identifier: None };
        if let Some(a) = by_key.get(&a_key)
            && !inventory.orphans.contains(a)
        {
            inventory.orphans.push(a.clone());
        }
    }
    inventory
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::web_task_records as task_records;

    fn foreign() -> Vec<Record> {
        let key =
            |name: &str, record_type| RecordKey { name: name.into(), record_type, set_identifier: None };
        vec![
            Record::new(key("db.sd.internal.", RecordType::A), 300, vec!["10.9.9.9".into()]),
            Record::new(key("_ecssd.fake.sd.internal.", RecordType::Txt), 300, vec!["\"v=spf1\"".into()]),
            Record::new(
                RecordKey {
                    name: "_web._tcp.sd.internal.".into(),
                    record_type: RecordType::Srv,
                    set_identifier: Some("manual".into()),
                },
                300,
                vec!["1 1 80 db.sd.internal".into()],
            ),
        ]
    }

    fn run(records: Vec<Record>) -> Inventory {
        inventory(&"sd.internal".parse().unwrap(), &"default".parse().unwrap(), records)
    }

    #[test]
    fn groups_tasks_and_ignores_foreign_records() {
        let mut records: Vec<Record> = task_records("default", "t1").into_iter().collect();
        records.extend(task_records("default", "t2"));
        records.extend(foreign());
        let inventory = run(records);
        assert_eq!(inventory.tasks.len(), 2);
        assert!(inventory.tasks.iter().all(|t| t.records.len() == 3));
        assert_eq!(inventory.tasks[0].address(), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(inventory.tasks[0].targets(), [("_web._tcp.sd.internal.".to_owned(), 32768)]);
        assert!(inventory.orphans.is_empty());
        assert_eq!(inventory.records_seen, 9);
    }

    #[test]
    fn other_owners_are_neither_tasks_nor_orphans() {
        let inventory = run(task_records("other", "t1").into_iter().collect());
        assert!(inventory.tasks.is_empty());
        assert!(inventory.orphans.is_empty());
    }

    #[test]
    fn orphans_in_both_directions() {
        // t1 lost its ownership record; t2 kept only its ownership record.
        let t1: Vec<Record> = task_records("default", "t1")
            .into_iter()
            .filter(|r| r.key.record_type != RecordType::Txt)
            .collect();
        let t2: Vec<Record> = task_records("default", "t2")
            .into_iter()
            .filter(|r| r.key.record_type == RecordType::Txt)
            .collect();
        let mut records = t1.clone();
        records.extend(t2.clone());
        records.extend(foreign());
        let inventory = run(records);
        assert!(inventory.tasks.is_empty());
        let mut orphans = inventory.orphans.clone();
        orphans.sort_by(|a, b| a.key.cmp(&b.key));
        let mut expected = [t1, t2].concat();
        expected.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(orphans, expected);
    }

    #[test]
    fn a_malformed_ownership_record_is_reported_not_touched() {
        let key = RecordKey {
            name: "_ecssd.t9.sd.internal.".into(),
            record_type: RecordType::Txt,
            set_identifier: None,
        };
        let broken = Record::new(key.clone(), 10, vec!["\"heritage=ecssd\" \"owner=default\"".into()]);
        let inventory = run(vec![broken]);
        assert_eq!(inventory.unreadable, [key]);
        assert!(inventory.orphans.is_empty());
    }
}
