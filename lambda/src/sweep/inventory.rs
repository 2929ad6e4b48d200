//! Reading a whole zone listing into what the sweeper may act on, without I/O. Any task holding the
//! sidecar's policy can write the zone, so a record is a claim: only claims of ecssd's exact shape are
//! kept. A task's records are found through its ownership record at the name ecssd derives for the task
//! it names, of this owner, for a task id of ECS's shape; an orphan is a record provably written by this
//! owner whose counterpart is gone. Records of any other shape or owner are left out, so nothing can act
//! on them; claims that look like ecssd's but prove nothing are reported.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use ecssd_records::ownership::OWNERSHIP_LABEL;
use ecssd_records::{
    Domain, OwnerId, Ownership, OwnershipError, Record, RecordKey, RecordType, TaskAddresses, TaskKeys,
    is_ecs_task_id, parse_set_identifier, parse_srv_value,
};

/// One task's records, found through its ownership record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecords {
    pub ownership: Ownership,
    /// Every record of the task present in the zone (ownership TXT, A, AAAA, listed SRVs), exact values.
    pub records: Vec<Record>,
}

impl TaskRecords {
    /// The registered addresses: the A record's IPv4 and the AAAA record's IPv6 address, those present.
    /// An AAAA value is parsed, so another spelling of one address (Route53 keeps a value's text as
    /// first written) is the same address.
    pub fn addresses(&self) -> Option<TaskAddresses> {
        let ipv4: Option<Ipv4Addr> = self.first_value(RecordType::A).and_then(|v| v.parse().ok());
        let ipv6: Option<Ipv6Addr> = self.first_value(RecordType::Aaaa).and_then(|v| v.parse().ok());
        TaskAddresses::from_parts(ipv4, ipv6)
    }

    fn first_value(&self, record_type: RecordType) -> Option<&String> {
        self.records.iter().find(|r| r.key.record_type == record_type).and_then(|r| r.values().first())
    }

    pub fn srv_records(&self) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(|r| r.key.record_type == RecordType::Srv)
    }

    /// Every SRV record name (service) the task serves.
    pub fn services(&self) -> BTreeSet<String> {
        self.srv_records().map(|r| r.key.name.clone()).collect()
    }
}

/// A claim that looks like ecssd's but cannot be acted on, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit {
    /// The task it names (an ARN, or the task id it carries).
    pub task: String,
    pub reason: String,
}

/// What a zone listing holds for this deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Tasks with an ownership record of this owner and at least one other record.
    pub tasks: Vec<TaskRecords>,
    /// Records provably this owner's whose counterpart is gone: an SRV carrying this owner whose task
    /// has no ownership record, the A and AAAA records it targets, or an ownership record of this owner
    /// whose A, AAAA and SRV records are all gone.
    pub orphans: Vec<Record>,
    /// Ownership records of this owner that ecssd would not have written (at another task's name, for
    /// a task id ECS does not issue): reported, never acted on.
    pub misfits: Vec<Misfit>,
    /// Records of ecssd's shape whose counterpart is gone but that carry no proof of this owner (an SRV
    /// written before the owner was in the set identifier, a name of no ECS task id): reported, kept.
    pub unproven: Vec<RecordKey>,
    /// Ownership records with ecssd's marker that cannot be read (left alone, reported).
    pub unreadable: Vec<RecordKey>,
    /// Withdrawal guards of this owner that still keep a task's handed-over registrations from
    /// landing: kept until they expire (then they are orphans), deleted only when the zone is emptied.
    pub guards: Vec<Record>,
    /// Every A, AAAA, SRV and TXT record listed.
    pub records_seen: usize,
}

/// Reads `listed` at `now` (Unix seconds: whether a withdrawal guard still guards).
pub fn inventory(domain: &Domain, owner: &OwnerId, listed: Vec<Record>, now: u64) -> Inventory {
    let records_seen = listed.len();
    let by_key: BTreeMap<RecordKey, Record> = listed.into_iter().map(|r| (r.key.clone(), r)).collect();
    let ownership_prefix = format!("{OWNERSHIP_LABEL}.");
    let mut inventory = Inventory { records_seen, ..Inventory::default() };
    // Task ids any ownership-like record claims, of any owner: their records are never orphans.
    let mut claimed_task_ids = BTreeSet::new();
    for record in by_key.values().filter(|r| r.key.record_type == RecordType::Txt) {
        let Some(label) = record.key.name.strip_prefix(&ownership_prefix).and_then(|n| n.split('.').next())
        else {
            continue;
        };
        let ownership = match Ownership::decode(record.values()) {
            Ok(ownership) => ownership,
            Err(OwnershipError::NotOurs) => continue,
            Err(OwnershipError::Malformed(_)) => {
                // Unreadable, but it still claims its task: that task's records are nobody's orphans.
                claimed_task_ids.insert(label.to_owned());
                inventory.unreadable.push(record.key.clone());
                continue;
            }
        };
        claimed_task_ids.insert(label.to_owned());
        claimed_task_ids.insert(ownership.task.id().to_owned());
        if ownership.owner != *owner {
            continue;
        }
        let misfit = |reason: String| Misfit { task: ownership.task.to_string(), reason };
        let canonical = TaskKeys::of(domain, ownership.task.id()).ownership.name;
        if record.key.name != canonical {
            inventory.misfits.push(misfit(format!(
                "the ownership record {} claims it, but ecssd writes its claim at {canonical}",
                record.key.name
            )));
            continue;
        }
        if !is_ecs_task_id(ownership.task.id()) {
            inventory.misfits.push(misfit(format!(
                "the ownership record {} names task id {:?}, which is not an ECS task id",
                record.key.name,
                ownership.task.id()
            )));
            continue;
        }
        // Only the keys this task may own: an ownership record hands over nothing else.
        let others: Vec<Record> =
            ownership.handed_over(domain).iter().filter_map(|key| by_key.get(key).cloned()).collect();
        if others.is_empty() {
            match ownership.guards_at(now) {
                true => inventory.guards.push(record.clone()),
                false => inventory.orphans.push(record.clone()),
            }
            continue;
        }
        let mut records = vec![record.clone()];
        records.extend(others);
        inventory.tasks.push(TaskRecords { ownership, records });
    }
    for record in by_key.values().filter(|r| r.key.record_type == RecordType::Srv) {
        let Some(claim) = record.key.set_identifier.as_deref().and_then(parse_set_identifier) else {
            continue;
        };
        if claimed_task_ids.contains(claim.task_id) || claim.owner.is_some_and(|o| o != owner.as_str()) {
            continue;
        }
        if claim.owner.is_none() || !is_ecs_task_id(claim.task_id) {
            inventory.unproven.push(record.key.clone());
            continue;
        }
        inventory.orphans.push(record.clone());
        // The address records go with it only when this SRV targets exactly the name ecssd gives the
        // task.
        let keys = TaskKeys::of(domain, claim.task_id);
        let targets_it = record
            .values()
            .iter()
            .all(|v| parse_srv_value(v).is_some_and(|(_, target)| target == keys.target()));
        for key in keys.addresses().into_iter().filter(|_| targets_it) {
            if let Some(address) = by_key.get(key)
                && !inventory.orphans.contains(address)
            {
                inventory.orphans.push(address.clone());
            }
        }
    }
    inventory
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{IPV4, IPV6, TASK_IDS, web_task_records as task_records, web_task_records_at};

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
        inventory(&"sd.internal".parse().unwrap(), &"default".parse().unwrap(), records, NOW)
    }

    const NOW: u64 = 1_700_000_000;

    fn srv(set_identifier: &str, target: &str) -> Record {
        let key = RecordKey {
            name: "_web._tcp.sd.internal.".into(),
            record_type: RecordType::Srv,
            set_identifier: Some(set_identifier.into()),
        };
        Record::new(key, 10, vec![format!("1 1 80 {target}")])
    }

    fn a(name: &str) -> Record {
        let key = RecordKey {
            name: format!("{name}.sd.internal."),
            record_type: RecordType::A,
            set_identifier: None,
        };
        Record::new(key, 10, vec!["10.9.9.9".into()])
    }

    #[test]
    fn groups_tasks_and_ignores_foreign_records() {
        let mut records: Vec<Record> = task_records("default", TASK_IDS[0]).into_iter().collect();
        records.extend(task_records("default", TASK_IDS[1]));
        records.extend(foreign());
        let inventory = run(records);
        assert_eq!(inventory.tasks.len(), 2);
        assert!(inventory.tasks.iter().all(|t| t.records.len() == 3));
        assert_eq!(inventory.tasks[0].addresses(), Some(TaskAddresses::Ipv4(Ipv4Addr::new(10, 0, 0, 1))));
        assert_eq!(inventory.tasks[0].services(), BTreeSet::from(["_web._tcp.sd.internal.".to_owned()]));
        assert!(
            inventory.orphans.is_empty() && inventory.misfits.is_empty() && inventory.unproven.is_empty()
        );
        assert_eq!(inventory.records_seen, 9);
    }

    #[test]
    fn other_owners_are_neither_tasks_nor_orphans() {
        let inventory = run(task_records("other", TASK_IDS[0]).into_iter().collect());
        assert!(inventory.tasks.is_empty());
        assert!(inventory.orphans.is_empty());
        assert!(inventory.unproven.is_empty());
    }

    #[test]
    fn orphans_in_both_directions() {
        // The first task lost its ownership record; the second kept only its ownership record.
        let t1: Vec<Record> = task_records("default", TASK_IDS[0])
            .into_iter()
            .filter(|r| r.key.record_type != RecordType::Txt)
            .collect();
        let t2: Vec<Record> = task_records("default", TASK_IDS[1])
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
    fn a_withdrawal_guard_is_kept_until_it_expires_then_it_is_an_orphan() {
        let claim = task_records("default", TASK_IDS[0])
            .into_iter()
            .find(|r| r.key.record_type == RecordType::Txt)
            .unwrap();
        let Ownership { owner, cluster_arn, task, .. } = Ownership::decode(claim.values()).unwrap();
        let guard = Record::new(
            claim.key.clone(),
            claim.ttl,
            Ownership::withdrawal_guard(owner, cluster_arn, task, NOW).encode(),
        );
        let domain = "sd.internal".parse().unwrap();
        let owner = "default".parse().unwrap();
        let guarding = inventory(&domain, &owner, vec![guard.clone()], NOW);
        assert_eq!((guarding.guards.as_slice(), guarding.orphans.len()), (std::slice::from_ref(&guard), 0));
        let expired = inventory(&domain, &owner, vec![guard.clone()], NOW + 1);
        assert_eq!((expired.guards.len(), expired.orphans), (0, vec![guard]));
    }

    #[test]
    fn a_malformed_ownership_record_is_reported_not_touched() {
        let key = RecordKey {
            name: format!("_ecssd.{}.sd.internal.", TASK_IDS[0]),
            record_type: RecordType::Txt,
            set_identifier: None,
        };
        let broken = Record::new(key.clone(), 10, vec!["\"heritage=ecssd\" \"owner=default\"".into()]);
        let inventory = run(vec![broken]);
        assert_eq!(inventory.unreadable, [key]);
        assert!(inventory.orphans.is_empty());
    }

    #[test]
    fn claims_ecssd_would_not_write_are_reported_and_never_acted_on() {
        let genuine: Vec<Record> = task_records("default", TASK_IDS[0]).into_iter().collect();
        // The same ownership record copied under another name: it claims the task a second time.
        let copy = genuine.iter().find(|r| r.key.record_type == RecordType::Txt).unwrap();
        let elsewhere = RecordKey { name: "_ecssd.elsewhere.sd.internal.".into(), ..copy.key.clone() };
        // A claim on task id `db`, whose A record name is a foreign record's.
        let db: Vec<Record> = task_records("default", "db").into_iter().collect();
        let mut records = genuine.clone();
        records.push(Record::new(elsewhere, copy.ttl, copy.values().to_vec()));
        records.extend(db.iter().filter(|r| r.key.record_type == RecordType::Txt).cloned());
        records.push(a("db"));
        let inventory = run(records);
        assert_eq!(inventory.tasks.len(), 1, "the task is counted once, through its own name");
        assert_eq!(inventory.tasks[0].records.len(), 3);
        let reasons: Vec<&str> = inventory.misfits.iter().map(|m| m.reason.as_str()).collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("ecssd writes its claim at _ecssd.")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("\"db\", which is not an ECS task id")), "{reasons:?}");
        assert!(inventory.orphans.is_empty(), "{:?}", inventory.orphans);
    }

    #[test]
    fn only_srv_records_carrying_this_owner_and_an_ecs_task_id_are_orphans() {
        let id = TASK_IDS[2];
        let ours = srv(&format!("ecssd:default:{id}:web:80"), &format!("{id}.sd.internal"));
        let theirs = srv(&format!("ecssd:other:{id}:x:80"), &format!("{id}.sd.internal"));
        let legacy = srv(&format!("ecssd:{id}:y:80"), &format!("{id}.sd.internal"));
        let not_a_task = srv("ecssd:default:www.prod:x:1", "www.prod.sd.internal");
        let elsewhere = srv(&format!("ecssd:default:{}:z:80", TASK_IDS[3]), "db.sd.internal");
        let records = vec![
            ours.clone(),
            theirs,
            legacy.clone(),
            not_a_task.clone(),
            elsewhere.clone(),
            a(id),
            a("db"),
            a("www.prod"),
        ];
        let inventory = run(records);
        assert_eq!(inventory.orphans, [ours, a(id), elsewhere], "an A record only when its SRV targets it");
        let mut unproven = inventory.unproven.clone();
        unproven.sort();
        let mut expected = vec![legacy.key, not_a_task.key];
        expected.sort();
        assert_eq!(unproven, expected);
    }

    fn of_type(records: &[Record], record_type: RecordType) -> Vec<Record> {
        records.iter().filter(|r| r.key.record_type == record_type).cloned().collect()
    }

    /// Issue 30: a dual-stack task's addresses are its A and AAAA records', an IPv6-only task's its
    /// AAAA record's, read as addresses whatever their spelling.
    #[test]
    fn a_tasks_addresses_are_its_a_and_aaaa_records() {
        let dual: Vec<Record> =
            web_task_records_at("default", TASK_IDS[0], TaskAddresses::Dual(IPV4, IPV6), 80)
                .into_iter()
                .collect();
        let ipv6_only: Vec<Record> =
            web_task_records_at("default", TASK_IDS[1], IPV6.into(), 80).into_iter().collect();
        let inventory = run([dual.clone(), ipv6_only.clone()].concat());
        assert_eq!(inventory.tasks.len(), 2);
        assert_eq!(inventory.tasks[0].records.len(), 4, "ownership, A, AAAA and SRV");
        assert_eq!(inventory.tasks[0].addresses(), Some(TaskAddresses::Dual(IPV4, IPV6)));
        assert_eq!(inventory.tasks[1].addresses(), Some(TaskAddresses::Ipv6(IPV6)));
        // Route53 keeps the text another writer used: the same address spelled out in full.
        let mut spelled_out = ipv6_only.clone();
        for record in spelled_out.iter_mut().filter(|r| r.key.record_type == RecordType::Aaaa) {
            *record = Record::new(record.key.clone(), record.ttl, vec!["FD00:EC55:0:0:0:0:0:0001".into()]);
        }
        assert_eq!(run(spelled_out).tasks[0].addresses(), Some(TaskAddresses::Ipv6(IPV6)));
    }

    /// Issue 30: an orphan SRV takes its task's A and AAAA records with it; an ownership record that
    /// still hands over an AAAA record is a task, not an orphan.
    #[test]
    fn an_orphan_srv_takes_its_tasks_a_and_aaaa_records() {
        let dual: Vec<Record> =
            web_task_records_at("default", TASK_IDS[0], TaskAddresses::Dual(IPV4, IPV6), 80)
                .into_iter()
                .collect();
        let without_claim: Vec<Record> =
            dual.iter().filter(|r| r.key.record_type != RecordType::Txt).cloned().collect();
        let mut orphans = run(without_claim.clone()).orphans;
        orphans.sort_by(|a, b| a.key.cmp(&b.key));
        let mut expected = without_claim;
        expected.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(orphans, expected);

        let ipv6_only: Vec<Record> =
            web_task_records_at("default", TASK_IDS[1], IPV6.into(), 80).into_iter().collect();
        let claim_and_aaaa =
            [of_type(&ipv6_only, RecordType::Txt), of_type(&ipv6_only, RecordType::Aaaa)].concat();
        let inventory = run(claim_and_aaaa);
        assert!(inventory.orphans.is_empty(), "{:?}", inventory.orphans);
        assert_eq!(inventory.tasks[0].addresses(), Some(TaskAddresses::Ipv6(IPV6)));
    }
}
