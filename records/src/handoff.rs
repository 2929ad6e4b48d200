//! A registration handed over: when the account's Route53 rate is spent, a sidecar sends the changes it
//! planned to the registration queue, and the batcher writes the registrations of many tasks in one
//! request (Route53 takes up to 1,000 records per request, and counts a request, not a record,
//! against the account's rate).
//!
//! The sidecar keeps authority over its task's records: it plans, the batcher only carries the plan
//! out. The plan's changes are CREATE and DELETE with exact values, so a plan the zone no longer
//! matches (the sidecar changed or withdrew its records directly meanwhile) is refused whole by
//! Route53, never applied over what is there. A handoff only registers (it creates the task's records
//! and replaces its ownership record, never takes a record away), and it expires: the batcher does
//! not send it after `not_after_ms`.
//!
//! Every handoff writes the task's ownership record, with exact values: CREATE where there was none,
//! or DELETE of the value the sidecar last knew and CREATE of the new one. That record is the handoff's
//! guard: whatever the sidecar writes directly changes it (a changed claim, or a withdrawal guard in
//! place of a withdrawn claim, see [`crate::ownership`]), so a handoff still in the queue no longer
//! matches and can never land over it. The sidecar need not wait for its handoffs when it stops.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::batch::{BatchLimits, cost_of};
use crate::desired::parse_srv_value;
use crate::names::{Domain, OwnerId, TaskArn};
use crate::ownership::{Ownership, TaskKeys, is_srv_of};
use crate::plan::{Action, Change};
use crate::record::{RecordKey, RecordType};

/// The most changes one handoff may carry: a task's ownership record, its address and its SRV records
/// (a task has at most 10 containers of a few ports each), with room to spare.
pub const MAX_CHANGES: usize = 200;

/// One task's registration, handed to the batcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    /// The ecssd deployment the records are for.
    pub owner: OwnerId,
    pub task: TaskArn,
    /// Wall-clock time (milliseconds since the Unix epoch) after which no request may carry it.
    pub not_after_ms: u64,
    /// Exactly as the sidecar planned them, in order.
    pub changes: Vec<Change>,
}

/// Why a handoff is refused without being applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandoffError {
    #[error("it is for owner {found}, and this batcher writes for owner {expected}")]
    OtherOwner { found: String, expected: String },
    #[error("it carries {0} changes (a registration has at least 1 and at most {MAX_CHANGES})")]
    ChangeCount(usize),
    #[error("{0} is not one of task {1}'s records (its ownership record, its address, its SRV records)")]
    NotTheTasks(String, String),
    #[error("it deletes {0}: a handoff only registers (it may replace the ownership record, nothing else)")]
    TakesAway(String),
    #[error(
        "it does not write the task's ownership record {0}, which keeps a handoff from landing over a later change"
    )]
    Unguarded(String),
    #[error("the ownership record {0}")]
    BadOwnership(String),
    #[error("{0} has a value that is not {1}")]
    BadValue(String, &'static str),
    #[error("it holds {records} records and {chars} value characters, more than one Route53 request takes")]
    TooLarge { records: usize, chars: usize },
}

impl Handoff {
    /// Whether `changes` only register, as a handoff must: creates, and the replacement (DELETE then
    /// CREATE) of the ownership record.
    pub fn only_registers(changes: &[Change]) -> bool {
        taken_away(changes).is_none()
    }

    /// Whether `changes` write the task's ownership record (`ownership`), as a handoff must: that
    /// record, with exact values, is what keeps it from landing over a later change.
    pub fn guarded(changes: &[Change], ownership: &RecordKey) -> bool {
        changes.iter().any(|c| c.action == Action::Create && c.record.key == *ownership)
    }

    /// Checks a handoff the batcher did not plan: for this owner, only this task's records, only
    /// registering, with values a sidecar writes. The sidecar's own IAM policy lets it write the zone
    /// directly, but the batcher lends its rights to whoever can send to the queue: it writes nothing
    /// a sidecar's registration would not.
    pub fn check(&self, domain: &Domain, owner: &OwnerId) -> Result<(), HandoffError> {
        if &self.owner != owner {
            return Err(HandoffError::OtherOwner {
                found: self.owner.to_string(),
                expected: owner.to_string(),
            });
        }
        if self.changes.is_empty() || self.changes.len() > MAX_CHANGES {
            return Err(HandoffError::ChangeCount(self.changes.len()));
        }
        let task_id = self.task.id();
        let keys = TaskKeys::of(domain, task_id);
        for change in &self.changes {
            let key = &change.record.key;
            let owned =
                *key == keys.ownership || keys.is_address(key) || is_srv_of(domain, owner, task_id, key);
            if !owned {
                return Err(HandoffError::NotTheTasks(key.to_string(), self.task.to_string()));
            }
        }
        if let Some(taken) = taken_away(&self.changes) {
            return Err(HandoffError::TakesAway(taken.record.key.to_string()));
        }
        if !Self::guarded(&self.changes, &keys.ownership) {
            return Err(HandoffError::Unguarded(keys.ownership.to_string()));
        }
        let (records, chars) = cost_of(&self.changes);
        let limits = BatchLimits::default();
        if records > limits.max_records || chars > limits.max_value_chars {
            return Err(HandoffError::TooLarge { records, chars });
        }
        for change in &self.changes {
            let record = &change.record;
            let key = record.key.to_string();
            if change.action == Action::Delete {
                // Only the ownership record is ever deleted (checked above): it must be this owner's
                // claim on this task, as the sidecar's own read-back requires, not another owner's.
                match Ownership::decode(record.values()) {
                    Ok(o) if o.owner == *owner && o.task == self.task => continue,
                    Ok(o) => {
                        return Err(HandoffError::BadOwnership(format!(
                            "it deletes claims owner {} and task {}",
                            o.owner, o.task
                        )));
                    }
                    Err(e) => return Err(HandoffError::BadOwnership(format!("it deletes: {e}"))),
                }
            }
            match record.key.record_type {
                RecordType::Txt => match Ownership::decode(record.values()) {
                    Ok(o) if o.withdrawn_until.is_some() => {
                        return Err(HandoffError::BadOwnership(
                            "it writes a withdrawal guard (a handoff only registers)".into(),
                        ));
                    }
                    Ok(o) if o.owner == *owner && o.task == self.task => {}
                    Ok(o) => {
                        return Err(HandoffError::BadOwnership(format!(
                            "it writes claims owner {} and task {}",
                            o.owner, o.task
                        )));
                    }
                    Err(e) => return Err(HandoffError::BadOwnership(format!("it writes: {e}"))),
                },
                // One address, as a sidecar writes it (RFC 5952's text for IPv6): another spelling
                // of the same address would make the sidecar replace the record at every read-back.
                RecordType::A if one_address::<Ipv4Addr>(record.values()) => {}
                RecordType::A => return Err(HandoffError::BadValue(key, "one IPv4 address")),
                RecordType::Aaaa if one_address::<Ipv6Addr>(record.values()) => {}
                RecordType::Aaaa => {
                    return Err(HandoffError::BadValue(key, "one IPv6 address, as RFC 5952 writes it"));
                }
                RecordType::Srv => {
                    let to_task = |v: &String| parse_srv_value(v).is_some_and(|(_, t)| t == keys.target());
                    if !record.values().iter().all(to_task) {
                        return Err(HandoffError::BadValue(
                            key,
                            "an SRV value whose target is the task's address",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether `values` is one address of this family, in the text its `Display` gives.
fn one_address<T: std::str::FromStr + std::fmt::Display>(values: &[String]) -> bool {
    matches!(values, [value] if value.parse::<T>().is_ok_and(|address| address.to_string() == *value))
}

/// The first change that takes a record away: a DELETE that is not the ownership record's, or not
/// followed by its CREATE.
fn taken_away(changes: &[Change]) -> Option<&Change> {
    changes.iter().enumerate().find_map(|(index, change)| {
        let replaced = change.record.key.record_type == RecordType::Txt
            && changes[index + 1..]
                .iter()
                .any(|c| c.action == Action::Create && c.record.key == change.record.key);
        (change.action == Action::Delete && !replaced).then_some(change)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::TaskAddresses;
    use crate::desired::{Endpoint, TaskRegistration, ZoneModel, desired};
    use crate::plan::plan;
    use crate::record::{Record, RecordSet};

    const TASK: &str = "arn:aws:ecs:us-east-1:1:task/c/0123456789abcdef0123456789abcdef";
    const OTHER: &str = "arn:aws:ecs:us-east-1:1:task/c/fedcba9876543210fedcba9876543210";

    fn model() -> ZoneModel {
        ZoneModel { domain: "sd.internal".parse().unwrap(), owner: OwnerId::default(), ttl: 10 }
    }

    fn registration(task: &str, ports: &[u16]) -> RecordSet {
        let endpoints = ports
            .iter()
            .map(|&port| Endpoint {
                container: "app".into(),
                container_port: port,
                service: "_calc._tcp".parse().unwrap(),
                reachable_port: port,
            })
            .collect();
        let registration = TaskRegistration {
            cluster_arn: "arn:aws:ecs:us-east-1:1:cluster/c".into(),
            task: task.parse().unwrap(),
            addresses: TaskAddresses::Ipv4(Ipv4Addr::new(127, 0, 0, 9)),
            endpoints,
        };
        desired(&model(), &registration).records
    }

    /// The dual-stack registration of task `TASK` on port 80.
    fn dual_stack_registration(ipv6: &str) -> RecordSet {
        let mut records = registration(TASK, &[80]);
        let ipv6_key = TaskKeys::of(&model().domain, TASK.rsplit('/').next().unwrap()).ipv6;
        records.insert(Record::new(ipv6_key, 10, vec![ipv6.into()]));
        records
    }

    fn handoff(changes: Vec<Change>) -> Handoff {
        Handoff { owner: OwnerId::default(), task: TASK.parse().unwrap(), not_after_ms: 1, changes }
    }

    fn check(changes: Vec<Change>) -> Result<(), HandoffError> {
        handoff(changes).check(&model().domain, &OwnerId::default())
    }

    #[test]
    fn a_sidecars_registration_and_its_growth_are_accepted() {
        let fresh = plan(&registration(TASK, &[80]), &RecordSet::new());
        assert!(Handoff::only_registers(&fresh));
        assert_eq!(check(fresh), Ok(()));
        let grown = plan(&registration(TASK, &[80, 81]), &registration(TASK, &[80]));
        assert!(grown.iter().any(|c| c.action == Action::Delete), "the ownership record is replaced");
        assert!(Handoff::only_registers(&grown));
        assert_eq!(check(grown), Ok(()));
    }

    #[test]
    fn a_dual_stack_registration_is_accepted_with_ipv6_values_only() {
        let dual = plan(&dual_stack_registration("fd00::9"), &RecordSet::new());
        assert!(dual.iter().any(|c| c.record.key.record_type == RecordType::Aaaa));
        assert_eq!(check(dual), Ok(()));
        for bad in ["127.0.0.9", "FD00::9", "fd00:0:0:0:0:0:0:9"] {
            let bad = plan(&dual_stack_registration(bad), &RecordSet::new());
            assert!(matches!(
                check(bad),
                Err(HandoffError::BadValue(_, "one IPv6 address, as RFC 5952 writes it"))
            ));
        }
    }

    #[test]
    fn anything_a_registration_would_not_do_is_refused() {
        let shrunk = plan(&registration(TASK, &[80]), &registration(TASK, &[80, 81]));
        assert!(!Handoff::only_registers(&shrunk));
        assert!(matches!(check(shrunk), Err(HandoffError::TakesAway(_))));

        let others = plan(&registration(OTHER, &[80]), &RecordSet::new());
        assert!(matches!(check(others), Err(HandoffError::NotTheTasks(..))));

        let mut foreign = plan(&registration(TASK, &[80]), &RecordSet::new());
        let key = crate::record::RecordKey {
            name: "www.sd.internal.".into(),
            record_type: RecordType::A,
            set_identifier: None,
        };
        foreign.push(Change::create(Record::new(key, 10, vec!["127.0.0.1".into()])));
        assert!(matches!(check(foreign), Err(HandoffError::NotTheTasks(..))));

        let mut claims_other = plan(&registration(TASK, &[80]), &RecordSet::new());
        let theirs = plan(&registration(OTHER, &[80]), &RecordSet::new());
        let forged_txt = theirs.iter().find(|c| c.record.key.record_type == RecordType::Txt).unwrap();
        claims_other[0].record =
            Record::new(claims_other[0].record.key.clone(), 10, forged_txt.record.values().to_vec());
        assert!(matches!(check(claims_other), Err(HandoffError::BadOwnership(_))));

        // The ownership record is the handoff's guard against landing over a later direct change.
        let mut unguarded = plan(&registration(TASK, &[80]), &RecordSet::new());
        unguarded.retain(|c| c.record.key.record_type != RecordType::Txt);
        assert!(matches!(check(unguarded), Err(HandoffError::Unguarded(_))));
        let mut writes_guard = plan(&registration(TASK, &[80]), &RecordSet::new());
        let txt = writes_guard.iter_mut().find(|c| c.record.key.record_type == RecordType::Txt).unwrap();
        let guard = Ownership::withdrawal_guard(
            OwnerId::default(),
            "arn:aws:ecs:us-east-1:1:cluster/c".into(),
            TASK.parse().unwrap(),
            u64::MAX,
        );
        let guard_txt = Record::new(txt.record.key.clone(), 10, guard.encode());
        txt.record = guard_txt.clone();
        assert!(matches!(check(writes_guard), Err(HandoffError::BadOwnership(_))));

        // Registering again over this task's guard replaces it, as any ownership record of its own.
        let over_guard = plan(&registration(TASK, &[80]), &RecordSet::from_iter([guard_txt]));
        assert_eq!(check(over_guard), Ok(()));

        let mut elsewhere = plan(&registration(TASK, &[80]), &RecordSet::new());
        let srv = elsewhere.iter_mut().find(|c| c.record.key.record_type == RecordType::Srv).unwrap();
        srv.record = Record::new(srv.record.key.clone(), 10, vec!["1 1 80 www.example.com".into()]);
        assert!(matches!(check(elsewhere), Err(HandoffError::BadValue(..))));

        // Review: the replaced ownership record must be this owner's (another owner's task of the same
        // id would otherwise lose its claim).
        let mut takes_theirs = plan(&registration(TASK, &[80, 81]), &registration(TASK, &[80]));
        let theirs = Ownership {
            owner: "blue".parse().unwrap(),
            cluster_arn: "arn:aws:ecs:us-east-1:1:cluster/c".into(),
            task: TASK.parse().unwrap(),
            srv: Vec::new(),
            withdrawn_until: None,
        };
        let ours_txt = takes_theirs.iter().find(|c| c.action == Action::Delete).unwrap().record.clone();
        let blue_txt = Record::new(ours_txt.key, 10, theirs.encode());
        let delete = takes_theirs.iter_mut().find(|c| c.action == Action::Delete).unwrap();
        delete.record = blue_txt;
        assert!(matches!(check(takes_theirs), Err(HandoffError::BadOwnership(_))));

        assert!(matches!(check(Vec::new()), Err(HandoffError::ChangeCount(0))));
        let mut other_owner = handoff(plan(&registration(TASK, &[80]), &RecordSet::new()));
        other_owner.owner = "blue".parse().unwrap();
        assert!(matches!(
            other_owner.check(&model().domain, &OwnerId::default()),
            Err(HandoffError::OtherOwner { .. })
        ));
    }
}
